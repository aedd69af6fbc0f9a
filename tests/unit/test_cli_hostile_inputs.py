"""Every CLI error a user can cause is one `error:` line (exit 1) or a usage message (exit 2), never
a traceback: a table of hostile invocations over the commands `depin --help` lists, run through the
real entry point (typer's CliRunner on `depinctl.cli.app`). Hostile: files nested 100,000 deep, larger
than any real one, binary, not JSON/TOML, of the wrong shape, paths too long for the OS (one name
of 5,000 characters; 30 names of 200), a directory where a file belongs, a missing file; ports out
of range. Nothing here reaches a chain or a Redis (their URLs point at closed ports)."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from depinctl.cli import app

DEAD_RPC = "http://127.0.0.1:1"
DEAD_REDIS = "redis://127.0.0.1:1/0"
IMAGE = "depin/x@sha256:" + "ab" * 32

HOSTILE_FILES: dict[str, bytes] = {
    "nested-json-array": b"[" * 100_000,
    "nested-json-object": b'{"a":' * 100_000,
    "nested-toml": b"a = " + b"[" * 100_000,
    "huge": b"a" * (3 << 20),
    "binary": bytes(range(256)) * 64,
    "not-json": b"hello world",
    "empty": b"",
    "wrong-types": b'{"chainId":"x","network":1,"deployBlock":[],"addresses":5,"parameters":{},"deployer":"y"}',
}
HOSTILE_PATHS: dict[str, Callable[[Path], str]] = {
    "name-too-long": lambda tmp: "/tmp/" + "x" * 5_000,
    "path-too-long": lambda tmp: "/tmp/" + "/".join(["y" * 200] * 30),
    "directory": lambda tmp: str(tmp),
    "missing": lambda tmp: str(tmp / "missing.json"),
}

# Every command that reads a file or folder the user names, with `P` where the hostile path goes.
FILE_COMMANDS: list[list[str]] = [
    ["jobs", "list", "--deployment", "P", "--redis-url", DEAD_REDIS],
    ["jobs", "show", "1", "--deployment", "P", "--redis-url", DEAD_REDIS],
    ["providers", "list", "--deployment", "P", "--redis-url", DEAD_REDIS],
    ["providers", "show", "0x" + "11" * 20, "--deployment", "P", "--redis-url", DEAD_REDIS],
    ["indexer", "status", "--deployment", "P", "--redis-url", DEAD_REDIS],
    ["indexer", "run", "--deployment", "P", "--redis-url", DEAD_REDIS, "--rpc-url", DEAD_RPC],
    ["indexer", "run", "--config", "P"],
    ["indexer", "api", "--deployment", "P", "--redis-url", DEAD_REDIS],
    ["job", "status", "1", "--deployment", "P", "--rpc-url", DEAD_RPC],
    ["job", "status", "1", "--config", "P"],
    ["job", "watch", "1", "--deployment", "P", "--rpc-url", DEAD_RPC],
    ["job", "result", "1", "--out", "P", "--rpc-url", DEAD_RPC],
    ["job", "cancel", "1", "--deployment", "P", "--rpc-url", DEAD_RPC, "--dev-account", "1"],
    ["job", "challenge", "1", "--deployment", "P", "--rpc-url", DEAD_RPC, "--dev-account", "1"],
    ["job", "post", "--image", IMAGE, "--reward", "1", "--cmd", "true", "--deployment", "P", "--rpc-url", DEAD_RPC, "--dev-account", "1"],
    ["job", "post-batch", "P", "--reward", "1", "--rpc-url", DEAD_RPC, "--dev-account", "1"],
    ["job", "post-batch", "P", "--reward", "1", "--deployment", "P", "--rpc-url", DEAD_RPC, "--dev-account", "1"],
    ["job", "post-batch", "P", "--reward", "1", "--dry-run", "--keystore", "P", "--password-file", "P"],
    ["provider", "status", "--deployment", "P", "--rpc-url", DEAD_RPC],
    ["provider", "register", "--stake", "1", "--endpoint", "http://x", "--deployment", "P", "--rpc-url", DEAD_RPC, "--dev-account", "1"],
    ["provider", "stake", "1", "--keystore", "P", "--password-file", "P", "--deployment", "P", "--rpc-url", DEAD_RPC],
    ["provider", "withdraw", "--keystore", "P", "--deployment", "P", "--rpc-url", DEAD_RPC],
    ["keys", "address", "P"],
    ["keys", "import", "P", "--password-file", "P"],
    ["keys", "new", "P", "--password-file", "P"],
    ["executor", "start", "--config", "P"],
    ["executor", "reap", "--config", "P"],
    ["devnet", "logs", "--state-dir", "P"],
]
# Inputs are any bytes: only paths that cannot be read are errors for `job post --input`.
INPUT_COMMAND = ["job", "post", "--image", IMAGE, "--reward", "1", "--cmd", "true", "--input", "P", "--dry-run"]
PORT_COMMANDS: list[list[str]] = [
    ["indexer", "api", "--port", "99999"],
    ["indexer", "api", "--port", "0"],
    ["indexer", "api", "--port", "-5"],
    ["indexer", "api", "--port", "18446744073709551616"],
    ["devnet", "up", "--rpc-port", "70000"],
    ["devnet", "up", "--redis-port", "0"],
    ["devnet", "up", "--results-port", "65536"],
]


@pytest.fixture(autouse=True)
def _elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The cwd holds no default files: a deployment there (`ape run deploy` writes
    deployments/31337.json) would let `indexer run --config EMPTY` start and retry a dead node forever."""
    monkeypatch.chdir(tmp_path)


def _problem(argv: list[str]) -> str | None:
    """Why `argv` does not end as one `error:` line (exit 1) or a usage message (exit 2), if it does not."""
    result = CliRunner().invoke(app, argv)
    output = result.stdout + result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"raised {result.exception!r}"
    if "Traceback" in output:
        return "printed a traceback"
    if result.exit_code == 2:
        return None if ("Usage:" in output or "Invalid value" in output or "Missing" in output) else f"exit 2 without usage: {output[-300:]!r}"
    if result.exit_code != 1:
        return f"exit {result.exit_code}: {output[-300:]!r}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    last = result.stderr.strip().splitlines()[-1:] or [""]
    if len(errors) != 1 or not last[0].startswith("error:"):
        return f"stderr does not end in exactly one error line: {result.stderr[-400:]!r}"
    return None


def _run_table(commands: list[list[str]], path: str) -> list[str]:
    failures = []
    for command in commands:
        argv = [path if arg == "P" else arg for arg in command]
        problem = _problem(argv)
        if problem is not None:
            failures.append(f"depin {' '.join(a[:60] for a in argv)}: {problem}")
    return failures


@pytest.mark.parametrize("kind", sorted(HOSTILE_FILES))
def test_hostile_files_give_one_error_line(kind: str, tmp_path: Path) -> None:
    path = tmp_path / kind
    path.write_bytes(HOSTILE_FILES[kind])
    assert _run_table(FILE_COMMANDS, str(path)) == []


@pytest.mark.parametrize("kind", sorted(HOSTILE_PATHS))
def test_unusable_paths_give_one_error_line(kind: str, tmp_path: Path) -> None:
    path = HOSTILE_PATHS[kind](tmp_path)
    assert _run_table([*FILE_COMMANDS, INPUT_COMMAND], path) == []


def test_ports_out_of_range_are_usage_errors() -> None:
    for argv in PORT_COMMANDS:
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2, (argv, result.stdout + result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
        message = " ".join((result.stdout + result.stderr).split())
        assert "65535" in message or "greater than or equal to 1" in message or "1<=x" in message, (argv, message)


# Token amounts a user can type that Decimal cannot scale to base units (1e999999 overflowed with
# decimal.Overflow, a traceback) or that take a minute to turn into an int (1e999980).
HOSTILE_AMOUNTS = ["1e999999", "1e999980", "1e-9999999", "9" * 200]


@pytest.mark.parametrize("amount", HOSTILE_AMOUNTS)
def test_hostile_token_amounts_give_one_error_line(amount: str) -> None:
    post = ["job", "post", "--image", IMAGE, "--reward", amount, "--cmd", "true", "--dry-run", "--clear"]
    stake = ["provider", "stake", amount, "--rpc-url", DEAD_RPC, "--dev-account", "1"]
    for argv in (post, stake):
        result = CliRunner().invoke(app, argv)
        assert _problem(argv) is None, (argv, result.stderr[-400:])
        assert result.exit_code == 1 and "invalid" in result.stderr and amount[:20] in result.stderr, result.stderr


REPO = Path(__file__).resolve().parents[2]


def _cli_limited(args: list[str], mem_bytes: int, stdin: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `depin ARGS` in a child whose address space is capped at `mem_bytes`."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))

    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    with open(stdin or os.devnull, "rb") as source:
        return subprocess.run([sys.executable, "-m", "depinctl.cli", *args], capture_output=True, text=True, stdin=source,
                              preexec_fn=limit, env=env, timeout=timeout, cwd=REPO)


def test_job_post_hashes_a_large_input_file_without_reading_it_whole(tmp_path: Path) -> None:
    """`--input FILE` hashes the file as it reads it: a 3 GB dataset (sent as a file:// URI) under
    a 1.5 GB address-space cap used to end in a MemoryError traceback (path.read_bytes())."""
    big = tmp_path / "dataset.bin"
    with open(big, "wb") as fh:
        fh.truncate(3 << 30)  # sparse: no disk used
    proc = _cli_limited(["job", "post", "--image", IMAGE, "--reward", "1", "--cmd", "true", "--input", str(big),
                         "--dry-run", "--clear"], mem_bytes=1_500_000_000)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-600:]
    assert big.as_uri() in proc.stdout
    small = tmp_path / "small.bin"  # hashed alike; embedded as a data: URI up to DATA_URI_MAX
    for size, embedded in ((2_048, True), (2_049, False)):
        small.write_bytes(b"x" * size)
        result = CliRunner().invoke(app, ["job", "post", "--image", IMAGE, "--reward", "1", "--cmd", "true", "--input",
                                          str(small), "--dry-run", "--clear"])
        item = json.loads(result.stdout)["inputs"][0]
        assert item["sha256"] == hashlib.sha256(b"x" * size).hexdigest()
        assert item["uri"].startswith("data:") is embedded


@pytest.mark.parametrize("source", ["/dev/zero", "-"])
def test_post_batch_reads_no_more_than_the_spec_limit(source: str) -> None:
    """`job post-batch /dev/zero` (or a huge file, or `-` fed an endless stream) used to read it all
    before the 16 KiB spec limit: a MemoryError traceback or the OOM killer. Now refused after
    MAX_SPEC_BYTES + 1 bytes of a file or a line."""
    proc = _cli_limited(["job", "post-batch", source, "--reward", "1", "--dry-run"], mem_bytes=1_000_000_000,
                        stdin=Path("/dev/zero") if source == "-" else None, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-600:]
    assert proc.stderr.startswith("error: ") and "spec is more than 16384 bytes; the limit is 16384" in proc.stderr, proc.stderr


@pytest.mark.parametrize("case", ["keys new --password-file", "keys new stdin", "keys import stdin", "job post --password-file"])
def test_a_password_or_key_line_is_read_bounded(case: str, tmp_path: Path) -> None:
    """A password is the first line of --password-file (or of stdin when it is no terminal), a key
    the first line of stdin: /dev/zero (or any file with no line end: a disk image named by mistake)
    was read whole for it, a MemoryError traceback under a 1 GB cap (the OOM killer without one).
    Now refused after a bounded read, one error line."""
    from depin.accounts import new_keystore

    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    pw.chmod(0o600)  # a password file others may read is refused
    new_keystore(tmp_path / "k.json", "pw", kdf_n=2**4)
    args, stdin = {
        "keys new --password-file": (["keys", "new", str(tmp_path / "a.json"), "--password-file", "/dev/zero"], None),
        "keys new stdin": (["keys", "new", str(tmp_path / "b.json")], Path("/dev/zero")),
        "keys import stdin": (["keys", "import", str(tmp_path / "c.json"), "--password-file", str(pw)], Path("/dev/zero")),
        "job post --password-file": (["job", "post", "--image", IMAGE, "--reward", "1", "--cmd", "true", "--dry-run",
                                      "--keystore", str(tmp_path / "k.json"), "--password-file", "/dev/zero"], None),
    }[case]
    proc = _cli_limited(args, mem_bytes=1_000_000_000, stdin=stdin, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-600:]
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-600:]
    assert "line" in proc.stderr and not (tmp_path / "a.json").exists() and not (tmp_path / "b.json").exists()
