"""The verifier's bond guards on real services (tests/executor/stack.py): anvil with the deployed
VerificationCourt, redis-server, the indexer, Podman, a provider executor and a verifier executor
(dev account 3, ``role = "verifier"``, the court's only member: every draw is its).

An honest verifier never locks a bond it must then lose to what the requester controls:

- A (time to run): a requester posts on-chain ``maxRuntime`` 60 with a spec runtime of 3000 s. The
  provider executor refuses such a job, so a colluding provider (dev account 4, driven by the test)
  claims it and submits a commitment. The court's commit window follows the on-chain 60 s: the
  verifier declines the audit seat ("no time to run") before ``startAudit``; no case is opened, no
  seat taken, its court stake untouched.
- D (inputs gone or changed): the test-driven provider fetches the job's http input (served from
  127.0.0.2, which the verifier's ``[policy] input_allow_networks`` lists), then the requester's
  server stops serving it, or serves other bytes, and the commitment is submitted. The verifier
  fetches the input before it takes the seat, and declines: no bond.
- C (a lost record): the verifier takes the audit of a job the provider executor ran, with its
  compute worker down; its workers are stopped and the seat's record, its entry among the seats in
  hand and the queued re-run are deleted from its Redis (what a Redis restart loses of unsaved
  writes after ``startAudit`` was mined). Restarted, the verifier finds the seat held by it on chain,
  adopts it, re-runs, commits and reveals: the case concludes ProviderRight, no no-show.
- C, the reveal phase: the verifier's commit is mined, its Redis wiped (every key of its prefix) and
  the chain's clock held just past the commit deadline: restarted, it adopts the seat committed on
  chain and reveals from its on-disk journal entry.
- E (an input switched after the seat was taken): the verifier checks the input and takes the seat
  with its compute worker down; then the requester's server switches the input. The re-run takes
  the checked bytes from the job's input cache and commits a digest of its own: no decline, no
  no-show, and the server is not asked again.

And a stake the chain refuses (a wallet short of tokens) is one warning: the verify pass goes on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from depin.client import Client
from depin.commitment import commitment, new_salt
from depin.market import JobStatus
from depinctl.devchain import JobTerms
from executor import verifier

from .recording_server import RecordingServer
from .stack import MAX_JOBS, PROVIDER, PROVIDER2, REQUESTER, REQUESTER2, VERIFIER, Stack, never_drawn, spec, terms_for, wait_for
from .stack import court_logs as _court_logs
from .stack import drawn as _drawn
from .stack import exec_prefix as _prefix
from .stack import seat_record as _seat

PHASE_NONE, PHASE_CONCLUDED = 0, 4
OUTCOME_PROVIDER_RIGHT = 1
INPUT = b"the requester's input\n"
INPUT_SHA = hashlib.sha256(INPUT).hexdigest()


@pytest.fixture(scope="module")
def inputs() -> Iterator[RecordingServer]:
    """The requester's input server, on 127.0.0.2 (a public source: the verifier's policy allows it)."""
    with RecordingServer("127.0.0.2") as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("seats"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_provider(PROVIDER2)  # the test-driven (colluding) provider
        s.setup_funded(REQUESTER, tokens=100_000)
        s.setup_funded(VERIFIER, tokens=10_000)
        # the provider's policy allows 30 s runs: it never claims the jobs of A and D (3000 s, 40 s)
        s.provider = s.executor("provider", "provider", PROVIDER, policy={"images": [], "max_memory_mb": 512, "max_runtime": 30})
        # the verifier would run ρ x 3000 s: only the court's commit window stops it taking A's seat
        s.verifier = s.executor(
            "verifier", "verifier", VERIFIER,
            policy={"images": [], "max_memory_mb": 512, "max_runtime": 20_000, "input_allow_networks": ["127.0.0.2/32"]},
            sections={"verifier": {"max_audits": 4, "delivery_wait": 3}},
        )
        s.wait_court_member(VERIFIER)
        yield s
    finally:
        s.close()


# ---------------------------------------------------------------------------------------- helpers


def _wait_drawn(stack: Stack, job_id: int) -> bool:
    return wait_for(lambda: (d := _drawn(stack, job_id)) is not None and (d,), 30, "the anchor block")[0]


def _by_hand_drawn(stack: Stack, make_spec: Callable[[int], bytes], terms: JobTerms, after_run: Callable[[int], None] = lambda n: None) -> int:
    """Posts jobs that the test-driven provider (account 4) claims and "runs" (`after_run(n)`: what
    changes after its run) and submits a commitment for, until one is drawn for audit."""
    m = stack.market
    provider = stack.accounts[PROVIDER2]
    for n in range(MAX_JOBS):
        job_id = stack.post(make_spec(n), terms=terms)
        m.claim_job(provider, job_id)
        after_run(n)
        digest = hashlib.sha256(f"output of {job_id}".encode()).digest()
        m.submit_result(provider, job_id, commitment(provider, job_id, digest, new_salt()), f"http://127.0.0.1:9/r/{job_id}")
        assert stack.status(job_id) == JobStatus.SUBMITTED
        if _wait_drawn(stack, job_id):
            return job_id
    never_drawn("jobs")


def _court_stake(stack: Stack) -> tuple[int, int]:
    """The verifier's (free, locked) court stake."""
    m = stack.market
    info = m.read(m.contracts.verification_court.get_verifier(stack.accounts[VERIFIER]))
    return int(info[2]), int(info[3])


def _declined(stack: Stack, job_id: int) -> dict[str, str]:
    v = stack.verifier
    try:
        return wait_for(lambda: (r := _seat(stack, v, job_id)).get("state") == "declined" and r, 60, f"the verifier to decline job {job_id}'s audit")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; record {_seat(stack, v, job_id)}\n{v.logs()}") from None


def _no_bond_locked(stack: Stack, job_id: int, stake_before: tuple[int, int]) -> None:
    """Nothing of the verifier's on chain: no case opened, no seat taken, its stake as it was."""
    m = stack.market
    assert not _court_logs(stack, "CaseOpened", job_id) and not _court_logs(stack, "SeatTaken", job_id)
    assert int(m.get_case(job_id)["phase"]) == PHASE_NONE
    holder = m.read(m.contracts.verification_court.get_seat(job_id, 0, 0))[0]
    assert int(holder, 16) == 0
    assert _court_stake(stack) == stake_before
    assert stack.status(job_id) not in (JobStatus.DISPUTED, JobStatus.RESOLVED)  # never moved to the court


def _declined_log(stack: Stack, job_id: int) -> str:
    """The reason the verifier's log gives for declining the job's seat (the line follows the record)."""
    found = stack.verifier.wait_log("worker-chain", lambda e: e.get("msg") == "seat declined" and e.get("job") == job_id,
                                    f"job {job_id}'s seat declined")
    assert len(found) == 1, found
    return str(found[0]["reason"])


# ---------------------------------------------------------------------------------------- A


def test_a_spec_runtime_beyond_the_on_chain_window_is_declined_before_any_bond(stack: Stack) -> None:
    """On-chain maxRuntime 60 s, the spec's 3000 s: the commit window startAudit would open (ρ x 60 s
    + setup + inclusion) cannot hold ρ x 3000 s. The verifier declines: no startAudit, no bond."""
    stake_before = _court_stake(stack)
    assert stake_before[0] > 0  # (another test's case may hold a bond: this one compares before and after)
    image = stack.images["busybox"]
    job_id = _by_hand_drawn(stack, lambda n: spec(image, ["sh", "-c", f"echo {n} > /out/n"], max_runtime=3000), terms_for(verify_mode=0, max_runtime=60))
    assert int(stack.market.read(stack.market.contracts.job_market.verification_info(job_id))[8]) == 60  # the on-chain maxRuntime
    rec = _declined(stack, job_id)
    assert rec["reason"].startswith("no time to run: the commit deadline is"), rec
    rho = int(Client.connect(stack.anvil.url, stack.deployment_file).court_params()["rhoPct"])
    assert f"rho x runtime {3000 * rho // 100} s" in rec["reason"] and not rec.get("taken_tx"), rec
    assert _declined_log(stack, job_id).startswith("no time to run")
    _no_bond_locked(stack, job_id, stake_before)


# ---------------------------------------------------------------------------------------- D


def _input_job(stack: Stack, inputs: RecordingServer, change: Callable[[str], None]) -> tuple[int, str]:
    """A drawn job whose input the test-driven provider fetched (served right) before `change(path)`
    was applied to the requester's server; (job id, the input's path)."""
    image = stack.images["busybox"]
    paths: list[str] = []

    def make_spec(n: int) -> bytes:
        path = f"/in/{new_salt().hex()[:12]}-{n}"
        inputs.routes[path] = (200, {}, INPUT)
        paths.append(path)
        return spec(image, ["sh", "-c", "cat /in/data > /out/copy"], max_runtime=40,
                    inputs=[{"path": "data", "uri": f"http://127.0.0.2:{inputs.port}{path}", "sha256": INPUT_SHA}])

    def after_run(n: int) -> None:
        # the provider's run fetched the input as the spec says; then the requester changes it
        assert httpx.get(f"http://127.0.0.2:{inputs.port}{paths[n]}", timeout=10).content == INPUT
        change(paths[n])

    # the provider executor would not take this job (40 s > its policy's 30 s); the window fits the verifier
    job_id = _by_hand_drawn(stack, make_spec, terms_for(verify_mode=0, max_runtime=600), after_run)
    return job_id, paths[-1]


def test_inputs_gone_or_changed_before_the_draw_decline_the_seat_before_any_bond(stack: Stack, inputs: RecordingServer) -> None:
    stake_before = _court_stake(stack)

    def gone(path: str) -> None:
        inputs.routes[path] = (404, {}, b"")

    job_id, path = _input_job(stack, inputs, gone)
    fetched_before = sum(1 for r in inputs.requests if r.path == path)
    rec = _declined(stack, job_id)
    assert rec["reason"].startswith("the inputs cannot be fetched and checked now:") and "input 'data'" in rec["reason"], rec
    assert sum(1 for r in inputs.requests if r.path == path) > fetched_before  # the verifier asked for it
    assert _declined_log(stack, job_id).startswith("the inputs cannot be fetched")
    _no_bond_locked(stack, job_id, stake_before)

    def changed(path: str) -> None:
        inputs.routes[path] = (200, {}, b"switched by the requester\n")

    job_id, path = _input_job(stack, inputs, changed)
    rec = _declined(stack, job_id)
    assert rec["reason"].startswith("the inputs cannot be fetched and checked now:") and "sha256 mismatch" in rec["reason"], rec
    _no_bond_locked(stack, job_id, stake_before)
    # the scratch folders of the checks are gone
    work = stack.verifier.workdir / "state" / "work"
    assert not list(work.glob("precheck-*")), list(work.glob("precheck-*"))


def test_an_input_switched_after_the_seat_was_taken_is_run_from_the_checked_bytes(stack: Stack, inputs: RecordingServer) -> None:
    """The input serves right when the verifier checks it and takes the seat (its compute worker
    down, so the re-run waits); then the requester's server switches it. The re-run takes the checked
    bytes from the job's input cache, never asks the server again, and computes a digest: no
    decline, so no no-show. Without the cache it fetched the switched bytes, failed with a hash
    mismatch, declined, and lost the locked bond."""
    v, r = stack.verifier, stack.state()
    prefix = _prefix(stack, v)
    v.stop("worker-compute")
    try:
        job_id, path = _input_job(stack, inputs, lambda p: None)
        wait_for(lambda: _seat(stack, v, job_id).get("state") == "seated", 60, "the verifier to take the audit seat")
        wait_for(lambda: r.keys(f"{prefix}:broker:compute*"), 30, "the re-run to be queued")
        cache = v.workdir / "state" / "work" / "input-cache" / str(job_id)
        assert (cache / INPUT_SHA).read_bytes() == INPUT
        asked = sum(1 for q in inputs.requests if q.path == path)
        inputs.routes[path] = (200, {}, b"switched after the seat was taken\n")
    finally:
        v.start("worker-compute")
    try:
        rec = wait_for(lambda: (x := _seat(stack, v, job_id)).get("state") in ("computed", "committed", "revealed", "done", "declined") and x,
                       120, "the re-run to end")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; record {_seat(stack, v, job_id)}\n{v.logs()}") from None
    assert rec["state"] != "declined", rec
    # a digest of its own: the result's, or NOT_DELIVERED (this provider serves no archive)
    assert rec["kind"] in ("result", "not-delivered") and rec["digest"], rec
    assert sum(1 for q in inputs.requests if q.path == path) == asked  # the run never asked the switched server
    assert cache.is_dir()  # kept while the job has a seat in our hands (a jury seat may need it too)
    # (the case itself waits out its ~20 min commit window: the test-driven provider never reveals)


# ---------------------------------------------------------------------------------------- C


def _drawn_audit_queued(stack: Stack, label: str) -> tuple[int, list[Any]]:
    """Posts re-executable jobs (a 300 s window: room for the verifier's restarts) until one is drawn
    for audit, then waits for the verifier to take its seat and queue the re-run (its compute worker
    is stopped, so the run waits in the queue). The job and the queue's keys; fails when none of
    MAX_JOBS was drawn."""
    v, r = stack.verifier, stack.state()
    for n in range(MAX_JOBS):
        candidate = stack.post(spec(stack.images["busybox"], ["sh", "-c", f"echo {label} {n} > /out/n"]), terms=terms_for(verify_mode=0, max_runtime=300))
        stack.wait_status(candidate, (JobStatus.SUBMITTED, JobStatus.DISPUTED, JobStatus.FINALIZED), timeout=120)
        if _wait_drawn(stack, candidate):
            break
    else:
        never_drawn()
    wait_for(lambda: _seat(stack, v, candidate).get("state") == "seated", 60, "the verifier to take the audit seat")
    return candidate, wait_for(lambda: r.keys(f"{_prefix(stack, v)}:broker:compute*"), 30, "the re-run to be queued")


def test_a_seat_taken_whose_record_was_lost_is_adopted_run_committed_and_revealed(stack: Stack) -> None:
    """startAudit is mined and the verifier records the seat (its re-run queued, its compute worker
    down); then every verifier component stops and what Redis would lose of unsaved writes goes: the
    seat's record, its entry among the seats in hand and the queued re-run. Restarted, the verifier
    adopts the seat the chain shows it holds: re-run, commit, reveal; ProviderRight, no no-show."""
    m, v, r = stack.market, stack.verifier, stack.state()
    prefix = _prefix(stack, v)
    v.stop("worker-compute")  # the re-run waits in the queue
    try:
        job_id, queued = _drawn_audit_queued(stack, "adopted")
        v.stop("beat", "worker-chain")
    except BaseException:
        v.start()
        raise
    # the seat is the verifier's on chain, its bond locked
    court = m.contracts.verification_court
    (taken,) = _court_logs(stack, "SeatTaken", job_id)
    assert taken["topics"][2][-40:].lower() == v.address[2:].lower()
    assert m.read(court.get_seat(job_id, 0, 0))[0].lower() == v.address.lower()
    assert _court_stake(stack)[1] > 0
    # the deadlines the verifier computes before a case opens (what A's decline rests on) are the
    # ones the real court set when startAudit opened it
    case = m.get_case(job_id)
    reader = SimpleNamespace(client=Client.connect(stack.anvil.url, stack.deployment_file))
    assert verifier.seat_deadlines(reader, job_id, case={"phase": PHASE_NONE}) == (int(case["seatDeadline"]), int(case["commitDeadline"]))  # type: ignore[arg-type]
    assert not (v.workdir / "state" / "journal" / v.instance() / f"seat-{job_id}-0-0.json").exists()  # never run
    # what a Redis restart loses: the seat's record, the seats in hand, the queued re-run
    assert r.delete(f"{prefix}:seat:{job_id}:0:0") == 1
    assert r.zrem(f"{prefix}:seats", f"{job_id}:0:0") == 1
    assert r.delete(*queued) == len(queued)
    assert not _seat(stack, v, job_id) and not r.keys(f"{prefix}:broker:compute*")
    v.start()
    try:
        rec = wait_for(lambda: (x := _seat(stack, v, job_id)).get("state") in ("revealed", "done") and x, 120, "the adopted seat to be revealed")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; record {_seat(stack, v, job_id)}\n{v.logs()}") from None
    adopted = v.wait_log("worker-chain", lambda e: e.get("msg") == "seat held on chain without a record: adopted" and e.get("job") == job_id,
                         "the seat adopted")
    assert len(adopted) == 1, adopted
    assert rec["commit_tx"] and rec["reveal_tx"] and rec["kind"] == "result", rec
    stack.wait_status(job_id, JobStatus.RESOLVED, timeout=120)
    case = m.get_case(job_id)
    assert case["phase"] == PHASE_CONCLUDED and case["outcome"] == OUTCOME_PROVIDER_RIGHT, case
    rec = wait_for(lambda: (x := _seat(stack, v, job_id)).get("state") == "done" and x, 60, "the verifier's record to close")
    assert rec["outcome"] == "ProviderRight" and rec["slashed"] == "0", rec
    assert rec["digest"] == "0x" + bytes(case["providerDigest"]).hex()  # its own re-run's digest
    assert len(_court_logs(stack, "SeatCommitted", job_id)) == 1 and len(_court_logs(stack, "SeatRevealed", job_id)) == 1
    assert not _court_logs(stack, "SeatNoShow", job_id) and not _court_logs(stack, "VerifierSlashed", job_id)


def test_a_stake_the_chain_refuses_is_logged_and_the_pass_goes_on(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """A verifier whose wallet cannot pay its ``court_stake`` (short after a slash, or displaced from
    a full class and staking no more than its smallest member) must still follow its seats: the
    refused join is one warning, and ``scan`` and ``follow_seats`` run on."""
    from executor.runtime import Runtime, load_executor_config

    stack.setup_funded(REQUESTER2, tokens=10)
    ex = stack.executor("short", "verifier", REQUESTER2, start=False, sections={"verifier": {"court_stake": "5000"}})
    rt = Runtime(load_executor_config(ex.config_path))
    with caplog.at_level("WARNING", logger="executor.verifier"):
        assert verifier.ensure_stake(rt) is None
        assert verifier.scan(rt) == 0
        assert verifier.follow_seats(rt) == 0
    refused = [r for r in caplog.records if r.getMessage() == "court stake not added"]
    assert refused and {r.error for r in refused} == {"ERC20InsufficientBalance"}  # type: ignore[attr-defined]
    m = stack.market
    assert not m.read(m.contracts.verification_court.get_verifier(stack.accounts[REQUESTER2]))[0]


# ---------------------------------------------------------------------------------------- C, the reveal phase


def test_a_committed_seat_whose_records_were_wiped_after_the_commit_deadline_is_revealed_from_its_journal(stack: Stack) -> None:
    """Review (stop 41, proven here on the real stack at stop 42): the verifier's commit is mined,
    then its Redis is wiped (every key of its prefix: the records, the seats in hand, the leases, the
    broker's queues) and the chain's clock passes the commit deadline. Restarted, the verifier finds
    the seat committed by it on chain, adopts it and reveals the digest and salt of its on-disk
    journal entry: no no-show.

    Barriers only: a round-0 seat may reveal as soon as it is committed, so no verify pass runs
    between the commit and the wipe (the beat is stopped and the verify tasks it queued are removed
    before the chain worker sends the commit); the chain's clock is held still just past the commit
    deadline (``anvil_setBlockTimestampInterval`` 0) until the reveal is on chain, so the restart
    does not race the 10 s reveal window."""
    m, v, r = stack.market, stack.verifier, stack.state()
    prefix = _prefix(stack, v)
    court = m.contracts.verification_court
    v.stop("worker-compute")  # the re-run waits in the queue
    frozen = False
    try:
        job_id, _queued = _drawn_audit_queued(stack, "reveal")
        v.stop("beat", "worker-chain")  # no verify pass from here to the wipe
        stale = r.keys(f"{prefix}:broker:chain*") + r.keys(f"{prefix}:broker:unacked*")
        if stale:
            r.delete(*stale)  # the verify passes the beat queued before it stopped
        v.start("worker-compute")
        entry_path = v.workdir / "state" / "journal" / v.instance() / f"seat-{job_id}-0-0.json"
        wait_for(lambda: _seat(stack, v, job_id).get("state") == "computed", 120, "the re-run to journal its digest")
        assert entry_path.exists()
        v.start("worker-chain")  # the queued depin.audit_commit only (no beat)
        wait_for(lambda: _seat(stack, v, job_id).get("state") == "committed", 60, "the commit to be mined")
        v.stop("worker-chain", "worker-compute")
        holder, state, *_ = m.read(court.get_seat(job_id, 0, 0))
        assert holder.lower() == v.address.lower() and int(state) == verifier.SEAT_COMMITTED
        assert not _court_logs(stack, "SeatRevealed", job_id)
        # the wipe: every key of the verifier's (its Redis restarted without its data)
        wiped = list(r.scan_iter(match=f"{prefix}:*", count=1000))
        assert r.delete(*wiped) == len(wiped) and not _seat(stack, v, job_id)
        # the reveal phase, held still: past the commit deadline, well inside the reveal window
        case = m.get_case(job_id)
        m.rpc.call("anvil_setBlockTimestampInterval", [0])
        frozen = True
        m.rpc.call("evm_setNextBlockTimestamp", [hex(int(case["commitDeadline"]) + 1)])
        m.rpc.call("evm_mine")
        now = m.timestamp()
        assert int(case["commitDeadline"]) < now <= int(case["commitDeadline"]) + 2 < int(case["revealDeadline"]), (now, case)
        v.start()
        try:
            wait_for(lambda: _court_logs(stack, "SeatRevealed", job_id), 120, "the adopted seat to be revealed")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; record {_seat(stack, v, job_id)}\n{v.logs()}") from None
        assert int(m.read(court.get_seat(job_id, 0, 0))[1]) in (verifier.SEAT_REVEALED, verifier.SEAT_SETTLED)
    finally:
        if frozen:
            m.rpc.call("anvil_removeBlockTimestampInterval", [])
        v.start()
    entry = verifier.AuditJournal(entry_path.parent).load(job_id, 0, 0)
    assert entry is not None
    (revealed,) = _court_logs(stack, "SeatRevealed", job_id)
    assert entry.digest[2:] in revealed["data"], (entry, revealed)  # the journal's digest
    adopted = v.wait_log("worker-chain", lambda e: e.get("msg") == "seat committed on chain: adopted" and e.get("job") == job_id,
                         "the committed seat adopted")
    assert len(adopted) == 1, adopted
    # the record says revealed once the reveal's receipt is seen, after the SeatRevealed waited for (verifier.follow_seat)
    wait_for(lambda: _seat(stack, v, job_id).get("state") in ("revealed", "done"), 30, "the seat's record to say revealed")
    assert len(_court_logs(stack, "SeatCommitted", job_id)) == 1 and not _court_logs(stack, "SeatNoShow", job_id)
