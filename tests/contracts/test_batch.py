"""JobMarket's batch calls (issue 15): postJobs, claimJobs, submitResults (finalizeMany is in
test_market.py), and setParams running in JobMarketGovernance's code.

Each batch call must leave the chain exactly as the same single calls would (every job's fields,
one event per job, the same money moved), pay or lock once for the whole batch, and revert as a
whole when any one job in it would revert alone.
"""

from __future__ import annotations

import pytest
from ape import project
from eth_utils import keccak
from web3.utils.address import get_create_address

from .conftest import make_spec
from .test_market import (  # noqa: F401  (everyone and ledger are fixtures used by name)
    AUDIT_FEE,
    BPS,
    CLAIMED,
    COLLATERAL,
    ESCROW,
    FEE,
    FINALIZED,
    OPEN,
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

TERMS_NONE = TERMS._replace(verify_mode=1, collateral_pct=500)  # verify-none: no audit fee
ESCROW_NONE = REWARD + FEE


def batch(first: int, count: int = 3) -> list[tuple[bytes, bytes, tuple]]:
    """`count` JobPost tuples with distinct specs; the second is verify-none."""
    out = []
    for n in range(first, first + count):
        spec = make_spec(n)
        terms = TERMS_NONE if n == first + 1 else TERMS
        out.append((keccak(spec), spec, tuple(terms)))
    return out


def escrow_of(posts: list[tuple[bytes, bytes, tuple]]) -> int:
    return sum(ESCROW_NONE if t[6] == 1 else ESCROW for _, _, t in posts)


def posted(market, tx) -> list:
    return [log for log in tx.decode_logs(market.JobPosted) if log.contract_address == market.address]


@pytest.fixture
def posted_batch(market, requester, registered):
    """Three jobs posted in one postJobs; returns their ids."""
    market.postJobs(batch(100), sender=requester)
    last = market.jobCount()
    return [last - 2, last - 1, last]


# ------------------------------------------------------------------------------------- postJobs


def test_post_jobs_posts_each_job_as_post_job_would_and_pays_once_from_the_wallet(market, token, requester, registered, ledger, everyone):
    posts = batch(10)
    before = ledger()
    first = market.jobCount() + 1
    tx = market.postJobs(posts, sender=requester)
    ids = [first, first + 1, first + 2]
    assert market.jobCount() == ids[-1]
    logs = posted(market, tx)
    assert [log.jobId for log in logs] == ids
    assert [bytes(log.spec) for log in logs] == [p[1] for p in posts]
    assert [bytes(log.specHash) for log in logs] == [p[0] for p in posts]
    assert [log.fromCredit for log in logs] == [0, 0, 0]
    # one transfer for the whole batch's escrow
    transfers = [t for t in tx.decode_logs(token.Transfer) if t.contract_address == token.address]
    assert len(transfers) == 1 and transfers[0].value == escrow_of(posts)
    assert before.changes() == {"market": escrow_of(posts), "requester": -escrow_of(posts)}
    for job_id, (_, _, terms) in zip(ids, posts, strict=True):
        job = market.getJob(job_id)
        assert (job.status, job.requester) == (OPEN, requester.address)
        assert (job.reward, job.collateralPct, job.verifyMode) == (terms[0], terms[4], terms[6])
        assert job.auditFee == (0 if terms[6] == 1 else AUDIT_FEE)
    assert_market_invariant(market, token, everyone)


def test_post_jobs_pays_from_credit_only_when_it_covers_the_whole_batch(market, token, requester, registered, ledger, everyone):
    posts = batch(20)
    total = escrow_of(posts)
    market.deposit(total - 1, sender=requester)
    before = ledger()
    tx = market.postJobs(posts, sender=requester)  # one base unit short: all from the wallet
    assert [log.fromCredit for log in posted(market, tx)] == [0, 0, 0]
    assert before.changes() == {"market": total, "requester": -total}
    market.deposit(total + 1, sender=requester)
    before = ledger()
    tx = market.postJobs(batch(30), sender=requester)
    assert [log.fromCredit for log in posted(market, tx)] == [ESCROW, ESCROW_NONE, ESCROW]
    assert before.changes() == {"credit.requester": -total}
    assert_market_invariant(market, token, everyone)


def test_post_jobs_is_all_or_nothing(market, requester, registered, ledger):
    posts = batch(40)
    bad_hash, spec, terms = posts[2][0], posts[1][1], posts[1][2]
    posts[1] = (bad_hash, spec, terms)
    count, before = market.jobCount(), ledger()
    with reverts(market.SpecHashMismatch, expected=bad_hash, actual=keccak(spec)):
        market.postJobs(posts, sender=requester)
    assert market.jobCount() == count and before.changes() == {}
    with reverts(market.EmptyBatch):
        market.postJobs([], sender=requester)


# ------------------------------------------------------------------------------------- claimJobs


def test_claim_jobs_locks_the_sum_of_the_collaterals_once(market, staking, provider, posted_batch, ledger):
    before = ledger()
    tx = market.claimJobs(posted_batch, sender=provider)
    collaterals = [REWARD * 450 // 100, REWARD * 500 // 100, REWARD * 450 // 100]
    assert before.changes() == {"locked.provider": sum(collaterals)}
    logs = [log for log in tx.decode_logs(market.JobClaimed) if log.contract_address == market.address]
    assert [(log.jobId, log.event_arguments["provider"], log.collateral) for log in logs] == [
        (i, provider.address, c) for i, c in zip(posted_batch, collaterals, strict=True)
    ]
    for job_id in posted_batch:
        job = market.getJob(job_id)
        assert (job.status, job.provider) == (CLAIMED, provider.address)
        assert job.deadline == tx.timestamp + TERMS.max_runtime


def test_claim_jobs_reverts_whole_on_a_repeated_taken_or_late_job(chain, market, provider, provider2, posted_batch, ledger):
    a, b, c = posted_batch
    before = ledger()
    with reverts(market.WrongStatus, jobId=a, actual=CLAIMED, expected=OPEN):
        market.claimJobs([a, b, a], sender=provider)
    market.claimJob(b, sender=provider2)
    with reverts(market.WrongStatus, jobId=b, actual=CLAIMED, expected=OPEN):
        market.claimJobs([a, b], sender=provider)
    assert [market.getJob(i).status for i in (a, c)] == [OPEN, OPEN]
    deadline = market.getJob(c).claimDeadline
    chain.pending_timestamp = deadline + 1
    with reverts(market.TooLate, jobId=a, deadline=deadline, nowTime=deadline + 1):
        market.claimJobs([a, c], sender=provider)
    assert before.changes() == {}
    with reverts(market.EmptyBatch):
        market.claimJobs([], sender=provider)


# ------------------------------------------------------------------------------------- submitResults


def test_submit_results_submits_each_job(chain, market, provider, posted_batch):
    market.claimJobs(posted_batch, sender=provider)
    results = [(i, keccak(b"result %d" % i), f"http://provider-1.local:8700/results/{i}") for i in posted_batch]
    tx = market.submitResults(results, sender=provider)
    logs = [log for log in tx.decode_logs(market.ResultSubmitted) if log.contract_address == market.address]
    assert [(log.jobId, log.commitment, log.resultURI) for log in logs] == results
    for job_id, commitment, _ in results:
        job = market.getJob(job_id)
        assert (job.status, job.commitment) == (SUBMITTED, commitment)
        assert job.anchorBlock == tx.block_number + market.drawDelay()


def test_submit_results_reverts_whole_on_another_providers_job_or_an_empty_commitment(market, provider, provider2, posted_batch):
    a, b, c = posted_batch
    market.claimJobs([a, b], sender=provider)
    market.claimJob(c, sender=provider2)
    ok = [(a, keccak(b"a"), "u"), (b, keccak(b"b"), "u")]
    with reverts(market.NotAssignedProvider, jobId=c, caller=provider.address, provider=provider2.address):
        market.submitResults([*ok, (c, keccak(b"c"), "u")], sender=provider)
    with reverts(market.EmptyCommitment):
        market.submitResults([ok[0], (b, b"\x00" * 32, "u")], sender=provider)
    assert [market.getJob(i).status for i in posted_batch] == [CLAIMED, CLAIMED, CLAIMED]
    with reverts(market.EmptyBatch):
        market.submitResults([], sender=provider)


def test_a_batch_round_trip_pays_like_single_jobs_and_conserves_funds(
    chain, market, token, randomness, owner, requester, provider, stranger, posted_batch, ledger, everyone
):
    market.claimJobs(posted_batch, sender=provider)
    market.submitResults([(i, keccak(b"r%d" % i), "u") for i in posted_batch], sender=provider)
    # One anchor block for the three (submitted together): a value that draws none of them.
    jobs = [market.getJob(i) for i in posted_batch]
    value = next(
        v.to_bytes(32, "big")
        for v in range(1, 10_000)
        if not any(drawn_by(v.to_bytes(32, "big"), i, j.auditBps) for i, j in zip(posted_batch, jobs, strict=True))
    )
    randomness.setValue(jobs[0].anchorBlock, value, sender=owner)
    past_window(chain, market, posted_batch[-1])
    before = ledger()
    tx = market.finalizeMany(posted_batch, sender=stranger)
    assert tx.return_value in (3, None)
    assert [market.getJob(i).status for i in posted_batch] == [FINALIZED] * 3
    rebate = FEE * 5_000 // BPS
    changes = before.changes()
    assert changes["credit.provider"] == 3 * (REWARD + rebate)
    assert changes["credit.requester"] == 2 * AUDIT_FEE  # the verify-none job escrowed none
    assert changes["locked.provider"] == -(2 * COLLATERAL + REWARD * 500 // 100)
    assert changes["completed.provider"] == 3
    assert market.pendingBurn() >= 3 * (FEE - rebate)
    assert_market_invariant(market, token, everyone)


# ------------------------------------------------------------------------------------- governance code


def test_the_governance_code_acts_only_through_the_market(chain, market, owner, params, court):
    """setParams runs JobMarketGovernance's code on the market's storage: through the market it adds
    a version (emitted by the market); called directly, the governance contract has no roles."""
    version = market.paramsVersion()
    tx = market.setParams(params.market.as_tuple(court.address), sender=owner)
    assert market.paramsVersion() == version + 1
    logs = tx.decode_logs(market.MarketParamsUpdated)
    assert [(log.contract_address, log.version) for log in logs] == [(market.address, version + 1)]
    # The market created ProviderStaking (nonce 1) and then JobMarketGovernance (nonce 2).
    governance = get_create_address(market.address, 2)
    assert len(chain.provider.get_code(governance)) > 0
    direct = project.JobMarketGovernance.at(governance)
    with reverts(direct.AccessControlUnauthorizedAccount, account=owner.address, neededRole=market.GOVERNOR_ROLE()):
        direct.setParams(params.market.as_tuple(court.address), sender=owner)
    assert market.paramsVersion() == version + 1
