"""The read side of the index: typed, consistent queries over the Redis data model.

The indexer (``indexer.follower``) writes the keys documented in :mod:`depin.keys`; this module only
reads them, through :class:`depin.keys.Keys`, and turns the string hashes into pydantic models. The
CLI (``depin jobs …``, ``depin indexer status``) and the HTTP API (:mod:`indexer.api`) are thin
layers over :class:`IndexerReader`.

Consistency: a read that spans several keys (an index page and its job hashes, the provider list)
is taken under ``WATCH {p}:cursor``: the provider list's hashes are read in one ``MULTI``/``EXEC``;
a page's index entries and hashes are read a few at a time (so a page reads and holds about its own
bytes, not `limit` hashes), then an empty ``MULTI``/``EXEC`` proves the cursor did not move meanwhile.
The indexer advances the cursor in the same transaction as the writes of a batch (and a rollback
moves it too), so a page is never a mix of two indexer states: it holds no job that a rollback
removed and misses no job of the batch it shows.

Amounts (rewards, stakes, totals) are Python ``int`` in base units; in JSON they are decimal
strings, because they exceed 2^53 and JavaScript would round JSON numbers.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import redis
from eth_utils import is_address, is_checksum_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel
from redis.backoff import NoBackoff
from redis.retry import Retry

from depin.deployment import DeploymentFileError, load_deployment_file, shown_path
from depin.errors import IndexerError
from depin.keys import DUE_STATUSES, JOB_STATUSES, LISTABLE_STATUSES, Keys
from depin.spec import MAX_SPEC_DEPTH, nested_deeper

ZERO_ADDRESS = "0x" + "0" * 40
MAX_LIMIT = 1000
# Bytes of records (job or provider hash fields and values) one HTTP API page carries at most: a
# page of /jobs or /providers ends early, with a `nextCursor`, once its records reach it (a page
# always has its first record). 1,000 jobs with big specs were a 17 MB answer.
PAGE_BYTES = 4 * 2**20
# The largest page offset: far beyond any index's size, and offset + limit stays within the signed
# 64-bit range Redis takes for ZRANGE indexes (a larger offset was a Redis error, an HTTP 500).
MAX_OFFSET = 2**53 - 1
MAX_UINT256 = 2**256 - 1
# Due-set entries read per round trip while a provider filter drops entries (:meth:`IndexerReader.due_jobs`).
_DUE_PAGE = 500
# Watched snapshot attempts before a read settles for a best-effort (unwatched) read.
_SNAPSHOT_ATTEMPTS = 10
# Index entries one page of /jobs may scan with two or more filters (status, requester, provider):
# it walks the smallest of their indexes and checks each entry against the others, and ends with a
# `nextCursor` once it has scanned this many, however few jobs matched. `total` is counted only
# when the smallest index holds at most this many entries (else null).
SCAN_ENTRIES = 10_000
# Index entries read (and checked against the other filters' indexes) per round trip of such a scan.
_SCAN_CHUNK = 500
# Record hashes read per round trip while a page fills: a few first, then about as many as the rest
# of the byte budget holds at the sizes seen so far, at most _HASH_CHUNK_MAX: the hashes held in
# memory stay within about the page's bytes, not `limit` hashes of any size.
_HASH_CHUNK_FIRST = 8
_HASH_CHUNK_MAX = 256

_T = TypeVar("_T")

Amount = Annotated[int, PlainSerializer(str, return_type=str, when_used="json")]
"""Base units. An ``int`` in Python, a decimal string in JSON (exact beyond 2^53)."""


class QueryError(IndexerError, ValueError):
    """A query's input is invalid (unknown status, malformed address, negative id, bad page)."""


# ---------------------------------------------------------------------------------------- models


class _Model(BaseModel):
    """camelCase in JSON (as the Redis fields are named), snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class JobRecord(_Model):
    """One job as indexed (``{p}:job:{id}``)."""

    id: int
    status: str = Field(description="One of " + ", ".join(JOB_STATUSES))
    requester: str | None = None
    provider: str | None = Field(None, description="Checksummed; null while open (also after a timeout reopens it)")
    reward: Amount | None = None
    collateral: Amount | None = None
    spec_hash: str | None = None
    spec_valid: bool | None = Field(
        None, description="The spec bytes hash to specHash and parse; executors never run an invalid spec"
    )
    spec: dict[str, Any] | None = Field(None, description="The decoded spec (specJson); null when invalid (or see `specNote`)")
    spec_note: str | None = Field(
        None, description="Why `spec` is null although specJson is stored (a spec nested too deeply to serve); null otherwise"
    )
    providers: list[str] = Field(default_factory=list, description="Everyone who ever claimed the job")
    history: list[dict[str, Any]] = Field(
        default_factory=list, description="Every transition, oldest first, with its block, tx and log index"
    )
    compacted: bool = Field(
        False,
        description="The indexer's retention policy compacted this settled job to a summary: spec, history, seats "
        "and the other bulky fields were dropped (rebuild: see `compactedNote`)",
    )
    compacted_note: str | None = Field(None, description="How to rebuild a compacted job's full record; null if not compacted")
    extra: dict[str, str] = Field(
        default_factory=dict,
        description="Every other field of the job hash, verbatim (see depin/keys.py): terms, deadlines, "
        "fees, verify mode and audit rate, commitment and anchor block or failure code, the court's case "
        "(phase, round, seats, tallies, challenger, outcome), payouts, the raw spec (0x-hex), specError, blocks",
    )


_NEXT_CURSOR = (
    "Pass as `cursor` to get the next page (the id of this page's last record); null on the last page. A page "
    "can hold fewer than `limit` records when they reach the byte budget: follow `nextCursor`, not `limit`"
)


class JobPage(_Model):
    """One page of a job listing."""

    total: int | None = Field(
        description="Jobs matching the filters, on every page; null with two or more filters whose smallest "
        "index holds more entries than one page may scan (counting them would scan it whole)"
    )
    limit: int
    offset: int
    jobs: list[JobRecord]
    next_cursor: str | None = Field(
        None,
        description=_NEXT_CURSOR + ". With two or more filters a page also ends once it has scanned "
        f"{SCAN_ENTRIES:,} index entries, possibly with no job: `nextCursor` is then the id of the last entry it "
        "scanned",
    )


class ProviderRecord(_Model):
    """One registered provider (``{p}:provider:{address}``)."""

    address: str
    id: int | None = None
    staked: Amount = 0
    locked: Amount = 0
    unbonding: Amount = 0
    release_at: int | None = Field(None, description="Unix time the unbonding stake can be withdrawn")
    jobs_completed: int = 0
    jobs_slashed: int = 0
    endpoint: str | None = None
    capability_hash: str | None = None
    extra: dict[str, str] = Field(default_factory=dict, description="Any other field, verbatim")


class ProviderPage(_Model):
    """One page of the provider listing (by provider id)."""

    total: int = Field(description="Registered providers, on every page")
    limit: int
    providers: list[ProviderRecord]
    next_cursor: str | None = Field(None, description=_NEXT_CURSOR)


class MarketTotals(_Model):
    """Market-wide totals (``{p}:totals``). The market's token balance is escrowed + withdrawable +
    pendingBurn; the staking contract's is staked + unbonding. Court totals (courtStaked,
    courtLocked, courtUnbonding, courtHeldBonds, courtPaid, courtBurned, ...) are in `extra`."""

    jobs: int = Field(0, description="Jobs ever posted")
    by_status: dict[str, int] = Field(default_factory=dict, description="Jobs now in each status")
    escrowed: Amount = Field(0, description="R + fee + audit fee of open, claimed, submitted and disputed jobs")
    withdrawable: Amount = Field(0, description="Sum of account balances in the market")
    pending_burn: Amount = Field(0, description="Accrued to the burn, not flushed yet")
    paid: Amount = Field(0, description="Cumulative payouts to providers (reward + rebate)")
    refunded: Amount = Field(0, description="Cumulative refunds to requesters (audit fees included)")
    emitted: Amount = Field(0, description="Cumulative rebates (kappa x fee) inside providers' payouts: the only emission")
    slashed: Amount = 0
    burned: Amount = Field(0, description="Cumulative amounts accrued to the burn (fees, slashes)")
    flushed: Amount = Field(0, description="Cumulative amounts actually burned by flushBurn")
    to_court: Amount = Field(0, description="Cumulative audit fees sent to courts at settlement")
    deposited: Amount = 0
    withdrawn: Amount = 0
    providers: int = Field(0, description="Registered providers")
    staked: Amount = 0
    locked: Amount = 0
    unbonding: Amount = 0
    extra: dict[str, str] = Field(default_factory=dict, description="Any other field, verbatim")


class IndexerStatus(_Model):
    """Where the indexer stands (``{p}:meta`` and ``{p}:cursor``) against the chain head."""

    prefix: str
    indexed: bool = Field(description="False when no indexer has written this prefix yet")
    chain_id: int | None = None
    market: str | None = None
    staking: str | None = None
    court: str | None = Field(
        None, description="The VerificationCourt whose events the index follows (its deployment file's); null: none"
    )
    deploy_block: int | None = None
    confirmations: int | None = None
    finality_depth: int | None = None
    head: int | None = Field(None, description="Chain head: from the node when it answered, else the indexer's")
    head_source: str | None = Field(None, description='"rpc", "indexer", or null when unknown')
    cursor: int | None = Field(None, description="Last block whose events are fully applied")
    cursor_hash: str | None = None
    lag: int | None = Field(None, description="head - cursor, in blocks")
    events_applied: int | None = None
    events_per_second: float | None = None
    updated_at: float | None = Field(None, description="Unix time of the indexer's last write")
    seconds_since_update: float | None = None


# ---------------------------------------------------------------------------------------- input


def parse_status(status: str) -> str:
    """The canonical status name for `status`, case- and separator-insensitive ("timed-out" ->
    "TimedOut"). Raises QueryError for anything else."""
    wanted = status.strip().replace("_", "").replace("-", "").lower()
    for name in LISTABLE_STATUSES:
        if name.lower() == wanted:
            return name
    raise QueryError(f"unknown job status {status!r}; use one of: {', '.join(s.lower() for s in LISTABLE_STATUSES)}")


def parse_address(address: str) -> str:
    """`address` checksummed. Raises QueryError for a malformed address (or a wrong checksum)."""
    text = address.strip() if isinstance(address, str) else ""
    digits = text[2:]
    mixed_case = digits != digits.lower() and digits != digits.upper()
    if not is_address(text) or (mixed_case and not is_checksum_address(text)):
        raise QueryError(f"malformed address {address!r}: expected 0x and 40 hex digits, checksummed or one case")
    return to_checksum_address(text)


def parse_job_id(job_id: int | str) -> int:
    """`job_id` as an int. Raises QueryError unless it is a whole number in [0, 2^256)."""
    try:
        value = int(job_id)
    except (TypeError, ValueError):
        raise QueryError(f"malformed job id {job_id!r}: expected a whole number") from None
    if isinstance(job_id, float) or not 0 <= value <= MAX_UINT256:
        raise QueryError(f"malformed job id {job_id!r}: expected a whole number from 0 to 2^256-1")
    return value


# ---------------------------------------------------------------------------------------- reader


class IndexerReader:
    """Typed queries over one deployment's keys. Thread-safe (redis-py clients are)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    @classmethod
    def for_deployment(
        cls, redis_url: str, deployment_file: Path | str, namespace: str = "depin"
    ) -> IndexerReader:
        """A reader for the deployment recorded in `deployment_file` (``deployments/<chainId>.json``).

        Connecting is lazy: an unreachable Redis raises ``redis.ConnectionError`` at the first query.
        """
        try:
            deployment = load_deployment_file(
                deployment_file,
                hint="pass --deployment FILE or set DEPIN_DEPLOYMENT (deploy with `ape run deploy` to create one)",
            )
        except DeploymentFileError as exc:
            if not os.path.lexists(deployment_file):  # as before: callers fall back on a missing file
                raise FileNotFoundError(str(exc)) from None
            raise QueryError(str(exc)) from None
        market = deployment.addresses.get("JobMarket")
        if not market:
            raise QueryError(f"{shown_path(deployment_file)} has no JobMarket address; redeploy or fix the file")
        client = redis.Redis.from_url(
            redis_url,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=10,
            # A CLI call against a Redis that is down should fail in a moment, not after backoff.
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, Keys(deployment.chain_id, market, namespace))

    # jobs ------------------------------------------------------------------------------------

    def get_job(self, job_id: int | str) -> JobRecord | None:
        """The job, or None when the index has no job with that id."""
        job_id = parse_job_id(job_id)
        raw = _decode_hash(self.redis.hgetall(self.keys.job(job_id)))
        return _job_record(job_id, raw) if raw else None

    def list_jobs(
        self,
        status: str | None = None,
        requester: str | None = None,
        provider: str | None = None,
        limit: int = 50,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[JobRecord]:
        """Jobs matching every given filter, ordered by id (newest first by default), one page."""
        return self.job_page(status, requester, provider, limit, offset, newest_first).jobs

    def job_page(
        self,
        status: str | None = None,
        requester: str | None = None,
        provider: str | None = None,
        limit: int = 50,
        offset: int = 0,
        newest_first: bool = True,
        *,
        cursor: int | str | None = None,
        max_bytes: int | None = None,
        max_scan: int | None = SCAN_ENTRIES,
    ) -> JobPage:
        """Like :meth:`list_jobs`, with the number of matching jobs over all pages and the cursor of
        the next page. `cursor` (a page's ``next_cursor``: a job id) starts the page after that job
        in the listing's order, instead of at `offset`. With `max_bytes`, the page ends early once
        its jobs' hashes reach that many bytes (it always holds its first job); hashes are read a
        few at a time, so no more than about that many bytes are read or held.

        With two or more filters the page walks the smallest of their indexes from the cursor and
        checks each entry against the others, at most `max_scan` entries (skipped `offset` entries
        included; None: no cap): past that it ends, with the last scanned id as ``next_cursor``,
        however few jobs matched; an `offset` it cannot skip within them is a QueryError (page with
        the cursor). ``total`` is then counted only when the smallest index holds at most `max_scan`
        entries."""
        if not 1 <= limit <= MAX_LIMIT:
            raise QueryError(f"limit must be from 1 to {MAX_LIMIT}, not {limit}")
        if offset < 0:
            raise QueryError(f"offset must be 0 or more, not {offset}")
        if offset > MAX_OFFSET:
            raise QueryError(f"offset must be at most {MAX_OFFSET}, not {offset}")
        if max_scan is not None and max_scan < 1:
            raise QueryError(f"max_scan must be 1 or more, not {max_scan}")
        scan_cap = MAX_OFFSET if max_scan is None else max_scan
        after = _parse_cursor(cursor)
        if after is not None and offset:
            raise QueryError("give either offset or cursor, not both")
        indexes = []
        if status is not None:
            indexes.append(self.keys.jobs_by_status(parse_status(status)))
        if requester is not None:
            indexes.append(self.keys.jobs_by_requester(parse_address(requester)))
        if provider is not None:
            indexes.append(self.keys.jobs_by_provider(parse_address(provider)))
        if not indexes:
            indexes.append(self.keys.jobs_all)

        def read(r: redis.Redis) -> tuple[int | None, list[tuple[int, dict[str, str]]], str | None]:
            walk: Iterator[tuple[int, str] | _ScanCut]
            if len(indexes) == 1:  # every entry matches: one id more than the page tells whether another follows
                total: int | None = cast(int, r.zcard(indexes[0]))
                walk = _as_matches(_index_range(r, indexes[0], newest_first, after, offset, limit + 1))
            else:
                pipe = r.pipeline(transaction=False)
                for key in indexes:
                    pipe.zcard(key)
                sizes = pipe.execute()
                smallest = min(range(len(indexes)), key=lambda n: sizes[n])
                others = indexes[:smallest] + indexes[smallest + 1 :]
                # ZINTERCARD walks the smallest index: counted only when that is within one page's scan
                total = cast(int, r.zintercard(len(indexes), indexes)) if sizes[smallest] <= scan_cap else None
                walk = _scan(r, indexes[smallest], others, newest_first, after, offset, scan_cap)
            found, next_cursor = self._fill(r, walk, self.keys.job, limit, max_bytes)
            return total, found, next_cursor

        total, found, next_cursor = self._consistently(read)
        jobs = [_job_record(i, raw) for i, raw in found]
        return JobPage(total=total, limit=limit, offset=offset, jobs=jobs, next_cursor=next_cursor)

    def claimable_jobs(self, after: int, *, limit: int = 100) -> list[int]:
        """Ids of Open jobs whose claim deadline is after `after` (a chain timestamp), earliest
        deadline first, at most `limit`."""
        if limit < 1:
            raise QueryError(f"limit must be 1 or more, not {limit}")
        found = cast(list[str], self.redis.zrangebyscore(self.keys.due("Open"), f"({after}", "+inf", start=0, num=limit))
        return [int(m) for m in found]

    def due_jobs(self, status: str, before: int, *, provider: str | None = None, limit: int = 100) -> list[int]:
        """Ids of jobs in `status` (Open, Claimed, Submitted or Disputed) whose next deadline is
        before `before`, earliest deadline first, at most `limit`; with `provider`, only the jobs
        that provider holds. The deadline: claimDeadline while Open, the submit deadline while
        Claimed, the challenge deadline while Submitted, the court's next deadline (courtDeadline)
        while Disputed. A Submitted job past its challenge deadline is due for finalize unless it
        was drawn for audit, which only the chain knows (``JobMarket.isDrawn``,
        ``depin.Client.is_drawn``): finalize reverts ``JobDrawn`` for those, and ``finalizeMany``
        skips them."""
        if status not in DUE_STATUSES:
            raise QueryError(f"no due jobs for status {status!r}; one of {', '.join(DUE_STATUSES)}")
        if limit < 1:
            raise QueryError(f"limit must be 1 or more, not {limit}")
        key = self.keys.due(status)
        if provider is None:
            return [int(m) for m in self.redis.zrangebyscore(key, "-inf", f"({before}", start=0, num=limit)]
        who = parse_address(provider).lower()
        found: list[int] = []
        offset = 0
        while len(found) < limit:
            ids = self.redis.zrangebyscore(key, "-inf", f"({before}", start=offset, num=_DUE_PAGE)
            if not ids:
                break
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hget(self.keys.job(int(job_id)), "provider")
            holders = pipe.execute()
            found += [int(j) for j, holder in zip(ids, holders, strict=True) if (holder or "").lower() == who]
            offset += len(ids)
        return found[:limit]

    def disputed_in_other_courts(self, court: str, *, limit: int = 100) -> list[int]:
        """Ids of Disputed jobs with no court deadline in this index whose case is in a court other
        than `court`, lowest first, at most `limit`. The court of each is the one the market's
        ``VerificationStarted`` named: the court the job was posted under, which stays its court
        after governance moved the market to another (``setParams``). This index follows one
        court's events, so a case opened in an earlier court after the change has no
        ``courtDeadline`` and :meth:`due_jobs` does not list it; its court's verifiers still serve
        its seats (the executor's verifier role). Only the Disputed jobs outside the Disputed due
        set are read (``ZDIFF``), so a market whose cases all have deadlines costs one command."""
        if limit < 1:
            raise QueryError(f"limit must be 1 or more, not {limit}")
        here = parse_address(court).lower()
        ids = cast(list[str], self.redis.zdiff([self.keys.jobs_by_status("Disputed"), self.keys.due("Disputed")]))
        found: list[int] = []
        for first in range(0, len(ids), _DUE_PAGE):
            page = ids[first : first + _DUE_PAGE]
            courts = self.jobs_fields(page, ["court"])
            found += [int(j) for j, f in zip(page, courts, strict=True) if f.get("court") and f["court"].lower() != here]
            if len(found) >= limit:
                break
        return found[:limit]

    def verifier_fields(self, address: str) -> dict[str, str]:
        """A court verifier's record as the indexer wrote it (``{p}:verifier:{address}``: free,
        locked, unbonding, releaseAt, platformClass, seats, paid, bondsForfeited, noShows, slashed);
        empty when the index has none."""
        raw: dict[Any, Any] = self.redis.hgetall(self.keys.verifier(parse_address(address)))  # type: ignore[assignment]
        return _decode_hash(raw)

    def job_fields(self, job_id: int) -> dict[str, str]:
        """The job's hash as the indexer wrote it (string fields, see :mod:`depin.keys`); empty when
        the index has no such job."""
        return _decode_hash(self.redis.hgetall(self.keys.job(parse_job_id(job_id))))

    def jobs_fields(self, job_ids: Iterable[int | str], fields: Iterable[str]) -> list[dict[str, str]]:
        """`fields` of each job (absent fields left out), in one round trip."""
        names = list(fields)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(self.keys.job(parse_job_id(job_id)), names)
        return [{f: _decode(v) for f, v in zip(names, values, strict=True) if v is not None} for values in pipe.execute()]

    def claimed_by(self, address: str) -> set[int]:
        """Ids of the jobs Claimed by `address` now (its provider index crossed with the Claimed
        jobs, then each job's current provider)."""
        return self.held_by(address, "Claimed")

    def held_by(self, address: str, status: str) -> set[int]:
        """Ids of the jobs in `status` whose provider is `address` now (its provider index crossed
        with the jobs in that status, then each job's current provider): e.g. its Disputed jobs,
        whatever fields the court has written yet."""
        who = parse_address(address)
        ids = [int(m) for m in self.redis.zinter([self.keys.jobs_by_status(parse_status(status)), self.keys.jobs_by_provider(who)])]
        holders = self.jobs_fields(ids, ["provider"])
        return {j for j, h in zip(ids, holders, strict=True) if (h.get("provider") or "").lower() == who.lower()}

    # providers -------------------------------------------------------------------------------

    def list_providers(self) -> list[ProviderRecord]:
        """Every registered provider, by provider id."""

        def read(r: redis.Redis) -> tuple[list[str], list[Any]]:
            addresses = [_decode(m) for m in cast(list[Any], r.zrange(self.keys.providers, 0, -1))]
            pipe = r.pipeline(transaction=False)
            for address in addresses:
                pipe.hgetall(self.keys.provider(address))
            return addresses, pipe.execute()

        addresses, hashes = self._consistently(read)
        return [_provider_record(a, _decode_hash(h)) for a, h in zip(addresses, hashes, strict=True) if h]

    def provider_page(self, limit: int = 100, cursor: int | str | None = None, max_bytes: int | None = None) -> ProviderPage:
        """One page of the registered providers, by provider id: after the provider id `cursor` (a
        page's ``next_cursor``), at most `limit`, ending early once their hashes reach `max_bytes`."""
        if not 1 <= limit <= MAX_LIMIT:
            raise QueryError(f"limit must be from 1 to {MAX_LIMIT}, not {limit}")
        after = _parse_cursor(cursor)

        def read(r: redis.Redis) -> tuple[int, list[tuple[str, dict[str, str]]], str | None]:
            total = cast(int, r.zcard(self.keys.providers))
            low = f"({after}" if after is not None else "-inf"
            members = cast(list[tuple[Any, float]], r.zrangebyscore(
                self.keys.providers, low, "+inf", start=0, num=limit + 1, withscores=True))
            walk = ((_decode(m), str(int(score))) for m, score in members)
            found, next_cursor = self._fill(r, walk, self.keys.provider, limit, max_bytes)
            return total, found, next_cursor

        total, found, next_cursor = self._consistently(read)
        providers = [_provider_record(a, raw) for a, raw in found]
        return ProviderPage(total=total, limit=limit, providers=providers, next_cursor=next_cursor)

    def get_provider(self, address: str) -> ProviderRecord | None:
        """The provider registered at `address`, or None."""
        address = parse_address(address)
        raw = _decode_hash(self.redis.hgetall(self.keys.provider(address)))
        return _provider_record(address, raw) if raw else None

    # market and indexer ----------------------------------------------------------------------

    def totals(self) -> MarketTotals:
        """Market totals; job counts per status are the sizes of the status indexes."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self.keys.totals)
        pipe.zcard(self.keys.jobs_all)
        for name in LISTABLE_STATUSES:
            pipe.zcard(self.keys.jobs_by_status(name))
        raw, jobs, *counts = pipe.execute()
        raw = _decode_hash(raw)
        numbers = {f: _int(raw.pop(f, None)) or 0 for f in _TOTALS_NUMBERS}
        numbers["jobs"] = _int(raw.pop("jobs", None)) or jobs
        for name in JOB_STATUSES:  # the hash's per-status counts; the indexes' sizes (same transaction) win
            raw.pop(name, None)
        return MarketTotals(by_status=dict(zip(LISTABLE_STATUSES, counts, strict=True)), **numbers, extra=raw)

    def status(self, chain_head: int | None = None, now: float | None = None) -> IndexerStatus:
        """The indexer's progress. `chain_head` is the node's head when the caller could read it;
        without it the head is the last one the indexer saw (``head_source == "indexer"``)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self.keys.meta)
        pipe.get(self.keys.cursor)
        meta, cursor_raw = pipe.execute()
        meta = _decode_hash(meta)
        cursor: dict[str, Any] = {}
        if cursor_raw:
            try:
                cursor = json.loads(cursor_raw)
            except ValueError:
                raise IndexerError(f"{self.keys.cursor} holds {cursor_raw!r}, not JSON {{number, hash}}") from None
        head, source = (chain_head, "rpc") if chain_head is not None else (_int(meta.get("head")), "indexer")
        cursor_number = _int(cursor.get("number"))
        updated_at = _float(meta.get("updatedAt"))
        return IndexerStatus(
            prefix=self.keys.prefix,
            indexed=bool(meta or cursor),
            chain_id=_int(meta.get("chainId")),
            market=meta.get("market") or None,
            staking=meta.get("staking") or None,
            court=meta.get("court") or None,
            deploy_block=_int(meta.get("deployBlock")),
            confirmations=_int(meta.get("confirmations")),
            finality_depth=_int(meta.get("finalityDepth")),
            head=head,
            head_source=source if head is not None else None,
            cursor=cursor_number,
            cursor_hash=cursor.get("hash"),
            lag=max(head - cursor_number, 0) if head is not None and cursor_number is not None else None,
            events_applied=_int(meta.get("eventsApplied")),
            events_per_second=_float(meta.get("eventsPerSecond")),
            updated_at=updated_at,
            seconds_since_update=(
                max((time.time() if now is None else now) - updated_at, 0.0) if updated_at is not None else None
            ),
        )

    def ping(self) -> bool:
        """True when Redis answers (raises redis.ConnectionError when it is unreachable)."""
        return bool(self.redis.ping())

    # internals -------------------------------------------------------------------------------

    def _consistently(self, read: Callable[[redis.Redis], _T]) -> _T:
        """``read(client)`` as of one cursor: any number of round trips on `client`, between a WATCH
        of the cursor and an empty MULTI/EXEC on another connection. The indexer moves the cursor in
        the transaction of every batch (and rollback), so an EXEC that succeeds proves no batch
        landed while `read` ran; otherwise it runs again. After a few lost races (a backfill
        committing very fast) it settles for an unwatched read, whose hashes are still each atomic
        and never invented."""
        for attempt in range(_SNAPSHOT_ATTEMPTS + 1):
            watched = attempt < _SNAPSHOT_ATTEMPTS
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    if watched:
                        pipe.watch(self.keys.cursor)
                    result = read(self.redis)
                    if watched:
                        pipe.multi()
                        pipe.execute()  # WatchError when the cursor moved since the WATCH
                    return result
                except redis.WatchError:
                    continue
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _fill(
        r: redis.Redis,
        walk: Iterator[tuple[_T, str] | _ScanCut],
        key_of: Callable[[_T], str],
        limit: int,
        max_bytes: int | None,
    ) -> tuple[list[tuple[_T, dict[str, str]]], str | None]:
        """The records of a page: the hashes (``key_of(item)``) of the items `walk` yields, in its
        order, read a few per round trip until `limit` records or `max_bytes` of them (always the
        first one), and the page's next cursor (None when `walk` has nothing more). `walk` yields
        ``(item, cursor)`` pairs, and a :class:`_ScanCut` when it stops before its end. An item whose
        hash is gone is left out."""
        kept: list[tuple[_T, dict[str, str]]] = []
        cursors: list[str] = []
        used = 0
        chunk = _HASH_CHUNK_FIRST
        while len(kept) < limit:
            batch: list[tuple[_T, str]] = []
            cut: _ScanCut | None = None
            for entry in walk:
                if isinstance(entry, _ScanCut):
                    cut = entry
                    break
                batch.append(entry)
                if len(batch) >= min(chunk, limit - len(kept)):
                    break
            if batch:
                pipe = r.pipeline(transaction=False)
                for item, _ in batch:
                    pipe.hgetall(key_of(item))
                for (item, item_cursor), raw in zip(batch, pipe.execute(), strict=True):
                    if not raw:
                        continue
                    record = _decode_hash(raw)
                    size = sum(len(f) + len(v) for f, v in record.items())
                    if max_bytes is not None and kept and used + size > max_bytes:
                        return kept, cursors[-1]
                    kept.append((item, record))
                    cursors.append(item_cursor)
                    used += size
            if cut is not None:
                return kept, cut.cursor
            if not batch:
                return kept, None
            if max_bytes is not None and kept:  # about as many as the rest of the budget holds
                chunk = max(1, min(_HASH_CHUNK_MAX, (max_bytes - used) * len(kept) // used + 1 if used else _HASH_CHUNK_MAX))
            else:
                chunk = _HASH_CHUNK_MAX
        for entry in walk:  # a full page: is there another one?
            return kept, entry.cursor if isinstance(entry, _ScanCut) else cursors[-1]
        return kept, None


@dataclass(frozen=True)
class _ScanCut:
    """A walk of an index stopped at its scan cap with entries left: the page continues after `cursor`."""

    cursor: str


def _as_matches(job_ids: Iterable[int]) -> Iterator[tuple[int, str]]:
    return ((i, str(i)) for i in job_ids)


def _index_range(r: redis.Redis, key: str, newest_first: bool, after: int | None, offset: int, count: int) -> list[int]:
    """Up to `count` ids of the job index `key` (scored by job id) in the listing's order: after
    the id `after`, else from rank `offset`."""
    if after is None:
        page_of = r.zrevrange if newest_first else r.zrange
        found = page_of(key, offset, offset + count - 1)
    elif newest_first:
        found = r.zrevrangebyscore(key, f"({after}", "-inf", start=0, num=count)
    else:
        found = r.zrangebyscore(key, f"({after}", "+inf", start=0, num=count)
    return [int(m) for m in cast(list[Any], found)]


def _scan(
    r: redis.Redis, key: str, others: list[str], newest_first: bool, after: int | None, offset: int, max_scan: int
) -> Iterator[tuple[int, str] | _ScanCut]:
    """The ids of the index `key` that every index of `others` holds too, in the listing's order,
    after `after` (else past the first `offset` such ids), scanning at most `max_scan` entries of
    `key`: then a :class:`_ScanCut` at the last one scanned, when `key` has more."""
    scanned = skipped = 0
    last = after
    while True:
        count = min(_SCAN_CHUNK, max_scan - scanned)
        if count == 0:
            if _index_range(r, key, newest_first, last, 0, 1):
                if skipped < offset:
                    raise QueryError(
                        f"offset {offset} with several filters: only {skipped} matching jobs among the first "
                        f"{max_scan} entries of the smallest index; page with cursor (nextCursor) instead"
                    )
                yield _ScanCut(str(last))
            return
        ids = _index_range(r, key, newest_first, last, 0, count)
        if not ids:
            return
        scanned += len(ids)
        last = ids[-1]
        pipe = r.pipeline(transaction=False)
        for other in others:
            pipe.zmscore(other, [str(i) for i in ids])
        held = pipe.execute()
        for n, job_id in enumerate(ids):
            if all(scores[n] is not None for scores in held):
                if skipped < offset:
                    skipped += 1
                    continue
                yield job_id, str(job_id)
        if len(ids) < count:
            return


# ---------------------------------------------------------------------------------------- parsing

_JOB_FIELDS = {
    "id", "status", "requester", "provider", "providers", "reward", "collateral", "specHash", "specValid", "specJson",
    "history", "compacted",
}
# Shown with a compacted job (API and explorer): its full record comes back from the chain.
COMPACTED_NOTE = (
    "settled long ago: the indexer kept a summary (status, parties, amounts, outcome, blocks) and dropped the "
    "spec, history and court seats. The chain still has them: re-index into another namespace to rebuild them, "
    "e.g. `DEPIN_NAMESPACE=depin-full DEPIN_COMPACT_AFTER=-1 python -m indexer --once` (from the deployment "
    "block), or `python -m indexer --reset` to rebuild this index"
)
_TOTALS_NUMBERS = (
    "escrowed", "withdrawable", "pendingBurn", "paid", "refunded", "emitted", "slashed", "burned", "flushed", "toCourt",
    "deposited", "withdrawn",
    "providers", "staked", "locked", "unbonding",
)
_PROVIDER_AMOUNTS = ("staked", "locked", "unbonding")
_PROVIDER_FIELDS = {
    "id", *_PROVIDER_AMOUNTS, "releaseAt", "jobsCompleted", "jobsSlashed", "endpoint", "capabilityHash", "address",
}


def _parse_cursor(cursor: int | str | None) -> int | None:
    """A page cursor (``nextCursor``: a job or provider id), or None for the first page."""
    if cursor is None or cursor == "":
        return None
    text = str(cursor).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 30:  # "²" is a digit int() refuses
        raise QueryError(f"cursor must be a page's nextCursor (an id), not {str(cursor)[:40]!r}")
    return int(text)


def _within(found: list[tuple[Any, dict[str, str]]], max_bytes: int | None) -> tuple[list[tuple[Any, dict[str, str]]], bool]:
    """The records of `found` that fit in `max_bytes` (their fields' and values' lengths; always the
    first one), and whether any was left out."""
    if max_bytes is None:
        return found, False
    used = 0
    for n, (_, raw) in enumerate(found):
        used += sum(len(f) + len(v) for f, v in raw.items())
        if n and used > max_bytes:
            return found[:n], True
    return found, False


def _job_record(job_id: int, raw: dict[str, str]) -> JobRecord:
    status = raw.get("status", "")
    if status.isdigit() and int(status) < len(JOB_STATUSES):  # tolerate the numeric enum value
        status = JOB_STATUSES[int(status)]
    spec_text = raw.get("specJson")
    spec_note = None
    if spec_text is not None and nested_deeper(spec_text, MAX_SPEC_DEPTH):
        # Indexed as valid before the depth limit existed: serializing it could fail (pydantic refuses
        # values nested ~255 deep), and it is not a spec any executor runs. Left out, with a note.
        spec, spec_note = None, f"the spec is nested deeper than {MAX_SPEC_DEPTH} levels; not served by the API"
    else:
        spec = _json(spec_text)
    history = _json(raw.get("history"))
    return JobRecord(
        id=job_id,
        status=status or "None",
        requester=_address(raw.get("requester")),
        provider=_address(raw.get("provider")),
        reward=_int(raw.get("reward")),
        collateral=_int(raw.get("collateral")),
        spec_hash=raw.get("specHash") or None,
        spec_valid=_bool(raw.get("specValid")),
        spec=spec if isinstance(spec, dict) else None,
        spec_note=spec_note,
        providers=[a for a in (_address(x.strip()) for x in (raw.get("providers") or _compacted_claimant(raw)).split(",")) if a],
        history=[h for h in history if isinstance(h, dict)] if isinstance(history, list) else [],
        compacted=raw.get("compacted") == "1",
        compacted_note=COMPACTED_NOTE if raw.get("compacted") == "1" else None,
        extra={k: v for k, v in sorted(raw.items()) if k not in _JOB_FIELDS},
    )



def _compacted_claimant(raw: dict[str, str]) -> str:
    """A compacted job drops ``providers`` when it is just its provider."""
    return raw.get("provider", "") if raw.get("compacted") == "1" else ""


def _provider_record(address: str, raw: dict[str, str]) -> ProviderRecord:
    return ProviderRecord(
        address=_address(raw.get("address")) or _address(address) or address,
        id=_int(raw.get("id")),
        **{f: _int(raw.get(f)) or 0 for f in _PROVIDER_AMOUNTS},
        release_at=_int(raw.get("releaseAt")),
        jobs_completed=_int(raw.get("jobsCompleted")) or 0,
        jobs_slashed=_int(raw.get("jobsSlashed")) or 0,
        endpoint=raw.get("endpoint") or None,
        capability_hash=raw.get("capabilityHash") or None,
        extra={k: v for k, v in sorted(raw.items()) if k not in _PROVIDER_FIELDS},
    )


def _decode(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode_hash(raw: dict) -> dict[str, str]:
    return {_decode(k): _decode(v) for k, v in raw.items()}


def _int(value: str | int | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return int(value, 16) if isinstance(value, str) and value.startswith("0x") else None  # only a str fails int()


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _bool(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.strip().lower() in ("1", "true", "yes")


def _json(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _address(value: str | None) -> str | None:
    if not value or value.lower() == ZERO_ADDRESS:
        return None
    return to_checksum_address(value) if is_address(value) else value


# ---------------------------------------------------------------------------------------- events


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = str(entry_id).partition("-")
    return int(ms), int(seq or 0)


class EventStream:
    """One consumer group on the index's event stream (``{p}:events``, see :mod:`depin.keys`):
    at-least-once delivery of every applied event and retraction, in chain order."""

    def __init__(self, client: redis.Redis, keys: Keys, group: str) -> None:
        self.redis = client
        self.stream = keys.events
        self.group = group

    def ensure(self) -> bool:
        """Creates the group at the stream's start (so entries from before the consumer started are
        read too) unless it exists; True when it was created."""
        try:
            self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            return True
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False

    def missed(self) -> bool:
        """Whether the stream's trimming (the indexer's ``stream_max_len``) removed entries this
        group never read: more entries left the stream than the group has read, and its last
        delivered id lies before the stream's first entry. The consumer must then rescan the index
        for what those entries told (a dispatcher: the Open jobs), since the stream will never
        deliver them. (Redis counts entries added and read per group; an unknown count reads as 0,
        which at worst costs a needless rescan.)"""
        try:
            info = cast(dict[str, Any], self.redis.xinfo_stream(self.stream))
            groups = cast(list[dict[str, Any]], self.redis.xinfo_groups(self.stream))
        except redis.ResponseError:  # no stream yet
            return False
        group = next((g for g in groups if g["name"] == self.group), None)
        first = info.get("first-entry")
        if group is None or not first:
            return False
        removed = int(info.get("entries-added") or 0) - int(info.get("length") or 0)
        return removed > int(group.get("entries-read") or 0) and _entry_key(group["last-delivered-id"]) < _entry_key(first[0])

    def read(self, consumer: str, *, count: int, block_ms: int | None = None, pending_after: str | None = None) -> list[tuple[str, dict[str, str]]]:
        """Up to `count` entries for `consumer`: new ones (waiting up to `block_ms`), or with
        `pending_after` (an entry id, ``"0"`` for all) the ones it read before and did not
        acknowledge, after that id (no wait)."""
        start = ">" if pending_after is None else pending_after
        reply = self.redis.xreadgroup(self.group, consumer, {self.stream: start}, count=count,
                                      block=block_ms if pending_after is None else None)
        return [(entry_id, fields) for entry_id, fields in (reply[0][1] if reply else []) if fields is not None]

    def ack(self, entry_id: str) -> None:
        self.redis.xack(self.stream, self.group, entry_id)

    def reclaim(self, consumer: str, *, min_idle_ms: int, count: int) -> list[tuple[str, dict[str, str]]]:
        """Pending entries of the group idle for `min_idle_ms` or more, claimed for `consumer`
        (``XAUTOCLAIM``): entries whose handling failed, or whose consumer died. An entry trimmed
        from the stream meanwhile is acknowledged and left out."""
        _, entries, *_ = self.redis.xautoclaim(self.stream, self.group, consumer, min_idle_ms, "0-0", count=count)
        out = []
        for entry_id, fields in entries:
            if fields is None:
                self.ack(entry_id)
            else:
                out.append((entry_id, fields))
        return out
