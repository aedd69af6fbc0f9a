"""`depin executor …`: the executor: Celery workers that claim, run and settle jobs (provider),
audit the jobs the court draws them for (verifier), or bait lazy verifiers (canary).

``depin executor start --config depin.toml [--role provider|verifier|canary|provider,verifier]``
runs the whole executor of those roles (a provider: both Celery workers, beat, the dispatcher and
the result server; a verifier: both workers and beat; a canary: the chain worker, beat and its bait
server) as child processes and stops them cleanly on SIGTERM. Several roles are joined by commas
(``--role provider,verifier``: one executor, one key, both roles), in ``[executor] role`` the same.
The sub-commands ``worker``, ``beat``, ``dispatcher``, ``results`` and ``canary`` run one component
each (for a process manager, or the devnet launcher); ``reap`` removes this executor's orphan
containers; ``health`` exits non-zero when the chain worker is dead or stuck
(:mod:`executor.health`); ``status`` shows what the verifier and canary roles did.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from depinctl.cliutil import TYPER_SETTINGS, one_line, user_errors

app = typer.Typer(help="The provider executor: Celery workers that claim, run and settle jobs.", **TYPER_SETTINGS)

ConfigOpt = Annotated[
    Path | None,
    # Read (and a missing or unreadable file said in one `error:` line, exit 1) by depin.config, as
    # every other command's --config: not click's exists=True, a usage error (exit 2).
    typer.Option("--config", "-c", metavar="FILE", help="depin.toml (default: $DEPIN_CONFIG)."),
]
RoleOpt = Annotated[
    str | None,
    typer.Option("--role", help="provider, verifier or canary, or several joined by commas: provider,verifier "
                 "(default: [executor] role)."),
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
    flower: Annotated[bool, typer.Option("--flower", "--with-flower", help="Also run Flower, the Celery monitor (web UI on 127.0.0.1).")] = False,
    flower_port: Annotated[int, typer.Option(help="Flower's port (1-65535).", min=1, max=65535)] = 5555,
    metrics: Annotated[
        str | None,
        typer.Option("--metrics", metavar="HOST:PORT", help="Serve Prometheus /metrics here (default: $DEPIN_EXECUTOR_METRICS; none)."),
    ] = None,
) -> None:
    """Run the whole executor of its roles (provider: workers, beat, dispatcher, result server;
    verifier: workers and beat, staked in the court at start; canary: chain worker, beat, bait
    server), and optionally Flower and a Prometheus /metrics endpoint.

    Roles: provider (claims and runs jobs), verifier (audits and sits on juries when drawn; stakes
    [verifier] court_stake in the court), canary (posts jobs it answers with garbage; serves the
    fake digest on [canary] bind); several joined by commas: --role provider,verifier.

    Example: depin executor start --config depin.toml --role provider,verifier --flower --metrics 127.0.0.1:9102
    """

    from depin.config import ConfigError, parse_host_port  # lazy: start-up
    from executor.worker import ENV_EVENTS, ENV_FLOWER_PORT, components_for, preflight, run_all  # lazy: start-up

    if config is None and not os.environ.get("DEPIN_CONFIG"):
        raise ConfigError("no configuration: pass --config depin.toml (or set DEPIN_CONFIG)")
    bind = metrics or os.environ.get("DEPIN_EXECUTOR_METRICS")
    if bind:  # checked here: the result server's process would die on it, and be restarted, again and again
        try:
            parse_host_port(bind)
        except ValueError as exc:
            raise ConfigError(f"--metrics / DEPIN_EXECUTOR_METRICS {exc}") from None
    path = config or Path(os.environ["DEPIN_CONFIG"])
    preflight(path, role)  # deployment, key, Redis, RPC: one error line before any child starts
    components: tuple[str, ...] | None = None  # the roles' own
    if metrics:
        os.environ["DEPIN_EXECUTOR_METRICS"] = metrics  # the result server's process serves them
    if os.environ.get("DEPIN_EXECUTOR_METRICS"):
        typer.echo(f"metrics: http://{os.environ['DEPIN_EXECUTOR_METRICS']}/metrics")
    if flower:
        os.environ[ENV_FLOWER_PORT] = str(flower_port)
        os.environ[ENV_EVENTS] = "1"  # the workers send the events Flower shows
        from executor.runtime import load_executor_config  # lazy: start-up

        components = (*components_for(load_executor_config(path, role).executor.roles), "flower")
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
    """Serve this executor's result store (`GET /results/NAME`) on the [executor] results_bind address.

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


@app.command()
@user_errors
def status(
    config: ConfigOpt = None,
    role: RoleOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows per role.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what this executor did as verifier (seats taken, committed, revealed, declined, how the
    cases ended, whether the provider's archive was delivered) and as canary (jobs posted, verifiers
    caught and slashed).

    Example: depin executor status --config depin.toml --role verifier
    """
    import json  # lazy: start-up

    from executor import canary, verifier  # lazy: start-up
    from executor.runtime import Runtime, load_executor_config  # lazy: start-up

    rt = Runtime(load_executor_config(config, role))
    report: dict = {"address": rt.address, "roles": list(rt.roles)}
    if "verifier" in rt.roles:
        report["seats"] = verifier.summary(rt, limit)
    if "canary" in rt.roles:
        rows = canary.summary(rt, limit)
        report["canary_jobs"] = rows
        report["caught"] = sorted({v for r in rows for v in (r.get("verifiers") or "").split(",") if v})
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    typer.echo(f"executor {rt.address} ({rt.role})")
    # The records' fields are shown as text, never as terminal controls: a decline reason quotes what
    # the requester wrote (an input URI), a delivery what the provider published.
    for seat in report.get("seats", []):
        row = {k: one_line(v) for k, v in seat.items()}
        typer.echo(
            f"  seat job {row.get('job')} round {row.get('round')} seat {row.get('seat')}: {row.get('state')}"
            + (f" ({row['outcome']})" if row.get("outcome") else "") + (f" - {row['reason']}" if row.get("reason") else "")
            + (f"; provider's archive {row['delivery']}" if row.get("delivery") else "")
            + (" SLASHED" if row.get("slashed") == "1" else "")
        )
    for canary_job in report.get("canary_jobs", []):
        row = {k: one_line(v) for k, v in canary_job.items()}
        typer.echo(f"  canary job {row.get('job')}: {row.get('state')}" + (
            f", caught {row.get('caught')} seat(s) of {row.get('verifiers')}, slashed {row.get('slashed')} wei" if row.get("verifiers") else ""))
    if "caught" in report:
        typer.echo(f"  verifiers caught: {one_line(', '.join(report['caught'])) or 'none'}")
