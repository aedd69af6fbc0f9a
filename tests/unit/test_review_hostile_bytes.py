"""Review (hostile bytes): defects in spec validation and archive reading found by an adversarial
review, reproduced and kept as regression tests once fixed (one still marked ``xfail(strict=True)`` is not).

1. depin/spec.py anchors its patterns with ``$``, which in Python also matches *before a final
   newline*: ``IMAGE_RE``, ``INPUT_PATH_RE``, ``ENV_NAME_RE`` and ``SHA256_RE`` accept ``"x\\n"``.
   JCS writes the newline as ``\\n``, so such a spec is canonical and indexed valid, and executors
   claim it. An input whose ``sha256`` ends in a newline can never match: the job always ends
   ``INPUT_HASH_MISMATCH`` (the no-fault fee from the provider's collateral) instead of being
   refused before any claim; an env name ``"A\\n"`` is silently dropped by Podman (the job never
   sees it), what another engine does with it is its own; an input path ``"d\\n"`` is a file named
   with a newline. Fix: ``re.fullmatch`` or ``\\Z``.
2. depin/outputs.py ``match_digest`` (the juror's check of a plaintext delivery with
   ``output.match``) and ``extract_archive`` (``depin job result``) read every member of a
   downloaded archive (``tar.getmembers()``) with no entry cap, though the format never holds more
   than ``MAX_ENTRIES`` (65,536). Each member costs 512 bytes of archive and about 1.3 KB of memory
   and 70 µs: measured here, 131,000 empty directories in a 64 MiB archive took 8.9 s and 167 MiB
   RSS; an output_mb of 4096 allows about 8.4 M (some 10 GB, 10 minutes) in the juror's child,
   which has no memory limit. Fix: stop at MAX_ENTRIES + a few while reading (iterate ``tar``, do
   not call getmembers first) and refuse as UnsafeArchive.
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest

from depin.delivery import PUBKEY_RE
from depin.outputs import (
    MAX_ENTRIES,
    MAX_MEMBERS,
    InvalidOutput,
    UnsafeArchive,
    build_archive,
    check_headers,
    extract_archive,
    match_digest,
    open_result,
)
from depin.spec import JobSpec
from executor.canary import _PATH as CANARY_PATH
from executor.containers import NAME_RE as CONTAINER_NAME_RE
from executor.results import NAME_RE as RESULT_NAME_RE

SHA = "ab" * 32


def _spec(**changes: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "image": "depin/busybox@sha256:" + "cd" * 32, "command": ["true"], "env": {},
        "inputs": [{"path": "d", "uri": "data:,x", "sha256": SHA}],
        "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 5},
    }
    spec.update(changes)
    return spec


@pytest.mark.parametrize(
    "changes",
    [
        {"image": "depin/busybox@sha256:" + "cd" * 32 + "\n"},
        {"env": {"A\n": "x"}},
        {"inputs": [{"path": "d\n", "uri": "data:,x", "sha256": SHA}]},
        {"inputs": [{"path": "d", "uri": "data:,x", "sha256": SHA + "\n"}]},
    ],
    ids=["image", "env-name", "input-path", "input-sha256"],
)
def test_a_trailing_newline_is_not_a_valid_spec_value(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        JobSpec.model_validate(_spec(**changes))


@pytest.mark.parametrize(
    ("pattern", "good"),
    [(PUBKEY_RE, "02" + "ab" * 32), (RESULT_NAME_RE, "ab" * 32), (CONTAINER_NAME_RE, "depin-1"), (CANARY_PATH, "/canary/7")],
    ids=["delivery-public-key", "result-name", "container-name", "canary-path"],
)
def test_no_other_validating_pattern_takes_a_trailing_newline(pattern: re.Pattern[str], good: str) -> None:
    assert pattern.match(good)
    assert not pattern.match(good + "\n")


def _many_entries(path: Path, count: int) -> Path:
    """A depin-result-v1 archive (exit code, out/, then `count` empty directories, names in byte
    order): every header as build_archive writes it, only more of them than the format allows."""
    with open(path, "wb") as fh, tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
        code = tarfile.TarInfo("exit_code")
        code.size = 2
        tar.addfile(code, io.BytesIO(b"0\n"))
        for name in ["out", *(f"out/{i:08d}" for i in range(count))]:
            entry = tarfile.TarInfo(name)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(entry)
    return path


def test_the_format_writer_refuses_more_than_max_entries(tmp_path: Path) -> None:
    """What the reader should mirror: build_archive never writes more than MAX_ENTRIES entries."""
    out = tmp_path / "out"
    out.mkdir()
    for i in range(MAX_ENTRIES + 1):
        (out / f"{i:08d}").mkdir()
    with pytest.raises(InvalidOutput, match="more than 65536 entries"):
        build_archive(out, 0, tmp_path / "r.tar")


@pytest.mark.parametrize("reader", ["match_digest", "extract_archive"])
def test_an_archive_with_more_entries_than_the_format_allows_is_refused(tmp_path: Path, reader: str) -> None:
    archive = _many_entries(tmp_path / "many.tar", MAX_ENTRIES + 1)
    with pytest.raises(UnsafeArchive):
        if reader == "match_digest":
            match_digest(archive, ["result.txt"])
        else:
            extract_archive(archive, tmp_path / "x")


def test_an_archive_of_exactly_max_entries_is_read(tmp_path: Path) -> None:
    """The cap is the format's own: exit_code, out/ and MAX_ENTRIES entries pass (a tighter cap
    would refuse an honest provider's archive)."""
    from depin.outputs import _members

    archive = _many_entries(tmp_path / "full.tar", MAX_ENTRIES)
    with open(archive, "rb") as fh:
        check_headers(fh)
    with open_result(archive) as tar:
        assert len(_members(tar)) == MAX_MEMBERS
