// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";

/// @title depin-compute reward token
/// @notice The ERC-20 (with ERC-2612 permit) in which requesters pay for jobs, providers stake,
///         and the protocol pays compute emissions. Supply is capped; only holders of
///         `MINTER_ROLE` mint, and any holder may burn its own tokens.
interface IRewardToken is IERC20, IERC20Permit {
    /// @notice Mints `amount` to `to`. Reverts with OpenZeppelin's `ERC20ExceededCap` past the cap
    ///         and with `AccessControlUnauthorizedAccount` for callers without `MINTER_ROLE`.
    function mint(address to, uint256 amount) external;

    /// @notice Destroys `amount` of the caller's tokens.
    function burn(uint256 amount) external;

    /// @notice The maximum total supply.
    function cap() external view returns (uint256);
}
