"""depin.transactions after reorgs and drops, on a real anvil: a mined transaction that a reorg
removes is sent again (same hash, same nonce) before any later one, so no nonce gap ever wedges the
signer; a dropped pending transaction is sent again by the wait; a transaction whose intent is no
longer needed leaves a no-op in its nonce; a nonce taken by another signer is re-sent with a fresh
nonce only when the caller's check says it is still needed; the age of the oldest unconfirmed
transaction is what a health check reads."""

from __future__ import annotations

import logging
import threading

import pytest

from depin.chain import RpcClient
from depin.client import PostedJob
from depin.deployment import to_wei
from depin.transactions import Transactor, TxReverted
from tests.indexer.services import wait_for

from .conftest import Devnet, make_spec


def nonce_of(devnet: Devnet, address: str, tag: str = "latest") -> int:
    return int(devnet.chain.rpc.call("eth_getTransactionCount", [address, tag]), 16)


def transactor(devnet: Devnet, **options: object) -> tuple[Transactor, str, str]:
    account = devnet.new_account()
    tx = Transactor(RpcClient.from_url(devnet.url), account, devnet.deployment.chain_id, **options)  # type: ignore[arg-type]
    return tx, devnet.deployment.addresses["RewardToken"], devnet.deployment.addresses["JobMarket"]


def approve(tx: Transactor, token: str, spender: str, amount: int) -> str:
    return tx.codec.encode("RewardToken", "approve", spender, amount)


def allowance(devnet: Devnet, owner: str, spender: str) -> int:
    return int(devnet.chain.call("RewardToken", "allowance", owner, spender))


def known(devnet: Devnet, tx_hash: str) -> bool:
    return devnet.chain.rpc.call("eth_getTransactionByHash", [tx_hash]) is not None


def test_a_reorged_out_transaction_is_sent_again_before_the_next_one(devnet: Devnet) -> None:
    """anvil_reorg drops a mined transaction (it is not put back in the pool): the next send
    re-sends its exact bytes at its nonce first, so the new one is not stuck behind a gap."""
    tx, token, market = transactor(devnet)
    start = nonce_of(devnet, tx.address)
    first = tx.send(token, approve(tx, token, market, 11), gas=100_000, what="first")
    devnet.chain.rpc.call("anvil_reorg", [1, []])
    assert not known(devnet, first.tx_hash)  # anvil dropped it: this is the case to heal
    assert nonce_of(devnet, tx.address) == start
    assert allowance(devnet, tx.address, market) == 0
    second = tx.send(token, approve(tx, token, token, 22), gas=100_000, what="second", timeout=20)
    assert devnet.chain.rpc.call("eth_getTransactionReceipt", [first.tx_hash]) is not None  # same hash, mined again
    assert nonce_of(devnet, tx.address) == start + 2
    assert allowance(devnet, tx.address, market) == 11 and allowance(devnet, tx.address, token) == 22
    assert second.status == 1
    assert tx.oldest_unconfirmed_age() == 0


def test_the_estimate_sees_the_reorged_out_transaction_that_the_send_puts_back_first(devnet: Devnet) -> None:
    """A send estimates against a pool that already holds again what a reorg took out of ours: a
    call that the re-sent transaction makes revert (here: spending the same tokens twice; in the
    executor: claiming a job our re-sent claim claims) is refused by its estimate, and nothing is
    sent. Estimated before the heal, it passed against the chain without the re-sent transaction
    and went out to wait for a receipt, to revert when mined."""
    tx, token, market = transactor(devnet, receipt_timeout=5, rebroadcast_after=None)
    account = tx.account
    devnet.chain.fund([account.address], to_wei(3), approve=False)
    everything = int(devnet.chain.call("RewardToken", "balanceOf", account.address))
    start = nonce_of(devnet, tx.address)
    first = tx.send(token, tx.codec.encode("RewardToken", "transfer", market, everything), gas=100_000, what="first")
    with devnet.chain.manual_mining():
        devnet.chain.rpc.call("anvil_reorg", [1, []])
        assert not known(devnet, first.tx_hash) and nonce_of(devnet, tx.address) == start
        with pytest.raises(TxReverted):
            tx.send(token, tx.codec.encode("RewardToken", "transfer", token, everything), what="second")
        assert known(devnet, first.tx_hash)  # put back by the heal
        assert nonce_of(devnet, tx.address, "pending") == start + 1  # and nothing after it
        devnet.chain.mine()
    assert nonce_of(devnet, tx.address) == start + 1
    assert int(devnet.chain.call("RewardToken", "balanceOf", market)) >= everything


def test_the_wait_heals_a_gap_below_its_transaction(devnet: Devnet) -> None:
    """A transaction queued behind a reorged-out one of ours is mined once the wait notices the
    gap and re-sends the missing one (no new send needed, no restart)."""
    tx, token, market = transactor(devnet, receipt_timeout=30)
    tx.heal_interval = 0.2
    start = nonce_of(devnet, tx.address)
    first = tx.send(token, approve(tx, token, market, 5), gas=100_000, what="first")
    with devnet.chain.manual_mining():
        second = tx.broadcast(token, approve(tx, token, token, 6), gas=100_000, what="second")
        devnet.chain.rpc.call("anvil_reorg", [1, []])  # removes `first`; `second` stays queued
        assert not known(devnet, first.tx_hash) and known(devnet, second.tx_hash)
        result: dict[str, object] = {}
        waiter = threading.Thread(target=lambda: result.update(receipt=tx.wait(second)))
        waiter.start()
        devnet_wait(lambda: known(devnet, first.tx_hash), "the reorged-out transaction to be sent again")

        def mined_and_returned() -> bool:
            # anvil may drop `second` from its pool when `first` comes back; the heal then sends it
            # again right after `first`, possibly after this block: mine until the wait returns
            devnet.chain.mine()
            return not waiter.is_alive()

        devnet_wait(mined_and_returned, "the wait to return the second transaction's receipt")
        waiter.join(20)
    assert result["receipt"].tx_hash == second.tx_hash  # type: ignore[union-attr]
    assert nonce_of(devnet, tx.address) == start + 2
    assert allowance(devnet, tx.address, market) == 5


def test_a_dropped_pending_transaction_is_sent_again_by_the_wait(devnet: Devnet) -> None:
    tx, token, market = transactor(devnet, receipt_timeout=30, rebroadcast_after=None)
    tx.heal_interval = 0.2
    with devnet.chain.manual_mining():
        pending = tx.broadcast(token, approve(tx, token, market, 9), gas=100_000, what="approve")
        devnet.chain.rpc.call("anvil_dropTransaction", [pending.tx_hash])
        assert not known(devnet, pending.tx_hash)
        result: dict[str, object] = {}
        waiter = threading.Thread(target=lambda: result.update(receipt=tx.wait(pending)))
        waiter.start()
        devnet_wait(lambda: known(devnet, pending.tx_hash), "the dropped transaction to be sent again")
        assert tx.oldest_unconfirmed_age(now=pending.sent_at + 7) == 7  # what the health check reads
        devnet.chain.mine()
        waiter.join(20)
    assert result["receipt"].tx_hash == pending.hashes[0]  # type: ignore[union-attr]
    assert allowance(devnet, tx.address, market) == 9
    assert tx.oldest_unconfirmed_age() == 0


def test_an_intent_no_longer_needed_leaves_a_no_op_in_its_nonce(devnet: Devnet) -> None:
    """The caller's still_needed check says no (e.g. the job was settled another way): the freed
    nonce gets a 0-ether transfer to ourselves, not the old transaction."""
    tx, token, market = transactor(devnet)
    start = nonce_of(devnet, tx.address)
    asked: list[bool] = []
    first = tx.send(token, approve(tx, token, market, 13), gas=100_000, what="first",
                    still_needed=lambda: asked.append(True) or False)
    devnet.chain.rpc.call("anvil_reorg", [1, []])
    second = tx.send(token, approve(tx, token, token, 14), gas=100_000, what="second", timeout=20)
    assert asked == [True]
    assert devnet.chain.rpc.call("eth_getTransactionReceipt", [first.tx_hash]) is None
    block = devnet.chain.rpc.call("eth_getBlockByNumber", [hex(second.block_number - 1), True])
    noop = [t for t in block["transactions"] if t["from"].lower() == tx.address.lower()]
    assert len(noop) == 1 and int(noop[0]["nonce"], 16) == start
    assert noop[0]["to"].lower() == tx.address.lower() and int(noop[0]["value"], 16) == 0 and noop[0]["input"] == "0x"
    assert nonce_of(devnet, tx.address) == start + 2
    assert allowance(devnet, tx.address, market) == 0 and allowance(devnet, tx.address, token) == 14


def test_a_nonce_taken_by_another_signer_is_resent_with_a_fresh_nonce_when_still_needed(devnet: Devnet) -> None:
    tx, token, market = transactor(devnet, rebroadcast_after=None, receipt_timeout=30)
    tx.heal_interval = 0.2
    asked: list[bool] = []
    with devnet.chain.manual_mining():
        pending = tx.broadcast(token, approve(tx, token, market, 1), gas=100_000, what="ours",
                               still_needed=lambda: asked.append(True) or True)
        other = dict(pending.fields, data=approve(tx, token, token, 2),
                     maxFeePerGas=pending.fields["maxFeePerGas"] * 10,
                     maxPriorityFeePerGas=pending.fields["maxPriorityFeePerGas"] * 10)
        signed = tx.account.sign_transaction(other)
        tx.rpc.call("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
        devnet.chain.mine()
        first_nonce = pending.nonce
        result: dict[str, object] = {}
        waiter = threading.Thread(target=lambda: result.update(receipt=tx.wait(pending)))
        waiter.start()
        devnet_wait(lambda: pending.nonce == first_nonce + 1 and known(devnet, pending.tx_hash), "the fresh-nonce re-send")
        devnet.chain.mine()
        waiter.join(20)
    assert asked and result["receipt"].tx_hash == pending.tx_hash  # type: ignore[union-attr]
    assert allowance(devnet, tx.address, market) == 1 and allowance(devnet, tx.address, token) == 2
    assert nonce_of(devnet, tx.address) == first_nonce + 2


def devnet_wait(predicate, what: str, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    from tests.executor.stack import wait_for

    wait_for(predicate, timeout, what)


def test_a_restarted_signer_never_replaces_its_pre_crash_transaction_in_the_pool(devnet: Devnet) -> None:
    """A signer that dies with a transaction in the pool is replaced by a fresh one (empty journal)
    for the same key: healing sees the node's pool holds a transaction at that nonce and leaves it
    alone (no no-op replacement); the pre-crash transaction is what gets mined, and the new signer's
    next transaction takes the nonce after it."""
    tx, token, market = transactor(devnet)
    start = nonce_of(devnet, tx.address)
    with devnet.chain.manual_mining():
        before = tx.broadcast(token, approve(tx, token, market, 7), gas=100_000, what="pre-crash")
        restarted = Transactor(tx.rpc, tx.account, tx.chain_id)  # the same key, an empty journal
        assert restarted.heal() == []
        assert restarted.heal() == []  # idempotent: still nothing to fill
        assert devnet.chain.rpc.call("txpool_content")["pending"]  # the pre-crash one is still there
        assert known(devnet, before.tx_hash)
        devnet.chain.mine()
    assert devnet.chain.rpc.call("eth_getTransactionReceipt", [before.tx_hash]) is not None
    after = restarted.send(token, approve(restarted, token, token, 8), gas=100_000, what="after", timeout=20)
    assert after.status == 1
    assert nonce_of(devnet, tx.address) == start + 2
    assert allowance(devnet, tx.address, market) == 7 and allowance(devnet, tx.address, token) == 8


def _other_post_raw(devnet: Devnet, n: int) -> str:
    """Another requester's postJob, signed (escrowed from its market credit): what anvil_reorg
    puts into the block it builds in place of ours."""
    other = devnet.new_account(tokens=50)
    client = devnet.client(other)
    client.deposit(to_wei(20))
    prepared = client._prepare_post(
        make_spec(n), client.params(), reward=to_wei(1), claim_window=None, challenge_window=None, collateral_pct=None,
        max_runtime=None, cpu_seconds=None, verify=None, seal=False, encrypt_to=None,
    )
    call = client.contracts.job_market.post_job(prepared.spec_hash, prepared.spec_bytes, prepared.terms)
    fields = {"type": 2, "chainId": devnet.deployment.chain_id, "nonce": nonce_of(devnet, other.address), "to": call.to, "value": 0,
              "data": call.data, "gas": 2_000_000, "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9}
    return "0x" + bytes(other.sign_transaction(fields).raw_transaction).hex()


def test_a_post_confirmed_across_a_reorg_reports_the_id_it_ended_with(devnet: Devnet) -> None:
    """Job ids follow the order posts are mined. Our post is mined as job N; a reorg replaces its
    block with one holding another requester's post, which becomes job N; ours is sent again (same
    bytes) and mined as job N + 1. With confirmations=3 post_job returns N + 1, read from the
    receipt after the reorg; the first receipt's id would have named the other requester's job."""
    me = devnet.new_account(tokens=50)
    client = devnet.client(me)
    client.tx.heal_interval = 0.2  # type: ignore[union-attr]
    other_post = _other_post_raw(devnet, 1)
    before = client.job_count()
    result: dict[str, object] = {}
    poster = threading.Thread(target=lambda: result.update(posted=client.post_job(make_spec(0), reward=to_wei(1), confirmations=3)))
    poster.start()
    wait_for(lambda: client.job_count() == before + 1, 30, "our post mined")
    first = before + 1
    assert client.job(first).requester == me.address
    devnet.chain.rpc.call("anvil_reorg", [1, [[other_post, 0]]])
    assert client.job(first).requester != me.address  # job N is the other requester's now
    while poster.is_alive():  # blocks on top, until the post has 3 (ours is mined again meanwhile)
        devnet.chain.rpc.call("anvil_mine", ["0x1"])
        poster.join(0.2)
    posted = result["posted"]
    assert isinstance(posted, PostedJob)
    assert posted.job_id == first + 1, posted
    assert client.job(first + 1).requester == me.address
    assert client.job_count() == before + 2


def test_a_mined_transaction_short_of_its_confirmations_is_returned_with_a_warning(devnet: Devnet, caplog: pytest.LogCaptureFixture) -> None:
    """The confirmation count has its own timeout; past it, a transaction that is mined comes back as
    it stands, loudly, instead of TxTimeout ("not mined"), which would invite paying twice."""
    tx, token, market = transactor(devnet)
    with caplog.at_level(logging.WARNING, logger="depin.transactions"):
        receipt = tx.send(token, approve(tx, token, market, 5), gas=100_000, what="approve", timeout=1, confirmations=50)
    assert receipt.status == 1 and allowance(devnet, tx.address, market) == 5
    assert any("of 50 confirmations after 1 s" in r.getMessage() for r in caplog.records), caplog.text
