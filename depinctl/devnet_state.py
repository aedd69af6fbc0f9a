"""Where a devnet lives, for commands that were given no URLs: its state folder and state file.

Cheap on purpose (standard library only): every CLI command may read it to pick its defaults,
without importing the devnet machinery (:mod:`depinctl.devnet`), which itself uses the CLI's
helpers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_STATE_DIR = Path(".devnet")
STATE_DIR_ENV = "DEPIN_DEVNET_DIR"
STATE_FILE = "devnet.json"
CHAIN_ID = 31337


def default_state_dir() -> Path:
    """``$DEPIN_DEVNET_DIR``, else ``.devnet`` in the current directory."""
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def input_file_roots(state_dir: Path) -> tuple[Path, Path]:
    """The folders the devnet's executors read ``file://`` inputs from (``DEPIN_INPUT_FILE_ROOTS``):
    the folder holding the state folder (the project folder, for the default ``.devnet``) and the
    state folder itself. Requester and provider share the machine; nothing else of it is readable."""
    folder = Path(state_dir).absolute()
    return folder.parent, folder


def discover(state_dir: Path | None = None) -> dict[str, str] | None:
    """Where the devnet of `state_dir` (default: :func:`default_state_dir`) is, for commands that
    were given no URLs: ``{"rpc_url", "redis_url", "deployment", "docker_host"}`` read from its
    state file, or None when there is no devnet there. Cheap (one small JSON file, no imports
    beyond the standard library), so a CLI can call it to pick its defaults."""
    path = Path(state_dir or default_state_dir()) / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    # A damaged file (of another shape than `depin devnet up` writes) is no devnet either.
    if not isinstance(data, dict):
        return None
    ports, engine = data.get("ports"), data.get("engine") or {}
    if not isinstance(ports, dict) or not isinstance(engine, dict):
        return None
    if any(name in ports and not _is_port(ports[name]) for name in ("anvil", "redis")):
        return None
    docker_host = engine.get("docker_host", "")
    if not isinstance(docker_host, str):
        return None
    folder = path.parent.absolute()
    found = {
        "rpc_url": f"http://127.0.0.1:{ports['anvil']}" if "anvil" in ports else "",
        "redis_url": f"redis://127.0.0.1:{ports['redis']}/0" if "redis" in ports else "",
        "deployment": str(folder / "deployments" / f"{CHAIN_ID}.json"),
        "docker_host": docker_host,
    }
    return {k: v for k, v in found.items() if v}


def _is_port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535
