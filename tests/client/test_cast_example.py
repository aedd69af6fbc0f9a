"""The README's `cast` route: scripts/post_with_cast.sh posts a job with Foundry's cast alone, and
every failing step (a reverted send, an unreachable node) makes it exit non-zero with one `error:`
line, through tools/cast, which passes on cast's own exit status."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from depin.deployment import REPO_ROOT, to_wei
from depin.market import JobStatus

from .conftest import Devnet, make_spec

SCRIPT = REPO_ROOT / "scripts" / "post_with_cast.sh"
CAST = REPO_ROOT / "tools" / "cast"


def _post(devnet: Devnet, key: str, spec_file: Path, reward: str, rpc_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RPC_URL=rpc_url or devnet.url, DEPLOYMENT=str(devnet.deployment_file), PRIVATE_KEY=key)
    env["PATH"] = f"{REPO_ROOT / 'node_modules' / '.bin'}:{env['PATH']}"
    return subprocess.run(["bash", str(SCRIPT), str(spec_file), reward, "8"], env=env, capture_output=True,
                          text=True, timeout=120)


def _dead_rpc_url() -> str:
    import socket

    with socket.socket() as s:  # a port nobody listens on once it is closed
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_a_job_posted_with_cast_is_on_chain_as_sent(devnet: Devnet, tmp_path: Path) -> None:
    account = devnet.new_account(tokens=10)
    spec = make_spec(41, runtime=30, cpus=0.5)
    spec_file = tmp_path / "spec.json"
    spec_file.write_bytes(spec.to_bytes())
    done = _post(devnet, account.key.hex(), spec_file, "1.5")
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout.strip().splitlines()[-1])
    client = devnet.client()
    job = client.job(job_id)
    assert job.status == JobStatus.OPEN
    assert job.requester == account.address
    assert job.reward == to_wei("1.5")
    assert job.max_runtime == 30 + 120 and job.collateral_pct == 400 and job.verify_mode == 0
    assert client.spec_bytes(job_id) == spec.to_bytes()
    # R + 2 % + the audit escrow 4.4 R (audit pay 1.1 R + the jury deposit 3.3 R, refunded unless used)
    assert client.token_balance(account.address) == to_wei(10) - job.escrow == to_wei("1.87")


def test_cast_post_without_funds_fails_with_a_clear_line(devnet: Devnet, tmp_path: Path) -> None:
    """postJob reverts (the reward exceeds the balance): exit 1, one error line, nothing posted."""
    account = devnet.new_account(tokens=1)
    spec_file = tmp_path / "spec.json"
    spec_file.write_bytes(make_spec(42).to_bytes())
    done = _post(devnet, account.key.hex(), spec_file, "2")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: postJob was not sent")
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_cast_post_to_a_dead_node_fails_at_the_approve(devnet: Devnet, tmp_path: Path) -> None:
    """The node is unreachable: the script stops at its first call (the market's parameters, read for
    the escrow) with exit 1, before any transaction."""
    account = devnet.new_account(tokens=5)
    spec_file = tmp_path / "spec.json"
    spec_file.write_bytes(make_spec(43).to_bytes())
    done = _post(devnet, account.key.hex(), spec_file, "1", rpc_url=_dead_rpc_url())
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: the market's parameters could not be read")
    assert done.stdout == ""
    assert devnet.client().token_balance(account.address) == to_wei(5)


def test_tools_cast_passes_on_the_exit_status_of_cast(devnet: Devnet) -> None:
    """npm's launcher exits 0 whatever cast did; tools/cast exits with cast's own status: non-zero
    for an unknown subcommand, a dead node and a reverted send, zero for a good call."""
    ok = subprocess.run([str(CAST), "chain-id", "--rpc-url", devnet.url], capture_output=True, text=True, timeout=60)
    assert (ok.returncode, ok.stdout.strip()) == (0, str(devnet.client().chain_id))
    unknown = subprocess.run([str(CAST), "no-such-subcommand"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode != 0
    dead = subprocess.run([str(CAST), "block-number", "--rpc-url", _dead_rpc_url()], capture_output=True, text=True, timeout=60)
    assert dead.returncode != 0
    poor = devnet.new_account(tokens=0)
    token = devnet.client().deployment.addresses["RewardToken"]
    reverted = subprocess.run(
        [str(CAST), "send", "--rpc-url", devnet.url, "--private-key", poor.key.hex(), token,
         "transfer(address,uint256)", poor.address, "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert reverted.returncode != 0, reverted.stdout


def test_the_readme_recipe_reads_the_commitment_and_uri_with_cast(devnet: Devnet) -> None:
    """The result URI is not in getJob's view; the README's `cast logs` + `cast decode-abi` recipe
    reads it, the commitment and the anchor block from the job's ResultSubmitted event."""
    requester = devnet.client(devnet.new_account(10))
    provider = devnet.client(devnet.new_account(1_000))
    provider.register(to_wei(500), "http://provider")
    job_id = requester.post_job(make_spec(44), reward=to_wei(1)).job_id
    provider.claim(job_id)
    provider.submit_result(job_id, b"\x2a" * 32, "http://provider/results/0x2a")
    market = devnet.client().deployment.addresses["JobMarket"]
    logs = subprocess.run(
        [str(CAST), "logs", "--json", "--rpc-url", devnet.url, "--from-block", str(devnet.client().deployment.deploy_block),
         "--address", market,
         "ResultSubmitted(uint256 indexed jobId,address indexed provider,bytes32 commitment,string resultURI,uint32 challengeDeadline,uint64 anchorBlock)",
         str(job_id)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    entries = json.loads(logs.stdout)
    assert len(entries) == 1
    decoded = subprocess.run([str(CAST), "decode-abi", "f()(bytes32,string,uint32,uint64)", entries[-1]["data"]],
                             capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert decoded[0] == "0x" + "2a" * 32 and decoded[1].strip('"') == "http://provider/results/0x2a"
