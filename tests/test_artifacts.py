"""The ABIs and bytecode shipped in the package (depin/artifacts/) match the sources.

The reference is a full `ape compile` of a temporary copy of the project (tools/export_artifacts.py
explains why not the project's incremental `.build/`). Bytecode is compared whole, CBOR metadata
tail included: the metadata holds only project-relative paths, so it does not depend on where the
project is checked out, and a stale metadata hash would mean the shipped bytecode is not what the
sources compile to. When only the metadata differs, the failure says so.
"""

from __future__ import annotations

import importlib.util
import json
import tomllib
from importlib import resources
from pathlib import Path, PurePosixPath

import pytest
import yaml

from depin.artifacts import UnknownArtifactError, available, load_abi, load_artifact

REPO = Path(__file__).resolve().parent.parent
FIX = "run `make artifacts` and commit depin/artifacts/"


def _export_tool():
    spec = importlib.util.spec_from_file_location("export_artifacts", REPO / "tools" / "export_artifacts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export = _export_tool()


@pytest.fixture(scope="module")
def fresh() -> dict[str, dict]:
    """Artifacts built from a fresh, full compile of the current sources."""
    return export.build_artifacts(export.fresh_compile(REPO), REPO)


@pytest.mark.parametrize("name", export.CONTRACTS)
def test_shipped_artifact_matches_fresh_compile(fresh, name):
    shipped = load_artifact(name)
    expected = fresh[name]
    assert shipped["sourceHash"] == expected["sourceHash"], f"{expected['sourceId']} changed since the export: {FIX}"
    assert shipped["abi"] == expected["abi"], f"{name}: shipped ABI differs from a fresh compile: {FIX}"
    for key in ("bytecode", "deployedBytecode"):
        if shipped[key] != expected[key]:
            only_metadata = export.strip_metadata(shipped[key]) == export.strip_metadata(expected[key])
            what = "only the metadata hash differs" if only_metadata else "the code differs"
            pytest.fail(f"{name}: shipped {key} differs from a fresh compile ({what}): {FIX}")
    assert shipped["compiler"] == expected["compiler"], f"{name}: compiler settings changed: {FIX}"
    assert shipped == expected, f"{name}: artifact differs from a fresh export: {FIX}"


def test_no_stray_or_missing_artifacts(fresh):
    problems = export.differences(fresh, export.ARTIFACTS_DIR)
    assert not problems, "\n".join([*problems, FIX])


def test_compiler_settings_follow_ape_config():
    solidity = yaml.safe_load((REPO / "ape-config.yaml").read_text())["solidity"]
    for name in export.CONTRACTS:
        compiler = load_artifact(name)["compiler"]
        assert compiler["name"] == "solc"
        assert compiler["version"].split("+")[0] == str(solidity["version"]), FIX
        assert compiler["evmVersion"] == solidity["evm_version"], FIX
        assert compiler["optimizer"] == {"enabled": bool(solidity["optimize"]), "runs": solidity["optimization_runs"]}


def test_files_are_canonical():
    for path in sorted(export.ARTIFACTS_DIR.glob("*.json")):
        text = path.read_text()
        assert text == export.render(json.loads(text)), f"{path.name} is not in canonical form: {FIX}"


def test_every_abi_loads_through_the_package():
    assert available() == sorted(export.CONTRACTS)
    for name in export.CONTRACTS:
        abi = load_abi(name)
        assert isinstance(abi, list) and abi, name
        assert all("type" in entry for entry in abi), name
        artifact = load_artifact(name)
        assert artifact["contractName"] == name
        assert artifact["bytecode"].startswith("0x") and artifact["deployedBytecode"].startswith("0x")
        deployable = not name.startswith("I")
        assert (len(artifact["bytecode"]) > 2) == deployable, name
    # Callers get copies: changing one does not change what the next caller loads.
    load_abi("JobMarket").clear()
    assert load_abi("JobMarket")


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(UnknownArtifactError) as info:
        load_abi("JobMarkt")
    message = str(info.value)
    assert "'JobMarkt'" in message
    assert all(name in message for name in export.CONTRACTS)
    with pytest.raises(LookupError):
        load_artifact("../deployment")


def test_package_data_is_declared_and_found():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["depin"]
    folder = resources.files("depin").joinpath("artifacts")
    assert folder.is_dir(), "importlib.resources cannot find depin/artifacts"
    shipped = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".json"))
    assert shipped == sorted(f"{name}.json" for name in export.CONTRACTS)
    for file_name in shipped:
        rel = PurePosixPath("artifacts") / file_name
        assert any(rel.match(g) for g in globs), f"depin/{rel} is not covered by package-data {globs}"
        assert folder.joinpath(file_name).read_text().endswith("\n")


def test_contract_sources_sit_in_one_flat_folder():
    """ape lists at most 500 files under contracts/ (ProjectManager's source scan), and
    ape-solidity unpacks OpenZeppelin into contracts/.cache: a subfolder of ours could be listed
    after those 500 and silently vanish from the project (seen in a fresh clone: every contract
    test errored on a missing TestCourt). Top-level files are always listed first."""
    folder = REPO / "contracts"
    nested = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*.sol") if p.parent != folder and ".cache" not in p.parts
    )
    assert nested == [], f"move these into contracts/ itself: {nested}"
