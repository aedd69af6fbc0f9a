"""Redis side of the indexer: atomic batch commits, rollbacks and the bookkeeping keys.

Atomicity: every commit (:meth:`Store.commit`, :meth:`Store.rollback`, :meth:`Store.initialize`)
is *one Lua script call* that first compares the cursor with the value the batch was computed
from (compare-and-set) and then runs all the batch's writes: changed hash fields, index changes,
stream entries (``XADD``), undo records, recent block hashes, pruning, the new cursor and the
``meta`` counters. Redis runs a script to the end before serving anything else, and a script is
only run once its whole call has arrived, so a crash of the indexer at any instant leaves either the
old state or the new one; a concurrent writer or a ``FLUSHALL`` in between makes the comparison fail
(the batch is then recomputed from what Redis holds). The writes travel as JSON (``cjson`` decodes
it server-side): one object of hash fields to set, key by key, and one array of the other commands;
building them is one C-speed ``msgspec`` encode each on the client, where redis-py's per-argument
encoding of a ``MULTI`` block cost 4x more.

Caveat (also true of ``MULTI``/``EXEC``): Redis does not roll back a script that fails half-way, which
only a foreign write of the wrong type under the prefix or a full ``maxmemory`` with an evicting
policy could cause. Give Redis ``maxmemory-policy noeviction`` and leave the prefix to the indexer.
The script touches keys it does not declare, so the prefix must live on one Redis node (standalone
or Sentinel; not Cluster).

Idempotency is guarded by the cursor compare-and-set, not by a per-log set: a batch covers the
blocks right after the cursor it was computed from and commits only if the cursor has not moved, so a
log (one ``(blockHash, logIndex)``) can never be applied twice, and each stream entry is appended
exactly once per application (a rollback appends a ``retraction``; a re-application of a canonical
block appends the event again).

Reads (the hashes a batch touches) are one pipelined round trip of ``HGETALL`` without a
transaction; they are consistent because the indexer is the only writer of the prefix and the
commit re-checks the cursor. Hashes written by recent commits, and hashes read before (absent ones
too), are served from a bounded write-through cache instead, which is dropped whenever a commit
fails or the cursor moves back.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import msgspec
import redis

from depin.errors import IndexerError
from depin.keys import DUE_STATUSES, SUMMARY_FIELDS, Keys
from depin.market import SETTLED_STATUSES
from indexer.metrics import COMMIT_SECONDS
from indexer.reducer import DUE_FIELDS, BatchResult, Hash, Reducer, retraction_line

log = logging.getLogger("indexer.store")

# KEYS[1]: the cursor, KEYS[2]: the events stream. ARGV[1]: the cursor's expected value ("" for
# none). ARGV[2]: JSON object {key: {field: value}} of hash fields to set first ("" for none): one
# HSET per key, the field list built in Lua. ARGV[3]: JSON array of the other commands, run in
# order. ARGV[4]: stream entries, one per line, fields separated by tabs in STREAM_FIELDS order (no
# JSON decoding: the entries are most of a batch's bytes). ARGV[5]: the stream's approximate maximum
# length ("" for unbounded): after appending, ``XTRIM MAXLEN ~`` (whole listpack nodes, cheap).
_COMMIT_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then
  return redis.error_reply('CURSOR_MOVED the cursor is ' .. (cur or 'absent'))
end
local call = redis.call
-- Everything is decoded and checked before the first write: a malformed argument fails the
-- script with nothing written (Redis does not roll back a script that fails half-way).
local hset = ARGV[2] ~= '' and cjson.decode(ARGV[2]) or nil
local cmds = cjson.decode(ARGV[3])
local s = ARGV[4]
local len = #s
local pos = 1
local find, sub = string.find, string.sub
local stream = KEYS[2]
local cuts = {}
local nc = 0
while pos <= len do
  local nl = find(s, '\\n', pos, true) or (len + 1)
  local t1 = find(s, '\\t', pos, true)
  local t2 = t1 and find(s, '\\t', t1 + 1, true)
  local t3 = t2 and find(s, '\\t', t2 + 1, true)
  local t4 = t3 and find(s, '\\t', t3 + 1, true)
  local t5 = t4 and find(s, '\\t', t4 + 1, true)
  local t6 = t5 and find(s, '\\t', t5 + 1, true)
  if not t6 or t6 > nl then
    return redis.error_reply('BAD_STREAM_LINE a stream entry line has fewer than 7 fields; nothing written')
  end
  cuts[nc + 1], cuts[nc + 2], cuts[nc + 3], cuts[nc + 4] = pos, t1, t2, t3
  cuts[nc + 5], cuts[nc + 6], cuts[nc + 7], cuts[nc + 8] = t4, t5, t6, nl
  nc = nc + 8
  pos = nl + 1
end
if hset then
  local a = {'HSET', false}
  for key, fields in pairs(hset) do
    a[2] = key
    local n = 2
    for f, v in pairs(fields) do
      a[n + 1] = f
      a[n + 2] = v
      n = n + 2
      if n >= 2000 then
        call(unpack(a, 1, n))
        n = 2
      end
    end
    if n > 2 then
      call(unpack(a, 1, n))
    end
  end
end
for i = 1, #cmds do
  call(unpack(cmds[i]))
end
for i = 1, nc, 8 do
  local p, t1, t2, t3, t4, t5, t6, nl = unpack(cuts, i, i + 7)
  call('XADD', stream, '*', 'kind', sub(s, p, t1 - 1), 'event', sub(s, t1 + 1, t2 - 1),
       'block', sub(s, t2 + 1, t3 - 1), 'blockHash', sub(s, t3 + 1, t4 - 1), 'tx', sub(s, t4 + 1, t5 - 1),
       'logIndex', sub(s, t5 + 1, t6 - 1), 'args', sub(s, t6 + 1, nl - 1))
end
if len > 0 and ARGV[5] ~= '' then
  call('XTRIM', stream, 'MAXLEN', '~', ARGV[5])
end
return #cmds
"""
# msgspec's JSON encoder: the same compact JSON as json.dumps(separators=(",", ":"),
# ensure_ascii=False), ~4x faster on a batch's megabytes of field values.
_JSON_COMMANDS = msgspec.json.Encoder().encode
_MAX_ARGS = 2000  # per command: Lua's unpack() stops near 8000 values
# The index's layout version, in ``{p}:meta`` field ``schema`` (absent: 1). 2 added the due sets
# (``{p}:jobs:due:{status}``); an older index gets them built on start (:meth:`Store.upgrade`).
# 3: JobMarket v2 and the VerificationCourt (job fields commitment, anchorBlock, fee, auditFee,
# verifyMode, auditBps, outcome, the court's case fields; ``{p}:verifier:{address}``; the Disputed
# due set scored by courtDeadline; totals pendingBurn, flushed, toCourt, court*). A v2 market is a
# new contract, hence a new prefix: an index of schema 2 belongs to a v1 market and keeps its layout
# (its due sets are built as for 2); no index is converted from v1 to v2 fields in place.
# 4: retention (``{p}:jobs:settled``, job field settledBlock); an older index gets them on start
# (:meth:`Store.build_settled_set`: the settling block is the last transition's).
INDEX_SCHEMA = 4
_UPGRADE_PAGE = 1000  # job hashes read per round trip while building the due sets


def _hset(key: str, mapping: dict[str, str]) -> list[str]:
    return ["HSET", key, *[x for kv in mapping.items() for x in kv]]


def _chunked(head: list[str], args: Sequence[str], step: int = 1) -> list[list[str]]:
    size = _MAX_ARGS - _MAX_ARGS % step
    return [[*head, *args[i : i + size]] for i in range(0, len(args), size)]


def _score(score: float) -> str:
    whole = int(score)
    return str(whole) if whole == score else repr(score)


@dataclass(frozen=True)
class Cursor:
    """The last block whose events are fully applied."""

    number: int
    hash: str

    def dumps(self) -> str:
        return json.dumps({"number": self.number, "hash": self.hash}, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes | None) -> Cursor | None:
        if raw is None:
            return None
        try:
            d = json.loads(raw)
            return cls(int(d["number"]), str(d["hash"]))
        except (ValueError, KeyError, TypeError):
            raise IndexerError(f"the cursor holds {raw!r}, not JSON {{number, hash}}; reset the index") from None


class CursorMoved(IndexerError):
    """The cursor changed under a batch (another writer, or Redis was wiped): recompute it."""


def ensure_text_client(client: redis.Redis) -> redis.Redis:
    """`client`, or a client on the same server that decodes responses to ``str``."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("decode_responses"):
        return client
    pool = client.connection_pool.__class__(
        connection_class=client.connection_pool.connection_class, **{**kwargs, "decode_responses": True}
    )
    return redis.Redis(connection_pool=pool)


class PendingCommit:
    """A commit script sent to Redis whose answer has not been read yet (see :meth:`Store.commit`)."""

    def __init__(self, store: Store, conn: Any, expected: Cursor | None, new: Cursor, args: tuple[Any, ...]) -> None:
        self.store, self.conn, self.expected, self.new, self.args = store, conn, expected, new, args
        self.sent_at = time.perf_counter()
        self._outcome: BaseException | None = None
        self._done = False

    def wait(self) -> None:
        """Reads the answer: returns once the batch is in Redis, raises CursorMoved if Redis refused
        it (the cursor was not the expected one) and the connection error if the answer was lost.
        Later calls repeat the first outcome."""
        if self._done:
            if self._outcome is not None:
                raise self._outcome
            return
        self._done = True
        try:
            self._read()
        except BaseException as exc:
            self._outcome = exc
            raise

    def _read(self) -> None:
        store, conn = self.store, self.conn
        pool = store.r.connection_pool
        try:
            try:
                conn.read_response()
            except redis.exceptions.NoScriptError:  # Redis restarted: nothing ran; send the script itself
                store._sha = None
                conn.send_command("EVAL", _COMMIT_SCRIPT, *self.args)
                conn.read_response()
            store._committed = self.new
            COMMIT_SECONDS.observe(time.perf_counter() - self.sent_at)
        except redis.ResponseError as exc:
            store.cache.clear()
            if "CURSOR_MOVED" in str(exc):
                raise CursorMoved(f"cursor is not {self.expected} any more ({exc})") from None
            if "BAD_STREAM_LINE" in str(exc):
                raise IndexerError(f"the commit script refused the batch, nothing was written: {exc}") from exc
            raise IndexerError(
                f"the commit script failed half-way, the index may be inconsistent: {exc}; "
                "reset the index (python -m indexer --reset)"
            ) from exc
        except BaseException:
            store.cache.clear()
            conn.disconnect()
            raise
        finally:
            pool.release(conn)


class Store:
    """Reads and atomic writes of one deployment's keys."""

    def __init__(
        self, client: redis.Redis, keys: Keys, reducer: Reducer, cache_size: int = 50_000, stream_max_len: int | None = None
    ) -> None:
        self.r = ensure_text_client(client)
        self.stream_max_len = stream_max_len  # None: the events stream is never trimmed by length
        self.keys = keys
        self.reducer = reducer
        self._sha: str | None = None  # SHA1 of the loaded commit script
        self.cache: OrderedDict[str, Hash] = OrderedDict()  # key -> value as last committed
        self.cache_size = cache_size
        self._committed: Cursor | None = None  # the cursor of this store's last commit
        # Times cursor() found a cursor this store did not commit last (a wipe, another writer, a
        # Redis restarted from an older snapshot): whoever keeps state derived from Redis reloads it.
        self.cursor_changes = 0

    # ------------------------------------------------------------------ reads

    def cursor(self) -> Cursor | None:
        """The cursor in Redis. When it is not the one this store last committed (a wipe, another
        writer, a Redis restarted from an older snapshot), the read cache is dropped and
        :attr:`cursor_changes` counts it."""
        cursor = Cursor.loads(self.r.get(self.keys.cursor))
        if cursor != self._committed:
            self.cache.clear()
            self._committed = cursor
            self.cursor_changes += 1
        return cursor

    def read_hashes(self, keys: Iterable[str], cached: bool = True) -> dict[str, Hash]:
        """Current values of hashes (missing keys map to ``{}``): from the write-through cache, the
        rest with HGETALL in one pipelined round trip. Values must not be modified."""
        out: dict[str, Hash] = {}
        missing = []
        cache = self.cache if cached else {}
        for key in keys:
            value = cache.get(key)
            if value is None:
                missing.append(key)
            else:
                out[key] = value
        if missing:
            pipe = self.r.pipeline(transaction=False)
            for key in missing:
                pipe.hgetall(key)
            values = pipe.execute()
            out.update(zip(missing, values))
            if cached:
                # What Redis holds is what the last commit left (the indexer is the only writer),
                # absent hashes included: caching them too spares the next batch a round trip that
                # would wait behind the commit script in flight.
                for key, value in zip(missing, values):
                    cache[key] = value
        return out

    def stored_blocks(self) -> dict[int, tuple[str, str]]:
        """Recent (not final) blocks: number -> (hash, parentHash)."""
        out = {}
        for number, value in self.r.hgetall(self.keys.blocks).items():
            h, _, parent = value.partition(":")
            out[int(number)] = (h, parent)
        return out

    def block_numbers(self) -> list[int]:
        return sorted(int(n) for n in self.r.hkeys(self.keys.blocks))

    # ------------------------------------------------------------------ transactions

    def _run(self, expected: Cursor | None, commands: list[list[str]], new: Cursor, stream: Sequence[str] = ()) -> None:
        """Runs `commands` (which set the cursor to `new`) and appends the `stream` entry lines
        atomically if the cursor still equals `expected` (None: no cursor)."""
        self._send(expected, None, commands, new, stream).wait()

    def _send(
        self,
        expected: Cursor | None,
        hset: dict[str, Hash] | None,
        commands: list[list[str]],
        new: Cursor,
        stream: Sequence[str],
    ) -> PendingCommit:
        """Sends the commit script (`hset` first: key -> fields to set, then `commands` in order,
        then the `stream` entries) on a connection of its own and returns without reading the
        answer, so that Redis runs it while the indexer prepares the next batch."""
        fields = _JSON_COMMANDS(hset) if hset else b""
        payload = _JSON_COMMANDS(commands)
        if self._committed != expected:
            self.cache.clear()
        self._committed = None
        if self._sha is None:
            self._sha = self.r.script_load(_COMMIT_SCRIPT)
        maxlen = str(self.stream_max_len) if self.stream_max_len else ""
        args = (2, self.keys.cursor, self.keys.events, expected.dumps() if expected else "", fields, payload, "\n".join(stream), maxlen)
        pool = self.r.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command("EVALSHA", self._sha, *args)
        except BaseException:
            conn.disconnect()
            pool.release(conn)
            self.cache.clear()
            raise
        return PendingCommit(self, conn, expected, new, args)

    def initialize(self, meta: dict[str, str], start: Cursor) -> bool:
        """Creates the cursor at `start` and writes `meta` when the prefix holds no cursor.

        Returns False (and writes nothing) when a cursor appeared meanwhile."""
        k = self.keys
        commands = [
            _hset(k.meta, {**meta, "schema": str(INDEX_SCHEMA), "eventsApplied": "0", "updatedAt": repr(time.time())}),
            ["SET", k.cursor, start.dumps()],
        ]
        try:
            self._run(None, commands, start)
            return True
        except CursorMoved:
            return False

    def commit(
        self,
        expected: Cursor,
        new: Cursor,
        result: BatchResult | None,
        blocks: dict[int, tuple[str, str]] | None = None,
        prune: Sequence[int] = (),
        meta: dict[str, str] | None = None,
        touched: dict[str, Hash] | None = None,
        wait: bool = True,
        drop_undo: Sequence[int] = (),
    ) -> PendingCommit | None:
        """Applies one batch atomically: writes, index changes, stream entries, undo records,
        recent block hashes (`blocks`), pruning of the block numbers in `prune` (their hashes and
        undo records) and of the undo records of `drop_undo` (blocks now final whose hash stays),
        the cursor advance from `expected` to `new`, and the meta counters.
        `touched` (the full new values of the written hashes) feeds the read cache. With
        ``wait=False`` it returns as soon as the batch is sent; its :meth:`PendingCommit.wait` must
        be called before anything else is sent through this store."""
        k = self.keys
        cmds: list[list[str]] = []
        if result is not None:
            for zkey, members in result.zrem.items():
                cmds += _chunked(["ZREM", zkey], members)
            for zkey, mapping in result.zadd.items():
                cmds += _chunked(["ZADD", zkey], [x for m, score in mapping.items() for x in (_score(score), m)], 2)
            for number, record in result.undo.items():
                cmds.append(["SET", k.undo(number), json.dumps(record, separators=(",", ":"), sort_keys=True)])
            if result.events:
                cmds.append(["HINCRBY", k.meta, "eventsApplied", str(result.events)])
        if blocks:
            cmds += _chunked(["HSET", k.blocks], [x for n, (h, p) in blocks.items() for x in (str(n), f"{h}:{p}")], 2)
        if prune:
            cmds += _chunked(["HDEL", k.blocks], [str(n) for n in prune])
            cmds += _chunked(["DEL"], [k.undo(n) for n in prune])
        if drop_undo:
            cmds += _chunked(["DEL"], [k.undo(n) for n in drop_undo])
        cmds.append(["SET", k.cursor, new.dumps()])
        if meta:
            cmds.append(_hset(k.meta, meta))
        pending = self._send(expected, result.hset if result is not None else None, cmds, new, result.stream if result is not None else ())
        if not wait:
            return pending
        pending.wait()
        if touched:
            cache = self.cache
            for key, value in touched.items():
                cache[key] = value
                cache.move_to_end(key)
            while len(cache) > self.cache_size:
                cache.popitem(last=False)
        return None

    def rollback(self, expected: Cursor, fork: Cursor, orphaned: Sequence[int], meta: dict[str, str] | None = None) -> int:
        """Undoes the blocks numbered `orphaned` (all blocks after the fork point `fork`, up to the
        cursor `expected`) from their undo records, newest first, in one transaction: restores every
        hash the blocks changed, recomputes the index memberships, appends a ``retraction`` stream
        entry for each undone event (newest first), deletes the blocks' hashes and undo records and
        moves the cursor back to `fork`. Returns the number of retracted events."""
        self.cache.clear()
        k = self.keys
        numbers = sorted(orphaned)
        pipe = self.r.pipeline(transaction=False)
        for n in numbers:
            pipe.get(k.undo(n))
        records = {n: json.loads(raw) for n, raw in zip(numbers, pipe.execute()) if raw}
        # Per key, the value before the oldest orphaned block: None (it did not exist), or the
        # changed fields' prior values (None: the field was absent), oldest block first.
        prior: dict[str, dict[str, str | None] | None] = {}
        for n in numbers:
            for key, fields in records.get(n, {}).get("h", {}).items():
                if key not in prior:
                    prior[key] = None if fields is None else dict(fields)
                elif prior[key] is not None and fields is not None:
                    for f, v in fields.items():
                        prior[key].setdefault(f, v)
        current = self.read_hashes(prior, cached=False)
        restored: dict[str, Hash] = {}
        for key, fields in prior.items():
            value: Hash = {}
            if fields is not None:
                value = dict(current.get(key) or {})
                for f, v in fields.items():
                    if v is None:
                        value.pop(f, None)
                    else:
                        value[f] = v
                if "history" in value:  # append-only: keep the transitions up to the fork point
                    kept = [h for h in json.loads(value["history"]) if h["block"] <= fork.number]
                    value["history"] = json.dumps(kept, separators=(",", ":"))
            restored[key] = value
        zadd: dict[str, dict[str, float]] = {}
        zrem: dict[str, list[str]] = {}
        for key, before in restored.items():
            self.reducer.membership_diff(key, current.get(key), before, zadd, zrem)
        cmds: list[list[str]] = []
        for key, value in restored.items():
            cmds.append(["DEL", key])
            if value:
                cmds.append(_hset(key, value))
        for zkey, members in zrem.items():
            cmds += _chunked(["ZREM", zkey], members)
        for zkey, mapping in zadd.items():
            cmds += _chunked(["ZADD", zkey], [x for m, score in mapping.items() for x in (_score(score), m)], 2)
        retractions = [retraction_line(line) for n in reversed(numbers) for line in reversed(records.get(n, {}).get("e", []))]
        retracted = len(retractions)
        if numbers:
            cmds += _chunked(["HDEL", k.blocks], [str(n) for n in numbers])
            cmds += _chunked(["DEL"], [k.undo(n) for n in numbers])
        if retracted:
            cmds.append(["HINCRBY", k.meta, "eventsApplied", str(-retracted)])
        cmds.append(["SET", k.cursor, fork.dumps()])
        if meta:
            cmds.append(_hset(k.meta, meta))
        self._run(expected, cmds, fork, retractions)
        return retracted

    # ------------------------------------------------------------------ retention

    def compact(self, upto_block: int, limit: int = 1000) -> int:
        """Compacts up to `limit` settled jobs whose settledBlock is at most `upto_block` (the caller
        keeps it below the reorg window): each job hash is replaced by its :data:`SUMMARY_FIELDS`
        plus ``compacted`` = 1 and ``compactedAt`` (the cursor block), and leaves
        ``{p}:jobs:settled``. One script call with the cursor compare-and-set, so it never
        interleaves with a batch; the totals, counters and every other index are untouched.
        Returns the number of jobs compacted."""
        k = self.keys
        cursor = self.cursor()
        if cursor is None:
            return 0
        ids: list[str] = list(self.r.zrangebyscore(k.jobs_settled, "-inf", upto_block, start=0, num=limit))  # type: ignore[arg-type]
        if not ids:
            return 0
        pipe = self.r.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(k.job(int(job_id)), list(SUMMARY_FIELDS))
        cmds: list[list[str]] = []
        summaries: dict[str, Hash] = {}
        for job_id, values in zip(ids, pipe.execute(), strict=True):
            key = k.job(int(job_id))
            summary = {f: v for f, v in zip(SUMMARY_FIELDS, values, strict=True) if v is not None}
            if summary.get("providers") == summary.get("provider"):
                summary.pop("providers", None)  # the usual single claimant: `provider` says it
            if not summary.get("status"):
                continue  # vanished (a reset in between): only the set entry goes
            summary["compacted"] = "1"
            summary["compactedAt"] = str(cursor.number)
            summaries[key] = summary
            cmds.append(["DEL", key])
            cmds.append(_hset(key, summary))
        cmds += _chunked(["ZREM", k.jobs_settled], list(ids))
        cmds.append(["HINCRBY", k.meta, "jobsCompacted", str(len(summaries))])
        self._run(cursor, cmds, cursor)
        for key, summary in summaries.items():
            if key in self.cache:
                self.cache[key] = summary
        return len(summaries)

    def trim_stream(self, max_age: float | None, now: float | None = None) -> int:
        """Drops events stream entries older than `max_age` seconds (``XTRIM MINID ~``: whole
        nodes, so a few older entries may stay). Returns the number of entries removed."""
        if not max_age:
            return 0
        cutoff_ms = int(((now if now is not None else time.time()) - max_age) * 1000)
        if cutoff_ms <= 0:
            return 0
        return int(self.r.xtrim(self.keys.events, minid=f"{cutoff_ms}-0", approximate=True))  # type: ignore[arg-type]

    def schema(self) -> int:
        """The layout version of the index in Redis (1 for an index written before versions)."""
        return int(self.r.hget(self.keys.meta, "schema") or 1)

    def upgrade(self) -> int:
        """Brings an index of an older layout to :data:`INDEX_SCHEMA` (schema 1: the due sets are
        built from the job hashes). Returns the schema found. The indexer is the only writer of the
        prefix and calls this before it applies anything, so no batch interleaves."""
        found = self.schema()
        if found < 2:
            built = self.build_due_sets()
            log.info("index upgraded to schema %d: due sets built for %d live jobs", INDEX_SCHEMA, built,
                     extra={"prefix": self.keys.prefix, "jobs": built})
        if found < 4:
            queued = self.build_settled_set()
            log.info("index upgraded to schema %d: %d settled jobs queued for compaction", INDEX_SCHEMA, queued,
                     extra={"prefix": self.keys.prefix, "jobs": queued})
        if found < INDEX_SCHEMA:
            self.r.hset(self.keys.meta, "schema", str(INDEX_SCHEMA))
        return found

    def build_due_sets(self) -> int:
        """(Re)builds every ``{p}:jobs:due:{status}`` set from the job hashes; returns the number of
        jobs in them."""
        fields = ["id", "status", *sorted(set(DUE_FIELDS.values()))]
        due: dict[str, dict[str, float]] = {}
        for start in range(0, int(self.r.zcard(self.keys.jobs_all)), _UPGRADE_PAGE):
            ids = self.r.zrange(self.keys.jobs_all, start, start + _UPGRADE_PAGE - 1)
            pipe = self.r.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(self.keys.job(int(job_id)), fields)
            for values in pipe.execute():
                membership = self.reducer.due_membership({f: v for f, v in zip(fields, values, strict=True) if v is not None})
                if membership is not None:
                    due.setdefault(membership[0], {})[values[0]] = membership[1]
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(*(self.keys.due(status) for status in DUE_STATUSES))
        for key, members in due.items():
            items = list(members.items())
            for i in range(0, len(items), _UPGRADE_PAGE):
                pipe.zadd(key, dict(items[i : i + _UPGRADE_PAGE]))
        pipe.execute()
        return sum(len(members) for members in due.values())

    def build_settled_set(self) -> int:
        """Sets settledBlock (the block of the last transition) on every settled, uncompacted job
        that lacks it and queues it in ``{p}:jobs:settled``; returns the number queued. For an
        index written before retention (schema < 4); the indexer calls it before applying anything."""
        k = self.keys
        queued = 0
        for status in sorted(SETTLED_STATUSES):
            key = k.jobs_by_status(status)
            for start in range(0, int(self.r.zcard(key)), _UPGRADE_PAGE):  # type: ignore[arg-type]
                ids = self.r.zrange(key, start, start + _UPGRADE_PAGE - 1)
                pipe = self.r.pipeline(transaction=False)
                for job_id in ids:  # type: ignore[union-attr]
                    pipe.hmget(k.job(int(job_id)), ["settledBlock", "compacted", "history"])
                write = self.r.pipeline(transaction=True)
                members: dict[str, float] = {}
                for job_id, (settled, compacted, history) in zip(ids, pipe.execute(), strict=True):  # type: ignore[arg-type]
                    if compacted:
                        continue
                    if not settled:
                        entries = json.loads(history) if history else []
                        if not entries:
                            continue
                        settled = str(entries[-1]["block"])
                        write.hset(k.job(int(job_id)), "settledBlock", settled)
                    members[job_id] = float(settled)
                if members:
                    write.zadd(k.jobs_settled, members)
                    write.execute()
                    queued += len(members)
        self.cache.clear()
        return queued

    def read_meta(self) -> dict[str, str]:
        """The index's meta hash (empty for no index)."""
        return cast(dict[str, str], self.r.hgetall(self.keys.meta))

    def touch_meta(self, meta: dict[str, str]) -> None:
        """Updates progress fields of meta (head, rate, time) outside any batch."""
        self.r.hset(self.keys.meta, mapping=meta)

    def reset(self) -> int:
        """Deletes every key of the prefix (the next run re-indexes from the deployment block)."""
        deleted = 0
        batch: list[str] = []
        self.cache.clear()
        for key in self.r.scan_iter(match=self.keys.pattern(), count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += self.r.delete(*batch)
                batch = []
        if batch:
            deleted += self.r.delete(*batch)
        return deleted
