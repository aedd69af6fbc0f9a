"""The verifier's seat handling (executor/verifier.py) against a simulated court, on a real
redis-server: an honest verifier never locks a bond it must then lose to something the requester
or provider controls. Only what tests/executor/test_verifier_seats_stack.py does not prove on the
real stack (anvil and the deployed VerificationCourt, Redis, Celery workers, Podman) is here.

On the real stack (test_verifier_seats_stack.py):

- A, the audit seat (round 0, before the case opens): on-chain ``maxRuntime`` 60 s, spec runtime
  3000 s: declined "no time to run", no case opened, no bond
  (``test_a_spec_runtime_beyond_the_on_chain_window_is_declined_before_any_bond``); the deadlines
  the verifier computes before the case opens equal those the real court sets (in the C test).
- C, round 0: the seat's record, its entry among the seats in hand and the queued re-run deleted
  from the verifier's Redis after ``startAudit`` was mined: adopted, run, committed, revealed
  (``test_a_seat_taken_whose_record_was_lost_is_adopted_run_committed_and_revealed``).
- D: an http input gone, or serving other bytes, after the provider ran: the audit seat declined
  before any bond, the scratch folders removed
  (``test_inputs_gone_or_changed_before_the_draw_decline_the_seat_before_any_bond``).

Here, what needs seats the stack cannot produce at will:

- A, juries: a jury seat whose commit window cannot hold ρ x the runtime is declined, and a re-run's
  inputs get only what the window leaves (``input_deadline``).
- B: two of our seats in one round run side by side (a lease per seat), and a seat with no time
  left for its own run commits the digest another of our seats computed, with a fresh salt.
- C, juries: a jury seat held by us with no record is adopted past the seat deadline (the commit
  window still open); a seat held by someone else is left alone.
- D, the image: an image missing here declines the seat before any bond.

The court is a small in-memory model of VerificationCourt's seat rules (bonds, deadlines,
``_commitWindow``); the container run is replaced by a recorded stand-in."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from depin.commitment import NOT_DELIVERED
from depin.config import DepinConfig, PolicyConfig, VerifierConfig
from depin.keys import ExecKeys
from depin.market import JobStatus
from depin.spec import JobSpec, parse_spec
from depin.transactions import TxReverted, TxTimeout
from executor import queue, verifier
from executor.execute import Outcome
from executor.lease import Lease
from tests.indexer.services import RedisServer, wait_for

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"depin/busybox@{DIGEST}"
ME = "0x" + "33" * 20
OTHER = "0x" + "44" * 20
ZERO = "0x" + "00" * 20
PARAMS = {"startWindow": 4, "rhoPct": 200, "setupTime": 20, "inclusionTime": 6, "blockTime": 1, "revealWindow": 10}
BOND = 10**17
RUN_DIGEST = hashlib.sha256(b"the job's output").digest()


def _spec(max_runtime: int = 10, inputs: list[dict[str, str]] | None = None) -> JobSpec:
    return parse_spec({"v": 1, "image": IMAGE, "command": ["true"], "inputs": inputs or [],
                       "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": max_runtime, "output_mb": 1}})


class Court:
    """VerificationCourt's jury seats, cases and bonds as far as the verifier touches them; views and
    transactions are ``(name, *args)`` tuples that :meth:`read` and :meth:`send` carry out."""

    def __init__(self) -> None:
        self.now = 10_000
        self.cases: dict[int, dict[str, Any]] = {}
        self.seats: dict[tuple[int, int, int], list[Any]] = {}  # holder, state, bond
        self.drawn: dict[tuple[int, int, int], str] = {}
        self.free, self.locked = 100 * BOND, 0
        self.sent: list[tuple[Any, ...]] = []
        self.refuse: dict[str, Exception] = {}  # transaction name -> what its next send raises (nothing mined)
        self.contracts = SimpleNamespace(verification_court=self, job_market=self)

    # views and transactions (bindings)
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: (name, *args)

    def jury(self, job_id: int, *, round_: int = 1, commit_in: int, mine: tuple[int, ...]) -> None:
        """An open jury round whose commit deadline is `commit_in` seconds away; `mine` drawn for us."""
        k = verifier.ROUND_SEATS[round_]
        self.cases[job_id] = {"phase": verifier.PHASE_ACTIVE, "round": round_, "taken": 0, "platformClass": 0,
                              "seatDeadline": self.now + 10, "commitDeadline": self.now + commit_in,
                              "revealDeadline": self.now + commit_in + 10, "outcome": 0}
        for s in range(k):
            self.drawn[(job_id, round_, s)] = ME if s in mine else OTHER

    def read(self, view: tuple[Any, ...]) -> Any:
        name, *args = view
        if name == "get_seat":
            holder, state, bond = self.seats.get(tuple(args), [ZERO, verifier.SEAT_EMPTY, 0])
            return (holder, state, bond, b"\0" * 32, b"\0" * 32)
        if name == "drawn_for":
            return self.drawn.get(tuple(args), OTHER)
        if name == "get_verifier":
            return (True, 0, self.free, self.locked, 0, 0)
        raise AssertionError(f"unexpected view {view}")

    def send(self, call: tuple[Any, ...]) -> Any:
        name, job_id, *args = call
        if name in self.refuse:
            raise self.refuse.pop(name)
        self.sent.append(call)
        c = self.cases[job_id]
        if name == "take_seat":
            key = (job_id, c["round"], args[0])
            assert self.now <= c["seatDeadline"] and self.drawn.get(key) == ME and key not in self.seats
            self.free, self.locked = self.free - BOND, self.locked + BOND
            self.seats[key] = [ME, verifier.SEAT_TAKEN, BOND]
            c["taken"] += 1
        elif name == "commit":
            key = (job_id, c["round"], args[0])
            assert self.seats[key][:2] == [ME, verifier.SEAT_TAKEN] and self.now <= c["commitDeadline"], "CommitClosed"
            self.seats[key][1] = verifier.SEAT_COMMITTED
        elif name == "reveal":
            key = (job_id, c["round"], args[0])
            assert self.seats[key][:2] == [ME, verifier.SEAT_COMMITTED] and c["commitDeadline"] < self.now <= c["revealDeadline"], "RevealNotOpen"
            self.seats[key][1] = verifier.SEAT_REVEALED
        elif name == "advance":
            raise TxReverted(name, f"VerificationCourt.NothingDue(jobId={job_id})")
        elif name == "release_reserve":  # VerificationCourt.releaseReserve's rule
            due = c["phase"] == verifier.PHASE_TALLIED and c["round"] == 0 and c["tally"] == 1 and c["challenger"] == ZERO
            if not due or self.now <= c["canaryEnd"] or c.get("released"):
                raise TxReverted(name, f"VerificationCourt.NothingDue(jobId={job_id})")
            c["released"] = True
        else:
            raise AssertionError(f"unexpected transaction {call}")
        return SimpleNamespace(tx_hash="0x" + f"{len(self.sent):064x}")

    def is_drawn(self, job_id: int) -> bool:
        return True

    def court_case(self, job_id: int) -> dict[str, Any]:
        return dict(self.cases[job_id])

    def court_params(self, job_id: int | None = None) -> dict[str, Any]:
        return dict(PARAMS)

    def court_of(self, job_id: int) -> Court:
        return self  # one court here (a job of an earlier court: tests/executor/test_court_change_stack.py)

    def seats_by_us(self, job_id: int) -> list[tuple[Any, ...]]:
        return [c for c in self.sent if c[0] == "take_seat" and c[1] == job_id]


@pytest.fixture
def court() -> Court:
    return Court()


@pytest.fixture
def runs() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def sent() -> list[tuple[str, int, dict[str, Any]]]:
    return []


@pytest.fixture
def specs() -> dict[int, JobSpec]:
    return {}


@pytest.fixture
def rt(redis_server: RedisServer, tmp_path: Path, court: Court, runs: list[dict[str, Any]], sent: list[Any], specs: dict[int, JobSpec],
       monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    r: redis.Redis = redis_server.client(4)
    r.flushdb()
    config = DepinConfig(policy=PolicyConfig(images=[DIGEST], max_runtime=86_400, input_allow_networks=["127.0.0.0/8"]),
                         verifier=VerifierConfig(max_audits=8))
    runtime = SimpleNamespace(
        state=r, xkeys=ExecKeys(31337, "0xmarket", "verifier", ME), address=ME, instance="verifier-test", chain_id=31337,
        state_dir=tmp_path / "state", work_root=tmp_path / "work", lease_ttl=5, chain_now=lambda: court.now, config=config,
        client=court, docker=None, store=SimpleNamespace(remove=lambda name: None),
        deployment=SimpleNamespace(parameters={"randomness": "blockhash"}),  # no header to prove
    )
    runtime.lease = lambda job_id: Lease(r, runtime.xkeys.lease(job_id), 5)
    runtime.job = lambda job_id: SimpleNamespace(status=JobStatus.SUBMITTED, provider=OTHER)
    monkeypatch.setattr(verifier, "posted_spec", lambda rt_, job_id: specs[job_id])
    monkeypatch.setattr(verifier, "check_image", lambda client, image, **kw: "sha256:" + "cd" * 32)
    monkeypatch.setattr(verifier, "check_provider_delivery", lambda rt_, job_id, spec: "delivered (test)")
    monkeypatch.setattr(queue, "send", lambda name, job_id, **kw: sent.append((name, job_id, kw)))

    def execute(client: Any, **kw: Any) -> Outcome:
        runs.append({**kw, "monotonic": time.monotonic()})
        return Outcome.result(digest=RUN_DIGEST, uri="", exit_code=0, size=1, match_digest=RUN_DIGEST)

    monkeypatch.setattr(verifier, "execute", execute)
    return runtime


def _record(rt: SimpleNamespace, job_id: int, round_: int = 0, seat: int = 0) -> dict[str, str]:
    return verifier.seat_record(rt, job_id, round_, seat)  # type: ignore[arg-type]


def _drain(rt: SimpleNamespace, sent: list[tuple[str, int, dict[str, Any]]]) -> None:
    """Carries out the queued audit tasks (what the compute and chain workers would), in order."""
    while sent:
        name, job_id, kw = sent.pop(0)
        if name == "depin.audit_run":
            verifier.run_audit(rt, job_id, kw["round"], kw["seat"])  # type: ignore[arg-type]
        elif name == "depin.audit_commit":
            verifier.commit_seat(rt, job_id, kw["round"], kw["seat"])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ A: time to run (juries)


def test_a_jury_seat_without_time_to_run_is_declined_and_the_inputs_get_what_the_window_leaves(rt, court, specs, sent, runs) -> None:
    court.jury(3, commit_in=100, mine=(0, 1, 2))
    specs[3] = _spec(max_runtime=60)  # ρ x 60 = 120 s > 100 s
    assert verifier.consider(rt, 3) == 0
    assert court.sent == [] and court.locked == 0
    assert all(_record(rt, 3, 1, s)["reason"].startswith("no time to run") for s in range(3))
    # a seat that fits: the re-run's inputs end by the commit deadline less the run and the margin
    court.jury(4, commit_in=200, mine=(0,))
    specs[4] = _spec(max_runtime=30)
    assert verifier.consider(rt, 4) == 1
    _drain(rt, sent)
    (run,) = runs
    left = run["input_deadline"] - run["monotonic"]
    assert abs(left - (200 - 60 - verifier.run_margin(PARAMS))) < 2, left  # the court's setupTime + inclusionTime
    assert court.seats[(4, 1, 0)][1] == verifier.SEAT_COMMITTED


# ------------------------------------------------------------------------------------ B: several seats


def test_two_seats_of_one_round_do_not_wait_on_each_other(rt, court, specs, sent, runs) -> None:
    """Seat 1's run starts while seat 0's holds its lease (a lease per seat, not per job)."""
    court.jury(5, commit_in=300, mine=(0, 1))
    specs[5] = _spec(max_runtime=10)
    assert verifier.consider(rt, 5) == 2
    held = verifier.seat_lease(rt, 5, 1, 0)  # seat 0's re-run under way
    assert held.acquire(renew=False)
    try:
        verifier.run_audit(rt, 5, 1, 1)
    finally:
        held.release()
    assert _record(rt, 5, 1, 1)["state"] == "computed" and len(runs) == 1


def test_a_seat_with_no_time_left_commits_our_other_seats_digest_with_a_fresh_salt(rt, court, specs, sent, runs) -> None:
    court.jury(6, commit_in=300, mine=(0, 1, 2))
    specs[6] = _spec(max_runtime=100)  # ρ x 100 = 200 s: one run fits, a second after it does not
    assert verifier.consider(rt, 6) == 3
    verifier.run_audit(rt, 6, 1, 0)
    assert len(runs) == 1
    court.now += 150  # seat 0's run took its time
    verifier.run_audit(rt, 6, 1, 1)
    assert len(runs) == 1  # no second run
    j = verifier.journal(rt)
    first, second = j.load(6, 1, 0), j.load(6, 1, 1)
    assert first is not None and second is not None
    assert second.digest == first.digest == "0x" + RUN_DIGEST.hex() and second.kind == first.kind
    assert second.salt != first.salt and second.commitment != first.commitment
    rec = _record(rt, 6, 1, 1)
    assert rec["state"] == "computed" and rec["reused"] == "0" and rec["delivery"] == "delivered (test)", rec
    # a crash after seat 2's entry is journaled: its re-run keeps that entry (same salt, same digest)
    entry = verifier.reuse(rt, first, 2)
    verifier.set_seat(rt, 6, 1, 2, "running")
    verifier.run_audit(rt, 6, 1, 2)
    assert j.load(6, 1, 2) == entry and len(runs) == 1
    _drain(rt, sent)
    assert all(court.seats[(6, 1, s)][1] == verifier.SEAT_COMMITTED for s in range(3))


def test_a_seat_with_time_left_runs_on_its_own(rt, court, specs, sent, runs) -> None:
    """Independent runs while they fit: a nondeterministic job still shows as such."""
    court.jury(7, commit_in=300, mine=(0, 1))
    specs[7] = _spec(max_runtime=10)
    assert verifier.consider(rt, 7) == 2
    _drain(rt, sent)
    assert len(runs) == 2 and not _record(rt, 7, 1, 1).get("reused")


# ------------------------------------------------------------------------------------ C: lost record (juries)


def test_a_jury_seat_held_on_chain_without_a_record_is_adopted_past_the_seat_deadline(rt, court, specs, sent, runs) -> None:
    """takeSeat was mined but the ``taking`` write was lost (round 0 is proven on the real stack);
    the seat deadline has passed, the commit window is still open."""
    court.jury(9, commit_in=300, mine=(1,))
    specs[9] = _spec(max_runtime=10)
    court.seats[(9, 1, 1)] = [ME, verifier.SEAT_TAKEN, BOND]
    court.cases[9]["taken"] = 1
    court.now = court.cases[9]["seatDeadline"] + 1
    assert verifier.consider(rt, 9) == 0
    rec = _record(rt, 9, 1, 1)
    assert rec["state"] == "seated" and "adopted" in rec["reason"], rec
    assert (9, 1, 1) in verifier.seats_in_hand(rt)
    # its re-run is queued by the follow pass once two looks a lease TTL apart find no live task on it
    assert rec["updated"] == "0" and sent == []
    wait_for(lambda: verifier.follow_seats(rt) == 0 and sent, 30, "the adopted seat's re-run to be queued")
    assert sent == [("depin.audit_run", 9, {"round": 1, "seat": 1})]
    assert not _record(rt, 9, 1, 0)  # a seat held by someone else is left alone
    _drain(rt, sent)
    assert len(runs) == 1 and court.seats[(9, 1, 1)][1] == verifier.SEAT_COMMITTED


def test_a_committed_seat_whose_records_were_wiped_in_the_reveal_phase_is_still_revealed(rt, court, specs, sent, runs) -> None:
    """Review (stop 41): the verifier's Redis wiped (restarted without persistence, or restored from
    a snapshot older than the commit) once the commit deadline has passed: the seat's record and the
    set of seats in hand are gone, so the follow pass never looks at it, and the scan skipped every
    round past its commit deadline: the committed seat was never revealed (a no-show, its bond lost)
    though its salt is in the journal."""
    court.jury(21, commit_in=300, mine=(0,))
    specs[21] = _spec(max_runtime=10)
    assert verifier.consider(rt, 21) == 1
    _drain(rt, sent)
    assert court.seats[(21, 1, 0)][1] == verifier.SEAT_COMMITTED
    rt.state.flushdb()  # the verifier's records, leases and queued tasks
    court.now = court.cases[21]["commitDeadline"] + 1  # the reveal phase
    verifier.consider(rt, 21)
    verifier.follow_seats(rt)
    assert court.seats[(21, 1, 0)][1] == verifier.SEAT_REVEALED, _record(rt, 21, 1, 0)


# ------------------------------------------------------------------------------------ C: declined, then ours on chain


def _stale(rt: SimpleNamespace, job_id: int, round_: int, seat: int) -> None:
    rt.state.hset(rt.xkeys.seat(job_id, round_, seat), "updated", f"{time.time() - verifier.RECOVER_AFTER - 60:.3f}")


def test_a_take_mined_after_its_seat_was_declined_is_adopted_and_run_at_once(rt, court, specs, sent, runs) -> None:
    """Review (stop 40): a take still in the node's pool when the chain worker died was declined
    after the restart (``taking``, and the latest state does not show the seat ours; a re-take's gas
    estimate on the pending state reverts BadSeat), and a declined seat was never adopted: once the
    take was mined the seat was ours on chain, nothing ran, and its bond was lost as a no-show.
    Both ways of declining it (the follow pass; a re-take that reverts) are undone by the chain's
    word: the seat is adopted on the next scan and its re-run queued at once."""
    specs[11] = specs[12] = _spec(max_runtime=10)
    court.jury(11, commit_in=300, mine=(0,))
    verifier.set_seat(rt, 11, 1, 0, "taking")  # the take in the pool when the worker died
    _stale(rt, 11, 1, 0)
    assert verifier.follow_seats(rt) == 0
    assert _record(rt, 11, 1, 0)["state"] == "declined" and not _record(rt, 11, 1, 0)["final"]
    court.jury(12, commit_in=300, mine=(0,))
    court.refuse["take_seat"] = TxReverted("take_seat", "VerificationCourt.BadSeat(jobId=12, seat=0)")  # the estimate on pending
    assert verifier.consider(rt, 12) == 0
    assert _record(rt, 12, 1, 0)["state"] == "declined" and court.sent == []
    for job_id in (11, 12):
        court.seats[(job_id, 1, 0)] = [ME, verifier.SEAT_TAKEN, BOND]  # the pending take mined
        court.cases[job_id]["taken"] = 1
        assert verifier.consider(rt, job_id) == 0
        rec = _record(rt, job_id, 1, 0)
        assert rec["state"] == "seated" and "adopted" in rec["reason"], rec
        assert sent[-1] == ("depin.audit_run", job_id, {"round": 1, "seat": 0})
    _drain(rt, sent)
    assert len(runs) == 2 and all(court.seats[(j, 1, 0)][1] == verifier.SEAT_COMMITTED for j in (11, 12))
    assert all(_record(rt, j, 1, 0)["state"] == "committed" for j in (11, 12))


def test_a_take_whose_receipt_wait_timed_out_is_run_once_it_is_mined(rt, court, specs, sent, runs) -> None:
    """A fee spike: the take is not mined within the transaction timeout (TxTimeout, it may still
    be): the record stays ``taking``, the pass goes on; mined later, the seat is adopted and run."""
    specs[14] = _spec(max_runtime=10)
    court.jury(14, commit_in=300, mine=(0,))
    court.refuse["take_seat"] = TxTimeout("takeSeat", 7, ["0x" + "ab" * 32], 120)
    assert verifier.consider(rt, 14) == 0
    rec = _record(rt, 14, 1, 0)
    assert rec["state"] == "taking" and "may still be" in rec["reason"], rec
    court.seats[(14, 1, 0)] = [ME, verifier.SEAT_TAKEN, BOND]
    court.cases[14]["taken"] = 1
    assert verifier.consider(rt, 14) == 0 and _record(rt, 14, 1, 0)["state"] == "seated"
    _drain(rt, sent)
    assert len(runs) == 1 and court.seats[(14, 1, 0)][1] == verifier.SEAT_COMMITTED


def test_a_seat_declined_after_a_reorg_is_committed_from_its_journal_once_ours_again(rt, court, specs, sent, runs) -> None:
    """A reorg puts our take back into the pool between the re-run and the commit: the commit task
    declines (the seat is not ours); mined again, the seat is adopted and committed from its journal
    entry: no second run, the first salt."""
    specs[15] = _spec(max_runtime=10)
    court.jury(15, commit_in=300, mine=(0,))
    assert verifier.consider(rt, 15) == 1
    assert sent.pop(0) == ("depin.audit_run", 15, {"round": 1, "seat": 0})
    verifier.run_audit(rt, 15, 1, 0)
    entry = verifier.journal(rt).load(15, 1, 0)
    assert entry is not None and _record(rt, 15, 1, 0)["state"] == "computed"
    held = court.seats.pop((15, 1, 0))  # the reorg
    _drain(rt, sent)
    assert _record(rt, 15, 1, 0)["state"] == "declined" and not _record(rt, 15, 1, 0)["final"]
    court.seats[(15, 1, 0)] = held  # mined again
    assert verifier.consider(rt, 15) == 0
    assert _record(rt, 15, 1, 0)["state"] == "computed" and sent == [("depin.audit_commit", 15, {"round": 1, "seat": 0})]
    _drain(rt, sent)
    assert len(runs) == 1 and court.seats[(15, 1, 0)][1] == verifier.SEAT_COMMITTED
    (commit,) = [c for c in court.sent if c[0] == "commit"]
    assert commit[3] == bytes.fromhex(entry.commitment[2:]) and verifier.journal(rt).load(15, 1, 0) == entry


def test_a_seat_whose_own_run_gave_no_digest_stays_declined(rt, court, specs, sent, runs, monkeypatch) -> None:
    """A decline of our own run (no digest of ours) is final: the seat, still ours on chain, is not
    adopted and run again on every pass."""
    specs[16] = _spec(max_runtime=10)
    court.jury(16, commit_in=300, mine=(0,))

    def broken(client: Any, **kw: Any) -> Outcome:
        runs.append(kw)
        raise RuntimeError("the engine is gone")

    monkeypatch.setattr(verifier, "execute", broken)
    assert verifier.consider(rt, 16) == 1
    _drain(rt, sent)
    rec = _record(rt, 16, 1, 0)
    assert rec["state"] == "declined" and rec["final"] == "1" and rec["reason"].startswith("the run failed"), rec
    assert verifier.consider(rt, 16) == 0 and sent == [] and len(runs) == 1 and _record(rt, 16, 1, 0)["state"] == "declined"


# ------------------------------------------------------------------------------------ B: one delivery check a round


def test_our_seats_of_a_round_check_the_delivery_once_and_commit_the_same_verdict(rt, court, specs, sent, runs, monkeypatch) -> None:
    """Review (stop 40): two seats of one jury checked the provider's delivery side by side (a lease
    per seat, and round_delivery saw only a finished check): a server serving the archive to its
    first request only made one seat commit NOT_DELIVERED and the other the run's digest, and one
    of the two bonds was lost whatever the tally. Now the seat holding the round's delivery lease
    checks while the other waits for its verdict: one check, one vote. The waiting seat's task
    ends while the check runs (review, stop 41: it held a compute process) and is queued again: its
    next task journals the run's digest by the verdict, without a second run."""
    import threading

    specs[17] = _spec(max_runtime=10)
    court.jury(17, commit_in=300, mine=(0, 1))
    assert verifier.consider(rt, 17) == 2
    calls: list[int] = []

    def check(rt_: Any, job_id: int, spec: JobSpec) -> str:
        calls.append(job_id)
        if len(calls) > 1:
            return "delivered (the second request)"
        wait_for(lambda: len(runs) == 2, 30, "the other seat's run to end")  # both seats are at their check
        wait_for(lambda: [k for n, _j, k in sent if "countdown" in k], 30, "the other seat to defer, its task ended")
        return "not delivered: 404 (the first request)"

    monkeypatch.setattr(verifier, "check_provider_delivery", check)
    threads = [threading.Thread(target=verifier.run_audit, args=(rt, 17, 1, s)) for s in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    deferred = [(n, k) for n, _j, k in sent if "countdown" in k]
    assert deferred == [("depin.audit_run", {"round": 1, "seat": deferred[0][1]["seat"], "countdown": verifier.DELIVERY_POLL})], sent
    del sent[:]  # the seats' first runs (queued by consider, run by the threads above)
    sent.append(("depin.audit_run", 17, deferred[0][1]))
    _drain(rt, sent)
    j = verifier.journal(rt)
    entries = [j.load(17, 1, s) for s in (0, 1)]
    assert calls == [17] and len(runs) == 2, (calls, runs)
    assert all(e is not None and e.digest == "0x" + NOT_DELIVERED.hex() and e.kind == "not-delivered" for e in entries), entries
    assert {_record(rt, 17, 1, s)["delivery"] for s in (0, 1)} == {"not delivered: 404 (the first request)"}


def test_a_seat_without_the_rounds_verdict_when_its_commit_is_due_commits_its_digest(rt, court, specs, sent, runs, monkeypatch) -> None:
    """The seat checking the delivery stalls (its lease held, no verdict): a waiting seat stops when
    its commit is due (the commit deadline less the inclusion time) and records ``not checked``
    (our failure is no verdict against the provider): it commits its digest, and a verdict the
    stalled check records later loses to it, so our seats still agree."""
    specs[18] = _spec(max_runtime=1)
    court.jury(18, commit_in=PARAMS["inclusionTime"] + 2, mine=(0,))
    court.seats[(18, 1, 0)] = [ME, verifier.SEAT_TAKEN, BOND]
    verifier.set_seat(rt, 18, 1, 0, "seated")
    stalled = verifier.delivery_lease(rt, 18, 1)
    stalled.ttl = 600
    assert stalled.acquire(renew=False)
    monkeypatch.setattr(verifier, "check_provider_delivery", lambda rt_, job_id, spec: pytest.fail("checked twice"))
    try:
        verifier.run_audit(rt, 18, 1, 0)
        deferred = ("depin.audit_run", 18, {"countdown": verifier.DELIVERY_POLL, "round": 1, "seat": 0})
        assert sent == [deferred] and _record(rt, 18, 1, 0)["state"] == "running", sent  # its task ended, queued again
        verifier.run_audit(rt, 18, 1, 0)  # looked at again before the commit is due: deferred again
        assert sent == [deferred, deferred] and _record(rt, 18, 1, 0)["state"] == "running", sent
        court.now = court.cases[18]["commitDeadline"] - PARAMS["inclusionTime"]  # the commit is due
        verifier.run_audit(rt, 18, 1, 0)
    finally:
        stalled.release()
    assert len(runs) == 1, runs  # the deferred tasks journal the one run's digest
    rec = _record(rt, 18, 1, 0)
    assert rec["state"] == "computed" and rec["delivery"].startswith("not checked"), rec
    entry = verifier.journal(rt).load(18, 1, 0)
    assert entry is not None and entry.digest == "0x" + RUN_DIGEST.hex()
    assert verifier.record_round_delivery(rt, 18, 1, "not delivered: late") == rec["delivery"]


# ------------------------------------------------------------------------------------ D: the image


def test_an_image_missing_here_declines_before_any_bond(rt, court, specs, sent, monkeypatch) -> None:
    from executor.containers import ImageUnavailable

    def missing(client: Any, image: str, **kw: Any) -> str:
        raise ImageUnavailable(f"{image} is not here")

    monkeypatch.setattr(verifier, "check_image", missing)
    court.jury(13, commit_in=300, mine=(0,))
    specs[13] = _spec(max_runtime=10)
    assert verifier.consider(rt, 13) == 0 and court.sent == []
    assert _record(rt, 13, 1, 0)["reason"].startswith("the image is not available here")


# ------------------------------------------------------------------------------------ HeaderRandomness


def test_a_job_drawn_whatever_the_randomness_has_its_anchor_proved_for_the_audit_seat(rt, court, monkeypatch) -> None:
    """Found on the live stack (test_header_randomness_stack.py): with randomness = "header", a job
    whose p_job is 100 % is drawn without its anchor's randomness, so its provider never proves the
    anchor, yet the audit seat (round 0) is drawn from it: drawnFor reverted RandomnessNotReady on
    every pass until the seat deadline passed and the round was lost to a redraw. The verifier
    proves the anchor at once (not after the FALLBACK_AFTER blocks left to a provider), then reads
    the seat; with block hashes nothing is proved."""
    from executor import anchors

    proofs: list[tuple[int, list[int]]] = []
    monkeypatch.setattr(anchors, "prove", lambda rt_, anchor, pending, needed: proofs.append((anchor, needed())) or 1)
    court.block_number = lambda: 1_000  # type: ignore[attr-defined]
    court.cases[21] = {"phase": verifier.PHASE_NONE}
    rt.job = lambda job_id: SimpleNamespace(status=JobStatus.SUBMITTED, provider=OTHER, anchor_block=1_000 - anchors.PROVE_ANCHOR_AFTER)
    assert verifier.consider(rt, 21) == 0  # the seat is someone else's (drawn_for: OTHER)
    assert proofs == []  # block hashes: nothing to prove
    rt.deployment = SimpleNamespace(parameters={"randomness": "header"})
    assert verifier.consider(rt, 21) == 0
    assert proofs == [(1_000 - anchors.PROVE_ANCHOR_AFTER, [21])]
    assert court.sent == []


# ------------------------------------------------------------------------------------ recovery


def test_a_live_rerun_whose_lease_key_vanished_is_never_queued_again(rt, court, sent) -> None:
    """Found by review: the verifier re-queued a seat's re-run on one look at a free lease and a
    stale record, while the provider's recovery needs two looks a lease TTL apart. A Redis stall
    longer than the lease TTL (or a wiped database) takes the key of a live re-run; the second run
    then removed its container and started it over, past the commit deadline (the bond lost).
    Two seats `running`, their records stale, their lease keys gone: seat 0's re-run is alive,
    seat 1's task died. Recovery only marks them at first; seat 0's holder takes its lease back and
    its renewal touches the record (the seat's lease keeps it fresh), so it is never queued again;
    seat 1 is, once a look a lease TTL later finds it unchanged."""
    court.jury(7, commit_in=300, mine=(0, 1))
    stale = f"{time.time() - verifier.RECOVER_AFTER - 60:.3f}"
    for seat in (0, 1):
        verifier.set_seat(rt, 7, 1, seat, "running")
        rt.state.hset(rt.xkeys.seat(7, 1, seat), "updated", stale)
    assert verifier.follow_seats(rt) == 0 and sent == []  # the first look only marks them
    lease = verifier.seat_lease(rt, 7, 1, 0)
    assert lease.touch == rt.xkeys.seat(7, 1, 0)  # a seat's renewals keep its record fresh
    alive = Lease(rt.state, lease.key, ttl=30, touch=lease.touch)  # seat 0's holder (a longer TTL: it never lapses here)
    assert alive.renew() and alive.holder() == alive.token and _record(rt, 7, 1, 0)["updated"] != stale
    wait_for(lambda: verifier.follow_seats(rt) == 0 and sent, 30, "the dead seat's re-run to be queued")
    assert sent == [("depin.audit_run", 7, {"round": 1, "seat": 1})]
    rt.state.delete(lease.key)  # even with its lease gone again, its fresh record keeps seat 0 from recovery
    assert verifier.follow_seats(rt) == 0 and sent == [("depin.audit_run", 7, {"round": 1, "seat": 1})]


# ------------------------------------------------------------------------------------ the canary reserve


def test_an_agreeing_audit_releases_its_canary_reserve_once_after_the_canary_window(rt, court) -> None:
    """Review (stake lockout): our agreeing audit of a job with a long challenge window kept sigma R
    of our stake locked until that deadline. The verifier sends ``releaseReserve`` for its own
    round-0 seat as soon as the canary window is over, once; somebody else's release first (or a
    challenge meanwhile: no longer due) is no error, and a challenged audit sends nothing."""
    for job_id, challenger in ((5, ZERO), (6, ZERO), (7, OTHER)):
        court.cases[job_id] = {"phase": verifier.PHASE_TALLIED, "round": 0, "tally": 1, "challenger": challenger,
                               "canaryEnd": court.now + 20, "outcome": 0, "providerDigest": b"\0" * 32}
        court.seats[(job_id, 0, 0)] = [ME, verifier.SEAT_REVEALED, BOND]
        verifier.set_seat(rt, job_id, 0, 0, "revealed")

    def releases() -> list[int]:
        return [call[1] for call in court.sent if call[0] == "release_reserve"]

    assert verifier.follow_seats(rt) == 0 and releases() == []  # the canary window is still open
    court.now += 21
    court.cases[6]["released"] = True  # somebody released job 6's reserve first
    assert verifier.follow_seats(rt) == 1
    assert sorted(releases()) == [5, 6]  # job 6: tried, NothingDue, not again
    assert _record(rt, 5)["reserve"] == "released" and _record(rt, 5)["reserve_tx"]
    assert _record(rt, 6)["reserve"] == "nothing due" and "reserve_tx" not in _record(rt, 6)
    assert "reserve" not in _record(rt, 7)  # challenged: its jury decides, nothing to release
    assert verifier.follow_seats(rt) == 0 and sorted(releases()) == [5, 6]  # one transaction per job


# ------------------------------------------------------------------------------------ max_audits after a wipe


def test_seats_adopted_after_a_wipe_count_against_max_audits_before_any_new_take(rt, court, specs, sent, runs) -> None:
    """Review (stop 42): ``[verifier] max_audits`` bounds the seats whose re-run is pending or
    running (their runs queue on the compute queue's ``[executor] concurrency`` processes). After
    the verifier's Redis was wiped, every seat the chain shows ours must be adopted (its bond is
    locked: it is served whatever the cap), but no new seat may be taken while they fill the cap.
    The scan took a seat of a job listed before the job whose seats it then adopted: three seats in
    hand with a cap of two. Now a pass adopts first and takes after: the new seat waits
    (``no free slot``) and is taken by a later pass once the adopted seats are committed."""
    rt.config = rt.config.model_copy(update={"verifier": VerifierConfig(max_audits=2, court_stake=0)})
    rt.reader = SimpleNamespace(due_jobs=lambda status, before, limit: [40, 41] if status == "Disputed" else [],
                                disputed_in_other_courts=lambda court, limit: [])
    specs[40] = specs[41] = _spec(max_runtime=10)
    court.jury(40, commit_in=300, mine=(0,))  # a seat drawn for us, empty
    court.jury(41, commit_in=300, mine=(0, 1))  # taken by us before the wipe: two bonds locked
    for seat in (0, 1):
        court.seats[(41, 1, seat)] = [ME, verifier.SEAT_TAKEN, BOND]
    court.cases[41]["taken"] = 2
    assert verifier.scan(rt) == 0
    assert {s: _record(rt, 41, 1, s)["state"] for s in (0, 1)} == {0: "seated", 1: "seated"}  # both served
    assert court.seats_by_us(40) == [] and _record(rt, 40, 1, 0)["reason"].startswith(verifier.NO_SLOT), _record(rt, 40, 1, 0)
    assert verifier.running_count(rt) == 2
    # the adopted seats run and commit: the slot frees and the next pass takes the waiting seat
    for seat in (0, 1):
        sent.append(("depin.audit_run", 41, {"round": 1, "seat": seat}))
    _drain(rt, sent)
    assert all(court.seats[(41, 1, s)][1] == verifier.SEAT_COMMITTED for s in (0, 1))
    assert verifier.scan(rt) == 1 and len(court.seats_by_us(40)) == 1


# ------------------------------------------------------------------------------------ lost records after the tally


def test_a_revealed_audit_whose_record_was_wiped_after_the_tally_still_releases_its_canary_reserve(rt, court) -> None:
    """Review (stop 42): the verifier's Redis wiped once its agreeing audit was tallied (round 0,
    ProviderRight, unchallenged, waiting for the job's challenge deadline): the scan looked at
    Active cases only, so the seat was never followed again and its canary reserve (sigma R less
    the bond) stayed locked until somebody concluded the case at the challenge deadline, the
    lockout ``releaseReserve`` exists to end. Now a Tallied (or Arbiter) case's seats the index
    shows revealed by us, with no record of ours, are adopted ``revealed`` once the chain confirms
    them: the follow pass releases the reserve, advances the case when due and closes the record."""
    import json

    rt.config = rt.config.model_copy(update={"verifier": VerifierConfig(max_audits=2, court_stake=0)})
    index = {50: {"0.0": {"verifier": ME, "state": "Revealed"}}, 51: {"0.0": {"verifier": OTHER, "state": "Revealed"}}}
    rt.reader = SimpleNamespace(due_jobs=lambda status, before, limit: [50, 51] if status == "Disputed" else [],
                                disputed_in_other_courts=lambda court, limit: [], job_fields=lambda job_id: {"seats": json.dumps(index[job_id])})
    for job_id, holder in ((50, ME), (51, OTHER)):
        court.cases[job_id] = {"phase": verifier.PHASE_TALLIED, "round": 0, "tally": 1, "challenger": ZERO, "canaryEnd": court.now - 1,
                               "outcome": 0, "providerDigest": b"\0" * 32}
        court.seats[(job_id, 0, 0)] = [holder, verifier.SEAT_REVEALED, BOND]
    assert verifier.scan(rt) == 0
    assert verifier.follow_seats(rt) == 1
    assert [c[1] for c in court.sent if c[0] == "release_reserve"] == [50]
    rec = _record(rt, 50)
    assert rec["reserve"] == "released" and "adopted" in rec["reason"], rec
    assert not _record(rt, 51)  # somebody else's audit: no record
    verifier.scan(rt)
    assert verifier.follow_seats(rt) == 0 and len([c for c in court.sent if c[0] == "release_reserve"]) == 1  # once


def test_the_verify_pass_follows_the_seats_in_hand_when_the_scan_fails(rt, court, specs, sent, runs, monkeypatch, tmp_path) -> None:
    """Review (stop 55): the verify pass was ``scan(rt) + follow_seats(rt)``, and with the container
    engine down the scan raised (``image_present`` asks the engine before a take: a
    ContainerEngineError, as below against a socket nobody serves) before the follow pass ran, on
    every pass: the committed seats, whose reveal needs no engine, missed their reveal windows and
    lost their bonds. The seats in hand are followed whatever the scan does."""
    import docker

    from executor import containers, tasks
    from executor.containers import ContainerEngineError

    dead = docker.DockerClient(base_url=f"unix://{tmp_path / 'no-engine.sock'}", version="1.41", timeout=5)
    with pytest.raises(ContainerEngineError):  # what verifier.image_present lets through (check_image is stubbed here)
        containers.check_image(dead, "depin/x@" + DIGEST)
    court.jury(41, commit_in=300, mine=(0,))
    specs[41] = _spec(max_runtime=10)
    assert verifier.consider(rt, 41) == 1
    _drain(rt, sent)
    assert court.seats[(41, 1, 0)][1] == verifier.SEAT_COMMITTED
    court.now = court.cases[41]["commitDeadline"] + 1  # the reveal phase

    def engine_down(rt_: Any) -> int:
        raise ContainerEngineError("cannot inspect image: the engine does not answer")

    monkeypatch.setattr(verifier, "scan", engine_down)
    monkeypatch.setattr(tasks, "get_runtime", lambda: rt)
    with pytest.raises(ContainerEngineError):
        tasks.verify.run()
    assert court.seats[(41, 1, 0)][1] == verifier.SEAT_REVEALED, _record(rt, 41, 1, 0)
