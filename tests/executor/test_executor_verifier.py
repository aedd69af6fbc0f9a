"""The verifier role on real services (tests/executor/stack.py): a verifier executor (dev account 3,
``role = "verifier"``) stakes itself in the court at start, watches the draw, takes the audit of a
drawn job, re-runs it in its own container, journals salt and digest before it commits, reveals,
and the case concludes ProviderRight with the provider paid. Then kill -9 of the verifier's chain
worker with its commitment in the pool: after the restart the seat is revealed from the journal and
nothing is sent twice."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from depin.market import JobStatus
from depinctl.devchain import TxFailed

from .stack import PROVIDER, REQUESTER, TOKEN, VERIFIER, Executor, Stack, spec, terms_for, wait_for

PHASE_CONCLUDED = 4
OUTCOME_PROVIDER_RIGHT, OUTCOME_SPLIT = 1, 3
MAX_JOBS = 14  # p_job is about 0.3 at 400 % collateral: 14 jobs all undrawn has odds of about 1 in 150


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("verifier"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER, tokens=100_000)
        s.setup_funded(VERIFIER, tokens=10_000)
        s.provider = s.executor("provider", "provider", PROVIDER, policy={"images": [], "max_memory_mb": 512})
        s.verifier = s.executor("verifier", "verifier", VERIFIER, policy={"images": [], "max_memory_mb": 512, "max_runtime": 60},
                                sections={"verifier": {"max_audits": 4}})  # a jury of 3 can be all ours (the only member)
        m = s.market
        court = m.contracts.verification_court
        # the executor joins the court by itself ([verifier] court_stake, default 1000 tokens)
        wait_for(lambda: m.read(court.get_verifier(s.accounts[VERIFIER]))[0], 120, "the verifier to join the court")
        m.mine(2)  # its stake counts in draws after the activation delay
        yield s
    finally:
        s.close()


def _drawn(stack: Stack, job_id: int) -> bool | None:
    try:
        return stack.market.is_drawn(job_id)
    except TxFailed as exc:
        if "RandomnessNotReady" in exc.reason:
            return None
        raise


def _drawn_job(stack: Stack, command: str) -> int:
    for n in range(MAX_JOBS):
        job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", f"{command}; echo {n} > /out/n"]), terms=terms_for(verify_mode=0))
        stack.wait_status(job_id, (JobStatus.SUBMITTED, JobStatus.DISPUTED, JobStatus.FINALIZED), timeout=120)
        drawn = wait_for(lambda j=job_id: (d := _drawn(stack, j)) is not None and (d,), 30, "the anchor block")[0]
        if drawn:
            return job_id
    pytest.skip(f"none of {MAX_JOBS} re-executable jobs was drawn (odds about 1 in 150)")


def seat(stack: Stack, ex: Executor, job_id: int, round_: int = 0, seat_: int = 0) -> dict[str, str]:
    prefix = f"depin-exec:{stack.deployment.chain_id}:{stack.deployment.addresses['JobMarket'].lower()}:{ex.role}:{ex.address.lower()}"
    return stack.state().hgetall(f"{prefix}:seat:{job_id}:{round_}:{seat_}")


def _court_logs(stack: Stack, event: str, job_id: int) -> list[dict[str, Any]]:
    m = stack.market
    topic = "0x" + m.codec.topics[("VerificationCourt", event)].hex()
    return m.rpc.call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest", "address": m.court,
                                       "topics": [topic, "0x" + job_id.to_bytes(32, "big").hex()]}])


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
