"""depin.delivery_check.check_delivered, what a drawn auditor or juror checks of the provider's
delivery, against the executor's real result server (uvicorn on a free port) serving what the
executor's own store and submission journal publish: plaintext good, tampered, missing (404 and a
server that is down), over the cap, with an output selector; sealed good, tampered, sealed to
another key, of the wrong kind. Also the sentinel NOT_DELIVERED."""

from __future__ import annotations

import os
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from eth_utils import keccak

from depin import delivery_check
from depin.addresses import parse_networks, public_resolver
from depin.commitment import NOT_DELIVERED, failure_digest
from depin.delivery import public_key_of
from depin.delivery_check import MISMATCH, NO_MANIFEST, NO_URI, TOO_LARGE, UNAVAILABLE, WRONG_KIND, check_delivered
from depin.fetch import MAX_REDIRECTS
from depin.outputs import build_archive, match_digest
from depinctl.procs import free_port
from executor.result_server import create_app
from executor.results import ResultStore, Submission, SubmissionJournal, prepare_submission
from executor.verifier import check_delivered_bounded
from tests.client.served import serve, trickle, trickle_head
from tests.executor.recording_server import Answer, RecordingServer
from tests.indexer.services import TIMEOUT_SCALE

PARTY = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
JOB = 7
REQUESTER_KEY = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
OTHER_KEY = bytes.fromhex("5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a")
CAP = 1 << 20
# the result servers here are on loopback, which check_delivered does not fetch from unless allowed
LOOPBACK = public_resolver(parse_networks(["127.0.0.0/8"]))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ResultStore]:
    """The executor's result server over a store; the store's base URL is the server's."""
    root = tmp_path / "store"
    server = uvicorn.Server(uvicorn.Config(create_app(ResultStore(root, "http://unused")), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the result server did not start"
        time.sleep(0.02)
    yield ResultStore(root, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}")
    server.should_exit = True
    thread.join(5)


def _publish(tmp_path: Path, store: ResultStore, *, encrypt_to: bytes | None = None, select: list[str] | None = None) -> Submission:
    """What a provider executor publishes for a result: the archive in the store (sealed when the
    spec names a key) and, journaled first, its manifest; the submission carries the commitment."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "result.txt").write_text("42\n")
    (out / "noise.log").write_text(f"{time.time()}\n")
    built = build_archive(out, 0, tmp_path / "result.tar")
    committed = match_digest(built.path, select) if select else built.digest
    stored = store.put(built.path, encrypt_to=encrypt_to)
    journal = SubmissionJournal(tmp_path / "journal")
    return prepare_submission(journal, store, job_id=JOB, spec_hash=b"\x01" * 32, party=PARTY, kind="result",
                              digest=built.digest, committed=committed, name=stored.name)


def _check(sub: Submission, **kw: object):
    args = {"provider": PARTY, "job_id": JOB, "commitment": bytes.fromhex(sub.commitment[2:]), "match": None, "encrypt_to": None,
            "max_bytes": CAP, "timeout": 5.0, "resolver": LOOPBACK}
    args.update(kw)
    return check_delivered(sub.uri, **args)  # type: ignore[arg-type]


def test_not_delivered_is_a_fixed_word_no_archive_or_failure_gives() -> None:
    assert NOT_DELIVERED == keccak(b"depin.not-delivered") and len(NOT_DELIVERED) == 32
    assert NOT_DELIVERED not in {failure_digest(c) for c in range(1, 8)}


def test_a_plaintext_delivery_matches_the_commitment(tmp_path: Path, served: ResultStore) -> None:
    sub = _publish(tmp_path, served)
    verdict = _check(sub)
    assert verdict and verdict.delivered and not verdict.sealed and verdict.size > 0 and verdict.attempts == 1
    assert verdict.summary().startswith("delivered (plaintext,")
    # another job's or another party's commitment does not match the same bytes
    assert not _check(sub, job_id=JOB + 1)
    wrong = _check(sub, commitment=b"\x00" * 32)
    assert not wrong and wrong.failure == MISMATCH and "does not give the provider's commitment" in wrong.reason


def test_a_tampered_plaintext_archive_is_not_delivered(tmp_path: Path, served: ResultStore) -> None:
    sub = _publish(tmp_path, served)
    path = served.path(sub.name)
    data = bytearray(path.read_bytes())
    data[600] ^= 1  # a flipped bit inside the first member's content
    path.write_bytes(bytes(data))
    verdict = _check(sub, wait=3.0)
    assert not verdict and verdict.failure == MISMATCH
    assert verdict.attempts == 1  # a mismatch is final: not asked for again


def test_a_missing_archive_is_asked_for_within_the_wait_then_not_delivered(tmp_path: Path, served: ResultStore) -> None:
    sub = _publish(tmp_path, served)
    served.path(sub.name).unlink()  # the provider withholds: its server answers 404
    # asked for again until the wait ends (a wait scaled like the tests' hang guards: on a loaded
    # machine one attempt once took the whole of a 0.5 s wait, leaving no time for a second)
    verdict = _check(sub, wait=1.0 * TIMEOUT_SCALE, retry_every=0.2)
    assert not verdict and verdict.failure == UNAVAILABLE and "HTTP 404" in verdict.reason and verdict.attempts >= 2
    assert verdict.summary().startswith("not delivered:")
    served.remove(sub.name)  # the manifest too
    verdict = _check(sub)
    assert not verdict and verdict.failure == NO_MANIFEST and verdict.attempts == 1


def test_an_archive_that_comes_back_within_the_wait_is_delivered(tmp_path: Path, served: ResultStore, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = _publish(tmp_path, served)
    path = served.path(sub.name)
    kept = path.read_bytes()
    path.unlink()
    # The provider's disk is back once the first attempt has been answered 404 (observed, not timed:
    # each attempt still asks the real server).
    first_failed = threading.Event()
    check_once = delivery_check._check_once

    def observed(*args: object) -> object:
        verdict = check_once(*args)
        if not verdict.delivered:
            first_failed.set()
        return verdict

    monkeypatch.setattr(delivery_check, "_check_once", observed)

    def restore() -> None:
        if first_failed.wait(60):
            part = path.with_name(path.name + ".part")
            part.write_bytes(kept)
            os.replace(part, path)  # at once: a half-written archive would be a final mismatch

    restorer = threading.Thread(target=restore)
    restorer.start()
    try:
        verdict = _check(sub, wait=20.0, retry_every=0.1)
    finally:
        first_failed.set()
        restorer.join()
    assert verdict and verdict.attempts >= 2


def test_a_server_that_is_down_is_not_delivered(tmp_path: Path, served: ResultStore) -> None:
    sub = _publish(tmp_path, served)
    uri = sub.uri.replace(served.base_url, f"http://127.0.0.1:{free_port()}")
    verdict = check_delivered(uri, provider=PARTY, job_id=JOB, commitment=bytes.fromhex(sub.commitment[2:]), match=None,
                              encrypt_to=None, max_bytes=CAP, timeout=5.0, resolver=LOOPBACK)
    assert not verdict and verdict.failure == NO_MANIFEST
    assert not check_delivered("", provider=PARTY, job_id=JOB, commitment=b"\x00" * 32, match=None, encrypt_to=None, max_bytes=CAP)


def test_an_archive_over_the_cap_is_not_delivered(tmp_path: Path, served: ResultStore) -> None:
    sub = _publish(tmp_path, served)
    verdict = _check(sub, max_bytes=100)
    assert not verdict and verdict.failure == TOO_LARGE


def test_an_output_selector_checks_the_match_digest(tmp_path: Path, served: ResultStore) -> None:
    sub = _publish(tmp_path, served, select=["result.txt"])
    assert _check(sub, match=["result.txt"])
    assert not _check(sub)  # the whole archive's sha256 is not what was committed


def test_a_sealed_delivery_is_checked_by_its_content_address(tmp_path: Path, served: ResultStore) -> None:
    key = public_key_of(REQUESTER_KEY)
    sub = _publish(tmp_path, served, encrypt_to=key)
    verdict = _check(sub, encrypt_to=key)
    assert verdict and verdict.sealed and verdict.summary().startswith("delivered (sealed,")
    # the spec asks for a plaintext delivery: a sealed one is not it (and the other way round below)
    assert _check(sub).failure == WRONG_KIND
    # a manifest naming another recipient than the spec's key
    assert _check(sub, encrypt_to=public_key_of(OTHER_KEY)).failure == MISMATCH
    # altered bytes no longer hash to the content address in the URI
    path = served.path(sub.name)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    verdict = _check(sub, encrypt_to=key)
    assert not verdict and verdict.failure == MISMATCH and "content address" in verdict.reason


def test_a_plaintext_delivery_is_not_a_sealed_one(tmp_path: Path, served: ResultStore) -> None:
    sub = _publish(tmp_path, served)
    verdict = _check(sub, encrypt_to=public_key_of(REQUESTER_KEY))
    assert not verdict and verdict.failure == WRONG_KIND


@pytest.mark.parametrize("manifest", [b"[" * 30_000 + b"]" * 30_000, b'{"salt":' * 6_000 + b"1" + b"}" * 6_000])
def test_a_manifest_nested_too_deeply_is_a_mismatch_not_a_crash(manifest: bytes) -> None:
    """A provider's manifest nested 30,000 deep (60 KB, under the 64 KiB cap) made json's scanner
    raise RecursionError (at the interpreter's default limit, which pytest raises: set back here)
    out of check_delivered, which never raises for what a server sends: the juror's check crashed
    instead of voting. It is an unreadable manifest, a MISMATCH."""
    assert len(manifest) < delivery_check.MANIFEST_MAX_BYTES
    limit = sys.getrecursionlimit()
    with serve({"/results/x": b"archive", "/results/x.json": manifest}) as base:
        sys.setrecursionlimit(1_000)  # CPython's default: what a juror's worker runs with
        try:
            verdict = check_delivered(f"{base}/results/x", provider=PARTY, job_id=JOB, commitment=bytes(32), match=None,
                                      encrypt_to=None, max_bytes=CAP, timeout=5.0, resolver=LOOPBACK)
        finally:
            sys.setrecursionlimit(limit)
    assert not verdict and verdict.failure == MISMATCH and "nested deeper than" in verdict.reason


def test_a_file_uri_is_never_fetched(tmp_path: Path) -> None:
    """A provider naming file:///dev/zero (or a fifo of the juror's machine, which would block the
    read for ever) as its result: the checker's own disk is not a delivery; nothing is read."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    for uri in (fifo.as_uri(), "file:///dev/zero", "ftp://example.invalid/r"):
        verdict = check_delivered(uri, provider=PARTY, job_id=JOB, commitment=bytes(32), match=None, encrypt_to=None,
                                  max_bytes=CAP, timeout=5.0, wait=30.0)
        assert not verdict and verdict.failure == NO_URI and verdict.attempts == 1, verdict
        assert "not an http(s) URL" in verdict.reason


def test_a_server_trickling_its_archive_is_cut_off_by_the_total_timeout() -> None:
    """A provider's server that sends the archive a few bytes at a time, each within the read
    timeout, held a juror's check for as long as it liked; total_timeout bounds the whole check.
    The server answers the manifest at once, then trickles until the client hangs up (recorded)."""
    manifest = b'{"salt":"0x' + b"11" * 32 + b'"}'
    with trickle({"/results/slow.json": manifest}) as (base, hung_up):
        verdict = check_delivered(f"{base}/results/slow", provider=PARTY, job_id=JOB, commitment=bytes(32), match=None,
                                  encrypt_to=None, max_bytes=CAP, timeout=5.0, total_timeout=1.0, resolver=LOOPBACK)
        assert not verdict and verdict.failure == UNAVAILABLE and "took too long" in verdict.reason, verdict
        assert hung_up.wait(30 * TIMEOUT_SCALE), "the checker kept the connection open"


def _published_bytes(tmp_path: Path, served: ResultStore) -> tuple[Submission, dict[str, Answer]]:
    """A provider's publication: the submission, and routes serving its archive and manifest at /r/x."""
    sub = _publish(tmp_path, served)
    archive = httpx.get(sub.uri, timeout=10).content
    manifest = httpx.get(sub.uri + ".json", timeout=10).content
    return sub, {"/r/x": (200, {}, archive), "/r/x.json": (200, {}, manifest)}


def _check_at(uri: str, sub: Submission | None, allow: list[str], **kw: object):
    commitment = bytes.fromhex(sub.commitment[2:]) if sub else bytes(32)
    return check_delivered(uri, provider=PARTY, job_id=JOB, commitment=commitment, match=None, encrypt_to=None, max_bytes=CAP,
                           timeout=5.0, resolver=public_resolver(parse_networks(allow)), **kw)  # type: ignore[arg-type]


def test_a_result_on_the_checkers_own_network_is_never_fetched(tmp_path: Path, served: ResultStore) -> None:
    """A provider naming a URI on the verifier's loopback (or a name resolving there): with the
    verifier's resolver (public addresses only) not even a connection is made and the result is not
    delivered (no-uri, not asked for again); the same publication with loopback allowed (the
    devnet's [verifier] result_allow_networks) is delivered."""
    sub, routes = _published_bytes(tmp_path, served)
    with RecordingServer("127.0.0.1", routes) as server:
        for uri in (f"{server.base}/r/x", f"http://localhost:{server.port}/r/x", f"http://2130706433:{server.port}/r/x"):
            verdict = _check_at(uri, sub, [], wait=30.0)
            assert not verdict and verdict.failure == NO_URI and verdict.attempts == 1, verdict
            assert "does not fetch from" in verdict.reason and "loopback" in verdict.reason
        default = check_delivered(f"{server.base}/r/x", provider=PARTY, job_id=JOB, commitment=bytes.fromhex(sub.commitment[2:]),
                                  match=None, encrypt_to=None, max_bytes=CAP, timeout=5.0)  # no resolver given: public only
        assert not default and default.failure == NO_URI, default
        assert server.connections == 0
        verdict = _check_at(f"{server.base}/r/x", sub, ["127.0.0.0/8"])
        assert verdict.delivered, verdict
        assert [r.path for r in server.requests] == ["/r/x.json", "/r/x"]


def test_a_redirect_to_the_checkers_own_network_is_not_followed(tmp_path: Path, served: ResultStore) -> None:
    """127.0.0.2 stands for a public server (allowed here); it redirects the manifest and the archive
    to 127.0.0.1, the verifier's loopback: the redirect is not followed (no connection reaches
    127.0.0.1) and the result is not delivered. With 127.0.0.1 allowed too, the redirects deliver it."""
    sub, routes = _published_bytes(tmp_path, served)
    with RecordingServer("127.0.0.1", routes) as inner:
        redirects: dict[str, Answer] = {path: (302, {"Location": f"{inner.base}{path}"}, b"") for path in routes}
        with RecordingServer("127.0.0.2", redirects) as outer:  # type: ignore[arg-type]
            verdict = _check_at(f"{outer.base}/r/x", sub, ["127.0.0.2/32"], wait=30.0)
            assert not verdict and verdict.failure == NO_URI and verdict.attempts == 1, verdict
            assert [r.path for r in outer.requests] == ["/r/x.json"] and inner.connections == 0
            verdict = _check_at(f"{outer.base}/r/x", sub, ["127.0.0.2/32", "127.0.0.1/32"])
            assert verdict.delivered, verdict
            assert [r.path for r in inner.requests] == ["/r/x.json", "/r/x"]


def test_a_redirect_loop_ends() -> None:
    """With a resolver, redirects are followed by hand, at most depin.fetch.MAX_REDIRECTS of them."""
    with RecordingServer("127.0.0.1") as server:
        server.routes["/r/x.json"] = (302, {"Location": f"{server.base}/r/x.json"}, b"")  # to itself
        verdict = _check_at(f"{server.base}/r/x", None, ["127.0.0.0/8"])
    assert not verdict and verdict.failure == NO_MANIFEST and f"more than {MAX_REDIRECTS} redirects" in verdict.reason
    assert [r.path for r in server.requests] == ["/r/x.json"] * (MAX_REDIRECTS + 1)


def test_https_is_checked_against_the_name_not_the_pinned_address(tmp_path: Path, served: ResultStore, localhost_cert) -> None:
    """The connection goes to the address the resolver checked, but TLS (SNI and the certificate)
    and the Host header stay the URL's name; by its address the same server's certificate fails."""
    import ssl

    import certifi

    cert, key = localhost_cert
    sub, routes = _published_bytes(tmp_path, served)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with pytest.MonkeyPatch.context() as mp, RecordingServer("127.0.0.1", routes, tls=context) as server:
        mp.setattr(certifi, "where", lambda: str(cert))  # trusted as a public CA would be
        verdict = _check_at(f"https://localhost:{server.port}/r/x", sub, ["127.0.0.0/8", "::1/128"])
        assert verdict.delivered, verdict
        assert server.sni == ["localhost", "localhost"] and {r.host for r in server.requests} == {f"localhost:{server.port}"}
        verdict = _check_at(f"https://127.0.0.1:{server.port}/r/x", sub, ["127.0.0.0/8"])
        assert not verdict and verdict.failure == NO_MANIFEST and "CERTIFICATE_VERIFY_FAILED" in verdict.reason, verdict


# ------------------------------------------------------------------ the bounded check (a child process)


def _bounded(uri: str, commitment: bytes, **kw: object):
    args = {"provider": PARTY, "job_id": JOB, "commitment": commitment, "match": None, "encrypt_to": None, "max_bytes": CAP,
            "timeout": 1.0, "wait": 0.0, "total_timeout": 2.0, "allow_networks": ["127.0.0.0/8"], **kw}
    return check_delivered_bounded(uri, **args)  # type: ignore[arg-type]


def test_the_bounded_check_gives_the_in_process_verdicts(tmp_path: Path, served: ResultStore) -> None:
    sub = _publish(tmp_path, served, select=["result.txt"])
    commitment = bytes.fromhex(sub.commitment[2:])
    verdict = _bounded(sub.uri, commitment, match=["result.txt"])
    assert verdict.delivered and not verdict.sealed and verdict.size > 0, verdict
    wrong = _bounded(sub.uri, b"\x00" * 32, match=["result.txt"])
    assert not wrong and wrong.failure == MISMATCH and "does not give the provider's commitment" in wrong.reason


def test_the_bounded_check_runs_under_a_memory_limit(tmp_path: Path, served: ResultStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The child caps its address space (DELIVERY_CHECK_MAX_MEMORY): the default leaves a normal
    check room (the test above), and a check that runs out of it is "not delivered", a stopped
    check, never an exception out of the seat's run."""
    from executor import verifier

    sub = _publish(tmp_path, served, select=["result.txt"])
    monkeypatch.setattr(verifier, "DELIVERY_CHECK_MAX_MEMORY", 16 << 20)  # below what the child has mapped at start
    verdict = _bounded(sub.uri, bytes.fromhex(sub.commitment[2:]), match=["result.txt"])
    assert not verdict.delivered and verdict.failure == UNAVAILABLE, verdict


def test_headers_sent_a_byte_per_read_timeout_end_at_the_total_timeout() -> None:
    """The deadline was checked between body chunks only: a server sending its response head one
    byte per read timeout held the check as long as it liked (found by review, stop 36). Its
    connections are now shut down at the deadline, in process and in the bounded child."""
    with trickle_head() as (base, hung_up):
        verdict = check_delivered(f"{base}/results/x", provider=PARTY, job_id=JOB, commitment=bytes(32), match=None,
                                  encrypt_to=None, max_bytes=CAP, timeout=1.0, total_timeout=2.0, resolver=LOOPBACK)
        assert not verdict and "took too long" in verdict.reason, verdict
        assert hung_up.wait(30)
        bounded = _bounded(f"{base}/results/x", bytes(32))
        assert not bounded and "took too long" in bounded.reason, bounded


def _digit_pax_archive(digits: int) -> bytes:
    """A tar whose pax header is `digits` ASCII digits, then exit_code: Python's tarfile before
    3.11.10 / 3.12.6 scans such a header in time quadratic in its length (CVE-2024-6232)."""
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, digits
    code = tarfile.TarInfo("exit_code")
    code.size = 2
    return (pax.tobuf(format=tarfile.USTAR_FORMAT) + b"1" * digits + b"\0" * (-digits % 512)
            + code.tobuf(format=tarfile.USTAR_FORMAT) + b"0\n" + b"\0" * 510 + b"\0" * 10240)


def test_an_archive_that_would_stall_the_tar_parser_is_refused_unread() -> None:
    """A provider's plaintext archive for a spec with an output selector, whose pax header is a long
    run of digits: parsed in process on a Python before 3.11.10 / 3.12.6 it held the GIL, and so
    every thread of the executor, for minutes (found by review, stop 36). Its header is refused
    before tarfile reads it (depin.outputs.check_headers), the same on every Python: a MISMATCH,
    not a check stopped at its deadline (the child's deadline is tested by the trickler above)."""
    routes: dict[str, Answer] = {
        "/r/x": (200, {}, _digit_pax_archive(400_000)),
        "/r/x.json": (200, {}, b'{"salt":"0x' + b"11" * 32 + b'"}'),
    }
    with RecordingServer("127.0.0.1", routes) as server:
        verdict = _bounded(f"http://127.0.0.1:{server.port}/r/x", bytes(32), match=["result.txt"])
    assert not verdict and verdict.failure == MISMATCH and "an extended header of 400000 bytes" in verdict.reason, verdict


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_the_checkers_own_full_disk_is_not_checked_never_not_delivered(tmp_path: Path, served: ResultStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review (stop 55): with an output selector the check keeps the archive in a temporary folder;
    when this machine's /tmp was full, the write's ENOSPC ended the check as "not delivered" (in
    process, an OSError out of check_delivered; in the child, its catch-all made it UNAVAILABLE):
    a vote against an honest provider for the verifier's own disk. It is "not checked" now, so the
    seat commits its re-run digest; the same honest delivery with room is delivered."""
    import subprocess
    import tempfile

    from depin.delivery_check import NOT_CHECKED

    sub = _publish(tmp_path, served, select=["result.txt"])
    commitment = bytes.fromhex(sub.commitment[2:])
    small = tmp_path / "small-tmp"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "depin-test-full-tmp", str(small)], check=True)
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(small))  # in process
        monkeypatch.setenv("TMPDIR", str(small))  # the bounded check's child
        for verdict in (_check(sub, match=["result.txt"]), _bounded(sub.uri, commitment, match=["result.txt"])):
            assert not verdict.delivered and verdict.failure == NOT_CHECKED, verdict
            assert verdict.summary().startswith("not checked: this machine failed while checking") and "No space left" in verdict.reason
    finally:
        subprocess.run(["umount", str(small)], check=True)
    monkeypatch.undo()
    assert _check(sub, match=["result.txt"]).delivered and _bounded(sub.uri, commitment, match=["result.txt"]).delivered
