"""A call that must not block: run it in a thread and fail the test if it has not ended."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def raised_within(seconds: float, call: Callable[[], Any]) -> BaseException | None:
    """Runs `call` in a daemon thread: its exception (None if it returned); fails the test when it is
    still running after `seconds` (the defects these tests guard against block for ever: a generous
    bound, not a speed)."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            raised.append(None)
        except BaseException as exc:  # handed to the test
            raised.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert raised, f"the call still blocks after {seconds} s"
    return raised[0]
