"""Many slow clients of the HTTP API (h-r3's review).

``depin indexer api`` (uvicorn over :func:`indexer.api.create_app`) answers every connection: a
``/jobs`` page of up to ``PAGE_BYTES`` (4 MiB) is built in a worker thread and handed to the
connection whole, where it waits until the client reads it. Clients that ask and never read (or
read slowly) each hold a page, and its JSON, in the server's memory: nothing bounds how many."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
from pathlib import Path

import httpx
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

from .services import stop_gently, wait_for

SLOW_CLIENTS = 80
GROWTH_BOUND_MB = 256  # about 36 pages of 7 MB: what a bounded server may hold, whatever the clients


def _rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _serve(redis_url: str, tmp_path: Path, *options: str) -> tuple[subprocess.Popen[bytes], int]:
    """`depin indexer api` over the index at `redis_url`, once it serves /healthz."""
    deployment = write_deployment_file(tmp_path / "31337.json")
    port = free_port()
    depin = Path(sys.executable).with_name("depin")
    proc = subprocess.Popen(
        [str(depin), "indexer", "api", "--port", str(port), "--redis-url", redis_url, "--deployment", str(deployment),
         "--rpc-url", f"http://127.0.0.1:{free_port()}", *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200, 15, "the API to serve")
    except BaseException:
        stop_gently(proc)
        raise
    return proc, port




def _slow_clients(port: int, n: int) -> list[socket.socket]:
    """`n` connections that each ask for a /jobs page of 1,000 and do not read it."""
    clients = []
    for i in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET /jobs?limit=1000&offset={i % 50} HTTP/1.1\r\nHost: api\r\n\r\n".encode())
        clients.append(s)
    return clients


def test_slow_clients_do_not_grow_the_servers_memory_without_bound(r: redis.Redis, keys: Keys, redis_url: str, tmp_path: Path) -> None:
    """1,200 jobs of ~4 KB (a /jobs page of 1,000 is about the 4 MiB budget); 80 clients each ask
    for a page and never read it. Once every connection has been answered (its socket readable:
    the page, or a refusal), the server's resident memory must have grown by less than
    GROWTH_BOUND_MB."""
    for job_id in range(1, 1201):
        write_job(r, keys, job_id, "Open", REQUESTER_A, None, TOKEN)
        r.hset(keys.job(job_id), "pad", "x" * 4000)
    r.set(keys.cursor, '{"number": 5, "hash": "0x' + "00" * 32 + '"}')
    proc, port = _serve(redis_url, tmp_path)
    clients: list[socket.socket] = []
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/jobs", params={"limit": 1000}, timeout=30).status_code == 200
        idle = _rss_mb(proc.pid)
        clients += _slow_clients(port, SLOW_CLIENTS)

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
        stop_gently(proc)


def test_requests_over_the_limit_are_refused_at_once_and_served_again_once_slow_clients_go(
    r: redis.Redis, keys: Keys, redis_url: str, tmp_path: Path
) -> None:
    """With --max-requests 3, six clients that ask for a large page and never read it: the first
    three hold the slots (their answer started: 200), the others are answered 503 with Retry-After
    while they do; /healthz still answers. Once the slow clients hang up, pages are served again."""
    for job_id in range(1, 1201):
        write_job(r, keys, job_id, "Open", REQUESTER_A, None, TOKEN)
        r.hset(keys.job(job_id), "pad", "x" * 4000)
    r.set(keys.cursor, '{"number": 5, "hash": "0x' + "00" * 32 + '"}')
    proc, port = _serve(redis_url, tmp_path, "--max-requests", "3")
    clients: list[socket.socket] = []
    try:
        clients += _slow_clients(port, 3)

        def started() -> bool:
            return len(select.select(clients, [], [], 0)[0]) == len(clients)

        wait_for(started, 60, "the three slow clients' answers to start")
        assert all(s.recv(12) == b"HTTP/1.1 200" for s in clients)
        busy = httpx.get(f"http://127.0.0.1:{port}/jobs", params={"limit": 1000}, timeout=30)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and "at most 3 requests" in busy.json()["detail"]
        assert httpx.get(f"http://127.0.0.1:{port}/totals", timeout=30).status_code == 503
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code == 200
        for s in clients:
            s.close()
        clients.clear()
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/totals", timeout=30).status_code == 200, 30, "the slots to free")
        page = httpx.get(f"http://127.0.0.1:{port}/jobs", params={"limit": 1000}, timeout=30)
        assert page.status_code == 200 and len(page.json()["jobs"]) > 500
    finally:
        for s in clients:
            s.close()
        stop_gently(proc)
