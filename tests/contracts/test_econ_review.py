"""Adversarial economic review (emissions, staking, slashing, withdrawals): defects reproduced on
anvil, each marked xfail(strict) until a fix lands (the production contracts are not changed here).

1. Verifier stake lockout: an attacker ties up every honest verifier's free stake with cheap
   self-dealt audits, which hold each auditor's sigma * R reserve until their (long) challenge
   deadlines. A lazy provider's drawn job then finds no verifier that can sit (StakeBelowSigma),
   neither for the audit nor for the jury a victim's challenge asks for, and the case settles
   Unaudited: the provider is paid as if it had been verified.
2. Rounding: below 50 base units of reward (f = 2 %, no-fault fee 2 %) every fee rounds to 0, so an
   availability failure is a free exit for both sides (F6 says it never is).
"""

from __future__ import annotations

import pytest
from eth_utils import keccak

from .conftest import TOKEN, make_spec, make_terms
from .test_court import (
    B_CHALLENGE,
    BAD,
    GOOD,
    GOOD_OF,
    SIGMA_R,
    UNAUDITED,
    Court,
    params_tuple,
    reverts_with,
)

ACTIVE, TALLIED, CONCLUDED = 1, 2, 4


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


@pytest.mark.xfail(
    strict=True,
    raises=ReviewDefect,
    reason="review: cheap self-dealt audits lock every honest verifier's sigma*R reserve until their "
    "challenge deadlines; a lazy provider's drawn and challenged job then settles Unaudited and is paid",
)
def test_locking_honest_verifiers_stake_does_not_let_a_lazy_job_settle_unaudited(lockout):
    c = lockout
    GOOD_OF.clear()
    c.bonds, c.forfeited = 0, {}
    sponsor = c.others[0]
    honest = {v.address for v in c.verifiers}

    # The attack: self-dealt jobs (sponsor -> cheat) with a long challenge window, answered honestly.
    # Each drawn honest auditor agrees, and its sigma R reserve stays locked until the job's
    # challenge deadline (the agreeing audit waits for it). A job whose drawn verifier is already
    # locked cannot be seated and ends Unaudited: the sponsor's escrow comes back in full.
    locked: set[str] = set()
    for _ in range(8):
        if locked == honest:
            break
        job = c.job(GOOD, requester=sponsor, challenge_window=LONG_WINDOW)
        GOOD_OF[job] = GOOD
        if c.court.drawnFor(job, 0, 0) in locked:
            continue
        auditor = c.audit(job, GOOD)
        assert c.case(job).phase == TALLIED  # until the job's challenge deadline, LONG_WINDOW away
        locked.add(auditor.address)
    assert locked == honest
    for v in c.verifiers:
        assert c.court.getVerifier(v).free < SIGMA_R  # SMALL - sigma R: no room for another case
    # The lockout costs the attacker A = 1.1 R per honest verifier (paid to it for running the
    # attacker's own job; the rest of E comes back) plus the market's (1 - kappa) f R, against
    # sigma R = 20 R of honest stake held for LONG_WINDOW.

    # The lazy job: an honest requester's job, the cheat commits garbage; drawn for audit.
    lazy = c.job(BAD, requester=c.requester, challenge_window=200)
    GOOD_OF[lazy] = BAD
    drawn = c.known[c.court.drawnFor(lazy, 0, 0)]
    assert drawn.address in honest
    with reverts_with("StakeBelowSigma"):
        c.court.startAudit(lazy, sender=drawn)
    # The victim challenges within the window: the case goes to a K = 3 jury, drawn from the same
    # locked verifiers.
    c.tx(c.court.challenge, lazy, sender=c.requester, bonds=B_CHALLENGE)
    for _ in range(12):
        case = c.case(lazy)
        if case.phase == CONCLUDED:
            break
        if case.phase == ACTIVE and c.chain.pending_timestamp <= case.seatDeadline:
            c.ready()  # the round's anchor block
            for seat in range(3 if case.round else 1):
                holder = c.known.get(c.court.drawnFor(lazy, case.round, seat))
                if holder is not None and holder.address in honest:
                    with reverts_with("StakeBelowSigma"):
                        c.court.takeSeat(lazy, seat, sender=holder)
        c.wait_until(case.seatDeadline if case.phase == ACTIVE else case.windowEnd)
        receipt = c.court.advance(lazy, sender=c.owner)
        if list(receipt.events.filter(c.court.CaseConcluded)):
            c.bonds -= B_CHALLENGE  # returned to the challenger
        c.check()
    assert c.case(lazy).phase == CONCLUDED
    assert c.case(lazy).round == 1  # the challenge's jury was drawn, and nobody could sit
    # Nobody ran the job: the garbage result is paid as if no verifier existed.
    defect(c.market.settledOutcome(lazy) != UNAUDITED, "a drawn, challenged lazy job settled Unaudited")


@pytest.mark.xfail(
    strict=True,
    raises=ReviewDefect,
    reason="review: fees are floor(R * bps / 10000): below 50 base units of reward an availability "
    "failure costs neither side anything (F6) and a wash job pays no fee",
)
def test_an_availability_failure_is_never_a_free_exit_even_for_a_tiny_reward(market, staking, requester, provider, funded, registered):
    reward = 49  # base units; any R < 10_000 / noFaultFeeBps (= 50 at 2 %) rounds both fees to 0
    spec = make_spec(4242)
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
