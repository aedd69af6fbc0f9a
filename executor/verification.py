"""The provider's side of the verification protocol (issue 11): a submitted job either finalizes
after its challenge window (not drawn) or is verified by the court (drawn for audit, or
challenged). The court's case can open long before the challenge deadline (the drawn auditor's
``startAudit`` before its seat deadline, a few minutes after the submission; a requester's
``challenge`` at any time in the window) and its reveal deadline follows from then, not from the
challenge deadline. So a job is watched (:func:`watch`, the set of jobs under verification) as
soon as any of these shows it: the dispatcher's ``VerificationStarted`` (the case opened), the
beat's draw check once the anchor block's randomness is readable (:func:`executor.beat.check_draws`),
every follow pass's look at the index's Disputed jobs of ours
(:func:`executor.beat.watch_disputed`, which also rebuilds a lost set), and the finalize pass at the
challenge deadline. :func:`follow_verifications` walks that set every ``FOLLOW_INTERVAL`` seconds:

- **reveal**: when the court's case for the job has commitments from its seats and its reveal phase
  is open, the provider reveals ``revealProvider(jobId, digest, salt)`` from the submission journal
  (:class:`executor.results.SubmissionJournal`; the salt was written there before the commitment
  was sent). An honest provider is never slashed for not revealing: the reveal is retried every
  pass until the chain shows it (``providerRevealed``) or the reveal deadline passes.
- **advance**: the court's permissionless ``advance`` (redraws of no-shows, the conclusion after a
  canary/appeal window, ``Unaudited`` when nobody takes the audit) is sent when it is due (its
  gas estimate does not revert ``NothingDue``): the provider is the party waiting for its pay.
- **done**: once the market shows the job settled (Finalized, or Resolved by the court) the job
  leaves the set and its record says how it ended.
- **wait**: a drawn job still Submitted (no case yet: opening one makes it Disputed) before its
  challenge deadline is left alone, and costs no chain read while the index agrees; after the
  deadline ``advance`` opens its case (redraws, ``Unaudited``). One whose ``advance`` reverts
  ``NotDrawn`` (a reorg changed its draw) goes back to the set to finalize.

Crash safety: every step reads the chain (the job's status, the court's case) before it acts, keyed
by job id; the reveal and ``advance`` are idempotent on chain (a second reveal reverts
``AlreadyRevealed`` at the gas estimate, before anything is sent). The set lives in the executor's
Redis state; a lost set (a wiped database) is rebuilt from the index: its Disputed jobs of ours on
every pass, its Submitted ones at their challenge deadline; the salt is in the on-disk journal.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from depin.contracts import VerificationCourt
from depin.market import JobStatus
from depin.transactions import TxReverted
from executor import metrics
from executor.execution import same
from executor.runtime import Runtime

log = logging.getLogger("executor.tasks")

FOLLOW_LIMIT = 200  # jobs under verification read on chain per pass (the index says which need it)

# IVerificationCourt.Phase and the CaseView fields the provider reads (positions in the struct)
PHASE_NONE, PHASE_ACTIVE, PHASE_TALLIED, PHASE_ARBITER, PHASE_CONCLUDED = range(5)
_PHASE, _PROVIDER_REVEALED, _PROVIDER, _REVEAL_DEADLINE, _COMMITTED = 0, 6, 7, 18, 21


# The job record's field that keeps the draw's answer once read (executor.beat.check_draws):
# "undrawn@<anchor block>"; isDrawn is not asked again for that anchor.
DRAW_FIELD = "draw"


def verifying_key(rt: Runtime) -> str:
    """The sorted set of our jobs under verification (score: when we started watching)."""
    return f"{rt.xkeys.prefix}:verifying"


def watch(rt: Runtime, job_id: int, reason: str) -> None:
    """Moves a submitted job of ours from the set to finalize to the set under verification (no
    chain read: the dispatcher calls it too)."""
    pipe = rt.state.pipeline(transaction=True)
    pipe.zrem(rt.xkeys.submitted, str(job_id))
    pipe.zadd(verifying_key(rt), {str(job_id): time.time()}, nx=True)
    pipe.execute()
    if rt.state.exists(rt.xkeys.job(job_id)):
        rt.set_record(job_id, "verifying_court", reason=reason)
    log.info("job under verification; following the court", extra={"job": job_id, "reason": reason})


def watched(rt: Runtime) -> set[int]:
    members: list[str] = rt.state.zrange(verifying_key(rt), 0, -1)  # type: ignore[assignment]
    return {int(j) for j in members}


def follow_verifications(rt: Runtime) -> int:
    """One pass over our jobs under verification (see the module doc). Returns the number of
    transactions sent. The index says which jobs need a chain read: one it shows Submitted before
    its challenge deadline (drawn, no case yet) is skipped; the Disputed ones come first. At most
    :data:`FOLLOW_LIMIT` jobs are read on chain per pass."""
    ids = sorted(watched(rt))
    if not ids:
        return 0
    fields = rt.reader.jobs_fields(ids, ["status", "deadline"])
    now: int | None = None
    disputed: list[int] = []
    others: list[int] = []
    for job_id, f in zip(ids, fields, strict=True):
        if f.get("status") == "Submitted" and f.get("deadline"):
            now = rt.chain_now() if now is None else now
            if now <= int(f["deadline"]):
                continue  # waits for its case (or its challenge deadline): nothing to read on chain
        (disputed if f.get("status") == "Disputed" else others).append(job_id)
    sent = 0
    for job_id in (disputed + others)[:FOLLOW_LIMIT]:
        try:
            sent += follow(rt, job_id)
        except TxReverted as exc:
            log.info("verification step not taken", extra={"job": job_id, "error": exc.error_name})
    return sent


def follow(rt: Runtime, job_id: int) -> int:
    """Reveals, advances or closes one job under verification; the number of transactions sent."""
    job = rt.job(job_id)
    if job.status not in (JobStatus.SUBMITTED, JobStatus.DISPUTED):
        done(rt, job_id, job.status)
        return 0
    if job.status == JobStatus.SUBMITTED and rt.chain_now() <= job.deadline:
        return 0  # drawn, no case yet (a case makes it Disputed): its auditor has until the seat deadline
    court = rt.client.court_of(job_id)  # the court snapshotted for the job at post
    case = rt.client.read(court.get_case(job_id))
    phase = int(case[_PHASE])
    if phase == PHASE_ACTIVE and not case[_PROVIDER_REVEALED] and same(case[_PROVIDER], rt.address) and int(case[_COMMITTED]) > 0:
        if rt.chain_now() <= int(case[_REVEAL_DEADLINE]):
            return reveal(rt, job_id, court)
        return 0  # too late (we could not reveal in time): nothing of ours to send any more
    if phase == PHASE_CONCLUDED:
        return 0  # the market's settle follows in the same transaction: the next pass closes it
    try:
        receipt = rt.client.send(court.advance(job_id))
    except TxReverted as exc:
        if exc.error_name == "NotDrawn" and job.status == JobStatus.SUBMITTED:
            undrawn(rt, job_id, job.deadline)
        elif exc.error_name not in ("NothingDue", "NotDrawn", "CaseClosed"):
            log.info("advance not sent", extra={"job": job_id, "error": exc.error_name})
        return 0
    metrics.count(rt, "court_actions", action="advance")
    log.info("court advanced", extra={"job": job_id, "tx": receipt.tx_hash})
    return 1


def reveal(rt: Runtime, job_id: int, court: VerificationCourt) -> int:
    """Sends ``revealProvider`` from the journal. Nothing is sent while the reveal phase is not
    open yet (``RevealNotOpen`` at the gas estimate) or once it is on chain (``AlreadyRevealed``)."""
    sub = rt.journal.load(job_id)
    if sub is None:
        log.error("drawn job without a journal entry: cannot reveal", extra={"job": job_id})
        return 0
    try:
        receipt = rt.client.send(court.reveal_provider(*sub.reveal_args()))
    except TxReverted as exc:
        if exc.error_name in ("RevealNotOpen", "AlreadyRevealed"):
            return 0
        raise
    rt.set_record(job_id, revealed_tx=receipt.tx_hash)
    metrics.count(rt, "court_actions", action="reveal")
    log.info("revealed to the court", extra={"job": job_id, "tx": receipt.tx_hash})
    return 1


def undrawn(rt: Runtime, job_id: int, challenge_deadline: int) -> None:
    """A watched job the court says was not drawn (``NotDrawn``: a reorg replaced its anchor block,
    or it was resubmitted with another anchor) and without a case: back to the set to finalize, its
    recorded draw forgotten (the finalize pass asks ``isDrawn`` again)."""
    pipe = rt.state.pipeline(transaction=True)
    pipe.zrem(verifying_key(rt), str(job_id))
    pipe.zadd(rt.xkeys.submitted, {str(job_id): challenge_deadline})
    pipe.hdel(rt.xkeys.job(job_id), DRAW_FIELD)
    pipe.execute()
    if rt.state.exists(rt.xkeys.job(job_id)):
        rt.set_record(job_id, "submitted", reason="not drawn after all: back to finalize")
    log.warning("watched job not drawn after all; back to finalize", extra={"job": job_id})


def done(rt: Runtime, job_id: int, status: Any) -> None:
    """The job left verification: out of the set, the record says how it ended."""
    rt.state.zrem(verifying_key(rt), str(job_id))
    if rt.state.exists(rt.xkeys.job(job_id)):
        rt.set_record(job_id, "finalized" if status.settled else "submitted", chain_status=status.label)
    log.info("verification over", extra={"job": job_id, "status": status.label})
