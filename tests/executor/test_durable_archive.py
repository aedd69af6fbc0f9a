"""The result archive's bytes reach the disk before its name does: ``build_archive`` and
``ResultStore.put(move=True)`` (how every result is stored) fsync the file before the rename, so a
power cut cannot leave a published name over a truncated tar. The durability itself needs a power
cut to observe; these tests pin the order of the calls (the fsync'd descriptor is resolved to its
path when fsync runs). And a re-run after such a loss replaces a damaged stored archive with its
fresh copy (same digest) instead of keeping it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from fastapi.testclient import TestClient

from depin.outputs import build_archive, match_digest
from executor.result_server import create_app
from executor.results import ResultStore, SubmissionJournal, prepare_submission

PARTY = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
SPEC_HASH = b"\x5c" * 32


def _out(tmp_path: Path, name: str = "out") -> Path:
    out = tmp_path / name
    (out / "sub").mkdir(parents=True)
    (out / "result.txt").write_text("hello\n")
    (out / "sub" / "data.bin").write_bytes(bytes(range(256)) * 64)
    return out


@contextmanager
def _recorded() -> Iterator[list[tuple[str, str, str]]]:
    """Records ("fsync", path of the descriptor, "") and ("replace", src, dst) in call order."""
    calls: list[tuple[str, str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd if isinstance(fd, int) else fd.fileno()}"), ""))
        return real_fsync(fd)

    def replace(src, dst, **kw):
        calls.append(("replace", os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst, **kw)

    with mock.patch("os.fsync", wraps=fsync) as fsync_mock, mock.patch("os.replace", wraps=replace):
        yield calls
    assert fsync_mock.called


def _index(calls: list[tuple[str, str, str]], call: tuple[str, str, str]) -> int:
    assert call in calls, (call, calls)
    return calls.index(call)


def test_build_archive_fsyncs_the_archive_before_renaming_it(tmp_path: Path) -> None:
    dest = tmp_path / "job" / "result.tar"
    partial = str(dest.with_name(dest.name + ".partial"))
    with _recorded() as calls:
        archive = build_archive(_out(tmp_path), 0, dest)
    assert _index(calls, ("fsync", partial, "")) < _index(calls, ("replace", partial, str(dest)))
    assert hashlib.sha256(dest.read_bytes()).digest() == archive.digest and archive.size == dest.stat().st_size


def test_put_move_fsyncs_the_archive_before_renaming_it_then_the_folder(tmp_path: Path) -> None:
    archive = build_archive(_out(tmp_path), 0, tmp_path / "job" / "result.tar")
    store = ResultStore(tmp_path / "store", "http://p")
    with _recorded() as calls:
        stored = store.put(archive.path, move=True)
    moved = _index(calls, ("replace", str(archive.path), str(stored.path)))
    assert _index(calls, ("fsync", str(archive.path), "")) < moved
    assert _index(calls, ("fsync", str(stored.path.parent), "")) > moved
    assert not archive.path.exists() and stored.digest == archive.digest
    assert hashlib.sha256(stored.path.read_bytes()).digest() == archive.digest


def _stored_run(tmp_path: Path, store: ResultStore, run: str) -> tuple[bytes, bytes, str]:
    """One run of the same job: its archive built and moved into the store (as execute does)."""
    archive = build_archive(_out(tmp_path, f"out-{run}"), 0, tmp_path / f"job-{run}" / "result.tar")
    stored = store.put(archive.path, move=True)
    return stored.digest, match_digest(stored.path, None), stored.name


def _prepare(journal: SubmissionJournal, store: ResultStore, digest: bytes, committed: bytes, name: str):
    return prepare_submission(
        journal, store, job_id=7, spec_hash=SPEC_HASH, party=PARTY, kind="result", digest=digest, committed=committed, name=name
    )


def test_a_rerun_replaces_a_truncated_stored_archive_with_its_fresh_copy(tmp_path: Path) -> None:
    journal, store = SubmissionJournal(tmp_path / "journal"), ResultStore(tmp_path / "store", "http://p")
    digest, committed, name = _stored_run(tmp_path, store, "1")
    first = _prepare(journal, store, digest, committed, name)
    # a power cut after the commitment: the name survived, the bytes did not all
    whole = store.path(first.name).read_bytes()
    store.path(first.name).write_bytes(whole[: len(whole) // 3])
    again_digest, again_committed, again_name = _stored_run(tmp_path, store, "2")  # the re-run: same bytes, a new name
    assert again_digest == digest and again_name != first.name
    again = _prepare(journal, store, again_digest, again_committed, again_name)
    assert again == first  # the journal's entry, unchanged (same salt, same name, same URI)
    assert not store.has(again_name)  # the fresh copy took the journaled name
    served = TestClient(create_app(store)).get(f"/results/{first.name}")
    assert served.status_code == 200
    assert "0x" + hashlib.sha256(served.content).hexdigest() == first.digest
    assert served.content == whole


def test_a_rerun_keeps_an_intact_stored_archive(tmp_path: Path) -> None:
    journal, store = SubmissionJournal(tmp_path / "journal"), ResultStore(tmp_path / "store", "http://p")
    digest, committed, name = _stored_run(tmp_path, store, "1")
    first = _prepare(journal, store, digest, committed, name)
    inode = store.path(first.name).stat().st_ino
    again_digest, again_committed, again_name = _stored_run(tmp_path, store, "2")
    assert _prepare(journal, store, again_digest, again_committed, again_name) == first
    assert store.path(first.name).stat().st_ino == inode  # not rewritten
    assert not store.has(again_name)
    assert store.holds(first.name, digest) and not store.holds(again_name, digest)
