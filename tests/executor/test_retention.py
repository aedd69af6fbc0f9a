"""Result retention (:mod:`executor.retention`): a settled job's archive and journal entries go a
retention period after the executor first saw the job settled; nothing of a job that is not settled
on chain is ever removed. Records of jobs that were never ours (skipped, lost) expire.

The unit tests pin the rules on a runtime whose chain is a table of statuses, over a real Redis, a
real result store and a real journal on disk, with the pass's clock given. The stack test runs a real
provider executor (Celery beat and workers, anvil) with a two-second retention: the archive and journal
entry of a finalized job disappear and its URI answers 404, with an archive no entry names (its
manifest says the job) and a record that never had an entry, while a job still in its challenge
window keeps everything.
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

from depin.accounts import dev_account
from depin.delivery import public_key_of
from depin.keys import ExecKeys
from depin.market import JobStatus
from executor import canary, retention
from executor.dispatcher import Dispatcher
from executor.execution import mark_lost
from executor.results import ResultStore, Submission, SubmissionJournal, sealed_manifest
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


def _runtime(r: redis.Redis, tmp_path: Path, chain: _Chain, days: float = 7, roles: tuple[str, ...] = ("provider",)) -> Any:
    xkeys = ExecKeys(31337, "0x" + "22" * 20, ",".join(roles), "0xme")
    return SimpleNamespace(
        state=r, xkeys=xkeys, job=chain.job, record=lambda job_id: r.hgetall(xkeys.job(job_id)), roles=roles, state_dir=tmp_path,
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
    if seats:  # the round's delivery verdict (executor.verifier.AuditJournal.record_round_verdict)
        (tmp_path / "journal" / f"delivery-{job_id}-0.json").write_text("{}")
    return stored.path


def _files(tmp_path: Path) -> set[str]:
    return {p.name for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith("out-")}


def test_a_settled_job_keeps_its_files_for_the_retention_period_then_loses_them(r: redis.Redis, tmp_path: Path) -> None:
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=7)
    archive = _submitted(rt, tmp_path, 5, seats=2)
    before = _files(tmp_path)
    assert {"5.json", "seat-5-0-0.json", "seat-5-0-1.json", "delivery-5-0.json", archive.name, archive.name.replace(".tar", ".json")} <= before

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


def test_the_records_of_a_settled_job_go_with_its_files_and_an_active_one_holds_the_job(r: redis.Redis, tmp_path: Path) -> None:
    """Any record of a settled job that does not expire goes (finalized, refused, submitted); one
    in an active state, or a leased job, holds everything of the job (and its mark) until its task
    lets go; a record that expires is left to expire."""
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=1)
    records = {1: {"state": "finalized"}, 2: {"state": "finalized", "refused": "late"}, 3: {"state": "submitted"}, 4: {"state": "outcome"}, 5: {"state": "lost"}}
    for job_id, record in records.items():
        _submitted(rt, tmp_path, job_id)
        r.hset(rt.xkeys.job(job_id), mapping=record)
        chain.status[job_id] = JobStatus.FINALIZED
    r.zadd(rt.xkeys.active, {"4": 1})
    r.expire(rt.xkeys.job(5), 3_600)
    prune_results(rt, now=T0)
    assert prune_results(rt, now=T0 + DAY) == 4
    assert [job_id for job_id in records if r.exists(rt.xkeys.job(job_id))] == [4, 5]
    assert {p.name for p in (tmp_path / "journal").iterdir()} == {"4.json"}  # held: its files and mark stay
    assert r.hget(rt.xkeys.retained, "4") is not None
    r.hset(rt.xkeys.job(4), "state", "submitted")
    r.zrem(rt.xkeys.active, "4")
    r.set(rt.xkeys.lease(4), "a task")
    assert prune_results(rt, now=T0 + DAY + 1) == 0  # leased: still held
    r.delete(rt.xkeys.lease(4))
    assert prune_results(rt, now=T0 + DAY + 2) == 1
    assert _files(tmp_path) == set() and not r.exists(rt.xkeys.job(4)) and r.exists(rt.xkeys.retained) == 0
    assert r.ttl(rt.xkeys.job(5)) > 0  # expires by itself


# ------------------------------------------------------------------------------------ the canary's files


def _canary(rt: Any, tmp_path: Path, job_id: int) -> str:
    """A committed canary as :mod:`executor.canary` leaves it: its journal entry, a decoy sealed to
    the canary's key under its content address (with the sealed manifest and the recipient sidecar),
    and its record in flight; returns the decoy's name."""
    entry = canary.journal(rt).record("0x" + "33" * 20, job_id)
    out = tmp_path / f"out-decoy-{job_id}.tar"
    out.write_bytes(b"decoy %d" % job_id)
    stored = rt.store.put(out, encrypt_to=public_key_of(dev_account(1, 31337).key))
    rt.store.put_manifest(stored.name, sealed_manifest(job_id, "0xme", entry.commitment, stored.name, stored.encrypt_to, "0x00"))
    canary.set_record(rt, job_id, "submitted", digest=entry.digest)
    return stored.name


def test_a_settled_canarys_entry_decoy_and_record_go_and_the_bait_key_stays(r: redis.Redis, tmp_path: Path) -> None:
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=1, roles=("canary",))
    cj = canary.journal(rt)
    cj.root.mkdir(parents=True)
    bait = cj.bait_key()
    gone, kept = _canary(rt, tmp_path, 11), _canary(rt, tmp_path, 12)
    assert {f"{gone}.tar", f"{gone}.json", f"{gone}.to", "11.json", "bait.key"} <= _files(tmp_path)
    chain.status.update({11: JobStatus.RESOLVED, 12: JobStatus.DISPUTED})
    prune_results(rt, now=T0)
    assert prune_results(rt, now=T0 + DAY) == 0  # both in flight (the step has not seen 11 settled yet)
    assert r.hget(rt.xkeys.retained, "11") is not None and (cj.root / "11.json").exists() and rt.store.has(gone)
    canary.set_record(rt, 11, "done", outcome="5")  # the canary step saw it settled
    assert prune_results(rt, now=T0 + DAY + 1) == 1
    assert not (cj.root / "11.json").exists() and not r.exists(rt.xkeys.canary(11))
    assert not any(name.startswith(gone) for name in _files(tmp_path))
    # the unsettled canary keeps everything, and the bait key is never touched
    assert (cj.root / "12.json").exists() and rt.store.has(kept) and r.exists(rt.xkeys.canary(12))
    assert cj.bait_key() == bait and r.exists(rt.xkeys.retained) == 0


def test_only_the_canary_role_prunes_the_canary_journal(r: redis.Redis, tmp_path: Path) -> None:
    """A provider sharing the canary's state folder removes a settled canary's decoy (an archive no
    journal entry names) but never the canary's own journal."""
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=1, roles=("canary",))
    (tmp_path / "canary").mkdir()
    decoy = _canary(rt, tmp_path, 11)
    canary.set_record(rt, 11, "finalized")
    chain.status[11] = JobStatus.FINALIZED
    provider = _runtime(r, tmp_path, chain, days=1)
    prune_results(provider, now=T0)
    assert prune_results(provider, now=T0 + DAY) == 1
    assert not rt.store.has(decoy) and (tmp_path / "canary" / "11.json").exists() and r.exists(rt.xkeys.canary(11))
    prune_results(rt, now=T0)
    assert prune_results(rt, now=T0 + DAY) == 1 and not (tmp_path / "canary" / "11.json").exists()


# ------------------------------------------------------------------------------------ archives no entry names


def _stored(rt: Any, tmp_path: Path, tag: str, manifest: dict[str, Any] | None = None) -> str:
    src = tmp_path / f"out-{tag}.tar"
    src.write_bytes(tag.encode())
    stored = rt.store.put(src)
    if manifest is not None:
        rt.store.put_manifest(stored.name, manifest)
    return stored.name


def _age(path: Path, when: float) -> None:
    os.utime(path, (when, when))


def test_an_archive_no_entry_names_goes_when_the_job_its_manifest_names_is_settled(r: redis.Redis, tmp_path: Path) -> None:
    """A crash between storing and journaling, a re-run's spare copy: the manifest says the job; the
    settled-on-chain + retention rule applies as to a journaled archive, sharing the reads."""
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=1)
    spare = _stored(rt, tmp_path, "spare", {"job": 6})  # job 6 also has a journaled archive
    journaled = _submitted(rt, tmp_path, 6)
    alone = _stored(rt, tmp_path, "alone", {"job": 7})  # nothing else of job 7
    waiting = _stored(rt, tmp_path, "waiting", {"job": 8})
    chain.status.update({6: JobStatus.FINALIZED, 7: JobStatus.CANCELLED, 8: JobStatus.SUBMITTED})
    assert prune_results(rt, now=T0) == 0
    assert sorted(chain.reads) == [6, 7, 8]  # one read per job, whatever it holds
    assert prune_results(rt, now=T0 + DAY) == 2
    assert not rt.store.has(spare) and not rt.store.has(alone) and not journaled.exists()
    assert not rt.store.has_manifest(spare) and not rt.store.has_manifest(alone)
    assert rt.store.has(waiting) and rt.store.has_manifest(waiting)
    assert sorted(chain.reads) == [6, 6, 7, 7, 8, 8]  # settled ones read again before they go


def test_an_archive_whose_job_cannot_be_told_goes_only_by_age_and_never_one_a_journal_names(r: redis.Redis, tmp_path: Path) -> None:
    """No manifest (a crash before the journal entry; a verifier's run that crashed before removing
    its archive; an unreadable manifest): removed once all its files are ORPHAN_AGE old, with no
    chain read. A running job's fresh archive has no manifest either: it is young. An archive a
    journal entry names (a crash between the entry and the manifest; another instance's entry) is
    never an orphan."""
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=1)
    old = _stored(rt, tmp_path, "old")
    garbled = _stored(rt, tmp_path, "garbled")
    (rt.store.root / garbled[:2] / f"{garbled}.json").write_text("{not json")
    fresh = _stored(rt, tmp_path, "fresh")
    named = _stored(rt, tmp_path, "named")
    other = SubmissionJournal(tmp_path / "journal" / "verifier-0123456789")
    other.root.mkdir(parents=True)
    h = "0x" + "ab" * 32
    other.write(Submission(3, h, "0xme", "result", h, h, h, h, name=named, uri="", archive=""))
    for name, when in ((old, T0), (garbled, T0), (named, T0), (fresh, T0 + retention.ORPHAN_AGE - 10)):
        for path in (rt.store.root / name[:2]).glob(name + ".*"):
            _age(path, when)
    now = T0 + retention.ORPHAN_AGE
    assert prune_results(rt, now=now - 1) == 0 and all(rt.store.has(n) for n in (old, garbled, fresh, named))
    assert prune_results(rt, now=now) == 0  # (no job removed: these belong to none)
    assert not rt.store.has(old) and not rt.store.has(garbled) and not rt.store.has_manifest(garbled)
    assert rt.store.has(fresh) and rt.store.has(named)
    assert chain.reads == []
    # a retention period longer than ORPHAN_AGE keeps them longer still
    rt2 = _runtime(r, tmp_path, chain, days=60)
    _age(rt.store.path(fresh), T0)
    assert prune_results(rt2, now=now) == 0 and rt.store.has(fresh)
    assert prune_results(rt2, now=T0 + 60 * DAY) == 0 and not rt.store.has(fresh) and rt.store.has(named)


def test_temporary_files_a_crash_left_go_after_a_day_and_fresh_ones_stay(r: redis.Redis, tmp_path: Path) -> None:
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=1, roles=("provider", "canary"))
    shard = rt.store.root / "ab"
    leftovers = [shard / ".put-x.partial", rt.store.root / ".sealing" / ".seal-x.partial", tmp_path / "journal" / ".put-y.partial",
                 tmp_path / "canary" / ".bait-0011"]
    decoy_dir = rt.store.root / ".decoy-abc"
    for path in [*leftovers, decoy_dir / "out" / "result"]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    for path in [*leftovers, decoy_dir]:
        _age(path, T0)
    young = shard / ".put-z.partial"
    young.write_bytes(b"being written")
    _age(young, T0 + retention.TEMP_AGE - 10)
    assert prune_results(rt, now=T0 + retention.TEMP_AGE - 1) == 0 and all(p.exists() for p in leftovers) and decoy_dir.exists()
    prune_results(rt, now=T0 + retention.TEMP_AGE)
    assert not any(p.exists() for p in leftovers) and not decoy_dir.exists()
    assert young.exists() and (rt.store.root / ".sealing").is_dir()


# ------------------------------------------------------------------------------------ records without files


def test_records_of_settled_jobs_that_never_had_an_entry_go_a_retention_period_later(r: redis.Redis, tmp_path: Path) -> None:
    """Failed before submission, refused, late, abandoned, no_fault, the verifier's finished seats:
    permanent records with no file anywhere, pruned by the same rule; an active record, a seat in
    hand and a record that expires cost no read and stay."""
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=1, roles=("provider", "verifier"))
    xr = _RecordRuntime(state=r, xkeys=rt.xkeys, roles=rt.roles)
    xr.set_record(1, "late", reason="submit deadline passed")
    xr.set_record(2, "abandoned", refused="the run crashed")
    xr.set_record(3, "no_fault")
    xr.set_record(4, "claimed")  # active: its task decides
    xr.set_record(5, "skipped", expire_at=time.time() + 3_600)
    xr.set_record(6, "late")  # not settled on chain
    xr.set_record(9, "no_fault")  # unknown to the chain
    r.hset(rt.xkeys.seat(7, 0, 1), mapping={"state": "revealed", "job": "7"})
    r.zadd(rt.xkeys.seats, {"7:0:1": 1})  # in hand
    r.hset(rt.xkeys.seat(8, 0, 0), mapping={"state": "done", "job": "8"})
    for job_id in range(1, 9):
        chain.status[job_id] = JobStatus.TIMED_OUT
    chain.status[6] = JobStatus.OPEN
    assert prune_results(rt, now=T0) == 0
    assert sorted(chain.reads) == [1, 2, 3, 6, 8, 9]
    assert prune_results(rt, now=T0 + DAY - 1) == 0
    assert prune_results(rt, now=T0 + DAY) == 4
    assert [j for j in range(1, 10) if r.exists(rt.xkeys.job(j))] == [4, 5, 6, 9]
    assert not r.exists(rt.xkeys.seat(8, 0, 0)) and r.exists(rt.xkeys.seat(7, 0, 1))
    assert r.exists(rt.xkeys.retained) == 0


def test_all_sources_share_the_reads_and_jobs_that_never_settle_do_not_starve_the_rest(
    r: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "PRUNE_CHAIN_READS", 2)
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=1)
    xr = _RecordRuntime(state=r, xkeys=rt.xkeys, roles=rt.roles)
    for n, job_id in enumerate((1, 2, 3)):  # old records of jobs the chain never settles
        xr.set_record(job_id, "late")
        r.hset(rt.xkeys.job(job_id), "updated", str(1_000 + n))
    _submitted(rt, tmp_path, 4)  # newer: a journaled job and an orphan archive, both settled
    _stored(rt, tmp_path, "spare", {"job": 5})
    chain.status.update({4: JobStatus.FINALIZED, 5: JobStatus.FINALIZED})
    for n in range(3):
        prune_results(rt, now=T0 + n)
        assert len(chain.reads) == 2 * (n + 1)
    assert set(chain.reads) == {1, 2, 3, 4, 5}  # every job read within three passes
    assert {int(k) for k in r.hkeys(rt.xkeys.retained)} == {4, 5}
    assert prune_results(rt, now=T0 + 2 + DAY) == 2 and _files(tmp_path) == set()


@pytest.mark.parametrize("crash_at", range(1, 10))
def test_a_pass_killed_while_removing_leaves_what_the_next_pass_finishes(
    r: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: int
) -> None:
    """Everything a job can leave (journaled archive, spare archive, seat entry, record), a pass
    killed at its n-th removal (file or Redis), then a whole pass: nothing of the job is left."""
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=1)
    _submitted(rt, tmp_path, 5, seats=1)
    _stored(rt, tmp_path, "spare", {"job": 5})
    _RecordRuntime(state=r, xkeys=rt.xkeys, roles=rt.roles).set_record(5, "finalized", refused="late")
    chain.status[5] = JobStatus.FINALIZED
    prune_results(rt, now=T0)
    calls = {"n": 0}

    class Killed(BaseException):
        pass

    def step() -> None:
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise Killed

    unlink, execute = Path.unlink, redis.client.Pipeline.execute

    def killed_unlink(self: Path, missing_ok: bool = False) -> None:
        step()
        unlink(self, missing_ok=missing_ok)

    def killed_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.transaction:  # the records' removal
            step()
        return execute(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Path, "unlink", killed_unlink)
        m.setattr(redis.client.Pipeline, "execute", killed_execute)
        with pytest.raises(Killed):
            prune_results(rt, now=T0 + DAY)
    assert prune_results(rt, now=T0 + DAY + 1) == 1
    assert _files(tmp_path) == set() and not r.exists(rt.xkeys.job(5)) and r.exists(rt.xkeys.retained) == 0
    assert prune_results(rt, now=T0 + DAY + 2) == 0


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
    # archives no journal entry names (a crash between storing and journaling): their manifests say the job
    store = ResultStore(ex.workdir / "state" / "results", "http://127.0.0.1:1")
    spares = {}
    for job_id in (done, waiting):
        src = ex.workdir / f"spare-{job_id}.tar"
        src.write_bytes(b"spare")
        spares[job_id] = store.put(src, move=True).name
        store.put_manifest(spares[job_id], {"job": job_id})
    wait_for(lambda: not (journal / f"{done}.json").exists() and not Path(gone["archive"]).exists(), 60, "the finalized job's files removed")
    assert requests.get(gone["uri"], timeout=10).status_code == 404
    assert requests.get(gone["uri"] + ".json", timeout=10).status_code == 404
    wait_for(lambda: not store.has(spares[done]) and not store.has_manifest(spares[done]), 60, "the finalized job's spare archive removed")
    # a record that never had a journal entry (a job refused or abandoned before any submission):
    # the settled job's goes once the chain says so; one of a job the chain does not know stays
    xkeys = ExecKeys(stack.deployment.chain_id, stack.deployment.addresses["JobMarket"], ex.role, ex.address)
    for job_id in (done, 10_000):
        stack.state().hset(xkeys.job(job_id), mapping={"state": "abandoned", "refused": "the run crashed", "updated": str(time.time())})
    wait_for(lambda: not stack.state().exists(xkeys.job(done)), 60, "the settled job's record removed")
    assert stack.state().hget(xkeys.job(10_000), "refused") == "the run crashed"
    # the job in its challenge window was looked at by the same passes and keeps everything
    assert stack.status(waiting) == JobStatus.SUBMITTED
    assert entry(waiting) == kept and Path(kept["archive"]).exists()
    assert store.has(spares[waiting]) and stack.exec_record(ex, waiting).get("state") == "submitted"
    assert len(stack.download(kept["uri"])) > 0


def test_a_job_unsettled_again_after_a_reorg_keeps_its_files(r: redis.Redis, tmp_path: Path) -> None:
    """A job seen Finalized at the head, then Disputed (a reorg let a challenge in): a pass a
    retention period after the first mark reads it again and keeps everything (review)."""
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=7)
    archive = _submitted(rt, tmp_path, 5)
    before = _files(tmp_path)
    chain.status[5] = JobStatus.FINALIZED  # the head the first pass read: a finalize not yet final
    assert prune_results(rt, now=T0) == 0
    chain.status[5] = JobStatus.DISPUTED  # reorged: a challenge mined in the finalize's place; the court needs the salt
    prune_results(rt, now=T0 + 7 * DAY)
    assert archive.exists() and _files(tmp_path) == before, "an unsettled job's archive and journal entry were removed"
    chain.status[5] = JobStatus.RESOLVED  # the court concluded: counted from this pass, not the first mark
    assert prune_results(rt, now=T0 + 8 * DAY) == 0
    assert prune_results(rt, now=T0 + 15 * DAY - 1) == 0 and archive.exists()
    assert prune_results(rt, now=T0 + 15 * DAY) == 1 and not archive.exists()
