"""Salted commitments (depin.commitment): byte-for-byte Solidity's keccak256(abi.encode(...)),
checked against eth_abi and against vectors computed with Foundry's cast; distinct inputs give
distinct commitments."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from depin.commitment import canary_digest, commitment, failure_digest, new_salt
from depin.market import FailureCode

PARTY = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil account 1
DIGEST = bytes.fromhex("ab" * 32)
SALT = bytes.fromhex("01" * 32)

# cast keccak $(cast abi-encode "f(address,uint256,bytes32,bytes32)" $PARTY 42 0xabab.. 0x0101..)  (Foundry 1.7.1)
CAST_COMMITMENT = bytes.fromhex("a9e19703b63838d9f22f17a934344d48c581cdb4325d7f22a85396a3f2d3a79a")
# cast keccak $(cast abi-encode --packed "f(string,bytes32)" depin-canary 0x1111..)
CAST_CANARY = bytes.fromhex("ee881777ed0fb7d9747fd9be15601fa601a6f1264f083a48211b5ef05a5324f6")

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
words = st.binary(min_size=32, max_size=32)
job_ids = st.integers(min_value=0, max_value=(1 << 256) - 1)


def _reference(party: str, job_id: int, digest: bytes, salt: bytes) -> bytes:
    return keccak(encode(["address", "uint256", "bytes32", "bytes32"], [party, job_id, digest, salt]))


def test_the_foundry_vector() -> None:
    assert commitment(PARTY, 42, DIGEST, SALT) == CAST_COMMITMENT
    assert commitment(PARTY.lower(), 42, DIGEST, SALT) == CAST_COMMITMENT  # any address case


def test_canary_digest_is_the_packed_keccak() -> None:
    secret = bytes.fromhex("11" * 32)
    assert canary_digest(secret) == CAST_CANARY == keccak(b"depin-canary" + secret)


@given(addresses, job_ids, words, words)
def test_matches_eth_abi_encode(party: str, job_id: int, digest: bytes, salt: bytes) -> None:
    assert commitment(party, job_id, digest, salt) == _reference(party, job_id, digest, salt)


@given(addresses, job_ids, words, words, words)
def test_another_salt_another_commitment(party: str, job_id: int, digest: bytes, salt: bytes, other: bytes) -> None:
    if other != salt:
        assert commitment(party, job_id, digest, salt) != commitment(party, job_id, digest, other)


@given(addresses, addresses, job_ids, words, words)
def test_another_party_another_commitment(party: str, other: str, job_id: int, digest: bytes, salt: bytes) -> None:
    if other != party:
        assert commitment(party, job_id, digest, salt) != commitment(other, job_id, digest, salt)


@given(addresses, job_ids, job_ids, words, words)
def test_another_job_another_commitment(party: str, job_id: int, other: int, digest: bytes, salt: bytes) -> None:
    if other != job_id:
        assert commitment(party, job_id, digest, salt) != commitment(party, other, digest, salt)


@given(addresses, job_ids, words, words, words)
def test_another_digest_another_commitment(party: str, job_id: int, digest: bytes, other: bytes, salt: bytes) -> None:
    if other != digest:
        assert commitment(party, job_id, digest, salt) != commitment(party, job_id, other, salt)


def test_salts_are_fresh_32_bytes() -> None:
    salts = {new_salt() for _ in range(64)}
    assert len(salts) == 64 and all(len(s) == 32 for s in salts)


def test_failure_digest_is_the_code_as_bytes32() -> None:
    for code in FailureCode:
        if code == FailureCode.NONE:
            with pytest.raises(ValueError):
                failure_digest(code)
            continue
        assert failure_digest(code) == encode(["uint256"], [int(code)])
        assert failure_digest(code) == bytes(31) + bytes([int(code)])
    assert len({failure_digest(c) for c in range(1, 8)}) == 7
    for bad in (0, 8, -1, True):
        with pytest.raises(ValueError):
            failure_digest(bad)


@pytest.mark.parametrize(
    "args",
    [
        ("not an address", 1, DIGEST, SALT),
        (PARTY, -1, DIGEST, SALT),
        (PARTY, 1 << 256, DIGEST, SALT),
        (PARTY, True, DIGEST, SALT),
        (PARTY, 1, DIGEST[:31], SALT),
        (PARTY, 1, DIGEST, SALT + b"\0"),
        (PARTY, 1, "ab" * 32, SALT),
    ],
)
def test_bad_arguments_are_refused(args: tuple) -> None:
    with pytest.raises(ValueError):
        commitment(*args)


def test_canary_secret_must_be_bytes() -> None:
    for bad in (b"", "secret"):
        with pytest.raises(ValueError):
            canary_digest(bad)  # type: ignore[arg-type]


def test_seat_commitment_matches_abi_encode() -> None:
    from eth_abi import encode
    from eth_utils import keccak

    from depin.commitment import seat_commitment

    verifier = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
    digest, salt = b"\x11" * 32, b"\x22" * 32
    expected = keccak(encode(["address", "uint256", "uint8", "uint8", "bytes32", "bytes32"], [verifier, 7, 1, 2, digest, salt]))
    assert seat_commitment(verifier, 7, 1, 2, digest, salt) == expected
    assert seat_commitment(verifier, 7, 1, 3, digest, salt) != expected


@given(st.integers(min_value=0, max_value=(1 << 256) - 1), addresses, job_ids)
def test_canary_authorization_is_the_abi_encoded_keccak(chain_id: int, court: str, job_id: int) -> None:
    from depin.commitment import canary_authorization

    tag = keccak(b"depin-canary-authorization")
    expected = keccak(encode(["bytes32", "uint256", "address", "uint256"], [tag, chain_id, court, job_id]))
    assert canary_authorization(chain_id, court, job_id) == expected


def test_a_canary_authorization_recovers_to_its_signer_and_binds_the_job() -> None:
    """The EIP-191 signature exposeCanary checks (ECDSA.tryRecover of toEthSignedMessageHash)."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from depin.accounts import dev_account, sign_canary_authorization
    from depin.commitment import canary_authorization

    signer, court = dev_account(7, 31337), "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    signature = sign_canary_authorization(signer, 31337, court, 12)
    assert len(signature) == 65
    recovered = Account.recover_message(encode_defunct(primitive=canary_authorization(31337, court, 12)), signature=signature)
    assert recovered == signer.address
    other = Account.recover_message(encode_defunct(primitive=canary_authorization(31337, court, 13)), signature=signature)
    assert other != signer.address  # another job's authorization is not this one


@pytest.mark.parametrize("args", [(-1, PARTY, 1), (1, "0x12", 1), (1, PARTY, 1 << 256), (True, PARTY, 1)])
def test_canary_authorization_refuses_bad_arguments(args: tuple) -> None:
    from depin.commitment import canary_authorization

    with pytest.raises(ValueError):
        canary_authorization(*args)
