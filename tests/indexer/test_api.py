"""The HTTP JSON API (indexer/api.py) through FastAPI's TestClient, over a real redis-server."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from depin.keys import Keys
from indexer.api import create_app
from indexer.query import IndexerReader
from tests.indexer.test_query import (  # noqa: F401  (fixtures)
    MARKET,
    PROVIDER_1,
    REQUESTER_A,
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
        "/jobs/-1",
        "/jobs/abc",
        "/providers/0x1234",
    ],
)
def test_bad_parameters_are_422(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()


def test_providers_totals_status_healthz(client: TestClient) -> None:
    providers = client.get("/providers").json()
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
    }
    schemas = doc["components"]["schemas"]
    assert {"JobRecord", "JobPage", "ProviderRecord", "MarketTotals", "IndexerStatus", "ErrorResponse"} <= {
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
