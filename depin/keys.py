"""Redis key names: the only module that builds Redis key strings.

Every key of one indexed deployment lives under a prefix ``depin:{chainId}:{market address, lower
case}`` so that several deployments (a devnet and a testnet, say) can share one Redis. The indexer
writes these keys; the CLI, the HTTP API and the executors read them.

Data model (addresses *in key names* are lower-case hex, whatever case a caller passes; all values
are strings: integers in decimal, token amounts in base units, addresses checksummed, hashes 0x-hex,
status, outcome and verify mode by name (:data:`JOB_STATUSES`; the contracts' enum order gives the numbers), flags
``0``/``1``; fields appear once the event that sets them was applied, so read them with ``.get``; the
README's "Redis data model" lists the formats, and tests/unit/test_data_model_doc.py checks it):

``{p}:meta`` (hash)
    chainId, market, staking, deployBlock, confirmations, finalityDepth: what this prefix indexes.
    Progress, written by the indexer: head (last chain head seen), eventsApplied (events currently
    applied: a rollback subtracts its retractions), eventsPerSecond (over the last 10 s), updatedAt
    (unix seconds, float).
``{p}:cursor`` (string)
    JSON ``{"number": N, "hash": "0x..."}``: the last block whose events are fully applied. Every
    indexer transaction compares-and-sets it, so readers can WATCH it for consistent snapshots.
``{p}:blocks`` (hash)
    block number -> ``"<hash>:<parentHash>"`` for recent, not yet final blocks (reorg detection
    that survives restarts). Pruned below ``head - 2 * finalityDepth``.
``{p}:undo:{number}`` (string)
    JSON ``{"h": {key: null | {field: prior value or null}}, "e": [entry lines]}``, for rollback:
    per hash the block changed, null when it did not exist before the block, else the prior values
    of the fields the block changed (null: the field was absent; a job's append-only ``history`` is
    left out, a rollback drops its entries above the fork point); and the block's stream entries as
    tab-separated lines. Only for blocks with events that were not final when applied; pruned with
    ``blocks``.
``{p}:job:{id}`` (hash)
    One job. At post: id, status, requester, specHash, reward, fee (f x R, lowered by an
    availability failure's fee), auditFee (A; 0 for verify-none jobs), verifyMode (``reexec`` or
    ``none``), auditBps (p_job), paramsVersion, fromCredit, claimWindow, claimDeadline (the post's
    block timestamp + claimWindow), maxRuntime,
    challengeWindow, collateralPct, cpuSeconds, collateral (reward x pct / 100), deadline (as
    ``getJob``: 0 while open, then the submit or challenge deadline), specValid (``1``
    when keccak256(spec) == specHash and the spec is a UTF-8 JSON object in its RFC 8785 canonical
    form, else ``0``), specJson (when
    valid: the spec text, whose UTF-8 bytes are exactly the posted bytes) or, when invalid, spec (the
    raw bytes, 0x-hex; specLength instead for bytes over ``depin.spec.MAX_SPEC_BYTES``) and
    specError (why), postedBlock, postedTx. Claim: provider (current; empty
    again when a timeout reopens the job), providers (comma-separated: everyone who ever claimed
    it), submitDeadline. Submission: failure (``0``/``1``), commitment (the provider's salted
    commitment), resultURI (cut past 4,096 bytes, then resultURITruncated ``1``: for display only,
    the chain holds the whole) or failureCode and failureReason; challengeDeadline, anchorBlock (the
    block whose randomness draws the job), submittedBlock. Availability failures: noFaultFees and
    noFaults (summed). Verification (``VerificationStarted``): court, verificationBlock; the court's
    case: casePhase (Active, Tallied, Arbiter, Concluded), caseRound, platformClass, snapshotBlock,
    courtParamsVersion, roundK, redraws, anchor, seatDeadline, commitDeadline, revealDeadline,
    courtDeadline (the next deadline after which ``redraw``/``advance`` is due), seats (JSON
    ``{"round.seat": {verifier, bond, state, commitment, digest, paid, bondReturned, bondForfeited,
    slashed}}``), providerDigest, tallies (JSON list), challenger, challengeBond, appeals (JSON list),
    heldBonds, arbiter, arbiterOutcome, arbiterExecutableAt, canaryDigest, canarySeatsCaught,
    canarySlashed, caseOutcome, courtReceived, courtPaidSeats, courtBounty, courtRefunded,
    courtBurned. Settlement: payout and emission (finalized; emission = the kappa x fee rebate),
    refund (cancelled, expired, timed out, an availability failure after the claim deadline),
    slashed and timeouts (timeouts, summed), outcome (``ProviderRight``, ``ProviderWrong``,
    ``Split``, ``Unaudited``, ``Canary``), providerPayout, requesterRefund, toCourt, burned
    (resolved by the court). Always
    ``history``: a JSON list of every transition, oldest first, as
    ``{"event", "status" (after it), "block", "tx", "logIndex"}``. settledBlock: the block of the
    event that moved it to a settled status (Finalized, Resolved, Expired, Cancelled).
    *Compacted* (the indexer's retention policy, ``IndexerConfig.compact_after``): a settled job
    older than the reorg window plus ``compact_after`` blocks keeps only :data:`SUMMARY_FIELDS`
    (``providers`` only when someone else claimed it before) and ``compacted`` (``1``) and ``compactedAt`` (the cursor block of the compaction); the spec,
    history, seats and the other bulky fields are dropped. Re-indexing from a block before the job's
    post (``python -m indexer --reset``) rebuilds them from the chain.
``{p}:jobs:all``, ``{p}:jobs:status:{status}``, ``{p}:jobs:requester:{address}``,
``{p}:jobs:provider:{address}`` (sorted sets)
    Job ids, scored by job id. The provider index holds every job the provider ever claimed (also
    one it timed out on and that another provider then took).
``{p}:jobs:settled`` (sorted set)
    Settled jobs not yet compacted, scored by settledBlock: what the retention policy compacts
    next, oldest first.
``{p}:jobs:due:{status}`` (sorted sets, status Open, Claimed, Submitted or Disputed)
    The jobs in that status scored by their next deadline: claimDeadline while Open, deadline while
    Claimed or Submitted (submit, challenge), courtDeadline while Disputed (absent until the court
    names one). What executors poke and finalize, earliest first; a Submitted job past its challenge
    deadline finalizes only if it was not drawn (``JobMarket.isDrawn``).
``{p}:provider:{address}`` (hash)
    address, id, staked, locked, unbonding, releaseAt, jobsCompleted, jobsSlashed, endpoint,
    capabilityHash, registeredBlock: as ``ProviderStaking.getProvider`` returns them (an endpoint
    past 4,096 bytes cut, with endpointTruncated ``1``).
``{p}:providers`` (sorted set)
    Provider addresses (checksummed) scored by provider id.
``{p}:account:{address}`` (hash)
    withdrawable: the balance the account can withdraw from the market (``withdrawableOf``).
``{p}:verifier:{address}`` (hash)
    A verifier of the court: address, platformClass, joinedBlock, free (stake not bonded), locked
    (bonds of open seats), unbonding, releaseAt, seats (taken, summed), paid (seat payments),
    bondsForfeited, noShows, slashed (canary catches).
``{p}:totals`` (hash)
    Market totals: jobs (ever posted); per-status counts (fields named by status: ``Open``,
    ``Claimed``, ...); current escrowed (R + fee + audit fee of open, claimed, submitted and
    disputed jobs), withdrawable (sum of account balances), pendingBurn (accrued, not flushed), so
    that the market's token balance is escrowed + withdrawable + pendingBurn; cumulative paid
    (payouts to providers), refunded (to requesters, audit fees included), emitted (the rebates),
    slashed, burned (accrued to the burn), flushed (burned by flushBurn), toCourt (audit fees sent to
    courts), slashedToCourt (collateral slashed to courts), deposited, withdrawn; staking: providers
    (count), staked, locked, unbonding (the staking contract's balance is staked + unbonding); the
    court: verifiers, cases, courtStaked (free), courtLocked (seat bonds and canary reserves),
    courtUnbonding, courtHeldBonds (challenge and appeal bonds, no-shows' bonds held for the case's
    pot), courtPaid, courtBounties, courtRefunded, courtBurned, courtSlashed.
``{p}:params`` (hash)
    Governance parameters as last emitted: the ``MarketParams`` fields but ``paused`` (of the
    current version, ``paramsVersion``), every version's ``feeBps.v{N}`` and ``auditFeeBps.v{N}``
    (a job's fees are its version's), paused (``0``/``1``), minStake, unbondingDelay, and the
    court's ``CourtParams`` as ``court.<field>`` (with ``court.paramsVersion``).
``{p}:events`` (stream)
    Every applied event, in chain order, for consumers reading with consumer groups. Fields: kind
    (``event`` or ``retraction``), event (its name), block, blockHash, tx, logIndex, args (JSON of
    the event's arguments: integers as decimal strings, addresses checksummed; JobPosted carries
    specValid instead of the spec bytes, which live in the job hash). Each applied event is appended
    exactly once (the cursor compare-and-set makes batches atomic and never re-applied); a rollback
    appends a ``retraction`` entry (same fields) for every event it undid, newest first, and the
    canonical chain's events follow as new entries. Consumers therefore see at-least-once delivery
    per (blockHash, logIndex) across reorgs: an event, its retraction, then the event again.
    Bounded: every append trims it to about ``IndexerConfig.stream_max_len`` entries
    (``XADD MAXLEN ~``) and the retention pass drops entries older than ``stream_max_age`` seconds
    (``XTRIM MINID ~``); a consumer further behind than that re-reads the job hashes instead.
"""

from __future__ import annotations

from depin.market import JOB_STATUS_NAMES

JOB_STATUSES = JOB_STATUS_NAMES  # the status names a job hash and the status index use (depin.market)
# The statuses jobs are listed by (``None`` is the status of a job id never posted): what the
# indexer's readers take (indexer.query.parse_status, the API's ?status=) and `depin jobs list` names.
LISTABLE_STATUSES = JOB_STATUSES[1:]

# The fields a compacted settled job keeps (see ``{p}:job:{id}`` above); every other field is dropped,
# and ``providers`` too when it is just ``provider``. No value is a 66-character hash: every value stays
# under Redis' ``hash-max-listpack-value`` (64 bytes), so a summary is one compact listpack.
SUMMARY_FIELDS = (
    "id", "status", "requester", "provider", "providers", "reward", "fee", "auditFee", "verifyMode",
    "payout", "emission", "refund", "slashed", "outcome", "providerPayout", "requesterRefund", "toCourt", "burned",
    "failure", "caseOutcome", "verificationBlock", "postedBlock", "submittedBlock", "settledBlock",
)

# Live statuses with a deadline after which a transition is due (``{p}:jobs:due:{status}``).
DUE_STATUSES = ("Open", "Claimed", "Submitted", "Disputed")


class Keys:
    """Key names under one deployment's prefix."""

    def __init__(self, chain_id: int, market: str, namespace: str = "depin") -> None:
        self.prefix = f"{namespace}:{chain_id}:{market.lower()}"

    def _k(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    # bookkeeping
    @property
    def meta(self) -> str:
        return self._k("meta")

    @property
    def cursor(self) -> str:
        return self._k("cursor")

    @property
    def blocks(self) -> str:
        return self._k("blocks")

    def undo(self, number: int) -> str:
        return self._k("undo", number)

    # jobs
    def job(self, job_id: int) -> str:
        return f"{self.prefix}:job:{job_id}"  # hot path of the indexer: same as _k("job", job_id)

    @property
    def jobs_all(self) -> str:
        return self._k("jobs", "all")

    def jobs_by_status(self, status: str) -> str:
        if status not in JOB_STATUSES:
            raise ValueError(f"unknown job status {status!r}; one of {', '.join(JOB_STATUSES[1:])}")
        return self._k("jobs", "status", status)

    def jobs_by_requester(self, address: str) -> str:
        return f"{self.prefix}:jobs:requester:{address.lower()}"

    def jobs_by_provider(self, address: str) -> str:
        return f"{self.prefix}:jobs:provider:{address.lower()}"

    @property
    def jobs_settled(self) -> str:
        """Settled jobs not yet compacted, scored by the block that settled them."""
        return self._k("jobs", "settled")

    def due(self, status: str) -> str:
        """Live jobs in `status` (Open, Claimed, Submitted, Disputed) scored by their next deadline."""
        if status not in DUE_STATUSES:
            raise ValueError(f"no due set for status {status!r}; one of {', '.join(DUE_STATUSES)}")
        return self._k("jobs", "due", status)

    # providers and accounts
    def provider(self, address: str) -> str:
        return f"{self.prefix}:provider:{address.lower()}"

    @property
    def providers(self) -> str:
        return self._k("providers")

    def account(self, address: str) -> str:
        return f"{self.prefix}:account:{address.lower()}"

    # the court's verifiers
    def verifier(self, address: str) -> str:
        return f"{self.prefix}:verifier:{address.lower()}"

    # market-wide
    @property
    def totals(self) -> str:
        return self._k("totals")

    @property
    def params(self) -> str:
        return self._k("params")

    @property
    def events(self) -> str:
        return self._k("events")

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this prefix."""
        return self.prefix + ":*"


class ExecKeys:
    """Key names of one executor's state (see the module doc)."""

    def __init__(self, chain_id: int, market: str, role: str, address: str) -> None:
        self.prefix = f"depin-exec:{chain_id}:{market.lower()}:{role}:{address.lower()}"
        self.chain_id = chain_id
        self.role = role
        self.address = address

    @property
    def signer(self) -> str:
        """The signing lock of this executor's key on its chain (:mod:`executor.signer_lock`): one
        key for every role and market, since a key's nonces are the chain's, not the market's."""
        return f"depin-exec:{self.chain_id}:signer:{self.address.lower()}"

    def job(self, job_id: int) -> str:
        return f"{self.prefix}:job:{job_id}"

    @property
    def job_pattern(self) -> str:
        """A SCAN pattern matching every job record of the executor (:mod:`executor.retention`)."""
        return f"{self.prefix}:job:*"

    def lease(self, job_id: int) -> str:
        return f"{self.prefix}:lease:{job_id}"

    def seat_lease(self, job_id: int, round_: int, seat: int) -> str:
        """The lease of one seat's re-run (the verifier's; the redelivery cap reads it too)."""
        return f"{self.lease(job_id)}:{int(round_)}:{int(seat)}"

    def deliveries(self, task: str, job_id: int) -> str:
        return f"{self.prefix}:deliveries:{task}:{job_id}"

    def seat_deliveries(self, task: str, job_id: int, round_: int, seat: int) -> str:
        """The redelivery count of one seat's task (executor.jobtask.delivery_scope)."""
        return f"{self.deliveries(task, job_id)}:{int(round_)}:{int(seat)}"

    @property
    def active(self) -> str:
        return f"{self.prefix}:active"

    @property
    def deferred(self) -> str:
        return f"{self.prefix}:deferred"

    @property
    def submitted(self) -> str:
        return f"{self.prefix}:submitted"

    @property
    def retained(self) -> str:
        """When each settled job's journal entry and result archive were first seen settled (job
        id -> unix time; :mod:`executor.retention` removes them a retention period later)."""
        return f"{self.prefix}:retained"

    @property
    def prune_cursor(self) -> str:
        """Where the last retention pass stopped reading job statuses (``<time> <job id>`` of the
        last one it read, a string): the next pass reads on from there, so that jobs that never
        settle cannot take every pass's reads (:mod:`executor.retention`)."""
        return f"{self.prefix}:prune-cursor"

    @property
    def metrics(self) -> str:
        """The executor's Prometheus counters and histogram buckets (:mod:`executor.metrics`)."""
        return f"{self.prefix}:metrics"
    def seat(self, job_id: int, round_: int, seat: int) -> str:
        """The verifier's record of one court seat it holds (:mod:`executor.verifier`)."""
        return f"{self.prefix}:seat:{job_id}:{round_}:{seat}"

    def round_delivery(self, job_id: int, round_: int) -> str:
        """What the verifier's one delivery check of a jury round found (a string, set once, expires
        after a week): the verdict every seat of ours in that round commits by
        (:func:`executor.verifier.round_delivery_check`)."""
        return f"{self.prefix}:delivery:{job_id}:{round_}"

    @property
    def seat_pattern(self) -> str:
        """A SCAN pattern matching every seat record of the verifier."""
        return f"{self.prefix}:seat:*"

    @property
    def seats(self) -> str:
        """The verifier's seats in hand (members ``job:round:seat``, scored by when taken)."""
        return f"{self.prefix}:seats"

    @property
    def undrawn(self) -> str:
        """Jobs the verifier found not drawn for audit (a final answer: never asked again)."""
        return f"{self.prefix}:undrawn"

    @property
    def anchors(self) -> str:
        """Anchor block hashes this provider records (:func:`executor.beat.record_anchors`, a hash):
        block number -> ``recorded`` (done: by anyone, no longer needed, or too late) or
        ``pending:<tx hashes>`` (our record transaction, written before each version is broadcast)."""
        return f"{self.prefix}:anchors"

    @property
    def orphans(self) -> str:
        """Containers of this executor the reaper found orphaned (:func:`executor.beat.reap`, a
        hash): container id -> when first found so (unix time); removed a lease TTL later if still so."""
        return f"{self.prefix}:orphans"

    def canary(self, job_id: int) -> str:
        """The canary operator's record of one canary job (:mod:`executor.canary`)."""
        return f"{self.prefix}:canary:{job_id}"

    @property
    def canary_pattern(self) -> str:
        """A SCAN pattern matching every canary record."""
        return f"{self.prefix}:canary:*"

    @property
    def canaries(self) -> str:
        """The canary operator's jobs in flight (scored by when posted)."""
        return f"{self.prefix}:canaries"

    @property
    def canary_posted(self) -> str:
        """When the canary operator last posted a job (unix time, a string)."""
        return f"{self.prefix}:canary-posted"

    def health(self, component: str) -> str:
        """A component's heartbeat hash (:mod:`executor.health`)."""
        return f"{self.prefix}:health:{component}"

    @property
    def group(self) -> str:
        """The consumer group of this executor on the indexer's event stream."""
        return f"executor:{self.role}:{self.address.lower()}"


# The broker key prefix of an executor app that was never configured (imported, not started): its
# tasks can be declared but never reach a real executor's queues.
UNCONFIGURED_EXEC_PREFIX = "depin-exec:unconfigured"


def broker_prefix(exec_prefix: str) -> str:
    """The Celery broker's key prefix (kombu's ``global_keyprefix``) below an executor's prefix."""
    return exec_prefix + ":broker:"
