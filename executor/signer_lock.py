"""One signing process per key and chain: the signer lock.

Two processes signing with one key count the same nonces: each signs its next transaction at the
nonce it believes free, the node keeps one of the two (or the later one replaces the earlier), and
the loser's caller waits for a receipt that never comes, or is told "nonce too low" for a
transaction it never saw. :class:`depin.transactions.Transactor` serialises the signers of one
process; across processes nothing did: a second ``depin executor start`` with the same key (another
role, another config file, a copy of a systemd unit) ran beside the first without a word.

So the chain worker (the executor's one signing process) holds a lease
(:class:`executor.lease.Lease`, token ``host:pid:random``) at ``depin-exec:<chain>:signer:<address>``
(:attr:`depin.keys.ExecKeys.signer`) in its Redis while it runs, renewed every third of
:data:`SIGNER_TTL` and released at shutdown. Another process that wants it:

- is refused at once (:class:`SignerBusy`, one line naming the holder) when the holder is a live
  process on this host; ``depin executor start`` says so before it starts any component
  (:func:`refuse_if_held`);
- takes it at once when the holder is a process of this host that is gone (killed with ``kill -9``,
  or a zombie): a crashed worker's restart is never delayed;
- waits up to :data:`SIGNER_TTL` plus a few seconds for the lock to lapse when the holder is on
  another host (a container restarted under another host name: a crashed holder stops renewing),
  and is refused if the holder keeps renewing it;
- waits for Redis when it does not answer (a worker restarted during a Redis outage).

The lock lives in the executor's Redis: two executors with the same key on separate Redis servers
are not seen (the README says to run one signing process per key).
"""

from __future__ import annotations

import logging
import os
import socket
import time

import redis

from depin.config import ConfigError, env_number
from executor.engine import pid_alive
from executor.lease import Lease, release_if

log = logging.getLogger("executor.signer_lock")

SIGNER_TTL = env_number("DEPIN_SIGNER_LOCK_TTL", 30, above=True)
LAPSE_MARGIN = 5.0  # seconds beyond the TTL that a start waits for another host's lock to lapse


class SignerBusy(ConfigError):
    """Another live process signs with this key on this chain."""


def _holder_parts(token: str) -> tuple[str, int | None]:
    host, _, rest = token.partition(":")
    pid = rest.partition(":")[0]
    return host, int(pid) if pid.isdigit() else None


def holder_alive(token: str) -> bool | None:
    """Whether the lock's holder (`token`) is a live process: True or False for one of this host
    (a zombie counts as gone), None for another host's (unknowable here)."""
    host, pid = _holder_parts(token)
    if host != socket.gethostname() or pid is None:
        return None
    return pid == os.getpid() or pid_alive(pid)


def describe(token: str) -> str:
    host, pid = _holder_parts(token)
    return f"pid {pid} on host {host}" if pid is not None else repr(token)


def _busy(token: str, address: str, chain_id: int) -> SignerBusy:
    host, _ = _holder_parts(token)
    lapse = "" if host == socket.gethostname() else f" (its lock is renewed while it runs and lapses {SIGNER_TTL:g} s after it stops)"
    return SignerBusy(
        f"another process signs for {address} on chain {chain_id}: {describe(token)}{lapse}. Two signers of one key spend "
        "the same nonces, and one's transactions are lost or replaced: stop the other executor first, or give this one "
        "its own key"
    )


def refuse_if_held(state: redis.Redis, key: str, address: str, chain_id: int) -> None:
    """Raises :class:`SignerBusy` when a live process (or another host's, its lock not lapsed)
    holds the signer lock at `key`: said before an executor starts any component."""
    raw = state.get(key)
    token = raw.decode() if isinstance(raw, bytes) else str(raw or "")
    if token and holder_alive(token) is not False:
        raise _busy(token, address, chain_id)


def take(state: redis.Redis, key: str, address: str, chain_id: int, *, wait: float | None = None) -> Lease:
    """Takes the signer lock at `key` (renewed until :meth:`Lease.release`), by the rules of the
    module doc; raises :class:`SignerBusy` when another live process keeps it. `wait`: how long
    another host's lock may take to lapse (default :data:`SIGNER_TTL` + :data:`LAPSE_MARGIN`)."""
    lease = Lease(state, key, SIGNER_TTL)
    deadline = time.monotonic() + (SIGNER_TTL + LAPSE_MARGIN if wait is None else wait)
    told = unreachable = False
    while True:
        try:
            if lease.acquire():
                return lease
            token = lease.holder()
            if token is None:  # released meanwhile
                continue
            alive = holder_alive(token)
            if alive is False:
                if release_if(state, key, token):
                    log.warning("signer lock of a process that is gone taken over", extra={"holder": describe(token), "address": address})
                continue
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # a worker restarted while its Redis is down waits for it, as Celery waits for its broker
            # (crashing instead, it would make the supervisor give up on the whole executor)
            if not unreachable:
                log.warning("Redis unavailable; waiting to take the signer lock", extra={"error": str(exc)[:300]})
                unreachable = True
            time.sleep(1.0)
            deadline = time.monotonic() + (SIGNER_TTL + LAPSE_MARGIN if wait is None else wait)
            continue
        if alive or time.monotonic() >= deadline:
            raise _busy(token, address, chain_id)
        if not told:
            log.warning("signer lock held by another host's process; waiting for it to lapse",
                        extra={"holder": describe(token), "address": address, "ttl": SIGNER_TTL})
            told = True
        time.sleep(1.0)
