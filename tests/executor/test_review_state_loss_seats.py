"""Review (stop 56): the redelivery cap and the verifier's seats after lost or stale state, on a
real redis-server (the verifier's court is the simulated one of tests/executor/test_verifier_seats.py).

- C, the redelivery cap (:mod:`executor.jobtask`): every delivery that started was counted, live
  duplicates included. A compute worker killed twice on a job, its third run live and holding the
  job's lease, and a duplicate message (a visibility-timeout redelivery, recovery's re-queue): the
  duplicate made the count pass the cap, and the job was given up (abandoned and refused) while the
  healthy run went on; it then timed out in our hands, the collateral slashed. The verifier's
  ``depin.audit_run`` shared one count per job for every seat and round for a day: a seat's first
  delivery was given up because another seat's re-runs had died. Fixed: past the cap, a delivery
  whose job's (seat's) lease is held is counted off and ends, nothing given up; a seat task counts
  per (job, round, seat). A run that keeps killing its worker is still given up.
- D, a Redis restored from an older snapshot (:func:`executor.verifier.follow_seat`): a seat's
  record says ``running`` (an old ``updated``) while on chain it is committed, its journal entry on
  disk and the reveal window open. Only a ``committed`` record was revealed: the pass waited two
  looks a lease TTL apart and queued a re-run on the compute queue, and with busy compute slots the
  reveal window passed (a no-show, the bond lost). Fixed: the record is caught up with the chain
  and the seat revealed in the same pass (:func:`executor.verifier.committed_behind`).
- E, a take whose receipt wait timed out (:func:`executor.verifier.take`): its ``taking`` record
  counted itself against ``max_audits``; at the cap the next pass declined it "no free slot" and
  dropped the job's checked inputs, though the take could still be mined, and the seat adopted
  then ran without them (inputs gone: declined, bond lost). Fixed: the seat is not counted against
  itself, and a decline of a ``taking`` seat keeps the checked inputs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from depin.keys import ExecKeys
from depin.market import JobStatus
from depin.transactions import TxReverted, TxTimeout
from executor import jobtask, provider, queue, tasks, verifier
from executor.execute import Outcome
from executor.lease import Lease
from executor.runtime import Runtime
from tests.executor.test_executor_units import _spec as _provider_spec
from tests.executor.test_verifier_seats import BOND, ME, _record, _spec, court, rt, runs, sent, specs  # noqa: F401
from tests.indexer.services import RedisServer, wait_for


class Killed(BaseException):
    """The worker killed mid-run (kill -9, the OOM killer): nothing of the task runs after it."""


@pytest.fixture
def killed(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """Threads whose delivery was killed: their delivery is never counted off (a dead worker's
    ``finally`` does not run), as in production, where only such deliveries stay counted."""
    dead: set[int] = set()
    count_off = jobtask._count_off

    def counted_off_unless_killed(rt_: Any, key: str) -> None:
        if threading.get_ident() in dead:
            dead.discard(threading.get_ident())
            return
        count_off(rt_, key)

    monkeypatch.setattr(jobtask, "_count_off", counted_off_unless_killed)
    return dead


def _kill(dead: set[int]) -> None:
    dead.add(threading.get_ident())
    raise Killed()


def _in_thread(work: Any) -> threading.Thread:
    def target() -> None:
        try:
            work()
        except Killed:
            pass

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------------------------ C: the redelivery cap


@pytest.fixture
def provider_rt(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    r: redis.Redis = redis_server.client(5)
    r.flushdb()
    runtime = SimpleNamespace(state=r, xkeys=ExecKeys(31337, "0xmarket", "provider", ME), roles=("provider",), lease_ttl=5, address=ME,
                              chain_now=lambda: 1_000, config=None)
    runtime.record = lambda job_id: Runtime.record(runtime, job_id)  # type: ignore[arg-type]
    runtime.set_record = lambda *a, **k: Runtime.set_record(runtime, *a, **k)  # type: ignore[arg-type]
    runtime.refuse = lambda job_id, why: Runtime.refuse(runtime, job_id, why)  # type: ignore[arg-type]
    runtime.lease = lambda job_id: Lease(r, runtime.xkeys.lease(job_id), runtime.lease_ttl, touch=runtime.xkeys.job(job_id))
    runtime.job = lambda job_id: SimpleNamespace(provider=ME, status=JobStatus.CLAIMED, deadline=100_000, spec_hash=b"h")
    monkeypatch.setattr(jobtask, "get_runtime", lambda: runtime)
    monkeypatch.setattr(provider, "load_spec", lambda rt_, job_id, expected: _provider_spec())
    monkeypatch.setattr(provider, "journaled_outcome", lambda *a, **k: None)
    monkeypatch.setattr(queue, "send", lambda *a, **k: None)
    return runtime


def test_a_duplicate_delivery_past_the_cap_while_a_live_run_holds_the_job_gives_nothing_up(
    provider_rt: SimpleNamespace, killed: set[int], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    rt, r = provider_rt, provider_rt.state
    key = rt.xkeys.deliveries("depin.run", 7)
    live = {"started": threading.Event(), "go": threading.Event()}

    def execute_job(*args: Any, **kwargs: Any) -> Outcome:
        if live["started"].is_set():  # the live run: under way until the test lets it end (killed too)
            live["go"].wait(timeout=60)
        _kill(killed)
        raise AssertionError("unreachable")

    monkeypatch.setattr(provider, "execute_job", execute_job)
    rt.set_record(7, "claimed")
    for _ in range(jobtask.MAX_DELIVERIES - 1):  # the compute worker OOM-killed on the job, again and again
        with pytest.raises(Killed):
            tasks.run(7)
    assert int(r.get(key)) == jobtask.MAX_DELIVERIES - 1 and rt.record(7)["state"] == "running"
    # the last delivery the cap allows is live: it counted itself, holds the job's lease and runs
    live["started"].set()
    thread = _in_thread(lambda: tasks.run(7))
    try:
        wait_for(lambda: r.exists(rt.xkeys.lease(7)) and int(r.get(key) or 0) == jobtask.MAX_DELIVERIES, 30, "the live run under way")
        # a duplicate message arrives (the visibility timeout, recovery): past the cap, yet nothing is given up
        tasks.run(7)
        rec = rt.record(7)
        assert rec["state"] == "running" and "refused" not in rec, rec
        assert int(r.get(key)) == jobtask.MAX_DELIVERIES, "the duplicate stays uncounted"
        assert r.exists(rt.xkeys.lease(7)), "the live run still holds the job"
    finally:
        live["go"].set()
        thread.join(timeout=60)
    # the live run is killed too: the cap's purpose stands, the next delivery (its lease free) gives the job up
    assert not thread.is_alive() and int(r.get(key)) == jobtask.MAX_DELIVERIES and not r.exists(rt.xkeys.lease(7))
    tasks.run(7)
    rec = rt.record(7)
    assert rec["state"] == "abandoned" and "redelivery cap" in rec["refused"], rec
    assert any(x.levelname == "CRITICAL" and x.getMessage() == "giving the job up" for x in caplog.records)


def test_a_seat_task_counts_its_deliveries_per_seat_and_a_live_seat_is_not_given_up(
    rt: SimpleNamespace, court: Any, specs: dict, sent: list, runs: list, killed: set[int], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(jobtask, "get_runtime", lambda: rt)
    specs[31] = _spec(max_runtime=10)
    court.jury(31, commit_in=300, mine=(0, 1))
    assert verifier.consider(rt, 31) == 2
    sent.clear()
    recorded = verifier.execute
    seat0 = verifier.audit_container(rt, 31, 1, 0)
    live = {"started": threading.Event(), "go": threading.Event()}

    def execute(client: Any, **kw: Any) -> Outcome:
        if kw["name"] != seat0:
            return recorded(client, **kw)
        if live["started"].is_set():  # seat 0's live re-run
            live["go"].wait(timeout=60)
        _kill(killed)
        raise AssertionError("unreachable")

    monkeypatch.setattr(verifier, "execute", execute)
    for _ in range(jobtask.MAX_DELIVERIES - 1):  # seat 0's re-run killed its worker, again and again
        with pytest.raises(Killed):
            tasks.audit_run(31, round=1, seat=0)
    live["started"].set()
    lease0 = verifier.seat_lease(rt, 31, 1, 0).key
    key0 = f"{rt.xkeys.deliveries('depin.audit_run', 31)}:1:0"
    thread = _in_thread(lambda: tasks.audit_run(31, round=1, seat=0))
    try:
        wait_for(lambda: rt.state.exists(lease0) and _record(rt, 31, 1, 0).get("state") == "running", 30, "seat 0's live re-run")
        # seat 1's first delivery: seat 0's deaths are not its own
        tasks.audit_run(31, round=1, seat=1)
        assert _record(rt, 31, 1, 1)["state"] == "computed", _record(rt, 31, 1, 1)
        assert ("depin.audit_commit", 31, {"round": 1, "seat": 1}) in sent
        # a duplicate of seat 0's delivery past the cap, while its live re-run holds the seat: not given up, not counted
        tasks.audit_run(31, round=1, seat=0)
        assert int(rt.state.get(key0)) == jobtask.MAX_DELIVERIES
        assert not any(x.getMessage() == "giving the job up" for x in caplog.records)
    finally:
        live["go"].set()
        thread.join(timeout=60)
    # seat 0's live re-run is killed too: the next delivery (its lease free) is given up, nothing run
    assert not thread.is_alive() and not rt.state.exists(lease0)
    ran = len(runs)
    tasks.audit_run(31, round=1, seat=0)
    assert len(runs) == ran and any(x.getMessage() == "giving the job up" for x in caplog.records)
    assert jobtask.delivery_scope(rt, "depin.audit_run", 31, (1, 0), {}) == (key0, lease0)  # the seat's lease, as the re-run holds it


# ------------------------------------------------------------------------------------ D: a record behind the chain


# A `taking` record is adopted by the scan already (consider -> adopt: it is reclaimable); the
# follow pass catches it up by itself when the scan fails (tasks.verify follows the seats in hand
# whatever the scan did: an engine that does not answer fails every scan).
@pytest.mark.parametrize(("behind", "scanned"), [("seated", True), ("running", True), ("computed", True), ("taking", False)])
def test_a_seat_committed_on_chain_whose_record_a_snapshot_put_back_is_revealed_in_the_same_pass(
    rt: SimpleNamespace, court: Any, specs: dict, sent: list, runs: list, behind: str, scanned: bool,
) -> None:
    specs[21] = _spec(max_runtime=10)
    court.jury(21, commit_in=100, mine=(0,))
    assert verifier.consider(rt, 21) == 1
    while sent:  # the re-run and the commit, as the workers carry them out
        name, job_id, kw = sent.pop(0)
        (verifier.run_audit if name == "depin.audit_run" else verifier.commit_seat)(rt, job_id, kw["round"], kw["seat"])
    assert court.seats[(21, 1, 0)][1] == verifier.SEAT_COMMITTED and verifier.journal(rt).load(21, 1, 0) is not None
    # Redis restored from a snapshot taken before the commit: the record as it was then
    verifier.set_seat(rt, 21, 1, 0, behind)
    rt.state.hset(rt.xkeys.seat(21, 1, 0), "updated", f"{time.time() - 600:.3f}")
    court.now = court.cases[21]["commitDeadline"] + 1  # the reveal window is open
    court.sent.clear()
    if scanned:
        verifier.consider(rt, 21)
    verifier.follow_seats(rt)
    assert [c[:3] for c in court.sent if c[0] == "reveal"] == [("reveal", 21, 0)], court.sent
    assert court.seats[(21, 1, 0)][1] == verifier.SEAT_REVEALED and _record(rt, 21, 1, 0)["state"] == "revealed"
    assert sent == [], "nothing waits for a compute slot"


# ------------------------------------------------------------------------------------ E: a timed-out take at max_audits


def _checked_inputs(rt: SimpleNamespace, job_id: int) -> Path:
    cache = verifier.input_cache(rt, job_id)  # type: ignore[arg-type]
    cache.mkdir(parents=True)
    (cache / "deadbeef").write_bytes(b"checked input")  # what the check before the take kept
    return cache / "deadbeef"


def _mine_pending_take(court: Any, job_id: int, seat: int) -> None:
    court.seats[(job_id, court.cases[job_id]["round"], seat)] = [ME, verifier.SEAT_TAKEN, BOND]
    court.cases[job_id]["taken"] += 1


def _adopt_and_run(rt: SimpleNamespace, court: Any, sent: list, job_id: int) -> None:
    verifier.consider(rt, job_id)
    while sent:
        name, j, kw = sent.pop(0)
        (verifier.run_audit if name == "depin.audit_run" else verifier.commit_seat)(rt, j, kw["round"], kw["seat"])


def test_a_timed_out_take_at_max_audits_does_not_count_itself_and_keeps_its_checked_inputs(
    rt: SimpleNamespace, court: Any, specs: dict, sent: list, runs: list,
) -> None:
    rt.config.verifier.max_audits = 1
    specs[14] = _spec(max_runtime=10)
    court.jury(14, commit_in=300, mine=(0,))
    checked = _checked_inputs(rt, 14)
    court.refuse["take_seat"] = TxTimeout("takeSeat", 7, ["0x" + "ab" * 32], 120)
    assert verifier.consider(rt, 14) == 0
    assert _record(rt, 14, 1, 0)["state"] == "taking"
    # next pass, the take still pending: the re-take's gas estimate (the pending state) reverts
    court.refuse["take_seat"] = TxReverted("takeSeat", "VerificationCourt.BadSeat(jobId=14, seat=0)")
    assert verifier.consider(rt, 14) == 0
    rec = _record(rt, 14, 1, 0)
    assert not rec["reason"].startswith(verifier.NO_SLOT), rec
    assert checked.is_file(), "the checked inputs are kept while our take may be mined"
    # the pending take is mined: the seat is adopted and run with the checked bytes
    _mine_pending_take(court, 14, 0)
    _adopt_and_run(rt, court, sent, 14)
    assert [run["input_cache"] for run in runs] == [checked.parent] and checked.is_file()
    assert court.seats[(14, 1, 0)][1] == verifier.SEAT_COMMITTED


def test_a_timed_out_take_declined_for_want_of_a_slot_keeps_its_checked_inputs(
    rt: SimpleNamespace, court: Any, specs: dict, sent: list, runs: list,
) -> None:
    rt.config.verifier.max_audits = 1
    specs[15] = _spec(max_runtime=10)
    court.jury(15, commit_in=300, mine=(0,))
    checked = _checked_inputs(rt, 15)
    court.refuse["take_seat"] = TxTimeout("takeSeat", 7, ["0x" + "ab" * 32], 120)
    assert verifier.consider(rt, 15) == 0
    verifier.set_seat(rt, 40, 1, 0, "seated")  # another job's seat, adopted meanwhile, takes the one slot
    assert verifier.consider(rt, 15) == 0
    rec = _record(rt, 15, 1, 0)
    assert rec["state"] == "declined" and rec["reason"].startswith(verifier.NO_SLOT), rec
    assert checked.is_file(), "the checked inputs are kept while our take may be mined"
    _mine_pending_take(court, 15, 0)
    _adopt_and_run(rt, court, sent, 15)
    assert [run["input_cache"] for run in runs] == [checked.parent] and checked.is_file()
    assert court.seats[(15, 1, 0)][1] == verifier.SEAT_COMMITTED
