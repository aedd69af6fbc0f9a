"""Stateful property test of JobMarket + ProviderStaking + ArbiterResolver (Hypothesis).

Random sequences of every user-facing action (post, deposit, cancel, claim, submitResult,
submitFailure, challenge, rule through ArbiterResolver, settleUnresolved, finalize, finalizeMany,
expire, timeout, register/stake, requestUnstake, withdrawUnstaked, withdraw, pause) by two
requesters, two providers, a challenger (who also posts and may register as a provider) and the
owner as arbiter and guardian, interleaved with time jumps, some landing exactly on a deadline.
A Python model predicts, for each attempt, whether it must revert (and with which error) and, if
not, the events' amounts and every balance it moves. After every step the chain is read back (one
batched JSON-RPC round trip of view calls) and checked against:

1. market conservation (JobMarket's header): balanceOf(market) == rewards of Open/Claimed/
   Submitted/Disputed jobs + bonds of Disputed jobs + sum of withdrawableOf;
2. staking conservation (ProviderStaking's header): balanceOf(staking) == sum(staked +
   unbonding); locked <= staked; locked == collateral of the provider's Claimed/Submitted/
   Disputed jobs;
3. nobody gains or loses more than it is owed: wallet + withdrawable + staked + unbonding of each
   actor equals the model's ledger (and each component its model value); totalSupply == initial
   + emissions - burns, both taken from the events (and matching the model's predictions);
4. every job's on-chain record (getJob, ArbiterResolver.isOpen) equals the model's.

Every block's timestamp is set explicitly (evm_setNextBlockTimestamp) so that the model knows
the `block.timestamp` of each transaction exactly; reverting transactions are mined too.
Each Hypothesis example starts from the same chain snapshot and restores it at teardown.

Note: the arbiter may still rule after a dispute's resolve deadline, as long as nobody has called
settleUnresolved (the contracts have no deadline check in resolveDispute); the model accepts it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import ClassVar

import ape_ethereum.trace
import pytest
import requests
from ape.exceptions import ContractLogicError, CustomError
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from .conftest import TOKEN, make_spec

# JobStatus
NONE, OPEN, CLAIMED, SUBMITTED, DISPUTED, FINALIZED, CANCELLED, EXPIRED, TIMED_OUT, RESOLVED = range(10)
ESCROWED = (OPEN, CLAIMED, SUBMITTED, DISPUTED)  # reward held by the market
LOCKED = (CLAIMED, SUBMITTED, DISPUTED)  # provider collateral locked in staking
# Ruling
NO_RULING, PROVIDER_WINS, CHALLENGER_WINS = 0, 1, 2

MAX_UINT = 2**256 - 1
UINT88_MAX = 2**88 - 1
ZERO32 = b"\x00" * 32

ACTORS = ("R1", "R2", "C", "P1", "P2")
POSTERS = ("R1", "R2", "C", "P1")  # P1 may claim its own job (provider == requester)
STAKERS = ("P1", "P2", "C")  # C starts unregistered; `stake` registers it
ACCOUNT_INDEX = {"R1": 1, "R2": 5, "C": 4, "P1": 2, "P2": 3}  # conftest's requester, stranger, ...
FUNDING = 2_000 * TOKEN
INITIAL_STAKE = {"P1": 300 * TOKEN, "P2": 1_000 * TOKEN}  # P1 often lacks the stake for a claim

# --------------------------------------------------------------------------- strategies

# (which job: unknown id, any job, or one in the status the action needs; index; time jump, see _jump)
job_pick = st.tuples(
    st.sampled_from(("unknown",) + ("any",) * 4 + ("preferred",) * 10),
    st.integers(0, 10**6),
    st.sampled_from((None,) * 4 + ("at", "past")),
)
whole_tokens = st.integers(1, 80).map(lambda n: n * TOKEN)
rewards = st.one_of(
    whole_tokens,
    whole_tokens,
    st.integers(TOKEN // 100, 80 * TOKEN),
    st.integers(1, 1_000),  # dust: collateral and burn shares round down (to 0: refused); no emissions
)
BAD_TERMS = (
    "reward0", "rewardTooBig", "rewardUnaffordable", "claimLo", "claimHi", "runtimeLo", "runtimeHi",
    "challengeLo", "challengeHi", "pctLo", "pctHi", "cpu0", "cpuHi",
)  # fmt: skip
bad_terms = st.sampled_from((None,) * 50 + BAD_TERMS)
cpu_seconds = st.one_of(st.integers(1, 300), st.integers(1, 5_000), st.integers(1, 921_600))  # clamped in post
time_steps = st.one_of(st.integers(1, 30), st.integers(1, 120), st.integers(1, 600), st.integers(1, 4_000))
amounts = st.one_of(
    st.just(0), st.integers(1, 400).map(lambda n: n * TOKEN), st.integers(1, 10**20), st.just(10**6 * TOKEN)
)
jumps = st.sampled_from([None, None, None, "at", "past"])
step_plans = st.lists(
    st.fixed_dictionaries(
        {
            "choice": st.integers(0, 9), "who": st.sampled_from(ACTORS + ("requester",)), "code": st.integers(1, 7),
            "ruling": st.sampled_from([PROVIDER_WINS, CHALLENGER_WINS]), "jump": jumps,
        }
    ),
    min_size=1,
    max_size=5,
)
POST_ARGS = {
    "who": st.sampled_from(POSTERS), "reward": rewards, "claim_window": st.integers(5, 1_800), "runtime": st.integers(1, 600),
    "challenge_window": st.integers(2, 600), "pct": st.integers(50, 500), "cpu": cpu_seconds, "bad": bad_terms,
    "priced": st.sampled_from([True, True, True, False]),  # declared CPU-seconds paid for (emissions)
}


# --------------------------------------------------------------------------- model types


@dataclass
class MJob:
    id: int
    requester: str
    reward: int
    pct: int
    claim_deadline: int
    max_runtime: int
    challenge_window: int
    cpu: int
    status: int = OPEN
    failure: bool = False
    provider: str | None = None
    deadline: int = 0
    challenger: str | None = None
    dispute_open: bool = False  # ArbiterResolver.isOpen

    @property
    def collateral(self) -> int:
        return self.reward * self.pct // 100


@dataclass
class MAcct:
    name: str
    account: object
    wallet: int
    credit: int
    staked: int
    locked: int
    unbonding: int
    release_at: int
    registered: bool
    completed: int  # ProviderInfo.jobsCompleted
    slashed: int  # ProviderInfo.jobsSlashed
    owed: int = 0  # what wallet + credit + staked + unbonding must add up to

    @property
    def address(self) -> str:
        return self.account.address


# --------------------------------------------------------------------------- batched view calls

_JOB_VIEW = "(bytes32,address,uint96,uint8,bool,address,uint32,uint32,uint24,uint24,uint16,uint32,uint96,address)"
_PROVIDER_INFO = "(uint24,uint96,uint96,uint96,uint32,uint32,uint32,string,bytes32)"


def _sel(signature: str) -> bytes:
    return function_signature_to_4byte_selector(signature)


class BatchReader:
    """eth_call many getters in one JSON-RPC batch (ape issues one HTTP request per call)."""

    def __init__(self, chain):
        self.uri = chain.provider.web3.provider.endpoint_uri
        self.session = requests.Session()
        self.calls: list[tuple[str, bytes, str]] = []

    def add(self, to: str, signature: str, arg_types: list[str], args: list, out: str) -> int:
        self.calls.append((to, _sel(signature) + abi_encode(arg_types, args), out))
        return len(self.calls) - 1

    def run(self) -> list:
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": "eth_call", "params": [{"to": to, "data": "0x" + d.hex()}, "latest"]}
            for i, (to, d, _) in enumerate(self.calls)
        ]
        replies = {r["id"]: r for r in self.session.post(self.uri, json=payload, timeout=60).json()}
        out = []
        for i, (_, _, typ) in enumerate(self.calls):
            r = replies[i]
            out.append(None if "error" in r else abi_decode([typ], bytes.fromhex(r["result"][2:]))[0])
        self.calls = []
        return out


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def actors(accounts, owner, token, staking, market):
    """The five actors, funded and approved; P1 and P2 registered. Idempotent on a shared session."""
    acts = {name: accounts[i] for name, i in ACCOUNT_INDEX.items()}
    for a in acts.values():
        token.mint(a, FUNDING, sender=owner)
        token.approve(market.address, MAX_UINT, sender=a)
        token.approve(staking.address, MAX_UINT, sender=a)
    for name in ("P1", "P2"):
        if staking.getProvider(acts[name]).id == 0:
            staking.register(INITIAL_STAKE[name], f"http://{name}.local:8700", keccak(text=name), sender=acts[name])
    return acts


@pytest.fixture
def quiet_reverts(monkeypatch):
    """ape-foundry prints the full call trace of every reverting transaction (about 0.25 s each,
    mostly re-deriving the test accounts); the model checks reverts itself, so skip the printing."""
    monkeypatch.setattr(ape_ethereum.trace.Trace, "show", lambda self, *a, **k: None)


# --------------------------------------------------------------------------- the state machine


class MarketMachine(RuleBasedStateMachine):
    # Set by the test function before running (ape fixtures).
    env: ClassVar[dict] = {}

    def __init__(self):
        super().__init__()
        e = self.env
        self.chain, self.token, self.staking, self.market, self.resolver = (
            e["chain"], e["token"], e["staking"], e["market"], e["resolver"]
        )  # fmt: skip
        self.owner = e["owner"]
        self.all_addresses = e["all_addresses"]
        self.reader = e["reader"]
        self.snapshot = self.chain.snapshot()

        # Parameters, read from the chain so the model follows deployments/parameters.toml.
        p = self.market.params()
        self.bounds = {
            "claim": (p.minClaimWindow, p.maxClaimWindow),
            "runtime": (p.minRuntime, p.maxRuntime),
            "challenge": (p.minChallengeWindow, p.maxChallengeWindow),
            "pct": (p.minCollateralPct, p.maxCollateralPct),
        }
        self.burn_bps, self.resolve_window = p.burnBps, p.resolveWindow
        self.paused = p.paused
        ep = self.market.emissionParams()
        self.rate, self.budget, self.epoch_len = ep.ratePerCpuSecond, ep.epochBudget, ep.epochLength
        self.min_reward_per_cpu = ep.minRewardPerCpuSecond
        self.max_cpus = self.market.MAX_CPUS_PER_JOB()
        self.em_epoch, self.em_minted = self.market.emissionState()
        self.cap = self.token.cap()
        self.min_stake, self.unbonding_delay = self.staking.minStake(), self.staking.unbondingDelay()

        # Model of the accounts, initialised from the chain.
        self.acct: dict[str, MAcct] = {}
        for name, account in e["actors"].items():
            info = self.staking.getProvider(account)
            a = MAcct(
                name, account, wallet=self.token.balanceOf(account), credit=self.market.withdrawableOf(account),
                staked=info.staked, locked=info.locked, unbonding=info.unbonding, release_at=info.releaseAt,
                registered=info.id != 0, completed=info.jobsCompleted, slashed=info.jobsSlashed,
            )  # fmt: skip
            a.owed = a.wallet + a.credit + a.staked + a.unbonding
            self.acct[name] = a
        assert self.market.jobCount() == 0, "the machine expects a market without jobs"
        self.jobs: list[MJob] = []
        self.provider_count = self.staking.providerCount()

        self.initial_supply = self.token.totalSupply()
        self.minted_events = 0  # sum of JobFinalized.emission + DisputeResolved.emission
        self.burned_events = 0  # sum of JobTimedOut.slashed + DisputeResolved.burned
        self.minted_model = 0
        self.burned_model = 0
        self.spec_n = 0
        self.now = self.chain.blocks.head.timestamp
        self.version = 0  # bumped by every step; keys the cached chain read
        self._cache: tuple[int, dict] | None = None

    def teardown(self):
        self.chain.restore(self.snapshot)

    # ------------------------------------------------------------------ helpers

    def _tick(self) -> int:
        """The timestamp of the next transaction: one second after the previous one."""
        self.version += 1
        self.now += 1
        self.chain.provider.set_timestamp(self.now)
        return self.now

    def _send(self, method, *args, sender):
        """Sends a transaction; returns (receipt, None) or (None, error name)."""
        try:
            return method(*args, sender=sender), None
        except CustomError as err:
            return None, err.name
        except ContractLogicError as err:  # custom errors of another contract, bubbled up
            if m := re.search(r"custom error (0x[0-9a-fA-F]{8})", str(err)):
                return None, self.env["errors"].get(m.group(1).lower(), m.group(1))
            return None, f"{type(err).__name__}: {err}"  # a panic or a plain revert: never expected

    def _agree(self, action: str, expected: set[str], err: str | None):
        if expected:
            assert err is not None, f"{action}: succeeded, the model expected a revert with one of {expected}"
            assert err in expected, f"{action}: reverted with {err}, the model expected one of {expected}"
        else:
            assert err is None, f"{action}: reverted with {err}, the model expected success"

    def _pick(self, pick, status: int, timely=None) -> int:
        """A job id: sometimes unknown (0 or jobCount + 1) or any job, mostly one in `status`, for
        which `timely(job, t)` holds at the next transaction's time `t` when there is such a job.
        Then time jumps to the job's deadline if `pick` says so."""
        mode, idx, jump = pick
        n = len(self.jobs)
        if mode == "unknown" or n == 0:
            return (0, n + 1)[idx % 2]
        jid = 1 + idx % n
        if mode == "preferred":
            candidates = [j for j in self.jobs if j.status == status]
            if timely:
                candidates = [j for j in candidates if timely(j, self.now + 1)] or candidates
            if candidates:
                jid = candidates[idx % len(candidates)].id
        self._jump(self.jobs[jid - 1], jump)
        return jid

    def _jump(self, job: MJob, jump: str | None):
        """Moves time so that the next transaction lands on the job's current deadline, the last
        second it allows ("at"), or one second after it ("past"); never backwards."""
        if jump and job.status in ESCROWED:
            deadline = job.claim_deadline if job.status == OPEN else job.deadline
            self.now = max(self.now, deadline - 1 if jump == "at" else deadline)

    def _some(self, status: int) -> bool:
        return any(j.status == status for j in self.jobs)

    def _role(self, who: str, jid: int) -> str:
        """`who`, or the job's requester or provider when `who` names that role."""
        job = self._job(jid)
        if who == "requester":
            return job.requester if job else "R1"
        if who == "provider":
            return job.provider if job and job.provider else "P1"
        return who

    def _job(self, job_id: int) -> MJob | None:
        return self.jobs[job_id - 1] if 1 <= job_id <= len(self.jobs) else None

    @staticmethod
    def _status_errors(job: MJob | None, expected: int) -> set[str]:
        if job is None:
            return {"UnknownJob"}
        return set() if job.status == expected else {"WrongStatus"}

    @staticmethod
    def _events(receipt, name: str) -> list[SimpleNamespace]:
        """The `name` events of `receipt`, as namespaces of their arguments (ape's logs have
        attributes such as `provider` of their own)."""
        return [SimpleNamespace(**ev.event_arguments) for ev in receipt.events if ev.event_name == name]

    def _one_event(self, receipt, name: str):
        evs = self._events(receipt, name)
        assert len(evs) == 1, f"expected one {name}, got {len(evs)}"
        return evs[0]

    def _emission(self, provider: MAcct, job: MJob) -> int:
        """JobMarket._mintEmission, predicted: mints to `provider` in the model, returns the amount."""
        if self.rate == 0 or self.budget == 0:
            return 0
        # Arm's-length work only: not the requester's own job, and a reward that pays for the CPU.
        if job.provider == job.requester or job.reward < job.cpu * self.min_reward_per_cpu:
            return 0
        epoch, minted = self.em_epoch, self.em_minted
        if epoch != self.now // self.epoch_len:
            epoch, minted = self.now // self.epoch_len, 0
        supply = self.initial_supply + self.minted_model - self.burned_model
        amount = min(job.cpu * self.rate, max(self.budget - minted, 0), self.cap - supply)
        if amount == 0:
            return 0
        self.em_epoch, self.em_minted = epoch, minted + amount
        self.minted_model += amount
        provider.wallet += amount
        provider.owed += amount
        return amount

    def _credit(self, a: MAcct, amount: int):
        a.credit += amount
        a.owed += amount

    def _finalize_model(self, job: MJob) -> tuple[int, int]:
        """JobMarket._finalize: returns (payout, emission)."""
        job.status = FINALIZED
        prov, req = self.acct[job.provider], self.acct[job.requester]
        prov.locked -= job.collateral
        if job.failure:
            self._credit(req, job.reward)
            return job.reward, 0
        prov.completed += 1
        self._credit(prov, job.reward)
        return job.reward, self._emission(prov, job)

    def _split(self, amount: int, winner_is_requester: bool) -> tuple[int, int]:
        if winner_is_requester:
            return 0, amount
        burned = amount * self.burn_bps // 10_000
        return amount - burned, burned

    def _settle_model(self, job: MJob, ruling: int) -> dict:
        """JobMarket._settleDispute: returns the DisputeResolved fields it must emit."""
        job.status = RESOLVED
        c = job.collateral
        prov, req, ch = self.acct[job.provider], self.acct[job.requester], self.acct[job.challenger]
        out = {"ruling": ruling, "winner": None, "forfeited": 0, "winnerPayout": 0, "burned": 0, "requesterRefund": 0,
               "providerPayout": 0, "emission": 0}  # fmt: skip
        if ruling == PROVIDER_WINS:
            prov.locked -= c
            out["winner"], out["forfeited"] = prov.address, c  # the challenger's bond
            out["winnerPayout"], out["burned"] = self._split(c, job.provider == job.requester)
            if job.failure:
                out["requesterRefund"] = job.reward
            else:
                prov.completed += 1
                out["providerPayout"] = job.reward
                out["emission"] = self._emission(prov, job)
            self._credit(prov, out["winnerPayout"] + out["providerPayout"])
        elif ruling == CHALLENGER_WINS:
            prov.locked -= c
            prov.staked -= c
            prov.owed -= c
            prov.slashed += 1
            out["winner"], out["forfeited"] = ch.address, c  # the provider's collateral
            out["winnerPayout"], out["burned"] = self._split(c, job.challenger == job.requester)
            out["requesterRefund"] = job.reward
            self._credit(ch, c + out["winnerPayout"])  # bond back plus the winner's share
        else:
            prov.locked -= c
            out["requesterRefund"] = job.reward
            self._credit(ch, c)  # bond back
        self._credit(req, out["requesterRefund"])
        self.burned_model += out["burned"]
        return out

    def _check_resolved_event(self, receipt, out: dict, job_id: int):
        ev = self._one_event(receipt, "DisputeResolved")
        assert ev.jobId == job_id
        for k, v in out.items():
            if k == "winner":
                v = v or "0x0000000000000000000000000000000000000000"
            assert getattr(ev, k) == v, f"DisputeResolved.{k} = {getattr(ev, k)}, model {v}"
        self.minted_events += ev.emission
        self.burned_events += ev.burned

    # ------------------------------------------------------------------ requester rules

    @initialize(budget=st.sampled_from([None, 1, TOKEN // 2]))
    def emission_budget(self, budget):
        """Some examples run with a tiny epoch budget (governance), so that it runs out."""
        if budget is None:
            return
        self._tick()
        # IJobMarket.EmissionParams: ratePerCpuSecond, epochBudget, epochLength, minRewardPerCpuSecond
        self.market.setEmissionParams((self.rate, budget, self.epoch_len, self.min_reward_per_cpu), sender=self.owner)
        self.budget = budget

    @initialize(jobs=st.lists(st.fixed_dictionaries({**POST_ARGS, "bad": st.none()}), min_size=1, max_size=3))
    def seed_jobs(self, jobs):
        """Every example starts with a few posted jobs, so that the job rules have targets."""
        for kw in jobs:
            self.post(**kw)

    @rule(**POST_ARGS)
    def post(self, who, reward, claim_window, runtime, challenge_window, pct, cpu, bad, priced):
        b = self.bounds
        match bad:
            case "reward0": reward = 0  # fmt: skip
            case "rewardTooBig": reward = UINT88_MAX + 1  # fmt: skip
            case "rewardUnaffordable": reward = 10**6 * TOKEN  # fmt: skip
            case "claimLo": claim_window = b["claim"][0] - 1  # fmt: skip
            case "claimHi": claim_window = b["claim"][1] + 1  # fmt: skip
            case "runtimeLo": runtime = b["runtime"][0] - 1  # fmt: skip
            case "runtimeHi": runtime = b["runtime"][1] + 1  # fmt: skip
            case "challengeLo": challenge_window = b["challenge"][0] - 1  # fmt: skip
            case "challengeHi": challenge_window = b["challenge"][1] + 1  # fmt: skip
            case "pctLo": pct = b["pct"][0] - 1  # fmt: skip
            case "pctHi": pct = b["pct"][1] + 1  # fmt: skip
        max_cpu = runtime * self.max_cpus
        match bad:
            case "cpu0": cpu = 0  # fmt: skip
            case "cpuHi": cpu = max_cpu + 1  # fmt: skip
            case _: cpu = min(cpu, max_cpu)  # fmt: skip
        if priced and self.min_reward_per_cpu and bad is None:
            cpu = max(1, min(cpu, reward // self.min_reward_per_cpu))
        a = self.acct[who]
        t = self._tick()
        errs = {"MarketPaused"} if self.paused else set()
        if reward == 0:
            errs.add("ZeroReward")
        elif reward > UINT88_MAX:
            errs.add("TermOutOfBounds")
        for value, (lo, hi) in (
            (claim_window, b["claim"]), (runtime, b["runtime"]), (challenge_window, b["challenge"]), (pct, b["pct"]),
        ):  # fmt: skip
            if not lo <= value <= hi:
                errs.add("TermOutOfBounds")
        if not 1 <= cpu <= max_cpu or reward * pct // 100 == 0:  # a zero collateral is refused too
            errs.add("TermOutOfBounds")
        from_credit = min(a.credit, reward)
        if not errs and reward - from_credit > a.wallet:
            errs.add("ERC20InsufficientBalance")
        self.spec_n += 1
        spec = make_spec(self.spec_n)
        terms = (reward, claim_window, runtime, challenge_window, pct, cpu)
        receipt, err = self._send(self.market.postJob, keccak(spec), spec, terms, sender=a.account)
        self._agree(f"post by {who} {terms}", errs, err)
        if err:
            return
        job = MJob(len(self.jobs) + 1, who, reward, pct, t + claim_window, runtime, challenge_window, cpu)
        ev = self._one_event(receipt, "JobPosted")
        assert (ev.jobId, ev.fromCredit, ev.claimDeadline) == (job.id, from_credit, job.claim_deadline)
        a.credit -= from_credit
        a.wallet -= reward - from_credit
        a.owed -= reward
        self.jobs.append(job)

    @rule(who=st.sampled_from(POSTERS), amount=amounts)
    def deposit(self, who, amount):
        a = self.acct[who]
        self._tick()
        errs = {"ZeroDeposit"} if amount == 0 else {"ERC20InsufficientBalance"} if amount > a.wallet else set()
        if self.paused:
            errs = {"MarketPaused"}
        _, err = self._send(self.market.deposit, amount, sender=a.account)
        self._agree(f"deposit {amount} by {who}", errs, err)
        if not err:
            a.wallet -= amount
            a.credit += amount

    @precondition(lambda self: self._some(OPEN))
    @rule(who=st.sampled_from(POSTERS + ("requester",) * 2), pick=job_pick)
    def cancel(self, who, pick):
        jid = self._pick(pick, OPEN)
        self._cancel(self._role(who, jid), jid)

    def _cancel(self, who, jid):
        job = self._job(jid)
        self._tick()
        errs = self._status_errors(job, OPEN)
        if not errs and job.requester != who:
            errs.add("NotRequester")
        receipt, err = self._send(self.market.cancelJob, jid, sender=self.acct[who].account)
        self._agree(f"cancel {jid} by {who}", errs, err)
        if not err:
            job.status = CANCELLED
            self._credit(self.acct[who], job.reward)
            assert self._one_event(receipt, "JobCancelled").refund == job.reward

    # ------------------------------------------------------------------ provider rules

    @precondition(lambda self: self._some(OPEN))
    @rule(who=st.sampled_from(STAKERS), pick=job_pick)
    def claim(self, who, pick):
        self._claim(who, self._pick(pick, OPEN, lambda j, t: t <= j.claim_deadline))

    def _claim(self, who, jid):
        job = self._job(jid)
        a = self.acct[who]
        t = self._tick()
        errs = {"MarketPaused"} if self.paused else self._status_errors(job, OPEN)
        if not errs:
            if t > job.claim_deadline:
                errs.add("TooLate")
            elif not a.registered:
                errs.add("NotRegistered")
            elif a.staked < a.locked + job.collateral + self.min_stake:
                errs.add("InsufficientStake")
        receipt, err = self._send(self.market.claimJob, jid, sender=a.account)
        self._agree(f"claim {jid} by {who}", errs, err)
        if not err:
            job.status, job.provider, job.deadline = CLAIMED, who, t + job.max_runtime
            a.locked += job.collateral
            ev = self._one_event(receipt, "JobClaimed")
            assert (ev.collateral, ev.submitDeadline) == (job.collateral, job.deadline)

    def _submit_errors(self, job: MJob | None, who: str, t: int) -> set[str]:
        errs = self._status_errors(job, CLAIMED)
        if not errs:
            if job.provider != who:
                errs.add("NotAssignedProvider")
            elif t > job.deadline:
                errs.add("TooLate")
        return errs

    @precondition(lambda self: self._some(CLAIMED))
    @rule(who=st.sampled_from(STAKERS + ("provider",) * 2), pick=job_pick, empty=st.sampled_from([False] * 12 + [True]))
    def submit_result(self, who, pick, empty):
        jid = self._pick(pick, CLAIMED, lambda j, t: t <= j.deadline)
        self._submit_result(self._role(who, jid), jid, empty)

    def _submit_result(self, who, jid, empty):
        job = self._job(jid)
        t = self._tick()
        errs = {"EmptyResultHash"} if empty else self._submit_errors(job, who, t)
        result = ZERO32 if empty else keccak(text=f"result-{jid}")
        _, err = self._send(self.market.submitResult, jid, result, f"http://x/{jid}", sender=self.acct[who].account)
        self._agree(f"submitResult {jid} by {who}", errs, err)
        if not err:
            job.status, job.deadline = SUBMITTED, t + job.challenge_window

    @precondition(lambda self: self._some(CLAIMED))
    @rule(
        who=st.sampled_from(STAKERS + ("provider",) * 2), pick=job_pick,
        code=st.one_of(st.integers(1, 7), st.sampled_from([0, 8, 255])),
    )  # fmt: skip
    def submit_failure(self, who, pick, code):
        jid = self._pick(pick, CLAIMED, lambda j, t: t <= j.deadline)
        self._submit_failure(self._role(who, jid), jid, code)

    def _submit_failure(self, who, jid, code):
        job = self._job(jid)
        t = self._tick()
        errs = {"InvalidFailureCode"} if not 1 <= code <= 7 else self._submit_errors(job, who, t)
        evidence = keccak(text="evidence")
        _, err = self._send(self.market.submitFailure, jid, code, evidence, sender=self.acct[who].account)
        self._agree(f"submitFailure {jid} code {code} by {who}", errs, err)
        if not err:
            job.status, job.deadline, job.failure = SUBMITTED, t + job.challenge_window, True

    @rule(who=st.sampled_from(STAKERS), amount=amounts)
    def stake(self, who, amount):
        """`stake` for a registered provider, `register` otherwise."""
        a = self.acct[who]
        self._tick()
        if a.registered:
            errs = {"ZeroAmount"} if amount == 0 else set()
            method, args = self.staking.stake, (amount,)
        else:
            errs = {"StakeBelowMinimum"} if amount < self.min_stake else set()
            method, args = self.staking.register, (amount, f"http://{who}.local", keccak(text=who))
        if not errs and amount > a.wallet:
            errs.add("ERC20InsufficientBalance")
        _, err = self._send(method, *args, sender=a.account)
        self._agree(f"{method.abis[0].name} {amount} by {who}", errs, err)
        if not err:
            if not a.registered:
                a.registered = True
                self.provider_count += 1
            a.wallet -= amount
            a.staked += amount

    @rule(who=st.sampled_from(STAKERS), amount=st.one_of(amounts, st.just("available")))
    def request_unstake(self, who, amount):
        a = self.acct[who]
        if amount == "available":
            amount = a.staked - a.locked
        t = self._tick()
        errs = set()
        if amount == 0:
            errs.add("ZeroAmount")
        elif not a.registered:
            errs.add("NotRegistered")
        elif amount > a.staked - a.locked:
            errs.add("InsufficientStake")
        _, err = self._send(self.staking.requestUnstake, amount, sender=a.account)
        self._agree(f"requestUnstake {amount} by {who}", errs, err)
        if not err:
            a.staked -= amount
            a.unbonding += amount
            a.release_at = t + self.unbonding_delay

    @precondition(lambda self: any(a.unbonding for a in self.acct.values()))
    @rule(who=st.sampled_from(STAKERS))
    def withdraw_unstaked(self, who):
        a = self.acct[who]
        t = self._tick()
        errs = {"NothingUnbonding"} if a.unbonding == 0 else {"UnbondingNotReady"} if t < a.release_at else set()
        _, err = self._send(self.staking.withdrawUnstaked, sender=a.account)
        self._agree(f"withdrawUnstaked by {who}", errs, err)
        if not err:
            a.wallet += a.unbonding
            a.unbonding, a.release_at = 0, 0

    # ------------------------------------------------------------------ anyone

    @precondition(lambda self: self._some(SUBMITTED))
    @rule(who=st.sampled_from(ACTORS), pick=job_pick)
    def challenge(self, who, pick):
        self._challenge(who, self._pick(pick, SUBMITTED, lambda j, t: t <= j.deadline))

    def _challenge(self, who, jid):
        job = self._job(jid)
        a = self.acct[who]
        t = self._tick()
        errs = self._status_errors(job, SUBMITTED)
        if not errs:
            if t > job.deadline:
                errs.add("TooLate")
            elif job.provider == who:
                errs.add("SelfChallenge")
            elif job.collateral > a.wallet:
                errs.add("ERC20InsufficientBalance")
        receipt, err = self._send(self.market.challenge, jid, sender=a.account)
        self._agree(f"challenge {jid} by {who}", errs, err)
        if not err:
            job.status, job.deadline, job.challenger, job.dispute_open = DISPUTED, t + self.resolve_window, who, True
            a.wallet -= job.collateral
            a.owed -= job.collateral
            ev = self._one_event(receipt, "JobChallenged")
            assert (ev.bond, ev.resolveDeadline) == (job.collateral, job.deadline)

    @precondition(lambda self: any(j.dispute_open for j in self.jobs))
    @rule(pick=job_pick, ruling=st.sampled_from([PROVIDER_WINS, CHALLENGER_WINS] * 4 + [NO_RULING]))
    def resolve(self, pick, ruling):
        """The arbiter (owner) rules through ArbiterResolver.rule. No deadline: a late ruling is
        accepted while nobody has settled the dispute without one."""
        self._resolve(self._pick(pick, DISPUTED), ruling)

    def _resolve(self, jid, ruling):
        job = self._job(jid)
        self._tick()
        if job is None or not job.dispute_open:
            errs = {"NoOpenDispute"}
        elif ruling == NO_RULING:
            errs = {"InvalidRuling"}
        else:
            errs = self._status_errors(job, DISPUTED)
        receipt, err = self._send(self.resolver.rule, jid, ruling, keccak(text="re-run"), sender=self.owner)
        self._agree(f"rule {ruling} on {jid}", errs, err)
        if not err:
            job.dispute_open = False
            self._check_resolved_event(receipt, self._settle_model(job, ruling), jid)

    @precondition(lambda self: self._some(DISPUTED))
    @rule(who=st.sampled_from(ACTORS), pick=job_pick, direct=st.booleans())
    def unauthorized_resolve(self, who, pick, direct):
        """Nobody but the arbiter (through the resolver) can rule."""
        self._unauthorized_resolve(who, self._pick(pick, DISPUTED), direct)

    def _unauthorized_resolve(self, who, jid, direct):
        self._tick()
        a = self.acct[who]
        if direct:
            _, err = self._send(self.market.resolveDispute, jid, CHALLENGER_WINS, sender=a.account)
            self._agree(f"resolveDispute {jid} by {who}", {"NotResolver"}, err)
        else:
            _, err = self._send(self.resolver.rule, jid, CHALLENGER_WINS, ZERO32, sender=a.account)
            self._agree(f"rule {jid} by {who}", {"AccessControlUnauthorizedAccount"}, err)

    @precondition(lambda self: self._some(DISPUTED))
    @rule(who=st.sampled_from(ACTORS), pick=job_pick)
    def settle_unresolved(self, who, pick):
        self._settle_unresolved(who, self._pick(pick, DISPUTED, lambda j, t: t > j.deadline))

    def _settle_unresolved(self, who, jid):
        job = self._job(jid)
        t = self._tick()
        errs = self._status_errors(job, DISPUTED)
        if not errs and t <= job.deadline:
            errs.add("TooEarly")
        receipt, err = self._send(self.market.settleUnresolved, jid, sender=self.acct[who].account)
        self._agree(f"settleUnresolved {jid} by {who}", errs, err)
        if not err:
            self._check_resolved_event(receipt, self._settle_model(job, NO_RULING), jid)

    def _check_finalized_event(self, ev, job: MJob, payout: int, emission: int):
        assert (ev.jobId, ev.failure, ev.payout, ev.emission) == (job.id, job.failure, payout, emission)
        assert ev.provider == self.acct[job.provider].address
        self.minted_events += ev.emission

    @precondition(lambda self: self._some(SUBMITTED))
    @rule(who=st.sampled_from(ACTORS), pick=job_pick)
    def finalize(self, who, pick):
        self._finalize(who, self._pick(pick, SUBMITTED, lambda j, t: t > j.deadline))

    def _finalize(self, who, jid):
        job = self._job(jid)
        t = self._tick()
        errs = self._status_errors(job, SUBMITTED)
        if not errs and t <= job.deadline:
            errs.add("TooEarly")
        receipt, err = self._send(self.market.finalize, jid, sender=self.acct[who].account)
        self._agree(f"finalize {jid} by {who}", errs, err)
        if not err:
            payout, emission = self._finalize_model(job)
            self._check_finalized_event(self._one_event(receipt, "JobFinalized"), job, payout, emission)

    @precondition(lambda self: self._some(SUBMITTED))
    @rule(who=st.sampled_from(ACTORS), picks=st.lists(st.integers(0, 10**6), max_size=6))
    def finalize_many(self, who, picks):
        ids = [p % (len(self.jobs) + 2) for p in picks]  # 0 and jobCount + 1 are unknown ids
        t = self._tick()
        receipt, err = self._send(self.market.finalizeMany, ids, sender=self.acct[who].account)
        self._agree(f"finalizeMany {ids} by {who}", set(), err)
        evs = self._events(receipt, "JobFinalized")
        expected = []
        for jid in ids:
            job = self._job(jid)
            if job is not None and job.status == SUBMITTED and t > job.deadline:
                expected.append((job, *self._finalize_model(job)))
        assert len(evs) == len(expected), f"finalizeMany {ids}: {len(evs)} finalized, model {len(expected)}"
        for ev, (job, payout, emission) in zip(evs, expected, strict=True):
            self._check_finalized_event(ev, job, payout, emission)

    @precondition(lambda self: self._some(OPEN))
    @rule(who=st.sampled_from(ACTORS), pick=job_pick)
    def expire(self, who, pick):
        self._expire(who, self._pick(pick, OPEN, lambda j, t: t > j.claim_deadline))

    def _expire(self, who, jid):
        job = self._job(jid)
        t = self._tick()
        errs = self._status_errors(job, OPEN)
        if not errs and t <= job.claim_deadline:
            errs.add("TooEarly")
        receipt, err = self._send(self.market.expireJob, jid, sender=self.acct[who].account)
        self._agree(f"expire {jid} by {who}", errs, err)
        if not err:
            job.status = EXPIRED
            self._credit(self.acct[job.requester], job.reward)
            assert self._one_event(receipt, "JobExpired").refund == job.reward

    @precondition(lambda self: self._some(CLAIMED))
    @rule(who=st.sampled_from(ACTORS), pick=job_pick)
    def timeout(self, who, pick):
        self._timeout(who, self._pick(pick, CLAIMED, lambda j, t: t > j.deadline))

    def _timeout(self, who, jid):
        job = self._job(jid)
        t = self._tick()
        errs = self._status_errors(job, CLAIMED)
        if not errs and t <= job.deadline:
            errs.add("TooEarly")
        receipt, err = self._send(self.market.timeoutJob, jid, sender=self.acct[who].account)
        self._agree(f"timeout {jid} by {who}", errs, err)
        if err:
            return
        c, prov = job.collateral, self.acct[job.provider]
        prov.locked -= c
        prov.staked -= c
        prov.owed -= c
        prov.slashed += 1
        self.burned_model += c
        reopened = t <= job.claim_deadline
        refund = 0
        if reopened:
            job.status, job.provider, job.deadline = OPEN, None, 0
        else:
            job.status, refund = TIMED_OUT, job.reward
            self._credit(self.acct[job.requester], refund)
        ev = self._one_event(receipt, "JobTimedOut")
        assert (ev.provider, ev.slashed, ev.reopened, ev.refund) == (prov.address, c, reopened, refund)
        self.burned_events += ev.slashed

    # Targeted steps: the rules above mostly try random jobs (and revert), these attempt the next
    # step of a job in the right status, so that examples reach disputes and settlements.

    def _next_step(self, job: MJob, choice, who, code, ruling, jump):
        """The next step of an unsettled job. Before its deadline: claim; submit a result or a
        failure; challenge; rule. After it: expire; time out; finalize; settle without a ruling.
        One time in ten (`choice` 9) the other one, which must revert (or, for a late ruling, not).
        `jump` first moves time to the job's current deadline ("at": the transaction lands on the
        last second it allows) or just past it ("past")."""
        self._jump(job, jump)
        who = self._role(who, job.id)  # the requester challenges its own job now and then
        deadline = job.claim_deadline if job.status == OPEN else job.deadline
        late = (self.now + 1 > deadline) != (choice == 9)
        if job.status == OPEN:
            if late:
                self._expire(who, job.id)
            else:
                stakers = [n for n in STAKERS if self.acct[n].registered]
                self._claim(stakers[choice % len(stakers)], job.id)
        elif job.status == CLAIMED:
            if late:
                self._timeout(who, job.id)
            elif choice < 7:
                self._submit_result(job.provider, job.id, False)
            else:
                self._submit_failure(job.provider, job.id, code)
        elif job.status == SUBMITTED:
            if late:
                self._finalize(who, job.id)
            else:
                self._challenge(who, job.id)
        elif late and choice < 5:  # DISPUTED; otherwise a ruling, maybe a late one
            self._settle_unresolved(who, job.id)
        else:
            self._resolve(job.id, ruling)

    @precondition(lambda self: any(j.status in ESCROWED for j in self.jobs))
    @rule(idx=st.integers(0, 10**6), steps=step_plans)
    def next_steps(self, idx, steps):
        """Takes an unsettled job (mostly the most advanced one) up to five steps on, checking the
        invariants between steps as after any rule."""
        active = [j for j in self.jobs if j.status in ESCROWED]
        if idx % 4:
            active = [j for j in active if j.status == max(k.status for k in active)]
        job = active[idx % len(active)]
        for i, step in enumerate(steps):
            if job.status not in ESCROWED:
                break
            if i:
                self._check_invariants()
            self._next_step(job, **step)

    # The same rule under other names: Hypothesis picks rules uniformly and switches each name on or
    # off per example ("swarm testing"), while a job needs several steps to reach a dispute and its
    # settlement.
    @precondition(lambda self: any(j.status in ESCROWED for j in self.jobs))
    @rule(idx=st.integers(0, 10**6), steps=step_plans)
    def next_steps_again(self, idx, steps):
        self.next_steps(idx=idx, steps=steps)

    @precondition(lambda self: any(j.status in ESCROWED for j in self.jobs))
    @rule(idx=st.integers(0, 10**6), steps=step_plans)
    def next_steps_3(self, idx, steps):
        self.next_steps(idx=idx, steps=steps)

    @precondition(lambda self: any(j.status in ESCROWED for j in self.jobs))
    @rule(idx=st.integers(0, 10**6), steps=step_plans)
    def next_steps_4(self, idx, steps):
        self.next_steps(idx=idx, steps=steps)

    @precondition(lambda self: any(a.credit for a in self.acct.values()))
    @rule(who=st.sampled_from(ACTORS))
    def withdraw(self, who):
        a = self.acct[who]
        self._tick()
        errs = {"NothingToWithdraw"} if a.credit == 0 else set()
        _, err = self._send(self.market.withdraw, sender=a.account)
        self._agree(f"withdraw by {who}", errs, err)
        if not err:
            a.wallet += a.credit
            a.credit = 0

    @rule(
        idx=st.integers(0, 10**6), step=step_plans.map(lambda plan: plan[0]), who=st.sampled_from(POSTERS),
        amount=amounts, post=st.fixed_dictionaries(POST_ARGS),
    )  # fmt: skip
    def paused_interlude(self, idx, step, who, amount, post):
        """The guardian (owner) pauses the market; a job takes its next step (a claim must revert,
        any settlement goes on), a deposit and a post must revert; the guardian unpauses."""
        self._set_paused(True)
        active = [j for j in self.jobs if j.status in ESCROWED]
        if active:
            self._next_step(active[idx % len(active)], **step)
            self._check_invariants()
        self.deposit(who=who, amount=amount)
        self.post(**post)
        self._set_paused(False)

    def _set_paused(self, paused: bool):
        self._tick()
        self.market.setPaused(paused, sender=self.owner)
        self.paused = paused

    @rule(seconds=time_steps)
    def advance_time(self, seconds):
        self.now += seconds  # the next transaction's block gets this timestamp (plus one)

    # ------------------------------------------------------------------ invariants

    def _read(self) -> dict:
        """Everything the invariants need, from on-chain getters, in one batch (cached per step)."""
        if self._cache and self._cache[0] == self.version:
            return self._cache[1]
        r, m, tk = self.reader, self.market.address, self.token.address
        sk, rs = self.staking.address, self.resolver.address
        n = len(self.jobs)
        idx = {
            "jobCount": r.add(m, "jobCount()", [], [], "uint256"),
            "balMarket": r.add(tk, "balanceOf(address)", ["address"], [m], "uint256"),
            "balStaking": r.add(tk, "balanceOf(address)", ["address"], [sk], "uint256"),
            "supply": r.add(tk, "totalSupply()", [], [], "uint256"),
            "providerCount": r.add(sk, "providerCount()", [], [], "uint24"),
            "emissionState": r.add(m, "emissionState()", [], [], "(uint32,uint96)"),
        }
        job_idx = [r.add(m, "getJob(uint256)", ["uint256"], [i], _JOB_VIEW) for i in range(1, n + 1)]
        open_idx = [r.add(rs, "isOpen(uint256)", ["uint256"], [i], "bool") for i in range(1, n + 1)]
        acct_idx = {
            addr: (
                r.add(m, "withdrawableOf(address)", ["address"], [addr], "uint256"),
                r.add(tk, "balanceOf(address)", ["address"], [addr], "uint256"),
                r.add(sk, "getProvider(address)", ["address"], [addr], _PROVIDER_INFO),
            )
            for addr in self.all_addresses
        }
        res = r.run()
        s = {k: res[i] for k, i in idx.items()}
        assert s["jobCount"] == n, f"jobCount {s['jobCount']}, model {n}"
        jobs = [res[i] for i in job_idx]
        assert None not in jobs, "getJob reverted for a posted job"
        checksummed = {1, 5, 13}  # eth_abi decodes addresses in lower case
        s["jobs"] = [tuple(to_checksum_address(x) if k in checksummed else x for k, x in enumerate(j)) for j in jobs]
        s["isOpen"] = [res[i] for i in open_idx]
        s["credit"] = {a: res[i] for a, (i, _, _) in acct_idx.items()}
        s["wallet"] = {a: res[i] for a, (_, i, _) in acct_idx.items()}
        s["provider"] = {a: res[i] for a, (_, _, i) in acct_idx.items()}
        self._cache = (self.version, s)
        return s

    def _check_invariants(self):
        self.market_conservation()
        self.staking_conservation()
        self.accounts_match_model()
        self.jobs_match_model()

    @invariant()
    def market_conservation(self):
        s = self._read()
        # JobView: 0 specHash, 1 requester, 2 reward, 3 status, 4 failure, 5 provider, 6 claimDeadline,
        # 7 deadline, 8 maxRuntime, 9 challengeWindow, 10 collateralPct, 11 cpuSeconds, 12 collateral, 13 challenger
        escrowed = sum(j[2] for j in s["jobs"] if j[3] in ESCROWED)
        bonds = sum(j[12] for j in s["jobs"] if j[3] == DISPUTED)
        credits = sum(s["credit"].values())
        assert s["balMarket"] == escrowed + bonds + credits, (
            f"market holds {s['balMarket']}, owes {escrowed} rewards + {bonds} bonds + {credits} credits"
        )

    @invariant()
    def staking_conservation(self):
        s = self._read()
        # ProviderInfo: 0 id, 1 staked, 2 locked, 3 unbonding, 4 releaseAt, 5 jobsCompleted, 6 jobsSlashed, ...
        infos = s["provider"]
        registered = [a for a, info in infos.items() if info[0] != 0]
        assert len(registered) == s["providerCount"] == self.provider_count, "providers outside the known accounts"
        total = sum(infos[a][1] + infos[a][3] for a in registered)
        assert s["balStaking"] == total, f"staking holds {s['balStaking']}, providers have {total}"
        locked_by_jobs: dict[str, int] = {}
        for j in s["jobs"]:
            if j[3] in LOCKED:
                locked_by_jobs[j[5]] = locked_by_jobs.get(j[5], 0) + j[12]
        for a, info in infos.items():
            assert info[2] <= info[1], f"{a}: locked {info[2]} > staked {info[1]}"
            assert info[2] == locked_by_jobs.get(a, 0), f"{a}: locked {info[2]}, jobs lock {locked_by_jobs.get(a, 0)}"

    @invariant()
    def accounts_match_model(self):
        s = self._read()
        for name, a in self.acct.items():
            info = s["provider"][a.address]
            wallet, credit = s["wallet"][a.address], s["credit"][a.address]
            holdings = wallet + credit + info[1] + info[3]
            assert holdings == a.owed, f"{name} holds {holdings} in total, is owed {a.owed}"
            got = (wallet, credit, info[1], info[2], info[3], info[4], info[0] != 0, info[5], info[6])
            want = (a.wallet, a.credit, a.staked, a.locked, a.unbonding, a.release_at, a.registered, a.completed,
                    a.slashed)  # fmt: skip
            fields = "(wallet, credit, staked, locked, unbonding, releaseAt, registered, completed, slashed)"
            assert got == want, f"{name}: {fields} {got}, model {want}"
        expected_supply = self.initial_supply + self.minted_events - self.burned_events
        assert s["supply"] == expected_supply, f"totalSupply {s['supply']}, expected {expected_supply}"
        assert (self.minted_events, self.burned_events) == (self.minted_model, self.burned_model)
        assert tuple(s["emissionState"]) == (self.em_epoch, self.em_minted)

    @invariant()
    def jobs_match_model(self):
        s = self._read()
        zero = "0x0000000000000000000000000000000000000000"
        for job, v, is_open in zip(self.jobs, s["jobs"], s["isOpen"], strict=True):
            provider = self.acct[job.provider].address if job.provider else zero
            challenger = self.acct[job.challenger].address if job.challenger else zero
            got = (v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], is_open)
            want = (
                self.acct[job.requester].address, job.reward, job.status, job.failure, provider, job.claim_deadline,
                job.deadline, job.max_runtime, job.challenge_window, job.pct, job.cpu, job.collateral, challenger,
                job.dispute_open,
            )  # fmt: skip
            assert got == want, f"job {job.id}: {got}, model {want}"


# --------------------------------------------------------------------------- the test


def _error_selectors(*contracts) -> dict[str, str]:
    out = {}
    sigs = [
        "ERC20InsufficientBalance(address,uint256,uint256)",
        "ERC20InsufficientAllowance(address,uint256,uint256)",
    ]
    for c in contracts:
        for abi in c.contract_type.errors:
            sigs.append(f"{abi.name}({','.join(i.canonical_type for i in abi.inputs)})")
    for sig in sigs:
        out["0x" + _sel(sig).hex()] = sig.split("(")[0]
    return out


def test_market_state_machine(chain, accounts, owner, token, staking, market, resolver, actors, quiet_reverts):
    MarketMachine.env = {
        "chain": chain,
        "token": token,
        "staking": staking,
        "market": market,
        "resolver": resolver,
        "owner": owner,
        "actors": actors,
        "all_addresses": [a.address for a in accounts],
        "reader": BatchReader(chain),
        "errors": _error_selectors(token, staking, market, resolver),
    }
    run_state_machine_as_test(
        MarketMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )

