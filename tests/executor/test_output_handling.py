"""How the executor sorts errors of output handling (executor.execute.archive_output): the
output's doing is a failure code, the provider's own machine failing is a retried ProviderFault."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from depin import outputs
from depin.outputs import InvalidOutput, OutputTooLarge
from executor.execute import ProviderFault, archive_output


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_disk_while_archiving_is_the_providers_fault_not_the_jobs(tmp_path: Path) -> None:
    """The archive's folder is a 64 KiB tmpfs and the output 1 MiB: ENOSPC while writing is a
    ProviderFault (retried), never an OUTPUT_* failure blamed on the job."""
    out, small = tmp_path / "out", tmp_path / "small"
    out.mkdir()
    small.mkdir()
    (out / "big").write_bytes(os.urandom(1 << 20))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "depin-test-full", str(small)], check=True)
    try:
        with pytest.raises(ProviderFault, match="No space left"):
            archive_output(out, 0, small / "r.tar", 4 << 20)
        assert list(small.iterdir()) == []  # no partial archive left
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_limits_stay_what_they_are(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "f").write_bytes(b"x" * 10)
    with pytest.raises(OutputTooLarge):
        archive_output(out, 0, tmp_path / "r.tar", 9)
    os.mkfifo(out / "p")
    with pytest.raises(InvalidOutput, match="fifo"):
        archive_output(out, 0, tmp_path / "r.tar", 100)


def test_any_other_exception_of_output_handling_is_the_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unforeseen exception while archiving (stood in for by a patched walker: no real output
    raises one any more) becomes InvalidOutput (a submitted OUTPUT_INVALID), not a task crash; an
    OSError that is not the provider's (ENAMETOOLONG, as before the walker) likewise."""
    out = tmp_path / "out"
    out.mkdir()

    def surprise(*args: object, **kwargs: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(outputs, "walk_output", surprise)
    with pytest.raises(InvalidOutput, match="RecursionError: maximum recursion depth exceeded"):
        archive_output(out, 0, tmp_path / "r.tar", 100)

    def too_long(*args: object, **kwargs: object) -> None:
        raise OSError(36, "File name too long")

    monkeypatch.setattr(outputs, "walk_output", too_long)
    with pytest.raises(InvalidOutput, match="File name too long"):
        archive_output(out, 0, tmp_path / "r.tar", 100)
