"""Crash safety: ``kill -9`` at random points of a backfill never leaves a half-applied batch."""

from __future__ import annotations

import random
import signal
import time

from indexer.store import Cursor

from .services import ChainEnv, FlakyProxy, dump, indexer_env, kill9, start_indexer_process, stream_entries


def test_kill_9_during_backfill_then_restart_gives_the_uninterrupted_state(populated_env: ChainEnv) -> None:
    """An indexer process killed with SIGKILL at random points of a backfill (5 times), then
    restarted, ends with exactly the state of an uninterrupted run: same hashes, indexes, cursor,
    undo records and stream, each event in the stream exactly once (batches commit atomically with
    the cursor, so nothing is applied twice)."""
    env = populated_env
    head = env.market.head()
    ref = env.rebuild(1, max_range=2, finality_depth=40)
    assert ref.store.cursor().number == head
    start = env.deployment.deploy_block
    rng = random.Random(20261122)
    targets = sorted(rng.sample(range(start, head), 5))
    penv = indexer_env(env.anvil.url, env.redis.url(0), env.deployment_file, DEPIN_MAX_RANGE=2, DEPIN_FINALITY_DEPTH=40)
    # The killed runs read the chain through a proxy that holds the batch reaching the head: a run
    # the test is slow to kill (a loaded machine) waits there instead of finishing the backfill.
    proxy = FlakyProxy(env.anvil.url)
    proxy.hold_logs_to = head
    killed_env = indexer_env(proxy.url, env.redis.url(0), env.deployment_file, DEPIN_MAX_RANGE=2, DEPIN_FINALITY_DEPTH=40)
    r, k = env.client(0), env.keys
    kills = []
    try:
        for target in targets:
            proc = start_indexer_process(killed_env, log_file=env.tmp / "indexer.log")
            deadline = time.monotonic() + 60
            extra_delay = rng.uniform(0, 0.01)  # land anywhere in the batch after the target
            while time.monotonic() < deadline:
                raw = r.get(k.cursor)
                if raw is not None and Cursor.loads(raw).number >= target:
                    time.sleep(extra_delay)
                    break
                assert proc.poll() is None, (env.tmp / "indexer.log").read_text()
                time.sleep(0.001)
            kill9(proc)
            kills.append(Cursor.loads(r.get(k.cursor)).number)
    finally:
        proxy.close()
    assert kills == sorted(kills) and kills[-1] < head, f"kills landed at {kills}; the backfill ended too early"
    proc = start_indexer_process(penv, "--once", log_file=env.tmp / "indexer.log")
    assert proc.wait(60) == 0, (env.tmp / "indexer.log").read_text()
    assert dump(r, k) == dump(env.client(1), k)
    entries = stream_entries(r, k)
    ids = [(e["block"], e["logIndex"]) for e in entries]
    assert len(ids) == len(set(ids)), "an event was appended twice"


def test_sigterm_stops_the_indexer_cleanly(populated_env: ChainEnv) -> None:
    """SIGTERM during a backfill lets the indexer finish its current batch, log and exit 0; the
    cursor it leaves is consistent (a restart completes the index to the uninterrupted state)."""
    env = populated_env
    log_file = env.tmp / "indexer.log"
    penv = indexer_env(env.anvil.url, env.redis.url(0), env.deployment_file, DEPIN_MAX_RANGE=1)
    proc = start_indexer_process(penv, log_file=log_file)
    r, k = env.client(0), env.keys
    deadline = time.monotonic() + 60
    while r.get(k.cursor) is None or Cursor.loads(r.get(k.cursor)).number <= env.deployment.deploy_block:
        assert time.monotonic() < deadline and proc.poll() is None, log_file.read_text()
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log_file.read_text()
    assert "stopped cleanly" in log_file.read_text()
    proc = start_indexer_process(penv, "--once", log_file=log_file)
    assert proc.wait(60) == 0, log_file.read_text()
    env.rebuild(1, max_range=1)
    assert dump(r, k) == dump(env.client(1), k)
