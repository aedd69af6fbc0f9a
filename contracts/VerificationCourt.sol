// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";

import {IMarketForCourt} from "./IMarketForCourt.sol";
import {IRandomness} from "./IRandomness.sol";
import {IVerificationCourt} from "./IVerificationCourt.sol";
import {CourtBase} from "./CourtBase.sol";
import {CourtDesk} from "./CourtDesk.sol";
import {CourtEngine} from "./CourtEngine.sol";

/// @title Verification court: drawn audits, juries of 3 -> 7 -> 15, a timelocked arbiter, canaries
/// @notice See IVerificationCourt for the protocol. Money at a conclusion (w = jurorPayBps * R,
///         E = the job's audit escrow, A = E - 3w the audit pay, J = 3w the requester's jury
///         deposit, "coherent" = revealed the winning side's digest):
///         - the market's `settle` sends the court E (ProviderRight, Split, Canary) or E and the
///           whole collateral (ProviderWrong); E is the requester's budget, the rest is the pot;
///         - first pass: every revealed incoherent seat (a wrong auditor included) forfeits its bond
///           into the pot, as do the challenger's bond on ProviderRight and every appeal bond;
///         - second pass, the audit first, then the juries in order: a coherent auditor gets A from
///           E; coherent jurors get w each from the pot (on a Split then from E's jury deposit J,
///           never from A: the requester that declared the job re-executable pays its jury); a
///           round the rest cannot pay in full (a Split after a bondless escalation) shares it
///           equally; bonds of seats still unrevealed are burned;
///         - then winning appellants are repaid from the pot, then (ProviderWrong) the challenger
///           min(beta * R, rest) on top of its bond back; what is left of E goes back to the
///           requester, what is left of the pot is burned (the pot also holds the bonds no-shows
///           forfeited during the case);
///         - Split: every revealing seat is coherent (the auditor keeps its bond and is paid A);
///         - Canary: seats that revealed the canary digest lose their bond, their holder sigma * R of
///           stake once a case (burned); jurors are paid nothing; an honest revealing auditor gets A;
///         - Unaudited: all bonds back (nobody was available to verify; E was refunded by the market).
///         Payments go to the verifier's wallet; bonds return to its free court stake.
/// @dev Conservation invariant: token.balanceOf(this) == sum over verifiers of (free + locked +
///      unbonding) + sum of the challenge and appeal bonds of open cases (`accountedBalance()`).
///      Escrow received from the market is paid out, returned or burned in the same call.
///      The draw walks the provider's class member list (O(n), n <= MAX_CLASS_MEMBERS): that cost is
///      paid on the audit path only (startAudit, takeSeat, drawnFor), never by an unaudited job.
///
///      Code size (EIP-170): this contract holds the seats (startAudit, takeSeat, commit, reveal,
///      revealProvider), the draws and the views; it delegatecalls CourtEngine for advance, redraw
///      and exposeCanary, and CourtEngine's CourtDesk for stakes, challenge, appeal, arbiterRule,
///      setClassOpen and setParams. All three inherit CourtBase (one storage layout); the modules
///      refuse direct calls. The market and token are storage words (set here) so that the
///      modules read this court's, not their own.
///
///      Decisions (see IVerificationCourt): parameters are pinned per case at its opening; a seat
///      taken but not revealed forfeits its bond to the pot and is redrawn while redraws remain and
///      no seat of the round revealed (after a reveal, or once the redraws are spent, a short round
///      is tallied, or escalated when the missing votes could change it); a round nobody joins settles Unaudited (rounds 0-1; round 0
///      not before the challenge deadline) or leaves the appealed tally standing (appeal bond
///      returned); round 0 never concludes before the job's challenge deadline; a challenge of a
///      drawn job waits for the audit and then always goes to a K = 3 jury; the arbiter's ruling
///      executes arbiterDelay after it is recorded, and is dropped if the arbiter lost ARBITER_ROLE
///      meanwhile.
contract VerificationCourt is CourtBase, IVerificationCourt {
    using SafeERC20 for IERC20;
    using Checkpoints for Checkpoints.Trace208;

    /// @dev The modules this court delegatecalls (same storage layout: CourtBase).
    address private immutable _engine;
    address private immutable _desk;

    /// @param market_ The job market (IMarketForCourt): escrow, job status, randomness, D.
    /// @param token_ The reward token (burnable) staked and bonded here.
    /// @param admin Receives DEFAULT_ADMIN_ROLE and GOVERNOR_ROLE (grants ARBITER_ROLE, CANARY_ROLE).
    /// @param engine_ A CourtEngine (deployed first: `new CourtEngine()`, which deploys its CourtDesk).
    constructor(address market_, address token_, address admin, CourtParams memory params_, address engine_) {
        _market = IMarketForCourt(market_);
        _token = IERC20(token_);
        _engine = engine_;
        address desk_ = CourtEngine(engine_).desk();
        _desk = desk_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GOVERNOR_ROLE, admin);
        (bool ok, bytes memory ret) = desk_.delegatecall(abi.encodeCall(CourtDesk.initialize, (params_)));
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
    }

    // ---------------------------------------------------------------- verifiers

    // ---------------------------------------------------------------- cases

    /// @inheritdoc IVerificationCourt
    function startAudit(uint256 jobId) external nonReentrant {
        Case storage c = _cases[jobId];
        if (c.phase == Phase.None) {
            if (!_market.isDrawn(jobId)) revert NotDrawn(jobId);
            _open(jobId);
        }
        if (c.round != 0) revert WrongPhase(jobId, c.phase);
        _take(c, jobId, 0);
    }

    /// @inheritdoc IVerificationCourt
    function takeSeat(uint256 jobId, uint8 seat) external nonReentrant {
        _take(_case(jobId), jobId, seat);
    }

    /// @inheritdoc IVerificationCourt
    function commit(uint256 jobId, uint8 seat, bytes32 commitment) external {
        Case storage c = _active(jobId);
        Seat storage s = _heldSeat(c, jobId, seat);
        // No commitment once a seat of the round revealed: its vote is public (a copy is no run).
        if (s.state != SeatState.Taken || block.timestamp > c.commitDeadline || _revealOpen(c) || c.revealed != 0) {
            revert CommitClosed(jobId);
        }
        s.state = SeatState.Committed;
        s.word = commitment;
        c.committed += 1;
        emit SeatCommitted(jobId, c.round, seat, commitment);
    }

    /// @inheritdoc IVerificationCourt
    function reveal(uint256 jobId, uint8 seat, bytes32 digest, bytes32 salt) external {
        Case storage c = _active(jobId);
        Seat storage s = _heldSeat(c, jobId, seat);
        _checkRevealWindow(c, jobId);
        if (s.state != SeatState.Committed) revert AlreadyRevealed(jobId);
        if (keccak256(abi.encode(msg.sender, jobId, c.round, seat, digest, salt)) != s.word) revert BadReveal(jobId);
        s.state = SeatState.Revealed;
        s.word = digest;
        c.revealed += 1;
        emit SeatRevealed(jobId, c.round, seat, digest);
    }

    /// @inheritdoc IVerificationCourt
    function revealProvider(uint256 jobId, bytes32 digest, bytes32 salt) external {
        Case storage c = _active(jobId);
        if (msg.sender != c.provider) revert NotProvider(jobId);
        if (c.providerRevealed) revert AlreadyRevealed(jobId);
        _checkRevealWindow(c, jobId);
        if (c.committed == 0) revert RevealNotOpen(jobId);
        if (keccak256(abi.encode(msg.sender, jobId, digest, salt)) != c.commitment) revert BadReveal(jobId);
        c.providerRevealed = true;
        c.providerDigest = digest;
        emit ProviderRevealed(jobId, digest);
    }

    /// @inheritdoc IVerificationCourt
    function releaseReserve(uint256 jobId) external nonReentrant {
        Case storage c = _case(jobId);
        // Only an agreeing, unchallenged audit waiting out the challenge deadline past its canary
        // window: a canary exposure (the requester's, right after the tally) no longer needs the
        // lock (exposeCanary takes sigma * R from free, then unbonding stake when the reserve is 0),
        // while the bond stays locked (a challenge's jury may still find the auditor incoherent).
        if (
            c.phase != Phase.Tallied || c.round != 0 || c.tally != IMarketForCourt.Outcome.ProviderRight
                || c.challenger != address(0) || block.timestamp <= c.canaryEnd
        ) revert NothingDue(jobId);
        address holder = _seats[jobId][0].holder;
        Hold storage h = _holds[jobId][holder];
        uint96 reserve = h.reserve;
        if (reserve == 0) revert NothingDue(jobId);
        h.reserve = 0;
        h.released = true;
        Verifier storage v = _verifiers[holder];
        v.locked -= reserve;
        v.free += reserve;
        emit ReserveReleased(jobId, holder, reserve);
    }

    // ---------------------------------------------------------------- governance

    // ---------------------------------------------------------------- run by CourtDesk / CourtEngine

    /// @inheritdoc IVerificationCourt
    function join(uint96, uint8) external nonReentrant {
        _delegate(_desk);
    }

    /// @inheritdoc IVerificationCourt
    function addStake(uint96) external nonReentrant {
        _delegate(_desk);
    }

    /// @inheritdoc IVerificationCourt
    function requestLeave(uint96) external nonReentrant {
        _delegate(_desk);
    }

    /// @inheritdoc IVerificationCourt
    function withdrawLeft() external nonReentrant {
        _delegate(_desk);
    }

    /// @inheritdoc IVerificationCourt
    function setPlatformClass(uint8) external nonReentrant {
        _delegate(_desk);
    }

    /// @inheritdoc IVerificationCourt
    function setClassOpen(uint8, bool) external nonReentrant {
        _delegate(_desk);
    }

    /// @inheritdoc IVerificationCourt
    function classOpen(uint8 platformClass) external view returns (bool) {
        return platformClass == 0 || _classOpen[platformClass];
    }

    /// @inheritdoc IVerificationCourt
    function challenge(uint256) external nonReentrant {
        _delegate(_desk);
    }

    /// @inheritdoc IVerificationCourt
    function appeal(uint256) external nonReentrant {
        _delegate(_desk);
    }

    /// @inheritdoc IVerificationCourt
    function arbiterRule(uint256, IMarketForCourt.Outcome) external nonReentrant {
        _delegate(_desk);
    }

    /// @inheritdoc IVerificationCourt
    function setParams(CourtParams calldata) external nonReentrant {
        _delegate(_desk);
    }

    /// @inheritdoc IVerificationCourt
    function redraw(uint256) external nonReentrant {
        _delegate(_engine);
    }

    /// @inheritdoc IVerificationCourt
    function advance(uint256) external nonReentrant {
        _delegate(_engine);
    }

    /// @inheritdoc IVerificationCourt
    function exposeCanary(uint256, bytes32, bytes32, bytes calldata) external nonReentrant {
        _delegate(_engine);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IVerificationCourt
    function market() external view returns (address) {
        return address(_market);
    }

    /// @inheritdoc IVerificationCourt
    function modules() external view returns (address, address) {
        return (_engine, _desk);
    }

    /// @inheritdoc IVerificationCourt
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IVerificationCourt
    function params() external view returns (CourtParams memory) {
        return _params[_version];
    }

    /// @inheritdoc IVerificationCourt
    function paramsVersion() external view returns (uint16) {
        return _version;
    }

    /// @notice D blocks (at blockTime) + startWindow + inclusionTime, with the current parameters.
    function requiredChallengeWindow() external view returns (uint256) {
        return _seatDelay(_params[_version]);
    }

    /// @notice Every round (audit, juries 3, 7, 15) with maxRedraws redraws each, each cycle being
    ///         seat delay + commit (rho * maxRuntime + setup + inclusion) + reveal; plus the canary
    ///         window, three appeal windows, the arbiter window and its timelock.
    function maxHorizon(uint24 maxRuntime) external view returns (uint256) {
        return _maxHorizon(maxRuntime);
    }

    /// @notice 1.1 R of audit pay + the jury deposit 3 * w, with the current parameters (ICourtViews).
    function minAuditFeeBps() external view returns (uint256) {
        return _MIN_AUDIT_PAY_BPS + _FIRST_JURY * _params[_version].jurorPayBps;
    }

    /// @notice minStake / sigma with the current parameters (ICourtViews).
    function maxVerifiableReward() external view returns (uint256) {
        CourtParams storage p = _params[_version];
        return uint256(p.minStake) / p.canarySlashMul;
    }

    /// @inheritdoc IVerificationCourt
    function leaveDelay() external view returns (uint256) {
        return _leaveDelay();
    }

    /// @inheritdoc IVerificationCourt
    function getCase(uint256 jobId) external view returns (CaseView memory v) {
        Case storage c = _cases[jobId];
        v.phase = c.phase;
        v.round = c.round;
        v.redraws = c.redraws;
        v.platformClass = c.cls;
        v.tally = c.tally;
        v.outcome = c.outcome;
        v.providerRevealed = c.providerRevealed;
        v.provider = c.provider;
        v.requester = c.requester;
        v.reward = c.reward;
        v.auditFee = c.auditFee;
        v.commitment = c.commitment;
        v.providerDigest = c.providerDigest;
        v.topDigest = c.topDigest;
        v.snapshotBlock = c.snapshotBlock;
        v.anchor = c.anchor;
        v.seatDeadline = c.seatDeadline;
        v.commitDeadline = c.commitDeadline;
        v.revealDeadline = c.revealDeadline;
        v.windowEnd = c.windowEnd;
        v.taken = c.taken;
        v.committed = c.committed;
        v.revealed = c.revealed;
        v.challenger = c.challenger;
        v.challengeBond = c.challengeBond;
        v.paramsVersion = c.version;
        v.canaryEnd = c.canaryEnd;
    }

    /// @inheritdoc IVerificationCourt
    function getSeat(uint256 jobId, uint8 round, uint8 seat) external view returns (SeatView memory) {
        Seat storage s = _seats[jobId][(uint256(round) << 8) | seat];
        bool revealed = s.state == SeatState.Revealed || s.state == SeatState.Settled;
        return SeatView(s.holder, s.state, s.bond, revealed ? bytes32(0) : s.word, revealed ? s.word : bytes32(0));
    }

    /// @inheritdoc IVerificationCourt
    function getVerifier(address verifier) external view returns (VerifierView memory) {
        Verifier storage v = _verifiers[verifier];
        Leaving storage l = _leaving[verifier];
        return VerifierView(v.joined, v.cls, v.free, v.locked, l.amount, l.releaseAt);
    }

    /// @inheritdoc IVerificationCourt
    function stakeAt(address verifier, uint256 blockNumber) external view returns (uint256) {
        return _stakeHistory[verifier].upperLookupRecent(uint48(blockNumber));
    }

    /// @inheritdoc IVerificationCourt
    function classStakeAt(uint8 platformClass, uint256 blockNumber) external view returns (uint256) {
        return _classHistory[platformClass].upperLookupRecent(uint48(blockNumber));
    }

    /// @inheritdoc IVerificationCourt
    function classMembers(uint8 platformClass) external view returns (address[] memory) {
        return _members[platformClass];
    }

    /// @inheritdoc IVerificationCourt
    function platformClassOf(address provider) external view returns (uint8, uint64) {
        ProviderClass storage pc = _providerClass[provider];
        return (pc.cls, pc.setBlock);
    }

    /// @inheritdoc IVerificationCourt
    function drawnFor(uint256 jobId, uint8 round, uint8 seat) external view returns (address) {
        Case storage c = _cases[jobId];
        if (c.phase != Phase.None) return _candidate(c, jobId, round, seat);
        IMarketForCourt.VerificationInfo memory info = _market.verificationInfo(jobId);
        Case memory m;
        (m.cls, m.snapshotBlock) = _classAndSnapshot(info);
        m.provider = info.provider;
        m.requester = info.requester;
        m.anchor = info.anchorBlock;
        return _candidateOf(m, jobId, round, seat);
    }

    /// @inheritdoc IVerificationCourt
    function accountedBalance() external view returns (uint256) {
        return _totalStake + _totalUnbonding + _heldBonds;
    }

    // ---------------------------------------------------------------- internal: case flow

    function _take(Case storage c, uint256 jobId, uint8 seat) private {
        if (c.phase != Phase.Active) revert WrongPhase(jobId, c.phase);
        if (seat >= _k(c.round)) revert BadSeat(jobId, seat);
        if (block.timestamp > c.seatDeadline || c.seatingClosed) revert SeatDeadlinePassed(jobId, c.seatDeadline);
        Seat storage s = _seats[jobId][(uint256(c.round) << 8) | seat];
        if (s.state != SeatState.Empty) revert BadSeat(jobId, seat);
        address drawn = _candidate(c, jobId, c.round, seat);
        if (msg.sender != drawn) revert NotDrawnForSeat(jobId, seat, drawn);
        CourtParams storage p = _params[c.version];
        uint96 bond = _bps(c.reward, c.round == 0 ? p.auditorBondBps : p.jurorBondBps);
        Verifier storage v = _verifiers[msg.sender];
        // A seat is for a member of the case's class now (one that left or moved since the snapshot
        // is redrawn): its bond must come from stake the class's walk counts.
        if (!v.joined || v.cls != c.cls) revert NotJoined(msg.sender);
        if (v.free < bond) revert InsufficientFreeStake(msg.sender, v.free, bond);
        // C6: a verifier's first seat in a case locks sigma * R of stake (its bond counts towards
        // it), held until its last seat there closes; each further seat there locks its bond. A canary
        // catch takes every seat of the verifier in the case at once (exposeCanary) and burns bonds +
        // sigma * R, so sigma * R a case is backed by a lock however many cases it sits in (stake
        // checked per case but shared across cases let one sigma * R back them all), while its seats
        // in one case need sigma * R + their bonds, not sigma * R each (found by review: a member
        // with 2 sigma * R could hold two seats a case, a class's jury went short, and a caught lazy
        // provider was paid on a Split).
        // A verifier whose agreeing audit's reserve went back (releaseReserve) and who is drawn onto
        // the jury of a later challenge locks a reserve again with that seat.
        Hold storage h = _holds[jobId][msg.sender];
        uint96 reserve = 0;
        if (h.seats == 0 || h.released) {
            uint256 sigmaR = uint256(c.reward) * p.canarySlashMul;
            reserve = sigmaR > bond ? uint96(sigmaR - bond) : 0;
            h.reserve = reserve;
            h.released = false;
        }
        h.seats += 1;
        uint96 lock = bond + reserve;
        if (v.free < lock) revert StakeBelowSigma(msg.sender, v.free, lock);
        v.free -= lock;
        v.locked += lock;
        s.holder = msg.sender;
        s.state = SeatState.Taken;
        s.bond = bond;
        c.taken += 1;
        emit SeatTaken(jobId, c.round, seat, msg.sender, bond, reserve);
    }

    // ---------------------------------------------------------------- internal: draws

    /// @dev Runs the same call in CourtEngine, in this contract's context; bubbles its revert.
    function _delegate(address target) private {
        (bool ok, bytes memory ret) = target.delegatecall(msg.data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
    }

    function _candidate(Case storage c, uint256 jobId, uint8 round, uint8 seat) private view returns (address) {
        Case memory m;
        m.cls = c.cls;
        m.snapshotBlock = c.snapshotBlock;
        m.provider = c.provider;
        m.requester = c.requester;
        m.anchor = c.anchor;
        m.redraws = round == c.round ? c.redraws : 0;
        return _candidateOf(m, jobId, round, seat);
    }

    /// @dev Stake-weighted pick with replacement from class `m.cls` at `m.snapshotBlock`, skipping
    ///      the job's provider and requester with a deterministic extra nonce.
    function _candidateOf(Case memory m, uint256 jobId, uint8 round, uint8 seat) private view returns (address) {
        uint256 total = _classHistory[m.cls].upperLookupRecent(uint48(m.snapshotBlock));
        if (total == 0) return address(0);
        bytes32 r = IRandomness(_market.randomness()).randomness(m.anchor);
        for (uint256 j = 0; j < _MAX_DRAW_TRIES; ++j) {
            bytes32 h = j == 0
                ? keccak256(abi.encode(r, jobId, round, seat, m.redraws))
                : keccak256(abi.encode(r, jobId, round, seat, m.redraws, j));
            address picked = _pick(m.cls, m.snapshotBlock, uint256(h) % total);
            if (picked != m.provider && picked != m.requester) return picked;
        }
        return address(0);
    }

    function _pick(uint8 cls, uint64 snapshot, uint256 target) private view returns (address) {
        uint256 n = _members[cls].length;
        mapping(uint256 => Checkpoints.Trace208) storage holders = _slotHolders[cls];
        uint256 acc;
        for (uint256 i = 0; i < n; ++i) {
            // The slot's holder at the snapshot (a slot pushed since reads address(0), weight 0).
            address member = address(uint160(holders[i].upperLookupRecent(uint48(snapshot))));
            acc += _stakeHistory[member].upperLookupRecent(uint48(snapshot));
            if (target < acc) return member;
        }
        // Not reached while the class total equals the sum of its members' stakes; kept as a guard:
        // the seat then has no candidate and is redrawn.
        return address(0);
    }

    // ---------------------------------------------------------------- internal: helpers

    function _heldSeat(Case storage c, uint256 jobId, uint8 seat) private view returns (Seat storage s) {
        s = _seats[jobId][(uint256(c.round) << 8) | seat];
        if (s.holder != msg.sender || s.state == SeatState.Empty) revert NotSeatHolder(jobId, seat);
    }

    /// @dev Reveals open after the commit deadline, or once every seat (all K, or all taken after
    ///      the seating closed) has committed.
    function _revealOpen(Case storage c) private view returns (bool) {
        if (block.timestamp > c.commitDeadline) return true;
        bool full = c.taken == _k(c.round) || c.seatingClosed;
        return full && c.committed == c.taken && c.taken > 0;
    }

    function _checkRevealWindow(Case storage c, uint256 jobId) private view {
        if (!_revealOpen(c)) revert RevealNotOpen(jobId);
        if (block.timestamp > c.revealDeadline) revert RevealClosed(jobId);
    }
}
