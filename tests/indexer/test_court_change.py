"""Governance changes the market's court (``setParams`` with another court: a new parameter
version, ``MarketParamsUpdated``). The indexer decodes the court of its deployment file only, and
its keys for the court (verifiers, juries, the court's parameters) are for one court; jobs of the
older versions stay with the old court (JobMarket._onlyCourtOf), so following the new address
instead of the old one would drop the old court's events, and following both would mix two courts
in one set of keys. The indexer stops before the block of the change with one line that says so,
instead of indexing on without the new court's events; the same file is then refused at start-up,
and the deployer's new file (naming the new court) rebuilds the index following it: restarted from
the cursor, the new court's events from before it (a verifier that joined before the switch) were
never fetched (review, stop 56). An index built from another deployment block is refused.
"""

from __future__ import annotations

import json
import re

from eth_account import Account
from eth_utils import keccak
from fastapi.testclient import TestClient

from indexer.api import create_app
from indexer.query import IndexerReader
from indexer.store import Cursor

from .services import REEXEC, ChainEnv, indexer_env, start_indexer_process, stop_gently, wait_for


def another_court(env: ChainEnv) -> str:
    """A second TestCourt of the same market: the first one's code and storage at a fresh address."""
    rpc = env.market.rpc
    court = env.deployment.addresses["VerificationCourt"]
    address = Account.create().address
    rpc.call("anvil_setCode", [address, rpc.get_code(court)])
    for slot in range(8):
        value = rpc.call("eth_getStorageAt", [court, hex(slot), "latest"])
        rpc.call("anvil_setStorageAt", [address, hex(slot), "0x" + value[2:].rjust(64, "0")])
    return address


def test_a_court_changed_by_governance_stops_the_indexer_before_the_change(chain_env: ChainEnv) -> None:
    env = chain_env
    m = env.market
    r, k = env.client(0), env.keys
    log_file = env.tmp / "indexer.log"
    proc = start_indexer_process(indexer_env(env.anvil.url, env.redis.url(0), env.deployment_file, DEPIN_WS_URL="off"),
                                 log_file=log_file)
    try:
        head = m.head()
        wait_for(lambda: (raw := r.get(k.cursor)) is not None and Cursor.loads(raw).number >= head or proc.poll() is not None,
                 60, "the indexer to reach the head")
        assert proc.poll() is None, log_file.read_text()
        old_court = env.deployment.addresses["VerificationCourt"]
        assert (IndexerReader(r, k).status().court or "").lower() == old_court.lower()
        # A job whose case opens in the old court before the change (the market's VerificationStarted
        # names the court; the job stays with it).
        requester, provider = m.accounts[1:3]
        for account in (requester, provider):
            m.fund(account)
        m.register(provider)
        disputed = m.post(requester, terms=REEXEC, n=1)  # re-executable: verifiable
        m.claim(provider, disputed)
        m.submit(provider, disputed)
        m.begin(disputed)
        new_court = another_court(env)
        joiner = _join_before_the_switch(env, new_court, amount=777)
        params = list(m.read(m.contracts.job_market.params()))
        params[16] = new_court
        changed = int(m.send(m.deployer, m.contracts.job_market.set_params(tuple(params)))["blockNumber"], 16)
        m.mine(2)
        wait_for(lambda: proc.poll() is not None or Cursor.loads(r.get(k.cursor)).number >= changed, 60,
                 "the indexer to stop (or index past the change)")
        text = log_file.read_text()
        assert proc.poll() is not None, f"the indexer indexed past the court change at block {changed}:\n{text}"
        assert proc.returncode == 2, text
        assert "Traceback" not in text, text
        (line,) = [line for line in text.splitlines() if "level=CRITICAL" in line]
        assert new_court in line and f"block {changed}" in line, line
        stopped = Cursor.loads(r.get(k.cursor)).number
        assert stopped < changed
        # The same file again: refused at start-up (its court is not the market's any more).
        again = env.tmp / "again.log"
        assert start_indexer_process(indexer_env(env.anvil.url, env.redis.url(0), env.deployment_file), "--once",
                                     log_file=again).wait(120) == 2
        assert "VerificationCourt" in again.read_text() and Cursor.loads(r.get(k.cursor)).number == stopped
        # The deployer's new file (the new court): the index goes on past the change ...
        record = json.loads(env.deployment_file.read_text())
        record["addresses"]["VerificationCourt"] = new_court
        new_file = env.tmp / "new" / env.deployment_file.name
        new_file.parent.mkdir()
        new_file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        head = m.head()
        on = env.tmp / "on.log"
        assert start_indexer_process(indexer_env(env.anvil.url, env.redis.url(0), new_file), "--once",
                                     log_file=on).wait(120) == 0, on.read_text()
        assert Cursor.loads(r.get(k.cursor)).number >= head
        assert "rebuilding the index from the deployment block" in on.read_text(), on.read_text()
        # The new court's verifier that joined before the switch is indexed (the restart from the
        # cursor never fetched that block's court events), and nothing of the old court is mixed in.
        assert r.hgetall(k.verifier(joiner)).get("free") == "777"
        assert r.hget(k.totals, "verifiers") == "1" and r.hget(k.totals, "courtStaked") == "777"
        # The index names the court it follows now, and the explorer's page of the old court's case
        # says that its court's later events are not indexed here (before: nothing said so).
        reader = IndexerReader(r, k)
        assert (reader.status().court or "").lower() == new_court.lower()
        assert (reader.job_fields(disputed).get("court") or "").lower() == old_court.lower()
        with TestClient(create_app(reader)) as client:
            page = client.get(f"/job/{disputed}")
            assert page.status_code == 200, page.text[-500:]
            found = re.search(r'id="court-note">([^<]*)<', page.text)
            assert found is not None, page.text[-3000:]
            note = found.group(1).lower()
            assert old_court.lower() in note and new_court.lower() in note and f"depin job status {disputed}" in note
        # ... and an index of it from scratch passes the earlier court's version, with one warning.
        fresh = env.tmp / "fresh.log"
        assert start_indexer_process(indexer_env(env.anvil.url, env.redis.url(1), new_file), "--once",
                                     log_file=fresh).wait(120) == 0, fresh.read_text()
        assert Cursor.loads(env.client(1).get(k.cursor)).number >= head
        (warning,) = [line for line in fresh.read_text().splitlines() if "earlier court's events are not indexed" in line]
        assert env.deployment.addresses["VerificationCourt"] in warning
        # A file naming another deployment block than the index was built from: refused, nothing written.
        record["deployBlock"] = int(record["deployBlock"]) + 1
        moved = env.tmp / "moved" / env.deployment_file.name
        moved.parent.mkdir()
        moved.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        cursor = r.get(k.cursor)
        refused = env.tmp / "refused.log"
        assert start_indexer_process(indexer_env(env.anvil.url, env.redis.url(0), moved), "--once", log_file=refused).wait(120) == 2
        assert "was built from block" in refused.read_text() and "--reset" in refused.read_text(), refused.read_text()
        assert r.get(k.cursor) == cursor
    finally:
        stop_gently(proc)


# Runtime code that emits LOG3 with the call's first 96 bytes as topics and the rest as data.
_EMITTER = "366000600037604051602051600051606036036060a300"


def _join_before_the_switch(env: ChainEnv, court: str, amount: int) -> str:
    """A ``VerifierJoined(verifier, class 0, amount)`` log from `court`'s address, emitted by code
    swapped in for one transaction (the TestCourt copy has no staking): what a verifier joining the
    new court before governance points the market at it leaves on chain. Returns the verifier."""
    rpc = env.market.rpc
    saved = rpc.get_code(court)
    verifier = env.market.accounts[5]
    topic0 = keccak(text="VerifierJoined(address,uint8,uint96)").hex()
    data = "0x" + topic0 + verifier[2:].lower().rjust(64, "0") + "00" * 32 + hex(amount)[2:].rjust(64, "0")
    rpc.call("anvil_setCode", [court, "0x" + _EMITTER])
    try:
        tx = rpc.call("eth_sendTransaction", [{"from": verifier, "to": court, "data": data, "gas": hex(100_000)}])
        wait_for(lambda: rpc.call("eth_getTransactionReceipt", [tx]) is not None, 30, "the join's receipt")
    finally:
        rpc.call("anvil_setCode", [court, saved])
    return verifier
