"""The SDK (depin.Client) used as a library, by mistake or on purpose: wrong argument types and
values, one account in two threads or two clients, read-only and wrong-role clients. Every failure
is a documented depin error (never a bare eth_abi, TypeError or KeyError) and nothing is sent, or
approved, for a call that then fails on its own arguments."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from depin.client import Client
from depin.deployment import to_wei
from depin.errors import DepinError
from depin.market import JobStatus
from tests.indexer.services import wait_for

from .conftest import Devnet, make_spec


def nonce(devnet: Devnet, address: str) -> int:
    return int(devnet.chain.rpc.call("eth_getTransactionCount", [address, "latest"]), 16)


@pytest.mark.parametrize(
    "terms",
    [{"claim_window": 3600.0}, {"cpu_seconds": -1}, {"collateral_pct": 500.0}, {"confirmations": 0}],
    ids=["float-claim-window", "negative-cpu-seconds", "float-collateral-pct", "zero-confirmations"],
)
def test_a_bad_post_term_sends_and_approves_nothing(devnet: Devnet, terms: dict[str, Any]) -> None:
    """post_job(permit=False) and post_jobs approve the escrow in their own transaction first. A term
    that cannot be encoded (a float, a negative or too large number) or confirmations=0 was only
    found after that approve was mined: an allowance to the market and gas spent for a job never
    posted, and a bare eth_abi EncodingTypeError / ValueError no ``except DepinError`` catches."""
    requester = devnet.new_account(20)
    client = devnet.client(requester)
    with pytest.raises(DepinError, match=next(iter(terms)).replace("_", "[ _]")):
        client.post_job(make_spec(1), reward=to_wei(1), permit=False, **terms)
    with pytest.raises(DepinError, match=next(iter(terms)).replace("_", "[ _]")):
        client.post_jobs([make_spec(2), make_spec(3)], reward=to_wei(1), **terms)
    assert nonce(devnet, requester.address) == 0  # nothing sent
    assert client.allowance(spender="JobMarket") == 0 and client.token_balance() == to_wei(20)


def _cases() -> list[tuple[str, Callable[[Client], Any]]]:
    spec = make_spec(5)
    return [
        ("reward None", lambda c: c.post_job(spec, reward=None)),
        ("reward str", lambda c: c.post_job(spec, reward="1000000000000000000")),
        ("reward float", lambda c: c.post_job(spec, reward=1.5e18)),
        ("spec str", lambda c: c.post_job("not a spec", reward=to_wei(1))),
        ("spec None", lambda c: c.post_job(None, reward=to_wei(1))),
        ("spec dict", lambda c: c.post_job({"v": 1}, reward=to_wei(1))),
        ("deposit negative", lambda c: c.deposit(-5)),
        ("deposit float", lambda c: c.deposit(1.5)),
        ("approve negative", lambda c: c.approve("JobMarket", -1)),
        ("allowance of an unknown spender", lambda c: c.allowance(spender="Bogus")),
        ("permit value float", lambda c: c.permit_signature("JobMarket", 1.5, 10)),
        ("register endpoint None", lambda c: c.register(to_wei(100), None)),
        ("submit_result commitment None", lambda c: c.submit_result(1, None, "http://x/r")),
        ("submit_result commitment not hex", lambda c: c.submit_result(1, "zz", "http://x/r")),
        ("submit_result uri bytes", lambda c: c.submit_result(1, b"\1" * 32, b"http://x/r")),
        ("submit_failure code str", lambda c: c.submit_failure(1, "x", b"\1" * 32)),
        ("submit_results a pair", lambda c: c.submit_results([(1, b"\1" * 32)])),
        ("call an unknown contract", lambda c: c.call("Nope", "x")),
    ]


def test_wrong_argument_types_are_depin_errors_that_name_the_argument(devnet: Devnet) -> None:
    """Each of these raised a bare eth_abi EncodingTypeError, TypeError, ValueError or KeyError (the
    SDK's promise: every failure a depin.errors exception whose message says what to fix)."""
    requester = devnet.new_account(200)
    client = devnet.client(requester)
    bare = []
    for label, call in _cases():
        try:
            call(client)
        except DepinError:
            continue
        except Exception as exc:  # collected: the assertion names them all
            bare.append(f"{label}: {type(exc).__module__}.{type(exc).__name__}: {exc}")
        else:
            bare.append(f"{label}: no error")
    assert not bare, "\n".join(bare)
    assert nonce(devnet, requester.address) == 0  # none of them sent anything


def test_a_key_string_as_the_account_is_refused_without_echoing_it(devnet: Devnet) -> None:
    key = "0x" + "4c" * 32
    for make in (lambda: devnet.client(key), lambda: devnet.client().with_account(key)):
        with pytest.raises(DepinError) as caught:
            make()
        assert "4c4c4c" not in str(caught.value) and "account" in str(caught.value)


def test_two_clients_of_one_account_each_transfer(devnet: Devnet) -> None:
    """Two Clients of the same account in one process (two parts of one program, each with its own
    Client.connect) each send 1 DPC to a friend (``transact``) while the first transfer waits in the
    pool. Both signers counted the same next nonce and signed byte-identical transactions (same
    nonce, calldata and fees); the node answered the second "already known", which counted as sent:
    both calls returned the same receipt and the friend got 1 DPC, not 2. The chain holds the
    transfers (automining off) until both are in the pool: no timer races another."""
    account, friend = devnet.new_account(20), devnet.new_account()
    first, second = devnet.client(account), devnet.client(account)
    first.approve("JobMarket", 1)  # the account has used its key before: both signers count nonce 1 next
    second.tx.resync_nonce()
    rpc = devnet.chain.rpc
    results: dict[str, Any] = {}

    def transfer(name: str, client: Client) -> None:
        try:
            results[name] = client.transact("RewardToken", "transfer", friend.address, to_wei(1))
        except Exception as exc:  # the assertion shows it
            results[name] = exc

    threads = []
    rpc.call("evm_setAutomine", [False])
    try:
        for name, client in (("first", first), ("second", second)):
            thread = threading.Thread(target=transfer, args=(name, client), daemon=True)
            thread.start()
            threads.append(thread)
            wait_for(client.sent_transactions, 30, f"the {name} client's transfer sent")
    finally:
        rpc.call("evm_setAutomine", [True])
        rpc.call("evm_mine", [])
    for thread in threads:
        thread.join(120)
    assert all(not isinstance(r, Exception) for r in results.values()), results
    assert results["first"].tx_hash != results["second"].tx_hash, results
    assert first.token_balance(friend.address) == to_wei(2)


def test_two_threads_post_through_one_client(devnet: Devnet) -> None:
    """Two threads share one Client (documented as thread-safe) and each post a job with the
    default permit, the wallet holding enough for both. Both read the same allowance (0) and token
    nonce, both signed a permit for their own escrow; the first post used the permit, the second's
    permit failed inside postJobWithPermit (tolerated as front-run) and its transferFrom found no
    allowance: TxReverted ERC20InsufficientAllowance, which the caller cannot tell from a real
    refusal. The first thread's permit signing holds until the second has either signed its own
    permit too (the race) or is waiting for the account's spending lock (serialised posts)."""
    requester = devnet.new_account(20)
    client = devnet.client(requester)
    signers: list[str] = []  # the threads that reached permit_signature, in order
    queued: list[str] = []  # the threads that asked for the spending lock, in order
    real_permit, real_spending = client.permit_signature, client._spending

    def permit_signature(*args: Any, **kwargs: Any) -> Any:
        signers.append(threading.current_thread().name)
        result = real_permit(*args, **kwargs)
        if threading.current_thread().name == "poster-0":
            wait_for(lambda: len(signers) == 2 or "poster-1" in queued, 60, "the other poster at its permit or the lock")
        return result

    def spending() -> Any:
        queued.append(threading.current_thread().name)
        return real_spending()

    client.permit_signature = permit_signature  # type: ignore[method-assign]
    client._spending = spending  # type: ignore[method-assign]
    results: dict[int, Any] = {}

    def post(i: int) -> None:
        try:
            results[i] = client.post_job(make_spec(20 + i), reward=to_wei(1))
        except Exception as exc:  # the assertion shows it
            results[i] = exc

    first = threading.Thread(target=post, args=(0,), name="poster-0", daemon=True)
    other = threading.Thread(target=post, args=(1,), name="poster-1", daemon=True)
    first.start()
    wait_for(lambda: signers, 30, "the first permit")
    other.start()
    first.join(120)
    other.join(120)
    assert all(not isinstance(r, Exception) for r in results.values()), results
    assert {client.job(r.job_id).status for r in results.values()} == {JobStatus.OPEN}


def test_a_hand_changed_jobspec_is_validated_before_posting(devnet: Devnet) -> None:
    """``JobSpec.model_copy(update=...)`` (pydantic does not validate it) gave a spec no executor runs
    (an image not pinned by digest): with ``seal=False`` it was posted as it was, its escrow held
    until the claim window ran out. (Sealed, the added delivery key made it parse again: refused.)"""
    requester = devnet.new_account(20)
    client = devnet.client(requester)
    unpinned = make_spec(30).model_copy(update={"image": "nginx:latest"})
    with pytest.raises(DepinError, match="image"):
        client.post_job(unpinned, reward=to_wei(1), seal=False)
    with pytest.raises(DepinError, match="image"):
        client.post_jobs([make_spec(31), unpinned], reward=to_wei(1), seal=False)
    assert nonce(devnet, requester.address) == 0


def test_a_batch_too_large_for_one_transaction_is_refused_before_approving(devnet: Devnet) -> None:
    """post_jobs of 2,000 specs approved their whole escrow (10,840 DPC) in a mined transaction, then
    the batch's gas estimate failed with "JSON-RPC error -32600: Invalid request": an allowance and
    gas for nothing, and a message that does not say to split the batch. A transaction over 128 KiB
    never enters a geth pool; such a batch is now refused first, naming how many specs fit."""
    requester = devnet.new_account(20_000)
    client = devnet.client(requester)
    specs = [make_spec(1000 + i) for i in range(2_000)]
    with pytest.raises(DepinError, match="split"):
        client.post_jobs(specs, reward=to_wei(1), seal=False)
    assert nonce(devnet, requester.address) == 0 and client.allowance(spender="JobMarket") == 0
    posted = client.post_jobs(specs[:50], reward=to_wei(1), seal=False)  # a batch that fits is posted
    assert len(posted) == 50
