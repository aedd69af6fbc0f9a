"""Options whose bad values the CLI took, or refused in someone else's words: each is refused at the
option, in one line naming it, before any node or Redis is asked (their URLs point at closed ports),
through the real entry point (typer's CliRunner on `depinctl.cli.app`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from depin.deployment import Deployment, write_deployment
from depinctl.cli import app
from indexer.query import LISTABLE_STATUSES

DEAD_RPC = "http://127.0.0.1:1"
DEAD_REDIS = "redis://127.0.0.1:1/0"
IMAGE = "depin/x@sha256:" + "ab" * 32
KEY = ["--dev-account", "1", "--rpc-url", DEAD_RPC]


@pytest.fixture(autouse=True)
def _elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No deployment file, devnet or config in the cwd or the environment: nothing to reach."""
    monkeypatch.chdir(tmp_path)
    for name in ("DEPIN_CONFIG", "DEPIN_DEPLOYMENT", "DEPIN_RPC_URL", "DEPIN_KEYSTORE", "DEPIN_DEVNET_DIR"):
        monkeypatch.delenv(name, raising=False)


def _error_line(argv: list[str]) -> str:
    """The one `error:` line of `depin ARGV`, which must exit 1."""
    result = CliRunner().invoke(app, argv)
    output = result.stdout + result.stderr
    assert result.exit_code == 1, (argv, result.exit_code, output)
    assert "Traceback" not in output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _usage_error(argv: list[str]) -> str:
    """The usage message of `depin ARGV`, which must exit 2, on one line."""
    result = CliRunner().invoke(app, argv, env={"COLUMNS": "400"})
    output = result.stdout + result.stderr
    assert result.exit_code == 2, (argv, result.exit_code, output)
    assert "Traceback" not in output
    return " ".join(output.replace("│", " ").split())


# ------------------------------------------------------------------------------------ provider register --endpoint

# The endpoint is the public base URL of the provider's result server (`[executor] results_url`):
# shown by `provider status` and the indexer; requesters fetch results over http(s) from a host.
BAD_ENDPOINTS = [
    "foo", "", " ", "127.0.0.1:8700", "ftp://results.example.net", "file:///srv/results", "javascript:alert(1)",
    "http://", "https://:8700", "http:///results", "http://host:99999", "http://host:port",
    "http://results example.net", "http://host/\x1b[2J", "http://user:secret@results.example.net",
    "http://results.example.net/?token=secret", "https://results.example.net/base?key=secret", "http://results.example.net/#x",
]


@pytest.mark.parametrize("endpoint", BAD_ENDPOINTS)
def test_provider_register_refuses_an_endpoint_that_is_no_http_url(endpoint: str) -> None:
    line = _error_line(["provider", "register", "--stake", "500", "--endpoint", endpoint, *KEY])
    assert "--endpoint" in line and "http(s)://HOST" in line, line
    assert "secret" not in line and "\x1b" not in line, line


@pytest.mark.parametrize(
    "endpoint", ["http://203.0.113.7:8700", "https://results.example.net", "http://[::1]:8700/base/", "HTTPS://Host"]
)
def test_provider_register_takes_an_http_endpoint(endpoint: str) -> None:
    """A good endpoint passes the check: the command goes on to its deployment (none here)."""
    line = _error_line(["provider", "register", "--stake", "500", "--endpoint", endpoint, *KEY])
    assert "no deployment file" in line, line


# ------------------------------------------------------------------------------------ provider unstake 0


@pytest.mark.parametrize("command", ["unstake", "stake"])
@pytest.mark.parametrize("amount", ["0", "0.0", "0e5"])
def test_a_zero_stake_or_unstake_is_refused_before_the_node_is_asked(command: str, amount: str) -> None:
    line = _error_line(["provider", command, amount, *KEY])
    assert "must be positive" in line and repr(amount) in line, line


# ------------------------------------------------------------------------------------ job post --cpus

POST = ["job", "post", "--image", IMAGE, "--reward", "1", "--cmd", "true", "--dry-run", "--clear"]


@pytest.mark.parametrize("cpus", ["inf", "-inf", "nan", "1e400", "0", "-1", "0.001", "65"])
def test_job_post_refuses_cpus_out_of_range_at_the_option(cpus: str) -> None:
    message = _error_line([*POST, "--cpus", cpus])
    assert message.startswith("error: --cpus must be a number of CPUs from 0.01 to 64, not "), message
    assert "JCS" not in message and "resources.cpus" not in message, message


def test_job_post_takes_cpus_in_range_and_its_help_says_the_spec_bounds() -> None:
    from depin.spec import MAX_CPUS, MIN_CPUS

    result = CliRunner().invoke(app, ["job", "post", "--help"], env={"COLUMNS": "400", "TERM": "dumb"})
    assert f"CPUs (fractional allowed, {MIN_CPUS:g} to {MAX_CPUS:g})" in " ".join(result.stdout.replace("│", " ").split())
    for cpus in ("0.01", "0.5", "64"):
        result = CliRunner().invoke(app, [*POST, "--cpus", cpus])
        assert result.exit_code == 0, (cpus, result.stdout, result.stderr)


# ------------------------------------------------------------------------------------ jobs list --status


def test_jobs_list_status_help_names_every_status_it_takes(tmp_path: Path) -> None:
    market = {"JobMarket": "0x" + "33" * 20}
    file = write_deployment(Deployment(31337, "devnet", 1, market, {}, "0x" + "55" * 20), tmp_path)
    index = ["--redis-url", DEAD_REDIS, "--deployment", str(file)]

    result = CliRunner().invoke(app, ["jobs", "list", "--help"], env={"COLUMNS": "400", "TERM": "dumb"})
    assert result.exit_code == 0
    shown = " ".join(result.stdout.replace("│", " ").split())
    for status in LISTABLE_STATUSES:
        assert status.lower() in shown, (status, shown)
        # and each one it names is taken (by the reader's parser: Redis is not reached before it)
        line = _error_line(["jobs", "list", "--status", status.lower(), *index])
        assert "Redis is unreachable" in line, line
    assert "pruned" in shown
    line = _error_line(["jobs", "list", "--status", "nosuch", *index])
    assert all(s.lower() in line for s in LISTABLE_STATUSES), line


# ------------------------------------------------------------------------------------ executor --config


@pytest.mark.parametrize("command", ["start", "worker", "beat", "dispatcher", "results", "reap", "health", "status"])
def test_executor_config_that_is_missing_is_one_error_line_like_elsewhere(command: str, tmp_path: Path) -> None:
    line = _error_line(["executor", command, "--config", str(tmp_path / "missing.toml")])
    assert "config file" in line and "missing.toml not found" in line, line
    # as `provider status --config` says it
    other = _error_line(["provider", "status", "--config", str(tmp_path / "missing.toml")])
    assert line == other
    line = _error_line(["executor", command, "--config", str(tmp_path)])
    assert "cannot read config file" in line, line


# ------------------------------------------------------------------------------------ devnet logs -n


def test_devnet_logs_refuses_a_negative_line_count(tmp_path: Path) -> None:
    message = _usage_error(["devnet", "logs", "-n", "-1", "--state-dir", str(tmp_path)])
    assert "--lines" in message and "0" in message, message


def test_devnet_logs_takes_zero_lines(tmp_path: Path) -> None:
    """-n 0: no old lines (with -f, only new ones); here no devnet, which is the error."""
    line = _error_line(["devnet", "logs", "-n", "0", "--state-dir", str(tmp_path)])
    assert "no logs" in line, line


def _parsed(command: str, *args: str) -> dict:
    """The parameters `depin COMMAND ARGS` is called with (parsed by click as the CLI parses them;
    nothing runs)."""
    import typer.main

    cmd = typer.main.get_command(app)
    for name in command.split():
        cmd = cmd.commands[name]
    return dict(cmd.make_context(command, list(args)).params)


def test_both_spellings_of_the_flower_option_work_on_both_commands() -> None:
    """`executor start --flower` and `devnet up --with-flower` mean the same (also run Flower): each
    command accepts the other's spelling too (neither is renamed: scripts use them). The approve
    options are not aliased: `job post --permit/--approve` picks how the escrow is approved,
    `post-batch --approve/--no-approve` whether to approve at all (there is no permit for a batch);
    both take --approve, meaning an approve transaction."""
    for spelling in ("--flower", "--with-flower"):
        assert _parsed("executor start", spelling)["flower"] is True
        assert _parsed("devnet up", spelling)["with_flower"] is True
    assert _parsed("executor start", "--metrics", "x")["flower"] is False
    assert _parsed("devnet up", "--quiet")["with_flower"] is False
    assert _parsed("job post", "--image", IMAGE, "--cmd", "true", "--reward", "1", "--approve")["permit"] is False
    assert _parsed("job post-batch", "spec.json", "--reward", "1", "--approve")["approve"] is True
