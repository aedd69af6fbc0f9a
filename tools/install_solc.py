#!/usr/bin/env python3
"""Make solc 0.8.37 available to py-solc-x (and so to ape-solidity and slither).

Route 1: `solcx.install_solc` downloads the native binary (machines with internet).
Route 2: if that fails, write a small sh wrapper in py-solc-x's install folder that runs the
npm `solc` package (solcjs) through tools/solc-native.cjs, which speaks native solc's CLI. The
wrapper runs a copy of the two (the shim and the `solc` package with its dependencies, ~9 MB) kept
beside it in that folder, in a bundle named by their content: the folder is per user and shared by
every checkout, and a wrapper that ran a checkout's own files broke every other checkout's compiles
once that one was deleted (a CI clone's, for instance).

Re-runnable: a working native binary or an up-to-date wrapper is left alone; a wrapper of another
content (an older shim, or the wrapper of before the bundles, which ran a checkout's files) is
replaced, and bundles are never deleted (another checkout's compile may be running one). Honours
SOLCX_BINARY_PATH (py-solc-x does).
Run it with the project venv's Python after `npm ci`:  .venv/bin/python tools/install_solc.py
Environment: DEPIN_SOLC_OFFLINE=1 skips the download; DEPIN_SOLC_DOWNLOAD_TIMEOUT (seconds, default
120) bounds the download attempt.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import requests
import solcx
import solcx.wrapper
from packaging.version import Version

SOLC_VERSION = Version("0.8.37")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIM = PROJECT_ROOT / "tools" / "solc-native.cjs"
MARKER = "# depin-compute solc wrapper"


def _resolve(name: str, requirer: Path, node_modules: Path) -> Path | None:
    """Where node finds package `name` required from the package folder `requirer`: the nearest
    ``node_modules/<name>`` from it upwards, within the project's `node_modules`."""
    folder = requirer
    while True:
        if folder.name != "node_modules" and (folder / "node_modules" / name / "package.json").is_file():
            return folder / "node_modules" / name
        if folder == node_modules.parent:
            return None
        folder = folder.parent


def solc_packages(node_modules: Path) -> list[Path]:
    """The `solc` package and every package it needs at run time, resolved as node does, as
    paths relative to `node_modules` (``semver``, or ``solc/node_modules/semver`` where npm nested
    one in another's folder)."""
    found: set[Path] = set()
    todo = [("solc", node_modules.parent)]
    while todo:
        name, requirer = todo.pop()
        folder = _resolve(name, requirer, node_modules)
        if folder is None:
            sys.exit(f"install_solc: npm package {name} (needed by {requirer.name}) is missing; run `npm ci` first")
        if folder.relative_to(node_modules) in found:
            continue
        found.add(folder.relative_to(node_modules))
        todo += [(dep, folder) for dep in sorted(json.loads((folder / "package.json").read_text()).get("dependencies") or {})]
    return sorted(found)


def bundle_name(node_modules: Path, packages: list[Path]) -> str:
    """`depin-solcjs-<version>-<digest>`: the digest covers the shim's bytes and each package's
    place and version, so a bundle never changes once written."""
    digest = hashlib.sha256(SHIM.read_bytes())
    for package in packages:
        version = json.loads((node_modules / package / "package.json").read_text()).get("version")
        digest.update(f"\0{package.as_posix()}@{version}".encode())
    return f"depin-solcjs-{SOLC_VERSION}-{digest.hexdigest()[:12]}"


def wrapper_text(bundle: Path) -> str:
    return (
        "#!/bin/sh\n"
        f"{MARKER}: solc {SOLC_VERSION} via npm solcjs, run from the bundle {bundle.name} beside it "
        "(no checkout needed). Written by depin-compute's tools/install_solc.py.\n"
        f'exec node {shlex.quote(str(bundle / "tools" / SHIM.name))} "$@"\n'
    )


def write_bundle(folder: Path, node_modules: Path, packages: list[Path], rebuild: bool = False) -> Path:
    """The bundle for this checkout's shim and `solc` package in `folder`, copied there unless it
    is there already (built in a temporary folder, then renamed: a concurrent setup or a crash
    never leaves a half-copied bundle under the final name). `rebuild`: replace one that is there
    (its files were damaged by hand: the wrapper did not run)."""
    bundle = folder / bundle_name(node_modules, packages)
    if bundle.exists() and rebuild:
        damaged = Path(tempfile.mkdtemp(prefix=".depin-solcjs-damaged-", dir=folder))
        bundle.rename(damaged / bundle.name)
        shutil.rmtree(damaged, ignore_errors=True)
    if (bundle / "tools" / SHIM.name).is_file():
        return bundle
    tmp = Path(tempfile.mkdtemp(prefix=".depin-solcjs-", dir=folder))
    try:
        tmp.chmod(0o755)
        (tmp / "tools").mkdir()
        shutil.copy2(SHIM, tmp / "tools" / SHIM.name)
        for package in packages:
            if "node_modules" not in package.parts:  # a nested one comes with its parent's folder
                # links followed: no file outside the bundle
                shutil.copytree(node_modules / package, tmp / "node_modules" / package)
        try:
            tmp.rename(bundle)
        except OSError:  # another setup renamed its identical copy first
            if not (bundle / "tools" / SHIM.name).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return bundle


def reported_version(binary: Path) -> Version | None:
    try:
        return solcx.wrapper.get_solc_version(binary)
    except Exception as exc:  # broken binary, missing node, missing node_modules, ...
        print(f"install_solc: {binary} does not run: {exc}", file=sys.stderr)
        return None


class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Timeout()


def try_download(folder: Path) -> bool:
    """The normal route. False (never an exception) when the download is impossible."""
    if os.environ.get("DEPIN_SOLC_OFFLINE") == "1":
        print("install_solc: DEPIN_SOLC_OFFLINE=1, not downloading")
        return False
    deadline = int(os.environ.get("DEPIN_SOLC_DOWNLOAD_TIMEOUT", "120"))
    # py-solc-x calls requests.get without a timeout: add one (connect, read) for this process.
    original_get = requests.get
    requests.get = functools.partial(original_get, timeout=(10, 30))
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(deadline)
    try:
        solcx.install_solc(SOLC_VERSION, show_progress=False, solcx_binary_path=folder)
        return True
    except _Timeout:
        print(f"install_solc: download gave no answer within {deadline}s", file=sys.stderr)
    except Exception as exc:  # network errors above all; also a host answering with an error
        print(f"install_solc: download failed ({type(exc).__name__}: {str(exc)[:200]})", file=sys.stderr)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        requests.get = original_get
    # A failed install can leave a partial file behind; never keep one.
    target = folder / f"solc-v{SOLC_VERSION}"
    if target.exists() and reported_version(target) != SOLC_VERSION:
        target.unlink()
    return False


def write_wrapper(target: Path, rebuild: bool = False) -> Path:
    """Writes the wrapper `target` (and its bundle, if new or `rebuild`); returns the bundle."""
    if not SHIM.is_file():
        sys.exit(f"install_solc: {SHIM} is missing")
    node_modules = PROJECT_ROOT / "node_modules"
    if not (node_modules / "solc" / "package.json").is_file():
        sys.exit("install_solc: node_modules/solc is missing; run `npm ci` first")
    bundle = write_bundle(target.parent, node_modules, solc_packages(node_modules), rebuild)
    fd, tmp = tempfile.mkstemp(prefix=".solc-wrapper-", dir=target.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(wrapper_text(bundle))
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    return bundle


def expected_wrapper(folder: Path) -> str | None:
    """The wrapper this checkout would write into `folder` (None when it cannot: no node_modules)."""
    node_modules = PROJECT_ROOT / "node_modules"
    if not SHIM.is_file() or not (node_modules / "solc" / "package.json").is_file():
        return None
    return wrapper_text(folder / bundle_name(node_modules, solc_packages(node_modules)))


def main() -> int:
    folder = solcx.get_solcx_install_folder()  # SOLCX_BINARY_PATH wins inside py-solc-x
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"solc-v{SOLC_VERSION}"

    route = None
    rebuild = False
    if target.is_file():
        head = target.read_bytes()[:4096]
        if MARKER.encode() in head:
            if head.decode(errors="replace") == expected_wrapper(folder):
                if reported_version(target) == SOLC_VERSION:
                    route = "wrapper (already in place)"
                else:
                    print(f"install_solc: {target} is this checkout's wrapper but does not run; rebuilding its bundle")
                    rebuild = True
            else:
                print(f"install_solc: {target} is a wrapper of another content or a broken one; replacing it")
                target.unlink()
        elif reported_version(target) == SOLC_VERSION:
            route = "native solc (already installed)"
        else:
            print(f"install_solc: {target} is broken; removing it")
            target.unlink()

    if route is None:
        if try_download(folder):
            route = "native solc (downloaded by solcx.install_solc)"
        else:
            route = f"wrapper over npm solcjs (bundle {write_wrapper(target, rebuild)})"

    # The check ape-solidity relies on: select the version, then ask py-solc-x what it runs.
    try:
        solcx.set_solc_version(SOLC_VERSION, silent=True)
        version = solcx.get_solc_version()
    except Exception as exc:
        print(f"install_solc: py-solc-x cannot run {target}: {exc}", file=sys.stderr)
        return 1
    if version != SOLC_VERSION:
        print(f"install_solc: {target} reports {version}, expected {SOLC_VERSION}", file=sys.stderr)
        return 1
    print(f"install_solc: solc {version} at {target} via {route}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
