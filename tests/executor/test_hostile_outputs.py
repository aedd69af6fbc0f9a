"""Hostile outputs through the real path (anvil, redis-server, the indexer, Celery workers, Podman;
tests/executor/stack.py): an output tree the result archive cannot hold ends as an OUTPUT_INVALID
failure on chain, the provider's collateral unlocked and nothing slashed, the job claimed once, and
the next normal job still runs. A job that timed out in this executor's hands is never claimed
again by it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from depin.market import FailureCode, JobStatus

from .stack import PROVIDER, REQUESTER, Stack, spec, wait_for
from .test_containers import NESTED_LETTERS, NESTED_LONG_NAMES


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("hostile-outputs"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER)
        s.provider = s.executor("provider", "provider", PROVIDER, policy={"images": []})
        yield s
    finally:
        s.close()


def _stake(stack: Stack) -> dict:
    return stack.market.get_provider(stack.accounts[PROVIDER])


def test_hostile_output_trees_end_as_output_invalid_and_the_next_job_runs(stack: Stack) -> None:
    """1,000 nested folders and 30 nested 200-character names in /out: each job is claimed once,
    ends with FailureSubmitted(OutputInvalid) and is finalized (collateral unlocked, stake intact,
    no timeout); then an ordinary job gets its result."""
    busybox = stack.images["busybox"]
    staked_before = _stake(stack)["staked"]
    deep = stack.post(spec(busybox, ["sh", "-c", f"cd /out && {NESTED_LETTERS}"], max_runtime=30))
    long_names = stack.post(spec(busybox, ["sh", "-c", f"cd /out && {NESTED_LONG_NAMES}"], max_runtime=30))
    for job_id in (deep, long_names):
        stack.wait_status(job_id, JobStatus.FINALIZED, timeout=90)
    normal = stack.post(spec(busybox, ["sh", "-c", "echo still here > /out/ok"]))
    stack.wait_status(normal, JobStatus.FINALIZED, timeout=60)

    for job_id, reason in ((deep, "levels deep"), (long_names, "byte path")):
        failures = stack.events(job_id, "FailureSubmitted")
        assert len(failures) == 1, failures
        assert int(failures[0]["args"]["code"]) == FailureCode.OUTPUT_INVALID
        assert stack.index().hget(stack.keys.job(job_id), "failureReason") == "OutputInvalid"
        record = stack.exec_record(stack.provider, job_id)
        assert record["code"] == str(int(FailureCode.OUTPUT_INVALID)) and reason in record["failure_reason"], record
        assert stack.chain_log_count(job_id, "JobClaimed") == 1
        assert stack.chain_log_count(job_id, "JobTimedOut") == 0
    assert len(stack.events(normal, "ResultSubmitted")) == 1
    stake = _stake(stack)
    assert stake["locked"] == 0
    assert stake["staked"] == staked_before  # nothing slashed
    for component in ("worker-compute", "worker-chain", "dispatcher"):
        assert stack.provider.procs[component].alive(), stack.provider.log(component)[-3000:]


def test_names_that_collide_where_case_does_not_count_end_as_output_invalid(stack: Stack) -> None:
    """An honest Linux job that writes ``Makefile`` and ``makefile`` (one file on macOS and Windows,
    where the requester's extraction refuses them) ends with FailureSubmitted(OutputInvalid), its
    reason naming both, and is finalized with the provider's collateral unlocked and nothing
    slashed: no result is submitted (and paid for) that the requester cannot extract."""
    busybox = stack.images["busybox"]
    staked_before = _stake(stack)["staked"]
    job_id = stack.post(spec(busybox, ["sh", "-c", "echo a > /out/Makefile && echo b > /out/makefile"], max_runtime=30))
    stack.wait_status(job_id, JobStatus.FINALIZED, timeout=90)
    assert stack.events(job_id, "ResultSubmitted") == []
    failures = stack.events(job_id, "FailureSubmitted")
    assert len(failures) == 1 and int(failures[0]["args"]["code"]) == FailureCode.OUTPUT_INVALID, failures
    record = stack.exec_record(stack.provider, job_id)
    assert "out/Makefile and out/makefile collide" in record["failure_reason"], record
    stake = _stake(stack)
    assert stake["locked"] == 0 and stake["staked"] == staked_before


def test_a_job_that_timed_out_in_our_hands_is_never_claimed_again(stack: Stack) -> None:
    """The compute worker is down, so a claimed job times out and reopens: the dispatcher refuses
    it with a logged reason (the record says refused), and it is not claimed a second time, neither
    then nor after the compute worker comes back and the next ordinary job has run."""
    provider = stack.provider
    busybox = stack.images["busybox"]
    provider.stop("worker-compute")
    try:
        job_id = stack.post(spec(busybox, ["sh", "-c", "echo never run > /out/x"]))
        wait_for(lambda: stack.exec_record(provider, job_id).get("state") == "claimed", 30, "the claim to be mined")
        stack.market.advance_time(stack.job(job_id)["deadline"] - stack.market.timestamp() + 1)
        wait_for(lambda: stack.chain_log_count(job_id, "JobTimedOut") == 1, 30, "the beat to time the job out")
        record = wait_for(lambda: (r := stack.exec_record(provider, job_id)).get("refused") and r, 30, "the job to be refused")
        assert "reopened" in record["refused"]
    finally:
        provider.start("worker-compute")
    normal = stack.post(spec(busybox, ["sh", "-c", "echo after > /out/ok"]))
    stack.wait_status(normal, JobStatus.FINALIZED, timeout=60)
    wait_for(lambda: stack.exec_record(provider, job_id).get("state") == "lost", 30, "the stale run task to find the job gone")
    refusals = provider.wait_log("dispatcher", lambda e: e.get("msg", "").startswith("job refused") and e.get("job") == job_id, "the refusal")
    assert refusals, provider.log("dispatcher")[-3000:]
    assert stack.chain_log_count(job_id, "JobClaimed") == 1
    assert stack.status(job_id) == JobStatus.OPEN
