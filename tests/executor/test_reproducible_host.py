"""Two honest machines give a job the same view of its limits and its inputs (found by review, stop
37): every resource limit is set per container rather than inherited from whoever started the
engine, /in has one size and inode count whatever the executor's policy or role, and inputs are
dated the epoch rather than the moment they were fetched. Each test runs the same job twice the way
two executors differ and compares what the job printed. Real containers."""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from depin.outputs import extract_archive
from depin.spec import JobSpec
from executor.containers import JOB_FIRST_CHILD_PID, JOB_ULIMITS, LABEL_EXECUTOR, container_name
from executor.engine import connect, start_podman_service, stop_podman_service
from executor.execute import Outcome, execute
from executor.images import build_sample_images
from executor.results import ResultStore

MIB = 1024 * 1024
DATA = {"path": "data", "uri": "data:;base64,aGk=", "sha256": "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"}
# What a job can learn of its limits and its inputs; the awk recursion's depth depends on the stack.
PROBE = r"""
cat /proc/self/limits > /out/limits
awk 'function f(n){return n==0?0:1+f(n-1)} BEGIN{print f(2000)}' > /out/depth 2>&1; echo $? >> /out/depth
stat -c '%n %s %y %x' /in /in/data > /out/in_times
df /in | tail -n 1 | tr -s ' ' | cut -d' ' -f2 > /out/in_size
df -i /in | tail -n 1 | tr -s ' ' | cut -d' ' -f2 > /out/in_inodes
echo "$PYTHONHASHSEED" > /out/hashseed
"""


# The PIDs a job's processes get: the shell's own (PID 1), its first child's, a grandchild's, and the
# fork of a pipeline (the runtime used four or five PIDs before the job, so they varied by run).
PIDS = r"""
echo $$ > /out/self
sh -c 'echo $$' > /out/child
sh -c 'sh -c "echo \$\$"; exit 0' > /out/grandchild
echo x | sh -c 'echo $$' > /out/pipeline
"""


def _spec(images: dict[str, str], script: str = PROBE) -> JobSpec:
    return JobSpec.model_validate(
        {"image": images["busybox"], "command": ["sh", "-c", script], "inputs": [DATA],
         "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 30, "output_mb": 1}}
    )


def _run(
    client: docker.DockerClient, images: dict[str, str], root: Path, instance: str, job_id: int, script: str = PROBE, **kw: int
) -> tuple[Outcome, dict[str, str]]:
    store = ResultStore(root / "results", "http://127.0.0.1:8700")
    outcome = execute(client, job_id=job_id, spec=_spec(images, script), work_root=root / "work", store=store,
                      name=container_name(31337, job_id, f"host-{os.getpid()}-{root.name}"), labels={LABEL_EXECUTOR: instance}, **kw)
    assert outcome.kind == "result" and outcome.exit_code == 0, outcome
    dest = root / "extracted"
    extract_archive(store.path(outcome.name), dest)
    return outcome, {p.name: p.read_text(errors="replace") for p in dest.iterdir() if p.is_file()}


@pytest.fixture
def other_engine() -> Iterator[docker.DockerClient]:
    """A second Podman service started from a process with other soft limits (what another
    provider's shell may have): an unlimited stack and core size, little locked memory, few
    pending signals, a bounded address space. Only soft limits change, so they can be restored."""
    changes = {
        resource.RLIMIT_STACK: resource.RLIM_INFINITY,
        resource.RLIMIT_CORE: resource.RLIM_INFINITY,
        resource.RLIMIT_MEMLOCK: 64 * 1024,
        resource.RLIMIT_SIGPENDING: 1000,
        resource.RLIMIT_AS: 1 << 40,
    }
    saved = {which: resource.getrlimit(which) for which in changes}
    state = Path(tempfile.mkdtemp(prefix="depin-podman-"))
    try:
        for which, soft in changes.items():
            hard = saved[which][1]
            if hard != resource.RLIM_INFINITY and (soft == resource.RLIM_INFINITY or soft > hard):
                soft = hard
            resource.setrlimit(which, (soft, hard))
        _, url = start_podman_service(state)
    except BaseException:
        shutil.rmtree(state, ignore_errors=True)
        raise
    finally:
        for which, value in saved.items():
            resource.setrlimit(which, value)
    client = connect(url)
    try:
        yield client
    finally:
        client.close()
        stop_podman_service(state)
        shutil.rmtree(state, ignore_errors=True)


def _limits(text: str) -> dict[str, str]:
    """/proc/self/limits as {name: 'soft hard'}."""
    rows = {}
    for line in text.splitlines()[1:]:
        name, soft, hard = line[:26].strip(), line[26:47].strip(), line[47:68].strip()
        rows[name] = f"{soft} {hard}"
    return rows


def test_every_limit_is_the_same_whoever_started_the_engine(engine, other_engine, sample_images, tmp_path, executor_instance) -> None:
    build_sample_images(other_engine)
    one, files = _run(engine, sample_images, tmp_path / "a", executor_instance, 501)
    two, files_two = _run(other_engine, sample_images, tmp_path / "b", executor_instance, 502)
    assert _limits(files["limits"]) == _limits(files_two["limits"]), (files["limits"], files_two["limits"])
    assert files == files_two and one.digest == two.digest
    limits = _limits(files["limits"])
    assert limits["Max core file size"] == "0 0"
    assert limits["Max stack size"] == f"{JOB_ULIMITS['stack']} {JOB_ULIMITS['stack']}"
    assert limits["Max pending signals"] == f"{JOB_ULIMITS['sigpending']} {JOB_ULIMITS['sigpending']}"
    assert limits["Max address space"] == "unlimited unlimited"


def test_inputs_look_the_same_to_every_role_and_on_every_run(engine, sample_images, tmp_path, executor_instance) -> None:
    """A provider with a 256 MiB input policy and a verifier with the default cap, fetching at
    different moments: the same /in size, inode count and input times (the epoch)."""
    one, files = _run(engine, sample_images, tmp_path / "provider", executor_instance, 601, max_input_bytes=256 * MIB)
    two, files_two = _run(engine, sample_images, tmp_path / "verifier", executor_instance, 602)
    assert files == files_two and one.digest == two.digest
    assert files["in_times"].count("1970-01-01 00:00:00.000000000") == 4, files["in_times"]
    assert files["hashseed"] == "0\n"
    assert files["depth"].splitlines() == ["2000", "0"]
    if os.geteuid() == 0:  # /in is a tmpfs of a fixed size only where the executor may mount
        assert int(files["in_size"]) == 64 * 1024 * 1024 and int(files["in_inodes"]) == 1024


def test_a_jobs_pids_are_the_same_on_every_engine_and_run(engine, other_engine, sample_images, tmp_path, executor_instance) -> None:
    """The OCI runtime uses four or five PIDs of the job's namespace before the job starts (runc's
    threads; it varied between runs of one engine), so a job printing a child's PID got 6 or 7 and
    two honest executors could disagree. The job's init pins them: the first child is always
    JOB_FIRST_CHILD_PID. Three runs on this engine and two on another started with other limits."""
    build_sample_images(other_engine)
    seen = []
    for i, client in enumerate([engine, other_engine, engine, other_engine, engine]):
        outcome, files = _run(client, sample_images, tmp_path / f"run{i}", executor_instance, 701 + i, PIDS)
        seen.append((outcome.digest, files))
    first = JOB_FIRST_CHILD_PID
    # The grandchild's parent is the second PID; a pipeline forks its two sides (echo, then sh).
    expected = {"self": "1\n", "child": f"{first}\n", "grandchild": f"{first + 2}\n", "pipeline": f"{first + 4}\n"}
    for digest, files in seen:
        assert {k: files[k] for k in expected} == expected, files
        assert digest == seen[0][0]
