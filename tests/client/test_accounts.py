"""depin.accounts: keystore round trips, file modes, passwords from every source, and the rule that
Anvil's public development keys sign only on local chains (checked against a real anvil started
with Sepolia's chain id)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from eth_account import Account

from depin.accounts import (
    DEV_ADDRESSES,
    KDF_N,
    AccountError,
    DevKeyRefused,
    dev_account,
    import_key,
    keystore_address,
    load_account,
    new_keystore,
    refuse_dev_key_off_devnet,
    unlock_keystore,
)
from depin.chain import RpcClient
from depin.config import KeyConfig
from depinctl.procs import start_anvil

FAST = 2**10  # a small scrypt cost for the tests that are not about the KDF


def test_new_keystore_round_trip_mode_0600_and_default_kdf(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "provider.json"
    address = new_keystore(path, "correct horse")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["crypto"]["kdf"] == "scrypt"
    assert data["crypto"]["kdfparams"]["n"] == KDF_N == 2**17
    assert (data["crypto"]["kdfparams"]["r"], data["crypto"]["kdfparams"]["p"]) == (8, 1)
    assert keystore_address(path) == address
    assert unlock_keystore(path, "correct horse").address == address
    assert not list(path.parent.glob(".*.tmp"))  # the temporary file was renamed away


def test_import_round_trip_and_no_key_in_the_file(tmp_path: Path) -> None:
    key = Account.create()
    path = tmp_path / "imported.json"
    for form in (key.key.hex(), "0x" + key.key.hex(), key.key):
        address = import_key(form, path, "pw", kdf_n=FAST, overwrite=True)
        assert address == key.address
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert key.key.hex() not in path.read_text()
        assert load_account(keystore=path, password="pw").key == key.key


def test_existing_keystore_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    first = new_keystore(path, "pw", kdf_n=FAST)
    with pytest.raises(AccountError, match="exists already"):
        new_keystore(path, "pw", kdf_n=FAST)
    assert keystore_address(path) == first


@pytest.mark.parametrize(
    "bad",
    ["zz" * 32, "ab" * 31, "00" * 32, "", "ff" * 32, "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"],
)
def test_import_rejects_bad_keys_without_echoing_them(tmp_path: Path, bad: str) -> None:
    with pytest.raises(AccountError) as info:
        import_key(bad, tmp_path / "k.json", "pw", kdf_n=FAST)
    assert (bad not in str(info.value)) or not bad
    assert not (tmp_path / "k.json").exists()


def test_a_key_not_below_the_curve_order_is_out_of_range(tmp_path: Path) -> None:
    """A 32-byte key >= the secp256k1 order n: "out of range for secp256k1", not eth_keys' "must be
    exactly 32 bytes long, instead of 32 bytes"; n - 1 is a key."""
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    for key in ("ff" * 32, n.to_bytes(32, "big").hex()):
        with pytest.raises(AccountError, match="out of range for secp256k1") as info:
            import_key(key, tmp_path / "k.json", "pw", kdf_n=FAST)
        assert "instead of 32 bytes" not in str(info.value)
    assert import_key((n - 1).to_bytes(32, "big"), tmp_path / "k.json", "pw", kdf_n=FAST).startswith("0x")


def test_password_sources_and_wrong_password(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    address = new_keystore(path, "s3cret", kdf_n=FAST)
    pw_file = tmp_path / "pw"
    pw_file.write_text("s3cret\nignored second line\n")
    pw_file.chmod(0o600)  # a password file others may read is refused
    assert load_account(keystore=path, password_file=pw_file).address == address
    assert load_account(keystore=path, env={"DEPIN_KEYSTORE_PASSWORD": "s3cret"}).address == address
    with pytest.raises(AccountError, match="wrong password") as info:
        load_account(keystore=path, password="nope")
    assert "nope" not in str(info.value)
    with pytest.raises(AccountError, match="no keystore password"):
        load_account(keystore=path, env={})
    with pytest.raises(AccountError, match="not found"):
        load_account(keystore=tmp_path / "missing.json", password="x")
    with pytest.raises(AccountError, match="password file"):
        load_account(keystore=path, password_file=tmp_path / "nope")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(AccountError, match="not a JSON keystore"):
        load_account(keystore=tmp_path / "junk.json", password="x")
    # checked before any password is asked for: a device is not a keystore, and never opened
    with pytest.raises(AccountError, match="is not a regular file"):
        load_account(keystore="/dev/zero", env={})
    with pytest.raises(AccountError, match="not a JSON keystore"):
        load_account(keystore=tmp_path / "junk.json", env={})


def test_empty_password_refused(tmp_path: Path) -> None:
    with pytest.raises(AccountError, match="empty"):
        new_keystore(tmp_path / "k.json", "", kdf_n=FAST)


def test_dev_accounts_are_anvils_and_local_only() -> None:
    assert [dev_account(i, 31337).address for i in range(10)] == list(DEV_ADDRESSES)
    assert dev_account(3, 1337).address == DEV_ADDRESSES[3]
    for chain_id in (1, 11155111, 17000):
        with pytest.raises(DevKeyRefused, match=f"chain {chain_id}"):
            dev_account(1, chain_id)
    with pytest.raises(AccountError, match="0 to 9"):
        dev_account(10, 31337)


def test_config_key_section(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    address = new_keystore(path, "pw", kdf_n=FAST)
    (tmp_path / "pw").write_text("pw\n")
    (tmp_path / "pw").chmod(0o600)  # a password file others may read is refused
    from depin.accounts import account_from_config

    assert account_from_config(KeyConfig(keystore=path, password_file=tmp_path / "pw"), 11155111).address == address
    assert account_from_config(KeyConfig(dev_account=2), 31337).address == DEV_ADDRESSES[2]
    with pytest.raises(DevKeyRefused):
        account_from_config(KeyConfig(dev_account=2), 11155111)
    with pytest.raises(AccountError, match="no signing key"):
        account_from_config(KeyConfig(), 31337)


def test_dev_key_refused_on_a_node_with_sepolias_chain_id(tmp_path: Path) -> None:
    """A real node that says it is Sepolia: the dev key is refused, whichever way it comes in."""
    proc, url = start_anvil(tmp_path / "anvil", args=("--silent", "--chain-id", "11155111"))
    try:
        chain_id = RpcClient.from_url(url).chain_id()
        assert chain_id == 11155111
        with pytest.raises(DevKeyRefused, match="11155111"):
            load_account(dev_account_index=0, chain_id=chain_id)
        # a development key smuggled in through a keystore is refused too
        path = tmp_path / "dev.json"
        import_key(dev_account(0, 31337).key, path, "pw", kdf_n=FAST)
        with pytest.raises(DevKeyRefused, match="public development"):
            load_account(keystore=path, password="pw", chain_id=chain_id)
        with pytest.raises(DevKeyRefused):
            refuse_dev_key_off_devnet(DEV_ADDRESSES[5], chain_id)
    finally:
        proc.stop()


def test_keystore_never_contains_the_password(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    new_keystore(path, "hunter2-password", kdf_n=FAST)
    assert "hunter2" not in path.read_text()
    assert os.stat(path).st_uid == os.getuid()
