"""What every executor process shares: the configuration, Redis connections, key names, the chain
client, the container engine and the result store, created lazily once per process.

**Where the executor keeps its state.** The indexer owns its Redis database (``[redis] url``); the
executor never writes there except to acknowledge its consumer group on the event stream. The Celery
broker and the executor's own records live in the **next database number** of the same server
(``redis://host:port/1`` for an index in ``/0``), or in ``DEPIN_BROKER_URL`` when set, under the
prefix ``depin-exec:{chainId}:{market}:{role}:{address}`` (``{e}`` below):

``{e}:job:{id}`` (hash)
    The executor's record of one job: ``state`` (below), ``updated`` (unix time of the last write,
    and of the last lease renewal while a task holds the job), ``reason`` (why
    skipped, lost or abandoned) and, once the run ended, the outcome: ``kind`` (result | failure),
    ``digest`` and ``uri`` and ``name`` (the archive's opaque name) and ``exit_code`` and ``size``,
    or ``code`` and ``failure_reason`` and ``evidence``; ``commitment`` and ``committed`` (the
    salted commitment and the digest it covers; the salt itself is in the submission journal,
    ``<state_dir>/journal/<instance>/<job>.json``, :class:`executor.results.SubmissionJournal`,
    written before the record says ``outcome``); ``tx`` (the submission's transaction hash) once submitted; ``refused`` (why this
    executor never claims the job again: it crashed, was given up or timed out in our hands; kept
    whatever the state becomes, see :mod:`executor.tasks`); ``draw`` (``undrawn@<anchor block>``
    once ``isDrawn`` said so, :func:`executor.beat.check_draws`); ``idle_seen`` (recovery's first
    look at an idle job, :func:`executor.beat.idle_confirmed`); ``recoveries``.
``{e}:lease:{id}`` (string, expires)
    The per-job lease (:mod:`executor.lease`): held by the task working on the job.
``{e}:deliveries:{task}:{id}`` (string counter, expires after a day)
    Attempts of `task` on the job that started and never finished (a worker died during them);
    reset when an attempt ends. Past :data:`executor.celery.MAX_DELIVERIES` the job is given up loudly.
``{e}:active`` (sorted set)
    Jobs in hand (claiming, claimed, running, outcome ready), scored by the time they entered:
    what ``max_concurrent_jobs`` counts and what the recovery task scans.
``{e}:deferred`` (sorted set)
    Jobs the policy accepted but that arrived while the executor was full; reconsidered when a slot frees.
``{e}:submitted`` (sorted set)
    Submitted jobs scored by their challenge deadline: what the finalize beat task settles.
``{e}:health:{component}`` (hash)
    A component's heartbeat (:mod:`executor.health`; today the chain worker's): ``heartbeat`` (unix
    time of the last beat), ``pid``, ``unconfirmed_since`` (unix time since which the oldest of its
    transactions waits to be mined; empty when none waits), ``detail``.
``{e}:metrics`` (hash)
    The executor's Prometheus counters and histogram buckets, added to by every process
    (:mod:`executor.metrics`).
``{e}:orphans`` (hash)
    Containers of this executor the reaper found without a live run (container id -> unix time of
    that look); removed when a look a lease TTL later finds them so (:func:`executor.beat.reap`).

Record states: ``claiming`` (the dispatcher queued the claim) → ``claimed`` (mined: the run is
queued) → ``running`` → ``outcome`` (result or failure recorded; the submission is queued) →
``submitted``. Ends: ``skipped`` (policy or spec), ``lost`` (somebody else claimed it first, or the
job left our hands), ``late`` (the submit deadline passed), ``abandoned`` (the redelivery cap).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import redis
from eth_utils import to_checksum_address

from depin import accounts
from depin.chain import RpcClient, RpcUnavailable
from depin.client import Client, OnchainJob, UnknownJob
from depin.config import ROLE_NAMES, ConfigError, DepinConfig, load_config, parse_roles
from depin.deployment import load_deployment_file
from depin.keys import ExecKeys, Keys
from depin.market import JobStatus, VerifyMode
from executor.containers import container_name as engine_container_name
from executor.engine import check_sandbox, connect
from executor.lease import DEFAULT_TTL, Lease
from executor.results import ResultStore, SubmissionJournal
from indexer.query import EventStream, IndexerReader

if TYPE_CHECKING:
    import docker

log = logging.getLogger("executor")

ENV_CONFIG = "DEPIN_CONFIG"
ENV_ROLE = "DEPIN_EXECUTOR_ROLE"
ENV_BROKER = "DEPIN_BROKER_URL"
ROLES = ROLE_NAMES  # provider, verifier, canary (issue 12); an executor may serve several: "provider,verifier"

ACTIVE_STATES = ("claiming", "claimed", "running", "outcome")
# "verifying_court": drawn or challenged, followed by executor.verification (its own set);
# "no_fault": we reported an availability failure and the market reopened (or refunded) the job.
TERMINAL_STATES = ("submitted", "skipped", "lost", "late", "abandoned", "finalized", "verifying_court", "no_fault")
RECORD_STATES = frozenset(ACTIVE_STATES + TERMINAL_STATES)
# A record that only says a job was not for us (``skipped``, ``lost``) expires this long after it
# was written (a skipped one not before its job's claim deadline + a day): otherwise every job of
# the market leaves a record behind in every provider's Redis for good. Any later state, and a
# ``refused`` mark, makes the record permanent again.
PASSING_RECORD_TTL = 7 * 86_400
CHAIN_NOW_ROUNDS = 2  # rounds of (pending, latest) block reads before chain_now gives up
CHAIN_NOW_PAUSE = 0.5  # seconds between them


def broker_url_for(redis_url: str) -> str:
    """The Celery broker (and executor state) URL: ``DEPIN_BROKER_URL``, else `redis_url` with the
    next database number (the index keeps its own database)."""
    explicit = os.environ.get(ENV_BROKER, "").strip()
    if explicit:
        return explicit
    parts = urlsplit(redis_url)
    path = parts.path.strip("/")
    db = int(path) if path.isdigit() else 0
    return urlunsplit((parts.scheme, parts.netloc, f"/{db + 1}", parts.query, parts.fragment))


def load_executor_config(path: Path | str | None = None, role: str | None = None) -> DepinConfig:
    """depin.toml from `path`, else ``DEPIN_CONFIG``; `role` (else ``DEPIN_EXECUTOR_ROLE``) overrides
    ``[executor] role``."""
    if path is None and os.environ.get(ENV_CONFIG):
        path = os.environ[ENV_CONFIG]
    config = load_config(Path(path) if path else None)
    role = role or os.environ.get(ENV_ROLE) or None
    if role:
        try:
            config.executor.role = parse_roles(role)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return config


def configured_address(config: DepinConfig, chain_id: int) -> str:
    """The executor's account address from the configuration: the keystore's recorded address (no
    password needed) or the development account's (local chains only)."""
    if config.key.keystore is not None:
        address = accounts.keystore_address(config.key.keystore)
        if address:
            return to_checksum_address(address)
    if config.key.dev_account is not None:
        return to_checksum_address(accounts.dev_account(config.key.dev_account, chain_id).address)
    return to_checksum_address(accounts.account_from_config(config.key, chain_id).address)


class Runtime:
    """Per-process resources, each created on first use."""

    def __init__(self, config: DepinConfig) -> None:
        self.config = config
        self.role: str = config.executor.role  # "provider", or several roles joined: "provider,verifier"
        self.roles: tuple[str, ...] = config.executor.roles
        self.deployment = load_deployment_file(config.network.deployment, hint="set [network] deployment in depin.toml")
        self.chain_id = self.deployment.chain_id
        self.market = self.deployment.addresses["JobMarket"]
        self.index_keys = Keys(self.chain_id, self.market, config.redis.namespace)
        self.broker_url = broker_url_for(config.redis.url)
        self.lease_ttl = DEFAULT_TTL
        self._lock = threading.RLock()
        # The verifier's court membership as this process last saw it, per court (executor.verifier.ensure_stake)
        self.court_memberships: dict[str, Any] = {}  # court address -> executor.verifier.Membership

    # ------------------------------------------------------------------ connections

    @cached_property
    def index(self) -> redis.Redis:
        """The indexer's database (read; consumer-group acknowledgements)."""
        return redis.Redis.from_url(self.config.redis.url, decode_responses=True, health_check_interval=30)

    @cached_property
    def reader(self) -> IndexerReader:
        """Typed reads of the index (:mod:`indexer.query`): due jobs, job fields, claims."""
        return IndexerReader(self.index, self.index_keys)

    @cached_property
    def state(self) -> redis.Redis:
        """The executor's database (also the broker's)."""
        return redis.Redis.from_url(self.broker_url, decode_responses=True, health_check_interval=30)

    @cached_property
    def client(self) -> Client:
        with self._lock:
            return Client.from_config(self.config)

    @cached_property
    def address(self) -> str:
        """This executor's account (from the configuration, without unlocking the key)."""
        return configured_address(self.config, self.chain_id)

    @cached_property
    def xkeys(self) -> ExecKeys:
        return ExecKeys(self.chain_id, self.market, self.role, self.address)

    @cached_property
    def docker(self) -> docker.DockerClient:
        """The container engine, once it has passed the start-up sandbox check
        (:func:`executor.engine.check_sandbox`; raises :class:`executor.engine.SandboxUnavailable`)."""
        client = connect(self.config.engine.docker_host, self.config.engine.state_dir)
        check_sandbox(client)
        return client

    @cached_property
    def store(self) -> ResultStore:
        return ResultStore(self.state_dir / "results", self.config.executor.results_url)

    @cached_property
    def journal(self) -> SubmissionJournal:
        """This executor's submission journal (salts and names of its commitments), per instance."""
        return SubmissionJournal(self.state_dir / "journal" / self.instance)

    @property
    def state_dir(self) -> Path:
        return Path(self.config.engine.state_dir)

    @property
    def work_root(self) -> Path:
        return self.state_dir / "work"

    @cached_property
    def instance(self) -> str:
        """This executor's identity on the container engine: ``<role>-<hash>`` of the chain, market,
        role, account and state folder. It is the ``depin.executor`` label of its containers (the
        reaper touches only these) and part of their names, so that two executors sharing one
        engine (two devnets with the same chain id, a provider and its verifier on one host) never
        touch each other's containers, while a restarted executor finds its own again."""
        ident = f"{self.chain_id}:{self.market.lower()}:{self.role}:{self.address.lower()}:{self.state_dir.resolve()}"
        return f"{self.role.replace(',', '_')}-{hashlib.sha256(ident.encode()).hexdigest()[:10]}"

    def container_name(self, job_id: int) -> str:
        """The deterministic container name of this executor's run of `job_id`."""
        return engine_container_name(self.chain_id, job_id, self.instance)

    @cached_property
    def rpc(self) -> RpcClient:
        return RpcClient.from_url(self.config.network.rpc_url, timeout=10)

    def chain_now(self) -> int:
        """The timestamp the next block will carry (the pending block's; anvil's time travel
        included), else the latest block's. Raises :class:`~depin.chain.RpcUnavailable` when the
        node gives neither after :data:`CHAIN_NOW_ROUNDS` rounds: what it decides is final (a job
        recorded late and refused, a claim skipped, a reveal given up) and this machine's clock is
        not the chain's (a node's clock ahead or behind, anvil's time travel). Job tasks retry the
        error (transient); a beat task tries again at the next beat."""
        method = "eth_getBlockByNumber"
        last: BaseException | str = "no block"
        for attempt in range(CHAIN_NOW_ROUNDS):
            if attempt:
                time.sleep(CHAIN_NOW_PAUSE)
            for tag in ("pending", "latest"):
                try:
                    block = self.rpc.call(method, [tag, False])
                    if block and block.get("timestamp"):
                        return int(block["timestamp"], 16)
                    last = f"the {tag} block has no timestamp: {str(block)[:100]}"
                except Exception as exc:  # noqa: BLE001 - try the next source; raised below when none answers
                    last = exc
                    log.debug("block timestamp unavailable", extra={"tag": tag, "error": str(exc)[:200]})
        raise RpcUnavailable(method, f"no block timestamp after {CHAIN_NOW_ROUNDS} rounds: {str(last)[:300]}")

    # ------------------------------------------------------------------ records

    def record(self, job_id: int) -> dict[str, str]:
        return self.state.hgetall(self.xkeys.job(job_id))

    def set_record(
        self, job_id: int, state: str | None = None, *, challenge_deadline: int | None = None, expire_at: float | None = None, **fields: Any
    ) -> None:
        """Updates the job's record, the active set and (with `challenge_deadline`) the set of
        submitted jobs to finalize, in one transaction. An unknown `state` raises ValueError before
        anything is written: a misspelt one would drop the job from the active set unnoticed. With
        `expire_at` (unix time) the record expires then; a new `state` or a ``refused`` mark
        without it makes the record permanent (see :data:`PASSING_RECORD_TTL`)."""
        if state is not None and state not in RECORD_STATES:
            raise ValueError(f"unknown job record state {state!r}; known: {', '.join(sorted(RECORD_STATES))}")
        values = {k: ("" if v is None else str(v)) for k, v in fields.items()}
        values["updated"] = f"{time.time():.3f}"
        pipe = self.state.pipeline(transaction=True)
        if challenge_deadline is not None:
            values["challenge_deadline"] = str(challenge_deadline)
            pipe.zadd(self.xkeys.submitted, {str(job_id): challenge_deadline})
        if state is not None:
            values["state"] = state
            if state in ACTIVE_STATES:
                pipe.zadd(self.xkeys.active, {str(job_id): time.time()}, nx=True)
            else:
                pipe.zrem(self.xkeys.active, str(job_id))
            pipe.zrem(self.xkeys.deferred, str(job_id))
        pipe.hset(self.xkeys.job(job_id), mapping=values)
        if expire_at is not None:
            pipe.expireat(self.xkeys.job(job_id), math.ceil(expire_at))
        elif state is not None or "refused" in fields:
            pipe.persist(self.xkeys.job(job_id))
        pipe.execute()

    def refuse(self, job_id: int, reason: str) -> None:
        """Marks the job as one this executor never claims again (the dispatcher's ``consider``
        refuses it), with `reason`; the record's state is left as it is."""
        self.set_record(job_id, refused=reason[:300])

    def active_count(self) -> int:
        return int(self.state.zcard(self.xkeys.active))

    def lease(self, job_id: int) -> Lease:
        """The job's lease; while held, its renewals keep the record's ``updated`` fresh (what
        :func:`executor.beat.recover_jobs` reads to tell a live task from a dead one)."""
        return Lease(self.state, self.xkeys.lease(job_id), self.lease_ttl, touch=self.xkeys.job(job_id))

    def job(self, job_id: int) -> Any:
        """The job's on-chain record (:class:`depin.client.OnchainJob`); a job the chain does not
        know (never posted, or posted in blocks a reorg removed) comes back with status ``NONE``."""
        try:
            return self.client.job(job_id)
        except UnknownJob:
            zero = b"\x00" * 32
            return OnchainJob(
                job_id, zero, zero, "", 0, 0, 0, JobStatus.NONE, 0, VerifyMode.REEXEC, None, 0, 0, 0, 0, 0, 0, 0, 0, 0
            )

    # ------------------------------------------------------------------ index reads

    def event_stream(self) -> EventStream:
        """This executor's consumer group on the index's event stream (the dispatcher reads it)."""
        return EventStream(self.index, self.index_keys, self.xkeys.group)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """This process's :class:`Runtime` (configured from ``DEPIN_CONFIG`` / ``DEPIN_EXECUTOR_ROLE``)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(load_executor_config())
        return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Installs (or, with None, forgets) this process's runtime; forked children call it with None
    so that they open their own connections."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime
