"""An image whose own files sit where the engine mounts something for every job, but of the wrong
kind (``RUN touch /out``: a file where a directory is mounted; a directory at ``/etc/passwd``, which
the engine reads to find the job's user; a file on the way, ``/var``), makes the OCI runtime fail
the container's start before the job's init runs. That read as the engine failing: every provider
that claimed the job retried it to the deadline and was slashed (found by review). It is the
image's doing, the same on every machine: ``image_mount_fault`` reads the image's types there before
its first run (BAD_SPEC), once per image ID. Real containers."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import docker
import pytest

from depin.market import FailureCode
from depin.spec import JobSpec
from executor import containers
from executor import execute as execute_module
from executor.containers import (
    INIT_PATH,
    INIT_REPORT_DIR,
    LABEL_EXECUTOR,
    LABEL_JOB,
    ROOT_MOUNT_KINDS,
    CommandRefused,
    ContainerEngineError,
    container_name,
    container_options,
    prepare_init_report,
    prepare_output_dir,
    refused_command,
    release_output_dir,
)
from executor.execute import Outcome, execute
from executor.images import image_reference
from executor.results import ResultStore


def _spec(image: str, command: list[str]) -> JobSpec:
    return JobSpec.model_validate({"image": image, "command": command, "resources": {"cpus": 1, "memory_mb": 32, "max_runtime": 30, "output_mb": 1}})


def _execute(engine: docker.DockerClient, tmp_path: Path, instance: str, spec: JobSpec, sub: str) -> Outcome:
    store = ResultStore(tmp_path / f"results-{sub}", "http://127.0.0.1:8700")
    return execute(engine, job_id=11, spec=spec, work_root=tmp_path / f"work-{sub}", store=store,
                   name=container_name(31337, 11, f"mnt-{tmp_path.name}"), labels={LABEL_EXECUTOR: instance})


def _build(engine: docker.DockerClient, context: Path, base: str, lines: str, tag: str, tar: dict[str, str] | None = None) -> str:
    """Builds ``FROM base`` + `lines`; `tar` ({member: "dir" | "file" | "->target"}) becomes
    ``layer.tar`` in the context, for lines to ``ADD`` (paths the build itself mounts over, like
    /etc/hosts or /etc/resolv.conf)."""
    context.mkdir()
    if tar:
        with tarfile.open(context / "layer.tar", "w") as out:
            for member, kind in tar.items():
                info = tarfile.TarInfo(member)
                info.type = tarfile.DIRTYPE if kind == "dir" else tarfile.SYMTYPE if kind.startswith("->") else tarfile.REGTYPE
                info.linkname = kind[2:] if kind.startswith("->") else ""
                info.mode = 0o755 if kind == "dir" else 0o644
                out.addfile(info, io.BytesIO(b"") if kind == "file" else None)
    (context / "Dockerfile").write_text(f"FROM {base}\n{lines}")
    image, _ = engine.images.build(path=str(context), tag=tag, rm=True, forcerm=True, pull=False)
    return str(image.id)


HOSTILE = [
    ("out-file", "RUN touch /out\n", None, "a regular file at '/out'"),
    ("in-file", "RUN touch /in\n", None, "a regular file at '/in'"),
    ("tmp-file", "RUN rm -rf /tmp && touch /tmp\n", None, "a regular file at '/tmp'"),
    ("var-file", "RUN touch /var\n", None, "a regular file at '/var'"),  # on the way to /var/tmp
    ("out-fifo", "RUN mkfifo /out\n", None, "a device, FIFO or socket at '/out'"),
    ("passwd-dir", "RUN mkdir -p /etc/passwd\n", None, "a directory at '/etc/passwd'"),
    ("hosts-dir", "ADD layer.tar /\n", {"etc/hosts": "dir", "etc/hosts/x": "file"}, "a directory at '/etc/hosts'"),
    ("workdir-file", "WORKDIR /data\nRUN cd / && rmdir /data && touch /data\n", None, "a regular file at '/data'"),
]


@pytest.mark.parametrize(("lines", "tar", "fault"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_an_image_with_the_wrong_kind_of_file_at_a_mount_target_is_bad_spec(
    engine, sample_images, tmp_path, executor_instance, monkeypatch, lines, tar, fault
) -> None:
    base = sample_images["busybox"].split("@", 1)[1]
    image_id = _build(engine, tmp_path / "ctx", base, "USER 0\n" + lines + "USER 65534\n", f"depin-test/mnt-{executor_instance}", tar)
    try:
        assert image_id != base
        spec = _spec(image_reference("depin-test/mnt", image_id), ["sh", "-c", "echo ran > /out/r"])
        outcome = _execute(engine, tmp_path, executor_instance, spec, "checked")
        assert outcome.kind == "failure" and outcome.code == FailureCode.BAD_SPEC, (outcome.kind, outcome.exit_code, outcome.logs_tail)
        assert fault in outcome.reason and "no job container could start" in outcome.reason, outcome.reason
        assert containers._MOUNT_FAULTS[image_id] is not None
        # The defect without the check: the engine fails the start, which no reading takes for the job's.
        monkeypatch.setattr(execute_module, "image_mount_fault", lambda *a, **k: None)
        with pytest.raises(ContainerEngineError) as raised:
            _execute(engine, tmp_path, executor_instance, spec, "unchecked")
        assert not isinstance(raised.value, CommandRefused) and not refused_command(raised.value), raised.value
    finally:
        if image_id != base:  # never the shared sample image
            engine.images.remove(image_id, force=True)


def test_an_ordinary_image_runs_and_is_checked_once(engine, sample_images, tmp_path, executor_instance) -> None:
    """Kinds the engine takes: a symlink to a file at /etc/passwd (Nix-built images), a dangling
    /etc/resolv.conf symlink (systemd's), directories where the mounts go, an existing working
    directory. The check costs engine requests on the image's first run only."""
    base = sample_images["busybox"].split("@", 1)[1]
    lines = (
        "USER 0\nRUN mkdir -p /var/tmp /nix /in /out && echo 'nobody:x:65534:65534::/:/bin/sh' > /nix/passwd\nADD layer.tar /\n"
        "WORKDIR /srv/app\nUSER 65534\n"
    )
    tar = {"etc/passwd": "->/nix/passwd", "etc/resolv.conf": "->../run/systemd/resolve/stub-resolv.conf"}
    image_id = _build(engine, tmp_path / "ctx", base, lines, f"depin-test/mntok-{executor_instance}", tar)
    try:
        spec = _spec(image_reference("depin-test/mntok", image_id), ["sh", "-c", "pwd > /out/r"])
        before = containers.MOUNT_CHECK_REQUESTS[0]
        first = _execute(engine, tmp_path, executor_instance, spec, "first")
        assert first.kind == "result" and first.exit_code == 0, first
        spent = containers.MOUNT_CHECK_REQUESTS[0] - before
        assert image_id in containers._MOUNT_FAULTS and containers._MOUNT_FAULTS[image_id] is None
        assert 3 <= spent <= 24, spent
        second = _execute(engine, tmp_path, executor_instance, spec, "second")
        assert second.kind == "result" and second.exit_code == 0, second
        assert containers.MOUNT_CHECK_REQUESTS[0] - before == spent  # cached by image ID
        assert not engine.containers.list(all=True, filters={"label": f"{LABEL_EXECUTOR}={executor_instance}"})
        # The image has what the docstring says (the ADD replaced the build's own files).
        made = engine.api.create_container(image_id, command=["true"], labels={LABEL_EXECUTOR: executor_instance, containers.LABEL_MANAGED: "true"})
        try:
            for path in ("/etc/passwd", "/etc/resolv.conf"):
                found = containers._path_stat(engine, made["Id"], path)
                assert found is not None and found["mode"] & containers._GO_MODE_SYMLINK, (path, found)
        finally:
            containers.remove_container(engine, made["Id"])
        print(f"mount check: {spent} engine requests on the first run")
    finally:
        if image_id != base:
            engine.images.remove(image_id, force=True)


def test_the_sample_image_passes(engine, sample_images, tmp_path, executor_instance) -> None:
    containers._MOUNT_FAULTS.pop(sample_images["busybox"].split("@", 1)[1], None)
    outcome = _execute(engine, tmp_path, executor_instance, _spec(sample_images["busybox"], ["true"]), "sample")
    assert outcome.kind == "result" and outcome.exit_code == 0, outcome


def test_every_mount_target_of_a_job_container_has_a_kind(tmp_path) -> None:
    """Each mount container_options asks for, outside the runtime's own /dev, is in ROOT_MOUNT_KINDS
    with the kind its mount needs (a bind mount of a file needs a file)."""
    spec = _spec("depin/busybox@sha256:" + "0" * 64, ["true"])
    (tmp_path / "in").mkdir()
    (tmp_path / "etc").mkdir()
    output = prepare_output_dir(tmp_path / "out", 1 << 20)
    try:
        marker = prepare_init_report(tmp_path / "report")
        options = container_options(
            spec, image_id="sha256:" + "0" * 64, name="x", labels={LABEL_EXECUTOR: "x", LABEL_JOB: "1"}, inputs_dir=tmp_path / "in", output=output,
            seccomp=None, etc_dir=tmp_path / "etc", report_dir=tmp_path / "report", init_marker=marker,
        )
    finally:
        release_output_dir(output)
    wanted = {t: "dir" for t in options["tmpfs"]}
    for mount in options["mounts"]:
        source = Path(mount["Source"])
        wanted[mount["Target"]] = "dir" if source.is_dir() or mount["Target"] == INIT_REPORT_DIR else "file"
    for target, kind in wanted.items():
        if target.startswith("/dev/"):
            assert target in (INIT_PATH, INIT_REPORT_DIR)
            continue
        assert ROOT_MOUNT_KINDS.get(target) == kind, target
