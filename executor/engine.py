"""Finding (or starting) the container engine: a Docker client on a Docker or Podman API socket.

The executor talks to containers only through the Docker Engine API (the ``docker`` SDK), which both
Docker and Podman (``podman system service``) serve. :func:`connect` picks the engine in this order:

1. the ``docker_host`` argument (``[engine] docker_host`` in depin.toml, or ``DEPIN_DOCKER_HOST``);
2. the ``DOCKER_HOST`` environment variable;
3. ``/var/run/docker.sock`` if an engine answers on it;
4. otherwise a Podman API service that this module starts under ``state_dir``
   (``podman --runtime runc system service --time=0 unix://<state_dir>/podman.sock``), detached in
   its own session so it outlives the calling process; its pid is kept in ``<state_dir>/podman.pid``
   and :func:`stop_podman_service` stops it. A second call reuses a running service.

The Podman service runs with ``CONTAINERS_CONF`` pointing at ``<state_dir>/containers.conf``, written
here: runtime ``runc`` (crun fails on this kernel's hybrid cgroups) and explicit default ulimits
(Podman's defaults exceed what a sandboxed host allows: "setrlimit RLIMIT_NOFILE: Operation not
permitted"). :mod:`executor.containers` passes explicit ulimits on every container anyway.

Podman keeps using the system's image and container storage (``/var/lib/containers`` as root), so
images built by one service are visible to every other service and to the ``podman`` CLI.

**The sandbox check.** :func:`check_sandbox` runs the start-up probe
(:func:`executor.containers.probe_sandbox`: a container from the locally built ``depin/busybox``
with a job's options, including the project's seccomp profile) and raises
:class:`SandboxUnavailable` when a job could create a namespace there, or seccomp or
no-new-privileges is not in force: an engine that ignores the profile never runs a job. It runs once
per engine and process (a forked pool process inherits its parent's answer);
:attr:`executor.runtime.Runtime.docker` calls it, and the executor's processes touch that before
they start work.
"""

from __future__ import annotations

import fcntl
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

import docker
from docker.constants import MINIMUM_DOCKER_API_VERSION
from docker.errors import DockerException

from depin.config import env_number
from depin.errors import ExecutionError
from executor.containers import ContainerEngineError, ImageUnavailable, ping_headers, probe_sandbox
from executor.images import ImageBuildError, build_sample_image

DOCKER_SOCKET = "/var/run/docker.sock"
PID_FILE = "podman.pid"
LOCK_FILE = "podman.lock"
SOCKET_FILE = "podman.sock"
CONF_FILE = "containers.conf"
LOG_FILE = "podman.log"
DEFAULT_STATE_DIR = Path("state")
# How long a fresh `podman system service` may take to answer. It is a bound on a poll, not a wait:
# an idle machine answers in about a second, but a CI run at load 8+ (two test workers, anvil
# nodes and a Hypothesis run beside it) once took over 30 s before the socket answered.
START_TIMEOUT = 90.0
API_TIMEOUT = 60  # seconds for one API call (a build or a kill can take a while on a busy host)
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes including the terminating NUL

CONTAINERS_CONF = """\
# Written by depin-compute (executor/engine.py) for its Podman API service. Do not edit: rewritten
# on every start.
[containers]
# Explicit limits: Podman's defaults exceed what some hosts allow (setrlimit: Operation not permitted).
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
# crun fails on kernels that mount cgroups v1 in hybrid mode; runc works everywhere.
runtime = "runc"
"""


PROBE_IMAGE = "busybox"

_client_urls: weakref.WeakKeyDictionary[docker.DockerClient, str] = weakref.WeakKeyDictionary()
_sandbox_verified: set[str] = set()


class EngineUnavailable(ExecutionError):
    """No container engine answers and none could be started."""


class SandboxUnavailable(EngineUnavailable):
    """The engine does not confine jobs as the executor requires (it ignores the seccomp profile)."""


def _ping(url: str, timeout: float = 3.0) -> docker.DockerClient | None:
    """A client for `url` if an engine answers there (``/_ping``), else None. The client speaks the
    API version the ping's ``Api-Version`` header names, as docker-py's ``auto`` would; but ``auto``
    asks ``/version`` for it, for which Podman runs its package manager eight times (about 0.4 s and
    0.3 s of CPU in every process that connects; 3,600 ``dpkg-query`` runs in one CI run)."""
    try:
        probe = docker.DockerClient(base_url=url, version=MINIMUM_DOCKER_API_VERSION, timeout=max(1, int(timeout)))
        try:
            api_version = ping_headers(probe).get("Api-Version") or "auto"
        finally:
            probe.close()
        client = docker.DockerClient(base_url=url, version=api_version, timeout=API_TIMEOUT)
    except (DockerException, ContainerEngineError, OSError, ValueError):
        return None
    _client_urls[client] = url
    return client


ENGINE_WAIT_ENV = "DEPIN_ENGINE_WAIT"  # seconds a process waits at start for its engine to answer
DEFAULT_ENGINE_WAIT = 60.0


def _ping_until(url: str, wait: float | None = None) -> docker.DockerClient | None:
    """Pings `url` until an engine answers or `wait` seconds (default ``DEPIN_ENGINE_WAIT``, 60)
    pass: a freshly started engine on a loaded machine can take longer than one ping's timeout."""
    if wait is None:
        wait = env_number(ENGINE_WAIT_ENV, DEFAULT_ENGINE_WAIT)
    deadline = time.monotonic() + wait
    while True:
        remaining = deadline - time.monotonic()
        client = _ping(url, timeout=max(1.0, min(10.0, remaining)))
        if client is not None or remaining <= 0:
            return client
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def engine_version(docker_host: str, timeout: float = 5.0) -> str:
    """The version the engine at `docker_host` reports; raises :class:`EngineUnavailable` when none
    answers. For callers outside the container boundary (the devnet's health check)."""
    client = _ping(docker_host, timeout=timeout)
    if client is None:
        raise EngineUnavailable(f"no container engine answers at {docker_host}")
    try:  # the ping's Server header, `Docker/27.1.0 (linux)` or `Libpod/4.3.1 (linux)`, not /version (see _ping)
        server = re.match(r"[^/\s]+/(\S+)", ping_headers(client).get("Server", ""))
        return server.group(1) if server else str(client.version().get("Version", "?"))
    finally:
        client.close()


def client_for(docker_host: str, timeout: float = 120.0) -> docker.DockerClient:
    """A client for the engine at `docker_host` with a request timeout of `timeout` seconds (no
    ping); the caller closes it."""
    return docker.DockerClient(base_url=docker_host, timeout=max(1, int(timeout)))


def engine_url(client: docker.DockerClient) -> str:
    """The URL `client` was connected to (by :func:`connect`), else its API base URL."""
    return _client_urls.get(client) or str(client.api.base_url)


def engine_name(client: docker.DockerClient) -> str:
    """``Podman Engine 4.3.1`` or ``Docker Engine - Community 27.1.0``: the engine's first component."""
    try:
        version = client.version()
    except (DockerException, OSError, ValueError):
        return "the container engine"
    components = version.get("Components") or [{}]
    name = components[0].get("Name") or "container engine"
    return f"{name} {components[0].get('Version') or version.get('Version', '')}".strip()


def check_sandbox(client: docker.DockerClient) -> None:
    """Raises :class:`SandboxUnavailable` unless a job container on this engine runs under the
    project's seccomp profile with no-new-privileges and cannot create a namespace (see the module
    doc). Once per engine URL and process; a failed check is not remembered."""
    url = engine_url(client)
    if url in _sandbox_verified:
        return
    try:
        image = build_sample_image(client, PROBE_IMAGE)
        with tempfile.TemporaryDirectory(prefix="depin-sandbox-probe-") as tmp:
            problems = probe_sandbox(client, image, Path(tmp))
    except (ImageBuildError, ImageUnavailable, ContainerEngineError) as exc:
        raise SandboxUnavailable(f"cannot check the job sandbox on {engine_name(client)} at {url}: {exc}") from exc
    if problems:
        raise SandboxUnavailable(
            f"{engine_name(client)} at {url} does not confine jobs as required, so this executor runs none: "
            f"{'; '.join(problems)}. Use an engine that applies a seccomp profile passed in security_opt "
            "(Docker 20.10 or later, or Podman 4 or later with runc and libseccomp), then start the executor again"
        )
    _sandbox_verified.add(url)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` of this host lives; a zombie (exited, not yet reaped) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _is_our_service(pid: int, url: str) -> bool:
    """True if `pid` is alive and is a ``podman ... system service`` serving `url` (a recorded pid
    may have been reused by an unrelated process after a reboot or a crash: never signal that)."""
    if not pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [a.decode(errors="replace") for a in argv if a]
    return bool(args) and Path(args[0]).name == "podman" and "service" in args and url in args


def _read_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def podman_socket_url(state_dir: Path) -> str:
    """``unix://<state_dir>/podman.sock`` (absolute)."""
    return f"unix://{(Path(state_dir).resolve() / SOCKET_FILE)}"


def start_podman_service(state_dir: Path) -> tuple[int, str]:
    """Starts (or finds running) the project's Podman API service under `state_dir`; returns
    ``(pid, url)`` once it answers.

    The service is a detached process (new session, output in ``<state_dir>/podman.log``) that keeps
    running after the caller exits; ``--time=0`` means it never exits on idle. Raises
    :class:`EngineUnavailable` when podman is missing or the service does not answer in time.
    """
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    url = podman_socket_url(state_dir)
    sock = state_dir / SOCKET_FILE
    if len(str(sock)) > MAX_SOCKET_PATH:
        raise EngineUnavailable(f"the socket path {sock} is longer than {MAX_SOCKET_PATH} bytes; use a shorter state_dir")
    with open(state_dir / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two workers starting at once must not start two services
        return _start_locked(state_dir, url, sock)


def _start_locked(state_dir: Path, url: str, sock: Path) -> tuple[int, str]:
    pid = _read_pid(state_dir)
    if pid is not None and _is_our_service(pid, url):
        if _ping(url) is not None:
            return pid, url
        _terminate(pid)  # ours, alive, not answering: a stuck leftover
    podman = shutil.which("podman")
    if podman is None:
        raise EngineUnavailable(
            "no container engine: DOCKER_HOST is unset, nothing answers on /var/run/docker.sock and podman "
            "is not installed (run tools/setup.sh, or set [engine] docker_host in depin.toml)"
        )
    conf = state_dir / CONF_FILE
    conf.write_text(CONTAINERS_CONF)
    sock.unlink(missing_ok=True)
    # The service outlives the executor (it is never stopped: --time=0), and its environment is in
    # /proc/<pid>/environ for as long: a keystore's password must not be (found by review, stop 56).
    env = {k: v for k, v in os.environ.items() if not _secret_variable(k)}
    env["CONTAINERS_CONF"] = str(conf)
    with open(state_dir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            [podman, "--runtime", "runc", "system", "service", "--time=0", url],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            # conmon writes files (an `oom` marker after an OOM kill, ...) into its working folder:
            # keep them in the service's state folder, never in whatever folder started it
            cwd=state_dir,
            start_new_session=True,
            close_fds=True,
        )
    (state_dir / PID_FILE).write_text(f"{proc.pid}\n")
    _unlimit_address_space(proc.pid)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = _log_tail(state_dir)
            (state_dir / PID_FILE).unlink(missing_ok=True)
            raise EngineUnavailable(f"the Podman API service exited with status {proc.returncode}: {tail}")
        if sock.exists() and _ping(url, timeout=2) is not None:
            return proc.pid, url
        time.sleep(0.1)
    _terminate(proc.pid)
    (state_dir / PID_FILE).unlink(missing_ok=True)
    raise EngineUnavailable(f"the Podman API service did not answer on {url} within {START_TIMEOUT:.0f} s: {_log_tail(state_dir)}")


def _unlimit_address_space(pid: int) -> None:
    """Raises the service's RLIMIT_AS to unlimited (else to its hard limit), before it starts a
    container: every job inherits it, and Podman's API takes no ``as`` ulimit to set it per
    container as :data:`executor.containers.JOB_ULIMITS` does every other limit."""
    for value in ((resource.RLIM_INFINITY, resource.RLIM_INFINITY), (resource.getrlimit(resource.RLIMIT_AS)[1],) * 2):
        try:
            resource.prlimit(pid, resource.RLIMIT_AS, value)
            return
        except (OSError, ValueError):
            continue


def _log_tail(state_dir: Path) -> str:
    try:
        return (state_dir / LOG_FILE).read_text(errors="replace").strip()[-500:] or "(no output)"
    except OSError:
        return "(no log)"


def _terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; reaps the process if it is our child."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def stop_podman_service(state_dir: Path) -> bool:
    """Stops the Podman API service started under `state_dir`; True if one was running.

    Containers keep running under their own ``conmon`` monitors; they are not this function's
    business (the executor removes its containers itself; :func:`executor.containers.reap_orphans`
    removes leftovers).
    """
    state_dir = Path(state_dir).resolve()
    pid = _read_pid(state_dir)
    running = pid is not None and _is_our_service(pid, podman_socket_url(state_dir))
    if running:
        assert pid is not None
        _terminate(pid)
    (state_dir / PID_FILE).unlink(missing_ok=True)
    (state_dir / SOCKET_FILE).unlink(missing_ok=True)
    return running


def connect(docker_host: str = "", state_dir: Path | None = None) -> docker.DockerClient:
    """A connected Docker client: `docker_host`, else ``DOCKER_HOST``, else the Docker socket if it
    answers, else the project's Podman service under `state_dir` (started if needed; default
    ``./state``). Raises :class:`EngineUnavailable` with what to do next."""
    explicit = docker_host.strip() or os.environ.get("DOCKER_HOST", "").strip()
    if explicit:
        client = _ping_until(explicit)
        if client is None:
            raise EngineUnavailable(
                f"no container engine answers at {explicit} (from docker_host/DOCKER_HOST); start it, or unset "
                "the setting to let depin start a Podman service"
            )
        return client
    if Path(DOCKER_SOCKET).exists():
        client = _ping(f"unix://{DOCKER_SOCKET}")
        if client is not None:
            return client
    _, url = start_podman_service(Path(state_dir) if state_dir is not None else DEFAULT_STATE_DIR)
    client = _ping_until(url)
    if client is None:
        raise EngineUnavailable(f"the Podman service at {url} stopped answering right after it started; see its podman.log")
    return client


def _secret_variable(name: str) -> bool:
    """Whether environment variable `name` may hold a key's password (``DEPIN_KEYSTORE_PASSWORD``,
    ape's ``APE_ACCOUNTS_<alias>_PASSPHRASE``, anything named like a password or secret)."""
    upper = name.upper()
    return upper.startswith("APE_ACCOUNTS_") or any(word in upper for word in ("PASSWORD", "PASSPHRASE", "SECRET", "PRIVATE_KEY"))
