"""The provider's side of the verification protocol (issue 11): after the challenge window, a
submitted job either finalizes (not drawn) or is verified by the court (drawn for audit, or
challenged). A drawn job is never finalized again and again: the beat moves it from the set of
jobs to finalize to the set of jobs under verification (:func:`watch`), and
:func:`follow_verifications` walks that set every ``REVEAL_INTERVAL`` seconds:

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

Crash safety: every step reads the chain (the job's status, the court's case) before it acts, keyed
by job id; the reveal and ``advance`` are idempotent on chain (a second reveal reverts
``AlreadyRevealed`` at the gas estimate, before anything is sent). The set lives in the executor's
Redis state; a lost set is rebuilt by the beat's finalize pass, which finds drawn jobs again
through the index.
"""

from __future__ import annotations

import logging
from typing import Any

from depin.contracts import VerificationCourt
from depin.market import JobStatus
from depin.transactions import TxReverted
from executor import metrics
from executor.execution import same
from executor.runtime import Runtime

log = logging.getLogger("executor.tasks")

FOLLOW_LIMIT = 200  # jobs under verification looked at per pass

# IVerificationCourt.Phase and the CaseView fields the provider reads (positions in the struct)
PHASE_NONE, PHASE_ACTIVE, PHASE_TALLIED, PHASE_ARBITER, PHASE_CONCLUDED = range(5)
_PHASE, _PROVIDER_REVEALED, _PROVIDER, _REVEAL_DEADLINE, _COMMITTED = 0, 6, 7, 18, 21
_INFO_COURT = 12  # IJobMarket.VerificationInfo.court


def verifying_key(rt: Runtime) -> str:
    """The sorted set of our jobs under verification (score: when we started watching)."""
    return f"{rt.xkeys.prefix}:verifying"


def watch(rt: Runtime, job_id: int, reason: str) -> None:
    """Moves a submitted job of ours from the set to finalize to the set under verification."""
    pipe = rt.state.pipeline(transaction=True)
    pipe.zrem(rt.xkeys.submitted, str(job_id))
    pipe.zadd(verifying_key(rt), {str(job_id): rt.chain_now()}, nx=True)
    pipe.execute()
    if rt.state.exists(rt.xkeys.job(job_id)):
        rt.set_record(job_id, "verifying_court", reason=reason)
    log.info("job under verification; following the court", extra={"job": job_id, "reason": reason})


def watched(rt: Runtime) -> set[int]:
    members: list[str] = rt.state.zrange(verifying_key(rt), 0, -1)  # type: ignore[assignment]
    return {int(j) for j in members}


def court_of(rt: Runtime, job_id: int) -> VerificationCourt:
    """The court snapshotted for the job at post (``verificationInfo(jobId).court``)."""
    info = rt.client.read(rt.client.contracts.job_market.verification_info(job_id))
    return VerificationCourt(info[_INFO_COURT], rt.client.codec)


def follow_verifications(rt: Runtime) -> int:
    """One pass over our jobs under verification (see the module doc). Returns the number of
    transactions sent."""
    sent = 0
    for job_id in sorted(watched(rt))[:FOLLOW_LIMIT]:
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
    court = court_of(rt, job_id)
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
        if exc.error_name not in ("NothingDue", "NotDrawn", "CaseClosed"):
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


def done(rt: Runtime, job_id: int, status: Any) -> None:
    """The job left verification: out of the set, the record says how it ended."""
    rt.state.zrem(verifying_key(rt), str(job_id))
    if rt.state.exists(rt.xkeys.job(job_id)):
        rt.set_record(job_id, "finalized" if status.settled else "submitted", chain_status=status.label)
    log.info("verification over", extra={"job": job_id, "status": status.label})
