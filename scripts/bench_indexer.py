"""Indexer benchmark: backfill against the raw reading of the same logs, live lag, Redis memory per job.

Run with ``make bench-indexer`` or ``.venv/bin/python scripts/bench_indexer.py --jobs 10000 --json out.json``
(a plain Python script). It prints a markdown table and, with ``--json PATH``, writes every figure
as JSON (the README cites its fields). On a throwaway anvil and redis-server (free ports, a
temporary directory removed at exit unless ``--keep``):

1. deploys the contracts (``ape run deploy``) and generates ``--jobs`` jobs through post, claim,
   submit and finalize (:meth:`depinctl.devchain.DevChain.generate_jobs`), then mines past the
   finality depth so that the backfill sees final history;
2. (a) **raw read** and (b) **backfill**, interleaved ``--reps`` times (default 5): (a) reads the
   same logs the indexer reads with the indexer's own transport (its msgspec ``LogFetcher``) and
   filter (addresses and handled topics), without decoding, twice: in ``max_range`` chunks and in
   the ranges the rep's backfill requested; the chunking with the higher median is the reference
   (a node may serve a few thousand logs per request faster than tens of thousands); (b) backfills
   an empty Redis with a new ``Indexer`` (``sync_once`` until at the head). Median, min, max and
   standard deviation of each, and the ratio of the medians; per event, the CPU each backfill cost
   the indexer process, redis-server and the node (and the node's per log in the raw read), and
   where the indexer's main thread spent the backfill's wall time (decode, reduce, commit: send
   and wait for Redis, the rest: waiting for the fetch thread) with the fetch thread's CPU;
   (b') **ceilings**: one more backfill into a spare Redis database records every commit, whose
   writes are then sent again as plain ``MULTI``/``EXEC`` commands (Redis's CPU without the commit
   script), and ``INFO commandstats`` times the write commands the script ran (Redis's cost of the
   writes themselves, apart from the script's decoding); from these, the ratio each bottleneck
   allows (the indexer's one GIL, Redis's one thread, all cores together) and the indexer CPU per
   event the 75 % target leaves;
3. (d) Redis ``used_memory`` per indexed job after the backfill (nothing compacted yet);
4. (c) **live lag** at the default poll interval (0.5 s) with the default new-head subscription
   (anvil's ``ws://`` on the RPC port): ``Indexer.run()`` in a thread, jobs posted one by one at
   random points of the poll cycle, receipt to ``HGET status``; p50 and p95; then (unless
   ``--skip-poll-only``) the same with the subscription off (``live_poll_only``: the poll alone);
5. (e) **retention**: ``--memory-jobs`` (default 100,000) settled jobs *synthesized* from the chain's
   decoded job events straight into the reducer and store (say so in the output: posting 100,000
   jobs on anvil takes too long here), then compacted; Redis bytes per settled job and per million.

Targets (issue 15): backfill >= 75 % of the raw read; live lag p95 < 300 ms; <= 1,500 bytes per settled
job. Redis runs without persistence so that snapshots do not fork mid-measurement.
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

from depin.deployment import deployment_path, to_wei
from depin.errors import DepinError
from depin.keys import Keys
from depinctl.deploy import deploy_with_ape
from depinctl.devchain import DevChain, DevChainError, sample_spec
from depinctl.procs import ManagedProcess, anvil_binary, start_anvil, start_redis


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


def spread(values: list[float]) -> dict[str, Any]:
    """Median and spread of repeated measurements."""
    return {
        "runs": values,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) process `pid` and its live descendants have used, from /proc
    (0.0 when unknown): the node may be a launcher's child (npm's anvil is a node script)."""
    if pid is None:
        return 0.0
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += process_cpu(int(child))
    except (OSError, IndexError, ValueError):
        pass
    return total


def raw_read(
    indexer: Any, first: int, last: int, node_pid: int | None = None, ranges: list[tuple[int, int]] | None = None
) -> dict[str, Any]:
    """(a): one plain read of the logs the indexer backfills, with the indexer's own transport (its
    msgspec :class:`~depin.chain.logs.LogFetcher`) and its filter (the same addresses and topics),
    serially, without decoding: the practical limit of reading those logs from this node. In
    ranges of the indexer's ``max_range``, or in `ranges` (those a backfill requested: a node may
    serve a few thousand logs per request faster than tens of thousands)."""
    fetcher = indexer._logs
    if fetcher is None:
        raise DevChainError("the indexer has no LogFetcher (a non-HTTP RPC URL?)")
    if ranges is None:
        ranges = chunks(first, last, indexer.config.max_range)
    node0 = process_cpu(node_pid)
    t0 = time.perf_counter()
    logs = sum(len(fetcher.get_logs(a, b, indexer.decoder.addresses, indexer._topics)) for a, b in ranges)
    seconds = time.perf_counter() - t0
    node = process_cpu(node_pid) - node0
    return {"logs": logs, "requests": len(ranges), "seconds": seconds, "logs_per_second": logs / seconds,
            "node_cpu_us_per_log": node / max(logs, 1) * 1e6}


def cursor_number(r: redis.Redis, keys: Keys) -> int | None:
    raw = r.get(keys.cursor)
    return None if raw is None else int(json.loads(raw)["number"])


def redis_cpu(r: redis.Redis) -> float:
    """CPU seconds the redis-server process has used (user + system, ``INFO cpu``)."""
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def backfill(indexer: Any, r: redis.Redis, head: int, timeout: float, node_pid: int | None = None) -> dict[str, Any]:
    """(b): sync_once() until it returns 0 with the cursor at `head`; also the CPU it cost this
    process (all its threads: one GIL runs them), redis-server and the node, per event."""
    events = calls = 0
    ranges: list[tuple[int, int]] = []  # the eth_getLogs ranges the indexer chose
    fetch_logs = indexer._fetch_logs

    def recording(start: int, end: int) -> Any:
        logs, last = fetch_logs(start, end)
        ranges.append((start, last))
        return logs, last

    indexer._fetch_logs = recording
    phases = dict.fromkeys(PHASES, 0.0)
    _time_phases(indexer, phases)
    # The start-up check (the node's chain id, the deployment file's contracts: their code and the
    # market's links) runs once per process, before its first pass: timed on its own, not per event.
    t_check = time.perf_counter()
    indexer._check_chain()
    check_seconds = time.perf_counter() - t_check
    cpu0, redis0, node0 = time.process_time(), redis_cpu(r), process_cpu(node_pid)
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
    cpu, redis_seconds, node = time.process_time() - cpu0, redis_cpu(r) - redis0, process_cpu(node_pid) - node0
    phases["rest"] = seconds - sum(phases[name] for name in MAIN_PHASES)
    return {
        "events": events,
        "seconds": seconds,
        "calls": calls,
        "events_per_second": events / seconds,
        "indexer_cpu_us_per_event": cpu / max(events, 1) * 1e6,
        "redis_cpu_us_per_event": redis_seconds / max(events, 1) * 1e6,
        "node_cpu_us_per_event": node / max(events, 1) * 1e6,
        "ranges": sorted(ranges),
        "startup_check_seconds": check_seconds,
        "phases_us_per_event": {name: value / max(events, 1) * 1e6 for name, value in phases.items()},
    }


# Where a backfill's time goes, per event: the main thread's wall time in each step of a pass
# (MAIN_PHASES; wall time, so it includes the moments the fetch thread holds the GIL; "rest" is the
# rest of the backfill's wall time: waiting for the fetch thread's next range, and the pass's other
# steps), and the fetch thread's CPU (it overlaps the main thread, sharing its GIL).
MAIN_PHASES = ("decode", "reduce", "commit_send", "commit_wait")
PHASES = (*MAIN_PHASES, "fetch_thread_cpu")
PHASE_LABELS = {
    "decode": "decode (ABI decoding, order and court checks, timestamps)",
    "reduce": "reduce (reads, handlers, changed fields, memberships, stream lines)",
    "commit_send": "commit: encode and send",
    "commit_wait": "commit: wait for Redis",
    "rest": "rest: waiting for the fetch thread, the pass's other steps",
    "fetch_thread_cpu": "fetch thread CPU (eth_getLogs, msgspec parse, headers; overlapped)",
}


def _time_phases(indexer: Any, phases: dict[str, float]) -> None:
    """Wraps the indexer's backfill steps (per batch, not per event: no measurable overhead) to add
    their times to `phases`."""

    def timed(name: str, fn: Any, clock: Any = time.perf_counter) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[name] += clock() - t

        return wrapper

    commit = indexer.store.commit

    def commit_timed(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            pending = commit(*args, **kwargs)
        finally:
            phases["commit_send"] += time.perf_counter() - t
        if pending is not None:
            pending.wait = timed("commit_wait", pending.wait)
        return pending

    indexer._decode = timed("decode", indexer._decode)
    indexer._reduce = timed("reduce", indexer._reduce)
    indexer.store.commit = commit_timed
    indexer._fetch_final = timed("fetch_thread_cpu", indexer._fetch_final, time.thread_time)


# The write commands the commit script runs (INFO commandstats times them inside EVALSHA too).
_WRITES = frozenset({"hset", "hdel", "hincrby", "xadd", "xtrim", "zadd", "zrem", "set", "del"})


def _command_stats(r: redis.Redis) -> dict[str, dict[str, float]]:
    """``INFO commandstats`` by command name (``cmdstat_`` dropped): calls, usec, usec_per_call."""
    return {name.removeprefix("cmdstat_"): stats for name, stats in r.info("commandstats").items()}


def redis_floor(config: Any, redis_url: str, head: int, timeout: float, db: int = 15) -> dict[str, Any]:
    """(b'): what redis-server alone spends storing one backfill, per event. Backfills into an
    empty database `db` with the indexer's commit script while recording each commit's writes (the
    hash fields, the other commands, the stream entries), then sends the same writes again as plain
    commands, one MULTI/EXEC per commit, into the emptied database: the least Redis spends
    storing what the index holds without the script's decoding. A single-threaded Redis spending
    X us per event caps the backfill at 1/X events/s however fast the indexer gets. Also the time
    Redis spent executing the write commands themselves inside the script (``INFO commandstats``):
    the rest of the script's cost is its decoding and calling them, not the index's writes."""
    from indexer.follower import Indexer
    from indexer.reducer import parse_stream_line

    client = redis.Redis.from_url(redis_url, db=db, decode_responses=True)
    client.flushdb()
    indexer = Indexer(config, redis_client=client)
    store = indexer.store
    commits: list[tuple[dict[str, dict[str, str]], list[list[str]], list[str]]] = []
    send = store._send

    def recording(expected: Any, hset: Any, commands: Any, new: Any, stream: Any) -> Any:
        commits.append((dict(hset or {}), [list(c) for c in commands], list(stream)))
        return send(expected, hset, commands, new, stream)

    store._send = recording
    client.config_resetstat()  # INFO commandstats from here: the scripted backfill's commands
    scripted = backfill(indexer, client, head, timeout)
    events = max(scripted["events"], 1)
    timed = {name: stats["usec"] / events for name, stats in _command_stats(client).items() if name in _WRITES}
    keys = client.dbsize()
    client.flushdb()
    before = redis_cpu(client)
    for hset, commands, stream in commits:
        pipe = client.pipeline(transaction=True)
        for key, fields in hset.items():
            pipe.hset(key, mapping=fields)
        for command in commands:
            pipe.execute_command(*command)
        for line in stream:
            pipe.xadd(store.keys.events, parse_stream_line(line))
        if stream and store.stream_max_len:  # as the script trims after appending
            pipe.xtrim(store.keys.events, maxlen=store.stream_max_len, approximate=True)
        pipe.execute()
    plain = (redis_cpu(client) - before) / events * 1e6
    replayed_keys = client.dbsize()
    client.flushdb()
    client.close()
    return {
        "events": scripted["events"],
        "commits": len(commits),
        "hash_fields_written": sum(len(f) for hset, _, _ in commits for f in hset.values()),
        "script_us_per_event": scripted["redis_cpu_us_per_event"],
        "commands_us_per_event": sum(timed.values()),
        "commands": dict(sorted(timed.items(), key=lambda kv: -kv[1])),
        "plain_us_per_event": plain,
        "same_keys": keys == replayed_keys,
    }


def redis_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


JOB_EVENTS = ("JobPosted", "JobClaimed", "ResultSubmitted", "JobFinalized")


def retained_memory(indexer: Any, r: redis.Redis, jobs: int, batch_jobs: int = 500) -> dict[str, Any]:
    """(e): Redis bytes per *settled* job under the retention policy, at `jobs` jobs.

    Posting 100,000 jobs on anvil takes too long on this machine, so the jobs are **synthesized**:
    the decoded events of the jobs already on the chain (post, claim, submit, finalize; real
    specs, addresses and hashes) are cloned with new job ids, blocks and transaction hashes and fed
    straight into the indexer's reducer and store (``Reducer.apply`` + ``Store.commit``, final
    blocks, the store's stream trimming on), batch after batch. Then the retention pass compacts
    every settled job (``Store.compact`` up to the last block: the synthetic blocks are taken as
    past the reorg window) and the memory is read again. `indexer` must have indexed the chain.
    """
    from indexer.store import Cursor

    store, keys = indexer.store, indexer.keys
    cursor = store.cursor()
    assert cursor is not None
    deploy = indexer.deployment.deploy_block
    raw = indexer._logs.get_logs(deploy, cursor.number, indexer.decoder.addresses, indexer._topics)
    events = [e for e in indexer._decode(raw, deploy, cursor.number, None) if e.name in JOB_EVENTS]
    template_ids = sorted({int(e.args["jobId"]) for e in events})
    if not template_ids:
        raise DevChainError("no job events on the chain to synthesize from")
    by_job: dict[int, list[Any]] = {}
    for e in events:
        by_job.setdefault(int(e.args["jobId"]), []).append(e)
    template = [by_job[j] for j in template_ids if [e.name for e in by_job[j]] == list(JOB_EVENTS)]
    if not template:
        raise DevChainError("no job on the chain went through post, claim, submit and finalize")
    first_id = int(r.hget(keys.totals, "jobs") or 0) + 1
    synthesized_from = {"template_jobs": len(template), "first_id": first_id}
    # The chain's own jobs are compacted first, so that the baseline does not shrink under the
    # measurement (their compaction would be credited to the synthesized jobs).
    while store.compact(cursor.number, 5000) == 5000:
        pass
    r.memory_purge()
    before = redis_memory(r)
    stream_before = int(r.memory_usage(keys.events, samples=0) or 0)
    block = cursor.number
    t0 = time.perf_counter()
    made = 0
    from indexer.decode import Event

    while made < jobs:
        n = min(batch_jobs, jobs - made)
        batch: list[Any] = []
        for phase in range(len(JOB_EVENTS)):  # all posts of the batch, then claims, ... (as generate_jobs)
            block += 1
            for k in range(n):
                job_id = first_id + made + k
                src = template[(made + k) % len(template)][phase]
                tx = f"0x{job_id * 8 + phase:064x}"
                batch.append(Event(src.name, src.contract, src.address, block, f"0x{block:064x}", tx, k,
                                   {**src.args, "jobId": job_id}))
                batch[-1].timestamp = src.timestamp
        result = indexer._reduce(batch, None)
        new = Cursor(block, f"0x{block:064x}")
        store.commit(cursor, new, result, touched=result.values)
        cursor = new
        made += n
    fed_seconds = time.perf_counter() - t0
    full = redis_memory(r)
    stream_full = int(r.memory_usage(keys.events, samples=0) or 0)
    t0 = time.perf_counter()
    compacted = 0
    while True:
        n = store.compact(block, 5000)
        compacted += n
        if n < 5000:
            break
    compact_seconds = time.perf_counter() - t0
    r.memory_purge()  # jemalloc: return freed pages, so used_memory is what the data holds
    after = redis_memory(r)
    stream = int(r.memory_usage(keys.events, samples=0) or 0)
    sample = [keys.job(first_id + i) for i in range(0, jobs, max(1, jobs // 1000))]
    job_hash = statistics.mean(int(r.memory_usage(k, samples=0) or 0) for k in sample)
    index_keys = [k for k in r.scan_iter(match=keys.prefix + ":jobs:*", count=1000)]
    index_bytes = sum(int(r.memory_usage(k, samples=0) or 0) for k in index_keys)
    # Hashes and indexes per job (the stream's change left out), then the stream as it stands at
    # `jobs` jobs: trimmed to stream_max_len entries, its cost does not grow with more jobs.
    per_job_without_stream = ((after - stream) - (before - stream_before)) / jobs
    per_job = per_job_without_stream + stream / jobs
    return {
        "method": "synthesized: real decoded job events cloned into Reducer.apply + Store.commit (not through a chain)",
        **synthesized_from,
        "jobs": jobs,
        "compacted": compacted,
        "stream_max_len": store.stream_max_len,
        "stream_entries": r.xlen(keys.events),
        "feed_seconds": fed_seconds,
        "compact_seconds": compact_seconds,
        "used_before": before,
        "used_full": full,
        "used_after": after,
        "bytes_per_job_uncompacted": ((full - stream_full) - (before - stream_before)) / jobs + stream_full / jobs,
        "bytes_per_job_uncompacted_without_stream": ((full - stream_full) - (before - stream_before)) / jobs,
        "bytes_per_settled_job": per_job,
        "bytes_per_settled_job_without_stream": per_job_without_stream,
        "job_hash_bytes_mean": job_hash,
        "index_bytes_per_job": index_bytes / jobs,  # the sorted sets: all, by status, requester, provider
        "stream_bytes": stream,
        "stream_bytes_before": stream_before,
        # A million settled jobs: the per-job cost of hashes and indexes, plus the capped stream.
        "bytes_per_million_jobs": per_job_without_stream * 1_000_000 + stream,
        "target_bytes_per_settled_job": 1500,
        "met": per_job <= 1500,
    }


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
    # depth bounds, not the number of jobs (this chain packs hundreds of events per block). The
    # indexer keeps undo records for twice the finality depth (Indexer.window).
    finality_depth = config.finality_depth if config is not None else 64
    head = chain.mine(2 * finality_depth + 1)
    results["generation"] = {
        "jobs": generated.jobs,
        "txs": generated.txs,
        "blocks": generated.blocks,
        "seconds": generated.seconds,
        "jobs_per_second": generated.jobs_per_second,
        "txs_per_second": generated.txs_per_second,
        "phases": generated.phases,
        "range": [deployment.deploy_block, head],
        "empty_blocks_to_finality": 2 * finality_depth + 1,
    }
    log(f"generated {generated.jobs:,} jobs ({generated.txs:,} txs) in {generated.seconds:.1f} s; head {head}")

    if config is not None:
        results["config"] = {
            "max_range": config.max_range,
            "confirmations": config.confirmations,
            "finality_depth": config.finality_depth,
            "poll_interval": config.poll_interval,
            "ws_url": config.resolved_ws_url(),
            "stream_max_len": config.stream_max_len,
            "compact_after": config.compact_after,
        }

    if config is None or Indexer is None:
        raise DevChainError(f"the indexer is not importable: {results.get('indexer_unavailable')}")

    # (a) and (b) interleaved: raw read, backfill, raw read, backfill, ... so that both sides see the
    # same machine load; median and spread of each, ratio of the medians. The raw read is done in
    # two chunkings each rep, max_range ranges and the ranges that rep's backfill requested, and the
    # one with the higher median is the reference (the best raw reading).
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    chunkings: dict[str, list[dict[str, Any]]] = {"max_range": [], "indexer_ranges": []}
    fill_runs: list[dict[str, Any]] = []
    indexer = Indexer(config)
    node_pid = anvil.pid
    raw_read(indexer, deployment.deploy_block, head)  # warm-up: connection, node caches
    for attempt in range(1, args.reps + 1):
        chunkings["max_range"].append(raw_read(indexer, deployment.deploy_block, head, node_pid))
        r.flushall()
        indexer = Indexer(config)
        memory_before = redis_memory(r)
        fill_runs.append(backfill(indexer, r, head, timeout=args.timeout, node_pid=node_pid))
        chunkings["indexer_ranges"].append(
            raw_read(indexer, deployment.deploy_block, head, node_pid, ranges=fill_runs[-1]["ranges"])
        )
        log(f"rep {attempt}/{args.reps}: raw {chunkings['max_range'][-1]['logs_per_second']:,.0f} logs/s "
            f"(max_range), {chunkings['indexer_ranges'][-1]['logs_per_second']:,.0f} (the indexer's ranges); "
            f"backfill {fill_runs[-1]['events_per_second']:,.0f} events/s")
    chunk_rates = {name: spread([x["logs_per_second"] for x in runs]) for name, runs in chunkings.items()}
    best = max(chunk_rates, key=lambda name: chunk_rates[name]["median"])
    raw_runs = chunkings[best]
    raw_rates = chunk_rates[best]
    fill_rates = spread([x["events_per_second"] for x in fill_runs])
    results["raw"] = {
        "transport": "indexer LogFetcher (msgspec), the indexer's addresses and topics, serial, no decoding",
        "chunking": best,
        "chunkings": {name: {"requests": chunkings[name][0]["requests"], "logs_per_second": rates}
                      for name, rates in chunk_rates.items()},
        "logs": raw_runs[0]["logs"],
        "requests": raw_runs[0]["requests"],
        "logs_per_second": raw_rates,
        "node_cpu_us_per_log": spread([x["node_cpu_us_per_log"] for x in raw_runs]),
    }
    results["backfill"] = {
        "events": fill_runs[-1]["events"],
        "calls": fill_runs[-1]["calls"],
        "events_per_second": fill_rates,
        "ratio_of_medians": fill_rates["median"] / raw_rates["median"],
        "ratio_per_rep": [f["events_per_second"] / w["logs_per_second"] for f, w in zip(fill_runs, raw_runs, strict=True)],
        "reps": args.reps,
        "interleaved": True,
        "indexer_cpu_us_per_event": spread([f["indexer_cpu_us_per_event"] for f in fill_runs]),
        "redis_cpu_us_per_event": spread([f["redis_cpu_us_per_event"] for f in fill_runs]),
        "node_cpu_us_per_event": spread([f["node_cpu_us_per_event"] for f in fill_runs]),
        "startup_check_seconds": spread([f["startup_check_seconds"] for f in fill_runs]),
        "phases_us_per_event": {name: spread([f["phases_us_per_event"][name] for f in fill_runs]) for name in PHASE_LABELS},
    }

    keys = indexer.keys
    finalized = r.zcard(keys.jobs_by_status("Finalized"))
    results["state_check"] = {
        "events_equal_logs": results["backfill"]["events"] == results["raw"]["logs"],
        "finalized_jobs": finalized,
        "finalized_jobs_expected": generated.jobs,
    }
    if not results["state_check"]["events_equal_logs"] or finalized != generated.jobs:
        log(f"WARNING: state check failed: {results['state_check']}")

    memory_after = redis_memory(r)
    stream = int(r.memory_usage(keys.events, samples=0) or 0)
    delta = memory_after - memory_before
    results["memory"] = {
        "used_before": memory_before,
        "used_after": memory_after,
        "stream_bytes": stream,
        "keys": r.dbsize(),
        "bytes_per_job": delta / generated.jobs,
        "bytes_per_job_without_stream": (delta - stream) / generated.jobs,
    }

    # (b') The ceilings. A backfill cannot go faster than the one thread of redis-server stores its
    # writes, nor than the indexer's GIL runs its Python, nor than the machine's cores run the node,
    # Redis and the indexer together; each as a share of the raw read's rate (medians). And the CPU
    # per event left to the indexer at the target, with the node and Redis (plain commands) as
    # measured: cores x (raw us per log / 0.75) - node - Redis, at most raw / 0.75 (one GIL).
    log("(b') Redis alone: the same writes through the commit script and as plain MULTI/EXEC commands")
    floor = redis_floor(config, redis_url, head, args.timeout)
    raw_us = 1e6 / raw_rates["median"]
    fill = results["backfill"]
    indexer_us = fill["indexer_cpu_us_per_event"]["median"]
    node_us = fill["node_cpu_us_per_event"]["median"]
    redis_us = fill["redis_cpu_us_per_event"]["median"]  # the commit script, median of the reps like the rest
    cores = os.cpu_count() or 1
    target_us = raw_us / 0.75
    results["ceilings"] = {
        "raw_us_per_log": raw_us,
        "cores": cores,
        "redis": floor,
        "redis_script_ratio": raw_us / redis_us,
        "redis_plain_ratio": raw_us / floor["plain_us_per_event"],
        "indexer_cpu_ratio": raw_us / indexer_us,
        "all_cores_ratio": raw_us / max((node_us + redis_us + indexer_us) / cores, indexer_us, redis_us),
        "indexer_budget_us_at_target": min(target_us, cores * target_us - node_us - floor["plain_us_per_event"]),
    }
    log(f"(b') Redis {floor['script_us_per_event']:.1f} us/event (script), {floor['plain_us_per_event']:.1f} (plain); "
        f"raw read {raw_us:.1f} us/log")

    requester = chain.accounts[1]
    chain.fund([requester], to_wei(1) * args.live_jobs * 2)
    ws_url = config.resolved_ws_url()
    log(f"(c) live lag: Indexer.run(), poll interval {config.poll_interval} s, newHeads at {ws_url or '-'}, "
        f"{args.live_jobs} jobs posted one by one")
    results["live"] = {**live_lag(chain, indexer, r, requester, args.live_jobs, config.poll_interval, first_spec=args.jobs),
                       "ws_url": ws_url}
    if ws_url is not None and not args.skip_poll_only:
        # The same with the subscription off: what the poll alone gives (the figure before newHeads).
        log(f"(c') live lag, poll only: {args.live_jobs} more jobs")
        poll_only = Indexer(config.model_copy(update={"ws_url": "off"}))
        results["live_poll_only"] = live_lag(chain, poll_only, r, requester, args.live_jobs, config.poll_interval,
                                             first_spec=args.jobs + args.live_jobs)
    if args.memory_jobs:
        log(f"(e) retention: {args.memory_jobs:,} synthesized settled jobs, then compaction")
        results["retention"] = retained_memory(indexer, r, args.memory_jobs)
        log(f"(e) {results['retention']['bytes_per_settled_job']:,.0f} B per settled job")
    live, ratio = results["live"], results["backfill"]["ratio_of_medians"]
    results["targets"] = {
        "backfill_ratio": {"value": ratio, "target": ">= 0.75", "met": ratio >= 0.75},
        "live_lag_p95": {"value": live["p95"], "target": "< 0.3", "met": live["p95"] < 0.3},
    }
    if "retention" in results:
        value = results["retention"]["bytes_per_settled_job"]
        results["targets"]["bytes_per_settled_job"] = {"value": value, "target": "<= 1500", "met": value <= 1500}
    r.close()
    return results


# ---------------------------------------------------------------------------------------- report


def markdown(results: dict[str, Any]) -> str:
    """The figures as a markdown table (each row names the JSON field it comes from)."""
    raw, b, live, mem = results["raw"], results["backfill"], results["live"], results["memory"]
    rows = [
        (f"raw read, indexer transport, {name.replace('_', ' ')} ({c['requests']} request{'s' if c['requests'] != 1 else ''}; logs/s)",
         c["logs_per_second"], f"raw.chunkings.{name}.logs_per_second")
        for name, c in raw["chunkings"].items()
    ]
    rows += [
        (f"raw read, the reference: the faster chunking, {raw['chunking'].replace('_', ' ')} (logs/s)",
         raw["logs_per_second"], "raw.logs_per_second"),
        ("backfill (events/s)", b["events_per_second"], "backfill.events_per_second"),
    ]
    out = [
        f"indexer: {results['generation']['jobs']:,} jobs on chain, {raw['logs']:,} logs, {b['reps']} interleaved reps",
        "",
        "| measurement | median | min | max | JSON field |",
        "|---|---:|---:|---:|---|",
    ]
    for label, st, field in rows:
        out.append(f"| {label} | {st['median']:,.0f} | {st['min']:,.0f} | {st['max']:,.0f} | `{field}` |")
    out.append(f"| backfill / raw (ratio of medians) | {b['ratio_of_medians']:.0%} | {min(b['ratio_per_rep']):.0%} | "
               f"{max(b['ratio_per_rep']):.0%} | `backfill.ratio_of_medians` |")
    sc = b["startup_check_seconds"]
    out.append(f"| start-up check of the node and the deployment file, once per process, before the backfill (ms) | "
               f"{sc['median'] * 1000:,.1f} | {sc['min'] * 1000:,.1f} | {sc['max'] * 1000:,.1f} | `backfill.startup_check_seconds` |")
    c = results["ceilings"]
    out.append(f"| indexer process CPU per event (us; all threads, one GIL) | "
               f"{b['indexer_cpu_us_per_event']['median']:,.1f} | {b['indexer_cpu_us_per_event']['min']:,.1f} | "
               f"{b['indexer_cpu_us_per_event']['max']:,.1f} | `backfill.indexer_cpu_us_per_event` |")
    for name, label in PHASE_LABELS.items():
        ph = b["phases_us_per_event"][name]
        out.append(f"| backfill, {label} (us per event) | {ph['median']:,.1f} | {ph['min']:,.1f} | {ph['max']:,.1f} | "
                   f"`backfill.phases_us_per_event.{name}` |")
    out.append(f"| redis-server CPU per event (us), during the backfill | {b['redis_cpu_us_per_event']['median']:,.1f} | "
               f"{b['redis_cpu_us_per_event']['min']:,.1f} | {b['redis_cpu_us_per_event']['max']:,.1f} | "
               "`backfill.redis_cpu_us_per_event` |")
    out.append(f"| redis-server time per event (us) in the write commands themselves, inside the script | "
               f"{c['redis']['commands_us_per_event']:,.1f} | | | `ceilings.redis.commands_us_per_event` |")
    out.append(f"| redis-server CPU per event (us), the same writes as plain MULTI/EXEC commands | "
               f"{c['redis']['plain_us_per_event']:,.1f} | | | `ceilings.redis.plain_us_per_event` |")
    out.append(f"| node CPU per log (us): raw read / backfill | {raw['node_cpu_us_per_log']['median']:,.1f} / "
               f"{b['node_cpu_us_per_event']['median']:,.1f} | | | `raw.node_cpu_us_per_log`, `backfill.node_cpu_us_per_event` |")
    out.append(f"| ceiling of backfill / raw set by Redis alone (script / plain), the indexer's CPU, all {c['cores']} cores | "
               f"{c['redis_script_ratio']:.0%} / {c['redis_plain_ratio']:.0%} / {c['indexer_cpu_ratio']:.0%} / "
               f"{c['all_cores_ratio']:.0%} | | | `ceilings.redis_script_ratio`, `.redis_plain_ratio`, "
               "`.indexer_cpu_ratio`, `.all_cores_ratio` |")
    out.append(f"| indexer CPU per event the 75 % target leaves (us), against the measured | "
               f"{c['indexer_budget_us_at_target']:,.1f} vs {b['indexer_cpu_us_per_event']['median']:,.1f} | | | "
               "`ceilings.indexer_budget_us_at_target` |")
    out.append(f"| live lag p50 / p95 (ms, poll {results['config']['poll_interval']} s) | {live['median'] * 1000:,.0f} / "
               f"{live['p95'] * 1000:,.0f} | {live['min'] * 1000:,.0f} | {live['max'] * 1000:,.0f} | `live.median`, `live.p95` |")
    if "live_poll_only" in results:
        po = results["live_poll_only"]
        out.append(f"| live lag p50 / p95, poll only (ms, subscription off) | {po['median'] * 1000:,.0f} / "
                   f"{po['p95'] * 1000:,.0f} | {po['min'] * 1000:,.0f} | {po['max'] * 1000:,.0f} | "
                   "`live_poll_only.median`, `live_poll_only.p95` |")
    out.append(f"| Redis bytes per job, no compaction | {mem['bytes_per_job']:,.0f} | | | `memory.bytes_per_job` |")
    if "retention" in results:
        ret = results["retention"]
        out.append(f"| Redis bytes per settled job, compacted, at {ret['jobs']:,} jobs ({ret['method'].split(':')[0]}) | "
                   f"{ret['bytes_per_settled_job']:,.0f} | | | `retention.bytes_per_settled_job` |")
        out.append(f"| Redis memory per million settled jobs (MiB) | {ret['bytes_per_million_jobs'] / 2**20:,.0f} | | | "
                   "`retention.bytes_per_million_jobs` |")
    out.append("")
    out.append("targets: " + ", ".join(f"{k} {v['target']}: {'met' if v['met'] else 'MISSED'}" for k, v in results["targets"].items()))
    return "\n".join(out)


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
    add("--reps", type=int, default=5, help="interleaved repetitions of the raw read and the backfill (default 5)")
    add("--memory-jobs", type=int, default=100_000,
        help="settled jobs synthesized for the retention memory figure (default 100,000; 0: skip)")
    add("--skip-poll-only", action="store_true",
        help="measure the live lag with the newHeads subscription only, not again with polling alone")
    add("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.live_jobs < 1 or args.reps < 1 or args.memory_jobs < 0:
        parser.error("--jobs, --live-jobs and --reps must be positive, --memory-jobs not negative")
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
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
            log(f"wrote {args.json}")
        print(markdown(results))
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
