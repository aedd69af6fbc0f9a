"""Process entry points of the executor: one function per component, and a supervisor for all.

Components (each a separate OS process; ``depin executor <name>`` or ``python -m executor <name>``):

- ``worker --queue compute``: Celery prefork worker, ``[executor] concurrency`` processes, container runs;
- ``worker --queue chain``: Celery worker with one process (solo pool): every transaction, serialized;
  it also runs the heartbeat thread that ``depin executor health`` reads (:mod:`executor.health`);
- ``beat``: Celery beat (finalize, withdraw, poke deadlines, recovery), schedule in ``<state_dir>/beat-schedule``;
- ``dispatcher``: the event-stream consumer (:mod:`executor.dispatcher`);
- ``results``: the result server (``GET /results/0x<digest>``) on ``[executor] results_bind``.

``start`` (:func:`run_all`) runs all five as child processes, restarts a child that dies (with a
growing delay), and on SIGTERM or SIGINT stops them all: SIGTERM first (Celery finishes or requeues
its tasks: a warm shutdown; acks_late keeps unfinished tasks in the broker), SIGKILL after a grace
period.

The configuration reaches every child through ``DEPIN_CONFIG`` (the depin.toml path) and
``DEPIN_EXECUTOR_ROLE``; the Celery app reads them when it is imported, so these functions set
them before importing :mod:`executor.app`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from executor.logs import setup_logging
from executor.runtime import ENV_CONFIG, ENV_ROLE

log = logging.getLogger("executor.worker")

COMPONENTS = ("worker-compute", "worker-chain", "beat", "dispatcher", "results")
STOP_GRACE = float(os.environ.get("DEPIN_STOP_GRACE", "20"))


def _configure(config: Path | str | None, role: str | None) -> None:
    if config is not None:
        os.environ[ENV_CONFIG] = str(Path(config).resolve())
    if role:
        os.environ[ENV_ROLE] = role


def run_worker(config: Path | str | None, role: str | None, queue: str, *, concurrency: int | None = None) -> None:
    """A Celery worker for `queue` (``compute`` or ``chain``)."""
    if queue not in ("compute", "chain"):
        raise ValueError(f"unknown queue {queue!r}: compute or chain")
    _configure(config, role)
    setup_logging(f"worker-{queue}")
    from executor.app import app
    from executor.runtime import get_runtime

    rt = get_runtime()
    if queue == "compute":
        rt.docker  # noqa: B018 - the sandbox check: refuse to start on an engine that ignores it
        n = concurrency or rt.config.executor.concurrency
        pool = ["--pool", "prefork", "--concurrency", str(n)]
    else:
        pool = ["--pool", "solo", "--concurrency", "1"]
        from executor.health import start_heartbeat

        start_heartbeat()  # the chain worker's progress check (executor.health)
    hostname = f"{queue}-{rt.role}-{rt.address[:10].lower()}-{os.getpid()}@%h"
    argv = ["worker", "--queues", queue, *pool, "--hostname", hostname, "--loglevel", os.environ.get("DEPIN_LOG_LEVEL", "INFO"),
            "--without-gossip", "--without-mingle", "--without-heartbeat"]
    app.worker_main(argv)


def run_beat(config: Path | str | None, role: str | None) -> None:
    _configure(config, role)
    setup_logging("beat")
    from executor.app import app
    from executor.runtime import get_runtime

    rt = get_runtime()
    rt.state_dir.mkdir(parents=True, exist_ok=True)
    schedule = rt.state_dir / f"beat-schedule-{rt.role}"
    app.start(["beat", "--schedule", str(schedule), "--loglevel", os.environ.get("DEPIN_LOG_LEVEL", "INFO")])


def run_dispatcher(config: Path | str | None, role: str | None) -> None:
    _configure(config, role)
    setup_logging("dispatcher")
    from executor.app import app  # noqa: F401  (configures the broker used to queue tasks)
    from executor.dispatcher import Dispatcher
    from executor.runtime import get_runtime

    rt = get_runtime()
    rt.docker  # noqa: B018 - the sandbox check: claim nothing on an engine that ignores it
    Dispatcher(rt).run()


def run_results(config: Path | str | None, role: str | None) -> None:
    _configure(config, role)
    setup_logging("results")
    from executor.results import serve
    from executor.runtime import get_runtime

    rt = get_runtime()
    host, _, port = rt.config.executor.results_bind.rpartition(":")
    serve(rt.store, host or "127.0.0.1", int(port))


def reap(config: Path | str | None, role: str | None) -> list[str]:
    """Removes this executor's containers whose job no task holds a lease on; returns their names."""
    _configure(config, role)
    from executor.containers import reap_orphans
    from executor.runtime import get_runtime

    rt = get_runtime()
    active = [int(j) for j in rt.state.zrange(rt.xkeys.active, 0, -1)]
    live = {rt.container_name(j) for j in active if rt.state.exists(rt.xkeys.lease(j))}
    return reap_orphans(rt.docker, live, instance=rt.instance)


# ---------------------------------------------------------------------------------------- supervisor


def check_engine(config: Path | str | None, role: str | None) -> None:
    """Raises :class:`executor.engine.SandboxUnavailable` (one line: which engine, what to do) when
    the configured engine ignores the job sandbox; :class:`executor.engine.EngineUnavailable` when
    none answers."""
    from executor.engine import check_sandbox, connect
    from executor.runtime import load_executor_config

    engine = load_executor_config(config, role).engine
    check_sandbox(connect(engine.docker_host, engine.state_dir))


def component_command(component: str, config: Path | str, role: str | None) -> list[str]:
    """The command line of one component (``python -m executor …``)."""
    cmd = [sys.executable, "-m", "executor"]
    if component.startswith("worker-"):
        cmd += ["worker", "--queue", component.split("-", 1)[1]]
    else:
        cmd += [component]
    cmd += ["--config", str(Path(config).resolve())]
    if role:
        cmd += ["--role", role]
    return cmd


def run_all(config: Path | str, role: str | None, *, components: tuple[str, ...] = COMPONENTS, stop: threading.Event | None = None) -> int:
    """Runs every component as a child process until SIGTERM/SIGINT (or `stop`); returns 0.
    Refuses to start (:func:`check_engine`) on an engine that ignores the job sandbox."""
    setup_logging("supervisor")
    check_engine(config, role)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    env = dict(os.environ)
    children: dict[str, subprocess.Popen] = {}
    restarts: dict[str, int] = dict.fromkeys(components, 0)
    next_start: dict[str, float] = dict.fromkeys(components, 0.0)

    def start(component: str) -> None:
        children[component] = subprocess.Popen(component_command(component, config, role), env=env)
        log.info("component started", extra={"component_name": component, "child_pid": children[component].pid})

    for component in components:
        start(component)
    try:
        while not stop.wait(0.5):
            for component, proc in list(children.items()):
                code = proc.poll()
                if code is None:
                    continue
                now = time.monotonic()
                if next_start[component] == 0.0:
                    restarts[component] += 1
                    delay = min(30.0, 0.5 * 2 ** min(restarts[component], 6))
                    next_start[component] = now + delay
                    log.error("component exited; restarting", extra={"component_name": component, "code": code, "delay": delay})
                elif now >= next_start[component]:
                    next_start[component] = 0.0
                    start(component)
    finally:
        _stop_children(children)
    log.info("executor stopped")
    return 0


def _stop_children(children: dict[str, subprocess.Popen]) -> None:
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for component, proc in children.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("component did not stop in time; killing it", extra={"component_name": component})
            proc.kill()
            proc.wait(5)
