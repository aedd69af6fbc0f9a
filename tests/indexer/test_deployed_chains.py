"""The test harness's deployed chains (services.deployed_anvil): a chain loaded from a test run's
first deployment is the chain the deploy script made, block for block."""

from __future__ import annotations

from pathlib import Path

import pytest

from depin.chain import RpcClient

from . import services
from .services import TEST_COURT, deployed_anvil


def _chain(url: str, addresses: dict[str, str], deploy_block: int) -> dict:
    rpc = RpcClient.from_url(url)
    return {
        "blocks": [rpc.call("eth_getBlockByNumber", [hex(n), False])["hash"] for n in range(deploy_block + 1)],
        "logs": rpc.call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": hex(deploy_block)}]),
        "code": {name: rpc.get_code(address) for name, address in addresses.items()},
        "balances": [rpc.call("eth_getBalance", [a, "latest"]) for a in rpc.call("eth_accounts")],
    }


def test_a_loaded_chain_is_the_deployed_one_and_the_script_runs_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(services.DEPLOY_CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    first, deployment, path = deployed_anvil(tmp_path / "first", deploy_args=TEST_COURT)
    try:
        scripted = _chain(first.url, deployment.addresses, deployment.deploy_block)
        assert scripted["logs"] and all(c not in ("0x", "0x0") for c in scripted["code"].values())
    finally:
        first.stop()

    def no_script(*args: object, **kwargs: object) -> None:
        raise AssertionError("the deploy script ran again for the same arguments")

    monkeypatch.setattr(services, "deploy_with_ape", no_script)
    second, loaded, loaded_path = deployed_anvil(tmp_path / "second", deploy_args=TEST_COURT)
    try:
        assert loaded_path == tmp_path / "second" / "deployments" / path.name
        assert loaded_path.read_text() == path.read_text()
        assert _chain(second.url, loaded.addresses, loaded.deploy_block) == scripted
        rpc = RpcClient.from_url(second.url)
        head = rpc.block_number()
        rpc.call("evm_mine", [])  # the loaded chain goes on
        assert rpc.block_number() == head + 1
    finally:
        second.stop()
    with pytest.raises(AssertionError, match="ran again"):  # other arguments: the script again
        deployed_anvil(tmp_path / "third", deploy_args=(*TEST_COURT, "--arbiter", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"))
