"""Proofs of anchor block headers for ``HeaderRandomness`` (deployment parameter
``randomness = "header"``).

A draw from ``HeaderRandomness`` reads the anchor block's prevrandao, which nobody can read until
someone proves the block's RLP header (``HeaderRandomness.prove``), and only while
``blockhash(anchor)`` is available (256 blocks). The provider's beat proves the anchors of its
submitted jobs (:func:`executor.beat.record_anchors`); a verifier proves the anchor of a court
round it could be seated in (:func:`executor.verifier.consider`). The header comes from the chain
gateway, RLP-encoded from the node's JSON block and checked against its block hash before it is
sent (:func:`depin.chain.header.block_header`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from depin.chain.header import HeaderError, block_header
from depin.transactions import TxDropped, TxReverted
from executor.runtime import Runtime

log = logging.getLogger("executor.tasks")

BLOCKHASH_WINDOW = 256  # blocks after which blockhash(n) reads zero (EVM): the header is unprovable
PROVE_ANCHOR_AFTER = 1  # blocks: an anchor is provable once mined
FALLBACK_AFTER = 16  # blocks: a verifier proves a job's anchor its provider has left unproved this long
PROVED = "recorded"  # the mark of a done anchor in {e}:anchors (shared with block hash records)


def uses_headers(rt: Runtime) -> bool:
    """Whether the deployment draws from ``HeaderRandomness``."""
    return rt.deployment.parameters.get("randomness", "blockhash") == "header"


def proved(rt: Runtime, anchor: int) -> bool:
    """Whether ``HeaderRandomness.proved(anchor)`` holds the block's prevrandao already."""
    return bytes(rt.client.read(rt.client.contracts.header_randomness.proved(anchor))) != bytes(32)


def prove(rt: Runtime, anchor: int, pending: list[str], needed: Callable[[], list[int]]) -> int:
    """Proves block `anchor`'s header unless it is proved, a proof of ours is still in the pool, or
    `needed()` (what still waits for the draw) is empty; 1 when our proof was mined, else 0.
    Idempotent across crashes: the transaction's hashes are in ``{e}:anchors`` before it is
    broadcast. A header the chain rejects as not the anchor's (``HeaderMismatch``: the block was
    reorged away since the fetch) or one the local check fails (a fork whose header fields the
    encoder does not know) is tried again next time; an expired one is given up (the draw counts as
    drawn)."""
    key = rt.xkeys.anchors
    if proved(rt, anchor):
        rt.state.hset(key, str(anchor), PROVED)
        return 0
    if any(rt.rpc.get_receipt(h) is None and rt.rpc.get_transaction(h) is not None for h in pending if h):
        log.info("anchor proof still pending", extra={"anchor": anchor, "tx": pending[-1]})
        return 0
    waiting = needed()
    if not waiting:
        rt.state.hset(key, str(anchor), PROVED)  # settled or moved on since it was listed
        return 0
    tx = rt.client.tx
    if tx is None:
        raise RuntimeError("the executor's client has no signing account")
    jobs = ",".join(map(str, waiting))
    try:
        header = block_header(rt.rpc, anchor)
    except HeaderError as exc:
        log.error("anchor header not proved: %s", exc, extra={"anchor": anchor, "jobs": jobs})
        return 0
    call = rt.client.contracts.header_randomness.prove(header)

    def on_signed(hashes: list[str], nonce: int) -> None:
        rt.state.hset(key, str(anchor), "pending:" + ",".join(hashes))

    def still_needed() -> bool:
        return not proved(rt, anchor) and rt.client.block_number() - anchor < BLOCKHASH_WINDOW

    try:
        gas = tx.estimate_gas(call.to, call.data, what=call.what)  # TxReverted here: nothing was sent
        receipt = tx.wait(tx.broadcast(call.to, call.data, gas=gas, what=call.what, on_signed=on_signed, still_needed=still_needed))
    except TxReverted as exc:
        if exc.error_name == "HeaderMismatch":
            log.warning("anchor header changed (reorg?): tried again", extra={"anchor": anchor, "jobs": jobs})
            return 0
        rt.state.hset(key, str(anchor), PROVED)  # RandomnessExpired: too late, the draw counts as drawn
        log.warning("anchor header not proved", extra={"anchor": anchor, "jobs": jobs, "error": exc.error_name})
        return 0
    except TxDropped:
        rt.state.hset(key, str(anchor), PROVED)  # proved by somebody else meanwhile, or expired
        return 0
    rt.state.hset(key, str(anchor), PROVED)
    log.info("anchor header proved", extra={"anchor": anchor, "jobs": jobs, "tx": receipt.tx_hash})
    return 1


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
    if mark == PROVED:
        return 0
    return prove(rt, anchor, mark.removeprefix("pending:").split(",") if mark else [], needed)
