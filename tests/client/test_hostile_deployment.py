"""A deployment file handed out by someone else (or a stale one): what `Client.connect` (every
`depin` command, the executor's preflight) trusts it for, on the session's anvil with the real
deployment.

The file names the five contracts by address; the client approves tokens to the market, the
staking contract and the court it names. An attacker's file that names a contract of theirs as the
market (or an address without code, or a contract of another build) must be refused when the
client connects, before any approval is signed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from depin.client import Client, ClientError
from depin.deployment import to_wei

from .conftest import Devnet

# Runtime code of one STOP: every call to it succeeds and returns nothing (an attacker's catch-all
# "market" that accepts a deposit and keeps the approval for a later transferFrom).
CATCH_ALL = "0x00"


def hostile_file(devnet: Devnet, tmp_path: Path, **addresses: str) -> Path:
    """The session's deployment file with `addresses` replaced."""
    record = json.loads(devnet.deployment_file.read_text())
    record["addresses"].update(addresses)
    path = tmp_path / f"{record['chainId']}.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def attacker_contract(devnet: Devnet, code: str = CATCH_ALL) -> str:
    address = Account.create().address
    devnet.chain.rpc.call("anvil_setCode", [address, code])
    return address


def test_the_real_deployment_file_connects(devnet: Devnet) -> None:
    client = Client.connect(devnet.url, devnet.deployment_file)
    assert client.market == devnet.deployment.addresses["JobMarket"]


def test_a_file_naming_an_attackers_market_gets_no_approval(devnet: Devnet, tmp_path: Path) -> None:
    attacker = attacker_contract(devnet)
    victim = devnet.new_account(tokens=20)
    path = hostile_file(devnet, tmp_path, JobMarket=attacker)
    refused = ""
    try:
        Client.connect(devnet.url, path, victim).deposit(to_wei(10))
    except ClientError as exc:
        refused = str(exc)
    approved = devnet.client().allowance(victim.address, attacker)
    assert approved == 0, f"the victim approved {approved} base units to the attacker's 'market' {attacker}"
    assert "JobMarket" in refused


def test_a_file_naming_an_attackers_staking_contract_is_refused(devnet: Devnet, tmp_path: Path) -> None:
    path = hostile_file(devnet, tmp_path, ProviderStaking=attacker_contract(devnet))
    with pytest.raises(ClientError, match="ProviderStaking"):
        Client.connect(devnet.url, path)


def test_a_file_naming_an_address_without_code_is_refused(devnet: Devnet, tmp_path: Path) -> None:
    path = hostile_file(devnet, tmp_path, RewardToken=Account.create().address)
    with pytest.raises(ClientError, match="RewardToken"):
        Client.connect(devnet.url, path)


def test_a_file_naming_another_contract_of_the_deployment_as_the_market_is_refused(devnet: Devnet, tmp_path: Path) -> None:
    addresses = devnet.deployment.addresses
    path = hostile_file(devnet, tmp_path, JobMarket=addresses["VerificationCourt"], VerificationCourt=addresses["JobMarket"])
    with pytest.raises(ClientError, match="JobMarket"):
        Client.connect(devnet.url, path)


def test_a_market_of_another_build_is_refused(devnet: Devnet, tmp_path: Path) -> None:
    """The real market's code with one byte of its metadata hash changed (what another build of the
    sources, or another version's, deploys): it answers every call as the market does."""
    code = bytearray(bytes.fromhex(devnet.chain.rpc.get_code(devnet.deployment.addresses["JobMarket"])[2:]))
    code[-10] ^= 0xFF  # inside the CBOR metadata trailer (its last 2 bytes are its length)
    path = hostile_file(devnet, tmp_path, JobMarket=attacker_contract(devnet, "0x" + code.hex()))
    with pytest.raises(ClientError, match="JobMarket"):
        Client.connect(devnet.url, path)


def test_a_file_whose_court_is_not_the_markets_is_refused(devnet: Devnet, tmp_path: Path) -> None:
    path = hostile_file(devnet, tmp_path, VerificationCourt=attacker_contract(devnet))
    with pytest.raises(ClientError, match="VerificationCourt"):
        Client.connect(devnet.url, path)
