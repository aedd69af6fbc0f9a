"""kill -9 at the worst moments: during the container run, during the submission transaction, and
between submission and finalization. After a restart every job settles exactly once (one
ResultSubmitted, one JobFinalized per job on the chain itself) and the provider is paid exactly."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from depin.market import JobStatus

from .stack import PROVIDER, REQUESTER, Stack, spec, wait_for


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("crash"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER)
        s.provider = s.executor("provider", "provider", PROVIDER)
        s.wallet_before = s.market.token_balance(s.accounts[PROVIDER])
        s.crash_jobs = []
        yield s
    finally:
        s.close()


def _state(stack: Stack, job_id: int) -> str | None:
    return stack.exec_record(stack.provider, job_id).get("state")


def _settled_once(stack: Stack, job_id: int) -> None:
    stack.wait_status(job_id, JobStatus.FINALIZED, timeout=90)
    assert stack.chain_log_count(job_id, "ResultSubmitted") == 1
    assert stack.chain_log_count(job_id, "FailureSubmitted") == 0
    assert stack.chain_log_count(job_id, "JobFinalized") == 1
    stack.crash_jobs.append(job_id)


def test_kill_9_during_the_run(stack: Stack) -> None:
    p = stack.provider
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "sleep 3; echo done > /out/x"], max_runtime=20))
    wait_for(lambda: _state(stack, job_id) == "running", 30, "the run to start")
    time.sleep(0.5)
    p.kill9("worker-compute")
    assert stack.status(job_id) == JobStatus.CLAIMED
    p.start("worker-compute")
    _settled_once(stack, job_id)
    recovered = [e for e in p.log_lines("worker-chain") if e.get("msg") == "job recovered" and e.get("job") == job_id]
    assert recovered and recovered[0]["state"] == "running"


def _pending_from(stack: Stack, address: str) -> list[dict]:
    content = stack.market.rpc.call("txpool_content")
    for key, txs in content.get("pending", {}).items():
        if key.lower() == address.lower():
            return list(txs.values())
    return []


def test_kill_9_during_the_submission_never_sends_twice(stack: Stack) -> None:
    p, m = stack.provider, stack.market
    address = stack.accounts[PROVIDER]
    submit_selector = "0x" + m.codec.function("JobMarket", "submitResult").selector.hex()
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "sleep 1; echo done > /out/x"], max_runtime=20))
    wait_for(lambda: _state(stack, job_id) == "running", 30, "the run to start")
    m.set_automine(False)
    try:
        def submit_pending() -> bool:
            txs = _pending_from(stack, address)
            if any(t["input"].startswith(submit_selector) for t in txs):
                return True
            if txs:  # a beat transaction (withdraw, finalize) goes first: let it through
                m.mine()
            return False

        wait_for(submit_pending, 30, "the submission to be in the pool")
        p.kill9("worker-chain")  # the transaction is sent, its receipt never seen, the record says "outcome"
        assert _state(stack, job_id) == "outcome"
        m.mine()
    finally:
        m.set_automine(True)
    assert stack.status(job_id) == JobStatus.SUBMITTED
    p.start("worker-chain")
    wait_for(lambda: _state(stack, job_id) in ("submitted", "finalized"), 30, "the restarted worker to see the submission")
    found = [e for e in p.log_lines("worker-chain") if e.get("msg") == "submission found on chain; not sending again" and e.get("job") == job_id]
    assert found
    _settled_once(stack, job_id)


def test_kill_9_with_the_submission_still_in_the_pool_waits_for_it(stack: Stack) -> None:
    """The restarted worker finds the pre-crash transaction pending: it waits for it rather than
    sending a second one (one submitResult transaction in all)."""
    p, m = stack.provider, stack.market
    address = stack.accounts[PROVIDER]
    submit_selector = "0x" + m.codec.function("JobMarket", "submitResult").selector.hex()
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "sleep 1; echo done > /out/x"], max_runtime=20))
    wait_for(lambda: _state(stack, job_id) == "running", 30, "the run to start")
    first_block = m.block_number() + 1
    m.set_automine(False)
    try:
        def submit_pending() -> bool:
            txs = _pending_from(stack, address)
            if any(t["input"].startswith(submit_selector) for t in txs):
                return True
            if txs:
                m.mine()
            return False

        wait_for(submit_pending, 30, "the submission to be in the pool")
        p.kill9("worker-chain")
        p.start("worker-chain")
        wait_for(lambda: any(e.get("msg") == "waiting for the pre-crash submission" and e.get("job") == job_id
                             for e in p.log_lines("worker-chain")), 30, "the restarted worker to find the pending transaction")
        m.mine()
    finally:
        m.set_automine(True)
    _settled_once(stack, job_id)
    sent = 0
    for number in range(first_block, m.block_number() + 1):
        block = m.rpc.call("eth_getBlockByNumber", [hex(number), True])
        sent += sum(1 for t in block["transactions"] if t["from"].lower() == address.lower() and t["input"].startswith(submit_selector))
    assert sent == 1


def test_kill_9_between_submission_and_finalization(stack: Stack) -> None:
    p, m = stack.provider, stack.market
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo done > /out/x"]))
    stack.wait_status(job_id, JobStatus.SUBMITTED, timeout=30)
    p.kill9("worker-chain")
    m.advance_time(10)  # the challenge window (4 s) closes while nobody can finalize
    time.sleep(1.5)
    assert stack.status(job_id) == JobStatus.SUBMITTED
    p.start("worker-chain")
    _settled_once(stack, job_id)


def test_a_wiped_executor_database_loses_no_claimed_job(stack: Stack) -> None:
    """The broker and the executor's records vanish (Redis restarted without persistence) while a
    claimed job waits for a compute worker: recovery finds it claimed on chain and finishes it."""
    p = stack.provider
    p.stop("worker-compute")
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo adopted > /out/x"]))
    stack.wait_status(job_id, JobStatus.CLAIMED, timeout=30)
    stack.synced()
    stack.state().flushdb()  # every record, lease, queued task of the executor
    p.start("worker-compute")
    _settled_once(stack, job_id)
    assert any(e.get("msg") == "claimed job adopted from the chain" and e.get("job") == job_id for e in p.log_lines("worker-chain"))


def test_the_provider_is_paid_exactly_once_per_job(stack: Stack) -> None:
    m = stack.market
    address = stack.accounts[PROVIDER]
    assert len(stack.crash_jobs) == 5
    paid = 0
    for job_id in stack.crash_jobs:
        events = stack.events(job_id, "JobFinalized")
        assert len(events) == 1
        paid += int(events[0]["args"]["payout"]) + int(events[0]["args"]["emission"])
    try:
        wait_for(lambda: m.withdrawable(address) == 0 and m.token_balance(address) == stack.wallet_before + paid, 30,
                 "the withdrawal of every payout")
    except TimeoutError:
        raise AssertionError(
            f"wallet {m.token_balance(address)} (before {stack.wallet_before}, +{paid} expected), "
            f"withdrawable {m.withdrawable(address)}, jobs {stack.crash_jobs}"
        ) from None
    assert m.get_provider(address)["locked"] == 0
