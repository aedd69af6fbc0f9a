"""JobMarket v2 (issue 11): every transition, every court Outcome, the draw, fees and parameters.

Each test states its rule in its docstring. Money is checked with a `Ledger` of token balances,
market credits and provider stakes (exactly what moved, nothing else), and the market's header
invariant (`assert_market_invariant`) after the interesting transitions.

Draws use MockRandomness (`force_draw` sets the anchor block's value so that the job is, or is
not, drawn); the TestCourt stand-in drives `beginVerification` / `settle` with every Outcome.
The helpers at the top are shared with test_staking.py and test_token.py, which import them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import ape
import pytest
from ape.exceptions import CustomError
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak

from depinctl.demo import paid_for_other_jobs

from .conftest import TOKEN, deploy_test_set, make_spec

ZERO_ADDRESS = "0x" + "00" * 20
ZERO32 = b"\x00" * 32
BPS = 10_000
# JobStatus
NONE, OPEN, CLAIMED, SUBMITTED, DISPUTED, FINALIZED, CANCELLED, EXPIRED, TIMED_OUT, RESOLVED = range(10)
LIVE = (OPEN, CLAIMED, SUBMITTED, DISPUTED)
# Outcome
O_NONE, PROVIDER_RIGHT, PROVIDER_WRONG, SPLIT, UNAUDITED, CANARY = range(6)
# devnet parameters (deployments/parameters.toml)
FEE_BPS, KAPPA_BPS, AUDIT_FEE_BPS, ALPHA_BPS, BETA_BPS, NO_FAULT_BPS = 200, 5_000, 44_000, 15_000, 1_000, 200


class Terms(NamedTuple):
    """`IJobMarket.JobTerms`, in field order."""

    reward: int
    claim_window: int
    max_runtime: int
    challenge_window: int
    collateral_pct: int
    cpu_seconds: int
    verify_mode: int = 0


# Odd amounts so that rounding shows.
TERMS = Terms(8 * TOKEN + 3, 600, 60, 30, 450, 120)
REWARD = TERMS.reward
COLLATERAL = REWARD * TERMS.collateral_pct // 100
FEE = REWARD * FEE_BPS // BPS
AUDIT_FEE = REWARD * AUDIT_FEE_BPS // BPS  # the audit escrow E (audit pay + jury deposit)
ESCROW = REWARD + FEE + AUDIT_FEE
REBATE = FEE * KAPPA_BPS // BPS
BURN = FEE - REBATE
NO_FAULT = REWARD * NO_FAULT_BPS // BPS
RESULT_HASH = keccak(b"result")  # the commitment the tests submit
RESULT_URI = "http://provider-1.local:8700/results/1"


def p_job(collateral_pct: int, alpha=ALPHA_BPS, fee=FEE_BPS, kappa=KAPPA_BPS, beta=BETA_BPS) -> int:
    """p_job = min(1, alpha*g/(g + k - beta)) in bps, g = 1 + kappa*f (the contract's integer math)."""
    g = BPS + kappa * fee // BPS
    return min(BPS, alpha * g // (g + collateral_pct * 100 - beta))


def drawn_by(value: bytes, job_id: int, audit_bps: int) -> bool:
    return int.from_bytes(keccak(abi_encode(["bytes32", "uint256"], [value, job_id])), "big") % BPS < audit_bps


# ------------------------------------------------------------------------------------- helpers


def b32(text: str) -> bytes:
    """A Solidity `bytes32` string literal, as the contracts use for parameter names."""
    return text.encode().ljust(32, b"\0")


@contextmanager
def reverts(error: Any, **fields: Any) -> Iterator[Any]:
    """Expects a revert with the custom error `error` whose inputs are exactly `fields`.

    Stricter than `ape.reverts(error, **fields)`, which passes when the revert is not a decoded
    custom error and ignores field names the error does not have.
    """
    with ape.reverts() as info:
        yield info
    exc = info.value
    name = error.__name__
    assert isinstance(exc, CustomError), f"expected {name}{fields}, got {exc!r}"
    assert type(exc).__name__ == name, f"expected {name}{fields}, got {type(exc).__name__}{exc.inputs}"
    assert dict(exc.inputs) == fields, f"{name}: expected {fields}, got {dict(exc.inputs)}"


def expect_event(tx: Any, event_type: Any, **fields: Any) -> None:
    """`tx` emitted exactly one `event_type` from its contract, with exactly these arguments."""
    logs = [log for log in tx.decode_logs(event_type) if log.contract_address == event_type.contract.address]
    assert len(logs) == 1, f"expected one {event_type.name}, got {logs}"
    assert dict(logs[0].event_arguments) == fields


def no_event(tx: Any, event_type: Any) -> None:
    assert tx.decode_logs(event_type) == []


def post(market: Any, sender: Any, terms: Terms = TERMS, n: int = 0) -> Any:
    """Posts a job with a fresh spec; returns the receipt."""
    spec = make_spec(n)
    return market.postJob(keccak(spec), spec, tuple(terms), sender=sender)


def sign_permit(
    token: Any, signer: Any, spender: str, value: int, deadline: int, owner: str | None = None
) -> tuple[int, bytes, bytes]:
    """An EIP-2612 permit of `owner` (default: the signer) signed with the test account `signer`'s
    private key, for the owner's current nonce: (v, r, s)."""
    owner = owner or signer.address
    domain = token.eip712Domain()
    signed = Account.sign_typed_data(
        signer.private_key,
        domain_data={
            "name": domain.name,
            "version": domain.version,
            "chainId": domain.chainId,
            "verifyingContract": domain.verifyingContract,
        },
        message_types={
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ]
        },
        message_data={
            "owner": owner,
            "spender": spender,
            "value": value,
            "nonce": token.nonces(owner),
            "deadline": deadline,
        },
    )
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


class Ledger:
    """Token balances, market credits and provider stakes at one moment, to assert what moved.

    `changes()` returns only the entries that differ from the snapshot, so a test asserting
    `ledger.changes() == {...}` also asserts that nothing else moved.
    """

    def __init__(self, token: Any, market: Any, staking: Any, actors: dict[str, str], providers: dict[str, str]):
        self._token, self._market, self._staking = token, market, staking
        self._holders = {"market": market.address, "staking": staking.address, **actors}
        self._actors, self._providers = actors, providers
        self._start = self.read()

    def read(self) -> dict[str, int]:
        out = {name: self._token.balanceOf(addr) for name, addr in self._holders.items()}
        out["supply"] = self._token.totalSupply()
        for name, addr in self._actors.items():
            out[f"credit.{name}"] = self._market.withdrawableOf(addr)
        for name, addr in self._providers.items():
            info = self._staking.getProvider(addr)
            out[f"staked.{name}"] = info.staked
            out[f"locked.{name}"] = info.locked
            out[f"unbonding.{name}"] = info.unbonding
            out[f"completed.{name}"] = info.jobsCompleted
            out[f"slashed.{name}"] = info.jobsSlashed
        return out

    def changes(self) -> dict[str, int]:
        now = self.read()
        return {key: now[key] - self._start[key] for key in now if now[key] != self._start[key]}



def assert_market_invariant(market: Any, token: Any, accounts: list[str]) -> None:
    """token.balanceOf(market) == escrow (R + fee + A) of Open/Claimed/Submitted/Disputed jobs
    + withdrawable balances + pendingBurn (JobMarket's header invariant)."""
    escrow = 0
    for job_id in range(1, market.jobCount() + 1):
        job = market.getJob(job_id)
        if job.status in LIVE:
            escrow += job.reward + job.fee + job.auditFee
    credits = sum(market.withdrawableOf(a) for a in accounts)
    assert token.balanceOf(market.address) == escrow + credits + market.pendingBurn()


def force_draw(randomness: Any, market: Any, owner: Any, job_id: int, drawn: bool) -> bytes:
    """Sets the job's anchor-block value in MockRandomness so that the job is (not) drawn."""
    job = market.getJob(job_id)
    for i in range(1, 10_000):
        value = i.to_bytes(32, "big")
        if drawn_by(value, job_id, job.auditBps) == drawn:
            randomness.setValue(job.anchorBlock, value, sender=owner)
            return value
    raise AssertionError("no value found")


def past_window(chain: Any, market: Any, job_id: int) -> None:
    """Past the job's challenge deadline and its anchor block."""
    chain.pending_timestamp = market.getJob(job_id).deadline + 1
    chain.mine(2)


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def newcomer(accounts, owner, token):
    """An account holding 1,000 tokens that has approved nobody (accounts[6])."""
    acct = accounts[6]
    token.mint(acct, 1_000 * TOKEN, sender=owner)
    return acct


@pytest.fixture
def ledger(token, market, staking, requester, provider, provider2, stranger, court):
    def _make() -> Ledger:
        actors = {
            "requester": requester.address,
            "provider": provider.address,
            "provider2": provider2.address,
            "stranger": stranger.address,
            "court": court.address,
        }
        return Ledger(token, market, staking, actors, {"provider": provider.address})

    return _make


@pytest.fixture
def everyone(requester, provider, provider2, challenger, stranger, owner, court):
    return [a.address for a in (requester, provider, provider2, challenger, stranger, owner, court)]


@pytest.fixture
def job(market, requester, registered):
    post(market, requester)
    return market.jobCount()


@pytest.fixture
def claimed(market, provider, job):
    market.claimJob(job, sender=provider)
    return job


@pytest.fixture
def submitted(market, provider, claimed):
    market.submitResult(claimed, RESULT_HASH, RESULT_URI, sender=provider)
    return claimed


@pytest.fixture
def disputed(market, court, submitted, stranger):
    court.begin(submitted, sender=stranger)
    return submitted


# ------------------------------------------------------------------------------------- post


def test_post_escrows_reward_fee_and_audit_fee_from_the_wallet(market, token, requester, registered, ledger):
    """postJob escrows R + f*R + A (the audit escrow E = A + 3w, 4.4 R at the default parameters) from
    the wallet and snapshots p_job and the version."""
    led = ledger()
    tx = post(market, requester)
    assert led.changes() == {"market": ESCROW, "requester": -ESCROW}
    job = market.getJob(1)
    assert (job.reward, job.fee, job.auditFee, job.status) == (REWARD, FEE, AUDIT_FEE, OPEN)
    assert (job.auditBps, job.paramsVersion, job.verifyMode) == (p_job(450), 1, 0)
    assert job.commitment == ZERO32
    ev = tx.decode_logs(market.JobPosted)[0]
    # The spec hash is not stored (getJob has none): JobPosted's indexed topic carries it.
    assert ev.specHash == keccak(make_spec(0))
    assert (ev.fromCredit, ev.auditBps, ev.paramsVersion) == (0, p_job(450), 1)
    assert tuple(ev.terms) == tuple(TERMS) and ev.spec == make_spec(0)


def test_default_p_job_at_k_4_is_about_0_31(market, requester, registered):
    """With the defaults (alpha 1.5, f 2 %, kappa 0.5, beta 0.1) p_job at k = 4 is 3085 bps."""
    post(market, requester, TERMS._replace(collateral_pct=400))
    assert market.getJob(1).auditBps == p_job(400) == 3085


def test_post_from_credit_only_when_it_covers_the_escrow(market, token, requester, registered, ledger):
    """The credit balance pays when it covers R + f*R + A; otherwise the wallet pays it all."""
    market.deposit(ESCROW - 1, sender=requester)
    led = ledger()
    post(market, requester)
    assert led.changes() == {"market": ESCROW, "requester": -ESCROW}
    market.deposit(1, sender=requester)
    led = ledger()
    tx = post(market, requester, n=1)
    assert led.changes() == {"credit.requester": -ESCROW}
    assert tx.decode_logs(market.JobPosted)[0].fromCredit == ESCROW


def test_verify_none_escrows_no_audit_fee(market, requester, registered, ledger):
    """verifyMode 1: no audit fee, p_job 0."""
    led = ledger()
    post(market, requester, TERMS._replace(verify_mode=1))
    assert led.changes() == {"market": REWARD + FEE, "requester": -(REWARD + FEE)}
    job = market.getJob(1)
    assert (job.auditFee, job.auditBps, job.verifyMode) == (0, 0, 1)


def test_post_rejects_bad_terms(market, requester, registered):
    """Invalid verify mode, collateral below 400 %, challenge window below the minimum."""
    with reverts(market.InvalidVerifyMode, mode=2):
        post(market, requester, TERMS._replace(verify_mode=2))
    with reverts(market.TermOutOfBounds, name=b32("collateralPct"), value=300, min=400, max=1000):
        post(market, requester, TERMS._replace(collateral_pct=300))
    with reverts(market.TermOutOfBounds, name=b32("challengeWindow"), value=7, min=8, max=3600):
        post(market, requester, TERMS._replace(challenge_window=7))


def test_post_before_any_parameters_reverts(owner, params, requester):
    """A market without a parameter version refuses posts (NotConfigured)."""
    from ape import project

    token = project.RewardToken.deploy("T", "T", 10**30, owner.address, 0, sender=owner)
    rnd = project.BlockhashRandomness.deploy(sender=owner)
    market = project.JobMarket.deploy(token.address, rnd.address, True, 1, 16, owner.address, 1, 10**6, sender=owner)
    assert market.paramsVersion() == 0 and market.params().drawDelay == 1
    with reverts(market.NotConfigured):
        post(market, requester)


def test_permit_post(market, token, newcomer, registered):
    """postJobWithPermit approves exactly the escrow and posts in one transaction."""
    v, r, s = sign_permit(token, newcomer, market.address, ESCROW, 2**40)
    spec = make_spec(0)
    market.postJobWithPermit(keccak(spec), spec, tuple(TERMS), 2**40, v, r, s, sender=newcomer)
    assert market.getJob(1).status == OPEN
    assert token.balanceOf(newcomer) == 1_000 * TOKEN - ESCROW


# ------------------------------------------------------------------------------------- cancel / expire / claim / timeout


def test_cancel_and_expire_refund_the_whole_escrow(chain, market, requester, stranger, registered, ledger):
    """cancelJob and expireJob credit R + f*R + A back."""
    post(market, requester)
    post(market, requester, n=1)
    led = ledger()
    tx = market.cancelJob(1, sender=requester)
    expect_event(tx, market.JobCancelled, jobId=1, requester=requester.address, refund=ESCROW)
    chain.pending_timestamp = market.getJob(2).claimDeadline + 1
    tx = market.expireJob(2, sender=stranger)
    expect_event(tx, market.JobExpired, jobId=2, requester=requester.address, refund=ESCROW)
    assert led.changes() == {"credit.requester": 2 * ESCROW}


def test_claim_locks_collateral(market, staking, provider, job):
    """claimJob locks k*R in staking."""
    tx = market.claimJob(job, sender=provider)
    assert staking.getProvider(provider).locked == COLLATERAL
    ev = tx.decode_logs(market.JobClaimed)[0]
    assert (ev.event_arguments["provider"], ev.collateral) == (provider.address, COLLATERAL)


def test_timeout_reopens_or_refunds(chain, market, staking, requester, provider, stranger, claimed, ledger, everyone, token):
    """A missed submit deadline slashes the collateral into pendingBurn; the job reopens while
    its claim deadline lasts, else the requester gets the escrow back."""
    chain.pending_timestamp = market.getJob(claimed).deadline + 1
    led = ledger()
    tx = market.timeoutJob(claimed, sender=stranger)
    expect_event(tx, market.JobTimedOut, jobId=claimed, provider=provider.address, slashed=COLLATERAL, reopened=True, refund=0)
    ch = led.changes()
    assert ch["staked.provider"] == -COLLATERAL and ch["market"] == COLLATERAL
    assert market.pendingBurn() == COLLATERAL and market.getJob(claimed).status == OPEN
    market.claimJob(claimed, sender=provider)
    chain.pending_timestamp = market.getJob(claimed).claimDeadline + 1
    tx = market.timeoutJob(claimed, sender=stranger)
    assert tx.decode_logs(market.JobTimedOut)[0].refund == ESCROW
    assert market.getJob(claimed).status == TIMED_OUT
    assert_market_invariant(market, token, everyone)


# ------------------------------------------------------------------------------------- submit


def test_submit_result_stores_the_commitment_and_anchor(chain, market, provider, claimed):
    """submitResult stores the commitment; anchor = block + D."""
    tx = market.submitResult(claimed, RESULT_HASH, RESULT_URI, sender=provider)
    job = market.getJob(claimed)
    assert job.status == SUBMITTED and job.commitment == RESULT_HASH
    assert job.anchorBlock == tx.block_number + 1
    ev = tx.decode_logs(market.ResultSubmitted)[0]
    assert (ev.commitment, ev.anchorBlock, ev.challengeDeadline) == (RESULT_HASH, tx.block_number + 1, job.deadline)
    info = market.verificationInfo(claimed)
    assert (info.commitment, info.anchorBlock, info.auditFee, info.collateral) == (RESULT_HASH, job.anchorBlock, AUDIT_FEE, COLLATERAL)
    assert info.submitTime == job.deadline - TERMS.challenge_window


def test_submit_rejects_empty_commitment_and_others(market, provider, provider2, claimed):
    with reverts(market.EmptyCommitment):
        market.submitResult(claimed, ZERO32, RESULT_URI, sender=provider)
    with reverts(market.NotAssignedProvider, jobId=claimed, caller=provider2.address, provider=provider.address):
        market.submitResult(claimed, RESULT_HASH, RESULT_URI, sender=provider2)
    with reverts(market.InvalidFailureCode, code=8):
        market.submitFailure(claimed, 8, RESULT_HASH, sender=provider)


@pytest.mark.parametrize("code", [1, 2])
def test_availability_failure_reopens_with_two_percent_fees(market, token, staking, provider, claimed, ledger, everyone, code):
    """ImageUnavailable / InputHashMismatch: 2 % of R slashed from the provider and 2 % taken from
    the job's fee, both burned; the job reopens with its reward and audit fee intact."""
    led = ledger()
    tx = market.submitFailure(claimed, code, RESULT_HASH, sender=provider)
    expect_event(tx, market.NoFaultFailure, jobId=claimed, provider=provider.address, providerFee=NO_FAULT, requesterFee=NO_FAULT, reopened=True, refund=0)
    ev = tx.decode_logs(market.FailureSubmitted)[0]
    assert (ev.code, ev.challengeDeadline, ev.anchorBlock) == (code, 0, 0)
    assert led.changes() == {"staked.provider": -NO_FAULT, "locked.provider": -COLLATERAL, "slashed.provider": 1, "market": NO_FAULT, "staking": -NO_FAULT}
    job = market.getJob(claimed)
    assert (job.status, job.provider, job.fee, job.auditFee) == (OPEN, ZERO_ADDRESS, FEE - NO_FAULT, AUDIT_FEE)
    assert market.pendingBurn() == 2 * NO_FAULT
    assert_market_invariant(market, token, everyone)


def test_availability_failure_after_the_claim_deadline_refunds(chain, market, token, requester, provider, job, everyone):
    """Past the claim deadline the requester is refunded its escrow less its 2 %; the job expires."""
    claimed = job
    chain.pending_timestamp = market.getJob(job).claimDeadline - 10
    market.claimJob(job, sender=provider)
    chain.pending_timestamp = market.getJob(job).claimDeadline + 1
    tx = market.submitFailure(claimed, 1, RESULT_HASH, sender=provider)
    ev = tx.decode_logs(market.NoFaultFailure)[0]
    assert (ev.reopened, ev.refund, ev.requesterFee) == (False, ESCROW - NO_FAULT, NO_FAULT)
    assert market.getJob(claimed).status == EXPIRED
    assert market.withdrawableOf(requester) == ESCROW - NO_FAULT
    assert_market_invariant(market, token, everyone)


# ------------------------------------------------------------------------------------- draw and finalize


def test_finalize_an_undrawn_job_pays_reward_and_rebate(chain, market, token, staking, randomness, owner, requester, provider, stranger, submitted, ledger, everyone):
    """Not drawn: provider += R + kappa*f*R, pendingBurn += (1-kappa)*f*R, requester += A."""
    force_draw(randomness, market, owner, submitted, drawn=False)
    past_window(chain, market, submitted)
    assert not market.isDrawn(submitted)
    led = ledger()
    tx = market.finalize(submitted, sender=stranger)
    expect_event(tx, market.JobFinalized, jobId=submitted, provider=provider.address, failure=False, payout=REWARD + REBATE, emission=REBATE)
    assert led.changes() == {"credit.provider": REWARD + REBATE, "credit.requester": AUDIT_FEE, "locked.provider": -COLLATERAL, "completed.provider": 1}
    # the demo takes a party's pay for other jobs out of its flows by these events: the event's payout
    # is the whole credit (the emission is inside it, not on top)
    finalized = [dict(log.event_arguments) for log in tx.decode_logs(market.JobFinalized)]
    assert paid_for_other_jobs(finalized, job_id=submitted + 1) == {provider.address.lower(): {submitted: REWARD + REBATE}}
    assert market.pendingBurn() == BURN
    assert_market_invariant(market, token, everyone)
    supply = token.totalSupply()
    market.flushBurn(sender=stranger)
    assert token.totalSupply() == supply - (BURN - 1) and market.pendingBurn() == 1
    assert_market_invariant(market, token, everyone)


def test_a_drawn_job_cannot_finalize(chain, market, randomness, owner, stranger, submitted):
    """Drawn: finalize reverts JobDrawn; finalizeMany skips it."""
    force_draw(randomness, market, owner, submitted, drawn=True)
    past_window(chain, market, submitted)
    assert market.isDrawn(submitted)
    with reverts(market.JobDrawn, jobId=submitted):
        market.finalize(submitted, sender=stranger)
    market.finalizeMany([submitted], sender=stranger)
    assert market.getJob(submitted).status == SUBMITTED


def test_finalize_before_the_window_or_the_randomness(chain, market, randomness, stranger, submitted):
    """TooEarly inside the window; RandomnessNotReady while the anchor block is not past."""
    job = market.getJob(submitted)
    with ape.reverts(market.TooEarly, jobId=submitted, notBefore=job.deadline + 1):
        market.finalize(submitted, sender=stranger)
    with ape.reverts():  # IRandomness.RandomnessNotReady(anchorBlock, block.number)
        market.isDrawn(submitted)


def test_finalize_many_finalizes_ready_undrawn_jobs_only(chain, market, randomness, owner, requester, provider, stranger, registered):
    ids = []
    for n in range(3):
        post(market, requester, n=n)
        jid = market.jobCount()
        market.claimJob(jid, sender=provider)
        market.submitResult(jid, RESULT_HASH, RESULT_URI, sender=provider)
        ids.append(jid)
    force_draw(randomness, market, owner, ids[0], drawn=False)
    force_draw(randomness, market, owner, ids[1], drawn=True)
    force_draw(randomness, market, owner, ids[2], drawn=False)
    past_window(chain, market, ids[2])
    tx = market.finalizeMany([*ids, 999], sender=stranger)
    assert tx.return_value == 2 if tx.return_value is not None else True
    assert [market.getJob(i).status for i in ids] == [FINALIZED, SUBMITTED, FINALIZED]


def test_expired_randomness_counts_as_drawn(chain, owner, params, requester, provider):
    """With BlockhashRandomness, an anchor older than 256 blocks and never recorded counts as drawn."""
    c = deploy_test_set(owner, params, mock=False)
    token, staking, market = c["RewardToken"], c["ProviderStaking"], c["JobMarket"]
    token.mint(requester, 1_000 * TOKEN, sender=owner)
    token.mint(provider, 1_000 * TOKEN, sender=owner)
    token.approve(market.address, 2**256 - 1, sender=requester)
    token.approve(staking.address, 2**256 - 1, sender=provider)
    staking.register(500 * TOKEN, "http://p", ZERO32, sender=provider)
    post(market, requester)
    market.claimJob(1, sender=provider)
    market.submitResult(1, RESULT_HASH, RESULT_URI, sender=provider)
    chain.mine(300)
    assert market.isDrawn(1)
    chain.pending_timestamp = market.getJob(1).deadline + 1
    with reverts(market.JobDrawn, jobId=1):
        market.finalize(1, sender=requester)


def test_recorded_blockhash_survives_expiry(chain, owner, stranger):
    from ape import project

    rnd = project.BlockhashRandomness.deploy(sender=owner)
    n = chain.blocks.head.number
    chain.mine(2)
    rnd.record(n, sender=stranger)
    value = rnd.randomness(n)
    chain.mine(300)
    assert rnd.randomness(n) == value and rnd.status(n) == (True, False)
    assert rnd.status(n + 1) == (False, True)
    with ape.reverts():  # RandomnessExpired(n + 1)
        rnd.randomness(n + 1)


def test_mock_randomness_admin_only(randomness, stranger):
    with ape.reverts():
        randomness.setValue(1, b"\x01" * 32, sender=stranger)
    with ape.reverts():
        randomness.setSeed(b"\x01" * 32, sender=stranger)


def test_verify_none_finalizes_without_randomness(chain, market, requester, provider, stranger, registered, ledger):
    """A verify-none job is never drawn and reads no randomness: it finalizes right after the window
    (even before its anchor block is past), and no audit fee moves."""
    post(market, requester, TERMS._replace(verify_mode=1))
    market.claimJob(1, sender=provider)
    market.submitResult(1, RESULT_HASH, RESULT_URI, sender=provider)
    assert not market.isDrawn(1)
    chain.pending_timestamp = market.getJob(1).deadline + 1
    led = ledger()
    market.finalize(1, sender=stranger)
    assert led.changes() == {"credit.provider": REWARD + REBATE, "locked.provider": -COLLATERAL, "completed.provider": 1}


def test_is_drawn_of_a_verify_none_job_reads_no_randomness(chain, market, requester, provider, claimed):
    """isDrawn of a verify-none job (auditBps 0) is false at once, before its anchor block is past,
    while an audited job submitted with it still reverts RandomnessNotReady."""
    post(market, requester, TERMS._replace(verify_mode=1), n=1)
    none = market.jobCount()
    market.claimJob(none, sender=provider)
    market.submitResult(none, RESULT_HASH, RESULT_URI, sender=provider)
    market.submitResult(claimed, RESULT_HASH, RESULT_URI, sender=provider)
    assert market.getJob(none).auditBps == 0
    assert market.verificationInfo(none).anchorBlock >= chain.blocks.head.number  # not past
    with ape.reverts():  # the audited job: IRandomness.RandomnessNotReady(anchorBlock, block.number)
        market.isDrawn(claimed)
    assert market.isDrawn(none) is False


def test_an_unaudited_failure_refunds_everything(chain, market, randomness, owner, requester, provider, stranger, claimed, ledger):
    """A non-availability failure that is not drawn refunds R + f*R + A at finalize."""
    market.submitFailure(claimed, 3, RESULT_HASH, sender=provider)
    force_draw(randomness, market, owner, claimed, drawn=False)
    past_window(chain, market, claimed)
    led = ledger()
    tx = market.finalize(claimed, sender=stranger)
    expect_event(tx, market.JobFinalized, jobId=claimed, provider=provider.address, failure=True, payout=REWARD + FEE, emission=0)
    assert led.changes() == {"credit.requester": ESCROW, "locked.provider": -COLLATERAL}
    assert market.getJob(claimed).failureCode == 3


# ------------------------------------------------------------------------------------- court outcomes


def test_only_the_jobs_court_begins_and_settles(market, stranger, submitted):
    with reverts(market.NotCourt, jobId=submitted, caller=stranger.address, court=market.params().court):
        market.beginVerification(submitted, sender=stranger)
    with reverts(market.NotCourt, jobId=submitted, caller=stranger.address, court=market.params().court):
        market.settle(submitted, PROVIDER_RIGHT, sender=stranger)


def test_begin_verification_blocks_finalize(chain, market, court, randomness, owner, stranger, submitted):
    tx = court.begin(submitted, sender=stranger)
    expect_event(tx, market.VerificationStarted, jobId=submitted, court=court.address)
    assert market.getJob(submitted).status == DISPUTED
    force_draw(randomness, market, owner, submitted, drawn=False)
    past_window(chain, market, submitted)
    with reverts(market.WrongStatus, jobId=submitted, actual=DISPUTED, expected=SUBMITTED):
        market.finalize(submitted, sender=stranger)
    with ape.reverts():
        court.settle(submitted, O_NONE, sender=stranger)


@pytest.mark.parametrize(
    ("outcome", "failure", "expected"),
    [
        (PROVIDER_RIGHT, False, {"credit.provider": REWARD + REBATE, "court": AUDIT_FEE, "market": -AUDIT_FEE, "locked.provider": -COLLATERAL, "completed.provider": 1}),
        (PROVIDER_RIGHT, True, {"credit.requester": REWARD + FEE, "court": AUDIT_FEE, "market": -AUDIT_FEE, "locked.provider": -COLLATERAL}),
        (SPLIT, False, {"credit.provider": REWARD + REBATE, "court": AUDIT_FEE, "market": -AUDIT_FEE, "locked.provider": -COLLATERAL, "completed.provider": 1}),
        (PROVIDER_WRONG, False, {"credit.requester": REWARD + FEE, "court": AUDIT_FEE + COLLATERAL, "market": -AUDIT_FEE, "staking": -COLLATERAL, "staked.provider": -COLLATERAL, "locked.provider": -COLLATERAL, "slashed.provider": 1}),
        (PROVIDER_WRONG, True, {"credit.requester": REWARD + FEE, "court": AUDIT_FEE + COLLATERAL, "market": -AUDIT_FEE, "staking": -COLLATERAL, "staked.provider": -COLLATERAL, "locked.provider": -COLLATERAL, "slashed.provider": 1}),
        (UNAUDITED, False, {"credit.provider": REWARD + REBATE, "credit.requester": AUDIT_FEE, "locked.provider": -COLLATERAL, "completed.provider": 1}),
        (UNAUDITED, True, {"credit.requester": ESCROW, "locked.provider": -COLLATERAL}),
        (CANARY, False, {"credit.requester": REWARD + FEE, "court": AUDIT_FEE, "market": -AUDIT_FEE, "locked.provider": -COLLATERAL}),
    ],
)
def test_every_outcome_moves_the_escrow_by_the_table(market, token, court, provider, stranger, claimed, ledger, everyone, outcome, failure, expected):
    """settle(outcome) through the job's court: the IJobMarket.settle table, to the base unit."""
    if failure:
        market.submitFailure(claimed, 4, RESULT_HASH, sender=provider)
    else:
        market.submitResult(claimed, RESULT_HASH, RESULT_URI, sender=provider)
    court.begin(claimed, sender=stranger)
    led = ledger()
    tx = court.settle(claimed, outcome, sender=stranger)
    assert led.changes() == expected
    burned = BURN if "completed.provider" in expected else 0
    assert market.pendingBurn() == burned
    ev = tx.decode_logs(market.JobSettled)[0]
    assert ev.outcome == outcome and ev.toCourt == expected.get("court", 0) and ev.burned == burned
    assert court.received() == expected.get("court", 0)
    assert market.getJob(claimed).status == RESOLVED
    assert_market_invariant(market, token, everyone)
    with reverts(market.WrongStatus, jobId=claimed, actual=RESOLVED, expected=DISPUTED):
        court.settle(claimed, outcome, sender=stranger)


def test_court_may_settle_a_drawn_job_nobody_started(market, court, stranger, submitted):
    """settle also accepts a Submitted job (e.g. Unaudited after every redraw)."""
    court.settle(submitted, UNAUDITED, sender=stranger)
    assert market.getJob(submitted).status == RESOLVED


def test_a_verify_none_job_cannot_be_verified(market, court, requester, provider, stranger, registered):
    """verify: none escrowed no audit fee: its court can neither audit nor judge it (a challenge
    opens a case through beginVerification, which reverts)."""
    post(market, requester, TERMS._replace(verify_mode=1))
    market.claimJob(1, sender=provider)
    market.submitResult(1, RESULT_HASH, RESULT_URI, sender=provider)
    with reverts(market.NotVerifiable, jobId=1):
        court.begin(1, sender=stranger)
    assert market.getJob(1).status == SUBMITTED


# ------------------------------------------------------------------------------------- parameters


def test_the_audit_escrow_covers_the_courts_audit_pay_and_jury_deposit(market, court, owner):
    """auditFeeBps (the escrow E) >= court.minAuditFeeBps() = 1.1 R + 3 w: the court pays the auditor
    E - 3w and charges the jury deposit 3w on a Split."""
    court.setAuditFloor(44_000, sender=owner)
    with reverts(market.AuditFeeBelowFloor, auditFeeBps=43_999, floor=44_000):
        market.setParams(base_params(market, auditFeeBps=43_999), sender=owner)
    market.setParams(base_params(market, auditFeeBps=44_000), sender=owner)
    assert market.params().auditFeeBps == 44_000


def base_params(market, **changes):
    p = market.params()
    fields = [
        "minClaimWindow", "maxClaimWindow", "minRuntime", "maxRuntime", "minChallengeWindow", "maxChallengeWindow",
        "minCollateralPct", "maxCollateralPct", "alphaBps", "feeBps", "kappaBps", "auditFeeBps", "betaBps",
        "noFaultFeeBps", "maxReward", "drawDelay", "court", "paused",
    ]
    d = {f: getattr(p, f) for f in fields}
    d.update(changes)
    return tuple(d[f] for f in fields)


def test_params_are_snapshotted_per_job(chain, market, court, owner, requester, provider, stranger, registered, ledger):
    """setParams mid-flight changes neither a job's fees, p_job, audit fee nor its court."""
    from ape import project

    post(market, requester)
    market.claimJob(1, sender=provider)
    court2 = project.TestCourt.deploy(market.address, 7, court.horizon(), sender=owner)
    market.setParams(base_params(market, feeBps=500, alphaBps=20_000, auditFeeBps=20_000, court=court2.address), sender=owner)
    assert market.paramsVersion() == 2
    post(market, requester, n=1)
    assert market.getJob(2).fee == REWARD * 500 // BPS and market.getJob(2).paramsVersion == 2
    job = market.getJob(1)
    assert (job.fee, job.auditFee, job.auditBps, job.paramsVersion) == (FEE, AUDIT_FEE, p_job(450), 1)
    market.submitResult(1, RESULT_HASH, RESULT_URI, sender=provider)
    assert market.verificationInfo(1).court == court.address
    with reverts(market.NotCourt, jobId=1, caller=court2.address, court=court.address):
        court2.begin(1, sender=stranger)
    court.begin(1, sender=stranger)
    led = ledger()
    court.settle(1, PROVIDER_RIGHT, sender=stranger)
    assert led.changes()["credit.provider"] == REWARD + REBATE


@pytest.mark.parametrize(
    ("changes", "error", "fields"),
    [
        ({"alphaBps": 13_999}, "AlphaBelowFloor", {"alphaBps": 13_999, "floor": 14_000}),
        ({"kappaBps": 10_000}, "KappaNotBelowOne", {"kappaBps": 10_000}),
        ({"auditFeeBps": 10_999}, "AuditFeeBelowFloor", {"auditFeeBps": 10_999, "floor": 11_000}),
        ({"minChallengeWindow": 6}, "ChallengeWindowBelowCourt", {"minChallengeWindow": 6, "required": 7}),
        ({"maxRuntime": 86_401}, "RuntimeAboveAuditable", {"maxRuntime": 86_401, "limit": 86_400}),
        ({"minCollateralPct": 399}, "CollateralBelowJuryFloor", {"minCollateralPct": 399, "floor": 400}),
        ({"drawDelay": 2}, "DrawDelayFixed", {"value": 2, "drawDelay": 1}),
        ({"court": "0x" + "11" * 20}, "CourtNotContract", {"court": "0x" + "11" * 20}),
        ({"feeBps": 49}, "ParameterOutOfBounds", {"name": b32("feeBps"), "value": 49, "min": 50, "max": 1000}),
        ({"betaBps": 1001}, "ParameterOutOfBounds", {"name": b32("betaBps"), "value": 1001, "min": 0, "max": 1000}),
        ({"noFaultFeeBps": 1001}, "ParameterOutOfBounds", {"name": b32("noFaultFeeBps"), "value": 1001, "min": 50, "max": 1000}),
        # F6: a free availability failure would let a provider drop any claimed job at no cost
        ({"noFaultFeeBps": 0}, "ParameterOutOfBounds", {"name": b32("noFaultFeeBps"), "value": 0, "min": 50, "max": 1000}),
        ({"maxReward": 0}, "ParameterOutOfBounds", {"name": b32("maxReward"), "value": 0, "min": 1, "max": 2**80 - 1}),
    ],
)
def test_set_params_rejects_each_broken_constraint(market, owner, changes, error, fields):
    if "court" in changes:
        from eth_utils import to_checksum_address

        changes = {"court": to_checksum_address(changes["court"])}
        fields = {"court": changes["court"]}
    with reverts(getattr(market, error), **fields):
        market.setParams(base_params(market, **changes), sender=owner)


def test_set_params_rejects_an_unbonding_delay_below_the_horizon(market, staking, court, owner):
    """C9: staking's unbonding delay must cover maxClaimWindow + maxRuntime + maxChallengeWindow + horizon."""
    p = market.params()
    court.setViews(7, staking.unbondingDelay(), sender=owner)
    required = p.maxClaimWindow + p.maxRuntime + p.maxChallengeWindow + staking.unbondingDelay()
    with reverts(market.UnbondingBelowHorizon, unbondingDelay=staking.unbondingDelay(), required=required):
        market.setParams(base_params(market), sender=owner)


def test_staking_keeps_the_unbonding_delay_above_the_market_horizon(market, staking, owner):
    need = market.minUnbondingDelay()
    with reverts(staking.ParameterOutOfBounds, name=b32("unbondingDelay"), value=need - 1, min=need, max=staking.MAX_UNBONDING_DELAY()):
        staking.setParams(staking.minStake(), need - 1, sender=owner)
    staking.setParams(staking.minStake(), need, sender=owner)


def test_set_params_needs_the_governor(market, stranger):
    with ape.reverts():
        market.setParams(base_params(market), sender=stranger)


def test_pause_blocks_new_work_only(market, owner, requester, provider, job):
    """Paused: posts, deposits and claims (single and batched: staking's copy of the flag) revert
    MarketPaused; a cancel still goes through. Unpaused, all of them work again."""
    post(market, requester, n=4)
    other = market.jobCount()
    market.setPaused(True, sender=owner)
    assert market.params().paused
    with reverts(market.MarketPaused):
        post(market, requester, n=5)
    with reverts(market.MarketPaused):
        market.deposit(1, sender=requester)
    with reverts(market.MarketPaused):
        market.claimJob(job, sender=provider)
    with reverts(market.MarketPaused):
        market.claimJobs([job, other], sender=provider)
    market.cancelJob(other, sender=requester)
    market.setPaused(False, sender=owner)
    assert not market.params().paused
    post(market, requester, n=5)
    market.claimJob(job, sender=provider)
    assert market.getJob(job).status == CLAIMED


def test_withdraw(market, token, requester, job):
    market.cancelJob(job, sender=requester)
    before = token.balanceOf(requester)
    market.withdraw(sender=requester)
    assert token.balanceOf(requester) == before + ESCROW
    with reverts(market.NothingToWithdraw, account=requester.address):
        market.withdraw(sender=requester)


def test_credits_after_a_withdrawal_are_exact(market, token, requester, registered, ledger, everyone):
    """withdraw keeps the credit slot non-zero internally (a gas layout choice) but the balance
    reads 0: a later credit, a post from credit and a second withdrawal move exact amounts."""
    market.deposit(ESCROW + 5, sender=requester)
    market.withdraw(sender=requester)
    assert market.withdrawableOf(requester) == 0
    with reverts(market.NothingToWithdraw, account=requester.address):
        market.withdraw(sender=requester)
    led = ledger()
    tx = post(market, requester)  # a zero balance does not cover the escrow: the wallet pays
    assert tx.decode_logs(market.JobPosted)[0].fromCredit == 0
    market.cancelJob(market.jobCount(), sender=requester)
    assert led.changes() == {"credit.requester": ESCROW, "market": ESCROW, "requester": -ESCROW}
    tx = post(market, requester, n=1)  # exactly covered
    assert tx.decode_logs(market.JobPosted)[0].fromCredit == ESCROW
    assert market.withdrawableOf(requester) == 0
    market.deposit(7, sender=requester)
    led = ledger()
    market.withdraw(sender=requester)
    assert led.changes() == {"credit.requester": -7, "market": -7, "requester": 7}
    assert_market_invariant(market, token, everyone)


def test_the_reward_cap_bounds_every_post_and_follows_the_court(market, court, owner, requester):
    """C6: a seat needs sigma * R of court stake, so R may not exceed what every member the court
    admits holds (minStake / sigma, the court's maxVerifiableReward): above it a drawn job could
    find no seat filled and settle Unaudited, paying a provider that ran nothing (review, stop 36)."""
    cap = 5 * TOKEN
    court.setMaxVerifiableReward(cap, sender=owner)
    with reverts(market.ParameterOutOfBounds, name=b32("maxReward"), value=cap + 1, min=1, max=cap):
        market.setParams(base_params(market, maxReward=cap + 1), sender=owner)
    market.setParams(base_params(market, maxReward=cap), sender=owner)
    assert market.maxReward() == cap == market.params().maxReward
    with reverts(market.TermOutOfBounds, name=b32("reward"), value=cap + 1, min=10_000, max=cap):
        post(market, requester, TERMS._replace(reward=cap + 1))
    spec = make_spec(1)
    batch = [(keccak(spec), spec, tuple(TERMS._replace(reward=cap))), (keccak(spec), spec, tuple(TERMS._replace(reward=cap + 1)))]
    with reverts(market.TermOutOfBounds, name=b32("reward"), value=cap + 1, min=10_000, max=cap):
        market.postJobs(batch, sender=requester)
    post(market, requester, TERMS._replace(reward=cap), n=2)
    assert market.getJob(market.jobCount()).reward == cap
    # The version keeps its cap: a later version's does not rewrite it.
    version = market.paramsVersion()
    market.setParams(base_params(market, maxReward=cap // 2), sender=owner)
    assert market.paramsAt(version).maxReward == cap and market.maxReward() == cap // 2
