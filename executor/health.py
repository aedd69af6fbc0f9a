"""Liveness that means progress: the chain worker's heartbeat, and the check that reads it.

A process can be alive and stuck: a transaction that never gets mined (a nonce gap, a node that
dropped it, fees the chain will not take) blocks every later action of a provider, and no process
manager notices a process that merely waits. So the chain worker (the one process that sends
transactions) runs a heartbeat thread: every :data:`HEARTBEAT_INTERVAL` seconds it lets the signer
re-check its nonces (:meth:`depin.transactions.Transactor.heal`: a transaction a reorg or the node
dropped is sent again) and writes ``{e}:health:worker-chain`` (see :mod:`executor.runtime`):
the beat's time and since when the oldest unconfirmed transaction waits.

:func:`check_health` (``depin executor health``) fails when the heartbeat is older than
``max_heartbeat_age`` (the process is dead or frozen) or a transaction has waited longer than
``max_pending_age`` (the process is stuck): a process manager restarts the worker then (the README
shows systemd units; ``depin devnet up`` restarts an unhealthy devnet worker).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import redis

from depin.config import env_number
from depin.errors import ChainError
from executor.runtime import Runtime, get_runtime

log = logging.getLogger("executor.health")

HEARTBEAT_INTERVAL = env_number("DEPIN_HEARTBEAT_INTERVAL", 5, above=True)
# default bounds of `depin executor health` and of the devnet's check, in seconds
MAX_HEARTBEAT_AGE = env_number("DEPIN_HEALTH_MAX_HEARTBEAT_AGE", 60, above=True)
MAX_PENDING_AGE = env_number("DEPIN_HEALTH_MAX_PENDING_AGE", 300, above=True)  # the oldest unconfirmed transaction
CHAIN_WORKER = "worker-chain"


@dataclass(frozen=True)
class HealthReport:
    ok: bool
    detail: str


def beat_once(rt: Runtime, component: str = CHAIN_WORKER) -> None:
    """One heartbeat: heals the signer's nonces (best effort), then records the beat."""
    since: float | None = None
    detail = "ok"
    tx = rt.client.tx
    if tx is not None:
        try:
            healed = tx.heal()
            if healed:
                detail = f"sent again or filled nonces {', '.join(map(str, healed))}"
        except ChainError as exc:
            detail = f"nonce check failed: {exc}"[:300]
        since = tx.oldest_unconfirmed_since()
    rt.state.hset(rt.xkeys.health(component), mapping={
        "heartbeat": f"{time.time():.3f}", "pid": str(os.getpid()),
        "unconfirmed_since": "" if since is None else f"{since:.3f}", "detail": detail,
    })


def start_heartbeat(component: str = CHAIN_WORKER, interval: float = HEARTBEAT_INTERVAL) -> threading.Thread:
    """Starts the heartbeat thread of this process (a daemon: it ends with the process)."""

    def loop() -> None:
        while True:
            try:
                beat_once(get_runtime(), component)
            except (redis.RedisError, ChainError, OSError) as exc:
                log.warning("heartbeat failed", extra={"error": str(exc)[:300]})
            except Exception:  # the heartbeat must outlive any one failure
                log.exception("heartbeat failed")
            time.sleep(interval)

    thread = threading.Thread(target=loop, name=f"heartbeat-{component}", daemon=True)
    thread.start()
    return thread


def check_health(
    rt: Runtime, *, component: str = CHAIN_WORKER, max_heartbeat_age: float = MAX_HEARTBEAT_AGE,
    max_pending_age: float = MAX_PENDING_AGE, now: float | None = None,
) -> HealthReport:
    """Reads `component`'s heartbeat from the executor's Redis and judges it (:func:`judge_heartbeat`)."""
    record = rt.state.hgetall(rt.xkeys.health(component))
    return judge_heartbeat(record, component=component, max_heartbeat_age=max_heartbeat_age,
                           max_pending_age=max_pending_age, now=now)


def judge_heartbeat(
    record: dict[str, str], *, component: str = CHAIN_WORKER, max_heartbeat_age: float = MAX_HEARTBEAT_AGE,
    max_pending_age: float = MAX_PENDING_AGE, now: float | None = None,
) -> HealthReport:
    """Unhealthy when the heartbeat `record` is missing, older than `max_heartbeat_age`, or says a
    transaction has waited to be mined longer than `max_pending_age`."""
    now = time.time() if now is None else now
    if not record.get("heartbeat"):
        return HealthReport(False, f"{component}: no heartbeat recorded yet (is it running?)")
    beat_age = now - float(record["heartbeat"])
    if beat_age > max_heartbeat_age:
        return HealthReport(False, f"{component}: last heartbeat {beat_age:.0f} s ago (bound {max_heartbeat_age:.0f} s)")
    if record.get("unconfirmed_since"):
        waiting = now - float(record["unconfirmed_since"])
        if waiting > max_pending_age:
            return HealthReport(
                False, f"{component}: a transaction has waited {waiting:.0f} s to be mined (bound {max_pending_age:.0f} s)"
            )
        return HealthReport(True, f"{component}: heartbeat {beat_age:.1f} s ago, oldest transaction waiting {waiting:.1f} s")
    return HealthReport(True, f"{component}: heartbeat {beat_age:.1f} s ago, no transaction waiting")
