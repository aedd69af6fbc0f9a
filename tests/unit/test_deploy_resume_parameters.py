"""Which parameter changes a stopped deploy can be resumed with (depinctl.deploy.parameters_used_and_changed)."""

from __future__ import annotations

from depin.deployment import load_parameters, resolved_parameters
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
