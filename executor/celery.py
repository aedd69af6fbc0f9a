"""The executor's Celery application: broker, queues, reliability settings and the beat schedule.

**Broker.** Redis, the config's server in the next database number (``DEPIN_BROKER_URL``
overrides; see :mod:`executor.runtime`), with every broker key under the executor's own prefix
(kombu's ``global_keyprefix``): several executors (providers of different accounts) can share
one Redis without ever taking each other's tasks.

**Queues.**

- ``compute``: container runs (``depin.run``), consumed by a
  prefork worker with ``[executor] concurrency`` processes;
- ``chain``: every transaction (``depin.claim``, ``depin.submit`` and the beat tasks, among them
  the reveals of ``depin.follow``), consumed by one worker with concurrency 1: one nonce sequence
  per key, and no two actions of this executor racing on one job.

Tasks are sent to a queue by its name (the default exchange), never through a named exchange: kombu's
Redis transport would route those through binding keys (``_kombu.binding.*``) that a FLUSHDB or a
Redis restarted without its data removes, and every task sent before the sender reconnected would
be dropped (tests/executor/test_broker_flush.py).

**Reliability (DESIGN.md "Executor rules").** ``task_acks_late`` (a message is acknowledged when
the task ends, so a dead worker's task is delivered again), ``task_reject_on_worker_lost`` (a pool
process killed mid-task requeues its message at once) with a **redelivery cap**: every job task
counts its unfinished deliveries in Redis (``{e}:deliveries:{task}:{id}``) and gives the job up,
loudly, after :data:`MAX_DELIVERIES` (a job that kills its worker every time must not loop
forever); ``worker_prefetch_multiplier = 1`` (a worker reserves one task per free process); the
broker's ``visibility_timeout`` > the hard time limit > the soft time limit (so a task is never
redelivered while it may still be running); transient errors (chain, Redis, engine) are retried with
exponential backoff and jitter, at most :data:`MAX_RETRIES` times. Celery's limits only kill the
worker process: the container deadline is enforced by :mod:`executor.containers` itself.

**Beat** (``depin executor beat``): every :data:`BEAT_INTERVAL` seconds ``depin.finalize_due``
(our submitted jobs past their challenge window and not drawn for audit), ``depin.poke``
(expire and time out jobs whose deadline passed), ``depin.recover`` (re-queue jobs whose
task died: no lease and no progress; remove orphan containers); every :data:`WITHDRAW_INTERVAL`
seconds ``depin.withdraw`` (earnings above ``withdraw_threshold``); every :data:`~executor.retention.PRUNE_INTERVAL`
seconds ``depin.prune`` (settled jobs' archives and journal entries past ``result_retention_days``:
:mod:`executor.retention`); every :data:`FOLLOW_INTERVAL`
seconds (at most the beat interval) ``depin.follow`` (reveal to the court, advance our cases:
:mod:`executor.verification`). Those are the provider's; a verifier's beat queues ``depin.verify``
every :data:`VERIFY_INTERVAL` seconds (watch the draw, take seats, reveal, advance:
:mod:`executor.verifier`; its re-runs are ``depin.audit_run`` on the compute queue and its
commitments ``depin.audit_commit``), a canary's ``depin.canary`` (:mod:`executor.canary`); every
role recovers, withdraws and prunes.

**Nothing happens at import.** ``app`` carries the defaults (no configuration is read, no
connection is opened); the worker, beat and dispatcher starters (:mod:`executor.worker`) build the
process's :class:`~executor.runtime.Runtime` and apply it with :func:`configure_app` before they
start. Task names, queues and broker settings are the ones every running executor relies on.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from depin.config import DepinConfig, env_int, env_number
from depin.keys import UNCONFIGURED_EXEC_PREFIX, broker_prefix
from executor.inputs import JOB_INPUTS_TIMEOUT
from executor.retention import PRUNE_INTERVAL
from executor.runtime import Runtime, broker_url_for

COMPUTE = "compute"
CHAIN = "chain"
MAX_DELIVERIES = env_int("DEPIN_MAX_DELIVERIES", 3, minimum=1)
MAX_RETRIES = env_int("DEPIN_MAX_RETRIES", 5)
BEAT_INTERVAL = env_number("DEPIN_BEAT_INTERVAL", 10, above=True)
# Our jobs under verification are looked at this often: a reveal phase can be a few seconds long.
FOLLOW_INTERVAL = env_number("DEPIN_FOLLOW_INTERVAL", 2, above=True)
# A drawn verifier has ``startWindow`` seconds to take its seat (4 s on the devnet): the draw is watched this often.
VERIFY_INTERVAL = env_number("DEPIN_VERIFY_INTERVAL", 1, above=True)
WITHDRAW_INTERVAL = env_number("DEPIN_WITHDRAW_INTERVAL", 60, above=True)
# Seconds beyond a job's max runtime and its inputs' time (JOB_INPUTS_TIMEOUT) that a compute
# task may take (container start and kill, archive, store).
RUN_OVERHEAD = 60
CHAIN_SOFT_LIMIT = 300  # a transaction, rebroadcasts included
CHAIN_HARD_LIMIT = 330

ROUTES = {
    "depin.run": COMPUTE,
    "depin.claim": CHAIN,
    "depin.submit": CHAIN,
    "depin.finalize_due": CHAIN,
    "depin.follow": CHAIN,
    "depin.poke": CHAIN,
    "depin.recover": CHAIN,
    "depin.prune": CHAIN,
    "depin.withdraw": CHAIN,
    # the verifier role (executor.verifier)
    "depin.verify": CHAIN,
    "depin.audit_run": COMPUTE,
    "depin.audit_commit": CHAIN,
    # the canary role (executor.canary)
    "depin.canary": CHAIN,
}


def time_limits(config: DepinConfig) -> tuple[int, int, int]:
    """(soft limit, hard limit, visibility timeout) in seconds for compute tasks: strictly increasing."""
    soft = config.policy.max_runtime + JOB_INPUTS_TIMEOUT + RUN_OVERHEAD
    hard = soft + 30
    visibility = max(hard, CHAIN_HARD_LIMIT) + 300
    return soft, hard, visibility


def settings(config: DepinConfig, *, broker_url: str, key_prefix: str) -> dict:
    soft, hard, visibility = time_limits(config)
    interval = BEAT_INTERVAL
    beat_opts = {"expires": max(interval * 3, 5)}  # a backlog of stale beat runs is useless
    return {
        "broker_url": broker_url,
        "broker_transport_options": {
            "visibility_timeout": visibility,
            "global_keyprefix": broker_prefix(key_prefix),
        },
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": soft,
        "task_time_limit": hard,
        "task_default_queue": CHAIN,
        "task_queues": (
            Queue(COMPUTE, Exchange(COMPUTE, type="direct"), routing_key=COMPUTE),
            Queue(CHAIN, Exchange(CHAIN, type="direct"), routing_key=CHAIN),
        ),
        "task_default_exchange": CHAIN,
        "task_default_routing_key": CHAIN,
        # The queue only: Celery then sends to the queue by name (the default exchange), which kombu's
        # Redis transport delivers without the exchange's binding set (``_kombu.binding.<exchange>``).
        # A named exchange here made every task sent after a FLUSHDB (a Redis restarted without its
        # data) vanish until the sender reconnected and declared its queues again.
        "task_routes": {name: {"queue": queue} for name, queue in ROUTES.items()},
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_send_task_events": False,
        "worker_disable_rate_limits": True,
        "beat_schedule": beat_schedule(config.executor.roles, interval, beat_opts),
    }


def beat_schedule(roles: tuple[str, ...], interval: float, beat_opts: dict) -> dict:
    """The periodic tasks of an executor serving `roles` (see the module doc)."""
    follow = min(interval, FOLLOW_INTERVAL)
    schedule: dict = {
        "recover": {"task": "depin.recover", "schedule": interval, "options": beat_opts},
        "withdraw": {"task": "depin.withdraw", "schedule": WITHDRAW_INTERVAL, "options": {"expires": WITHDRAW_INTERVAL}},
        "prune": {"task": "depin.prune", "schedule": PRUNE_INTERVAL, "options": {"expires": PRUNE_INTERVAL}},
    }
    if "provider" in roles:
        schedule.update({
            "finalize-due": {"task": "depin.finalize_due", "schedule": interval, "options": beat_opts},
            "follow-verifications": {"task": "depin.follow", "schedule": follow, "options": beat_opts},
            "poke-deadlines": {"task": "depin.poke", "schedule": interval, "options": beat_opts},
        })
    if "verifier" in roles:
        schedule["verify"] = {"task": "depin.verify", "schedule": min(follow, VERIFY_INTERVAL), "options": beat_opts}
    if "canary" in roles:
        schedule["canary"] = {"task": "depin.canary", "schedule": follow, "options": beat_opts}
    return schedule


def configure_app(celery: Celery, rt: Runtime) -> None:
    """Applies `rt`'s configuration (broker URL, key prefix, time limits) to `celery`: the worker,
    beat and dispatcher starters (:mod:`executor.worker`) call it before they start."""
    celery.conf.update(settings(rt.config, broker_url=rt.broker_url, key_prefix=rt.xkeys.prefix))


def _defaults() -> dict:
    """The settings of an unconfigured app (imports in tests and tools): the default config, no I/O."""
    config = DepinConfig()
    return settings(config, broker_url=broker_url_for(config.redis.url), key_prefix=UNCONFIGURED_EXEC_PREFIX)


app = Celery("depin_executor", include=["executor.tasks"])
app.conf.update(_defaults())
