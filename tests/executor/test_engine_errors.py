"""An engine that fails is :class:`ContainerEngineError` (retried by the provider), never a raw
``requests`` error or docker SDK error (which ``run_job`` would treat as a crash and give the job up,
to be slashed at its deadline), and never a made-up exit code.

Against the real engine: a client pointed at a socket where nothing listens (or a closed TCP port),
a proxy in front of the engine's socket that the test cuts while a job runs, and a container
removed under its run. The ``requests`` message of a vanished unix socket reads "No such file or
directory", which must not pass for an exec error of the job (a BAD_SPEC failure)."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
from docker.errors import NotFound

from depin.spec import JobSpec
from executor import containers
from executor.containers import (
    LABEL_EXECUTOR,
    LABEL_JOB,
    ContainerEngineError,
    ContainerGone,
    _wait,
    check_image,
    container_name,
    managed_containers,
    prepare_output_dir,
    release_output_dir,
    remove_container,
    run_container,
)
from executor.execute import _is_exec_error, execute
from executor.jobtask import transient_errors

from .stack import wait_for

JOIN_TIMEOUT = 60.0


def _spec(images: dict[str, str], command: list[str]) -> JobSpec:
    return JobSpec.model_validate(
        {"image": images["busybox"], "command": command, "resources": {"cpus": 1, "memory_mb": 32, "max_runtime": 120, "output_mb": 1}}
    )


def _assert_engine_error(exc: BaseException) -> None:
    assert isinstance(exc, ContainerEngineError), repr(exc)
    assert isinstance(exc, transient_errors())  # what run_job retries
    assert not isinstance(exc, requests.exceptions.RequestException | docker.errors.DockerException)
    assert "\n" not in str(exc)
    assert not _is_exec_error(exc), str(exc)  # an engine outage is never the spec's fault


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path (a unix socket path must fit in 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="depin-eng-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _closed_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(params=["unix", "tcp"])
def dead_engine(request, short_dir: Path) -> Iterator[docker.DockerClient]:
    """A client of an engine that is not there: a unix socket path where nothing listens, or a closed TCP port."""
    url = f"unix://{short_dir / 'gone.sock'}" if request.param == "unix" else f"tcp://127.0.0.1:{_closed_tcp_port()}"
    client = docker.DockerClient(base_url=url, version="1.41", timeout=5)
    yield client
    client.close()


def _errors_of(call: Callable[[], Any]) -> BaseException:
    with pytest.raises(Exception) as info:
        call()
    return info.value


def test_check_image_on_an_engine_that_is_not_there(dead_engine) -> None:
    exc = _errors_of(lambda: check_image(dead_engine, "depin/busybox@sha256:" + "a" * 64))
    _assert_engine_error(exc)
    assert "cannot inspect image" in str(exc) and "the engine does not answer (ConnectionError" in str(exc)
    assert isinstance(exc.__cause__, requests.exceptions.ConnectionError)  # the whole story stays on the cause


def test_run_container_on_an_engine_that_is_not_there(dead_engine, short_dir: Path) -> None:
    spec = _spec({"busybox": "depin/busybox@sha256:" + "a" * 64}, ["true"])
    (short_dir / "in").mkdir()
    output = prepare_output_dir(short_dir / "out", 1 << 20)
    labels = {LABEL_JOB: "1", LABEL_EXECUTOR: "dead"}

    def run(seccomp: bool) -> None:
        run_container(
            dead_engine, spec, image_id="sha256:" + "a" * 64, name="depin-job-0-1-dead", labels=labels,
            inputs_dir=short_dir / "in", output=output, seccomp=seccomp,
        )

    try:
        _assert_engine_error(_errors_of(lambda: run(True)))  # asks for the engine's version first
        exc = _errors_of(lambda: run(False))  # the image's config (its entrypoint), as check_image did not read it
        _assert_engine_error(exc)
        assert "cannot inspect image" in str(exc)
        containers._IMAGE_CONFIGS["sha256:" + "a" * 64] = {}  # as check_image leaves it
        exc = _errors_of(lambda: run(False))  # straight to create
        _assert_engine_error(exc)
        assert "cannot create container depin-job-0-1-dead" in str(exc)
    finally:
        containers._IMAGE_CONFIGS.pop("sha256:" + "a" * 64, None)
        release_output_dir(output)


def test_remove_and_list_on_an_engine_that_is_not_there(dead_engine) -> None:
    _assert_engine_error(_errors_of(lambda: remove_container(dead_engine, "depin-job-0-1-dead")))
    _assert_engine_error(_errors_of(lambda: managed_containers(dead_engine)))


class SocketCut:
    """A unix socket proxy in front of the engine's socket, cut at will: the engine's socket going
    away under a run (every connection dropped, the socket file gone)."""

    def __init__(self, target: str, path: Path) -> None:
        self.target, self.path = target, path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(16)
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.is_cut = False
        threading.Thread(target=self._accept, name="socket-cut", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            with self.lock:
                if self.is_cut:
                    client.close()
                    upstream.close()
                    return
                self.sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self.lock:
            self.is_cut = True
            self.listener.close()
            self.path.unlink(missing_ok=True)
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def _running(engine: docker.DockerClient, name: str) -> bool:
    try:
        return bool(engine.api.inspect_container(name)["State"]["Running"])
    except NotFound:
        return False


def _in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    thread = threading.Thread(target=body, name="run", daemon=True)
    thread.start()
    return thread, box


def test_the_engine_socket_going_away_mid_run_is_an_engine_error(
    engine, sample_images, work_root, result_store, executor_instance, short_dir: Path
) -> None:
    socket_path = getattr(engine.api.get_adapter(engine.api.base_url), "socket_path", None)
    if socket_path is None:
        pytest.skip("the engine is not reached through a unix socket")
    proxy = SocketCut(socket_path, short_dir / "engine.sock")
    client = docker.DockerClient(base_url=f"unix://{proxy.path}", version=engine.api.api_version, timeout=30)
    name = container_name(31337, 1, f"cut-{executor_instance}")
    try:
        thread, box = _in_thread(
            lambda: execute(
                client, job_id=1, spec=_spec(sample_images, ["sleep", "300"]), work_root=work_root, store=result_store,
                name=name, labels={LABEL_EXECUTOR: executor_instance},
            )
        )
        wait_for(lambda: _running(engine, name), 60, "the job's container to run")
        proxy.cut()
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive()
        assert "result" not in box, box  # before the fix: a BAD_SPEC failure ("No such file or directory")
        _assert_engine_error(box["error"])
    finally:
        proxy.cut()
        client.close()
        remove_container(engine, name)


def test_a_container_removed_under_its_run_is_an_engine_error(engine, sample_images, work_root, executor_instance) -> None:
    name = container_name(31337, 2, f"gone-{executor_instance}")
    (work_root / "in").mkdir()
    output = prepare_output_dir(work_root / "out", 1 << 20)
    image_id = check_image(engine, sample_images["busybox"])
    labels = {LABEL_JOB: "2", LABEL_EXECUTOR: executor_instance}
    try:
        thread, box = _in_thread(
            lambda: run_container(
                engine, _spec(sample_images, ["sleep", "300"]), image_id=image_id, name=name, labels=labels, inputs_dir=work_root / "in", output=output
            )
        )
        wait_for(lambda: _running(engine, name), 60, "the job's container to run")
        engine.api.remove_container(name, force=True, v=True)
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive()
        run = box.get("result")
        if run is None:
            _assert_engine_error(box["error"])  # ContainerGone, or the engine's own error if it caught the removal mid-way
        else:
            # The one race the API cannot tell: the removal's SIGKILL seen as the job's exit before the
            # container disappears reads as exit 137 (an OOM, see the module doc); never the exit 0
            # of Podman's failed wait that the run reported before the fix.
            assert (run.status, run.exit_code) == ("oom", 137), run
    finally:
        release_output_dir(output)
        remove_container(engine, name)


def test_a_wait_on_a_removed_container_is_container_gone(engine, sample_images, executor_instance) -> None:
    image_id = check_image(engine, sample_images["busybox"])
    container = engine.api.create_container(image_id, ["true"], name=container_name(31337, 3, f"wait-{executor_instance}"))
    assert remove_container(engine, container["Id"])
    exc = _errors_of(lambda: _wait(engine, container["Id"], 5.0))
    _assert_engine_error(exc)
    assert isinstance(exc, ContainerGone)
    assert not remove_container(engine, container["Id"])
