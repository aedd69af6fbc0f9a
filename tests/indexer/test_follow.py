"""Backfill, live follow and from-scratch rebuild agree, and agree with the chain.

One chain goes through every transition the contracts emit (``services.full_scenario``) while an
indexer follows it live; afterwards a backfill (same settings) and a rebuild with other settings
(tiny ``eth_getLogs`` ranges, a finality depth of 3 so most blocks take the "final" path) index the
same chain into other databases.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from depin.keys import JOB_STATUSES

from .services import ChainEnv, LiveIndexer, dump, full_scenario, stream_entries

LIVE, BACKFILL, REBUILD = 0, 1, 2


@pytest.fixture(scope="module")
def followed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from .services import _make_env

    env = _make_env(tmp_path_factory.mktemp("follow"))
    live = LiveIndexer(env.indexer(LIVE))
    try:
        env.ids = full_scenario(env.market)
        live.wait_synced(env.market.head())
        live.stop()
        env.indexer(BACKFILL).sync_once()
        env.rebuild(REBUILD, max_range=7, finality_depth=3)
        yield env
    finally:
        live.stop_event.set()
        env.anvil.stop()
        env.redis.stop()


def test_live_follow_equals_backfill_with_the_same_settings(followed: ChainEnv) -> None:
    """Following the chain live and backfilling it afterwards leave identical Redis contents: every
    hash, index, stream entry (without ids), undo record, recent block hash and the cursor."""
    live = dump(followed.client(LIVE), followed.keys)
    backfill = dump(followed.client(BACKFILL), followed.keys)
    assert live == backfill


def test_rebuild_with_other_settings_equals_live_follow(followed: ChainEnv) -> None:
    """A rebuild with tiny eth_getLogs ranges and a finality depth of 3 (most blocks indexed
    without undo records) holds the same data as the live index; only the bookkeeping of recent
    blocks differs."""
    live = dump(followed.client(LIVE), followed.keys, bookkeeping=False)
    rebuild = dump(followed.client(REBUILD), followed.keys, bookkeeping=False)
    assert live == rebuild
    assert followed.client(LIVE).get(followed.keys.cursor) == followed.client(REBUILD).get(followed.keys.cursor)


def test_every_transition_type_was_indexed(followed: ChainEnv) -> None:
    """The scenario covers every market and staking event, and each lands in the stream once, in
    chain order."""
    entries = stream_entries(followed.client(LIVE), followed.keys)
    names = {e["event"] for e in entries}
    expected = {
        "JobPosted", "JobClaimed", "ResultSubmitted", "FailureSubmitted", "NoFaultFailure", "JobFinalized",
        "VerificationStarted", "JobSettled", "JobCancelled", "JobExpired", "JobTimedOut", "BurnFlushed", "Deposited",
        "Withdrawn", "ProviderRegistered", "Staked", "UnstakeRequested", "UnstakeWithdrawn", "MetadataUpdated",
        "Slashed", "MarketParamsUpdated", "StakingParametersUpdated",
    }
    assert expected <= names, expected - names
    assert all(e["kind"] == "event" for e in entries)
    order = [(int(e["block"]), int(e["logIndex"])) for e in entries]
    assert order == sorted(order) and len(set(order)) == len(order)
    meta = followed.client(LIVE).hgetall(followed.keys.meta)
    assert int(meta["eventsApplied"]) == len(entries)
    outcomes = {json.loads(e["args"])["outcome"] for e in entries if e["event"] == "JobSettled"}
    assert outcomes == {"1", "2", "3", "4", "5"}
    reopened = {json.loads(e["args"])["reopened"] for e in entries if e["event"] == "NoFaultFailure"}
    assert reopened == {True, False}


def test_indexed_state_equals_the_contracts_views(followed: ChainEnv) -> None:
    """Every job, provider and account balance the index holds equals what the contracts return
    (getJob, getProvider, withdrawableOf), computed from events alone."""
    r, k, m = followed.client(LIVE), followed.keys, followed.market
    count = m.job_count()
    assert int(r.hget(k.totals, "jobs")) == count == r.zcard(k.jobs_all)
    # The market does not store spec hashes: the node's JobPosted logs (topic 3) are the chain's word.
    posted_topic = "0x" + m.codec.topics[("JobMarket", "JobPosted")].hex()
    posted = {
        int(log["topics"][1], 16): log["topics"][3]
        for log in m.rpc.get_logs(m.deployment.deploy_block, m.block_number(), [m.market], [posted_topic])
    }
    for job_id in range(1, count + 1):
        chain, job = m.get_job(job_id), r.hgetall(k.job(job_id))
        assert job["status"] == JOB_STATUSES[chain["status"]], job_id
        assert job["requester"] == chain["requester"]
        assert int(job["reward"]) == chain["reward"]
        assert int(job["collateral"]) == chain["collateral"]
        assert int(job["fee"]) == chain["fee"], job_id
        assert int(job["auditFee"]) == chain["auditFee"]
        assert int(job["auditBps"]) == chain["auditBps"] and int(job["paramsVersion"]) == chain["paramsVersion"]
        assert job["verifyMode"] == ("reexec", "none")[chain["verifyMode"]]
        assert int(job["deadline"]) == chain["deadline"], job_id
        assert (job.get("provider") or "0x" + "0" * 40) == chain["provider"], job_id
        assert job["specHash"] == posted[job_id], job_id
        if chain["commitment"] != b"\0" * 32:  # submitted
            assert job["commitment"] == "0x" + chain["commitment"].hex()
            assert int(job["anchorBlock"]) == chain["anchorBlock"]
            assert int(job.get("failureCode") or 0) == chain["failureCode"]
        else:
            assert int(job["claimDeadline"]) == chain["claimDeadline"]
        assert r.zscore(k.jobs_by_status(job["status"]), job_id) == job_id
        assert r.zscore(k.jobs_by_requester(job["requester"]), job_id) == job_id
        history = json.loads(job["history"])
        assert history[0]["event"] == "JobPosted" and history[-1]["status"] == job["status"]
    for status in JOB_STATUSES[1:]:
        assert int(r.hget(k.totals, status) or 0) == r.zcard(k.jobs_by_status(status)), status
    providers = r.zrange(k.providers, 0, -1, withscores=True)
    assert len(providers) == 2
    for address, pid in providers:
        chain, rec = m.get_provider(address), r.hgetall(k.provider(address))
        assert int(pid) == chain["id"] == int(rec["id"])
        for f in ("staked", "locked", "unbonding", "releaseAt", "jobsCompleted", "jobsSlashed"):
            assert int(rec[f]) == chain[f], (address, f)
        assert rec["endpoint"] == chain["endpoint"]
        assert rec["capabilityHash"] == "0x" + chain["capabilityHash"].hex()
    for account in m.accounts[:10]:
        assert int(r.hget(k.account(account), "withdrawable") or 0) == m.withdrawable(account), account
    reopened = r.hgetall(k.job(followed.ids["reopened"]))
    assert reopened["timeouts"] == "1" and len(reopened["providers"].split(",")) == 2
    for p in reopened["providers"].split(","):
        assert r.zscore(k.jobs_by_provider(p), followed.ids["reopened"]) is not None


def test_totals_satisfy_the_conservation_invariants(followed: ChainEnv) -> None:
    """Market totals reproduce the contracts' conservation sentences: the market holds escrowed
    (R + fee + A of live jobs) + withdrawable + pendingBurn tokens; the staking contract holds
    staked + unbonding; the court received the audit fees and the slashed collateral; the burn
    went down by what was flushed."""
    r, k, m = followed.client(LIVE), followed.keys, followed.market
    t = {f: int(v) for f, v in r.hgetall(k.totals).items()}
    assert m.token_balance(m.market.address) == t["escrowed"] + t["withdrawable"] + t["pendingBurn"]
    assert t["pendingBurn"] == m.read(m.contracts.job_market.pending_burn())
    assert m.token_balance(m.staking.address) == t["staked"] + t["unbonding"]
    assert m.token_balance(m.court_address) == t["toCourt"] + t["slashedToCourt"]
    assert t["burned"] == t["flushed"] + t["pendingBurn"] and t["flushed"] > 0
    assert t["slashed"] > 0 and t["emitted"] > 0 and t["refunded"] > 0 and t["paid"] > 0


def test_invalid_spec_is_indexed_as_invalid(followed: ChainEnv) -> None:
    """A spec whose bytes hash right but do not parse as JSON is indexed with specValid 0 and a
    specError; valid specs carry their JSON text."""
    r, k = followed.client(LIVE), followed.keys
    bad = r.hgetall(k.job(followed.ids["invalid_spec"]))
    assert bad["specValid"] == "0" and "not JSON" in bad["specError"] and "specJson" not in bad
    assert bytes.fromhex(bad["spec"][2:]) == b"this is not json {"
    good = r.hgetall(k.job(followed.ids["finalized"]))
    assert good["specValid"] == "1" and json.loads(good["specJson"])["v"] == 1
