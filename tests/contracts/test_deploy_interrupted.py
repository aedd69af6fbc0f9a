"""scripts/deploy.py when a deploy stops halfway, as on a testnet when the deployer's ether runs out
(or the node goes away) after some contracts are mined, and the operator fixes that and runs it
again. A real anvil with the Sepolia chain id (the testnet parameters, `--account TEST::0`), the
deployer given enough ether for the first contracts only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils import to_checksum_address
from web3 import Web3
from web3.utils.address import get_create_address

from depin.deployment import REPO_ROOT
from depinctl import procs

DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # TEST::0, anvil's account 0
# What the token, the randomness source, the market and the court engine cost at anvil's fees, and
# not the court after them (ape asks for gas * max fee of the block gas limit up front)
SHORT_BALANCE = 75 * 10**15


def _deploy(url: str, out: Path) -> subprocess.CompletedProcess[str]:
    bins = [str(REPO_ROOT / "node_modules" / ".bin"), str(Path(sys.executable).parent)]
    env = dict(os.environ, APE_FOUNDRY_HOST=url, PATH=os.pathsep.join([*bins, os.environ.get("PATH", "")]))
    ape = str(Path(sys.executable).with_name("ape"))
    return subprocess.run(
        [ape, "run", "deploy", "--network", "ethereum:local:foundry", "--deployments-dir", str(out), "--account", "TEST::0"],
        cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def halfway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The first deploy (ether for half of it), then the second one after the deployer is funded."""
    work = tmp_path_factory.mktemp("halfway")
    proc, url = procs.start_anvil(work, args=["--silent", "--chain-id", "11155111"], timeout=30)
    try:
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10}))
        w3.provider.make_request("anvil_setBalance", [DEPLOYER, hex(SHORT_BALANCE)])  # type: ignore[arg-type]
        out = work / "deployments"
        first = _deploy(url, out)
        sent_first = w3.eth.get_transaction_count(DEPLOYER)
        w3.provider.make_request("anvil_setBalance", [DEPLOYER, hex(10**21)])  # type: ignore[arg-type]
        second = _deploy(url, out)
        record = json.loads((out / "11155111.json").read_text()) if (out / "11155111.json").exists() else None
        yield {"first": first, "sent_first": sent_first, "second": second, "record": record}
    finally:
        proc.stop(timeout=10)


@pytest.mark.xfail(
    strict=True,
    reason="scripts/deploy.py records nothing until every contract is deployed: a rerun after a deploy "
    "that stopped halfway deploys (and pays for) a second set, the first one's token and market left unrecorded",
)
def test_a_rerun_after_a_deploy_that_stopped_halfway_keeps_what_it_deployed(halfway: dict) -> None:
    first, second = halfway["first"], halfway["second"]
    assert first.returncode != 0, "the first deploy was to run out of ether"
    assert second.returncode == 0, second.stdout + second.stderr
    record = halfway["record"]
    assert record is not None
    if halfway["sent_first"]:
        # the token is the deployer's first contract: the rerun must reuse it (or the first run
        # must have sent nothing it cannot afford), not leave it (its whole supply minted) unrecorded
        first_token = to_checksum_address(get_create_address(DEPLOYER, 0))  # type: ignore[arg-type]
        assert record["addresses"]["RewardToken"] == first_token, (
            f"the first run sent {halfway['sent_first']} transactions (token {first_token}); the rerun deployed "
            f"token {record['addresses']['RewardToken']}"
        )


@pytest.mark.xfail(strict=True, reason="a deploy that runs out of ether ends with a Python traceback excerpt, not one line")
def test_a_deploy_that_runs_out_of_ether_says_so_in_one_line(halfway: dict) -> None:
    first = halfway["first"]
    output = first.stdout + first.stderr
    assert first.returncode != 0
    assert 'File "' not in output, output[-2000:]
    assert "insufficient funds" in output.lower()
