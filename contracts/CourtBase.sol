// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";

import {IMarketForCourt} from "./IMarketForCourt.sol";
import {IVerificationCourtTypes} from "./IVerificationCourt.sol";

/// @title Storage layout and shared internals of VerificationCourt and its CourtEngine
/// @dev VerificationCourt delegatecalls CourtEngine (deployed by its constructor) for `advance`,
///      `redraw` and `exposeCanary`: both inherit this contract, so both see the same storage.
///      Split only to stay under the 24,576-byte code size limit (EIP-170).
abstract contract CourtBase is IVerificationCourtTypes, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using Checkpoints for Checkpoints.Trace208;

    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    bytes32 public constant ARBITER_ROLE = keccak256("ARBITER_ROLE");
    bytes32 public constant CANARY_ROLE = keccak256("CANARY_ROLE");

    /// @dev Members per platform class (the draw walks the list).
    uint256 public constant MAX_CLASS_MEMBERS = 128;
    /// @dev Longest auditable runtime (C10); the verifiers' leave delay covers its horizon.
    uint24 public constant MAX_AUDIT_RUNTIME = 86_400;
    uint256 public constant LAST_JURY_ROUND = 3;

    uint256 internal constant _BPS = 10_000;
    uint32 internal constant _MAX_TIME = 30 days;
    uint8 internal constant _SUBMITTED = 3;
    /// @dev What a canary key signs (EIP-191) to let a job's requester expose it:
    ///      keccak256(abi.encode(_CANARY_AUTHORIZATION, chainid, court, jobId)).
    bytes32 internal constant _CANARY_AUTHORIZATION = keccak256("depin-canary-authorization");
    uint256 internal constant _MAX_DRAW_TRIES = 16;
    /// @dev C12: the audit pay A = E - K1 * w is at least 1.1 R (E: the market's audit escrow).
    uint256 internal constant _MIN_AUDIT_PAY_BPS = 11_000;
    /// @dev K1: the first jury's size, whose pay the requester's jury deposit covers on a Split.
    uint256 internal constant _FIRST_JURY = 3;

    struct Case {
        // word 0
        address provider;
        Phase phase;
        uint8 round;
        uint8 redraws;
        uint8 cls;
        IMarketForCourt.Outcome tally;
        IMarketForCourt.Outcome outcome;
        bool providerRevealed;
        bool seatingClosed;
        uint8 taken;
        uint8 committed;
        uint8 revealed;
        // word 1
        address requester;
        uint96 reward;
        // words 2-4
        bytes32 commitment;
        bytes32 providerDigest;
        bytes32 topDigest;
        // word 5
        uint96 auditFee;
        uint64 snapshotBlock;
        uint64 anchor;
        uint16 version;
        // word 6
        uint32 seatDeadline;
        uint32 commitDeadline;
        uint32 revealDeadline;
        uint32 windowEnd;
        uint32 challengeDeadline;
        uint32 ruledAt;
        uint24 maxRuntime;
        IMarketForCourt.Outcome ruling;
        uint32 canaryEnd; // an agreeing audit's tally + canaryWindow: its reserve may go back after it
        // word 7
        address challenger;
        uint96 challengeBond;
        // word 8
        address ruler;
        uint96 forfeited; // no-shows' bonds, held for the pot until the conclusion
    }

    struct Seat {
        address holder;
        SeatState state;
        uint96 bond;
        bytes32 word; // the commitment, then the revealed digest
    }

    /// @dev What one verifier holds in one case: the canary reserve it locked with its first seat
    ///      there (sigma * R - that seat's bond, or 0; C6), once per (verifier, case) whatever its
    ///      number of seats, and how many of its seats there are open. The reserve goes back to free
    ///      stake with its last open seat (a settlement or a no-show), unless a canary catch burns it,
    ///      or earlier, once an agreeing audit's canary window is over (`releaseReserve`).
    struct Hold {
        uint96 reserve;
        uint8 seats;
        bool slashed; // a canary catch took sigma * R from it in this case (once)
        bool released; // its reserve went back early (releaseReserve): a further seat locks a new one
    }

    struct Appeal {
        address appellant;
        uint96 bond;
    }

    struct Verifier {
        uint96 free;
        uint96 locked;
        uint8 cls;
        bool joined;
        uint8 slot; // index in _members[cls] while joined
    }

    struct Leaving {
        uint96 amount;
        uint32 releaseAt;
    }

    struct ProviderClass {
        uint8 cls;
        uint64 setBlock; // 0 = never set
    }

    IMarketForCourt internal _market;
    IERC20 internal _token;

    uint16 internal _version;
    uint256 internal _totalStake; // sum of free + locked
    uint256 internal _totalUnbonding;
    uint256 internal _heldBonds; // challenge and appeal bonds and no-shows' forfeited bonds of open cases

    mapping(uint16 version => CourtParams) internal _params;
    mapping(uint256 jobId => Case) internal _cases;
    mapping(uint256 jobId => mapping(uint256 roundSeat => Seat)) internal _seats;
    mapping(uint256 jobId => mapping(uint256 round => Appeal)) internal _appeals;
    mapping(uint256 jobId => mapping(uint256 round => IMarketForCourt.Outcome)) internal _tallies;
    mapping(address verifier => Verifier) internal _verifiers;
    mapping(address verifier => Leaving) internal _leaving;
    mapping(address verifier => Checkpoints.Trace208) internal _stakeHistory;
    mapping(uint8 cls => Checkpoints.Trace208) internal _classHistory;
    mapping(uint8 cls => address[]) internal _members;
    mapping(address provider => ProviderClass) internal _providerClass;
    mapping(uint8 cls => bool) internal _classOpen; // class 0 is always open
    /// @dev Slots of _members[cls] left by verifiers who withdrew all their stake (address(0) there),
    ///      reused by the next joiner so that no other member's position in the draw's walk moves.
    mapping(uint8 cls => uint8[]) internal _vacant;
    /// @dev Who held each slot of _members[cls] from which block (the address as uint160): the draw
    ///      walks the list as it stood at the case's snapshot, so that a joiner taking a slot (a freed
    ///      one, or a displaced member's) cannot move any pending draw's pick.
    mapping(uint8 cls => mapping(uint256 slot => Checkpoints.Trace208)) internal _slotHolders;
    mapping(uint256 jobId => mapping(address verifier => Hold)) internal _holds;

    /// @dev Delegatecall-only modules (CourtEngine, CourtDesk) refuse direct calls.
    address private immutable _self = address(this);

    modifier onlyDelegated() {
        if (address(this) == _self) revert NotDelegated();
        _;
    }

    function _maxHorizon(uint24 maxRuntime) internal view returns (uint256) {
        CourtParams storage p = _params[_version];
        uint256 cycle = _seatDelay(p) + _commitWindow(p, maxRuntime) + p.revealWindow;
        return (LAST_JURY_ROUND + 1) * (uint256(p.maxRedraws) + 1) * cycle + p.canaryWindow + 3 * p.appealWindow
            + p.arbiterWindow + p.arbiterDelay;
    }

    function _leaveDelay() internal view returns (uint256) {
        return _seatDelay(_params[_version]) + _maxHorizon(MAX_AUDIT_RUNTIME);
    }

    /// @dev Opens job `jobId`'s case at round 0 (Submitted -> Disputed in the market).
    function _open(uint256 jobId) internal {
        IMarketForCourt.VerificationInfo memory info = _market.verificationInfo(jobId);
        if (info.court != address(this)) revert WrongCourt(jobId, info.court);
        if (info.status != _SUBMITTED) revert JobNotSubmitted(jobId, info.status);
        // A verify-none job escrowed no audit fee: it is never audited, challenged or judged.
        if (info.auditFee == 0) revert NotVerifiable(jobId);
        Case storage c = _cases[jobId];
        uint16 version = _version;
        CourtParams storage p = _params[version];
        c.provider = info.provider;
        c.requester = info.requester;
        c.reward = info.reward;
        c.commitment = info.commitment;
        c.auditFee = info.auditFee;
        (c.cls, c.snapshotBlock) = _classAndSnapshot(info);
        c.anchor = info.anchorBlock;
        c.version = version;
        c.maxRuntime = info.maxRuntime;
        c.challengeDeadline = info.challengeDeadline;
        c.phase = Phase.Active;
        uint256 seatDeadline = uint256(info.submitTime) + _seatDelay(p);
        _setDeadlines(c, p, seatDeadline);
        emit CaseOpened(jobId, c.cls, c.snapshotBlock, 0, version);
        emit SeatsDrawn(jobId, 0, 1, 0, c.anchor, c.seatDeadline, c.commitDeadline, c.revealDeadline);
        _market.beginVerification(jobId);
    }

    /// @dev Starts round `round` (fresh seats) or, with `redraws` > 0, redraws its empty seats.
    function _startRound(Case storage c, uint256 jobId, uint8 round, uint8 redraws) internal {
        CourtParams storage p = _params[c.version];
        c.phase = Phase.Active;
        c.round = round;
        c.redraws = redraws;
        c.seatingClosed = false;
        if (redraws == 0) {
            c.taken = 0;
            c.committed = 0;
            c.revealed = 0;
        }
        c.anchor = uint64(block.number + _market.drawDelay());
        _setDeadlines(c, p, block.timestamp + _seatDelay(p));
        emit SeatsDrawn(
            jobId, round, uint8(_k(round)), redraws, c.anchor, c.seatDeadline, c.commitDeadline, c.revealDeadline
        );
    }

    function _setDeadlines(Case storage c, CourtParams storage p, uint256 seatDeadline) internal {
        uint256 commitDeadline = seatDeadline + _commitWindow(p, c.maxRuntime);
        c.seatDeadline = uint32(seatDeadline);
        c.commitDeadline = uint32(commitDeadline);
        c.revealDeadline = uint32(commitDeadline + p.revealWindow);
    }

    function _seatDelay(CourtParams storage p) internal view returns (uint256) {
        return uint256(_market.drawDelay()) * p.blockTime + p.startWindow + p.inclusionTime;
    }

    function _commitWindow(CourtParams storage p, uint24 maxRuntime) internal view returns (uint256) {
        return uint256(maxRuntime) * p.rhoPct / 100 + p.setupTime + p.inclusionTime;
    }

    function _k(uint256 round) internal pure returns (uint256) {
        return round == 0 ? 1 : (1 << (round + 1)) - 1; // 1, 3, 7, 15
    }

    function _rank(IMarketForCourt.Outcome o) internal pure returns (uint256) {
        if (o == IMarketForCourt.Outcome.ProviderWrong) return 2;
        if (o == IMarketForCourt.Outcome.Split) return 1;
        return 0;
    }

    function _bps(uint96 amount, uint256 bps) internal pure returns (uint96) {
        return uint96(uint256(amount) * bps / _BPS);
    }

    function _min(uint96 a, uint96 b) internal pure returns (uint96) {
        return a < b ? a : b;
    }

    /// @dev One of `who`'s open seats in case `jobId` (bond `bond`) closes: its bond leaves the lock
    ///      (back to free stake when `keep`, else out of its stake), and with its last open seat in
    ///      the case the canary reserve goes back to free stake. Returns the reserve released.
    function _release(uint256 jobId, address who, uint96 bond, bool keep) internal returns (uint96 reserve) {
        Hold storage h = _holds[jobId][who];
        Verifier storage v = _verifiers[who];
        if (h.seats == 1) {
            reserve = h.reserve;
            delete _holds[jobId][who];
        } else {
            h.seats -= 1;
        }
        v.locked -= bond + reserve;
        v.free += keep ? bond + reserve : reserve;
        if (!keep) _stakeChanged(who, v.cls, bond, false);
    }

    function _stakeChanged(address who, uint8 cls, uint96 amount, bool up) internal {
        Checkpoints.Trace208 storage h = _stakeHistory[who];
        Checkpoints.Trace208 storage t = _classHistory[cls];
        uint48 now_ = uint48(block.number);
        if (up) {
            h.push(now_, h.latest() + amount);
            t.push(now_, t.latest() + amount);
            _totalStake += amount;
        } else {
            h.push(now_, h.latest() - amount);
            t.push(now_, t.latest() - amount);
            _totalStake -= amount;
        }
    }

    function _case(uint256 jobId) internal view returns (Case storage c) {
        c = _cases[jobId];
        if (c.phase == Phase.None) revert NoCase(jobId);
    }

    function _active(uint256 jobId) internal view returns (Case storage c) {
        c = _case(jobId);
        if (c.phase != Phase.Active) revert WrongPhase(jobId, c.phase);
    }

    function _classAndSnapshot(IMarketForCourt.VerificationInfo memory info)
        internal
        view
        returns (uint8 cls, uint64 snapshot)
    {
        uint64 d = _market.drawDelay();
        uint64 submitBlock = info.anchorBlock > d ? info.anchorBlock - d : 0;
        uint64 delay = _params[_version].activationDelayBlocks;
        snapshot = submitBlock > delay ? submitBlock - delay : 0;
        ProviderClass storage pc = _providerClass[info.provider];
        // A class closed by governance (too small to audit anyone) falls back to class 0.
        cls = pc.setBlock != 0 && pc.setBlock < submitBlock && _classOpen[pc.cls] ? pc.cls : 0;
    }
}
