"""A devnet-like stack for the benchmarks, on free local ports, without the test harness:

anvil (``--block-time 1 --mixed-mining``) + the project's ape deploy, redis-server, the indexer
(``python -m indexer``) and provider executors, each component (compute worker, chain worker,
beat, dispatcher, result server) a :class:`~depinctl.procs.ManagedProcess` started with
``python -m executor``. The benchmark drives the market with :class:`~depinctl.devchain.DevChain`
(``eth_sendTransaction`` from anvil's unlocked development accounts; executors sign for their own
accounts, and the driver never sends from those).

Used by ``scripts/bench_executor.py`` and ``scripts/bench_load.py``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import tomli_w

from depin.chain import RpcClient
from depin.deployment import REPO_ROOT
from depin.keys import Keys
from depin.market import JobStatus
from depin.spec import canonical_json
from depinctl.deploy import deploy_with_ape
from depinctl.devchain import DevChain, JobTerms
from depinctl.procs import ManagedProcess, free_port, start_anvil, start_redis

TOKEN = 10**18
ARBITER = 5  # anvil account that holds the court's arbiter role
COMPONENTS = ("worker-compute", "worker-chain", "beat", "dispatcher", "results")
COMMAND = ["sh", "-c", "echo ok > /out/ok"]


def spec(image: str, command: list[str], *, cpus: float = 1, memory_mb: int = 64, max_runtime: int = 10, **extra: Any) -> bytes:
    """Canonical spec bytes of a job running `command` in `image`."""
    return canonical_json(
        {"v": 1, "image": image, "command": command, "env": {}, "inputs": [],
         "resources": {"cpus": cpus, "memory_mb": memory_mb, "max_runtime": max_runtime, "output_mb": 1}, **extra}
    )


def terms(**overrides: Any) -> JobTerms:
    """Benchmark terms: 1 token, the devnet's least collateral (400 %) and shortest challenge window
    (8 s), verify mode none (never drawn: every job finalizes)."""
    values: dict[str, Any] = {"reward": TOKEN, "claim_window": 3_600, "max_runtime": 60, "challenge_window": 8,
                              "collateral_pct": 400, "cpu_seconds": 10, "verify_mode": 1}
    values.update(overrides)
    return JobTerms(**values)


def docker_host_of(client: Any) -> str:
    """The URL an executor process should use for the engine `client` is connected to."""
    explicit = os.environ.get("DEPIN_TEST_DOCKER_HOST", "").strip()
    if explicit:
        return explicit
    adapter = getattr(client.api, "_custom_adapter", None)
    socket_path = getattr(adapter, "socket_path", None)
    return "unix://" + socket_path if socket_path else str(client.api.base_url)


@dataclass
class Executor:
    """One provider executor as separately started component processes."""

    name: str
    account: int
    address: str
    config_path: Path
    workdir: Path
    env: dict[str, str]
    procs: dict[str, ManagedProcess] = field(default_factory=dict)
    restarts: int = 0

    def start(self, components: tuple[str, ...] = COMPONENTS) -> None:
        for component in components:
            cmd = [sys.executable, "-m", "executor"]
            cmd += ["worker", "--queue", component.split("-", 1)[1]] if component.startswith("worker-") else [component]
            cmd += ["--config", str(self.config_path)]
            self.procs[component] = ManagedProcess(f"{self.name}-{component}", cmd, log_path=self.workdir / f"{component}.log",
                                                   cwd=REPO_ROOT, env=self.env)

    def revive(self, limit: int = 100) -> int:
        """Starts again the components that exited (on a loaded machine a worker may give up on a
        slow engine at start-up), at most `limit` restarts in all; returns how many it restarted."""
        dead = tuple(c for c, p in self.procs.items() if not p.alive())
        if not dead or self.restarts >= limit:
            return 0
        self.restarts += len(dead)
        self.start(dead)
        return len(dead)

    def logs(self) -> str:
        out = []
        for c in COMPONENTS:
            path = self.workdir / f"{c}.log"
            out.append(f"----- {c}\n" + (path.read_text(errors="replace")[-4000:] if path.exists() else ""))
        return "\n".join(out)


class BenchStack:
    """Chain, Redis, indexer and provider executors (close with :meth:`close`)."""

    def __init__(self, tmp: Path, engine: Any, images: dict[str, str], *, poll: float = 0.5) -> None:
        self.tmp = tmp
        self.poll = poll
        self.engine = engine
        self.images = images
        self.docker_host = docker_host_of(engine)
        self.executors: list[Executor] = []
        self.procs: list[ManagedProcess] = []
        anvil, self.rpc_url = start_anvil(tmp / "anvil", args=("--silent", "--block-time", "1", "--mixed-mining", "--accounts", "30"))
        self.procs.append(anvil)
        try:
            accounts = RpcClient.from_url(self.rpc_url).call("eth_accounts")
            self.deployment = deploy_with_ape(self.rpc_url, tmp / "deployments", extra_args=("--arbiter", accounts[ARBITER]), timeout=300)
            self.deployment_file = tmp / "deployments" / f"{self.deployment.chain_id}.json"
            redis_proc, self.redis_url = start_redis(tmp / "redis")
            self.procs.append(redis_proc)
            self.chain = DevChain(self.rpc_url, self.deployment)
            self.keys = Keys(self.deployment.chain_id, self.deployment.addresses["JobMarket"])
            env = {**os.environ, "DEPIN_RPC_URL": self.rpc_url, "DEPIN_REDIS_URL": self.redis_url,
                   "DEPIN_DEPLOYMENT": str(self.deployment_file), "DEPIN_POLL_INTERVAL": str(poll), "PYTHONPATH": str(REPO_ROOT)}
            self.procs.append(ManagedProcess("indexer", [sys.executable, "-m", "indexer"], log_path=tmp / "indexer.log", cwd=REPO_ROOT, env=env))
        except BaseException:
            self.close()
            raise

    @property
    def accounts(self) -> list[str]:
        return self.chain.accounts

    def index(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True)

    def fund(self, address: str, amount: int) -> None:
        """Mints `amount` to `address` and approves the market and staking: one transaction each
        (``DevChain.fund``'s bulk send mines by hand, which the interval-mined chain can defeat)."""
        chain = self.chain
        chain.send(chain.deployer, chain.contracts.reward_token.mint(address, amount))
        chain.approve(address, chain.market)
        chain.approve(address, chain.staking)

    def setup_provider(self, account: int, stake: int = 10_000) -> None:
        address = self.accounts[account]
        self.fund(address, (stake + 10_000) * TOKEN)
        self.chain.register_provider(address, stake * TOKEN, f"http://127.0.0.1/{account}", b"\x00" * 32)

    def setup_requester(self, account: int, tokens: int = 100_000) -> None:
        self.fund(self.accounts[account], tokens * TOKEN)

    def executor(self, name: str, account: int, *, concurrency: int = 1, max_concurrent_jobs: int = 4,
                 extra_env: dict[str, str] | None = None) -> Executor:
        workdir = self.tmp / name
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        policy = {
            "images": sorted({ref.split("@", 1)[1] for ref in self.images.values()}),
            "max_cpus": 2, "max_memory_mb": 512, "max_runtime": 30, "max_output_mb": 16,
            "min_reward_per_cpu_second": "0", "max_concurrent_jobs": max_concurrent_jobs,
        }
        ex = {"role": "provider", "concurrency": concurrency, "results_url": f"http://127.0.0.1:{port}",
              "results_bind": f"127.0.0.1:{port}", "withdraw_threshold": "0", "verify_sample_rate": 1.0}
        config = {
            "network": {"rpc_url": self.rpc_url, "deployment": str(self.deployment_file)},
            "redis": {"url": self.redis_url},
            "key": {"dev_account": account},
            "engine": {"docker_host": self.docker_host, "state_dir": str(workdir / "state")},
            "executor": ex,
            "policy": policy,
        }
        path = workdir / "depin.toml"
        path.write_text(tomli_w.dumps(config))
        env = dict(os.environ)
        env.update({"DEPIN_LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO_ROOT)})
        env.update(extra_env or {})
        env["PATH"] = f"{REPO_ROOT / 'node_modules' / '.bin'}:{Path(sys.executable).parent}:{env.get('PATH', '')}"
        executor = Executor(name, account, self.accounts[account], path, workdir, env)
        self.executors.append(executor)
        executor.start()
        return executor

    def revive(self) -> int:
        """:meth:`Executor.revive` for every executor; returns the number of components restarted."""
        return sum(ex.revive() for ex in self.executors)

    def post(self, spec_bytes: bytes, *, requester: int, job_terms: JobTerms | None = None) -> int:
        return self.chain.post_job(self.accounts[requester], spec_bytes, job_terms or terms())

    def post_many(self, specs: list[bytes], *, requester: int, job_terms: JobTerms | None = None) -> list[int]:
        """Posts `specs` in one ``postJobs`` transaction; returns their ids."""
        return self.chain.post_jobs(self.accounts[requester], specs, job_terms or terms())

    def status(self, job_id: int) -> JobStatus:
        return JobStatus(self.chain.get_job(job_id)["status"])

    def close(self) -> None:
        procs = [p for ex in self.executors for p in ex.procs.values() if p.alive()]
        for proc in procs:  # every component at once: their warm shutdowns overlap
            proc._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs:
            try:
                proc.proc.wait(max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: S110 - best-effort cleanup
                pass
        for ex in self.executors:
            for proc in ex.procs.values():
                try:
                    proc.stop(timeout=15)
                except Exception:  # noqa: S110 - best-effort cleanup
                    pass
        for proc in reversed(self.procs):
            proc.stop()
        self._remove_containers()

    def _remove_containers(self) -> None:
        """Removes the containers of this stack's executors only (their ``depin.executor`` label)."""
        import hashlib

        from executor.containers import managed_containers, remove_container

        for ex in self.executors:
            state_dir = (ex.workdir / "state").resolve()
            ident = f"{self.deployment.chain_id}:{self.deployment.addresses['JobMarket'].lower()}:provider:{ex.address.lower()}:{state_dir}"
            instance = f"provider-{hashlib.sha256(ident.encode()).hexdigest()[:10]}"
            try:
                for c in managed_containers(self.engine, instance=instance):
                    remove_container(self.engine, c.id)
            except Exception:  # noqa: S110 - best-effort cleanup
                pass
