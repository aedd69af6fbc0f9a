// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IDisputeResolver} from "./IDisputeResolver.sol";
import {IJobMarket} from "./IJobMarket.sol";

/// @title Arbiter resolver: a trusted role re-executes disputed jobs and rules
/// @notice The first `IDisputeResolver`: holders of `ARBITER_ROLE` (an executor in arbiter mode,
///         after re-running the job, as Lilypad's mediator does) rule which side was right. The
///         market opens a dispute here (`disputeOpened`); an arbiter's `rule` forwards the ruling to
///         `IJobMarket.resolveDispute`. A later resolver can replace it with a committee of staked
///         verifiers voting by commit-reveal.
interface IArbiterResolver is IDisputeResolver {
    /// @notice The dispute on `jobId` is waiting for a ruling until `resolveDeadline`.
    event DisputeReceived(uint256 indexed jobId, address provider, address challenger, uint32 resolveDeadline);
    /// @notice `arbiter` ruled `ruling` on `jobId`, with `evidenceHash` pointing at its re-execution.
    event Ruled(uint256 indexed jobId, address indexed arbiter, IJobMarket.Ruling ruling, bytes32 evidenceHash);

    /// @notice Only the market may open disputes; `caller` is not it.
    error NotMarket(address caller);
    /// @notice No dispute on `jobId` is waiting for a ruling here.
    error NoOpenDispute(uint256 jobId);

    /// @notice Rules on the open dispute of `jobId` and forwards the ruling to the market.
    ///         `ARBITER_ROLE` only; `evidenceHash` names the arbiter's own re-execution.
    function rule(uint256 jobId, IJobMarket.Ruling ruling, bytes32 evidenceHash) external;

    /// @notice Whether a dispute on `jobId` waits for a ruling here.
    function isOpen(uint256 jobId) external view returns (bool);

    /// @notice The market whose disputes this resolver rules on.
    function market() external view returns (IJobMarket);

    /// @notice The role allowed to rule.
    function ARBITER_ROLE() external view returns (bytes32);
}
