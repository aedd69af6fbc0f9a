"""Load benchmark (``make bench-load``): many provider executors sharing one machine.

Starts a devnet-like stack on free ports (:mod:`benchstack`: anvil with a block every second,
the devnet deployment, redis-server, the indexer at its default poll, a Podman service, the sample
images) and ``--providers`` provider executors (default 8), each its own set of processes
(compute worker at concurrency 1, chain worker, beat, dispatcher, result server). Then
``--requesters`` requesters (default 4) post ``--jobs`` jobs (default 500) in turn, as fast as the
node takes them, each a trivial container run (``depin/busybox``), verify mode none, the devnet's
shortest challenge window (8 s). The providers claim, run, submit and finalize them (their beat
finalizes their own jobs every ``DEPIN_BEAT_INTERVAL`` = 2 s).

Measured: jobs per minute end to end (first post to last finalized), the share of jobs per
provider (fairness: min, max and Jain's index), post receipt → Finalized (seen in the index) p50 and
p95; checked on the chain at the end: every job Finalized (nothing stuck: a job not finalized within
``--timeout`` seconds is listed) and exactly one ``JobFinalized`` log per job in the chain's logs
(nothing paid twice: a finalize pays once). Exit status 1 when a check fails.

With ``--post-batch N`` the requesters post N jobs per ``postJobs`` transaction. The JSON's
``transactions`` counts, for each step (post, claim, submit, finalize), the logs of these jobs and
the transactions they came in: how much the batch calls were used.

    .venv/bin/python scripts/bench_load.py [--providers 8] [--jobs 500] [--requesters 4] [--post-batch 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for _path in (REPO, REPO / "scripts"):  # run as a plain script from a checkout
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ["PATH"] = f"{REPO / 'node_modules' / '.bin'}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"

from benchstack import COMMAND, BenchStack, spec, terms

from depin.market import JobStatus

# Anvil development accounts: executors sign with one of the keys 0-9 (``[key] dev_account``); 0 is
# the deployer and faucet and 5 the arbiter, so the providers are the other eight; requesters are
# accounts 10 on (the driver sends for them with eth_sendTransaction).
PROVIDER_ACCOUNTS = (1, 2, 3, 4, 6, 7, 8, 9)
FIRST_REQUESTER = 10


def say(msg: str) -> None:
    print(f"[bench-load] {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def jain(shares: list[int]) -> float:
    """Jain's fairness index: 1 when every provider got the same number of jobs, 1/n when one got all."""
    total = sum(shares)
    return total * total / (len(shares) * sum(s * s for s in shares)) if total else 0.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    from executor.engine import connect, stop_podman_service
    from executor.images import build_sample_images

    tmp = Path(tempfile.mkdtemp(prefix="depin-bench-load-"))
    podman_dir = Path(tempfile.mkdtemp(prefix="depin-bload-"))
    say(f"setting up in {tmp}: anvil, deploy, redis, indexer, podman, images, {args.providers} provider executors")
    engine = connect(os.environ.get("DEPIN_TEST_DOCKER_HOST", ""), podman_dir)
    images = build_sample_images(engine)
    image = images["busybox"]
    stack = BenchStack(tmp, engine, images, poll=args.poll)
    keep = False
    try:
        providers = list(PROVIDER_ACCOUNTS[: args.providers])
        requesters = [FIRST_REQUESTER + i for i in range(args.requesters)]
        for p in providers:
            stack.setup_provider(p)
        for q in requesters:
            stack.setup_requester(q, tokens=10 * args.jobs + 1_000)
        for i, p in enumerate(providers):  # staggered: 5 processes each start on 2 cores
            stack.executor(f"provider{i}", p, concurrency=1, max_concurrent_jobs=args.max_concurrent_jobs,
                           extra_env={"DEPIN_BEAT_INTERVAL": "2"})
            time.sleep(args.stagger)
        stack.revive()
        # max_runtime 600 s: the submit deadline must survive a 2-core machine with 40 busy processes
        job_terms = terms(claim_window=3_600, max_runtime=600, challenge_window=8)
        r = stack.index()
        posted: dict[int, float] = {}
        say(f"posting {args.jobs} jobs from {args.requesters} requesters")
        t_start = time.perf_counter()
        size = args.post_batch
        for first in range(0, args.jobs, size):  # requesters in turn, each post (or postJobs batch) as fast as the node takes it
            specs = [spec(image, COMMAND, env={"N": str(n)}) for n in range(first, min(first + size, args.jobs))]
            requester = requesters[(first // size) % len(requesters)]
            if size == 1:
                ids = [stack.post(specs[0], requester=requester, job_terms=job_terms)]
            else:
                ids = stack.post_many(specs, requester=requester, job_terms=job_terms)
            at = time.perf_counter()
            posted.update(dict.fromkeys(ids, at))
        post_seconds = time.perf_counter() - t_start
        say(f"posted in {post_seconds:.1f} s; waiting for every job to be finalized (timeout {args.timeout:.0f} s)")
        finalized: dict[int, float] = {}
        deadline = time.monotonic() + args.timeout
        pending = set(posted)
        last_report = last_revive = time.monotonic()
        while pending and time.monotonic() < deadline:
            ids = sorted(pending)
            pipe = r.pipeline(transaction=False)
            for j in ids:
                pipe.hget(stack.keys.job(j), "status")
            now = time.perf_counter()
            for j, status in zip(ids, pipe.execute(), strict=True):
                if status == "Finalized":
                    finalized[j] = now
                    pending.discard(j)
            if time.monotonic() - last_revive > 5:
                last_revive = time.monotonic()
                if stack.revive():
                    say("restarted executor components that had exited")
            if time.monotonic() - last_report > 30:
                say(f"{len(finalized)}/{len(posted)} finalized")
                last_report = last_revive = time.monotonic()
            time.sleep(0.2)
        t_end = max(finalized.values()) if finalized else time.perf_counter()
        # the chain's word
        chain = stack.chain
        statuses = {j: JobStatus(chain.get_job(j)["status"]) for j in posted}
        by_provider: dict[str, int] = {stack.accounts[p]: 0 for p in providers}
        for j in posted:
            holder = chain.get_job(j)["provider"]
            if statuses[j] == JobStatus.FINALIZED:
                by_provider[holder] = by_provider.get(holder, 0) + 1
        logs = market_logs(stack, "JobFinalized")
        finalize_logs: dict[int, int] = {}
        for entry in logs:
            job_id = int(entry["topics"][1], 16)
            finalize_logs[job_id] = finalize_logs.get(job_id, 0) + 1
        paid_twice = sorted(j for j, c in finalize_logs.items() if c > 1)
        stuck = sorted(j for j, s in statuses.items() if s != JobStatus.FINALIZED)
        latencies = [finalized[j] - posted[j] for j in finalized]
        shares = list(by_provider.values())
        done = len(finalized)
        results = {
            "config": {"providers": args.providers, "requesters": args.requesters, "jobs": args.jobs,
                       "post_batch": args.post_batch, "compute_concurrency": 1, "max_concurrent_jobs": args.max_concurrent_jobs, "poll_interval": args.poll,
                       "beat_interval": 2, "challenge_window": 8, "cores": os.cpu_count()},
            "post_seconds": post_seconds,
            "component_restarts": sum(ex.restarts for ex in stack.executors),
            "finalized": done,
            "jobs_per_minute": done / (t_end - t_start) * 60 if done else 0.0,
            "seconds": t_end - t_start,
            "post_to_finalized_seconds": {
                "p50": statistics.median(latencies) if latencies else 0.0,
                "p95": percentile(latencies, 0.95) if latencies else 0.0,
                "max": max(latencies, default=0.0),
            },
            "fairness": {
                "jobs_per_provider": by_provider,
                "min_share": min(shares) / done if done else 0.0,
                "max_share": max(shares) / done if done else 0.0,
                "jain_index": jain(shares),
            },
            "transactions": {  # how many transactions each step took for these jobs: batching at work
                step: per_transaction(stack, event, set(posted))
                for step, event in (("post", "JobPosted"), ("claim", "JobClaimed"), ("submit", "ResultSubmitted"),
                                    ("finalize", "JobFinalized"))
            },
            "checks": {
                "stuck": stuck,
                "paid_twice": paid_twice,
                "finalize_logs": sum(finalize_logs.values()),
                "every_job_finalized_once": not stuck and not paid_twice and sum(finalize_logs.values()) == len(posted),
            },
        }
        if stuck or paid_twice:
            keep = True
            say(f"CHECK FAILED: stuck {stuck[:20]}, paid twice {paid_twice[:20]}; logs kept in {tmp}")
        return results
    except BaseException:
        keep = True
        say(f"benchmark failed; logs kept in {tmp}")
        raise
    finally:
        stack.close()
        stop_podman_service(podman_dir)
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(podman_dir, ignore_errors=True)


def market_logs(stack: BenchStack, event: str) -> list[dict[str, Any]]:
    """Every `event` log of the market since its deployment, from the chain."""
    chain = stack.chain
    topic = "0x" + chain.codec.topics[("JobMarket", event)].hex()
    return chain.rpc.call("eth_getLogs", [{"fromBlock": hex(stack.deployment.deploy_block), "toBlock": "latest",
                                           "address": chain.market, "topics": [topic]}])


def per_transaction(stack: BenchStack, event: str, jobs: set[int]) -> dict[str, Any]:
    """How the `event` logs of `jobs` fall into transactions: logs, transactions, jobs per
    transaction (mean and largest)."""
    sizes: dict[str, int] = {}
    for entry in market_logs(stack, event):
        if int(entry["topics"][1], 16) in jobs:
            sizes[entry["transactionHash"]] = sizes.get(entry["transactionHash"], 0) + 1
    logs = sum(sizes.values())
    return {"logs": logs, "transactions": len(sizes), "jobs_per_transaction": logs / len(sizes) if sizes else 0.0,
            "largest": max(sizes.values(), default=0)}


def markdown(results: dict[str, Any]) -> str:
    cfg, lat, fair, checks = results["config"], results["post_to_finalized_seconds"], results["fairness"], results["checks"]
    return "\n".join([
        (f"load: {cfg['providers']} providers (compute concurrency 1), {cfg['jobs']} jobs from {cfg['requesters']} requesters, "
         f"{cfg['cores']} cores shared by everything"),
        "",
        "| measurement | value | JSON field |",
        "|---|---:|---|",
        f"| jobs per minute, first post to last finalized | {results['jobs_per_minute']:.1f} | `jobs_per_minute` |",
        f"| post -> finalized p50 / p95 | {lat['p50']:.1f} s / {lat['p95']:.1f} s | `post_to_finalized_seconds.p50`, `.p95` |",
        f"| share per provider, min / max | {fair['min_share']:.1%} / {fair['max_share']:.1%} | `fairness.min_share`, `.max_share` |",
        f"| Jain's fairness index (1 = equal) | {fair['jain_index']:.3f} | `fairness.jain_index` |",
        (f"| finalized / stuck / paid twice | {results['finalized']} / {len(checks['stuck'])} / {len(checks['paid_twice'])} | "
         "`finalized`, `checks.stuck`, `checks.paid_twice` |"),
        *(
            f"| {step}: jobs per transaction, mean / largest ({t['logs']} logs in {t['transactions']} transactions) | "
            f"{t['jobs_per_transaction']:.2f} / {t['largest']} | `transactions.{step}` |"
            for step, t in results["transactions"].items()
        ),
    ])


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # so that the stack is stopped on SIGTERM too


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", type=int, default=8)
    parser.add_argument("--requesters", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--poll", type=float, default=0.5, help="indexer poll interval (s; the default 0.5)")
    parser.add_argument("--max-concurrent-jobs", type=int, default=2, help="each provider policy's max_concurrent_jobs")
    parser.add_argument("--stagger", type=float, default=3.0, help="seconds between executor start-ups")
    parser.add_argument("--post-batch", type=int, default=1, metavar="N",
                        help="jobs per post: 1 (default) sends postJob per job, N > 1 one postJobs per N jobs")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for every job to be finalized")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    if args.providers < 1 or args.requesters < 1 or args.jobs < 1:
        parser.error("--providers, --requesters and --jobs must be positive")
    if not 1 <= args.post_batch <= 100:
        parser.error("--post-batch must be 1 to 100")
    if args.providers > len(PROVIDER_ACCOUNTS) or args.requesters > 20:
        parser.error(f"at most {len(PROVIDER_ACCOUNTS)} providers (anvil keys 1-9 but 5) and 20 requesters")
    results = run(args)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(markdown(results))
    return 0 if results["checks"]["every_job_finalized_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
