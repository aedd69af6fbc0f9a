"""Arbiter mode: re-execute a disputed job and rule on it through the ArbiterResolver.

The dispatcher (role ``arbiter``) picks up every ``JobChallenged`` event whose resolver is the
deployment's ArbiterResolver and queues ``depin.arbitrate`` (compute queue). The task re-runs the job
(container ``…-arbiter``) and decides:

- the submission was a **result**: ``ProviderWins`` when the re-run's archive digest equals the
  submitted ``resultHash``, else ``ChallengerWins``;
- the submission was a **failure**: ``ProviderWins`` when the re-run fails with the same code,
  else ``ChallengerWins``.

The arbiter abstains (no ruling; after the resolve window anyone settles with no winner) when it
cannot judge: the image is not available to it, an input cannot be fetched, or the spec is invalid.
The ruling and its evidence hash (the re-run's digest, or its failure evidence hash) are recorded
before ``depin.rule`` is queued on the chain queue, which sends ``ArbiterResolver.rule`` only while
the job is still Disputed.
"""

from __future__ import annotations

import logging

from celery import Task

from depin.errors import SpecError
from depin.market import FailureCode, JobStatus, Ruling
from depin.transactions import TxReverted
from executor import queue
from executor.execution import execute_job, load_spec
from executor.runtime import Runtime

log = logging.getLogger("executor.arbiter")

CANNOT_JUDGE = (FailureCode.IMAGE_UNAVAILABLE,)


def decide(submission_failure: bool, submitted_hash: bytes, submitted_code: FailureCode | None, outcome: object) -> Ruling:
    """The ruling for a submission given the arbiter's own outcome of the job."""
    kind = outcome.kind
    if submission_failure:
        right = kind == "failure" and outcome.code == submitted_code
    else:
        right = kind == "result" and outcome.digest == submitted_hash
    return Ruling.PROVIDER_WINS if right else Ruling.CHALLENGER_WINS


def arbitrate_job(task: Task, rt: Runtime, job_id: int) -> None:
    lease = rt.lease(job_id)
    if not lease.acquire():
        return
    try:
        rec = rt.record(job_id)
        if rec.get("state") != "arbitrating":
            return
        job = rt.job(job_id)
        if job.status != JobStatus.DISPUTED:
            rt.set_record(job_id, "ruled", reason=f"job is {job.status.label}: nothing to rule")
            return
        submission = rt.client.submission(job_id)
        if submission is None:
            rt.set_record(job_id, "abstained", reason="no submission found")
            return
        try:
            spec = load_spec(rt, job_id, job.spec_hash)
        except SpecError as exc:
            rt.set_record(job_id, "abstained", reason=f"bad spec: {exc}"[:300])
            log.warning("abstaining: bad spec", extra={"job": job_id})
            return
        outcome = execute_job(rt, job_id, spec, "arbiter")
        if outcome.kind == "failure" and (outcome.retryable or outcome.code in CANNOT_JUDGE):
            rt.set_record(job_id, "abstained", reason=f"cannot judge: {outcome.code.name}: {outcome.reason}"[:300])
            log.warning("abstaining: cannot re-run the job", extra={"job": job_id, "code": outcome.code.name})
            return
        ruling = decide(submission.failure, submission.result_hash, submission.failure_code, outcome)
        evidence = outcome.digest if outcome.kind == "result" else outcome.evidence_hash
        rt.set_record(job_id, "ruling", ruling=int(ruling), evidence="0x" + evidence.hex(), provider=submission.provider)
        log.info("ruling decided", extra={"job": job_id, "ruling": ruling.name, "submitted": "0x" + submission.result_hash.hex(),
                                          "recomputed": "0x" + evidence.hex()})
    finally:
        lease.release()
    if rt.record(job_id).get("state") == "ruling":
        queue.send("depin.rule", job_id)


def rule_job(rt: Runtime, job_id: int) -> None:
    rec = rt.record(job_id)
    if rec.get("state") != "ruling":
        return
    job = rt.job(job_id)
    if job.status != JobStatus.DISPUTED:
        rt.set_record(job_id, "ruled", reason=f"job is {job.status.label}")
        return
    ruling = Ruling(int(rec["ruling"]))
    try:
        receipt = rt.client.rule(job_id, ruling, bytes.fromhex(rec["evidence"][2:]))
    except TxReverted:
        job = rt.job(job_id)
        if job.status != JobStatus.DISPUTED:
            rt.set_record(job_id, "ruled", reason=f"job is {job.status.label}")
            return
        raise
    rt.set_record(job_id, "ruled", tx=receipt.tx_hash)
    log.info("ruled", extra={"job": job_id, "ruling": ruling.name, "tx": receipt.tx_hash})
