"""Prometheus metrics of the indexer (``prometheus_client``), in two places:

- the indexer process (``python -m indexer --metrics-port N``, ``depin indexer run --metrics-port N``,
  or ``DEPIN_METRICS_PORT``) counts what only it sees: events applied and retracted, reorgs, the
  latency of its Redis commits, and its lag behind the head it polled (:data:`REGISTRY`, served by
  :func:`serve_metrics`);
- the HTTP API / explorer (``/metrics`` of ``depin indexer api``, :func:`add_index_metrics`) reports
  what the index in Redis says: head and cursor, lag, event rate, jobs by status, token totals. Any
  number of API processes can serve it.

Names follow the Prometheus conventions: ``depin_indexer_``/``depin_market_`` prefixes, ``_total``
counters, base units (``_seconds``; token amounts in the token's base unit, 1e-18 token). The
README's "Metrics" table lists every metric.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from fastapi import FastAPI

    from indexer.query import IndexerReader

log = logging.getLogger("indexer.metrics")

REGISTRY = CollectorRegistry(auto_describe=True)
EVENTS = Counter("depin_indexer_events", "Chain events applied to the index (a retraction counts under kind=retraction)",
                 ["kind"], registry=REGISTRY)
REORGS = Counter("depin_indexer_reorgs", "Chain reorganisations rolled back", registry=REGISTRY)
ROLLED_BACK_BLOCKS = Counter("depin_indexer_rolled_back_blocks", "Blocks undone by reorg rollbacks", registry=REGISTRY)
COMMIT_SECONDS = Histogram(
    "depin_indexer_redis_commit_seconds", "Seconds from sending a batch's commit script to Redis to its answer",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), registry=REGISTRY,
)
HEAD = Gauge("depin_indexer_head_block", "The chain head the indexer last polled", registry=REGISTRY)
CURSOR = Gauge("depin_indexer_cursor_block", "The last block whose events are applied", registry=REGISTRY)
LAG_BLOCKS = Gauge("depin_indexer_head_lag_blocks", "Head minus cursor, in blocks (includes the confirmations)", registry=REGISTRY)
LAG_SECONDS = Gauge(
    "depin_indexer_head_lag_seconds",
    "Seconds since the indexer was last caught up with the head it polled (0 while caught up)", registry=REGISTRY,
)
EVENTS_RATE = Gauge("depin_indexer_events_per_second", "Events applied per second over the last 10 s", registry=REGISTRY)
EVENTS.labels(kind="event")
EVENTS.labels(kind="retraction")

_caught_up_at = time.time()
_lock = threading.Lock()


def progress(head: int, cursor: int, caught_up: bool) -> None:
    """The follower's position after a poll step (head and cursor block numbers)."""
    global _caught_up_at
    now = time.time()
    with _lock:
        if caught_up:
            _caught_up_at = now
        HEAD.set(head)
        CURSOR.set(cursor)
        LAG_BLOCKS.set(max(head - cursor, 0))
        LAG_SECONDS.set(0.0 if caught_up else now - _caught_up_at)


def reorg(blocks: int, retracted: int) -> None:
    """A rollback of `blocks` orphaned blocks that retracted `retracted` events."""
    REORGS.inc()
    ROLLED_BACK_BLOCKS.inc(blocks)
    EVENTS.labels(kind="retraction").inc(retracted)


def render(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(registry)


def serve_metrics(port: int, addr: str = "127.0.0.1") -> Any:
    """Serves :data:`REGISTRY` at ``http://addr:port/metrics`` from a daemon thread; returns the server."""
    from prometheus_client import start_http_server  # lazy: start-up

    server, _thread = start_http_server(port, addr=addr, registry=REGISTRY)
    log.info("metrics on http://%s:%d/metrics", addr, port)
    return server


class IndexCollector(Collector):
    """Gauges read from the index in Redis at scrape time (what ``depin indexer status`` shows)."""

    def __init__(self, reader: IndexerReader, chain_head: Callable[[], int | None] | None = None) -> None:
        self.reader = reader
        self.chain_head = chain_head

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = self.reader.status(self.chain_head() if self.chain_head else None)
        values = {
            "depin_indexer_head_block": ("The chain head (from the node, else the indexer's last poll)", status.head),
            "depin_indexer_cursor_block": ("The last block whose events are applied", status.cursor),
            "depin_indexer_head_lag_blocks": ("Head minus cursor, in blocks", status.lag),
            "depin_indexer_seconds_since_update": ("Seconds since the indexer last wrote to Redis", status.seconds_since_update),
            "depin_indexer_events_applied": ("Events currently applied to the index (a rollback subtracts)", status.events_applied),
            "depin_indexer_events_per_second": ("Events applied per second over the indexer's last 10 s", status.events_per_second),
        }
        for name, (doc, value) in values.items():
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=float(value))
        totals = self.reader.totals()
        jobs = GaugeMetricFamily("depin_market_jobs", "Jobs now in each status", labels=["status"])
        for name, count in totals.by_status.items():
            jobs.add_metric([name], float(count))
        yield jobs
        yield GaugeMetricFamily("depin_market_jobs_posted", "Jobs ever posted", value=float(totals.jobs))
        tokens = GaugeMetricFamily(
            "depin_market_tokens", "Token amounts in base units (1e-18 token): escrowed, staked, locked, "
            "cumulative paid, refunded, emitted, slashed, burned", labels=["kind"],
        )
        for kind in ("escrowed", "withdrawable", "staked", "locked", "unbonding", "paid", "refunded", "emitted", "slashed", "burned"):
            tokens.add_metric([kind], float(getattr(totals, kind)))
        yield tokens


def add_index_metrics(app: FastAPI, reader: IndexerReader, chain_head: Callable[[], int | None] | None = None) -> None:
    """``GET /metrics`` on `app`: the index's gauges (:class:`IndexCollector`) in the text format."""
    from fastapi import Response  # lazy: start-up

    registry = CollectorRegistry(auto_describe=False)
    registry.register(IndexCollector(reader, chain_head))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
