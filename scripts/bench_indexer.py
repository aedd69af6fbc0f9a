"""Indexer benchmark: backfill rate against the raw eth_getLogs rate, live lag, Redis memory per job.

Run with ``make bench-indexer`` or ``.venv/bin/python scripts/bench_indexer.py --jobs 10000`` (a plain
Python script, not an ape script). It prints figures; it is not a test and fails only when it cannot
measure. In one run, on a throwaway anvil and redis-server (free ports, a temporary directory that
is removed at exit, also on Ctrl-C, unless ``--keep``):

1. deploys the contracts with the project's deploy script (``ape run deploy``);
2. generates ``--jobs`` jobs through post → claim → submit → finalize with
   :meth:`depinctl.devchain.DevChain.generate_jobs` (bulk, many transactions per block; settlement
   through ``finalizeMany``, which emits one ``JobFinalized`` per job like ``finalize``), so the
   chain holds at least 4 market events per job plus the provider registrations;
3. (a) **raw rate**: fetches the same logs (market and staking contracts, deploy block to head) with
   plain ``eth_getLogs`` calls, chunked by the indexer's ``max_range``, without decoding them: once
   through :class:`depin.chain.RpcClient` (the indexer's transport) and once through a bare HTTP
   POST + ``json.loads``, three times each; the best of all is the reference (the practical limit);
4. (b) **backfill**: from an empty Redis, calls ``Indexer.sync_once()`` until it returns 0 with the
   cursor at the head; events applied per second of that loop. Three times (Redis flushed, a new
   indexer each time), like (a): the best run against the best raw run is the ratio, the median is
   reported too (on a loaded machine both sides swing);
5. (d) **memory**: Redis ``used_memory`` after the backfill minus before, per indexed job, also
   without the events stream (its ``MEMORY USAGE`` subtracted);
6. (c) **live lag**: runs ``Indexer.run()`` in a thread with the configured poll interval, posts
   ``--live-jobs`` jobs one at a time (after a random pause of up to one poll interval, so that posts
   land at random points of the poll cycle) and times, for each, from the moment its receipt is in
   hand to the moment ``HGET {prefix}:job:{id} status`` answers; median and p95.

Targets (issue 3): backfill ≥ 50% of the raw rate; live lag under one poll interval + 200 ms
(judged on the p95). Redis runs without persistence (``--save "" --appendonly no``) so that
snapshots do not fork in the middle of a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO))

import redis
import requests
from eth_utils import event_abi_to_log_topic

from depin.artifacts import load_abi
from depin.chain import RpcClient
from depin.deployment import deployment_path, to_wei
from depin.errors import DepinError
from depin.keys import Keys
from depinctl.deploy import deploy_with_ape
from depinctl.devchain import DevChain, DevChainError, sample_spec
from depinctl.procs import ManagedProcess, anvil_binary, start_anvil, start_redis

TARGET_RATIO = 0.50
LAG_MARGIN = 0.200  # seconds on top of the poll interval
RAW_REPEATS = 3
BACKFILL_REPEATS = 3


def log(message: str) -> None:
    print(f"[bench-indexer] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------- services


def tool_version(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ---------------------------------------------------------------------------------------- measurements


def chunks(first: int, last: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size - 1, last)) for start in range(first, last + 1, size)]


def raw_rate(rpc_url: str, first: int, last: int, addresses: list[str], max_range: int) -> dict[str, Any]:
    """(a): logs/s of plain eth_getLogs over [first, last], chunked by `max_range`, no decoding."""
    ranges = chunks(first, last, max_range)
    client = RpcClient.from_url(rpc_url, timeout=300.0)
    session = requests.Session()

    def via_rpc_client() -> int:
        return sum(len(client.get_logs(a, b, addresses)) for a, b in ranges)

    def via_http_post() -> int:
        total = 0
        for n, (a, b) in enumerate(ranges):
            flt = {"fromBlock": hex(a), "toBlock": hex(b), "address": addresses}
            body = json.dumps({"jsonrpc": "2.0", "id": n, "method": "eth_getLogs", "params": [flt]})
            response = session.post(rpc_url, data=body, headers={"Content-Type": "application/json"}, timeout=300)
            total += len(json.loads(response.content)["result"])
        return total

    runs: dict[str, list[float]] = {}
    counts: set[int] = set()
    for name, fetch in (("rpc_client", via_rpc_client), ("http_post", via_http_post)):
        fetch()  # warm-up: connection, node caches
        for _ in range(RAW_REPEATS):
            t0 = time.perf_counter()
            n = fetch()
            runs.setdefault(name, []).append(n / (time.perf_counter() - t0))
            counts.add(n)
    session.close()
    protocol_topics = {
        "0x" + event_abi_to_log_topic(item).hex()
        for name in ("IJobMarket", "IProviderStaking")
        for item in load_abi(name)
        if item["type"] == "event"
    }
    protocol = sum(
        1
        for a, b in ranges
        for entry in client.get_logs(a, b, addresses)
        if entry["topics"] and entry["topics"][0] in protocol_topics
    )
    if len(counts) != 1:
        raise DevChainError(f"eth_getLogs returned different counts across runs: {sorted(counts)}")
    best = max(max(r) for r in runs.values())
    return {
        "logs": counts.pop(),
        "protocol_logs": protocol,  # events of IJobMarket / IProviderStaking (not AccessControl's role events)
        "requests": len(ranges),
        "logs_per_second": best,
        "rpc_client_best": max(runs["rpc_client"]),
        "http_post_best": max(runs["http_post"]),
        "runs": {k: [round(x) for x in v] for k, v in runs.items()},
    }


def cursor_number(r: redis.Redis, keys: Keys) -> int | None:
    raw = r.get(keys.cursor)
    return None if raw is None else int(json.loads(raw)["number"])


def backfill(indexer: Any, r: redis.Redis, head: int, timeout: float) -> dict[str, Any]:
    """(b): sync_once() until it returns 0 with the cursor at `head`."""
    events = calls = 0
    t0 = time.perf_counter()
    while True:
        applied = indexer.sync_once()
        calls += 1
        events += applied
        at = cursor_number(r, indexer.keys)
        if applied == 0 and at is not None and at >= head:
            break
        if time.perf_counter() - t0 > timeout:
            raise DevChainError(f"backfill not at head {head} after {timeout:.0f} s (cursor {at}, {events} events)")
    seconds = time.perf_counter() - t0
    return {"events": events, "seconds": seconds, "calls": calls, "events_per_second": events / seconds}


def redis_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def live_lag(
    chain: DevChain, indexer: Any, r: redis.Redis, requester: str, jobs: int, poll_interval: float, first_spec: int
) -> dict[str, Any]:
    """(c): receipt-to-Redis lag of `jobs` jobs posted one by one while Indexer.run() follows the head."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def follow() -> None:
        try:
            indexer.run(stop)
        except BaseException as exc:  # reported below
            failure.append(exc)

    thread = threading.Thread(target=follow, name="indexer-run", daemon=True)
    thread.start()
    lags: list[float] = []
    rng = random.Random(7)
    try:
        time.sleep(poll_interval * 2)  # let run() settle into its polling cycle
        for k in range(jobs):
            if failure:
                raise DevChainError(f"Indexer.run() stopped: {failure[0]!r}")
            time.sleep(rng.uniform(0, poll_interval))
            job_id = chain.post_job(requester, sample_spec(first_spec + k))
            t_receipt = time.perf_counter()
            key = indexer.keys.job(job_id)
            while r.hget(key, "status") is None:
                if time.perf_counter() - t_receipt > 30:
                    raise DevChainError(f"job {job_id} not in Redis 30 s after its receipt")
                time.sleep(0.001)
            lags.append(time.perf_counter() - t_receipt)
    finally:
        stop.set()
        thread.join(timeout=poll_interval * 4 + 10)
    if failure:
        raise DevChainError(f"Indexer.run() failed: {failure[0]!r}")
    ordered = sorted(lags)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {"jobs": len(lags), "median": statistics.median(lags), "p95": p95, "max": ordered[-1], "min": ordered[0]}


# ---------------------------------------------------------------------------------------- the run


def run(args: argparse.Namespace, workdir: Path, started: list[ManagedProcess]) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": {"cores": os.cpu_count(), "cpu": cpu_model(), "os": f"{platform.system()} {platform.release()}"},
        "versions": {
            "python": platform.python_version(),
            "anvil": tool_version([anvil_binary(), "--version"]),
            "redis_server": tool_version(["redis-server", "--version"]),
            "web3": package_version("web3"),
            "redis_py": package_version("redis"),
            "depin_compute": package_version("depin-compute"),
        },
    }
    log(f"work dir {workdir}")
    anvil, rpc_url = start_anvil(workdir / "anvil", args=["--quiet"])
    started.append(anvil)
    redis_proc, redis_url = start_redis(workdir / "redis")
    started.append(redis_proc)
    log(f"anvil at {rpc_url}, redis-server at {redis_url}")

    t0 = time.perf_counter()
    deployments_dir = workdir / "deployments"
    deployment = deploy_with_ape(rpc_url, deployments_dir)
    results["deploy_seconds"] = time.perf_counter() - t0
    deployment_file = deployment_path(deployment.chain_id, deployments_dir)
    log(f"deployed in {results['deploy_seconds']:.1f} s (market {deployment.addresses['JobMarket']})")

    chain = DevChain(rpc_url, deployment)
    log(f"generating {args.jobs:,} jobs (post, claim, submit, finalize)")
    generated = chain.generate_jobs(args.jobs, progress=log)
    try:
        from indexer.config import IndexerConfig
        from indexer.follower import Indexer
    except ImportError as exc:
        IndexerConfig = Indexer = None
        results["indexer_unavailable"] = f"{type(exc).__name__}: {exc}"
        log(f"indexer core not importable ({exc}); measuring the raw rate only")
    overrides: dict[str, Any] = {"max_range": args.max_range} if args.max_range else {}
    config = (
        IndexerConfig(rpc_url=rpc_url, redis_url=redis_url, deployment_file=deployment_file, **overrides)
        if IndexerConfig is not None
        else None
    )
    # Make the generated history final, as history is when an indexer backfills it: otherwise the
    # memory per job would include the undo records of the unfinalized tail, which the finality
    # depth bounds, not the number of jobs (this chain packs hundreds of events per block).
    finality_depth = config.finality_depth if config is not None else 64
    head = chain.mine(finality_depth + 1)
    results["generation"] = {
        "jobs": generated.jobs,
        "txs": generated.txs,
        "blocks": generated.blocks,
        "seconds": generated.seconds,
        "jobs_per_second": generated.jobs_per_second,
        "txs_per_second": generated.txs_per_second,
        "phases": generated.phases,
        "range": [deployment.deploy_block, head],
        "empty_blocks_to_finality": finality_depth + 1,
    }
    log(f"generated {generated.jobs:,} jobs ({generated.txs:,} txs) in {generated.seconds:.1f} s; head {head}")

    max_range = config.max_range if config is not None else (args.max_range or 5000)
    if config is not None:
        results["config"] = {
            "max_range": config.max_range,
            "confirmations": config.confirmations,
            "finality_depth": config.finality_depth,
            "poll_interval": config.poll_interval,
        }

    addresses = [deployment.addresses["JobMarket"], deployment.addresses["ProviderStaking"]]
    log(f"(a) raw eth_getLogs over blocks {deployment.deploy_block}-{head} in chunks of {max_range}")
    results["raw"] = raw_rate(rpc_url, deployment.deploy_block, head, addresses, max_range)
    log(f"(a) {results['raw']['logs']:,} logs, best {results['raw']['logs_per_second']:,.0f} logs/s")
    if config is None or Indexer is None:
        return results

    r = redis.Redis.from_url(redis_url, decode_responses=True)
    runs = []
    for attempt in range(1, BACKFILL_REPEATS + 1):
        r.flushall()
        indexer = Indexer(config)
        memory_before = redis_memory(r)
        log(f"(b) backfill from an empty Redis, run {attempt} of {BACKFILL_REPEATS}")
        runs.append(backfill(indexer, r, head, timeout=args.timeout))
        log(f"(b) {runs[-1]['events']:,} events in {runs[-1]['seconds']:.2f} s")
    # Redis now holds the last run's state (memory and state checks below).
    results["backfill"] = dict(max(runs, key=lambda run: run["events_per_second"]))
    results["backfill"]["runs_events_per_second"] = [run["events_per_second"] for run in runs]
    results["backfill"]["median_events_per_second"] = statistics.median(results["backfill"]["runs_events_per_second"])
    results["backfill"]["ratio"] = results["backfill"]["events_per_second"] / results["raw"]["logs_per_second"]
    results["backfill"]["median_ratio"] = results["backfill"]["median_events_per_second"] / results["raw"]["logs_per_second"]

    keys = indexer.keys
    finalized = r.zcard(keys.jobs_by_status("Finalized"))
    results["state_check"] = {
        "events_equal_protocol_logs": results["backfill"]["events"] == results["raw"]["protocol_logs"],
        "finalized_jobs": finalized,
        "finalized_jobs_expected": generated.jobs,
    }
    if not results["state_check"]["events_equal_protocol_logs"] or finalized != generated.jobs:
        log(f"WARNING: state check failed: {results['state_check']}")

    memory_after = redis_memory(r)
    stream = int(r.memory_usage(keys.events, samples=0) or 0)
    undo_keys = list(r.scan_iter(match=keys.undo("*"), count=1000))  # type: ignore[arg-type]
    bookkeeping = sum(int(r.memory_usage(k, samples=0) or 0) for k in [*undo_keys, keys.blocks])
    delta = memory_after - memory_before
    results["memory"] = {
        "used_before": memory_before,
        "used_after": memory_after,
        "stream_bytes": stream,
        "undo_and_blocks_bytes": bookkeeping,
        "keys": r.dbsize(),
        "bytes_per_job": delta / generated.jobs,
        "bytes_per_job_without_stream": (delta - stream) / generated.jobs,
    }

    requester = chain.accounts[1]
    chain.fund([requester], to_wei(1) * args.live_jobs)
    log(f"(c) live lag: Indexer.run(), poll interval {config.poll_interval} s, {args.live_jobs} jobs posted one by one")
    results["live"] = live_lag(chain, indexer, r, requester, args.live_jobs, config.poll_interval, first_spec=args.jobs)
    results["live"]["target"] = config.poll_interval + LAG_MARGIN
    live, ratio = results["live"], results["backfill"]["ratio"]
    results["targets"] = {
        "backfill_ratio": {"value": ratio, "target": f">= {TARGET_RATIO}", "met": ratio >= TARGET_RATIO},
        **{
            f"live_lag_{stat}": {"value": live[stat], "target": f"< {live['target']}", "met": live[stat] < live["target"]}
            for stat in ("median", "p95")
        },
    }
    r.close()
    return results


# ---------------------------------------------------------------------------------------- report


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(results: dict[str, Any]) -> str:
    m, v, g = results["machine"], results["versions"], results["generation"]
    lines = [
        "depin-compute indexer benchmark",
        f"  machine     {m['cores']} cores, {m['cpu']}, {m['os']}",
        (f"  versions    anvil {v['anvil'].removeprefix('anvil Version: ')}, {v['redis_server'].split(' sha=')[0]}, "
        f"Python {v['python']}, web3 {v['web3']}, redis-py {v['redis_py']}, depin-compute {v['depin_compute']}"),
        (f"  chain       {g['jobs']:,} jobs, {g['txs']:,} txs in {g['blocks']:,} blocks "
        f"+ {g['empty_blocks_to_finality']} empty (range {g['range'][0]}-{g['range'][1]}); "
        f"deploy {results['deploy_seconds']:.1f} s, generation {g['seconds']:.1f} s "
        f"({g['jobs_per_second']:,.0f} jobs/s, {g['txs_per_second']:,.0f} tx/s)"),
    ]
    if "config" in results:
        c = results["config"]
        lines.append(
            f"  indexer     max_range {c['max_range']}, confirmations {c['confirmations']}, "
            f"finality depth {c['finality_depth']}, poll interval {c['poll_interval']} s"
        )
    raw = results["raw"]
    rows: list[tuple[str, str, str, str]] = [
        (
            "(a) raw eth_getLogs, no decoding",
            f"{raw['logs_per_second']:,.0f} logs/s",
            "reference",
            (f"{raw['logs']:,} logs, {raw['requests']} request(s); best of {RAW_REPEATS}: "
            f"RpcClient {raw['rpc_client_best']:,.0f}, HTTP POST {raw['http_post_best']:,.0f}"),
        )
    ]
    if "backfill" in results:
        b, mem, live, check = results["backfill"], results["memory"], results["live"], results["state_check"]
        rows += [
            ("(b) indexer backfill", f"{b['events_per_second']:,.0f} events/s", "",
             (f"best of {BACKFILL_REPEATS}: {b['events']:,} events in {b['seconds']:.2f} s, {b['calls']} sync_once calls; "
             f"median {b['median_events_per_second']:,.0f} events/s")),
            ("    backfill / raw", f"{b['ratio']:.0%}", f">= {TARGET_RATIO:.0%}  {verdict(b['ratio'] >= TARGET_RATIO)}",
             f"best against best; median backfill / best raw {b['median_ratio']:.0%}"),
            ("(c) live lag, median", f"{live['median'] * 1000:,.0f} ms", (f"< {live['target'] * 1000:,.0f} ms  "
             f"{verdict(live['median'] < live['target'])}"), f"{live['jobs']} jobs posted one by one"),
            ("    live lag, p95", f"{live['p95'] * 1000:,.0f} ms", (f"< {live['target'] * 1000:,.0f} ms  "
             f"{verdict(live['p95'] < live['target'])}"), f"max {live['max'] * 1000:,.0f} ms"),
            ("(d) Redis memory per job", f"{mem['bytes_per_job']:,.0f} B", "(reported)",
             (f"{(mem['used_after'] - mem['used_before']) / 2**20:,.1f} MiB for {g['jobs']:,} jobs, "
             f"{mem['keys']:,} keys")),
            ("    ... without the stream", f"{mem['bytes_per_job_without_stream']:,.0f} B", "(reported)",
             (f"stream {mem['stream_bytes'] / 2**20:,.1f} MiB; undo records + block hashes "
             f"{mem['undo_and_blocks_bytes'] / 2**10:,.0f} KiB")),
        ]
        state_ok = check["events_equal_protocol_logs"] and check["finalized_jobs"] == check["finalized_jobs_expected"]
        skipped = raw["logs"] - raw["protocol_logs"]
        state_note = (
            f"state check: events applied = the {raw['protocol_logs']:,} protocol logs ({skipped} AccessControl role "
            "logs skipped by design), every job Finalized in Redis"
            if state_ok
            else f"STATE CHECK FAILED: {check}"
        )
    else:
        state_note = f"indexer core unavailable ({results.get('indexer_unavailable')}): (b), (c), (d) not measured"
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines.append("")
    lines.append(f"  {'measurement':<{widths[0]}}  {'value':>{widths[1]}}  {'target':<{widths[2]}}  notes")
    for row in rows:
        lines.append(f"  {row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip())
    lines += ["", f"  {state_note}"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Indexer benchmark: backfill events/s vs raw eth_getLogs logs/s, live lag, Redis memory per job."
    )
    add = parser.add_argument
    add("--jobs", type=int, default=10_000, help="jobs to generate (4 market events each; default 10,000)")
    add("--live-jobs", type=int, default=50, help="jobs posted one by one for the live lag (default 50)")
    add("--max-range", type=int, default=None, help="override the indexer's max_range (blocks per eth_getLogs)")
    add("--timeout", type=float, default=1800.0, help="give up on the backfill after this many seconds")
    add("--keep", action="store_true", help="keep the temporary directory (anvil and redis logs, deployment)")
    add("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.live_jobs < 1:
        parser.error("--jobs and --live-jobs must be positive")
    return args


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    workdir = Path(tempfile.mkdtemp(prefix="depin-bench-indexer-"))
    started: list[ManagedProcess] = []
    status = 0
    try:
        results = run(args, workdir, started)
        print(json.dumps(results, indent=2, sort_keys=True) if args.json else report(results))
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    except DepinError as exc:
        log(f"failed: {exc}")
        status = 1
    finally:
        for proc in reversed(started):
            proc.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
