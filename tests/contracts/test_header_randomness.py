"""HeaderRandomness on real anvil: a block's prevrandao kept by proving its RLP header.

The headers are the running anvil's own (its hardfork's field list: baseFee, withdrawals, blob
fields, parent beacon root, requests hash), encoded by the executor's encoder
(:func:`depin.chain.header.encode_header`), so these tests also show that what the executor sends
hashes to the node's block hash.
"""

from __future__ import annotations

from typing import Any

import ape
import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak
from web3.exceptions import ContractLogicError as Web3ContractLogicError

from depin.chain import RpcClient
from depin.chain.header import MIX_HASH_FIELD, block_header, encode_header, header_fields, rlp_list, rlp_string

from .conftest import TOKEN, deploy_test_set
from .test_market import RESULT_HASH, RESULT_URI, ZERO32, expect_event, post, reverts

WINDOW = 256  # blocks for which blockhash(n) is available
ERRORS = {
    "RandomnessNotReady": ["uint256", "uint256"],
    "RandomnessExpired": ["uint256"],
    "HeaderRequired": ["uint256"],
    "HeaderMalformed": ["uint256"],
    "HeaderTooFewFields": ["uint256"],
    "HeaderFieldInvalid": ["uint256"],
}


def refused(method: Any, arg: Any, error: str, *args: int | None) -> None:
    """The view `method(arg)` (a tuple: the arguments) reverts with custom error `error` and these inputs (None: any value),
    read from the node's raw revert data (ape does not decode the custom errors of view calls)."""
    contract = method.contract
    data = "0x" + bytes(method.encode_input(*arg) if isinstance(arg, tuple) else method.encode_input(arg)).hex()
    with pytest.raises(Web3ContractLogicError) as info:
        contract.chain_manager.provider.web3.eth.call({"to": contract.address, "data": data})
    raw = bytes.fromhex(str(info.value.data).removeprefix("0x"))
    types = ERRORS[error]
    assert raw[:4] == keccak(text=f"{error}({','.join(types)})")[:4], f"expected {error}, got 0x{raw.hex()}"
    got = list(abi_decode(types, raw[4:]))
    assert all(want is None or want == have for want, have in zip(args, got, strict=True)), (error, got, args)


@pytest.fixture(scope="module")
def header_randomness(owner):
    from ape import project

    return project.HeaderRandomness.deploy(sender=owner)


def block_json(chain: Any, number: int) -> dict[str, Any]:
    return dict(chain.provider.make_request("eth_getBlockByNumber", [hex(number), False]))


def past_block(chain: Any) -> tuple[int, dict[str, Any]]:
    """A mined block (two behind the head) and its JSON."""
    chain.mine(3)
    n = chain.blocks.head.number - 2
    return n, block_json(chain, n)


def test_encoded_header_hashes_to_the_node_block_hash(chain):
    _, block = past_block(chain)
    header = encode_header(block)
    assert keccak(header) == bytes.fromhex(block["hash"][2:])
    # the running anvil's fork fields are all there (Prague: 21 fields; Cancun 20, ...)
    assert len(header_fields(block)) >= 15
    assert header_fields(block)[MIX_HASH_FIELD] == bytes.fromhex(block["mixHash"][2:])


def test_prove_keeps_the_block_prevrandao(chain, header_randomness, stranger):
    hr = header_randomness
    n, block = past_block(chain)
    header = encode_header(block)
    mix = bytes.fromhex(block["mixHash"][2:])
    assert mix != bytes(32)  # anvil: a fresh random mix per block
    assert hr.parse(header) == (n, mix)
    assert hr.status(n) == (False, False)  # past, provable, not proved
    refused(hr.randomness, n, "RandomnessNotReady", n, None)
    refused(hr.record, n, "HeaderRequired", n)
    tx = hr.prove(header, sender=stranger)
    expect_event(tx, hr.RandomnessRecorded, blockNumber=n, value=mix)
    print(f"prove() gas: {tx.gas_used} ({len(header)}-byte header, {len(header_fields(block))} fields)")
    assert tx.gas_used < 60_000
    assert hr.randomness(n) == mix
    assert hr.status(n) == (True, False)
    hr.record(n)  # kept: returns
    again = hr.prove(header, sender=stranger)  # idempotent, no second event
    assert not list(again.decode_logs(hr.RandomnessRecorded))
    # still readable once the block hash is gone
    chain.provider.make_request("anvil_mine", [hex(WINDOW + 10)])
    assert hr.randomness(n) == mix
    assert hr.status(n) == (True, False)


def test_prevrandao_is_the_blocks_own(chain, header_randomness):
    """The header's mixHash is what `block.prevrandao` reads inside that block (EIP-4399)."""
    n, block = past_block(chain)
    # Init code returning a zero byte and the value: PREVRANDAO PUSH1 1 MSTORE PUSH1 33 PUSH0 RETURN.
    # What init code returns becomes code, and code may not start with 0xEF (EIP-3541): returning
    # the value alone failed a CI run on a block whose mixHash began with that byte (1 in 256).
    code = "0x4460015260215ff3"
    inside = chain.provider.make_request("eth_call", [{"data": code}, hex(n)])
    assert inside == "0x00" + block["mixHash"][2:]


def test_forged_or_altered_headers_are_rejected(chain, header_randomness, stranger):
    hr = header_randomness
    n, block = past_block(chain)
    # another prevrandao in an otherwise real header
    forged = encode_header(block | {"mixHash": "0x" + "11" * 32})
    with reverts(hr.HeaderMismatch, blockNumber=n):
        hr.prove(forged, sender=stranger)
    # a real header under another block number
    with reverts(hr.HeaderMismatch, blockNumber=n - 1):
        hr.prove(encode_header(block | {"number": hex(n - 1)}), sender=stranger)
    # one field dropped (a fork's field list cut short)
    fields = header_fields(block)
    with reverts(hr.HeaderMismatch, blockNumber=n):
        hr.prove(rlp_list([rlp_string(f) for f in fields[:-1]]), sender=stranger)
    # a header of a block not mined yet cannot be proved
    head = chain.blocks.head.number
    with reverts(hr.RandomnessNotReady, blockNumber=head + 1, current=head + 1):
        hr.prove(encode_header(block | {"number": hex(head + 1)}), sender=stranger)
    assert hr.status(n) == (False, False)


def test_every_forks_field_list_parses(chain, header_randomness):
    """Pre-London (15 fields) to Prague (21) and later forks' appended fields: number and mixHash
    are read at fields 8 and 13 whatever follows."""
    hr = header_randomness
    n, block = past_block(chain)
    fields = [rlp_string(f) for f in header_fields(block)]
    mix = bytes.fromhex(block["mixHash"][2:])
    extra = rlp_string(b"\x42" * 32)  # a field a later fork might append
    for count in (15, 16, 17, 20, 21):
        assert hr.parse(rlp_list((fields + [extra] * 21)[:count])) == (n, mix)
    assert hr.parse(rlp_list(fields + [extra, extra])) == (n, mix)


def test_malformed_rlp_is_rejected(chain, header_randomness):
    hr = header_randomness
    n, block = past_block(chain)
    header = encode_header(block)
    fields = [rlp_string(f) for f in header_fields(block)]
    refused(hr.parse, b"", "HeaderMalformed", 0)
    refused(hr.parse, header[:-1], "HeaderMalformed", 0)  # truncated
    refused(hr.parse, header + b"\x00", "HeaderMalformed", 0)  # trailing byte
    refused(hr.parse, rlp_string(header), "HeaderMalformed", 0)  # a string, not a list
    refused(hr.parse, b"\xc3\x01\x02\x03", "HeaderMalformed", 0)  # a short list: too small for a header
    refused(hr.parse, b"\xf9\x00\x40" + b"\x00" * 64, "HeaderMalformed", 0)  # length with a leading zero
    refused(hr.parse, rlp_list(fields[:14]), "HeaderTooFewFields", 14)
    nested = rlp_list(fields[:3] + [rlp_list([b"\x01"])] + fields[4:])
    offset = 3 + sum(len(f) for f in fields[:3])
    refused(hr.parse, nested, "HeaderMalformed", offset)  # a field that is a list
    loose = rlp_list(fields[:7] + [b"\x81\x00"] + fields[8:])  # a byte below 0x80 in two bytes
    offset = 3 + sum(len(f) for f in fields[:7])
    refused(hr.parse, loose, "HeaderMalformed", offset)
    short_mix = rlp_list(fields[:13] + [rlp_string(b"\x01" * 31)] + fields[14:])
    refused(hr.parse, short_mix, "HeaderFieldInvalid", 13)
    padded = rlp_list(fields[:8] + [rlp_string(b"\x00" + n.to_bytes(2, "big"))] + fields[9:])
    refused(hr.parse, padded, "HeaderFieldInvalid", 8)
    overrun = bytearray(header)
    overrun[3 + sum(len(f) for f in fields[:12])] = 0xB7  # extraData claims 55 bytes
    refused(hr.parse, bytes(overrun), "HeaderMalformed", None)


def test_expired_header_cannot_be_proved(chain, header_randomness, stranger):
    hr = header_randomness
    n, block = past_block(chain)
    header = encode_header(block)
    chain.provider.make_request("anvil_mine", [hex(WINDOW + 1)])
    assert hr.status(n) == (False, True)
    with reverts(hr.RandomnessExpired, blockNumber=n):
        hr.prove(header, sender=stranger)
    refused(hr.randomness, n, "RandomnessExpired", n)
    refused(hr.record, n, "RandomnessExpired", n)


def test_readiness_of_a_future_block(chain, header_randomness):
    hr = header_randomness
    head = chain.blocks.head.number
    assert hr.status(head + 5) == (False, False)
    assert hr.status(head) == (False, False)  # the current block itself: not yet
    refused(hr.randomness, head + 5, "RandomnessNotReady", head + 5, None)
    refused(hr.record, head + 5, "RandomnessNotReady", head + 5, None)


def test_the_last_provable_block(chain, header_randomness, stranger):
    """blockhash(n) is available while n >= block.number - 256: a proof mined in block n + 256 passes."""
    hr = header_randomness
    n, block = past_block(chain)
    head = chain.blocks.head.number
    chain.provider.make_request("anvil_mine", [hex(n + WINDOW - 1 - head)])  # the proof lands in n + 256
    tx = hr.prove(encode_header(block), sender=stranger)
    assert tx.block_number == n + WINDOW
    assert hr.status(n) == (True, False)


def _drawn_by(value: bytes, job_id: int, audit_bps: int) -> bool:
    """JobMarket._drawnBy: keccak256(abi.encode(r, jobId)) % 10000 < auditBps."""
    return int.from_bytes(keccak(abi_encode(["bytes32", "uint256"], [value, job_id])), "big") % 10_000 < audit_bps


def test_a_market_draw_from_a_proved_header(chain, owner, params, requester, provider, stranger):
    """End to end on the market: a submitted job's draw is not readable (nor the job finalizable)
    until its anchor's header is proved, the header coming from the executor's gateway
    (depin.chain.header.block_header over a real RpcClient); then it is the anchor's prevrandao's
    draw. A job whose anchor nobody proved in 256 blocks counts as drawn."""
    c = deploy_test_set(owner, params, mock=False, header=True)
    token, staking, market, hr = c["RewardToken"], c["ProviderStaking"], c["JobMarket"], c["Randomness"]
    token.mint(requester, 1_000 * TOKEN, sender=owner)
    token.mint(provider, 1_000 * TOKEN, sender=owner)
    token.approve(market.address, 2**256 - 1, sender=requester)
    token.approve(staking.address, 2**256 - 1, sender=provider)
    staking.register(500 * TOKEN, "http://p", ZERO32, sender=provider)
    ids = []
    for n in range(2):
        post(market, requester, n=n)
        jid = market.jobCount()
        market.claimJob(jid, sender=provider)
        market.submitResult(jid, RESULT_HASH, RESULT_URI, sender=provider)
        ids.append(jid)
    first, second = (market.getJob(i) for i in ids)
    assert 0 < first.auditBps < 10_000
    chain.mine(2)
    assert chain.blocks.head.number > first.anchorBlock
    refused(market.isDrawn, ids[0], "RandomnessNotReady", first.anchorBlock, None)
    chain.pending_timestamp = max(first.deadline, second.deadline) + 1
    with ape.reverts():  # RandomnessNotReady: not provable by finalize itself
        market.finalize(ids[0], sender=stranger)
    rpc = RpcClient.from_url(chain.provider.http_uri)
    header = block_header(rpc, first.anchorBlock)
    hr.prove(header, sender=stranger)
    mix = bytes.fromhex(block_json(chain, first.anchorBlock)["mixHash"][2:])
    drawn = _drawn_by(mix, ids[0], first.auditBps)
    assert market.isDrawn(ids[0]) == drawn
    if drawn:
        with ape.reverts():  # JobDrawn
            market.finalize(ids[0], sender=stranger)
    else:
        market.finalize(ids[0], sender=stranger)
        assert market.getJob(ids[0]).status != first.status
    # the second job's anchor (another block) is never proved: expired, it counts as drawn
    chain.provider.make_request("anvil_mine", [hex(WINDOW + 2)])
    assert hr.status(second.anchorBlock) == (False, True)
    assert market.isDrawn(ids[1]) is True


def test_a_court_audit_draw_from_a_proved_header(accounts, project, chain):
    """End to end on the real VerificationCourt (behind the MarketStub): the auditor of a job is not
    known, and the audit cannot start, until the anchor's header is proved; then the drawn auditor
    starts the audit."""
    from .test_court import COLLATERAL, GOOD, STAKE, E, R, params_tuple, provider_commitment

    owner, requester, provider, v1, v2, v3 = accounts[:6]
    token = project.RewardToken.deploy("Test", "TST", 10**30, owner, 0, sender=owner)
    token.grantRole(token.MINTER_ROLE(), owner, sender=owner)
    hr = project.HeaderRandomness.deploy(sender=owner)
    market = project.MarketStub.deploy(token, hr, 1, sender=owner)
    engine = project.CourtEngine.deploy(sender=owner)
    court = project.VerificationCourt.deploy(market, token, owner, params_tuple(), engine, sender=owner)
    token.mint(market, 100_000 * TOKEN, sender=owner)
    for v in (v1, v2, v3):
        token.mint(v, 100_000 * TOKEN, sender=owner)
        token.approve(court, 2**256 - 1, sender=v)
        court.join(STAKE, 0, sender=v)
    chain.mine(3)  # past activationDelayBlocks
    job_id = market.jobCount() + 1
    commitment = provider_commitment(provider.address, job_id, GOOD)
    market.createJob(requester, provider, R, COLLATERAL, E, commitment, 10, 100, 10_000, court, sender=owner)
    anchor = market.verificationInfo(job_id).anchorBlock
    chain.mine(2)
    refused(court.drawnFor, (job_id, 0, 0), "RandomnessNotReady", anchor, None)
    with ape.reverts():  # RandomnessNotReady: nobody is drawn yet
        court.startAudit(job_id, sender=v1)
    hr.prove(block_header(RpcClient.from_url(chain.provider.http_uri), anchor), sender=requester)
    auditor = court.drawnFor(job_id, 0, 0)
    assert auditor in {v1.address, v2.address, v3.address}
    court.startAudit(job_id, sender=next(v for v in (v1, v2, v3) if v.address == auditor))
    assert court.getCase(job_id).phase != 0
