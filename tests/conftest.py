"""Suite-wide isolation.

Commands given no URL talk to the local devnet recorded in ``$DEPIN_DEVNET_DIR`` or ``./.devnet``
(``depinctl.cliutil``). A developer's running devnet must not leak into tests, so every test starts with
``DEPIN_DEVNET_DIR`` pointing at an empty folder; tests about the devnet pass their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _no_ambient_devnet(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("DEPIN_DEVNET_DIR", str(_empty_devnet_dir(tmp_path_factory)))


_EMPTY: list[Path] = []


def _empty_devnet_dir(factory: pytest.TempPathFactory) -> Path:
    if not _EMPTY:
        _EMPTY.append(factory.mktemp("no-devnet"))
    return _EMPTY[0]
