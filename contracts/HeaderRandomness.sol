// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IRandomness} from "./IRandomness.sol";

/// @title Header-proved prevrandao randomness (Ethereum L1 after the merge)
/// @notice The randomness of block `n` is the `prevrandao` (header field 13, `mixHash`) of block `n`
///         itself, kept by anyone calling `prove` with block `n`'s RLP header while `blockhash(n)` is
///         available (the 256 blocks after it). `prevrandao` of block `n` is the RANDAO mix after
///         block `n - 1`: consensus fixes it before block `n` is built, so whoever builds the anchor
///         block cannot grind it (unlike its hash, see `BlockhashRandomness`). What remains is
///         withholding: the proposer of block `n - 1` knows the value first and may skip its slot
///         to re-roll it once (losing its block); with a draw delay D >= 2 the proposer of the block
///         that includes a commitment does not know the value of its anchor when it includes it.
///         Not for L2s (prevrandao is a constant or the L1 origin's) nor for a chain whose
///         prevrandao is not random.
/// @dev Holds no tokens and has no owner. `record` cannot keep a value from the block number alone:
///      it returns when the value is proved and otherwise reverts `HeaderRequired`.
contract HeaderRandomness is IRandomness {
    /// @notice `header` is not a canonical RLP list of byte strings (at byte `offset` of it).
    error HeaderMalformed(uint256 offset);
    /// @notice `header` has `count` fields; a header has at least 15 (up to nonce).
    error HeaderTooFewFields(uint256 count);
    /// @notice Field `field` (8: number, 13: mixHash/prevrandao) does not have its shape.
    error HeaderFieldInvalid(uint256 field);
    /// @notice keccak256(header) is not `blockhash(blockNumber)`: not block `blockNumber`'s header.
    error HeaderMismatch(uint256 blockNumber);
    /// @notice Block `blockNumber`'s prevrandao is zero (no randomness: a pre-merge genesis, a dev chain).
    error ZeroRandomness(uint256 blockNumber);
    /// @notice Block `blockNumber`'s value is kept only by `prove(header)` (its RLP header), not `record`.
    error HeaderRequired(uint256 blockNumber);

    uint256 private constant _NUMBER_FIELD = 8;
    uint256 private constant _MIX_FIELD = 13;
    uint256 private constant _MIN_FIELDS = 15;

    /// @notice prevrandao values kept by `prove`, by block number (zero = not proved).
    mapping(uint256 blockNumber => bytes32) public proved;

    /// @notice Keeps block `n`'s prevrandao for good, `n` being the number in `header` (anyone, while
    ///         `blockhash(n)` is available; idempotent: a proved block returns its kept value).
    /// @param header The block's RLP-encoded header, exactly as hashed by the chain (any fork's field
    ///        list: pre-London to Prague and later, which only append fields).
    /// @return blockNumber The header's block number.
    /// @return value Its prevrandao, now `randomness(blockNumber)`.
    function prove(bytes calldata header) external returns (uint256 blockNumber, bytes32 value) {
        (blockNumber, value) = _parse(header);
        bytes32 kept = proved[blockNumber];
        if (kept != bytes32(0)) return (blockNumber, kept);
        if (blockNumber >= block.number) revert RandomnessNotReady(blockNumber, block.number);
        bytes32 h = blockhash(blockNumber);
        if (h == bytes32(0)) revert RandomnessExpired(blockNumber);
        if (keccak256(header) != h) revert HeaderMismatch(blockNumber);
        if (value == bytes32(0)) revert ZeroRandomness(blockNumber);
        proved[blockNumber] = value;
        emit RandomnessRecorded(blockNumber, value);
    }

    /// @notice (block number, mixHash/prevrandao) of an RLP header, without checking it against the
    ///         chain (reverts as `prove` does on a malformed header).
    function parse(bytes calldata header) external pure returns (uint256 blockNumber, bytes32 value) {
        return _parse(header);
    }

    /// @inheritdoc IRandomness
    /// @dev `RandomnessNotReady` also while block `blockNumber` is past but not proved and still provable.
    function randomness(uint256 blockNumber) external view returns (bytes32 value) {
        if (block.number <= blockNumber) revert RandomnessNotReady(blockNumber, block.number);
        value = proved[blockNumber];
        if (value != bytes32(0)) return value;
        if (blockhash(blockNumber) != bytes32(0)) revert RandomnessNotReady(blockNumber, block.number);
        revert RandomnessExpired(blockNumber);
    }

    /// @inheritdoc IRandomness
    function status(uint256 blockNumber) external view returns (bool ready, bool expired) {
        if (block.number <= blockNumber) return (false, false);
        if (proved[blockNumber] != bytes32(0)) return (true, false);
        return (false, blockhash(blockNumber) == bytes32(0));
    }

    /// @inheritdoc IRandomness
    /// @dev Returns when block `blockNumber` is proved; otherwise reverts `RandomnessNotReady`,
    ///      `RandomnessExpired` or, while it is provable, `HeaderRequired` (call `prove(header)`).
    function record(uint256 blockNumber) external view {
        if (block.number <= blockNumber) revert RandomnessNotReady(blockNumber, block.number);
        if (proved[blockNumber] != bytes32(0)) return;
        if (blockhash(blockNumber) == bytes32(0)) revert RandomnessExpired(blockNumber);
        revert HeaderRequired(blockNumber);
    }

    /// @dev Walks the header's RLP list: every field a canonical byte string, the list exactly the
    ///      input; returns field 8 (number, at most 32 bytes, no leading zero) and field 13 (32 bytes).
    function _parse(bytes calldata header) private pure returns (uint256 number, bytes32 mix) {
        uint256 base;
        assembly ("memory-safe") {
            base := header.offset
        }
        uint256 end = base + header.length;
        // A header is a long list (its logs bloom alone is 256 bytes): 0xf8..0xff, then its length.
        if (header.length == 0 || _byteAt(base) < 0xf8) revert HeaderMalformed(0);
        uint256 p;
        unchecked {
            uint256 ll = _byteAt(base) - 0xf7;
            uint256 payload = _length(base, base + 1, ll, end);
            p = base + 1 + ll;
            if (payload != end - p) revert HeaderMalformed(0);
        }
        uint256 i;
        while (p < end) {
            uint256 b = _byteAt(p);
            uint256 s;
            uint256 n;
            unchecked {
                if (b < 0x80) {
                    (s, n) = (p, 1);
                } else if (b < 0xb8) {
                    (s, n) = (p + 1, b - 0x80);
                    // a single byte below 0x80 is its own encoding
                    if (n == 1 && s < end && _byteAt(s) < 0x80) revert HeaderMalformed(p - base);
                } else if (b < 0xc0) {
                    uint256 l = b - 0xb7;
                    n = _length(base, p + 1, l, end);
                    s = p + 1 + l;
                } else {
                    revert HeaderMalformed(p - base); // a list: no header field is one
                }
                if (n > end - s) revert HeaderMalformed(p - base); // s <= end here
            }
            if (i == _NUMBER_FIELD) {
                if (n > 32 || (n > 0 && _byteAt(s) == 0)) revert HeaderFieldInvalid(_NUMBER_FIELD);
                if (n > 0) number = _word(s) >> (256 - 8 * n);
            } else if (i == _MIX_FIELD) {
                if (n != 32 || b != 0xa0) revert HeaderFieldInvalid(_MIX_FIELD);
                mix = bytes32(_word(s));
            }
            unchecked {
                p = s + n;
                ++i;
            }
        }
        if (i < _MIN_FIELDS) revert HeaderTooFewFields(i);
    }

    /// @dev The `l`-byte (1..8) big-endian length at calldata offset `q`, canonical (no leading zero,
    ///      at least 56: shorter payloads use the short form); the input starts at `base`, ends at `end`.
    function _length(uint256 base, uint256 q, uint256 l, uint256 end) private pure returns (uint256 n) {
        unchecked {
            if (l > end - q || _byteAt(q) == 0) revert HeaderMalformed(q - 1 - base);
            n = _word(q) >> (256 - 8 * l);
            if (n < 56) revert HeaderMalformed(q - 1 - base);
        }
    }

    function _byteAt(uint256 q) private pure returns (uint256 b) {
        assembly ("memory-safe") {
            b := byte(0, calldataload(q))
        }
    }

    function _word(uint256 q) private pure returns (uint256 w) {
        assembly ("memory-safe") {
            w := calldataload(q)
        }
    }
}
