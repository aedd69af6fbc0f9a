#!/usr/bin/env python3
"""The mypy baseline: type errors that exist today may stay, new ones fail, fixed ones must leave.

``tools/mypy-baseline.txt`` holds one line per mypy error, normalised to ``path: [code] message``
(line and column numbers stripped, because lines move) and sorted. The check runs mypy with the
``[tool.mypy]`` settings of pyproject.toml and compares the two as multisets:

- an error that is not in the baseline (or one more of a kind than the baseline holds) fails:
  "new type error: ...";
- a baseline line mypy no longer reports fails: "fixed: delete this line from
  tools/mypy-baseline.txt", so the baseline only shrinks and never hides a new error.

Usage (from the repository root; ``make lint`` and tests/test_lint.py run the check)::

    .venv/bin/python tools/mypy_baseline.py            # check; exit 1 with the differences
    .venv/bin/python tools/mypy_baseline.py --update   # rewrite the baseline (review the diff)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "tools" / "mypy-baseline.txt"
ERROR = re.compile(r"^(?P<path>[^:\s]+\.py):\d+(?::\d+)?: error: (?P<message>.*?)\s+\[(?P<code>[a-z0-9-]+)\]$")


def run_mypy() -> str:
    """mypy's output over the packages pyproject.toml names, with the project venv's interpreter."""
    command = [sys.executable, "-m", "mypy", "--no-error-summary", "--show-error-codes", "--no-pretty", "--show-column-numbers"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):  # 2: mypy itself failed (bad config, crash)
        raise SystemExit(f"mypy failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def normalize(output: str) -> list[str]:
    """``path: [code] message`` for every error line of mypy's output (notes dropped), sorted."""
    found = []
    for line in output.splitlines():
        match = ERROR.match(line.strip())
        if match:
            found.append(f"{match['path']}: [{match['code']}] {match['message']}")
    return sorted(found)


def read_baseline(path: Path = BASELINE) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def differences(current: list[str], baseline: list[str]) -> tuple[list[str], list[str]]:
    """(new errors, fixed baseline lines), both as multiset differences."""
    now, before = Counter(current), Counter(baseline)
    return sorted((now - before).elements()), sorted((before - now).elements())


def report(new: list[str], fixed: list[str]) -> str:
    lines = [f"new type error: {e}" for e in new]
    lines += [f"fixed: delete this line from tools/mypy-baseline.txt: {e}" for e in fixed]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite tools/mypy-baseline.txt from mypy's output")
    args = parser.parse_args(argv)
    current = normalize(run_mypy())
    if args.update:
        BASELINE.write_text("".join(f"{line}\n" for line in current))
        print(f"wrote {len(current)} lines to {BASELINE.relative_to(ROOT)}")
        return 0
    new, fixed = differences(current, read_baseline())
    if new or fixed:
        print(report(new, fixed))
        return 1
    print(f"mypy: {len(current)} errors, all in the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
