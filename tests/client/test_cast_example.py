"""The README's `cast` route: scripts/post_with_cast.sh posts a job with Foundry's cast alone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from depin.deployment import REPO_ROOT, to_wei
from depin.market import JobStatus

from .conftest import Devnet, make_spec

SCRIPT = REPO_ROOT / "scripts" / "post_with_cast.sh"


def _post(devnet: Devnet, key: str, spec_file: Path, reward: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RPC_URL=devnet.url, DEPLOYMENT=str(devnet.deployment_file), PRIVATE_KEY=key)
    env["PATH"] = f"{REPO_ROOT / 'node_modules' / '.bin'}:{env['PATH']}"
    return subprocess.run(["bash", str(SCRIPT), str(spec_file), reward, "7"], env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_job_posted_with_cast_is_on_chain_as_sent(devnet: Devnet, tmp_path: Path) -> None:
    account = devnet.new_account(tokens=5)
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
    assert client.spec_bytes(job_id) == spec.to_bytes()
    assert client.token_balance(account.address) == to_wei("3.5")


def test_cast_post_without_funds_fails_with_a_clear_line(devnet: Devnet, tmp_path: Path) -> None:
    account = devnet.new_account(tokens=1)
    spec_file = tmp_path / "spec.json"
    spec_file.write_bytes(make_spec(42).to_bytes())
    done = _post(devnet, account.key.hex(), spec_file, "2")
    assert done.returncode == 1
    assert "error: postJob was not sent" in done.stderr
    assert "Traceback" not in done.stderr
