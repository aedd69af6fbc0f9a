"""`depin devnet up` interrupted while a component starts, then `depin devnet down`: what `up` started
must be stopped. Real anvil and redis-server, in-process `Devnet` (as test_devnet.py's one-line-error
tests do); the interrupt is a KeyboardInterrupt raised from the first health probe of redis once the
redis-server process runs (and of anvil, which npm starts through ``#!/usr/bin/env node``), which is where a Ctrl-C during `make demo`'s start-up lands (and where a
redis that takes longer than its start timeout to load its append-only file makes `up` fail)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

import depinctl.devnet
from depinctl.devnet import Devnet
from depinctl.procs import ProcessRecord, is_ours, proc_cmdline, proc_exe, proc_stat, redis_argv, spawn, stop_process
from tests.indexer.services import wait_for


def _alive(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def test_down_after_an_up_interrupted_while_redis_starts_stops_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_dir = tmp_path / "dn"
    seen: dict[str, int] = {}

    def interrupted(url: str) -> depinctl.devnet.Health:
        record = Devnet(state_dir).record("redis")  # as `up` saved it, before the process was healthy
        assert record is not None
        seen["pid"] = record.pid
        # redis-server renames itself ("/usr/bin/redis-server 127.0.0.1:PORT") as it starts: the user's Ctrl-C
        # comes after that (a person is slower than redis' start-up). Compared with its argv: the record's
        # command line may already be the renamed one on a busy machine (spawn read it after the rename)
        wait_for(lambda: proc_cmdline(record.pid) not in (None, [], record.argv) or None, 10, "redis-server to rename itself")
        raise KeyboardInterrupt

    monkeypatch.setattr(depinctl.devnet, "check_redis", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            Devnet(state_dir).up()
        pid = seen["pid"]
        assert _alive(pid)
        monkeypatch.undo()
        done = Devnet(state_dir).down()
        assert "redis" in done
        # `down` stopped it, and said so (today: "left alone: pid N is now another process")
        assert not _alive(pid), f"redis-server (pid {pid}) still runs after `devnet down`: {done['redis']}"
        assert done["redis"] == "stopped", done
    finally:
        pid = seen.get("pid")
        if pid is not None and _alive(pid) and Path(f"/proc/{pid}/cwd").resolve().is_relative_to(state_dir.resolve()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # our leftover: its own group (spawn's new session)
        Devnet(state_dir).down()


def test_down_after_an_up_interrupted_while_anvil_starts_stops_anvil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """npm's anvil is a ``#!/usr/bin/env node`` script: run as it is, the process is env at the exec and node
    a moment later, and a record taken at the exec matched neither the command line nor the executable."""
    state_dir = tmp_path / "dn"
    seen: dict[str, int] = {}

    def interrupted(url: str) -> depinctl.devnet.Health:
        record = Devnet(state_dir).record("anvil")
        assert record is not None
        seen["pid"] = record.pid
        # started as node itself: what was recorded at the exec is what the process shows (through env it
        # showed env's command line and executable, or the script's, depending on when it was read)
        assert (proc_cmdline(record.pid), proc_exe(record.pid)) == (record.cmdline, record.exe)
        raise KeyboardInterrupt

    monkeypatch.setattr(depinctl.devnet, "check_anvil", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            Devnet(state_dir).up()
        pid = seen["pid"]
        assert _alive(pid)
        monkeypatch.undo()
        done = Devnet(state_dir).down()
        assert done.get("anvil") == "stopped", done
        assert not _alive(pid)
    finally:
        pid = seen.get("pid")
        if pid is not None and _alive(pid) and Path(f"/proc/{pid}/cwd").resolve().is_relative_to(state_dir.resolve()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        Devnet(state_dir).down()


def test_a_retitled_process_is_ours_and_a_recycled_pid_never_is(tmp_path: Path) -> None:
    """The record taken at the exec still proves a retitled redis-server ours; the same pid with another
    start time (a recycled pid), another executable, or another program's command line is not."""
    # The devnet's redis-server, listening on a socket file (the test needs no TCP port). In ci76 (a
    # busy machine) is_ours was False for a redis that was alive (still running, retitled, after the
    # run): the wait below took any command line other than the argv for the rename, and redis'
    # setproctitle clears its argv area before writing the title, so the wait and is_ours both read
    # the cleared area (a list of empty strings) while a descheduled redis sat between the two. The
    # wait now waits for the written title; a timeout shows the process's state and log.
    log = tmp_path / "redis.log"
    argv = [*redis_argv(0, tmp_path, persistent=True), "--unixsocket", str(tmp_path / "redis.sock")]
    spawned = spawn(argv, env=dict(os.environ), cwd=tmp_path, log_path=log)
    # The record as taken at the exec, before redis-server renames itself: spawn reads the command
    # line right after the exec, but on a busy machine redis-server may have renamed itself by then
    # (ci74: 7 ms after its start), so the exec-time command line (its argv) is set here.
    record = ProcessRecord(**{**{k: getattr(spawned, k) for k in ProcessRecord.__dataclass_fields__}, "cmdline": list(spawned.argv)})
    try:
        # renamed: "/usr/bin/redis-server unixsocket:PATH" (a cleared argv area, or a dead process, is no rename)
        retitled = f"{record.cmdline[0]} "
        try:
            wait_for(lambda: (c := proc_cmdline(record.pid)) and c[0].startswith(retitled) and _alive(record.pid), 10,
                     "redis-server to rename itself")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; alive {_alive(record.pid)}, command line {proc_cmdline(record.pid)}\n"
                               f"{log.read_text(errors='replace')[-3000:]}") from None
        assert record.exe and record.cmdline[0].endswith("redis-server")
        assert is_ours(record)
        fields = {k: getattr(record, k) for k in ProcessRecord.__dataclass_fields__}
        for other in (
            {"starttime": record.starttime + 1},  # a recycled pid: started at another time
            {"exe": "/usr/bin/python3"},
            {"cmdline": ["/usr/bin/some-other-program", "--flag"]},
            {"cmdline": [record.cmdline[0] + "-x", *record.cmdline[1:]]},
            {"exe": ""},  # a record from before the executable was kept: the command line must match
        ):
            assert not is_ours(ProcessRecord(**{**fields, **other})), other
    finally:
        assert stop_process(record, grace=5) == "stopped"


# A program that clears its own argv area, as redis-server's setproctitle does before it writes its
# title, and then stays in that state: /proc/PID/cmdline reads as NUL bytes only.
_CLEARS_ITS_ARGV = """
import ctypes, signal
fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48 and 49 of stat)
ctypes.memset(start, 0, end - start)
print("ARGV AREA CLEARED".lower(), flush=True)  # not in the log's copy of this script
signal.pause()
"""


def test_a_process_caught_with_its_argv_area_cleared_is_still_ours(tmp_path: Path) -> None:
    """A devnet process read while it retitles itself (its argv area cleared, the title not yet
    written) is still ours by its start time and executable, so `devnet down` stops it. is_ours said
    "not ours" for it (the command line read as empty strings), and down left the process running."""
    log = tmp_path / "clears.log"
    record = spawn([sys.executable, "-c", _CLEARS_ITS_ARGV, "--title-to-come"], env=dict(os.environ), cwd=tmp_path, log_path=log)
    try:
        wait_for(lambda: "argv area cleared" in log.read_text(errors="replace") or not _alive(record.pid), 30,
                 "the process to clear its argv area")
        assert _alive(record.pid), log.read_text(errors="replace")
        assert not any(proc_cmdline(record.pid) or []), proc_cmdline(record.pid)  # empty strings only
        assert record.exe and proc_exe(record.pid) == record.exe
        assert is_ours(record)
        fields = {k: getattr(record, k) for k in ProcessRecord.__dataclass_fields__}
        for other in ({"starttime": record.starttime + 1}, {"exe": "/usr/bin/redis-server"}, {"exe": ""}):
            assert not is_ours(ProcessRecord(**{**fields, **other})), other
        # The record itself taken mid-retitle (spawn reads /proc after the exec: on a busy machine
        # the process may have cleared its argv area by then; a loaded run caught exactly that, and
        # the cleared command line matched whatever the executable): the executable decides.
        cleared = {**fields, "cmdline": proc_cmdline(record.pid)}
        assert is_ours(ProcessRecord(**cleared))
        for other in ({"exe": "/usr/bin/redis-server"}, {"exe": ""}, {"starttime": record.starttime + 1}):
            assert not is_ours(ProcessRecord(**{**cleared, **other})), other
        assert stop_process(record, grace=5) == "stopped"
        assert proc_stat(record.pid) is None or not _alive(record.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, signal.SIGKILL)
