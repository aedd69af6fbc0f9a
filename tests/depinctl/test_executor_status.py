"""`depin executor status` shows the executor's Redis records as text: a field carrying terminal
controls (a decline reason quotes the requester's input URI) reaches the operator's terminal only as
visible escapes, one line per record. A real redis-server; no chain (the records are written as the
verifier and the canary write them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from depin.deployment import Deployment, write_deployment
from depinctl.cli import app
from depinctl.procs import start_redis
from executor import verifier
from executor.runtime import Runtime, load_executor_config

ADDRESSES = {name: "0x" + f"{i}" * 40 for i, name in enumerate(("RewardToken", "ProviderStaking", "JobMarket"), 1)}
HOSTILE = "file:///in/x\x1b]0;OWNED\x07\x1b[2J\nforged line\u202e"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    with proc:
        yield url


def test_executor_status_shows_hostile_record_fields_as_text(redis_url: str, tmp_path: Path) -> None:
    """The seat's reason, delivery and outcome, the canary job's fields and the verifiers caught
    were echoed raw (an OSC retitled the terminal, a newline forged a row): now as escapes, one line each."""
    deployment = write_deployment(Deployment(31337, "devnet", 1, ADDRESSES, {}, "0x" + "55" * 20), tmp_path)
    config = tmp_path / "depin.toml"
    config.write_text(
        f'[network]\ndeployment = "{deployment}"\n\n[redis]\nurl = "{redis_url}"\n\n[key]\ndev_account = 3\n\n'
        '[executor]\nrole = "verifier,canary"\n'
    )
    rt = Runtime(load_executor_config(config))
    rt.state.flushdb()
    verifier.set_seat(rt, 7, 0, 1, "declined", reason=f"input unavailable: {HOSTILE}", delivery=HOSTILE, outcome=HOSTILE)
    rt.state.hset(rt.xkeys.canary(8), mapping={
        "job": "8", "state": HOSTILE, "caught": "1", "verifiers": "0x" + "aa" * 20 + "," + HOSTILE, "slashed": "5", "updated": "1",
    })

    result = CliRunner().invoke(app, ["executor", "status", "--config", str(config)])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    out = result.stdout
    assert not any(c in out for c in "\x1b\x07\u202e"), repr(out)
    lines = out.splitlines()
    assert len(lines) == 4, lines  # the executor, its seat, its canary job, the verifiers caught
    assert lines[1].startswith("  seat job 7 round 0 seat 1: declined") and "forged line" in lines[1]
    assert "\\x1b]0;OWNED\\x07" in lines[1] and "\\u202e" in lines[1]
    assert lines[2].startswith("  canary job 8: ") and lines[3].startswith("  verifiers caught: ")
    assert all("\\x1b]0;OWNED\\x07" in line for line in lines[1:])
