"""The executor's Celery tasks: thin wrappers over plain functions of the provider
(:mod:`executor.provider`, :mod:`executor.verification`) and the beat (:mod:`executor.beat`). Every one is idempotent, keyed by job id, and safe to run twice or
to be killed at any instruction.

How each job task stays safe (the crash-safety argument, in the order a job goes):

1. **Read the chain first.** Every task reads ``getJob`` before it acts and acts only on the state
   it expects (claim: Open; run and submit: Claimed *by us*; reveal: the court's case open for it).
   Anything else means the work is done or no longer ours: the task records that and returns.
   The contract's state machine makes a second submission impossible (WrongStatus); reading first
   makes sure we never even send it.
2. **Hold the job's lease** (:mod:`executor.lease`) while running or submitting, so that two
   deliveries of one job never work at once; a killed worker's lease expires after its TTL.
3. **Deterministic container name** per job and role: a re-run removes its predecessor's container
   first (:func:`executor.execute.execute`), and the reaper removes containers of jobs no longer in hand
   whose run's lease two looks a lease TTL apart find free (:func:`executor.beat.reap`).
4. **Record before acting on the chain.** The outcome of a run (digest, URI, or failure code and
   evidence) is written to the job's record *before* the submission is queued; the archive is in the
   content-addressed store already. After a crash the record says "outcome", so a restart submits
   instead of running again, and the submit task's chain read skips the transaction if it was mined
   before the crash.
5. **Recovery** (:func:`executor.beat.recover_jobs`, every beat and at worker start): a job in hand whose lease is free
   and whose record has not moved for a while, seen so twice a lease TTL apart (a live task takes
   back a lease that expired during a Redis stall and its renewals keep the record fresh), gets its
   next task queued again. Broker redelivery
   (acks_late, visibility timeout) is the backstop, not the mechanism. A job the chain shows
   claimed by us without any local record (the executor's database was lost) is adopted, and run
   once two such looks find no live task on it;
   a submitted one is finalized from the index. So the chain, not Redis, is the source of truth.
6. **A job that beat this executor is never claimed again by it.** When its run crashes with an
   unexpected exception (recorded ``abandoned`` at once: no crash-and-rerun loop), a task gives it up
   at the redelivery cap (not ``depin.submit`` with a recorded outcome: that is kept and submitted
   again by recovery until the deadline, :func:`executor.provider.keep_submitting`), or its submit
   deadline passes in our hands (``late``), the job's record
   gets a ``refused`` field with the reason (:meth:`Runtime.refuse`); the dispatcher's ``consider`` refuses
   such a job (and any Open job the index shows we claimed before: we timed out on it) with a
   logged reason, so a timeout that reopens the job does not hand it back to us to burn more stake.
   Output handling itself never raises for the job's doing (:mod:`executor.execute`): it is a
   submitted failure code.
"""

from __future__ import annotations

from celery import Task

from executor import beat, canary, provider, retention, verifier
from executor.celery import app
from executor.execution import give_up
from executor.jobtask import JobTask, job_task
from executor.runtime import Runtime, get_runtime

# ---------------------------------------------------------------------------------------- provider


@job_task("depin.claim", give_up=give_up)
def claim(self: Task, rt: Runtime, job_id: int, more: list[int] | None = None) -> None:
    """Claims an Open job the dispatcher accepted (with `more`: those too, in one ``claimJobs``
    transaction), then queues each run. Losing the race is normal."""
    if more:
        provider.claim_jobs(rt, [job_id, *more])
    else:
        provider.claim_job(rt, job_id)


@job_task("depin.run", give_up=provider.abandon)
def run(self: Task, rt: Runtime, job_id: int) -> None:
    """Runs a job we claimed (unless its outcome is recorded already) and records the outcome."""
    provider.run_job(self, rt, job_id)


@job_task("depin.submit", give_up=provider.keep_submitting)
def submit(self: Task, rt: Runtime, job_id: int) -> None:
    """Submits the recorded outcome, unless the chain shows it submitted already."""
    provider.submit_outcome(self, rt, job_id)


# ---------------------------------------------------------------------------------------- beat


@app.task(name="depin.finalize_due", base=JobTask, max_retries=0, autoretry_for=())
def finalize_due() -> int:
    """Finalizes our submitted jobs whose challenge window has closed and that were not drawn."""
    return beat.finalize_due_jobs(get_runtime())


@app.task(name="depin.follow", base=JobTask, max_retries=0, autoretry_for=())
def follow() -> int:
    """Reveals to the court and advances our jobs under verification (drawn or challenged)."""
    return beat.follow_verifications(get_runtime())


@app.task(name="depin.poke", base=JobTask, max_retries=0, autoretry_for=())
def poke() -> int:
    """Sends the permissionless deadline transitions that are due (expire, timeout)."""
    return beat.poke_deadlines(get_runtime())


@app.task(name="depin.withdraw", base=JobTask, max_retries=0, autoretry_for=())
def withdraw() -> int:
    """Withdraws the market balance when it is above ``[executor] withdraw_threshold``."""
    return beat.withdraw_earnings(get_runtime())


@app.task(name="depin.recover", base=JobTask, max_retries=0, autoretry_for=())
def recover(force: bool = False) -> int:
    """Re-queues the next task of every job in hand whose task died; removes orphan containers."""
    return beat.recover_jobs(get_runtime(), force)


@app.task(name="depin.prune", base=JobTask, max_retries=0, autoretry_for=())
def prune() -> int:
    """Removes settled jobs' archives and journal entries past ``[executor] result_retention_days``;
    a verifier also forgets the undrawn jobs that left Submitted."""
    rt = get_runtime()
    if "verifier" in rt.roles:
        verifier.prune_undrawn(rt)
    return retention.prune_results(rt)


# ---------------------------------------------------------------------------------------- verifier


@app.task(name="depin.verify", base=JobTask, max_retries=0, autoretry_for=())
def verify() -> int:
    """The verifier's pass: stake, take the seats drawn for us, reveal, advance (:mod:`executor.verifier`).
    The seats in hand are followed (committed, revealed, advanced) even when the scan for new ones
    fails: an engine that does not answer failed every scan, and the committed seats, whose reveal
    needs no engine, then missed their reveal windows and lost their bonds (found by review, stop 55)."""
    rt = get_runtime()
    try:
        taken = verifier.scan(rt)
    finally:
        followed = verifier.follow_seats(rt)
    return taken + followed


@job_task("depin.audit_run")
def audit_run(self: Task, rt: Runtime, job_id: int, round: int = 0, seat: int = 0) -> None:
    """Re-runs a job for a seat we hold and journals digest and salt; then queues the commit."""
    verifier.run_audit(rt, job_id, round, seat)


@job_task("depin.audit_commit")
def audit_commit(self: Task, rt: Runtime, job_id: int, round: int = 0, seat: int = 0) -> None:
    """Sends a seat's commitment from the journal unless the chain shows it sent."""
    verifier.commit_seat(rt, job_id, round, seat)


# ---------------------------------------------------------------------------------------- canary


@app.task(name="depin.canary", base=JobTask, max_retries=0, autoretry_for=())
def canary_pass() -> int:
    """The canary operator's pass: post, claim, commit garbage, reveal, expose (:mod:`executor.canary`)."""
    rt = get_runtime()
    sent = canary.run_pass(rt)
    if "provider" not in rt.roles:  # a provider's beat records the anchors already (recover)
        sent += beat.record_anchors(rt)
    return sent
