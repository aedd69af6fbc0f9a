// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {IDisputeResolver} from "./interfaces/IDisputeResolver.sol";
import {IJobMarket} from "./interfaces/IJobMarket.sol";

/// @title Arbiter resolver: a trusted role re-executes disputed jobs and rules
/// @notice The first `IDisputeResolver`: holders of `ARBITER_ROLE` (an executor in arbiter mode,
///         after re-running the job, as Lilypad's mediator does) rule which side was right. A later
///         resolver can replace it with a committee of staked verifiers voting by commit-reveal.
/// @dev Invariant: this contract never holds tokens; bonds and collateral stay in the market and
///      the staking contract. It only records open disputes and forwards rulings.
contract ArbiterResolver is IDisputeResolver, AccessControl {
    bytes32 public constant ARBITER_ROLE = keccak256("ARBITER_ROLE");

    IJobMarket public immutable market;

    /// @notice The dispute on `jobId` is waiting for a ruling until `resolveDeadline`.
    event DisputeReceived(uint256 indexed jobId, address provider, address challenger, uint32 resolveDeadline);
    /// @notice `arbiter` ruled `ruling` on `jobId`, with `evidenceHash` pointing at its re-execution.
    event Ruled(uint256 indexed jobId, address indexed arbiter, IJobMarket.Ruling ruling, bytes32 evidenceHash);

    /// @notice Only the market may open disputes; `caller` is not it.
    error NotMarket(address caller);
    /// @notice No dispute on `jobId` is waiting for a ruling here.
    error NoOpenDispute(uint256 jobId);

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

    /// @notice Rules on the open dispute `jobId` (ARBITER_ROLE). `ruling` must be ProviderWins or
    ///         ChallengerWins; the market pays out in the same transaction.
    function rule(uint256 jobId, IJobMarket.Ruling ruling, bytes32 evidenceHash) external onlyRole(ARBITER_ROLE) {
        if (!isOpen[jobId]) revert NoOpenDispute(jobId);
        isOpen[jobId] = false;
        emit Ruled(jobId, msg.sender, ruling, evidenceHash);
        market.resolveDispute(jobId, ruling);
    }
}
