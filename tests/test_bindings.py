"""depin/contracts.py is exactly what tools/gen_bindings.py writes from the shipped artifacts, and
its bindings encode what the codec encodes (one binding per contract function)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from depin.abi import CONTRACTS, AbiError, Codec, Transaction, View
from depin.artifacts import load_abi
from depin.contracts import BINDINGS, Deployed, JobMarket, RewardToken

REPO = Path(__file__).resolve().parent.parent
ADDRESS = "0x" + "ab" * 20


def _generator():
    spec = importlib.util.spec_from_file_location("gen_bindings", REPO / "tools" / "gen_bindings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _generator()


def test_generated_file_is_up_to_date() -> None:
    shipped = (REPO / "depin" / "contracts.py").read_text(encoding="utf-8")
    assert shipped == gen.generate(), "depin/contracts.py is stale: run `python tools/gen_bindings.py` and commit it"


@pytest.mark.parametrize("contract", CONTRACTS)
def test_one_method_per_function_and_a_topic_per_event(contract: str) -> None:
    binding = BINDINGS[contract]
    abi = load_abi(contract)
    functions = [i for i in abi if i.get("type") == "function"]
    assert all(callable(getattr(binding, gen.method_name(f["name"]))) for f in functions)
    assert set(binding.TOPICS) == {i["name"] for i in abi if i.get("type") == "event"}
    assert binding.TOPICS == {name: "0x" + topic.hex() for (c, name), topic in Codec().topics.items() if c == contract}


def test_views_and_transactions_are_distinguished_and_encode_like_the_codec() -> None:
    codec = Codec()
    market = JobMarket(ADDRESS, codec)
    view = market.get_job(7)
    assert isinstance(view, View) and view.what == "JobMarket.getJob"
    assert (view.to, view.data) == (market.address, codec.encode("JobMarket", "getJob", 7))
    tx = market.claim_job(7)
    assert isinstance(tx, Transaction) and tx.data == codec.encode("JobMarket", "claimJob", 7)
    assert RewardToken(ADDRESS, codec).balance_of(ADDRESS).decode("0x" + "00" * 31 + "2a") == 42
    with pytest.raises(AbiError, match="is a view"):
        market.transaction("getJob", 7)
    with pytest.raises(AbiError, match="changes state"):
        market.view("claimJob", 7)


def test_deployed_holds_every_contract_by_name() -> None:
    deployed = Deployed({c: ADDRESS for c in CONTRACTS})
    assert [type(deployed[c]).__name__ for c in CONTRACTS] == list(CONTRACTS)
    assert deployed.job_market is deployed["JobMarket"]
