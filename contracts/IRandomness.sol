// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Randomness revealed only after the block it is anchored to
/// @notice The verification draw of a job reads the randomness of block `anchor = submitBlock + D`
///         (D >= 1), a block that did not exist when the commitment was included, so nothing the
///         submitter knew or chose at submission feeds the draw. Implementations:
///         - `BlockhashRandomness`: `blockhash(anchor)` (anvil, L1; within 256 blocks, or kept for
///           good by anyone calling `record` while it is available); the anchor block's builder
///           can grind it;
///         - `HeaderRandomness`: the anchor block's `prevrandao`, kept by anyone proving the
///           block's RLP header against `blockhash` within 256 blocks (`prove`); readable only once
///           proved (L1 after the merge; builders cannot grind it);
///         - `MockRandomness`: keccak256(seed, anchor), with per-block overrides (tests, `make sim`);
///         - a beacon (VRF, drand) on L2s, where block hashes are sequencer-chosen.
interface IRandomness {
    /// @notice Block `blockNumber`'s randomness is not readable yet (the current block is
    ///         `current`): it is once `current > blockNumber` and, for a source that needs a proof
    ///         (`HeaderRandomness`), once it is proved.
    error RandomnessNotReady(uint256 blockNumber, uint256 current);
    /// @notice Block `blockNumber`'s randomness is no longer available and was never recorded.
    error RandomnessExpired(uint256 blockNumber);

    /// @notice Block `blockNumber`'s randomness was recorded for good.
    event RandomnessRecorded(uint256 indexed blockNumber, bytes32 value);

    /// @notice The randomness of block `blockNumber`. Reverts `RandomnessNotReady` until
    ///         `block.number > blockNumber` (and, for a source that needs a proof, until it is
    ///         proved), `RandomnessExpired` if it is gone.
    function randomness(uint256 blockNumber) external view returns (bytes32);

    /// @notice (`ready`, `expired`) for block `blockNumber`, without reverting.
    function status(uint256 blockNumber) external view returns (bool ready, bool expired);

    /// @notice Keeps block `blockNumber`'s randomness for good while it is still available (anyone;
    ///         idempotent; a no-op where randomness never expires). A source that cannot keep it
    ///         from the block number alone (`HeaderRandomness`: it needs the block's header) returns
    ///         when it is kept already and otherwise reverts, naming its own way to keep it.
    function record(uint256 blockNumber) external;
}
