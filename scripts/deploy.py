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

Cost: before it sends anything the script bounds what the deploy (what is left of it) costs: each
transaction's gas bound (``depinctl.deploy.STEP_GAS``) at the highest fee per gas it offers, plus
what the node wants held up front for the last one (ape's gas limit on local networks is the block's
whole gas limit), and refuses in one line ("insufficient funds: ... needs up to X ETH ..., deployer
... holds Y ETH") when the deployer holds less.

Resuming: a deploy that stops halfway (the ether ran out after all, the node went away, Ctrl-C)
leaves ``<chainId>.json.partial`` beside the deployment file (``depinctl.deploy.DeployJournal``:
the chain id, the deployer, the parameters and each transaction's hash, then its contract's
address, written before each broadcast and after each receipt). Run the same command again: the
script checks the record against the chain (the same chain id, deployer and parameters, code at
every recorded contract, a transaction still pending is waited for) and sends only what is left,
so no second token or market is deployed. A record whose contracts are not on the chain (a restarted
devnet) is dropped and a new set deployed; one that does not match is refused (move it away to
deploy a new set). Every failure is one line.

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

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from ape import accounts, chain, project
from ape.api.accounts import TestAccountAPI
from ape.cli import ConnectedProviderCommand, account_option
from ape.exceptions import AccountsError
from eth_utils import is_address, to_checksum_address

from depin.chain import RpcClient
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
from depin.errors import DepinError
from depin.redact import redact_text
from depinctl.deploy import (
    STEP_GAS,
    DeployJournal,
    court_contract_name,
    deploy_contracts,
    deploy_cost,
    deploy_steps,
    ensure_current_build,
    parameters_used_and_changed,
    partial_path,
)

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


def ether(wei: int) -> str:
    return f"{Decimal(wei) / 10**18:.6f} ETH"


def one_line(exc: BaseException) -> str:
    """An exception as one line of at most 300 characters, the node's URL redacted."""
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "") or type(exc).__name__
    return redact_text(text, chain.provider.http_uri or "")[:300]


def max_fee_per_gas(provider: Any) -> int:
    """The most wei per gas a deploy transaction offers, as ape sets it: the base fee times the
    network's multiplier plus the tip (EIP-1559), else the gas price."""
    try:
        return int(provider.base_fee * provider.network.base_fee_multiplier + provider.priority_fee)
    except Exception:  # a chain without EIP-1559 fees
        return int(provider.gas_price)


def check_funds(deployer: Any, steps: list[tuple[str, str]], chain_id: int) -> None:
    """Refuses, before anything is sent, when the deployer holds less than the `steps` left may cost
    (:func:`depinctl.deploy.deploy_cost`; the module doc)."""
    provider = deployer.provider
    gas = sum(STEP_GAS[what] for _, what in steps)
    limit = provider.network.gas_limit
    reserved = provider.max_gas if limit == "max" else limit if isinstance(limit, int) else 0
    if not reserved:  # "auto": each transaction's own estimate, times the network's multiplier
        gas = int(gas * max(1.0, float(provider.network.auto_gas_multiplier)))
    fee = max_fee_per_gas(provider)
    needed, held = deploy_cost(gas, fee, reserved), deployer.balance
    if held < needed:
        up_front = f", and the last transaction's gas limit of {reserved:,} held up front" if reserved else ""
        raise click.ClickException(
            f"insufficient funds: the deploy ({len(steps)} transactions left) needs up to {ether(needed)} "
            f"({gas:,} gas at up to {Decimal(fee) / 10**9:.2f} gwei{up_front}); deployer {deployer.address} "
            f"holds {ether(held)} on chain id {chain_id}. Fund it and run the deploy again."
        )


def open_journal(
    path: Path, chain_id: int, deployer: Any, parameters: dict, steps: list[tuple[str, str]], rpc: RpcClient | None
) -> DeployJournal:
    """The record of a deploy that stopped halfway, checked against this run and the chain (the module
    doc), or a new one; raises ClickException (one line) when it cannot be resumed."""
    try:
        journal = DeployJournal.load(path)
    except DepinError as exc:
        raise click.ClickException(str(exc)) from None
    if journal is None:
        return DeployJournal(path, chain_id, deployer.address, parameters)
    where = f"the partial deploy recorded in {path}"
    if rpc is None:
        raise click.ClickException(f"resuming {where} reads the chain over HTTP: connect to the node by its http(s) URL")
    if journal.chain_id != chain_id:
        raise click.ClickException(f"{where} is for chain id {journal.chain_id}, the node is chain {chain_id}; move it away to deploy a new set")
    if to_checksum_address(journal.deployer) != to_checksum_address(deployer.address):
        raise click.ClickException(
            f"{where} was sent by {journal.deployer}, this deploy's account is {deployer.address}: "
            "run it again with that account (--account), or move the file away to deploy a new set"
        )
    first = journal.steps.get("RewardToken", {}).get("address")
    if first is not None and rpc.get_code(first) in ("0x", "0x0") and chain_id not in LOCAL_CHAIN_IDS:
        raise click.ClickException(
            f"{where} records a RewardToken at {first}, which has no code on this node; a public chain keeps its "
            "contracts, so the node is behind, out of step or on another network: use a synced node of the right "
            "network (or move the file away to deploy a new set)"
        )
    if first is not None and rpc.get_code(first) in ("0x", "0x0"):
        click.echo(f"{where} is not on this chain (no code at its RewardToken {first}); deploying a new set")
        return DeployJournal(path, chain_id, deployer.address, parameters)
    try:
        journal.reconcile(rpc, steps)  # drops the steps that failed or were never taken
    except DepinError as exc:
        raise click.ClickException(one_line(exc)) from None
    as_recorded = json.loads(json.dumps(parameters))
    if journal.parameters != as_recorded:
        used = parameters_used_and_changed(journal.parameters, as_recorded, list(journal.steps))
        if used:
            raise click.ClickException(
                f"{where} sent other parameters ({', '.join(used)[:200]}; the parameters file, --court or --arbiter "
                "changed): restore them, or move the file away to deploy a new set"
            )
        click.echo(f"{where}: the parameters changed only where it had not sent them; resuming with the new ones")
        journal.parameters = as_recorded
        journal.save()
    done = [step for step, _ in steps if journal.done(step)]
    click.echo(f"resuming {where}: {len(done)} of {len(steps)} transactions done ({', '.join(done) or 'none'})")
    return journal


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
    Refuses before sending anything when the deployer's ether does not cover the deploy's cost
    bound. A deploy that stopped halfway is resumed by running it again (<chainId>.json.partial).
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
    journal_path = partial_path(path)

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
            if journal_path.exists():
                click.echo(f"NOTE: {journal_path} records a new set deployed halfway (--force finishes it).")
            click.echo("Nothing sent. Pass --force to deploy a new set.")
            return
        if status == "missing" and chain_id not in LOCAL_CHAIN_IDS:
            # A public chain does not lose its contracts: a node that shows no code there is behind,
            # out of step behind a load balancer, or another network's. Redeploying would overwrite
            # the committed file with a second set (found by review, stop 56).
            raise click.ClickException(
                f"recorded deployment {path} shows no code on this node ({why}); a public chain keeps its contracts, so "
                "the node is behind, out of step or on another network: use a synced node of the right network, or "
                "pass --force to deploy a new set and overwrite the file"
            )
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
    arbiter = arbiter or deployer.address
    if court_contract == "TestCourt" and chain_id not in LOCAL_CHAIN_IDS:
        raise click.UsageError("--court TestCourt is a test stand-in: local chains only")
    court_name = court_contract_name(project, court_contract)
    parameters = resolved_parameters(params, court_name, arbiter)
    steps = deploy_steps(params, court_name)
    rpc = RpcClient.from_url(chain.provider.http_uri, retries=2) if chain.provider.http_uri else None
    try:
        journal = open_journal(journal_path, chain_id, deployer, parameters, steps, rpc)
    except DepinError as exc:  # the node failed while the record was checked
        raise click.ClickException(one_line(exc)) from None
    left = [(step, what) for step, what in steps if not journal.done(step)]
    check_funds(deployer, left, chain_id)

    click.echo(f"deploying to {params.name} (chain id {chain_id}) from {deployer.address}")
    try:
        contracts = deploy_contracts(deployer, params, arbiter, court_contract, journal=journal)
    except Exception as exc:  # every failure of a deploy is one line (the record says what was sent)
        reason = one_line(exc)
        if isinstance(exc, AccountsError) and "balance" in reason:
            reason = f"insufficient funds: deployer {deployer.address} holds {ether(deployer.balance)}, less than the next transaction asks"
        done = sum(1 for step, _ in steps if journal.done(step))
        unsettled = " (and one sent whose outcome is not known yet)" if len(journal.steps) > done else ""
        raise click.ClickException(
            f"the deploy stopped: {reason}; {done} of {len(steps)} transactions done{unsettled}, recorded in "
            f"{journal_path}: fix the cause and run the same command again to resume"
        ) from None
    deployment = Deployment(
        chain_id=chain_id,
        network=params.name,
        deploy_block=int(journal.steps["RewardToken"]["block"]),
        addresses={name: to_checksum_address(c.address) for name, c in contracts.items()},
        parameters=parameters,
        deployer=deployer.address,
    )
    status, why = check_existing(deployment, chain_id)
    if status != "ok":
        raise click.ClickException(f"the deployed set does not check out ({why}); {journal_path} records it")
    written = write_deployment(deployment, deployments_dir)
    journal.remove()
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
