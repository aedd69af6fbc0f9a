"""Block headers as the chain hashed them: the RLP a ``HeaderRandomness.prove`` call sends.

:func:`encode_header` RLP-encodes a block from the node's JSON fields (``eth_getBlockByNumber``) in
the consensus order, every fork's fields that the block has: the 15 fields up to ``nonce``, then
``baseFeePerGas`` (London), ``withdrawalsRoot`` (Shanghai), ``blobGasUsed``, ``excessBlobGas``,
``parentBeaconBlockRoot`` (Cancun) and ``requestsHash`` (Prague). :func:`block_header` fetches a
block and checks locally that the encoding hashes to the node's block hash before anyone sends it:
a fork whose fields this module does not know yet fails here, not on chain.
"""

from __future__ import annotations

from typing import Any

from eth_utils import keccak

from depin.chain import RpcClient
from depin.errors import ChainError

# (JSON field, kind): "data" fields are byte strings as given, "quantity" fields integers encoded
# big-endian without leading zeros (zero is the empty string).
_BASE_FIELDS: tuple[tuple[str, str], ...] = (
    ("parentHash", "data"),
    ("sha3Uncles", "data"),
    ("miner", "data"),
    ("stateRoot", "data"),
    ("transactionsRoot", "data"),
    ("receiptsRoot", "data"),
    ("logsBloom", "data"),
    ("difficulty", "quantity"),
    ("number", "quantity"),
    ("gasLimit", "quantity"),
    ("gasUsed", "quantity"),
    ("timestamp", "quantity"),
    ("extraData", "data"),
    ("mixHash", "data"),
    ("nonce", "data"),
)
# Appended by later forks, in order: a header has a prefix of them.
_FORK_FIELDS: tuple[tuple[str, str], ...] = (
    ("baseFeePerGas", "quantity"),  # London
    ("withdrawalsRoot", "data"),  # Shanghai
    ("blobGasUsed", "quantity"),  # Cancun
    ("excessBlobGas", "quantity"),
    ("parentBeaconBlockRoot", "data"),
    ("requestsHash", "data"),  # Prague
)
NUMBER_FIELD = 8
MIX_HASH_FIELD = 13  # prevrandao after the merge


class HeaderError(ChainError):
    """A block's JSON fields do not encode to a header hashing to its block hash (or it is missing)."""


def rlp_string(data: bytes) -> bytes:
    """The RLP encoding of the byte string `data`."""
    if len(data) == 1 and data[0] < 0x80:
        return data
    return _rlp_length(len(data), 0x80) + data


def rlp_list(items: list[bytes]) -> bytes:
    """The RLP encoding of a list whose items are already encoded."""
    payload = b"".join(items)
    return _rlp_length(len(payload), 0xC0) + payload


def _rlp_length(n: int, offset: int) -> bytes:
    if n <= 55:
        return bytes([offset + n])
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(size)]) + size


def _field(value: Any, kind: str) -> bytes:
    text = str(value)
    if kind == "quantity":
        n = int(text, 16) if isinstance(value, str) else int(value)
        return n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes.fromhex(text.removeprefix("0x"))


def header_fields(block: dict[str, Any]) -> list[bytes]:
    """The header's fields as byte strings, in consensus order (the fork fields the block has)."""
    missing = [name for name, _ in _BASE_FIELDS if block.get(name) is None]
    if missing:
        raise HeaderError(f"block {block.get('number')} has no {', '.join(missing)}")
    fields = [_field(block[name], kind) for name, kind in _BASE_FIELDS]
    present = [block.get(name) is not None for name, _ in _FORK_FIELDS]
    count = present.index(False) if False in present else len(present)
    if any(present[count:]):
        raise HeaderError(f"block {block.get('number')} has fork fields out of order: {present}")
    fields += [_field(block[name], kind) for name, kind in _FORK_FIELDS[:count]]
    return fields


def encode_header(block: dict[str, Any]) -> bytes:
    """The RLP header of `block` (the node's JSON fields), as the chain hashes it."""
    return rlp_list([rlp_string(f) for f in header_fields(block)])


def block_header(rpc: RpcClient, number: int) -> bytes:
    """Block `number`'s RLP header, checked locally: its keccak256 is the node's block hash."""
    block = rpc.get_block(number)
    if not block:
        raise HeaderError(f"block {number} not found")
    header = encode_header(block)
    expected = bytes.fromhex(str(block.get("hash", "")).removeprefix("0x"))
    if keccak(header) != expected:
        raise HeaderError(f"block {number}: the encoded header hashes to 0x{keccak(header).hex()}, not {block.get('hash')}")
    return header
