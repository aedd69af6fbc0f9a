"""The executor's documented timing knobs (README: DEPIN_BEAT_INTERVAL, DEPIN_LEASE_TTL,
DEPIN_SUBMIT_MARGIN, DEPIN_STOP_GRACE, ...) are read when the modules are imported, unchecked: a value
that is not a number stops `depin executor start` with Python's own message that names no variable
(and `python -m executor`, which the supervisor and the devnet run, with a traceback), and a negative
interval, lease or margin is taken as it is. Refused before anything starts, naming the variable, as
DEPIN_EXECUTOR_METRICS is (tests/unit/test_config_errors.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from depin.config import ConfigError, env_int, env_number
from depin.deployment import REPO_ROOT


def _start(entry: list[str], config: Path, var: str, value: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPIN_")}
    env.update(PYTHONPATH=str(REPO_ROOT), DEPIN_DEVNET_DIR=str(config.parent / "no-devnet"), **{var: value})
    return subprocess.run(
        [sys.executable, "-m", *entry, "start", "--config", str(config)], cwd=config.parent, env=env,
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("entry", "var", "value"),
    [
        (["depinctl.cli", "executor"], "DEPIN_STOP_GRACE", "abc"),
        (["executor"], "DEPIN_BEAT_INTERVAL", "10s"),
        (["depinctl.cli", "executor"], "DEPIN_LEASE_TTL", "-1"),
        (["depinctl.cli", "executor"], "DEPIN_SUBMIT_MARGIN", "-600"),
        (["executor"], "DEPIN_SIGNER_LOCK_TTL", "0"),
    ],
)
def test_a_bad_timing_knob_is_one_error_naming_it_before_anything_starts(
    tmp_path: Path, entry: list[str], var: str, value: str
) -> None:
    config = tmp_path / "depin.toml"
    config.write_text("")
    proc = _start(entry, config, var, value)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and var in lines[0], proc.stderr


@pytest.mark.parametrize(
    ("value", "why"),
    [("abc", "a number above 0"), ("inf", "a number above 0"), ("nan", "a number above 0"), ("0", "a number above 0"),
     ("-0.5", "a number above 0")],
)
def test_env_number_refuses_what_is_not_a_finite_number_in_bounds(value: str, why: str) -> None:
    with pytest.raises(ConfigError, match=f"^DEPIN_X='{re.escape(value)}': must be {why}$"):
        env_number("DEPIN_X", 5, above=True, env={"DEPIN_X": value})


def test_env_number_and_env_int_take_a_number_in_bounds_and_default_when_unset() -> None:
    assert env_number("DEPIN_X", 5, above=True, env={"DEPIN_X": " 0.25 "}) == 0.25
    assert env_number("DEPIN_X", 5, above=True, env={"DEPIN_X": ""}) == 5
    assert env_number("DEPIN_X", 5, env={}) == 5
    assert env_int("DEPIN_X", 45, env={"DEPIN_X": "0"}) == 0
    with pytest.raises(ConfigError, match="must be a whole number at least 0"):
        env_int("DEPIN_X", 45, env={"DEPIN_X": "1.5"})
    with pytest.raises(ConfigError, match="DEPIN_X='-600': must be a whole number at least 0"):
        env_int("DEPIN_X", 45, env={"DEPIN_X": "-600"})
