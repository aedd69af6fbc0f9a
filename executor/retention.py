"""Result retention: a settled job's archives, journal entries and records are removed a while after settlement.

Without this the result store (``<state_dir>/results``), the journal
(``<state_dir>/journal/<instance>``) and the executor's Redis grow with every job for good, until the
provider's disk fills and its runs fail as its own fault. A job's files are kept while anyone may
still ask for them:

- the submission journal entry (``<job>.json``) holds the salt the court asks the provider to reveal,
  and the archive it names is what a verifier or juror downloads to re-check the result, so both
  stay until the job is **settled on chain** (``JobStatus.settled``: Finalized, Resolved, Cancelled,
  Expired, TimedOut, Pruned): after that no challenge, audit or reveal can concern it;
- the requester downloads its result after that too, so the files (and the job's records in Redis)
  stay ``[executor] result_retention_days`` longer (default 7; ``0`` keeps everything for good),
  counted from the first pass that saw the job settled (kept in Redis, ``ExecKeys.retained``).

What a pass (``depin.prune``, every :data:`PRUNE_INTERVAL` seconds) looks at, by job id:

- the journal's entries: a job's submission entry and the verifier role's seat entries and
  rounds' delivery verdicts (``delivery-<job>-<round>.json``);
- archives of the store that **no journal entry names** (a crash between storing an archive and
  journaling it, a re-run's spare copy, the canary's decoys): the job is the one its manifest names.
  One without a readable manifest (the store writes the manifest only after the journal entry, so a
  running job's fresh archive has none) cannot be told to a job: it is removed once all its files
  are :data:`ORPHAN_AGE` old (and at least a retention period), never sooner. The store is listed
  before the journals are read, so an archive journaled meanwhile is never taken for an orphan;
  the names come from the journals of every instance that shares the state folder;
- the executor's **records** in Redis (``{e}:job:{id}``, the verifier's ``{e}:seat:…``, the canary's
  ``{e}:canary:{id}``) that do not expire: a job refused, late, abandoned, reported ``no_fault``,
  finalized, …, journaled or not. A record in an active state (claiming, claimed, running,
  outcome), a leased job, a seat in hand and a canary in flight are **held**: nothing of such a job
  is removed (its mark stays) until its task lets go of it;
- with the canary role, the canary journal's entries (``<state_dir>/canary/<job>.json``; never
  ``bait.key``).

A job seen settled long enough ago, and read settled once more just before (a reorg may have
undone the finalize the mark came from: then the mark goes and counting starts afresh), loses all
of these; one not yet seen settled costs one chain read; at most :data:`PRUNE_CHAIN_READS` per pass for all of them together, oldest first and then on
from where the last pass stopped (``ExecKeys.prune_cursor``), so that jobs that never settle cannot
take every pass's reads. Only what the chain says settled is removed: a job the chain does not know
(a node on another chain, a reorg) is never taken for settled. A lost Redis loses the marks only:
the files are then kept one retention period longer, never removed early. Temporary files that a
crash left in the store or the journals (``.put-*.partial``, ``.seal-*.partial``, ``.decoy-*``,
``.bait-*``) go once :data:`TEMP_AGE` old; one being written is younger (each write touches it).

Crash safety: a job's files go archives first (the manifest, which names the job, last), then seat,
canary and journal entries, then its records, then its mark; a pass killed anywhere leaves
something that names the job, with its mark, and the next pass removes the rest. Every step is
idempotent.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from depin.config import env_number
from executor.runtime import ACTIVE_STATES, Runtime

log = logging.getLogger("depin.executor.retention")

PRUNE_INTERVAL = env_number("DEPIN_PRUNE_INTERVAL", 600, above=True)  # seconds between passes
PRUNE_CHAIN_READS = 200  # jobs not yet seen settled whose status is read per pass (all sources together)
DAY = 86_400.0
ORPHAN_AGE = 30 * DAY  # an archive no journal entry names and whose job cannot be told: removed this old
TEMP_AGE = DAY  # a temporary file a crash left behind: removed this long after its last write

_SUBMISSION = re.compile(r"(\d+)\.json")
_SEAT = re.compile(r"(?:seat-(\d+)-\d+-\d+|delivery-(\d+)-\d+)\.json")  # a seat's entry, a round's delivery verdict
_STORED = re.compile(r"([0-9a-f]{64})\.(tar|json|to)")
_SHARD = re.compile(r"[0-9a-f]{2}")
_TEMP = re.compile(r"\.(put|seal|bait)-.*")  # write_durably, ResultStore.put / sealing, the bait key's link


@dataclass
class _Job:
    """What a pass found of one job: its journal entries, its archives no journal entry names, its
    canary entry and its records that do not expire."""

    mtime: float = float("inf")
    submission: Path | None = None
    seats: list[Path] = field(default_factory=list)
    archives: list[str] = field(default_factory=list)
    canary: Path | None = None
    records: list[str] = field(default_factory=list)

    def seen(self, mtime: float) -> None:
        self.mtime = min(self.mtime, mtime)


def _listing(root: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _mtime(entry: os.DirEntry[str]) -> float | None:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return None


def journal_entries(root: Path, jobs: dict[int, _Job] | None = None) -> dict[int, _Job]:
    """The journal's entries below `root` by job id, added to `jobs` (other files are left alone)."""
    jobs = {} if jobs is None else jobs
    for entry in _listing(root):
        seat = _SEAT.fullmatch(entry.name)
        match = seat or _SUBMISSION.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        mtime = _mtime(entry)
        if mtime is None:
            continue
        job = jobs.setdefault(int(match.group(1) or match.group(2)), _Job())
        job.seen(mtime)
        if seat is not None:
            job.seats.append(Path(entry.path))
        else:
            job.submission = Path(entry.path)
    return jobs


def _canary_entries(root: Path, jobs: dict[int, _Job]) -> None:
    for entry in _listing(root):
        match = _SUBMISSION.fullmatch(entry.name)
        mtime = _mtime(entry) if match is not None and entry.is_file(follow_symlinks=False) else None
        if match is not None and mtime is not None:
            job = jobs.setdefault(int(match.group(1)), _Job())
            job.seen(mtime)
            job.canary = Path(entry.path)


def _temporary(root: Path, now: float) -> list[Path]:
    """`root`'s temporary files (or folders) whose last write is :data:`TEMP_AGE` old."""
    found = []
    for entry in _listing(root):
        if _TEMP.fullmatch(entry.name) or entry.name.startswith(".decoy-"):
            mtime = _mtime(entry)
            if mtime is not None and now - mtime >= TEMP_AGE:
                found.append(Path(entry.path))
    return found


def store_files(root: Path, now: float) -> tuple[dict[str, dict[str, float]], list[Path]]:
    """The store's files by name (``{name: {"tar" | "json" | "to": mtime}}``) and its temporary files
    a crash left behind (:func:`_temporary`)."""
    names: dict[str, dict[str, float]] = {}
    temps = _temporary(root, now) + _temporary(root / ".sealing", now)
    for shard in _listing(root):
        if _SHARD.fullmatch(shard.name) is None or not shard.is_dir(follow_symlinks=False):
            continue
        temps += _temporary(Path(shard.path), now)
        for entry in _listing(Path(shard.path)):
            match = _STORED.fullmatch(entry.name)
            if match is None or not match.group(1).startswith(shard.name) or not entry.is_file(follow_symlinks=False):
                continue
            mtime = _mtime(entry)
            if mtime is not None:
                names.setdefault(match.group(1), {})[match.group(2)] = mtime
    return names, temps


def _journal_dirs(rt: Runtime) -> list[Path]:
    """This executor's journal and those of the other instances that share its state folder (and
    so its result store)."""
    dirs = [rt.journal.root]
    dirs += [Path(e.path) for e in _listing(Path(rt.state_dir) / "journal") if e.is_dir(follow_symlinks=False)]
    return dirs


def journaled_names(dirs: Iterable[Path]) -> set[str]:
    """The archive names the submission entries below `dirs` name (an unreadable entry names none)."""
    names: set[str] = set()
    for root in set(dirs):
        for entry in _listing(root):
            if _SUBMISSION.fullmatch(entry.name) is None:
                continue
            try:
                name = json.loads(Path(entry.path).read_bytes()).get("name")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(name, str) and name:
                names.add(name)
    return names


def _manifest_job(rt: Runtime, name: str) -> int | None:
    """The job id the archive's manifest names, or None (no manifest, or not one of ours)."""
    try:
        job = json.loads(rt.store.manifest_path(name).read_bytes()).get("job")
    except (OSError, ValueError, AttributeError, KeyError):
        return None
    return job if isinstance(job, int) and not isinstance(job, bool) and job >= 0 else None


def _held(rt: Runtime) -> set[int]:
    """Jobs a task or step still works on: an active record, a seat in hand, a canary in flight."""
    pipe = rt.state.pipeline(transaction=False)
    pipe.zrange(rt.xkeys.active, 0, -1)
    pipe.zrange(rt.xkeys.seats, 0, -1)
    pipe.zrange(rt.xkeys.canaries, 0, -1)
    active, seats, canaries = cast(list[list[str]], pipe.execute())
    held = {int(j) for j in [*active, *canaries] if j.isdigit()}
    held |= {int(m.split(":")[0]) for m in seats if m.split(":")[0].isdigit()}
    return held


def _records(rt: Runtime, jobs: dict[int, _Job], held: set[int]) -> None:
    """Adds the executor's records that do not expire (job, seat and canary records) to `jobs`,
    but none of a job in an active state or `held`."""
    found: list[tuple[int, str]] = []
    for pattern, kind in ((rt.xkeys.job_pattern, "job"), (rt.xkeys.seat_pattern, "seat"), (rt.xkeys.canary_pattern, "canary")):
        base = pattern.removesuffix("*")
        for key in cast(Iterable[str], rt.state.scan_iter(match=pattern, count=1000)):
            rest = key[len(base):].split(":")
            if all(part.isdigit() for part in rest) and len(rest) == (3 if kind == "seat" else 1):
                found.append((int(rest[0]), key))
    for start in range(0, len(found), 500):
        chunk = found[start:start + 500]
        pipe = rt.state.pipeline(transaction=False)
        for _, key in chunk:
            pipe.ttl(key)
            pipe.hmget(key, ["state", "updated"])
        replies = pipe.execute()
        for (job_id, key), ttl, (state, updated) in zip(chunk, replies[::2], replies[1::2], strict=True):
            if ttl != -1 or job_id in held or (key == rt.xkeys.job(job_id) and state in ACTIVE_STATES):
                continue  # expires by itself, gone, or still worked on
            try:
                mtime = float(updated or 0)
            except ValueError:
                mtime = 0.0
            job = jobs.setdefault(job_id, _Job())
            job.seen(mtime)
            job.records.append(key)


def _unlink(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def prune_results(rt: Runtime, now: float | None = None) -> int:
    """One retention pass (see the module doc); returns the number of jobs whose files or records
    it removed."""
    days = float(rt.config.executor.result_retention_days)
    if days <= 0:
        return 0
    now = time.time() if now is None else now
    grace = days * DAY
    # the store first: what is stored after this listing is not looked at by this pass
    stored, temps = store_files(rt.store.root, now)
    jobs = journal_entries(rt.journal.root)
    temps += _temporary(rt.journal.root, now)
    if "canary" in rt.roles:
        canary_root = Path(rt.state_dir) / "canary"  # executor.canary.journal's (not imported: celery imports this module)
        _canary_entries(canary_root, jobs)
        temps += _temporary(canary_root, now)
    leftovers = len(temps)
    for path in temps:
        _unlink(path)
    journaled = journaled_names(_journal_dirs(rt)) if stored else set()
    for name, files in stored.items():
        if name in journaled:
            continue  # the journal path removes it with its entry
        job_id = _manifest_job(rt, name) if "json" in files else None
        if job_id is not None:
            job = jobs.setdefault(job_id, _Job())
            job.seen(files["json"])
            job.archives.append(name)
        elif now - max(files.values()) >= max(ORPHAN_AGE, grace):
            rt.store.remove(name)  # no job to ask the chain about: removed by age alone
            leftovers += 1
    held = _held(rt)
    _records(rt, jobs, held)
    removed = _settle(rt, jobs, held, now, grace)
    stale = [key for key in cast(list[str], rt.state.hkeys(rt.xkeys.retained)) if not key.isdigit() or int(key) not in jobs]
    if stale:  # marks whose job left nothing (a crash between the last two steps of _remove)
        rt.state.hdel(rt.xkeys.retained, *stale)
    if removed or leftovers:
        log.info("removed settled jobs' results", extra={"jobs": removed, "leftovers": leftovers, "retention_days": days})
    return removed


def _settle(rt: Runtime, jobs: dict[int, _Job], held: set[int], now: float, grace: float) -> int:
    """Removes what belongs to jobs seen settled `grace` seconds ago and still settled (read again:
    a reorg may have undone what the mark was taken from), then reads the status of jobs not yet
    seen settled, :data:`PRUNE_CHAIN_READS` reads in all; returns the number of jobs removed."""
    order = sorted(jobs, key=lambda job_id: (jobs[job_id].mtime, job_id))
    marks = cast(list[str | None], rt.state.hmget(rt.xkeys.retained, [str(job_id) for job_id in order])) if order else []
    removed = 0
    reads = 0
    unmarked = []
    for job_id, mark in zip(order, marks, strict=True):
        if mark is None:
            unmarked.append(job_id)
        elif now - float(mark) >= grace and job_id not in held and reads < PRUNE_CHAIN_READS:
            # Read again before anything goes: the mark may come from a head a reorg has since
            # undone (a finalize replaced by a challenge), and the court may still want the salt.
            reads += 1
            if not rt.job(job_id).status.settled:
                rt.state.hdel(rt.xkeys.retained, str(job_id))  # counted afresh once settled again
            elif _remove(rt, job_id, jobs[job_id]):
                removed += 1
    position = [(jobs[job_id].mtime, job_id) for job_id in unmarked]
    cursor = _cursor(cast(str | None, rt.state.get(rt.xkeys.prune_cursor)))
    start = next((i for i, key in enumerate(position) if cursor is not None and key > cursor), 0)
    turn = (unmarked[start:] + unmarked[:start])[: max(0, PRUNE_CHAIN_READS - reads)]
    for job_id in turn:
        if rt.job(job_id).status.settled:
            rt.state.hsetnx(rt.xkeys.retained, str(job_id), f"{now:.3f}")
    if len(unmarked) > len(turn):
        if turn:  # else every read went to removals: the next pass goes on from the same place
            rt.state.set(rt.xkeys.prune_cursor, f"{jobs[turn[-1]].mtime!r} {turn[-1]}")
    else:
        rt.state.delete(rt.xkeys.prune_cursor)
    return removed


def _cursor(value: str | None) -> tuple[float, int] | None:
    try:
        mtime, job_id = (value or "").split()
        return float(mtime), int(job_id)
    except ValueError:
        return None


def _remove(rt: Runtime, job_id: int, job: _Job) -> bool:
    """Removes the job's archives (the one its submission entry names and those no entry names),
    then its seat, canary and journal entries, then its records, then its mark: a crash in between
    leaves something that names the job, with its mark, and the next pass removes the rest. False
    (nothing removed) while a task holds the job's lease or its record is active again."""
    pipe = rt.state.pipeline(transaction=False)
    pipe.exists(rt.xkeys.lease(job_id))
    pipe.hget(rt.xkeys.job(job_id), "state")
    leased, state = pipe.execute()
    if leased or state in ACTIVE_STATES:
        return False
    names = list(job.archives)
    if job.submission is not None:
        try:
            sub = rt.journal.load(job_id)
        except (ValueError, TypeError):  # an unreadable entry of a settled job: nothing left to reveal
            sub = None
        if sub is not None and sub.name:
            names.append(sub.name)
    for name in names:
        try:
            rt.store.remove(name)
        except ValueError:
            pass  # not a store name (an entry written by another version): nothing of ours to remove
    for path in [*job.seats, *([job.canary] if job.canary is not None else [])]:
        path.unlink(missing_ok=True)
    if job.submission is not None:
        rt.journal.forget(job_id)
    if job.records:
        pipe = rt.state.pipeline(transaction=True)
        pipe.delete(*job.records)
        pipe.zrem(rt.xkeys.submitted, str(job_id))
        pipe.zrem(rt.xkeys.deferred, str(job_id))
        pipe.execute()
    rt.state.hdel(rt.xkeys.retained, str(job_id))
    return True

