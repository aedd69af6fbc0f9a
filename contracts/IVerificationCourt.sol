// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ICourtViews} from "./ICourtViews.sol";
import {IMarketForCourt} from "./IMarketForCourt.sol";

/// @title Verification court: drawn verifiers, sealed contributions, juries, canaries
/// @notice One protocol (VERIFICATION.md §1). A job the market draws for audit becomes a case here.
///         Round 0 is an audit by one drawn verifier; rounds 1, 2, 3 are juries of K = 3, 7, 15
///         seats; round 4 is the arbiter (ARBITER_ROLE) as a timelocked last appeal.
///
///         Verifiers stake tokens here in a platform class (fixed at their first join). Seats are
///         drawn stake-weighted WITH replacement from the provider's class, with the stakes of the
///         block `submitBlock - activationDelayBlocks` (Checkpoints), from the randomness of the
///         round's anchor block: target = keccak256(abi.encode(r, jobId, round, seat, redraw)) %
///         classStakeAt(snapshot); the job's provider and requester are skipped (extra nonce j > 0:
///         keccak256(abi.encode(r, jobId, round, seat, redraw, j))). One seat, one vote, one bond;
///         a verifier may hold several seats.
///
///         Per round: seats are taken (`startAudit` / `takeSeat`, bond locked from the court stake)
///         until the seat deadline; sealed commitments keccak256(abi.encode(verifier, jobId, round,
///         seat, digest, salt)) until the commit deadline; then reveals (and the provider's reveal,
///         checked against its market commitment keccak256(abi.encode(provider, jobId, digest,
///         salt)); a failure's digest is bytes32(uint256(code))) until the reveal deadline. Empty
///         seats and no-shows (bond forfeited to the case's pot) are redrawn up to `maxRedraws`
///         times per round while no seat of the round has revealed; once one has, a missing seat
///         is not redrawn (its holder could copy the public votes, and no commitment is accepted
///         any more): the round is tallied if the missing votes could not change its tally, else
///         it escalates to the next jury without an appeal bond. Round 0 never concludes before
///         the job's challenge deadline (an agreeing or unaudited audit waits for it, Tallied).
///         `advance` (anyone) moves a case on when its deadline passed. Every transition emits one
///         event.
interface IVerificationCourtTypes {
    // ---------------------------------------------------------------- types

    /// @notice Governance parameters (versioned: a case keeps the version it opened with).
    ///         Times in seconds, blocks in blocks, `*Bps` in basis points of the job's reward R.
    struct CourtParams {
        uint32 startWindow; // seconds a drawn verifier has to take its seat, after D blocks
        uint16 rhoPct; // verifiers get rho = rhoPct/100 times the job's maxRuntime (>= 100)
        uint32 setupTime; // T_s: image pull and setup allowance in each commit window
        uint32 inclusionTime; // T_i: transaction inclusion margin (sequencer censorship on L2s)
        uint32 revealWindow; // >= inclusionTime
        uint32 appealWindow; // after each jury tally; >= inclusionTime
        uint32 canaryWindow; // after an agreeing audit, before it pays (and not before the challenge deadline)
        uint32 auditorBondBps; // B_a, locked by the auditor; >= 3 * jurorPayBps (C5)
        uint32 jurorBondBps; // B_j per jury seat; >= jurorPayBps (C7: no-show = minority penalty)
        uint32 jurorPayBps; // w per coherent jury seat; >= 11000 (w >= 1.1 R)
        uint32 challengeBondBps; // b_c of an open challenge; >= 3 * jurorPayBps (C5)
        uint16 canarySlashMul; // sigma: a seat revealing a canary digest loses sigma * R (C6, >= 20)
        uint8 maxRedraws; // redraws per round (empty seats and no-shows), <= 8
        uint32 arbiterDelay; // timelock between an arbiter ruling and its execution
        uint32 arbiterWindow; // seconds after the last appeal within which the arbiter may rule
        uint32 activationDelayBlocks; // stake counts in draws only this many blocks after it was added (>= 1)
        uint32 blockTime; // seconds per block, to turn D blocks into seconds
        uint16 betaBps; // beta: an open challenger's bounty is at most beta * R (<= 1000) (C2 addition)
        uint96 minStake; // minimum court stake at join (bounds the per-class member list) (C2 addition)
    }

    /// @notice Where a case stands.
    enum Phase {
        None,
        Active, // seats taken, committed, revealed (deadlines in the case)
        Tallied, // a tally waits out its appeal window, or round 0 its canary and challenge windows
        Arbiter, // appealed past round 3: the arbiter may rule, timelocked
        Concluded
    }

    /// @notice A seat's state.
    enum SeatState {
        Empty,
        Taken,
        Committed,
        Revealed,
        Settled
    }

    struct CaseView {
        Phase phase;
        uint8 round; // 0 audit, 1..3 juries (K = 3, 7, 15)
        uint8 redraws; // of the current round
        uint8 platformClass;
        IMarketForCourt.Outcome tally; // of the last tallied round
        IMarketForCourt.Outcome outcome; // once concluded
        bool providerRevealed;
        address provider;
        address requester;
        uint96 reward;
        uint96 auditFee;
        bytes32 commitment;
        bytes32 providerDigest;
        bytes32 topDigest; // the most revealed digest other than the provider's, at the last tally
        uint64 snapshotBlock;
        uint64 anchor; // the current round's anchor block
        uint32 seatDeadline;
        uint32 commitDeadline;
        uint32 revealDeadline;
        uint32 windowEnd; // end of the canary/challenge/appeal window (Tallied) or of the arbiter window (Arbiter)
        uint8 taken;
        uint8 committed;
        uint8 revealed;
        address challenger;
        uint96 challengeBond;
        uint16 paramsVersion;
        uint32 canaryEnd; // an agreeing audit (round 0): its tally + canaryWindow (releaseReserve after it)
    }

    struct SeatView {
        address holder;
        SeatState state;
        uint96 bond;
        bytes32 commitment;
        bytes32 digest;
    }

    struct VerifierView {
        bool joined;
        uint8 platformClass;
        uint96 free;
        uint96 locked; // bonds of open seats + a canary reserve per case sat in (sigma * R with the first bond)
        uint96 unbonding;
        uint32 releaseAt;
    }

    // ---------------------------------------------------------------- events

    event CourtParamsSet(uint16 indexed version, CourtParams params);
    event VerifierJoined(address indexed verifier, uint8 indexed platformClass, uint96 amount);
    event StakeAdded(address indexed verifier, uint96 amount, uint96 stake);
    event LeaveRequested(address indexed verifier, uint96 amount, uint96 stake, uint96 unbonding, uint32 releaseAt);
    event LeftWithdrawn(address indexed verifier, uint96 amount);
    /// @notice A verifier left its class's member list (its slot is reused by the next joiner): it
    ///         withdrew its whole stake, or a larger joiner displaced it (VerifierDisplaced). It may
    ///         join again.
    event ClassLeft(address indexed verifier, uint8 indexed platformClass);
    /// @notice `by` joined a full class in place of `verifier`, its smallest member with no locked
    ///         stake; `verifier`'s `stake` went to unbonding (LeaveRequested) and it left (ClassLeft).
    event VerifierDisplaced(address indexed verifier, address indexed by, uint8 indexed platformClass, uint96 stake);
    event PlatformClassSet(address indexed provider, uint8 platformClass);
    event ClassOpenSet(uint8 indexed platformClass, bool open);

    /// @notice A case opened (first `startAudit`, `redraw`, or `challenge` of a job).
    event CaseOpened(
        uint256 indexed jobId, uint8 platformClass, uint64 snapshotBlock, uint8 round, uint16 paramsVersion
    );
    /// @notice Round `round` (K seats) is drawn from `anchor`'s randomness: an escalation, an appeal
    ///         or a redraw (`redraws` > 0; only Empty seats are drawn anew).
    event SeatsDrawn(
        uint256 indexed jobId,
        uint8 round,
        uint8 k,
        uint8 redraws,
        uint64 anchor,
        uint32 seatDeadline,
        uint32 commitDeadline,
        uint32 revealDeadline
    );
    /// @notice `verifier` locked `bond` and `reserve` of its free stake for the seat: with its first
    ///         seat in the case the canary reserve sigma * R - bond (or 0: the lock is max(bond,
    ///         sigma * R), C6), 0 with a further seat there; the reserve comes back to its free stake
    ///         with its last seat in the case (SeatSettled, SeatNoShow), unless a canary catch burns it.
    event SeatTaken(
        uint256 indexed jobId, uint8 round, uint8 seat, address indexed verifier, uint96 bond, uint96 reserve
    );
    event SeatCommitted(uint256 indexed jobId, uint8 round, uint8 seat, bytes32 commitment);
    event SeatRevealed(uint256 indexed jobId, uint8 round, uint8 seat, bytes32 digest);
    event ProviderRevealed(uint256 indexed jobId, bytes32 digest);
    /// @notice A seat taken but not committed/revealed in time: its bond (`bondBurned`) leaves its
    ///         stake and is held for the case's pot (it pays the jury; the rest is burned at the
    ///         conclusion); the case's canary reserve goes back to free stake (`reserveReturned`,
    ///         0 while the verifier holds another seat in the case); the
    ///         seat is redrawn while no seat of the round has revealed.
    event SeatNoShow(
        uint256 indexed jobId,
        uint8 round,
        uint8 seat,
        address indexed verifier,
        uint96 bondBurned,
        uint96 reserveReturned
    );
    /// @notice A round's votes are counted: `forProvider` reproduced the provider's digest,
    ///         `forTop` revealed `topDigest` (the most revealed other digest), out of `revealed`.
    event RoundTallied(
        uint256 indexed jobId,
        uint8 round,
        IMarketForCourt.Outcome tally,
        uint8 revealed,
        uint8 forProvider,
        uint8 forTop,
        bytes32 topDigest,
        uint32 windowEnd
    );
    /// @notice The agreeing auditor's canary reserve went back to its free stake once the canary
    ///         window was over (`releaseReserve`); its bond stays locked until the conclusion.
    event ReserveReleased(uint256 indexed jobId, address indexed verifier, uint96 reserve);
    event Challenged(uint256 indexed jobId, address indexed challenger, uint96 bond);
    event Appealed(uint256 indexed jobId, uint8 round, address indexed appellant, uint96 bond);
    event ArbiterRuled(
        uint256 indexed jobId, address indexed arbiter, IMarketForCourt.Outcome outcome, uint32 executableAt
    );
    event CanaryExposed(uint256 indexed jobId, bytes32 canaryDigest, uint8 seatsCaught, uint96 slashed);
    /// @notice `verifier` lost `amount` of court stake (burned) on job `jobId` (a canary catch).
    event VerifierSlashed(address indexed verifier, uint256 indexed jobId, uint96 amount);
    /// @notice A seat's money at the conclusion: `paid` to its wallet, `bondReturned` unlocked back
    ///         to free stake (the bond and the canary reserve, or the reserve alone when the bond is
    ///         forfeited), `bondForfeited` burned (minority) or used to pay the jury (a wrong
    ///         auditor); a canary catch forfeits the bond and the reserve (see VerifierSlashed).
    event SeatSettled(
        uint256 indexed jobId,
        uint8 round,
        uint8 seat,
        address indexed verifier,
        uint96 paid,
        uint96 bondReturned,
        uint96 bondForfeited
    );
    /// @notice The case ended with `outcome`: `toCourt` received from the market, `paidSeats` to
    ///         coherent seats, `bounty` to the challenger (beyond its bond back), `refunded` to the
    ///         requester (Split) or bonds returned to appellants/challenger, `burned`.
    event CaseConcluded(
        uint256 indexed jobId,
        IMarketForCourt.Outcome outcome,
        uint96 toCourt,
        uint96 paidSeats,
        uint96 bounty,
        uint96 refunded,
        uint96 burned
    );

    // ---------------------------------------------------------------- errors

    error ParamOutOfBounds(string name);
    error ZeroAmount();
    error AlreadyJoined(address verifier);
    error NotJoined(address verifier);
    error StakeBelowMinimum(uint256 amount, uint256 minimum);
    error ClassFull(uint8 platformClass);
    error ClassClosed(uint8 platformClass);
    error InsufficientFreeStake(address verifier, uint256 free, uint256 needed);
    error NothingToWithdraw(address verifier);
    error LeaveNotReady(uint32 releaseAt);
    error PlatformClassAlreadySet(address provider);
    error WrongCourt(uint256 jobId, address court);
    error JobNotSubmitted(uint256 jobId, uint8 status);
    error NotDrawn(uint256 jobId);
    error NoCase(uint256 jobId);
    error CaseClosed(uint256 jobId);
    error WrongPhase(uint256 jobId, Phase phase);
    error BadSeat(uint256 jobId, uint8 seat);
    error NotDrawnForSeat(uint256 jobId, uint8 seat, address drawn);
    error SeatDeadlinePassed(uint256 jobId, uint32 seatDeadline);
    error NotSeatHolder(uint256 jobId, uint8 seat);
    error CommitClosed(uint256 jobId);
    error RevealNotOpen(uint256 jobId);
    error RevealClosed(uint256 jobId);
    error BadReveal(uint256 jobId);
    error AlreadyRevealed(uint256 jobId);
    error NotProvider(uint256 jobId);
    error StakeBelowSigma(address verifier, uint256 stake, uint256 needed);
    error NothingDue(uint256 jobId);
    error ChallengeClosed(uint256 jobId);
    error AlreadyChallenged(uint256 jobId);
    error ProviderCannotChallenge(uint256 jobId);
    error NotAppellant(uint256 jobId, address who);
    error AppealClosed(uint256 jobId);
    error ArbiterNotOpen(uint256 jobId);
    error BadOutcome();
    error NotCanary(uint256 jobId);
    error NotDelegated();
    error NotVerifiable(uint256 jobId);
}

/// @title The court's public API (types, events and errors in IVerificationCourtTypes above)
interface IVerificationCourt is ICourtViews, IVerificationCourtTypes {
    // ---------------------------------------------------------------- verifiers

    /// @notice Stakes `amount` (>= minStake) as a verifier of `platformClass` (fixed until it leaves).
    ///         A class holds at most MAX_CLASS_MEMBERS verifiers; a slot freed by `withdrawLeft` is reused.
    ///         When the class is full, the joiner takes the place of its smallest member with no
    ///         locked stake if `amount` is strictly larger (`VerifierDisplaced`: that member's stake
    ///         goes to unbonding), else `ClassFull`. Joining a full class reads every member.
    function join(uint96 amount, uint8 platformClass) external;
    function addStake(uint96 amount) external;
    /// @notice Moves `amount` of free stake to unbonding for `leaveDelay()`; still slashable.
    function requestLeave(uint96 amount) external;
    /// @notice After `releaseAt`: pays out the unbonded stake. A verifier left with no stake (free and
    ///         locked 0) leaves its class (`ClassLeft`): its slot is freed and it may `join` again.
    function withdrawLeft() external;
    /// @notice A provider's platform class (once; default 0; an open class). It applies to jobs
    ///         submitted in later blocks only, and only while the class stays open (else class 0).
    function setPlatformClass(uint8 platformClass) external;
    /// @notice GOVERNOR_ROLE: opens or closes platform class `platformClass` (not 0, always open).
    ///         Only open classes take verifiers and providers: a provider cannot pick an empty class
    ///         (never audited) or one its own verifiers fill (self-audit); governance opens a class
    ///         once its pool is large enough (F11: pools matched to capabilities, with a minimum size).
    function setClassOpen(uint8 platformClass, bool open) external;

    // ---------------------------------------------------------------- cases

    /// @notice The drawn auditor of job `jobId` (round 0, seat 0) takes the audit: opens the case
    ///         (market.beginVerification) if needed and locks B_a and the case's canary reserve
    ///         (max(B_a, sigma * R) in all: `StakeBelowSigma` if its free stake is short). Before the
    ///         seat deadline (submitTime + requiredChallengeWindow(), or the redraw's).
    function startAudit(uint256 jobId) external;
    /// @notice The verifier drawn for `seat` of the current jury round locks B_j, and with its first
    ///         seat in the case the canary reserve (max(B_j, sigma * R) in all); a further seat in
    ///         the same case locks its bond only (sigma * R once per verifier and case).
    function takeSeat(uint256 jobId, uint8 seat) external;
    function commit(uint256 jobId, uint8 seat, bytes32 commitment) external;
    function reveal(uint256 jobId, uint8 seat, bytes32 digest, bytes32 salt) external;
    function revealProvider(uint256 jobId, bytes32 digest, bytes32 salt) external;
    /// @notice Anyone, once the canary window of an agreeing, unchallenged audit is over (round 0,
    ///         Tallied ProviderRight, after the case's canaryEnd): the auditor's canary reserve goes
    ///         back to its free stake (ReserveReleased) instead of staying locked until the job's
    ///         challenge deadline; its bond stays locked until the conclusion. A later canary
    ///         exposure takes sigma * R from its free, then unbonding stake; a later challenge's jury
    ///         seat of the same verifier locks a reserve again. `NothingDue` otherwise, or once done.
    function releaseReserve(uint256 jobId) external;
    /// @notice Anyone: redraws empty seats after the seat deadline (or opens the case of a drawn job
    ///         nobody started; settles it Unaudited when the pool is empty, or after maxRedraws once
    ///         the job's challenge deadline passed: until then it waits Tallied, tally Unaudited).
    function redraw(uint256 jobId) external;
    /// @notice Anyone: performs whatever is due (redraw, tally, escalation, conclusion).
    function advance(uint256 jobId) external;
    /// @notice Anyone but the provider, in the job's challenge window, while it is Submitted or
    ///         under its drawn audit (or its audit agreed, or went unaudited, and waits for the
    ///         challenge deadline): posts b_c. A drawn audit is not displaced: it runs, and the
    ///         case then goes to a K = 3 jury even if the audit agrees (or nobody takes it); an
    ///         undrawn job goes straight to a K = 3 jury. A verify-none job (no audit escrow)
    ///         reverts `NotVerifiable`.
    function challenge(uint256 jobId) external;
    /// @notice In a jury's appeal window: the provider against ProviderWrong, anyone else against
    ///         ProviderRight or Split; posts nextK * w (15 * w for the arbiter round). The bond
    ///         pays the next jury: at the conclusion every appeal bond joins the pot that pays the
    ///         coherent seats, and a winning appellant is repaid from what is left of it.
    function appeal(uint256 jobId) external;
    /// @notice ARBITER_ROLE, within arbiterWindow of the last appeal: records a ruling that
    ///         `advance` executes arbiterDelay later (dropped if the arbiter lost its role).
    function arbiterRule(uint256 jobId, IMarketForCourt.Outcome outcome) external;
    /// @notice The job's requester proves the job was a canary: `authorization` is a CANARY_ROLE
    ///         key's EIP-191 signature of keccak256(abi.encode(keccak256("depin-canary-authorization"),
    ///         chainid, court, jobId)), and the provider's commitment == keccak256(abi.encode(provider,
    ///         jobId, keccak256(abi.encodePacked("depin-canary", secret)), salt)); else `NotCanary`.
    ///         The requester and the provider need not hold the role nor be one account, so nothing
    ///         on chain tells a canary before it is exposed. Every seat that revealed that digest
    ///         loses its bond, and its holder sigma * R of stake once in the case (burned): its
    ///         locks (the bonds and the case's reserve, bond + reserve >= sigma * R, locked since its
    ///         first seat here), the rest from its free, then unbonding stake; the job settles Canary.
    function exposeCanary(uint256 jobId, bytes32 secret, bytes32 salt, bytes calldata authorization) external;

    // ---------------------------------------------------------------- governance

    function setParams(CourtParams calldata params) external;

    // ---------------------------------------------------------------- views

    function market() external view returns (address);
    /// @notice The delegatecall modules: CourtEngine (advance, redraw, exposeCanary) and its CourtDesk
    ///         (stakes, challenge, appeal, arbiterRule, setParams).
    function modules() external view returns (address engine, address desk);
    function token() external view returns (address);
    function params() external view returns (CourtParams memory);
    function paramsVersion() external view returns (uint16);
    function leaveDelay() external view returns (uint256);
    function getCase(uint256 jobId) external view returns (CaseView memory);
    function getSeat(uint256 jobId, uint8 round, uint8 seat) external view returns (SeatView memory);
    function getVerifier(address verifier) external view returns (VerifierView memory);
    function stakeAt(address verifier, uint256 blockNumber) external view returns (uint256);
    function classStakeAt(uint8 platformClass, uint256 blockNumber) external view returns (uint256);
    /// @notice The class's member list in draw-walk order; address(0) marks a slot freed by a leaver.
    function classMembers(uint8 platformClass) external view returns (address[] memory);
    function classOpen(uint8 platformClass) external view returns (bool);
    function platformClassOf(address provider) external view returns (uint8 platformClass, uint64 setBlock);
    /// @notice Who is drawn for `seat` of `round` now (round 0 also before the case exists);
    ///         address(0) if nobody is eligible. Reverts while the anchor's randomness is not ready.
    function drawnFor(uint256 jobId, uint8 round, uint8 seat) external view returns (address);
    /// @notice token.balanceOf(court) must equal this: stakes (free + locked) + unbonding + the
    ///         challenge and appeal bonds of open cases (escrow is paid out in the settling call).
    function accountedBalance() external view returns (uint256);
}
