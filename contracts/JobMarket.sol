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
///      Gas layout: a job is three storage words: word 0, the provider's commitment, written at
///      submission (the spec hash is not stored: it is JobPosted's indexed topic); word 1, the
///      requester and the job's snapshot of the parameters it settles by (version, p_job, fee,
///      kappa, audit fee), read at settlement only; and the "hot" word, packed by hand, holding
///      the reward, status, flags (failure code, verify mode), provider id, claim deadline (the
///      anchor block once submitted), deadline, terms and the job's lap of the ring. Claim reads
///      and rewrites the hot word only, submit also writes word 0; finalize reads word 1 too and
///      one randomness value (the block hash in place when the source is block hashes).
///
///      The words live in a ring of `jobSlots` entries (fixed at deployment): job `id` takes entry
///      id % jobSlots, rewriting the words of the job jobSlots ids before it once that one has
///      settled (Finalized, Cancelled, Expired, TimedOut or Resolved): 5,000 gas a word instead
///      of 22,100 for a new one. When that job has not settled yet, the new job spills to words
///      of its own (the price of a new job, as without the ring), so nothing waits and nothing is
///      lost; a spilled job is found by its id after its entry. The hot word's lap (id /
///      jobSlots) tells the entry's job apart from the others of the entry; an id whose entry
///      holds a later job and that has no spilled words has settled and is Pruned: `getJob` says
///      only that, its events keep its history. Job ids stay below jobSlots * 2^23 (the lap's 23
///      bits) and 2^32.
///
///      Burns accrue to `pendingBurn` (flushed in batches, one base unit kept so the slot stays
///      non-zero). A post is paid from the requester's credit only when it covers the whole
///      escrow, otherwise from the wallet without touching the credit slot, so that the audit
///      fee refunded there at finalize usually writes a non-zero slot. Rewards are capped at
///      2^88 - 1 base units (3.09e8 tokens of 18 decimals) so that the hot word fits; anchor
///      blocks below 2^32. The pause flag for claims is copied into the staking word that
///      `lock` reads anyway (`ProviderStaking.setClaimsPaused`), so a claim reads no market
///      word but the job's.
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
    /// @dev The last job id: min(2^32 - 1, jobSlots * 2^23 - 1).
    uint256 private immutable _maxJobId;

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
    /// @param jobSlots Entries of the job ring (see the gas layout note): a job rewrites the words
    ///        of the job `jobSlots` ids before it when that one has settled. Job ids stay below
    ///        jobSlots * 2^23 (and 2^32).
    /// @param admin Receives every role here and in the staking contract.
    /// @param minStake Staking's registration minimum (base units).
    /// @param unbondingDelay Staking's unbonding delay (seconds).
    constructor(
        address token_,
        address randomness_,
        bool nativeBlockhash_,
        uint16 drawDelay_,
        uint32 jobSlots,
        address admin,
        uint96 minStake,
        uint32 unbondingDelay
    )
        JobMarketState(
            IProviderStaking(address(new ProviderStaking(token_, admin, minStake, unbondingDelay))),
            drawDelay_,
            jobSlots
        )
    {
        uint256 limit = (uint256(jobSlots) << 23) - 1;
        _maxJobId = limit < type(uint32).max ? limit : type(uint32).max;
        _token = IRewardToken(token_);
        _randomness = IRandomness(randomness_);
        _nativeBlockhash = nativeBlockhash_;
        _governance = address(new JobMarketGovernance(_staking, drawDelay_, jobSlots));
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
        (Job storage j, uint256 h) = _jobAt(jobId, JobStatus.Open);
        Econ memory e = j.econ;
        if (msg.sender != e.requester) revert NotRequester(jobId, msg.sender, e.requester);
        h = _withStatus(h, JobStatus.Cancelled);
        j.hot = h;
        uint96 refund = _escrowAt(_reward(h), e);
        _credits[msg.sender] += refund;
        emit JobCancelled(jobId, msg.sender, refund);
    }

    // ---------------------------------------------------------------- provider

    /// @inheritdoc IJobMarket
    /// @dev Paused: `_staking.lock` reverts MarketPaused (its copy of the flag, see setPaused).
    function claimJob(uint256 jobId) external {
        (Job storage j, uint256 h) = _jobAt(jobId, JobStatus.Open);
        if (block.timestamp > _claimOrAnchor(h)) revert TooLate(jobId, _claimOrAnchor(h), block.timestamp);
        uint96 collateral = _collateral(_reward(h), _collateralPct(h));
        // uint32 holds unix times until 2106; maxRuntime is bounded by MAX_RUNTIME.
        uint32 submitDeadline = uint32(block.timestamp) + _maxRuntime(h);
        h = _withStatus(h, JobStatus.Claimed);
        h = _with(h, _HOT_DEADLINE, 32, submitDeadline);
        // The staking contract is fixed at construction and only moves its own records.
        h = _with(h, _HOT_PROVIDER, 24, _staking.lock(msg.sender, collateral));
        j.hot = h;
        emit JobClaimed(jobId, msg.sender, collateral, submitDeadline);
    }

    /// @inheritdoc IJobMarket
    function claimJobs(uint256[] calldata jobIds) external {
        uint256 n = jobIds.length;
        if (n == 0) revert EmptyBatch();
        uint256 total = 0;
        for (uint256 i = 0; i < n; ++i) {
            uint256 h = _claimable(jobIds[i]);
            total += _collateral(_reward(h), _collateralPct(h));
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
        (Job storage j, uint256 h) = _assignedJob(jobId, 0);
        if (code == uint8(FailureCode.ImageUnavailable) || code == uint8(FailureCode.InputHashMismatch)) {
            emit FailureSubmitted(jobId, msg.sender, code, commitment, 0, 0);
            _noFault(jobId, j, h);
            return;
        }
        j.word0 = commitment;
        h |= uint256(code) << _HOT_FLAGS;
        uint32 challengeDeadline;
        uint64 anchorBlock;
        (h, challengeDeadline, anchorBlock) = _startChallengeWindow(h);
        j.hot = h;
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
        (Job storage j, uint256 h) = _jobAt(jobId, JobStatus.Open);
        if (block.timestamp <= _claimOrAnchor(h)) {
            revert TooEarly(jobId, uint256(_claimOrAnchor(h)) + 1, block.timestamp);
        }
        h = _withStatus(h, JobStatus.Expired);
        j.hot = h;
        Econ memory e = j.econ;
        address requester = e.requester;
        uint96 refund = _escrowAt(_reward(h), e);
        _credits[requester] += refund;
        emit JobExpired(jobId, requester, refund);
    }

    /// @inheritdoc IJobMarket
    function timeoutJob(uint256 jobId) external nonReentrant {
        (Job storage j, uint256 h) = _jobAt(jobId, JobStatus.Claimed);
        if (block.timestamp <= _deadline(h)) revert TooEarly(jobId, uint256(_deadline(h)) + 1, block.timestamp);
        uint96 collateral = _collateral(_reward(h), _collateralPct(h));
        uint24 providerId = _providerId(h);
        bool reopened = block.timestamp <= _claimOrAnchor(h);
        uint96 refund = 0;
        if (reopened) {
            h = _withStatus(h, JobStatus.Open);
            h = _with(h, _HOT_PROVIDER, 24, 0);
            h = _with(h, _HOT_DEADLINE, 32, 0);
        } else {
            h = _withStatus(h, JobStatus.TimedOut);
            Econ memory e = j.econ;
            refund = _escrowAt(_reward(h), e);
            _credits[e.requester] += refund;
        }
        j.hot = h;
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
        (Job storage j, uint256 h) = _jobRef(jobId);
        JobStatus status = _status(h);
        if (!_hasCommitment(status)) {
            if (status == JobStatus.None) revert UnknownJob(jobId);
            revert WrongStatus(jobId, status, JobStatus.Submitted);
        }
        uint256 state = _drawState(jobId, j.econ.auditBps, _claimOrAnchor(h));
        if (state == _NOT_READY) revert IRandomness.RandomnessNotReady(_claimOrAnchor(h), block.number);
        return state == _DRAWN;
    }

    /// @inheritdoc IJobMarket
    function verificationInfo(uint256 jobId) external view returns (VerificationInfo memory info) {
        (Job storage j, uint256 h) = _existingJob(jobId);
        info.status = _status(h);
        if (info.status == JobStatus.Pruned) return info;
        bool submitted = _hasCommitment(info.status);
        Econ memory e = j.econ;
        info.requester = e.requester;
        info.provider = _providerAddress(h);
        info.reward = _reward(h);
        info.collateral = _collateral(_reward(h), _collateralPct(h));
        info.auditFee = _bps(_reward(h), e.auditFeeBps);
        info.commitment = submitted ? j.word0 : bytes32(0);
        info.failureCode = _flags(h) & _CODE_MASK;
        info.maxRuntime = _maxRuntime(h);
        info.submitTime = submitted ? _deadline(h) - _challengeWindow(h) : 0;
        info.anchorBlock = submitted ? _claimOrAnchor(h) : 0;
        info.auditBps = e.auditBps;
        info.court = _extras[e.version].court;
        info.challengeDeadline = submitted ? _deadline(h) : 0;
    }

    /// @inheritdoc IJobMarket
    function beginVerification(uint256 jobId) external {
        (Job storage j, uint256 h) = _jobAt(jobId, JobStatus.Submitted);
        address court = _onlyCourtOf(jobId, j);
        if (_flags(h) & _VERIFY_NONE != 0) revert NotVerifiable(jobId);
        h = _withStatus(h, JobStatus.Disputed);
        j.hot = h;
        emit VerificationStarted(jobId, court);
    }

    /// @inheritdoc IJobMarket
    function settle(uint256 jobId, Outcome outcome) external nonReentrant returns (uint96 toCourt) {
        (Job storage j, uint256 h) = _jobRef(jobId);
        JobStatus status = _status(h);
        if (status != JobStatus.Disputed && status != JobStatus.Submitted) {
            if (status == JobStatus.None) revert UnknownJob(jobId);
            revert WrongStatus(jobId, status, JobStatus.Disputed);
        }
        address court = _onlyCourtOf(jobId, j);
        if (outcome == Outcome.None) revert InvalidOutcome();
        h = _withStatus(h, JobStatus.Resolved);
        j.hot = h;
        Econ memory e = j.econ;
        Moved memory m = Moved({providerPayout: 0, requesterRefund: 0, toCourt: 0, burned: 0});
        if (outcome == Outcome.Unaudited) {
            (, Optimistic memory o) = _optimistic(h, e);
            if (o.failure) {
                m.requesterRefund = o.payout + o.auditRefund;
            } else {
                (m.providerPayout, m.requesterRefund) = (o.payout, o.auditRefund);
            }
            m.burned = o.burned;
        } else {
            m = _settleVerified(jobId, h, e, outcome, court);
        }
        toCourt = m.toCourt;
        emit JobSettled(jobId, outcome, m.providerPayout, m.requesterRefund, toCourt, m.burned);
        // The court's share of the escrow (A); a ProviderWrong slash went from staking directly.
        uint96 fromEscrow = outcome == Outcome.ProviderWrong ? _bps(_reward(h), e.auditFeeBps) : toCourt;
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
        // Claims check the copy in staking, in the word its `lock` reads anyway.
        _staking.setClaimsPaused(paused_);
        emit PauseSet(paused_);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IJobMarket
    function getJob(uint256 jobId) external view returns (JobView memory v) {
        (Job storage j, uint256 h) = _existingJob(jobId);
        v.status = _status(h);
        if (v.status == JobStatus.Pruned) return v;
        bool submitted = _hasCommitment(v.status);
        Econ memory e = j.econ;
        v.commitment = submitted ? j.word0 : bytes32(0);
        v.requester = e.requester;
        v.reward = _reward(h);
        v.fee = _bps(_reward(h), e.feeBps);
        v.auditFee = _bps(_reward(h), e.auditFeeBps);
        v.failureCode = _flags(h) & _CODE_MASK;
        v.verifyMode = _flags(h) & _VERIFY_NONE != 0 ? 1 : 0;
        v.provider = _providerAddress(h);
        v.claimDeadline = submitted ? 0 : _claimOrAnchor(h);
        v.deadline = _deadline(h);
        v.anchorBlock = submitted ? _claimOrAnchor(h) : 0;
        v.maxRuntime = _maxRuntime(h);
        v.challengeWindow = _challengeWindow(h);
        v.collateralPct = _collateralPct(h);
        v.auditBps = e.auditBps;
        v.paramsVersion = e.version;
        v.collateral = _collateral(_reward(h), _collateralPct(h));
    }

    /// @inheritdoc IJobMarket
    function jobCount() external view returns (uint256) {
        return _config.jobCount;
    }

    /// @inheritdoc IJobMarket
    function jobSlots() external view returns (uint256) {
        return _jobSlots;
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

    /// @inheritdoc IJobMarket
    function maxReward() external view returns (uint256) {
        return _config.maxReward;
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

    /// @dev The hot word of the Open job `jobId`, before its claim deadline.
    function _claimable(uint256 jobId) private view returns (uint256 h) {
        (, h) = _jobAt(jobId, JobStatus.Open);
        if (block.timestamp > _claimOrAnchor(h)) revert TooLate(jobId, _claimOrAnchor(h), block.timestamp);
    }

    /// @dev Marks the Open job `jobId` claimed by provider `providerId`, whose collateral is locked.
    function _claim(uint256 jobId, uint24 providerId) private {
        (Job storage j, uint256 h) = _jobAt(jobId, JobStatus.Open);
        // uint32 holds unix times until 2106; maxRuntime is bounded by MAX_RUNTIME.
        uint32 submitDeadline = uint32(block.timestamp) + _maxRuntime(h);
        h = _withStatus(h, JobStatus.Claimed);
        h = _with(h, _HOT_DEADLINE, 32, submitDeadline);
        h = _with(h, _HOT_PROVIDER, 24, providerId);
        j.hot = h;
        emit JobClaimed(jobId, msg.sender, _collateral(_reward(h), _collateralPct(h)), submitDeadline);
    }

    /// @dev Submits a result. `checked`: a provider id already known to be the caller's (0: none).
    ///      Returns the job's provider id (the caller's).
    function _submit(uint256 jobId, bytes32 commitment, string calldata resultURI, uint24 checked)
        private
        returns (uint24 providerId)
    {
        if (commitment == bytes32(0)) revert EmptyCommitment();
        (Job storage j, uint256 h) = _assignedJob(jobId, checked);
        providerId = _providerId(h);
        j.word0 = commitment;
        uint32 challengeDeadline;
        uint64 anchorBlock;
        (h, challengeDeadline, anchorBlock) = _startChallengeWindow(h);
        j.hot = h;
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
        _checkPost(specHash, spec, terms, b, c.maxReward);
        jobId = uint256(c.jobCount) + 1;
        if (jobId > _maxJobId) revert JobLimitReached(_maxJobId);
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
        // The job's ring entry, unless the job there has not settled yet: then a fresh entry of
        // its own (see the gas layout note).
        uint256 slots = _jobSlots;
        Job storage j = _ring[jobId % slots];
        uint256 previous = j.hot;
        if (previous != 0 && !_isSettled(_status(previous))) j = _spilled[jobId];
        j.econ = e; // word 0 waits for the commitment: the spec hash is JobPosted's (an indexed topic)
        // Every value fits its field: reward < 2^88 (_checkPost), the terms within the version's
        // bounds (setParams keeps those within MAX_*), the lap < 2^23 (the job limit).
        j.hot = _newHot(
            terms.reward,
            none ? _VERIFY_NONE : 0,
            claimDeadline,
            terms.maxRuntime,
            terms.challengeWindow,
            terms.collateralPct,
            jobId / slots
        );
    }

    /// @dev Reverts unless the spec matches its hash and the terms are in bounds. `maxReward` (the
    ///      current version's, < 2^80) keeps R within what every court member can be seated for (C6).
    function _checkPost(
        bytes32 specHash,
        bytes calldata spec,
        JobTerms calldata terms,
        Bounds memory b,
        uint256 maxReward_
    ) private pure {
        if (terms.reward < _MIN_REWARD || terms.reward > maxReward_) {
            revert TermOutOfBounds("reward", terms.reward, _MIN_REWARD, maxReward_);
        }
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
        (Job storage j, uint256 h) = _jobRef(jobId);
        JobStatus status = _status(h);
        if (status != JobStatus.Submitted) {
            if (!strict) return false;
            if (status == JobStatus.None) revert UnknownJob(jobId);
            revert WrongStatus(jobId, status, JobStatus.Submitted);
        }
        uint32 deadline = _deadline(h);
        if (block.timestamp <= deadline) {
            if (!strict) return false;
            revert TooEarly(jobId, uint256(deadline) + 1, block.timestamp);
        }
        Econ memory e = j.econ;
        uint32 anchor = _claimOrAnchor(h);
        uint256 state = _drawState(jobId, e.auditBps, anchor);
        if (state != _UNDRAWN) {
            if (!strict) return false;
            if (state == _DRAWN) revert JobDrawn(jobId);
            revert IRandomness.RandomnessNotReady(anchor, block.number);
        }
        h = _withStatus(h, JobStatus.Finalized);
        j.hot = h;
        (address provider, Optimistic memory o) = _optimistic(h, e);
        emit JobFinalized(jobId, provider, o.failure, o.payout, o.emission);
        return true;
    }

    /// @dev An undrawn (or Unaudited) job: a result pays the provider R + rebate, accrues the rest
    ///      of the fee to the burn and refunds A; a failure refunds R + fee + A. Unlocks the collateral.
    function _optimistic(uint256 h, Econ memory e) private returns (address provider, Optimistic memory o) {
        o.failure = _flags(h) & _CODE_MASK != 0;
        uint96 reward = _reward(h);
        uint96 fee = _bps(reward, e.feeBps);
        o.auditRefund = _bps(reward, e.auditFeeBps);
        provider = _staking.unlock(_providerId(h), _collateral(reward, _collateralPct(h)), !o.failure);
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
    function _settleVerified(uint256 jobId, uint256 h, Econ memory e, Outcome outcome, address court)
        private
        returns (Moved memory m)
    {
        bool failure = _flags(h) & _CODE_MASK != 0;
        uint96 reward = _reward(h);
        uint96 fee = _bps(reward, e.feeBps);
        uint96 auditFee = _bps(reward, e.auditFeeBps);
        uint96 collateral = _collateral(reward, _collateralPct(h));
        if (outcome == Outcome.ProviderWrong) {
            // A goes to the court with the slashed collateral: it pays the auditor who caught it.
            m.toCourt = collateral + auditFee;
            m.requesterRefund = reward + fee;
            _credits[e.requester] += m.requesterRefund;
            _staking.slash(_providerId(h), collateral, jobId, court);
            return m;
        }
        m.toCourt = auditFee;
        if (outcome == Outcome.Canary || failure) {
            _staking.unlock(_providerId(h), collateral, false);
            m.requesterRefund = reward + fee;
            _credits[e.requester] += m.requesterRefund;
        } else {
            // ProviderRight or Split on a result: the provider is paid.
            address provider = _staking.unlock(_providerId(h), collateral, true);
            uint96 rebate = _bps(fee, e.kappaBps);
            m.providerPayout = reward + rebate;
            m.burned = fee - rebate;
            _credits[provider] += m.providerPayout;
            _pendingBurn += m.burned;
        }
    }

    /// @dev An availability failure: both sides pay noFaultFeeBps * R, burned; reopen or refund.
    function _noFault(uint256 jobId, Job storage j, uint256 h) private {
        Econ memory e = j.econ;
        uint16 nfBps = _extras[e.version].noFaultFeeBps;
        uint96 reward = _reward(h);
        uint96 collateral = _collateral(reward, _collateralPct(h));
        uint96 noFaultFee = _bps(reward, nfBps);
        uint96 providerFee = noFaultFee < collateral ? noFaultFee : collateral;
        uint24 providerId = _providerId(h);
        uint96 requesterFee;
        uint96 refund = 0;
        bool reopened = block.timestamp <= _claimOrAnchor(h) && e.feeBps >= nfBps;
        if (reopened) {
            // The requester's share comes out of the escrowed fee; the job keeps R and A.
            uint16 newFeeBps = e.feeBps - nfBps;
            requesterFee = _bps(reward, e.feeBps) - _bps(reward, newFeeBps);
            j.econ.feeBps = newFeeBps;
            h = _withStatus(h, JobStatus.Open);
            h = _with(h, _HOT_PROVIDER, 24, 0);
            h = _with(h, _HOT_DEADLINE, 32, 0);
        } else {
            uint96 escrow = _escrowAt(reward, e);
            requesterFee = noFaultFee < escrow ? noFaultFee : escrow;
            refund = escrow - requesterFee;
            h = _withStatus(h, JobStatus.Expired);
            _credits[e.requester] += refund;
        }
        j.hot = h;
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

    /// @dev The words of job `jobId` and its hot word: its ring entry when the entry holds
    ///      it, else its own entry. Status None: no such job; Pruned: settled, its entry reused
    ///      (`j` is then an empty entry, never written).
    function _jobRef(uint256 jobId) private view returns (Job storage j, uint256 h) {
        uint256 slots = _jobSlots;
        j = _ring[jobId % slots];
        uint256 w = j.hot;
        if (w != 0 && w >> _HOT_LAP == jobId / slots) return (j, w);
        j = _spilled[jobId];
        w = j.hot;
        if (w != 0) return (j, w);
        if (jobId != 0 && jobId <= _config.jobCount) h = _withStatus(h, JobStatus.Pruned);
    }

    /// @dev The job `jobId`, which must have been posted (it may be Pruned).
    function _existingJob(uint256 jobId) private view returns (Job storage j, uint256 h) {
        (j, h) = _jobRef(jobId);
        if (_status(h) == JobStatus.None) revert UnknownJob(jobId);
    }

    /// @dev The address of hot word `h`'s provider (none before a claim).
    function _providerAddress(uint256 h) private view returns (address) {
        uint24 id = _providerId(h);
        return id == 0 ? address(0) : _staking.providerOf(id);
    }

    /// @dev The job `jobId`, which must exist and be in `expected` status.
    function _jobAt(uint256 jobId, JobStatus expected) private view returns (Job storage j, uint256 h) {
        (j, h) = _jobRef(jobId);
        JobStatus actual = _status(h);
        if (actual != expected) {
            if (actual == JobStatus.None) revert UnknownJob(jobId);
            revert WrongStatus(jobId, actual, expected);
        }
    }

    /// @dev The claimed job `jobId` and its provider id, whose provider must be the caller, before
    ///      its submit deadline. `checked`: a provider id already known to be the caller's (0: none;
    ///      a claimed job's provider id is never 0), whose address is not looked up again.
    function _assignedJob(uint256 jobId, uint24 checked) private view returns (Job storage j, uint256 h) {
        (j, h) = _jobAt(jobId, JobStatus.Claimed);
        uint24 providerId = _providerId(h);
        if (providerId != checked) {
            address provider = _staking.providerOf(providerId);
            if (msg.sender != provider) revert NotAssignedProvider(jobId, msg.sender, provider);
        }
        if (block.timestamp > _deadline(h)) revert TooLate(jobId, _deadline(h), block.timestamp);
    }

    /// @dev Hot word `h` moved to Submitted (the caller writes it back), with its new deadlines.
    function _startChallengeWindow(uint256 h)
        private
        view
        returns (uint256, uint32 challengeDeadline, uint64 anchorBlock)
    {
        // uint32 holds unix times until 2106; challengeWindow is bounded by MAX_CHALLENGE_WINDOW.
        challengeDeadline = uint32(block.timestamp) + _challengeWindow(h);
        anchorBlock = uint64(block.number) + _drawDelay;
        h = _withStatus(h, JobStatus.Submitted);
        h = _with(h, _HOT_DEADLINE, 32, challengeDeadline);
        // Block numbers stay below 2^32 (see the gas layout note).
        h = _with(h, _HOT_CLAIM_OR_ANCHOR, 32, uint32(anchorBlock));
        return (h, challengeDeadline, anchorBlock);
    }

    /// @dev Whether word 0 holds a commitment and claimOrAnchor the anchor block.
    function _hasCommitment(JobStatus s) private pure returns (bool) {
        return
            s == JobStatus.Submitted || s == JobStatus.Disputed || s == JobStatus.Finalized || s == JobStatus.Resolved;
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
