"""depin.fetch.download_and_hash: one download (http, https, file) that hashes, caps and reports."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from depin.fetch import FetchError, FetchRefused, FetchTooLarge, download_and_hash
from tests.blocking import raised_within

BODY = b"result bytes " * 1000


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/missing":
            self.send_error(404)
            return
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/body")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_http_download_writes_and_hashes(server: str) -> None:
    out = io.BytesIO()
    fetched = download_and_hash(f"{server}/moved", out, max_bytes=len(BODY))
    assert (fetched.digest, fetched.size) == (hashlib.sha256(BODY).digest(), len(BODY))
    assert out.getvalue() == BODY


def test_http_errors_and_the_cap(server: str) -> None:
    with pytest.raises(FetchError, match="failed: HTTP 404"):
        download_and_hash(f"{server}/missing", max_bytes=10)
    with pytest.raises(FetchTooLarge, match=f"exceeds {len(BODY) - 1} bytes"):
        download_and_hash(f"{server}/body", max_bytes=len(BODY) - 1)


def test_file_uri_hash_only(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    path.write_bytes(BODY)
    assert download_and_hash(path.as_uri(), max_bytes=len(BODY)).digest == hashlib.sha256(BODY).digest()
    with pytest.raises(FetchError, match="failed"):
        download_and_hash((tmp_path / "none").as_uri(), max_bytes=1)


def test_file_uri_of_a_fifo_device_or_link_is_refused_at_once(tmp_path: Path) -> None:
    """A file:// URI (a devnet provider's result) naming a FIFO, a device or a symbolic link: a
    blocking open() of a FIFO (or /dev/tty) held the requester past any deadline (the deadline is
    checked between reads), /dev/zero never ended. Refused at once: not a regular file."""
    fifo = tmp_path / "result.tar"
    os.mkfifo(fifo)
    link = tmp_path / "link.tar"
    link.symlink_to(tmp_path / "nowhere")
    try:
        for uri, message in ((fifo.as_uri(), "not a regular file"), ("file:///dev/zero", "not a regular file"),
                             (link.as_uri(), "symbolic link")):
            exc = raised_within(10, lambda uri=uri: download_and_hash(uri, max_bytes=1024, deadline=time.monotonic() + 1))
            assert isinstance(exc, FetchError) and message in str(exc), (uri, exc)
    finally:  # had a reader blocked in open() (the defect), a writer lets it go
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # no reader waiting: ENXIO


def test_unsupported_scheme_and_dead_host() -> None:
    with pytest.raises(FetchError, match="unsupported URI scheme"):
        download_and_hash("ftp://example.org/x", max_bytes=1)
    with pytest.raises(FetchError, match="failed"):
        download_and_hash("http://127.0.0.1:9/x", max_bytes=1, timeout=1.0)


def test_a_resolver_that_never_answers_ends_at_the_deadline() -> None:
    """A requester's name server that never answers held the fetch in ``getaddrinfo`` past its
    deadline, once per redirect hop (the system resolver's own timeouts, not the deadline, ended it).
    The stand-in resolver blocks until the test lets it go: the fetch must end while it still blocks."""
    release = threading.Event()
    asked: list[str] = []

    def silent_resolver(host: str, _port: int) -> str:
        asked.append(host)
        release.wait()
        return "127.0.0.1"

    try:
        exc = raised_within(60, lambda: download_and_hash("http://slow-dns.example/input", max_bytes=10, resolver=silent_resolver, deadline=time.monotonic() + 0.5))
        assert isinstance(exc, FetchError) and "took too long (resolving slow-dns.example) did not end by the deadline" in str(exc), exc
        assert asked == ["slow-dns.example"] and not release.is_set()
    finally:
        release.set()


def test_a_resolver_answering_within_the_deadline_is_used(server: str) -> None:
    """The bounded lookup hands back the resolver's address and its refusals unchanged."""
    port = int(server.rsplit(":", 1)[1])
    fetched = download_and_hash(f"http://body.example:{port}/body", max_bytes=len(BODY), resolver=lambda host, _p: "127.0.0.1", deadline=time.monotonic() + 60)
    assert fetched.size == len(BODY)

    def refusing(host: str, _port: int) -> str:
        raise FetchRefused(f"{host} refused")

    with pytest.raises(FetchRefused, match="nowhere.example refused"):
        download_and_hash("http://nowhere.example/x", max_bytes=10, resolver=refusing, deadline=time.monotonic() + 60)
