"""The job sandbox's seccomp profile (executor/seccomp.json) on a real Podman engine: namespace
creation and mounts fail inside a job, ordinary jobs still work, and the start-up probe passes here
and notices an engine that leaves the profile out."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import docker
import pytest

from depin.outputs import extract_archive
from depin.spec import JobSpec
from executor import engine as engine_module
from executor.containers import (
    LABEL_EXECUTOR,
    LABEL_JOB,
    SECCOMP_PROFILE,
    ContainerLimits,
    OutputDir,
    check_image,
    container_name,
    container_options,
    engine_kind,
    prepare_output_dir,
    probe_sandbox,
    release_output_dir,
    run_container,
    seccomp_option,
    seccomp_profile_json,
)
from executor.engine import SandboxUnavailable, check_sandbox
from executor.execute import Outcome, execute
from executor.results import ResultStore

_counter = iter(range(1, 1_000_000))

CLONE_NEW_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
DENIED = ["unshare", "setns", "mount", "umount2", "umount", "pivot_root", "chroot", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "ptrace", "process_vm_readv", "process_vm_writev", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "open_by_handle_at", "name_to_handle_at", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "syslog", "acct", "swapon", "swapoff", "reboot", "settimeofday", "clock_settime", "clock_settime64", "stime", "quotactl", "lookup_dcookie", "mbind", "set_mempolicy", "move_pages", "nfsservctl", "vm86", "vm86old", "uselib", "ustat", "sysfs", "_sysctl", "fanotify_init", "iopl", "ioperm", "sethostname", "setdomainname", "fsopen", "fsmount", "fsconfig", "move_mount", "open_tree"]

# Every attempt writes its exit status to /out/<name>; the job itself always exits 0.
ESCAPES = r"""
grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status > /out/status
unshare -Urn id -u > /out/urn_uid 2>/out/urn_err; echo $? > /out/unshare_Urn
unshare -U true 2>/dev/null; echo $? > /out/unshare_U
unshare -n true 2>/dev/null; echo $? > /out/unshare_n
unshare -m true 2>/dev/null; echo $? > /out/unshare_m
unshare -p -f true 2>/dev/null; echo $? > /out/unshare_p
mount -t tmpfs none /tmp 2>/dev/null; echo $? > /out/mount
unshare -Urm mount -t tmpfs none /tmp 2>/dev/null; echo $? > /out/unshare_Urm_mount
true
"""


def _spec(images: dict[str, str], command: list[str], inputs: dict[str, bytes] | None = None) -> JobSpec:
    items = [
        {"path": name, "uri": "data:;base64," + base64.b64encode(data).decode(), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in (inputs or {}).items()
    ]
    return JobSpec.model_validate(
        {"image": images["busybox"], "command": command, "inputs": items, "resources": {"cpus": 1, "memory_mb": 32, "max_runtime": 20, "output_mb": 1}}
    )


@pytest.fixture
def run_job(engine, sample_images, work_root, result_store, executor_instance):
    """Runs a busybox job through execute() (the executor's own path); returns its outcome."""

    def run(command: list[str], inputs: dict[str, bytes] | None = None) -> Outcome:
        job_id = next(_counter)
        return execute(
            engine,
            job_id=job_id,
            spec=_spec(sample_images, command, inputs),
            work_root=work_root,
            store=result_store,
            name=container_name(31337, job_id, f"sbx{os.getpid()}"),
            labels={LABEL_EXECUTOR: executor_instance},
        )

    return run


def _files(store: ResultStore, outcome: Outcome, dest: Path) -> dict[str, str]:
    assert outcome.kind == "result", outcome
    extract_archive(store.path(outcome.name), dest)
    return {p.relative_to(dest).as_posix(): p.read_text(errors="replace") for p in dest.rglob("*") if p.is_file()}


def _escapes_without_profile(engine: docker.DockerClient, images: dict[str, str], tmp: Path, instance: str) -> dict[str, str]:
    """The ESCAPES script in a job container that has every option but the seccomp profile."""
    spec = _spec(images, ["sh", "-c", ESCAPES])
    (tmp / "in").mkdir()
    output = prepare_output_dir(tmp / "out", 1 << 20)
    try:
        run = run_container(
            engine, spec, image_id=check_image(engine, spec.image), name=container_name(31337, next(_counter), f"sbx{os.getpid()}"),
            labels={LABEL_JOB: "0", LABEL_EXECUTOR: instance}, inputs_dir=tmp / "in", output=output, seccomp=False,
        )
        assert run.status == "exited" and run.exit_code == 0, run
        return {p.name: p.read_text() for p in output.path.iterdir()}
    finally:
        release_output_dir(output)


# --- the profile itself -------------------------------------------------------------------------


def test_profile_is_dockers_default_shape_and_allows_none_of_the_dangerous_syscalls() -> None:
    """Default action EPERM with an allow-list; nothing on the deny list is allowed by any rule;
    clone only without namespace flags; clone3 answers ENOSYS; personality only its safe values."""
    profile = json.loads(SECCOMP_PROFILE.read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    rules = profile["syscalls"]
    allowed_plain = {n for r in rules if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") for n in r["names"]}
    assert {"read", "write", "execve", "wait4", "openat", "fork", "vfork"} <= allowed_plain
    allowed_any = {n for r in rules if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
    assert not allowed_any & set(DENIED), sorted(allowed_any & set(DENIED))
    clone = [r for r in rules if "clone" in r["names"]]
    assert len(clone) == 1 and clone[0]["action"] == "SCMP_ACT_ALLOW"
    (arg,) = clone[0]["args"]
    assert arg["op"] == "SCMP_CMP_MASKED_EQ" and arg["index"] == 0 and arg.get("valueTwo", 0) == 0
    for flag, bit in CLONE_NEW_FLAGS.items():
        assert arg["value"] & bit, f"clone with {flag} is allowed"
    clone3 = [r for r in rules if "clone3" in r["names"]]
    assert len(clone3) == 1 and clone3[0]["action"] == "SCMP_ACT_ERRNO" and clone3[0]["errnoRet"] == 38
    personality = sorted(r["args"][0]["value"] for r in rules if "personality" in r["names"])
    assert personality == [0, 8, 131072, 131080, 4294967295]
    assert all(r["args"][0]["op"] == "SCMP_CMP_EQ" for r in rules if "personality" in r["names"])


def test_container_options_keep_every_hardening_option_and_add_the_profile(engine, tmp_path) -> None:
    """The engine gets the profile in the form it reads (Podman: a path; Docker: the JSON text)
    next to no-new-privileges, cap_drop ALL, read-only root and no network."""
    option = seccomp_option(engine)
    if engine_kind(engine) == "podman":
        assert option == f"seccomp={SECCOMP_PROFILE}" and SECCOMP_PROFILE.is_file()
    else:
        assert json.loads(option.removeprefix("seccomp=")) == json.loads(seccomp_profile_json())
    spec = JobSpec.model_validate(
        {"image": "depin/x@sha256:" + "ab" * 32, "command": ["true"], "resources": {"cpus": 1, "memory_mb": 16, "max_runtime": 5}}
    )
    options = container_options(
        spec, image_id="sha256:" + "ab" * 32, name="n", labels={}, inputs_dir=tmp_path, output=OutputDir(tmp_path, 1, "watch"),
        seccomp=option, limits=ContainerLimits(), report_dir=tmp_path, init_marker="m",
    )
    assert options["security_opt"] == ["no-new-privileges", option]
    assert options["cap_drop"] == ["ALL"] and options["read_only"] is True and options["network_mode"] == "none"
    assert options["privileged"] is False and options["user"] == "65534:65534"
    assert options["nano_cpus"] == 1_000_000_000
    # A spec that skipped validation still gets a CPU limit: NanoCpus 0 would be none at all.
    tiny = spec.model_copy(update={"resources": spec.resources.model_copy(update={"cpus": 1e-10})})
    tiny_options = container_options(
        tiny, image_id="sha256:" + "ab" * 32, name="n", labels={}, inputs_dir=tmp_path, output=OutputDir(tmp_path, 1, "watch"),
        seccomp=option, limits=ContainerLimits(), report_dir=tmp_path, init_marker="m",
    )
    assert tiny_options["nano_cpus"] == 10_000_000


# --- inside a job -------------------------------------------------------------------------------


def test_namespace_creation_and_mounts_fail_inside_a_job(run_job, result_store, tmp_path) -> None:
    """unshare -Urn / -U / -n / -m / -p and mount -t tmpfs all fail; seccomp is in filter mode and
    no-new-privileges is set."""
    files = _files(result_store, run_job(["sh", "-c", ESCAPES]), tmp_path / "x")
    status = dict(line.split(":\t") for line in files["status"].splitlines())
    assert status["Seccomp"].strip() == "2"
    assert status["NoNewPrivs"].strip() == "1"
    for attempt in ("unshare_Urn", "unshare_U", "unshare_n", "unshare_m", "unshare_p", "mount", "unshare_Urm_mount"):
        assert files[attempt].strip() not in ("", "0"), (attempt, files[attempt])
    assert files["urn_uid"].strip() == ""  # `id -u` never ran as a mapped root
    assert "Operation not permitted" in files["urn_err"]


def test_without_the_profile_the_same_job_escapes(engine, sample_images, tmp_path, executor_instance) -> None:
    """The control: the very options minus the profile (Podman's default profile applies) let the
    job create a user and network namespace and mount a tmpfs in it. This is what the profile stops."""
    files = _escapes_without_profile(engine, sample_images, tmp_path, executor_instance)
    assert files["unshare_Urn"].strip() == "0" and files["urn_uid"].strip() == "0"
    assert files["unshare_Urm_mount"].strip() == "0"


def test_ordinary_jobs_still_work_under_the_profile(run_job, result_store, tmp_path) -> None:
    """sh, sort, sha256sum, a handful of forked processes, reading /in and writing /out."""
    data = b"pear\napple\nfig\n"
    script = r"""
sort /in/words > /out/sorted
sha256sum /in/words | cut -d' ' -f1 > /out/sha
for i in 1 2 3 4 5; do (echo "child $i" > /out/child$i) & done; wait
echo $(( 6 * 7 )) > /out/arith
mkdir -p /out/deep/er && echo ok > /out/deep/er/file
"""
    outcome = run_job(["sh", "-c", script], inputs={"words": data})
    assert outcome.exit_code == 0, outcome
    files = _files(result_store, outcome, tmp_path / "x")
    assert files["sorted"] == "apple\nfig\npear\n"
    assert files["sha"].strip() == hashlib.sha256(data).hexdigest()
    assert [files[f"child{i}"].strip() for i in range(1, 6)] == [f"child {i}" for i in range(1, 6)]
    assert files["arith"].strip() == "42"
    assert files["deep/er/file"].strip() == "ok"


# --- the start-up probe -------------------------------------------------------------------------


def test_probe_passes_on_this_engine(engine, sample_images, tmp_path) -> None:
    assert probe_sandbox(engine, sample_images["busybox"], tmp_path) == []


def test_probe_detects_an_engine_that_ignores_the_profile(engine, sample_images, tmp_path) -> None:
    """A profile-less run (what an engine that drops the option would give) fails the probe, and
    says what a job could do."""
    problems = probe_sandbox(engine, sample_images["busybox"], tmp_path, seccomp=False)
    text = "; ".join(problems)
    assert "unshare(0) is allowed" in text
    assert "user and network namespaces could be created" in text


def test_check_sandbox_refuses_with_one_line_and_runs_once_per_engine(engine, sample_images, monkeypatch) -> None:
    """check_sandbox raises SandboxUnavailable (one line naming the engine and what to do) when the
    probe finds an escape, and probes a passing engine once per process."""
    calls: list[bool] = []

    def profile_less(client, image, work_dir, *, seccomp=True):
        calls.append(seccomp)
        return probe_sandbox(client, image, work_dir, seccomp=False)

    monkeypatch.setattr(engine_module, "_sandbox_verified", set())
    monkeypatch.setattr(engine_module, "probe_sandbox", profile_less)
    with pytest.raises(SandboxUnavailable) as refused:
        check_sandbox(engine)
    message = str(refused.value)
    assert "\n" not in message
    assert "Podman" in message or "Docker" in message
    assert "runs none" in message and "start the executor again" in message
    assert "user namespace" in message

    def counted(client, image, work_dir, *, seccomp=True):
        calls.append(seccomp)
        return probe_sandbox(client, image, work_dir, seccomp=seccomp)

    monkeypatch.setattr(engine_module, "probe_sandbox", counted)
    calls.clear()
    check_sandbox(engine)
    check_sandbox(engine)
    assert calls == [True]


def test_executor_start_refuses_such_an_engine_with_one_error_line(engine, tmp_path, monkeypatch, capsys) -> None:
    """`python -m executor start` checks the engine before it starts any component: on an engine
    that ignores the profile it prints one `error:` line naming the engine and exits 1."""
    from executor import worker
    from executor.__main__ import main
    from tests.executor.stack import docker_host_of

    monkeypatch.setattr(engine_module, "_sandbox_verified", set())
    monkeypatch.setattr(engine_module, "probe_sandbox", lambda client, image, work_dir, *, seccomp=True: probe_sandbox(client, image, work_dir, seccomp=False))
    monkeypatch.setattr(worker, "setup_logging", lambda component: None)

    def no_component(component, config, role):
        raise AssertionError(f"{component} started on an engine that ignores the profile")

    monkeypatch.setattr(worker, "component_command", no_component)
    config = tmp_path / "depin.toml"
    config.write_text(f'[engine]\ndocker_host = "{docker_host_of(engine)}"\nstate_dir = "{tmp_path / "state"}"\n')
    assert main(["start", "--config", str(config)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "does not confine jobs" in err[0], err
