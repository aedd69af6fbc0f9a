"""VerificationCourt against a market stub (contracts/MarketStub.sol) and a settable randomness.

Every case of the protocol (VERIFICATION.md §1): the drawn audit, the K = 3 / 7 / 15 juries, redraws
of empty seats and no-shows, the arbiter as a timelocked last appeal, canaries and open challenges.
Every transaction goes through `Court.tx`, which checks the court's conservation invariant after it:
token.balanceOf(court) == accountedBalance() == sum over verifiers of (free + locked + unbonding)
+ the challenge and appeal bonds the test knows are held + the no-shows' forfeited bonds of open
cases (held for the case's pot until its conclusion, read from the SeatNoShow/CaseConcluded events).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ape
import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from depin.accounts import sign_canary_authorization

from .conftest import TOKEN, Reads

R = 10 * TOKEN  # reward
A = 11 * TOKEN  # audit pay (1.1 R): the escrow less the jury deposit
COLLATERAL = 40 * TOKEN  # k = 4
W = 11 * TOKEN  # juror pay (jurorPayBps 11000)
E = A + 3 * W  # the requester's audit escrow (auditFeeBps 44000): audit pay + jury deposit 3 w
B_AUDIT = 35 * TOKEN  # auditorBondBps 35000
B_JUROR = 33 * TOKEN  # jurorBondBps 33000 (3 w, the floor)
B_CHALLENGE = 35 * TOKEN
SIGMA_R = 20 * R
STAKE = 10_000 * TOKEN  # each open seat locks max(bond, sigma R) = 200 tokens here

GOOD = keccak(b"the right output")
NOT_DELIVERED = keccak(b"depin.not-delivered")  # depin.commitment.NOT_DELIVERED
BAD = keccak(b"a wrong output")
OTHER = keccak(b"yet another output")
SALT = keccak(b"salt")

# IMarketForCourt.Outcome
NONE, RIGHT, WRONG, SPLIT, UNAUDITED, CANARY = range(6)
# IVerificationCourt.Phase
P_NONE, ACTIVE, TALLIED, ARBITER, CONCLUDED = range(5)

PARAMS = {
    "startWindow": 10,
    "rhoPct": 200,
    "setupTime": 10,
    "inclusionTime": 5,
    "revealWindow": 20,
    "appealWindow": 20,
    "canaryWindow": 20,
    "auditorBondBps": 35_000,
    "jurorBondBps": 33_000,
    "jurorPayBps": 11_000,
    "challengeBondBps": 35_000,
    "canarySlashMul": 20,
    "maxRedraws": 2,
    "arbiterDelay": 30,
    "arbiterWindow": 60,
    "activationDelayBlocks": 2,
    "blockTime": 1,
    "betaBps": 1_000,
    "minStake": TOKEN,
}


def params_tuple(**changes: int) -> tuple[int, ...]:
    return tuple({**PARAMS, **changes}.values())


def provider_commitment(provider: str, job_id: int, digest: bytes, salt: bytes = SALT) -> bytes:
    return keccak(encode(["address", "uint256", "bytes32", "bytes32"], [provider, job_id, digest, salt]))


def seat_commitment(verifier: str, job_id: int, rnd: int, seat: int, digest: bytes, salt: bytes = SALT) -> bytes:
    return keccak(encode(["address", "uint256", "uint8", "uint8", "bytes32", "bytes32"], [verifier, job_id, rnd, seat, digest, salt]))


@contextmanager
def reverts_with(name: str) -> Iterator[None]:
    """Expects a revert with the court's custom error `name` (any inputs)."""
    with ape.reverts() as info:
        yield
    assert type(info.value).__name__ == name, f"expected {name}, got {info.value!r}"


def canary_digest(secret: bytes) -> bytes:
    return keccak(b"depin-canary" + secret)


class Court:
    """The deployment plus helpers; `tx` checks conservation after every transaction."""

    def __init__(self, chain, token, market, court, owner, requester, provider, verifiers, others):
        self.chain = chain
        self.token = token
        self.market = market
        self.court = court
        self.owner = owner
        self.requester = requester
        self.provider = provider
        self.verifiers = verifiers
        self.others = others
        self.bonds = 0  # challenge + appeal bonds the court should hold
        self.forfeited: dict[int, int] = {}  # job id -> no-shows' bonds held for its pot
        self.known = {v.address: v for v in [*verifiers, *others, provider, requester, owner]}
        self.reads = Reads(chain, token=token, court=court)

    # ---------------------------------------------------------------- invariant
    def check(self) -> None:
        """The court's conservation, read in one batch (it runs after every transaction)."""
        court = self.court.address
        balance, accounted, *infos = self.reads.many(
            [("token", "balanceOf", court), ("court", "accountedBalance")] + [("court", "getVerifier", a) for a in self.known]
        )
        assert balance == accounted
        stakes = sum(v.free + v.locked + v.unbonding for v in infos)
        held = self.bonds + sum(self.forfeited.values())
        assert balance == stakes + held, (balance, stakes, self.bonds, self.forfeited)

    def tx(self, fn, *args, sender, bonds: int = 0, **kw) -> Any:
        """Sends, then checks conservation; `bonds` = the change in challenge/appeal bonds held."""
        receipt = fn(*args, sender=sender, **kw)
        self.bonds += bonds
        for e in receipt.events.filter(self.court.SeatNoShow):
            self.forfeited[e.jobId] = self.forfeited.get(e.jobId, 0) + e.bondBurned
        for e in receipt.events.filter(self.court.CaseConcluded):
            self.forfeited.pop(e.jobId, None)  # into the pot: paid out or burned
        self.check()
        return receipt

    # ---------------------------------------------------------------- chain
    def wait(self, seconds: int) -> None:
        self.chain.mine(1, timestamp=self.chain.pending_timestamp + seconds)

    def wait_until(self, timestamp: int) -> None:
        if self.chain.pending_timestamp <= timestamp:
            self.chain.mine(1, timestamp=timestamp + 1)

    def ready(self) -> None:
        """Mines two blocks so that the newest anchor's randomness is readable (D = 1)."""
        self.chain.mine(2)

    # ---------------------------------------------------------------- jobs
    def job(
        self,
        digest: bytes = GOOD,
        audit_bps: int = 10_000,
        challenge_window: int = 100,
        provider=None,
        requester=None,
        escrow: int = E,
    ) -> int:
        provider = provider or self.provider
        job_id = self.market.jobCount() + 1
        commitment = provider_commitment(provider.address, job_id, digest)
        self.market.createJob(
            requester or self.requester,
            provider,
            R,
            COLLATERAL,
            escrow,
            commitment,
            10,
            challenge_window,
            audit_bps,
            self.court,
            sender=self.owner,
        )
        self.ready()
        return job_id

    def case(self, job_id: int) -> Any:
        return self.court.getCase(job_id)

    def audit(self, job_id: int, digest: bytes, reveal_provider: bool = True, tally: bool = True) -> Any:
        """The drawn auditor starts, commits and reveals `digest`; the provider reveals; `advance`."""
        auditor = self.known[self.court.drawnFor(job_id, 0, 0)]
        self.tx(self.court.startAudit, job_id, sender=auditor)
        self.tx(self.court.commit, job_id, 0, seat_commitment(auditor.address, job_id, 0, 0, digest), sender=auditor)
        self.tx(self.court.reveal, job_id, 0, digest, SALT, sender=auditor)
        if reveal_provider:
            self.tx(self.court.revealProvider, job_id, GOOD_OF[job_id], SALT, sender=self.provider)
        if tally:
            self.advance(job_id)
        return auditor

    def jury(self, job_id: int, digests: list[bytes], rnd: int | None = None, provider_reveals: bool = False) -> list[Any]:
        """Fills every seat of the current round, commits and reveals `digests` (one per seat); with
        `provider_reveals`, the provider reveals its digest between the commits and the reveals (a
        case that went straight to a jury: no audit revealed it)."""
        self.ready()
        rnd = self.case(job_id).round if rnd is None else rnd
        holders = []
        for seat in range(len(digests)):
            holder = self.known[self.court.drawnFor(job_id, rnd, seat)]
            self.tx(self.court.takeSeat, job_id, seat, sender=holder)
            holders.append(holder)
        for seat, (holder, d) in enumerate(zip(holders, digests)):
            self.tx(self.court.commit, job_id, seat, seat_commitment(holder.address, job_id, rnd, seat, d), sender=holder)
        if provider_reveals:
            self.tx(self.court.revealProvider, job_id, GOOD_OF[job_id], SALT, sender=self.provider)
        for seat, (holder, d) in enumerate(zip(holders, digests)):
            self.tx(self.court.reveal, job_id, seat, d, SALT, sender=holder)
        return holders

    def advance(self, job_id: int, sender=None) -> Any:
        return self.tx(self.court.advance, job_id, sender=sender or self.owner)

    def finish_window(self, job_id: int) -> Any:
        self.wait_until(self.case(job_id).windowEnd)
        return self.advance(job_id)


GOOD_OF: dict[int, bytes] = {}  # job id -> the provider's committed digest (set by the tests)


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def env(accounts, project, chain):
    owner, requester, provider, v1, v2, v3, v4, challenger, stranger, extra = accounts[:10]
    token = project.RewardToken.deploy("Test", "TST", 10**30, owner, 0, sender=owner)
    token.grantRole(token.MINTER_ROLE(), owner, sender=owner)
    rand = project.StubRandomness.deploy(sender=owner)
    market = project.MarketStub.deploy(token, rand, 1, sender=owner)
    engine = project.CourtEngine.deploy(sender=owner)
    court = project.VerificationCourt.deploy(market, token, owner, params_tuple(), engine, sender=owner)
    court.grantRole(court.ARBITER_ROLE(), owner, sender=owner)
    token.mint(market, 100_000 * TOKEN, sender=owner)
    for acct in (requester, provider, v1, v2, v3, v4, challenger, stranger, extra):
        token.mint(acct, 100_000 * TOKEN, sender=owner)
        token.approve(court, 2**256 - 1, sender=acct)
    ctx = Court(chain, token, market, court, owner, requester, provider, [v1, v2, v3], [v4, challenger, stranger, extra])
    for v in (v1, v2, v3):
        court.join(STAKE, 0, sender=v)
    chain.mine(3)  # past activationDelayBlocks
    ctx.rand = rand
    ctx.engine = engine
    return ctx


@pytest.fixture
def c(env):
    GOOD_OF.clear()
    env.bonds = 0
    env.forfeited = {}
    return env


def good_job(c: Court, **kw) -> int:
    job_id = c.job(GOOD, **kw)
    GOOD_OF[job_id] = GOOD
    return job_id


def wallet(c: Court, who) -> int:
    return c.token.balanceOf(who)


# ------------------------------------------------------------------------------------- audit


def test_audit_agrees_and_pays_the_auditor_after_the_canary_window(c):
    job = good_job(c)
    auditor_addr = c.court.drawnFor(job, 0, 0)
    assert auditor_addr in [v.address for v in c.verifiers]
    before = wallet(c, auditor_addr)
    requester_before = wallet(c, c.requester)
    auditor = c.audit(job, GOOD)
    case = c.case(job)
    assert case.phase == TALLIED and case.tally == RIGHT and case.providerDigest == GOOD
    with ape.reverts():
        c.advance(job)  # the canary window is still open
    c.finish_window(job)
    case = c.case(job)
    assert case.phase == CONCLUDED and case.outcome == RIGHT
    assert c.market.settledOutcome(job) == RIGHT
    assert wallet(c, auditor) == before + A
    assert wallet(c, c.requester) == requester_before + E - A  # the unused jury deposit comes back
    v = c.court.getVerifier(auditor)
    assert v.locked == 0 and v.free == STAKE


def test_only_the_drawn_verifier_starts_and_the_provider_reveal_is_checked(c):
    job = good_job(c)
    drawn = c.court.drawnFor(job, 0, 0)
    other = next(v for v in c.verifiers if v.address != drawn)
    with ape.reverts():
        c.court.startAudit(job, sender=other)
    auditor = c.known[drawn]
    c.tx(c.court.startAudit, job, sender=auditor)
    with ape.reverts():  # no commitment yet: reveals are closed
        c.court.revealProvider(job, GOOD, SALT, sender=c.provider)
    c.tx(c.court.commit, job, 0, seat_commitment(drawn, job, 0, 0, GOOD), sender=auditor)
    with ape.reverts():
        c.court.revealProvider(job, BAD, SALT, sender=c.provider)
    with ape.reverts():
        c.court.reveal(job, 0, BAD, SALT, sender=auditor)
    c.tx(c.court.revealProvider, job, GOOD, SALT, sender=c.provider)


def test_disagreement_goes_to_a_jury_of_3_which_slashes_and_the_loser_pays_it(c):
    job = c.job(BAD)  # the provider committed a wrong digest
    GOOD_OF[job] = BAD
    auditor = c.audit(job, GOOD)
    case = c.case(job)
    assert case.phase == ACTIVE and case.round == 1
    wallets = {v.address: wallet(c, v) for v in c.verifiers}
    requester_before = wallet(c, c.requester)
    holders = c.jury(job, [GOOD, GOOD, GOOD])
    c.advance(job)
    case = c.case(job)
    assert case.phase == TALLIED and case.tally == WRONG and case.topDigest == GOOD
    burned_before = c.token.totalSupply()
    c.finish_window(job)
    assert c.case(job).outcome == WRONG
    assert c.market.settledOutcome(job) == WRONG
    # The market sends A + the collateral: the auditor who caught it is paid A in full first, then
    # 3 jurors w each from the collateral (k = 4: 40 >= 33), the rest is burned.
    paid = {a: 0 for a in wallets}
    for h in holders:
        paid[h.address] += W
    paid[auditor.address] += A
    for a, before in wallets.items():
        assert wallet(c, a) == before + paid[a]
    assert c.token.totalSupply() == burned_before - (COLLATERAL - 3 * W)
    assert wallet(c, c.requester) == requester_before + E - A  # the jury was the loser's: deposit back
    for v in c.verifiers:
        info = c.court.getVerifier(v)
        assert info.locked == 0 and info.free == STAKE


def _audit_then_jury(c: Court, job: int, audit: bytes, jury: list[bytes], outcome: int) -> tuple[Any, list[Any], int, int]:
    """The audit reveals `audit`, a jury `jury`; the jury's tally is `outcome` and the case concludes
    so after the appeal window. (the auditor, the jurors, and the token supply and the requester's
    wallet just before the conclusion)."""
    auditor = c.audit(job, audit)
    holders = c.jury(job, jury)
    c.advance(job)
    assert c.case(job).tally == outcome
    supply = c.token.totalSupply()
    requester_before = wallet(c, c.requester)
    c.finish_window(job)
    assert c.case(job).outcome == outcome
    return auditor, holders, supply, requester_before


def test_jury_confirms_the_provider_and_the_wrong_auditor_pays_the_jury(c):
    job = good_job(c)
    auditor, holders, supply, requester_before = _audit_then_jury(c, job, BAD, [GOOD, GOOD, GOOD], RIGHT)
    # pot = the auditor's bond; jurors 3 w; rest burned. The requester's escrow E comes back whole
    # (the auditor was wrong: no audit pay; the jury was the auditor's).
    assert c.token.totalSupply() == supply - (B_AUDIT - 3 * W)
    assert wallet(c, c.requester) == requester_before + E
    stake_loss = STAKE - c.court.getVerifier(auditor).free
    assert stake_loss == B_AUDIT - 0  # the auditor's whole bond was forfeited
    assert len(holders) == 3


def test_an_outvoted_not_delivered_is_a_minority_vote_like_any_other(c):
    """NOT_DELIVERED is a digest like any other: jurors who agree on it outvote the provider, and a
    juror who says it against a majority that found the archive loses its bond to the pot."""
    job = good_job(c)
    auditor, holders, supply, requester_before = _audit_then_jury(c, job, BAD, [GOOD, GOOD, NOT_DELIVERED], RIGHT)
    # pot = the wrong auditor's bond + the NOT_DELIVERED juror's; two coherent jurors w each; the
    # rest burned; the requester's escrow comes back whole (the jury was the losers').
    assert c.token.totalSupply() == supply - (B_AUDIT + B_JUROR - 2 * W)
    assert wallet(c, c.requester) == requester_before + E
    lost = {v.address: 0 for v in c.verifiers}
    lost[auditor.address] += B_AUDIT
    lost[holders[2].address] += B_JUROR
    for v in c.verifiers:
        assert STAKE - c.court.getVerifier(v).free == lost[v.address]


def test_split_pays_the_provider_and_charges_the_jury_to_the_requester(c):
    job = good_job(c)
    auditor = c.audit(job, BAD)
    requester_before = wallet(c, c.requester)
    auditor_wallet = wallet(c, auditor)
    holders = c.jury(job, [GOOD, BAD, OTHER])
    jurors_before = {h.address: wallet(c, h) for h in holders if h.address != auditor.address}
    c.advance(job)
    assert c.case(job).tally == SPLIT
    supply = c.token.totalSupply()
    c.finish_window(job)
    assert c.market.settledOutcome(job) == SPLIT  # the market pays the provider
    # The requester declared the job re-executable: its escrow E = A + 3 w pays the auditor A and the
    # jury 3 w. The auditor (whose digest differed from the provider's: nondeterminism) keeps its bond.
    v = c.court.getVerifier(auditor)
    assert v.locked == 0 and v.free == STAKE
    pay = {h.address: 0 for h in holders}
    for h in holders:
        pay[h.address] += W
    pay[auditor.address] = pay.get(auditor.address, 0) + A
    assert wallet(c, auditor) == auditor_wallet + pay[auditor.address]
    for a, before in jurors_before.items():
        assert wallet(c, a) == before + pay[a]
    assert wallet(c, c.requester) == requester_before + E - A - 3 * W  # 0 here: E = A + 3 w exactly
    assert c.token.totalSupply() == supply  # nothing burned: nobody was wrong


def test_with_replacement_one_verifier_can_hold_every_seat(c):
    # A class with a single member: every seat of a jury goes to it, one bond per seat.
    solo = c.others[3]
    with ape.reverts():
        c.court.join(STAKE, 5, sender=solo)  # class 5 is not open
    c.tx(c.court.setClassOpen, 5, True, sender=c.owner)
    c.tx(c.court.join, STAKE, 5, sender=solo)
    c.tx(c.court.setPlatformClass, 5, sender=c.provider)
    with ape.reverts():
        c.court.setPlatformClass(6, sender=c.provider)  # once per provider
    c.chain.mine(3)
    job = good_job(c)
    assert c.case(job).phase == P_NONE
    assert c.court.drawnFor(job, 0, 0) == solo.address
    c.audit(job, BAD)
    holders = c.jury(job, [GOOD, GOOD, GOOD])
    assert all(h.address == solo.address for h in holders)
    # sigma R once in the case (the audit seat's bond and its reserve), then each jury seat's bond
    assert c.court.getVerifier(solo).locked == SIGMA_R + 3 * B_JUROR


# ------------------------------------------------------------------------------------- redraws


def test_no_show_auditor_loses_its_bond_and_the_seat_is_redrawn(c):
    """The no-show's bond leaves its stake at once and is held for the case's pot (which pays a
    jury, if any, and burns the rest at the conclusion); nobody revealed, so the seat is redrawn."""
    job = good_job(c)
    auditor = c.known[c.court.drawnFor(job, 0, 0)]
    c.tx(c.court.startAudit, job, sender=auditor)
    supply = c.token.totalSupply()
    c.wait_until(c.case(job).revealDeadline)
    receipt = c.advance(job)
    assert c.token.totalSupply() == supply  # held for the pot, not burned yet
    assert c.court.accountedBalance() == 3 * STAKE  # the forfeited bond is accounted as held
    case = c.case(job)
    assert case.phase == ACTIVE and case.round == 0 and case.redraws == 1 and case.taken == 0
    assert c.court.getVerifier(auditor).free == STAKE - B_AUDIT
    assert receipt.events.filter(c.court.SeatNoShow)[0].bondBurned == B_AUDIT
    c.ready()
    c.audit(job, GOOD)  # the redrawn auditor completes it
    c.finish_window(job)
    assert c.case(job).outcome == RIGHT
    assert c.token.totalSupply() == supply - B_AUDIT  # no jury to pay: the pot is burned


def _nobody_audits(c: Court, job: int) -> None:
    """Lets the drawn audit and its maxRedraws redraws pass without a taker."""
    info = c.market.verificationInfo(job)
    c.wait_until(info.submitTime + c.court.requiredChallengeWindow())
    c.advance(job)  # opens the case and redraws (1)
    assert c.case(job).redraws == 1
    c.wait_until(c.case(job).seatDeadline)
    c.advance(job)  # redraw 2
    assert c.case(job).redraws == 2
    c.wait_until(c.case(job).seatDeadline)
    c.advance(job)


def test_nobody_starts_after_max_redraws_settles_unaudited_at_the_challenge_deadline(c):
    """Unaudited waits for the job's challenge deadline (Tallied, tally Unaudited), then settles."""
    job = good_job(c)
    _nobody_audits(c, job)
    case = c.case(job)
    deadline = c.market.verificationInfo(job).challengeDeadline
    assert case.phase == TALLIED and case.tally == UNAUDITED and case.windowEnd == deadline
    with reverts_with("NothingDue"):
        c.advance(job)
    c.wait_until(deadline)
    c.advance(job)
    assert c.case(job).outcome == UNAUDITED
    assert c.market.settledOutcome(job) == UNAUDITED


def test_a_challenged_audit_nobody_takes_goes_to_the_jury(c):
    job = good_job(c)
    c.tx(c.court.challenge, job, sender=c.others[1], bonds=B_CHALLENGE)
    for _ in range(PARAMS["maxRedraws"] + 1):
        c.wait_until(c.case(job).seatDeadline)
        c.advance(job)
    case = c.case(job)
    assert case.round == 1 and case.phase == ACTIVE


def test_empty_pool_settles_unaudited_at_once(c):
    lonely = c.others[2]
    job_id = c.market.jobCount() + 1
    c.tx(c.court.setClassOpen, 9, True, sender=c.owner)
    c.tx(c.court.setPlatformClass, 9, sender=lonely)
    c.chain.mine(1)
    c.market.createJob(
        c.requester,
        lonely,
        R,
        COLLATERAL,
        A,
        provider_commitment(lonely.address, job_id, GOOD),
        10,
        100,
        10_000,
        c.court,
        sender=c.owner,
    )
    c.ready()
    assert c.court.drawnFor(job_id, 0, 0) == "0x" + "00" * 20
    c.tx(c.court.redraw, job_id, sender=c.owner)
    assert c.case(job_id).outcome == UNAUDITED


def test_a_provider_cannot_escape_to_an_empty_or_closed_class(c):
    with ape.reverts():
        c.court.setPlatformClass(42, sender=c.provider)  # not open
    c.tx(c.court.setClassOpen, 42, True, sender=c.owner)
    c.tx(c.court.setPlatformClass, 42, sender=c.provider)
    c.tx(c.court.setClassOpen, 42, False, sender=c.owner)  # governance closes it: class 0 again
    c.chain.mine(1)
    job = good_job(c)
    assert c.court.drawnFor(job, 0, 0) in [v.address for v in c.verifiers]
    with ape.reverts():
        c.court.setClassOpen(1, True, sender=c.provider)  # GOVERNOR_ROLE only


def test_undrawn_job_cannot_be_opened(c):
    job = good_job(c, audit_bps=0)
    with ape.reverts():
        c.court.startAudit(job, sender=c.verifiers[0])
    with ape.reverts():
        c.court.redraw(job, sender=c.owner)


# ------------------------------------------------------------------------------------- snapshot


def test_stake_added_after_submission_does_not_change_the_draw(c):
    job = good_job(c)
    drawn = c.court.drawnFor(job, 0, 0)
    late = c.others[0]
    c.tx(c.court.join, 50_000 * TOKEN, 0, sender=late)
    c.chain.mine(5)
    assert c.court.drawnFor(job, 0, 0) == drawn
    info = c.market.verificationInfo(job)
    snapshot = info.anchorBlock - 1 - PARAMS["activationDelayBlocks"]
    assert c.court.stakeAt(late, snapshot) == 0
    assert c.court.classStakeAt(0, snapshot) == 3 * STAKE


def test_new_stake_is_inactive_for_activation_delay_blocks(c):
    late = c.others[0]
    c.tx(c.court.join, 90_000 * TOKEN, 0, sender=late)
    joined = c.chain.blocks.head.number
    job = good_job(c)  # submitted one block after the join: within the activation delay
    info = c.market.verificationInfo(job)
    submit_block = info.anchorBlock - 1
    assert submit_block - joined < PARAMS["activationDelayBlocks"] + 1
    snapshot = submit_block - PARAMS["activationDelayBlocks"]
    assert c.court.stakeAt(late, snapshot) == 0
    for _ in range(5):
        good_job(c)
    # Jobs submitted well after the join can draw it (it holds 90/120 of the stake).
    drawn = {c.court.drawnFor(j, 0, 0) for j in range(job + 1, job + 6)}
    assert late.address in drawn


def test_provider_and_requester_are_never_drawn_for_their_own_job(c):
    # The provider and the requester join as verifiers with most of the stake.
    c.tx(c.court.join, 90_000 * TOKEN, 0, sender=c.provider)
    c.tx(c.court.join, 90_000 * TOKEN, 0, sender=c.requester)
    c.chain.mine(3)
    for _ in range(6):
        job = good_job(c)
        for seat in range(1):
            assert c.court.drawnFor(job, 0, seat) not in (c.provider.address, c.requester.address)
        for seat in range(3):
            assert c.court.drawnFor(job, 1, seat) not in (c.provider.address, c.requester.address)


# ------------------------------------------------------------------------------------- appeals


def test_appeals_to_7_and_15_then_the_arbiter_timelock(c):
    job = c.job(BAD)
    GOOD_OF[job] = BAD
    c.audit(job, GOOD)
    c.jury(job, [GOOD, GOOD, GOOD])
    c.advance(job)
    assert c.case(job).tally == WRONG
    with ape.reverts():
        c.court.appeal(job, sender=c.others[1])  # only the provider appeals ProviderWrong
    c.tx(c.court.appeal, job, sender=c.provider, bonds=7 * W)
    assert c.case(job).round == 2
    c.jury(job, [BAD] * 7)  # a captured jury of 7 confirms the provider
    c.advance(job)
    assert c.case(job).tally == RIGHT
    with ape.reverts():
        c.court.appeal(job, sender=c.provider)
    c.tx(c.court.appeal, job, sender=c.others[1], bonds=15 * W)
    assert c.case(job).round == 3
    c.jury(job, [GOOD] * 15)
    c.advance(job)
    assert c.case(job).tally == WRONG
    c.tx(c.court.appeal, job, sender=c.provider, bonds=15 * W)
    case = c.case(job)
    assert case.phase == ARBITER
    with ape.reverts():
        c.court.arbiterRule(job, RIGHT, sender=c.others[1])  # not the arbiter
    c.tx(c.court.arbiterRule, job, WRONG, sender=c.owner)
    with ape.reverts():
        c.advance(job)  # timelocked
    c.wait(PARAMS["arbiterDelay"] + 1)
    before = wallet(c, c.others[1])
    c.bonds = 0
    c.advance(job)
    assert c.case(job).outcome == WRONG
    assert c.market.settledOutcome(job) == WRONG
    # The accuser that appealed the captured round-2 tally gets its 15 w back.
    assert wallet(c, c.others[1]) == before + 15 * W


def test_arbiter_silent_leaves_the_last_jury_standing(c):
    job = good_job(c)
    c.audit(job, BAD)
    c.jury(job, [GOOD] * 3)
    c.advance(job)
    c.tx(c.court.appeal, job, sender=c.others[1], bonds=7 * W)
    c.jury(job, [GOOD] * 7)
    c.advance(job)
    c.tx(c.court.appeal, job, sender=c.others[1], bonds=15 * W)
    c.jury(job, [GOOD] * 15)
    c.advance(job)
    c.tx(c.court.appeal, job, sender=c.others[2], bonds=15 * W)
    c.wait_until(c.case(job).windowEnd)
    c.bonds = 0
    c.advance(job)
    assert c.case(job).outcome == RIGHT


# ------------------------------------------------------------------------------------- canaries


def authorize(c: Court, signer: Any, job_id: int) -> bytes:
    """`signer`'s canary authorization of job `job_id` (what exposeCanary checks)."""
    return sign_canary_authorization(Account.from_key(signer.private_key), c.chain.chain_id, c.court.address, job_id)


def test_canary_slashes_a_copier_and_never_an_honest_digest(c):
    # The operator posts from one account, claims from another, and authorizes the exposure with a
    # canary key that never sends a transaction: neither job account holds the role or is the other.
    signer, op_requester, op_provider = c.others[3], c.others[2], c.provider
    c.tx(c.court.grantRole, c.court.CANARY_ROLE(), signer, sender=c.owner)
    role = c.court.CANARY_ROLE()
    assert not c.court.hasRole(role, op_requester) and not c.court.hasRole(role, op_provider)
    secret = keccak(b"canary secret")
    fake = canary_digest(secret)
    job = c.job(fake, provider=op_provider, requester=op_requester)
    GOOD_OF[job] = fake
    auditor = c.known[c.court.drawnFor(job, 0, 0)]
    # A lazy auditor copies the digest the canary operator hands out.
    c.tx(c.court.startAudit, job, sender=auditor)
    c.tx(c.court.commit, job, 0, seat_commitment(auditor.address, job, 0, 0, fake), sender=auditor)
    c.tx(c.court.reveal, job, 0, fake, SALT, sender=auditor)
    c.tx(c.court.revealProvider, job, fake, SALT, sender=op_provider)
    c.advance(job)
    assert c.case(job).phase == TALLIED
    supply = c.token.totalSupply()
    op_before = wallet(c, op_requester)
    with reverts_with("NotCanary"):
        c.court.exposeCanary(job, secret, SALT, authorize(c, signer, job), sender=op_provider)  # not the requester
    c.tx(c.court.exposeCanary, job, secret, SALT, authorize(c, signer, job), sender=op_requester)
    assert c.case(job).outcome == CANARY
    v = c.court.getVerifier(auditor)
    assert v.free == STAKE - B_AUDIT - SIGMA_R and v.locked == 0
    assert c.token.totalSupply() == supply - (B_AUDIT + SIGMA_R)
    assert wallet(c, op_requester) == op_before + E  # no honest seat to pay: the escrow goes back

    # An honest auditor of another canary job reveals its own digest: never slashed, paid A.
    job2 = c.job(canary_digest(keccak(b"s2")), provider=op_provider, requester=op_requester)
    GOOD_OF[job2] = canary_digest(keccak(b"s2"))
    honest = c.known[c.court.drawnFor(job2, 0, 0)]
    before = c.court.getVerifier(honest)
    wallet_before = wallet(c, honest)
    c.tx(c.court.startAudit, job2, sender=honest)
    c.tx(c.court.commit, job2, 0, seat_commitment(honest.address, job2, 0, 0, GOOD), sender=honest)
    c.tx(c.court.reveal, job2, 0, GOOD, SALT, sender=honest)
    c.tx(c.court.exposeCanary, job2, keccak(b"s2"), SALT, authorize(c, signer, job2), sender=op_requester)
    after = c.court.getVerifier(honest)
    assert after.free == before.free and after.locked == 0
    assert wallet(c, honest) == wallet_before + A


def test_a_canary_exposed_after_the_reserve_went_back_still_costs_sigma_r(c):
    """The reserve goes back once the canary window is over; an exposure after that (a slow canary
    requester) still burns the bond and sigma R, the rest from the copier's free stake."""
    signer, op_requester, op_provider = c.others[3], c.others[2], c.provider
    c.tx(c.court.grantRole, c.court.CANARY_ROLE(), signer, sender=c.owner)
    secret = keccak(b"late canary")
    fake = canary_digest(secret)
    job = c.job(fake, provider=op_provider, requester=op_requester, challenge_window=1_000)
    GOOD_OF[job] = fake
    auditor = c.known[c.court.drawnFor(job, 0, 0)]
    c.tx(c.court.startAudit, job, sender=auditor)
    c.tx(c.court.commit, job, 0, seat_commitment(auditor.address, job, 0, 0, fake), sender=auditor)
    c.tx(c.court.reveal, job, 0, fake, SALT, sender=auditor)
    c.tx(c.court.revealProvider, job, fake, SALT, sender=op_provider)
    c.advance(job)
    c.wait_until(c.case(job).canaryEnd)
    locked0 = c.court.getVerifier(auditor).locked
    c.tx(c.court.releaseReserve, job, sender=auditor)
    v = c.court.getVerifier(auditor)
    assert v.locked == locked0 - (SIGMA_R - B_AUDIT)
    free0 = v.free
    supply = c.token.totalSupply()
    receipt = c.tx(c.court.exposeCanary, job, secret, SALT, authorize(c, signer, job), sender=op_requester)
    assert receipt.events.filter(c.court.VerifierSlashed)[0].amount == B_AUDIT + SIGMA_R
    after = c.court.getVerifier(auditor)
    assert (after.free, after.locked) == (free0 - SIGMA_R, v.locked - B_AUDIT)  # B_a locked + sigma R from free
    assert c.token.totalSupply() == supply - (B_AUDIT + SIGMA_R)


def test_canary_exposure_needs_a_canary_keys_signature_for_the_job_and_the_committed_digest(c):
    # A requester and a provider colluding (here: a provider that committed garbage on a job whose
    # requester would like it voided) cannot make a Canary without the canary key.
    signer = c.others[3]
    secret = keccak(b"x")
    job = c.job(canary_digest(secret))
    GOOD_OF[job] = canary_digest(secret)
    c.audit(job, GOOD)
    with reverts_with("NotCanary"):
        c.court.exposeCanary(job, secret, SALT, authorize(c, signer, job), sender=c.requester)  # no CANARY_ROLE
    c.tx(c.court.grantRole, c.court.CANARY_ROLE(), signer, sender=c.owner)
    for bad in (authorize(c, signer, job + 1), b"", b"\x01" * 65, authorize(c, c.requester, job)):
        with reverts_with("NotCanary"):  # another job's, malformed, or signed by a key without the role
            c.court.exposeCanary(job, secret, SALT, bad, sender=c.requester)
    with reverts_with("NotCanary"):
        c.court.exposeCanary(job, keccak(b"not the secret"), SALT, authorize(c, signer, job), sender=c.requester)
    c.tx(c.court.exposeCanary, job, secret, SALT, authorize(c, signer, job), sender=c.requester)
    assert c.case(job).outcome == CANARY


def test_canary_exposure_only_for_the_operators_own_jobs(c):
    # A canary key's holder that claimed a stranger's job and committed garbage cannot expose it as a
    # canary (its collateral unslashed, the requester's job dead): only the requester may.
    op = c.others[2]
    c.tx(c.court.grantRole, c.court.CANARY_ROLE(), op, sender=c.owner)
    secret = keccak(b"stranger's job")
    job = c.job(canary_digest(secret), provider=op)  # posted by c.requester, claimed by op
    GOOD_OF[job] = canary_digest(secret)
    c.tx(c.court.startAudit, job, sender=c.known[c.court.drawnFor(job, 0, 0)])  # opens the case
    with reverts_with("NotCanary"):
        c.court.exposeCanary(job, secret, SALT, authorize(c, op, job), sender=op)
    assert c.case(job).phase == ACTIVE


def test_every_open_seat_reserves_sigma_r_so_each_canary_catch_costs_it(c):
    """A lazy verifier staking sigma R + 2 B_a could audit two canary jobs at once (`_take` counted
    the bonds locked in its other seat towards sigma R) and lost 2 B_a + sigma R for two catches,
    half the designed sigma R each (reviewer C, F3). Each seat now locks max(B_a, sigma R) of stake
    until it settles: the second audit needs sigma R more, and two catches cost 2 (B_a + sigma R)."""
    lazy, signer, op_requester = c.others[0], c.others[3], c.others[2]
    c.tx(c.court.grantRole, c.court.CANARY_ROLE(), signer, sender=c.owner)
    c.tx(c.court.setClassOpen, 5, True, sender=c.owner)
    c.tx(c.court.join, SIGMA_R + 2 * B_AUDIT, 5, sender=lazy)  # the class's only member
    c.tx(c.court.setPlatformClass, 5, sender=c.provider)
    c.chain.mine(3)
    secrets = [keccak(b"c1"), keccak(b"c2")]
    jobs = []
    for secret in secrets:
        job = c.job(canary_digest(secret), requester=op_requester)
        GOOD_OF[job] = canary_digest(secret)
        assert c.court.drawnFor(job, 0, 0) == lazy.address
        jobs.append(job)
    c.tx(c.court.startAudit, jobs[0], sender=lazy)
    v = c.court.getVerifier(lazy)
    assert (v.free, v.locked) == (2 * B_AUDIT, SIGMA_R)  # B_a + its reserve sigma R - B_a
    with reverts_with("StakeBelowSigma"):
        c.court.startAudit(jobs[1], sender=lazy)  # before: passed (free + locked == sigma R + 2 B_a)
    with reverts_with("InsufficientFreeStake"):
        c.court.requestLeave(2 * B_AUDIT + 1, sender=lazy)  # the reserve cannot be unbonded
    c.tx(c.court.addStake, SIGMA_R, sender=lazy)
    c.tx(c.court.startAudit, jobs[1], sender=lazy)
    for job, secret in zip(jobs, secrets):
        fake = canary_digest(secret)  # the lazy verifier copies the digest the operator hands out
        c.tx(c.court.commit, job, 0, seat_commitment(lazy.address, job, 0, 0, fake), sender=lazy)
        c.tx(c.court.reveal, job, 0, fake, SALT, sender=lazy)
    supply = c.token.totalSupply()
    for job, secret in zip(jobs, secrets):
        receipt = c.tx(c.court.exposeCanary, job, secret, SALT, authorize(c, signer, job), sender=op_requester)
        assert receipt.events.filter(c.court.VerifierSlashed)[0].amount == B_AUDIT + SIGMA_R
    v = c.court.getVerifier(lazy)
    assert v.free + v.locked + v.unbonding == 0  # 2 (B_a + sigma R): everything it staked
    assert c.token.totalSupply() == supply - 2 * (B_AUDIT + SIGMA_R)


# ------------------------------------------------------------------------------------- challenges


def test_the_provider_cannot_challenge_and_a_sybil_challenger_gains_nothing(c):
    sybil = c.others[1]
    job = c.job(BAD, audit_bps=0)  # not drawn: the challenge goes straight to a K = 3 jury
    GOOD_OF[job] = BAD
    with ape.reverts():
        c.court.challenge(job, sender=c.provider)
    before = wallet(c, sybil)
    c.tx(c.court.challenge, job, sender=sybil, bonds=B_CHALLENGE)
    case = c.case(job)
    assert case.round == 1 and case.challenger == sybil.address
    c.jury(job, [GOOD] * 3, provider_reveals=True)
    c.advance(job)
    c.bonds = 0
    c.finish_window(job)
    assert c.case(job).outcome == WRONG
    bounty = wallet(c, sybil) - before
    assert bounty == R * PARAMS["betaBps"] // 10_000  # its bond back + beta R, never more
    assert bounty < COLLATERAL  # the coalition (provider + sybil) loses k R - beta R


def test_a_challenge_on_a_right_result_loses_the_bond(c):
    job = good_job(c, audit_bps=0)
    challenger = c.others[1]
    before = wallet(c, challenger)
    c.tx(c.court.challenge, job, sender=challenger, bonds=B_CHALLENGE)
    c.jury(job, [GOOD] * 3, provider_reveals=True)
    c.advance(job)
    c.bonds = 0
    c.finish_window(job)
    assert c.case(job).outcome == RIGHT
    assert wallet(c, challenger) == before - B_CHALLENGE


def test_a_challenge_does_not_displace_the_drawn_audit_and_takes_an_agreeing_audit_to_a_jury(c):
    job = good_job(c)
    challenger = c.others[1]
    c.tx(c.court.challenge, job, sender=challenger, bonds=B_CHALLENGE)
    assert c.case(job).round == 0
    with ape.reverts():
        c.court.challenge(job, sender=c.others[2])  # one challenger per job
    c.audit(job, GOOD)
    case = c.case(job)
    assert case.round == 1 and case.phase == ACTIVE


def test_an_agreeing_audit_waits_for_the_challenge_deadline(c):
    """A drawn job keeps its whole challenge window, as an undrawn one does: an agreeing audit
    concludes at max(tally + canaryWindow, challengeDeadline), not after the canary window alone
    (before the fix a 1000 s window was cut to ~20 s and `challenge` reverted ChallengeClosed;
    reviewer C, F1a). A challenge in the window takes the agreeing audit to a K = 3 jury."""
    job = good_job(c, challenge_window=1_000)
    c.audit(job, GOOD)
    deadline = c.market.verificationInfo(job).challengeDeadline
    case = c.case(job)
    assert case.phase == TALLIED and case.tally == RIGHT and case.windowEnd == deadline
    c.wait(PARAMS["canaryWindow"] + 1)  # the canary window is over, the challenge window is not
    with reverts_with("NothingDue"):
        c.advance(job)
    assert c.chain.pending_timestamp < deadline - 900
    c.tx(c.court.challenge, job, sender=c.requester, bonds=B_CHALLENGE)
    case = c.case(job)
    assert case.phase == ACTIVE and case.round == 1 and case.challenger == c.requester.address
    c.jury(job, [GOOD] * 3)
    c.advance(job)
    c.bonds = 0
    c.finish_window(job)
    assert c.case(job).outcome == RIGHT


def test_an_agreeing_audits_reserve_goes_back_after_the_canary_window_and_its_bond_at_the_conclusion(c):
    """The canary reserve (sigma R - B_a) of an agreeing, unchallenged audit is only needed while a
    canary exposure can come (the canary window): anyone may then return it to the auditor's free
    stake (releaseReserve) instead of it staying locked until the job's challenge deadline (review:
    self-dealt long-window jobs locked honest verifiers' sigma R and a drawn lazy job went
    Unaudited). The bond stays locked until the conclusion."""
    job = good_job(c, challenge_window=1_000)
    before = {v.address: c.court.getVerifier(v) for v in c.verifiers}  # (other tests' cases may hold locks)
    auditor = c.audit(job, GOOD)
    free0, locked0 = before[auditor.address].free, before[auditor.address].locked
    tallied = c.chain.blocks.head.timestamp
    case = c.case(job)
    assert case.phase == TALLIED and case.canaryEnd == tallied + PARAMS["canaryWindow"]
    assert case.windowEnd == c.market.verificationInfo(job).challengeDeadline > case.canaryEnd
    v = c.court.getVerifier(auditor)
    assert (v.free, v.locked) == (free0 - SIGMA_R, locked0 + SIGMA_R)  # bond + reserve = max(B_a, sigma R)
    with reverts_with("NothingDue"):
        c.court.releaseReserve(job, sender=c.others[2])  # the canary window is still open
    c.wait_until(case.canaryEnd)
    receipt = c.tx(c.court.releaseReserve, job, sender=c.others[2])  # anyone
    [ev] = list(receipt.events.filter(c.court.ReserveReleased))
    assert (ev.jobId, ev.verifier, ev.reserve) == (job, auditor.address, SIGMA_R - B_AUDIT)
    v = c.court.getVerifier(auditor)
    assert (v.free, v.locked) == (free0 - B_AUDIT, locked0 + B_AUDIT)
    with reverts_with("NothingDue"):
        c.court.releaseReserve(job, sender=auditor)  # once
    with reverts_with("NothingDue"):
        c.advance(job)  # the case still waits for the challenge deadline
    before = wallet(c, auditor)
    receipt = c.finish_window(job)
    assert c.case(job).outcome == RIGHT
    [settled] = list(receipt.events.filter(c.court.SeatSettled))
    assert (settled.paid, settled.bondReturned, settled.bondForfeited) == (A, B_AUDIT, 0)  # no second release
    v = c.court.getVerifier(auditor)
    assert (v.free, v.locked) == (free0, locked0)
    assert wallet(c, auditor) == before + A


def test_no_reserve_release_for_a_challenged_or_disagreeing_audit(c):
    """Only an agreeing audit nobody challenged waits Tallied in round 0: once challenged, its jury
    decides, and a juror who audited the job (its reserve released) locks a reserve again."""
    job = good_job(c, challenge_window=1_000)
    before = {v.address: c.court.getVerifier(v) for v in c.verifiers}
    auditor = c.audit(job, GOOD)
    c.wait_until(c.case(job).canaryEnd)
    c.tx(c.court.releaseReserve, job, sender=auditor)
    c.tx(c.court.challenge, job, sender=c.requester, bonds=B_CHALLENGE)
    with reverts_with("NothingDue"):
        c.court.releaseReserve(job, sender=auditor)  # the case is a jury's now
    c.ready()
    anchor = c.case(job).anchor
    for i in range(64):  # a draw that seats the auditor on the jury (the stub's value is settable)
        if c.court.drawnFor(job, 1, 0) == auditor.address:
            break
        c.rand.setValue(anchor, keccak(i.to_bytes(32, "big")), sender=c.owner)
    first: dict[str, int] = {}
    for seat in range(3):
        holder = c.known[c.court.drawnFor(job, 1, seat)]
        receipt = c.tx(c.court.takeSeat, job, seat, sender=holder)
        [taken] = list(receipt.events.filter(c.court.SeatTaken))
        first.setdefault(holder.address, taken.reserve)
    # Every holder's first jury seat locks sigma R with its bond, the auditor's too (its audit seat
    # keeps only its bond): sigma R a case backs each juror's seats.
    assert auditor.address in first and set(first.values()) == {SIGMA_R - B_JUROR}
    for seat in range(3):
        holder = c.known[c.court.getSeat(job, 1, seat).holder]
        c.tx(c.court.commit, job, seat, seat_commitment(holder.address, job, 1, seat, GOOD), sender=holder)
    for seat in range(3):
        holder = c.known[c.court.getSeat(job, 1, seat).holder]
        c.tx(c.court.reveal, job, seat, GOOD, SALT, sender=holder)
    c.advance(job)
    c.bonds = 0
    c.finish_window(job)
    assert c.case(job).outcome == RIGHT
    for v in c.verifiers:
        info = c.court.getVerifier(v)
        b = before[v.address]
        assert (info.free, info.locked) == (b.free, b.locked), v  # every bond and reserve back, once

    # A disagreeing audit goes to a jury at once: never Tallied in round 0, nothing to release.
    bad = c.job(BAD, challenge_window=1_000)
    GOOD_OF[bad] = BAD
    c.audit(bad, GOOD)
    assert c.case(bad).round == 1
    c.wait(PARAMS["canaryWindow"] + 1)
    with reverts_with("NothingDue"):
        c.court.releaseReserve(bad, sender=c.owner)


def test_an_agreeing_audit_after_the_challenge_deadline_waits_the_canary_window_only(c):
    """With a challenge window shorter than the audit, the canary window still runs after the tally."""
    job = good_job(c, challenge_window=20)
    c.audit(job, GOOD, tally=False)
    c.wait_until(c.market.verificationInfo(job).challengeDeadline)
    receipt = c.advance(job)
    case = c.case(job)
    assert case.phase == TALLIED and case.windowEnd == receipt.timestamp + PARAMS["canaryWindow"]
    c.finish_window(job)
    assert c.case(job).outcome == RIGHT


def test_an_unaudited_drawn_job_keeps_its_challenge_window(c):
    """Nobody takes the drawn audit: the case waits as Tallied (Unaudited) until the challenge
    deadline instead of settling ~48 s after the submission (reviewer C, F1b); a challenge in the
    window takes it to a K = 3 jury, which judges it."""
    job = c.job(BAD, challenge_window=1_000)
    GOOD_OF[job] = BAD
    _nobody_audits(c, job)
    case = c.case(job)
    assert case.phase == TALLIED and case.tally == UNAUDITED
    assert c.chain.pending_timestamp < c.market.verificationInfo(job).challengeDeadline - 900
    c.tx(c.court.challenge, job, sender=c.requester, bonds=B_CHALLENGE)
    case = c.case(job)
    assert case.phase == ACTIVE and case.round == 1
    c.jury(job, [GOOD] * 3, provider_reveals=True)
    c.advance(job)
    c.bonds = 0
    c.finish_window(job)
    assert c.case(job).outcome == WRONG


# ------------------------------------------------------------------------------------- params and leave


def test_set_params_enforces_the_constraints(c):
    for field, bad in [
        ("jurorPayBps", 10_999),
        ("auditorBondBps", 3 * 11_000 - 1),
        ("challengeBondBps", 3 * 11_000 - 1),
        ("jurorBondBps", 3 * 11_000 - 1),
        ("canarySlashMul", 19),
        ("revealWindow", 4),
        ("activationDelayBlocks", 0),
        ("betaBps", 1_001),
        ("rhoPct", 99),
    ]:
        with ape.reverts():
            c.court.setParams(params_tuple(**{field: bad}), sender=c.owner)
    # C6: every member (from minStake) can sit for every job the market admits: minStake >= sigma * maxReward.
    assert c.court.maxVerifiableReward() == PARAMS["minStake"] // PARAMS["canarySlashMul"]
    c.market.setMaxReward(PARAMS["minStake"] // 20 + 1, sender=c.owner)
    with ape.reverts(c.court.ParamOutOfBounds, name="minStake"):
        c.court.setParams(params_tuple(), sender=c.owner)
    c.tx(c.court.setParams, params_tuple(minStake=20 * (PARAMS["minStake"] // 20 + 1)), sender=c.owner)
    c.market.setMaxReward(0, sender=c.owner)
    # The market's audit escrow floor: 1.1 R of audit pay + the jury deposit 3 w (here 4.4 R).
    assert c.court.minAuditFeeBps() == 11_000 + 3 * PARAMS["jurorPayBps"] == 44_000
    version = c.court.paramsVersion()
    c.tx(c.court.setParams, params_tuple(canaryWindow=30), sender=c.owner)
    assert c.court.paramsVersion() == version + 1
    d = 1
    seat_delay = d * PARAMS["blockTime"] + PARAMS["startWindow"] + PARAMS["inclusionTime"]
    assert c.court.requiredChallengeWindow() == seat_delay
    cycle = seat_delay + 10 * 2 + PARAMS["setupTime"] + PARAMS["inclusionTime"] + PARAMS["revealWindow"]
    horizon = 4 * 3 * cycle + 30 + 3 * PARAMS["appealWindow"] + PARAMS["arbiterWindow"] + PARAMS["arbiterDelay"]
    assert c.court.maxHorizon(10) == horizon


def test_leaving_stake_waits_the_leave_delay_and_stays_slashable(c):
    v = c.verifiers[0]
    c.tx(c.court.requestLeave, 100 * TOKEN, sender=v)
    info = c.court.getVerifier(v)
    assert info.unbonding == 100 * TOKEN and info.free == STAKE - 100 * TOKEN
    with ape.reverts():
        c.court.withdrawLeft(sender=v)
    c.wait_until(info.releaseAt)
    before = wallet(c, v)
    c.tx(c.court.withdrawLeft, sender=v)
    assert wallet(c, v) == before + 100 * TOKEN


def test_modules_refuse_direct_calls(c, project):
    assert c.court.modules() == (c.engine.address, c.engine.desk())
    desk = project.CourtDesk.at(c.engine.desk())
    with ape.reverts():
        c.engine.advance(1, sender=c.owner)
    with ape.reverts():
        desk.join(STAKE, 0, sender=c.verifiers[0])


def test_provider_not_revealing_is_wrong(c):
    job = c.job(BAD)
    GOOD_OF[job] = BAD
    auditor = c.audit(job, GOOD, reveal_provider=False, tally=False)
    with ape.reverts():
        c.advance(job)  # the reveal window is open
    c.wait_until(c.case(job).revealDeadline)
    c.advance(job)
    case = c.case(job)
    assert case.outcome == WRONG and case.phase == CONCLUDED
    # The auditor is paid A from the slashed collateral.
    assert c.court.getVerifier(auditor).free == STAKE


def test_jury_no_show_after_reveals_is_not_redrawn_and_a_decided_tally_stands(c):
    """Seats 0 and 1 reveal the provider's digest, seat 2 took its seat and never committed. Its
    bond is forfeited into the case's pot, and it is NOT redrawn: the round's votes are public, a
    seat drawn now could copy them. Its vote could not change 2 of 3 for the provider: the tally
    stands (ProviderRight), and the forfeited bond pays the jury with the wrong auditor's."""
    job = good_job(c)
    auditor = c.audit(job, BAD)
    c.ready()
    holders = []
    for seat in range(3):
        h = c.known[c.court.drawnFor(job, 1, seat)]
        c.tx(c.court.takeSeat, job, seat, sender=h)
        holders.append(h)
    for seat in range(2):  # seat 2 never commits
        h = holders[seat]
        c.tx(c.court.commit, job, seat, seat_commitment(h.address, job, 1, seat, GOOD), sender=h)
    c.wait_until(c.case(job).commitDeadline)
    for seat in range(2):
        c.tx(c.court.reveal, job, seat, GOOD, SALT, sender=holders[seat])
    c.wait_until(c.case(job).revealDeadline)
    supply = c.token.totalSupply()
    receipt = c.advance(job)
    assert receipt.events.filter(c.court.SeatNoShow)[0].bondBurned == B_JUROR
    assert c.token.totalSupply() == supply  # held for the pot
    case = c.case(job)
    assert case.redraws == 0 and case.round == 1 and case.phase == TALLIED and case.tally == RIGHT
    assert case.taken == 2 and case.revealed == 2
    receipt = c.finish_window(job)
    assert c.case(job).outcome == RIGHT
    pay = seat_pay(c, receipt)
    assert pay[(1, 0)] == pay[(1, 1)] == W and (1, 2) not in pay and pay[(0, 0)] == 0
    # pot = the wrong auditor's bond + the no-show's; two jurors w each; the rest is burned.
    assert c.token.totalSupply() == supply - (B_AUDIT + B_JUROR - 2 * W)
    assert STAKE - c.court.getVerifier(auditor).free >= B_AUDIT


def test_jury_no_shows_before_any_reveal_are_redrawn(c):
    """No seat revealed (all three took their seats, none committed): nothing is public yet, so
    the no-shows are redrawn, their bonds forfeited into the pot."""
    job = good_job(c)
    c.audit(job, BAD)
    c.ready()
    for seat in range(3):
        c.tx(c.court.takeSeat, job, seat, sender=c.known[c.court.drawnFor(job, 1, seat)])
    c.wait_until(c.case(job).revealDeadline)
    receipt = c.advance(job)
    assert len(receipt.events.filter(c.court.SeatNoShow)) == 3
    case = c.case(job)
    assert case.phase == ACTIVE and case.round == 1 and case.redraws == 1 and case.taken == 0
    c.jury(job, [GOOD] * 3)
    c.advance(job)
    assert c.case(job).tally == RIGHT
    c.finish_window(job)
    assert c.case(job).outcome == RIGHT


def test_no_redraw_after_a_reveal_so_a_late_seat_cannot_copy_the_revealed_votes(c):
    """Round 1 (K = 3): seats 0 and 1 commit, seat 2 stays empty, and nobody calls `advance` before
    the commit deadline, so reveals open and seats 0, 1 and the provider reveal. Before the fix,
    `advance` then redrew seat 2 with fresh deadlines: its holder read the revealed digests, committed
    a copy without running the job and was paid w. Now the empty seat is not redrawn once a seat
    revealed; 2 of 3 against the provider is a tally the missing vote cannot change (reviewer C, F2)."""
    job = c.job(BAD, audit_bps=0)  # a lazy provider's result, not drawn
    GOOD_OF[job] = BAD
    c.tx(c.court.challenge, job, sender=c.others[1], bonds=B_CHALLENGE)  # straight to a K = 3 jury
    c.ready()
    holders = []
    for seat in (0, 1):
        h = c.known[c.court.drawnFor(job, 1, seat)]
        c.tx(c.court.takeSeat, job, seat, sender=h)
        c.tx(c.court.commit, job, seat, seat_commitment(h.address, job, 1, seat, GOOD), sender=h)
        holders.append(h)
    c.wait_until(c.case(job).commitDeadline)  # reveals open; seat 2 still empty
    for seat, h in enumerate(holders):
        c.tx(c.court.reveal, job, seat, GOOD, SALT, sender=h)
    c.tx(c.court.revealProvider, job, BAD, SALT, sender=c.provider)
    late = c.known[c.court.drawnFor(job, 1, 2)]
    with reverts_with("SeatDeadlinePassed"):
        c.court.takeSeat(job, 2, sender=late)
    c.advance(job)  # anyone: no redraw; the round is tallied as it stands
    case = c.case(job)
    assert case.redraws == 0 and case.revealed == 2 and case.round == 1
    assert case.phase == TALLIED and case.tally == WRONG and case.topDigest == GOOD
    with reverts_with("WrongPhase"):
        c.court.takeSeat(job, 2, sender=late)
    c.bonds = 0  # the challenge bond is released at the conclusion
    receipt = c.finish_window(job)
    assert c.case(job).outcome == WRONG
    pay = seat_pay(c, receipt)
    assert pay == {(1, 0): W, (1, 1): W}  # only the two seats that ran it


def test_a_missing_vote_that_could_change_the_tally_escalates_to_the_next_jury(c):
    """The juror + no-show attack: the provider's accomplice reveals the provider's digest, an
    honest juror the right one, the third seat took its seat and never showed. Its vote would have
    decided the round (ProviderWrong or Split), and a redraw now would let the new holder copy the
    revealed votes: the round escalates to a fresh 7-jury instead, without an appeal bond. Its pay
    comes from the pot, which the no-show's forfeited bond joins: with the deployed juror bond
    (B_j = 3 w) the loser's collateral + the accomplice's bond + the no-show's cover all 8 coherent
    jurors."""
    c.tx(c.court.setParams, params_tuple(jurorBondBps=33_000), sender=c.owner)
    try:
        b_j = 33 * TOKEN
        job = c.job(BAD)
        GOOD_OF[job] = BAD
        auditor = c.audit(job, GOOD)
        assert c.case(job).round == 1
        c.ready()
        holders = [c.known[c.court.drawnFor(job, 1, seat)] for seat in range(3)]
        for seat, h in enumerate(holders):
            c.tx(c.court.takeSeat, job, seat, sender=h)
        for seat, d in ((0, BAD), (1, GOOD)):  # seat 2 never commits
            c.tx(c.court.commit, job, seat, seat_commitment(holders[seat].address, job, 1, seat, d), sender=holders[seat])
        c.wait_until(c.case(job).commitDeadline)
        for seat, d in ((0, BAD), (1, GOOD)):
            c.tx(c.court.reveal, job, seat, d, SALT, sender=holders[seat])
        c.wait_until(c.case(job).revealDeadline)
        receipt = c.advance(job)
        tallied = receipt.events.filter(c.court.RoundTallied)[0]
        assert tallied.round == 1 and tallied.tally == SPLIT and tallied.windowEnd == 0
        case = c.case(job)
        assert case.phase == ACTIVE and case.round == 2 and case.redraws == 0 and case.taken == 0
        with reverts_with("AppealClosed"):
            c.court.appeal(job, sender=c.provider)
        c.jury(job, [GOOD] * 7)
        c.advance(job)
        assert c.case(job).tally == WRONG
        supply = c.token.totalSupply()
        receipt = c.finish_window(job)
        assert c.case(job).outcome == WRONG
        pay = seat_pay(c, receipt)
        assert [pay[(2, i)] for i in range(7)] == [W] * 7
        assert [pay[(1, i)] for i in range(2)] == [0, W] and (1, 2) not in pay
        assert pay[(0, 0)] == A
        # pot = collateral + the accomplice's bond + the no-show's; 8 jurors w each; the rest burned.
        assert c.token.totalSupply() == supply - (COLLATERAL + 2 * b_j - 8 * W)
        assert c.court.getVerifier(auditor).locked == 0
    finally:
        c.tx(c.court.setParams, params_tuple(), sender=c.owner)


def test_an_escalated_round_nobody_joins_leaves_the_short_tally_standing(c):
    """An escalation carries no appeal bond: when nobody takes the 7-jury's seats, the short round's
    tally (a Split here) concludes the case, with nothing to return to anyone."""
    job = c.job(BAD)
    GOOD_OF[job] = BAD
    c.audit(job, GOOD)
    c.ready()
    holders = [c.known[c.court.drawnFor(job, 1, seat)] for seat in range(3)]
    for seat, h in enumerate(holders):
        c.tx(c.court.takeSeat, job, seat, sender=h)
    for seat, d in ((0, BAD), (1, GOOD)):
        c.tx(c.court.commit, job, seat, seat_commitment(holders[seat].address, job, 1, seat, d), sender=holders[seat])
    c.wait_until(c.case(job).commitDeadline)
    for seat, d in ((0, BAD), (1, GOOD)):
        c.tx(c.court.reveal, job, seat, d, SALT, sender=holders[seat])
    c.wait_until(c.case(job).revealDeadline)
    c.advance(job)
    assert c.case(job).round == 2
    for _ in range(PARAMS["maxRedraws"] + 1):
        c.wait_until(c.case(job).seatDeadline)
        c.advance(job)
    case = c.case(job)
    assert case.phase == CONCLUDED and case.outcome == SPLIT and case.round == 1


# ------------------------------------------------------------------------------------- economics


def seat_pay(c: Court, receipt) -> dict[tuple[int, int], int]:
    """(round, seat) -> the pay of every seat settled by the concluding transaction."""
    return {(e.round, e.seat): e.paid for e in receipt.events.filter(c.court.SeatSettled)}


def test_a_verify_none_job_cannot_be_challenged_or_audited(c):
    job = c.job(GOOD, audit_bps=0, escrow=0)  # declared verify: none (A = 0, p_job = 0)
    GOOD_OF[job] = GOOD
    with reverts_with("NotVerifiable"):
        c.court.challenge(job, sender=c.others[1])
    assert c.case(job).phase == P_NONE
    forced = c.job(GOOD, audit_bps=10_000, escrow=0)  # even a stub that claims it is drawn
    with reverts_with("NotVerifiable"):
        c.court.startAudit(forced, sender=c.known[c.court.drawnFor(forced, 0, 0)])


def test_appeal_won_by_the_provider_pays_every_coherent_juror_of_every_round(c):
    job = good_job(c)  # the provider is right
    c.audit(job, BAD)  # a wrong auditor
    round1 = c.jury(job, [BAD, BAD, GOOD])  # a wrong K = 3 jury: 2 incoherent, 1 coherent
    c.advance(job)
    assert c.case(job).tally == WRONG
    provider_before = wallet(c, c.provider)
    requester_before = wallet(c, c.requester)
    c.tx(c.court.appeal, job, sender=c.provider, bonds=7 * W)
    round2 = c.jury(job, [GOOD] * 7)
    c.advance(job)
    assert c.case(job).tally == RIGHT
    supply = c.token.totalSupply()
    c.bonds = 0
    receipt = c.finish_window(job)
    assert c.case(job).outcome == RIGHT
    pay = seat_pay(c, receipt)
    # Every coherent juror of every round is paid w; incoherent seats (and the wrong auditor) get 0.
    assert [pay[(2, i)] for i in range(7)] == [W] * 7
    assert [pay[(1, i)] for i in range(3)] == [0, 0, W]
    assert pay[(0, 0)] == 0
    # The pot: the auditor's bond 35 + 2 incoherent juror bonds 66 + the appeal bond 77 = 178;
    # jurors 8 w = 88; the provider's appeal bond is repaid in full from the 90 left (at B_j = w it
    # was 31 short, the README's old worst case for 3 -> 7); 13 burned; E comes back whole.
    pot = B_AUDIT + 2 * B_JUROR + 7 * W
    assert wallet(c, c.provider) == provider_before  # its 7 w back
    assert c.token.totalSupply() == supply - (pot - 8 * W - 7 * W) and pot - 15 * W == 13 * TOKEN
    assert wallet(c, c.requester) == requester_before + E
    assert len(round1) == 3 and len(round2) == 7


def test_appeal_lost_by_the_provider_pays_every_coherent_juror_of_every_round(c):
    job = c.job(BAD)
    GOOD_OF[job] = BAD
    c.audit(job, GOOD)
    c.jury(job, [GOOD] * 3)
    c.advance(job)
    assert c.case(job).tally == WRONG
    c.tx(c.court.appeal, job, sender=c.provider, bonds=7 * W)
    c.jury(job, [GOOD] * 6 + [BAD])  # one juror sides with the provider
    c.advance(job)
    assert c.case(job).tally == WRONG
    supply = c.token.totalSupply()
    requester_before = wallet(c, c.requester)
    c.bonds = 0
    receipt = c.finish_window(job)
    assert c.case(job).outcome == WRONG
    pay = seat_pay(c, receipt)
    assert [pay[(2, i)] for i in range(7)] == [W] * 6 + [0]
    assert [pay[(1, i)] for i in range(3)] == [W] * 3
    assert pay[(0, 0)] == A  # the auditor who caught it, from the escrow
    # pot = collateral 40 + the lost appeal bond 77 + the incoherent juror's bond 33 = 150; jurors
    # 9 w = 99; the 51 left are burned. The requester gets the unused deposit E - A back.
    assert c.token.totalSupply() == supply - (COLLATERAL + 7 * W + B_JUROR - 9 * W)
    assert wallet(c, c.requester) == requester_before + E - A


# ------------------------------------------------------------------------------------- class membership


def test_a_fully_withdrawn_verifier_leaves_its_class_and_its_slot_is_reused_at_the_cap(c, accounts):
    cls = 77
    c.tx(c.court.setClassOpen, cls, True, sender=c.owner)
    cap = c.court.MAX_CLASS_MEMBERS()
    members = [accounts.generate_test_account() for _ in range(cap + 1)]
    for m in members:
        c.owner.transfer(m, 10**17)
        c.token.mint(m, 10 * TOKEN, sender=c.owner)
        c.token.approve(c.court, 2**256 - 1, sender=m)
        c.known[m.address] = m
    for m in members[:cap]:
        c.court.join(TOKEN, cls, sender=m)  # (conservation checked once below: 128 joins)
    c.check()
    assert len(c.court.classMembers(cls)) == cap
    with reverts_with("ClassFull"):
        c.court.join(TOKEN, cls, sender=members[cap])
    leaver = members[5]
    c.tx(c.court.requestLeave, TOKEN, sender=leaver)
    assert c.court.getVerifier(leaver).joined  # still a member while unbonding (and slashable)
    c.wait_until(c.court.getVerifier(leaver).releaseAt)
    receipt = c.tx(c.court.withdrawLeft, sender=leaver)
    assert [(e.verifier, e.platformClass) for e in receipt.events.filter(c.court.ClassLeft)] == [(leaver.address, cls)]
    listed = c.court.classMembers(cls)
    assert len(listed) == cap and listed[5] == "0x" + "00" * 20
    assert not c.court.getVerifier(leaver).joined
    # The slot is reused: the newcomer takes it; every other member keeps its place in the walk.
    c.tx(c.court.join, TOKEN, cls, sender=members[cap])
    listed = c.court.classMembers(cls)
    assert listed[5] == members[cap].address
    assert [a for i, a in enumerate(listed) if i != 5] == [m.address for i, m in enumerate(members[:cap]) if i != 5]
    with reverts_with("ClassFull"):
        c.court.join(TOKEN, cls, sender=leaver)  # full again
    # A second leaver frees a slot for the first one to rejoin.
    other = members[9]
    c.tx(c.court.requestLeave, TOKEN, sender=other)
    c.wait_until(c.court.getVerifier(other).releaseAt)
    c.tx(c.court.withdrawLeft, sender=other)
    c.tx(c.court.join, 2 * TOKEN, cls, sender=leaver)
    info = c.court.getVerifier(leaver)
    assert info.joined and info.free == 2 * TOKEN and info.platformClass == cls
    assert c.court.classMembers(cls)[9] == leaver.address
    for m in members:  # the chain state is reverted after the test: keep later checks short
        del c.known[m.address]


def _fill_class(c: Court, accounts, cls: int, stakes: list[int]) -> list[Any]:
    """Opens class `cls` and joins one fresh account per stake (the test removes them from c.known)."""
    c.tx(c.court.setClassOpen, cls, True, sender=c.owner)
    members = [accounts.generate_test_account() for _ in stakes]
    for m, stake in zip(members, stakes):
        c.owner.transfer(m, 10**17)
        c.token.mint(m, stake + 1_000 * TOKEN, sender=c.owner)
        c.token.approve(c.court, 2**256 - 1, sender=m)
        c.known[m.address] = m
        c.court.join(stake, cls, sender=m)
    c.check()
    return members


def _newcomer(c: Court, accounts, tokens: int) -> Any:
    m = accounts.generate_test_account()
    c.owner.transfer(m, 10**17)
    c.token.mint(m, tokens, sender=c.owner)
    c.token.approve(c.court, 2**256 - 1, sender=m)
    c.known[m.address] = m
    return m


def test_a_full_class_takes_a_larger_joiner_in_place_of_its_smallest_unlocked_member(c, accounts):
    """128 minimum stakes no longer lock a class: a larger joiner displaces the smallest member
    (its stake to unbonding, still slashable), and every pending draw keeps its pick."""
    cls = 78
    cap = c.court.MAX_CLASS_MEMBERS()
    stakes = [3 * TOKEN] * cap
    stakes[7] = 2 * TOKEN  # the smallest staked member
    members = _fill_class(c, accounts, cls, stakes)
    # A job of a provider in this class, submitted before the displacement: its draws are pending.
    prov = _newcomer(c, accounts, 1_000 * TOKEN)
    c.court.setPlatformClass(cls, sender=prov)
    c.chain.mine(3)
    job = c.job(GOOD, provider=prov)
    seats = [(r, s) for r in range(4) for s in range(3)]
    before = [c.court.drawnFor(job, r, s) for r, s in seats]
    assert set(before) <= {m.address for m in members}
    # Member 9 unbonds its whole stake (still a member until it withdraws): the smallest now, at 0.
    leaver = members[9]
    c.tx(c.court.requestLeave, 3 * TOKEN, sender=leaver)
    release = c.court.getVerifier(leaver).releaseAt

    small = _newcomer(c, accounts, 2 * TOKEN)
    big = _newcomer(c, accounts, 5 * TOKEN)
    big2 = _newcomer(c, accounts, 5 * TOKEN)
    receipt = c.tx(c.court.join, 5 * TOKEN, cls, sender=big)
    [d] = receipt.events.filter(c.court.VerifierDisplaced)
    assert (d.verifier, d.by, d.platformClass, d.stake) == (leaver.address, big.address, cls, 0)
    assert not list(receipt.events.filter(c.court.LeaveRequested))  # its unbonding keeps its release time
    gone = c.court.getVerifier(leaver)
    assert (gone.joined, gone.unbonding, gone.releaseAt) == (False, 3 * TOKEN, release)
    with reverts_with("ClassFull"):
        c.court.join(2 * TOKEN, cls, sender=small)  # not more than the smallest (member 7's 2)
    receipt = c.tx(c.court.join, 5 * TOKEN, cls, sender=big2)
    victim = members[7]
    [d] = receipt.events.filter(c.court.VerifierDisplaced)
    assert (d.verifier, d.by, d.platformClass, d.stake) == (victim.address, big2.address, cls, 2 * TOKEN)
    assert [e.verifier for e in receipt.events.filter(c.court.ClassLeft)] == [victim.address]
    out = c.court.getVerifier(victim)
    assert (out.joined, out.free, out.locked, out.unbonding) == (False, 0, 0, 2 * TOKEN)
    listed = c.court.classMembers(cls)
    assert len(listed) == cap and (listed[9], listed[7]) == (big.address, big2.address)
    now = c.chain.blocks.head.number
    assert c.court.classStakeAt(cls, now) == sum(stakes) - 3 * TOKEN - 2 * TOKEN + 2 * 5 * TOKEN
    # The draws of the job submitted before are those of the class as it was at its snapshot.
    assert [c.court.drawnFor(job, r, s) for r, s in seats] == before
    # The displaced stake unbonds like a leave; its withdrawal does not touch the slot it lost.
    c.wait_until(out.releaseAt)
    receipt = c.tx(c.court.withdrawLeft, sender=victim)
    assert not list(receipt.events.filter(c.court.ClassLeft))
    assert c.court.classMembers(cls)[7] == big2.address and c.court.getVerifier(big2).joined
    for m in [*members, prov, small, big, big2]:
        del c.known[m.address]


def test_a_freed_slot_never_counts_its_old_holders_stake_elsewhere(c, accounts):
    """A verifier that left class A (its slot freed) and staked a fortune in class B is not drawn
    for class A: the slot's history says address(0) from its leave, and the address's stake
    history (which is not per class) is never read for that slot again."""
    cls, other = 81, 82
    members = _fill_class(c, accounts, cls, [TOKEN] * 4)
    c.tx(c.court.setClassOpen, other, True, sender=c.owner)
    leaver = members[0]  # slot 0: the first of the walk
    c.tx(c.court.requestLeave, TOKEN, sender=leaver)
    c.wait_until(c.court.getVerifier(leaver).releaseAt)
    c.tx(c.court.withdrawLeft, sender=leaver)
    c.tx(c.court.join, 1_000 * TOKEN, other, sender=leaver)  # a thousand times class A's total
    prov = _newcomer(c, accounts, 1_000 * TOKEN)
    c.court.setPlatformClass(cls, sender=prov)
    c.chain.mine(3)
    job = c.job(GOOD, provider=prov)
    picks = [c.court.drawnFor(job, r, s) for r in range(4) for s in range(3)]
    assert set(picks) <= {m.address for m in members[1:]}, picks
    for m in [*members, prov]:
        del c.known[m.address]


def test_a_member_with_a_locked_bond_is_not_displaced(c, accounts):
    cls = 79
    cap = c.court.MAX_CLASS_MEMBERS()
    stakes = [STAKE + TOKEN] * cap
    stakes[4] = STAKE  # the smallest, but about to hold a seat
    members = _fill_class(c, accounts, cls, stakes)
    prov = _newcomer(c, accounts, 1_000 * TOKEN)
    c.court.setPlatformClass(cls, sender=prov)
    c.chain.mine(3)
    job = c.job(GOOD, provider=prov)
    GOOD_OF[job] = GOOD
    anchor = c.market.verificationInfo(job).anchorBlock
    # Choose the randomness so that the audit seat is drawn for the smallest member.
    for i in range(2_000):
        c.rand.setValue(anchor, keccak(i.to_bytes(32, "big")), sender=c.owner)
        if c.court.drawnFor(job, 0, 0) == members[4].address:
            break
    else:
        pytest.fail("no randomness drew member 4")
    c.tx(c.court.startAudit, job, sender=members[4])
    assert c.court.getVerifier(members[4]).locked == SIGMA_R  # the bond and its canary reserve
    big = _newcomer(c, accounts, STAKE + 2 * TOKEN)
    receipt = c.tx(c.court.join, STAKE + 2 * TOKEN, cls, sender=big)
    [d] = receipt.events.filter(c.court.VerifierDisplaced)
    assert d.verifier == members[0].address and d.stake == STAKE + TOKEN  # the first smallest unlocked
    assert c.court.getVerifier(members[4]).joined
    assert c.court.classMembers(cls)[0] == big.address
    for m in [*members, prov, big]:
        del c.known[m.address]


def test_a_partial_leave_keeps_the_membership(c):
    v = c.verifiers[1]
    c.tx(c.court.requestLeave, TOKEN, sender=v)
    c.wait_until(c.court.getVerifier(v).releaseAt)
    receipt = c.tx(c.court.withdrawLeft, sender=v)
    assert not list(receipt.events.filter(c.court.ClassLeft))
    assert c.court.getVerifier(v).joined and v.address in c.court.classMembers(0)
