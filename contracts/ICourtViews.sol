// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title What the job market reads from a verification court
/// @notice The two views `JobMarket.setParams` checks its parameters against. The court's full
///         interface (`IVerificationCourt`) extends this one.
interface ICourtViews {
    /// @notice Seconds a job's challenge window must at least last for a drawn verifier to see the
    ///         draw and call `startAudit`: D blocks (at the court's `blockTime`) + start window +
    ///         inclusion. The market checks its `minChallengeWindow` (hence every job's
    ///         challengeWindow) against it in `setParams`.
    function requiredChallengeWindow() external view returns (uint256);

    /// @notice The longest a verification of a job with runtime `maxRuntime` can last after its
    ///         challenge window: every round with its redraws, commit, reveal and appeal windows and
    ///         the arbiter's timelock. The market requires staking's unbonding delay to cover
    ///         maxClaimWindow + maxRuntime + maxChallengeWindow + maxHorizon(maxRuntime).
    function maxHorizon(uint24 maxRuntime) external view returns (uint256);
}
