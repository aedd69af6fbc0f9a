"""Bounds on what callers choose (the audit's findings): a spec's nesting depth and size, string
event arguments, the jobs page offset, the explorer's stream count and id, the tx/job stream scans."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from depin.spec import MAX_SPEC_BYTES, MAX_SPEC_DEPTH
from indexer.api import create_app
from indexer.query import MAX_OFFSET, IndexerReader, QueryError
from indexer.reducer import MAX_STRING_BYTES, TRUNCATED_MARK, parse_stream_line
from indexer.web.app import STREAM_BATCH, STREAM_CLIENT_NAME, STREAM_CONNECTIONS, STREAM_RETRY_AFTER, _stream_id_ok
from indexer.web.views import _SCAN_PAGE, TX_SCAN
from tests.indexer.test_query import (  # noqa: F401  (fixtures)
    PROVIDER_1,
    keys,
    r,
    reader,
    redis_url,
    sample,
)

from .services import ChainEnv, stream_entries, wait_for


def _nested(depth: int) -> bytes:
    """Canonical JSON (RFC 8785) of an object whose arrays nest `depth` levels in all."""
    return b'{"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def _xrevrange_calls(r: redis.Redis) -> int:
    return int(r.info("commandstats").get("cmdstat_xrevrange", {}).get("calls", 0))


# ---------------------------------------------------------------------------------------- 1 and 5: specs, strings


def test_deep_or_oversized_specs_are_invalid_and_the_api_serves_them(chain_env: ChainEnv) -> None:
    """A canonical spec nested 300 deep was specValid 1 and made /jobs and /jobs/{id} answer 500
    (pydantic cannot serialize ~255 levels); one deeper than MAX_SPEC_DEPTH is now invalid. A spec
    longer than MAX_SPEC_BYTES is invalid and only its length is stored. Over-long result URIs and
    endpoints are stored cut, with a flag, in the hashes and in the stream entries."""
    m = chain_env.market
    requester, provider = m.accounts[1], m.accounts[2]
    m.fund(requester)
    m.fund(provider)
    long_endpoint = "http://p.example/" + "e" * (2 * MAX_STRING_BYTES)
    m.register(provider, endpoint=long_endpoint)
    deep = m.post(requester, spec=_nested(300))
    over = m.post(requester, spec=_nested(MAX_SPEC_DEPTH + 1))
    at_limit = m.post(requester, spec=_nested(MAX_SPEC_DEPTH))
    big_spec = b'{"a":"' + b"x" * MAX_SPEC_BYTES + b'"}'
    big = m.post(requester, spec=big_spec)
    done = m.post(requester, n=1)
    m.claim(provider, done)
    long_uri = "https://results.example/" + "é" * MAX_STRING_BYTES  # 2 bytes a character
    m.submit(provider, done, long_uri)
    chain_env.indexer().sync_once()

    client = chain_env.client()
    job = {j: client.hgetall(chain_env.keys.job(j)) for j in (deep, over, at_limit, big, done)}
    for j in (deep, over):
        assert job[j]["specValid"] == "0" and "specJson" not in job[j]
        assert f"nested deeper than {MAX_SPEC_DEPTH} levels" in job[j]["specError"]
    assert job[at_limit]["specValid"] == "1" and job[at_limit]["specJson"].encode() == _nested(MAX_SPEC_DEPTH)
    assert job[big]["specValid"] == "0" and f"the limit is {MAX_SPEC_BYTES}" in job[big]["specError"]
    assert "spec" not in job[big] and job[big]["specLength"] == str(len(big_spec))

    uri = job[done]["resultURI"]
    assert uri.endswith(TRUNCATED_MARK) and long_uri.startswith(uri.removesuffix(TRUNCATED_MARK))
    assert len(uri.removesuffix(TRUNCATED_MARK).encode()) <= MAX_STRING_BYTES and job[done]["resultURITruncated"] == "1"
    stored = client.hgetall(chain_env.keys.provider(provider))
    assert stored["endpoint"].endswith(TRUNCATED_MARK) and stored["endpointTruncated"] == "1"
    for entry in stream_entries(client, chain_env.keys):
        assert len(entry["args"].encode()) < 2 * MAX_STRING_BYTES, entry["event"]
        if entry["event"] in ("ResultSubmitted", "ProviderRegistered"):
            args = json.loads(entry["args"])
            name = "resultURI" if entry["event"] == "ResultSubmitted" else "endpoint"
            assert args[name].endswith(TRUNCATED_MARK) and args[name + "Truncated"] is True

    reader = IndexerReader(client, chain_env.keys)
    with TestClient(create_app(reader)) as api:
        for j in (deep, over, big):
            response = api.get(f"/jobs/{j}")
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["specValid"] is False and body["spec"] is None and body["extra"]["specError"]
        assert api.get(f"/jobs/{at_limit}").json()["spec"] == json.loads(_nested(MAX_SPEC_DEPTH))
        page = api.get("/jobs", params={"limit": 1000})
        assert page.status_code == 200 and {deep, over, big, done} <= {j["id"] for j in page.json()["jobs"]}
        assert api.get(f"/jobs/{done}").json()["extra"]["resultURITruncated"] == "1"
        assert "truncated in the index" in api.get(f"/job/{done}").text
        assert api.get(f"/job/{deep}").status_code == 200


def test_a_stored_spec_too_deep_to_serve_is_left_out_not_a_500(r: redis.Redis, sample: Any, reader: IndexerReader) -> None:
    """Defensive: a job indexed as valid before the depth limit (specJson 300 deep) is served with
    spec null and a note, by /jobs/{id} and by /jobs."""
    r.hset(sample.job(2), mapping={"specJson": _nested(300).decode(), "specValid": "1"})
    with TestClient(create_app(reader)) as api:
        response = api.get("/jobs/2")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["spec"] is None and f"deeper than {MAX_SPEC_DEPTH} levels" in body["specNote"]
        assert api.get("/jobs").status_code == 200
        assert api.get("/jobs/1").json()["specNote"] is None
        assert api.get("/job/2").status_code == 200


# ---------------------------------------------------------------------------------------- 2: offsets


def test_an_offset_beyond_the_bound_is_422_not_a_redis_error(sample: Any, reader: IndexerReader) -> None:
    with TestClient(create_app(reader)) as api:
        for offset in (2**63 - 1, 2**64, MAX_OFFSET + 1):
            response = api.get("/jobs", params={"offset": offset})
            assert response.status_code == 422, (offset, response.text)
        for params in ({"offset": MAX_OFFSET}, {"offset": MAX_OFFSET, "status": "open", "requester": PROVIDER_1}):
            response = api.get("/jobs", params=params)
            assert response.status_code == 200 and response.json()["jobs"] == [], response.text
    with pytest.raises(QueryError, match="offset must be at most"):
        reader.job_page(offset=2**63 - 1)


# ---------------------------------------------------------------------------------------- 3: streams


def _add_stream(r: redis.Redis, keys: Any, event: str, job_id: int, block: int, tx: str, log_index: int = 0) -> str:
    return r.xadd(keys.events, {"kind": "event", "event": event, "block": str(block), "blockHash": "0x" + "ab" * 32,
                                "tx": tx, "logIndex": str(log_index), "args": json.dumps({"jobId": str(job_id)}, separators=(",", ":"))})


def _next_update(lines: Iterator[str]) -> dict[str, Any]:
    """The next update message of a stream's `lines` (one iterator per response, kept: dropping
    an httpx line iterator closes the test client's response)."""
    for line in lines:
        if line.startswith("data:"):
            return json.loads(line.removeprefix("data:"))
    raise AssertionError("the stream ended")


def _stream_connections(r: redis.Redis) -> int:
    return sum(1 for c in r.client_list() if c.get("name") == STREAM_CLIENT_NAME)


def test_streams_share_one_bounded_client_and_one_too_many_is_503(r: redis.Redis, sample: Any, reader: IndexerReader) -> None:
    cap = STREAM_CONNECTIONS + 2  # more streams than the shared pool has connections
    _add_stream(r, sample, "JobPosted", 4, 14, "0x" + "14" * 32)
    app = create_app(reader, max_streams=cap)
    hub = app.state.stream_hub
    with TestClient(app) as api, contextlib.ExitStack() as streams:
        opened = []
        for _ in range(cap):
            response = streams.enter_context(api.stream("GET", "/explorer/stream", params={"after": "0-0", "page": "overview"}))
            assert response.status_code == 200
            lines = response.iter_lines()
            assert _next_update(lines)["fragments"]  # it has read the stream
            opened.append((response, lines))
        assert hub.active == cap
        assert 1 <= _stream_connections(r) <= STREAM_CONNECTIONS < cap
        refused = api.get("/explorer/stream", params={"page": "overview"})
        assert refused.status_code == 503 and refused.headers["retry-after"] == str(STREAM_RETRY_AFTER)
        assert f"at most {cap} live pages" in refused.text
        # one new entry: the shared watcher wakes every stream, each gets its update
        newest = _add_stream(r, sample, "JobClaimed", 4, 24, "0x" + "24" * 32)
        for _, lines in opened:
            assert _next_update(lines)["last"] == newest
        assert _stream_connections(r) <= STREAM_CONNECTIONS
        # a closed stream frees its slot
        opened.pop()[0].close()
        wait_for(lambda: hub.active == cap - 1, 10, "the closed stream's slot to be released")
        with api.stream("GET", "/explorer/stream", params={"after": "0-0", "page": "overview"}) as again:
            assert again.status_code == 200 and _next_update(again.iter_lines())["fragments"]
    assert hub.active == 0
    wait_for(lambda: _stream_connections(r) == 0, 10, "the shared client to close at shutdown")


def test_a_stream_far_behind_catches_up_in_one_render(r: redis.Redis, sample: Any, reader: IndexerReader) -> None:
    """An `after` several batches back (a bare request used to start at 0-0) costs one render at the
    newest entry, not one per 500 entries (found by review, stop 37: 20.9 s of CPU for one request
    at 50,000 entries, and 30 such streams made /healthz take seconds); with no `after`, a stream
    starts at the newest entry."""
    pipe = r.pipeline(transaction=False)
    for i in range(3 * STREAM_BATCH + 7):
        pipe.xadd(sample.events, {"kind": "event", "event": "JobPosted", "block": str(100 + i), "blockHash": "0x" + "ab" * 32,
                                  "tx": "0x" + "cd" * 32, "logIndex": "0", "args": json.dumps({"jobId": "4"})})
    pipe.execute()
    newest = r.xrevrange(sample.events, count=1)[0][0]
    with TestClient(create_app(reader)) as api:
        with api.stream("GET", "/explorer/stream", params={"after": "0-0", "page": "overview"}) as response:
            assert _next_update(response.iter_lines())["last"] == newest
        with api.stream("GET", "/explorer/stream", params={"page": "overview"}) as bare:
            lines = bare.iter_lines()
            assert next(lines) == "retry: 1000"
            later = _add_stream(r, sample, "JobClaimed", 4, 999, "0x" + "99" * 32)
            assert _next_update(lines)["last"] == later


@pytest.mark.parametrize("after", [str(2**64), "99999999999999999999999-1", "1-" + str(2**64), "١٢٣", "1-", "-1", "1-2-3", "0x10"])
def test_a_stream_id_redis_would_refuse_is_400(r: redis.Redis, sample: Any, reader: IndexerReader, after: str) -> None:
    with TestClient(create_app(reader)) as api:
        response = api.get("/explorer/stream", params={"after": after})
        assert response.status_code == 400 and "is not a stream entry id" in response.text


def test_stream_ids_redis_accepts_pass() -> None:
    for text in ("0", "0-0", "1712345678901-3", f"{2**64 - 1}-{2**64 - 1}"):
        assert _stream_id_ok(text), text


# ---------------------------------------------------------------------------------------- 4: bounded scans


def _fill(r: redis.Redis, keys: Any, count: int) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(count):
        pipe.xadd(keys.events, {"kind": "event", "event": "Deposited", "block": str(1000 + i // 10), "blockHash": "0x" + "ab" * 32,
                                "tx": "0x" + f"{i:064x}", "logIndex": "0", "args": '{"account":"0x00","amount":"1"}'})
    pipe.execute()


def test_an_unknown_tx_hash_reads_a_bounded_part_of_the_stream(r: redis.Redis, sample: Any, reader: IndexerReader) -> None:
    old_tx = "0x" + "0e" * 32
    _add_stream(r, sample, "JobPosted", 1, 11, old_tx)  # older than the bound
    _fill(r, sample, 2 * TX_SCAN + 10)
    with TestClient(create_app(reader)) as api:
        r.config_resetstat()
        started = time.monotonic()
        response = api.get("/tx/0x" + "99" * 32)
        elapsed = time.monotonic() - started
        assert response.status_code == 404 and f"among the latest {TX_SCAN} events" in response.text
        assert _xrevrange_calls(r) <= TX_SCAN // _SCAN_PAGE and elapsed < 5
        assert api.get(f"/tx/{old_tx}").status_code == 404  # beyond the bound: said so, not searched
        recent = "0x" + f"{2 * TX_SCAN:064x}"
        r.config_resetstat()
        assert api.get(f"/tx/{recent}").status_code == 200
        assert _xrevrange_calls(r) == 1  # found in the first page, and the block before it ends the search


def test_a_job_page_stops_at_the_jobs_first_event_and_fills_older_ones_from_history(
    r: redis.Redis, sample: Any, reader: IndexerReader
) -> None:
    _add_stream(r, sample, "JobPosted", 3, 13, "0x" + "11" * 32)  # job 3's history names this one first
    _fill(r, sample, 2 * TX_SCAN)
    _add_stream(r, sample, "JobClaimed", 3, 23, "0x" + "22" * 32, log_index=1)
    _add_stream(r, sample, "JobPosted", 1, 11, "0x" + "11" * 32)  # job 1: posted after the filler
    with TestClient(create_app(reader)) as api:
        r.config_resetstat()
        html = api.get("/job/1").text
        assert 'data-event="JobPosted"' in html and 'id="timeline-note"' not in html
        assert _xrevrange_calls(r) <= 2  # the page's last stream id, then one page of the scan
        r.config_resetstat()
        html = api.get("/job/3").text
        assert _xrevrange_calls(r) <= 1 + TX_SCAN // _SCAN_PAGE
        assert html.count('data-event="JobPosted"') == 1 and html.count('data-event="JobClaimed"') == 1  # posted: from history
        assert 'id="timeline-note"' in html and f"older than the latest {TX_SCAN}" in html


def test_stream_lines_of_capped_args_parse() -> None:
    """The stream line of a cut ResultSubmitted still parses as JSON args (the mark is plain text)."""
    from indexer.decode import Event
    from indexer.reducer import stream_line

    ev = Event("ResultSubmitted", "JobMarket", "0x" + "00" * 20, 5, "0x" + "ab" * 32, "0x" + "cd" * 32, 0,
               {"jobId": 1, "resultURI": "x" * 10 + TRUNCATED_MARK, "resultURITruncated": True})
    fields = parse_stream_line(stream_line(ev))
    assert json.loads(fields["args"])["resultURITruncated"] is True
