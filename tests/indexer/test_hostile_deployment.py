"""A deployment file that does not name the genuine contracts (handed out by someone else, or
stale): ``python -m indexer`` must refuse it at start-up with one line and a non-zero exit, before
it writes anything to Redis, with the check `Client.connect` makes
(tests/client/test_hostile_deployment.py). A node that is not reachable yet is waited for, not
taken for a wrong deployment.

On the session's populated chain (read-only: the attacker's code is set at fresh addresses, no
block is mined) with a fresh redis-server per test.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account import Account

from depin.chain import BlockTag, RpcClient
from depin.client import Client, WrongNetwork
from depin.deployment import REPO_ROOT, load_deployment
from depin.deployment_check import NotGenuine, NotSyncedYet, check_contracts
from indexer.store import Cursor

from .services import Anvil, ChainEnv, FlakyProxy, deploy, dump, indexer_env, start_indexer_process, wait_for


def hostile_file(env: ChainEnv, **addresses: str) -> Path:
    """The session's deployment file with `addresses` replaced."""
    record = json.loads(env.deployment_file.read_text())
    record["addresses"].update(addresses)
    path = env.tmp / "hostile" / f"{record['chainId']}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def another_build_of_the_market(env: ChainEnv) -> str:
    """A fresh address holding the real market's code with one byte of its metadata hash changed
    (what another build of the sources deploys): it answers every call as the market does."""
    code = bytearray(bytes.fromhex(env.market.rpc.get_code(env.deployment.addresses["JobMarket"])[2:]))
    code[-10] ^= 0xFF  # inside the CBOR metadata trailer
    address = Account.create().address
    env.market.rpc.call("anvil_setCode", [address, "0x" + code.hex()])
    return address


HOSTILE = {
    "the court as the market": lambda a, env: {"JobMarket": a["VerificationCourt"], "VerificationCourt": a["JobMarket"]},
    "the staking contract as the market": lambda a, env: {"JobMarket": a["ProviderStaking"], "ProviderStaking": a["JobMarket"]},
    "a market of another build": lambda a, env: {"JobMarket": another_build_of_the_market(env)},
    "a court that is not the market's": lambda a, env: {"VerificationCourt": a["RewardToken"]},
    "a staking contract that is not the market's": lambda a, env: {"ProviderStaking": a["VerificationCourt"]},
}


def assert_refused(proc: subprocess.Popen, log_file: Path, env: ChainEnv, *names: str) -> None:
    """The indexer exited non-zero with one line naming a contract, no traceback, and Redis is empty."""
    wait_for(lambda: proc.poll() is not None or env.client(0).dbsize(), 60, "the indexer to exit (or write)")
    written = env.client(0).dbsize()
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    text = log_file.read_text()
    assert written == 0, f"the indexer wrote {written} keys for a deployment that is not the genuine one:\n{text}"
    assert proc.returncode not in (0, None), text
    assert "Traceback" not in text, text
    (line,) = [line for line in text.splitlines() if "level=CRITICAL" in line]
    assert any(name in line for name in names), line


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_deployment_file_naming_other_contracts_is_refused(populated_env: ChainEnv, case: str) -> None:
    env = populated_env
    path = hostile_file(env, **HOSTILE[case](env.deployment.addresses, env))
    log_file = env.tmp / "indexer.log"
    proc = start_indexer_process(indexer_env(env.anvil.url, env.redis.url(0), path), "--once", log_file=log_file)
    assert_refused(proc, log_file, env, "JobMarket", "VerificationCourt", "ProviderStaking")


def test_a_node_unreachable_at_start_up_is_waited_for_then_a_wrong_market_refused(populated_env: ChainEnv) -> None:
    """The node does not answer at start-up (a proxy that drops every request): the indexer keeps
    retrying and writes nothing; once the node answers, the wrong market is refused."""
    env = populated_env
    a = env.deployment.addresses
    path = hostile_file(env, JobMarket=a["VerificationCourt"], VerificationCourt=a["JobMarket"])
    proxy = FlakyProxy(env.anvil.url)
    proxy.down = True
    log_file = env.tmp / "indexer.log"
    proc = start_indexer_process(indexer_env(proxy.url, env.redis.url(0), path, DEPIN_WS_URL="off"), log_file=log_file)
    try:
        wait_for(lambda: "reading the chain failed" in log_file.read_text(), 60, "the indexer to retry the node")
        assert proc.poll() is None, log_file.read_text()
        assert env.client(0).dbsize() == 0
        proxy.down = False
        assert_refused(proc, log_file, env, "JobMarket")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proxy.close()


def test_a_node_unreachable_at_start_up_is_waited_for_then_the_genuine_deployment_indexed(populated_env: ChainEnv) -> None:
    """The same outage with the genuine deployment file: no refusal; once the node answers, the
    indexer backfills to the head (and stops cleanly on SIGTERM)."""
    env = populated_env
    proxy = FlakyProxy(env.anvil.url)
    proxy.down = True
    log_file = env.tmp / "indexer.log"
    proc = start_indexer_process(
        indexer_env(proxy.url, env.redis.url(0), env.deployment_file, DEPIN_WS_URL="off"), log_file=log_file
    )
    r, k = env.client(0), env.keys
    try:
        wait_for(lambda: "reading the chain failed" in log_file.read_text(), 60, "the indexer to retry the node")
        assert proc.poll() is None and r.dbsize() == 0, log_file.read_text()
        proxy.down = False
        head = env.market.head()
        wait_for(lambda: (raw := r.get(k.cursor)) is not None and Cursor.loads(raw).number >= head or proc.poll() is not None,
                 60, "the backfill to reach the head")
        assert proc.poll() is None, log_file.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log_file.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proxy.close()


def test_depin_indexer_run_refuses_it_in_one_error_line(populated_env: ChainEnv) -> None:
    """`depin indexer run` (the same Indexer): exit 1, one ``error:`` line naming the contract (after
    its structured log lines), nothing written."""
    env = populated_env
    a = env.deployment.addresses
    path = hostile_file(env, JobMarket=a["ProviderStaking"], ProviderStaking=a["JobMarket"])
    result = subprocess.run(
        [sys.executable, "-m", "depinctl.cli", "indexer", "run", "--deployment", str(path), "--rpc-url", env.anvil.url,
         "--redis-url", env.redis.url(0), "--ws-url", "off"],
        capture_output=True, text=True, env=indexer_env(env.anvil.url, env.redis.url(0), path), cwd=REPO_ROOT, timeout=120,
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "JobMarket" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert env.client(0).dbsize() == 0


def test_reset_with_a_hostile_file_deletes_nothing(populated_env: ChainEnv) -> None:
    """A file that keeps the genuine market (so the same key prefix) but names another court: an
    operator who runs ``python -m indexer --reset`` with it is refused, and the index of the
    genuine deployment is still there, key for key."""
    env = populated_env
    r = env.client(0)
    genuine_env = indexer_env(env.anvil.url, env.redis.url(0), env.deployment_file)
    genuine = start_indexer_process(genuine_env, "--once")
    assert genuine.wait(120) == 0
    before = dump(r, env.keys)
    assert r.dbsize() > 0 and before
    a = env.deployment.addresses
    path = hostile_file(env, VerificationCourt=a["RewardToken"])
    log_file = env.tmp / "indexer.log"
    proc = start_indexer_process(indexer_env(env.anvil.url, env.redis.url(0), path), "--reset", "--once", log_file=log_file)
    assert proc.wait(120) == 2, log_file.read_text()
    text = log_file.read_text()
    assert "Traceback" not in text and "reset: deleted" not in text, text
    (line,) = [line for line in text.splitlines() if "level=CRITICAL" in line]
    assert "VerificationCourt" in line, line
    assert dump(r, env.keys) == before
    # the genuine file: the reset happens (after the check) and the index is rebuilt as it was
    again = env.tmp / "again.log"
    assert start_indexer_process(genuine_env, "--reset", "--once", log_file=again).wait(120) == 0, again.read_text()
    assert "reset: deleted" in again.read_text()
    assert dump(r, env.keys) == before


def _indexes_up_to_the_head(env: ChainEnv, node: Anvil, proc: subprocess.Popen, log_file: Path) -> None:
    """The indexer (`proc`, still running, nothing critical logged) indexes `node` up to its head."""
    r, k = env.client(0), env.keys
    target = int(requests_post(node.url, "eth_blockNumber"), 16)
    wait_for(lambda: (raw := r.get(k.cursor)) is not None and Cursor.loads(raw).number >= target or proc.poll() is not None,
             60, "the indexer to index the deployment once the node has all of it")
    assert proc.poll() is None, log_file.read_text()
    assert "level=CRITICAL" not in log_file.read_text()


def test_a_node_behind_the_deployment_block_is_waited_for_until_it_catches_up(populated_env: ChainEnv) -> None:
    """A fresh node of the same chain id at block 0 (a node still syncing): the deployment's
    contracts have no code there yet. The indexer logs once that the node is behind the deployment
    block and waits, writing nothing; the node then gets the deployment (the same deploy
    transactions from the same account: the same addresses and blocks) and the indexer indexes it."""
    env = populated_env
    node = Anvil(env.tmp / "behind")
    proc: subprocess.Popen | None = None
    try:
        head = int(requests_post(node.url, "eth_blockNumber"), 16)
        assert head < env.deployment.deploy_block
        log_file = env.tmp / "indexer.log"
        proc = start_indexer_process(
            indexer_env(node.url, env.redis.url(0), env.deployment_file, DEPIN_WS_URL="off"), log_file=log_file
        )
        wait_for(lambda: "behind the deployment" in log_file.read_text() or proc.poll() is not None, 60,
                 "the indexer to say it waits for the node")
        text = log_file.read_text()
        assert proc.poll() is None, text
        (line,) = [line for line in text.splitlines() if "behind the deployment" in line]
        assert f"block {head}" in line and f"block {env.deployment.deploy_block}" in line, line
        assert env.client(0).dbsize() == 0
        # the same check in the client (every depin command, the executors) says what it is
        with pytest.raises(WrongNetwork, match=rf"behind the deployment: its head is block {head}, the deployment block "
                                               rf"{env.deployment.deploy_block} \(still syncing\?\)"):
            Client.connect(node.url, env.deployment_file)
        deployment, _ = deploy(node.url, env.tmp / "behind-deployments")
        assert deployment.addresses == env.deployment.addresses
        assert deployment.deploy_block == env.deployment.deploy_block
        _indexes_up_to_the_head(env, node, proc, log_file)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log_file.read_text()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        node.stop()


def test_a_node_in_the_middle_of_the_deployment_is_waited_for(populated_env: ChainEnv) -> None:
    """A fresh node of the same chain id gets the deployment's own transactions one at a time (the
    deployer's signed bytes, read back from the populated chain): between the first (the
    RewardToken, the deployment block) and the last (setParams linking the court), its head is at
    or past the deployment block but the market is missing, then has no court. Such a node is still
    syncing, not another instance of the chain: the client says so and the indexer waits, writing
    nothing, and indexes once the last transaction is in. It exited on "the file is stale or altered"
    before (a CI run caught the deploy in between: stop 45)."""
    env = populated_env
    source = env.anvil.url
    deployer = env.deployment.deployer.lower()
    node = Anvil(env.tmp / "middle")
    proc: subprocess.Popen | None = None
    try:
        log_file = env.tmp / "indexer-middle.log"
        proc = start_indexer_process(
            indexer_env(node.url, env.redis.url(0), env.deployment_file, DEPIN_WS_URL="off"), log_file=log_file
        )
        seen: list[str] = []
        block = env.deployment.deploy_block
        done = False
        while not done:
            txs = requests_post(source, "eth_getBlockByNumber", [hex(block), True])["transactions"]
            for tx in (t for t in txs if t["from"].lower() == deployer):
                raw = requests_post(source, "eth_getRawTransactionByHash", [tx["hash"]])
                requests_post(node.url, "eth_sendRawTransaction", [raw])
                _wait_mined(node, tx["hash"])  # anvil answers before it mines: each state in turn is checked
                try:
                    Client.connect(node.url, env.deployment_file)
                except WrongNetwork as exc:
                    assert "(still syncing?)" in str(exc), str(exc)  # never "another instance" or "stale"
                    seen.append(str(exc))
                    assert proc.poll() is None, log_file.read_text()
                    assert env.client(0).dbsize() == 0
                else:
                    done = True
                    break
            block += 1
            assert block <= env.deployment.deploy_block + 200, "the deployment's transactions never completed it"
        assert any("its deployer has not created the JobMarket yet" in m for m in seen), seen
        assert any("its JobMarket has no court yet" in m for m in seen), seen
        _indexes_up_to_the_head(env, node, proc, log_file)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        node.stop()


class _MinesAfterTheFirstRead(RpcClient):
    """A client of a real node that has the node mine its pending transaction right after the
    check's first read of `watched`'s code: the node moves on in the middle of the check."""

    watched = ""
    mined = False

    def get_code(self, address: str, block: BlockTag = "latest") -> str:
        code = super().get_code(address, block)
        if address.lower() == self.watched.lower() and not self.mined:
            self.mined = True
            self.call("evm_mine")
        return code


def test_a_node_that_creates_the_market_during_the_check_is_still_syncing(populated_env: ChainEnv) -> None:
    """The race a CI run of the test above caught (stop 46): a node in the middle of the deployment
    mines the JobMarket's creation between the check's read of the market's code (none yet) and its
    read of the deployer's nonce (past the market's now). Read at different blocks, that was "another
    instance of this chain"; every read of that branch is now at one block, so the node is still
    syncing. Here the real node mines on cue (automine off), not by chance."""
    env = populated_env
    source = env.anvil.url
    market = env.deployment.addresses["JobMarket"]
    deployer = env.deployment.deployer.lower()
    node = Anvil(env.tmp / "racing")
    try:
        block = env.deployment.deploy_block
        pending = False
        while not pending:
            txs = requests_post(source, "eth_getBlockByNumber", [hex(block), True])["transactions"]
            for tx in (t for t in txs if t["from"].lower() == deployer):
                creates = requests_post(source, "eth_getTransactionReceipt", [tx["hash"]])["contractAddress"]
                pending = (creates or "").lower() == market.lower()
                if pending:  # the market's creation waits in the pool for the check's first read
                    requests_post(node.url, "evm_setAutomine", [False])
                raw = requests_post(source, "eth_getRawTransactionByHash", [tx["hash"]])
                requests_post(node.url, "eth_sendRawTransaction", [raw])
                if pending:
                    break
                _wait_mined(node, tx["hash"])
            block += 1
            assert block <= env.deployment.deploy_block + 200, "no transaction of the deployment creates its market"
        head = int(requests_post(node.url, "eth_blockNumber"), 16)
        assert requests_post(node.url, "eth_getCode", [market, "latest"]) in ("0x", "0x0")
        rpc = _MinesAfterTheFirstRead.from_url(node.url)
        assert isinstance(rpc, _MinesAfterTheFirstRead)
        rpc.watched = market
        with pytest.raises(NotSyncedYet) as caught:
            check_contracts(rpc, load_deployment(env.deployment_file))
        assert rpc.mined and int(requests_post(node.url, "eth_blockNumber"), 16) == head + 1
        assert requests_post(node.url, "eth_getCode", [market, "latest"]) not in ("0x", "0x0")
        assert "its JobMarket has no court yet" in str(caught.value), str(caught.value)
    finally:
        node.stop()


class _HeadFromABackendAhead(RpcClient):
    """A load-balanced node whose backends are not in step: the head comes from a backend `ahead`
    blocks in front of the one that answers the reads (a real anvil, which refuses a block past its
    head: "BlockOutOfRangeError")."""

    ahead = 3

    def block_number(self) -> int:
        return super().block_number() + self.ahead


def test_a_load_balanced_node_out_of_step_is_not_called_another_instance(populated_env: ChainEnv) -> None:
    """The market-absent check reads at one block, the head it was told; a backend behind that head
    answers an error there. That is a node not yet in step (NotSyncedYet, which the indexer waits
    for), not a JSON-RPC failure for `depin` commands, nor a verdict on the deployment file."""
    env = populated_env
    node = Anvil(env.tmp / "out-of-step")
    try:
        requests_post(node.url, "anvil_mine", [hex(env.deployment.deploy_block + 2)])
        rpc = _HeadFromABackendAhead.from_url(node.url)
        with pytest.raises(NotSyncedYet) as caught:
            check_contracts(rpc, load_deployment(env.deployment_file))
        text = str(caught.value)
        assert f"its head is block {env.deployment.deploy_block + 2 + 3}" in text, text
        assert "it has no state at that block (BlockOutOfRangeError" in text, text
        with pytest.raises(NotGenuine, match="no JobMarket contract"):  # in step, the same node is another instance
            check_contracts(RpcClient.from_url(node.url), load_deployment(env.deployment_file))
    finally:
        node.stop()


def test_a_node_at_the_deployment_block_without_the_contracts_is_refused(populated_env: ChainEnv) -> None:
    """The same fresh node mined up to the deployment block: the contracts would be there by now,
    so their absent code is another instance of the chain (a restarted devnet): refused."""
    env = populated_env
    node = Anvil(env.tmp / "other")
    try:
        requests_post(node.url, "anvil_mine", [hex(env.deployment.deploy_block)])
        assert int(requests_post(node.url, "eth_blockNumber"), 16) == env.deployment.deploy_block
        log_file = env.tmp / "indexer.log"
        proc = start_indexer_process(
            indexer_env(node.url, env.redis.url(0), env.deployment_file, DEPIN_WS_URL="off"), log_file=log_file
        )
        assert_refused(proc, log_file, env, "no JobMarket contract")
    finally:
        node.stop()


def _wait_mined(node: Anvil, tx_hash: str) -> None:
    """Waits for `node` to mine `tx_hash`: anvil answers eth_sendRawTransaction before it mines."""
    wait_for(lambda: requests_post(node.url, "eth_getTransactionReceipt", [tx_hash]) is not None, 30,
             f"the node to mine {tx_hash}")


def requests_post(url: str, method: str, params: list | None = None) -> Any:
    answer = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=30).json()
    return answer["result"]
