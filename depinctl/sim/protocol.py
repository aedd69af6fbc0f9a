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

from eth_abi import encode as abi_encode
from eth_utils import keccak

from depin.commitment import NOT_DELIVERED, canary_authorization
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
STATUS = ("None", "Open", "Claimed", "Submitted", "Disputed", "Finalized", "Cancelled", "Expired", "TimedOut", "Resolved", "Pruned")
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
    canary: str  # the canary operator's provider account (no role: it claims and commits)
    canary_requester: str  # the canary operator's requester account (no role: it posts and exposes)
    wash: str  # the wash trader's second account (a registered provider)
    lazy: str  # a verifier that copies digests instead of running jobs
    honest: list[str]  # honest verifiers
    coalition: list[str]  # verifiers colluding with the attacker

    def pools(self) -> dict[str, list[str]]:
        return {
            "honest": self.honest,
            "coalition": self.coalition,
            "lazy": [self.lazy],
            "verifiers": [*self.honest, *self.coalition],  # anyone but the lazy verifier
        }

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


def report_not_delivered(job: Job, holder: str, round_: int, seat: int) -> bytes:
    """An honest verifier whose re-run yields a result but who finds no archive at the provider's
    URI (executor/verifier.py): it commits NOT_DELIVERED instead of its digest."""
    return NOT_DELIVERED


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
        self._stakes: dict[tuple[int, int], list[tuple[str, int]]] = {}
        self._predict = True
        self.posted: list[int] = []  # jobs posted in the current branch
        self.no_shows: list[str] = []  # seat holders that did not commit in the current branch

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
                self.posted.append(job.id)
                return job
        raise SimError("postJob emitted no JobPosted")

    def open_jobs(self) -> list[int]:
        """The jobs posted in the current branch that are Open (their escrow is still the requester's)."""
        return [j for j in self.posted if self.status(j) == "Open"]

    def claim(self, provider: str, job: Job) -> None:
        self.w.send(provider, self.w.market, "claimJob", job.id)
        job.provider = provider

    def submit(self, job: Job, digest: bytes, *, uri: str = "") -> None:
        """The provider commits to `digest` with a fresh salt (the URI is opaque: no digest in it)."""
        job.digest = digest
        job.salt = keccak(b"salt:%d:" % job.id + digest)
        c = commitment(job.provider, job.id, digest, job.salt)
        receipt = self.w.send(job.provider, self.w.market, "submitResult", job.id, c, uri or f"sim://results/{job.id}")
        job.info = self.job_view(job.id) | {"submitTx": receipt["transactionHash"]}

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
        """The canary operator posts a realistic job from one account and claims it from another
        (neither holds CANARY_ROLE: nothing on chain tells it from any job) and commits to its
        canary digest."""
        job = self.post(self.a.canary_requester, reward, k_pct)
        self.claim(self.a.canary, job)
        job.canary_secret = keccak(b"canary-secret:%d" % job.id)
        self.submit(job, canary_digest(job.canary_secret))
        return job

    def expose_canary(self, job: Job) -> dict[str, Any]:
        """The canary job's requester exposes it with the canary key's authorization: the deployer
        holds CANARY_ROLE in the sim and anvil signs for it (``eth_sign``, EIP-191)."""
        assert job.canary_secret is not None
        message = canary_authorization(self.w.rpc.chain_id(), self.w.court.address, job.id)
        signature = self.w.rpc.sign_message(self.w.deployer, message)
        return self.w.send(self.a.canary_requester, self.w.court, "exposeCanary", job.id, job.canary_secret, job.salt, signature)

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

    # The court's draw, predicted off chain to skip hopeless candidate values (each candidate the
    # prediction accepts is still set on chain and checked with `drawnFor`, the court's own answer):
    # target = keccak256(abi.encode(r, jobId, round, seat, redraw[, j])) % classStakeAt(snapshot),
    # walking classMembers with their stakes at the snapshot; the job's provider and requester are
    # skipped with j = 1, 2, ... If a prediction ever disagrees with the court, prediction is off.

    def _members(self, platform_class: int, snapshot: int) -> list[tuple[str, int]]:
        key = (platform_class, snapshot)
        if key not in self._stakes:
            members = self.w.read(self.w.court, "classMembers", platform_class)
            self._stakes[key] = [(str(m), int(self.w.read(self.w.court, "stakeAt", m, snapshot))) for m in members]
        return self._stakes[key]

    def _snapshot_block(self, job: Job) -> int:
        case = self.case(job.id)
        if int(case["phase"]) != PHASE_NONE:
            return int(case["snapshotBlock"])
        d = int(self.market_params()["drawDelay"])
        return self.anchor(job) - d - int(self.court_params()["activationDelayBlocks"])

    def predict(self, job: Job, r: bytes, round_: int, size: int, redraw: int) -> list[str] | None:
        """The holders the court should draw for seats 0..size-1 with randomness `r` (None: unknown)."""
        if not self._predict:
            return None
        members = self._members(0, self._snapshot_block(job))
        total = sum(stake for _, stake in members)
        if total == 0:
            return None
        skip = {job.provider, job.requester}
        out = []
        for seat in range(size):
            for j in range(16):
                fields: list[Any] = [r, job.id, round_, seat, redraw] + ([j] if j else [])
                types = ["bytes32", "uint256", "uint8", "uint8", "uint8"] + (["uint256"] if j else [])
                target = int.from_bytes(keccak(abi_encode(types, fields)), "big") % total
                acc = 0
                holder = ""
                for member, stake in members:
                    acc += stake
                    if target < acc:
                        holder = member
                        break
                if holder not in skip:
                    out.append(holder)
                    break
            else:
                return None
        return out

    def _force_seats(
        self,
        job: Job,
        anchor: int,
        round_: int,
        size: int,
        label: str,
        fits: Callable[[list[str]], bool],
        drawn: Callable[[bytes], bool] = lambda r: True,
    ) -> None:
        self._stakes.clear()  # stakes at a block differ between branches (the chain is rewound)
        redraw = int(self.case(job.id)["redraws"]) if int(self.case(job.id)["phase"]) != PHASE_NONE else 0

        def prefilter(r: bytes) -> bool:
            if not drawn(r):
                return False
            predicted = self.predict(job, r, round_, size, redraw)
            return predicted is None or fits(predicted)

        def accept(r: bytes) -> bool:
            if not drawn(r):
                return False
            actual = self.holders(job, round_, size)
            predicted = self.predict(job, r, round_, size, redraw)
            if predicted is not None and predicted != actual:
                self._predict = False  # the court draws differently: fall back to asking it
            return fits(actual)

        self.w.force_local(anchor, f"{label}:r{round_}:{redraw}", prefilter, accept)

    def force_audit_draw(self, job: Job, pool: str, label: str) -> None:
        """Sets the anchor randomness so that the job is drawn and its auditor comes from `pool`."""
        bps = int(self.job_view(job.id)["auditBps"])
        self._force_seats(
            job,
            self.anchor(job),
            0,
            1,
            f"{label}:audit",
            lambda holders: self.assign(holders, [(pool, no_show)]) is not None,
            drawn=lambda r: drawn_locally(r, job.id, bps),
        )
        if not self.is_drawn(job):
            raise SimError(f"job {job.id}: forced a draw, but isDrawn is false")

    def force_jury(self, job: Job, round_: int, want: Sequence[tuple[str, Behaviour]], label: str) -> None:
        """Sets the current round's anchor randomness so that its seats hold the wanted pools."""
        anchor = int(self.case(job.id)["anchor"])
        self._force_seats(job, anchor, round_, len(want), label, lambda holders: self.assign(holders, want) is not None)

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
        tally: bool = True,
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
            if digest is None:
                self.no_shows.append(holder)
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
        return self.tally(job, round_) if tally else self.case(job.id)

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
        """Moves the clock past the commit deadline unless every seat committed (reveals open early
        only when all K seats are taken and committed)."""
        case = self.case(job.id)
        size = JURY_SIZES[int(case["round"])]
        if not (int(case["taken"]) == size and int(case["committed"]) == size):
            self.w.warp_to(int(case["commitDeadline"]) + 1)

    def try_advance(self, job: Job) -> str | None:
        """``advance`` if something is due; the decoded error otherwise."""
        error = self.w.fails(self.a.deployer, self.w.court, "advance", job.id)
        if error is None:
            self.w.send(self.a.deployer, self.w.court, "advance", job.id)
        return error

    def tally(self, job: Job, round_: int) -> dict[str, Any]:
        """Moves the clock past the round's reveal deadline and advances until it is tallied, or
        until its no-shows were redrawn (the case stays in the round with a fresh seat deadline)."""
        redraws = int(self.case(job.id)["redraws"])
        for _ in range(6):
            case = self.case(job.id)
            if int(case["phase"]) != PHASE_ACTIVE or int(case["round"]) != round_ or int(case["redraws"]) != redraws:
                return case
            if self.try_advance(job) is None:
                continue
            self.w.warp_to(int(case["revealDeadline"]) + 1)
        raise SimError(f"job {job.id}: round {round_} did not tally")

    def seat(self, job_id: int, round_: int, seat: int) -> dict[str, Any]:
        return self.w.view(self.w.court, "getSeat", job_id, round_, seat)

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
            phase = int(case["phase"])
            if phase == PHASE_TALLIED:  # Unaudited, waiting for the job's challenge deadline
                deadline = int(case["windowEnd"])
            else:
                deadline = int(case["seatDeadline"]) if phase else int(self.job_view(job.id)["deadline"])
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
