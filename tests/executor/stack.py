"""A whole executor stack on free local ports, every service a real process:

anvil (a block every second besides automining, ``--block-time 1 --mixed-mining``, so that a
job's anchor block arrives and its draw is readable) + the project's ape deploy (devnet parameters:
the VerificationCourt, the court's arbiter role on its own account), redis-server, the indexer
(``python -m indexer``), the Podman service of the ``engine`` fixture, and for each provider
executor its components started with ``python -m executor``:
the compute worker, the chain worker, beat, the dispatcher and the result server, each a
:class:`~depinctl.procs.ManagedProcess` that a test can ``kill -9`` and start again.

Accounts (anvil's development accounts): 0 deployer and faucet, 1 provider, 2 requester,
3 a test-driven court verifier, 4 a second (test-driven) provider, 5 arbiter, 6 a second requester. The test driver
(:class:`tests.indexer.services.Market`) sends with ``eth_sendTransaction`` from the accounts no
executor signs for, so no two senders share a nonce sequence.

Executors run with short timers (``DEPIN_BEAT_INTERVAL=0.5``, lease TTL 3 s, recovery after 4 s)
so that crash tests recover within seconds.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import docker
import docker.errors
import pytest
import redis
import requests
import tomli_w

from depin.accounts import DEV_ADDRESSES
from depin.deployment import REPO_ROOT
from depin.keys import Keys
from depin.market import JobStatus
from depin.spec import canonical_json
from depinctl.devchain import JobTerms, TxFailed
from depinctl.procs import ManagedProcess, free_port
from executor.worker import components_for
from tests.indexer.services import TIMEOUT_SCALE, Market, RedisServer, deployed_anvil, indexer_env, wait_for

TOKEN = 10**18
PROVIDER, REQUESTER, VERIFIER, PROVIDER2, ARBITER, REQUESTER2 = 1, 2, 3, 4, 5, 6
COMPONENTS = ("worker-compute", "worker-chain", "beat", "dispatcher", "results")

EXECUTOR_ENV = {
    "DEPIN_BEAT_INTERVAL": "0.5",
    "DEPIN_WITHDRAW_INTERVAL": "1",
    "DEPIN_LEASE_TTL": "3",
    "DEPIN_RECOVER_AFTER": "4",
    "DEPIN_SUBMIT_MARGIN": "3",
    "DEPIN_STOP_GRACE": "10",
    # How long a component waits at start for the engine to answer: a hang guard like every wait
    # of the tests, so scaled like them (a loaded machine once kept one from answering for 60 s).
    "DEPIN_ENGINE_WAIT": str(60 * TIMEOUT_SCALE),
}


def terms_for(*, verify_mode: int = 1, **overrides: Any) -> JobTerms:
    """The tests' job terms: a 1-token reward, the devnet's least collateral (400 %) and shortest
    challenge window (8 s). Verify mode none by default (never drawn: every job finalizes); tests of
    the court's side post re-executable jobs (`verify_mode=0`)."""
    values: dict[str, Any] = {"reward": TOKEN, "claim_window": 600, "max_runtime": 60, "challenge_window": 8, "collateral_pct": 400, "cpu_seconds": 10}
    values.update(overrides)
    return JobTerms(verify_mode=verify_mode, **values)


def docker_host_of(client: docker.DockerClient) -> str:
    """The URL an executor process should use for the engine the `engine` fixture connected to."""
    explicit = os.environ.get("DEPIN_TEST_DOCKER_HOST", "").strip()
    if explicit:
        return explicit
    adapter = getattr(client.api, "_custom_adapter", None)
    socket_path = getattr(adapter, "socket_path", None)
    if socket_path:
        return "unix://" + socket_path
    return client.api.base_url


def spec(image: str, command: list[str], *, cpus: float = 1, memory_mb: int = 64, max_runtime: int = 10, output_mb: int = 1, **extra: Any) -> bytes:
    """Canonical spec bytes."""
    return canonical_json(
        {"v": 1, "image": image, "command": command, "env": {}, "inputs": [],
         "resources": {"cpus": cpus, "memory_mb": memory_mb, "max_runtime": max_runtime, "output_mb": output_mb}, **extra}
    )


def release_gate(container: Any) -> None:
    """Lets a job that waits for /tmp/go end: runs `touch /tmp/go` in its container. The job then
    ends at once and its executor removes the container, which can take the exec session with it
    before the engine is asked for the exec's exit code (Podman answers 404: a fresh-clone run
    failed so with docker-py's `exec_run`; when the container is gone from its database, Podman
    answers 500 "no such container" instead: CI at b8597d9). The touch has run by then, so the code
    is checked only while the session still exists; the callers check that the job ended."""
    api = container.client.api
    exec_id = api.exec_create(container.id, ["touch", "/tmp/go"])["Id"]
    output = api.exec_start(exec_id)
    try:
        code = api.exec_inspect(exec_id)["ExitCode"]
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        if "no such container" in str(exc):
            return
        raise
    assert code == 0, output


@dataclass
class Executor:
    """One executor (one role, one account) as separately started component processes."""

    name: str
    role: str
    account: int
    address: str
    config_path: Path
    workdir: Path
    env: dict[str, str]
    results_url: str
    procs: dict[str, ManagedProcess] = field(default_factory=dict)

    def command(self, component: str) -> list[str]:
        cmd = [sys.executable, "-m", "executor"]
        cmd += ["worker", "--queue", component.split("-", 1)[1]] if component.startswith("worker-") else [component]
        return cmd + ["--config", str(self.config_path)]

    def start(self, *components: str) -> None:
        for component in components or components_for(self.role):
            old = self.procs.get(component)
            if old is not None and old.alive():
                continue
            log = self.workdir / f"{component}.log"
            self.procs[component] = ManagedProcess(f"{self.name}-{component}", self.command(component), log_path=log, cwd=REPO_ROOT, env=self.env)

    def kill9(self, component: str) -> None:
        """SIGKILL to the component's whole process group (a prefork worker's children too)."""
        proc = self.procs[component]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.proc.wait(10)
        proc._log.close()

    def pause(self, component: str) -> None:
        """SIGSTOP to the component's process group: it does nothing until :meth:`resume`, which
        is instant where a stop and start costs the component's whole start-up (seconds on a
        loaded machine). For a component that holds no lease (the beat): a paused chain worker
        would let its signer lock lapse."""
        os.killpg(self.procs[component].pid, signal.SIGSTOP)

    def resume(self, component: str) -> None:
        """SIGCONT to the component's process group (see :meth:`pause`)."""
        os.killpg(self.procs[component].pid, signal.SIGCONT)

    def stop(self, *components: str) -> None:
        for component in components or tuple(self.procs):
            proc = self.procs.get(component)
            if proc is not None:
                proc.stop(timeout=15)

    def instance(self) -> str:
        """The executor's ``depin.executor`` container label (:attr:`executor.runtime.Runtime.instance`)."""
        import hashlib

        from depin.deployment import Deployment

        cfg = tomllib.loads(self.config_path.read_text())
        dep = Deployment.from_json(Path(cfg["network"]["deployment"]).read_text())
        state_dir = Path(cfg["engine"]["state_dir"]).resolve()
        ident = f"{dep.chain_id}:{dep.addresses['JobMarket'].lower()}:{self.role}:{self.address.lower()}:{state_dir}"
        return f"{self.role.replace(',', '_')}-{hashlib.sha256(ident.encode()).hexdigest()[:10]}"

    def log(self, component: str) -> str:
        path = self.workdir / f"{component}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"----- {c}\n{self.log(c)[-6000:]}" for c in components_for(self.role))

    def log_lines(self, component: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log(component).splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def all_log_lines(self) -> list[dict[str, Any]]:
        return [entry for c in components_for(self.role) for entry in self.log_lines(c)]

    def wait_log(self, component: str | None, match: Callable[[dict[str, Any]], bool], what: str,
                 timeout: float = 30) -> list[dict[str, Any]]:
        """The lines of `component`'s log (every component's when None) that `match` accepts, once
        there is one. A component logs after it wrote the record or saw the receipt a test waited
        for, so a test that saw those waits for the line too; the caller asserts how many."""
        def found() -> list[dict[str, Any]]:
            lines = self.all_log_lines() if component is None else self.log_lines(component)
            return [e for e in lines if match(e)]

        try:
            wait_for(found, timeout, f"the {self.role}'s log line: {what}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.logs()}") from None
        return found()


class Stack:
    """Chain, Redis, indexer, engine and executors for one test module."""

    def __init__(
        self, tmp: Path, engine: docker.DockerClient, images: dict[str, str], *, poll: float = 0.05, deploy_args: Sequence[str] = ()
    ) -> None:
        """`deploy_args`: more arguments of the deploy script (``--parameters FILE``, say)."""
        self.tmp = tmp
        self.poll = poll
        self.engine = engine
        self.images = images
        self.docker_host = docker_host_of(engine)
        self.executors: list[Executor] = []
        self.indexer: ManagedProcess | None = None
        # the arbiter role goes to its own account (anvil's development accounts)
        self.anvil, self.deployment, self.deployment_file = deployed_anvil(
            tmp, ("--block-time", "1", "--mixed-mining"), ("--arbiter", DEV_ADDRESSES[ARBITER], *deploy_args)
        )
        try:
            self.redis = RedisServer(tmp / "redis")
            self.market = Market(self.anvil.url, self.deployment)
            self.keys = Keys(self.deployment.chain_id, self.deployment.addresses["JobMarket"])
            self.start_indexer()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ services

    @property
    def accounts(self) -> list[str]:
        return self.market.accounts

    def index(self) -> redis.Redis:
        return self.redis.client(0)

    def state(self) -> redis.Redis:
        return self.redis.client(1)

    def start_indexer(self) -> None:
        env = indexer_env(self.anvil.url, self.redis.url(0), self.deployment_file, DEPIN_POLL_INTERVAL=str(self.poll))
        self.indexer = ManagedProcess("indexer", [sys.executable, "-m", "indexer"], log_path=self.tmp / "indexer.log", cwd=REPO_ROOT, env=env)

    def executor(
        self, name: str, role: str, account: int, *, policy: dict[str, Any] | None = None, concurrency: int = 2, start: bool = True,
        extra_env: dict[str, str] | None = None, sections: dict[str, dict[str, Any]] | None = None, **executor_settings: Any,
    ) -> Executor:
        workdir = self.tmp / name
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        pol = {
            "images": sorted({ref.split("@", 1)[1] for ref in self.images.values()}),
            "max_cpus": 2, "max_memory_mb": 512, "max_runtime": 30, "max_output_mb": 16,
            "min_reward_per_cpu_second": "0", "max_concurrent_jobs": 4,
        }
        pol.update(policy or {})
        ex = {"role": role, "concurrency": concurrency, "results_url": f"http://127.0.0.1:{port}", "results_bind": f"127.0.0.1:{port}",
              "withdraw_threshold": "0"}
        ex.update(executor_settings)
        config = {
            "network": {"rpc_url": self.anvil.url, "deployment": str(self.deployment_file)},
            "redis": {"url": self.redis.url(0)},
            "key": {"dev_account": account},
            "engine": {"docker_host": self.docker_host, "state_dir": str(workdir / "state")},
            "executor": ex,
            "policy": pol,
            **(sections or {}),
        }
        # the providers here serve on loopback, which a verifier fetches from only when allowed
        config["verifier"] = {"result_allow_networks": ["127.0.0.0/8"], **config.get("verifier", {})}
        path = workdir / "depin.toml"
        path.write_text(tomli_w.dumps(config))
        env = dict(os.environ)
        env.update(EXECUTOR_ENV)
        env.update(extra_env or {})
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["PATH"] = f"{REPO_ROOT / 'node_modules' / '.bin'}:{Path(sys.executable).parent}:{env.get('PATH', '')}"
        executor = Executor(name, role, account, self.accounts[account], path, workdir, env, ex["results_url"])
        self.executors.append(executor)
        if start:
            executor.start()
        return executor

    def close(self) -> None:
        procs = [proc for ex in self.executors for proc in ex.procs.values() if proc.alive()]
        for proc in procs:  # every component at once: their warm shutdowns overlap
            proc._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs:
            try:
                proc.proc.wait(max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: S110 - best-effort cleanup of a test stack
                pass
        for ex in self.executors:
            try:
                ex.stop()
            except Exception:  # noqa: S110 - best-effort cleanup of a test stack
                pass
        if self.indexer is not None:
            self.indexer.stop()
        for attr in ("redis", "anvil"):
            svc = getattr(self, attr, None)
            if svc is not None:
                svc.stop()
        self._remove_containers()

    def _remove_containers(self) -> None:
        from executor.containers import managed_containers, remove_container

        for ex in self.executors:
            try:
                for c in managed_containers(self.engine, instance=ex.instance()):
                    remove_container(self.engine, c.id)
            except Exception:  # noqa: S110 - best-effort cleanup of a test stack
                pass

    # ------------------------------------------------------------------ actors

    def setup_provider(self, account: int, stake: int = 1_000) -> None:
        address = self.accounts[account]
        self.market.fund(address)
        self.market.register(address, stake * TOKEN, endpoint=f"http://127.0.0.1/{account}")

    def wait_court_member(self, account: int) -> None:
        """Waits for `account`'s verifier executor to join the court by itself (``[verifier]
        court_stake``), then mines past the activation delay so that its stake counts in draws."""
        m = self.market
        court = m.contracts.verification_court
        wait_for(lambda: m.read(court.get_verifier(self.accounts[account]))[0], 120, "the verifier to join the court")
        m.mine(2)

    def setup_funded(self, *accounts: int, tokens: int = 10_000) -> None:
        for a in accounts:
            self.market.fund(self.accounts[a], tokens)

    def post(self, spec_bytes: bytes, *, requester: int = REQUESTER, terms: JobTerms | None = None) -> int:
        return self.market.post_job(self.accounts[requester], spec_bytes, terms or terms_for())

    def job(self, job_id: int) -> dict[str, Any]:
        return self.market.get_job(job_id)

    def status(self, job_id: int) -> JobStatus:
        return JobStatus(self.job(job_id)["status"])

    def wait_status(self, job_id: int, statuses: JobStatus | Iterable[JobStatus], timeout: float = 60, executors: Iterable[Executor] = ()) -> JobStatus:
        wanted = {statuses} if isinstance(statuses, JobStatus) else set(statuses)
        what = f"job {job_id} to be {sorted(w.label for w in wanted)}"
        return self._wait_job(job_id, lambda: (s := self.status(job_id)) in wanted and s, timeout, what, executors)

    def _wait_job(self, job_id: int, predicate: Callable[[], Any], timeout: float, what: str, executors: Iterable[Executor]) -> Any:
        """wait_for; on a timeout the error names the job's status and carries the executors' logs
        (a component that gave up says why there)."""
        try:
            return wait_for(predicate, timeout, what)
        except TimeoutError as exc:
            logs = "\n".join(ex.logs() for ex in (list(executors) or self.executors))
            raise TimeoutError(f"{exc}; now {self.status(job_id).label}\n{logs}") from None

    def synced(self, timeout: float = 20) -> None:
        """Waits until the indexer has applied every block the chain has now."""
        head = self.market.block_number()

        def caught_up() -> bool:
            raw = self.index().get(self.keys.cursor)
            return raw is not None and json.loads(raw)["number"] >= head

        wait_for(caught_up, timeout, f"the indexer to reach block {head}")

    def wait_event(self, job_id: int, name: str, timeout: float = 60, executors: Iterable[Executor] = ()) -> list[dict[str, Any]]:
        """Waits for the job's indexed `name` events (see _wait_job on a timeout)."""
        return self._wait_job(job_id, lambda: self.events(job_id, name), timeout, f"job {job_id}'s {name}", executors)

    def events(self, job_id: int, name: str | None = None) -> list[dict[str, Any]]:
        """The job's entries in the indexer's stream (kind ``event`` only), oldest first, once the
        indexer has caught up with the chain."""
        self.synced()
        out = []
        for _, fields in self.index().xrange(self.keys.events):
            if fields.get("kind") != "event":
                continue
            args = json.loads(fields.get("args") or "{}")
            if str(args.get("jobId")) == str(job_id) and (name is None or fields.get("event") == name):
                out.append({**fields, "args": args})
        return out

    def chain_log_count(self, job_id: int, event: str) -> int:
        """How many `event` logs the chain itself holds for the job (not the index)."""
        topic = "0x" + self.market.codec.topics[("JobMarket", event)].hex()
        logs = self.market.rpc.call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest", "address": self.market.market,
                                                       "topics": [topic, "0x" + job_id.to_bytes(32, "big").hex()]}])
        return len(logs)

    def exec_record(self, ex: Executor, job_id: int) -> dict[str, str]:
        prefix = f"depin-exec:{self.deployment.chain_id}:{self.deployment.addresses['JobMarket'].lower()}:{ex.role}:{ex.address.lower()}"
        return self.state().hgetall(f"{prefix}:job:{job_id}")

    def download(self, uri: str) -> bytes:
        resp = requests.get(uri, timeout=10)
        resp.raise_for_status()
        return resp.content


# Loops that post jobs until one is drawn for audit: p_job is about 0.3 at 400 % collateral, so the
# first drawn job ends such a loop (3.3 jobs on average). The cap only bounds a broken draw:
# P(64 undrawn) = 0.7^64 ~ 1e-10, so reaching it fails the test (never_drawn). At 26 it was about 1
# in 10,000, and the test skipped, losing its coverage that run.
MAX_JOBS = 64


def never_drawn(what: str = "re-executable jobs") -> NoReturn:
    """Fails the test whose loop posted MAX_JOBS jobs and saw none drawn."""
    pytest.fail(f"none of {MAX_JOBS} {what} was drawn (about 1e-10 by chance): is the randomness source broken?")


def drawn(stack: Stack, job_id: int) -> bool | None:
    """``JobMarket.isDrawn`` once the job's anchor block is readable; None before (RandomnessNotReady)."""
    try:
        return stack.market.is_drawn(job_id)
    except TxFailed as exc:
        if "RandomnessNotReady" in exc.reason:
            return None
        raise


def exec_prefix(stack: Stack, ex: Executor) -> str:
    """The executor's Redis key prefix (depin.keys.ExecKeys)."""
    return f"depin-exec:{stack.deployment.chain_id}:{stack.deployment.addresses['JobMarket'].lower()}:{ex.role}:{ex.address.lower()}"


def seat_record(stack: Stack, ex: Executor, job_id: int, round_: int = 0, seat_: int = 0) -> dict[str, str]:
    """A verifier executor's record of one seat (``{e}:seat:{job}:{round}:{seat}``)."""
    return stack.state().hgetall(f"{exec_prefix(stack, ex)}:seat:{job_id}:{round_}:{seat_}")


def court_logs(stack: Stack, event: str, job_id: int) -> list[dict[str, Any]]:
    """The court's `event` logs of job `job_id` (its first indexed argument), from block 0."""
    m = stack.market
    topic = "0x" + m.codec.topics[("VerificationCourt", event)].hex()
    return m.rpc.call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest", "address": m.court,
                                       "topics": [topic, "0x" + job_id.to_bytes(32, "big").hex()]}])
