"""scripts/deploy.py when a deploy stops halfway, as on a testnet when the deployer's ether runs out
(or the node goes away) after some contracts are mined, and the operator fixes that and runs it
again. A real anvil with the Sepolia chain id (the testnet parameters, `--account TEST::0`):

- the deployer given enough ether for the first contracts only: the deploy refuses in one line
  before it sends anything (its cost bound exceeds the balance), and deploys once funded;
- the node goes away right after it took the market's transaction (a proxy before anvil forwards
  it, then answers 502 to everything): the deploy stops in one line with the token and the
  randomness source recorded in ``<chainId>.json.partial`` and the market's transaction pending;
  another account cannot resume it; the same command against the node resumes it (the market taken
  from its receipt), and the deployer has sent exactly the transactions of one deploy.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils import to_checksum_address
from web3 import Web3
from web3.utils.address import get_create_address

from depin.deployment import REPO_ROOT
from depinctl import procs

DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # TEST::0, anvil's account 0
# What the token, the randomness source, the market and the court engine cost at anvil's fees, and
# not the court after them (ape asks for gas * max fee of the block gas limit up front)
SHORT_BALANCE = 75 * 10**15


def _deploy(url: str, out: Path, account: str = "TEST::0", parameters: Path | None = None) -> subprocess.CompletedProcess[str]:
    bins = [str(REPO_ROOT / "node_modules" / ".bin"), str(Path(sys.executable).parent)]
    env = dict(os.environ, APE_FOUNDRY_HOST=url, PATH=os.pathsep.join([*bins, os.environ.get("PATH", "")]))
    ape = str(Path(sys.executable).with_name("ape"))
    return subprocess.run(
        [ape, "run", "deploy", "--network", "ethereum:local:foundry", "--deployments-dir", str(out), "--account", account,
         *(["--parameters", str(parameters)] if parameters else [])],
        cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def halfway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The first deploy (ether for half of it), then the second one after the deployer is funded."""
    work = tmp_path_factory.mktemp("halfway")
    proc, url = procs.start_anvil(work, args=["--silent", "--chain-id", "11155111"], timeout=30)
    try:
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10}))
        w3.provider.make_request("anvil_setBalance", [DEPLOYER, hex(SHORT_BALANCE)])  # type: ignore[arg-type]
        out = work / "deployments"
        first = _deploy(url, out)
        sent_first = w3.eth.get_transaction_count(DEPLOYER)
        w3.provider.make_request("anvil_setBalance", [DEPLOYER, hex(10**21)])  # type: ignore[arg-type]
        second = _deploy(url, out)
        record = json.loads((out / "11155111.json").read_text()) if (out / "11155111.json").exists() else None
        yield {"first": first, "sent_first": sent_first, "second": second, "record": record}
    finally:
        proc.stop(timeout=10)


def test_a_rerun_after_a_deploy_that_stopped_halfway_keeps_what_it_deployed(halfway: dict) -> None:
    first, second = halfway["first"], halfway["second"]
    assert first.returncode != 0, "the first deploy was to run out of ether"
    assert second.returncode == 0, second.stdout + second.stderr
    record = halfway["record"]
    assert record is not None
    if halfway["sent_first"]:
        # the token is the deployer's first contract: the rerun must reuse it (or the first run
        # must have sent nothing it cannot afford), not leave it (its whole supply minted) unrecorded
        first_token = to_checksum_address(get_create_address(DEPLOYER, 0))  # type: ignore[arg-type]
        assert record["addresses"]["RewardToken"] == first_token, (
            f"the first run sent {halfway['sent_first']} transactions (token {first_token}); the rerun deployed "
            f"token {record['addresses']['RewardToken']}"
        )


def test_a_deploy_that_runs_out_of_ether_says_so_in_one_line(halfway: dict) -> None:
    first = halfway["first"]
    output = first.stdout + first.stderr
    assert first.returncode != 0
    assert 'File "' not in output, output[-2000:]
    assert "insufficient funds" in output.lower()


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert 'File "' not in output and "Traceback" not in output, output[-2000:]
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, output[-2000:]
    return errors[0]


class GoneAfter:
    """A JSON-RPC proxy before `upstream` that forwards everything until it has forwarded
    `sends` ``eth_sendRawTransaction`` calls, and from then on answers HTTP 502 (the node went away
    right after it took the last one: its answer is lost too)."""

    def __init__(self, upstream: str, sends: int) -> None:
        self.forwarded_sends = 0
        state = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if state.forwarded_sends >= sends:
                    self.send_error(502)
                    return
                if b"eth_sendRawTransaction" in body:
                    state.forwarded_sends += 1
                request = urllib.request.Request(upstream, data=body, headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=30) as answer:
                    data = answer.read()
                if state.forwarded_sends >= sends:
                    self.send_error(502)  # taken by the node, the answer lost
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def node_gone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A deploy through a node that goes away after the market's transaction, a rerun by another
    account, and the rerun of the same command against the node."""
    work = tmp_path_factory.mktemp("gone")
    proc, url = procs.start_anvil(work, args=["--silent", "--chain-id", "11155111"], timeout=30)
    proxy = GoneAfter(url, sends=3)  # the token, the randomness source, the market
    try:
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10}))
        out = work / "deployments"
        first = _deploy(proxy.url, out)
        partial = out / "11155111.json.partial"
        recorded = json.loads(partial.read_text()) if partial.exists() else None
        other = _deploy(url, out, account="TEST::1")
        second = _deploy(url, out)
        record = json.loads((out / "11155111.json").read_text()) if (out / "11155111.json").exists() else None
        yield {
            "first": first, "recorded": recorded, "other": other, "second": second, "record": record,
            "partial_left": partial.exists(), "sent": w3.eth.get_transaction_count(DEPLOYER),  # type: ignore[arg-type]
        }
    finally:
        proxy.close()
        proc.stop(timeout=10)


def test_a_deploy_whose_node_goes_away_says_so_in_one_line_and_records_what_it_sent(node_gone: dict) -> None:
    line = _one_line_error(node_gone["first"])
    assert "11155111.json.partial" in line and "run the same command again" in line, line
    recorded = node_gone["recorded"]
    assert recorded is not None and recorded["chainId"] == 11155111 and recorded["deployer"] == DEPLOYER
    steps = recorded["steps"]
    assert list(steps) == ["RewardToken", "Randomness", "JobMarket"]
    for n, name in enumerate(["RewardToken", "Randomness"]):
        assert steps[name]["address"] == to_checksum_address(get_create_address(DEPLOYER, n))  # type: ignore[arg-type]
        assert steps[name]["tx"].startswith("0x") and steps[name]["block"] > 0
    assert steps["JobMarket"]["tx"].startswith("0x") and "block" not in steps["JobMarket"]  # sent, answer lost


def test_another_account_cannot_resume_it(node_gone: dict) -> None:
    line = _one_line_error(node_gone["other"])
    assert DEPLOYER in line and "--account" in line, line


def test_the_rerun_resumes_the_deploy_without_a_second_set(node_gone: dict) -> None:
    second = node_gone["second"]
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resuming" in second.stdout, second.stdout
    record = node_gone["record"]
    addresses = record["addresses"]
    for n, name in enumerate(["RewardToken", "Randomness", "JobMarket"]):
        assert addresses[name] == to_checksum_address(get_create_address(DEPLOYER, n)), (name, addresses)  # type: ignore[arg-type]
    assert record["deployBlock"] == node_gone["recorded"]["steps"]["RewardToken"]["block"]
    # token, randomness, market, court engine, court, setParams, the arbiter's role: one deploy's
    assert node_gone["sent"] == 7
    assert not node_gone["partial_left"], "the record of the partial deploy stays after the deployment file is written"


@pytest.fixture(scope="module")
def bad_parameter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A deploy whose parameters file holds a market value out of the contract's range (fee_bps
    20,000: setParams, the sixth transaction, reverts), then the same command with the value fixed."""
    work = tmp_path_factory.mktemp("bad-parameter")
    bad = work / "parameters.toml"
    text = (REPO_ROOT / "deployments" / "parameters.toml").read_text()
    bad.write_text(text.replace(" fee_bps = 200,", " fee_bps = 20_000,"))
    proc, url = procs.start_anvil(work, args=["--silent"], timeout=30)
    try:
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10}))
        out = work / "deployments"
        first = _deploy(url, out, parameters=bad)
        sent_first = w3.eth.get_transaction_count(DEPLOYER)  # type: ignore[arg-type]
        second = _deploy(url, out)
        record = json.loads((out / "31337.json").read_text()) if (out / "31337.json").exists() else None
        yield {"first": first, "sent_first": sent_first, "second": second, "record": record}
    finally:
        proc.stop(timeout=10)


def test_a_deploy_stopped_by_an_out_of_range_parameter_is_resumed_once_it_is_fixed(bad_parameter: dict) -> None:
    first, second = bad_parameter["first"], bad_parameter["second"]
    assert first.returncode != 0 and "feeBps" in first.stdout + first.stderr
    assert second.returncode == 0, (second.stdout + second.stderr)[-2000:]
    if bad_parameter["sent_first"]:  # the contracts the first run deployed are this deployment's
        token = to_checksum_address(get_create_address(DEPLOYER, 0))  # type: ignore[arg-type]
        assert bad_parameter["record"]["addresses"]["RewardToken"] == token
