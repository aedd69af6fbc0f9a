"""`depin devnet up | status | logs | down` against real processes (anvil, redis-server, Podman, the
indexer, and the executor processes once they exist), run as the user runs them: the CLI in a
subprocess. One devnet is brought up for the module and shared by the tests in file order; the last
test takes it down."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from depin.accounts import dev_account
from depin.client import Client
from depin.deployment import REPO_ROOT, load_deployment_file
from depin.market import JobStatus
from depin.spec import canonical_json
from depinctl.devnet import VERIFIER_POOL, Devnet
from depinctl.devnet_state import discover
from depinctl.procs import ProcessRecord, is_ours, stop_process
from tests.indexer.services import wait_for


def devnet(state_dir: Path, *args: str, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPIN_") and k != "DOCKER_HOST"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "depinctl.cli", "devnet", *args, "--state-dir", str(state_dir)],
        capture_output=True, text=True, env=env, cwd=state_dir.parent, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"devnet {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def status_json(state_dir: Path) -> tuple[int, dict]:
    proc = devnet(state_dir, "status", "--json")
    return proc.returncode, json.loads(proc.stdout)


def healthy_status(state_dir: Path, timeout: float = 20) -> dict:
    """`devnet status --json` once it exits 0, polled: status is a snapshot of live probes (the
    indexer within 5 blocks of the head, Celery pings answered within 1.5 s, heartbeats), and on a
    loaded machine one probe can miss for a moment right after `up` while every process is fine.
    A component that stays unhealthy fails the wait, naming the components that were not ok."""
    last: list[dict] = []

    def ok() -> dict | None:
        code, st = status_json(state_dir)
        last[:] = [c for c in st["components"] if c["state"] not in ("ok", "off", "not wired")]
        return st if code == 0 else None

    try:
        return wait_for(ok, timeout, "devnet status to exit 0")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; not ok: {last}") from None


def recorded(state_dir: Path) -> dict[str, ProcessRecord]:
    data = json.loads((state_dir / "devnet.json").read_text())
    return {name: ProcessRecord.from_json(rec) for name, rec in data.get("processes", {}).items()}


def st_env(state_dir: Path, var: str) -> str:
    """The value the devnet's env file exports for `var`."""
    for line in (state_dir / "env").read_text().splitlines():
        if line.startswith(f"export {var}="):
            return shlex.split(line.split("=", 1)[1])[0]
    raise KeyError(var)


def pid_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.fixture(scope="module")
def up_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.CompletedProcess[str], float]]:
    state_dir = tmp_path_factory.mktemp("devnet") / "dn"
    started = time.monotonic()
    proc = devnet(state_dir, "up", check=False)
    took = time.monotonic() - started
    try:
        if proc.returncode != 0:
            raise AssertionError(f"devnet up failed:\n{proc.stdout}\n{proc.stderr}")
        yield state_dir, proc, took
    finally:
        # whatever the tests left: stop every recorded process that is still ours
        if (state_dir / "devnet.json").exists():
            for record in recorded(state_dir).values():
                stop_process(record, grace=5)


def test_up_brings_everything_healthy(up_devnet: tuple[Path, subprocess.CompletedProcess[str], float]) -> None:
    state_dir, proc, took = up_devnet
    out = proc.stdout
    for needle in ("RPC URL:", "Redis URL:", "deployment:", "logs:", "source ", "explorer:"):
        assert needle in out, out
    st = healthy_status(state_dir)
    states = {c["name"]: c["state"] for c in st["components"]}
    assert st["healthy"] and st["running"]
    for name in ("anvil", "redis", "indexer", "explorer"):
        assert states[name] == "ok", states
    assert states["flower"] == "off"  # only with `up --with-flower`
    assert st["explorer_url"].startswith("http://127.0.0.1:")
    assert states["engine"] in ("ok", "external", "not wired"), states  # not wired: no executor.engine yet
    assert all(s in ("ok", "external", "not wired", "off") for s in states.values()), states
    # the files a user is pointed at
    deployment = json.loads((state_dir / "deployments" / "31337.json").read_text())
    # not in block 1: anvil regenerates block 0 when it reloads its state, and the indexer anchors
    # at the block before the deploy block
    assert deployment["deployBlock"] >= 2
    env_text = (state_dir / "env").read_text()
    for var in ("DEPIN_RPC_URL", "DEPIN_REDIS_URL", "DEPIN_DEPLOYMENT") + (("DOCKER_HOST",) if states["engine"] != "not wired" else ()):
        assert f"export {var}=" in env_text
    assert (state_dir / "executors" / "provider" / "depin.toml").is_file()
    assert not (state_dir / "executors" / "verifier").exists() and not (state_dir / "executors" / "arbiter").exists()
    # the verifier pool and the canary: their own folders, keys and roles
    for name, role in (("verifier-1", "verifier"), ("verifier-2", "verifier"), ("verifier-3", "verifier"), ("canary", "canary")):
        text = (state_dir / "executors" / name / "depin.toml").read_text()
        assert f'role = "{role}"' in text, text
    for name in ("verifier-1-compute", "verifier-1-chain", "verifier-2-chain", "verifier-3-chain", "canary-chain", "canary-results",
                 "canary-bait"):
        assert states[name] == "ok", states
    # the court and the randomness are deployed with the market
    assert {"VerificationCourt", "Randomness"} <= set(deployment["addresses"])
    for name, record in recorded(state_dir).items():
        assert is_ours(record), name
        assert (state_dir / "run" / f"{name}.pid").read_text().strip() == str(record.pid)
    print(f"devnet up took {took:.1f} s")


def test_a_drawn_job_is_audited_by_the_verifier_pool(up_devnet: tuple[Path, subprocess.CompletedProcess[str], float]) -> None:
    """The pool verifiers stake themselves in the court; a re-executable job the draw picks is
    audited by one of them (a real re-run, commit and reveal) and concludes ProviderRight, not
    Unaudited."""
    state_dir = up_devnet[0]
    dep = load_deployment_file(state_dir / "deployments" / "31337.json")
    client = Client.connect(st_env(state_dir, "DEPIN_RPC_URL"), dep, dev_account(4, 31337))
    court = client.contracts.verification_court
    pool = [dev_account(i, 31337).address for i in VERIFIER_POOL.values()]
    wait_for(lambda: all(client.read(court.get_verifier(v))[0] for v in pool), 120, "the pool to join the court")
    image = json.loads((state_dir / "devnet.json").read_text())["images"]["busybox"]
    drawn = None
    for n in range(64):  # p_job is about 0.3: the first drawn job ends the loop; 64 undrawn in a row is ~1e-10
        spec = canonical_json({"v": 1, "image": image, "command": ["sh", "-c", f"echo pool {n} > /out/n"], "env": {}, "inputs": [],
                               "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 10, "output_mb": 1}})
        job_id = client.post_job(spec, reward=10**18, verify="reexec").job_id
        wait_for(lambda j=job_id: client.job(j).status not in (JobStatus.OPEN, JobStatus.CLAIMED), 120, "the provider to submit")
        if wait_for(lambda j=job_id: (d := client.is_drawn(j)) is not None and (d,), 60, "the draw")[0]:
            drawn = job_id
            break
    if drawn is None:
        pytest.fail("none of 64 jobs was drawn (about 1e-10 by chance): is the randomness source broken?")
    wait_for(lambda: client.job(drawn).status == JobStatus.RESOLVED, 180, "the court to settle the drawn job")
    case = client.court_case(drawn)
    assert case["outcome"] == 1, case  # ProviderRight: audited by the pool, not Unaudited (4)
    holder = client.read(court.get_seat(drawn, 0, 0))[0]
    assert holder.lower() in {v.lower() for v in pool}


def test_env_file_points_the_cli_at_the_devnet(up_devnet: tuple[Path, subprocess.CompletedProcess[str], float]) -> None:
    state_dir, _, _ = up_devnet
    script = f"source {state_dir / 'env'} && {sys.executable} -m depinctl.cli providers list --json"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    deadline = time.monotonic() + 120  # a guard, not a wait: it ends once both are listed
    while True:  # the indexer may be a block behind the registrations
        proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        providers = json.loads(proc.stdout)
        if len(providers) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    data = json.loads((state_dir / "devnet.json").read_text())
    assert discover(state_dir) == {
        "rpc_url": st_env(state_dir, "DEPIN_RPC_URL"), "redis_url": st_env(state_dir, "DEPIN_REDIS_URL"),
        "deployment": st_env(state_dir, "DEPIN_DEPLOYMENT"), "docker_host": st_env(state_dir, "DOCKER_HOST"),
    }
    registered = {p["address"].lower() for p in data["accounts"]["providers"]}
    assert registered <= {p["address"].lower() for p in providers}


def test_second_up_is_a_noop(up_devnet: tuple[Path, subprocess.CompletedProcess[str], float]) -> None:
    state_dir, _, _ = up_devnet
    before = {name: (r.pid, r.starttime) for name, r in recorded(state_dir).items()}
    deployment = (state_dir / "deployments" / "31337.json").read_text()
    proc = devnet(state_dir, "up", check=True)
    assert "started: nothing" in proc.stdout, proc.stdout
    after = {name: (r.pid, r.starttime) for name, r in recorded(state_dir).items()}
    assert after == before
    assert (state_dir / "deployments" / "31337.json").read_text() == deployment


def test_logs(up_devnet: tuple[Path, subprocess.CompletedProcess[str], float]) -> None:
    state_dir, _, _ = up_devnet
    proc = devnet(state_dir, "logs", "indexer", "-n", "5", check=True)
    lines = proc.stdout.splitlines()
    assert 0 < len(lines) <= 5
    assert any("indexer" in line for line in lines), proc.stdout
    proc = devnet(state_dir, "logs", "-n", "3", check=True)
    prefixes = {line.split("|", 1)[0].strip() for line in proc.stdout.splitlines()}
    assert {"anvil", "redis", "indexer"} <= prefixes, proc.stdout
    proc = devnet(state_dir, "logs", "nosuch")
    assert proc.returncode == 1 and proc.stderr.startswith("error: unknown component")
    # -f follows: a new line appended to the log shows up
    follower = subprocess.Popen(
        [sys.executable, "-m", "depinctl.cli", "devnet", "logs", "redis", "-f", "-n", "0", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )
    lines_seen: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines_seen.put(x) for x in follower.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        # The follower may not have opened the file yet (`-n 0` skips what is there when it does):
        # append numbered lines until one comes through, which proves that appended lines do.
        deadline = time.monotonic() + 60
        seen = ""
        n = 0
        while "a line from the test" not in seen:
            assert time.monotonic() < deadline, "devnet logs -f never showed an appended line"
            n += 1
            with open(state_dir / "logs" / "redis.log", "a") as fh:
                fh.write(f"a line from the test {n}\n")
            try:
                seen = lines_seen.get(timeout=0.5)
            except queue.Empty:
                pass
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(10)


def test_up_restarts_a_dead_component(up_devnet: tuple[Path, subprocess.CompletedProcess[str], float]) -> None:
    state_dir, _, _ = up_devnet
    before = recorded(state_dir)
    os.killpg(before["indexer"].pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not pid_gone(before["indexer"].pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    code, st = status_json(state_dir)
    assert code == 1
    assert {c["name"]: c["state"] for c in st["components"]}["indexer"] == "stopped"
    proc = devnet(state_dir, "up", check=True)
    assert "started: indexer;" in proc.stdout, proc.stdout
    after = recorded(state_dir)
    assert after["indexer"].pid != before["indexer"].pid
    assert {n: r.pid for n, r in after.items() if n != "indexer"} == {n: r.pid for n, r in before.items() if n != "indexer"}
    healthy_status(state_dir)


def _pool_from(rpc_url: str, address: str) -> bool:
    from depinctl.devnet import _json_rpc

    pending = _json_rpc(rpc_url, "txpool_content").get("pending", {})
    return any(key.lower() == address.lower() for key in pending)


def _until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_up_restarts_a_chain_worker_whose_transaction_is_stuck(up_devnet: tuple[Path, subprocess.CompletedProcess[str], float]) -> None:
    """Mining stops after a job is posted: the provider's claim waits in the pool, so `status` shows
    the chain worker unhealthy (its heartbeat says a transaction waits past the bound) and `up`
    restarts it; once mining resumes the job is claimed."""
    from depinctl.devnet import _json_rpc

    state_dir, _, _ = up_devnet
    rpc_url = status_json(state_dir)[1]["rpc_url"]
    data = json.loads((state_dir / "devnet.json").read_text())
    provider = next(p["address"] for p in data["accounts"]["providers"] if p["index"] == 1)
    image = next(ref for name, ref in data["images"].items() if "busybox" in name)
    strict = {"DEPIN_HEALTH_MAX_PENDING_AGE": "2"}
    before = recorded(state_dir)["worker-chain"]
    _json_rpc(rpc_url, "evm_setAutomine", [False])
    _json_rpc(rpc_url, "evm_setIntervalMining", [0])  # the devnet's anvil also mines every second (--mixed-mining)
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        script = f"source {state_dir / 'env'} && {sys.executable} -m depinctl.cli job post --image {image} --cmd true --reward 1 --dev-account 5"
        poster = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            requester = _json_rpc(rpc_url, "eth_accounts")[5]
            _until(lambda: _pool_from(rpc_url, requester), 60, "the post in the pool")
            _json_rpc(rpc_url, "anvil_mine", ["0x1"])  # only the post; the claim will wait
            out, err = poster.communicate(timeout=60)
            assert poster.returncode == 0, out + err
        finally:
            if poster.poll() is None:
                poster.kill()
        _until(lambda: _pool_from(rpc_url, provider), 60, "the provider's claim in the pool")

        def unhealthy() -> bool:
            proc = devnet_env(state_dir, strict, "status", "--json")
            rows = {c["name"]: c for c in json.loads(proc.stdout)["components"]}
            return proc.returncode == 1 and rows["worker-chain"]["state"] == "unhealthy" and "waited" in rows["worker-chain"]["detail"]

        _until(unhealthy, 60, "status to show the stuck chain worker")
        proc = devnet_env(state_dir, strict, "up")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "worker-chain: running but unhealthy" in proc.stdout and "a transaction has waited" in proc.stdout, proc.stdout
        assert recorded(state_dir)["worker-chain"].pid != before.pid
    finally:
        _json_rpc(rpc_url, "evm_setAutomine", [True])
        _json_rpc(rpc_url, "evm_setIntervalMining", [1])
        _json_rpc(rpc_url, "anvil_mine", ["0x1"])
    _until(lambda: not _pool_from(rpc_url, provider), 60, "the claim to be mined")
    healthy_status(state_dir)


def devnet_env(state_dir: Path, extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPIN_") and k != "DOCKER_HOST"}
    env.update(extra, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "depinctl.cli", "devnet", *args, "--state-dir", str(state_dir)],
                          capture_output=True, text=True, env=env, cwd=state_dir.parent, timeout=300)


def _block_number(state_dir: Path) -> int:
    from depinctl.devnet import _json_rpc

    return int(_json_rpc(status_json(state_dir)[1]["rpc_url"], "eth_blockNumber"), 16)


def test_down_then_up_keeps_the_chain(up_devnet: tuple[Path, subprocess.CompletedProcess[str], float]) -> None:
    state_dir, _, _ = up_devnet
    head = _block_number(state_dir)
    deployment = (state_dir / "deployments" / "31337.json").read_text()
    devnet(state_dir, "down", check=True)
    proc = devnet(state_dir, "up", check=True)
    assert "deploying" not in proc.stdout and "cleared" not in proc.stdout, proc.stdout
    assert _block_number(state_dir) >= head
    assert (state_dir / "deployments" / "31337.json").read_text() == deployment
    healthy_status(state_dir)


def test_up_after_the_chain_was_lost_clears_the_index(
    up_devnet: tuple[Path, subprocess.CompletedProcess[str], float],
) -> None:
    state_dir, _, _ = up_devnet
    # anvil dies and its saved state is gone; everything else keeps running
    anvil = recorded(state_dir)["anvil"]
    stop_process(anvil, grace=10)
    (state_dir / "anvil-state.json").unlink()
    # the old chain's journal entries, named by job id, round and seat (review, stop 56: a verifier
    # committed such a seat's digest for the new chain's job of the same id without running it)
    states = sorted(state_dir.glob("executors/*/state"))
    assert states
    stale = [folder / "journal" / "instance" / "seat-1-0-0.json" for folder in states] + [states[0] / "canary" / "1.json"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    proc = devnet(state_dir, "up", check=True)
    assert "deploying" in proc.stdout and "cleared" in proc.stdout and "journals" in proc.stdout, proc.stdout
    assert not [path for path in stale if path.exists()]
    healthy_status(state_dir)  # the indexer and the executors follow the new chain



def test_down_stops_everything_but_never_a_recycled_pid(
    up_devnet: tuple[Path, subprocess.CompletedProcess[str], float],
) -> None:
    state_dir, _, _ = up_devnet
    records = recorded(state_dir)
    # Pretend the indexer's pid was recycled by another program: its recorded command line differs.
    data = json.loads((state_dir / "devnet.json").read_text())
    data["processes"]["indexer"]["cmdline"] = ["/usr/bin/some-other-program", "--flag"]
    (state_dir / "devnet.json").write_text(json.dumps(data))
    indexer = records.pop("indexer")
    try:
        proc = devnet(state_dir, "down", check=True)
        assert "left alone" in proc.stdout, proc.stdout
        for name, record in records.items():
            assert pid_gone(record.pid), f"{name} (pid {record.pid}) still runs"
        assert is_ours(indexer), "down signalled a process whose command line did not match"
    finally:
        stop_process(indexer, grace=5)
    assert pid_gone(indexer.pid)
    # nothing of ours left in any process group the devnet created
    leftovers = [
        p.name for p in Path("/proc").iterdir() if p.name.isdigit() and str(state_dir) in _cmdline(int(p.name))
    ]
    assert not leftovers, leftovers
    proc = devnet(state_dir, "status")
    assert proc.returncode == 1
    assert "not running" in proc.stdout
    assert (state_dir / "anvil-state.json").stat().st_size > 0  # the chain is kept for the next `up`


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_status_without_a_devnet(tmp_path: Path) -> None:
    proc = devnet(tmp_path / "none", "status")
    assert proc.returncode == 1
    assert "no devnet" in proc.stdout
    proc = devnet(tmp_path / "none", "status", "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["running"] is False


def test_up_reports_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = devnet(tmp_path / "dn", "up", "--rpc-port", str(port))
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: port {port} for anvil is in use"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not any(is_ours(r) for r in recorded(tmp_path / "dn").values())


def test_devnet_runs_every_executor_component() -> None:
    """The provider's processes of the devnet are exactly the executor's components; the verifier
    pool is three verifiers of two processes each (compute worker, chain worker with the beat
    embedded), each its own config (key); the canary its chain worker, decoy result server and bait
    server; the old
    volunteer verifier and arbiter executors are gone (issue 12: the court verifies)."""
    import executor.worker
    from depinctl.devnet import COMPONENTS, ROLE_ACCOUNTS

    dn = Devnet(Path("/nonexistent"))
    # the explorer serves the index; Flower (`up --with-flower`) monitors the provider's workers
    roles = {c.name: c.argv(dn)[-1] for c in COMPONENTS if c.name not in ("anvil", "redis", "indexer", "explorer", "flower")}
    assert {name for name, role in roles.items() if role == "provider"} == set(executor.worker.COMPONENTS)
    verifiers = {name for name, role in roles.items() if role == "verifier"}
    assert verifiers == {f"verifier-{i}-{part}" for i in (1, 2, 3) for part in ("compute", "chain")}
    assert {name for name, role in roles.items() if role == "canary"} == {"canary-chain", "canary-results", "canary-bait"}
    configs = {str(c.argv(dn)[c.argv(dn).index("--config") + 1]) for c in COMPONENTS if c.name in verifiers}
    assert len(configs) == 3
    accounts = [ROLE_ACCOUNTS[n] for n in ("provider", "verifier-1", "verifier-2", "verifier-3", "canary")]
    assert len(set(accounts)) == 5
    assert all("--beat" in c.argv(dn) for c in COMPONENTS if c.name.endswith("-chain") and c.name != "worker-chain")


def test_devnet_object_without_state(tmp_path: Path) -> None:
    dn = Devnet(tmp_path / "x")
    assert dn.status()[0].state == "not started"
    assert dn.info()["rpc_url"] is None


def test_up_without_anvil_says_run_make_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import depinctl.procs
    from depinctl.devnet import DevnetError

    def missing() -> str:
        raise depinctl.procs.ServiceError("anvil not found")

    monkeypatch.setattr(depinctl.procs, "anvil_binary", missing)
    with pytest.raises(DevnetError, match="anvil not found: run `make setup`"):
        Devnet(tmp_path / "dn").up()
    assert not recorded(tmp_path / "dn")


def test_up_with_no_engine_fails_in_one_line_and_down_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import executor.engine
    from depinctl.devnet import DevnetError

    def broken(state_dir: Path) -> tuple[int, str]:
        raise executor.engine.EngineUnavailable("podman is not installed")

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(executor.engine, "start_podman_service", broken)
    monkeypatch.setattr("depinctl.devnet._external_docker_host", lambda: None)
    dn = Devnet(tmp_path / "dn")
    try:
        with pytest.raises(DevnetError, match="^container engine unavailable: .*podman is not installed"):
            dn.up()
        started = recorded(tmp_path / "dn")
        assert set(started) == {"anvil", "redis"}
    finally:
        Devnet(tmp_path / "dn").down()
    assert all(pid_gone(r.pid) for r in started.values())

