// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ICourtViews} from "./ICourtViews.sol";
import {IJobMarket} from "./IJobMarket.sol";

/// @title A stand-in court for tests and the devnet until VerificationCourt ships
/// @notice Implements the views the market checks (`requiredChallengeWindow`, `maxHorizon`,
///         `minAuditFeeBps`), all set by anyone (a test fixture, never a real deployment), and passes
///         `beginVerification` / `settle` through to the market so that tests can drive every
///         `Outcome`. Tokens the market sends here stay here (`received` counts them).
/// @dev No access control: anyone can settle any job of this court. Test use only.
contract TestCourt is ICourtViews {
    /// @notice The market whose jobs this court settles.
    IJobMarket public immutable market;
    /// @notice What `requiredChallengeWindow()` returns (seconds).
    uint256 public requiredWindow;
    /// @notice What `maxHorizon(maxRuntime)` returns for every runtime (seconds).
    uint256 public horizon;
    /// @notice Tokens the market transferred here through `settle` (escrow and collateral).
    uint256 public received;

    /// @notice What `minAuditFeeBps()` returns (1.1 R until set: no jury deposit required).
    uint256 public auditFloor = 11_000;

    /// @notice What `maxVerifiableReward()` returns (the reward field's limit until set).
    uint256 public maxVerifiableReward = type(uint80).max;

    /// @param market_ The market; `requiredWindow_` and `horizon_` the views' initial answers.
    constructor(address market_, uint256 requiredWindow_, uint256 horizon_) {
        market = IJobMarket(market_);
        requiredWindow = requiredWindow_;
        horizon = horizon_;
    }

    /// @notice Sets what the views return.
    function setViews(uint256 requiredWindow_, uint256 horizon_) external {
        requiredWindow = requiredWindow_;
        horizon = horizon_;
    }

    /// @inheritdoc ICourtViews
    function requiredChallengeWindow() external view returns (uint256) {
        return requiredWindow;
    }

    /// @notice Sets what `maxVerifiableReward()` returns.
    function setMaxVerifiableReward(uint256 maxVerifiableReward_) external {
        maxVerifiableReward = maxVerifiableReward_;
    }

    /// @notice Sets what `minAuditFeeBps()` returns.
    function setAuditFloor(uint256 auditFloor_) external {
        auditFloor = auditFloor_;
    }

    /// @inheritdoc ICourtViews
    function minAuditFeeBps() external view returns (uint256) {
        return auditFloor;
    }

    /// @inheritdoc ICourtViews
    function maxHorizon(uint24) external view returns (uint256) {
        return horizon;
    }

    /// @notice Starts verifying `jobId` (market.beginVerification).
    function begin(uint256 jobId) external {
        market.beginVerification(jobId);
    }

    /// @notice Ends `jobId` with `outcome` (market.settle).
    function settle(uint256 jobId, IJobMarket.Outcome outcome) external returns (uint96 toCourt) {
        toCourt = market.settle(jobId, outcome);
        received += toCourt;
    }
}
