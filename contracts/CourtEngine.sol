// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";

import {IMarketForCourt} from "./IMarketForCourt.sol";
import {IRewardToken} from "./IRewardToken.sol";

import {CourtBase} from "./CourtBase.sol";
import {CourtDesk} from "./CourtDesk.sol";

/// @title The case engine of VerificationCourt: redraws, tallies, escalations, conclusions, canaries
/// @notice Runs only by delegatecall from the VerificationCourt that deployed it (its storage, its
///         token balance, its events); a direct call reverts `NotDelegated`.
contract CourtEngine is CourtBase {
    using SafeERC20 for IERC20;
    using Checkpoints for Checkpoints.Trace208;

    /// @notice The CourtDesk deployed with this engine (VerificationCourt reads it at construction).
    address public immutable desk;

    constructor() {
        desk = address(new CourtDesk());
    }

    /// @notice See IVerificationCourt.advance.
    function advance(uint256 jobId) external onlyDelegated {
        _advance(jobId);
    }

    /// @notice See IVerificationCourt.redraw.
    function redraw(uint256 jobId) external onlyDelegated {
        _advance(jobId);
    }

    function _advance(uint256 jobId) internal {
        Case storage c = _cases[jobId];
        if (c.phase == Phase.None) {
            if (!_market.isDrawn(jobId)) revert NotDrawn(jobId);
            _open(jobId);
        }
        Phase phase = c.phase;
        if (phase == Phase.Active) {
            _advanceActive(c, jobId);
        } else if (phase == Phase.Tallied) {
            if (block.timestamp <= c.windowEnd) revert NothingDue(jobId);
            _conclude(c, jobId, c.tally, 0);
        } else if (phase == Phase.Arbiter) {
            if (c.ruling != IMarketForCourt.Outcome.None) {
                if (block.timestamp < uint256(c.ruledAt) + _params[c.version].arbiterDelay) revert NothingDue(jobId);
                // A ruling whose arbiter lost the role during the timelock is dropped.
                bool stands = hasRole(ARBITER_ROLE, c.ruler);
                if (stands) c.topDigest = bytes32(0); // coherence with an arbiter's ProviderWrong: any other digest
                _conclude(c, jobId, stands ? c.ruling : c.tally, 0);
            } else {
                if (block.timestamp <= c.windowEnd) revert NothingDue(jobId);
                _conclude(c, jobId, c.tally, 0);
            }
        } else {
            revert CaseClosed(jobId);
        }
    }

    function _advanceActive(Case storage c, uint256 jobId) internal {
        CourtParams storage p = _params[c.version];
        if (_classHistory[c.cls].upperLookupRecent(uint48(c.snapshotBlock)) == 0) {
            _noParticipation(c, jobId);
            return;
        }
        uint8 k = uint8(_k(c.round));
        if (c.taken < k && !c.seatingClosed) {
            if (block.timestamp <= c.seatDeadline) revert NothingDue(jobId);
            if (c.redraws < p.maxRedraws) {
                _startRound(c, jobId, c.round, c.redraws + 1);
                return;
            }
            if (c.taken == 0) {
                _noParticipation(c, jobId);
                return;
            }
            c.seatingClosed = true;
        }
        bool allIn = (c.taken == k || c.seatingClosed) && c.taken > 0 && c.revealed == c.taken && c.providerRevealed;
        if (block.timestamp <= c.revealDeadline && !allIn) revert NothingDue(jobId);
        if (c.committed > 0 && !c.providerRevealed) {
            c.topDigest = bytes32(0);
            _conclude(c, jobId, IMarketForCourt.Outcome.ProviderWrong, 0);
            return;
        }
        // No-shows: taken but not revealed. Bond burned, seat emptied (redrawn below).
        uint96 burned;
        for (uint256 i = 0; i < k; ++i) {
            Seat storage s = _seats[jobId][(uint256(c.round) << 8) | i];
            if (s.state != SeatState.Taken && s.state != SeatState.Committed) continue;
            if (s.state == SeatState.Committed) c.committed -= 1;
            c.taken -= 1;
            address holder = s.holder;
            uint96 bond = s.bond;
            burned += bond;
            Verifier storage v = _verifiers[holder];
            v.locked -= bond;
            _stakeChanged(holder, v.cls, bond, false);
            delete _seats[jobId][(uint256(c.round) << 8) | i];
            emit SeatNoShow(jobId, c.round, uint8(i), holder, bond);
        }
        if (burned > 0) IRewardToken(address(_token)).burn(burned);
        if (c.taken < k && c.redraws < p.maxRedraws) {
            _startRound(c, jobId, c.round, c.redraws + 1);
            return;
        }
        if (c.revealed == 0) {
            _noParticipation(c, jobId);
            return;
        }
        _tally(c, jobId, p);
    }

    /// @dev Nobody could verify: a challenged audit goes to its K = 3 jury anyway; otherwise round
    ///      0/1 settle Unaudited (all bonds back); in an appeal round the appealed tally stands and
    ///      the appellant gets its bond back.
    function _noParticipation(Case storage c, uint256 jobId) internal {
        if (c.round == 0 && c.challenger != address(0)) {
            _startRound(c, jobId, 1, 0);
            return;
        }
        if (c.round <= 1) {
            _conclude(c, jobId, IMarketForCourt.Outcome.Unaudited, 0);
            return;
        }
        uint8 appealed = c.round - 1;
        Appeal memory a = _appeals[jobId][appealed];
        delete _appeals[jobId][appealed];
        _heldBonds -= a.bond;
        c.round = appealed;
        _conclude(c, jobId, _tallies[jobId][appealed], a.bond);
        _token.safeTransfer(a.appellant, a.bond);
    }

    function _tally(Case storage c, uint256 jobId, CourtParams storage p) internal {
        uint8 round = c.round;
        uint256 k = _k(round);
        bytes32 dp = c.providerDigest;
        uint8 forProvider;
        uint8 forTop;
        bytes32 top;
        for (uint256 i = 0; i < k; ++i) {
            Seat storage s = _seats[jobId][(uint256(round) << 8) | i];
            if (s.state != SeatState.Revealed) continue;
            bytes32 d = s.word;
            if (d == dp) {
                forProvider += 1;
                continue;
            }
            if (d == top) continue;
            uint8 n;
            for (uint256 j = i; j < k; ++j) {
                Seat storage t = _seats[jobId][(uint256(round) << 8) | j];
                if (t.state == SeatState.Revealed && t.word == d) n += 1;
            }
            if (n > forTop) {
                forTop = n;
                top = d;
            }
        }
        IMarketForCourt.Outcome tally;
        if (forTop >= (2 * k + 2) / 3 && forProvider < 2) tally = IMarketForCourt.Outcome.ProviderWrong;
        else if (2 * uint256(forProvider) > c.revealed) tally = IMarketForCourt.Outcome.ProviderRight;
        else tally = IMarketForCourt.Outcome.Split;
        c.tally = tally;
        c.topDigest = top;
        _tallies[jobId][round] = tally;
        if (round == 0) {
            // The audit: agreement (and no challenge) waits out the canary window; anything else
            // goes to a K = 3 jury.
            if (tally == IMarketForCourt.Outcome.ProviderRight && c.challenger == address(0)) {
                c.phase = Phase.Tallied;
                c.windowEnd = uint32(block.timestamp + p.canaryWindow);
                emit RoundTallied(jobId, 0, tally, c.revealed, forProvider, forTop, top, c.windowEnd);
            } else {
                emit RoundTallied(jobId, 0, tally, c.revealed, forProvider, forTop, top, 0);
                _startRound(c, jobId, 1, 0);
            }
            return;
        }
        c.phase = Phase.Tallied;
        c.windowEnd = uint32(block.timestamp + p.appealWindow);
        emit RoundTallied(jobId, round, tally, c.revealed, forProvider, forTop, top, c.windowEnd);
    }

    /// @dev Ends the case: the market settles, then every seat, bond and the pot are paid out.
    ///      `preBurned` (canary slashes) and `preRefunded` (an appeal bond returned) only feed the event.
    function _conclude(Case storage c, uint256 jobId, IMarketForCourt.Outcome outcome, uint96 preMoved) internal {
        c.phase = Phase.Concluded;
        c.outcome = outcome;
        uint96 toCourt = _market.settle(jobId, outcome);
        CourtParams storage p = _params[c.version];
        Money memory m;
        m.pot = toCourt;
        if (outcome == IMarketForCourt.Outcome.Canary) m.burned = preMoved;
        else m.refunded = preMoved;
        _settleBonds(c, jobId, outcome, m);
        // A disagreeing auditor pays the jury in ProviderRight (forfeit) and Split (first from A).
        uint96 auditorStake = _forfeitDisagreeingAuditor(c, jobId, outcome, m);
        uint96 w = _bps(c.reward, p.jurorPayBps);
        // ProviderWrong: the auditor who caught it is paid A first (the pot holds A + collateral);
        // the loop below then skips its settled seat.
        if (outcome == IMarketForCourt.Outcome.ProviderWrong) _settleSeat(c, jobId, 0, 0, outcome, c.auditFee, m);
        _settleRounds(c, jobId, outcome, w, m);
        if (outcome == IMarketForCourt.Outcome.ProviderWrong && c.challenger != address(0)) {
            uint96 bounty = _min(m.pot, _bps(c.reward, p.betaBps));
            m.pot -= bounty;
            m.bounty = bounty;
            if (bounty > 0) _token.safeTransfer(c.challenger, bounty);
        }
        if (outcome == IMarketForCourt.Outcome.Split) {
            uint96 back = _min(m.pot, auditorStake);
            if (back > 0) {
                m.pot -= back;
                address auditor = _seats[jobId][0].holder;
                _verifiers[auditor].free += back;
                _stakeChanged(auditor, _verifiers[auditor].cls, back, true);
            }
            m.refunded += m.pot;
            if (m.pot > 0) _token.safeTransfer(c.requester, m.pot);
        } else {
            m.burned += m.pot;
            if (m.pot > 0) IRewardToken(address(_token)).burn(m.pot);
        }
        if (m.seatBurn > 0) IRewardToken(address(_token)).burn(m.seatBurn);
        emit CaseConcluded(jobId, outcome, toCourt, m.paid, m.bounty, m.refunded, m.burned + m.seatBurn);
    }

    /// @dev Settles every seat of every round, the latest first: the audit seat at rate A, jury
    ///      seats at `w` (0 for a canary).
    function _settleRounds(Case storage c, uint256 jobId, IMarketForCourt.Outcome outcome, uint96 w, Money memory m)
        private
    {
        for (uint256 r = c.round + 1; r > 0; --r) {
            uint256 round = r - 1;
            uint256 k = _k(round);
            uint96 rate = round == 0 ? c.auditFee : (outcome == IMarketForCourt.Outcome.Canary ? 0 : w);
            for (uint256 i = 0; i < k; ++i) {
                _settleSeat(c, jobId, round, i, outcome, rate, m);
            }
        }
    }

    /// @dev In ProviderRight and Split, an auditor whose revealed digest is not the provider's
    ///      forfeits its bond into the pot (its seat settled here); returns the bond (0 otherwise).
    function _forfeitDisagreeingAuditor(Case storage c, uint256 jobId, IMarketForCourt.Outcome outcome, Money memory m)
        private
        returns (uint96 auditorStake)
    {
        Seat storage audit = _seats[jobId][0];
        if (
            audit.state == SeatState.Revealed && audit.word != c.providerDigest
                && (outcome == IMarketForCourt.Outcome.ProviderRight || outcome == IMarketForCourt.Outcome.Split)
        ) {
            auditorStake = audit.bond;
            m.pot += auditorStake;
            audit.state = SeatState.Settled;
            Verifier storage v = _verifiers[audit.holder];
            v.locked -= auditorStake;
            _stakeChanged(audit.holder, v.cls, auditorStake, false);
            emit SeatSettled(jobId, 0, 0, audit.holder, 0, 0, auditorStake);
        }
    }

    struct Money {
        uint96 pot;
        uint96 paid;
        uint96 bounty;
        uint96 refunded;
        uint96 burned;
        uint96 seatBurn;
    }

    /// @dev Challenge and appeal bonds: returned to the winner, into the pot from the loser.
    function _settleBonds(Case storage c, uint256 jobId, IMarketForCourt.Outcome outcome, Money memory m) internal {
        bool neutral = outcome == IMarketForCourt.Outcome.Canary || outcome == IMarketForCourt.Outcome.Unaudited;
        for (uint256 r = 1; r <= LAST_JURY_ROUND; ++r) {
            Appeal memory a = _appeals[jobId][r];
            if (a.bond == 0) continue;
            delete _appeals[jobId][r];
            _heldBonds -= a.bond;
            IMarketForCourt.Outcome appealed = _tallies[jobId][r];
            bool won = appealed == IMarketForCourt.Outcome.ProviderWrong
                ? outcome != IMarketForCourt.Outcome.ProviderWrong
                : _rank(outcome) > _rank(appealed);
            if (neutral || won) {
                m.refunded += a.bond;
                _token.safeTransfer(a.appellant, a.bond);
            } else {
                m.pot += a.bond;
            }
        }
        uint96 cb = c.challengeBond;
        if (cb > 0) {
            _heldBonds -= cb;
            if (outcome == IMarketForCourt.Outcome.ProviderRight) {
                m.pot += cb;
            } else {
                m.refunded += cb;
                _token.safeTransfer(c.challenger, cb);
            }
        }
    }

    function _settleSeat(
        Case storage c,
        uint256 jobId,
        uint256 round,
        uint256 i,
        IMarketForCourt.Outcome outcome,
        uint96 rate,
        Money memory m
    ) internal {
        Seat storage s = _seats[jobId][(round << 8) | i];
        SeatState state = s.state;
        if (state == SeatState.Empty || state == SeatState.Settled) return;
        s.state = SeatState.Settled;
        address holder = s.holder;
        uint96 bond = s.bond;
        Verifier storage v = _verifiers[holder];
        v.locked -= bond;
        bool keep;
        if (state == SeatState.Revealed) {
            keep = _coherent(c, outcome, s.word);
        } else {
            // Taken or committed but the case ended first: a no-show, unless the case was cut short
            // (canary exposure) or nobody could verify.
            keep = outcome == IMarketForCourt.Outcome.Canary || outcome == IMarketForCourt.Outcome.Unaudited;
            rate = 0;
        }
        uint96 pay;
        if (keep) {
            v.free += bond;
            pay = _min(rate, m.pot);
            m.pot -= pay;
            m.paid += pay;
        } else {
            m.seatBurn += bond;
            _stakeChanged(holder, v.cls, bond, false);
        }
        emit SeatSettled(jobId, uint8(round), uint8(i), holder, pay, keep ? bond : 0, keep ? 0 : bond);
        if (pay > 0) _token.safeTransfer(holder, pay);
    }

    function _coherent(Case storage c, IMarketForCourt.Outcome outcome, bytes32 digest) internal view returns (bool) {
        if (outcome == IMarketForCourt.Outcome.ProviderRight) return digest == c.providerDigest;
        if (outcome == IMarketForCourt.Outcome.ProviderWrong) {
            bytes32 top = c.topDigest;
            return top == bytes32(0) ? digest != c.providerDigest : digest == top;
        }
        return true; // Split, Canary (canary seats were settled by the exposure), Unaudited
    }

    /// @dev Burns `bond` from `who`'s locked stake and up to `sigmaR` more from its free stake, then
    ///      from its unbonding stake. Returns the total burned.
    function _slash(address who, uint96 bond, uint96 sigmaR) internal returns (uint96 lost) {
        Verifier storage v = _verifiers[who];
        v.locked -= bond;
        uint96 fromFree = _min(v.free, sigmaR);
        v.free -= fromFree;
        _stakeChanged(who, v.cls, bond + fromFree, false);
        Leaving storage l = _leaving[who];
        uint96 fromLeaving = _min(l.amount, sigmaR - fromFree);
        l.amount -= fromLeaving;
        _totalUnbonding -= fromLeaving;
        lost = bond + fromFree + fromLeaving;
        IRewardToken(address(_token)).burn(lost);
    }

    /// @notice See IVerificationCourt.exposeCanary.
    function exposeCanary(uint256 jobId, bytes32 secret, bytes32 salt) external onlyDelegated {
        Case storage c = _case(jobId);
        if (c.phase == Phase.Concluded) revert CaseClosed(jobId);
        if (msg.sender != c.provider || !hasRole(CANARY_ROLE, msg.sender)) revert NotProvider(jobId);
        bytes32 canary = keccak256(abi.encodePacked("depin-canary", secret));
        if (keccak256(abi.encode(msg.sender, jobId, canary, salt)) != c.commitment) revert NotCanary(jobId);
        uint96 sigmaR = uint96(uint256(c.reward) * _params[c.version].canarySlashMul);
        uint8 caught;
        uint96 slashed;
        for (uint256 r = 0; r <= c.round; ++r) {
            uint256 k = _k(r);
            for (uint256 i = 0; i < k; ++i) {
                Seat storage s = _seats[jobId][(r << 8) | i];
                if (s.state != SeatState.Revealed || s.word != canary) continue;
                s.state = SeatState.Settled;
                caught += 1;
                uint96 lost = _slash(s.holder, s.bond, sigmaR);
                slashed += lost;
                emit SeatSettled(jobId, uint8(r), uint8(i), s.holder, 0, 0, s.bond);
                emit VerifierSlashed(s.holder, jobId, lost);
            }
        }
        emit CanaryExposed(jobId, canary, caught, slashed);
        _conclude(c, jobId, IMarketForCourt.Outcome.Canary, slashed);
    }
}
