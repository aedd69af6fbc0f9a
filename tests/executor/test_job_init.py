"""The job's init (executor/depin-init.c): the first program of every job container, which pins the
PID numbers of the job's namespace and then execs the job's command in place. It must change
nothing else a job can see (argv, environment, signal state, seccomp, limits, exit status), keep a
command the image cannot execute a BAD_SPEC failure that a job cannot fake, and fail loudly (an
engine error, never the job's) when the runtime used more PIDs than it pins. Real containers."""

from __future__ import annotations

import io
import os
import platform
import struct
from pathlib import Path

import docker
import pytest
from docker.errors import APIError

from depin.market import FailureCode
from depin.outputs import extract_archive
from depin.spec import JobSpec
from executor import containers
from executor import execute as execute_module
from executor.containers import (
    INIT_MARKER_PREFIX,
    INIT_STATUS,
    JOB_FIRST_CHILD_PID,
    LABEL_EXECUTOR,
    LABEL_JOB,
    CommandRefused,
    ContainerEngineError,
    InitFailed,
    container_name,
    container_options,
    init_failure,
    prepare_init_report,
    prepare_output_dir,
    release_output_dir,
    remove_container,
    run_container,
    seccomp_option,
)
from executor.execute import Outcome, _is_exec_error, execute
from executor.images import image_reference
from executor.results import ResultStore

# What a job can see of its own process (it is PID 1 in both runs below): what the init must not change.
VIEW = r"""
sh -c 'echo $$' > /out/child
cat /proc/1/cmdline > /out/cmdline
tr '\0' '\n' < /proc/1/environ | sort > /out/environ
grep -E '^(Sig(Q|Blk|Ign|Cgt)|ShdPnd|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Seccomp_filters|Uid|Gid|Groups|Threads|PPid|Pid):' /proc/1/status > /out/status
cat /proc/1/limits > /out/limits
ls /proc/1/fd > /out/fds
umask > /out/umask
pwd > /out/cwd
readlink /proc/1/exe > /out/exe
exit 3
"""


def _spec(image: str, command: list[str], env: dict[str, str] | None = None) -> JobSpec:
    return JobSpec.model_validate(
        {"image": image, "command": command, "env": env or {}, "resources": {"cpus": 1, "memory_mb": 32, "max_runtime": 30, "output_mb": 1}}
    )


def _execute(engine: docker.DockerClient, tmp_path: Path, instance: str, spec: JobSpec, job_id: int = 9) -> Outcome:
    store = ResultStore(tmp_path / "results", "http://127.0.0.1:8700")
    return execute(engine, job_id=job_id, spec=spec, work_root=tmp_path / "work", store=store,
                   name=container_name(31337, job_id, f"init-{tmp_path.name}"), labels={LABEL_EXECUTOR: instance})


def _files(tmp_path: Path, outcome: Outcome, dest: Path) -> dict[str, str]:
    store = ResultStore(tmp_path / "results", "http://127.0.0.1:8700")
    extract_archive(store.path(outcome.name), dest)
    return {p.name: p.read_text(errors="replace") for p in dest.iterdir() if p.is_file()}


def _without_init(engine: docker.DockerClient, spec: JobSpec, image_id: str, work: Path, instance: str) -> tuple[int, dict[str, str]]:
    """The control: the same container options as a job's, but the engine starting the command
    itself, as before the init. Returns the exit code and the files in /out."""
    (work / "in").mkdir(parents=True)
    output = prepare_output_dir(work / "out", 1 << 20)
    marker = prepare_init_report(work / "report")
    options = container_options(
        spec, image_id=image_id, name=container_name(31337, 10, f"noinit-{work.name}"), labels={LABEL_EXECUTOR: instance, LABEL_JOB: "10"},
        inputs_dir=work / "in", output=output, seccomp=seccomp_option(engine), report_dir=work / "report", init_marker=marker,
    )
    options["entrypoint"] = None
    options["command"] = list(spec.command)
    options["mounts"] = [m for m in options["mounts"] if m["Target"] not in (containers.INIT_PATH, containers.INIT_REPORT_DIR)]
    created = containers._create(engine, options)
    try:
        created.start()
        code = int(engine.api.wait(created.id, timeout=30)["StatusCode"])
        return code, {p.name: p.read_text(errors="replace") for p in output.path.iterdir() if p.is_file()}
    finally:
        remove_container(engine, created.id)
        release_output_dir(output)


def test_the_init_changes_nothing_but_the_pid_numbers(engine, sample_images, tmp_path, executor_instance) -> None:
    """The job's argv, environment, signal mask and dispositions, capabilities, seccomp filter,
    limits, descriptors, umask, working directory, executable and exit status are those the engine
    gives the command itself (the control run without the init); only the PIDs differ: the job is
    PID 1 in both (the init execs, it does not stay as a parent), and its first child gets
    JOB_FIRST_CHILD_PID rather than what the runtime left (6 or 7 here)."""
    spec = _spec(sample_images["busybox"], ["sh", "-c", VIEW, "argv0", "an arg", ""], env={"EXTRA": "a b"})
    outcome = _execute(engine, tmp_path, executor_instance, spec)
    assert outcome.kind == "result" and outcome.exit_code == 3, outcome
    files = _files(tmp_path, outcome, tmp_path / "with")
    image_id = sample_images["busybox"].split("@", 1)[1]
    code, control = _without_init(engine, spec, image_id, tmp_path / "control", executor_instance)
    assert code == 3
    assert files["child"] == f"{JOB_FIRST_CHILD_PID}\n"
    assert control["child"] != files["child"]  # the old behaviour: whatever the runtime left
    del files["child"], control["child"]
    assert files == control
    assert files["cmdline"] == "".join(arg + "\0" for arg in spec.command)  # nothing of the init's own arguments
    assert INIT_MARKER_PREFIX not in files["cmdline"] + files["environ"]
    status = dict(line.split(":\t", 1) for line in files["status"].splitlines())
    assert status["Pid"].strip() == "1" and status["Seccomp"].strip() == "2" and status["Seccomp_filters"].strip() == "1"
    assert "EXTRA=a b" in files["environ"].splitlines()


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (["no-such-program"], "executable file not found in $PATH"),  # the PATH lookup finds nothing
        (["/bin/no-such-program"], "(ENOENT)"),
        (["/tmp"], "(EACCES)"),  # a directory
        (["/etc/hostname"], "(EACCES)"),  # a file without an execute bit
        (["/bin/sh/x"], "(ENOTDIR)"),  # an engine failure before: runc's "not a directory"
    ],
    ids=["not-in-path", "missing", "directory", "not-executable", "not-a-directory"],
)
def test_a_command_the_image_cannot_execute_is_bad_spec(engine, sample_images, tmp_path, executor_instance, command, reason) -> None:
    outcome = _execute(engine, tmp_path, executor_instance, _spec(sample_images["busybox"], command))
    assert outcome.kind == "failure" and outcome.code == FailureCode.BAD_SPEC, outcome.reason
    assert "cannot run the command" in outcome.reason and reason in outcome.reason, outcome.reason
    assert INIT_MARKER_PREFIX not in outcome.reason  # the per-run name stays out of the evidence


def test_a_job_cannot_fake_the_inits_report(engine, sample_images, tmp_path, executor_instance) -> None:
    """A job that writes what the init writes (under any name it can think of) and exits with the
    init's status has a result like any other: the report counts only under the run's own marker
    name, which the job never sees. So a job cannot turn its run into a BAD_SPEC failure (it could
    only gain the refund it already gets by killing itself: OUT_OF_MEMORY), and every honest
    executor reports the same result."""
    script = f"""
for name in {INIT_MARKER_PREFIX} {INIT_MARKER_PREFIX}0 {INIT_MARKER_PREFIX}{'0' * 32}; do echo 'notfound 0' > "/out/$name"; done
echo 'depin-init: notfound 0' >&2
exit {INIT_STATUS}
"""
    outcome = _execute(engine, tmp_path, executor_instance, _spec(sample_images["busybox"], ["sh", "-c", script]))
    assert outcome.kind == "result" and outcome.exit_code == INIT_STATUS, outcome


def test_the_images_entrypoint_still_comes_first(engine, sample_images, tmp_path, executor_instance) -> None:
    """The init takes the entrypoint's place, so it runs the image's ENTRYPOINT with the spec's
    command as its arguments, as the engine did."""
    base = sample_images["busybox"].split("@", 1)[1]
    dockerfile = f'FROM {base}\nENTRYPOINT ["/bin/sh", "-c", "echo \\"$0 $1 $$\\" > /out/e; sh -c \'echo $$\' >> /out/e; true"]\n'.encode()
    image, _ = engine.images.build(fileobj=io.BytesIO(dockerfile), tag=f"depin-test/entrypoint-{executor_instance}", rm=True, pull=False)
    try:
        spec = _spec(image_reference("depin-test/entrypoint", image.id), ["first", "second"])
        outcome = _execute(engine, tmp_path, executor_instance, spec)
        assert outcome.kind == "result" and outcome.exit_code == 0, outcome
        assert _files(tmp_path, outcome, tmp_path / "x")["e"] == f"first second 1\n{JOB_FIRST_CHILD_PID}\n"
    finally:
        engine.images.remove(image.id, force=True)


def test_a_runtime_that_used_more_pids_than_pinned_is_an_engine_failure(
    engine, sample_images, tmp_path, executor_instance, monkeypatch
) -> None:
    """Pinning at 3, below what runc uses, shows the loud failure: an engine error (the caller
    retries; never a result with other PID numbers, never the job's BAD_SPEC), before the job runs."""
    monkeypatch.setattr(containers, "INIT_LAST_PID", 3)
    spec = _spec(sample_images["busybox"], ["sh", "-c", "echo ran > /out/ran"])
    with pytest.raises(InitFailed, match="used PIDs up to [0-9]+ of the job's namespace") as info:
        _execute(engine, tmp_path, executor_instance, spec)
    assert not _is_exec_error(info.value)


def test_a_missing_init_is_never_the_jobs_fault(engine, sample_images, tmp_path, executor_instance, monkeypatch) -> None:
    """Without the binary no container is made: an engine error naming the build step (the engine's
    own "no such file or directory" about the mount would have read as the job's BAD_SPEC)."""
    monkeypatch.setattr(containers, "INIT_BINARY", tmp_path / "missing")
    (tmp_path / "in").mkdir()
    output = prepare_output_dir(tmp_path / "out", 1 << 20)
    try:
        with pytest.raises(InitFailed, match="build_init.sh") as info:
            run_container(
                engine, _spec(sample_images["busybox"], ["true"]), image_id=sample_images["busybox"].split("@", 1)[1], name="depin-job-0-1-noinit",
                labels={LABEL_EXECUTOR: executor_instance, LABEL_JOB: "1"}, inputs_dir=tmp_path / "in", output=output,
            )
    finally:
        release_output_dir(output)
    assert not _is_exec_error(info.value)
    with pytest.raises(InitFailed, match="build_init.sh"):  # execute: from prepare_etc_dir, before any container
        _execute(engine, tmp_path, executor_instance, _spec(sample_images["busybox"], ["true"]))


def test_the_inits_mount_shows_no_host_path(engine, sample_images, tmp_path, executor_instance) -> None:
    """The init is mounted from the executor's per-job tmpfs (with /etc/hosts), not from the package
    folder, whose host path and disk the job's mount table showed."""
    outcome = _execute(engine, tmp_path, executor_instance, _spec(sample_images["busybox"], ["sh", "-c", "grep depin-init /proc/self/mountinfo > /out/m"]))
    line = _files(tmp_path, outcome, tmp_path / "x")["m"]
    assert str(containers.INIT_BINARY.parent) not in line and str(tmp_path) not in line, line
    if os.geteuid() == 0:  # the tmpfs needs root, like /in's and /out's
        assert " /depin-init /dev/depin-init ro," in line and " - tmpfs depin-etc " in line, line


def test_the_engine_failing_to_start_the_init_is_never_the_jobs_fault() -> None:
    """The engine now execs the init, not the command: its own exec refusal naming the init (a
    broken mount, a host that labels the file unexecutable) is this machine's fault. Any other
    refusal (one about the container's set-up) is read as before."""

    def engine_error(text: str) -> ContainerEngineError:
        exc = ContainerEngineError("cannot start container x")
        exc.__cause__ = APIError(text)
        return exc

    assert not _is_exec_error(engine_error(f'runc create failed: exec: "{containers.INIT_PATH}": permission denied'))
    assert not _is_exec_error(engine_error(f"stat {containers.INIT_PATH}: no such file or directory"))
    assert _is_exec_error(engine_error("chdir to cwd (\"/srv\") set in config.json failed: no such file or directory"))


@pytest.mark.parametrize(
    ("report", "kind", "text"),
    [
        ("notfound 0\n", CommandRefused, "'x': executable file not found in $PATH"),
        ("exec 2\n", CommandRefused, "'x': No such file or directory (ENOENT)"),
        ("exec 8\n", CommandRefused, "(ENOEXEC)"),
        ("exec 36\n", CommandRefused, "(ENAMETOOLONG)"),
        ("exec 80\n", CommandRefused, "(ELIBBAD)"),  # an ELF interpreter that is not ELF: InitFailed before review
        ("exec 5\n", CommandRefused, "(EIO)"),  # ... shorter than an ELF header
        ("exec 21\n", CommandRefused, "(EISDIR)"),
        ("exec 22\n", CommandRefused, "(EINVAL)"),
        ("exec 7\n", CommandRefused, "(E2BIG)"),
        ("exec 4000\n", CommandRefused, "'x'"),  # no errno this kernel knows: never the provider's fault
        ("exec 26\n", InitFailed, "execve failed (ETXTBSY)"),
        ("exec 1\n", CommandRefused, "(EPERM)"),  # file capabilities the empty bounding set cannot grant
        ("exec 11\n", InitFailed, "execve failed (EAGAIN)"),
        ("exec 23\n", InitFailed, "execve failed (ENFILE)"),
        ("exec 12\n", InitFailed, "execve failed (ENOMEM)"),
        ("fork 11\n", InitFailed, "could not fork (EAGAIN)"),
        ("pids 70\n", InitFailed, "used PIDs up to 70"),
        ("pid1 7\n", InitFailed, "is PID 7 of its namespace"),
        ("usage 0\n", InitFailed, "the job init failed: usage 0"),
        ("mount 1\n", CommandRefused, "the image has a symlink on the path '/out'"),
        ("mount 7\n", InitFailed, "the job init failed: mount 7"),
    ],
)
def test_the_inits_reports(tmp_path, report, kind, text) -> None:
    path = tmp_path / "marker"
    path.write_text("init\n")
    assert init_failure(path, ["x"], ["/in", "/out"]) is None  # the init started the command: the run is the job's
    path.write_text("init\n" + report)
    found = init_failure(path, ["x"], ["/in", "/out"])
    assert type(found) is kind and text in str(found), found
    assert isinstance(found, ContainerEngineError) and _is_exec_error(found) == (kind is CommandRefused)


@pytest.mark.parametrize("report", ["", "exec 2\n", "inits\n"], ids=["empty", "no-proof", "other"])
def test_a_run_without_the_inits_proof_is_never_a_result(tmp_path, report) -> None:
    """No "init" line first: the runtime never started the init, so the job never ran; whatever the
    container's exit code, it is this machine's failure (retried), never a result or BAD_SPEC."""
    path = tmp_path / "marker"
    path.write_text(report)
    found = init_failure(path, ["x"], logs="exec /dev/depin-init: argument list too long")
    assert type(found) is InitFailed and "never started the job init" in str(found) and "argument list too long" in str(found), found
    assert not _is_exec_error(found)


def _tiny_elf(interpreter: bytes) -> bytes:
    """An ELF executable of this machine's architecture whose only program header is PT_INTERP
    naming `interpreter`: execve reads the interpreter's ELF header before the point of no return."""
    machine = {"x86_64": 62, "aarch64": 183}[platform.machine()]
    path = interpreter + b"\0"
    ehdr = (
        b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, 0x400000, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    )
    phdr = struct.pack("<IIQQQQQQ", 3, 4, 64 + 56, 0, 0, len(path), len(path), 1)
    return ehdr + phdr + path


def _build(engine: docker.DockerClient, context: Path, base: str, lines: str, files: dict[str, bytes], tag: str) -> str:
    """Builds ``FROM base`` + `lines` with `files` (mode 0755) in the build context."""
    context.mkdir()
    for name, data in files.items():
        (context / name).write_bytes(data)
        (context / name).chmod(0o755)
    (context / "Dockerfile").write_text(f"FROM {base}\n{lines}")
    image, _ = engine.images.build(path=str(context), tag=tag, rm=True, forcerm=True, pull=False)
    return str(image.id)


@pytest.mark.parametrize("interpreter", ["X" * 200, "hi"], ids=["ELIBBAD", "EIO"])
def test_a_program_with_a_broken_elf_interpreter_is_bad_spec(engine, sample_images, tmp_path, executor_instance, interpreter) -> None:
    """A hostile requester's image (found by review): /job is an ELF whose PT_INTERP names /interp,
    an executable text file (ELIBBAD when it is at least an ELF header long, EIO when shorter).
    Every honest machine's init gets the same errno from execve: BAD_SPEC, like ENOEXEC (it was
    InitFailed, retried by every provider to the deadline, where its collateral burned)."""
    base = sample_images["busybox"].split("@", 1)[1]
    files = {"job": _tiny_elf(b"/interp"), "interp": interpreter.encode()}
    image_id = _build(engine, tmp_path / "ctx", base, "COPY job interp /\n", files, f"depin-test/badinterp-{executor_instance}")
    try:
        outcome = _execute(engine, tmp_path, executor_instance, _spec(image_reference("depin-test/badinterp", image_id), ["/job"]))
        assert outcome.kind == "failure" and outcome.code == FailureCode.BAD_SPEC, (outcome.exit_code, outcome.logs_tail)
        assert ("(ELIBBAD)" if len(interpreter) > 64 else "(EIO)") in outcome.reason, outcome.reason
    finally:
        if image_id != base:  # never the shared sample image
            engine.images.remove(image_id, force=True)


@pytest.mark.parametrize(
    ("lines", "command", "path"),
    [
        ("RUN ln -s /tmp /out\n", ["no-such-program"], "/out"),  # the init's report was in /out: a result, exit 127
        ("RUN ln -s /tmp /out\n", ["true"], "/out"),
        ("RUN mkdir /x && ln -s /x /in\n", ["true"], "/in"),
    ],
    ids=["out-missing-command", "out", "in"],
)
@pytest.mark.parametrize("guard", ["stat", "init"])
def test_an_image_with_a_symlink_where_a_job_gets_a_mount_is_bad_spec(
    engine, sample_images, tmp_path, executor_instance, monkeypatch, lines, command, path, guard
) -> None:
    """Found by review: an image whose /out is a symlink (/out -> /tmp) had the output tmpfs mounted
    at /tmp, under or over the /tmp tmpfs as the engine chose, and the init's report (then in /out)
    lost. The runtime follows such a symlink for any of the job's mounts, so the init refuses them
    all (BAD_SPEC: the image's doing), and its report is under /dev, which no image can shadow.
    image_mount_fault refuses them before the first run (guard "stat"); without it, the init does."""
    if guard == "init":
        monkeypatch.setattr(execute_module, "image_mount_fault", lambda *a, **k: None)
    base = sample_images["busybox"].split("@", 1)[1]
    image_id = _build(engine, tmp_path / "ctx", base, "USER 0\n" + lines + "USER 65534\n", {}, f"depin-test/mountlink-{executor_instance}")
    try:
        assert image_id != base
        outcome = _execute(engine, tmp_path, executor_instance, _spec(image_reference("depin-test/mountlink", image_id), command))
        assert outcome.kind == "failure" and outcome.code == FailureCode.BAD_SPEC, (outcome.kind, outcome.exit_code, outcome.logs_tail)
        assert f"the image has a symlink on the path {path!r}" in outcome.reason, outcome.reason
    finally:
        if image_id != base:  # never the shared sample image
            engine.images.remove(image_id, force=True)


def test_a_job_cannot_find_or_remove_the_inits_report(engine, sample_images, tmp_path, executor_instance) -> None:
    """The report's directory lets the job's user reach a file it can name, not list or create one:
    a job that tries to wipe the proof that the init ran (which would make every honest provider
    retry the job as an engine failure to its deadline) has an ordinary result."""
    script = f"ls -a {containers.INIT_REPORT_DIR} > /out/ls 2>&1; rm -rf {containers.INIT_REPORT_DIR}/* {containers.INIT_REPORT_DIR}/.??*; touch {containers.INIT_REPORT_DIR}/x 2>> /out/ls; exit 4"
    outcome = _execute(engine, tmp_path, executor_instance, _spec(sample_images["busybox"], ["sh", "-c", script]))
    assert outcome.kind == "result" and outcome.exit_code == 4, outcome
    listing = _files(tmp_path, outcome, tmp_path / "x")["ls"]
    assert "Permission denied" in listing and INIT_MARKER_PREFIX not in listing, listing


def test_an_image_env_over_the_kernels_argument_limit_is_bad_spec(engine, sample_images, tmp_path, executor_instance) -> None:
    """Found by review: the init never ran (runc logs "exec /dev/depin-init: argument list too long"
    and the container exits 1), and the run became a result whose exit code was the runtime's
    choice. image_config_fault refuses such an image before any container, as BAD_SPEC."""
    base = sample_images["busybox"].split("@", 1)[1]
    image_id = _build(
        engine, tmp_path / "ctx", base, "ENV BIG=" + "\\\n".join(["x" * 1024] * 132) + "\n", {}, f"depin-test/bigenv-{executor_instance}"
    )
    assert image_id != base and any(len(e) > 128 * 1024 for e in engine.api.inspect_image(image_id)["Config"]["Env"])
    try:
        outcome = _execute(engine, tmp_path, executor_instance, _spec(image_reference("depin-test/bigenv", image_id), ["true"]))
        assert outcome.kind == "failure" and outcome.code == FailureCode.BAD_SPEC, (outcome.exit_code, outcome.logs_tail)
        assert "the image's Env holds a string of" in outcome.reason, outcome.reason
    finally:
        if image_id != base:  # never the shared sample image
            engine.images.remove(image_id, force=True)


def test_a_run_the_runtime_never_started_the_init_of_is_never_a_result(engine, sample_images, tmp_path, executor_instance, monkeypatch) -> None:
    """Without image_config_fault's check the same image shows the second guard: the run has no
    proof that the init ran (the runtime's execve of it failed), so it is an engine failure, never
    a result with the runtime's exit code."""
    base = sample_images["busybox"].split("@", 1)[1]
    image_id = _build(
        engine, tmp_path / "ctx", base, "ENV BIG=" + "\\\n".join(["x" * 1024] * 132) + "\n", {}, f"depin-test/bigenv2-{executor_instance}"
    )
    monkeypatch.setattr(containers, "image_config_fault", lambda image_id: None)
    monkeypatch.setattr(execute_module, "image_config_fault", lambda image_id: None)
    try:
        with pytest.raises(InitFailed, match="never started the job init") as info:
            _execute(engine, tmp_path, executor_instance, _spec(image_reference("depin-test/bigenv2", image_id), ["true"]))
        assert not _is_exec_error(info.value)
    finally:
        if image_id != base:  # never the shared sample image
            engine.images.remove(image_id, force=True)
