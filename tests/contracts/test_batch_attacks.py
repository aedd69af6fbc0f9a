"""JobMarket's batch calls attacked as a colluding requester or provider would (review h-batch, stop 44).

What the batch calls promise (IJobMarket): postJobs, claimJobs and submitResults are all or
nothing (one entry that would revert alone reverts the batch); finalizeMany skips every entry it
cannot finalize. These tests hold them to it with the entries an attacker would pick: a repeated
id, an id that is not the caller's, an unknown id, a batch that straddles a deadline or the
caller's stake, and check that no job is paid, locked or counted twice (the money by a Ledger,
the market's header invariant after each).
"""

from __future__ import annotations

from eth_utils import keccak

from .conftest import TOKEN, make_spec
from .test_market import (  # noqa: F401  (everyone and ledger are fixtures used by name)
    CLAIMED,
    COLLATERAL,
    FINALIZED,
    OPEN,
    REBATE,
    REWARD,
    SUBMITTED,
    TERMS,
    assert_market_invariant,
    drawn_by,
    everyone,
    ledger,
    past_window,
    reverts,
)

MIN_STAKE = 100 * TOKEN  # deployments/parameters.toml, devnet: staking.min_stake


def _post(market, requester, count: int, first_n: int) -> list[int]:
    posts = [(keccak(make_spec(n)), make_spec(n), tuple(TERMS)) for n in range(first_n, first_n + count)]
    market.postJobs(posts, sender=requester)
    last = market.jobCount()
    return list(range(last - count + 1, last + 1))


def _finalized(market, tx) -> list[int]:
    return [log.jobId for log in tx.decode_logs(market.JobFinalized) if log.contract_address == market.address]


def test_finalize_many_pays_each_job_once_whatever_ids_it_is_given(
    chain, market, token, randomness, owner, requester, provider, stranger, registered, ledger, everyone
):
    """finalizeMany with every id an attacker could add: each ready job twice, id 0, an unknown id,
    a job still Claimed and one still Open. Each ready job is finalized once (one JobFinalized, one
    payout, its collateral unlocked once, one completed job); the others are skipped untouched."""
    a, b, claimed, open_ = _post(market, requester, 4, 500)
    market.claimJobs([a, b, claimed], sender=provider)
    market.submitResults([(a, keccak(b"a"), "u"), (b, keccak(b"b"), "u")], sender=provider)
    # One anchor block for both (submitted together): a value that draws neither.
    job = market.getJob(a)
    value = next(v.to_bytes(32, "big") for v in range(1, 10_000) if not any(drawn_by(v.to_bytes(32, "big"), i, job.auditBps) for i in (a, b)))
    randomness.setValue(job.anchorBlock, value, sender=owner)
    past_window(chain, market, b)
    before = ledger()
    tx = market.finalizeMany([a, a, 0, claimed, b, 999_999, b, open_, a], sender=stranger)
    assert sorted(_finalized(market, tx)) == [a, b]
    assert [market.getJob(i).status for i in (a, b, claimed, open_)] == [FINALIZED, FINALIZED, CLAIMED, OPEN]
    changes = before.changes()
    assert changes["credit.provider"] == 2 * (REWARD + REBATE)
    assert changes["locked.provider"] == -2 * COLLATERAL
    assert changes["completed.provider"] == 2
    # Again: nothing left to finalize, nothing moves (an empty list too: skip semantics, no EmptyBatch).
    before = ledger()
    assert _finalized(market, market.finalizeMany([a, b, a], sender=stranger)) == []
    assert _finalized(market, market.finalizeMany([], sender=stranger)) == []
    assert before.changes() == {}
    assert_market_invariant(market, token, everyone)


def test_claim_jobs_whose_sum_exceeds_the_stake_reverts_whole_though_each_fits(
    market, staking, requester, provider, registered, ledger
):
    """One lock for the sum: a batch the provider's free stake cannot hold reverts as a whole
    (InsufficientStake), though each job fits alone; the jobs stay Open and nothing is locked."""
    a, b = _post(market, requester, 2, 510)
    info = staking.getProvider(provider)
    # leave the minimum plus one and a half collaterals free
    staking.requestUnstake(info.staked - info.locked - MIN_STAKE - COLLATERAL * 3 // 2, sender=provider)
    before = ledger()
    with reverts(staking.InsufficientStake, provider=provider.address, available=MIN_STAKE + COLLATERAL * 3 // 2, needed=2 * COLLATERAL + MIN_STAKE):
        market.claimJobs([a, b], sender=provider)
    assert [market.getJob(i).status for i in (a, b)] == [OPEN, OPEN] and before.changes() == {}
    market.claimJob(a, sender=provider)  # alone it fits
    assert before.changes() == {"locked.provider": COLLATERAL}


def test_submit_results_straddling_a_submit_deadline_reverts_whole(chain, market, requester, provider, registered, ledger):
    """A batch of results one of whose jobs is past its submit deadline reverts as a whole
    (TooLate), naming that job; the job still in time is then submitted alone."""
    early = _post(market, requester, 1, 520)[0]
    market.claimJob(early, sender=provider)
    chain.pending_timestamp = market.getJob(early).deadline - 10
    chain.mine()
    late = _post(market, requester, 1, 521)[0]
    market.claimJob(late, sender=provider)
    deadline = market.getJob(early).deadline
    chain.pending_timestamp = deadline + 1
    before = ledger()
    with reverts(market.TooLate, jobId=early, deadline=deadline, nowTime=deadline + 1):
        market.submitResults([(late, keccak(b"l"), "u"), (early, keccak(b"e"), "u")], sender=provider)
    assert [market.getJob(i).status for i in (early, late)] == [CLAIMED, CLAIMED] and before.changes() == {}
    market.submitResult(late, keccak(b"l"), "u", sender=provider)
    assert market.getJob(late).status == SUBMITTED


def test_submit_results_with_a_repeated_id_reverts_whole(market, requester, provider, registered):
    """The second entry of a repeated id finds the job Submitted: the batch reverts, so a provider
    cannot replace its commitment within one transaction (the first one would otherwise stand
    with the second's URI, or the other way round)."""
    a, b = _post(market, requester, 2, 530)
    market.claimJobs([a, b], sender=provider)
    with reverts(market.WrongStatus, jobId=a, actual=SUBMITTED, expected=CLAIMED):
        market.submitResults([(a, keccak(b"1"), "u1"), (b, keccak(b"b"), "u"), (a, keccak(b"2"), "u2")], sender=provider)
    assert [market.getJob(i).status for i in (a, b)] == [CLAIMED, CLAIMED]


def test_claim_jobs_against_a_front_run_claim_reverts_before_locking(market, requester, provider, provider2, registered):
    """A competitor that claims one job of a provider's batch first (the common race of a busy
    market) makes the batch revert: all or nothing, as documented. The batch then fails in its
    first pass, which only reads each job, not after writing every claim: the honest provider pays
    for reads, not for n claims. Measured: the reverted batch of ten uses less than half the
    gas of the same batch mined (55,200 against 137,432 gas)."""
    ids = _post(market, requester, 10, 540)
    market.claimJob(ids[-1], sender=provider2)  # the competitor, first
    tx = market.claimJobs(ids, sender=provider, raise_on_revert=False, gas=3_000_000)
    assert tx.failed
    reverted = tx.gas_used
    others = _post(market, requester, 10, 560)
    ok = market.claimJobs(others, sender=provider)
    assert reverted * 2 < ok.gas_used, (reverted, ok.gas_used)
    assert all(market.getJob(i).status == OPEN for i in ids[:-1])
