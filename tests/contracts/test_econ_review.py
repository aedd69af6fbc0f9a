"""Adversarial economic review (emissions, staking, slashing, withdrawals): defects reproduced on
anvil, each marked xfail(strict) until a fix lands (then kept as a regression test).

1. Verifier stake lockout (mitigated, now a regression test): an attacker tied up every honest
   verifier's free stake with cheap self-dealt audits, which held each auditor's sigma * R reserve
   until their (long) challenge deadlines. A lazy provider's drawn job then found no verifier that
   could sit (StakeBelowSigma), neither for the audit nor for the jury a victim's challenge asks
   for, and the case settled Unaudited. The reserve now goes back after the canary window
   (releaseReserve); only the bond stays locked, so the lockout needs sigma R / B_a (5.7) times as
   many audits; the test asserts that bound.
2. Rounding: below 50 base units of reward (f = 2 %, no-fault fee 2 %) every fee rounds to 0, so an
   availability failure is a free exit for both sides (F6 says it never is).
"""

from __future__ import annotations

import pytest
from eth_utils import keccak

from .conftest import TOKEN, make_spec, make_terms
from .test_court import (
    B_AUDIT,
    BAD,
    GOOD,
    GOOD_OF,
    SIGMA_R,
    Court,
    params_tuple,
    reverts_with,
)
from .test_market import b32, reverts

ACTIVE, TALLIED = 1, 2


class ReviewDefect(AssertionError):
    """The property a defect breaks (xfail's `raises`: any other failure still fails the test)."""


def defect(holds: bool, message: str) -> None:
    if not holds:
        raise ReviewDefect(message)
# Each honest verifier stakes enough for one case's sigma R reserve (plus change): the devnet's
# members stake 2 sigma R at the largest reward (2,000 tokens, sigma * maxReward = 1,000).
SMALL = SIGMA_R + 100 * TOKEN
LONG_WINDOW = 10_000  # seconds: the attacker's own jobs' challenge windows (sepolia allows 172,800)


@pytest.fixture(scope="module")
def lockout(accounts, project, chain):
    """A court over the market stub with two honest verifiers of SMALL stake each; `victim` is an
    honest requester, `cheat` the attacker's provider and `sponsor` the attacker's requester."""
    owner, victim, cheat, v1, v2, sponsor, x1, x2, x3, x4 = accounts[:10]
    token = project.RewardToken.deploy("Test", "TST", 10**30, owner, 0, sender=owner)
    token.grantRole(token.MINTER_ROLE(), owner, sender=owner)
    rand = project.StubRandomness.deploy(sender=owner)
    market = project.MarketStub.deploy(token, rand, 1, sender=owner)
    engine = project.CourtEngine.deploy(sender=owner)
    court = project.VerificationCourt.deploy(market, token, owner, params_tuple(), engine, sender=owner)
    token.mint(market, 100_000 * TOKEN, sender=owner)
    for acct in (victim, cheat, v1, v2, sponsor, x1, x2, x3, x4):
        token.mint(acct, 100_000 * TOKEN, sender=owner)
        token.approve(court, 2**256 - 1, sender=acct)
    ctx = Court(chain, token, market, court, owner, victim, cheat, [v1, v2], [sponsor, x1, x2, x3, x4])
    for v in (v1, v2):
        court.join(SMALL, 0, sender=v)
    chain.mine(3)  # past activationDelayBlocks
    return ctx


def _attack(c, sponsor, honest: set[str], per_verifier: int, max_jobs: int = 60) -> tuple[dict[str, int], list[int]]:
    """Self-dealt jobs (sponsor -> cheat) with a long challenge window, answered honestly, until each
    honest verifier audited `per_verifier` of them or can no longer sit (free < sigma R). After each
    agreeing audit's canary window its reserve goes back (releaseReserve: what the verifier's
    executor sends); only its bond B_a stays locked until the job's challenge deadline."""
    audits = dict.fromkeys(honest, 0)
    jobs: list[int] = []
    for _ in range(max_jobs):
        if all(n >= per_verifier or c.court.getVerifier(v).free < SIGMA_R for v, n in audits.items()):
            break
        job = c.job(GOOD, requester=sponsor, challenge_window=LONG_WINDOW)
        GOOD_OF[job] = GOOD
        drawn = c.court.drawnFor(job, 0, 0)
        if audits[drawn] >= per_verifier or c.court.getVerifier(drawn).free < SIGMA_R:
            continue
        c.audit(job, GOOD)
        assert c.case(job).phase == TALLIED  # until the job's challenge deadline, LONG_WINDOW away
        c.wait_until(c.case(job).canaryEnd)
        c.tx(c.court.releaseReserve, job, sender=c.known[drawn])
        audits[drawn] += 1
        jobs.append(job)
    return audits, jobs


def test_the_stake_lockout_needs_one_bond_per_audit_not_sigma_r_since_the_reserve_goes_back(lockout):
    """Review (stake lockout): each self-dealt agreeing audit kept its auditor's sigma R = 20 R locked
    until the job's challenge deadline, so ONE audit per honest verifier (cost ~A = 1.1 R each)
    locked the pool for the whole window and a drawn lazy job settled Unaudited. The canary reserve
    (sigma R - B_a) now goes back once the canary window is over (releaseReserve); only the bond
    B_a = 3.5 R stays locked till the deadline. (1) The reviewer's attack (one audit per verifier)
    no longer locks anybody: the lazy job is audited and goes to a jury. (2) The residual: a
    verifier of stake S is locked out by floor((S - sigma R) / B_a) + 1 concurrent audits instead of
    floor(S / sigma R) (here 3 instead of 1), i.e. the attack costs sigma R / B_a = 5.7 times more
    per locked sigma R and window."""
    c = lockout
    GOOD_OF.clear()
    c.bonds, c.forfeited = 0, {}
    sponsor = c.others[0]
    honest = {v.address for v in c.verifiers}

    # (2) first, on fresh stakes: how many concurrent audits lock a verifier out now.
    needed = (SMALL - SIGMA_R) // B_AUDIT + 1
    assert (needed, SMALL // SIGMA_R) == (3, 1)  # now vs before the release
    audits, jobs = _attack(c, sponsor, honest, per_verifier=needed + 1)
    assert audits == dict.fromkeys(honest, needed)
    for v in c.verifiers:
        info = c.court.getVerifier(v)
        assert info.locked == needed * B_AUDIT and info.free == SMALL - needed * B_AUDIT < SIGMA_R
    lazy = c.job(BAD, requester=c.requester, challenge_window=200)
    GOOD_OF[lazy] = BAD
    with reverts_with("StakeBelowSigma"):  # the residual lockout, at `needed` audits per verifier
        c.court.startAudit(lazy, sender=c.known[c.court.drawnFor(lazy, 0, 0)])
    # The attacker's jobs conclude at their challenge deadlines: every bond goes back.
    c.wait_until(max(c.case(j).windowEnd for j in jobs))
    for j in jobs:
        c.advance(j)
    for v in c.verifiers:
        assert c.court.getVerifier(v).free == SMALL

    # (1) the reviewer's attack: one self-dealt audit per honest verifier.
    audits, _ = _attack(c, sponsor, honest, per_verifier=1)
    assert audits == dict.fromkeys(honest, 1)
    for v in c.verifiers:
        assert c.court.getVerifier(v).free == SMALL - B_AUDIT >= SIGMA_R  # room for another case
    lazy = c.job(BAD, requester=c.requester, challenge_window=200)
    GOOD_OF[lazy] = BAD
    drawn = c.known[c.court.drawnFor(lazy, 0, 0)]
    assert drawn.address in honest
    c.audit(lazy, GOOD)  # the drawn verifier sits and runs the job: it disagrees
    case = c.case(lazy)
    assert case.phase == ACTIVE and case.round == 1  # its K = 3 jury: before, StakeBelowSigma and Unaudited


def test_an_availability_failure_is_never_a_free_exit_even_for_a_tiny_reward(market, staking, requester, provider, funded, registered):
    """Fees are floor(R * bps / 10000): below 50 base units of reward an availability failure cost
    neither side anything (F6) and a wash job paid no fee (review). A reward below 10,000 base units
    (JobMarketState._MIN_REWARD) is refused; at that minimum every fee is at least 1 unit."""
    spec = make_spec(4242)
    for tiny in (0, 49, 9_999):
        with reverts(market.TermOutOfBounds, name=b32("reward"), value=tiny, min=10_000, max=market.maxReward()):
            market.postJob(keccak(spec), spec, make_terms(reward=tiny), sender=requester)
    reward = 10_000
    market.postJob(keccak(spec), spec, make_terms(reward=reward), sender=requester)
    job = market.jobCount()
    market.claimJob(job, sender=provider)
    staked = staking.getProvider(provider).staked
    tx = market.submitFailure(job, 1, keccak(b"commitment"), sender=provider)  # ImageUnavailable
    ev = tx.decode_logs(market.NoFaultFailure)[0]
    assert ev.reopened
    assert staking.getProvider(provider).staked == staked - ev.providerFee
    # F6 (JobMarketState._MIN_NO_FAULT_FEE_BPS): each side pays at least 0.5 % of R, never 0.
    defect(ev.providerFee > 0 and ev.requesterFee > 0, f"no-fault fees {ev.providerFee}, {ev.requesterFee}")
