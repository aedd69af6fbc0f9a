"""Fixtures of the explorer's browser test and the Flower test: the executor tests' engine and
sample images, and one whole stack for the package (tests/executor/stack.py: anvil, Redis, the
indexer, Podman, a provider executor)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from depinctl.procs import free_port
from tests.executor.conftest import engine, executor_instance, sample_images  # noqa: F401  (pytest fixtures)
from tests.executor.stack import PROVIDER, REQUESTER, Stack


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("explorer"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER)
        metrics_bind = f"127.0.0.1:{free_port()}"  # the executor's /metrics (served by its result server's process)
        s.provider = s.executor("provider", "provider", PROVIDER, policy={"images": [], "max_memory_mb": 512},
                                extra_env={"DEPIN_EXECUTOR_METRICS": metrics_bind, "DEPIN_CELERY_EVENTS": "1"})
        s.executor_metrics_url = f"http://{metrics_bind}/metrics"
        yield s
    finally:
        s.close()
