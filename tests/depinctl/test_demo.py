"""The README's first command, `depin demo` (what `make demo` runs after setup), end to end.

A real devnet in a temporary state folder: anvil, redis-server, Podman, the deploy script, the
indexer, Celery workers, beat, dispatcher and result server, all started by
`depin devnet up` inside the demo; stopped with `depin devnet down` afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from depin.deployment import REPO_ROOT


def _depin(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200")
    env["PATH"] = os.pathsep.join([str(REPO_ROOT / "node_modules" / ".bin"), str(Path(sys.executable).parent), env["PATH"]])
    return subprocess.run([sys.executable, "-m", "depinctl.cli", *args], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=timeout)


def _alive(pid: int) -> bool:
    """Running (a zombie awaiting a reaper that this sandbox's init may never be counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("demo") / "devnet"
    try:
        done = _depin("demo", "--state-dir", str(state), "--challenge-window", "8", "--timeout", "90")
        recorded = json.loads((state / "devnet.json").read_text()).get("processes", {}) if (state / "devnet.json").exists() else {}
        yield done, state, recorded
    finally:
        _depin("devnet", "down", "--state-dir", str(state), timeout=120)


def test_the_demo_walks_a_job_to_paid_and_explains_its_draw(demo_run) -> None:
    done, state, _ = demo_run
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-2000:]
    for step in ("posted", "claimed", "ran + submitted", "draw", "withdrawn"):
        assert f"✓ {step}" in out, (step, out[-3000:])
    # either way to paid: not drawn (challenge window, finalized) or drawn (settled by the court)
    assert ("✓ challenge window" in out and "✓ finalized" in out) or "✓ settled by the court" in out, out[-3000:]
    assert "p_job" in out and "anchor block" in out
    assert "gives the on-chain commitment" in out
    assert "✓ demo complete" in out
    # the job's output, downloaded and verified, is in the state folder
    results = list((state / "demo").glob("result-*/result.txt"))
    assert results and results[0].read_text().startswith("poem.txt ")


def test_devnet_down_after_the_demo_leaves_no_process(demo_run) -> None:
    _, state, recorded = demo_run
    assert recorded, "the demo recorded no devnet processes"
    down = _depin("devnet", "down", "--state-dir", str(state), timeout=120)
    assert down.returncode == 0, down.stderr
    pids = [int(p["pid"]) for p in recorded.values() if isinstance(p, dict) and p.get("pid")]
    assert pids and not [pid for pid in pids if _alive(pid)]


def test_a_failing_demo_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    state = tmp_path / "not-a-folder"
    state.write_text("a file where the state folder should be\n")
    done = _depin("demo", "--state-dir", str(state), "--timeout", "5", timeout=120)
    assert done.returncode == 1
    assert "demo failed:" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
