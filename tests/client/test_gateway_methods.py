"""depin.chain's typed methods: the JSON-RPC each sends, and what it makes of the answer (no node)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from depin.chain import RpcClient, RpcUnavailable, probe

A = "0x" + "11" * 20
H = "0x" + "ab" * 32


class Recorder:
    """A provider answering `result` to every request and remembering what was asked."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.asked: list[tuple[str, list[Any]]] = []
        self.endpoint_uri = "fake://node"

    def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        self.asked.append((method, params))
        return {"jsonrpc": "2.0", "id": 1, "result": self.result}


CASES: list[tuple[Callable[[RpcClient], Any], Any, str, list[Any], Any]] = [
    (lambda r: r.chain_id(), "0x7a69", "eth_chainId", [], 31337),
    (lambda r: r.block_number(), "0x10", "eth_blockNumber", [], 16),
    (lambda r: r.latest_block(), {"number": "0x1"}, "eth_getBlockByNumber", ["latest", False], {"number": "0x1"}),
    (lambda r: r.accounts(), [A], "eth_accounts", [], [A]),
    (lambda r: r.get_code(A), "0x6000", "eth_getCode", [A, "latest"], "0x6000"),
    (lambda r: r.get_code(A, 7), None, "eth_getCode", [A, "0x7"], "0x"),
    (lambda r: r.get_balance(A), "0x64", "eth_getBalance", [A, "latest"], 100),
    (lambda r: r.nonce(A), "0x5", "eth_getTransactionCount", [A, "pending"], 5),
    (lambda r: r.nonce(A, "latest"), "0x4", "eth_getTransactionCount", [A, "latest"], 4),
    (lambda r: r.eth_call({"to": A, "data": "0x"}, 3), "0x01", "eth_call", [{"to": A, "data": "0x"}, "0x3"], "0x01"),
    (lambda r: r.estimate_gas({"to": A}), "0x5208", "eth_estimateGas", [{"to": A}], 21_000),
    (lambda r: r.max_priority_fee(), "0x3b9aca00", "eth_maxPriorityFeePerGas", [], 10**9),
    (lambda r: r.fee_history(5, "latest", [50]), {"reward": []}, "eth_feeHistory", ["0x5", "latest", [50]], {"reward": []}),
    (lambda r: r.send_raw_transaction("0xf8"), H, "eth_sendRawTransaction", ["0xf8"], H),
    (lambda r: r.send_transaction({"from": A, "to": A}), H, "eth_sendTransaction", [{"from": A, "to": A}], H),
    (lambda r: r.get_transaction(H), None, "eth_getTransactionByHash", [H], None),
    (lambda r: r.get_receipt(H), {"status": "0x1"}, "eth_getTransactionReceipt", [H], {"status": "0x1"}),
    (lambda r: r.pool_transaction(A, 2), {"pending": {"2": {"hash": H}}, "queued": {}}, "txpool_contentFrom", [A],
     {"hash": H}),
    (lambda r: r.pool_transaction(A, 3), {"pending": {"2": {"hash": H}}, "queued": {}}, "txpool_contentFrom", [A], None),
    (lambda r: r.block_receipts(9), [{"status": "0x1"}], "eth_getBlockReceipts", ["0x9"], [{"status": "0x1"}]),
    (lambda r: r.trace_transaction(H), {"output": "0x"}, "debug_traceTransaction", [H, {"tracer": "callTracer"}],
     {"output": "0x"}),
]


@pytest.mark.parametrize(("invoke", "answer", "method", "params", "expected"), CASES)
def test_each_typed_method_sends_its_json_rpc_call(
    invoke: Callable[[RpcClient], Any], answer: Any, method: str, params: list[Any], expected: Any
) -> None:
    node = Recorder(answer)
    assert invoke(RpcClient(SimpleNamespace(provider=node), retries=0)) == expected
    assert node.asked == [(method, params)]


def test_latest_block_refuses_a_missing_block() -> None:
    with pytest.raises(RpcUnavailable, match="no latest block"):
        RpcClient(SimpleNamespace(provider=Recorder(None)), retries=0).latest_block()


def test_probe_tries_once_and_says_the_node_is_away() -> None:
    with pytest.raises(RpcUnavailable, match="eth_chainId"):
        probe("http://127.0.0.1:9", RpcClient.chain_id, timeout=0.5)


def test_pool_transaction_falls_back_to_the_whole_pool() -> None:
    """A node without ``txpool_contentFrom`` (anvil): the sender's part of ``txpool_content``,
    whatever the case of its address key."""
    class Anvil(Recorder):
        def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
            self.asked.append((method, params))
            if method == "txpool_contentFrom":
                return {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "Method not found"}}
            return {"jsonrpc": "2.0", "id": 1, "result": self.result}

    node = Anvil({"pending": {A.upper().replace("0X", "0x"): {"2": {"hash": H}}}, "queued": {}})
    assert RpcClient(SimpleNamespace(provider=node), retries=0).pool_transaction(A, 2) == {"hash": H}
    assert [m for m, _ in node.asked] == ["txpool_contentFrom", "txpool_content"]
