"""The deploy parameters: which changes a stopped deploy can be resumed with
(depinctl.deploy.parameters_used_and_changed), and a parameters file with a typo."""

from __future__ import annotations

from pathlib import Path

import pytest

from depin.deployment import DEFAULT_PARAMETERS_FILE, ParametersError, load_parameters, resolved_parameters
from depinctl.deploy import parameters_used_and_changed

RECORDED = resolved_parameters(load_parameters(31337), "VerificationCourt", "0x" + "11" * 20)


def changed(section: str, key: str, value: object) -> dict:
    return RECORDED | {section: RECORDED[section] | {key: value}}


def test_a_market_value_only_setparams_sends_may_change_before_it_is_sent() -> None:
    sent = ["RewardToken", "Randomness", "JobMarket", "CourtEngine", "VerificationCourt"]
    assert parameters_used_and_changed(RECORDED, changed("market", "feeBps", 300), sent) == []
    assert parameters_used_and_changed(RECORDED, changed("market", "feeBps", 300), [*sent, "setParams"]) == ["setParams: market.feeBps"]


def test_a_value_a_sent_contract_was_built_with_may_not() -> None:
    assert parameters_used_and_changed(RECORDED, changed("market", "drawDelay", 2), ["RewardToken", "Randomness", "JobMarket"]) == [
        "JobMarket: market.drawDelay"
    ]
    assert parameters_used_and_changed(RECORDED, changed("token", "cap", "1"), ["RewardToken"]) == ["RewardToken: token.cap"]
    assert parameters_used_and_changed(RECORDED, RECORDED | {"arbiter": "0x" + "22" * 20}, ["arbiterRole"]) == ["arbiterRole: arbiter"]
    assert parameters_used_and_changed(RECORDED, changed("court", "rhoPct", 300), ["VerificationCourt"]) == ["VerificationCourt: court.rhoPct"]
    assert parameters_used_and_changed(RECORDED, changed("court", "rhoPct", 300), ["SomeNewStep"]) == ["SomeNewStep: court.rhoPct"]


@pytest.mark.parametrize(
    ("edit", "named"),
    [((" fee_bps = 200,", " fee_bsp = 200,"), "fee_bsp"), (("devnet_faucet = true", "devnet_fauset = true"), "devnet_fauset"),
     (("fee_bps = 200,", "fee_bps = ,"), "parameters.toml")],
)
def test_a_typo_in_the_parameters_file_is_one_line_naming_it(tmp_path: Path, edit: tuple[str, str], named: str) -> None:
    path = tmp_path / "parameters.toml"
    path.write_text(DEFAULT_PARAMETERS_FILE.read_text().replace(*edit))
    with pytest.raises(ParametersError) as caught:
        load_parameters(31337, path)
    assert named in str(caught.value) and "\n" not in str(caught.value)
