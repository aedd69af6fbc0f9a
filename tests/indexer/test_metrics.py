"""The indexer process's Prometheus metrics (``python -m indexer --metrics-port``): scraped over HTTP
and parsed with prometheus_client's parser while the indexer follows a real anvil; events, commits
and a reorg move the counters."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from depinctl.procs import free_port

from .services import ChainEnv, indexer_env, start_indexer_process, wait_for


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        response = requests.get(url, timeout=2)
    except requests.RequestException:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_events_commits_lag_and_reorgs_are_counted(chain_env: ChainEnv) -> None:
    env, m = chain_env, chain_env.market
    requester = m.accounts[1]
    m.fund(requester)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    proc = start_indexer_process(
        indexer_env(env.anvil.url, env.redis.url(0), env.deployment_file, DEPIN_CONFIRMATIONS=0),
        "--metrics-port", str(port), log_file=env.tmp / "indexer.log",
    )
    events = ("depin_indexer_events_total", (("kind", "event"),))
    try:
        # indexer.metrics.progress sets the cursor, then the lags (a scrape may fall between): waits for all
        lags = (("depin_indexer_head_lag_blocks", ()), ("depin_indexer_head_lag_seconds", ()))
        first = wait_for(lambda: (s := scrape(url)) and s.get(("depin_indexer_cursor_block", ()), 0) >= m.head()
                         and all(s.get(lag) == 0 for lag in lags) and s, 60, "the indexer to catch up (no lag) and serve metrics")
        applied_before = first[events]
        commits_before = first[("depin_indexer_redis_commit_seconds_count", ())]
        assert commits_before >= 1 and first[("depin_indexer_reorgs_total", ())] == 0
        snap = m.snapshot()
        m.post(requester, n=1)
        m.post(requester, n=2)
        after = wait_for(lambda: (s := scrape(url)) and s.get(events, 0) >= applied_before + 2
                         and s.get(("depin_indexer_redis_commit_seconds_count", ()), 0) > commits_before and s, 30,
                         "two JobPosted events and their commits")
        assert after[("depin_indexer_head_block", ())] >= m.head() - 1
        m.revert(snap)  # the two posts are orphaned; a different block replaces them
        m.post(requester, n=3)
        m.post(requester, n=4)  # the new branch outgrows the old head
        m.post(requester, n=5)
        # indexer.metrics.reorg counts the reorg, then its blocks, then its retractions (a scrape may fall
        # between): the one scrape that shows all three
        wait_for(lambda: (s := scrape(url)) and s.get(("depin_indexer_reorgs_total", ()), 0) >= 1
                 and s.get(("depin_indexer_rolled_back_blocks_total", ()), 0) >= 1
                 and s.get(("depin_indexer_events_total", (("kind", "retraction"),)), 0) >= 2, 30,
                 "a reorg, its rolled-back blocks and the two retractions")
    finally:
        proc.terminate()
        proc.wait(15)
