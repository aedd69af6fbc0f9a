"""The chain changing between the reads of one batch, a node whose logs lag its headers, a node
that is merely behind the index, and hashes from the node that are not hashes.

anvil answers every request from one consistent chain, so the races here need a proxy
(:class:`~tests.indexer.services.FlakyProxy`, or :class:`LaggingProxy` below) in front of it: to run
a real ``anvil_reorg`` exactly between two of the indexer's reads, to serve logs of the fork the
node just left, or to show an older view of anvil's own chain. Every block, hash and log is still
anvil's."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import requests

from depin.errors import ChainError, IndexerError
from indexer.decode import LogDecoder
from indexer.store import Cursor

from .services import TOKEN, ChainEnv, FlakyProxy, dump, stream_entries


def _deposit_tx(m: Any, account: str, amount: int) -> dict[str, Any]:
    return {"from": account, "to": m.market.address, "gas": hex(2_000_000), "data": m.codec.encode("JobMarket", "deposit", amount)}


def _covers(params: list[Any], n: int) -> bool:
    flt = params[0]
    return int(flt["fromBlock"], 16) <= n <= int(flt["toBlock"], 16)


def test_a_block_replaced_between_the_logs_and_the_headers_loses_no_event(chain_env: ChainEnv) -> None:
    """Block N has no market log; right after eth_getLogs answered [] for it (the proxy runs a real
    ``anvil_reorg`` at that instant, which anvil alone cannot time), it is replaced by N' with the
    same parent and a Deposited. The headers then all chain up and no log carries a blockHash to
    compare: the batch must still be fetched again (the last header re-read after the logs
    changed), and the deposit is indexed: the index equals a rebuild."""
    env, m = chain_env, chain_env.market
    other = m.accounts[3]
    m.fund(other)
    proxy = FlakyProxy(env.anvil.url)
    try:
        ix = env.indexer(0, rpc_url=proxy.url)
        ix.sync_once()
        m.mine(1)  # block N: no market log
        n = m.head()
        replaced: list[str] = []

        def reorg_after_answer(params: list[Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if not replaced and _covers(params, n):
                m.rpc.call("anvil_reorg", [1, [[_deposit_tx(m, other, 5 * TOKEN), 0]]])
                replaced.append(m.rpc.call("eth_getBlockByNumber", [hex(n), False])["hash"])
            return logs

        proxy.inject = reorg_after_answer
        ix.sync_once()
    finally:
        proxy.close()
    assert replaced and m.head() == n
    r, k = env.client(0), env.keys
    assert ix.store.cursor() == Cursor(n, replaced[0])
    assert r.hget(k.account(other), "withdrawable") == str(5 * TOKEN)
    env.rebuild(1)
    assert dump(r, k) == dump(env.client(1), k)


def test_logs_of_the_old_fork_are_never_skipped(chain_env: ChainEnv) -> None:
    """After a one-block reorg (N: a deposit by one account, N': a deposit by another), the proxy
    serves eth_getLogs from a lagging backend, the old fork's logs for block N, four times in a row
    (a load-balanced node can do that; anvil cannot). The logs' blockHash disagrees with the
    header: each fetch is retried, never committed without the block's logs, and once the logs
    are current the index equals a rebuild."""
    env, m = chain_env, chain_env.market
    first, second = m.accounts[3], m.accounts[4]
    m.fund(first)
    m.fund(second)
    proxy = FlakyProxy(env.anvil.url)
    try:
        ix = env.indexer(0, rpc_url=proxy.url)
        ix.sync_once()
        m.deposit(first, 5 * TOKEN)
        n = m.head()
        market = m.market.address.lower()
        old = [lg for lg in m.rpc.call("eth_getLogs", [{"fromBlock": hex(n), "toBlock": hex(n)}]) if lg["address"].lower() == market]
        assert old
        m.rpc.call("anvil_reorg", [1, [[_deposit_tx(m, second, 7 * TOKEN), 0]]])
        assert m.rpc.call("eth_getBlockByNumber", [hex(n), False])["hash"] != old[0]["blockHash"]
        stale: list[int] = []

        def lagging_backend(params: list[Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if len(stale) < 4 and _covers(params, n):
                stale.append(n)
                return [lg for lg in logs if int(lg["blockNumber"], 16) != n] + old
            return logs

        proxy.inject = lagging_backend
        ix.sync_once()
    finally:
        proxy.close()
    assert len(stale) == 4
    r, k = env.client(0), env.keys
    assert r.hget(k.account(second), "withdrawable") == str(7 * TOKEN)
    assert not r.exists(k.account(first))
    env.rebuild(1)
    assert dump(r, k) == dump(env.client(1), k)


class LaggingProxy(FlakyProxy):
    """A node that is behind: while `lag` is set it answers as anvil did `lag` blocks ago (its head
    `lag` blocks lower, no header above it), as a replica that fell behind does after a failover.
    anvil cannot show an older view of its own chain; every answer is still anvil's."""

    lag = 0
    lagged = 0  # requests answered with the older view

    def handle(self, body: bytes) -> tuple[int | None, bytes]:
        if not self.lag:
            return super().handle(body)
        req = json.loads(body)
        calls = req if isinstance(req, list) else [req]
        head = int(self._call({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []})["result"], 16)
        shown = head - self.lag
        answers = []
        for call in calls:
            method, params = call.get("method"), call.get("params") or []
            if method == "eth_blockNumber":
                answers.append({"jsonrpc": "2.0", "id": call["id"], "result": hex(shown)})
                continue
            if method == "eth_getBlockByNumber":
                tag = params[0]
                number = shown if tag == "latest" else int(tag, 16)
                if number > shown:
                    answers.append({"jsonrpc": "2.0", "id": call["id"], "result": None})
                    continue
                call = {**call, "params": [hex(number), *params[1:]]}
            answers.append(self._call(call))
        self.lagged += 1
        return 200, json.dumps(answers if isinstance(req, list) else answers[0]).encode()

    def _call(self, call: dict[str, Any]) -> Any:
        return requests.post(self.upstream, json=call, timeout=60).json()


@pytest.mark.parametrize("lag", [2, 6])
def test_a_node_behind_the_index_is_waited_for_not_rolled_back(chain_env: ChainEnv, lag: int, caplog: pytest.LogCaptureFixture) -> None:
    """With finality depth 4, the node falls `lag` blocks behind the indexed head (2: its head is
    one of the recent blocks kept, and matches; 6: below them). That is no reorg: each pass raises
    a retryable ChainError (run() backs off), logs it once, and rolls nothing back (no retraction,
    no ReorgTooDeep). When the node is back the index catches up and equals a rebuild."""
    env, m = chain_env, chain_env.market
    requester = m.accounts[1]
    m.fund(requester)
    for n in range(8):
        m.post(requester, n=n)
    proxy = LaggingProxy(env.anvil.url)
    try:
        ix = env.indexer(0, rpc_url=proxy.url, finality_depth=4)
        ix.sync_once()
        r, k = env.client(0), env.keys
        before = dump(r, k, bookkeeping=False)
        proxy.lag = lag
        with caplog.at_level(logging.WARNING, logger="indexer"):
            for _ in range(2):
                with pytest.raises(ChainError, match="behind"):
                    ix.sync_once()
        assert proxy.lagged > 0
        assert len([rec for rec in caplog.records if "behind the index" in rec.getMessage()]) == 1
        assert dump(r, k, bookkeeping=False) == before
        proxy.lag = 0
        m.post(requester, n=99)
        ix.sync_once()
    finally:
        proxy.close()
    assert all(e["kind"] == "event" for e in stream_entries(r, k))
    env.rebuild(1, finality_depth=4)
    assert dump(r, k) == dump(env.client(1), k)


def _junk_hash(value: str) -> list[dict[str, str]]:
    return [{"transactionHash": value}, {"blockHash": value}]


def test_hashes_that_are_not_hashes_are_skipped(chain_env: ChainEnv) -> None:
    """A node that sends a transactionHash or blockHash with a newline (which would split a stream
    line: an injected entry, or a commit script failing half-way after it set the cursor), or that
    is not 0x and 64 hex digits, gets that log skipped like any malformed log: the index equals a
    rebuild without it, stream included."""
    env, m = chain_env, chain_env.market
    first, second = m.accounts[3], m.accounts[4]
    m.fund(first)
    m.fund(second)
    m.deposit(first, 5 * TOKEN)
    n = m.head()
    market = m.market.address.lower()
    real = [lg for lg in m.rpc.call("eth_getLogs", [{"fromBlock": hex(n), "toBlock": hex(n)}]) if lg["address"].lower() == market]
    assert len(real) == 1
    good = real[0]
    bad_values = ["0x" + "ab" * 31 + "\nevent\tDeposited", good["transactionHash"] + "\n", "0x" + "zz" * 32, "0x" + "ab" * 31, 7]
    junk = [{**good, **field, "logIndex": hex(0x70 + i)} for i, field in enumerate(f for v in bad_values for f in _junk_hash(v))]

    def inject(params: list[Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return logs + junk if _covers(params, n) else logs

    proxy = FlakyProxy(env.anvil.url, inject=inject)
    try:
        ix = env.indexer(0, rpc_url=proxy.url)
        ix.sync_once()
    finally:
        proxy.close()
    assert ix.decoder.skipped == len(junk)
    r, k = env.client(0), env.keys
    assert r.hget(k.account(first), "withdrawable") == str(5 * TOKEN)
    env.rebuild(1)
    assert dump(r, k) == dump(env.client(1), k)


def test_bytes32_values_must_be_hex(chain_env: ChainEnv) -> None:
    """A bytes32 topic or data word from the node that is not 64 hex digits (a newline in it would
    reach the stream line as is) makes the log malformed: skipped, not decoded to a bad value."""
    env, m = chain_env, chain_env.market
    requester = m.accounts[1]
    m.fund(requester)
    m.post(requester, n=1)
    n = m.head()
    ix = env.indexer(0)
    decoder: LogDecoder = ix.decoder
    raws = [lg for lg in m.rpc.call("eth_getLogs", [{"fromBlock": hex(n), "toBlock": hex(n), "address": ix.decoder.addresses}])]
    posted = [lg for lg in raws if (ev := decoder.decode(lg)) is not None and ev.name == "JobPosted"]
    assert posted
    good = posted[0]
    spec_hash = decoder.decode(good).args["specHash"]
    assert spec_hash == good["topics"][3].lower()
    bad_topic = {**good, "topics": [*good["topics"][:3], "0x" + "ab" * 31 + "\n\t"]}
    upper = {**good, "topics": [*good["topics"][:3], good["topics"][3].upper().replace("0X", "0x")]}
    before = decoder.skipped
    assert decoder.decode_all([bad_topic]) == []
    assert decoder.skipped == before + 1
    assert decoder.decode_all([upper])[0].args["specHash"] == spec_hash  # canonical lower-case hex


def test_a_malformed_stream_line_writes_nothing(chain_env: ChainEnv) -> None:
    """The commit script checks every stream line before its first write: a line with too few
    fields fails the batch with the cursor, hashes and stream untouched (it used to fail half-way,
    after setting the cursor)."""
    env = chain_env
    ix = env.indexer(0)
    ix.sync_once()
    r, k = env.client(0), env.keys
    cursor = ix.store.cursor()
    assert cursor is not None
    before = dump(r, k)
    moved = Cursor(cursor.number + 1, "0x" + "12" * 32)
    good = "event\tDeposited\t1\t0x" + "34" * 32 + "\t0x" + "56" * 32 + "\t0\t{}"
    with pytest.raises(IndexerError, match="nothing was written"):
        ix.store._run(cursor, [["SET", k.cursor, moved.dumps()], ["HSET", k.prefix + ":x", "a", "1"]], moved, [good, "0xbroken"])
    assert dump(r, k) == before
