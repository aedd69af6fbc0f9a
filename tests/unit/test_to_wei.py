"""depin.deployment.to_wei: whole tokens to base units, exactly or a ValueError. It multiplied at
Python's default 28-digit Decimal precision: 12345678901.123456789012345678 tokens gave ...680 base
units, and digits below one base unit were dropped without a word."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from depin.config import ConfigError, load_config
from depin.deployment import DEFAULT_PARAMETERS_FILE, ParametersError, load_parameters, to_wei


@pytest.mark.parametrize(
    ("tokens", "units"),
    [
        ("12345678901.123456789012345678", 12345678901123456789012345678),
        (Decimal("12345678901.123456789012345678"), 12345678901123456789012345678),
        ("99999999999999999999999999999.999999999999999999", 10**47 - 1),
        ("0.000000000000000001", 1),
        ("1.000000000000000000000", 10**18),  # zeros below one base unit are no digits lost
        (Decimal("2e59"), 2 * 10**77),
        (1, 10**18),
        (0.1, 10**17),
        ("0", 0),
    ],
)
def test_to_wei_is_exact(tokens: object, units: int) -> None:
    assert to_wei(tokens) == units  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tokens", "said"),
    [
        ("1.0000000000000000001", "more than 18 decimals"),
        ("12345678901.1234567890123456789", "more than 18 decimals"),
        ("0.0000000000000000001", "less than one base unit"),
        (1e-19, "less than one base unit"),
        ("1e999999", "out of range"),
        ("nan", "not a number of tokens"),
        ("-inf", "not a number of tokens"),
        ("1,5", "not a number of tokens"),
    ],
)
def test_to_wei_refuses_what_is_no_whole_number_of_base_units(tokens: object, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        to_wei(tokens)  # type: ignore[arg-type]


def test_the_parameters_file_refuses_an_amount_below_one_base_unit(tmp_path: Path) -> None:
    """A max_reward of 50.0000000000000000001 would have been deployed as 50 tokens: it is refused
    as the parameters file's error, naming the field."""
    path = tmp_path / "parameters.toml"
    text = DEFAULT_PARAMETERS_FILE.read_text()
    assert text.count("max_reward = 50,") >= 1
    path.write_text(text.replace("max_reward = 50,", 'max_reward = "50.0000000000000000001",'))
    with pytest.raises(ParametersError, match=r"market\.max_reward: Value error, .*more than 18 decimals"):
        load_parameters(31337, path)


def test_a_config_amount_below_one_base_unit_is_refused(tmp_path: Path) -> None:
    """[verifier] court_stake = "1000.0000000000000000001" was read as 1000 tokens."""
    path = tmp_path / "depin.toml"
    path.write_text('[verifier]\ncourt_stake = "1000.0000000000000000001"\n')
    with pytest.raises(ConfigError, match="verifier.court_stake.*more than 18 decimals"):
        load_config(path, env={})
