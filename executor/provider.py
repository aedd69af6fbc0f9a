"""Provider mode: claim an Open job the dispatcher accepted, run it, submit the recorded outcome.

Plain functions over a :class:`~executor.runtime.Runtime` (and, where a task retries itself, its
Celery task); :mod:`executor.tasks` wraps them. The crash-safety argument is in :mod:`executor.tasks`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from depin.client import TOKEN_SYMBOL, format_tokens
from depin.config import env_number
from depin.errors import ChainError, SpecError
from depin.market import FailureCode, JobStatus, VerifyMode
from depin.transactions import TxDropped, TxReverted
from executor import metrics, queue
from executor.execute import PolicyRefused, ProviderFault, provider_faults
from executor.execution import (
    AFTER_SUBMIT,
    ANOTHER_POST_RETRY,
    execute_job,
    give_up,
    journal_failure,
    journal_outcome,
    journal_result,
    load_spec,
    mark_late,
    mark_lost,
    mark_submitted,
    outcome_fields,
    same,
    sha256,
    submission_fields,
)
from executor.jobtask import transient_errors
from executor.lease import Lease
from executor.policy import input_deadline
from executor.results import Submission
from executor.runtime import ACTIVE_STATES, Runtime

if TYPE_CHECKING:
    from depin.client import OnchainJob

log = logging.getLogger("executor.tasks")

NO_FAULT_CODES = (int(FailureCode.IMAGE_UNAVAILABLE), int(FailureCode.INPUT_HASH_MISMATCH))

RETRY_FETCH_AFTER = 5  # seconds before re-running a job whose input could not be fetched
SUBMIT_BATCH = 20  # results submitted in one submitResults transaction, at most (as claims: CLAIM_BATCH)
PENDING_WAIT = env_number("DEPIN_PENDING_WAIT", 120)  # seconds to wait for a pre-crash transaction
CLAIM_BATCH_ROUNDS = 2  # claimJobs sent for one claim task, at most (a reverted one is followed by a batch of the rest)
OWN_PENDING_WAIT = 60.0  # seconds a reverted claim waits for our own pending transactions before it counts as lost
# Seconds before a job whose claim our own stake could not cover (ProviderStaking's InsufficientStake:
# the collateral is locked on top of the minimum stake) is looked at again: time to add stake, and no
# claim estimate at every dispatcher pass meanwhile (review, stop 45).
STAKE_RETRY = 60.0
# A job whose deadline (its claim deadline in claimJobs, its submit deadline in submitResults) is
# less than this many seconds after the pending block's timestamp goes in a transaction of its own.
# A batch is estimated at that timestamp but mined later: where the estimate passes (a geth-style
# node's pending block), one job past its deadline by then reverts the whole batch, and its gas
# buys nothing. Alone, only that job's own transaction is at stake.
BATCH_DEADLINE_MARGIN = 30


def abandon(rt: Runtime, job_id: int, reason: str) -> None:
    """The run's redelivery cap: a recorded outcome is submitted (the result is safe), else the job
    is given up."""
    rec = rt.record(job_id)
    if rec.get("state") == "outcome":
        queue.send("depin.submit", job_id)
        return
    give_up(rt, job_id, reason)


def keep_submitting(rt: Runtime, job_id: int, reason: str) -> None:
    """The submission's redelivery cap: a recorded outcome is kept, not given up. Its salt is
    journaled and its archive stored: giving it up would leave an honest result to time out in our
    hands (collateral slashed). Recovery queues the submission again once the job is idle
    (:func:`executor.beat.recover_jobs`), until the chain shows it submitted or its submit deadline
    passes (``late``), so a submission that keeps killing its worker still ends. Without a recorded
    outcome there is nothing to submit: the job is given up as before."""
    if rt.record(job_id).get("state") != "outcome":
        give_up(rt, job_id, reason)
        return
    rt.set_record(job_id, reason=f"{reason}; the recorded outcome is kept and submitted again by recovery"[:300])
    log.error("submission kept for recovery after its redelivery cap", extra={"job": job_id, "reason": reason[:300]})


# ---------------------------------------------------------------------------------------- claim


def claim_job(rt: Runtime, job_id: int) -> None:
    """Claims an Open job the dispatcher accepted, then queues its run. Losing the race is normal."""
    rec = rt.record(job_id)
    if rec.get("state") not in ("claiming", None):
        return
    job = rt.job(job_id)
    if job.status == JobStatus.CLAIMED and same(job.provider, rt.address):
        pass  # claimed before a crash: carry on
    elif submitted_by_us(rt, job_id, job):
        return
    elif job.status != JobStatus.OPEN:
        mark_lost(rt, job_id, job, f"job is {job.status.label}")
        log.info("claim skipped: job no longer open", extra={"job": job_id, "status": job.status.label})
        return
    elif (why := another_post(approved_post(rec, job), job, "approved")) is not None:
        # A reorg gave the id to another post: the policy approved another spec or other terms.
        mark_lost(rt, job_id, job, why[:300], retry_in=ANOTHER_POST_RETRY)
        log.warning("claim skipped: the job is not the one approved (reorg)", extra={"job": job_id, "reason": why[:300]})
        return
    else:
        try:
            receipt = rt.client.claim(job_id, still_needed=claim_wanted(rt, [job]))
            log.info("claimed", extra={"job": job_id, "tx": receipt.tx_hash})
        except TxDropped:
            claim_dropped(rt, [job_id])
            return
        except TxReverted as exc:
            job = rt.job(job_id)
            if job.status == JobStatus.OPEN:
                job = after_own_pending(rt, job_id, job)
            if submitted_by_us(rt, job_id, job):
                return
            if not (job.status == JobStatus.CLAIMED and same(job.provider, rt.address)):
                if exc.error_name == "InsufficientStake" and job.status == JobStatus.OPEN:
                    stake_short(rt, job_id, job, exc)
                    return
                if exc.error_name == "NotRegistered" and job.status == JobStatus.OPEN:
                    not_registered(rt, job_id, job)
                    return
                mark_lost(rt, job_id, job, exc.error_name or exc.reason)
                log.info("claim race lost", extra={"job": job_id, "error": exc.error_name, "status": job.status.label})
                return
    rt.set_record(job_id, "claimed", claimed_at=time.time())
    metrics.count(rt, "jobs_claimed")
    queue.send("depin.run", job_id)


def stake_short(rt: Runtime, job_id: int, job: OnchainJob, exc: TxReverted) -> None:
    """Our claim of an Open job reverted with ``InsufficientStake``: no race was lost, our free stake
    (staked minus locked) does not cover the minimum stake plus the job's collateral. Said as a
    warning naming the shortfall and the command that fixes it; the job is looked at again in
    :data:`STAKE_RETRY` seconds (it used to be counted a lost race at info level and claimed again at
    every dispatcher pass, for as long as it stayed Open: a provider registered with exactly the
    minimum stake claimed nothing and was never told why)."""
    found = dict(re.findall(r"\b(available|needed)=(\d+)", exc.reason or ""))
    if "available" in found and "needed" in found:
        available, needed = int(found["available"]), int(found["needed"])
        short = (f"this job's claim needs {format_tokens(needed)} {TOKEN_SYMBOL} of free stake (the minimum stake plus its "
                 f"collateral), we have {format_tokens(available)} free: add at least "
                 f"{format_tokens(max(needed - available, 0))} {TOKEN_SYMBOL} with `depin provider stake AMOUNT`")
    else:
        short = ("our free stake does not cover the minimum stake plus this job's collateral: add stake with "
                 "`depin provider stake AMOUNT`")
    mark_lost(rt, job_id, job, f"InsufficientStake: {short}"[:300], retry_in=STAKE_RETRY)
    log.warning(f"claim refused by the chain: {short}; looked at again in {STAKE_RETRY:.0f} s", extra={"job": job_id})


def not_registered(rt: Runtime, job_id: int, job: OnchainJob) -> None:
    """Our claim of an Open job reverted with ``NotRegistered``: this executor's account is no
    provider of the staking contract. Said as a warning naming the command that fixes it, and the
    job looked at again in :data:`STAKE_RETRY` seconds, as for a short stake; it was a lost race at
    info level, re-claimed (a gas estimate each time) about every second for as long as any job
    stayed Open (found by review, stop 56)."""
    why = f"this executor's account {rt.address} is not registered as a provider: `depin provider register --stake AMOUNT`"
    mark_lost(rt, job_id, job, f"NotRegistered: {why}"[:300], retry_in=STAKE_RETRY)
    log.warning(f"claim refused by the chain: {why}; looked at again in {STAKE_RETRY:.0f} s", extra={"job": job_id})


def after_own_pending(rt: Runtime, job_id: int, job: OnchainJob) -> OnchainJob:
    """The job as it reads once our own pending transactions are mined (at most OWN_PENDING_WAIT
    seconds). A claim whose estimate reverts while the chain still shows the job Open may have met
    our own claim of it in the pool: after a reorg undid our claim, the signer sends it again (same
    bytes, once :func:`claim_wanted` says the job is still the one approved) and the dispatcher, seeing the job Open again, asks for a claim too. Counted lost then,
    the job was claimed by us on chain and never run, and timed out in our hands."""
    tx = rt.client.tx
    if tx is None:
        return job
    try:
        if tx.pending_nonce() <= tx.latest_nonce():
            return job
    except ChainError:
        return job
    log.info("claim reverted while a transaction of ours is pending; waiting for it", extra={"job": job_id})
    deadline = time.monotonic() + OWN_PENDING_WAIT
    while time.monotonic() < deadline:
        try:
            if tx.pending_nonce() <= tx.latest_nonce():
                break
        except ChainError:
            break
        time.sleep(0.5)
    else:
        return job
    found = rt.job(job_id)
    if found.status != job.status:
        log.info("claim reverted against our own pending transaction; the chain now says", extra={"job": job_id, "status": found.status.label})
    return found


def claim_jobs(rt: Runtime, job_ids: list[int]) -> None:
    """Claims several accepted jobs in one ``claimJobs`` transaction (one collateral lock), then
    queues each run. Only jobs whose record still says ``claiming`` and that the chain shows Open
    with the approved spec go in the batch; any other job (claimed before a crash, lost, changed
    by a reorg) goes through :func:`claim_job`, which knows each case. A batch that reverts (one
    job lost its race: the call is all or nothing) is followed by at most CLAIM_BATCH_ROUNDS - 1
    more: each job of it is read again (:func:`rebatch`) and those still Open and still the job
    read for the first batch and still wanted (:func:`claim_unwanted`) go in one new batch (a
    single one: :func:`claim_job`; the same batch again, nothing having changed: one by one at
    once); after the last round, :func:`claim_job` for each. So a lost race costs one more
    transaction, not one per job, and a batch that keeps reverting is never looped on. A crash
    after a batch is mined is safe: the task runs again and :func:`claim_job` finds each job
    Claimed by us and carries on."""
    batch: list[int] = []
    read: list[OnchainJob] = []
    now = rt.chain_now() if len(job_ids) > 1 else 0
    for job_id in job_ids:
        rec = rt.record(job_id)
        if rec.get("state") not in ("claiming", None):
            continue
        job = rt.job(job_id)
        if (
            job.status == JobStatus.OPEN
            and another_post(approved_post(rec, job), job, "approved") is None
            and job.claim_deadline >= now + BATCH_DEADLINE_MARGIN
        ):
            batch.append(job_id)
            read.append(job)
        else:
            claim_job(rt, job_id)  # anything else, and a job close to its claim deadline (BATCH_DEADLINE_MARGIN)
    first = dict(zip(batch, read, strict=True))  # each job as read for the first batch
    for round_ in range(CLAIM_BATCH_ROUNDS):
        if round_:
            reverted = batch
            batch, read = rebatch(rt, reverted, first)
            if batch == reverted:
                break  # nothing we can see changed: the same batch would revert again (one by one then)
        if len(batch) < 2:
            break
        try:
            receipt = rt.client.claim_many(batch, still_needed=claim_wanted(rt, read))
        except TxDropped:
            claim_dropped(rt, batch)
            return
        except TxReverted as exc:
            log.info("batch claim reverted", extra={"jobs": ",".join(map(str, batch)), "error": exc.error_name})
            continue
        log.info("claimed", extra={"jobs": ",".join(map(str, batch)), "tx": receipt.tx_hash})
        for job_id in batch:
            rt.set_record(job_id, "claimed", claimed_at=time.time())
            metrics.count(rt, "jobs_claimed")
            queue.send("depin.run", job_id)
        return
    for job_id in batch:
        claim_job(rt, job_id)


def rebatch(rt: Runtime, reverted: list[int], first: dict[int, OnchainJob]) -> tuple[list[int], list[OnchainJob]]:
    """The jobs of a reverted batch that can go in the next one, and each as read now: those whose
    record still says ``claiming`` and that are still the Open job `first` read and approved
    (:func:`claim_unwanted`: same spec, requester and terms, not refused). Every other job is
    settled here: one that is no longer Open goes through :func:`claim_job` (lost to a competitor,
    or claimed by a transaction of ours), an Open one that is not the job approved any more (a
    reorg gave its id to another post) or no longer wanted is recorded ``lost`` (the dispatcher
    judges afresh whatever job the id holds now), never claimed here. One close to its claim
    deadline (:data:`BATCH_DEADLINE_MARGIN`) goes through :func:`claim_job` too."""
    batch: list[int] = []
    read: list[OnchainJob] = []
    now = rt.chain_now()
    for job_id in reverted:
        if rt.record(job_id).get("state") not in ("claiming", None):
            continue  # moved on meanwhile
        job = rt.job(job_id)
        if job.status != JobStatus.OPEN or job.claim_deadline < now + BATCH_DEADLINE_MARGIN:
            claim_job(rt, job_id)
        elif (why := claim_unwanted(rt, first[job_id], job)) is None:
            batch.append(job_id)
            read.append(job)
        else:
            mark_lost(rt, job_id, job, why[:300], retry_in=ANOTHER_POST_RETRY)
            log.warning("claim skipped: the job is not the one approved any more", extra={"job": job_id, "reason": why[:300]})
    return batch, read


# Record states in which the executor carries a job on once the chain shows it Claimed by us (its
# tasks, recovery and reopen_if_undone): a reorged-out claim of such a job is wanted again.
CLAIM_WANTED_STATES = (*ACTIVE_STATES, "submitted", "finalized")


def claim_wanted(rt: Runtime, approved: list[OnchainJob]) -> Callable[[], bool]:
    """The signer's ``still_needed`` check of a claim (``claimJob``, or ``claimJobs`` of all of
    `approved`: the jobs as read just before it was sent), asked before a dropped or reorged-out
    claim is sent again (the heartbeat's heal). ``claimJob(N)`` names the job by id only: after a
    reorg that gave id N to another post, the same bytes would claim a job the policy never approved
    (never run, it times out in our hands and the collateral is slashed). So each job must still be
    Open with the same spec, requester and terms as when the claim was sent (and the spec the
    record approved), and its record must still say we want it (:data:`CLAIM_WANTED_STATES`, not
    refused). One job of a batch that fails the check fails the batch: the signer fills the nonce
    with a no-op, and the waiting task, if any, gets TxDropped (:func:`claim_dropped`). Jobs whose
    claim was mined before the reorg are handed back by the dispatcher's retraction handling and
    recovery (their run finds them Open: ``lost``, considered afresh)."""

    def check() -> bool:
        return all(claim_still_wanted(rt, was) for was in approved)

    return check


def claim_still_wanted(rt: Runtime, was: OnchainJob) -> bool:
    """Whether job `was.job_id` is still the Open job `was` that we approved and want claimed."""
    why = claim_unwanted(rt, was, rt.job(was.job_id))
    if why is None:
        return True
    log.warning("reorged-out claim not sent again", extra={"job": was.job_id, "reason": why[:300]})
    return False


def claim_unwanted(rt: Runtime, was: OnchainJob, job: OnchainJob) -> str | None:
    """Why `job` (job `was.job_id` as read now) is not the Open job `was` that we approved and want
    claimed, or None if it is."""
    rec = rt.record(was.job_id)
    if job.status != JobStatus.OPEN:
        why = f"job is {job.status.label}"
    elif (other := another_post(was, job) or another_post(approved_post(rec, job), job, "approved")) is not None:
        why = other
    elif rec.get("refused") or rec.get("state") not in CLAIM_WANTED_STATES:
        why = f"the record says {rec.get('state')}" + (" (refused)" if rec.get("refused") else "")
    else:
        return None
    return why


def another_post(was: OnchainJob, job: OnchainJob, what: str = "read before") -> str | None:
    """Why `job` (read now) is another post than `was` (the job `what`: read before, or as the
    policy approved it, :func:`approved_post`): another spec, requester or terms. None if the same."""
    fields = ("spec_hash", "requester", "reward", "max_runtime", "collateral_pct", "verify_mode")
    differ = [f for f in fields if not (same(job.requester, was.requester) if f == "requester" else getattr(job, f) == getattr(was, f))]
    if not differ:
        return None

    def shown(j: OnchainJob, f: str) -> str:
        value = getattr(j, f)
        return "0x" + value.hex() if isinstance(value, bytes) else str(getattr(value, "label", value))

    return f"id {was.job_id} holds another job now: " + ", ".join(f"{f} {shown(job, f)}, not {shown(was, f)} ({what})" for f in differ)


# The index's job fields the policy's approval covers besides the spec (its decision, or what the
# claim commits us to: the collateral locked, the audits), with the OnchainJob field of each.
APPROVED_TERMS = {"requester": "requester", "reward": "reward", "maxRuntime": "max_runtime", "collateralPct": "collateral_pct", "verifyMode": "verify_mode"}


def approval_fields(idx: dict[str, str]) -> dict[str, Any]:
    """The record fields of the dispatcher's approval of the index's job `idx`: its spec hash and
    (``terms``, JSON) its requester and terms, so that a claim is sent only for that post
    (:func:`approved_post`); a field the index lacks is left out (not compared)."""
    terms = {name: idx[field] for field, name in APPROVED_TERMS.items() if idx.get(field)}
    return {"spec_hash": idx["specHash"].lower(), "terms": json.dumps(terms, sort_keys=True)}


def approved_post(rec: dict[str, str], job: OnchainJob) -> OnchainJob:
    """`job` (read now) with what the record says the policy approved in its place: the spec hash
    and the terms of :func:`approval_fields`. :func:`another_post` of it and `job` says whether the
    chain's job is still the one approved. A record of an older version (no ``terms``: the spec
    hash only, or nothing) is compared on what it has."""
    changes: dict[str, Any] = {}
    if rec.get("spec_hash"):
        changes["spec_hash"] = bytes.fromhex(rec["spec_hash"].removeprefix("0x"))
    for name, value in json.loads(rec.get("terms") or "{}").items():
        if name == "requester":
            changes[name] = value
        elif name == "verify_mode":  # the index's label; an unknown one never equals the chain's mode
            changes[name] = next((m for m in VerifyMode if m.label == value), value)
        else:
            changes[name] = int(value)
    return replace(job, **changes)


def claim_dropped(rt: Runtime, job_ids: list[int]) -> None:
    """The signer did not send our claim of `job_ids` again after a drop or a reorg (its
    :func:`claim_wanted` check said no, or its nonce went to another transaction). Each job is read
    again: one Claimed by us (by another transaction of ours) is carried on; any other whose record
    still says ``claiming`` is recorded ``lost`` (an Open one goes back to the dispatcher, whose
    policy judges the job the id holds now, and claims it again if it passes)."""
    for job_id in job_ids:
        if rt.record(job_id).get("state") != "claiming":
            continue  # moved on meanwhile (lost, skipped, or handed back by the dispatcher)
        job = rt.job(job_id)
        if submitted_by_us(rt, job_id, job):
            continue
        if job.status == JobStatus.CLAIMED and same(job.provider, rt.address):
            rt.set_record(job_id, "claimed", claimed_at=time.time())
            metrics.count(rt, "jobs_claimed")
            queue.send("depin.run", job_id)
            continue
        mark_lost(rt, job_id, job, f"our claim was not sent again after a reorg or drop (job is {job.status.label})")
        log.warning("claim dropped by the signer; the job goes back to the dispatcher", extra={"job": job_id, "status": job.status.label})


def submitted_by_us(rt: Runtime, job_id: int, job: Any) -> bool:
    """The chain shows our submission already (a reorg undid our claim and submission, and the
    signer sent both again, unchanged): the record says submitted."""
    if not (same(job.provider, rt.address) and job.status in AFTER_SUBMIT):
        return False
    mark_submitted(rt, job_id, job.deadline, reason="our earlier claim and submission are on chain")
    log.info("claim skipped: our submission is on chain", extra={"job": job_id, "status": job.status.label})
    return True


# ---------------------------------------------------------------------------------------- run


def run_job(task: Task, rt: Runtime, job_id: int) -> None:
    """Runs a job we claimed (unless its outcome is recorded already) and records the outcome."""
    lease = rt.lease(job_id)
    if not lease.acquire():
        log.info("run skipped: another task holds the job", extra={"job": job_id, "holder": lease.holder()})
        return
    try:
        rec = rt.record(job_id)
        state = rec.get("state")
        if state not in ("claimed", "running", "claiming"):
            return  # outcome recorded (recovery submits it), or done
        job = rt.job(job_id)
        if not same(job.provider, rt.address) or job.status not in (JobStatus.CLAIMED, *AFTER_SUBMIT):
            mark_lost(rt, job_id, job, f"job is {job.status.label}, provider {job.provider}")
            log.warning("run skipped: the job is not ours", extra={"job": job_id, "status": job.status.label})
            return
        if job.status != JobStatus.CLAIMED:
            mark_submitted(rt, job_id, job.deadline, reason="submitted before a restart")
            return
        now = rt.chain_now()
        if job.deadline <= now:
            mark_late(rt, job_id, f"submit deadline {job.deadline} passed")
            log.error("submit deadline passed before the run", extra={"job": job_id, "deadline": job.deadline})
            return
        sub = journaled_outcome(rt, job_id, job.spec_hash)
        if sub is not None:  # computed before the record was lost: submitted as it is, not run again
            rt.set_record(job_id, "outcome", reason="the outcome journaled before the record was lost", **submission_fields(sub))
            log.warning("outcome found in the journal; submitting it without running the job again", extra={"job": job_id, "kind": sub.kind})
            queue.send("depin.submit", job_id)
            return
        try:
            spec = load_spec(rt, job_id, job.spec_hash)
        except SpecError as exc:
            evidence = sha256(f"depin-failure-v1\njob: {job_id}\ncode: BAD_SPEC\nreason: {exc}\n")
            sub = journal_failure(rt, job_id, job.spec_hash, int(FailureCode.BAD_SPEC), evidence)
            rt.set_record(job_id, "outcome", failure_reason=str(exc)[:500], **submission_fields(sub))
            queue.send("depin.submit", job_id)
            return
        started = str(time.time())  # names this run in the record (holds_job)
        rt.set_record(job_id, "running", started=started)
        log.info("running", extra={"job": job_id, "image": spec.image})
        # The inputs get what the submit window leaves once the runtime and the submission are
        # kept: a slow input can never push the submission past the deadline.
        inputs_for = input_deadline(job.deadline, rt.chain_now(), spec.resources.max_runtime)
        try:
            outcome = execute_job(rt, job_id, spec, "provider", input_deadline=time.monotonic() + inputs_for)
        except PolicyRefused as exc:  # the dispatcher checks the same limits: a changed policy
            give_up(rt, job_id, str(exc)[:300])
            log.error("claimed job is beyond the policy now; it will time out", extra={"job": job_id, "reason": str(exc)[:300]})
            return
        except transient_errors():
            raise  # retried with backoff (JobTask.autoretry_for); recovery re-queues after that
        except SoftTimeLimitExceeded as exc:
            # The task outlasted its soft limit (the spec's runtime plus the inputs' and the
            # overhead's budget): this machine or its engine was too slow (an engine that did not
            # answer for a minute under load did it). The provider's own fault, retried while the
            # deadline allows like any other; it used to fall to the catch-all below and abandon
            # the job, which then timed out in our hands (seen under load, stop 40).
            raise ProviderFault(f"the run outlasted the task's soft time limit ({type(exc).__name__})") from exc
        except Exception as exc:  # a bug or a surprise: give up once, never a crash-and-rerun loop
            if not holds_job(rt, job_id, lease, started):  # a stale run's surprise (its folder went): not ours to give up
                log.warning("run ended after the job was taken over; nothing recorded", extra={"job": job_id, "error": str(exc)[:300]})
                return
            give_up(rt, job_id, f"the run crashed: {type(exc).__name__}: {exc}"[:300])
            log.exception("run crashed; job abandoned and never claimed again", extra={"job": job_id, "error": str(exc)[:300]})
            return
        if not holds_job(rt, job_id, lease, started):
            log.warning("run ended after the job was taken over; nothing journaled, recorded or submitted", extra={"job": job_id})
            return
        # Retried only while the window still leaves the inputs time (input_deadline), else reported.
        if (
            outcome.kind == "failure"
            and outcome.retryable
            and input_deadline(job.deadline, rt.chain_now(), spec.resources.max_runtime) > 2 * RETRY_FETCH_AFTER
        ):
            rt.set_record(job_id, "claimed", reason=outcome.reason[:300])
            log.warning("input unavailable; retrying", extra={"job": job_id, "reason": outcome.reason[:300]})
            raise task.retry(countdown=RETRY_FETCH_AFTER, max_retries=None)
        # The salt (and the archive's name) are journaled before the record says "outcome": nothing
        # that carries the commitment is ever sent before its salt is on disk.
        sub = journal_outcome(rt, job_id, job.spec_hash, outcome)  # exclusive: a successor's entry is never replaced
        if not holds_job(rt, job_id, lease, started):  # paused past the lease while journaling
            log.warning("run ended after the job was taken over; nothing recorded or submitted", extra={"job": job_id})
            return
        fields = {**outcome_fields(outcome), **submission_fields(sub)}
        rt.set_record(job_id, "outcome", **fields)
        metrics.outcome(rt, outcome)
        shown = {("result_name" if k == "name" else k): v for k, v in fields.items()}  # "name" is the LogRecord's own
        log.info("outcome recorded", extra={"job": job_id, **shown, "lease_lost": lease.lost})
    finally:
        lease.release()
    queue.send("depin.submit", job_id)


def journaled_outcome(rt: Runtime, job_id: int, spec_hash: bytes) -> Submission | None:
    """The outcome this executor journaled for the job's spec `spec_hash` before, when it can be
    submitted as it is, or None (run the job). A record says ``claimed`` over a journaled outcome
    when the executor's database was wiped, or restored from a snapshot, after the run (the claim
    adopted from the chain: :func:`executor.beat.adopt_orphaned_claims`); running the whole job
    again could outlast its submit deadline, and the job would time out in our hands with our
    collateral (found by review, stop 56). A re-run would submit that entry anyway
    (:func:`executor.results.prepare_submission` keeps a job's first entry). A result counts only
    while the store holds its archive with the journaled digest (its manifest is published again if
    it went; a damaged archive is run again, whose same bytes restore it); an availability failure
    (which reopens the job) is looked at afresh."""
    sub = rt.journal.load(job_id)
    if sub is None or sub.spec_hash != "0x" + spec_hash.hex():
        return None
    if sub.kind != "result":
        return None if no_fault(sub.code) else sub
    if not rt.store.holds(sub.name, bytes.fromhex(sub.digest.removeprefix("0x"))):
        return None
    if not rt.store.has_manifest(sub.name):
        with provider_faults("publishing the result's manifest"):
            rt.store.put_manifest(sub.name, sub.manifest())
    return sub


def holds_job(rt: Runtime, job_id: int, lease: Lease, started: str) -> bool:
    """Whether this run (its record's ``started``) still holds the job: its lease is ours now (a
    renewal, not only the renewal thread's last look: a process woken from a pause acts before that
    thread runs), and no other run is named in the record or moved it on (another run may have
    taken the job over, ended it and let the lease go, which a renewal takes again). A record
    without ``started`` (the database wiped, the claim adopted from the chain) is still this run's.
    A run that no longer holds the job journals, records and submits nothing: the run that took it
    over does."""
    if lease.lost or not lease.renew():
        return False
    rec = rt.record(job_id)
    return rec.get("state") in (None, "claimed", "running") and rec.get("started") in (None, started)


# ---------------------------------------------------------------------------------------- submit


def submit_outcome(task: Task, rt: Runtime, job_id: int) -> None:
    """Submits the recorded outcome, unless the chain shows it submitted already."""
    lease = rt.lease(job_id)
    if not lease.acquire():
        raise task.retry(countdown=max(1.0, rt.lease_ttl / 2), max_retries=None)
    try:
        rec = rt.record(job_id)
        if rec.get("state") != "outcome":
            return
        job = rt.job(job_id)
        if same(job.provider, rt.address) and job.status in AFTER_SUBMIT:
            mark_submitted(rt, job_id, job.deadline, reason="already on chain")
            log.info("submission found on chain; not sending again", extra={"job": job_id, "status": job.status.label})
            return
        if not (same(job.provider, rt.address) and job.status == JobStatus.CLAIMED):
            mark_lost(rt, job_id, job, f"job is {job.status.label}, provider {job.provider}")
            log.warning("submission skipped: the job is not ours any more", extra={"job": job_id, "status": job.status.label})
            return
        if job.deadline < rt.chain_now():
            mark_late(rt, job_id, f"submit deadline {job.deadline} passed")
            log.error("submit deadline passed", extra={"job": job_id})
            return
        if rec.get("tx_pending") and wait_for_earlier_submission(rt, job_id, rec["tx_pending"].split(",")):
            return
        sub = journaled_submission(rt, job_id, job.spec_hash, rec)  # the salt is on disk before any send
        if sub.kind == "result" and submit_with_others(rt, sub, job.deadline):
            return
        fn, args = sub.call()
        reopens = sub.kind == "failure" and no_fault(sub.code)
        if reopens:
            # The market reopens the job at once: refused first, so that neither this submission
            # nor a crash after it lets the dispatcher hand the job back to us.
            rt.refuse(job_id, f"we reported an availability failure (code {sub.code}) on it")
        try:
            receipt = send_recorded(rt, [sub], fn, *args)
            metrics.submitted(rt, sub.kind, sub.code)
        except TxReverted as exc:
            job = rt.job(job_id)
            if same(job.provider, rt.address) and job.status in AFTER_SUBMIT:
                mark_submitted(rt, job_id, job.deadline, reason="already on chain")
                return
            if exc.error_name == "TooLate":
                mark_late(rt, job_id, exc.reason)
                log.error("submission too late", extra={"job": job_id})
                return
            raise
        if reopens:
            rt.set_record(job_id, "no_fault", tx=receipt.tx_hash, reason=f"availability failure {sub.code}: the job reopened (or was refunded)")
            log.info("availability failure submitted; the job left our hands", extra={"job": job_id, "code": sub.code, "tx": receipt.tx_hash})
            return
        job = rt.job(job_id)
        mark_submitted(rt, job_id, job.deadline, tx=receipt.tx_hash)
        log.info("submitted", extra={"job": job_id, "kind": rec.get("kind"), "tx": receipt.tx_hash})
    finally:
        lease.release()


def submission_call(rt: Runtime, job_id: int, spec_hash: bytes, rec: dict[str, str]) -> tuple[str, tuple[Any, ...]]:
    """The ``JobMarket`` call that submits the job's outcome: the journaled submission's
    (:meth:`executor.results.Submission.call`). A record written before the journal existed is
    journaled now, from its own fields (a fresh salt, durable before anything is sent)."""
    return journaled_submission(rt, job_id, spec_hash, rec).call()


def journaled_submission(rt: Runtime, job_id: int, spec_hash: bytes, rec: dict[str, str]) -> Submission:
    """The job's journal entry for the spec `spec_hash`, written from the record when missing."""
    sub = rt.journal.load(job_id)
    if sub is not None and sub.spec_hash == "0x" + spec_hash.hex():
        return sub
    if rec.get("kind") == "result":
        name = rec.get("name") or rec.get("uri", "").rsplit("/", 1)[-1]
        committed = rec.get("committed") or rec["digest"]
        return journal_result(rt, job_id, spec_hash, bytes.fromhex(rec["digest"][2:]), bytes.fromhex(committed[2:]), name)
    evidence = rec.get("evidence") or "0x" + "00" * 32
    return journal_failure(rt, job_id, spec_hash, int(rec["code"]), bytes.fromhex(evidence[2:]))


def no_fault(code: int | str | None) -> bool:
    """Whether failure `code` is an availability failure (image unavailable, input hash mismatch):
    the market settles it at once, "no fault but not free", and reopens the job (or refunds it)."""
    return code not in (None, "") and int(code) in NO_FAULT_CODES


def submit_with_others(rt: Runtime, sub: Submission, deadline: int) -> bool:
    """Submits the result `sub` (submit deadline `deadline`) together with the other results of
    ours that wait for their submission (a busy chain worker queues them behind this one: a slow
    block, a long wait for a receipt) in one ``submitResults`` transaction. True when they were
    submitted; False when there was no other, or `sub` or the other is close to its deadline
    (:data:`BATCH_DEADLINE_MARGIN`), or the batch would revert: each job then goes through the
    single path, its own task included."""
    others = ready_results(rt, sub.job_id, deadline)
    if not others:
        return False
    subs = [sub, *(other for other, _ in others)]
    ids = [s.job_id for s in subs]
    try:
        try:
            receipt = send_recorded(rt, subs, "submitResults", [s.call()[1] for s in subs])
        except TxReverted as exc:
            log.warning("batch submission reverted; submitting one by one", extra={"job": sub.job_id, "jobs": ",".join(map(str, ids)), "error": exc.reason})
            return False
        for s in subs:
            metrics.submitted(rt, "result")
            mark_submitted(rt, s.job_id, rt.job(s.job_id).deadline, tx=receipt.tx_hash)
        log.info("submitted in one batch", extra={"job": sub.job_id, "jobs": ",".join(map(str, ids)), "tx": receipt.tx_hash})
        return True
    finally:
        for _, lease in others:
            lease.release()


def ready_results(rt: Runtime, first: int, first_deadline: int) -> list[tuple[Submission, Lease]]:
    """Up to SUBMIT_BATCH - 1 jobs besides `first` (submit deadline `first_deadline`) whose
    recorded result waits for its submission and nothing was sent for it yet: each one leased (a
    job whose lease another task holds is left to it), read on chain Claimed by us at least
    :data:`BATCH_DEADLINE_MARGIN` seconds before its submit deadline, and journaled (its salt
    durable before anything is sent). None when `first` is that close to its own deadline. The
    caller releases the leases."""
    taken: list[tuple[Submission, Lease]] = []
    members = (int(m) for m in cast(list[str], rt.state.zrange(rt.xkeys.active, 0, -1)))
    waiting = [other for other in members if other != first and _result_waiting(rt.record(other))]
    if not waiting:
        return taken  # no read of the chain when nothing else waits
    now = rt.chain_now()
    if first_deadline < now + BATCH_DEADLINE_MARGIN:
        return taken
    for other in waiting:
        lease = rt.lease(other)
        if not lease.acquire():
            continue
        try:
            rec = rt.record(other)  # again, under the lease
            job = rt.job(other) if _result_waiting(rec) else None
            if (
                job is None
                or not (same(job.provider, rt.address) and job.status == JobStatus.CLAIMED)
                or job.deadline < now + BATCH_DEADLINE_MARGIN
            ):
                lease.release()  # its own task settles it
                continue
            taken.append((journaled_submission(rt, other, job.spec_hash, rec), lease))
        except BaseException:
            lease.release()
            raise
        if len(taken) == SUBMIT_BATCH - 1:
            break
    return taken


def _result_waiting(rec: dict[str, str]) -> bool:
    return rec.get("state") == "outcome" and rec.get("kind") == "result" and not rec.get("tx_pending") and not rec.get("refused")


def send_recorded(rt: Runtime, subs: list[Submission], fn: str, *args: Any) -> Any:
    """Sends ``JobMarket.fn(args)`` (the submission of each of `subs`) like
    :meth:`depin.client.Client.transact`, but records the transaction hash in the record of each
    job before each version is broadcast: a
    worker killed at any instant after the transaction can have reached the pool leaves its hash
    behind, and the next attempt waits for that transaction instead of sending a second one (a
    recorded hash that never reached the pool is found unknown, and the next attempt sends anew)."""
    client = rt.client
    tx = client.tx
    if tx is None:
        raise RuntimeError("the executor's client has no signing account")
    job_ids = [s.job_id for s in subs]
    to, data = client.addresses["JobMarket"], client.codec.encode("JobMarket", fn, *args)
    what = f"JobMarket.{fn}"
    gas = tx.estimate_gas(to, data, what=what)  # TxReverted here: nothing was sent

    def record(hashes: list[str], nonce: int) -> None:
        fields = {"tx_pending": ",".join(hashes), "tx_nonce": str(nonce), "updated": f"{time.time():.3f}"}
        pipe = rt.state.pipeline(transaction=True)  # every job of a batch knows its transaction, or none does
        for job_id in job_ids:
            pipe.hset(rt.xkeys.job(job_id), mapping=fields)
        pipe.execute()

    # a re-send after a drop or a reorg goes through the same "already done on chain?" check
    pending = tx.broadcast(
        to, data, gas=gas, what=what, on_signed=record,
        still_needed=lambda: all(submission_needed(rt, s.job_id, s.spec_hash) for s in subs),
    )
    return tx.wait(pending)


def submission_needed(rt: Runtime, job_id: int, spec_hash: str | None = None) -> bool:
    """Whether the job still waits for our submission on chain (Claimed by us) and, given
    `spec_hash` (0x-hex: the spec the outcome belongs to), is still the job of that spec: asked by
    the signer before it sends a dropped or reorged-out submission again. The submission names the
    job by id only; after a reorg the id may hold another job (our claim is not sent again for it:
    :func:`claim_wanted`; this is the second guard)."""
    job = rt.job(job_id)
    if not (same(job.provider, rt.address) and job.status == JobStatus.CLAIMED):
        return False
    if spec_hash and spec_hash.lower() != "0x" + job.spec_hash.hex():
        log.warning("reorged-out submission not sent again: the job's spec changed", extra={"job": job_id, "spec_hash": "0x" + job.spec_hash.hex()})
        return False
    return True


def wait_for_earlier_submission(rt: Runtime, job_id: int, hashes: list[str]) -> bool:
    """An earlier attempt broadcast `hashes` and died. While one of them is still in the pool, waits
    for it to be mined (up to PENDING_WAIT seconds). True when the chain then shows the job
    submitted by us (the record is updated); False when the transactions are gone (dropped, or
    mined and reverted): the caller sends anew."""
    deadline = time.monotonic() + PENDING_WAIT
    while True:
        known = False
        for tx_hash in hashes:
            if rt.rpc.get_receipt(tx_hash) is not None:
                known = False
                break
            if rt.rpc.get_transaction(tx_hash) is not None:
                known = True
        job = rt.job(job_id)
        if same(job.provider, rt.address) and job.status in AFTER_SUBMIT:
            mark_submitted(rt, job_id, job.deadline, reason="the pre-crash transaction was mined")
            log.info("pre-crash submission mined; not sending again", extra={"job": job_id, "tx": hashes[-1]})
            return True
        if not known or time.monotonic() > deadline:
            if known:
                log.warning("pre-crash submission still pending; sending a new one", extra={"job": job_id, "tx": hashes[-1]})
            return False
        log.info("waiting for the pre-crash submission", extra={"job": job_id, "tx": hashes[-1]})
        time.sleep(0.5)


# ---------------------------------------------------------------------------------------- reorgs


def reopen_if_undone(rt: Runtime, job_id: int) -> str | None:
    """A job whose claim or submission by us a reorg undid, whatever its local state: the chain is
    read and, when it shows the job Open again, the record says ``lost`` and the job goes to the
    dispatcher's deferred set to be considered afresh (``"open"``); when it shows the job Claimed by
    us but our record says the outcome was submitted, the recorded outcome is submitted again
    (``"resubmit"``). Returns None when the chain agrees with the record."""
    rec = rt.record(job_id)
    if not rec:
        return None
    job = rt.job(job_id)
    if job.status == JobStatus.OPEN:
        rt.state.zrem(rt.xkeys.submitted, str(job_id))
        mark_lost(rt, job_id, job, f"a reorg undid our claim (was {rec.get('state')})")
        log.warning("job open again after a reorg; reconsidering it", extra={"job": job_id, "state": rec.get("state")})
        return "open"
    if same(job.provider, rt.address) and job.status == JobStatus.CLAIMED and rec.get("state") in ("submitted", "finalized") and rec.get("kind"):
        rt.state.zrem(rt.xkeys.submitted, str(job_id))
        rt.set_record(job_id, "outcome", reason="a reorg undid the submission")
        queue.send("depin.submit", job_id)
        log.warning("submission undone by a reorg; submitting again", extra={"job": job_id})
        return "resubmit"
    return None
