"""A keystore that others may read or replace is refused, as ssh refuses such a private key: one
line naming the file, its mode and the `chmod 600` fix; ``$DEPIN_ALLOW_LOOSE_KEYSTORE=1`` is the
documented way past it. Real files, the real CLI (`depin keys address`, `depin job post --dry-run`)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from depin.accounts import AccountError, load_account, new_keystore
from depinctl.cli import app
from tests.cli_errors import assert_one_line_error

from .conftest import DIGEST

FAST = 2**10
IMAGE = f"depin/test@sha256:{DIGEST}"


def _keystore(folder: Path) -> tuple[Path, str]:
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / "me.json"
    address = new_keystore(path, "pw", kdf_n=FAST)
    (folder / "pw").write_text("pw\n")
    (folder / "pw").chmod(0o600)  # a password file others may read is refused
    return path, address


def _cli(*args: object, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env={"DEPIN_ALLOW_LOOSE_KEYSTORE": None, **(env or {})})


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o606])
def test_a_keystore_others_can_read_or_write_is_refused(tmp_path: Path, mode: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPIN_ALLOW_LOOSE_KEYSTORE", raising=False)
    path, address = _keystore(tmp_path / "keys")
    os.chmod(path, mode)
    with pytest.raises(AccountError) as caught:
        load_account(keystore=path, password="pw")
    message = str(caught.value)
    assert str(path) in message and f"{mode:04o}" in message and f"chmod 600 {path}" in message, message
    assert_one_line_error(_cli("keys", "address", path), str(path), f"{mode:04o}", f"chmod 600 {path}")
    assert_one_line_error(
        _cli("job", "post", "--image", IMAGE, "--cmd", "true", "--reward", "1", "--dry-run",
             "--keystore", path, "--password-file", path.parent / "pw"),
        f"chmod 600 {path}",
    )
    # the documented override, for those who know what they do
    assert _cli("keys", "address", path, env={"DEPIN_ALLOW_LOOSE_KEYSTORE": "1"}).stdout.strip() == address
    monkeypatch.setenv("DEPIN_ALLOW_LOOSE_KEYSTORE", "1")
    assert load_account(keystore=path, password="pw").address == address
    # fixed as told: it loads
    monkeypatch.delenv("DEPIN_ALLOW_LOOSE_KEYSTORE")
    os.chmod(path, 0o600)
    assert load_account(keystore=path, password="pw").address == address


def test_a_keystore_in_a_folder_others_can_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPIN_ALLOW_LOOSE_KEYSTORE", raising=False)
    path, address = _keystore(tmp_path / "keys")
    os.chmod(path.parent, 0o777)  # anyone may replace the file, or rename it away
    try:
        line = assert_one_line_error(_cli("keys", "address", path), str(path.parent), "0777", f"chmod go-w {path.parent}")
        assert "DEPIN_ALLOW_LOOSE_KEYSTORE" in line
        os.chmod(path.parent, 0o1777)  # sticky, as /tmp: others cannot replace a file of ours
        assert _cli("keys", "address", path).stdout.strip() == address
    finally:
        os.chmod(path.parent, 0o700)


def test_the_override_is_documented_in_help() -> None:
    for command in (["keys", "address"], ["job", "post"], ["provider", "stake"]):
        shown = " ".join(_cli(*command, "--help", env={"COLUMNS": "400", "TERM": "dumb"}).stdout.split())
        assert "DEPIN_ALLOW_LOOSE_KEYSTORE" in shown, (command, shown)


def test_keystores_the_cli_writes_are_0600(tmp_path: Path) -> None:
    """Even under umask 000 (a keystore it wrote would otherwise be refused for its folder)."""
    old_umask = os.umask(0)
    try:
        _write_keystores(tmp_path)
    finally:
        os.umask(old_umask)


def _write_keystores(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("pw\n")
    (tmp_path / "pw").chmod(0o600)  # a password file others may read is refused
    os.chmod(tmp_path / "pw", 0o600)
    made = _cli("keys", "new", tmp_path / "new" / "a.json", "--password-file", tmp_path / "pw")
    assert made.exit_code == 0, made.stderr
    imported = CliRunner().invoke(
        app, ["keys", "import", str(tmp_path / "b.json"), "--password-file", str(tmp_path / "pw")], input="0x" + "11" * 32 + "\n"
    )
    assert imported.exit_code == 0, imported.stderr
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700  # the folder it made, too
    for path in (tmp_path / "new" / "a.json", tmp_path / "b.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert _cli("keys", "address", path).exit_code == 0  # and they load as written


def test_a_password_file_others_can_read_is_refused_as_its_keystore_would_be(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator's `depin.toml` names `password_file`; written with a default umask it is 0644,
    so any local user reads the password of the 0600 keystore beside it. It must be refused as a
    keystore with that mode is: one line naming the file, its mode and `chmod 600`."""
    monkeypatch.delenv("DEPIN_ALLOW_LOOSE_KEYSTORE", raising=False)
    path, _ = _keystore(tmp_path / "keys")
    (tmp_path / "keys" / "pw").chmod(0o644)
    with pytest.raises(AccountError, match=r"password file .* is readable by others \(mode 0644\).*chmod 600"):
        load_account(keystore=path, password_file=tmp_path / "keys" / "pw")
