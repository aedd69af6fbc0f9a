"""An executor fetching a requester's input URL never decompresses: it asks for the content as is
(``Accept-Encoding: identity``, on every redirect hop) and refuses, unread, a 200 answer with a
``Content-Encoding``, saying so without telling what the server answered. Otherwise a hostile
requester's server could answer a few hundred bytes that decode to gigabytes in one read, past the
input cap that is checked per read."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator

import pytest

from depin.spec import InputSpec
from executor.inputs import InputUnavailable, fetch_input

from .recording_server import RecordingServer, double_gzip, encoding_routes

LOCAL = ["127.0.0.0/8"]  # the test server listens on the loopback, which the fetcher refuses unless allowed
BOMB = double_gzip(64 << 20)
DATA = b"the quick brown fox\n" * 100
SHA = hashlib.sha256(DATA).hexdigest()
REFUSED = "was served with a content encoding \\(compressed\\), which this executor does not accept"


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    routes = encoding_routes(DATA, BOMB, ("gzip", "deflate", "br", "zstd", "identity, gzip", "x-unknown"))
    routes["/data-moved"] = (302, {"Location": "/data-identity"}, b"")
    with RecordingServer("127.0.0.1", routes) as server:
        yield server


def item(uri: str, sha: str = SHA) -> InputSpec:
    return InputSpec(path="data", uri=uri, sha256=sha)


@pytest.mark.parametrize("path", ["/bomb", "/moved"])
def test_a_compressed_answer_is_refused_and_nothing_is_written(tmp_path, server: RecordingServer, caplog, path: str) -> None:
    uri = server.base + path
    with caplog.at_level(logging.DEBUG, logger="executor.inputs"), pytest.raises(InputUnavailable, match=REFUSED) as info:
        fetch_input(item(uri), tmp_path, allow_networks=LOCAL)
    assert info.value.retryable is False and (info.value.path, info.value.uri) == ("data", uri)
    assert str(info.value) == f"input 'data': {uri} was served with a content encoding (compressed), which this executor does not accept"
    assert not (tmp_path / "data").exists() and list(tmp_path.iterdir()) == []
    # every hop (the redirect's too) asked for the content as is
    hops = ["/moved", "/bomb"] if path == "/moved" else ["/bomb"]
    assert [(r.path, r.accept_encoding) for r in server.requests] == [(hop, "identity") for hop in hops]
    # what the server answered stays here, at debug level
    debug = [r for r in caplog.records if r.getMessage() == "input answered a content encoding"]
    assert [(r.levelno, r.encoding) for r in debug] == [(logging.DEBUG, "gzip, gzip")]  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG]


def test_any_content_encoding_but_identity_is_refused(tmp_path, server: RecordingServer) -> None:
    paths = [p for p in server.routes if p.startswith("/encoded/")]
    for path in paths:
        with pytest.raises(InputUnavailable, match=REFUSED) as info:
            fetch_input(item(server.base + path), tmp_path, allow_networks=LOCAL)
        assert info.value.retryable is False
        told = str(info.value).replace(server.base + path, "<url>")
        assert not any(word in told for word in ("gzip", "deflate", "br", "zstd", "identity", "x-unknown"))
    assert [(r.path, r.accept_encoding) for r in server.requests] == [(p, "identity") for p in paths]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["/data", "/data-identity", "/data-moved"])
def test_an_identity_answer_is_fetched_and_checked(tmp_path, server: RecordingServer, path: str) -> None:
    got = fetch_input(item(server.base + path), tmp_path, allow_networks=LOCAL)
    assert got.path.read_bytes() == DATA and got.sha256 == SHA and got.size == len(DATA)
    assert {r.accept_encoding for r in server.requests} == {"identity"}
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(InputUnavailable, match="input cap"):  # the cap still holds, on the bytes as sent
        fetch_input(item(server.base + path), other, budget=len(DATA) - 1, allow_networks=LOCAL)
    assert list(other.iterdir()) == []
