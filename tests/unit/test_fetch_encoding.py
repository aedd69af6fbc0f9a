"""depin.fetch.download_and_hash never decompresses: it asks for the content as is
(``Accept-Encoding: identity``, on every redirect hop) and refuses, unread, a 200 answer with a
``Content-Encoding``. Otherwise a hostile server (a provider serving its result to a requester or a
verifier) could answer a few hundred bytes that decode to gigabytes in one read, past the size cap
that is checked per read. Both paths: httpx following the redirects (no resolver) and the hand-
followed, address-pinned one (a resolver)."""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterator

import pytest

from depin.addresses import parse_networks, public_resolver
from depin.fetch import FetchError, FetchTooLarge, Resolver, download_and_hash
from tests.executor.recording_server import RecordingServer, double_gzip, encoding_routes

BOMB_SIZE = 64 << 20
BOMB = double_gzip(BOMB_SIZE)
DATA = b"result bytes " * 1000
LOOPBACK = public_resolver(parse_networks(["127.0.0.0/8"]))  # the test server listens on the loopback
RESOLVERS = [pytest.param(None, id="httpx-redirects"), pytest.param(LOOPBACK, id="pinned")]
REFUSED = "the server sent a compressed \\(Content-Encoding\\) answer, which is not accepted"


def test_the_bomb_is_one() -> None:
    assert len(BOMB) < 1000 and int.from_bytes(gzip.decompress(BOMB)[-4:], "little") == BOMB_SIZE  # gzip's ISIZE


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    routes = encoding_routes(DATA, BOMB, ("gzip", "x-gzip", "deflate", "br", "zstd", "identity, gzip", "gzip, identity", "x-unknown"))
    routes["/data-empty"] = (200, {"Content-Encoding": ""}, DATA)
    routes["/data-moved"] = (302, {"Location": "/data"}, b"")
    with RecordingServer("127.0.0.1", routes) as server:
        yield server


@pytest.mark.parametrize("resolver", RESOLVERS)
@pytest.mark.parametrize("path", ["/bomb", "/moved"])
def test_a_compressed_answer_is_refused_and_nothing_is_written(server: RecordingServer, resolver: Resolver | None, path: str) -> None:
    out = io.BytesIO()
    uri = server.base + path
    with pytest.raises(FetchError, match=REFUSED) as info:
        download_and_hash(uri, out, max_bytes=1 << 30, resolver=resolver)
    assert not isinstance(info.value, FetchTooLarge)
    assert str(info.value).startswith(f"downloading {uri} failed: ") and "(the content must be served as is)" in str(info.value)
    assert out.getvalue() == b""
    # every hop (the redirect's too) asked for the content as is
    hops = ["/moved", "/bomb"] if path == "/moved" else ["/bomb"]
    assert [(r.path, r.accept_encoding) for r in server.requests] == [(hop, "identity") for hop in hops]


@pytest.mark.parametrize("resolver", RESOLVERS)
def test_any_content_encoding_but_identity_is_refused(server: RecordingServer, resolver: Resolver | None) -> None:
    paths = [p for p in server.routes if p.startswith("/encoded/")]
    for path in paths:
        with pytest.raises(FetchError, match=REFUSED):
            download_and_hash(server.base + path, max_bytes=1 << 30, resolver=resolver)
    assert [(r.path, r.accept_encoding) for r in server.requests] == [(p, "identity") for p in paths]


@pytest.mark.parametrize("resolver", RESOLVERS)
@pytest.mark.parametrize("path", ["/data", "/data-identity", "/data-empty", "/data-moved"])
def test_an_identity_answer_downloads_and_hashes(server: RecordingServer, resolver: Resolver | None, path: str) -> None:
    out = io.BytesIO()
    fetched = download_and_hash(server.base + path, out, max_bytes=len(DATA), resolver=resolver)
    assert (fetched.digest, fetched.size) == (hashlib.sha256(DATA).digest(), len(DATA))
    assert out.getvalue() == DATA
    assert {r.accept_encoding for r in server.requests} == {"identity"}
    with pytest.raises(FetchTooLarge):  # the cap still holds, on the bytes as sent
        download_and_hash(server.base + path, max_bytes=len(DATA) - 1, resolver=resolver)
