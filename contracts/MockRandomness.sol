// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {IRandomness} from "./IRandomness.sol";

/// @title Settable randomness for tests and simulations (never for a real deployment)
/// @notice The randomness of block `n` is the admin's override for `n` if set, else
///         keccak256(abi.encode(seed, n)). Ready once `block.number > n`; never expires, so
///         `record` is a no-op. The admin can force any draw: it is a trusted key.
/// @dev Holds no tokens.
contract MockRandomness is IRandomness, AccessControl {
    /// @notice The seed of every value without an override.
    bytes32 public seed;
    /// @notice Per-block overrides (zero = none).
    mapping(uint256 blockNumber => bytes32) public overrides;

    /// @notice The admin changed the seed.
    event SeedSet(bytes32 seed);
    /// @notice The admin set block `blockNumber`'s value to `value` (zero clears the override).
    event ValueSet(uint256 indexed blockNumber, bytes32 value);

    /// @param admin Receives DEFAULT_ADMIN_ROLE (may set the seed and overrides).
    /// @param seed_ The initial seed.
    constructor(address admin, bytes32 seed_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        seed = seed_;
        emit SeedSet(seed_);
    }

    /// @notice Sets the seed (admin).
    function setSeed(bytes32 seed_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        seed = seed_;
        emit SeedSet(seed_);
    }

    /// @notice Overrides the value of block `blockNumber` (admin; zero clears the override).
    function setValue(uint256 blockNumber, bytes32 value) external onlyRole(DEFAULT_ADMIN_ROLE) {
        overrides[blockNumber] = value;
        emit ValueSet(blockNumber, value);
    }

    /// @inheritdoc IRandomness
    function randomness(uint256 blockNumber) external view returns (bytes32) {
        if (block.number <= blockNumber) revert RandomnessNotReady(blockNumber, block.number);
        return _value(blockNumber);
    }

    /// @inheritdoc IRandomness
    function status(uint256 blockNumber) external view returns (bool ready, bool expired) {
        return (block.number > blockNumber, false);
    }

    /// @inheritdoc IRandomness
    /// @dev A no-op: mock values never expire.
    function record(uint256 blockNumber) external {}

    function _value(uint256 blockNumber) private view returns (bytes32 v) {
        v = overrides[blockNumber];
        if (v == bytes32(0)) v = keccak256(abi.encode(seed, blockNumber));
    }
}
