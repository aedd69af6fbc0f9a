"""Process entry points of the executor: one function per component, and a supervisor for all.

Components (each a separate OS process; ``depin executor <name>`` or ``python -m executor <name>``):

- ``worker --queue compute``: Celery prefork worker, ``[executor] concurrency`` processes, container runs;
- ``worker --queue chain``: Celery worker with one process (solo pool): every transaction, serialized;
  it also runs the heartbeat thread that ``depin executor health`` reads (:mod:`executor.health`);
- ``beat``: Celery beat (finalize, withdraw, poke deadlines, recovery), schedule in ``<state_dir>/beat-schedule``;
- ``dispatcher``: the event-stream consumer (:mod:`executor.dispatcher`);
- ``results``: the result server (``GET /results/<name>``, opaque names) on ``[executor] results_bind``;
- ``canary``: the canary's bait server (``GET /canary/<jobId>``) on ``[canary] bind``.

Which of them an executor runs depends on its roles (:data:`ROLE_COMPONENTS`): a provider all but
``canary``; a verifier the two workers and beat; a canary the chain worker, beat, ``results`` and
``canary``.

``start`` (:func:`run_all`) runs all five as child processes, restarts a child that dies (with a
growing delay), and on SIGTERM or SIGINT stops them all: SIGTERM first (Celery finishes or requeues
its tasks: a warm shutdown; acks_late keeps unfinished tasks in the broker), SIGKILL after a grace
period. It gives up instead of restarting forever when a child keeps crashing at start
(:data:`MAX_START_CRASHES` exits in a row, each within :data:`START_WINDOW` seconds of its start: a
broken configuration or environment, not a passing fault): it stops the others and exits 1 with one
line naming the component and the last line it printed (its error). ``depin executor start`` first
runs :func:`preflight`, which refuses a broken configuration with one line before any child starts.

The configuration reaches every child through ``DEPIN_CONFIG`` (the depin.toml path) and
``DEPIN_EXECUTOR_ROLE``; each starter sets them, builds the process's runtime and applies it to the
Celery app (:func:`executor.celery.configure_app`) before the component starts.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from depin.accounts import account_from_config
from depin.client import Client, check_endpoint, check_reachable_endpoint
from depin.config import ConfigError, DepinConfig, env_int, env_number
from depin.deployment import LOCAL_CHAIN_IDS, Deployment, load_deployment_file
from depin.keys import ExecKeys, broker_prefix
from executor import metrics, signer_lock
from executor.beat import reap_containers
from executor.canary import journal as canary_journal
from executor.canary import serve as serve_canary
from executor.celery import CHAIN, COMPUTE, ROUTES, app, configure_app
from executor.containers import output_cap_mountable
from executor.dispatcher import Dispatcher
from executor.engine import check_sandbox, connect
from executor.health import start_heartbeat
from executor.logs import setup_logging
from executor.runtime import ENV_CONFIG, ENV_ROLE, Runtime, broker_url_for, get_runtime, load_executor_config, set_runtime

log = logging.getLogger("executor.worker")

COMPONENTS = ("worker-compute", "worker-chain", "beat", "dispatcher", "results")
ENV_FLOWER_PORT = "DEPIN_FLOWER_PORT"
ENV_EVENTS = "DEPIN_CELERY_EVENTS"  # "1": workers send heartbeat and task events (for Flower)
DEFAULT_FLOWER_PORT = 5555
# What each role needs (an executor of several roles runs the union, in COMPONENTS' order, "canary" last):
# a verifier neither claims (no dispatcher) nor publishes (no result server); a canary never runs a job
# but publishes a sealed decoy for each of its jobs, as a provider would (executor.canary.publish_decoy).
ROLE_COMPONENTS = {
    "provider": COMPONENTS,
    "verifier": ("worker-compute", "worker-chain", "beat"),
    "canary": ("worker-chain", "beat", "results", "canary"),
}


def components_for(roles: tuple[str, ...] | str) -> tuple[str, ...]:
    """The components an executor of `roles` runs (``"provider,verifier"`` or a tuple)."""
    wanted = set().union(*(ROLE_COMPONENTS[r] for r in (roles.split(",") if isinstance(roles, str) else roles)))
    return tuple(c for c in (*COMPONENTS, "canary") if c in wanted)
STOP_GRACE = env_number("DEPIN_STOP_GRACE", 20, above=True)
MAX_START_CRASHES = env_int("DEPIN_MAX_START_CRASHES", 5, minimum=1)  # in a row, each within START_WINDOW
START_WINDOW = env_number("DEPIN_START_WINDOW", 30, above=True)  # seconds after a start that count as "at start"


def _configure(config: Path | str | None, role: str | None) -> None:
    if config is not None:
        os.environ[ENV_CONFIG] = str(Path(config).resolve())
    if role:
        os.environ[ENV_ROLE] = role


def configured_runtime(config: Path | str | None, role: str | None) -> Runtime:
    """This process's runtime for `config` and `role`, applied to the Celery app, once the public
    chain's settings are checked (:func:`check_public_chain_settings`)."""
    _configure(config, role)
    rt = get_runtime()
    check_public_chain_settings(rt.config)
    configure_app(app, rt)
    metrics.install(rt)  # count transaction re-sends and task retries
    return rt


def fresh_runtime(**_: Any) -> None:
    """A forked pool process opens its own connections (Redis, RPC, the engine)."""
    set_runtime(Runtime(get_runtime().config))


def recover_at_start(sender: Any = None, **_: Any) -> None:
    """A (re)started worker re-queues, at once, the jobs that no live task holds."""
    try:
        app.send_task("depin.recover", kwargs={"force": True}, queue=ROUTES["depin.recover"])
    except Exception as exc:  # noqa: BLE001 - the next beat recovers as well
        log.warning("could not queue the start-up recovery", extra={"error": str(exc)})


def run_worker(config: Path | str | None, role: str | None, queue: str, *, concurrency: int | None = None, beat: bool = False) -> None:
    """A Celery worker for `queue` (``compute`` or ``chain``); with `beat` (chain only) the beat runs
    embedded in it (``celery worker --beat``: one process less, as the devnet's verifiers do)."""
    if queue not in ("compute", "chain"):
        raise ValueError(f"unknown queue {queue!r}: compute or chain")
    setup_logging(f"worker-{queue}")
    rt = configured_runtime(config, role)
    worker_process_init.connect(fresh_runtime)
    worker_ready.connect(recover_at_start)
    if queue == "compute":
        rt.docker  # noqa: B018 - the sandbox check: refuse to start on an engine that ignores it
        n = concurrency or rt.config.executor.concurrency
        if os.environ.get("DEPIN_COMPUTE_POOL") == "solo":  # one run at a time in this process (the devnet's verifiers)
            pool = ["--pool", "solo", "--concurrency", "1"]
        else:
            pool = ["--pool", "prefork", "--concurrency", str(n)]
    else:
        pool = ["--pool", "solo", "--concurrency", "1"]
        # the one process that signs with the key: no other may while it runs (executor.signer_lock)
        signer = signer_lock.take(rt.state, rt.xkeys.signer, rt.address, rt.chain_id)
        worker_shutdown.connect(lambda **_: signer.release(), weak=False)
        start_heartbeat()  # the chain worker's progress check (executor.health)
    hostname = f"{queue}-{rt.role.replace(',', '+')}-{rt.address[:10].lower()}-{os.getpid()}@%h"
    argv = ["worker", "--queues", queue, *pool, "--hostname", hostname, "--loglevel", os.environ.get("DEPIN_LOG_LEVEL", "INFO"),
            "--without-gossip", "--without-mingle"]
    # Flower sees workers by their heartbeat events and tasks by task events: sent only when asked
    argv += ["--task-events"] if os.environ.get(ENV_EVENTS) == "1" else ["--without-heartbeat"]
    if beat:
        if queue != "chain":
            raise ValueError("the beat can only be embedded in the chain worker")
        rt.state_dir.mkdir(parents=True, exist_ok=True)
        argv += ["--beat", "--schedule", str(rt.state_dir / f"beat-schedule-{rt.role.replace(',', '+')}")]
    app.worker_main(argv)


def run_beat(config: Path | str | None, role: str | None) -> None:
    setup_logging("beat")
    rt = configured_runtime(config, role)
    rt.state_dir.mkdir(parents=True, exist_ok=True)
    schedule = rt.state_dir / f"beat-schedule-{rt.role.replace(',', '+')}"
    app.start(["beat", "--schedule", str(schedule), "--loglevel", os.environ.get("DEPIN_LOG_LEVEL", "INFO")])


def run_dispatcher(config: Path | str | None, role: str | None) -> None:
    setup_logging("dispatcher")
    rt = configured_runtime(config, role)  # the broker the dispatcher queues tasks on
    rt.docker  # noqa: B018 - the sandbox check: claim nothing on an engine that ignores it
    Dispatcher(rt).run()


def run_results(config: Path | str | None, role: str | None) -> None:
    _configure(config, role)
    setup_logging("results")
    rt = get_runtime()
    check_public_chain_settings(rt.config)
    check_listen(rt.config.executor.results_bind, "[executor] results_bind")
    host, _, port = rt.config.executor.results_bind.rpartition(":")
    bind = metrics.bind_from_env()
    if bind:  # the executor's /metrics (every component counts into Redis; this process serves them)
        metrics.serve(rt, bind, {broker_prefix(rt.xkeys.prefix) + q: q for q in (COMPUTE, CHAIN)})
    from executor.result_server import serve  # lazy: only this component imports FastAPI

    serve(rt.store, host or "127.0.0.1", int(port))


def run_flower(config: Path | str | None, role: str | None, port: int | None = None, address: str = "127.0.0.1") -> None:
    """Flower, the Celery monitor, on this executor's broker (its key prefix included) at
    ``http://address:port/`` (port: `port`, else ``DEPIN_FLOWER_PORT``, else 5555)."""
    _configure(config, role)
    setup_logging("flower")
    configured_runtime(config, role)
    port = port or int(os.environ.get(ENV_FLOWER_PORT) or DEFAULT_FLOWER_PORT)
    app.start(["flower", f"--port={port}", f"--address={address}"])


def run_canary(config: Path | str | None, role: str | None) -> None:
    """The canary's bait server (``GET /canary/<jobId>``) on ``[canary] bind``."""
    _configure(config, role)
    setup_logging("canary")
    rt = get_runtime()
    check_listen(rt.config.canary.bind, "[canary] bind")
    host, _, port = rt.config.canary.bind.rpartition(":")
    serve_canary(rt.state, rt.xkeys, host or "127.0.0.1", int(port), canary_journal(rt))


def reap(config: Path | str | None, role: str | None) -> list[str]:
    """Removes this executor's containers whose run is over, by the beat's rule
    (:func:`executor.beat.reap`: neither in hand nor leased, on two looks a lease TTL apart: this
    waits a lease TTL when the first look finds such a container); returns their names."""
    _configure(config, role)
    rt = get_runtime()
    removed: list[str] = []
    for look in range(2):
        removed += reap_containers(rt, [int(j) for j in rt.state.zrange(rt.xkeys.active, 0, -1)])
        if look == 0 and rt.state.exists(rt.xkeys.orphans):
            time.sleep(rt.lease_ttl)  # the second look (the first one is recorded in Redis)
    return removed


# ---------------------------------------------------------------------------------------- supervisor


def check_engine(config: Path | str | None, role: str | None) -> None:
    """Raises :class:`executor.engine.SandboxUnavailable` (one line: which engine, what to do) when
    the configured engine ignores the job sandbox; :class:`executor.engine.EngineUnavailable` when
    none answers."""
    engine = load_executor_config(config, role).engine
    check_sandbox(connect(engine.docker_host, engine.state_dir))


def preflight(config: Path | str | None, role: str | None) -> None:
    """Checks what every component needs before any starts, so that a broken configuration is one
    error line (a :class:`~depin.errors.DepinError` or ``redis.ConnectionError``) instead of children
    that crash and restart: the config, the deployment file, the signing key (keystore and password),
    Redis, and the JSON-RPC node (the deployment's chain, holding its contracts)."""
    settings = load_executor_config(config, role)
    deployment = check_public_chain_settings(settings)
    components = components_for(settings.executor.roles)
    address = account_from_config(settings.key, deployment.chain_id).address
    if "results" in components:
        check_listen(settings.executor.results_bind, "[executor] results_bind")
    if "canary" in components:
        check_listen(settings.canary.bind, "[canary] bind")
    client = redis.Redis.from_url(settings.redis.url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    finally:
        client.close()
    state = redis.Redis.from_url(broker_url_for(settings.redis.url), socket_connect_timeout=5, socket_timeout=5)
    try:  # another executor's chain worker signing with this key: one line now, not two signers
        keys = ExecKeys(deployment.chain_id, deployment.addresses["JobMarket"], settings.executor.role, address)
        signer_lock.refuse_if_held(state, keys.signer, address, deployment.chain_id)
    finally:
        state.close()
    Client.connect(settings.network.rpc_url, deployment, timeout=10, retries=1)


def check_public_chain_settings(settings: DepinConfig) -> Deployment:
    """The deployment, once the settings that keep an executor on a public chain safe are checked:
    ``/out`` size-capped (:func:`check_output_cap`) and, for a provider, a ``results_url`` that others
    can reach (the base of the result URIs published on chain; review, stop 45). :func:`preflight`
    runs it for ``start``, and every component runs it too: one started on its own by a process
    manager (``python -m executor worker|dispatcher|results``, ``depin executor worker ...``) skipped
    both checks and ran uncapped, publishing result URIs nobody could fetch (found by review, stop 56)."""
    deployment = load_deployment_file(settings.network.deployment, hint="set [network] deployment in depin.toml")
    check_output_cap(deployment.chain_id, allow_unmounted=settings.executor.allow_unmounted_output)
    if "results" in components_for(settings.executor.roles):
        check_endpoint(settings.executor.results_url, "[executor] results_url")
        check_reachable_endpoint(settings.executor.results_url, deployment.chain_id, "[executor] results_url")
    return deployment


def check_listen(bind: str, what: str) -> None:
    """Raises :class:`ConfigError` (one line) when nothing could listen on `bind` (``HOST:PORT``:
    taken, or no such local address), probed as uvicorn binds (SO_REUSEADDR). Said before the
    executor starts: its server process died on it again and again (uvicorn's log line, exit 3)
    while the other components claimed and ran jobs whose results it could not serve. A probe: a
    port taken between it and uvicorn's bind still fails there."""
    host, _, port = bind.rpartition(":")
    host = (host or "127.0.0.1").strip("[]")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, int(port)))
    except OSError as exc:
        raise ConfigError(
            f"{what} {bind}: cannot listen there: {exc.strerror or exc}; another program (another executor?) holds "
            "it: stop that one or choose a free port"
        ) from None


def check_output_cap(chain_id: int, *, allow_unmounted: bool) -> None:
    """Refuses to serve a public chain without root unless the operator accepts the risk
    (``[executor] allow_unmounted_output``): without root ``/out`` is a watched folder, not a
    size-capped tmpfs, and such an executor can get another result than the others for the same job
    (:func:`executor.containers.output_cap_mountable`); as a provider or a juror in the minority,
    it is slashed. A local devnet is always allowed (the demo on a machine without root)."""
    if output_cap_mountable() or chain_id in LOCAL_CHAIN_IDS or allow_unmounted:
        return
    raise ConfigError(
        f"the executor is not running as root, so a job's /out cannot be a size-capped tmpfs on chain {chain_id}: "
        "a job that writes past its output cap would then end differently here than on other executors, and the "
        "minority of a court is slashed. Run the executor as root, or set [executor] allow_unmounted_output = true "
        "to accept that risk"
    )


class _Child:
    """One component's process, its stderr passed through line by line, its last line kept."""

    def __init__(self, component: str, command: list[str], env: dict[str, str]) -> None:
        self.component = component
        self.started = time.monotonic()
        self.last_line = ""
        self.proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
        self._relay = threading.Thread(target=self._pass_stderr, name=f"stderr-{component}", daemon=True)
        self._relay.start()

    def _pass_stderr(self) -> None:
        assert self.proc.stderr is not None
        out = getattr(sys.stderr, "buffer", None)
        for raw in iter(self.proc.stderr.readline, b""):
            if out is not None:
                try:
                    out.write(raw)
                    out.flush()
                except (OSError, ValueError):  # our stderr is gone: keep draining, or the child blocks
                    out = None
            text = raw.decode("utf-8", "replace").strip()
            if text:
                self.last_line = text[:500]

    def last_error(self) -> str:
        """The child's last stderr line (its error, for a child that failed at start)."""
        self._relay.join(2)  # the pipe ends when the child does: its last line is read
        return self.last_line.removeprefix("error: ") or "(it printed nothing)"


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


def run_all(config: Path | str, role: str | None, *, components: tuple[str, ...] | None = None, stop: threading.Event | None = None) -> int:
    """Runs every component as a child process until SIGTERM/SIGINT (or `stop`); returns 0, or 1
    after giving up on a component that keeps crashing at start (see the module doc). Refuses to
    start (:func:`check_engine`) on an engine that ignores the job sandbox."""
    setup_logging("supervisor")
    settings = load_executor_config(config, role)
    if components is None:
        components = components_for(settings.executor.roles)
    if "worker-compute" in components or "dispatcher" in components:
        check_engine(config, role)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    env = dict(os.environ)
    children: dict[str, _Child] = {}
    restarts: dict[str, int] = dict.fromkeys(components, 0)
    start_crashes: dict[str, int] = dict.fromkeys(components, 0)
    next_start: dict[str, float] = dict.fromkeys(components, 0.0)
    gave_up: str | None = None

    def start(component: str) -> None:
        children[component] = _Child(component, component_command(component, config, role), env)
        log.info("component started", extra={"component_name": component, "child_pid": children[component].proc.pid})

    for component in components:
        start(component)
    try:
        while gave_up is None and not stop.wait(0.5):
            for component, child in list(children.items()):
                code = child.proc.poll()
                if code is None:
                    continue
                now = time.monotonic()
                if next_start[component] == 0.0:
                    ran = now - child.started
                    start_crashes[component] = start_crashes[component] + 1 if ran < START_WINDOW else 0
                    if start_crashes[component] >= MAX_START_CRASHES:
                        gave_up = (
                            f"executor component {component} crashed {start_crashes[component]} times in a row within "
                            f"{START_WINDOW:g} s of starting (exit code {code}); giving up. Its last error: "
                            f"{child.last_error()}"
                        )
                        log.error("component keeps crashing at start; stopping the executor",
                                  extra={"component_name": component, "code": code, "crashes": start_crashes[component]})
                        break
                    restarts[component] += 1
                    delay = min(30.0, 0.5 * 2 ** min(restarts[component], 6))
                    next_start[component] = now + delay
                    log.error("component exited; restarting", extra={"component_name": component, "code": code, "delay": delay})
                elif now >= next_start[component]:
                    next_start[component] = 0.0
                    start(component)
    finally:
        _stop_children({c: child.proc for c, child in children.items()})
    log.info("executor stopped")
    if gave_up is not None:
        print(f"error: {gave_up}", file=sys.stderr, flush=True)
        return 1
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
