"""A verifier judges a provider's TIME_LIMIT by the runtime the provider was held to, not by the
ρ x slack it runs with itself (found by review, stop 36): real containers through the engine."""

from __future__ import annotations

from pathlib import Path

import docker

from depin.commitment import failure_digest
from depin.market import FailureCode
from depin.spec import JobSpec
from executor.containers import LABEL_EXECUTOR, container_name
from executor.execute import Outcome, execute
from executor.results import ResultStore
from executor.verifier import audit_spec, past_time_limit

LIMIT = 3
RHO_PCT = 200  # the devnet's rhoPct: a verifier runs with 2 x the runtime


def _spec(image: str, script: str) -> JobSpec:
    return JobSpec.model_validate(
        {"image": image, "command": ["sh", "-c", script], "resources": {"cpus": 1, "memory_mb": 32, "max_runtime": LIMIT, "output_mb": 1}}
    )


def _run(engine: docker.DockerClient, tmp_path: Path, instance: str, spec: JobSpec, role: str) -> Outcome:
    store = ResultStore(tmp_path / role / "results", "http://127.0.0.1:8700")
    return execute(
        engine, job_id=9, spec=spec, work_root=tmp_path / role / "work", store=store,
        name=container_name(31337, 9, role), labels={LABEL_EXECUTOR: instance},
    )


def _unread() -> int:
    raise AssertionError("the provider's claim is read only for a re-run past the limit")


def test_a_job_that_outlasts_its_runtime_is_judged_a_time_limit_like_the_providers(
    engine: docker.DockerClient, sample_images: dict[str, str], tmp_path: Path, executor_instance: str
) -> None:
    """A deterministic job that runs between 1 and ρ times its limit: the honest provider is killed
    at the limit; the verifier, with ρ x the limit, finishes it. Committing that result would outvote
    the provider; past_time_limit makes the verifier commit the provider's TIME_LIMIT digest."""
    spec = _spec(sample_images["busybox"], f"sleep {LIMIT + 1}; echo done > /out/r")
    provider = _run(engine, tmp_path, executor_instance, spec, "provider")
    assert provider.kind == "failure" and provider.code == FailureCode.TIME_LIMIT
    verifier = _run(engine, tmp_path, executor_instance, audit_spec(spec, RHO_PCT), "verifier")
    assert verifier.kind == "result" and verifier.durations.run > LIMIT  # what it committed before
    assert past_time_limit(verifier, LIMIT, lambda: int(FailureCode.TIME_LIMIT))
    assert failure_digest(int(FailureCode.TIME_LIMIT)) == failure_digest(int(provider.code))
    # A provider that submitted a result on such a job: the slack is the verifier's, its result stands.
    assert not past_time_limit(verifier, LIMIT, lambda: 0)


def test_a_false_time_limit_claim_is_outvoted_by_a_run_within_the_limit(
    engine: docker.DockerClient, sample_images: dict[str, str], tmp_path: Path, executor_instance: str
) -> None:
    """A provider that claims TIME_LIMIT for a job that ends well within its runtime gains nothing:
    the verifier's run ends within the limit and commits its result."""
    spec = _spec(sample_images["busybox"], "echo done > /out/r")
    verifier = _run(engine, tmp_path, executor_instance, audit_spec(spec, RHO_PCT), "verifier")
    assert verifier.kind == "result" and verifier.durations.run < LIMIT
    assert not past_time_limit(verifier, LIMIT, _unread)
