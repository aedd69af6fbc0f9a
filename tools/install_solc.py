#!/usr/bin/env python3
"""Make solc 0.8.37 available to py-solc-x (and so to ape-solidity and slither).

Route 1: `solcx.install_solc` downloads the native binary (machines with internet).
Route 2: if that fails, write a small sh wrapper in py-solc-x's install folder that runs the
npm `solc` package (solcjs) through tools/solc-native.cjs, which speaks native solc's CLI.

Re-runnable: a working native binary or an up-to-date wrapper is left alone; a wrapper that points
at another checkout (the project moved) is replaced. Honours SOLCX_BINARY_PATH (py-solc-x does).
Run it with the project venv's Python after `npm ci`:  .venv/bin/python tools/install_solc.py
Environment: DEPIN_SOLC_OFFLINE=1 skips the download; DEPIN_SOLC_DOWNLOAD_TIMEOUT (seconds, default
120) bounds the download attempt.
"""

from __future__ import annotations

import functools
import os
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


def wrapper_text() -> str:
    return (
        "#!/bin/sh\n"
        f"{MARKER}: solc {SOLC_VERSION} via npm solcjs. Written by {PROJECT_ROOT}/tools/install_solc.py.\n"
        f'exec node "{SHIM}" "$@"\n'
    )


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


def write_wrapper(target: Path) -> None:
    if not SHIM.is_file():
        sys.exit(f"install_solc: {SHIM} is missing")
    if not (PROJECT_ROOT / "node_modules" / "solc" / "package.json").is_file():
        sys.exit("install_solc: node_modules/solc is missing; run `npm ci` first")
    fd, tmp = tempfile.mkstemp(prefix=".solc-wrapper-", dir=target.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(wrapper_text())
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)


def main() -> int:
    folder = solcx.get_solcx_install_folder()  # SOLCX_BINARY_PATH wins inside py-solc-x
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"solc-v{SOLC_VERSION}"

    route = None
    if target.is_file():
        head = target.read_bytes()[:4096]
        if MARKER.encode() in head:
            if head.decode(errors="replace") == wrapper_text() and reported_version(target) == SOLC_VERSION:
                route = "wrapper (already in place)"
            else:
                print(f"install_solc: {target} is a stale wrapper (another checkout?); replacing it")
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
            write_wrapper(target)
            route = f"wrapper over npm solcjs ({SHIM})"

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
