"""Adversarial review of result retention (executor/retention.py): defects reproduced over a real
Redis, a real result store and journal on disk, with the node's answers as a table (as
tests/executor/test_retention.py does); each marked xfail(strict) until fixed."""

from __future__ import annotations

import pytest
import redis

from depin.market import JobStatus
from executor.retention import DAY, prune_results
from tests.indexer.services import RedisServer

from .test_retention import T0, _Chain, _files, _runtime, _submitted


@pytest.fixture
def r(redis_server: RedisServer) -> redis.Redis:
    client = redis_server.client(10)
    client.flushdb()
    return client


@pytest.mark.xfail(
    strict=True,
    reason="review: a job's settled mark ({e}:retained) is never checked against the chain again: a pass that saw the job "
    "Finalized at the node's head (not final: a reorg can undo the finalize and let a challenge in) removes its archive and "
    "salt a retention period later although the chain now says Disputed",
)
def test_a_job_unsettled_again_after_a_reorg_keeps_its_files(r: redis.Redis, tmp_path) -> None:
    chain = _Chain()
    rt = _runtime(r, tmp_path, chain, days=7)
    archive = _submitted(rt, tmp_path, 5)
    before = _files(tmp_path)
    chain.status[5] = JobStatus.FINALIZED  # the head the first pass read: a finalize not yet final
    assert prune_results(rt, now=T0) == 0
    chain.status[5] = JobStatus.DISPUTED  # reorged: a challenge mined in the finalize's place; the court needs the salt
    prune_results(rt, now=T0 + 7 * DAY)
    assert archive.exists() and _files(tmp_path) == before, "an unsettled job's archive and journal entry were removed"
