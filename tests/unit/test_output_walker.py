"""The output walker's limits (depth, path length, entry count, bytes): counted exactly, never
recursive, never blind below PATH_MAX; every breach an InvalidOutput / OutputTooLarge, not a crash."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from depin.outputs import (
    MAX_DEPTH,
    InvalidOutput,
    OutputLimits,
    OutputTooLarge,
    build_archive,
    extract_archive,
    walk_output,
)
from executor.containers import output_size


def _nest(root: Path, names: list[str], leaf: bytes | None = None) -> None:
    """Creates root/names[0]/names[1]/... one level at a time through directory descriptors (the
    whole path may exceed PATH_MAX), with a file `leaf` of those bytes at the bottom."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        if leaf is not None:
            leaf_fd = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(leaf_fd, leaf)
            os.close(leaf_fd)
    finally:
        os.close(fd)


def _unnest(root: Path, name: str) -> None:
    """Removes a chain root/name/name/... of any depth one level at a time (pytest's own clean-up of
    old temp folders recurses once per level and fails at 1,000)."""
    top, spare = root / name, root / (name + ".next")
    while top.exists():
        if (top / name).exists():
            os.rename(top / name, spare)
            os.rmdir(top)
            os.rename(spare, top)
        else:
            top.rmdir()


def test_a_thousand_nested_folders_are_invalid_not_a_recursion_error(tmp_path: Path) -> None:
    """1,000 nested one-letter folders (what made os.walk raise RecursionError) are InvalidOutput."""
    _nest(tmp_path, ["a"] * 1000)
    try:
        with pytest.raises(InvalidOutput, match=f"65 levels deep; the format allows at most {MAX_DEPTH}"):
            walk_output(tmp_path)
        with pytest.raises(InvalidOutput):
            output_size(tmp_path)
        with pytest.raises(InvalidOutput):
            build_archive(tmp_path, 0, tmp_path.parent / "r.tar")
        assert not list(tmp_path.parent.glob("r.tar*"))
    finally:
        _unnest(tmp_path, "a")
    assert list(tmp_path.iterdir()) == []


def test_depth_limit_is_exact(tmp_path: Path) -> None:
    """An entry exactly max_depth levels down is fine; one more level is not."""
    ok, deep = tmp_path / "ok", tmp_path / "deep"
    ok.mkdir()
    deep.mkdir()
    _nest(ok, ["d"] * 4)  # d, d/d, d/d/d, d/d/d/d: depths 1..4
    _nest(deep, ["d"] * 5)
    tree = walk_output(ok, OutputLimits(max_depth=4))
    assert [e.rel for e in tree.entries] == ["d", "d/d", "d/d/d", "d/d/d/d"]
    with pytest.raises(InvalidOutput, match="5 levels deep"):
        walk_output(deep, OutputLimits(max_depth=4))


def test_long_nested_names_are_invalid_not_a_file_name_too_long(tmp_path: Path) -> None:
    """30 nested 200-character folder names (6,030 bytes of path, past PATH_MAX: what raised
    ENAMETOOLONG) are InvalidOutput naming the path length."""
    _nest(tmp_path, ["n" * 200] * 30, leaf=b"x")
    with pytest.raises(InvalidOutput, match="byte path; the format allows at most 1024"):
        walk_output(tmp_path)
    with pytest.raises(InvalidOutput, match="byte path"):
        output_size(tmp_path)


def test_path_length_limit_is_exact(tmp_path: Path) -> None:
    (tmp_path / ("p" * 10)).write_bytes(b"")
    assert len(walk_output(tmp_path, OutputLimits(max_path_bytes=10)).entries) == 1
    with pytest.raises(InvalidOutput, match="11-byte path"):
        (tmp_path / ("q" * 11)).write_bytes(b"")
        walk_output(tmp_path, OutputLimits(max_path_bytes=10))


def test_entries_deeper_than_path_max_are_counted_not_skipped(tmp_path: Path) -> None:
    """With generous limits the walk reaches a file 6,000 bytes of path down (os.walk silently
    skipped such files) and counts its bytes exactly: it walks through directory descriptors."""
    _nest(tmp_path, ["n" * 200] * 30, leaf=b"y" * 12345)
    (tmp_path / "top").write_bytes(b"z" * 7)
    generous = OutputLimits(max_depth=100, max_path_bytes=100_000)
    tree = walk_output(tmp_path, generous)
    assert tree.total_bytes == 12345 + 7
    assert len(tree.entries) == 30 + 1 + 1
    assert output_size(tmp_path, generous) == 12345 + 7


def test_entry_count_limit_is_exact(tmp_path: Path) -> None:
    for i in range(10):
        (tmp_path / f"f{i}").write_bytes(b"")
    assert len(walk_output(tmp_path, OutputLimits(max_entries=10)).entries) == 10
    (tmp_path / "one-more").mkdir()
    with pytest.raises(InvalidOutput, match="more than 10 entries"):
        walk_output(tmp_path, OutputLimits(max_entries=10))


def test_byte_limit_is_exact_and_counts_every_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a").write_bytes(b"a" * 600)
    (tmp_path / "sub" / "b").write_bytes(b"b" * 400)
    (tmp_path / "sub" / "link").symlink_to("../a")  # a link holds no bytes of its own
    assert walk_output(tmp_path, OutputLimits(max_bytes=1000)).total_bytes == 1000
    (tmp_path / "sub" / "c").write_bytes(b"c")
    with pytest.raises(OutputTooLarge, match="the job's limit is 1000"):
        walk_output(tmp_path, OutputLimits(max_bytes=1000))
    with pytest.raises(OutputTooLarge):
        build_archive(tmp_path, 0, tmp_path.parent / "r.tar", max_bytes=1000)


def test_symbolic_links_to_folders_are_never_followed(tmp_path: Path) -> None:
    """A link to / (or to a folder of the output) is one entry: nothing behind it is walked."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"1234")
    (tmp_path / "root").symlink_to("/")
    (tmp_path / "again").symlink_to("d")
    tree = walk_output(tmp_path)
    assert [(e.rel, e.kind) for e in tree.entries] == [("again", "link"), ("d", "dir"), ("d/f", "file"), ("root", "link")]
    assert tree.total_bytes == 4


def test_a_missing_output_folder_is_empty(tmp_path: Path) -> None:
    assert walk_output(tmp_path / "nope").entries == []
    assert output_size(tmp_path / "nope") == 0


def test_the_provider_running_out_of_descriptors_is_not_blamed_on_the_output(tmp_path: Path) -> None:
    """EMFILE (the provider's own limit) escapes as OSError, never as InvalidOutput: a
    provider-side fault must not become a failure code against the job."""
    _nest(tmp_path, ["d"] * 40)
    code = (
        "import resource, sys\n"
        "from depin.outputs import walk_output, InvalidOutput\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (12, 12))\n"
        "try:\n"
        f"    walk_output({str(tmp_path)!r})\n"
        "except InvalidOutput:\n"
        "    print('invalid')\n"
        "except OSError as exc:\n"
        "    print('oserror', exc.errno)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2], timeout=60)
    assert out.stdout.split() == ["oserror", str(errno.EMFILE)], out.stderr


NFC = unicodedata.normalize("NFC", "caf\u00e9")
NFD = unicodedata.normalize("NFD", "caf\u00e9")
COLLIDING = {  # names one folder holds, the requester's extraction would refuse as one name on macOS / Windows
    "case": ["Makefile", "makefile"],
    "nfc-nfd": [NFC, NFD],
    "casefold": ["stra\u00dfe", "STRASSE"],
    "directories": ["D/", "d/"],
    "file-and-directory": ["Data", "data/"],
    "below-a-folder": ["sub/", "sub/README", "sub/readme"],
}


def _make(root: Path, names: list[str]) -> None:
    for name in names:
        if name.endswith("/"):
            (root / name).mkdir()
        else:
            (root / name).write_text(name + "\n")


@pytest.mark.parametrize("case", sorted(COLLIDING))
def test_names_that_collide_where_case_or_normalization_do_not_count_are_invalid(tmp_path: Path, case: str) -> None:
    """An output holding two names in one folder that are one name on a case-insensitive or
    normalizing file system (macOS, Windows) is no result: the requester's extraction refuses it
    (:func:`depin.outputs._fold`), so the provider's walk does too (OUTPUT_INVALID), and an honest
    Linux job writing ``Makefile`` and ``makefile`` fails instead of being paid for a result
    nobody can extract."""
    out = tmp_path / "out"
    out.mkdir()
    _make(out, COLLIDING[case])
    with pytest.raises(InvalidOutput, match="collide where case or Unicode normalization does not count"):
        walk_output(out)
    with pytest.raises(InvalidOutput, match="collide"):
        build_archive(out, 0, tmp_path / "r.tar")
    assert not (tmp_path / "r.tar").exists()


def test_names_that_differ_elsewhere_still_walk_and_a_running_job_is_only_measured(tmp_path: Path) -> None:
    """The rule is per folder and folds case and normalization only: ``one/Makefile`` and
    ``two/makefile``, ``result.json`` and ``result.json5`` are an output, and extract. The
    measurement of a watched run (:func:`output_size`, while the job still writes) counts a
    colliding pair without refusing it: the finished output's walk decides."""
    out = tmp_path / "out"
    out.mkdir()
    _make(out, ["one/", "one/Makefile", "two/", "two/makefile", "result.json", "result.json5", NFC])
    archive = build_archive(out, 0, tmp_path / "r.tar")
    assert extract_archive(archive.path, tmp_path / "x") == 0
    assert (tmp_path / "x" / "two" / "makefile").read_text() == "two/makefile\n"
    _make(out, ["Result.json"])
    assert output_size(out) == walk_output(out, collisions=False).total_bytes > 0
    with pytest.raises(InvalidOutput, match="out/Result.json and out/result.json collide"):
        walk_output(out)
