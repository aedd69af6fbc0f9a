"""The `depin` command line.

Groups: ``depin jobs …`` and ``depin providers …`` read the index; ``depin indexer …`` runs the
indexer, serves its HTTP API and shows its progress. Modules beyond typer and rich are imported
inside the commands, so ``depin --help`` is instant and works in any install.

Every error a user can cause (Redis unreachable, unknown id, bad status or address, missing
deployment file, invalid configuration) prints one line, ``error: …``, to stderr and exits 1;
never a traceback.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.highlighter import JSONHighlighter
from rich.text import Text

from depin import __version__
from depin.errors import DepinError
from depin.keys import LISTABLE_STATUSES
from depin.redact import redact_url
from depinctl import cli_devnet, cli_executor, cli_job, cli_keys, cli_provider, cli_verifier
from depinctl import demo as demo_mod
from depinctl.cliutil import (
    OPENED_REDIS,
    TOKEN_SYMBOL,
    TYPER_SETTINGS,
    DataTable,
    DeploymentOpt,
    JsonOpt,
    NamespaceOpt,
    RedisUrlOpt,
    RpcUrlOpt,
    ago,
    check_output_file,
    default_redis_url,
    default_rpc_url,
    find_deployment_file,
    format_amount,
    json_text,
    make_console,
    open_reader,
    print_json,
    printable,
    short,
    user_errors,
)
from executor.logs import StderrHandler

if TYPE_CHECKING:
    from rich.console import Console, JustifyMethod

    from indexer.query import IndexerReader, JobRecord


app = typer.Typer(
    name="depin",
    help=(
        "depin-compute: a marketplace for containerized compute jobs paid through smart contracts.\n\n"
        "Requesters post, watch, verify and challenge jobs; providers stake, run the executor and "
        "withdraw rewards; operators deploy the contracts."
    ),
    add_completion=False,
    pretty_exceptions_show_locals=False,
    **TYPER_SETTINGS,
)
jobs_app = typer.Typer(
    help="Jobs as indexed from the market's events (needs `depin indexer run` feeding Redis).", **TYPER_SETTINGS
)
providers_app = typer.Typer(help="Registered providers: stake, locked collateral, counters.", **TYPER_SETTINGS)
indexer_app = typer.Typer(help="The chain indexer: run it, serve its HTTP API, show its progress.", **TYPER_SETTINGS)
app.add_typer(jobs_app, name="jobs")
app.add_typer(providers_app, name="providers")
app.add_typer(indexer_app, name="indexer")

def _add_groups() -> None:

    for module, name in (
        (cli_job, "job"), (cli_provider, "provider"), (cli_verifier, "verifier"), (cli_keys, "keys"), (cli_executor, "executor"),
        (cli_devnet, "devnet"),
    ):
        app.add_typer(module.app, name=name)


_add_groups()

def _package_version() -> str:
    try:
        return metadata.version("depin-compute")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return __version__


@app.callback()
def main() -> None:
    """depin-compute command line."""


@app.command()
def version() -> None:
    """Print the depin-compute version."""
    typer.echo(_package_version())


def _hint_if_not_indexed(reader: IndexerReader) -> None:
    if not reader.status().indexed:
        typer.echo(
            f"note: nothing is indexed under {reader.keys.prefix} yet: is `depin indexer run` running "
            "for this deployment and this Redis?",
            err=True,
        )


@app.command()
def demo(
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", envvar="DEPIN_DEVNET_DIR", show_default=".devnet", help="The devnet's state folder."),
    ] = None,
    challenge_window: Annotated[
        int, typer.Option(min=8, max=3600, help="Challenge window of the demo job, seconds (the devnet allows 8-3600).")
    ] = 10,
    timeout: Annotated[float, typer.Option(min=5, help=(
        "Longest wait for any one step, seconds. Waits for a random draw are bounded by draws instead (the "
        "cheater's up to 64 jobs, the lazy verifier's up to 64 canary jobs); the canary wait fails at 4x this "
        "if no job is posted at all."))] = 120.0,
    scenario: Annotated[
        list[str] | None,
        typer.Option(help="all, honest, cheater, canary or wash (repeatable; default all)."),
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write each scenario's results (token flows) as JSON here.")] = None,
) -> None:
    """Run the local demo: devnet up, then four scenarios with their token flows.

    Brings the devnet up when it is not running (`depin devnet up`: a provider, a pool of three
    verifiers and a canary), then runs: honest (a job from post to paid, its draw explained), wash
    (two colluding accounts trading jobs lose `(1-kappa)*f*R` per job), cheater (a provider that never
    runs a job is caught by a drawn audit, a jury of 3 and a slash), canary (a lazy verifier copying
    a leaked digest loses `sigma*R`). Each step is shown as it happens; each scenario ends with every
    party's token flows. Exits non-zero, with the reason, if any step fails or times out. The devnet
    keeps running afterwards; `depin devnet down` stops it.

    Example: depin demo --scenario wash --scenario cheater
    """

    check_output_file(json_path, "--json")  # written at the end of the run: said now, not after it
    try:
        chosen = demo_mod.choose(scenario)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(demo_mod.run(state_dir, challenge_window=challenge_window, timeout=timeout, scenarios=chosen, json_path=json_path))


@app.command()
def sim(
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the table (and every branch) as JSON here.")] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only the strategies whose name contains this word (repeatable; case matters), e.g. lazy, wash."),
    ] = None,
) -> None:
    """Run every attack strategy as agents against a fresh anvil deployment and print the table.

    Starts a throwaway anvil, deploys the contracts with the default (production) parameters and
    mock randomness, runs each strategy branch by branch with real transactions (snapshots between
    branches, the clock moved, never waited for), and prints one row per strategy: the attacker's
    expected profit per job (must be < 0), the honest parties' loss, the honest-case verification
    overhead. Exits 1 when a row fails. Takes one to three minutes.

    Example: depin sim --json sim.json
    """
    check_output_file(json_path, "--json")  # written at the end of the run: said now, not after it
    from depinctl.sim import run as sim_run  # lazy: start-up (ape, eth-abi)
    from depinctl.sim.strategies import STRATEGY_NAMES  # lazy: start-up (eth-abi)

    for word in only or []:  # a typo ran the whole set-up, no strategy, and passed
        if not any(word in name for name in STRATEGY_NAMES):
            typer.echo(f"error: --only {printable(repr(word))} names no strategy; a word of one of: {', '.join(STRATEGY_NAMES)}", err=True)
            raise typer.Exit(2)

    raise typer.Exit(sim_run.main(json_path, only=only))


# ------------------------------------------------------------------------------------ jobs

# The statuses --status takes, from the list the reader checks it against (indexer.query.parse_status).
_STATUS_NAMES = ", ".join(s.lower() for s in LISTABLE_STATUSES[:-1]) + f" or {LISTABLE_STATUSES[-1].lower()}"


@jobs_app.command("list")
@user_errors
def jobs_list(
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            "-s",
            help=f"Only jobs of this status: {_STATUS_NAMES}.",
        ),
    ] = None,
    requester: Annotated[str | None, typer.Option(help="Only jobs posted by this address.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only jobs claimed by this address.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Jobs per page (1-1000).")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many matching jobs.")] = 0,
    oldest_first: Annotated[bool, typer.Option("--oldest-first", help="Ascending job ids.")] = False,
    as_json: JsonOpt = False,
    redis_url: RedisUrlOpt = None,
    deployment: DeploymentOpt = None,
    namespace: NamespaceOpt = "depin",
) -> None:
    """List jobs, newest first, optionally filtered by status, requester and provider.

    Example: depin jobs list --status open --limit 20
    """
    reader = open_reader(redis_url, deployment, namespace)
    # no scan cap: a local listing with several filters pages by offset through the whole intersection
    page = reader.job_page(status, requester, provider, limit, offset, newest_first=not oldest_first, max_scan=None)
    if as_json:
        print_json(page)
        return
    if page.total == 0:
        typer.echo("no jobs match" if (status or requester or provider) else "no jobs")
        _hint_if_not_indexed(reader)
        return
    table = DataTable(box=None, pad_edge=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("ID", "right"), ("STATUS", "left"), ("REQUESTER", "left"), ("PROVIDER", "left"),
        (f"REWARD {TOKEN_SYMBOL}", "right"), ("SPEC", "left"), ("BLOCK", "right"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=True)
    for job in page.jobs:
        last_block = job.extra.get("updatedBlock") or (job.history[-1].get("block") if job.history else None)
        table.add_row(
            str(job.id), job.status, short(job.requester), short(job.provider), format_amount(job.reward),
            {True: "ok", False: "INVALID", None: "-"}[job.spec_valid], str(last_block or "-"),
        )
    console = make_console()
    console.print(table)
    shown = f"{offset + 1}-{offset + len(page.jobs)}" if page.jobs else "none"
    console.print(f"{shown} of {page.total} ({'oldest' if oldest_first else 'newest'} first)")


@jobs_app.command("show")
@user_errors
def jobs_show(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The on-chain job id.")],
    as_json: JsonOpt = False,
    redis_url: RedisUrlOpt = None,
    deployment: DeploymentOpt = None,
    namespace: NamespaceOpt = "depin",
) -> None:
    """Show one job: every indexed field, its history of transitions and its decoded spec.

    Example: depin jobs show 42
    """
    reader = open_reader(redis_url, deployment, namespace)
    job = reader.get_job(job_id)
    if job is None:
        from indexer.query import QueryError  # lazy: start-up

        cursor = reader.status().cursor
        where = f"indexed up to block {cursor}" if cursor is not None else "nothing indexed yet"
        raise QueryError(f"job {job_id} not found in the index ({reader.keys.prefix}, {where})")
    if as_json:
        print_json(job)
        return
    _print_job(make_console(), job)


_HISTORY_COLUMNS = (("event",), ("status",), ("block", "blockNumber"), ("tx", "txHash", "transactionHash"),
                    ("logIndex",))


def _history_value(entry: dict[str, Any], *names: str) -> Any:
    return next((entry[n] for n in names if n in entry), None)


def _print_job(console: Console, job: JobRecord) -> None:

    fields = DataTable(box=None, show_header=False, pad_edge=False)
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column(overflow="fold")
    fields.add_row("id", str(job.id))
    fields.add_row("status", job.status)
    fields.add_row("requester", job.requester or "-")
    fields.add_row("provider", job.provider or "-")
    if job.providers and job.providers != [job.provider]:
        fields.add_row("providers", ", ".join(job.providers) + " (everyone who claimed it)")
    for name, amount in (("reward", job.reward), ("collateral", job.collateral)):
        shown = "-" if amount is None else f"{format_amount(amount)} {TOKEN_SYMBOL} ({amount} base units)"
        fields.add_row(name, shown)
    fields.add_row("specHash", job.spec_hash or "-")
    fields.add_row(
        "specValid",
        {True: "yes", False: "NO: the spec bytes do not hash to specHash or do not parse; executors will not run it",
         None: "-"}[job.spec_valid],
    )
    for name, value in job.extra.items():
        if name != "spec":
            fields.add_row(name, value if len(value) <= 200 else value[:200] + "…")
    console.print(fields)

    console.print()
    console.print(f"[bold]history[/bold] ({len(job.history)} transitions)")
    if job.history:
        history = DataTable(box=None, pad_edge=False)
        known = [n for n in _HISTORY_COLUMNS if any(_history_value(h, *n) is not None for h in job.history)]
        others = sorted({k for h in job.history for k in h} - {n for names in _HISTORY_COLUMNS for n in names})
        for names in known:
            history.add_column(names[0].upper(), no_wrap=names[0] != "tx", overflow="fold")
        for name in others:
            history.add_column(name.upper(), overflow="fold")
        for entry in job.history:
            cells = [_history_value(entry, *names) for names in known] + [entry.get(n) for n in others]
            history.add_row(*("-" if c is None else c if isinstance(c, str) else json.dumps(c) for c in cells))
        console.print(history)

    console.print()
    if job.spec is not None:
        console.print("[bold]spec[/bold] (decoded)")
        console.print(JSONHighlighter()(Text(json_text(job.spec))))
    else:
        raw = _spec_text(job.extra.get("spec", ""))
        console.print("[bold]spec[/bold]: not decoded" + (" (raw bytes as text below)" if raw else ""))
        if raw:
            console.print(Text(printable(raw if len(raw) <= 2000 else raw[:2000] + "…")))


def _spec_text(spec: str) -> str:
    """The raw spec (0x-hex bytes in the job hash) as text, undecodable bytes replaced."""
    if spec.startswith("0x"):
        try:
            return bytes.fromhex(spec[2:]).decode("utf-8", errors="replace")
        except ValueError:
            pass
    return spec


# ------------------------------------------------------------------------------------ providers


@providers_app.command("list")
@user_errors
def providers_list(
    as_json: JsonOpt = False,
    redis_url: RedisUrlOpt = None,
    deployment: DeploymentOpt = None,
    namespace: NamespaceOpt = "depin",
) -> None:
    """List registered providers by provider id: stake, locked collateral, unbonding, job counters.

    Example: depin providers list --json
    """
    reader = open_reader(redis_url, deployment, namespace)
    providers = reader.list_providers()
    if as_json:
        print_json(providers)
        return
    if not providers:
        typer.echo("no providers")
        _hint_if_not_indexed(reader)
        return
    table = DataTable(box=None, pad_edge=False)
    for column in ("ID", "ADDRESS", f"STAKED {TOKEN_SYMBOL}", "LOCKED", "UNBONDING", "DONE", "SLASHED", "ENDPOINT"):
        text = column in ("ADDRESS", "ENDPOINT")
        table.add_column(column, no_wrap=column != "ENDPOINT", justify="left" if text else "right")
    for p in providers:
        table.add_row(
            str(p.id if p.id is not None else "-"), p.address, format_amount(p.staked), format_amount(p.locked),
            format_amount(p.unbonding), str(p.jobs_completed), str(p.jobs_slashed), p.endpoint or "-",
        )
    make_console().print(table)


@providers_app.command("show")
@user_errors
def providers_show(
    address: Annotated[str, typer.Argument(metavar="ADDRESS", help="The provider's address.")],
    as_json: JsonOpt = False,
    redis_url: RedisUrlOpt = None,
    deployment: DeploymentOpt = None,
    namespace: NamespaceOpt = "depin",
) -> None:
    """Show one provider's record.

    Example: depin providers show 0x90F79bf6EB2c4f870365E785982E1f101E93b906
    """
    from indexer.query import QueryError  # lazy: start-up

    reader = open_reader(redis_url, deployment, namespace)
    provider = reader.get_provider(address)
    if provider is None:
        raise QueryError(f"provider {address} not found in the index ({reader.keys.prefix})")
    if as_json:
        print_json(provider)
        return
    table = DataTable(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in provider.model_dump(by_alias=True, exclude={"extra"}).items():
        if name in ("staked", "locked", "unbonding"):
            value = f"{format_amount(value)} {TOKEN_SYMBOL}"
        table.add_row(name, "-" if value is None else str(value))
    for name, value in provider.extra.items():
        table.add_row(name, value)
    make_console().print(table)


# ------------------------------------------------------------------------------------ indexer


@indexer_app.command("status")
@user_errors
def indexer_status(
    as_json: JsonOpt = False,
    redis_url: RedisUrlOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    namespace: NamespaceOpt = "depin",
) -> None:
    """Show the indexer's progress: chain head (from the node), cursor, lag, events/s, last update.

    The head comes from the node at --rpc-url; when the node does not answer it is shown as
    unknown and the lag is measured against the last head the indexer saw.

    Example: depin indexer status --rpc-url http://127.0.0.1:8545
    """
    from depin.chain import head_reader  # lazy: start-up

    reader = open_reader(redis_url, deployment, namespace)
    rpc = rpc_url or default_rpc_url()
    chain_head = head_reader(rpc)()
    st = reader.status(chain_head)
    if as_json:
        print_json(st)
        return
    table = DataTable(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("prefix", st.prefix)
    if not st.indexed:
        table.add_row("state", "not indexed yet: start `depin indexer run` for this deployment")
    node = redact_url(rpc)  # its password or API key stays off the terminal
    if chain_head is not None:
        table.add_row("head", f"{chain_head} (node {node})")
    else:
        seen = f"; the indexer last saw {st.head}" if st.head is not None else ""
        table.add_row("head", f"unknown (node {node} unreachable{seen})")
    cursor = "-" if st.cursor is None else f"{st.cursor} ({st.cursor_hash})" if st.cursor_hash else str(st.cursor)
    table.add_row("cursor", cursor)
    if st.lag is None:
        table.add_row("lag", "unknown")
    else:
        against = "" if st.head_source == "rpc" else " (against the indexer's last head)"
        table.add_row("lag", f"{st.lag} blocks{against}")
    table.add_row("events/s", "-" if st.events_per_second is None else f"{st.events_per_second:,.1f}")
    table.add_row("events applied", "-" if st.events_applied is None else f"{st.events_applied:,}")
    if st.updated_at is None:
        table.add_row("updated", "never")
    else:
        when = datetime.fromtimestamp(st.updated_at, UTC)
        table.add_row("updated", f"{ago(st.seconds_since_update)} ({when:%Y-%m-%d %H:%M:%S} UTC)")
    if st.chain_id is not None:
        table.add_row("chain", f"{st.chain_id}, market {st.market}, from block {st.deploy_block}")
        table.add_row("confirmations", f"{st.confirmations}, finality depth {st.finality_depth}")
    make_console().print(table)


class _LogFormatter(logging.Formatter):
    """One line per record: ``key=value`` pairs (``kv``) or a JSON object (``json``), with the
    record's ``extra={...}`` fields included."""

    # LogRecord attributes that are not `extra` fields (color_message: uvicorn's ANSI copy of msg).
    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
        "message", "asctime", "taskName", "color_message",
    }

    def __init__(self, style: str) -> None:
        super().__init__()
        self.json = style == "json"

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update({k: v for k, v in vars(record).items() if k not in self._STANDARD and not k.startswith("_")})
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        if self.json:
            return json.dumps(fields, default=str)
        return " ".join(f"{k}={self._kv(v)}" for k, v in fields.items())

    @staticmethod
    def _kv(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        return json.dumps(text) if (not text or any(c in text for c in ' "=\n\t')) else text


def configure_logging(style: str = "kv", level: str = "INFO") -> None:
    """Structured logs on stderr: ``kv`` (key=value) or ``json`` lines."""
    if style not in ("kv", "json"):
        raise ValueError(f"unknown log format {style!r}; use kv or json")
    handler = StderrHandler()
    handler.setFormatter(_LogFormatter(style))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


LogFormatOpt = Annotated[
    str, typer.Option("--log-format", envvar="DEPIN_LOG_FORMAT", help="kv (key=value) or json lines.")
]
LogLevelOpt = Annotated[
    str, typer.Option("--log-level", envvar="DEPIN_LOG_LEVEL", help="debug, info, warning or error.")
]


def _read_config_file(path: Path) -> dict[str, Any]:
    """IndexerConfig fields of a TOML config file (an [indexer] table, top-level keys, or an
    executor's depin.toml: see indexer.config.read_config_file)."""
    from indexer.config import read_config_file  # lazy: start-up

    return read_config_file(path)


@indexer_app.command("run")
@user_errors
def indexer_run(
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="DEPIN_CONFIG",
            metavar="FILE",
            help="TOML file with IndexerConfig fields (top level or an [indexer] table), or a depin.toml.",
        ),
    ] = None,
    rpc_url: RpcUrlOpt = None,
    redis_url: RedisUrlOpt = None,
    deployment: DeploymentOpt = None,
    confirmations: Annotated[
        int | None, typer.Option(envvar="DEPIN_CONFIRMATIONS", help="Blocks behind the head to stay.")
    ] = None,
    finality_depth: Annotated[
        int | None, typer.Option(envvar="DEPIN_FINALITY_DEPTH", help="Deepest reorg to undo.")
    ] = None,
    poll_interval: Annotated[
        float | None, typer.Option(envvar="DEPIN_POLL_INTERVAL", help="Seconds between head polls.")
    ] = None,
    max_range: Annotated[
        int | None, typer.Option(envvar="DEPIN_MAX_RANGE", help="Largest eth_getLogs block range.")
    ] = None,
    ws_url: Annotated[
        str | None,
        typer.Option(
            envvar="DEPIN_WS_URL",
            help="WebSocket URL for newHeads notifications (default: a local --rpc-url as ws://; 'off': poll only).",
        ),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", envvar="DEPIN_NAMESPACE", help="First part of every Redis key.")
    ] = None,
    log_format: LogFormatOpt = "kv",
    log_level: LogLevelOpt = "info",
    metrics_port: Annotated[
        int | None,
        typer.Option(envvar="DEPIN_METRICS_PORT", min=1, max=65535, help="Serve Prometheus /metrics on 127.0.0.1:PORT."),
    ] = None,
) -> None:
    """Run the indexer: backfill the market's and staking contract's events from the deployment
    block into Redis, then follow the head until SIGTERM or Ctrl-C (a clean stop between batches).

    Settings, strongest first: options, their DEPIN_* environment variables, the --config file,
    the defaults. Logs are structured lines on stderr.

    Example: DEPIN_RPC_URL=http://127.0.0.1:8545 depin indexer run --deployment .devnet/deployments/31337.json
    """
    configure_logging(log_format, log_level)
    log = logging.getLogger("depin.indexer")
    from indexer.config import IndexerConfig  # lazy: start-up

    settings = _read_config_file(config_file) if config_file is not None else {}
    given = {
        "rpc_url": rpc_url, "redis_url": redis_url, "deployment_file": deployment, "confirmations": confirmations,
        "finality_depth": finality_depth, "poll_interval": poll_interval, "max_range": max_range,
        "namespace": namespace, "ws_url": ws_url,
    }
    settings.update({k: v for k, v in given.items() if v is not None})
    deployment_file = Path(settings.get("deployment_file") or find_deployment_file(None))
    if not deployment_file.is_file():
        raise FileNotFoundError(
            f"deployment file {deployment_file} not found: pass --deployment FILE or set DEPIN_DEPLOYMENT"
        )
    settings["deployment_file"] = deployment_file
    config = IndexerConfig.from_env(**settings)
    OPENED_REDIS.append(redact_url(config.redis_url))  # named in an error line about it
    from indexer.follower import Indexer  # lazy: start-up

    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    log.info(
        "indexer starting",
        extra={
            "rpc": redact_url(config.rpc_url),
            "redis": redact_url(config.redis_url),
            "deployment": str(config.deployment_file),
            "confirmations": config.confirmations,
            "finality_depth": config.finality_depth,
            "ws": redact_url(config.resolved_ws_url() or "-"),
        },
    )
    if metrics_port:
        from indexer.metrics import serve_metrics  # lazy: start-up

        try:
            serve_metrics(metrics_port)
        except OSError as exc:  # taken: one line, not a traceback
            raise ValueError(
                f"--metrics-port {metrics_port}: cannot listen on 127.0.0.1:{metrics_port}: {exc.strerror or exc}; "
                "choose a free port"
            ) from None
    started = time.monotonic()
    try:
        Indexer(config).run(stop)
    except DepinError as exc:  # e.g. ReorgTooDeep: logged for the log pipeline, then one line on stderr
        log.error("indexer failed", extra={"error": type(exc).__name__, "detail": str(exc)})
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    log.info("indexer stopped", extra={"uptime_s": round(time.monotonic() - started, 3)})


_redact = redact_url  # the name tests/client/test_cli.py knows

MaxRequestsOpt = Annotated[
    int,
    typer.Option(
        "--max-requests", envvar="DEPIN_API_MAX_REQUESTS", min=1,
        help="Requests served at a time, each until its client has read the answer (this bounds the memory "
        "slow clients take); more are answered 503 with Retry-After.",
    ),
]


@indexer_app.command("api")
@user_errors
def indexer_api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (1-65535).", min=1, max=65535)] = 8000,
    redis_url: RedisUrlOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    namespace: NamespaceOpt = "depin",
    log_format: LogFormatOpt = "kv",
    log_level: LogLevelOpt = "info",
    max_requests: MaxRequestsOpt = 8,  # indexer.api.MAX_REQUESTS
) -> None:
    """Serve the index as an HTTP JSON API for dashboards until Ctrl-C or SIGTERM.

    Routes: /jobs, /jobs/{id}, /providers, /providers/{address}, /totals, /status, /healthz; the
    OpenAPI document is at /openapi.json and interactive docs at /docs. The same server is the web
    explorer (HTML pages at /, /job/{id}, /provider/{address}, ...) and serves /metrics.

    Example: depin indexer api --port 8000   (then: curl 'http://127.0.0.1:8000/jobs?status=open')
    """
    configure_logging(log_format, log_level)
    from indexer.api import ApiConfig, serve  # lazy: start-up

    config = ApiConfig(
        redis_url=redis_url or default_redis_url(),
        deployment_file=find_deployment_file(deployment),
        rpc_url=rpc_url or default_rpc_url(),
        namespace=namespace,
        api_max_requests=max_requests,
    )
    OPENED_REDIS.append(redact_url(config.redis_url))  # named in an error line about it
    serve(config, host, port)


@app.command("explorer")
@user_errors
def explorer(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (1-65535).", min=1, max=65535)] = 8080,
    redis_url: RedisUrlOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    namespace: NamespaceOpt = "depin",
    log_format: LogFormatOpt = "kv",
    log_level: LogLevelOpt = "info",
    max_requests: MaxRequestsOpt = 8,  # indexer.api.MAX_REQUESTS
) -> None:
    """Serve the web explorer (live pages over the index) until Ctrl-C or SIGTERM.

    Pages: / (overview), /job/{id}, /provider/{address}, /requester/{address}, /tx/{hash},
    /search?q=; live updates over server-sent events. The same server answers the JSON API
    (`depin indexer api`) and /metrics. `depin devnet up` starts one and prints its URL.

    Example: depin explorer --port 8080   (then open http://127.0.0.1:8080/)
    """
    indexer_api(host=host, port=port, redis_url=redis_url, rpc_url=rpc_url, deployment=deployment,
                namespace=namespace, log_format=log_format, log_level=log_level, max_requests=max_requests)


if __name__ == "__main__":
    app()
