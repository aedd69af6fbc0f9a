"""Reorg safety on anvil: rollback from undo records, retractions in the stream, and a loud stop
below the finality depth."""

from __future__ import annotations

import pytest

from depin.errors import ReorgTooDeep
from depin.spec import example_spec
from indexer.store import Cursor

from .services import TOKEN, ChainEnv, Terms, dump, keccak, net_stream, stream_entries


def _setup(m) -> tuple[str, str, str]:
    requester, provider, other = m.accounts[1], m.accounts[2], m.accounts[3]
    for a in (requester, provider, other):
        m.fund(a)
    m.register(provider)
    return requester, provider, other


def _assert_equals_rebuild(
    env: ChainEnv, db: int = 0, rebuild_db: int = 5, bookkeeping: bool = True, **settings: object
) -> list[dict[str, str]]:
    """The index in `db` equals a rebuild of the current chain with the same `settings`, but for
    the stream, whose events net of retractions equal the rebuild's stream (and, with
    `bookkeeping` False, for the recent block hashes and undo records). Returns the retractions."""
    env.rebuild(rebuild_db, **settings)
    r, k = env.client(db), env.keys
    assert dump(r, k, stream=False, bookkeeping=bookkeeping) == dump(env.client(rebuild_db), k, stream=False, bookkeeping=bookkeeping)
    entries = stream_entries(r, k)
    assert net_stream(entries) == stream_entries(env.client(rebuild_db), k)
    return [e for e in entries if e["kind"] == "retraction"]


def test_snapshot_revert_reorg_is_rolled_back_and_replaced(chain_env: ChainEnv) -> None:
    """After evm_revert and different transactions (a shorter chain), a new indexer process
    (reorg detection survives restarts: block hashes live in Redis) walks back to the fork point,
    undoes the orphaned blocks, appends a retraction per undone event, re-applies the canonical
    blocks, and ends equal to a rebuild of the new chain."""
    env, m = chain_env, chain_env.market
    requester, provider, other = _setup(m)
    m.post(requester, n=1)
    env.indexer().sync_once()
    snap = m.snapshot()
    fork_block = m.head()
    j = m.post(requester, n=2)
    m.claim(provider, j)
    m.submit(provider, j)
    m.deposit(other, 5 * TOKEN)
    m.post(other, n=3)
    env.indexer().sync_once()
    orphaned_head = m.head()
    m.revert(snap)
    m.post(other, n=30, terms=Terms(reward=2 * TOKEN))  # job 2 is now another job
    m.claim(provider, 1)
    assert m.head() < orphaned_head
    applied = env.indexer().sync_once()
    assert applied == 2
    retractions = _assert_equals_rebuild(env)
    assert [e["event"] for e in retractions] == ["JobPosted", "Deposited", "ResultSubmitted", "JobClaimed", "JobPosted"]
    assert all(int(e["block"]) > fork_block for e in retractions)
    r, k = env.client(0), env.keys
    assert r.hget(k.job(2), "requester") == other
    assert r.zscore(k.jobs_by_status("Submitted"), 2) is None
    assert not r.exists(k.account(other)) or r.hget(k.account(other), "withdrawable") == "0"


def test_anvil_reorg_at_the_same_height_is_detected(chain_env: ChainEnv) -> None:
    """anvil_reorg replaces the last blocks with others at the same height: the indexer notices
    the cursor's hash changed even though the head did not move, and converges to a rebuild."""
    env, m = chain_env, chain_env.market
    requester, provider, other = _setup(m)
    j1 = m.post(requester, n=1)
    j2 = m.post(requester, n=2)
    m.claim(provider, j1)
    m.claim(provider, j2)
    m.submit(provider, j1)
    ix = env.indexer()
    ix.sync_once()
    head = m.head()
    spec = example_spec(77)
    post = {"from": other, "to": m.market.address, "gas": hex(2_000_000),
            "data": m.codec.encode("JobMarket", "postJob", keccak(spec), spec, Terms(reward=3 * TOKEN).as_tuple())}
    cancel = {"from": requester, "to": m.market.address, "gas": hex(2_000_000), "data": m.codec.encode("JobMarket", "cancelJob", j2)}
    # the last 3 blocks (claim j1, claim j2, submit j1) become: post a job, cancel j2 (still open there)
    m.rpc.call("anvil_reorg", [3, [[post, 0], [cancel, 1]]])
    assert m.head() == head
    ix.sync_once()
    retractions = _assert_equals_rebuild(env)
    assert [e["event"] for e in retractions] == ["ResultSubmitted", "JobClaimed", "JobClaimed"]
    r, k = env.client(0), env.keys
    assert r.hget(k.job(j2), "status") == "Cancelled"
    assert r.hget(k.job(j1), "status") == "Open"
    assert r.hget(k.provider(provider), "locked") == "0"
    assert r.hget(k.job(j2 + 1), "requester") == other


def test_reorg_deeper_than_finality_depth_stops_loudly(chain_env: ChainEnv) -> None:
    """With finality_depth 3, a reorg replacing 6 indexed blocks makes sync_once raise
    ReorgTooDeep with a message naming the fork and what to do, leaves the index untouched, and
    makes run() stop (raise) instead of serving a mixed state."""
    env, m = chain_env, chain_env.market
    requester, _provider, _ = _setup(m)
    snap = m.snapshot()
    for n in range(6):
        m.post(requester, n=n)
    ix = env.indexer(finality_depth=3)
    ix.sync_once()
    before = dump(env.client(0), env.keys)
    m.revert(snap)
    m.mine(8)
    with pytest.raises(ReorgTooDeep, match="deeper than the finality depth") as info:
        ix.sync_once()
    assert "--reset" in str(info.value)
    assert dump(env.client(0), env.keys) == before
    with pytest.raises(ReorgTooDeep):
        env.indexer(finality_depth=3).run()


def test_reorg_within_finality_depth_after_a_final_backfill(chain_env: ChainEnv) -> None:
    """Blocks backfilled as final keep no undo records, but the blocks after them (twice the
    finality depth) do: a reorg of exactly finality_depth blocks right after a mostly-final
    backfill is still rolled back."""
    env, m = chain_env, chain_env.market
    requester, provider, _ = _setup(m)
    for n in range(4):
        m.post(requester, n=n)
    snap = m.snapshot()
    for n in range(4, 8):
        m.post(requester, n=n)
    ix = env.indexer(finality_depth=4)
    ix.sync_once()
    stored = ix.store.stored_blocks()
    assert min(stored) == m.head() - 8 and ix.store.cursor() == Cursor(m.head(), stored[m.head()][0])
    m.revert(snap)
    m.claim(provider, 2)
    m.mine(3)
    ix.sync_once()
    retractions = _assert_equals_rebuild(env, finality_depth=4)
    assert len(retractions) == 4


def test_reorg_within_finality_depth_after_a_reorg_to_a_shorter_chain(chain_env: ChainEnv) -> None:
    """Nested devnet snapshots: a revert to the inner one (a reorg to a shorter chain, 3 blocks
    deep) and then to the outer one (4 blocks below the new cursor, within finality_depth 4). The
    first rollback lowered the chain, so blocks the indexer had pruned as final (below the old
    head - finality_depth) are within finality_depth of the new cursor again: their hashes and undo
    records must still be there, and the second reorg is rolled back like any other."""
    env, m = chain_env, chain_env.market
    requester, _provider, _ = _setup(m)
    outer = m.snapshot()
    fork = m.head()
    for n in range(3):
        m.post(requester, n=n)
    inner = m.snapshot()
    for n in range(3, 6):
        m.post(requester, n=n)
    ix = env.indexer(finality_depth=4)
    ix.sync_once()
    assert ix.store.cursor().number == fork + 6
    m.revert(inner)  # the chain is now 3 blocks shorter than the index
    m.post(requester, n=10)
    ix.sync_once()
    cursor = ix.store.cursor()
    assert cursor.number == fork + 4
    # A rebuild keeps the window below its head; the rolled-back index keeps what it had below the
    # fork point (blocks once final are never given undo records afterwards).
    first = _assert_equals_rebuild(env, bookkeeping=False, finality_depth=4)
    assert [e["event"] for e in first] == ["JobPosted"] * 3
    env.client(5).flushdb()
    m.revert(outer)  # fork + 4 - fork = 4 blocks below the cursor: within the finality depth
    for n in range(20, 25):
        m.post(requester, n=n)
    assert m.head() == fork + 5
    ix.sync_once()  # raised ReorgTooDeep: no stored block at or below the fork point
    retractions = _assert_equals_rebuild(env, bookkeeping=False, finality_depth=4)
    assert [e["event"] for e in retractions] == ["JobPosted"] * (3 + 4)  # then the blocks of n=10, 2, 1, 0
    assert all(int(e["block"]) > fork for e in retractions)
