"""Verifier and arbiter modes on real services: a provider that posts a wrong hash is challenged by
the verifier, the arbiter re-executes and rules, the cheater's collateral is slashed and the
challenger paid; an honest provider's result is verified and settles normally."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_utils import keccak

from depin.market import JobStatus, Ruling
from depinctl.devchain import JobTerms

from .stack import PROVIDER, PROVIDER2, REQUESTER, TOKEN, VERIFIER, Stack, spec, wait_for


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("dispute"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_provider(PROVIDER2)
        s.setup_funded(REQUESTER, VERIFIER)
        # the honest provider takes only jobs paying >= 0.01 token per CPU-second
        s.provider = s.executor("provider", "provider", PROVIDER, policy={"min_reward_per_cpu_second": "0.01"})
        s.verifier = s.executor("verifier", "verifier", VERIFIER)
        s.arbiter = s.executor("arbiter", "arbiter", 5)
        yield s
    finally:
        s.close()


def test_wrong_hash_is_challenged_ruled_and_slashed(stack: Stack) -> None:
    m = stack.market
    cheater, verifier, requester = stack.accounts[PROVIDER2], stack.accounts[VERIFIER], stack.accounts[REQUESTER]
    reward = TOKEN // 20  # below the honest provider's price: only the cheater takes it
    terms = JobTerms(reward=reward, claim_window=600, max_runtime=60, challenge_window=30, collateral_pct=100, cpu_seconds=10)
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo the truth > /out/answer"]), terms=terms)
    collateral = reward  # collateral_pct 100; also the challenge bond
    staked_before = m.get_provider(cheater)["staked"]
    verifier_wallet = m.token_balance(verifier)
    requester_credit = m.withdrawable(requester)
    m.claim_job(cheater, job_id)
    m.submit_result(cheater, job_id, keccak(text="a made-up result"), "http://127.0.0.1:1/results/0xbogus")

    stack.wait_status(job_id, JobStatus.RESOLVED, timeout=60)
    job = stack.job(job_id)
    assert job["challenger"] == verifier
    resolved = stack.events(job_id, "DisputeResolved")
    assert len(resolved) == 1
    args = resolved[0]["args"]
    assert int(args["ruling"]) == Ruling.CHALLENGER_WINS
    assert args["winner"] == verifier
    burn = collateral * 5_000 // 10_000  # devnet burn_bps
    assert int(args["forfeited"]) == collateral
    assert int(args["burned"]) == burn
    assert int(args["winnerPayout"]) == collateral - burn
    assert int(args["requesterRefund"]) == reward
    # the cheater lost its collateral; the requester got the reward back
    assert m.get_provider(cheater)["staked"] == staked_before - collateral
    assert m.get_provider(cheater)["locked"] == 0
    assert m.withdrawable(requester) == requester_credit + reward
    # the verifier's executor withdrew: its bond back plus the winner's share, exactly
    wait_for(lambda: m.withdrawable(verifier) == 0 and m.token_balance(verifier) == verifier_wallet + collateral - burn, 30,
             "the verifier's withdrawal")
    assert stack.exec_record(stack.verifier, job_id)["state"] == "challenged"
    assert stack.exec_record(stack.arbiter, job_id)["state"] == "ruled"
    assert stack.chain_log_count(job_id, "JobChallenged") == 1


def test_honest_result_is_verified_and_finalized(stack: Stack) -> None:
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo honest > /out/answer"]),
                        terms=JobTerms(reward=TOKEN, claim_window=600, max_runtime=60, challenge_window=8, collateral_pct=100, cpu_seconds=10))
    stack.wait_status(job_id, JobStatus.FINALIZED, timeout=60)
    assert stack.job(job_id)["provider"] == stack.accounts[PROVIDER]
    record = wait_for(lambda: (r := stack.exec_record(stack.verifier, job_id)) and r.get("state") == "verified" and r, 10, "verification")
    submitted = stack.events(job_id, "ResultSubmitted")[0]["args"]
    assert record["digest"] == submitted["resultHash"].lower()
    assert not stack.events(job_id, "JobChallenged")
