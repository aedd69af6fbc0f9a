"""An operator's first testnet deployment, reviewed (h-ops, stop 45): what a provider who follows the
README meets when its set-up is short of what the chain asks, on the real stack (tests/executor/stack.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .stack import PROVIDER, REQUESTER, Stack, exec_prefix, spec

MIN_STAKE = 100  # [networks.devnet] staking.min_stake


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("operator"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER, stake=MIN_STAKE)  # what `provider register --stake <the minimum>` leaves
        s.setup_funded(REQUESTER)
        s.provider = s.executor("provider", "provider", PROVIDER, policy={"images": []})
        yield s
    finally:
        s.close()


def test_a_provider_staked_at_the_minimum_is_told_to_add_stake_and_does_not_retry_at_once(stack: Stack) -> None:
    """The contract locks a job's collateral on top of the minimum stake, so a provider staked at
    exactly the minimum (the README's `provider register --stake ...` with the network's minimum)
    can claim no job. The executor must say so once, as a warning naming the fix, and look at the
    job again only after a pause, not re-claim it at every dispatcher pass."""
    ex = stack.provider
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo hi > /out/a"]))
    lines = ex.wait_log(
        None, lambda e: e.get("job") == job_id and e.get("level") == "warning" and "depin provider stake" in e.get("msg", ""),
        "the stake warning", timeout=60,
    )
    assert "InsufficientStake" in stack.exec_record(ex, job_id).get("reason", "")
    warned = lines[0]
    assert "needs" in warned["msg"] and "DPC" in warned["msg"], warned
    # looked at again no sooner than the pause (the score is when, set with the warning)
    score = stack.state().zscore(f"{exec_prefix(stack, ex)}:deferred", str(job_id))
    assert score is not None
    record_updated = float(stack.exec_record(ex, job_id).get("updated") or 0)
    assert score - record_updated >= 30, (score, record_updated)
