// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Provider staking
/// @notice Providers register with a minimum stake, add stake, and leave through an unbonding
///         delay. The job market locks part of a provider's stake as collateral for each job it
///         claims, unlocks it when the job settles, and slashes it when the provider misbehaves.
///
///         Balances of a provider:
///         - `staked`: tokens at stake, including `locked`;
///         - `locked`: collateral of claimed, unsettled jobs (never withdrawable, never unbondable);
///         - available = `staked - locked`: what can back new claims or be unbonded;
///         - `unbonding`: tokens that left `staked` and wait for `releaseAt` before withdrawal.
///
///         Lock and unlock emit no event of their own: the market's `JobClaimed`, `JobFinalized`,
///         `JobTimedOut` and `DisputeResolved` events carry the collateral they move.
interface IProviderStaking {
    /// @notice A provider's on-chain record, as returned by `getProvider`.
    struct ProviderInfo {
        uint24 id;
        uint96 staked;
        uint96 locked;
        uint96 unbonding;
        uint32 releaseAt;
        uint32 jobsCompleted;
        uint32 jobsSlashed;
        string endpoint;
        bytes32 capabilityHash;
    }

    // ---------------------------------------------------------------- events

    /// @notice `provider` registered under `id` with an initial stake of `amount`.
    event ProviderRegistered(
        address indexed provider, uint24 indexed id, uint256 amount, string endpoint, bytes32 capabilityHash
    );
    /// @notice `provider` added `amount`; its stake is now `staked`.
    event Staked(address indexed provider, uint256 amount, uint256 staked);
    /// @notice `provider` moved `amount` from stake to unbonding; `unbonding` in total is withdrawable
    ///         at `releaseAt`. Its stake is now `staked`.
    event UnstakeRequested(
        address indexed provider, uint256 amount, uint256 staked, uint256 unbonding, uint32 releaseAt
    );
    /// @notice `provider` withdrew `amount` of unbonded tokens.
    event UnstakeWithdrawn(address indexed provider, uint256 amount);
    /// @notice `provider` set its endpoint URI and capability hash.
    event MetadataUpdated(address indexed provider, string endpoint, bytes32 capabilityHash);
    /// @notice The market slashed `amount` of `provider`'s locked collateral for `jobId` and sent it to `to`.
    event Slashed(address indexed provider, uint256 indexed jobId, uint256 amount, address to);
    /// @notice Governance changed the minimum stake or the unbonding delay.
    event StakingParametersUpdated(uint256 minStake, uint32 unbondingDelay);

    // ---------------------------------------------------------------- errors

    /// @notice `provider` has no registration.
    error NotRegistered(address provider);
    /// @notice `provider` is registered already.
    error AlreadyRegistered(address provider);
    /// @notice A registration stake of `amount` is below `minimum`.
    error StakeBelowMinimum(uint256 amount, uint256 minimum);
    /// @notice `provider` has `available` unlocked stake but `needed` is required.
    error InsufficientStake(address provider, uint256 available, uint256 needed);
    /// @notice Unbonded tokens of `provider` are released at `releaseAt`; it is `nowTime`.
    error UnbondingNotReady(address provider, uint256 releaseAt, uint256 nowTime);
    /// @notice `provider` has nothing unbonded to withdraw.
    error NothingUnbonding(address provider);
    /// @notice All 2^24 - 1 provider ids are taken.
    error RegistryFull();
    /// @notice The market is paused: no claims (the same error as IJobMarket.MarketPaused).
    error MarketPaused();
    /// @notice Amounts must be positive.
    error ZeroAmount();
    /// @notice Only the job market may call; `caller` is not it.
    error NotMarket(address caller);
    /// @notice Governance tried to set `name` to `value` outside [`min`, `max`].
    error ParameterOutOfBounds(bytes32 name, uint256 value, uint256 min, uint256 max);

    // ---------------------------------------------------------------- provider actions

    /// @notice Registers the caller with `amount` of stake (pulled with `transferFrom`).
    /// @return id The provider's compact id, stored in the jobs it claims.
    function register(uint96 amount, string calldata endpoint, bytes32 capabilityHash) external returns (uint24 id);

    /// @notice Adds `amount` to the caller's stake.
    function stake(uint96 amount) external;

    /// @notice Starts unbonding `amount` of the caller's available stake; restarts the delay for
    ///         everything already unbonding.
    function requestUnstake(uint96 amount) external;

    /// @notice Sends the caller its unbonded tokens once the delay has passed.
    function withdrawUnstaked() external;

    /// @notice Sets the caller's endpoint URI and capability hash.
    function setMetadata(string calldata endpoint, bytes32 capabilityHash) external;

    // ---------------------------------------------------------------- market hooks

    /// @notice Locks `amount` of `provider`'s available stake. Market only.
    /// @return id The provider's id.
    function lock(address provider, uint96 amount) external returns (uint24 id);

    /// @notice Market only: its pause, as far as `lock` (a claim) goes. The market's own flag
    ///         stops posts and deposits; this copy sits in the word `lock` reads anyway.
    function setClaimsPaused(bool paused) external;

    /// @notice Unlocks `amount` for provider `id`; counts a completed job when `completed`. Market only.
    /// @return provider The provider's address.
    function unlock(uint24 id, uint96 amount, bool completed) external returns (address provider);

    /// @notice Removes `amount` of provider `id`'s locked stake and sends it to `to`. Market only.
    /// @return provider The provider's address.
    function slash(uint24 id, uint96 amount, uint256 jobId, address to) external returns (address provider);

    // ---------------------------------------------------------------- views

    /// @notice The reward token staked here.
    function token() external view returns (address);
    /// @notice The job market allowed to lock, unlock and slash: the contract that deployed this one.
    function market() external view returns (address);
    /// @notice The stake a registration needs, and the floor below which a provider cannot claim.
    function minStake() external view returns (uint256);
    /// @notice Seconds between `requestUnstake` and `withdrawUnstaked`.
    function unbondingDelay() external view returns (uint32);
    /// @notice Everything known about `provider` (all zero when unregistered).
    function getProvider(address provider) external view returns (ProviderInfo memory);
    /// @notice The address registered under `id` (zero when none).
    function providerOf(uint24 id) external view returns (address);
    /// @notice Number of registered providers (ids run from 1 to this).
    function providerCount() external view returns (uint24);
    /// @notice Stake of `provider` that is neither locked nor unbonding.
    function availableStake(address provider) external view returns (uint256);
}
