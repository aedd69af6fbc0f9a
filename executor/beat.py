"""The beat's periodic work (``depin executor beat`` queues it every ``BEAT_INTERVAL`` seconds, see
:mod:`executor.celery`): read each submitted job's draw as soon as it is readable and finalize jobs
past their challenge window, send the deadline transitions that are due, follow our jobs under
verification (every Disputed job of ours the index shows, and the drawn ones: reveal, advance),
withdraw earnings, and recover jobs whose task died (re-queue it, adopt claims the chain shows
without a local record, remove orphan containers), and keep the anchor block randomness of our
submitted jobs before the EVM forgets it (:func:`record_anchors`: a block hash recorded, or a
header proved).

Plain functions over a :class:`~executor.runtime.Runtime`; :mod:`executor.tasks` wraps them.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from depin.client import BPS
from depin.config import env_int, env_number
from depin.deployment import to_wei
from depin.market import JobStatus
from depin.transactions import TxReverted
from executor import anchors, queue, verification, verifier
from executor.containers import LABEL_LEASE, reap_orphans
from executor.execution import mark_submitted, same
from executor.lease import IDLE_MARK
from executor.lease import idle_confirmed as lease_idle_confirmed
from executor.provider import reopen_if_undone
from executor.runtime import Runtime

log = logging.getLogger("executor.tasks")

RECOVER_AFTER = env_number("DEPIN_RECOVER_AFTER", 30, above=True)  # seconds without progress
FORCED_RECOVER_AFTER = 2.0  # at worker start: anything idle this long whose lease is free
MAX_RECOVERIES = env_int("DEPIN_MAX_RECOVERIES", 5)  # then each recovery logs an error
POKE_LIMIT = 10  # deadline transitions sent per beat and kind
FINALIZE_LIMIT = 100  # jobs finalized per beat from our own records
FINALIZE_INDEX_LIMIT = 200  # and from the index (earliest challenge deadline first)
RECHECK_LIMIT = 100  # submitted jobs compared with the index per beat (oldest challenge deadline first)
DRAW_CHECK_LIMIT = 50  # isDrawn reads per beat for jobs whose anchor randomness is readable (check_draws)

# Anchor block hashes (record_anchors). The draw of a submitted job reads blockhash(anchor), which the
# EVM keeps for BLOCKHASH_WINDOW blocks only; once it is gone and nobody called
# BlockhashRandomness.record(anchor), the job counts as drawn (expired randomness = drawn). A challenge
# window longer than that (testnets: 3600 s = 300 blocks of 12 s) would send every job to audit.
BLOCKHASH_WINDOW = anchors.BLOCKHASH_WINDOW  # blocks after which blockhash(n) reads zero (EVM)
RECORD_ANCHOR_AFTER = 64  # blocks: an anchor this old whose job is still Submitted is recorded (a job
#   finalized or taken to the court sooner never needs it; 64 blocks = 13 min at 12 s, 64 s on devnet)
RECORD_ANCHOR_UNTIL = BLOCKHASH_WINDOW - 16  # blocks: the last age tried (the transaction must be
#   mined while the hash is readable: 16 blocks to get in); the beat normally records by age ~65
RECORD_ANCHOR_LIMIT = 10  # record transactions per beat (each anchor once; jobs sharing it count once)
# HeaderRandomness (randomness = "header"): the draw reads the anchor block's prevrandao, which only
# a proof of the block's header (HeaderRandomness.prove) makes readable, and only while
# blockhash(anchor) is available. Nothing can read the draw before (isDrawn says "not ready", the
# job cannot be finalized), so the anchor is proved as soon as it is mined (age >= 1), up to
# RECORD_ANCHOR_UNTIL like a record.
PROVE_ANCHOR_AFTER = anchors.PROVE_ANCHOR_AFTER
ANCHOR_SOURCES = ("blockhash", "header")  # the randomness sources whose anchors expire
ANCHOR_SCAN_LIMIT = 2_000  # submitted jobs looked at per beat, latest challenge deadline first


# ---------------------------------------------------------------------------------------- finalize


def finalize_due_jobs(rt: Runtime) -> int:
    """Reads the draw of our submitted jobs as soon as it is readable (:func:`check_draws`), then
    finalizes those whose challenge window has closed and that the draw did not pick for audit
    (``market.isDrawn``, asked once per job: the answer is kept in its record). A drawn job (or one
    whose draw cannot be read any more) is never sent to ``finalize`` again: it moves to the court's
    side (:func:`executor.verification.watch`). A job ``finalizeMany`` left Submitted has its kept
    answer forgotten (a reorg may have changed its anchor block): the next beat asks again."""
    now = rt.chain_now()
    check_draws(rt)
    ids = {int(j) for j in rt.state.zrangebyscore(rt.xkeys.submitted, 0, now - 1, start=0, num=FINALIZE_LIMIT)}
    # The index too, so that no local record is needed to get paid (one lost to a crash, a wiped
    # broker database).
    ids |= set(rt.reader.due_jobs("Submitted", now, provider=rt.address, limit=FINALIZE_INDEX_LIMIT))
    ids -= verification.watched(rt)
    if not ids:
        return 0
    ready = []
    for job_id in sorted(ids):
        job = rt.job(job_id)
        if job.status == JobStatus.SUBMITTED and now > job.deadline:
            # p_job 0 (verify none): never drawn, no randomness to wait for (isDrawn says false
            # at once; the job record already tells, without a call)
            anchor = int(getattr(job, "anchor_block", 0) or 0)
            if getattr(job, "audit_bps", None) == 0 or known_undrawn(rt, job_id, anchor) or draw_state(rt, job_id, anchor) == "undrawn":
                ready.append(job_id)
        elif job.status == JobStatus.DISPUTED:
            verification.watch(rt, job_id, "the court is verifying it (drawn or challenged)")
        elif job.status != JobStatus.SUBMITTED:
            settled(rt, job_id, job.status)
    if not ready:
        return 0
    try:
        receipt = rt.client.finalize_many(ready)
    except TxReverted as exc:
        log.info("finalize skipped", extra={"jobs": ",".join(map(str, ready)), "error": exc.error_name})
        return 0
    count = rt.client.finalized_count(receipt)
    for job_id in ready:
        status = rt.job(job_id).status
        if status == JobStatus.SUBMITTED:  # skipped by finalizeMany (drawn after all?): ask again
            rt.state.hdel(rt.xkeys.job(job_id), verification.DRAW_FIELD)
        settled(rt, job_id, status)
    log.info("finalized", extra={"jobs": ",".join(map(str, ready)), "count": count, "tx": receipt.tx_hash})
    return count


def draw_state(rt: Runtime, job_id: int, anchor: int = 0) -> str:
    """``"undrawn"`` (finalize it), ``"wait"`` (its anchor block's randomness is not readable yet) or
    ``"drawn"``: drawn for audit, or ``isDrawn`` reverted for another reason (treated as drawn: the
    job is handed to :mod:`executor.verification`, never retried here in a loop). An undrawn job's
    answer is kept in its record with its `anchor` block (:func:`known_undrawn`)."""
    try:
        drawn = rt.client.read(rt.client.contracts.job_market.is_drawn(job_id))
    except TxReverted as exc:
        if exc.error_name == "RandomnessNotReady":
            return "wait"
        verification.watch(rt, job_id, f"isDrawn reverted ({exc.error_name}): treated as drawn")
        return "drawn"
    if drawn:
        verification.watch(rt, job_id, "drawn for audit")
        return "drawn"
    if anchor and rt.state.exists(rt.xkeys.job(job_id)):
        rt.state.hset(rt.xkeys.job(job_id), verification.DRAW_FIELD, f"undrawn@{anchor}")
    return "undrawn"


def known_undrawn(rt: Runtime, job_id: int, anchor: int) -> bool:
    """Whether the job's record keeps ``isDrawn`` = false for its current `anchor` block."""
    return bool(anchor) and rt.state.hget(rt.xkeys.job(job_id), verification.DRAW_FIELD) == f"undrawn@{anchor}"


def check_draws(rt: Runtime) -> int:
    """Reads the draw (``isDrawn``) of each of our submitted jobs once its anchor block's
    randomness is readable (the index's ``anchorBlock`` below the chain head), not at its challenge
    deadline: a drawn job's case opens (``startAudit``) before its seat deadline, minutes after the
    submission, and its reveal deadline follows from then, while the challenge window may be days
    long. A drawn job is watched at once (:func:`executor.verification.watch`); an undrawn one's
    answer is kept in its record, so ``isDrawn`` is asked once per job and anchor, here or at the
    deadline. At most :data:`DRAW_CHECK_LIMIT` reads per beat, earliest challenge deadline first.
    Jobs without a local record (a wiped database) are found by the finalize pass at their deadline
    and, once a case opens, by :func:`watch_disputed`. Cheap when there is nothing to ask: one Redis
    and one index round trip, and one ``eth_blockNumber`` only when a job waits for its answer.
    Returns the number of ``isDrawn`` reads."""
    ids = cast(list[str], rt.state.zrange(rt.xkeys.submitted, 0, ANCHOR_SCAN_LIMIT - 1))
    if not ids:
        return 0
    pipe = rt.state.pipeline(transaction=False)
    for j in ids:
        pipe.hget(rt.xkeys.job(int(j)), verification.DRAW_FIELD)
    kept = pipe.execute()
    head: int | None = None
    asked = 0
    for j, fields, draw in zip(ids, rt.reader.jobs_fields(ids, ["status", "anchorBlock", "auditBps"]), kept, strict=True):
        anchor = int(fields.get("anchorBlock") or 0)
        if fields.get("status") != "Submitted" or anchor <= 0 or draw == f"undrawn@{anchor}":
            continue
        if fields.get("auditBps") == "0":  # verify none: never drawn, no randomness to read
            rt.state.hset(rt.xkeys.job(int(j)), verification.DRAW_FIELD, f"undrawn@{anchor}")
            continue
        head = rt.client.block_number() if head is None else head
        if head <= anchor:
            continue  # its randomness is not readable yet
        if asked >= DRAW_CHECK_LIMIT:
            break
        asked += 1
        draw_state(rt, int(j), anchor)
    return asked


def watch_disputed(rt: Runtime) -> int:
    """Watches every job of ours the index shows Disputed and that is not watched yet: a case
    opened before its challenge deadline (an early ``startAudit``, a requester's ``challenge``), or
    the set under verification was lost with the executor's database. Redis reads only (the
    index's Disputed jobs crossed with ours); returns the number of jobs newly watched."""
    found = rt.reader.held_by(rt.address, "Disputed") - verification.watched(rt)
    for job_id in sorted(found):
        verification.watch(rt, job_id, "the index shows it Disputed: the court is verifying it")
    return len(found)


def follow_verifications(rt: Runtime) -> int:
    """Reveals and advances our jobs under verification (:mod:`executor.verification`), every
    Disputed job of ours in the index among them (:func:`watch_disputed`)."""
    watch_disputed(rt)
    return verification.follow_verifications(rt)


def settled(rt: Runtime, job_id: int, status: JobStatus) -> None:
    """A job no longer Submitted leaves the set to finalize; our record says how it ended."""
    if status == JobStatus.SUBMITTED:
        return
    rt.state.zrem(rt.xkeys.submitted, str(job_id))
    if rt.state.exists(rt.xkeys.job(job_id)) and rt.record(job_id).get("state") == "submitted":
        rt.set_record(job_id, "finalized" if status.settled else "submitted", chain_status=status.label)


# ---------------------------------------------------------------------------------------- poke


def poke_deadlines(rt: Runtime) -> int:
    """Sends the permissionless deadline transitions that are due: expire (Open past its claim
    deadline), timeout (Claimed past its submit deadline). (Verification deadlines are the court's:
    :mod:`executor.verification` advances our own cases.) Losing the race to another poker is quiet."""
    now = rt.chain_now()
    sent = 0
    actions = (
        ("Open", JobStatus.OPEN, "claim_deadline", rt.client.expire),
        ("Claimed", JobStatus.CLAIMED, "deadline", rt.client.timeout),
    )
    for status, expected, attr, action in actions:
        for job_id in rt.reader.due_jobs(status, now, limit=POKE_LIMIT):
            job = rt.job(job_id)
            if job.status != expected or getattr(job, attr) >= now:
                continue
            try:
                receipt = action(job_id)
                sent += 1
                log.info("deadline transition sent", extra={"job": job_id, "from": status, "tx": receipt.tx_hash})
            except TxReverted as exc:
                log.info("deadline transition not needed", extra={"job": job_id, "from": status, "error": exc.error_name})
    return sent


# ---------------------------------------------------------------------------------------- withdraw


def withdraw_earnings(rt: Runtime) -> int:
    """Withdraws the market balance when it is above ``[executor] withdraw_threshold``."""
    balance = rt.client.withdrawable(rt.address)
    if balance <= 0 or balance <= to_wei(rt.config.executor.withdraw_threshold):
        return 0
    try:
        receipt = rt.client.withdraw()
    except TxReverted as exc:
        log.info("withdraw not needed", extra={"error": exc.error_name})
        return 0
    log.info("withdrawn", extra={"amount": str(balance), "tx": receipt.tx_hash})
    return balance


# ---------------------------------------------------------------------------------------- recover


def recover_jobs(rt: Runtime, force: bool = False) -> int:
    """Re-queues the next task of every job in hand whose lease is free and whose record has not
    moved for ``DEPIN_RECOVER_AFTER`` seconds (or, with `force` at worker start, for 2 s), as seen
    twice at least a lease TTL apart (:func:`idle_confirmed`); removes this executor's orphan
    containers. A task alive holds its lease and its renewals keep the record's ``updated`` fresh
    (:meth:`executor.runtime.Runtime.lease`)."""
    now = time.time()
    requeued = 0
    active = [int(j) for j in rt.state.zrange(rt.xkeys.active, 0, -1)]
    for job_id in active:
        if rt.state.exists(rt.xkeys.lease(job_id)):
            continue
        rec = rt.record(job_id)
        state = rec.get("state", "")
        if state not in queue.NEXT_TASK:
            rt.state.zrem(rt.xkeys.active, str(job_id))
            continue
        updated = float(rec.get("updated") or 0)
        if updated > now + RECOVER_AFTER:
            # written "in the future": this machine's clock went back (or the writer's runs ahead).
            # Idle from now on, rather than never idle until the clock catches up.
            rt.set_record(job_id)
            continue
        idle = now - updated
        if idle < (FORCED_RECOVER_AFTER if force else RECOVER_AFTER):
            continue
        if not idle_confirmed(rt, job_id, rec, now):
            continue
        # No cap here: a job that merely waits in a long queue looks idle too, and a duplicate
        # message is harmless (lease + state + chain checks). Deliveries that *die* are capped by
        # the delivery counter; jobs that keep failing end when their chain deadline passes (late).
        tries = int(rt.state.hincrby(rt.xkeys.job(job_id), "recoveries", 1))
        rt.state.hdel(rt.xkeys.job(job_id), IDLE_MARK)
        rt.set_record(job_id)  # touch: not again before RECOVER_AFTER
        queue.send(queue.NEXT_TASK[state], job_id)
        requeued += 1
        level = logging.ERROR if tries > MAX_RECOVERIES else logging.WARNING
        log.log(level, "job recovered", extra={"job": job_id, "state": state, "task": queue.NEXT_TASK[state], "attempt": tries})
    if "provider" in rt.roles:
        adopt_orphaned_claims(rt)  # recorded only: the next passes' two looks queue their runs
        adopt_orphaned_submissions(rt)
        requeued += recheck_submitted(rt)
    reap(rt, active)
    if "provider" in rt.roles:
        record_anchors(rt)
    return requeued


def idle_confirmed(rt: Runtime, job_id: int, rec: dict[str, str], now: float) -> bool:
    """Whether the idle job (lease free, record not moved) was found so at least a lease TTL ago
    with the same ``updated`` (:func:`executor.lease.idle_confirmed`, the rule the verifier's seats
    follow too); else it is marked and left for the next look."""
    return lease_idle_confirmed(rt.state, rt.xkeys.job(job_id), rec, now, rt.lease_ttl)


def recheck_submitted(rt: Runtime) -> int:
    """Our submitted jobs whose indexed status says a reorg undid the submission (Open again, or
    Claimed by us again): confirmed on the chain and handed back (:func:`reopen_if_undone`). Bounded:
    one Redis round trip for up to :data:`RECHECK_LIMIT` jobs, a chain read only for a mismatch."""
    ids = rt.state.zrange(rt.xkeys.submitted, 0, RECHECK_LIMIT - 1)
    if not ids:
        return 0
    handed_back = 0
    for j, fields in zip(ids, rt.reader.jobs_fields(ids, ["status", "provider"]), strict=True):
        status = fields.get("status")
        if status == "Open" or (status == "Claimed" and same(fields.get("provider"), rt.address)):
            handed_back += reopen_if_undone(rt, int(j)) is not None
    return handed_back


# Record states that say a job is not in our hands, which the chain can contradict: the dispatcher
# passed it over (skipped) or our claim was lost. A database restored from an older snapshot holds
# them for jobs claimed since (found by review, stop 56); any other state is a job we know of.
ORPHAN_STATES = ("", "lost", "skipped")


def _orphans(rt: Runtime, status: str) -> list[int]:
    """Our jobs the index shows in `status` whose local record is missing or in :data:`ORPHAN_STATES`."""
    ids = sorted(rt.reader.held_by(rt.address, status))
    pipe = rt.state.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(rt.xkeys.job(job_id), "state")
    return [j for j, state in zip(ids, pipe.execute(), strict=True) if (state or "") in ORPHAN_STATES]


def adopt_orphaned_claims(rt: Runtime) -> int:
    """Jobs the chain (through the index) shows Claimed by us but that have no local record (the
    executor's database was lost or wiped), or one that says we do not hold them (``lost`` or
    ``skipped``: a database restored from an older snapshot). They are ours to finish, or our
    collateral goes when they time out: recorded as claimed, idle at once (``updated`` 0), and left
    to recovery's two looks (:func:`recover_jobs`), which queue the run a lease TTL later unless a
    live task holds the job: a wiped database does not end a running task, which takes its lease
    back and, now that the record exists again, keeps it fresh. A run queued at once could take the
    lease before that task does and remove its live container. A run finds an outcome journaled
    before the loss and submits it (:func:`executor.provider.journaled_outcome`)."""
    adopted = 0
    for job_id in _orphans(rt, "Claimed"):
        job = rt.job(job_id)
        if job.status != JobStatus.CLAIMED or not same(job.provider, rt.address):
            continue
        rt.set_record(job_id, "claimed", reason="found claimed on chain without a local record that says so")
        rt.state.hset(rt.xkeys.job(job_id), "updated", "0")
        adopted += 1
        log.warning("claimed job adopted from the chain", extra={"job": job_id})
    return adopted


def adopt_orphaned_submissions(rt: Runtime) -> int:
    """Jobs the index shows Submitted by us whose local record is missing or says we do not hold
    them (:func:`adopt_orphaned_claims`' states): recorded submitted with the chain's challenge
    deadline, so that they are in the set of jobs to finalize and their anchor hashes get recorded
    (:func:`record_anchors`: without that, a job whose window outlasts the block hash window counts
    as drawn and waits for a whole audit; found by review, stop 56). Each is read on the chain
    first; at most :data:`RECHECK_LIMIT` per pass."""
    adopted = 0
    for job_id in _orphans(rt, "Submitted")[:RECHECK_LIMIT]:
        job = rt.job(job_id)
        if job.status != JobStatus.SUBMITTED or not same(job.provider, rt.address):
            continue
        mark_submitted(rt, job_id, job.deadline, reason="found submitted on chain without a local record that says so")
        adopted += 1
        log.warning("submitted job adopted from the chain", extra={"job": job_id})
    return adopted


def reap(rt: Runtime, active: list[int]) -> list[str]:
    """Removes this executor's containers whose run is over (best effort); returns their names.

    A container is left alone while its job (`active`) or seat (:func:`executor.verifier.live_containers`)
    is in hand, or while the lease its run holds (the container's ``depin.lease`` label) is held.
    Any other one is removed only when two looks at least a lease TTL apart find it so (the first
    look is kept in ``{e}:orphans``, container id -> time). One look is not enough: a Redis stall
    longer than the lease TTL, or a wiped database (FLUSHDB, a restart without persistence), takes
    the records, the sets in hand and the lease keys of runs that are still live. Such a run takes
    its lease back within a third of the TTL (:mod:`executor.lease`), so the second look sees it
    held; removing its container instead had the job restarted or missed (a provider slashed, a
    verifier's bond lost)."""
    try:
        removed = reap_containers(rt, active)
    except Exception as exc:  # noqa: BLE001 - the reaper is best effort; the next beat tries again
        log.info("reaper skipped", extra={"error": str(exc)[:200]})
        return []
    if removed:
        log.warning("orphan containers removed", extra={"containers": ",".join(removed)})
    return removed


def reap_containers(rt: Runtime, active: list[int]) -> list[str]:
    """One look of the reaper (:func:`reap`, which this is without its error handling); the names
    of the containers removed."""
    live = {rt.container_name(j) for j in active} | verifier.live_containers(rt)
    now = time.time()
    marks = cast(dict[str, str], rt.state.hgetall(rt.xkeys.orphans))
    looked: set[str] = set()

    def confirm(container_id: str, name: str, labels: dict[str, str]) -> bool:
        looked.add(container_id)
        return orphaned(rt, container_id, name, labels, marks.get(container_id), now)

    removed = reap_orphans(rt.docker, live, instance=rt.instance, confirm=confirm)
    if stale := set(marks) - looked:  # containers gone, or in hand again: a later orphan starts over
        rt.state.hdel(rt.xkeys.orphans, *stale)
    return removed


def orphaned(rt: Runtime, container_id: str, name: str, labels: dict[str, str], mark: str | None, now: float) -> bool:
    """The reaper's look at one container that is not in hand (:func:`reap`): True when its run's
    lease is free now and was found free by a look at least a lease TTL ago (`mark`: that look's
    time); otherwise the look is recorded (or a live run's mark dropped) and False returned."""
    key = rt.xkeys.orphans
    lease = labels.get(LABEL_LEASE)
    if lease and rt.state.exists(lease):  # its run is live
        if mark is not None:
            rt.state.hdel(key, container_id)
        return False
    first = float(mark or "nan")
    if 0 <= now - first:  # (a mark "in the future", the clock went back, or none: this is the first look)
        if now - first < rt.lease_ttl:
            return False
        rt.state.hdel(key, container_id)
        return True
    rt.state.hset(key, container_id, f"{now:.3f}")
    log.info("container without a live run; removed if a look a lease TTL later finds it so", extra={"container": name})
    return False


# ---------------------------------------------------------------------------------------- anchors


def record_anchors(rt: Runtime) -> int:
    """Records (``BlockhashRandomness.record``) the anchor block hash of each of our submitted jobs
    whose draw the block hash decides (0 < p_job < 100 %), still Submitted once its anchor is
    :data:`RECORD_ANCHOR_AFTER` blocks old and at most :data:`RECORD_ANCHOR_UNTIL`: without it the
    market counts the job as drawn once the hash is gone, and the job waits for a whole audit.
    With ``HeaderRandomness`` (deployment parameter ``randomness = "header"``) it proves the anchor
    block's header instead (``HeaderRandomness.prove``, the header fetched and checked against the
    node's block hash by :func:`depin.chain.header.block_header`) from :data:`PROVE_ANCHOR_AFTER`
    block old: before that proof nobody can read the draw.
    Each anchor once (jobs submitted in one block share it), confirmed on the chain first (a job
    still Submitted with that anchor, the hash not recorded yet). Idempotent across crashes: the
    transaction's hashes are in ``{e}:anchors`` (:attr:`depin.keys.ExecKeys.anchors`; entries older than the block hash window trimmed) before it is broadcast, and one still known to
    the node is waited for instead of sent again; a record somebody else sent first, or one that
    reverts, is done. Cheap when there is nothing to do: one Redis read without submitted jobs,
    one index read and one ``eth_blockNumber`` without an anchor in range. Returns the number of
    record transactions mined."""
    ids = cast(list[str], rt.state.zrevrange(rt.xkeys.submitted, 0, ANCHOR_SCAN_LIMIT - 1))
    # A drawn job is watched (moved to the set under verification) as soon as its draw is read, and
    # stays Submitted until an auditor opens its case: its anchor's hash is still what the court
    # draws that auditor from.
    ids += [str(j) for j in sorted(verification.watched(rt))[:ANCHOR_SCAN_LIMIT]]
    source = rt.deployment.parameters.get("randomness", "blockhash")
    if not ids or source not in ANCHOR_SOURCES:
        return 0  # MockRandomness (tests, simulations) never expires
    jobs: dict[int, list[int]] = {}  # anchor -> our jobs the index shows Submitted with it
    for j, fields in zip(ids, rt.reader.jobs_fields(ids, ["status", "anchorBlock", "auditBps"]), strict=True):
        if fields.get("status") == "Submitted" and 0 < int(fields.get("auditBps") or 0) < BPS and int(fields.get("anchorBlock") or 0) > 0:
            jobs.setdefault(int(fields["anchorBlock"]), []).append(int(j))
    if not jobs:
        return 0
    head = rt.client.block_number()
    after = PROVE_ANCHOR_AFTER if source == "header" else RECORD_ANCHOR_AFTER
    due = sorted(a for a in jobs if after <= head - a <= RECORD_ANCHOR_UNTIL)
    if not due:
        return 0
    key = rt.xkeys.anchors
    marks = cast(dict[str, str], rt.state.hgetall(key))
    stale = [a for a in marks if int(a) < head - BLOCKHASH_WINDOW]
    if stale:
        rt.state.hdel(key, *stale)
    sent = 0
    for anchor in due:
        mark = marks.get(str(anchor), "")
        if mark == anchors.DONE:
            continue
        if sent >= RECORD_ANCHOR_LIMIT:
            break
        pending = mark.removeprefix("pending:").split(",") if mark else []
        sent += prove_anchor(rt, anchor, jobs[anchor], pending) if source == "header" else record_anchor(rt, anchor, jobs[anchor], pending)
    return sent


def record_anchor(rt: Runtime, anchor: int, job_ids: list[int], pending: list[str]) -> int:
    """One anchor of :func:`record_anchors`: 1 when our record transaction was mined, else 0
    (:func:`executor.anchors.send_anchor_tx`; a record that reverts, RandomnessExpired, is done:
    the jobs count as drawn and the court settles them)."""
    return anchors.send_anchor_tx(rt, anchor, pending, lambda: [j for j in job_ids if _draw_needs(rt.job(j), anchor)],
                                  done=anchor_recorded, build_call=lambda: rt.client.contracts.blockhash_randomness.record(anchor),
                                  retry_reverts={}, what=anchors.RECORD)


def anchor_recorded(rt: Runtime, anchor: int) -> bool:
    """Whether ``BlockhashRandomness.recorded(anchor)`` holds the hash already."""
    return bytes(rt.client.read(rt.client.contracts.blockhash_randomness.recorded(anchor))) != bytes(32)


def prove_anchor(rt: Runtime, anchor: int, job_ids: list[int], pending: list[str]) -> int:
    """One anchor of :func:`record_anchors` with ``HeaderRandomness``: 1 when our proof of block
    `anchor`'s header was mined, else 0 (:func:`executor.anchors.prove`)."""
    return anchors.prove(rt, anchor, pending, lambda: [j for j in job_ids if _draw_needs(rt.job(j), anchor)])


def _draw_needs(job: Any, anchor: int) -> bool:
    """Whether the on-chain `job` still waits for a draw from block `anchor`'s hash."""
    return job.status == JobStatus.SUBMITTED and job.anchor_block == anchor and 0 < job.audit_bps < BPS
