"""Salted commitments: what a provider (and later a verifier or juror) posts instead of a digest.

A party that computed ``digest`` for job ``job_id`` commits to it with a fresh 256-bit ``salt``::

    C = keccak256(abi.encode(address party, uint256 jobId, bytes32 digest, bytes32 salt))

exactly Solidity's ``keccak256(abi.encode(party, jobId, digest, salt))``: four 32-byte words, the
address left-padded with zeros, the job id big-endian. Binding the party and the job into ``C``
means a commitment cannot be copied from another party or replayed on another job; the salt means
``C`` says nothing about the digest (no dictionary of likely digests can be checked against it)
until the party reveals ``(digest, salt)``.

What the digest is:

- a result: the *match digest* of the result (:func:`depin.outputs.match_digest`; the sha256 of the
  whole ``depin-result-v1`` archive when the spec selects no output subset);
- a failure: :func:`failure_digest` of the failure code, the code as a big-endian bytes32;
- a canary operator's garbage answer: :func:`canary_digest` of a secret only the operator knows;
- a verifier's or juror's finding that the provider did not deliver the result it committed to
  (:data:`NOT_DELIVERED`, :mod:`depin.delivery_check`): committed instead of its re-run digest, so
  that jurors who agree on it outvote the provider's revealed digest (ProviderWrong).

Pure functions over bytes (``eth_utils.keccak``); no web3, no chain access.
"""

from __future__ import annotations

import secrets

from eth_utils import is_address, keccak, to_canonical_address

SALT_BYTES = 32
FAILURE_CODES = range(1, 8)  # depin.market.FailureCode, NONE excluded
CANARY_TAG = b"depin-canary"
_UINT256_MAX = (1 << 256) - 1
# What an auditor or juror commits when its re-run yields a result but the provider's archive was not
# served at its on-chain URI (or does not match the provider's commitment). No archive hashes to it
# (sha256 of anything is not keccak256 of this tag) and it is not a failure code.
NOT_DELIVERED = keccak(b"depin.not-delivered")


def new_salt() -> bytes:
    """A fresh 32-byte salt from the operating system's CSPRNG (:mod:`secrets`)."""
    return secrets.token_bytes(SALT_BYTES)


def _word(value: bytes, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise ValueError(f"{what} must be 32 bytes, not {value!r:.80}")
    return bytes(value)


def commitment(party: str, job_id: int, digest: bytes, salt: bytes) -> bytes:
    """``keccak256(abi.encode(address party, uint256 jobId, bytes32 digest, bytes32 salt))`` (32
    bytes). `party` is a 0x-hex address (any case); ValueError for a bad address, a job id outside
    uint256, or a digest or salt that is not 32 bytes."""
    if not isinstance(party, str) or not is_address(party):
        raise ValueError(f"{party!r} is not an address")
    if isinstance(job_id, bool) or not isinstance(job_id, int) or not 0 <= job_id <= _UINT256_MAX:
        raise ValueError(f"job id {job_id!r} is not a uint256")
    encoded = (
        to_canonical_address(party).rjust(32, b"\0")
        + job_id.to_bytes(32, "big")
        + _word(digest, "the digest")
        + _word(salt, "the salt")
    )
    return keccak(encoded)


def failure_digest(code: int) -> bytes:
    """What a failure submission commits to instead of an archive digest: the failure code (1..7,
    :class:`depin.market.FailureCode`) as a big-endian bytes32 (``bytes32(uint256(code))``)."""
    if isinstance(code, bool) or int(code) not in FAILURE_CODES:
        raise ValueError(f"failure code {code!r} is not one of {FAILURE_CODES.start}..{FAILURE_CODES.stop - 1}")
    return int(code).to_bytes(32, "big")


def canary_digest(secret: bytes) -> bytes:
    """``keccak256(abi.encodePacked("depin-canary", secret))``: the garbage digest a canary operator
    commits to (and hands to anyone who asks off-chain). No honest run produces it."""
    if not isinstance(secret, (bytes, bytearray)) or not secret:
        raise ValueError("the canary secret must be non-empty bytes")
    return keccak(CANARY_TAG + bytes(secret))


CANARY_AUTHORIZATION_TAG = keccak(b"depin-canary-authorization")


def canary_authorization(chain_id: int, court: str, job_id: int) -> bytes:
    """What a canary key (``CANARY_ROLE``) signs, EIP-191 (:func:`depin.accounts.sign_canary_authorization`),
    to let job `job_id`'s requester expose it: ``keccak256(abi.encode(keccak256(
    "depin-canary-authorization"), chainid, court, jobId))``, as ``VerificationCourt.exposeCanary``
    checks it. The signature names neither account, so the job's requester and provider need not
    hold the role (nothing on chain tells a canary before its exposure)."""
    if not isinstance(court, str) or not is_address(court):
        raise ValueError(f"{court!r} is not an address")
    for name, value in (("chain id", chain_id), ("job id", job_id)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UINT256_MAX:
            raise ValueError(f"{name} {value!r} is not a uint256")
    return keccak(CANARY_AUTHORIZATION_TAG + chain_id.to_bytes(32, "big") + to_canonical_address(court).rjust(32, b"\0") + job_id.to_bytes(32, "big"))


def seat_commitment(verifier: str, job_id: int, round_: int, seat: int, digest: bytes, salt: bytes) -> bytes:
    """A court seat's commitment: ``keccak256(abi.encode(address verifier, uint256 jobId, uint8
    round, uint8 seat, bytes32 digest, bytes32 salt))``, as ``VerificationCourt.reveal`` checks it
    (the round and seat bind a contribution to one seat). ValueError for out-of-range values."""
    for name, value in (("round", round_), ("seat", seat)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise ValueError(f"{name} {value!r} is not a uint8")
    commitment(verifier, job_id, digest, salt)  # validates the address, the job id and both words
    encoded = (
        to_canonical_address(verifier).rjust(32, b"\0")
        + job_id.to_bytes(32, "big")
        + round_.to_bytes(32, "big")
        + seat.to_bytes(32, "big")
        + _word(digest, "the digest")
        + _word(salt, "the salt")
    )
    return keccak(encoded)
