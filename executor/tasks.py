"""The executor's Celery tasks. Every one is idempotent, keyed by job id, and safe to run twice or
to be killed at any instruction.

How each job task stays safe (the crash-safety argument, in the order a job goes):

1. **Read the chain first.** Every task reads ``getJob`` before it acts and acts only on the state
   it expects (claim: Open; run and submit: Claimed *by us*; challenge: Submitted; rule: Disputed).
   Anything else means the work is done or no longer ours: the task records that and returns.
   The contract's state machine makes a second submission impossible (WrongStatus); reading first
   makes sure we never even send it.
2. **Hold the job's lease** (:mod:`executor.lease`) while running or submitting, so that two
   deliveries of one job never work at once; a killed worker's lease expires after its TTL.
3. **Deterministic container name** per job and role: a re-run removes its predecessor's container
   first (:func:`executor.execute.execute`), and the reaper removes containers of jobs no longer in hand.
4. **Record before acting on the chain.** The outcome of a run (digest, URI, or failure code and
   evidence) is written to the job's record *before* the submission is queued; the archive is in the
   content-addressed store already. After a crash the record says "outcome", so a restart submits
   instead of running again, and the submit task's chain read skips the transaction if it was mined
   before the crash.
5. **Recovery** (:func:`recover`, every beat and at worker start): a job in hand whose lease is free
   and whose record has not moved for a while gets its next task queued again. Broker redelivery
   (acks_late, visibility timeout) is the backstop, not the mechanism. A job the chain shows
   claimed by us without any local record (the executor's database was lost) is adopted and run;
   a submitted one is finalized from the index. So the chain, not Redis, is the source of truth.
6. **A job that beat this executor is never claimed again by it.** When its run crashes with an
   unexpected exception (recorded ``abandoned`` at once: no crash-and-rerun loop), a task gives it up
   at the redelivery cap, or its submit deadline passes in our hands (``late``), the job's record
   gets a ``refused`` field with the reason (:meth:`Runtime.refuse`); the dispatcher's ``consider`` refuses
   such a job (and any Open job the index shows we claimed before: we timed out on it) with a
   logged reason, so a timeout that reopens the job does not hand it back to us to burn more stake.
   Output handling itself never raises for the job's doing (:mod:`executor.execute`): it is a
   submitted failure code.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import Task
from celery.signals import worker_process_init, worker_ready

from depin.errors import ChainError, SpecError
from depin.market import FailureCode, JobStatus
from depin.spec import JobSpec, parse_spec
from executor.app import CHAIN_HARD_LIMIT, CHAIN_SOFT_LIMIT, MAX_DELIVERIES, MAX_RETRIES, ROUTES, app
from executor.runtime import Runtime, get_runtime, set_runtime

log = logging.getLogger("executor.tasks")

RECOVER_AFTER = float(os.environ.get("DEPIN_RECOVER_AFTER", "30"))  # seconds without progress
FORCED_RECOVER_AFTER = 2.0  # at worker start: anything idle this long whose lease is free
MAX_RECOVERIES = int(os.environ.get("DEPIN_MAX_RECOVERIES", "5"))  # then each recovery logs an error
RETRY_FETCH_AFTER = 5  # seconds before re-running a job whose input could not be fetched
AFTER_SUBMIT = (JobStatus.SUBMITTED, JobStatus.DISPUTED, JobStatus.FINALIZED, JobStatus.RESOLVED)
POKE_LIMIT = 10  # deadline transitions sent per beat and kind


def _transient() -> tuple[type[BaseException], ...]:
    from executor.containers import ContainerEngineError
    from executor.engine import EngineUnavailable
    from executor.execute import ProviderFault

    return (ChainError, redis.ConnectionError, redis.TimeoutError, ContainerEngineError, EngineUnavailable, ProviderFault)


def _reverts() -> tuple[type[BaseException], ...]:
    from depin.transactions import TxReverted

    return (TxReverted,)


class JobTask(Task):
    """Retries transient errors (chain, Redis, engine) with capped exponential backoff; never a revert."""

    autoretry_for = _transient()
    dont_autoretry_for = _reverts()
    retry_backoff = 2
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = MAX_RETRIES
    acks_late = True
    reject_on_worker_lost = True
    typing = False


def send(name: str, job_id: int | None = None, **kwargs: Any) -> None:
    """Queues task `name` (on its queue) for `job_id`."""
    args = [] if job_id is None else [int(job_id)]
    app.send_task(name, args=args, kwargs=kwargs or None, queue=ROUTES[name])


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and a.lower() == b.lower()  # type: ignore[union-attr]


def job_task(name: str, *, give_up: Callable[[Runtime, int, str], None] | None = None, **options: Any) -> Callable:
    """A job task with the redelivery cap: every delivery is counted in Redis before the body runs
    and counted off when the body ends (returns or raises). Only deliveries that died mid-way
    (kill -9, the hard time limit, a lost worker) stay counted; past MAX_DELIVERIES the job is given
    up loudly with `give_up`."""
    if ROUTES[name] == "chain":
        options.setdefault("soft_time_limit", CHAIN_SOFT_LIMIT)
        options.setdefault("time_limit", CHAIN_HARD_LIMIT)

    def decorate(fn: Callable[..., Any]) -> Any:
        def body(self: Task, job_id: int, *args: Any, **kwargs: Any) -> Any:
            rt = get_runtime()
            job_id = int(job_id)
            key = rt.xkeys.deliveries(name, job_id)
            count = int(rt.state.incr(key))
            rt.state.expire(key, 86_400)
            if count > MAX_DELIVERIES:
                reason = f"{name} died {count - 1} times in a row on this job (redelivery cap {MAX_DELIVERIES})"
                log.critical("giving the job up", extra={"job": job_id, "task": name, "reason": reason})
                rt.state.delete(key)
                if give_up is not None:
                    give_up(rt, job_id, reason)
                return None
            try:
                return fn(self, rt, job_id, *args, **kwargs)
            finally:
                try:  # DECR, not DEL: a duplicate delivery ending must not erase a dead one's count
                    if int(rt.state.decr(key)) <= 0:
                        rt.state.delete(key)
                except redis.RedisError:
                    pass

        body.__name__ = fn.__name__
        body.__doc__ = fn.__doc__
        return app.task(name=name, bind=True, base=JobTask, **options)(body)

    return decorate


def _lost(rt: Runtime, job_id: int, job: Any, reason: str) -> None:
    """The job is not ours (any more). When it is Open again (a reorg removed our claim, a timeout
    reopened it) the dispatcher is asked to consider it afresh."""
    rt.set_record(job_id, "lost", reason=reason)
    if job.status == JobStatus.OPEN and rt.role == "provider":
        rt.state.zadd(rt.xkeys.deferred, {str(job_id): time.time()}, nx=True)


def _give_up(rt: Runtime, job_id: int, reason: str) -> None:
    rt.set_record(job_id, "abandoned", reason=reason)
    rt.refuse(job_id, f"abandoned: {reason}")


def _abandon(rt: Runtime, job_id: int, reason: str) -> None:
    rec = rt.record(job_id)
    if rec.get("state") == "outcome":  # the result is safe: submitting it is the right thing
        send("depin.submit", job_id)
        return
    _give_up(rt, job_id, reason)


def _late(rt: Runtime, job_id: int, reason: str) -> None:
    rt.set_record(job_id, "late", reason=reason)
    rt.refuse(job_id, f"late: {reason}")


# ---------------------------------------------------------------------------------------- helpers


def _spec_for(rt: Runtime, job_id: int, expected: bytes) -> JobSpec:
    """The job's spec: the index's bytes when they hash to the on-chain `expected` hash, else the
    chain's own (the JobPosted event; the index may lag or be mid-reorg). Raises SpecError only for
    bytes that do hash right but are not a valid spec: a provable BAD_SPEC."""
    from depin.spec import spec_hash

    idx = rt.indexed_job(job_id)
    raw: bytes | None = None
    if idx.get("specJson") is not None:
        raw = idx["specJson"].encode()
    elif idx.get("spec"):
        raw = bytes.fromhex(idx["spec"].removeprefix("0x"))
    if raw is None or spec_hash(raw) != expected:
        raw = rt.client.spec_bytes(job_id)
    return parse_spec(raw, expected_hash=expected)


def _execute(rt: Runtime, job_id: int, spec: JobSpec, role: str) -> Any:
    from executor.containers import LABEL_EXECUTOR
    from executor.execute import execute

    return execute(
        rt.docker,
        job_id=job_id,
        spec=spec,
        work_root=rt.work_root,
        store=rt.store,
        name=rt.container_name(job_id),
        labels={LABEL_EXECUTOR: rt.instance},
        limits_cap=None if role == "arbiter" else rt.config.policy,  # the arbiter must judge whatever it gets
    )


def _outcome_fields(outcome: Any) -> dict[str, Any]:
    if outcome.kind == "result":
        return {"kind": "result", "digest": "0x" + outcome.digest.hex(), "uri": outcome.uri, "exit_code": outcome.exit_code, "size": outcome.size}
    return {
        "kind": "failure",
        "code": int(outcome.code),
        "failure_reason": outcome.reason[:500],
        "evidence": "0x" + outcome.evidence_hash.hex(),
    }


# ---------------------------------------------------------------------------------------- provider


@job_task("depin.claim", give_up=_give_up)
def claim(self: Task, rt: Runtime, job_id: int) -> None:
    """Claims an Open job the dispatcher accepted, then queues its run. Losing the race is normal."""
    from depin.transactions import TxReverted

    rec = rt.record(job_id)
    if rec.get("state") not in ("claiming", None):
        return
    job = rt.job(job_id)
    if job.status == JobStatus.CLAIMED and same(job.provider, rt.address):
        pass  # claimed before a crash: carry on
    elif _submitted_by_us(rt, job_id, job):
        return
    elif job.status != JobStatus.OPEN:
        _lost(rt, job_id, job, f"job is {job.status.label}")
        log.info("claim skipped: job no longer open", extra={"job": job_id, "status": job.status.label})
        return
    elif rec.get("spec_hash") and rec["spec_hash"] != "0x" + job.spec_hash.hex():
        # A reorg replaced the job under the same id: the policy approved another spec.
        _lost(rt, job_id, job, f"the on-chain spec hash is 0x{job.spec_hash.hex()}, not the approved {rec['spec_hash']}")
        log.warning("claim skipped: the job's spec changed since it was approved (reorg)", extra={"job": job_id})
        return
    else:
        try:
            receipt = rt.client.claim(job_id)
            log.info("claimed", extra={"job": job_id, "tx": receipt.tx_hash})
        except TxReverted as exc:
            job = rt.job(job_id)
            if _submitted_by_us(rt, job_id, job):
                return
            if not (job.status == JobStatus.CLAIMED and same(job.provider, rt.address)):
                _lost(rt, job_id, job, exc.error_name or exc.reason)
                log.info("claim race lost", extra={"job": job_id, "error": exc.error_name, "status": job.status.label})
                return
    rt.set_record(job_id, "claimed", claimed_at=time.time())
    send("depin.run", job_id)


def _submitted_by_us(rt: Runtime, job_id: int, job: Any) -> bool:
    """The chain shows our submission already (a reorg undid our claim and submission, and the
    signer sent both again, unchanged): the record says submitted."""
    if not (same(job.provider, rt.address) and job.status in AFTER_SUBMIT):
        return False
    _mark_submitted(rt, job_id, job.deadline, reason="our earlier claim and submission are on chain")
    log.info("claim skipped: our submission is on chain", extra={"job": job_id, "status": job.status.label})
    return True


@job_task("depin.run", give_up=_abandon)
def run(self: Task, rt: Runtime, job_id: int) -> None:
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
            _lost(rt, job_id, job, f"job is {job.status.label}, provider {job.provider}")
            log.warning("run skipped: the job is not ours", extra={"job": job_id, "status": job.status.label})
            return
        if job.status != JobStatus.CLAIMED:
            _mark_submitted(rt, job_id, job.deadline, reason="submitted before a restart")
            return
        now = rt.chain_now()
        if job.deadline <= now:
            _late(rt, job_id, f"submit deadline {job.deadline} passed")
            log.error("submit deadline passed before the run", extra={"job": job_id, "deadline": job.deadline})
            return
        try:
            spec = _spec_for(rt, job_id, job.spec_hash)
        except SpecError as exc:
            rt.set_record(job_id, "outcome", kind="failure", code=int(FailureCode.BAD_SPEC), failure_reason=str(exc)[:500],
                          evidence="0x" + _sha256(f"depin-failure-v1\njob: {job_id}\ncode: BAD_SPEC\nreason: {exc}\n").hex())
            send("depin.submit", job_id)
            return
        rt.set_record(job_id, "running", started=time.time())
        log.info("running", extra={"job": job_id, "image": spec.image})
        from executor.execute import PolicyRefused

        try:
            outcome = _execute(rt, job_id, spec, "provider")
        except PolicyRefused as exc:  # the dispatcher checks the same limits: a changed policy
            _give_up(rt, job_id, str(exc)[:300])
            log.error("claimed job is beyond the policy now; it will time out", extra={"job": job_id, "reason": str(exc)[:300]})
            return
        except _transient():
            raise  # retried with backoff (JobTask.autoretry_for); recovery re-queues after that
        except Exception as exc:  # noqa: BLE001 - a bug or a surprise: give up once, never a crash-and-rerun loop
            _give_up(rt, job_id, f"the run crashed: {type(exc).__name__}: {exc}"[:300])
            log.exception("run crashed; job abandoned and never claimed again", extra={"job": job_id, "error": str(exc)[:300]})
            return
        if outcome.kind == "failure" and outcome.retryable:
            left = job.deadline - rt.chain_now()
            if left > spec.resources.max_runtime + 2 * RETRY_FETCH_AFTER + 5:
                rt.set_record(job_id, "claimed", reason=outcome.reason[:300])
                log.warning("input unavailable; retrying", extra={"job": job_id, "reason": outcome.reason[:300]})
                raise self.retry(countdown=RETRY_FETCH_AFTER, max_retries=None)
        fields = _outcome_fields(outcome)
        rt.set_record(job_id, "outcome", **fields)
        log.info("outcome recorded", extra={"job": job_id, **fields, "lease_lost": lease.lost})
    finally:
        lease.release()
    send("depin.submit", job_id)


def _sha256(text: str) -> bytes:
    import hashlib

    return hashlib.sha256(text.encode()).digest()


@job_task("depin.submit", give_up=_give_up)
def submit(self: Task, rt: Runtime, job_id: int) -> None:
    """Submits the recorded outcome, unless the chain shows it submitted already."""
    from depin.transactions import TxReverted

    lease = rt.lease(job_id)
    if not lease.acquire():
        raise self.retry(countdown=max(1.0, rt.lease_ttl / 2), max_retries=None)
    try:
        rec = rt.record(job_id)
        if rec.get("state") != "outcome":
            return
        job = rt.job(job_id)
        if same(job.provider, rt.address) and job.status in AFTER_SUBMIT:
            _mark_submitted(rt, job_id, job.deadline, reason="already on chain")
            log.info("submission found on chain; not sending again", extra={"job": job_id, "status": job.status.label})
            return
        if not (same(job.provider, rt.address) and job.status == JobStatus.CLAIMED):
            _lost(rt, job_id, job, f"job is {job.status.label}, provider {job.provider}")
            log.warning("submission skipped: the job is not ours any more", extra={"job": job_id, "status": job.status.label})
            return
        if job.deadline < rt.chain_now():
            _late(rt, job_id, f"submit deadline {job.deadline} passed")
            log.error("submit deadline passed", extra={"job": job_id})
            return
        if rec.get("tx_pending") and _wait_for_earlier_submission(rt, job_id, rec["tx_pending"].split(",")):
            return
        try:
            if rec.get("kind") == "result":
                receipt = _send_recorded(rt, job_id, "submitResult", job_id, bytes.fromhex(rec["digest"][2:]), rec["uri"])
            else:
                receipt = _send_recorded(rt, job_id, "submitFailure", job_id, int(rec["code"]), bytes.fromhex(rec["evidence"][2:]))
        except TxReverted as exc:
            job = rt.job(job_id)
            if same(job.provider, rt.address) and job.status in AFTER_SUBMIT:
                _mark_submitted(rt, job_id, job.deadline, reason="already on chain")
                return
            if exc.error_name == "TooLate":
                _late(rt, job_id, exc.reason)
                log.error("submission too late", extra={"job": job_id})
                return
            raise
        job = rt.job(job_id)
        _mark_submitted(rt, job_id, job.deadline, tx=receipt.tx_hash)
        log.info("submitted", extra={"job": job_id, "kind": rec.get("kind"), "tx": receipt.tx_hash})
    finally:
        lease.release()


PENDING_WAIT = float(os.environ.get("DEPIN_PENDING_WAIT", "120"))  # seconds to wait for a pre-crash transaction


def _send_recorded(rt: Runtime, job_id: int, fn: str, *args: Any) -> Any:
    """Sends ``JobMarket.fn(args)`` like :meth:`depin.client.Client.transact`, but records the
    transaction hash in the job's record between the broadcast and the wait: a worker killed while
    the transaction is in the pool leaves its hash behind, and the next attempt waits for that
    transaction instead of sending a second one."""
    client = rt.client
    tx = client.tx
    if tx is None:
        raise RuntimeError("the executor's client has no signing account")
    to, data = client.addresses["JobMarket"], client.codec.encode("JobMarket", fn, *args)
    what = f"JobMarket.{fn}"
    gas = tx.estimate_gas(to, data, what=what)  # TxReverted here: nothing was sent
    # a re-send after a drop or a reorg goes through the same "already done on chain?" check
    pending = tx.broadcast(to, data, gas=gas, what=what, still_needed=lambda: _submission_needed(rt, job_id))
    rt.set_record(job_id, tx_pending=",".join(pending.hashes), tx_nonce=pending.nonce)
    return tx.wait(pending)


def _submission_needed(rt: Runtime, job_id: int) -> bool:
    """Whether the job still waits for our submission on chain (Claimed by us): asked by the signer
    before it sends a dropped or reorged-out submission again."""
    job = rt.job(job_id)
    return same(job.provider, rt.address) and job.status == JobStatus.CLAIMED


def _wait_for_earlier_submission(rt: Runtime, job_id: int, hashes: list[str]) -> bool:
    """An earlier attempt broadcast `hashes` and died. While one of them is still in the pool, waits
    for it to be mined (up to PENDING_WAIT seconds). True when the chain then shows the job
    submitted by us (the record is updated); False when the transactions are gone (dropped, or
    mined and reverted): the caller sends anew."""
    deadline = time.monotonic() + PENDING_WAIT
    while True:
        known = False
        for tx_hash in hashes:
            if rt.rpc.call("eth_getTransactionReceipt", [tx_hash]) is not None:
                known = False
                break
            if rt.rpc.call("eth_getTransactionByHash", [tx_hash]) is not None:
                known = True
        job = rt.job(job_id)
        if same(job.provider, rt.address) and job.status in AFTER_SUBMIT:
            _mark_submitted(rt, job_id, job.deadline, reason="the pre-crash transaction was mined")
            log.info("pre-crash submission mined; not sending again", extra={"job": job_id, "tx": hashes[-1]})
            return True
        if not known or time.monotonic() > deadline:
            if known:
                log.warning("pre-crash submission still pending; sending a new one", extra={"job": job_id, "tx": hashes[-1]})
            return False
        log.info("waiting for the pre-crash submission", extra={"job": job_id, "tx": hashes[-1]})
        time.sleep(0.5)


def _mark_submitted(rt: Runtime, job_id: int, deadline: int, **fields: Any) -> None:
    rt.set_record(job_id, "submitted", challenge_deadline=deadline, **fields)


# ---------------------------------------------------------------------------------------- verifier


@job_task("depin.verify", give_up=lambda rt, j, why: rt.set_record(j, "abandoned", reason=why))
def verify(self: Task, rt: Runtime, job_id: int) -> None:
    """Re-executes another provider's submitted result; a different digest queues a challenge."""
    from executor.verifier import verify_job

    verify_job(self, rt, job_id)


@job_task("depin.challenge", give_up=lambda rt, j, why: rt.set_record(j, "abandoned", reason=why))
def challenge(self: Task, rt: Runtime, job_id: int) -> None:
    """Challenges a submission that re-execution contradicted, while the window is open."""
    from executor.verifier import challenge_job

    challenge_job(rt, job_id)


# ---------------------------------------------------------------------------------------- arbiter


@job_task("depin.arbitrate", give_up=lambda rt, j, why: rt.set_record(j, "abandoned", reason=why))
def arbitrate(self: Task, rt: Runtime, job_id: int) -> None:
    """Re-executes a disputed job and decides the ruling."""
    from executor.arbiter import arbitrate_job

    arbitrate_job(self, rt, job_id)


@job_task("depin.rule", give_up=lambda rt, j, why: rt.set_record(j, "abandoned", reason=why))
def rule(self: Task, rt: Runtime, job_id: int) -> None:
    """Sends the recorded ruling through the ArbiterResolver."""
    from executor.arbiter import rule_job

    rule_job(rt, job_id)


# ---------------------------------------------------------------------------------------- beat


@app.task(name="depin.finalize_due", base=JobTask, max_retries=0, autoretry_for=())
def finalize_due() -> int:
    """Finalizes submitted jobs whose challenge window has closed: ours, and in verifier mode any."""
    rt = get_runtime()
    now = rt.chain_now()
    ids = {int(j) for j in rt.state.zrangebyscore(rt.xkeys.submitted, 0, now - 1, start=0, num=100)}
    # The index too, so that no local record is needed to get paid (one lost to a crash, a wiped
    # broker database): ours, and in verifier mode everybody's.
    provider = None if rt.role == "verifier" else rt.address
    ids |= _index_due(rt, "Submitted", "deadline", now, limit=200, provider=provider)
    if not ids:
        return 0
    ready = []
    for job_id in sorted(ids):
        job = rt.job(job_id)
        if job.status == JobStatus.SUBMITTED and now > job.deadline:
            ready.append(job_id)
        elif job.status != JobStatus.SUBMITTED:
            _settled(rt, job_id, job.status)
    if not ready:
        return 0
    from depin.transactions import TxReverted

    try:
        receipt = rt.client.finalize_many(ready)
    except TxReverted as exc:
        log.info("finalize skipped", extra={"jobs": ",".join(map(str, ready)), "error": exc.error_name})
        return 0
    count = rt.client.finalized_count(receipt)
    for job_id in ready:
        _settled(rt, job_id, rt.job(job_id).status)
    log.info("finalized", extra={"jobs": ",".join(map(str, ready)), "count": count, "tx": receipt.tx_hash})
    return count


def _settled(rt: Runtime, job_id: int, status: JobStatus) -> None:
    if status == JobStatus.SUBMITTED:
        return
    rt.state.zrem(rt.xkeys.submitted, str(job_id))
    if rt.state.exists(rt.xkeys.job(job_id)) and rt.record(job_id).get("state") == "submitted":
        rt.set_record(job_id, "finalized" if status.settled else "submitted", chain_status=status.label)


def _index_due(rt: Runtime, status: str, field: str, now: int, limit: int = 200, provider: str | None = None) -> set[int]:
    """Job ids the index lists in `status` whose `field` deadline is before `now` (and, with
    `provider`, whose provider it is)."""
    ids = rt.index.zrange(rt.index_keys.jobs_by_status(status), 0, limit - 1)
    if not ids:
        return set()
    pipe = rt.index.pipeline(transaction=False)
    for j in ids:
        pipe.hmget(rt.index_keys.job(int(j)), [field, "provider"])
    due = set()
    for j, (value, who) in zip(ids, pipe.execute(), strict=True):
        if value and int(value) < now and (provider is None or same(who, provider)):
            due.add(int(j))
    return due


@app.task(name="depin.poke", base=JobTask, max_retries=0, autoretry_for=())
def poke() -> int:
    """Sends the permissionless deadline transitions that are due: expire (Open past its claim
    deadline), timeout (Claimed past its submit deadline), settleUnresolved (Disputed past its
    resolve deadline). Losing the race to another poker is quiet."""
    from depin.transactions import TxReverted

    rt = get_runtime()
    now = rt.chain_now()
    sent = 0
    actions = (
        ("Open", "claimDeadline", JobStatus.OPEN, "claim_deadline", rt.client.expire),
        ("Claimed", "deadline", JobStatus.CLAIMED, "deadline", rt.client.timeout),
        ("Disputed", "deadline", JobStatus.DISPUTED, "deadline", rt.client.settle_unresolved),
    )
    for status, field, expected, attr, action in actions:
        for job_id in sorted(_index_due(rt, status, field, now))[:POKE_LIMIT]:
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


@app.task(name="depin.withdraw", base=JobTask, max_retries=0, autoretry_for=())
def withdraw() -> int:
    """Withdraws the market balance when it is above ``[executor] withdraw_threshold``."""
    from depin.deployment import to_wei
    from depin.transactions import TxReverted

    rt = get_runtime()
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


NEXT_TASK = {
    "claiming": "depin.claim",
    "claimed": "depin.run",
    "running": "depin.run",
    "outcome": "depin.submit",
    "verifying": "depin.verify",
    "challenge": "depin.challenge",
    "arbitrating": "depin.arbitrate",
    "ruling": "depin.rule",
}


@app.task(name="depin.recover", base=JobTask, max_retries=0, autoretry_for=())
def recover(force: bool = False) -> int:
    """Re-queues the next task of every job in hand whose lease is free and whose record has not
    moved for ``DEPIN_RECOVER_AFTER`` seconds (or, with `force` at worker start, for 2 s); removes
    this executor's orphan containers."""
    rt = get_runtime()
    now = time.time()
    requeued = 0
    active = [int(j) for j in rt.state.zrange(rt.xkeys.active, 0, -1)]
    for job_id in active:
        if rt.state.exists(rt.xkeys.lease(job_id)):
            continue
        rec = rt.record(job_id)
        state = rec.get("state", "")
        if state not in NEXT_TASK:
            rt.state.zrem(rt.xkeys.active, str(job_id))
            continue
        idle = now - float(rec.get("updated") or 0)
        if idle < (FORCED_RECOVER_AFTER if force else RECOVER_AFTER):
            continue
        # No cap here: a job that merely waits in a long queue looks idle too, and a duplicate
        # message is harmless (lease + state + chain checks). Deliveries that *die* are capped by
        # the delivery counter; jobs that keep failing end when their chain deadline passes (late).
        tries = int(rt.state.hincrby(rt.xkeys.job(job_id), "recoveries", 1))
        rt.set_record(job_id)  # touch: not again before RECOVER_AFTER
        send(NEXT_TASK[state], job_id)
        requeued += 1
        level = logging.ERROR if tries > MAX_RECOVERIES else logging.WARNING
        log.log(level, "job recovered", extra={"job": job_id, "state": state, "task": NEXT_TASK[state], "attempt": tries})
    if rt.role == "provider":
        requeued += _adopt_orphaned_claims(rt)
        requeued += _recheck_submitted(rt)
    _reap(rt, active)
    return requeued


RECHECK_LIMIT = 100  # submitted jobs compared with the index per beat (oldest challenge deadline first)


def _recheck_submitted(rt: Runtime) -> int:
    """Our submitted jobs whose indexed status says a reorg undid the submission (Open again, or
    Claimed by us again): confirmed on the chain and handed back (:func:`reopen_if_undone`). Bounded:
    one Redis round trip for up to :data:`RECHECK_LIMIT` jobs, a chain read only for a mismatch."""
    ids = rt.state.zrange(rt.xkeys.submitted, 0, RECHECK_LIMIT - 1)
    if not ids:
        return 0
    pipe = rt.index.pipeline(transaction=False)
    for j in ids:
        pipe.hmget(rt.index_keys.job(int(j)), ["status", "provider"])
    handed_back = 0
    for j, (status, who) in zip(ids, pipe.execute(), strict=True):
        if status == "Open" or (status == "Claimed" and same(who, rt.address)):
            handed_back += reopen_if_undone(rt, int(j)) is not None
    return handed_back


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
        _lost(rt, job_id, job, f"a reorg undid our claim (was {rec.get('state')})")
        log.warning("job open again after a reorg; reconsidering it", extra={"job": job_id, "state": rec.get("state")})
        return "open"
    if same(job.provider, rt.address) and job.status == JobStatus.CLAIMED and rec.get("state") in ("submitted", "finalized") and rec.get("kind"):
        rt.state.zrem(rt.xkeys.submitted, str(job_id))
        rt.set_record(job_id, "outcome", reason="a reorg undid the submission")
        send("depin.submit", job_id)
        log.warning("submission undone by a reorg; submitting again", extra={"job": job_id})
        return "resubmit"
    return None


def _adopt_orphaned_claims(rt: Runtime) -> int:
    """Jobs the chain (through the index) shows Claimed by us but that have no local record: the
    executor's database was lost or wiped. They are ours to finish: recorded as claimed and run."""
    claimed = set(rt.index.zrange(rt.index_keys.jobs_by_status("Claimed"), 0, -1))
    if not claimed:
        return 0
    mine = claimed & set(rt.index.zrange(rt.index_keys.jobs_by_provider(rt.address), 0, -1))
    adopted = 0
    for raw in sorted(mine, key=int):
        job_id = int(raw)
        if rt.state.exists(rt.xkeys.job(job_id)):
            continue
        job = rt.job(job_id)
        if job.status != JobStatus.CLAIMED or not same(job.provider, rt.address):
            continue
        rt.set_record(job_id, "claimed", reason="found claimed on chain without a local record")
        send("depin.run", job_id)
        adopted += 1
        log.warning("claimed job adopted from the chain", extra={"job": job_id})
    return adopted


def _reap(rt: Runtime, active: list[int]) -> None:
    try:
        from executor.containers import reap_orphans

        live = {rt.container_name(j) for j in active}
        removed = reap_orphans(rt.docker, live, instance=rt.instance)
        if removed:
            log.warning("orphan containers removed", extra={"containers": ",".join(removed)})
    except Exception as exc:  # noqa: BLE001 - the reaper is best effort; the next beat tries again
        log.info("reaper skipped", extra={"error": str(exc)[:200]})


# ---------------------------------------------------------------------------------------- signals


@worker_process_init.connect
def _fresh_runtime(**_: Any) -> None:
    """A forked pool process opens its own connections (Redis, RPC, the engine)."""
    rt = get_runtime()
    set_runtime(Runtime(rt.config))


@worker_ready.connect
def _recover_at_start(sender: Any = None, **_: Any) -> None:
    """A (re)started worker re-queues, at once, the jobs that no live task holds."""
    try:
        app.send_task("depin.recover", kwargs={"force": True}, queue=ROUTES["depin.recover"])
    except Exception as exc:  # noqa: BLE001
        log.warning("could not queue the start-up recovery", extra={"error": str(exc)})


def sample(rate: float) -> bool:
    """Whether to verify one submission at `rate` (0..1)."""
    return rate >= 1 or random.random() < rate
