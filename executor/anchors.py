"""Proofs of anchor block headers for ``HeaderRandomness`` (deployment parameter
``randomness = "header"``).

A draw from ``HeaderRandomness`` reads the anchor block's prevrandao, which nobody can read until
someone proves the block's RLP header (``HeaderRandomness.prove``), and only while
``blockhash(anchor)`` is available (256 blocks). The provider's beat proves the anchors of its
submitted jobs (:func:`executor.beat.record_anchors`); a verifier proves the anchor of a court
round it could be seated in (:func:`executor.verifier.consider`). The header comes from the chain
gateway, RLP-encoded from the node's JSON block and checked against its block hash before it is
sent (:func:`depin.chain.header.block_header`).

Both anchor transactions, a proof here and a block hash record (``BlockhashRandomness.record``,
:func:`executor.beat.record_anchor`), are sent by :func:`send_anchor_tx`, idempotently across
crashes through the marks in ``{e}:anchors``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import NamedTuple

from depin.abi import Transaction
from depin.chain.header import HeaderError, block_header
from depin.transactions import TxDropped, TxReverted
from executor.runtime import Runtime

log = logging.getLogger("executor.tasks")

BLOCKHASH_WINDOW = 256  # blocks after which blockhash(n) reads zero (EVM): the header is unprovable
PROVE_ANCHOR_AFTER = 1  # blocks: an anchor is provable once mined
FALLBACK_AFTER = 16  # blocks: a verifier proves a job's anchor its provider has left unproved this long
DONE = "recorded"  # the mark of a done anchor in {e}:anchors (block hash records and header proofs)


def uses_headers(rt: Runtime) -> bool:
    """Whether the deployment draws from ``HeaderRandomness``."""
    return rt.deployment.parameters.get("randomness", "blockhash") == "header"


def proved(rt: Runtime, anchor: int) -> bool:
    """Whether ``HeaderRandomness.proved(anchor)`` holds the block's prevrandao already."""
    return bytes(rt.client.read(rt.client.contracts.header_randomness.proved(anchor))) != bytes(32)


class AnchorTx(NamedTuple):
    """The log wording of one kind of anchor transaction: ``anchor <tx> still pending``,
    ``anchor <subject> <done>``, ``anchor <subject> not <done>``."""

    tx: str
    subject: str
    done: str


RECORD = AnchorTx("record", "block hash", "recorded")  # BlockhashRandomness.record (executor.beat)
PROOF = AnchorTx("proof", "header", "proved")  # HeaderRandomness.prove (:func:`prove`)


def send_anchor_tx(rt: Runtime, anchor: int, pending: list[str], needed: Callable[[], list[int]], *,
                   done: Callable[[Runtime, int], bool], build_call: Callable[[], Transaction],
                   retry_reverts: Mapping[str, str], what: AnchorTx) -> int:
    """Sends the transaction `build_call()` that makes block `anchor`'s randomness readable (a block
    hash record or a header proof) unless `done(rt, anchor)` holds already (marked done), one of our
    `pending` transaction hashes is still in the node's pool (waited for), or `needed()` (our jobs
    that still wait for the draw) is empty (marked done); 1 when our transaction was mined (marked
    done), else 0. Idempotent across crashes: the signed transaction's hashes are in
    ``{e}:anchors`` (``pending:h1,h2``) before it is broadcast, and the broadcast stops once it is
    no longer needed (done meanwhile, or the anchor left the block hash window). A `build_call`
    that raises :class:`HeaderError` (a header that could not be fetched or checked) is tried again
    next time, and so is a revert named in `retry_reverts` (error name -> the warning logged); any
    other revert (RandomnessExpired: too late, the draw counts as drawn) or a dropped transaction
    (done by somebody else meanwhile, or expired) is marked done. `what` words the log lines."""
    key = rt.xkeys.anchors
    if done(rt, anchor):
        rt.state.hset(key, str(anchor), DONE)
        return 0
    if any(rt.rpc.get_receipt(h) is None and rt.rpc.get_transaction(h) is not None for h in pending if h):
        log.info(f"anchor {what.tx} still pending", extra={"anchor": anchor, "tx": pending[-1]})
        return 0  # sent before a crash and still in the pool: the next try sees it mined
    waiting = needed()
    if not waiting:
        rt.state.hset(key, str(anchor), DONE)  # settled or moved on since it was listed
        return 0
    tx = rt.client.tx
    if tx is None:
        raise RuntimeError("the executor's client has no signing account")
    jobs = ",".join(map(str, waiting))
    try:
        call = build_call()
    except HeaderError as exc:
        log.error(f"anchor {what.subject} not {what.done}: %s", exc, extra={"anchor": anchor, "jobs": jobs})
        return 0

    def on_signed(hashes: list[str], nonce: int) -> None:
        rt.state.hset(key, str(anchor), "pending:" + ",".join(hashes))

    def still_needed() -> bool:
        return not done(rt, anchor) and rt.client.block_number() - anchor < BLOCKHASH_WINDOW

    try:
        gas = tx.estimate_gas(call.to, call.data, what=call.what)  # TxReverted here: nothing was sent
        receipt = tx.wait(tx.broadcast(call.to, call.data, gas=gas, what=call.what, on_signed=on_signed, still_needed=still_needed))
    except TxReverted as exc:
        retried = retry_reverts.get(exc.error_name or "")
        if retried:
            log.warning(retried, extra={"anchor": anchor, "jobs": jobs})
            return 0
        rt.state.hset(key, str(anchor), DONE)  # RandomnessExpired: too late, the draw counts as drawn
        log.warning(f"anchor {what.subject} not {what.done}", extra={"anchor": anchor, "jobs": jobs, "error": exc.error_name})
        return 0
    except TxDropped:
        rt.state.hset(key, str(anchor), DONE)  # done by somebody else meanwhile, or expired
        return 0
    rt.state.hset(key, str(anchor), DONE)
    log.info(f"anchor {what.subject} {what.done}", extra={"anchor": anchor, "jobs": jobs, "tx": receipt.tx_hash})
    return 1


def prove(rt: Runtime, anchor: int, pending: list[str], needed: Callable[[], list[int]]) -> int:
    """Proves block `anchor`'s header unless it is proved, a proof of ours is still in the pool, or
    `needed()` (what still waits for the draw) is empty; 1 when our proof was mined, else 0
    (:func:`send_anchor_tx`). A header the chain rejects as not the anchor's (``HeaderMismatch``:
    the block was reorged away since the fetch) or one the local check fails (a fork whose header
    fields the encoder does not know) is tried again next time; an expired one is given up (the
    draw counts as drawn)."""
    return send_anchor_tx(rt, anchor, pending, needed, done=proved,
                          build_call=lambda: rt.client.contracts.header_randomness.prove(block_header(rt.rpc, anchor)),
                          retry_reverts={"HeaderMismatch": "anchor header changed (reorg?): tried again"}, what=PROOF)


def prove_if_due(rt: Runtime, anchor: int, needed: Callable[[], list[int]], *, after: int = PROVE_ANCHOR_AFTER) -> int:
    """Proves block `anchor`'s header if the deployment draws from headers, the anchor is at least
    `after` blocks old and still provable, and no proof of it is done or pending (per
    ``{e}:anchors``); see :func:`prove`."""
    if anchor <= 0 or not uses_headers(rt):
        return 0
    age = rt.client.block_number() - anchor
    if not after <= age < BLOCKHASH_WINDOW:
        return 0
    mark = str(rt.state.hget(rt.xkeys.anchors, str(anchor)) or "")
    if mark == DONE:
        return 0
    return prove(rt, anchor, mark.removeprefix("pending:").split(",") if mark else [], needed)
