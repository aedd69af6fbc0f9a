"""The container runtime boundary: the one module that builds container options.

Every job container runs hardened as DESIGN.md's executor rules say, through the Docker Engine API
(Docker, or Podman's compatible service; see :mod:`executor.engine`):

- **image by digest**: the spec's ``repo@sha256:<hex>`` must name a local image whose ID (or one of
  whose RepoDigests) is that digest, else :class:`ImageUnavailable` (``FailureCode.IMAGE_UNAVAILABLE``).
  Nothing is pulled unless the image's registry is in ``allowed_registries`` (none by default: this
  project has no registry); a pulled image is checked the same way;
- ``network_mode="none"`` (loopback only), never the host network; no host socket or host path is
  mounted except the job's own ``/in`` (read-only) and ``/out`` folders and the executor's
  ``/etc/hosts`` and ``/etc/hostname`` for the job (read-only; see "Reproducible runs");
- read-only root filesystem; ``/tmp`` and ``/var/tmp`` are size-capped tmpfs (``TMP_MB``), ``/run``
  a 1 MiB tmpfs, ``/dev/shm`` ``SHM_MB``;
- ``cap_drop=["ALL"]``, ``security_opt=["no-new-privileges", "seccomp=…"]``, user ``65534:65534``
  (nobody), private IPC namespace, a fixed hostname (``depin-job``) so that reruns see the same
  environment;
- the project's **seccomp profile** (``executor/seccomp.json``, see below) on every engine;
- ``pids_limit``; ``mem_limit == memswap_limit`` (no swap); ``nano_cpus`` from the spec's cpus;
  every ulimit explicit (:data:`JOB_ULIMITS`, with ``nofile`` and ``nproc`` from
  :class:`ContainerLimits`): left out, a limit comes from whoever started the engine, and a job
  that reads it, or a stack depth or core dump that depends on it, differs between two honest
  machines (found by review: a deep recursion exited 139 on one engine and 137 on another; a crash
  wrote a ``core`` file into ``/out`` on one only). Podman does not take ``as``; the service the
  executor starts has RLIMIT_AS raised to unlimited (:mod:`executor.engine`). Podman fails to start
  containers with its own ``nofile``/``nproc`` defaults on sandboxed hosts; RLIMIT_NPROC counts
  every process of uid 65534 on the host, hence a generous value with ``pids_limit`` doing the
  per-container capping;
- log size cap (``max-size`` on the json-file / k8s-file driver): a job cannot fill the disk with logs;
- labels on every container (``depin.job``, ``depin.executor`` and ``depin.managed=true``) so that
  :func:`reap_orphans` finds leftovers; a deterministic name per job and role
  (:func:`container_name`), and a stale container of that name is removed before a new run (crash
  recovery: a retried task never collides with its previous attempt);
- the job's init (:data:`INIT_PATH`, see "PID numbers" below) starts the job's command, so that
  its processes get the same PID numbers on every machine;
- the wall-clock limit is enforced here: after ``max_runtime`` seconds the container is killed and
  removed (Celery's time limits kill only the worker process, never the container).

**Output cap.** ``/out`` is a host folder bind-mounted read-write. When the executor runs as root
(the supported provider setup) :func:`prepare_output_dir` mounts a **tmpfs sized to the job's
output limit plus** ``OUT_SLACK_BYTES`` on that folder: the kernel refuses writes beyond it
(``ENOSPC``), so a job writing 1 GB is stopped at the cap and never touches the host disk. The
executor then measures the folder after exit: more than the limit is ``OUTPUT_TOO_LARGE`` (the
slack is what lets "exactly at the limit" and "over it" be told apart). Tmpfs pages are charged to
the memory cgroup of the writing container (as for a Kubernetes memory-backed ``emptyDir`` with a
``sizeLimit``), so the container's memory limit is ``memory_mb`` plus the output tmpfs size: the job
gets its full ``memory_mb`` for processes and its full output allowance. A sparse file cannot cheat
the measure (it counts apparent size). Without root (no ``mount``), the folder is a plain directory
and the run loop measures it every ``WATCH_INTERVAL`` seconds and kills the job past the cap: the
overshoot is bounded by the job's write rate times that interval, not by the kernel. The engine must
be local (a remote ``DOCKER_HOST`` cannot see the host folders).

**Reproducible runs.** Two executors running the same job must get the same result, so a job learns
nothing about the host or the run it is in: a fixed hostname (``depin-job``); a fixed environment
(:data:`JOB_ENV`: ``SOURCE_DATE_EPOCH=0``, ``TZ=UTC``, ``LANG=C.UTF-8``, ``HOME=/tmp``, ``TERM=dumb``
and ``container=depin`` over the engine's own ``container=podman``/``TERM=xterm``; the spec's env
on top; nothing from the host); ``/etc/hosts`` and ``/etc/hostname`` from the executor
(:func:`prepare_etc_dir`), because Podman copies the host's ``/etc/hosts`` and adds the container's
name (which holds the job id and the executor's instance); ``/in`` on its own tmpfs (``depin-in``,
:func:`prepare_input_dir`) like ``/out`` (``depin-out``), so that ``/proc/self/mountinfo`` shows
``/ /in … tmpfs depin-in`` and ``/ /out … tmpfs depin-out`` rather than the host path of the work
folder (bind mounts show their source path there; a tmpfs has none). Without root (no ``mount``)
the folders are plain and their host paths stay visible. ``cgroupns="private"`` asks for a private
cgroup namespace (``/proc/self/cgroup`` then reads ``0::/``): Docker honours it (API 1.41+), and so
does Podman on cgroups v2, where it is the default; Podman 4.3's Docker-compatible API ignores it,
and on a cgroups v1 host its jobs still see ``/libpod_parent/libpod-<container id>`` in
``/proc/self/cgroup`` and ``/proc/self/cpuset``. What no option of either engine hides: the mount
table names the per-container overlay layer of the root filesystem and, on Podman, the
per-container source of the ``/etc/passwd`` and ``/etc/group`` it adds for the job user. A mask
(``--security-opt mask=/proc/self/mountinfo``, Podman only) cannot help: the runtime resolves
``/proc/self`` once, at setup, to the container's first process, and masking ``/proc`` would
break ordinary programs. So a job that prints its cgroup or its mount table is not reproducible on
such a host; a spec can leave those files out of what must match (``output.match``), and
``tests/executor/test_reproducible.py`` pins what is and is not hidden.

**PID numbers.** The OCI runtime uses PIDs of the job's PID namespace before the job's command
starts (runc's Go threads: four or five, varying between runs of one engine; crun one), so a job's
first child got PID 6 on one run and 7 on another, and a job printing it had no reproducible
result (found by review). Every job container therefore starts the job's init
(``executor/depin-init.c``, a freestanding static binary that ``tools/build_init.sh`` builds at
setup), bind-mounted read-only at :data:`INIT_PATH` (under the runtime's own ``/dev``, so no image
content clashes with it) as the entrypoint. As PID 1 it forks children that exit at once, reaping
each, until one gets PID :data:`INIT_LAST_PID`, then execs the image's entrypoint and the spec's
command in place: the job keeps PID 1, its argv, environment, signal state, descriptors, limits and
seccomp filter exactly as the engine gave them (``tests/executor/test_job_init.py`` compares them
with a run without the init), its exit status is the container's, and its first child gets
:data:`JOB_FIRST_CHILD_PID` on every machine (the kernel hands out PIDs in increasing order). The
command is looked up as runc looks it up. When the init does not exec the command it exits
:data:`INIT_STATUS` after writing one line to ``/out/<marker>``, a name drawn afresh for each run
that the job never sees (it is in the init's arguments only, which the exec replaces): a command the
image cannot execute is :class:`CommandRefused` (``BAD_SPEC``, as the engine's refusal was), while a
runtime that used more than :data:`INIT_LAST_PID` PIDs, a failed fork, or a missing init binary is
:class:`InitFailed` (the machine's fault, retried). A job that exits 127 with files of its own in
``/out`` has an ordinary result. A job still sees the init's mount in its mount table.

**Seccomp.** ``executor/seccomp.json`` is Docker's default profile (default action ``EPERM``, an
allow-list of syscalls) resolved for a container without capabilities, with ``ptrace``,
``process_vm_readv``/``writev``, ``io_uring_*`` and ``name_to_handle_at`` removed as well. So a job
cannot create namespaces (``unshare``, ``setns``, ``clone`` with any ``CLONE_NEW*`` flag; ``clone3``
answers ``ENOSYS`` so that libc falls back to ``clone``), mount anything, load kernel modules or
BPF, use keyrings, ``perf_event_open``, ``userfaultfd``, ``io_uring``, ``kexec``, ``reboot``,
``swapon``, set the clock, or switch personality except to the harmless values. Podman's own
default profile allows ``unshare(CLONE_NEWUSER)``, which is why the executor never relies on the
engine's default. The two engines take the profile differently through the same API field: Docker
wants the profile's JSON text in ``seccomp=…`` (its CLI reads the file and inlines it), Podman
(4.x, 5.x) wants a path and fails at create on inline JSON. :func:`seccomp_option` asks the engine
which one it is (``/version``, once per client) and passes the right form. :func:`probe_sandbox`
runs a container with these options and reports what a job could still do; the executor runs it
at start-up (:func:`executor.engine.check_sandbox`) and refuses an engine that ignores the profile.

**OOM.** Podman's ``State.OOMKilled`` is unreliable (false for a real OOM kill), so a container that
exits with 137 (SIGKILL) while a memory limit is set, and that the executor did not kill itself, is
reported as out of memory. A job that SIGKILLs itself is indistinguishable and is reported the same.
"""

from __future__ import annotations

import base64
import errno
import functools
import json
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container, _create_container_args
from docker.types import LogConfig, Mount, Ulimit

from depin.errors import ExecutionError
from depin.market import FailureCode
from depin.outputs import OutputLimits, walk_output
from depin.spec import IMAGE_RE, MIN_CPUS, JobSpec

MIB = 1 << 20
JOB_USER = "65534:65534"
JOB_UID = 65534
JOB_GID = 65534
JOB_HOSTNAME = "depin-job"
# The environment every job starts from (the spec's env is applied over it): nothing from the host
# or the engine (Podman adds container=podman and TERM=xterm, Docker HOME=/), the same for every run.
JOB_ENV = {
    "HOME": "/tmp",
    "HOSTNAME": JOB_HOSTNAME,
    "LANG": "C.UTF-8",
    "SOURCE_DATE_EPOCH": "0",
    "TERM": "dumb",
    "TZ": "UTC",
    "container": "depin",
    # Python's str and bytes hashes (set and dict order of strings) are seeded per process: the most
    # common accidental source of output that differs between two honest runs.
    "PYTHONHASHSEED": "0",
}
# Every resource limit a job gets, whoever started the engine (-1: unlimited); nofile and nproc come
# from ContainerLimits. The values are the kernel's usual defaults, except core dumps (none: a crash
# would write a file into the job's working folder, /out included) and the fixed sigpending and
# msgqueue (the kernel scales them with the machine's memory).
JOB_ULIMITS = {
    "core": 0,
    "cpu": -1,
    "data": -1,
    "fsize": -1,
    "locks": -1,
    "memlock": 8 * 1024 * 1024,
    "msgqueue": 819_200,
    "nice": 0,
    "rss": -1,
    "rtprio": 0,
    "rttime": -1,
    "sigpending": 16_384,
    "stack": 8 * 1024 * 1024,
}
# /etc/hosts and /etc/hostname of every job: the engine's own copy the host's /etc/hosts (Podman)
# and names the container (a per-job, per-executor name), so a job reading them is not reproducible.
JOB_HOSTS = f"127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.0.1\t{JOB_HOSTNAME}\n"
JOB_ETC_FILES = {"hosts": JOB_HOSTS, "hostname": f"{JOB_HOSTNAME}\n"}
ETC_TMPFS_BYTES = 64 * 1024
# /in's tmpfs has the same size and inode count on every machine and for every role (a job sees
# them with `df`); the fetcher caps the bytes written into it (the policy's max_input_mb), so the
# size is only what `df` shows. Before, it was the provider's policy cap plus 1 MiB and the
# verifier's default 1 GiB, and a job printing `df /in` got two digests (found by review).
IN_TMPFS_BYTES = 64 * 1024**3
IN_TMPFS_INODES = 1024
TMP_MB = 64
SHM_MB = 16
PIDS_LIMIT = 128
NOFILE = 1024
NPROC = 4096
DEFAULT_OUTPUT_LIMITS = OutputLimits()
LOG_MAX_SIZE = "1m"
LOGS_TAIL_LINES = 50
# Podman 4.3's compat API sometimes never answers a logs request for a container that just exited
# (about once in a hundred runs here); the log tail is informational, so it gets this long.
LOGS_TIMEOUT = 5.0
LOGS_TAIL_CHARS = 4096
OUT_SLACK_BYTES = MIB
OUT_MAX_INODES = 65_536
WATCH_INTERVAL = 0.25
KILL_GRACE = 10.0
LABEL_MANAGED = "depin.managed"
LABEL_JOB = "depin.job"
LABEL_EXECUTOR = "depin.executor"
LABEL_LEASE = "depin.lease"  # the Redis key of the lease its run holds (the reaper's liveness check)
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}\Z")
SECCOMP_PROFILE = Path(__file__).resolve().with_name("seccomp.json")
# The first program of every job container (executor/depin-init.c, built by tools/build_init.sh;
# see "PID numbers" in the module doc): bind-mounted read-only at INIT_PATH, it forks until a child
# gets PID INIT_LAST_PID, then execs the job's command, whose first child is JOB_FIRST_CHILD_PID on
# every machine. A protocol constant: changing it changes the output of every job that prints a PID.
INIT_NAME = "depin-init"
INIT_BINARY = Path(__file__).resolve().with_name(INIT_NAME)
INIT_PATH = "/dev/depin-init"
INIT_LAST_PID = 64
JOB_FIRST_CHILD_PID = INIT_LAST_PID + 1
# The init's exit status when it did not exec the command. Its report is a file named afresh for
# each run (INIT_MARKER_PREFIX + 32 random hex digits, which the job never learns) in a directory
# the job may traverse but not list or write (prepare_init_report), mounted at INIT_REPORT_DIR: the
# init writes "init" there first (the proof that the runtime started it: a run without it never ran
# the job and is never a result), then one line when it does not exec the command. Under the
# runtime's own /dev, no image content can shadow it (it was in /out, which an image's /out -> /tmp
# symlink moved, found by review).
INIT_STATUS = 127
INIT_MARKER_PREFIX = ".depin-init-"
INIT_REPORT_DIR = "/dev/depin-report"
INIT_PROOF = "init"
# The init's execve (or Go's LookPath checks, which it mirrors) failing is the image's doing, the
# same on every machine (BAD_SPEC), unless its errno is one of these, which only this machine's state
# can cause (InitFailed, retried): before, only a list of image errnos was BAD_SPEC, and an ELF whose
# interpreter is not an ELF file (ELIBBAD, or EIO when shorter than an ELF header) was retried to the
# deadline by every provider (found by review). Nothing of the job runs before the execve, so:
#   EAGAIN        RLIMIT_NPROC counts every process of the job's uid on the host;
#   ENOMEM        the kernel could not allocate (host memory pressure);
#   ENFILE EMFILE the host's file table, or descriptors the runtime left open;
#   ETXTBSY       a host process has the file open for writing (no process of the job exists yet);
#   EFAULT EINTR  a bug or a signal here; ESTALE EUCLEAN EBADMSG ENODEV ENXIO EBUSY: the host's
#                 storage (a stale or corrupt layer, an fs-verity/IMA appraisal failing);
#   ENOSYS EOPNOTSUPP: the host's kernel or file system lacks a feature.
# Everything else comes from the image's files, argv and environment (pinned by the image ID and
# the spec): ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG (the path), EACCES (no execute bit, not a regular
# file, a noexec mount), ENOEXEC (no binary format), ELIBBAD and EISDIR (the ELF interpreter is not
# an ELF file of this machine / is a directory), EINVAL (two PT_INTERP, a bad PT_GNU_PROPERTY or
# file capability), EIO (a program header, PT_INTERP or interpreter header beyond the end of its
# file: binfmt_elf's short read; a host disk failing is EIO too, but that machine is broken and its
# jobs' own reads fail as well), E2BIG (argv and environment over the stack limit, which
# JOB_ULIMITS pins), EPERM (a "capability-dumb" binary: file capabilities with the effective bit
# that the job's empty bounding set cannot grant, which an image layer's security.capability xattr
# carries; a host security module refusing a no-new-privileges transition would refuse every job
# alike, a misconfiguration the provider sees at once). An unknown errno counts as the image's: a hostile image must not find one that
# burns every provider's collateral.
INIT_MACHINE_ERRNOS = frozenset({
    errno.EAGAIN, errno.ENOMEM, errno.ENFILE, errno.EMFILE, errno.ETXTBSY, errno.EFAULT, errno.EINTR,
    errno.ESTALE, errno.EUCLEAN, errno.EBADMSG, errno.ENODEV, errno.ENXIO, errno.EBUSY, errno.ENOSYS, errno.EOPNOTSUPP,
})
PROBE_LABEL = "sandbox-probe"
PROBE_FILE = "probe"
# Each line ``name=value``; an ``unshare*`` value is the exit status of that attempt (0: it worked).
PROBE_SCRIPT = r"""
{
sh -c 'echo "first_child_pid=$$"'
echo "seccomp=$(grep '^Seccomp:' /proc/self/status | cut -f2)"
echo "no_new_privs=$(grep '^NoNewPrivs:' /proc/self/status | cut -f2)"
unshare true 2>/dev/null; echo "unshare=$?"
unshare -U true 2>/dev/null; echo "unshare_user=$?"
unshare -n true 2>/dev/null; echo "unshare_net=$?"
unshare -Urn true 2>/dev/null; echo "unshare_user_net=$?"
} > /out/probe
"""
PROBE_EXPECTED = {
    "first_child_pid": (str(JOB_FIRST_CHILD_PID), f"a job's first child got PID {{value}}, not {JOB_FIRST_CHILD_PID} (the job's init did not pin PID numbers)"),
    "seccomp": ("2", "seccomp is not in filter mode (Seccomp: {value}, expected 2)"),
    "no_new_privs": ("1", "no-new-privileges is not set (NoNewPrivs: {value})"),
}
PROBE_DENIED = {
    "unshare": "unshare(0) is allowed (the project's profile denies unshare outright; the engine's own default does not)",
    "unshare_user": "a user namespace could be created (unshare -U)",
    "unshare_net": "a network namespace could be created (unshare -n)",
    "unshare_user_net": "user and network namespaces could be created (unshare -Urn)",
}

RunStatus = Literal["exited", "oom", "timeout", "output_too_large"]


class ImageUnavailable(ExecutionError):
    """The spec's image is not available locally under its digest (and may not be pulled)."""

    code = FailureCode.IMAGE_UNAVAILABLE


class ContainerEngineError(ExecutionError):
    """The engine refused or failed an operation (not the job's fault): the caller may retry."""


class InitFailed(ContainerEngineError):
    """The job's init (:data:`INIT_BINARY`) is missing here, or could not prepare the job's PID
    numbers (the runtime used more than :data:`INIT_LAST_PID`, a fork failed): this machine's
    fault, never the job's; the caller may retry."""


class CommandRefused(ContainerEngineError):
    """The image cannot execute the job's command (the init's execve failed with one of
    an errno not in :data:`INIT_MACHINE_ERRNOS`, or no PATH entry holds it): the job's fault, ``BAD_SPEC``."""


class ContainerGone(ContainerEngineError):
    """The container vanished under a run (removed by something else): its exit code is unknown."""


@contextmanager
def _engine_call(what: str) -> Iterator[None]:
    """Turns what the docker SDK raises when the engine fails into :class:`ContainerEngineError`
    ("`what`: why", one line): its own errors (:class:`~docker.errors.DockerException`) and those of
    ``requests`` that it lets through when the engine's socket goes away or a call times out
    (:class:`~requests.exceptions.RequestException`, no DockerException). Anything else, such as a
    more specific error raised inside the block, passes through unchanged."""
    try:
        yield
    except DockerException as exc:  # first: an APIError is a RequestException too
        raise ContainerEngineError(f"{what}: {_one_line(exc)}") from exc
    except requests.exceptions.RequestException as exc:
        raise ContainerEngineError(f"{what}: the engine does not answer ({_transport_error(exc)})") from exc


# How the OCI runtimes (runc, crun) word a command that cannot be executed.
_EXEC_ERRORS = ("executable file not found", "no such file or directory", "permission denied", "exec format error", "file name too long")


def refused_command(exc: BaseException) -> bool:
    """Whether a :class:`ContainerEngineError` says the engine refused to start the job's command
    (the job's fault: ``BAD_SPEC``). Read in the engine's whole answer (the error's DockerException
    cause), not the one-line message cut at 500 characters, which a long command path pushes the
    reason out of (runc repeats the path; found by review, stop 36). A transport error (the engine's
    socket gone) has no such cause and never reads as the job's (:func:`_transport_error`). Since
    the engine starts the job's init rather than the command, the command's refusal comes from the
    init (:class:`CommandRefused`); :class:`InitFailed` is never the job's."""
    if isinstance(exc, (CommandRefused, InitFailed)):
        return isinstance(exc, CommandRefused)
    cause = exc.__cause__
    text = (str(cause) if isinstance(cause, DockerException) else str(exc)).lower()
    if INIT_PATH in text:  # the engine could not start the init itself (e.g. its mount): never the job's
        return False
    return any(s in text for s in _EXEC_ERRORS)


def _one_line(exc: BaseException | str, limit: int = 500) -> str:
    return " ".join(str(exc).split())[:limit] or type(exc).__name__


def _transport_error(exc: BaseException) -> str:
    """The error's type and the errno name below it (``ConnectionError, ENOENT``), never its text:
    ``No such file or directory`` from a vanished socket must not read as an exec error of the job
    (:func:`executor.execute._is_exec_error`). The whole chain stays on the exception's cause."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        err = todo.pop(0)
        if not isinstance(err, BaseException) or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, OSError) and isinstance(err.errno, int):
            return f"{type(exc).__name__}, {errno.errorcode.get(err.errno, err.errno)}"
        todo.extend([*err.args, err.__cause__, err.__context__])
    return type(exc).__name__


@dataclass(frozen=True)
class RunResult:
    """How one container run ended.

    ``status`` is ``exited`` (the job's own exit, whatever its code), ``oom``, ``timeout`` (killed at
    the deadline) or ``output_too_large`` (killed by the output watcher, plain-folder mode only; in
    tmpfs mode the caller measures the output after exit). ``exit_code`` is None when killed by us.
    """

    status: RunStatus
    exit_code: int | None
    logs_tail: str
    duration: float
    container_name: str
    oom_killed_flag: bool = False


@dataclass(frozen=True)
class OutputDir:
    """A job's ``/out`` host folder and how its size is capped (``tmpfs`` or ``watch``)."""

    path: Path
    max_bytes: int
    mode: Literal["tmpfs", "watch"]
    tmpfs_bytes: int = 0


@dataclass(frozen=True)
class ContainerLimits:
    """Executor-side knobs (not in the spec). Defaults suit small jobs."""

    pids_limit: int = PIDS_LIMIT
    tmp_mb: int = TMP_MB
    shm_mb: int = SHM_MB
    nofile: int = NOFILE
    nproc: int = NPROC
    log_max_size: str = LOG_MAX_SIZE
    extra_labels: dict[str, str] = field(default_factory=dict)


DEFAULT_CONTAINER_LIMITS = ContainerLimits()


# --- seccomp --------------------------------------------------------------------------------------

_engine_kinds: weakref.WeakKeyDictionary[docker.DockerClient, str] = weakref.WeakKeyDictionary()


@functools.cache
def seccomp_profile_json() -> str:
    """The job seccomp profile (``executor/seccomp.json``) as compact JSON text."""
    return json.dumps(json.loads(SECCOMP_PROFILE.read_text()), separators=(",", ":"))


def ping_headers(client: docker.DockerClient) -> Mapping[str, str]:
    """The headers of the engine's ``/_ping`` answer: ``Api-Version`` from both engines, ``Server``
    (``Docker/27.1.0 (linux)``) from Docker, ``Libpod-Api-Version`` from Podman. A cheap request,
    unlike ``/version``, for which Podman runs the package manager (``dpkg-query``) eight times."""
    api = client.api
    with _engine_call("cannot ping the engine"):
        response = api.get(f"{api.base_url}/_ping", timeout=api.timeout)
        response.raise_for_status()
    return response.headers


def engine_kind(client: docker.DockerClient) -> Literal["docker", "podman"]:
    """``podman`` when the engine's ``/_ping`` answer carries Podman's ``Libpod-Api-Version``
    header, else ``docker``; asked once per client."""
    kind = _engine_kinds.get(client)
    if kind is None:
        kind = "podman" if "Libpod-Api-Version" in ping_headers(client) else "docker"
        _engine_kinds[client] = kind
    return "podman" if kind == "podman" else "docker"


def seccomp_option(client: docker.DockerClient) -> str:
    """The ``security_opt`` entry that applies the job profile on this engine: the profile's JSON
    text for Docker, its path for Podman (see the module doc)."""
    if engine_kind(client) == "podman":
        return f"seccomp={SECCOMP_PROFILE}"
    return f"seccomp={seccomp_profile_json()}"


def container_name(chain_id: int, job_id: int, role: str = "provider") -> str:
    """The deterministic container name of a job run: ``depin-job-<chainid>-<jobid>-<role>``."""
    name = f"depin-job-{int(chain_id)}-{int(job_id)}-{role}"
    if not NAME_RE.match(name):
        raise ValueError(f"bad container name {name!r}")
    return name


# --- images -------------------------------------------------------------------------------------


def check_image(client: docker.DockerClient, image: str, *, allowed_registries: Sequence[str] = ()) -> str:
    """Returns the local image ID (``sha256:<hex>``) of the spec's `image` (``repo@sha256:<hex>``).

    The image matches when its ID or one of its RepoDigests is the pinned digest. Pulls only when
    the repository's registry (its first path component, e.g. ``registry.example:5000``) is in
    `allowed_registries`. Raises :class:`ImageUnavailable` otherwise.
    """
    match = IMAGE_RE.match(image)
    if match is None:
        raise ImageUnavailable(f"{image!r} is not repository@sha256:<64 hex>")
    digest = "sha256:" + match["digest"]
    found = _local_image_by_digest(client, match["repo"], digest)
    if found is not None:
        return found
    registry = match["repo"].split("/", 1)[0]
    if registry in allowed_registries and "/" in match["repo"]:
        with _engine_call(f"cannot pull {image}"):
            try:
                client.api.pull(f"{match['repo']}@{digest}")
            except DockerException as exc:
                raise ImageUnavailable(f"pulling {image} from {registry} failed: {_one_line(exc)}") from exc
        found = _local_image_by_digest(client, match["repo"], digest)
        if found is not None:
            return found
        raise ImageUnavailable(f"{registry} served {match['repo']} but not under digest {digest}")
    raise ImageUnavailable(
        f"no local image has ID {digest} (wanted by {image}); this executor pulls from no registry, so the "
        "provider must build or load that exact image (e.g. podman load)"
    )


# What image_config_fault lets an image's Env, Entrypoint and WorkingDir take of what execve takes
# (the kernel's MAX_ARG_STRLEN at 4 KiB pages per string, with its NUL; in all, a quarter of the
# 8 MiB stack that JOB_ULIMITS pins is 2 MiB, of which the spec, JOB_ENV and the init's own
# arguments take little), and of what chdir takes (PATH_MAX, NAME_MAX).
MAX_ARG_STRLEN = 32 * 4096
IMAGE_ARGS_MAX = 1024 * 1024
PATH_MAX = 4096
NAME_MAX = 255

# The config of every image check_image found (by image ID, which is the config's sha256, so it
# cannot change): image_config_fault reads it without another engine request.
_IMAGE_CONFIGS: dict[str, dict[str, Any]] = {}


def _found(img: Any) -> str:
    _IMAGE_CONFIGS[img.id] = dict(img.attrs.get("Config") or {})
    return str(img.id)


def image_config_fault(image_id: str) -> str | None:
    """Why the image's own config (of :func:`check_image`'s last look at `image_id`) makes a job
    that can never run as a job may, or None. Each is the image's doing, the same on every engine
    and machine (its ID pins the config), and the engine refuses none before it creates or starts
    the container, where a refusal reads as the engine failing: a provider would retry it to its
    deadline and be slashed (found by review, stop 36). So they are ``BAD_SPEC``:

    - ``VOLUME``s: the engine makes each a writable volume on the host disk, outside the read-only
      root, the tmpfs caps and the output cap (a job could fill the provider's disk);
    - a working directory that is not absolute, or any NUL in it, in ``Env``, ``Entrypoint`` or ``Cmd``
      (the OCI runtime refuses them: they are C strings);
    - a ``StopSignal`` that is no signal (the engine refuses to create the container);
    - an ``Env`` or ``Entrypoint`` string of :data:`MAX_ARG_STRLEN` bytes or more (with its NUL, over
      the kernel's limit on 4 KiB-page machines), or all of them over :data:`IMAGE_ARGS_MAX`: the
      runtime's own execve of the init fails (E2BIG) after the container started, so the run has no
      proof of the init (an engine failure; it was a result, exit 1, found by review); a
      ``WorkingDir`` of PATH_MAX bytes or a longer component than NAME_MAX (the runtime's chdir
      fails). Pinned at 4 KiB pages so that a 64 KiB-page machine refuses the same images.
      (The image's ``Cmd`` is never used: the spec's command replaces it.)"""
    config = _IMAGE_CONFIGS.get(image_id)
    if config is None:
        return None
    if config.get("Volumes"):
        return f"the image declares volumes ({', '.join(sorted(map(str, config['Volumes'])))[:200]}): a job's writes there would escape its caps"
    workdir = config.get("WorkingDir") or ""
    if workdir and (not str(workdir).startswith("/") or "\x00" in str(workdir)):
        return f"the image's working directory {str(workdir)[:100]!r} is not an absolute path"
    if len(str(workdir).encode()) >= PATH_MAX or any(len(part.encode()) > NAME_MAX for part in str(workdir).split("/")):
        return f"the image's working directory {str(workdir)[:100]!r}... is longer than the kernel takes"
    total = len(str(workdir).encode()) + 1
    for key in ("Env", "Entrypoint", "Cmd"):
        items = config.get(key) or []
        items = [items] if isinstance(items, str) else list(items)
        if any("\x00" in str(item) for item in items):
            return f"the image's {key} holds a NUL character"
        if key == "Cmd":
            continue
        sizes = [len(str(item).encode("utf-8", "surrogatepass")) + 1 for item in items]
        if any(size > MAX_ARG_STRLEN for size in sizes):
            return f"the image's {key} holds a string of {max(sizes) - 1} bytes: the kernel takes at most {MAX_ARG_STRLEN - 1} in one argument"
        total += sum(sizes) + 8 * len(sizes)
    if total > IMAGE_ARGS_MAX:
        return f"the image's environment and entrypoint take {total} bytes: a job's arguments and environment may take at most {IMAGE_ARGS_MAX}"
    stop = config.get("StopSignal")
    if stop and not _valid_signal(str(stop)):
        return f"the image's stop signal {str(stop)[:40]!r} is no signal"
    return None


def _valid_signal(text: str) -> bool:
    """Whether the image's StopSignal names a signal: a number below NSIG in ASCII digits ("²" is
    a digit to str.isdigit() that int() refuses, and 5,000 digits are past int()'s limit: either
    raised out of execute(), and the run was given up; found by review, stop 55), or a name."""
    if text.isdigit():
        return text.isascii() and len(text) <= 3 and 0 < int(text) < signal.NSIG
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    return name in signal.Signals.__members__ or name.startswith(("SIGRTMIN", "SIGRTMAX"))


def _local_image_by_digest(client: docker.DockerClient, repo: str, digest: str) -> str | None:
    with _engine_call(f"cannot inspect image {digest}"):
        try:
            img = client.images.get(digest)
        except ImageNotFound:
            img = None
    if img is not None and img.id == digest:
        return _found(img)
    with _engine_call(f"cannot inspect image {repo}@{digest}"):
        try:
            img = client.images.get(f"{repo}@{digest}")
        except ImageNotFound:
            return None
        except APIError as exc:
            if exc.status_code is not None and exc.status_code < 500:  # a reference the engine will not look up
                return None
            raise
    if any(d.endswith("@" + digest) for d in img.attrs.get("RepoDigests") or []):
        return _found(img)
    return None


# What the engine mounts, or the runtime makes, at a fixed path of every job container's root: each
# must be absent from the image (the runtime then creates it), or of the kind the mount needs. A
# directory target that the image has as a file, FIFO or device (``RUN touch /out``), a file target
# it has as a directory, or a directory on the way that is a file, makes the OCI runtime fail the
# start before the job's init runs ("not a directory"), which read as the engine failing: every
# provider retried it to the deadline and was slashed (found by review). image_mount_fault reads
# the image's types there before its first run. "dir" and "file" may not be symlinks (the init
# refuses a symlink on the way to any of the job's mounts anyway; the runtime refuses one at
# /proc, /sys or /dev); "linkfile" is a file the engine reads to find the job's user (Podman bind-
# mounts a copy with the user added), which may be a symlink to a file (Nix-built images have
# them). What lies under /dev is hidden by the runtime's own /dev tmpfs (/dev/shm, INIT_PATH,
# INIT_REPORT_DIR). container_options' targets are checked against this map by the tests.
MountKind = Literal["dir", "file", "linkfile", "workdir", "parent"]
ROOT_MOUNT_KINDS: dict[str, MountKind] = {
    "/in": "dir", "/out": "dir", "/tmp": "dir", "/var/tmp": "dir", "/run": "dir",
    "/proc": "dir", "/sys": "dir", "/dev": "dir",
    "/etc/hosts": "file", "/etc/hostname": "file", "/etc/resolv.conf": "linkfile",
    "/etc/passwd": "linkfile", "/etc/group": "linkfile",
}
# Go's os.FileMode type bits, in which both engines' archive stat gives a path's mode.
_GO_MODE_DIR = 1 << 31
_GO_MODE_SYMLINK = 1 << 27
_GO_MODE_TYPE = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)
# The verdict of image_mount_fault for each image ID it checked (an ID pins the image's files).
_MOUNT_FAULTS: dict[str, str | None] = {}
# Engine requests image_mount_fault made (create, one stat per path, remove), for the README's count.
MOUNT_CHECK_REQUESTS = [0]


def _path_stat(client: docker.DockerClient, container_id: str, path: str) -> dict[str, Any] | None:
    """The engine's stat of `path` in the (created, never started) container's root filesystem, or
    None when nothing is there. One ``HEAD /containers/{id}/archive`` request: the stat only, no
    archive. A symlink's ``mode`` has the symlink bit and its ``linkTarget`` is the resolved path
    (Docker stats the link itself; Podman answers 404 with the stat for a dangling one)."""
    MOUNT_CHECK_REQUESTS[0] += 1
    with _engine_call(f"cannot stat {path} in the image"):
        resp = client.api.head(
            client.api._url("/containers/{0}/archive", container_id), params={"path": path}, timeout=client.api.timeout
        )
    header = resp.headers.get("X-Docker-Container-Path-Stat")
    if header:
        try:
            found = json.loads(base64.b64decode(header))
        except (ValueError, TypeError) as exc:
            raise ContainerEngineError(f"the engine's stat of {path} is unreadable: {_one_line(header, 100)}") from exc
        if isinstance(found, dict) and isinstance(found.get("mode"), int):
            return found
        raise ContainerEngineError(f"the engine's stat of {path} has no mode: {_one_line(str(found), 100)}")
    if resp.status_code == 404:
        return None
    raise ContainerEngineError(f"cannot stat {path} in the image: {resp.status_code} {_one_line(resp.text, 200)}")


def _kind_name(mode: int) -> str:
    if mode & _GO_MODE_SYMLINK:
        return "a symlink"
    if mode & _GO_MODE_DIR:
        return "a directory"
    if mode & _GO_MODE_TYPE:
        return "a device, FIFO or socket"
    return "a regular file"


def _mount_paths(workdir: str) -> dict[str, MountKind]:
    """Each path to stat, parents first, with its kind ("parent": a directory on the way, which may
    be a symlink to one, as the working directory may; the init refuses a symlink on the way to a
    mount target)."""
    wanted: dict[str, MountKind] = dict(ROOT_MOUNT_KINDS)
    if workdir.startswith("/") and workdir.rstrip("/"):
        wanted.setdefault(os.path.normpath(workdir), "workdir")
    paths: dict[str, MountKind] = {}
    for path in sorted(wanted, key=lambda p: (p.count("/"), p)):
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            paths.setdefault("/" + "/".join(parts[:i]), "parent")
        paths[path] = wanted[path]
    return dict(sorted(paths.items(), key=lambda kv: (kv[0].count("/"), kv[0])))


def image_mount_fault(client: docker.DockerClient, image_id: str, *, name: str, labels: dict[str, str]) -> str | None:
    """Why the image's own files at the paths of :data:`ROOT_MOUNT_KINDS` (and its working
    directory) keep the engine from starting any job container of it, or None: the same on every
    engine and machine, so ``BAD_SPEC``. Checked once per image ID in this process (the first run
    of an image costs a create, a stat per path and a remove more: :data:`MOUNT_CHECK_REQUESTS`)
    in a container created under the job's `name` and `labels` (the reaper's rules cover it), never
    started and without the job's mounts, whose root is the image's. Raises
    :class:`ContainerEngineError` when the engine fails (nothing is cached then)."""
    if image_id in _MOUNT_FAULTS:
        return _MOUNT_FAULTS[image_id]
    _image_config(client, image_id)
    workdir = str(_IMAGE_CONFIGS.get(image_id, {}).get("WorkingDir") or "")
    options = {
        "image": image_id, "name": name, "labels": {**labels, LABEL_MANAGED: "true"}, "entrypoint": [INIT_PATH], "command": [],
        "network_mode": "none", "detach": True,
    }
    MOUNT_CHECK_REQUESTS[0] += 2
    container = _create(client, options)
    try:
        fault = _check_mount_paths(client, container.id, _mount_paths(workdir))
    finally:
        remove_container(client, container.id)
    _MOUNT_FAULTS[image_id] = fault
    return fault


def _check_mount_paths(client: docker.DockerClient, container_id: str, paths: dict[str, MountKind]) -> str | None:
    missing: list[str] = []
    for path, kind in paths.items():
        if any(path.startswith(m + "/") for m in missing):
            continue  # the runtime creates the whole way
        found = _path_stat(client, container_id, path)
        if found is None:
            missing.append(path)
            continue
        mode = int(found["mode"])
        if mode & _GO_MODE_SYMLINK:
            if kind in ("dir", "file"):
                return f"the image has a symlink on the path {path!r}, where every job gets a mount of its own: the engine would mount it elsewhere"
            target = str(found.get("linkTarget") or "")
            resolved = _path_stat(client, container_id, target) if target.startswith("/") and target != path else None
            if resolved is None:
                missing.append(path)  # dangling: the runtime follows it and creates its target
                continue
            mode = int(resolved["mode"])
        is_dir = bool(mode & _GO_MODE_DIR) and not mode & (_GO_MODE_TYPE & ~_GO_MODE_DIR)
        is_file = not mode & _GO_MODE_TYPE
        if kind in ("dir", "workdir", "parent") and not is_dir:
            what = {"dir": "a directory to mount on", "workdir": "a directory (the image's working directory)"}.get(kind, "a directory on the way")
            return f"the image has {_kind_name(mode)} at {path!r}, where the engine needs {what}: no job container could start"
        if kind in ("file", "linkfile") and not is_file:
            return f"the image has {_kind_name(mode)} at {path!r}, where the engine needs a regular file: no job container could start"
    return None


# --- the output folder --------------------------------------------------------------------------


def _mounts_under(path: Path) -> list[Path]:
    """Mount points at or below `path` (deepest first), from /proc/self/mountinfo."""
    prefix = str(path.resolve())
    found = []
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                point = line.split()[4].replace("\\040", " ")
                if point == prefix or point.startswith(prefix + "/"):
                    found.append(Path(point))
    except OSError:
        return []
    return sorted(found, key=lambda p: len(str(p)), reverse=True)


def unmount_all_under(path: Path) -> None:
    """Unmounts every mount at or below `path` (leftovers of a crashed run). Lazy (``-l``) so that a
    busy mount cannot block cleanup."""
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)


def prepare_output_dir(path: Path, max_bytes: int) -> OutputDir:
    """Creates the job's ``/out`` folder at `path`, capped at `max_bytes` (see the module doc):
    a tmpfs of ``max_bytes + OUT_SLACK_BYTES`` owned by the job user when we may mount, else a
    plain folder that the run loop watches."""
    path = Path(path)
    unmount_all_under(path)
    path.mkdir(parents=True, exist_ok=True)
    size = max_bytes + OUT_SLACK_BYTES
    if os.geteuid() == 0:
        opts = f"size={size},nr_inodes={OUT_MAX_INODES},mode=0700,uid={JOB_UID},gid={JOB_GID},nosuid,nodev"
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "depin-out", str(path)], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return OutputDir(path, max_bytes, "tmpfs", size)
    if os.geteuid() == 0:
        os.chown(path, JOB_UID, JOB_GID)
    else:
        os.chmod(path, 0o777)  # the job user must be able to write; only the job's container sees it
    return OutputDir(path, max_bytes, "watch")


def output_cap_mountable() -> bool:
    """Whether :func:`prepare_output_dir` can make ``/out`` a size-capped tmpfs (it needs root):
    else the output cap is the run loop's watch, where a job that writes past the cap and then
    deletes it is OUTPUT_TOO_LARGE or not depending on when the watch looked, and a tmpfs executor
    would have refused the write (ENOSPC). Two such executors can disagree on one job's result."""
    return os.geteuid() == 0


def _private_tmpfs(path: Path, source: str, size: int, mode: str, inodes: int = 1024) -> bool:
    """Mounts a tmpfs named `source` of `size` bytes and `inodes` inodes on `path` when we may
    (root); True if mounted. Both are explicit: tmpfs's default inode count scales with the
    machine's memory, which a job would see with ``df -i``."""
    if os.geteuid() != 0:
        return False
    opts = f"size={size},nr_inodes={inodes},mode={mode},nosuid,nodev,noatime"
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, source, str(path)], capture_output=True, text=True, check=False)
    return proc.returncode == 0


def prepare_input_dir(path: Path) -> Path:
    """Creates the job's ``/in`` folder at `path` before its inputs are fetched into it: a tmpfs
    named ``depin-in`` of ``IN_TMPFS_BYTES`` when we may mount (root), so that the job's
    ``/proc/self/mountinfo`` shows ``/ /in ... tmpfs depin-in`` instead of the host path of the
    work folder; else a plain folder (whose host path a job can read there)."""
    path = Path(path)
    unmount_all_under(path)
    path.mkdir(parents=True, exist_ok=True)
    _private_tmpfs(path, "depin-in", IN_TMPFS_BYTES, "0755", IN_TMPFS_INODES)
    os.chmod(path, 0o755)
    return path


def prepare_etc_dir(path: Path) -> Path:
    """The job's ``/etc/hosts`` and ``/etc/hostname`` (:data:`JOB_ETC_FILES`) and a copy of the job
    init (:data:`INIT_BINARY`, as ``depin-init``), in a small tmpfs named ``depin-etc`` at `path`
    when we may mount (root; neutral in ``mountinfo``: a bind mount of the init from the package
    folder showed its host path and disk there), else a plain folder. :func:`container_options`
    mounts them read-only over the engine's own copies and at :data:`INIT_PATH`. Raises
    :class:`InitFailed` without the init."""
    path = Path(path)
    unmount_all_under(path)
    path.mkdir(parents=True, exist_ok=True)
    _private_tmpfs(path, "depin-etc", ETC_TMPFS_BYTES, "0755")
    for name, text in JOB_ETC_FILES.items():
        (path / name).write_text(text)
        os.chmod(path / name, 0o644)
    shutil.copyfile(check_init(), path / INIT_NAME)
    os.chmod(path / INIT_NAME, 0o755)
    return path


def release_output_dir(out: OutputDir | Path) -> None:
    """Unmounts the output tmpfs (its content is gone afterwards: archive it first)."""
    unmount_all_under(out.path if isinstance(out, OutputDir) else Path(out))


def output_size(path: Path, limits: OutputLimits = DEFAULT_OUTPUT_LIMITS) -> int:
    """Apparent size in bytes of the regular files below `path` (what the result archive holds),
    counted exactly by :func:`depin.outputs.walk_output`: a tree beyond `limits` (depth, path
    length, entries) raises :class:`~depin.outputs.InvalidOutput` rather than being undercounted.
    Names that collide where case does not count are left to the finished output's walk
    (:func:`depin.outputs.build_archive`): a job may hold both for a moment while it runs."""
    return walk_output(path, limits, collisions=False).total_bytes


# --- running ------------------------------------------------------------------------------------


def container_options(
    spec: JobSpec,
    *,
    image_id: str,
    name: str,
    labels: dict[str, str],
    inputs_dir: Path,
    output: OutputDir,
    seccomp: str | None,
    limits: ContainerLimits = ContainerLimits(),
    etc_dir: Path | None = None,
    report_dir: Path,
    init_marker: str,
) -> dict:
    """The keyword arguments of ``client.containers.create`` for a hardened job container.

    `seccomp` is the engine's form of the profile (:func:`seccomp_option`); None leaves the engine's
    default profile in force (only the start-up probe's own tests do that). `etc_dir` (from
    :func:`prepare_etc_dir`) replaces the engine's ``/etc/hosts`` and ``/etc/hostname``. The
    container starts the job's init (:data:`INIT_PATH`), which execs the image's entrypoint (as
    :func:`check_image` found it) followed by the spec's command; `init_marker` is the name of its
    report in `report_dir` (:func:`prepare_init_report`), mounted at :data:`INIT_REPORT_DIR`."""
    res = spec.resources
    # The same limit whether /out is a tmpfs (whose pages the cgroup is charged for) or a watched
    # folder: a job can read its memory limit, and a different one changes where it runs out.
    memory = res.memory_mb * MIB + output.max_bytes + OUT_SLACK_BYTES
    tmp = f"rw,nosuid,nodev,size={limits.tmp_mb}m,mode=1777"
    etc_mounts = [] if etc_dir is None else [Mount(f"/etc/{n}", str((Path(etc_dir) / n).resolve()), type="bind", read_only=True) for n in JOB_ETC_FILES]
    tmpfs = {"/tmp": tmp, "/var/tmp": tmp, "/run": "rw,nosuid,nodev,noexec,size=1m,mode=755"}
    mounts = [
        Mount("/in", str(Path(inputs_dir).resolve()), type="bind", read_only=True),
        Mount("/out", str(output.path.resolve()), type="bind", read_only=False),
        *etc_mounts,
        # Under /dev, the runtime's own tmpfs: no image content there can clash with it. From
        # etc_dir's tmpfs (prepare_etc_dir), so that the mount table shows no host path.
        Mount(INIT_PATH, str(Path(etc_dir).resolve() / INIT_NAME if etc_dir is not None else INIT_BINARY), type="bind", read_only=True),
        Mount(INIT_REPORT_DIR, str(Path(report_dir).resolve()), type="bind", read_only=False),
    ]
    # Every place the engine mounts something for the job: the init refuses a symlink on the way to
    # any of them (the image's; the runtime follows it and mounts elsewhere, or on an engine's whim).
    targets = sorted({*tmpfs, *(m["Target"] for m in mounts), "/dev/shm"})
    return {
        "image": image_id,
        # The engine would put the image's ENTRYPOINT before the command; the init is the
        # entrypoint now, so it gets the image's in front of the spec's command itself.
        "entrypoint": [INIT_PATH],
        "command": [str(INIT_LAST_PID), f"{INIT_REPORT_DIR}/{init_marker}", *targets, "--", *image_entrypoint(image_id), *spec.command],
        "environment": {**JOB_ENV, **spec.env},
        "name": name,
        "labels": {**limits.extra_labels, **labels, LABEL_MANAGED: "true"},
        "user": JOB_USER,
        "hostname": JOB_HOSTNAME,  # not the random container ID: a job that prints it stays reproducible
        "cgroupns": "private",  # /proc/self/cgroup shows "/" paths, not the engine's per-container cgroup
        # An image's HEALTHCHECK would have the engine run its command inside the job's container,
        # on the job's CPU and pid budget and on a schedule that differs between machines.
        "healthcheck": {"test": ["NONE"]},
        "network_mode": "none",
        "ipc_mode": "private",
        "read_only": True,
        "tmpfs": tmpfs,
        "shm_size": limits.shm_mb * MIB,
        "mounts": mounts,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges", *([seccomp] if seccomp is not None else [])],
        "privileged": False,
        "pids_limit": limits.pids_limit,
        "mem_limit": memory,
        "memswap_limit": memory,
        # Never 0, which the engine reads as no CPU limit (the spec's MIN_CPUS already forbids it).
        "nano_cpus": max(int(res.cpus * 1_000_000_000), int(MIN_CPUS * 1_000_000_000)),
        "ulimits": [Ulimit(name=n, soft=v, hard=v) for n, v in {**JOB_ULIMITS, "nofile": limits.nofile, "nproc": limits.nproc}.items()],
        "log_config": LogConfig(type="json-file", config={"max-size": limits.log_max_size}),
        "stdin_open": False,
        "tty": False,
        "auto_remove": False,
        "detach": True,
    }


def new_init_marker() -> str:
    """A fresh name for the init's report (see :data:`INIT_STATUS`)."""
    return INIT_MARKER_PREFIX + secrets.token_hex(16)


def prepare_init_report(path: Path) -> str:
    """Makes `path` afresh the directory mounted at :data:`INIT_REPORT_DIR`: mode 0711 (the job's
    user may reach a file it can name, but neither list nor create one), holding one empty file
    under a fresh name (returned) that only the job's user may write. The init writes its report
    there; the job, which never learns the name, cannot remove, write or forge it."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.chmod(path, 0o711)
    marker = new_init_marker()
    fd = os.open(path / marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.close(fd)
    if os.geteuid() == 0:
        os.chown(path / marker, JOB_UID, JOB_GID)
    else:
        os.chmod(path / marker, 0o666)  # the job user is another user (or a sub-user of a rootless engine)
    return marker


def image_entrypoint(image_id: str) -> list[str]:
    """The image's ``ENTRYPOINT`` from its config as :func:`check_image` read it (none if unread)."""
    entry = _IMAGE_CONFIGS.get(image_id, {}).get("Entrypoint")
    if not entry:
        return []
    return [entry] if isinstance(entry, str) else [str(e) for e in entry]


def check_init() -> Path:
    """The job's init binary (:data:`INIT_BINARY`); raises :class:`InitFailed` when it is missing
    or not executable by the job's user, before any container is made."""
    try:
        mode = INIT_BINARY.stat().st_mode
    except OSError as exc:
        raise InitFailed(f"the job init {INIT_BINARY} is missing ({type(exc).__name__}): build it with `bash tools/build_init.sh` (make setup does)") from None
    if not stat.S_ISREG(mode) or mode & 0o005 != 0o005:
        raise InitFailed(f"the job init {INIT_BINARY} is not a file that every user may read and execute (mode {mode:o}): rebuild it with `bash tools/build_init.sh`")
    return INIT_BINARY


def _image_config(client: docker.DockerClient, image_id: str) -> None:
    """Reads the image's config into the cache :func:`image_entrypoint` uses, if not there yet."""
    if image_id in _IMAGE_CONFIGS:
        return
    with _engine_call(f"cannot inspect image {image_id}"):
        _IMAGE_CONFIGS[image_id] = dict(client.api.inspect_image(image_id).get("Config") or {})


def init_failure(report: Path, command: Sequence[str], targets: Sequence[str] = (), logs: str = "") -> ContainerEngineError | None:
    """What the job's init reported in `report` (see :data:`INIT_STATUS`): None when it started the
    command (the run is the job's); :class:`CommandRefused` when the image cannot execute `command`
    (the spec's argv, entrypoint first) or has a symlink on the way to one of the mount `targets`;
    else :class:`InitFailed`, also when the init never ran (no proof: the runtime could not start
    it, e.g. an argument list over the kernel's limit; `logs` is the container's output)."""
    try:
        with open(report, "rb") as fh:
            lines = fh.read(256).decode("ascii", errors="replace").split("\n")
    except OSError as exc:
        return InitFailed(f"cannot read the job init's report: {exc}")
    if lines[0] != INIT_PROOF:
        return InitFailed(f"the container runtime never started the job init (no proof that it ran): {_one_line(logs, 300) or 'no output'}")
    text = lines[1].strip() if len(lines) > 1 else ""
    if not text:
        return None
    kind, _, value = text.partition(" ")
    number = int(value) if value.isdigit() else -1
    name = _one_line(repr(command[0]) if command else "''", 200)
    if kind == "notfound":
        return CommandRefused(f"{name}: executable file not found in $PATH")
    if kind == "mount" and 0 <= number < len(targets):
        return CommandRefused(
            f"the image has a symlink on the path {targets[number]!r}, where every job gets a mount of its own: the engine would mount it elsewhere"
        )
    if kind == "exec" and 0 < number < 4096 and number not in INIT_MACHINE_ERRNOS:
        return CommandRefused(f"{name}: {os.strerror(number)} ({errno.errorcode.get(number, number)})")
    if kind == "exec":
        return InitFailed(f"the job init could not start {name} here: execve failed ({errno.errorcode.get(number, number)})")
    if kind == "pids":
        return InitFailed(
            f"the container runtime used PIDs up to {number} of the job's namespace before the job started (the job init "
            f"pins them at {INIT_LAST_PID}): its PID numbers would differ from other machines'"
        )
    if kind == "fork":
        return InitFailed(f"the job init could not fork ({errno.errorcode.get(number, number)})")
    if kind == "pid1":
        return InitFailed(f"the job init is PID {number} of its namespace, not 1: the container does not have its own PID namespace")
    return InitFailed(f"the job init failed: {_one_line(text, 100)}")


def remove_container(client: docker.DockerClient, name_or_id: str) -> bool:
    """Force-removes a container (killing it if running); True if this call removed one (False:
    there was none, or another removal of it was under way)."""
    with _engine_call(f"cannot remove container {name_or_id}"):
        try:
            client.api.remove_container(name_or_id, force=True, v=True)
            return True
        except NotFound:
            return False
        except APIError as exc:
            if _no_such_container(exc):
                return False
            refused = exc
        # Podman answers 500 while a removal is already in progress; wait for it.
        for _ in range(50):
            time.sleep(0.1)
            try:
                client.api.inspect_container(name_or_id)
            except NotFound:
                return False  # removed, by that other removal (a run must not take it for its own)
            except APIError:
                continue
        raise refused


def _create_once(client: docker.DockerClient, options: dict) -> Container:
    """``client.containers.create(**options)`` without the inspect request that follows it there:
    every engine request costs Podman's API service CPU that the jobs could use."""
    kwargs = dict(options, version=client.api._version)
    resp = client.api.create_container(**_create_container_args(kwargs))
    return client.containers.prepare_model({"Id": resp["Id"], "Name": options["name"]})


def _create(client: docker.DockerClient, options: dict) -> Container:
    """Creates the container; a stale one of the same name (a crashed attempt whose cleanup did not
    run, or a lost race with another creator) is removed first and the creation retried once."""
    what = f"cannot create container {options['name']}"
    with _engine_call(what):
        try:
            return _create_once(client, options)
        except APIError as exc:
            if exc.status_code != 409 and "already in use" not in str(exc):
                raise
    remove_container(client, options["name"])
    with _engine_call(what):
        return _create_once(client, options)


def _logs_tail(container: Container, timeout: float = LOGS_TIMEOUT) -> str:
    """The last lines of the container's output, or a note when the engine does not give them in
    `timeout` seconds (the request is left to its own timeout in a daemon thread)."""
    box: dict[str, bytes] = {}

    def fetch() -> None:
        try:
            box["raw"] = container.logs(stdout=True, stderr=True, tail=LOGS_TAIL_LINES)
        except (DockerException, requests.exceptions.RequestException):
            box["raw"] = b""

    reader = threading.Thread(target=fetch, name="container-logs", daemon=True)
    reader.start()
    reader.join(timeout)
    if "raw" not in box:
        return f"(no logs: the container engine did not answer within {timeout:.0f} s)"
    return box["raw"].decode("utf-8", errors="replace")[-LOGS_TAIL_CHARS:]


def _wait(client: docker.DockerClient, container_id: str, timeout: float) -> int | None:
    """The exit code, or None if the container is still running after `timeout` seconds. Raises
    :class:`ContainerGone` when the container no longer exists (its exit code is lost: never a
    made-up one), :class:`ContainerEngineError` when the engine fails."""
    gone = _gone(container_id[:12])
    with _engine_call(f"lost the engine while waiting for container {container_id[:12]}"):
        try:
            result = client.api.wait(container_id, timeout=max(0.05, timeout))
        except APIError as exc:
            if _no_such_container(exc):
                raise ContainerGone(gone) from exc
            raise
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            pass  # the timeout (a lost engine fails the inspect below)
        else:
            error = result.get("Error")
            message = str(error.get("Message") or "") if isinstance(error, dict) else ""
            if not message:
                return int(result.get("StatusCode", -1))
            # The wait failed (Podman answers one on a container removed meanwhile with StatusCode 0
            # and an Error): its StatusCode is no exit code.
            _state(client, container_id, gone)
            raise ContainerEngineError(f"the engine failed to wait for container {container_id[:12]}: {_one_line(message)}")
        state = _state(client, container_id, gone)  # a timed-out wait can race with the exit: ask the state
    if state.get("Status") in ("exited", "stopped", "dead"):
        return int(state.get("ExitCode", -1))
    return None


def _state(client: docker.DockerClient, container_id: str, gone: str) -> dict[str, Any]:
    """The container's ``State``; :class:`ContainerGone` (message `gone`) when it no longer exists
    or is being removed."""
    try:
        return cast(dict[str, Any], client.api.inspect_container(container_id)["State"])
    except APIError as exc:
        if _no_such_container(exc):
            raise ContainerGone(gone) from exc
        raise


def _no_such_container(exc: APIError) -> bool:
    """Whether the engine's error says the container does not exist: 404 (``NotFound``), or Podman's
    500 "no such container", its answer about a container whose removal is under way."""
    return exc.status_code == 404 or "no such container" in str(exc).lower()


def _gone(name: str) -> str:
    return f"container {name} is gone: something else removed it while it ran (its exit code is lost)"


def run_container(
    client: docker.DockerClient,
    spec: JobSpec,
    *,
    image_id: str,
    name: str,
    labels: dict[str, str],
    inputs_dir: Path,
    output: OutputDir,
    limits: ContainerLimits = ContainerLimits(),
    deadline_seconds: float | None = None,
    seccomp: bool = True,
    etc_dir: Path | None = None,
) -> RunResult:
    """Runs one hardened job container to its end and removes it; never raises for the job's own
    behaviour (that is in the :class:`RunResult`), raises :class:`ContainerEngineError` when the
    engine fails or does not answer (:class:`ContainerGone` when the container vanishes under the
    run: its end is then unknown).

    The deadline is ``spec.resources.max_runtime`` (or `deadline_seconds`) of wall-clock time from
    the start: then the container is killed (status ``timeout``). The container is always removed
    before returning, whatever happened (its logs tail is kept in the result). ``seccomp=False``
    omits the project's seccomp profile (only for testing the start-up probe).
    """
    if LABEL_EXECUTOR not in labels or LABEL_JOB not in labels:
        raise ValueError(f"labels must include {LABEL_JOB} and {LABEL_EXECUTOR} (the reaper relies on them)")
    check_init()
    profile = seccomp_option(client) if seccomp else None
    _image_config(client, image_id)
    own_report = etc_dir is None
    report_dir = Path(tempfile.mkdtemp(prefix="depin-init-")) if etc_dir is None else Path(etc_dir) / "report"
    try:
        return _run(client, spec, image_id, name, labels, inputs_dir, output, limits, deadline_seconds, profile, etc_dir, report_dir)
    finally:
        if own_report:
            shutil.rmtree(report_dir, ignore_errors=True)


def _run(
    client: docker.DockerClient, spec: JobSpec, image_id: str, name: str, labels: dict[str, str], inputs_dir: Path, output: OutputDir,
    limits: ContainerLimits, deadline_seconds: float | None, profile: str | None, etc_dir: Path | None, report_dir: Path,
) -> RunResult:
    marker = prepare_init_report(report_dir)
    options = container_options(
        spec, image_id=image_id, name=name, labels=labels, inputs_dir=inputs_dir, output=output, seccomp=profile, limits=limits, etc_dir=etc_dir,
        report_dir=report_dir, init_marker=marker,
    )
    dash = options["command"].index("--")
    limit = float(deadline_seconds if deadline_seconds is not None else spec.resources.max_runtime)
    container = _create(client, options)
    started = time.monotonic()
    status: RunStatus = "exited"
    exit_code: int | None = None
    oom_flag = False
    refused: ContainerEngineError | None = None
    try:
        with _engine_call(f"cannot start container {name}"):
            container.start()
        started = time.monotonic()
        deadline = started + limit
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                status = "timeout"
                break
            step = min(remaining, WATCH_INTERVAL) if output.mode == "watch" else remaining
            exit_code = _wait(client, container.id, step)
            if exit_code is not None:
                break
            if output.mode == "watch" and output_size(output.path) > output.max_bytes:
                status = "output_too_large"
                break
        duration = time.monotonic() - started
        if status != "exited":
            _kill(client, container.id)
            exit_code = None
        elif exit_code == 137:  # SIGKILL: the kernel's OOM killer, or the job killed itself
            with _engine_call(f"cannot inspect container {name}"):
                try:  # gone: removed under us (its SIGKILL is not the job's doing)
                    oom_flag = bool(_state(client, container.id, _gone(name)).get("OOMKilled"))
                except DockerException:
                    pass  # the flag is a hint only (see the module doc)
            if oom_flag or options["mem_limit"]:
                status = "oom"
        logs = _logs_tail(container)
        # The init's report (after the exit or the kill): no proof, or a line, and the job never ran.
        refused = init_failure(report_dir / marker, options["command"][dash + 1 :], options["command"][2:dash], logs)
    finally:
        removed = remove_container(client, container.id)
    if not removed:  # something else removed it: what the run saw (an exit code, 137) is not the job's
        raise ContainerGone(_gone(name))
    if refused is not None:
        raise refused
    return RunResult(status, exit_code, logs, duration, name, oom_flag)


def _kill(client: docker.DockerClient, container_id: str) -> None:
    with _engine_call(f"cannot kill container {container_id[:12]}"):
        try:
            client.api.kill(container_id, signal="SIGKILL")
        except DockerException:
            pass  # already gone or exited; removal below forces it anyway
    try:
        _wait(client, container_id, KILL_GRACE)
    except ContainerGone:
        pass  # what the kill was for


# --- the sandbox probe --------------------------------------------------------------------------


def probe_sandbox(client: docker.DockerClient, image: str, work_dir: Path, *, seccomp: bool = True) -> list[str]:
    """Runs :data:`PROBE_SCRIPT` in a container with the options of a job (`image` is a busybox image
    pinned as ``repo@sha256:<id>``, `work_dir` an empty folder for its ``/in`` and ``/out``) and
    returns what a job could do there that it must not: an empty list when the sandbox holds.
    ``seccomp=False`` leaves the project's profile out (to test that the probe notices). Raises
    :class:`ContainerEngineError` when the engine fails, :class:`ImageUnavailable` without the image."""
    spec = JobSpec.model_validate(
        {"image": image, "command": ["sh", "-c", PROBE_SCRIPT], "resources": {"cpus": 1, "memory_mb": 16, "max_runtime": 30, "output_mb": 1}}
    )
    image_id = check_image(client, image)
    inputs = Path(work_dir) / "in"
    inputs.mkdir(parents=True, exist_ok=True)
    output = prepare_output_dir(Path(work_dir) / "out", MIB)
    name = f"depin-{PROBE_LABEL}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    labels = {LABEL_JOB: PROBE_LABEL, LABEL_EXECUTOR: PROBE_LABEL}
    try:
        run = run_container(client, spec, image_id=image_id, name=name, labels=labels, inputs_dir=inputs, output=output, seccomp=seccomp)
        try:
            report = (output.path / PROBE_FILE).read_text(errors="replace")
        except OSError:
            report = ""
    finally:
        release_output_dir(output)
    return probe_problems(run, report)


def probe_problems(run: RunResult, report: str) -> list[str]:
    """What the probe's `report` (``name=value`` lines) shows a job could do that it must not."""
    if run.status != "exited" or run.exit_code != 0:
        return [f"the probe container did not run to its end ({run.status}, exit {run.exit_code}): {run.logs_tail.strip()[-200:]}"]
    values = dict(line.split("=", 1) for line in report.splitlines() if "=" in line)
    problems = []
    for key, (expected, message) in PROBE_EXPECTED.items():
        value = values.get(key, "").strip()
        if value != expected:
            problems.append(message.format(value=value or "missing"))
    for key, message in PROBE_DENIED.items():
        value = values.get(key, "").strip()
        if not value:
            problems.append(f"the probe did not report {key}")
        elif value == "0":
            problems.append(message)
    return problems


# --- the reaper ---------------------------------------------------------------------------------


class ManagedContainer(NamedTuple):
    """One listed container: its id, name and labels as the engine's list gave them."""

    id: str
    name: str
    labels: dict[str, str]


def managed_containers(client: docker.DockerClient, *, instance: str | None = None) -> list[ManagedContainer]:
    """Every container (running or not) labelled by this project, or by executor `instance`, from
    the engine's one list request. A container removed while they are listed is in it or not, never
    an engine error: docker-py's ``containers.list`` inspects each listed container afterwards, and
    Podman answers one removed in between with 500 "no such container" rather than 404, which its
    ``ignore_removed`` does not catch (the reaper's pass failed while the executor's own tasks
    removed their containers)."""
    label = f"{LABEL_EXECUTOR}={instance}" if instance is not None else LABEL_MANAGED
    with _engine_call("cannot list containers"):
        rows = client.api.containers(all=True, filters={"label": label})
    return [
        ManagedContainer(str(row["Id"]), str((row.get("Names") or [""])[0]).lstrip("/"), dict(row.get("Labels") or {}))
        for row in rows
    ]


def reap_orphans(
    client: docker.DockerClient, live_names: Iterable[str], *, instance: str | None = None,
    confirm: Callable[[str, str, dict[str, str]], bool] | None = None,
) -> list[str]:
    """Removes the project's labelled containers whose name is not in `live_names` (the containers
    that running tasks own) and, with `confirm`, that ``confirm(id, name, labels)`` finds orphaned
    (the executor's rule: :func:`executor.beat.reap`); returns the removed names.

    Pass `instance` (the ``depin.executor`` label value) to touch only this executor's containers
    when several executors share one engine. The caller must include every container it is about
    to create in `live_names` (e.g. the names of all jobs it holds a lease on), since a container
    created after the listing but before its task registers would otherwise be removed.
    """
    live = set(live_names)
    removed = []
    for container in managed_containers(client, instance=instance):
        if container.name in live:
            continue
        if confirm is not None and not confirm(container.id, container.name, dict(container.labels or {})):
            continue
        if remove_container(client, container.id):
            removed.append(container.name)
    return removed
