// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IMarketForCourt} from "./IMarketForCourt.sol";
import {IRandomness} from "./IRandomness.sol";

/// @title A market stub for the court's tests: settable jobs, the court-side boundary only
/// @notice `createJob` records a Submitted job (status 3) submitted now, anchored at block.number +
///         drawDelay. The stub must hold the tokens it sends: on `settle` it transfers to the court
///         the job's audit fee plus collateral (ProviderWrong) or audit fee (ProviderRight, Split,
///         Canary), 0 for Unaudited, as JobMarket does. Tests only.
contract MarketStub is IMarketForCourt {
    using SafeERC20 for IERC20;

    error NotCourt(address caller);
    error BadStatus(uint8 status);

    event VerificationStarted(uint256 indexed jobId, address court);
    event JobSettled(uint256 indexed jobId, Outcome outcome, uint96 toCourt);

    IERC20 public immutable token;
    address public immutable randomness;
    uint64 public immutable drawDelay;
    uint256 public jobCount;
    /// @notice What the court reads as the market's reward cap (`setMaxReward`; 0 until set).
    uint256 public maxReward;

    mapping(uint256 jobId => VerificationInfo) private _jobs;
    mapping(uint256 jobId => Outcome) public settledOutcome;

    constructor(address token_, address randomness_, uint64 drawDelay_) {
        token = IERC20(token_);
        randomness = randomness_;
        drawDelay = drawDelay_;
    }

    function setMaxReward(uint256 maxReward_) external {
        maxReward = maxReward_;
    }

    function createJob(
        address requester,
        address provider,
        uint96 reward,
        uint96 collateral,
        uint96 auditFee,
        bytes32 commitment,
        uint24 maxRuntime,
        uint32 challengeWindow,
        uint16 auditBps,
        address court
    ) external returns (uint256 jobId) {
        jobId = ++jobCount;
        _jobs[jobId] = VerificationInfo({
            status: 3,
            requester: requester,
            provider: provider,
            reward: reward,
            collateral: collateral,
            auditFee: auditFee,
            commitment: commitment,
            failureCode: 0,
            maxRuntime: maxRuntime,
            submitTime: uint32(block.timestamp),
            anchorBlock: uint64(block.number + drawDelay),
            auditBps: auditBps,
            court: court,
            challengeDeadline: uint32(block.timestamp + challengeWindow)
        });
    }

    function isDrawn(uint256 jobId) external view returns (bool) {
        VerificationInfo storage j = _jobs[jobId];
        bytes32 r = IRandomness(randomness).randomness(j.anchorBlock);
        return uint256(keccak256(abi.encode(r, jobId))) % 10_000 < j.auditBps;
    }

    function verificationInfo(uint256 jobId) external view returns (VerificationInfo memory) {
        return _jobs[jobId];
    }

    function beginVerification(uint256 jobId) external {
        VerificationInfo storage j = _jobs[jobId];
        if (msg.sender != j.court) revert NotCourt(msg.sender);
        if (j.status != 3) revert BadStatus(j.status);
        j.status = 4;
        emit VerificationStarted(jobId, msg.sender);
    }

    function settle(uint256 jobId, Outcome outcome) external returns (uint96 toCourt) {
        VerificationInfo storage j = _jobs[jobId];
        if (msg.sender != j.court) revert NotCourt(msg.sender);
        if (j.status != 4) revert BadStatus(j.status);
        j.status = 9;
        settledOutcome[jobId] = outcome;
        if (outcome == Outcome.ProviderWrong) toCourt = j.collateral + j.auditFee;
        else if (outcome != Outcome.Unaudited) toCourt = j.auditFee;
        emit JobSettled(jobId, outcome, toCourt);
        if (toCourt > 0) token.safeTransfer(msg.sender, toCourt);
    }
}
