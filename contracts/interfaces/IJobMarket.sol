// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Job market: escrowed compute jobs with optimistic, challengeable settlement
/// @notice Requesters post a job (the hash of its canonical JSON spec plus economic terms) and
///         escrow the reward. A registered provider claims it, locking collateral in the staking
///         contract, runs it, and submits a result hash and URI (or a failure code). A challenge
///         window follows: if nobody challenges, anyone finalizes and the provider is credited the
///         reward; a challenge posts a bond equal to the collateral and hands the job to the
///         dispute resolver, whose ruling pays the winner and slashes the loser.
///
///         State machine (one event per transition):
///         - None      -> Open        `postJob` / `postJobWithPermit`          JobPosted
///         - Open      -> Cancelled   `cancelJob` (requester)                  JobCancelled
///         - Open      -> Expired     `expireJob` (anyone, after claim deadline) JobExpired
///         - Open      -> Claimed     `claimJob` (registered provider)         JobClaimed
///         - Claimed   -> Submitted   `submitResult` / `submitFailure`          ResultSubmitted / FailureSubmitted
///         - Claimed   -> Open|TimedOut `timeoutJob` (anyone, after submit deadline) JobTimedOut
///         - Submitted -> Disputed    `challenge` (anyone but the provider, in the window) JobChallenged
///         - Submitted -> Finalized   `finalize` / `finalizeMany` (anyone, after the window) JobFinalized
///         - Disputed  -> Resolved    `resolveDispute` (resolver) or `settleUnresolved`
///                                    (anyone, after the resolve deadline)   DisputeResolved
///
///         Payments are pulled: settlement credits balances here and `withdraw` transfers them.
///         Slashed collateral never goes to the job's requester.
interface IJobMarket {
    // ---------------------------------------------------------------- types

    enum JobStatus {
        None,
        Open,
        Claimed,
        Submitted,
        Disputed,
        Finalized,
        Cancelled,
        Expired,
        TimedOut,
        Resolved
    }

    /// @notice Outcomes of a dispute.
    enum Ruling {
        None, // no ruling before the resolve deadline: everyone made whole, nobody slashed
        ProviderWins, // the submission stands; the challenger's bond is forfeited
        ChallengerWins // the submission was wrong; the provider's collateral is slashed
    }

    /// @notice Failure codes a provider may submit instead of a result.
    enum FailureCode {
        None,
        ImageUnavailable,
        InputHashMismatch,
        OutOfMemory,
        TimeLimit,
        OutputTooLarge,
        BadSpec,
        OutputInvalid // the output cannot be represented as a result archive (too deep, too long, too many entries)
    }

    /// @notice The requester's economic terms for a job. Every field is checked against the
    ///         market's bounds (`params()`).
    struct JobTerms {
        uint96 reward; // escrowed at post, paid to the provider at finalization; at most 2^88 - 1
        uint32 claimWindow; // seconds from posting until the claim deadline
        uint24 maxRuntime; // seconds a provider has from claim to submission
        uint24 challengeWindow; // seconds after submission during which anyone may challenge
        uint16 collateralPct; // provider collateral (and challenge bond) as a percentage of the reward
        uint32 cpuSeconds; // declared compute (cpus x max runtime), 1..maxRuntime * MAX_CPUS_PER_JOB; basis of emissions
    }

    /// @notice Deployment parameters (stored in one word with the job counter). Governance changes
    ///         them within the hard-coded bounds; the guardian sets `paused`.
    struct MarketParams {
        uint24 minClaimWindow;
        uint24 maxClaimWindow;
        uint24 minRuntime;
        uint24 maxRuntime;
        uint24 minChallengeWindow;
        uint24 maxChallengeWindow;
        uint16 minCollateralPct;
        uint16 maxCollateralPct;
        uint16 burnBps; // share of a loser's bond or collateral that is burned (the rest goes to the winner)
        uint24 resolveWindow; // seconds a resolver has to rule before anyone may settle without a ruling
        bool paused;
    }

    /// @notice Protocol emissions: at finalization the provider is minted `ratePerCpuSecond` per
    ///         declared CPU-second, at most `epochBudget` per `epochLength` seconds in total.
    ///         A zero rate or budget turns emissions off. Only arm's-length work earns them: the
    ///         provider must not be the job's requester, and the reward must pay at least
    ///         `minRewardPerCpuSecond` for every declared CPU-second, so that declaring compute
    ///         costs what the market charges for it (against wash jobs that farm emissions). A job
    ///         earns emissions only if they were on when it was posted (the finalization of a job
    ///         posted with emissions off reads no emission state).
    struct EmissionParams {
        uint64 ratePerCpuSecond;
        uint96 epochBudget;
        uint32 epochLength;
        uint64 minRewardPerCpuSecond;
    }

    /// @notice Everything known about a job, as returned by `getJob`.
    struct JobView {
        bytes32 specHash;
        address requester;
        uint96 reward;
        JobStatus status;
        bool failure; // the submission is a failure code rather than a result
        address provider;
        uint32 claimDeadline;
        uint32 deadline; // submit deadline (Claimed), challenge deadline (Submitted), resolve deadline (Disputed)
        uint24 maxRuntime;
        uint24 challengeWindow;
        uint16 collateralPct;
        uint32 cpuSeconds;
        uint96 collateral; // derived: reward * collateralPct / 100; also the challenge bond
        address challenger;
    }

    // ---------------------------------------------------------------- events

    /// @notice A job was posted and `reward` escrowed, `fromCredit` of it taken from the
    ///         requester's withdrawable balance and the rest from its wallet. `spec` is the
    ///         canonical JSON spec; its keccak256 is `specHash`.
    event JobPosted(
        uint256 indexed jobId,
        address indexed requester,
        bytes32 indexed specHash,
        uint96 reward,
        uint96 fromCredit,
        uint32 claimDeadline,
        uint24 maxRuntime,
        uint24 challengeWindow,
        uint16 collateralPct,
        uint32 cpuSeconds,
        bytes spec
    );
    /// @notice `provider` claimed the job, locking `collateral`; it must submit by `submitDeadline`.
    event JobClaimed(uint256 indexed jobId, address indexed provider, uint96 collateral, uint32 submitDeadline);
    /// @notice `provider` submitted `resultHash` (content at `resultURI`); challengeable until `challengeDeadline`.
    event ResultSubmitted(
        uint256 indexed jobId, address indexed provider, bytes32 resultHash, string resultURI, uint32 challengeDeadline
    );
    /// @notice `provider` reported failure `code` with `evidenceHash`; challengeable until `challengeDeadline`.
    event FailureSubmitted(
        uint256 indexed jobId, address indexed provider, uint8 code, bytes32 evidenceHash, uint32 challengeDeadline
    );
    /// @notice `challenger` disputed the submission with `bond`; `resolver` must rule by `resolveDeadline`.
    event JobChallenged(
        uint256 indexed jobId, address indexed challenger, uint96 bond, address resolver, uint32 resolveDeadline
    );
    /// @notice The job settled unchallenged. For a result, `provider` was credited `payout` (the
    ///         reward) and minted `emission`; for a failure, the requester was credited `payout`.
    ///         Either way the provider's collateral was unlocked.
    event JobFinalized(uint256 indexed jobId, address indexed provider, bool failure, uint96 payout, uint96 emission);
    /// @notice The requester cancelled the open job and was credited `refund`.
    event JobCancelled(uint256 indexed jobId, address indexed requester, uint96 refund);
    /// @notice Nobody claimed the job before its claim deadline; the requester was credited `refund`.
    event JobExpired(uint256 indexed jobId, address indexed requester, uint96 refund);
    /// @notice `provider` missed the submit deadline: `slashed` collateral was burned. The job
    ///         reopened (`reopened`, refund 0) or the requester was credited `refund`.
    event JobTimedOut(uint256 indexed jobId, address indexed provider, uint96 slashed, bool reopened, uint96 refund);
    /// @notice The dispute ended with `ruling`. `winner` (zero for `Ruling.None`) was credited
    ///         `winnerPayout` out of the loser's `forfeited` bond or collateral, of which `burned`
    ///         was burned; `requesterRefund` went back to the requester; `providerPayout` and
    ///         `emission` went to the provider (ruling for the provider on a result).
    event DisputeResolved(
        uint256 indexed jobId,
        Ruling ruling,
        address winner,
        uint96 forfeited,
        uint96 winnerPayout,
        uint96 burned,
        uint96 requesterRefund,
        uint96 providerPayout,
        uint96 emission
    );
    /// @notice `account` deposited `amount` into its withdrawable balance (a prepaid account for posting).
    event Deposited(address indexed account, uint256 amount);
    /// @notice `account` withdrew `amount` of its credited balance.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice Governance set new market parameters.
    event MarketParamsUpdated(MarketParams params);
    /// @notice Governance set new emission parameters.
    event EmissionParamsUpdated(EmissionParams params);
    /// @notice Governance set the dispute resolver.
    event ResolverUpdated(address resolver);
    /// @notice The guardian paused (`true`) or unpaused the market.
    event PauseSet(bool paused);

    // ---------------------------------------------------------------- errors

    /// @notice Rewards must be positive.
    error ZeroReward();
    /// @notice Deposits must be positive.
    error ZeroDeposit();
    /// @notice The spec is empty.
    error EmptySpec();
    /// @notice keccak256 of the spec bytes is `actual`, not the declared `expected`.
    error SpecHashMismatch(bytes32 expected, bytes32 actual);
    /// @notice Term `name` is `value`, outside [`min`, `max`] allowed by the parameters.
    error TermOutOfBounds(bytes32 name, uint256 value, uint256 min, uint256 max);
    /// @notice No job has id `jobId`.
    error UnknownJob(uint256 jobId);
    /// @notice Job `jobId` is `actual`; the call needs it `expected`.
    error WrongStatus(uint256 jobId, JobStatus actual, JobStatus expected);
    /// @notice Only `requester` may do this to job `jobId`; `caller` is not it.
    error NotRequester(uint256 jobId, address caller, address requester);
    /// @notice Only `provider`, assigned to job `jobId`, may do this; `caller` is not it.
    error NotAssignedProvider(uint256 jobId, address caller, address provider);
    /// @notice The provider may not challenge its own submission on job `jobId`.
    error SelfChallenge(uint256 jobId, address provider);
    /// @notice Job `jobId`'s deadline `deadline` has passed (it is `nowTime`).
    error TooLate(uint256 jobId, uint256 deadline, uint256 nowTime);
    /// @notice Job `jobId` cannot move before `notBefore` (it is `nowTime`).
    error TooEarly(uint256 jobId, uint256 notBefore, uint256 nowTime);
    /// @notice Result hashes must be non-zero.
    error EmptyResultHash();
    /// @notice `code` is not a failure code (1 to 7).
    error InvalidFailureCode(uint8 code);
    /// @notice Only the dispute resolver `resolver` may rule; `caller` is not it.
    error NotResolver(address caller, address resolver);
    /// @notice A resolver must rule `ProviderWins` or `ChallengerWins`.
    error InvalidRuling();
    /// @notice `account` has no credited balance.
    error NothingToWithdraw(address account);
    /// @notice The market is paused.
    error MarketPaused();
    /// @notice Governance tried to set `name` to `value` outside [`min`, `max`].
    error ParameterOutOfBounds(bytes32 name, uint256 value, uint256 min, uint256 max);

    // ---------------------------------------------------------------- requester

    /// @notice Posts a job and escrows `terms.reward`: first from the caller's withdrawable balance
    ///         (refunds, earnings, deposits), the rest from its wallet (`transferFrom`; approve first).
    /// @param specHash keccak256 of `spec`.
    /// @param spec The canonical JSON job spec; emitted in `JobPosted`, never stored.
    /// @return jobId The new job's id (sequential from 1).
    function postJob(bytes32 specHash, bytes calldata spec, JobTerms calldata terms) external returns (uint256 jobId);

    /// @notice `postJob` in one transaction: applies the caller's ERC-2612 permit for the reward
    ///         first. A permit that was already used (front-run) is tolerated if the allowance suffices.
    function postJobWithPermit(
        bytes32 specHash,
        bytes calldata spec,
        JobTerms calldata terms,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 jobId);

    /// @notice Adds `amount` from the caller's wallet to its withdrawable balance, so that later
    ///         posts draw from it without a token transfer each (iExec-style escrow account).
    function deposit(uint256 amount) external;

    /// @notice Cancels an open job of the caller's and credits the reward back.
    function cancelJob(uint256 jobId) external;

    // ---------------------------------------------------------------- provider

    /// @notice Claims an open job before its claim deadline, locking collateral in staking.
    function claimJob(uint256 jobId) external;

    /// @notice Submits the result of a claimed job (assigned provider, before the submit deadline).
    function submitResult(uint256 jobId, bytes32 resultHash, string calldata resultURI) external;

    /// @notice Reports a provable failure instead of a result; challengeable like a result.
    function submitFailure(uint256 jobId, uint8 code, bytes32 evidenceHash) external;

    // ---------------------------------------------------------------- anyone

    /// @notice Disputes a submission while its challenge window is open, posting a bond equal to
    ///         the job's collateral (`transferFrom`; approve first).
    function challenge(uint256 jobId) external;

    /// @notice Settles a submitted job whose challenge window has closed.
    function finalize(uint256 jobId) external;

    /// @notice `finalize` for each job that is ready; others are skipped.
    /// @return finalized How many jobs were finalized.
    function finalizeMany(uint256[] calldata jobIds) external returns (uint256 finalized);

    /// @notice Refunds an open job whose claim deadline has passed.
    function expireJob(uint256 jobId) external;

    /// @notice Slashes the provider of a claimed job that missed its submit deadline; reopens the
    ///         job if its claim deadline has not passed, otherwise refunds the requester.
    function timeoutJob(uint256 jobId) external;

    /// @notice Settles a dispute the resolver did not rule on by the resolve deadline: the
    ///         challenger's bond and the requester's reward are credited back, the collateral unlocked.
    function settleUnresolved(uint256 jobId) external;

    /// @notice Transfers the caller's whole credited balance to it.
    function withdraw() external;

    // ---------------------------------------------------------------- resolver

    /// @notice Rules on a disputed job. Resolver only.
    function resolveDispute(uint256 jobId, Ruling ruling) external;

    // ---------------------------------------------------------------- governance

    /// @notice Sets the market parameters (GOVERNOR_ROLE), each within hard-coded bounds.
    ///         `paused` is ignored here; the guardian owns it.
    function setParams(MarketParams calldata params) external;

    /// @notice Sets the emission parameters (GOVERNOR_ROLE), each within hard-coded bounds.
    function setEmissionParams(EmissionParams calldata params) external;

    /// @notice Sets the dispute resolver (GOVERNOR_ROLE).
    function setResolver(address resolver) external;

    /// @notice Pauses or unpauses (GUARDIAN_ROLE). While paused, no new work enters: posting,
    ///         depositing and claiming revert. Jobs in flight settle normally (submit, challenge,
    ///         finalize, timeout, disputes) and cancel, expire and withdraw keep working, so that
    ///         a pause traps no funds and closes no window unguarded.
    function setPaused(bool paused) external;

    // ---------------------------------------------------------------- views

    /// @notice The job `jobId` (reverts with `UnknownJob` for an id never posted).
    function getJob(uint256 jobId) external view returns (JobView memory);
    /// @notice Number of jobs ever posted; ids run from 1 to this.
    function jobCount() external view returns (uint256);
    /// @notice The balance `account` can withdraw.
    function withdrawableOf(address account) external view returns (uint256);
    /// @notice Current market parameters.
    function params() external view returns (MarketParams memory);
    /// @notice Current emission parameters.
    function emissionParams() external view returns (EmissionParams memory);
    /// @notice The epoch of the last emission and how much was minted in it.
    function emissionState() external view returns (uint32 epoch, uint96 minted);
    /// @notice The reward token.
    function token() external view returns (address);
    /// @notice The provider staking contract.
    function staking() external view returns (address);
    /// @notice The dispute resolver.
    function resolver() external view returns (address);
}
