"""Deploy (or find) the depin-compute contracts on the connected chain and record them.

Deploys RewardToken, the randomness source, JobMarket (whose constructor deploys ProviderStaking)
and the court (VerificationCourt, or the TestCourt stand-in while the build lacks it), sets the
market's first parameter version with the court (on devnets the deployer also gets MINTER_ROLE as a
faucet; the market never mints) and
writes ``<deployments dir>/<chainId>.json`` (format: the docstring of ``depin/deployment.py``).
Parameters come from ``deployments/parameters.toml``, chosen by the chain id the node reports.

Idempotent: when the deployment file exists and its JobMarket has code on this chain (and points at
the recorded token and staking contracts) the script prints "existing deployment at ..." and exits
0 without sending a transaction. When the file exists but the chain has no code there (a restarted
anvil), it says so and deploys again, overwriting the file. ``--force`` redeploys regardless.

Accounts: on local devnets (chain ids 31337, 1337) the deployer defaults to ape's first test
account. On any other chain ``--account`` is required: the alias of an account imported with
``ape accounts import ALIAS`` (ape asks for its passphrase; set ``APE_ACCOUNTS_<ALIAS>_PASSPHRASE``
for non-interactive runs, and ``--autosign`` to skip the per-transaction confirmation). A test
account can still be chosen explicitly with ``--account TEST::0`` (e.g. on an anvil started with
``--chain-id 11155111`` to rehearse a testnet deploy). Private keys are never printed.

Examples::

    # local anvil started by ape (throwaway: keep the file out of the repository)
    ape run deploy --network ethereum:local:foundry --deployments-dir .devnet/deployments
    # an anvil that is already running
    APE_FOUNDRY_HOST=http://127.0.0.1:8545 ape run deploy --network ethereum:local:foundry \\
        --deployments-dir .devnet/deployments
    # Sepolia (RPC URL in ape-config.yaml `node: ethereum: sepolia: uri:` or inline)
    ape accounts import depin-deployer
    ape run deploy --network ethereum:sepolia:node --account depin-deployer
    ape run deploy --network "ethereum:sepolia:$SEPOLIA_RPC_URL" --account depin-deployer
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from ape import accounts, chain, project
from ape.api.accounts import TestAccountAPI
from ape.cli import ConnectedProviderCommand, account_option
from eth_utils import is_address, to_checksum_address

from depin.deployment import (
    DEFAULT_DEPLOYMENTS_DIR,
    DEFAULT_PARAMETERS_FILE,
    LOCAL_CHAIN_IDS,
    Deployment,
    ParametersError,
    deployment_path,
    load_parameters,
    read_deployment,
    resolved_parameters,
    write_deployment,
)
from depinctl.deploy import court_contract_name, deploy_contracts, ensure_current_build

CONTRACTS = ("RewardToken", "ProviderStaking", "JobMarket", "VerificationCourt", "Randomness")


def _address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if not is_address(value):
        raise click.BadParameter(f"not an Ethereum address: {value!r}")
    return to_checksum_address(value)


def _has_code(address: str) -> bool:
    return len(chain.provider.get_code(address)) > 0


def check_existing(existing: Deployment, chain_id: int) -> tuple[str, str]:
    """Compares a recorded deployment with the chain.

    Returns ("ok", "") when it is live, ("missing", why) when the chain has no code at the recorded
    JobMarket (a restarted devnet: deploy again), ("mismatch", why) when there is code that does
    not match the record (refuse without --force).
    """
    if existing.chain_id != chain_id:
        return "mismatch", f"the file records chain id {existing.chain_id}"
    addrs = existing.addresses
    missing_keys = [name for name in CONTRACTS if name not in addrs]
    if missing_keys:
        return "mismatch", f"the file lacks addresses for {', '.join(missing_keys)}"
    if not _has_code(addrs["JobMarket"]):
        return "missing", f"no code at the recorded JobMarket {addrs['JobMarket']}"
    without_code = [name for name in CONTRACTS if not _has_code(addrs[name])]
    if without_code:
        return "mismatch", f"no code at the recorded {', '.join(without_code)}"
    market = project.JobMarket.at(addrs["JobMarket"], fetch_from_explorer=False)
    try:
        links = {"RewardToken": market.token(), "ProviderStaking": market.staking()}
    except Exception as exc:  # code there, but not a JobMarket
        return "mismatch", f"the contract at {addrs['JobMarket']} does not answer as a JobMarket ({exc})"
    for name, actual in links.items():
        if to_checksum_address(actual) != to_checksum_address(addrs[name]):
            return "mismatch", f"JobMarket.{'token' if name == 'RewardToken' else 'staking'}() is {actual}, the file records {addrs[name]}"
    return "ok", ""


def choose_account(account: Any, chain_id: int) -> Any:
    if account is None:
        if chain_id in LOCAL_CHAIN_IDS:
            return accounts.test_accounts[0]
        raise click.UsageError(
            f"chain id {chain_id} is not a local devnet (ids {sorted(LOCAL_CHAIN_IDS)}): pass --account ALIAS, "
            "an account imported with `ape accounts import ALIAS`. Ape's test accounts are only used by "
            "default on local devnets; pass --account TEST::0 to use one here deliberately."
        )
    if isinstance(account, TestAccountAPI) and chain_id not in LOCAL_CHAIN_IDS:
        click.echo(f"WARNING: deploying with test account {account.address} on chain id {chain_id} (explicit --account)")
    return account


def print_summary(heading: str, deployment: Deployment, path: Path) -> None:
    click.echo(heading)
    rows = [
        ("network", f"{deployment.network} (chain id {deployment.chain_id})"),
        ("deploy block", str(deployment.deploy_block)),
        ("deployer", deployment.deployer),
        *((name, deployment.addresses[name]) for name in CONTRACTS),
        ("file", str(path)),
    ]
    for label, value in rows:
        click.echo(f"  {label + ':':<17}{value}")


@click.command(cls=ConnectedProviderCommand, short_help="Deploy the depin-compute contracts")
@account_option(prompt=False)
@click.option("--arbiter", callback=_address, help="Holder of ARBITER_ROLE (default: the deployer).")
@click.option("--force", is_flag=True, help="Deploy a new set even when the recorded one is live.")
@click.option(
    "--deployments-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DEPLOYMENTS_DIR,
    show_default=True,
    help="Where <chainId>.json is read and written.",
)
@click.option(
    "--parameters",
    "parameters_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=DEFAULT_PARAMETERS_FILE,
    show_default=True,
    help="The per-network parameters file.",
)
@click.option("--autosign", is_flag=True, help="Unlock the account once and sign every transaction without asking.")
@click.option(
    "--court",
    "court_contract",
    type=click.Choice(["VerificationCourt", "TestCourt"]),
    default=None,
    help="The court contract (default VerificationCourt). TestCourt, the hand-driven stand-in some "
    "tests use, is refused outside local chains.",
)
def cli(account, arbiter, force, deployments_dir, parameters_file, autosign, court_contract):
    """Deploy the depin-compute contracts on the connected network and record them.

    Idempotent: when <deployments dir>/<chainId>.json records contracts that are live on this
    chain, prints "existing deployment at ..." and sends nothing (--force deploys a new set).
    Parameters come from the parameters file entry whose chain_ids hold the chain's id.

    \b
    ape run deploy --network ethereum:local:foundry --deployments-dir .devnet/deployments
    ape run deploy --network ethereum:sepolia:node --account ALIAS
    """
    chain_id = chain.chain_id
    rebuilt = ensure_current_build(project)  # before any contract type is read (check_existing too)
    if rebuilt:
        click.echo(f"compiled every contract ({rebuilt})")
    try:
        params = load_parameters(chain_id, parameters_file)
    except ParametersError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read the parameters file {parameters_file}: {exc}") from None
    path = deployment_path(chain_id, deployments_dir)

    try:
        existing = read_deployment(chain_id, deployments_dir)
    except (ValueError, KeyError) as exc:
        raise click.ClickException(f"{path} is not a deployment file ({exc!r}); move it away or fix it") from None
    if existing is not None and not force:
        status, why = check_existing(existing, chain_id)
        if status == "ok":
            print_summary(f"existing deployment at {path}", existing, path)
            recorded_court = existing.parameters.get("courtContract", "VerificationCourt")
            if existing.parameters != resolved_parameters(params, recorded_court, existing.parameters.get("arbiter")):
                click.echo(f"NOTE: {parameters_file} has changed since this deployment (it is not redeployed).")
            click.echo("Nothing sent. Pass --force to deploy a new set.")
            return
        if status == "missing":
            click.echo(f"recorded deployment {path} is not on this chain ({why}); deploying again")
        else:
            raise click.ClickException(
                f"recorded deployment {path} does not match chain id {chain_id}: {why}. "
                "Pass --force to deploy a new set and overwrite the file."
            )
    elif existing is not None:
        click.echo(f"--force: deploying a new set; {path} will be overwritten")

    deployer = choose_account(account, chain_id)
    if autosign and hasattr(deployer, "set_autosign"):
        deployer.set_autosign(True)
    if deployer.balance == 0:
        raise click.ClickException(f"deployer {deployer.address} has no ether on chain id {chain_id}")
    arbiter = arbiter or deployer.address
    if court_contract == "TestCourt" and chain_id not in LOCAL_CHAIN_IDS:
        raise click.UsageError("--court TestCourt is a test stand-in: local chains only")

    click.echo(f"deploying to {params.name} (chain id {chain_id}) from {deployer.address}")
    contracts = deploy_contracts(deployer, params, arbiter, court_contract)
    token = contracts["RewardToken"]
    first_block = chain.provider.get_receipt(token.txn_hash).block_number
    deployment = Deployment(
        chain_id=chain_id,
        network=params.name,
        deploy_block=first_block,
        addresses={name: to_checksum_address(c.address) for name, c in contracts.items()},
        parameters=resolved_parameters(params, court_contract_name(project, court_contract), arbiter),
        deployer=deployer.address,
    )
    written = write_deployment(deployment, deployments_dir)
    print_summary("deployed", deployment, written)
    if chain_id in LOCAL_CHAIN_IDS and Path(deployments_dir).resolve() == DEFAULT_DEPLOYMENTS_DIR.resolve():
        click.echo(
            f"NOTE: {written.name} records a throwaway devnet; do not commit it "
            "(use --deployments-dir .devnet/deployments to keep devnet files out of the repository)."
        )


# ape's account_option() takes no help text; give --account one.
for _param in cli.params:
    if _param.name == "account":
        _param.help = (
            "Deployer: an alias from `ape accounts import ALIAS`, or TEST::N for ape's test account N. "
            "Default on local devnets (chain ids 31337, 1337): TEST::0; required on any other chain."
        )
