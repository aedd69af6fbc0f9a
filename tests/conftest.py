"""Suite-wide isolation.

Commands given no URL talk to the local devnet recorded in ``$DEPIN_DEVNET_DIR`` or ``./.devnet``
(``depinctl.cliutil``). A developer's running devnet must not leak into tests, so every test starts with
``DEPIN_DEVNET_DIR`` pointing at an empty folder; tests about the devnet pass their own.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # A pytest-xdist worker (``make test`` runs two) is started with COLUMNS=80 and LINES=24 set;
    # a serial run has neither. Without them the CLI prints captured tables at their full width, as
    # it does for any pipe, so every test sees the same terminal whichever process runs it.
    for _name in ("COLUMNS", "LINES"):
        os.environ.pop(_name, None)


def _patient_anvil_start() -> None:
    """ape's pytest plugin (``addopts``: ``--network ethereum:local:foundry``) starts an anvil in
    every pytest process at the end of collection and gives it 20 s to answer, a fixed value no ape
    setting changes. On a busy two-core machine (another suite, a fresh-clone CI run beside it) one
    start took longer, and the worker died with an INTERNALERROR before running a test. The start
    still waits for anvil to answer; it now gives up after 180 s."""
    try:
        from ape.api.providers import SubprocessProvider
    except ImportError:  # pragma: no cover - the test extras are not installed
        return
    start = SubprocessProvider.start
    if getattr(start, "_patient", False):
        return

    def patient(self: SubprocessProvider, timeout: int = ANVIL_START_TIMEOUT) -> None:
        start(self, timeout=max(timeout, ANVIL_START_TIMEOUT))

    patient._patient = True  # type: ignore[attr-defined]
    SubprocessProvider.start = patient  # type: ignore[method-assign]


ANVIL_START_TIMEOUT = 180
_patient_anvil_start()

# tests/indexer/services.py's deployed chains: one folder per test run, made by the process that
# starts it (pytest-xdist's workers inherit its environment) and removed when it ends.
_DEPLOY_CACHE_ENV = "DEPIN_TEST_DEPLOY_CACHE"
_made_deploy_cache: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(_DEPLOY_CACHE_ENV) and not os.environ.get("PYTEST_XDIST_WORKER"):
        _made_deploy_cache.append(tempfile.mkdtemp(prefix="depin-deployed-chains-"))
        os.environ[_DEPLOY_CACHE_ENV] = _made_deploy_cache[0]


def pytest_unconfigure(config: pytest.Config) -> None:
    for folder in _made_deploy_cache:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(_DEPLOY_CACHE_ENV, None)


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A CLI command run in-process configures the root logger (a handler, level INFO), as its own
    process would: restore it after each test so the next one sees the interpreter's defaults."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _no_ambient_devnet(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("DEPIN_DEVNET_DIR", str(_empty_devnet_dir(tmp_path_factory)))


_EMPTY: list[Path] = []


def _empty_devnet_dir(factory: pytest.TempPathFactory) -> Path:
    if not _EMPTY:
        _EMPTY.append(factory.mktemp("no-devnet"))
    return _EMPTY[0]
