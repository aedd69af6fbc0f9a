"""`depin job result` against a hostile provider (review, stop 41): archives whose hash matches the
provider's commitment (it committed to those very bytes) but whose members would misbehave on the
requester's machine when extracted."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import unicodedata
from pathlib import Path

import pytest

from depin.client import ClientError, ResultUnsafe
from depin.deployment import REPO_ROOT
from depin.outputs import UnsafeArchive, extract_archive
from tests.archives import result_archive

from .conftest import Devnet
from .served import serve
from .test_cli import fails, net
from .test_fetch_result import _submitted_job


def _hostile_archive(path: Path, members: list[tuple[str, str, str]]) -> bytes:
    """The bytes of :func:`tests.archives.result_archive` (written at `path`)."""
    return result_archive(path, members).read_bytes()


def _served_job(devnet: Devnet, data: bytes, files: dict[str, bytes], base: str, name: str) -> tuple:
    files[f"/results/{name}"] = data
    return _submitted_job(devnet, hashlib.sha256(data).digest(), f"{base}/results/{name}", files)


NFC = unicodedata.normalize("NFC", "caf\u00e9.txt")
NFD = unicodedata.normalize("NFD", "caf\u00e9.txt")
COLLIDING = {
    # the checked result.json, then a later member that replaces it where case does not count
    "case": [("file", "result.json", "the checked answer\n"), ("file", "Result.json", "the provider's swap\n")],
    # the same name composed and decomposed (macOS normalizes names)
    "nfc-nfd": [("file", NFC, "one\n"), ("file", NFD, "two\n")],
    # a symbolic link A, and a file below "a": below the link where case does not count
    "below-a-link": [("dir", "sub", ""), ("link", "A", "sub"), ("dir", "a", ""), ("file", "a/x", "through the link\n")],
    # two directories that are one there, their files the same file
    "directories": [("dir", "D", ""), ("file", "D/f", "1\n"), ("dir", "d", ""), ("file", "d/F", "2\n")],
    # a German sharp s folds to "ss" (casefold), the Kelvin sign to "k"
    "casefold": [("file", "stra\u00dfe", "1\n"), ("file", "STRASSE", "2\n")],
}


@pytest.mark.parametrize("case", sorted(COLLIDING))
def test_names_that_collide_where_case_or_normalization_do_not_count_are_refused(devnet: Devnet, tmp_path: Path, case: str) -> None:
    """On a case-insensitive or normalizing file system (macOS, Windows) two members whose names
    differ only in case or Unicode normalization are one file: the later one replaces the earlier,
    checked one, or a file lands below a symbolic link that the checks saw nowhere on its path. The
    requester's extractor refuses such an archive on every system (this runs on Linux, where they
    would not collide): ResultUnsafe naming both, nothing extracted."""
    data = _hostile_archive(tmp_path / "hostile.tar", COLLIDING[case])
    files: dict[str, bytes] = {}
    with serve(files) as base:
        requester, job_id = _served_job(devnet, data, files, base, case)
        dest = tmp_path / "fetched"
        with pytest.raises(ResultUnsafe, match="collide.*case or Unicode normalization.*nothing extracted") as err:
            requester.download_result(job_id, dest)
        assert isinstance(err.value, ClientError)
        assert not dest.exists()  # nothing extracted; the folder made for it removed
        if case == "case":  # and `depin job result` says so in one line
            fails("job", "result", job_id, "--out", tmp_path / "cli", *net(devnet), match="collide")
            assert not (tmp_path / "cli").exists()


def test_names_that_do_not_collide_still_extract(devnet: Devnet, tmp_path: Path) -> None:
    """The check folds case and normalization only: names distinct after both still extract, a
    non-ASCII one included, and so do links to links (``lib.so -> lib.so.1 -> lib.so.1.2``)."""
    members = [("file", NFC, "caf\u00e9\n"), ("file", "result.json", "{}\n"), ("file", "result.json5", "{}\n"),
               ("dir", "Data", ""), ("file", "Data/x", "x\n"), ("file", "lib.so.1.2", "elf\n"),
               ("link", "lib.so.1", "lib.so.1.2"), ("link", "lib.so", "lib.so.1")]
    data = _hostile_archive(tmp_path / "fine.tar", members)
    files: dict[str, bytes] = {}
    with serve(files) as base:
        requester, job_id = _served_job(devnet, data, files, base, "fine")
        fetched = requester.download_result(job_id, tmp_path / "fetched")
    assert (fetched.path / NFC).read_text() == "caf\u00e9\n" and (fetched.path / "lib.so").read_text() == "elf\n"


def test_a_long_chain_of_symbolic_links_extracts_in_one_pass(devnet: Devnet, tmp_path: Path) -> None:
    """Links to links are part of the format (``lib.so -> lib.so.1``). tarfile's ``data`` filter,
    the extraction's second line, resolves every link's target with ``os.path.realpath``, which on
    Python 3.11 follows a chain of links recursively and afresh for each link: a provider that
    committed to 1,500 links ``l0 -> l1 -> ... -> l1500``, stored last first, crashed `depin job
    result` with a RecursionError traceback and left the first 990 links in --out (and a chain kept
    under the recursion limit, its targets taking 100 directory steps, held the extraction for
    minutes: the work grows with the square of the chain). The links, which the first line checks,
    are extracted without resolving them; the result is extracted whole, and `depin job result`
    prints its one line."""
    n = 1_500
    members = [("dir", "d", ""), ("file", f"l{n}", "end\n")]
    members += [("link", f"l{k}", f"d/../l{k + 1}") for k in reversed(range(n))]
    data = _hostile_archive(tmp_path / "chain.tar", members)
    files: dict[str, bytes] = {}
    with serve(files) as base:
        requester, job_id = _served_job(devnet, data, files, base, "chain")
        # the real CLI in its own process (this one's recursion limit is raised by a test dependency)
        run = subprocess.run(
            [sys.executable, "-m", "depinctl.cli", "job", "result", str(job_id), "--out", str(tmp_path / "cli"), *net(devnet)],
            capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), check=False,
        )
        assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-2000:]
        assert "matches the commitment" in run.stdout
        fetched = requester.download_result(job_id, tmp_path / "fetched")
    for dest in (tmp_path / "cli", fetched.path):
        assert (dest / f"l{n}").read_text() == "end\n" and len(list(dest.iterdir())) == n + 2
        assert all(os.readlink(dest / f"l{k}") == f"d/../l{k + 1}" for k in range(n))


def test_a_link_target_through_a_link_spelled_in_another_case_is_refused(tmp_path: Path) -> None:
    """``d/A -> ..`` is fine (out/ itself) and so would be ``e -> d/a/..`` where names are
    case-sensitive (no ``d/a``: it dangles); where they are not, ``d/a`` is the link and ``e``
    points above out/. A link's target steps through another link in any spelling: refused."""
    archive = tmp_path / "through.tar"
    _hostile_archive(archive, [("dir", "d", ""), ("link", "d/A", ".."), ("link", "e", "d/a/..")])
    with pytest.raises(UnsafeArchive, match=r"out/e: a symbolic link to 'd/a/\.\.', outside the result"):
        extract_archive(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize(
    ("members", "why"),
    [
        ([("file", "a/b/c", "x\n")], r"out/a/b/c: its folder out/a/b is no directory member before it"),
        ([("file", "a/x", "x\n"), ("dir", "a", "")], r"out/a/x: its folder out/a is no directory member before it"),
        ([("file", "f", "x\n"), ("file", "f/g", "y\n")], r"out/f/g: lies below a file \(out/f\)"),
        ([("dir", "d", ""), ("link", "l", "d"), ("file", "l/x", "y\n")], r"out/l/x: lies below a symbolic link \(out/l\)"),
        ([("file", "f", "x\n"), ("file", "f", "y\n")], r"out/f appears twice"),
        ([("dir", "/".join(["d"] * k), "") for k in range(1, 66)], r"out/d/d/d.* \(129 characters\) is more than 64 levels deep"),
    ],
    ids=["no-folder", "folder-after", "below-a-file", "below-a-link", "twice", "too-deep"],
)
def test_every_member_lies_in_a_folder_written_before_it(tmp_path: Path, members: list, why: str) -> None:
    """The format writes every folder before what it holds; extraction takes nothing else, so that
    its checks hold one node per member (a path's 500 parents are never each remembered: thousands
    of members 500 deep with no folders written cost the old checks seconds per thousand) and
    nothing lands below a link or a file."""
    archive = tmp_path / "a.tar"
    _hostile_archive(archive, members)
    with pytest.raises(UnsafeArchive, match=why):
        extract_archive(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_a_selected_result_with_deep_paths_and_no_folders_is_refused_before_it_costs_memory(devnet: Devnet, tmp_path: Path) -> None:
    """With ``output.match`` the requester (and a juror's delivery check) digests the selected part
    of the archive (``match_digest``), whose selection remembered its automaton state for every
    prefix of every path. A provider that committed to 1,000 members each 500 folders deep below a
    folder of its own, none of the folders written (2 MB), made that cost 370 MB and 5 s; 8,000 of
    them, within the CLI's default 16 MB output, about 3 GB. The format writes every folder before
    what it holds: an archive that does not is no result archive (ResultMismatch, nothing
    extracted), refused at its first such member."""
    import json
    import tracemalloc

    from depin.client import ResultMismatch
    from depin.outputs import match_digest
    from depin.spec import parse_spec

    from .conftest import make_spec

    archive = tmp_path / "deep.tar"
    data = _hostile_archive(archive, [("dir", f"{k:x}/" + "a/" * 500 + "f", "") for k in range(1_000)])
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeArchive, match="is no directory member before it"):
            match_digest(archive, ["result.json"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak
    spec = parse_spec({**json.loads(make_spec(400).to_bytes()), "output": {"match": ["result.json"]}})
    files: dict[str, bytes] = {}
    with serve(files) as base:
        files["/results/deep"] = data
        requester, job_id = _submitted_job(devnet, b"\x00" * 32, f"{base}/results/deep", files, spec=spec)
        dest = tmp_path / "fetched"
        with pytest.raises(ResultMismatch, match="is no directory member before it.*nothing extracted"):
            requester.download_result(job_id, dest)
    assert not dest.exists()


def test_a_time_beyond_the_clock_is_not_a_traceback(devnet: Devnet, tmp_path: Path) -> None:
    """The format stores mtime 0 for every entry; a provider's pax header may say any number (32
    digits at most). A time past time_t (``99999999999999999999``, ``inf``) made tarfile's utime
    raise OverflowError, which no check caught: `depin job result` ended in a traceback and left
    the members before it in --out. Every entry is extracted with the format's mtime, 0."""
    archive = tmp_path / "time.tar"
    _hostile_archive(archive, [("dir", "d", ""), ("file", "d/a", "a\n"), ("file", "b", "b\n")])
    with tarfile.open(archive) as honest, tarfile.open(tmp_path / "late.tar", "w", format=tarfile.PAX_FORMAT) as tar:
        for member, when in zip(honest.getmembers(), ("0", "0", "inf", "5", "99999999999999999999"), strict=True):
            member.pax_headers = {"mtime": when}
            tar.addfile(member, honest.extractfile(member) if member.isreg() else None)
    data = (tmp_path / "late.tar").read_bytes()
    files: dict[str, bytes] = {}
    with serve(files) as base:
        requester, job_id = _served_job(devnet, data, files, base, "late")
        fetched = requester.download_result(job_id, tmp_path / "fetched")
        run = subprocess.run(
            [sys.executable, "-m", "depinctl.cli", "job", "result", str(job_id), "--out", str(tmp_path / "cli"), *net(devnet)],
            capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), check=False,
        )
        assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-2000:]
    for dest in (fetched.path, tmp_path / "cli"):
        assert (dest / "d" / "a").read_text() == "a\n" and (dest / "b").read_text() == "b\n"
        assert {p.stat().st_mtime for p in (dest / "d", dest / "d" / "a", dest / "b")} == {0}


def test_a_size_past_any_file_offset_under_an_output_selector_is_a_mismatch(devnet: Devnet, tmp_path: Path) -> None:
    """A member whose pax size is 10^30 makes tarfile seek past what a file offset holds (a
    ValueError, not a TarError). Digesting the selected part (``output.match``) let it out of
    ``download_result`` as it was, no ClientError; it is a ResultMismatch (no result archive),
    nothing extracted, as the juror's delivery check already judged it."""
    import json

    from depin.client import ResultMismatch
    from depin.spec import parse_spec

    from .conftest import make_spec

    archive = tmp_path / "honest.tar"
    _hostile_archive(archive, [("file", "a", "a\n"), ("file", "b", "b\n")])
    with tarfile.open(archive) as honest, tarfile.open(tmp_path / "huge.tar", "w", format=tarfile.PAX_FORMAT) as tar:
        for member in honest.getmembers():
            if member.name == "out/a":
                member.pax_headers = {"size": "1" + "0" * 30}
            tar.addfile(member, honest.extractfile(member) if member.isreg() else None)
    data = (tmp_path / "huge.tar").read_bytes()
    spec = parse_spec({**json.loads(make_spec(401).to_bytes()), "output": {"match": ["a"]}})
    files: dict[str, bytes] = {"/results/huge": data}
    with serve(files) as base:
        requester, job_id = _submitted_job(devnet, b"\x00" * 32, f"{base}/results/huge", files, spec=spec)
        dest = tmp_path / "fetched"
        with pytest.raises(ResultMismatch, match="not a depin-result-v1 archive.*nothing extracted"):
            requester.download_result(job_id, dest)
    assert not dest.exists()


@pytest.mark.parametrize(("name", "target", "inside"), [("l", "a", True), ("d/l", "..", True), ("l", "..", False),
                                                        ("d/l", "../../x", False), ("l", "/etc", False), ("l", "a/../../b", False)])
def test_the_second_line_still_keeps_link_targets_inside_without_following_links(tmp_path: Path, name: str, target: str, inside: bool) -> None:
    """The extraction's second line no longer resolves a link's target through the links already
    extracted (the chain above), but still refuses, lexically, one that leaves the folder."""
    from depin.outputs import _second_line

    member = tarfile.TarInfo(name)
    member.type, member.linkname, member.mtime = tarfile.SYMTYPE, target, 10**30
    if inside:
        checked = _second_line(member, str(tmp_path))
        assert (checked.linkname, checked.mtime, checked.uid, checked.uname) == (target, 0, None, None)
    else:
        with pytest.raises(tarfile.FilterError):
            _second_line(member, str(tmp_path))


def test_a_result_64_levels_deep_extracts(tmp_path: Path) -> None:
    """64 levels below out/ is what the format holds (the walk's limit): extracted."""
    archive = tmp_path / "deep.tar"
    _hostile_archive(archive, [*(("dir", "/".join(["d"] * k), "") for k in range(1, 64)), ("file", "/".join(["d"] * 63 + ["f"]), "f\n")])
    assert extract_archive(archive, tmp_path / "dest") == 0
    assert (tmp_path / "dest").joinpath(*["d"] * 63, "f").read_text() == "f\n"


def test_a_name_windows_cannot_hold_is_refused_on_windows_with_its_name(devnet: Devnet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An honest Linux job may write ``src/aux.c``; on Windows that name is the AUX device. The
    requester's extraction there (stood in for by depin.outputs._WINDOWS: Windows cannot run here)
    refuses the result with one line naming the member and saying it extracts on Linux or macOS,
    nothing extracted; on Linux the same result extracts."""
    import depin.outputs as outputs_module

    data = _hostile_archive(tmp_path / "aux.tar", [("dir", "src", ""), ("file", "src/aux.c", "int aux;\n")])
    files: dict[str, bytes] = {}
    with serve(files) as base:
        requester, job_id = _served_job(devnet, data, files, base, "aux")
        fetched = requester.download_result(job_id, tmp_path / "linux")
        assert (fetched.path / "src" / "aux.c").read_text() == "int aux;\n"
        monkeypatch.setattr(outputs_module, "_WINDOWS", True)
        with pytest.raises(ResultUnsafe, match=r"out/src/aux\.c: .*Windows cannot hold.*nothing extracted"):
            requester.download_result(job_id, tmp_path / "windows")
        assert not (tmp_path / "windows").exists()
        line = fails("job", "result", job_id, "--out", tmp_path / "cli", *net(devnet), match="out/src/aux.c")
        assert "Windows" in line and "Linux" in line
        assert not (tmp_path / "cli").exists()
