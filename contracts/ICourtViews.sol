// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title What the job market reads from a verification court
/// @notice The views `JobMarket.setParams` checks its parameters against. The court's full
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

    /// @notice The least audit escrow E (basis points of R) a reexec job must escrow at post: the
    ///         audit pay A >= 1.1 R plus the jury deposit J = 3 * w that pays the first jury when it
    ///         splits (a nondeterministic job: the requester that declared it re-executable pays).
    ///         The court pays the auditor A = E - 3 * w and refunds what is left of E to the requester.
    ///         The market checks its `auditFeeBps` against it in `setParams`.
    function minAuditFeeBps() external view returns (uint256);

    /// @notice The largest reward every verifier the court admits can be seated for: minStake /
    ///         sigma (`canarySlashMul`) with the current parameters, since a seat needs sigma * R of
    ///         stake. The market's `maxReward` must not exceed it (checked by both contracts'
    ///         `setParams`): above it a draw could find no seat filled and the job settle Unaudited.
    function maxVerifiableReward() external view returns (uint256);
}
