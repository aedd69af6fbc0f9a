"""The result store: opaque names unrelated to the digest, the HTTP server (200/404/400, content
type, nothing addressed by digest), manifests, and what depin.fetch gets from a real uvicorn
server (the bytes, the size cap, a 404)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from depin.fetch import FetchError, FetchTooLarge, download_and_hash
from depin.outputs import build_archive, extract_archive
from executor.result_server import create_app
from executor.results import (
    NAME_RE,
    ResultNotFound,
    ResultStore,
    new_name,
)


@pytest.fixture
def archive(tmp_path: Path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "a.txt").write_text("hello\n")
    (out / "sub" / "b").write_bytes(b"\x00" * 1000)
    return build_archive(out, 0, tmp_path / "result.tar")


def test_put_stores_under_an_opaque_name(tmp_path, archive):
    store = ResultStore(tmp_path / "store", "http://example:8700/")
    stored = store.put(archive.path)
    assert NAME_RE.match(stored.name) and stored.digest == archive.digest
    assert archive.digest.hex() not in stored.name and archive.digest.hex() not in stored.uri
    assert stored.uri == f"http://example:8700/results/{stored.name}"
    assert archive.path.exists()  # copied, not moved
    assert store.has(stored.name) and hashlib.sha256(store.path(stored.name).read_bytes()).digest() == archive.digest
    again = store.put(archive.path, move=True)  # the same bytes again: another name, unlinkable to the first
    assert again.name != stored.name and not archive.path.exists()
    assert not store.has(archive.digest.hex()) and not store.has("nonsense") and not store.has(new_name())
    with pytest.raises(ResultNotFound):
        store.path(new_name())
    with pytest.raises(ValueError):
        store.path("0x" + archive.digest.hex())
    assert sorted(p.name for p in store.root.rglob("*") if p.is_file()) == sorted([f"{stored.name}.tar", f"{again.name}.tar"])
    store.remove(again.name)
    assert not store.has(again.name) and store.has(stored.name)


def test_put_under_a_given_name_and_the_manifest(tmp_path, archive):
    store = ResultStore(tmp_path / "store", "http://x")
    name = new_name()
    assert store.put(archive.path, name=name).uri == f"http://x/results/{name}"
    assert store.put_manifest(name, {"salt": "0x01"}) == f"http://x/results/{name}.json"
    assert store.manifest_path(name).read_text() == '{"salt":"0x01"}'
    with pytest.raises(ValueError):
        store.put(archive.path, name="../../etc/passwd")


def test_server_serves_archives_by_name_never_by_digest(tmp_path, archive):
    store = ResultStore(tmp_path / "store", "http://testserver")
    stored = store.put(archive.path)
    store.put_manifest(stored.name, {"salt": "0x" + "01" * 32})
    client = TestClient(create_app(store))
    r = client.get(f"/results/{stored.name}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-tar"
    assert archive.digest.hex() not in str(r.headers)
    assert hashlib.sha256(r.content).digest() == archive.digest
    assert client.head(f"/results/{stored.name}").status_code == 200
    assert client.get(f"/results/{stored.name}.json").json() == {"salt": "0x" + "01" * 32}
    assert client.get(f"/results/{new_name()}").status_code == 404
    assert client.get(f"/results/{new_name()}.json").status_code == 404
    # no existence oracle: the digest, in any spelling, names nothing
    for by_digest in ("0x" + archive.digest.hex(), archive.digest.hex().upper(), "0x" + archive.digest.hex() + ".tar"):
        assert client.get(f"/results/{by_digest}").status_code in (400, 404), by_digest
        assert client.head(f"/results/{by_digest}").status_code in (400, 404), by_digest
    assert client.get(f"/results/{archive.digest.hex()}").status_code == 404  # a name-shaped digest: just unknown
    for bad in ("0x1234", "g" * 64, stored.name + ".tar", stored.name.upper()):
        assert client.get(f"/results/{bad}").status_code == 400, bad
    assert client.get("/results/..%2F..%2Fetc%2Fpasswd").status_code == 404  # decoded to another path: no route
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.fixture
def served(tmp_path, archive) -> Iterator[tuple[ResultStore, str]]:
    server = uvicorn.Server(uvicorn.Config(create_app(ResultStore(tmp_path / "store", "http://unused")), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    store = ResultStore(tmp_path / "store", base)
    yield store, base
    server.should_exit = True
    thread.join(5)


def test_a_served_archive_downloads_whole_within_the_cap(tmp_path, archive, served):
    """What a requester's or a verifier's fetch (depin.fetch) gets from the real server: the
    archive's bytes; the size cap stops a larger one; an unknown name is a 404."""
    store, base = served
    uri = store.put(archive.path).uri
    dest = tmp_path / "dl.tar"
    with open(dest, "wb") as out:
        fetched = download_and_hash(uri, out, max_bytes=10 * 2**20)
    assert fetched.digest == archive.digest and fetched.size == archive.path.stat().st_size
    assert extract_archive(dest, tmp_path / "x") == 0 and (tmp_path / "x" / "a.txt").read_text() == "hello\n"
    with pytest.raises(FetchTooLarge, match="exceeds 1000 bytes"):
        download_and_hash(uri, max_bytes=1000)
    with pytest.raises(FetchError, match="HTTP 404"):
        download_and_hash(f"{base}/results/{new_name()}", max_bytes=1000)

