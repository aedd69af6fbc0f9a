"""The JSON-RPC gateway against a node that answers, but never finishes its answer: the status line
and headers at once, then the body one byte at a time, each well inside the read timeout. Its
`timeout` must bound the whole call (the CLI, the indexer and every executor call go through it);
a node (or proxy) in that state otherwise holds the command forever, and one that streams its
endless body fast fills the memory (about 6 GB in 20 s through `depin job status`)."""

from __future__ import annotations

import http.server
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from depin.chain import RpcClient, RpcUnavailable, is_range_error
from depin.chain.http import RPC_MAX_BYTES
from depin.chain.logs import AnswerTooLarge, LogFetcher
from depin.deployment import REPO_ROOT


@contextmanager
def trickling_node(every: float = 0.2) -> Iterator[str]:
    """A JSON-RPC endpoint whose every answer starts ``{"jsonrpc":"2.0","id":0,"result":"0x`` and then
    sends one ``0`` every `every` seconds, for at most 5 minutes."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(1 << 30))
            self.end_headers()
            end = time.monotonic() + 300
            try:
                self.wfile.write(b'{"jsonrpc":"2.0","id":0,"result":"0x')
                while time.monotonic() < end:
                    self.wfile.write(b"0")
                    self.wfile.flush()
                    time.sleep(every)
            except OSError:
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_call_to_a_node_that_trickles_its_answer_ends_within_its_timeout() -> None:
    probe = (
        "from depin.chain import RpcClient, RpcUnavailable\n"
        "try:\n"
        "    RpcClient.from_url(__import__('sys').argv[1], timeout=2.0, retries=0).chain_id()\n"
        "except RpcUnavailable as exc:\n"
        "    print('unavailable:', exc)\n"
    )
    with trickling_node() as url:
        started = time.monotonic()
        try:
            proc = subprocess.run(
                [sys.executable, "-c", probe, url], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30,
                env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"eth_chainId with a 2 s timeout still waiting for the trickling node after {time.monotonic() - started:.0f} s")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("unavailable:"), proc.stdout


# ------------------------------------------------------------------ the other ways a node never ends a call

KEY = "k" * 32  # an API key as hosted nodes take it, in the URL's path: never shown whole
OK = b'{"jsonrpc":"2.0","id":1,"result":"0x7a69"}'


class HostileNode:
    """A JSON-RPC endpoint on raw sockets answering the n-th request of each connection as
    ``script[n]`` says (the connection is kept alive between requests; over TLS with `tls`):

    - ``ok``: ``eth_chainId``'s answer (31337), with its length;
    - ``trickle_body``: the head at once (``Content-Length`` 100,000, under the cap), the body one byte every 0.2 s;
    - ``trickle_head``: the status line, then a header one byte every 0.2 s;
    - ``flood``: the head without a length, then zeros as fast as they go, until the client hangs up;
    - ``flood_chunked``: the same as endless chunks.

    Ends each trickle after 5 minutes. `connections` counts the connections made, `requests` the
    requests read."""

    def __init__(self, script: list[str], tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.connections = 0
        self.requests = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        port = self._server.getsockname()[1]
        self.url = f"https://localhost:{port}/v3/{KEY}" if tls else f"http://127.0.0.1:{port}/v3/{KEY}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                reader = conn.makefile("rb")
                for step in self.script:
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        line = reader.readline()
                        if not line:
                            return
                        head += line
                    length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")), 0)
                    reader.read(length)
                    self.requests += 1
                    self._answer(conn, step)
            except OSError:
                pass

    @staticmethod
    def _answer(conn: socket.socket, step: str) -> None:
        end = time.monotonic() + 300
        if step == "ok":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(OK), OK))
        elif step == "trickle_body":
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"jsonrpc":"2.0","id":1,"result":"0x')
            while time.monotonic() < end:
                conn.sendall(b"0")
                time.sleep(0.2)
        elif step == "trickle_head":
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while time.monotonic() < end:
                conn.sendall(b"a")
                time.sleep(0.2)
        elif step in ("flood", "flood_chunked"):
            chunked = step == "flood_chunked"
            framing = b"Transfer-Encoding: chunked" if chunked else b"Connection: close"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%s\r\n\r\n" % framing)
            block = b"0" * 65536
            if chunked:
                block = b"%x\r\n%s\r\n" % (len(block), block)
            while time.monotonic() < end:
                conn.sendall(block)

    def close(self) -> None:
        self._server.close()


# The timeout of a test whose node answers some calls at once: those must not race it on a busy
# machine (a TLS handshake and an answer from a thread of this process), and the trickled call after
# them still ends by it, well inside _ends' 30 s.
ANSWERED_IN = 5.0


def _ends(call: Callable[[], object]) -> BaseException | object:
    """What `call` returned or raised, run in a thread; fails the test when it is still running after
    30 s (its timeout is at most 5 s)."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():
        pytest.fail("the call with a timeout of at most 5 s is still waiting for the node after 30 s")
    return outcome[0]


def _unavailable(outcome: object, *phrases: str) -> str:
    assert isinstance(outcome, RpcUnavailable), outcome
    text = str(outcome)
    for phrase in phrases:
        assert phrase in text, text
    assert KEY not in text and "/v3/kkkk***" in text, text  # names the node, not its key
    return text


@pytest.mark.parametrize("step", ["trickle_body", "trickle_head"])
def test_a_call_ends_by_its_timeout_whatever_part_of_its_answer_the_node_trickles(step: str) -> None:
    node = HostileNode([step])
    try:
        outcome = _ends(lambda: RpcClient.from_url(node.url, timeout=1.0, retries=0).chain_id())
    finally:
        node.close()
    text = _unavailable(outcome, "timed out", "within 1 s")
    assert is_range_error(outcome), text  # eth_getLogs' caller takes it for a range too large


@pytest.mark.parametrize("step", ["flood", "flood_chunked"])
def test_an_answer_that_never_ends_is_read_up_to_the_cap_only(step: str) -> None:
    node = HostileNode([step])
    try:
        outcome = _ends(lambda: RpcClient.from_url(node.url, timeout=30.0, retries=0).chain_id())
    finally:
        node.close()
    _unavailable(outcome, f"exceeds the cap of {RPC_MAX_BYTES:,} bytes")


def test_a_kept_alive_connection_is_bounded_too() -> None:
    """The second call goes over the connection the first one left open: its deadline still holds."""
    node = HostileNode(["ok", "ok", "trickle_head"])
    rpc = RpcClient.from_url(node.url, timeout=ANSWERED_IN, retries=0)
    answers: list[object] = []

    def three_calls() -> None:  # in one thread: its connection is kept alive between them
        for _ in range(3):
            try:
                answers.append(rpc.chain_id())
            except RpcUnavailable as exc:
                answers.append(exc)

    try:
        _ends(three_calls)
    finally:
        node.close()
    assert answers[:2] == [31337, 31337]
    _unavailable(answers[2], "timed out")
    assert (node.connections, node.requests) == (1, 3)


@pytest.fixture(scope="module")
def localhost_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A self-signed certificate for ``localhost`` and a server context holding it."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True, capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


def test_a_call_over_tls_ends_by_its_timeout(localhost_tls: tuple[Path, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch) -> None:
    """TLS wraps the connection's socket in a new one (the TCP one is detached): the deadline shuts
    that one down. Two calls: the first answered (its connection kept alive), the second trickled."""
    cert, context = localhost_tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # the node's certificate is trusted, as a real node's is
    node = HostileNode(["ok", "trickle_head"], tls=context)
    rpc = RpcClient.from_url(node.url, timeout=ANSWERED_IN, retries=0)
    answers: list[object] = []

    def two_calls() -> None:
        for _ in range(2):
            try:
                answers.append(rpc.chain_id())
            except RpcUnavailable as exc:
                answers.append(exc)

    try:
        _ends(two_calls)
    finally:
        node.close()
    assert answers[0] == 31337, answers
    _unavailable(answers[1], "timed out")


def test_a_batch_ends_by_its_timeout() -> None:
    node = HostileNode(["trickle_head"])
    try:
        outcome = _ends(lambda: RpcClient.from_url(node.url, timeout=1.0, retries=0).get_blocks([1, 2, 3]))
    finally:
        node.close()
    _unavailable(outcome, "timed out")


@pytest.mark.parametrize(("step", "budget", "expected"), [
    ("trickle_head", None, RpcUnavailable),
    ("trickle_body", None, RpcUnavailable),
    ("flood", None, RpcUnavailable),  # no budget: the gateway's cap, a failure (no range to halve)
    ("flood_chunked", 100_000, AnswerTooLarge),  # past the budget: ask for fewer blocks
])
def test_eth_getlogs_ends_by_its_timeout_and_within_its_cap(step: str, budget: int | None, expected: type) -> None:
    node = HostileNode([step])
    fetcher = LogFetcher(node.url, timeout=1.0 if "trickle" in step else 30.0)
    try:
        outcome = _ends(lambda: fetcher.get_logs(1, 2, ["0x" + "11" * 20], max_bytes=budget))
    finally:
        fetcher.close()
        node.close()
    assert type(outcome) is expected, outcome
    assert KEY not in str(outcome), outcome
