"""Per-job Redis leases: at most one task works on a job at a time, and a dead worker's hold expires.

A lease is one Redis string ``{e}:lease:{job id}`` whose value is a random token owned by the
holder, set with ``SET NX PX`` (acquire) and touched only through compare-and-act Lua scripts
(renew, release), so a holder whose lease expired can never extend or delete its successor's.

While a task holds a lease a daemon thread renews it every ``ttl / 3`` seconds. A worker killed with
``kill -9`` stops renewing: the lease expires after ``ttl`` seconds and the recovery task
(:func:`executor.tasks.recover`) hands the job to another attempt. A renewal that finds the key gone
(Redis stalled or unreachable for longer than the TTL, so the key expired on the server while its
holder was alive, or the database was restarted empty) takes it again with the holder's own token,
in the same script: nobody else took it, so the holder still holds the job. Only a renewal that
finds *another* token sets :attr:`Lease.lost` (another attempt took the job over); the task then
acts only after re-reading the chain (the chain, not the lease, is what prevents a double submission).
With `touch` (the job's record), every renewal also sets the record's ``updated`` field (only when
the record exists): a task alive behind its lease keeps its record fresh, which is what recovery
(:func:`executor.beat.recover_jobs`) checks before it re-queues a job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from types import TracebackType
from typing import Self

import redis

from depin.config import env_number

log = logging.getLogger("executor.lease")

# KEYS: the lease, the record to touch (optional); ARGV: token, TTL in ms, the record's new
# `updated`. Returns 1 renewed, 2 taken again (the key was gone), 0 held by another token.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
local result = 0
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  result = 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  result = 2
end
if result > 0 and KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'updated', ARGV[3])
end
return result
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

DEFAULT_TTL = env_number("DEPIN_LEASE_TTL", 15, above=True)


def new_token() -> str:
    """A token naming the holder (host, pid) plus randomness: readable in Redis, never reused."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Lease:
    """One job's lease. Use :meth:`acquire` / :meth:`release`, or ``with Lease(...).held():``."""

    def __init__(self, r: redis.Redis, key: str, ttl: float = DEFAULT_TTL, *, touch: str | None = None) -> None:
        if ttl <= 0:
            raise ValueError("the lease TTL must be positive")
        self.r = r
        self.key = key
        self.ttl = ttl
        self.touch = touch  # a hash whose `updated` field each renewal sets (the job's record)
        self.token = new_token()
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    def acquire(self, *, renew: bool = True) -> bool:
        """Takes the lease if nobody holds it; with `renew`, starts the renewal thread. True if taken."""
        if not self.r.set(self.key, self.token, nx=True, px=self._ttl_ms):
            return False
        self.lost = False
        if renew:
            self._stop.clear()
            self._thread = threading.Thread(target=self._renew_loop, name=f"lease:{self.key}", daemon=True)
            self._thread.start()
        return True

    def renew(self) -> bool:
        """Extends the lease by a full TTL if we still hold it, or takes it again with our token when
        the key is gone (it expired while Redis did not answer us); touches `touch`. False (and
        :attr:`lost`) when another token holds it."""
        keys = [self.key] if self.touch is None else [self.key, self.touch]
        try:
            answer = self.r.eval(_RENEW, len(keys), *keys, self.token, self._ttl_ms, f"{time.time():.3f}")
            result = int(answer)  # type: ignore[arg-type]
        except redis.RedisError as exc:
            log.warning("lease renewal failed", extra={"lease": self.key, "error": str(exc)})
            return True  # not known to be lost yet: the next renewal takes it again if it expired meanwhile
        if result == 2:
            log.warning("lease expired while held (Redis did not answer in time); taken again", extra={"lease": self.key})
        if result == 0:
            self.lost = True
        return result > 0

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            if self._stop.is_set():
                return  # release() began: never take the key again (it would outlive the task)
            if not self.renew():
                log.error("lease lost while held", extra={"lease": self.key})
                return

    def release(self) -> bool:
        """Stops renewing and deletes the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._thread = None
        try:
            return bool(self.r.eval(_RELEASE, 1, self.key, self.token))
        except redis.RedisError:
            return False  # it expires by itself

    def holder(self) -> str | None:
        value = self.r.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def release_if(r: redis.Redis, key: str, token: str) -> bool:
    """Deletes the lease at `key` if `token` still holds it (a dead holder's, taken over)."""
    return bool(r.eval(_RELEASE, 1, key, token))


def is_held(r: redis.Redis, key: str) -> bool:
    """Whether anybody holds the lease at `key` right now."""
    return bool(r.exists(key))


# The second look of recovery (:func:`idle_confirmed`): a record found idle is marked
# "<updated>@<time>" in this field, and its task is taken for dead only when a look at least a lease
# TTL later finds the same `updated`.
IDLE_MARK = "idle_seen"


def idle_confirmed(r: redis.Redis, key: str, rec: dict[str, str], now: float, ttl: float) -> bool:
    """Whether the record at `key` (a job's or a seat's hash, `rec` its fields), found idle (its
    lease free, its ``updated`` old), was found so at least `ttl` seconds (a lease TTL) ago with the
    same ``updated``; else it is marked (:data:`IDLE_MARK`) and False is returned: the caller looks
    again later. A free lease alone does not prove the holder dead: when Redis stalls or is
    unreachable for longer than the TTL (a restart, a failover, a paused VM), or its database is
    wiped, the key is gone on the server while its holder lives. That holder's renewal takes the key
    again, and touches ``updated`` (a lease with `touch`), within a third of the TTL once Redis
    answers, so a second look a TTL later tells it from a dead one. Re-queueing a live run would
    start the job again: the second run removes the first one's container and work folder, and the
    restarted run can miss its deadline (a provider is then slashed, a verifier loses its bond)."""
    mark = rec.get(IDLE_MARK, "")
    seen_updated, _, seen_at = mark.partition("@")
    if mark and seen_updated == rec.get("updated", "") and 0 <= now - float(seen_at or "inf"):
        return now - float(seen_at) >= ttl
    r.hset(key, IDLE_MARK, f"{rec.get('updated', '')}@{now:.3f}")
    return False
