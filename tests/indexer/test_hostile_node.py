"""A node whose eth_getLogs answer lacks logs its headers promise (h-r3's review).

A load-balanced node whose log backend lags its headers answers ``[]`` for the newest block for a
moment (a known behaviour of hosted providers). Unlike logs of the wrong fork (their blockHash
gives them away: test_chain_races), an answer that is merely missing logs carries nothing to
compare: the indexer commits the block without its events and the cursor moves past it. The
header's ``logsBloom`` (the indexer fetches every header near the head) says the block has logs of
the market: the batch could be fetched again."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from indexer.follower import LAGGING_LOGS_RETRIES, bloom_bits, bloom_promises

from .services import ChainEnv, FlakyProxy, dump


def test_logs_missing_from_a_lagging_log_backend_are_not_lost(chain_env: ChainEnv) -> None:
    """The proxy drops the logs of the block holding a JobPosted from the first eth_getLogs answer
    that covers it (once; later answers are whole). The index must still end equal to a rebuild."""
    env, m = chain_env, chain_env.market
    requester = m.accounts[1]
    m.fund(requester)
    proxy = FlakyProxy(env.anvil.url)
    try:
        ix = env.indexer(0, rpc_url=proxy.url)
        ix.sync_once()
        job = m.post(requester, n=1)
        posted = m.head()
        dropped: list[int] = []

        def lagging_backend(params: list[Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            flt = params[0]
            if not dropped and int(flt["fromBlock"], 16) <= posted <= int(flt["toBlock"], 16):
                kept = [log for log in logs if int(log["blockNumber"], 16) != posted]
                dropped.append(len(logs) - len(kept))
                return kept
            return logs

        proxy.inject = lagging_backend
        ix.sync_once()
        ix.sync_once()  # a later poll does not help: the cursor is past the block
    finally:
        proxy.close()
    assert dropped and dropped[0] > 0
    r, k = env.client(0), env.keys
    env.rebuild(1)
    assert r.hget(k.job(job), "status") == "Open", "the job the executors would claim is not in the index"
    assert dump(r, k) == dump(env.client(1), k)


def _drop_block(block: int, times: int, dropped: list[int]) -> Any:
    """An inject that drops `block`'s logs from the first `times` eth_getLogs answers covering it."""

    def inject(params: list[Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        flt = params[0]
        if len(dropped) < times and int(flt["fromBlock"], 16) <= block <= int(flt["toBlock"], 16):
            kept = [log for log in logs if int(log["blockNumber"], 16) != block]
            dropped.append(len(logs) - len(kept))
            return kept
        return logs

    return inject


def test_a_block_whose_logs_never_come_is_taken_after_the_retries(chain_env: ChainEnv, caplog: pytest.LogCaptureFixture) -> None:
    """A block whose bloom promises market logs the node never returns (as for a bloom false
    positive) holds the cursor before it for LAGGING_LOGS_RETRIES passes, and no longer: the blocks
    before it are committed at once, the block itself (without the logs) on the last retry, with a
    warning."""
    env, m = chain_env, chain_env.market
    requester = m.accounts[1]
    m.fund(requester)
    proxy = FlakyProxy(env.anvil.url)
    try:
        ix = env.indexer(0, rpc_url=proxy.url)
        ix.sync_once()
        before = m.head()
        m.mine(1)
        m.post(requester, n=1)
        posted = m.head()
        m.mine(1)
        dropped: list[int] = []
        proxy.inject = _drop_block(posted, 1_000, dropped)
        with caplog.at_level(logging.WARNING, logger="indexer"):
            for _ in range(LAGGING_LOGS_RETRIES):
                ix.sync_once()
                assert ix.store.cursor().number == posted - 1 > before  # the blocks before it are in
                assert not [rec for rec in caplog.records if "false positive" in rec.getMessage()]
            ix.sync_once()
    finally:
        proxy.close()
    assert len(dropped) == LAGGING_LOGS_RETRIES + 1 and all(dropped)
    assert ix.store.cursor().number == posted + 1
    assert len([rec for rec in caplog.records if "false positive" in rec.getMessage()]) == 1
    assert not env.client(0).exists(env.keys.job(1))  # the events the node never gave


def test_logs_missing_from_a_final_batchs_last_block_are_fetched_again(chain_env: ChainEnv) -> None:
    """A final batch (backfilled, two headers) whose last block's logs the first answer lacks is
    held whole and fetched again on the next pass: the index ends equal to a rebuild."""
    env, m = chain_env, chain_env.market
    requester = m.accounts[1]
    m.fund(requester)
    proxy = FlakyProxy(env.anvil.url)
    try:
        ix = env.indexer(0, rpc_url=proxy.url, finality_depth=2)
        ix.sync_once()
        cursor = ix.store.cursor()
        m.post(requester, n=1)
        posted = m.head()
        m.mine(2 * 2)  # the posted block is now head - 2 * finality_depth: the last final block
        dropped: list[int] = []
        proxy.inject = _drop_block(posted, 1, dropped)
        ix.sync_once()
        assert dropped == [1] and ix.store.cursor() == cursor  # held whole
        ix.sync_once()
    finally:
        proxy.close()
    r, k = env.client(0), env.keys
    assert r.hget(k.job(1), "status") == "Open"
    env.rebuild(1, finality_depth=2)
    assert dump(r, k) == dump(env.client(1), k)


def test_a_bloom_is_trusted_only_while_it_is_sparse() -> None:
    """bloom_bits follows the yellow paper's 3-of-2048 rule (a known vector: the bloom of the zero
    address); bloom_promises needs an indexed address and an indexed topic, and refuses a bloom so
    full that they would match by chance (a busy block: every bit set)."""
    zero = bloom_bits(b"\x00" * 20)
    assert zero.bit_count() == 3
    assert zero == sum(1 << n for n in (896, 1665, 1975))  # bits of keccak256(20 zero bytes): 0x5380c7b7ae81a58e...
    addresses = [bloom_bits(bytes([i]) * 20) for i in range(1, 4)]
    topics = [bloom_bits(bytes([i]) * 32) for i in range(1, 40)]
    assert bloom_promises(addresses[1] | topics[7], addresses, topics)
    assert not bloom_promises(addresses[1] | bloom_bits(b"\xee" * 32), addresses, topics)  # another event
    assert not bloom_promises(topics[7], addresses, topics)  # another contract
    assert not bloom_promises((1 << 2048) - 1, addresses, topics)
