"""`depin devnet …`: A whole local devnet on this machine: chain, Redis, container engine, contracts, indexer, executor."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand

from depinctl.cliutil import TYPER_SETTINGS, DataTable, make_console, user_errors

app = typer.Typer(help="A whole local devnet on this machine: chain, Redis, container engine, contracts, indexer, executor.", **TYPER_SETTINGS)

StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="DEPIN_DEVNET_DIR",
        metavar="DIR",
        show_default=".devnet",
        help="The devnet's folder: state file, logs, chain and Redis data, deployment, executor configs.",
    ),
]


def _devnet(state_dir: Path | None) -> Any:
    from depinctl.devnet import Devnet  # lazy: start-up

    return Devnet(state_dir)


@app.command("up")
@user_errors
def up(
    state_dir: StateDirOpt = None,
    rpc_port: Annotated[int | None, typer.Option(help="Anvil's port, 1-65535 (default: a free port, kept across restarts).", min=1, max=65535)] = None,
    redis_port: Annotated[int | None, typer.Option(help="Redis's port, 1-65535 (default: a free port, kept across restarts).", min=1, max=65535)] = None,
    results_port: Annotated[int | None, typer.Option(help="The provider's result server port, 1-65535 (default: a free port).", min=1, max=65535)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")] = False,
    with_flower: Annotated[bool, typer.Option("--with-flower", "--flower", help="Also run Flower, the Celery monitor of the provider executor.")] = False,
) -> None:
    """Start the devnet in the background (or repair it): anvil, Redis, the container engine, the
    contracts (deployed once), funded development accounts and registered providers, the sample job
    images, the indexer and the executor processes.

    Running components that are healthy are left alone; dead ones are restarted. The processes
    outlive this command; stop them with `depin devnet down`.

    Example: depin devnet up && source .devnet/env && depin jobs list
    """
    dn = _devnet(state_dir)
    if with_flower or "flower" in dn.processes:  # once started, Flower stays part of this devnet until `down`
        os.environ["DEPIN_DEVNET_FLOWER"] = "1"
    pinned = {k: v for k, v in (("anvil", rpc_port), ("redis", redis_port), ("results", results_port)) if v}
    report = dn.up(say=(lambda line: None) if quiet else (lambda line: typer.echo(f"  {line}")), pinned_ports=pinned)
    info = dn.info()
    typer.echo("")
    typer.echo(f"devnet up in {info['state_dir']} (started: {', '.join(report.started) or 'nothing'}; "
               f"already running: {', '.join(report.kept) or 'nothing'})")
    for label, key in (
        ("RPC URL", "rpc_url"), ("Redis URL", "redis_url"), ("deployment", "deployment"),
        ("container engine", "docker_host"), ("result server", "results_url"), ("explorer", "explorer_url"), ("flower", "flower_url"),
        ("logs", "logs"), ("env file", "env_file"),
    ):
        typer.echo(f"  {label + ':':<18}{info[key] or '-'}")
    for name, reason in report.not_wired.items():
        typer.echo(f"  not wired:        {name}: {reason}")
    for name, reason in report.off.items():
        typer.echo(f"  off:              {name}: {reason}")
    typer.echo("")
    typer.echo(f"use it:  source {info['env_file']}   # then: depin jobs list, depin providers list, depin indexer status")
    typer.echo("         depin devnet status | depin devnet logs [COMPONENT] -f | depin devnet down")
    typer.echo("         development keys: Anvil's public accounts (0 deployer/arbiter, 1-2 providers, 3 funded for verifiers, 4-5 requesters, 6-8 the verifier pool, 9 the canary)")


@app.command("down")
@user_errors
def down(state_dir: StateDirOpt = None) -> None:
    """Stop every process `depin devnet up` started (process groups: SIGTERM, then SIGKILL).

    Only processes whose recorded pid, start time and command line still match are signalled. The
    chain, the index and the deployment stay in the state folder for the next `up`; delete the
    folder to start from scratch.

    Example: depin devnet down
    """
    dn = _devnet(state_dir)
    if not dn.state_file.exists():
        typer.echo(f"no devnet in {dn.dir}")
        return
    done = dn.down(say=lambda line: typer.echo(f"  {line}"))
    typer.echo(f"devnet down ({len(done)} components)" if done else "nothing was running")


@app.command("status")
@user_errors
def status(
    state_dir: StateDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show each component, its process and a real health check: anvil answers eth_chainId, Redis
    PING, the engine's ping, the indexer's lag, the result server's HTTP, Celery worker pings.

    Exits 1 unless every component is healthy (so it also answers "is the devnet up?").

    Example: depin devnet status --json
    """
    dn = _devnet(state_dir)
    if "flower" in dn.processes:  # started by `up --with-flower`
        os.environ["DEPIN_DEVNET_FLOWER"] = "1"
    if not dn.state_file.exists():
        if as_json:
            typer.echo(json.dumps({"state_dir": str(dn.dir), "running": False, "components": []}, indent=2))
        else:
            typer.echo(f"no devnet in {dn.dir}: start one with `depin devnet up`")
        raise typer.Exit(1)
    rows = dn.status()
    wired = [r for r in rows if r.state not in ("not wired", "off")]
    running = any(r.pid is not None and r.state in ("ok", "unhealthy") for r in rows)
    healthy = bool(wired) and all(r.ok for r in wired)
    if as_json:
        typer.echo(json.dumps(
            {
                **dn.info(), "running": running, "healthy": healthy,
                "components": [
                    {"name": r.name, "state": r.state, "ok": r.ok, "pid": r.pid, "detail": r.detail, "log": r.log}
                    for r in rows
                ],
            },
            indent=2,
        ))
    else:
        table = DataTable(box=None, pad_edge=False)
        for column in ("COMPONENT", "STATE", "PID", "DETAIL"):
            table.add_column(column, no_wrap=column != "DETAIL", overflow="fold")
        for r in rows:
            table.add_row(r.name, r.state, str(r.pid) if r.pid else "-", r.detail)
        console = make_console()
        console.print(table)
        if dn.info().get("explorer_url"):
            typer.echo(f"explorer: {dn.info()['explorer_url']}/")
        if not running:
            typer.echo(f"the devnet in {dn.dir} is not running: start it with `depin devnet up`")
    if not healthy:
        raise typer.Exit(1)


class _LogsCommand(TyperCommand):
    """`devnet logs`, whose COMPONENT help names every log the command accepts (the devnet's
    components and the deploy), from :data:`depinctl.devnet.ORDER` as the command itself checks
    them: read when the help is shown, as importing that module takes seconds every other command
    would pay at start-up."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from depinctl.devnet import ORDER  # lazy: start-up

        *names, last = (*ORDER, "deploy")
        for param in self.params:
            if isinstance(param, TyperArgument) and param.name == "component":
                param.help = f"{', '.join(names)} or {last}; all when left out."
        super().format_help(ctx, formatter)


@app.command("logs", cls=_LogsCommand)
@user_errors
def logs(
    component: Annotated[str | None, typer.Argument(help="A component of the devnet (--help lists them); all when left out.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, help="How many of the last lines to print first (0: none; with -f, only new lines).")
    ] = 50,
    state_dir: StateDirOpt = None,
) -> None:
    """Print the last lines of a component's log (or of every log, prefixed by the component), and
    with -f follow them.

    Example: depin devnet logs indexer -f -n 20
    """
    from depinctl.devnet import DevnetError, tail_lines  # lazy: start-up
    from depinctl.devnet import follow as follow_files  # lazy: start-up

    dn = _devnet(state_dir)
    files = dn.log_files(component)
    if not files:
        raise DevnetError(f"no logs in {dn.logs_dir}: has `depin devnet up` run here?")
    prefix = component is None
    for name, path in files:
        for line in tail_lines(path, lines):
            typer.echo(f"{name:<10} | {line}" if prefix else line)
    if follow:
        try:
            follow_files(files, prefix=prefix, emit=typer.echo)
        except KeyboardInterrupt:
            pass
