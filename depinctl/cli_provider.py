"""`depin provider …`: provider tools: register, stake, unstake, withdraw, status.

Amounts are in whole tokens (``1.5``). Transactions are signed locally (``--keystore`` /
``--dev-account N`` on a devnet / ``--config depin.toml``) through :class:`depin.Client`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from depinctl.cli_job import withdraw_market_balance
from depinctl.cli_keys import ConfigOpt, DevAccountOpt, KeystoreOpt, PasswordFileOpt, open_client, parse_tokens
from depinctl.cliutil import (
    TOKEN_SYMBOL,
    TYPER_SETTINGS,
    DataTable,
    DeploymentOpt,
    JsonOpt,
    RpcUrlOpt,
    format_amount,
    make_console,
    user_errors,
)

app = typer.Typer(help="Provider tools: register, stake, unstake, withdraw, status.", **TYPER_SETTINGS)

AmountArg = Annotated[str, typer.Argument(metavar="AMOUNT", help=f"{TOKEN_SYMBOL} tokens, e.g. 100 or 2.5.")]


@app.command("register")
@user_errors
def provider_register(
    stake: Annotated[str, typer.Option("--stake", help=f"Initial stake in {TOKEN_SYMBOL} (at least the minimum).")],
    endpoint: Annotated[
        str,
        typer.Option(
            "--endpoint",
            metavar="URL",
            help="Public http(s) URL of your executor's result server ([executor] results_url), e.g. http://203.0.113.7:8700.",
        ),
    ],
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Register as a provider with an initial stake (approved to the staking contract first).

    Example: depin provider register --stake 500 --endpoint http://203.0.113.7:8700 --keystore keys/provider.json
    """
    from depin.client import check_endpoint  # lazy: start-up

    amount = parse_tokens(stake, "stake")
    check_endpoint(endpoint, "--endpoint")  # before any key is unlocked or node asked
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account,
    )
    receipt = client.register(amount, endpoint)
    info = client.provider_info()
    typer.echo(
        f"registered {client.address} as provider {info.id} with {format_amount(amount)} {TOKEN_SYMBOL} "
        f"(tx {receipt.tx_hash})"
    )


@app.command("stake")
@user_errors
def provider_stake(
    amount: AmountArg,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add to your stake.

    Example: depin provider stake 100 --keystore keys/provider.json
    """
    value = parse_tokens(amount, positive=True)  # said before any key is unlocked or node asked
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account,
    )
    receipt = client.stake(value)
    info = client.provider_info()
    typer.echo(
        f"staked {format_amount(value)} {TOKEN_SYMBOL}; stake now {format_amount(info.staked)} (tx {receipt.tx_hash})"
    )


@app.command("unstake")
@user_errors
def provider_unstake(
    amount: AmountArg,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Start unbonding part of your available stake (withdraw it with `withdraw` after the delay).

    Requesting more restarts the delay for everything already unbonding.

    Example: depin provider unstake 50 --keystore keys/provider.json
    """
    value = parse_tokens(amount, positive=True)  # said before any key is unlocked or node asked
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account,
    )
    receipt = client.request_unstake(value)
    info = client.provider_info()
    when = datetime.fromtimestamp(info.release_at, UTC)
    typer.echo(
        f"unbonding {format_amount(info.unbonding)} {TOKEN_SYMBOL}, withdrawable from {when:%Y-%m-%d %H:%M:%S} UTC "
        f"(tx {receipt.tx_hash})"
    )


@app.command("withdraw")
@user_errors
def provider_withdraw(
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Withdraw your earnings from the market and your unbonded stake once its delay has passed
    (the market balance as `depin job withdraw` does).

    Example: depin provider withdraw --keystore keys/provider.json
    """
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account,
    )
    done = []
    earnings = withdraw_market_balance(client, "earnings")
    if earnings is not None:
        done.append(earnings)
    info = client.provider_info()
    now = client.block_timestamp()
    if info.unbonding and now >= info.release_at:
        receipt = client.withdraw_unstaked()
        done.append(f"withdrew {format_amount(info.unbonding)} {TOKEN_SYMBOL} of unbonded stake (tx {receipt.tx_hash})")
    if not done:
        waiting = ""
        if info.unbonding:
            waiting = (
                f"; {format_amount(info.unbonding)} {TOKEN_SYMBOL} is unbonding until "
                f"{datetime.fromtimestamp(info.release_at, UTC):%Y-%m-%d %H:%M:%S} UTC (in {info.release_at - now} s)"
            )
        raise ValueError(f"nothing to withdraw for {client.address}{waiting}")
    for line in done:
        typer.echo(line)


@app.command("status")
@user_errors
def provider_status(
    address: Annotated[
        str | None, typer.Argument(metavar="[ADDRESS]", help="Provider address (default: your key's).")
    ] = None,
    as_json: JsonOpt = False,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Show a provider's on-chain record: stake, locked collateral, unbonding, counters, balances.

    Example: depin provider status 0x90F79bf6EB2c4f870365E785982E1f101E93b906
    """
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account, need_key=address is None,
    )
    info = client.provider_info(address)
    who = info.address
    balances = {
        "wallet": client.token_balance(who),
        "withdrawable": client.withdrawable(who),
        "ether": client.eth_balance(who),
    }
    if as_json:
        typer.echo(json.dumps({
            "address": who, "registered": info.registered, "id": info.id, "staked": str(info.staked),
            "locked": str(info.locked), "available": str(info.available), "unbonding": str(info.unbonding),
            "releaseAt": info.release_at, "jobsCompleted": info.jobs_completed, "jobsSlashed": info.jobs_slashed,
            "endpoint": info.endpoint, "capabilityHash": "0x" + info.capability_hash.hex(),
            "walletBalance": str(balances["wallet"]), "withdrawable": str(balances["withdrawable"]),
            "etherBalance": str(balances["ether"]),
        }, indent=2))
        return
    table = DataTable(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("address", who)
    if not info.registered:
        table.add_row("registered", f"no (`depin provider register`; minimum stake {format_amount(client.min_stake())})")
    else:
        table.add_row("provider id", str(info.id))
        table.add_row("staked", f"{format_amount(info.staked)} {TOKEN_SYMBOL}")
        table.add_row("locked", f"{format_amount(info.locked)} {TOKEN_SYMBOL} (collateral of claimed jobs)")
        table.add_row("available", f"{format_amount(info.available)} {TOKEN_SYMBOL}")
        if info.unbonding:
            when = datetime.fromtimestamp(info.release_at, UTC)
            table.add_row("unbonding", f"{format_amount(info.unbonding)} {TOKEN_SYMBOL} until {when:%Y-%m-%d %H:%M:%S} UTC")
        table.add_row("jobs", f"{info.jobs_completed} completed, {info.jobs_slashed} slashed")
        table.add_row("endpoint", info.endpoint or "-")
    table.add_row("wallet", f"{format_amount(balances['wallet'])} {TOKEN_SYMBOL}")
    table.add_row("withdrawable", f"{format_amount(balances['withdrawable'])} {TOKEN_SYMBOL} (earnings in the market)")
    table.add_row("ether", f"{format_amount(balances['ether'])} (for gas)")
    make_console().print(table)
