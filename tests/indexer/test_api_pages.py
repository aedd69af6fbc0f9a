"""Bounded HTTP API pages on a real index: /jobs of jobs with big specs and /providers end a page at
the byte budget and continue with `nextCursor`, every record once, in order."""

from __future__ import annotations

from fastapi.testclient import TestClient

from depin.spec import canonical_json
from indexer.api import create_app
from indexer.query import IndexerReader

from .services import ChainEnv

JOBS = 12
SPEC_CHARS = 15_000  # a valid spec (under MAX_SPEC_BYTES): the job hash holds it twice (JSON and raw hex)
BUDGET = 40_000  # about two such jobs


def _big_spec(n: int) -> bytes:
    return canonical_json({
        "command": ["sh", "-c", chr(97 + n % 26) * SPEC_CHARS],
        "image": "depin/checksum@sha256:" + "ab" * 32,
        "inputs": [],
        "resources": {"cpus": 1, "max_runtime": 60, "memory_mb": 64},
        "v": 1,
    })


def _follow(api: TestClient, path: str, items: str, **params: object) -> tuple[list[list[dict]], list[int]]:
    pages, sizes, cursor = [], [], None
    while True:
        response = api.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body[items])
        sizes.append(len(response.content))
        cursor = body["nextCursor"]
        if cursor is None:
            return pages, sizes


def test_pages_stay_within_the_byte_budget_and_follow_the_cursor(chain_env: ChainEnv) -> None:
    env, m = chain_env, chain_env.market
    requester = m.accounts[1]
    m.fund(requester)
    providers = m.accounts[2:5]
    for p in providers:
        m.fund(p)
        m.register(p)
    ids = [m.post(requester, spec=_big_spec(n)) for n in range(JOBS)]
    env.indexer().sync_once()
    reader = IndexerReader(env.client(0), env.keys)
    with TestClient(create_app(reader, page_bytes=10**9)) as api:
        whole = api.get("/jobs", params={"limit": 1000})
        assert len(whole.json()["jobs"]) == JOBS and len(whole.content) > 4 * BUDGET  # what one page was
    with TestClient(create_app(reader, page_bytes=BUDGET)) as api:
        pages, sizes = _follow(api, "/jobs", "jobs", limit=1000)
        assert [j["id"] for page in pages for j in page] == sorted(ids, reverse=True)
        assert len(pages) >= 4 and all(j["spec"]["command"][2] for page in pages for j in page)
        largest = max(len(whole.content) // JOBS, 1)
        assert max(sizes) <= BUDGET + 2 * largest, sizes  # JSON is a little larger than the hash bytes
        pages, _ = _follow(api, "/jobs", "jobs", limit=1000, newest_first="false")
        assert [j["id"] for page in pages for j in page] == sorted(ids)
        # offset paging still works: a page cut short continues at offset + its length
        first = api.get("/jobs", params={"limit": 1000}).json()
        rest = api.get("/jobs", params={"limit": 1000, "offset": len(first["jobs"])}).json()
        assert rest["jobs"][0]["id"] == first["jobs"][-1]["id"] - 1
        pages, _ = _follow(api, "/providers", "providers", limit=2)
        assert [len(page) for page in pages] == [2, 1]
        assert [p["address"] for page in pages for p in page] == providers
        assert [p["id"] for page in pages for p in page] == sorted(p["id"] for page in pages for p in page)
