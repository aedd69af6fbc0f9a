"""The index a batch leaves is the index the same single calls leave (review h-batch, stop 44).

On one real anvil, two requesters and two providers play the same jobs side by side, in the same
blocks: one pair with postJobs, claimJobs, submitResults and finalizeMany, the other with postJob,
claimJob, submitResult and finalize (same specs, terms, commitments and URIs). The index that a
real redis-server holds after one indexer pass must then say the same about each pair's jobs,
providers and accounts, once the names (ids, addresses) and the transaction coordinates (hash,
log index) are set aside; and it must agree with the chain's own views.
"""

from __future__ import annotations

import json
from typing import Any

from eth_utils import keccak

from depin.spec import example_spec

from .services import TOKEN, ChainEnv, Terms, stream_entries

GAS = 3_000_000
# (terms, result URI) of the jobs each side plays, in order; all verify none (never drawn: the two
# sides' job ids differ, and so would their draws).
PLAYED = [
    (Terms(reward=10 * TOKEN), "http://results.local/r/a"),
    (Terms(reward=3 * TOKEN + 7, collateral_pct=500), "ipfs://bafy-b"),
    (Terms(reward=TOKEN, challenge_window=45, max_runtime=120), "http://results.local/r/c"),
]
FROM_CREDIT = [Terms(reward=2 * TOKEN), Terms(reward=5 * TOKEN + 1, collateral_pct=450)]  # left Open
# Fields that name the job, its parties or a transaction, not its state.
NAMES = {"id", "requester", "provider", "providers", "postedTx", "address", "capabilityHash", "endpoint", "registeredBlock"}


def _normal(h: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in h.items() if k not in NAMES}
    if "history" in out:
        out["history"] = [{k: v for k, v in e.items() if k not in ("tx", "logIndex")} for e in json.loads(out["history"])]
    return out


def test_batch_calls_index_like_the_same_single_calls(chain_env: ChainEnv) -> None:
    m = chain_env.market
    r_batch, r_single, p_batch, p_single = m.accounts[1:5]
    for a in (r_batch, r_single, p_batch, p_single):
        m.fund(a)
    m.register(p_batch, endpoint="http://provider.local:8700")
    m.register(p_single, endpoint="http://provider.local:8700")
    specs = [example_spec(900 + k) for k in range(len(PLAYED))]
    results = [(keccak(text=f"commitment-{k}"), uri) for k, (_, uri) in enumerate(PLAYED)]
    first = m.job_count() + 1
    batch_ids = list(range(first, first + len(PLAYED)))
    single_ids = list(range(first + len(PLAYED), first + 2 * len(PLAYED)))

    def side_by_side(batch: Any, singles: list[Any]) -> None:
        """The batch call and the single calls in one block (the batch first)."""
        sent = m.send_bulk([batch, *singles], per_block=1 + len(singles))
        block = m.block(sent.first_block)
        assert len(block["transactions"]) == 1 + len(singles), "both sides were meant to share a block"

    posts = [(keccak(s), s, t.as_tuple()) for s, (t, _) in zip(specs, PLAYED, strict=True)]
    side_by_side(
        m.tx(r_batch, "JobMarket", "postJobs", posts, gas=GAS),
        [m.tx(r_single, "JobMarket", "postJob", *p, gas=GAS) for p in posts],
    )
    side_by_side(
        m.tx(p_batch, "JobMarket", "claimJobs", batch_ids, gas=GAS),
        [m.tx(p_single, "JobMarket", "claimJob", i, gas=GAS) for i in single_ids],
    )
    side_by_side(
        m.tx(p_batch, "JobMarket", "submitResults", [(i, *r) for i, r in zip(batch_ids, results, strict=True)], gas=GAS),
        [m.tx(p_single, "JobMarket", "submitResult", i, *r, gas=GAS) for i, r in zip(single_ids, results, strict=True)],
    )
    m.advance_time(max(t.challenge_window for t, _ in PLAYED) + 1)
    side_by_side(
        m.tx(m.bystander, "JobMarket", "finalizeMany", [*batch_ids, batch_ids[0], 0], gas=GAS),
        [m.tx(m.bystander, "JobMarket", "finalize", i, gas=GAS) for i in single_ids],
    )
    # Escrow from the market balance: each requester's earlier credits (audit fees, none here) plus
    # a deposit of exactly the next posts' escrows.
    p = m.read(m.contracts.job_market.params())
    escrow = sum(t.reward + t.reward * p[9] // 10_000 for t in FROM_CREDIT)  # verify none: R + fee
    for r in (r_batch, r_single):
        m.deposit(r, escrow)
    credit_specs = [example_spec(950 + k) for k in range(len(FROM_CREDIT))]
    credit_posts = [(keccak(s), s, t.as_tuple()) for s, t in zip(credit_specs, FROM_CREDIT, strict=True)]
    side_by_side(
        m.tx(r_batch, "JobMarket", "postJobs", credit_posts, gas=GAS),
        [m.tx(r_single, "JobMarket", "postJob", *cp, gas=GAS) for cp in credit_posts],
    )
    batch_ids += [single_ids[-1] + 1, single_ids[-1] + 2]
    single_ids += [single_ids[-1] + 3, single_ids[-1] + 4]
    assert m.job_count() == single_ids[-1]
    assert [m.withdrawable(r) for r in (r_batch, r_single)] == [0, 0]

    chain_env.rebuild(0)
    r, keys = chain_env.client(0), chain_env.keys
    for b, s in zip(batch_ids, single_ids, strict=True):
        jb, js = r.hgetall(keys.job(b)), r.hgetall(keys.job(s))
        assert _normal(jb) == _normal(js), (b, s)
        assert (jb["requester"].lower(), js["requester"].lower()) == (r_batch.lower(), r_single.lower())
    statuses = [r.hget(keys.job(b), "status") for b in batch_ids]
    assert statuses == ["Finalized"] * len(PLAYED) + ["Open"] * len(FROM_CREDIT), statuses
    assert [int(r.hget(keys.job(b), "fromCredit")) for b in batch_ids[len(PLAYED):]] == [
        t.reward + t.reward * p[9] // 10_000 for t in FROM_CREDIT
    ]
    # the event stream executors read: the same entries for each pair, in the same order
    per_job: dict[int, list[tuple[str, str]]] = {}
    for entry in stream_entries(r, keys):
        args = json.loads(entry.get("args") or "{}")
        if "jobId" in args:
            per_job.setdefault(int(args["jobId"]), []).append((entry["kind"], entry["event"]))
    for b, s in zip(batch_ids, single_ids, strict=True):
        assert per_job[b] == per_job[s] and per_job[b], (b, per_job.get(b), s, per_job.get(s))
    for b, s in ((p_batch, p_single), (r_batch, r_single)):
        assert _normal(r.hgetall(keys.provider(b))) == _normal(r.hgetall(keys.provider(s))), (b, s)
        assert _normal(r.hgetall(keys.account(b))) == _normal(r.hgetall(keys.account(s))), (b, s)
    # and the index agrees with the chain: credits, locked collateral, completed jobs
    for who in (r_batch, r_single, p_batch, p_single):
        assert int(r.hget(keys.account(who), "withdrawable") or 0) == m.withdrawable(who), who
    for who in (p_batch, p_single):
        onchain = m.get_provider(who)
        indexed = r.hgetall(keys.provider(who))
        assert (int(indexed["locked"]), int(indexed["jobsCompleted"])) == (onchain["locked"], onchain["jobsCompleted"]), who
