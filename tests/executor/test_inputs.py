"""Input fetching: every scheme, the sha256 check before anything runs, caps and the two error kinds
(a provable hash mismatch vs an input that could not be fetched)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest

from depin.market import FailureCode
from depin.spec import InputSpec, JobSpec
from executor.containers import LABEL_EXECUTOR, container_name
from executor.execute import execute
from executor.inputs import InputHashMismatch, InputUnavailable, fetch_input, fetch_inputs
from tests.indexer.services import wait_for

from .recording_server import RecordingServer

# the test server listens on the loopback interface, which the fetcher refuses unless allowed
LOCAL = ["127.0.0.1/32"]
DATA = b"the quick brown fox\n" * 100
SHA = hashlib.sha256(DATA).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):
            pass  # the fetcher hung up at its size cap, as the tests want: no traceback on stderr

    def do_GET(self) -> None:
        if self.path == "/data":
            body = DATA
        elif self.path == "/big":
            body = b"x" * 300_000
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/data")
            self.end_headers()
            return
        elif self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
            return
        elif self.path == "/fail":
            self.send_response(503)
            self.end_headers()
            return
        elif self.path == "/chunked-big":  # no Content-Length: the cap must cut the stream
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(40):
                chunk = b"y" * 65536
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def item(uri: str, sha: str = SHA, path: str = "data") -> InputSpec:
    return InputSpec(path=path, uri=uri, sha256=sha)


def test_http_input_is_fetched_and_checked(tmp_path, http_base):
    got = fetch_input(item(f"{http_base}/data"), tmp_path, allow_networks=LOCAL)
    assert got.path.read_bytes() == DATA and got.sha256 == SHA and got.size == len(DATA)
    assert oct(got.path.stat().st_mode & 0o777) == "0o644"
    assert fetch_input(item(f"{http_base}/redirect"), tmp_path, allow_networks=LOCAL).path.read_bytes() == DATA


def test_hash_mismatch_is_provable_and_leaves_nothing(tmp_path, http_base):
    with pytest.raises(InputHashMismatch) as info:
        fetch_input(item(f"{http_base}/data", sha="ab" * 32), tmp_path, allow_networks=LOCAL)
    assert info.value.expected == "ab" * 32 and info.value.actual == SHA
    assert info.value.retryable is False and info.value.code == FailureCode.INPUT_HASH_MISMATCH
    # the reason may leave the machine: it says "mismatch" and the spec's hash, never the real one
    assert "sha256 mismatch" in str(info.value) and "the spec says " + "ab" * 32 in str(info.value)
    assert SHA not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("path", "retryable"),
    [("/missing", False), ("/fail", True), ("/loop", False)],
)
def test_http_errors_are_unavailable(tmp_path, http_base, path, retryable):
    with pytest.raises(InputUnavailable) as info:
        fetch_input(item(f"{http_base}{path}"), tmp_path, allow_networks=LOCAL)
    assert info.value.retryable is retryable
    # the server's status is not told back (the URL's own digits aside: the port is random, and
    # 44503 once made this fail)
    told = str(info.value).replace(http_base, "<server>")
    assert "<server>" in told and "404" not in told and "503" not in told
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_is_retryable(tmp_path):
    with pytest.raises(InputUnavailable) as info:
        fetch_input(item("http://127.0.0.1:9/data"), tmp_path, timeout=2, allow_networks=LOCAL)
    assert info.value.retryable is True


@pytest.mark.parametrize("path", ["/big", "/chunked-big"])
def test_size_cap_cuts_the_download(tmp_path, http_base, path):
    with pytest.raises(InputUnavailable, match="input cap") as info:
        fetch_input(item(f"{http_base}{path}"), tmp_path, budget=100_000, allow_networks=LOCAL)
    assert info.value.retryable is False
    assert list(tmp_path.iterdir()) == []


def test_data_uris(tmp_path):
    b64 = "data:;base64," + base64.b64encode(DATA).decode()
    assert fetch_input(item(b64), tmp_path).path.read_bytes() == DATA
    text = b"a b,c%"
    got = fetch_input(item("data:text/plain,a%20b%2Cc%25", sha=hashlib.sha256(text).hexdigest(), path="t"), tmp_path)
    assert got.path.read_bytes() == text
    with pytest.raises(InputUnavailable, match="malformed"):
        fetch_input(item("data:;base64,@@@@", path="bad"), tmp_path)


def test_file_uris_only_below_an_allowed_root(tmp_path, monkeypatch):
    src = tmp_path / "allowed"
    src.mkdir()
    (src / "f").write_bytes(DATA)
    dest = tmp_path / "in"
    dest.mkdir()
    assert fetch_input(item(f"file://{src}/f"), dest, file_roots=[src]).path.read_bytes() == DATA
    monkeypatch.delenv("DEPIN_INPUT_FILE_ROOTS", raising=False)
    with pytest.raises(InputUnavailable, match="outside the allowed file roots"):
        fetch_input(item(f"file://{src}/f"), dest)
    with pytest.raises(InputUnavailable, match="outside"):
        fetch_input(item("file:///etc/passwd"), dest, file_roots=[src])
    with pytest.raises(InputUnavailable, match="outside"):
        fetch_input(item(f"file://{src}/../../../etc/passwd"), dest, file_roots=[src])
    monkeypatch.setenv("DEPIN_INPUT_FILE_ROOTS", str(src))
    assert fetch_input(item(f"file://{src}/f", path="g"), dest).size == len(DATA)


def test_fetch_inputs_caps_the_total(tmp_path):
    b64 = "data:;base64," + base64.b64encode(DATA).decode()
    spec = JobSpec.model_validate(
        {
            "image": "depin/busybox@sha256:" + "0" * 64,
            "command": ["true"],
            "inputs": [{"path": p, "uri": b64, "sha256": SHA} for p in ("a", "b", "c")],
            "resources": {"cpus": 1, "memory_mb": 16, "max_runtime": 1},
        }
    )
    assert [f.path.name for f in fetch_inputs(spec, tmp_path / "in")] == ["a", "b", "c"]
    assert oct((tmp_path / "in").stat().st_mode & 0o777) == "0o755"
    with pytest.raises(InputUnavailable, match="input cap"):
        fetch_inputs(spec, tmp_path / "in2", max_bytes=len(DATA) * 2 + 10)


# --- through execute(): checked before the container starts -------------------------------------


def _spec(images: dict[str, str], uri: str, sha: str) -> JobSpec:
    return JobSpec.model_validate(
        {
            "image": images["busybox"],
            "command": ["sh", "-c", "echo ran > /out/ran"],
            "inputs": [{"path": "data", "uri": uri, "sha256": sha}],
            "resources": {"cpus": 1, "memory_mb": 16, "max_runtime": 5},
        }
    )


def test_execute_input_hash_mismatch_never_starts_the_job(engine, sample_images, work_root, result_store, executor_instance, http_base):
    spec = _spec(sample_images, f"{http_base}/data", "cd" * 32)
    name = container_name(31337, 9001, "provider")
    outcome = execute(engine, job_id=9001, spec=spec, work_root=work_root, store=result_store, name=name, labels={LABEL_EXECUTOR: executor_instance},
                      input_allow_networks=LOCAL)
    assert (outcome.kind, outcome.code, outcome.retryable) == ("failure", FailureCode.INPUT_HASH_MISMATCH, False)
    assert "the spec says " + "cd" * 32 in outcome.reason and SHA not in outcome.evidence
    assert outcome.durations.run == 0
    assert "job: 9001\ncode: INPUT_HASH_MISMATCH" in outcome.evidence
    assert outcome.evidence_hash == hashlib.sha256(outcome.evidence.encode()).digest()
    assert list(work_root.iterdir()) == []


def test_execute_unreachable_input_is_a_retryable_failure(engine, sample_images, work_root, result_store, executor_instance):
    spec = _spec(sample_images, "http://127.0.0.1:9/data", SHA)
    outcome = execute(
        engine, job_id=9002, spec=spec, work_root=work_root, store=result_store, name=container_name(31337, 9002, "provider"),
        labels={LABEL_EXECUTOR: executor_instance}, input_timeout=2, input_allow_networks=LOCAL,
    )
    assert (outcome.kind, outcome.code, outcome.retryable) == ("failure", FailureCode.INPUT_HASH_MISMATCH, True)
    assert outcome.reason.startswith("unavailable:")


def test_execute_good_input_runs(engine, sample_images, work_root, result_store, executor_instance, http_base):
    spec = _spec(sample_images, f"{http_base}/data", SHA)
    outcome = execute(
        engine, job_id=9003, spec=spec, work_root=work_root, store=result_store, name=container_name(31337, 9003, "provider"),
        labels={LABEL_EXECUTOR: executor_instance}, input_allow_networks=LOCAL,
    )
    assert outcome.kind == "result" and outcome.exit_code == 0, outcome
    assert os.path.getsize(result_store.path(outcome.name)) == outcome.size


# --- the provider's own network is out of reach ------------------------------------------------

SECRET = b"admin-config: token=hunter2\n"
SECRET_SHA = hashlib.sha256(SECRET).hexdigest()


@pytest.fixture
def internal() -> Iterator[RecordingServer]:
    """A service listening only on the loopback interface, as an admin API on a provider would."""
    with RecordingServer("127.0.0.1", {"/admin/config?token=1": (200, {"X-Internal": "yes"}, SECRET)}) as server:
        yield server


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "2130706433", "0x7f.1", "017700000001", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "0.0.0.0", "0", "[::]"],
)
def test_loopback_in_any_spelling_is_refused_before_connecting(tmp_path, internal, host):
    with pytest.raises(InputUnavailable, match="non-public address") as info:
        fetch_input(item(f"http://{host}:{internal.port}/admin/config?token=1", sha=SECRET_SHA), tmp_path)
    assert info.value.retryable is False
    assert internal.connections == 0 and internal.requests == []
    assert list(tmp_path.iterdir()) == []


def test_a_url_the_http_client_cannot_parse_is_refused(tmp_path, internal):
    with pytest.raises(InputUnavailable, match="not a valid http"):
        fetch_input(item(f"http://0177.0.0.1:{internal.port}/admin/config?token=1", sha=SECRET_SHA), tmp_path)
    assert internal.connections == 0


@pytest.mark.parametrize("uri", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://100.64.0.1/",
                                 "http://10.0.0.1/", "https://192.168.0.1/", "http://[fd00::2]/", "http://[::1]:9/"])
def test_metadata_private_and_link_local_addresses_are_refused(tmp_path, uri):
    with pytest.raises(InputUnavailable, match="non-public address") as info:
        fetch_input(item(uri), tmp_path, timeout=2)
    assert info.value.retryable is False


def test_the_allow_list_admits_an_internal_source_and_keeps_the_host_header(tmp_path, internal):
    url = f"http://localhost:{internal.port}/admin/config?token=1"
    got = fetch_input(item(url, sha=SECRET_SHA), tmp_path, allow_networks=["127.0.0.0/8", "::1/128"])
    assert got.path.read_bytes() == SECRET
    assert [r.host for r in internal.requests] == [f"localhost:{internal.port}"]  # the name, though the connection went to the IP


def test_a_redirect_from_an_allowed_host_to_the_loopback_is_refused(tmp_path, internal):
    target = f"http://127.0.0.1:{internal.port}/admin/config?token=1"
    routes = {"/in": (302, {"Location": target}, b""), "/in-relative-host": (301, {"Location": f"//localhost:{internal.port}/admin/config?token=1"}, b"")}
    with RecordingServer("127.0.0.2", routes) as allowed:
        for path in routes:
            with pytest.raises(InputUnavailable, match="a redirect from .* leads to a non-public address") as info:
                fetch_input(item(allowed.base + path, sha=SECRET_SHA), tmp_path, allow_networks=["127.0.0.2/32"])
            assert str(internal.port) not in str(info.value) and "admin" not in str(info.value)  # where it pointed stays here
        assert [r.path for r in allowed.requests] == list(routes)
    assert internal.connections == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://example.org/x", "gopher://127.0.0.1:70/", "data:,x"])
def test_a_redirect_to_another_scheme_is_refused(tmp_path, location):
    with RecordingServer("127.0.0.2", {"/in": (302, {"Location": location}, b"")}) as allowed:  # noqa: SIM117 - the second server must start after the first
        with pytest.raises(InputUnavailable, match="a redirect") as info:
            fetch_input(item(allowed.base + "/in"), tmp_path, allow_networks=["127.0.0.2/32"])
    assert location not in str(info.value)


def test_redirects_are_capped(tmp_path):
    routes = {f"/{i}": (302, {"Location": f"/{i + 1}"}, b"") for i in range(5)}
    routes["/5"] = (200, {}, DATA)
    with RecordingServer("127.0.0.2", routes) as allowed:
        assert fetch_input(item(allowed.base + "/2"), tmp_path, allow_networks=["127.0.0.2/32"]).size == len(DATA)  # 3 redirects
        with pytest.raises(InputUnavailable, match="more than 3 redirects"):
            fetch_input(item(allowed.base + "/1"), tmp_path, allow_networks=["127.0.0.2/32"])  # 4
        assert [r.path for r in allowed.requests] == ["/2", "/3", "/4", "/5", "/1", "/2", "/3", "/4"]


def test_no_proxy_is_taken_from_the_environment(tmp_path, monkeypatch):
    with RecordingServer("127.0.0.2", {"/data": (200, {}, DATA)}) as allowed, RecordingServer("127.0.0.3") as proxy:
        for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(var, proxy.base)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert fetch_input(item(allowed.base + "/data"), tmp_path, allow_networks=["127.0.0.2/32"]).size == len(DATA)
        assert proxy.connections == 0 and len(allowed.requests) == 1


def test_a_wrong_sha256_from_an_allowed_source_says_mismatch_but_not_the_real_hash(tmp_path, internal):
    url = f"http://127.0.0.1:{internal.port}/admin/config?token=1"
    with pytest.raises(InputHashMismatch) as info:
        fetch_input(item(url, sha="ee" * 32), tmp_path, allow_networks=["127.0.0.1/32"])
    assert "sha256 mismatch" in str(info.value)
    assert SECRET_SHA not in str(info.value) and "hunter2" not in str(info.value) and "X-Internal" not in str(info.value)


def test_what_a_server_answered_is_logged_locally_at_debug_only(tmp_path, internal, caplog):
    url = f"http://127.0.0.1:{internal.port}"
    with caplog.at_level(logging.DEBUG, logger="executor.inputs"):
        with pytest.raises(InputHashMismatch):
            fetch_input(item(f"{url}/admin/config?token=1", sha="ee" * 32), tmp_path, allow_networks=["127.0.0.1/32"])
        with pytest.raises(InputUnavailable) as info:
            fetch_input(item(f"{url}/missing"), tmp_path, allow_networks=["127.0.0.1/32"])
    # the status stays out of the message (the server's port is random and may contain "404")
    assert "404" not in str(info.value).replace(url, "<url>")
    debug = {r.getMessage(): r for r in caplog.records if r.levelno == logging.DEBUG}
    assert debug["input sha256 mismatch"].actual == SECRET_SHA  # type: ignore[attr-defined]
    assert debug["input answered an HTTP error"].status == 404  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG]


# --- input names: the fetcher's staging cannot collide with any ----------------------------------


def test_inputs_named_x_and_x_partial_both_arrive_intact(tmp_path):
    other = b"the partial one\n"
    spec = JobSpec.model_validate(
        {
            "image": "depin/busybox@sha256:" + "0" * 64,
            "command": ["true"],
            "inputs": [
                {"path": "X", "uri": "data:;base64," + base64.b64encode(DATA).decode(), "sha256": SHA},
                {"path": "X.partial", "uri": "data:;base64," + base64.b64encode(other).decode(), "sha256": hashlib.sha256(other).hexdigest()},
                {"path": "X.partial.partial", "uri": "data:,3", "sha256": hashlib.sha256(b"3").hexdigest()},
            ],
            "resources": {"cpus": 1, "memory_mb": 16, "max_runtime": 1},
        }
    )
    fetch_inputs(spec, tmp_path / "in")
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["X", "X.partial", "X.partial.partial"]  # no staging left
    assert (tmp_path / "in" / "X").read_bytes() == DATA
    assert (tmp_path / "in" / "X.partial").read_bytes() == other
    assert (tmp_path / "in" / "X.partial.partial").read_bytes() == b"3"
    with pytest.raises(ValueError, match="plain file name"):  # the staging folder's kind of name is no input name
        InputSpec(path=".fetch-abc", uri="data:,3", sha256=hashlib.sha256(b"3").hexdigest())


def test_execute_job_sees_x_and_x_partial(engine, sample_images, work_root, result_store, executor_instance, tmp_path):
    from depin.outputs import extract_archive

    other = b"the partial one\n"
    spec = JobSpec.model_validate(
        {
            "image": sample_images["busybox"],
            "command": ["sh", "-c", "ls -a /in > /out/ls && cat /in/X /in/X.partial > /out/both"],
            "inputs": [
                {"path": "X", "uri": "data:;base64," + base64.b64encode(DATA).decode(), "sha256": SHA},
                {"path": "X.partial", "uri": "data:;base64," + base64.b64encode(other).decode(), "sha256": hashlib.sha256(other).hexdigest()},
            ],
            "resources": {"cpus": 1, "memory_mb": 16, "max_runtime": 5},
        }
    )
    outcome = execute(
        engine, job_id=9004, spec=spec, work_root=work_root, store=result_store, name=container_name(31337, 9004, "provider"),
        labels={LABEL_EXECUTOR: executor_instance},
    )
    assert outcome.kind == "result" and outcome.exit_code == 0, outcome
    out = tmp_path / "out"
    extract_archive(result_store.path(outcome.name), out)
    assert (out / "ls").read_text().split() == [".", "..", "X", "X.partial"]
    assert (out / "both").read_bytes() == DATA + other


# --- the connection goes to the checked address; the name stays the URL's -----------------------


def test_https_checks_the_certificate_and_sni_against_the_name_not_the_pinned_address(tmp_path, monkeypatch, localhost_cert):
    import certifi

    cert, key = localhost_cert
    monkeypatch.setattr(certifi, "where", lambda: str(cert))  # the fetcher trusts this test CA, as it would a public one
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with RecordingServer("127.0.0.1", {"/data": (200, {}, DATA)}, tls=context) as server:
        local = ["127.0.0.0/8", "::1/128"]
        got = fetch_input(item(f"https://localhost:{server.port}/data"), tmp_path, allow_networks=local)
        assert got.path.read_bytes() == DATA
        assert server.sni == ["localhost"] and [r.host for r in server.requests] == [f"localhost:{server.port}"]
        # the same server by its address: the certificate does not name it, so the fetch fails
        with pytest.raises(InputUnavailable, match="could not be fetched") as info:
            fetch_input(item(f"https://127.0.0.1:{server.port}/data", path="other"), tmp_path, allow_networks=local)
        assert info.value.retryable is True and len(server.requests) == 1
        # ... because the fetcher refused the certificate during the handshake, as the server saw
        wait_for(lambda: any("CERTIFICATE" in str(e) for e in server.socket_errors), 10, "the server to see the certificate refused")


def test_the_name_is_resolved_once_and_the_checked_address_is_the_one_connected(tmp_path, monkeypatch):
    """DNS rebinding: a name that answers an allowed address to the check and the loopback to any
    later lookup. No DNS server can be run here, so the system resolver is replaced for that one
    name (every other name goes to the real one)."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.test":
            lookups.append(host)
            address = "127.0.0.2" if len(lookups) == 1 else "127.0.0.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with RecordingServer("127.0.0.2", {"/data": (200, {}, DATA)}) as allowed, _same_port_on("127.0.0.1", allowed.port) as loopback:
        got = fetch_input(item(f"http://rebind.test:{allowed.port}/data"), tmp_path, allow_networks=["127.0.0.2/32"])
        assert got.path.read_bytes() == DATA
        assert lookups == ["rebind.test"]  # one lookup: the connection did not resolve the name again
        assert [r.host for r in allowed.requests] == [f"rebind.test:{allowed.port}"] and loopback.connections == 0


def test_a_name_server_that_never_answers_ends_the_fetch_at_its_deadline(tmp_path, monkeypatch):
    """A requester's name server that never answers held the input fetch in ``getaddrinfo`` past the
    job's deadline (the system resolver's own timeouts ended it, once per redirect hop). No DNS
    server can be run here, so the system resolver blocks for that one name until the test lets it
    go: the fetch must end, retryable and the requester's, while the lookup still blocks."""
    real = socket.getaddrinfo
    release = threading.Event()
    lookups: list[str] = []

    def silent(host, port, *args, **kwargs):
        if host == "silent-dns.test":
            lookups.append(host)
            release.wait()
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", silent)
    ended: list[BaseException] = []

    def fetch() -> None:
        try:
            fetch_input(item("http://silent-dns.test/data"), tmp_path, deadline=time.monotonic() + 0.5)
        except BaseException as exc:  # handed to the test
            ended.append(exc)

    worker = threading.Thread(target=fetch, daemon=True)
    try:
        worker.start()
        worker.join(60)  # a safety net for the defect (it would wait for the release), not a speed bound
        assert ended and not release.is_set(), "the fetch waited for the name server"
        assert isinstance(ended[0], InputUnavailable) and ended[0].retryable is True, ended[0]
        assert "was not fetched in the time this job leaves for its inputs" in str(ended[0])
        assert lookups == ["silent-dns.test"]
    finally:
        release.set()


def _same_port_on(host: str, port: int) -> RecordingServer:
    return RecordingServer(host, {"/data": (200, {}, b"the loopback answered")}, port=port)


# ---------------------------------------------------------------------------------------- the cache


def test_a_cached_input_is_used_even_after_the_source_switched_it(tmp_path, internal):
    """The verifier's case: the inputs it checked before locking a bond are the ones its re-run gets,
    whatever the requester's server says by then; the source is not asked again."""
    internal.routes["/in"] = (200, {}, DATA)
    spec = JobSpec(v=1, image="x@sha256:" + "0" * 64, command=["true"], resources={"cpus": 1, "memory_mb": 64, "max_runtime": 10},
                   inputs=[InputSpec(path="data", uri=f"http://127.0.0.1:{internal.port}/in", sha256=SHA),
                           InputSpec(path="inline", uri="data:,hello", sha256=hashlib.sha256(b"hello").hexdigest())])
    cache = tmp_path / "cache"
    fetch_inputs(spec, tmp_path / "check", allow_networks=LOCAL, cache_dir=cache)
    assert sorted(p.name for p in cache.iterdir()) == [SHA]  # data: inputs are not cached: they cannot change
    asked = len(internal.requests)
    internal.routes["/in"] = (200, {}, b"switched by the requester\n")
    got = fetch_inputs(spec, tmp_path / "run", allow_networks=LOCAL, cache_dir=cache)
    assert (tmp_path / "run" / "data").read_bytes() == DATA and got[0].sha256 == SHA
    assert len(internal.requests) == asked
    # without the cache the switch is a provable mismatch (what made an honest run decline)
    with pytest.raises(InputHashMismatch):
        fetch_inputs(spec, tmp_path / "plain", allow_networks=LOCAL)


def test_a_damaged_cache_entry_is_dropped_and_the_source_asked(tmp_path, internal, caplog):
    internal.routes["/in"] = (200, {}, DATA)
    spec = JobSpec(v=1, image="x@sha256:" + "0" * 64, command=["true"], resources={"cpus": 1, "memory_mb": 64, "max_runtime": 10},
                   inputs=[InputSpec(path="data", uri=f"http://127.0.0.1:{internal.port}/in", sha256=SHA)])
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / SHA).write_bytes(b"not the input")
    with caplog.at_level(logging.WARNING, logger="executor.inputs"):
        fetch_inputs(spec, tmp_path / "run", allow_networks=LOCAL, cache_dir=cache)
    assert (tmp_path / "run" / "data").read_bytes() == DATA and (cache / SHA).read_bytes() == DATA
    assert any(r.getMessage() == "cached input damaged; fetched again" for r in caplog.records)
    assert any(r.path == "/in" for r in internal.requests)
    # the byte cap holds for cached bytes too: over it, the source decides (and is over it as well)
    with pytest.raises(InputUnavailable, match=r"input 'data' \(http://127\.0\.0\.1:\d+/in\) exceeds the executor's input cap"):
        fetch_inputs(spec, tmp_path / "small", allow_networks=LOCAL, cache_dir=cache, max_bytes=100)
