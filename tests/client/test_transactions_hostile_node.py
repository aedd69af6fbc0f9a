"""depin.transactions against a node that loses answers, lies, or lags: never two payments for one
send, a possibly-sent transaction is never forgotten, fees are capped, and a lagging receipt is not
mistaken for a dropped transaction.

The chain is a real anvil; between it and the signer sits :class:`Proxy`, a JSON-RPC provider that
forwards every call to anvil and then loses or rewrites some answers: the node behaviour anvil
cannot produce (an answer lost after the node accepted the transaction, a node that forwards a
transaction and answers "nonce too low", an absurd fee suggestion, a receipt not served yet)."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import HTTPProvider

from depin.chain import RpcClient
from depin.transactions import GWEI, Transactor, TxTimeout

from .conftest import Devnet

DEAD = "0x000000000000000000000000000000000000dEaD"
NODE_URL: list[str] = []  # anvil's, for the rules
Rule = Callable[[str, list[Any], Callable[[], dict[str, Any]]], dict[str, Any]]


class Proxy:
    """Forwards JSON-RPC to anvil; `rules[method]` may forward (call `forward()`), drop, or rewrite.
    Records every call it saw in `calls` (method, first parameter)."""

    def __init__(self, url: str, rules: dict[str, Rule]) -> None:
        self.node = HTTPProvider(url)
        self.endpoint_uri = url
        self.rules = rules
        self.calls: list[tuple[str, Any]] = []

    def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        self.calls.append((method, params[0] if params else None))
        def forward() -> dict[str, Any]:
            return dict(self.node.make_request(method, params))

        rule = self.rules.get(method)
        return rule(method, params, forward) if rule else forward()

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)


def signer(devnet: Devnet, rules: dict[str, Rule], **options: Any) -> tuple[Transactor, Proxy]:
    NODE_URL[:] = [devnet.url]
    proxy = Proxy(devnet.url, rules)
    rpc = RpcClient(SimpleNamespace(provider=proxy), retries=0, sleep=lambda _s: None)
    options.setdefault("rebroadcast_after", None)
    options.setdefault("receipt_timeout", 20)
    return Transactor(rpc, devnet.new_account(), devnet.deployment.chain_id, sleep=lambda _s: None, **options), proxy


def nonce_of(devnet: Devnet, address: str) -> int:
    return int(devnet.chain.rpc.call("eth_getTransactionCount", [address, "latest"]), 16)


def balance(devnet: Devnet, address: str) -> int:
    return int(devnet.chain.rpc.call("eth_getBalance", [address, "latest"]), 16)


def forward_and_mine(forward: Callable[[], dict[str, Any]]) -> None:
    """Sends the transaction to anvil and waits until anvil (automining) has it in a block, so that
    what the signer sees next is a mined transaction, whatever the timing."""
    answer = forward()
    tx_hash = answer.get("result")
    if tx_hash is None:
        return
    node = HTTPProvider(NODE_URL[0])
    deadline = time.monotonic() + 10
    while not node.make_request("eth_getTransactionReceipt", [tx_hash]).get("result"):
        assert time.monotonic() < deadline, f"anvil did not mine {tx_hash}"
        time.sleep(0.01)


def lost_answer(_method: str, _params: list[Any], forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    forward_and_mine(forward)  # anvil accepts and mines it; the answer never arrives
    raise TimeoutError("Read timed out")


def first_only(rule: Rule) -> Rule:
    """`rule` for the first call, plain forwarding after it."""
    used: list[bool] = []

    def once(method: str, params: list[Any], forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if used:
            return forward()
        used.append(True)
        return rule(method, params, forward)

    return once


def lying(message: str) -> Rule:
    """A node that forwards the transaction (anvil mines it) and answers an error anyway."""

    def rule(_method: str, _params: list[Any], forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        forward_and_mine(forward)
        return {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": message}}

    return rule


def flaky_lookup(_method: str, _params: list[Any], _forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    raise ConnectionError("connection reset by peer")


def pays_once(devnet: Devnet, tx: Transactor, proxy: Proxy) -> None:
    """One send() of 1 ether: exactly one transaction mined, exactly 1 ether moved."""
    start, before = nonce_of(devnet, tx.address), balance(devnet, DEAD)
    receipt = tx.send(DEAD, "0x", value=10**18, gas=21_000, what="pay 1 ether")
    assert receipt.status == 1
    assert nonce_of(devnet, tx.address) == start + 1
    assert balance(devnet, DEAD) - before == 10**18
    assert proxy.count("eth_getTransactionByHash") >= 1  # it asked before deciding


def test_lost_answer_then_nonce_too_low_and_a_failed_lookup_does_not_pay_twice(devnet: Devnet) -> None:
    """Proxy: the first send's answer is lost (anvil mined it), the retry gets anvil's real "nonce
    too low", and the lookup of our hash fails once. The signer cannot know: it must count the
    version as sent, not re-sign the payment at the next nonce."""
    tx, proxy = signer(devnet, {"eth_sendRawTransaction": first_only(lost_answer),
                                "eth_getTransactionByHash": first_only(flaky_lookup)})
    pays_once(devnet, tx, proxy)


@pytest.mark.parametrize("message", ["nonce too low", "replacement transaction underpriced"])
def test_a_node_that_forwards_and_answers_a_nonce_error_does_not_make_it_pay_again(devnet: Devnet, message: str) -> None:
    """Proxy: a lying node forwards every transaction to anvil (mined) and answers `message`. Our
    hash is known to the node, so the version counts as sent; no second (third, fourth) payment."""
    tx, proxy = signer(devnet, {"eth_sendRawTransaction": lying(message)})
    pays_once(devnet, tx, proxy)
    assert proxy.count("eth_sendRawTransaction") == 1


def test_every_answer_lost_is_waited_for_not_raised_without_a_hash(devnet: Devnet) -> None:
    """Proxy: every send reaches anvil (mined) but no answer comes back. The send is not an error
    without a hash (the user would send again): the version counts as possibly sent and the wait
    finds its receipt."""
    tx, proxy = signer(devnet, {"eth_sendRawTransaction": lost_answer})
    start = nonce_of(devnet, tx.address)
    receipt = tx.send(DEAD, "0x", value=1, gas=21_000, what="pay")
    assert receipt.status == 1 and nonce_of(devnet, tx.address) == start + 1
    assert proxy.count("eth_sendRawTransaction") == 4  # the same bytes, four times
    assert len({p for m, p in proxy.calls if m == "eth_sendRawTransaction"}) == 1


def test_a_send_that_never_arrives_times_out_naming_its_hash(devnet: Devnet) -> None:
    """Proxy: sends never reach anvil and get no answer (the node is away for them). The caller
    gets TxTimeout with the hash and nonce ("it may still be mined"), and the signer keeps the
    nonce: its next send, once the node is back, heals it with the same bytes first."""
    def never(_m: str, _p: list[Any], _f: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        raise TimeoutError("Read timed out")

    rules: dict[str, Rule] = {"eth_sendRawTransaction": never}
    tx, _proxy = signer(devnet, rules, receipt_timeout=0.5)
    start = nonce_of(devnet, tx.address)
    with pytest.raises(TxTimeout, match="may still be mined") as info:
        tx.send(DEAD, "0x", value=1, gas=21_000, what="pay")
    # the first version, and any re-sent by healing during the wait (same nonce, higher fees)
    assert info.value.nonce == start and info.value.hashes
    assert all(h in str(info.value) for h in info.value.hashes)
    del rules["eth_sendRawTransaction"]  # the node is back
    following = tx.send(DEAD, "0x", value=2, gas=21_000, what="pay again")
    mined = [h for h in info.value.hashes if devnet.chain.rpc.call("eth_getTransactionReceipt", [h])]
    assert len(mined) == 1  # healed at its own nonce before the next one: paid once
    assert following.status == 1 and nonce_of(devnet, tx.address) == start + 2


def huge_tip(_m: str, _p: list[Any], forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "result": hex(50_000 * GWEI)}


def sent_fees(devnet: Devnet, tx_hash: str) -> tuple[int, int]:
    found = devnet.chain.rpc.call("eth_getTransactionByHash", [tx_hash])
    return int(found["maxFeePerGas"], 16), int(found["maxPriorityFeePerGas"], 16)


def test_a_node_suggesting_an_absurd_tip_is_capped(devnet: Devnet, caplog: pytest.LogCaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxy: eth_maxPriorityFeePerGas answers 50,000 gwei (1.05 ether for a 21k-gas transfer).
    The tip is clamped to the default cap (100 gwei), maxFeePerGas to at most 1000 gwei, with one
    warning per fee suggestion."""
    monkeypatch.delenv("DEPIN_MAX_FEE_GWEI", raising=False)
    monkeypatch.delenv("DEPIN_MAX_TIP_GWEI", raising=False)
    tx, _proxy = signer(devnet, {"eth_maxPriorityFeePerGas": huge_tip})
    before = balance(devnet, tx.address)
    with caplog.at_level(logging.WARNING, logger="depin.transactions"):
        receipt = tx.send(DEAD, "0x", gas=21_000, what="plain")
    max_fee, tip = sent_fees(devnet, receipt.tx_hash)
    assert tip == 100 * GWEI and tip <= max_fee <= 1000 * GWEI
    assert before - balance(devnet, tx.address) <= 21_000 * 1000 * GWEI
    assert len([r for r in caplog.records if "clamped" in r.getMessage()]) == 1


def test_fee_caps_come_from_the_environment(devnet: Devnet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPIN_MAX_TIP_GWEI", "2")
    monkeypatch.setenv("DEPIN_MAX_FEE_GWEI", "50")
    tx, _proxy = signer(devnet, {"eth_maxPriorityFeePerGas": huge_tip})
    max_fee, tip = sent_fees(devnet, tx.send(DEAD, "0x", gas=21_000).tx_hash)
    assert tip == 2 * GWEI and max_fee <= 50 * GWEI
    monkeypatch.setenv("DEPIN_MAX_FEE_GWEI", "lots")
    with pytest.raises(ValueError, match="DEPIN_MAX_FEE_GWEI"):
        signer(devnet, {})


@pytest.mark.parametrize("still_needed", [None, True], ids=["no-check", "still-needed"])
def test_a_lagging_receipt_is_not_taken_for_a_dropped_transaction(devnet: Devnet, still_needed: bool | None) -> None:
    """Proxy: a load-balanced node whose receipt backend lags: the nonce has moved on but the
    receipt of our (mined) transaction is served only once the signer has looked the transaction
    up by hash and seen its block. The wait must not raise TxDropped ("none was mined"), nor send
    the payment again with a fresh nonce; it waits for the receipt."""
    state = {"looked_up": False}

    def lagging_receipt(_m: str, params: list[Any], forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if not state["looked_up"]:
            return {"jsonrpc": "2.0", "id": 1, "result": None}
        return forward()

    def lookup(_m: str, params: list[Any], forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        answer = forward()
        if (answer.get("result") or {}).get("blockNumber"):
            state["looked_up"] = True
        return answer

    tx, proxy = signer(devnet, {"eth_getTransactionReceipt": lagging_receipt, "eth_getTransactionByHash": lookup})
    tx.heal_interval = 0.0  # check the nonce at once
    start, before = nonce_of(devnet, tx.address), balance(devnet, DEAD)
    check = None if still_needed is None else (lambda: True)
    receipt = tx.send(DEAD, "0x", value=10**18, gas=21_000, what="pay", still_needed=check)
    assert receipt.status == 1 and state["looked_up"]
    assert nonce_of(devnet, tx.address) == start + 1 and balance(devnet, DEAD) - before == 10**18
    assert proxy.count("eth_sendRawTransaction") == 1


@pytest.mark.parametrize("ahead", [0, 1], ids=["orphaned-block", "block-not-served-yet"])
def test_a_receipt_from_a_block_off_the_canonical_chain_is_not_taken(devnet: Devnet, ahead: int) -> None:
    """Proxy: while our transaction is not mined (mining is paused), eth_getTransactionReceipt
    answers a receipt for it from a block that is not canonical: one at the head's height with
    another hash (a backend that has just reorged, or an orphan served by a load balancer), or one
    above the head (a backend ahead of this one). The signer must not return it (the caller would
    act on a transaction that is not mined): it checks eth_getBlockByNumber(receipt.blockNumber)
    and keeps waiting while that block's hash differs. Once it has looked, the node mines the
    transaction for real; the receipt returned is that one, from a canonical block."""
    forged_hash = "0x" + "ee" * 32
    state: dict[str, Any] = {"number": None, "checked": False}

    def stale_receipt(_m: str, params: list[Any], forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        answer = forward()
        if answer.get("result"):
            return answer  # mined for real: the true receipt
        if state["number"] is None:
            state["number"] = devnet.chain.rpc.block_number() + ahead
        return {"jsonrpc": "2.0", "id": 1, "result": {
            "transactionHash": params[0], "blockHash": forged_hash, "blockNumber": hex(state["number"]),
            "transactionIndex": "0x0", "gasUsed": hex(21_000), "cumulativeGasUsed": hex(21_000), "status": "0x1",
            "effectiveGasPrice": hex(GWEI), "logs": [], "from": tx.address, "to": DEAD}}

    def block_check(_m: str, params: list[Any], forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        answer = forward()
        if state["number"] is not None and params[0] == hex(state["number"]) and not state["checked"]:
            state["checked"] = True  # the signer looked: now the node mines our transaction for real
            devnet.chain.rpc.call("evm_mine")
        return answer

    tx, _proxy = signer(devnet, {"eth_getTransactionReceipt": stale_receipt, "eth_getBlockByNumber": block_check})
    with devnet.chain.manual_mining():
        receipt = tx.send(DEAD, "0x", value=1, gas=21_000, what="pay")
    canonical = devnet.chain.rpc.get_block(receipt.block_number)
    assert canonical is not None and receipt.raw["blockHash"] == canonical["hash"] != forged_hash
    assert state["checked"]
    assert devnet.chain.rpc.call("eth_getTransactionReceipt", [receipt.tx_hash])["blockHash"] == canonical["hash"]


class HeldTransaction:
    """What geth does with a transaction priced below the current base fee, which anvil cannot do
    (anvil drops it from its pool when it mines the next block, and refuses one sent below the base
    fee): the node keeps it in its pool, pending, for as long as it likes. The rules answer as geth
    would while it is held: the account's "pending" nonce counts it, ``eth_getTransactionByHash``
    and ``txpool_content`` show it (no block), and a transaction at its nonce replaces it only with
    both fees at least 10 % higher ("replacement transaction underpriced" otherwise; the replacement
    then goes to anvil)."""

    def __init__(self, address: str, raw: str) -> None:
        sent = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        self.address, self.nonce, self.max_fee, self.tip = address, sent["nonce"], sent["maxFeePerGas"], sent["maxPriorityFeePerGas"]
        self.hash = "0x" + keccak(HexBytes(raw)).hex()
        self.held = True
        self.view = {"hash": self.hash, "from": address, "to": "0x" + sent["to"].hex(), "nonce": hex(self.nonce),
                     "value": hex(sent["value"]), "gas": hex(sent["gas"]), "maxFeePerGas": hex(self.max_fee),
                     "maxPriorityFeePerGas": hex(self.tip), "input": "0x" + sent["data"].hex(), "type": "0x2",
                     "chainId": hex(sent["chainId"]), "blockHash": None, "blockNumber": None, "transactionIndex": None}
        self.replaced_by: dict[str, Any] | None = None

    def rules(self) -> dict[str, Rule]:
        def count(_m: str, params: list[Any], forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            answer = forward()
            if self.held and params[1] == "pending" and params[0].lower() == self.address.lower():
                answer["result"] = hex(max(int(answer["result"], 16), self.nonce + 1))
            return answer

        def by_hash(_m: str, params: list[Any], forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            if self.held and params[0] == self.hash:
                return {"jsonrpc": "2.0", "id": 1, "result": dict(self.view)}
            return forward()

        def pool(_m: str, _params: list[Any], forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            answer = forward()
            if self.held:
                answer["result"]["pending"].setdefault(self.address, {})[str(self.nonce)] = dict(self.view)
            return answer

        def send(_m: str, params: list[Any], forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            sent = TypedTransaction.from_bytes(HexBytes(params[0])).as_dict()
            if self.held and sent["nonce"] == self.nonce:
                if sent["maxFeePerGas"] * 10 < self.max_fee * 11 or sent["maxPriorityFeePerGas"] * 10 < self.tip * 11:
                    return {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "replacement transaction underpriced"}}
                self.held, self.replaced_by = False, sent
            return forward()

        return {"eth_getTransactionCount": count, "eth_getTransactionByHash": by_hash, "txpool_content": pool,
                "eth_sendRawTransaction": send}


def signer_behind_a_held_payment(devnet: Devnet) -> tuple[Transactor, Proxy, HeldTransaction]:
    """A signer whose next nonce the node (geth, simulated) holds with a payment of 1 ether to DEAD
    it signed before a crash, at 30 / 20 gwei, not in its journal."""
    tx, proxy = signer(devnet, {}, receipt_timeout=10)
    signed = tx.account.sign_transaction({
        "type": 2, "chainId": devnet.deployment.chain_id, "nonce": nonce_of(devnet, tx.address), "to": DEAD, "value": 10**18,
        "data": "0x", "gas": 21_000, "maxFeePerGas": 30 * GWEI, "maxPriorityFeePerGas": 20 * GWEI})
    held = HeldTransaction(tx.address, "0x" + bytes(signed.raw_transaction).hex())
    proxy.rules.update(held.rules())
    return tx, proxy, held


def test_a_pre_crash_transaction_stuck_below_the_base_fee_is_replaced_by_a_no_op_after_a_bound(devnet: Devnet) -> None:
    """A signer restarts while the node (geth, simulated: :class:`HeldTransaction`) holds a payment
    it sent before the crash, at the next nonce, priced below the base fee: it is never mined, and
    the payment the restarted signer sends now queues behind it (anvil holds it, a nonce gap below).
    The restarted signer's heal leaves the pre-crash transaction alone while it is younger than the
    bound (the caller may be waiting for it); past it, it fills the nonce with a no-op priced 10 %+
    above the held transaction's fees (the node's replacement rule), and the new payment is mined
    behind it. The held payment is never mined; exactly one payment reaches DEAD."""
    tx, proxy, held = signer_behind_a_held_payment(devnet)
    start, before = held.nonce, balance(devnet, DEAD)
    tx.stuck_after = 3600.0
    payment = tx.broadcast(DEAD, "0x", value=10**18 + 1, gas=21_000, what="new payment")
    assert payment.nonce == start + 1  # behind the held one
    assert tx.heal() == [] and tx.heal() == []  # younger than the bound: left alone
    assert held.held and proxy.count("eth_sendRawTransaction") == 1
    tx.stuck_after = 0.0
    receipt = tx.wait(payment)
    assert receipt.status == 1 and not held.held and held.replaced_by is not None
    assert proxy.count("txpool_content") >= 1  # the held transaction's fees, read from the pool
    noop = held.replaced_by  # a no-op: 0 ether to ourselves, both fees >= +10 %
    assert noop["value"] == 0 and noop["to"].hex().lower() == tx.address[2:].lower()
    assert noop["maxPriorityFeePerGas"] * 10 >= 20 * GWEI * 11 and noop["maxFeePerGas"] * 10 >= 30 * GWEI * 11
    assert nonce_of(devnet, tx.address) == start + 2
    assert balance(devnet, DEAD) - before == 10**18 + 1
    tx.heal()
    at_start = [raw for m, raw in proxy.calls if m == "eth_sendRawTransaction"
                and TypedTransaction.from_bytes(HexBytes(raw)).as_dict()["nonce"] == start]
    assert len(at_start) == 1  # the no-op, once: journaled, it is never replaced


def test_without_a_txpool_api_the_no_op_outbids_its_own_refused_tries_until_the_node_takes_it(devnet: Devnet) -> None:
    """The same held pre-crash payment, priced far above the node's suggestion (30 / 20 gwei against
    about 1), on a node with no txpool API (``txpool_contentFrom`` and ``txpool_content`` unknown, as
    on many hosted endpoints): the signer cannot read the held transaction's fees, so its first
    no-op, at the suggestion, is refused as underpriced. Each later heal offers both fees 12.5 %
    above its own last refused try, never less, until the node takes one: the nonce is filled, the
    new payment behind it is mined, and the held one never is. Nothing is sent past the caps."""
    tx, proxy, held = signer_behind_a_held_payment(devnet)
    start, before = held.nonce, balance(devnet, DEAD)

    def unknown(method: str, _params: list[Any], _forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": f"the method {method} does not exist/is not available"}}

    proxy.rules.update({"txpool_content": unknown, "txpool_contentFrom": unknown})
    payment = tx.broadcast(DEAD, "0x", value=10**18 + 1, gas=21_000, what="new payment")
    assert payment.nonce == start + 1
    tx.stuck_after = 0.0
    heals = 0
    while held.held:
        heals += 1
        assert heals <= 60, "the no-op never outbid the held transaction"
        tx.heal()
    tries = [TypedTransaction.from_bytes(HexBytes(raw)).as_dict() for m, raw in proxy.calls if m == "eth_sendRawTransaction"]
    noops = [t for t in tries if t["nonce"] == start]
    assert len(noops) >= 2 and held.replaced_by == noops[-1]  # refused at first: the fees were not readable
    for earlier, later in itertools.pairwise(noops):
        assert later["maxPriorityFeePerGas"] * 8 >= earlier["maxPriorityFeePerGas"] * 9
        assert later["maxFeePerGas"] * 8 >= earlier["maxFeePerGas"] * 9
    assert all(t["maxFeePerGas"] <= tx.max_fee and t["maxPriorityFeePerGas"] <= tx.max_tip for t in tries)
    assert noops[-1]["value"] == 0 and noops[-1]["maxPriorityFeePerGas"] * 10 >= 20 * GWEI * 11
    assert tx.wait(payment).status == 1
    assert nonce_of(devnet, tx.address) == start + 2 and balance(devnet, DEAD) - before == 10**18 + 1
    assert proxy.count("txpool_content") + proxy.count("txpool_contentFrom") >= 1  # asked, and told no


def test_a_journaled_transaction_held_in_the_pool_is_not_replaced_by_the_heal(devnet: Devnet) -> None:
    """The same held transaction, but this signer's own (journaled): the heal never fills its
    nonce with a no-op. Younger than the bound it is left alone (its waiter bumps it); past the
    bound it is bumped: the same payment at higher fees."""
    tx, proxy = signer(devnet, {})
    holds: list[HeldTransaction] = []

    def hold(_m: str, params: list[Any], _forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        holds.append(HeldTransaction(tx.address, params[0]))
        proxy.rules.update(holds[0].rules())  # the node holds it from now on
        return {"jsonrpc": "2.0", "id": 1, "result": holds[0].hash}

    proxy.rules["eth_sendRawTransaction"] = hold
    tx.stuck_after = 3600.0
    pending = tx.broadcast(DEAD, "0x", value=1, gas=21_000, what="ours")
    assert pending.tx_hash == holds[0].hash
    assert tx.heal() == [] and tx.heal() == []
    assert holds[0].held and proxy.count("eth_sendRawTransaction") == 1
    tx.stuck_after = 0.0
    assert tx.heal() == [pending.nonce]
    bumped = holds[0].replaced_by
    assert bumped is not None and "0x" + bumped["to"].hex() == DEAD.lower() and bumped["value"] == 1  # not a no-op
    assert tx.wait(pending).tx_hash == pending.tx_hash != holds[0].hash


def test_an_abandoned_journaled_transaction_stuck_in_the_pool_is_bumped_after_the_bound(devnet: Devnet) -> None:
    """The node holds (as geth does below the base fee) a payment this signer sent and nobody waits
    for any more (its wait timed out, or its caller died): no waiter bumps it, and the heal leaves
    a known transaction of ours alone, so every later transaction queues behind it. Past the bound,
    the heal re-broadcasts it with fees 12.5 % higher (same nonce, same intent); both payments are
    then mined, each once."""
    tx, proxy = signer(devnet, {}, receipt_timeout=10)
    start, before = nonce_of(devnet, tx.address), balance(devnet, DEAD)
    holds: list[HeldTransaction] = []

    def hold_first(_m: str, params: list[Any], forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if holds:
            return forward()
        holds.append(HeldTransaction(tx.address, params[0]))
        proxy.rules.update(holds[0].rules())  # the node holds it from now on, as geth does
        return {"jsonrpc": "2.0", "id": 1, "result": holds[0].hash}

    proxy.rules["eth_sendRawTransaction"] = hold_first
    abandoned = tx.broadcast(DEAD, "0x", value=10**18, gas=21_000, what="abandoned payment")  # nobody waits for it
    assert holds and holds[0].held
    tx.stuck_after = 0.0
    receipt = tx.send(DEAD, "0x", value=2, gas=21_000, what="next payment")
    assert receipt.status == 1 and not holds[0].held
    assert nonce_of(devnet, tx.address) == start + 2
    assert balance(devnet, DEAD) - before == 10**18 + 2  # the abandoned payment mined once (bumped), the next one once
    assert abandoned.hashes[0] == holds[0].hash and len(abandoned.hashes) >= 2


def test_a_receipt_of_another_transaction_is_not_taken(devnet: Devnet) -> None:
    """Proxy: a node that mixes up answers (a load balancer pairing replies with the wrong
    requests) answers eth_getTransactionReceipt for our transaction, not mined yet, with the real
    receipt of another, mined one: canonical block, status 1, its logs. The signer must not return
    it (a requester would read another's job id from its logs); once the node has answered it
    twice, it mines ours, and the receipt returned is ours."""
    other = signer(devnet, {})[0].send(DEAD, "0x", value=1, gas=21_000, what="someone else's")
    served = {"wrong": 0}

    def mixed_up(_m: str, params: list[Any], forward: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        answer = forward()
        if answer.get("result"):
            return answer
        served["wrong"] += 1
        if served["wrong"] == 2:
            devnet.chain.rpc.call("evm_mine")
        return {"jsonrpc": "2.0", "id": 1, "result": dict(other.raw)}

    tx, _proxy = signer(devnet, {"eth_getTransactionReceipt": mixed_up})
    with devnet.chain.manual_mining():
        receipt = tx.send(DEAD, "0x", value=1, gas=21_000, what="pay")
    assert receipt.tx_hash != other.tx_hash and receipt.raw["from"].lower() == tx.address.lower()
    assert served["wrong"] >= 2
