"""`depin indexer run --metrics-port P` and `depin indexer api --port P` (and `depin explorer`)
when P is taken: one ``error:`` line naming the address and what to do, exit status 1 (the CLI's
status for an error the user can fix). It was a Python traceback (metrics, said before Redis or the
node is asked: closed ports here) and uvicorn's log lines with exit status 3 (api, said once Redis
answered, as every other error of its options is said first)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from depin.accounts import DEV_ADDRESSES
from depin.deployment import REPO_ROOT, Deployment
from depinctl.procs import free_port
from tests.indexer.test_query import redis_url  # noqa: F401  (fixture)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _deployment(tmp_path: Path) -> Path:
    dep = Deployment(31337, "local", 0, {"JobMarket": "0x" + "11" * 20, "RewardToken": "0x" + "22" * 20,
                                          "ProviderStaking": "0x" + "33" * 20, "VerificationCourt": "0x" + "44" * 20},
                     {}, DEV_ADDRESSES[0])
    path = tmp_path / "31337.json"
    path.write_text(dep.to_json())
    return path


def _depin(tmp_path: Path, *args: str, redis: str | None = None) -> subprocess.CompletedProcess[str]:
    closed = free_port()  # nothing listens: the node (and Redis, unless given) must not be needed to say it
    env = dict(os.environ, COLUMNS="200", DEPIN_DEVNET_DIR=str(tmp_path / "no-devnet"))
    return subprocess.run(
        [sys.executable, "-m", "depinctl.cli", *args, "--deployment", str(_deployment(tmp_path)),
         "--redis-url", redis or f"redis://127.0.0.1:{closed}/0", "--rpc-url", f"http://127.0.0.1:{closed}"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120,
    )


def _one_error_line(result: subprocess.CompletedProcess[str], port: int) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert f"127.0.0.1:{port}" in errors[0] and "in use" in errors[0], errors[0]
    return errors[0]


def test_indexer_run_metrics_port_taken(tmp_path: Path, taken_port: int) -> None:
    line = _one_error_line(_depin(tmp_path, "indexer", "run", "--metrics-port", str(taken_port)), taken_port)
    assert "--metrics-port" in line


@pytest.mark.parametrize("command", [("indexer", "api"), ("explorer",)], ids=["indexer api", "explorer"])
def test_api_port_taken(tmp_path: Path, taken_port: int, command: tuple[str, ...], redis_url: str) -> None:
    line = _one_error_line(_depin(tmp_path, *command, "--port", str(taken_port), redis=redis_url), taken_port)
    assert "--port" in line
