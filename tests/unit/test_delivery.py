"""Encrypted, content-addressed delivery (depin.delivery; the store and journal side in
executor.results; the spec field in depin.spec): round trips, a wrong key, tampered bytes."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from coincurve import PublicKey

from depin.commitment import commitment
from depin.delivery import (
    CHUNK,
    DeliveryError,
    check_content_address,
    open_bytes,
    open_file,
    open_stream,
    parse_public_key,
    public_key_of,
    seal_bytes,
    seal_file,
    seal_stream,
)
from depin.errors import SpecError
from depin.spec import parse_spec
from executor.results import ResultStore, SubmissionJournal, prepare_submission

KEY = bytes.fromhex("11" * 32)
OTHER = bytes.fromhex("22" * 32)
PUB = public_key_of(KEY)


def sealed(data: bytes, pub: bytes = PUB) -> bytes:
    out = io.BytesIO()
    seal_stream(pub, io.BytesIO(data), out)
    return out.getvalue()


def opened(data: bytes, key: bytes = KEY) -> bytes:
    out = io.BytesIO()
    open_stream(key, io.BytesIO(data), out)
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 17])
def test_round_trip_at_chunk_edges(size: int) -> None:
    data = os.urandom(size)
    box = sealed(data)
    assert opened(box) == data
    assert size < 32 or data[:32] not in box  # the plaintext does not show through


def test_sealing_twice_gives_unrelated_bytes() -> None:
    """Fresh randomness each time: the content address says nothing about the plaintext."""
    data = b"the same result" * 100
    a, b = sealed(data), sealed(data)
    assert a != b and hashlib.sha256(a).digest() != hashlib.sha256(b).digest()


def test_sealed_to_uncompressed_key_opens_with_its_private_key() -> None:
    uncompressed = PublicKey(PUB).format(compressed=False)
    assert opened(sealed(b"x" * 1000, uncompressed)) == b"x" * 1000
    assert parse_public_key("0x" + uncompressed.hex()) == PUB


def test_wrong_key_fails_clearly() -> None:
    box = sealed(b"secret result")
    with pytest.raises(DeliveryError, match="not encrypted to this key"):
        opened(box, OTHER)
    with pytest.raises(DeliveryError, match="not encrypted to this key"):
        open_bytes(OTHER, seal_bytes(PUB, b"salt"), what="the sealed salt")
    assert open_bytes(KEY, seal_bytes("0x" + PUB.hex(), b"salt")) == b"salt"


@pytest.mark.parametrize("where", ["header", "body", "last tag"])
def test_tampered_ciphertext_is_refused(where: str) -> None:
    box = bytearray(sealed(os.urandom(CHUNK + 100)))
    at = {"header": 20, "body": 200 + CHUNK // 2, "last tag": len(box) - 1}[where]
    box[at] ^= 0x01
    with pytest.raises(DeliveryError):
        opened(bytes(box))


def test_truncation_at_a_chunk_boundary_is_refused() -> None:
    box = sealed(os.urandom(2 * CHUNK + 5))
    truncated = box[: len(box) - (5 + 16)]  # drop the last chunk whole: the previous one is not marked last
    with pytest.raises(DeliveryError, match="chunk 1"):
        opened(truncated)


def test_content_address_detects_tampering(tmp_path: Path) -> None:
    plain = tmp_path / "a.tar"
    plain.write_bytes(os.urandom(5000))
    box = tmp_path / "a.sealed"
    address = seal_file(PUB, plain, box)
    assert address == hashlib.sha256(box.read_bytes()).digest()
    check_content_address(address, address.hex(), "0x" + address.hex(), f"http://x/results/{address.hex()}")
    data = bytearray(box.read_bytes())
    data[-3] ^= 0xFF
    box.write_bytes(bytes(data))
    with pytest.raises(DeliveryError, match="altered or swapped"):
        check_content_address(hashlib.sha256(box.read_bytes()).digest(), f"http://x/results/{address.hex()}")
    with pytest.raises(DeliveryError):
        open_file(KEY, box, tmp_path / "out.tar")
    assert not (tmp_path / "out.tar").exists()  # nothing half-decrypted is left behind


@pytest.mark.parametrize(
    "bad, message",
    [
        ("0x1234", "33 bytes"),
        ("zz" * 33, "33 bytes"),
        ("05" + "11" * 32, "starts with 02 or 03"),
        ("04" + "00" * 64, "not a point on secp256k1"),
    ],
)
def test_bad_public_keys_are_refused_clearly(bad: str, message: str) -> None:
    with pytest.raises(DeliveryError, match=message):
        parse_public_key(bad)


def _spec(**extra: object) -> dict[str, object]:
    return {
        "v": 1,
        "image": "depin/checksum@sha256:" + "ab" * 32,
        "command": ["true"],
        "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 60},
        **extra,
    }


def test_spec_delivery_field() -> None:
    plain = parse_spec(_spec())
    assert plain.encrypt_to is None and b"delivery" not in plain.to_bytes()  # old specs keep their bytes
    for form in ("0x" + PUB.hex(), PUB.hex(), PublicKey(PUB).format(compressed=False).hex()):
        spec = parse_spec(_spec(delivery={"encrypt_to": form}))
        assert spec.encrypt_to == PUB
        assert parse_spec(spec.to_bytes(), spec.hash()) == spec
    with pytest.raises(SpecError, match=r"delivery\.encrypt_to: .*not a point on secp256k1"):
        parse_spec(_spec(delivery={"encrypt_to": "04" + "00" * 64}))
    with pytest.raises(SpecError, match="delivery"):
        parse_spec(_spec(delivery={"encrypt_to": PUB.hex(), "cipher": "rot13"}))


def test_store_and_journal_publish_only_sealed_bytes(tmp_path: Path) -> None:
    """The executor side: the archive stored under the content address of its sealed bytes (the
    plaintext gone), the manifest with the salt sealed to the requester and no salt in clear; the
    requester opens both and the commitment checks."""
    store = ResultStore(tmp_path / "results", "http://127.0.0.1:1")
    archive = tmp_path / "result.tar"
    payload = os.urandom(3000)
    archive.write_bytes(payload)
    digest = hashlib.sha256(payload).digest()
    stored = store.put(archive, move=True, encrypt_to="0x" + PUB.hex())
    assert not archive.exists()
    assert stored.name == hashlib.sha256(stored.path.read_bytes()).hexdigest() == stored.digest.hex()
    assert payload not in stored.path.read_bytes()
    party = "0x" + "ab" * 20
    sub = prepare_submission(
        SubmissionJournal(tmp_path / "journal"), store, job_id=7, spec_hash=b"\x01" * 32, party=party, kind="result",
        digest=digest, name=stored.name,
    )
    manifest = json.loads(store.manifest_path(stored.name).read_bytes())
    assert "salt" not in manifest and sub.salt[2:] not in json.dumps(manifest)
    assert manifest["sha256"] == "0x" + stored.name and manifest["encrypt_to"] == "0x" + PUB.hex()
    salt = open_bytes(KEY, bytes.fromhex(manifest["salt_sealed"][2:]))
    out = tmp_path / "opened.tar"
    open_file(KEY, stored.path, out)
    assert out.read_bytes() == payload
    assert commitment(party, 7, hashlib.sha256(out.read_bytes()).digest(), salt).hex() == manifest["commitment"][2:]
    with pytest.raises(DeliveryError):
        open_bytes(OTHER, bytes.fromhex(manifest["salt_sealed"][2:]))
    # a re-run after a crash gets the same entry back (same name, same sealed salt) and the manifest again
    store.manifest_path(stored.name).unlink()
    again = prepare_submission(
        SubmissionJournal(tmp_path / "journal"), store, job_id=7, spec_hash=b"\x01" * 32, party=party, kind="result",
        digest=digest, name=stored.name,
    )
    assert again == sub and json.loads(store.manifest_path(stored.name).read_bytes()) == manifest
    store.remove(stored.name)
    assert store.recipient(stored.name) == "" and not store.has(stored.name)


def test_keys_pubkey_prints_the_key_to_put_in_the_spec(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from depin.accounts import dev_account, import_key
    from depinctl.cli import app

    runner = CliRunner()
    dev = dev_account(1, 31337)
    result = runner.invoke(app, ["keys", "pubkey", "--dev-account", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "0x" + public_key_of(bytes(dev.key)).hex()
    keystore = tmp_path / "me.json"
    import_key(KEY, keystore, "pw", kdf_n=2**4)
    (tmp_path / "pw").write_text("pw\n")
    (tmp_path / "pw").chmod(0o600)  # a password file others may read is refused
    result = runner.invoke(app, ["keys", "pubkey", str(keystore), "--password-file", str(tmp_path / "pw"), "--uncompressed"])
    assert result.exit_code == 0, result.output
    key_hex = result.stdout.strip()
    assert key_hex.startswith("0x04") and parse_public_key(key_hex) == PUB and KEY.hex() not in result.output
    assert parse_spec(_spec(delivery={"encrypt_to": key_hex})).encrypt_to == PUB


def test_the_opened_plaintext_is_private_and_never_written_through_a_planted_link(tmp_path: Path) -> None:
    """The decrypted archive (a requester's plaintext result: depin job result writes it beside the
    download as ``<name>.open``) is created 0600 whatever the umask (0o022 here), and only created:
    a file or a symbolic link already at its name is refused (FileExistsError) and left as it was,
    never truncated, written through or removed."""
    plain = tmp_path / "plain.tar"
    plain.write_bytes(b"the requester's secret result" * 1000)
    box = tmp_path / "box"
    seal_file(PUB, plain, box)
    old = os.umask(0o022)
    try:
        out = tmp_path / "opened.tar.open"
        open_file(KEY, box, out)
        assert out.read_bytes() == plain.read_bytes()
        assert out.stat().st_mode & 0o777 == 0o600
        victim = tmp_path / "victim"
        victim.write_bytes(b"someone else's file")
        planted = tmp_path / "planted.tar.open"
        planted.symlink_to(victim)
        with pytest.raises(FileExistsError):
            open_file(KEY, box, planted)
        assert victim.read_bytes() == b"someone else's file" and planted.is_symlink()
    finally:
        os.umask(old)
