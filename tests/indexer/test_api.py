"""The HTTP JSON API (indexer/api.py) through FastAPI's TestClient, over a real redis-server."""

from __future__ import annotations

import json
import re

import pytest
import redis
from fastapi.testclient import TestClient

from depin.keys import Keys
from indexer.api import create_app
from indexer.query import IndexerReader
from tests.indexer.test_query import (  # noqa: F401  (fixtures)
    MARKET,
    PROVIDER_1,
    PROVIDER_2,
    REQUESTER_A,
    REQUESTER_B,
    STAKING,
    TOKEN,
    free_port,
    keys,
    r,
    reader,
    redis_url,
    sample,
)


@pytest.fixture
def client(reader: IndexerReader, sample: Keys) -> TestClient:
    with TestClient(create_app(reader, chain_head=lambda: 125)) as c:
        yield c


def test_jobs_list_filters_and_pages(client: TestClient) -> None:
    """GET /jobs takes status (lower case), requester, provider, limit and offset; `total` counts all pages."""
    body = client.get("/jobs").json()
    assert body["total"] == 5 and [j["id"] for j in body["jobs"]] == [5, 4, 3, 2, 1]
    body = client.get("/jobs", params={"status": "open"}).json()
    assert [j["id"] for j in body["jobs"]] == [4, 2]
    body = client.get("/jobs", params={"requester": REQUESTER_A.lower(), "limit": 2, "offset": 1}).json()
    assert (body["total"], [j["id"] for j in body["jobs"]], body["limit"], body["offset"]) == (3, [2, 1], 2, 1)
    body = client.get("/jobs", params={"provider": PROVIDER_1, "newest_first": "false"}).json()
    assert [j["id"] for j in body["jobs"]] == [1, 3]
    assert body["nextCursor"] is None


@pytest.mark.parametrize(
    ("params", "pages"),
    [
        ({}, [[5, 4], [3, 2], [1]]),
        ({"newest_first": "false"}, [[1, 2], [3, 4], [5]]),
        ({"requester": REQUESTER_A}, [[5, 2], [1]]),
        ({"status": "open", "requester": REQUESTER_A}, [[2]]),
    ],
)
def test_jobs_pages_follow_next_cursor(client: TestClient, params: dict[str, str], pages: list[list[int]]) -> None:
    """`nextCursor` is the cursor of the next page, null on the last one (also with several filters)."""
    seen, cursor = [], None
    while True:
        body = client.get("/jobs", params={**params, "limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen.append([j["id"] for j in body["jobs"]])
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == pages


def test_providers_page_by_cursor(client: TestClient) -> None:
    first = client.get("/providers", params={"limit": 1}).json()
    assert (first["total"], first["limit"], [p["address"] for p in first["providers"]]) == (2, 1, [PROVIDER_1])
    second = client.get("/providers", params={"limit": 1, "cursor": first["nextCursor"]}).json()
    assert len(second["providers"]) == 1 and second["providers"][0]["address"] != PROVIDER_1
    assert second["nextCursor"] is None
    assert client.get("/providers", params={"cursor": second["nextCursor"] or "999"}).json()["providers"] == []


def test_job_fields_are_camel_case_with_string_amounts(client: TestClient) -> None:
    job = client.get("/jobs/1").json()
    assert job["status"] == "Finalized" and job["requester"] == REQUESTER_A and job["provider"] == PROVIDER_1
    assert job["reward"] == str(10 * TOKEN) and job["specValid"] is True and job["spec"]["cpus"] == 1
    assert job["history"][0]["event"] == "JobPosted" and job["extra"]["resultURI"] == "ipfs://result"


def test_unknown_ids_are_404_with_a_json_error(client: TestClient) -> None:
    response = client.get("/jobs/99")
    assert response.status_code == 404 and response.json() == {"detail": "job 99 not found in the index"}
    response = client.get(f"/providers/{STAKING}")
    assert response.status_code == 404 and "not found" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/jobs?status=bogus",
        "/jobs?requester=0x1234",
        "/jobs?provider=notanaddress",
        "/jobs?limit=0",
        "/jobs?limit=100000",
        "/jobs?offset=-1",
        "/jobs?cursor=abc",
        "/jobs?cursor=%C2%B2",  # "²": str.isdigit() says yes, int() refuses it (a 500 before)
        "/jobs?cursor=%D9%A3",  # an Arabic-Indic 3: was read as cursor 3
        "/providers?cursor=%C2%B2",
        "/jobs?cursor=3&offset=1",
        "/providers?limit=0",
        "/providers?cursor=-1",
        "/jobs/-1",
        "/jobs/abc",
        f"/jobs/{2**256}",
        "/providers/0x1234",
    ],
)
def test_bad_parameters_are_422(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()


def test_providers_totals_status_healthz(client: TestClient) -> None:
    page = client.get("/providers").json()
    assert page["total"] == len(page["providers"]) and page["nextCursor"] is None
    providers = page["providers"]
    assert [p["address"] for p in providers][:1] == [PROVIDER_1] and providers[0]["staked"] == str(500 * TOKEN)
    assert client.get(f"/providers/{PROVIDER_1.lower()}").json()["endpoint"] == "https://p1.example"
    totals = client.get("/totals").json()
    assert totals["jobs"] == 5 and totals["byStatus"]["Open"] == 2 and totals["paid"] == str(10 * TOKEN)
    status = client.get("/status").json()
    assert (status["head"], status["headSource"], status["cursor"], status["lag"]) == (125, "rpc", 118, 7)
    assert status["market"] == MARKET
    assert client.get("/healthz").json() == {"ok": True, "redis": True}


def test_openapi_document(client: TestClient) -> None:
    """/openapi.json is a valid OpenAPI 3 document naming every route, with typed responses."""
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/jobs", "/jobs/{job_id}", "/providers", "/providers/{address}", "/totals", "/status", "/healthz",
    }  # the explorer's pages and /metrics are not part of the JSON API's document
    schemas = doc["components"]["schemas"]
    assert {"JobRecord", "JobPage", "ProviderRecord", "ProviderPage", "MarketTotals", "IndexerStatus", "ErrorResponse"} <= {
        name.removesuffix("-Output") for name in schemas
    }
    job_get = doc["paths"]["/jobs/{job_id}"]["get"]["responses"]
    assert set(job_get) >= {"200", "404", "422", "503"}
    job_schema = schemas.get("JobRecord-Output", schemas.get("JobRecord"))
    assert job_schema["properties"]["reward"]["anyOf"][0]["type"] == "string"  # amounts are strings in JSON
    status_param = next(p for p in doc["paths"]["/jobs"]["get"]["parameters"] if p["name"] == "status")
    assert status_param["in"] == "query"


def test_redis_down_is_503(keys: Keys) -> None:
    """With nothing listening at the Redis address, data routes answer 503 with a JSON error."""
    down = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=None)
    with TestClient(create_app(IndexerReader(down, keys))) as c:
        for path in ("/jobs", "/healthz", "/status"):
            response = c.get(path)
            assert response.status_code == 503 and response.json()["detail"].startswith("Redis is unreachable")


# ---------------------------------------------------------------------------------------- the explorer's pages


def _add_stream(r: redis.Redis, keys: Keys, event: str, job_id: int, block: int, tx: str, **args: str) -> str:
    return r.xadd(keys.events, {"kind": "event", "event": event, "block": str(block), "blockHash": "0x" + "ab" * 32,
                                "tx": tx, "logIndex": "0", "args": json.dumps({"jobId": str(job_id), **args}, separators=(",", ":"))})


def test_overview_page_shows_counts_tokens_jobs_and_feed(client: TestClient, r: redis.Redis, sample: Keys) -> None:
    _add_stream(r, sample, "JobPosted", 1, 11, "0x" + "11" * 32)
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert 'id="count-open">2<' in html and 'id="count-finalized">1<' in html and 'id="jobs-total">5<' in html
    assert 'id="tok-paid">10 DPC<' in html  # totals.paid of the sample
    assert 'id="job-row-5"' in html and 'href="/job/1"' in html
    assert "JobPosted" in html and 'data-page="overview"' in html and "<svg" in html
    assert '<link rel="stylesheet" href="/static/explorer.css">' in html
    assert client.get("/static/explorer.css").status_code == 200


def test_job_page_has_spec_terms_timeline_result_and_payout(client: TestClient, r: redis.Redis, sample: Keys) -> None:
    _add_stream(r, sample, "JobPosted", 1, 11, "0x" + "11" * 32)
    _add_stream(r, sample, "JobPosted", 2, 12, "0x" + "12" * 32)  # another job: not on job 1's page
    _add_stream(r, sample, "JobClaimed", 1, 21, "0x" + "22" * 32, provider=PROVIDER_1)
    html = client.get("/job/1").text
    assert 'id="job-status" class="badge status-finalized">Finalized<' in html
    rows = re.findall(r'<tr data-event="(\w+)" data-block="(\d+)" data-tx="(0x[0-9a-f]+)"', html)
    assert rows == [("JobPosted", "11", "0x" + "11" * 32), ("JobClaimed", "21", "0x" + "22" * 32)]
    assert "ipfs://result" in html and "0x" + "cd" * 32 in html  # result URI and commitment
    assert 'id="payout"' in html and "provider payout" in html
    assert "&#34;cpus&#34;: 1" in html or '"cpus": 1' in html  # the pretty spec, escaped


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/job/99", 404, "job 99 is not in the index"),
        ("/job/abc", 400, "not a job id"),
        ("/job/-1", 400, "not a job id"),
        (f"/job/{2**256}", 400, "larger than 2^256-1"),
        (f"/job/{10**100}", 400, "larger than 2^256-1"),
        ("/provider/0x1234", 400, "not an address"),
        (f"/provider/{REQUESTER_B}", 404, "no provider"),
        ("/requester/nonsense", 400, "not an address"),
        (f"/requester/{PROVIDER_2}", 404, "no jobs posted by"),
        ("/tx/0x12", 400, "not a transaction hash"),
        ("/tx/0x" + "99" * 32, 404, "no event of transaction"),
        ("/search?q=hello", 400, "neither a job id"),
        ("/search?q=0x" + "77" * 20, 404, "is not a provider, requester or verifier"),
        ("/explorer/stream?page=bogus", 400, "unknown page"),
    ],
)
def test_bad_input_gives_a_clear_4xx_page(client: TestClient, sample: Keys, path: str, status: int, says: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html") and says in response.text


def test_provider_and_requester_pages_and_search(client: TestClient, r: redis.Redis, sample: Keys) -> None:
    html = client.get(f"/provider/{PROVIDER_1.lower()}").text
    assert f'id="p-staked" data-base="{500 * TOKEN}"' in html and 'id="p-completed">1<' in html
    assert 'id="p-earned">10 DPC<' in html and "<svg" in html  # job 1's payout, charted
    html = client.get(f"/requester/{REQUESTER_A}").text
    assert "jobs posted</th><td class=\"num\">3<" in html
    assert client.get("/search", params={"q": "3"}, follow_redirects=False).headers["location"] == "/job/3"
    assert client.get("/search", params={"q": PROVIDER_1.lower()}, follow_redirects=False).headers["location"] == f"/provider/{PROVIDER_1}"
    assert client.get("/search", params={"q": REQUESTER_B}, follow_redirects=False).headers["location"] == f"/requester/{REQUESTER_B}"
    tx = "0x" + "ef" * 32
    _add_stream(r, sample, "JobClaimed", 3, 23, tx, provider=PROVIDER_1)
    assert client.get("/search", params={"q": tx.upper().replace("0X", "0x")}, follow_redirects=False).headers["location"] == f"/tx/{tx}"
    assert 'href="/job/3"' in client.get(f"/tx/{tx}").text


def test_stream_sends_new_entries_with_rerendered_fragments(client: TestClient, r: redis.Redis, sample: Keys) -> None:
    """/explorer/stream: after the page's last entry id, one `update` per batch of new entries, with
    the page's fragments re-rendered (the job page's status moves without a reload)."""
    first = _add_stream(r, sample, "JobPosted", 4, 14, "0x" + "14" * 32)
    r.hset(sample.job(4), "status", "Claimed")
    _add_stream(r, sample, "JobClaimed", 4, 24, "0x" + "24" * 32, provider=PROVIDER_2)
    with client.stream("GET", "/explorer/stream", params={"after": first, "page": "job", "key": "4"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        message: dict[str, str] = {}
        for line in response.iter_lines():
            if line.startswith(("id:", "event:", "data:")):
                name, _, value = line.partition(":")
                message[name] = value.strip()
            if "data" in message:
                break
    assert message["event"] == "update"
    payload = json.loads(message["data"])
    assert payload["last"] == message["id"] != first
    assert 'status-claimed">Claimed<' in payload["fragments"]["job-main"] and "JobClaimed" in payload["fragments"]["job-main"]


def test_metrics_are_prometheus_text_from_the_index(client: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(response.text) for s in f.samples}
    assert samples[("depin_indexer_head_lag_blocks", ())] == 7  # head 125 (chain_head), cursor 118
    assert samples[("depin_market_jobs", (("status", "Open"),))] == 2
    assert samples[("depin_market_tokens", (("kind", "paid"),))] == 10 * TOKEN


def test_job_page_shows_the_court_case_and_seat_reveals(client: TestClient, r: redis.Redis, sample: Keys) -> None:
    """A disputed job's audit: the case fields and one row per seat, its digest once revealed."""
    seats = {
        "1.1": {"verifier": PROVIDER_2, "bond": str(5 * TOKEN), "state": "Revealed", "digest": "0x" + "aa" * 32, "paid": "0"},
        "1.2": {"verifier": REQUESTER_B, "bond": str(5 * TOKEN), "state": "Committed", "commitment": "0x" + "bb" * 32},
    }
    r.hset(sample.job(5), mapping={"court": STAKING, "casePhase": "Active", "caseRound": "1", "roundK": "3",
                                   "seats": json.dumps(seats), "tallies": json.dumps([{"round": 1, "agree": 1}])})
    html = client.get("/job/5").text
    assert 'id="court"' in html and "Active" in html and 'id="seats"' in html
    rows = re.findall(r"<tr><td>(1\.\d)</td>.*?<code>([^<]*)</code>", html, re.DOTALL)
    assert rows == [("1.1", "0xaaaa…aaaa"), ("1.2", "not revealed")]
    assert f'href="/verifier/{PROVIDER_2}"' in html and "Tallies" in html
    # the requester page sums what the requester's jobs cost
    page = client.get(f"/requester/{REQUESTER_A}").text
    assert 'id="r-spent">' in page and "Disputed 1" in page



def test_stream_skips_entries_that_do_not_concern_the_page(client: TestClient, r: redis.Redis, sample: Keys) -> None:
    """A job page is re-rendered only for its job's events (others pass as comments); a provider
    page also for events of its jobs that do not name it (JobFinalized carries the job id only)."""
    first = _add_stream(r, sample, "JobPosted", 2, 12, "0x" + "12" * 32)
    for page, key in (("job", "3"), ("provider", PROVIDER_1)):
        other = _add_stream(r, sample, "JobPosted", 4, 14, "0x" + "14" * 32)  # not job 3, not provider 1's
        lines: list[str] = []
        mine = ""
        with client.stream("GET", "/explorer/stream", params={"after": first, "page": page, "key": key}) as response:
            for line in response.iter_lines():
                lines.append(line)
                if line == ": nothing for this page":
                    assert lines[-2] == f"id: {other}" and not any(x.startswith("event:") for x in lines)
                    mine = _add_stream(r, sample, "JobFinalized", 3, 33, "0x" + "33" * 32, payout=str(3 * TOKEN))
                if line.startswith("data:"):
                    break
        payload = json.loads(lines[-1].removeprefix("data:"))
        assert mine and payload["last"] == mine and payload["fragments"], (page, lines)
        first = mine
