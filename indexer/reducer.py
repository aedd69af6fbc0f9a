"""The reducer: decoded events -> new values of the Redis hashes, index memberships and stream entries.

Pure Python: no Redis, no RPC. :meth:`Reducer.apply` takes a batch of events (chain order) and the
current values of the hashes they touch (prefetched by the store; anything missing is asked of a
`loader` callback) and returns a :class:`BatchResult`: the changed fields of every touched hash,
the sorted-set memberships to add and remove (derived from hash contents, so a rollback can recompute
them), one stream entry per event, and, for blocks that are not final yet, an undo record per block
holding the prior value of every hash the block changed and the stream entries it appended.

State derivation (see ``depin/keys.py`` for the field list): job hashes follow the job state machine
event by event; provider records follow the staking events plus the collateral that ``JobClaimed``,
``JobFinalized`` and ``DisputeResolved`` lock and unlock (``Slashed`` carries slashes); account
balances mirror ``JobMarket.withdrawableOf`` (credits at settlement, ``fromCredit`` at post,
deposits, withdrawals); totals are sums of those flows. Everything is computed from event fields:
no ``eth_call`` is ever needed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec
from eth_utils import keccak

try:  # safe-pysha3 (a dependency of the toolchain): ~4x faster than eth_utils.keccak on small inputs
    from sha3 import keccak_256 as _keccak_256  # lazy: optional

    def _keccak_hex(data: bytes) -> str:
        return _keccak_256(data).hexdigest()

except ImportError:  # pragma: no cover

    def _keccak_hex(data: bytes) -> str:
        return keccak(data).hex()

from depin.keys import DUE_STATUSES, JOB_STATUSES, Keys
from depin.market import FAILURE_NAMES, LIVE_STATUSES, OUTCOME_NAMES, SETTLED_STATUSES, VERIFY_MODE_NAMES
from depin.spec import MAX_SPEC_BYTES, MAX_SPEC_DEPTH, nested_deeper, noncanonical_reason
from indexer.decode import Event

log = logging.getLogger("indexer.reducer")



# The enums' names, from depin.market (the one enum source), in on-chain order.
OUTCOMES = OUTCOME_NAMES
FAILURE_CODES = FAILURE_NAMES
VERIFY_MODES = VERIFY_MODE_NAMES
# Failure codes settled at once as "no fault" (ImageUnavailable, InputHashMismatch): NoFaultFailure.
AVAILABILITY_CODES = (1, 2)
MARKET_EVENTS = (
    "JobPosted",
    "JobClaimed",
    "ResultSubmitted",
    "FailureSubmitted",
    "NoFaultFailure",
    "JobFinalized",
    "VerificationStarted",
    "JobSettled",
    "JobCancelled",
    "JobExpired",
    "JobTimedOut",
    "BurnFlushed",
    "Deposited",
    "Withdrawn",
    "MarketParamsUpdated",
    "PauseSet",
)
# Events whose handler needs the block's timestamp (Event.timestamp, set by the follower):
# JobPosted's claim deadline is the post's block timestamp + terms.claimWindow.
TIMESTAMPED_EVENTS = frozenset({"JobPosted"})
COURT_EVENTS = (
    "CourtParamsSet",
    "VerifierJoined",
    "StakeAdded",
    "LeaveRequested",
    "LeftWithdrawn",
    "ClassLeft",
    "VerifierDisplaced",
    "PlatformClassSet",
    "CaseOpened",
    "SeatsDrawn",
    "SeatTaken",
    "SeatCommitted",
    "SeatRevealed",
    "ProviderRevealed",
    "SeatNoShow",
    "ReserveReleased",
    "RoundTallied",
    "Challenged",
    "Appealed",
    "ArbiterRuled",
    "CanaryExposed",
    "VerifierSlashed",
    "SeatSettled",
    "CaseConcluded",
)
STAKING_EVENTS = (
    "ProviderRegistered",
    "Staked",
    "UnstakeRequested",
    "UnstakeWithdrawn",
    "MetadataUpdated",
    "Slashed",
    "StakingParametersUpdated",
)
HANDLED_EVENTS = MARKET_EVENTS + STAKING_EVENTS + COURT_EVENTS
# The fields the sorted-set indexes derive from (job and provider hashes).
_INDEXED_FIELDS = (
    "id", "status", "requester", "providers", "address", "deadline", "claimDeadline", "courtDeadline", "settledBlock", "compacted",
)
_SETTLED = SETTLED_STATUSES
# The deadline field that scores a live job in its due set (``Keys.due``): the claim deadline while
# Open, the submit deadline while Claimed, the challenge deadline while Submitted (finalize is due
# after it unless the job was drawn: ``JobMarket.isDrawn`` tells, the indexer cannot), and the
# court's next deadline while Disputed (seat, commit, reveal or canary/appeal window end: `advance`
# or `redraw` is due after it; absent until the court's events name one).
DUE_FIELDS = {
    status: {"Open": "claimDeadline", "Disputed": "courtDeadline"}.get(status, "deadline") for status in DUE_STATUSES
}
# Escrowed jobs: the reward is still held by the market.
_LIVE = LIVE_STATUSES
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_MSGSPEC_JSON = msgspec.json.Encoder().encode

Hash = dict[str, str]
# The stream args that JobPosted's handler adds, pre-rendered.
_SPEC_VALID: dict[tuple[tuple[str, Any], ...], str] = {(("specValid", True),): '"specValid":true', (("specValid", False),): '"specValid":false'}
_SPEC_VALID_EXTRA = {True: {"specValid": True}, False: {"specValid": False}}  # shared: never modified
Loader = Callable[[Sequence[str]], dict[str, Hash]]


def _plain(value: Any) -> Any:
    """Event argument -> JSON value: integers as decimal strings (exact beyond 2^53), bytes as hex."""
    cls = value.__class__
    if cls is int:
        return str(value)
    if cls is dict:  # a tuple argument: its components by name
        return {k: str(v) if v.__class__ is int else _plain(v) for k, v in value.items()}
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


STREAM_FIELDS = ("kind", "event", "block", "blockHash", "tx", "logIndex", "args")


def stream_line(ev: Event, extra: dict[str, Any] | None = None) -> str:
    """The ``{p}:events`` entry of an applied event as one line of tab-separated values in
    :data:`STREAM_FIELDS` order (``kind`` is ``event``). No field can hold a tab or a newline: the
    args are JSON, which escapes control characters. (The generic form of
    :meth:`Reducer.stream_line`, which uses per-event formats.)"""
    args = {}
    for k, v in ev.args.items():
        cls = v.__class__
        if cls is int:
            args[k] = str(v)
        elif cls is str or cls is bool:
            args[k] = v
        elif k != "spec":  # the spec lives in the job hash
            args[k] = _plain(v)
    if extra:
        args.update(extra)
    return f"event\t{ev.name}\t{ev.block:d}\t{ev.block_hash}\t{ev.tx}\t{ev.log_index:d}\t{_json_text(args)}"


def _json_text(value: Any) -> str:
    """`value` as compact JSON text: the same text as ``_JSON`` (json.dumps, compact, non-ASCII as
    is, the same escapes) for the strings, booleans, None, lists and dicts that _plain returns,
    ~8x faster (msgspec); anything msgspec refuses (a lone surrogate) goes to json.dumps."""
    try:
        return _MSGSPEC_JSON(value).decode()
    except (TypeError, ValueError, UnicodeEncodeError):
        return _JSON(value)


def _extra_value(value: Any) -> str:
    """A stream arg the handler added, as JSON (booleans spelled out)."""
    return "true" if value is True else "false" if value is False else _JSON(_plain(value))


def _tuple_json(value: Any) -> str:
    """A tuple argument (a dict of its components) as stream_line writes it."""
    return _json_text(_plain(value))


def _args_formatter(arg_types: Sequence[tuple[str, str]]) -> Callable[[dict[str, Any]], str] | None:
    """A fast JSON writer for one event type's args (what :func:`stream_line` writes), or None when
    a type needs the generic path. Integers become decimal strings; addresses and fixed bytes are
    0x-hex (no escaping needed); strings are JSON-escaped."""
    parts: list[str] = []
    names: list[str] = []
    convs: list[Callable[[Any], Any] | None] = []
    for name, typ in arg_types:
        if name == "spec":
            continue
        if typ.startswith(("uint", "int")) and "[" not in typ:
            parts.append(f'"{name}":"%d"')
            convs.append(None)
        elif typ == "address" or (typ.startswith("bytes") and typ != "bytes" and "[" not in typ):
            parts.append(f'"{name}":"%s"')
            convs.append(None)
        elif typ == "bool":
            parts.append(f'"{name}":%s')
            convs.append(bool)
        elif typ == "string":
            parts.append(f'"{name}":%s')
            convs.append(_JSON)
        elif typ == "tuple":
            parts.append(f'"{name}":%s')
            convs.append(_tuple_json)
        else:
            return None
        names.append(name)
    template = "{" + ",".join(parts) + "}"
    if not names:
        return lambda args: "{}"
    # One expression per event type, e.g. template % (a["jobId"], "true" if a["failure"] else "false").
    values = []
    for name, conv in zip(names, convs):
        if conv is None:
            values.append(f"a[{name!r}]")
        elif conv is _JSON:
            values.append(f"_JSON(a[{name!r}])")
        elif conv is _tuple_json:
            values.append(f"_tuple_json(a[{name!r}])")
        else:
            values.append(f'("true" if a[{name!r}] else "false")')
    source = f"lambda a: {template!r} % ({', '.join(values)},)"
    return eval(source, {"_JSON": _JSON, "_tuple_json": _tuple_json})  # built from ABI names and types only


def retraction_line(line: str) -> str:
    """The retraction entry of an event entry line."""
    return "retraction" + line[len("event"):]


def parse_stream_line(line: str) -> dict[str, str]:
    """The stream fields of an entry line."""
    return dict(zip(STREAM_FIELDS, line.split("\t", 6)))


# The chain does not bound a spec's size, and json's C scanner recurses per nesting level: past the
# interpreter's recursion limit it raises RecursionError (which stopped the indexer), and where that
# limit has been raised (pytest sets 100,000) it overflows the C stack; the API's serializer (pydantic)
# refuses values nested ~255 deep. Deeper specs than depin.spec.MAX_SPEC_DEPTH are invalid, and so are
# specs longer than depin.spec.MAX_SPEC_BYTES (what parse_spec, hence an executor, accepts): of those,
# the job hash keeps the length only (``specLength``), never the bytes.
# Strings an event carries (a result URI, a provider endpoint) are stored, in the hashes and in the
# stream entry, truncated to MAX_STRING_BYTES of UTF-8 plus TRUNCATED_MARK, with a flag field
# ``<name>Truncated`` (``1``): a truncated value is for display only, never a URI to fetch.
MAX_STRING_BYTES = 4096
TRUNCATED_MARK = "…[truncated]"
# The string arguments of the events (the ABIs' `string` inputs) that are capped.
STRING_ARGS: dict[str, tuple[str, ...]] = {
    "ResultSubmitted": ("resultURI",),
    "ProviderRegistered": ("endpoint",),
    "MetadataUpdated": ("endpoint",),
}


_strict_json = msgspec.json.Decoder().decode
_NOT_PARSED = object()


def check_spec(spec: bytes, spec_hash: str) -> tuple[bool, str, str]:
    """(valid, error, json text) for a posted spec: its keccak256 must be `spec_hash`, it must be
    UTF-8 JSON with an object at the top, and its bytes must be the RFC 8785 (JCS) canonical form of
    their own parse (so one logical job has one specHash; see :mod:`depin.spec`)."""
    actual = "0x" + _keccak_hex(spec)
    if actual != spec_hash.lower():
        return False, f"keccak256(spec) is {actual}, not the posted specHash {spec_hash}", ""
    try:
        text = spec.decode("utf-8")
    except UnicodeDecodeError as exc:
        return False, f"spec is not UTF-8: {exc}", ""
    if nested_deeper(text, MAX_SPEC_DEPTH):
        return False, f"spec is nested deeper than {MAX_SPEC_DEPTH} levels", ""
    if len(spec) > MAX_SPEC_BYTES:
        return False, f"spec is {len(spec)} bytes; the limit is {MAX_SPEC_BYTES}", ""
    try:
        # msgspec accepts strict RFC 8259 JSON only, a subset of what json.loads accepts (which adds
        # NaN, Infinity, lone surrogates, out-of-range floats): whatever it parses, json.loads
        # parses to the same kind of value, 5x slower. Anything else gets json.loads's verdict.
        parsed = _strict_json(text)
    except msgspec.DecodeError:
        parsed = _NOT_PARSED
    try:
        if parsed is _NOT_PARSED:
            parsed = json.loads(text)
    except ValueError as exc:
        return False, f"spec is not JSON: {exc}", ""
    except RecursionError:  # json's C scanner gives up on deep nesting
        return False, f"spec is nested deeper than {MAX_SPEC_DEPTH} levels", ""
    if not isinstance(parsed, dict):
        return False, f"spec is JSON but not an object (a {type(parsed).__name__})", ""
    if not _canonical_fast(spec, parsed):
        reason = noncanonical_reason(spec, parsed)
        if reason is not None:
            return False, reason, ""
    return True, "", text


# RFC 8785 (JCS) output of the values _jcs_simple admits is exactly msgspec's compact JSON with
# sorted keys: strings are escaped alike for every code point but the lone surrogates (which
# msgspec refuses to encode), integers within +-(2^53 - 1) are plain decimals, and for ASCII keys the
# UTF-16 order of JCS is the code point order msgspec sorts by. Floats (JCS has its own number
# form) and anything else take the rfc8785 path, ~50x slower on a typical spec.
_JCS_INT = 2**53 - 1
_sorted_json = msgspec.json.Encoder(order="sorted").encode


def _jcs_simple(value: Any) -> bool:
    """Whether `value` holds only strings, booleans, None, safe integers, lists and objects with
    ASCII keys (iterative: no recursion, no generator per container)."""
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        v = pop()
        cls = v.__class__
        if cls is str or cls is bool or v is None:
            continue
        if cls is dict:
            for k, x in v.items():
                if k.__class__ is not str or not k.isascii():
                    return False
                if x.__class__ is not str:
                    push(x)
        elif cls is list:
            stack.extend(v)
        elif cls is int:
            if not -_JCS_INT <= v <= _JCS_INT:
                return False
        else:
            return False
    return True


def _canonical_fast(spec: bytes, parsed: Any) -> bool:
    """True when `spec` is certainly the RFC 8785 form of `parsed` (see _jcs_simple); False means
    "ask rfc8785" (depin.spec.noncanonical_reason), not "not canonical"."""
    if not _jcs_simple(parsed):
        return False
    try:
        return _sorted_json(parsed) == spec
    except (UnicodeEncodeError, TypeError, ValueError):
        return False


class BatchResult:
    """What one batch changes. Every value is a string (Redis hashes hold strings)."""

    __slots__ = ("events", "hset", "stream", "undo", "values", "zadd", "zrem")

    def __init__(self) -> None:
        self.hset: dict[str, Hash] = {}  # key -> changed fields
        self.zadd: dict[str, dict[str, float]] = {}  # sorted set -> member -> score
        self.zrem: dict[str, list[str]] = {}  # sorted set -> members
        self.stream: list[str] = []  # entry lines (see stream_line), chain order
        # block -> {"h": {key: None (new) or {field: prior value or None}}, "e": [entry lines]}
        self.undo: dict[int, dict[str, Any]] = {}
        self.events = 0
        self.values: dict[str, Hash] = {}  # key -> full new value of every written hash


class _State:
    """The touched hashes of one batch, with copy-on-write and per-block undo snapshots. The totals
    hash is kept as integers while the batch runs."""

    def __init__(self, loaded: dict[str, Hash], loader: Loader | None, totals_key: str) -> None:
        self.orig = loaded
        self.cur: dict[str, Hash] = {}
        self.loader = loader
        self.block = -1
        self.undo: dict[str, Any] | None = None  # the current block's {"h": ..., "e": ...} when recording
        self.seen: set[str] = set()  # keys snapshotted in the current block
        self.tkey = totals_key
        self.tot: dict[str, int] = {f: int(v) for f, v in self._load(totals_key).items()}
        self.tseen = False

    def _load(self, key: str) -> Hash:
        if key in self.orig:
            return self.orig[key]
        if self.loader is None:
            raise KeyError(f"hash {key} was not prefetched and no loader was given")
        got = self.loader([key])
        value = got.get(key) or {}
        self.orig[key] = value
        return value

    def read(self, key: str) -> Hash:
        """Current value (do not modify)."""
        cur = self.cur.get(key)
        return cur if cur is not None else self._load(key)

    def write(self, key: str) -> Hash:
        """Current value, to modify in place."""
        h = self.cur.get(key)
        if h is None:
            h = dict(self._load(key))
            self.cur[key] = h
        if self.undo is not None and key not in self.seen:
            self.seen.add(key)
            self.undo["h"][key] = dict(h) if h else None
        return h

    def tadd(self, field: str, amount: int) -> None:
        """Adds `amount` to a totals field."""
        if amount:
            if self.undo is not None and not self.tseen:
                self.snapshot_totals()
            tot = self.tot
            tot[field] = tot.get(field, 0) + amount

    def snapshot_totals(self) -> None:
        """Records the totals before the current block's first change (undo)."""
        assert self.undo is not None
        self.tseen = True
        self.undo["h"][self.tkey] = self.totals() or None

    def totals(self) -> Hash:
        return {f: str(v) for f, v in self.tot.items()}

    def new_block(self, block: int, undo: dict[str, Any] | None) -> None:
        self.end_block()
        self.block = block
        self.undo = undo
        if undo is not None:
            self.seen = set(undo["h"])
            self.tseen = self.tkey in undo["h"]

    def end_block(self) -> None:
        """Shrinks the current block's undo snapshots to the fields the block changed:
        key -> None (the hash did not exist before) or {field: prior value, None if absent}; a
        job's ``history`` is left out (a rollback drops its entries above the fork point), but a
        hash whose only change is its history keeps an entry, ``{}``, so that a rollback still
        truncates it (ReserveReleased appends to a job's history and changes nothing else of it)."""
        undo = self.undo
        if undo is None:
            return
        shrunk: dict[str, Hash | None] = {}
        for key, prior in undo["h"].items():
            if prior is None:
                shrunk[key] = None
                continue
            now = self.totals() if key == self.tkey else self.cur.get(key, prior)
            # "history" is append-only with block numbers: a rollback truncates it instead.
            changed = {f: prior.get(f) for f, v in now.items() if prior.get(f) != v and f != "history"}
            changed.update({f: v for f, v in prior.items() if f not in now})
            if changed:
                shrunk[key] = changed
            elif now.get("history") != prior.get("history"):
                shrunk[key] = {}
        undo["h"] = shrunk
        self.undo = None


def _capped(value: Any) -> str | None:
    """`value` cut to MAX_STRING_BYTES of UTF-8 plus TRUNCATED_MARK, or None when it fits."""
    if value.__class__ is not str or len(value) <= MAX_STRING_BYTES // 4:  # 4 bytes a character at most
        return None
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_STRING_BYTES:
        return None
    return raw[:MAX_STRING_BYTES].decode("utf-8", "ignore") + TRUNCATED_MARK


def _cap_strings(ev: Event, names: tuple[str, ...]) -> Event:
    """`ev`, or a copy whose over-long string args (`names`) are cut (:func:`_capped`), each with
    an arg ``<name>Truncated`` (true) that the handler stores and the stream entry carries."""
    args = None
    for name in names:
        cut = _capped(ev.args.get(name))
        if cut is not None:
            if args is None:
                args = dict(ev.args)
            args[name] = cut
            args[name + "Truncated"] = True
    if args is None:
        return ev
    copy = Event(ev.name, ev.contract, ev.address, ev.block, ev.block_hash, ev.tx, ev.log_index, args)
    copy.timestamp = ev.timestamp
    return copy


def _truncated_flag(h: Hash, a: dict[str, Any], name: str) -> None:
    """Sets ``<name>Truncated`` in `h` from the event's args: ``1`` when the stored value was cut,
    ``0`` when a cut value is replaced by a whole one (hash fields are never removed)."""
    flag = name + "Truncated"
    if a.get(flag):
        h[flag] = "1"
    elif flag in h:
        h[flag] = "0"


def _history(job: Hash, ev: Event) -> None:
    """Appends `ev` (with the job's status after it) to the job's ``history`` JSON array."""
    # Names, statuses and 0x-hex hashes need no JSON escaping.
    entry = f'{{"event":"{ev.name}","status":"{job.get("status", "")}","block":{ev.block:d},"tx":"{ev.tx}","logIndex":{ev.log_index:d}}}'
    hist = job.get("history")
    job["history"] = "[" + entry + "]" if not hist or hist == "[]" else hist[:-1] + "," + entry + "]"


def _add(h: Hash, field: str, amount: int) -> None:
    if amount:
        h[field] = str(int(h.get(field) or 0) + amount)


class Reducer:
    """Turns events into Redis changes for one deployment's keys."""

    def __init__(self, keys: Keys, arg_types: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> None:
        """`arg_types` (event name -> argument names and ABI types, see
        ``LogDecoder.arg_types``) enables fast per-event stream formats."""
        self.keys = keys
        self._formats: dict[str, Callable[[dict[str, Any]], str]] = {}
        for name, types in (arg_types or {}).items():
            fmt = _args_formatter(types)
            if fmt is not None:
                self._formats[name] = fmt
        self._job_prefix = keys.prefix + ":job:"
        self._jobs_all = keys.jobs_all
        self._status_keys = {s: keys.jobs_by_status(s) for s in JOB_STATUSES}
        self._due_keys = {s: keys.due(s) for s in DUE_STATUSES}
        self._settled_key = keys.jobs_settled
        self._provider_prefix = keys.prefix + ":provider:"
        self._handlers: dict[str, Callable[[_State, Event, dict[str, Any]], dict[str, Any] | None]] = {
            name: getattr(self, "_on_" + name) for name in HANDLED_EVENTS
        }
        self._pkeys: dict[str, str] = {}  # address -> provider key (addresses repeat a lot)
        self._akeys: dict[str, str] = {}  # address -> account key

    def _provider_key(self, address: str) -> str:
        key = self._pkeys.get(address)
        if key is None:
            if len(self._pkeys) > 100_000:
                self._pkeys.clear()
            key = self._pkeys[address] = self.keys.provider(address)
        return key

    def _account_key(self, address: str) -> str:
        key = self._akeys.get(address)
        if key is None:
            if len(self._akeys) > 100_000:
                self._akeys.clear()
            key = self._akeys[address] = self.keys.account(address)
        return key

    # ------------------------------------------------------------------ prefetch

    def prefetch(self, events: Iterable[Event]) -> tuple[set[str], set[str]]:
        """(keys to read, keys known to be absent) for the first read round: the hashes the events
        touch that are named by the events themselves. A job whose first event in the batch is its
        JobPosted is new (job ids are never reused), so it needs no read."""
        k = self.keys
        out = {k.totals}
        first: dict[int, str] = {}
        for ev in events:
            a = ev.args
            name = ev.name
            job_id = a.get("jobId")
            if job_id is not None and name not in ("Slashed", "VerifierSlashed") and job_id not in first:
                first[job_id] = name
            if name == "JobPosted":
                out.add(k.params)  # the fee and audit fee of the job's parameter version
                if a["fromCredit"]:
                    out.add(self._account_key(a["requester"]))
            elif name in ("JobClaimed", "JobFinalized", "NoFaultFailure"):
                out.add(self._provider_key(a["provider"]))
                out.add(self._account_key(a["provider"]))
            elif name in ("JobCancelled", "JobExpired"):
                out.add(k.account(a["requester"]))
            elif name in ("Deposited", "Withdrawn"):
                out.add(k.account(a["account"]))
            elif ev.contract == "ProviderStaking" and "provider" in a:
                out.add(k.provider(a["provider"]))
            elif ev.contract == "VerificationCourt" and "verifier" in a:
                out.add(k.verifier(a["verifier"]))
            elif name in ("MarketParamsUpdated", "PauseSet", "StakingParametersUpdated", "CourtParamsSet"):
                out.add(k.params)
        absent: set[str] = set()
        job = k.job
        for job_id, name in first.items():
            (absent if name == "JobPosted" else out).add(job(job_id))
        return out, absent

    def related_keys(self, loaded: dict[str, Hash]) -> set[str]:
        """Accounts and providers named in already indexed jobs (second read round)."""
        out: set[str] = set()
        account, provider, job_prefix = self._account_key, self._provider_key, self._job_prefix
        for key, h in loaded.items():
            if h and key.startswith(job_prefix):
                for field in ("requester", "provider", "challenger"):
                    addr = h.get(field)
                    if addr:
                        out.add(account(addr))
                        if field == "provider":
                            out.add(provider(addr))
        return out - loaded.keys()

    # ------------------------------------------------------------------ memberships

    def due_membership(self, h: Hash) -> tuple[str, float] | None:
        """(due set, deadline) of a job hash in a live status with its deadline set, else None."""
        status = h.get("status")
        field = DUE_FIELDS.get(status) if status else None
        value = h.get(field) if field else None
        if not value:
            return None
        return self._due_keys[status], float(value)  # type: ignore[index]

    @staticmethod
    def settled_score(h: Hash) -> float | None:
        """The settled block of a settled job not yet compacted (its ``{p}:jobs:settled`` score), else None."""
        if h.get("status") not in _SETTLED or h.get("compacted"):
            return None
        block = h.get("settledBlock")
        return float(block) if block else None

    def memberships(self, key: str, h: Hash | None) -> dict[str, dict[str, float]]:
        """The sorted-set memberships a hash implies: sorted set -> {member: score}."""
        if not h:
            return {}
        k = self.keys
        if key.startswith(self._job_prefix):
            jid = h.get("id")
            if not jid:
                return {}
            score = float(jid)
            out = {self._jobs_all: {jid: score}}
            status_key = self._status_keys.get(h.get("status") or "")
            if status_key is not None:
                out[status_key] = {jid: score}
            if h.get("requester"):
                out[k.jobs_by_requester(h["requester"])] = {jid: score}
            for p in filter(None, h.get("providers", "").split(",")):
                out[k.jobs_by_provider(p)] = {jid: score}
            due = self.due_membership(h)
            if due is not None:
                out[due[0]] = {jid: due[1]}
            settled = self.settled_score(h)
            if settled is not None:
                out[self._settled_key] = {jid: settled}
            return out
        if key.startswith(self._provider_prefix) and h.get("id"):
            return {k.providers: {h["address"]: float(h["id"])}}
        return {}

    def membership_diff(
        self, key: str, before: Hash | None, after: Hash | None, zadd: dict[str, dict[str, float]], zrem: dict[str, list[str]]
    ) -> None:
        """Adds to `zadd`/`zrem` what changes when `key` goes from `before` to `after`."""
        if before and after:
            jid = after.get("id")
            if jid and jid == before.get("id") and before.get("requester") == after.get("requester") and key.startswith(self._job_prefix):
                # A job moving on: only its status, its providers and its deadlines can change (the
                # common case).
                old_status, new_status = before.get("status"), after.get("status")
                old_p, new_p = before.get("providers", ""), after.get("providers", "")
                old_due, new_due = self.due_membership(before), self.due_membership(after)
                old_settled, new_settled = self.settled_score(before), self.settled_score(after)
                if old_status == new_status and old_p == new_p and old_due == new_due and old_settled == new_settled:
                    return
                if old_settled != new_settled:
                    if new_settled is None:
                        zrem.setdefault(self._settled_key, []).append(jid)
                    else:
                        zadd.setdefault(self._settled_key, {})[jid] = new_settled
                if old_due != new_due:
                    if old_due is not None and (new_due is None or new_due[0] != old_due[0]):
                        zrem.setdefault(old_due[0], []).append(jid)
                    if new_due is not None:
                        zadd.setdefault(new_due[0], {})[jid] = new_due[1]
                score = float(jid)
                if old_status != new_status:
                    if old_status in self._status_keys:
                        zrem.setdefault(self._status_keys[old_status], []).append(jid)
                    if new_status in self._status_keys:
                        zadd.setdefault(self._status_keys[new_status], {})[jid] = score
                if old_p != new_p:
                    olds, news = set(filter(None, old_p.split(","))), set(filter(None, new_p.split(",")))
                    for p in news - olds:
                        zadd.setdefault(self.keys.jobs_by_provider(p), {})[jid] = score
                    for p in olds - news:
                        zrem.setdefault(self.keys.jobs_by_provider(p), []).append(jid)
                return
            if all(before.get(f) == after.get(f) for f in _INDEXED_FIELDS):
                return  # none of the fields the indexes derive from changed
        elif not before:  # a new hash: all its memberships are new
            for zkey, members in self.memberships(key, after).items():
                zadd.setdefault(zkey, {}).update(members)
            return
        old = self.memberships(key, before)
        new = self.memberships(key, after)
        if old == new:
            return
        for zkey, members in new.items():
            prev = old.get(zkey, {})
            for m, s in members.items():
                if prev.get(m) != s:
                    zadd.setdefault(zkey, {})[m] = s
        for zkey, members in old.items():
            nxt = new.get(zkey, {})
            for m in members:
                if m not in nxt:
                    zrem.setdefault(zkey, []).append(m)

    # ------------------------------------------------------------------ apply

    def apply(
        self,
        events: Sequence[Event],
        loaded: dict[str, Hash],
        loader: Loader | None = None,
        undo_from: int | None = None,
    ) -> BatchResult:
        """Reduce `events` (chain order) over the `loaded` hash values.

        Blocks numbered `undo_from` or higher get undo records; None records none (final blocks).
        `loaded` is taken over (values are not modified, but missing keys are added to it).
        """
        st = _State(loaded, loader, self.keys.totals)
        res = BatchResult()
        handlers = self._handlers
        formats = self._formats
        stream = res.stream
        append = stream.append
        block = -1
        for ev in events:
            name = ev.name
            if ev.block != block:
                block = ev.block
                if undo_from is not None and block >= undo_from:
                    st.new_block(block, res.undo.setdefault(block, {"h": {}, "e": []}))
                else:
                    st.new_block(block, None)
            handler = handlers.get(name)
            if handler is None:
                log.debug("no handler for %s; ignored", name)
                continue
            capped = STRING_ARGS.get(name)
            cut = None
            if capped is not None:
                cut_ev = _cap_strings(ev, capped)
                if cut_ev is not ev:
                    ev = cut_ev
                    cut = {n + "Truncated": True for n in capped if ev.args.get(n + "Truncated")}
            args = ev.args
            try:
                extra = handler(st, ev, args)
            except (KeyError, ValueError, TypeError) as exc:
                # An event the state does not support (e.g. a forged log): skip it, keep going.
                log.warning("skipping %s at block %d log %d: cannot apply (%s: %s)", name, block, ev.log_index, type(exc).__name__, exc)
                continue
            if cut:
                extra = {**extra, **cut} if extra else cut
            fmt = formats.get(name)
            if fmt is None:
                entry = stream_line(ev, extra)
            else:
                text = fmt(args)
                if extra:
                    more = _SPEC_VALID.get(tuple(extra.items())) if len(extra) == 1 else None
                    if more is None:
                        more = ",".join(f'"{k}":{_extra_value(v)}' for k, v in extra.items())
                    text = text[:-1] + ("," if len(text) > 2 else "") + more + "}"
                entry = f"event\t{name}\t{block:d}\t{ev.block_hash}\t{ev.tx}\t{ev.log_index:d}\t{text}"
            append(entry)
            if st.undo is not None:
                st.undo["e"].append(entry)
        res.events = len(stream)
        st.end_block()
        if st.tot:
            st.cur[st.tkey] = st.totals()
        res.values = st.cur
        orig, hset, zadd, zrem = st.orig, res.hset, res.zadd, res.zrem
        indexed = (self._job_prefix, self._provider_prefix)  # only these hashes imply memberships
        for key, h in st.cur.items():
            before = orig.get(key)
            if before:
                # The fields whose value differs (fields are never removed). Compared, not hashed:
                # an unchanged field is mostly the very string object it was copied from.
                get = before.get
                changed = {f: v for f, v in h.items() if get(f) != v}
            else:
                changed = h
            if changed:
                hset[key] = changed
                if key.startswith(indexed):
                    self.membership_diff(key, before, h, zadd, zrem)
        return res

    # ------------------------------------------------------------------ helpers

    _history = staticmethod(_history)

    @staticmethod
    def _set_status(st: _State, job: Hash, status: str) -> None:
        old = job.get("status")
        if old == status:
            return
        if st.undo is not None and not st.tseen:
            st.snapshot_totals()
        tot = st.tot
        if old:
            tot[old] = tot.get(old, 0) - 1
        tot[status] = tot.get(status, 0) + 1
        job["status"] = status
        if status in _SETTLED:
            job["settledBlock"] = str(st.block)

    def _job(self, st: _State, job_id: int) -> Hash:
        job = st.write(f"{self._job_prefix}{job_id}")  # = self.keys.job(job_id)
        if not job.get("status"):
            raise KeyError(f"job {job_id} was never posted")
        return job

    def _credit(self, st: _State, account: str, amount: int) -> None:
        if amount:
            acc = st.write(self._account_key(account))
            _add(acc, "withdrawable", amount)
            st.tadd("withdrawable", amount)

    def _provider(self, st: _State, address: str) -> Hash:
        p = st.write(self._provider_key(address))
        if not p:
            p.update(address=address, staked="0", locked="0", unbonding="0", releaseAt="0", jobsCompleted="0", jobsSlashed="0")
        return p

    def _unlock(self, st: _State, address: str, amount: int, completed: bool) -> None:
        if not address:
            return
        p = self._provider(st, address)
        _add(p, "locked", -amount)
        if completed:
            _add(p, "jobsCompleted", 1)
        st.tadd("locked", -amount)

    # ------------------------------------------------------------------ market: jobs

    def _on_JobPosted(self, st: _State, ev: Event, a: dict[str, Any]) -> dict[str, Any]:
        job_id = a["jobId"]
        terms = a["terms"]
        reward, pct, mode = terms["reward"], terms["collateralPct"], terms["verifyMode"]
        version = a["paramsVersion"]
        # f and A are the job's parameter version's (MarketParamsUpdated), as the contract takes them.
        params = st.read(self.keys.params)
        fee = reward * int(params[f"feeBps.v{version}"]) // 10_000
        audit_fee = 0 if mode == 1 else reward * int(params[f"auditFeeBps.v{version}"]) // 10_000
        if ev.timestamp is None:
            raise ValueError("JobPosted needs its block's timestamp (the claim deadline)")
        job = st.write(self.keys.job(job_id))
        if job.get("status"):
            log.warning("JobPosted for job %s that is already indexed (block %d); overwriting it", job_id, ev.block)
        else:
            st.tadd("jobs", 1)
        spec: bytes = a["spec"]
        valid, error, text = check_spec(spec, a["specHash"])
        job["id"] = str(job_id)
        job["requester"] = a["requester"]
        job["specHash"] = a["specHash"]
        job["reward"] = str(reward)
        job["fromCredit"] = str(a["fromCredit"])
        job["claimDeadline"] = str(ev.timestamp + terms["claimWindow"])
        job["claimWindow"] = str(terms["claimWindow"])
        job["maxRuntime"] = str(terms["maxRuntime"])
        job["challengeWindow"] = str(terms["challengeWindow"])
        job["collateralPct"] = str(pct)
        job["cpuSeconds"] = str(terms["cpuSeconds"])
        job["collateral"] = str(reward * pct // 100)
        job["fee"] = str(fee)
        job["auditFee"] = str(audit_fee)
        job["verifyMode"] = VERIFY_MODES[mode] if mode < len(VERIFY_MODES) else str(mode)
        job["auditBps"] = str(a["auditBps"])
        job["paramsVersion"] = str(version)
        job["deadline"] = "0"
        job["specValid"] = "1" if valid else "0"
        job["postedBlock"] = str(ev.block)
        job["postedTx"] = ev.tx
        if valid:
            job["specJson"] = text  # exactly the posted bytes, as UTF-8 text
        else:
            if len(spec) <= MAX_SPEC_BYTES:
                job["spec"] = "0x" + spec.hex()
            else:  # caller-chosen bytes beyond what any executor accepts: their length only
                job["specLength"] = str(len(spec))
            job["specError"] = error
            log.warning("job %s posted with an invalid spec: %s", job_id, error)
        self._set_status(st, job, "Open")
        st.tadd("escrowed", reward + fee + audit_fee)
        if a["fromCredit"]:
            self._credit(st, a["requester"], -a["fromCredit"])
        _history(job, ev)
        return _SPEC_VALID_EXTRA[valid]

    def _on_JobClaimed(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        provider = a["provider"]
        providers = job.get("providers", "")
        if provider not in providers.split(","):
            job["providers"] = providers + "," + provider if providers else provider
        collateral = a["collateral"]
        job["provider"] = provider
        job["collateral"] = str(collateral)
        job["submitDeadline"] = job["deadline"] = str(a["submitDeadline"])
        self._set_status(st, job, "Claimed")
        p = self._provider(st, provider)
        _add(p, "locked", collateral)
        st.tadd("locked", collateral)
        _history(job, ev)

    def _on_ResultSubmitted(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        job["failure"] = "0"
        job["commitment"] = a["commitment"]
        job["resultURI"] = a["resultURI"]
        _truncated_flag(job, a, "resultURI")
        job["anchorBlock"] = str(a["anchorBlock"])
        job["submittedBlock"] = str(ev.block)
        job["challengeDeadline"] = job["deadline"] = str(a["challengeDeadline"])
        self._set_status(st, job, "Submitted")
        _history(job, ev)

    def _on_FailureSubmitted(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        code = a["code"]
        job.update(
            failure="1",
            failureCode=str(code),
            failureReason=FAILURE_CODES[code] if code < len(FAILURE_CODES) else str(code),
            commitment=a["commitment"],
            challengeDeadline=str(a["challengeDeadline"]),
            anchorBlock=str(a["anchorBlock"]),
            submittedBlock=str(ev.block),
        )
        if a["challengeDeadline"]:  # an availability failure (deadline 0) settles in NoFaultFailure
            job["deadline"] = str(a["challengeDeadline"])
            self._set_status(st, job, "Submitted")
        self._history(job, ev)

    def _on_NoFaultFailure(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        """An availability failure settled at once: `providerFee` slashed (see Slashed) and burned,
        the rest of the collateral unlocked; `requesterFee` out of the escrowed fee, burned; the
        job reopened or expired with `refund` credited."""
        job = self._job(st, a["jobId"])
        provider_fee, requester_fee, refund = a["providerFee"], a["requesterFee"], a["refund"]
        _add(job, "noFaultFees", provider_fee + requester_fee)
        _add(job, "noFaults", 1)
        self._unlock(st, a["provider"], int(job.get("collateral") or 0) - provider_fee, False)
        tadd = st.tadd
        tadd("escrowed", -requester_fee)
        tadd("pendingBurn", provider_fee + requester_fee)
        tadd("burned", provider_fee + requester_fee)
        if a["reopened"]:
            _add(job, "fee", -requester_fee)
            job.update(provider="", deadline="0")
            self._set_status(st, job, "Open")
        else:
            job["refund"] = str(refund)  # (the chain keeps the submit deadline in `deadline`)
            self._set_status(st, job, "Expired")
            tadd("escrowed", -refund)
            tadd("refunded", refund)
            self._credit(st, job["requester"], refund)
        self._history(job, ev)

    def _on_JobFinalized(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        """An undrawn job after its challenge window. A result: provider += R + rebate (payout),
        the rest of the fee to the burn, A back to the requester. A failure: requester += R + fee
        (payout) + A."""
        job = self._job(st, a["jobId"])
        payout, emission, failure = a["payout"], a["emission"], a["failure"]
        job["payout"] = str(payout)
        job["emission"] = str(emission)
        self._set_status(st, job, "Finalized")
        self._unlock(st, a["provider"], int(job.get("collateral") or 0), not failure)
        reward, fee, audit_fee = int(job["reward"]), int(job.get("fee") or 0), int(job.get("auditFee") or 0)
        requester = job["requester"]
        tadd = st.tadd
        tadd("escrowed", -(reward + fee + audit_fee))
        if failure:
            self._credit(st, requester, payout + audit_fee)
            tadd("refunded", payout + audit_fee)
        else:
            burned = reward + fee - payout
            self._credit(st, a["provider"], payout)
            self._credit(st, requester, audit_fee)
            tadd("paid", payout)
            tadd("emitted", emission)
            tadd("refunded", audit_fee)
            tadd("pendingBurn", burned)
            tadd("burned", burned)
        _history(job, ev)

    def _on_VerificationStarted(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        job["court"] = a["court"]
        job["verificationBlock"] = str(ev.block)
        self._set_status(st, job, "Disputed")
        self._history(job, ev)

    def _on_JobSettled(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        """The court ended the job (see IJobMarket.settle's table): providerPayout to the provider,
        requesterRefund to the requester, toCourt to the court (the audit fee; for ProviderWrong the
        audit fee plus the collateral, which went from staking: see Slashed), burned to the burn."""
        job = self._job(st, a["jobId"])
        outcome = a["outcome"]
        name = OUTCOMES[outcome] if outcome < len(OUTCOMES) else str(outcome)
        provider_payout, refund, to_court, burned = a["providerPayout"], a["requesterRefund"], a["toCourt"], a["burned"]
        job.update(
            outcome=name,
            providerPayout=str(provider_payout),
            requesterRefund=str(refund),
            toCourt=str(to_court),
            burned=str(burned),
        )
        self._set_status(st, job, "Resolved")
        provider, requester = job.get("provider", ""), job["requester"]
        collateral = int(job.get("collateral") or 0)
        reward, fee, audit_fee = int(job["reward"]), int(job.get("fee") or 0), int(job.get("auditFee") or 0)
        tadd = st.tadd
        if name != "ProviderWrong":
            self._unlock(st, provider, collateral, provider_payout > 0)
            tadd("toCourt", to_court)
        else:  # ProviderWrong: A from the escrow, the collateral slashed to the court (Slashed)
            tadd("toCourt", audit_fee)
            tadd("slashedToCourt", to_court - audit_fee)
        self._credit(st, provider, provider_payout)
        self._credit(st, requester, refund)
        tadd("escrowed", -(reward + fee + audit_fee))
        tadd("paid", provider_payout)
        tadd("emitted", provider_payout - reward if provider_payout else 0)
        tadd("refunded", refund)
        tadd("pendingBurn", burned)
        tadd("burned", burned)
        self._history(job, ev)

    def _refund_job(self, st: _State, ev: Event, a: dict[str, Any], status: str) -> None:
        job = self._job(st, a["jobId"])
        refund = a["refund"]
        job["refund"] = str(refund)
        self._set_status(st, job, status)
        st.tadd("escrowed", -refund)
        st.tadd("refunded", refund)
        self._credit(st, a["requester"], refund)
        self._history(job, ev)

    def _on_JobCancelled(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        self._refund_job(st, ev, a, "Cancelled")

    def _on_JobExpired(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        self._refund_job(st, ev, a, "Expired")

    def _on_JobTimedOut(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        slashed, refund = a["slashed"], a["refund"]
        _add(job, "slashed", slashed)
        _add(job, "timeouts", 1)
        st.tadd("burned", slashed)  # a timeout burns the whole collateral (through pendingBurn)
        st.tadd("pendingBurn", slashed)
        if a["reopened"]:
            job.update(provider="", deadline="0")
            self._set_status(st, job, "Open")
        else:
            job["refund"] = str(refund)
            self._set_status(st, job, "TimedOut")
            st.tadd("escrowed", -refund)
            st.tadd("refunded", refund)
            self._credit(st, job["requester"], refund)
        self._history(job, ev)

    # ------------------------------------------------------------------ market: accounts and governance

    def _on_Deposited(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        self._credit(st, a["account"], a["amount"])
        st.tadd("deposited", a["amount"])

    def _on_Withdrawn(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        self._credit(st, a["account"], -a["amount"])
        st.tadd("withdrawn", a["amount"])

    def _on_MarketParamsUpdated(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        p = st.write(self.keys.params)
        for name, value in a["params"].items():
            if name == "paused":
                continue  # the guardian's flag: PauseSet
            p[name] = str(value)
        version = a["version"]
        p["paramsVersion"] = str(version)
        # Every version's fee and audit fee: a job's come from the version it was posted under.
        p[f"feeBps.v{version}"] = str(a["params"]["feeBps"])
        p[f"auditFeeBps.v{version}"] = str(a["params"]["auditFeeBps"])

    def _on_BurnFlushed(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        st.tadd("pendingBurn", -a["amount"])
        st.tadd("flushed", a["amount"])

    def _on_PauseSet(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        st.write(self.keys.params)["paused"] = "1" if a["paused"] else "0"

    # ------------------------------------------------------------------ staking

    def _on_ProviderRegistered(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        p = self._provider(st, a["provider"])
        p.update(
            id=str(a["id"]),
            staked=str(a["amount"]),
            endpoint=a["endpoint"],
            capabilityHash=a["capabilityHash"],
            registeredBlock=str(ev.block),
        )
        _truncated_flag(p, a, "endpoint")
        st.tadd("providers", 1)
        st.tadd("staked", a["amount"])

    def _on_Staked(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        self._provider(st, a["provider"])["staked"] = str(a["staked"])
        st.tadd("staked", a["amount"])

    def _on_UnstakeRequested(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        p = self._provider(st, a["provider"])
        p.update(staked=str(a["staked"]), unbonding=str(a["unbonding"]), releaseAt=str(a["releaseAt"]))
        st.tadd("staked", -a["amount"])
        st.tadd("unbonding", a["amount"])

    def _on_UnstakeWithdrawn(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        p = self._provider(st, a["provider"])
        p.update(unbonding="0", releaseAt="0")
        st.tadd("unbonding", -a["amount"])

    def _on_MetadataUpdated(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        p = self._provider(st, a["provider"])
        p.update(endpoint=a["endpoint"], capabilityHash=a["capabilityHash"])
        _truncated_flag(p, a, "endpoint")

    def _on_Slashed(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        p = self._provider(st, a["provider"])
        amount = a["amount"]
        _add(p, "staked", -amount)
        _add(p, "locked", -amount)
        _add(p, "jobsSlashed", 1)
        st.tadd("slashed", amount)
        st.tadd("staked", -amount)
        st.tadd("locked", -amount)

    def _on_StakingParametersUpdated(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        p = st.write(self.keys.params)
        p.update(minStake=str(a["minStake"]), unbondingDelay=str(a["unbondingDelay"]))

    # ------------------------------------------------------------------ court (VerificationCourt)
    # On the job hash: casePhase (Active, Tallied, Arbiter, Concluded), caseRound, platformClass,
    # snapshotBlock, courtParamsVersion, round fields of the last SeatsDrawn (roundK, redraws,
    # anchor, seatDeadline, commitDeadline, revealDeadline), courtDeadline (the next deadline after
    # which `redraw`/`advance` is due: the seat deadline, then a tally's window end, the arbiter's
    # executableAt), seats (JSON {"round.seat": {verifier, bond, state, commitment, digest, paid,
    # bondReturned, bondForfeited, slashed}}), providerDigest, tallies (JSON list), challenger and
    # challengeBond, appeals (JSON list), arbiterOutcome and arbiterExecutableAt, canaryDigest,
    # caseOutcome and the money of CaseConcluded (courtPaidSeats, courtBounty, courtRefunded,
    # courtBurned). On ``{p}:verifier:{address}``: platformClass, free, locked, unbonding,
    # releaseAt, seats, paid, bondsForfeited, noShows, slashed.

    def _verifier(self, st: _State, address: str) -> Hash:
        v = st.write(self.keys.verifier(address))
        if not v:
            v.update(address=address, free="0", locked="0", unbonding="0", releaseAt="0", seats="0", paid="0")
        return v

    @staticmethod
    def _seats(job: Hash) -> dict[str, dict[str, Any]]:
        raw = job.get("seats")
        return json.loads(raw) if raw else {}

    @staticmethod
    def _put_seats(job: Hash, seats: dict[str, dict[str, Any]]) -> None:
        job["seats"] = _JSON(seats)

    def _append_json(self, job: Hash, field: str, entry: dict[str, Any]) -> None:
        items = json.loads(job[field]) if job.get(field) else []
        items.append(entry)
        job[field] = _JSON(items)

    def _on_CourtParamsSet(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        p = st.write(self.keys.params)
        for name, value in a["params"].items():
            p["court." + name] = str(value)
        p["court.paramsVersion"] = str(a["version"])

    def _on_VerifierJoined(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        v = self._verifier(st, a["verifier"])
        v["platformClass"] = str(a["platformClass"])
        v["joinedBlock"] = str(ev.block)
        _add(v, "free", a["amount"])
        st.tadd("verifiers", 1)
        st.tadd("courtStaked", a["amount"])

    def _on_StakeAdded(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        _add(self._verifier(st, a["verifier"]), "free", a["amount"])
        st.tadd("courtStaked", a["amount"])

    def _on_LeaveRequested(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        v = self._verifier(st, a["verifier"])
        _add(v, "free", -a["amount"])
        v.update(unbonding=str(a["unbonding"]), releaseAt=str(a["releaseAt"]))
        st.tadd("courtStaked", -a["amount"])
        st.tadd("courtUnbonding", a["amount"])

    def _on_LeftWithdrawn(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        v = self._verifier(st, a["verifier"])
        _add(v, "unbonding", -a["amount"])
        st.tadd("courtUnbonding", -a["amount"])

    def _on_ClassLeft(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        # The verifier withdrew its whole stake and left its class (it may join again: VerifierJoined).
        v = self._verifier(st, a["verifier"])
        v["leftBlock"] = str(ev.block)
        st.tadd("verifiers", -1)

    def _on_VerifierDisplaced(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        # A larger joiner took its place in a full class; LeaveRequested (its stake to unbonding) came
        # before and ClassLeft (the count) comes after, in the same transaction.
        v = self._verifier(st, a["verifier"])
        v.update(displacedBy=a["by"], displacedBlock=str(ev.block))

    def _on_PlatformClassSet(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        self._provider(st, a["provider"])["platformClass"] = str(a["platformClass"])

    def _on_CaseOpened(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        job.update(
            casePhase="Active",
            caseRound=str(a["round"]),
            platformClass=str(a["platformClass"]),
            snapshotBlock=str(a["snapshotBlock"]),
            courtParamsVersion=str(a["paramsVersion"]),
            caseOpenedBlock=str(ev.block),
        )
        st.tadd("cases", 1)
        self._history(job, ev)

    def _on_SeatsDrawn(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        job.update(
            casePhase="Active",
            caseRound=str(a["round"]),
            roundK=str(a["k"]),
            redraws=str(a["redraws"]),
            anchor=str(a["anchor"]),
            seatDeadline=str(a["seatDeadline"]),
            commitDeadline=str(a["commitDeadline"]),
            revealDeadline=str(a["revealDeadline"]),
            courtDeadline=str(a["seatDeadline"]),
        )
        self._history(job, ev)

    def _on_SeatTaken(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        seats = self._seats(job)
        bond = a["bond"]
        lock = bond + a.get("reserve", 0)  # the bond and the seat's canary reserve
        seats[f"{a['round']}.{a['seat']}"] = {"verifier": a["verifier"], "bond": str(bond), "state": "Taken"}
        self._put_seats(job, seats)
        v = self._verifier(st, a["verifier"])
        _add(v, "free", -lock)
        _add(v, "locked", lock)
        _add(v, "seats", 1)
        st.tadd("courtStaked", -lock)
        st.tadd("courtLocked", lock)
        self._history(job, ev)

    def _seat_update(self, job: Hash, a: dict[str, Any], **fields: str) -> dict[str, Any]:
        seats = self._seats(job)
        seat = seats.setdefault(f"{a['round']}.{a['seat']}", {})
        seat.update(fields)
        self._put_seats(job, seats)
        return seat

    def _on_SeatCommitted(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        self._seat_update(job, a, state="Committed", commitment=a["commitment"])
        self._history(job, ev)

    def _on_SeatRevealed(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        self._seat_update(job, a, state="Revealed", digest=a["digest"])
        self._history(job, ev)

    def _on_ProviderRevealed(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        job["providerDigest"] = a["digest"]
        self._history(job, ev)

    def _on_SeatNoShow(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        burned, reserve = a["bondBurned"], a.get("reserveReturned", 0)
        self._seat_update(job, a, state="NoShow", bondForfeited=str(burned))
        v = self._verifier(st, a["verifier"])
        _add(v, "locked", -(burned + reserve))
        _add(v, "free", reserve)
        _add(v, "bondsForfeited", burned)
        _add(v, "noShows", 1)
        st.tadd("courtLocked", -(burned + reserve))
        st.tadd("courtStaked", reserve)
        # Held for the case's pot until CaseConcluded (which counts what of it is burned).
        _add(job, "heldBonds", burned)
        st.tadd("courtHeldBonds", burned)
        self._history(job, ev)

    def _on_ReserveReleased(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        """An agreeing audit's canary reserve back to free stake after the canary window (its bond
        stays locked: SeatSettled then returns the bond alone)."""
        job = self._job(st, a["jobId"])
        reserve = a["reserve"]
        v = self._verifier(st, a["verifier"])
        _add(v, "locked", -reserve)
        _add(v, "free", reserve)
        st.tadd("courtLocked", -reserve)
        st.tadd("courtStaked", reserve)
        self._history(job, ev)

    def _on_RoundTallied(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        tally = a["tally"]
        self._append_json(job, "tallies", {
            "round": a["round"], "tally": OUTCOMES[tally] if tally < len(OUTCOMES) else str(tally),
            "revealed": a["revealed"], "forProvider": a["forProvider"], "forTop": a["forTop"],
            "topDigest": a["topDigest"], "windowEnd": a["windowEnd"],
        })
        job.update(casePhase="Tallied", courtDeadline=str(a["windowEnd"]))
        self._history(job, ev)

    def _on_Challenged(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        job.update(challenger=a["challenger"], challengeBond=str(a["bond"]))
        _add(job, "heldBonds", a["bond"])
        st.tadd("courtHeldBonds", a["bond"])
        self._history(job, ev)

    def _on_Appealed(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        self._append_json(job, "appeals", {"round": a["round"], "appellant": a["appellant"], "bond": str(a["bond"])})
        _add(job, "heldBonds", a["bond"])
        st.tadd("courtHeldBonds", a["bond"])
        self._history(job, ev)

    def _on_ArbiterRuled(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        outcome = a["outcome"]
        job.update(
            casePhase="Arbiter",
            arbiter=a["arbiter"],
            arbiterOutcome=OUTCOMES[outcome] if outcome < len(OUTCOMES) else str(outcome),
            arbiterExecutableAt=str(a["executableAt"]),
            courtDeadline=str(a["executableAt"]),
        )
        self._history(job, ev)

    def _on_CanaryExposed(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        job.update(canaryDigest=a["canaryDigest"], canarySeatsCaught=str(a["seatsCaught"]), canarySlashed=str(a["slashed"]))
        self._history(job, ev)

    def _on_SeatSettled(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        paid, returned, forfeited = a["paid"], a["bondReturned"], a["bondForfeited"]
        self._seat_update(job, a, state="Settled", paid=str(paid), bondReturned=str(returned), bondForfeited=str(forfeited))
        v = self._verifier(st, a["verifier"])
        _add(v, "locked", -(returned + forfeited))
        _add(v, "free", returned)
        _add(v, "paid", paid)
        _add(v, "bondsForfeited", forfeited)
        st.tadd("courtLocked", -(returned + forfeited))
        st.tadd("courtStaked", returned)
        st.tadd("courtPaid", paid)

    def _on_VerifierSlashed(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        """A canary catch: `amount` = the seat's lock (bond and canary reserve, already forfeited in
        SeatSettled) plus the rest of bond + sigma*R, free first, then unbonding (as the court takes it)."""
        job = self._job(st, a["jobId"])
        who, amount = a["verifier"], a["amount"]
        seats = self._seats(job)
        bond = 0
        for seat in seats.values():
            # the caught seat was just settled (SeatSettled precedes each VerifierSlashed); a no-show
            # of the same verifier also forfeited a bond, but was never settled
            forfeited = seat.get("state") == "Settled" and int(seat.get("bondForfeited") or 0) > 0
            if seat.get("verifier") == who and forfeited and not seat.get("slashed"):
                bond = int(seat["bondForfeited"])
                seat["slashed"] = "1"
                break
        self._put_seats(job, seats)
        extra = max(0, amount - bond)
        v = self._verifier(st, who)
        from_free = min(int(v.get("free") or 0), extra)
        _add(v, "free", -from_free)
        _add(v, "unbonding", -(extra - from_free))
        _add(v, "slashed", amount)
        st.tadd("courtStaked", -from_free)
        st.tadd("courtUnbonding", -(extra - from_free))
        st.tadd("courtSlashed", amount)

    def _on_CaseConcluded(self, st: _State, ev: Event, a: dict[str, Any]) -> None:
        job = self._job(st, a["jobId"])
        outcome = a["outcome"]
        job.update(
            casePhase="Concluded",
            caseOutcome=OUTCOMES[outcome] if outcome < len(OUTCOMES) else str(outcome),
            courtReceived=str(a["toCourt"]),
            courtPaidSeats=str(a["paidSeats"]),
            courtBounty=str(a["bounty"]),
            courtRefunded=str(a["refunded"]),
            courtBurned=str(a["burned"]),
        )
        st.tadd("courtHeldBonds", -int(job.get("heldBonds") or 0))
        st.tadd("courtBounties", a["bounty"])
        st.tadd("courtRefunded", a["refunded"])
        st.tadd("courtBurned", a["burned"])
        self._history(job, ev)
