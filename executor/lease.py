"""Per-job Redis leases: at most one task works on a job at a time, and a dead worker's hold expires.

A lease is one Redis string ``{e}:lease:{job id}`` whose value is a random token owned by the
holder, set with ``SET NX PX`` (acquire) and touched only through compare-and-act Lua scripts
(renew, release), so a holder whose lease expired can never extend or delete its successor's.

While a task holds a lease a daemon thread renews it every ``ttl / 3`` seconds. A worker killed with
``kill -9`` stops renewing: the lease expires after ``ttl`` seconds and the recovery task
(:func:`executor.tasks.recover`) hands the job to another attempt. A holder that fails to renew
(Redis away longer than the TTL, or the process was stopped) sets :attr:`Lease.lost`; the task then
acts only after re-reading the chain (the chain, not the lease, is what prevents a double submission).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from types import TracebackType
from typing import Self

import redis

log = logging.getLogger("executor.lease")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

DEFAULT_TTL = float(os.environ.get("DEPIN_LEASE_TTL", "15"))


def new_token() -> str:
    """A token naming the holder (host, pid) plus randomness: readable in Redis, never reused."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Lease:
    """One job's lease. Use :meth:`acquire` / :meth:`release`, or ``with Lease(...).held():``."""

    def __init__(self, r: redis.Redis, key: str, ttl: float = DEFAULT_TTL) -> None:
        if ttl <= 0:
            raise ValueError("the lease TTL must be positive")
        self.r = r
        self.key = key
        self.ttl = ttl
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
        """Extends the lease by a full TTL if we still hold it; False (and :attr:`lost`) otherwise."""
        try:
            ok = bool(self.r.eval(_RENEW, 1, self.key, self.token, self._ttl_ms))
        except redis.RedisError as exc:
            log.warning("lease renewal failed", extra={"lease": self.key, "error": str(exc)})
            return True  # not known to be lost yet: it still has up to one TTL to live
        if not ok:
            self.lost = True
        return ok

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
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


def is_held(r: redis.Redis, key: str) -> bool:
    """Whether anybody holds the lease at `key` right now."""
    return bool(r.exists(key))
