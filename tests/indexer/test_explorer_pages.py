"""Every explorer page over a real index: the session's populated chain (every transition type,
the court's outcomes, 60 bulk jobs) indexed into a fresh Redis; no page may fail (no 5xx), each job
page's timeline is the job's events in the stream, and the tokens match the totals."""

from __future__ import annotations

import json
import re
import time

from fastapi.testclient import TestClient

from depin.chain import RpcClient
from indexer.api import create_app
from indexer.query import IndexerReader
from indexer.web.views import BlockClock

from .services import ChainEnv, stream_entries


def test_every_page_renders_and_matches_the_index(populated_env: ChainEnv) -> None:
    env = populated_env
    env.indexer().sync_once()
    r, keys = env.client(0), env.keys
    reader = IndexerReader(r, keys)
    clock = BlockClock(RpcClient.from_url(env.anvil.url).get_blocks)
    by_job: dict[str, list[tuple[str, str, str]]] = {}
    for e in stream_entries(r, keys):
        job = json.loads(e["args"]).get("jobId")
        if job is not None:
            by_job.setdefault(job, []).append((e["event"], e["block"], e["tx"]))
    took: dict[str, float] = {}
    with TestClient(create_app(reader, clock=clock)) as client:
        started = time.perf_counter()
        overview = client.get("/")
        took["overview"] = time.perf_counter() - started
        assert overview.status_code == 200
        totals = reader.totals()
        assert f'id="jobs-total">{totals.jobs}<' in overview.text
        job_ids = [int(j) for j in r.zrange(keys.jobs_all, 0, -1)]
        assert len(job_ids) == totals.jobs > 60
        started = time.perf_counter()
        for job_id in job_ids:
            page = client.get(f"/job/{job_id}")
            assert page.status_code == 200, (job_id, page.text[-500:])
            rows = re.findall(r'<tr data-event="(\w+)" data-block="(\d+)" data-tx="(0x[0-9a-f]+)"', page.text)
            assert rows == by_job[str(job_id)], job_id
            assert "UTC" in page.text  # block times from the node
            assert 'id="court-note"' not in page.text  # every case is in the court the index follows
        took["job page (mean)"] = (time.perf_counter() - started) / len(job_ids)
        parties = {p.address for p in reader.list_providers()}
        requesters = {json.loads(e["args"])["requester"] for e in stream_entries(r, keys) if e["event"] == "JobPosted"}
        for address in parties:
            assert client.get(f"/provider/{address}").status_code == 200
            assert client.get(f"/search?q={address}", follow_redirects=False).headers["location"] == f"/provider/{address}"
        for address in requesters - parties:
            assert client.get(f"/requester/{address}").status_code == 200
        for event, _block, tx in by_job[str(job_ids[0])]:
            assert event in client.get(f"/tx/{tx}").text
        assert client.get("/metrics").status_code == 200
    print("explorer render times over the populated index: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in took.items()))
