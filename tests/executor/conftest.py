"""Fixtures for the executor tests (real Podman containers; reusable by other executor test modules):

- ``engine``: a docker client connected to a Podman API service started for the session under a
  temporary folder (stopped afterwards). With ``DEPIN_TEST_DOCKER_HOST`` set, that engine is used
  instead and nothing is started.
- ``sample_images``: :func:`executor.images.build_sample_images` on that engine
  (``{"busybox": "depin/busybox@sha256:…", "checksum": …}``).
- ``executor_instance``: a ``depin.executor`` label value unique to this test session, so that the
  reaper tests never touch containers of other sessions sharing the engine.
- ``result_store`` / ``work_root``: a fresh :class:`executor.results.ResultStore` and work folder.
- ``redis_server``: a redis-server for the module (the unit tests' runtimes over a real Redis).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from executor.containers import managed_containers, remove_container
from executor.engine import connect, start_podman_service, stop_podman_service
from executor.images import build_sample_images
from executor.results import ResultStore
from tests.indexer.services import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def executor_instance() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def engine(executor_instance: str) -> Iterator[docker.DockerClient]:
    host = os.environ.get("DEPIN_TEST_DOCKER_HOST", "").strip()
    if host:
        client = connect(host)
        yield client
        _remove_instance_containers(client, executor_instance)
        client.close()
        return
    # A short path: a unix socket path must fit in 108 bytes.
    state_dir = Path(tempfile.mkdtemp(prefix="depin-podman-"))
    try:
        _, url = start_podman_service(state_dir)
        client = connect(url)
        yield client
        _remove_instance_containers(client, executor_instance)
        client.close()
    finally:
        stop_podman_service(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


def _remove_instance_containers(client: docker.DockerClient, instance: str) -> None:
    for container in managed_containers(client, instance=instance):
        remove_container(client, container.id)


@pytest.fixture(scope="session")
def sample_images(engine: docker.DockerClient) -> dict[str, str]:
    return build_sample_images(engine)


@pytest.fixture
def work_root(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def result_store(tmp_path: Path) -> ResultStore:
    return ResultStore(tmp_path / "results", "http://127.0.0.1:8700")


@pytest.fixture(scope="module")  # not session: ape warns when one starts after module fixtures
def localhost_cert(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for the name ``localhost`` only (no IP address in it)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True, capture_output=True,
    )
    return cert, key
