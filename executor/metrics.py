"""Prometheus metrics of one executor (``prometheus_client``), shared by all its processes.

An executor is several processes (the compute worker's prefork children, the chain worker, beat,
the dispatcher, the result server), so its counters live in Redis, in one hash of the executor's
state (``ExecKeys.metrics``): every process adds to it with one ``HINCRBYFLOAT`` per sample
(:func:`count`, :func:`observe`), and the metrics server reads it at scrape time. The counters
survive restarts (Prometheus treats them as monotonic; a reset only happens when the state is wiped).

The server (:func:`serve`) runs in the result server's process when ``DEPIN_EXECUTOR_METRICS`` is
an address (``127.0.0.1:9102``; ``depin executor start --metrics 127.0.0.1:9102`` sets it), and
answers ``GET /metrics`` in the Prometheus text format: the counters above, the queue depths
(read from the Celery broker at scrape time) and the number of jobs the executor holds.

Metric names (the README's "Metrics" table): ``depin_executor_jobs_claimed_total``,
``depin_executor_jobs_run_total{kind}``, ``depin_executor_jobs_submitted_total{kind}``,
``depin_executor_jobs_failed_total{code}``, ``depin_executor_container_run_seconds`` (histogram),
``depin_executor_queue_depth{queue}``, ``depin_executor_active_jobs``,
``depin_executor_transaction_retries_total{reason}``, ``depin_executor_court_actions_total{action}``,
``depin_executor_task_retries_total{task}``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("executor.metrics")

ENV_BIND = "DEPIN_EXECUTOR_METRICS"
RUN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
COUNTERS = {
    "jobs_claimed": ("Jobs this executor claimed on chain", ()),
    "jobs_run": ("Job runs that ended with an outcome (kind: result or failure)", ("kind",)),
    "jobs_submitted": ("Outcomes submitted on chain (kind: result or failure)", ("kind",)),
    "jobs_failed": ("Failures submitted on chain, by failure code", ("code",)),
    "transaction_retries": ("Transactions sent again: fee bump, dropped, nonce taken, reorg", ("reason",)),
    "court_actions": ("Audit and jury work sent to the court (reveal, advance)", ("action",)),
    "task_retries": ("Celery task retries, by task", ("task",)),
}
HISTOGRAMS = {"container_run_seconds": ("Seconds a job's container ran", RUN_BUCKETS)}
PREFIX = "depin_executor_"
_SEP = "|"


def _field(name: str, labels: dict[str, str]) -> str:
    return name + (_SEP + json.dumps(labels, sort_keys=True, separators=(",", ":")) if labels else "")


def count(rt: Any, name: str, by: float = 1, **labels: Any) -> None:
    """Adds `by` to counter `name` (a key of :data:`COUNTERS`) of `rt`'s executor. Never raises:
    metrics must not break the work they count."""
    try:
        rt.state.hincrbyfloat(rt.xkeys.metrics, _field(name, {k: str(v) for k, v in labels.items()}), by)
    except Exception as exc:  # noqa: BLE001 - best effort
        log.debug("metric %s not counted: %s", name, exc)


def observe(rt: Any, name: str, value: float) -> None:
    """One sample of histogram `name` (a key of :data:`HISTOGRAMS`)."""
    try:
        buckets = HISTOGRAMS[name][1]
        pipe = rt.state.pipeline(transaction=False)
        key = rt.xkeys.metrics
        for bound in buckets:
            if value <= bound:
                pipe.hincrbyfloat(key, _field(name, {"le": repr(float(bound))}), 1)
        pipe.hincrbyfloat(key, _field(name, {"le": "+Inf"}), 1)
        pipe.hincrbyfloat(key, name + "#sum", value)
        pipe.hincrbyfloat(key, name + "#count", 1)
        pipe.execute()
    except Exception as exc:  # noqa: BLE001 - best effort
        log.debug("metric %s not observed: %s", name, exc)


def outcome(rt: Any, result: Any) -> None:
    """A run's outcome (:class:`executor.execute.Outcome`): counted by kind, its container time observed."""
    count(rt, "jobs_run", kind=result.kind)
    seconds = getattr(getattr(result, "durations", None), "run", 0.0)
    if seconds:
        observe(rt, "container_run_seconds", seconds)


def submitted(rt: Any, kind: str | None, code: Any = None) -> None:
    """An outcome submitted on chain (a failure also counted by its code)."""
    count(rt, "jobs_submitted", kind=kind or "unknown")
    if kind == "failure":
        count(rt, "jobs_failed", code=str(int(code)) if str(code or "").isdigit() else str(code))


# ---------------------------------------------------------------------------------------- automatic counts

# The SDK's transactor logs each re-send (depin/transactions.py); the templates name the reason.
_RETRY_MESSAGES = {
    "re-broadcast %s nonce=%d maxFeePerGas=%d tip=%d tx=%s": "fee_bump",
    "%s nonce=%d is unknown to the node (dropped or reorged out); sending it again": "dropped",
    "%s: nonce %d was taken by another transaction; sent again as nonce %d tx=%s": "nonce_taken",
    "a reorg undid %s nonce=%d tx=%s": "reorg",
}


class _RetryCounter(logging.Filter):
    def __init__(self, rt: Any) -> None:
        super().__init__()
        self.rt = rt

    def filter(self, record: logging.LogRecord) -> bool:
        reason = _RETRY_MESSAGES.get(str(record.msg))
        if reason is not None:
            count(self.rt, "transaction_retries", reason=reason)
        return True


_installed: list[Any] = []  # the runtime this process counts for (once per process)


def install(rt: Any) -> None:
    """Counts, in this process, the SDK's transaction re-sends and Celery's task retries (once:
    later calls only change the runtime counted for)."""
    if _installed:
        _installed[0].rt = rt
        return
    counter = _RetryCounter(rt)
    _installed.append(counter)
    logging.getLogger("depin.transactions").addFilter(counter)
    from celery.signals import task_retry  # lazy: optional

    def on_retry(sender: Any = None, **_: Any) -> None:
        count(counter.rt, "task_retries", task=getattr(sender, "name", str(sender)))

    task_retry.connect(on_retry, weak=False)


# ---------------------------------------------------------------------------------------- the server


class ExecutorCollector(Collector):
    """The executor's metrics at scrape time: counters and histograms from Redis, queue depths from
    the broker (`queues`: Redis list name -> queue label), the active jobs."""

    def __init__(self, rt: Any, queues: dict[str, str]) -> None:
        self.rt = rt
        self.queues = queues

    def collect(self) -> Iterator[Metric]:
        raw = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in self.rt.state.hgetall(self.rt.xkeys.metrics).items()}
        for name, (doc, labels) in COUNTERS.items():
            family = CounterMetricFamily(PREFIX + name, doc, labels=list(labels))
            for fieldname, value in raw.items():
                base, _, encoded = fieldname.partition(_SEP)
                if base != name:
                    continue
                values = json.loads(encoded) if encoded else {}
                family.add_metric([values.get(label, "") for label in labels], value)
            if not labels and not any(f == name for f in raw):
                family.add_metric([], 0.0)
            yield family
        for name, (doc, buckets) in HISTOGRAMS.items():
            histogram = HistogramMetricFamily(PREFIX + name, doc)
            counts = [(repr(float(b)), raw.get(_field(name, {"le": repr(float(b))}), 0.0)) for b in buckets]
            counts.append(("+Inf", raw.get(_field(name, {"le": "+Inf"}), 0.0)))
            histogram.add_metric([], counts, sum_value=raw.get(name + "#sum", 0.0))
            yield histogram
        depth = GaugeMetricFamily(PREFIX + "queue_depth", "Tasks waiting in each Celery queue", labels=["queue"])
        broker = self.rt.broker if hasattr(self.rt, "broker") else self.rt.state
        for key, label in self.queues.items():
            depth.add_metric([label], float(broker.llen(key)))
        yield depth
        yield GaugeMetricFamily(PREFIX + "active_jobs", "Jobs the executor holds (claimed, running or submitting)",
                                value=float(self.rt.active_count()))


def registry_for(rt: Any, queues: dict[str, str]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExecutorCollector(rt, queues))
    return registry


def serve(rt: Any, bind: str, queues: dict[str, str]) -> ThreadingHTTPServer:
    """Serves ``GET /metrics`` on `bind` (``host:port``) from a daemon thread; returns the server."""
    registry = registry_for(rt, queues)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404, "only /metrics here")
                return
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    host, _, port = bind.rpartition(":")
    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics on http://%s:%s/metrics", host or "127.0.0.1", port)
    return server


def bind_from_env() -> str | None:
    """The metrics address from ``DEPIN_EXECUTOR_METRICS`` (None: no metrics server)."""
    return os.environ.get(ENV_BIND) or None
