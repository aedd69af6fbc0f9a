// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";

import {IRewardToken} from "./IRewardToken.sol";

/// @title depin-compute reward token (OpenZeppelin ERC20 + Permit + Capped + Burnable)
/// @dev Invariant: totalSupply() == sum of balanceOf over all accounts <= cap(). Minting is the
///      only way supply grows and only MINTER_ROLE (the job market, for emissions; the deployer on
///      a devnet, as a faucet) holds it.
contract RewardToken is ERC20, ERC20Permit, ERC20Capped, ERC20Burnable, AccessControl, IRewardToken {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    constructor(string memory name_, string memory symbol_, uint256 cap_, address admin, uint256 initialSupply)
        ERC20(name_, symbol_)
        ERC20Permit(name_)
        ERC20Capped(cap_)
    {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (initialSupply > 0) _mint(admin, initialSupply);
    }

    /// @inheritdoc IRewardToken
    /// @dev MINTER_ROLE only; never past the cap.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @inheritdoc IRewardToken
    function burn(uint256 value) public override(ERC20Burnable, IRewardToken) {
        super.burn(value);
    }

    /// @inheritdoc ERC20Permit
    function nonces(address owner) public view override(ERC20Permit, IERC20Permit) returns (uint256) {
        return super.nonces(owner);
    }

    /// @inheritdoc IRewardToken
    function cap() public view override(ERC20Capped, IRewardToken) returns (uint256) {
        return super.cap();
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Capped) {
        super._update(from, to, value);
    }
}
