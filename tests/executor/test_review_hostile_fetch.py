"""Review (hostile bytes): defects found by an adversarial review of the fetchers, reproduced on real
components; kept as regression tests once fixed (a test still marked ``xfail(strict=True)`` is not).

Fixed (1.): a redirect's Location is taken out of httpx unparsed (``depin.fetch.stop_at_redirect``,
a response hook) and read strictly by ``depin.fetch.parse_url`` (a malformed IDNA host, an
absolute-form URL without a host: refused, not retried); whatever else httpx may raise for a
server's answer (``depin.fetch.UNREADABLE_ANSWER_ERRORS``) ends a fetch as FetchError /
InputUnavailable; and a juror's delivery check that ends without a verdict is "not delivered".
Fixed (2.): an address of the host's own (``depin.addresses.local_networks``, read from the
kernel's tables at every check) is refused like a private one, unless the operator allows it.

1. A redirect whose Location is a malformed internationalised host name (``http://xn--/``,
   ``http://xn--zz-.com/``) makes httpx raise ``idna.IDNAError`` while it *builds* the redirect
   request, even with ``follow_redirects=False`` (httpx.Client._send_handling_redirects calls
   _build_redirect_request before returning). IDNAError is a UnicodeError/ValueError, neither an
   ``httpx.HTTPError`` nor ``httpx.InvalidURL``, so it escapes every fetcher:

   - executor/inputs.py ``_get_pinned`` (catches InvalidURL and HTTPError only): out of
     ``fetch_inputs`` and ``execute`` into ``provider.run_job``'s ``except Exception`` (a crash:
     the job is given up, never submitted, and times out in the honest provider's hands, its
     collateral slashed). Any requester with a public web server can do it for the price of a post.
   - depin/fetch.py ``_pinned_chunks`` / ``_http_chunks`` (catch HTTPError only; so does
     ``httpx.InvalidURL``, which httpx raises for a Location such as ``http:b``): out of
     ``download_and_hash``; in ``delivery_check._check_once`` the archive download catches only
     FetchError, so the juror's child process exits 1 and ``check_delivered_bounded`` raises
     RuntimeError out of ``verifier.run_seat``: the seat is never committed (an honest juror is
     a no-show, its bond lost), for every juror of the case alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from depin.addresses import parse_networks, public_resolver
from depin.delivery_check import check_delivered
from depin.fetch import FetchError, download_and_hash
from depin.market import FailureCode
from depin.spec import InputSpec, JobSpec
from executor.containers import LABEL_EXECUTOR, container_name
from executor.execute import execute
from executor.inputs import InputUnavailable, fetch_input
from executor.verifier import check_delivered_bounded

from .recording_server import RecordingServer

BAD_IDN = ["http://xn--/", "http://xn--zz-.com/x"]  # httpx.URL() raises idna.IDNAError for both
# and what httpx.Client raises httpx.InvalidURL for (not an httpx.HTTPError either), building a redirect
BAD_LOCATIONS = [BAD_IDN[0], "http:b"]
PARTY = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
JOB = 7
ALLOWED = ["127.0.0.2/32"]  # 127.0.0.2 stands for the hostile party's public server


def _item(uri: str) -> InputSpec:
    return InputSpec(path="data", uri=uri, sha256="ab" * 32)


@pytest.mark.parametrize("location", BAD_IDN)
def test_an_input_redirected_to_a_malformed_idn_host_is_unavailable_not_a_crash(tmp_path: Path, location: str) -> None:
    with RecordingServer("127.0.0.2", {"/in": (302, {"Location": location}, b"")}) as hostile, \
            pytest.raises(InputUnavailable, match="a redirect") as info:
        fetch_input(_item(hostile.base + "/in"), tmp_path, allow_networks=ALLOWED)
    assert info.value.retryable is False


def test_execute_reports_an_input_redirected_to_a_malformed_idn_as_an_input_failure(
    engine, sample_images, work_root, result_store, executor_instance
) -> None:
    """What provider.run_job calls: it must get an outcome (a no-fault input failure to submit),
    not an exception, which run_job takes for a crash and gives the job up (executor/provider.py,
    ``except Exception`` → give_up): no submission, a TimedOut job, the collateral slashed."""
    with RecordingServer("127.0.0.2", {"/in": (302, {"Location": BAD_IDN[0]}, b"")}) as hostile:
        spec = JobSpec.model_validate({
            "image": sample_images["busybox"], "command": ["sh", "-c", "echo ran > /out/ran"],
            "inputs": [{"path": "data", "uri": hostile.base + "/in", "sha256": "ab" * 32}],
            "resources": {"cpus": 1, "memory_mb": 16, "max_runtime": 5},
        })
        outcome = execute(
            engine, job_id=9101, spec=spec, work_root=work_root, store=result_store, name=container_name(31337, 9101, "provider"),
            labels={LABEL_EXECUTOR: executor_instance}, input_allow_networks=ALLOWED,
        )
    assert (outcome.kind, outcome.code) == ("failure", FailureCode.INPUT_HASH_MISMATCH)


@pytest.mark.parametrize("location", BAD_LOCATIONS)
@pytest.mark.parametrize("pinned", [True, False], ids=["resolver", "plain"])
def test_a_download_redirected_to_a_malformed_idn_host_is_a_fetch_error(pinned: bool, location: str) -> None:
    """download_and_hash promises FetchError for anything a server does (the requester's
    `depin job result` turns that into one error line; a juror into a verdict)."""
    resolver = public_resolver(parse_networks(ALLOWED)) if pinned else None
    with RecordingServer("127.0.0.2", {"/r": (302, {"Location": location}, b"")}) as hostile, pytest.raises(FetchError):
        download_and_hash(hostile.base + "/r", max_bytes=1 << 20, resolver=resolver)


def _manifest() -> bytes:
    return json.dumps({"salt": "0x" + "11" * 32}).encode()


@pytest.mark.parametrize("location", BAD_LOCATIONS)
def test_the_delivery_check_gives_a_verdict_for_an_archive_redirected_to_a_malformed_idn(location: str) -> None:
    routes = {"/r/x.json": (200, {}, _manifest()), "/r/x": (302, {"Location": location}, b"")}
    with RecordingServer("127.0.0.2", routes) as hostile:  # type: ignore[arg-type]
        verdict = check_delivered(f"{hostile.base}/r/x", provider=PARTY, job_id=JOB, commitment=bytes(32), match=None, encrypt_to=None,
                                  max_bytes=1 << 20, timeout=5.0, resolver=public_resolver(parse_networks(ALLOWED)))
    assert not verdict.delivered


@pytest.mark.parametrize("location", BAD_LOCATIONS)
def test_a_jurors_bounded_check_gives_a_verdict_for_an_archive_redirected_to_a_malformed_idn(location: str) -> None:
    """What a juror runs (verifier.check_provider_delivery); a RuntimeError here leaves run_seat
    without a journaled digest, so the juror never commits and forfeits its bond."""
    routes = {"/r/x.json": (200, {}, _manifest()), "/r/x": (302, {"Location": location}, b"")}
    with RecordingServer("127.0.0.2", routes) as hostile:  # type: ignore[arg-type]
        verdict = check_delivered_bounded(
            f"{hostile.base}/r/x", provider=PARTY, job_id=JOB, commitment=bytes(32), match=None, encrypt_to=None, max_bytes=1 << 20,
            timeout=5.0, wait=0.0, total_timeout=10.0, allow_networks=ALLOWED,
        )
        assert [r.path for r in hostile.requests] == ["/r/x.json", "/r/x"]
    assert not verdict.delivered


def test_the_requesters_download_of_a_result_redirected_to_a_malformed_url_is_result_unavailable(tmp_path: Path) -> None:
    """What `depin job result` calls (Client.download_result's source): one ResultUnavailable (one
    error line), never an idna.IDNAError traceback."""
    from depin.client import ResultUnavailable, _ResultSource

    source = _ResultSource(public_resolver(parse_networks(ALLOWED)), ("http", "https"))
    for location in BAD_LOCATIONS:
        with RecordingServer("127.0.0.2", {"/r": (302, {"Location": location}, b"")}) as hostile, \
                pytest.raises(ResultUnavailable, match="not a valid http"):
            source.download(hostile.base + "/r", tmp_path / "a", 1 << 20)


@pytest.mark.parametrize(
    ("location", "valid"),
    [("http://xn--/", False), ("http://xn--zz-.com/x", False), ("http:b", False), ("http:/b", False), ("/b", True),
     ("b", True), ("//other.example/b", True), ("https://other.example/b?q", True), ("http://bücher.example/", True)],
)
def test_parse_url_reads_a_location_strictly(location: str, valid: bool) -> None:
    from depin.fetch import parse_url

    base = httpx.URL("http://127.0.0.2:8080/r/x")
    if valid:
        assert parse_url(location, base).raw_host
    else:
        with pytest.raises((httpx.InvalidURL, ValueError)):
            parse_url(location, base)


def test_a_delivery_check_child_that_stops_on_an_unexpected_error_gives_not_delivered() -> None:
    """An exception the check does not expect (here a malformed allowed network in the request)
    is a verdict of the child's, "not delivered", not an exit without one."""
    verdict = check_delivered_bounded(
        "http://127.0.0.2:9/r/x", provider=PARTY, job_id=JOB, commitment=bytes(32), match=None, encrypt_to=None, max_bytes=1 << 20,
        timeout=5.0, wait=0.0, total_timeout=10.0, allow_networks=["not-a-network"],
    )
    assert not verdict.delivered
    assert "unexpected error" in verdict.reason


@pytest.mark.parametrize(("returncode", "stdout"), [(1, ""), (-9, ""), (0, "not json"), (0, '{"surprise": 1}')])
def test_a_delivery_check_child_that_ends_without_a_verdict_is_not_delivered(
    monkeypatch: pytest.MonkeyPatch, returncode: int, stdout: str
) -> None:
    """A child killed (the kernel's OOM killer, its memory limit) or crashed before it wrote a
    verdict: a stopped check, "not delivered", never a RuntimeError out of run_seat (the seat left
    uncommitted, the juror's bond lost)."""
    import subprocess

    from executor import verifier

    def ended(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess([], returncode, stdout=stdout, stderr="Traceback: ...")

    monkeypatch.setattr(verifier.subprocess, "run", ended)
    verdict = check_delivered_bounded(
        "http://127.0.0.2:9/r/x", provider=PARTY, job_id=JOB, commitment=bytes(32), match=None, encrypt_to=None, max_bytes=1 << 20,
        timeout=5.0, wait=0.0, total_timeout=10.0, allow_networks=ALLOWED,
    )
    assert not verdict.delivered
    assert "without a verdict" in verdict.reason


def test_the_input_fetcher_already_takes_httpx_invalid_url_for_a_bad_redirect(tmp_path: Path) -> None:
    """executor/inputs.py catches httpx.InvalidURL (not IDNAError): what depin/fetch.py lacks."""
    with RecordingServer("127.0.0.2", {"/in": (302, {"Location": "http:b"}, b"")}) as hostile, \
            pytest.raises(InputUnavailable, match="a redirect"):
        fetch_input(_item(hostile.base + "/in"), tmp_path, allow_networks=ALLOWED)


def test_httpx_raises_idna_error_building_a_redirect_it_does_not_follow() -> None:
    """The root cause, pinned so that a fix can tell when an httpx upgrade changes it."""
    with (
        RecordingServer("127.0.0.2", {"/r": (302, {"Location": BAD_IDN[0]}, b"")}) as hostile,
        httpx.Client(follow_redirects=False, trust_env=False) as client,
        pytest.raises(UnicodeError),
    ):
        client.get(hostile.base + "/r")


# --- 2. the provider's own public address ------------------------------------------------------

_OWN_ADDRESS_SCRIPT = """
import hashlib, http.server, pathlib, sys, tempfile, threading
from depin.spec import InputSpec
from executor.inputs import InputUnavailable, fetch_input
SECRET = b"an admin page bound to every interface\\n"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", str(len(SECRET))); self.end_headers(); self.wfile.write(SECRET)
    def log_message(self, *a): pass
server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
uri = f"http://{sys.argv[1]}:{server.server_address[1]}/admin"
try:
    fetch_input(InputSpec(path="x", uri=uri, sha256=hashlib.sha256(SECRET).hexdigest()), pathlib.Path(tempfile.mkdtemp()))
    print("fetched")
except InputUnavailable as exc:
    print("refused" if "non-public" in str(exc) else f"other: {exc}")
"""


def test_an_input_at_the_providers_own_public_address_is_refused() -> None:
    """In a network namespace of its own (so nothing else on this machine is touched), the host
    holds the public address 8.8.4.4 (as a bare-metal provider holds its own) and a service binds
    0.0.0.0 (an admin page, a metrics or RPC port, a Redis without protected mode): an input URL
    naming that address passes every check of depin/addresses.py (the address is public) and
    the fetch reaches the service on this very machine. depin/addresses.py never asks whether an
    address is one of the host's own (its interfaces'), so ``[policy]`` has no way to say so either."""
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip")
    script = "ip link set lo up && ip addr add 8.8.4.4/32 dev lo && exec \"$0\" -c \"$1\" 8.8.4.4"
    proc = subprocess.run(["unshare", "-n", "sh", "-c", script, sys.executable, _OWN_ADDRESS_SCRIPT],
                          capture_output=True, text=True, timeout=60, env={**os.environ}, check=False)
    if proc.returncode != 0 and "unshare" in proc.stderr:
        pytest.skip(f"no network namespace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert proc.stdout.strip() == "refused", proc.stdout
