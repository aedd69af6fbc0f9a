"""Due sets (``{p}:jobs:due:{status}``): live jobs scored by their next deadline, written by the real
reducer and store on a real redis-server, read by :meth:`IndexerReader.due_jobs`. The executor's
beat finalizes and pokes from them, so a job far beyond the lowest ids is reached, earliest deadline
first; a reorg's undo and an index of the older schema keep them right."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from depin.keys import Keys
from depin.spec import canonical_json, spec_hash
from indexer.decode import Event
from indexer.query import IndexerReader, QueryError
from indexer.reducer import Reducer
from indexer.store import INDEX_SCHEMA, Cursor, Store
from tests.indexer.services import RedisServer

MARKET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
REQUESTER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PROVIDER_1 = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
PROVIDER_2 = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
RESOLVER = "0xa16E02E87b7454126E5E10d957A927A7F5B5d2be"
NOW = 1_800_000_000
JOBS = 600
SPEC = canonical_json({"v": 1, "image": "depin/busybox@sha256:" + "ab" * 32, "command": ["true"],
                       "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 10}})


PARAMS_V1 = {"feeBps": 200, "auditFeeBps": 11_000, "kappaBps": 5_000, "paused": False}


def _challenge_deadline(job_id: int) -> int:
    """Ids 1-200 are inside their challenge window; 201-600 are past it, the highest ids earliest."""
    return NOW + 10_000 + job_id if job_id <= 200 else NOW - job_id


def _provider(job_id: int) -> str:
    """150 of the past-due jobs (every other one from 301 to 599) are PROVIDER_2's."""
    return PROVIDER_2 if 301 <= job_id < 600 and job_id % 2 else PROVIDER_1


def _hash(n: int) -> str:
    return "0x" + f"{n:064x}"


class Chain:
    """Applies events block by block through the Reducer and the Store (as the follower does)."""

    def __init__(self, client: redis.Redis) -> None:
        self.keys = Keys(31337, MARKET)
        self.reducer = Reducer(self.keys)
        self.store = Store(client, self.keys, self.reducer)
        self.cursor = Cursor(0, _hash(0))
        assert self.store.initialize({"chainId": "31337", "market": MARKET}, self.cursor)

    def block(self, number: int, events: list[tuple[str, dict[str, Any]]], *, undo: bool = False) -> None:
        evs = [Event(name, "JobMarket", MARKET, number, _hash(number), _hash(10_000 + i), i, args) for i, (name, args) in enumerate(events)]
        for ev in evs:
            ev.timestamp = NOW  # the follower stamps JobPosted with its block's timestamp
        read, absent = self.reducer.prefetch(evs)
        loaded = self.store.read_hashes(read)
        loaded.update({key: {} for key in absent})
        loaded.update(self.store.read_hashes(self.reducer.related_keys(loaded)))
        result = self.reducer.apply(evs, loaded, self.store.read_hashes, number if undo else None)
        new = Cursor(number, _hash(number))
        blocks = {number: (_hash(number), self.cursor.hash)} if undo else None
        self.store.commit(self.cursor, new, result, blocks, (), None, result.values)
        self.cursor = new

    def rollback(self, to: Cursor, orphaned: list[int]) -> None:
        self.store.rollback(self.cursor, to, orphaned)
        self.cursor = to


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path_factory.mktemp("due-redis"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def market(server: RedisServer) -> Chain:
    """600 jobs posted (block 1), claimed (block 2) and submitted (block 3); job 601 stays Open."""
    client = server.client(0)
    client.flushdb()
    chain = Chain(client)
    ids = range(1, JOBS + 1)
    chain.block(1, [("MarketParamsUpdated", {"version": 1, "params": PARAMS_V1}), *(("JobPosted", {
        "jobId": j, "requester": REQUESTER, "specHash": "0x" + spec_hash(SPEC).hex(),
        "terms": {"reward": 10**18, "claimWindow": j, "maxRuntime": 60, "challengeWindow": 600, "collateralPct": 400,
                  "cpuSeconds": 10, "verifyMode": 0},
        "fromCredit": 0, "auditBps": 3085, "paramsVersion": 1, "spec": SPEC,
    }) for j in [*ids, JOBS + 1])])
    chain.block(2, [("JobClaimed", {"jobId": j, "provider": _provider(j), "collateral": 4 * 10**18, "submitDeadline": NOW + 5_000})
                    for j in ids])
    chain.block(3, [("ResultSubmitted", {"jobId": j, "provider": _provider(j), "commitment": _hash(j), "resultURI": f"http://r/{j}",
                                         "challengeDeadline": _challenge_deadline(j), "anchorBlock": 4}) for j in ids])
    return chain


@pytest.fixture
def reader(server: RedisServer, market: Chain) -> IndexerReader:
    return IndexerReader(server.client(0), market.keys)


def _past_due(provider: str | None = None) -> list[int]:
    ids = [j for j in range(1, JOBS + 1) if _challenge_deadline(j) < NOW and (provider is None or _provider(j) == provider)]
    return sorted(ids, key=_challenge_deadline)


def test_due_jobs_reach_beyond_the_lowest_ids_in_deadline_order(reader: IndexerReader) -> None:
    due = reader.due_jobs("Submitted", NOW, limit=1_000)
    assert due == _past_due()  # ids 201-600, earliest deadline (highest id) first
    assert len(due) == 400 and min(due) == 201 and due[0] == 600
    assert reader.due_jobs("Submitted", NOW, limit=5) == [600, 599, 598, 597, 596]
    assert reader.due_jobs("Submitted", NOW - 10_000) == []
    assert reader.due_jobs("Open", NOW + JOBS + 2) == [JOBS + 1]  # scored by its claim deadline
    assert reader.due_jobs("Open", NOW + JOBS + 1) == []  # strictly before
    assert reader.due_jobs("Claimed", NOW + 10**6) == []  # every claim was submitted


def test_the_provider_filter_is_exact(reader: IndexerReader) -> None:
    theirs, mine = _past_due(PROVIDER_2), _past_due(PROVIDER_1)
    assert len(theirs) == 150 and len(mine) == 250
    assert reader.due_jobs("Submitted", NOW, provider=PROVIDER_2, limit=1_000) == theirs
    assert reader.due_jobs("Submitted", NOW, provider=PROVIDER_1.lower(), limit=1_000) == mine
    assert reader.due_jobs("Submitted", NOW, provider=PROVIDER_2, limit=7) == theirs[:7]
    assert reader.due_jobs("Submitted", NOW, provider=RESOLVER) == []
    with pytest.raises(QueryError):
        reader.due_jobs("Finalized", NOW)
    with pytest.raises(QueryError):
        reader.due_jobs("Submitted", NOW, provider="0x123")


def test_a_reorg_undoes_a_deadline_move(market: Chain, reader: IndexerReader) -> None:
    """The court starting a verification moves job 550 out of the Submitted set; the Disputed set
    scores it by the court's next deadline once the court drew its seats (redraw due after the seat
    deadline); rolling the block back puts it back into the Submitted set at its challenge deadline."""
    before = market.cursor
    market.block(4, [("VerificationStarted", {"jobId": 550, "court": RESOLVER})], undo=True)
    assert 550 not in reader.due_jobs("Submitted", NOW, limit=1_000)
    assert reader.due_jobs("Disputed", NOW + 10**6) == []  # no court deadline known yet
    market.block(5, [("SeatsDrawn", {"jobId": 550, "round": 0, "k": 1, "redraws": 0, "anchor": 5, "seatDeadline": NOW - 1,
                                     "commitDeadline": NOW + 100, "revealDeadline": NOW + 200})], undo=True)
    assert reader.due_jobs("Disputed", NOW) == [550]
    assert reader.due_jobs("Disputed", NOW - 1) == []
    market.rollback(before, [4, 5])
    assert reader.due_jobs("Disputed", NOW + 10**6) == []
    assert reader.due_jobs("Submitted", NOW, limit=1_000) == _past_due()


def test_disputed_jobs_of_an_earlier_court_are_listed_apart(market: Chain, reader: IndexerReader) -> None:
    """After governance moved the market to another court, the cases of jobs posted before stay in
    their own court, whose events this index does not follow (no courtDeadline, so not in the
    Disputed due set): ``disputed_in_other_courts`` lists them from the court the market's
    ``VerificationStarted`` named, lowest id first, and not the index's own court's cases."""
    old_court = "0x" + "0d" * 20
    before = market.cursor
    market.block(4, [("VerificationStarted", {"jobId": j, "court": court})
                     for j, court in ((560, old_court), (552, RESOLVER), (551, old_court.upper().replace("0X", "0x")))], undo=True)
    assert reader.due_jobs("Disputed", NOW + 10**6) == []  # no court deadline for any of them
    assert reader.disputed_in_other_courts(RESOLVER) == [551, 560]  # 552 is the index's own court's
    assert reader.disputed_in_other_courts(RESOLVER.lower(), limit=1) == [551]
    assert reader.disputed_in_other_courts(old_court) == [552]
    with pytest.raises(QueryError):
        reader.disputed_in_other_courts(RESOLVER, limit=0)
    # a case whose deadline the index knows (its court's events indexed before the change) is in
    # the due set, listed by due_jobs, and not again here
    market.block(5, [("SeatsDrawn", {"jobId": 560, "round": 1, "k": 3, "redraws": 0, "anchor": 5, "seatDeadline": NOW + 5,
                                     "commitDeadline": NOW + 100, "revealDeadline": NOW + 200})], undo=True)
    assert reader.due_jobs("Disputed", NOW + 10**6) == [560]
    assert reader.disputed_in_other_courts(RESOLVER) == [551]
    market.rollback(before, [4, 5])
    assert reader.disputed_in_other_courts(RESOLVER) == []


def test_an_index_of_the_older_schema_gets_its_due_sets_on_upgrade(server: RedisServer, market: Chain, reader: IndexerReader) -> None:
    client = server.client(0)
    assert market.store.schema() == INDEX_SCHEMA  # a new index is written at the current schema
    expected = {status: reader.due_jobs(status, NOW + 10**6, limit=1_000) for status in ("Open", "Claimed", "Submitted", "Disputed")}
    client.delete(*(market.keys.due(status) for status in expected))  # as an indexer before the due sets left it
    client.hdel(market.keys.meta, "schema")
    assert market.store.schema() == 1
    assert market.store.upgrade() == 1
    assert market.store.schema() == INDEX_SCHEMA
    assert {status: reader.due_jobs(status, NOW + 10**6, limit=1_000) for status in expected} == expected
    assert market.store.upgrade() == INDEX_SCHEMA  # once only

