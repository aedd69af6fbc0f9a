// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IRandomness} from "./IRandomness.sol";

/// @title Test randomness: a settable value per block (default keccak256(abi.encode(blockNumber)))
/// @notice Ready iff block.number > blockNumber; never expires. Tests only.
contract StubRandomness is IRandomness {
    mapping(uint256 blockNumber => bytes32) private _values;

    function setValue(uint256 blockNumber, bytes32 value) external {
        _values[blockNumber] = value;
    }

    function randomness(uint256 blockNumber) external view returns (bytes32) {
        if (block.number <= blockNumber) revert RandomnessNotReady(blockNumber, block.number);
        bytes32 v = _values[blockNumber];
        return v != bytes32(0) ? v : keccak256(abi.encode(blockNumber));
    }

    function status(uint256 blockNumber) external view returns (bool ready, bool expired) {
        return (block.number > blockNumber, false);
    }

    function record(uint256) external {}
}
