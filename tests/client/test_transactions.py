"""depin.transactions on a real anvil: nonces under concurrency, reverts decoded before sending and
after mining, and re-broadcast of a stuck transaction with bumped fees."""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from depin.chain import RpcClient
from depin.deployment import to_wei
from depin.transactions import PendingTx, Transactor, TxReverted, TxTimeout, error_name

from .conftest import Devnet


def nonce_of(devnet: Devnet, address: str, tag: str = "latest") -> int:
    return int(devnet.chain.rpc.call("eth_getTransactionCount", [address, tag]), 16)


def test_error_name() -> None:
    assert error_name("JobMarket.WrongStatus(jobId=1, actual=2, expected=1)") == "WrongStatus"
    assert error_name("Error('nope')") == "Error"
    assert error_name("Panic(0x11)") == "Panic"
    assert error_name("unknown error 0xdeadbeef") is None
    assert error_name("no revert data (out of gas, or a revert without a reason)") is None


def test_concurrent_sends_get_consecutive_nonces(devnet: Devnet) -> None:
    account = devnet.new_account()
    client = devnet.client(account)
    start = nonce_of(devnet, account.address)
    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda i: client.approve("JobMarket", i + 1), range(24)))
    assert len({r.tx_hash for r in receipts}) == 24
    assert all(r.status == 1 for r in receipts)
    assert nonce_of(devnet, account.address) == start + 24
    nonces = sorted(
        int(devnet.chain.rpc.call("eth_getTransactionByHash", [r.tx_hash])["nonce"], 16) for r in receipts
    )
    assert nonces == list(range(start, start + 24))


def test_stale_local_nonce_is_resynced(devnet: Devnet) -> None:
    """Another process sends from the same key: "nonce too low" makes the transactor re-read the nonce."""
    account = devnet.new_account()
    first, second = devnet.client(account), devnet.client(account)
    first.approve("JobMarket", 1)  # first's local nonce is now 1
    second.approve("JobMarket", 2)  # second started from the node: nonce 1 is used now
    receipt = first.approve("JobMarket", 3)  # first tries nonce 1, is refused, resyncs to 2
    assert receipt.status == 1
    assert nonce_of(devnet, account.address) == 3
    assert first.allowance(spender="JobMarket") == 3


def test_revert_is_decoded_and_nothing_is_sent(devnet: Devnet) -> None:
    account = devnet.new_account()
    client = devnet.client(account)
    before = nonce_of(devnet, account.address, "pending")
    with pytest.raises(TxReverted) as info:
        client.claim(10_000)
    assert info.value.error_name == "UnknownJob"
    assert info.value.reason == "JobMarket.UnknownJob(jobId=10000)"
    assert info.value.tx_hash is None and not info.value.sent
    assert "would revert" in str(info.value)
    assert nonce_of(devnet, account.address, "pending") == before
    # the local nonce did not advance either: the next transaction uses `before`
    receipt = client.approve("JobMarket", 5)
    assert int(devnet.chain.rpc.call("eth_getTransactionByHash", [receipt.tx_hash])["nonce"], 16) == before


def test_mined_revert_is_decoded(devnet: Devnet) -> None:
    """Sent with an explicit gas limit (no estimate), the revert happens on chain and is decoded."""
    account = devnet.new_account()
    client = devnet.client(account)
    data = client.codec.encode("JobMarket", "cancelJob", 10_001)
    with pytest.raises(TxReverted) as info:
        client.tx.send(client.market, data, gas=100_000, what="JobMarket.cancelJob")
    assert info.value.tx_hash is not None
    assert info.value.error_name == "UnknownJob"
    assert "JobMarket.UnknownJob(jobId=10001)" in str(info.value)
    receipt = devnet.chain.rpc.call("eth_getTransactionReceipt", [info.value.tx_hash])
    assert receipt["status"] == "0x0"


def _wait_until_versions(tx: Transactor, pending: PendingTx, versions: int) -> tuple[threading.Thread, dict[str, object]]:
    """Starts `tx.wait(pending)` in a thread (its receipt goes to the dict's "receipt") and polls
    until `versions` versions were broadcast (re-broadcasts while mining is held), for up to 60 s (a
    guard against a hang, never a wait: it returns as soon as they are there)."""
    result: dict[str, object] = {}
    waiter = threading.Thread(target=lambda: result.update(receipt=tx.wait(pending)))
    waiter.start()
    deadline = time.monotonic() + 60
    while len(pending.hashes) < versions and time.monotonic() < deadline:
        time.sleep(0.05)
    return waiter, result


def test_stuck_transaction_is_rebroadcast_with_higher_fees_and_mined_once(devnet: Devnet) -> None:
    account = devnet.new_account()
    rpc = RpcClient.from_url(devnet.url)
    tx = Transactor(rpc, account, devnet.deployment.chain_id, rebroadcast_after=0.3, receipt_timeout=30)
    market = devnet.deployment.addresses["JobMarket"]
    data = tx.codec.encode("RewardToken", "approve", market, 77)
    token = devnet.deployment.addresses["RewardToken"]
    start = nonce_of(devnet, account.address)
    with devnet.chain.manual_mining():
        gas = tx.estimate_gas(token, data)
        pending = tx.broadcast(token, data, gas=gas, what="approve")
        waiter, result = _wait_until_versions(tx, pending, 3)
        assert len(pending.hashes) >= 3, "expected at least two re-broadcasts"
        versions = [devnet.chain.rpc.call("eth_getTransactionByHash", [h]) for h in pending.hashes]
        fees = [int(v["maxPriorityFeePerGas"], 16) for v in versions if v is not None]
        assert all(b * 1000 >= a * 1125 for a, b in itertools.pairwise(fees)), fees
        assert all(int(v["nonce"], 16) == start for v in versions if v is not None)
        devnet.chain.mine()
        waiter.join(60)
    receipt = result["receipt"]
    mined = [h for h in pending.hashes if devnet.chain.rpc.call("eth_getTransactionReceipt", [h])]
    assert mined == [receipt.tx_hash]  # exactly one version mined: the last
    assert receipt.tx_hash == pending.hashes[-1]
    assert nonce_of(devnet, account.address) == start + 1
    assert int(devnet.chain.call("RewardToken", "allowance", account.address, market)) == 77


def test_on_signed_records_every_version_before_the_node_has_it(devnet: Devnet) -> None:
    """`on_signed` sees each version's hash (the first and every re-broadcast) while the node does
    not know it yet: a caller that records it there cannot lose a transaction that reached the pool."""
    account = devnet.new_account()
    rpc = RpcClient.from_url(devnet.url)
    tx = Transactor(rpc, account, devnet.deployment.chain_id, rebroadcast_after=0.3, receipt_timeout=30)
    token = devnet.deployment.addresses["RewardToken"]
    data = tx.codec.encode("RewardToken", "approve", token, 5)
    calls: list[tuple[list[str], int, bool]] = []

    def on_signed(hashes: list[str], nonce: int) -> None:
        known = devnet.chain.rpc.call("eth_getTransactionByHash", [hashes[-1]]) is not None
        calls.append((list(hashes), nonce, known))

    start = nonce_of(devnet, account.address)
    with devnet.chain.manual_mining():
        pending = tx.broadcast(token, data, gas=100_000, what="approve", on_signed=on_signed)
        assert calls == [([pending.tx_hash], start, False)]
        waiter, result = _wait_until_versions(tx, pending, 2)
        devnet.chain.mine()
        waiter.join(60)
    assert len(pending.hashes) >= 2, "expected a re-broadcast"
    # every version sent was named before it was sent, after the versions sent before it (a last
    # re-broadcast signed while the block was mined may have been refused: named, never sent)
    assert set(pending.hashes) <= {hashes[-1] for hashes, _, _ in calls}
    assert all(hashes[:-1] == pending.hashes[: len(hashes) - 1] for hashes, _, _ in calls)
    assert all(nonce == start and not known for _, nonce, known in calls)
    assert result["receipt"].tx_hash in pending.hashes


def test_timeout_names_the_hashes(devnet: Devnet) -> None:
    account = devnet.new_account()
    rpc = RpcClient.from_url(devnet.url)
    tx = Transactor(rpc, account, devnet.deployment.chain_id, rebroadcast_after=None, receipt_timeout=0.3)
    token = devnet.deployment.addresses["RewardToken"]
    data = tx.codec.encode("RewardToken", "approve", token, 1)
    with devnet.chain.manual_mining():
        with pytest.raises(TxTimeout) as info:
            tx.send(token, data, gas=100_000)
        assert info.value.hashes and info.value.nonce == nonce_of(devnet, account.address)
        devnet.chain.mine()


def test_not_enough_ether_for_gas(devnet: Devnet) -> None:
    account = devnet.new_account(tokens=1, ether=0)
    client = devnet.client(account)
    with pytest.raises(Exception) as info:
        client.approve("JobMarket", to_wei(1))
    assert "ether" in str(info.value) or "funds" in str(info.value)


def test_nonce_taken_by_another_transaction_is_reported_as_dropped(devnet: Devnet) -> None:
    from depin.transactions import TxDropped

    account = devnet.new_account()
    rpc = RpcClient.from_url(devnet.url)
    tx = Transactor(rpc, account, devnet.deployment.chain_id, rebroadcast_after=0.2, receipt_timeout=20)
    token = devnet.deployment.addresses["RewardToken"]
    with devnet.chain.manual_mining():
        pending = tx.broadcast(token, tx.codec.encode("RewardToken", "approve", token, 1), gas=100_000)
        # another signer with the same key replaces it in the pool (same nonce, 10x the fees), and it is mined
        other = dict(pending.fields, data=tx.codec.encode("RewardToken", "approve", token, 2),
                     maxFeePerGas=pending.fields["maxFeePerGas"] * 10,
                     maxPriorityFeePerGas=pending.fields["maxPriorityFeePerGas"] * 10)
        signed = account.sign_transaction(other)
        rpc.call("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
        devnet.chain.mine()
        with pytest.raises(TxDropped, match=f"nonce {pending.nonce}") as info:
            tx.wait(pending)
    # not "none was mined" (a lagging node cannot prove that): none could be found mined, listed
    assert "could not be found mined" in str(info.value)
    assert all(h in str(info.value) for h in pending.hashes)
    assert int(devnet.chain.call("RewardToken", "allowance", account.address, token)) == 2
