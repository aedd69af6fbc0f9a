#!/usr/bin/env python3
"""solc for slither, compiling as ape does (viaIR on): crytic-compile's standard-JSON mode sets the
optimizer from `--solc-args` but never `viaIR`, and the court's modules only compile through the IR
(stack too deep otherwise). Reads the standard-JSON input slither sends on stdin, sets
`settings.viaIR`, and runs the real solc named by DEPIN_REAL_SOLC with the same arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main() -> int:
    solc = os.environ["DEPIN_REAL_SOLC"]
    args = sys.argv[1:]
    if "--standard-json" not in args:
        return subprocess.run([solc, *args], check=False).returncode
    request = json.loads(sys.stdin.read())
    request.setdefault("settings", {})["viaIR"] = True
    done = subprocess.run([solc, *args], input=json.dumps(request), text=True, check=False)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
