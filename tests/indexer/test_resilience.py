"""Exact state despite a misbehaving node and a wiped Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .services import ChainEnv, FlakyProxy, LiveIndexer, dump, wait_for


def test_flaky_rpc_still_yields_the_exact_state(populated_env: ChainEnv) -> None:
    """Behind a proxy that rejects eth_getLogs ranges over 3 blocks and drops or 500s every 4th
    request, the indexer shrinks its range, retries with backoff and builds exactly the state of a
    direct rebuild."""
    env = populated_env
    proxy = FlakyProxy(env.anvil.url, max_range=3, fail_every=4)
    try:
        ix = env.indexer(0, rpc_url=proxy.url, max_range=40)
        ix.sync_once()
        assert proxy.rejected > 0 and proxy.dropped > 0 and proxy.errors500 > 0
        assert ix.range <= 3 + 3 // 4 + 1
    finally:
        proxy.close()
    env.rebuild(1, max_range=40)
    assert dump(env.client(0), env.keys) == dump(env.client(1), env.keys)


def _outage_is_waited_for(
    env: ChainEnv, misbehave: Callable[[FlakyProxy, int], Callable[[], bool]], recover: Callable[[FlakyProxy], None],
    what: str, **overrides: Any,
) -> None:
    """A live indexer behind a proxy: synced, then `misbehave(proxy, head)` starts an outage (it
    returns when the indexer has been seen polling through it) while two jobs are posted. The
    indexer must keep running; after `recover(proxy)` it catches up, ending equal to a rebuild."""
    m = env.market
    requester = m.accounts[1]
    m.fund(requester)
    proxy = FlakyProxy(env.anvil.url)
    live = LiveIndexer(env.indexer(0, rpc_url=proxy.url, **overrides))
    try:
        live.wait_synced(m.head())
        polled_through = misbehave(proxy, m.head())
        m.post(requester, n=1)
        m.post(requester, n=2)
        wait_for(lambda: polled_through() or not live.thread.is_alive(), 120, what)
        assert live.thread.is_alive() and live.error is None
        recover(proxy)
        live.wait_synced(m.head())
    finally:
        live.stop()
        proxy.close()
    env.rebuild(1)
    assert dump(env.client(0), env.keys, bookkeeping=False) == dump(env.client(1), env.keys, bookkeeping=False)


def test_node_that_goes_away_is_waited_for(chain_env: ChainEnv) -> None:
    """While the node is unreachable the running indexer logs, backs off and keeps polling; when
    it is back it catches up with what happened meanwhile, ending equal to a rebuild."""

    def go_away(proxy: FlakyProxy, _head: int) -> Callable[[], bool]:
        proxy.down = True
        dropped = proxy.dropped
        return lambda: proxy.dropped > dropped + 3

    _outage_is_waited_for(chain_env, go_away, lambda proxy: setattr(proxy, "down", False),
                          "the indexer to keep polling the dead node", rpc_retries=1)


def test_a_node_that_keeps_changing_its_chain_is_waited_for(chain_env: ChainEnv) -> None:
    """A node that answers a head but not its blocks (as anvil does while it re-mines a reorg on a
    loaded machine) makes every fetch see the chain move. After 20 such fetches the indexer gives
    up that poll, backs off and polls again; it used to stop. When the blocks are served again it
    catches up, ending equal to a rebuild."""

    def hide_new_blocks(proxy: FlakyProxy, head: int) -> Callable[[], bool]:
        proxy.vanish_from = head + 1
        return lambda: proxy.hidden > 70  # 20 refetches give up one poll: three polls' worth and more

    _outage_is_waited_for(chain_env, hide_new_blocks, lambda proxy: setattr(proxy, "vanish_from", None),
                          "the indexer to keep polling the changing node")


def test_redis_wiped_while_running_is_rebuilt_from_the_chain(populated_env: ChainEnv) -> None:
    """FLUSHALL in the middle of a backfill, and again once the indexer follows the head: the
    running indexer notices (the cursor is gone, its transaction aborts) and rebuilds everything
    from the deployment block, ending identical to an index that was never wiped."""
    env = populated_env
    head = env.market.head()
    r = env.client(0)
    live = LiveIndexer(env.indexer(0, max_range=2))
    try:
        live.wait_synced((env.deployment.deploy_block + head) // 2)
        r.flushall()
        live.wait_synced(head)
        r.flushall()
        live.wait_synced(head)
    finally:
        live.stop()
    env.rebuild(1, max_range=2)
    assert dump(r, env.keys) == dump(env.client(1), env.keys)
