"""The indexer's retention policy (bounded memory): settled jobs compacted to a summary beyond the
reorg window, the events stream trimmed by length and age, totals and indexes exact, and the
JSON API and explorer still showing a compacted job. Over real anvil + redis-server."""

from __future__ import annotations

import json
import re

import redis
from fastapi.testclient import TestClient

from depin.keys import SUMMARY_FIELDS, Keys
from depin.market import SETTLED_STATUSES
from indexer.api import create_app
from indexer.query import COMPACTED_NOTE, IndexerReader

from .services import ChainEnv, Terms, dump

BULKY = ("specJson", "history", "seats", "commitment", "claimWindow", "tallies")


def _jobs(client: redis.Redis, keys: Keys) -> dict[int, dict[str, str]]:
    return {int(j): client.hgetall(keys.job(int(j))) for j in client.zrange(keys.jobs_all, 0, -1)}


def _zsets(d: dict[str, object], keys: Keys) -> dict[str, object]:
    """Every sorted set of a dump but the compaction queue ({p}:jobs:settled)."""
    return {k: v for k, v in d.items() if isinstance(v, list) and k != keys.jobs_settled and ":jobs:" in k or k == keys.providers}


def test_compaction_keeps_summaries_totals_and_indexes_exact(populated_env: ChainEnv) -> None:
    """Every settled job below the reorg window is compacted to exactly its summary fields; the
    totals, meta counters of jobs and every index equal those of an index that never compacts;
    live jobs are untouched; a compacted job's summary equals the rebuilt (full) job's fields."""
    env = populated_env
    keys = env.keys
    full = env.indexer(1, compact_after=-1)
    full.sync_once()
    r0, r1 = env.client(0), env.client(1)
    before = _jobs(r1, keys)
    settled = {j for j, h in before.items() if h["status"] in SETTLED_STATUSES}
    assert len(settled) > 60 and len(settled) < len(before)  # the scenario leaves live jobs too
    queued = {int(j) for j in r1.zrange(keys.jobs_settled, 0, -1)}
    assert queued == settled
    # each queued job is scored by its settling block: the block of its last history entry
    for j in settled:
        assert int(r1.zscore(keys.jobs_settled, str(j))) == json.loads(before[j]["history"])[-1]["block"]
    # the follower runs the retention pass once caught up (the first one at once)
    ix = env.indexer(0, compact_after=0, finality_depth=1)
    ix.sync_once()
    limit = min(ix.store.cursor().number, ix.head - 2)  # below the kept window: twice the finality depth
    expected = {j for j in settled if int(before[j]["settledBlock"]) <= limit}
    assert 20 < len(expected) < len(settled)  # the newest settlements are still within the reorg window
    after = _jobs(r0, keys)
    rebuilt = _jobs(r1, keys)
    for j, h in after.items():
        if j in expected:
            assert h.pop("compacted") == "1" and int(h.pop("compactedAt")) >= limit
            want = {f: rebuilt[j][f] for f in SUMMARY_FIELDS if f in rebuilt[j]}
            if "providers" in want and want["providers"] == want.get("provider"):
                del want["providers"]
            assert h == want, j
            assert all(len(v) <= 64 for v in h.values()) or "providers" in h  # one listpack
            assert not any(f in h for f in BULKY)
        else:
            assert h == rebuilt[j], j  # live (or too recent) jobs are as a full index has them
    assert {int(j) for j in r0.zrange(keys.jobs_settled, 0, -1)} == settled - expected
    d0, d1 = dump(r0, keys, bookkeeping=False), dump(r1, keys, bookkeeping=False)
    assert d0[keys.totals] == d1[keys.totals]
    assert _zsets(d0, keys) == _zsets(d1, keys) and len(_zsets(d0, keys)) > 5
    assert int(r0.hget(keys.meta, "jobsCompacted")) == len(expected)
    assert ix.retain()[0] == 0  # nothing left to compact: idempotent
    assert full.retain()[0] == 0  # compact_after -1: never
    # the indexer keeps following a compacted index: a new job indexes as on a full one
    m = env.market
    requester = m.accounts[6]  # funded by bulk_jobs
    job = m.post(requester, terms=Terms(), n=424242)
    ix.sync_once()
    full.sync_once()
    assert r0.hgetall(keys.job(job)) == r1.hgetall(keys.job(job))
    assert r0.hgetall(keys.totals) == r1.hgetall(keys.totals)


def test_never_compacts_within_the_reorg_window(populated_env: ChainEnv) -> None:
    env = populated_env
    ix = env.indexer(0, compact_after=0, finality_depth=10_000)
    ix.sync_once()  # runs a retention pass
    assert ix.retain()[0] == 0
    r = env.client(0)
    assert r.zcard(env.keys.jobs_settled) > 60
    assert not any(r.hexists(env.keys.job(int(j)), "compacted") for j in r.zrange(env.keys.jobs_all, 0, -1))
    # and compact_after holds settled jobs back beyond the window
    head = env.market.head()
    ix2 = env.indexer(1, compact_after=head + 1, finality_depth=2)
    ix2.sync_once()
    assert ix2.retain()[0] == 0 and env.client(1).hget(env.keys.meta, "jobsCompacted") is None


def test_a_rolled_back_settlement_leaves_the_compaction_queue(chain_env: ChainEnv) -> None:
    env = chain_env
    m = env.market
    requester, provider = m.accounts[1], m.accounts[2]
    m.fund(requester)
    m.fund(provider)
    m.register(provider)
    job = m.post(requester)
    ix = env.indexer(0, compact_after=-1)
    ix.sync_once()
    snap = m.snapshot()
    m.cancel(requester, job)
    ix.sync_once()
    r = env.client(0)
    assert r.zscore(env.keys.jobs_settled, str(job)) is not None
    m.revert(snap)
    m.mine(3)
    ix.sync_once()
    assert r.zscore(env.keys.jobs_settled, str(job)) is None
    assert r.hget(env.keys.job(job), "status") == "Open" and not r.hexists(env.keys.job(job), "settledBlock")


def test_the_stream_is_trimmed_by_length_and_age(populated_env: ChainEnv) -> None:
    env = populated_env
    r = env.client(0)
    r.config_set("stream-node-max-entries", 10)  # MAXLEN/MINID ~ trim whole nodes
    full = env.indexer(1, stream_max_len=0)
    full.sync_once()
    total = env.client(1).xlen(env.keys.events)
    ix = env.indexer(0, stream_max_len=50)
    ix.sync_once()
    length = r.xlen(env.keys.events)
    assert 50 <= length <= 60 < total
    # the newest entries are the ones kept
    newest = [f for _, f in env.client(1).xrevrange(env.keys.events, count=50)]
    assert [f for _, f in r.xrevrange(env.keys.events, count=50)] == newest
    assert ix.store.trim_stream(0) == 0
    assert ix.store.trim_stream(3600, now=1.0) == 0  # nothing older than an hour before 1970
    trimmed = ix.store.trim_stream(1.0, now=10**10)  # everything is older than that
    assert trimmed >= length - 10 and r.xlen(env.keys.events) <= 10


def test_api_and_explorer_show_a_compacted_job(populated_env: ChainEnv) -> None:
    env = populated_env
    ix = env.indexer(0, compact_after=0, finality_depth=2)
    ix.sync_once()  # compacts the settled jobs
    r = env.client(0)
    keys = env.keys
    compacted = [int(j) for j in r.zrange(keys.jobs_all, 0, -1) if r.hget(keys.job(int(j)), "compacted") == "1"]
    live = [int(j) for j in r.zrange(keys.jobs_all, 0, -1) if not r.hexists(keys.job(int(j)), "compacted")]
    assert compacted and live
    finalized = next(j for j in compacted if r.hget(keys.job(j), "status") == "Finalized")
    summary = r.hgetall(keys.job(finalized))
    reader = IndexerReader(r, keys)
    with TestClient(create_app(reader)) as client:
        body = client.get(f"/jobs/{finalized}").json()
        assert body["compacted"] is True and body["compactedNote"] == COMPACTED_NOTE
        assert body["status"] == "Finalized" and body["history"] == [] and body["spec"] is None
        assert body["requester"] == summary["requester"] and body["reward"] == summary["reward"]
        assert body["providers"] == [body["provider"]] == [summary["provider"]]
        assert body["extra"]["payout"] == summary["payout"] and body["extra"]["settledBlock"] == summary["settledBlock"]
        assert client.get(f"/jobs/{live[0]}").json()["compacted"] is False
        page = client.get(f"/job/{finalized}")
        assert page.status_code == 200
        assert 'id="job-compacted"' in page.text and "History compacted" in page.text and "--reset" in page.text
        assert re.search(r'id="payout"', page.text)  # the summary keeps the payout split
        assert 'id="job-compacted"' not in client.get(f"/job/{live[0]}").text
        provider = summary["provider"]
        assert client.get(f"/provider/{provider}").status_code == 200
        assert client.get("/").status_code == 200
        for j in compacted:
            assert client.get(f"/job/{j}").status_code == 200, j


def test_an_index_written_before_retention_gets_its_queue_on_upgrade(populated_env: ChainEnv) -> None:
    """Schema 3 had no {p}:jobs:settled and no settledBlock: the upgrade builds both from the
    jobs' histories, exactly as a fresh index has them, and compaction then works."""
    env = populated_env
    keys = env.keys
    env.indexer(1, compact_after=-1).sync_once()
    r = env.client(1)
    fresh = dump(r, keys, bookkeeping=False, stream=False)
    r.delete(keys.jobs_settled)
    for j in r.zrange(keys.jobs_all, 0, -1):
        r.hdel(keys.job(int(j)), "settledBlock")
    r.hset(keys.meta, "schema", "3")
    ix = env.indexer(1, compact_after=0, finality_depth=1)
    assert ix.store.upgrade() == 3
    assert dump(r, keys, bookkeeping=False, stream=False) == fresh  # schema back at 4 too
    ix.sync_once()
    assert int(r.hget(keys.meta, "jobsCompacted")) > 20
