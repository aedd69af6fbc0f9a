"""`depin verifier …`: a court verifier's stake: status, leave, withdraw.

Joining the court and topping the stake up is the verifier executor's own work (``[verifier]
court_stake``); these commands show the stake and take it back out. ``--court ADDRESS`` names an
earlier court of the market (after governance moved the market to a new one, a verifier's stake
stays in the old court until it leaves). Transactions are signed locally (``--keystore`` /
``--dev-account N`` on a devnet / ``--config depin.toml``) through :class:`depin.Client`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

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

app = typer.Typer(help="A court verifier's stake: status, leave, withdraw.", **TYPER_SETTINGS)

CourtOpt = Annotated[
    str | None,
    typer.Option("--court", metavar="ADDRESS", help="Another court of the market (an earlier one) instead of the deployment file's."),
]


def _when(timestamp: int) -> str:
    return f"{datetime.fromtimestamp(timestamp, UTC):%Y-%m-%d %H:%M:%S} UTC"


def _check_arguments(address: str | None, court: str | None) -> None:
    """The addresses given, checked before any key is unlocked or node asked."""
    from depin.client import check_court_address, checked_address  # lazy: start-up

    if address is not None:
        checked_address(address)
    if court is not None:
        check_court_address(court)


@app.command("status")
@user_errors
def verifier_status(
    address: Annotated[
        str | None, typer.Argument(metavar="[ADDRESS]", help="Verifier address (default: your key's).")
    ] = None,
    court: CourtOpt = None,
    as_json: JsonOpt = False,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Show a verifier's stake in the court: member or not, class, free, locked in bonds, leaving.

    Example: depin verifier status 0x90F79bf6EB2c4f870365E785982E1f101E93b906
    """
    _check_arguments(address, court)
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account, need_key=address is None,
    )
    info = client.verifier_info(address, court=court)
    if as_json:
        typer.echo(json.dumps({
            "address": info.address, "court": info.court, "joined": info.joined, "platformClass": info.platform_class,
            "free": str(info.free), "locked": str(info.locked), "unbonding": str(info.unbonding), "releaseAt": info.release_at,
        }, indent=2))
        return
    table = DataTable(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("address", info.address)
    table.add_row("court", info.court)
    if info.joined:
        table.add_row("member", f"yes, platform class {info.platform_class}")
        table.add_row("free", f"{format_amount(info.free)} {TOKEN_SYMBOL}")
        table.add_row("locked", f"{format_amount(info.locked)} {TOKEN_SYMBOL} (bonds of the seats in hand)")
    else:
        table.add_row("member", "no (a verifier executor joins by itself: [verifier] court_stake)")
    if info.unbonding:
        table.add_row("leaving", f"{format_amount(info.unbonding)} {TOKEN_SYMBOL}, withdrawable from {_when(info.release_at)}")
    make_console().print(table)


@app.command("leave")
@user_errors
def verifier_leave(
    amount: Annotated[
        str, typer.Argument(metavar="AMOUNT", help=f"{TOKEN_SYMBOL} tokens of your free stake, e.g. 100 or 2.5, or all.")
    ],
    court: CourtOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Start leaving the court: AMOUNT of your free stake unbonds for the court's leave delay (withdraw
    it with `depin verifier withdraw` after). A later request restarts the delay for all of it.

    A running verifier executor of this key does not top the stake back up while it is leaving, nor
    join again once you have withdrawn it all; a restarted one stakes `[verifier] court_stake` again:
    set that to 0 to stay out. Stake locked in the bonds of seats in hand cannot leave yet.

    Example: depin verifier leave all --court 0xA51c1fc2f0D1a1b8494Ed1FE312d7C3a78Ed91C0 --keystore keys/verifier.json
    """
    everything = amount.strip().lower() == "all"
    value = 0 if everything else parse_tokens(amount, positive=True)  # said before any key is unlocked or node asked
    _check_arguments(None, court)
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account,
    )
    if everything:
        value = client.verifier_info(court=court).free
        if value == 0:
            raise ValueError(f"{client.address} has no free stake in the court to leave with")
    receipt = client.request_leave(value, court=court)
    info = client.verifier_info(court=court)
    typer.echo(
        f"leaving court {info.court} with {format_amount(value)} {TOKEN_SYMBOL}: {format_amount(info.unbonding)} "
        f"{TOKEN_SYMBOL} withdrawable from {_when(info.release_at)} (tx {receipt.tx_hash})"
    )


@app.command("withdraw")
@user_errors
def verifier_withdraw(
    court: CourtOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Withdraw the stake that left the court once its leave delay has passed.

    Example: depin verifier withdraw --keystore keys/verifier.json
    """
    _check_arguments(None, court)
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account,
    )
    info = client.verifier_info(court=court)
    receipt = client.withdraw_left(court=court)
    typer.echo(f"withdrew {format_amount(info.unbonding)} {TOKEN_SYMBOL} from court {info.court} (tx {receipt.tx_hash})")
