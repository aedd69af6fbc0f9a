"""The result store: opaque names unrelated to the digest, the HTTP server (200/404/400, content
type, nothing addressed by digest), manifests, and download_result's digest and size checks
against a real uvicorn server."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from depin.outputs import build_archive, extract_archive
from executor.results import (
    NAME_RE,
    ResultMismatch,
    ResultNotFound,
    ResultStore,
    ResultUnavailable,
    create_app,
    download_result,
    new_name,
    normalize_digest,
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


def test_normalize_digest():
    assert normalize_digest(b"\x01" * 32) == "01" * 32
    assert normalize_digest("0x" + "AB" * 32) == "ab" * 32
    for bad in (b"\x01" * 31, "0x12", "zz" * 32):
        with pytest.raises(ValueError):
            normalize_digest(bad)


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


def test_download_checks_the_digest(tmp_path, archive, served):
    store, _base = served
    uri = store.put(archive.path).uri
    dest = tmp_path / "dl"
    dest.mkdir()
    path = download_result(uri, archive.digest, dest)
    assert path == dest / f"0x{archive.digest.hex()}.tar"
    assert extract_archive(path, tmp_path / "x") == 0
    assert (tmp_path / "x" / "a.txt").read_text() == "hello\n"
    # The right bytes under a digest they do not match: refused, nothing left behind.
    with pytest.raises(ResultMismatch, match="not the expected"):
        download_result(uri, b"\x11" * 32, tmp_path / "wrong.tar")
    assert not (tmp_path / "wrong.tar").exists() and not (tmp_path / "wrong.tar.partial").exists()


def test_download_caps_size_and_reports_unavailable(tmp_path, archive, served):
    store, base = served
    with pytest.raises(ResultMismatch, match="more than"):
        download_result(store.put(archive.path).uri, archive.digest, tmp_path / "c.tar", max_bytes=1000)
    assert not (tmp_path / "c.tar").exists()
    with pytest.raises(ResultUnavailable, match="404"):
        download_result(f"{base}/results/{new_name()}", b"\x00" * 32, tmp_path / "d.tar")
    with pytest.raises(ResultUnavailable):
        download_result("http://127.0.0.1:9/results/0x" + "00" * 32, b"\x00" * 32, tmp_path / "e.tar", timeout=2)
    with pytest.raises(ResultUnavailable, match="unsupported"):
        download_result("ftp://x/y", b"\x00" * 32, tmp_path / "f.tar")


def test_download_from_a_file_uri(tmp_path, archive):
    path = download_result(f"file://{archive.path}", "0x" + archive.digest.hex(), tmp_path / "copy.tar")
    assert path.read_bytes() == archive.path.read_bytes()
