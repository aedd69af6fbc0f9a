"""depin.chain.header: a block's RLP header from the node's JSON fields, as the chain hashed it."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from depin.chain.header import HeaderError, encode_header, header_fields, rlp_list, rlp_string

# Block 2 of anvil 1.7.1 (Prague: 21 header fields up to requestsHash), from eth_getBlockByNumber.
PRAGUE_BLOCK = {
    "hash": "0xa4446caa6df9036048d6bdeb266800f6cd64df0ebf2d2c8a5cf475ff83e9bc72",
    "parentHash": "0xaf0c9211b54a7a5fc1dea5e8c74d8de6f7da79ac49426c3c8ad3cd9631eab4c6",
    "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
    "miner": "0x0000000000000000000000000000000000000000",
    "stateRoot": "0xb8ab3fcfb2aa93429855e63de415a1af40fa678d8c93744da6c8e7a28d0acac2",
    "transactionsRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
    "receiptsRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
    "logsBloom": "0x" + "00" * 256,
    "difficulty": "0x0",
    "number": "0x2",
    "gasLimit": "0x1c9c380",
    "gasUsed": "0x0",
    "timestamp": "0x6b146602",
    "extraData": "0x",
    "mixHash": "0x7b2111c8f2e897203ec082fc2b690c7e9df118e092096e55535fbc7ae6724c29",
    "nonce": "0x0000000000000000",
    "baseFeePerGas": "0x342770c0",
    "withdrawalsRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
    "blobGasUsed": "0x0",
    "excessBlobGas": "0x0",
    "parentBeaconBlockRoot": "0x" + "00" * 32,
    "requestsHash": "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "totalDifficulty": "0x0",
    "size": "0x267",
    "uncles": [],
    "transactions": [],
    "withdrawals": [],
}


def test_the_encoding_hashes_to_the_block_hash():
    header = encode_header(PRAGUE_BLOCK)
    assert keccak(header) == bytes.fromhex(PRAGUE_BLOCK["hash"][2:])
    fields = header_fields(PRAGUE_BLOCK)
    assert len(fields) == 21
    assert fields[8] == b"\x02" and fields[7] == b"" and fields[12] == b""


def test_older_forks_keep_a_prefix_of_the_fork_fields():
    later = {"withdrawalsRoot", "blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot", "requestsHash"}
    london = {k: v for k, v in PRAGUE_BLOCK.items() if k not in later}
    assert len(header_fields(london)) == 16
    gap = dict(PRAGUE_BLOCK, withdrawalsRoot=None)
    with pytest.raises(HeaderError, match="out of order"):
        header_fields(gap)
    with pytest.raises(HeaderError, match="mixHash"):
        header_fields({k: v for k, v in PRAGUE_BLOCK.items() if k != "mixHash"})


@pytest.mark.parametrize(
    ("data", "encoded"),
    [
        (b"", b"\x80"),
        (b"\x00", b"\x00"),
        (b"\x7f", b"\x7f"),
        (b"\x80", b"\x81\x80"),
        (b"a" * 55, b"\xb7" + b"a" * 55),
        (b"a" * 56, b"\xb8\x38" + b"a" * 56),
        (b"a" * 256, b"\xb9\x01\x00" + b"a" * 256),
    ],
)
def test_rlp_strings(data, encoded):
    assert rlp_string(data) == encoded


def test_rlp_lists():
    assert rlp_list([]) == b"\xc0"
    assert rlp_list([b"\x01" * 56]) == b"\xf8\x38" + b"\x01" * 56
