"""The verifier role on real services (tests/executor/stack.py): a verifier executor (dev account 3,
``role = "verifier"``) stakes itself in the court at start, watches the draw, takes the audit of a
drawn job, re-runs it in its own container, journals salt and digest before it commits, reveals,
and the case concludes ProviderRight with the provider paid. Then kill -9 of the verifier's chain
worker with its commitment in the pool: after the restart the seat is revealed from the journal and
nothing is sent twice. Delivery is enforced: a provider that withholds its archive (its result
server down) and is challenged by the requester is outvoted by jurors committing NOT_DELIVERED and
slashed; a requester that challenges a delivered result loses its bond to the jury."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from depin.commitment import NOT_DELIVERED, failure_digest
from depin.market import FailureCode, JobStatus
from executor.containers import LABEL_EXECUTOR, LABEL_JOB

from .stack import MAX_JOBS, PROVIDER, REQUESTER, REQUESTER2, TOKEN, VERIFIER, Stack, never_drawn, release_gate, spec, terms_for, wait_for
from .stack import court_logs as _court_logs
from .stack import drawn as _drawn
from .stack import seat_record as seat

PHASE_CONCLUDED = 4
OUTCOME_PROVIDER_RIGHT, OUTCOME_PROVIDER_WRONG, OUTCOME_SPLIT = 1, 2, 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("verifier"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER, REQUESTER2, tokens=100_000)
        s.setup_funded(VERIFIER, tokens=10_000)
        s.provider = s.executor("provider", "provider", PROVIDER, policy={"images": [], "max_memory_mb": 512})
        s.verifier = s.executor("verifier", "verifier", VERIFIER, policy={"images": [], "max_memory_mb": 512, "max_runtime": 60},
                                sections={"verifier": {"max_audits": 4, "delivery_wait": 3}})  # a jury of 3 can be all ours (the only member)
        s.wait_court_member(VERIFIER)  # ([verifier] court_stake, default 1000 tokens)
        yield s
    finally:
        s.close()


def _drawn_job(stack: Stack, command: str, max_runtime: int = 10) -> int:
    for n in range(MAX_JOBS):
        job_spec = spec(stack.images["busybox"], ["sh", "-c", f"{command}; echo {n} > /out/n"], max_runtime=max_runtime)
        job_id = stack.post(job_spec, terms=terms_for(verify_mode=0))
        stack.wait_status(job_id, (JobStatus.SUBMITTED, JobStatus.DISPUTED, JobStatus.FINALIZED), timeout=120)
        drawn = wait_for(lambda j=job_id: (d := _drawn(stack, j)) is not None and (d,), 30, "the anchor block")[0]
        if drawn:
            return job_id
    never_drawn()


def test_a_drawn_job_is_audited_by_the_verifier_executor(stack: Stack) -> None:
    """The drawn verifier executor takes the audit, re-runs, commits, reveals; ProviderRight; the
    provider is paid; the verifier's record says so."""
    m, v = stack.market, stack.verifier
    job_id = _drawn_job(stack, "echo audited")
    stack.wait_status(job_id, JobStatus.RESOLVED, timeout=120)
    case = m.get_case(job_id)
    assert case["phase"] == PHASE_CONCLUDED and case["outcome"] == OUTCOME_PROVIDER_RIGHT
    rec = wait_for(lambda: (r := seat(stack, v, job_id)).get("state") == "done" and r, 30, "the verifier's record to close")
    assert rec["outcome"] == "ProviderRight" and rec["slashed"] == "0" and rec["commit_tx"] and rec["reveal_tx"]
    # its digest is the provider's, computed by its own run; the salt it committed is on its disk
    assert rec["digest"] == "0x" + bytes(case["providerDigest"]).hex()
    entry = json.loads((v.workdir / "state" / "journal" / v.instance() / f"seat-{job_id}-0-0.json").read_text())
    assert entry["digest"] == rec["digest"] and entry["commitment"] == rec["commitment"]
    assert len(_court_logs(stack, "SeatCommitted", job_id)) == 1
    assert len(_court_logs(stack, "SeatRevealed", job_id)) == 1
    (taken,) = _court_logs(stack, "SeatTaken", job_id)
    assert taken["topics"][2][-40:].lower() == stack.accounts[VERIFIER][2:].lower()
    # `depin executor status` shows the seat and how it ended
    out = subprocess.run([str(Path(sys.executable).with_name("depin")), "executor", "status", "--config", str(v.config_path), "--json"],
                         capture_output=True, text=True, timeout=60, env=v.env, check=True)
    shown = [r for r in json.loads(out.stdout)["seats"] if r["job"] == str(job_id)]
    assert shown and shown[0]["state"] == "done" and shown[0]["outcome"] == "ProviderRight"


def test_a_job_that_outlasts_its_runtime_confirms_the_providers_time_limit(stack: Stack) -> None:
    """A job that runs between 1 and ρ (2) times its runtime: the provider is killed at the limit and
    submits TIME_LIMIT; the auditor, running with ρ x the limit, finishes it, yet commits TIME_LIMIT
    (the provider's claim and a run past the limit it was held to): ProviderRight, nobody slashed.
    Before (review, stop 36) the auditor committed its result and the provider lost its collateral."""
    m, v = stack.market, stack.verifier
    job_id = _drawn_job(stack, "sleep 4", max_runtime=3)
    assert stack.job(job_id)["failureCode"] == FailureCode.TIME_LIMIT
    stack.wait_status(job_id, JobStatus.RESOLVED, timeout=180)
    case = m.get_case(job_id)
    assert case["phase"] == PHASE_CONCLUDED and case["outcome"] == OUTCOME_PROVIDER_RIGHT
    rec = wait_for(lambda: (r := seat(stack, v, job_id)).get("state") == "done" and r, 30, "the verifier's record to close")
    assert rec["kind"] == "failure" and rec["digest"] == "0x" + failure_digest(int(FailureCode.TIME_LIMIT)).hex()
    assert rec["slashed"] == "0"
    assert v.wait_log(None, lambda e: "agreeing with its TIME_LIMIT" in str(e.get("msg")), "agreeing with the TIME_LIMIT")


def test_kill_9_between_commit_and_reveal_loses_no_salt_and_sends_nothing_twice(stack: Stack) -> None:
    """The verifier's chain worker (and beat) die with its commitment in the pool; the commitment is
    then mined. After the restart the seat is revealed from the journal: one commit, one reveal."""
    m, v = stack.market, stack.verifier
    job_id = _drawn_job(stack, "sleep 2")  # a run of 2 s: time to hold the chain once the seat is taken
    wait_for(lambda: seat(stack, v, job_id).get("state") in ("seated", "running"), 60, "the verifier to take the seat")
    address = v.address
    selector = "0x" + m.codec.function("VerificationCourt", "commit").selector.hex() + job_id.to_bytes(32, "big").hex()
    m.rpc.call("evm_setIntervalMining", [0])
    m.set_automine(False)
    try:

        def commit_pending() -> bool:
            content = m.rpc.call("txpool_content")
            txs = [t for k, by in content.get("pending", {}).items() if k.lower() == address.lower() for t in by.values()]
            if any(t["input"].startswith(selector) for t in txs):
                return True
            if txs:
                m.mine()  # startAudit, a stake top-up: everything before the commitment
            return False

        wait_for(commit_pending, 90, "the verifier's commitment to be in the pool")
        v.kill9("worker-chain")
        v.kill9("beat")
        assert seat(stack, v, job_id)["state"] == "computed"  # the receipt was never seen
        m.mine()
    finally:
        m.set_automine(True)
        m.rpc.call("evm_setIntervalMining", [1])
    assert len(_court_logs(stack, "SeatCommitted", job_id)) == 1
    v.start("worker-chain", "beat")
    wait_for(lambda: seat(stack, v, job_id).get("state") in ("revealed", "done"), 60, "the reveal after the restart")
    stack.wait_status(job_id, JobStatus.RESOLVED, timeout=120)
    assert m.get_case(job_id)["outcome"] == OUTCOME_PROVIDER_RIGHT
    assert len(_court_logs(stack, "SeatCommitted", job_id)) == 1
    assert len(_court_logs(stack, "SeatRevealed", job_id)) == 1


GATED = ["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo done > /out/x"]  # runs until the test releases it


def _running(stack: Stack, ex: Any, job_id: int) -> Any:
    """The job's container of executor `ex` while it runs, else None."""
    found = stack.engine.containers.list(
        filters={"label": [f"{LABEL_EXECUTOR}={ex.instance()}", f"{LABEL_JOB}={job_id}"], "status": "running"}, ignore_removed=True
    )
    return found[0] if found else None


def test_a_wiped_database_never_restarts_or_removes_a_live_audit_run(stack: Stack) -> None:
    """Found by review: the verifier's recovery had no second look. With its Redis wiped (FLUSHDB,
    a restart without persistence) while a re-run ran, the seat's record, the seats in hand and
    the lease key were gone: the seat held on chain was adopted and its re-run queued at once,
    before the live run took its lease back (the second run removed the live container), and the
    reaper removed the container on one look. Now the adopted seat waits for two looks a lease TTL
    apart, which find the live run's lease taken back and its record kept fresh, and the reaper
    leaves a container whose run's lease is held: the first run commits, the case concludes
    ProviderRight."""
    import time

    from .stack import EXECUTOR_ENV, exec_prefix

    m, p, v = stack.market, stack.provider, stack.verifier
    for _ in range(MAX_JOBS):  # each job's provider run is released by the test; the first drawn one is audited
        job_id = stack.post(spec(stack.images["busybox"], GATED, max_runtime=20), terms=terms_for(verify_mode=0))
        release_gate(wait_for(lambda j=job_id: _running(stack, p, j), 120, "the provider's run"))
        stack.wait_status(job_id, (JobStatus.SUBMITTED, JobStatus.DISPUTED), timeout=120)
        if wait_for(lambda j=job_id: (d := _drawn(stack, j)) is not None and (d,), 30, "the anchor block")[0]:
            break
    else:
        never_drawn()
    first = wait_for(lambda: _running(stack, v, job_id), 120, "the verifier's re-run")
    state = stack.state()
    lease_key = f"{exec_prefix(stack, v)}:lease:{job_id}:0:0"
    token = wait_for(lambda: state.get(lease_key), 30, "the re-run's lease")
    state.flushdb()  # records, seats in hand, leases, queued tasks (the provider's too): the re-run goes on
    wait_for(lambda: seat(stack, v, job_id).get("state"), 60, "the seat to be adopted from the chain")
    assert wait_for(lambda: state.get(lease_key), 60, "the lease to be held again") == token, "another run took the seat over"
    back = time.time()
    ttl = float(EXECUTOR_ENV["DEPIN_LEASE_TTL"])

    def passes_after(after: float) -> int:  # verify passes (recovery of seats) and recover passes (the reaper) ended after `after`
        ends = [(e["msg"].split("[", 1)[0], e["ts"]) for e in v.log_lines("worker-chain")
                if str(e.get("msg", "")).startswith(("Task depin.verify[", "Task depin.recover[")) and "succeeded" in e["msg"]]
        stamp = lambda ts: datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
        return min(sum(1 for name, ts in ends if name == task and stamp(ts) > after) for task in ("Task depin.verify", "Task depin.recover"))

    wait_for(lambda: passes_after(back + ttl) >= 2, 120, "verify and recover passes a lease TTL after the flush")
    running = _running(stack, v, job_id)
    assert running is not None and running.id == first.id, "the live re-run's container was removed"
    release_gate(first)
    stack.wait_status(job_id, JobStatus.RESOLVED, timeout=180)
    assert m.get_case(job_id)["outcome"] == OUTCOME_PROVIDER_RIGHT
    assert len(_court_logs(stack, "SeatCommitted", job_id)) == 1
    assert "queued again" not in seat(stack, v, job_id).get("reason", "")


def test_a_nondeterministic_job_splits_and_no_honest_party_is_slashed(stack: Stack) -> None:
    """The provider's job writes random bytes to /out: the audit disagrees, the jury of three finds
    three different digests (no majority, nobody reproduced the provider's): Split. The provider is
    paid and keeps its stake; no verifier is slashed or counted a no-show; the jurors are paid."""
    m, v = stack.market, stack.verifier
    provider = stack.accounts[PROVIDER]
    stake_before = m.get_provider(provider)["staked"]
    job_id = _drawn_job(stack, "head -c 32 /dev/urandom > /out/random")
    stack.wait_status(job_id, JobStatus.RESOLVED, timeout=240)
    case = m.get_case(job_id)
    assert case["phase"] == PHASE_CONCLUDED and case["outcome"] == OUTCOME_SPLIT, case
    (settled,) = stack.events(job_id, "JobSettled")
    assert int(settled["args"]["providerPayout"]) >= TOKEN  # the provider is paid the reward
    assert m.get_provider(provider)["staked"] == stake_before  # and not slashed
    assert not _court_logs(stack, "VerifierSlashed", job_id) and not _court_logs(stack, "SeatNoShow", job_id)
    # the verifier records a seat's end on its next pass after the chain shows the conclusion
    def jurors_done() -> bool:
        return all(seat(stack, v, job_id, 1, s).get("state") == "done" for s in range(3))

    wait_for(jurors_done, 60, "the verifier to record its three jury seats as done")
    jurors = [seat(stack, v, job_id, 1, s) for s in range(3)]
    assert all(r.get("outcome") == "Split" for r in jurors), jurors
    assert len({r["digest"] for r in jurors}) == 3  # three honest runs, three digests
    # the jurors' money: each seat settled with its pay (their exact amounts are the contract's)
    settled_seats = _court_logs(stack, "SeatSettled", job_id)
    by_seat = {(int(e["data"][2:66], 16), int(e["data"][66:130], 16)): int(e["data"][130:194], 16) for e in settled_seats}
    assert all(by_seat.get((1, s), 0) > 0 for s in range(3)), by_seat  # (round 1, seat s) -> paid
    # the honest auditor (its re-run disagreed, as every run does) keeps its bond and is paid A: the
    # requester's audit escrow E = A + 3w pays the jury (a nondeterministic Split is the requester's)
    forfeited = sum(int(e["data"][258:322], 16) for e in settled_seats if int(e["data"][2:66], 16) == 0)
    assert forfeited == 0 and by_seat.get((0, 0), 0) > 0, by_seat


def _words(entry: dict[str, Any]) -> list[int]:
    data = entry["data"][2:]
    return [int(data[i : i + 64], 16) for i in range(0, len(data), 64)]


def _challenged_job(stack: Stack, command: str) -> tuple[int, int, int]:
    """A re-executable job of REQUESTER2 (no other job of its moves its balance), challenged by it
    as soon as it is submitted; (job id, its balance before the challenge, the bond)."""
    m = stack.market
    requester = stack.accounts[REQUESTER2]
    m.approve(requester, m.court)
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", command]), requester=REQUESTER2, terms=terms_for(verify_mode=0))
    stack.wait_status(job_id, (JobStatus.SUBMITTED, JobStatus.DISPUTED), timeout=120)
    wait_for(lambda: _drawn(stack, job_id) is not None, 30, "the anchor block")  # a challenge reads the draw
    before = m.token_balance(requester)
    m.challenge(requester, job_id)
    (challenged,) = _court_logs(stack, "Challenged", job_id)
    return job_id, before, _words(challenged)[0]


def _settled(stack: Stack, job_id: int) -> tuple[dict[str, Any], list[int], int]:
    """The concluded case, its CaseConcluded words (outcome, toCourt, paidSeats, bounty, refunded,
    burned: the court's token transfers) and what the market credited the requester (its
    withdrawable balance, not a transfer)."""
    stack.wait_status(job_id, JobStatus.RESOLVED, timeout=300)
    (concluded,) = _court_logs(stack, "CaseConcluded", job_id)
    (settled,) = stack.events(job_id, "JobSettled")
    return stack.market.get_case(job_id), _words(concluded), int(settled["args"]["requesterRefund"])


def _diagnosis(stack: Stack, job_id: int, case: dict[str, Any]) -> str:
    v = stack.verifier
    lines = [v.log(c) for c in ("worker-chain", "worker-compute", "beat")]
    mine = "\n".join(line for text in lines for line in text.splitlines() if f'"job": {job_id}' in line or "Traceback" in line or "rror" in line)
    return (f"{case}\nseats: {[seat(stack, v, job_id, r, s) for r in (0, 1) for s in range(3)]}\n"
            f"taken {len(_court_logs(stack, 'SeatTaken', job_id))}, no-shows {len(_court_logs(stack, 'SeatNoShow', job_id))}, "
            f"drawn {len(_court_logs(stack, 'SeatsDrawn', job_id))}\n{mine[-6000:]}")


def _revealed_digests(stack: Stack, job_id: int) -> dict[tuple[int, int], bytes]:
    return {(w[0], w[1]): w[2].to_bytes(32, "big") for w in map(_words, _court_logs(stack, "SeatRevealed", job_id))}


def test_a_provider_that_withholds_its_archive_is_outvoted_and_slashed(stack: Stack) -> None:
    """The provider commits to the right digest but serves nothing (its result server is down); the
    requester challenges. Every seat re-runs the job, gets the provider's digest, finds no archive
    and commits NOT_DELIVERED: ProviderWrong, the provider's collateral slashed, the requester's bond
    returned with the bounty."""
    m, p, v = stack.market, stack.provider, stack.verifier
    provider = stack.accounts[PROVIDER]
    before = m.get_provider(provider)
    p.stop("results")
    try:
        job_id, balance, bond = _challenged_job(stack, "echo withheld > /out/r")
        case, (outcome, _to_court, paid, bounty, refunded, _burned), market_refund = _settled(stack, job_id)
    finally:
        p.start("results")
    assert case["outcome"] == outcome == OUTCOME_PROVIDER_WRONG, _diagnosis(stack, job_id, case)
    # every revealed seat (the audit when the job was drawn, the jury of three) says NOT_DELIVERED
    digests = _revealed_digests(stack, job_id)
    assert {r for r, _s in digests} >= {1} and set(digests.values()) == {NOT_DELIVERED}, digests
    assert bytes(case["providerDigest"]) != NOT_DELIVERED  # the provider revealed its (right) digest
    # the provider is slashed its collateral (k x R) and the jury is paid from it
    after = m.get_provider(provider)
    collateral = terms_for(verify_mode=0).collateral
    assert after["staked"] == before["staked"] - collateral and after["jobsSlashed"] == before["jobsSlashed"] + 1
    assert paid > 0 and bounty > 0
    # the requester: its bond back and the bounty (and its escrow E) from the court, its reward
    # credited back in the market
    assert refunded >= bond and market_refund >= TOKEN
    assert m.token_balance(stack.accounts[REQUESTER2]) == balance - bond + refunded + bounty
    # the verifier's records say why, and its re-runs computed the provider's digest all the same
    wait_for(lambda: all(seat(stack, v, job_id, 1, s).get("state") == "done" for s in range(3)), 60, "the jury seats' records to close")
    for s in range(3):
        rec = seat(stack, v, job_id, 1, s)
        assert rec["kind"] == "not-delivered" and rec["digest"] == "0x" + NOT_DELIVERED.hex(), rec
        assert rec["delivery"].startswith("not delivered:") and rec["outcome"] == "ProviderWrong", rec
    out = subprocess.run([str(Path(sys.executable).with_name("depin")), "executor", "status", "--config", str(v.config_path)],
                         capture_output=True, text=True, timeout=60, env=v.env, check=True)
    assert f"seat job {job_id} round 1 seat 0: done (ProviderWrong)" in out.stdout and "provider's archive not delivered" in out.stdout


def test_a_false_non_delivery_claim_costs_the_claimant_its_bond(stack: Stack) -> None:
    """The provider served its archive; the requester claims otherwise and challenges. The jurors
    fetch it, find it matches the provider's commitment and commit their re-run digest:
    ProviderRight, and the requester's bond pays the jury."""
    m, v = stack.market, stack.verifier
    provider = stack.accounts[PROVIDER]
    before = m.get_provider(provider)
    job_id, balance, bond = _challenged_job(stack, "echo delivered > /out/r")
    case, (outcome, _to_court, paid, bounty, refunded, _burned), market_refund = _settled(stack, job_id)
    assert case["outcome"] == outcome == OUTCOME_PROVIDER_RIGHT, _diagnosis(stack, job_id, case)
    assert bond == 35 * TOKEN // 10  # challengeBondBps 35,000 of R
    digests = _revealed_digests(stack, job_id)
    assert set(digests.values()) == {bytes(case["providerDigest"])}, digests
    # the bond is lost: the requester gets back what is left of its escrow, nothing of the bond
    assert bounty == 0 and paid >= 3 * 11 * TOKEN // 10  # three coherent jurors paid w = 1.1 R each
    assert m.token_balance(stack.accounts[REQUESTER2]) == balance - bond + refunded
    assert refunded <= case["auditFee"]  # what the court returned is (part of) its escrow E, none of the bond
    assert market_refund < TOKEN  # the reward went to the provider
    after = m.get_provider(provider)
    assert after["staked"] == before["staked"] and after["jobsSlashed"] == before["jobsSlashed"]
    wait_for(lambda: all(seat(stack, v, job_id, 1, s).get("state") == "done" for s in range(3)), 60, "the jury seats' records to close")
    for s in range(3):
        rec = seat(stack, v, job_id, 1, s)
        assert rec["kind"] == "result" and rec["delivery"].startswith("delivered (plaintext,"), rec
