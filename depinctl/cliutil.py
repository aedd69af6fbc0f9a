"""Shared pieces of the `depin` command groups: common options, one-line errors, output helpers.

Every group module (``depin/cli*.py``) imports from here; ``depinctl.cli`` assembles the groups.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from depinctl.devnet_state import CHAIN_ID, default_state_dir, discover

if TYPE_CHECKING:
    from indexer.query import IndexerReader

# Help texts are Markdown: paragraphs reflow, `code` shows as code.
TYPER_SETTINGS: dict[str, Any] = {"no_args_is_help": True, "rich_markup_mode": "markdown"}

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_RPC_URL = "http://127.0.0.1:8545"
# Tried in order when neither --deployment nor DEPIN_DEPLOYMENT names a file (relative to the cwd).
DEFAULT_DEPLOYMENT_FILE = Path("deployments/31337.json")  # `ape run deploy` on the local chain
TOKEN_DECIMALS = 18
TOKEN_SYMBOL = "DPC"
PIPED_WIDTH = 200

# Common options. Defaults are None so `indexer run` can tell "not given" from a default and let
# its config file fill in; the commands resolve None to the documented default.
RedisUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--redis-url", envvar="DEPIN_REDIS_URL", show_default=f"the devnet's (depin devnet up), else {DEFAULT_REDIS_URL}", help="Redis holding the index."
    ),
]
RpcUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--rpc-url", envvar="DEPIN_RPC_URL", show_default=f"the devnet's (depin devnet up), else {DEFAULT_RPC_URL}", help="JSON-RPC node of the chain."
    ),
]
DeploymentOpt = Annotated[
    Path | None,
    typer.Option(
        "--deployment",
        envvar="DEPIN_DEPLOYMENT",
        metavar="FILE",
        show_default="deployments/31337.json, else the devnet's ($DEPIN_DEVNET_DIR or .devnet)",
        help="Deployment file, `<chainId>.json` as written by `ape run deploy`: the chain and contract addresses.",
    ),
]
NamespaceOpt = Annotated[
    str, typer.Option("--namespace", envvar="DEPIN_NAMESPACE", help="First part of every Redis key of the index.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (amounts as decimal strings) instead of tables.")]


# ------------------------------------------------------------------------------------ error handling

F = TypeVar("F", bound=Callable[..., Any])


def one_line(text: object) -> str:
    """`text` (a string, an exception or anything else: its str()) on one line, its control and
    format characters shown as escapes (:func:`printable`): an error message may quote what somebody
    else wrote (a provider's result URI, a server's answer), which must not move the cursor, retitle
    the terminal or hide the rest of the line."""
    return printable(" ".join(str(text).split()))


def user_error_message(exc: BaseException) -> str | None:
    """One line for an error the user can cause and fix, or None for a bug (which keeps its traceback)."""
    import redis  # lazy: start-up

    from depin.deployment import shown_path  # lazy: start-up (imported on the error path only: CLI start-up time)

    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return (
            f"Redis is unreachable ({one_line(exc)}); start redis-server or point --redis-url / "
            "DEPIN_REDIS_URL at it"
        )
    if isinstance(exc, redis.RedisError):  # something answered, but not as the index's Redis does
        at = f"at {OPENED_REDIS[-1]}" if OPENED_REDIS else "at the Redis URL"
        if isinstance(exc, redis.exceptions.InvalidResponse):  # e.g. the node's HTTP port given as the Redis URL
            return (
                f"the server {at} is not a Redis server ({one_line(str(exc))}); point --redis-url / DEPIN_REDIS_URL "
                "at redis-server (not the RPC node)"
            )
        return f"Redis {at} refused the read: {one_line(str(exc))}; check --redis-url / DEPIN_REDIS_URL (its /DB number)"
    errors = sys.modules.get("depin.errors")  # loaded iff something could have raised one of its errors
    if errors is not None and isinstance(exc, errors.DepinError):
        return one_line(exc)
    if isinstance(exc, ValueError) and hasattr(exc, "errors") and callable(exc.errors):  # pydantic ValidationError
        problems = "; ".join(
            f"{'.'.join(map(str, e.get('loc', ()))) or 'value'}: {e.get('msg')}" for e in exc.errors()
        )
        return f"invalid configuration: {one_line(problems)}"
    if isinstance(exc, FileNotFoundError):
        return one_line(exc) if exc.filename is None else f"file not found: {shown_path(exc.filename)}"
    if isinstance(exc, OSError) and exc.filename is not None:  # ENAMETOOLONG, EACCES, ELOOP, EISDIR, ...
        return f"{exc.strerror or one_line(exc)}: {shown_path(exc.filename)}"
    if isinstance(exc, (ValueError, PermissionError, IsADirectoryError)):
        return one_line(exc)
    return None


# The Redis URLs (passwords masked) the running command opened (open_reader): named in its error line.
OPENED_REDIS: list[str] = []

# The clients the running command opened (depinctl.cli_keys.open_client): on Ctrl-C, what they sent is said.
OPEN_CLIENTS: list[Any] = []


def interrupted_message() -> str | None:
    """One line naming the transactions the command's clients sent, mined or not, or None when
    they sent none: Ctrl-C while a transaction waits to be mined must not leave the user guessing
    whether it went out (and sending it again, paying twice)."""
    sent = [p for client in OPEN_CLIENTS for p in client.sent_transactions()]
    if not sent:
        return None
    parts = []
    for p in sent:
        state = "mined" if p.mined else "not mined yet"
        parts.append(f"{p.what} (nonce {p.nonce}, tx {' or '.join(p.hashes)}: {state})")
    waiting = any(not p.mined for p in sent)
    return (
        f"interrupted after sending {len(sent)} transaction{'s' * (len(sent) > 1)}: {'; '.join(parts)}"
        + ("; one not mined yet may still be mined: check its hash before sending it again" if waiting else "")
    )


def user_errors(command: F) -> F:
    """Turns the errors a user can cause into one line on stderr and exit status 1 (Ctrl-C after a
    transaction was sent: one line naming it, exit status 130)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opened, opened_redis = len(OPEN_CLIENTS), len(OPENED_REDIS)
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            message = interrupted_message()
            if message is None:
                raise
            typer.echo(f"error: {one_line(message)}", err=True)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            message = user_error_message(exc)
            if message is None:
                raise
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(1) from None
        finally:
            del OPEN_CLIENTS[opened:]  # this command's clients: not the next one's (CliRunner runs many in one process)
            del OPENED_REDIS[opened_redis:]

    return wrapper  # type: ignore[return-value]


def output_file_problem(path: Path) -> str | None:
    """Why `path` cannot be written as a new or replaced file, or None. For the options naming a file
    that a long run writes at its end (``sim --json``, ``demo --json``): said before the run, not after."""
    if path.is_dir():
        return "is a directory"
    folder = path.parent
    if not folder.is_dir():
        return f"its folder {folder} does not exist" if not folder.exists() else f"{folder} is not a folder"
    if not os.access(folder if not path.exists() else path, os.W_OK):
        return "is not writable"
    return None


def check_output_file(path: Path | None, option: str) -> None:
    """Exits 2 (a usage error) with one ``error:`` line when `path` cannot be written."""
    problem = None if path is None else output_file_problem(path)
    if problem is not None:
        typer.echo(f"error: {option} {printable(str(path))}: {problem}; name a file in an existing, writable folder", err=True)
        raise typer.Exit(2)


# ------------------------------------------------------------------------------------ helpers


def _devnet(key: str) -> str | None:
    """`key` of the local devnet (``depin devnet up``'s state in ``$DEPIN_DEVNET_DIR`` or ``.devnet``),
    if there is one: commands given no URL talk to it."""
    found = discover()
    return found.get(key) if found else None


def default_rpc_url() -> str:
    """The RPC URL when neither ``--rpc-url`` nor ``DEPIN_RPC_URL`` gives one: the devnet's, else 8545."""
    return _devnet("rpc_url") or DEFAULT_RPC_URL


def default_redis_url() -> str:
    """The Redis URL when neither ``--redis-url`` nor ``DEPIN_REDIS_URL`` gives one: the devnet's, else 6379."""
    return _devnet("redis_url") or DEFAULT_REDIS_URL


def find_deployment_file(option: Path | None) -> Path:
    if option is not None:
        return option
    devnet = _devnet("deployment")
    if devnet and Path(devnet).is_file():
        return Path(devnet)
    # The devnet's folder is $DEPIN_DEVNET_DIR when set (never a .devnet that merely lies here)
    candidates = (DEFAULT_DEPLOYMENT_FILE, default_state_dir() / "deployments" / f"{CHAIN_ID}.json")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "no deployment file: pass --deployment FILE or set DEPIN_DEPLOYMENT (none at " + " or ".join(map(str, candidates)) + ")"
    )


def open_reader(redis_url: str | None, deployment: Path | None, namespace: str) -> IndexerReader:
    from depin.redact import redact_url  # lazy: start-up
    from indexer.query import IndexerReader  # lazy: start-up

    url = redis_url or default_redis_url()
    OPENED_REDIS.append(redact_url(url))
    return IndexerReader.for_deployment(url, find_deployment_file(deployment), namespace)


def make_console() -> Console:

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped or captured: rich would assume 80 columns and cut addresses and hashes; tables
        # only take the width they need, so a wide page costs nothing.
        console = Console(highlight=False, width=PIPED_WIDTH)
    return console


def printable(text: str) -> str:
    """`text` with control and format characters (ESC, bidi overrides, ...) shown as escapes."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


class DataTable(Table):
    """A rich table whose string cells are data, never markup or terminal controls: values from
    the chain (a result URI, an endpoint) cannot restyle the terminal or break rendering."""

    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        super().add_row(*(Text(printable(c)) if isinstance(c, str) else c for c in cells), **kwargs)


def json_text(data: Any, indent: int | None = 2) -> str:
    """`data` as JSON for a terminal: printable non-ASCII kept as it is, every other character that
    is not printable (the C1 CSI U+009B, bidi overrides, ...) as a JSON escape, as JSON already
    writes ESC and the other C0 controls. Values from the chain cannot reach the terminal raw."""
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    # Outside strings JSON is ASCII (and "\n" between lines): only characters inside strings change.
    return "".join(c if c.isprintable() or c == "\n" else json.dumps(c)[1:-1] for c in text)


def print_json(model: Any) -> None:
    if isinstance(model, list):
        typer.echo(json_text([m.model_dump(mode="json", by_alias=True) for m in model]))
    else:
        typer.echo(json_text(model.model_dump(mode="json", by_alias=True)))


def format_amount(value: int | None) -> str:
    """Base units as tokens, e.g. 1500000000000000000 -> "1.5"."""
    if value is None:
        return "-"
    text = format(Decimal(value).scaleb(-TOKEN_DECIMALS), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def short(address: str | None) -> str:
    return f"{address[:6]}…{address[-4:]}" if address else "-"


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.1f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


