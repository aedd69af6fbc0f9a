"""tools/install_solc.py's offline route: the solc wrapper it registers in py-solc-x's folder (per
user, shared by every checkout) must not depend on the checkout that wrote it. It once ran that
checkout's tools/solc-native.cjs: deleting a CI clone broke every other checkout's compiles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLC = "0.8.37"


def _solc_packages() -> list[str]:
    found: set[str] = set()
    todo = ["solc"]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += json.loads((ROOT / "node_modules" / name / "package.json").read_text()).get("dependencies") or {}
    return sorted(found)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A throwaway checkout holding what the offline route needs: the two tools and node_modules'
    solc packages."""
    if shutil.which("node") is None or not (ROOT / "node_modules" / "solc").is_dir():
        pytest.fail("node and node_modules/solc are installed by setup (make test)")
    co = tmp_path / "checkout"
    (co / "tools").mkdir(parents=True)
    for name in ("install_solc.py", "solc-native.cjs"):
        shutil.copy2(ROOT / "tools" / name, co / "tools" / name)
    for name in _solc_packages():
        shutil.copytree(ROOT / "node_modules" / name, co / "node_modules" / name)
    return co


def _install(co: Path, folder: Path) -> str:
    env = {**os.environ, "SOLCX_BINARY_PATH": str(folder), "DEPIN_SOLC_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(co / "tools" / "install_solc.py")], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _version(wrapper: Path) -> str:
    proc = subprocess.run([str(wrapper), "--version"], capture_output=True, text=True, timeout=120, check=False, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("layout", ["flat", "nested"])
def test_the_wrapper_compiles_after_its_checkout_is_deleted(checkout: Path, tmp_path: Path, layout: str) -> None:
    if layout == "nested":  # as npm lays out a dependency whose hoisted copy has another version
        (checkout / "node_modules" / "solc" / "node_modules").mkdir()
        (checkout / "node_modules" / "semver").rename(checkout / "node_modules" / "solc" / "node_modules" / "semver")
    folder = tmp_path / "solcx"
    _install(checkout, folder)
    wrapper = folder / f"solc-v{SOLC}"
    shutil.rmtree(checkout)
    assert str(checkout) not in wrapper.read_text()
    assert f"Version: {SOLC}+" in _version(wrapper)
    source = "// SPDX-License-Identifier: MIT\npragma solidity 0.8.37;\ncontract Tiny { function f() external pure returns (uint256) { return 7; } }\n"
    request = {"language": "Solidity", "sources": {"Tiny.sol": {"content": source}},
               "settings": {"outputSelection": {"*": {"*": ["evm.bytecode.object"]}}}}
    proc = subprocess.run([str(wrapper), "--standard-json"], input=json.dumps(request), capture_output=True,
                          text=True, timeout=300, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert not [e for e in out.get("errors", []) if e["severity"] == "error"], out["errors"]
    assert len(out["contracts"]["Tiny.sol"]["Tiny"]["evm"]["bytecode"]["object"]) > 100


def test_a_rerun_keeps_the_wrapper_and_replaces_one_that_ran_a_vanished_checkout(checkout: Path, tmp_path: Path) -> None:
    folder = tmp_path / "solcx"
    folder.mkdir()
    wrapper = folder / f"solc-v{SOLC}"
    # The wrapper of before the bundles, written by a checkout that is gone since.
    wrapper.write_text(f'#!/bin/sh\n# depin-compute solc wrapper: solc {SOLC} via npm solcjs. Written by /gone/tools/install_solc.py.\n'
                       'exec node "/gone/tools/solc-native.cjs" "$@"\n')
    wrapper.chmod(0o755)
    out = _install(checkout, folder)
    assert "replacing it" in out
    assert "/gone/" not in wrapper.read_text()
    assert f"Version: {SOLC}+" in _version(wrapper)
    written = (wrapper.read_text(), wrapper.stat().st_mtime_ns)
    bundles = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert len(bundles) == 1, bundles

    assert "already in place" in _install(checkout, folder)
    assert (wrapper.read_text(), wrapper.stat().st_mtime_ns) == written
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == bundles


def test_a_damaged_bundle_is_rebuilt(checkout: Path, tmp_path: Path) -> None:
    folder = tmp_path / "solcx"
    _install(checkout, folder)
    [bundle] = [p for p in folder.iterdir() if p.is_dir()]
    (bundle / "node_modules" / "solc" / "soljson.js").unlink()
    assert "rebuilding its bundle" in _install(checkout, folder)
    assert f"Version: {SOLC}+" in _version(folder / f"solc-v{SOLC}")
    assert [p.name for p in folder.iterdir() if p.is_dir()] == [bundle.name]
