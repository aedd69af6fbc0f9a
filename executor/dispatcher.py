"""The dispatcher: follows the indexer's event stream and queues the executor's work.

It reads ``{p}:events`` (see :mod:`depin.keys`) through its own consumer group
(``executor:{role}:{address}``, created at the stream's start so that jobs posted before the
executor started are considered too), and acknowledges an entry only after acting on it: a
dispatcher killed mid-way re-reads its pending entries at start. Acting twice is harmless: a job
with a record is never considered again, and every task re-checks the chain.

The provider (the only role since issue 12; verification is the court's, see
:mod:`executor.verification`): ``JobPosted`` (and ``JobTimedOut`` or ``NoFaultFailure`` with
``reopened``): the job must still be Open in
  the index, its spec valid (``specValid``) and hashing to ``specHash`` (:func:`depin.spec.parse_spec`
  checks again), the claim deadline ahead, and the :class:`~executor.policy.Policy` must accept it.
  Then the record says ``claiming`` and ``depin.claim`` is queued on the chain queue (one nonce
  sequence: the dispatcher never sends transactions itself). A job refused for load is *deferred*
  and reconsidered when a slot frees. Every refusal is one log line with the reason. A job that
  failed in our hands (timed out, abandoned, or reported as an availability failure: the market
  reopens it at once) is refused, never claimed again.
  ``VerificationStarted`` of a job of ours that the index shows Disputed: the court opened its case
  (a drawn auditor's ``startAudit``, a challenge), whenever in the challenge window that was; the
  job joins the set under verification at once (:func:`executor.verification.watch`), so that the
  provider reveals before the case's reveal deadline. (Each follow pass also watches every Disputed
  job of ours the index shows: :func:`executor.beat.watch_disputed`.)

**Retractions** (a reorg undid an event): a deferred job leaves the deferred set. Then, by the
job's local record:

- a job in hand (a state with a next task: ``claiming``, ``claimed``, ``running``, ``outcome``...)
  gets that task queued again; the task re-reads the chain (where the job may now be Open, unknown,
  or claimed by someone else) before it acts;
- a retracted ``JobClaimed``, ``ResultSubmitted`` or ``FailureSubmitted`` of a job we hold any
  other record of (``submitted``, ``finalized``, ``lost``...) makes it read the chain
  (:func:`executor.provider.reopen_if_undone`): a job Open again is recorded ``lost`` and considered
  afresh (claimed again if the policy still accepts it); a job Claimed by us again whose submission
  was undone has its recorded outcome submitted again;
- a retracted ``JobPosted`` with a record drops the record: the canonical chain's ``JobPosted`` (if
  any) is judged afresh.

Beat's recovery (:func:`executor.beat.recover_jobs`) makes the same check for our submitted jobs whose
indexed status disagrees with the record, in case a retraction entry was missed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from typing import Any

import redis

from depin.chain import RpcUnavailable
from depin.errors import SpecError
from depin.spec import parse_spec
from executor import queue, verification
from executor.containers import ImageUnavailable, check_image
from executor.execution import same
from executor.policy import JobTermsView, Policy
from executor.provider import approval_fields, reopen_if_undone
from executor.runtime import ACTIVE_STATES, PASSING_RECORD_TTL, Runtime

log = logging.getLogger("executor.dispatcher")

BLOCK_MS = 1_000
DEFERRED_BLOCK_MS = 50
BATCH = 50
CLAIM_BATCH = 20  # accepted jobs claimed in one claimJobs transaction, at most
MAX_ENTRY_FAILURES = 3
RESCAN_LIMIT = 5_000  # Open jobs looked at when the stream lost entries we never read (earliest claim deadline first)
RECLAIM_IDLE_MS = 5_000  # a failed entry is handled again once it has been pending this long
DEFERRED_RETRY = 5.0  # seconds before a deferred job whose look failed is looked at again
INDEX_LOOK_INTERVAL = 10.0  # seconds between looks for the index while there is none
WORK_EVENTS = ("JobClaimed", "ResultSubmitted", "FailureSubmitted")  # a provider's own work on a job
REOPENING_EVENTS = ("JobTimedOut", "NoFaultFailure")  # with reopened = true: the job is Open again


class Dispatcher:
    def __init__(self, rt: Runtime, *, consumer: str | None = None, block_ms: int = BLOCK_MS,
                 reclaim_idle_ms: int = RECLAIM_IDLE_MS) -> None:
        self.rt = rt
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.block_ms = block_ms
        self.reclaim_idle_ms = reclaim_idle_ms
        self.events = rt.event_stream()
        self.policy = Policy(rt.config.policy, image_available=self._image_available)
        self.failures: dict[str, int] = {}
        self.accepted: list[int] = []  # jobs whose claim is to be queued (:meth:`queue_claims`)
        self.index_seen: bool | None = None  # whether the last look found the index (None: not looked yet)
        self._index_looked = 0.0

    # ------------------------------------------------------------------ stream plumbing

    def look_for_index(self) -> bool:
        """Whether the indexer has written this deployment's index (its cursor) in our Redis. Said
        once when it is missing (an executor started before its indexer, or given another Redis
        URL or namespace, waited without a word: review, stop 45) and once when it appears; looked
        at every :data:`INDEX_LOOK_INTERVAL` seconds while missing."""
        if self.index_seen:
            return True
        if self.index_seen is False and time.monotonic() - self._index_looked < INDEX_LOOK_INTERVAL:
            return False
        self._index_looked = time.monotonic()
        seen = bool(self.rt.index.exists(self.rt.index_keys.cursor))
        if not seen and self.index_seen is not False:
            log.warning("no index of this deployment in Redis yet: waiting for it; is `depin indexer run` running with the "
                        "same deployment, Redis URL and namespace?", extra={"cursor_key": self.rt.index_keys.cursor})
        elif seen and self.index_seen is False:
            log.info("index found", extra={"cursor_key": self.rt.index_keys.cursor})
        self.index_seen = seen
        return seen

    def ensure_group(self) -> None:
        if self.events.ensure():
            log.info("consumer group created", extra={"stream": self.events.stream, "group": self.events.group})

    def run(self, stop: threading.Event | None = None) -> None:
        """Reads and handles entries until `stop` is set (or SIGTERM/SIGINT in the main thread)."""
        stop = stop or threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        log.info("dispatcher started", extra={"role": self.rt.role, "address": self.rt.address, "group": self.events.group})
        while not stop.is_set():
            try:
                self.look_for_index()
                self.ensure_group()
                self.rescan_if_missed()
                self.handle_backlog(stop)
                while not stop.is_set():
                    self.handle_batch()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("redis unavailable; retrying", extra={"error": str(exc)})
                stop.wait(1.0)
            except RpcUnavailable as exc:  # the entry stays pending: handled again, not counted as failed
                log.warning("chain node unavailable; retrying", extra={"error": str(exc)[:300]})
                stop.wait(1.0)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):  # the index was wiped and the stream recreated
                    log.warning("consumer group vanished; re-creating it", extra={"group": self.events.group})
                    continue
                raise
        log.info("dispatcher stopped")

    def handle_backlog(self, stop: threading.Event) -> None:
        """Our own pending entries, once each (a previous run died before acknowledging them); one
        that fails stays pending and is retried by the reclaim pass of :meth:`handle_batch`."""
        after = "0"
        while not stop.is_set():
            entries = self.events.read(self.consumer, count=BATCH, pending_after=after)
            if not entries:
                return
            for entry_id, fields in entries:
                self._handle_entry(entry_id, fields)
            self.queue_claims()
            after = entries[-1][0]

    def handle_batch(self) -> None:
        """New entries (waiting for them a little), then the pending ones that failed and have been
        idle for ``reclaim_idle_ms`` (retried without a restart, up to MAX_ENTRY_FAILURES times),
        then a freed slot handed to a deferred job."""
        self.look_for_index()
        # while jobs wait for a free slot, wake up often to hand them the slot
        due = self.rt.state.zcount(self.rt.xkeys.deferred, "-inf", time.time())
        block = DEFERRED_BLOCK_MS if due else self.block_ms
        entries = self.events.read(self.consumer, count=BATCH, block_ms=block)
        if len(entries) == BATCH:  # behind: the trimming may be overtaking us
            self.rescan_if_missed()
        for entry_id, fields in entries:
            self._handle_entry(entry_id, fields)
        for entry_id, fields in self.events.reclaim(self.consumer, min_idle_ms=self.reclaim_idle_ms, count=BATCH):
            self._handle_entry(entry_id, fields)
        self.reconsider_deferred()
        self.queue_claims()

    def _handle_entry(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            self.handle(fields)
        except (redis.ConnectionError, redis.TimeoutError, RpcUnavailable):
            raise  # not the entry's fault: run() waits and handles it again
        except Exception as exc:  # one bad entry must not stop the dispatcher
            n = self.failures[entry_id] = self.failures.get(entry_id, 0) + 1
            log.exception("entry failed", extra={"entry": entry_id, "event": fields.get("event"), "attempt": n, "error": str(exc)})
            if n < MAX_ENTRY_FAILURES:
                return  # stays pending: reclaimed and handled again once idle (handle_batch)
            log.error("entry dropped after repeated failures", extra={"entry": entry_id, "event": fields.get("event")})
        self.failures.pop(entry_id, None)
        self.events.ack(entry_id)

    # ------------------------------------------------------------------ handling

    def handle(self, fields: dict[str, str]) -> None:
        kind, event = fields.get("kind"), fields.get("event")
        args = json.loads(fields.get("args") or "{}")
        job_id = int(args["jobId"]) if "jobId" in args else None
        if job_id is None:
            return
        if kind == "retraction":
            self.retracted(event or "", job_id, args)
            return
        if "provider" not in self.rt.roles:
            return
        reopened = event in REOPENING_EVENTS and str(args.get("reopened")).lower() in ("true", "1")
        if event == "JobPosted" or reopened:
            self.consider(job_id, reopened=reopened)
        elif event == "VerificationStarted":
            self.case_opened(job_id)

    def case_opened(self, job_id: int) -> None:
        """The court opened a case for the job: one of ours the index still shows Disputed is
        watched now (a replayed entry of a case long settled is not: the index says so)."""
        rt = self.rt
        idx = rt.reader.job_fields(job_id)
        if idx.get("status") == "Disputed" and same(idx.get("provider"), rt.address) and job_id not in verification.watched(rt):
            verification.watch(rt, job_id, "the court opened a case for it (VerificationStarted)")

    def _image_available(self, image: str) -> bool:
        try:
            check_image(self.rt.docker, image)
            return True
        except ImageUnavailable:
            return False

    def skip(self, job_id: int, reason: str, level: int = logging.INFO, claim_deadline: int = 0) -> None:
        """Records the job skipped with `reason`; the record expires once it can no longer save a
        second look (:data:`~executor.runtime.PASSING_RECORD_TTL`, and not before a day after the
        job's `claim_deadline`): a replayed ``JobPosted`` after that finds the job no longer Open."""
        expire_at = max(time.time() + PASSING_RECORD_TTL, claim_deadline + 86_400)
        self.rt.set_record(job_id, "skipped", reason=reason[:500], expire_at=expire_at)
        log.log(level, "job skipped", extra={"job": job_id, "reason": reason[:500]})

    def consider(self, job_id: int, *, reopened: bool = False) -> None:
        """Policy, spec and hash checks for an Open job; queues the claim when all pass. A job that
        beat this executor before (its record is ``refused``, or the index shows we claimed it and
        it is Open again: we timed out on it) is refused with a logged reason, never claimed again."""
        rt = self.rt
        rec = rt.record(job_id)
        if rec.get("refused"):
            log.warning("job refused: it failed in this executor's hands before", extra={"job": job_id, "reason": rec["refused"]})
            return
        idx = rt.reader.job_fields(job_id)
        if idx.get("status") == "Open" and rt.address.lower() in (idx.get("providers") or "").lower().split(","):
            # Open again after our claim (a reorg that undid the claim rolls `providers` back too)
            reason = "this executor claimed the job before and it was reopened (timed out in our hands)"
            rt.refuse(job_id, reason)
            log.warning("job refused: it failed in this executor's hands before", extra={"job": job_id, "reason": reason})
            return
        if rec and rec.get("state") != "lost" and not (reopened and rec.get("state") not in ACTIVE_STATES):
            return  # seen before (a lost job is looked at again: it is Open again after a reorg or a timeout)
        if idx.get("status") != "Open":
            log.debug("job not open", extra={"job": job_id, "status": idx.get("status")})
            return
        deadline = int(idx.get("claimDeadline") or 0)
        if idx.get("specValid") != "1":
            self.skip(job_id, f"invalid spec: {idx.get('specError') or 'specValid=0'}", logging.WARNING, claim_deadline=deadline)
            return
        try:
            spec = parse_spec(idx["specJson"].encode(), expected_hash=idx["specHash"])
        except SpecError as exc:
            self.skip(job_id, f"invalid spec: {exc}", logging.WARNING, claim_deadline=deadline)
            return
        if deadline <= rt.chain_now():
            self.skip(job_id, "the claim deadline has passed", claim_deadline=deadline)
            return
        terms = JobTermsView(reward=int(idx["reward"]), max_runtime=int(idx["maxRuntime"]), cpu_seconds=int(idx.get("cpuSeconds") or 0))
        decision = self.policy.evaluate(spec, terms, rt.active_count())
        if not decision:
            if decision.defer:
                rt.state.zadd(rt.xkeys.deferred, {str(job_id): time.time()}, nx=True)
                log.info("job deferred", extra={"job": job_id, "reason": decision.reason})
            else:
                self.skip(job_id, f"policy: {decision.reason}", claim_deadline=deadline)
            return
        rt.set_record(job_id, "claiming", image=spec.image, **approval_fields(idx))  # what was approved: claimed only on it
        self.accepted.append(job_id)
        log.info("claim accepted", extra={"job": job_id, "image": spec.image, "reward": idx["reward"]})

    def rescan_if_missed(self) -> int:
        """Considers the index's Open jobs (those still claimable, earliest claim deadline first,
        at most RESCAN_LIMIT) when the stream was trimmed past entries this group never read: a
        dispatcher that was down or behind for longer than the stream keeps would otherwise never
        see those jobs (found by review, stop 37). Jobs seen before are skipped by :meth:`consider`.
        The number of jobs looked at."""
        rt = self.rt
        if "provider" not in rt.roles or not self.events.missed():
            return 0
        ids = rt.reader.claimable_jobs(rt.chain_now(), limit=RESCAN_LIMIT)
        log.warning("the event stream was trimmed past entries this dispatcher never read; rescanning the Open jobs",
                    extra={"jobs": len(ids), "group": self.events.group})
        for job_id in ids:
            try:
                self.consider(job_id)
            except (redis.ConnectionError, redis.TimeoutError, RpcUnavailable):
                raise  # run() waits, then rescans
            except Exception as exc:  # one job's error must not stop the rescan, nor the dispatcher
                log.exception("job not considered in the rescan", extra={"job": job_id, "error": str(exc)[:300]})
        self.queue_claims()
        return len(ids)

    def queue_claims(self) -> None:
        """Queues the claims of the jobs accepted since the last call: one ``depin.claim`` task per
        CLAIM_BATCH jobs, which claims them in one ``claimJobs`` transaction (a single job: a plain
        ``claimJob``). The records say ``claiming`` already, so a dispatcher that dies before this
        loses nothing: the beat's recovery queues their claims."""
        accepted, self.accepted = self.accepted, []
        for i in range(0, len(accepted), CLAIM_BATCH):
            first, *more = accepted[i : i + CLAIM_BATCH]
            if more:
                queue.send("depin.claim", first, more=more)
            else:
                queue.send("depin.claim", first)
            log.info("claim queued", extra={"jobs": ",".join(map(str, [first, *more]))})

    def reconsider_deferred(self) -> None:
        rt = self.rt
        if "provider" not in rt.roles:
            return
        while rt.active_count() < rt.config.policy.max_concurrent_jobs:
            first = rt.state.zrangebyscore(rt.xkeys.deferred, "-inf", time.time(), start=0, num=1)  # due ones only
            if not first:
                return
            job_id = int(first[0])
            rt.state.zrem(rt.xkeys.deferred, first[0])
            try:
                self.consider(job_id)
            except Exception as exc:
                # Deferred again (looked at once more in DEFERRED_RETRY seconds): a node or an engine that
                # did not answer lost the job from the set before, and any other error left run() (found
                # by review, stop 55). What run() waits out (Redis, the node) goes on to it.
                rt.state.zadd(rt.xkeys.deferred, {str(job_id): time.time() + DEFERRED_RETRY})
                if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, RpcUnavailable)):
                    raise
                log.exception("deferred job not considered; deferred again", extra={"job": job_id, "error": str(exc)[:300]})
                return

    def retracted(self, event: str, job_id: int, args: dict[str, Any]) -> None:
        rt = self.rt
        log.warning("event retracted by a reorg", extra={"job": job_id, "event": event})
        rt.state.zrem(rt.xkeys.deferred, str(job_id))
        state = rt.record(job_id).get("state")
        if state in queue.NEXT_TASK:
            queue.send(queue.NEXT_TASK[state], job_id)  # the task re-reads the chain before acting
        elif event in WORK_EVENTS and state is not None and "provider" in rt.roles:
            if reopen_if_undone(rt, job_id) == "open":
                self.reconsider_deferred()
        elif event == "JobPosted" and state is not None:
            rt.state.delete(rt.xkeys.job(job_id))  # the canonical chain's JobPosted (if any) is judged afresh


def run_dispatcher(rt: Runtime, stop: threading.Event | None = None) -> None:
    Dispatcher(rt).run(stop)
