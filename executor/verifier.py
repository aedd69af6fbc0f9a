"""Verifier mode: re-execute other providers' submitted results and challenge the wrong ones.

The dispatcher (role ``verifier``) picks up every ``ResultSubmitted`` event of another provider and,
at ``[executor] verify_sample_rate`` (1.0 on the devnet: every result), queues ``depin.verify`` on
the compute queue. The task re-runs the job in a hardened container exactly as a provider would
(same spec, same limits, its own container name ``…-verifier``) and compares the digest of the
``depin-result-v1`` archive with the on-chain ``resultHash``:

- equal: the record says ``verified``;
- different: the record says ``challenge`` (with both digests) and ``depin.challenge`` is queued on
  the chain queue, which posts the bond (``Client.challenge`` approves it) while the challenge
  window is still open; after the window the record says ``too_late``.

Only result-versus-result disagreements are challenged. A failure submission (out of memory, time
limit, ...) and a re-run that itself ends in a failure are *inconclusive* here: they depend on the
machine (speed, the images it holds) as much as on the provider's honesty, and a wrong challenge
costs the bond. The arbiter judges failures when someone else disputes them.
"""

from __future__ import annotations

import logging
import time

from celery import Task

from depin.errors import SpecError
from depin.market import JobStatus
from depin.transactions import TxReverted
from executor import queue
from executor.execute import PolicyRefused
from executor.execution import execute_job, load_spec
from executor.runtime import Runtime

log = logging.getLogger("executor.verifier")


def verify_job(task: Task, rt: Runtime, job_id: int) -> None:
    lease = rt.lease(job_id)
    if not lease.acquire():
        return
    try:
        rec = rt.record(job_id)
        if rec.get("state") != "verifying":
            return
        job = rt.job(job_id)
        if job.status != JobStatus.SUBMITTED:
            rt.set_record(job_id, "verified", reason=f"job is {job.status.label}: nothing to verify")
            return
        if job.failure:
            rt.set_record(job_id, "verified", reason="a failure submission: not re-executed (inconclusive)")
            return
        submission = rt.client.submission(job_id)
        if submission is None or submission.failure:
            rt.set_record(job_id, "verified", reason="no result submission found")
            return
        if job.deadline < rt.chain_now():
            rt.set_record(job_id, "too_late", reason="the challenge window closed before the re-run")
            return
        try:
            spec = load_spec(rt, job_id, job.spec_hash)
        except SpecError as exc:
            rt.set_record(job_id, "verified", reason=f"bad spec, inconclusive: {exc}"[:300])
            return
        t0 = time.monotonic()
        try:
            outcome = execute_job(rt, job_id, spec, "verifier")
        except PolicyRefused as exc:
            rt.set_record(job_id, "verified", reason=f"not re-executed: {exc}"[:300])
            log.info("verification skipped: beyond this machine's policy", extra={"job": job_id})
            return
        claimed = "0x" + submission.result_hash.hex()
        if outcome.kind != "result":
            rt.set_record(job_id, "verified", reason=f"re-run failed ({outcome.code.name}): inconclusive", expected=claimed)
            log.warning("verification inconclusive", extra={"job": job_id, "code": outcome.code.name, "reason": outcome.reason[:200]})
            return
        ours = "0x" + outcome.digest.hex()
        if ours == claimed:
            rt.set_record(job_id, "verified", digest=ours, provider=submission.provider)
            log.info("result verified", extra={"job": job_id, "digest": ours, "seconds": round(time.monotonic() - t0, 3)})
            return
        rt.set_record(job_id, "challenge", digest=ours, claimed=claimed, provider=submission.provider, uri=outcome.uri)
        log.warning("result mismatch: challenging", extra={"job": job_id, "claimed": claimed, "recomputed": ours, "provider": submission.provider})
    finally:
        lease.release()
    if rt.record(job_id).get("state") == "challenge":
        queue.send("depin.challenge", job_id)


def challenge_job(rt: Runtime, job_id: int) -> None:
    rec = rt.record(job_id)
    if rec.get("state") != "challenge":
        return
    job = rt.job(job_id)
    if job.status != JobStatus.SUBMITTED:
        rt.set_record(job_id, "challenged" if job.status in (JobStatus.DISPUTED, JobStatus.RESOLVED) else "too_late",
                      reason=f"job is {job.status.label}", challenger=job.challenger or "")
        return
    if job.deadline < rt.chain_now():
        rt.set_record(job_id, "too_late", reason="the challenge window closed")
        log.error("challenge window closed before the challenge", extra={"job": job_id})
        return
    try:
        receipt = rt.client.challenge(job_id)
    except TxReverted as exc:
        job = rt.job(job_id)
        if job.status == JobStatus.DISPUTED:
            rt.set_record(job_id, "challenged", reason="challenged by someone else", challenger=job.challenger or "")
            return
        rt.set_record(job_id, "too_late", reason=exc.reason[:300])
        log.error("challenge refused", extra={"job": job_id, "error": exc.error_name})
        return
    rt.set_record(job_id, "challenged", tx=receipt.tx_hash)
    log.info("challenged", extra={"job": job_id, "tx": receipt.tx_hash})
