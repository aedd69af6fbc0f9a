// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title The market side of the market/court boundary: what VerificationCourt calls
/// @notice JobMarket implements these (IJobMarket declares them with the same names); the court
///         owns draws, audits, juries and canaries, the market owns escrow and job status.
interface IMarketForCourt {
    /// @notice How a verification ended; the market moves the escrow by a fixed table (`settle`).
    enum Outcome {
        None,
        ProviderRight, // the submission stands (audit agreed, or the jury/arbiter confirmed it)
        ProviderWrong, // the submission was wrong: provider's collateral slashed to the court
        Split, // jurors of the provider's platform class disagreed among themselves: nondeterministic
        Unaudited, // drawn, but no verifier took the audit after every redraw (or the pool was empty)
        Canary // the job was a canary (its provider is the canary operator): nobody is paid for it
    }

    /// @notice What the court needs to know about a job (one call).
    struct VerificationInfo {
        uint8 status; // IJobMarket.JobStatus (3 = Submitted, 4 = Disputed)
        address requester;
        address provider;
        uint96 reward; // R
        uint96 collateral; // k * R, locked in staking
        uint96 auditFee; // the audit escrow E = A + 3w, escrowed at post (0 for verify-none jobs)
        bytes32 commitment; // keccak256(abi.encode(provider, jobId, digest, salt)) as submitted
        uint8 failureCode; // 0 for a result
        uint24 maxRuntime;
        uint32 submitTime; // when the commitment was included
        uint64 anchorBlock; // submitBlock + D: the block whose randomness draws this job
        uint16 auditBps; // p_job in basis points, snapshotted at post (0 for verify-none jobs)
        address court; // the court snapshotted for this job at post
        uint32 challengeDeadline; // submitTime + the job's challengeWindow (added by the court, C2)
    }

    /// @notice Whether job `jobId` is drawn for audit: keccak256(abi.encode(r, jobId)) % 10_000 <
    ///         auditBps with r = randomness(anchorBlock). Expired randomness counts as drawn.
    ///         Reverts `RandomnessNotReady` before the anchor block's randomness exists.
    function isDrawn(uint256 jobId) external view returns (bool);

    function verificationInfo(uint256 jobId) external view returns (VerificationInfo memory);

    /// @notice Court only (the job's snapshotted court): Submitted -> Disputed ("under verification").
    function beginVerification(uint256 jobId) external;

    /// @notice Court only: ends a Disputed job with `outcome`, moves the escrow by the table of
    ///         IMarketCourt.sol and transfers the tokens "-> court" to the court in the same call:
    ///         ProviderRight / Split / Canary: E; ProviderWrong: E + the whole collateral; Unaudited: 0
    ///         (the court pays the auditor A = E - 3w, the jury from the 3w on a Split, and returns the rest).
    /// @return toCourt Tokens transferred to the court by this call.
    function settle(uint256 jobId, Outcome outcome) external returns (uint96 toCourt);

    /// @notice The randomness source (IRandomness) the market draws jobs with; the court draws
    ///         its seats from the same source.
    function randomness() external view returns (address);

    /// @notice D: blocks between a submission and its anchor block (>= 1).
    function drawDelay() external view returns (uint64);

    /// @notice The largest reward a post may offer now (the court keeps minStake >= sigma * it).
    function maxReward() external view returns (uint256);
}
