"""Fixtures for the chain client tests: one anvil + the project's ape deploy per test session.

Signing accounts are fresh random keys (``eth_account``), given ether with ``anvil_setBalance`` and
tokens minted by the deployer (the devnet faucet) through :class:`depinctl.devchain.DevChain`, so that
each test sees exact balances of its own. Anvil's development accounts sign only where a test is
about them (the arbiter is account 0, the deployer).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from depin.client import Client
from depin.deployment import Deployment, to_wei
from depin.spec import JobSpec, parse_spec
from depinctl.devchain import DevChain
from depinctl.procs import ManagedProcess
from tests.indexer.services import TEST_COURT, deployed_anvil

DIGEST = "ab" * 32


@dataclass
class Devnet:
    url: str
    deployment: Deployment
    deployment_file: Path
    chain: DevChain
    proc: ManagedProcess

    def new_account(self, tokens: float = 0, ether: int = 100) -> LocalAccount:
        account = Account.create()
        self.chain.rpc.call("anvil_setBalance", [account.address, hex(ether * 10**18)])
        if tokens:
            self.chain.fund([account.address], to_wei(tokens), approve=False)
        return account

    def client(self, account: LocalAccount | None = None, **options: object) -> Client:
        return Client.connect(self.url, self.deployment_file, account, **options)


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    workdir = tmp_path_factory.mktemp("client-devnet")
    # the TestCourt stand-in: the client tests settle a disputed job by hand (Disputed -> Resolved)
    anvil, deployment, path = deployed_anvil(workdir, deploy_args=TEST_COURT, timeout=240)
    try:
        yield Devnet(anvil.url, deployment, path, DevChain(anvil.url, deployment), anvil.proc)
    finally:
        anvil.stop()


def make_spec(n: int = 0, *, runtime: int = 60, cpus: float = 1, inputs: list[dict] | None = None) -> JobSpec:
    return parse_spec(
        {
            "v": 1,
            "image": f"depin/test@sha256:{DIGEST}",
            "command": ["echo", str(n)],
            "inputs": inputs or [],
            "resources": {"cpus": cpus, "memory_mb": 64, "max_runtime": runtime},
        }
    )
