"""Runs one command against a throwaway anvil of its own: ``python scripts/with_anvil.py CMD ARGS...``.

What ``make bench`` and ``make bench-all`` run ``ape run bench_gas`` through. Ape's foundry plugin
starts an anvil itself when it is given none, but gives up when that node has not answered within
20 s (``RPCTimeoutError``), and a busy machine exceeded that (the npm package's node launcher). Here
the anvil is started with the project's own readiness wait (:func:`depinctl.procs.start_anvil`,
up to ``--timeout`` seconds), on a free local port, and the command is pointed at it with
``APE_FOUNDRY_HOST`` (ape then connects to it and starts none). Its hardfork is the one ape would
have asked for, ``foundry.evm_version`` of ``ape-config.yaml``, so that the figures stay those of
ape's own anvil (``--hardfork`` sets another; anvil's own default is the latest). The anvil is
stopped when the command ends, however it ends; the exit status is the command's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO))

import yaml

from depinctl.procs import start_anvil


def ape_hardfork() -> str | None:
    """``foundry.evm_version`` of the project's ``ape-config.yaml`` (what ape starts anvil with)."""
    config = yaml.safe_load((REPO / "ape-config.yaml").read_text()) or {}
    return (config.get("foundry") or {}).get("evm_version")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Example: python scripts/with_anvil.py ape run bench_gas --network ethereum:local:foundry")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the anvil to answer (default 180)")
    parser.add_argument("--hardfork", default=ape_hardfork(),
                        help="the anvil's EVM hardfork (default: ape-config.yaml's foundry.evm_version, %(default)s)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    # the venv's own tools (ape) first: `make` and a test may run this with the venv's python only
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    program = shutil.which(command[0], path=search)
    if program is None:
        parser.error(f"{command[0]!r} is not an executable on PATH")
    with tempfile.TemporaryDirectory(prefix="depin-anvil-") as tmp:
        hardfork = ["--hardfork", args.hardfork] if args.hardfork else []
        anvil, url = start_anvil(Path(tmp), args=["--silent", *hardfork], timeout=args.timeout)
        try:
            return subprocess.run([program, *command[1:]], env=dict(os.environ, APE_FOUNDRY_HOST=url), check=False).returncode
        finally:
            anvil.stop()


if __name__ == "__main__":
    sys.exit(main())
