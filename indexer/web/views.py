"""What the explorer's pages show, read from the index (Redis) through :class:`IndexerReader`.

Pure data: every function returns plain dicts/dataclasses for the templates (:mod:`indexer.web.app`).
Times come from block timestamps when the explorer has a node to ask (:class:`BlockClock`), else from
the event stream's entry ids (the millisecond the indexer applied the event: within a second of the
block on a live chain, later for a backfill).
"""

from __future__ import annotations

import json
import statistics
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from depin.keys import JOB_STATUSES
from indexer.query import MAX_UINT256, IndexerReader, JobRecord, ProviderRecord, QueryError, parse_address

TOKEN_DECIMALS = 18
TOKEN_SYMBOL = "DPC"  # as depin.client.TOKEN_SYMBOL (not imported: the explorer needs no web3)
FEED_SIZE = 30  # events in the overview's live feed
STATS_WINDOW = 5000  # newest stream entries the overview's rates and latencies are computed from
RATE_MINUTES = 30  # minutes shown in the posted/finalized per minute chart
RECENT_JOBS = 20
PARTY_JOBS = 1000  # newest jobs of a provider or requester read for its page
# Stream entries a tx-hash search and a job's timeline read at most (newest first, _SCAN_PAGE per
# XREVRANGE): a request costs at most TX_SCAN / _SCAN_PAGE round trips, found or not. A job page
# stops at the job's first event (its history names it) and fills what lies beyond the bound from
# the job's history; a tx search says when it stopped at the bound.
TX_SCAN = 5_000
_SCAN_PAGE = 1_000

LIVE_STATUSES = ("Open", "Claimed", "Submitted", "Disputed")
SETTLED_EVENTS = ("JobFinalized", "JobSettled")
SUBMIT_EVENTS = ("ResultSubmitted", "FailureSubmitted")


class NotFound(Exception):
    """A page's subject is not in the index (HTTP 404)."""


class BadInput(Exception):
    """A page's input is malformed (HTTP 400)."""


# ---------------------------------------------------------------------------------------- formatting


def tokens(value: int | str | None) -> str:
    """Base units as tokens: 1500000000000000000 -> "1.5"."""
    if value is None or value == "":
        return "-"
    text = format(Decimal(int(value)).scaleb(-TOKEN_DECIMALS), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def utc(ts: float | None) -> str:
    """Unix seconds as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def visible(text: str) -> str:
    """`text` with every character that is not printable but a line break (ESC and the other C0
    and C1 controls, bidi overrides and isolates, zero-width characters, ...) as its Python escape,
    e.g. ``\\u202e``: a string from the chain shows as what it holds, cannot reorder or hide the
    text around it, and the page carries no terminal control to whoever reads it with curl."""
    if text.isprintable() or all(c.isprintable() or c == "\n" for c in text):
        return text
    return "".join(c if c.isprintable() or c == "\n" else c.encode("unicode_escape").decode("ascii") for c in text)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def parse_job_id_text(text: str) -> int:
    """A job id from a URL or the search box. Raises BadInput unless it is 0..2^256-1."""
    raw = text.strip()
    if not raw.isdigit() or not raw.isascii():
        raise BadInput(f"{text[:80]!r} is not a job id: a job id is a whole number")
    if len(raw) > 80 or int(raw) > MAX_UINT256:
        raise BadInput(f"job id {raw[:80]}{'…' if len(raw) > 80 else ''} is larger than 2^256-1, the largest job id")
    return int(raw)


def parse_address_text(text: str) -> str:
    try:
        return parse_address(text)
    except QueryError:
        raise BadInput(f"{text[:80]!r} is not an address: expected 0x and 40 hex digits") from None


def is_tx_hash(text: str) -> bool:
    t = text.strip().lower()
    return len(t) == 66 and t.startswith("0x") and all(c in "0123456789abcdef" for c in t[2:])


# ---------------------------------------------------------------------------------------- times


class BlockClock:
    """Block timestamps from the node (``get_blocks``: one batched request), cached; blocks the node
    cannot give are left out. `fetch` maps block numbers to their blocks (None when unknown)."""

    def __init__(self, fetch: Callable[[Sequence[int]], list[dict[str, Any] | None]], size: int = 50_000) -> None:
        self.fetch = fetch
        self.cache: OrderedDict[int, int] = OrderedDict()
        self.size = size

    def times(self, numbers: Iterable[int]) -> dict[int, int]:
        wanted = set(numbers)
        out = {n: self.cache[n] for n in wanted if n in self.cache}
        missing = sorted(wanted - out.keys())
        for i in range(0, len(missing), 500):
            chunk = missing[i : i + 500]
            try:
                blocks = self.fetch(chunk)
            except Exception:  # noqa: BLE001 - the node is optional: fall back to indexing times
                return out
            for n, block in zip(chunk, blocks, strict=False):
                if block and block.get("timestamp") is not None:
                    ts = block["timestamp"]
                    out[n] = self.cache[n] = int(ts, 16) if isinstance(ts, str) else int(ts)
        while len(self.cache) > self.size:
            self.cache.popitem(last=False)
        return out


@dataclass
class StreamEvent:
    """One entry of the index's event stream."""

    id: str
    kind: str
    event: str
    block: int
    tx: str
    log_index: int
    args: dict[str, Any]
    time: float  # block timestamp when known, else when the indexer applied it

    @property
    def job_id(self) -> int | None:
        value = self.args.get("jobId")
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    @property
    def indexed_at(self) -> float:
        return int(self.id.split("-", 1)[0]) / 1000

    def summary(self) -> str:
        """The event's arguments in a line (amounts in tokens, addresses shortened)."""
        parts = []
        for k, v in self.args.items():
            if k == "jobId":
                continue
            text = str(v)
            if isinstance(v, str) and v.startswith("0x") and len(v) == 42:
                text = v[:6] + "…" + v[-4:]
            elif isinstance(v, str) and v.startswith("0x") and len(v) > 20:
                text = v[:10] + "…"
            elif isinstance(v, str) and v.isascii() and v.isdigit() and len(v) > 15:  # not "²": int() refuses it
                text = tokens(v)
            elif isinstance(v, (dict, list)):
                text = "…"
            parts.append(f"{k}={text}")
        return ", ".join(parts[:6])


def _stream_event(entry_id: str, fields: dict[str, str]) -> StreamEvent:
    try:
        args = json.loads(fields.get("args") or "{}")
    except ValueError:
        args = {}
    return StreamEvent(
        id=entry_id, kind=fields.get("kind", "event"), event=fields.get("event", "?"), block=int(fields.get("block") or 0),
        tx=fields.get("tx", ""), log_index=int(fields.get("logIndex") or 0), args=args if isinstance(args, dict) else {},
        time=int(entry_id.split("-", 1)[0]) / 1000,
    )


def net_events(entries: Iterable[StreamEvent]) -> list[StreamEvent]:
    """The events still applied (chain order): each retraction removes the event it retracts."""
    live: dict[tuple[str, int, str], StreamEvent] = {}
    for e in entries:
        key = (e.tx, e.log_index, e.event)
        if e.kind == "retraction":
            live.pop(key, None)
        else:
            live[key] = e
    return list(live.values())


# ---------------------------------------------------------------------------------------- the explorer's data


@dataclass
class Explorer:
    """Reads for the pages. `clock` gives block times (None: indexing times only)."""

    reader: IndexerReader
    clock: BlockClock | None = None

    @property
    def redis(self) -> Any:
        """The reader's (synchronous) Redis client."""
        return self.reader.redis

    # ------------------------------------------------------------------ the stream

    def last_stream_id(self) -> str:
        newest = self.redis.xrevrange(self.reader.keys.events, count=1)
        return newest[0][0] if newest else "0-0"

    def newest_events(self, count: int) -> list[StreamEvent]:
        """The newest `count` stream entries, oldest first, with block times."""
        raw = self.redis.xrevrange(self.reader.keys.events, count=count)
        return self.timed([_stream_event(i, f) for i, f in reversed(raw)])

    def entries_after(self, after: str, count: int = 500) -> list[StreamEvent]:
        raw = self.redis.xrange(self.reader.keys.events, min=f"({after}" if after != "0-0" else "-", count=count)
        return self.timed([_stream_event(i, f) for i, f in raw])

    def scan(
        self,
        match: Callable[[str, dict[str, str]], bool],
        limit: int = TX_SCAN,
        stop: Callable[[str, dict[str, str]], bool] | None = None,
    ) -> tuple[list[StreamEvent], str]:
        """Stream entries (oldest first) for which ``match(id, fields)`` holds, among the newest `limit`
        (read newest first, a page at a time), and why the scan ended: ``"stop"`` (``stop(id, fields)``
        held for an entry, after which older ones are not read), ``"end"`` (the stream's oldest entry
        was read) or ``"limit"`` (`limit` entries were read: older ones were not searched)."""
        r, key = self.redis, self.reader.keys.events
        found: list[StreamEvent] = []
        end, seen = "+", 0
        ended = "limit"
        while seen < limit:
            want = min(_SCAN_PAGE, limit - seen)
            page = r.xrevrange(key, max=end, min="-", count=want)
            seen += len(page)
            for i, f in page:
                if match(i, f):
                    found.append(_stream_event(i, f))
                if stop is not None and stop(i, f):
                    ended = "stop"
                    break
            if ended == "stop":
                break
            if len(page) < want:
                ended = "end"
                break
            end = "(" + page[-1][0]
        found.reverse()
        return self.timed(found), ended

    def timed(self, events: list[StreamEvent]) -> list[StreamEvent]:
        if self.clock is not None and events:
            times = self.clock.times({e.block for e in events})
            for e in events:
                if e.block in times:
                    e.time = float(times[e.block])
        return events

    def job_events(self, job_id: int, history: Sequence[dict[str, Any]] = ()) -> tuple[list[StreamEvent], bool]:
        """Every event of the job still applied, in chain order, and whether some may be missing
        (older than the newest TX_SCAN stream entries). With the job's `history`, the scan stops at
        the job's first event, and transitions it did not reach (beyond the bound, or trimmed from
        the stream) are filled in from the history (event, block, tx; no arguments)."""
        needle = f'"jobId":"{job_id}"'
        first = history[0] if history else None
        stop = None
        if first is not None:
            tx, log_index, name = str(first.get("tx", "")), str(first.get("logIndex", "")), str(first.get("event", ""))

            def stop(_i: str, f: dict[str, str]) -> bool:
                return (f.get("tx") == tx and f.get("logIndex") == log_index and f.get("event") == name
                        and f.get("kind") == "event" and needle in (f.get("args") or ""))

        events, ended = self.scan(lambda _i, f: needle in (f.get("args") or ""), stop=stop)
        events = net_events(events)
        if ended != "stop" and history:
            have = {(e.tx, e.log_index, e.event) for e in events}
            filled = [
                StreamEvent(id="0-0", kind="event", event=str(h.get("event", "?")), block=_int(h.get("block")) or 0,
                            tx=str(h.get("tx", "")), log_index=_int(h.get("logIndex")) or 0, args={"status": h.get("status")}, time=0.0)
                for h in history
                if (str(h.get("tx", "")), _int(h.get("logIndex")) or 0, str(h.get("event", "?"))) not in have
            ]
            if filled:
                self.timed(filled)
                events = sorted(events + filled, key=lambda e: (e.block, e.log_index))
        return events, ended == "limit"

    def tx_events(self, tx_hash: str) -> tuple[list[StreamEvent], bool]:
        """The transaction's events still applied, and whether the search stopped at the bound
        (the newest TX_SCAN stream entries) before the stream's oldest entry."""
        wanted = tx_hash.strip().lower()
        lowest: list[int] = []  # the lowest block of a matched event (one value: constant time per entry)

        def match(_i: str, f: dict[str, str]) -> bool:
            if (f.get("tx") or "").lower() != wanted:
                return False
            block = _int(f.get("block")) or 0
            lowest[:] = [min(lowest[0], block)] if lowest else [block]
            return True

        def stop(_i: str, f: dict[str, str]) -> bool:  # a transaction's events are all in one block
            return bool(lowest) and (_int(f.get("block")) or 0) < lowest[0]

        events, ended = self.scan(match, stop=stop)
        return net_events(events), ended == "limit"

    # ------------------------------------------------------------------ overview

    def overview(self) -> dict[str, Any]:
        totals = self.reader.totals()
        extra = totals.extra

        def x(name: str) -> int:
            try:
                return int(extra.get(name) or 0)
            except ValueError:
                return 0

        events = net_events(self.newest_events(STATS_WINDOW))
        posted: dict[int, float] = {}
        submitted: dict[int, float] = {}
        settled: dict[int, float] = {}
        for e in events:
            job = e.job_id
            if job is None:
                continue
            if e.event == "JobPosted":
                posted.setdefault(job, e.time)
            elif e.event in SUBMIT_EVENTS:
                submitted.setdefault(job, e.time)
            elif e.event in SETTLED_EVENTS:
                settled.setdefault(job, e.time)
        to_submit = [submitted[j] - t for j, t in posted.items() if j in submitted]
        to_final = [settled[j] - t for j, t in posted.items() if j in settled]
        now = time.time()
        if events:
            now = max(now, max(e.time for e in events))
        minute_now = int(now // 60)
        posted_pm = [0] * RATE_MINUTES
        final_pm = [0] * RATE_MINUTES
        for series, times in ((posted_pm, posted.values()), (final_pm, settled.values())):
            for t in times:
                age = minute_now - int(t // 60)
                if 0 <= age < RATE_MINUTES:
                    series[RATE_MINUTES - 1 - age] += 1
        by_status = {s: totals.by_status.get(s, 0) for s in JOB_STATUSES[1:]}
        return {
            "totals": totals,
            "by_status": by_status,
            "jobs": totals.jobs,
            "open_disputes": by_status.get("Disputed", 0),
            "court_cases": x("cases"),
            "verifiers": x("verifiers"),
            "tokens": [
                ("escrowed", totals.escrowed, "reward + fees of live jobs, held by the market"),
                ("bonded", totals.staked + totals.locked + x("courtStaked") + x("courtLocked"),
                 "provider stake and collateral + verifier stake and seat bonds"),
                ("paid", totals.paid, "to providers, cumulative"),
                ("burned", totals.burned + x("courtBurned"), "accrued to the burn by the market and the court"),
                ("minted", totals.emitted, "rebates emitted to providers (κ × fee)"),
                ("refunded", totals.refunded, "to requesters, cumulative"),
                ("slashed", totals.slashed + x("courtSlashed"), "provider collateral and verifier stake"),
            ],
            "median_submit": statistics.median(to_submit) if to_submit else None,
            "median_final": statistics.median(to_final) if to_final else None,
            "latency_samples": (len(to_submit), len(to_final)),
            "posted_per_minute": posted_pm,
            "finalized_per_minute": final_pm,
            "window_jobs": len(posted),
        }

    def recent_jobs(self, limit: int = RECENT_JOBS) -> list[JobRecord]:
        return self.reader.job_page(None, None, None, limit, 0, True).jobs

    def feed(self, count: int = FEED_SIZE) -> list[StreamEvent]:
        return list(reversed(self.newest_events(count)))

    # ------------------------------------------------------------------ one job

    def job(self, job_id: int) -> dict[str, Any]:
        record = self.reader.get_job(job_id)
        if record is None:
            raise NotFound(f"job {job_id} is not in the index (the market has {self.reader.totals().jobs} jobs)")
        extra = record.extra
        # The stream for the events' arguments; the job's history for what the bounded scan missed.
        events, partial = self.job_events(job_id, record.history)
        seats = _json_value(extra.get("seats"))
        seat_rows = []
        if isinstance(seats, dict):
            for key in sorted(seats, key=_seat_order):
                seat = seats[key] if isinstance(seats[key], dict) else {}
                seat_rows.append({"seat": key, **{k: str(v) for k, v in seat.items()}})
        tallies = _json_value(extra.get("tallies"))
        terms: list[tuple[str, str | None]] = [
            ("reward", _tok(record.reward)), ("fee (f × R)", _tok(extra.get("fee"))),
            ("audit fee (A)", _tok(extra.get("auditFee"))), ("collateral", _tok(record.collateral)),
        ]
        terms += [
            (label, extra.get(name)) for label, name in (
                ("collateral %", "collateralPct"), ("verify mode", "verifyMode"), ("audit rate (bps)", "auditBps"),
                ("claim window (s)", "claimWindow"), ("max runtime (s)", "maxRuntime"),
                ("challenge window (s)", "challengeWindow"), ("cpu seconds", "cpuSeconds"), ("params version", "paramsVersion"),
                ("paid from credit", "fromCredit"),
            )
        ]
        deadlines = [
            (label, _int(extra.get(name))) for label, name in (
                ("claim deadline", "claimDeadline"), ("submit deadline", "submitDeadline"),
                ("challenge deadline", "challengeDeadline"), ("court deadline", "courtDeadline"),
            ) if extra.get(name)
        ]
        payout = [
            (label, extra[name]) for label, name in (
                ("provider payout", "payout"), ("of which rebate (minted)", "emission"),
                ("provider payout (court)", "providerPayout"), ("requester refund", "refund"),
                ("requester refund (court)", "requesterRefund"), ("sent to the court", "toCourt"),
                ("burned", "burned"), ("collateral slashed", "slashed"), ("no-fault fees", "noFaultFees"),
                ("court: paid to seats", "courtPaidSeats"), ("court: bounty", "courtBounty"),
                ("court: refunded", "courtRefunded"), ("court: burned", "courtBurned"),
            ) if extra.get(name) not in (None, "", "0")
        ]
        spec_text = json.dumps(record.spec, indent=2, sort_keys=True, ensure_ascii=False) if record.spec is not None else None
        court = [
            (label, extra.get(name)) for label, name in (
                ("court", "court"), ("phase", "casePhase"), ("round", "caseRound"), ("platform class", "platformClass"),
                ("seats per round (k)", "roundK"), ("redraws", "redraws"), ("provider digest", "providerDigest"),
                ("challenger", "challenger"), ("challenge bond", "challengeBond"), ("arbiter", "arbiter"),
                ("arbiter outcome", "arbiterOutcome"), ("case outcome", "caseOutcome"), ("verification block", "verificationBlock"),
            ) if extra.get(name) not in (None, "")
        ]
        return {
            "job": record,
            "extra": extra,
            "court_note": self.court_note(job_id, extra.get("court")),
            "spec_text": spec_text,
            "terms": terms,
            "deadlines": deadlines,
            "events": events,
            "events_note": (
                f"events older than the latest {TX_SCAN} in the index's stream are shown from the job's history, without their arguments"
                if partial else None
            ),
            "seats": seat_rows,
            "tallies": tallies if isinstance(tallies, list) else [],
            "court": court,
            "payout": payout,
            "result": [
                (label, extra.get(name)) for label, name in (
                    ("commitment", "commitment"),
                    ("result URI (truncated in the index: the whole URI is in the ResultSubmitted event on chain)"
                     if extra.get("resultURITruncated") == "1" else "result URI", "resultURI"),
                    ("failure code", "failureCode"),
                    ("failure reason", "failureReason"), ("anchor block", "anchorBlock"), ("submitted in block", "submittedBlock"),
                    ("outcome", "outcome"),
                ) if extra.get(name) not in (None, "")
            ],
        }

    def court_note(self, job_id: int, court: str | None) -> str | None:
        """Why the job's case may look stale here: its court (the one the market named when the case
        opened: the court the job was posted under) is not the court this index follows. After
        governance moved the market to another court, an index of the deployer's new file follows
        the new court only, so an earlier court's later events (seats, phase, payments) are not in
        it; the chain has them."""
        followed = self.reader.status().court
        if not court or not followed or court.lower() == followed.lower():
            return None
        return (
            f"This job's case is in court {court}, an earlier court of the market; this index follows court "
            f"{followed}, so the case's seats, phase and payments after the market moved to it are not indexed "
            f"here. `depin job status {job_id}` reads the case from the chain (its phase, round, seats and "
            f"deadlines; the SDK: `Client.court_case({job_id})`)."
        )

    # ------------------------------------------------------------------ parties

    def _party_jobs(self, key: str) -> list[int]:
        return [int(m) for m in self.redis.zrevrange(key, 0, PARTY_JOBS - 1)]

    def provider(self, address: str) -> dict[str, Any]:
        who = parse_address_text(address)
        record: ProviderRecord | None = self.reader.get_provider(who)
        if record is None:
            raise NotFound(f"no provider {who} in the index (it never registered with the staking contract)")
        ids = self._party_jobs(self.reader.keys.jobs_by_provider(who))
        fields = ["status", "provider", "failure", "failureCode", "outcome", "payout", "emission", "providerPayout",
                  "slashed", "verificationBlock", "caseOutcome", "reward", "history", "timeouts", "auditBps", "settledBlock"]
        rows = self.reader.jobs_fields(ids, fields)
        mine = who.lower()
        done = failed = slashed = timed_out = audited = 0
        audit_outcomes: dict[str, int] = {}
        earnings: list[tuple[int, int]] = []  # (block, amount)
        jobs = []
        for job_id, f in zip(ids, rows, strict=True):
            holder = (f.get("provider") or "").lower() == mine
            status = f.get("status", "")
            if status in ("Finalized", "Resolved") and holder and f.get("failure") != "1":
                done += 1
            if holder and f.get("failure") == "1":
                failed += 1
            if holder and f.get("slashed") not in (None, "", "0"):
                slashed += 1
            if not holder:
                timed_out += 1
            if holder and f.get("verificationBlock"):
                audited += 1
                outcome = f.get("caseOutcome") or f.get("outcome") or "open"
                audit_outcomes[outcome] = audit_outcomes.get(outcome, 0) + 1
            amount = _int(f.get("payout")) or _int(f.get("providerPayout")) or 0
            if holder and amount:
                history = _json_value(f.get("history"))
                block = 0
                if isinstance(history, list):
                    settled_at = [h.get("block", 0) for h in history if isinstance(h, dict) and h.get("event") in SETTLED_EVENTS]
                    block = int(settled_at[-1]) if settled_at else int(history[-1].get("block", 0)) if history else 0
                elif f.get("settledBlock"):  # a compacted job keeps its settling block only
                    block = int(f["settledBlock"])
                earnings.append((block, amount))
            jobs.append({"id": job_id, "status": status, "holder": holder, "failure": f.get("failure") == "1",
                         "reward": f.get("reward"), "payout": amount, "outcome": f.get("outcome") or ""})
        earnings.sort()
        times = self.clock.times({b for b, _ in earnings}) if self.clock is not None else {}
        points, total = [], 0
        for block, amount in earnings:
            total += amount
            points.append((float(times.get(block, block)), total))
        submitted = sum(1 for f in rows if (f.get("provider") or "").lower() == mine and f.get("status") not in ("Claimed", "Open"))
        latest_bps = next((f["auditBps"] for f in rows if f.get("auditBps") not in (None, "")), None)  # ids: newest first
        withdrawable = self.redis.hget(self.reader.keys.account(who), "withdrawable")
        return {
            "provider": record,
            "jobs": jobs[:200],
            "job_count": len(ids),
            "done": done, "failed": failed, "slashed": slashed, "lost": timed_out,
            "audited": audited, "audit_outcomes": audit_outcomes,
            "observed_audit_rate": (audited / submitted) if submitted else None,
            "latest_audit_bps": latest_bps,
            "earnings": points, "earned": total, "time_axis": bool(times),
            "withdrawable": withdrawable,
        }

    def requester(self, address: str) -> dict[str, Any]:
        who = parse_address_text(address)
        ids = self._party_jobs(self.reader.keys.jobs_by_requester(who))
        if not ids:
            raise NotFound(f"no jobs posted by {who} in the index")
        rows = self.reader.jobs_fields(ids, ["status", "reward", "fee", "auditFee", "refund", "requesterRefund", "provider", "postedBlock"])
        escrow = refunded = live = 0
        by_status: dict[str, int] = {}
        jobs = []
        for job_id, f in zip(ids, rows, strict=True):
            cost = sum(_int(f.get(k)) or 0 for k in ("reward", "fee", "auditFee"))
            back = (_int(f.get("refund")) or 0) + (_int(f.get("requesterRefund")) or 0)
            status = f.get("status", "")
            by_status[status] = by_status.get(status, 0) + 1
            escrow += cost
            refunded += back
            if status in LIVE_STATUSES:
                live += cost
            jobs.append({"id": job_id, "status": status, "cost": cost, "refund": back, "provider": f.get("provider") or ""})
        spent = escrow - refunded
        withdrawable = self.redis.hget(self.reader.keys.account(who), "withdrawable")
        return {
            "address": who, "jobs": jobs[:200], "job_count": len(ids), "by_status": by_status,
            "escrowed_total": escrow, "refunded": refunded, "spent": spent - live, "live": live, "withdrawable": withdrawable,
        }

    def address_kind(self, address: str) -> str:
        """Where an address's page is: provider, requester or verifier. Raises NotFound."""
        who = parse_address_text(address)
        r, k = self.redis, self.reader.keys
        if r.exists(k.provider(who)):
            return "provider"
        if r.zcard(k.jobs_by_requester(who)):
            return "requester"
        if r.exists(k.verifier(who)):
            return "verifier"
        raise NotFound(f"the address {who} is not a provider, requester or verifier in the index")

    def verifier(self, address: str) -> dict[str, Any]:
        who = parse_address_text(address)
        fields = self.reader.verifier_fields(who)
        if not fields:
            raise NotFound(f"no verifier {who} in the index")
        return {"address": who, "fields": sorted(fields.items())}



def _seat_order(key: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in key.split("."))
    except ValueError:
        return (1 << 30,)


def _json_value(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _int(value: str | int | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _tok(value: str | int | None) -> str:
    return f"{tokens(value)} {TOKEN_SYMBOL}" if value not in (None, "") else "-"
