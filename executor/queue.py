"""Queueing the executor's work by task name: :func:`send`, the next task of each record state
(:data:`NEXT_TASK`) and the verifier's sampling. Tasks are sent by name through the Celery app
(:mod:`executor.celery`), so a sender never imports :mod:`executor.tasks`.
"""

from __future__ import annotations

from typing import Any

from executor.celery import ROUTES, app

# The task that moves a job on from each record state (recovery and retractions re-queue it).
NEXT_TASK = {
    "claiming": "depin.claim",
    "claimed": "depin.run",
    "running": "depin.run",
    "outcome": "depin.submit",
}


def send(name: str, job_id: int | None = None, *, countdown: float | None = None, **kwargs: Any) -> None:
    """Queues task `name` (on its queue) for `job_id`, to run no sooner than `countdown` seconds
    from now when given."""
    args = [] if job_id is None else [int(job_id)]
    app.send_task(name, args=args, kwargs=kwargs or None, queue=ROUTES[name], countdown=countdown)
