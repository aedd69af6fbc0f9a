"""Encrypted, content-addressed delivery of a result to its requester (ECIES over secp256k1).

A requester that wants nobody but itself to read a result puts its secp256k1 public key in the job
spec (``"delivery": {"encrypt_to": "0x04..."}``, 33 compressed or 65 uncompressed bytes in hex; see
:mod:`depin.spec`). The executor then publishes, instead of the plaintext archive:

- the **sealed archive** (:func:`seal_file`), format ``depin-sealed-v1``::

      b"DPSEALv1" | u16 len(wrapped) | wrapped = ECIES(requester, data key) | chunk 0 | chunk 1 | ...

  The archive is encrypted with a fresh random 256-bit data key by AES-256-GCM in chunks of 1 MiB
  of plaintext (each chunk is ``ciphertext || 16-byte tag``; the nonce is the chunk's number and a
  flag marking the last chunk, the STREAM construction: reordering, dropping or truncating chunks
  fails the tags). Only the data key goes through ECIES (``eciespy``: an ephemeral secp256k1 key,
  ECDH, HKDF-SHA256, AES-256-GCM), so sealing and opening stream in bounded memory whatever the
  archive's size;
- under a **content address**: the sealed file is stored under the name ``sha256(sealed bytes)``
  (64 hex digits), which the on-chain result URI carries and the manifest repeats (``sha256``).
  Anyone can check that what a server delivers is what the provider published (hash the bytes,
  compare with the URI), a juror can on a non-delivery claim, and none of them learns anything:
  the ciphertext is fresh randomness to everyone but the requester, so its hash says nothing about
  the result's digest before the reveal;
- the **salt** of the provider's commitment sealed to the same key (:func:`seal_bytes`, the
  manifest's ``salt_sealed``): only the requester can check the decrypted archive against the
  on-chain commitment before the reveal, exactly as a plaintext delivery is checked.

The requester opens both with its private key (:func:`open_file`, :func:`open_bytes`); a wrong key
or altered bytes raise :class:`DeliveryError` with a message that says which. Keys are never logged
or put in an error message.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import struct
from pathlib import Path
from typing import BinaryIO

import ecies
from coincurve import PrivateKey, PublicKey
from Crypto.Cipher import AES

from depin.errors import DepinError

SEALED_MAGIC = b"DPSEALv1"
SEALED_FORMAT = "depin-sealed-v1"
CHUNK = 1 << 20  # plaintext bytes per chunk
TAG = 16
DATA_KEY_BYTES = 32
PUBKEY_RE = re.compile(r"^(?:0x)?([0-9a-fA-F]{66}|[0-9a-fA-F]{130})\Z")
_MAX_WRAPPED = 1024


class DeliveryError(DepinError, ValueError):
    """An encrypted delivery could not be sealed or opened (bad key, wrong key, altered bytes)."""


def parse_public_key(value: str | bytes) -> bytes:
    """The compressed (33-byte) form of a secp256k1 public key given as 33 or 65 bytes or their hex
    (``0x`` optional); :class:`DeliveryError` when it is not a point on the curve."""
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        match = PUBKEY_RE.match(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise DeliveryError(
                "a secp256k1 public key is 33 bytes (compressed, 02/03...) or 65 bytes (uncompressed, 04...) "
                "in hex, optionally 0x-prefixed; print yours with `depin keys pubkey`"
            )
        raw = bytes.fromhex(match[1])
    if len(raw) not in (33, 65) or raw[0] not in ((2, 3) if len(raw) == 33 else (4,)):
        raise DeliveryError("a secp256k1 public key starts with 02 or 03 (33 bytes) or 04 (65 bytes)")
    try:
        return PublicKey(raw).format(compressed=True)
    except (ValueError, TypeError):
        raise DeliveryError("that public key is not a point on secp256k1") from None


def public_key_of(private_key: bytes) -> bytes:
    """The compressed secp256k1 public key of a 32-byte private key."""
    return PrivateKey(bytes(private_key)).public_key.format(compressed=True)


def address_of_public_key(public_key: str | bytes) -> str:
    """The (checksummed) Ethereum address of a secp256k1 public key in any form
    :func:`parse_public_key` takes: whose key it is, to say in a message without printing a key."""
    from eth_utils import keccak, to_checksum_address  # lazy: start-up

    point = PublicKey(parse_public_key(public_key)).format(compressed=False)
    return to_checksum_address(keccak(point[1:])[-20:])


def seal_bytes(public_key: str | bytes, data: bytes) -> bytes:
    """``data`` encrypted to `public_key` with ECIES (eciespy's default: secp256k1, HKDF-SHA256,
    AES-256-GCM); fresh randomness each call."""
    return ecies.encrypt(parse_public_key(public_key), bytes(data))


def open_bytes(private_key: bytes, sealed: bytes, *, what: str = "the sealed data") -> bytes:
    """The plaintext of :func:`seal_bytes`' output; :class:`DeliveryError` for a wrong key or
    altered bytes."""
    try:
        return ecies.decrypt(bytes(private_key), bytes(sealed))
    except (ValueError, TypeError, IndexError):
        raise DeliveryError(f"cannot decrypt {what}: it was not encrypted to this key, or it was altered") from None


def _nonce(index: int, last: bool) -> bytes:
    return struct.pack(">QI", index, 1 if last else 0)  # 12 bytes: chunk number, last-chunk flag


def seal_stream(public_key: str | bytes, src: BinaryIO, dest: BinaryIO) -> bytes:
    """Writes the ``depin-sealed-v1`` form of everything `src` holds to `dest` (see the module doc)
    and returns the sha256 of what was written (the content address)."""
    recipient = parse_public_key(public_key)
    data_key = secrets.token_bytes(DATA_KEY_BYTES)
    wrapped = ecies.encrypt(recipient, data_key)
    h = hashlib.sha256()

    def put(chunk: bytes) -> None:
        h.update(chunk)
        dest.write(chunk)

    put(SEALED_MAGIC + struct.pack(">H", len(wrapped)) + wrapped)
    index = 0
    current = src.read(CHUNK)
    while True:
        following = src.read(CHUNK) if len(current) == CHUNK else b""
        last = not following
        cipher = AES.new(data_key, AES.MODE_GCM, nonce=_nonce(index, last))
        body, tag = cipher.encrypt_and_digest(current)
        put(body + tag)
        if last:
            return h.digest()
        current, index = following, index + 1


def open_stream(private_key: bytes, src: BinaryIO, dest: BinaryIO, *, what: str = "the sealed archive") -> int:
    """Decrypts a ``depin-sealed-v1`` stream from `src` into `dest`; returns the plaintext's size.
    :class:`DeliveryError` for a wrong key, a truncated, reordered or altered stream (nothing
    written to `dest` is then to be trusted: callers write to a temporary file)."""
    head = src.read(len(SEALED_MAGIC) + 2)
    if len(head) < len(SEALED_MAGIC) + 2 or head[: len(SEALED_MAGIC)] != SEALED_MAGIC:
        raise DeliveryError(f"{what} is not a {SEALED_FORMAT} file (bad header)")
    (wrapped_len,) = struct.unpack(">H", head[len(SEALED_MAGIC):])
    if wrapped_len > _MAX_WRAPPED:
        raise DeliveryError(f"{what} is not a {SEALED_FORMAT} file (bad key header)")
    wrapped = src.read(wrapped_len)
    data_key = open_bytes(private_key, wrapped, what=f"{what}'s key")
    if len(data_key) != DATA_KEY_BYTES:
        raise DeliveryError(f"{what}'s key has the wrong length; refusing it")
    size, index = 0, 0
    current = src.read(CHUNK + TAG)
    while True:
        following = src.read(CHUNK + TAG) if len(current) == CHUNK + TAG else b""
        last = not following
        if len(current) < TAG:
            raise DeliveryError(f"{what} is truncated")
        cipher = AES.new(data_key, AES.MODE_GCM, nonce=_nonce(index, last))
        try:
            plain = cipher.decrypt_and_verify(current[:-TAG], current[-TAG:])
        except ValueError:
            raise DeliveryError(f"{what} was altered or truncated (chunk {index} fails its authentication tag)") from None
        dest.write(plain)
        size += len(plain)
        if last:
            return size
        current, index = following, index + 1


def check_content_address(sha256: bytes, *addresses: str) -> None:
    """Raises :class:`DeliveryError` unless every address (64 hex digits, ``0x`` optional, or a URI
    ending in them) names `sha256`: the delivered bytes are the ones the provider published."""
    want = bytes(sha256).hex()
    for address in addresses:
        named = str(address).rstrip("/").rsplit("/", 1)[-1].lower().removeprefix("0x")
        if named != want:
            raise DeliveryError(
                f"the delivered bytes hash to 0x{want}, not the published content address {address!r}: they were altered or swapped"
            )


def seal_file(public_key: str | bytes, src: Path, dest: Path) -> bytes:
    """:func:`seal_stream` from file `src` to file `dest` (fsync'd); returns sha256(dest)."""
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        digest = seal_stream(public_key, fin, fout)
        fout.flush()
        os.fsync(fout.fileno())
    return digest


def open_file(private_key: bytes, src: Path, dest: Path, *, what: str = "the sealed archive") -> int:
    """:func:`open_stream` from file `src` to file `dest`; `dest` is removed when opening fails.
    `dest` holds the plaintext, so it is created here, mode 0600 whatever the umask, and only
    created: a file or symbolic link already at its name raises FileExistsError and is left as it
    was (never truncated, written through or removed)."""
    with open(src, "rb") as fin:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fout:
                return open_stream(private_key, fin, fout, what=what)
        except BaseException:
            Path(dest).unlink(missing_ok=True)
            raise
