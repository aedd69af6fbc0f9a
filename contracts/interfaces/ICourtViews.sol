// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

interface ICourtViews {
    function requiredChallengeWindow() external view returns (uint256);
    function maxHorizon(uint24 maxRuntime) external view returns (uint256);
}
