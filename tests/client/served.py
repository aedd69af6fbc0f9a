"""Tiny local HTTP servers for result archives (one that serves, one that trickles), and what an
executor publishes on them (tests only)."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from depin.client import Client
from depin.outputs import ResultArchive
from depin.spec import parse_spec
from executor.results import ResultStore, SubmissionJournal, prepare_submission


@contextmanager
def serve(files: dict[str, bytes]) -> Iterator[str]:
    """Serves `files` (path -> bytes) on 127.0.0.1; yields the base URL. Mutating `files` changes
    what is served."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def trickle(
    files: dict[str, bytes] | None = None, *, every: float = 0.05, host: str = "127.0.0.1", declared: int | None = 1 << 30
) -> Iterator[tuple[str, threading.Event]]:
    """Serves `files` at once and any other path as a body that never ends, one byte every `every`
    seconds (well inside any read timeout), on `host`, declaring `declared` bytes (None: no
    Content-Length, the body ends at the close); yields the base URL and an event set when a client
    hangs up on the trickle."""
    hung_up = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (files or {}).get(self.path)
            self.send_response(200)
            if body is not None or declared is not None:
                self.send_header("Content-Length", str(len(body) if body is not None else declared))
            self.end_headers()
            if body is not None:
                self.wfile.write(body)
                return
            try:
                while True:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(every)
            except OSError:
                hung_up.set()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}", hung_up
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def trickle_head(
    *, every: float = 0.3, host: str = "127.0.0.1", give_up: float = 300.0, tls: ssl.SSLContext | None = None
) -> Iterator[tuple[str, threading.Event]]:
    """Answers every request with a response HEAD that never ends: the status line, then one byte of
    a header every `every` seconds (inside any read timeout), until the client hangs up (the event
    yielded is set then) or `give_up` seconds pass (so that a client that never stops cannot hang
    the test run). Yields the base URL and that event. `tls` (a server context): over HTTPS, the
    URL naming ``localhost``."""
    hung_up = threading.Event()
    closed = threading.Event()
    listener = socket.create_server((host, 0))

    def answer(conn: socket.socket) -> None:
        end = time.monotonic() + give_up
        with conn:
            try:
                if tls is not None:
                    conn = tls.wrap_socket(conn, server_side=True)
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Pad: ")
                while time.monotonic() < end and not closed.wait(every):
                    conn.sendall(b"a")
            except OSError:
                hung_up.set()

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        base = f"https://localhost:{listener.getsockname()[1]}" if tls is not None else f"http://{host}:{listener.getsockname()[1]}"
        yield base, hung_up
    finally:
        closed.set()
        listener.close()


def publish(
    provider: Client, job_id: int, archive: ResultArchive, store: ResultStore, files: dict[str, bytes], tmp: Path,
    *, ignore_sealing: bool = False, seal_to: bytes | None = None,
) -> str:
    """What an executor does with a finished job (executor.execute, executor.results): store the
    archive, sealed to the key the *posted* spec names (``store.put(..., encrypt_to=spec.encrypt_to)``;
    plaintext when it names none, or with `ignore_sealing`: a provider that disregards the spec;
    `seal_to`: sealed to that key instead, a provider that seals to the wrong key),
    journal the salted commitment, serve the archive and its manifest from `files` and submit;
    returns the stored name."""
    spec = parse_spec(provider.spec_bytes(job_id), provider.job(job_id).spec_hash)
    stored = store.put(archive.path, encrypt_to=None if ignore_sealing else seal_to or spec.encrypt_to)
    sub = prepare_submission(
        SubmissionJournal(tmp / f"journal-{job_id}"), store, job_id=job_id, spec_hash=spec.hash(), party=provider.address,
        kind="result", digest=archive.digest, name=stored.name,
    )
    files[f"/results/{stored.name}"] = stored.path.read_bytes()
    files[f"/results/{stored.name}.json"] = store.manifest_path(stored.name).read_bytes()
    provider.submit_result(job_id, bytes.fromhex(sub.commitment[2:]), sub.uri)
    return stored.name
