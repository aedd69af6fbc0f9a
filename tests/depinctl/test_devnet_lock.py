"""One command at a time on one devnet state folder: `depin devnet up` and `depin demo` hold the
folder's lock (flock on ``devnet.lock``) for their whole life, so a second `up`, `down` or `demo`
on the same folder refuses at once, in one line naming the folder, the holder's pid and command and
the way out (stop it, or --state-dir). The OS drops the lock when its holder dies: a killed demo
leaves nothing stale. Real processes: the CLI in subprocesses, a real devnet (anvil, Redis, Podman,
the executors) and the demo's honest scenario."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from depin.deployment import REPO_ROOT
from tests.indexer.services import wait_for

from .test_devnet import devnet, recorded


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPIN_") and k != "DOCKER_HOST"}
    env.update(PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1", COLUMNS="400")
    env["PATH"] = os.pathsep.join([str(REPO_ROOT / "node_modules" / ".bin"), str(Path(sys.executable).parent), env["PATH"]])
    return env


class Running:
    """A `depin` command in the background whose output lines are collected as they come."""

    def __init__(self, state_dir: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "depinctl.cli", *args, "--state-dir", str(state_dir)], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=_env(), cwd=state_dir.parent,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        STARTED.append(self)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_line(self, fragment: str, timeout: float) -> None:
        def found() -> bool:
            while not self.lines.empty():
                self.seen.append(self.lines.get())
            return any(fragment in line for line in self.seen) or self.proc.poll() is not None

        wait_for(found, timeout, f"{fragment!r} in the output")
        assert any(fragment in line for line in self.seen), "".join(self.seen)[-4000:]

    def output(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


def _refused(state_dir: Path, holder: int, command: str, *args: str) -> str | None:
    """`args` on the same folder refuses at once (exit 1, one error line saying who holds it and
    the way out); what went otherwise, None when it did."""
    try:
        proc = subprocess.run([sys.executable, "-m", "depinctl.cli", *args, "--state-dir", str(state_dir)],
                              capture_output=True, text=True, env=_env(), cwd=state_dir.parent, timeout=60)
    except subprocess.TimeoutExpired:
        return f"`{' '.join(args)}` did not refuse at once: it was still running after 60 s"
    lines = proc.stderr.strip().splitlines()
    if proc.returncode != 1 or len(lines) != 1 or not lines[0].startswith("error: "):
        return f"`{' '.join(args)}` exited {proc.returncode}: {proc.stdout[-1500:]} {proc.stderr[-1500:]}"
    missing = [f for f in (str(state_dir), f"pid {holder}", command, f"kill {holder}", "--state-dir") if f not in lines[0]]
    return f"`{' '.join(args)}` refused without {missing}: {lines[0]}" if missing else None


STARTED: list[Running] = []  # what the test left running is ended before the folder's `down`


@pytest.fixture()
def state_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "dn"
    try:
        yield folder
    finally:
        for running in STARTED:
            if running.proc.poll() is None and running.proc.args[3] == "demo":
                running.proc.send_signal(signal.SIGINT)
            try:
                running.proc.wait(timeout=900)  # an `up` ends by itself: stopped half-way it could leave a process unrecorded
            except subprocess.TimeoutExpired:
                running.proc.kill()
        STARTED.clear()
        devnet(folder, "down", timeout=180)
        if (folder / "devnet.json").exists():
            from depinctl.procs import stop_process

            for record in recorded(folder).values():
                stop_process(record, grace=5)


def test_one_devnet_command_at_a_time_per_state_folder(state_dir: Path) -> None:
    # two `up` at once: the second refuses while the first is starting the components
    first = Running(state_dir, "devnet", "up")
    wait_for(lambda: (state_dir / "devnet.json").exists() and "anvil" in recorded(state_dir) or first.proc.poll() is not None,
             300, "the first `up` to start anvil")
    assert first.proc.poll() is None, first.output()[-3000:]
    problems = [_refused(state_dir, first.proc.pid, "depin devnet up", "devnet", "up")]
    assert first.proc.wait(timeout=900) == 0, first.output()[-5000:]

    # a demo holds the folder for its whole run, not only while it brings the devnet up
    demo = Running(state_dir, "demo", "--scenario", "honest", "--challenge-window", "8", "--timeout", "120")
    demo.wait_line("devnet up in", 600)
    assert demo.proc.poll() is None, demo.output()[-3000:]
    problems.append(_refused(state_dir, demo.proc.pid, "depin demo", "demo", "--scenario", "honest"))
    problems.append(_refused(state_dir, demo.proc.pid, "depin demo", "devnet", "down"))
    problems.append(_refused(state_dir, demo.proc.pid, "depin demo", "devnet", "up"))
    if demo.proc.wait(timeout=900) != 0 or "demo complete" not in demo.output():  # undisturbed
        problems.append("the first demo failed: " + demo.output()[-3000:])
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)

    # a demo that dies leaves no lock behind: the OS dropped it with the process
    crashed = Running(state_dir, "demo", "--scenario", "honest", "--challenge-window", "8")
    crashed.wait_line("devnet up in", 600)
    os.kill(crashed.proc.pid, signal.SIGKILL)
    crashed.proc.wait(timeout=30)
    down = devnet(state_dir, "down", timeout=180)
    assert down.returncode == 0 and "devnet down" in down.stdout, down.stdout + down.stderr
