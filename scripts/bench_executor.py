"""Executor benchmark (``make bench-executor``): the executor's overhead over plain container runs.

Starts a throwaway stack on this machine (:mod:`scripts.benchstack`: anvil + the devnet deployment,
redis-server, the indexer at its **default poll interval (0.5 s)**, a Podman service, the sample
images, and one provider executor as separate processes: compute worker with concurrency 2, chain
worker, beat, dispatcher, result server) and measures, for a trivial job (``depin/busybox``,
``sh -c 'echo ok > /out/ok'``), **interleaved** (a plain run, then an executor run, and again):

1. **Latency**, ``--reps`` times (default 5): the wall time of a plain docker SDK run of the same
   image and command (create, start, wait, remove; no hardening, no inputs, no archive), then the
   time from a job's ``postJob`` receipt to the chain showing it Submitted. Median, min, max, stdev.
2. **Throughput**, ``--reps`` times: ``--throughput-jobs`` plain runs on two threads, then as many
   jobs posted at once (the compute queue at concurrency 2): runs or jobs per minute. Median and
   spread, and the ratio of the medians.

The path a job takes in (1): indexer poll → stream → dispatcher (spec and policy checks) → chain
queue: claim transaction → compute queue: hardened container run, output archive,
content-addressed store → chain queue: submit transaction.

    .venv/bin/python scripts/bench_executor.py [--reps 5] [--throughput-jobs 10] [--json PATH]
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for _path in (REPO, REPO / "scripts"):  # run as a plain script from a checkout
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ["PATH"] = f"{REPO / 'node_modules' / '.bin'}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"

from benchstack import COMMAND, BenchStack, spec, terms

from depin.market import JobStatus

PROVIDER, REQUESTER = 1, 2


def spread(values: list[float]) -> dict[str, Any]:
    return {"runs": values, "median": statistics.median(values), "min": min(values), "max": max(values),
            "stdev": statistics.stdev(values) if len(values) > 1 else 0.0}


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


def wait_submitted(stack: BenchStack, job_id: int, timeout: float = 180, poll: float = 0.01) -> float:
    """When the job is seen submitted (a getJob call every `poll` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.status(job_id) in (JobStatus.SUBMITTED, JobStatus.FINALIZED):
            return time.perf_counter()
        stack.revive()  # a component that gave up on a slow engine at start-up
        time.sleep(poll)
    raise TimeoutError(f"job {job_id} not submitted within {timeout} s:\n{stack.executors[0].logs()}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from executor.engine import connect, stop_podman_service
    from executor.images import build_sample_images

    tmp = Path(tempfile.mkdtemp(prefix="depin-bench-exec-"))
    podman_dir = Path(tempfile.mkdtemp(prefix="depin-bpod-"))
    say(f"setting up in {tmp} (anvil, deploy, redis, indexer, podman, images, provider executor)...")
    engine = connect(os.environ.get("DEPIN_TEST_DOCKER_HOST", ""), podman_dir)
    images = build_sample_images(engine)
    image = images["busybox"]
    stack = BenchStack(tmp, engine, images, poll=args.poll)
    try:
        stack.setup_provider(PROVIDER)
        stack.setup_requester(REQUESTER)
        stack.executor("provider", PROVIDER, concurrency=2, max_concurrent_jobs=args.max_concurrent_jobs,
                       extra_env={"DEPIN_BEAT_INTERVAL": "2"})
        job_terms = terms(claim_window=3_600, max_runtime=120, challenge_window=3_600)
        counter = iter(range(10**9))

        def job_spec() -> bytes:  # distinct specs, same work
            return spec(image, COMMAND, env={"N": str(next(counter))})

        # warm-up: the first run pays one-time costs (image layers, worker imports, connections)
        plain_run(engine, image)
        wait_submitted(stack, stack.post(job_spec(), requester=REQUESTER, job_terms=job_terms), timeout=300)

        plain_lat: list[float] = []
        exec_lat: list[float] = []
        plain_rate: list[float] = []
        exec_rate: list[float] = []
        for rep in range(1, args.reps + 1):
            plain_lat.append(plain_run(engine, image))
            t0 = time.perf_counter()
            job_id = stack.post(job_spec(), requester=REQUESTER, job_terms=job_terms)
            exec_lat.append(wait_submitted(stack, job_id) - t0)

            t0 = time.perf_counter()
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda _: plain_run(engine, image), range(args.throughput_jobs)))
            plain_rate.append(args.throughput_jobs / (time.perf_counter() - t0) * 60)
            t0 = time.perf_counter()
            ids = [stack.post(job_spec(), requester=REQUESTER, job_terms=job_terms) for _ in range(args.throughput_jobs)]
            done = [wait_submitted(stack, j, timeout=600, poll=0.05) for j in ids]
            exec_rate.append(args.throughput_jobs / (max(done) - t0) * 60)
            say(f"rep {rep}/{args.reps}: latency plain {plain_lat[-1]:.3f} s, executor {exec_lat[-1]:.3f} s; "
                f"throughput plain {plain_rate[-1]:.1f}/min, executor {exec_rate[-1]:.1f}/min")
    except BaseException:
        say(f"benchmark failed; logs kept in {tmp}")
        raise
    finally:
        stack.close()
        stop_podman_service(podman_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(podman_dir, ignore_errors=True)
    lat_p, lat_e = spread(plain_lat), spread(exec_lat)
    rate_p, rate_e = spread(plain_rate), spread(exec_rate)
    return {
        "component_restarts": sum(ex.restarts for ex in stack.executors),
        "config": {"poll_interval": args.poll, "reps": args.reps, "throughput_jobs": args.throughput_jobs,
                   "compute_concurrency": 2, "max_concurrent_jobs": args.max_concurrent_jobs, "cores": os.cpu_count(),
                   "interleaved": True},
        "latency": {"plain_seconds": lat_p, "executor_seconds": lat_e, "overhead_median_seconds": lat_e["median"] - lat_p["median"]},
        "throughput": {"plain_per_minute": rate_p, "executor_per_minute": rate_e,
                       "ratio_of_medians": rate_e["median"] / rate_p["median"]},
    }


def markdown(results: dict[str, Any]) -> str:
    lat, thr, cfg = results["latency"], results["throughput"], results["config"]

    def row(label: str, st: dict[str, Any], unit: str, field: str, scale: float = 1.0) -> str:
        return f"| {label} | {st['median'] * scale:.3f} {unit} | {st['min'] * scale:.3f} | {st['max'] * scale:.3f} | `{field}` |"

    return "\n".join([
        f"executor: {cfg['reps']} interleaved reps, indexer poll {cfg['poll_interval']} s, {cfg['cores']} cores",
        "",
        "| measurement | median | min | max | JSON field |",
        "|---|---:|---:|---:|---|",
        row("plain SDK run, latency", lat["plain_seconds"], "s", "latency.plain_seconds"),
        row("executor post -> submitted, latency", lat["executor_seconds"], "s", "latency.executor_seconds"),
        f"| executor overhead (median) | {lat['overhead_median_seconds']:+.3f} s | | | `latency.overhead_median_seconds` |",
        row(f"plain runs/min, 2 threads, {cfg['throughput_jobs']} runs", thr["plain_per_minute"], "", "throughput.plain_per_minute"),
        row(f"executor jobs/min, concurrency 2, {cfg['throughput_jobs']} jobs", thr["executor_per_minute"], "", "throughput.executor_per_minute"),
        f"| executor / plain throughput | {thr['ratio_of_medians']:.0%} | | | `throughput.ratio_of_medians` |",
    ])


def say(msg: str) -> None:
    print(f"[bench-executor] {msg}", file=sys.stderr, flush=True)


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # so that the stack is stopped on SIGTERM too


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions (default 5)")
    parser.add_argument("--throughput-jobs", type=int, default=10, help="jobs (and plain runs) per throughput repetition")
    parser.add_argument("--poll", type=float, default=0.5, help="indexer poll interval (s; default 0.5, the indexer's default)")
    parser.add_argument("--max-concurrent-jobs", type=int, default=4, help="the provider policy's max_concurrent_jobs")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.throughput_jobs < 1:
        parser.error("--reps and --throughput-jobs must be positive")
    results = run(args)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
