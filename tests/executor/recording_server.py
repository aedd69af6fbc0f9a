"""A small HTTP server for input tests that records every connection and request it receives, so a
test can assert that a refused address was never contacted (not even a TCP connection)."""

from __future__ import annotations

import gzip
import http.server
import ssl
import sys
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Self

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    """One request: its path, its Host header and its Accept-Encoding header (None: not sent)."""

    path: str
    host: str
    accept_encoding: str | None = None


@dataclass
class RecordingServer:
    """Serves `routes` (path -> (status, headers, body), or a callable of the server giving one) on
    `host` and `port`. ``connections`` counts accepted TCP connections; ``requests``
    lists every request; ``socket_errors`` every connection that ended in a socket or TLS error
    (a client refusing the certificate, or hanging up), recorded instead of printed. Unknown paths
    answer 404."""

    host: str = "127.0.0.1"
    routes: dict[str, Answer | Callable[[RecordingServer], Answer]] = field(default_factory=dict)
    tls: ssl.SSLContext | None = None  # a server context: HTTPS, recording each client's SNI name
    connections: int = 0
    requests: list[Seen] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    socket_errors: list[OSError] = field(default_factory=list)
    port: int = 0  # 0: the kernel picks one

    def __post_init__(self) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(Seen(self.path, self.headers.get("Host", ""), self.headers.get("Accept-Encoding")))
                answer = owner.routes.get(self.path, (404, {}, b""))
                status, headers, body = answer(owner) if callable(answer) else answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request, client_address) -> bool:  # type: ignore[override]
                owner.connections += 1
                return True

            def handle_error(self, request, client_address) -> None:  # type: ignore[override]
                error = sys.exc_info()[1]
                if isinstance(error, OSError):
                    owner.socket_errors.append(error)
                else:
                    super().handle_error(request, client_address)

        self._server = Server((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        if self.tls is not None:
            self.tls.sni_callback = lambda _sock, name, _ctx: owner.sni.append(name)  # type: ignore[assignment]
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def double_gzip(size: int) -> bytes:
    """`size` zero bytes (a multiple of 1 MiB), gzipped twice: a few hundred bytes that a client
    honouring ``Content-Encoding: gzip, gzip`` decodes back to `size` bytes."""
    once = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # the gzip format, streamed
    block = bytes(1 << 20)
    inner = b"".join(once.compress(block) for _ in range(size >> 20)) + once.flush()
    return gzip.compress(inner, 9)


def encoding_routes(data: bytes, bomb: bytes, encodings: Sequence[str]) -> dict[str, Answer]:
    """The routes of the content-encoding tests: the bomb (``gzip, gzip``) and a redirect to it, the
    data plain and labelled `` IDENTITY ``, and the data under each of `encodings` at
    ``/encoded/<i>``."""
    routes: dict[str, Answer] = {
        "/bomb": (200, {"Content-Encoding": "gzip, gzip"}, bomb),
        "/moved": (302, {"Location": "/bomb"}, b""),
        "/data": (200, {}, data),
        "/data-identity": (200, {"Content-Encoding": " IDENTITY "}, data),
    }
    for i, encoding in enumerate(encodings):
        routes[f"/encoded/{i}"] = (200, {"Content-Encoding": encoding}, data)
    return routes
