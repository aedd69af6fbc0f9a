"""`depin keys …`: encrypted keystores for provider and requester keys; and the key options the
`depin job` and `depin provider` commands share (``--keystore``, ``--password-file``,
``--dev-account``, ``--config``) with :func:`open_client`, which turns them into a connected
:class:`depin.Client`.

Private keys and passwords never appear on the command line (argv is visible to every user of the
machine in ``ps``), in output or in logs: ``keys import`` reads the key from standard input or a
hidden prompt; passwords come from a file, ``$DEPIN_KEYSTORE_PASSWORD`` or a hidden prompt.
"""

from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from depinctl.cliutil import (
    OPEN_CLIENTS,
    TYPER_SETTINGS,
    DeploymentOpt,
    RpcUrlOpt,
    default_rpc_url,
    find_deployment_file,
    user_errors,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from depin.client import Client
    from depin.config import DepinConfig

app = typer.Typer(help="Encrypted keystores for provider and requester keys.", **TYPER_SETTINGS)

# ------------------------------------------------------------------------------------ shared options

LOOSE_HELP = (" Refused when group or others may read or write it (`chmod 600 FILE` fixes it) unless"
              " $DEPIN_ALLOW_LOOSE_KEYSTORE=1.")
KeystoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--keystore", envvar="DEPIN_KEYSTORE", metavar="FILE", help="Encrypted JSON keystore that signs (`depin keys new`)."
        + LOOSE_HELP
    ),
]
PasswordFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        envvar="DEPIN_PASSWORD_FILE",
        metavar="FILE",
        help="File whose first line is the keystore password (else $DEPIN_KEYSTORE_PASSWORD, else a prompt).",
    ),
]
DevAccountOpt = Annotated[
    int | None,
    typer.Option(
        "--dev-account",
        metavar="N",
        min=0,
        max=9,
        help="Local devnet only (chain 31337/1337): sign with Anvil's public development account N (0-9).",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="DEPIN_CONFIG",
        metavar="FILE",
        help="depin.toml: [network] and [key] sections, used where options are not given.",
    ),
]


def parse_tokens(text: str, what: str = "amount", *, positive: bool = False) -> int:
    """A number of tokens (``"1.5"``) as base units (above 0 when `positive`); one-line error for anything else."""
    from depin.client import TOKEN_SYMBOL  # lazy: start-up
    from depin.deployment import base_units  # lazy: start-up

    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise ValueError(f"invalid {what} {text!r}: expected a number of {TOKEN_SYMBOL} tokens, like 1.5") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"invalid {what} {text!r}: expected a non-negative number of {TOKEN_SYMBOL} tokens")
    try:
        units = base_units(value)  # exact or an error: no rounding, no overflow (1e999999), no underflow to 0
    except ValueError as exc:
        raise ValueError(f"invalid {what} {text!r}: {exc}") from None
    if units >= 2**256:
        raise ValueError(f"invalid {what} {text!r}: too large")
    if positive and units == 0:
        raise ValueError(f"invalid {what} {text!r}: must be positive (more than 0 {TOKEN_SYMBOL})")
    return units


def _one_key(keystore: Path | None, dev_account: int | None) -> None:
    """Refuses two key options (a --dev-account beside --keystore or $DEPIN_KEYSTORE): which one
    signs, pays and is sealed to is not for the CLI to guess (it used to drop --dev-account)."""
    if keystore is not None and dev_account is not None:
        from depin.accounts import AccountError  # lazy: start-up

        raise AccountError(
            f"--keystore {keystore} (or $DEPIN_KEYSTORE) and --dev-account {dev_account} name two signing keys: give one of them"
        )


def open_client(
    *,
    rpc_url: str | None,
    deployment: Path | None,
    config: Path | None,
    keystore: Path | None = None,
    password_file: Path | None = None,
    dev_account: int | None = None,
    need_key: bool = True,
) -> Client:
    """A connected client from the common options (options first, then the --config file, then the
    defaults), with its signing account when `need_key` (or when one is given)."""
    from depin.accounts import load_account  # lazy: start-up
    from depin.client import Client  # lazy: start-up

    _one_key(keystore, dev_account)  # before any node is asked
    cfg = None
    if config is not None:
        from depin.config import load_config  # lazy: start-up

        cfg = load_config(config)
    url = rpc_url or (cfg.network.rpc_url if cfg else None) or default_rpc_url()
    if deployment is None and cfg is not None and cfg.network.deployment is not None and config is not None:
        deployment = cfg.network.deployment
    client = Client.connect(url, find_deployment_file(deployment), retries=2)
    account = signing_account(
        config=config, keystore=keystore, password_file=password_file, dev_account=dev_account, chain_id=client.chain_id,
        cfg=cfg,
    )
    if account is None:
        if need_key:
            load_account(chain_id=client.chain_id)  # raises the "no signing key" explanation
        return client
    signing = client.with_account(account)
    OPEN_CLIENTS.append(signing)  # on Ctrl-C, what it sent is said (cliutil.user_errors)
    return signing


def keystore_password(keystore: Path, password_file: Path | None) -> str:
    """The password of `keystore`: the first line of `password_file`, else
    ``$DEPIN_KEYSTORE_PASSWORD``, else a hidden prompt when standard input is a terminal (else the
    AccountError that says how to give one)."""
    from depin.accounts import AccountError, read_password  # lazy: start-up

    try:
        return read_password(None, password_file)
    except AccountError:
        if password_file is not None or not sys.stdin.isatty():
            raise
        return typer.prompt(f"password for {keystore}", hide_input=True)


def signing_account(
    *,
    config: Path | None,
    keystore: Path | None = None,
    password_file: Path | None = None,
    dev_account: int | None = None,
    chain_id: int | None = None,
    cfg: DepinConfig | None = None,
) -> LocalAccount | None:
    """The signing account the common key options name (options first, then the --config file's
    [key] section), unlocked; None when they name none. Without a `chain_id` (no node asked: ``job
    post --dry-run``) a dev account is taken as on the local devnet."""
    from depin.accounts import load_account, load_keystore  # lazy: start-up
    from depin.deployment import LOCAL_CHAIN_IDS  # lazy: start-up

    if cfg is None and config is not None:
        from depin.config import load_config  # lazy: start-up

        cfg = load_config(config)
    _one_key(keystore, dev_account)
    if keystore is None and dev_account is None and cfg is not None:
        keystore, dev_account = cfg.key.keystore, cfg.key.dev_account
        password_file = password_file or cfg.key.password_file
    if keystore is None and dev_account is None:
        return None
    chain = min(LOCAL_CHAIN_IDS) if chain_id is None else chain_id
    if keystore is not None:
        load_keystore(keystore)  # missing, not a file, not a keystore: said before a password is asked for
        password = keystore_password(keystore, password_file)
        account = load_account(keystore=keystore, password=password, chain_id=chain)
        del password
        return account
    return load_account(dev_account_index=dev_account, chain_id=chain)


# ------------------------------------------------------------------------------------ commands


def _new_password(password_file: Path | None) -> str:
    from depin.accounts import AccountError, bounded_line, password_line, read_password  # lazy: start-up

    try:
        return read_password(None, password_file)
    except AccountError:
        if password_file is not None or not sys.stdin.isatty():
            if password_file is None:
                # not interactive and no password given: read it from stdin (one line, read as a password file is)
                line = password_line(bounded_line(sys.stdin, "standard input"))
                if line:
                    return line
            raise
        return typer.prompt("password for the new keystore", hide_input=True, confirmation_prompt=True)


def _refuse_existing(path: Path, force: bool) -> None:
    """An existing PATH without --force is refused before the key or a password is asked for (it
    was refused only after both had been typed). The write refuses it again (a file made meanwhile)."""
    from depin.accounts import KeystoreExists  # lazy: start-up

    if not force and (path.exists() or path.is_symlink()):
        raise KeystoreExists(f"{path} exists already; refusing to overwrite a keystore (move it away first); --force overwrites it")


@app.command("new")
@user_errors
def keys_new(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Where to write the keystore (mode 0600).")],
    password_file: PasswordFileOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Create a new random key and write it to PATH as an encrypted keystore; print its address.

    The password comes from --password-file, else $DEPIN_KEYSTORE_PASSWORD, else a prompt (or the
    first line of standard input when it is not a terminal). KDF: scrypt n=2^17, r=8, p=1.

    Example: depin keys new keys/provider.json --password-file keys/provider.pass
    """
    from depin.accounts import KeystoreExists, new_keystore  # lazy: start-up

    _refuse_existing(path, force)
    password = _new_password(password_file)
    try:
        address = new_keystore(path, password, overwrite=force)
    except KeystoreExists as exc:
        raise KeystoreExists(f"{exc}; --force overwrites it") from None
    typer.echo(address)
    typer.echo(f"wrote encrypted keystore {path} (mode 0600) for {address}", err=True)


@app.command("import")
@user_errors
def keys_import(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Where to write the keystore (mode 0600).")],
    password_file: PasswordFileOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Import a private key into an encrypted keystore at PATH; print its address.

    The key is read from standard input (first line; 64 hex digits, 0x optional) or a hidden
    prompt, never from the command line. The password comes from --password-file, else
    $DEPIN_KEYSTORE_PASSWORD, else a prompt.

    Example: depin keys import keys/me.json --password-file pw.txt < key.hex
    """
    from depin.accounts import KeystoreExists, bounded_line, import_key  # lazy: start-up

    _refuse_existing(path, force)
    if sys.stdin.isatty():
        key = typer.prompt("private key (hex)", hide_input=True)
    else:
        key = bounded_line(sys.stdin, "standard input").strip()
        if not key:
            raise ValueError("no private key on standard input (expected 64 hex digits on the first line)")
    password = _new_password(password_file)
    try:
        address = import_key(key, path, password, overwrite=force)
    except KeystoreExists as exc:
        raise KeystoreExists(f"{exc}; --force overwrites it") from None
    finally:
        del key, password
    typer.echo(address)
    typer.echo(f"wrote encrypted keystore {path} (mode 0600) for {address}", err=True)


@app.command("address")
@user_errors
def keys_address(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A keystore file." + LOOSE_HELP)],
    password_file: PasswordFileOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Decrypt the keystore to prove the password.")] = False,
) -> None:
    """Print the address of a keystore (with --check: after decrypting it with its password).

    Example: depin keys address keys/provider.json
    """
    from depin.accounts import keystore_address, load_keystore, unlock_keystore  # lazy: start-up

    load_keystore(path)  # missing, not a regular file, not a keystore: said before any password is asked for
    address = keystore_address(path)
    if check or address is None:
        account = unlock_keystore(path, keystore_password(path, password_file))
        address = account.address
    typer.echo(address)


@app.command("pubkey")
@user_errors
def keys_pubkey(
    path: Annotated[Path | None, typer.Argument(metavar="[PATH]", help="A keystore file (or --dev-account N)." + LOOSE_HELP)] = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    uncompressed: Annotated[bool, typer.Option("--uncompressed", help="Print the 65-byte 04... form.")] = False,
) -> None:
    """Print the secp256k1 public key of a keystore (decrypting it with its password) for an
    encrypted delivery: put it in a job spec as `"delivery": {"encrypt_to": "0x…"}` and only this key
    can read the result (`depin job result` opens it with the same keystore).

    Example: depin keys pubkey keys/me.json --password-file keys/me.pass
    """
    from depin.accounts import AccountError, load_keystore, unlock_keystore  # lazy: start-up
    from depin.accounts import dev_account as dev_key  # lazy: start-up
    from depin.delivery import public_key_of  # lazy: start-up
    from depin.deployment import LOCAL_CHAIN_IDS  # lazy: start-up

    if (path is None) == (dev_account is None):
        raise AccountError("give a keystore PATH or --dev-account N (one of them)")
    if path is not None:
        load_keystore(path)  # checked before the password is asked for
        account = unlock_keystore(path, keystore_password(path, password_file))
    else:
        assert dev_account is not None
        account = dev_key(dev_account, min(LOCAL_CHAIN_IDS))
    public = public_key_of(bytes(account.key))
    del account
    if uncompressed:
        from coincurve import PublicKey  # lazy: start-up

        public = PublicKey(public).format(compressed=False)
    typer.echo("0x" + public.hex())


# Re-exported for the other group modules.
__all__ = [
    "ConfigOpt", "DeploymentOpt", "DevAccountOpt", "KeystoreOpt", "PasswordFileOpt", "RpcUrlOpt", "app",
    "open_client", "parse_tokens", "signing_account",
]
