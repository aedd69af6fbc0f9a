// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {ICourtViews} from "./ICourtViews.sol";
import {IJobMarket} from "./IJobMarket.sol";
import {IProviderStaking} from "./IProviderStaking.sol";
import {IRandomness} from "./IRandomness.sol";
import {IRewardToken} from "./IRewardToken.sol";
import {JobMarketGovernance} from "./JobMarketGovernance.sol";
import {JobMarketState} from "./JobMarketState.sol";
import {ProviderStaking} from "./ProviderStaking.sol";

/// @title Job market with escrow, optimistic settlement and court-run verification of drawn jobs
/// @notice Emissions are the kappa*f*R rebate inside the provider's credit: a share of a fee the
///         requester actually paid, never a mint (the market needs no MINTER_ROLE). A wash job
///         (requester = provider) therefore loses (1 - kappa)*f*R and farms nothing, so no global
///         epoch budget exists (there is nothing to reset: kappa < 1 bounds every job's rebate).
/// @dev Invariant: token.balanceOf(this) == sum over jobs that are Open, Claimed, Submitted or
///      Disputed of their escrow (reward R + escrowed fee + audit fee A) + sum of withdrawable
///      balances + pendingBurn. Every transition moves value between those three terms, or out of
///      this contract (withdraw, flushBurn, A or nothing to the court in `settle`), in the same
///      call as the tokens themselves. Slashed collateral enters as pendingBurn (timeouts,
///      availability fees) or goes from staking straight to the court (ProviderWrong).
///
///      Gas layout: a job is three storage words, all written at post: word 0, the spec hash,
///      overwritten by the provider's commitment at submission; word 1, the requester and the
///      job's snapshot of the parameters it settles by (version, p_job, fee, kappa, audit fee),
///      read at settlement only; and the "hot" word holding the reward, status, flags (failure
///      code, verify mode), provider id, claim deadline (the anchor block once submitted),
///      deadline and terms. Claim and submit read and rewrite the hot word only (submit also
///      overwrites word 0); finalize reads word 1 too and one randomness value (the block hash in
///      place when the source is block hashes). Burns accrue to `pendingBurn` (flushed in batches,
///      one base unit kept so the slot stays non-zero). A post is paid from the requester's credit
///      only when it covers the whole escrow, otherwise from the wallet without touching the
///      credit slot, so that the audit fee refunded there at finalize usually writes a non-zero slot. Rewards are capped at 2^88 - 1 base units
///      (3.09e8 tokens of 18 decimals) so that the hot word fits; anchor blocks below 2^32.
contract JobMarket is IJobMarket, JobMarketState, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @dev What an optimistic settlement moved; fields of `JobFinalized`.
    struct Optimistic {
        bool failure;
        uint96 payout; // R + rebate to the provider (result), R + fee to the requester (failure)
        uint96 emission; // the rebate kappa * fee
        uint96 burned;
        uint96 auditRefund; // A, credited to the requester
    }

    /// @dev What a settlement moved; fields of `JobSettled`.
    struct Moved {
        uint96 providerPayout;
        uint96 requesterRefund;
        uint96 toCourt;
        uint96 burned;
    }

    IRewardToken private immutable _token;
    IRandomness private immutable _randomness;
    bool private immutable _nativeBlockhash;
    /// @dev JobMarketGovernance, which `setParams` delegates to (see JobMarketState).
    address private immutable _governance;

    modifier whenNotPaused() {
        if (_config.flags & _PAUSED != 0) revert MarketPaused();
        _;
    }

    /// @notice Deploys the market and its staking contract (whose market is fixed to this one).
    ///         Jobs can be posted once governance has set the first parameter version (with the
    ///         court, deployed after the market): `setParams`.
    /// @param token_ The reward token (the market burns; it never mints).
    /// @param randomness_ The randomness source of the draws.
    /// @param nativeBlockhash_ True only when `randomness_` is a BlockhashRandomness: the draw then
    ///        reads `blockhash(anchor)` in place (the value the source returns; saves an external
    ///        call) and asks the source only once the hash is gone (a recorded value, or expired).
    /// @param drawDelay_ D: blocks between a submission and its anchor block (1..MAX_DRAW_DELAY).
    /// @param admin Receives every role here and in the staking contract.
    /// @param minStake Staking's registration minimum (base units).
    /// @param unbondingDelay Staking's unbonding delay (seconds).
    constructor(
        address token_,
        address randomness_,
        bool nativeBlockhash_,
        uint16 drawDelay_,
        address admin,
        uint96 minStake,
        uint32 unbondingDelay
    )
        JobMarketState(
            IProviderStaking(address(new ProviderStaking(token_, admin, minStake, unbondingDelay))), drawDelay_
        )
    {
        _token = IRewardToken(token_);
        _randomness = IRandomness(randomness_);
        _nativeBlockhash = nativeBlockhash_;
        _governance = address(new JobMarketGovernance(_staking, drawDelay_));
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GOVERNOR_ROLE, admin);
        _grantRole(GUARDIAN_ROLE, admin);
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
    function postJobs(JobPost[] calldata posts) external nonReentrant returns (uint256 firstJobId) {
        uint256 n = posts.length;
        if (n == 0) revert EmptyBatch();
        // The whole batch's escrow first, so that every JobPosted can say where its escrow came from.
        Bounds memory b = _bounds[_config.version];
        uint256 total = 0;
        for (uint256 i = 0; i < n; ++i) {
            total += _escrowOf(posts[i].terms, b);
        }
        bool fromCredit = _takeFromCredit(total);
        // Called through a pointer: solc then keeps inlining `_createJob` into the single post
        // (one direct call), which a second direct call here would stop (+890 gas per postJob).
        function(bytes32, bytes calldata, JobTerms calldata) internal returns (uint256, Econ memory) create = _createJob;
        for (uint256 i = 0; i < n; ++i) {
            JobPost calldata p = posts[i];
            (uint256 jobId, Econ memory e) = create(p.specHash, p.spec, p.terms);
            if (i == 0) firstJobId = jobId;
            _emitPosted(jobId, p.specHash, fromCredit ? _escrowAt(p.terms.reward, e) : 0, e, p.terms, p.spec);
        }
        if (!fromCredit) IERC20(address(_token)).safeTransferFrom(msg.sender, address(this), total);
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
        uint256 escrow = _escrowOf(terms, _bounds[_config.version]);
        // A front-run permit makes this call fail; the allowance it set is then already in place,
        // and `transferFrom` in `_post` reverts with the token's own error if it is not.
        try IERC20Permit(address(_token)).permit(msg.sender, address(this), escrow, permitDeadline, v, r, s) {} catch {}
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
        if (msg.sender != j.econ.requester) revert NotRequester(jobId, msg.sender, j.econ.requester);
        j.status = JobStatus.Cancelled;
        uint96 refund = _escrow(j);
        _credits[msg.sender] += refund;
        emit JobCancelled(jobId, msg.sender, refund);
    }

    // ---------------------------------------------------------------- provider

    /// @inheritdoc IJobMarket
    function claimJob(uint256 jobId) external whenNotPaused {
        Job storage j = _jobAt(jobId, JobStatus.Open);
        if (block.timestamp > j.claimOrAnchor) revert TooLate(jobId, j.claimOrAnchor, block.timestamp);
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
    function claimJobs(uint256[] calldata jobIds) external whenNotPaused {
        uint256 n = jobIds.length;
        if (n == 0) revert EmptyBatch();
        uint256 total = 0;
        for (uint256 i = 0; i < n; ++i) {
            total += _collateralOf(_claimable(jobIds[i]));
        }
        // One lock for the sum; `_claim` checks each job is still Open, so a repeated id reverts.
        uint24 providerId = _staking.lock(msg.sender, SafeCast.toUint96(total));
        for (uint256 i = 0; i < n; ++i) {
            _claim(jobIds[i], providerId);
        }
    }

    /// @inheritdoc IJobMarket
    function submitResult(uint256 jobId, bytes32 commitment, string calldata resultURI) external {
        _submit(jobId, commitment, resultURI, 0);
    }

    /// @inheritdoc IJobMarket
    function submitResults(JobResult[] calldata results) external {
        uint256 n = results.length;
        if (n == 0) revert EmptyBatch();
        uint24 checked = 0;
        for (uint256 i = 0; i < n; ++i) {
            JobResult calldata r = results[i];
            checked = _submit(r.jobId, r.commitment, r.resultURI, checked);
        }
    }

    /// @inheritdoc IJobMarket
    function submitFailure(uint256 jobId, uint8 code, bytes32 commitment) external nonReentrant {
        if (code == uint8(FailureCode.None) || code > uint8(type(FailureCode).max)) revert InvalidFailureCode(code);
        if (commitment == bytes32(0)) revert EmptyCommitment();
        (Job storage j,) = _assignedJob(jobId, 0);
        if (code == uint8(FailureCode.ImageUnavailable) || code == uint8(FailureCode.InputHashMismatch)) {
            emit FailureSubmitted(jobId, msg.sender, code, commitment, 0, 0);
            _noFault(jobId, j);
            return;
        }
        j.word0 = commitment;
        j.flags |= code;
        (uint32 challengeDeadline, uint64 anchorBlock) = _startChallengeWindow(j);
        emit FailureSubmitted(jobId, msg.sender, code, commitment, challengeDeadline, anchorBlock);
    }

    // ---------------------------------------------------------------- anyone

    /// @inheritdoc IJobMarket
    function finalize(uint256 jobId) external nonReentrant {
        _finalizeIfReady(jobId, true);
    }

    /// @inheritdoc IJobMarket
    function finalizeMany(uint256[] calldata jobIds) external nonReentrant returns (uint256 finalized) {
        for (uint256 i = 0; i < jobIds.length; ++i) {
            if (_finalizeIfReady(jobIds[i], false)) ++finalized;
        }
    }

    /// @inheritdoc IJobMarket
    function expireJob(uint256 jobId) external {
        Job storage j = _jobAt(jobId, JobStatus.Open);
        if (block.timestamp <= j.claimOrAnchor) {
            revert TooEarly(jobId, uint256(j.claimOrAnchor) + 1, block.timestamp);
        }
        j.status = JobStatus.Expired;
        address requester = j.econ.requester;
        uint96 refund = _escrow(j);
        _credits[requester] += refund;
        emit JobExpired(jobId, requester, refund);
    }

    /// @inheritdoc IJobMarket
    function timeoutJob(uint256 jobId) external nonReentrant {
        Job storage j = _jobAt(jobId, JobStatus.Claimed);
        if (block.timestamp <= j.deadline) revert TooEarly(jobId, uint256(j.deadline) + 1, block.timestamp);
        uint96 collateral = _collateralOf(j);
        uint24 providerId = j.providerId;
        bool reopened = block.timestamp <= j.claimOrAnchor;
        uint96 refund = 0;
        if (reopened) {
            j.status = JobStatus.Open;
            j.providerId = 0;
            j.deadline = 0;
        } else {
            j.status = JobStatus.TimedOut;
            refund = _escrow(j);
            _credits[j.econ.requester] += refund;
        }
        _pendingBurn += collateral;
        address provider = _staking.slash(providerId, collateral, jobId, address(this));
        emit JobTimedOut(jobId, provider, collateral, reopened, refund);
    }

    /// @inheritdoc IJobMarket
    function flushBurn() external nonReentrant {
        uint256 pending = _pendingBurn;
        if (pending <= 1) return;
        _pendingBurn = 1;
        uint256 amount = pending - 1;
        emit BurnFlushed(amount);
        _token.burn(amount);
    }

    /// @inheritdoc IJobMarket
    function withdraw() external nonReentrant {
        uint256 amount = _credits[msg.sender] & ~_KEPT;
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        // The slot stays non-zero (see `_KEPT`): the next credit updates it instead of creating it.
        _credits[msg.sender] = _KEPT;
        emit Withdrawn(msg.sender, amount);
        IERC20(address(_token)).safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- court

    /// @inheritdoc IJobMarket
    function isDrawn(uint256 jobId) external view returns (bool) {
        Job storage j = _jobs[jobId];
        JobStatus status = j.status;
        if (!_hasCommitment(status)) {
            if (status == JobStatus.None) revert UnknownJob(jobId);
            revert WrongStatus(jobId, status, JobStatus.Submitted);
        }
        uint256 state = _drawState(jobId, j.econ.auditBps, j.claimOrAnchor);
        if (state == _NOT_READY) revert IRandomness.RandomnessNotReady(j.claimOrAnchor, block.number);
        return state == _DRAWN;
    }

    /// @inheritdoc IJobMarket
    function verificationInfo(uint256 jobId) external view returns (VerificationInfo memory info) {
        Job memory j = _jobs[jobId];
        if (j.status == JobStatus.None) revert UnknownJob(jobId);
        bool submitted = _hasCommitment(j.status);
        info.status = j.status;
        info.requester = j.econ.requester;
        info.provider = j.providerId == 0 ? address(0) : _staking.providerOf(j.providerId);
        info.reward = j.reward;
        info.collateral = _collateral(j.reward, j.collateralPct);
        info.auditFee = _bps(j.reward, j.econ.auditFeeBps);
        info.commitment = submitted ? j.word0 : bytes32(0);
        info.failureCode = j.flags & _CODE_MASK;
        info.maxRuntime = j.maxRuntime;
        info.submitTime = submitted ? j.deadline - j.challengeWindow : 0;
        info.anchorBlock = submitted ? j.claimOrAnchor : 0;
        info.auditBps = j.econ.auditBps;
        info.court = _extras[j.econ.version].court;
        info.challengeDeadline = submitted ? j.deadline : 0;
    }

    /// @inheritdoc IJobMarket
    function beginVerification(uint256 jobId) external {
        Job storage j = _jobAt(jobId, JobStatus.Submitted);
        address court = _onlyCourtOf(jobId, j);
        if (j.flags & _VERIFY_NONE != 0) revert NotVerifiable(jobId);
        j.status = JobStatus.Disputed;
        emit VerificationStarted(jobId, court);
    }

    /// @inheritdoc IJobMarket
    function settle(uint256 jobId, Outcome outcome) external nonReentrant returns (uint96 toCourt) {
        Job storage j = _jobs[jobId];
        JobStatus status = j.status;
        if (status != JobStatus.Disputed && status != JobStatus.Submitted) {
            if (status == JobStatus.None) revert UnknownJob(jobId);
            revert WrongStatus(jobId, status, JobStatus.Disputed);
        }
        address court = _onlyCourtOf(jobId, j);
        if (outcome == Outcome.None) revert InvalidOutcome();
        j.status = JobStatus.Resolved;
        Econ memory e = j.econ;
        Moved memory m = Moved({providerPayout: 0, requesterRefund: 0, toCourt: 0, burned: 0});
        if (outcome == Outcome.Unaudited) {
            (, Optimistic memory o) = _optimistic(j, e);
            if (o.failure) {
                m.requesterRefund = o.payout + o.auditRefund;
            } else {
                (m.providerPayout, m.requesterRefund) = (o.payout, o.auditRefund);
            }
            m.burned = o.burned;
        } else {
            m = _settleVerified(jobId, j, e, outcome, court);
        }
        toCourt = m.toCourt;
        emit JobSettled(jobId, outcome, m.providerPayout, m.requesterRefund, toCourt, m.burned);
        // The court's share of the escrow (A); a ProviderWrong slash went from staking directly.
        uint96 fromEscrow = outcome == Outcome.ProviderWrong ? _bps(j.reward, e.auditFeeBps) : toCourt;
        if (fromEscrow != 0) IERC20(address(_token)).safeTransfer(court, fromEscrow);
    }

    // ---------------------------------------------------------------- governance

    /// @inheritdoc IJobMarket
    /// @dev Runs in JobMarketGovernance's code on this market's storage (the role check included).
    function setParams(MarketParams calldata) external {
        Address.functionDelegateCall(_governance, msg.data);
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
        bool submitted = _hasCommitment(j.status);
        v.specHash = submitted ? bytes32(0) : j.word0;
        v.commitment = submitted ? j.word0 : bytes32(0);
        v.requester = j.econ.requester;
        v.reward = j.reward;
        v.fee = _bps(j.reward, j.econ.feeBps);
        v.auditFee = _bps(j.reward, j.econ.auditFeeBps);
        v.status = j.status;
        v.failureCode = j.flags & _CODE_MASK;
        v.verifyMode = j.flags & _VERIFY_NONE != 0 ? 1 : 0;
        v.provider = j.providerId == 0 ? address(0) : _staking.providerOf(j.providerId);
        v.claimDeadline = submitted ? 0 : j.claimOrAnchor;
        v.deadline = j.deadline;
        v.anchorBlock = submitted ? j.claimOrAnchor : 0;
        v.maxRuntime = j.maxRuntime;
        v.challengeWindow = j.challengeWindow;
        v.collateralPct = j.collateralPct;
        v.auditBps = j.econ.auditBps;
        v.paramsVersion = j.econ.version;
        v.collateral = _collateral(j.reward, j.collateralPct);
    }

    /// @inheritdoc IJobMarket
    function jobCount() external view returns (uint256) {
        return _config.jobCount;
    }

    /// @inheritdoc IJobMarket
    function withdrawableOf(address account) external view returns (uint256) {
        return _credits[account] & ~_KEPT;
    }

    /// @inheritdoc IJobMarket
    function pendingBurn() external view returns (uint256) {
        return _pendingBurn;
    }

    /// @inheritdoc IJobMarket
    function params() external view returns (MarketParams memory) {
        return _paramsAt(_config.version);
    }

    /// @inheritdoc IJobMarket
    function paramsAt(uint32 version) external view returns (MarketParams memory) {
        return _paramsAt(version);
    }

    /// @inheritdoc IJobMarket
    function paramsVersion() external view returns (uint32) {
        return _config.version;
    }

    /// @inheritdoc IJobMarket
    function minUnbondingDelay() external view returns (uint256) {
        uint24 version = _config.version;
        if (version == 0) return 0;
        Bounds memory b = _bounds[version];
        return _horizon(b.maxClaimWindow, b.maxRuntime, b.maxChallengeWindow, _extras[version].court);
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
    function randomness() external view returns (address) {
        return address(_randomness);
    }

    /// @inheritdoc IJobMarket
    function drawDelay() external view returns (uint64) {
        return _drawDelay;
    }

    // ---------------------------------------------------------------- internal

    uint256 private constant _UNDRAWN = 0;
    uint256 private constant _DRAWN = 1;
    uint256 private constant _NOT_READY = 2;

    function _post(bytes32 specHash, bytes calldata spec, JobTerms calldata terms) private returns (uint256 jobId) {
        Econ memory e;
        (jobId, e) = _createJob(specHash, spec, terms);
        uint256 total = uint256(terms.reward) + _bps(terms.reward, e.feeBps) + _bps(terms.reward, e.auditFeeBps);
        // Pay from the requester's withdrawable balance when it covers the whole escrow, else
        // from its wallet (see the gas layout note: the credit slot is not written then).
        uint256 credit = _credits[msg.sender];
        bool fromCredit = (credit & ~_KEPT) >= total;
        if (fromCredit) {
            // Cannot underflow: total <= the balance, which lies below the `_KEPT` bit (kept set).
            unchecked {
                _credits[msg.sender] = credit - total;
            }
        }
        _emitPosted(jobId, specHash, fromCredit ? uint96(total) : 0, e, terms, spec);
        if (!fromCredit) IERC20(address(_token)).safeTransferFrom(msg.sender, address(this), total);
    }

    /// @dev Pays `total` from the caller's withdrawable balance when it covers all of it (true);
    ///      otherwise leaves the credit slot untouched (false: the caller pays from its wallet).
    function _takeFromCredit(uint256 total) private returns (bool) {
        uint256 credit = _credits[msg.sender];
        if ((credit & ~_KEPT) < total) return false;
        // Cannot underflow: total <= the balance, which lies below the `_KEPT` bit (kept set).
        unchecked {
            _credits[msg.sender] = credit - total;
        }
        return true;
    }

    /// @dev R + f*R + A of a job posted now under bounds `b` (A = 0 for verify-none).
    function _escrowOf(JobTerms calldata terms, Bounds memory b) private pure returns (uint256) {
        return uint256(terms.reward) + _bps(terms.reward, b.feeBps)
            + (terms.verifyMode == 1 ? 0 : _bps(terms.reward, b.auditFeeBps));
    }

    /// @dev R + f*R + A of a job with reward `reward` and parameter snapshot `e`.
    function _escrowAt(uint96 reward, Econ memory e) private pure returns (uint96) {
        return reward + _bps(reward, e.feeBps) + _bps(reward, e.auditFeeBps);
    }

    /// @dev The Open job `jobId`, before its claim deadline.
    function _claimable(uint256 jobId) private view returns (Job storage j) {
        j = _jobAt(jobId, JobStatus.Open);
        if (block.timestamp > j.claimOrAnchor) revert TooLate(jobId, j.claimOrAnchor, block.timestamp);
    }

    /// @dev Marks the Open job `jobId` claimed by provider `providerId`, whose collateral is locked.
    function _claim(uint256 jobId, uint24 providerId) private {
        Job storage j = _jobAt(jobId, JobStatus.Open);
        // uint32 holds unix times until 2106; maxRuntime is bounded by MAX_RUNTIME.
        uint32 submitDeadline = uint32(block.timestamp) + j.maxRuntime;
        j.status = JobStatus.Claimed;
        j.deadline = submitDeadline;
        j.providerId = providerId;
        emit JobClaimed(jobId, msg.sender, _collateralOf(j), submitDeadline);
    }

    /// @dev Submits a result. `checked`: a provider id already known to be the caller's (0: none).
    ///      Returns the job's provider id (the caller's).
    function _submit(uint256 jobId, bytes32 commitment, string calldata resultURI, uint24 checked)
        private
        returns (uint24 providerId)
    {
        if (commitment == bytes32(0)) revert EmptyCommitment();
        Job storage j;
        (j, providerId) = _assignedJob(jobId, checked);
        j.word0 = commitment;
        (uint32 challengeDeadline, uint64 anchorBlock) = _startChallengeWindow(j);
        emit ResultSubmitted(jobId, msg.sender, commitment, resultURI, challengeDeadline, anchorBlock);
    }

    /// @dev Checks the post against the current version and stores the job (split out of `_post`
    ///      to keep the legacy code generator's stack within reach).
    function _createJob(bytes32 specHash, bytes calldata spec, JobTerms calldata terms)
        private
        returns (uint256 jobId, Econ memory e)
    {
        Config memory c = _config;
        if (c.flags & _PAUSED != 0) revert MarketPaused();
        if (c.version == 0) revert NotConfigured();
        Bounds memory b = _bounds[c.version];
        _checkPost(specHash, spec, terms, b);
        jobId = c.jobCount + 1; // checked: reverts after 2^32 - 1 jobs
        _config.jobCount = uint32(jobId);
        bool none = terms.verifyMode == 1;
        e = Econ({
            requester: msg.sender,
            version: c.version,
            auditBps: none ? 0 : _auditBps(b, terms.collateralPct),
            feeBps: b.feeBps,
            kappaBps: b.kappaBps,
            auditFeeBps: none ? 0 : b.auditFeeBps
        });
        // uint32 holds unix times until 2106; claimWindow is bounded by MAX_CLAIM_WINDOW.
        uint32 claimDeadline = uint32(block.timestamp) + terms.claimWindow;
        _jobs[jobId] = Job({
            word0: specHash,
            econ: e,
            reward: uint88(terms.reward), // bounded by _checkPost
            status: JobStatus.Open,
            flags: none ? _VERIFY_NONE : 0,
            providerId: 0,
            claimOrAnchor: claimDeadline,
            deadline: 0,
            maxRuntime: terms.maxRuntime,
            challengeWindow: terms.challengeWindow,
            collateralPct: terms.collateralPct
        });
    }

    /// @dev Reverts unless the spec matches its hash and the terms are in bounds.
    function _checkPost(bytes32 specHash, bytes calldata spec, JobTerms calldata terms, Bounds memory b) private pure {
        if (terms.reward == 0) revert ZeroReward();
        if (terms.reward > type(uint88).max) revert TermOutOfBounds("reward", terms.reward, 1, type(uint88).max);
        if (terms.verifyMode > 1) revert InvalidVerifyMode(terms.verifyMode);
        if (spec.length == 0) revert EmptySpec();
        bytes32 actual = keccak256(spec);
        if (actual != specHash) revert SpecHashMismatch(specHash, actual);
        _checkTerm("claimWindow", terms.claimWindow, b.minClaimWindow, b.maxClaimWindow);
        _checkTerm("maxRuntime", terms.maxRuntime, b.minRuntime, b.maxRuntime);
        // >= minChallengeWindow >= court.requiredChallengeWindow() (checked in setParams), C8.
        _checkTerm("challengeWindow", terms.challengeWindow, b.minChallengeWindow, b.maxChallengeWindow);
        _checkTerm("collateralPct", terms.collateralPct, b.minCollateralPct, b.maxCollateralPct);
        _checkTerm("cpuSeconds", terms.cpuSeconds, 1, uint256(terms.maxRuntime) * MAX_CPUS_PER_JOB);
    }

    /// @dev Split out of `_post` to keep the stack within reach.
    function _emitPosted(
        uint256 jobId,
        bytes32 specHash,
        uint96 fromCredit,
        Econ memory e,
        JobTerms calldata terms,
        bytes calldata spec
    ) private {
        emit JobPosted(jobId, msg.sender, specHash, terms, fromCredit, e.auditBps, e.version, spec);
    }

    /// @dev p_job = min(1, alpha*g/(g + k - beta)) in basis points, g = 1 + kappa*f (C1).
    function _auditBps(Bounds memory b, uint16 collateralPct) private pure returns (uint16) {
        uint256 g = _BPS + uint256(b.kappaBps) * b.feeBps / _BPS;
        // k - beta > 0: collateralPct >= 400 (k >= 4) and beta <= 0.1.
        uint256 p = uint256(b.alphaBps) * g / (g + uint256(collateralPct) * _PCT - b.betaBps);
        return p >= _BPS ? uint16(_BPS) : uint16(p);
    }

    function _drawnBy(bytes32 r, uint256 jobId, uint16 auditBps) private pure returns (uint256) {
        return uint256(keccak256(abi.encode(r, jobId))) % _BPS < auditBps ? _DRAWN : _UNDRAWN;
    }

    /// @dev (_UNDRAWN, _DRAWN or _NOT_READY) for a submitted job with p_job `auditBps` and anchor block `anchor`.
    function _drawState(uint256 jobId, uint16 auditBps, uint32 anchor) private view returns (uint256) {
        if (auditBps == 0) return _UNDRAWN;
        if (auditBps >= _BPS) return _DRAWN;
        if (_nativeBlockhash && block.number > anchor) {
            bytes32 h = blockhash(anchor);
            if (h != bytes32(0)) return _drawnBy(h, jobId, auditBps);
        }
        try _randomness.randomness(anchor) returns (bytes32 r) {
            return _drawnBy(r, jobId, auditBps);
        } catch {
            // Expired randomness counts as drawn: a provider cannot escape a draw by letting it lapse.
            (, bool expired) = _randomness.status(anchor);
            return expired ? _DRAWN : _NOT_READY;
        }
    }

    /// @dev Finalizes job `jobId` if it is Submitted, past its challenge deadline and not drawn;
    ///      otherwise reverts (`strict`) or returns false.
    function _finalizeIfReady(uint256 jobId, bool strict) private returns (bool) {
        Job storage j = _jobs[jobId];
        JobStatus status = j.status;
        if (status != JobStatus.Submitted) {
            if (!strict) return false;
            if (status == JobStatus.None) revert UnknownJob(jobId);
            revert WrongStatus(jobId, status, JobStatus.Submitted);
        }
        uint32 deadline = j.deadline;
        if (block.timestamp <= deadline) {
            if (!strict) return false;
            revert TooEarly(jobId, uint256(deadline) + 1, block.timestamp);
        }
        Econ memory e = j.econ;
        uint32 anchor = j.claimOrAnchor;
        uint256 state = _drawState(jobId, e.auditBps, anchor);
        if (state != _UNDRAWN) {
            if (!strict) return false;
            if (state == _DRAWN) revert JobDrawn(jobId);
            revert IRandomness.RandomnessNotReady(anchor, block.number);
        }
        j.status = JobStatus.Finalized;
        (address provider, Optimistic memory o) = _optimistic(j, e);
        emit JobFinalized(jobId, provider, o.failure, o.payout, o.emission);
        return true;
    }

    /// @dev An undrawn (or Unaudited) job: a result pays the provider R + rebate, accrues the rest
    ///      of the fee to the burn and refunds A; a failure refunds R + fee + A. Unlocks the collateral.
    function _optimistic(Job storage j, Econ memory e) private returns (address provider, Optimistic memory o) {
        o.failure = j.flags & _CODE_MASK != 0;
        uint96 reward = j.reward;
        uint96 fee = _bps(reward, e.feeBps);
        o.auditRefund = _bps(reward, e.auditFeeBps);
        provider = _staking.unlock(j.providerId, _collateralOf(j), !o.failure);
        if (o.failure) {
            o.payout = reward + fee;
            _credits[e.requester] += uint256(o.payout) + o.auditRefund;
        } else {
            o.emission = _bps(fee, e.kappaBps);
            o.payout = reward + o.emission;
            o.burned = fee - o.emission;
            _credits[provider] += o.payout;
            _pendingBurn += o.burned;
            if (o.auditRefund != 0) _credits[e.requester] += o.auditRefund;
        }
    }

    /// @dev The verified outcomes of `settle` (see IJobMarket.settle's table).
    function _settleVerified(uint256 jobId, Job storage j, Econ memory e, Outcome outcome, address court)
        private
        returns (Moved memory m)
    {
        bool failure = j.flags & _CODE_MASK != 0;
        uint96 reward = j.reward;
        uint96 fee = _bps(reward, e.feeBps);
        uint96 auditFee = _bps(reward, e.auditFeeBps);
        uint96 collateral = _collateralOf(j);
        if (outcome == Outcome.ProviderWrong) {
            // A goes to the court with the slashed collateral: it pays the auditor who caught it.
            m.toCourt = collateral + auditFee;
            m.requesterRefund = reward + fee;
            _credits[e.requester] += m.requesterRefund;
            _staking.slash(j.providerId, collateral, jobId, court);
            return m;
        }
        m.toCourt = auditFee;
        if (outcome == Outcome.Canary || failure) {
            _staking.unlock(j.providerId, collateral, false);
            m.requesterRefund = reward + fee;
            _credits[e.requester] += m.requesterRefund;
        } else {
            // ProviderRight or Split on a result: the provider is paid.
            address provider = _staking.unlock(j.providerId, collateral, true);
            uint96 rebate = _bps(fee, e.kappaBps);
            m.providerPayout = reward + rebate;
            m.burned = fee - rebate;
            _credits[provider] += m.providerPayout;
            _pendingBurn += m.burned;
        }
    }

    /// @dev An availability failure: both sides pay noFaultFeeBps * R, burned; reopen or refund.
    function _noFault(uint256 jobId, Job storage j) private {
        Econ memory e = j.econ;
        uint16 nfBps = _extras[e.version].noFaultFeeBps;
        uint96 reward = j.reward;
        uint96 collateral = _collateralOf(j);
        uint96 noFaultFee = _bps(reward, nfBps);
        uint96 providerFee = noFaultFee < collateral ? noFaultFee : collateral;
        uint24 providerId = j.providerId;
        uint96 requesterFee;
        uint96 refund = 0;
        bool reopened = block.timestamp <= j.claimOrAnchor && e.feeBps >= nfBps;
        if (reopened) {
            // The requester's share comes out of the escrowed fee; the job keeps R and A.
            uint16 newFeeBps = e.feeBps - nfBps;
            requesterFee = _bps(reward, e.feeBps) - _bps(reward, newFeeBps);
            j.econ.feeBps = newFeeBps;
            j.status = JobStatus.Open;
            j.providerId = 0;
            j.deadline = 0;
        } else {
            uint96 escrow = _escrow(j);
            requesterFee = noFaultFee < escrow ? noFaultFee : escrow;
            refund = escrow - requesterFee;
            j.status = JobStatus.Expired;
            _credits[e.requester] += refund;
        }
        _pendingBurn += uint256(providerFee) + requesterFee;
        if (providerFee != 0) _staking.slash(providerId, providerFee, jobId, address(this));
        _staking.unlock(providerId, collateral - providerFee, false);
        emit NoFaultFailure(jobId, msg.sender, providerFee, requesterFee, reopened, refund);
    }

    /// @dev The court of job `j`'s parameter version; reverts unless it is the caller.
    function _onlyCourtOf(uint256 jobId, Job storage j) private view returns (address court) {
        court = _extras[j.econ.version].court;
        if (msg.sender != court) revert NotCourt(jobId, msg.sender, court);
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

    /// @dev The claimed job `jobId` and its provider id, whose provider must be the caller, before
    ///      its submit deadline. `checked`: a provider id already known to be the caller's (0: none;
    ///      a claimed job's provider id is never 0), whose address is not looked up again.
    function _assignedJob(uint256 jobId, uint24 checked) private view returns (Job storage j, uint24 providerId) {
        j = _jobAt(jobId, JobStatus.Claimed);
        providerId = j.providerId;
        if (providerId != checked) {
            address provider = _staking.providerOf(providerId);
            if (msg.sender != provider) revert NotAssignedProvider(jobId, msg.sender, provider);
        }
        if (block.timestamp > j.deadline) revert TooLate(jobId, j.deadline, block.timestamp);
    }

    function _startChallengeWindow(Job storage j) private returns (uint32 challengeDeadline, uint64 anchorBlock) {
        // uint32 holds unix times until 2106; challengeWindow is bounded by MAX_CHALLENGE_WINDOW.
        challengeDeadline = uint32(block.timestamp) + j.challengeWindow;
        anchorBlock = uint64(block.number) + _drawDelay;
        j.status = JobStatus.Submitted;
        j.deadline = challengeDeadline;
        j.claimOrAnchor = uint32(anchorBlock); // block numbers below 2^32 (see the gas layout note)
    }

    /// @dev Whether word 0 holds a commitment and claimOrAnchor the anchor block.
    function _hasCommitment(JobStatus s) private pure returns (bool) {
        return
            s == JobStatus.Submitted || s == JobStatus.Disputed || s == JobStatus.Finalized || s == JobStatus.Resolved;
    }

    /// @dev What the requester has escrowed for job `j`: R + fee + A.
    function _escrow(Job storage j) private view returns (uint96) {
        uint96 reward = j.reward;
        Econ memory e = j.econ;
        return reward + _bps(reward, e.feeBps) + _bps(reward, e.auditFeeBps);
    }

    function _collateralOf(Job storage j) private view returns (uint96) {
        return _collateral(j.reward, j.collateralPct);
    }

    /// @dev Cannot overflow: reward < 2^88 and pct <= MAX_COLLATERAL_PCT < 2^10, so the result < 2^95.
    function _collateral(uint96 reward, uint16 pct) private pure returns (uint96) {
        return uint96(uint256(reward) * pct / _PCT);
    }

    /// @dev `amount * bps / 10_000`; cannot overflow for amount < 2^88 and bps < 2^16.
    function _bps(uint96 amount, uint16 bps) private pure returns (uint96) {
        return uint96(uint256(amount) * bps / _BPS);
    }

    function _checkTerm(bytes32 name, uint256 value, uint256 min, uint256 max) private pure {
        if (value < min || value > max) revert TermOutOfBounds(name, value, min, max);
    }
}
