"""A job that can never start is the job's fault (``BAD_SPEC``), never an engine failure the
provider retries until its deadline and is slashed for (found by review, stop 36): a command path
long enough that the engine's answer about it no longer fit the message we read, and an image whose
own config the engine refuses or that would escape the job's caps. Real containers."""

from __future__ import annotations

import io
from pathlib import Path

import docker
import pytest

from depin.market import FailureCode
from depin.spec import JobSpec
from executor import containers
from executor.containers import LABEL_EXECUTOR, container_name, image_config_fault
from executor.execute import Outcome, execute
from executor.images import image_reference
from executor.results import ResultStore


def _spec(image: str, command: list[str]) -> JobSpec:
    return JobSpec.model_validate({"image": image, "command": command, "resources": {"cpus": 1, "memory_mb": 32, "max_runtime": 30, "output_mb": 1}})


def _run(engine: docker.DockerClient, tmp_path: Path, instance: str, spec: JobSpec) -> Outcome:
    store = ResultStore(tmp_path / "results", "http://127.0.0.1:8700")
    return execute(engine, job_id=7, spec=spec, work_root=tmp_path / "work", store=store,
                   name=container_name(31337, 7, "hostile"), labels={LABEL_EXECUTOR: instance})


@pytest.mark.parametrize(
    "command",
    [
        ["/" + "b" * 200],  # runc repeats the path: the reason came past the 500 characters we read
        ["/" + "/".join(["c" * 60] * 6)],
        ["/" + "d" * 300],  # a path component beyond NAME_MAX: "file name too long"
    ],
    ids=["long-path", "deep-path", "long-name"],
)
def test_a_long_missing_command_is_bad_spec(
    engine: docker.DockerClient, sample_images: dict[str, str], tmp_path: Path, executor_instance: str, command: list[str]
) -> None:
    outcome = _run(engine, tmp_path, executor_instance, _spec(sample_images["busybox"], command))
    assert outcome.kind == "failure" and outcome.code == FailureCode.BAD_SPEC, outcome.reason
    assert "cannot run the command" in outcome.reason


def test_an_image_that_declares_a_volume_is_bad_spec_and_never_runs(
    engine: docker.DockerClient, sample_images: dict[str, str], tmp_path: Path, executor_instance: str
) -> None:
    """The engine would make /data a writable volume on the host disk, outside the read-only root
    and every cap (the review filled 250 MB of the provider's disk with output_mb = 1)."""
    base = sample_images["busybox"].split("@", 1)[1]
    dockerfile = f"FROM {base}\nVOLUME /data\n".encode()
    image, _ = engine.images.build(fileobj=io.BytesIO(dockerfile), tag=f"depin-test/volume-{executor_instance}", rm=True, pull=False)
    try:
        spec = _spec(image_reference("depin-test/volume", image.id), ["sh", "-c", "head -c 5000000 /dev/zero > /data/x; echo ran > /out/r"])
        outcome = _run(engine, tmp_path, executor_instance, spec)
        assert outcome.kind == "failure" and outcome.code == FailureCode.BAD_SPEC
        assert "declares volumes (/data)" in outcome.reason
        assert not (tmp_path / "work").exists() or not list((tmp_path / "work").rglob("r"))  # it never ran
    finally:
        engine.images.remove(image.id, force=True)


@pytest.mark.parametrize(
    ("config", "fault"),
    [
        ({}, None),
        ({"WorkingDir": "/srv", "Env": ["A=1"], "Entrypoint": ["/bin/sh"], "StopSignal": "SIGTERM"}, None),
        ({"StopSignal": "15"}, None),
        ({"StopSignal": "SIGRTMIN+3"}, None),
        ({"StopSignal": "term"}, None),
        ({"WorkingDir": "srv"}, "is not an absolute path"),
        ({"WorkingDir": "/s\x00rv"}, "is not an absolute path"),
        ({"Env": ["A=b\x00c"]}, "Env holds a NUL"),
        ({"Entrypoint": ["/bin/s\x00h"]}, "Entrypoint holds a NUL"),
        ({"Cmd": ["x\x00"]}, "Cmd holds a NUL"),
        ({"StopSignal": "SIGBOGUS"}, "is no signal"),
        ({"StopSignal": "99"}, "is no signal"),
        # str.isdigit() digits int() refuses, and past int()'s 4,300 digits: a ValueError out of
        # execute(), the run given up (found by review, stop 55); an Arabic-Indic 3 is no signal either
        ({"StopSignal": "\u00b2"}, "is no signal"),
        ({"StopSignal": "9" * 5000}, "is no signal"),
        ({"StopSignal": "\u0663"}, "is no signal"),
        ({"StopSignal": "015"}, None),
        ({"Volumes": {"/data": {}, "/out/sub": {}}}, "declares volumes (/data, /out/sub)"),
        # Over the kernel's execve limits (found by review: runc's execve of the init failed with E2BIG)
        ({"Env": ["A=" + "x" * (128 * 1024 - 3)], "Entrypoint": ["y" * (128 * 1024 - 1)]}, None),
        ({"Env": ["A=" + "x" * (128 * 1024 - 2)]}, "Env holds a string of 131072 bytes"),
        ({"Entrypoint": ["/bin/sh", "y" * 128 * 1024]}, "Entrypoint holds a string of 131072 bytes"),
        ({"Entrypoint": "y" * 128 * 1024}, "Entrypoint holds a string"),
        ({"Env": ["A=" + "\u00e9" * 65535]}, "Env holds a string of 131072 bytes"),  # bytes, not characters
        ({"Cmd": ["y" * 128 * 1024]}, None),  # never used: the spec's command replaces it
        ({"Env": [f"A{i}=" + "x" * 100_000 for i in range(11)]}, "may take at most 1048576"),
        ({"Env": ["A="] * 120_000}, "may take at most 1048576"),  # the pointers count
        ({"WorkingDir": "/" + "d" * 255}, None),
        ({"WorkingDir": "/" + "d" * 256}, "longer than the kernel takes"),
        ({"WorkingDir": ("/" + "d" * 200) * 21}, "longer than the kernel takes"),
    ],
)
def test_image_config_faults(config: dict, fault: str | None) -> None:
    """The decision on configs the review built into images (NUL in Env or Entrypoint, a relative
    working directory, SIGBOGUS: each made the engine refuse to create or start the container)."""
    image_id = "sha256:" + "ab" * 32
    containers._IMAGE_CONFIGS[image_id] = config
    try:
        found = image_config_fault(image_id)
    finally:
        del containers._IMAGE_CONFIGS[image_id]
    assert (found is None) if fault is None else (found is not None and fault in found), found


def test_an_images_healthcheck_never_runs_in_a_job_container(
    engine: docker.DockerClient, sample_images: dict[str, str], tmp_path: Path, executor_instance: str
) -> None:
    """An image's HEALTHCHECK would have the engine run its command inside the job's container (on
    Docker), on the job's budget and on each machine's own schedule. Every job container turns it off."""
    base = sample_images["busybox"].split("@", 1)[1]
    dockerfile = f"FROM {base}\nHEALTHCHECK --interval=1s CMD touch /tmp/probed\n".encode()
    image, _ = engine.images.build(fileobj=io.BytesIO(dockerfile), tag=f"depin-test/healthcheck-{executor_instance}", rm=True, pull=False)
    spec = _spec(image_reference("depin-test/healthcheck", image.id), ["true"])
    options = containers.container_options(
        spec, image_id=image.id, name=container_name(31337, 8, "healthcheck"), labels={LABEL_EXECUTOR: executor_instance},
        inputs_dir=tmp_path, output=containers.OutputDir(tmp_path, 1, "watch"), seccomp=None,
        report_dir=tmp_path, init_marker="m",
    )
    created = containers._create(engine, options)
    try:
        assert engine.api.inspect_container(created.id)["Config"]["Healthcheck"]["Test"] == ["NONE"]
        # The control: the same image without the option inherits the check.
        plain = engine.api.create_container(image.id, ["true"], labels={LABEL_EXECUTOR: executor_instance})
        try:
            assert engine.api.inspect_container(plain["Id"])["Config"]["Healthcheck"]["Test"][0] != "NONE"
        finally:
            containers.remove_container(engine, plain["Id"])
    finally:
        containers.remove_container(engine, created.id)
        engine.images.remove(image.id, force=True)
