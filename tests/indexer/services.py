"""Real services for the indexer tests: redis-server, anvil, the project's ape deploy, a market
driver, a flaky JSON-RPC proxy, and helpers to run and compare indexers.

Everything runs for real on free local ports: ``redis-server --save '' --appendonly no``, ``anvil
--silent``, and ``ape run deploy`` as a subprocess (the deploy script operators use). Starting anvil,
deploying and driving the market are :mod:`depinctl.procs`', :mod:`depinctl.deploy`'s and :mod:`depinctl.devchain`'s (:class:`Market` is a
:class:`~depinctl.devchain.DevChain` with the tests' short names and defaults). Transactions are sent
with ``eth_sendTransaction`` from anvil's unlocked development accounts: account 0 is the deployer
(admin, arbiter and, on devnets, token minter), the others are funded by it.
"""

from __future__ import annotations

import fcntl
import gzip
import http.server
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from eth_utils import keccak

from depin.chain import RpcClient
from depin.deployment import REPO_ROOT, Deployment
from depin.keys import Keys
from depin.spec import example_spec
from depinctl.deploy import deploy_with_ape
from depinctl.devchain import DevChain, JobTerms
from depinctl.procs import start_anvil, start_redis
from indexer.config import IndexerConfig
from indexer.follower import Indexer

BIN = REPO_ROOT / "node_modules" / ".bin"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
TOKEN = 10**18
BULK_GAS = 2_000_000  # the gas limit of every transaction bulk_jobs sends


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{VENV_BIN}:{env.get('PATH', '')}"
    return env


# Every wait's timeout is multiplied by this: timeouts only guard against hangs, and a busy CI
# machine (load average 10+ on 2 cores) makes containers and transactions several times slower.
TIMEOUT_SCALE = float(os.environ.get("DEPIN_TEST_TIMEOUT_SCALE", "3"))


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Polls `predicate` until it returns something true, and returns that; raises TimeoutError
    (with the last value or exception) after `timeout` × TIMEOUT_SCALE seconds. The tests' one way
    to wait for a state: never a sleep."""
    timeout *= TIMEOUT_SCALE
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# ---------------------------------------------------------------------------------------- processes


class RedisServer:
    """A throwaway redis-server (no persistence) on a free port (:func:`depinctl.procs.start_redis`)."""

    def __init__(self, tmpdir: Path) -> None:
        self.proc, url = start_redis(tmpdir, timeout=10 * TIMEOUT_SCALE)
        self.port = int(url.rsplit(":", 1)[1].split("/")[0])

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis.from_url(self.url(db), decode_responses=True)

    def stop(self) -> None:
        self.proc.stop()


class Anvil:
    """``anvil --silent`` on a free port (:func:`depinctl.procs.start_anvil`, logging to `workdir`)."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.proc, self.url = start_anvil(workdir, args=("--silent", *args))

    def stop(self) -> None:
        self.proc.stop()


# ---------------------------------------------------------------------------------------- deployed chains

# The deploy script costs about 6 s, 5 of them CPU, per chain (ape starting up, mostly), and the
# suite starts about 50 chains with the contracts deployed: the first chain of each set of arguments
# in a test run is deployed by the script, and its state (``anvil_dumpState``: accounts, storage,
# blocks, transactions and their logs) is kept in this folder; later chains of the same arguments
# start from it (``anvil --load-state``): the same contracts at the same addresses, the same blocks
# and logs, the same deployment file. The root conftest sets it for one test run (every worker
# shares it). Unset, every chain is deployed by the script. tests/contracts/test_deploy.py, the
# devnet's and the devchain's tests run the script on every chain they start.
DEPLOY_CACHE_ENV = "DEPIN_TEST_DEPLOY_CACHE"


def deployed_anvil(
    workdir: Path, anvil_args: Sequence[str] = (), deploy_args: Sequence[str] = (), timeout: float = 180
) -> tuple[Anvil, Deployment, Path]:
    """A fresh anvil (``anvil --silent *anvil_args``) holding the deployment of ``ape run deploy
    *deploy_args``, deployed by the script or loaded from this test run's first such deployment
    (:data:`DEPLOY_CACHE_ENV`); returns it, the deployment and its file in `workdir`/deployments."""
    deployments = workdir / "deployments"
    cache_root = os.environ.get(DEPLOY_CACHE_ENV, "")
    if not cache_root:
        return _deployed_by_the_script(workdir, anvil_args, deploy_args, timeout)
    entry = Path(cache_root) / _deploy_key(anvil_args, deploy_args)
    with open(f"{entry}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker deploys; the others wait and load its state
        if not (entry / "state.json").exists():
            anvil, deployment, path = _deployed_by_the_script(workdir, anvil_args, deploy_args, timeout)
            try:
                _keep_state(anvil.url, path, entry)
            except BaseException:
                anvil.stop()
                raise
            return anvil, deployment, path
    anvil = Anvil(workdir / "anvil", *anvil_args, "--load-state", str(entry / "state.json"))
    try:
        deployments.mkdir(parents=True, exist_ok=True)
        (kept,) = (entry / "deployments").iterdir()
        path = Path(shutil.copy(kept, deployments / kept.name))
        deployment = Deployment.from_json(path.read_text())
        head = RpcClient.from_url(anvil.url).block_number()
        assert head >= deployment.deploy_block, f"the loaded chain ends at block {head}, before its deployment"
    except BaseException:
        anvil.stop()
        raise
    return anvil, deployment, path


def _deployed_by_the_script(
    workdir: Path, anvil_args: Sequence[str], deploy_args: Sequence[str], timeout: float
) -> tuple[Anvil, Deployment, Path]:
    anvil = Anvil(workdir / "anvil", *anvil_args)
    try:
        deployment = deploy_with_ape(anvil.url, workdir / "deployments", extra_args=deploy_args, timeout=timeout)
    except BaseException:
        anvil.stop()
        raise
    return anvil, deployment, workdir / "deployments" / f"{deployment.chain_id}.json"


def _deploy_key(anvil_args: Sequence[str], deploy_args: Sequence[str]) -> str:
    """The arguments, with the content of each that names a file (``--parameters FILE``)."""
    parts = [*anvil_args, "|", *(Path(a).read_text() if Path(a).is_file() else a for a in deploy_args)]
    return keccak("\0".join(parts).encode()).hex()[:24]


def _keep_state(url: str, deployment_file: Path, entry: Path) -> None:
    """Writes the chain's state (anvil_dumpState, gzip inflated) and the deployment file under
    `entry`, renamed into place complete."""
    raw = bytes.fromhex(RpcClient.from_url(url, timeout=60).call("anvil_dumpState").removeprefix("0x"))
    tmp = entry.with_name(entry.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "state.json").write_bytes(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    (tmp / "deployments").mkdir()
    shutil.copy(deployment_file, tmp / "deployments" / deployment_file.name)
    tmp.rename(entry)


TEST_COURT = ("--court", "TestCourt")  # the deploy arguments of the indexer tests' chains (see deploy)


def deploy(rpc_url: str, directory: Path) -> tuple[Deployment, Path]:
    """Deploys the contracts with the project's ape script; returns the deployment and its file.
    The court is the TestCourt stand-in: the scenarios end re-executed jobs with every Outcome by
    hand, so the indexer sees each settlement (the real court's flows: tests/contracts/test_court.py,
    tests/sim, tests/executor/test_executor_court.py)."""
    directory.mkdir(parents=True, exist_ok=True)
    deployment = deploy_with_ape(rpc_url, directory, extra_args=TEST_COURT, timeout=180)
    return deployment, directory / f"{deployment.chain_id}.json"


# ---------------------------------------------------------------------------------------- market driver


@dataclass(frozen=True)
class Terms(JobTerms):
    """:class:`~depinctl.devchain.JobTerms` with the tests' defaults: a 30 s challenge window (the
    devnet parameters' minimum is 8 s), the least collateral (400 %), and verify mode none (1: never
    drawn, so every job the scenarios finalize does finalize whatever the block hashes; re-executed
    jobs, verify mode 0, are settled through the court in the scenarios)."""

    reward: int = 10 * TOKEN
    claim_window: int = 600
    max_runtime: int = 60
    challenge_window: int = 30
    collateral_pct: int = 400
    cpu_seconds: int = 60
    verify_mode: int = 1


REEXEC = Terms(verify_mode=0)


class _Address(str):
    """A contract address that also answers ``.address`` (as the tests spell it)."""

    @property
    def address(self) -> str:
        return str(self)


class Market(DevChain):
    """:class:`~depinctl.devchain.DevChain` under the tests' short names, with their defaults: specs
    from `n`, per-job result and evidence hashes, and a bystander (account 9) to finalize, settle,
    time out and expire. Every call is one transaction, mined (automine) and checked."""

    head = DevChain.block_number

    @property
    def market(self) -> _Address:
        return _Address(self.addresses["JobMarket"])

    @property
    def staking(self) -> _Address:
        return _Address(self.addresses["ProviderStaking"])

    @property
    def court_address(self) -> _Address:
        """The deployment's court: the TestCourt stand-in (:func:`deploy`), through which the
        scenarios end re-executed jobs with every Outcome."""
        return _Address(self.addresses["VerificationCourt"])

    @property
    def bystander(self) -> str:
        return self.accounts[9]

    def fund(self, account: str, tokens: int = 10_000) -> None:  # type: ignore[override]
        """Mints `tokens` whole tokens to `account` and approves the market and staking: three
        transactions, one block each (the scenarios' block counts depend on it)."""
        self.transact(self.deployer, "RewardToken", "mint", account, tokens * TOKEN)
        self.approve(account, self.market)
        self.approve(account, self.staking)

    def begin(self, job_id: int) -> None:
        """The court starts verifying the job (``beginVerification``: Submitted -> Disputed)."""
        self.send(self.bystander, self.contracts.test_court.begin(job_id))

    def settle(self, job_id: int, outcome: int) -> None:
        """The court ends the job with `outcome` (:class:`depin.market.Outcome`)."""
        self.send(self.bystander, self.contracts.test_court.settle(job_id, outcome))

    def flush_burn(self) -> None:
        self.send(self.bystander, self.contracts.job_market.flush_burn())

    def register(self, provider: str, stake: int = 1_000 * TOKEN, endpoint: str | None = None) -> None:
        self.register_provider(provider, stake, endpoint or f"http://{provider[:8].lower()}.local:8700", keccak(text=provider))

    def set_metadata(self, provider: str, endpoint: str, capability: bytes = b"\x42" * 32) -> dict[str, Any]:  # type: ignore[override]
        return super().set_metadata(provider, endpoint, capability)

    def post(self, requester: str, spec: bytes | None = None, terms: Terms | None = None, n: int = 0) -> int:
        """Posts a job (spec ``example_spec(n)`` unless given); returns its id."""
        return self.post_job(requester, spec if spec is not None else example_spec(n), terms or Terms())

    def claim(self, provider: str, job_id: int) -> None:
        self.claim_job(provider, job_id)

    @staticmethod
    def result_of(job_id: int, uri: str | None = None) -> tuple[bytes, str]:
        """The commitment and (opaque) URI the tests submit for `job_id`."""
        return keccak(text=f"commitment-{job_id}"), uri or f"http://results.local/r/{keccak(text=str(job_id)).hex()}"

    def submit(self, provider: str, job_id: int, uri: str | None = None) -> None:
        self.submit_result(provider, job_id, *self.result_of(job_id, uri))

    def fail(self, provider: str, job_id: int, code: int = 3) -> None:
        self.submit_failure(provider, job_id, code, keccak(text=f"failure-{job_id}"))

    def finalize(self, job_id: int, sender: str | None = None) -> dict[str, Any]:
        return super().finalize(job_id, sender or self.bystander)

    def finalize_many(self, job_ids: Sequence[int], sender: str | None = None) -> dict[str, Any]:
        return super().finalize_many(job_ids, sender or self.bystander)

    def timeout(self, job_id: int, sender: str | None = None) -> None:
        self.timeout_job(job_id, sender or self.bystander)

    def expire(self, job_id: int, sender: str | None = None) -> None:
        self.expire_job(job_id, sender or self.bystander)

    def cancel(self, requester: str, job_id: int) -> None:
        self.cancel_job(requester, job_id)


# ---------------------------------------------------------------------------------------- scenarios


def full_scenario(m: Market, on_step: Callable[[], None] | None = None) -> dict[str, int]:
    """Every transition type the contracts emit, in one story. Returns job ids by role."""
    step = on_step or (lambda: None)
    requester, provider, provider2, _, other = m.accounts[1:6]
    for a in (requester, provider, provider2, other):
        m.fund(a)
    m.register(provider)
    m.register(provider2, 500 * TOKEN)
    m.stake(provider, 200 * TOKEN)
    m.set_metadata(provider2, "http://provider-two.local:8700")
    m.deposit(requester, 15 * TOKEN)
    step()
    ids: dict[str, int] = {}
    # happy path, the escrow (R + fee) from the deposit
    ids["finalized"] = j = m.post(requester, n=1)
    m.claim(provider, j)
    m.submit(provider, j)
    # failure submission, finalized through finalizeMany
    ids["failed"] = f = m.post(requester, n=2)
    m.claim(provider2, f)
    m.fail(provider2, f, code=3)
    ids["many"] = g = m.post(other, n=3)
    m.claim(provider, g)
    m.submit(provider, g)
    step()
    m.advance_time(31)
    m.finalize(j)
    m.finalize_many([f, g, 999])
    step()
    # availability failures: no fault but not free; reopened, or refunded once the claim window is over
    ids["no_fault_reopened"] = nf = m.post(other, terms=REEXEC, n=14)
    m.claim(provider, nf)
    m.fail(provider, nf, code=2)
    ids["no_fault_expired"] = ne = m.post(other, terms=Terms(claim_window=5), n=15)
    m.claim(provider2, ne)
    m.advance_time(6)
    m.fail(provider2, ne, code=1)
    step()
    # re-executed jobs ended by the court with every outcome (the TestCourt stand-in passes them on)
    ids["provider_right"] = a = m.post(requester, terms=REEXEC, n=4)
    ids["provider_wrong"] = b = m.post(requester, terms=REEXEC, n=5)
    ids["split"] = c = m.post(other, terms=REEXEC, n=6)
    ids["unaudited"] = u = m.post(other, terms=REEXEC, n=16)
    ids["canary"] = cn = m.post(requester, terms=REEXEC, n=17)
    ids["failure_right"] = fr = m.post(other, terms=REEXEC, n=18)
    for x in (a, b, c, u, cn, fr):
        m.claim(provider, x)
    for x in (a, b, c, u, cn):
        m.submit(provider, x)
    m.fail(provider, fr, code=5)
    for x in (a, b, c, fr):
        m.begin(x)
    m.settle(a, 1)  # ProviderRight
    m.settle(b, 2)  # ProviderWrong: A and the slashed collateral go to the court
    m.settle(c, 3)  # Split
    m.settle(u, 4)  # Unaudited (settled from Submitted: drawn, nobody audited)
    m.settle(cn, 5)  # Canary
    m.settle(fr, 1)  # a failure confirmed
    step()
    # expiry, timeout with reopen, timeout with refund, cancel
    ids["expired"] = e = m.post(requester, terms=Terms(claim_window=5), n=7)
    ids["reopened"] = r = m.post(requester, n=8)
    ids["timed_out"] = t = m.post(other, terms=Terms(claim_window=5), n=9)
    m.claim(provider, r)
    m.claim(provider2, t)
    m.advance_time(61)
    m.expire(e)
    m.timeout(r)
    m.timeout(t)
    m.claim(provider2, r)
    m.submit(provider2, r, uri="ipfs://bafy-reopened")
    ids["cancelled"] = x = m.post(requester, n=10)
    m.cancel(requester, x)
    step()
    # a spec that hashes right but is not JSON
    ids["invalid_spec"] = m.post(other, spec=b"this is not json {", n=11)
    # open jobs left as they are
    ids["open"] = m.post(requester, terms=Terms(reward=3 * TOKEN, collateral_pct=500), n=12)
    ids["claimed"] = cl = m.post(other, n=13)
    m.claim(provider, cl)
    # balances out, the burn flushed, unbonding
    m.withdraw(provider)
    m.withdraw(requester)
    m.flush_burn()
    m.request_unstake(provider2, 100 * TOKEN)
    m.advance_time(int(m.read(m.contracts.provider_staking.unbonding_delay())) + 1)  # 30 days on the devnet (C9)
    m.withdraw_unstaked(provider2)
    m.request_unstake(provider, 50 * TOKEN)
    step()
    return ids


def bulk_jobs(m: Market, count: int, per_block: int = 8, start_n: int = 1000) -> None:
    """`count` jobs through post, claim, submit and finalize, several transactions per block."""
    requester, provider = m.accounts[6], m.accounts[7]
    if m.get_provider(provider)["id"] == 0:
        m.fund(requester, 1_000_000)
        m.fund(provider, 1_000_000)
        m.register(provider, 100_000 * TOKEN)
    first = m.job_count() + 1
    ids = list(range(first, first + count))
    terms = Terms(reward=TOKEN, challenge_window=8).as_tuple()  # the devnet parameters' minimum window
    specs = {i: example_spec(start_n + i) for i in ids}
    m.send_bulk([m.tx(requester, "JobMarket", "postJob", keccak(specs[i]), specs[i], terms, gas=BULK_GAS) for i in ids], per_block=per_block)
    m.send_bulk([m.tx(provider, "JobMarket", "claimJob", i, gas=BULK_GAS) for i in ids], per_block=per_block)
    m.send_bulk([m.tx(provider, "JobMarket", "submitResult", i, *m.result_of(i), gas=BULK_GAS) for i in ids], per_block=per_block)
    m.advance_time(9)
    batches = [ids[i : i + 10] for i in range(0, count, 10)]
    m.send_bulk([m.tx(m.bystander, "JobMarket", "finalizeMany", b, gas=BULK_GAS) for b in batches], per_block=per_block)


# ---------------------------------------------------------------------------------------- dumps


TIMING_META = ("head", "updatedAt", "eventsPerSecond")
BOOKKEEPING_META = ("confirmations", "finalityDepth")


def dump(client: redis.Redis, keys: Keys, *, bookkeeping: bool = True, stream: bool = True) -> dict[str, Any]:
    """Everything under the prefix, comparable across runs: meta without its timing fields,
    streams without ids. `bookkeeping=False` also leaves out the recent block hashes, undo records
    and the configuration echoed in meta (which differ between runs with different settings)."""
    out: dict[str, Any] = {}
    for key in sorted(client.scan_iter(match=keys.pattern(), count=1000)):
        kind = client.type(key)
        if not bookkeeping and (key == keys.blocks or key.startswith(keys.prefix + ":undo:")):
            continue
        if kind == "string":
            out[key] = client.get(key)
        elif kind == "hash":
            h = client.hgetall(key)
            if key == keys.meta:
                for f in TIMING_META + (() if bookkeeping else BOOKKEEPING_META):
                    h.pop(f, None)
            out[key] = h
        elif kind == "zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            if stream:
                out[key] = [fields for _, fields in client.xrange(key)]
        else:
            out[key] = f"<{kind}>"
    return out


def net_stream(entries: list[dict[str, str]]) -> list[dict[str, str]]:
    """The events a stream leaves applied once retractions cancel the entries they retract."""
    applied: list[dict[str, str]] = []
    for e in entries:
        if e["kind"] == "retraction":
            ident = {**e, "kind": "event"}
            for i in range(len(applied) - 1, -1, -1):
                if applied[i] == ident:
                    del applied[i]
                    break
            else:
                raise AssertionError(f"retraction of an event that is not applied: {e}")
        else:
            applied.append(e)
    return applied


def stream_entries(client: redis.Redis, keys: Keys) -> list[dict[str, str]]:
    return [fields for _, fields in client.xrange(keys.events)]


# ---------------------------------------------------------------------------------------- indexer process


def indexer_env(rpc_url: str, redis_url: str, deployment_file: Path, **extra: Any) -> dict[str, str]:
    env = _env()
    env.update(
        DEPIN_RPC_URL=rpc_url,
        DEPIN_REDIS_URL=redis_url,
        DEPIN_DEPLOYMENT=str(deployment_file),
        DEPIN_POLL_INTERVAL="0.05",
        PYTHONPATH=str(REPO_ROOT),
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def stop_gently(proc: subprocess.Popen) -> None:
    """SIGTERM to a process the test started, then SIGKILL if it is still there after 30 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def start_indexer_process(env: dict[str, str], *args: str, log_file: Path | None = None) -> subprocess.Popen:
    """``python -m indexer`` as a subprocess (stderr to `log_file`)."""
    err = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - the child process owns it for its life
    return subprocess.Popen([sys.executable, "-m", "indexer", *args], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)


def kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


# ---------------------------------------------------------------------------------------- flaky proxy


class FlakyProxy:
    """A JSON-RPC proxy in front of a node that misbehaves deterministically:

    - ``eth_getLogs`` over more than `max_range` blocks gets a JSON-RPC error (-32005, "block range
      too large"), as hosted providers answer;
    - every `fail_every`-th request is dropped (the connection closes without an answer) or, every
      other time, answered with HTTP 500;
    - `inject(params, logs)` (optional) may edit the logs an ``eth_getLogs`` returns.

    `log_answers` records each ``eth_getLogs`` the node answered: (fromBlock, toBlock, body bytes).

    `hold_logs_to` (optional): an ``eth_getLogs`` reaching that block waits for `released` (set by
    :meth:`close`) before it goes on: the indexer cannot apply that block until the test lets it.
    """

    def __init__(
        self,
        upstream: str,
        max_range: int | None = None,
        fail_every: int = 0,
        inject: Callable[[list[Any], list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.upstream = upstream
        self.max_range = max_range
        self.fail_every = fail_every
        self.inject = inject
        self.count = 0
        self.down = False  # when set, every request is dropped (the node "went away")
        # When set, headers of blocks at or above it come back null, as from a node that reports a
        # head whose blocks it is still re-mining after a reorg; `hidden` counts them.
        self.vanish_from: int | None = None
        self.hidden = 0
        self.dropped = 0
        self.errors500 = 0
        self.rejected = 0
        self.log_answers: list[tuple[int, int, int]] = []
        self.hold_logs_to: int | None = None
        self.held = 0
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._session = requests.Session()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms ACK stalls

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, payload = proxy.handle(body)
                if status is None:  # drop: close without an answer
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, body: bytes) -> tuple[int | None, bytes]:
        with self._lock:
            self.count += 1
            n = self.count
        if self.down:
            self.dropped += 1
            return None, b""
        if self.fail_every and n % self.fail_every == 0:
            if (n // self.fail_every) % 2:
                self.dropped += 1
                return None, b""
            self.errors500 += 1
            return 500, b'{"error": "internal server error"}'
        req = json.loads(body)
        if self.hold_logs_to is not None and self._reaches_hold(req):
            with self._lock:
                self.held += 1
            self.released.wait()
        if isinstance(req, dict) and req.get("method") == "eth_getLogs":
            flt = req["params"][0]
            span = int(flt["toBlock"], 16) - int(flt["fromBlock"], 16) + 1
            if self.max_range is not None and span > self.max_range:
                self.rejected += 1
                err = {"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32005, "message": f"block range too large: {span} > {self.max_range}"}}
                return 200, json.dumps(err).encode()
        resp = self._session.post(self.upstream, data=body, headers={"Content-Type": "application/json"}, timeout=60)
        if isinstance(req, dict) and req.get("method") == "eth_getLogs":
            flt = req["params"][0]
            with self._lock:
                self.log_answers.append((int(flt["fromBlock"], 16), int(flt["toBlock"], 16), len(resp.content)))
        if self.vanish_from is not None and isinstance(req, list):
            return 200, json.dumps(self._hide_headers(req, resp.json())).encode()
        if self.inject is not None and isinstance(req, dict) and req.get("method") == "eth_getLogs":
            data = resp.json()
            if "result" in data:
                data["result"] = self.inject(req["params"], data["result"])
                return 200, json.dumps(data).encode()
        return resp.status_code, resp.content

    def _reaches_hold(self, req: Any) -> bool:
        for r in req if isinstance(req, list) else [req]:
            if isinstance(r, dict) and r.get("method") == "eth_getLogs":
                to = r["params"][0].get("toBlock", "latest")
                if not (isinstance(to, str) and to.startswith("0x")) or int(to, 16) >= (self.hold_logs_to or 0):
                    return True
        return False

    def _hide_headers(self, req: list[dict[str, Any]], answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        asked = {r["id"]: r for r in req}
        for answer in answers:
            r = asked.get(answer.get("id"))
            if r and r.get("method") == "eth_getBlockByNumber" and int(r["params"][0], 16) >= (self.vanish_from or 0):
                answer["result"] = None
                self.hidden += 1
        return answers

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------- fixtures

@dataclass
class ChainEnv:
    anvil: Anvil
    redis: RedisServer
    deployment: Deployment
    deployment_file: Path
    market: Market
    tmp: Path
    ids: dict[str, int] = field(default_factory=dict)

    @property
    def keys(self) -> Keys:
        return Keys(self.deployment.chain_id, self.deployment.addresses["JobMarket"])

    def config(self, db: int = 0, rpc_url: str | None = None, **overrides: Any) -> IndexerConfig:
        values: dict[str, Any] = {
            "rpc_url": rpc_url or self.anvil.url,
            "redis_url": self.redis.url(db),
            "deployment_file": self.deployment_file,
            "poll_interval": 0.05,
            "backoff_base": 0.01,
            "backoff_cap": 0.3,
            "rpc_timeout": 10,
        }
        values.update(overrides)
        return IndexerConfig(**values)

    def indexer(self, db: int = 0, **overrides: Any) -> Indexer:
        return Indexer(self.config(db, **overrides))

    def client(self, db: int = 0) -> redis.Redis:
        return self.redis.client(db)

    def rebuild(self, db: int, **overrides: Any) -> Indexer:
        """A from-scratch index of the whole chain into the (empty) database `db`."""
        assert not self.client(db).keys("*"), f"db {db} is not empty"
        ix = self.indexer(db, **overrides)
        ix.sync_once()
        return ix


class LiveIndexer:
    """``Indexer.run`` in a background thread (stop with :meth:`stop`)."""

    def __init__(self, indexer: Indexer) -> None:
        self.indexer = indexer
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.indexer.run(self.stop_event)
        except BaseException as exc:  # surfaced by stop()/wait_synced()
            self.error = exc

    def wait_synced(self, head: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise self.error
            cur = self.indexer.store.r.get(self.indexer.keys.cursor)
            if cur is not None and self.indexer.store.cursor().number >= head:
                return
            time.sleep(0.02)
        raise TimeoutError(f"the live indexer did not reach block {head} in {timeout}s")

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the indexer did not stop"
        if self.error is not None:
            raise self.error


def _make_env(tmp: Path) -> ChainEnv:
    anvil, deployment, path = deployed_anvil(tmp, deploy_args=TEST_COURT)
    try:
        server = RedisServer(tmp / "redis")
    except BaseException:
        anvil.stop()
        raise
    return ChainEnv(anvil, server, deployment, path, Market(anvil.url, deployment), tmp)


@pytest.fixture
def chain_env(tmp_path: Path) -> Iterator[ChainEnv]:
    """A fresh anvil with the contracts deployed, and an empty redis-server."""
    env = _make_env(tmp_path)
    try:
        yield env
    finally:
        env.anvil.stop()
        env.redis.stop()


@pytest.fixture(scope="session")
def populated_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainEnv]:
    tmp = tmp_path_factory.mktemp("populated")
    env = _make_env(tmp)
    env.redis.stop()
    try:
        env.ids = full_scenario(env.market)
        bulk_jobs(env.market, 60, per_block=3)
        yield env
    finally:
        env.anvil.stop()


@pytest.fixture
def populated_env(populated_chain: ChainEnv, tmp_path: Path) -> Iterator[ChainEnv]:
    """The session's populated chain (do not send transactions) with a fresh redis-server."""
    server = RedisServer(tmp_path / "redis")
    env = ChainEnv(
        populated_chain.anvil, server, populated_chain.deployment, populated_chain.deployment_file,
        populated_chain.market, tmp_path, dict(populated_chain.ids),
    )
    try:
        yield env
    finally:
        server.stop()
