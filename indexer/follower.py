"""The indexer loop: fetch logs, detect reorgs, reduce, commit; then follow the head.

The first pass checks the node against the deployment file before anything is written: its chain
id, and that the file names the genuine contracts (:func:`depin.deployment_check.check_contracts`,
the check ``Client.connect`` makes: the market's and token's code are the shipped ones, the
market's token, staking, randomness and court are the file's). A wrong file stops the indexer
(:class:`~depin.errors.IndexerError`, one line); a node that does not answer yet is waited for, and
so is one whose head is below the deployment block (still syncing: the contracts have no code
there yet; logged once); at or past that block, contracts that are absent or wrong are refused.
``--reset`` deletes the index only after this check passed (:meth:`Indexer.request_reset`). A
court changed by governance later (a ``MarketParamsUpdated`` naming a court other than the file's,
now the market's) stops the indexer before that block (:meth:`Indexer._check_court`).

One :meth:`Indexer.sync_once` call:

1. reads the head (``eth_blockNumber``) and the cursor from Redis (creating it just before the
   deployment block on a fresh Redis, or after a ``FLUSHALL``);
2. checks the cursor's block is still canonical (its hash against the node's block of that
   number); if not, walks back over the stored recent blocks to the newest one the node still has
   (the fork point), rolls the orphaned blocks back from their undo records (newest first, with a
   ``retraction`` stream entry per undone event) and moves the cursor there; a fork point that is
   not among the stored blocks, or more than ``finality_depth`` blocks below the cursor, raises
   :class:`~depin.errors.ReorgTooDeep`. A node that has no block at the cursor because it is behind
   (its head below the cursor, and its head block the stored one when it is kept) is no reorg:
   :class:`NodeBehind` is raised and :meth:`Indexer.run` waits for it;
3. repeats until the cursor reaches ``head - confirmations``: fetch the logs of the next range with
   one raw ``eth_getLogs`` (market, staking and court, the handled event topics), decode, reduce, and commit the
   batch in one Redis transaction with a compare-and-set on the cursor.

Two kinds of batch. Blocks at or below ``head - 2 * finality_depth`` (:attr:`Indexer.window`) are
*final*: their batch fetches
only the headers of its first block's parent and its last block (continuity, and the new cursor
hash) and writes no undo records or block hashes. Newer blocks are fetched with every header (one
JSON-RPC batch request) *before* their logs, and the last header is read again after the logs: the
first block's parent must be the cursor's block, each header's parent the previous header, the last
header unchanged, and every log's ``blockHash`` the header's hash for its number (otherwise the
chain moved during the fetch and the batch is fetched again; such a log is never skipped, and a
node that keeps disagreeing is waited for); their hashes and per-block undo
records are stored and pruned once they fall below ``head - 2 * finality_depth``.

Logs missing from an answer carry no hash to compare: a load-balanced node whose log backend lags
its headers answers ``[]`` for its newest blocks for a moment. Each header's ``logsBloom`` tells
whether the block may hold logs of the indexed contracts (one of their addresses and one of the
handled event topics in the bloom): a block whose bloom says so, but of which the answer has no
log, is not committed yet (the blocks before it are) and the pass ends; the next passes fetch it
again, and after :data:`LAGGING_LOGS_RETRIES` more answers without its logs it is taken as it is
(blooms have false positives; a warning is logged). A bloom so full that the match is likely by
chance (over :data:`BLOOM_MAX_CHANCE`: a busy block of a few dozen logs or more) tells nothing and
holds nothing: on a busy chain, ``confirmations`` (a lagging backend is seconds behind) is the
safeguard. Final batches have only two headers: the same check covers their last block (the batch
is held whole), not the blocks inside them, which are at least ``2 * finality_depth`` blocks old
when fetched: far past a lagging backend's moment.

Why twice the finality depth: a reorg to a *shorter* chain (a devnet's ``anvil_revert`` to an older
snapshot) lowers the head, and blocks that were more than ``finality_depth`` below the old head are
within ``finality_depth`` of the new cursor again. Such a reorg is at most ``finality_depth`` deep
(a deeper one raises ReorgTooDeep), so with ``2 * finality_depth`` blocks kept the next reorg within
``finality_depth`` of the new cursor still finds its fork point and every orphaned block's undo
record. Only a series of shorter-chain reorgs that ends more than ``2 * finality_depth`` below the
highest head followed can leave a later reorg with its fork point below the kept blocks (then
ReorgTooDeep, as for a reorg deeper than the finality depth). The ReorgTooDeep check itself is
unchanged: a fork point more than ``finality_depth`` below the cursor stops the indexer.

Final blocks are backfilled as a pipeline: a fetch thread gets the next range while the main
thread decodes and reduces the current one and Redis runs the previous batch's commit script (sent
without waiting; its answer is read before the next commit is sent). Batches still commit one at a
time, in order, each with the cursor compare-and-set, and the write-through read cache lets a batch
see the values of the one still in flight. ``eth_getLogs`` answers are read with
:class:`depin.chain.logs.LogFetcher` (msgspec straight into typed records) when the indexer owns its
HTTP transport, and the cyclic garbage collector is paused during the pipeline.

:meth:`Indexer.run` makes a pass at once for each new head the node announces (``newHeads`` over
the node's WebSocket, :class:`depin.chain.heads.HeadSubscription`, at
:meth:`~indexer.config.IndexerConfig.resolved_ws_url`) and otherwise every ``poll_interval``. The
subscription's thread only sets a wake-up event: every pass runs in ``run``'s thread exactly as a
poll does (the same reorg check, batches and commits), and a missing, refused or lost subscription
leaves the poll (the subscription retries with backoff in the background).

The ``eth_getLogs`` range adapts: it halves (down to ``min_range``) when the node rejects a range,
times out or fails twice in a row, and when an answer is larger than ``max_logs_bytes`` (that answer
is dropped unread: :class:`~depin.chain.logs.AnswerTooLarge`; over ``min_range`` blocks it is taken
whatever its size, or the indexer could not move on); it shrinks toward ``TARGET_LOGS`` logs and
toward a quarter of ``max_logs_bytes`` per request on dense ranges (many logs, or large ones: jobs
with big specs) and grows (doubling while nearly empty, else by a quarter, up to ``max_range``) on
sparse ones. Transient RPC failures are retried with capped exponential backoff; when the node stays away,
:meth:`Indexer.run` logs it and keeps polling with backoff instead of exiting.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import redis
from eth_utils import keccak

from depin.artifacts import load_abi
from depin.chain import RpcClient, RpcError, RpcUnavailable, backoff_delay, is_range_error, make_web3
from depin.chain.heads import HeadSubscription
from depin.chain.logs import AnswerTooLarge, LogFetcher, RawLog
from depin.deployment import Deployment, DeploymentFileError
from depin.deployment import load_deployment as load_deployment_from
from depin.deployment_check import NotGenuine, NotSyncedYet, check_contracts, current_court
from depin.errors import ChainError, IndexerError, ReorgTooDeep
from depin.keys import Keys
from indexer import metrics
from indexer.config import IndexerConfig
from indexer.decode import Event, LogDecoder
from indexer.reducer import HANDLED_EVENTS, TIMESTAMPED_EVENTS, BatchResult, Reducer
from indexer.store import Cursor, CursorMoved, PendingCommit, Store

log = logging.getLogger("indexer")

ZERO_HASH = "0x" + "00" * 32
HEADER_BATCH = 100  # headers per JSON-RPC batch request (hosted nodes often cap batches at 100)
MAX_UNFINAL_BATCH = 500  # blocks per batch near the head (each needs its header)
TARGET_LOGS = 4_000  # logs per eth_getLogs the range aims at: big enough to amortise, small enough to pipeline
LOG_JSON_OVERHEAD = 500  # bytes of a log's JSON besides its data (address, topics, hashes, keys): size estimates
INITIAL_RANGE = 16  # blocks of the first eth_getLogs; the range then adapts to the log density
RATE_WINDOW = 10.0  # seconds over which eventsPerSecond is measured
IDLE_SLICE = 0.25  # seconds: how soon run() sees a stop request while it waits for a head
GC_YOUNG_LIMIT = 500_000  # objects in the young GC generation that trigger a collection during a backfill
# Passes that fetch again a block whose header's logsBloom promises logs of the indexed contracts
# and events, but whose eth_getLogs answer has none, before it is taken as it is (a bloom false
# positive; logged as a warning). A load-balanced node's log backend that lags its headers answers
# [] for its newest blocks for a moment; committing that would lose the block's events for good.
LAGGING_LOGS_RETRIES = 3
# A bloom is only trusted when the indexed contracts' and events' bits are unlikely to be all set
# by chance: a busy block's bloom (a few dozen logs and more) has most of its 2048 bits set and
# matches anything; such a block is never held.
BLOOM_MAX_CHANCE = 0.01


def load_deployment(path: Path) -> Deployment:
    """The deployment recorded in `path` (``deployments/<chainId>.json``)."""
    try:
        return load_deployment_from(
            Path(path),
            require=("JobMarket", "ProviderStaking"),
            hint="deploy first (`ape run deploy --network ... --deployments-dir DIR`) and point DEPIN_DEPLOYMENT at "
            "DIR/<chainId>.json",
        )
    except DeploymentFileError as exc:
        raise IndexerError(str(exc)) from None


def bloom_bits(item: bytes) -> int:
    """The bits that `item` (a log's 20-byte address or a 32-byte topic) sets in a block header's
    2048-bit ``logsBloom`` (yellow paper 4.3.1): the low 11 bits of each of the first three byte
    pairs of its keccak256, as bit numbers of the bloom read as one big-endian integer."""
    digest = keccak(item)
    bits = 0
    for i in (0, 2, 4):
        bits |= 1 << (((digest[i] << 8) | digest[i + 1]) & 2047)
    return bits


def bloom_promises(bloom: int, addresses: Sequence[int], topics: Sequence[int]) -> bool:
    """Whether a block's logsBloom (as an integer) says it holds a log of one of `addresses` with
    one of `topics` (their :func:`bloom_bits`), as far as a bloom can tell: False too when the
    bloom is so full that such a match would happen by chance more often than BLOOM_MAX_CHANCE."""
    if not (any(bloom & bits == bits for bits in addresses) and any(bloom & bits == bits for bits in topics)):
        return False
    p = (bloom.bit_count() / 2048) ** 3  # chance that an item's 3 bits are all set
    return (1 - (1 - p) ** len(addresses)) * (1 - (1 - p) ** len(topics)) <= BLOOM_MAX_CHANCE


def _log_block(log_: Any) -> int | None:
    """A raw log's block number (None for a log too malformed to tell: the decoder skips it)."""
    try:
        return int(log_.blockNumber if log_.__class__ is RawLog else log_["blockNumber"], 16)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _estimated_bytes(logs: list[Any]) -> int:
    """About the JSON size of `logs` (dicts from web3's path, where the body's size is not known):
    their data's hex plus a fixed overhead per log."""
    size = LOG_JSON_OVERHEAD * len(logs)
    for log_ in logs:
        try:
            data = log_["data"]
        except (KeyError, TypeError):
            continue
        size += len(data) if isinstance(data, (str, bytes)) else 2 * len(bytes(data))
    return size


class NodeBehind(ChainError):
    """The node's head is below the cursor and every block it has that the index can compare
    matches: it is lagging (a failover to a replica that is behind), not reorganised. Retried with
    backoff like an unreachable node; nothing is rolled back."""


class _ChainMoved(Exception):
    """The node's chain changed between two reads of one batch: fetch the batch again."""


class Indexer:
    """Indexes one deployment's market, staking and court events into Redis (see the module docstring)."""

    def __init__(self, config: IndexerConfig, redis_client: redis.Redis | None = None, web3: Any = None) -> None:
        self.config = config
        self.deployment = load_deployment(config.deployment_file)
        addrs = self.deployment.addresses
        self.market, self.staking = addrs["JobMarket"], addrs["ProviderStaking"]
        self.keys = Keys(self.deployment.chain_id, self.market, config.namespace)
        self.web3 = web3 if web3 is not None else make_web3(config.rpc_url, config.rpc_timeout)
        self.rpc = RpcClient(
            self.web3, retries=config.rpc_retries, backoff_base=config.backoff_base, backoff_cap=config.backoff_cap
        )
        # eth_getLogs, the bulk of the bytes, skips web3 (see depin.chain.logs) when we own the transport.
        self._logs = (
            LogFetcher(config.rpc_url, config.rpc_timeout)
            if web3 is None and config.rpc_url.startswith(("http://", "https://"))
            else None
        )
        client = redis_client if redis_client is not None else redis.Redis.from_url(config.redis_url, decode_responses=True)
        contracts = {"JobMarket": (self.market, load_abi("JobMarket")), "ProviderStaking": (self.staking, load_abi("ProviderStaking"))}
        # The court's events (audits, juries, verifiers' stakes). A deployment whose court is the
        # TestCourt stand-in has the address too: it emits none of them.
        self.court = addrs.get("VerificationCourt")
        if self.court:
            contracts["VerificationCourt"] = (self.court, load_abi("VerificationCourt"))
        self.decoder = LogDecoder(contracts, events=HANDLED_EVENTS)
        self.reducer = Reducer(self.keys, self.decoder.arg_types())
        self.store = Store(client, self.keys, self.reducer, stream_max_len=config.stream_max_len or None)
        self._retained_at = float("-inf")  # monotonic time of the last retention pass
        self._topics = [self.decoder.topics]  # topic0 in any of the handled events
        self._stamp_topics = self.decoder.topics_of(TIMESTAMPED_EVENTS)  # their blocks' headers are needed
        # logsBloom bits of the indexed contracts and of the handled events (_held_from).
        self._bloom_addresses = [bloom_bits(bytes.fromhex(a[2:])) for a in self.decoder.addresses]
        self._bloom_topics = [bloom_bits(bytes.fromhex(t[2:])) for t in self.decoder.topics]
        self._unanswered: dict[tuple[int, str], tuple[int, int]] = {}  # (block, hash) -> (passes seen, last pass)
        self._passes = 0  # _sync calls
        self._held = False  # this pass stopped before a block whose logs the answer lacked
        self.range = max(config.min_range, min(config.max_range, INITIAL_RANGE))
        # Blocks below the head whose hashes and undo records are kept (see the module doc): twice
        # the finality depth, so a reorg to a shorter chain leaves a full finality depth below it.
        self.window = 2 * config.finality_depth
        self._chain_checked = False
        self._reset_pending = False  # request_reset(): delete the prefix's keys once the check passed
        self._schema_checked = False
        self._built_with_checked = False  # _check_built_with ran (once per process, before meta is written)
        self._stored: set[int] | None = None  # block numbers in {p}:blocks (None: reload)
        self._stored_changes = 0  # store.cursor_changes when _stored was loaded
        self._rate: deque[tuple[float, int]] = deque()
        self._sleep: Callable[[float], None] = time.sleep
        self._moved = 0  # consecutive fetches that saw the chain change
        self._lagging = False  # the node was seen behind the cursor (logged once until it is past it)
        self._syncing_logged = False  # the node was seen below the deployment block at start-up (logged once)
        self._old_courts: set[str] = set()  # earlier courts of the market already logged (_check_court)
        self._wake = threading.Event()  # set by the new-head subscription (and a stop signal)
        self.heads: HeadSubscription | None = None  # run()'s new-head subscription, while it runs
        self.head = 0

    # ------------------------------------------------------------------ public

    def sync_once(self) -> int:
        """One poll: handle a reorg if there is one, then fetch and apply everything up to
        ``head - confirmations``. Returns the number of events applied."""
        return self._sync(None)

    def request_reset(self) -> None:
        """Deletes the prefix's keys (a re-index from the deployment block) at the start of the
        next pass, once the node and the deployment file passed the start-up check: a file that
        keeps the genuine market but names other contracts is refused with the index untouched."""
        self._reset_pending = True

    def run(self, stop: threading.Event | None = None) -> None:
        """Follows the head until `stop` is set or SIGTERM/SIGINT arrives: a pass at once for each
        head the node announces (``newHeads`` at ``config.resolved_ws_url()``, when there is one)
        and otherwise every ``poll_interval``; a stop request finishes the current batch, logs and
        returns. A node or Redis that goes away is
        waited for (logged, capped backoff); a reorg deeper than the finality depth raises
        :class:`ReorgTooDeep` after logging it at CRITICAL level."""
        stop = stop if stop is not None else threading.Event()
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():

            def request_stop(signum: int, _frame: Any) -> None:
                log.info("stop requested (%s): finishing the current batch", signal.Signals(signum).name, extra={"signal": signal.Signals(signum).name})
                stop.set()
                self._wake.set()

            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, request_stop)
        log.info(
            "indexer running for %s (chain %d, market %s) from block %d",
            self.keys.prefix, self.deployment.chain_id, self.market, self.deployment.deploy_block,
            extra={"prefix": self.keys.prefix, "chain_id": self.deployment.chain_id, "deploy_block": self.deployment.deploy_block},
        )
        heads = self.heads = self._subscribe()
        failures = 0
        try:
            while not stop.is_set():
                self._wake.clear()  # a head announced from here on wakes the next pass
                try:
                    self._sync(stop)
                    failures = 0
                except ReorgTooDeep as exc:
                    log.critical("STOPPING: %s", exc, extra={"error": "ReorgTooDeep"})
                    raise
                except ChainError as exc:
                    delay = backoff_delay(failures, max(self.config.poll_interval, self.config.backoff_base), self.config.backoff_cap)
                    failures += 1
                    if isinstance(exc, NodeBehind):  # logged once, when first seen
                        log.debug("%s; retrying in %.1fs", exc, delay)
                        stop.wait(delay)
                        continue
                    log.warning("reading the chain failed (node unavailable, or its chain kept changing), retrying in %.1fs: %s", delay, exc, extra={"retry_in_s": delay, "failures": failures})
                    stop.wait(delay)
                    continue
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                    delay = backoff_delay(failures, max(self.config.poll_interval, self.config.backoff_base), self.config.backoff_cap)
                    failures += 1
                    self._stored = None
                    log.warning("Redis unavailable, retrying in %.1fs: %s", delay, exc, extra={"retry_in_s": delay, "failures": failures})
                    stop.wait(delay)
                    continue
                self._idle(stop, self.config.poll_interval)
        finally:
            if heads is not None:
                heads.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        cursor = self._safe_cursor()
        log.info("indexer stopped cleanly at block %s", cursor.number if cursor else "-", extra={"cursor": cursor.number if cursor else None})

    # ------------------------------------------------------------------ the loop

    def _subscribe(self) -> HeadSubscription | None:
        """Starts the new-head subscription (None without a WebSocket URL). Its thread only sets
        the wake-up event: every pass still runs in :meth:`run`'s thread, in order, exactly as a
        poll does, so reorg handling, atomic commits and restarts are unchanged."""
        url = self.config.resolved_ws_url()
        if url is None:
            log.info("no WebSocket URL: polling every %.2fs", self.config.poll_interval)
            return None
        return HeadSubscription(url, lambda _number: self._wake.set(), backoff_cap=max(self.config.backoff_cap, 30.0)).start()

    def _idle(self, stop: threading.Event, seconds: float) -> None:
        """Waits up to `seconds` for a new head (the wake-up event) or `stop`. The caller's `stop`
        cannot wake an Event wait on another event, so the wait is sliced (IDLE_SLICE): a stop
        request is seen within a slice, a head at once."""
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self._wake.wait(min(left, IDLE_SLICE)):
                return

    def _safe_cursor(self) -> Cursor | None:
        try:
            return self.store.cursor()
        except (redis.RedisError, IndexerError):
            return None

    def _check_chain(self) -> None:
        if self._chain_checked:
            return
        chain_id = self.rpc.chain_id()
        if chain_id != self.deployment.chain_id:
            raise IndexerError(
                f"the node at {self.rpc.shown_url} is chain {chain_id}, but {self.config.deployment_file} "
                f"records chain {self.deployment.chain_id}: point DEPIN_RPC_URL and DEPIN_DEPLOYMENT at the same chain"
            )
        try:  # the check Client.connect makes; a node that does not answer is a ChainError: run() waits
            check_contracts(self.rpc, self.deployment)
        except NotSyncedYet as exc:  # a node still syncing (below the deployment block, or in its middle): waited for
            if not self._syncing_logged:
                self._syncing_logged = True
                at = f"past the deployment block {exc.deploy_block}, but {exc.partial}" if exc.partial else f"the deployment block {exc.deploy_block}"
                log.warning(
                    "the node is behind the deployment: its head is block %d, %s; waiting for it to catch up (nothing written)",
                    exc.head, at, extra={"head": exc.head, "deploy_block": exc.deploy_block},
                )
            raise NodeBehind(f"the node's head {exc.head} has not reached the end of the deployment (block {exc.deploy_block} on)") from None
        except NotGenuine as exc:  # at or past the deployment block: refused
            raise IndexerError(f"{self.config.deployment_file}: {exc}") from None
        self._chain_checked = True

    def _check_built_with(self) -> None:
        """Compares the index in Redis with the deployment file before anything is written (the
        meta's ``court`` is rewritten at every pass). An index built from another deployment block
        is refused with one line: built from a later block it lacks events, from an earlier one it
        holds what this file says is not the deployment's (`--reset` rebuilds it from the file's).
        An index that followed another court is rebuilt from the deployment block, with a warning:
        after governance moved the market to a new court, the restart the stop asked for went on
        from the cursor, so the new court's events from before it (verifiers joining and staking
        before the switch, its parameters) were never fetched and its later events were applied
        onto the old court's verifiers and totals (found by review, stop 56). The index is a cache
        of the chain: a rebuild loses nothing the chain holds."""
        meta = self.store.read_meta()
        if not meta or self.store.cursor() is None:
            return
        built = meta.get("deployBlock", "")
        if built and built != str(self.deployment.deploy_block):
            raise IndexerError(
                f"the index under {self.keys.prefix} was built from block {built}, but {self.config.deployment_file} "
                f"names block {self.deployment.deploy_block} as the deployment block; run with --reset to rebuild it "
                "from the file's block (or use the file the index was built with)"
            )
        followed, court = meta.get("court", ""), self.court or ""
        if followed and followed.lower() != court.lower():
            log.warning(
                "the index followed court %s; %s names court %s: rebuilding the index from the deployment block, so "
                "that the new court's earlier events are indexed and nothing of the old court's verifiers is mixed in",
                followed, self.config.deployment_file, court or "(none)", extra={"court": court, "followed": followed},
            )
            self._reset_pending = True

    def _meta(self) -> dict[str, str]:
        now = time.time()
        while self._rate and self._rate[0][0] < now - RATE_WINDOW:
            self._rate.popleft()
        span = max(now - self._rate[0][0], 1.0) if self._rate else RATE_WINDOW
        rate = sum(n for _, n in self._rate) / span if self._rate else 0.0
        return {
            "head": str(self.head),
            "updatedAt": repr(now),
            "eventsPerSecond": f"{rate:.1f}",
            "confirmations": str(self.config.confirmations),
            "finalityDepth": str(self.config.finality_depth),
            # The court whose events this index follows (the deployment file's): written at every
            # pass, so that a restart with the deployer's new file after a court change says so.
            "court": self.court or "",
        }

    def _initialize(self) -> Cursor:
        start = self.deployment.deploy_block - 1
        header = self.rpc.get_block(start) if start >= 0 else None
        if start >= 0 and header is None:
            raise IndexerError(f"the node has no block {start} (before the deployment block); is it the right chain?")
        cursor = Cursor(start, header["hash"] if header else ZERO_HASH)
        meta = {
            "chainId": str(self.deployment.chain_id),
            "market": self.market,
            "staking": self.staking,
            "deployBlock": str(self.deployment.deploy_block),
            **self._meta(),
        }
        if self.store.initialize(meta, cursor):
            log.info("new index at %s: starting at block %d", self.keys.prefix, self.deployment.deploy_block, extra={"prefix": self.keys.prefix})
        self._stored = None
        found = self.store.cursor()
        if found is None:
            raise CursorMoved("the cursor vanished right after initialisation")
        return found

    def _sync(self, stop: threading.Event | None) -> int:
        self._check_chain()
        if not self._built_with_checked:
            self._check_built_with()
            self._built_with_checked = True
        if self._reset_pending:
            deleted = self.store.reset()
            self._reset_pending = False
            self._stored = None
            log.warning("reset: deleted %d keys under %s", deleted, self.keys.prefix, extra={"prefix": self.keys.prefix})
        self._passes += 1
        self._held = False
        self.head = self.rpc.block_number()
        applied = 0
        moved = 0
        while True:
            try:
                cursor = self.store.cursor()
                if cursor is None:
                    cursor = self._initialize()
                if not self._schema_checked:
                    self.store.upgrade()  # an index written by an older indexer gets the newer keys
                    self._schema_checked = True
                cursor = self._ensure_canonical(cursor)
                metrics.progress(self.head, cursor.number, cursor.number >= self.head - self.config.confirmations)
                if self._stored is None or self._stored_changes != self.store.cursor_changes:
                    # Reloaded too when the cursor was not this indexer's last commit: a Redis
                    # restored from an older snapshot (redis-py reconnects without an error) has
                    # the block hashes and undo records of that time, which must be pruned.
                    self._stored_changes = self.store.cursor_changes
                    self._stored = set(self.store.block_numbers())
                target = self.head - self.config.confirmations
                final_target = min(target, self.head - self.window)
                if cursor.number < final_target:
                    try:
                        cursor, n = self._backfill(cursor, final_target, stop)
                        self._moved = 0
                    except _ChainMoved as exc:
                        self._moved += 1
                        if self._moved > 20:
                            self._give_up_this_poll(exc)
                        log.info("chain moved during the backfill (%s); re-reading the cursor", exc)
                        continue
                    applied += n
                    if self._held or (stop is not None and stop.is_set()):
                        return applied
                while cursor.number < target:
                    try:
                        cursor, n = self._step(cursor, target)
                        self._moved = 0
                    except _ChainMoved as exc:
                        self._moved += 1
                        if self._moved > 20:
                            self._give_up_this_poll(exc)
                        log.info("chain moved during a fetch (%s); fetching again", exc)
                        self._sleep(min(self.config.poll_interval, 0.1 * self._moved))
                        self.head = self.rpc.block_number()
                        break
                    applied += n
                    if self._held or (stop is not None and stop.is_set()):
                        return applied  # held: the next pass fetches the block's logs again
                else:
                    metrics.progress(self.head, cursor.number, True)
                    metrics.EVENTS_RATE.set(float(self._meta()["eventsPerSecond"]))
                    self.store.touch_meta(self._meta())
                    if time.monotonic() - self._retained_at >= self.config.retention_interval:
                        self.retain(cursor)
                    return applied
            except CursorMoved as exc:
                moved += 1
                self._stored = None
                log.warning("the cursor moved under the indexer (%s); re-reading it", exc)
                if moved > 5:
                    raise IndexerError(
                        f"the cursor of {self.keys.prefix} keeps changing under this indexer: "
                        "is another indexer writing the same prefix? Run only one per deployment."
                    ) from exc

    def _give_up_this_poll(self, exc: Exception) -> NoReturn:
        """After 20 fetches in a row that saw the chain change (a node busy re-mining a reorg can
        answer a head whose blocks it does not serve yet): a ChainError, so that :meth:`run` backs
        off and polls again, as for a node that is away. It used to stop the indexer."""
        self._moved = 0
        raise ChainError(f"the node's chain keeps changing under the indexer ({exc}); giving up this poll") from None

    def retain(self, cursor: Cursor | None = None) -> tuple[int, int]:
        """One retention pass (see :mod:`indexer.config`): compacts the settled jobs settled at or
        below ``min(cursor, head - 2 * finality_depth) - compact_after`` (below the blocks a
        rollback can reach: :attr:`window`) and trims the events stream by age. Returns (jobs
        compacted, stream entries trimmed)."""
        self._retained_at = time.monotonic()
        compacted = 0
        cfg = self.config
        if cursor is None:
            cursor = self.store.cursor()
        if cfg.compact_after >= 0 and cursor is not None:
            upto = min(cursor.number, self.head - self.window) - cfg.compact_after
            while upto >= 0:
                n = self.store.compact(upto, cfg.compact_batch)
                compacted += n
                if n < cfg.compact_batch:
                    break
        trimmed = self.store.trim_stream(cfg.stream_max_age)
        if compacted or trimmed:
            log.info("retention: %d settled jobs compacted, %d stream entries trimmed", compacted, trimmed,
                     extra={"compacted": compacted, "trimmed": trimmed})
        return compacted, trimmed

    def _ensure_canonical(self, cursor: Cursor) -> Cursor:
        """The cursor if its block is still canonical, else the fork point after a rollback."""
        if cursor.number < 0:
            return cursor
        header = self.rpc.get_block(cursor.number)
        if header is not None and header["hash"] == cursor.hash:
            self._lagging = False
            return cursor
        if header is None and self.head < cursor.number:
            self._check_lagging(cursor)
        return self._rollback_to_fork(cursor)

    def _check_lagging(self, cursor: Cursor) -> None:
        """The node has no block at the cursor and its head is below it: raises
        :class:`NodeBehind` (run() waits, nothing is rolled back) unless the node's head block is
        one of the stored recent blocks with another hash (then it is a reorg to a shorter chain,
        rolled back by the caller). A head below the stored blocks cannot be compared: it is waited
        for too (when the node is past the cursor again, the cursor's hash is checked as ever)."""
        head = self.head
        known = self.store.stored_blocks().get(head)
        if known is not None:
            header = self.rpc.get_block(head)
            if header is not None and header["hash"] != known[0]:
                return
        if not self._lagging:
            self._lagging = True
            log.warning(
                "the node is behind the index: its head is block %d, the indexed block %d%s; "
                "waiting for it to catch up (nothing rolled back). If the chain was replaced (a "
                "restarted devnet), re-index with `python -m indexer --reset`",
                head, cursor.number,
                " (its head block matches the index)" if known is not None else " (below the recent blocks kept, not comparable)",
                extra={"head": head, "cursor": cursor.number},
            )
        raise NodeBehind(f"the node's head {head} is behind the indexed block {cursor.number}")

    def _rollback_to_fork(self, cursor: Cursor) -> Cursor:
        stored = self.store.stored_blocks()
        candidates = sorted({n for n in stored if n <= cursor.number} | {cursor.number}, reverse=True)
        fork: Cursor | None = None
        for i in range(0, len(candidates), HEADER_BATCH):
            chunk = candidates[i : i + HEADER_BATCH]
            headers = self.rpc.get_blocks(chunk)
            for n, header in zip(chunk, headers):
                known = cursor.hash if n == cursor.number else stored[n][0]
                if header is not None and header["hash"] == known:
                    fork = Cursor(n, known)
                    break
            if fork is not None:
                break
        lowest = min(stored) if stored else cursor.number
        if fork is None or cursor.number - fork.number > self.config.finality_depth:
            where = f"block {fork.number}" if fork else f"below block {lowest} (the oldest block kept)"
            raise ReorgTooDeep(
                f"chain reorganisation deeper than the finality depth ({self.config.finality_depth} blocks): "
                f"the indexed block {cursor.number} ({cursor.hash}) is no longer canonical and the fork point is "
                f"{where}. The index at {self.keys.prefix} may hold orphaned blocks and the indexer stops. "
                "If this chain was replaced (a restarted devnet), re-index from scratch with "
                "`python -m indexer --reset`; if the network really reorganises this deep, raise DEPIN_FINALITY_DEPTH "
                "and re-index."
            )
        orphaned = list(range(fork.number + 1, cursor.number + 1))
        missing = [n for n in orphaned if n not in stored]
        if missing:
            raise ReorgTooDeep(
                f"chain reorganisation at block {fork.number + 1}: blocks {missing[0]}..{missing[-1]} were indexed as "
                f"final (no undo records), so the index at {self.keys.prefix} cannot be rolled back; the indexer stops. "
                "Re-index from scratch with `python -m indexer --reset`."
            )
        retracted = self.store.rollback(cursor, fork, orphaned, self._meta())
        metrics.reorg(len(orphaned), retracted)
        self._stored = None
        log.warning(
            "reorg: rolled back blocks %d..%d to the fork point %d, retracted %d events",
            fork.number + 1, cursor.number, fork.number, retracted,
            extra={"fork": fork.number, "orphaned": len(orphaned), "retracted": retracted},
        )
        return fork

    # ------------------------------------------------------------------ final blocks, pipelined

    def _backfill(self, cursor: Cursor, limit: int, stop: threading.Event | None) -> tuple[Cursor, int]:
        """Indexes the final blocks after `cursor` up to `limit` as a pipeline: a fetch thread gets
        the next range's logs (and its two headers) while this thread reduces the current one and
        Redis runs the previous one's commit script (sent, its answer read only before the next
        commit). Batches are still committed one at a time, in order, each with the cursor
        compare-and-set, so a failure anywhere leaves a prefix of them applied. The read cache holds
        each batch's values before it is sent, so the next batch reads them even while in flight."""
        fetcher = ThreadPoolExecutor(1, thread_name_prefix="indexer-fetch")
        pending: PendingCommit | None = None
        applied = 0
        cache = self.store.cache
        # The cyclic garbage collector would walk the growing read cache again and again (a tenth
        # of the backfill's CPU); batches make almost no reference cycles, so it is paused for the
        # backfill and its young generations are collected between batches once they hold more
        # than GC_YOUNG_LIMIT objects (every ten or so batches of TARGET_LOGS logs).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            upcoming: Future[Any] | None = fetcher.submit(self._fetch_final, cursor.number + 1, limit)
            while upcoming is not None:
                start, end, raw_logs, headers = upcoming.result()
                upcoming = None
                if end < limit and not (stop is not None and stop.is_set()):
                    upcoming = fetcher.submit(self._fetch_final, end + 1, limit)
                parent = headers.get(start - 1)
                if start - 1 >= 0 and (parent is None or parent["hash"] != cursor.hash):
                    if pending is not None:
                        pending.wait()
                        pending = None
                    self._ensure_canonical(self.store.cursor() or cursor)
                    raise _ChainMoved(f"block {cursor.number} is no longer canonical")
                if self._held_from([end], headers, raw_logs) is not None:
                    self._held = True  # the batch is fetched again next pass
                    break
                new_cursor = Cursor(end, headers[end]["hash"])
                result = self._reduce(self._decode(raw_logs, start, end, None, headers), None)
                self._rate.append((time.time(), result.events))
                metrics.EVENTS.labels(kind="event").inc(result.events)
                if pending is not None:
                    pending.wait()  # the previous batch is in; raises if it was refused
                    pending = None
                while len(cache) > self.store.cache_size:  # nothing in flight: any entry may go
                    cache.popitem(last=False)
                for key, value in result.values.items():
                    cache[key] = value
                    cache.move_to_end(key)
                pending = self.store.commit(cursor, new_cursor, result, None, (), self._meta(), wait=False)
                cursor = new_cursor
                applied += result.events
                del result
                if gc_was_enabled and gc.get_count()[0] > GC_YOUNG_LIMIT:
                    gc.collect(1)
            if pending is not None:
                pending.wait()
                pending = None
            while len(cache) > self.store.cache_size:
                cache.popitem(last=False)
            if self._unanswered:
                self._unanswered = {k: v for k, v in self._unanswered.items() if k[0] > cursor.number}
            return cursor, applied
        except BaseException:
            cache.clear()
            raise
        finally:
            if pending is not None:
                try:
                    pending.wait()
                except Exception:  # noqa: BLE001, S110 - already failing: the caller re-reads the cursor
                    pass
            fetcher.shutdown(wait=True, cancel_futures=True)
            if gc_was_enabled:
                gc.enable()

    def _fetch_final(self, start: int, limit: int) -> tuple[int, int, list[dict[str, Any]], dict[int, Any]]:
        """Logs of the next range of final blocks from `start` (at most to `limit`), with the
        headers of the block before it (continuity), of its last block (the new cursor) and of the
        blocks holding timestamped events (:meth:`_stamp` then needs no request of its own), in one
        batch request, all in the fetch thread."""
        logs, end = self._fetch_logs(start, min(limit, start + self.range - 1))
        numbers = [start - 1, end] if start - 1 >= 0 else [end]
        numbers += sorted(self._stamp_blocks(logs) - set(numbers))
        headers = dict(zip(numbers, self.rpc.get_blocks(numbers)))
        if headers.get(end) is None:
            raise _ChainMoved(f"block {end} vanished")
        return start, end, logs, headers

    def _stamp_blocks(self, logs: list[Any]) -> set[int]:
        """Numbers of the blocks whose logs include a timestamped event (by topic0; a log that is not
        a well-formed RawLog or dict is left to the decoder, and _stamp fetches what is missing)."""
        wanted = self._stamp_topics
        out: set[int] = set()
        for log_ in logs:
            try:
                if log_.__class__ is RawLog:
                    if log_.topics and log_.topics[0] in wanted:
                        out.add(int(log_.blockNumber, 16))
                elif log_["topics"] and log_["topics"][0] in wanted:
                    out.add(int(log_["blockNumber"], 16))
            except (KeyError, TypeError, ValueError, IndexError):
                continue
        return out

    # ------------------------------------------------------------------ one batch near the head

    def _step(self, cursor: Cursor, target: int) -> tuple[Cursor, int]:
        """Fetches, reduces and commits the next batch after `cursor`; returns the new cursor."""
        start = cursor.number + 1
        final_limit = self.head - self.window
        final = start <= final_limit
        end = min(target, start + self.range - 1)
        if final:
            end = min(end, final_limit)
        else:
            end = min(end, start + MAX_UNFINAL_BATCH - 1)
        blocks: dict[int, tuple[str, str]] = {}
        if final:
            raw_logs, end = self._fetch_logs(start, end)
            numbers = [start - 1, end] if start - 1 >= 0 else [end]
            headers = dict(zip(numbers, self.rpc.get_blocks(numbers)))
            last = headers.get(end)
            if last is None:
                raise _ChainMoved(f"block {end} vanished")
            parent = headers.get(start - 1)
            if start - 1 >= 0 and (parent is None or parent["hash"] != cursor.hash):
                # The cursor's block was replaced: handled as a reorg on the next pass.
                self._ensure_canonical(cursor)
                raise _ChainMoved(f"block {cursor.number} is no longer canonical")
            if self._held_from([end], headers, raw_logs) is not None:
                self._held = True  # fetched again next pass
                return cursor, 0
            new_cursor = Cursor(end, last["hash"])
            events = self._decode(raw_logs, start, end, None)
            undo_from = None
        else:
            # Headers first, then the logs, then the last header again: a block replaced between
            # the reads (even by one whose parent is the same, with logs where the old had none)
            # changes the last header's hash, and the batch is fetched again. Logs read before the
            # headers could belong to a block the headers no longer show, with no blockHash to tell.
            numbers = list(range(start - 1, end + 1)) if start - 1 >= 0 else list(range(start, end + 1))
            fetched: list[Any] = []
            for i in range(0, len(numbers), HEADER_BATCH):
                fetched += self.rpc.get_blocks(numbers[i : i + HEADER_BATCH])
            headers = dict(zip(numbers, fetched))
            prev_hash = cursor.hash
            cursor_header: dict[str, Any] | None = None  # block start - 1's, when there is one
            if start - 1 >= 0:
                parent = headers[start - 1]
                if parent is None or parent["hash"] != cursor.hash:
                    self._ensure_canonical(cursor)
                    raise _ChainMoved(f"block {cursor.number} is no longer canonical")
                cursor_header = parent
            for n in range(start, end + 1):
                h = headers.get(n)
                if h is None:
                    raise _ChainMoved(f"block {n} vanished")
                if h["parentHash"] != prev_hash:
                    raise _ChainMoved(f"block {n} does not follow block {n - 1}")
                prev_hash = h["hash"]
                blocks[n] = (h["hash"], h["parentHash"])
            raw_logs, end = self._fetch_logs(start, end)  # the node may accept a shorter range
            for n in [n for n in blocks if n > end]:
                del blocks[n]
            again = self.rpc.get_block(end)
            if again is None or again["hash"] != blocks[end][0]:
                raise _ChainMoved(f"block {end} changed while the logs were read")
            held = self._held_from(range(start, end + 1), headers, raw_logs)
            if held is not None:  # commit the blocks before it; the next pass fetches it again
                self._held = True
                if held == start:
                    return cursor, 0
                end = held - 1
                raw_logs = [lg for lg in raw_logs if (b := _log_block(lg)) is None or b <= end]
                for n in [n for n in blocks if n > end]:
                    del blocks[n]
            if cursor_header is not None:  # start - 1 >= 0
                blocks[start - 1] = (cursor.hash, cursor_header["parentHash"])
            new_cursor = Cursor(end, blocks[end][0])
            events = self._decode(raw_logs, start, end, blocks, headers)
            undo_from = start
        result = self._reduce(events, undo_from)
        assert self._stored is not None
        keep_from = self.head - self.window  # unfinal batches only hold blocks >= keep_from
        prune = sorted(n for n in self._stored if n < keep_from)
        # Block keep_from's hash stays (the parent of the first unfinal block), but it is final (a
        # backfill applies it without an undo record, and no reorg within the finality depth
        # rolls it back): its undo record goes, so a live follow keeps exactly a backfill's.
        final_undo = [keep_from] if keep_from in self._stored else []
        self._rate.append((time.time(), result.events))
        metrics.EVENTS.labels(kind="event").inc(result.events)
        self.store.commit(cursor, new_cursor, result, blocks, prune, self._meta(), result.values, drop_undo=final_undo)
        self._stored = (self._stored | set(blocks)) - set(prune)
        if self._unanswered:
            self._unanswered = {k: v for k, v in self._unanswered.items() if k[0] > end}
        if result.events:
            log.debug("applied %d events in blocks %d..%d", result.events, start, end, extra={"from_block": start, "to_block": end, "events": result.events})
        return new_cursor, result.events

    def _promises_logs(self, header: Any) -> bool:
        """Whether the header's logsBloom says the block holds logs of the indexed contracts and
        events (:func:`bloom_promises`; False for a header without a readable bloom)."""
        try:
            bloom = int(header["logsBloom"], 16)
        except (KeyError, TypeError, ValueError):
            return False
        return bloom_promises(bloom, self._bloom_addresses, self._bloom_topics)

    def _held_from(self, numbers: Any, headers: dict[int, Any], logs: list[Any]) -> int | None:
        """The first block of `numbers` not to commit yet: its header's logsBloom promises logs of
        the indexed contracts and events but the eth_getLogs answer (`logs`) has none of that
        block, as a node whose log backend lags its headers answers for its newest blocks. Such a
        block is fetched again on the next LAGGING_LOGS_RETRIES passes; still without logs after
        that, it is taken as a bloom false positive (a warning). None: commit every block."""
        held: int | None = None
        answered: set[int | None] | None = None
        for n in numbers:
            header = headers.get(n)
            if header is None or not self._promises_logs(header):
                continue
            if answered is None:
                answered = {_log_block(lg) for lg in logs}
            if n in answered:
                continue
            key = (n, str(header.get("hash")))
            seen, last = self._unanswered.get(key, (0, 0))
            if last != self._passes:
                seen += 1
                self._unanswered[key] = (seen, self._passes)
                if seen == LAGGING_LOGS_RETRIES + 1:
                    log.warning(
                        "block %d's logsBloom promises logs of the indexed contracts, but eth_getLogs answered none "
                        "for it %d times: taken as a bloom false positive", n, seen,
                        extra={"block": n, "fetches": seen},
                    )
            if seen <= LAGGING_LOGS_RETRIES and held is None:
                held = n
                log.info("block %d's logsBloom promises logs that eth_getLogs did not return (a lagging node?): "
                         "fetching it again next pass", n, extra={"block": n, "fetches": seen})
        return held

    def _fetch_logs(self, start: int, end: int) -> tuple[list[Any], int]:
        """Raw logs of [start, end'] where end' <= end is what the node accepted; adapts the range."""
        failures = 0
        same_range_failures = 0
        budget = self.config.max_logs_bytes or None
        while True:
            span = end - start + 1
            limit = budget if span > self.config.min_range else None  # one block's logs are taken whatever their size
            try:
                if self._logs is not None:
                    logs = self._logs.get_logs(start, end, self.decoder.addresses, self._topics, max_bytes=limit)
                    size = self._logs.last_bytes
                else:
                    logs = self.rpc.get_logs(start, end, self.decoder.addresses, self._topics, retries=0)
                    size = _estimated_bytes(logs)
                    if limit is not None and size > limit:
                        raise AnswerTooLarge(self.rpc.url, size, limit)
            except AnswerTooLarge as exc:
                span = max(self.config.min_range, span // 2)
                self.range = min(self.range, span)
                end = start + span - 1
                log.info("%s; range now %d blocks", exc, span, extra={"range": span})
                continue
            except (RpcError, RpcUnavailable) as exc:
                same_range_failures += 1
                shrink = is_range_error(exc) or same_range_failures >= 2
                if shrink and span > self.config.min_range:
                    span = max(self.config.min_range, span // 2)
                    self.range = span
                    end = start + span - 1
                    same_range_failures = 0
                    log.info("eth_getLogs failed (%s); range now %d blocks", exc, span, extra={"range": span})
                    continue
                failures += 1
                if failures > self.config.rpc_retries:
                    raise
                delay = backoff_delay(failures - 1, self.config.backoff_base, self.config.backoff_cap)
                log.debug("eth_getLogs failed (%s); retrying in %.2fs", exc, delay)
                self._sleep(delay)
                continue
            self._adapt(span, len(logs), size)
            return logs, end

    def _adapt(self, span: int, count: int, size: int = 0) -> None:
        """Next range after `count` logs of `size` bytes over `span` blocks: shrink toward
        TARGET_LOGS and a quarter of max_logs_bytes per request when dense, grow (fast when nearly
        empty, else by a quarter) when sparse."""
        lo, hi = self.config.min_range, self.config.max_range
        target_bytes = self.config.max_logs_bytes // 4  # 0: no byte budget
        many = count > 2 * TARGET_LOGS
        large = target_bytes > 0 and size > 2 * target_bytes
        if many or large:
            by_count = span * TARGET_LOGS // count if many else self.range
            by_size = span * target_bytes // size if large else self.range
            self.range = max(lo, min(self.range, by_count, by_size))
        elif span >= self.range and count < TARGET_LOGS // 2 and (not target_bytes or size < target_bytes // 2):
            sparse = count < TARGET_LOGS // 8 and (not target_bytes or size < target_bytes // 8)
            grow = self.range if sparse else max(1, self.range // 4)
            self.range = min(hi, self.range + grow)

    def _decode(
        self,
        raw_logs: list[dict[str, Any]],
        start: int,
        end: int,
        blocks: dict[int, tuple[str, str]] | None,
        headers: dict[int, Any] | None = None,
    ) -> list[Event]:
        events = self.decoder.decode_all(raw_logs)
        ordered = True
        last = (-1, -1)
        out = []
        for ev in events:
            if not start <= ev.block <= end:
                log.warning("skipping log outside the requested range %d..%d: %r", start, end, ev)
                continue
            if blocks is not None and blocks[ev.block][0] != ev.block_hash:
                # Never skipped: committing the header's hash without this block's logs would lose
                # them for good. A node whose logs keep disagreeing with its headers (a lagging log
                # backend) is retried, then waited for (_give_up_this_poll).
                raise _ChainMoved(f"log of block {ev.block} has hash {ev.block_hash}, the header {blocks[ev.block][0]}")
            key = (ev.block, ev.log_index)
            if key <= last:
                ordered = False
            last = key
            out.append(ev)
        if not ordered:
            out.sort(key=lambda e: (e.block, e.log_index))
            dedup: list[Event] = []
            for ev in out:
                if dedup and (dedup[-1].block, dedup[-1].log_index) == (ev.block, ev.log_index):
                    log.warning("skipping duplicate log %d/%d", ev.block, ev.log_index)
                    continue
                dedup.append(ev)
            out = dedup
        self._check_court(out)
        self._stamp(out, headers)
        return out

    def _check_court(self, events: list[Event]) -> None:
        """Raises :class:`IndexerError` (one line) before a batch with a ``MarketParamsUpdated``
        that names another court than the deployment file's, when that court is the market's
        current one: governance changed the court. This index follows one court (its decoder's
        address and the court's keys); jobs of earlier versions stay with their court, so neither
        following the new address instead nor both at once would be right. Nothing of the batch is
        written (a reorg that drops the change needs no undo). A version naming an earlier court
        while the file's court is the current one (a re-index of a market whose court changed) is
        logged once: that court's events are not indexed."""
        for ev in events:
            if ev.name != "MarketParamsUpdated" or self.court is None:
                continue
            court = ev.args["params"]["court"]
            if court.lower() == self.court.lower():
                continue
            current = current_court(self.rpc, self.deployment)
            if current.lower() == self.court.lower():
                if court not in self._old_courts:
                    self._old_courts.add(court)
                    log.warning(
                        "parameters version %d at block %d names court %s; the market's court is now %s (the "
                        "deployment file's): the earlier court's events are not indexed",
                        ev.args["version"], ev.block, court, current, extra={"court": court, "block": ev.block},
                    )
                continue
            raise IndexerError(
                f"the market's court changed: parameters version {ev.args['version']} at block {ev.block} names "
                f"court {court}, which JobMarket {self.market} uses now, but this index follows the court of "
                f"{self.config.deployment_file} ({self.court}) only; stopped before block {ev.block}. Restart with "
                "the deployment file naming the new court (get it again from the deployer): the index is then rebuilt "
                "from the deployment block following it, and the earlier court's events (jobs posted under earlier "
                "versions) are not indexed"
            )

    def _stamp(self, events: list[Event], known: dict[int, Any] | None = None) -> None:
        """Sets the block timestamp of the events that need one: JobPosted no longer carries the
        claim deadline (block timestamp + terms.claimWindow). The headers come from `known` (the
        backfill's fetch thread got them with the logs) or one batch request per batch of logs that
        has any; a header the node lacks, or whose hash is not the log's, means the chain moved
        under the fetch."""
        numbers = sorted({ev.block for ev in events if ev.name in TIMESTAMPED_EVENTS})
        if not numbers:
            return
        headers = {n: known[n] for n in numbers if known and known.get(n) is not None}
        missing = [n for n in numbers if n not in headers]
        if missing:
            headers.update(zip(missing, self.rpc.get_blocks(missing), strict=True))
        for ev in events:
            if ev.name in TIMESTAMPED_EVENTS:
                header = headers.get(ev.block)
                if header is None or header.get("hash") != ev.block_hash:
                    raise _ChainMoved(f"block {ev.block} changed while its logs were read")
                ev.timestamp = int(header["timestamp"], 16)

    def _reduce(self, events: list[Event], undo_from: int | None) -> BatchResult:
        read, absent = self.reducer.prefetch(events)
        loaded = self.store.read_hashes(read)
        for key in absent:
            loaded[key] = {}
        more = self.reducer.related_keys(loaded)
        if more:
            loaded.update(self.store.read_hashes(more))
        return self.reducer.apply(events, loaded, self.store.read_hashes, undo_from)
