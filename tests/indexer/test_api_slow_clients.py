"""Many slow clients of the HTTP API (h-r3's review).

``depin indexer api`` (uvicorn over :func:`indexer.api.create_app`) answers every connection: a
``/jobs`` page of up to ``PAGE_BYTES`` (4 MiB) is built in a worker thread and handed to the
connection whole, where it waits until the client reads it. Clients that ask and never read (or
read slowly) each hold a page, and its JSON, in the server's memory: nothing bounds how many."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from depin.keys import Keys
from tests.indexer.test_query import (  # noqa: F401  (fixtures)
    REQUESTER_A,
    TOKEN,
    free_port,
    keys,
    r,
    redis_url,
    write_deployment_file,
    write_job,
)

from .services import wait_for

SLOW_CLIENTS = 80
GROWTH_BOUND_MB = 256  # about 36 pages of 7 MB: what a bounded server may hold, whatever the clients


def _rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.xfail(strict=True, reason="the API server holds one ~7 MB /jobs page per client that does not read: memory grows with the number of slow clients (no concurrency limit)")
def test_slow_clients_do_not_grow_the_servers_memory_without_bound(r: redis.Redis, keys: Keys, redis_url: str, tmp_path: Path) -> None:
    """1,200 jobs of ~4 KB (a /jobs page of 1,000 is about the 4 MiB budget); 80 clients each ask
    for a page and never read it. Once every connection has been answered (its socket readable:
    the page, or a refusal), the server's resident memory must have grown by less than
    GROWTH_BOUND_MB."""
    for job_id in range(1, 1201):
        write_job(r, keys, job_id, "Open", REQUESTER_A, None, TOKEN)
        r.hset(keys.job(job_id), "pad", "x" * 4000)
    r.set(keys.cursor, '{"number": 5, "hash": "0x' + "00" * 32 + '"}')
    deployment = write_deployment_file(tmp_path / "31337.json")
    port = free_port()
    depin = Path(sys.executable).with_name("depin")
    proc = subprocess.Popen(
        [str(depin), "indexer", "api", "--port", str(port), "--redis-url", redis_url, "--deployment", str(deployment),
         "--rpc-url", f"http://127.0.0.1:{free_port()}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    clients: list[socket.socket] = []
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200, 15, "the API to serve")
        assert httpx.get(f"http://127.0.0.1:{port}/jobs", params={"limit": 1000}, timeout=30).status_code == 200
        idle = _rss_mb(proc.pid)
        for i in range(SLOW_CLIENTS):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            s.sendall(f"GET /jobs?limit=1000&offset={i % 50} HTTP/1.1\r\nHost: api\r\n\r\n".encode())
            clients.append(s)

        def answered_or_grown() -> bool:
            if _rss_mb(proc.pid) - idle >= GROWTH_BOUND_MB:
                return True
            readable, _, _ = select.select(clients, [], [], 0)
            return len(readable) == len(clients)

        wait_for(answered_or_grown, 120, "every slow client answered")
        assert _rss_mb(proc.pid) - idle < GROWTH_BOUND_MB
    finally:
        for s in clients:
            s.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
