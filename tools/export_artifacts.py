"""Export the compiled ABIs and bytecode shipped in the `depin` package (depin/artifacts/*.json).

    python tools/export_artifacts.py            # fresh compile, then write depin/artifacts/
    python tools/export_artifacts.py --check    # fresh compile, exit 1 if the shipped files differ
    python tools/export_artifacts.py --build-file .build/__local__.json   # use an existing build

`make artifacts` runs the first form. One file per contract:

    {"contractName", "sourceId", "abi", "bytecode" (creation code), "deployedBytecode" (runtime code),
     "compiler": {"name", "version", "evmVersion", "optimizer": {"enabled", "runs"}},
     "sourceHash": sha256 hex of the contract's source file}

written deterministically (sorted keys, two-space indent, trailing newline).

Why a fresh compile in a temporary copy of the project rather than the project's `.build/`: ape's
incremental compile recompiles only the files whose own text changed, so a contract whose *import*
changed keeps stale output in `.build/__local__.json` (seen here: editing a comment in
IJobMarket.sol left ArbiterResolver's metadata hash stale), and `.build/` also keeps contract
types of deleted sources. The copy holds contracts/ (without ape's .cache), ape-config.yaml,
package.json and a symlink to node_modules/, and `ape compile` there is a full compile.

The bytecode is compared and shipped *with* solc's CBOR metadata tail: the metadata hash covers
the sources' keccak, the settings and the source paths, which are relative to the project
(contracts/..., contracts/.cache/openzeppelin/...), so compiles in different directories give
byte-identical output (checked: two copies at different absolute paths match the in-place build).
A comment-only source change therefore changes the shipped bytecode too, as it would change the
bytecode deployed from the sources (and its Etherscan verification).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = REPO_ROOT / "depin" / "artifacts"
# The deployable contracts and the interfaces clients bind to.
CONTRACTS = (
    "RewardToken",
    "ProviderStaking",
    "JobMarket",
    "BlockhashRandomness",
    "MockRandomness",
    "HeaderRandomness",
    "VerificationCourt",
    "TestCourt",  # the court stand-in the market's unit tests deploy
    "IRewardToken",
    "IProviderStaking",
    "IJobMarket",
    "IRandomness",
    "ICourtViews",
    "IVerificationCourt",
    "IMarketForCourt",
)
# solc appends CBOR-encoded metadata; its length is the last two bytes, big-endian.
METADATA_LENGTH_BYTES = 2


class ExportError(RuntimeError):
    pass


def _ape_executable() -> list[str]:
    beside = Path(sys.executable).parent / "ape"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("ape")
    if found:
        return [found]
    raise ExportError("ape not found (run `make setup`, or put .venv/bin on PATH)")


def fresh_compile(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """Compiles a temporary copy of the project with `ape compile` and returns its build manifest."""
    with tempfile.TemporaryDirectory(prefix="depin-compile-") as tmp:
        work = Path(tmp) / "project"
        work.mkdir()
        shutil.copytree(repo / "contracts", work / "contracts", ignore=shutil.ignore_patterns(".cache", "*.swp"))
        for name in ("ape-config.yaml", "package.json"):
            if (repo / name).exists():
                shutil.copy2(repo / name, work / name)
        if (repo / "node_modules").exists():
            (work / "node_modules").symlink_to(repo / "node_modules", target_is_directory=True)
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join(
            [str(repo / "node_modules" / ".bin"), str(Path(sys.executable).parent), env.get("PATH", "")]
        )
        proc = subprocess.run(
            [*_ape_executable(), "compile"], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        build = work / ".build" / "__local__.json"
        if proc.returncode != 0 or not build.exists():
            raise ExportError(f"`ape compile` failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return json.loads(build.read_text())


def _compiler_of(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    for compiler in manifest.get("compilers") or []:
        if name in (compiler.get("contractTypes") or []):
            settings = compiler.get("settings") or {}
            optimizer = settings.get("optimizer") or {}
            name_ = compiler.get("name")
            return {
                "name": "solc" if name_ == "solidity" else name_,
                "version": compiler.get("version"),
                "evmVersion": settings.get("evmVersion"),
                "optimizer": {"enabled": bool(optimizer.get("enabled")), "runs": optimizer.get("runs")},
            }
    raise ExportError(f"the build manifest names no compiler for {name}")


def _hex(bytecode: dict[str, Any] | None) -> str:
    code = (bytecode or {}).get("bytecode") or "0x"
    return code if code.startswith("0x") else "0x" + code


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_artifacts(manifest: dict[str, Any], repo: Path = REPO_ROOT) -> dict[str, dict[str, Any]]:
    """The shipped artifact of every contract in CONTRACTS, from an ape build manifest."""
    types = manifest.get("contractTypes") or {}
    missing = [name for name in CONTRACTS if name not in types]
    if missing:
        raise ExportError(f"the build has no contract types for {', '.join(missing)}")
    out = {}
    for name in CONTRACTS:
        ct = types[name]
        source_id = ct["sourceId"]
        out[name] = {
            "contractName": name,
            "sourceId": source_id,
            "abi": ct["abi"],
            "bytecode": _hex(ct.get("deploymentBytecode")),
            "deployedBytecode": _hex(ct.get("runtimeBytecode")),
            "compiler": _compiler_of(manifest, name),
            "sourceHash": sha256_file(repo / source_id),
        }
    return out


def render(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def strip_metadata(code: str) -> str:
    """Bytecode without solc's CBOR metadata tail (for telling code changes from metadata changes)."""
    raw = bytes.fromhex(code.removeprefix("0x"))
    if len(raw) < METADATA_LENGTH_BYTES:
        return code
    n = int.from_bytes(raw[-METADATA_LENGTH_BYTES:], "big")
    if n + METADATA_LENGTH_BYTES > len(raw):
        return code
    return "0x" + raw[: -(n + METADATA_LENGTH_BYTES)].hex()


def differences(expected: dict[str, dict[str, Any]], directory: Path = ARTIFACTS_DIR) -> list[str]:
    """What differs between freshly built artifacts and the files in `directory` (empty: none)."""
    problems = []
    for name, fresh in expected.items():
        path = directory / f"{name}.json"
        if not path.exists():
            problems.append(f"{name}: {path} is missing")
            continue
        shipped = json.loads(path.read_text())
        mine = []
        for key in ("abi", "bytecode", "deployedBytecode", "compiler", "sourceHash", "sourceId", "contractName"):
            if shipped.get(key) == fresh[key]:
                continue
            detail = ""
            if key in ("bytecode", "deployedBytecode") and isinstance(shipped.get(key), str):
                same_code = strip_metadata(shipped[key]) == strip_metadata(fresh[key])
                detail = " (metadata hash only: a source/comment change)" if same_code else " (code differs)"
            mine.append(f"{name}: {key} differs from a fresh compile{detail}")
        if not mine and path.read_text() != render(fresh):
            mine.append(f"{name}: {path.name} is not in the canonical format (sorted keys, indent 2)")
        problems.extend(mine)
    extra = sorted(p.stem for p in directory.glob("*.json") if p.stem not in expected)
    problems.extend(f"{stem}: {directory / (stem + '.json')} is not a shipped contract" for stem in extra)
    return problems


def write(artifacts: dict[str, dict[str, Any]], directory: Path = ARTIFACTS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, artifact in artifacts.items():
        path = directory / f"{name}.json"
        text = render(artifact)
        if not path.exists() or path.read_text() != text:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text)
            tmp.replace(path)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-file", type=Path, help="use this ape build manifest instead of a fresh compile")
    parser.add_argument("--out-dir", type=Path, default=ARTIFACTS_DIR)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when the files differ")
    args = parser.parse_args(argv)
    try:
        manifest = json.loads(args.build_file.read_text()) if args.build_file else fresh_compile()
        artifacts = build_artifacts(manifest)
    except ExportError as exc:
        print(f"export_artifacts: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = differences(artifacts, args.out_dir)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print("shipped artifacts are stale: run `make artifacts`", file=sys.stderr)
            return 1
        print(f"{len(artifacts)} artifacts in {args.out_dir} match the sources")
        return 0
    written = write(artifacts, args.out_dir)
    for path in written:
        print(f"wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    print(f"{len(artifacts)} artifacts in {args.out_dir} ({len(written)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
