"""Redis key names: the only module that builds Redis key strings.

Every key of one indexed deployment lives under a prefix ``depin:{chainId}:{market address, lower
case}`` so that several deployments (a devnet and a testnet, say) can share one Redis. The indexer
writes these keys; the CLI, the HTTP API and the executors read them.

Data model (addresses *in key names* are lower-case hex, whatever case a caller passes; all values
are strings: integers in decimal, token amounts in base units, addresses checksummed, hashes 0x-hex,
status and ruling by name (:data:`JOB_STATUSES`; the contracts' enum order gives the numbers), flags
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
    that survives restarts). Pruned below ``head - finalityDepth``.
``{p}:undo:{number}`` (string)
    JSON ``{"h": {key: null | {field: prior value or null}}, "e": [entry lines]}``, for rollback:
    per hash the block changed, null when it did not exist before the block, else the prior values
    of the fields the block changed (null: the field was absent; a job's append-only ``history`` is
    left out, a rollback drops its entries above the fork point); and the block's stream entries as
    tab-separated lines. Only for blocks with events that were not final when applied; pruned with
    ``blocks``.
``{p}:job:{id}`` (hash)
    One job. At post: id, status, requester, specHash, reward, fromCredit, claimDeadline,
    maxRuntime, challengeWindow, collateralPct, cpuSeconds, collateral (reward x pct / 100), deadline
    (as ``getJob``: 0 while open, then the submit, challenge or resolve deadline), specValid (``1``
    when keccak256(spec) == specHash and the spec is a UTF-8 JSON object in its RFC 8785 canonical
    form, else ``0``), specJson (when
    valid: the spec text, whose UTF-8 bytes are exactly the posted bytes) or, when invalid, spec (the
    raw bytes, 0x-hex) and specError (why), postedBlock, postedTx. Claim: provider (current; empty
    again when a timeout reopens the job), providers (comma-separated: everyone who ever claimed
    it), submitDeadline. Submission: failure (``0``/``1``), resultHash and resultURI, or failureCode
    and failureReason and evidenceHash; challengeDeadline. Challenge: challenger, bond, resolver,
    resolveDeadline.
    Settlement: payout and emission (finalized), refund (cancelled, expired, timed out), slashed and
    timeouts (timeouts, summed), ruling (``None``/``ProviderWins``/``ChallengerWins``), winner,
    forfeited, winnerPayout, burned, requesterRefund, providerPayout (resolved). Always
    ``history``: a JSON list of every transition, oldest first, as
    ``{"event", "status" (after it), "block", "tx", "logIndex"}``.
``{p}:jobs:all``, ``{p}:jobs:status:{status}``, ``{p}:jobs:requester:{address}``,
``{p}:jobs:provider:{address}`` (sorted sets)
    Job ids, scored by job id. The provider index holds every job the provider ever claimed (also
    one it timed out on and that another provider then took).
``{p}:jobs:due:{status}`` (sorted sets, status Open, Claimed, Submitted or Disputed)
    The jobs in that status scored by their next deadline: claimDeadline while Open, else deadline
    (submit, challenge or resolve). What executors poke and finalize, earliest first.
``{p}:provider:{address}`` (hash)
    address, id, staked, locked, unbonding, releaseAt, jobsCompleted, jobsSlashed, endpoint,
    capabilityHash, registeredBlock: as ``ProviderStaking.getProvider`` returns them.
``{p}:providers`` (sorted set)
    Provider addresses (checksummed) scored by provider id.
``{p}:account:{address}`` (hash)
    withdrawable: the balance the account can withdraw from the market (``withdrawableOf``).
``{p}:totals`` (hash)
    Market totals: jobs (ever posted); per-status counts (fields named by status: ``Open``,
    ``Claimed``, ...); current escrowed (rewards of open, claimed, submitted and disputed jobs),
    bonds (challenge bonds held), withdrawable (sum of account balances), so that the market's token
    balance is escrowed + bonds + withdrawable; cumulative paid (rewards to providers), refunded (to
    requesters), emitted, slashed, burned, deposited, withdrawn; staking: providers (count), staked,
    locked, unbonding (the staking contract's balance is staked + unbonding).
``{p}:params`` (hash)
    Governance parameters as last emitted: the ``MarketParams`` fields but ``paused``, the
    ``EmissionParams`` fields, paused (``0``/``1``), resolver, minStake, unbondingDelay.
``{p}:events`` (stream)
    Every applied event, in chain order, for consumers reading with consumer groups. Fields: kind
    (``event`` or ``retraction``), event (its name), block, blockHash, tx, logIndex, args (JSON of
    the event's arguments: integers as decimal strings, addresses checksummed; JobPosted carries
    specValid instead of the spec bytes, which live in the job hash). Each applied event is appended
    exactly once (the cursor compare-and-set makes batches atomic and never re-applied); a rollback
    appends a ``retraction`` entry (same fields) for every event it undid, newest first, and the
    canonical chain's events follow as new entries. Consumers therefore see at-least-once delivery
    per (blockHash, logIndex) across reorgs: an event, its retraction, then the event again.
"""

from __future__ import annotations

from depin.market import JOB_STATUS_NAMES

JOB_STATUSES = JOB_STATUS_NAMES  # the status names a job hash and the status index use (depin.market)

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
        self.role = role
        self.address = address

    def job(self, job_id: int) -> str:
        return f"{self.prefix}:job:{job_id}"

    def lease(self, job_id: int) -> str:
        return f"{self.prefix}:lease:{job_id}"

    def deliveries(self, task: str, job_id: int) -> str:
        return f"{self.prefix}:deliveries:{task}:{job_id}"

    @property
    def active(self) -> str:
        return f"{self.prefix}:active"

    @property
    def deferred(self) -> str:
        return f"{self.prefix}:deferred"

    @property
    def submitted(self) -> str:
        return f"{self.prefix}:submitted"

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
