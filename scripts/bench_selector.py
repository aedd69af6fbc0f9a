"""The output selector's cost (``depin.outputs.selected``): what a job's output and its requester's
``output.match`` make a provider, a verifier and a requester compute for the match digest.

Three cases, each timed (best of ``--reps``) and counted (``fnmatchcase`` calls, deterministic):

- ``deep``: 260 entries 60 levels deep under 64 patterns of 59-63 set components (``[d]/[d]/...``):
  the case that took about 20 s before each pattern ran as an automaton along the path;
- ``adversarial_at_cap``: the costliest selection this script knows how to build within
  ``MAX_SELECTION_WORK``: 64 patterns alternating ``**`` and a distinct set (about 190 components
  each), over as many entries 61 deep as the cap allows;
- ``wide``: 65,536 entries (the format's maximum) in 66 folders under 3 ordinary patterns.

    .venv/bin/python scripts/bench_selector.py [--reps N] [--quick] [--json FILE]

Prints a table; ``--json`` writes the figures. ``--quick`` shrinks the cases (a smoke run).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from depin import outputs
from depin.outputs import MAX_SELECTION_WORK, Entry, selected


def _deep_tree(depth: int, files: int) -> list[Entry]:
    dirs = ["/".join(["d"] * n) for n in range(1, depth + 1)]
    return [Entry(d, "dir") for d in dirs] + [Entry(f"{dirs[-1]}/f{i}", "file") for i in range(files)]


def _alternating(k: int, limit: int = 1024) -> str:
    """``**/[d0k]/**/[d1k]/.../zz``: every set matches the components named ``d``; ``zz`` never does."""
    comps: list[str] = []
    i = 0
    while len("/".join([*comps, "**", f"[d{i}{k}]", "zz"])) <= limit:
        comps += ["**", f"[d{i}{k}]"]
        i += 1
    return "/".join([*comps, "zz"])


def _components(patterns: list[str]) -> int:
    return sum(p.count("/") + 1 for p in patterns)


def cases(quick: bool) -> dict[str, tuple[list[Entry], list[str]]]:
    deep_patterns = ["/".join(["[d]"] * (62 - k % 5) + [f"x{k}"]) for k in range(8 if quick else 64)]
    adversarial = [_alternating(k) for k in range(8 if quick else 64)]
    at_cap = MAX_SELECTION_WORK // _components(adversarial) - 61
    if quick:
        at_cap = 200
    folders = [Entry(f"dir{i:02d}", "dir") for i in range(66)]
    n_wide = 2_000 if quick else 65_536 - len(folders)
    wide = sorted(folders + [Entry(f"dir{i % 66:02d}/f{i}.csv", "file") for i in range(n_wide)], key=lambda e: e.rel)
    return {
        "deep": (_deep_tree(60, 40 if quick else 200), deep_patterns),
        "adversarial_at_cap": (_deep_tree(61, at_cap), adversarial),
        "wide": (wide, ["result.json", "dir01/**/*.csv", "**/f1*.csv"]),
    }


def measure(entries: list[Entry], patterns: list[str], reps: int) -> dict[str, Any]:
    calls = 0
    real: Callable[[str, str], bool] = fnmatch.fnmatchcase

    def counting(name: str, glob: str) -> bool:
        nonlocal calls
        calls += 1
        return real(name, glob)

    times = []
    chosen = first_calls = 0
    outputs.fnmatch.fnmatchcase = counting  # type: ignore[assignment]
    try:
        for rep in range(reps):
            calls_before = calls
            t0 = time.perf_counter()
            chosen = len(selected(entries, patterns))
            times.append(time.perf_counter() - t0)
            if rep == 0:
                first_calls = calls - calls_before
    finally:
        outputs.fnmatch.fnmatchcase = real  # type: ignore[assignment]
    work = len(entries) * _components(patterns)
    return {
        "entries": len(entries),
        "patterns": len(patterns),
        "components": _components(patterns),
        "work": work,
        "work_cap": MAX_SELECTION_WORK,
        "glob_tests": first_calls,
        "selected": chosen,
        "seconds_best": min(times),
        "seconds_runs": times,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="timed runs of each case (best is reported)")
    parser.add_argument("--quick", action="store_true", help="small cases (a smoke run; the figures mean nothing)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    results = {name: measure(entries, patterns, args.reps) for name, (entries, patterns) in cases(args.quick).items()}
    print("| case | entries | patterns | components | work (cap 2^25) | glob tests | selected | best s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['entries']:,} | {r['patterns']} | {r['components']:,} | {r['work']:,} | {r['glob_tests']:,} "
              f"| {r['selected']:,} | {r['seconds_best']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"quick": args.quick, "reps": args.reps, "cases": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
