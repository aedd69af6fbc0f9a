"""JobMarket: every transition of the job state machine, every revert, and the money each one moves.

Each test states its rule in its docstring. Transitions are checked three ways: the job as
`getJob` returns it (every field), the event the transition emits (every field), and a `Ledger`
of token balances, market credits and provider stakes (exactly what moved, nothing else).

The helpers at the top (`reverts`, `expect_event`, `Ledger`, `sign_permit`, ...) are shared with
test_staking.py and test_token_and_resolver.py, which import them by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any, NamedTuple

import ape
import pytest
from ape.exceptions import CustomError
from eth_account import Account
from eth_utils import keccak

from depin.market import JobStatus as Status
from depin.market import Ruling

from .conftest import MIN_STAKE, TOKEN, make_spec

ZERO_ADDRESS = "0x" + "00" * 20
RATE = 10**15  # devnet emission: 0.001 token per declared CPU-second
EPOCH_BUDGET = 10_000 * TOKEN
EPOCH_LENGTH = 3_600
MIN_PRICE = 10**14  # devnet: emissions need a reward of at least 0.0001 token per declared CPU-second
BURN_BPS = 5_000
RESOLVE_WINDOW = 120
DEVNET_PARAMS = (5, 86_400, 1, 3_600, 2, 3_600, 50, 500, BURN_BPS, RESOLVE_WINDOW, False)
DAY = 86_400


class Terms(NamedTuple):
    """`IJobMarket.JobTerms`, in field order."""

    reward: int
    claim_window: int
    max_runtime: int
    challenge_window: int
    collateral_pct: int
    cpu_seconds: int


# Odd amounts so that rounding shows: collateral = floor(reward * 150 / 100).
TERMS = Terms(8 * TOKEN + 3, 600, 60, 30, 150, 120)
REWARD = TERMS.reward
COLLATERAL = REWARD * TERMS.collateral_pct // 100  # 12 tokens + 4 wei (4.5 floored)
BURNED = COLLATERAL * BURN_BPS // 10_000  # a loser's forfeit, burned share
WINNER_SHARE = COLLATERAL - BURNED  # a loser's forfeit, winner's share
EMISSION = TERMS.cpu_seconds * RATE
RESULT_HASH = keccak(b"result")
RESULT_URI = "http://provider-1.local:8700/results/1"
EVIDENCE = keccak(b"evidence")

JOB_FIELDS = (
    "specHash",
    "requester",
    "reward",
    "status",
    "failure",
    "provider",
    "claimDeadline",
    "deadline",
    "maxRuntime",
    "challengeWindow",
    "collateralPct",
    "cpuSeconds",
    "collateral",
    "challenger",
)


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


def job_view(market: Any, job_id: int) -> dict[str, Any]:
    """Every field of `getJob(job_id)`, as a dict."""
    job = market.getJob(job_id)
    return {name: getattr(job, name) for name in JOB_FIELDS}


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
    """token.balanceOf(market) == rewards of Open/Claimed/Submitted/Disputed jobs
    + bonds of Disputed jobs + withdrawable balances (JobMarket's header invariant)."""
    escrow = bonds = 0
    for job_id in range(1, market.jobCount() + 1):
        job = market.getJob(job_id)
        if job.status in (Status.OPEN, Status.CLAIMED, Status.SUBMITTED, Status.DISPUTED):
            escrow += job.reward
        if job.status == Status.DISPUTED:
            bonds += job.collateral
    credits = sum(market.withdrawableOf(a) for a in accounts)
    assert token.balanceOf(market.address) == escrow + bonds + credits


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def newcomer(accounts, owner, token):
    """An account holding 1,000 tokens that has approved nobody (accounts[6])."""
    acct = accounts[6]
    token.mint(acct, 1_000 * TOKEN, sender=owner)
    return acct


@pytest.fixture
def actors(owner, requester, provider, provider2, challenger, stranger, accounts):
    return SimpleNamespace(
        owner=owner,
        requester=requester,
        provider=provider,
        provider2=provider2,
        challenger=challenger,
        stranger=stranger,
        newcomer=accounts[6],
    )


@pytest.fixture
def ledger(token, market, staking, actors):
    """ledger() snapshots balances now; .changes() later says what moved."""
    names = ("requester", "provider", "provider2", "challenger", "stranger", "newcomer")
    people = {name: getattr(actors, name).address for name in names}
    providers = {"provider": actors.provider.address, "provider2": actors.provider2.address}
    return lambda: Ledger(token, market, staking, people, providers)


@pytest.fixture
def job(market, requester, registered):
    """An Open job with TERMS, posted by `requester` (providers are registered)."""
    post(market, requester)
    return market.jobCount()


@pytest.fixture
def claimed(market, job, provider):
    market.claimJob(job, sender=provider)
    return job


@pytest.fixture
def submitted(market, claimed, provider):
    market.submitResult(claimed, RESULT_HASH, RESULT_URI, sender=provider)
    return claimed


@pytest.fixture
def failed(market, claimed, provider):
    """A claimed job on which the provider submitted failure code 3 (OutOfMemory)."""
    market.submitFailure(claimed, 3, EVIDENCE, sender=provider)
    return claimed


@pytest.fixture
def disputed(market, submitted, challenger):
    market.challenge(submitted, sender=challenger)
    return submitted


@pytest.fixture
def disputed_failure(market, failed, challenger):
    market.challenge(failed, sender=challenger)
    return failed


@pytest.fixture
def finalized(chain, market, submitted, stranger):
    chain.pending_timestamp = market.getJob(submitted).deadline + 1
    market.finalize(submitted, sender=stranger)
    return submitted


@pytest.fixture
def cancelled(market, job, requester):
    market.cancelJob(job, sender=requester)
    return job


@pytest.fixture
def paused(market, owner):
    market.setPaused(True, sender=owner)
    return True


# ------------------------------------------------------------------------------------- posting


def test_devnet_parameters_are_deployed(market, token, staking, resolver):
    """The market runs with the devnet parameters and is wired to its token, staking and resolver."""
    assert market.params() == DEVNET_PARAMS
    assert market.emissionParams() == (RATE, EPOCH_BUDGET, EPOCH_LENGTH, MIN_PRICE)
    assert market.token() == token.address
    assert market.staking() == staking.address
    assert market.resolver() == resolver.address
    assert staking.market() == market.address
    assert market.jobCount() == 0


def test_post_job_escrows_reward_and_records_every_term(market, requester, funded, ledger):
    """postJob moves the reward from the requester's wallet into escrow, stores every term, and
    emits JobPosted with all of them and the spec itself; ids run from 1."""
    spec = make_spec(7)
    before = ledger()
    tx = market.postJob(keccak(spec), spec, tuple(TERMS), sender=requester)
    claim_deadline = tx.timestamp + TERMS.claim_window
    expect_event(
        tx,
        market.JobPosted,
        jobId=1,
        requester=requester.address,
        specHash=keccak(spec),
        reward=REWARD,
        fromCredit=0,
        claimDeadline=claim_deadline,
        maxRuntime=TERMS.max_runtime,
        challengeWindow=TERMS.challenge_window,
        collateralPct=TERMS.collateral_pct,
        cpuSeconds=TERMS.cpu_seconds,
        spec=spec,
    )
    assert market.jobCount() == 1
    assert job_view(market, 1) == {
        "specHash": keccak(spec),
        "requester": requester.address,
        "reward": REWARD,
        "status": Status.OPEN,
        "failure": False,
        "provider": ZERO_ADDRESS,
        "claimDeadline": claim_deadline,
        "deadline": 0,
        "maxRuntime": TERMS.max_runtime,
        "challengeWindow": TERMS.challenge_window,
        "collateralPct": TERMS.collateral_pct,
        "cpuSeconds": TERMS.cpu_seconds,
        "collateral": COLLATERAL,
        "challenger": ZERO_ADDRESS,
    }
    assert before.changes() == {"requester": -REWARD, "market": REWARD}
    post(market, requester, n=8)
    assert market.jobCount() == 2


def test_post_job_accepts_the_largest_reward(market, token, owner, requester, funded):
    """A reward of exactly 2^88 - 1 base units is within bounds and stored without truncation."""
    reward = 2**88 - 1
    token.mint(requester, reward, sender=owner)
    post(market, requester, TERMS._replace(reward=reward))
    job = market.getJob(1)
    assert job.reward == reward
    assert job.collateral == reward * TERMS.collateral_pct // 100


def test_post_job_with_permit_uses_a_real_signature(market, token, newcomer, ledger):
    """postJobWithPermit applies the caller's EIP-2612 permit for the reward, then escrows it:
    no prior approve is needed, the nonce is spent and the allowance is used up."""
    deadline = ape.chain.pending_timestamp + 3_600
    v, r, s = sign_permit(token, newcomer, market.address, REWARD, deadline)
    spec = make_spec(1)
    before = ledger()
    tx = market.postJobWithPermit(keccak(spec), spec, tuple(TERMS), deadline, v, r, s, sender=newcomer)
    expect_event(
        tx,
        market.JobPosted,
        jobId=1,
        requester=newcomer.address,
        specHash=keccak(spec),
        reward=REWARD,
        fromCredit=0,
        claimDeadline=tx.timestamp + TERMS.claim_window,
        maxRuntime=TERMS.max_runtime,
        challengeWindow=TERMS.challenge_window,
        collateralPct=TERMS.collateral_pct,
        cpuSeconds=TERMS.cpu_seconds,
        spec=spec,
    )
    assert market.getJob(1).requester == newcomer.address
    assert token.nonces(newcomer) == 1
    assert token.allowance(newcomer, market.address) == 0
    assert before.changes() == {"newcomer": -REWARD, "market": REWARD}


def test_post_job_with_permit_tolerates_a_front_run_permit(market, token, newcomer, stranger):
    """A permit already submitted by someone else (front-run) does not fail the post: the
    allowance it set pays for the job."""
    deadline = ape.chain.pending_timestamp + 3_600
    v, r, s = sign_permit(token, newcomer, market.address, REWARD, deadline)
    token.permit(newcomer, market.address, REWARD, deadline, v, r, s, sender=stranger)
    spec = make_spec(1)
    market.postJobWithPermit(keccak(spec), spec, tuple(TERMS), deadline, v, r, s, sender=newcomer)
    assert market.getJob(1).status == Status.OPEN
    assert token.allowance(newcomer, market.address) == 0


def test_post_job_with_an_invalid_permit_and_no_allowance_reverts(market, token, newcomer):
    """A permit that does not verify is ignored; without allowance the token's transferFrom
    reverts with ERC20InsufficientAllowance."""
    deadline = ape.chain.pending_timestamp + 3_600
    v, r, s = sign_permit(token, newcomer, market.address, REWARD - 1, deadline)  # signs another value
    spec = make_spec(1)
    with reverts(token.ERC20InsufficientAllowance, spender=market.address, allowance=0, needed=REWARD):
        market.postJobWithPermit(keccak(spec), spec, tuple(TERMS), deadline, v, r, s, sender=newcomer)


def test_deposit_credits_a_withdrawable_balance(market, requester, funded, ledger):
    """deposit moves tokens from the wallet into the caller's withdrawable balance and emits Deposited."""
    before = ledger()
    tx = market.deposit(5 * TOKEN, sender=requester)
    expect_event(tx, market.Deposited, account=requester.address, amount=5 * TOKEN)
    assert before.changes() == {"requester": -5 * TOKEN, "market": 5 * TOKEN, "credit.requester": 5 * TOKEN}


def test_post_pays_from_credit_first_when_it_covers_the_reward(market, requester, funded, ledger):
    """A requester whose withdrawable balance covers the reward pays from it alone: no token moves."""
    market.deposit(REWARD + 5, sender=requester)
    before = ledger()
    tx = post(market, requester)
    assert tx.decode_logs(market.JobPosted)[0].fromCredit == REWARD
    assert before.changes() == {"credit.requester": -REWARD}
    assert market.withdrawableOf(requester) == 5


def test_post_pays_the_rest_from_the_wallet_when_credit_is_short(market, requester, funded, ledger):
    """With a withdrawable balance below the reward, all of it is used and only the rest is pulled
    from the wallet; JobPosted.fromCredit says how much came from credit."""
    credit = 3 * TOKEN + 1
    market.deposit(credit, sender=requester)
    before = ledger()
    tx = post(market, requester)
    assert tx.decode_logs(market.JobPosted)[0].fromCredit == credit
    assert before.changes() == {
        "credit.requester": -credit,
        "requester": -(REWARD - credit),
        "market": REWARD - credit,
    }


def test_refunds_are_credit_for_the_next_post(market, requester, job, ledger):
    """A cancelled job's refund is withdrawable balance, and the next post draws on it."""
    market.cancelJob(job, sender=requester)
    before = ledger()
    tx = post(market, requester, n=1)
    assert tx.decode_logs(market.JobPosted)[0].fromCredit == REWARD
    assert before.changes() == {"credit.requester": -REWARD}


def test_post_with_short_credit_needs_allowance_for_the_rest_only(market, token, newcomer):
    """The wallet part of a post is reward - credit: that is what transferFrom asks allowance for."""
    credit = 2 * TOKEN
    token.approve(market.address, credit, sender=newcomer)
    market.deposit(credit, sender=newcomer)
    with reverts(token.ERC20InsufficientAllowance, spender=market.address, allowance=0, needed=REWARD - credit):
        post(market, newcomer)


def test_post_without_allowance_reverts(market, token, newcomer):
    """Posting from a wallet that approved nothing reverts with ERC20InsufficientAllowance."""
    with reverts(token.ERC20InsufficientAllowance, spender=market.address, allowance=0, needed=REWARD):
        post(market, newcomer)


def test_post_beyond_the_wallet_balance_reverts(market, token, newcomer):
    """Posting a reward larger than the wallet holds reverts with ERC20InsufficientBalance."""
    token.approve(market.address, 2**256 - 1, sender=newcomer)
    reward = 1_000 * TOKEN + 1
    with reverts(token.ERC20InsufficientBalance, sender=newcomer.address, balance=1_000 * TOKEN, needed=reward):
        post(market, newcomer, TERMS._replace(reward=reward))


def test_post_zero_reward_reverts(market, requester, funded):
    """A reward of zero reverts with ZeroReward."""
    with reverts(market.ZeroReward):
        post(market, requester, TERMS._replace(reward=0))


def test_post_empty_spec_reverts(market, requester, funded):
    """An empty spec reverts with EmptySpec."""
    with reverts(market.EmptySpec):
        market.postJob(keccak(b""), b"", tuple(TERMS), sender=requester)


def test_post_spec_hash_mismatch_reverts(market, requester, funded):
    """A spec whose keccak256 is not the declared hash reverts with SpecHashMismatch(expected, actual)."""
    spec = make_spec(1)
    declared = keccak(b"something else")
    with reverts(market.SpecHashMismatch, expected=declared, actual=keccak(spec)):
        market.postJob(declared, spec, tuple(TERMS), sender=requester)


@pytest.mark.parametrize(
    ("field", "value", "name", "lo", "hi"),
    [
        ("reward", 2**88, "reward", 1, 2**88 - 1),
        ("claim_window", 4, "claimWindow", 5, 86_400),
        ("claim_window", 86_401, "claimWindow", 5, 86_400),
        ("max_runtime", 0, "maxRuntime", 1, 3_600),
        ("max_runtime", 3_601, "maxRuntime", 1, 3_600),
        ("challenge_window", 1, "challengeWindow", 2, 3_600),
        ("challenge_window", 3_601, "challengeWindow", 2, 3_600),
        ("collateral_pct", 49, "collateralPct", 50, 500),
        ("collateral_pct", 501, "collateralPct", 50, 500),
        ("cpu_seconds", 0, "cpuSeconds", 1, TERMS.max_runtime * 256),
        ("cpu_seconds", TERMS.max_runtime * 256 + 1, "cpuSeconds", 1, TERMS.max_runtime * 256),
    ],
)
def test_post_term_out_of_bounds_reverts(market, requester, funded, field, value, name, lo, hi):
    """Each term outside the market's bounds reverts with TermOutOfBounds(name, value, min, max)."""
    with reverts(market.TermOutOfBounds, name=b32(name), value=value, min=lo, max=hi):
        post(market, requester, TERMS._replace(**{field: value}))


def test_post_with_collateral_rounding_to_zero_reverts(market, requester, funded):
    """A reward so small that its collateral rounds down to zero would make challenges free and
    slashes empty: it reverts with TermOutOfBounds("collateral", 0, 1, 2**96 - 1)."""
    with reverts(market.TermOutOfBounds, name=b32("collateral"), value=0, min=1, max=2**96 - 1):
        post(market, requester, TERMS._replace(reward=1, collateral_pct=50))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("claim_window", 5),
        ("claim_window", 86_400),
        ("max_runtime", 1),
        ("max_runtime", 3_600),
        ("challenge_window", 2),
        ("challenge_window", 3_600),
        ("collateral_pct", 50),
        ("collateral_pct", 500),
    ],
)
def test_post_terms_at_the_bounds_are_accepted(market, requester, funded, field, value):
    """Bounds are inclusive: a term equal to its min or max is accepted."""
    post(market, requester, TERMS._replace(**{field: value}))
    assert market.jobCount() == 1


def test_zero_deposit_reverts(market, requester, funded):
    """A deposit of zero reverts with ZeroDeposit."""
    with reverts(market.ZeroDeposit):
        market.deposit(0, sender=requester)


# ------------------------------------------------------------------------------------- cancel, expire


def test_cancel_credits_the_reward_back(market, requester, job, ledger):
    """The requester cancels its open job: status Cancelled, reward credited, JobCancelled emitted."""
    view = job_view(market, job)
    before = ledger()
    tx = market.cancelJob(job, sender=requester)
    expect_event(tx, market.JobCancelled, jobId=job, requester=requester.address, refund=REWARD)
    assert job_view(market, job) == {**view, "status": Status.CANCELLED}
    assert before.changes() == {"credit.requester": REWARD}


def test_cancel_by_another_account_reverts(market, requester, stranger, job):
    """Only the requester may cancel: NotRequester(jobId, caller, requester)."""
    with reverts(market.NotRequester, jobId=job, caller=stranger.address, requester=requester.address):
        market.cancelJob(job, sender=stranger)


def test_expire_after_the_claim_deadline_refunds_the_requester(chain, market, requester, stranger, job, ledger):
    """Anyone expires an unclaimed job once its claim deadline has passed; the requester is credited."""
    view = job_view(market, job)
    before = ledger()
    chain.pending_timestamp = view["claimDeadline"] + 1
    tx = market.expireJob(job, sender=stranger)
    expect_event(tx, market.JobExpired, jobId=job, requester=requester.address, refund=REWARD)
    assert job_view(market, job) == {**view, "status": Status.EXPIRED}
    assert before.changes() == {"credit.requester": REWARD}


def test_expire_at_the_claim_deadline_is_too_early(chain, market, stranger, job):
    """expireJob at the claim deadline itself reverts with TooEarly(jobId, deadline + 1, now)."""
    deadline = market.getJob(job).claimDeadline
    chain.pending_timestamp = deadline
    with reverts(market.TooEarly, jobId=job, notBefore=deadline + 1, nowTime=deadline):
        market.expireJob(job, sender=stranger)


# ------------------------------------------------------------------------------------- claim


@pytest.mark.parametrize(("reward", "pct"), [(8 * TOKEN + 3, 150), (7 * TOKEN + 1, 50), (TOKEN + 99, 500)])
def test_claim_locks_collateral_and_sets_the_submit_deadline(
    market, staking, requester, provider, registered, ledger, reward, pct
):
    """claimJob locks collateral = floor(reward * pct / 100) of the provider's stake, assigns it,
    and sets the submit deadline to claim time + maxRuntime."""
    post(market, requester, TERMS._replace(reward=reward, collateral_pct=pct))
    collateral = reward * pct // 100
    view = job_view(market, 1)
    assert view["collateral"] == collateral
    before = ledger()
    tx = market.claimJob(1, sender=provider)
    deadline = tx.timestamp + TERMS.max_runtime
    expect_event(
        tx, market.JobClaimed, jobId=1, provider=provider.address, collateral=collateral, submitDeadline=deadline
    )
    assert job_view(market, 1) == {**view, "status": Status.CLAIMED, "provider": provider.address, "deadline": deadline}
    assert before.changes() == {"locked.provider": collateral}
    assert staking.availableStake(provider) == 1_000 * TOKEN - collateral


def test_claim_at_the_claim_deadline_is_allowed(chain, market, provider, job):
    """The claim deadline is inclusive: claiming at exactly that second succeeds."""
    chain.pending_timestamp = market.getJob(job).claimDeadline
    market.claimJob(job, sender=provider)
    assert market.getJob(job).status == Status.CLAIMED


def test_claim_after_the_claim_deadline_is_too_late(chain, market, provider, job):
    """Claiming after the claim deadline reverts with TooLate(jobId, deadline, now)."""
    deadline = market.getJob(job).claimDeadline
    chain.pending_timestamp = deadline + 1
    with reverts(market.TooLate, jobId=job, deadline=deadline, nowTime=deadline + 1):
        market.claimJob(job, sender=provider)


# ------------------------------------------------------------------------------------- submit


def test_submit_result_opens_the_challenge_window(market, provider, claimed, ledger):
    """The assigned provider submits a result: status Submitted, deadline = now + challengeWindow,
    ResultSubmitted carries the hash and URI; no money moves."""
    view = job_view(market, claimed)
    before = ledger()
    tx = market.submitResult(claimed, RESULT_HASH, RESULT_URI, sender=provider)
    deadline = tx.timestamp + TERMS.challenge_window
    expect_event(
        tx,
        market.ResultSubmitted,
        jobId=claimed,
        provider=provider.address,
        resultHash=RESULT_HASH,
        resultURI=RESULT_URI,
        challengeDeadline=deadline,
    )
    assert job_view(market, claimed) == {**view, "status": Status.SUBMITTED, "deadline": deadline}
    assert before.changes() == {}


@pytest.mark.parametrize("code", [1, 6, 7])
def test_submit_failure_marks_the_job_failed(market, provider, claimed, ledger, code):
    """The assigned provider reports a failure code (1..7): status Submitted with failure=true,
    FailureSubmitted carries the code and evidence hash."""
    view = job_view(market, claimed)
    before = ledger()
    tx = market.submitFailure(claimed, code, EVIDENCE, sender=provider)
    deadline = tx.timestamp + TERMS.challenge_window
    expect_event(
        tx,
        market.FailureSubmitted,
        jobId=claimed,
        provider=provider.address,
        code=code,
        evidenceHash=EVIDENCE,
        challengeDeadline=deadline,
    )
    assert job_view(market, claimed) == {**view, "status": Status.SUBMITTED, "failure": True, "deadline": deadline}
    assert before.changes() == {}


def test_submit_by_another_provider_reverts(market, provider, provider2, requester, claimed):
    """Only the assigned provider submits: NotAssignedProvider(jobId, caller, provider), for results and failures."""
    with reverts(market.NotAssignedProvider, jobId=claimed, caller=provider2.address, provider=provider.address):
        market.submitResult(claimed, RESULT_HASH, RESULT_URI, sender=provider2)
    with reverts(market.NotAssignedProvider, jobId=claimed, caller=requester.address, provider=provider.address):
        market.submitFailure(claimed, 1, EVIDENCE, sender=requester)


def test_submit_empty_result_hash_reverts(market, provider, claimed):
    """A zero result hash reverts with EmptyResultHash."""
    with reverts(market.EmptyResultHash):
        market.submitResult(claimed, b"\0" * 32, RESULT_URI, sender=provider)


@pytest.mark.parametrize("code", [0, 8, 255])
def test_submit_invalid_failure_code_reverts(market, provider, claimed, code):
    """Failure codes outside 1..7 revert with InvalidFailureCode(code)."""
    with reverts(market.InvalidFailureCode, code=code):
        market.submitFailure(claimed, code, EVIDENCE, sender=provider)


def test_submit_at_the_submit_deadline_is_allowed(chain, market, provider, claimed):
    """The submit deadline is inclusive."""
    chain.pending_timestamp = market.getJob(claimed).deadline
    market.submitResult(claimed, RESULT_HASH, RESULT_URI, sender=provider)
    assert market.getJob(claimed).status == Status.SUBMITTED


def test_submit_after_the_submit_deadline_is_too_late(chain, market, provider, claimed):
    """Submitting a result or a failure after the submit deadline reverts with TooLate(jobId, deadline, now)."""
    deadline = market.getJob(claimed).deadline
    chain.pending_timestamp = deadline + 1
    with reverts(market.TooLate, jobId=claimed, deadline=deadline, nowTime=deadline + 1):
        market.submitResult(claimed, RESULT_HASH, RESULT_URI, sender=provider)
    chain.pending_timestamp = deadline + 2
    with reverts(market.TooLate, jobId=claimed, deadline=deadline, nowTime=deadline + 2):
        market.submitFailure(claimed, 2, EVIDENCE, sender=provider)


# ------------------------------------------------------------------------------------- timeout


def test_timeout_before_the_claim_deadline_burns_collateral_and_reopens(
    chain, market, token, staking, provider, provider2, stranger, claimed, ledger
):
    """A provider that misses its submit deadline while the claim window is still open loses its
    whole collateral (burned) and the job reopens for another provider; no refund."""
    view = job_view(market, claimed)
    before = ledger()
    chain.pending_timestamp = view["deadline"] + 1
    assert view["deadline"] + 1 <= view["claimDeadline"]
    tx = market.timeoutJob(claimed, sender=stranger)
    expect_event(
        tx, market.JobTimedOut, jobId=claimed, provider=provider.address, slashed=COLLATERAL, reopened=True, refund=0
    )
    expect_event(tx, staking.Slashed, provider=provider.address, jobId=claimed, amount=COLLATERAL, to=market.address)
    assert job_view(market, claimed) == {**view, "status": Status.OPEN, "provider": ZERO_ADDRESS, "deadline": 0}
    assert before.changes() == {
        "staking": -COLLATERAL,
        "supply": -COLLATERAL,
        "staked.provider": -COLLATERAL,
        "locked.provider": -COLLATERAL,
        "slashed.provider": 1,
    }
    market.claimJob(claimed, sender=provider2)
    assert market.getJob(claimed).provider == provider2.address


def test_timeout_after_the_claim_deadline_burns_collateral_and_refunds(
    chain, market, staking, requester, provider, stranger, claimed, ledger
):
    """After the claim deadline a timed-out job cannot reopen: status TimedOut, collateral burned,
    the requester credited the reward."""
    view = job_view(market, claimed)
    before = ledger()
    chain.pending_timestamp = view["claimDeadline"] + 1
    tx = market.timeoutJob(claimed, sender=stranger)
    expect_event(
        tx,
        market.JobTimedOut,
        jobId=claimed,
        provider=provider.address,
        slashed=COLLATERAL,
        reopened=False,
        refund=REWARD,
    )
    assert job_view(market, claimed) == {**view, "status": Status.TIMED_OUT}
    assert before.changes() == {
        "staking": -COLLATERAL,
        "supply": -COLLATERAL,
        "staked.provider": -COLLATERAL,
        "locked.provider": -COLLATERAL,
        "slashed.provider": 1,
        "credit.requester": REWARD,
    }


def test_timeout_at_the_submit_deadline_is_too_early(chain, market, stranger, claimed):
    """timeoutJob at the submit deadline itself reverts with TooEarly(jobId, deadline + 1, now)."""
    deadline = market.getJob(claimed).deadline
    chain.pending_timestamp = deadline
    with reverts(market.TooEarly, jobId=claimed, notBefore=deadline + 1, nowTime=deadline):
        market.timeoutJob(claimed, sender=stranger)


# ------------------------------------------------------------------------------------- challenge


def test_challenge_posts_a_bond_and_opens_a_dispute(market, resolver, challenger, provider, submitted, ledger):
    """Anyone but the provider challenges within the window: a bond equal to the collateral moves
    into the market, status Disputed with deadline = now + resolveWindow, and the resolver is told."""
    view = job_view(market, submitted)
    before = ledger()
    tx = market.challenge(submitted, sender=challenger)
    deadline = tx.timestamp + RESOLVE_WINDOW
    expect_event(
        tx,
        market.JobChallenged,
        jobId=submitted,
        challenger=challenger.address,
        bond=COLLATERAL,
        resolver=resolver.address,
        resolveDeadline=deadline,
    )
    expect_event(
        tx,
        resolver.DisputeReceived,
        jobId=submitted,
        provider=provider.address,
        challenger=challenger.address,
        resolveDeadline=deadline,
    )
    assert resolver.isOpen(submitted)
    assert job_view(market, submitted) == {
        **view,
        "status": Status.DISPUTED,
        "deadline": deadline,
        "challenger": challenger.address,
    }
    assert before.changes() == {"challenger": -COLLATERAL, "market": COLLATERAL}


def test_the_provider_cannot_challenge_itself(market, provider, submitted):
    """The assigned provider challenging its own submission reverts with SelfChallenge(jobId, provider)."""
    with reverts(market.SelfChallenge, jobId=submitted, provider=provider.address):
        market.challenge(submitted, sender=provider)


def test_challenge_at_the_window_end_is_allowed(chain, market, challenger, submitted):
    """The challenge deadline is inclusive."""
    chain.pending_timestamp = market.getJob(submitted).deadline
    market.challenge(submitted, sender=challenger)
    assert market.getJob(submitted).status == Status.DISPUTED


def test_challenge_after_the_window_is_too_late(chain, market, challenger, submitted):
    """Challenging after the challenge window reverts with TooLate(jobId, deadline, now)."""
    deadline = market.getJob(submitted).deadline
    chain.pending_timestamp = deadline + 1
    with reverts(market.TooLate, jobId=submitted, deadline=deadline, nowTime=deadline + 1):
        market.challenge(submitted, sender=challenger)


def test_challenge_without_allowance_for_the_bond_reverts(market, token, newcomer, submitted):
    """The bond is pulled with transferFrom: no allowance reverts with ERC20InsufficientAllowance."""
    with reverts(token.ERC20InsufficientAllowance, spender=market.address, allowance=0, needed=COLLATERAL):
        market.challenge(submitted, sender=newcomer)


def test_challenge_before_a_resolver_is_set_reverts(owner, token, provider, requester, funded):
    """A market without a resolver refuses challenges (ResolverNotSet) rather than strand a bond."""
    fresh = ape.project.JobMarket.deploy(
        token.address,
        owner.address,
        MIN_STAKE,
        60,
        DEVNET_PARAMS,
        (RATE, EPOCH_BUDGET, EPOCH_LENGTH, MIN_PRICE),
        sender=owner,
    )
    fresh_staking = ape.project.ProviderStaking.at(fresh.staking())
    token.approve(fresh_staking.address, 2**256 - 1, sender=provider)
    fresh_staking.register(1_000 * TOKEN, "", b"\0" * 32, sender=provider)
    token.approve(fresh.address, 2**256 - 1, sender=requester)
    post(fresh, requester)
    fresh.claimJob(1, sender=provider)
    fresh.submitResult(1, RESULT_HASH, RESULT_URI, sender=provider)
    assert fresh.resolver() == ZERO_ADDRESS
    with reverts(fresh.ResolverNotSet):
        fresh.challenge(1, sender=requester)


# ------------------------------------------------------------------------------------- finalize


def test_finalize_a_result_pays_the_provider_and_mints_emission(
    chain, market, token, provider, stranger, submitted, ledger
):
    """After the window anyone finalizes a result: the provider is credited the reward and minted
    cpuSeconds * rate, its collateral unlocks and jobsCompleted increments."""
    view = job_view(market, submitted)
    before = ledger()
    chain.pending_timestamp = view["deadline"] + 1
    tx = market.finalize(submitted, sender=stranger)
    expect_event(
        tx,
        market.JobFinalized,
        jobId=submitted,
        provider=provider.address,
        failure=False,
        payout=REWARD,
        emission=EMISSION,
    )
    assert job_view(market, submitted) == {**view, "status": Status.FINALIZED}
    assert before.changes() == {
        "credit.provider": REWARD,
        "provider": EMISSION,
        "supply": EMISSION,
        "locked.provider": -COLLATERAL,
        "completed.provider": 1,
    }
    assert market.emissionState() == (tx.timestamp // EPOCH_LENGTH, EMISSION)


def test_finalize_a_failure_refunds_the_requester(chain, market, provider, stranger, failed, ledger):
    """Finalizing an unchallenged failure credits the reward back to the requester, mints nothing,
    unlocks the collateral and does not count a completed job."""
    view = job_view(market, failed)
    before = ledger()
    chain.pending_timestamp = view["deadline"] + 1
    tx = market.finalize(failed, sender=stranger)
    expect_event(
        tx, market.JobFinalized, jobId=failed, provider=provider.address, failure=True, payout=REWARD, emission=0
    )
    assert job_view(market, failed) == {**view, "status": Status.FINALIZED}
    assert before.changes() == {"credit.requester": REWARD, "locked.provider": -COLLATERAL}


def test_finalize_at_the_window_end_is_too_early(chain, market, stranger, submitted):
    """finalize at the challenge deadline itself reverts with TooEarly(jobId, deadline + 1, now)."""
    deadline = market.getJob(submitted).deadline
    chain.pending_timestamp = deadline
    with reverts(market.TooEarly, jobId=submitted, notBefore=deadline + 1, nowTime=deadline):
        market.finalize(submitted, sender=stranger)


def test_finalize_many_finalizes_ready_jobs_and_skips_the_rest(
    chain, market, requester, provider, stranger, registered
):
    """finalizeMany finalizes each Submitted job past its window and skips the others (open,
    still in the window, unknown, already finalized) without reverting; it returns the count."""
    for n in range(4):
        post(market, requester, n=n)
    for job_id in (1, 2, 3):
        market.claimJob(job_id, sender=provider)
    market.submitResult(1, RESULT_HASH, RESULT_URI, sender=provider)
    market.submitFailure(2, 4, EVIDENCE, sender=provider)
    chain.pending_timestamp = market.getJob(2).deadline + 1
    market.submitResult(3, RESULT_HASH, RESULT_URI, sender=provider)  # its window is still open
    tx = market.finalizeMany([1, 3, 4, 999, 2, 1], sender=stranger)
    assert tx.return_value == 2
    finalized = [(log.jobId, log.failure) for log in tx.decode_logs(market.JobFinalized)]
    assert finalized == [(1, False), (2, True)]
    assert [market.getJob(i).status for i in (1, 2, 3, 4)] == [
        Status.FINALIZED,
        Status.FINALIZED,
        Status.SUBMITTED,
        Status.OPEN,
    ]


# ------------------------------------------------------------------------------------- disputes


def test_provider_wins_on_a_result(market, resolver, owner, provider, challenger, disputed, ledger):
    """ProviderWins on a result: the challenger's bond is forfeited, (1 - burnBps) of it to the
    provider and the rest burned; the provider is credited the reward, minted its emission, its
    collateral unlocks and jobsCompleted increments."""
    view = job_view(market, disputed)
    before = ledger()
    tx = resolver.rule(disputed, Ruling.PROVIDER_WINS, EVIDENCE, sender=owner)
    expect_event(
        tx,
        market.DisputeResolved,
        jobId=disputed,
        ruling=Ruling.PROVIDER_WINS,
        winner=provider.address,
        forfeited=COLLATERAL,
        winnerPayout=WINNER_SHARE,
        burned=BURNED,
        requesterRefund=0,
        providerPayout=REWARD,
        emission=EMISSION,
    )
    assert job_view(market, disputed) == {**view, "status": Status.RESOLVED}
    assert before.changes() == {
        "credit.provider": REWARD + WINNER_SHARE,
        "market": -BURNED,
        "provider": EMISSION,
        "supply": EMISSION - BURNED,
        "locked.provider": -COLLATERAL,
        "completed.provider": 1,
    }


def test_challenger_wins_on_a_result(market, staking, resolver, owner, provider, challenger, disputed, ledger):
    """ChallengerWins on a result: the provider's collateral is slashed; the challenger is credited
    its bond back plus (1 - burnBps) of the collateral, the rest is burned, the requester is
    refunded the reward and jobsSlashed increments."""
    view = job_view(market, disputed)
    before = ledger()
    tx = resolver.rule(disputed, Ruling.CHALLENGER_WINS, EVIDENCE, sender=owner)
    expect_event(
        tx,
        market.DisputeResolved,
        jobId=disputed,
        ruling=Ruling.CHALLENGER_WINS,
        winner=challenger.address,
        forfeited=COLLATERAL,
        winnerPayout=WINNER_SHARE,
        burned=BURNED,
        requesterRefund=REWARD,
        providerPayout=0,
        emission=0,
    )
    expect_event(tx, staking.Slashed, provider=provider.address, jobId=disputed, amount=COLLATERAL, to=market.address)
    assert job_view(market, disputed) == {**view, "status": Status.RESOLVED}
    assert before.changes() == {
        "credit.challenger": COLLATERAL + WINNER_SHARE,
        "credit.requester": REWARD,
        "staking": -COLLATERAL,
        "market": COLLATERAL - BURNED,
        "supply": -BURNED,
        "staked.provider": -COLLATERAL,
        "locked.provider": -COLLATERAL,
        "slashed.provider": 1,
    }


def test_provider_wins_on_a_failure(market, resolver, owner, provider, disputed_failure, ledger):
    """ProviderWins on a failure: the failure stands, so the requester is refunded the reward; the
    provider gets the challenger's forfeited share but no reward, no emission and no completed job."""
    before = ledger()
    tx = resolver.rule(disputed_failure, Ruling.PROVIDER_WINS, EVIDENCE, sender=owner)
    expect_event(
        tx,
        market.DisputeResolved,
        jobId=disputed_failure,
        ruling=Ruling.PROVIDER_WINS,
        winner=provider.address,
        forfeited=COLLATERAL,
        winnerPayout=WINNER_SHARE,
        burned=BURNED,
        requesterRefund=REWARD,
        providerPayout=0,
        emission=0,
    )
    assert market.getJob(disputed_failure).status == Status.RESOLVED
    assert before.changes() == {
        "credit.provider": WINNER_SHARE,
        "credit.requester": REWARD,
        "market": -BURNED,
        "supply": -BURNED,
        "locked.provider": -COLLATERAL,
    }


def test_challenger_wins_on_a_failure(market, resolver, owner, challenger, disputed_failure, ledger):
    """ChallengerWins on a failure: same as on a result; the false failure report costs the provider its collateral."""
    before = ledger()
    tx = resolver.rule(disputed_failure, Ruling.CHALLENGER_WINS, EVIDENCE, sender=owner)
    expect_event(
        tx,
        market.DisputeResolved,
        jobId=disputed_failure,
        ruling=Ruling.CHALLENGER_WINS,
        winner=challenger.address,
        forfeited=COLLATERAL,
        winnerPayout=WINNER_SHARE,
        burned=BURNED,
        requesterRefund=REWARD,
        providerPayout=0,
        emission=0,
    )
    assert before.changes() == {
        "credit.challenger": COLLATERAL + WINNER_SHARE,
        "credit.requester": REWARD,
        "staking": -COLLATERAL,
        "market": COLLATERAL - BURNED,
        "supply": -BURNED,
        "staked.provider": -COLLATERAL,
        "locked.provider": -COLLATERAL,
        "slashed.provider": 1,
    }


def test_a_winning_requester_challenger_gets_none_of_the_slash(market, resolver, owner, requester, submitted, ledger):
    """Slashed collateral never goes to the job's requester: when the requester challenges and
    wins, it gets its bond and reward back and the whole collateral is burned."""
    market.challenge(submitted, sender=requester)
    before = ledger()
    tx = resolver.rule(submitted, Ruling.CHALLENGER_WINS, EVIDENCE, sender=owner)
    expect_event(
        tx,
        market.DisputeResolved,
        jobId=submitted,
        ruling=Ruling.CHALLENGER_WINS,
        winner=requester.address,
        forfeited=COLLATERAL,
        winnerPayout=0,
        burned=COLLATERAL,
        requesterRefund=REWARD,
        providerPayout=0,
        emission=0,
    )
    assert before.changes() == {
        "credit.requester": COLLATERAL + REWARD,
        "staking": -COLLATERAL,
        "supply": -COLLATERAL,
        "staked.provider": -COLLATERAL,
        "locked.provider": -COLLATERAL,
        "slashed.provider": 1,
    }


def test_a_winning_provider_that_is_the_requester_gets_none_of_the_bond(
    market, resolver, owner, provider, challenger, registered, ledger
):
    """A provider that posted the job itself and wins the dispute is paid its reward, but the
    challenger's forfeited bond is burned in full (forfeits never go to the job's requester), and
    the self-dealt job earns no emission."""
    post(market, provider)
    market.claimJob(1, sender=provider)
    market.submitResult(1, RESULT_HASH, RESULT_URI, sender=provider)
    market.challenge(1, sender=challenger)
    before = ledger()
    tx = resolver.rule(1, Ruling.PROVIDER_WINS, EVIDENCE, sender=owner)
    expect_event(
        tx,
        market.DisputeResolved,
        jobId=1,
        ruling=Ruling.PROVIDER_WINS,
        winner=provider.address,
        forfeited=COLLATERAL,
        winnerPayout=0,
        burned=COLLATERAL,
        requesterRefund=0,
        providerPayout=REWARD,
        emission=0,
    )
    assert before.changes() == {
        "credit.provider": REWARD,
        "market": -COLLATERAL,
        "supply": -COLLATERAL,
        "locked.provider": -COLLATERAL,
        "completed.provider": 1,
    }


def test_settle_unresolved_makes_everyone_whole(chain, market, stranger, disputed, ledger):
    """After the resolve deadline without a ruling anyone settles: the challenger's bond and the
    requester's reward are credited back and the collateral unlocks; nobody is slashed or paid."""
    view = job_view(market, disputed)
    before = ledger()
    chain.pending_timestamp = view["deadline"] + 1
    tx = market.settleUnresolved(disputed, sender=stranger)
    expect_event(
        tx,
        market.DisputeResolved,
        jobId=disputed,
        ruling=Ruling.NONE,
        winner=ZERO_ADDRESS,
        forfeited=0,
        winnerPayout=0,
        burned=0,
        requesterRefund=REWARD,
        providerPayout=0,
        emission=0,
    )
    assert job_view(market, disputed) == {**view, "status": Status.RESOLVED}
    assert before.changes() == {
        "credit.challenger": COLLATERAL,
        "credit.requester": REWARD,
        "locked.provider": -COLLATERAL,
    }


def test_settle_unresolved_at_the_resolve_deadline_is_too_early(chain, market, stranger, disputed):
    """settleUnresolved at the resolve deadline itself reverts with TooEarly(jobId, deadline + 1, now)."""
    deadline = market.getJob(disputed).deadline
    chain.pending_timestamp = deadline
    with reverts(market.TooEarly, jobId=disputed, notBefore=deadline + 1, nowTime=deadline):
        market.settleUnresolved(disputed, sender=stranger)


def test_only_the_resolver_rules(market, resolver, stranger, disputed):
    """resolveDispute from anyone but the resolver reverts with NotResolver(caller, resolver)."""
    with reverts(market.NotResolver, caller=stranger.address, resolver=resolver.address):
        market.resolveDispute(disputed, Ruling.CHALLENGER_WINS, sender=stranger)


def test_a_ruling_of_none_is_invalid(market, resolver, owner, disputed):
    """The resolver must rule ProviderWins or ChallengerWins: Ruling.None reverts with InvalidRuling."""
    with reverts(market.InvalidRuling):
        resolver.rule(disputed, Ruling.NONE, EVIDENCE, sender=owner)
    assert market.getJob(disputed).status == Status.DISPUTED


def test_an_eoa_resolver_rules_directly(market, owner, provider, disputed):
    """The market accepts resolveDispute from whatever address governance set as the resolver."""
    market.setResolver(owner.address, sender=owner)
    tx = market.resolveDispute(disputed, Ruling.PROVIDER_WINS, sender=owner)
    assert tx.decode_logs(market.DisputeResolved)[0].winner == provider.address


# ------------------------------------------------------------------------------------- withdraw


def test_withdraw_transfers_the_whole_credit(market, requester, cancelled, ledger):
    """withdraw sends the caller its whole credited balance and emits Withdrawn; a second withdraw
    has nothing left: NothingToWithdraw(account)."""
    before = ledger()
    tx = market.withdraw(sender=requester)
    expect_event(tx, market.Withdrawn, account=requester.address, amount=REWARD)
    assert before.changes() == {"credit.requester": -REWARD, "requester": REWARD, "market": -REWARD}
    with reverts(market.NothingToWithdraw, account=requester.address):
        market.withdraw(sender=requester)


def test_withdraw_with_no_credit_reverts(market, stranger):
    """An account with nothing credited cannot withdraw: NothingToWithdraw(account)."""
    with reverts(market.NothingToWithdraw, account=stranger.address):
        market.withdraw(sender=stranger)


# ------------------------------------------------------------------------------------- status errors


UNKNOWN = 999

UNKNOWN_JOB_CALLS = {
    "getJob(0)": (0, lambda m, a: m.getJob.transact(0, sender=a.stranger)),
    "getJob": (UNKNOWN, lambda m, a: m.getJob.transact(UNKNOWN, sender=a.stranger)),
    "cancelJob": (UNKNOWN, lambda m, a: m.cancelJob(UNKNOWN, sender=a.requester)),
    "claimJob": (UNKNOWN, lambda m, a: m.claimJob(UNKNOWN, sender=a.provider)),
    "submitResult": (UNKNOWN, lambda m, a: m.submitResult(UNKNOWN, RESULT_HASH, RESULT_URI, sender=a.provider)),
    "submitFailure": (UNKNOWN, lambda m, a: m.submitFailure(UNKNOWN, 1, EVIDENCE, sender=a.provider)),
    "challenge": (UNKNOWN, lambda m, a: m.challenge(UNKNOWN, sender=a.challenger)),
    "finalize": (UNKNOWN, lambda m, a: m.finalize(UNKNOWN, sender=a.stranger)),
    "expireJob": (UNKNOWN, lambda m, a: m.expireJob(UNKNOWN, sender=a.stranger)),
    "timeoutJob": (UNKNOWN, lambda m, a: m.timeoutJob(UNKNOWN, sender=a.stranger)),
    "settleUnresolved": (UNKNOWN, lambda m, a: m.settleUnresolved(UNKNOWN, sender=a.stranger)),
    "resolveDispute": (
        UNKNOWN,
        lambda m, a: (
            m.setResolver(a.owner, sender=a.owner),
            m.resolveDispute(UNKNOWN, Ruling.PROVIDER_WINS, sender=a.owner),
        ),
    ),
}


@pytest.mark.parametrize(("job_id", "call"), UNKNOWN_JOB_CALLS.values(), ids=UNKNOWN_JOB_CALLS.keys())
def test_unknown_job_reverts(market, actors, job, job_id, call):
    """Every function taking a job id reverts with UnknownJob(jobId) for an id never posted."""
    with reverts(market.UnknownJob, jobId=job_id):
        call(market, actors)


WRONG_STATUS_CASES = {
    "cancel a claimed job": (
        "claimed",
        lambda m, a, j: m.cancelJob(j, sender=a.requester),
        Status.CLAIMED,
        Status.OPEN,
    ),
    "claim a claimed job": ("claimed", lambda m, a, j: m.claimJob(j, sender=a.provider2), Status.CLAIMED, Status.OPEN),
    "expire a cancelled job": (
        "cancelled",
        lambda m, a, j: m.expireJob(j, sender=a.stranger),
        Status.CANCELLED,
        Status.OPEN,
    ),
    "submit to an open job": (
        "job",
        lambda m, a, j: m.submitResult(j, RESULT_HASH, "", sender=a.provider),
        Status.OPEN,
        Status.CLAIMED,
    ),
    "submit twice": (
        "submitted",
        lambda m, a, j: m.submitFailure(j, 1, EVIDENCE, sender=a.provider),
        Status.SUBMITTED,
        Status.CLAIMED,
    ),
    "time out a submitted job": (
        "submitted",
        lambda m, a, j: m.timeoutJob(j, sender=a.stranger),
        Status.SUBMITTED,
        Status.CLAIMED,
    ),
    "challenge a claimed job": (
        "claimed",
        lambda m, a, j: m.challenge(j, sender=a.challenger),
        Status.CLAIMED,
        Status.SUBMITTED,
    ),
    "challenge twice": (
        "disputed",
        lambda m, a, j: m.challenge(j, sender=a.stranger),
        Status.DISPUTED,
        Status.SUBMITTED,
    ),
    "finalize a disputed job": (
        "disputed",
        lambda m, a, j: m.finalize(j, sender=a.stranger),
        Status.DISPUTED,
        Status.SUBMITTED,
    ),
    "finalize twice": (
        "finalized",
        lambda m, a, j: m.finalize(j, sender=a.stranger),
        Status.FINALIZED,
        Status.SUBMITTED,
    ),
    "settle a submitted job": (
        "submitted",
        lambda m, a, j: m.settleUnresolved(j, sender=a.stranger),
        Status.SUBMITTED,
        Status.DISPUTED,
    ),
    "resolve a finalized job": (
        "finalized",
        lambda m, a, j: (
            m.setResolver(a.owner, sender=a.owner),
            m.resolveDispute(j, Ruling.PROVIDER_WINS, sender=a.owner),
        ),
        Status.FINALIZED,
        Status.DISPUTED,
    ),
}


@pytest.mark.parametrize(
    ("state", "call", "actual", "expected"), WRONG_STATUS_CASES.values(), ids=WRONG_STATUS_CASES.keys()
)
def test_wrong_status_reverts(request, market, actors, state, call, actual, expected):
    """A transition from the wrong state reverts with WrongStatus(jobId, actual, expected)."""
    job_id = request.getfixturevalue(state)
    with reverts(market.WrongStatus, jobId=job_id, actual=actual, expected=expected):
        call(market, actors, job_id)


# ------------------------------------------------------------------------------------- emissions


def _submitted_jobs(market, requester, provider, count: int, terms: Terms = TERMS) -> list[int]:
    ids = []
    for n in range(count):
        post(market, requester, terms, n=n)
        job_id = market.jobCount()
        market.claimJob(job_id, sender=provider)
        market.submitResult(job_id, RESULT_HASH, RESULT_URI, sender=provider)
        ids.append(job_id)
    return ids


def test_emissions_are_capped_by_the_epoch_budget_and_reset_each_epoch(
    chain, market, token, owner, requester, provider, stranger, registered
):
    """Emission per job is cpuSeconds * rate, but the total minted in an epoch never exceeds the
    budget: the job that crosses it gets the remainder, later ones nothing, until the next epoch."""
    budget = 2 * EMISSION - EMISSION // 3
    market.setEmissionParams((RATE, budget, EPOCH_LENGTH, MIN_PRICE), sender=owner)
    epoch = chain.pending_timestamp // EPOCH_LENGTH + 1
    chain.pending_timestamp = epoch * EPOCH_LENGTH + 1
    ids = _submitted_jobs(market, requester, provider, 4)
    chain.pending_timestamp = market.getJob(ids[-1]).deadline + 1
    supply = token.totalSupply()
    tx = market.finalizeMany(ids[:3], sender=stranger)
    assert tx.timestamp // EPOCH_LENGTH == epoch
    assert [log.emission for log in tx.decode_logs(market.JobFinalized)] == [EMISSION, budget - EMISSION, 0]
    assert token.totalSupply() == supply + budget
    assert market.emissionState() == (epoch, budget)

    chain.pending_timestamp = (epoch + 1) * EPOCH_LENGTH
    tx = market.finalize(ids[3], sender=stranger)
    assert tx.decode_logs(market.JobFinalized)[0].emission == EMISSION
    assert market.emissionState() == (epoch + 1, EMISSION)


def test_emissions_are_capped_by_the_token_cap(chain, market, token, owner, provider, requester, stranger, registered):
    """Emissions never mint past the token's cap: the provider gets what is left under it."""
    (job_id,) = _submitted_jobs(market, requester, provider, 1)
    left = EMISSION // 4
    token.mint(stranger, token.cap() - token.totalSupply() - left, sender=owner)
    chain.pending_timestamp = market.getJob(job_id).deadline + 1
    tx = market.finalize(job_id, sender=stranger)
    assert tx.decode_logs(market.JobFinalized)[0].emission == left
    assert token.totalSupply() == token.cap()


def test_a_failing_emission_mint_does_not_block_settlement(
    chain, market, token, owner, provider, requester, stranger, registered
):
    """Emissions are a bonus: if the mint fails (the market lost MINTER_ROLE), finalize still
    settles, credits the reward and reports emission 0."""
    token.revokeRole(keccak(text="MINTER_ROLE"), market.address, sender=owner)
    (job_id,) = _submitted_jobs(market, requester, provider, 1)
    chain.pending_timestamp = market.getJob(job_id).deadline + 1
    supply = token.totalSupply()
    tx = market.finalize(job_id, sender=stranger)
    expect_event(
        tx, market.JobFinalized, jobId=job_id, provider=provider.address, failure=False, payout=REWARD, emission=0
    )
    assert market.withdrawableOf(provider) == REWARD
    assert token.totalSupply() == supply


@pytest.mark.parametrize(
    "emission_params", [(0, EPOCH_BUDGET, EPOCH_LENGTH, MIN_PRICE), (RATE, 0, EPOCH_LENGTH, MIN_PRICE)], ids=["rate 0", "budget 0"]
)
def test_emissions_off_mint_nothing(
    chain, market, token, owner, provider, requester, stranger, registered, emission_params
):
    """A zero rate or a zero budget turns emissions off: finalize mints nothing."""
    market.setEmissionParams(emission_params, sender=owner)
    (job_id,) = _submitted_jobs(market, requester, provider, 1)
    chain.pending_timestamp = market.getJob(job_id).deadline + 1
    supply = token.totalSupply()
    tx = market.finalize(job_id, sender=stranger)
    assert tx.decode_logs(market.JobFinalized)[0].emission == 0
    assert token.totalSupply() == supply
    assert market.emissionState() == (0, 0)


# ------------------------------------------------------------------------------------- pause


def test_guardian_pauses_and_unpauses(market, owner):
    """setPaused flips params().paused and emits PauseSet."""
    tx = market.setPaused(True, sender=owner)
    expect_event(tx, market.PauseSet, paused=True)
    assert market.params().paused is True
    tx = market.setPaused(False, sender=owner)
    expect_event(tx, market.PauseSet, paused=False)
    assert market.params().paused is False


def test_paused_market_refuses_new_work(market, token, requester, provider, newcomer, job, paused):
    """While paused, posting (with or without permit), depositing and claiming revert with MarketPaused."""
    with reverts(market.MarketPaused):
        post(market, requester, n=1)
    deadline = ape.chain.pending_timestamp + 3_600
    v, r, s = sign_permit(token, newcomer, market.address, REWARD, deadline)
    spec = make_spec(2)
    with reverts(market.MarketPaused):
        market.postJobWithPermit(keccak(spec), spec, tuple(TERMS), deadline, v, r, s, sender=newcomer)
    with reverts(market.MarketPaused):
        market.deposit(TOKEN, sender=requester)
    with reverts(market.MarketPaused):
        market.claimJob(job, sender=provider)


def test_paused_market_settles_jobs_in_flight(
    chain, market, owner, resolver, requester, provider, challenger, stranger, registered
):
    """While paused, jobs in flight still move: submit (result and failure), challenge, finalize,
    rule, timeout, settleUnresolved, and requesters still cancel, expire and withdraw."""
    for n in range(7):
        post(market, requester, n=n)
    for job_id in (1, 2, 3, 4, 5):
        market.claimJob(job_id, sender=provider)
    market.submitResult(4, RESULT_HASH, RESULT_URI, sender=provider)
    market.challenge(4, sender=challenger)
    market.submitResult(5, RESULT_HASH, RESULT_URI, sender=provider)
    market.challenge(5, sender=challenger)
    market.setPaused(True, sender=owner)

    market.submitResult(1, RESULT_HASH, RESULT_URI, sender=provider)
    market.submitFailure(2, 5, EVIDENCE, sender=provider)
    market.challenge(2, sender=challenger)
    resolver.rule(4, Ruling.PROVIDER_WINS, EVIDENCE, sender=owner)
    market.cancelJob(6, sender=requester)
    chain.pending_timestamp = market.getJob(5).deadline + 1
    market.finalize(1, sender=stranger)
    market.timeoutJob(3, sender=stranger)
    market.settleUnresolved(5, sender=stranger)
    chain.pending_timestamp = market.getJob(7).claimDeadline + 1
    market.expireJob(7, sender=stranger)
    market.withdraw(sender=requester)
    statuses = [market.getJob(i).status for i in range(1, 8)]
    assert statuses == [
        Status.FINALIZED,
        Status.DISPUTED,
        Status.OPEN,
        Status.RESOLVED,
        Status.RESOLVED,
        Status.CANCELLED,
        Status.EXPIRED,
    ]
    assert market.params().paused is True


def test_governance_cannot_unpause_through_set_params(market, owner, paused):
    """setParams ignores the paused field: the guardian's flag survives a parameter change."""
    tx = market.setParams(DEVNET_PARAMS, sender=owner)
    assert tx.decode_logs(market.MarketParamsUpdated)[0].params[-1] is True
    assert market.params().paused is True


# ------------------------------------------------------------------------------------- governance


def test_set_params_updates_and_emits(market, owner):
    """Governance sets every market parameter within bounds; MarketParamsUpdated carries them
    (paused stays the guardian's: false here even if true is passed)."""
    new = (1, 90 * DAY, 1, 30 * DAY, 1, 30 * DAY, 1, 1_000, 1_000, 30 * DAY, True)
    tx = market.setParams(new, sender=owner)
    expected = [*new[:-1], False]
    expect_event(tx, market.MarketParamsUpdated, params=expected)
    assert market.params() == tuple(expected)


PARAM_BOUNDS = [
    (0, 0, "minClaimWindow", 1, 90 * DAY),
    (0, 90 * DAY + 1, "minClaimWindow", 1, 90 * DAY),
    (1, 4, "maxClaimWindow", 5, 90 * DAY),
    (1, 90 * DAY + 1, "maxClaimWindow", 5, 90 * DAY),
    (2, 0, "minRuntime", 1, 30 * DAY),
    (2, 30 * DAY + 1, "minRuntime", 1, 30 * DAY),
    (3, 0, "maxRuntime", 1, 30 * DAY),
    (3, 30 * DAY + 1, "maxRuntime", 1, 30 * DAY),
    (4, 0, "minChallengeWindow", 1, 30 * DAY),
    (5, 1, "maxChallengeWindow", 2, 30 * DAY),
    (5, 30 * DAY + 1, "maxChallengeWindow", 2, 30 * DAY),
    (6, 0, "minCollateralPct", 1, 1_000),
    (6, 1_001, "minCollateralPct", 1, 1_000),
    (7, 49, "maxCollateralPct", 50, 1_000),
    (7, 1_001, "maxCollateralPct", 50, 1_000),
    (8, 999, "burnBps", 1_000, 9_000),
    (8, 9_001, "burnBps", 1_000, 9_000),
    (9, 0, "resolveWindow", 1, 30 * DAY),
    (9, 30 * DAY + 1, "resolveWindow", 1, 30 * DAY),
]


@pytest.mark.parametrize(
    ("index", "value", "name", "lo", "hi"), PARAM_BOUNDS, ids=[f"{c[2]}={c[1]}" for c in PARAM_BOUNDS]
)
def test_set_params_out_of_bounds_reverts(market, owner, index, value, name, lo, hi):
    """Each market parameter outside its hard bounds reverts with ParameterOutOfBounds(name, value, min, max);
    a max below its min is out of bounds too."""
    bad = list(DEVNET_PARAMS)
    bad[index] = value
    with reverts(market.ParameterOutOfBounds, name=b32(name), value=value, min=lo, max=hi):
        market.setParams(tuple(bad), sender=owner)


EMISSION_BOUNDS = [
    (0, 10**18 + 1, "ratePerCpuSecond", 0, 10**18),
    (1, 10**27 + 1, "epochBudget", 0, 10**27),
    (2, 0, "epochLength", 1, 365 * DAY),
    (2, 365 * DAY + 1, "epochLength", 1, 365 * DAY),
    (3, 10**18 + 1, "minRewardPerCpuSecond", 0, 10**18),
]


@pytest.mark.parametrize(
    ("index", "value", "name", "lo", "hi"), EMISSION_BOUNDS, ids=[f"{c[2]}={c[1]}" for c in EMISSION_BOUNDS]
)
def test_set_emission_params_out_of_bounds_reverts(market, owner, index, value, name, lo, hi):
    """Each emission parameter outside its hard bounds reverts with ParameterOutOfBounds(name, value, min, max)."""
    bad = [RATE, EPOCH_BUDGET, EPOCH_LENGTH, MIN_PRICE]
    bad[index] = value
    with reverts(market.ParameterOutOfBounds, name=b32(name), value=value, min=lo, max=hi):
        market.setEmissionParams(tuple(bad), sender=owner)


def test_set_emission_params_updates_and_emits(market, owner):
    """Governance sets emission parameters at their bounds; EmissionParamsUpdated carries them."""
    new = (10**18, 10**27, 365 * DAY, 10**18)
    tx = market.setEmissionParams(new, sender=owner)
    expect_event(tx, market.EmissionParamsUpdated, params=list(new))
    assert market.emissionParams() == new


def test_set_resolver_updates_and_rejects_zero(market, owner, stranger):
    """Governance replaces the resolver (ResolverUpdated); the zero address is refused (ResolverNotSet)."""
    tx = market.setResolver(stranger.address, sender=owner)
    expect_event(tx, market.ResolverUpdated, resolver=stranger.address)
    assert market.resolver() == stranger.address
    with reverts(market.ResolverNotSet):
        market.setResolver(ZERO_ADDRESS, sender=owner)


GOVERNANCE_CALLS = {
    "setParams": (lambda m, s: m.setParams(DEVNET_PARAMS, sender=s), "GOVERNOR_ROLE"),
    "setEmissionParams": (lambda m, s: m.setEmissionParams((0, 0, 1, 0), sender=s), "GOVERNOR_ROLE"),
    "setResolver": (lambda m, s: m.setResolver(s.address, sender=s), "GOVERNOR_ROLE"),
    "setPaused": (lambda m, s: m.setPaused(True, sender=s), "GUARDIAN_ROLE"),
}


@pytest.mark.parametrize(("call", "role"), GOVERNANCE_CALLS.values(), ids=GOVERNANCE_CALLS.keys())
def test_governance_functions_need_their_role(market, stranger, call, role):
    """Governance setters need GOVERNOR_ROLE and setPaused GUARDIAN_ROLE:
    AccessControlUnauthorizedAccount(account, neededRole) otherwise."""
    with reverts(market.AccessControlUnauthorizedAccount, account=stranger.address, neededRole=keccak(text=role)):
        call(market, stranger)


# ------------------------------------------------------------------------------------- invariant


def test_market_balance_equals_escrow_plus_bonds_plus_credits(
    chain, market, token, owner, resolver, requester, provider, provider2, challenger, stranger, registered
):
    """JobMarket's header invariant holds after every step of a mixed run: its token balance is the
    rewards of live jobs, plus the bonds of disputed jobs, plus everyone's withdrawable balance."""
    everyone = [a.address for a in (owner, requester, provider, provider2, challenger, stranger)]

    def check():
        assert_market_invariant(market, token, everyone)

    market.deposit(3 * TOKEN, sender=requester)
    check()
    for n in range(6):
        post(market, requester, n=n)
        check()
    market.claimJob(1, sender=provider)
    market.claimJob(2, sender=provider2)
    market.claimJob(3, sender=provider)
    market.claimJob(4, sender=provider2)
    check()
    market.submitResult(1, RESULT_HASH, RESULT_URI, sender=provider)
    market.submitResult(2, RESULT_HASH, RESULT_URI, sender=provider2)
    market.submitFailure(3, 1, EVIDENCE, sender=provider)
    market.challenge(2, sender=challenger)
    market.challenge(3, sender=requester)
    market.cancelJob(5, sender=requester)
    check()
    resolver.rule(2, Ruling.CHALLENGER_WINS, EVIDENCE, sender=owner)
    check()
    resolver.rule(3, Ruling.PROVIDER_WINS, EVIDENCE, sender=owner)
    check()
    chain.pending_timestamp = market.getJob(4).deadline + 1
    market.finalize(1, sender=stranger)
    market.timeoutJob(4, sender=stranger)
    check()
    for who in (requester, provider, provider2, challenger):
        if market.withdrawableOf(who):
            market.withdraw(sender=who)
    check()
    assert token.balanceOf(market.address) == REWARD * 2  # jobs 4 (reopened) and 6 are open


def test_self_dealt_job_earns_no_emission(chain, market, token, provider, stranger, registered):
    """A provider that finalizes a job it posted itself is paid the reward but minted no emission:
    wash jobs cannot farm the epoch budget."""
    post(market, provider, TERMS, n=77)
    job_id = market.jobCount()
    market.claimJob(job_id, sender=provider)
    market.submitResult(job_id, RESULT_HASH, RESULT_URI, sender=provider)
    chain.pending_timestamp = market.getJob(job_id).deadline + 1
    supply = token.totalSupply()
    tx = market.finalize(job_id, sender=stranger)
    (log,) = tx.decode_logs(market.JobFinalized)
    assert (log.payout, log.emission) == (REWARD, 0)
    assert token.totalSupply() == supply


def test_underpriced_job_earns_no_emission(chain, market, token, requester, provider, stranger, registered):
    """A job whose reward pays less than minRewardPerCpuSecond per declared CPU-second settles
    normally but mints no emission; one wei more per the floor and it does."""
    cpu = 1_000
    floor = cpu * MIN_PRICE
    results = []
    for n, reward in enumerate((floor - 1, floor)):
        post(market, requester, TERMS._replace(reward=reward, cpu_seconds=cpu, max_runtime=60), n=90 + n)
        job_id = market.jobCount()
        market.claimJob(job_id, sender=provider)
        market.submitResult(job_id, RESULT_HASH, RESULT_URI, sender=provider)
        chain.pending_timestamp = market.getJob(job_id).deadline + 1
        tx = market.finalize(job_id, sender=stranger)
        results.append(tx.decode_logs(market.JobFinalized)[0].emission)
    assert results == [0, cpu * RATE]
