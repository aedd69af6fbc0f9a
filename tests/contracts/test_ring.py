"""JobMarket's job ring: a job is stored in entry jobId % jobSlots, rewriting the words of the job
jobSlots ids before it once that one has settled; an entry still held by an unsettled job makes
the new job spill to storage of its own. The contract tests deploy a three-entry ring
(conftest.TEST_JOB_SLOTS), so every test that posts more than three jobs goes through both paths,
the Hypothesis machine of test_invariants.py included; these tests pin the paths down one by one.
"""

from __future__ import annotations

from typing import Any

import pytest
from ape.exceptions import ContractLogicError, CustomError
from eth_abi import encode as abi_encode
from eth_utils import keccak
from web3.exceptions import ContractLogicError as Web3ContractLogicError

from .conftest import TEST_JOB_SLOTS, TOKEN, deploy_test_set
from .test_market import (
    CLAIMED,
    FINALIZED,
    OPEN,
    RESULT_URI,
    SUBMITTED,
    TERMS,
    ZERO_ADDRESS,
    assert_market_invariant,
    everyone,  # noqa: F401 - a fixture
    post,
)

PRUNED, CANCELLED = 10, 6
NONE_TERMS = TERMS._replace(verify_mode=1)  # verify-none: never drawn, finalize needs no randomness
# A post writes two words (word 1 and the hot word; word 0 waits for the commitment). Rewriting a
# settled job's instead of creating them saves 2 x (22,100 - 5,000) gas; at least this much:
REUSE_SAVES = 30_000


def _post(market: Any, requester: Any, n: int) -> tuple[int, Any]:
    tx = post(market, requester, NONE_TERMS, n=n)
    return market.jobCount(), tx


def _finalize(chain: Any, market: Any, requester: Any, provider: Any, job_id: int) -> None:
    market.claimJob(job_id, sender=provider)
    market.submitResult(job_id, keccak(b"result %d" % job_id), RESULT_URI, sender=provider)
    chain.pending_timestamp = market.getJob(job_id).deadline + 1
    market.finalize(job_id, sender=requester)
    assert market.getJob(job_id).status == FINALIZED


def _refused(call: Any, error: str, **fields: Any) -> None:
    """`call` reverts with custom error `error` (a signature, its inputs named in `fields` in
    order), decoded or, as ape leaves the errors of view calls, as the raw encoding."""
    with pytest.raises(ContractLogicError) as info:
        call()
    err = info.value
    if isinstance(err, CustomError):
        assert (type(err).__name__, dict(err.inputs)) == (error.split("(")[0], fields)
        return
    types = error[error.index("(") + 1 : -1].split(",")
    args = abi_encode(types, list(fields.values()))
    message = str(err)
    assert message.startswith("custom error 0x" + keccak(text=error)[:4].hex()), message
    assert message.endswith(args.decode("latin-1")), message


def _refused_as_pruned(call: Any, job_id: int, expected: int) -> None:
    _refused(call, "WrongStatus(uint256,uint8,uint8)", jobId=job_id, actual=PRUNED, expected=expected)


def _fill_ring(market: Any, requester: Any) -> list[int]:
    """Posts one job per entry (all Open): returns their ids, in entry order from the next post's."""
    return [_post(market, requester, n=100 + i)[0] for i in range(TEST_JOB_SLOTS)]


def test_the_ring_size_is_the_deployments(market):
    assert market.jobSlots() == TEST_JOB_SLOTS


def test_a_job_rewrites_the_words_of_a_settled_job_and_that_one_reads_pruned(
    chain, market, token, requester, provider, registered, everyone
):
    ids = _fill_ring(market, requester)
    spilled, tx_spill = _post(market, requester, n=200)  # ids[0] is Open: new storage of its own
    _finalize(chain, market, requester, provider, ids[1])
    job_id, tx = _post(market, requester, n=201)
    assert (spilled, job_id) == (ids[0] + TEST_JOB_SLOTS, ids[1] + TEST_JOB_SLOTS)
    assert tx.gas_used <= tx_spill.gas_used - REUSE_SAVES, (tx.gas_used, tx_spill.gas_used)

    old = market.getJob(ids[1])
    assert old.status == PRUNED
    assert (old.requester, old.reward, old.provider, old.commitment) == (ZERO_ADDRESS, 0, ZERO_ADDRESS, b"\0" * 32)
    new = market.getJob(job_id)
    assert (new.status, new.requester, new.reward, new.provider) == (OPEN, requester.address, NONE_TERMS.reward, ZERO_ADDRESS)
    assert [market.getJob(i).status for i in (ids[0], ids[2], spilled)] == [OPEN, OPEN, OPEN]

    # A pruned job refuses every action; finalizeMany passes over it; the views say Pruned.
    pruned = ids[1]
    _refused_as_pruned(lambda: market.finalize(pruned, sender=requester), pruned, SUBMITTED)
    _refused_as_pruned(lambda: market.cancelJob(pruned, sender=requester), pruned, OPEN)
    _refused_as_pruned(lambda: market.claimJob(pruned, sender=provider), pruned, OPEN)
    _refused_as_pruned(lambda: market.isDrawn(pruned), pruned, SUBMITTED)
    tx = market.finalizeMany([pruned], sender=requester)
    assert tx.return_value == 0 and not tx.decode_logs(market.JobFinalized)
    assert market.verificationInfo(pruned).status == PRUNED
    unknown = market.jobCount() + 1
    _refused(lambda: market.getJob(unknown), "UnknownJob(uint256)", jobId=unknown)
    # The new job runs its whole course in the reused entry.
    _finalize(chain, market, requester, provider, job_id)
    assert_market_invariant(market, token, everyone)


def test_an_entry_held_by_an_unsettled_job_makes_the_next_job_spill(
    chain, market, token, requester, provider, registered, everyone
):
    ids = _fill_ring(market, requester)
    first = ids[0]
    spilled, _ = _post(market, requester, n=300)  # `first` is Open: this one spills
    assert spilled == first + TEST_JOB_SLOTS
    for job_id in (first, spilled):
        assert (market.getJob(job_id).status, market.getJob(job_id).requester) == (OPEN, requester.address)

    # Both run independently: the spilled job is claimed and finalized, the entry's job cancelled.
    _finalize(chain, market, requester, provider, spilled)
    market.claimJob(ids[1], sender=provider)
    market.cancelJob(first, sender=requester)
    assert [market.getJob(i).status for i in (first, ids[1], spilled)] == [CANCELLED, CLAIMED, FINALIZED]

    # The entry is free now: its next job rewrites it, and the spilled job (settled, in storage of
    # its own) stays readable.
    _post(market, requester, n=301)  # the entry of ids[1], still Claimed: spills
    _post(market, requester, n=302)  # the entry of ids[2], Open: spills
    reuse_id, _ = _post(market, requester, n=303)
    assert reuse_id == first + 2 * TEST_JOB_SLOTS
    assert market.getJob(first).status == PRUNED
    assert [market.getJob(i).status for i in (spilled, reuse_id, ids[1])] == [FINALIZED, OPEN, CLAIMED]
    assert_market_invariant(market, token, everyone)


def test_a_market_takes_at_least_one_entry(chain, owner):
    """The constructor refuses an empty ring: ParameterOutOfBounds("jobSlots", 0, 1, 2^32 - 1).
    (Run as an eth_call of the creation code: ape's trace of a reverted deployment cannot decode
    the constructor's arguments.)"""
    from ape import project

    code = project.JobMarket.contract_type.deployment_bytecode.bytecode
    args = abi_encode(
        ["address", "address", "bool", "uint16", "uint32", "address", "uint96", "uint32"],
        [ZERO_ADDRESS, ZERO_ADDRESS, True, 1, 0, owner.address, 1, 10**6],
    )
    with pytest.raises(Web3ContractLogicError) as info:
        chain.provider.web3.eth.call({"from": owner.address, "data": code + args.hex()})
    error = keccak(text="ParameterOutOfBounds(bytes32,uint256,uint256,uint256)")[:4]
    fields = abi_encode(["bytes32", "uint256", "uint256", "uint256"], [b"jobSlots".ljust(32, b"\0"), 0, 1, 2**32 - 1])
    assert info.value.data == "0x" + (error + fields).hex()


def test_a_one_entry_ring_reuses_the_last_jobs_words(chain, owner, params, requester, provider):
    """With one entry every job after the first rewrites the previous job's words once it settled."""
    d = deploy_test_set(owner, params, job_slots=1)
    token, staking, market = d["RewardToken"], d["ProviderStaking"], d["JobMarket"]
    for acct in (requester, provider):
        token.mint(acct, 1_000 * TOKEN, sender=owner)
        token.approve(market.address, 2**256 - 1, sender=acct)
        token.approve(staking.address, 2**256 - 1, sender=acct)
    staking.register(500 * TOKEN, "http://provider.local:8700", b"\x11" * 32, sender=provider)
    gas = []
    for n in range(3):
        job_id, tx = _post(market, requester, n=n)
        gas.append(tx.gas_used)
        _finalize(chain, market, requester, provider, job_id)
    assert [market.getJob(i).status for i in (1, 2, 3)] == [PRUNED, PRUNED, FINALIZED]
    assert max(gas[1:]) <= gas[0] - REUSE_SAVES, gas
