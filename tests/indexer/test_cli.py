"""The `depin` command line (depinctl/cli.py) through typer's CliRunner, over a real redis-server.

Every error a user can cause must be one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from depin.keys import Keys
from depinctl.cli import app
from tests.cli_errors import assert_one_line_error
from tests.indexer.test_query import (  # noqa: F401  (fixtures)
    PROVIDER_1,
    REQUESTER_A,
    free_port,
    keys,
    r,
    redis_url,
    sample,
    write_deployment_file,
)

ENV_VARS = ("DEPIN_REDIS_URL", "DEPIN_RPC_URL", "DEPIN_DEPLOYMENT", "DEPIN_NAMESPACE", "DEPIN_CONFIG",
            "DEPIN_CONFIRMATIONS", "DEPIN_FINALITY_DEPTH", "DEPIN_POLL_INTERVAL", "DEPIN_MAX_RANGE", "DEPIN_WS_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No DEPIN_* variables from the caller's shell; cwd without default deployment files."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level  # commands that configure logging leave no trace


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    return write_deployment_file(tmp_path / "31337.json")


@pytest.fixture
def run(redis_url: str, deployment: Path, sample: Keys):
    """`depin ARGS` against the sample index; returns the click Result (stdout and stderr apart)."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(
            app, list(args), env={"DEPIN_REDIS_URL": redis_url, "DEPIN_DEPLOYMENT": str(deployment), **(env or {})}
        )

    return invoke


def test_jobs_list_table(run) -> None:
    result = run("jobs", "list")
    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0][:3] == ["ID", "STATUS", "REQUESTER"]
    assert [row[0] for row in rows[1:6]] == ["5", "4", "3", "2", "1"]
    assert rows[5][1:3] == ["Finalized", "0x7099…79C8"] and "INVALID" in rows[1]
    assert "1-5 of 5 (newest first)" in result.stdout


def test_jobs_list_filters_and_json(run) -> None:
    result = run("jobs", "list", "--status", "open", "--json")
    assert result.exit_code == 0, result.stderr
    page = json.loads(result.stdout)
    assert page["total"] == 2 and [j["id"] for j in page["jobs"]] == [4, 2]
    page = json.loads(run("jobs", "list", "--requester", REQUESTER_A, "--limit", "2", "--json").stdout)
    assert (page["total"], [j["id"] for j in page["jobs"]]) == (3, [5, 2])
    page = json.loads(run("jobs", "list", "--provider", PROVIDER_1.lower(), "--oldest-first", "--json").stdout)
    assert [j["id"] for j in page["jobs"]] == [1, 3]
    assert run("jobs", "list", "--status", "expired").stdout.strip() == "no jobs match"


def test_jobs_show(run) -> None:
    """All fields, the history table and the decoded spec."""
    result = run("jobs", "show", "1")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for fragment in ("Finalized", REQUESTER_A, PROVIDER_1, "10 DPC (10000000000000000000 base units)",
                     "resultURI", "ipfs://result", "claimDeadline", "history (2 transitions)", "JobClaimed",
                     "spec (decoded)", '"cpus": 1'):
        assert fragment in out, fragment
    invalid = run("jobs", "show", "5").stdout
    assert "NO: the spec bytes do not hash" in invalid and "specError" in invalid and "does not match" in invalid
    assert "spec: not decoded (raw bytes as text below)" in invalid and '{"cmd":["echo","hi"]' in invalid
    job = json.loads(run("jobs", "show", "1", "--json").stdout)
    assert job["id"] == 1 and job["reward"] == str(10 * 10**18) and job["spec"]["cpus"] == 1


def test_chain_data_is_shown_as_text_not_markup(run, r, sample: Keys) -> None:
    """A value from the chain cannot restyle the terminal or crash the table renderer."""
    r.hset(sample.job(1), "resultURI", "[/bold][red]ipfs://x\x1b[31m")
    result = run("jobs", "show", "1")
    assert result.exit_code == 0, result.stderr
    assert "[/bold][red]ipfs://x\\x1b[31m" in result.stdout and "\x1b" not in result.stdout


def test_providers(run) -> None:
    result = run("providers", "list")
    assert result.exit_code == 0 and PROVIDER_1 in result.stdout and "https://p1.example" in result.stdout
    providers = json.loads(run("providers", "list", "--json").stdout)
    assert [p["id"] for p in providers] == [1, 2]
    assert "0.3 DPC" in run("providers", "show", PROVIDER_1.lower()).stdout


def test_indexer_status_with_the_node_unreachable(run) -> None:
    """The head is 'unknown' when the node does not answer; lag falls back to the indexer's head."""
    dead_rpc = f"http://127.0.0.1:{free_port()}"
    result = run("indexer", "status", "--rpc-url", dead_rpc)
    assert result.exit_code == 0, result.stderr
    assert f"unknown (node {dead_rpc} unreachable; the indexer last saw 120)" in result.stdout
    assert "2 blocks (against the indexer's last head)" in result.stdout and "1,234.5" in result.stdout
    status = json.loads(run("indexer", "status", "--rpc-url", dead_rpc, "--json").stdout)
    assert (status["cursor"], status["lag"], status["headSource"]) == (118, 2, "indexer")
    assert status["eventsPerSecond"] == 1234.5


def test_indexer_status_hides_the_node_urls_secrets(run) -> None:
    """`indexer status` showed the --rpc-url as given, its password or API key included, where every
    other message shows it redacted (depin.redact): a status pasted into a ticket leaked it."""
    port = free_port()
    for url, secret in ((f"http://user:s3cret@127.0.0.1:{port}", "s3cret"),
                        (f"http://127.0.0.1:{port}/v3/0123456789abcdef0123", "0123456789abcdef0123"),
                        (f"http://127.0.0.1:{port}/?apikey=hunter2", "hunter2")):
        result = run("indexer", "status", "--rpc-url", url)
        assert result.exit_code == 0, result.stderr
        assert "127.0.0.1" in result.stdout and secret not in result.stdout + result.stderr, result.stdout


def test_user_errors_are_one_line(run, tmp_path: Path) -> None:
    """Redis down, unknown job id, bad status, malformed address, missing deployment file."""
    assert_one_line_error(run("jobs", "show", "99"), "job 99 not found in the index", "indexed up to block 118")
    assert_one_line_error(run("jobs", "show", "abc"), "malformed job id 'abc'")
    assert_one_line_error(run("jobs", "list", "--status", "bogus"), "unknown job status 'bogus'", "open, claimed")
    assert_one_line_error(run("jobs", "list", "--requester", "0x1234"), "malformed address '0x1234'")
    assert_one_line_error(run("providers", "show", "0x1234"), "malformed address")
    assert_one_line_error(run("providers", "show", REQUESTER_A), f"provider {REQUESTER_A} not found")
    missing = tmp_path / "nowhere" / "31337.json"
    assert_one_line_error(run("jobs", "list", "--deployment", str(missing)), f"deployment file {missing} not found")
    (tmp_path / "garbage.json").write_text("not json")
    garbage = str(tmp_path / "garbage.json")
    assert_one_line_error(run("jobs", "list", "--deployment", garbage), "is not a deployment file")


@pytest.mark.parametrize(
    "args",
    [("jobs", "list"), ("jobs", "show", "1"), ("providers", "list"), ("indexer", "status", "--rpc-url", "http://127.0.0.1:9"),
     ("indexer", "api", "--port", "9")],
)
def test_redis_down_is_one_line(run, args: tuple[str, ...]) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    assert_one_line_error(run(*args, env={"DEPIN_REDIS_URL": down}), "Redis is unreachable", "--redis-url")


def test_no_deployment_file_anywhere() -> None:
    """Without --deployment, DEPIN_DEPLOYMENT or a default file in the cwd, say where it looked."""
    result = CliRunner().invoke(app, ["jobs", "list"])
    assert_one_line_error(result, "no deployment file", "deployments/31337.json", "no-devnet0/deployments/31337.json")


def test_default_deployment_file_in_cwd(run, redis_url: str, deployment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".devnet" / "deployments").mkdir(parents=True)
    deployment.rename(tmp_path / ".devnet" / "deployments" / "31337.json")
    # DEPIN_DEVNET_DIR names the devnet's folder (here: an empty one, tests/conftest.py): a .devnet
    # that merely lies in the cwd is not it (a test run after the demo, in the same clone, found
    # the demo's deployment and ran `depin indexer run` against it until killed)
    assert_one_line_error(CliRunner().invoke(app, ["jobs", "list"]), "no deployment file", "no-devnet")
    monkeypatch.delenv("DEPIN_DEVNET_DIR")  # unset: .devnet in the cwd
    result = CliRunner().invoke(app, ["jobs", "list", "--json"], env={"DEPIN_REDIS_URL": redis_url})
    assert result.exit_code == 0 and json.loads(result.stdout)["total"] == 5
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / ".devnet").rename(elsewhere)
    result = CliRunner().invoke(app, ["jobs", "list", "--json"], env={"DEPIN_REDIS_URL": redis_url, "DEPIN_DEVNET_DIR": str(elsewhere)})
    assert result.exit_code == 0 and json.loads(result.stdout)["total"] == 5


def _commands(group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


def test_every_command_has_help_with_an_example() -> None:
    import typer.main

    commands = sorted(_commands(typer.main.get_group(app)))
    assert {("jobs", "list"), ("jobs", "show"), ("providers", "list"), ("indexer", "status"), ("indexer", "run"),
            ("indexer", "api"), ("version",)} <= set(commands)
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, (command, result.stdout)
        if command != ("version",):
            example = next((line for line in result.stdout.splitlines() if "Example:" in line), "")
            assert f"depin {' '.join(command)}" in example, (command, result.stdout)
    assert CliRunner().invoke(app, ["version"]).exit_code == 0


# ---------------------------------------------------------------------------------------- indexer run


class FakeIndexer:
    """Stands in for indexer.follower.Indexer: this test checks the command's wiring (config,
    signals, logs); the real indexer is tested on anvil by its own tests."""

    configs: list = []  # noqa: RUF012 - a test double collecting calls

    def __init__(self, config) -> None:
        self.configs.append(config)

    def run(self, stop: threading.Event | None = None) -> None:
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
        assert stop is not None and stop.wait(5), "SIGTERM did not set the stop event"


def test_indexer_run_builds_config_and_stops_cleanly_on_sigterm(
    monkeypatch: pytest.MonkeyPatch, deployment: Path, tmp_path: Path
) -> None:
    """Options beat environment variables, which beat the config file; SIGTERM stops the run with
    exit 0; logs are key=value lines on stderr."""
    monkeypatch.setitem(sys.modules, "indexer.follower", types.SimpleNamespace(Indexer=FakeIndexer))
    FakeIndexer.configs.clear()
    config_file = tmp_path / "indexer.toml"
    config_file.write_text('[indexer]\nfinality_depth = 12\nconfirmations = 3\nmax_range = 777\n')
    result = CliRunner().invoke(
        app,
        ["indexer", "run", "--config", str(config_file), "--deployment", str(deployment), "--confirmations", "2",
         "--redis-url", "redis://:secret@127.0.0.1:1/0"],
        env={"DEPIN_FINALITY_DEPTH": "40"},
    )
    assert result.exit_code == 0, result.stderr
    (config,) = FakeIndexer.configs
    assert (config.confirmations, config.finality_depth, config.max_range) == (2, 40, 777)
    assert config.deployment_file == deployment
    lines = result.stderr.splitlines()
    starting = [line for line in lines if 'msg="indexer starting"' in line]
    assert starting and starting[0].startswith("ts=") and "level=info" in starting[0]
    assert "confirmations=2" in starting[0]
    assert any('msg="stop requested"' in line and "signal=SIGTERM" in line for line in lines)
    assert any('msg="indexer stopped"' in line for line in lines)
    assert "secret" not in result.stderr
    assert signal.getsignal(signal.SIGTERM) is not None  # the previous handler is back


def test_indexer_run_reads_what_it_needs_from_an_executors_depin_toml(
    monkeypatch: pytest.MonkeyPatch, deployment: Path, tmp_path: Path
) -> None:
    """DEPIN_CONFIG naming an executor's depin.toml (with [network], [key], [executor], [policy]
    tables) does not break `depin indexer run`: it takes the RPC URL, the deployment (relative to
    the file) and the Redis URL and namespace, and leaves the executor's tables alone."""
    monkeypatch.setitem(sys.modules, "indexer.follower", types.SimpleNamespace(Indexer=FakeIndexer))
    FakeIndexer.configs.clear()
    config_file = tmp_path / "depin.toml"
    config_file.write_text(
        '[network]\nrpc_url = "http://127.0.0.1:9545"\ndeployment = "31337.json"\n'
        '[redis]\nurl = "redis://127.0.0.1:1/3"\nnamespace = "other"\n'
        '[key]\ndev_account = 1\n[executor]\nrole = "provider"\n[policy]\nmax_cpus = 2\n'
    )
    result = CliRunner().invoke(app, ["indexer", "run"], env={"DEPIN_CONFIG": str(config_file)})
    assert result.exit_code == 0, result.stderr
    (config,) = FakeIndexer.configs
    assert config.deployment_file == deployment
    assert (config.rpc_url, config.redis_url, config.namespace) == ("http://127.0.0.1:9545", "redis://127.0.0.1:1/3", "other")


def test_indexer_run_json_logs_and_config_errors(monkeypatch: pytest.MonkeyPatch, deployment: Path) -> None:
    monkeypatch.setitem(sys.modules, "indexer.follower", types.SimpleNamespace(Indexer=FakeIndexer))
    result = CliRunner().invoke(
        app, ["indexer", "run", "--deployment", str(deployment), "--log-format", "json"]
    )
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records[0]["msg"] == "indexer starting" and records[-1]["msg"] == "indexer stopped"
    assert_one_line_error(
        CliRunner().invoke(app, ["indexer", "run", "--deployment", str(deployment), "--confirmations", "-1"]),
        "invalid configuration: confirmations",
    )
    assert_one_line_error(
        CliRunner().invoke(app, ["indexer", "run", "--deployment", "missing.json"]),
        "deployment file missing.json not found",
    )


# ---------------------------------------------------------------------------------------- indexer api


def test_indexer_api_serves_and_stops_on_sigterm(redis_url: str, deployment: Path, sample: Keys) -> None:
    """`depin indexer api` serves the JSON API on the given port and exits 0 on SIGTERM."""
    port = free_port()
    depin = Path(sys.executable).with_name("depin")
    proc = subprocess.Popen(
        [str(depin), "indexer", "api", "--port", str(port), "--redis-url", redis_url, "--deployment", str(deployment),
         "--rpc-url", f"http://127.0.0.1:{free_port()}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.05)
        assert health.json() == {"ok": True, "redis": True}
        assert httpx.get(f"http://127.0.0.1:{port}/jobs?status=open").json()["total"] == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert "msg=" in stderr and "Traceback" not in stderr
