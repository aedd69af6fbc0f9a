// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

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
            _noParticipation(c, jobId, false); // an empty pool: no round can ever be judged
            return;
        }
        uint8 k = uint8(_k(c.round));
        if (c.taken < k && !c.seatingClosed) {
            if (block.timestamp <= c.seatDeadline) revert NothingDue(jobId);
            // Once a seat of the round revealed, its vote is public: a seat drawn now could copy
            // it without running the job. Empty seats are redrawn only before any reveal.
            if (c.redraws < p.maxRedraws && c.revealed == 0) {
                _startRound(c, jobId, c.round, c.redraws + 1);
                return;
            }
            if (c.taken == 0) {
                _noParticipation(c, jobId, true);
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
        // No-shows: taken but not revealed. Bond forfeited (held for the case's pot, which pays the
        // jury and burns the rest at the conclusion), seat emptied (redrawn below if nobody revealed).
        uint96 forfeited;
        for (uint256 i = 0; i < k; ++i) {
            Seat storage s = _seats[jobId][(uint256(c.round) << 8) | i];
            if (s.state != SeatState.Taken && s.state != SeatState.Committed) continue;
            if (s.state == SeatState.Committed) c.committed -= 1;
            c.taken -= 1;
            address holder = s.holder;
            uint96 bond = s.bond;
            forfeited += bond;
            uint96 reserve = _release(jobId, holder, bond, false);
            delete _seats[jobId][(uint256(c.round) << 8) | i];
            emit SeatNoShow(jobId, c.round, uint8(i), holder, bond, reserve);
        }
        if (forfeited > 0) {
            c.forfeited += forfeited;
            _heldBonds += forfeited;
        }
        // A seat is missing (a no-show, or nobody could take it through the redraws): redrawn while
        // no seat revealed and redraws remain; after a reveal the round is tallied if the missing
        // seats could not change it, else escalated (found by review: a jury the seating closed
        // with one vote of three was tallied a Split, and a caught lazy provider was paid).
        bool shortRound = c.taken < k;
        if (shortRound && c.revealed == 0 && c.redraws < p.maxRedraws) {
            _startRound(c, jobId, c.round, c.redraws + 1);
            return;
        }
        if (c.revealed == 0) {
            _noParticipation(c, jobId, true);
            return;
        }
        _tally(c, jobId, p, shortRound);
    }

    /// @dev Nobody could verify: a challenged audit goes to its K = 3 jury anyway; otherwise round
    ///      0/1 settle Unaudited (all bonds back); in an appeal round the appealed tally stands and
    ///      the appellant gets its bond back (an escalated round: the short round's tally stands).
    ///      An unaudited round 0 waits (Tallied, tally Unaudited) until the job's challenge deadline
    ///      when `wait`: the job keeps its whole challenge window, as an undrawn job does, and a
    ///      challenge takes it to a jury; not for an empty pool (no jury could be drawn either).
    function _noParticipation(Case storage c, uint256 jobId, bool wait) internal {
        if (c.round == 0 && c.challenger != address(0)) {
            _startRound(c, jobId, 1, 0);
            return;
        }
        if (c.round == 0 && wait && block.timestamp <= c.challengeDeadline) {
            c.phase = Phase.Tallied;
            c.tally = IMarketForCourt.Outcome.Unaudited;
            c.windowEnd = c.challengeDeadline;
            emit RoundTallied(jobId, 0, IMarketForCourt.Outcome.Unaudited, 0, 0, 0, bytes32(0), c.windowEnd);
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
        if (a.bond > 0) _token.safeTransfer(a.appellant, a.bond); // none after an escalation
    }

    /// @dev Counts the current round's revealed seats. `shortRound`: seats are missing and cannot be
    ///      redrawn (a seat already revealed, or the redraws are spent; see `_advanceActive`).
    function _tally(Case storage c, uint256 jobId, CourtParams storage p, bool shortRound) internal {
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
            // The audit: agreement (and no challenge) waits out the canary window and the job's
            // challenge window (a challenge there takes it to a jury); anything else goes to a
            // K = 3 jury.
            if (tally == IMarketForCourt.Outcome.ProviderRight && c.challenger == address(0)) {
                c.phase = Phase.Tallied;
                uint256 end = block.timestamp + p.canaryWindow;
                c.canaryEnd = uint32(end);
                c.windowEnd = uint32(end > c.challengeDeadline ? end : c.challengeDeadline);
                emit RoundTallied(jobId, 0, tally, c.revealed, forProvider, forTop, top, c.windowEnd);
            } else {
                emit RoundTallied(jobId, 0, tally, c.revealed, forProvider, forTop, top, 0);
                _startRound(c, jobId, 1, 0);
            }
            return;
        }
        if (shortRound && round < LAST_JURY_ROUND && !_decided(tally, k, c.revealed, forProvider, forTop)) {
            // The missing seats could have changed the tally and cannot be redrawn (this round's
            // votes are public): the next, larger jury decides, without an appeal bond (its pay
            // comes from the pot, which the no-shows' forfeited bonds join).
            emit RoundTallied(jobId, round, tally, c.revealed, forProvider, forTop, top, 0);
            _startRound(c, jobId, round + 1, 0);
            return;
        }
        c.phase = Phase.Tallied;
        c.windowEnd = uint32(block.timestamp + p.appealWindow);
        emit RoundTallied(jobId, round, tally, c.revealed, forProvider, forTop, top, c.windowEnd);
    }

    /// @dev Whether the k - revealed missing votes of a K = k round, however cast, could not change
    ///      `tally` (the rules of `_tally`: ProviderWrong needs >= ceil(2k/3) on one other digest and
    ///      fewer than 2 for the provider; ProviderRight more than half of the revealed seats).
    function _decided(IMarketForCourt.Outcome tally, uint256 k, uint256 revealed, uint256 forProvider, uint256 forTop)
        internal
        pure
        returns (bool)
    {
        uint256 missing = k - revealed;
        if (tally == IMarketForCourt.Outcome.ProviderWrong) return forProvider + missing < 2;
        if (tally == IMarketForCourt.Outcome.ProviderRight) return 2 * forProvider > k;
        bool wrongPossible = forProvider < 2 && forTop + missing >= (2 * k + 2) / 3;
        return !wrongPossible && 2 * (forProvider + missing) <= k;
    }

    /// @dev Ends the case: the market settles, then every seat, bond and the pot are paid out.
    ///      Two budgets: the requester's audit escrow E (audit pay A = E - 3w to a coherent auditor;
    ///      on a Split also the jury; the rest back to the requester in every outcome) and the pot
    ///      (the loser's money: slashed collateral, forfeited challenge and seat bonds, no-shows'
    ///      bonds, and every appeal bond), which pays coherent jurors w each, then repays winning
    ///      appellants, then the challenger's bounty; the rest is burned. Two passes over the seats
    ///      (Kleros-style): incoherent revealed seats forfeit their bonds into the pot first, then
    ///      coherent seats are paid. `preMoved` (canary slashes, an appeal bond returned) only feeds the event.
    function _conclude(Case storage c, uint256 jobId, IMarketForCourt.Outcome outcome, uint96 preMoved) internal {
        c.phase = Phase.Concluded;
        c.outcome = outcome;
        uint96 toCourt = _market.settle(jobId, outcome);
        Money memory m;
        // toCourt is E (+ the collateral on ProviderWrong), or 0 (Unaudited: E refunded by the market).
        m.escrow = _min(c.auditFee, toCourt);
        m.pot = toCourt - m.escrow;
        uint96 forfeited = c.forfeited;
        if (forfeited > 0) {
            _heldBonds -= forfeited;
            m.pot += forfeited;
        }
        m.w = _bps(c.reward, _params[c.version].jurorPayBps);
        uint96 deposit = uint96(_FIRST_JURY) * m.w;
        m.auditPay = c.auditFee > deposit ? c.auditFee - deposit : 0;
        // On a Split the juries draw on E's jury deposit, at most 3w, never on the audit pay A
        // (kept for the auditor, paid first; found by review: a Split after an escalation let the
        // juries take all of E and the coherent auditor got nothing).
        if (outcome == IMarketForCourt.Outcome.Split) {
            m.topUp = _min(deposit, m.escrow > m.auditPay ? m.escrow - m.auditPay : 0);
        }
        if (outcome == IMarketForCourt.Outcome.Canary) m.burned = preMoved;
        else m.refunded = preMoved;
        uint256 won = _settleBonds(c, jobId, outcome, m);
        _settleRounds(c, jobId, outcome, m, true); // collect: incoherent bonds into the pot
        _settleRounds(c, jobId, outcome, m, false); // pay: coherent seats; no-shows burned
        for (uint256 r = 1; r <= LAST_JURY_ROUND; ++r) {
            if (won & (1 << r) == 0) continue;
            Appeal memory a = _appeals[jobId][r];
            delete _appeals[jobId][r];
            uint96 back = _min(m.pot, a.bond);
            m.pot -= back;
            m.refunded += back;
            if (back > 0) _token.safeTransfer(a.appellant, back);
        }
        if (outcome == IMarketForCourt.Outcome.ProviderWrong && c.challenger != address(0)) {
            uint96 bounty = _min(m.pot, _bps(c.reward, _params[c.version].betaBps));
            m.pot -= bounty;
            m.bounty = bounty;
            if (bounty > 0) _token.safeTransfer(c.challenger, bounty);
        }
        if (m.escrow > 0) {
            m.refunded += m.escrow;
            _token.safeTransfer(c.requester, m.escrow);
        }
        uint96 burn = m.pot + m.seatBurn;
        m.burned += burn;
        if (burn > 0) IRewardToken(address(_token)).burn(burn);
        emit CaseConcluded(jobId, outcome, toCourt, m.paid, m.bounty, m.refunded, m.burned);
    }

    /// @dev One pass over every seat of every round, the audit first, then the juries in order (see
    ///      `_settleSeat`). In the pay pass each jury round's coherent seats get w each while the
    ///      budget (the pot, plus E's jury deposit on a Split) covers them all, else share what is
    ///      left equally; a later round gets what earlier ones left. Each round but an escalated one
    ///      brought its own funds (the loser's money for round 1, appeal bonds for 2 and 3), so a
    ///      shortfall (a Split after a bondless escalation) falls on the escalated round only, never
    ///      on the auditor or on the jurors who ran the job before it (found by review: paying the
    ///      latest round first left them nothing).
    function _settleRounds(Case storage c, uint256 jobId, IMarketForCourt.Outcome outcome, Money memory m, bool collect)
        private
    {
        for (uint256 round = 0; round <= c.round; ++round) {
            uint256 k = _k(round);
            if (!collect && round > 0) m.share = _share(jobId, round, k, outcome, m);
            for (uint256 i = 0; i < k; ++i) {
                _settleSeat(c, jobId, round, i, outcome, m, collect);
            }
        }
    }

    /// @dev A coherent juror's pay in `round` (pay pass: its revealed seats left are the coherent ones).
    function _share(uint256 jobId, uint256 round, uint256 k, IMarketForCourt.Outcome outcome, Money memory m)
        private
        view
        returns (uint96)
    {
        if (outcome == IMarketForCourt.Outcome.Canary) return 0;
        uint256 n = 0;
        for (uint256 i = 0; i < k; ++i) {
            if (_seats[jobId][(round << 8) | i].state == SeatState.Revealed) n += 1;
        }
        if (n == 0) return 0;
        uint256 budget = uint256(m.pot) + m.topUp;
        return n * m.w <= budget ? m.w : uint96(budget / n);
    }

    struct Money {
        uint96 pot; // the loser's money: pays jurors, repays winning appellants, the bounty; rest burned
        uint96 escrow; // the requester's audit escrow E: audit pay, the jury on a Split; rest refunded
        uint96 w;
        uint96 auditPay;
        uint96 paid;
        uint96 bounty;
        uint96 refunded;
        uint96 burned;
        uint96 seatBurn;
        uint96 topUp; // Split: what of E the juries may still draw on (its jury deposit, <= 3w)
        uint96 share; // a coherent juror's pay in the round being paid
    }

    /// @dev Challenge and appeal bonds. Every appeal bond joins the pot (it pays the jury it asked
    ///      for) except in a neutral outcome (returned); returns a bitmask of the rounds whose
    ///      appellant won (repaid from the pot once the seats are paid; its record kept till then).
    ///      The challenger's bond joins the pot on ProviderRight and is returned otherwise.
    function _settleBonds(Case storage c, uint256 jobId, IMarketForCourt.Outcome outcome, Money memory m)
        internal
        returns (uint256 won)
    {
        bool neutral = outcome == IMarketForCourt.Outcome.Canary || outcome == IMarketForCourt.Outcome.Unaudited;
        for (uint256 r = 1; r <= LAST_JURY_ROUND; ++r) {
            Appeal memory a = _appeals[jobId][r];
            if (a.bond == 0) continue;
            _heldBonds -= a.bond;
            if (neutral) {
                delete _appeals[jobId][r];
                m.refunded += a.bond;
                _token.safeTransfer(a.appellant, a.bond);
                continue;
            }
            m.pot += a.bond;
            IMarketForCourt.Outcome appealed = _tallies[jobId][r];
            bool wins = appealed == IMarketForCourt.Outcome.ProviderWrong
                ? outcome != IMarketForCourt.Outcome.ProviderWrong
                : _rank(outcome) > _rank(appealed);
            if (wins) won |= 1 << r;
            else delete _appeals[jobId][r];
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

    /// @dev Settles one seat in the pass it belongs to: the collect pass (`collect`) takes the
    ///      revealed incoherent seats, whose bonds join the pot; the pay pass takes the rest: a
    ///      coherent auditor is paid A from the escrow, a coherent juror w from the pot (on a Split
    ///      then from the escrow: the requester's jury deposit), 0 on a canary; a seat taken but not
    ///      revealed is a no-show (bond burned) unless the case was cut short (Canary, Unaudited).
    function _settleSeat(
        Case storage c,
        uint256 jobId,
        uint256 round,
        uint256 i,
        IMarketForCourt.Outcome outcome,
        Money memory m,
        bool collect
    ) internal {
        Seat storage s = _seats[jobId][(round << 8) | i];
        SeatState state = s.state;
        if (state == SeatState.Empty || state == SeatState.Settled) return;
        bool revealed = state == SeatState.Revealed;
        bool keep = revealed
            ? _coherent(c, outcome, s.word)
            : outcome == IMarketForCourt.Outcome.Canary || outcome == IMarketForCourt.Outcome.Unaudited;
        if (collect != (revealed && !keep)) return;
        s.state = SeatState.Settled;
        address holder = s.holder;
        uint96 bond = s.bond;
        // the canary reserve goes back to free stake with the holder's last seat, in every case
        uint96 reserve = _release(jobId, holder, bond, keep);
        uint96 pay;
        if (keep) {
            if (revealed) pay = _pay(round, m);
        } else if (revealed) {
            m.pot += bond;
        } else {
            m.seatBurn += bond;
        }
        emit SeatSettled(jobId, uint8(round), uint8(i), holder, pay, keep ? bond + reserve : reserve, keep ? 0 : bond);
        if (pay > 0) _token.safeTransfer(holder, pay);
    }

    /// @dev A coherent revealed seat's pay (see `_settleSeat`), taken from the budgets in `m`.
    function _pay(uint256 round, Money memory m) private pure returns (uint96 pay) {
        if (round == 0) {
            pay = _min(m.auditPay, m.escrow);
            m.escrow -= pay;
        } else {
            pay = m.share; // <= what is left of the pot + m.topUp (see `_share`)
            uint96 fromPot = _min(pay, m.pot);
            m.pot -= fromPot;
            uint96 more = pay - fromPot;
            m.topUp -= more;
            m.escrow -= more;
        }
        m.paid += pay;
    }

    function _coherent(Case storage c, IMarketForCourt.Outcome outcome, bytes32 digest) internal view returns (bool) {
        if (outcome == IMarketForCourt.Outcome.ProviderRight) return digest == c.providerDigest;
        if (outcome == IMarketForCourt.Outcome.ProviderWrong) {
            bytes32 top = c.topDigest;
            return top == bytes32(0) ? digest != c.providerDigest : digest == top;
        }
        return true; // Split, Canary (canary seats were settled by the exposure), Unaudited
    }

    /// @dev Burns `lock` (a seat's bond and canary reserve) from `who`'s locked stake and up to
    ///      `extra` more from its free stake, then from its unbonding stake. Returns the total burned.
    function _slash(address who, uint96 lock, uint96 extra) internal returns (uint96 lost) {
        Verifier storage v = _verifiers[who];
        v.locked -= lock;
        uint96 fromFree = _min(v.free, extra);
        v.free -= fromFree;
        _stakeChanged(who, v.cls, lock + fromFree, false);
        Leaving storage l = _leaving[who];
        uint96 fromLeaving = _min(l.amount, extra - fromFree);
        l.amount -= fromLeaving;
        _totalUnbonding -= fromLeaving;
        lost = lock + fromFree + fromLeaving;
        IRewardToken(address(_token)).burn(lost);
    }

    /// @notice See IVerificationCourt.exposeCanary.
    function exposeCanary(uint256 jobId, bytes32 secret, bytes32 salt, bytes calldata authorization)
        external
        onlyDelegated
    {
        Case storage c = _case(jobId);
        if (c.phase == Phase.Concluded) revert CaseClosed(jobId);
        // The requester, who gets no result from a Canary, is the only one who may choose it (a
        // canary key cannot turn a stranger's job into one), and only for a job a CANARY_ROLE key
        // signed for (a requester and a provider colluding cannot turn a lost case into a Canary to
        // keep the collateral). Neither account needs the role, nor to be the other: until this
        // call nothing on chain tells a canary job from any other.
        if (msg.sender != c.requester) revert NotCanary(jobId);
        bytes32 signed = MessageHashUtils.toEthSignedMessageHash(
            keccak256(abi.encode(_CANARY_AUTHORIZATION, block.chainid, address(this), jobId))
        );
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(signed, authorization);
        if (error != ECDSA.RecoverError.NoError || !hasRole(CANARY_ROLE, signer)) revert NotCanary(jobId);
        bytes32 canary = keccak256(abi.encodePacked("depin-canary", secret));
        if (keccak256(abi.encode(c.provider, jobId, canary, salt)) != c.commitment) revert NotCanary(jobId);
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
                // Each caught seat's bond, and sigma * R once per holder in the case: with its first
                // caught seat, the holder's reserve (locked with its first seat here: bond + reserve
                // >= sigma * R) and the rest of sigma * R from free, then unbonding stake.
                address holder = s.holder;
                Hold storage h = _holds[jobId][holder];
                uint96 lock = s.bond;
                uint96 extra;
                if (!h.slashed) {
                    h.slashed = true;
                    lock += h.reserve;
                    extra = sigmaR - h.reserve;
                    h.reserve = 0;
                }
                if (h.seats == 1) delete _holds[jobId][holder];
                else h.seats -= 1;
                uint96 lost = _slash(holder, lock, extra);
                slashed += lost;
                emit SeatSettled(jobId, uint8(r), uint8(i), holder, 0, 0, lock);
                emit VerifierSlashed(holder, jobId, lost);
            }
        }
        emit CanaryExposed(jobId, canary, caught, slashed);
        _conclude(c, jobId, IMarketForCourt.Outcome.Canary, slashed);
    }
}
