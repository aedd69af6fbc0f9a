"""Redis restarted from an older snapshot under a running indexer (h-r3's review).

A Redis killed and restarted from its last RDB snapshot (or an AOF with ``everysec`` losing its last
second) comes back with an older, consistent index: an older cursor, with the recent block hashes
and undo records of that time. redis-py (6.x) retries a command on a new connection by itself, so
the indexer sees no error at all: it must still end equal to a fresh rebuild of the chain, key by
key, bookkeeping included."""

from __future__ import annotations

from pathlib import Path

import redis

from depinctl.procs import free_port, start_redis

from .services import TIMEOUT_SCALE, ChainEnv, dump


def test_an_index_restored_from_an_older_snapshot_ends_equal_to_a_rebuild_but_for_its_bookkeeping(
    chain_env: ChainEnv, tmp_path: Path
) -> None:
    """The data (hashes, indexes, stream, cursor) of the restored and resumed index equal a rebuild's."""
    env, m = chain_env, chain_env.market
    requester, provider = m.accounts[1], m.accounts[2]
    m.fund(requester)
    m.fund(provider)
    m.register(provider)
    port = free_port()
    proc, url = start_redis(tmp_path / "redis", port=port, timeout=10 * TIMEOUT_SCALE)
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        ix = env.indexer(0, redis_url=url, finality_depth=2)
        for n in range(3):
            m.post(requester, n=n)
        ix.sync_once()
        r.save()  # the snapshot Redis will come back with
        saved = ix.store.cursor()
        m.claim(provider, 1)
        for n in range(3, 9):
            m.post(requester, n=n)
        ix.sync_once()
        proc.stop()  # SIGTERM with no save points: nothing newer is written
        proc, _ = start_redis(tmp_path / "redis", port=port, timeout=10 * TIMEOUT_SCALE)
        assert ix.store.cursor() == saved  # the same client, no error: redis-py reconnected by itself
        m.submit(provider, 1)
        ix.sync_once()
        env.rebuild(1, finality_depth=2)
        assert dump(r, env.keys, bookkeeping=False) == dump(env.client(1), env.keys, bookkeeping=False)
    finally:
        r.close()
        proc.stop()


def test_an_index_restored_from_an_older_snapshot_keeps_no_stale_block_hashes_or_undo_records(
    chain_env: ChainEnv, tmp_path: Path
) -> None:
    """The same, key by key with the bookkeeping: the snapshot's recent block hashes and undo
    records must be pruned as the resumed index moves on (a rebuild keeps the last 2 * finality
    depth blocks only)."""
    env, m = chain_env, chain_env.market
    requester = m.accounts[1]
    m.fund(requester)
    port = free_port()
    proc, url = start_redis(tmp_path / "redis", port=port, timeout=10 * TIMEOUT_SCALE)
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        ix = env.indexer(0, redis_url=url, finality_depth=2)
        for n in range(3):
            m.post(requester, n=n)
        ix.sync_once()
        r.save()
        for n in range(3, 9):
            m.post(requester, n=n)
        ix.sync_once()
        proc.stop()
        proc, _ = start_redis(tmp_path / "redis", port=port, timeout=10 * TIMEOUT_SCALE)
        m.post(requester, n=20)
        ix.sync_once()
        for n in range(21, 30):  # long after: the snapshot's blocks are far below the window
            m.post(requester, n=n)
            ix.sync_once()
        env.rebuild(1, finality_depth=2)
        k = env.keys
        assert sorted(map(int, r.hkeys(k.blocks))) == sorted(map(int, env.client(1).hkeys(k.blocks)))
        assert dump(r, k) == dump(env.client(1), k)
    finally:
        r.close()
        proc.stop()
