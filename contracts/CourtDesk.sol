// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";

import {IMarketForCourt} from "./IMarketForCourt.sol";

import {CourtBase} from "./CourtBase.sol";

/// @title VerificationCourt's desk: verifier stakes, challenges, appeals, the arbiter, parameters
/// @notice Runs only by delegatecall from a VerificationCourt (its storage, its token balance, its
///         events); a direct call reverts `NotDelegated`. Split out to stay under EIP-170's limit.
contract CourtDesk is CourtBase {
    using SafeERC20 for IERC20;
    using Checkpoints for Checkpoints.Trace208;

    /// @notice Sets the first parameters (VerificationCourt's constructor).
    function initialize(CourtParams calldata params_) external onlyDelegated {
        if (_version != 0) revert ParamOutOfBounds("initialized");
        _setParams(params_);
    }

    /// @notice See IVerificationCourt.
    function join(uint96 amount, uint8 platformClass) external onlyDelegated {
        Verifier storage v = _verifiers[msg.sender];
        if (v.joined) revert AlreadyJoined(msg.sender);
        uint96 minimum = _params[_version].minStake;
        if (amount < minimum) revert StakeBelowMinimum(amount, minimum);
        if (platformClass != 0 && !_classOpen[platformClass]) revert ClassClosed(platformClass);
        address[] storage members = _members[platformClass];
        uint8[] storage vacant = _vacant[platformClass];
        uint256 n = vacant.length;
        uint8 slot;
        if (n > 0) {
            // A slot left by a verifier who withdrew everything: the walk order of the others stays.
            slot = vacant[n - 1];
            vacant.pop();
            members[slot] = msg.sender;
        } else if (members.length < MAX_CLASS_MEMBERS) {
            slot = uint8(members.length);
            members.push(msg.sender);
        } else {
            slot = _displace(platformClass, amount);
            members[slot] = msg.sender;
        }
        _slotHolders[platformClass][slot].push(uint48(block.number), uint160(msg.sender));
        v.slot = slot;
        v.joined = true;
        v.cls = platformClass;
        v.free = amount;
        _stakeChanged(msg.sender, platformClass, amount, true);
        emit VerifierJoined(msg.sender, platformClass, amount);
        _token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @dev A full class admits a joiner in place of its smallest member: the one with the least
    ///      stake and none of it locked in a seat (the first such in the walk), if the joiner stakes
    ///      strictly more; else `ClassFull`. The member's stake goes to unbonding for `leaveDelay()`
    ///      (slashable there, as after `requestLeave`) and it leaves the class; the slot's history
    ///      (`_slotHolders`) keeps every pending draw's walk as it was. So a class is the (at most)
    ///      128 largest stakes that want it, and squatting it with minimum stakes no longer locks
    ///      anyone out. A member with locked stake is passed over: its bonds return to free stake,
    ///      which must stay in the class's walk. O(members): one read of each.
    function _displace(uint8 cls, uint96 amount) internal returns (uint8 slot) {
        address[] storage members = _members[cls];
        uint256 n = members.length;
        address victim = address(0);
        uint96 least = type(uint96).max;
        for (uint256 i = 0; i < n; ++i) {
            address member = members[i];
            Verifier storage m = _verifiers[member];
            if (member != address(0) && m.locked == 0 && m.free < least) {
                least = m.free;
                victim = member;
                slot = uint8(i);
            }
        }
        if (victim == address(0) || amount <= least) revert ClassFull(cls);
        Verifier storage out = _verifiers[victim];
        out.joined = false;
        if (least > 0) {
            // (a member whose whole stake is already unbonding keeps its release time)
            out.free = 0;
            _stakeChanged(victim, cls, least, false);
            Leaving storage l = _leaving[victim];
            l.amount += least;
            l.releaseAt = uint32(block.timestamp + _leaveDelay());
            _totalUnbonding += least;
            emit LeaveRequested(victim, least, 0, l.amount, l.releaseAt);
        }
        emit VerifierDisplaced(victim, msg.sender, cls, least);
        emit ClassLeft(victim, cls);
    }

    /// @notice See IVerificationCourt.
    function addStake(uint96 amount) external onlyDelegated {
        if (amount == 0) revert ZeroAmount();
        Verifier storage v = _joined(msg.sender);
        v.free += amount;
        _stakeChanged(msg.sender, v.cls, amount, true);
        emit StakeAdded(msg.sender, amount, v.free + v.locked);
        _token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice See IVerificationCourt.
    function requestLeave(uint96 amount) external onlyDelegated {
        if (amount == 0) revert ZeroAmount();
        Verifier storage v = _joined(msg.sender);
        if (amount > v.free) revert InsufficientFreeStake(msg.sender, v.free, amount);
        v.free -= amount;
        _stakeChanged(msg.sender, v.cls, amount, false);
        Leaving storage l = _leaving[msg.sender];
        l.amount += amount;
        l.releaseAt = uint32(block.timestamp + _leaveDelay());
        _totalUnbonding += amount;
        emit LeaveRequested(msg.sender, amount, v.free + v.locked, l.amount, l.releaseAt);
    }

    /// @notice See IVerificationCourt.
    function withdrawLeft() external onlyDelegated {
        Leaving memory l = _leaving[msg.sender];
        if (l.amount == 0) revert NothingToWithdraw(msg.sender);
        if (block.timestamp < l.releaseAt) revert LeaveNotReady(l.releaseAt);
        delete _leaving[msg.sender];
        _totalUnbonding -= l.amount;
        emit LeftWithdrawn(msg.sender, l.amount);
        Verifier storage v = _verifiers[msg.sender];
        if (v.joined && v.free == 0 && v.locked == 0) {
            // Fully withdrawn: its slot in the class list is freed (address(0), weight 0 in every walk
            // of a case whose snapshot is newer than its leave) for the next joiner. The slot's history
            // says so too: the walk reads it, and the address's stake history is not per class (staked
            // again elsewhere, it would otherwise count here until the slot is reused).
            v.joined = false;
            _members[v.cls][v.slot] = address(0);
            _slotHolders[v.cls][v.slot].push(uint48(block.number), 0);
            _vacant[v.cls].push(v.slot);
            emit ClassLeft(msg.sender, v.cls);
        }
        _token.safeTransfer(msg.sender, l.amount);
    }

    /// @notice See IVerificationCourt.
    function setPlatformClass(uint8 platformClass) external onlyDelegated {
        ProviderClass storage pc = _providerClass[msg.sender];
        if (pc.setBlock != 0) revert PlatformClassAlreadySet(msg.sender);
        if (platformClass != 0 && !_classOpen[platformClass]) revert ClassClosed(platformClass);
        pc.cls = platformClass;
        pc.setBlock = uint64(block.number);
        emit PlatformClassSet(msg.sender, platformClass);
    }

    /// @notice See IVerificationCourt.
    function setClassOpen(uint8 platformClass, bool open) external onlyDelegated onlyRole(GOVERNOR_ROLE) {
        if (platformClass == 0) revert ClassClosed(0);
        _classOpen[platformClass] = open;
        emit ClassOpenSet(platformClass, open);
    }

    /// @notice See IVerificationCourt.
    function challenge(uint256 jobId) external onlyDelegated {
        Case storage c = _cases[jobId];
        if (c.phase == Phase.None) {
            bool drawn = _market.isDrawn(jobId);
            _open(jobId);
            if (msg.sender == c.provider) revert ProviderCannotChallenge(jobId);
            if (block.timestamp > c.challengeDeadline) revert ChallengeClosed(jobId);
            if (!drawn) _startRound(c, jobId, 1, 0);
        } else {
            if (msg.sender == c.provider) revert ProviderCannotChallenge(jobId);
            if (c.round != 0 || block.timestamp > c.challengeDeadline) revert ChallengeClosed(jobId);
            if (c.phase == Phase.Tallied) {
                // The audit agreed and waits out its canary window: the challenge takes it to a jury.
                _startRound(c, jobId, 1, 0);
            } else if (c.phase != Phase.Active) {
                revert ChallengeClosed(jobId);
            }
            if (c.challenger != address(0)) revert AlreadyChallenged(jobId);
        }
        uint96 bond = _bps(c.reward, _params[c.version].challengeBondBps);
        c.challenger = msg.sender;
        c.challengeBond = bond;
        _heldBonds += bond;
        emit Challenged(jobId, msg.sender, bond);
        _token.safeTransferFrom(msg.sender, address(this), bond);
    }

    /// @notice See IVerificationCourt.
    function appeal(uint256 jobId) external onlyDelegated {
        Case storage c = _case(jobId);
        if (c.phase != Phase.Tallied || c.round == 0 || block.timestamp > c.windowEnd) revert AppealClosed(jobId);
        bool providerLost = c.tally == IMarketForCourt.Outcome.ProviderWrong;
        if (providerLost != (msg.sender == c.provider)) revert NotAppellant(jobId, msg.sender);
        CourtParams storage p = _params[c.version];
        uint8 round = c.round;
        uint256 nextK = round < LAST_JURY_ROUND ? _k(round + 1) : _k(LAST_JURY_ROUND);
        uint96 bond = uint96(nextK * _bps(c.reward, p.jurorPayBps));
        _appeals[jobId][round] = Appeal(msg.sender, bond);
        _heldBonds += bond;
        emit Appealed(jobId, round, msg.sender, bond);
        if (round < LAST_JURY_ROUND) {
            _startRound(c, jobId, round + 1, 0);
        } else {
            c.phase = Phase.Arbiter;
            c.windowEnd = uint32(block.timestamp + p.arbiterWindow);
        }
        _token.safeTransferFrom(msg.sender, address(this), bond);
    }

    /// @notice See IVerificationCourt.
    function arbiterRule(uint256 jobId, IMarketForCourt.Outcome outcome) external onlyDelegated onlyRole(ARBITER_ROLE) {
        Case storage c = _case(jobId);
        if (c.phase != Phase.Arbiter || block.timestamp > c.windowEnd || c.ruling != IMarketForCourt.Outcome.None) {
            revert ArbiterNotOpen(jobId);
        }
        if (outcome == IMarketForCourt.Outcome.None || outcome > IMarketForCourt.Outcome.Split) revert BadOutcome();
        c.ruling = outcome;
        c.ruledAt = uint32(block.timestamp);
        c.ruler = msg.sender;
        emit ArbiterRuled(jobId, msg.sender, outcome, uint32(block.timestamp + _params[c.version].arbiterDelay));
    }

    /// @notice See IVerificationCourt.
    function setParams(CourtParams calldata params_) external onlyDelegated onlyRole(GOVERNOR_ROLE) {
        _setParams(params_);
    }

    function _joined(address who) internal view returns (Verifier storage v) {
        v = _verifiers[who];
        if (!v.joined) revert NotJoined(who);
    }

    function _setParams(CourtParams memory p) internal {
        if (p.startWindow == 0 || p.startWindow > _MAX_TIME) revert ParamOutOfBounds("startWindow");
        if (p.rhoPct < 100 || p.rhoPct > 1000) revert ParamOutOfBounds("rhoPct");
        if (p.setupTime > _MAX_TIME) revert ParamOutOfBounds("setupTime");
        if (p.inclusionTime == 0 || p.inclusionTime > _MAX_TIME) revert ParamOutOfBounds("inclusionTime");
        if (p.revealWindow < p.inclusionTime || p.revealWindow > _MAX_TIME) revert ParamOutOfBounds("revealWindow");
        if (p.appealWindow < p.inclusionTime || p.appealWindow > _MAX_TIME) revert ParamOutOfBounds("appealWindow");
        if (p.canaryWindow < p.inclusionTime || p.canaryWindow > _MAX_TIME) revert ParamOutOfBounds("canaryWindow");
        // C4/C5: w >= 1.1 R; the auditor's and a challenger's bond each fund a K = 3 jury.
        if (p.jurorPayBps < 11_000 || p.jurorPayBps > 100_000) revert ParamOutOfBounds("jurorPayBps");
        if (p.auditorBondBps < 3 * p.jurorPayBps || p.auditorBondBps > 1_000_000) {
            revert ParamOutOfBounds("auditorBondBps");
        }
        if (p.challengeBondBps < 3 * p.jurorPayBps || p.challengeBondBps > 1_000_000) {
            revert ParamOutOfBounds("challengeBondBps");
        }
        // C7: a juror risks at least what it earns; no-show penalty == minority penalty == B_j. And
        // B_j >= 3w: a round escalated without an appeal bond (a no-show's missing vote could decide)
        // is paid in full from the pot when the provider is right or wrong: 3 -> 7 needs the loser's
        // 3w + the no-show's and an incoherent juror's bonds >= 8w (B_j >= 2.5w); 7 -> 15 after an
        // appeal needs 3w + 7w + 4 B_j >= 21w (B_j >= 2.75w). Found by review: at B_j = w an
        // escalated 7-jury was paid 5.7 R of its 8.8 R.
        if (p.jurorBondBps < 3 * p.jurorPayBps || p.jurorBondBps > 1_000_000) revert ParamOutOfBounds("jurorBondBps");
        // C6: phi * (A + sigma R) >= g R with phi = 5 %, A = 1.1 R.
        if (p.canarySlashMul < 20 || p.canarySlashMul > 1000) revert ParamOutOfBounds("canarySlashMul");
        if (p.maxRedraws > 8) revert ParamOutOfBounds("maxRedraws");
        if (p.arbiterDelay == 0 || p.arbiterDelay > _MAX_TIME) revert ParamOutOfBounds("arbiterDelay");
        if (p.arbiterWindow < p.inclusionTime || p.arbiterWindow > _MAX_TIME) revert ParamOutOfBounds("arbiterWindow");
        if (p.activationDelayBlocks == 0 || p.activationDelayBlocks > 1_000_000) {
            revert ParamOutOfBounds("activationDelayBlocks");
        }
        if (p.blockTime == 0 || p.blockTime > 3600) revert ParamOutOfBounds("blockTime");
        if (p.betaBps > 1000) revert ParamOutOfBounds("betaBps");
        if (p.minStake == 0) revert ParamOutOfBounds("minStake");
        // C6: every member can sit for every job the market admits (it holds sigma * maxReward).
        if (uint256(p.minStake) < uint256(p.canarySlashMul) * _market.maxReward()) revert ParamOutOfBounds("minStake");
        uint16 version = _version + 1;
        _version = version;
        _params[version] = p;
        emit CourtParamsSet(version, p);
    }
}
