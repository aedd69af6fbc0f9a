"""The eth_getLogs range adapts to the size of the answers, not only to their number of logs: jobs
with big specs (each JobPosted log carries its spec) must not come back as one huge answer."""

from __future__ import annotations

import pytest

from depin.chain import make_web3
from depin.chain.logs import AnswerTooLarge, LogFetcher
from indexer.follower import Indexer

from .services import ChainEnv, FlakyProxy, dump

SPEC_BYTES = 12_000  # each JobPosted log carries the spec: about 24 kB of hex
JOBS = 24
BUDGET = 100_000  # bytes: four such logs


def _post_big_jobs(env: ChainEnv) -> tuple[int, int]:
    m = env.market
    requester = m.accounts[1]
    m.fund(requester)
    first = m.head() + 1
    for n in range(JOBS):
        m.post(requester, spec=b"{" + bytes([97 + n % 26]) * SPEC_BYTES + b"}")
    return first, m.head()


def _index_through(env: ChainEnv, proxy: FlakyProxy, db: int, *, web3_path: bool = False, **overrides: object) -> Indexer:
    config = env.config(db, rpc_url=proxy.url, finality_depth=2, max_range=5000, ws_url="off", **overrides)
    ix = Indexer(config, web3=make_web3(proxy.url) if web3_path else None)
    ix.sync_once()
    return ix


@pytest.mark.parametrize("web3_path", [False, True], ids=["logfetcher", "web3"])
def test_getlogs_answers_stay_within_the_byte_budget(chain_env: ChainEnv, web3_path: bool) -> None:
    env = chain_env
    first, last = _post_big_jobs(env)
    env.market.mine(10)  # the jobs' blocks are final: the pipelined backfill reads them
    proxy = FlakyProxy(env.anvil.url)
    try:
        # Without a byte budget (the old behaviour) the range grows on the few logs, and answers
        # carry many big specs at once.
        _index_through(env, proxy, 1, web3_path=web3_path, max_logs_bytes=0)
        unbounded = max(size for _, _, size in proxy.log_answers)
        assert unbounded > 3 * BUDGET
        proxy.log_answers.clear()
        _index_through(env, proxy, 0, web3_path=web3_path, max_logs_bytes=BUDGET)
        answers = list(proxy.log_answers)
    finally:
        proxy.close()
    assert dump(env.client(0), env.keys, bookkeeping=False) == dump(env.client(1), env.keys, bookkeeping=False)
    # An answer over the budget is dropped (the LogFetcher stops at its Content-Length) and asked
    # again from the same block over half the range; once an answer showed how large the logs are,
    # the range aims at a quarter of the budget and no answer exceeds it again. Every block of the
    # jobs was read in answers within the budget.
    for i, (start, end, size) in enumerate(answers):
        if size > BUDGET:
            again = next(a for a in answers[i + 1 :] if a[0] == start)
            assert again[1] - again[0] + 1 == (end - start + 1) // 2, (answers[i], again)
    dense = next(i for i, (_, _, size) in enumerate(answers) if BUDGET // 4 < size <= BUDGET)
    assert all(size <= BUDGET for _, _, size in answers[dense:]), answers
    used = [(s, e) for s, e, size in answers if size <= BUDGET]
    assert all(any(s <= b <= e for s, e in used) for b in range(first, last + 1))


def test_log_fetcher_refuses_an_answer_over_max_bytes(chain_env: ChainEnv) -> None:
    env = chain_env
    first, last = _post_big_jobs(env)
    market = env.deployment.addresses["JobMarket"]
    fetcher = LogFetcher(env.anvil.url, 10)
    whole = fetcher.get_logs(first, last, [market])
    size = fetcher.last_bytes
    assert len(whole) == JOBS and size > JOBS * 2 * SPEC_BYTES
    with pytest.raises(AnswerTooLarge, match="exceeds the budget") as info:
        fetcher.get_logs(first, last, [market], max_bytes=size - 1)
    assert info.value.size == size
    assert fetcher.get_logs(first, last, [market], max_bytes=size) == whole
