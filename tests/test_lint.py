"""The lint and type checks of `make lint` (a prerequisite of `make test`), as tests.

- ruff with pyproject.toml's ``[tool.ruff]`` settings: no finding;
- import-linter (``lint-imports`` in .venv-lint) with pyproject.toml's ``[tool.importlinter]``
  contracts: every contract kept;
- mypy (``[tool.mypy]``) against ``tools/mypy-baseline.txt``: no new error, and no baseline line
  that mypy no longer reports (tools/mypy_baseline.py; the baseline only shrinks);
- ``forge fmt --check contracts`` (Foundry's formatter, its default style: no foundry.toml, which
  would make slither's crytic-compile build with forge instead of the project's solc): the Solidity
  is formatted.

While issue 10's work packages are in flight, the SDK (A) and the indexer and executor (B) are
being reworked in parallel: ``RUFF_PENDING`` and ``KNOWN_BROKEN_CONTRACTS`` name what they are
fixing. A kept contract that is still listed fails the test (delete its line), so both lists only
shrink; the lead empties them after merging the work packages.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
LINT_IMPORTS = ROOT / ".venv-lint" / "bin" / "lint-imports"
BASELINE = ROOT / "tools" / "mypy-baseline.txt"
# The baseline may only shrink: lower this number by hand when it does.
MAX_BASELINE_ERRORS = 35


# import-linter contracts broken today -> who fixes them (the lead empties this at merge).
KNOWN_BROKEN_CONTRACTS: dict[str, str] = {}


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


def contract_ids() -> dict[str, str]:
    """Contract name -> id, from pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["name"]: c["id"] for c in config["tool"]["importlinter"]["contracts"]}


def contract_results(output: str) -> dict[str, str]:
    """Contract id -> KEPT or BROKEN, from lint-imports' summary."""
    names = contract_ids()
    found = {}
    for line in output.splitlines():
        match = re.match(r"^(?P<name>.+?) (?P<result>KEPT|BROKEN)\b", line)
        if match and match["name"] in names:
            found[names[match["name"]]] = match["result"]
    return found


def test_ruff_finds_nothing() -> None:
    ruff = VENV_BIN / "ruff"
    proc = run([str(ruff), "check", "--no-cache", "--output-format", "concise", "."])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_contracts() -> None:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: run `make setup` (it makes .venv-lint from requirements-lint.lock)")
    # wide lines: lint-imports wraps its summary at the terminal width
    proc = run([str(LINT_IMPORTS), "--no-cache"], env={**os.environ, "COLUMNS": "400"})
    results = contract_results(proc.stdout)
    assert set(results) == set(contract_ids().values()), proc.stdout + proc.stderr
    broken = {c for c, r in results.items() if r == "BROKEN"}
    unexpected = broken - set(KNOWN_BROKEN_CONTRACTS)
    fixed = set(KNOWN_BROKEN_CONTRACTS) - broken
    assert not unexpected, f"broken import contracts: {sorted(unexpected)}\n{proc.stdout}"
    assert not fixed, f"kept now: delete {sorted(fixed)} from KNOWN_BROKEN_CONTRACTS in tests/test_lint.py"


def test_mypy_baseline_only_shrinks() -> None:
    proc = run([sys.executable, "tools/mypy_baseline.py"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    errors = [line for line in BASELINE.read_text().splitlines() if line.strip()]
    assert len(errors) <= MAX_BASELINE_ERRORS, f"{BASELINE} grew to {len(errors)} lines (at most {MAX_BASELINE_ERRORS})"


def test_readme_boundaries_name_real_tests() -> None:
    """Every test id in the README's "Boundaries" table names a test function that exists."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Boundaries") :]
    section = section[: section.index("\n#")]
    ids = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", section))
    assert len(ids) >= 5, f"the Boundaries table names {len(ids)} tests"
    missing = []
    for path, name in sorted(ids):
        source = ROOT / path
        defined = source.exists() and any(
            isinstance(node, ast.FunctionDef) and node.name == name for node in ast.parse(source.read_text()).body
        )
        if not defined:
            missing.append(f"{path}::{name}")
    assert not missing, f"README names tests that do not exist: {missing}"


def solidity_sources(folder: Path) -> list[str]:
    """The project's Solidity files under `folder`, relative to ROOT when inside it: hidden folders
    left out. ``ape compile`` copies its dependencies' sources (OpenZeppelin) into
    ``contracts/.cache`` (gitignored), which is not our code and not in Foundry's style: given the
    folder, ``forge fmt --check`` read them too and failed in any clone that had compiled."""
    found = (p for p in sorted(folder.rglob("*.sol")) if not any(part.startswith(".") for part in p.relative_to(folder).parts))
    return [str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in found]


def test_solidity_formatted() -> None:
    sources = solidity_sources(ROOT / "contracts")
    assert sources, "no Solidity file under contracts/"
    proc = run([str(ROOT / "tools" / "forge"), "fmt", "--check", *sources])
    assert proc.returncode == 0, "run `tools/forge fmt contracts`:\n" + proc.stdout + proc.stderr


def test_the_format_check_skips_apes_dependency_cache(tmp_path: Path) -> None:
    """A badly formatted file in ``contracts/.cache`` (where ``ape compile`` puts OpenZeppelin's
    sources) fails ``forge fmt --check`` on the folder, never the check of :func:`solidity_sources`."""
    contracts = tmp_path / "contracts"
    (contracts / ".cache" / "dep").mkdir(parents=True)
    (contracts / "Ours.sol").write_text("// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\n\ncontract Ours {}\n")
    (contracts / ".cache" / "dep" / "Theirs.sol").write_text("pragma solidity ^0.8.0;\ncontract   Theirs {  }\n")
    forge = str(ROOT / "tools" / "forge")
    assert run([forge, "fmt", "--check", str(contracts)]).returncode != 0, "forge fmt no longer reads hidden folders"
    sources = solidity_sources(contracts)
    assert sources == [str(contracts / "Ours.sol")]
    proc = run([forge, "fmt", "--check", *sources])
    assert proc.returncode == 0, proc.stdout + proc.stderr
