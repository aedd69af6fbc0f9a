"""Configuration and key files that are wrong in a way a user can cause give one clear error (an
AccountError or ConfigError; on the command line one `error:` line, exit 1, no traceback), and the
executor and the indexer read one depin.toml alike: password files with CRLF line ends or bytes that
are not UTF-8, damaged keystore KDF parameters, a section that is not a table, a deployment path
that is not a string, an `[indexer]` table in the executor's file, a bad --metrics address, a
relative DEPIN_DEPLOYMENT (the current folder's, for every program), and settings out of their range
(TOML's inf and nan, token amounts beyond uint256 or below one base unit, negative amounts, the file
system's root as the state folder)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from depin.accounts import AccountError, new_keystore, password_line, read_password, unlock_keystore
from depin.config import ConfigError, load_config
from depinctl.cli import app
from indexer.config import IndexerConfig, read_config_file
from tests.cli_errors import assert_one_line_error

FAST = 2**10  # a small scrypt cost: these tests are not about the KDF


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEPIN_KEYSTORE_PASSWORD", "DEPIN_DEPLOYMENT", "DEPIN_REDIS_URL", "DEPIN_CONFIG", "DEPIN_EXECUTOR_METRICS"):
        monkeypatch.delenv(name, raising=False)


# ------------------------------------------------------------------------------------ password files


@pytest.mark.parametrize("text", ["secret\n", "secret\r\n", "secret\r", "secret", "secret\r\nsecond line\r\n"])
def test_password_line_drops_any_line_break(text: str) -> None:
    assert password_line(text) == "secret"


def test_a_keystore_made_from_a_crlf_line_opens_with_its_crlf_password_file(tmp_path: Path) -> None:
    """`printf 'secret\\r\\n' | depin keys new k.json`: the password is "secret", as the same bytes
    in a password file read."""
    keystore = tmp_path / "k.json"
    result = CliRunner().invoke(app, ["keys", "new", str(keystore)], input="secret\r\n")
    assert result.exit_code == 0, result.stderr
    (tmp_path / "pw").write_bytes(b"secret\r\n")
    (tmp_path / "pw").chmod(0o600)  # a password file others may read is refused
    assert unlock_keystore(keystore, read_password(None, tmp_path / "pw")).address == result.stdout.strip()
    checked = CliRunner().invoke(app, ["keys", "address", str(keystore), "--check", "--password-file", str(tmp_path / "pw")])
    assert checked.exit_code == 0 and checked.stdout == result.stdout, checked.stderr


def test_a_password_file_that_is_not_utf8_is_named_without_its_bytes(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_bytes(b"se\xffcret\n")
    pw.chmod(0o600)  # a password file others may read is refused
    with pytest.raises(AccountError) as caught:
        read_password(None, pw)
    assert str(caught.value) == f"password file {pw} is not UTF-8 text"
    keystore = tmp_path / "k.json"
    new_keystore(keystore, "secret", kdf_n=FAST)
    line = assert_one_line_error(
        CliRunner().invoke(app, ["keys", "pubkey", str(keystore), "--password-file", str(pw)]), "is not UTF-8 text"
    )
    assert "xff" not in line and "position" not in line


# ------------------------------------------------------------------------------------ keystores


@pytest.mark.parametrize("damage", [{"r": 0}, {"n": 16.0}, {"n": 0}, {"n": "x"}, {"salt": 5}])
def test_a_keystore_with_damaged_kdf_parameters_is_one_error(tmp_path: Path, damage: dict[str, object]) -> None:
    keystore = tmp_path / "k.json"
    new_keystore(keystore, "secret", kdf_n=FAST)
    data = json.loads(keystore.read_text())
    data["crypto"]["kdfparams"].update(damage)
    keystore.write_text(json.dumps(data))
    with pytest.raises(AccountError, match="unsupported or damaged keystore"):
        unlock_keystore(keystore, "secret")
    (tmp_path / "pw").write_text("secret\n")
    (tmp_path / "pw").chmod(0o600)  # a password file others may read is refused
    assert_one_line_error(
        CliRunner().invoke(app, ["keys", "address", str(keystore), "--check", "--password-file", str(tmp_path / "pw")]),
        "unsupported or damaged keystore",
    )


@pytest.mark.parametrize(("params", "said"), [
    ({"dklen": 1 << 30}, "a 1073741824-byte key"),
    ({"n": 1 << 30}, "MiB of scrypt memory"),
    ({"n": 1 << 17, "p": 1 << 10}, "scrypt work"),
])
def test_a_keystore_whose_kdf_would_run_for_ages_is_refused_before_it_runs(tmp_path: Path, params: dict[str, int], said: str) -> None:
    keystore = tmp_path / "k.json"
    new_keystore(keystore, "secret", kdf_n=FAST)
    data = json.loads(keystore.read_text())
    data["crypto"]["kdfparams"].update(params)
    keystore.write_text(json.dumps(data))
    with pytest.raises(AccountError, match=f"its KDF parameters ask for .*{said}.*; refused"):
        unlock_keystore(keystore, "secret")


def test_a_pbkdf2_keystore_with_too_many_rounds_is_refused(tmp_path: Path) -> None:
    keystore = tmp_path / "k.json"
    keystore.write_text(json.dumps({"version": 3, "address": "00" * 20, "crypto": {
        "kdf": "pbkdf2", "kdfparams": {"c": 10**9, "dklen": 32, "prf": "hmac-sha256", "salt": "00" * 16},
        "cipher": "aes-128-ctr", "cipherparams": {"iv": "00" * 16}, "ciphertext": "00" * 32, "mac": "00" * 32}}))
    keystore.chmod(0o600)  # else refused first as readable by others
    with pytest.raises(AccountError, match="1000000000 pbkdf2 rounds"):
        unlock_keystore(keystore, "secret")


# ------------------------------------------------------------------------------------ depin.toml

SHARED_TOML = """
[network]
rpc_url = "http://node:8545"
deployment = "deployments/31337.json"

[redis]
url = "redis://cache:6379/0"

[key]
dev_account = 1

[executor]
role = "provider"

[policy]
max_cpus = 2

[indexer]
confirmations = 3
finality_depth = 12
"""


def test_one_depin_toml_serves_the_executor_and_the_indexer(tmp_path: Path) -> None:
    """The executor ignores the [indexer] table; the indexer ignores the executor's tables."""
    path = tmp_path / "depin.toml"
    path.write_text(SHARED_TOML)
    config = load_config(path, env={})
    assert config.network.deployment == tmp_path / "deployments" / "31337.json"
    assert config.executor.roles == ("provider",) and config.policy.max_cpus == 2
    indexer = IndexerConfig(**read_config_file(path))
    assert (indexer.confirmations, indexer.finality_depth) == (3, 12)
    path.write_text("indexer = 5\n")
    with pytest.raises(ConfigError, match="indexer"):
        load_config(path, env={})


def test_a_section_that_is_not_a_table_is_a_config_error_with_an_override(tmp_path: Path) -> None:
    path = tmp_path / "depin.toml"
    path.write_text("redis = 1\n")
    with pytest.raises(ConfigError, match="redis"):
        load_config(path, env={"DEPIN_REDIS_URL": "redis://other:6379/0"})


@pytest.mark.parametrize("toml", ["deployment_file = 5\n", "[indexer]\ndeployment_file = [1]\n", "[network]\ndeployment = 5\n"])
def test_an_indexer_deployment_path_that_is_not_a_string_is_one_error(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "indexer.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match="deployment_file must be a path"):
        read_config_file(path)
    assert_one_line_error(CliRunner().invoke(app, ["indexer", "run", "--config", str(path)]), "deployment_file must be a path")


@pytest.mark.parametrize(("toml", "said"), [
    ('[indexer]\npoll_interval = "0.5"', "poll_interval must be a number, not '0.5'"),
    ("[indexer]\nconfirmations = 2.0", "confirmations must be an integer, not 2.0"),
    ("[indexer]\nmax_range = true", "max_range must be an integer, not True"),
    ('compact_after = "-1"', "compact_after must be an integer, not '-1'"),  # top-level keys of an indexer file
])
def test_an_indexer_setting_of_the_wrong_type_is_one_error(tmp_path: Path, toml: str, said: str) -> None:
    """The indexer's file keeps TOML's types as the executor's does (its environment variables are
    strings, read as numbers): pydantic's lax mode read "0.5" as 0.5 and true as 1."""
    path = tmp_path / "indexer.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError, match=re.escape(said)):
        read_config_file(path)
    assert_one_line_error(CliRunner().invoke(app, ["indexer", "run", "--config", str(path)]), said)
    path.write_text("[indexer]\npoll_interval = 1\nconfirmations = 2\nstream_max_age = 3600\n")
    settings = read_config_file(path)  # an integer is a number
    assert IndexerConfig(**settings).poll_interval == 1.0 and settings["confirmations"] == 2


def test_a_relative_depin_deployment_is_the_current_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As for the indexer and --deployment; a path written in the file stays relative to the file."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "work").mkdir()
    path = tmp_path / "etc" / "depin.toml"
    path.write_text('[network]\ndeployment = "deployments/31337.json"\n')
    monkeypatch.chdir(tmp_path / "work")
    assert load_config(path, env={}).network.deployment == tmp_path / "etc" / "deployments" / "31337.json"
    from_env = load_config(path, env={"DEPIN_DEPLOYMENT": "deployments/5.json"}).network.deployment
    assert from_env == tmp_path / "work" / "deployments" / "5.json"
    monkeypatch.setenv("DEPIN_DEPLOYMENT", "deployments/5.json")
    assert IndexerConfig.from_env().deployment_file.resolve() == from_env


# ------------------------------------------------------------------------------------ depin executor start


@pytest.mark.parametrize(("option", "env"), [(["--metrics", "abc"], {}), ([], {"DEPIN_EXECUTOR_METRICS": "127.0.0.1:99999"})])
def test_executor_start_refuses_a_bad_metrics_address_before_anything_starts(
    tmp_path: Path, option: list[str], env: dict[str, str]
) -> None:
    path = tmp_path / "depin.toml"
    path.write_text("")
    result = CliRunner().invoke(app, ["executor", "start", "--config", str(path), *option], env=env)
    assert_one_line_error(result, "DEPIN_EXECUTOR_METRICS", "must be HOST:PORT")


def test_the_canary_keys_paths_are_the_files_folders_like_the_key_section(tmp_path: Path) -> None:
    """``[canary.requester]`` and ``[canary.signer]`` are ``[key]`` sections: relative paths are read
    against the file's folder, and an unknown field is refused."""
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "depin.toml"
    path.write_text(
        '[key]\nkeystore = "keys/provider.json"\n'
        '[canary.requester]\nkeystore = "keys/requester.json"\npassword_file = "keys/requester.pass"\n'
        "[canary.signer]\ndev_account = 7\n"
    )
    config = load_config(path, env={})
    assert config.canary.requester is not None and config.canary.signer is not None
    assert config.canary.requester.keystore == (folder / "keys" / "requester.json").resolve()
    assert config.canary.requester.password_file == (folder / "keys" / "requester.pass").resolve()
    assert config.canary.signer.dev_account == 7 and config.canary.signer.keystore is None
    path.write_text('[canary.signer]\nkeystor = "typo.json"\n')
    with pytest.raises(ConfigError, match="keystor"):
        load_config(path, env={})


# ------------------------------------------------------------------------------------ values out of range


def _refused_at_load(path: Path, toml: str, where: str, said: str) -> None:
    """`toml` in `path` is one ConfigError line naming setting `where` with `said`, and one `error:`
    line from `depin executor start`."""
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert f": {where}: " in message and said in message and "\n" not in message, message
    result = CliRunner().invoke(app, ["executor", "start", "--config", str(path)], env={})
    assert_one_line_error(result, where, said)


@pytest.mark.parametrize(
    ("toml", "where", "said"),
    [
        ("[canary]\ninterval = inf", "canary.interval", "finite number"),  # TOML has inf and nan
        ("[canary]\ninterval = nan", "canary.interval", "finite number"),
        ("[executor]\nresult_retention_days = inf", "executor.result_retention_days", "finite number"),
        ("[policy]\nmax_cpus = inf", "policy.max_cpus", "finite number"),
        ("[verifier]\ndelivery_wait = nan", "verifier.delivery_wait", "finite number"),
        ('[verifier]\ncourt_stake = "2e59"', "verifier.court_stake", "more than a uint256 holds"),  # 2e77 base units
        ('[verifier]\ncourt_stake = "1e999999"', "verifier.court_stake", "more than a uint256 holds"),
        ('[canary]\nreward = "1e-19"', "canary.reward", "less than one base unit"),
        ('[canary]\nreward = 1e300', "canary.reward", "more than a uint256 holds"),
        ('[executor]\nwithdraw_threshold = "-1"', "executor.withdraw_threshold", "greater than or equal to 0"),
        ('[policy]\nmin_reward_per_cpu_second = "-0.5"', "policy.min_reward_per_cpu_second", "greater than or equal to 0"),
        ('[engine]\nstate_dir = "/"', "engine.state_dir", "root"),
        ('[engine]\nstate_dir = "' + "../" * 64 + '"', "engine.state_dir", "root"),  # resolves to /
    ],
)
def test_a_setting_out_of_its_range_is_refused_at_load_naming_it(tmp_path: Path, toml: str, where: str, said: str) -> None:
    _refused_at_load(tmp_path / "depin.toml", toml, where, said)


@pytest.mark.parametrize(
    ("toml", "where", "said"),
    [
        ('[policy]\nmax_cpus = "2"', "policy.max_cpus", "valid number"),  # pydantic's lax mode took "2" as 2.0
        ('[policy]\nmax_memory_mb = "512"', "policy.max_memory_mb", "valid integer"),
        ("[policy]\nmax_memory_mb = 512.0", "policy.max_memory_mb", "valid integer"),
        ("[executor]\nconcurrency = true", "executor.concurrency", "valid integer"),  # lax: true was 1
        ("[executor]\nallow_unmounted_output = 1", "executor.allow_unmounted_output", "valid boolean"),
        ('[executor]\nallow_unmounted_output = "yes"', "executor.allow_unmounted_output", "valid boolean"),
        ('[key]\ndev_account = "0"', "key.dev_account", "valid integer"),
        ("[canary]\nreward = true", "canary.reward", "Decimal input"),
    ],
)
def test_a_setting_of_the_wrong_type_is_refused_not_coerced(tmp_path: Path, toml: str, where: str, said: str) -> None:
    """A number, flag or count is written as one: a string or another type is an error naming the
    setting. Pydantic's lax mode read `max_cpus = "2"` as 2.0, `concurrency = true` as 1 and
    `allow_unmounted_output = "yes"` as true: a guess at what a mistyped file meant."""
    _refused_at_load(tmp_path / "depin.toml", toml, where, said)


def test_paths_and_amounts_are_still_read_from_strings_and_numbers(tmp_path: Path) -> None:
    """Paths are TOML strings, and a token amount may be an integer, a float or a string (the string
    keeps "0.1" exact): strict types do not refuse those."""
    path = tmp_path / "depin.toml"
    path.write_text(
        '[network]\ndeployment = "d/31337.json"\n[key]\nkeystore = "k.json"\npassword_file = "pw"\n'
        '[canary]\nreward = 2\n[verifier]\ncourt_stake = 10.5\n[executor]\nwithdraw_threshold = "0.1"\n'
        "concurrency = 3\n[policy]\nmax_cpus = 1\n"
    )
    config = load_config(path, env={})
    assert config.network.deployment == tmp_path / "d" / "31337.json" and config.key.keystore == tmp_path / "k.json"
    assert (config.canary.reward, config.verifier.court_stake, config.executor.withdraw_threshold) == (
        Decimal(2), Decimal("10.5"), Decimal("0.1"))
    assert config.executor.concurrency == 3 and config.policy.max_cpus == 1.0


def test_amounts_at_their_bounds_are_taken(tmp_path: Path) -> None:
    path = tmp_path / "depin.toml"
    path.write_text(
        '[canary]\nreward = "0.000000000000000001"\n[verifier]\ncourt_stake = "1.1e59"\n'
        '[executor]\nwithdraw_threshold = "0"\n[policy]\nmin_reward_per_cpu_second = "0"\nmax_cpus = 0.5\n'
        '[engine]\nstate_dir = "state"\n'
    )
    config = load_config(path, env={})
    assert config.canary.reward == Decimal("1e-18") and config.verifier.court_stake == Decimal("1.1e59")
    assert config.engine.state_dir == tmp_path / "state"


def test_a_home_relative_path_names_one_file_for_the_executor_and_the_indexer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review, stop 56: `deployment = "~/d/31337.json"` in one depin.toml was the user's home
    for the indexer (indexer.config expands `~`) and a folder named `~` below the config's folder for
    the executor. Both read the home's file now."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    path = tmp_path / "cfg" / "depin.toml"
    path.parent.mkdir()
    path.write_text('[network]\ndeployment = "~/d/31337.json"\n[engine]\nstate_dir = "~/state"\n')
    config = load_config(path)
    assert config.network.deployment == home / "d" / "31337.json"
    assert config.engine.state_dir == home / "state"
    assert read_config_file(path)["deployment_file"] == config.network.deployment  # the indexer's reading of the same file


def test_the_podman_service_never_inherits_a_password() -> None:
    """Found by review, stop 56: the Podman service the executor starts is never stopped, and it got
    the executor's whole environment, DEPIN_KEYSTORE_PASSWORD included, readable in its
    /proc/<pid>/environ long after. Such variables are left out."""
    from executor.engine import _secret_variable

    for name in ("DEPIN_KEYSTORE_PASSWORD", "APE_ACCOUNTS_deployer_PASSPHRASE", "MY_SECRET", "ETH_PRIVATE_KEY", "db_password"):
        assert _secret_variable(name), name
    for name in ("PATH", "HOME", "XDG_RUNTIME_DIR", "DOCKER_HOST", "CONTAINERS_CONF", "DEPIN_CONFIG"):
        assert not _secret_variable(name), name


def test_python_m_executor_start_reads_depin_config(tmp_path: Path) -> None:
    """Found by review, stop 56: `--config` says its default is $DEPIN_CONFIG, but `start` refused
    without the option ("start needs --config"). It reads the variable's file now (here one that
    does not exist, named in the error)."""
    import os
    import subprocess
    import sys

    from depin.deployment import REPO_ROOT

    missing = tmp_path / "nowhere" / "depin.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPIN_")}
    env.update(DEPIN_CONFIG=str(missing), PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-m", "executor", "start"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0
    assert "start needs --config" not in proc.stderr and str(missing) in proc.stderr, proc.stderr
