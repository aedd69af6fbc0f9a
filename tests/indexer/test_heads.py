"""New-head notifications: the running indexer indexes a new block when the node announces it
(``eth_subscribe("newHeads")``), and keeps indexing by polling when the node has no WebSocket."""

from __future__ import annotations

import logging
import socket

import pytest

from depin.chain.heads import websocket_url

from .services import ChainEnv, LiveIndexer, wait_for

NO_POLL = 3600.0  # seconds: longer than any test, so only a notification can start a pass


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_new_job_is_indexed_on_its_head_notification_without_a_poll(chain_env: ChainEnv) -> None:
    """With the poll effectively off (one pass an hour), the running indexer still indexes a job
    posted after its first pass: only the newHeads subscription (anvil's ws:// on the RPC port, the
    default for a local node) can have started that second pass."""
    env, m = chain_env, chain_env.market
    requester = m.accounts[1]
    m.fund(requester)
    ix = env.indexer(0, poll_interval=NO_POLL)
    assert ix.config.resolved_ws_url() == env.anvil.url.replace("http://", "ws://")
    live = LiveIndexer(ix)
    try:
        live.wait_synced(m.head())  # the first pass (at start) is done; the next poll is an hour away
        wait_for(lambda: ix.heads is not None and ix.heads.subscribed.is_set(), 30, "the newHeads subscription")
        job_id = m.post(requester, n=1)
        status = wait_for(lambda: env.client(0).hget(env.keys.job(job_id), "status"), 30, f"job {job_id} in Redis")
        assert status == "Open"
        assert ix.heads is not None and ix.heads.heads >= 1
    finally:
        live.stop()
    assert ix.heads is not None and not ix.heads.alive  # run() closed its subscription


def test_a_node_without_websocket_is_still_indexed_by_polling(chain_env: ChainEnv, caplog: pytest.LogCaptureFixture) -> None:
    """A ws_url where nothing listens: the subscription fails, retries in the background (one
    warning for the outage, not one per attempt), and the indexer indexes new jobs by polling,
    without an error."""
    env, m = chain_env, chain_env.market
    requester = m.accounts[1]
    m.fund(requester)
    caplog.set_level(logging.DEBUG, logger="depin.chain.heads")
    ix = env.indexer(0, ws_url=f"ws://127.0.0.1:{closed_port()}")
    live = LiveIndexer(ix)
    try:
        live.wait_synced(m.head())
        wait_for(lambda: ix.heads is not None and ix.heads.failures >= 2, 30, "the subscription to fail twice")
        job_id = m.post(requester, n=1)
        assert wait_for(lambda: env.client(0).hget(env.keys.job(job_id), "status"), 30, f"job {job_id} in Redis") == "Open"
        assert ix.heads is not None and not ix.heads.subscribed.is_set() and ix.heads.heads == 0
        assert live.thread.is_alive() and live.error is None
    finally:
        live.stop()
    warnings = [r for r in caplog.records if r.name == "depin.chain.heads" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "polling meanwhile" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("rpc_url", "configured", "expected"),
    [
        ("http://127.0.0.1:8545", None, "ws://127.0.0.1:8545"),
        ("http://localhost:8545/rpc", None, "ws://localhost:8545/rpc"),
        ("https://[::1]:8545", None, "wss://[::1]:8545"),
        ("https://eth-sepolia.example.org/v2/KEY", None, None),  # remote: poll unless configured
        ("https://eth-sepolia.example.org/v2/KEY", "wss://ws.example.org/v2/KEY", "wss://ws.example.org/v2/KEY"),
        ("http://127.0.0.1:8545", "off", None),
        ("http://127.0.0.1:8545", "", None),
        ("ipc:///tmp/geth.ipc", None, None),
    ],
)
def test_websocket_url_defaults(rpc_url: str, configured: str | None, expected: str | None) -> None:
    assert websocket_url(rpc_url, configured) == expected


def test_a_ws_url_that_is_not_a_websocket_url_is_refused() -> None:
    with pytest.raises(ValueError, match="ws://"):
        websocket_url("http://127.0.0.1:8545", "http://127.0.0.1:8546")
