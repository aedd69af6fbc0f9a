"""The spec's verify mode and output selector, and the match digest (depin.outputs): the same
bytes from the output folder and from the archive, deterministic, blind to what is not selected;
bad selectors are a clear SpecError."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from depin.errors import SpecError
from depin.outputs import build_archive, check_pattern, match_digest, path_selected
from depin.spec import JobSpec, parse_spec, spec_hash

DIGEST = "ab" * 32


def _spec(**over: object) -> dict:
    spec: dict = {
        "v": 1,
        "image": f"depin/checksum@sha256:{DIGEST}",
        "command": ["sh", "-c", "true"],
        "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 30},
    }
    spec.update(over)
    return spec


def _fill(root: Path, stamp: str = "t0") -> None:
    (root / "data" / "deep").mkdir(parents=True)
    (root / "logs").mkdir()
    (root / "result.json").write_text('{"answer": 42}\n')
    (root / "data" / "a.csv").write_text("1,2\n")
    (root / "data" / "deep" / "b.csv").write_text("3,4\n")
    (root / "data" / "deep" / "notes.txt").write_text(f"written at {stamp}\n")
    (root / "logs" / "run.log").write_text(f"started {stamp}\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "latest").symlink_to("result.json")


# ---------------------------------------------------------------------------------------- spec


def test_defaults_reexec_and_no_selector() -> None:
    spec = parse_spec(_spec())
    assert spec.verify == "reexec" and spec.output is None and spec.match is None
    raw = spec.to_bytes()
    assert b'"verify"' not in raw and b'"output"' not in raw  # the bytes of a spec written before these fields
    assert parse_spec(raw, spec_hash(raw)) == spec
    spelled = json.dumps({**json.loads(raw), "verify": "reexec"}, sort_keys=True, separators=(",", ":")).encode()
    assert parse_spec(spelled, spec_hash(spelled)) == spec  # canonical too, another hash


def test_verify_none_and_a_selector_round_trip_canonically() -> None:
    spec = parse_spec(_spec(verify="none", output={"match": ["result.json", "data/**/*.csv"]}))
    assert spec.verify == "none" and spec.match == ["result.json", "data/**/*.csv"]
    raw = spec.to_bytes()
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    assert parse_spec(raw, spec_hash(raw)) == spec


def test_a_spec_without_the_new_fields_keeps_its_bytes() -> None:
    raw = json.dumps(_spec(), sort_keys=True, separators=(",", ":")).encode()
    assert parse_spec(raw, spec_hash(raw)).verify == "reexec"  # old posted specs stay valid and canonical


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"verify": "maybe"}, "verify"),
        ({"output": {"match": []}}, "1 to 64 patterns"),
        ({"output": {"match": ["../etc/passwd"]}}, "'..'"),
        ({"output": {"match": ["a/../b"]}}, "'..'"),
        ({"output": {"match": ["/etc/passwd"]}}, "absolute"),
        ({"output": {"match": ["a//b"]}}, "empty"),
        ({"output": {"match": ["./a"]}}, "'.'"),
        ({"output": {"match": [""]}}, "non-empty"),
        ({"output": {"match": ["a\\b"]}}, "backslash"),
        ({"output": {"match": ["a\nb"]}}, "control character"),
        ({"output": {"match": ["x**"]}}, "whole component"),
        ({"output": {"match": ["x" * 1025]}}, "longer than 1024"),
        ({"output": {"match": ["a"] * 65}}, "1 to 64 patterns"),
        ({"output": {"match": "result.json"}}, "output.match"),
        ({"output": {"match": ["a"], "other": 1}}, "Extra inputs"),
        ({"output": ["a"]}, "output"),
    ],
)
def test_bad_selectors_are_a_clear_spec_error(over: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(json.dumps(_spec(**over)).encode())
    assert message in str(info.value)
    assert str(info.value).startswith("invalid spec: ")


# ---------------------------------------------------------------------------------------- patterns


@pytest.mark.parametrize(
    ("rel", "patterns", "expected"),
    [
        ("result.json", ["result.json"], True),
        ("data/a.csv", ["data"], True),  # a directory selects its subtree
        ("data/deep/b.csv", ["data/**/*.csv"], True),
        ("data/a.csv", ["data/**/*.csv"], True),  # ** matches zero components
        ("data/deep/notes.txt", ["data/**/*.csv"], False),
        ("data/a.csv", ["*.csv"], False),  # * never crosses /
        ("data/a.csv", ["**/*.csv"], True),
        ("Result.json", ["result.json"], False),  # case-sensitive
        ("r1.json", ["r?.json", "x"], True),
        ("r1.json", ["r[0-9].json"], True),
    ],
)
def test_pattern_semantics(rel: str, patterns: list[str], expected: bool) -> None:
    assert path_selected(rel, patterns) is expected


def test_check_pattern_accepts_globs() -> None:
    for good in ("a", "a/b", "**", "**/x", "x/**", "[ab]*.txt", "dir.with.dots/f-1_2"):
        assert check_pattern(good) is None, good


# ---------------------------------------------------------------------------------------- digest


def test_no_selector_is_the_archive_digest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _fill(out)
    archive = build_archive(out, 0, tmp_path / "r.tar")
    assert match_digest(archive.path, None) == archive.digest == hashlib.sha256(archive.path.read_bytes()).digest()


@pytest.mark.parametrize("patterns", [["result.json"], ["data/**/*.csv", "latest"], ["data"], ["run.sh", "**/b.csv"], ["nothing-matches"], ["**"]])
def test_match_digest_from_the_archive_is_the_archive_of_the_selection(tmp_path: Path, patterns: list[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _fill(out)
    full = build_archive(out, 3, tmp_path / "full.tar")
    from_dir = build_archive(out, 3, tmp_path / "sel.tar", select=patterns)
    assert match_digest(full.path, patterns) == from_dir.digest
    # ... and that is the plain archive of a folder holding only the selection
    only = tmp_path / "only"
    only.mkdir()
    _fill(only)
    for path in sorted(only.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        is_dir = path.is_dir() and not path.is_symlink()
        keep = path_selected(path.relative_to(only).as_posix(), patterns)
        if is_dir:  # a directory stays when it holds a selected entry (the way to it)
            keep = keep or any(path_selected(c.relative_to(only).as_posix(), patterns) for c in path.rglob("*"))
        if not keep:
            shutil.rmtree(path) if is_dir else path.unlink()
    assert build_archive(only, 3, tmp_path / "only.tar").digest == from_dir.digest
    if patterns == ["**"]:
        assert from_dir.digest == full.digest


def test_what_is_not_selected_does_not_matter(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for d, stamp in ((one, "09:00"), (two, "17:42")):
        d.mkdir()
        _fill(d, stamp)
    a = build_archive(one, 0, tmp_path / "a.tar")
    b = build_archive(two, 0, tmp_path / "b.tar")
    assert a.digest != b.digest  # the logs differ
    sel = ["result.json", "data/**/*.csv"]
    assert match_digest(a.path, sel) == match_digest(b.path, sel)
    assert match_digest(a.path, sel) == match_digest(a.path, sel)  # deterministic
    assert match_digest(a.path, ["logs"]) != match_digest(b.path, ["logs"])
    # the exit code is always part of it
    c = build_archive(one, 1, tmp_path / "c.tar")
    assert match_digest(c.path, sel) != match_digest(a.path, sel)


def test_the_spec_selector_feeds_the_digest(tmp_path: Path) -> None:
    spec = JobSpec.model_validate(_spec(output={"match": ["result.json"]}))
    out = tmp_path / "out"
    out.mkdir()
    _fill(out)
    archive = build_archive(out, 0, tmp_path / "r.tar")
    assert match_digest(archive.path, spec.match) != archive.digest
    with pytest.raises(ValueError, match="'..'"):
        match_digest(archive.path, ["../x"])
