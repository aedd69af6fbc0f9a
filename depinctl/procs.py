"""One way to start each local service: anvil and redis-server, for the devnet, tests and benchmarks.

Two kinds of process:

- **Children** (:class:`ManagedProcess`): tests and benchmarks start anvil or redis-server in their
  own session, log to a file, and stop them (TERM, then KILL, to the whole group) when done.
  :func:`start_anvil` and :func:`start_redis` return one once the service answers.
- **Detached** (:func:`spawn`, :class:`ProcessRecord`, :func:`stop_process`): the devnet starts its
  components so that they outlive the command, records enough to find each one again
  (pid, start time, command line, executable), and later stops only a process it can prove it started.

Both kinds build their command lines with the same :func:`anvil_argv` and :func:`redis_argv`.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import redis

from depin.chain import RpcClient
from depin.deployment import REPO_ROOT
from depin.errors import ChainError, DepinError

LOG_ROTATE_BYTES = 20 * 2**20  # a detached process's log above this size is moved to <name>.log.1 at its next start
STOP_GRACE = 10.0
PORT_TRIES = 5  # free ports tried in turn when another process takes the chosen one first


class ServiceError(DepinError):
    """A local service (anvil, redis-server, a devnet component) could not be started."""


# ---------------------------------------------------------------------------------------- ports


def free_port(taken: set[int] | frozenset[int] = frozenset()) -> int:
    """A TCP port free on 127.0.0.1 right now and not in `taken` (another process may still take
    it before you do)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in taken:
            return port


def port_free(port: int) -> bool:
    """Whether `port` can be bound on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# ---------------------------------------------------------------------------------------- command lines


# npm's names for this machine's processor, in the platform packages' names (anvil-linux-amd64).
_NPM_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def anvil_binary() -> str:
    """The anvil of the npm package: the binary of its platform package
    (``node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil``), which the package's node wrapper
    (``node_modules/.bin/anvil``) would start. Started directly, no node process runs beside each
    chain (about 0.7 s of CPU each, 118 of them in one CI run), and a signal or a SIGKILL reaches
    anvil itself: killing the wrapper leaves its anvil running. Else the wrapper, else PATH's."""
    npm = REPO_ROOT / "node_modules"
    native = npm / "@foundry-rs" / f"anvil-{platform.system().lower()}-{_NPM_ARCH.get(platform.machine().lower(), '')}" / "bin" / "anvil"
    local = npm / ".bin" / "anvil"
    found = str(native) if os.access(native, os.X_OK) else str(local) if local.exists() else shutil.which("anvil")
    if not found:
        raise ServiceError("anvil not found: run `make setup` (it installs @foundry-rs/anvil into node_modules)")
    return found


def redis_binary() -> str:
    """Debian's redis-server (on PATH, else /usr/bin)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise ServiceError("redis-server not found: run `make setup` (it installs Debian's redis-server)")
    return binary


def anvil_argv(
    port: int,
    *,
    chain_id: int | None = None,
    state: Path | None = None,
    block_time: int | None = None,
    args: Sequence[str] = (),
) -> list[str]:
    """anvil on 127.0.0.1:`port`; with `state`, the chain is loaded from and dumped to that file
    (at stop and every 30 s). With `block_time` (seconds), ``--block-time N --mixed-mining``:
    transactions are still mined at once, and a block is also mined every N seconds without
    traffic, so that a job's anchor block (submitBlock + D) arrives and its randomness becomes
    readable on an idle chain (the verification draw needs it)."""
    argv = [anvil_binary(), "--host", "127.0.0.1", "--port", str(port)]
    if chain_id is not None:
        argv += ["--chain-id", str(chain_id)]
    if block_time is not None:
        argv += ["--block-time", str(block_time), "--mixed-mining"]
    if state is not None:
        argv += ["--state", str(state), "--state-interval", "30"]
    return [*argv, *args]


def redis_argv(port: int, directory: Path, *, persistent: bool = False) -> list[str]:
    """redis-server on 127.0.0.1:`port` with its files in `directory`. `persistent`: an
    append-only file (fsync every second), no eviction and the log on stdout, as the devnet runs
    it; else no persistence at all (tests and benchmarks)."""
    argv = [redis_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory), "--save", ""]
    if persistent:
        return [
            *argv, "--daemonize", "no", "--appendonly", "yes", "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction", "--protected-mode", "yes", "--logfile", "",
        ]
    return [*argv, "--appendonly", "no"]


# ---------------------------------------------------------------------------------------- children


class ManagedProcess:
    """A child process in its own session, stopped (TERM, then KILL) by :meth:`stop` or ``with``."""

    def __init__(
        self, name: str, args: Sequence[str], *, log_path: Path, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.args, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """TERM, then KILL after `timeout`, to the child's whole process group (npm's anvil is a
        node wrapper around the real binary: both go)."""
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(timeout)
        self._log.close()

    def _signal_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the group this object created (start_new_session)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until_ready(proc: ManagedProcess, ready: Callable[[], bool], what: str, timeout: float) -> None:
    """Polls `ready` until it returns True; stops `proc` and raises ServiceError if the process
    exits first or `timeout` seconds pass (the message ends with its log's last lines)."""
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if not proc.alive():
                raise ServiceError(f"{proc.name} exited with status {proc.proc.returncode}: {proc.log_tail()}")
            if time.monotonic() > deadline:
                raise ServiceError(f"{what} within {timeout:.0f} s: {proc.log_tail()}")
            time.sleep(0.05)
    except BaseException:
        proc.stop()
        raise


def listener_pids(port: int) -> set[int]:
    """The pids holding a socket that listens on TCP `port` (IPv4 or IPv6), from /proc: the
    sockets' inodes in /proc/net/tcp{,6}, then the processes whose descriptors point at one (only
    processes this user may inspect)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{cols[9]}]")
    pids: set[int] = set()
    if not inodes:
        return pids
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                pids.add(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return pids


def _listens(proc: ManagedProcess, port: int) -> bool:
    """Whether a process of `proc`'s group (npm's anvil is a wrapper around the binary) listens on
    `port`: a service that answers there may be another one that took the port first."""
    return any(_proc_pgid(pid) == proc.pid for pid in listener_pids(port))


class PortTaken(ServiceError):
    """The service could not listen on its port: another process holds it."""


def _start_on_a_free_port(
    name: str, port: int | None, launch: Callable[[int], tuple[ManagedProcess, str]]
) -> tuple[ManagedProcess, str]:
    """`launch(port)` on `port`, or on a free port chosen here; a port chosen here that another
    process took before the service could bind it (free_port can only say it was free) is
    replaced by a new one, up to PORT_TRIES times."""
    if port:
        return launch(port)
    for _ in range(PORT_TRIES):
        with contextlib.suppress(PortTaken):
            return launch(free_port())
    raise ServiceError(f"{name}: {PORT_TRIES} free ports in a row were taken by other processes before it could listen")


def _wait_listening(proc: ManagedProcess, port: int, answers: Callable[[], bool], what: str, timeout: float) -> None:
    """Waits until `proc` answers on `port` and is the one listening there (what answers may be
    another process that took the port); PortTaken when it exits saying the port is in use. Stops
    `proc` on any failure."""
    try:
        wait_until_ready(proc, lambda: answers() and _listens(proc, port), what, timeout)
    except ServiceError as exc:
        if not proc.alive() and port_taken_in(proc.log_tail()):
            raise PortTaken(f"{proc.name}: port {port} is taken") from exc
        raise


def port_taken_in(log_text: str) -> bool:
    """Whether a service's log says it could not bind its port."""
    return "Address already in use" in log_text or "address in use" in log_text.lower()


def start_anvil(
    workdir: Path,
    *,
    port: int | None = None,
    args: Sequence[str] = (),
    block_time: int | None = None,
    timeout: float = 20.0,
) -> tuple[ManagedProcess, str]:
    """Starts anvil on 127.0.0.1 (a free port unless given), logging to `workdir`/anvil.log.
    `block_time`: see :func:`anvil_argv` (``--block-time N --mixed-mining``).

    Returns the process and its RPC URL once the node listens there and answers.
    """
    workdir.mkdir(parents=True, exist_ok=True)

    def launch(chosen: int) -> tuple[ManagedProcess, str]:
        proc = ManagedProcess("anvil", anvil_argv(chosen, block_time=block_time, args=args),
                              log_path=workdir / "anvil.log", cwd=workdir)
        url = f"http://127.0.0.1:{chosen}"
        rpc = RpcClient.from_url(url, timeout=2.0, retries=0)

        def answers() -> bool:
            try:
                rpc.chain_id()
            except ChainError:
                return False
            return True

        _wait_listening(proc, chosen, answers, f"anvil did not answer on {url}", timeout)
        return proc, url

    return _start_on_a_free_port("anvil", port, launch)


def start_redis(
    workdir: Path, *, port: int | None = None, persistent: bool = False, timeout: float = 10.0
) -> tuple[ManagedProcess, str]:
    """Starts redis-server on 127.0.0.1 (a free port unless given), files and redis.log in
    `workdir` (see :func:`redis_argv` for `persistent`). Returns the process and the URL of db 0
    once it listens there and answers PING."""
    workdir.mkdir(parents=True, exist_ok=True)

    def launch(chosen: int) -> tuple[ManagedProcess, str]:
        proc = ManagedProcess("redis-server", redis_argv(chosen, workdir, persistent=persistent),
                              log_path=workdir / "redis.log", cwd=workdir)
        url = f"redis://127.0.0.1:{chosen}/0"
        # bounded: what holds the port may be a listener that never answers
        client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.TimeoutError):
                return False

        try:
            _wait_listening(proc, chosen, answers, f"redis-server did not start on port {chosen}", timeout)
        finally:
            client.close()
        return proc, url

    return _start_on_a_free_port("redis-server", port, launch)


# ---------------------------------------------------------------------------------------- detached


@dataclass
class ProcessRecord:
    """A process the devnet started: enough to find it again and to prove it is still the same one
    (:func:`is_ours`)."""

    pid: int
    cmdline: list[str]  # /proc/<pid>/cmdline at start, then once the process was healthy
    starttime: int  # /proc/<pid>/stat field 22 (clock ticks after boot)
    log: str
    started_at: float
    port: int | None = None
    argv: list[str] = field(default_factory=list)  # as launched (cmdline is what /proc shows)
    exe: str = ""  # /proc/<pid>/exe at start, then once healthy ("": a record written before it was kept)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of `pid`, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return fields[0], int(fields[19])


def proc_cmdline(pid: int) -> list[str] | None:
    """The command line /proc shows for `pid`, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def proc_exe(pid: int) -> str | None:
    """The executable /proc shows for `pid` (the file it runs, symlinks resolved), or None."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:  # no such process, or not ours to read
        return None


def _proc_pgid(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[2])


def is_ours(record: ProcessRecord) -> bool:
    """Whether `record.pid` is alive (not a zombie) and is still the process the devnet started:
    the same start time, and either the same command line or the same executable showing its
    program retitled (redis-server rewrites its command line as it starts, to ``/usr/bin/redis-server
    127.0.0.1:PORT``: a record taken at the exec, left by an interrupted ``up``, still matches it).
    A process caught mid-retitle (its argv area cleared, the title not yet written: the command line
    reads as empty strings) is ours by its start time and executable alone; so is one whose record
    was taken mid-retitle (a cleared command line is no identity: it needs the executable too).
    A recycled pid has another start time; another program has another command line and executable."""
    stat = proc_stat(record.pid)
    if stat is None or stat[0] in ("Z", "X") or stat[1] != record.starttime:
        return False
    cmdline = proc_cmdline(record.pid)
    if cmdline == record.cmdline and any(record.cmdline):
        return True
    if not (record.exe and cmdline is not None and record.cmdline) or proc_exe(record.pid) != record.exe:
        return False
    if not any(cmdline):  # the argv area cleared by a setproctitle that has not written its title yet
        return True
    # A record taken mid-retitle (a busy machine: the process cleared its argv area before it was
    # read) names no program: the one launched does.
    program = record.cmdline[0] or (record.argv[0] if record.argv else "")
    return bool(program) and (cmdline[0] == program or cmdline[0].startswith(program + " "))  # setproctitle: "PROGRAM TITLE..."


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _proc_pgid(int(entry.name)) == pgid:
            stat = proc_stat(int(entry.name))
            if stat is not None and stat[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def stop_process(record: ProcessRecord, grace: float = STOP_GRACE) -> str:
    """Stops the process group the devnet created for `record` (its pid is the group id): SIGTERM
    to the leader first (Celery, the executor supervisor and npm's anvil wrapper stop their own
    children cleanly), SIGTERM to the whole group if members remain after half of `grace`, SIGKILL
    to the group after `grace`. Returns what happened. Refuses when the pid is not ours."""
    if not is_ours(record):
        return "not running"
    pgid = record.pid  # started with start_new_session: leader of its own group
    if _proc_pgid(record.pid) != pgid:
        return "not running (pid is not a group leader)"

    def wait(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            reap_children()
            if not _group_members(pgid):
                return True
            time.sleep(0.05)
        return False

    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGTERM)
    if wait(grace / 2):
        return "stopped"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    if wait(grace / 2):
        return "stopped"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    wait(5)
    return "killed (did not stop on SIGTERM)"


def _through_env(argv: list[str], path: str | None) -> list[str]:
    """`argv` with a script run through ``#!/usr/bin/env PROG`` (npm's anvil) started as ``PROG
    script …``, PROG found on `path` as env would: the process is PROG from its exec on (through
    env it is env for a moment, then PROG, and a record taken at the exec would not match it)."""
    try:
        with open(argv[0], "rb") as script:
            first = script.readline(256)
    except OSError:
        return argv
    words = first[2:].split() if first.startswith(b"#!") else []
    if len(words) != 2 or Path(words[0].decode(errors="replace")).name != "env":
        return argv
    program = shutil.which(words[1].decode(errors="replace"), path=path)
    return [program, *argv] if program else argv


def spawn(argv: list[str], *, env: dict[str, str], cwd: Path, log_path: Path) -> ProcessRecord:
    """Starts `argv` detached: its own session, stdin from /dev/null, stdout+stderr appended to `log_path`."""
    argv = _through_env(argv, env.get("PATH"))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if log_path.stat().st_size > LOG_ROTATE_BYTES:  # keep one previous log (anvil logs every call)
            os.replace(log_path, log_path.with_name(log_path.name + ".1"))
    with open(log_path, "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {shlex.join(argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            raise ServiceError(f"cannot start {argv[0]}: {exc}") from None
    # Popen returns after the exec: /proc now shows the new program (keep reaping it if it dies
    # while this process lives, so a dead child is not left as a zombie that looks alive).
    _children.append(proc)
    stat = proc_stat(proc.pid)
    return ProcessRecord(
        pid=proc.pid,
        cmdline=proc_cmdline(proc.pid) or list(argv),
        starttime=stat[1] if stat else 0,
        exe=proc_exe(proc.pid) or "",
        log=str(log_path),
        started_at=time.time(),
        argv=list(argv),
    )


_children: list[subprocess.Popen[bytes]] = []


def reap_children() -> None:
    """Collects the exit status of the detached children of this process that have ended."""
    for child in list(_children):
        if child.poll() is not None:
            _children.remove(child)
