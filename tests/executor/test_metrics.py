"""executor/metrics.py: counters shared through Redis by every process of an executor, served as
Prometheus text; scraped over HTTP and parsed with prometheus_client's parser (real redis-server)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from depin.keys import ExecKeys, broker_prefix
from depinctl.procs import free_port
from executor import metrics
from executor.execute import Durations, Outcome
from tests.indexer.services import RedisServer

ADDRESS = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


class FakeRuntime:
    """What executor.metrics reads of a Runtime: the state Redis, the executor's keys, its active jobs."""

    def __init__(self, client: redis.Redis) -> None:
        self.state = client
        self.xkeys = ExecKeys(31337, "0x" + "ab" * 20, "provider", ADDRESS)

    def active_count(self) -> int:
        return int(self.state.zcard(self.xkeys.active))


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[FakeRuntime]:
    server = RedisServer(tmp_path / "redis")
    try:
        yield FakeRuntime(server.client(1))
    finally:
        server.stop()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(url, timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_counts_from_any_process_are_served_and_move(rt: FakeRuntime, caplog: pytest.LogCaptureFixture) -> None:
    compute = broker_prefix(rt.xkeys.prefix) + "compute"
    port = free_port()
    server = metrics.serve(rt, f"127.0.0.1:{port}", {compute: "compute"})
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        before = scrape(url)
        assert before[("depin_executor_jobs_claimed_total", ())] == 0
        assert before[("depin_executor_container_run_seconds_count", ())] == 0
        assert before[("depin_executor_queue_depth", (("queue", "compute"),))] == 0

        metrics.count(rt, "jobs_claimed")
        metrics.count(rt, "jobs_claimed")
        result = Outcome(kind="result", durations=Durations(run=1.7))
        metrics.outcome(rt, result)
        metrics.submitted(rt, "result")
        metrics.submitted(rt, "failure", 4)
        metrics.count(rt, "court_actions", action="reveal")
        rt.state.rpush(compute, "task-1", "task-2", "task-3")
        rt.state.zadd(rt.xkeys.active, {"7": 1})
        # the SDK's transactor logs a fee bump (at INFO, the executor's default level): a transaction retry
        caplog.set_level(logging.INFO, logger="depin.transactions")
        metrics.install(rt)
        metrics.install(rt)  # idempotent: one count per re-send
        logging.getLogger("depin.transactions").info("re-broadcast %s nonce=%d maxFeePerGas=%d tip=%d tx=%s", "claim", 3, 10, 2, "0x1")

        after = scrape(url)
        assert after[("depin_executor_jobs_claimed_total", ())] == 2
        assert after[("depin_executor_jobs_run_total", (("kind", "result"),))] == 1
        assert after[("depin_executor_jobs_submitted_total", (("kind", "failure"),))] == 1
        assert after[("depin_executor_jobs_failed_total", (("code", "4"),))] == 1
        assert after[("depin_executor_container_run_seconds_count", ())] == 1
        assert after[("depin_executor_container_run_seconds_sum", ())] == pytest.approx(1.7)
        assert after[("depin_executor_container_run_seconds_bucket", (("le", "1.0"),))] == 0
        assert after[("depin_executor_container_run_seconds_bucket", (("le", "2.5"),))] == 1
        assert after[("depin_executor_court_actions_total", (("action", "reveal"),))] == 1
        assert after[("depin_executor_transaction_retries_total", (("reason", "fee_bump"),))] == 1
        assert after[("depin_executor_queue_depth", (("queue", "compute"),))] == 3
        assert after[("depin_executor_active_jobs", ())] == 1
        assert requests.get(f"http://127.0.0.1:{port}/other", timeout=5).status_code == 404
    finally:
        server.shutdown()
        for f in list(logging.getLogger("depin.transactions").filters):
            logging.getLogger("depin.transactions").removeFilter(f)
        metrics._installed.clear()


def test_counting_never_raises_when_redis_is_gone(rt: FakeRuntime) -> None:
    rt.state = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    metrics.count(rt, "jobs_claimed")  # logged at debug, not raised: metrics never break the work
    metrics.observe(rt, "container_run_seconds", 1.0)
