"""`python -m executor flower` (what `depin executor start --flower` runs): Flower on the executor's
broker, its key prefix included, answers and lists the executor's Celery workers."""

from __future__ import annotations

import sys

import requests

from depin.deployment import REPO_ROOT
from depinctl.procs import ManagedProcess, free_port
from tests.executor.stack import Stack, wait_for


def test_flower_answers_and_lists_the_workers(stack: Stack) -> None:
    ex = stack.provider
    port = free_port()
    proc = ManagedProcess("flower", [sys.executable, "-m", "executor", "flower", "--config", str(ex.config_path), "--role", ex.role],
                          log_path=ex.workdir / "flower.log", cwd=REPO_ROOT, env={**ex.env, "DEPIN_FLOWER_PORT": str(port)})
    url = f"http://127.0.0.1:{port}"

    def workers() -> list[str]:
        try:
            response = requests.get(f"{url}/workers", params={"json": 1, "refresh": 1}, timeout=5)
        except requests.RequestException:
            return []
        return sorted(w["hostname"] for w in response.json()["data"]) if response.status_code == 200 else []

    try:
        names = wait_for(lambda: (found := workers()) and len(found) >= 2 and found, 90, "Flower to list the compute and chain workers")
        assert any(n.startswith("compute-provider-") for n in names) and any(n.startswith("chain-provider-") for n in names), names
        assert requests.get(url + "/", timeout=5).status_code == 200
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{(ex.workdir / 'flower.log').read_text()[-3000:]}") from None
    finally:
        proc.stop()
