"""An operator's first testnet deployment, reviewed (h-ops, stop 45): what a provider who follows the
README meets when its set-up is short of what the chain asks, on the real stack (tests/executor/stack.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from depin.deployment import REPO_ROOT
from depinctl.procs import free_port
from tests.indexer.services import TIMEOUT_SCALE

from .stack import PROVIDER, PROVIDER2, REQUESTER, Stack, exec_prefix, spec

MIN_STAKE = 100  # [networks.devnet] staking.min_stake


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("operator"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER, stake=MIN_STAKE)  # what `provider register --stake <the minimum>` leaves
        s.setup_funded(REQUESTER)
        s.provider = s.executor("provider", "provider", PROVIDER, policy={"images": []})
        yield s
    finally:
        s.close()


def test_a_provider_staked_at_the_minimum_is_told_to_add_stake_and_does_not_retry_at_once(stack: Stack) -> None:
    """The contract locks a job's collateral on top of the minimum stake, so a provider staked at
    exactly the minimum (the README's `provider register --stake ...` with the network's minimum)
    can claim no job. The executor must say so once, as a warning naming the fix, and look at the
    job again only after a pause, not re-claim it at every dispatcher pass."""
    ex = stack.provider
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo hi > /out/a"]))
    lines = ex.wait_log(
        None, lambda e: e.get("job") == job_id and e.get("level") == "warning" and "depin provider stake" in e.get("msg", ""),
        "the stake warning", timeout=60,
    )
    assert "InsufficientStake" in stack.exec_record(ex, job_id).get("reason", "")
    warned = lines[0]
    assert "needs" in warned["msg"] and "DPC" in warned["msg"], warned
    # looked at again no sooner than the pause (the score is when, set with the warning)
    score = stack.state().zscore(f"{exec_prefix(stack, ex)}:deferred", str(job_id))
    assert score is not None
    record_updated = float(stack.exec_record(ex, job_id).get("updated") or 0)
    assert score - record_updated >= 30, (score, record_updated)


def test_an_unregistered_provider_is_told_to_register_and_does_not_retry_at_once(stack: Stack) -> None:
    """Found by review, stop 56: an executor whose account has tokens but never ran `depin provider
    register` had each claim revert `NotRegistered`, logged as a lost race at info level, and
    claimed the job again about every second for as long as it stayed Open. It says so once, as a
    warning naming the command, and looks at the job again only after a pause."""
    stack.setup_funded(PROVIDER2)
    ex = stack.executor("unregistered", "provider", PROVIDER2, policy={"images": []})
    try:
        job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo hi > /out/a"]))
        lines = ex.wait_log(
            None, lambda e: e.get("job") == job_id and e.get("level") == "warning" and "depin provider register" in e.get("msg", ""),
            "the registration warning", timeout=60,
        )
        assert ex.address.lower() in lines[0]["msg"].lower()
        assert "NotRegistered" in stack.exec_record(ex, job_id).get("reason", "")
        score = stack.state().zscore(f"{exec_prefix(stack, ex)}:deferred", str(job_id))
        assert score is not None
        assert score - float(stack.exec_record(ex, job_id).get("updated") or 0) >= 30
    finally:
        ex.stop()


@pytest.mark.parametrize("results_url", [None, "http://127.0.0.1:8700", "http://localhost:8700", "http://[::1]:8700", "http://0.0.0.0:8700"])
def test_a_public_chains_executor_refuses_a_results_url_only_this_machine_reaches(tmp_path: Path, results_url: str | None) -> None:
    """`[executor] results_url` is the base of every result URI the provider publishes on chain;
    requesters and the court's verifiers fetch from it. On a public chain a loopback, unspecified
    or `localhost` address (the default is http://127.0.0.1:8700) reaches nobody: a drawn job's
    verifiers then find the result not delivered. `depin executor start` says so in one line
    before anything else (here: before the missing Redis and node)."""
    from depin.accounts import new_keystore

    deployment = tmp_path / "11155111.json"
    deployment.write_text(json.dumps({
        "chainId": 11155111, "network": "sepolia", "deployBlock": 1, "deployer": "0x" + "11" * 20, "parameters": {},
        "addresses": {name: "0x" + f"{i + 2:02x}" * 20 for i, name in enumerate(("JobMarket", "ProviderStaking", "RewardToken"))},
    }))
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    new_keystore(keys / "provider.json", "pw", kdf_n=2**10)
    (keys / "provider.pass").write_text("pw\n")
    (keys / "provider.pass").chmod(0o600)
    executor = "" if results_url is None else f'[executor]\nresults_url = "{results_url}"\nresults_bind = "127.0.0.1:{free_port()}"\n'
    (tmp_path / "depin.toml").write_text(
        f'[network]\nrpc_url = "http://127.0.0.1:{free_port()}"\ndeployment = "11155111.json"\n'
        f'[redis]\nurl = "redis://127.0.0.1:{free_port()}/0"\n'
        '[key]\nkeystore = "keys/provider.json"\npassword_file = "keys/provider.pass"\n'
        f'[engine]\nstate_dir = "state"\n{executor}'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPIN_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    # `start`, and (found by review, stop 56) the components a process manager starts one by one,
    # which skipped the check and published result URIs nobody could fetch
    commands = [[str(Path(sys.executable).parent / "depin"), "executor", "start"]]
    if results_url is None:
        commands += [[sys.executable, "-m", "executor", component] for component in ("dispatcher", "results")]
        commands += [[sys.executable, "-m", "executor", "worker", "--queue", "compute"]]
    for command in commands:
        proc = subprocess.run([*command, "--config", str(tmp_path / "depin.toml")],
                              env=env, capture_output=True, text=True, timeout=120 * TIMEOUT_SCALE, cwd=tmp_path)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 1, (command, proc.stderr)
        assert lines and lines[-1].startswith("error: ") and "results_url" in lines[-1] and "public" in lines[-1], (command, proc.stderr)
        if command[-1] == "start":
            assert len(lines) == 1, proc.stderr
        assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


def test_a_second_signer_of_a_running_executors_key_is_refused(stack: Stack) -> None:
    """Found by the operator review (stop 45; fixed in stop 46): a second chain worker, or a second
    `executor start` (another role, another config) with the key of a running executor, ran beside
    it without a word. Two processes signing with one key spend the same nonces: one's transactions
    are lost or replaced. Both are refused now with one line naming the running signer, and the
    running executor goes on."""
    ex = stack.provider
    signer = ex.procs["worker-chain"]
    timeout = 120 * TIMEOUT_SCALE
    worker = subprocess.run([sys.executable, "-m", "executor", "worker", "--queue", "chain", "--config", str(ex.config_path)],
                            env=ex.env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    assert worker.returncode == 1, worker.stderr[-2000:]
    said = worker.stderr.strip().splitlines()[-1]
    assert said.startswith(f"error: another process signs for {ex.address} on chain {stack.deployment.chain_id}: pid {signer.pid} on host"), said
    depin = Path(sys.executable).with_name("depin")
    start = subprocess.run([str(depin), "executor", "start", "--config", str(ex.config_path), "--role", "verifier"],
                           env=ex.env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    assert start.returncode == 1, start.stderr[-2000:]
    assert start.stderr.count("error:") == 1 and f"pid {signer.pid} on host" in start.stderr, start.stderr[-2000:]
    assert "flower:" not in start.stdout and signer.alive()
    # the running executor still signs: its own health check passes
    health = subprocess.run([str(depin), "executor", "health", "--config", str(ex.config_path)], env=ex.env,
                            capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    assert health.returncode == 0, health.stdout + health.stderr
