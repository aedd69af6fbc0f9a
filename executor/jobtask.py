"""The executor's job task: a Celery task keyed by job id that retries transient errors with capped
exponential backoff (never a revert) and counts its deliveries (the redelivery cap, see
:mod:`executor.celery`): per job, and for the verifier's seat tasks (:data:`SEAT_TASKS`) per
(job, round, seat). A delivery past the cap while the job's (or seat's) lease is held is a duplicate
of a live run, not the cap's death loop: it is not counted and nothing is given up
(:func:`delivery_scope`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
from celery import Task

from depin.errors import ChainError
from depin.transactions import TxReverted
from executor.celery import CHAIN, CHAIN_HARD_LIMIT, CHAIN_SOFT_LIMIT, MAX_DELIVERIES, MAX_RETRIES, ROUTES, app
from executor.containers import ContainerEngineError
from executor.engine import EngineUnavailable
from executor.execute import ProviderFault
from executor.lease import is_held
from executor.runtime import Runtime, get_runtime

log = logging.getLogger("executor.tasks")

DELIVERIES_TTL = 86_400  # seconds a delivery count is kept
# The verifier's seat tasks (``round``, ``seat`` after the job id): counted, and leased, per seat.
SEAT_TASKS = frozenset({"depin.audit_run", "depin.audit_commit"})


def transient_errors() -> tuple[type[BaseException], ...]:
    """Errors worth retrying: the chain, Redis, the container engine, the provider's own machine."""
    return (ChainError, redis.ConnectionError, redis.TimeoutError, ContainerEngineError, EngineUnavailable, ProviderFault)


def revert_errors() -> tuple[type[BaseException], ...]:
    """Errors never retried: the contract said no."""
    return (TxReverted,)


class JobTask(Task):
    """Retries transient errors (chain, Redis, engine) with capped exponential backoff; never a revert."""

    autoretry_for = transient_errors()
    dont_autoretry_for = revert_errors()
    retry_backoff = 2
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = MAX_RETRIES
    acks_late = True
    reject_on_worker_lost = True
    typing = False


def job_task(name: str, *, give_up: Callable[[Runtime, int, str], None] | None = None, **options: Any) -> Callable:
    """A job task with the redelivery cap: every delivery is counted in Redis before the body runs
    and counted off when the body ends (returns or raises). Only deliveries that died mid-way
    (kill -9, the hard time limit, a lost worker) stay counted; past MAX_DELIVERIES the job is given
    up loudly with `give_up`, unless the job's (a seat task's: the seat's) lease is held: a live run
    holds the job, and this delivery is its duplicate (a visibility-timeout redelivery, recovery's
    re-queue), not the next death of a job that kills its worker. Such a duplicate is counted off
    at once and ends without running; giving up there refused a job (a seat) whose healthy run went
    on, and the job then timed out in our hands, the collateral slashed (found by review, stop 56).
    A job that keeps killing its worker is still given up: a dead worker's lease expires within its
    TTL, and recovery's next delivery finds it free."""
    if ROUTES[name] == CHAIN:
        options.setdefault("soft_time_limit", CHAIN_SOFT_LIMIT)
        options.setdefault("time_limit", CHAIN_HARD_LIMIT)

    def decorate(fn: Callable[..., Any]) -> Any:
        def body(self: Task, job_id: int, *args: Any, **kwargs: Any) -> Any:
            rt = get_runtime()
            job_id = int(job_id)
            key, lease = delivery_scope(rt, name, job_id, args, kwargs)
            count = int(rt.state.incr(key))
            rt.state.expire(key, DELIVERIES_TTL)
            if count > MAX_DELIVERIES and is_held(rt.state, lease):
                _count_off(rt, key)
                log.warning("duplicate delivery of a job a live run holds: not counted, not given up",
                            extra={"job": job_id, "task": name, "lease": lease, "deliveries": count - 1})
                return None
            if count > MAX_DELIVERIES:
                reason = f"{name} died {count - 1} times in a row on this job (redelivery cap {MAX_DELIVERIES})"
                log.critical("giving the job up", extra={"job": job_id, "task": name, "reason": reason})
                rt.state.delete(key)
                if give_up is not None:
                    give_up(rt, job_id, reason)
                return None
            try:
                return fn(self, rt, job_id, *args, **kwargs)
            finally:
                _count_off(rt, key)

        body.__name__ = fn.__name__
        body.__doc__ = fn.__doc__
        return app.task(name=name, bind=True, base=JobTask, **options)(body)

    return decorate


def delivery_scope(rt: Runtime, name: str, job_id: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str]:
    """(the delivery count's key, the lease a live run of this delivery's work holds) for task
    `name` called with `job_id`, `args`, `kwargs`. A job's: its deliveries and its lease. A seat
    task's (:data:`SEAT_TASKS`, ``round`` and ``seat`` by keyword or after the job id): the seat's
    own count and :func:`executor.verifier.seat_lease`'s key. One count per job for every seat and
    round of it added up the deaths of unrelated re-runs for a day, and gave a seat up on its first
    delivery (found by review, stop 56)."""
    key, lease = rt.xkeys.deliveries(name, job_id), rt.xkeys.lease(job_id)
    if name not in SEAT_TASKS:
        return key, lease
    round_ = int(kwargs.get("round", args[0] if args else 0))
    seat = int(kwargs.get("seat", args[1] if len(args) > 1 else 0))
    return rt.xkeys.seat_deliveries(name, job_id, round_, seat), rt.xkeys.seat_lease(job_id, round_, seat)


def _count_off(rt: Runtime, key: str) -> None:
    """DECR, not DEL: a duplicate delivery ending must not erase a dead one's count."""
    try:
        if int(rt.state.decr(key)) <= 0:
            rt.state.delete(key)
    except redis.RedisError:
        pass
