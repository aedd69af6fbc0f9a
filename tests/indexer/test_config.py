"""The indexer's settings from a config file: its own [indexer] table or top-level keys, or the
shared keys of an executor's depin.toml, whose other tables it ignores."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from depin.config import ConfigError
from indexer.config import IndexerConfig, read_config_file, settings_from_toml

EXECUTOR_TOML = """
[network]
rpc_url = "http://node:8545"
deployment = "deployments/31337.json"

[redis]
url = "redis://cache:6379/0"
namespace = "depin"

[engine]
state_dir = "state"

[executor]
role = "verifier"
"""


def test_an_executors_depin_toml_gives_the_shared_keys_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "depin.toml"
    path.write_text(EXECUTOR_TOML)
    settings = read_config_file(path)
    assert settings == {"rpc_url": "http://node:8545", "deployment_file": tmp_path / "deployments" / "31337.json",
                        "redis_url": "redis://cache:6379/0", "namespace": "depin"}
    assert IndexerConfig(**settings).redis_url == "redis://cache:6379/0"


def test_an_indexer_table_overrides_the_shared_keys_and_is_checked(tmp_path: Path) -> None:
    data = {"network": {"rpc_url": "http://node:8545"}, "indexer": {"rpc_url": "http://other:8545", "confirmations": 3}}
    assert settings_from_toml(data, tmp_path) == {"rpc_url": "http://other:8545", "confirmations": 3}
    top = settings_from_toml({"max_range": 10, "policy": {"max_cpus": 2}}, tmp_path)
    assert top == {"max_range": 10}
    with pytest.raises(ValidationError, match="confirmatons"):  # a typo in the indexer's own keys still fails
        IndexerConfig(**settings_from_toml({"indexer": {"confirmatons": 3}}, tmp_path))


def test_a_missing_file_is_one_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_config_file(tmp_path / "missing.toml")
