"""The executor's job task: a Celery task keyed by job id that retries transient errors with capped
exponential backoff (never a revert) and counts its deliveries (the redelivery cap, see
:mod:`executor.celery`)."""

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
from executor.runtime import Runtime, get_runtime

log = logging.getLogger("executor.tasks")

DELIVERIES_TTL = 86_400  # seconds a delivery count is kept


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
    up loudly with `give_up`."""
    if ROUTES[name] == CHAIN:
        options.setdefault("soft_time_limit", CHAIN_SOFT_LIMIT)
        options.setdefault("time_limit", CHAIN_HARD_LIMIT)

    def decorate(fn: Callable[..., Any]) -> Any:
        def body(self: Task, job_id: int, *args: Any, **kwargs: Any) -> Any:
            rt = get_runtime()
            job_id = int(job_id)
            key = rt.xkeys.deliveries(name, job_id)
            count = int(rt.state.incr(key))
            rt.state.expire(key, DELIVERIES_TTL)
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


def _count_off(rt: Runtime, key: str) -> None:
    """DECR, not DEL: a duplicate delivery ending must not erase a dead one's count."""
    try:
        if int(rt.state.decr(key)) <= 0:
            rt.state.delete(key)
    except redis.RedisError:
        pass
