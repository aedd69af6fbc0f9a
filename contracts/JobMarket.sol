// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IDisputeResolver} from "./interfaces/IDisputeResolver.sol";
import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {IProviderStaking} from "./interfaces/IProviderStaking.sol";
import {IRewardToken} from "./interfaces/IRewardToken.sol";
import {ProviderStaking} from "./ProviderStaking.sol";

/// @title Job market with escrow, challenge-period settlement and disputes
/// @dev Invariant: token.balanceOf(this) == sum of the rewards of jobs that are Open, Claimed,
///      Submitted or Disputed + sum of the challenge bonds of Disputed jobs + sum of withdrawable
///      balances. Every transition moves value between those three terms, or out of this contract
///      (withdraw, burn), in the same call as the tokens themselves.
///
///      Gas layout: a job is three storage words, all written once at post time: the spec hash; the
///      requester and declared CPU-seconds; and the "hot" word holding the reward, status, provider
///      id, deadlines and terms. Claim, submit and finalize (with emissions off) read and rewrite
///      the hot word only. The spec lives in the `JobPosted` event only; collateral, bond and payouts
///      are derived from the reward; the provider is stored as the 24-bit id the staking contract
///      assigns. Rewards are capped at 2^88 - 1 base units (3.09e8 tokens of 18 decimals) so that
///      the hot word fits.
contract JobMarket is IJobMarket, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");

    // Hard bounds on governance parameters (time in seconds).
    uint24 public constant MAX_CLAIM_WINDOW = 90 days;
    uint24 public constant MAX_RUNTIME = 30 days;
    uint24 public constant MAX_CHALLENGE_WINDOW = 30 days;
    uint16 public constant MAX_COLLATERAL_PCT = 1000;
    uint16 public constant MIN_BURN_BPS = 1000;
    uint16 public constant MAX_BURN_BPS = 9000;
    uint24 public constant MAX_RESOLVE_WINDOW = 30 days;
    uint32 public constant MAX_EPOCH_LENGTH = 365 days;
    uint64 public constant MAX_EMISSION_RATE = 1e18;
    uint96 public constant MAX_EPOCH_BUDGET = 1e27;
    uint64 public constant MAX_MIN_REWARD_PER_CPU_SECOND = 1e18;
    /// @dev Declared CPU-seconds are at most maxRuntime times this many CPUs.
    uint256 public constant MAX_CPUS_PER_JOB = 256;

    uint256 private constant _BPS = 10_000;

    // Bits of Config.flags.
    uint8 private constant _PAUSED = 1;
    uint8 private constant _EMISSIONS_ON = 2;
    // Bits of Job.flags.
    uint8 private constant _FAILURE = 1; // the submission is a failure code
    uint8 private constant _EARNS_EMISSION = 2; // emissions were on when the job was posted
    uint256 private constant _PCT = 100;

    /// @dev Three storage words; see the contract's gas layout note.
    struct Job {
        // word 0: read by getJob only
        bytes32 specHash;
        // word 1: read on refunds and emissions
        address requester;
        uint32 cpuSeconds;
        // word 2, the hot word: 88 + 8 + 8 + 24 + 32 + 32 + 24 + 24 + 16 = 256 bits
        uint88 reward;
        JobStatus status;
        uint8 flags; // _FAILURE | _EARNS_EMISSION
        uint24 providerId;
        uint32 claimDeadline;
        uint32 deadline;
        uint24 maxRuntime;
        uint24 challengeWindow;
        uint16 collateralPct;
    }

    /// @dev What a dispute settlement moved; fields of `DisputeResolved`.
    struct Settlement {
        address winner;
        uint96 forfeited;
        uint96 winnerPayout;
        uint96 burned;
        uint96 requesterRefund;
        uint96 providerPayout;
        uint96 emission;
    }

    /// @dev The market's hot global word (144 + 48 + 24 + 8 + 32 = 256 bits): the parameters, the
    ///      pause and emissions-on flags, and the job counter, all read by `postJob` in one load.
    struct Config {
        uint24 minClaimWindow;
        uint24 maxClaimWindow;
        uint24 minRuntime;
        uint24 maxRuntime;
        uint24 minChallengeWindow;
        uint24 maxChallengeWindow;
        uint16 minCollateralPct;
        uint16 maxCollateralPct;
        uint16 burnBps;
        uint24 resolveWindow;
        uint8 flags; // _PAUSED | _EMISSIONS_ON
        uint32 jobCount; // ids run from 1; 2^32 - 1 jobs per deployment
    }

    struct EmissionState {
        uint32 epoch;
        uint96 minted;
    }

    IRewardToken private immutable _token;
    IProviderStaking private immutable _staking;

    Config private _config;
    EmissionParams private _emission;
    EmissionState private _emissionState;
    address private _resolver;

    mapping(uint256 jobId => Job) private _jobs;
    mapping(uint256 jobId => address) private _challengers;
    mapping(address account => uint256) private _credits;

    /// @notice A challenge was attempted before governance set a dispute resolver.
    error ResolverNotSet();

    modifier whenNotPaused() {
        if (_config.flags & _PAUSED != 0) revert MarketPaused();
        _;
    }

    /// @notice Deploys the market and its staking contract (whose market is fixed to this one).
    /// @param token_ The reward token; the market needs its MINTER_ROLE for emissions.
    /// @param admin Receives every role here and in the staking contract.
    /// @param minStake Staking's registration minimum (base units).
    /// @param unbondingDelay Staking's unbonding delay (seconds).
    constructor(
        address token_,
        address admin,
        uint96 minStake,
        uint32 unbondingDelay,
        MarketParams memory params_,
        EmissionParams memory emission_
    ) {
        _token = IRewardToken(token_);
        _staking = IProviderStaking(address(new ProviderStaking(token_, admin, minStake, unbondingDelay)));
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GOVERNOR_ROLE, admin);
        _grantRole(GUARDIAN_ROLE, admin);
        _setParams(params_);
        _setEmissionParams(emission_);
    }

    // ---------------------------------------------------------------- requester

    /// @inheritdoc IJobMarket
    function postJob(bytes32 specHash, bytes calldata spec, JobTerms calldata terms)
        external
        nonReentrant
        returns (uint256 jobId)
    {
        return _post(specHash, spec, terms);
    }

    /// @inheritdoc IJobMarket
    function postJobWithPermit(
        bytes32 specHash,
        bytes calldata spec,
        JobTerms calldata terms,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant returns (uint256 jobId) {
        // A front-run permit makes this call fail; the allowance it set is then already in place,
        // and `transferFrom` in `_post` reverts with the token's own error if it is not.
        try IERC20Permit(address(_token)).permit(msg.sender, address(this), terms.reward, permitDeadline, v, r, s) {}
            catch {}
        return _post(specHash, spec, terms);
    }

    /// @inheritdoc IJobMarket
    function deposit(uint256 amount) external nonReentrant whenNotPaused {
        if (amount == 0) revert ZeroDeposit();
        _credits[msg.sender] += amount;
        emit Deposited(msg.sender, amount);
        IERC20(address(_token)).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IJobMarket
    function cancelJob(uint256 jobId) external {
        Job storage j = _jobAt(jobId, JobStatus.Open);
        if (msg.sender != j.requester) revert NotRequester(jobId, msg.sender, j.requester);
        j.status = JobStatus.Cancelled;
        uint96 reward = j.reward;
        _credits[msg.sender] += reward;
        emit JobCancelled(jobId, msg.sender, reward);
    }

    // ---------------------------------------------------------------- provider

    /// @inheritdoc IJobMarket
    function claimJob(uint256 jobId) external whenNotPaused {
        Job storage j = _jobAt(jobId, JobStatus.Open);
        if (block.timestamp > j.claimDeadline) revert TooLate(jobId, j.claimDeadline, block.timestamp);
        uint96 collateral = _collateralOf(j);
        // uint32 holds unix times until 2106; maxRuntime is bounded by MAX_RUNTIME.
        uint32 submitDeadline = uint32(block.timestamp) + j.maxRuntime;
        j.status = JobStatus.Claimed;
        j.deadline = submitDeadline;
        // The staking contract is fixed at construction and only moves its own records.
        j.providerId = _staking.lock(msg.sender, collateral);
        emit JobClaimed(jobId, msg.sender, collateral, submitDeadline);
    }

    /// @inheritdoc IJobMarket
    function submitResult(uint256 jobId, bytes32 resultHash, string calldata resultURI) external {
        if (resultHash == bytes32(0)) revert EmptyResultHash();
        Job storage j = _assignedJob(jobId);
        uint32 challengeDeadline = _startChallengeWindow(j);
        emit ResultSubmitted(jobId, msg.sender, resultHash, resultURI, challengeDeadline);
    }

    /// @inheritdoc IJobMarket
    function submitFailure(uint256 jobId, uint8 code, bytes32 evidenceHash) external {
        if (code == uint8(FailureCode.None) || code > uint8(type(FailureCode).max)) revert InvalidFailureCode(code);
        Job storage j = _assignedJob(jobId);
        j.flags |= _FAILURE;
        uint32 challengeDeadline = _startChallengeWindow(j);
        emit FailureSubmitted(jobId, msg.sender, code, evidenceHash, challengeDeadline);
    }

    // ---------------------------------------------------------------- anyone

    /// @inheritdoc IJobMarket
    function challenge(uint256 jobId) external nonReentrant {
        Job storage j = _jobAt(jobId, JobStatus.Submitted);
        if (block.timestamp > j.deadline) revert TooLate(jobId, j.deadline, block.timestamp);
        address resolver_ = _resolver;
        if (resolver_ == address(0)) revert ResolverNotSet();
        address provider = _staking.providerOf(j.providerId);
        if (msg.sender == provider) revert SelfChallenge(jobId, provider);
        uint96 bond = _collateralOf(j);
        uint32 resolveDeadline = uint32(block.timestamp) + _config.resolveWindow;
        j.status = JobStatus.Disputed;
        j.deadline = resolveDeadline;
        _challengers[jobId] = msg.sender;
        emit JobChallenged(jobId, msg.sender, bond, resolver_, resolveDeadline);
        IERC20(address(_token)).safeTransferFrom(msg.sender, address(this), bond);
        IDisputeResolver(resolver_).disputeOpened(jobId, provider, msg.sender, resolveDeadline);
    }

    /// @inheritdoc IJobMarket
    function finalize(uint256 jobId) external nonReentrant {
        Job storage j = _jobAt(jobId, JobStatus.Submitted);
        if (block.timestamp <= j.deadline) revert TooEarly(jobId, uint256(j.deadline) + 1, block.timestamp);
        _finalize(jobId, j);
    }

    /// @inheritdoc IJobMarket
    function finalizeMany(uint256[] calldata jobIds) external nonReentrant returns (uint256 finalized) {
        for (uint256 i = 0; i < jobIds.length; ++i) {
            Job storage j = _jobs[jobIds[i]];
            if (j.status == JobStatus.Submitted && block.timestamp > j.deadline) {
                _finalize(jobIds[i], j);
                ++finalized;
            }
        }
    }

    /// @inheritdoc IJobMarket
    function expireJob(uint256 jobId) external {
        Job storage j = _jobAt(jobId, JobStatus.Open);
        if (block.timestamp <= j.claimDeadline) revert TooEarly(jobId, uint256(j.claimDeadline) + 1, block.timestamp);
        j.status = JobStatus.Expired;
        (address requester, uint96 reward) = (j.requester, j.reward);
        _credits[requester] += reward;
        emit JobExpired(jobId, requester, reward);
    }

    /// @inheritdoc IJobMarket
    function timeoutJob(uint256 jobId) external nonReentrant {
        Job storage j = _jobAt(jobId, JobStatus.Claimed);
        if (block.timestamp <= j.deadline) revert TooEarly(jobId, uint256(j.deadline) + 1, block.timestamp);
        uint96 collateral = _collateralOf(j);
        uint24 providerId = j.providerId;
        bool reopened = block.timestamp <= j.claimDeadline;
        uint96 refund = 0;
        if (reopened) {
            j.status = JobStatus.Open;
            j.providerId = 0;
            j.deadline = 0;
        } else {
            j.status = JobStatus.TimedOut;
            refund = j.reward;
            _credits[j.requester] += refund;
        }
        address provider = _staking.slash(providerId, collateral, jobId, address(this));
        _token.burn(collateral);
        emit JobTimedOut(jobId, provider, collateral, reopened, refund);
    }

    /// @inheritdoc IJobMarket
    function settleUnresolved(uint256 jobId) external nonReentrant {
        Job storage j = _jobAt(jobId, JobStatus.Disputed);
        if (block.timestamp <= j.deadline) revert TooEarly(jobId, uint256(j.deadline) + 1, block.timestamp);
        _settleDispute(jobId, j, Ruling.None);
    }

    /// @inheritdoc IJobMarket
    function withdraw() external nonReentrant {
        uint256 amount = _credits[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        _credits[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        IERC20(address(_token)).safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- resolver

    /// @inheritdoc IJobMarket
    function resolveDispute(uint256 jobId, Ruling ruling) external nonReentrant {
        if (msg.sender != _resolver) revert NotResolver(msg.sender, _resolver);
        if (ruling == Ruling.None) revert InvalidRuling();
        _settleDispute(jobId, _jobAt(jobId, JobStatus.Disputed), ruling);
    }

    // ---------------------------------------------------------------- governance

    /// @inheritdoc IJobMarket
    function setParams(MarketParams calldata params_) external onlyRole(GOVERNOR_ROLE) {
        _setParams(params_);
    }

    /// @inheritdoc IJobMarket
    function setEmissionParams(EmissionParams calldata params_) external onlyRole(GOVERNOR_ROLE) {
        _setEmissionParams(params_);
    }

    /// @inheritdoc IJobMarket
    function setResolver(address resolver_) external onlyRole(GOVERNOR_ROLE) {
        if (resolver_ == address(0)) revert ResolverNotSet();
        _resolver = resolver_;
        emit ResolverUpdated(resolver_);
    }

    /// @inheritdoc IJobMarket
    function setPaused(bool paused_) external onlyRole(GUARDIAN_ROLE) {
        _config.flags = paused_ ? _config.flags | _PAUSED : _config.flags & ~_PAUSED;
        emit PauseSet(paused_);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IJobMarket
    function getJob(uint256 jobId) external view returns (JobView memory v) {
        Job memory j = _jobs[jobId];
        if (j.status == JobStatus.None) revert UnknownJob(jobId);
        v.specHash = j.specHash;
        v.requester = j.requester;
        v.reward = j.reward;
        v.status = j.status;
        v.failure = j.flags & _FAILURE != 0;
        v.provider = j.providerId == 0 ? address(0) : _staking.providerOf(j.providerId);
        v.claimDeadline = j.claimDeadline;
        v.deadline = j.deadline;
        v.maxRuntime = j.maxRuntime;
        v.challengeWindow = j.challengeWindow;
        v.collateralPct = j.collateralPct;
        v.cpuSeconds = j.cpuSeconds;
        v.collateral = _collateral(j.reward, j.collateralPct);
        v.challenger = _challengers[jobId];
    }

    /// @inheritdoc IJobMarket
    function jobCount() external view returns (uint256) {
        return _config.jobCount;
    }

    /// @inheritdoc IJobMarket
    function withdrawableOf(address account) external view returns (uint256) {
        return _credits[account];
    }

    /// @inheritdoc IJobMarket
    function params() external view returns (MarketParams memory p) {
        Config memory c = _config;
        p = MarketParams({
            minClaimWindow: c.minClaimWindow,
            maxClaimWindow: c.maxClaimWindow,
            minRuntime: c.minRuntime,
            maxRuntime: c.maxRuntime,
            minChallengeWindow: c.minChallengeWindow,
            maxChallengeWindow: c.maxChallengeWindow,
            minCollateralPct: c.minCollateralPct,
            maxCollateralPct: c.maxCollateralPct,
            burnBps: c.burnBps,
            resolveWindow: c.resolveWindow,
            paused: c.flags & _PAUSED != 0
        });
    }

    /// @inheritdoc IJobMarket
    function emissionParams() external view returns (EmissionParams memory) {
        return _emission;
    }

    /// @inheritdoc IJobMarket
    function emissionState() external view returns (uint32 epoch, uint96 minted) {
        return (_emissionState.epoch, _emissionState.minted);
    }

    /// @inheritdoc IJobMarket
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IJobMarket
    function staking() external view returns (address) {
        return address(_staking);
    }

    /// @inheritdoc IJobMarket
    function resolver() external view returns (address) {
        return _resolver;
    }

    // ---------------------------------------------------------------- internal

    function _post(bytes32 specHash, bytes calldata spec, JobTerms calldata terms) private returns (uint256 jobId) {
        Config storage c = _config;
        uint8 configFlags = c.flags;
        _checkPost(specHash, spec, terms, configFlags);
        jobId = ++c.jobCount; // checked: reverts after 2^32 - 1 jobs
        // uint32 holds unix times until 2106; claimWindow is bounded by MAX_CLAIM_WINDOW.
        uint32 claimDeadline = uint32(block.timestamp) + terms.claimWindow;
        _jobs[jobId] = Job({
            specHash: specHash,
            requester: msg.sender,
            cpuSeconds: terms.cpuSeconds,
            reward: uint88(terms.reward), // bounded by _checkPost
            status: JobStatus.Open,
            flags: configFlags & _EMISSIONS_ON != 0 ? _EARNS_EMISSION : 0,
            providerId: 0,
            claimDeadline: claimDeadline,
            deadline: 0,
            maxRuntime: terms.maxRuntime,
            challengeWindow: terms.challengeWindow,
            collateralPct: terms.collateralPct
        });
        // Pay from the requester's withdrawable balance first, then from its wallet.
        uint256 credit = _credits[msg.sender];
        uint96 fromCredit = credit < terms.reward ? uint96(credit) : terms.reward;
        if (fromCredit != 0) {
            // Cannot underflow: fromCredit <= credit.
            unchecked {
                _credits[msg.sender] = credit - fromCredit;
            }
        }
        _emitPosted(jobId, specHash, claimDeadline, fromCredit, terms, spec);
        if (fromCredit < terms.reward) {
            IERC20(address(_token)).safeTransferFrom(msg.sender, address(this), terms.reward - fromCredit);
        }
    }

    /// @dev Reverts unless the market is live, the spec matches its hash and the terms are in bounds.
    function _checkPost(bytes32 specHash, bytes calldata spec, JobTerms calldata terms, uint8 configFlags)
        private
        view
    {
        if (configFlags & _PAUSED != 0) revert MarketPaused();
        Config memory p = _config;
        if (terms.reward == 0) revert ZeroReward();
        if (terms.reward > type(uint88).max) revert TermOutOfBounds("reward", terms.reward, 1, type(uint88).max);
        if (spec.length == 0) revert EmptySpec();
        bytes32 actual = keccak256(spec);
        if (actual != specHash) revert SpecHashMismatch(specHash, actual);
        _checkTerm("claimWindow", terms.claimWindow, p.minClaimWindow, p.maxClaimWindow);
        _checkTerm("maxRuntime", terms.maxRuntime, p.minRuntime, p.maxRuntime);
        _checkTerm("challengeWindow", terms.challengeWindow, p.minChallengeWindow, p.maxChallengeWindow);
        _checkTerm("collateralPct", terms.collateralPct, p.minCollateralPct, p.maxCollateralPct);
        _checkTerm("cpuSeconds", terms.cpuSeconds, 1, uint256(terms.maxRuntime) * MAX_CPUS_PER_JOB);
        // A zero collateral (a tiny reward rounded down) would make challenges free and slashes empty.
        uint256 collateral = uint256(terms.reward) * terms.collateralPct / _PCT;
        if (collateral == 0) revert TermOutOfBounds("collateral", 0, 1, type(uint96).max);
    }

    /// @dev Split out of `_post` to keep the legacy code generator's stack within reach.
    function _emitPosted(
        uint256 jobId,
        bytes32 specHash,
        uint32 claimDeadline,
        uint96 fromCredit,
        JobTerms calldata terms,
        bytes calldata spec
    ) private {
        emit JobPosted(
            jobId,
            msg.sender,
            specHash,
            terms.reward,
            fromCredit,
            claimDeadline,
            terms.maxRuntime,
            terms.challengeWindow,
            terms.collateralPct,
            terms.cpuSeconds,
            spec
        );
    }

    /// @dev The job `jobId`, which must exist and be in `expected` status.
    function _jobAt(uint256 jobId, JobStatus expected) private view returns (Job storage j) {
        j = _jobs[jobId];
        JobStatus actual = j.status;
        if (actual != expected) {
            if (actual == JobStatus.None) revert UnknownJob(jobId);
            revert WrongStatus(jobId, actual, expected);
        }
    }

    /// @dev The claimed job `jobId`, whose assigned provider must be the caller, before its submit deadline.
    function _assignedJob(uint256 jobId) private view returns (Job storage j) {
        j = _jobAt(jobId, JobStatus.Claimed);
        address provider = _staking.providerOf(j.providerId);
        if (msg.sender != provider) revert NotAssignedProvider(jobId, msg.sender, provider);
        if (block.timestamp > j.deadline) revert TooLate(jobId, j.deadline, block.timestamp);
    }

    function _startChallengeWindow(Job storage j) private returns (uint32 challengeDeadline) {
        // uint32 holds unix times until 2106; challengeWindow is bounded by MAX_CHALLENGE_WINDOW.
        challengeDeadline = uint32(block.timestamp) + j.challengeWindow;
        j.status = JobStatus.Submitted;
        j.deadline = challengeDeadline;
    }

    function _finalize(uint256 jobId, Job storage j) private {
        j.status = JobStatus.Finalized;
        uint8 flags = j.flags;
        bool failure = flags & _FAILURE != 0;
        uint96 reward = j.reward;
        address provider = _staking.unlock(j.providerId, _collateralOf(j), !failure);
        uint96 emission = 0;
        if (failure) {
            _credits[j.requester] += reward;
        } else {
            _credits[provider] += reward;
            if (flags & _EARNS_EMISSION != 0) emission = _mintEmission(provider, j);
        }
        emit JobFinalized(jobId, provider, failure, reward, emission);
    }

    function _settleDispute(uint256 jobId, Job storage j, Ruling ruling) private {
        j.status = JobStatus.Resolved;
        Settlement memory out = Settlement({
            winner: address(0),
            forfeited: 0,
            winnerPayout: 0,
            burned: 0,
            requesterRefund: 0,
            providerPayout: 0,
            emission: 0
        });
        address challenger = _challengers[jobId];
        address requester = j.requester;
        uint96 stake = _collateralOf(j); // the provider's collateral, and the challenger's bond

        if (ruling == Ruling.ProviderWins) {
            bool failure = j.flags & _FAILURE != 0;
            address provider = _staking.unlock(j.providerId, stake, !failure);
            out.winner = provider;
            out.forfeited = stake; // the challenger's bond
            (out.winnerPayout, out.burned) = _split(stake, provider == requester);
            if (failure) {
                out.requesterRefund = j.reward;
            } else {
                out.providerPayout = j.reward;
                if (j.flags & _EARNS_EMISSION != 0) out.emission = _mintEmission(provider, j);
            }
            _credits[provider] += uint256(out.winnerPayout) + out.providerPayout;
        } else if (ruling == Ruling.ChallengerWins) {
            _staking.slash(j.providerId, stake, jobId, address(this));
            out.winner = challenger;
            out.forfeited = stake; // the provider's collateral
            // Slashed collateral never goes to the job's requester (iExec "kitty" rule).
            (out.winnerPayout, out.burned) = _split(stake, challenger == requester);
            out.requesterRefund = j.reward;
            _credits[challenger] += uint256(stake) + out.winnerPayout; // bond back plus the winner's share
        } else {
            _staking.unlock(j.providerId, stake, false);
            out.requesterRefund = j.reward;
            _credits[challenger] += stake; // bond back
        }
        if (out.requesterRefund != 0) _credits[requester] += out.requesterRefund;
        if (out.burned != 0) _token.burn(out.burned);
        emit DisputeResolved(
            jobId,
            ruling,
            out.winner,
            out.forfeited,
            out.winnerPayout,
            out.burned,
            out.requesterRefund,
            out.providerPayout,
            out.emission
        );
    }

    /// @dev Splits a loser's `amount` into the winner's share and the burned share. A winner that
    ///      is the job's requester gets nothing: all of it is burned.
    function _split(uint96 amount, bool winnerIsRequester) private view returns (uint96 winnerShare, uint96 burned) {
        if (winnerIsRequester) return (0, amount);
        // Cannot overflow: amount < 2^96 and burnBps <= MAX_BURN_BPS < 2^14.
        unchecked {
            burned = uint96(uint256(amount) * _config.burnBps / _BPS);
            winnerShare = amount - burned;
        }
    }

    /// @dev Mints the emission for job `j`'s declared CPU-seconds to `provider`, within the epoch
    ///      budget and the token's cap. Returns the amount minted (zero when emissions are off or
    ///      the mint fails).
    function _mintEmission(address provider, Job storage j) private returns (uint96 minted) {
        EmissionParams memory e = _emission;
        if (e.ratePerCpuSecond == 0 || e.epochBudget == 0) return 0;
        // Word 1, read only when emissions are on.
        (address requester, uint32 cpuSeconds) = (j.requester, j.cpuSeconds);
        // Only arm's-length, fairly priced work earns emissions (see IJobMarket.EmissionParams).
        if (provider == requester) return 0;
        if (uint256(j.reward) < uint256(cpuSeconds) * e.minRewardPerCpuSecond) return 0;
        EmissionState memory s = _emissionState;
        uint32 epoch = uint32(block.timestamp / e.epochLength);
        if (s.epoch != epoch) {
            s.epoch = epoch;
            s.minted = 0;
        }
        uint256 amount = uint256(cpuSeconds) * e.ratePerCpuSecond;
        // Governance may have lowered the budget below what this epoch already minted.
        uint256 budgetLeft = e.epochBudget > s.minted ? e.epochBudget - s.minted : 0;
        uint256 capLeft = _token.cap() - _token.totalSupply();
        if (amount > budgetLeft) amount = budgetLeft;
        if (amount > capLeft) amount = capLeft;
        if (amount == 0) return 0;
        // Cannot overflow: amount <= budgetLeft <= epochBudget - minted, all uint96.
        unchecked {
            minted = uint96(amount);
            s.minted += minted;
        }
        _emissionState = s;
        // Emissions are a bonus: a failing mint (say, governance revoked the market's MINTER_ROLE)
        // must never block settlement. The budget it reserved is not returned.
        try _token.mint(provider, amount) {}
        catch {
            return 0;
        }
    }

    function _collateralOf(Job storage j) private view returns (uint96) {
        return _collateral(j.reward, j.collateralPct);
    }

    /// @dev Cannot overflow: reward < 2^88 and pct <= MAX_COLLATERAL_PCT < 2^10, so the result < 2^95.
    function _collateral(uint96 reward, uint16 pct) private pure returns (uint96) {
        return uint96(uint256(reward) * pct / _PCT);
    }

    function _checkTerm(bytes32 name, uint256 value, uint256 min, uint256 max) private pure {
        if (value < min || value > max) revert TermOutOfBounds(name, value, min, max);
    }

    function _checkParam(bytes32 name, uint256 value, uint256 min, uint256 max) private pure {
        if (value < min || value > max) revert ParameterOutOfBounds(name, value, min, max);
    }

    function _setParams(MarketParams memory p) private {
        _checkParam("minClaimWindow", p.minClaimWindow, 1, MAX_CLAIM_WINDOW);
        _checkParam("maxClaimWindow", p.maxClaimWindow, p.minClaimWindow, MAX_CLAIM_WINDOW);
        _checkParam("minRuntime", p.minRuntime, 1, MAX_RUNTIME);
        _checkParam("maxRuntime", p.maxRuntime, p.minRuntime, MAX_RUNTIME);
        _checkParam("minChallengeWindow", p.minChallengeWindow, 1, MAX_CHALLENGE_WINDOW);
        _checkParam("maxChallengeWindow", p.maxChallengeWindow, p.minChallengeWindow, MAX_CHALLENGE_WINDOW);
        _checkParam("minCollateralPct", p.minCollateralPct, 1, MAX_COLLATERAL_PCT);
        _checkParam("maxCollateralPct", p.maxCollateralPct, p.minCollateralPct, MAX_COLLATERAL_PCT);
        _checkParam("burnBps", p.burnBps, MIN_BURN_BPS, MAX_BURN_BPS);
        _checkParam("resolveWindow", p.resolveWindow, 1, MAX_RESOLVE_WINDOW);
        Config storage c = _config;
        c.minClaimWindow = p.minClaimWindow;
        c.maxClaimWindow = p.maxClaimWindow;
        c.minRuntime = p.minRuntime;
        c.maxRuntime = p.maxRuntime;
        c.minChallengeWindow = p.minChallengeWindow;
        c.maxChallengeWindow = p.maxChallengeWindow;
        c.minCollateralPct = p.minCollateralPct;
        c.maxCollateralPct = p.maxCollateralPct;
        c.burnBps = p.burnBps;
        c.resolveWindow = p.resolveWindow;
        p.paused = c.flags & _PAUSED != 0; // the guardian's flag, not governance's
        emit MarketParamsUpdated(p);
    }

    function _setEmissionParams(EmissionParams memory e) private {
        _checkParam("ratePerCpuSecond", e.ratePerCpuSecond, 0, MAX_EMISSION_RATE);
        _checkParam("epochBudget", e.epochBudget, 0, MAX_EPOCH_BUDGET);
        _checkParam("epochLength", e.epochLength, 1, MAX_EPOCH_LENGTH);
        _checkParam("minRewardPerCpuSecond", e.minRewardPerCpuSecond, 0, MAX_MIN_REWARD_PER_CPU_SECOND);
        _emission = e;
        bool on = e.ratePerCpuSecond != 0 && e.epochBudget != 0;
        _config.flags = on ? _config.flags | _EMISSIONS_ON : _config.flags & ~_EMISSIONS_ON;
        emit EmissionParamsUpdated(e);
    }
}
