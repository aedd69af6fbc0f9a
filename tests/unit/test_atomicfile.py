"""depin.atomicfile.write_atomically: the one writer of deployment files, keystores and devnet state."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from depin.atomicfile import write_atomically


def test_the_file_is_replaced_whole_with_its_mode_and_no_temporary_file_left(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "state.json"
    write_atomically(target, "first\n")
    assert target.read_text() == "first\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
    write_atomically(target, "second\n", mode=0o644)
    assert target.read_text() == "second\n" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_a_failed_write_leaves_the_old_content_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "deployment.json"
    write_atomically(target, "old\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomically(target, "a lone surrogate \udc80 cannot be written\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["deployment.json"]
