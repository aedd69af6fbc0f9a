// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IRandomness} from "./IRandomness.sol";

/// @title Block-hash randomness (anvil, L1)
/// @notice The randomness of block `n` is `blockhash(n)`: readable once the chain is past `n`, for
///         the 256 blocks the EVM keeps, and for good once anyone has called `record(n)` in that
///         time. On L2s, where the sequencer chooses block hashes, use a beacon instead.
/// @dev Holds no tokens and has no owner.
contract BlockhashRandomness is IRandomness {
    /// @notice Values kept by `record`, by block number.
    mapping(uint256 blockNumber => bytes32) public recorded;

    /// @inheritdoc IRandomness
    function randomness(uint256 blockNumber) external view returns (bytes32 value) {
        if (block.number <= blockNumber) revert RandomnessNotReady(blockNumber, block.number);
        value = blockhash(blockNumber);
        if (value != bytes32(0)) return value;
        value = recorded[blockNumber];
        if (value == bytes32(0)) revert RandomnessExpired(blockNumber);
    }

    /// @inheritdoc IRandomness
    function status(uint256 blockNumber) external view returns (bool ready, bool expired) {
        if (block.number <= blockNumber) return (false, false);
        if (blockhash(blockNumber) != bytes32(0) || recorded[blockNumber] != bytes32(0)) return (true, false);
        return (false, true);
    }

    /// @inheritdoc IRandomness
    function record(uint256 blockNumber) external {
        if (block.number <= blockNumber) revert RandomnessNotReady(blockNumber, block.number);
        if (recorded[blockNumber] != bytes32(0)) return;
        bytes32 value = blockhash(blockNumber);
        if (value == bytes32(0)) revert RandomnessExpired(blockNumber);
        recorded[blockNumber] = value;
        emit RandomnessRecorded(blockNumber, value);
    }
}
