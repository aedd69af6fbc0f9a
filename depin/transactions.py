"""Signed transactions: build, sign (eth_account), send, wait, re-broadcast, decode reverts.

:class:`Transactor` sends EIP-1559 (type 2) transactions from one local key over raw JSON-RPC
(:class:`depin.chain.RpcClient`), so it works against any node, not only one with unlocked
accounts. What it does for each transaction:

1. **Estimate gas** with ``eth_estimateGas`` from the sender. An estimate that fails with revert data
   means the call would revert: :class:`TxReverted` is raised with the decoded custom error
   (``JobMarket.WrongStatus(jobId=1, actual=2, expected=1)``) and *nothing is sent*. The limit is the
   estimate x 1.2 + 10,000 (headroom for state that changes between estimate and inclusion).
2. **Price it**: ``maxPriorityFeePerGas`` from ``eth_maxPriorityFeePerGas`` (else the median tip of
   the last blocks from ``eth_feeHistory``, else 1 gwei), ``maxFeePerGas = 2 x latest base fee +
   tip`` (survives six full blocks of base-fee growth). Both are **capped** so that a hostile or
   buggy node cannot make a transaction cost a fortune: the tip at ``DEPIN_MAX_TIP_GWEI`` (default
   100 gwei), ``maxFeePerGas`` at ``DEPIN_MAX_FEE_GWEI`` (default 1000 gwei), read from the
   environment when the :class:`Transactor` is made (or given to it as ``max_tip`` / ``max_fee``,
   in wei). A suggestion above a cap is clamped to it with one warning; re-broadcasts never bump
   past the caps either (a node that demands more refuses the transaction: an error, not a payment).
3. **Nonce**: one local counter per key, under a lock, initialised from
   ``eth_getTransactionCount(address, "pending")``. The counter advances only once the node accepted
   the transaction, so a refused send leaves no gap. On "nonce too low" or "replacement transaction
   underpriced" the signer first asks the node for its own signed version
   (``eth_getTransactionByHash``): known (in the pool or mined: an earlier, unanswered attempt got
   in, or a node forwarded it and answered wrongly) it counts as sent; when that lookup fails it
   counts as sent too (it may be in the pool: moving to another nonce could pay twice). Only a
   definite "unknown" means another process used the key: the counter is re-read from the node and
   the transaction re-signed (up to 3 times). "already known" means these exact bytes are in the pool
   already, which counts as sent, unless another signer of this process (another Client of the
   same account) signed the very same bytes (the same call at the same nonce): then this one is
   re-signed at the next nonce, so that two calls never share one transaction. A send whose answer was lost is retried with the same bytes (the
   same hash: it cannot be sent twice); when every try's answer is lost the version counts as
   *possibly sent*: it is journalled and the counter advances like for any sent transaction, and
   the wait for it goes on (step 4; the node being away does not end it) until it is mined or the
   timeout raises :class:`TxTimeout`, which names its hash and says it may still be mined. Raising
   instead would invite the caller to send the same thing again under a new nonce; journalled, the
   version is re-sent with the same bytes by healing (step 6) if the node never got it.
4. **Wait** for the receipt. If none arrives within ``rebroadcast_after`` seconds the transaction is
   **re-broadcast with the same nonce and fees raised by 12.5 %** (at least; the node's current
   suggestion if higher), again after each further period, until ``timeout``. Whichever of the
   versions is mined is the result; the nonce makes it impossible for two to be mined. A receipt
   counts only when it names the transaction asked about and its block is the node's canonical one at its height (``eth_getBlockByNumber``
   has the receipt's ``blockHash``): a receipt from an orphaned block (a node that has just
   reorged, a load balancer's other backend) or from a block the node's head has not reached is
   not a mined transaction; the wait goes on.
5. **Check** the receipt: a mined revert raises :class:`TxReverted` with the decoded error (from a
   ``debug_traceTransaction`` call trace, else an ``eth_call`` replay on the parent block).
6. **Heal after reorgs and drops** (:meth:`Transactor.heal`): every transaction sent is kept in a
   journal by nonce (the last :data:`JOURNAL_SIZE`, mined ones too: a reorg can undo them). Before
   every broadcast, every ``heal_interval`` seconds of a wait, when a wait times out, and whenever a
   caller asks (the executor's heartbeat), the signer re-reads the node's ``latest`` and ``pending``
   nonces and looks at each of its own nonces from ``latest`` up: one whose transaction the node
   no longer knows (receipt missing and ``eth_getTransactionByHash`` null: dropped from the pool, or
   mined and then reorged out and not put back) is **sent again at the same nonce**, the same signed
   bytes (the same hash, so a caller's recorded hash stays valid; the nonce makes a second execution
   impossible), re-signed with higher fees only if the node refuses the old ones. When the
   transaction's ``still_needed`` check (given by the caller, e.g. "is the job still Claimed by us?")
   says no, the nonce is filled with a no-op (0 ether to ourselves) instead. A nonce of ours that
   is not in the journal (another process used the key, or this one restarted) is filled with the
   no-op too when the node's pool holds no transaction at that nonce. When the pool holds one (a
   restarted signer's pre-crash transaction: the caller may wait for it) it is left alone for
   ``stuck_after`` seconds (:data:`STUCK_AFTER`, counted from when this signer
   first saw it), then replaced by the no-op with both fees at least 12.5 % above its own (read
   with ``txpool_contentFrom`` / ``txpool_content``; a node without that API is outbid a further
   12.5 % on each heal until it takes the no-op): geth keeps a transaction priced below the
   base fee in its pool for hours, and every later transaction of the key queues behind it. A
   nonce whose journalled transaction of ours is in the pool is never replaced this way: when it
   has waited there ``stuck_after`` seconds since its last version was sent (its waiter, which
   re-broadcasts every ``rebroadcast_after`` seconds, is gone: timed out, or its caller died) the
   heal re-broadcasts it with fees raised by 12.5 % (same nonce, same intent). So a
   later nonce is never left waiting behind an earlier, unknown one (no gap), and a reorg needs
   no restart. When a transaction's nonce was consumed by something else (another
   signer with the key; none of its versions has a receipt), the wait re-sends it with a **fresh
   nonce** only if its ``still_needed`` check says it is still needed, else raises
   :class:`TxDropped`: the signer cannot know whether a foreign transaction did the same work.
   "Consumed by something else" is concluded only when none of our versions has a receipt *and*
   ``eth_getTransactionByHash`` shows none of them in a block (a lagging or load-balanced node may
   serve the nonce before the receipt); when in doubt the wait goes on.
   :meth:`Transactor.oldest_unconfirmed_age` says how long the oldest of our transactions has waited
   to be mined (what a health check bounds). The cases, one by one:

   - *mined, reorged out, back in the pool*: the node knows it again; nothing is sent, the journal
     counts it as waiting again until it is mined anew;
   - *mined, reorged out and dropped* (anvil drops them): sent again, same bytes, same nonce;
   - *replaced at the same nonce by another of ours* (a fee bump, or the no-op): any known version
     counts, so the replacement is never itself replaced; a waiter whose nonce went to the no-op
     gets :class:`TxDropped` (its check said it is no longer needed).

Callers that expect to lose a race (two providers claiming one job) catch :class:`TxReverted` and
look at :attr:`TxReverted.error_name` (``"WrongStatus"``). Keys are never logged.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from depin.abi import Codec
from depin.chain import RpcClient, RpcError, RpcUnavailable, hex_int
from depin.errors import ChainError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

log = logging.getLogger("depin.transactions")

GWEI = 10**9
DEFAULT_PRIORITY_FEE = GWEI
GAS_HEADROOM = 1.2
GAS_EXTRA = 10_000
FEE_BUMP_NUM, FEE_BUMP_DEN = 1125, 1000  # +12.5 %: geth and most pools demand >= +10 % to replace
NONCE_RETRIES = 3
JOURNAL_SIZE = 256  # sent transactions remembered by nonce (deeper than any reorg we survive)
HEAL_INTERVAL = 1.0  # seconds between gap checks while waiting
NOOP_GAS = 21_000
MAX_FEE_ENV, DEFAULT_MAX_FEE_GWEI = "DEPIN_MAX_FEE_GWEI", 1000  # cap on maxFeePerGas
MAX_TIP_ENV, DEFAULT_MAX_TIP_GWEI = "DEPIN_MAX_TIP_GWEI", 100  # cap on maxPriorityFeePerGas
LOST_ANSWER_TRIES = 4  # sends of the same bytes while the node's answer is lost
# seconds a pool transaction of our key may hold its nonce, not bumped, before the heal acts: one not
# in the journal is replaced by a no-op, one of ours is bumped (longer than the executor's wait for
# its own pre-crash transaction, and than a waiter's re-broadcast period)
STUCK_AFTER = 180.0

# Which signer of this process signed each recent transaction hash (see Transactor._claim): two
# signers of one key (two Clients of one account) that count the same next nonce sign byte-identical
# transactions for the same call, and the node answers the second "already known".
# Keyed by node and hash; a signer that is gone (garbage) no longer holds its hashes.
_SIGNED: dict[tuple[str, str], weakref.ref[Transactor]] = {}
_SIGNED_LOCK = threading.Lock()
_SIGNED_SIZE = 4096

_ALREADY_KNOWN = ("already known", "already imported", "known transaction", "alreadyknown")
_NONCE_TOO_LOW = ("nonce too low", "nonce has already been used", "oldnonce")
_UNDERPRICED = ("replacement transaction underpriced", "replacement underpriced", "replacementunderpriced")


class TxReverted(ChainError):
    """A transaction reverted when mined, or would revert (its gas estimate or call did; then
    `tx_hash` is None and nothing was sent).

    `reason` is the decoded revert (``JobMarket.WrongStatus(jobId=1, actual=2, expected=1)``);
    `error_name` its bare name (``WrongStatus``; ``Error`` for a string reason, ``Panic`` for a panic,
    None when the data is unknown or empty).
    """

    def __init__(self, what: str, reason: str, tx_hash: str | None = None, data: str | None = None) -> None:
        self.what = what
        self.reason = reason
        self.tx_hash = tx_hash
        self.data = data
        self.error_name = error_name(reason)
        self.sent = tx_hash is not None
        if tx_hash:
            super().__init__(f"{what} reverted: {reason} (tx {tx_hash})")
        else:
            super().__init__(f"{what} would revert: {reason} (not sent)")


class TxTimeout(ChainError):
    """No version of the transaction was mined within the timeout (it may still be mined later)."""

    def __init__(self, what: str, nonce: int, hashes: list[str], timeout: float) -> None:
        self.nonce = nonce
        self.hashes = list(hashes)
        super().__init__(
            f"{what}: not mined within {timeout:.0f} s (nonce {nonce}, sent as {', '.join(hashes)}); "
            "it may still be mined: check the hashes before sending again"
        )


class TxDropped(ChainError):
    """The transaction's nonce was taken by another transaction from the same key; it will never be mined."""


class InsufficientGasFunds(ChainError):
    """The sender's ether balance cannot pay for the gas."""


def error_name(reason: str) -> str | None:
    """``JobMarket.WrongStatus(jobId=1, ...)`` → ``WrongStatus``; ``Error('x')`` → ``Error``."""
    if not reason or reason.startswith(("unknown error", "no revert data", "reverted (")):
        return None
    head = reason.split("(", 1)[0]
    return head.rsplit(".", 1)[-1] or None


def fee_cap_from_env(name: str, default_gwei: int, env: dict[str, str] | None = None) -> int:
    """The fee cap (wei) in environment variable `name` (gwei, e.g. ``"250"`` or ``"0.5"``), else
    `default_gwei`; raises ValueError for anything but a positive number."""
    text = (os.environ if env is None else env).get(name, "").strip()
    if not text:
        return default_gwei * GWEI
    try:
        gwei = float(text)
    except ValueError:
        gwei = math.nan
    if not math.isfinite(gwei) or gwei <= 0:
        raise ValueError(f"{name}={text!r}: expected a positive number of gwei")
    return max(1, int(gwei * GWEI))


def _is(message: str, phrases: tuple[str, ...]) -> bool:
    text = message.lower().replace("_", " ")
    return any(p in text for p in phrases)


@dataclass(frozen=True)
class Receipt:
    """A mined transaction (successful: a reverted one raises :class:`TxReverted`)."""

    tx_hash: str
    block_number: int
    gas_used: int
    status: int
    effective_gas_price: int
    logs: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_rpc(cls, r: dict[str, Any]) -> Receipt:
        return cls(
            tx_hash=r["transactionHash"],
            block_number=hex_int(r["blockNumber"]),
            gas_used=hex_int(r["gasUsed"]),
            status=hex_int(r.get("status", "0x1")),
            effective_gas_price=hex_int(r.get("effectiveGasPrice") or "0x0"),
            logs=tuple(r.get("logs") or ()),
            raw=r,
        )


@dataclass
class PendingTx:
    """A sent transaction not yet known to be mined: every version broadcast for its nonce.

    `still_needed` (optional, from the caller) answers whether the transaction's effect is still
    wanted on chain; it is asked before the transaction is sent again after a drop or a reorg.
    `on_signed` (optional) is called with every hash signed so far and the nonce *before* each
    version is sent: a caller that records them durably there leaves no window in which a crash
    forgets a transaction that reached the pool (a recorded hash may also never have been sent)."""

    what: str
    nonce: int
    fields: dict[str, Any]  # the unsigned transaction of the latest version
    hashes: list[str] = field(default_factory=list)
    still_needed: Callable[[], bool] | None = field(default=None, repr=False)
    on_signed: Callable[[list[str], int], None] | None = field(default=None, repr=False)
    raws: dict[str, str] = field(default_factory=dict, repr=False)  # hash -> signed bytes
    sent_at: float = field(default_factory=time.time)  # since when it waits to be mined (unix time)
    mined: bool = False  # a receipt was seen (a reorg may undo it: see Transactor.heal)
    last_bump: float = field(default_factory=time.monotonic)  # when a version was last sent or a bump tried (monotonic)

    @property
    def tx_hash(self) -> str:
        """The hash of the latest version."""
        return self.hashes[-1]


class Transactor:
    """Signs and sends transactions from `account` on chain `chain_id`. Thread-safe: concurrent
    :meth:`send` calls get consecutive nonces."""

    def __init__(
        self,
        rpc: RpcClient,
        account: LocalAccount,
        chain_id: int,
        *,
        codec: Codec | None = None,
        receipt_timeout: float = 120.0,
        rebroadcast_after: float | None = 30.0,
        poll_interval: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        max_fee: int | None = None,
        max_tip: int | None = None,
    ) -> None:
        """`max_fee` / `max_tip`: caps on maxFeePerGas / maxPriorityFeePerGas in wei (default:
        ``DEPIN_MAX_FEE_GWEI`` / ``DEPIN_MAX_TIP_GWEI`` from the environment, else 1000 / 100 gwei)."""
        self.rpc = rpc
        self.account = account
        self.address: str = account.address
        self.chain_id = chain_id
        self.codec = codec or Codec()
        self.receipt_timeout = receipt_timeout
        self.rebroadcast_after = rebroadcast_after
        self.poll_interval = poll_interval
        self.sleep = sleep
        self.heal_interval = HEAL_INTERVAL
        self.max_fee = max_fee if max_fee is not None else fee_cap_from_env(MAX_FEE_ENV, DEFAULT_MAX_FEE_GWEI)
        self.max_tip = max_tip if max_tip is not None else fee_cap_from_env(MAX_TIP_ENV, DEFAULT_MAX_TIP_GWEI)
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self._journal: dict[int, PendingTx] = {}
        self.stuck_after = STUCK_AFTER
        self._foreign_since: dict[int, float] = {}  # nonce -> first seen held by a pool transaction not ours
        self._foreign_fees: dict[int, tuple[int, int]] = {}  # nonce -> the fees of our last refused no-op

    def __repr__(self) -> str:  # never the key
        return f"Transactor(address={self.address}, chain_id={self.chain_id})"

    # ------------------------------------------------------------------ reads

    def eth_call(self, to: str, data: str, *, what: str = "call", block: int | str = "latest") -> str:
        """``eth_call`` from this account; a revert raises :class:`TxReverted` (not sent)."""
        try:
            return self.rpc.eth_call({"from": self.address, "to": to, "data": data}, block, retries=1)
        except RpcError as exc:
            if looks_like_revert(exc):
                raise TxReverted(what, self.codec.decode_error(revert_data(exc)), data=revert_data(exc)) from None
            raise

    def estimate_gas(self, to: str, data: str, *, value: int = 0, what: str = "transaction") -> int:
        """The gas limit to send with (estimate + headroom); raises :class:`TxReverted` if the call
        would revert."""
        tx = {"from": self.address, "to": to, "data": data, "value": hex(value)}
        try:
            estimate = self.rpc.estimate_gas(tx, retries=1)
        except RpcError as exc:
            if _is(exc.rpc_message, ("insufficient funds",)):
                raise InsufficientGasFunds(
                    f"{what}: {self.address} has not enough ether to pay for gas ({exc.rpc_message})"
                ) from None
            if looks_like_revert(exc):
                data_hex = revert_data(exc)
                raise TxReverted(what, self.codec.decode_error(data_hex), data=data_hex) from None
            raise
        return int(estimate * GAS_HEADROOM) + GAS_EXTRA

    def suggest_fees(self) -> tuple[int, int]:
        """``(maxFeePerGas, maxPriorityFeePerGas)`` for a transaction sent now."""
        base = hex_int(self.rpc.latest_block().get("baseFeePerGas") or "0x0")
        tip = self._priority_fee()
        return self._capped(2 * base + tip, tip)

    def _capped(self, max_fee: int, tip: int) -> tuple[int, int]:
        """`(max_fee, tip)` clamped to the caps (see the module doc, step 2); one warning when clamped."""
        capped_tip = min(tip, self.max_tip, self.max_fee)
        capped_fee = max(min(max_fee, self.max_fee), capped_tip)
        if (capped_fee, capped_tip) != (max_fee, tip):
            log.warning(
                "fees clamped to the caps: maxFeePerGas %d -> %d wei, maxPriorityFeePerGas %d -> %d wei "
                "(caps %s=%g and %s=%g gwei; a node suggesting more is lying, or the chain is congested)",
                max_fee, capped_fee, tip, capped_tip,
                MAX_FEE_ENV, self.max_fee / GWEI, MAX_TIP_ENV, self.max_tip / GWEI,
            )
        return capped_fee, capped_tip

    def _priority_fee(self) -> int:
        try:
            return self.rpc.max_priority_fee(retries=1)
        except (RpcError, ValueError):
            pass
        try:
            history = self.rpc.fee_history(5, "latest", [50], retries=1)
            tips = sorted(hex_int(r[0]) for r in history.get("reward") or [] if r)
            if tips:
                return tips[len(tips) // 2]
        except (RpcError, ValueError, TypeError, AttributeError):
            pass
        return DEFAULT_PRIORITY_FEE

    def pending_nonce(self) -> int:
        return self.rpc.nonce(self.address, "pending")

    def latest_nonce(self) -> int:
        return self.rpc.nonce(self.address, "latest")

    def resync_nonce(self) -> int:
        """Re-reads the nonces from the node and heals gaps (see :meth:`heal`); returns the next nonce."""
        with self._lock:
            self._heal_locked()
            assert self._nonce is not None
            return self._nonce

    def oldest_unconfirmed_since(self) -> float | None:
        """Since when (unix time) the oldest of our sent transactions waits to be mined; None when none waits."""
        waiting = [p.sent_at for p in list(self._journal.values()) if not p.mined]
        return min(waiting) if waiting else None

    def sent(self) -> list[PendingTx]:
        """The transactions this signer sent that its journal holds (the last :data:`JOURNAL_SIZE`
        nonces), by nonce, mined or not: what an interrupted caller tells its user it sent. Read
        without the lock (as :meth:`oldest_unconfirmed_since`): an interrupt may come while it is held."""
        journal = dict(self._journal)
        return [journal[n] for n in sorted(journal)]

    def oldest_unconfirmed_age(self, now: float | None = None) -> float:
        """Seconds the oldest of our sent transactions has waited to be mined (0 when none waits)."""
        since = self.oldest_unconfirmed_since()
        return 0.0 if since is None else max(0.0, (time.time() if now is None else now) - since)

    # ------------------------------------------------------------------ healing

    def heal(self) -> list[int]:
        """Re-reads the node's nonces and sends again every transaction of ours the node no longer
        knows (see the module doc, step 6); returns the nonces sent again or filled."""
        with self._lock:
            return self._heal_locked()

    def _heal_locked(self) -> list[int]:
        latest = self.latest_nonce()
        for sent in self._journal.values():
            if sent.nonce < latest:
                sent.mined = True
        for nonce in [n for n in self._foreign_since if n < latest]:
            self._foreign_since.pop(nonce, None)
            self._foreign_fees.pop(nonce, None)
        if self._nonce is None or latest >= self._nonce:
            if self._nonce is None or latest > self._nonce:  # first use, or another process used the key
                self._nonce = max(latest, self.pending_nonce())
            self._prune(latest)
            return []
        healed = []
        pool = self.pending_nonce()  # the node holds a transaction of this key at every nonce below it
        for nonce in range(latest, self._nonce):
            pending = self._journal.get(nonce)
            if pending is None and nonce < pool:
                # A transaction this signer did not send (a pre-crash one of this process, another
                # process with the key) is in the pool at that nonce: no gap. Left alone (its caller
                # may wait for it) unless it has held the nonce too long (priced below the base fee,
                # geth keeps it for hours): then later ones would queue behind it for as long.
                since = self._foreign_since.setdefault(nonce, time.monotonic())
                if time.monotonic() - since >= self.stuck_after and self._replace_stuck(nonce):
                    healed.append(nonce)
                continue
            if pending is not None and pending.mined:  # mined once, and a reorg undid it
                log.warning("a reorg undid %s nonce=%d tx=%s", pending.what, nonce, pending.tx_hash)
                pending.mined = False
                pending.sent_at = time.time()
            if pending is not None and self._any_known(pending):
                if time.monotonic() - pending.last_bump >= self.stuck_after:
                    # in the pool and neither mined nor bumped for that long: its waiter is gone (timed
                    # out, or its caller died), and every later transaction of ours queues behind it
                    log.warning("%s nonce=%d tx=%s has waited in the pool for over %.0f s; bumping its fees",
                                pending.what, nonce, pending.tx_hash, self.stuck_after)
                    pending.last_bump = time.monotonic()  # tried: the next try waits as long
                    if self.bump(pending) == "sent":
                        healed.append(nonce)
                continue
            self._refill(nonce, pending)
            healed.append(nonce)
        self._prune(latest)
        return healed

    def _any_known(self, pending: PendingTx) -> bool:
        return any(self._known(h) for h in reversed(pending.hashes))

    def _refill(self, nonce: int, pending: PendingTx | None) -> None:
        """Sends `pending` again at its free `nonce` (or a no-op when it is unknown or no longer needed)."""
        if pending is not None and (pending.still_needed is None or _needed(pending)):
            log.warning("%s nonce=%d is unknown to the node (dropped or reorged out); sending it again", pending.what, nonce)
            if self._resend_same(pending) == "sent":
                return
            if self.bump(pending) in ("sent", "nonce"):
                return
        reason = "not in this signer's journal" if pending is None else "no longer needed"
        log.warning("filling nonce %d of %s with a no-op (%s)", nonce, self.address, reason)
        if self._send_noop(nonce, *self.suggest_fees()) == "sent" and pending is not None:
            pending.mined = True  # it never will be: not counted as waiting any more

    def _send_noop(self, nonce: int, max_fee: int, tip: int) -> str:
        """Sends a no-op (0 ether to ourselves) at `nonce`, journalled when sent; the outcome of
        :meth:`_send_version`."""
        fields = {"type": 2, "chainId": self.chain_id, "nonce": nonce, "to": self.address, "value": 0, "data": "0x",
                  "gas": NOOP_GAS, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}
        noop = PendingTx(f"no-op for nonce {nonce}", nonce, fields)
        outcome = self._send_version(noop, fields)
        if outcome == "sent":
            self._journal[nonce] = noop
        return outcome

    def _replace_stuck(self, nonce: int) -> bool:
        """Replaces the pool transaction at our `nonce` that is not in the journal and has held it
        longer than ``stuck_after`` with a no-op, both fees at least 12.5 % above its own
        (``txpool``; else above our last refused try: each heal offers more) and no less than the
        node's suggestion, within the caps. True when the node took it."""
        try:
            held = self.rpc.pool_transaction(self.address, nonce)
        except ChainError as exc:  # no txpool API: outbid our own last try, if any
            log.info("pool lookup of nonce %d of %s failed: %s", nonce, self.address, exc)
            held = None
        if held is not None:
            old_max = hex_int(held.get("maxFeePerGas") or held.get("gasPrice") or "0x0")
            old_tip = hex_int(held.get("maxPriorityFeePerGas") or held.get("gasPrice") or "0x0")
        else:
            old_max, old_tip = self._foreign_fees.get(nonce, (0, 0))
        max_fee, tip = self.suggest_fees()
        new_tip = max(tip, math.ceil(old_tip * FEE_BUMP_NUM / FEE_BUMP_DEN))
        new_max, new_tip = self._capped(max(max_fee, math.ceil(old_max * FEE_BUMP_NUM / FEE_BUMP_DEN), new_tip), new_tip)
        log.warning(
            "nonce %d of %s is held by a pool transaction this signer did not send (%s) for over %.0f s; "
            "replacing it with a no-op (maxFeePerGas=%d tip=%d)",
            nonce, self.address, held.get("hash") if held else "not shown by the node", self.stuck_after,
            new_max, new_tip,
        )
        try:
            outcome = self._send_noop(nonce, new_max, new_tip)
        except ChainError as exc:
            log.warning("no-op for nonce %d of %s refused: %s", nonce, self.address, exc)
            outcome = "refused"
        if outcome != "sent":
            self._foreign_fees[nonce] = (new_max, new_tip)
            return False
        self._foreign_since.pop(nonce, None)
        self._foreign_fees.pop(nonce, None)
        return True

    def _resend_same(self, pending: PendingTx) -> str:
        """The latest version's signed bytes, sent again (same hash)."""
        raw = pending.raws.get(pending.tx_hash)
        if raw is None:
            return "refused"
        try:
            self.rpc.send_raw_transaction(raw, retries=1)
        except RpcError as exc:
            if _is(exc.rpc_message, _ALREADY_KNOWN):
                return "sent"
            log.info("re-send of %s nonce=%d refused: %s", pending.what, pending.nonce, exc.rpc_message)
            return "nonce" if _is(exc.rpc_message, _NONCE_TOO_LOW) else "refused"
        except ChainError as exc:
            log.info("re-send of %s nonce=%d failed: %s", pending.what, pending.nonce, exc)
            return "refused"
        return "sent"

    def _prune(self, latest: int) -> None:
        for nonce in [n for n in self._journal if n < latest - JOURNAL_SIZE]:
            del self._journal[nonce]

    # ------------------------------------------------------------------ sending

    def send(
        self,
        to: str,
        data: str,
        *,
        value: int = 0,
        gas: int | None = None,
        what: str = "transaction",
        timeout: float | None = None,
        still_needed: Callable[[], bool] | None = None,
        confirmations: int = 1,
    ) -> Receipt:
        """Estimates (unless `gas`), signs, sends and waits for one transaction; returns its receipt.

        `still_needed` is asked before the transaction is sent again after a drop or a reorg (see
        the module doc, step 6). With `confirmations` > 1 the receipt is returned once that many
        blocks hold it (its own and those on top: :meth:`confirm`), as it reads then. Raises
        :class:`TxReverted` (before sending when the estimate reverts; after mining on a mined
        revert), :class:`TxTimeout`, :class:`TxDropped`, :class:`InsufficientGasFunds`, or another
        ChainError.
        """
        if confirmations < 1:
            raise ValueError(f"confirmations must be at least 1 (the block that mines it), not {confirmations}")
        if gas is None:
            # Healed first, so the estimate runs against a pool that holds again whatever of ours a
            # reorg or a drop took out: estimated before, a claim of a job whose reorged-out claim of
            # ours was about to be re-sent passed its estimate and went out a second time (to revert
            # when mined, after a receipt wait as long as the chain took to mine the first).
            self.heal()
            gas = self.estimate_gas(to, data, value=value, what=what)
        pending = self.broadcast(to, data, value=value, gas=gas, what=what, still_needed=still_needed)
        receipt = self.wait(pending, timeout=timeout)
        return self.confirm(pending, confirmations, timeout=timeout) if confirmations > 1 else receipt

    def confirm(self, pending: PendingTx, confirmations: int, *, timeout: float | None = None) -> Receipt:
        """Waits until a version of `pending` is in a block with ``confirmations - 1`` blocks on top
        of it, and returns its receipt as it reads then: a reorg may have moved the transaction to
        another block (another position among other transactions: the ids its logs carry, such as a
        JobPosted's, can differ from the first receipt's). One that a reorg removed is waited for
        again (:meth:`wait` re-sends the same signed bytes) and counted from its new block. The count
        has its own `timeout` (default ``receipt_timeout``): past it, a mined transaction's receipt is
        returned as it stands, with a warning (raising would invite sending it again); one not mined
        again raises :class:`TxTimeout` as :meth:`wait` does."""
        timeout = self.receipt_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        raw: dict[str, Any] | None = None
        have = 0
        while True:
            try:
                raw = self._receipt_of(pending)
                if raw is None:  # reorged out: wait for it to be mined again
                    self.wait(pending, timeout=max(0.0, deadline - time.monotonic()))
                    continue
                have = self.rpc.block_number() - hex_int(raw["blockNumber"]) + 1
                if have >= confirmations:
                    return self._check(pending, raw)
            except RpcUnavailable as exc:  # the node is away: the count goes on (or times out)
                log.info("confirmation check of %s failed: %s", pending.what, exc)
            if time.monotonic() > deadline:
                if raw is None:
                    raise TxTimeout(pending.what, pending.nonce, pending.hashes, timeout)
                log.warning("%s has %d of %d confirmations after %.0f s; going on with its receipt as it stands",
                            pending.what, max(have, 1), confirmations, timeout)
                return self._check(pending, raw)
            time.sleep(self.poll_interval)

    def broadcast(
        self, to: str, data: str, *, value: int = 0, gas: int, what: str = "transaction",
        still_needed: Callable[[], bool] | None = None,
        on_signed: Callable[[list[str], int], None] | None = None,
    ) -> PendingTx:
        """Signs and sends with the next nonce, after healing any gap below it; returns without
        waiting. `still_needed` and `on_signed`: see :class:`PendingTx`."""
        max_fee, tip = self.suggest_fees()
        with self._lock:
            self._heal_locked()
            return self._broadcast_locked(to, data, value, gas, what, max_fee, tip, still_needed, on_signed)

    def _broadcast_locked(
        self, to: str, data: str, value: int, gas: int, what: str, max_fee: int, tip: int,
        still_needed: Callable[[], bool] | None, on_signed: Callable[[list[str], int], None] | None = None,
    ) -> PendingTx:
        for attempt in range(NONCE_RETRIES + 1):
            if self._nonce is None:
                self._nonce = self.pending_nonce()
            nonce = self._nonce
            fields = {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": nonce,
                "to": to,
                "value": value,
                "data": data,
                "gas": gas,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
            }
            pending = PendingTx(what, nonce, fields, still_needed=still_needed, on_signed=on_signed)
            outcome = self._send_version(pending, fields)
            if outcome == "sent":
                self._nonce = nonce + 1
                self._journal[nonce] = pending
                log.debug("sent %s nonce=%d tx=%s", what, nonce, pending.tx_hash)
                return pending
            # nonce trouble: somebody else used this key; re-read and re-sign
            log.info("nonce %d of %s was taken (%s); resyncing", nonce, self.address, outcome)
            self._nonce = max(self.pending_nonce(), nonce + 1)
        raise ChainError(f"{what}: could not find a free nonce for {self.address} after {NONCE_RETRIES} tries")

    def _sign(self, fields: dict[str, Any]) -> tuple[str, str]:
        signed = self.account.sign_transaction(fields)
        raw = signed.raw_transaction
        return "0x" + bytes(raw).hex(), "0x" + bytes(signed.hash).hex()

    def _send_version(self, pending: PendingTx, fields: dict[str, Any]) -> str:
        """Sends one signed version. Returns "sent" (recorded in `pending`: accepted, or possibly
        accepted), or "nonce" / "underpriced" when the node refused it for its nonce and does not
        know it (see the module doc, step 3)."""
        raw, tx_hash = self._sign(fields)
        if not self._claim(tx_hash):
            # Another signer of this process (another Client of the same account) signed these very
            # bytes: the same call at the same nonce. "already known" from the node would count it
            # as sent, and two calls would share one transaction: this one takes another nonce.
            log.info("%s nonce=%d tx=%s was signed by another signer of %s in this process; taking another nonce",
                     pending.what, pending.nonce, tx_hash, self.address)
            return "nonce"
        if pending.on_signed is not None:
            pending.on_signed([*pending.hashes, tx_hash], pending.nonce)
        for lost in range(LOST_ANSWER_TRIES):
            try:
                self.rpc.send_raw_transaction(raw, retries=0)
            except RpcUnavailable as exc:
                if lost == LOST_ANSWER_TRIES - 1:  # it may have been broadcast: never re-signed at another nonce
                    log.warning(
                        "%s nonce=%d tx=%s: no answer from the node to %d sends (%s); counted as possibly sent",
                        pending.what, pending.nonce, tx_hash, LOST_ANSWER_TRIES, exc,
                    )
                    break
                self.sleep(0.2 * (lost + 1))
                continue  # same bytes, same hash: resending cannot duplicate it
            except RpcError as exc:
                message = exc.rpc_message
                if _is(message, _ALREADY_KNOWN):
                    break
                refusal = "nonce" if _is(message, _NONCE_TOO_LOW) else "underpriced" if _is(message, _UNDERPRICED) else None
                if refusal is not None:
                    known = self._lookup(tx_hash)
                    if known is False:  # definitely not ours in the pool or a block: the nonce is somebody else's
                        return refusal
                    # ours is in the pool or mined (an unanswered attempt got in, or the node forwarded
                    # it and answered wrongly), or we cannot tell: re-signing at another nonce could pay twice
                    log.warning(
                        "%s nonce=%d tx=%s: the node said %r but %s; counted as sent",
                        pending.what, pending.nonce, tx_hash, message,
                        "knows the transaction" if known else "could not say whether it knows the transaction",
                    )
                    break
                if _is(message, ("underpriced", "fee cap less than", "max fee per gas less than", "gas price too low")):
                    raise ChainError(f"{pending.what}: the node refused the fees offered ({message})") from None
                if _is(message, ("insufficient funds",)):
                    raise InsufficientGasFunds(
                        f"{pending.what}: {self.address} has not enough ether for gas x price ({message})"
                    ) from None
                raise
            break
        pending.fields = fields
        pending.last_bump = time.monotonic()
        pending.hashes.append(tx_hash)
        pending.raws[tx_hash] = raw
        return "sent"

    def _claim(self, tx_hash: str) -> bool:
        """Records that this signer sends `tx_hash`; False when another signer of this process did."""
        key = (str(getattr(self.rpc, "url", "")), tx_hash)
        with _SIGNED_LOCK:
            owner = _SIGNED.get(key)
            signer = owner() if owner is not None else None
            if signer is not None and signer is not self:
                return False
            _SIGNED[key] = weakref.ref(self)
            if len(_SIGNED) > _SIGNED_SIZE:
                for old in list(_SIGNED)[: len(_SIGNED) - _SIGNED_SIZE]:
                    del _SIGNED[old]
        return True

    def _known(self, tx_hash: str) -> bool:
        return self._lookup(tx_hash) is True

    def _lookup(self, tx_hash: str) -> bool | None:
        """Whether the node knows `tx_hash` (in its pool or a block); None when the lookup failed."""
        try:
            return self.rpc.get_transaction(tx_hash) is not None
        except ChainError:
            return None

    def bump(self, pending: PendingTx) -> str:
        """Re-broadcasts `pending` with the same nonce and fees raised by at least 12.5 %.
        Returns "sent" when the node took the replacement, "nonce" when the nonce is used up (a
        version was mined, or another transaction from this key took it), "underpriced" or "refused"
        when the node did not take it (the wait goes on for the versions already sent)."""
        old = pending.fields
        try:
            max_fee, tip = self.suggest_fees()
        except ChainError as exc:  # the node is away: keep waiting for what was sent
            log.info("re-broadcast of %s nonce=%d failed: %s", pending.what, pending.nonce, exc)
            return "refused"
        new_tip = max(tip, math.ceil(old["maxPriorityFeePerGas"] * FEE_BUMP_NUM / FEE_BUMP_DEN))
        new_max = max(max_fee, math.ceil(old["maxFeePerGas"] * FEE_BUMP_NUM / FEE_BUMP_DEN), new_tip)
        new_max, new_tip = self._capped(new_max, new_tip)
        if (new_max, new_tip) == (old["maxFeePerGas"], old["maxPriorityFeePerGas"]):
            log.info("re-broadcast of %s nonce=%d skipped: its fees are at the caps", pending.what, pending.nonce)
            return "underpriced"
        fields = dict(old, maxFeePerGas=new_max, maxPriorityFeePerGas=new_tip)
        try:
            outcome = self._send_version(pending, fields)
        except ChainError as exc:  # the node refused or did not answer: keep waiting for what was sent
            log.info("re-broadcast of %s nonce=%d failed: %s", pending.what, pending.nonce, exc)
            return "refused"
        if outcome == "sent":
            log.info(
                "re-broadcast %s nonce=%d maxFeePerGas=%d tip=%d tx=%s",
                pending.what, pending.nonce, new_max, new_tip, pending.tx_hash,
            )
        else:
            log.info("re-broadcast of %s nonce=%d not taken (%s)", pending.what, pending.nonce, outcome)
        return outcome

    def wait(self, pending: PendingTx, *, timeout: float | None = None) -> Receipt:
        """Waits for any version of `pending` to be mined, re-broadcasting with higher fees every
        ``rebroadcast_after`` seconds and healing gaps and drops every ``heal_interval`` seconds
        (see the module doc, step 6); checks the receipt."""
        timeout = self.receipt_timeout if timeout is None else timeout
        start = time.monotonic()
        deadline = start + timeout
        next_bump = start + self.rebroadcast_after if self.rebroadcast_after else math.inf
        next_heal = start + self.heal_interval
        delay = min(0.005, self.poll_interval)
        while True:
            try:
                receipt = self._receipt_of(pending)
            except RpcUnavailable as exc:  # the node is away: the wait goes on (or times out, naming the hashes)
                log.info("receipt check of %s failed: %s", pending.what, exc)
                receipt = None
            if receipt is not None:
                self._mark_mined_through(pending)
                return self._check(pending, receipt)
            now = time.monotonic()
            if now > deadline:
                self._heal_quietly()
                raise TxTimeout(pending.what, pending.nonce, pending.hashes, timeout)
            if now >= next_heal:
                self._heal_quietly()
                if self._nonce_consumed(pending):
                    self._resend_fresh_or_drop(pending)
                next_heal = time.monotonic() + self.heal_interval
            elif now >= next_bump:
                if self.bump(pending) == "nonce" and self._nonce_consumed(pending):
                    self._resend_fresh_or_drop(pending)
                next_bump = now + (self.rebroadcast_after or math.inf)
            self.sleep(delay)
            delay = min(delay * 2, self.poll_interval)

    def _mark_mined_through(self, pending: PendingTx) -> None:
        """`pending` is mined, so is every nonce of ours below it (nonces are mined in order)."""
        pending.mined = True
        for other in list(self._journal.values()):
            if other.nonce < pending.nonce:
                other.mined = True

    def _receipt_of(self, pending: PendingTx) -> dict[str, Any] | None:
        for tx_hash in reversed(pending.hashes):
            receipt = self.rpc.get_receipt(tx_hash)
            if receipt is None or not receipt.get("blockNumber"):
                continue
            if str(receipt.get("transactionHash") or "").lower() != tx_hash.lower():
                log.debug("the node answered the receipt of %s for %s; ignored",
                          receipt.get("transactionHash"), tx_hash)
                continue
            if self._canonical(receipt):
                return receipt
        return None

    def _canonical(self, receipt: dict[str, Any]) -> bool:
        """Whether `receipt` is from the node's canonical block at its height: a load-balanced node,
        or one that has just reorged, can serve a receipt from a block that is not (or no longer)
        on the chain, or from a block its head has not reached (see the module doc, step 4)."""
        block = self.rpc.get_block(hex_int(receipt["blockNumber"]))
        block_hash = block.get("hash") if isinstance(block, dict) else None
        if isinstance(block_hash, str) and block_hash.lower() == str(receipt.get("blockHash") or "").lower():
            return True
        log.debug("receipt of tx=%s is from block %s %s, not the node's canonical one (%s); waiting on",
                  receipt.get("transactionHash"), receipt.get("blockNumber"), receipt.get("blockHash"), block_hash)
        return False

    def _heal_quietly(self) -> None:
        try:
            self.heal()
        except ChainError as exc:  # the node is away: the wait goes on (or times out)
            log.info("nonce check failed: %s", exc)

    def _nonce_consumed(self, pending: PendingTx) -> bool:
        """Whether `pending`'s nonce is used on chain by something that is none of its versions. False
        when in doubt: a version's receipt or its block may lag behind the nonce on a load-balanced
        node, and a lookup that fails proves nothing."""
        try:
            return self.latest_nonce() > pending.nonce and not self._mined_version(pending)
        except ChainError as exc:
            log.info("check of %s nonce=%d failed: %s", pending.what, pending.nonce, exc)
            return False

    def _resend_fresh_or_drop(self, pending: PendingTx) -> None:
        """`pending`'s nonce went to another transaction: sends it again with a fresh nonce when its
        `still_needed` check says so (the wait goes on for the new version), else raises TxDropped."""
        if pending.still_needed is None or not _needed(pending):
            pending.mined = True  # not waiting any more: it never will be mined
            raise TxDropped(
                f"{pending.what}: nonce {pending.nonce} of {self.address} was used by another transaction "
                f"(another process signing with this key?); its versions could not be found mined "
                f"(no receipt, in no block): {', '.join(pending.hashes)}"
            )
        f = pending.fields
        max_fee, tip = self.suggest_fees()
        with self._lock:
            self._heal_locked()
            fresh = self._broadcast_locked(f["to"], f["data"], f["value"], f["gas"], pending.what, max_fee, tip, pending.still_needed,
                                          pending.on_signed)
            if self._journal.get(pending.nonce) is pending:
                del self._journal[pending.nonce]  # that nonce is somebody else's now
            old_nonce = pending.nonce
            pending.nonce, pending.fields = fresh.nonce, fresh.fields
            pending.hashes.extend(fresh.hashes)
            pending.raws.update(fresh.raws)
            pending.sent_at = fresh.sent_at
            self._journal[fresh.nonce] = pending  # one record of the intent: the waiter's
        log.warning("%s: nonce %d was taken by another transaction; sent again as nonce %d tx=%s",
                    pending.what, old_nonce, fresh.nonce, fresh.tx_hash)

    def _mined_version(self, pending: PendingTx) -> bool:
        """Whether a version of `pending` has a receipt, or is in a block by ``eth_getTransactionByHash``
        (checked after the node said its nonce is used; its receipt may not be served yet)."""
        for tx_hash in pending.hashes:
            if self.rpc.get_receipt(tx_hash) is not None:
                return True
        for tx_hash in pending.hashes:
            found = self.rpc.get_transaction(tx_hash)
            if isinstance(found, dict) and found.get("blockNumber"):
                log.info("%s tx=%s is in block %s but has no receipt yet; waiting for it",
                         pending.what, tx_hash, found.get("blockNumber"))
                return True
        return False

    def _check(self, pending: PendingTx, raw: dict[str, Any]) -> Receipt:
        receipt = Receipt.from_rpc(raw)
        if receipt.status != 1:
            reason, data = self._mined_revert_reason(pending, receipt)
            raise TxReverted(pending.what, reason, receipt.tx_hash, data)
        return receipt

    def _mined_revert_reason(self, pending: PendingTx, receipt: Receipt) -> tuple[str, str | None]:
        try:
            trace = self.rpc.trace_transaction(receipt.tx_hash, "callTracer", retries=0)
            output = trace.get("output") if isinstance(trace, dict) else None
            if output:
                return self.codec.decode_error(output), output
        except ChainError:
            pass
        f = pending.fields
        call = {"from": self.address, "to": f["to"], "data": f["data"], "value": hex(f["value"]), "gas": hex(f["gas"])}
        try:
            self.rpc.eth_call(call, max(receipt.block_number - 1, 0), retries=0)
        except RpcError as exc:
            if looks_like_revert(exc):
                data = revert_data(exc)
                return self.codec.decode_error(data), data
        except ChainError:
            pass
        if receipt.gas_used >= f["gas"]:
            return f"out of gas (used all {f['gas']})", None
        return "reverted (reason unavailable)", None


def _needed(pending: PendingTx) -> bool:
    """`pending.still_needed()`; a check that fails (the node is away) counts as "not known yet":
    raised, so that nothing is sent on a guess."""
    assert pending.still_needed is not None
    return bool(pending.still_needed())


def revert_data(exc: RpcError) -> str | None:
    """The revert data (0x-hex) a node put in a JSON-RPC error, or None."""
    data = exc.data
    if isinstance(data, dict):  # some nodes nest it: {"data": "0x..."} or {"message":..., "data":...}
        data = data.get("data") or data.get("result")
    if isinstance(data, str) and data.startswith("0x"):
        return data
    return None


def looks_like_revert(exc: RpcError) -> bool:
    """Whether a JSON-RPC error says the call reverted (rather than that the node failed)."""
    return exc.code == 3 or revert_data(exc) is not None or "revert" in exc.rpc_message.lower()
