"""The `depin keys`, `depin job` and `depin provider` commands, end to end on the session's anvil,
and every bad input a user can give: one line on stderr starting with "error:", exit status 1,
never a traceback."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from eth_account import Account
from typer.testing import CliRunner

from depin.accounts import dev_account, new_keystore
from depin.deployment import REPO_ROOT, Deployment, to_wei, write_deployment
from depin.outputs import build_archive
from depinctl import cli_job
from depinctl.cli import _redact, app
from depinctl.procs import free_port, start_anvil

from .conftest import DIGEST, Devnet
from .served import serve

if TYPE_CHECKING:
    from depin.client import Client

IMAGE = f"depin/test@sha256:{DIGEST}"


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    runner = CliRunner()
    result = runner.invoke(app, [str(a) for a in args], input=input, env=env, catch_exceptions=True)
    return result


def ok(*args: str, **kwargs):
    result = run(*args, **kwargs)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def fails(*args: str, match: str, **kwargs) -> str:
    result = run(*args, **kwargs)
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert match in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def net(devnet: Devnet) -> list[str]:
    return ["--rpc-url", devnet.url, "--deployment", str(devnet.deployment_file)]


# ------------------------------------------------------------------------------------ keys


def test_keys_new_import_address(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    pw.chmod(0o600)  # a password file others may read is refused
    result = ok("keys", "new", tmp_path / "a.json", "--password-file", pw)
    address = result.stdout.strip()
    assert address.startswith("0x") and len(address) == 42
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o600
    assert ok("keys", "address", tmp_path / "a.json").stdout.strip() == address
    assert ok("keys", "address", tmp_path / "a.json", "--check", "--password-file", pw).stdout.strip() == address
    fails("keys", "address", tmp_path / "a.json", "--check", "--password-file", tmp_path / "nope",
          match="password file")
    fails("keys", "new", tmp_path / "a.json", "--password-file", pw, match="exists already")

    key = Account.create()
    result = ok("keys", "import", tmp_path / "b.json", "--password-file", pw, input=key.key.hex() + "\n")
    assert result.stdout.strip() == key.address
    assert key.key.hex() not in result.stdout + result.stderr
    # the password from the environment, the key from stdin
    result = ok("keys", "import", tmp_path / "c.json", input="0x" + key.key.hex() + "\n",
                env={"DEPIN_KEYSTORE_PASSWORD": "from-env"})
    assert result.stdout.strip() == key.address
    line = fails("keys", "import", tmp_path / "d.json", "--password-file", pw, input="not-a-key\n", match="not hex")
    assert "not-a-key" not in line
    fails("keys", "import", tmp_path / "e.json", "--password-file", pw, input="", match="no private key")
    fails("keys", "new", tmp_path / "a.json" / "inside.json", "--password-file", pw, match="cannot write")
    fails("keys", "new", tmp_path / "f.json", match="no keystore password", input="")
    fails("keys", "import", tmp_path / "g.json", "--password-file", pw, input="ff" * 32 + "\n",
          match="out of range for secp256k1")


def test_keys_new_on_an_existing_file_names_force(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    pw.chmod(0o600)  # a password file others may read is refused
    first = ok("keys", "new", tmp_path / "a.json", "--password-file", pw).stdout.strip()
    for command, stdin in (("new", None), ("import", "11" * 32 + "\n")):
        line = fails("keys", command, tmp_path / "a.json", "--password-file", pw, input=stdin, match="exists already")
        assert "--force overwrites it" in line, line
        # refused before the key or a password is asked for: none given here, and none needed
        line = fails("keys", command, tmp_path / "a.json", input="", env={"DEPIN_KEYSTORE_PASSWORD": ""},
                     match="exists already")
        assert "--force overwrites it" in line, line
    assert ok("keys", "address", tmp_path / "a.json").stdout.strip() == first  # untouched
    second = ok("keys", "new", tmp_path / "a.json", "--password-file", pw, "--force").stdout.strip()
    assert second != first and ok("keys", "address", tmp_path / "a.json").stdout.strip() == second


def test_keys_address_of_what_is_no_keystore_says_so(tmp_path: Path) -> None:
    """`keys address /dev/zero` said "not found" for a path that exists; `keys address notes.txt`
    asked for a password: both are said before any password is asked for (a FIFO is never opened)."""
    import os

    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    (tmp_path / "other.json").write_text('{"address": "0x' + "11" * 20 + '"}')
    os.mkfifo(tmp_path / "fifo")
    no_password = {"DEPIN_KEYSTORE_PASSWORD": ""}
    for command in ("address", "pubkey"):
        fails("keys", command, "/dev/zero", match="keystore /dev/zero is not a regular file", env=no_password)
        fails("keys", command, tmp_path / "fifo", match="is not a regular file", env=no_password)
        fails("keys", command, notes, match="notes.txt is not a JSON keystore", input="\n", env=no_password)
        fails("keys", command, tmp_path / "other.json", match="is not a JSON keystore (no 'crypto' section)", env=no_password)
        fails("keys", command, tmp_path / "missing.json", match="not found", env=no_password)
    fails("job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1", "--dry-run", "--keystore", notes,
          match="not a JSON keystore", env=no_password)


def in_terminal(*args: str, answer: str, prompt: bytes = b"password for ", timeout: float = 60) -> tuple[int, str]:
    """`depin ARGS` run in a new pseudo-terminal that is its controlling terminal (as a shell gives
    it; getpass reads /dev/tty), with no password in its environment: types `answer` and Enter once
    `prompt` shows. Its exit status and all it wrote to the terminal."""
    hidden = ("DEPIN_KEYSTORE_PASSWORD", "DEPIN_PASSWORD_FILE", "DEPIN_KEYSTORE", "DEPIN_CONFIG")
    env = {k: v for k, v in os.environ.items() if k not in hidden} | {"PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "depinctl.cli", *map(str, args)]
    pid, fd = pty.fork()
    if pid == 0:  # the child: nothing of pytest runs here
        try:
            os.execve(sys.executable, argv, env)
        finally:
            os._exit(127)
    out, answered, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not answered and prompt in out and not termios.tcgetattr(fd)[3] & termios.ECHO:
                # typed once getpass has turned echo off (it flushes what was typed before)
                os.write(fd, answer.encode() + b"\r")
                answered = True
            if not select.select([fd], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child has closed the terminal
                break
            if not chunk:
                break
            out += chunk
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return status, out.decode(errors="replace")


def test_a_keystore_password_is_asked_for_on_a_terminal(tmp_path: Path) -> None:
    """`keys pubkey FILE` and `keys address FILE --check` said "no keystore password" on a terminal,
    where their --password-file help promises a prompt: they ask for it, as `job post --keystore`
    does (all three through cli_keys.keystore_password), and the typed password is not echoed."""
    keystore = tmp_path / "me.json"
    address = new_keystore(keystore, "s3cret words")
    pubkey = ok("keys", "pubkey", keystore, env={"DEPIN_KEYSTORE_PASSWORD": "s3cret words"}).stdout.strip()
    for args, shown in (
        (("keys", "pubkey", keystore), pubkey),
        (("keys", "address", keystore, "--check"), address),
        (("job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1", "--dry-run", "--keystore", keystore), pubkey),
    ):
        status, out = in_terminal(*args, answer="s3cret words")
        assert status == 0 and f"password for {keystore}" in out, (args, out)
        assert shown.lower() in out.lower() and "s3cret" not in out, (args, out)
    status, out = in_terminal("keys", "address", keystore, "--check", answer="wrong words")
    assert status == 1 and f"password for {keystore}" in out and "error: " in out and "Traceback" not in out, out


# ------------------------------------------------------------------------------------ job


def test_job_post_status_cancel(devnet: Devnet, tmp_path: Path) -> None:
    requester = dev_account(1, 31337).address
    devnet.chain.fund([requester], to_wei(10), approve=False)
    before = devnet.client().token_balance(requester)
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 5000)  # above the data: URI limit: becomes a file:// URI
    small = tmp_path / "small.txt"
    small.write_text("hi")
    result = ok("job", "post", "--image", IMAGE, "--cmd", "sha256sum", "--cmd", "/in/data.bin",
                "--input", data, "--input", f"notes={small}", "--cpus", "0.5", "--memory", "1g",
                "--max-runtime", "30", "--reward", "1.5", "--claim-window", "600", "--env", "A=1",
                "--dev-account", "1", *net(devnet))
    job_id = int(result.stdout.strip())
    assert "posted job" in result.stderr and "audit fee 6.6 escrowed (verify reexec" in result.stderr
    client = devnet.client()
    assert client.token_balance(requester) == before - to_wei("8.13")  # R + 2 % fee + 4.4 R audit escrow
    unaudited = ok("job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1", "--verify", "none",
                   "--match", "result.json", "--dev-account", "1", *net(devnet))
    assert "audit fee 0 escrowed (verify none, audit rate 0 %)" in unaudited.stderr
    posted = json.loads(client.spec_bytes(int(unaudited.stdout.strip())))
    assert posted["verify"] == "none" and posted["output"] == {"match": ["result.json"]}
    fails("job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1", "--verify", "maybe", "--dev-account", "1",
          *net(devnet), match="--verify must be reexec or none")
    spec = json.loads(client.spec_bytes(job_id))
    assert spec["command"] == ["sha256sum", "/in/data.bin"] and spec["env"] == {"A": "1"}
    assert spec["resources"] == {"cpus": 0.5, "memory_mb": 1024, "max_runtime": 30, "output_mb": 16}
    inputs = {i["path"]: i for i in spec["inputs"]}
    assert inputs["data.bin"]["uri"] == data.resolve().as_uri()
    assert inputs["notes"]["uri"].startswith("data:;base64,")
    import hashlib

    assert inputs["data.bin"]["sha256"] == hashlib.sha256(b"x" * 5000).hexdigest()

    status = json.loads(ok("job", "status", job_id, "--json", *net(devnet)).stdout)
    assert status["status"] == "Open" and status["requester"] == requester and status["reward"] == str(to_wei("1.5"))
    assert "Open" in ok("job", "status", job_id, *net(devnet)).stdout

    fails("job", "cancel", job_id, "--dev-account", "2", *net(devnet), match="was posted by")
    out = ok("job", "cancel", job_id, "--dev-account", "1", *net(devnet)).stdout
    assert f"cancelled job {job_id}" in out
    fails("job", "cancel", job_id, "--dev-account", "1", *net(devnet), match="is Cancelled")
    # the cmd as one string, split like a shell; --approve instead of a permit
    result = ok("job", "post", "--image", IMAGE, "--cmd", "sh -c 'echo hi > /out/x'", "--reward", "1",
                "--approve", "--dev-account", "1", *net(devnet))
    spec = json.loads(client.spec_bytes(int(result.stdout)))
    assert spec["command"] == ["sh", "-c", "echo hi > /out/x"]


def _new_provider(devnet: Devnet) -> Client:
    """A fresh account with ether, tokens and a registration: a provider that claims and publishes by hand."""
    from depin.client import Client

    provider = Client.connect(devnet.url, devnet.deployment_file, Account.create())
    devnet.chain.rpc.call("anvil_setBalance", [provider.address, hex(10**20)])
    devnet.chain.fund([provider.address], to_wei(1_000), approve=False)
    provider.register(to_wei(200), "http://provider")
    return provider

def test_job_post_seals_the_result_to_the_signing_key_unless_clear(devnet: Devnet, tmp_path: Path) -> None:
    """`job post` adds the signing key's public key as delivery.encrypt_to (in the posted bytes and
    the specHash); --encrypt-to seals to another key, --clear to none; `job result` opens a sealed
    result with the poster's key only. --dry-run shows the key when a key option is given."""
    from depin.delivery import public_key_of
    from depin.spec import parse_spec

    from .served import publish

    me, friend = dev_account(7, 31337), dev_account(8, 31337)
    mine, theirs = ("0x" + public_key_of(bytes(a.key)).hex() for a in (me, friend))
    devnet.chain.fund([me.address], to_wei(30), approve=False)
    base_args = ["job", "post", "--image", IMAGE, "--cmd", "sh -c 'echo sealed > /out/r.txt'", "--reward", "1"]
    client = devnet.client()

    def posted(*extra: str) -> tuple[int, dict, str]:
        result = ok(*base_args, *extra, *net(devnet))
        job_id = int(result.stdout.strip())
        raw = client.spec_bytes(job_id)
        parse_spec(raw, client.job(job_id).spec_hash)  # canonical, and the specHash covers the field
        return job_id, json.loads(raw), result.stderr

    sealed_id, spec, note = posted("--dev-account", "7")
    assert spec["delivery"] == {"encrypt_to": mine} and "result sealed to your key" in note
    ignored_id, _, _ = posted("--dev-account", "7")  # sealed too; its provider will publish it in plaintext
    clear_id, spec, note = posted("--dev-account", "7", "--clear")
    assert "delivery" not in spec and "result in the clear" in note
    _, spec, note = posted("--dev-account", "7", "--encrypt-to", theirs)
    assert spec["delivery"] == {"encrypt_to": theirs} and "sealed to the --encrypt-to key" in note
    fails(*base_args, "--dev-account", "7", "--clear", "--encrypt-to", theirs, *net(devnet), match="contradict")
    assert "--clear" in ok("job", "post", "--help").stdout

    dry = ok(*base_args, "--dry-run", "--dev-account", "7")  # no node needed
    assert json.loads(dry.stdout)["delivery"] == {"encrypt_to": mine}
    dry = ok(*base_args, "--dry-run")
    assert "delivery" not in json.loads(dry.stdout) and "give the key option to see it, or --clear" in dry.stderr
    dry = ok(*base_args, "--dry-run", "--dev-account", "7", "--clear")
    assert "delivery" not in json.loads(dry.stdout) and dry.stderr == ""

    out = tmp_path / "out"
    out.mkdir()
    (out / "r.txt").write_text("sealed\n")
    archive = build_archive(out, 0, tmp_path / "r.tar")
    provider = _new_provider(devnet)
    files: dict[str, bytes] = {}
    with serve(files) as base:
        from executor.results import ResultStore

        store = ResultStore(tmp_path / "store", base)
        for job_id in (sealed_id, clear_id, ignored_id):
            provider.claim(job_id)
            publish(provider, job_id, archive, store, files, tmp_path, ignore_sealing=job_id == ignored_id)
        fails("job", "result", sealed_id, "--out", tmp_path / "anon", *net(devnet), match="sealed to the requester's key")
        fails("job", "result", sealed_id, "--out", tmp_path / "other", "--dev-account", "8", *net(devnet),
              match="not encrypted to this key")
        got = ok("job", "result", sealed_id, "--out", tmp_path / "mine", "--dev-account", "7", *net(devnet))
        assert "delivered sealed to your key" in got.stdout and (tmp_path / "mine" / "r.txt").read_text() == "sealed\n"
        public = ok("job", "result", clear_id, "--out", tmp_path / "public", *net(devnet))  # anyone reads --clear
        assert "sealed" not in public.stdout and (tmp_path / "public" / "r.txt").read_text() == "sealed\n"
        assert got.stderr == "" and public.stderr == ""
        # the spec asked for sealing, the provider published plaintext: it matches, so it is extracted,
        # with a warning that says so and what to do
        leaked = ok("job", "result", ignored_id, "--out", tmp_path / "leaked", "--dev-account", "7", *net(devnet))
        assert "sealed" not in leaked.stdout and (tmp_path / "leaked" / "r.txt").read_text() == "sealed\n"
        assert leaked.stderr.startswith("warning: ") and "published it in plaintext" in leaked.stderr
        assert "depin job challenge" in leaked.stderr


def test_job_result_with_the_wrong_key_says_whose_key_opens_it(devnet: Devnet, tmp_path: Path) -> None:
    """A sealed result opened with another account's key: the error line names the account whose
    key opens it (the poster, or the --encrypt-to key's account) and the options that give a key;
    it prints addresses only, never a key."""

    from .served import publish

    me, friend = dev_account(7, 31337), dev_account(8, 31337)
    devnet.chain.fund([me.address], to_wei(30), approve=False)
    post = ["job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1", "--dev-account", "7", *net(devnet)]
    to_me = int(ok(*post).stdout)
    friend_key = ok("keys", "pubkey", "--dev-account", "8").stdout.strip()
    to_friend = int(ok(*post, "--encrypt-to", friend_key).stdout)
    missealed = int(ok(*post).stdout)  # its provider seals it to the friend's key, not the spec's
    out = tmp_path / "out"
    out.mkdir()
    archive = build_archive(out, 0, tmp_path / "r.tar")
    provider = _new_provider(devnet)
    files: dict[str, bytes] = {}
    with serve(files) as base:
        from executor.results import ResultStore

        store = ResultStore(tmp_path / "store", base)
        for job_id in (to_me, to_friend, missealed):
            provider.claim(job_id)
            publish(provider, job_id, archive, store, files, tmp_path,
                    seal_to=bytes.fromhex(friend_key[2:]) if job_id == missealed else None)
        line = fails("job", "result", to_me, "--out", tmp_path / "a", "--dev-account", "8", *net(devnet),
                     match="not encrypted to this key")
        assert f"sealed to the key of {me.address} (the account that posted it)" in line, line
        assert "give that account's key (--keystore or --dev-account)" in line and friend.address in line
        line = fails("job", "result", to_friend, "--out", tmp_path / "b", "--dev-account", "7", *net(devnet),
                     match="not encrypted to this key")
        assert f"sealed to the key of {friend.address} (the --encrypt-to key it was posted with)" in line, line
        assert "give that account's key (--keystore or --dev-account)" in line
        for account in (me, friend):
            assert account.key.hex().removeprefix("0x") not in line
        ok("job", "result", to_friend, "--out", tmp_path / "c", "--dev-account", "8", *net(devnet))
        # the poster's own key, which the spec names, does not open it: the provider's doing, not the user's
        line = fails("job", "result", missealed, "--out", tmp_path / "d", "--dev-account", "7", *net(devnet),
                     match="not encrypted to this key")
        assert "it is the key the job's spec names, so the provider sealed it to another key" in line, line


def test_job_post_bad_inputs(devnet: Devnet, tmp_path: Path) -> None:
    common = ["--cmd", "true", "--dev-account", "3", *net(devnet)]
    fails("job", "post", "--image", "ubuntu:latest", "--reward", "1", *common, match="malformed image reference")
    fails("job", "post", "--image", IMAGE, "--reward", "1", "--input", tmp_path / "nope.bin", *common,
          match="input file")
    fails("job", "post", "--image", IMAGE, "--reward", "lots", *common, match="invalid reward")
    fails("job", "post", "--image", IMAGE, "--reward", "1", "--env", "NOEQUALS", *common, match="--env")
    fails("job", "post", "--image", IMAGE, "--reward", "1", "--memory", "huge", *common, match="invalid memory")
    fails("job", "post", "--image", IMAGE, "--reward", "1", "--cpus", "100", *common, match="cpus")
    poor = Account.create()
    devnet.chain.rpc.call("anvil_setBalance", [poor.address, hex(10**18)])
    ks = tmp_path / "poor.json"
    from depin.accounts import import_key

    import_key(poor.key, ks, "pw", kdf_n=2**10)
    (tmp_path / "pw").write_text("pw\n")
    (tmp_path / "pw").chmod(0o600)  # a password file others may read is refused
    fails("job", "post", "--image", IMAGE, "--reward", "2", "--cmd", "true", "--keystore", ks,
          "--password-file", tmp_path / "pw", *net(devnet), match="insufficient DPC balance")
    fails("job", "post", "--image", IMAGE, "--reward", "2", "--cmd", "true", "--keystore", ks,
          "--password-file", tmp_path / "wrong", *net(devnet), match="password file")
    fails("job", "post", "--image", IMAGE, "--reward", "1", "--cmd", "true", *net(devnet), match="no signing key")
    fails("job", "post", "--image", IMAGE, "--reward", "1", "--claim-window", "1", *common,
          match="claim window 1 s is outside")
    # C6: above minStake / sigma of the court (50 on the devnet) no verifier could be seated for it
    fails("job", "post", "--image", IMAGE, "--reward", "50.000000000000000001", *common,
          match="exceeds the market's cap of 50 per job")


def test_job_post_refuses_a_spec_over_the_size_limit(tmp_path: Path) -> None:
    """A spec whose canonical bytes exceed 16 KiB is one that no executor runs: `job post` refuses it,
    --dry-run included (it used to print it and exit 0)."""
    big = ["--image", IMAGE, "--cmd", "true", "--reward", "1", "--env", "A=" + "x" * 20_000]
    fails("job", "post", *big, "--clear", "--dry-run", match="bytes; the limit is 16384")
    fails("job", "post", *big, "--dry-run", "--dev-account", "3", match="the limit is 16384")
    fails("job", "post", *big, "--rpc-url", "http://127.0.0.1:1", "--dev-account", "3", match="the limit is 16384")


# ------------------------------------------------------------------------------------ job post-batch

BATCH = ["--dev-account", "9"]  # Anvil's account 9: no other test here signs with it


def _batch_files(tmp_path: Path) -> list[Path]:
    """Three spec files: two printed by `job post --dry-run` (the second verify none), one written by
    hand, pretty-printed with its keys out of order and "cpus": 1.0 (not the canonical form)."""
    files = []
    for n, extra in enumerate(([], ["--verify", "none"])):
        dry = ok("job", "post", "--image", IMAGE, "--cmd", f"echo batch {n}", "--reward", "1", "--dry-run", "--clear", *extra)
        files.append(tmp_path / f"dry{n}.json")
        files[-1].write_text(dry.stdout)
    hand = {"v": 1, "resources": {"output_mb": 16, "max_runtime": 30, "memory_mb": 64, "cpus": 1.0},
            "inputs": [], "env": {"B": "2"}, "command": ["echo", "by hand"], "image": IMAGE}
    files.append(tmp_path / "hand.json")
    files[-1].write_text(json.dumps(hand, indent=2) + "\n")
    return files


def _posted_in(devnet: Devnet, tx_hash: str) -> list[tuple[int, bytes]]:
    """(job id, specHash) of each JobPosted event of the market in transaction `tx_hash`, in log order."""
    from depin.contracts import JobMarket

    receipt = devnet.chain.rpc.get_receipt(tx_hash)
    assert receipt is not None and int(receipt["status"], 16) == 1
    market = devnet.deployment.addresses["JobMarket"].lower()
    return [
        (int(log["topics"][1], 16), bytes.fromhex(log["topics"][3][2:]))
        for log in receipt["logs"]
        if log["address"].lower() == market and log["topics"][0] == JobMarket.TOPICS["JobPosted"]
    ]


def test_job_post_batch_posts_every_spec_in_one_transaction(devnet: Devnet, tmp_path: Path) -> None:
    """Three spec files (formatting aside) become three jobs of one postJobs transaction, in order:
    each posted as its canonical bytes plus the signing key as delivery.encrypt_to, its specHash
    the keccak of those bytes, its verify mode its spec's; the summary's escrow is what left the wallet."""
    import re

    from eth_utils import keccak

    from depin.delivery import public_key_of
    from depin.market import VerifyMode
    from depin.spec import parse_spec
    from depinctl.cliutil import format_amount

    me = dev_account(9, 31337)
    mine = "0x" + public_key_of(bytes(me.key)).hex()
    devnet.chain.fund([me.address], to_wei(50), approve=False)
    client = devnet.client()
    files = _batch_files(tmp_path)
    assert files[2].read_bytes() != parse_spec(files[2].read_bytes()).to_bytes()  # the hand-written one is not canonical
    count, before = client.job_count(), client.token_balance(me.address)

    result = ok("job", "post-batch", *files, "--reward", "0.5", *BATCH, *net(devnet))
    ids = [int(line) for line in result.stdout.splitlines()]
    assert len(ids) == 3 and ids == list(range(ids[0], ids[0] + 3)) and client.job_count() == count + 3
    m = re.search(r"tx (0x[0-9a-f]{64}), gas ([\d,]+) \(([\d,]+) per job\)", result.stderr)
    assert m, result.stderr
    tx_hash, gas = m.group(1), int(m.group(2).replace(",", ""))
    assert int(m.group(3).replace(",", "")) == gas // 3
    assert int(devnet.chain.rpc.get_receipt(tx_hash)["gasUsed"], 16) == gas
    events = _posted_in(devnet, tx_hash)
    assert [job_id for job_id, _ in events] == ids  # all three in this one transaction, in the files' order

    jobs = [client.job(job_id) for job_id in ids]
    for job_id, job, (_, event_hash), source in zip(ids, jobs, events, files, strict=True):
        raw = client.spec_bytes(job_id)
        assert job.spec_hash == keccak(raw) == event_hash
        parse_spec(raw, job.spec_hash)  # canonical
        posted = json.loads(raw)
        assert posted.pop("delivery") == {"encrypt_to": mine}  # sealed to the signing key by default
        assert posted == json.loads(source.read_text())
        assert job.requester == me.address and job.reward == to_wei("0.5")
    assert [job.verify_mode for job in jobs] == [VerifyMode.REEXEC, VerifyMode.NONE, VerifyMode.REEXEC]
    spent = before - client.token_balance(me.address)
    assert spent == sum(job.reward + job.fee + job.audit_fee for job in jobs) > 0
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("posted 3 jobs in one transaction")
    assert f"{format_amount(spent)} DPC escrowed in all" in result.stderr
    assert "1 with verify none" in result.stderr and "results 3 sealed to your key" in result.stderr


def test_job_post_batch_reads_json_lines_from_stdin(devnet: Devnet, tmp_path: Path) -> None:
    """`-` reads one spec per non-empty line of stdin, in place among the files; --clear posts the
    canonical bytes as they are, --encrypt-to seals to another key."""
    from eth_utils import keccak

    from depin.delivery import public_key_of
    from depin.spec import parse_spec

    devnet.chain.fund([dev_account(9, 31337).address], to_wei(50), approve=False)
    theirs = "0x" + public_key_of(bytes(dev_account(8, 31337).key)).hex()
    client = devnet.client()
    first, second, hand = _batch_files(tmp_path)
    lines = [json.dumps(json.loads(second.read_text())), json.dumps(json.loads(hand.read_text()), indent=None)]
    result = ok("job", "post-batch", first, "-", "--reward", "1", "--clear", *BATCH, *net(devnet),
                input=f"{lines[0]}\n\n   \n{lines[1]}\n")
    ids = [int(line) for line in result.stdout.splitlines()]
    assert len(ids) == 3 and "results 3 in the clear" in result.stderr
    tx_hash = result.stderr.split(" tx ")[1].split(",")[0]
    assert [job_id for job_id, _ in _posted_in(devnet, tx_hash)] == ids
    for job_id, source in zip(ids, (first.read_bytes(), lines[0], lines[1]), strict=True):
        raw = client.spec_bytes(job_id)
        assert raw == parse_spec(source).to_bytes() and client.job(job_id).spec_hash == keccak(raw)

    sealed = ok("job", "post-batch", "-", "--reward", "1", "--encrypt-to", theirs, *BATCH, *net(devnet), input=lines[1])
    (job_id,) = map(int, sealed.stdout.split())
    assert json.loads(client.spec_bytes(job_id))["delivery"] == {"encrypt_to": theirs}
    assert "results 1 sealed to another key" in sealed.stderr


def test_job_post_batch_bad_specs_post_nothing(devnet: Devnet, tmp_path: Path) -> None:
    """A spec file that is not JSON, fails validation or cannot be read, a bad stdin line, a spec
    naming another delivery key than --encrypt-to, more than 100 specs: one error line naming the
    file (or the line), exit 1, and nothing posted, even when the other specs are good."""
    from depin.delivery import public_key_of

    me = dev_account(9, 31337)
    devnet.chain.fund([me.address], to_wei(50), approve=False)
    client = devnet.client()
    good = _batch_files(tmp_path)[0]
    not_json = tmp_path / "not.json"
    not_json.write_text("image: depin/test\n")
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({**json.loads(good.read_text()), "image": "ubuntu:latest"}))
    sealed = tmp_path / "sealed.json"
    sealed.write_text(ok("job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1", "--dry-run",
                         "--dev-account", "7").stdout)
    theirs = "0x" + public_key_of(bytes(dev_account(8, 31337).key)).hex()
    count, before = client.job_count(), client.token_balance(me.address)
    args = ["--reward", "1", *BATCH, *net(devnet)]

    line = fails("job", "post-batch", good, not_json, *args, match=f"spec file {not_json}: spec is not UTF-8 JSON")
    assert str(good) not in line
    fails("job", "post-batch", good, invalid, *args, match=f"spec file {invalid}: invalid spec: image")
    fails("job", "post-batch", good, tmp_path / "missing.json", *args,
          match=f"cannot read spec file {tmp_path / 'missing.json'}: No such file")
    fails("job", "post-batch", tmp_path, *args, match=f"cannot read spec file {tmp_path}")
    fails("job", "post-batch", good, "-", *args, input=good.read_text().strip() + "\n{\"v\": 1}\n",
          match="stdin line 2: invalid spec")
    fails("job", "post-batch", "-", "-", *args, input=good.read_text(), match="more than once")
    fails("job", "post-batch", good, sealed, *args[:2], "--encrypt-to", theirs, *args[2:],
          match=f"spec file {sealed}: the spec already names another delivery key")
    fails("job", "post-batch", good, "--clear", "--encrypt-to", theirs, *args, match="contradict")
    many = fails("job", "post-batch", "-", *args, input=(good.read_text().strip() + "\n") * 101,
                 match="101 specs: at most 100 per batch")
    assert "one transaction" in many
    assert client.job_count() == count and client.token_balance(me.address) == before


def test_job_post_batch_dry_run_prints_what_would_be_posted(devnet: Devnet, tmp_path: Path) -> None:
    """--dry-run checks every spec and prints each as one canonical JSON line with the delivery key
    it would get, sends nothing, needs no node; its lines posted with `post-batch -` are the exact
    bytes posted."""
    from eth_utils import keccak

    from depin.delivery import public_key_of
    from depin.spec import parse_spec

    me = dev_account(9, 31337)
    mine = "0x" + public_key_of(bytes(me.key)).hex()
    theirs = "0x" + public_key_of(bytes(dev_account(8, 31337).key)).hex()
    devnet.chain.fund([me.address], to_wei(50), approve=False)
    client = devnet.client()
    files = _batch_files(tmp_path)
    count = client.job_count()
    dead = ["--rpc-url", f"http://127.0.0.1:{free_port()}"]  # no node: a dry run never asks one

    sealed = ok("job", "post-batch", *files, "--reward", "1", "--dry-run", *BATCH, *dead)
    lines = sealed.stdout.splitlines()
    assert len(lines) == 3 and sealed.stderr.strip() == "3 specs read and checked; nothing sent"
    for line, source in zip(lines, files, strict=True):
        parse_spec(line.encode(), keccak(line.encode()))  # canonical
        printed = json.loads(line)
        assert printed.pop("delivery") == {"encrypt_to": mine}
        assert printed == json.loads(source.read_text())
    clear = ok("job", "post-batch", *files, "--reward", "1", "--dry-run", "--clear", *dead)
    assert [json.loads(line) for line in clear.stdout.splitlines()] == [json.loads(f.read_text()) for f in files]
    keyless = ok("job", "post-batch", *files, "--reward", "1", "--dry-run", *dead)
    assert keyless.stdout == clear.stdout and "3 without a delivery key" in keyless.stderr
    other = ok("job", "post-batch", files[0], "--reward", "1", "--dry-run", "--encrypt-to", theirs, *dead)
    assert json.loads(other.stdout)["delivery"] == {"encrypt_to": theirs}
    fails("job", "post-batch", files[0], tmp_path / "missing.json", "--reward", "1", "--dry-run", *dead,
          match="cannot read spec file")
    assert client.job_count() == count  # nothing sent

    posted = ok("job", "post-batch", "-", "--reward", "1", *BATCH, *net(devnet), input=sealed.stdout)
    ids = [int(line) for line in posted.stdout.splitlines()]
    assert [client.spec_bytes(job_id).decode() for job_id in ids] == lines


def test_job_post_batch_refuses_zero_specs(devnet: Devnet) -> None:
    """No SPEC_FILE, or a stdin without a spec: refused before anything is sent."""
    client = devnet.client()
    count = client.job_count()
    args = ["--reward", "1", *BATCH, *net(devnet)]
    fails("job", "post-batch", *args, match="no job specs: give one or more SPEC_FILE")
    fails("job", "post-batch", "-", *args, input="\n  \n", match="no job specs")
    assert client.job_count() == count
    assert "Example: depin job post-batch" in ok("job", "post-batch", "--help").stdout


def test_network_errors(devnet: Devnet, tmp_path: Path) -> None:
    fails("job", "status", "1", "--rpc-url", f"http://127.0.0.1:{free_port()}", "--deployment",
          devnet.deployment_file, match="no devnet running? start it with `depin devnet up`")
    fails("job", "status", "1", "--rpc-url", devnet.url, "--deployment", tmp_path / "none.json",
          match="not found")
    dep = json.loads(devnet.deployment_file.read_text())
    dep["chainId"] = 11155111
    (tmp_path / "11155111.json").write_text(json.dumps(dep))
    fails("job", "status", "1", "--rpc-url", devnet.url, "--deployment", tmp_path / "11155111.json",
          match="wrong network: the node at")
    fails("job", "status", "999999", *net(devnet), match="unknown job id 999999")
    fails("job", "status", "abc", *net(devnet), match="invalid job id 'abc'")
    fails("job", "cancel", "999999", "--dev-account", "1", *net(devnet), match="unknown job id")


def test_a_damaged_devnet_state_file_is_no_devnet(tmp_path: Path) -> None:
    """A devnet.json of another shape than `devnet up` writes (the engine a string, the ports a list
    or a string, a port not a number) made every command that takes its defaults from it crash
    with a traceback (AttributeError: 'str' object has no attribute 'get'): it counts as no devnet,
    as an unreadable one does."""
    env = {"DEPIN_DEVNET_DIR": str(tmp_path), "DEPIN_RPC_URL": "", "DEPIN_DEPLOYMENT": "", "DEPIN_CONFIG": ""}
    no_devnet = fails("job", "status", "1", env=env, match="no deployment file")
    for damaged in (
        {"ports": {"anvil": 18604}, "engine": "podman"},
        {"ports": ["anvil", "redis"]},
        {"ports": "anvil"},
        {"ports": {"anvil": "18604/x"}},
        {"ports": {"anvil": True}},
        {"ports": {"anvil": 18604}, "engine": {"docker_host": ["unix:///x"]}},
        [{"ports": {"anvil": 18604}}],
    ):
        (tmp_path / "devnet.json").write_text(json.dumps(damaged))
        assert fails("job", "status", "1", env=env, match="no deployment file") == no_devnet, damaged
    from depinctl.devnet import STATE_VERSION

    for key, damaged_value in (("engine", "podman"), ("ports", ["anvil"]), ("processes", "x")):  # `devnet status` reads the rest
        (tmp_path / "devnet.json").write_text(json.dumps({"version": STATE_VERSION, key: damaged_value}))
        fails("devnet", "status", env=env, match=f"devnet.json is damaged ('{key}' is not an object)")


@pytest.mark.parametrize(
    ("url", "shown"),
    [("ftp://x", "'ftp://x'"), ("foo", "'foo'"), ("http://[::1", "'http://[::1' is not an http(s) URL (Invalid IPv6 URL)"),
     ("http://u:s3cret@[::1", "'http://u:***@[::1'"), ("http://127.0.0.1:99999", "Port out of range")],
)
def test_a_malformed_rpc_url_is_called_malformed(devnet: Devnet, url: str, shown: str) -> None:
    """A URL that is no http(s) URL was reported as "no JSON-RPC node answers at …: no devnet
    running?" (and "http://[::1" shown as "***"); it is named as written, its password masked."""
    line = fails("job", "status", "1", "--rpc-url", url, "--deployment", devnet.deployment_file, match="is not an http(s) URL")
    assert shown in line and "devnet up" not in line and "s3cret" not in line


def test_job_result_checks_the_salt_before_connecting(tmp_path: Path) -> None:
    """`--salt zz` gave fromhex()'s "non-hexadecimal number found …" with no word of --salt, and only
    once connected: now said first (the node here is a closed port)."""
    for salt in ("zz", "0x" + "ab" * 31, "ab" * 33, "0x" + "g" * 64):
        fails("job", "result", "1", "--out", tmp_path / "o", "--salt", salt, "--rpc-url", "http://127.0.0.1:1",
              match="--salt must be 0x + 64 hex digits (32 bytes)")
    assert not (tmp_path / "o").exists()


def test_job_arguments_are_checked_before_connecting(tmp_path: Path) -> None:
    """A bad job id (`job status abc --deployment F`) was said only once connected: for a node that
    does not answer, "no JSON-RPC node answers at …" instead, and the commands that sign asked for
    the keystore password first. The id, and job result's --allow-network networks, are checked
    before any node is asked (the node here is a closed port)."""
    addresses = {name: "0x" + f"{i}" * 40 for i, name in enumerate(("RewardToken", "ProviderStaking", "JobMarket"), 1)}
    deployment = write_deployment(Deployment(31337, "devnet", 1, addresses, {}, "0x" + "55" * 20), tmp_path)
    dead = ["--rpc-url", "http://127.0.0.1:9", "--deployment", deployment]
    key = ["--keystore", tmp_path / "me.json"]
    for args in (["status", "abc"], ["watch", "0"], ["result", "1x", "--out", tmp_path / "o"], ["cancel", "x", *key],
                 ["challenge", "1.5", *key]):
        fails("job", *args, *dead, match=f"invalid job id {args[1]!r}", env={"DEPIN_KEYSTORE_PASSWORD": ""})
    for network in ("10.0.0.1/8", "lan", "10.0.0.0/33"):
        fails("job", "result", "1", "--out", tmp_path / "o", "--allow-network", "127.0.0.0/8", "--allow-network", network,
              *dead, match=f"--allow-network {network!r} is not a network in CIDR form")
    assert not (tmp_path / "o").exists()
    fails("job", "status", "1", *dead, match="no JSON-RPC node answers at http://127.0.0.1:9")  # a good id gets that far
    # `depin verifier`: the verifier's address and --court likewise
    fails("verifier", "status", "0x1234", *dead, match="'0x1234' is not an Ethereum address")
    for args in (["status", "--court", "court"], ["leave", "all", "--court", "court", *key], ["withdraw", "--court", "court", *key]):
        fails("verifier", *args, *dead, match="the court must be a 0x address of 40 hex digits, not 'court'", env={"DEPIN_KEYSTORE_PASSWORD": ""})
    fails("verifier", "status", "0x" + "12" * 20, *dead, match="no JSON-RPC node answers at http://127.0.0.1:9")


def test_a_provider_written_uri_cannot_drive_the_terminal(devnet: Devnet, tmp_path: Path) -> None:
    """A result URI is the provider's words: one carrying terminal controls (retitle the window,
    clear the screen, recolour) reaches the requester's terminal only as visible escapes, here in
    the error line of a download that fails (the URI's port has no server)."""
    from depin.commitment import commitment

    make_spec = __import__("tests.client.conftest", fromlist=["make_spec"]).make_spec
    requester = devnet.client(devnet.new_account(20))
    provider = devnet.client(devnet.new_account(1_000))
    provider.register(to_wei(200), "http://provider")
    job_id = requester.post_job(make_spec(300), reward=to_wei(2), seal=False).job_id
    provider.claim(job_id)
    hostile = f"http://127.0.0.1:{free_port()}/r\x1b]0;owned\x07\x1b[2J\x1b[1;32mresult OK\u202e"
    provider.submit_result(job_id, commitment(provider.address, job_id, b"\x01" * 32, b"\x02" * 32), hostile)
    line = fails("job", "result", job_id, "--out", tmp_path / "got", *net(devnet), match="result OK")
    assert not any(c in line for c in "\x1b\x07\u202e"), repr(line)
    assert "\\x1b]0;owned\\x07" in line and "\\u202e" in line


def test_dev_account_refused_off_devnet(tmp_path: Path) -> None:
    proc, url = start_anvil(tmp_path / "anvil", args=("--silent", "--chain-id", "11155111"))
    try:
        # a real deployment (connect checks the contracts before the key), as a testnet rehearsal deploys it
        from depinctl.deploy import deploy_with_ape

        deploy_with_ape(url, tmp_path / "deployments", extra_args=("--account", "TEST::0"), timeout=240)
        args = ["--rpc-url", url, "--deployment", tmp_path / "deployments" / "11155111.json"]
        fails("provider", "withdraw", "--dev-account", "1", *args, match="refusing Anvil's public development key 1")
        fails("job", "cancel", "1", "--dev-account", "0", *args, match="on chain 11155111")
    finally:
        proc.stop()


def test_job_challenge_result_and_watch(devnet: Devnet, tmp_path: Path) -> None:
    from depin.commitment import commitment

    make_spec = __import__("tests.client.conftest", fromlist=["make_spec"]).make_spec
    requester = devnet.client(devnet.new_account(20))
    provider = devnet.client(devnet.new_account(1_000))
    provider.register(to_wei(200), "http://provider")
    challenger = dev_account(6, 31337)
    devnet.chain.fund([challenger.address], to_wei(10), approve=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "r.txt").write_text("result\n")
    archive = build_archive(out, 0, tmp_path / "r.tar")
    salt = b"\x5a" * 32
    manifest = json.dumps({"salt": "0x" + salt.hex()}).encode()
    files = {"/r": archive.path.read_bytes(), "/r.json": manifest}
    with serve(files) as base:
        job_id = requester.post_job(make_spec(200), reward=to_wei(2), challenge_window=120, seal=False).job_id
        fails("job", "result", job_id, "--out", tmp_path / "early", *net(devnet), match="no result yet")
        fails("job", "challenge", job_id, "--dev-account", "6", *net(devnet), match="only a Submitted job")
        provider.claim(job_id)
        committed = commitment(provider.address, job_id, archive.digest, salt)
        provider.submit_result(job_id, committed, f"{base}/r")
        status = json.loads(ok("job", "status", job_id, "--json", *net(devnet)).stdout)
        assert status["commitment"] == "0x" + committed.hex() and status["resultURI"] == f"{base}/r"
        assert (status["verifyMode"], status["auditFee"], status["fee"]) == ("reexec", str(to_wei("8.8")), str(to_wei("0.04")))
        assert status["anchorBlock"] > 0 and status["specHash"] == "0x" + "00" * 32
        shown = ok("job", "status", job_id, *net(devnet)).stdout
        assert "audit fee" in shown and "anchor block" in shown and "drawn for audit" in shown
        # --allow-network replaces the devnet's loopback default: a network that does not hold the
        # server is refused before any connection; one that does lets the result in
        fails("job", "result", job_id, "--out", tmp_path / "lan", "--allow-network", "10.0.0.0/8", *net(devnet),
              match="127.0.0.1 resolves to a loopback address")
        fails("job", "result", job_id, "--out", tmp_path / "typo", "--allow-network", "10.0.0.1/8", *net(devnet),
              match="--allow-network '10.0.0.1/8' is not a network in CIDR form")
        result = ok("job", "result", job_id, "--out", tmp_path / "got", "--allow-network", "127.0.0.1/32", *net(devnet))
        assert "matches the commitment" in result.stdout and (tmp_path / "got" / "r.txt").read_text() == "result\n"
        files["/r"] = archive.path.read_bytes().replace(b"result\n", b"rezult\n")
        fails("job", "result", job_id, "--out", tmp_path / "bad", *net(devnet), match="does not give the provider's commitment")
        fails("job", "result", job_id, "--out", tmp_path / "r.tar" / "x", *net(devnet), match="cannot write the result")
        assert not (tmp_path / "bad" / "r.txt").exists()
        # a result holding an absolute symbolic link: one error line, nothing extracted
        (out / "link").symlink_to("/in/a")
        unsafe = build_archive(out, 0, tmp_path / "unsafe.tar")
        files["/u"] = unsafe.path.read_bytes()
        files["/u.json"] = manifest
        job2 = requester.post_job(make_spec(201), reward=to_wei(2), verify="none", seal=False).job_id
        provider.claim(job2)
        provider.submit_result(job2, commitment(provider.address, job2, unsafe.digest, salt), f"{base}/u")
        fails("job", "result", job2, "--out", tmp_path / "unsafe", *net(devnet), match="not safe to extract")
        assert not (tmp_path / "unsafe").exists()  # nothing extracted; the folder made for it removed
    fails("job", "challenge", job2, "--dev-account", "6", *net(devnet), match="verify none")

    # watch from the chain (no Redis there): follows Disputed -> Resolved, then exits (a real
    # process: the court settles once the watcher has printed the Disputed state; these tests
    # deploy the TestCourt stand-in, settled by hand)
    court = devnet.chain.contracts.test_court
    devnet.chain.send(devnet.chain.deployer, court.begin(job_id))
    # `job status` of a Disputed job: the stand-in court has no case to show (a real court's is
    # shown: test_court_client.py), and says nothing of one rather than failing
    status = json.loads(ok("job", "status", job_id, "--json", *net(devnet)).stdout)
    assert status["status"] == "Disputed" and "case" not in status, status
    assert "Disputed" in ok("job", "status", job_id, *net(devnet)).stdout
    watcher = subprocess.Popen(
        [sys.executable, "-m", "depinctl.cli", "job", "watch", str(job_id), "--interval", "0.1", "--timeout", "120",
         "--redis-url", f"redis://127.0.0.1:{free_port()}/0", *map(str, net(devnet))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1"),
    )
    try:
        first = watcher.stdout.readline()  # type: ignore[union-attr]
        assert first.rstrip().endswith(f"job {job_id}: Disputed"), first
        devnet.chain.send(devnet.chain.deployer, court.settle(job_id, 1))
        rest, err = watcher.communicate(timeout=180)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, err
    assert "following the chain" in err
    assert rest.strip().splitlines()[-1].endswith(f"job {job_id}: Resolved")
    fails("job", "watch", "999999", *net(devnet), match="unknown job id")


def test_job_status_shows_the_courts_outcome_and_result_refuses_a_wrong_one(devnet: Devnet, tmp_path: Path) -> None:
    """The provider committed to its archive, the job was disputed and its court settled it
    ProviderWrong (collateral slashed, the requester refunded): `job status` (text and --json) shows
    the outcome and who was paid, `job result` refuses the result (one error line, nothing written)
    unless --force, which extracts it with a warning. A ProviderRight ruling is said on success."""
    from depin.commitment import commitment
    from depin.market import Outcome
    from tests.client.conftest import make_spec

    out = tmp_path / "out"
    out.mkdir()
    (out / "answer.txt").write_text("41\n")  # the wrong answer
    archive = build_archive(out, 0, tmp_path / "result.tar")
    requester = devnet.client(devnet.new_account(20))
    provider = devnet.client(devnet.new_account(1_000))
    provider.register(to_wei(200), "http://provider")
    salt = bytes(range(32))
    court = devnet.chain.contracts.test_court
    files: dict[str, bytes] = {}
    with serve(files) as base:
        jobs = {}
        for n, outcome in ((5151, Outcome.PROVIDER_WRONG), (5152, Outcome.PROVIDER_RIGHT)):
            jid = requester.post_job(make_spec(n), reward=to_wei(1), seal=False, challenge_window=300).job_id
            provider.claim(jid)
            files[f"/results/{jid}"] = archive.path.read_bytes()
            files[f"/results/{jid}.json"] = json.dumps({"job": jid, "party": provider.address, "salt": "0x" + salt.hex()}).encode()
            provider.submit_result(jid, commitment(provider.address, jid, archive.digest, salt), f"{base}/results/{jid}")
            devnet.chain.send(devnet.chain.deployer, court.begin(jid))
            devnet.chain.send(devnet.chain.deployer, court.settle(jid, outcome))
            jobs[outcome] = jid
        wrong = jobs[Outcome.PROVIDER_WRONG]
        status = json.loads(ok("job", "status", wrong, "--json", *net(devnet)).stdout)
        assert (status["status"], status["outcome"]) == ("Resolved", "ProviderWrong")
        assert "slashed" in status["outcomeMeaning"] and status["settlement"]["providerPayout"] == "0"
        assert status["settlement"]["requesterRefund"] == str(to_wei("1.02"))
        shown = ok("job", "status", wrong, *net(devnet)).stdout
        assert "ProviderWrong" in shown and "do not trust" in shown and "requester refunded 1.02" in shown
        fails("job", "result", wrong, "--out", tmp_path / "got", *net(devnet),
              match="ruled its result wrong (outcome ProviderWrong")
        assert not (tmp_path / "got").exists()
        forced = ok("job", "result", wrong, "--out", tmp_path / "got", "--force", *net(devnet))
        assert (tmp_path / "got" / "answer.txt").read_text() == "41\n"
        assert forced.stderr.startswith("warning: ") and "ruled this result WRONG" in forced.stderr
        right = ok("job", "result", jobs[Outcome.PROVIDER_RIGHT], "--out", tmp_path / "right", *net(devnet))
        assert "upheld by its court (ProviderRight)" in right.stdout and not right.stderr
        assert json.loads(ok("job", "status", jobs[Outcome.PROVIDER_RIGHT], "--json", *net(devnet)).stdout)["outcome"] == "ProviderRight"


def test_job_watch_from_the_index(devnet: Devnet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from indexer.config import IndexerConfig
    from indexer.follower import Indexer
    from tests.indexer.services import LiveIndexer, RedisServer

    from .conftest import make_spec

    server = RedisServer(tmp_path / "redis")
    try:
        live = LiveIndexer(Indexer(IndexerConfig(
            rpc_url=devnet.url, redis_url=server.url(), deployment_file=devnet.deployment_file, poll_interval=0.05,
        )))
        try:
            requester = devnet.client(devnet.new_account(10))
            job_id = requester.post_job(make_spec(300), reward=to_wei(1)).job_id
            live.wait_synced(devnet.chain.block_number())
            # a real process, cancelled once it has printed the Open state (a cancel on a timer could
            # come before its first read on a loaded machine)
            watcher = subprocess.Popen(
                [sys.executable, "-m", "depinctl.cli", "job", "watch", str(job_id), "--interval", "0.1", "--timeout", "120",
                 "--redis-url", server.url(), *map(str, net(devnet))],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1"),
            )
            try:
                first = watcher.stdout.readline()  # type: ignore[union-attr]
                assert first.rstrip().endswith(f"job {job_id}: Open"), first
                requester.cancel(job_id)
                rest, err = watcher.communicate(timeout=180)
            finally:
                if watcher.poll() is None:
                    watcher.kill()
                    watcher.wait()
            assert watcher.returncode == 0, err
            assert err == ""  # read from the index: no note about falling back to the chain
            assert rest.strip().splitlines()[-1].endswith(f"job {job_id}: Cancelled"), rest
            # still Open after the timeout: one line, exit 1
            other = requester.post_job(make_spec(301), reward=to_wei(1)).job_id
            fails("job", "watch", other, "--interval", "0.1", "--timeout", "0.5", "--redis-url", server.url(),
                  *net(devnet), match=f"job {other} is still Open after 0.5 s")
        finally:
            live.stop()
        # the indexer stopped: the watch notices that the index lags the chain and follows the chain
        monkeypatch.setattr(cli_job, "INDEX_CROSS_CHECK", 0.3)
        requester.cancel(other)
        result = ok("job", "watch", other, "--interval", "0.1", "--timeout", "30", "--redis-url", server.url(),
                    *net(devnet))
        assert "following the chain" in result.stderr
        assert result.stdout.strip().splitlines()[-1].endswith("Cancelled")
    finally:
        server.stop()


def test_job_post_inputs_from_uris(tmp_path: Path) -> None:
    import base64
    import hashlib

    body = b"remote input bytes"
    with serve({"/inputs/remote.csv": body}) as base:
        result = ok("job", "post", "--image", IMAGE, "--cmd", "cat /in/remote.csv", "--reward", "1", "--dry-run",
                    "--input", f"{base}/inputs/remote.csv",
                    "--input", "blob=data:;base64," + base64.b64encode(b"inline").decode())
        fails("job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1", "--dry-run",
              "--input", f"{base}/inputs/missing", match="HTTP 404")
    dry = ["job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1", "--dry-run", "--input"]
    fails(*dry, "x=ftp://host/file", match="unsupported input URI scheme 'ftp' in 'ftp://host/file'")
    fails(*dry, "s3://bucket/key", match="unsupported input URI scheme 's3'")
    fails(*dry, f"../up={tmp_path}/f", match="'../up' is not an input name")
    # '=' after a ':' is part of a URI (base64 padding, a query), and a file whose name has '=' is a file
    (named := tmp_path / "x=y").write_bytes(b"x")
    spec = json.loads(ok(*dry, "data:;base64,YQ==", "--input", str(named)).stdout)
    assert [i["sha256"] for i in spec["inputs"]] == [hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"x").hexdigest()]
    assert [i["path"] for i in spec["inputs"]] == ["input0", "input1"]  # neither has a usable name of its own
    spec = json.loads(result.stdout)
    inputs = {i["path"]: i for i in spec["inputs"]}
    assert inputs["remote.csv"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert inputs["blob"]["sha256"] == hashlib.sha256(b"inline").hexdigest()


# ------------------------------------------------------------------------------------ provider


def test_provider_commands(devnet: Devnet, tmp_path: Path) -> None:
    address = dev_account(5, 31337).address
    args = ["--dev-account", "5", *net(devnet)]
    fails("provider", "register", "--stake", "500", "--endpoint", "http://p5", *args,
          match="insufficient DPC balance for the registration stake: have 0, need 500")
    devnet.chain.fund([address], to_wei(1_000), approve=False)
    fails("provider", "register", "--stake", "5", "--endpoint", "http://p5", *args, match="below the minimum")
    assert "registered" in ok("provider", "register", "--stake", "500", "--endpoint", "http://p5", *args).stdout
    fails("provider", "register", "--stake", "500", "--endpoint", "http://p5", *args, match="registered already")
    ok("provider", "stake", "100", *args)
    status = json.loads(ok("provider", "status", "--json", *args).stdout)
    assert status["staked"] == str(to_wei(600)) and status["walletBalance"] == str(to_wei(400))
    assert status["endpoint"] == "http://p5" and status["registered"]
    assert "provider id" in ok("provider", "status", address, *net(devnet)).stdout
    fails("provider", "stake", "abc", *args, match="invalid amount")
    fails("provider", "unstake", "10000", *args, match="cannot unstake")
    assert "unbonding 50" in ok("provider", "unstake", "50", *args).stdout
    fails("provider", "withdraw", *args, match="nothing to withdraw")
    devnet.chain.advance_time(devnet.client().unbonding_delay() + 1)
    assert "unbonded stake" in ok("provider", "withdraw", *args).stdout
    assert devnet.client().token_balance(address) == to_wei(450)
    fails("provider", "status", "not-an-address", *net(devnet), match="not an Ethereum address")


def test_config_file_supplies_network_and_key(devnet: Devnet, tmp_path: Path) -> None:
    from depin.accounts import new_keystore

    address = new_keystore(tmp_path / "k.json", "pw", kdf_n=2**10)
    (tmp_path / "pw").write_text("pw\n")
    (tmp_path / "pw").chmod(0o600)  # a password file others may read is refused
    (tmp_path / "depin.toml").write_text(
        f'[network]\nrpc_url = "{devnet.url}"\ndeployment = "{devnet.deployment_file}"\n'
        '[key]\nkeystore = "k.json"\npassword_file = "pw"\n'
    )
    status = json.loads(ok("provider", "status", "--json", "--config", tmp_path / "depin.toml").stdout)
    assert status["address"] == address and not status["registered"]
    fails("provider", "status", "--config", tmp_path / "missing.toml", match="not found")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:secret@db.example:6380/1", "redis://user:***@db.example:6380/1"),
        ("redis://:secret@/0", "redis://:***@/0"),  # a password and no host: used to raise TypeError
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_redact_hides_the_password(url: str, shown: str) -> None:
    assert _redact(url) == shown


# ------------------------------------------------------------------------------------ contradictory options


def test_two_signing_keys_are_refused_not_one_silently_ignored(tmp_path: Path) -> None:
    """`--keystore FILE --dev-account N` (or $DEPIN_KEYSTORE set and --dev-account given) signed with
    the keystore and dropped --dev-account without a word: the post sealed its result to, and paid
    its escrow from, another account than the one the command line names. Refused, as `keys pubkey`
    refuses PATH with --dev-account, before any node is asked (here a closed port)."""
    from depin.accounts import new_keystore

    new_keystore(tmp_path / "k.json", "pw")
    env = {"DEPIN_KEYSTORE_PASSWORD": "pw"}
    post = ["job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1"]
    for extra in (["--dry-run"], ["--rpc-url", "http://127.0.0.1:1"]):
        line = fails(*post, *extra, "--keystore", tmp_path / "k.json", "--dev-account", "4", env=env,
                     match="--keystore")
        assert "--dev-account" in line and "one" in line, line
    fails(*post, "--dry-run", "--dev-account", "4", env={**env, "DEPIN_KEYSTORE": str(tmp_path / "k.json")},
          match="$DEPIN_KEYSTORE")
    fails("provider", "withdraw", "--keystore", tmp_path / "k.json", "--dev-account", "1", "--rpc-url",
          "http://127.0.0.1:1", env=env, match="--dev-account")


def test_job_watch_refuses_a_useless_interval_or_timeout_before_connecting() -> None:
    """`job watch 1 --interval -1` printed the job's status, then "error: sleep length must be
    non-negative" (Python's words, no option named); `--interval 0` asked the node as fast as it
    could answer, for ever; `--timeout -5` was taken. Each is a usage error naming its option,
    said before any node is asked (here a closed port). So are a non-finite interval (``inf``
    slept for ever, ``nan`` was Python's "Invalid value NaN"), one beyond an hour, and a ``nan``
    timeout (never reached)."""
    cases = [("--interval", "-1"), ("--interval", "0"), ("--timeout", "-5"), ("--interval", "inf"), ("--interval", "nan"),
             ("--interval", "3601"), ("--timeout", "nan")]
    for option, value in cases:
        result = run("job", "watch", "1", option, value, "--rpc-url", "http://127.0.0.1:1")
        assert result.exit_code == 2, (option, value, result.exit_code, result.stderr)
        assert option in result.stderr and "Traceback" not in result.stderr, result.stderr


# ------------------------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_after_sending_names_the_transaction(devnet: Devnet, tmp_path: Path) -> None:
    """Ctrl-C while `depin job post` waits for its transaction to be mined ended the command with
    status 130 and nothing on stderr: the post was in the pool and was mined later (the escrow
    paid), while the user was told nothing, and a second `job post` would have paid twice. Now one
    ``error:`` line names what was sent, its hash, and that it may still be mined. The chain holds
    the transaction (automining off) until the interrupt is handled: no timer races another."""
    from depin.accounts import import_key
    from tests.indexer.services import wait_for

    account = devnet.new_account(20)
    import_key(bytes(account.key), tmp_path / "k.json", "pw", kdf_n=2**4)
    rpc = devnet.chain.rpc
    env = dict(os.environ, DEPIN_KEYSTORE_PASSWORD="pw", COLUMNS="200")
    rpc.call("evm_setAutomine", [False])
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "depinctl.cli", "job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1",
             "--clear", "--keystore", str(tmp_path / "k.json"), *net(devnet)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT,
        )
        try:
            def in_pool() -> list[str]:
                pending = rpc.call("txpool_content", [])["pending"]
                txs = next((v for k, v in pending.items() if k.lower() == account.address.lower()), {})
                return [tx["hash"] for tx in txs.values()]

            sent = wait_for(in_pool, 60, "the post in the pool")
            proc.send_signal(2)  # SIGINT: what Ctrl-C sends
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    finally:
        rpc.call("evm_setAutomine", [True])
        rpc.call("evm_mine", [])
    assert proc.returncode == 130, (proc.returncode, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: interrupted"), err
    assert "Traceback" not in err and sent[-1] in lines[0] and "may still be mined" in lines[0], lines[0]
    assert rpc.call("eth_getTransactionReceipt", [sent[-1]])["status"] == "0x1"  # it was: the job is posted


def test_a_redis_url_that_is_no_redis_is_one_line(devnet: Devnet, tmp_path: Path) -> None:
    """DEPIN_REDIS_URL and DEPIN_RPC_URL mixed up (the Redis URL at the node's HTTP port), or a DB
    number the server has not: the reads of the index were a traceback of redis-py's
    ``InvalidResponse`` / ``ResponseError``, and `job watch` died of it instead of following the
    chain as it does when Redis is unreachable. Now one line naming the URL, and the watch goes on."""
    from tests.indexer.services import RedisServer

    from .conftest import make_spec

    at_the_node = "redis://" + devnet.url.removeprefix("http://").rstrip("/") + "/0"
    for command in (["jobs", "list"], ["providers", "list"], ["indexer", "status"], ["jobs", "show", "1"],
                    ["indexer", "api", "--port", str(free_port())]):
        line = fails(*command, "--redis-url", at_the_node, "--deployment", devnet.deployment_file,
                     match="is not a Redis server")
        assert at_the_node in line, line
    server = RedisServer(tmp_path / "redis")
    try:
        line = fails("jobs", "list", "--redis-url", server.url(99), "--deployment", devnet.deployment_file,
                     match="DB index is out of range")
        assert server.url(99) in line, line
    finally:
        server.stop()
    requester = devnet.client(devnet.new_account(10))
    job_id = requester.post_job(make_spec(400), reward=to_wei(1)).job_id
    requester.cancel(job_id)
    result = ok("job", "watch", job_id, "--interval", "0.1", "--timeout", "30", "--redis-url", at_the_node, *net(devnet))
    assert "following the chain" in result.stderr, result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith(f"job {job_id}: Cancelled"), result.stdout


def test_a_local_input_no_provider_can_read_is_refused_before_posting(
    devnet: Devnet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local input above the data: URI limit goes into the spec as a file:// URI, which a provider
    reads only below its DEPIN_INPUT_FILE_ROOTS: on the devnet the folder holding its state folder,
    elsewhere none. A file outside was posted all the same; the devnet's provider claimed the job,
    could not read the input and submitted an availability failure (the requester paid the no-fault
    fee) and the job sat Open until its claim deadline, with nothing said to the requester. Now
    refused before anything is sent, naming the file and the way out."""
    import urllib.parse

    project = tmp_path / "project"
    (state := project / ".devnet").mkdir(parents=True)
    # the devnet whose chain is the session's anvil (what `depin devnet up` records in its state file)
    (state / "devnet.json").write_text(json.dumps({"ports": {"anvil": urllib.parse.urlsplit(devnet.url).port}}))
    monkeypatch.setenv("DEPIN_DEVNET_DIR", str(state))
    requester = dev_account(8, 31337).address
    devnet.chain.fund([requester], to_wei(10), approve=False)
    client = devnet.client()
    (outside := tmp_path / "elsewhere" / "big.bin").parent.mkdir()
    outside.write_bytes(b"y" * 3000)
    jobs, nonce = client.job_count(), client.rpc.nonce(requester)
    post = ["job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1", "--dev-account", "8", *net(devnet)]
    line = fails(*post, "--input", outside, match="the devnet's providers read file:// inputs only below")
    assert str(outside) in line and str(project) in line and "http" in line, line
    fails(*post, "--input", f"data={outside.as_uri()}", match="the devnet's providers read file:// inputs only below")
    assert (client.job_count(), client.rpc.nonce(requester)) == (jobs, nonce)  # nothing sent
    (inside := project / "big.bin").write_bytes(b"y" * 3000)  # below the project folder: posted
    job_id = int(ok(*post, "--input", inside).stdout)
    assert json.loads(client.spec_bytes(job_id))["inputs"][0]["uri"] == inside.resolve().as_uri()

    # off a local chain no provider reads a requester's files: refused too, before any key is used to send
    proc, url = start_anvil(tmp_path / "anvil", args=("--silent", "--chain-id", "11155111"))
    try:
        from depinctl.deploy import deploy_with_ape

        deploy_with_ape(url, tmp_path / "deployments", extra_args=("--account", "TEST::0"), timeout=240)
        (pw := tmp_path / "pw").write_text("pw\n")
        pw.chmod(0o600)  # a password file others may read is refused
        ok("keys", "new", tmp_path / "me.json", "--password-file", pw)
        line = fails("job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1", "--input", outside,
                     "--keystore", tmp_path / "me.json", "--password-file", pw, "--rpc-url", url,
                     "--deployment", tmp_path / "deployments" / "11155111.json",
                     match="no provider of chain 11155111 can read")
        assert str(outside) in line and "https://" in line, line
    finally:
        proc.stop()


def test_post_batch_refuses_a_file_input_the_devnets_providers_cannot_read(
    devnet: Devnet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch twin of the test above: a spec made by `job post --dry-run --input big.bin` from a
    folder outside the project names a file:// URI the devnet's providers refuse to read; the batch
    is refused before anything is sent, naming the spec file."""
    import urllib.parse

    (state := tmp_path / "project" / ".devnet").mkdir(parents=True)
    (state / "devnet.json").write_text(json.dumps({"ports": {"anvil": urllib.parse.urlsplit(devnet.url).port}}))
    monkeypatch.setenv("DEPIN_DEVNET_DIR", str(state))
    requester = dev_account(8, 31337).address
    devnet.chain.fund([requester], to_wei(10), approve=False)
    (outside := tmp_path / "elsewhere" / "big.bin").parent.mkdir()
    outside.write_bytes(b"z" * 3000)
    spec = ok("job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1", "--input", outside, "--dry-run").stdout
    (first := tmp_path / "a.json").write_text(spec)
    client = devnet.client()
    jobs, nonce = client.job_count(), client.rpc.nonce(requester)
    line = fails("job", "post-batch", first, "--reward", "1", "--dev-account", "8", *net(devnet),
                 match="the devnet's providers read file:// inputs only below")
    assert str(first) in line and str(outside) in line, line
    assert (client.job_count(), client.rpc.nonce(requester)) == (jobs, nonce)  # nothing sent
