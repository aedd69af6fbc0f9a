"""depinctl.devchain drives a real deployment on anvil: bulk generation and single transactions.

One anvil per module (its own, on a free port: not ape's test network), deployed with the
project's deploy script, as the indexer benchmark and the devnet do.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from eth_utils import keccak

from depin.deployment import to_wei
from depinctl.deploy import deploy_with_ape
from depinctl.devchain import (
    DevChain,
    JobTerms,
    Tx,
    TxFailed,
    result_hash_for,
    sample_spec,
)
from depinctl.procs import start_anvil

FINALIZED = 5  # IJobMarket.JobStatus.Finalized


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory):
    workdir: Path = tmp_path_factory.mktemp("devchain")
    proc, url = start_anvil(workdir / "anvil")
    try:
        deployment = deploy_with_ape(url, workdir / "deployments")
        yield DevChain(url, deployment)
    finally:
        proc.stop()


def market_events(chain: DevChain, first_block: int, last_block: int) -> Counter[str]:
    topics = chain.codec.topics.items()
    names = {"0x" + topic.hex(): name for (contract, name), topic in topics if contract == "JobMarket"}
    logs = chain.rpc.get_logs(first_block, last_block, [chain.market])
    return Counter(names.get(log["topics"][0], "?") for log in logs)


def test_generate_jobs_takes_every_job_to_finalized_with_one_event_per_transition(chain: DevChain) -> None:
    """Bulk generation posts, claims, submits and finalizes every job (several rounds, several
    transactions per block) and leaves exactly four market events per job and automine on."""
    before = chain.job_count()
    generated = chain.generate_jobs(7, round_size=3, finalize_batch=2)

    assert (generated.first_job_id, generated.last_job_id, generated.jobs) == (before + 1, before + 7, 7)
    assert chain.job_count() == before + 7
    for job_id in range(generated.first_job_id, generated.last_job_id + 1):
        job = chain.get_job(job_id)
        assert job["status"] == FINALIZED, job_id
        assert job["provider"] in chain.accounts[3:5]
        assert job["requester"] in chain.accounts[1:3]
    events = market_events(chain, generated.first_block, generated.last_block)
    for name in ("JobPosted", "JobClaimed", "ResultSubmitted", "JobFinalized"):
        assert events[name] == 7, events
    # Bulk means batched: far fewer blocks than transactions.
    assert generated.blocks < generated.txs / 2
    assert chain.automine is True


def test_generate_jobs_again_reuses_registered_providers(chain: DevChain) -> None:
    """A second generation on the same deployment continues the job ids (providers registered once)."""
    before = chain.job_count()
    generated = chain.generate_jobs(3)
    assert generated.first_job_id == before + 1
    assert chain.get_job(generated.last_job_id)["status"] == FINALIZED


def test_single_transactions_walk_a_job_and_decode_reverts(chain: DevChain) -> None:
    """The one-at-a-time helpers move a job through its states; a revert names the custom error."""
    requester, provider = chain.new_accounts(2, seed="test-devchain-single")
    chain.fund([requester, provider], to_wei(1_000))
    chain.register_provider(provider, to_wei(500))
    terms = JobTerms(reward=to_wei(1), verify_mode=1)  # never drawn: it finalizes

    job_id = chain.post_job(requester, sample_spec(10_001), terms)
    assert chain.get_job(job_id)["requester"] == requester
    with pytest.raises(TxFailed, match=rf"JobMarket\.WrongStatus\(jobId={job_id}, actual=1, expected=2\)"):
        chain.submit_result(provider, job_id, keccak(b"commitment"), "http://provider/results/x")
    chain.claim_job(provider, job_id)
    chain.submit_result(provider, job_id, keccak(b"commitment"), "http://provider/results/x")
    with pytest.raises(TxFailed, match="TooEarly"):
        chain.finalize(job_id)
    chain.advance_time(terms.challenge_window + 1)
    chain.mine()  # the anchor block (submit block + D) is readable once a later block exists
    assert chain.is_drawn(job_id) is False
    chain.finalize(job_id)
    assert chain.get_job(job_id)["status"] == FINALIZED
    # a re-executable job: finalized only when the draw passed it over
    job_id = chain.post_job(requester, sample_spec(10_002), JobTerms(reward=to_wei(1)))
    chain.claim_job(provider, job_id)
    chain.submit_result(provider, job_id, keccak(b"commitment 2"), "http://provider/results/y")
    chain.advance_time(terms.challenge_window + 1)
    chain.mine()
    if chain.is_drawn(job_id):
        with pytest.raises(TxFailed, match="JobDrawn"):
            chain.finalize(job_id)
    else:
        chain.finalize(job_id)
        assert chain.get_job(job_id)["status"] == FINALIZED


def test_send_bulk_reports_a_reverted_transaction_and_restores_automine(chain: DevChain) -> None:
    """A bulk transaction that reverts on chain raises TxFailed with its decoded error."""
    provider = chain.accounts[3]
    unknown = chain.job_count() + 1000
    txs = [Tx(provider, chain.market, chain.codec.encode("JobMarket", "claimJob", unknown), 200_000)]
    with pytest.raises(TxFailed, match=rf"UnknownJob\(jobId={unknown}\)") as caught:
        chain.send_bulk(txs)
    assert caught.value.tx_hash is not None
    assert chain.automine is True


def test_codec_round_trips_and_names_unknown_errors(chain: DevChain) -> None:
    data = chain.codec.encode("JobMarket", "submitResult", 1, result_hash_for(1), "uri")
    assert data.startswith("0x" + chain.codec.function("JobMarket", "submitResult").selector.hex())
    assert chain.codec.decode_error("0xdeadbeef").startswith("unknown error 0xdeadbeef")
    assert "no revert data" in chain.codec.decode_error("0x")


@pytest.fixture(scope="module")
def mixed_chain(tmp_path_factory: pytest.TempPathFactory):
    """The devnet's kind of node: ``anvil --block-time 1 --mixed-mining`` (mines every transaction
    at once and a block every second; reports neither automine nor an interval)."""
    workdir: Path = tmp_path_factory.mktemp("devchain-mixed")
    proc, url = start_anvil(workdir / "anvil", block_time=1)
    try:
        deployment = deploy_with_ape(url, workdir / "deployments")
        yield DevChain(url, deployment)
    finally:
        proc.stop()


def test_send_bulk_on_a_mixed_mining_node_mines_every_transaction_and_leaves_its_mining_alone(mixed_chain: DevChain) -> None:
    """The devnet's funding bulk: many transactions from one sender (the faucet's mints) and a
    few from each funded account (its approvals). On a node that mines while anvil adds a batch's
    members concurrently, a same-sender transaction added just after its predecessor was mined
    stayed queued for good ("3 transactions stay in the pool" in a fresh devnet). Sent in waves
    of one transaction per sender, every one is mined, in several rounds, and the node keeps
    mining on its own afterwards (mixed mining cannot be restored over RPC once turned off)."""
    chain = mixed_chain
    assert not chain.mining_is_pausable()
    token = chain.contracts.reward_token
    for round_ in range(3):
        accounts = chain.new_accounts(16, seed=f"test-devchain-mixed-{round_}")
        chain.fund(accounts, to_wei(7))
        assert {chain.token_balance(a) for a in accounts} == {to_wei(7)}
        assert all(int(chain.read(token.allowance(a, chain.staking))) > 0 for a in accounts)
        status = chain.rpc.call("txpool_status")
        assert (status["pending"], status["queued"]) == ("0x0", "0x0"), status
    # still mixed: a block arrives on an idle chain, and a transaction is mined without help
    head = chain.block_number()
    deadline = time.monotonic() + 30
    while chain.block_number() == head:
        assert time.monotonic() < deadline, "the node stopped mining on its own"
        time.sleep(0.05)
    receipt = chain.approve(chain.accounts[1], chain.market, 1)
    assert receipt["status"] == "0x1"
