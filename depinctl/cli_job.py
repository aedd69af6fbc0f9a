"""`depin job …`: requester tools: post a job, follow it, fetch and verify its result, cancel,
challenge or appeal it, move it past a passed deadline (`advance`) and withdraw what came back.

Transactions are signed locally (``--keystore`` + ``--password-file`` / ``$DEPIN_KEYSTORE_PASSWORD``,
``--dev-account N`` on a local devnet, or the ``[key]`` section of ``--config depin.toml``) and sent
through :class:`depin.Client`. Every error a user can cause prints one line, ``error: …``, to
stderr and exits 1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import shlex
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from depin.market import JURY_SIZES, JobStatus, Outcome, Phase, VerifyMode
from depinctl.cli_keys import (
    ConfigOpt,
    DevAccountOpt,
    KeystoreOpt,
    PasswordFileOpt,
    open_client,
    parse_tokens,
    signing_account,
)
from depinctl.cliutil import (
    TOKEN_SYMBOL,
    TYPER_SETTINGS,
    DataTable,
    DeploymentOpt,
    JsonOpt,
    NamespaceOpt,
    RedisUrlOpt,
    RpcUrlOpt,
    default_redis_url,
    find_deployment_file,
    format_amount,
    make_console,
    one_line,
    printable,
    user_errors,
)
from depinctl.devnet_state import default_state_dir, discover, input_file_roots

if TYPE_CHECKING:
    from depin.client import Client, DueStep, OnchainJob
    from depin.spec import JobSpec

app = typer.Typer(
    help="Requester tools: post a job, follow it, fetch and verify its result, cancel, challenge or appeal it, "
    "move it past a passed deadline (advance), withdraw refunds.",
    **TYPER_SETTINGS,
)

ConfirmationsOpt = Annotated[
    int | None,
    typer.Option(
        "--confirmations",
        min=1,
        max=64,
        show_default="1 on a local chain, else 2",
        help="Blocks that must hold the post (its own and those on top) before its job id is printed: a reorg in "
        "between can give it another id (ids follow the order posts are mined).",
    ),
]


def _confirmations(client: Client, given: int | None) -> int:
    """`--confirmations`, else 1 on a local chain (no reorgs but the tests') and 2 elsewhere."""
    if given is not None:
        return given
    from depin.accounts import is_local_chain  # lazy: start-up

    return 1 if is_local_chain(client.chain_id) else 2


DATA_URI_MAX = 2_048  # local input files up to this size are embedded in the spec as data: URIs
REMOTE_INPUT_MAX = 256 * 1_048_576
_NAMED_INPUT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,127})=(.+)$")
_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")  # what reads as a URI, not a file path
_SETTLED = {"Finalized", "Cancelled", "Expired", "TimedOut", "Resolved"}
INDEX_CROSS_CHECK = 5.0  # seconds between checks that the index keeps up with the chain while watching

JobIdArg = Annotated[str, typer.Argument(metavar="ID", help="The on-chain job id.")]


def _job_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"invalid job id {text!r}: expected a positive integer") from None
    if value <= 0:
        raise ValueError(f"invalid job id {text!r}: expected a positive integer")
    return value


def _check_networks(cidrs: list[str]) -> None:
    """Refuses an --allow-network that is no network in CIDR form (the client parses them again)."""
    from depin.addresses import parse_networks  # lazy: start-up

    for cidr in cidrs:
        try:
            parse_networks([cidr])
        except ValueError as exc:
            raise ValueError(f"--allow-network {cidr!r} is not a network in CIDR form (such as 10.1.2.0/24): {exc}") from None


# ------------------------------------------------------------------------------------ spec building


def _parse_memory(text: str) -> int:
    """``512``, ``512m``, ``512MB``, ``2g`` → megabytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([mMgG][bB]?|[mM][iI][bB]|[gG][iI][bB])?\s*", text)
    if not m:
        raise ValueError(f"invalid memory {text!r}: expected megabytes like 512, 512m or 2g")
    value = int(m.group(1))
    return value * 1024 if (m.group(2) or "m").lower().startswith("g") else value


def _parse_env(items: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"invalid --env {item!r}: expected NAME=VALUE")
        env[name] = value
    return env


def _command(items: list[str]) -> list[str]:
    if not items:
        raise ValueError("missing --cmd: the command to run in the container")
    if len(items) == 1:
        try:
            argv = shlex.split(items[0])
        except ValueError as exc:
            raise ValueError(f"invalid --cmd {items[0]!r}: {exc}") from None
    else:
        argv = list(items)
    if not argv:
        raise ValueError("--cmd is empty")
    return argv


def _data_uri_bytes(uri: str) -> bytes:
    header, sep, payload = uri[len("data:") :].partition(",")
    if not sep:
        raise ValueError(f"invalid data: URI {uri[:40]!r}: no comma")
    if header.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=True)
        except ValueError:
            raise ValueError(f"invalid data: URI {uri[:40]!r}: bad base64") from None
    return urllib.parse.unquote_to_bytes(payload)


HTML_SUFFIXES = (".html", ".htm", ".xhtml")  # an input named so may be an HTML page


def _input(arg: str, index: int, from_paths: list[str] | None = None) -> dict[str, str]:
    """One ``--input``: ``[NAME=]FILE`` (a local file; embedded as a data: URI up to 2 KiB, else a
    file:// URI) or ``[NAME=]URI`` (http, https, file or data; fetched once to compute its sha256:
    an answer that is an HTML page is refused, as a sign-in page or a captive portal is no input,
    unless the input's name ends in .html or .htm). A local file made a file:// URI has its URI
    appended to `from_paths`."""
    from depin.spec import INPUT_PATH_RE, INPUT_SCHEMES  # lazy: start-up

    name: str | None = None
    source = arg
    m = _NAMED_INPUT.match(arg)
    if m and ":" not in m.group(1):
        name, source = m.group(1), m.group(2)
    elif ":" not in (bad := arg.partition("=")[0]) and bad != arg and not Path(arg).exists():
        raise ValueError(  # NAME=SOURCE with a bad NAME ('=' in a URI's query or base64 comes after a ':')
            f"--input {arg!r}: no such file, and {bad!r} is not an input name (NAME=FILE mounts FILE at"
            " /in/NAME; NAME is a plain file name: letters, digits, '.', '_', '-', first a letter or digit, at most 128)"
        )
    lower = source.lower()
    scheme = _URI_SCHEME.match(source)
    if scheme and not lower.startswith(INPUT_SCHEMES):
        raise ValueError(
            f"unsupported input URI scheme {scheme.group(1)!r} in {source!r}: expected {', '.join(INPUT_SCHEMES)}"
            " or a local file"
        )
    if lower.startswith(("http://", "https://")):
        from depin.fetch import FetchError, FetchGotHtml, FetchTooLarge, download_and_hash  # lazy: start-up (httpx)

        default = Path(urllib.parse.urlsplit(source).path).name
        # an HTML page (a sign-in page, a captive portal) is no input unless its name says it is one
        wants_html = (name or default).lower().endswith(HTML_SUFFIXES)
        try:
            fetched = download_and_hash(source, max_bytes=REMOTE_INPUT_MAX, refuse_html=not wants_html)
        except FetchTooLarge:
            raise ValueError(f"input {source} is larger than {REMOTE_INPUT_MAX} bytes") from None
        except FetchGotHtml as exc:
            raise ValueError(f"cannot fetch input {source}: {exc}; if that page is the input, name it so: "
                             f"--input page.html={source}") from None
        except FetchError as exc:
            raise ValueError(f"cannot fetch input {source}: {exc}") from None
        uri, digest = source, fetched.digest.hex()
    elif lower.startswith("data:"):
        uri, digest, default = source, hashlib.sha256(_data_uri_bytes(source)).hexdigest(), ""
    else:
        file_url = lower.startswith("file://")  # url2pathname is unquote on POSIX
        path = Path(urllib.parse.unquote(urllib.parse.urlsplit(source).path)) if file_url else Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"input file {source} not found") if not path.exists() else ValueError(
                f"input {source} is not a regular file"
            )
        # Hashed as it is read: a large input (a dataset of gigabytes, sent as a file:// URI) never
        # sits in memory; only a small one's bytes are kept, for its data: URI.
        with open(path, "rb") as fh:
            head = fh.read(DATA_URI_MAX + 1)
            hasher = hashlib.sha256(head)
            while chunk := fh.read(1 << 20):
                hasher.update(chunk)
        digest = hasher.hexdigest()
        if len(head) <= DATA_URI_MAX and not file_url:
            uri = "data:;base64," + base64.b64encode(head).decode("ascii")
        else:
            uri = path.resolve().as_uri()
            if not file_url and from_paths is not None:
                from_paths.append(uri)
        default = path.name
    if name is None:
        name = default if INPUT_PATH_RE.match(default) and default not in (".", "..") else f"input{index}"
    return {"path": name, "uri": uri, "sha256": digest}


def build_spec(
    *,
    image: str,
    cmd: list[str],
    inputs: list[str],
    cpus: float,
    memory: str,
    max_runtime: int,
    output_mb: int,
    env: list[str],
    verify: str = "reexec",
    match: list[str] | None = None,
    encrypt_to: str | None = None,
    from_paths: list[str] | None = None,
) -> Any:
    """The spec the options describe; the file:// URIs it made of local files are appended to `from_paths`."""
    from depin.spec import IMAGE_RE, parse_spec  # lazy: start-up

    _check_cpus(cpus)
    if not IMAGE_RE.match(image):
        raise ValueError(
            f"malformed image reference {image!r}: expected REPOSITORY@sha256:<64 hex digits> (pinned by digest; "
            "`docker images --digests` or `podman image inspect --format '{{.Digest}}'` shows it)"
        )
    spec = {
        "v": 1,
        "image": image,
        "command": _command(cmd),
        "env": _parse_env(env),
        "inputs": [_input(item, k, from_paths) for k, item in enumerate(inputs)],
        "resources": {"cpus": cpus, "memory_mb": _parse_memory(memory), "max_runtime": max_runtime, "output_mb": output_mb},
    }
    if verify != "reexec":
        spec["verify"] = verify
    if match:
        spec["output"] = {"match": list(match)}
    if encrypt_to:
        spec["delivery"] = {"encrypt_to": encrypt_to}
    return parse_spec(spec)


def _loopback_endpoint(url: str) -> tuple[str, int | None]:
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    return ("loopback" if host in ("127.0.0.1", "localhost", "::1") else host), parts.port


def _check_file_inputs(spec: JobSpec, from_paths: list[str], client: Client, where: str = "") -> None:
    """Refuses, before anything is sent, a file:// input that no provider of the chain can read: a
    provider reads file:// inputs only below its DEPIN_INPUT_FILE_ROOTS, which is none by default and
    the project folder on the devnet. A local file above DATA_URI_MAX becomes such a URI (listed in
    `from_paths`; off a local chain only those are refused, a URI written out is taken at its word); posted
    anyway, the provider claimed the job, failed to read it and submitted an availability failure
    (the requester paying the no-fault fee), and the job sat Open until its claim deadline."""
    from depin.accounts import is_local_chain  # lazy: start-up

    files = [(i.path, i.uri) for i in spec.inputs if i.uri.lower().startswith("file://")]
    if not files:
        return
    if not is_local_chain(client.chain_id):
        for name, uri in files:
            if uri in from_paths:  # a file:// URI written out is the requester's word that a provider reads it
                raise ValueError(
                    f"input {name!r}: the local file {urllib.parse.unquote(urllib.parse.urlsplit(uri).path)} is above "
                    f"{DATA_URI_MAX:,} bytes, so it would be passed as a file:// URI, and no provider of chain "
                    f"{client.chain_id} can read a file of this machine: serve it over http(s) and give its URL "
                    f"(--input {name}=https://…); nothing was sent"
                )
        return
    state_dir = default_state_dir()
    devnet = discover(state_dir)
    if not devnet or _loopback_endpoint(devnet.get("rpc_url", "")) != _loopback_endpoint(client.rpc.url):
        return  # a local chain that is not this devnet: its providers' roots are unknown here
    roots = [root.resolve() for root in input_file_roots(state_dir)]
    for name, uri in files:
        path = Path(urllib.parse.unquote(urllib.parse.urlsplit(uri).path)).resolve()
        if not any(path.is_relative_to(root) for root in roots):
            raise ValueError(
                f"{where}input {name!r}: {path} is outside {roots[0]}, and the devnet's providers read file:// inputs only "
                f"below it (a local file above {DATA_URI_MAX:,} bytes is passed as a file:// URI): move the file "
                f"there, or serve it over http(s) and give its URL; nothing was sent"
            )


# ------------------------------------------------------------------------------------ commands


def _check_cpus(value: float) -> None:
    """--cpus within the spec's bounds, said naming the option (``inf`` and ``nan`` parse as floats:
    they reached the spec's JCS encoder and were refused in its words)."""
    from depin.spec import MAX_CPUS, MIN_CPUS  # lazy: start-up

    if not (math.isfinite(value) and MIN_CPUS <= value <= MAX_CPUS):
        raise ValueError(f"--cpus must be a number of CPUs from {MIN_CPUS:g} to {MAX_CPUS:g}, not {value:g}")


# The terms `job post` and `job post-batch` share.
ClaimWindowOpt = Annotated[
    int | None, typer.Option("--claim-window", help="Seconds providers have to claim the job (default 3600, within bounds).")
]
ChallengeWindowOpt = Annotated[
    int | None, typer.Option("--challenge-window", help="Seconds to dispute a result (default: the market minimum).")
]
CollateralPctOpt = Annotated[
    int | None, typer.Option("--collateral-pct", help="Provider collateral, % of the reward (default: market minimum).")
]


@app.command("post")
@user_errors
def job_post(
    image: Annotated[str, typer.Option("--image", help="Container image pinned by digest: REPOSITORY@sha256:HEX.")],
    reward: Annotated[str, typer.Option("--reward", help=f"Payment in {TOKEN_SYMBOL} tokens, escrowed now.")],
    cmd: Annotated[
        list[str],
        typer.Option("--cmd", help="The command: one string (split like a shell does) or repeated, one argument each."),
    ] = [],  # noqa: B006 - typer needs a literal default
    inputs: Annotated[
        list[str],
        typer.Option(
            "--input",
            metavar="[NAME=]FILE_OR_URI",
            help="An input mounted at /in/NAME: a local file (sha256 computed) or an http(s)/file/data URI. Repeatable. "
            "A URL that answers an HTML page (a sign-in page, a captive portal) is refused unless NAME ends in .html or .htm.",
        ),
    ] = [],  # noqa: B006
    cpus: Annotated[
        float, typer.Option("--cpus", help="CPUs (fractional allowed, 0.01 to 64).")
    ] = 1.0,
    memory: Annotated[str, typer.Option("--memory", help="Memory limit in MB (512, 512m, 2g).")] = "256",
    max_runtime: Annotated[int, typer.Option("--max-runtime", help="Seconds the job may run.")] = 60,
    output_mb: Annotated[int, typer.Option("--output-mb", help="Cap on the result archive, MB.")] = 16,
    env: Annotated[list[str], typer.Option("--env", metavar="K=V", help="Environment variable. Repeatable.")] = [],  # noqa: B006
    claim_window: ClaimWindowOpt = None,
    challenge_window: ChallengeWindowOpt = None,
    collateral_pct: CollateralPctOpt = None,
    verify: Annotated[
        str,
        typer.Option(
            "--verify",
            help="reexec (default): drawn verifiers may re-run it (the audit escrow E = A + 3w, 4.4x the reward at the "
            "default parameters, is escrowed: credited back unless the job is drawn for audit, and what the court does "
            "not use is refunded); none: never audited, no audit escrow, shown as unverified.",
        ),
    ] = "reexec",
    match: Annotated[
        list[str],
        typer.Option(
            "--match",
            metavar="PATTERN",
            help="Only these /out entries must match between independent runs (a glob relative to /out). Repeatable.",
        ),
    ] = [],  # noqa: B006
    encrypt_to: Annotated[
        str | None,
        typer.Option(
            "--encrypt-to",
            metavar="0xPUBKEY",
            help="Seal the result to this secp256k1 public key (`depin keys pubkey`) instead of the signing key's: "
            "only its owner can read it.",
        ),
    ] = None,
    clear: Annotated[
        bool,
        typer.Option(
            "--clear",
            help="Do not seal the result: the archive is then public under its opaque name once submitted, and a "
            "drawn verifier could copy its digest from it instead of running the job.",
        ),
    ] = False,
    permit: Annotated[
        bool,
        typer.Option("--permit/--approve", help="Approve the escrow by an ERC-2612 signature (default) or an approve tx."),
    ] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the canonical spec and send nothing.")] = False,
    confirmations: ConfirmationsOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Post a job: build its canonical spec, escrow reward + fee + audit fee and print the new job id.

    The escrow is the reward R, the protocol fee f*R and, unless --verify none, the audit escrow
    E = A + 3w (4.4 R at the default parameters: the auditor's pay A and the jury deposit that pays
    a jury when the job turns out not to be reproducible; credited back when the job is not drawn
    for audit, and what the court does not use is refunded).

    The result is sealed to the signing key by default: the spec gets `"delivery": {"encrypt_to":
    KEY}` with KEY its public key (part of the posted bytes and the specHash), the provider publishes the
    archive encrypted to it, and `depin job result` with the same key opens it. --encrypt-to seals
    to another key; --clear publishes it in the clear (anyone can read it, and a drawn verifier
    could copy its digest). --dry-run adds the key only when a key option (or the config's [key])
    is given. A poster without a local key (a spec posted with `cast` or a node-side unlocked
    account) gets a plaintext result unless its spec names a key.

    Example: depin job post --image depin/checksum@sha256:… --cmd "sha256sum /in/data" --input data=./data.bin --reward 0.5 --dev-account 1
    """
    if verify not in ("reexec", "none"):
        raise ValueError(f"--verify must be reexec or none, not {verify!r}")
    if clear and encrypt_to:
        raise ValueError("--clear and --encrypt-to contradict each other: give one of them")
    from_paths: list[str] = []
    spec = build_spec(
        image=image, cmd=cmd, inputs=inputs, cpus=cpus, memory=memory, max_runtime=max_runtime,
        output_mb=output_mb, env=env, verify=verify, match=match, encrypt_to=encrypt_to, from_paths=from_paths,
    )
    amount = parse_tokens(reward, "reward")
    if dry_run:
        from depin.spec import with_delivery  # lazy: start-up

        own = None if clear or encrypt_to else _own_public_key(
            config=config, keystore=keystore, password_file=password_file, dev_account=dev_account,
        )
        if own is not None:
            typer.echo(with_delivery(spec, own).decode())
            return
        typer.echo(spec.to_bytes().decode())
        if not clear and not encrypt_to:
            typer.echo(f"note: {_UNSEALED_NOTE}", err=True)
        return
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account,
    )
    _check_file_inputs(spec, from_paths, client)
    posted = client.post_job(
        spec, reward=amount, claim_window=claim_window, challenge_window=challenge_window,
        collateral_pct=collateral_pct, permit=permit, seal=not clear, confirmations=_confirmations(client, confirmations),
    )
    typer.echo(str(posted.job_id))
    job = client.job(posted.job_id)
    if posted.sealed_to is None:
        delivery = "result in the clear"
    elif posted.sealed_to == client.own_public_key():
        delivery = "result sealed to your key"
    else:
        delivery = "result sealed to the --encrypt-to key"
    typer.echo(
        f"posted job {posted.job_id}: reward {format_amount(amount)} {TOKEN_SYMBOL} + fee {format_amount(job.fee)} + audit fee "
        f"{format_amount(job.audit_fee)} escrowed (verify {job.verify_mode.label}, audit rate {job.audit_bps / 100:g} %); "
        f"{delivery}; tx {posted.tx_hash}, gas {posted.gas_used:,}",
        err=True,
    )


# What a dry run without a key option says of a spec that names no delivery key.
_UNSEALED_NOTE = ("posted with a signing key, the spec also gets its public key as delivery.encrypt_to (a sealed "
                  "result); give the key option to see it, or --clear")


def _own_public_key(
    *, config: Path | None, keystore: Path | None, password_file: Path | None, dev_account: int | None,
) -> bytes | None:
    """The public key of the signing key the options (or the config's [key]) name, which a post
    seals results to by default; None when they name none. For the dry runs: no node is asked."""
    from depin.delivery import public_key_of  # lazy: start-up

    account = signing_account(config=config, keystore=keystore, password_file=password_file, dev_account=dev_account)
    if account is None:
        return None
    key = public_key_of(bytes(account.key))
    del account
    return key


MAX_BATCH = 100  # specs per `job post-batch`: they all go into one transaction, whose gas grows with each job


_EOL = re.compile(rb"\r\n|\r|\n")


def _bounded_lines(stream: Any, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """The non-blank lines of binary `stream`, split at \\n, \\r or \\r\\n (as bytes.splitlines),
    numbered from 1, without ever holding more than `limit` + 1 bytes of one line: a longer one is
    ``(number, None)``, as soon as it is known, and the last (a line of blanks is skipped however long)."""
    number, line, over, blank, after_cr = 1, bytearray(), False, True, False
    while chunk := stream.read(1 << 16):
        i = 1 if after_cr and chunk.startswith(b"\n") else 0
        after_cr = False
        while True:
            m = _EOL.search(chunk, i)
            piece = chunk[i : m.start() if m else len(chunk)]
            blank = blank and not piece.strip()
            if not over:
                line += piece
                if len(line) > limit:
                    over = True
                    line.clear()
            if over and not blank:  # too long whatever follows (/dev/zero has no line end at all)
                yield number, None
                return
            if m is None:
                break
            if not blank:
                yield number, None if over else bytes(line)
            number, line, over, blank = number + 1, bytearray(), False, True
            after_cr = m.group() == b"\r" and m.end() == len(chunk)
            i = m.end()
    if not blank:
        yield number, None if over else bytes(line)


def _read_specs(sources: list[str]) -> list[tuple[str, JobSpec]]:
    """The parsed specs of `sources` in order, each with where it came from (for messages): each
    source a JSON spec file, or ``-``: JSON lines on stdin (one spec per non-empty line). A source
    that cannot be read or parsed is a one-line error naming it (and the line, for stdin)."""
    from depin.deployment import shown_path  # lazy: start-up
    from depin.errors import SpecError  # lazy: start-up
    from depin.spec import MAX_SPEC_BYTES, parse_spec  # lazy: start-up

    too_long = f"more than {MAX_SPEC_BYTES} bytes; the limit is {MAX_SPEC_BYTES}"
    if sources.count("-") > 1:
        raise ValueError("- (stdin) is given more than once: stdin can be read only once")
    specs: list[tuple[str, JobSpec]] = []
    for source in sources:
        if source == "-":
            # bytes, split at \n, \r or \r\n only (a JSON string may hold U+2028 unescaped; bad UTF-8 is the line's error)
            # (read a line at a time, at most MAX_SPEC_BYTES + 1 bytes of it: an endless stream is refused, not held)
            for number, line in _bounded_lines(typer.get_binary_stream("stdin"), MAX_SPEC_BYTES):
                where = f"stdin line {number}"
                if line is None:
                    raise ValueError(f"{where}: spec is {too_long}")
                try:
                    specs.append((where, parse_spec(line)))
                except SpecError as exc:
                    raise ValueError(f"{where}: {exc}") from None
                if len(specs) > MAX_BATCH:
                    raise ValueError(
                        f"{len(specs)} specs: at most {MAX_BATCH} per batch (stdin holds more; they all go into one "
                        "transaction, and its gas grows with each job); split them into several batches"
                    )
            continue
        where = f"spec file {shown_path(source)}"
        try:
            with open(source, "rb") as fh:  # at most one byte past the limit: /dev/zero or a huge file is refused, not read
                raw = fh.read(MAX_SPEC_BYTES + 1)
        except OSError as exc:
            raise ValueError(f"cannot read {where}: {exc.strerror or exc}") from None
        if len(raw) > MAX_SPEC_BYTES:
            raise ValueError(f"{where}: spec is {too_long}")
        try:
            specs.append((where, parse_spec(raw)))
        except SpecError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return specs


def _print_batch(
    specs: list[tuple[str, JobSpec]], *, encrypt_to: str | None, clear: bool, config: Path | None,
    keystore: Path | None, password_file: Path | None, dev_account: int | None,
) -> None:
    """`post-batch --dry-run`: each spec as `post_jobs` would post it, one canonical JSON line each."""
    from depin.spec import with_delivery  # lazy: start-up

    key: str | bytes | None = encrypt_to
    if key is None and not clear:
        key = _own_public_key(config=config, keystore=keystore, password_file=password_file, dev_account=dev_account)
    unsealed = 0
    for _, spec in specs:
        if spec.encrypt_to is None and key is not None:
            typer.echo(with_delivery(spec, key).decode())
        else:
            unsealed += spec.encrypt_to is None
            typer.echo(spec.to_bytes().decode())
    note = ""
    if unsealed and not clear:
        note = f"; {unsealed} without a delivery key: {_UNSEALED_NOTE}"
    typer.echo(f"{len(specs)} specs read and checked; nothing sent{note}", err=True)


@app.command("post-batch")
@user_errors
def job_post_batch(
    reward: Annotated[str, typer.Option("--reward", help=f"Payment per job in {TOKEN_SYMBOL} tokens, escrowed now.")],
    spec_files: Annotated[
        list[str],
        typer.Argument(
            metavar="SPEC_FILE",
            help="JSON job spec files (as `depin job post --dry-run` prints them; formatting does not matter), "
            "or - for JSON lines on stdin, one spec per line.",
            show_default=False,
        ),
    ] = [],  # noqa: B006 - typer needs a literal default; zero specs get their own error
    claim_window: ClaimWindowOpt = None,
    challenge_window: ChallengeWindowOpt = None,
    collateral_pct: CollateralPctOpt = None,
    encrypt_to: Annotated[
        str | None,
        typer.Option(
            "--encrypt-to",
            metavar="0xPUBKEY",
            help="Seal the results of the specs without a delivery key to this secp256k1 public key "
            "(`depin keys pubkey`) instead of the signing key's.",
        ),
    ] = None,
    clear: Annotated[
        bool,
        typer.Option("--clear", help="Do not seal the results of the specs without a delivery key: public once submitted."),
    ] = False,
    approve: Annotated[
        bool,
        typer.Option(
            "--approve/--no-approve",
            help="Send an approve transaction first when the allowance is short (default), or fail instead.",
        ),
    ] = True,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Read and check every spec, print each as it would be posted (one canonical JSON line each, "
            "with the delivery key it would get) and send nothing; no node needed.",
        ),
    ] = False,
    confirmations: ConfirmationsOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Post many jobs in one transaction: one per spec file, each with the same terms; print their ids.

    Each SPEC_FILE holds one JSON job spec (what `depin job post --dry-run` prints, or written by
    hand: it is parsed and posted in its canonical form); - reads JSON lines from stdin, one spec
    per non-empty line. All specs are read and checked before anything is sent: a file that cannot
    be read or parsed is an error naming it, and nothing is posted. 1 to 100 specs per batch (they
    all go into one transaction, whose gas grows with each job).

    Every job gets the same --reward and windows, and escrows reward + fee + audit fee as with
    `depin job post`; the batch's escrow is paid at once (an approve transaction goes first when the
    allowance is short: there is no permit for a batch). Each job's verify mode is its spec's
    "verify" field (default reexec). The results are sealed to the signing key unless a spec names
    its own delivery key, --encrypt-to names another or --clear. All or nothing: one bad job
    reverts the whole batch.

    Prints the job ids on stdout, one per line, in the order of the specs. --dry-run prints the
    specs instead, one canonical JSON line each, as they would be posted (a spec without a delivery
    key gets the --encrypt-to key, or the signing key's when a key option or the config's [key]
    names one): a batch to check before paying for it, and JSON lines that `post-batch -` takes.

    Example: depin job post-batch a.json b.json c.json --reward 0.5 --dev-account 1
    """
    if clear and encrypt_to:
        raise ValueError("--clear and --encrypt-to contradict each other: give one of them")
    amount = parse_tokens(reward, "reward")
    specs = _read_specs(spec_files)
    if not specs:
        raise ValueError("no job specs: give one or more SPEC_FILE, or - to read JSON lines from stdin")
    if len(specs) > MAX_BATCH:
        raise ValueError(
            f"{len(specs)} specs: at most {MAX_BATCH} per batch (they all go into one transaction, and its gas grows "
            "with each job); split them into several batches"
        )
    if encrypt_to:
        from depin.delivery import parse_public_key  # lazy: start-up

        try:
            key = parse_public_key(encrypt_to)
        except ValueError as exc:
            raise ValueError(f"--encrypt-to: {exc}") from None
        for where, spec in specs:
            if spec.encrypt_to is not None and spec.encrypt_to != key:
                raise ValueError(f"{where}: the spec already names another delivery key (delivery.encrypt_to) than --encrypt-to")
    if dry_run:
        _print_batch(specs, encrypt_to=encrypt_to, clear=clear, config=config, keystore=keystore,
                     password_file=password_file, dev_account=dev_account)
        return
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account,
    )
    for where, spec in specs:
        _check_file_inputs(spec, [], client, where=f"{where}: ")
    posted = client.post_jobs(
        [spec for _, spec in specs], reward=amount, claim_window=claim_window, challenge_window=challenge_window,
        collateral_pct=collateral_pct, approve=approve, seal=not clear, encrypt_to=encrypt_to,
        confirmations=_confirmations(client, confirmations),
    )
    for item in posted:
        typer.echo(str(item.job_id))
    jobs = [client.job(item.job_id) for item in posted]
    escrow = sum(job.reward + job.fee + job.audit_fee for job in jobs)
    own = client.own_public_key()
    kinds = {"sealed to your key": 0, "sealed to another key": 0, "in the clear": 0}
    for item in posted:
        kind = "in the clear" if item.sealed_to is None else "sealed to your key" if item.sealed_to == own else "sealed to another key"
        kinds[kind] += 1
    delivery = ", ".join(f"{count} {kind}" for kind, count in kinds.items() if count)
    unverified = sum(job.verify_mode == VerifyMode.NONE for job in jobs)
    n, tx, gas = len(posted), posted[0].tx_hash, posted[0].gas_used
    typer.echo(
        f"posted {n} jobs in one transaction: reward {format_amount(amount)} {TOKEN_SYMBOL} each, "
        f"{format_amount(escrow)} {TOKEN_SYMBOL} escrowed in all (rewards + fees + audit fees)"
        f"{f'; {unverified} with verify none' if unverified else ''}; results {delivery}; tx {tx}, gas {gas:,} "
        f"({gas // n:,} per job)",
        err=True,
    )


def _when(ts: int, now: int) -> str:
    if ts == 0:
        return "-"
    at = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = ts - now
    return f"{at} ({'in ' + str(delta) + ' s' if delta >= 0 else str(-delta) + ' s ago'})"


def _job_dict(client: Client, job: OnchainJob) -> dict[str, Any]:

    unsubmitted = (JobStatus.OPEN, JobStatus.CLAIMED, JobStatus.CANCELLED, JobStatus.EXPIRED, JobStatus.TIMED_OUT)
    sub = None if job.status in unsubmitted and not job.failure else client.submission(job.job_id)
    d: dict[str, Any] = {
        "id": job.job_id,
        "status": job.status.label,
        "requester": job.requester,
        "provider": job.provider,
        "reward": str(job.reward),
        "fee": str(job.fee),
        "auditFee": str(job.audit_fee),
        "verifyMode": job.verify_mode.label,
        "auditBps": job.audit_bps,
        "paramsVersion": job.params_version,
        "collateral": str(job.collateral),
        "collateralPct": job.collateral_pct,
        "claimDeadline": job.claim_deadline,
        "deadline": job.deadline,
        "maxRuntime": job.max_runtime,
        "challengeWindow": job.challenge_window,
        "specHash": "0x" + job.spec_hash.hex(),
        "commitment": "0x" + job.commitment.hex(),
        "anchorBlock": job.anchor_block,
        "failure": job.failure,
    }
    if sub is not None:
        d["commitment"] = "0x" + sub.commitment.hex()
        d["anchorBlock"] = sub.anchor_block
        if sub.failure:
            d["failureCode"] = sub.failure_code.name if sub.failure_code is not None else None
        else:
            d["resultURI"] = sub.uri
    if job.status in (JobStatus.SUBMITTED, JobStatus.DISPUTED) and job.verify_mode == VerifyMode.REEXEC:
        d["drawn"] = client.is_drawn(job.job_id)  # None until the anchor block's randomness is readable
    if job.status == JobStatus.DISPUTED and (case := _case_dict(client, job.job_id)) is not None:
        d["case"] = case
    if job.status in (JobStatus.RESOLVED, JobStatus.PRUNED):
        settled = client.settlement(job.job_id)  # the court's ruling: JobSettled (a Finalized job has none)
        if settled is not None:
            d["outcome"] = settled.outcome.label
            d["outcomeMeaning"] = settled.outcome.meaning
            d["settlement"] = {
                "providerPayout": str(settled.provider_payout),
                "requesterRefund": str(settled.requester_refund),
                "courtPaidRequester": str(settled.court_paid),
                "toCourt": str(settled.to_court),
                "burned": str(settled.burned),
                "tx": settled.tx_hash,
            }
    return d


def _case_dict(client: Client, job_id: int) -> dict[str, Any] | None:
    """A Disputed job's case in its own court (the one it was posted under: :meth:`Client.court_of`),
    read from the chain: phase, round (0 the audit, then the juries), the round's seats and deadlines,
    the challenger. None from a court with no cases to read (the TestCourt stand-in of local test
    deployments, which tests settle by hand)."""
    from depin.transactions import TxReverted  # lazy: start-up

    try:
        case = client.court_case(job_id)
    except TxReverted:
        return None
    round_ = int(case["round"])
    return {
        "court": client.court_of(job_id).address,
        "phase": Phase(int(case["phase"])).label,
        "round": round_,
        "roundSeats": JURY_SIZES[round_] if round_ < len(JURY_SIZES) else None,
        "redraws": int(case["redraws"]),
        "taken": int(case["taken"]),
        "committed": int(case["committed"]),
        "revealed": int(case["revealed"]),
        "seatDeadline": int(case["seatDeadline"]),
        "commitDeadline": int(case["commitDeadline"]),
        "revealDeadline": int(case["revealDeadline"]),
        "windowEnd": int(case["windowEnd"]),
        "challenger": case["challenger"] if int(case["challenger"], 16) else None,
    }


def _deadline_label(job: OnchainJob) -> str:

    return {
        JobStatus.CLAIMED: "submit deadline",
        JobStatus.SUBMITTED: "challenge deadline",
        JobStatus.DISPUTED: "challenge deadline",
    }.get(job.status, "deadline")


@app.command("status")
@user_errors
def job_status(
    job_id: JobIdArg,
    as_json: JsonOpt = False,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Show a job as the chain has it now: status, parties, amounts and fees, verify mode and audit
    rate, deadlines, commitment, anchor block, whether it was drawn for audit, result URI; for a job
    in court (Disputed) its case in the court it was posted under: phase, round (the audit, then
    juries of 3, 7 and 15), seats taken, committed and revealed, the round's deadlines, the
    challenger; and for a job its court settled (Resolved) the court's outcome: ProviderRight (the result upheld),
    ProviderWrong (ruled wrong, the provider slashed: do not use the result), Split (jurors
    disagreed: not reproducible, the result unconfirmed), Unaudited (drawn but nobody audited it) or
    Canary, with who was paid. A job one of whose deadlines has passed shows the step now due
    (expire, time out, finalize, or move its court case on), which `depin job advance` sends;
    otherwise what it waits for and until when.

    Example: depin job status 7
    """

    jid = _job_id(job_id)  # before any node is asked
    client = open_client(rpc_url=rpc_url, deployment=deployment, config=config, need_key=False)
    job = client.job(jid)
    d = _job_dict(client, job)
    due = None if job.status.settled else client.due_step(jid)
    if due is not None and due.due:
        d["dueStep"] = {"step": due.step, "does": due.does, "command": f"depin job advance {jid}"}
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    now = client.block_timestamp()
    table = DataTable(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("id", str(job.job_id))
    table.add_row("status", job.status.label + (" (failure report)" if job.failure else ""))
    table.add_row("requester", job.requester)
    table.add_row("provider", job.provider or "-")
    table.add_row("reward", f"{format_amount(job.reward)} {TOKEN_SYMBOL}")
    table.add_row("fee", f"{format_amount(job.fee)} {TOKEN_SYMBOL}")
    table.add_row("audit fee", f"{format_amount(job.audit_fee)} {TOKEN_SYMBOL}")
    verify = job.verify_mode.label + ("" if job.verify_mode == VerifyMode.REEXEC else " (never audited)")
    table.add_row("verify", f"{verify}, audit rate {job.audit_bps / 100:g} %")
    table.add_row("collateral", f"{format_amount(job.collateral)} {TOKEN_SYMBOL} ({job.collateral_pct}%)")
    if job.claim_deadline:
        table.add_row("claim deadline", _when(job.claim_deadline, now))
    if job.deadline and job.status in (JobStatus.CLAIMED, JobStatus.SUBMITTED, JobStatus.DISPUTED):
        table.add_row(_deadline_label(job), _when(job.deadline, now))
    table.add_row("max runtime", f"{job.max_runtime} s")
    table.add_row("challenge window", f"{job.challenge_window} s")
    if job.spec_hash != b"\0" * 32:
        table.add_row("spec hash", d["specHash"])
    if job.anchor_block or "failureCode" in d:
        table.add_row("commitment", d["commitment"])
        table.add_row("anchor block", str(d["anchorBlock"]))
    if "drawn" in d:
        table.add_row("drawn for audit", {True: "yes", False: "no", None: "not known yet"}[d["drawn"]])
    for key, label in (("resultURI", "result URI"), ("failureCode", "failure")):
        if key in d:
            table.add_row(label, str(d[key]))
    if "case" in d:
        case = d["case"]
        kind = "the audit" if case["round"] == 0 else f"jury round {case['round']}"
        seats = f"{case['roundSeats']} seats: " if case["roundSeats"] else ""
        table.add_row("court", case["court"])
        table.add_row(
            "case",
            f"{case['phase']}, {kind} ({seats}{case['taken']} taken, {case['committed']} committed, {case['revealed']} revealed)"
            + (f", challenged by {case['challenger']}" if case["challenger"] else ""),
        )
        for key, label in (("seatDeadline", "seats taken until"), ("commitDeadline", "commits until"),
                           ("revealDeadline", "reveals until"), ("windowEnd", "appeal window ends")):
            if case[key]:
                table.add_row(label, _when(case[key], now))
    if "outcome" in d:
        table.add_row("court outcome", f"{d['outcome']}: {d['outcomeMeaning']}")
        paid = d["settlement"]
        table.add_row(
            "settled",
            f"provider paid {format_amount(int(paid['providerPayout']))} {TOKEN_SYMBOL}, requester refunded "
            f"{format_amount(int(paid['requesterRefund']))} {TOKEN_SYMBOL} to its market balance and paid "
            f"{format_amount(int(paid['courtPaidRequester']))} {TOKEN_SYMBOL} to its wallet by the court, court "
            f"{format_amount(int(paid['toCourt']))} {TOKEN_SYMBOL}",
        )
    if due is not None and due.due:
        table.add_row("due now", f"`depin job advance {jid}` {due.does}")
    elif due is not None:
        table.add_row("waits for", _waiting(due))
    make_console().print(table)


MAX_WATCH_INTERVAL = 3600  # seconds between a watch's checks


@app.command("watch")
@user_errors
def job_watch(
    job_id: JobIdArg,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, max=MAX_WATCH_INTERVAL, help="Seconds between checks.")
    ] = 1.0,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, show_default="none: until settled", help="Give up after this many seconds (exit 1)."),
    ] = None,
    redis_url: RedisUrlOpt = None,
    namespace: NamespaceOpt = "depin",
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Follow a job live, one line per status change, until it is settled.

    Reads the indexer's Redis (`depin indexer run`); when Redis is unreachable or holds no index of
    this deployment, polls the chain instead.

    Example: depin job watch 7
    """
    jid = _job_id(job_id)  # before any node is asked
    client = open_client(rpc_url=rpc_url, deployment=deployment, config=config, need_key=False)
    client.job(jid)  # unknown job id: fail now
    index_read = _index_reader(redis_url, deployment, config, namespace, client)

    def chain_status() -> str:
        return client.job(jid).status.label

    last: str | None = None
    started = time.monotonic()
    next_cross_check = started + INDEX_CROSS_CHECK
    lagging_since: float | None = None
    while True:
        now = time.monotonic()
        if index_read is None:
            status = chain_status()
        else:
            # the index may not have the job yet (it lags behind its posting): the chain answers then
            status = index_read(jid) or chain_status()
            if now >= next_cross_check:  # an indexer that stopped must not leave us waiting forever
                next_cross_check = now + INDEX_CROSS_CHECK
                on_chain = chain_status()
                if on_chain == status:
                    lagging_since = None
                elif lagging_since is None:
                    lagging_since = now
                elif now - lagging_since >= INDEX_CROSS_CHECK:
                    typer.echo(
                        f"note: the index says {status} but the chain says {on_chain} (is `depin indexer run` "
                        "running?); following the chain",
                        err=True,
                    )
                    index_read, status = None, on_chain
        if status != last:
            stamp = datetime.now(UTC).strftime("%H:%M:%S")
            typer.echo(f"{stamp} job {jid}: {status}")
            last = status
        if status in _SETTLED:
            return
        if timeout is not None and now - started > timeout:
            from depin.client import ClientError  # lazy: start-up

            raise ClientError(f"job {jid} is still {status} after {timeout:g} s")
        time.sleep(interval)


def _index_reader(
    redis_url: str | None, deployment: Path | None, config: Path | None, namespace: str, client: Client
) -> Any:
    """A function job id → indexed status label (None when not indexed), or None without a usable index."""
    import redis  # lazy: start-up

    from indexer.query import IndexerReader  # lazy: start-up

    url = redis_url
    if url is None and config is not None:
        from depin.config import load_config  # lazy: start-up

        cfg = load_config(config)
        url, namespace = cfg.redis.url, cfg.redis.namespace
    url = url or default_redis_url()
    from depin.redact import redact_url  # lazy: start-up
    try:
        path = deployment or find_deployment_file(None)
        reader = IndexerReader.for_deployment(url, path, namespace)
        reader.ping()
        if not reader.status().indexed:
            typer.echo(f"note: nothing indexed under {reader.keys.prefix} in {redact_url(url)}; following the chain", err=True)
            return None
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        typer.echo(f"note: Redis at {redact_url(url)} is unreachable; following the chain", err=True)
        return None
    except redis.RedisError as exc:  # something answered, but no Redis (the node's port) or not this DB
        typer.echo(f"note: Redis at {redact_url(url)} is unusable ({one_line(str(exc))}); following the chain", err=True)
        return None

    def status(jid: int) -> str | None:
        try:
            record = reader.get_job(jid)
        except redis.RedisError:
            return None
        return record.status if record is not None else None

    return status


@app.command("result")
@user_errors
def job_result(
    job_id: JobIdArg,
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Folder to extract the job's /out into: new or empty (a result never replaces your files).")],
    salt: Annotated[
        str | None,
        typer.Option("--salt", metavar="0xHEX", help="The provider's salt (default: from the manifest beside the archive)."),
    ] = None,
    allow_network: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-network",
            metavar="CIDR",
            help="A non-public network the result may be fetched from (repeatable; default: none, or loopback on a local devnet).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Extract a result its court ruled wrong (ProviderWrong) anyway, with a warning."),
    ] = False,
    allow_vcs: Annotated[
        bool,
        typer.Option("--allow-vcs", help="Extract a result holding a .git or .hg folder (its settings can run commands: only from a provider you trust)."),
    ] = False,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Download a job's result, verify it against the provider's on-chain commitment and extract it.

    The archive's digest (its sha256, or the match digest of the spec's --match selection) with the
    provider's salt (from the manifest published beside the archive, `URI.json`, or --salt) must
    give the commitment. A result that does not is refused and nothing is extracted; so is one
    holding a member that could write or point outside --out (an absolute or escaping symbolic
    link, a hard link, a device, a '..' path), and one holding a .git or .hg folder unless
    --allow-vcs: its settings name commands that a `git status` in the folder runs (many shell
    prompts run one when you enter it).

    A result sealed to the requester (the spec's "delivery": {"encrypt_to": ...}; `job post` seals to
    the signing key unless --clear) is first checked
    against its content address (the sha256 in its URI), then opened with the requester's key
    (--keystore, --dev-account or the config's [key]; `depin keys pubkey` prints the public key to
    put in the spec), its salt too, and then checked as above.

    The URI is the provider's: it is fetched over http(s) from public addresses only (each redirect
    too, at most 5), never from this machine's own network (loopback, the LAN, a cloud metadata
    service) unless --allow-network names it; on a local devnet loopback (where its providers serve)
    and file:// URIs are allowed. The download must average 1 MiB/s beyond a 60 s start.

    A result whose court ruled it wrong (outcome ProviderWrong, `depin job status` shows it) is
    refused: it is the wrong answer even when it matches the commitment. --force extracts it anyway
    (with a warning). A Split outcome (jurors disagreed: the job is not reproducible) is extracted
    with a warning that the result is unconfirmed; so is a result still disputed in its court.

    Example: depin job result 7 --out ./result-7 --keystore keys/me.json
    """
    # the arguments are checked before any node is asked or password read
    jid = _job_id(job_id)
    salt_bytes = None
    if salt is not None:
        if not re.fullmatch(r"(0[xX])?[0-9a-fA-F]{64}", salt.strip()):
            raise ValueError(f"--salt must be 0x + 64 hex digits (32 bytes), not {salt[:80]!r}")
        salt_bytes = bytes.fromhex(salt.strip()[-64:])
    _check_networks(allow_network or [])
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account, need_key=False,
    )
    from depin.client import ResultRuledWrong  # lazy: start-up

    try:
        fetched = client.download_result(
            jid, out, salt=salt_bytes, allow_networks=allow_network or None, allow_ruled_wrong=force, allow_vcs=allow_vcs
        )
    except ResultRuledWrong as exc:
        raise ResultRuledWrong(f"{exc}; --force extracts it anyway") from None
    sealed = " (delivered sealed to your key; content address checked, opened)" if fetched.sealed else ""
    upheld = "; upheld by its court (ProviderRight)" if fetched.outcome == Outcome.PROVIDER_RIGHT else ""
    typer.echo(
        f"job {fetched.job_id}: result 0x{fetched.digest.hex()} matches the commitment ({fetched.size:,} bytes from {printable(fetched.uri)}){sealed}; "
        f"exit code {fetched.exit_code}; extracted to {fetched.path}{upheld}"
    )
    if fetched.outside_match:
        typer.echo(
            f"note: {fetched.outside_match} of the result's {fetched.entries} entries lie outside the spec's output.match selection: "
            "extracted as the provider delivered them, but the commitment (and any verifier's run) covers only the selected ones",
            err=True,
        )
    if fetched.outcome == Outcome.PROVIDER_WRONG:
        typer.echo(
            f"warning: job {fetched.job_id}'s court ruled this result WRONG (outcome ProviderWrong: the provider's collateral "
            f"was slashed, you were refunded); extracted only because of --force: do not use it as the job's answer",
            err=True,
        )
    elif fetched.outcome == Outcome.SPLIT:
        typer.echo(
            f"warning: job {fetched.job_id}'s jurors disagreed among themselves (outcome Split): the job is not reproducible "
            "(nondeterministic) and this result is unconfirmed",
            err=True,
        )
    elif fetched.status == JobStatus.DISPUTED:
        typer.echo(
            f"warning: job {fetched.job_id} is under verification in its court (Disputed): its ruling may still find this "
            f"result wrong; `depin job status {fetched.job_id}` shows the outcome once it is settled",
            err=True,
        )
    if fetched.sealing_ignored:
        typer.echo(
            f"warning: job {fetched.job_id}'s spec asked for a delivery sealed to your key, but the provider published it in "
            f"plaintext at {printable(fetched.uri)}: anyone who fetched it could read it. Jurors count such a delivery as not "
            "delivered: challenge the result (depin job challenge) while its window is open.",
            err=True,
        )


@app.command("cancel")
@user_errors
def job_cancel(
    job_id: JobIdArg,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Cancel an open job of yours (also past its claim deadline, until someone expires it): its
    whole escrow, the reward, the fee and the audit escrow, is credited back to your market
    balance; `depin job withdraw` moves it to your wallet.

    A job no longer Open cannot be cancelled; one whose deadline has passed (a claimed job whose
    provider missed its submit deadline, a result whose challenge window ended) is moved on by
    `depin job advance`.

    Example: depin job cancel 7 --keystore keys/me.json
    """
    jid = _job_id(job_id)  # before any node is asked or password read
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account,
    )
    from depin.client import Refused  # lazy: start-up

    job = client.job(jid)
    try:
        receipt = client.cancel(jid)
    except Refused as exc:
        if exc.error_name == "WrongStatus":
            due = client.due_step(jid)
            if due.due:
                raise Refused(f"{exc}; {_passed(job, due)}: `depin job advance {jid}` {due.does}", exc.error_name) from None
        raise
    typer.echo(
        f"cancelled job {jid} (tx {receipt.tx_hash}); its escrow of {format_amount(job.escrow)} {TOKEN_SYMBOL} (reward + fee "
        f"+ audit escrow) is credited to your market balance, now {format_amount(client.withdrawable())} {TOKEN_SYMBOL}: "
        f"`depin job withdraw` moves it to your wallet"
    )


@app.command("challenge")
@user_errors
def job_challenge(
    job_id: JobIdArg,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Challenge a submitted result in the job's court within its challenge window, posting the
    court's challenge bond (3.5x the reward at the default parameters).

    A jury of verifiers drawn from the provider's platform class re-runs the job. If the provider
    was wrong the bond comes back with a bounty (at most beta x the reward); if it was right the bond
    pays the jury. The job's provider cannot challenge its own job; verify-none jobs cannot be
    challenged.

    Example: depin job challenge 7 --keystore keys/me.json
    """
    jid = _job_id(job_id)  # before any node is asked or password read
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account,
    )
    receipt = client.challenge(jid)
    bond = client.challenge_bond(jid)
    typer.echo(
        f"challenged job {jid} in its court with a bond of {format_amount(bond)} {TOKEN_SYMBOL} (tx {receipt.tx_hash}); "
        f"follow it with `depin job watch {jid}`"
    )


@app.command("appeal")
@user_errors
def job_appeal(
    job_id: JobIdArg,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Appeal the last jury tally of a job's court case within its appeal window, posting the
    appeal bond: the next jury's seats times w, the jurors' pay (w = 1.1x the reward at the default
    parameters): 7 w after the first jury's tally, 15 w after the second's, and 15 w again to take
    the third's to the arbiter.

    Anyone but the job's provider may appeal a tally for the provider (ProviderRight) or a Split;
    only the provider may appeal ProviderWrong. The bond pays the next jury; a winning appellant is
    repaid from what the losing side forfeits. `depin job status` shows the tally and when its
    appeal window ends; once it has ended, `depin job advance` concludes the case.

    Example: depin job appeal 7 --keystore keys/me.json
    """
    jid = _job_id(job_id)  # before any node is asked or password read
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account,
    )
    case = client.court_case(jid)
    bond = client.appeal_bond(jid)
    receipt = client.appeal(jid)
    round_ = int(case["round"])
    following = f"jury round {round_ + 1} ({JURY_SIZES[round_ + 1]} seats)" if round_ + 1 < len(JURY_SIZES) else "the arbiter"
    typer.echo(
        f"appealed the {Outcome(int(case['tally'])).label} tally of job {jid}'s jury round {round_} with a bond of "
        f"{format_amount(bond)} {TOKEN_SYMBOL}: {following} decides next (tx {receipt.tx_hash}); follow it with "
        f"`depin job watch {jid}`"
    )


# What the requester may do while a job waits (DueStep.meanwhile): the command's effect.
_MEANWHILE = {
    "cancel": "cancels it, crediting its whole escrow back to you",
    "challenge": "challenges its result in its court (posting the challenge bond)",
    "appeal": "appeals the tally (posting the next jury's bond)",
}


def _waiting(due: DueStep) -> str:
    """What a job with nothing due waits for, until when (chain time), and what comes then."""
    text = due.waits_for
    if due.until is not None:
        text += f" until {_when(due.until, due.now)} (chain time)"
    if due.then is not None:
        text += f"; then `depin job advance {due.job_id}` {due.then_does}"
    if due.meanwhile is not None:
        text += f"; until then `depin job {due.meanwhile} {due.job_id}` {_MEANWHILE.get(due.meanwhile, '')}".rstrip()
    return text


def _passed(job: OnchainJob, due: DueStep) -> str:
    """Which deadline of `job` passed, making `due` due (for messages)."""
    if due.step == "advance":
        return "a deadline of its court case has passed"
    return {"expire": "its claim deadline has passed"}.get(due.step or "", f"its {_deadline_label(job)} has passed")


@app.command("advance")
@user_errors
def job_advance(
    job_id: JobIdArg,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Move a job past a deadline that has passed: send the permissionless step its deadlines
    allow now, and say what it did and what the requester got back.

    An Open job past its claim deadline is expired (its whole escrow, reward + fee + audit escrow,
    is credited back); a Claimed job past its submit deadline is timed out (the provider's
    collateral is burned; the escrow is credited back, or the job reopens while its claim deadline
    has not passed); a Submitted job past its challenge window that was not drawn for audit is
    finalized (the provider is paid, the unused audit escrow is credited back; a failure report
    gets the whole escrow back). A job drawn for audit, or in court (Disputed), has its court case
    moved on once one of its deadlines has passed: a drawn audit nobody took is opened and its
    auditor redrawn, empty seats are redrawn, a round is tallied, a case whose appeal window ended
    is concluded (what the ruling leaves of the audit escrow is paid to the requester's wallet).
    Refunds credited to the market balance are withdrawn with `depin job withdraw`.

    Anyone may send these steps (the sender pays only the gas). When nothing is due yet the command
    sends nothing, exits 1 and says what the job waits for, until when (chain time), and which
    command applies then.

    Example: depin job advance 7 --keystore keys/me.json
    """
    jid = _job_id(job_id)  # before any node is asked or password read
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account,
    )
    from depin.client import NothingDue  # lazy: start-up

    try:
        done = client.advance_job(jid)
    except NothingDue as exc:
        due = exc.due
        if due.status.settled:
            raise ValueError(
                f"job {jid} is {due.status.label}: it is settled, nothing is due; `depin job withdraw` withdraws what it "
                "credited to your market balance"
            ) from None
        raise ValueError(f"nothing is due for job {jid} yet: it is {due.status.label} and waits for {_waiting(due)}") from None
    yours = client.address.lower() == done.requester.lower()
    who, whose = ("you", "your") if yours else (f"the requester {done.requester}", "its")
    back = done.credited + done.paid
    if back:
        parts = []
        if done.credited:
            parts.append(f"{format_amount(done.credited)} {TOKEN_SYMBOL} credited to {whose} market balance")
        if done.paid:
            parts.append(f"{format_amount(done.paid)} {TOKEN_SYMBOL} paid to {whose} wallet")
        got = f"{who} got back {format_amount(back)} {TOKEN_SYMBOL}: {' and '.join(parts)}"
        if done.credited and yours:
            got += (f" (`depin job withdraw` moves your market balance, now {format_amount(client.withdrawable())} "
                    f"{TOKEN_SYMBOL}, to your wallet)")
    elif done.status.settled:
        got = f"{who} got nothing back (the escrow paid for the work)"
    else:
        got = f"{who} got nothing back yet (it comes when the job settles)"
    typer.echo(f"job {jid}: {done.did} (tx {done.tx_hash}); now {done.status.label}; {got}")


def withdraw_market_balance(client: Client, what: str) -> str | None:
    """Withdraws the signing account's whole market balance to its wallet (:meth:`Client.withdraw`)
    and returns the line that says so (`what` names what the balance holds), or None when it is
    empty (nothing sent). `depin job withdraw` and `depin provider withdraw` share it."""
    amount = client.withdrawable()
    if not amount:
        return None
    receipt = client.withdraw()
    return f"withdrew {format_amount(amount)} {TOKEN_SYMBOL} of {what} (tx {receipt.tx_hash})"


@app.command("withdraw")
@user_errors
def job_withdraw(
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    dev_account: DevAccountOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Withdraw your market balance to your wallet: the escrow credited back by a cancel, an
    expiry or a timeout, the unused audit escrow of a finalized job, a court's refund, and any
    earnings.

    Example: depin job withdraw --keystore keys/me.json
    """
    client = open_client(
        rpc_url=rpc_url, deployment=deployment, config=config, keystore=keystore, password_file=password_file,
        dev_account=dev_account,
    )
    line = withdraw_market_balance(client, "refunds and earnings from the market")
    if line is None:
        raise ValueError(
            f"nothing to withdraw: {client.address} has no balance in the market (refunds of cancelled, expired, timed-out "
            "and finalized jobs are credited there; `depin job advance` sends a step that is due)"
        )
    typer.echo(f"{line}; your wallet holds {format_amount(client.token_balance())} {TOKEN_SYMBOL} now")
