"""Decoding: the fast decoder agrees with web3's reference decoding, and bad input is skipped with
a logged reason, never a crash."""

from __future__ import annotations

import logging
from typing import Any

from eth_abi import encode
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3

from depin.artifacts import load_abi
from depin.chain import RpcClient
from indexer.decode import LogDecoder
from indexer.reducer import HANDLED_EVENTS, MAX_SPEC_DEPTH, check_spec

from .services import ChainEnv, FlakyProxy, dump

UNKNOWN = "0x" + "ee" * 20


def _decoder(env: ChainEnv) -> LogDecoder:
    a = env.deployment.addresses
    return LogDecoder(
        {"JobMarket": (a["JobMarket"], load_abi("JobMarket")), "ProviderStaking": (a["ProviderStaking"], load_abi("ProviderStaking"))},
        events=HANDLED_EVENTS,
    )


def _raw_logs(env: ChainEnv, decoder: LogDecoder) -> list[dict[str, Any]]:
    rpc = RpcClient.from_url(env.anvil.url)
    return rpc.get_logs(env.deployment.deploy_block, rpc.block_number(), decoder.addresses, [decoder.topics])


def _normal(value: Any) -> Any:
    if isinstance(value, (bytes, HexBytes)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    return value


def test_fast_decoder_matches_web3_on_every_log(populated_env: ChainEnv) -> None:
    """For every market and staking log of a chain with every event type, the hex-slicing decoder
    yields the same arguments as web3's generic ABI decoding (the reference)."""
    env = populated_env
    decoder = _decoder(env)
    raws = _raw_logs(env, decoder)
    w3 = Web3()
    contracts = {
        env.deployment.addresses[n].lower(): w3.eth.contract(address=env.deployment.addresses[n], abi=load_abi(n))
        for n in ("JobMarket", "ProviderStaking")
    }
    seen = set()
    for raw in raws:
        ev = decoder.decode(raw)
        assert ev is not None, raw
        contract = contracts[raw["address"].lower()]
        log = {
            "address": Web3.to_checksum_address(raw["address"]),
            "topics": [HexBytes(t) for t in raw["topics"]],
            "data": HexBytes(raw["data"]),
            "blockNumber": int(raw["blockNumber"], 16),
            "blockHash": HexBytes(raw["blockHash"]),
            "transactionHash": HexBytes(raw["transactionHash"]),
            "transactionIndex": int(raw["transactionIndex"], 16),
            "logIndex": int(raw["logIndex"], 16),
        }
        ref = getattr(contract.events, ev.name)().process_log(log)
        assert _normal(dict(ref["args"])) == _normal(ev.args), ev.name
        assert (ev.block, ev.log_index, ev.tx) == (log["blockNumber"], log["logIndex"], raw["transactionHash"])
        seen.add(ev.name)
    assert len(seen) >= 20


def test_malformed_logs_are_skipped_with_a_reason(populated_env: ChainEnv, caplog: Any) -> None:
    """Logs from unknown contracts, with unknown topics, the wrong number of topics, truncated
    data, bad padding, offsets out of bounds, or missing fields are skipped and logged; decoding
    never raises."""
    env = populated_env
    decoder = _decoder(env)
    raws = _raw_logs(env, decoder)
    posted = next(r for r in raws if decoder.decode(r).name == "JobPosted")
    claimed = next(r for r in raws if decoder.decode(r).name == "JobClaimed")
    bad = {
        "unknown contract": {**posted, "address": UNKNOWN},
        "unknown event topic": {**posted, "topics": ["0x" + "12" * 32, *posted["topics"][1:]]},
        "needs 4 topics": {**posted, "topics": posted["topics"][:2]},
        "data is": {**claimed, "data": claimed["data"][:-2]},
        "padding": {**claimed, "topics": [claimed["topics"][0], claimed["topics"][1], "0x" + "ff" * 32]},
        # JobPosted's 11th head word (index 10: the 7 words of the terms, fromCredit, auditBps,
        # paramsVersion) is the spec's offset.
        "out of bounds": {**posted, "data": posted["data"][:2 + 64 * 10] + "f" * 64 + posted["data"][2 + 64 * 11:]},
        "removed": {**posted, "removed": True},
        "KeyError": {k: v for k, v in posted.items() if k != "blockHash"},
        "undecodable": {**posted, "data": None},
    }
    caplog.set_level(logging.WARNING, logger="indexer.decode")
    for reason, raw in bad.items():
        caplog.clear()
        assert decoder.decode(raw) is None, reason
        assert reason in caplog.text, (reason, caplog.text)
    assert decoder.decode_all([posted, *bad.values(), claimed])[1].name == "JobClaimed"


def _forged_job_posted(market: str, like: dict[str, Any], job_id: int, spec: bytes, spec_hash: bytes) -> dict[str, Any]:
    topic0 = "0x" + keccak(
        text="JobPosted(uint256,address,bytes32,(uint96,uint32,uint24,uint24,uint16,uint32,uint8),uint96,uint16,uint32,bytes)"
    ).hex()
    data = encode(
        ["(uint96,uint32,uint24,uint24,uint16,uint32,uint8)", "uint96", "uint16", "uint32", "bytes"],
        [(10**18, 600, 60, 30, 400, 60, 1), 0, 0, 1, spec],
    )
    return {
        **like,
        "address": market.lower(),
        "topics": [topic0, "0x" + job_id.to_bytes(32, "big").hex(), "0x" + "00" * 12 + "ab" * 20, "0x" + spec_hash.hex()],
        "data": "0x" + data.hex(),
        "logIndex": hex(0x7F),
    }


def test_bad_logs_from_the_node_never_stop_the_indexer(populated_env: ChainEnv) -> None:
    """A node that also returns logs of an unknown contract, unknown topics and undecodable data
    does not disturb the index: the result equals a clean rebuild, stream included."""
    env = populated_env
    decoder = _decoder(env)
    raws = _raw_logs(env, decoder)
    first = raws[0]
    junk = [
        {**first, "address": UNKNOWN, "logIndex": hex(0x70)},
        {**first, "topics": ["0x" + "34" * 32], "logIndex": hex(0x71)},
        {**first, "data": "0x1234", "logIndex": hex(0x72)},
    ]

    def inject(params: list[Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        lo, hi = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        return logs + [j for j in junk if lo <= int(j["blockNumber"], 16) <= hi]

    proxy = FlakyProxy(env.anvil.url, inject=inject)
    try:
        env.indexer(0, rpc_url=proxy.url, max_range=5).sync_once()
    finally:
        proxy.close()
    env.rebuild(1, max_range=5)
    assert dump(env.client(0), env.keys) == dump(env.client(1), env.keys)


def test_spec_that_does_not_hash_to_spec_hash_is_indexed_invalid(populated_env: ChainEnv) -> None:
    """A JobPosted whose spec bytes do not hash to its specHash (the contract refuses those, so the
    log is forged here by a proxy) is indexed with specValid 0, a specError naming both hashes, and
    no specJson, so executors never run it."""
    env = populated_env
    decoder = _decoder(env)
    raws = _raw_logs(env, decoder)
    like = raws[-1]
    spec = b'{"image":"evil@sha256:00","v":1}'
    forged = _forged_job_posted(env.deployment.addresses["JobMarket"], like, 10_000, spec, keccak(b"something else"))
    assert decoder.decode(forged).name == "JobPosted"

    def inject(params: list[Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        lo, hi = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        return logs + ([forged] if lo <= int(forged["blockNumber"], 16) <= hi else [])

    proxy = FlakyProxy(env.anvil.url, inject=inject)
    try:
        env.indexer(0, rpc_url=proxy.url).sync_once()
    finally:
        proxy.close()
    job = env.client(0).hgetall(env.keys.job(10_000))
    assert job["specValid"] == "0" and "specJson" not in job
    assert "keccak256(spec) is 0x" + keccak(spec).hex() in job["specError"]
    assert job["specHash"] == "0x" + keccak(b"something else").hex()


def test_deeply_nested_spec_is_invalid_not_a_crash() -> None:
    """The chain does not bound a spec's size: a spec nested deeper than MAX_SPEC_DEPTH is indexed
    as invalid, where json.loads raised RecursionError out of the reducer (stopping the indexer) or,
    with a raised recursion limit, overflowed the C stack. Brackets inside strings do not count."""
    spec = b"[" * 100_000 + b"]" * 100_000
    valid, error, text = check_spec(spec, "0x" + keccak(spec).hex())
    assert (valid, text) == (False, "") and f"deeper than {MAX_SPEC_DEPTH} levels" in error
    at_limit = b'{"v":' + b"[" * (MAX_SPEC_DEPTH - 1) + b"]" * (MAX_SPEC_DEPTH - 1) + b"}"
    assert check_spec(at_limit, "0x" + keccak(at_limit).hex())[0]
    in_strings = b'{"s":"' + b"[{" * 1000 + b'\\"[","t":"\\\\"}'
    assert check_spec(in_strings, "0x" + keccak(in_strings).hex())[0]
    ok = b'{"v":1}'
    assert check_spec(ok, "0x" + keccak(ok).hex()) == (True, "", '{"v":1}')


def test_spec_validity_is_json_loads_verdict() -> None:
    """check_spec parses with msgspec first (strict JSON) and falls back to json.loads: the verdict
    is always json.loads's, including what only json.loads accepts (NaN, lone surrogates, 1e999),
    followed by the RFC 8785 check: the bytes must be the canonical form of that parse."""
    import json

    import rfc8785

    cases = [
        '{"a":1}', ' {"a":[1,2,{"b":null}]} ', '{"a":NaN}', '{"a":Infinity}', '{"a":1e999}', '{"a":"\\ud800"}',
        '{"a":1.}', '{"a":01}', '{"a":"\x01"}', '{"a":1,}', '{"a":1}x', "{'a':1}", "[1]", '"s"', "1", "null",
        '{"a":"\u2028\x7f"}', '{"a":123456789012345678901234567890}', '{"a":-0,"a":1E+2}',
        '{"b":1,"a":2}', '{"a":2,"b":1}', '{"a":1.0}', '{"a":0.5}', '{"a":"\\u0041"}', '{"a":"\\u001f"}', '{"a": 1}',
    ]
    for text in cases:
        try:
            parsed = json.loads(text)
            expected = isinstance(parsed, dict) and rfc8785.dumps(parsed) == text.encode("utf-8")
        except (ValueError, rfc8785.CanonicalizationError):
            expected = False
        raw = text.encode("utf-8", "surrogatepass")
        valid, error, stored = check_spec(raw, "0x" + keccak(raw).hex())
        assert valid == expected, (text, error)
        assert stored == (text if expected else "")
