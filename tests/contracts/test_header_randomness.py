"""HeaderRandomness on real anvil: a block's prevrandao kept by proving its RLP header.

The headers are the running anvil's own (its hardfork's field list: baseFee, withdrawals, blob
fields, parent beacon root, requests hash), encoded by the executor's encoder
(:func:`depin.chain.header.encode_header`), so these tests also show that what the executor sends
hashes to the node's block hash.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_utils import keccak
from web3.exceptions import ContractLogicError as Web3ContractLogicError

from depin.chain.header import MIX_HASH_FIELD, encode_header, header_fields, rlp_list, rlp_string

from .test_market import expect_event, reverts

WINDOW = 256  # blocks for which blockhash(n) is available
ERRORS = {
    "RandomnessNotReady": ["uint256", "uint256"],
    "RandomnessExpired": ["uint256"],
    "HeaderRequired": ["uint256"],
    "HeaderMalformed": ["uint256"],
    "HeaderTooFewFields": ["uint256"],
    "HeaderFieldInvalid": ["uint256"],
}


def refused(method: Any, arg: Any, error: str, *args: int | None) -> None:
    """The view `method(arg)` reverts with custom error `error` and these inputs (None: any value),
    read from the node's raw revert data (ape does not decode the custom errors of view calls)."""
    contract = method.contract
    data = "0x" + bytes(method.encode_input(arg)).hex()
    with pytest.raises(Web3ContractLogicError) as info:
        contract.chain_manager.provider.web3.eth.call({"to": contract.address, "data": data})
    raw = bytes.fromhex(str(info.value.data).removeprefix("0x"))
    types = ERRORS[error]
    assert raw[:4] == keccak(text=f"{error}({','.join(types)})")[:4], f"expected {error}, got 0x{raw.hex()}"
    got = list(abi_decode(types, raw[4:]))
    assert all(want is None or want == have for want, have in zip(args, got, strict=True)), (error, got, args)


@pytest.fixture(scope="module")
def header_randomness(owner):
    from ape import project

    return project.HeaderRandomness.deploy(sender=owner)


def block_json(chain: Any, number: int) -> dict[str, Any]:
    return dict(chain.provider.make_request("eth_getBlockByNumber", [hex(number), False]))


def past_block(chain: Any) -> tuple[int, dict[str, Any]]:
    """A mined block (two behind the head) and its JSON."""
    chain.mine(3)
    n = chain.blocks.head.number - 2
    return n, block_json(chain, n)


def test_encoded_header_hashes_to_the_node_block_hash(chain):
    _, block = past_block(chain)
    header = encode_header(block)
    assert keccak(header) == bytes.fromhex(block["hash"][2:])
    # the running anvil's fork fields are all there (Prague: 21 fields; Cancun 20, ...)
    assert len(header_fields(block)) >= 15
    assert header_fields(block)[MIX_HASH_FIELD] == bytes.fromhex(block["mixHash"][2:])


def test_prove_keeps_the_block_prevrandao(chain, header_randomness, stranger):
    hr = header_randomness
    n, block = past_block(chain)
    header = encode_header(block)
    mix = bytes.fromhex(block["mixHash"][2:])
    assert mix != bytes(32)  # anvil: a fresh random mix per block
    assert hr.parse(header) == (n, mix)
    assert hr.status(n) == (False, False)  # past, provable, not proved
    refused(hr.randomness, n, "RandomnessNotReady", n, None)
    refused(hr.record, n, "HeaderRequired", n)
    tx = hr.prove(header, sender=stranger)
    expect_event(tx, hr.RandomnessRecorded, blockNumber=n, value=mix)
    print(f"prove() gas: {tx.gas_used} ({len(header)}-byte header, {len(header_fields(block))} fields)")
    assert tx.gas_used < 60_000
    assert hr.randomness(n) == mix
    assert hr.status(n) == (True, False)
    hr.record(n)  # kept: returns
    again = hr.prove(header, sender=stranger)  # idempotent, no second event
    assert not list(again.decode_logs(hr.RandomnessRecorded))
    # still readable once the block hash is gone
    chain.provider.make_request("anvil_mine", [hex(WINDOW + 10)])
    assert hr.randomness(n) == mix
    assert hr.status(n) == (True, False)


def test_prevrandao_is_the_blocks_own(chain, header_randomness):
    """The header's mixHash is what `block.prevrandao` reads inside that block (EIP-4399)."""
    n, block = past_block(chain)
    code = "0x445f5260205ff3"  # PREVRANDAO PUSH0 MSTORE PUSH1 32 PUSH0 RETURN (init code returning it)
    inside = chain.provider.make_request("eth_call", [{"data": code}, hex(n)])
    assert inside == block["mixHash"]


def test_forged_or_altered_headers_are_rejected(chain, header_randomness, stranger):
    hr = header_randomness
    n, block = past_block(chain)
    # another prevrandao in an otherwise real header
    forged = encode_header(block | {"mixHash": "0x" + "11" * 32})
    with reverts(hr.HeaderMismatch, blockNumber=n):
        hr.prove(forged, sender=stranger)
    # a real header under another block number
    with reverts(hr.HeaderMismatch, blockNumber=n - 1):
        hr.prove(encode_header(block | {"number": hex(n - 1)}), sender=stranger)
    # one field dropped (a fork's field list cut short)
    fields = header_fields(block)
    with reverts(hr.HeaderMismatch, blockNumber=n):
        hr.prove(rlp_list([rlp_string(f) for f in fields[:-1]]), sender=stranger)
    # a header of a block not mined yet cannot be proved
    head = chain.blocks.head.number
    with reverts(hr.RandomnessNotReady, blockNumber=head + 1, current=head + 1):
        hr.prove(encode_header(block | {"number": hex(head + 1)}), sender=stranger)
    assert hr.status(n) == (False, False)


def test_malformed_rlp_is_rejected(chain, header_randomness):
    hr = header_randomness
    n, block = past_block(chain)
    header = encode_header(block)
    fields = [rlp_string(f) for f in header_fields(block)]
    refused(hr.parse, b"", "HeaderMalformed", 0)
    refused(hr.parse, header[:-1], "HeaderMalformed", 0)  # truncated
    refused(hr.parse, header + b"\x00", "HeaderMalformed", 0)  # trailing byte
    refused(hr.parse, rlp_string(header), "HeaderMalformed", 0)  # a string, not a list
    refused(hr.parse, b"\xc3\x01\x02\x03", "HeaderMalformed", 0)  # a short list: too small for a header
    refused(hr.parse, b"\xf9\x00\x40" + b"\x00" * 64, "HeaderMalformed", 0)  # length with a leading zero
    refused(hr.parse, rlp_list(fields[:14]), "HeaderTooFewFields", 14)
    nested = rlp_list(fields[:3] + [rlp_list([b"\x01"])] + fields[4:])
    offset = 3 + sum(len(f) for f in fields[:3])
    refused(hr.parse, nested, "HeaderMalformed", offset)  # a field that is a list
    loose = rlp_list(fields[:7] + [b"\x81\x00"] + fields[8:])  # a byte below 0x80 in two bytes
    offset = 3 + sum(len(f) for f in fields[:7])
    refused(hr.parse, loose, "HeaderMalformed", offset)
    short_mix = rlp_list(fields[:13] + [rlp_string(b"\x01" * 31)] + fields[14:])
    refused(hr.parse, short_mix, "HeaderFieldInvalid", 13)
    padded = rlp_list(fields[:8] + [rlp_string(b"\x00" + n.to_bytes(2, "big"))] + fields[9:])
    refused(hr.parse, padded, "HeaderFieldInvalid", 8)
    overrun = bytearray(header)
    overrun[3 + sum(len(f) for f in fields[:12])] = 0xB7  # extraData claims 55 bytes
    refused(hr.parse, bytes(overrun), "HeaderMalformed", None)


def test_expired_header_cannot_be_proved(chain, header_randomness, stranger):
    hr = header_randomness
    n, block = past_block(chain)
    header = encode_header(block)
    chain.provider.make_request("anvil_mine", [hex(WINDOW + 1)])
    assert hr.status(n) == (False, True)
    with reverts(hr.RandomnessExpired, blockNumber=n):
        hr.prove(header, sender=stranger)
    refused(hr.randomness, n, "RandomnessExpired", n)
    refused(hr.record, n, "RandomnessExpired", n)


def test_readiness_of_a_future_block(chain, header_randomness):
    hr = header_randomness
    head = chain.blocks.head.number
    assert hr.status(head + 5) == (False, False)
    assert hr.status(head) == (False, False)  # the current block itself: not yet
    refused(hr.randomness, head + 5, "RandomnessNotReady", head + 5, None)
    refused(hr.record, head + 5, "RandomnessNotReady", head + 5, None)


def test_the_last_provable_block(chain, header_randomness, stranger):
    """blockhash(n) is available while n >= block.number - 256: a proof mined in block n + 256 passes."""
    hr = header_randomness
    n, block = past_block(chain)
    head = chain.blocks.head.number
    chain.provider.make_request("anvil_mine", [hex(n + WINDOW - 1 - head)])  # the proof lands in n + 256
    tx = hr.prove(encode_header(block), sender=stranger)
    assert tx.block_number == n + WINDOW
    assert hr.status(n) == (True, False)
