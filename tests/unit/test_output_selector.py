"""The spec's verify mode and output selector, and the match digest (depin.outputs): the same
bytes from the output folder and from the archive, deterministic, blind to what is not selected;
bad selectors are a clear SpecError."""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depin.errors import SpecError
from depin.outputs import (
    MAX_SELECTION_WORK,
    Entry,
    InvalidOutput,
    UnsafeArchive,
    build_archive,
    check_pattern,
    match_digest,
    path_selected,
    selected,
)
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


# ---------------------------------------------------------------------------------------- cost


def _reference_selected(rel: str, patterns: list[str]) -> bool:
    """The selection as first written: every pattern tried on every prefix of the path (the module
    doc's rule, word for word), the meaning the automaton must keep."""

    def match(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
        @functools.cache
        def go(i: int, j: int) -> bool:
            if i == len(pattern):
                return j == len(parts)
            if pattern[i] == "**":
                return go(i + 1, j) or (j < len(parts) and go(i, j + 1))
            return j < len(parts) and fnmatch.fnmatchcase(parts[j], pattern[i]) and go(i + 1, j + 1)

        return go(0, 0)

    parts = tuple(rel.split("/"))
    return any(match(tuple(p.split("/")), parts[:n]) for p in patterns for n in range(1, len(parts) + 1))


_NAMES = st.sampled_from(["a", "b", "ab", "ba", ".a", "a.csv", "b1"])
_GLOBS = st.sampled_from(["a", "b", "*", "?", "a*", "*a", "[ab]", "[!a]*", "**", "*.csv", "b?", "ab"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    paths=st.lists(st.lists(_NAMES, min_size=1, max_size=6).map("/".join), min_size=1, max_size=12),
    patterns=st.lists(st.lists(_GLOBS, min_size=1, max_size=5).map("/".join), min_size=1, max_size=4),
)
def test_the_automaton_selects_what_every_prefix_tried_selects(paths: list[str], patterns: list[str]) -> None:
    # the tree: every path and the directories on the way, sorted as the walker lists them
    rels = sorted({"/".join(p.split("/")[:n]) for p in paths for n in range(1, p.count("/") + 2)})
    entries = [Entry(rel, "dir" if any(o.startswith(rel + "/") for o in rels) else "file") for rel in rels]
    for rel in rels:
        assert path_selected(rel, patterns) is _reference_selected(rel, patterns), (rel, patterns)
    expected = {rel for rel in rels if _reference_selected(rel, patterns)}
    expected |= {"/".join(rel.split("/")[:n]) for rel in expected for n in range(1, rel.count("/") + 1)}
    assert [e.rel for e in selected(entries, patterns)] == [rel for rel in rels if rel in expected]


def _deep_tree(depth: int, files: int) -> list[Entry]:
    dirs = ["/".join(["d"] * n) for n in range(1, depth + 1)]
    return [Entry(d, "dir") for d in dirs] + [Entry(f"{dirs[-1]}/f{i}", "file") for i in range(files)]


def test_an_entry_costs_one_glob_test_per_pattern_whatever_its_depth(monkeypatch: pytest.MonkeyPatch) -> None:
    """260 entries 60 deep under 64 patterns of 59-63 components: every pattern tried on every
    prefix made about 30 million glob tests (20 s); the automaton, continuing each parent's
    state, makes at most one per entry and pattern. A count of fnmatchcase calls, not a time."""
    calls = []
    real = fnmatch.fnmatchcase
    monkeypatch.setattr(fnmatch, "fnmatchcase", lambda name, glob: calls.append(glob) or real(name, glob))
    entries = _deep_tree(60, 200)
    patterns = ["/".join(["[d]"] * (62 - k % 5) + [f"x{k}"]) for k in range(64)]
    assert selected(entries, patterns) == []
    assert 0 < len(calls) <= len(entries) * len(patterns)


def test_a_selection_beyond_the_work_limit_is_an_invalid_output(tmp_path: Path) -> None:
    """Entries times pattern components above MAX_SELECTION_WORK: the provider's output is
    OUTPUT_INVALID (build_archive), and an archive holding such an output is no result archive for
    that selector (match_digest), before any glob test."""
    patterns = ["/".join(["a"] * 512)] * 64  # 32,768 components, the most a spec can name
    assert 64 * 512 * 1_024 == MAX_SELECTION_WORK
    out = tmp_path / "out"
    out.mkdir()
    for i in range(1_024):
        (out / f"f{i}").touch()
    build_archive(out, 0, tmp_path / "ok.tar", select=patterns)  # 1,024 entries: at the limit
    (out / "one-more").touch()
    with pytest.raises(InvalidOutput, match="32768 pattern components over 1025 entries make 33587200 selection steps"):
        build_archive(out, 0, tmp_path / "sel.tar", select=patterns)
    archive = build_archive(out, 0, tmp_path / "r.tar")
    with pytest.raises(UnsafeArchive, match="not a depin-result-v1 archive under this selector"):
        match_digest(archive.path, patterns)
    assert match_digest(archive.path, patterns[:63]) != archive.digest  # under the limit it applies


def test_the_executor_fails_a_selection_beyond_the_limit_as_output_invalid(tmp_path: Path) -> None:
    from executor.execute import selected_digest

    out = tmp_path / "out"
    out.mkdir()
    for i in range(1_025):
        (out / f"f{i}").touch()
    archive = build_archive(out, 0, tmp_path / "r.tar")
    with pytest.raises(InvalidOutput, match="selection steps"):
        selected_digest(archive, ["/".join(["a"] * 512)] * 64)
