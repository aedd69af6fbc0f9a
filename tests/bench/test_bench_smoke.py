"""Smoke runs of the benchmarks with tiny sizes: each writes its JSON report with the documented
fields and positive figures (no speed is asserted: the figures of a tiny run mean nothing). Every
benchmark starts its own throwaway services (anvil, redis-server, Podman) on free ports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from depin.deployment import REPO_ROOT


def _run(tmp_path: Path, script: str, *args: str, timeout: float = 900) -> tuple[dict[str, Any], str]:
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, f"scripts/{script}", *args, "--json", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(out.read_text()), proc.stdout


def _spread_ok(st: dict[str, Any], reps: int) -> None:
    assert set(st) == {"runs", "median", "min", "max", "stdev"}
    assert len(st["runs"]) == reps and all(x > 0 for x in st["runs"])
    assert 0 < st["min"] <= st["median"] <= st["max"] and st["stdev"] >= 0


def test_bench_indexer_smoke(tmp_path: Path) -> None:
    res, table = _run(tmp_path, "bench_indexer.py", "--jobs", "20", "--live-jobs", "2", "--reps", "2", "--memory-jobs", "300")
    _spread_ok(res["raw"]["logs_per_second"], 2)
    # Both chunkings of the raw read ran each rep; the reference is the one with the higher median.
    chunkings = res["raw"]["chunkings"]
    assert set(chunkings) == {"max_range", "indexer_ranges"}
    for c in chunkings.values():
        _spread_ok(c["logs_per_second"], 2)
    assert res["raw"]["logs_per_second"] == chunkings[res["raw"]["chunking"]]["logs_per_second"]
    assert res["raw"]["logs_per_second"]["median"] == max(c["logs_per_second"]["median"] for c in chunkings.values())
    _spread_ok(res["backfill"]["events_per_second"], 2)
    assert res["backfill"]["interleaved"] is True and res["backfill"]["ratio_of_medians"] > 0
    assert res["raw"]["logs"] == res["backfill"]["events"] > 80  # the same logs on both sides
    assert res["state_check"]["finalized_jobs"] == res["state_check"]["finalized_jobs_expected"] == 20
    for field in ("indexer_cpu_us_per_event", "redis_cpu_us_per_event", "startup_check_seconds"):
        _spread_ok(res["backfill"][field], 2)  # the start-up check, timed apart from the backfill
    # Where the backfill's time went: every step was timed, and the main thread's steps are
    # disjoint parts of its wall time (the rest, waiting for the fetch thread and the loop, is >= 0).
    phases = res["backfill"]["phases_us_per_event"]
    assert set(phases) == {"decode", "reduce", "commit_send", "commit_wait", "rest", "fetch_thread_cpu"}
    for name in ("decode", "reduce", "commit_send", "fetch_thread_cpu"):
        assert phases[name]["min"] > 0, (name, phases[name])
    assert phases["commit_wait"]["min"] >= 0 and phases["rest"]["min"] >= 0
    assert "`backfill.phases_us_per_event.reduce`" in table
    ceil = res["ceilings"]
    # The replay of the recorded commits as plain commands rebuilt the same keys from the same events.
    assert ceil["redis"]["events"] == res["backfill"]["events"] and ceil["redis"]["same_keys"] is True
    assert ceil["redis"]["hash_fields_written"] > ceil["redis"]["events"] > 0
    assert ceil["redis"]["script_us_per_event"] > 0 and ceil["redis"]["plain_us_per_event"] > 0
    # The script's own write commands were timed: stream appends and hash writes among them.
    assert {"xadd", "hset"} <= set(ceil["redis"]["commands"])
    assert ceil["redis"]["commands_us_per_event"] == pytest.approx(sum(ceil["redis"]["commands"].values()))
    assert ceil["redis"]["commands_us_per_event"] > 0
    # All cores together allow no more than the indexer's own CPU does (the max of the bottlenecks).
    assert 0 < ceil["all_cores_ratio"] <= ceil["indexer_cpu_ratio"] * (1 + 1e-9)
    assert res["config"]["poll_interval"] == 0.5  # the default poll
    assert 0 < res["live"]["median"] <= res["live"]["p95"] and res["live"]["jobs"] == 2
    ret = res["retention"]
    assert ret["jobs"] == 300 and ret["compacted"] >= 300 and ret["method"].startswith("synthesized")
    assert 0 < ret["bytes_per_settled_job"] < ret["bytes_per_job_uncompacted"]
    assert ret["bytes_per_million_jobs"] > 0 and ret["job_hash_bytes_mean"] > 0
    assert "`retention.bytes_per_settled_job`" in table and "`backfill.ratio_of_medians`" in table
    assert "`ceilings.indexer_budget_us_at_target`" in table


def test_bench_executor_smoke(tmp_path: Path) -> None:
    res, table = _run(tmp_path, "bench_executor.py", "--reps", "2", "--throughput-jobs", "1")
    assert res["config"]["poll_interval"] == 0.5 and res["config"]["interleaved"] is True
    for st in (res["latency"]["plain_seconds"], res["latency"]["executor_seconds"],
               res["throughput"]["plain_per_minute"], res["throughput"]["executor_per_minute"]):
        _spread_ok(st, 2)
    assert res["throughput"]["ratio_of_medians"] > 0
    assert "`latency.executor_seconds`" in table


def test_bench_load_smoke(tmp_path: Path) -> None:
    res, table = _run(tmp_path, "bench_load.py", "--providers", "2", "--requesters", "2", "--jobs", "10", "--post-batch", "5")
    assert res["finalized"] == 10 and res["jobs_per_minute"] > 0
    tx = res["transactions"]
    assert tx["post"] == {"logs": 10, "transactions": 2, "jobs_per_transaction": 5.0, "largest": 5}  # two postJobs
    for step in ("claim", "submit", "finalize"):
        assert tx[step]["logs"] == 10 and 1 <= tx[step]["transactions"] <= 10 and tx[step]["largest"] >= 1, tx
    checks = res["checks"]
    assert checks["every_job_finalized_once"] is True and checks["stuck"] == [] and checks["paid_twice"] == []
    assert checks["finalize_logs"] == 10
    fair = res["fairness"]
    assert len(fair["jobs_per_provider"]) == 2 and sum(fair["jobs_per_provider"].values()) == 10
    assert 0 < fair["jain_index"] <= 1 and 0 <= fair["min_share"] <= fair["max_share"] <= 1
    lat = res["post_to_finalized_seconds"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["max"]
    assert "`jobs_per_minute`" in table


def test_bench_gas_meets_issue_15s_gas_targets_and_prints_tables_not_a_line_per_transaction(tmp_path: Path) -> None:
    """`make bench` (scripts/bench_gas.py through `ape run`, its default sizes): gas on a fresh anvil
    is nearly deterministic (runs differed by 6 gas on the single path and under 900 per batched
    job: the run's timestamps and hashes are in the calldata), far inside the targets' margins, so
    the targets the README reports as met are checked here, where a contract
    change that breaks one fails CI: the optimistic path from the wallet with a withdrawal between
    jobs <= 230,000 and the batch calls <= 130,000 per job in batches of 20. What it prints is the
    tables and the targets, not ape's line per confirmed transaction (hundreds of them before)."""
    out = tmp_path / "gas.json"
    # make bench's command: the anvil is started by scripts/with_anvil.py with the project's patient
    # readiness wait; ape's own start of one gives up after 20 s, which a busy CI machine exceeded
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "with_anvil.py"), "ape", "run", "bench_gas", "--network",
         "ethereum:local:foundry", "--json", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    res = json.loads(out.read_text())
    assert res["single_target"] == 230_000 and res["batch_target"] == 130_000 and res["batch_size"] == 20
    assert 0 < res["optimistic_wallet_withdraw"] <= res["single_target"], res
    assert 0 < res["batch_per_job"] <= res["batch_target"], res
    assert 0 < res["optimistic_wallet"] <= res["optimistic_wallet_first_lap"] <= 290_265, res  # +10 % of 263,878
    assert "== unaudited optimistic path (not drawn), escrow from the wallet" in proc.stdout
    assert "with withdrawals" in proc.stdout and "(meets the target by" in proc.stdout
    assert "Confirmed" not in proc.stdout + proc.stderr, proc.stdout[:2000]


def test_bench_all_report(tmp_path: Path) -> None:
    """scripts/bench_report.py: one folder with each benchmark's JSON, report.json and report.md."""
    out = tmp_path / "bench-out"
    proc = subprocess.run(
        [sys.executable, "scripts/bench_report.py", "--quick", "--only", "indexer", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    report = json.loads((out / "report.json").read_text())
    entry = report["benchmarks"]["indexer"]
    assert entry["status"] == 0 and entry["json"] == "indexer.json" and entry["seconds"] > 0
    assert entry["results"] == json.loads((out / "indexer.json").read_text())
    assert entry["results"]["backfill"]["events_per_second"]["median"] > 0
    md = (out / "report.md").read_text()
    assert md.startswith("# depin-compute benchmarks") and "## indexer" in md and "| backfill (events/s) |" in md


def test_bench_selector_smoke(tmp_path: Path) -> None:
    """scripts/bench_selector.py: the three cases, each within the work cap, with at most one glob
    test per entry, pattern and live automaton position (counted, not timed)."""
    res, table = _run(tmp_path, "bench_selector.py", "--quick", "--reps", "1")
    assert set(res["cases"]) == {"deep", "adversarial_at_cap", "wide"} and res["quick"]
    for case in res["cases"].values():
        assert 0 < case["work"] == case["entries"] * case["components"] <= case["work_cap"]
        assert case["glob_tests"] <= case["work"] and case["seconds_best"] > 0
    assert res["cases"]["deep"]["glob_tests"] <= res["cases"]["deep"]["entries"] * res["cases"]["deep"]["patterns"]
    assert res["cases"]["wide"]["selected"] > 0
    assert "| adversarial_at_cap |" in table
