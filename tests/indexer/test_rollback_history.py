"""A rollback leaves a job's history as a rebuild has it (h-r3's review).

The undo record of a block keeps the prior value of every hash field the block changed, but leaves
a job's ``history`` out (a rollback truncates it to the fork point instead), and it drops a hash
whose only change was its history. ``ReserveReleased`` (``releaseReserve``: an agreeing audit's
canary reserve back to free stake, its own transaction) changes the verifier's hash and appends
to the job's history, nothing else of the job: rolling its block back leaves the orphaned entry in
the job's history. Real reducer, store (commit script, rollback) and redis-server; the court's
events are built as the decoder gives them (see test_court_events)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from depin.keys import Keys
from depin.spec import canonical_json, spec_hash
from indexer.decode import Event
from indexer.reducer import COURT_EVENTS, Reducer
from indexer.store import Cursor, Store

from .services import RedisServer, dump

MARKET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
COURT = "0xa16E02E87b7454126E5E10d957A927A7F5B5d2be"
REQUESTER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PROVIDER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
AUDITOR = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
R = 10**18
NOW = 1_900_000_000
PARAMS_V1 = {"feeBps": 200, "auditFeeBps": 11_000, "kappaBps": 5_000, "paused": False}
SPEC = canonical_json({"v": 1, "image": "depin/busybox@sha256:" + "ab" * 32, "command": ["true"],
                       "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 10}})


def _hash(n: int) -> str:
    return "0x" + f"{n:064x}"


class Chain:
    """Applies blocks of events through the Reducer and the Store with undo records, as the
    follower does near the head."""

    def __init__(self, client: redis.Redis) -> None:
        self.keys = Keys(31337, MARKET)
        self.reducer = Reducer(self.keys)
        self.store = Store(client, self.keys, self.reducer)
        self.cursor = Cursor(0, _hash(0))
        assert self.store.initialize({"chainId": "31337", "market": MARKET}, self.cursor)

    def block(self, number: int, *events: tuple[str, dict[str, Any]]) -> None:
        evs = [
            Event(name, "VerificationCourt" if name in COURT_EVENTS else "JobMarket", COURT if name in COURT_EVENTS else MARKET,
                  number, _hash(number), _hash(10_000 + 100 * number + i), i, args)
            for i, (name, args) in enumerate(events)
        ]
        for ev in evs:
            ev.timestamp = NOW
        read, absent = self.reducer.prefetch(evs)
        loaded = self.store.read_hashes(read)
        loaded.update({key: {} for key in absent})
        loaded.update(self.store.read_hashes(self.reducer.related_keys(loaded)))
        result = self.reducer.apply(evs, loaded, self.store.read_hashes, number)
        new = Cursor(number, _hash(number))
        self.store.commit(self.cursor, new, result, {number: (_hash(number), self.cursor.hash)}, (), None, result.values)
        self.cursor = new


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis")
    yield srv
    srv.stop()


def _tallied_audit(chain: Chain) -> int:
    """Blocks 1-5: a job audited by one seat (bond and canary reserve locked); returns the reserve."""
    bond, reserve = 35 * R // 10, 20 * R - 35 * R // 10
    chain.block(1, ("MarketParamsUpdated", {"version": 1, "params": PARAMS_V1}),
                ("VerifierJoined", {"verifier": AUDITOR, "platformClass": 0, "amount": 100 * R}))
    chain.block(2, ("JobPosted", {
        "jobId": 1, "requester": REQUESTER, "specHash": "0x" + spec_hash(SPEC).hex(),
        "terms": {"reward": R, "claimWindow": 600, "maxRuntime": 60, "challengeWindow": 30, "collateralPct": 400,
                  "cpuSeconds": 10, "verifyMode": 0},
        "fromCredit": 0, "auditBps": 3085, "paramsVersion": 1, "spec": SPEC,
    }))
    chain.block(3, ("JobClaimed", {"jobId": 1, "provider": PROVIDER, "collateral": 4 * R, "submitDeadline": NOW + 100}))
    chain.block(4, ("ResultSubmitted", {"jobId": 1, "provider": PROVIDER, "commitment": "0x" + "c0" * 32,
                                        "resultURI": "http://r/opaque", "challengeDeadline": NOW + 200, "anchorBlock": 4}),
                ("VerificationStarted", {"jobId": 1, "court": COURT}),
                ("CaseOpened", {"jobId": 1, "platformClass": 0, "snapshotBlock": 3, "round": 0, "paramsVersion": 1}))
    chain.block(5, ("SeatTaken", {"jobId": 1, "round": 0, "seat": 0, "verifier": AUDITOR, "bond": bond, "reserve": reserve}))
    return reserve


def test_a_rolled_back_reserve_release_leaves_no_history_entry(server: RedisServer) -> None:
    """Blocks 1-5 then ReserveReleased in block 6, rolled back to block 5: the index must equal
    one that never saw block 6 (the verifier's stake is restored; so must the job's history be)."""
    chain = Chain(server.client(0))
    reserve = _tallied_audit(chain)
    fork = chain.cursor
    chain.block(6, ("ReserveReleased", {"jobId": 1, "verifier": AUDITOR, "reserve": reserve}))
    k = chain.keys
    r = server.client(0)
    assert [h["event"] for h in json.loads(r.hget(k.job(1), "history"))][-1] == "ReserveReleased"
    chain.store.rollback(chain.cursor, fork, [6])
    reference = Chain(server.client(1))
    _tallied_audit(reference)
    assert r.hgetall(k.verifier(AUDITOR)) == server.client(1).hgetall(k.verifier(AUDITOR))  # restored
    assert [h["event"] for h in json.loads(r.hget(k.job(1), "history"))] == [
        h["event"] for h in json.loads(server.client(1).hget(k.job(1), "history"))
    ]
    assert dump(r, k, stream=False) == dump(server.client(1), k, stream=False)
