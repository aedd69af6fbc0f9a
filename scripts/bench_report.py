"""``make bench-all``'s report: runs every benchmark and writes one report into a folder.

    .venv/bin/python scripts/bench_report.py [--out DIR] [--quick]

Runs, one after the other (each on its own throwaway services, so that they do not compete):
the gas benchmark (``make bench``: ``ape run bench_gas --json`` on an anvil of
``scripts/with_anvil.py``, its table also kept as text), the
indexer benchmark (``scripts/bench_indexer.py --json``), the executor benchmark
(``scripts/bench_executor.py --json``), the load benchmark (``scripts/bench_load.py --json``), the
output selector's cost (``scripts/bench_selector.py --json``) and the
simulation (``depin sim --json``: every attack on the real contracts, and the gas of each transaction
of an audited job). Writes ``DIR/<name>.json`` (and ``gas.txt``) per benchmark, ``DIR/report.json`` (all of them, with
the machine and the commit) and ``DIR/report.md`` (their markdown tables). DIR defaults to
``$BENCH_OUT`` or ``./bench-out``. A benchmark that fails is recorded as failed (its exit status and
the tail of its output) and the others still run; the exit status is then 1. ``--quick`` runs each
with tiny sizes (a smoke run, not figures to publish).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable

# name -> (command, markdown renderer in the script's module, quick arguments)
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "indexer": ([PY, "scripts/bench_indexer.py"], ["--jobs", "200", "--live-jobs", "5", "--reps", "2", "--memory-jobs", "2000"]),
    "executor": ([PY, "scripts/bench_executor.py"], ["--reps", "2", "--throughput-jobs", "2"]),
    "load": ([PY, "scripts/bench_load.py"], ["--providers", "2", "--jobs", "10"]),
    # the output selector's cost (pure Python, no services)
    "selector": ([PY, "scripts/bench_selector.py"], ["--quick", "--reps", "1"]),
    # the attack table on the real contracts, with the gas of every transaction of an audited job
    "sim": ([PY, "-m", "depinctl.cli", "sim"], []),
}


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


def _run(cmd: list[str], log_path: Path) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True, check=False)
    return proc.returncode, proc.stdout, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("BENCH_OUT") or REPO / "bench-out"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--only", action="append", choices=["gas", *BENCHES], help="run only these (repeatable)")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    wanted = args.only or ["gas", *BENCHES]
    report: dict[str, Any] = {
        "commit": _commit(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {"cores": os.cpu_count(), "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()},
        "quick": args.quick,
        "benchmarks": {},
    }
    sections: list[str] = []
    failed = False
    for name in wanted:
        print(f"[bench-all] {name} ...", file=sys.stderr, flush=True)
        if name == "gas":
            json_path = out / "gas.json"
            cmd = [sys.executable, str(REPO / "scripts" / "with_anvil.py"), "ape", "run", "bench_gas", "--network",
                   "ethereum:local:foundry", "--json", str(json_path)]
            status, stdout, seconds = _run(cmd, out / "gas.log")
            (out / "gas.txt").write_text(stdout)
            entry: dict[str, Any] = {"status": status, "seconds": seconds, "text": "gas.txt", "json": json_path.name}
            if status == 0 and json_path.exists():
                entry["results"] = json.loads(json_path.read_text())
            sections.append(f"## gas (`make bench`)\n\n```\n{stdout.strip()}\n```")
        else:
            base, quick = BENCHES[name]
            json_path = out / f"{name}.json"
            cmd = [*base, *(quick if args.quick else []), "--json", str(json_path)]
            status, stdout, seconds = _run(cmd, out / f"{name}.log")
            entry = {"status": status, "seconds": seconds, "json": json_path.name}
            if status == 0 and json_path.exists():
                entry["results"] = json.loads(json_path.read_text())
            sections.append(f"## {name} (`{' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}`)\n\n{stdout.strip()}")
        if status != 0:
            failed = True
            log_tail = (out / f"{name}.log").read_text(errors="replace")[-3000:]
            entry["log_tail"] = log_tail
            sections[-1] += f"\n\n**FAILED** (exit {status}); log tail:\n\n```\n{log_tail}\n```"
        report["benchmarks"][name] = entry
        print(f"[bench-all] {name}: exit {status} in {seconds:.0f} s", file=sys.stderr, flush=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    header = (f"# depin-compute benchmarks\n\ncommit {report['commit']}, {report['started']}, "
              f"{report['machine']['cores']} cores{' (quick: tiny sizes)' if args.quick else ''}\n")
    (out / "report.md").write_text(header + "\n" + "\n\n".join(sections) + "\n")
    print(f"[bench-all] wrote {out / 'report.json'} and {out / 'report.md'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
