"""start_anvil and start_redis on a port another process took between free_port and the bind:
the service is started on another free port, and a service that answers there but is not ours is
never taken for it (tests on real redis-server and anvil processes; the collision is forced by
handing the starter the taken port first)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from depin.chain import RpcClient
from depinctl import procs
from depinctl.procs import PortTaken, listener_pids, start_anvil, start_redis


@pytest.fixture
def foreign_redis(tmp_path: Path) -> Iterator[tuple[procs.ManagedProcess, int]]:
    """Another redis-server (not started by the code under test) holding a port."""
    proc, url = start_redis(tmp_path / "foreign")
    try:
        yield proc, int(url.rsplit(":", 1)[1].split("/")[0])
    finally:
        proc.stop()


def _taken_first(monkeypatch: pytest.MonkeyPatch, taken: int) -> list[int]:
    """free_port answers `taken` once, then real free ports; returns the ports it handed out."""
    handed: list[int] = []
    real = procs.free_port

    def fake(taken_set: frozenset[int] = frozenset()) -> int:
        port = taken if not handed else real(taken_set)
        handed.append(port)
        return port

    monkeypatch.setattr(procs, "free_port", fake)
    return handed


def test_redis_on_a_port_another_redis_took_moves_to_a_free_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, foreign_redis: tuple[procs.ManagedProcess, int]
) -> None:
    foreign, taken = foreign_redis
    foreign_client = redis.Redis(port=taken)
    foreign_client.set("owner", "foreign")
    handed = _taken_first(monkeypatch, taken)
    proc, url = start_redis(tmp_path / "ours")
    try:
        assert handed[0] == taken and len(handed) == 2, handed
        assert url == f"redis://127.0.0.1:{handed[1]}/0"
        client = redis.Redis.from_url(url)
        assert client.get("owner") is None  # not the foreign one, which answered on the taken port
        assert client.info("server")["process_id"] == proc.pid
        assert "Address already in use" in (tmp_path / "ours" / "redis.log").read_text()
        assert foreign.alive() and foreign_client.get("owner") == b"foreign"
    finally:
        proc.stop()


def test_anvil_on_a_port_a_redis_took_moves_to_a_free_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, foreign_redis: tuple[procs.ManagedProcess, int]
) -> None:
    _, taken = foreign_redis
    handed = _taken_first(monkeypatch, taken)
    proc, url = start_anvil(tmp_path / "anvil")
    try:
        assert handed[0] == taken and len(handed) == 2, handed
        assert url == f"http://127.0.0.1:{handed[1]}"
        assert RpcClient.from_url(url).chain_id() == 31337
        assert any(procs._proc_pgid(pid) == proc.pid for pid in listener_pids(handed[1]))
    finally:
        proc.stop()


def test_a_given_port_that_is_taken_is_refused_not_replaced(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert listener_pids(port)  # this process
        with pytest.raises(PortTaken, match=f"port {port} is taken"):
            start_redis(tmp_path / "redis", port=port)


def test_every_chosen_port_taken_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setattr(procs, "free_port", lambda taken=frozenset(): port)
        with pytest.raises(procs.ServiceError, match=f"{procs.PORT_TRIES} free ports in a row were taken"):
            start_redis(tmp_path / "redis")
