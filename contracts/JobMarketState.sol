// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {IJobMarket} from "./IJobMarket.sol";
import {ICourtViews} from "./ICourtViews.sol";
import {IProviderStaking} from "./IProviderStaking.sol";

/// @title The job market's storage, constants and the helpers its two code contracts share
/// @notice JobMarket keeps every job operation; governance's `setParams`, a large function that runs
///         once per parameter version, lives in JobMarketGovernance, which the market runs on its
///         own storage with DELEGATECALL. That keeps JobMarket's code under the 24,576-byte limit
///         (EIP-170) with the batch calls in it. Both inherit this contract only, so their storage
///         layouts are the same by construction: AccessControl's role mapping, then the variables
///         below in this order. Nothing else in either contract declares storage.
abstract contract JobMarketState is AccessControl {
    /// @notice Adds parameter versions (`setParams`).
    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    /// @notice Pauses and unpauses (`setPaused`).
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");

    // Hard bounds on governance parameters (time in seconds).
    /// @notice The longest claim window a version may allow.
    uint24 public constant MAX_CLAIM_WINDOW = 90 days;
    /// @notice C10: the longest auditable runtime (every job is auditable or verify-none; both obey it).
    uint24 public constant MAX_RUNTIME = 24 hours;
    /// @notice The longest challenge window a version may allow.
    uint24 public constant MAX_CHALLENGE_WINDOW = 30 days;
    /// @notice C4: k*R must fund a 3-juror jury at w = 1.1 R.
    uint16 public constant MIN_COLLATERAL_PCT = 400;
    /// @notice The highest collateral, 10 R.
    uint16 public constant MAX_COLLATERAL_PCT = 1000;
    /// @notice C2: alpha >= 1.4.
    uint16 public constant MIN_ALPHA_BPS = 14_000;
    /// @notice C11: the protocol fee f lies in [0.5 %, 10 %].
    uint16 public constant MIN_FEE_BPS = 50;
    /// @notice C11: see MIN_FEE_BPS.
    uint16 public constant MAX_FEE_BPS = 1000;
    /// @notice C12: A >= 1.1 R.
    uint16 public constant MIN_AUDIT_FEE_BPS = 11_000;
    /// @notice The highest audit fee, 5 R.
    uint16 public constant MAX_AUDIT_FEE_BPS = 50_000;
    /// @notice C3: beta <= 0.1.
    uint16 public constant MAX_BETA_BPS = 1000;
    /// @notice F6: each side's availability fee is at least 0.5 % of R, so that neither side drops
    ///         a claimed job for free (an availability failure is the only no-fault exit).
    uint16 internal constant _MIN_NO_FAULT_FEE_BPS = 50; // internal: a getter would move every call's dispatch
    /// @dev The least reward (base units): any fee rate of 1 bp or more then charges at least 1 unit,
    ///      so no fee rounds to 0 (below 50 units the 2 % fee and both availability fees did: a free
    ///      exit, F6, and a fee-free wash job; found by review, stop 39).
    uint96 internal constant _MIN_REWARD = 10_000;
    /// @notice Each side's availability fee is at most 10 % of R.
    uint16 public constant MAX_NO_FAULT_FEE_BPS = 1000;
    /// @notice The longest draw delay D (blocks), well inside the 256 blocks a block hash lives.
    uint16 public constant MAX_DRAW_DELAY = 64;
    /// @dev Declared CPU-seconds are at most maxRuntime times this many CPUs.
    uint256 public constant MAX_CPUS_PER_JOB = 256;

    uint256 internal constant _BPS = 10_000;
    /// @dev Set in a credit slot by `withdraw` so that the slot never returns to zero: a later
    ///      credit (a provider's next payout) then updates the slot instead of creating it (17,100
    ///      gas less at the next finalize). Balances stay far below it (token amounts < 2^128), and
    ///      every read of a balance masks it out.
    uint256 internal constant _KEPT = 1 << 255;
    uint256 internal constant _PCT = 100;

    // Bits of Config.flags.
    uint8 internal constant _PAUSED = 1;
    // Job.flags: bits 0-2 the failure code (0 = a result), bit 3 verify-none.
    uint8 internal constant _CODE_MASK = 7;
    uint8 internal constant _VERIFY_NONE = 8;

    /// @dev Word 1 of a job: what settlement needs besides the hot word (248 bits).
    struct Econ {
        address requester;
        uint24 version; // parameter version at post: the court and the bounds
        uint16 auditBps; // p_job (0 for verify-none)
        uint16 feeBps; // f at post, lowered by availability no-fault fees on reopen
        uint16 kappaBps;
        uint16 auditFeeBps; // A / R (0 for verify-none)
    }

    /// @dev Three storage words; see the contract's gas layout note. Kept in a ring of `_jobSlots`
    ///      entries (job id modulo the ring size), so that a job posted after an earlier one settled
    ///      rewrites its three words instead of creating them; a job whose entry is still taken by
    ///      an unsettled job lives in `_spilled` under its own id.
    struct Job {
        // word 0: the spec hash until submission, then the commitment
        bytes32 word0;
        // word 1
        Econ econ;
        // word 2, the hot word, packed by hand (some fields are not whole bytes): see `_HOT_*`
        uint256 hot;
    }

    /// @dev The global hot word: job counter, current parameter version, flags, reward cap.
    struct Config {
        uint32 jobCount; // ids run from 1; 2^32 - 1 jobs per deployment
        uint24 version;
        uint8 flags; // _PAUSED
        uint80 maxReward; // the current version's cap on R (also in its Extra), read by every post
    }

    /// @dev Word A of a parameter version: everything `postJob` reads (exactly 256 bits).
    struct Bounds {
        uint24 minClaimWindow;
        uint24 maxClaimWindow;
        uint24 minRuntime;
        uint24 maxRuntime;
        uint24 minChallengeWindow;
        uint24 maxChallengeWindow;
        uint16 minCollateralPct;
        uint16 maxCollateralPct;
        uint16 alphaBps;
        uint16 feeBps;
        uint16 kappaBps;
        uint16 auditFeeBps;
        uint16 betaBps;
    }

    /// @dev Word B of a parameter version: read by court calls and availability failures only.
    struct Extra {
        uint16 noFaultFeeBps;
        address court;
        uint80 maxReward;
    }

    /// @dev Fixed at deployment; both code contracts are given the same values.
    IProviderStaking internal immutable _staking;
    uint16 internal immutable _drawDelay;
    /// @dev Entries of the job ring; job ids stay below `_jobSlots * 2^23` (the lap's 23 bits).
    uint256 internal immutable _jobSlots;

    Config internal _config;
    uint256 internal _pendingBurn;
    mapping(uint256 version => Bounds) internal _bounds;
    mapping(uint256 version => Extra) internal _extras;
    mapping(uint256 entry => Job) internal _ring;
    mapping(uint256 jobId => Job) internal _spilled;
    mapping(address account => uint256) internal _credits;

    constructor(IProviderStaking staking_, uint16 drawDelay_, uint32 jobSlots_) {
        _checkParam("drawDelay", drawDelay_, 1, MAX_DRAW_DELAY);
        _checkParam("jobSlots", jobSlots_, 1, type(uint32).max);
        _staking = staking_;
        _drawDelay = drawDelay_;
        _jobSlots = jobSlots_;
    }

    // The hot word, from bit 0: reward (88 bits, < 2^88 by _checkPost), status (4), flags (4),
    // provider id (24), claim deadline or anchor block (32), deadline (32), maxRuntime (17 bits:
    // <= MAX_RUNTIME), challengeWindow (22: <= MAX_CHALLENGE_WINDOW), collateralPct (10: <=
    // MAX_COLLATERAL_PCT) and the lap (23): jobId / _jobSlots, which job of the ring entry it is.
    uint256 internal constant _HOT_STATUS = 88;
    uint256 internal constant _HOT_FLAGS = 92;
    uint256 internal constant _HOT_PROVIDER = 96;
    uint256 internal constant _HOT_CLAIM_OR_ANCHOR = 120;
    uint256 internal constant _HOT_DEADLINE = 152;
    uint256 internal constant _HOT_MAX_RUNTIME = 184;
    uint256 internal constant _HOT_CHALLENGE_WINDOW = 201;
    uint256 internal constant _HOT_COLLATERAL_PCT = 223;
    uint256 internal constant _HOT_LAP = 233;

    /// @dev A new Open job's hot word (every value within its width; see `_HOT_*`).
    function _newHot(
        uint256 reward,
        uint256 flags,
        uint256 claimDeadline,
        uint256 maxRuntime,
        uint256 challengeWindow,
        uint256 collateralPct,
        uint256 lap
    ) internal pure returns (uint256) {
        return reward | uint256(uint8(IJobMarket.JobStatus.Open)) << _HOT_STATUS | flags << _HOT_FLAGS | claimDeadline
            << _HOT_CLAIM_OR_ANCHOR | maxRuntime << _HOT_MAX_RUNTIME | challengeWindow << _HOT_CHALLENGE_WINDOW
            | collateralPct << _HOT_COLLATERAL_PCT | lap << _HOT_LAP;
    }

    function _reward(uint256 h) internal pure returns (uint96) {
        return uint96(h & ((1 << 88) - 1));
    }

    function _status(uint256 h) internal pure returns (IJobMarket.JobStatus) {
        return IJobMarket.JobStatus((h >> _HOT_STATUS) & 15);
    }

    function _flags(uint256 h) internal pure returns (uint8) {
        return uint8((h >> _HOT_FLAGS) & 15);
    }

    function _providerId(uint256 h) internal pure returns (uint24) {
        return uint24(h >> _HOT_PROVIDER);
    }

    function _claimOrAnchor(uint256 h) internal pure returns (uint32) {
        return uint32(h >> _HOT_CLAIM_OR_ANCHOR);
    }

    function _deadline(uint256 h) internal pure returns (uint32) {
        return uint32(h >> _HOT_DEADLINE);
    }

    function _maxRuntime(uint256 h) internal pure returns (uint24) {
        return uint24((h >> _HOT_MAX_RUNTIME) & ((1 << 17) - 1));
    }

    function _challengeWindow(uint256 h) internal pure returns (uint24) {
        return uint24((h >> _HOT_CHALLENGE_WINDOW) & ((1 << 22) - 1));
    }

    function _collateralPct(uint256 h) internal pure returns (uint16) {
        return uint16((h >> _HOT_COLLATERAL_PCT) & ((1 << 10) - 1));
    }

    /// @dev `h` with the `bits`-wide field at `at` set to `value` (which must fit).
    function _with(uint256 h, uint256 at, uint256 bits, uint256 value) internal pure returns (uint256) {
        return (h & ~(((1 << bits) - 1) << at)) | value << at;
    }

    function _withStatus(uint256 h, IJobMarket.JobStatus s) internal pure returns (uint256) {
        return _with(h, _HOT_STATUS, 4, uint8(s));
    }

    /// @dev Whether a job in status `s` is over: its ring entry may take a later job.
    function _isSettled(IJobMarket.JobStatus s) internal pure returns (bool) {
        return s >= IJobMarket.JobStatus.Finalized && s <= IJobMarket.JobStatus.Resolved;
    }

    function _paramsAt(uint256 version) internal view returns (IJobMarket.MarketParams memory p) {
        Bounds memory b = _bounds[version];
        Extra memory x = _extras[version];
        p = IJobMarket.MarketParams({
            minClaimWindow: b.minClaimWindow,
            maxClaimWindow: b.maxClaimWindow,
            minRuntime: b.minRuntime,
            maxRuntime: b.maxRuntime,
            minChallengeWindow: b.minChallengeWindow,
            maxChallengeWindow: b.maxChallengeWindow,
            minCollateralPct: b.minCollateralPct,
            maxCollateralPct: b.maxCollateralPct,
            alphaBps: b.alphaBps,
            feeBps: b.feeBps,
            kappaBps: b.kappaBps,
            auditFeeBps: b.auditFeeBps,
            betaBps: b.betaBps,
            noFaultFeeBps: x.noFaultFeeBps,
            maxReward: x.maxReward,
            drawDelay: _drawDelay,
            court: x.court,
            paused: _config.flags & _PAUSED != 0
        });
    }

    /// @dev C9: maxClaimWindow + maxRuntime + maxChallengeWindow + court.maxHorizon(maxRuntime).
    function _horizon(uint24 maxClaimWindow, uint24 maxRuntime, uint24 maxChallengeWindow, address court)
        internal
        view
        returns (uint256)
    {
        return uint256(maxClaimWindow) + maxRuntime + maxChallengeWindow + ICourtViews(court).maxHorizon(maxRuntime);
    }

    function _checkParam(bytes32 name, uint256 value, uint256 min, uint256 max) internal pure {
        if (value < min || value > max) revert IJobMarket.ParameterOutOfBounds(name, value, min, max);
    }
}
