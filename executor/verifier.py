"""The verifier role (issue 12; VERIFICATION.md §1 steps 3-4): a staked court member that audits
the jobs it is drawn for, and sits on juries the same way.

``depin executor start --role verifier`` (or ``--role provider,verifier``: one executor, both
roles). Plain functions over a :class:`~executor.runtime.Runtime`; :mod:`executor.tasks` wraps them.

- **Stake** (:func:`ensure_stake`, every pass, a single view call when nothing is due): joins the
  court in ``[verifier] platform_class`` with ``[verifier] court_stake`` tokens, or tops the stake up
  to it (after a slash too). ``court_stake = 0`` never stakes. One the chain refuses (the wallet
  short of tokens; a full class whose smallest unlocked member stakes as much: ``ClassFull``) is
  logged and tried again next pass, and the pass goes on to follow the seats in hand. The
  operator's ``depin verifier leave`` is not undone: stake that is leaving is not topped up, and a
  court left with all of the stake is not joined again until the executor restarts
  (:func:`stake_state`).
- **Watch the draw** (:func:`scan`, the beat's ``depin.verify`` every ``VERIFY_INTERVAL`` seconds):
  every job the index shows Submitted or Disputed is looked at: before its case opens, whether the
  market drew it (``isDrawn``; an undrawn job is remembered and not asked again while it stays
  Submitted: a challenge makes it Disputed, with a jury to draw) and whether the
  audit seat (round 0, seat 0) is drawn for us (``drawnFor``); in an open round, every empty seat
  drawn for us. A pass takes seats only once every listed job was looked at, so the seats it
  adopts (below) count against ``max_audits`` first. Each job's case is in the job's own court
  (``Client.court_of``): after governance moved the market to another court, the jobs posted
  before stay with the old one, and so does everything this role does for them; their Disputed
  cases, which the index (following the new court) has no deadline for, are listed by the court
  the market named (``disputed_in_other_courts``).
- **Take only what we can run** (:func:`take`): the spec is loaded and checked against the policy
  with ρ × its runtime (the court's ``rhoPct``): cpus, memory, output, ρ × runtime <=
  ``[policy] max_runtime``, the image allowed (present locally, or in the allowlist); our court
  class must be the case's; a slot must be free (``[verifier] max_audits`` seats in hand); the
  run must fit the seat's commit window (:func:`time_to_run`: now + ρ × the spec's runtime + the
  court's own allowance for setting up and committing, ``setupTime + inclusionTime``, by the
  commit deadline, which the court derives from the job's ON-CHAIN ``maxRuntime``: before the case opens
  it is computed the way ``startAudit`` will set it, :func:`seat_deadlines`); the image must be
  here and every input fetchable with its sha256 now (:func:`runnable_here`: a requester who
  removed or changed an input after the provider ran cannot make us lose a locked bond; the checked
  bytes are kept in the job's input cache, ``<work root>/input-cache/<job>``, and the re-run takes
  them from there, so switching an input after we took the seat cannot either; the cache goes when
  the job has no seat in our hands, and any left by a crash after an hour). The inputs are fetched
  in a background thread of the chain worker (:func:`input_check`): a pass waits for such checks
  at most ``PASS_CHECK_WAIT`` seconds in all and moves on, and a later pass takes the seat (or
  declines it) once the check has ended, so a requester's slow input server cannot hold up the
  commits and reveals queued behind the pass.
  Otherwise we decline: unpaid, and the court redraws the seat. Then ``startAudit`` (round 0) or
  ``takeSeat`` (juries) locks the bond, and the re-run is queued (``depin.audit_run``). A seat the
  chain shows held by us (not yet committed, its commit deadline not passed) is adopted, recorded
  seated and run (:func:`adopt`), whatever our record says unless it follows the seat already, is
  ``done``, or was declined for good (``final``: our own re-run or commit of it failed): a record
  lost with Redis's unsaved writes, and a seat declined because the chain did not show it ours (a
  take still in the node's pool at a crash, or whose receipt wait timed out, or that a reorg put
  back, looks like a take never sent; a re-take's gas estimate on the pending state reverts).
  A seat with a journal entry of its own is committed from it (no second run, the same salt).
  Once the round is tallied, a seat revealed by us without a record is adopted ``revealed``
  (:func:`adopt_revealed`): its canary reserve is released and its case advanced.
- **Re-run** (:func:`run_audit`, the ``compute`` queue): the job runs through the provider's own
  path (:func:`executor.execution.load_spec` + :func:`executor.execute.execute`) with the spec's
  ``max_runtime`` raised to ρ × its runtime, its inputs ending by what the commit window leaves; each
  seat under its own lease, so that our seats of one round run side by side (their delivery
  check is one, below). A seat with no time
  left for a run of its own (:func:`time_to_run`) when another of our seats of the round has a
  journaled digest commits that digest with a fresh salt (:func:`reuse`). A result gives its match digest; a job-caused failure
  (time limit, memory, output too large or invalid, bad spec) gives
  :func:`depin.commitment.failure_digest` of its code, as the provider commits to failures. Anything
  else (the image or an input unavailable here, this machine failing) is **declined**: nothing is
  committed, so that we never reveal a digest we did not compute.
- **Check the delivery** (:func:`check_provider_delivery`, VERIFICATION.md §4): when our re-run
  yields a result, the provider must have published its archive at the URI it put on chain. We
  fetch it (:func:`depin.delivery_check.check_delivered`: a plaintext archive with its manifest's
  salt must give the provider's commitment; a sealed one must hash to its content address) and,
  when it is missing, unreachable for ``[verifier] delivery_wait`` seconds (never past the commit
  deadline) or does not match, or when its URI or a redirect leads to this machine's own network
  (loopback, the LAN, a metadata service: never fetched, unless listed in ``[verifier]
  result_allow_networks``; :mod:`depin.addresses`), commit :data:`depin.commitment.NOT_DELIVERED`
  instead of our digest: jurors who agree on it outvote the provider (ProviderWrong). A requester
  who got no archive challenges; a drawn audit checks the same way. After a failure report no
  archive is due. The check, its child's kill slack included, ends before the commit is due
  (:func:`delivery_budget`); with too little time left it is not run (``not checked``: our
  digest is committed). One check per (job, round) (:func:`round_delivery_check`): all our seats
  of a round commit by the same verdict, so one verifier never votes both ways in a round; the
  verdict is journaled (``<state_dir>/journal/<instance>/delivery-<job>-<round>.json``, fsync'd,
  the first one kept) before any seat journals a digest derived from it, so a wiped Redis cannot
  make two seats check apart.
- **Commit** (:func:`commit_seat`): the salt, the digest and the seat commitment
  (:func:`depin.commitment.seat_commitment`) are written to the audit journal
  (``<state_dir>/journal/<instance>/seat-<job>-<round>-<seat>.json``, fsync'd) by the re-run,
  BEFORE ``commit`` is sent; the commit task reads the seat on chain first and sends nothing when it
  is committed already.
- **Reveal and advance** (:func:`follow_seats`, every pass): a committed seat reveals from the
  journal once the reveal phase is open (``RevealNotOpen`` at the gas estimate sends nothing), and
  the case is advanced when that is due (the permissionless ``advance``). A record behind the chain
  (Redis restored from an older snapshot: ``running`` while the seat is committed on chain and
  journaled) is set committed and revealed in the same pass (:func:`committed_behind`). An agreeing audit of ours
  waiting for its job's challenge deadline gets its canary reserve back once the canary window is
  over (:func:`release_reserve`, one ``releaseReserve`` per seat). The seat's record ends
  ``revealed`` → ``done`` with the case's outcome (and ``slashed`` when a canary caught it).

Records (``{e}:seat:{job}:{round}:{seat}``, a hash): ``state`` (taking → seated → running → computed
→ committed → revealed → done; ends ``declined`` with a ``reason``), ``digest``, ``kind`` (result,
failure or not-delivered), ``delivery`` (what the delivery check found), ``run_digest`` and
``waiting`` (a re-run's result waiting for the round's delivery verdict: its task ends and is
queued again ``DELIVERY_POLL`` seconds later, holding no compute process), ``commitment``,
``taken_tx``, ``commit_tx``, ``reveal_tx``, ``reserve`` and ``reserve_tx`` (the audit's canary
reserve released early), ``outcome``, ``final`` (a decline the chain's word does not undo),
``updated``. ``{e}:seats`` holds the seats in hand. ``depin executor status`` reads them
(:func:`summary`). ``{e}:delivery:{job}:{round}`` (a string, a week) mirrors the round's delivery
verdict (the journal's is the one used), and ``{e}:lease:{job}:{round}:delivery`` is the lease of
its one check.

Crash safety: every step reads the chain before it acts (the seat's state, the case's phase); the
journal entry of a seat is written once and reused (same salt) by any re-run; kill -9 between the
commit and the reveal loses no salt (it is on disk before the commit was sent) and sends nothing
twice (the seat's on-chain state says what was done).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

from depin.addresses import parse_networks
from depin.commitment import NOT_DELIVERED, failure_digest, new_salt, seat_commitment
from depin.config import env_number
from depin.delivery_check import UNAVAILABLE, DeliveryVerdict
from depin.deployment import to_wei
from depin.errors import SpecError
from depin.market import FailureCode, JobStatus
from depin.spec import JobSpec, parse_spec
from depin.transactions import TxReverted, TxTimeout
from executor import anchors, queue
from executor.containers import LABEL_EXECUTOR, LABEL_LEASE, MIB, ImageUnavailable, check_image, container_name
from executor.execute import Outcome, PolicyRefused, execute
from executor.execution import load_spec, same
from executor.inputs import InputError, fetch_inputs
from executor.lease import IDLE_MARK, Lease, idle_confirmed
from executor.policy import Decision, Policy
from executor.results import create_durably, create_or_load
from executor.runtime import Runtime

log = logging.getLogger("executor.verifier")

ROUND_SEATS = (1, 3, 7, 15)  # seats of round 0 (the audit) and of the juries
PHASE_NONE, PHASE_ACTIVE, PHASE_TALLIED, PHASE_ARBITER, PHASE_CONCLUDED = range(5)
SEAT_EMPTY, SEAT_TAKEN, SEAT_COMMITTED, SEAT_REVEALED, SEAT_SETTLED = range(5)
OUTCOMES = ("None", "ProviderRight", "ProviderWrong", "Split", "Unaudited", "Canary")
SCAN_LIMIT = 200  # jobs looked at per status and pass
# Failures an honest re-run reproduces (the job's doing): committed like the provider commits them.
JOB_FAILURES = (FailureCode.OUT_OF_MEMORY, FailureCode.TIME_LIMIT, FailureCode.OUTPUT_TOO_LARGE, FailureCode.BAD_SPEC, FailureCode.OUTPUT_INVALID)
RECOVER_AFTER = env_number("DEPIN_RECOVER_AFTER", 30, above=True)  # seconds a seat's task may show no progress
NO_SLOT = "no free slot"
IN_HAND = ("taking", "seated", "running", "computed", "committed", "revealed")
INPUT_CACHE_MAX_AGE = 3600  # seconds: a job's input cache with no seat in our hands is removed after this
DELIVERY_MARGIN = 5  # seconds kept between the delivery check's last attempt and the commit deadline
DELIVERY_TIMEOUT = 30.0  # connect/read timeout of one download of the provider's archive
MIN_DELIVERY_CHECK = 2.0  # seconds a delivery check needs at least (besides ISOLATION_SLACK); with less it is not run
DELIVERY_POLL = 1.0  # seconds after which a seat waiting for the round's delivery verdict looks again (a new task)
ROUND_DELIVERY_TTL = 7 * 86_400  # seconds a round's delivery verdict is kept
ARCHIVE_OVERHEAD = 4 * 1_048_576  # the archive's headers (and a sealed archive's tags) on top of output_mb
MIN_DELIVERY_RATE = 1_048_576  # bytes/s a provider's server must average: the whole check is bounded
PREFETCH_TIMEOUT = 60.0  # seconds the inputs' check before a seat is taken may take (in the background)
PASS_CHECK_WAIT = 2.0  # seconds one verify pass waits, in all, for input checks before it moves on
INPUT_CHECK_THREADS = 8  # input checks running side by side in the verifier's chain worker (they wait on servers)
INPUT_CHECK_FRESH = 30.0  # seconds an ended input check's answer is used; a later one checks again


# ---------------------------------------------------------------------------------------- journal


@dataclass(frozen=True)
class SeatEntry:
    """One seat's journaled contribution (hex fields ``0x``-prefixed)."""

    job_id: int
    round: int
    seat: int
    verifier: str
    digest: str  # what we computed (a match digest, failure_digest(code), or NOT_DELIVERED)
    salt: str
    commitment: str  # seat_commitment(verifier, job, round, seat, digest, salt)
    kind: str = "result"  # result | failure | not-delivered

    def reveal_args(self) -> tuple[int, int, bytes, bytes]:
        return self.job_id, self.round, bytes.fromhex(self.digest[2:]), bytes.fromhex(self.salt[2:])


class AuditJournal:
    """One durable file per seat below `root`, written before the seat's commitment is sent."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, job_id: int, round_: int, seat: int) -> Path:
        return self.root / f"seat-{int(job_id)}-{int(round_)}-{int(seat)}.json"

    def load(self, job_id: int, round_: int, seat: int) -> SeatEntry | None:
        try:
            return SeatEntry(**json.loads(self.path(job_id, round_, seat).read_bytes()))
        except FileNotFoundError:
            return None

    def record(self, verifier: str, job_id: int, round_: int, seat: int, digest: bytes, kind: str) -> SeatEntry:
        """The seat's entry: the existing one (a re-run after a crash keeps its first salt), else a
        fresh salt and commitment, written durably and exclusively (:func:`create_or_load`): of two
        re-runs of one seat that each found no entry (one paused past the seat's lease while the
        other took it over and committed) only the first writes, and the other gets that entry back.
        Writing over it replaced the salt that the commitment on chain was made with, and the
        seat's reveal could then never match: a no-show, its bond lost (found by review, stop 56)."""
        existing = self.load(job_id, round_, seat)
        if existing is not None:
            return existing
        salt = new_salt()
        entry = SeatEntry(
            job_id=int(job_id), round=int(round_), seat=int(seat), verifier=verifier, digest="0x" + digest.hex(), salt="0x" + salt.hex(),
            commitment="0x" + seat_commitment(verifier, int(job_id), int(round_), int(seat), digest, salt).hex(), kind=kind,
        )
        data = json.dumps(asdict(entry), sort_keys=True).encode()
        return create_or_load(self.path(job_id, round_, seat), data, entry, lambda: self.load(job_id, round_, seat))


    def verdict_path(self, job_id: int, round_: int) -> Path:
        return self.root / f"delivery-{int(job_id)}-{int(round_)}.json"

    def round_verdict(self, job_id: int, round_: int) -> str:
        """The delivery verdict journaled for the round ("" when none)."""
        try:
            return str(json.loads(self.verdict_path(job_id, round_).read_bytes())["verdict"])
        except FileNotFoundError:
            return ""

    def record_round_verdict(self, job_id: int, round_: int, verdict: str) -> str:
        """Journals `verdict` as the round's, durably, unless one is journaled already; the round's
        verdict (the first journaled: it is never replaced)."""
        data = json.dumps({"job_id": int(job_id), "round": int(round_), "verdict": verdict}, sort_keys=True).encode()
        if create_durably(self.verdict_path(job_id, round_), data, mode=0o600):
            return verdict
        return self.round_verdict(job_id, round_)


def journal(rt: Runtime) -> AuditJournal:
    return AuditJournal(rt.state_dir / "journal" / rt.instance)


# ---------------------------------------------------------------------------------------- records


def seat_id(job_id: int, round_: int, seat: int) -> str:
    return f"{int(job_id)}:{int(round_)}:{int(seat)}"


def seat_record(rt: Runtime, job_id: int, round_: int, seat: int) -> dict[str, str]:
    return rt.state.hgetall(rt.xkeys.seat(job_id, round_, seat))  # type: ignore[return-value]


def set_seat(rt: Runtime, job_id: int, round_: int, seat: int, state: str | None = None, **fields: Any) -> None:
    """Updates a seat's record (and the set of seats in hand) in one transaction."""
    values = {k: ("" if v is None else str(v)) for k, v in fields.items()}
    values.update(job=str(job_id), round=str(round_), seat=str(seat), updated=f"{time.time():.3f}")
    pipe = rt.state.pipeline(transaction=True)
    if state is not None:
        values["state"] = state
        if state in IN_HAND:
            pipe.zadd(rt.xkeys.seats, {seat_id(job_id, round_, seat): time.time()}, nx=True)
        else:
            pipe.zrem(rt.xkeys.seats, seat_id(job_id, round_, seat))
    pipe.hset(rt.xkeys.seat(job_id, round_, seat), mapping=values)
    pipe.execute()


def seats_in_hand(rt: Runtime) -> list[tuple[int, int, int]]:
    members: list[str] = rt.state.zrange(rt.xkeys.seats, 0, -1)  # type: ignore[assignment]
    return [tuple(int(x) for x in m.split(":")) for m in members]  # type: ignore[misc]


def running_count(rt: Runtime, besides: tuple[int, int, int] | None = None) -> int:
    """Seats whose re-run is still to come or under way (what ``max_audits`` bounds), `besides` (a
    seat ``(job, round, seat)``) left out: a seat whose take is looked at again (its record
    ``taking``: a receipt wait that timed out) is not a slot of its own to wait for. Counting it
    declined it "no free slot" at ``max_audits`` and dropped its checked inputs while the take could
    still be mined, and the seat then adopted ran without them (found by review, stop 56)."""
    return sum(1 for j, r, s in seats_in_hand(rt)
               if (j, r, s) != besides and seat_record(rt, j, r, s).get("state") in ("taking", "seated", "running"))


def audit_container(rt: Runtime, job_id: int, round_: int, seat: int) -> str:
    """The deterministic container name of our re-run of one seat."""
    return container_name(rt.chain_id, job_id, f"{rt.instance}-r{round_}s{seat}")


def live_containers(rt: Runtime) -> set[str]:
    """Container names the reaper must leave alone: our seats' re-runs."""
    return {audit_container(rt, j, r, s) for j, r, s in seats_in_hand(rt)}


# ---------------------------------------------------------------------------------------- stake


def ensure_stake(rt: Runtime) -> str | None:
    """Joins the court, or tops the stake up, to ``[verifier] court_stake``; the transaction hash
    when one was sent. It never undoes a leave of this key's (``depin verifier leave`` while the
    executor runs; see :func:`stake_state`): a stake that is leaving is not topped up, and a court
    this process saw the key leave with all of its stake is not joined again until the executor
    restarts, which applies ``court_stake`` again."""
    want = to_wei(rt.config.verifier.court_stake)
    if want <= 0:
        return None
    court = rt.client.contracts.verification_court
    joined, _cls, free, locked, leaving, release_at = rt.client.read(court.get_verifier(rt.address))
    previous = rt.court_memberships.get(court.address)
    seen = rt.court_memberships[court.address] = stake_state(previous, bool(joined), int(leaving))
    state = seen.state
    if state in ("leaving", "left"):
        if previous is None or state != previous.state:
            log.warning(
                "court stake leaving: not topped up" if state == "leaving" else
                "left the court: not joining it again until the executor restarts (court_stake = 0 to stay out)",
                extra={"court": court.address, "leaving": str(leaving), "release_at": int(release_at)},
            )
        return None
    have = int(free) + int(locked)
    if joined and have >= want:
        return None
    need = want - have if joined else want
    if rt.client.allowance(spender="VerificationCourt") < need:
        rt.client.approve("VerificationCourt", need)
    try:
        if joined:
            receipt = rt.client.send(court.add_stake(need))
        else:
            receipt = rt.client.send(court.join(need, rt.config.verifier.platform_class))
    except TxReverted as exc:
        # A wallet short of tokens after a slash, or a full class whose smallest member stakes as
        # much (ClassFull): the pass goes on, so that the seats in hand are still followed (their
        # bonds are lost to a no-show otherwise); the stake is tried again next pass.
        log.warning("court stake not added", extra={"amount": str(need), "joined": bool(joined), "error": exc.error_name,
                                                    "reason": exc.reason})
        return None
    log.info("court stake added", extra={"amount": str(need), "joined": bool(joined), "tx": receipt.tx_hash})
    return receipt.tx_hash


StakeState = Literal["outside", "member", "leaving", "displaced", "left"]


class Membership(NamedTuple):
    """What this process made of its key's court membership at a pass (:func:`stake_state`)."""

    state: StakeState
    displaced: int = 0  # of the stake leaving, what a displacement moved out (not the operator's leave)


def stake_state(previous: Membership | None, joined: bool, leaving: int) -> Membership:
    """What this process makes of its key's court membership, from the court's ``getVerifier`` and
    what it made of it at the previous pass (None: not looked at since the executor started).

    - ``member``: joined, nothing of the operator's leaving: joined or topped up to ``court_stake``.
    - ``leaving``: joined, with stake leaving that no displacement moved. Only the key's own
      ``requestLeave`` moves a member's stake out while it stays a member, so topping up would undo
      the operator's ``depin verifier leave``: not done. (After a restart the first pass cannot tell
      a displaced stake from a leave: it takes it for a leave.)
    - ``displaced``: not a member, stake leaving: a larger joiner took the place
      (``VerifierDisplaced``); joining again is tried, as a first join is, and the stake the
      displacement moved out does not count as a leave once joined again.
    - ``left``: not a member, nothing leaving, after this process saw it a member: the key withdrew
      all of its stake (``withdrawLeft``), so the operator left the court; this process does not join
      it again. A restarted executor starts from None and joins: ``court_stake`` is what the
      operator's configuration asks for (0 stays out).
    - ``outside``: never a member, as far as this process saw: joined.
    """
    if joined:
        displaced = min(previous.displaced, leaving) if previous else 0
        return Membership("leaving" if leaving > displaced else "member", displaced)
    if leaving:
        return Membership("displaced", leaving)
    return Membership("left" if previous and previous.state != "outside" else "outside")


# ---------------------------------------------------------------------------------------- draw


def scan(rt: Runtime) -> int:
    """One pass over the jobs that may have a seat for us (see the module doc); the number of seats
    taken."""
    ensure_stake(rt)
    sweep_input_caches(rt)
    _checks.sweep()
    _pass["check_until"] = time.monotonic() + PASS_CHECK_WAIT
    far = rt.chain_now() + 10**9
    takes: list[tuple[int, Callable[[], int]]] = []
    for status in ("Submitted", "Disputed"):
        listed = rt.reader.due_jobs(status, far, limit=SCAN_LIMIT)
        if status == "Disputed":  # and the cases of jobs posted before a court change, in their own court
            listed += [j for j in rt.reader.disputed_in_other_courts(rt.client.contracts.verification_court.address, limit=SCAN_LIMIT)
                       if j not in listed]
        # an undrawn job that is challenged becomes Disputed: its jury is drawn then
        known = cast(list[int], rt.state.smismember(rt.xkeys.undrawn, [str(j) for j in listed])) if status == "Submitted" and listed else []
        for n, job_id in enumerate(listed):
            if known and known[n]:
                continue
            try:
                consider(rt, job_id, takes=takes)
            except TxReverted as exc:
                log.info("seat not taken", extra={"job": job_id, "error": exc.error_name})
    # The takes come after every listed job was looked at: the seats the chain shows ours that a
    # wiped Redis lost are adopted first and count against ``max_audits`` (a take of a job listed
    # before them went past the cap: review, stop 42).
    taken = 0
    for job_id, take_seat in takes:
        try:
            taken += take_seat()
        except TxReverted as exc:
            log.info("seat not taken", extra={"job": job_id, "error": exc.error_name})
    return taken


UNDRAWN_PRUNE_CHUNK = 1000  # {e}:undrawn members looked at per prune pass


def prune_undrawn(rt: Runtime) -> int:
    """Forgets the undrawn jobs (``{e}:undrawn``) the index shows no longer Submitted (finalized, or
    challenged: a Disputed job is considered for its jury whatever the set says), at most
    :data:`UNDRAWN_PRUNE_CHUNK` members per pass from a random point of the set: without this the set
    grows with every job the verifier ever looked at. A job the index does not show (an index
    behind) is kept. Returns the number forgotten."""
    members = [str(m) for m in cast(list[Any], rt.state.srandmember(rt.xkeys.undrawn, UNDRAWN_PRUNE_CHUNK))]
    ids = [m for m in members if m.isdigit()]
    gone = [m for m in members if not m.isdigit()]  # nothing this module writes
    statuses = rt.reader.jobs_fields(ids, ["status"]) if ids else []
    gone += [m for m, fields in zip(ids, statuses, strict=True) if fields.get("status") not in (None, "Submitted")]
    if gone:
        rt.state.srem(rt.xkeys.undrawn, *gone)
    return len(gone)


def consider(rt: Runtime, job_id: int, *, takes: list[tuple[int, Callable[[], int]]] | None = None) -> int:
    """Takes every seat of the job's current round that is drawn for us and empty (0, 1 or more),
    and adopts those the chain shows ours (:func:`adopt`). With `takes`, the takes are appended to
    it instead (:func:`scan` runs them once every job is looked at) and 0 is returned."""
    client, court = rt.client, rt.client.court_of(job_id)  # the job's court, an earlier one's after a court change
    case = client.court_case(job_id)
    phase = int(case["phase"])
    if phase == PHASE_NONE:
        job = rt.job(job_id)
        if job.status != JobStatus.SUBMITTED or same(job.provider, rt.address):
            return 0
        drawn = client.is_drawn(job_id)
        if drawn is None:  # the anchor's randomness is not readable yet: next pass
            # HeaderRandomness: its provider proves the anchor at once; one that did not (a provider
            # hoping the anchor expires unread) is proved for it, a few blocks later
            anchors.prove_if_due(rt, job.anchor_block, lambda: [job_id], after=anchors.FALLBACK_AFTER)
            return 0
        if not drawn:
            rt.state.sadd(rt.xkeys.undrawn, str(job_id))
            return 0
        # HeaderRandomness: the audit seat is drawn from the job's anchor too. Its provider proved
        # it to learn the draw, unless p_job is 100 % (drawn whatever the randomness): then nobody
        # can know the seat's holder, or take it, before somebody proves it (the round was lost to
        # a redraw, found on the live stack)
        anchors.prove_if_due(rt, job.anchor_block, lambda: [job_id])
        if not same(client.read(court.drawn_for(job_id, 0, 0)), rt.address) or not open_to_us(seat_record(rt, job_id, 0, 0)):
            return 0
        return _take_or_defer(takes, job_id, partial(take, rt, job_id, 0, 0, platform_class=None))
    if phase in (PHASE_TALLIED, PHASE_ARBITER):
        adopt_revealed(rt, job_id)
        return 0
    if phase != PHASE_ACTIVE:
        return 0
    now = rt.chain_now()
    round_ = int(case["round"])
    k = ROUND_SEATS[round_] if round_ < len(ROUND_SEATS) else 0
    seating = now <= int(case["seatDeadline"]) and int(case["taken"]) < k
    if not seating and int(case["taken"]) == 0:
        return 0
    # Past the commit deadline only a seat we committed is still ours to follow (its reveal): one
    # whose record a wiped Redis lost is adopted then too, else it was never revealed (review, stop 41).
    revealing = now > int(case["commitDeadline"])
    if seating and anchors.uses_headers(rt):  # nobody's seat is known until the round's anchor is proved
        anchors.prove_if_due(rt, int(case["anchor"]), lambda: [job_id])
    taken = 0
    checked: dict[str, Decision] = {}  # the inputs are fetched once for all our seats of the round
    for seat in range(k):
        rec = seat_record(rt, job_id, round_, seat)
        if not open_to_us(rec) and not reclaimable(rec):
            continue
        holder, on_chain, *_ = client.read(court.get_seat(job_id, round_, seat))
        if same(holder, rt.address):
            if not revealing or int(on_chain) >= SEAT_COMMITTED:
                adopt(rt, job_id, round_, seat, rec, int(on_chain))  # ours on chain whatever our record says
            continue
        if not open_to_us(rec) or int(holder, 16) != 0 or not seating or revealing:
            continue
        if same(client.read(court.drawn_for(job_id, round_, seat)), rt.address):
            taken += _take_or_defer(takes, job_id, partial(take, rt, job_id, round_, seat, platform_class=int(case["platformClass"]),
                                                           checked=checked))
    return taken


def _take_or_defer(takes: list[tuple[int, Callable[[], int]]] | None, job_id: int, take_seat: Callable[[], int]) -> int:
    if takes is None:
        return take_seat()
    takes.append((job_id, take_seat))
    return 0


def adopt_revealed(rt: Runtime, job_id: int) -> int:
    """A tallied case's seats (Tallied, Arbiter) the index shows revealed by us with no record of
    ours (a wiped Redis) are recorded ``revealed`` once the chain confirms them, so that
    :func:`follow_seat` follows them to the conclusion: it releases an agreeing audit's canary
    reserve after the canary window (else locked until the case concludes at the job's challenge
    deadline: review, stop 42), advances the case when due and closes the record. The index is read
    (a local look-up) so that other verifiers' seats cost no chain read on every pass. The number adopted."""
    try:
        seats = json.loads(rt.reader.job_fields(job_id).get("seats") or "{}")
    except ValueError:
        return 0
    adopted = 0
    for key, seat_info in seats.items():
        if not (isinstance(seat_info, dict) and seat_info.get("state") == "Revealed" and same(str(seat_info.get("verifier", "")), rt.address)):
            continue
        round_, seat = (int(x) for x in key.split("."))
        if seat_record(rt, job_id, round_, seat) or seat_state(rt, job_id, round_, seat) != SEAT_REVEALED:
            continue
        set_seat(rt, job_id, round_, seat, "revealed", reason="revealed on chain with no record of ours: adopted")
        log.warning("seat revealed on chain without a record: adopted", extra={"job": job_id, "round": round_, "seat": seat})
        adopted += 1
    return adopted


def reclaimable(rec: dict[str, str]) -> bool:
    """Whether our record of a seat lets the chain's word override it: a seat the chain shows held
    by us is adopted (:func:`adopt`) unless our record follows it already (in hand), it is ``done``,
    or it was declined for good (``final``: our own re-run or commit of it failed while we held
    it). Every other decline came from not seeing the seat ours: a take still in the node's pool
    (a crash, a receipt wait that timed out, a reorg that put it back) looks like a take never sent."""
    state = rec.get("state")
    return state in (None, "taking") or (state == "declined" and not rec.get("final"))


def adopt(rt: Runtime, job_id: int, round_: int, seat: int, rec: dict[str, str] | None = None, on_chain: int = SEAT_TAKEN) -> None:
    """A seat the chain shows held by us (`on_chain` its state) whose record is not followed
    (:func:`reclaimable`), instead of leaving it to be burned as a no-show:

    - no record (the ``taking`` write lost with Redis's unsaved writes while the transaction was
      mined, or the database wiped): recorded seated, idle at once (``updated`` 0), and its re-run
      left to :func:`follow_seat`'s two looks a lease TTL apart. Not queued at once: a re-run of ours
      may still be live (a wiped database does not end it; it takes its lease back within a third
      of the TTL), and a second run would remove its container.
    - ``taking`` or ``declined`` (a take mined after the record gave up on it; our take put back by a
      reorg and mined again): no run of ours is under way (every decline ends a run or comes before
      one), so the seat is run at once (the seat's lease keeps a second run out all the same); with
      a journal entry of its own (computed before the reorg) it is committed from that entry, no
      second run and the same salt; committed on chain already, it is followed to its reveal.
      Nothing is ever committed but what the seat's own journal entry holds."""
    rec = {} if rec is None else rec
    where = {"job": job_id, "round": round_, "seat": seat, "was": rec.get("state") or "", "why": rec.get("reason", "")[:120]}
    entry = journal(rt).load(job_id, round_, seat)
    if on_chain >= SEAT_COMMITTED:
        if entry is None:  # nothing of ours to reveal: given up (not looked at again)
            decline(rt, job_id, round_, seat, "committed on chain without a journal entry: cannot reveal", final=True)
            log.error("seat committed on chain without a journal entry: cannot reveal", extra=where)
            return
        set_seat(rt, job_id, round_, seat, "committed", reason="committed on chain: adopted", final="")
        log.warning("seat committed on chain: adopted", extra=where)
        return
    if not rec:
        set_seat(rt, job_id, round_, seat, "seated", reason="held on chain with no record of ours: adopted")
        rt.state.hset(rt.xkeys.seat(job_id, round_, seat), "updated", "0")
        log.warning("seat held on chain without a record: adopted", extra=where)
        return
    if entry is not None:  # the journal is this instance's own (written by our run or reuse only)
        set_seat(rt, job_id, round_, seat, "computed", digest=entry.digest, commitment=entry.commitment, kind=entry.kind,
                 reason=f"held on chain after '{rec.get('state')}': adopted, committed from its journal entry", final="")
        log.warning("seat held on chain: adopted, committed from its journal entry", extra=where)
        queue.send("depin.audit_commit", job_id, round=round_, seat=seat)
        return
    set_seat(rt, job_id, round_, seat, "seated", reason=f"held on chain after '{rec.get('state')}': adopted", final="")
    log.warning("seat held on chain: adopted, its re-run queued", extra=where)
    queue.send("depin.audit_run", job_id, round=round_, seat=seat)


def posted_spec(rt: Runtime, job_id: int) -> JobSpec:
    """The job's spec as posted (a submitted job's record holds its commitment, not its spec hash:
    the hash comes from the index, else the spec from the chain's ``JobPosted``)."""
    expected = rt.reader.job_fields(job_id).get("specHash")
    if expected:
        return load_spec(rt, job_id, bytes.fromhex(expected.removeprefix("0x")))
    return parse_spec(rt.client.spec_bytes(job_id))


def open_to_us(rec: dict[str, str]) -> bool:
    """Whether a seat may be taken by us now: never looked at, a take interrupted by a crash, or
    declined only for want of a free slot (one may have freed since)."""
    state = rec.get("state")
    return state in (None, "taking") or (state == "declined" and rec.get("reason", "").startswith(NO_SLOT))


def rho_pct(rt: Runtime, job_id: int) -> int:
    """The re-run's runtime factor (percent) of job `job_id`'s court."""
    return int(rt.client.court_params(job_id)["rhoPct"])


def seat_deadlines(rt: Runtime, job_id: int, case: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> tuple[int, int]:
    """The (seat, commit) deadlines, chain time, of the job's current round: the case's own once it
    is open; before (the audit's ``startAudit`` opens it) what the court will set, computed the
    way ``CourtBase._open`` does from the job's on-chain ``maxRuntime`` and submit time:
    seat = submitTime + drawDelay x blockTime + startWindow + inclusionTime, commit = seat +
    maxRuntime x rhoPct / 100 + setupTime + inclusionTime (the current court parameters)."""
    case = rt.client.court_case(job_id) if case is None else case
    if int(case["phase"]) != PHASE_NONE:
        return int(case["seatDeadline"]), int(case["commitDeadline"])
    p = rt.client.court_params(job_id) if params is None else params
    market = rt.client.contracts.job_market
    info = rt.client.read(market.verification_info(job_id))
    max_runtime, submit_time = int(info[8]), int(info[9])
    seat_deadline = submit_time + int(rt.client.read(market.draw_delay())) * int(p["blockTime"]) + int(p["startWindow"]) + int(p["inclusionTime"])
    return seat_deadline, seat_deadline + max_runtime * int(p["rhoPct"]) // 100 + int(p["setupTime"]) + int(p["inclusionTime"])


def run_margin(params: dict[str, Any]) -> int:
    """Seconds a re-run needs beyond its (ρ-raised) runtime before the commit deadline: what the
    court itself allows for that in every commit window (``setupTime`` to fetch and start,
    ``inclusionTime`` to get the commit mined). A spec whose runtime is within the job's on-chain
    ``maxRuntime`` always fits a seat taken before its seat deadline."""
    return int(params["setupTime"]) + int(params["inclusionTime"])


def time_to_run(spec: JobSpec, now: int, commit_deadline: int, margin: int) -> Decision:
    """Whether a re-run of `spec` (already raised to ρ x its runtime) started at chain time `now`
    can commit by `commit_deadline`, keeping `margin` (:func:`run_margin`). The court's commit
    window follows the job's ON-CHAIN ``maxRuntime``, which the requester may set far below the
    spec's runtime: a seat taken then would burn our bond as a no-show."""
    need = spec.resources.max_runtime + margin
    if now + need > commit_deadline:
        return Decision(False, f"no time to run: the commit deadline is {commit_deadline - now} s away; rho x runtime "
                               f"{spec.resources.max_runtime} s + {margin} s to set up and commit need {need} s")
    return Decision(True)


def audit_spec(spec: JobSpec, rho: int) -> JobSpec:
    """The spec a verifier runs: its max runtime raised to ρ × the runtime (``rhoPct``/100)."""
    runtime = max(spec.resources.max_runtime, spec.resources.max_runtime * rho // 100)
    return spec.model_copy(update={"resources": spec.resources.model_copy(update={"max_runtime": runtime})})


def can_run(rt: Runtime, spec: JobSpec) -> Decision:
    """Whether this machine may run `spec` (already raised to ρ × its runtime) under its policy."""
    r, c = spec.resources, rt.config.policy
    if r.cpus > c.max_cpus:
        return Decision(False, f"needs {r.cpus} CPUs; the policy allows {c.max_cpus}")
    if r.memory_mb > c.max_memory_mb:
        return Decision(False, f"needs {r.memory_mb} MB of memory; the policy allows {c.max_memory_mb}")
    if r.max_runtime > c.max_runtime:
        return Decision(False, f"rho x runtime is {r.max_runtime} s; the policy allows {c.max_runtime}")
    if r.output_mb > c.max_output_mb:
        return Decision(False, f"writes up to {r.output_mb} MB; the policy allows {c.max_output_mb}")
    return Policy(c, image_available=lambda image: image_present(rt, image)).check_image(spec)


def image_present(rt: Runtime, image: str) -> bool:
    try:
        check_image(rt.docker, image)
        return True
    except ImageUnavailable:
        return False


def take(rt: Runtime, job_id: int, round_: int, seat: int, *, platform_class: int | None, checked: dict[str, Decision] | None = None) -> int:
    """Takes one seat drawn for us when we can run the job (see the module doc); 1 when taken.
    `checked` keeps :func:`runnable_here`'s answer for the other seats of the same pass. A seat
    looked at again after its take's receipt wait timed out (``taking``) is not counted against
    ``max_audits`` by itself, and a decline of it keeps the job's checked inputs (``sent``)."""
    checked = {} if checked is None else checked
    client, court = rt.client, rt.client.court_of(job_id)
    # A `taking` record: a take of ours was sent and may still be mined (its receipt wait timed out,
    # or a crash came after it was sent): a decline keeps the checked inputs for the adopted seat's
    # re-run (found by review, stop 56).
    pending = seat_record(rt, job_id, round_, seat).get("state") == "taking"
    if running_count(rt, besides=(job_id, round_, seat)) >= rt.config.verifier.max_audits:
        return decline(rt, job_id, round_, seat, f"{NO_SLOT} ({rt.config.verifier.max_audits} seats in hand)", sent=pending)
    try:
        spec = audit_spec(posted_spec(rt, job_id), rho_pct(rt, job_id))
    except SpecError as exc:
        return decline(rt, job_id, round_, seat, f"the spec cannot be read: {exc}", sent=pending)
    decision = can_run(rt, spec)
    if not decision:
        return decline(rt, job_id, round_, seat, f"policy: {decision.reason}", sent=pending)
    mine = int(client.read(court.get_verifier(rt.address))[1])
    if platform_class is not None and mine != platform_class:
        return decline(rt, job_id, round_, seat, f"platform class {platform_class} is not ours ({mine})", sent=pending)
    params = rt.client.court_params(job_id)
    seat_deadline, commit_deadline = seat_deadlines(rt, job_id, params=params)
    now = rt.chain_now()
    decision = time_to_run(spec, now, commit_deadline, run_margin(params))
    if not decision:
        return decline(rt, job_id, round_, seat, decision.reason, sent=pending)
    # nothing is locked yet: what a re-run needs must be here now (a requester who removed or changed
    # an input after the provider ran would otherwise make our run decline with our bond locked)
    if "inputs" not in checked or (checked["inputs"] and not inputs_cached(rt, job_id, spec)):
        # (a yes of this pass whose bytes a declined seat of the job removed since is checked again)
        found = runnable_here(rt, job_id, spec, float(max(1, seat_deadline - now)))
        if found is None:
            return 0  # still fetching, off the chain queue: a later pass takes the seat or declines it
        checked["inputs"] = found
    decision = checked["inputs"]
    if not decision:
        return decline(rt, job_id, round_, seat, decision.reason, sent=pending)
    set_seat(rt, job_id, round_, seat, "taking", image=spec.image)
    call = court.start_audit(job_id) if round_ == 0 else court.take_seat(job_id, seat)
    try:
        receipt = client.send(call)
    except TxTimeout as exc:
        # still in the pool (a fee spike): the record stays `taking`; follow_seat seats it once it is
        # mined, or declines it, and a decline is undone when the chain shows the seat ours (adopt)
        set_seat(rt, job_id, round_, seat, reason=f"take not mined in time, may still be: {exc}"[:300])
        log.warning("seat take not mined in time", extra={"job": job_id, "round": round_, "seat": seat, "error": str(exc)[:200]})
        return 0
    except TxReverted as exc:
        holder = client.read(court.get_seat(job_id, round_, seat))[0]
        if not same(holder, rt.address):
            # a take of ours still in the pool (sent before a crash) makes this one revert (BadSeat on
            # the pending state) while the latest state does not show it: adopted once it is mined
            return decline(rt, job_id, round_, seat, f"{'startAudit' if round_ == 0 else 'takeSeat'} reverted: {exc.error_name or exc.reason}",
                           sent=True)
        receipt = None  # taken before a crash
    set_seat(rt, job_id, round_, seat, "seated", taken_tx=receipt.tx_hash if receipt else "")
    log.info("seat taken", extra={"job": job_id, "round": round_, "seat": seat, "tx": receipt.tx_hash if receipt else ""})
    queue.send("depin.audit_run", job_id, round=round_, seat=seat)
    return 1


def runnable_here(rt: Runtime, job_id: int, spec: JobSpec, seat_left: float) -> Decision | None:
    """Whether the re-run's image is on this machine and every input can be fetched and hashes to
    its sha256 now (each checked input stays in the job's :func:`input_cache` for the re-run).
    The image is asked of the engine here; the inputs are fetched in the background
    (:func:`input_check`: within ``PREFETCH_TIMEOUT`` seconds of the check's start and the seat's
    deadline, `seat_left` seconds from now), and None means that fetch is still running: the verify pass runs on the chain queue, and a requester's slow server
    must not hold up the commits, reveals and transactions queued behind it (a seat missing its
    deadline there is a no-show that burns its bond). A check's "yes" counts only while every
    checked input is still in the cache (a declined seat removes it): else the inputs are checked
    again, since the re-run would otherwise ask the requester's server anew."""
    if rt.config.policy.images:  # an allowlisted image may still be missing here (else can_run asked the engine)
        try:
            check_image(rt.docker, spec.image)
        except ImageUnavailable as exc:
            return Decision(False, f"the image is not available here: {exc}")
    if all(i.uri.startswith("data:") for i in spec.inputs):  # none, or inline: nothing can go away
        return Decision(True)
    latest = time.monotonic() + seat_left  # the seat's deadline
    wait = max(0.0, _pass["check_until"] - time.monotonic())
    decision = input_check(rt, job_id, spec, latest=latest, wait=wait)
    if decision is not None and decision.ok and not inputs_cached(rt, job_id, spec):
        log.info("checked inputs no longer cached; checking again", extra={"job": job_id})
        decision = input_check(rt, job_id, spec, latest=latest, wait=max(0.0, _pass["check_until"] - time.monotonic()))
        if decision is not None and decision.ok and not inputs_cached(rt, job_id, spec):
            decision = Decision(False, "the checked inputs could not be kept in the input cache here")
    return decision


def inputs_cached(rt: Runtime, job_id: int, spec: JobSpec) -> bool:
    """Every input the re-run would fetch is in the job's input cache (``<cache>/<sha256>``)."""
    cache = input_cache(rt, job_id)
    return all((cache / i.sha256).is_file() for i in spec.inputs if not i.uri.startswith("data:"))


@dataclass
class _Check:
    future: Future[Decision]
    finished: float | None = None  # monotonic time it ended


class _Checks:
    """The input checks of one process (the verifier's chain worker), each in a thread of a small
    pool, by job: started by the first pass that needs one, ended by the pass that reads it, or
    forgotten with the job's cache (:func:`drop_input_cache`) or once stale."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pool: ThreadPoolExecutor | None = None
        self.running: dict[int, _Check] = {}

    def start(self, job_id: int, work: Callable[[], Decision]) -> tuple[Future[Decision], bool]:
        """The job's check, started now unless one is running or ended less than
        ``INPUT_CHECK_FRESH`` seconds ago (and whether it was started now)."""
        with self.lock:
            found = self.running.get(job_id)
            if found is not None and (found.finished is None or time.monotonic() - found.finished <= INPUT_CHECK_FRESH):
                return found.future, False
            if self.pool is None:
                self.pool = ThreadPoolExecutor(max_workers=INPUT_CHECK_THREADS, thread_name_prefix="input-check")
            check = _Check(self.pool.submit(work))
            check.future.add_done_callback(lambda _f: setattr(check, "finished", time.monotonic()))
            self.running[job_id] = check
            return check.future, True

    def forget(self, job_id: int) -> None:
        with self.lock:
            self.running.pop(job_id, None)

    def sweep(self) -> None:
        """Forgets ended checks no pass read in time (the seat went to another)."""
        now = time.monotonic()
        with self.lock:
            for job_id in [j for j, c in self.running.items() if c.finished is not None and now - c.finished > INPUT_CHECK_FRESH]:
                del self.running[job_id]


_checks = _Checks()
_pass = {"check_until": 0.0}  # monotonic time until which this verify pass may wait for input checks


def input_check(rt: Runtime, job_id: int, spec: JobSpec, *, latest: float, wait: float) -> Decision | None:
    """The job's inputs fetched and hash-checked (:func:`fetch_inputs` into a scratch folder below
    the work root, then removed; into the job's :func:`input_cache`) in a background thread, within
    ``PREFETCH_TIMEOUT`` seconds of the thread's start and by `latest` (monotonic): a check queued
    behind others does not lose its time waiting. Waits at most `wait` seconds for it: its answer
    once it has ended (the check is then forgotten, so a later call checks again), else None."""
    job_id = int(job_id)

    def work() -> Decision:
        deadline = min(time.monotonic() + PREFETCH_TIMEOUT, latest)
        Path(rt.work_root).mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"precheck-{job_id}-", dir=rt.work_root))
        try:
            fetch_inputs(
                spec, scratch / "in", max_bytes=rt.config.policy.max_input_mb * MIB,
                allow_networks=rt.config.policy.input_allow_networks, deadline=deadline, cache_dir=input_cache(rt, job_id),
            )
        except InputError as exc:
            return Decision(False, f"the inputs cannot be fetched and checked now: {exc}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return Decision(True)

    future, started = _checks.start(job_id, work)
    try:
        decision = future.result(timeout=wait)
    except FutureTimeout:
        (log.info if started else log.debug)("inputs being checked in the background", extra={"job": job_id})
        return None
    except Exception as exc:  # noqa: BLE001 - the check itself broke: never a reason to lock a bond
        decision = Decision(False, f"the inputs' check failed here: {type(exc).__name__}: {exc}")
    _checks.forget(job_id)
    return decision


def decline(rt: Runtime, job_id: int, round_: int, seat: int, reason: str, *, final: bool = False, sent: bool = False) -> int:
    """Records that we do not take (or do not commit on) a seat: unpaid, and the court redraws it.
    Unless `final` (our own re-run or commit of a seat we held failed), a seat the chain shows ours
    later is adopted all the same (:func:`reclaimable`). `sent`: a take of ours was sent and may
    still be mined (or mined again after a reorg): the job's checked inputs are kept for the re-run
    of an adopted seat (the hourly sweep removes them otherwise, :func:`sweep_input_caches`)."""
    set_seat(rt, job_id, round_, seat, "declined", reason=reason[:300], final="1" if final else "")
    log.info("seat declined", extra={"job": job_id, "round": round_, "seat": seat, "reason": reason[:300], "final": final})
    if not sent:
        drop_input_cache(rt, job_id)
    return 0


def input_cache(rt: Runtime, job_id: int) -> Path:
    """The job's cache of checked inputs: filled by the check before a seat is taken, read by the
    re-run (:func:`executor.inputs.fetch_inputs`), so the run uses the bytes that were checked."""
    return Path(rt.work_root) / "input-cache" / str(int(job_id))


def drop_input_cache(rt: Runtime, job_id: int) -> None:
    """Removes the job's input cache, and forgets its input check (whose answer vouched for the
    cache), once none of its seats is in our hands."""
    if all(j != int(job_id) for j, _r, _s in seats_in_hand(rt)):
        _checks.forget(int(job_id))
        shutil.rmtree(input_cache(rt, job_id), ignore_errors=True)


def sweep_input_caches(rt: Runtime, max_age: float = INPUT_CACHE_MAX_AGE) -> int:
    """Removes the caches of jobs with no seat in our hands that were last written over `max_age`
    seconds ago (what a crash between a check and its decline left); the number removed."""
    root = Path(rt.work_root) / "input-cache"
    if not root.is_dir():
        return 0
    held = {j for j, _r, _s in seats_in_hand(rt)}
    removed = 0
    for entry in root.iterdir():
        try:
            stale = not entry.name.isdigit() or (int(entry.name) not in held and time.time() - entry.stat().st_mtime > max_age)
        except OSError:
            continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


# ---------------------------------------------------------------------------------------- run


def run_audit(rt: Runtime, job_id: int, round_: int, seat: int) -> None:
    """Re-runs the job for a seat we hold and journals the digest with a fresh salt (see the module
    doc); then queues the commit. A run that yields no digest of ours declines the seat."""
    lease = seat_lease(rt, job_id, round_, seat)
    if not lease.acquire():
        raise RuntimeError("another task holds the seat's lease")  # recovered by follow_seat once it is free
    try:
        computed = compute_seat(rt, job_id, round_, seat)
    finally:
        lease.release()
    if computed:
        queue.send("depin.audit_commit", job_id, round=round_, seat=seat)
    elif computed is None:  # another seat of ours checks the round's delivery: looked at again, no process held meanwhile
        queue.send("depin.audit_run", job_id, countdown=DELIVERY_POLL, round=round_, seat=seat)


def compute_seat(rt: Runtime, job_id: int, round_: int, seat: int) -> bool | None:
    """:func:`run_audit` under the seat's lease: whether the seat is computed (its commit is due);
    None when its re-run's result waits for the round's delivery verdict (the re-run's digest is
    kept in the record, ``run_digest``: the next task journals it once the verdict is in)."""
    rec = seat_record(rt, job_id, round_, seat)
    if rec.get("state") not in ("seated", "running"):
        return rec.get("state") == "computed"
    if journal(rt).load(job_id, round_, seat) is None:
        state = seat_state(rt, job_id, round_, seat)
        if state != SEAT_TAKEN:  # a reorg put our take back into the pool: adopted if it is mined again
            decline(rt, job_id, round_, seat, f"the seat is no longer ours to commit (state {state})", sent=True)
            return False
        set_seat(rt, job_id, round_, seat, "running", **({} if rec.get("started") else {"started": time.time()}))
        try:
            posted = posted_spec(rt, job_id)
            spec = audit_spec(posted, rho_pct(rt, job_id))
        except SpecError as exc:
            decline(rt, job_id, round_, seat, f"cannot run: {exc}", final=True)
            return False
        commit_deadline = int(rt.client.court_case(job_id)["commitDeadline"])
        now = rt.chain_now()
        margin = run_margin(rt.client.court_params(job_id))
        sibling = sibling_entry(rt, job_id, round_, seat)
        if rec.get("run_digest", "").startswith("0x"):  # our re-run ended: its result waited for the round's verdict
            if not (ended := journal_result(rt, job_id, round_, seat, spec, bytes.fromhex(rec["run_digest"][2:]))):
                return ended
        elif sibling is not None and not time_to_run(spec, now, commit_deadline, margin):
            reuse(rt, sibling, seat)  # no time left for a run of our own: our other seat's answer, a fresh salt
        elif not (ended := run_seat(
            rt, job_id, round_, seat, spec, commit_deadline - now - spec.resources.max_runtime - margin, limit=posted.resources.max_runtime,
        )):
            return ended
    entry = journal(rt).load(job_id, round_, seat)
    assert entry is not None
    set_seat(rt, job_id, round_, seat, "computed", digest=entry.digest, commitment=entry.commitment, kind=entry.kind)
    log.info("audit computed", extra={"job": job_id, "round": round_, "seat": seat, "digest": entry.digest})
    return True


def run_seat(rt: Runtime, job_id: int, round_: int, seat: int, spec: JobSpec, inputs_left: int, *, limit: int | None = None) -> bool | None:
    """Runs `spec` for the seat and journals its digest (durably, before any commit); False when the
    seat was declined instead, None when a result waits for the round's delivery verdict
    (:func:`journal_result`). The inputs get `inputs_left` seconds (what the commit window leaves
    once the run and the commit are kept): a slow input server cannot push the run past it.
    `limit`: the posted spec's runtime (`spec` has ρ times it), for :func:`past_time_limit`."""
    try:
        outcome = execute(
            rt.docker, job_id=job_id, spec=spec, work_root=rt.work_root, store=rt.store,
            name=audit_container(rt, job_id, round_, seat),
            labels={LABEL_EXECUTOR: rt.instance, LABEL_LEASE: seat_lease(rt, job_id, round_, seat).key},
            limits_cap=rt.config.policy.model_copy(update={"max_runtime": max(rt.config.policy.max_runtime, spec.resources.max_runtime)}),
            input_deadline=time.monotonic() + max(1, inputs_left), input_cache=input_cache(rt, job_id),
        )
    except (SpecError, PolicyRefused) as exc:
        decline(rt, job_id, round_, seat, f"cannot run: {exc}", final=True)
        return False
    except Exception as exc:
        decline(rt, job_id, round_, seat, f"the run failed on this machine: {type(exc).__name__}: {exc}", final=True)
        log.exception("audit run failed; seat declined", extra={"job": job_id})
        return False
    if outcome.kind == "result" and outcome.name:
        rt.store.remove(outcome.name)  # the verifier publishes nothing
    if limit is not None and past_time_limit(outcome, limit, lambda: rt.client.job(job_id).failure_code):
        digest, kind = failure_digest(int(FailureCode.TIME_LIMIT)), "failure"
        log.info("the run outlasted the job's runtime the provider was held to; agreeing with its TIME_LIMIT",
                 extra={"job": job_id, "round": round_, "seat": seat, "run_s": round(outcome.durations.run, 3), "limit": limit})
    elif outcome.kind == "result":
        assert outcome.match_digest is not None
        set_seat(rt, job_id, round_, seat, run_digest="0x" + outcome.match_digest.hex())
        return journal_result(rt, job_id, round_, seat, spec, outcome.match_digest)
    elif outcome.code in JOB_FAILURES:
        assert outcome.code is not None
        digest, kind = failure_digest(int(outcome.code)), "failure"
    else:
        decline(rt, job_id, round_, seat, f"no digest of ours: {outcome.reason}"[:300], final=True)
        return False
    journal(rt).record(rt.address, job_id, round_, seat, digest, kind)
    return True


def journal_result(rt: Runtime, job_id: int, round_: int, seat: int, spec: JobSpec, digest: bytes) -> bool | None:
    """Journals the seat's re-run result `digest` by the round's delivery verdict
    (:func:`round_delivery_check`: NOT_DELIVERED when the provider did not deliver); True when
    journaled, None while another seat of ours checks the delivery (the task then ends and is
    queued again, :func:`run_audit`: a seat waiting holds no compute process)."""
    verdict = round_delivery_check(rt, job_id, round_, seat, spec)
    if verdict is None:
        rec = seat_record(rt, job_id, round_, seat)
        if not rec.get("waiting"):
            log.info("waiting for the round's delivery check", extra={"job": job_id, "round": round_, "seat": seat,
                                                                      "holder": delivery_lease(rt, job_id, round_).holder()})
        set_seat(rt, job_id, round_, seat, waiting="1")  # and a touch: follow_seat sees the seat followed
        return None
    set_seat(rt, job_id, round_, seat, delivery=verdict, waiting="")
    kind = "not-delivered" if verdict.startswith("not delivered") else "result"
    journal(rt).record(rt.address, job_id, round_, seat, NOT_DELIVERED if kind == "not-delivered" else digest, kind)
    return True


def past_time_limit(outcome: Outcome, limit: int, provider_code: Callable[[], int]) -> bool:
    """Whether a re-run must be committed as ``TIME_LIMIT``: the provider submitted that failure
    (`provider_code`, read only when it matters) and the re-run lasted longer than the `limit` it
    was held to. A verifier runs with ρ × the runtime so that a slower machine still reproduces a
    provider's result; judging a provider's TIME_LIMIT by that slack would outvote every honest
    provider of a job that runs between 1 and ρ times its limit (review, stop 36). A re-run that
    ends within the limit still commits what it got: the provider's claim was then false here."""
    return outcome.durations.run > limit and int(provider_code()) == int(FailureCode.TIME_LIMIT)


def seat_lease(rt: Runtime, job_id: int, round_: int, seat: int) -> Lease:
    """The lease of one seat's re-run: our seats of one job run side by side (a lease per job made
    each wait for the other's whole run, past its commit deadline), each seat's at most once. Its
    renewals keep the seat record's ``updated`` fresh (what :func:`follow_seat` reads). Their check
    of the provider's delivery is one per round, under :func:`delivery_lease`. The redelivery cap
    reads the same key (``ExecKeys.seat_lease``, :func:`executor.jobtask.delivery_scope`): a seat
    task delivered past the cap while it is held is a live re-run's duplicate, not given up."""
    return Lease(rt.state, rt.xkeys.seat_lease(job_id, round_, seat), rt.lease_ttl, touch=rt.xkeys.seat(job_id, round_, seat))


def sibling_entry(rt: Runtime, job_id: int, round_: int, seat: int) -> SeatEntry | None:
    """The journaled entry of another of our seats of the same round (the lowest seat first), or None."""
    k = ROUND_SEATS[round_] if round_ < len(ROUND_SEATS) else 0
    for other in range(k):
        if other != seat and (entry := journal(rt).load(job_id, round_, other)) is not None:
            return entry
    return None


def reuse(rt: Runtime, sibling: SeatEntry, seat: int) -> SeatEntry:
    """Journals for `seat` the digest (and kind) another of our seats of the round computed, with a
    fresh salt. The sibling's entry is durable and never rewritten, and this seat's, once written,
    is kept by every later run (:meth:`AuditJournal.record`): a crash between the two cannot make
    the seats commit different digests."""
    entry = journal(rt).record(rt.address, sibling.job_id, sibling.round, seat, bytes.fromhex(sibling.digest[2:]), sibling.kind)
    delivery = seat_record(rt, sibling.job_id, sibling.round, sibling.seat).get("delivery", "")
    set_seat(rt, sibling.job_id, sibling.round, seat, delivery=delivery, reused=sibling.seat,
             reason=f"no time for a run of its own: seat {sibling.seat}'s digest reused with a fresh salt")
    log.info("audit digest reused", extra={"job": sibling.job_id, "round": sibling.round, "seat": seat, "from": sibling.seat})
    return entry


def round_delivery(rt: Runtime, job_id: int, round_: int, seat: int) -> str:
    """The verdict on the provider's delivery journaled for the round (:meth:`AuditJournal.round_verdict`),
    else one recorded in Redis (``{e}:delivery:<job>:<round>``, by a version that kept it there
    only) or what another of our seats of the round found, journaled now ("" when none checked yet)."""
    found = journal(rt).round_verdict(job_id, round_)
    if found:
        return found
    cached = rt.state.get(rt.xkeys.round_delivery(job_id, round_))
    if cached:
        return record_round_delivery(rt, job_id, round_, cached.decode() if isinstance(cached, bytes) else str(cached))
    k = ROUND_SEATS[round_] if round_ < len(ROUND_SEATS) else 0
    for other in range(k):
        if other != seat and (sibling := seat_record(rt, job_id, round_, other).get("delivery")):
            return record_round_delivery(rt, job_id, round_, sibling)
    return ""


def record_round_delivery(rt: Runtime, job_id: int, round_: int, verdict: str) -> str:
    """Records `verdict` as the round's unless one is recorded already; the round's verdict (the first
    recorded wins: every seat of ours in the round commits by the same one). The journal holds it,
    durably, before any seat journals a digest derived from it: a Redis wiped (or restored from an
    older snapshot) between two seats' checks cannot make them check apart and vote both ways
    (review, stop 41); ``{e}:delivery:<job>:<round>`` mirrors it."""
    verdict = journal(rt).record_round_verdict(job_id, round_, verdict)
    rt.state.set(rt.xkeys.round_delivery(job_id, round_), verdict, ex=ROUND_DELIVERY_TTL)
    return verdict


def delivery_lease(rt: Runtime, job_id: int, round_: int) -> Lease:
    """The lease of the round's one delivery check (:func:`round_delivery_check`)."""
    return Lease(rt.state, f"{rt.xkeys.lease(job_id)}:{int(round_)}:delivery", rt.lease_ttl)


def round_delivery_check(rt: Runtime, job_id: int, round_: int, seat: int, spec: JobSpec) -> str | None:
    """The provider's delivery as all our seats of the round commit it: checked once per (job,
    round). Several seats of one jury drawn for us re-run side by side (a lease per seat); each
    checking on its own could find the archive once served and once not (a provider serving it
    only to its first request, a server that flaps) and vote both ways in one round, losing a bond
    whatever the tally (found by review, stop 40). So the seat that gets the round's delivery lease
    checks (:func:`check_provider_delivery`) and records the verdict (:func:`record_round_delivery`);
    for the others this returns None while the check runs: their task ends and looks again
    ``DELIVERY_POLL`` seconds later (:func:`run_audit`), so that a waiting seat holds no compute
    process (one waiting in its task kept the next seat's re-run, or a provider job, from starting
    for the whole check: review, stop 41), and one of them takes the lease over if its holder died
    (it expires a lease TTL after). A seat still without a verdict when its commit is due (the
    commit deadline less the court's ``inclusionTime``; the check itself ends before that,
    :func:`delivery_budget`, so only a stalled machine gets here) records ``not checked``: our own
    failure to check is never a verdict against the provider (its digest is committed, as when
    there was no time left to check); recorded first, it is what the checking seat commits too."""
    found = round_delivery(rt, job_id, round_, seat)
    if found:
        return found
    lease = delivery_lease(rt, job_id, round_)
    if lease.acquire():
        try:
            found = round_delivery(rt, job_id, round_, seat)  # recorded while we asked for the lease
            if found:
                return found
            return record_round_delivery(rt, job_id, round_, check_provider_delivery(rt, job_id, spec))
        finally:
            lease.release()
    if (found := round_delivery(rt, job_id, round_, seat)):  # recorded as the lease was let go
        return found
    case, params = rt.client.court_case(job_id), rt.client.court_params(job_id)
    if rt.chain_now() >= int(case["commitDeadline"]) - int(params["inclusionTime"]):
        log.warning("no delivery verdict for the round by the commit's time; not checked", extra={"job": job_id, "round": round_, "seat": seat})
        return record_round_delivery(rt, job_id, round_, "not checked: the round's delivery check did not end before the commit was due")
    return None


# What a bounded check (:func:`check_delivered_bounded`) allows beyond its `total_timeout`: the
# child's start (importing this module) and the archive's parse after the download.
ISOLATION_SLACK = 10.0
# The address space the bounded check's child may map (RLIMIT_AS, set by the child itself): measured
# on CPython 3.11, x86-64, a check peaks at 200-275 MB mapped (56 MB resident; 121 MB for an archive
# of MAX_ENTRIES entries read with output.match); past the limit the check stops, "not delivered".
DELIVERY_CHECK_MAX_MEMORY = 1 << 30


def check_delivered_bounded(
    uri: str,
    *,
    provider: str,
    job_id: int,
    commitment: bytes,
    match: Sequence[str] | None,
    encrypt_to: bytes | str | None,
    max_bytes: int,
    timeout: float,
    wait: float,
    total_timeout: float,
    allow_networks: Sequence[str] = (),
) -> DeliveryVerdict:
    """:func:`check_delivered` in a child process that is killed `total_timeout` +
    ``ISOLATION_SLACK`` seconds after it starts: what a juror runs, whose commit deadline must hold
    whatever the provider's server and archive do. In process, two things outlasted
    `total_timeout` (found by review, stop 36): response headers sent one byte per read timeout
    (the deadline is checked between body chunks, and httpcore takes up to 100 KiB of head), and a
    plaintext archive whose pax header is a long run of digits, which ``tarfile`` before CPython
    3.11.10 / 3.12.6 scans in quadratic time (CVE-2024-6232) holding the GIL, so every thread of
    the executor stopped (33 s for a 170 KB archive). A child killed at its deadline is "not
    delivered" (UNAVAILABLE), as a check that ran out of `total_timeout` is; so is one that ran out
    of its memory (``DELIVERY_CHECK_MAX_MEMORY`` of address space). `allow_networks`: the
    CIDRs the result may come from besides public addresses. A child that ends without a verdict
    (an exception the check did not expect, found by review: a redirect httpx could not parse) is
    "not delivered" (UNAVAILABLE) too, logged as an error: a stopped check, never an exception
    out of the seat's run, which would leave the seat uncommitted and the juror's bond lost."""
    request = {
        "uri": uri, "provider": provider, "job_id": int(job_id), "commitment": bytes(commitment).hex(),
        "match": None if match is None else list(match),
        "encrypt_to": encrypt_to.hex() if isinstance(encrypt_to, bytes) else encrypt_to,
        "max_bytes": int(max_bytes), "timeout": float(timeout), "wait": float(wait), "total_timeout": float(total_timeout),
        "allow_networks": list(allow_networks), "max_memory": DELIVERY_CHECK_MAX_MEMORY,
    }
    limit = float(total_timeout) + ISOLATION_SLACK
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "depin.delivery_check"], input=json.dumps(request), capture_output=True, text=True,
            timeout=limit, check=False,
        )
    except subprocess.TimeoutExpired:
        reason = f"the check did not end within {limit:.0f} s (the server or the archive held it); stopped"
        return DeliveryVerdict(False, uri, encrypt_to is not None, reason=reason, failure=UNAVAILABLE)
    try:
        if proc.returncode != 0:
            raise ValueError(f"exit {proc.returncode}")  # one path for every way of ending without a verdict
        verdict = DeliveryVerdict(**json.loads(proc.stdout))
    except (ValueError, TypeError) as exc:
        log.error("the delivery check ended without a verdict; not delivered", extra={
            "uri": uri, "error": str(exc)[:200], "stderr": proc.stderr.strip()[-1000:],
        })
        reason = f"the check ended without a verdict ({str(exc)[:60]}); stopped"
        return DeliveryVerdict(False, uri, encrypt_to is not None, reason=reason, failure=UNAVAILABLE)
    if proc.stderr.strip():  # the traceback of an error the check did not expect (its verdict says which)
        log.warning("the delivery check wrote to stderr", extra={"uri": uri, "stderr": proc.stderr.strip()[-1000:]})
    return verdict


def check_provider_delivery(rt: Runtime, job_id: int, spec: JobSpec) -> str:
    """Whether the provider served the result it committed to (:func:`depin.delivery_check.check_delivered`
    on its ``ResultSubmitted``: the URI and the commitment), asked for again while it is missing for
    up to ``[verifier] delivery_wait`` seconds; the whole check, its child's kill slack included,
    ends ``DELIVERY_MARGIN`` seconds before the case's commit deadline less the inclusion time
    (:func:`delivery_budget`). The record's line: ``delivered (...)``, ``not delivered: <why>``, or
    ``not checked: <why>`` when the provider reported a failure (no archive is due: our result
    digest differs from its failure digest anyway), when this node shows no submission, or when
    too little time is left for a check (our own lateness is never a verdict against the provider:
    the seat commits its digest). Called once per (job, round): :func:`round_delivery_check`."""
    sub = rt.client.submission(job_id)
    if sub is None:  # the case exists, so this node failed us: never a verdict against the provider
        return "not checked: no ResultSubmitted event found on this node"
    if sub.failure:
        return "not checked: the provider reported a failure"
    case, params = rt.client.court_case(job_id), rt.client.court_params(job_id)
    left = int(case["commitDeadline"]) - rt.chain_now() - int(params["inclusionTime"]) - DELIVERY_MARGIN
    max_bytes = spec.resources.output_mb * 1_048_576 + ARCHIVE_OVERHEAD
    budget = delivery_budget(float(left), float(rt.config.verifier.delivery_wait), max_bytes)
    if budget is None:
        log.warning("no time left to check the provider's delivery", extra={"job": job_id, "left": left})
        return f"not checked: no time left for the check before the commit is due ({left} s)"
    wait, timeout, total = budget
    verdict = check_delivered_bounded(  # in a child killed at its deadline: see its doc
        sub.uri, provider=sub.provider, job_id=job_id, commitment=sub.commitment, match=spec.match, encrypt_to=spec.encrypt_to,
        max_bytes=max_bytes, timeout=timeout, wait=wait, total_timeout=total,
        allow_networks=[str(n) for n in parse_networks(rt.config.verifier.result_allow_networks)],
    )
    log.info("provider delivery checked", extra={
        "job": job_id, "delivered": verdict.delivered, "uri": sub.uri, "reason": verdict.reason, "attempts": verdict.attempts,
    })
    return verdict.summary()


def delivery_budget(left: float, delivery_wait: float, max_bytes: int) -> tuple[float, float, float] | None:
    """(wait, timeout, total) of a delivery check that must end, its child's ``ISOLATION_SLACK``
    included, within `left` seconds (the commit deadline less the court's ``inclusionTime`` and
    ``DELIVERY_MARGIN``): `total` bounds the whole check, retries included (a server trickling its
    bytes one per read timeout would otherwise hold the seat past its commit deadline), and the child
    is killed at `total` + ``ISOLATION_SLACK``; `wait` (``[verifier] delivery_wait``) and each
    request's `timeout` fit in `total`. None when less than ``MIN_DELIVERY_CHECK`` seconds would
    be left for the check: it is not run (before the review of stop 40 the check then got 30 s
    anyway and ended up to 40 s past what the commit needed, its seat a no-show)."""
    room = left - ISOLATION_SLACK
    if room < MIN_DELIVERY_CHECK:
        return None
    wait = max(0.0, min(delivery_wait, room))
    total = min(wait + DELIVERY_TIMEOUT + max_bytes / MIN_DELIVERY_RATE, room)
    timeout = min(DELIVERY_TIMEOUT, max(5.0, wait), total)
    return wait, timeout, total


def seat_state(rt: Runtime, job_id: int, round_: int, seat: int) -> int:
    """The seat's on-chain state when we hold it, else -1."""
    holder, state, *_ = rt.client.read(rt.client.court_of(job_id).get_seat(job_id, round_, seat))
    return int(state) if same(holder, rt.address) else -1


def commit_seat(rt: Runtime, job_id: int, round_: int, seat: int) -> None:
    """Sends the seat's commitment from the journal, unless the chain shows it sent already."""
    rec = seat_record(rt, job_id, round_, seat)
    if rec.get("state") != "computed":
        return
    entry = journal(rt).load(job_id, round_, seat)
    if entry is None:
        decline(rt, job_id, round_, seat, "no journal entry: nothing computed to commit")
        return
    state = seat_state(rt, job_id, round_, seat)
    if state >= SEAT_COMMITTED:
        set_seat(rt, job_id, round_, seat, "committed", reason="the commitment is on chain already")
        return
    if state != SEAT_TAKEN:  # a reorg put our take back into the pool: adopted (and committed) if it is mined again
        decline(rt, job_id, round_, seat, f"the seat is no longer ours (state {state})", sent=True)
        return
    court = rt.client.court_of(job_id)
    try:
        receipt = rt.client.send(court.commit(job_id, seat, bytes.fromhex(entry.commitment[2:])))
    except TxReverted as exc:
        state = seat_state(rt, job_id, round_, seat)
        if state >= SEAT_COMMITTED:
            set_seat(rt, job_id, round_, seat, "committed", reason="the commitment is on chain already")
            return
        # final when the seat is still ours (the court refused our commit: adopting it again would
        # only repeat that), not when a reorg took the take away meanwhile
        decline(rt, job_id, round_, seat, f"commit reverted: {exc.error_name or exc.reason}", final=state == SEAT_TAKEN, sent=state != SEAT_TAKEN)
        return
    set_seat(rt, job_id, round_, seat, "committed", commit_tx=receipt.tx_hash)
    log.info("seat committed", extra={"job": job_id, "round": round_, "seat": seat, "tx": receipt.tx_hash})


# ---------------------------------------------------------------------------------------- reveal


def follow_seats(rt: Runtime) -> int:
    """Reveals our committed seats when their reveal phase is open, advances their cases when due,
    and closes the records of concluded cases; the number of transactions sent."""
    sent = 0
    advanced: set[int] = set()
    for job_id, round_, seat in seats_in_hand(rt):
        try:
            sent += follow_seat(rt, job_id, round_, seat, advanced)
        except TxReverted as exc:
            log.info("seat step not taken", extra={"job": job_id, "round": round_, "seat": seat, "error": exc.error_name})
    return sent


def follow_seat(rt: Runtime, job_id: int, round_: int, seat: int, advanced: set[int]) -> int:
    """One pass over one seat in hand: its lost commit task or dead re-run queued again, a timed-out
    take seated or declined, a committed seat revealed, its case advanced or closed; the number of
    transactions sent. A record behind the chain (:func:`committed_behind`) is caught up first."""
    rec = seat_record(rt, job_id, round_, seat)
    state = rec.get("state")
    client, court = rt.client, rt.client.court_of(job_id)
    if committed_behind(rt, job_id, round_, seat, rec):
        rec = seat_record(rt, job_id, round_, seat)
        state = rec.get("state")
    if state == "computed":
        queue.send("depin.audit_commit", job_id, round=round_, seat=seat)  # a lost commit task
        return 0
    now = time.time()
    idle = now - float(rec.get("updated") or 0)
    if state in ("seated", "running") and idle > RECOVER_AFTER and not rt.state.exists(seat_lease(rt, job_id, round_, seat).key):
        # Two looks a lease TTL apart, as for the provider's jobs: a free lease alone may be a live
        # re-run's whose key a Redis stall or a wiped database took (:func:`executor.lease.idle_confirmed`).
        if idle_confirmed(rt.state, rt.xkeys.seat(job_id, round_, seat), rec, now, rt.lease_ttl):
            rt.state.hdel(rt.xkeys.seat(job_id, round_, seat), IDLE_MARK)
            set_seat(rt, job_id, round_, seat, reason="re-run queued again (its task died)")  # touch: not again before RECOVER_AFTER
            queue.send("depin.audit_run", job_id, round=round_, seat=seat)
        return 0
    if state not in ("committed", "revealed"):
        if state == "taking" and idle > RECOVER_AFTER:
            if seat_state(rt, job_id, round_, seat) == SEAT_TAKEN:
                set_seat(rt, job_id, round_, seat, "seated", reason="taken before a crash")
                queue.send("depin.audit_run", job_id, round=round_, seat=seat)
            else:  # or still in the pool: adopted (and run) once the chain shows it ours
                decline(rt, job_id, round_, seat, "the seat is not ours on chain (the take was not sent, or is not mined yet)", sent=True)
        return 0
    case = client.court_case(job_id)
    on_chain = client.read(court.get_seat(job_id, round_, seat))
    if int(case["phase"]) == PHASE_CONCLUDED or (not same(on_chain[0], rt.address) and state == "revealed"):
        done(rt, job_id, round_, seat, case, on_chain)
        return 0
    sent = 0
    if state == "committed":
        if int(on_chain[1]) == SEAT_REVEALED:
            set_seat(rt, job_id, round_, seat, "revealed", reason="revealed on chain already")
        elif int(on_chain[1]) == SEAT_COMMITTED:
            entry = journal(rt).load(job_id, round_, seat)
            if entry is None:
                log.error("committed seat without a journal entry: cannot reveal", extra={"job": job_id})
                return 0
            try:
                receipt = client.send(court.reveal(job_id, seat, *entry.reveal_args()[2:]))
            except TxReverted as exc:
                if exc.error_name not in ("RevealNotOpen", "AlreadyRevealed"):
                    raise
            else:
                set_seat(rt, job_id, round_, seat, "revealed", reveal_tx=receipt.tx_hash)
                log.info("seat revealed", extra={"job": job_id, "round": round_, "seat": seat, "tx": receipt.tx_hash})
                sent += 1
        elif not same(on_chain[0], rt.address):
            done(rt, job_id, round_, seat, case, on_chain)  # a no-show slot emptied (we missed the reveal)
            return 0
    if round_ == 0 and int(case["phase"]) == PHASE_TALLIED and same(on_chain[0], rt.address):
        sent += release_reserve(rt, job_id, case, rec)
    if job_id not in advanced and int(case["phase"]) in (PHASE_ACTIVE, PHASE_TALLIED, PHASE_ARBITER):
        advanced.add(job_id)
        try:
            receipt = client.send(court.advance(job_id))
        except TxReverted as exc:
            if exc.error_name not in ("NothingDue", "NotDrawn", "CaseClosed"):
                log.info("advance not sent", extra={"job": job_id, "error": exc.error_name})
        else:
            log.info("court advanced", extra={"job": job_id, "tx": receipt.tx_hash})
            sent += 1
    return sent


def committed_behind(rt: Runtime, job_id: int, round_: int, seat: int, rec: dict[str, str]) -> bool:
    """Whether the seat's record was behind the chain and is now ``committed``: a record that says
    ``taking``, ``seated``, ``running`` or ``computed`` while the seat is committed (or revealed) by
    us on chain and the journal holds its entry (the one its commitment was made from). Redis
    restored from an older snapshot leaves such a record: it is not :func:`reclaimable`, so
    :func:`consider` does not adopt it, and :func:`follow_seat` revealed only from ``committed``: it
    waited two looks a lease TTL apart and queued a re-run on the compute queue, whose slots may all
    be busy, and the reveal window passed, the bond lost to a no-show (found by review, stop 56). The
    record is set as :func:`adopt` sets a seat committed on chain, and the same pass reveals it. The
    chain is read only for a seat whose journal entry exists (none: nothing committed by us to catch
    up with)."""
    if rec.get("state") not in ("taking", "seated", "running", "computed") or journal(rt).load(job_id, round_, seat) is None:
        return False
    on_chain = seat_state(rt, job_id, round_, seat)
    if on_chain < SEAT_COMMITTED:
        return False
    set_seat(rt, job_id, round_, seat, "committed", reason=f"committed on chain after '{rec.get('state')}': adopted", final="")
    log.warning("seat committed on chain while its record was behind: adopted", extra={
        "job": job_id, "round": round_, "seat": seat, "was": rec.get("state"), "on_chain": on_chain})
    return True


def release_reserve(rt: Runtime, job_id: int, case: dict[str, Any], rec: dict[str, str]) -> int:
    """Our agreeing audit (round 0, Tallied ProviderRight, unchallenged) waits for the job's
    challenge deadline: once its canary window is over (the case's ``canaryEnd``) its canary reserve
    (sigma R - the bond) goes back to our free stake (``releaseReserve``), so that self-dealt jobs
    with long challenge windows cannot keep our sigma R locked (only the bond stays until the
    conclusion). One transaction per seat (the record's ``reserve``); ``NothingDue`` (somebody
    released it first, a challenge came meanwhile, or nothing to release) ends it all the same."""
    if rec.get("reserve") or int(case["round"]) != 0 or OUTCOMES[int(case["tally"])] != "ProviderRight":
        return 0
    if int(str(case["challenger"]), 16) != 0 or rt.chain_now() <= int(case["canaryEnd"]):
        return 0
    try:
        receipt = rt.client.send(rt.client.court_of(job_id).release_reserve(job_id))
    except TxReverted as exc:
        if exc.error_name != "NothingDue":
            raise
        set_seat(rt, job_id, 0, 0, reserve="nothing due")
        return 0
    set_seat(rt, job_id, 0, 0, reserve="released", reserve_tx=receipt.tx_hash)
    log.info("canary reserve released", extra={"job": job_id, "tx": receipt.tx_hash})
    return 1


def done(rt: Runtime, job_id: int, round_: int, seat: int, case: dict[str, Any], on_chain: Any) -> None:
    """The seat's case is over (or the seat left our hands): the record says how it ended."""
    outcome = OUTCOMES[int(case["outcome"])] if int(case["phase"]) == PHASE_CONCLUDED else ""
    slashed = bool(outcome == "Canary" and same(on_chain[0], rt.address) and int(on_chain[1]) == SEAT_SETTLED and rt.state.hget(
        rt.xkeys.seat(job_id, round_, seat), "digest") == "0x" + bytes(case["providerDigest"]).hex())
    set_seat(rt, job_id, round_, seat, "done", outcome=outcome or "left our hands", slashed=int(slashed))
    log.info("seat done", extra={"job": job_id, "round": round_, "seat": seat, "outcome": outcome})
    drop_input_cache(rt, job_id)


# ---------------------------------------------------------------------------------------- status


def summary(rt: Runtime, limit: int = 50) -> list[dict[str, str]]:
    """The verifier's seat records, newest first (for ``depin executor status``)."""
    rows = [rt.state.hgetall(k) for k in rt.state.scan_iter(match=rt.xkeys.seat_pattern, count=500)]
    rows.sort(key=lambda r: float(r.get("updated") or 0), reverse=True)  # type: ignore[union-attr]
    return rows[:limit]  # type: ignore[return-value]
