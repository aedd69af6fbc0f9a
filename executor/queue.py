"""Queueing the executor's work by task name: :func:`send`, the next task of each record state
(:data:`NEXT_TASK`) and the verifier's sampling. Tasks are sent by name through the Celery app
(:mod:`executor.celery`), so a sender never imports :mod:`executor.tasks`.
"""

from __future__ import annotations

import random
from typing import Any

from executor.celery import ROUTES, app

# The task that moves a job on from each record state (recovery and retractions re-queue it).
NEXT_TASK = {
    "claiming": "depin.claim",
    "claimed": "depin.run",
    "running": "depin.run",
    "outcome": "depin.submit",
    "verifying": "depin.verify",
    "challenge": "depin.challenge",
    "arbitrating": "depin.arbitrate",
    "ruling": "depin.rule",
}


def send(name: str, job_id: int | None = None, **kwargs: Any) -> None:
    """Queues task `name` (on its queue) for `job_id`."""
    args = [] if job_id is None else [int(job_id)]
    app.send_task(name, args=args, kwargs=kwargs or None, queue=ROUTES[name])


def sample(rate: float) -> bool:
    """Whether to verify one submission at `rate` (0..1)."""
    return rate >= 1 or random.random() < rate
