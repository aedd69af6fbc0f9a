// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {IArbiterResolver} from "./interfaces/IArbiterResolver.sol";
import {IDisputeResolver} from "./interfaces/IDisputeResolver.sol";
import {IJobMarket} from "./interfaces/IJobMarket.sol";

/// @title Arbiter resolver (see IArbiterResolver)
/// @dev Invariant: this contract never holds tokens; bonds and collateral stay in the market and
///      the staking contract. It only records open disputes and forwards rulings.
contract ArbiterResolver is IArbiterResolver, AccessControl {
    /// @inheritdoc IArbiterResolver
    bytes32 public constant ARBITER_ROLE = keccak256("ARBITER_ROLE");

    /// @inheritdoc IArbiterResolver
    IJobMarket public immutable market;

    /// @inheritdoc IArbiterResolver
    mapping(uint256 jobId => bool) public isOpen;

    constructor(address market_, address admin) {
        market = IJobMarket(market_);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IDisputeResolver
    function disputeOpened(uint256 jobId, address provider, address challenger, uint32 resolveDeadline) external {
        if (msg.sender != address(market)) revert NotMarket(msg.sender);
        isOpen[jobId] = true;
        emit DisputeReceived(jobId, provider, challenger, resolveDeadline);
    }

    /// @inheritdoc IArbiterResolver
    /// @dev `ruling` must be ProviderWins or ChallengerWins; the market pays out in the same transaction.
    function rule(uint256 jobId, IJobMarket.Ruling ruling, bytes32 evidenceHash) external onlyRole(ARBITER_ROLE) {
        if (!isOpen[jobId]) revert NoOpenDispute(jobId);
        isOpen[jobId] = false;
        emit Ruled(jobId, msg.sender, ruling, evidenceHash);
        market.resolveDispute(jobId, ruling);
    }
}
