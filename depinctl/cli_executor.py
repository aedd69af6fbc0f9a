"""`depin executor …`: The provider executor: Celery workers that claim, run and settle jobs.

``depin executor start --config depin.toml [--role provider]`` runs the whole
executor (both Celery workers, beat, the dispatcher and the result server) as child processes and
stops them cleanly on SIGTERM. The sub-commands ``worker``, ``beat``, ``dispatcher`` and ``results``
run one component each (for a process manager, or the devnet launcher); ``reap`` removes this
executor's orphan containers; ``health`` exits non-zero when the chain worker is dead or stuck
(:mod:`executor.health`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from depinctl.cliutil import TYPER_SETTINGS, user_errors

app = typer.Typer(help="The provider executor: Celery workers that claim, run and settle jobs.", **TYPER_SETTINGS)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="depin.toml (default: $DEPIN_CONFIG).", exists=True, dir_okay=False),
]
RoleOpt = Annotated[
    str | None,
    typer.Option("--role", help="provider (the only role; default: [executor] role)."),
]


def _check(config: Path | None, role: str | None) -> None:
    """Fails early, with one line, on a bad config or role (before any child process starts)."""
    from executor.runtime import load_executor_config  # lazy: start-up

    load_executor_config(config, role)


@app.command()
@user_errors
def start(
    config: ConfigOpt = None,
    role: RoleOpt = None,
    flower: Annotated[bool, typer.Option("--flower", help="Also run Flower, the Celery monitor (web UI on 127.0.0.1).")] = False,
    flower_port: Annotated[int, typer.Option(help="Flower's port (1-65535).", min=1, max=65535)] = 5555,
    metrics: Annotated[
        str | None,
        typer.Option("--metrics", metavar="HOST:PORT", help="Serve Prometheus /metrics here (default: $DEPIN_EXECUTOR_METRICS; none)."),
    ] = None,
) -> None:
    """Run the whole executor: compute and chain workers, beat, dispatcher, result server (and Flower).

    Example: depin executor start --config depin.toml --role provider --flower --metrics 127.0.0.1:9102
    """

    from executor.worker import COMPONENTS, ENV_EVENTS, ENV_FLOWER_PORT, preflight, run_all  # lazy: start-up

    if config is None and not os.environ.get("DEPIN_CONFIG"):
        from depin.config import ConfigError  # lazy: start-up

        raise ConfigError("no configuration: pass --config depin.toml (or set DEPIN_CONFIG)")
    path = config or Path(os.environ["DEPIN_CONFIG"])
    preflight(path, role)  # deployment, key, Redis, RPC: one error line before any child starts
    components: tuple[str, ...] = COMPONENTS
    if metrics:
        os.environ["DEPIN_EXECUTOR_METRICS"] = metrics  # the result server's process serves them
    if os.environ.get("DEPIN_EXECUTOR_METRICS"):
        typer.echo(f"metrics: http://{os.environ['DEPIN_EXECUTOR_METRICS']}/metrics")
    if flower:
        os.environ[ENV_FLOWER_PORT] = str(flower_port)
        os.environ[ENV_EVENTS] = "1"  # the workers send the events Flower shows
        components = (*COMPONENTS, "flower")
        typer.echo(f"flower: http://127.0.0.1:{flower_port}/")
    raise typer.Exit(run_all(path, role, components=components))


@app.command()
@user_errors
def worker(
    config: ConfigOpt = None,
    role: RoleOpt = None,
    queue: Annotated[str, typer.Option(help="compute (container runs) or chain (transactions).")] = "compute",
    concurrency: Annotated[int | None, typer.Option(help="compute: processes (default: [executor] concurrency).")] = None,
) -> None:
    """Run one Celery worker (compute: container runs; chain: transactions, one at a time).

    Example: depin executor worker --config depin.toml --queue chain
    """
    from executor.worker import run_worker  # lazy: start-up

    _check(config, role)
    run_worker(config, role, queue, concurrency=concurrency)


@app.command()
@user_errors
def beat(config: ConfigOpt = None, role: RoleOpt = None) -> None:
    """Run Celery beat: finalize due jobs, withdraw, poke deadlines, recover stuck jobs.

    Example: depin executor beat --config depin.toml
    """
    from executor.worker import run_beat  # lazy: start-up

    _check(config, role)
    run_beat(config, role)


@app.command()
@user_errors
def dispatcher(config: ConfigOpt = None, role: RoleOpt = None) -> None:
    """Run the dispatcher: the indexer's event stream → policy → claim → run.

    Example: depin executor dispatcher --config depin.toml --role provider
    """
    from executor.worker import run_dispatcher  # lazy: start-up

    _check(config, role)
    run_dispatcher(config, role)


@app.command()
@user_errors
def results(config: ConfigOpt = None, role: RoleOpt = None) -> None:
    """Serve this executor's result store (GET /results/<name>) on the [executor] results_bind address.

    Example: depin executor results --config depin.toml
    """
    from executor.worker import run_results  # lazy: start-up

    _check(config, role)
    run_results(config, role)


@app.command()
@user_errors
def reap(config: ConfigOpt = None, role: RoleOpt = None) -> None:
    """Remove this executor's containers that no running task owns; prints their names.

    Example: depin executor reap --config depin.toml
    """
    from executor.worker import reap as do_reap  # lazy: start-up

    _check(config, role)
    for name in do_reap(config, role):
        typer.echo(name)


@app.command()
@user_errors
def health(
    config: ConfigOpt = None,
    role: RoleOpt = None,
    max_pending_age: Annotated[
        float | None,
        typer.Option(min=1, max=86_400, help="Seconds a transaction may wait to be mined before the worker counts as stuck "
                     "(default: $DEPIN_HEALTH_MAX_PENDING_AGE, else 300)."),
    ] = None,
    max_heartbeat_age: Annotated[
        float | None,
        typer.Option(min=1, max=86_400, help="Seconds since the chain worker's last heartbeat before it counts as dead "
                     "(default: $DEPIN_HEALTH_MAX_HEARTBEAT_AGE, else 60)."),
    ] = None,
) -> None:
    """Check that the chain worker makes progress: exit 0 when healthy, 1 when not (one line either way).

    Unhealthy: no heartbeat within --max-heartbeat-age, or a transaction waiting longer than
    --max-pending-age. For a process manager (systemd ExecStartPost / a watchdog timer, a container
    HEALTHCHECK): see the README.

    Example: depin executor health --config depin.toml --max-pending-age 300
    """
    from executor.health import MAX_HEARTBEAT_AGE, MAX_PENDING_AGE, check_health  # lazy: start-up
    from executor.runtime import Runtime, load_executor_config  # lazy: start-up

    report = check_health(
        Runtime(load_executor_config(config, role)),
        max_pending_age=MAX_PENDING_AGE if max_pending_age is None else max_pending_age,
        max_heartbeat_age=MAX_HEARTBEAT_AGE if max_heartbeat_age is None else max_heartbeat_age,
    )
    typer.echo(("healthy: " if report.ok else "unhealthy: ") + report.detail)
    raise typer.Exit(0 if report.ok else 1)
