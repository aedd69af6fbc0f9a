"""Agents playing the verification protocol against the real contracts (market + court).

:class:`Protocol` is the set of moves every strategy is built from: post, claim, submit a salted
commitment, force a draw, take a seat, commit, reveal, appeal, challenge, expose a canary, and move
the clock to the next deadline. Seats are filled by *roles* (pools of accounts: honest verifiers,
the coalition, a lazy verifier): :meth:`Protocol.run_round` searches the round's anchor randomness
until the court's own ``drawnFor`` puts the wanted role on every seat, then each holder acts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak

from depinctl.sim.world import (
    MAX_UINT256,
    SimError,
    TxFailed,
    World,
    canary_digest,
    commitment,
    drawn_locally,
    seat_commitment,
)

JURY_SIZES = (1, 3, 7, 15)  # round 0 is the audit (one seat), rounds 1..3 juries

# IJobMarket.JobStatus / IMarketForCourt.Outcome / IVerificationCourt.Phase
STATUS = ("None", "Open", "Claimed", "Submitted", "Disputed", "Finalized", "Cancelled", "Expired", "TimedOut", "Resolved")
OUTCOME = ("None", "ProviderRight", "ProviderWrong", "Split", "Unaudited", "Canary")
PHASE_NONE, PHASE_ACTIVE, PHASE_TALLIED, PHASE_ARBITER, PHASE_CONCLUDED = range(5)

# failure codes (IJobMarket.FailureCode): 1, 2 are availability failures
IMAGE_UNAVAILABLE, INPUT_HASH_MISMATCH, NONZERO_EXIT = 1, 2, 3

Behaviour = Callable[["Job", str, int, int], bytes | None]  # (job, holder, round, seat) -> digest, None = no-show


@dataclass
class Job:
    """A job as the agents know it: who posted and claimed it, and the digests in play."""

    id: int
    requester: str
    provider: str = ""
    digest: bytes = b""  # what the provider committed to (bytes32(code) for a failure)
    salt: bytes = b""
    truth: bytes | None = None  # what an honest run produces; None: every run differs
    canary_secret: bytes | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Actors:
    """The accounts of a simulation (anvil's development accounts)."""

    deployer: str
    requester: str
    provider: str  # the attacker's provider (lazy, hoarding, ...)
    honest_provider: str
    sybil: str  # the provider's second account
    canary: str  # the canary operator's provider account (CANARY_ROLE)
    canary_requester: str
    wash: str  # the wash trader's second account (a registered provider)
    lazy: str  # a verifier that copies digests instead of running jobs
    honest: list[str]  # honest verifiers
    coalition: list[str]  # verifiers colluding with the attacker

    def pools(self) -> dict[str, list[str]]:
        return {"honest": self.honest, "coalition": self.coalition, "lazy": [self.lazy]}

    def everyone(self) -> list[str]:
        return [
            self.requester,
            self.provider,
            self.honest_provider,
            self.sybil,
            self.canary,
            self.canary_requester,
            self.wash,
            self.lazy,
            *self.honest,
            *self.coalition,
        ]


# ---------------------------------------------------------------------------------------- behaviours


def run_honestly(job: Job, holder: str, round_: int, seat: int) -> bytes:
    """An honest re-run: the job's true digest (a fresh one per run for a nondeterministic job)."""
    if job.truth is None:
        return keccak(b"nondeterministic:%d:%s:%d:%d" % (job.id, holder.encode(), round_, seat))
    return job.truth


def copy_provider(job: Job, holder: str, round_: int, seat: int) -> bytes:
    """A lazy or colluding verifier: reveals the digest the provider committed to (leaked off chain)."""
    return job.digest


def no_show(job: Job, holder: str, round_: int, seat: int) -> None:
    """Takes the seat (bond locked), then never commits."""
    return


class Protocol:
    """The moves of every party, on one :class:`World`."""

    def __init__(self, world: World, actors: Actors) -> None:
        self.w = world
        self.a = actors
        self.runs: dict[str, int] = {}  # account -> job runs done in the current branch

    # ------------------------------------------------------------------ reads

    def market_params(self) -> dict[str, Any]:
        return self.w.view(self.w.market, "params")

    def court_params(self) -> dict[str, Any]:
        return self.w.view(self.w.court, "params")

    def job_view(self, job_id: int) -> dict[str, Any]:
        return self.w.view(self.w.market, "getJob", job_id)

    def status(self, job_id: int) -> str:
        return STATUS[int(self.job_view(job_id)["status"])]

    def case(self, job_id: int) -> dict[str, Any]:
        return self.w.view(self.w.court, "getCase", job_id)

    def outcome(self, job_id: int) -> str:
        """How the job ended: the court's outcome, or the market status (Finalized, TimedOut, ...)."""
        status = self.status(job_id)
        if status == "Resolved":
            return OUTCOME[int(self.case(job_id)["outcome"])]
        return status

    def drawn_for(self, job_id: int, round_: int, seat: int) -> str:
        return str(self.w.read(self.w.court, "drawnFor", job_id, round_, seat))

    # ------------------------------------------------------------------ setup

    def fund(self, accounts: Sequence[str], amount: int) -> None:
        for a in accounts:
            self.w.send(self.w.deployer, self.w.token, "mint", a, amount)
            for spender in (self.w.market, self.w.staking, self.w.court):
                self.w.send(a, self.w.token, "approve", spender.address, MAX_UINT256)

    def register_provider(self, provider: str, stake: int) -> None:
        self.w.send(provider, self.w.staking, "register", stake, "http://sim.invalid", b"\x00" * 32)

    def join_court(self, verifier: str, stake: int, platform_class: int = 0) -> None:
        self.w.send(verifier, self.w.court, "join", stake, platform_class)

    # ------------------------------------------------------------------ jobs

    def terms(self, reward: int, k_pct: int, verify_mode: int = 0) -> tuple[int, ...]:
        """Job terms within the current parameters: a 1-hour job, the shortest allowed challenge window."""
        p = self.market_params()
        runtime = max(int(p["minRuntime"]), min(3_600, int(p["maxRuntime"])))
        claim = max(int(p["minClaimWindow"]), min(86_400, int(p["maxClaimWindow"])))
        window = int(p["minChallengeWindow"])
        return (reward, claim, runtime, window, k_pct, runtime, verify_mode)

    def post(self, requester: str, reward: int, k_pct: int, *, verify_mode: int = 0) -> Job:
        spec = self.w.next_spec()
        receipt = self.w.send(requester, self.w.market, "postJob", keccak(spec), spec, self.terms(reward, k_pct, verify_mode))
        topic = self.w.codec.topics[("JobMarket", "JobPosted")]
        for log in receipt["logs"]:
            if log["topics"][0] == "0x" + topic.hex():
                job = Job(int(log["topics"][1], 16), requester, truth=keccak(b"truth:" + spec))
                return job
        raise SimError("postJob emitted no JobPosted")

    def claim(self, provider: str, job: Job) -> None:
        self.w.send(provider, self.w.market, "claimJob", job.id)
        job.provider = provider

    def submit(self, job: Job, digest: bytes, *, uri: str = "") -> None:
        """The provider commits to `digest` with a fresh salt (the URI is opaque: no digest in it)."""
        job.digest = digest
        job.salt = keccak(b"salt:%d:" % job.id + digest)
        c = commitment(job.provider, job.id, digest, job.salt)
        self.w.send(job.provider, self.w.market, "submitResult", job.id, c, uri or f"sim://results/{job.id}")
        job.info = self.job_view(job.id)

    def submit_failure(self, job: Job, code: int) -> None:
        job.digest = code.to_bytes(32, "big")
        job.salt = keccak(b"fsalt:%d" % job.id)
        c = commitment(job.provider, job.id, job.digest, job.salt)
        self.w.send(job.provider, self.w.market, "submitFailure", job.id, code, c)
        job.info = self.job_view(job.id)

    def honest_job(self, requester: str, provider: str, reward: int, k_pct: int, *, verify_mode: int = 0) -> Job:
        """Posted, claimed, run (one run) and committed honestly."""
        job = self.post(requester, reward, k_pct, verify_mode=verify_mode)
        self.claim(provider, job)
        self.ran(provider)
        self.submit(job, run_honestly(job, provider, 0, 0))
        return job

    def lazy_job(self, requester: str, provider: str, reward: int, k_pct: int) -> Job:
        """Posted and claimed; the provider commits to a made-up digest without running anything."""
        job = self.post(requester, reward, k_pct)
        self.claim(provider, job)
        self.submit(job, keccak(b"made-up:%d" % job.id))
        return job

    def canary_job(self, reward: int, k_pct: int) -> Job:
        """The canary operator posts and claims a realistic job and commits to its canary digest."""
        job = self.post(self.a.canary_requester, reward, k_pct)
        self.claim(self.a.canary, job)
        job.canary_secret = keccak(b"canary-secret:%d" % job.id)
        self.submit(job, canary_digest(job.canary_secret))
        return job

    def ran(self, account: str, times: int = 1) -> None:
        self.runs[account] = self.runs.get(account, 0) + times

    # ------------------------------------------------------------------ the draw

    def anchor(self, job: Job) -> int:
        return int(self.job_view(job.id)["anchorBlock"])

    def force_not_drawn(self, job: Job, label: str) -> None:
        """Sets the anchor randomness so that the job is not drawn (checked with ``isDrawn``)."""
        bps = int(self.job_view(job.id)["auditBps"])
        anchor = self.anchor(job)
        self.w.force_local(anchor, f"{label}:nodraw", lambda r: not drawn_locally(r, job.id, bps), lambda r: not self.is_drawn(job))

    def is_drawn(self, job: Job) -> bool:
        return bool(self.w.read(self.w.market, "isDrawn", job.id))

    def holders(self, job: Job, round_: int, size: int) -> list[str]:
        return [self.drawn_for(job.id, round_, seat) for seat in range(size)]

    def assign(self, holders: Sequence[str], want: Sequence[tuple[str, Behaviour]]) -> list[Behaviour] | None:
        """Each seat's behaviour when the drawn `holders` fill the wanted (pool, behaviour) seats in
        some order (the pools' counts must match exactly; pool "any" takes anyone); else None."""
        pools = self.a.pools()
        free = list(want)
        out: list[Behaviour] = []
        for holder in holders:
            for i, (pool, behaviour) in enumerate(free):
                if pool == "any" or holder in pools[pool]:
                    out.append(behaviour)
                    del free[i]
                    break
            else:
                return None
        return out

    def force_audit_draw(self, job: Job, pool: str, label: str) -> None:
        """Sets the anchor randomness so that the job is drawn and its auditor comes from `pool`."""
        bps = int(self.job_view(job.id)["auditBps"])
        self.w.force_local(
            self.anchor(job),
            f"{label}:audit",
            lambda r: drawn_locally(r, job.id, bps),
            lambda r: self.is_drawn(job) and self.assign(self.holders(job, 0, 1), [(pool, no_show)]) is not None,
        )

    def force_jury(self, job: Job, round_: int, want: Sequence[tuple[str, Behaviour]], label: str) -> None:
        """Sets the current round's anchor randomness so that its seats hold the wanted pools."""
        anchor = int(self.case(job.id)["anchor"])
        size = len(want)
        self.w.force(anchor, f"{label}:r{round_}", lambda r: self.assign(self.holders(job, round_, size), want) is not None)

    # ------------------------------------------------------------------ rounds

    def take(self, job: Job, round_: int, seat: int) -> str:
        holder = self.drawn_for(job.id, round_, seat)
        if round_ == 0:
            self.w.send(holder, self.w.court, "startAudit", job.id)
        else:
            self.w.send(holder, self.w.court, "takeSeat", job.id, seat)
        return holder

    def run_round(
        self,
        job: Job,
        round_: int,
        want: Sequence[tuple[str, Behaviour]],
        *,
        label: str,
        provider_reveals: bool = True,
        force: bool = True,
    ) -> dict[str, Any]:
        """One round: force the seats' pools, every holder takes its seat and commits what its
        behaviour gives (None: a no-show, who takes the seat and never commits), the provider
        reveals, then the seats reveal and the round is tallied. Returns the case after the tally."""
        if force:
            if round_ == 0:
                self.force_audit_draw(job, want[0][0], label)
            else:
                self.force_jury(job, round_, want, label)
        holders = self.holders(job, round_, len(want))
        behaviours = self.assign(holders, want)
        if behaviours is None:
            raise SimError(f"job {job.id} round {round_}: drawn seats {holders} do not fit {want}")
        seats: list[tuple[int, str, bytes | None, bytes]] = []
        for seat, (holder, behaviour) in enumerate(zip(holders, behaviours, strict=True)):
            self.take(job, round_, seat)
            digest = behaviour(job, holder, round_, seat)
            if digest is not None and behaviour is run_honestly:
                self.ran(holder)
            salt = keccak(b"seat-salt:%d:%d:%d" % (job.id, round_, seat))
            if digest is not None:
                c = seat_commitment(holder, job.id, round_, seat, digest, salt)
                self.w.send(holder, self.w.court, "commit", job.id, seat, c)
            seats.append((seat, holder, digest, salt))
        self.open_reveals(job)
        if provider_reveals and not self.case(job.id)["providerRevealed"]:
            self.w.send(job.provider, self.w.court, "revealProvider", job.id, job.digest, job.salt)
        for seat, holder, digest, salt in seats:
            if digest is not None:
                self.w.send(holder, self.w.court, "reveal", job.id, seat, digest, salt)
        return self.tally(job, round_)

    def escalated_to(self, job: Job, round_: int) -> dict[str, Any]:
        """Advances (windows passing) until round `round_` is open; the case."""
        for _ in range(8):
            case = self.case(job.id)
            if int(case["phase"]) == PHASE_ACTIVE and int(case["round"]) == round_:
                return case
            if int(case["phase"]) == PHASE_CONCLUDED:
                raise SimError(f"job {job.id} concluded ({OUTCOME[int(case['outcome'])]}) before round {round_}")
            if self.try_advance(job) is None:
                continue
            self.w.warp_to(max(int(case["windowEnd"]), int(case["revealDeadline"])) + 1)
        raise SimError(f"job {job.id} never reached round {round_}")

    def open_reveals(self, job: Job) -> None:
        """Moves the clock to the reveal phase if it is not open yet (commits are all in)."""
        probe = self.w.fails(job.provider, self.w.court, "revealProvider", job.id, job.digest, job.salt)
        if probe and ("RevealNotOpen" in probe or "CommitClosed" in probe or "WrongPhase" in probe):
            self.w.warp_to(int(self.case(job.id)["commitDeadline"]) + 1)
            self.try_advance(job)

    def try_advance(self, job: Job) -> str | None:
        """``advance`` if something is due; the decoded error otherwise."""
        error = self.w.fails(self.a.deployer, self.w.court, "advance", job.id)
        if error is None:
            self.w.send(self.a.deployer, self.w.court, "advance", job.id)
        return error

    def tally(self, job: Job, round_: int) -> dict[str, Any]:
        """Moves the clock past the round's reveal deadline and advances until it is tallied."""
        for _ in range(6):
            case = self.case(job.id)
            if int(case["phase"]) != PHASE_ACTIVE or int(case["round"]) != round_:
                return case
            if self.try_advance(job) is None:
                continue
            self.w.warp_to(int(case["revealDeadline"]) + 1)
        raise SimError(f"job {job.id}: round {round_} did not tally")

    def conclude(self, job: Job) -> str:
        """Lets every window pass (no appeal) and advances until the job is settled; its outcome."""
        for _ in range(12):
            if self.status(job.id) in ("Resolved", "Finalized"):
                return self.outcome(job.id)
            case = self.case(job.id)
            if int(case["phase"]) == PHASE_ACTIVE:
                raise SimError(f"job {job.id}: round {case['round']} is open; run it before concluding")
            if self.try_advance(job) is None:
                continue
            self.w.warp_to(max(int(case["windowEnd"]), int(case["revealDeadline"])) + 1)
        raise SimError(f"job {job.id} did not conclude: {self.case(job.id)}")

    def appeal(self, job: Job, appellant: str) -> None:
        self.w.send(appellant, self.w.court, "appeal", job.id)

    def unaudited(self, job: Job, label: str) -> str:
        """A drawn job nobody audits: every redraw passes without a taker until it settles."""
        self.force_audit_draw(job, "any", label)
        for _ in range(20):
            if self.status(job.id) in ("Resolved", "Finalized"):
                return self.outcome(job.id)
            error = self.w.fails(self.a.deployer, self.w.court, "redraw", job.id)
            if error is None:
                self.w.send(self.a.deployer, self.w.court, "redraw", job.id)
                continue
            case = self.case(job.id)
            deadline = int(case["seatDeadline"]) if int(case["phase"]) else int(self.job_view(job.id)["deadline"])
            self.w.warp_to(max(deadline, self.w.now()) + 1)
        raise SimError(f"job {job.id}: redraws did not end in Unaudited")

    def finalize_after_window(self, job: Job) -> str:
        self.w.warp_to(int(self.job_view(job.id)["deadline"]) + 1)
        self.w.send(self.a.deployer, self.w.market, "finalize", job.id)
        return self.outcome(job.id)


__all__ = [
    "JURY_SIZES",
    "Actors",
    "Behaviour",
    "Job",
    "Protocol",
    "TxFailed",
    "copy_provider",
    "no_show",
    "run_honestly",
]
