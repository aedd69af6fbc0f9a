"""Result retention: a settled job's archive and journal entries are removed a while after settlement.

Without this the result store (``<state_dir>/results``) and the journal
(``<state_dir>/journal/<instance>``) grow with every job for good, until the provider's disk fills
and its runs fail as its own fault. A job's files are kept while anyone may still ask for them:

- the submission journal entry (``<job>.json``) holds the salt the court asks the provider to reveal,
  and the archive it names is what a verifier or juror downloads to re-check the result, so both
  stay until the job is **settled on chain** (``JobStatus.settled``: Finalized, Resolved, Cancelled,
  Expired, TimedOut, Pruned): after that no challenge, audit or reveal can concern it;
- the requester downloads its result after that too, so the files (and the job's ``finalized``
  record in Redis) stay ``[executor] result_retention_days`` longer (default 7; ``0`` keeps everything for good), counted from the
  first pass that saw the job settled (kept in Redis, ``ExecKeys.retained``).

Each pass (``depin.prune``, every :data:`PRUNE_INTERVAL` seconds) looks at the journal's entries,
oldest first: an entry whose job was seen settled long enough ago is removed with its archive (and
the verifier role's seat entries of that job); an entry not yet seen settled costs one chain read, at
most :data:`PRUNE_CHAIN_READS` per pass. Only what the chain says settled is removed: a job the chain
does not know (a node on another chain, a reorg) is never taken for settled. A lost Redis loses the
marks only: the files are then kept one retention period longer, never removed early.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from executor.results import ResultNotFound
from executor.runtime import Runtime

log = logging.getLogger("depin.executor.retention")

PRUNE_INTERVAL = float(os.environ.get("DEPIN_PRUNE_INTERVAL", "600"))  # seconds between passes
PRUNE_CHAIN_READS = 200  # jobs not yet seen settled whose status is read per pass
DAY = 86_400.0

_SUBMISSION = re.compile(r"(\d+)\.json")
_SEAT = re.compile(r"seat-(\d+)-\d+-\d+\.json")


@dataclass
class _Entries:
    """One job's files in the journal: its submission entry (if any) and its seat entries."""

    mtime: float = float("inf")
    submission: Path | None = None
    seats: list[Path] = field(default_factory=list)

    def add(self, path: Path, mtime: float, *, seat: bool) -> None:
        self.mtime = min(self.mtime, mtime)
        if seat:
            self.seats.append(path)
        else:
            self.submission = path


def journal_entries(root: Path) -> dict[int, _Entries]:
    """The journal's entries below `root` by job id (other files are left alone)."""
    jobs: dict[int, _Entries] = {}
    try:
        listing = list(os.scandir(root))
    except FileNotFoundError:
        return jobs
    for entry in listing:
        seat = _SEAT.fullmatch(entry.name)
        match = seat or _SUBMISSION.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        jobs.setdefault(int(match.group(1)), _Entries()).add(Path(entry.path), mtime, seat=seat is not None)
    return jobs


def prune_results(rt: Runtime, now: float | None = None) -> int:
    """One retention pass (see the module doc); returns the number of jobs whose files it removed."""
    days = float(rt.config.executor.result_retention_days)
    if days <= 0:
        return 0
    now = time.time() if now is None else now
    jobs = journal_entries(rt.journal.root)
    if not jobs:
        return 0
    order = sorted(jobs, key=lambda job_id: jobs[job_id].mtime)
    marks = cast(list[str | None], rt.state.hmget(rt.xkeys.retained, [str(job_id) for job_id in order]))
    removed = reads = 0
    for job_id, mark in zip(order, marks, strict=True):
        if mark is not None:
            if now - float(mark) >= days * DAY:
                _remove(rt, job_id, jobs[job_id])
                removed += 1
            continue
        if reads >= PRUNE_CHAIN_READS:
            continue
        reads += 1
        if rt.job(job_id).status.settled:
            rt.state.hsetnx(rt.xkeys.retained, str(job_id), f"{now:.3f}")
    stale = [key for key in cast(list[str], rt.state.hkeys(rt.xkeys.retained)) if int(key) not in jobs]
    if stale:  # marks whose files are gone (a crash between the two steps of _remove)
        rt.state.hdel(rt.xkeys.retained, *stale)
    if removed:
        log.info("removed settled jobs' results", extra={"jobs": removed, "retention_days": days})
    return removed


def _remove(rt: Runtime, job_id: int, entries: _Entries) -> None:
    """Removes the job's archive (named by its submission entry), then its journal entries, then
    its record when the beat recorded the job ``finalized``, then its mark: a crash in between
    leaves a mark whose next pass removes what is left."""
    try:
        sub = rt.journal.load(job_id) if entries.submission is not None else None
    except (ValueError, TypeError):  # an unreadable entry of a settled job: nothing left to reveal
        sub = None
    if sub is not None and sub.name:
        try:
            rt.store.remove(sub.name)
        except (ResultNotFound, ValueError):
            pass  # not a store name (an entry written by another version): nothing of ours to remove
    for seat in entries.seats:
        seat.unlink(missing_ok=True)
    rt.journal.forget(job_id)
    rec = rt.record(job_id)
    if rec.get("state") == "finalized" and not rec.get("refused"):  # settled, as the beat saw it: nothing left to recover
        rt.state.delete(rt.xkeys.job(job_id))
    rt.state.hdel(rt.xkeys.retained, str(job_id))
