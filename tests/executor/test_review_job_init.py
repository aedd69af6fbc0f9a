"""Adversarial review of the job init (executor/depin-init.c) and its wiring: defects reproduced on a
real engine, each marked xfail(strict) until fixed."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from depin.market import FailureCode
from depin.spec import JobSpec
from executor.containers import LABEL_EXECUTOR, container_name
from executor.execute import Outcome, execute
from executor.images import image_reference
from executor.results import ResultStore


def _spec(image: str, command: list[str]) -> JobSpec:
    return JobSpec.model_validate(
        {"image": image, "command": command, "resources": {"cpus": 1, "memory_mb": 32, "max_runtime": 30, "output_mb": 1}}
    )


def _execute(engine: docker.DockerClient, tmp_path: Path, instance: str, spec: JobSpec, job_id: int = 9) -> Outcome:
    store = ResultStore(tmp_path / "results", "http://127.0.0.1:8700")
    return execute(
        engine,
        job_id=job_id,
        spec=spec,
        work_root=tmp_path / "work",
        store=store,
        name=container_name(31337, job_id, f"review-{tmp_path.name}"),
        labels={LABEL_EXECUTOR: instance},
    )


def _build(engine: docker.DockerClient, context: Path, base: str, lines: str, files: dict[str, bytes], tag: str) -> str:
    """Builds ``FROM base`` + `lines` with `files` (mode 0755) in the build context."""
    context.mkdir()
    for name, data in files.items():
        (context / name).write_bytes(data)
        (context / name).chmod(0o755)
    (context / "Dockerfile").write_text(f"FROM {base}\n{lines}")
    image, _ = engine.images.build(path=str(context), tag=tag, rm=True, forcerm=True, pull=False)
    return str(image.id)


@pytest.mark.xfail(
    strict=True,
    reason="review: an image whose ENV (or ENTRYPOINT) holds a string over MAX_ARG_STRLEN (128 KiB) can never start: the runtime's "
    "own execve of the init fails (E2BIG) after start, so no marker is written and the run is taken as the job's result (runc: "
    "exit 1, empty /out; another runtime exits otherwise), where image_config_fault should refuse it as BAD_SPEC",
)
def test_an_image_env_over_the_kernels_argument_limit_is_bad_spec(engine, sample_images, tmp_path, executor_instance) -> None:
    """The init never runs (runc logs "exec /dev/depin-init: argument list too long" and the
    container exits 1): nothing tells the executor that the job did not run, so a run the image made
    impossible becomes a result whose exit code is the runtime's choice, not the job's."""
    base = sample_images["busybox"].split("@", 1)[1]
    image_id = _build(
        engine, tmp_path / "ctx", base, "ENV BIG=" + "\\\n".join(["x" * 1024] * 132) + "\n", {}, f"depin-test/bigenv-{executor_instance}"
    )
    assert image_id != base and any(len(e) > 128 * 1024 for e in engine.api.inspect_image(image_id)["Config"]["Env"])
    try:
        outcome = _execute(engine, tmp_path, executor_instance, _spec(image_reference("depin-test/bigenv", image_id), ["true"]))
        assert outcome.kind == "failure" and outcome.code == FailureCode.BAD_SPEC, (outcome.exit_code, outcome.logs_tail)
    finally:
        if image_id != base:  # never the shared sample image
            engine.images.remove(image_id, force=True)
