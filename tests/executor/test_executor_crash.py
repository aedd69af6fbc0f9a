"""kill -9 at the worst moments: during the container run, during the submission transaction, and
between submission and finalization. After a restart every job settles exactly once (one
ResultSubmitted, one JobFinalized per job on the chain itself) and the provider is paid exactly.

Every kill point is reached by waiting for the state it interrupts, never by sleeping: a job that
must be killed mid-run waits inside its container for a file the test creates with ``exec``
(:func:`_release`), so the run is provably in progress at the kill; a submission is killed while
its transaction provably sits in the pool (automine off). Each test posts and checks its own jobs:
none depends on another having run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from depin.market import JobStatus
from executor.containers import LABEL_EXECUTOR, LABEL_JOB

from .stack import PROVIDER, REQUESTER, Executor, Stack, release_gate, spec, terms_for, wait_for

# A job that runs until the test releases it: it waits for /tmp/go (its own tmpfs), which only
# the test's `exec` creates.
GATED = ["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo done > /out/x"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("crash"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER)
        s.provider = s.executor("provider", "provider", PROVIDER)
        s.wallet_before = s.market.token_balance(s.accounts[PROVIDER])
        yield s
    finally:
        s.close()


@pytest.fixture(autouse=True)
def _components_back(stack: Stack) -> Iterator[None]:
    """After each test, every component of the provider runs again: a test that failed after it
    killed one must not leave the next test a stack without it (CI at b8597d9: a failure after
    `kill9("worker-chain")` left the next test waiting 360 s for a claim)."""
    yield
    stack.provider.start()


def _state(stack: Stack, job_id: int) -> str | None:
    return stack.exec_record(stack.provider, job_id).get("state")


def _settled_once(stack: Stack, job_id: int) -> None:
    stack.wait_status(job_id, JobStatus.FINALIZED, timeout=120)
    assert stack.chain_log_count(job_id, "ResultSubmitted") == 1
    assert stack.chain_log_count(job_id, "FailureSubmitted") == 0
    assert stack.chain_log_count(job_id, "JobFinalized") == 1


def _running_container(stack: Stack, ex: Executor, job_id: int) -> Any:
    """The job's container of this executor while it runs, else None."""
    found = stack.engine.containers.list(
        filters={"label": [f"{LABEL_EXECUTOR}={ex.instance()}", f"{LABEL_JOB}={job_id}"], "status": "running"}, ignore_removed=True
    )
    return found[0] if found else None


def _log_entries(ex: Executor, component: str, msg: str, job_id: int) -> list[dict[str, Any]]:
    return [e for e in ex.log_lines(component) if e.get("msg") == msg and e.get("job") == job_id]


def _pending_from(stack: Stack, address: str) -> list[dict]:
    content = stack.market.rpc.call("txpool_content")
    for key, txs in content.get("pending", {}).items():
        if key.lower() == address.lower():
            return list(txs.values())
    return []


def _submissions_sent(stack: Stack, job_id: int, first_block: int) -> int:
    """submitResult transactions for `job_id` the provider got mined from `first_block` on (the
    chain's own blocks)."""
    m = stack.market
    address = stack.accounts[PROVIDER]
    selector = "0x" + m.codec.function("JobMarket", "submitResult").selector.hex() + job_id.to_bytes(32, "big").hex()
    sent = 0
    for number in range(first_block, m.block_number() + 1):
        block = m.rpc.call("eth_getBlockByNumber", [hex(number), True])
        sent += sum(1 for t in block["transactions"] if t["from"].lower() == address.lower() and t["input"].startswith(selector))
    return sent


def _hold_submission_in_pool(stack: Stack, job_id: int) -> None:
    """With automine off, mines every other transaction of the provider until its submitResult
    for `job_id` sits in the pool (a beat transaction, withdraw or finalize, may come first)."""
    m = stack.market
    address = stack.accounts[PROVIDER]
    selector = "0x" + m.codec.function("JobMarket", "submitResult").selector.hex()
    argument = job_id.to_bytes(32, "big").hex()

    def submit_pending() -> bool:
        txs = _pending_from(stack, address)
        if any(t["input"].startswith(selector + argument) for t in txs):
            return True
        if txs:
            m.mine()
        return False

    wait_for(submit_pending, 60, "the submission to be in the pool")


def test_kill_9_during_the_run(stack: Stack) -> None:
    """The compute worker dies while the job's container provably runs: recovery re-runs the job
    (a new container) and the job settles once."""
    p = stack.provider
    job_id = stack.post(spec(stack.images["busybox"], GATED, max_runtime=30))
    first = wait_for(lambda: _running_container(stack, p, job_id), 120, "the job's container to run")
    assert _state(stack, job_id) == "running"
    p.kill9("worker-compute")
    assert stack.status(job_id) == JobStatus.CLAIMED
    p.start("worker-compute")
    rerun = wait_for(lambda: (c := _running_container(stack, p, job_id)) is not None and c.id != first.id and c,
                     120, "the recovered run's container")
    release_gate(rerun)
    _settled_once(stack, job_id)
    recovered = _log_entries(p, "worker-chain", "job recovered", job_id)
    assert any(e["state"] == "running" for e in recovered), recovered


def test_kill_9_during_the_submission_never_sends_twice(stack: Stack) -> None:
    """The chain worker dies with the submission in the pool; the transaction is then mined. The
    restarted worker finds the job submitted and sends nothing: one submitResult on chain."""
    p, m = stack.provider, stack.market
    first_block = m.block_number() + 1
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo done > /out/x"], max_runtime=20))
    m.rpc.call("evm_setIntervalMining", [0])  # the stack's anvil also mines every second (--mixed-mining): hold that too
    m.set_automine(False)
    try:
        _hold_submission_in_pool(stack, job_id)
        p.kill9("worker-chain")  # the transaction is sent, its receipt never seen, the record says "outcome"
        assert _state(stack, job_id) == "outcome"
        m.mine()
    finally:
        m.set_automine(True)
    assert stack.status(job_id) == JobStatus.SUBMITTED
    p.start("worker-chain")
    _settled_once(stack, job_id)
    assert _submissions_sent(stack, job_id, first_block) == 1


def test_kill_9_with_the_submission_still_in_the_pool_waits_for_it(stack: Stack) -> None:
    """The restarted worker finds the pre-crash transaction pending: it waits for it rather than
    sending a second one (one submitResult transaction in all)."""
    p, m = stack.provider, stack.market
    first_block = m.block_number() + 1
    # Nothing else for the chain worker to send while mining is held: earlier payouts withdrawn (a
    # withdraw queued behind the held submission would block the one-at-a-time chain worker).
    wait_for(lambda: m.withdrawable(stack.accounts[PROVIDER]) == 0, 60, "earlier payouts to be withdrawn")
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo done > /out/x"], max_runtime=20))
    m.rpc.call("evm_setIntervalMining", [0])  # the stack's anvil also mines every second (--mixed-mining): hold that too
    m.set_automine(False)
    try:
        _hold_submission_in_pool(stack, job_id)
        p.kill9("worker-chain")
        p.start("worker-chain")
        wait_for(lambda: _log_entries(p, "worker-chain", "waiting for the pre-crash submission", job_id), 120,
                 "the restarted worker to find the pending transaction")
        m.mine()
    finally:
        m.set_automine(True)
    _settled_once(stack, job_id)
    assert _submissions_sent(stack, job_id, first_block) == 1


def test_kill_9_between_submission_and_finalization(stack: Stack) -> None:
    """The chain worker dies after the submission; the challenge window closes while nobody can
    finalize; the restarted worker finalizes once."""
    p, m = stack.provider, stack.market
    terms = terms_for(challenge_window=600)
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo done > /out/x"]), terms=terms)
    stack.wait_status(job_id, JobStatus.SUBMITTED, timeout=120)
    p.kill9("worker-chain")
    m.advance_time(601)  # the challenge window closes while no worker can finalize
    assert stack.status(job_id) == JobStatus.SUBMITTED
    p.start("worker-chain")
    _settled_once(stack, job_id)


def test_a_wiped_executor_database_loses_no_claimed_job(stack: Stack) -> None:
    """The broker and the executor's records vanish (Redis restarted without persistence) while a
    claimed job waits for a compute worker: recovery finds it claimed on chain and finishes it."""
    p = stack.provider
    p.stop("worker-compute")
    try:
        job_id = _claimed_and_queued(stack, "adopted")
        stack.state().flushdb()  # every record, lease, queued task of the executor
    finally:
        p.start("worker-compute")
    _settled_once(stack, job_id)
    assert _log_entries(p, "worker-chain", "claimed job adopted from the chain", job_id)


def test_a_wiped_database_keeps_a_journaled_outcome_and_a_submitted_job(stack: Stack) -> None:
    """Found by review, stop 56: the executor's Redis wiped after a job's outcome was journaled but
    before its submission (the chain worker down). Recovery adopts the claim from the chain and
    queued the run again, which ran the whole job a second time: a long job then missed its submit
    deadline and the provider's collateral went. Now the run finds the journaled outcome and submits
    it (one run in all, the journal's commitment on chain). Wiped again once the job is Submitted,
    the job is adopted as submitted (into the set whose anchors are recorded and which is
    finalized), where before no record came back."""
    from executor.results import SubmissionJournal

    from .stack import exec_prefix

    p, m = stack.provider, stack.market
    job_id = stack.post(spec(stack.images["busybox"], GATED, max_runtime=30), terms=terms_for(challenge_window=600))
    container = wait_for(lambda: _running_container(stack, p, job_id), 120, "the job's container to run")
    p.stop("worker-chain")  # the submission waits in the queue
    try:
        release_gate(container)
        wait_for(lambda: _state(stack, job_id) == "outcome", 120, "the outcome to be journaled and recorded")
        stack.synced()
        stack.state().flushdb()  # the record and the queued submission are gone; the journal is on disk
    finally:
        p.start("worker-chain")
    stack.wait_status(job_id, JobStatus.SUBMITTED, timeout=180)
    assert _log_entries(p, "worker-chain", "claimed job adopted from the chain", job_id)
    assert _log_entries(p, "worker-compute", "outcome found in the journal; submitting it without running the job again", job_id)
    assert len(_log_entries(p, "worker-compute", "running", job_id)) == 1, "the job was run again"
    entry = SubmissionJournal(p.workdir / "state" / "journal" / p.instance()).load(job_id)
    submitted = stack.events(job_id, "ResultSubmitted")
    assert entry is not None and [e["args"]["commitment"].lower() for e in submitted] == [entry.commitment]
    stack.synced()
    state = stack.state()
    state.flushdb()
    wait_for(lambda: _state(stack, job_id) == "submitted", 120, "the submitted job to be adopted from the chain")
    assert state.zscore(f"{exec_prefix(stack, p)}:submitted", str(job_id)) is not None
    m.advance_time(601)
    _settled_once(stack, job_id)


def test_a_restored_record_that_says_lost_does_not_lose_a_claimed_job(stack: Stack) -> None:
    """Found by review, stop 56: the executor's Redis restored from an older snapshot, whose record
    of a job we have claimed since says ``lost`` (an earlier claim of it reverted). Recovery adopted
    only jobs with no record at all, the dispatcher passes over a Claimed job, and our own beat would
    time the job out: the collateral went. Now a record saying we do not hold a job the chain shows
    Claimed by us is adopted like a missing one."""
    import time

    from .stack import exec_prefix

    p = stack.provider
    p.stop("worker-compute")
    try:
        job_id = _claimed_and_queued(stack, "restored")
        state = stack.state()
        state.flushdb()  # the snapshot: the job's old record, nothing queued, nothing in hand
        state.hset(f"{exec_prefix(stack, p)}:job:{job_id}", mapping={
            "state": "lost", "reason": "InsufficientStake (the snapshot's record)", "updated": f"{time.time():.3f}",
        })
    finally:
        p.start("worker-compute")
    _settled_once(stack, job_id)
    assert _log_entries(p, "worker-chain", "claimed job adopted from the chain", job_id)


def _claimed_and_queued(stack: Stack, word: str) -> int:
    """A job posted while the compute worker is stopped, once it is claimed, its record says so and
    its run waits in the broker, and the index has seen it: the moment a wipe or a restored
    snapshot can hit."""
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", f"echo {word} > /out/x"]))
    stack.wait_status(job_id, JobStatus.CLAIMED, timeout=120)
    # The claim task goes on after the claim is mined (the receipt, then the record and the
    # queued run): flushed before it ends, it writes both again and no recovery is needed.
    wait_for(lambda: _state(stack, job_id) == "claimed" and _run_queued(stack, job_id), 60, "the claimed job's run to be queued")
    stack.synced()
    return job_id


def _run_queued(stack: Stack, job_id: int) -> bool:
    """A ``depin.run`` message for `job_id` waits in one of the broker's queues (no compute worker
    has taken it)."""
    st = stack.state()
    for key in st.scan_iter(_type="list"):
        for raw in st.lrange(key, 0, -1):
            headers = json.loads(raw).get("headers") or {}
            if headers.get("task") == "depin.run" and headers.get("argsrepr") == f"[{job_id}]":
                return True
    return False


def _recover_passes_after(ex: Executor, after: float) -> int:
    """Recovery passes (``depin.recover``, the reaper's looks among them) the chain worker logged as
    ended after unix time `after`."""
    ends = [e["ts"] for e in ex.log_lines("worker-chain") if str(e.get("msg", "")).startswith("Task depin.recover[") and "succeeded" in e["msg"]]
    return sum(1 for ts in ends if datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp() > after)


def test_a_wiped_executor_database_never_removes_a_live_run(stack: Stack) -> None:
    """Found by review: the executor's Redis wiped (FLUSHDB, a restart without persistence) while a
    job's container runs. Recovery found the container in no record and under no lease: its reaper
    removed it on one look (and the claim it adopted from the chain could be run again at once,
    before the live run took its lease back, removing the container too). The job restarted or
    missed its deadline: the provider slashed. Now the live run takes its lease back, the reaper
    removes a container only when two looks a lease TTL apart find its lease free, and an adopted
    claim waits for recovery's two looks: the first run ends the job."""
    import time

    from .stack import EXECUTOR_ENV, exec_prefix

    p = stack.provider
    job_id = stack.post(spec(stack.images["busybox"], GATED, max_runtime=30))
    first = wait_for(lambda: _running_container(stack, p, job_id), 120, "the job's container to run")
    lease_key = f"{exec_prefix(stack, p)}:lease:{job_id}"
    state = stack.state()
    token = wait_for(lambda: state.get(lease_key), 30, "the run's lease")
    state.flushdb()  # records, sets in hand, leases, queued tasks: the run itself goes on
    wait_for(lambda: _log_entries(p, "worker-chain", "claimed job adopted from the chain", job_id), 60, "the claim to be adopted")
    assert wait_for(lambda: state.get(lease_key), 60, "the lease to be held again") == token, "another run took the job over"
    back = time.time()
    # Two passes ended a lease TTL after that: the later one looked (reaper and recovery) entirely after it.
    ttl = float(EXECUTOR_ENV["DEPIN_LEASE_TTL"])
    wait_for(lambda: _recover_passes_after(p, back + ttl) >= 2, 120, "recovery passes a lease TTL after the flush")
    running = _running_container(stack, p, job_id)
    assert running is not None and running.id == first.id, "the live run's container was removed"
    release_gate(first)
    _settled_once(stack, job_id)
    assert not _log_entries(p, "worker-chain", "job recovered", job_id)
    assert not [e for e in p.log_lines("worker-chain") if e.get("msg") == "orphan containers removed" and first.name in str(e.get("containers"))]


def test_the_provider_is_paid_exactly_once_per_job(stack: Stack) -> None:
    """Whatever else ran in this module: the provider's wallet grows by exactly the payouts of the
    JobFinalized events that name it on chain, its balance in the market is withdrawn to zero and
    nothing stays locked. This test makes its own crash: the chain worker dies with one job
    submitted and another one running."""
    p, m = stack.provider, stack.market
    address = stack.accounts[PROVIDER]
    submitted = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo one > /out/x"]))
    stack.wait_status(submitted, JobStatus.SUBMITTED, timeout=120)
    gated = stack.post(spec(stack.images["busybox"], GATED, max_runtime=30))
    running = wait_for(lambda: _running_container(stack, p, gated), 120, "the second job's container to run")
    p.kill9("worker-chain")
    release_gate(running)
    wait_for(lambda: _state(stack, gated) == "outcome", 120, "the second job's outcome to be recorded")
    p.start("worker-chain")
    for job_id in (submitted, gated):
        _settled_once(stack, job_id)
    paid = _payouts_on_chain(stack, address)
    assert paid > 0
    try:
        wait_for(lambda: m.withdrawable(address) == 0 and m.token_balance(address) == stack.wallet_before + paid, 120,
                 "the withdrawal of every payout")
    except TimeoutError:
        raise AssertionError(
            f"wallet {m.token_balance(address)} (before {stack.wallet_before}, +{paid} expected), "
            f"withdrawable {m.withdrawable(address)}"
        ) from None
    wait_for(lambda: m.get_provider(address)["locked"] == 0, 60, "no collateral locked")


def _payouts_on_chain(stack: Stack, address: str) -> int:
    """Sum of the payouts over the chain's JobFinalized logs for results of `address` (v2: the payout
    is R + the kappa*f*R rebate, `emission` only names the rebate's part of it: nothing is minted)."""
    m = stack.market
    topic = "0x" + m.codec.topics[("JobMarket", "JobFinalized")].hex()
    logs = m.rpc.call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest", "address": m.market,
                                       "topics": [topic, None, "0x" + address[2:].lower().rjust(64, "0")]}])
    total = 0
    for entry in logs:
        data = bytes.fromhex(entry["data"][2:])
        failure, payout = (int.from_bytes(data[i:i + 32], "big") for i in (0, 32))
        if not failure:
            total += payout
    return total


def test_a_redis_stall_longer_than_the_lease_never_restarts_a_live_run(stack: Stack) -> None:
    """Found by review: Redis stalled (a restart, a failover, a paused VM) for longer than the lease
    TTL while a job ran. The lease expired on the server while its holder lived; the holder's
    renewal then saw it lost and stopped, recovery saw a free lease and a stale record and queued
    the run again, and the second run removed the live container and started the job over (a job
    that fitted its window then missed its deadline: the provider slashed). Now the holder takes
    its lease back, its renewals keep the record fresh, and recovery re-queues only what a second
    look still finds idle: the first run ends the job, never restarted."""
    import os
    import signal
    import time

    from .stack import EXECUTOR_ENV, exec_prefix

    p = stack.provider
    job_id = stack.post(spec(stack.images["busybox"], GATED, max_runtime=30))
    first = wait_for(lambda: _running_container(stack, p, job_id), 120, "the job's container to run")
    lease_key = f"{exec_prefix(stack, p)}:lease:{job_id}"
    state = stack.state()
    token = wait_for(lambda: state.get(lease_key), 30, "the run's lease")
    # Stall Redis until the lease has expired on the server and the record is older than the
    # recovery threshold (both read from the recorded state: the key's TTL, the record's time).
    expired_at = time.monotonic() + state.pttl(lease_key) / 1000
    stale_at = float(state.hget(f"{exec_prefix(stack, p)}:job:{job_id}", "updated") or 0) + float(EXECUTOR_ENV["DEPIN_RECOVER_AFTER"])
    pid = stack.redis.proc.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: time.monotonic() > expired_at + 0.5 and time.time() > stale_at + 0.5, 60, "the lease to expire and the record to go stale")
    finally:
        os.kill(pid, signal.SIGCONT)
    holder = wait_for(lambda: state.get(lease_key), 60, "the lease to be held again")
    assert holder == token, "another task took the running job over"
    assert _state(stack, job_id) == "running"
    release_gate(first)  # the first run is still the one running
    _settled_once(stack, job_id)
    assert not _log_entries(p, "worker-chain", "job recovered", job_id)
