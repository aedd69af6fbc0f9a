"""Executor benchmark (``make bench-executor``): the executor's overhead over plain container runs.

Starts a throwaway stack on this machine (anvil + the devnet deployment, redis-server, the indexer,
a Podman service, the sample images, and one provider executor as separate worker processes:
compute worker with concurrency 2, chain worker, beat, dispatcher, result server) and measures, for
a trivial job (``depin/busybox``, ``sh -c 'echo ok > /out/ok'``), in the same run:

1. **Latency.** The median time from a job's ``postJob`` receipt to the moment the chain shows it
   Submitted (the provider's ``submitResult`` mined), over ``--latency-jobs`` jobs posted one at a
   time, against the median wall time of a plain ``docker`` SDK ``containers.run`` of the same image
   and command (no hardening, no inputs, no archive). Target: overhead < 1 s at the median.
2. **Throughput.** ``--throughput-jobs`` jobs posted at once: completed (submitted) jobs per minute
   with the compute queue at concurrency 2, against plain SDK runs per minute with two threads.
   Target: at least 70 % of the plain rate.

The path a job takes in (1): indexer poll (``--poll``, seconds) → stream → dispatcher (spec and
policy checks) → chain queue: claim transaction → compute queue: hardened container run, output
archive, content-addressed store → chain queue: submit transaction.

    .venv/bin/python scripts/bench_executor.py [--latency-jobs 10] [--throughput-jobs 20] [--poll 0.1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["PATH"] = f"{REPO / 'node_modules' / '.bin'}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"

from depin.market import JobStatus
from depinctl.devchain import JobTerms

COMMAND = ["sh", "-c", "echo ok > /out/ok"]


def plain_run(client, image: str) -> float:
    """Create, start, wait, remove: the least a run through the SDK takes, without a network like
    the executor's containers (setting one up costs Podman ~0.1 s, which would flatter the executor).
    Not `containers.run` without `detach`: it also fetches the logs, a request Podman 4.3 sometimes
    never answers."""
    t0 = time.perf_counter()
    container = client.containers.run(
        image.split("@", 1)[1], COMMAND, detach=True, network_mode="none", tmpfs={"/out": ""}
    )
    container.wait()
    container.remove(force=True)
    return time.perf_counter() - t0


def wait_submitted(stack, job_id: int, timeout: float = 120, poll: float = 0.01) -> float:
    """When the job is seen submitted (a getJob call every `poll` seconds: the harness's own load
    on the 2 cores is part of what the executor competes with, so throughput polls less often)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.status(job_id) in (JobStatus.SUBMITTED, JobStatus.FINALIZED):
            return time.perf_counter()
        time.sleep(poll)
    raise TimeoutError(f"job {job_id} not submitted within {timeout} s:\n{stack.provider.logs()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-jobs", type=int, default=10)
    parser.add_argument("--throughput-jobs", type=int, default=40)
    parser.add_argument("--poll", type=float, default=0.1, help="indexer poll interval (s)")
    parser.add_argument("--max-concurrent-jobs", type=int, default=4, help="the provider policy's max_concurrent_jobs")
    args = parser.parse_args()

    from executor.engine import connect, stop_podman_service
    from executor.images import build_sample_images
    from tests.executor.stack import PROVIDER, REQUESTER, Stack, spec

    tmp = Path(tempfile.mkdtemp(prefix="depin-bench-exec-"))
    podman_dir = Path(tempfile.mkdtemp(prefix="depin-bpod-"))
    say = lambda msg: print(msg, flush=True)
    say(f"setting up in {tmp} (anvil, deploy, redis, indexer, podman, images, provider executor)...")
    engine = connect(os.environ.get("DEPIN_TEST_DOCKER_HOST", ""), podman_dir)
    images = build_sample_images(engine)
    image = images["busybox"]
    stack = Stack(tmp, engine, images, poll=args.poll)
    try:
        stack.setup_provider(PROVIDER, stake=10_000)
        stack.setup_funded(REQUESTER, tokens=100_000)
        stack.provider = stack.executor("provider", "provider", PROVIDER, concurrency=2,
                                        policy={"max_concurrent_jobs": args.max_concurrent_jobs},
                                        extra_env={"DEPIN_BEAT_INTERVAL": "2", "DEPIN_LOG_LEVEL": "WARNING"})
        terms = JobTerms(reward=10**18, claim_window=3_600, max_runtime=120, challenge_window=3_600, collateral_pct=50, cpu_seconds=10)
        job_spec = lambda n: spec(image, COMMAND, env={"N": str(n)})  # distinct specs, same work

        # warm-up: the first run pays one-time costs (image layers, worker imports, connections)
        plain_run(engine, image)
        wait_submitted(stack, stack.post(job_spec(0), terms=terms))

        say(f"latency: {args.latency_jobs} plain runs and {args.latency_jobs} jobs, one at a time...")
        plain = [plain_run(engine, image) for _ in range(args.latency_jobs)]
        latencies = []
        for n in range(1, args.latency_jobs + 1):
            t0 = time.perf_counter()
            job_id = stack.post(job_spec(n), terms=terms)
            latencies.append(wait_submitted(stack, job_id) - t0)

        say(f"throughput: {args.throughput_jobs} plain runs on 2 threads, {args.throughput_jobs} jobs at once...")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: plain_run(engine, image), range(args.throughput_jobs)))
        plain_seconds = time.perf_counter() - t0

        ids: list[int] = []
        t0 = time.perf_counter()
        for n in range(args.throughput_jobs):
            ids.append(stack.post(job_spec(1_000 + n), terms=terms))
        done = [wait_submitted(stack, j, timeout=600, poll=0.05) for j in ids]  # last one seen within 50 ms
        exec_seconds = max(done) - t0
    except BaseException:
        say(f"benchmark failed; logs kept in {tmp}")
        raise
    finally:
        stack.close()
        stop_podman_service(podman_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(podman_dir, ignore_errors=True)

    plain_med, exec_med = statistics.median(plain), statistics.median(latencies)
    plain_rate = args.throughput_jobs / plain_seconds * 60
    exec_rate = args.throughput_jobs / exec_seconds * 60
    overhead = exec_med - plain_med
    share = exec_rate / plain_rate
    say("")
    say("| measure | plain SDK container run | executor (post -> submitted) | |")
    say("| --- | ---: | ---: | --- |")
    say(f"| median latency, one at a time (n={args.latency_jobs}) | {plain_med:.3f} s | {exec_med:.3f} s | "
        f"overhead {overhead:+.3f} s (target < 1 s: {'met' if overhead < 1 else 'MISSED'}) |")
    say(f"| p90 latency | {sorted(plain)[int(0.9 * (len(plain) - 1))]:.3f} s | {sorted(latencies)[int(0.9 * (len(latencies) - 1))]:.3f} s | |")
    say(f"| throughput at concurrency 2 (n={args.throughput_jobs}) | {plain_rate:.1f} runs/min | {exec_rate:.1f} jobs/min | "
        f"{share:.0%} of plain (target >= 70%: {'met' if share >= 0.7 else 'MISSED'}) |")
    say(f"(indexer poll {args.poll} s; max_concurrent_jobs {args.max_concurrent_jobs}; 2 CPUs: {os.cpu_count()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
