"""Result retention (:mod:`executor.retention`): a settled job's archive and journal entries go a
retention period after the executor first saw the job settled; nothing of a job that is not settled
on chain is ever removed. Records of jobs that were never ours (skipped, lost) expire.

The unit tests pin the rules on a runtime whose chain is a table of statuses, over a real Redis, a
real result store and a real journal on disk, with the pass's clock given. The stack test runs a real
provider executor (Celery beat and workers) with a two-second retention: the archive and journal entry
of a finalized job disappear and its URI answers 404, while a job still in its challenge window keeps
both.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import requests

from depin.keys import ExecKeys
from depin.market import JobStatus
from executor import retention
from executor.dispatcher import Dispatcher
from executor.execution import mark_lost
from executor.results import ResultStore, Submission, SubmissionJournal
from executor.retention import DAY, prune_results
from executor.runtime import PASSING_RECORD_TTL, Runtime
from tests.indexer.services import RedisServer

from .stack import PROVIDER, REQUESTER, Stack, spec, terms_for, wait_for

T0 = 1_800_000_000.0


class _Chain:
    def __init__(self) -> None:
        self.status: dict[int, JobStatus] = {}
        self.reads: list[int] = []

    def job(self, job_id: int) -> Any:
        self.reads.append(job_id)
        return SimpleNamespace(status=self.status.get(job_id, JobStatus.NONE))


@pytest.fixture
def r(redis_server: RedisServer) -> redis.Redis:
    client = redis_server.client(9)
    client.flushdb()
    return client


def _runtime(r: redis.Redis, tmp_path: Path, chain: _Chain, days: float = 7) -> Any:
    xkeys = ExecKeys(31337, "0x" + "22" * 20, "provider", "0xme")
    return SimpleNamespace(
        state=r, xkeys=xkeys, job=chain.job, record=lambda job_id: r.hgetall(xkeys.job(job_id)),
        config=SimpleNamespace(executor=SimpleNamespace(result_retention_days=days)),
        journal=SubmissionJournal(tmp_path / "journal"), store=ResultStore(tmp_path / "results", "http://127.0.0.1:1"),
    )


def _submitted(rt: Any, tmp_path: Path, job_id: int, *, seats: int = 0) -> Path:
    """A stored archive with its manifest and a journal entry naming it (as the provider writes
    them), plus `seats` seat entries of the verifier role; returns the archive's path."""
    (tmp_path / "journal").mkdir(exist_ok=True)
    src = tmp_path / f"out-{job_id}.tar"
    src.write_bytes(b"archive of job %d" % job_id)
    stored = rt.store.put(src)
    rt.store.put_manifest(stored.name, {"job": job_id})
    h = "0x" + "ab" * 32
    rt.journal.write(Submission(job_id, h, "0xme", "result", h, h, h, h, name=stored.name, uri=stored.uri, archive=str(stored.path)))
    for seat in range(seats):
        (tmp_path / "journal" / f"seat-{job_id}-0-{seat}.json").write_text("{}")
    return stored.path


def _files(tmp_path: Path) -> set[str]:
    return {p.name for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith("out-")}


def test_a_settled_job_keeps_its_files_for_the_retention_period_then_loses_them(r: redis.Redis, tmp_path: Path) -> None:
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=7)
    archive = _submitted(rt, tmp_path, 5, seats=2)
    before = _files(tmp_path)
    assert {"5.json", "seat-5-0-0.json", "seat-5-0-1.json", archive.name, archive.name.replace(".tar", ".json")} <= before

    chain.status[5] = JobStatus.SUBMITTED
    assert prune_results(rt, now=T0) == 0
    assert r.hget(rt.xkeys.retained, "5") is None  # not settled: not even marked
    chain.status[5] = JobStatus.FINALIZED
    assert prune_results(rt, now=T0 + 100) == 0  # first seen settled: marked, kept
    assert float(r.hget(rt.xkeys.retained, "5")) == T0 + 100
    reads = len(chain.reads)
    assert prune_results(rt, now=T0 + 100 + 7 * DAY - 1) == 0  # one second short: kept, no chain read
    assert len(chain.reads) == reads and _files(tmp_path) == before
    assert prune_results(rt, now=T0 + 100 + 7 * DAY) == 1
    assert _files(tmp_path) == set() and not archive.exists()
    assert r.exists(rt.xkeys.retained) == 0
    assert prune_results(rt, now=T0 + 100 + 8 * DAY) == 0  # nothing left, nothing fails


@pytest.mark.parametrize("status", [JobStatus.NONE, JobStatus.OPEN, JobStatus.CLAIMED, JobStatus.SUBMITTED, JobStatus.DISPUTED])
def test_a_job_not_settled_on_chain_is_never_removed(r: redis.Redis, tmp_path: Path, status: JobStatus) -> None:
    """Unknown to the chain (another chain's node, a reorg) counts as not settled."""
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=0.001)
    _submitted(rt, tmp_path, 9, seats=1)
    before = _files(tmp_path)
    chain.status[9] = status
    for day in range(0, 400, 50):
        assert prune_results(rt, now=T0 + day * DAY) == 0
    assert _files(tmp_path) == before and r.exists(rt.xkeys.retained) == 0
    assert chain.reads == [9] * 8


@pytest.mark.parametrize("status", [s for s in JobStatus if s.settled])
def test_every_settled_status_counts(r: redis.Redis, tmp_path: Path, status: JobStatus) -> None:
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=1)
    _submitted(rt, tmp_path, 3)
    chain.status[3] = status
    prune_results(rt, now=T0)
    assert prune_results(rt, now=T0 + DAY) == 1 and _files(tmp_path) == set()


def test_zero_days_keeps_everything_and_reads_nothing(r: redis.Redis, tmp_path: Path) -> None:
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=0)
    _submitted(rt, tmp_path, 1)
    chain.status[1] = JobStatus.FINALIZED
    before = _files(tmp_path)
    for day in (0, 1000):
        assert prune_results(rt, now=T0 + day * DAY) == 0
    assert chain.reads == [] and _files(tmp_path) == before


def test_chain_reads_per_pass_are_capped_oldest_entry_first(r: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "PRUNE_CHAIN_READS", 2)
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=1)
    for n, job_id in enumerate((40, 10, 30, 20)):  # written in this order: mtimes 0..3
        _submitted(rt, tmp_path, job_id)
        os.utime(tmp_path / "journal" / f"{job_id}.json", (T0 + n, T0 + n))
        chain.status[job_id] = JobStatus.FINALIZED
    prune_results(rt, now=T0 + 10)
    assert chain.reads == [40, 10]
    prune_results(rt, now=T0 + 20)
    assert chain.reads == [40, 10, 30, 20]  # marked ones cost no read
    assert prune_results(rt, now=T0 + 10 + DAY) == 2  # 40 and 10
    assert prune_results(rt, now=T0 + 20 + DAY) == 2
    assert _files(tmp_path) == set()


def test_lost_marks_only_delay_removal_and_stale_marks_are_dropped(r: redis.Redis, tmp_path: Path) -> None:
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=1)
    _submitted(rt, tmp_path, 7)
    chain.status[7] = JobStatus.FINALIZED
    prune_results(rt, now=T0)
    r.flushdb()  # the executor's Redis lost: the next pass marks again, a whole period later
    assert prune_results(rt, now=T0 + DAY) == 0 and float(r.hget(rt.xkeys.retained, "7")) == T0 + DAY
    assert prune_results(rt, now=T0 + 2 * DAY - 1) == 0 and (tmp_path / "journal" / "7.json").exists()
    r.hset(rt.xkeys.retained, "99", str(T0))  # a mark whose files are gone
    assert prune_results(rt, now=T0 + 2 * DAY) == 1
    assert r.exists(rt.xkeys.retained) == 0


def test_an_unreadable_entry_of_a_settled_job_is_removed_and_other_files_are_left(r: redis.Redis, tmp_path: Path) -> None:
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=1)
    (tmp_path / "journal").mkdir()
    (tmp_path / "journal" / "4.json").write_text("{not json")
    (tmp_path / "journal" / "notes.json").write_text("{}")  # not an entry: never touched
    (tmp_path / "journal" / "seat-x-0-0.json").write_text("{}")
    chain.status[4] = JobStatus.EXPIRED
    prune_results(rt, now=T0)
    assert prune_results(rt, now=T0 + DAY) == 1
    assert sorted(p.name for p in (tmp_path / "journal").iterdir()) == ["notes.json", "seat-x-0-0.json"]


def test_a_finalized_record_goes_with_the_files_and_other_records_stay(r: redis.Redis, tmp_path: Path) -> None:
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=1)
    for job_id, record in ((1, {"state": "finalized"}), (2, {"state": "finalized", "refused": "late"}), (3, {"state": "submitted"})):
        _submitted(rt, tmp_path, job_id)
        r.hset(rt.xkeys.job(job_id), mapping=record)
        chain.status[job_id] = JobStatus.FINALIZED
    prune_results(rt, now=T0)
    assert prune_results(rt, now=T0 + DAY) == 3 and _files(tmp_path) == set()
    assert not r.exists(rt.xkeys.job(1))
    assert r.hget(rt.xkeys.job(2), "refused") == "late" and r.hget(rt.xkeys.job(3), "state") == "submitted"


# ------------------------------------------------------------------------------------ passing records


class _RecordRuntime(SimpleNamespace):
    """The real record writes of :class:`Runtime` over a real Redis, without a chain."""

    record = Runtime.record
    set_record = Runtime.set_record
    refuse = Runtime.refuse


def test_records_of_jobs_that_were_not_for_us_expire_and_any_later_state_keeps_them(r: redis.Redis) -> None:
    """``skipped`` and ``lost`` records expire (every job of the market would otherwise leave one in
    every provider's Redis for good); a later state or a refusal makes the record permanent again."""
    r.flushdb()
    xkeys = ExecKeys(31337, "0x" + "22" * 20, "provider", "0xme")
    rt = _RecordRuntime(state=r, xkeys=xkeys, roles=("provider",))
    now = time.time()
    deadline = int(now) + 30 * 86_400  # a 30-day claim window
    Dispatcher.skip(SimpleNamespace(rt=rt), 1, "policy: image not allowed", claim_deadline=deadline)  # type: ignore[arg-type]
    assert r.hget(xkeys.job(1), "state") == "skipped"
    assert deadline + 86_400 - now - 5 <= r.ttl(xkeys.job(1)) <= deadline + 86_400 - now + 5
    Dispatcher.skip(SimpleNamespace(rt=rt), 2, "invalid spec", claim_deadline=0)  # type: ignore[arg-type]
    assert PASSING_RECORD_TTL - 5 <= r.ttl(xkeys.job(2)) <= PASSING_RECORD_TTL + 1  # (rounded up to a second)
    rt.set_record(2, reason="a field update keeps the expiry")
    assert r.ttl(xkeys.job(2)) > 0
    rt.set_record(2, "claiming")
    assert r.ttl(xkeys.job(2)) == -1  # in hand: permanent

    mark_lost(rt, 3, SimpleNamespace(status=JobStatus.CLAIMED), "job is Claimed, provider 0xother")  # type: ignore[arg-type]
    assert r.hget(xkeys.job(3), "state") == "lost" and 0 < r.ttl(xkeys.job(3)) <= PASSING_RECORD_TTL + 1
    rt.refuse(3, "timed out in our hands")
    assert r.ttl(xkeys.job(3)) == -1
    mark_lost(rt, 3, SimpleNamespace(status=JobStatus.CLAIMED), "lost again")  # type: ignore[arg-type]
    assert r.ttl(xkeys.job(3)) == -1 and r.hget(xkeys.job(3), "refused") == "timed out in our hands"


# ------------------------------------------------------------------------------------ real stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("retention"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER)
        s.provider = s.executor(
            "provider", "provider", PROVIDER, result_retention_days=2 / DAY, extra_env={"DEPIN_PRUNE_INTERVAL": "0.5"}
        )
        yield s
    finally:
        s.close()


def test_the_executor_removes_a_finalized_jobs_result_and_keeps_one_in_its_challenge_window(stack: Stack) -> None:
    ex = stack.provider
    journal = ex.workdir / "state" / "journal" / ex.instance()

    def entry(job_id: int) -> dict[str, Any]:
        return json.loads((journal / f"{job_id}.json").read_text())

    waiting = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo keep > /out/k"]), terms=terms_for(challenge_window=3_600))
    stack.wait_status(waiting, JobStatus.SUBMITTED, timeout=120, executors=[ex])
    kept = entry(waiting)
    done = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo go > /out/g"]))
    stack.wait_status(done, JobStatus.FINALIZED, timeout=120, executors=[ex])
    gone = entry(done)
    wait_for(lambda: not (journal / f"{done}.json").exists() and not Path(gone["archive"]).exists(), 60, "the finalized job's files removed")
    assert requests.get(gone["uri"], timeout=10).status_code == 404
    assert requests.get(gone["uri"] + ".json", timeout=10).status_code == 404
    # the job in its challenge window was looked at by the same passes and keeps everything
    assert stack.status(waiting) == JobStatus.SUBMITTED
    assert entry(waiting) == kept and Path(kept["archive"]).exists()
    assert len(stack.download(kept["uri"])) > 0
