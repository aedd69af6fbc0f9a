"""Client.fetch_result: the archive is downloaded, checked against the salted commitment the
provider submitted on chain (its digest with the salt from the manifest beside it, or given), and
only then extracted; a tampered archive, or a wrong or missing salt, is refused."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from depin.client import (
    Client,
    ClientError,
    ResultMismatch,
    ResultRuledWrong,
    ResultSealed,
    ResultUnavailable,
    ResultUnsafe,
)
from depin.commitment import commitment, failure_digest
from depin.delivery import public_key_of
from depin.deployment import to_wei
from depin.market import FailureCode, JobStatus, Outcome
from depin.outputs import build_archive
from depin.spec import parse_spec, with_delivery
from executor.results import ResultStore

from .conftest import Devnet, make_spec
from .served import publish, serve, trickle


@pytest.fixture()
def archive(tmp_path: Path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "answer.txt").write_text("42\n")
    (out / "sub" / "data.bin").write_bytes(bytes(range(256)))
    return build_archive(out, 3, tmp_path / "result.tar")


SALT = bytes(range(32))


def _submitted_job(
    devnet: Devnet, digest: bytes, uri: str, files: dict[str, Any] | None = None, salt: bytes = SALT, spec: Any = None,
    challenge_window: int | None = None,
) -> tuple[Client, int]:
    """A job (`spec`, default ``make_spec(100)``) whose provider committed to `digest` with `salt`
    and published the archive at `uri` and its manifest (the salt) beside it: in `files` (served)
    or next to a file URI."""
    requester = devnet.client(devnet.new_account(20))
    provider = devnet.client(devnet.new_account(1_000))
    provider.register(to_wei(200), "http://provider")
    spec = make_spec(100) if spec is None else spec
    job_id = requester.post_job(spec, reward=to_wei(1), seal=False, challenge_window=challenge_window).job_id  # a plaintext archive
    provider.claim(job_id)
    provider.submit_result(job_id, commitment(provider.address, job_id, digest, SALT), uri)
    manifest = json.dumps({"job": job_id, "party": provider.address, "salt": "0x" + salt.hex()}).encode()
    if files is not None:
        files[uri.split("/", 3)[3].join(("/", ".json"))] = manifest
    elif uri.startswith("file://"):
        Path(uri.removeprefix("file://") + ".json").write_bytes(manifest)
    return requester, job_id


def test_a_job_posted_with_the_defaults_is_sealed_to_its_poster(devnet: Devnet, archive, tmp_path: Path) -> None:
    """post_job seals to the poster unless told otherwise: the posted spec (and its specHash) names
    the poster's public key, the executor publishes a ciphertext (no tar, no salt in clear), the
    poster's own client opens it and no other key does."""
    requester_account = devnet.new_account(10)
    requester = devnet.client(requester_account)
    mine = public_key_of(bytes(requester_account.key))
    provider = devnet.client(devnet.new_account(1_000))
    provider.register(to_wei(200), "http://provider")
    spec = make_spec(103)
    posted = requester.post_job(spec, reward=to_wei(1))
    assert posted.sealed_to == mine == requester.own_public_key()
    onchain = requester.spec_bytes(posted.job_id)
    assert onchain == with_delivery(spec, mine) != spec.to_bytes()
    assert json.loads(onchain)["delivery"] == {"encrypt_to": "0x" + mine.hex()}
    assert requester.job(posted.job_id).spec_hash == keccak(onchain)  # the hash covers the key
    parsed = parse_spec(onchain, keccak(onchain))  # canonical: executors and the indexer accept it
    assert parsed.encrypt_to == mine and parsed.model_copy(update={"delivery": None}) == spec
    provider.claim(posted.job_id)
    files: dict[str, bytes] = {}
    with serve(files) as base:
        name = publish(provider, posted.job_id, archive, ResultStore(tmp_path / "store", base), files, tmp_path)
        served = files[f"/results/{name}"]
        manifest = json.loads(files[f"/results/{name}.json"])
        assert manifest["salt_sealed"] and "salt" not in manifest and manifest["encrypt_to"] == "0x" + mine.hex()
        # no tar and nothing of the archive in clear: a file name, a file's 256 bytes (a 3-byte
        # probe such as the answer "42\n" would turn up in random ciphertext once in a few thousand runs)
        assert not tarfile.is_tarfile(io.BytesIO(served))
        assert b"answer.txt" not in served and bytes(range(256)) not in served
        assert hashlib.sha256(served).hexdigest() == name  # content-addressed
        with pytest.raises(ResultSealed, match="not encrypted to this key"):
            devnet.client(devnet.new_account()).download_result(posted.job_id, tmp_path / "thief")
        assert not (tmp_path / "thief").exists() or list((tmp_path / "thief").iterdir()) == []
        fetched = requester.download_result(posted.job_id, tmp_path / "mine")
    assert fetched.sealed and not fetched.sealing_ignored and fetched.digest == archive.digest and fetched.exit_code == 3
    assert (tmp_path / "mine" / "answer.txt").read_text() == "42\n"


def test_seal_false_gives_a_plaintext_archive_and_encrypt_to_seals_to_another_key(
    devnet: Devnet, archive, tmp_path: Path
) -> None:
    requester = devnet.client(devnet.new_account(20))
    friend = devnet.new_account()
    friend_key = public_key_of(bytes(friend.key))
    provider = devnet.client(devnet.new_account(1_000))
    provider.register(to_wei(200), "http://provider")
    clear = requester.post_job(make_spec(104), reward=to_wei(1), seal=False)
    other = requester.post_job(make_spec(105).to_bytes(), reward=to_wei(1), encrypt_to="0x" + friend_key.hex())
    assert clear.sealed_to is None and "delivery" not in json.loads(requester.spec_bytes(clear.job_id))
    assert requester.spec_bytes(clear.job_id) == make_spec(104).to_bytes()
    assert other.sealed_to == friend_key
    assert requester.spec_bytes(other.job_id) == with_delivery(make_spec(105).to_bytes(), friend_key)
    # a spec that names its key is posted as it is (seal=False only declines the default); another
    # encrypt_to contradicts it
    named = requester.post_job(parse_spec(with_delivery(make_spec(106), friend_key)), reward=to_wei(1), seal=False)
    assert named.sealed_to == friend_key
    with pytest.raises(ClientError, match="already names a delivery key"):
        requester.post_job(parse_spec(with_delivery(make_spec(107), friend_key)), reward=to_wei(1),
                           encrypt_to=requester.own_public_key())
    files: dict[str, bytes] = {}
    with serve(files) as base:
        store = ResultStore(tmp_path / "store", base)
        for job_id in (clear.job_id, other.job_id):
            provider.claim(job_id)
        plain = publish(provider, clear.job_id, archive, store, files, tmp_path)
        sealed = publish(provider, other.job_id, archive, store, files, tmp_path)
        assert tarfile.is_tarfile(io.BytesIO(files[f"/results/{plain}"]))  # public: anyone can read it
        assert json.loads(files[f"/results/{plain}.json"])["salt"]
        fetched = devnet.client().download_result(clear.job_id, tmp_path / "anyone")  # no key at all
        assert not fetched.sealed and fetched.digest == archive.digest
        with pytest.raises(ResultSealed, match="not encrypted to this key"):
            requester.download_result(other.job_id, tmp_path / "poster")  # sealed to the friend, not the poster
        opened = requester.download_result(other.job_id, tmp_path / "friend", decrypt_key=bytes(friend.key))
        assert not tarfile.is_tarfile(io.BytesIO(files[f"/results/{sealed}"]))
    assert opened.sealed and (tmp_path / "friend" / "answer.txt").read_text() == "42\n"


def test_correct_archive_is_verified_and_extracted(devnet: Devnet, archive, tmp_path: Path) -> None:
    files = {"/results/a": archive.path.read_bytes()}
    with serve(files) as base:
        requester, job_id = _submitted_job(devnet, archive.digest, f"{base}/results/a", files)
        dest = tmp_path / "fetched"
        fetched = requester.download_result(job_id, dest)
    assert fetched.digest == archive.digest and fetched.exit_code == 3 and fetched.size == archive.size
    assert not fetched.sealed and not fetched.sealing_ignored  # posted with seal=False: plaintext was asked for
    assert (dest / "answer.txt").read_text() == "42\n"
    assert (dest / "sub" / "data.bin").read_bytes() == bytes(range(256))
    assert sorted(p.name for p in dest.iterdir()) == ["answer.txt", "sub"]  # no archive left behind
    # a folder that holds anything is refused before any byte is written: the result's answer.txt
    # (or a hostile one's .bashrc) never replaces a file of the user's
    with serve(files) as base:
        mine = tmp_path / "mine"
        mine.mkdir()
        (mine / "answer.txt").write_text("my own\n")
        with pytest.raises(ClientError, match="is not empty: a result is extracted only into a new or empty folder"):
            requester.fetch_result(job_id, mine)
    assert [p.name for p in mine.iterdir()] == ["answer.txt"] and (mine / "answer.txt").read_text() == "my own\n"
    with pytest.raises(ClientError, match="is not empty"):
        requester.fetch_result(job_id, dest)  # a second download into the same folder too


def test_a_result_its_court_ruled_wrong_is_refused_unless_allowed(devnet: Devnet, archive, tmp_path: Path) -> None:
    """The archive matches the provider's commitment, but the job's court settled it ProviderWrong
    (collateral slashed, the requester refunded): the JobSettled outcome is read and the result
    refused before anything is downloaded, unless allow_ruled_wrong. A Split ruling (the job is not
    reproducible) is extracted and says so in the outcome."""
    court = devnet.chain.contracts.test_court
    files = {"/results/w": archive.path.read_bytes(), "/results/s": archive.path.read_bytes()}
    with serve(files) as base:
        requester, wrong = _submitted_job(devnet, archive.digest, f"{base}/results/w", files, challenge_window=300)
        _, split = _submitted_job(devnet, archive.digest, f"{base}/results/s", files, challenge_window=300)
        assert requester.settlement(wrong) is None
        job = requester.job(wrong)
        for jid, outcome in ((wrong, Outcome.PROVIDER_WRONG), (split, Outcome.SPLIT)):
            devnet.chain.send(devnet.chain.deployer, court.begin(jid))
            assert requester.download_result(jid, tmp_path / f"disputed-{jid}").status is JobStatus.DISPUTED
            devnet.chain.send(devnet.chain.deployer, court.settle(jid, outcome))
        settled = requester.settlement(wrong)
        assert settled is not None and settled.outcome is Outcome.PROVIDER_WRONG
        assert (settled.provider_payout, settled.requester_refund) == (0, job.reward + job.fee)
        dest = tmp_path / "wrong"
        with pytest.raises(ResultRuledWrong, match=r"ruled its result wrong \(outcome ProviderWrong.*refusing it \(nothing downloaded\)"):
            requester.fetch_result(wrong, dest)
        assert not dest.exists()
        forced = requester.download_result(wrong, dest, allow_ruled_wrong=True)
        assert (forced.outcome, forced.status) == (Outcome.PROVIDER_WRONG, JobStatus.RESOLVED)
        assert (dest / "answer.txt").read_text() == "42\n"
        fetched = requester.download_result(split, tmp_path / "split")
        assert fetched.outcome is Outcome.SPLIT and (tmp_path / "split" / "answer.txt").exists()
        paid = requester.settlement(split)
        assert paid is not None and paid.provider_payout >= job.reward and paid.requester_refund == 0


def test_tampered_archive_is_refused_and_nothing_extracted(devnet: Devnet, archive, tmp_path: Path) -> None:
    good = archive.path.read_bytes()
    files = {"/results/b": good}
    with serve(files) as base:
        requester, job_id = _submitted_job(devnet, archive.digest, f"{base}/results/b", files)
        files["/results/b"] = good.replace(b"42\n", b"43\n")  # same size, one byte changed
        dest = tmp_path / "fetched"
        with pytest.raises(ResultMismatch, match="does not give the provider's commitment"):
            requester.fetch_result(job_id, dest)
        assert not dest.exists()  # nothing extracted; the folder made for it removed
        files["/results/b"] = good
        with pytest.raises(ResultMismatch, match="does not give the provider's commitment"):
            requester.fetch_result(job_id, dest, salt=b"\x01" * 32)  # the wrong salt
        assert not dest.exists()  # nothing extracted; the folder made for it removed
        assert requester.fetch_result(job_id, dest) == dest
    assert (dest / "answer.txt").read_text() == "42\n"


def test_file_uri_and_unavailable_results(devnet: Devnet, archive, tmp_path: Path) -> None:
    requester, job_id = _submitted_job(devnet, archive.digest, archive.path.as_uri())
    assert requester.fetch_result(job_id, tmp_path / "a") == tmp_path / "a"
    assert (tmp_path / "a" / "answer.txt").exists()
    # gone from the server
    with serve({}) as base:
        requester2, missing = _submitted_job(devnet, archive.digest, f"{base}/results/gone")
        with pytest.raises(ResultUnavailable, match="HTTP 404"):
            requester2.fetch_result(missing, tmp_path / "b")
    # no manifest (no salt published) and none given: refused
    with serve({"/results/bare": archive.path.read_bytes()}) as base:
        requester3, bare = _submitted_job(devnet, archive.digest, f"{base}/results/bare")
        with pytest.raises(ResultMismatch, match="no salt"):
            requester3.fetch_result(bare, tmp_path / "e")
        assert requester3.fetch_result(bare, tmp_path / "e", salt=SALT) == tmp_path / "e"
    # not submitted yet
    open_job = requester.post_job(make_spec(101), reward=to_wei(1)).job_id
    with pytest.raises(ResultUnavailable, match="no result yet"):
        requester.fetch_result(open_job, tmp_path / "c")
    # a failure report has no result
    provider = devnet.client(devnet.new_account(1_000))
    provider.register(to_wei(200), "http://provider")
    provider.claim(open_job)
    provider.submit_failure(
        open_job, FailureCode.OUT_OF_MEMORY, commitment(provider.address, open_job, failure_digest(3), SALT)
    )
    with pytest.raises(ResultUnavailable, match="OUT_OF_MEMORY"):
        requester.fetch_result(open_job, tmp_path / "d")


def test_a_fifo_result_uri_is_refused_at_once(devnet: Devnet, tmp_path: Path) -> None:
    """On a local devnet the requester takes file:// result URIs. A provider that submitted the URI
    of a FIFO held `download_result` in open() past its deadline: now refused at once (not a
    regular file). The --out folder made for it is removed again; one that was there stays."""
    import os
    import threading

    fifo = tmp_path / "result.tar"
    os.mkfifo(fifo)
    requester, job_id = _submitted_job(devnet, b"\x01" * 32, fifo.as_uri())
    outcome: list[BaseException] = []
    kept = tmp_path / "kept"
    kept.mkdir()

    def fetch() -> None:
        for dest in (tmp_path / "got", kept):
            try:
                requester.download_result(job_id, dest, max_bytes=1 << 20)
            except Exception as exc:  # handed to the test
                outcome.append(exc)

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # let the blocked open() go
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert not worker.is_alive(), "download_result blocked on the provider's FIFO"
    assert len(outcome) == 2 and all(isinstance(exc, ResultUnavailable) for exc in outcome), outcome
    assert "not a regular file" in str(outcome[0])
    assert not (tmp_path / "got").exists() and kept.is_dir() and list(kept.iterdir()) == []


def test_an_unsafe_archive_is_one_client_error_and_nothing_is_extracted(devnet: Devnet, tmp_path: Path) -> None:
    """A result holding `ln -s /in/a /out/link` (its hash matches) raises ResultUnsafe, a
    ClientError, instead of tarfile's AbsoluteLinkError; nothing lands in the destination."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("fine\n")
    (out / "link").symlink_to("/in/a")
    archive = build_archive(out, 0, tmp_path / "unsafe.tar")
    files = {"/results/u": archive.path.read_bytes()}
    with serve(files) as base:
        requester, job_id = _submitted_job(devnet, archive.digest, f"{base}/results/u", files)
        dest = tmp_path / "fetched"
        with pytest.raises(ResultUnsafe, match="not safe to extract .*'/in/a', outside the result.*nothing extracted") as err:
            requester.fetch_result(job_id, dest)
    assert isinstance(err.value, ClientError)
    assert not dest.exists()  # nothing extracted; the folder made for it removed


@pytest.mark.parametrize("served", [b"", b"not a tar archive\n"], ids=["empty", "text"])
def test_a_result_that_is_no_archive_under_an_output_selector_is_a_mismatch(devnet: Devnet, tmp_path: Path, served: bytes) -> None:
    """With ``output.match`` the client digests the selected part of the archive; a provider
    serving bytes that are no tar archive at all (and committing to them) gets ResultMismatch, one
    client error (it was tarfile.ReadError, a traceback in ``depin job result``), and nothing is
    extracted."""
    spec = parse_spec({**json.loads(make_spec(100).to_bytes()), "output": {"match": ["answer.txt"]}})
    files = {"/results/n": served}
    with serve(files) as base:
        requester, job_id = _submitted_job(devnet, hashlib.sha256(served).digest(), f"{base}/results/n", files, spec=spec)
        dest = tmp_path / "fetched"
        with pytest.raises(ResultMismatch, match="not a depin-result-v1 archive .*output.match.*nothing extracted"):
            requester.fetch_result(job_id, dest)
    assert not dest.exists()  # nothing extracted; the folder made for it removed


def test_an_extraction_that_stops_half_way_leaves_nothing(devnet: Devnet, archive, tmp_path: Path) -> None:
    """An archive whose last member's name is longer than a file name may be (NAME_MAX, 255 bytes)
    passes the checks and makes the extraction fail after the members before it were written (the
    provider committed to those bytes, so the hash matches): they are removed again, so "nothing
    extracted" holds."""
    hostile = tmp_path / "long.tar"
    with tarfile.open(archive.path) as honest, tarfile.open(hostile, "w", format=tarfile.PAX_FORMAT) as tar:
        for member in honest.getmembers():
            tar.addfile(member, honest.extractfile(member) if member.isreg() else None)
        tar.addfile(tarfile.TarInfo("out/" + "n" * 300), io.BytesIO(b""))
    data = hostile.read_bytes()
    files = {"/results/c": data}
    with serve(files) as base:
        requester, job_id = _submitted_job(devnet, hashlib.sha256(data).digest(), f"{base}/results/c", files)
        dest = tmp_path / "fetched"
        with pytest.raises(ResultUnavailable, match="cannot be extracted.*nothing extracted"):
            requester.fetch_result(job_id, dest)
    assert not dest.exists()  # nothing extracted; the folder made for it removed


def test_a_compressed_archive_bomb_is_refused_and_nothing_is_written(devnet: Devnet, archive, tmp_path: Path) -> None:
    """A provider that commits to a bzip2 archive holding 64 MB of zeros (a few hundred bytes on
    the wire, far under the job's output cap) gets ResultUnsafe from the requester's client, and
    nothing is decompressed into the destination."""
    bomb = tmp_path / "bomb.tar.bz2"
    n = 64 * 2**20
    with tarfile.open(bomb, "w:bz2", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        with tarfile.open(archive.path) as honest:  # the honest archive's members, then the zeros
            for member in honest.getmembers():
                tar.addfile(member, honest.extractfile(member) if member.isreg() else None)
        zeros = tarfile.TarInfo("out/zeros")
        zeros.size = n
        with open("/dev/zero", "rb") as source:
            tar.addfile(zeros, source)
    assert bomb.stat().st_size < 2**16
    data = bomb.read_bytes()
    files = {"/results/b": data}
    with serve(files) as base:
        requester, job_id = _submitted_job(devnet, hashlib.sha256(data).digest(), f"{base}/results/b", files)
        dest = tmp_path / "fetched"
        with pytest.raises(ResultUnsafe, match="bzip2-compressed.*nothing extracted"):
            requester.fetch_result(job_id, dest)
    assert not dest.exists() or list(dest.iterdir()) == []


def test_a_sealed_delivery_opens_only_with_the_requesters_key(devnet: Devnet, archive, tmp_path: Path) -> None:
    """A result sealed to the requester (the spec's delivery.encrypt_to; executor.results seals it):
    anyone can check the bytes against the content address in the on-chain URI; only the requester's
    key opens them (and the sealed salt), and the opened archive is checked against the commitment."""
    requester_account = devnet.new_account(10)
    requester = devnet.client(requester_account)
    provider = devnet.client(devnet.new_account(1_000))
    provider.register(to_wei(200), "http://provider")
    job_id = requester.post_job(make_spec(102), reward=to_wei(1)).job_id  # sealed to the poster by default
    provider.claim(job_id)
    files: dict[str, bytes] = {}
    with serve(files) as base:
        name = "/results/" + publish(provider, job_id, archive, ResultStore(tmp_path / "store", base), files, tmp_path)

        check = devnet.client().check_delivery(job_id)  # read-only: no key needed to check the address
        assert "/results/" + check.sha256.hex() == name and check.encrypt_to == "0x" + public_key_of(bytes(requester_account.key)).hex()
        with pytest.raises(ResultSealed, match="not encrypted to this key"):
            devnet.client(devnet.new_account()).download_result(job_id, tmp_path / "thief")
        with pytest.raises(ResultSealed, match="requester's key"):
            devnet.client().download_result(job_id, tmp_path / "anon")
        fetched = requester.download_result(job_id, tmp_path / "mine")
        assert fetched.sealed and fetched.digest == archive.digest
        assert (tmp_path / "mine" / "answer.txt").read_text() == "42\n"

        tampered = bytearray(files[name])
        tampered[-1] ^= 1
        files[name] = bytes(tampered)
        with pytest.raises(ResultMismatch, match="altered or swapped"):
            devnet.client().check_delivery(job_id)
        with pytest.raises(ResultMismatch, match="altered or swapped"):
            requester.download_result(job_id, tmp_path / "tampered")
        assert not (tmp_path / "tampered").exists() or list((tmp_path / "tampered").iterdir()) == []


def test_a_result_on_the_requesters_own_network_is_fetched_only_when_allowed(devnet: Devnet, archive, tmp_path: Path) -> None:
    """The URI is the provider's: on a local devnet chain loopback is allowed (its providers serve
    there); with no network allowed, or on any other chain (a client of chain 11155111 over the
    same node), the loopback URI, a name resolving there, a redirect leading there and a file:// URI
    are refused before any connection, and nothing is extracted. --allow-network (allow_networks)
    lets a named network in."""
    from tests.executor.recording_server import RecordingServer

    data = archive.path.read_bytes()
    with RecordingServer("127.0.0.1") as server:
        requester, job_id = _submitted_job(devnet, archive.digest, f"{server.base}/results/a")
        server.routes["/results/a"] = (200, {}, data)
        server.routes["/results/a.json"] = (200, {}, json.dumps({"salt": "0x" + SALT.hex()}).encode())
        elsewhere = Client(requester.rpc, requester.deployment, chain_id=11_155_111)  # read-only: the chain id only decides
        for client, allow in ((requester, []), (elsewhere, None)):
            dest = tmp_path / f"refused-{allow}"
            with pytest.raises(ResultUnavailable, match="127.0.0.1 resolves to a loopback address"):
                client.download_result(job_id, dest, allow_networks=allow)
            assert not dest.exists()  # nothing extracted; the folder made for it removed
        with pytest.raises(ResultUnavailable, match="127.0.0.1 resolves to a loopback address"):
            elsewhere.check_delivery(job_id)  # the refusal, not "not a sealed delivery"
        assert server.connections == 0
        fetched = elsewhere.download_result(job_id, tmp_path / "allowed", allow_networks=["127.0.0.1/32"])
        assert fetched.digest == archive.digest and (tmp_path / "allowed" / "answer.txt").read_text() == "42\n"
        assert [r.path for r in server.requests] == ["/results/a", "/results/a.json"]
        with pytest.raises(ClientError, match="not networks in CIDR form"):
            requester.download_result(job_id, tmp_path / "bad", allow_networks=["10.0.0.1/8"])
    # a redirect from an allowed (public-standing) address into loopback
    with RecordingServer("127.0.0.1") as inner, RecordingServer("127.0.0.2") as outer:
        requester, job_id = _submitted_job(devnet, archive.digest, f"{outer.base}/results/b")
        outer.routes["/results/b"] = (302, {"Location": f"{inner.base}/results/b"}, b"")
        with pytest.raises(ResultUnavailable, match="127.0.0.1 resolves to a loopback address"):
            requester.download_result(job_id, tmp_path / "redirected", allow_networks=["127.0.0.2/32"])
        assert [r.path for r in outer.requests] == ["/results/b"] and inner.connections == 0
    # a file:// URI only on a local chain
    requester, job_id = _submitted_job(devnet, archive.digest, archive.path.as_uri())
    with pytest.raises(ResultUnavailable, match=r"unsupported URI scheme \(http, https\)"):
        Client(requester.rpc, requester.deployment, chain_id=11_155_111).download_result(job_id, tmp_path / "file")
    assert requester.download_result(job_id, tmp_path / "file-local").digest == archive.digest


def test_a_provider_trickling_its_result_is_cut_off(devnet: Devnet, archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server sending the archive a byte at a time, each within the read timeout, held `depin job
    result` for as long as it liked; the download is bounded by DOWNLOAD_TIMEOUT plus the size cap
    at DOWNLOAD_MIN_RATE (here 1 s and a rate that makes the cap's share nothing)."""
    from depin import client as client_module

    monkeypatch.setattr(client_module, "DOWNLOAD_TIMEOUT", 1.0)
    monkeypatch.setattr(client_module, "DOWNLOAD_MIN_RATE", 1 << 40)
    with trickle() as (base, hung_up):
        requester, job_id = _submitted_job(devnet, archive.digest, f"{base}/results/slow")
        dest = tmp_path / "slow"
        with pytest.raises(ResultUnavailable, match="took too long"):
            requester.download_result(job_id, dest)
        assert not dest.exists()  # nothing extracted; the folder made for it removed
        assert hung_up.wait(30), "the client kept the connection open"


@pytest.mark.parametrize("length", [31, 33])
def test_a_sealed_salt_that_is_not_32_bytes_is_refused(devnet: Devnet, archive, tmp_path: Path, length: int) -> None:
    """A commitment's salt is a bytes32 (keccak256(abi.encode(provider, jobId, digest, salt))).
    A provider that seals a salt of another length and commits to keccak256 of the same bytes
    packed with it had its result accepted as matching the commitment, though no reveal on chain
    can ever show that salt. The requester refuses it (ResultMismatch naming the length), nothing
    extracted."""
    from depin.delivery import seal_bytes, seal_file

    requester_account = devnet.new_account(10)
    requester = devnet.client(requester_account)
    mine = public_key_of(bytes(requester_account.key))
    provider = devnet.client(devnet.new_account(1_000))
    provider.register(to_wei(200), "http://provider")
    job_id = requester.post_job(make_spec(108), reward=to_wei(1)).job_id  # sealed to the poster
    provider.claim(job_id)
    salt = bytes(range(length))
    packed = bytes.fromhex(provider.address[2:]).rjust(32, b"\0") + job_id.to_bytes(32, "big") + archive.digest + salt
    sealed = tmp_path / "sealed"
    name = seal_file(mine, archive.path, sealed).hex()
    files: dict[str, bytes] = {}
    with serve(files) as base:
        uri = f"{base}/results/{name}"
        provider.submit_result(job_id, keccak(packed), uri)
        files[f"/results/{name}"] = sealed.read_bytes()
        files[f"/results/{name}.json"] = json.dumps({
            "job": job_id, "party": provider.address, "sha256": "0x" + name, "encrypt_to": "0x" + mine.hex(),
            "salt_sealed": "0x" + seal_bytes(mine, salt).hex(),
        }).encode()
        with pytest.raises(ResultMismatch, match=f"salt .*{length} bytes.*32.*nothing extracted"):
            requester.download_result(job_id, tmp_path / "mine")
    assert not (tmp_path / "mine").exists()


def test_a_manifest_salt_that_is_not_32_bytes_is_named_as_such(devnet: Devnet, archive, tmp_path: Path) -> None:
    """A plaintext delivery whose manifest's salt is 31 bytes is refused saying so (it said there was
    no manifest), and a salt given to download_result must be 32 bytes (ClientError), nothing extracted."""
    files: dict[str, bytes] = {}
    with serve(files) as base:
        uri = f"{base}/results/short"
        files["/results/short"] = archive.path.read_bytes()
        requester, job_id = _submitted_job(devnet, archive.digest, uri, files, salt=SALT[:31])
        with pytest.raises(ResultMismatch, match=r"manifest at .*short\.json holds no 32-byte salt"):
            requester.download_result(job_id, tmp_path / "mine")
        with pytest.raises(ClientError, match="salt must be 32 bytes, not 31"):
            requester.download_result(job_id, tmp_path / "given", salt=SALT[:31])
    assert not (tmp_path / "mine").exists() and not (tmp_path / "given").exists()


def test_entries_outside_the_output_selection_are_extracted_and_counted(devnet: Devnet, archive, tmp_path: Path) -> None:
    """Under ``output.match`` the provider's commitment (and a verifier's run) covers only the
    selected entries; the rest of the archive is extracted as the provider delivered it. The
    client counts them (FetchedResult.outside_match: ``sub`` and ``sub/data.bin`` of 3 entries,
    only ``answer.txt`` selected) and `depin job result` says so in one note; a job without a
    selector has none."""
    from depin.outputs import match_digest

    from .test_cli import net, ok

    spec = parse_spec({**json.loads(make_spec(109).to_bytes()), "output": {"match": ["answer.txt"]}})
    files: dict[str, bytes] = {"/results/m": archive.path.read_bytes(), "/results/p": archive.path.read_bytes()}
    with serve(files) as base:
        requester, job_id = _submitted_job(devnet, match_digest(archive.path, ["answer.txt"]), f"{base}/results/m", files, spec=spec)
        fetched = requester.download_result(job_id, tmp_path / "sdk")
        assert (fetched.outside_match, fetched.entries) == (2, 3)
        assert (tmp_path / "sdk" / "sub" / "data.bin").read_bytes() == bytes(range(256))  # extracted all the same
        result = ok("job", "result", job_id, "--out", tmp_path / "cli", *net(devnet))
        notes = [line for line in result.stderr.splitlines() if "output.match" in line]
        assert len(notes) == 1 and notes[0].startswith("note: 2 of the result's 3 entries lie outside"), result.stderr
        assert "extracted" in notes[0] and len(result.stdout.strip().splitlines()) == 1
        assert (tmp_path / "cli" / "sub" / "data.bin").exists()
        plain_requester, plain_job = _submitted_job(devnet, archive.digest, f"{base}/results/p", files)
        assert plain_requester.download_result(plain_job, tmp_path / "plain").outside_match == 0
        result = ok("job", "result", plain_job, "--out", tmp_path / "cli-plain", *net(devnet))
        assert "output.match" not in result.stderr
