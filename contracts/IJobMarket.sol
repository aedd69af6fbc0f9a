// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Job market: escrowed compute jobs, optimistic settlement, randomly drawn verification
/// @notice Requesters post a job (the hash of its canonical JSON spec plus economic terms) and
///         escrow R + f*R + A: the reward R, the protocol fee f*R and the audit fee A (0 for
///         `verifyMode` 1 = none). A registered provider claims it, locking collateral k*R in the
///         staking contract, runs it, and submits a salted commitment to its result digest (or a
///         failure code). The randomness of block `anchorBlock = submitBlock + drawDelay` decides
///         whether the job is drawn for audit, with probability p_job (`auditBps`, fixed at post).
///         An undrawn job finalizes after its challenge window: the provider is credited
///         R + kappa*f*R (the rebate, the protocol's only emission: no token is minted),
///         (1 - kappa)*f*R accrues to `pendingBurn`, A is credited back to the requester.
///         A drawn job (or one challenged in the court) is verified by the job's court, which
///         moves it to Disputed (`beginVerification`) and ends it with an `Outcome` (`settle`).
///
///         Every job snapshots the parameter version current at its post: its court, fees, p_job
///         and bounds never change while it is in flight.
///
///         State machine (one event per transition):
///         - None      -> Open        `postJob` / `postJobWithPermit`           JobPosted
///         - Open      -> Cancelled   `cancelJob` (requester)                   JobCancelled
///         - Open      -> Expired     `expireJob` (anyone, after claim deadline) JobExpired
///         - Open      -> Claimed     `claimJob` (registered provider)          JobClaimed
///         - Claimed   -> Submitted   `submitResult` / `submitFailure`          ResultSubmitted / FailureSubmitted
///         - Claimed   -> Open|Expired  `submitFailure` with an availability code (no fault, 2 % each
///                                    side): reopened, or refunded after the claim deadline  NoFaultFailure
///         - Claimed   -> Open|TimedOut `timeoutJob` (anyone, after submit deadline) JobTimedOut
///         - Submitted -> Disputed    `beginVerification` (the job's court)     VerificationStarted
///         - Submitted -> Finalized   `finalize` / `finalizeMany` (anyone, after the window, not drawn) JobFinalized
///         - Submitted|Disputed -> Resolved  `settle` (the job's court)         JobSettled
///
///         Payments are pulled: settlement credits balances here and `withdraw` transfers them,
///         except the tokens a settlement sends to the court, which are transferred at once.
interface IJobMarket {
    // ---------------------------------------------------------------- types

    enum JobStatus {
        None,
        Open,
        Claimed,
        Submitted,
        Disputed, // under verification by the job's court (drawn audit, challenge or jury)
        Finalized,
        Cancelled,
        Expired,
        TimedOut,
        Resolved, // settled by the court
        // Settled long ago: its ring entry holds a later job (only `getJob` and errors say it; the
        // job's events keep its history)
        Pruned
    }

    /// @notice How a verification ended; `settle` moves the escrow by a fixed table (see `settle`).
    enum Outcome {
        None,
        ProviderRight, // the submission stands (audit agreed, or the jury/arbiter confirmed it)
        ProviderWrong, // the submission was wrong: provider's collateral slashed to the court
        Split, // jurors of the provider's platform class disagreed among themselves: nondeterministic
        Unaudited, // drawn, but no verifier took the audit after every redraw (or the pool was empty)
        Canary // the job was a canary (its provider is the canary operator): nobody is paid for it
    }

    /// @notice Failure codes a provider may submit instead of a result. `ImageUnavailable` and
    ///         `InputHashMismatch` are availability failures: no fault, but not free (see `submitFailure`).
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
    ///         current parameters (`params()`).
    struct JobTerms {
        uint96 reward; // R: paid to the provider at finalization; at most 2^88 - 1
        uint32 claimWindow; // seconds from posting until the claim deadline
        uint24 maxRuntime; // seconds a provider has from claim to submission
        uint24 challengeWindow; // seconds after submission before the job can finalize (draw + audit start, challenges)
        uint16 collateralPct; // provider collateral k*R as a percentage of the reward
        uint32 cpuSeconds; // declared compute (cpus x max runtime), 1..maxRuntime * MAX_CPUS_PER_JOB; emitted only
        uint8 verifyMode; // 0 = re-execution audits (default), 1 = none (never drawn, no audit fee)
    }

    /// @notice One job of a `postJobs` batch: `postJob`'s arguments.
    struct JobPost {
        bytes32 specHash;
        bytes spec;
        JobTerms terms;
    }

    /// @notice One result of a `submitResults` batch: `submitResult`'s arguments.
    struct JobResult {
        uint256 jobId;
        bytes32 commitment;
        string resultURI;
    }

    /// @notice One version of the market parameters. Governance adds a version with `setParams`;
    ///         a job uses the version current at its post for its whole life.
    struct MarketParams {
        uint24 minClaimWindow;
        uint24 maxClaimWindow;
        uint24 minRuntime;
        uint24 maxRuntime; // <= 24 h (C10)
        uint24 minChallengeWindow; // >= court.requiredChallengeWindow() (C8)
        uint24 maxChallengeWindow;
        uint16 minCollateralPct; // >= 400 (C4: k*R pays a 3-juror jury)
        uint16 maxCollateralPct; // <= 1000
        uint16 alphaBps; // alpha, the audit-rate multiplier: >= 14000 (C2)
        uint16 feeBps; // f, the protocol fee: 50..1000 (C11)
        uint16 kappaBps; // kappa, the provider's rebate share of the fee: < 10000 (C11)
        uint16 auditFeeBps; // the audit escrow E / R: >= court.minAuditFeeBps() (A >= 1.1 R + the jury deposit 3w), <= 50000
        uint16 betaBps; // beta, the open challenger's bounty cap / R: <= 1000 (C3)
        uint16 noFaultFeeBps; // each side's fee on an availability failure: 50..1000
        uint80 maxReward; // the largest R a post may offer: 1..court.maxVerifiableReward() (C6: every verifier can sit)
        uint16 drawDelay; // D, blocks between a submission and its anchor block (fixed at deployment)
        address court; // the verification court of jobs posted under this version (a contract)
        bool paused; // the guardian's flag (ignored by setParams)
    }

    /// @notice Everything known about a job, as returned by `getJob`.
    /// @dev The spec hash is not stored (it costs every job a storage write): it is JobPosted's
    ///      indexed `specHash` topic.
    struct JobView {
        bytes32 commitment; // the provider's commitment once submitted (zero before)
        address requester;
        uint96 reward; // R
        uint96 fee; // f*R still escrowed (reduced by availability no-fault fees)
        uint96 auditFee; // the audit escrow E = A + 3w (0 for verify-none jobs)
        JobStatus status;
        uint8 failureCode; // 0 for a result
        uint8 verifyMode;
        address provider;
        uint32 claimDeadline; // meaningful while Open or Claimed (zero once submitted)
        uint32 deadline; // submit deadline (Claimed), challenge deadline (Submitted and later)
        uint64 anchorBlock; // submitBlock + drawDelay (zero before submission)
        uint24 maxRuntime;
        uint24 challengeWindow;
        uint16 collateralPct;
        uint16 auditBps; // p_job in basis points
        uint32 paramsVersion;
        uint96 collateral; // derived: reward * collateralPct / 100
    }

    /// @notice What the court needs to know about a job (one call).
    struct VerificationInfo {
        JobStatus status;
        address requester;
        address provider;
        uint96 reward; // R
        uint96 collateral; // k * R, locked in staking
        uint96 auditFee; // the audit escrow E = A + 3w, escrowed at post (0 for verify-none jobs)
        bytes32 commitment; // keccak256(abi.encode(provider, jobId, digest, salt)) as submitted
        uint8 failureCode; // 0 for a result
        uint24 maxRuntime;
        uint32 submitTime; // when the commitment was included
        uint64 anchorBlock; // submitBlock + D: the block whose randomness draws this job
        uint16 auditBps; // p_job in basis points, snapshotted at post (0 for verify-none jobs)
        address court; // the court snapshotted for this job at post
        uint32 challengeDeadline; // submitTime + the job's challengeWindow (0 before submission)
    }

    // ---------------------------------------------------------------- events

    /// @notice A job was posted with `terms`: R + f*R + A escrowed (f and A from parameter version
    ///         `paramsVersion`: `paramsAt(paramsVersion).feeBps / auditFeeBps`; A = 0 for verifyMode
    ///         1), from the requester's withdrawable balance (`fromCredit` = all of it) or from its
    ///         wallet (`fromCredit` 0). The claim deadline is the block's timestamp +
    ///         `terms.claimWindow`. `spec` is the canonical JSON spec; its keccak256 is
    ///         `specHash`. `auditBps` is p_job = min(10000, alpha*g/(g + k - beta)) in basis
    ///         points, g = 1 + kappa*f, k = collateralPct/100 (0 for verify-none jobs).
    event JobPosted(
        uint256 indexed jobId,
        address indexed requester,
        bytes32 indexed specHash,
        JobTerms terms,
        uint96 fromCredit,
        uint16 auditBps,
        uint32 paramsVersion,
        bytes spec
    );
    /// @notice `provider` claimed the job, locking `collateral`; it must submit by `submitDeadline`.
    event JobClaimed(uint256 indexed jobId, address indexed provider, uint96 collateral, uint32 submitDeadline);
    /// @notice `provider` committed to its result (`commitment`; content at `resultURI`). The job
    ///         finalizes after `challengeDeadline` unless block `anchorBlock`'s randomness draws it.
    event ResultSubmitted(
        uint256 indexed jobId,
        address indexed provider,
        bytes32 commitment,
        string resultURI,
        uint32 challengeDeadline,
        uint64 anchorBlock
    );
    /// @notice `provider` reported failure `code` with `commitment` =
    ///         keccak256(abi.encode(provider, jobId, bytes32(uint256(code)), salt)). For an
    ///         availability code `challengeDeadline` and `anchorBlock` are 0 (settled at once, see
    ///         `NoFaultFailure`); other codes are drawn and finalized like results.
    event FailureSubmitted(
        uint256 indexed jobId,
        address indexed provider,
        uint8 code,
        bytes32 commitment,
        uint32 challengeDeadline,
        uint64 anchorBlock
    );
    /// @notice An availability failure settled at once: `providerFee` was slashed from the
    ///         provider's collateral and `requesterFee` taken from the job's escrowed fee (or its
    ///         escrow), both burned. The job reopened (`refund` 0) or, its claim deadline past, was
    ///         cancelled and the requester credited `refund`.
    event NoFaultFailure(
        uint256 indexed jobId,
        address indexed provider,
        uint96 providerFee,
        uint96 requesterFee,
        bool reopened,
        uint96 refund
    );
    /// @notice The job settled without verification, its collateral unlocked. For a result,
    ///         `provider` was credited `payout` = R + `emission` (the rebate kappa*fee), the rest of
    ///         the fee accrued to `pendingBurn` and the audit fee A was credited back to the
    ///         requester. For a failure, the requester was credited `payout` = R + fee, plus A
    ///         (`emission` 0). Fee and A are the job's (`JobPosted`, less any `NoFaultFailure` fee).
    event JobFinalized(uint256 indexed jobId, address indexed provider, bool failure, uint96 payout, uint96 emission);
    /// @notice The job's court started verifying it (Submitted -> Disputed).
    event VerificationStarted(uint256 indexed jobId, address indexed court);
    /// @notice The court ended the job with `outcome`: `providerPayout` credited to the provider,
    ///         `requesterRefund` to the requester, `toCourt` sent to the court (A from escrow, plus
    ///         on ProviderWrong the collateral slashed from staking), `burned` accrued to `pendingBurn`.
    event JobSettled(
        uint256 indexed jobId,
        Outcome outcome,
        uint96 providerPayout,
        uint96 requesterRefund,
        uint96 toCourt,
        uint96 burned
    );
    /// @notice The requester cancelled the open job and was credited `refund`.
    event JobCancelled(uint256 indexed jobId, address indexed requester, uint96 refund);
    /// @notice Nobody claimed the job before its claim deadline; the requester was credited `refund`.
    event JobExpired(uint256 indexed jobId, address indexed requester, uint96 refund);
    /// @notice `provider` missed the submit deadline: `slashed` collateral accrued to `pendingBurn`.
    ///         The job reopened (`reopened`, refund 0) or the requester was credited `refund`.
    event JobTimedOut(uint256 indexed jobId, address indexed provider, uint96 slashed, bool reopened, uint96 refund);
    /// @notice `amount` of `pendingBurn` was burned.
    event BurnFlushed(uint256 amount);
    /// @notice `account` deposited `amount` into its withdrawable balance (a prepaid account for posting).
    event Deposited(address indexed account, uint256 amount);
    /// @notice `account` withdrew `amount` of its credited balance.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice Governance added parameter version `version` (used by jobs posted from now on).
    event MarketParamsUpdated(uint32 indexed version, MarketParams params);
    /// @notice The guardian paused (`true`) or unpaused the market.
    event PauseSet(bool paused);

    // ---------------------------------------------------------------- errors

    /// @notice Deposits must be positive.
    error ZeroDeposit();
    /// @notice A batch call (`postJobs`, `claimJobs`, `submitResults`) needs at least one job.
    error EmptyBatch();
    /// @notice The spec is empty.
    error EmptySpec();
    /// @notice keccak256 of the spec bytes is `actual`, not the declared `expected`.
    error SpecHashMismatch(bytes32 expected, bytes32 actual);
    /// @notice Term `name` is `value`, outside [`min`, `max`] allowed by the parameters.
    error TermOutOfBounds(bytes32 name, uint256 value, uint256 min, uint256 max);
    /// @notice No job has id `jobId`.
    error UnknownJob(uint256 jobId);
    /// @notice The deployment's last job id is taken (jobSlots * 2^23 - 1, at most 2^32 - 1).
    error JobLimitReached(uint256 maxJobId);
    /// @notice Job `jobId` is `actual`; the call needs it `expected`.
    error WrongStatus(uint256 jobId, JobStatus actual, JobStatus expected);
    /// @notice Only `requester` may do this to job `jobId`; `caller` is not it.
    error NotRequester(uint256 jobId, address caller, address requester);
    /// @notice Only `provider`, assigned to job `jobId`, may do this; `caller` is not it.
    error NotAssignedProvider(uint256 jobId, address caller, address provider);
    /// @notice Job `jobId`'s deadline `deadline` has passed (it is `nowTime`).
    error TooLate(uint256 jobId, uint256 deadline, uint256 nowTime);
    /// @notice Job `jobId` cannot move before `notBefore` (it is `nowTime`).
    error TooEarly(uint256 jobId, uint256 notBefore, uint256 nowTime);
    /// @notice Commitments must be non-zero.
    error EmptyCommitment();
    /// @notice `code` is not a failure code (1 to 7).
    error InvalidFailureCode(uint8 code);
    /// @notice `mode` is not a verify mode (0 or 1).
    error InvalidVerifyMode(uint8 mode);
    /// @notice Job `jobId` was drawn for audit: only its court can settle it.
    error JobDrawn(uint256 jobId);
    /// @notice Only job `jobId`'s court `court` may do this; `caller` is not it.
    error NotCourt(uint256 jobId, address caller, address court);
    /// @notice `settle` needs an outcome other than None.
    error InvalidOutcome();
    /// @notice A verify-none job cannot be verified (`beginVerification`).
    error NotVerifiable(uint256 jobId);
    /// @notice `account` has no credited balance.
    error NothingToWithdraw(address account);
    /// @notice The market is paused.
    error MarketPaused();
    /// @notice No parameters were set yet (`setParams` with a court first).
    error NotConfigured();
    /// @notice Governance tried to set `name` to `value` outside [`min`, `max`].
    error ParameterOutOfBounds(bytes32 name, uint256 value, uint256 min, uint256 max);
    /// @notice C2: alpha (`alphaBps`) is below the hard floor 1.4 (`floor`).
    error AlphaBelowFloor(uint256 alphaBps, uint256 floor);
    /// @notice C11: kappa (`kappaBps`) must be below 1 (10000).
    error KappaNotBelowOne(uint256 kappaBps);
    /// @notice C12: the audit escrow (`auditFeeBps` of R) is below `floor` = court.minAuditFeeBps():
    ///         1.1 R of audit pay + the jury deposit 3 * w.
    error AuditFeeBelowFloor(uint256 auditFeeBps, uint256 floor);
    /// @notice C8: minChallengeWindow `minChallengeWindow` is below the court's `required`.
    error ChallengeWindowBelowCourt(uint256 minChallengeWindow, uint256 required);
    /// @notice C10: maxRuntime `maxRuntime` exceeds the auditable maximum `limit` (24 h).
    error RuntimeAboveAuditable(uint256 maxRuntime, uint256 limit);
    /// @notice C4: minCollateralPct `minCollateralPct` is below `floor` (400: k*R must pay a jury).
    error CollateralBelowJuryFloor(uint256 minCollateralPct, uint256 floor);
    /// @notice C9: staking's unbonding delay `unbondingDelay` is below `required` = maxClaimWindow +
    ///         maxRuntime + maxChallengeWindow + court.maxHorizon(maxRuntime).
    error UnbondingBelowHorizon(uint256 unbondingDelay, uint256 required);
    /// @notice The court `court` is not a contract.
    error CourtNotContract(address court);
    /// @notice drawDelay is fixed at deployment to `drawDelay`; `value` differs.
    error DrawDelayFixed(uint256 value, uint256 drawDelay);

    // ---------------------------------------------------------------- requester

    /// @notice Posts a job and escrows R + f*R + A (A = 0 for verify-none jobs): from the caller's
    ///         withdrawable balance (refunds, earnings, deposits) when it covers all of it, else
    ///         all from its wallet (`transferFrom`; approve first).
    /// @param specHash keccak256 of `spec`.
    /// @param spec The canonical JSON job spec; emitted in `JobPosted`, never stored.
    /// @return jobId The new job's id (sequential from 1).
    function postJob(bytes32 specHash, bytes calldata spec, JobTerms calldata terms) external returns (uint256 jobId);

    /// @notice `postJob` for each of `posts`, in order, in one transaction (ids are sequential). The
    ///         escrow of the whole batch is paid at once: from the caller's withdrawable balance
    ///         when it covers all of it, else all from its wallet in one `transferFrom`. Each job
    ///         emits its own `JobPosted` (its `fromCredit` is its own escrow or 0). All or nothing.
    /// @return firstJobId The first new job's id; the others follow it.
    function postJobs(JobPost[] calldata posts) external returns (uint256 firstJobId);

    /// @notice `postJob` in one transaction: applies the caller's ERC-2612 permit for the escrow
    ///         (R + f*R + A under the current parameters) first. A permit that was already used (front-run) is tolerated
    ///         if the allowance suffices.
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

    /// @notice Cancels an open job of the caller's and credits its escrow back.
    function cancelJob(uint256 jobId) external;

    // ---------------------------------------------------------------- provider

    /// @notice Claims an open job before its claim deadline, locking collateral in staking.
    function claimJob(uint256 jobId) external;

    /// @notice `claimJob` for each of `jobIds`, with one collateral lock in staking for their sum.
    ///         All or nothing: one job that cannot be claimed (or a repeated id) reverts the batch.
    function claimJobs(uint256[] calldata jobIds) external;

    /// @notice Commits to the result of a claimed job (assigned provider, before the submit
    ///         deadline): `commitment` = keccak256(abi.encode(provider, jobId, digest, salt)),
    ///         non-zero. It replaces the spec hash in storage (the spec hash stays in `JobPosted`).
    ///         The job's anchor block is block.number + drawDelay.
    function submitResult(uint256 jobId, bytes32 commitment, string calldata resultURI) external;

    /// @notice `submitResult` for each of `results`, in order. All or nothing.
    function submitResults(JobResult[] calldata results) external;

    /// @notice Reports failure `code` instead of a result; `commitment` =
    ///         keccak256(abi.encode(provider, jobId, bytes32(uint256(code)), salt)).
    ///         Availability codes (ImageUnavailable, InputHashMismatch) are no fault but not free:
    ///         at once, noFaultFeeBps * R is slashed from the provider's collateral (the rest is
    ///         unlocked) and as much is taken from the job's escrowed fee, both burned; the job
    ///         reopens if its claim deadline has not passed and its remaining fee covers the
    ///         requester's share, else it expires (Expired) and the requester is refunded the rest of its
    ///         escrow. Other codes are committed, drawn and finalized like results (an unaudited
    ///         failure refunds the requester R + f*R + A).
    function submitFailure(uint256 jobId, uint8 code, bytes32 commitment) external;

    // ---------------------------------------------------------------- anyone

    /// @notice Settles a submitted job whose challenge window has closed and that was not drawn
    ///         (`isDrawn`; reverts `JobDrawn`, or the randomness source's `RandomnessNotReady`).
    function finalize(uint256 jobId) external;

    /// @notice `finalize` for each job that is ready and not drawn; others are skipped.
    /// @return finalized How many jobs were finalized.
    function finalizeMany(uint256[] calldata jobIds) external returns (uint256 finalized);

    /// @notice Refunds an open job whose claim deadline has passed.
    function expireJob(uint256 jobId) external;

    /// @notice Slashes the provider of a claimed job that missed its submit deadline (the
    ///         collateral accrues to `pendingBurn`); reopens the job if its claim deadline has not
    ///         passed, otherwise refunds the requester's escrow.
    function timeoutJob(uint256 jobId) external;

    /// @notice Burns `pendingBurn` but one base unit, kept so that the next accrual writes a
    ///         non-zero slot (anyone).
    function flushBurn() external;

    /// @notice Transfers the caller's whole credited balance to it.
    function withdraw() external;

    // ---------------------------------------------------------------- court (the job's snapshotted court only)

    /// @notice Whether job `jobId` is drawn for audit: keccak256(abi.encode(r, jobId)) % 10_000 <
    ///         auditBps with r = randomness(anchorBlock). Expired randomness counts as drawn (a
    ///         provider cannot escape a draw by letting it lapse). Verify-none jobs (auditBps 0)
    ///         are never drawn and read no randomness. Reverts `RandomnessNotReady` before the
    ///         anchor block's randomness exists, `WrongStatus` before submission.
    function isDrawn(uint256 jobId) external view returns (bool);

    /// @notice What the court needs to know about job `jobId` (reverts `UnknownJob`).
    function verificationInfo(uint256 jobId) external view returns (VerificationInfo memory);

    /// @notice Court only (the job's snapshotted court): Submitted -> Disputed ("under
    ///         verification"). From then on `finalize` reverts; only `settle` ends the job.
    ///         Emits `VerificationStarted(jobId, court)`. Reverts `NotVerifiable` for a verify-none
    ///         job (never audited nor challenged: it escrowed no audit fee).
    function beginVerification(uint256 jobId) external;

    /// @notice Court only: ends a Disputed (or a drawn, still Submitted) job with `outcome` and
    ///         moves the escrow (fee = f*R as escrowed, rebate = kappa*fee):
    ///   ProviderRight (result):  provider += R + rebate; pendingBurn += fee - rebate; A -> court;
    ///                            collateral unlocked (a completed job)
    ///   ProviderRight (failure): requester += R + fee; A -> court; collateral unlocked
    ///   ProviderWrong:           requester += R + fee; A -> court; collateral slashed in full
    ///                            -> court (the court pays the auditor A, then the jurors)
    ///   Split:                   as ProviderRight; A -> court (pays the jury)
    ///   Unaudited:               as an unchallenged finalize (A credited back to the requester)
    ///   Canary:                  requester += R + fee; A -> court; collateral unlocked
    ///   Tokens "-> court" are transferred to the court in the same call (never credited).
    ///   -> Resolved. Emits `JobSettled`.
    /// @return toCourt Tokens transferred to the court by this call.
    function settle(uint256 jobId, Outcome outcome) external returns (uint96 toCourt);

    // ---------------------------------------------------------------- governance

    /// @notice Adds a parameter version (GOVERNOR_ROLE) used by jobs posted from now on. Checks
    ///         hard bounds and the verification constraints (C2, C4, C8, C9, C10, C11, C12), each
    ///         with its own error. `paused` is ignored (the guardian owns it); `drawDelay` must
    ///         equal the deployment's.
    function setParams(MarketParams calldata params) external;

    /// @notice Pauses or unpauses (GUARDIAN_ROLE). While paused, no new work enters: posting,
    ///         depositing and claiming revert. Jobs in flight settle normally and cancel, expire
    ///         and withdraw keep working, so that a pause traps no funds and closes no window unguarded.
    function setPaused(bool paused) external;

    // ---------------------------------------------------------------- views

    /// @notice The job `jobId` (reverts with `UnknownJob` for an id never posted). A job settled
    ///         at least `jobSlots` posts ago may be Pruned: only the status is then set (its
    ///         events hold its history).
    function getJob(uint256 jobId) external view returns (JobView memory);
    /// @notice Number of jobs ever posted; ids run from 1 to this.
    function jobCount() external view returns (uint256);
    /// @notice Entries of the job ring, fixed at deployment: a job reuses the storage of the job
    ///         `jobSlots` ids before it once that one has settled (`getJob` then says Pruned for it).
    function jobSlots() external view returns (uint256);
    /// @notice The balance `account` can withdraw.
    function withdrawableOf(address account) external view returns (uint256);
    /// @notice Tokens owed to the burn, burned by `flushBurn`.
    function pendingBurn() external view returns (uint256);
    /// @notice The current parameters (all zero but `drawDelay` and `paused` before the first `setParams`).
    function params() external view returns (MarketParams memory);
    /// @notice Parameter version `version` (1 to `paramsVersion()`).
    function paramsAt(uint32 version) external view returns (MarketParams memory);
    /// @notice The current parameter version (0 before the first `setParams`).
    function paramsVersion() external view returns (uint32);
    /// @notice The unbonding delay staking needs under the current parameters (C9):
    ///         maxClaimWindow + maxRuntime + maxChallengeWindow + court.maxHorizon(maxRuntime).
    function minUnbondingDelay() external view returns (uint256);
    /// @notice The reward token.
    function token() external view returns (address);
    /// @notice The provider staking contract.
    function staking() external view returns (address);
    /// @notice The randomness source of the draws (fixed at deployment).
    function randomness() external view returns (address);

    /// @notice D: blocks between a submission and its anchor block (fixed at deployment; the court
    ///         anchors its jury rounds D blocks ahead too).
    function drawDelay() external view returns (uint64);

    /// @notice The largest reward a post may offer now (the current version's `maxReward`; 0
    ///         before the first `setParams`). The court keeps its `minStake >= sigma * maxReward()`.
    function maxReward() external view returns (uint256);
}
