"""A whole local devnet under one state folder: ``depin devnet up | down | status | logs``.

``up`` starts, detached (each in its own session, so they outlive the command), on free local ports:

==================  ==================================================  =============================
component           what                                                health check (``status``)
==================  ==================================================  =============================
``anvil``           the chain (npm ``@foundry-rs/anvil``), kept in      ``eth_chainId`` is 31337
                    ``anvil-state.json`` across down/up (``--state``)
``redis``           ``redis-server``: the index (db 0), the executors'  ``PING``
                    broker and state (db 1); append-only file,
                    ``maxmemory-policy noeviction``
``engine``          Docker when ``DOCKER_HOST`` / the Docker socket     the engine's ``/_ping``
                    answers, else the Podman API service
                    (``executor.engine.start_podman_service``)
``indexer``         ``python -m indexer`` with ``DEPIN_*`` variables    cursor within 5 blocks of the
                                                                        node's head
``results``         the provider's result server                        ``GET /healthz``
``worker-compute``  the provider's Celery worker, ``compute`` queue     Celery ping
``worker-chain``    the provider's Celery worker, ``chain`` queue       its heartbeat (``depin
                                                                        executor health``): recent,
                                                                        no transaction unmined for
                                                                        300 s; Celery ping reported
``beat``            the provider's Celery beat                          process alive
``dispatcher``      the provider's event-stream consumer                its consumer group exists
                                                                        and has a consumer
``verifier-N-       the verifier pool (N = 1, 2, 3: dev accounts 6, 7,  Celery ping
compute``           8): each verifier's compute worker (solo pool)
``verifier-N-       each verifier's chain worker, the beat embedded     its heartbeat (as the
chain``             (``--beat``)                                        provider's chain worker)
``canary-chain``    the canary's chain worker, the beat embedded (dev   its heartbeat
                    account 9)
``canary-results``  the canary's result server (its jobs' sealed        ``GET /healthz``
                    decoys), on a port of its own
``canary-bait``     the canary's ``GET /canary/<jobId>`` server         ``GET /healthz``
==================  ==================================================  =============================

Between them it deploys the contracts (``scripts/deploy.py`` through ape: token, randomness,
market and staking, the VerificationCourt; a second ``up`` finds them live and sends nothing), funds and registers the development accounts (Anvil's public keys,
devnet only: 0 deployer (and the court's timelocked last-appeal arbiter), 1 and 2 registered
providers with 1 running the provider executor, 3 a funded account for a hand-driven verifier, 4
and 5 requesters, 6-8 the verifier pool (each executor stakes itself in the court at start), 9 the
canary (a registered provider granted CANARY_ROLE)), builds the sample job images
(``executor.images.build_sample_images``) and writes the provider executor's ``depin.toml``. anvil mines a block every
second besides automining (``--block-time 1 --mixed-mining``), so a job's anchor block arrives and
its draw becomes readable on an idle chain. Each
process is one entry of :data:`COMPONENTS` (name, argv, env, health check); the provider's parts are
the executor's own components (``executor.worker.COMPONENTS``; tests/depinctl/test_devnet.py checks
that the two lists agree).

State folder (default ``.devnet`` in the current directory, ``--state-dir`` or ``DEPIN_DEVNET_DIR``)::

    devnet.json            ports, engine, chain identity, accounts, images and every started process
                           (pid, start time, command line, argv, port, log); written atomically
    env                    `source .devnet/env`: DEPIN_RPC_URL, DEPIN_REDIS_URL, DEPIN_DEPLOYMENT,
                           DEPIN_DEVNET_DIR, DOCKER_HOST
    anvil-state.json       the chain (anvil --state: loaded at start, dumped at stop and every 30 s)
    redis/                 Redis's append-only file
    engine/                the Podman service: socket, pid file, containers.conf, podman.log
    deployments/31337.json the deployment (addresses, deploy block)
    executors/<role>/      depin.toml (rewritten by every `up`) and the executor's state folder
    logs/<component>.log   every component's stdout and stderr; deploy.log
    run/<component>.pid    pid files
    devnet.lock            one `up`, `down` or `demo` at a time (flock, held for the command's life;
                           records the holder's pid and command)

``down`` signals only processes it can prove it started: the recorded pid must be alive with the
recorded start time *and* command line, so a recycled pid is never signalled. It sends SIGTERM to
each component's process leader, then to its process group, then SIGKILL after a grace period. The
chain (anvil dumps its state on SIGTERM), the index and the deployment survive ``down``; delete the
folder to start afresh. If the chain is lost (state file removed, or a crash before the periodic
dump), the next ``up`` sees a new block 1, redeploys and empties the devnet's Redis.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import sys
import time
import urllib.error
import urllib.request  # noqa: TID251 - check_http's local health probe, no JSON-RPC
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import redis

from depin.accounts import DEV_ADDRESSES
from depin.atomicfile import write_atomically
from depin.chain import RpcClient
from depin.config import load_config
from depin.deployment import REPO_ROOT, Deployment, to_wei
from depin.errors import ChainError, DepinError
from depin.keys import ExecKeys, Keys
from depinctl.deploy import DeployError, deploy_with_ape
from depinctl.devchain import DevChain
from depinctl.devnet_state import CHAIN_ID, STATE_FILE, default_state_dir, input_file_roots
from depinctl.procs import (
    STOP_GRACE,
    ProcessRecord,
    ServiceError,
    anvil_argv,
    free_port,
    is_ours,
    port_free,
    proc_cmdline,
    proc_exe,
    proc_stat,
    reap_children,
    redis_argv,
    spawn,
    stop_process,
)
from executor.health import judge_heartbeat

NAMESPACE = "depin"
STATE_VERSION = 1

# Development accounts (Anvil's public mnemonic; devnet only).
DEPLOYER_ACCOUNT = 0  # deployer, admin, and the arbiter
# anvil mines a block every second besides the transactions (--mixed-mining): a job's anchor block
# (submitBlock + D) arrives on an idle chain, so its draw is readable (deployments/parameters.toml
# devnet court.blockTime).
DEVNET_BLOCK_TIME = 1
PROVIDER_ACCOUNTS = (1, 2)  # registered providers; the first runs the devnet's provider executor
VERIFIER_ACCOUNT = 3
REQUESTER_ACCOUNTS = (4, 5)  # 6-8 run the verifier pool, 9 the canary
PROVIDER_FUNDS = 100_000  # tokens
PROVIDER_STAKE = 10_000
VERIFIER_FUNDS = 100_000
REQUESTER_FUNDS = 100_000

INDEXER_MAX_LAG = 5  # blocks behind the head still counted healthy
START_TIMEOUT = 60.0
# SIGTERM to SIGKILL for a chain worker `up` restarts as unhealthy (see Component.unhealthy_grace):
# enough for an idle Celery worker's warm shutdown; its tasks survive a kill (acks late, journals)
CHAIN_UNHEALTHY_GRACE = 4.0


class DevnetError(DepinError):
    """The devnet cannot do what was asked; the message says what to do."""


LOCK_FILE = "devnet.lock"
_HELD: dict[str, int] = {}  # state folders whose lock this process holds -> how deep (Devnet.locked)


# ---------------------------------------------------------------------------------------- health


@dataclass
class Health:
    ok: bool
    detail: str


def _json_rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 2.0) -> Any:
    """One JSON-RPC call through the gateway, no retries (a health probe answers now or not)."""
    try:
        return RpcClient.from_url(url, timeout=timeout, retries=0).call(method, params or [])
    except ChainError as exc:
        raise DevnetError(f"{method}: {exc}") from None


def check_anvil(rpc_url: str) -> Health:
    try:
        chain_id = int(_json_rpc(rpc_url, "eth_chainId"), 16)
        head = int(_json_rpc(rpc_url, "eth_blockNumber"), 16)
    except (OSError, ValueError, DevnetError) as exc:
        return Health(False, f"{rpc_url} does not answer: {exc}")
    if chain_id != CHAIN_ID:
        return Health(False, f"{rpc_url} is chain {chain_id}, expected {CHAIN_ID}")
    return Health(True, f"{rpc_url} chain {chain_id}, block {head}")


def _redis_client(url: str) -> Any:

    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2, decode_responses=True)


def check_redis(redis_url: str) -> Health:

    try:
        client = _redis_client(redis_url)
        client.ping()
        used = client.info("memory").get("used_memory_human", "?")
    except redis.RedisError as exc:
        return Health(False, f"{redis_url} does not answer PING: {exc}")
    return Health(True, f"{redis_url} PONG, {used} used")


def check_engine(docker_host: str) -> Health:
    if not docker_host:
        return Health(False, "no engine recorded")
    try:
        from executor.engine import engine_version  # lazy: start-up (the Docker SDK)

        version = engine_version(docker_host, timeout=5)
    except Exception as exc:  # noqa: BLE001 - docker raises many kinds; all mean "not answering"
        return Health(False, f"{docker_host} does not answer: {type(exc).__name__}: {exc}")
    return Health(True, f"{docker_host} (engine {version})")


def check_indexer(redis_url: str, rpc_url: str, deployment_file: Path) -> Health:


    try:
        deployment = Deployment.from_json(deployment_file.read_text())
    except (OSError, ValueError) as exc:
        return Health(False, f"no deployment: {exc}")
    keys = Keys(deployment.chain_id, deployment.addresses["JobMarket"], NAMESPACE)
    try:
        raw = _redis_client(redis_url).get(keys.cursor)
    except redis.RedisError as exc:
        return Health(False, f"Redis unreachable: {exc}")
    if not raw:
        return Health(False, "nothing indexed yet")
    cursor = int(json.loads(raw)["number"])
    try:
        head = int(_json_rpc(rpc_url, "eth_blockNumber"), 16)
    except (OSError, ValueError, DevnetError):
        return Health(False, f"cursor {cursor}, chain head unknown")
    lag = max(head - cursor, 0)
    return Health(lag <= INDEXER_MAX_LAG, f"cursor {cursor}, head {head}, lag {lag} blocks")


def check_http(url: str) -> Health:
    """GET `url` (a component's local health endpoint; not a download, so not through depin.fetch)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: TID251 - a local health probe
            return Health(200 <= resp.status < 300, f"{url} HTTP {resp.status}")
    except urllib.error.HTTPError as exc:
        return Health(False, f"{url} HTTP {exc.code}")
    except OSError as exc:
        return Health(False, f"{url} does not answer: {exc}")


def celery_workers(broker_url: str, key_prefix: str, *, expect: int, timeout: float = 1.5) -> list[str]:
    """Names of the Celery workers that answer a ping on the executor broker at `broker_url` whose
    keys start with `key_prefix` (the executor's ``{e}`` prefix; kombu's ``global_keyprefix`` is
    ``{e}:broker:``). Returns as soon as `expect` workers answered."""
    from celery import Celery  # lazy: start-up

    app = Celery("depin-devnet-probe", set_as_current=False)
    app.conf.update(
        broker_url=broker_url,
        broker_transport_options={"global_keyprefix": key_prefix + ":broker:"},
        broker_connection_retry=False,
        broker_connection_max_retries=0,
    )
    try:
        replies = app.control.ping(timeout=timeout, limit=expect)
    finally:
        app.close()
    return sorted(name for reply in replies or [] for name in reply)


# ---------------------------------------------------------------------------------------- components


@dataclass(frozen=True)
class Component:
    """One process of the devnet: how to start it and how to tell that it works.

    `argv` and `env` are called with the :class:`Devnet` (ports and paths are known by then);
    `available` returns None when this checkout can run the component, else why not (then it is
    listed as "not wired" and skipped; an `optional` one, off unless asked for, is listed as "off");
    `port` names the port it listens on, if any."""

    name: str
    argv: Callable[[Devnet], list[str]]
    check: Callable[[Devnet], Health]
    env: Callable[[Devnet], dict[str, str]] = lambda dn: dn.base_env()
    available: Callable[[], str | None] = lambda: None
    port: str | None = None
    optional: bool = False
    timeout: float = START_TIMEOUT
    grace: float = STOP_GRACE
    # the grace when `up` restarts it because its probe says unhealthy (None: `grace`). A chain
    # worker is unhealthy when a transaction of its waits past the bound: its task waits for that
    # receipt, so a warm shutdown never ends and the whole grace was spent before the SIGKILL
    unhealthy_grace: float | None = None


def _anvil_argv(dn: Devnet) -> list[str]:
    try:
        return anvil_argv(dn.ports["anvil"], chain_id=CHAIN_ID, state=dn.anvil_state, block_time=DEVNET_BLOCK_TIME)
    except ServiceError:
        raise DevnetError("anvil not found: run `make setup` (it installs @foundry-rs/anvil into node_modules)") from None


def _redis_argv(dn: Devnet) -> list[str]:
    dn.redis_dir.mkdir(parents=True, exist_ok=True)
    try:
        return redis_argv(dn.ports["redis"], dn.redis_dir, persistent=True)
    except ServiceError as exc:
        raise DevnetError(str(exc)) from None


def _indexer_env(dn: Devnet) -> dict[str, str]:
    env = dn.base_env()
    env.update(
        DEPIN_RPC_URL=dn.rpc_url, DEPIN_REDIS_URL=dn.redis_url, DEPIN_DEPLOYMENT=str(dn.deployment_file),
        DEPIN_NAMESPACE=NAMESPACE, DEPIN_POLL_INTERVAL="0.2",
    )
    return env


def _executor_argv(name: str, command: str, *extra: str) -> Callable[[Devnet], list[str]]:
    """``python -m executor COMMAND --config <state>/executors/NAME/depin.toml --role ROLE`` (the
    same entry points as `depin executor COMMAND`, faster to start) for the devnet's executor NAME
    (:data:`ROLE_ACCOUNTS`), whose role is :data:`EXECUTOR_ROLES` [NAME]."""
    return lambda dn: [
        sys.executable, "-m", "executor", command, *extra, "--config", str(dn.executor_config(name)), "--role", EXECUTOR_ROLES[name],
    ]


def _executor_env(dn: Devnet) -> dict[str, str]:
    env = dn.base_env()
    # devnet pace: the challenge window is seconds, so finalize and withdraw often
    env.update(DEPIN_BEAT_INTERVAL="2", DEPIN_WITHDRAW_INTERVAL="10", DEPIN_STOP_GRACE="10")
    # file:// inputs (requester and provider share this machine) are read only below the folder that
    # holds the state folder (the project folder, for the default `.devnet`) and the state folder itself
    env["DEPIN_INPUT_FILE_ROOTS"] = os.pathsep.join(map(str, input_file_roots(dn.dir)))
    if os.environ.get(ENV_WITH_FLOWER) == "1":
        env["DEPIN_CELERY_EVENTS"] = "1"  # the workers send the events Flower shows
    return env


def _flower_env(dn: Devnet) -> dict[str, str]:
    return {**_executor_env(dn), "DEPIN_FLOWER_PORT": str(dn.ports.get("flower", 0))}


def _flower_wanted() -> str | None:
    return None if os.environ.get(ENV_WITH_FLOWER) == "1" else "start it with `depin devnet up --with-flower`"


def _pool_env(dn: Devnet) -> dict[str, str]:
    """The verifiers' and the canary's environment: the provider's, with a single-process compute
    worker (the devnet's 2 cores: one re-run at a time per verifier)."""
    env = _executor_env(dn)
    env["DEPIN_COMPUTE_POOL"] = "solo"
    return env


def _alive(dn: Devnet) -> Health:
    return Health(True, "process alive (no probe)")


# The devnet's verifier pool (dev accounts 6, 7, 8; each its own key, staked in the court by its
# executor at start) and canary operator (dev account 9: a registered provider with CANARY_ROLE).
# Each verifier runs two processes: its compute worker (one re-run at a time) and its chain worker
# with the beat embedded (``worker --queue chain --beat``); the canary its chain worker (beat
# embedded) and its bait server.
VERIFIER_POOL = {"verifier-1": 6, "verifier-2": 7, "verifier-3": 8}
CANARY_ACCOUNT = 9
POOL_PREFIXES = tuple(f"{name}-" for name in (*VERIFIER_POOL, "canary"))


def _check_compute(dn: Devnet, *, name: str) -> Health:
    return dn.check_workers(name, ("compute",))


def _check_chain(dn: Devnet, *, name: str) -> Health:
    return dn.check_chain_worker(name)


def _pool_components() -> tuple[Component, ...]:
    out: list[Component] = []
    for name in VERIFIER_POOL:
        out.append(Component(f"{name}-compute", _executor_argv(name, "worker", "--queue", "compute"),
                             partial(_check_compute, name=name), env=_pool_env, grace=20.0))
        out.append(Component(f"{name}-chain", _executor_argv(name, "worker", "--queue", "chain", "--beat"),
                             partial(_check_chain, name=name), env=_pool_env, grace=20.0, unhealthy_grace=CHAIN_UNHEALTHY_GRACE))
    out.append(Component("canary-chain", _executor_argv("canary", "worker", "--queue", "chain", "--beat"),
                         lambda dn: dn.check_chain_progress("canary"), env=_pool_env, grace=20.0,
                         unhealthy_grace=CHAIN_UNHEALTHY_GRACE))
    out.append(Component("canary-results", _executor_argv("canary", "results"),
                         lambda dn: check_http(f"http://127.0.0.1:{dn.ports.get('canary_results', 0)}/healthz"), env=_pool_env,
                         port="canary_results"))
    out.append(Component("canary-bait", _executor_argv("canary", "canary"),
                         lambda dn: check_http(f"http://127.0.0.1:{dn.ports.get('canary', 0)}/healthz"), env=_pool_env, port="canary"))
    return tuple(out)


COMPONENTS: tuple[Component, ...] = (
    Component("anvil", _anvil_argv, lambda dn: check_anvil(dn.rpc_url), port="anvil", grace=15.0),
    Component("redis", _redis_argv, lambda dn: check_redis(dn.redis_url), port="redis"),
    # the container engine is started between redis and the deploy (see Devnet._ensure_engine)
    Component(
        "indexer",
        lambda dn: [sys.executable, "-m", "indexer"],
        lambda dn: check_indexer(dn.redis_url, dn.rpc_url, dn.deployment_file),
        env=_indexer_env,
    ),
    # the provider executor (dev account 1), one process per part
    Component(
        "results",
        _executor_argv("provider", "results"),
        lambda dn: check_http(f"{dn.results_url}/healthz"),
        env=_executor_env,
        port="results",
    ),
    Component(
        "worker-compute",
        _executor_argv("provider", "worker", "--queue", "compute"),
        lambda dn: dn.check_workers("provider", ("compute",)),
        env=_executor_env,
        grace=20.0,
    ),
    Component(
        "worker-chain",
        _executor_argv("provider", "worker", "--queue", "chain"),
        lambda dn: dn.check_chain_worker("provider"),
        env=_executor_env,
        grace=20.0,
        unhealthy_grace=CHAIN_UNHEALTHY_GRACE,
    ),
    Component("beat", _executor_argv("provider", "beat"), _alive, env=_executor_env),
    # the web explorer (+ JSON API and /metrics) over the index: `depin explorer`
    Component(
        "explorer",
        lambda dn: [sys.executable, "-m", "depinctl.cli", "explorer", "--port", str(dn.ports.get("explorer", 0))],
        lambda dn: check_http(f"{dn.explorer_url}/healthz"),
        env=_indexer_env,
        port="explorer",
    ),
    # Flower, the Celery monitor of the provider executor (`depin devnet up --with-flower`)
    Component(
        "flower", _executor_argv("provider", "flower"), lambda dn: check_http(f"{dn.flower_url}/healthcheck"),
        env=_flower_env, available=_flower_wanted, port="flower", optional=True,
    ),
    Component(
        "dispatcher",
        _executor_argv("provider", "dispatcher"),
        lambda dn: dn.check_dispatcher("provider"),
        env=_executor_env,
    ),
    *_pool_components(),
)
ENGINE = "engine"
# the order of `status` and `logs`; `up` starts in this order, `down` stops in reverse
ORDER = ("anvil", "redis", ENGINE, *(c.name for c in COMPONENTS[2:]))
PORT_NAMES = ("anvil", "redis", "results", "canary", "canary_results", "explorer", "flower")
ENV_WITH_FLOWER = "DEPIN_DEVNET_FLOWER"  # "1": the devnet runs Flower (`up --with-flower` sets it)
# The devnet's executors by name (its folder executors/<name>/): development account, role.
ROLE_ACCOUNTS = {"provider": PROVIDER_ACCOUNTS[0], **VERIFIER_POOL, "canary": CANARY_ACCOUNT}
EXECUTOR_ROLES = {"provider": "provider", **dict.fromkeys(VERIFIER_POOL, "verifier"), "canary": "canary"}
# the provider serves results, and the canary its decoys (on a port of its own, as a provider of its own
# would: not next to its bait); the verifiers publish nothing
ROLE_PORTS = {**dict.fromkeys(ROLE_ACCOUNTS, "results"), "canary": "canary_results"}
VERIFIER_COURT_STAKE = 2_000  # tokens each pool verifier keeps staked in the court
CANARY_INTERVAL = 20  # seconds between canary jobs


# ---------------------------------------------------------------------------------------- status rows


@dataclass
class ComponentStatus:
    name: str
    state: str  # ok | unhealthy | stopped | not started | external | not wired
    pid: int | None = None
    detail: str = ""
    log: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in ("ok", "external")


@dataclass
class UpReport:
    started: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    not_wired: dict[str, str] = field(default_factory=dict)
    off: dict[str, str] = field(default_factory=dict)  # optional components not asked for, and how to ask
    steps: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- the devnet


class Devnet:
    """The devnet recorded in one state folder."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.dir = Path(state_dir or default_state_dir()).absolute()
        self.state: dict[str, Any] = self._load()

    # ------------------------------------------------------------------ paths and URLs

    @property
    def state_file(self) -> Path:
        return self.dir / STATE_FILE

    @property
    def env_file(self) -> Path:
        return self.dir / "env"

    @property
    def logs_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    @property
    def anvil_state(self) -> Path:
        return self.dir / "anvil-state.json"

    @property
    def redis_dir(self) -> Path:
        return self.dir / "redis"

    @property
    def engine_dir(self) -> Path:
        return self.dir / "engine"

    @property
    def deployments_dir(self) -> Path:
        return self.dir / "deployments"

    @property
    def deployment_file(self) -> Path:
        return self.deployments_dir / f"{CHAIN_ID}.json"

    def executor_dir(self, role: str) -> Path:
        return self.dir / "executors" / role

    def executor_config(self, role: str) -> Path:
        return self.executor_dir(role) / "depin.toml"

    def log_path(self, name: str) -> Path:
        if name == ENGINE:  # executor.engine logs the Podman service next to its socket
            return self.engine_dir / "podman.log"
        return self.logs_dir / f"{name}.log"

    @property
    def ports(self) -> dict[str, int]:
        return self.state.setdefault("ports", {})

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.get('anvil', 0)}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports.get('redis', 0)}/0"

    @property
    def broker_url(self) -> str:
        """The executors' Celery broker: the next database of the devnet's Redis (executor.runtime's
        rule; the executors get no DEPIN_BROKER_URL)."""
        return f"redis://127.0.0.1:{self.ports.get('redis', 0)}/1"

    @property
    def results_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.get('results', 0)}"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.get('flower', 0)}"

    @property
    def explorer_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.get('explorer', 0)}"

    @property
    def docker_host(self) -> str:
        return str(self.state.get("engine", {}).get("docker_host", ""))

    @property
    def processes(self) -> dict[str, dict[str, Any]]:
        return self.state.setdefault("processes", {})

    def record(self, name: str) -> ProcessRecord | None:
        data = self.processes.get(name)
        return ProcessRecord.from_json(data) if data else None

    def base_env(self) -> dict[str, str]:
        """The environment of every component: this one without DEPIN_* and DOCKER_HOST (each
        component gets its settings explicitly), with the source tree importable."""

        env = {k: v for k, v in os.environ.items() if not k.startswith("DEPIN_") and k != "DOCKER_HOST"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        tool_dirs = [str(REPO_ROOT / "node_modules" / ".bin"), str(Path(sys.executable).parent)]
        env["PATH"] = os.pathsep.join([*tool_dirs, env.get("PATH", "")])
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # ------------------------------------------------------------------ state file

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {"version": STATE_VERSION}
        except (OSError, ValueError) as exc:
            raise DevnetError(f"{self.state_file} is unreadable ({exc}); move it away, or remove {self.dir}") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise DevnetError(f"{self.state_file} is not a devnet state file of version {STATE_VERSION}")
        for key in ("ports", "processes", "engine", "accounts", "images"):  # what the code indexes into
            if not isinstance(data.get(key, {}), dict):
                raise DevnetError(f"{self.state_file} is damaged ({key!r} is not an object); move it away, or remove {self.dir}")
        return data

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state["version"] = STATE_VERSION
        self.state["state_dir"] = str(self.dir)
        self.state["updated_at"] = time.time()
        write_atomically(self.state_file, json.dumps(self.state, indent=2, sort_keys=True) + "\n")

    @contextlib.contextmanager
    def locked(self, command: str = "depin devnet") -> Iterator[None]:
        """The state folder's lock, held until the block ends: one `up`, `down` or `demo` (which
        holds it for its whole run) at a time per folder; another refuses at once with
        :class:`DevnetError` naming the holder. An ``flock`` on ``devnet.lock``, which the OS drops
        when its holder dies, so a crash leaves nothing stale; the file's text (the holder's pid and
        `command`) only feeds that message. Re-entrant within a process (the demo's `up`)."""
        key = str(self.dir)
        if key in _HELD:
            _HELD[key] += 1
            try:
                yield
            finally:
                _HELD[key] -= 1
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # not truncated: the holder's text
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DevnetError(self._in_use(os.pread(fd, 256, 0))) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
            _HELD[key] = 1
            try:
                yield
            finally:
                del _HELD[key]
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # drops the lock

    def _in_use(self, holder: bytes) -> str:
        """The refusal when another process holds the folder's lock (`holder`: its lock file's text)."""
        pid, _, command = holder.decode("utf-8", "replace").strip().partition(" ")
        command = "".join(c for c in command if c.isprintable())[:60]
        if pid.isdigit() and command:
            who, stop = f"`{command}` (pid {pid})", f"wait for it to end or stop it (Ctrl-C where it runs, or `kill {pid}`)"
        else:
            who, stop = "another `depin` command", "wait for it to end or stop it"
        return (f"the devnet in {self.dir} is in use by {who}: {stop}; or run another devnet beside it in its own "
                "folder: --state-dir DIR")

    def _set_record(self, name: str, record: ProcessRecord | None) -> None:
        pid_file = self.run_dir / f"{name}.pid"
        if record is None:
            self.processes.pop(name, None)
            pid_file.unlink(missing_ok=True)
        else:
            self.processes[name] = asdict(record)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_atomically(pid_file, f"{record.pid}\n")
        self.save()

    # ------------------------------------------------------------------ up

    def up(self, *, say: Callable[[str], None] = lambda line: None, pinned_ports: dict[str, int] | None = None) -> UpReport:
        """Brings every component up (leaving healthy ones alone) and returns what it did."""
        report = UpReport()
        with self.locked("depin devnet up"):
            self.dir.mkdir(parents=True, exist_ok=True)
            self.logs_dir.mkdir(exist_ok=True)
            self._assign_ports(pinned_ports or {})
            self.save()
            by_name = {c.name: c for c in COMPONENTS}
            for name in ("anvil", "redis"):
                self._ensure(by_name[name], report, say)
            self._check_chain_identity(report, say)
            self._ensure_engine(report, say)
            self._deploy(report, say)
            self._fund(report, say)
            self._build_images(report, say)
            self._write_executor_configs()
            self.write_env_file()
            self._ensure(COMPONENTS[2], report, say)  # the indexer, before the dispatchers that read its stream
            ready = []
            for component in COMPONENTS[3:]:
                reason = component.available()
                if reason is not None:
                    (report.off if component.optional else report.not_wired)[component.name] = reason
                else:
                    ready.append(component)
            # the provider's parts at once, then each pool member's: a compute worker's start-up
            # sandbox check runs a container, and a dozen at once can keep the engine from answering
            # within its ping timeout on two cores
            groups = [[c for c in ready if not c.name.startswith(POOL_PREFIXES)]]
            groups += [[c for c in ready if c.name.startswith(f"{name}-")] for name in (*VERIFIER_POOL, "canary")]
            for group in groups:
                self._ensure_many(group, report, say)
            self.save()
        return report

    def _check_chain_identity(self, report: UpReport, say: Callable[[str], None]) -> None:
        """A chain that starts afresh (anvil-state.json deleted, or lost in a crash before its first
        dump) gets the same contract addresses again (same deployer, same nonces), so the index and
        the executors' queues in Redis would describe another chain. The hash of block 1 tells the
        chains apart: when it changed, the processes that read Redis are stopped and the devnet's
        Redis is emptied (it holds nothing but this devnet's index and queues).

        Block 1, not the genesis: anvil 1.7.1 regenerates block 0 when it loads a saved state
        (after a few down/up cycles ``eth_getBlockByNumber(0)`` no longer is block 1's parent). For
        the same reason a fresh chain gets one empty block before the deploy, so that the indexer,
        which anchors at the block before the deploy block, never anchors at block 0."""
        if int(_json_rpc(self.rpc_url, "eth_blockNumber"), 16) == 0:
            _json_rpc(self.rpc_url, "evm_mine")
        identity = _json_rpc(self.rpc_url, "eth_getBlockByNumber", ["0x1", False])["hash"]
        known = self.state.get("chain_identity")
        if known is not None and known != identity:
            for component in reversed(COMPONENTS[2:]):
                record = self.record(component.name)
                if record is not None:
                    stop_process(record, component.grace)
                    self._set_record(component.name, None)
            _redis_client(self.redis_url).flushall()
            # The executors' journals too: their entries are named by job id, round and seat, which
            # the new chain's jobs reuse, so a verifier committed the old chain's digest for the new
            # job of the same id without running it, and a provider's journal answered for the old
            # job's salt (found by review, stop 56).
            for folder in sorted(self.dir.glob("executors/*/state")):
                for journal in (folder / "journal", folder / "canary"):
                    shutil.rmtree(journal, ignore_errors=True)
            say("chain: anvil started a new chain (its saved state was missing); the index and queues in Redis and the "
                "executors' journals were cleared")
            report.steps.append("cleared Redis and the executors' journals for a new chain")
        self.state["chain_identity"] = identity
        self.save()

    def _assign_ports(self, pinned: dict[str, int]) -> None:
        running = any(self.record(c) is not None and is_ours(self.record(c)) for c in self.processes)  # type: ignore[arg-type]
        taken: set[int] = set()
        for name in PORT_NAMES:
            want = pinned.get(name)
            have = self.ports.get(name)
            if want and have and want != have and running:
                raise DevnetError(
                    f"the devnet runs with {name} on port {have}; `depin devnet down` before choosing port {want}"
                )
            if want:
                self.ports[name] = want
            elif have is None or (not running and not port_free(have)):
                # first start, or nothing of ours runs and someone else took the port: pick another
                self.ports[name] = free_port(taken | set(self.ports.values()))
            taken.add(self.ports[name])

    def _ensure(self, component: Component, report: UpReport, say: Callable[[str], None]) -> None:
        self._ensure_many([component], report, say)

    def _ensure_many(self, components: list[Component], report: UpReport, say: Callable[[str], None]) -> None:
        """Leaves healthy running components alone, (re)starts the others all at once, then waits
        until each started one is healthy."""
        launched: list[tuple[Component, ProcessRecord]] = []
        for component in components:
            name = component.name
            record = self.record(name)
            if record is not None and is_ours(record):
                health = self._wait_healthy(component, record, timeout=min(component.timeout, 15.0), raise_on_fail=False)
                if health.ok:
                    report.kept.append(name)
                    say(f"{name}: running (pid {record.pid}), {health.detail}")
                    continue
                say(f"{name}: running but unhealthy ({health.detail}); restarting it")
                stop_process(record, component.grace if component.unhealthy_grace is None else component.unhealthy_grace)
            if record is not None:
                self._set_record(name, None)
            port = self.ports.get(component.port) if component.port else None
            if port is not None and not port_free(port):
                raise DevnetError(
                    f"port {port} for {name} is in use by another process; stop it, or `depin devnet down` "
                    f"and `depin devnet up` again (ports of a stopped devnet are picked afresh)"
                )
            argv = component.argv(self)
            try:
                record = spawn(argv, env=component.env(self), cwd=self.dir, log_path=self.log_path(name))
            except ServiceError as exc:
                raise DevnetError(str(exc)) from None
            record.port = port
            self._set_record(name, record)
            launched.append((component, record))
        for component, record in launched:
            self._wait_healthy(component, record, timeout=component.timeout, raise_on_fail=True)
            # the command line as the process shows it once it runs (redis-server retitles itself;
            # is_ours also knows the retitled form, for a record left by an interrupted `up`)
            # (one read mid-retitle, its argv area cleared, keeps the record's)
            record.cmdline = shown if (shown := proc_cmdline(record.pid)) and any(shown) else record.cmdline
            record.exe = proc_exe(record.pid) or record.exe
            self._set_record(component.name, record)
            report.started.append(component.name)
            say(f"{component.name}: started (pid {record.pid}), log {record.log}")

    # ------------------------------------------------------------------ executor probes

    def _exec_keys(self, role: str) -> Any:

        deployment = Deployment.from_json(self.deployment_file.read_text())
        address = self._role_address(role)
        return ExecKeys(deployment.chain_id, deployment.addresses["JobMarket"], EXECUTOR_ROLES[role], address)

    def _exec_prefix(self, role: str) -> str:
        return str(self._exec_keys(role).prefix)

    def check_chain_progress(self, role: str) -> Health:
        """The chain worker's heartbeat (``depin executor health``): recent, and no transaction
        waiting to be mined for longer than the bound."""


        try:
            record = _redis_client(self.broker_url).hgetall(self._exec_keys(role).health("worker-chain"))
        except (OSError, ValueError, redis.RedisError, DevnetError) as exc:
            return Health(False, f"cannot read the chain worker's heartbeat: {exc}")
        report = judge_heartbeat(record)
        return Health(report.ok, report.detail)

    def check_chain_worker(self, role: str) -> Health:
        """The chain worker makes progress (its heartbeat: recent, no transaction waiting past the
        bound). Its Celery ping is only reported: a solo-pool worker cannot answer a ping while a
        task runs (waiting for a receipt), so a missing answer alone does not mean it is stuck."""
        progress = self.check_chain_progress(role)
        if not progress.ok:
            return progress
        ping = self.check_workers(role, ("chain",))
        return Health(True, f"{progress.detail}; " + (ping.detail if ping.ok else "busy (no answer to a Celery ping while a task runs)"))

    def _role_address(self, role: str) -> str:
        return DEV_ADDRESSES[ROLE_ACCOUNTS[role]]

    def _workers(self, role: str, expect: int) -> list[str]:
        """Celery workers of `role` answering a ping (cached for a second: several components share one ping)."""
        cache = self.__dict__.setdefault("_ping_cache", {})
        hit = cache.get(role)
        if hit is not None and time.monotonic() - hit[0] < 1.0 and len(hit[1]) >= expect:
            return hit[1]
        names = celery_workers(self.broker_url, self._exec_prefix(role), expect=expect)
        cache[role] = (time.monotonic(), names)
        return names

    def check_workers(self, role: str, queues: tuple[str, ...]) -> Health:
        try:
            names = self._workers(role, expect=2)
        except Exception as exc:  # noqa: BLE001 - any failure of the probe is "unhealthy"
            return Health(False, f"celery ping failed: {type(exc).__name__}: {exc}")
        actual = EXECUTOR_ROLES[role]
        mine = [n for n in names if any(n.startswith(f"{q}-{actual}-") for q in queues)]
        missing = [q for q in queues if not any(n.startswith(f"{q}-{actual}-") for n in names)]
        if missing:
            return Health(False, f"no {'/'.join(missing)} worker of the {role} answered a Celery ping")
        return Health(True, "celery ping: " + ", ".join(mine))

    def check_dispatcher(self, role: str) -> Health:
        """The dispatcher's consumer group exists on the indexer's stream and has a consumer."""


        try:
            deployment = Deployment.from_json(self.deployment_file.read_text())
            stream = Keys(deployment.chain_id, deployment.addresses["JobMarket"], NAMESPACE).events
            group = f"executor:{role}:{self._role_address(role).lower()}"
            groups = _redis_client(self.redis_url).xinfo_groups(stream)
        except (OSError, ValueError, redis.RedisError, DevnetError) as exc:
            return Health(False, f"cannot read the event stream's groups: {exc}")
        for g in groups:
            if g.get("name") == group:
                if not g.get("consumers"):
                    return Health(False, f"group {group} has no consumer")
                return Health(True, f"group {group}: {g.get('pending', 0)} pending, lag {g.get('lag', '?')}")
        return Health(False, f"no consumer group {group} on {stream} yet")

    def check_executor(self, role: str) -> Health:
        """A whole executor of `role` under `depin executor start`: both workers, the dispatcher."""
        workers = self.check_workers(role, ("compute", "chain"))
        if not workers.ok:
            return workers
        progress = self.check_chain_progress(role)
        if not progress.ok:
            return progress
        dispatcher = self.check_dispatcher(role)
        if not dispatcher.ok:
            return dispatcher
        return Health(True, f"{workers.detail}; {dispatcher.detail}")

    def _wait_healthy(self, component: Component, record: ProcessRecord, *, timeout: float, raise_on_fail: bool) -> Health:
        deadline = time.monotonic() + timeout
        health = Health(False, "not checked")
        while True:
            reap_children()
            stat = proc_stat(record.pid)
            if stat is None or stat[0] in ("Z", "X"):
                if raise_on_fail:
                    raise DevnetError(
                        f"{component.name} exited during start-up; see {record.log}: {_last_line(Path(record.log))}"
                    )
                return Health(False, "exited")
            health = component.check(self)
            if health.ok or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if not health.ok and raise_on_fail:
            raise DevnetError(f"{component.name} is not healthy after {timeout:.0f} s ({health.detail}); see {record.log}")
        return health

    # ------------------------------------------------------------------ the container engine

    def _ensure_engine(self, report: UpReport, say: Callable[[str], None]) -> None:
        engine = self.state.get("engine", {})
        record = self.record(ENGINE)
        if engine.get("kind") == "podman" and record is not None and is_ours(record):
            health = check_engine(self.docker_host)
            if health.ok:
                report.kept.append(ENGINE)
                say(f"engine: Podman service running (pid {record.pid}), {health.detail}")
                return
        # a Docker engine the user runs
        docker_host = _external_docker_host()
        if docker_host:
            health = check_engine(docker_host)
            if health.ok:
                self.state["engine"] = {"kind": "docker", "docker_host": docker_host}
                self.save()
                report.kept.append(ENGINE)
                say(f"engine: Docker at {docker_host}, {health.detail}")
                return
        reason = _engine_available()
        if reason is not None:
            report.not_wired[ENGINE] = f"no Docker engine answers and {reason}"
            say(f"engine: {report.not_wired[ENGINE]}")
            return
        from executor.engine import start_podman_service  # lazy: start-up

        if record is not None:
            stop_process(record)
            self._set_record(ENGINE, None)
        self.engine_dir.mkdir(parents=True, exist_ok=True)
        try:
            pid, url = start_podman_service(self.engine_dir)
        except Exception as exc:  # noqa: BLE001 - any failure here is "engine unavailable"
            raise DevnetError(f"container engine unavailable: the Podman service did not start ({exc})") from None
        stat = proc_stat(pid)
        record = ProcessRecord(
            pid=pid, cmdline=proc_cmdline(pid) or [], starttime=stat[1] if stat else 0, exe=proc_exe(pid) or "",
            log=str(self.log_path(ENGINE)), started_at=time.time(),
        )
        self.state["engine"] = {"kind": "podman", "docker_host": url}
        self._set_record(ENGINE, record)
        health = check_engine(url)
        if not health.ok:
            raise DevnetError(f"container engine unavailable: {health.detail}")
        report.started.append(ENGINE)
        say(f"engine: Podman service started (pid {pid}), {url}")

    # ------------------------------------------------------------------ chain setup

    def _deploy(self, report: UpReport, say: Callable[[str], None]) -> None:
        if self.deployment_file.is_file() and self._deployment_live():
            say(f"contracts: deployed ({self.deployment_file})")
            return
        say("contracts: deploying (ape run deploy) ...")
        log = self.log_path("deploy")
        started = time.monotonic()
        try:
            deploy_with_ape(self.rpc_url, self.deployments_dir)
        except DeployError as exc:
            log.write_text(str(exc) + "\n")
            raise DevnetError(f"deploy failed; see {log}") from None
        log.write_text(f"deployed to {self.rpc_url} in {time.monotonic() - started:.1f} s: {self.deployment_file}\n")
        report.steps.append("deployed the contracts")
        say(f"contracts: deployed in {time.monotonic() - started:.1f} s ({self.deployment_file})")

    def _deployment_live(self) -> bool:

        try:
            deployment = Deployment.from_json(self.deployment_file.read_text())
            codes = [_json_rpc(self.rpc_url, "eth_getCode", [a, "latest"]) for a in deployment.addresses.values()]
        except (OSError, ValueError, KeyError, DevnetError):
            return False
        return deployment.chain_id == CHAIN_ID and all(c not in ("0x", "0x0", None) for c in codes)

    def _fund(self, report: UpReport, say: Callable[[str], None]) -> None:

        chain = DevChain.from_deployment_file(self.rpc_url, self.deployment_file, timeout=30.0)
        accounts = chain.accounts
        providers = [accounts[i] for i in PROVIDER_ACCOUNTS]
        verifier = accounts[VERIFIER_ACCOUNT]
        requesters = [accounts[i] for i in REQUESTER_ACCOUNTS if i < len(accounts)]
        wanted = {p: to_wei(PROVIDER_FUNDS) for p in providers}
        wanted[verifier] = to_wei(VERIFIER_FUNDS)
        wanted.update({r: to_wei(REQUESTER_FUNDS) for r in requesters})
        pool = [accounts[i] for i in VERIFIER_POOL.values()]
        canary = accounts[CANARY_ACCOUNT]
        wanted.update({v: to_wei(VERIFIER_FUNDS) for v in pool})
        wanted[canary] = to_wei(PROVIDER_FUNDS)
        providers = [*providers, canary]  # the canary claims its own jobs: a registered provider
        staked = {p: chain.get_provider(p)["id"] != 0 for p in providers}
        low = [
            a for a, amount in wanted.items()
            if chain.token_balance(a) + (to_wei(PROVIDER_STAKE) if staked.get(a) else 0) < amount // 2
        ]
        if low:
            # Approvals are sent from the account itself: only for accounts never approved, so a
            # top-up never sends from an account whose running executor is sending meanwhile (the
            # canary spends on every job it posts; two senders of one account collide on nonces).
            token = chain.contracts.reward_token
            fresh = [a for a in low if int(chain.read(token.allowance(a, chain.market))) == 0]
            amount = max(wanted[a] for a in low)
            chain.fund(fresh, amount)
            chain.fund([a for a in low if a not in fresh], amount, approve=False)
            report.steps.append(f"funded {len(low)} development accounts")
        for p in providers:
            if not staked[p]:
                chain.register_provider(p, to_wei(PROVIDER_STAKE), endpoint=f"{self.results_url}")
                report.steps.append(f"registered provider {p}")
        court = chain.contracts.verification_court
        canary_role = chain.read(court.canary_role())
        if not chain.read(court.has_role(canary_role, canary)):
            chain.send(chain.deployer, court.grant_role(canary_role, canary))
            report.steps.append(f"granted CANARY_ROLE to {canary}")
        self.state["accounts"] = {
            "deployer": {"index": DEPLOYER_ACCOUNT, "address": accounts[DEPLOYER_ACCOUNT], "roles": "admin, governor, guardian, arbiter, faucet"},
            "providers": [{"index": i, "address": accounts[i]} for i in PROVIDER_ACCOUNTS],
            "provider_executor": {"index": PROVIDER_ACCOUNTS[0], "address": accounts[PROVIDER_ACCOUNTS[0]]},
            "verifier": {"index": VERIFIER_ACCOUNT, "address": verifier},
            "verifier_pool": [{"index": i, "address": accounts[i], "name": n} for n, i in VERIFIER_POOL.items()],
            "canary": {"index": CANARY_ACCOUNT, "address": canary},
            "requesters": [{"index": i, "address": accounts[i]} for i in REQUESTER_ACCOUNTS if i < len(accounts)],
        }
        self.save()
        say(
            f"accounts: providers {', '.join(map(str, PROVIDER_ACCOUNTS))} registered, verifier {VERIFIER_ACCOUNT}, "
            f"verifier pool {', '.join(map(str, VERIFIER_POOL.values()))}, canary {CANARY_ACCOUNT}, "
            f"requesters {REQUESTER_ACCOUNTS[0]}-{REQUESTER_ACCOUNTS[-1]} funded"
            + (f" ({len(low)} topped up)" if low else "")
        )

    def _build_images(self, report: UpReport, say: Callable[[str], None]) -> None:
        if not self.docker_host:
            return
        try:
            from executor import images as images_mod  # lazy: start-up

            build_sample_images = images_mod.build_sample_images
        except (ImportError, AttributeError):
            report.not_wired["images"] = "executor.images.build_sample_images is not in this checkout yet"
            return
        from executor.engine import client_for  # lazy: start-up (the Docker SDK)

        client = client_for(self.docker_host, timeout=120)
        try:
            refs = build_sample_images(client)
        except Exception as exc:  # noqa: BLE001
            raise DevnetError(f"building the sample images failed: {exc}") from None
        finally:
            client.close()
        self.state["images"] = _jsonable(refs)
        self.save()
        say(f"images: {len(refs)} sample images built")

    def _write_executor_configs(self) -> None:

        images = sorted({ref.rsplit("@", 1)[1] for ref in (self.state.get("images") or {}).values() if "@" in ref})
        busybox = (self.state.get("images") or {}).get("busybox", "")
        for name, account in ROLE_ACCOUNTS.items():
            folder = self.executor_dir(name)
            (folder / "state").mkdir(parents=True, exist_ok=True)
            role = EXECUTOR_ROLES[name]
            text = _executor_toml(
                rpc_url=self.rpc_url, deployment=self.deployment_file, redis_url=self.redis_url,
                account=account, docker_host=self.docker_host, role=role,
                results_url=f"http://127.0.0.1:{self.ports[ROLE_PORTS[name]]}",
                concurrency=2 if role == "provider" else 1, images=images,
            )
            if role == "verifier":
                # its providers are local: 5 s is long enough to tell a withheld archive from a restart
                # and they serve on loopback, which a verifier fetches from only when allowed
                text += (
                    f"[verifier]\ncourt_stake = \"{VERIFIER_COURT_STAKE}\"\nmax_audits = 2\ndelivery_wait = 5\n"
                    'result_allow_networks = ["127.0.0.0/8"]\n'
                )
            if role == "canary":
                text += (
                    f"[canary]\ninterval = {CANARY_INTERVAL}\nimage = {json.dumps(busybox)}\nreward = \"1\"\nmax_open = 3\n"
                    f"bind = \"127.0.0.1:{self.ports['canary']}\"\n"
                )
            write_atomically(folder / "depin.toml", text)
            load_config(folder / "depin.toml", env={})  # the schema check: raises ConfigError

    def write_env_file(self) -> None:
        lines = [
            "# depin devnet: `source` this file to point the depin commands at the devnet",
            f"export DEPIN_RPC_URL={shlex.quote(self.rpc_url)}",
            f"export DEPIN_REDIS_URL={shlex.quote(self.redis_url)}",
            f"export DEPIN_DEPLOYMENT={shlex.quote(str(self.deployment_file))}",
            f"export DEPIN_DEVNET_DIR={shlex.quote(str(self.dir))}",
        ]
        if self.docker_host:
            lines.append(f"export DOCKER_HOST={shlex.quote(self.docker_host)}")
        write_atomically(self.env_file, "\n".join(lines) + "\n")

    # ------------------------------------------------------------------ down

    def down(self, *, say: Callable[[str], None] = lambda line: None) -> dict[str, str]:
        """Stops every process this devnet started, newest first; returns name -> what happened."""
        done: dict[str, str] = {}
        with self.locked("depin devnet down"):
            for name in reversed(ORDER):
                record = self.record(name)
                if record is None:
                    continue
                if name == ENGINE and is_ours(record):
                    outcome = self._stop_engine(record)
                else:
                    grace = next((c.grace for c in COMPONENTS if c.name == name), STOP_GRACE)
                    outcome = stop_process(record, grace)
                stat = proc_stat(record.pid)
                if outcome.startswith("not running") and stat is not None and stat[0] not in ("Z", "X"):
                    outcome = f"left alone: pid {record.pid} is now another process"
                done[name] = outcome
                say(f"{name}: {outcome}")
                self._set_record(name, None)
            self.save()
        return done

    def _stop_engine(self, record: ProcessRecord) -> str:
        """Stops the Podman service (only when the recorded process is still ours), then lets
        executor.engine clean up its pid file and socket."""
        outcome = stop_process(record)
        with contextlib.suppress(Exception):
            from executor import engine as engine_mod  # lazy: start-up

            engine_mod.stop_podman_service(self.engine_dir)  # finds it gone: removes pid file and socket
        return outcome

    # ------------------------------------------------------------------ status

    def status(self) -> list[ComponentStatus]:
        rows = []
        by_name = {c.name: c for c in COMPONENTS}
        for name in ORDER:
            record = self.record(name)
            log = str(self.log_path(name)) if self.log_path(name).exists() else None
            if name == ENGINE and self.state.get("engine", {}).get("kind") == "docker":
                health = check_engine(self.docker_host)
                rows.append(ComponentStatus(name, "external" if health.ok else "unhealthy", None, "Docker: " + health.detail))
                continue
            component = by_name.get(name)
            reason = component.available() if component is not None else _engine_available()
            if record is None:
                if reason is not None:
                    state = "off" if component is not None and component.optional else "not wired"
                    rows.append(ComponentStatus(name, state, None, reason, log))
                else:
                    rows.append(ComponentStatus(name, "not started", None, "", log))
                continue
            if not is_ours(record):
                rows.append(ComponentStatus(name, "stopped", record.pid, "process gone (start it with `depin devnet up`)", log))
                continue
            health = check_engine(self.docker_host) if component is None else component.check(self)
            rows.append(ComponentStatus(name, "ok" if health.ok else "unhealthy", record.pid, health.detail, log))
        return rows

    def info(self) -> dict[str, Any]:
        """Where everything is: URLs, files, accounts (for `up`'s summary and `status --json`)."""
        return {
            "state_dir": str(self.dir),
            "rpc_url": self.rpc_url if "anvil" in self.ports else None,
            "redis_url": self.redis_url if "redis" in self.ports else None,
            "deployment": str(self.deployment_file) if self.deployment_file.exists() else None,
            "docker_host": self.docker_host or None,
            "results_url": self.results_url if "results" in self.ports else None,
            "explorer_url": self.explorer_url if "explorer" in self.ports else None,
            "flower_url": self.flower_url if "flower" in self.processes else None,
            "env_file": str(self.env_file) if self.env_file.exists() else None,
            "logs": str(self.logs_dir),
            "ports": dict(self.ports),
            "accounts": self.state.get("accounts"),
            "images": self.state.get("images"),
        }

    # ------------------------------------------------------------------ logs

    def log_files(self, component: str | None) -> list[tuple[str, Path]]:
        known = [*ORDER, "deploy"]
        if component is not None:
            if component not in known:
                raise DevnetError(f"unknown component {component!r}; one of: {', '.join(known)}")
            path = self.log_path(component)
            if not path.exists():
                raise DevnetError(f"no log for {component} yet ({path})")
            return [(component, path)]
        return [(name, self.log_path(name)) for name in known if self.log_path(name).exists()]


# ---------------------------------------------------------------------------------------- helpers


def _engine_available() -> str | None:
    """None when this checkout can start a Podman service (executor.engine), else why not."""
    try:
        from executor import engine as engine_mod  # lazy: start-up
    except ImportError:
        return "executor.engine (start_podman_service) is not in this checkout yet"
    if not hasattr(engine_mod, "start_podman_service"):
        return "executor.engine has no start_podman_service yet"
    return None


def _external_docker_host() -> str | None:
    """DOCKER_HOST when set, else the Docker socket when it exists. A DOCKER_HOST naming the Podman
    service of a devnet (``<dir>/podman.sock`` next to a ``podman.pid``: what a sourced devnet env
    file sets) is not an engine of the user's; that devnet's `down` would stop it."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    devnet_podman = host.startswith("unix://") and host.endswith("/podman.sock")
    if devnet_podman and (Path(host.removeprefix("unix://")).parent / "podman.pid").exists():
        host = ""
    if host:
        return host
    if Path("/var/run/docker.sock").exists():
        return "unix:///var/run/docker.sock"
    return None


def _executor_toml(
    *, rpc_url: str, deployment: Path, redis_url: str, account: int, docker_host: str, role: str, results_url: str,
    concurrency: int, images: list[str],
) -> str:
    bind = results_url.removeprefix("http://")

    def q(value: str) -> str:
        return json.dumps(value)  # a TOML basic string

    return "\n".join(
        [
            f"# depin devnet: the {role} executor (Anvil development key {account}: devnet only).",
            "# Written by `depin devnet up` on every run: edits are overwritten.",
            "[network]",
            f"rpc_url = {q(rpc_url)}",
            f"deployment = {q(str(deployment))}",
            "",
            "[redis]",
            f"url = {q(redis_url)}",
            f"namespace = {q(NAMESPACE)}",
            "",
            "[key]",
            f"dev_account = {account}",
            "",
            "[engine]",
            f"docker_host = {q(docker_host)}",
            'state_dir = "state"',
            "",
            "[executor]",
            f"role = {q(role)}",
            f"concurrency = {concurrency}",
            f"results_url = {q(results_url)}",
            f"results_bind = {q(bind)}",
            "",
            "[policy]",
            "# any locally built image (images cannot be pulled here); list digests to pin them, e.g. the",
            "# sample images of devnet.json:",
            f"# images = [{', '.join(q(d) for d in images)}]",
            "images = []",
            "",
        ]
    )


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [_jsonable(v) for v in value]
        return str(value)


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][:300] if lines else "(empty log)"


def tail_lines(path: Path, n: int) -> list[str]:
    """The last `n` lines of `path` (reads from the end; fine for large logs)."""
    if n <= 0:
        return []
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        block, data = 8192, b""
        while size > 0 and data.count(b"\n") <= n:
            step = min(block, size)
            size -= step
            fh.seek(size)
            data = fh.read(step) + data
    return [line.decode(errors="replace") for line in data.splitlines()[-n:]]


def follow(files: list[tuple[str, Path]], *, prefix: bool, emit: Callable[[str], None], poll: float = 0.25,
           stop: Callable[[], bool] = lambda: False) -> None:
    """Prints lines appended to `files` until `stop()` (or Ctrl-C)."""
    offsets = {path: path.stat().st_size if path.exists() else 0 for _, path in files}
    partial: dict[Path, bytes] = {path: b"" for _, path in files}
    while not stop():
        for name, path in files:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < offsets[path]:  # truncated or replaced
                offsets[path] = 0
            if size == offsets[path]:
                continue
            with open(path, "rb") as fh:
                fh.seek(offsets[path])
                chunk = fh.read(size - offsets[path])
            offsets[path] = size
            data = partial[path] + chunk
            *lines, partial[path] = data.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                emit(f"{name:<10} | {text}" if prefix else text)
        time.sleep(poll)
