// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Dispute resolver
/// @notice Decides disputed jobs for the job market. The market calls `disputeOpened` when a
///         result (or failure) is challenged; the resolver later calls
///         `IJobMarket.resolveDispute(jobId, ruling)` from its own address. A resolver that never
///         rules cannot strand funds: after the market's resolve window anyone may settle the
///         dispute with no ruling.
interface IDisputeResolver {
    /// @notice Called by the market when `jobId` becomes disputed.
    /// @param jobId The disputed job.
    /// @param provider The provider whose submission is challenged.
    /// @param challenger The account that posted the challenge bond.
    /// @param resolveDeadline The time after which the market accepts settlement without a ruling.
    function disputeOpened(uint256 jobId, address provider, address challenger, uint32 resolveDeadline) external;
}
