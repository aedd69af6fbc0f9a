"""One signing process per key and chain (executor/signer_lock.py), on a real redis-server with real
holder processes: a live holder on this host refuses a second signer at once, a killed one's lock is
taken at once (its restart is never delayed), another host's lock is waited for until it lapses and
refused while it is renewed. The executor's own use of it (a second chain worker, `executor start`)
is checked on the real stack in tests/executor/test_operator_review.py."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from depin.deployment import REPO_ROOT
from executor import signer_lock
from executor.lease import Lease
from tests.indexer.services import RedisServer, wait_for

ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
HOLDER = (
    "import sys, redis\n"
    "from executor import signer_lock\n"
    "lease = signer_lock.take(redis.Redis.from_url(sys.argv[1]), sys.argv[2], sys.argv[3], 31337)\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
    "lease.release()\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path_factory.mktemp("signer-lock"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def key(server: RedisServer, request: pytest.FixtureRequest) -> str:
    k = f"depin-exec:31337:signer:{request.node.name}"
    server.client().delete(k)
    return k


def _holder(server: RedisServer, key: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, server.url(1), key, ADDRESS], cwd=REPO_ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held", proc.stderr.read() if proc.stderr else ""
    return proc


def test_a_live_holder_on_this_host_refuses_a_second_signer_at_once(server: RedisServer, key: str) -> None:
    state = server.client(1)
    proc = _holder(server, key)
    try:
        with pytest.raises(signer_lock.SignerBusy) as busy:
            signer_lock.take(state, key, ADDRESS, 31337, wait=600)  # a live local holder is never waited for
        said = str(busy.value)
        assert f"another process signs for {ADDRESS} on chain 31337: pid {proc.pid} on host" in said
        assert "stop the other executor first" in said and "lapses" not in said
        with pytest.raises(signer_lock.SignerBusy):
            signer_lock.refuse_if_held(state, key, ADDRESS, 31337)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the holder releases its lock and exits
        assert proc.wait(30) == 0
    assert state.get(key) is None
    signer_lock.refuse_if_held(state, key, ADDRESS, 31337)
    lease = signer_lock.take(state, key, ADDRESS, 31337, wait=0)
    try:
        assert state.get(key) == lease.token
    finally:
        lease.release()


@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
def test_a_killed_holders_lock_is_taken_at_once(server: RedisServer, key: str, reaped: bool) -> None:
    state = server.client(1)
    proc = _holder(server, key)
    token = state.get(key)
    assert token is not None and token.split(":")[1] == str(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    if reaped:
        proc.wait(30)
    else:  # killed, not yet reaped by its parent: a zombie, gone all the same
        wait_for(lambda: Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", 30, "the zombie")
    try:
        assert state.get(key) == token  # the dead holder's lock is still there, unexpired
        signer_lock.refuse_if_held(state, key, ADDRESS, 31337)  # a dead holder refuses nobody
        lease = signer_lock.take(state, key, ADDRESS, 31337, wait=0)  # no wait for its TTL
        try:
            assert state.get(key) == lease.token != token
        finally:
            lease.release()
    finally:
        proc.wait(30)


def _foreign(server: RedisServer, key: str, ttl: float) -> Lease:
    """A lock held by a process of another host (a token naming another host name)."""
    lease = Lease(server.client(1), key, ttl)
    lease.token = "another-host:4242:0123456789ab"
    return lease


def test_another_hosts_lock_is_taken_once_it_lapses(server: RedisServer, key: str) -> None:
    state = server.client(1)
    foreign = _foreign(server, key, 2.0)
    assert foreign.acquire(renew=False)  # its holder stopped renewing: the lock lapses within 2 s
    with pytest.raises(signer_lock.SignerBusy) as busy:
        signer_lock.refuse_if_held(state, key, ADDRESS, 31337)
    assert "pid 4242 on host another-host" in str(busy.value) and "lapses" in str(busy.value)
    lease = signer_lock.take(state, key, ADDRESS, 31337, wait=60)
    try:
        assert state.get(key) == lease.token
    finally:
        lease.release()


def test_another_hosts_lock_kept_renewed_is_refused_after_the_wait(server: RedisServer, key: str) -> None:
    state = server.client(1)
    foreign = _foreign(server, key, 1.5)
    assert foreign.acquire()  # renewed every 0.5 s while this test runs
    try:
        with pytest.raises(signer_lock.SignerBusy) as busy:
            signer_lock.take(state, key, ADDRESS, 31337, wait=3)
        assert "pid 4242 on host another-host" in str(busy.value)
        assert state.get(key) == foreign.token
    finally:
        foreign.release()


def test_a_worker_started_while_its_redis_is_down_waits_for_it(tmp_path: Path) -> None:
    """A chain worker restarted during a Redis outage waits for Redis, as Celery waits for its
    broker: crashing at start instead, it would make the supervisor give up on the whole executor."""
    import threading

    import redis

    from depinctl.procs import free_port, start_redis

    port = free_port()
    state = redis.Redis(host="127.0.0.1", port=port, db=1, decode_responses=True, socket_connect_timeout=1, socket_timeout=1)
    key = "depin-exec:31337:signer:down"
    got: list[Lease | BaseException] = []

    def take() -> None:
        try:
            got.append(signer_lock.take(state, key, ADDRESS, 31337, wait=0))
        except BaseException as exc:
            got.append(exc)

    records: list[str] = []
    handler = _Recorder(records)
    signer_lock.log.addHandler(handler)
    thread = threading.Thread(target=take, daemon=True)
    try:
        thread.start()
        wait_for(lambda: any("Redis unavailable" in m for m in records) or got, 30, "the take to meet the outage")
        assert not got, got  # still waiting, not failed
        proc, _ = start_redis(tmp_path / "redis", port=port)
        try:
            wait_for(lambda: got, 30, "the take once Redis answers")
            assert isinstance(got[0], Lease), got
            assert state.get(key) == got[0].token
            got[0].release()
        finally:
            proc.stop()
    finally:
        signer_lock.log.removeHandler(handler)


class _Recorder(logging.Handler):
    def __init__(self, records: list[str]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())
