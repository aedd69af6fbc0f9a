"""/jobs pages bounded by what they return, over a real redis-server: hashes are read a few at a time
up to the byte budget (not `limit` of them), several filters scan at most `scan_entries` index entries
per page, and following `nextCursor` lists every matching job exactly once, also while jobs are added
between pages. Redis's own counters (INFO commandstats, INFO stats) measure the work of one page."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from depin.keys import Keys
from indexer import query
from indexer.api import create_app
from indexer.query import IndexerReader, QueryError
from tests.indexer.test_query import (  # noqa: F401  (fixtures)
    PROVIDER_1,
    PROVIDER_2,
    REQUESTER_A,
    REQUESTER_B,
    TOKEN,
    keys,
    r,
    reader,
    redis_url,
    sample,
    write_job,
)


def _commit(r: redis.Redis, keys: Keys, job_id: int, status: str = "Open", requester: str = REQUESTER_A,
            provider: str | None = None, pad: int = 0) -> None:
    """One job as the indexer writes it, and the cursor moved (what every indexer batch does)."""
    write_job(r, keys, job_id, status, requester, provider, TOKEN)
    if pad:
        r.hset(keys.job(job_id), "pad", "x" * pad)
    r.set(keys.cursor, json.dumps({"number": 1000 + job_id, "hash": "0x" + f"{job_id:064x}"}))


def _follow(api: TestClient, **params: Any) -> list[dict]:
    """Every page of /jobs from the first, following nextCursor."""
    pages, cursor = [], None
    while True:
        response = api.get("/jobs", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = pages[-1]["nextCursor"]
        if cursor is None:
            return pages


def _stats(r: redis.Redis) -> tuple[dict[str, int], int]:
    """Calls per command and the bytes Redis has sent, since the last CONFIG RESETSTAT."""
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in r.info("commandstats").items()}
    return calls, int(r.info("stats")["total_net_output_bytes"])


def test_a_page_reads_about_its_own_bytes_whatever_the_limit(r: redis.Redis, keys: Keys) -> None:
    """limit=1000 over 300 jobs of ~4 KB with a 40 KB budget: the page reads about 10 hashes (the
    kept ones and the one that did not fit, at most a first chunk more), and Redis sends about the
    page's bytes, not the 1.2 MB the 300 hashes hold."""
    for job_id in range(1, 301):
        _commit(r, keys, job_id, pad=4000)
    budget = 40_000
    reader = IndexerReader(r, keys)
    with TestClient(create_app(reader, page_bytes=budget)) as api:
        for params in ({}, {"newest_first": "false"}, {"status": "open", "requester": REQUESTER_A}):
            r.config_resetstat()
            page = api.get("/jobs", params={"limit": 1000, **params}).json()
            calls, sent = _stats(r)
            shown = [j["id"] for j in page["jobs"]]
            assert 5 <= len(shown) <= 11 and page["nextCursor"] == str(shown[-1]), (params, shown)
            assert calls["hgetall"] <= len(shown) + query._HASH_CHUNK_FIRST, (params, calls)
            assert sent < 3 * budget, (params, sent)
    r.config_resetstat()
    whole = IndexerReader(r, keys).job_page(limit=1000)  # no byte budget (the CLI): every hash, as before
    assert len(whole.jobs) == 300 and whole.next_cursor is None and _stats(r)[0]["hgetall"] == 300


@pytest.mark.parametrize("newest_first", [True, False])
@pytest.mark.parametrize("filters", [{}, {"requester": REQUESTER_A}, {"status": "open", "requester": REQUESTER_A}])
def test_cursor_pages_are_exact_while_jobs_are_added(r: redis.Redis, keys: Keys, newest_first: bool,
                                                     filters: dict[str, str]) -> None:
    """Jobs of mixed sizes, pages cut by the limit or the byte budget, and after every page the
    indexer commits two more jobs (random status and requester): newest first, the pages list
    exactly the jobs there were at the first page (the new ones are above the cursor); oldest first,
    exactly every matching job, the added ones included. None twice, none skipped."""
    rng = random.Random(7)

    def add(job_id: int) -> None:
        _commit(r, keys, job_id, rng.choice(["Open", "Claimed"]), rng.choice([REQUESTER_A, REQUESTER_B]),
                pad=rng.choice([0, 100, 3000, 9000]))

    for job_id in range(1, 81):
        add(job_id)
    reader = IndexerReader(r, keys)

    def matching() -> list[int]:
        found = {int(m) for m in r.zrange(keys.jobs_all, 0, -1)}
        if "status" in filters:
            found &= {int(m) for m in r.zrange(keys.jobs_by_status("Open"), 0, -1)}
        if "requester" in filters:
            found &= {int(m) for m in r.zrange(keys.jobs_by_requester(REQUESTER_A), 0, -1)}
        return sorted(found, reverse=newest_first)

    before = matching()
    seen: list[int] = []
    sizes: list[int] = []
    next_id = 81
    with TestClient(create_app(reader, page_bytes=20_000)) as api:
        cursor = None
        params = {**filters, "limit": 6, "newest_first": str(newest_first).lower()}
        while True:
            body = api.get("/jobs", params={**params, **({"cursor": cursor} if cursor else {})}).json()
            seen += [j["id"] for j in body["jobs"]]
            sizes.append(len(body["jobs"]))
            cursor = body["nextCursor"]
            if cursor is None:
                break
            assert cursor == str(seen[-1])  # no scan cap reached here: the cursor is the last job shown
            add(next_id)
            add(next_id + 1)
            next_id += 2
    assert len(seen) == len(set(seen))
    assert seen == (before if newest_first else matching())
    assert len(sizes) > 3 and max(sizes) <= 6 and min(sizes[:-1]) >= 1


def test_two_filters_scan_at_most_scan_entries_per_page(r: redis.Redis, keys: Keys) -> None:
    """Two Open jobs of requester A, whose other 58 jobs are Finalized, among 60 Open jobs of B: each
    page scans at most `scan_entries` entries of the smaller index (A's) and ends there with the last
    scanned id as nextCursor, even empty; `total` is null since counting would scan more; the pages
    together are exactly the matches."""
    for job_id in range(1, 121):
        mine = job_id in (100, 120)
        status = "Open" if mine or job_id % 2 else "Finalized"
        _commit(r, keys, job_id, status, REQUESTER_A if mine or not job_id % 2 else REQUESTER_B)
    assert (r.zcard(keys.jobs_by_status("Open")), r.zcard(keys.jobs_by_requester(REQUESTER_A))) == (62, 60)
    reader = IndexerReader(r, keys)
    with TestClient(create_app(reader, scan_entries=25)) as api:
        r.config_resetstat()
        pages = _follow(api, status="open", requester=REQUESTER_A, limit=5)
        calls, _ = _stats(r)
        assert [[j["id"] for j in p["jobs"]] for p in pages] == [[120, 100], [], []]
        assert [p["nextCursor"] for p in pages] == ["72", "22", None]  # 120 down to 72: 25 entries of A's index
        assert all(p["total"] is None for p in pages)
        assert calls["hgetall"] == 2  # only the matches' hashes are read
        assert calls["zmscore"] == 3 and calls["zrevrange"] + calls["zrevrangebyscore"] == 5  # 3 chunks, 2 peeks
        pages = _follow(api, status="open", requester=REQUESTER_A, limit=1, newest_first="false")
        assert [[j["id"] for j in p["jobs"]] for p in pages] == [[], [100], [120]]
        assert [p["nextCursor"] for p in pages] == ["50", "100", None]
        # within the cap, total is exact and an offset works; an offset beyond the cap is a 422
        with_room = api.get("/jobs", params={"status": "finalized", "provider": PROVIDER_1}).json()
        assert (with_room["total"], with_room["jobs"], with_room["nextCursor"]) == (0, [], None)
        assert [j["id"] for j in api.get("/jobs", params={"status": "open", "requester": REQUESTER_A,
                                                          "offset": 1}).json()["jobs"]] == [100]
        response = api.get("/jobs", params={"status": "open", "requester": REQUESTER_A, "offset": 3})
        assert response.status_code == 422 and "page with cursor" in response.json()["detail"]
    with TestClient(create_app(reader)) as api:  # the default cap (10,000) covers this index whole
        page = api.get("/jobs", params={"status": "open", "requester": REQUESTER_A}).json()
        assert (page["total"], [j["id"] for j in page["jobs"]], page["nextCursor"]) == (2, [120, 100], None)


def test_several_filters_match_the_intersection_exactly(r: redis.Redis, keys: Keys) -> None:
    """Random jobs; every combination of two or three filters, limits, orders and scan caps: the
    pages followed by cursor are the intersection of the indexes, in order, each job once; `total`
    is exact whenever it is given."""
    rng = random.Random(11)
    statuses = ["Open", "Claimed", "Finalized"]
    for job_id in range(1, 201):
        status = rng.choice(statuses)
        provider = None if status == "Open" else rng.choice([PROVIDER_1, PROVIDER_2])
        write_job(r, keys, job_id, status, rng.choice([REQUESTER_A, REQUESTER_B]), provider, TOKEN)
        if rng.random() < 0.1:  # a provider that timed out on it stays in its index
            r.zadd(keys.jobs_by_provider(PROVIDER_1), {str(job_id): job_id})
    reader = IndexerReader(r, keys)

    def members(key: str) -> set[int]:
        return {int(m) for m in r.zrange(key, 0, -1)}

    combos = [
        {"status": "claimed", "requester": REQUESTER_A},
        {"requester": REQUESTER_B, "provider": PROVIDER_1},
        {"status": "finalized", "provider": PROVIDER_2},
        {"status": "claimed", "requester": REQUESTER_B, "provider": PROVIDER_1},
    ]
    for filters in combos:
        want = members(keys.jobs_all)
        if "status" in filters:
            want &= members(keys.jobs_by_status(filters["status"].capitalize()))
        if "requester" in filters:
            want &= members(keys.jobs_by_requester(filters["requester"]))
        if "provider" in filters:
            want &= members(keys.jobs_by_provider(filters["provider"]))
        for newest_first in (True, False):
            for limit, max_scan in ((1, 1), (3, 7), (4, 50), (1000, 10_000)):
                seen: list[int] = []
                cursor = None
                while True:
                    page = reader.job_page(**filters, limit=limit, newest_first=newest_first, cursor=cursor,
                                           max_scan=max_scan)
                    assert len(page.jobs) <= limit
                    assert page.total in (None, len(want))
                    seen += [j.id for j in page.jobs]
                    cursor = page.next_cursor
                    if cursor is None:
                        break
                assert seen == sorted(want, reverse=newest_first), (filters, newest_first, limit, max_scan)
            offset_page = reader.job_page(**filters, limit=3, offset=2, newest_first=newest_first, max_scan=10_000)
            assert [j.id for j in offset_page.jobs] == sorted(want, reverse=newest_first)[2:5]
            assert offset_page.total == len(want)


class _CommitsDuringTheRead:
    """A client that lets the indexer commit (a job added, the cursor moved) right after the first
    batch of hashes a page reads: the page starts over and shows the new state whole."""

    def __init__(self, r: redis.Redis, keys: Keys) -> None:
        self._r, self._keys, self.committed = r, keys, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._r, name)

    def pipeline(self, transaction: bool = True) -> Any:
        pipe = self._r.pipeline(transaction=transaction)
        if transaction or self.committed:
            return pipe
        execute = pipe.execute

        def then_commit(*args: Any, **kwargs: Any) -> Any:
            found = execute(*args, **kwargs)
            if not self.committed:
                self.committed = True
                _commit(self._r, self._keys, 6, "Open", REQUESTER_B)
            return found

        pipe.execute = then_commit  # type: ignore[method-assign]
        return pipe


def test_a_page_read_in_chunks_is_as_of_one_cursor(r: redis.Redis, sample: Keys) -> None:
    client = _CommitsDuringTheRead(r, sample)
    page = IndexerReader(client, sample).job_page(limit=5)  # type: ignore[arg-type]
    assert client.committed and (page.total, [j.id for j in page.jobs], page.next_cursor) == (6, [6, 5, 4, 3, 2], "2")


@pytest.mark.parametrize(
    ("query_string", "says"),
    [
        ("limit=abc", "valid integer"),
        ("limit=1.5", "valid integer"),
        ("limit=", "valid integer"),
        ("limit=0", "greater than or equal to 1"),
        ("limit=-5", "greater than or equal to 1"),
        ("limit=1001", "less than or equal to 1000"),
        (f"limit={10**40}", "less than or equal to 1000"),
        ("offset=-1", "greater than or equal to 0"),
        (f"offset={2**53}", "less than or equal to"),
        ("offset=x", "valid integer"),
        ("cursor=-3", "cursor must be a page's nextCursor"),
        ("cursor=" + "9" * 40, "cursor must be a page's nextCursor"),
    ],
)
def test_bad_page_parameters_are_422_naming_the_parameter(reader: IndexerReader, sample: Keys, query_string: str,
                                                          says: str) -> None:
    with TestClient(create_app(reader)) as api:
        for path in ("/jobs", "/providers") if query_string.startswith(("limit", "cursor")) else ("/jobs",):
            response = api.get(f"{path}?{query_string}")
            assert response.status_code == 422, (path, response.text)
            assert says in response.text, (path, response.text)
            if not query_string.startswith("cursor"):
                assert response.json()["detail"][0]["loc"] == ["query", query_string.partition("=")[0]]


def test_the_reader_refuses_bad_pages_with_one_line(reader: IndexerReader, sample: Keys) -> None:
    for kwargs, says in (({"limit": 0}, "limit must be from 1 to 1000, not 0"), ({"limit": 10**6}, "not 1000000"),
                         ({"max_scan": 0}, "max_scan must be 1 or more")):
        with pytest.raises(QueryError, match=says):
            reader.job_page(**kwargs)
    with pytest.raises(QueryError, match="limit must be from 1 to 1000"):
        reader.provider_page(limit=1001)
