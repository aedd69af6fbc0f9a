"""The chain worker's health check without a chain: the judgement of a heartbeat record, the record
a beat writes (real redis-server, a real Transactor whose journal holds an unmined transaction), and
`depin executor health` as a user runs it (one line, exit status)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from depin.deployment import REPO_ROOT
from depin.transactions import PendingTx
from executor.health import beat_once, check_health, judge_heartbeat
from tests.indexer.services import RedisServer

NOW = 1_800_000_000.0


def test_a_recent_heartbeat_without_waiting_transactions_is_healthy() -> None:
    report = judge_heartbeat({"heartbeat": str(NOW - 2), "unconfirmed_since": ""}, now=NOW)
    assert report.ok and "no transaction waiting" in report.detail


def test_a_stale_heartbeat_is_unhealthy() -> None:
    report = judge_heartbeat({"heartbeat": str(NOW - 61)}, max_heartbeat_age=60, now=NOW)
    assert not report.ok and "last heartbeat 61 s ago" in report.detail


def test_a_transaction_waiting_past_the_bound_is_unhealthy_even_with_a_fresh_heartbeat() -> None:
    record = {"heartbeat": str(NOW - 1), "unconfirmed_since": str(NOW - 301)}
    assert not judge_heartbeat(record, max_pending_age=300, now=NOW).ok
    assert judge_heartbeat(record, max_pending_age=302, now=NOW).ok


def test_no_heartbeat_is_unhealthy() -> None:
    assert not judge_heartbeat({}, now=NOW).ok


@pytest.fixture
def config_file(redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for db in (6, 7):
        redis_server.client(db).flushdb()
    deployment = tmp_path / "31337.json"
    deployment.write_text(json.dumps({"chainId": 31337, "network": "devnet", "deployBlock": 1, "deployer": "0x" + "11" * 20,
                                      "addresses": {"JobMarket": "0x" + "22" * 20}, "parameters": {}}))
    path = tmp_path / "depin.toml"
    path.write_text(f'[network]\nrpc_url = "http://127.0.0.1:9"\ndeployment = "{deployment}"\n'
                    f'[redis]\nurl = "{redis_server.url(6)}"\n[key]\ndev_account = 1\n[executor]\nrole = "provider"\n')
    monkeypatch.setenv("DEPIN_BROKER_URL", redis_server.url(7))
    return path


def _runtime(config_file: Path):  # type: ignore[no-untyped-def]
    from executor.runtime import Runtime, load_executor_config

    return Runtime(load_executor_config(config_file))


def _cli(config_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([str(Path(sys.executable).parent / "depin"), "executor", "health", "--config", str(config_file), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_a_beat_records_since_when_the_oldest_transaction_waits(config_file: Path) -> None:
    rt = _runtime(config_file)
    waiting = PendingTx("JobMarket.submitResult", 7, {}, sent_at=NOW - 10)
    tx = SimpleNamespace(heal=lambda: [7], oldest_unconfirmed_since=lambda: waiting.sent_at)
    rt.__dict__["client"] = SimpleNamespace(tx=tx)  # the signer's answers, without a chain
    beat_once(rt)
    record = rt.state.hgetall(rt.xkeys.health("worker-chain"))
    assert float(record["unconfirmed_since"]) == NOW - 10 and record["pid"] == str(os.getpid())
    assert record["detail"] == "sent again or filled nonces 7"
    stuck = check_health(rt, max_pending_age=5, max_heartbeat_age=1e12, now=NOW)
    assert not stuck.ok and "a transaction has waited 10 s to be mined (bound 5 s)" in stuck.detail
    report = check_health(rt, max_pending_age=20, max_heartbeat_age=1e12, now=NOW)
    assert report.ok, report.detail


def test_health_cli_prints_one_line_and_exits_by_the_verdict(config_file: Path) -> None:
    missing = _cli(config_file)
    assert missing.returncode == 1
    assert missing.stdout.strip() == "unhealthy: worker-chain: no heartbeat recorded yet (is it running?)"
    assert not missing.stderr.strip()
    rt = _runtime(config_file)
    rt.state.hset(rt.xkeys.health("worker-chain"), mapping={"heartbeat": str(time.time()), "unconfirmed_since": ""})
    ok = _cli(config_file)
    assert ok.returncode == 0 and ok.stdout.startswith("healthy: worker-chain: heartbeat"), ok.stdout + ok.stderr
    rt.state.hset(rt.xkeys.health("worker-chain"), mapping={"unconfirmed_since": str(time.time() - 100)})
    stuck = _cli(config_file, "--max-pending-age", "50")
    assert stuck.returncode == 1 and "a transaction has waited" in stuck.stdout and "bound 50 s" in stuck.stdout


def test_health_cli_rejects_a_bad_bound_in_one_line(config_file: Path) -> None:
    bad = _cli(config_file, "--max-pending-age", "0")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
