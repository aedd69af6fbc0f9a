"""A provider's result holding a version-control tool's metadata folder (review, stop 56): its
hash matches the commitment (the provider committed to those very bytes), but an ``out/.git``
whose ``config`` sets ``core.fsmonitor`` runs that command on the requester's machine the first
time anyone (or a shell prompt) runs ``git status`` in the extracted folder. Extraction refuses
such a result unless the requester allows it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from depin.client import ResultUnsafe
from depin.outputs import VcsMetadata, extract_archive, vcs_name_fault
from tests.archives import result_archive

from .conftest import Devnet
from .served import serve
from .test_cli import fails, net, ok
from .test_result_review import _served_job


@pytest.mark.parametrize("name", [
    ".git", ".GIT", ".Git", ".git.", ".git ", ".git. .", ".g\u200cit", "\ufeff.git", ".gi\u200et", "git~1", "GIT~1", ".hg", ".HG", ".hg.", "hg~1",
])
def test_names_a_version_control_tool_reads_as_its_metadata(name: str) -> None:
    assert vcs_name_fault(name) is not None


@pytest.mark.parametrize("name", ["git", ".github", ".gitignore", ".gitmodules", ".git2", "x.git", "git~2", ".hgignore", "hg", ".svn"])
def test_names_that_are_no_metadata_folder(name: str) -> None:
    assert vcs_name_fault(name) is None


def _planted(path: Path, marker: Path, top: str = ".git", below: str = "") -> Path:
    """A result archive with a working git folder `top` (under `below`) whose config runs `touch marker`."""
    at = f"{below}/{top}" if below else top
    config = f'[core]\n\trepositoryformatversion = 0\n\tfsmonitor = "touch {marker}; false"\n'
    return result_archive(path, [
        *([("dir", below, "")] if below else []),
        ("dir", at, ""), ("file", f"{at}/HEAD", "ref: refs/heads/main\n"), ("file", f"{at}/config", config),
        ("dir", f"{at}/objects", ""), ("dir", f"{at}/refs", ""), ("file", "result.txt", "42\n"),
    ])


@pytest.mark.parametrize(("top", "below"), [(".git", ""), (".GIT", ""), (".git", "src"), (".hg", "")])
def test_extraction_refuses_a_metadata_folder_and_extracts_nothing(tmp_path: Path, top: str, below: str) -> None:
    archive = _planted(tmp_path / "a.tar", tmp_path / "pwned", top, below)
    dest = tmp_path / "dest"
    with pytest.raises(VcsMetadata, match=rf"out/.*{top.lower() if top != '.GIT' else '.GIT'}.*metadata folder"):
        extract_archive(archive, dest)
    assert not dest.exists() or not any(dest.iterdir())


def test_a_git_file_pointing_elsewhere_is_refused_too(tmp_path: Path) -> None:
    """``.git`` as a file (``gitdir: x``) makes git read its metadata from x: the name is what counts."""
    archive = result_archive(tmp_path / "a.tar", [("dir", "x", ""), ("file", "x/config", "[core]\n"), ("file", ".git", "gitdir: x\n")])
    with pytest.raises(VcsMetadata, match=r"out/\.git: '\.git' is git's metadata folder"):
        extract_archive(archive, tmp_path / "dest")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git, which the project's install provides")
def test_what_the_refusal_prevents_git_status_runs_the_results_command(tmp_path: Path) -> None:
    """The threat is real: extracted anyway (allow_vcs), the folder's first `git status` runs the
    provider's command; refused (the default), nothing is there to run."""
    marker = tmp_path / "pwned"
    archive = _planted(tmp_path / "a.tar", marker)
    with pytest.raises(VcsMetadata):
        extract_archive(archive, tmp_path / "refused")
    (tmp_path / "refused").mkdir(exist_ok=True)
    subprocess.run(["git", "status", "--short"], cwd=tmp_path / "refused", capture_output=True, check=False)
    assert not marker.exists()
    assert extract_archive(archive, tmp_path / "allowed", allow_vcs=True) == 0
    subprocess.run(["git", "status", "--short"], cwd=tmp_path / "allowed", capture_output=True, check=False)
    assert marker.exists()


def test_download_result_refuses_a_planted_git_folder_unless_allowed(devnet: Devnet, tmp_path: Path) -> None:
    """End to end on a devnet: a submitted result with an ``out/.git`` matches its commitment but
    is refused by the SDK and the CLI (nothing extracted, the message names the member and the way
    to allow it); ``--allow-vcs`` extracts it."""
    data = _planted(tmp_path / "git.tar", tmp_path / "pwned").read_bytes()
    files: dict[str, bytes] = {}
    with serve(files) as base:
        requester, job_id = _served_job(devnet, data, files, base, "git")
        with pytest.raises(ResultUnsafe, match=r"out/\.git.*metadata folder.*nothing extracted.*allow_vcs=True"):
            requester.download_result(job_id, tmp_path / "sdk")
        assert not (tmp_path / "sdk").exists()
        line = fails("job", "result", job_id, "--out", tmp_path / "cli", *net(devnet), match="out/.git")
        assert "--allow-vcs" in line
        assert not (tmp_path / "cli").exists()
        out = ok("job", "result", job_id, "--out", tmp_path / "trusted", "--allow-vcs", *net(devnet)).stdout
        assert "matches the commitment" in out
        assert (tmp_path / "trusted" / ".git" / "config").is_file()
        assert (tmp_path / "trusted" / "result.txt").read_text() == "42\n"
    assert not (tmp_path / "pwned").exists()
