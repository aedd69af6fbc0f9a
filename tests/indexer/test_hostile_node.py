"""A node whose eth_getLogs answer lacks logs its headers promise (h-r3's review).

A load-balanced node whose log backend lags its headers answers ``[]`` for the newest block for a
moment (a known behaviour of hosted providers). Unlike logs of the wrong fork (their blockHash
gives them away: test_chain_races), an answer that is merely missing logs carries nothing to
compare: the indexer commits the block without its events and the cursor moves past it. The
header's ``logsBloom`` (the indexer fetches every header near the head) says the block has logs of
the market: the batch could be fetched again."""

from __future__ import annotations

from typing import Any

import pytest

from .services import ChainEnv, FlakyProxy, dump


@pytest.mark.xfail(strict=True, reason="an eth_getLogs answer missing the newest block's logs is committed: the events are lost for good (no logsBloom check)")
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
