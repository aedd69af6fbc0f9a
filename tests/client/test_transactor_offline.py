"""Transactor's answers to node refusals, against a scripted fake node (no chain needed)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from eth_account import Account

from depin.chain import RpcClient
from depin.errors import ChainError
from depin.transactions import Transactor

TO = "0x" + "11" * 20


class FakeNode:
    """Answers JSON-RPC from a dict of handlers; eth_sendRawTransaction answers come from `sends`."""

    def __init__(self, sends: list[Callable[[str], Any]], pending_nonce: int = 5) -> None:
        self.sends = list(sends)
        self.raw: list[str] = []
        self.pending_nonce = pending_nonce
        self.endpoint_uri = "fake://node"

    def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        if method == "eth_sendRawTransaction":
            self.raw.append(params[0])
            return self.sends.pop(0)(params[0])
        result = {
            "eth_getBlockByNumber": {"baseFeePerGas": hex(10**9), "timestamp": "0x1"},
            "eth_maxPriorityFeePerGas": hex(10**9),
            "eth_getTransactionCount": hex(self.pending_nonce),
            "eth_getTransactionByHash": None,
        }[method]
        return {"jsonrpc": "2.0", "id": 1, "result": result}


def ok(_raw: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "result": "0x" + "ab" * 32}


def error(message: str, code: int = -32000) -> Callable[[str], dict[str, Any]]:
    return lambda _raw: {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}}


def lost(_raw: str) -> dict[str, Any]:
    raise ConnectionError("connection reset by peer")


def transactor(node: FakeNode) -> Transactor:
    rpc = RpcClient(SimpleNamespace(provider=node), retries=0, sleep=lambda _s: None)
    return Transactor(rpc, Account.create(), 31337, sleep=lambda _s: None)


def _nonce(raw: str) -> int:
    from eth_account.typed_transactions import TypedTransaction
    from hexbytes import HexBytes

    return TypedTransaction.from_bytes(HexBytes(raw)).as_dict()["nonce"]


def test_already_known_counts_as_sent() -> None:
    node = FakeNode([error("already known")])
    tx = transactor(node)
    pending = tx.broadcast(TO, "0x", gas=21_000)
    assert pending.nonce == 5 and len(pending.hashes) == 1
    assert tx._nonce == 6


def test_nonce_count_above_ours_is_adopted_before_sending() -> None:
    node = FakeNode([ok, ok], pending_nonce=5)
    tx = transactor(node)
    tx.broadcast(TO, "0x", gas=21_000)  # nonce 5
    node.pending_nonce = 8  # another process sent 6 and 7 (mined)
    pending = tx.broadcast(TO, "0x", gas=21_000)  # the nonce check before sending reads 8
    assert pending.nonce == 8 and [_nonce(r) for r in node.raw] == [5, 8]
    assert tx._nonce == 9


def test_nonce_too_low_resyncs_and_resigns() -> None:
    node = FakeNode([ok, error("nonce too low"), ok], pending_nonce=5)
    tx = transactor(node)
    tx.broadcast(TO, "0x", gas=21_000)  # nonce 5
    node.pending_nonce = 6  # nonce 5 mined; another process is about to use 6
    pending = tx.broadcast(TO, "0x", gas=21_000)  # tries 6, refused, resyncs past it
    assert pending.nonce == 7 and [_nonce(r) for r in node.raw] == [5, 6, 7]
    assert tx._nonce == 8


def test_lost_answer_resends_the_same_bytes() -> None:
    node = FakeNode([lost, lost, ok])
    tx = transactor(node)
    pending = tx.broadcast(TO, "0x", gas=21_000)
    assert len(set(node.raw)) == 1 and len(node.raw) == 3  # identical bytes: cannot send twice
    assert pending.nonce == 5 and tx._nonce == 6


def test_node_that_stays_away_counts_the_version_as_possibly_sent() -> None:
    """Four lost answers: the version may have been broadcast, so it is journalled and the nonce
    advances (raising would invite a second send under a new nonce). The next broadcast heals it:
    the node does not know it, so the same bytes (the same hash) are sent again before nonce 6."""
    node = FakeNode([lost] * 4 + [ok, ok])
    tx = transactor(node)
    pending = tx.broadcast(TO, "0x", gas=21_000)
    assert pending.nonce == 5 and len(pending.hashes) == 1 and tx._nonce == 6
    assert tx._journal[5] is pending and len(set(node.raw)) == 1
    following = tx.broadcast(TO, "0x", gas=21_000)
    assert node.raw[4] == node.raw[0]  # healed with the same signed bytes
    assert following.nonce == 6 and [_nonce(r) for r in node.raw] == [5] * 5 + [6]


def test_fee_refusal_is_an_error_without_a_nonce_gap() -> None:
    node = FakeNode([error("transaction underpriced"), ok])
    tx = transactor(node)
    with pytest.raises(ChainError, match="refused the fees"):
        tx.broadcast(TO, "0x", gas=21_000)
    assert tx.broadcast(TO, "0x", gas=21_000).nonce == 5


def test_insufficient_funds() -> None:
    from depin.transactions import InsufficientGasFunds

    node = FakeNode([error("insufficient funds for gas * price + value")])
    with pytest.raises(InsufficientGasFunds, match="not enough ether"):
        transactor(node).broadcast(TO, "0x", gas=21_000)
