"""The shared execution API of the executor: load a job's spec, run it in a container, turn the outcome into record fields, and the record transitions
every role uses when a job leaves its hands (lost, given up, late, submitted).

Plain functions over a :class:`~executor.runtime.Runtime`; no Celery here (:mod:`executor.tasks`
wraps the roles' functions into tasks) and no queueing (:mod:`executor.queue`).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from depin.market import JobStatus
from depin.spec import JobSpec, parse_spec, spec_hash
from executor.containers import LABEL_EXECUTOR, LABEL_LEASE, MIB
from executor.execute import Outcome, execute, provider_faults
from executor.results import Submission, prepare_submission
from executor.runtime import PASSING_RECORD_TTL, Runtime

AFTER_SUBMIT = (JobStatus.SUBMITTED, JobStatus.DISPUTED, JobStatus.FINALIZED, JobStatus.RESOLVED)
# Seconds before the dispatcher looks again at a job whose id holds another post than the one it
# approved (a reorg the index has not caught up with: the index still shows the approved post, so
# looking at once approves it again, and the claim finds it lost again, every pass, 50 ms apart,
# for as long as the index lags). The index's own catching up (the retraction and the new JobPosted)
# has it judged afresh at once.
ANOTHER_POST_RETRY = 10.0


def same(a: str | None, b: str | None) -> bool:
    """Whether two addresses are the same (case-insensitive); an empty one is nobody."""
    return bool(a) and bool(b) and a.lower() == b.lower()  # type: ignore[union-attr]


def sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


# ---------------------------------------------------------------------------------------- records


def mark_lost(rt: Runtime, job_id: int, job: Any, reason: str, *, retry_in: float = 0.0) -> None:
    """The job is not ours (any more). When it is Open again (a reorg removed our claim, a timeout
    reopened it) the dispatcher is asked to consider it afresh, `retry_in` seconds from now at the
    earliest (:data:`ANOTHER_POST_RETRY` for a job whose id holds another post than approved)."""
    keep = bool(rt.record(job_id).get("refused"))  # a refusal outlives the record's other states
    rt.set_record(job_id, "lost", reason=reason, expire_at=None if keep else time.time() + PASSING_RECORD_TTL)
    if job.status == JobStatus.OPEN and "provider" in rt.roles:
        rt.state.zadd(rt.xkeys.deferred, {str(job_id): time.time() + retry_in}, nx=True)


def give_up(rt: Runtime, job_id: int, reason: str) -> None:
    """Records the job abandoned and refused: this executor never claims it again."""
    rt.set_record(job_id, "abandoned", reason=reason)
    rt.refuse(job_id, f"abandoned: {reason}")


def mark_late(rt: Runtime, job_id: int, reason: str) -> None:
    """The submit deadline passed in our hands: recorded late and refused."""
    rt.set_record(job_id, "late", reason=reason)
    rt.refuse(job_id, f"late: {reason}")


def mark_submitted(rt: Runtime, job_id: int, deadline: int, **fields: Any) -> None:
    rt.set_record(job_id, "submitted", challenge_deadline=deadline, **fields)


# ---------------------------------------------------------------------------------------- execution


def load_spec(rt: Runtime, job_id: int, expected: bytes) -> JobSpec:
    """The job's spec: the index's bytes when they hash to the on-chain `expected` hash, else the
    chain's own (the JobPosted event; the index may lag or be mid-reorg). Raises SpecError only for
    bytes that do hash right but are not a valid spec: a provable BAD_SPEC."""
    idx = rt.reader.job_fields(job_id)
    raw: bytes | None = None
    if idx.get("specJson") is not None:
        raw = idx["specJson"].encode()
    elif idx.get("spec"):
        raw = bytes.fromhex(idx["spec"].removeprefix("0x"))
    if raw is None or spec_hash(raw) != expected:
        raw = rt.client.spec_bytes(job_id)
    return parse_spec(raw, expected_hash=expected)


def execute_job(rt: Runtime, job_id: int, spec: JobSpec, role: str, input_deadline: float | None = None) -> Outcome:
    """Runs the job in this executor's container for `role`, within the policy; `input_deadline`
    (a ``time.monotonic()`` instant) ends its http(s) input downloads."""
    return execute(
        rt.docker,
        job_id=job_id,
        spec=spec,
        work_root=rt.work_root,
        store=rt.store,
        name=rt.container_name(job_id),
        labels={LABEL_EXECUTOR: rt.instance, LABEL_LEASE: rt.xkeys.lease(job_id)},  # the lease its run holds (the reaper reads it)
        limits_cap=rt.config.policy,
        input_allow_networks=rt.config.policy.input_allow_networks,
        max_input_bytes=rt.config.policy.max_input_mb * MIB,
        input_deadline=input_deadline,
    )


def outcome_fields(outcome: Any) -> dict[str, Any]:
    """The record fields of a run's outcome (what the submission sends)."""
    if outcome.kind == "result":
        return {"kind": "result", "digest": "0x" + outcome.digest.hex(), "uri": outcome.uri, "exit_code": outcome.exit_code, "size": outcome.size}
    return {
        "kind": "failure",
        "code": int(outcome.code),
        "failure_reason": outcome.reason[:500],
        "evidence": "0x" + outcome.evidence_hash.hex(),
    }


def journal_outcome(rt: Runtime, job_id: int, spec_hash: bytes, outcome: Outcome) -> Submission:
    """The job's submission for `outcome`, journaled (salt, commitment, opaque name) before anything
    is sent: :func:`executor.results.prepare_submission` over this executor's journal and store. A
    job journaled before (a re-run after a crash, or another run that took the job over) gets that
    first entry back unchanged. This machine failing to write it (disk full: ``PROVIDER_ERRNOS``)
    is :class:`~executor.execute.ProviderFault`, retried."""
    if outcome.kind == "result":
        assert outcome.digest is not None
        return journal_result(rt, job_id, spec_hash, outcome.digest, outcome.match_digest, outcome.name)
    assert outcome.code is not None and outcome.evidence_hash is not None
    return journal_failure(rt, job_id, spec_hash, int(outcome.code), outcome.evidence_hash)


def journal_result(rt: Runtime, job_id: int, spec_hash: bytes, digest: bytes, committed: bytes | None, name: str) -> Submission:
    """:func:`journal_outcome` for a result: the archive's `digest`, the `committed` match digest
    and its opaque `name` in the store."""
    with provider_faults("journaling the submission"):
        return prepare_submission(
            rt.journal, rt.store, job_id=job_id, spec_hash=spec_hash, party=rt.address, kind="result", digest=digest, committed=committed, name=name,
        )


def journal_failure(rt: Runtime, job_id: int, spec_hash: bytes, code: int, evidence_hash: bytes) -> Submission:
    """:func:`journal_outcome` for a failure known without a run (a bad spec)."""
    with provider_faults("journaling the submission"):
        return prepare_submission(
            rt.journal, rt.store, job_id=job_id, spec_hash=spec_hash, party=rt.address, kind="failure", digest=evidence_hash, code=code
        )


def submission_fields(sub: Submission) -> dict[str, Any]:
    """The record fields that say what a journaled submission sends (they override the run's own
    when the journal kept an earlier run's entry)."""
    fields: dict[str, Any] = {"kind": sub.kind, "commitment": sub.commitment, "committed": sub.committed}
    if sub.kind == "result":
        fields.update(digest=sub.digest, uri=sub.uri, name=sub.name)
    else:
        fields.update(code=sub.code, evidence=sub.digest)
    return fields
