"""scripts/deploy.py end to end: `ape run deploy` as an operator runs it, against anvils started here.

Each anvil is our own subprocess on a free port (``depinctl.procs.start_anvil``, stopped in a finalizer);
`APE_FOUNDRY_HOST` points ape-foundry at it instead of letting ape start one. Deployment files go
to a temporary --deployments-dir, never to the repository's deployments/. The chain is read back
with web3 and the ABIs shipped in depin/artifacts, so these tests also exercise those.

Test accounts: ape's test mnemonic is anvil's default one, so `TEST::0` (ape's account_option
syntax for test account 0) is anvil's first funded account. The deploy script uses it by default
on chain ids 31337/1337 only; on the anvil started with `--chain-id 11155111` it must be passed
explicitly with `--account TEST::0`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from depin.artifacts import load_abi
from depin.deployment import load_parameters, resolved_parameters, to_wei
from depinctl import procs
from depinctl.deploy import STEP_GAS, deploy_steps

REPO = Path(__file__).resolve().parents[2]
BIN_DIRS = [str(REPO / "node_modules" / ".bin"), str(Path(sys.executable).parent)]
NETWORK = "ethereum:local:foundry"
# anvil's (and ape's) default test mnemonic: accounts 0 and 1.
DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
OTHER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
MINTER_ROLE = keccak(text="MINTER_ROLE")
CONTRACTS = ("RewardToken", "ProviderStaking", "JobMarket", "VerificationCourt", "Randomness")


def _which(tool: str) -> str:
    found = shutil.which(tool, path=os.pathsep.join([*BIN_DIRS, os.environ.get("PATH", "")]))
    if not found:
        pytest.fail(f"{tool} not found on PATH or in node_modules/.bin and .venv/bin (run `make setup`)")
    return found


class Anvil:
    """``anvil --silent`` on a free port (:func:`depinctl.procs.start_anvil`: its own session, so its
    node wrapper and binary stop together), logging to `workdir`."""

    def __init__(self, workdir: Path, chain_id: int | None = None):
        args = ["--silent", *(["--chain-id", str(chain_id)] if chain_id is not None else [])]
        self.proc, self.url = procs.start_anvil(workdir, args=args, timeout=30)
        self.port = int(self.url.rsplit(":", 1)[1])
        self.w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 10}))

    def stop(self) -> None:
        self.proc.stop(timeout=10)


@pytest.fixture(scope="module")
def start_anvil(tmp_path_factory: pytest.TempPathFactory):
    started: list[Anvil] = []

    def _start(chain_id: int | None = None) -> Anvil:
        anvil = Anvil(tmp_path_factory.mktemp("anvil"), chain_id)
        started.append(anvil)
        return anvil

    yield _start
    for anvil in started:
        anvil.stop()


def run_deploy(anvil: Anvil, deployments_dir: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_extra or {})
    env["APE_FOUNDRY_HOST"] = anvil.url
    env["PATH"] = os.pathsep.join([*BIN_DIRS, env.get("PATH", "")])
    cmd = [_which("ape"), "run", "deploy", "--network", NETWORK, "--deployments-dir", str(deployments_dir), *args]
    return subprocess.run(
        cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600
    )


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"ape run deploy failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def contracts(w3: Web3, addresses: dict[str, str], court: str = "TestCourt", randomness: str = "BlockhashRandomness"):
    """web3 contracts by deployment name; the court and the randomness source by their contract's ABI."""
    abi_names = {"VerificationCourt": court, "Randomness": randomness}
    return {name: w3.eth.contract(address=addresses[name], abi=load_abi(abi_names.get(name, name))) for name in CONTRACTS}


def check_deployment(w3: Web3, record: dict, chain_id: int, arbiter: str, deployer: str = DEPLOYER) -> None:
    """The recorded deployment is on chain, wired, and built from the parameters file."""
    params = load_parameters(chain_id)
    assert record["chainId"] == chain_id
    assert record["network"] == params.name
    assert record["deployer"] == deployer
    assert set(record["addresses"]) == set(CONTRACTS)
    for name, address in record["addresses"].items():
        assert address == to_checksum_address(address)
        assert len(w3.eth.get_code(address)) > 0, f"no code at {name} {address}"
    # deployBlock is the block of the first deploy transaction (the token's).
    token_address = record["addresses"]["RewardToken"]
    assert w3.eth.get_code(token_address, block_identifier=record["deployBlock"])
    assert not w3.eth.get_code(token_address, block_identifier=record["deployBlock"] - 1)

    court_contract = record["parameters"]["courtContract"]
    c = contracts(w3, record["addresses"], court=court_contract)
    token, staking, market, court, _randomness = (c[n] for n in CONTRACTS)
    addr = record["addresses"]
    assert not token.functions.hasRole(MINTER_ROLE, addr["JobMarket"]).call(), "the market never mints"
    assert token.functions.hasRole(MINTER_ROLE, deployer).call() == params.devnet_faucet
    for role_holder in (token, market):
        assert role_holder.functions.hasRole(b"\x00" * 32, deployer).call(), "deployer is admin"
    assert staking.functions.market().call() == addr["JobMarket"]
    assert staking.functions.token().call() == addr["RewardToken"]
    assert market.functions.token().call() == addr["RewardToken"]
    assert market.functions.staking().call() == addr["ProviderStaking"]
    assert market.functions.randomness().call() == addr["Randomness"]
    assert court.functions.market().call() == addr["JobMarket"]

    # The file records the parameters as sent, in base units; the chain holds the same values.
    assert record["parameters"] == resolved_parameters(params, court_contract, arbiter)
    t = params.token
    assert token.functions.cap().call() == to_wei(t.cap) == int(record["parameters"]["token"]["cap"])
    assert token.functions.totalSupply().call() == to_wei(t.initial_supply)
    assert token.functions.symbol().call() == t.symbol
    assert staking.functions.minStake().call() == to_wei(params.staking.min_stake)
    assert staking.functions.unbondingDelay().call() == params.staking.unbonding_delay
    assert tuple(market.functions.params().call()) == params.market.as_tuple(addr["VerificationCourt"])
    assert market.functions.paramsVersion().call() == 1
    # C6: every member the court admits can sit for the largest job the market admits.
    assert market.functions.maxReward().call() == to_wei(params.market.max_reward) <= court.functions.maxVerifiableReward().call()
    if court_contract == "TestCourt":
        m = params.market
        assert court.functions.requiredChallengeWindow().call() == params.court.required_challenge_window(m.draw_delay)
        assert court.functions.maxHorizon(m.max_runtime).call() == params.court.max_horizon(m.max_runtime)


@pytest.mark.parametrize("chain_id", [31337, 11155111, 17000])
def test_each_networks_reward_cap_fits_its_court(chain_id):
    """The parameters file keeps max_reward <= court minStake / sigma (both setParams enforce it:
    a file that breaks it could not be deployed)."""
    params = load_parameters(chain_id)
    assert 0 < params.market.max_reward * params.court.canarySlashMul <= params.court.minStake


@pytest.fixture(scope="module")
def local(start_anvil, tmp_path_factory):
    """A devnet anvil (chain id 31337) with one deployment made by the script."""
    anvil = start_anvil()
    directory = tmp_path_factory.mktemp("deployments")
    out = _ok(run_deploy(anvil, directory))
    return anvil, directory, out


def test_first_deploy_records_a_wired_deployment(local):
    anvil, directory, out = local
    path = directory / "31337.json"
    assert "deployed" in out and str(path) in out
    text = path.read_text()
    assert text.endswith("\n") and json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n" == text
    assert sorted(p.name for p in directory.iterdir()) == ["31337.json"], "no temp files left behind"
    check_deployment(anvil.w3, json.loads(text), 31337, arbiter=DEPLOYER)



def test_each_transaction_of_the_deploy_stays_within_its_gas_bound(local):
    """The cost check before a deploy (scripts/deploy.py) bounds each transaction's gas by
    depinctl.deploy.STEP_GAS: a contract that grows past its bound fails here, not on a testnet."""
    anvil, directory, _ = local
    record = json.loads((directory / "31337.json").read_text())
    steps = deploy_steps(load_parameters(31337), record["parameters"]["courtContract"])
    assert anvil.w3.eth.get_transaction_count(DEPLOYER) >= len(steps)
    sent = {}
    for number in range(1, anvil.w3.eth.block_number + 1):
        for tx in anvil.w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"] == DEPLOYER and tx["nonce"] < len(steps):
                sent[tx["nonce"]] = anvil.w3.eth.get_transaction_receipt(tx["hash"])["gasUsed"]
    for nonce, (step, what) in enumerate(steps):
        assert sent[nonce] <= STEP_GAS[what], f"{step} ({what}) used {sent[nonce]:,} gas, its bound is {STEP_GAS[what]:,}"

def test_second_run_reports_the_existing_deployment_and_sends_nothing(local):
    anvil, directory, _ = local
    path = directory / "31337.json"
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    nonce, block = anvil.w3.eth.get_transaction_count(DEPLOYER), anvil.w3.eth.block_number
    out = _ok(run_deploy(anvil, directory))
    assert f"existing deployment at {path}" in out
    for address in json.loads(before)["addresses"].values():
        assert address in out
    assert anvil.w3.eth.get_transaction_count(DEPLOYER) == nonce
    assert anvil.w3.eth.block_number == block
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime


def test_a_record_that_does_not_match_the_chain_is_refused(local, tmp_path):
    """Code at the recorded market, but another token recorded: refuse, touch nothing, suggest --force."""
    anvil, directory, _ = local
    record = json.loads((directory / "31337.json").read_text())
    record["addresses"]["RewardToken"] = record["addresses"]["VerificationCourt"]
    bad = tmp_path / "31337.json"
    bad.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    before = bad.read_bytes()
    nonce = anvil.w3.eth.get_transaction_count(DEPLOYER)
    proc = run_deploy(anvil, tmp_path)
    assert proc.returncode != 0
    assert "--force" in proc.stderr + proc.stdout and "token()" in proc.stderr + proc.stdout
    assert bad.read_bytes() == before
    assert anvil.w3.eth.get_transaction_count(DEPLOYER) == nonce


def test_a_restarted_chain_gets_a_new_deployment(local, start_anvil, tmp_path):
    """The file exists but the (fresh) chain has no code there: say so and deploy again."""
    _, directory, _ = local
    shutil.copy(directory / "31337.json", tmp_path / "31337.json")
    fresh = start_anvil()
    out = _ok(run_deploy(fresh, tmp_path))
    assert "is not on this chain" in out and "deploying again" in out
    first = json.loads((tmp_path / "31337.json").read_text())
    check_deployment(fresh.w3, first, 31337, arbiter=DEPLOYER)

    # --force deploys a new set even though this one is live, and overwrites the file.
    out = _ok(run_deploy(fresh, tmp_path, "--force"))
    assert "--force" in out and "deployed" in out
    second = json.loads((tmp_path / "31337.json").read_text())
    assert set(second["addresses"].values()).isdisjoint(first["addresses"].values())
    assert second["deployBlock"] > first["deployBlock"]
    check_deployment(fresh.w3, second, 31337, arbiter=DEPLOYER)


def test_testnet_chain_id_uses_testnet_parameters_and_needs_an_explicit_account(start_anvil, tmp_path):
    anvil = start_anvil(chain_id=11155111)
    refused = run_deploy(anvil, tmp_path)
    assert refused.returncode != 0
    assert "--account" in refused.stderr and "TEST::0" in refused.stderr
    assert anvil.w3.eth.get_transaction_count(DEPLOYER) == 0
    assert not (tmp_path / "11155111.json").exists()

    out = _ok(run_deploy(anvil, tmp_path, "--account", "TEST::0", "--arbiter", OTHER.lower()))
    assert "sepolia (chain id 11155111)" in out
    record = json.loads((tmp_path / "11155111.json").read_text())
    check_deployment(anvil.w3, record, 11155111, arbiter=OTHER)
    market = contracts(anvil.w3, record["addresses"])["JobMarket"]
    p = market.functions.params().call()
    assert (p[4], p[5]) == (3_600, 172_800), "sepolia challenge window: 1 h to 48 h"
    assert record["parameters"]["devnetFaucet"] is False


def test_a_public_chain_that_shows_no_code_is_never_redeployed(start_anvil, tmp_path):
    """Found by review, stop 56: "no code at the recorded contracts" meant a restarted devnet on
    every chain, so a testnet node that was behind, out of step or another network's made the
    script deploy a second set over the committed file. On a public chain id it is refused now,
    nothing sent and the file untouched; --force still deploys a new set."""
    first = start_anvil(chain_id=11155111)
    _ok(run_deploy(first, tmp_path, "--account", "TEST::0"))
    record = tmp_path / "11155111.json"
    before = record.read_bytes()
    behind = start_anvil(chain_id=11155111)  # the same network id, none of its contracts
    proc = run_deploy(behind, tmp_path, "--account", "TEST::0")
    assert proc.returncode != 0
    said = proc.stderr + proc.stdout
    assert "public chain keeps its contracts" in said and "--force" in said, said
    assert record.read_bytes() == before
    assert behind.w3.eth.get_transaction_count(DEPLOYER) == 0


def test_testnet_deploy_with_an_imported_account(start_anvil, tmp_path):
    """The operator path: a keyfile account as `ape accounts import` stores it, unlocked from the
    environment (APE_ACCOUNTS_<alias>_PASSPHRASE) with --autosign; nothing secret is printed."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    mnemonic = "test test test test test test test test test test test junk"
    operator = Account.from_mnemonic(mnemonic, account_path="m/44'/60'/0'/0/2")  # funded by anvil
    data = tmp_path / "ape-data"
    (data / "accounts").mkdir(parents=True)
    keystore = Account.encrypt(operator.key, "correct horse battery")
    (data / "accounts" / "opsdeployer.json").write_text(json.dumps(keystore))
    env = {"APE_DATA_FOLDER": str(data), "APE_ACCOUNTS_opsdeployer_PASSPHRASE": "correct horse battery"}

    anvil = start_anvil(chain_id=11155111)
    out_dir = tmp_path / "deployments"
    proc = run_deploy(anvil, out_dir, "--account", "opsdeployer", "--autosign", env_extra=env)
    _ok(proc)
    record = json.loads((out_dir / "11155111.json").read_text())
    check_deployment(anvil.w3, record, 11155111, arbiter=operator.address, deployer=operator.address)
    secret = operator.key.hex().removeprefix("0x")
    assert secret not in proc.stdout + proc.stderr
    assert "correct horse" not in proc.stdout + proc.stderr


def test_unknown_chain_id_names_the_parameters_file(start_anvil, tmp_path):
    anvil = start_anvil(chain_id=4242)
    proc = run_deploy(anvil, tmp_path)
    assert proc.returncode != 0
    assert "chain id 4242" in proc.stderr and "parameters.toml" in proc.stderr
    assert anvil.w3.eth.get_transaction_count(DEPLOYER) == 0
    assert list(tmp_path.iterdir()) == []
