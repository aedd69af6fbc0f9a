"""Suite-wide isolation.

Commands given no URL talk to the local devnet recorded in ``$DEPIN_DEVNET_DIR`` or ``./.devnet``
(``depinctl.cliutil``). A developer's running devnet must not leak into tests, so every test starts with
``DEPIN_DEVNET_DIR`` pointing at an empty folder; tests about the devnet pass their own.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # A pytest-xdist worker (``make test`` runs two) is started with COLUMNS=80 and LINES=24 set;
    # a serial run has neither. Without them the CLI prints captured tables at their full width, as
    # it does for any pipe, so every test sees the same terminal whichever process runs it.
    for _name in ("COLUMNS", "LINES"):
        os.environ.pop(_name, None)


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
