// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IJobMarket} from "./IJobMarket.sol";
import {IProviderStaking} from "./IProviderStaking.sol";

/// @title Provider staking with unbonding and market-controlled collateral
/// @notice Deployed by the job market in its constructor: the deployer is the market, fixed forever.
/// @dev Invariant: token.balanceOf(this) == sum over providers of (staked + unbonding).
///      `locked <= staked` always; only the market moves `locked`, and `requestUnstake` takes
///      from `staked - locked` only, so locked collateral can never leave except by `slash`.
///      Hence a slash (always at most the job's locked collateral) never needs to reach unbonding
///      funds (C9 holds by construction); the unbonding delay still covers the market's horizon.
contract ProviderStaking is IProviderStaking, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");

    /// @dev Hard bounds on governance parameters.
    uint256 public constant MIN_STAKE_FLOOR = 1;
    uint256 public constant MIN_STAKE_CEILING = 1e27;
    uint32 public constant MAX_UNBONDING_DELAY = 60 days;

    /// @dev The hot record: one storage word, read and written by every lock and unlock.
    struct Record {
        uint96 staked;
        uint96 locked;
        uint24 id; // ids run from 1; zero means unregistered
        uint32 jobsCompleted;
    }

    /// @dev Cold data: touched only by unstaking.
    struct Unbonding {
        uint96 amount;
        uint32 releaseAt;
    }

    IERC20 private immutable _token;
    address private immutable _market;
    uint96 private _minStake;
    uint32 private _unbondingDelay;
    uint24 private _providerCount;
    /// @dev The market's pause, as far as claims go: `lock` reads this word anyway (for the
    ///      minimum stake), so a claim pays no read of its own for it (IProviderStaking.setClaimsPaused).
    bool private _claimsPaused;

    mapping(address provider => Record) private _records;
    mapping(address provider => Unbonding) private _unbonding;
    mapping(address provider => uint32) private _jobsSlashed;
    mapping(uint24 id => address) private _providerOf;
    mapping(address provider => string) private _endpoint;
    mapping(address provider => bytes32) private _capabilityHash;

    modifier onlyMarket() {
        if (msg.sender != _market) revert NotMarket(msg.sender);
        _;
    }

    /// @param token_ The reward token staked here.
    /// @param admin Receives DEFAULT_ADMIN_ROLE and GOVERNOR_ROLE.
    /// @dev The deployer (`msg.sender`) becomes the market: the only caller of lock, unlock and slash.
    constructor(address token_, address admin, uint96 minStake_, uint32 unbondingDelay_) {
        _token = IERC20(token_);
        _market = msg.sender;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GOVERNOR_ROLE, admin);
        _setParams(minStake_, unbondingDelay_);
    }

    // ---------------------------------------------------------------- provider actions

    /// @inheritdoc IProviderStaking
    function register(uint96 amount, string calldata endpoint, bytes32 capabilityHash)
        external
        nonReentrant
        returns (uint24 id)
    {
        Record storage r = _records[msg.sender];
        if (r.id != 0) revert AlreadyRegistered(msg.sender);
        if (amount < _minStake) revert StakeBelowMinimum(amount, _minStake);
        if (_providerCount == type(uint24).max) revert RegistryFull();
        id = ++_providerCount;
        r.id = id;
        r.staked = amount;
        _providerOf[id] = msg.sender;
        _endpoint[msg.sender] = endpoint;
        _capabilityHash[msg.sender] = capabilityHash;
        emit ProviderRegistered(msg.sender, id, amount, endpoint, capabilityHash);
        _token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IProviderStaking
    function stake(uint96 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        Record storage r = _registered(msg.sender);
        r.staked += amount;
        emit Staked(msg.sender, amount, r.staked);
        _token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IProviderStaking
    function requestUnstake(uint96 amount) external {
        if (amount == 0) revert ZeroAmount();
        Record storage r = _registered(msg.sender);
        uint96 available = r.staked - r.locked;
        if (amount > available) revert InsufficientStake(msg.sender, available, amount);
        r.staked -= amount;
        Unbonding storage u = _unbonding[msg.sender];
        u.amount += amount;
        // uint32 holds unix times until 2106.
        u.releaseAt = uint32(block.timestamp) + _unbondingDelay;
        emit UnstakeRequested(msg.sender, amount, r.staked, u.amount, u.releaseAt);
    }

    /// @inheritdoc IProviderStaking
    function withdrawUnstaked() external nonReentrant {
        Unbonding memory u = _unbonding[msg.sender];
        if (u.amount == 0) revert NothingUnbonding(msg.sender);
        if (block.timestamp < u.releaseAt) revert UnbondingNotReady(msg.sender, u.releaseAt, block.timestamp);
        delete _unbonding[msg.sender];
        emit UnstakeWithdrawn(msg.sender, u.amount);
        _token.safeTransfer(msg.sender, u.amount);
    }

    /// @inheritdoc IProviderStaking
    function setMetadata(string calldata endpoint, bytes32 capabilityHash) external {
        _registered(msg.sender);
        _endpoint[msg.sender] = endpoint;
        _capabilityHash[msg.sender] = capabilityHash;
        emit MetadataUpdated(msg.sender, endpoint, capabilityHash);
    }

    // ---------------------------------------------------------------- market hooks

    /// @inheritdoc IProviderStaking
    function lock(address provider, uint96 amount) external onlyMarket returns (uint24 id) {
        Record memory r = _records[provider];
        if (r.id == 0) revert NotRegistered(provider);
        // A provider whose stake fell below the minimum (by unbonding or slashes) cannot claim:
        // the minimum must stay at stake on top of the collateral being locked.
        uint96 available = r.staked - r.locked;
        if (_claimsPaused) revert MarketPaused();
        uint256 needed = uint256(amount) + _minStake;
        if (r.staked < needed + r.locked) {
            revert InsufficientStake(provider, available, needed);
        }
        // Cannot overflow: locked + amount <= staked (checked above), a uint96.
        unchecked {
            r.locked += amount;
        }
        _records[provider] = r;
        return r.id;
    }

    /// @inheritdoc IProviderStaking
    function setClaimsPaused(bool paused) external onlyMarket {
        _claimsPaused = paused;
    }

    /// @inheritdoc IProviderStaking
    function unlock(uint24 id, uint96 amount, bool completed) external onlyMarket returns (address provider) {
        provider = _providerOf[id];
        Record storage r = _records[provider];
        r.locked -= amount;
        if (completed) r.jobsCompleted += 1;
    }

    /// @inheritdoc IProviderStaking
    function slash(uint24 id, uint96 amount, uint256 jobId, address to)
        external
        onlyMarket
        nonReentrant
        returns (address provider)
    {
        provider = _providerOf[id];
        Record storage r = _records[provider];
        r.locked -= amount;
        r.staked -= amount;
        _jobsSlashed[provider] += 1;
        emit Slashed(provider, jobId, amount, to);
        _token.safeTransfer(to, amount);
    }

    // ---------------------------------------------------------------- governance

    /// @notice Sets the minimum stake and the unbonding delay (GOVERNOR_ROLE), within hard bounds.
    ///         The unbonding delay must also cover the market's verification horizon (C9,
    ///         `IJobMarket.minUnbondingDelay`), so that a provider cannot leave before every job it
    ///         could still be slashed for has settled.
    function setParams(uint96 minStake_, uint32 unbondingDelay_) external onlyRole(GOVERNOR_ROLE) {
        uint256 required = IJobMarket(_market).minUnbondingDelay();
        if (unbondingDelay_ < required) {
            revert ParameterOutOfBounds("unbondingDelay", unbondingDelay_, required, MAX_UNBONDING_DELAY);
        }
        _setParams(minStake_, unbondingDelay_);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IProviderStaking
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IProviderStaking
    function market() external view returns (address) {
        return _market;
    }

    /// @inheritdoc IProviderStaking
    function minStake() external view returns (uint256) {
        return _minStake;
    }

    /// @inheritdoc IProviderStaking
    function unbondingDelay() external view returns (uint32) {
        return _unbondingDelay;
    }

    /// @inheritdoc IProviderStaking
    function getProvider(address provider) external view returns (ProviderInfo memory info) {
        Record memory r = _records[provider];
        Unbonding memory u = _unbonding[provider];
        info = ProviderInfo({
            id: r.id,
            staked: r.staked,
            locked: r.locked,
            unbonding: u.amount,
            releaseAt: u.releaseAt,
            jobsCompleted: r.jobsCompleted,
            jobsSlashed: _jobsSlashed[provider],
            endpoint: _endpoint[provider],
            capabilityHash: _capabilityHash[provider]
        });
    }

    /// @inheritdoc IProviderStaking
    function providerOf(uint24 id) external view returns (address) {
        return _providerOf[id];
    }

    /// @inheritdoc IProviderStaking
    function providerCount() external view returns (uint24) {
        return _providerCount;
    }

    /// @inheritdoc IProviderStaking
    function availableStake(address provider) external view returns (uint256) {
        Record memory r = _records[provider];
        return r.staked - r.locked;
    }

    // ---------------------------------------------------------------- internal

    function _registered(address provider) private view returns (Record storage r) {
        r = _records[provider];
        if (r.id == 0) revert NotRegistered(provider);
    }

    function _setParams(uint96 minStake_, uint32 unbondingDelay_) private {
        if (minStake_ < MIN_STAKE_FLOOR || minStake_ > MIN_STAKE_CEILING) {
            revert ParameterOutOfBounds("minStake", minStake_, MIN_STAKE_FLOOR, MIN_STAKE_CEILING);
        }
        if (unbondingDelay_ > MAX_UNBONDING_DELAY) {
            revert ParameterOutOfBounds("unbondingDelay", unbondingDelay_, 0, MAX_UNBONDING_DELAY);
        }
        _minStake = minStake_;
        _unbondingDelay = unbondingDelay_;
        emit StakingParametersUpdated(minStake_, unbondingDelay_);
    }
}
