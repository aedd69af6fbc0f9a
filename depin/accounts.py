"""Signing keys: encrypted keystores, and Anvil's public development keys on local chains only.

Keystores are Ethereum "v3" JSON keystores (the format geth, Foundry's ``cast wallet`` and ape
read), written by :mod:`eth_account`:

- **KDF: scrypt, n = 2^17, r = 8, p = 1** (dklen 32, 16-byte random salt). Unlocking takes about
  0.3-0.5 s and 128 MiB of memory per guess, between geth's "light" (n = 2^12) and "standard"
  (n = 2^18) settings: a provider's executor unlocks its key once at start, so a slower KDF costs
  nothing in use and makes an offline guess of a stolen file expensive. ``kdf_n`` overrides it
  (tests use a smaller one); keystores written elsewhere with scrypt or pbkdf2 load too.
- **Files** are written atomically (a temporary file in the same folder, fsync, rename) with mode
  0600 from the moment they exist; an existing file is never overwritten unless asked.
- **Permissions** are checked as ssh checks a private key's: a keystore that group or others may
  read or write (any of mode 077), or that sits in a folder group or others may write without the
  sticky bit (they could swap the file), is refused before it is read, in one line naming the file,
  its mode and the ``chmod`` that fixes it. ``DEPIN_ALLOW_LOOSE_KEYSTORE=1`` lets such a file be
  used anyway (shared test machines, a file system without Unix modes).
- **Passwords** come from an explicit argument, a password file (its first line), or the
  ``DEPIN_KEYSTORE_PASSWORD`` environment variable, in that order. They and the keys are never
  printed or logged; errors name the file, never its content.

**Development keys.** Anvil (and Hardhat, ``geth --dev`` style setups) fund ten accounts derived from
the public test mnemonic ``test test ... junk`` (BIP-44 path ``m/44'/60'/0'/0/N``). Anyone can
sign with them, so :func:`dev_account` hands one out only for chain ids 31337 and 1337
(:data:`depin.deployment.LOCAL_CHAIN_IDS`) and refuses any other chain with
:class:`DevKeyRefused`; :func:`refuse_dev_key_off_devnet` lets a client apply the same rule to an
account that was loaded some other way.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from eth_typing import HexStr

from depin.atomicfile import write_atomically
from depin.commitment import canary_authorization
from depin.deployment import LOCAL_CHAIN_IDS, json_nesting_exceeds, shown_path
from depin.errors import DepinError

# eth_account takes about a second to import and `depin` CLI commands import this module, so the
# functions that sign import it themselves (each such line says `# lazy: start-up`).

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from depin.config import KeyConfig

PASSWORD_ENV = "DEPIN_KEYSTORE_PASSWORD"
LOOSE_ENV = "DEPIN_ALLOW_LOOSE_KEYSTORE"  # "1": use a keystore others may read or replace (the module doc)
KDF: Literal["scrypt"] = "scrypt"
MAX_KEYSTORE_BYTES = 64 * 1024  # a keystore is about 500 bytes
KDF_N = 2**17
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNTS = 10
# The addresses of the ten development accounts (derived from DEV_MNEMONIC; public knowledge). Lets
# a client recognise a development key without deriving anything.
DEV_ADDRESSES = (
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
    "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
    "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
    "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
    "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
)


class AccountError(DepinError):
    """A key could not be created, imported or unlocked (no such file, wrong password, ...)."""


class KeystoreExists(AccountError):
    """The keystore file to write exists already (``overwrite`` not given)."""


class DevKeyRefused(AccountError):
    """A public development key was asked for on a chain where anyone could drain it."""


# ------------------------------------------------------------------------------------ keystores


def _write_private(path: Path, text: str, *, overwrite: bool) -> None:
    """Writes `text` to `path` atomically, mode 0600 from creation."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise KeystoreExists(f"{path} exists already; refusing to overwrite a keystore (move it away first)")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a folder made here is ours alone, whatever the umask
        write_atomically(path, text, mode=0o600)
    except OSError as exc:
        raise AccountError(f"cannot write {path}: {exc.strerror or exc}") from None


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not password:
        raise AccountError("the keystore password must not be empty")


def encrypt_key(private_key: bytes | str, password: str, *, kdf_n: int = KDF_N) -> dict[str, Any]:
    """The v3 keystore JSON object for `private_key` (scrypt, n = `kdf_n`, r = 8, p = 1)."""
    from eth_account import Account  # lazy: start-up

    _check_password(password)
    key = HexStr(private_key) if isinstance(private_key, str) else private_key
    return Account.encrypt(key, password, kdf=KDF, iterations=kdf_n)


def new_keystore(path: Path | str, password: str, *, kdf_n: int = KDF_N, overwrite: bool = False) -> str:
    """Creates a fresh random key, writes it encrypted to `path` (0600) and returns its address."""
    from eth_account import Account  # lazy: start-up

    _check_password(password)
    account = Account.create()
    keystore = encrypt_key(account.key, password, kdf_n=kdf_n)
    _write_private(Path(path), json.dumps(keystore) + "\n", overwrite=overwrite)
    return account.address


def import_key(
    private_key: bytes | str, path: Path | str, password: str, *, kdf_n: int = KDF_N, overwrite: bool = False
) -> str:
    """Writes `private_key` (32 bytes, or 64 hex digits with or without 0x) encrypted to `path`
    (0600) and returns its address."""
    from eth_account import Account  # lazy: start-up

    key = _parse_private_key(private_key)
    _check_password(password)
    address = Account.from_key(key).address
    keystore = encrypt_key(key, password, kdf_n=kdf_n)
    _write_private(Path(path), json.dumps(keystore) + "\n", overwrite=overwrite)
    return address


def _parse_private_key(private_key: bytes | str) -> bytes:
    if isinstance(private_key, bytes):
        key = private_key
    else:
        text = private_key.strip().removeprefix("0x").removeprefix("0X")
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise AccountError("the private key is not hex (expected 64 hex digits, optionally 0x-prefixed)") from None
    if len(key) != 32:
        raise AccountError(f"a private key is 32 bytes (64 hex digits); this one is {len(key)} bytes")
    if int.from_bytes(key, "big") == 0:
        raise AccountError("the private key is zero")
    if int.from_bytes(key, "big") >= SECP256K1_ORDER:
        raise AccountError("the private key is out of range for secp256k1 (it must be below the curve order n, 0xffff…4141)")
    return key


SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # n: a key is 1..n-1


def _read_keystore_json(path: Path) -> Any:
    """The JSON in a keystore file, bounded (a keystore is ~500 bytes, 4 levels deep)."""
    with open(path, "rb") as f:
        raw = f.read(MAX_KEYSTORE_BYTES + 1)
    if len(raw) > MAX_KEYSTORE_BYTES:
        raise ValueError(f"larger than {MAX_KEYSTORE_BYTES} bytes")
    text = raw.decode("utf-8")
    if json_nesting_exceeds(text):
        raise ValueError("nested too deeply")
    return json.loads(text)


def keystore_address(path: Path | str) -> str | None:
    """The address recorded (unencrypted) in a keystore file, if it records one."""
    from eth_utils import to_checksum_address  # lazy: start-up

    try:
        data = _read_keystore_json(Path(path))
        return to_checksum_address(data["address"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def password_line(text: str) -> str:
    """The password in `text`, a password file's content or a line read from standard input: its
    first line without its line break (LF, CR LF or CR: a file written on Windows works too)."""
    lines = text.splitlines()
    return lines[0] if lines else ""


MAX_LINE = 4_096  # bytes of a password (or private key) line: a file or stream longer without a line end is no password


def bounded_line(stream: IO[Any], what: str) -> str:
    """The first line of `stream` (text or binary), read no further than :data:`MAX_LINE` + 1
    characters: /dev/zero, or a disk image named by mistake, is refused, not read whole."""
    data = stream.readline(MAX_LINE + 1)
    if len(data.splitlines()[0] if data else data) > MAX_LINE:
        raise AccountError(f"{what} has no line end in its first {MAX_LINE} bytes: not a password or key line")
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:  # its text names a byte of the password and where it is
            raise AccountError(f"{what} is not UTF-8 text") from None
    return data


def read_password(
    password: str | None = None, password_file: Path | str | None = None, env: Mapping[str, str] | None = None
) -> str:
    """The keystore password: `password`, else the first line of `password_file`, else
    ``$DEPIN_KEYSTORE_PASSWORD``; raises :class:`AccountError` when none is given."""
    if password:
        return password
    if password_file is not None:
        try:
            with open(password_file, "rb") as fh:  # its first line only, bounded (a FIFO: `<(pass show x)` works)
                _refuse_loose_password_file(password_file, os.fstat(fh.fileno()).st_mode)
                text = bounded_line(fh, f"password file {password_file}")
        except FileNotFoundError:
            raise AccountError(f"password file {password_file} not found") from None
        except OSError as exc:
            raise AccountError(f"cannot read password file {password_file}: {exc.strerror}") from None
        line = password_line(text)
        if not line:
            raise AccountError(f"password file {password_file} is empty")
        return line
    value = (os.environ if env is None else env).get(PASSWORD_ENV)
    if value:
        return value
    raise AccountError(
        f"no keystore password: pass a password file (--password-file / [key] password_file) or set {PASSWORD_ENV}"
    )


def _refuse_loose_password_file(path: Path | str, mode: int) -> None:
    """:class:`AccountError` when password file `path` (a regular file of mode `mode`) is one that
    group or others may read or write, as its keystore would be refused (:func:`_loose`; the same
    ``$DEPIN_ALLOW_LOOSE_KEYSTORE=1`` lets it be used). A FIFO or a descriptor (``<(pass show x)``)
    is not a file others can open later, and passes. Such a file was read without a word: written
    with a default umask (0644), it gave any local user the password of the 0600 keystore beside it
    (review, stop 45)."""
    if not stat.S_ISREG(mode) or not mode & 0o077 or os.environ.get(LOOSE_ENV) == "1":
        return
    shown = shown_path(Path(path))
    raise AccountError(
        f"password file {shown} is {'readable' if mode & 0o044 else 'writable'} by others (mode {stat.S_IMODE(mode):04o}): "
        f"refusing it; run `chmod 600 {shown}`, or set {LOOSE_ENV}=1 to use it anyway"
    )


# A keystore's KDF parameters are the file's to choose: bound what unlocking it may cost. Geth's
# "standard" scrypt is n = 2^18, r = 8 (256 MiB, a second or so); eth-account's pbkdf2 default is
# c = 1,000,000; a derived key is 32 bytes (16 for AES, 16 for the MAC).
MAX_SCRYPT_MEMORY = 1 << 30  # bytes: 128 * n * r
MAX_SCRYPT_WORK = 1 << 24  # n * r * p, 16 x this module's default
MAX_PBKDF2_ROUNDS = 10_000_000
MAX_DKLEN = 64


def _kdf_too_costly(data: dict[str, Any]) -> str:
    """What the keystore's KDF parameters would cost beyond the bounds above ("" when within them;
    malformed values are left to the decryption, which refuses them as damaged)."""
    crypto = data.get("crypto", data.get("Crypto"))
    if not isinstance(crypto, dict):
        return ""
    found = crypto.get("kdfparams")
    if not isinstance(found, dict):
        return ""
    params: dict[str, Any] = found

    def num(name: str) -> int:
        value = params.get(name, 1)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1

    dklen = num("dklen")
    if dklen > MAX_DKLEN:
        return f"a {dklen}-byte key (at most {MAX_DKLEN})"
    kdf = crypto.get("kdf")
    if kdf == "scrypt":
        n, r, p = num("n"), num("r"), num("p")
        if 128 * n * r > MAX_SCRYPT_MEMORY:
            return f"{128 * n * r >> 20} MiB of scrypt memory (at most {MAX_SCRYPT_MEMORY >> 20} MiB)"
        if n * r * p > MAX_SCRYPT_WORK:
            return f"scrypt work n*r*p = {n * r * p} (at most {MAX_SCRYPT_WORK})"
    elif kdf == "pbkdf2" and num("c") > MAX_PBKDF2_ROUNDS:
        return f"{num('c')} pbkdf2 rounds (at most {MAX_PBKDF2_ROUNDS})"
    return ""


def load_keystore(path: Path | str) -> dict[str, Any]:
    """The JSON of keystore `path`, checked to be one (before any password is asked for);
    :class:`AccountError` when it is missing, not a regular file (a device or a FIFO is never
    opened), or not a JSON keystore."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise AccountError(f"keystore {shown_path(path)} not found (create one with `depin keys new PATH`)") from None
    except OSError as exc:
        raise AccountError(f"cannot read keystore {shown_path(path)}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise AccountError(f"keystore {shown_path(path)} is not a regular file (a keystore is a JSON file)")
    loose = _loose(path, mode)
    try:
        data = _read_keystore_json(path)
    except FileNotFoundError:
        raise AccountError(f"keystore {shown_path(path)} not found (create one with `depin keys new PATH`)") from None
    except OSError as exc:
        raise AccountError(f"cannot read keystore {shown_path(path)}: {exc.strerror}") from None
    except (ValueError, RecursionError):
        raise AccountError(f"{shown_path(path)} is not a JSON keystore") from None
    if not isinstance(data, dict) or "crypto" not in data and "Crypto" not in data:
        raise AccountError(f"{shown_path(path)} is not a JSON keystore (no 'crypto' section)")
    if loose:  # said of a keystore only: a file that is none is named as such above
        raise AccountError(f"{loose}; or set {LOOSE_ENV}=1 to use it anyway")
    return data


def _loose(path: Path, mode: int) -> str:
    """Why others could read or replace keystore `path` (file mode `mode`), as ssh judges a private
    key's file; "" when they cannot or ``$DEPIN_ALLOW_LOOSE_KEYSTORE`` is ``1``."""
    if os.environ.get(LOOSE_ENV) == "1":
        return ""
    shown = shown_path(path)
    if mode & 0o077:
        return (f"keystore {shown} is {'readable' if mode & 0o044 else 'writable'} by others (mode "
                f"{stat.S_IMODE(mode):04o}): refusing it; run `chmod 600 {shown}`")
    folder = path.parent
    try:
        folder_mode = os.stat(folder).st_mode
    except OSError:
        return ""
    if folder_mode & 0o022 and not folder_mode & stat.S_ISVTX:
        shown_folder = shown_path(folder)
        return (f"keystore {shown} is in {shown_folder}, a folder others may write (mode {stat.S_IMODE(folder_mode):04o}: "
                f"they could replace the keystore): refusing it; run `chmod go-w {shown_folder}`")
    return ""


def unlock_keystore(path: Path | str, password: str) -> LocalAccount:
    """The account in keystore `path`, decrypted with `password`."""
    from eth_account import Account  # lazy: start-up

    path = Path(path)
    data = load_keystore(path)
    too_costly = _kdf_too_costly(data)
    if too_costly:
        raise AccountError(f"cannot decrypt keystore {path}: its KDF parameters ask for {too_costly}; refused")
    try:
        key = Account.decrypt(data, password)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise AccountError(f"wrong password for keystore {path}") from None
        raise AccountError(f"cannot decrypt keystore {path}: unsupported or damaged keystore") from None
    except (KeyError, TypeError, AttributeError, ArithmeticError, NotImplementedError):  # kdfparams r = 0, n = 16.0, ...
        raise AccountError(f"cannot decrypt keystore {path}: unsupported or damaged keystore") from None
    return Account.from_key(key)


# ------------------------------------------------------------------------------------ development keys


def is_local_chain(chain_id: int) -> bool:
    return chain_id in LOCAL_CHAIN_IDS


@lru_cache(maxsize=DEV_ACCOUNTS)
def _derive_dev_account(index: int) -> LocalAccount:
    from eth_account import Account  # lazy: start-up

    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def dev_account(index: int, chain_id: int) -> LocalAccount:
    """Anvil's public development account `index` (0-9), for a local chain only."""
    if not 0 <= index < DEV_ACCOUNTS:
        raise AccountError(f"development account numbers run from 0 to {DEV_ACCOUNTS - 1}, not {index}")
    if not is_local_chain(chain_id):
        raise DevKeyRefused(
            f"refusing Anvil's public development key {index} on chain {chain_id}: its private key is public, "
            f"so it may sign only on a local devnet (chain ids {', '.join(map(str, sorted(LOCAL_CHAIN_IDS)))}); "
            "use a keystore (`depin keys new`)"
        )
    return _derive_dev_account(index)


def is_dev_address(address: str) -> bool:
    return address.lower() in {a.lower() for a in DEV_ADDRESSES}


def refuse_dev_key_off_devnet(address: str, chain_id: int) -> None:
    """Raises :class:`DevKeyRefused` when `address` is a public development account and the chain
    is not local."""
    if is_dev_address(address) and not is_local_chain(chain_id):
        raise DevKeyRefused(
            f"refusing to sign with {address} on chain {chain_id}: it is one of Anvil's public development "
            "accounts, whose private key everyone knows; use your own keystore (`depin keys new`)"
        )


# ------------------------------------------------------------------------------------ one entry point


def load_account(
    *,
    keystore: Path | str | None = None,
    password: str | None = None,
    password_file: Path | str | None = None,
    dev_account_index: int | None = None,
    chain_id: int | None = None,
    env: Mapping[str, str] | None = None,
) -> LocalAccount:
    """The signing account from a keystore (with its password, password file or
    ``$DEPIN_KEYSTORE_PASSWORD``) or, on a local chain, a development account number.

    `chain_id` is required for a development account (and checked for a keystore that holds one).
    """
    if keystore is not None and dev_account_index is not None:
        raise AccountError("give either a keystore or a development account number, not both")
    if dev_account_index is not None:
        if chain_id is None:
            raise AccountError("a development account needs the chain id (to check that the chain is local)")
        return dev_account(dev_account_index, chain_id)
    if keystore is None:
        raise AccountError(
            "no signing key: pass --keystore FILE (with --password-file or $DEPIN_KEYSTORE_PASSWORD), "
            "--dev-account N on a local devnet, or a --config file with a [key] section"
        )
    load_keystore(keystore)  # a path that is no keystore is said before a password is asked for
    account = unlock_keystore(keystore, read_password(password, password_file, env))
    if chain_id is not None:
        refuse_dev_key_off_devnet(account.address, chain_id)
    return account


def account_from_config(key: KeyConfig, chain_id: int, *, env: Mapping[str, str] | None = None) -> LocalAccount:
    """The account the ``[key]`` section of ``depin.toml`` names."""
    return load_account(
        keystore=key.keystore,
        password_file=key.password_file,
        dev_account_index=key.dev_account,
        chain_id=chain_id,
        env=env,
    )


def sign_canary_authorization(account: LocalAccount, chain_id: int, court: str, job_id: int) -> bytes:
    """A canary key's EIP-191 signature (65 bytes) of :func:`depin.commitment.canary_authorization`:
    what lets job `job_id`'s requester expose it (``VerificationCourt.exposeCanary``; `account` must
    hold the court's ``CANARY_ROLE``)."""
    from eth_account.messages import encode_defunct  # lazy: start-up

    message = encode_defunct(primitive=canary_authorization(chain_id, court, job_id))
    return bytes(account.sign_message(message).signature)
