"""The result archive format: deterministic bytes, exit code inside, size cap, safe extraction."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from depin.outputs import InvalidOutput, OutputTooLarge, build_archive, extract_archive, read_exit_code


def _fill(root: Path) -> None:
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "b.txt").write_text("bee\n")
    (root / "a.txt").write_text("ay\n")
    (root / "sub" / "deep" / "x.bin").write_bytes(bytes(range(256)) * 40)
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o700)
    (root / "link").symlink_to("a.txt")


def test_same_output_same_digest_whatever_the_metadata(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        d.mkdir()
        _fill(d)
    os.utime(two / "a.txt", (1, 1))
    (two / "b.txt").chmod(0o600)
    a = build_archive(one, 0, tmp_path / "a.tar")
    b = build_archive(two, 0, tmp_path / "b.tar")
    assert a.digest == b.digest == hashlib.sha256((tmp_path / "a.tar").read_bytes()).digest()
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert build_archive(one, 1, tmp_path / "c.tar").digest != a.digest  # the exit code counts
    (one / "a.txt").write_text("changed\n")
    assert build_archive(one, 0, tmp_path / "d.tar").digest != a.digest


def test_extract_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _fill(out)
    archive = build_archive(out, 3, tmp_path / "r.tar")
    assert read_exit_code(archive.path) == 3
    dest = tmp_path / "dest"
    assert extract_archive(archive.path, dest) == 3
    assert (dest / "sub" / "deep" / "x.bin").read_bytes() == (out / "sub" / "deep" / "x.bin").read_bytes()
    assert os.readlink(dest / "link") == "a.txt"
    assert build_archive(dest, 3, tmp_path / "again.tar").digest == archive.digest


def test_empty_or_missing_output_dir(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert build_archive(empty, 0, tmp_path / "e.tar").digest == build_archive(tmp_path / "nope", 0, tmp_path / "n.tar").digest


def test_output_limit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "big").write_bytes(b"x" * 5000)
    with pytest.raises(OutputTooLarge, match="5000 bytes"):
        build_archive(out, 0, tmp_path / "r.tar", max_bytes=4000)
    assert not list(tmp_path.glob("r.tar*"))


def test_special_files_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "fifo")
    with pytest.raises(InvalidOutput, match="fifo"):
        build_archive(out, 0, tmp_path / "r.tar")
