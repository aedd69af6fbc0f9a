"""Deploys use a build of the current sources, also when only an *imported* file changed.

ape's incremental compile recompiles a contract only when its own file changed. When the
OutputInvalid failure code (7) was added to IJobMarket.sol's FailureCode enum, JobMarket.sol itself
did not change, so a checkout whose ``.build/`` predated the change kept deploying the old JobMarket,
whose ``submitFailure`` reverts ``InvalidFailureCode(7)``: the executor's OUTPUT_INVALID submissions
never landed and the jobs timed out (tests/executor/test_hostile_outputs.py failed on such a
checkout, never on a fresh clone). :func:`depinctl.deploy.ensure_current_build` (called by
``deploy_contracts`` and ``ape run deploy``) recompiles everything when anything changed.

These tests use a two-file project in a temporary folder (an interface with an enum and a contract
returning the enum's largest value), compiled by ape in this process: a few seconds each.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from depinctl.deploy import BUILD_STAMP, ensure_current_build

ape = pytest.importorskip("ape")

CONFIG = """name: shapes
contracts_folder: contracts
solidity:
  version: 0.8.37
"""
INTERFACE = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;

interface IShape {
    enum Kind { None, Circle }
}
"""
CONTRACT = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;

import {IShape} from "./IShape.sol";

contract Shapes {
    function maxKind() external pure returns (uint8) {
        return uint8(type(IShape.Kind).max);
    }
}
"""


def _project(root: Path) -> Path:
    (root / "contracts").mkdir(parents=True)
    (root / "ape-config.yaml").write_text(CONFIG)
    (root / "contracts" / "IShape.sol").write_text(INTERFACE)
    (root / "contracts" / "Shapes.sol").write_text(CONTRACT)
    return root


def _add_kind(root: Path, kind: str) -> None:
    """Edits the imported interface only (as e60cd57 added OutputInvalid to IJobMarket.FailureCode)."""
    path = root / "contracts" / "IShape.sol"
    path.write_text(path.read_text().replace(" }", f", {kind} }}", 1))


def _code(project) -> str:
    """The creation bytecode a deploy of Shapes would send (what `project.Shapes` holds)."""
    return project.get_contract("Shapes").contract_type.deployment_bytecode.bytecode


def _full_compile(root: Path, into: Path) -> str:
    """Shapes compiled from scratch in a copy of `root` (no .build): the reference."""
    shutil.copytree(root, into, ignore=shutil.ignore_patterns(".build"))
    return _code(ape.Project(into))


def test_a_change_to_an_imported_file_alone_is_compiled_before_a_deploy(tmp_path: Path) -> None:
    root = _project(tmp_path / "shapes")
    project = ape.Project(root)
    assert ensure_current_build(project) == "no build yet"
    before = _code(project)
    assert ensure_current_build(project) is None  # current: nothing compiled
    assert ensure_current_build(ape.Project(root)) is None  # a new session reads the same build

    _add_kind(root, "Square")
    project = ape.Project(root)  # a new session (the next `ape run deploy`)
    # The bug: ape alone hands out the old Shapes, whose maxKind() still says 1.
    assert _code(project) == before, "ape recompiles importers itself now; ensure_current_build may be redundant"

    assert ensure_current_build(project) == "no full build of the current sources"
    after = _code(project)
    assert after != before
    assert after == _full_compile(root, tmp_path / "reference")
    assert _code(ape.Project(root)) == after  # written to .build/ for the next session too
    assert ensure_current_build(ape.Project(root)) is None


def test_a_build_changed_by_an_incremental_compile_is_compiled_again(tmp_path: Path) -> None:
    """The stamp also pins the manifest: `ape compile` after an edit, then the edit undone, leaves
    sources that match the last full build but a manifest that does not (IShape compiled alone)."""
    root = _project(tmp_path / "shapes")
    assert ensure_current_build(ape.Project(root)) == "no build yet"
    before = _code(ape.Project(root))
    stamp = json.loads((root / ".build" / BUILD_STAMP).read_text())

    original = (root / "contracts" / "IShape.sol").read_text()
    _add_kind(root, "Square")
    ape.Project(root).load_contracts()  # what `ape compile` does: IShape.sol recompiled alone
    (root / "contracts" / "IShape.sol").write_text(original)

    project = ape.Project(root)
    assert ensure_current_build(project) == "the build was changed by an incremental compile since the last full one"
    assert _code(project) == before
    assert json.loads((root / ".build" / BUILD_STAMP).read_text())["sources"] == stamp["sources"]
    assert ensure_current_build(ape.Project(root)) is None
