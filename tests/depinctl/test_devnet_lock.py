"""One command at a time on one devnet state folder: `depin devnet up`, `down` and `depin demo`
hold the folder's lock (flock on ``devnet.lock``) for their whole life, so another one on the same
folder refuses at once, in one line naming the folder, the holder's pid and command and the way out
(stop it, or --state-dir). The OS drops the lock when its holder dies: a killed holder leaves
nothing stale. Real processes: the holder is a Python process in the lock (as a running `up` or
`demo` is), the contenders the CLI itself. That `depin demo` takes the lock for its whole run is
checked on the demo's own run (tests/depinctl/test_demo.py), which pays for a devnet anyway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from depin.deployment import REPO_ROOT

HOLD = """
import sys
from pathlib import Path
from depinctl.devnet import Devnet
with Devnet(Path(sys.argv[1])).locked(sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes it (or kills this process)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPIN_") and k != "DOCKER_HOST"}
    env.update(PYTHONPATH=str(REPO_ROOT), COLUMNS="400")
    env["PATH"] = os.pathsep.join([str(REPO_ROOT / "node_modules" / ".bin"), str(Path(sys.executable).parent), env["PATH"]])
    return env


def refused(state_dir: Path, holder: int, command: str, *args: str) -> str | None:
    """`depin args` on `state_dir` refuses at once (exit 1, one error line naming the folder, the
    holder's pid and `command`, and the way out); what went otherwise, None when it did."""
    try:
        proc = subprocess.run([sys.executable, "-m", "depinctl.cli", *args, "--state-dir", str(state_dir)],
                              capture_output=True, text=True, env=_env(), cwd=state_dir.parent, timeout=120)
    except subprocess.TimeoutExpired:
        return f"`{' '.join(args)}` did not refuse at once: it was still running after 120 s"
    lines = proc.stderr.strip().splitlines()
    if proc.returncode != 1 or len(lines) != 1 or not lines[0].startswith("error: "):
        return f"`{' '.join(args)}` exited {proc.returncode}: {proc.stdout[-1500:]} {proc.stderr[-1500:]}"
    missing = [f for f in (str(state_dir), f"pid {holder}", command, f"kill {holder}", "--state-dir") if f not in lines[0]]
    return f"`{' '.join(args)}` refused without {missing}: {lines[0]}" if missing else None


@pytest.fixture()
def holder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    state_dir = tmp_path / "dn"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(state_dir), "depin demo"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield state_dir, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_up_and_demo_refuse_at_once_while_another_command_holds_the_folder(holder) -> None:
    """(`down` of a folder with no devnet in it says so without the lock; its refusal while a demo
    runs is checked on the demo's run.)"""
    state_dir, proc = holder
    problems = [refused(state_dir, proc.pid, "depin demo", *args) for args in (("devnet", "up"), ("demo", "--scenario", "honest"))]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)
    assert not (state_dir / "devnet.json").exists()  # nothing was started
    assert (state_dir / "devnet.lock").read_text() == f"{proc.pid} depin demo\n"  # the holder's record, not blanked by the refusals


def test_a_killed_holder_leaves_no_lock_behind(holder) -> None:
    state_dir, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    again = subprocess.run([sys.executable, "-c", HOLD, str(state_dir), "depin devnet up"], input="", capture_output=True,
                           text=True, env=_env(), timeout=60)
    assert again.returncode == 0 and again.stdout.strip() == "held", again.stdout + again.stderr


def test_one_process_may_take_its_folders_lock_again() -> None:
    """The demo's `up` runs inside the demo's own hold of the lock: re-entrant in one process."""
    import tempfile

    from depinctl.devnet import Devnet

    with tempfile.TemporaryDirectory() as folder:
        dn = Devnet(Path(folder) / "dn")
        with dn.locked("depin demo"), dn.locked("depin devnet up"):
            pass
        with dn.locked("depin devnet down"):  # released by the outer block's end
            pass
