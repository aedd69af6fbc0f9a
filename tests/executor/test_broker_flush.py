"""A wiped broker database (FLUSHDB, or Redis restarted without persistence) must not swallow the
tasks sent afterwards.

Found by review: kombu's Redis transport routes a message sent to a named exchange through the
exchange's binding set (``_kombu.binding.<exchange>``), written when a queue is declared. A sender
declares a queue once per connection, so after FLUSHDB every task sent by a component that was
already connected (the beat, the dispatcher, the chain worker's own sends) found no binding and
was dropped (kombu's "undeliverable" warning) until that component reconnected. The executor's
routes now leave the exchange out: Celery then sends to the queue by name (the default exchange),
which needs no binding.

Real services: a redis-server and a Celery worker consuming the executor's queues with the
executor's own broker settings (:func:`executor.celery.settings`); the tasks are sent the way
:func:`executor.queue.send` sends them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker

from depin.config import DepinConfig
from executor.celery import CHAIN, COMPUTE, ROUTES, settings
from tests.indexer.services import RedisServer, wait_for

DONE = "broker-flush-test:done"  # the test task's record (its own database: the executor's is flushed)


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path / "redis")
    try:
        yield s
    finally:
        s.stop()


def test_tasks_sent_after_a_flushdb_are_delivered(server: RedisServer) -> None:
    broker = server.url(1)
    record = server.client(2)
    app = Celery("broker-flush-test", set_as_current=False)
    conf = settings(DepinConfig(), broker_url=broker, key_prefix="depin-exec:test")
    # Two test tasks routed exactly as a chain task (the beat's) and a compute task (the
    # dispatcher's): the executor's own task names are taken by executor.tasks (Celery shares them
    # with every app), and those need a configured executor.
    tasks = {"test.chain": "depin.poke", "test.compute": "depin.run"}
    conf["task_routes"].update({name: conf["task_routes"][like] for name, like in tasks.items()})
    app.conf.update(conf)

    @app.task(name="test.chain", shared=False)
    def chain_task(n: int) -> None:
        redis.Redis.from_url(server.url(2)).sadd(DONE, f"chain:{n}")

    @app.task(name="test.compute", shared=False)
    def compute_task(n: int) -> None:
        redis.Redis.from_url(server.url(2)).sadd(DONE, f"compute:{n}")

    def send(name: str, n: int) -> None:  # what executor.queue.send does, for the task it stands for
        app.send_task(name, args=[n], queue=ROUTES[tasks[name]])

    with start_worker(app, pool="solo", queues=[CHAIN, COMPUTE], perform_ping_check=False, shutdown_timeout=30):
        send("test.chain", 1)
        send("test.compute", 1)
        wait_for(lambda: record.scard(DONE) == 2, 60, "the tasks sent before the flush to run")
        state = server.client(1)
        assert state.keys("*_kombu.binding.*"), "the broker's queue bindings"
        state.flushdb()  # the broker's bindings, queues and records are gone; sender and worker stay connected
        send("test.chain", 2)
        send("test.compute", 2)
        wait_for(lambda: record.scard(DONE) == 4, 60, "the tasks sent after the flush to run")
    assert record.smembers(DONE) == {"chain:1", "compute:1", "chain:2", "compute:2"}
