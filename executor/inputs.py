"""Fetching a job's inputs into its inputs folder and checking them before the container starts.

Each input ``{path, uri, sha256}`` is downloaded into a staging folder while its sha256 is computed
and moved to ``<inputs_dir>/<path>`` (mode 0644; the folder is bind-mounted read-only at ``/in``)
only when the hash matches; nothing reaches the container unless every hash matches. The staging
folder (``.fetch-*``) cannot collide with an input name (names start with a letter or digit) and is
removed before the container starts. Supported URIs:

- ``http://`` / ``https://``: streamed with httpx, a connect/read timeout (``timeout``; the whole
  download gets ``TOTAL_TIMEOUT_FACTOR`` times that, and all of a job's downloads end by the
  caller's `deadline`: what the job's submit window leaves for its inputs), at most ``MAX_REDIRECTS`` redirects (to
  http(s) only), and a byte cap (``max_bytes``, over all inputs of the job): a server that sends
  more is cut off at the cap. The URL is the requester's, so it must not reach the provider's own
  network: each hop's host is resolved once, *every* address of the answer must be public (or in
  the policy's ``input_allow_networks``; :mod:`depin.addresses`), and the connection goes to
  that checked address only (Host header and TLS name stay the URL's host). No proxy is taken from
  the environment. Nothing is decompressed: every request asks for the content as is
  (``Accept-Encoding: identity``), a 200 answer with any ``Content-Encoding`` but ``identity`` is
  refused unread, and the body is read raw, so the cap counts the bytes as sent;
- ``data:`` (RFC 2397; ``;base64`` or percent-encoded), for small inline inputs;
- ``file://`` (devnet): only below an allowed root (the `file_roots` argument, else the
  ``DEPIN_INPUT_FILE_ROOTS`` environment variable, ``os.pathsep``-separated). With no root allowed
  every ``file://`` URI is refused: a spec must never make a provider copy its own files into a job.

**A cache** (`cache_dir`, the verifier's: :mod:`executor.verifier`): every http(s) or file input
that passed its check is copied to ``<cache_dir>/<sha256>``, and a later fetch with the same
`cache_dir` takes it from there (hash-checked again, and under the same byte cap) instead of asking
the URI. A verifier checks a job's inputs before it locks a bond and then re-runs the job later; the
cache is what makes the run use the bytes it checked, so a requester who switches an input in
between cannot turn the honest verifier's run into a no-show.

Error messages become failure reasons, whose text is hashed into the on-chain evidence and may be
shown to anyone: they name the input and its URI (the requester's own words) but never what a
server answered (status, headers, size, body, the hash of what came back), where a redirect
pointed, which address a name resolved to, or the provider's file roots. Those details are logged
locally at debug level only.

Two outcomes, two errors (both :class:`~depin.errors.ExecutionError`):

- :class:`InputHashMismatch`: the bytes were fetched and their sha256 differs from the spec's. This
  is a *provable* failure: the provider may submit ``FailureCode.INPUT_HASH_MISMATCH`` (anyone can
  fetch the same URI and recompute). ``retryable`` is False.
- :class:`InputUnavailable`: the input could not be fetched (unreachable host, HTTP error, timeout,
  refused scheme, path, address or content encoding, over the size cap). Nothing is proven; ``retryable`` says whether trying
  again may help (network trouble: True; refused by policy or too large: False). The caller decides:
  retry with backoff while the submit deadline allows, and only then fall back to submitting
  ``INPUT_HASH_MISMATCH`` (which :func:`executor.execute.execute` reports with ``retryable=True``
  so the caller can tell the two cases apart).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import logging
import os
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from depin.addresses import AddressRefused, HostUnresolvable, IPAddress, IPNetwork, parse_networks, resolve_checked
from depin.errors import ExecutionError
from depin.fetch import (
    UNREADABLE_ANSWER_ERRORS,
    LookupTimedOut,
    Redirected,
    Watchdog,
    by_deadline,
    open_regular_file,
    parse_url,
    stop_at_redirect,
)
from depin.market import FailureCode
from depin.spec import InputSpec, JobSpec

CHUNK = 1 << 16
MAX_INPUT_BYTES = 1 << 30  # over all inputs of one job
TIMEOUT = 30.0  # seconds per connect/read; a whole download gets TOTAL_TIMEOUT_FACTOR times that
TOTAL_TIMEOUT_FACTOR = 10
MAX_REDIRECTS = 3
# Seconds all of one job's http(s) inputs may take together, whatever its deadline: the compute
# task's time limit counts on it (executor.celery.time_limits).
JOB_INPUTS_TIMEOUT = int(TOTAL_TIMEOUT_FACTOR * TIMEOUT)
IDENTITY = {"Accept-Encoding": "identity"}  # the content as is: nothing is decompressed (the module doc)
FILE_ROOTS_ENV = "DEPIN_INPUT_FILE_ROOTS"

log = logging.getLogger(__name__)


class InputError(ExecutionError):
    """An input could not be used; see the subclasses."""

    code = FailureCode.INPUT_HASH_MISMATCH
    retryable = False

    def __init__(self, message: str, *, path: str = "", uri: str = "", retryable: bool | None = None):
        super().__init__(message)
        self.path = path
        self.uri = uri
        if retryable is not None:
            self.retryable = retryable


class InputHashMismatch(InputError):
    """The fetched bytes do not hash to the spec's sha256 (provable: INPUT_HASH_MISMATCH)."""

    def __init__(self, message: str, *, path: str = "", uri: str = "", expected: str = "", actual: str = ""):
        super().__init__(message, path=path, uri=uri, retryable=False)
        self.expected = expected
        self.actual = actual


class InputUnavailable(InputError):
    """The input could not be fetched at all (see ``retryable``)."""


@dataclass(frozen=True)
class FetchedInput:
    path: Path
    sha256: str
    size: int


def _file_roots(file_roots: Sequence[Path | str] | None) -> list[Path]:
    if file_roots is None:
        file_roots = [p for p in os.environ.get(FILE_ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    return [Path(p).resolve() for p in file_roots]


class _Sink:
    """Writes to a file while hashing and counting against a byte budget."""

    def __init__(self, fh, budget: int, item: InputSpec):
        self.fh = fh
        self.budget = budget
        self.item = item
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.budget:
            raise InputUnavailable(
                f"input {self.item.path!r} ({_short(self.item.uri)}) exceeds the executor's input cap "
                f"({self.budget} bytes left for this job)",
                path=self.item.path,
                uri=self.item.uri,
                retryable=False,
            )
        self.hash.update(data)
        self.fh.write(data)


def _short(uri: str, limit: int = 80) -> str:
    return uri if len(uri) <= limit else uri[: limit - 3] + "..."


def _fetch_http(item: InputSpec, sink: _Sink, timeout: float, allow: Sequence[IPNetwork], job_deadline: float | None = None) -> None:
    """GETs `item.uri`, following at most MAX_REDIRECTS redirects by hand: each hop's host is resolved
    once, every address checked (:mod:`depin.addresses`), and the connection made to the checked
    address only (the Host header and the TLS name stay the URL's). The download ends by
    ``TOTAL_TIMEOUT_FACTOR * timeout`` from now or `job_deadline` (a ``time.monotonic()`` instant:
    what the job's submit window leaves for its inputs), whichever comes first."""
    url = _parse_http_url(item, item.uri)
    deadline = time.monotonic() + TOTAL_TIMEOUT_FACTOR * timeout
    if job_deadline is not None and job_deadline < deadline:
        deadline = job_deadline
    for hop in range(MAX_REDIRECTS + 1):
        address = _checked_address(item, url, allow, deadline, redirected=hop > 0)
        left = deadline - time.monotonic()
        if left <= 0:
            raise _too_slow(item)
        location = _get_pinned(item, url, address, sink, min(timeout, left), deadline)
        if location is None:
            return
        url = _parse_http_url(item, location, base=url)
    raise InputUnavailable(f"input {item.path!r}: more than {MAX_REDIRECTS} redirects at {_short(item.uri)}", path=item.path, uri=item.uri)


def _parse_http_url(item: InputSpec, text: str, base: httpx.URL | None = None) -> httpx.URL:
    """`text` (a redirect's Location when `base` is given) as an absolute http(s) URL; anything else
    is refused without saying what a redirect pointed at."""
    what = "a redirect" if base is not None else _short(item.uri)
    try:
        url = parse_url(text, base)
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        log.debug("input URL refused", extra={"path": item.path, "uri": item.uri, "url": text[:300], "error": str(exc)[:300]})
        raise InputUnavailable(f"input {item.path!r}: {what}: not a valid http(s) URL", path=item.path, uri=item.uri) from None
    if url.scheme not in ("http", "https") or not url.raw_host:
        log.debug("input URL refused", extra={"path": item.path, "uri": item.uri, "url": text[:300]})
        raise InputUnavailable(f"input {item.path!r}: {what} leads to a URL that is not http(s) with a host", path=item.path, uri=item.uri)
    return url


def _checked_address(item: InputSpec, url: httpx.URL, allow: Sequence[IPNetwork], deadline: float, *, redirected: bool) -> IPAddress:
    """The one checked address of `url`'s host; the lookup ends by `deadline` (:func:`depin.fetch.by_deadline`)."""
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    where = f"a redirect from {_short(item.uri)}" if redirected else _short(item.uri)
    try:
        return by_deadline(functools.partial(resolve_checked, host, port, allow), deadline, f"resolving {host}")
    except LookupTimedOut:
        log.debug("input host lookup past the deadline", extra={"path": item.path, "uri": item.uri, "host": host})
        raise _too_slow(item) from None
    except AddressRefused as exc:
        log.debug("input address refused", extra={"path": item.path, "uri": item.uri, "host": host, "address": str(exc.address), "kind": exc.kind})
        raise InputUnavailable(
            f"input {item.path!r}: {where} leads to a non-public address, which this executor does not fetch from "
            "(only public addresses and its policy's input_allow_networks)",
            path=item.path,
            uri=item.uri,
            retryable=False,
        ) from None
    except HostUnresolvable as exc:
        log.debug("input host unresolvable", extra={"path": item.path, "uri": item.uri, "host": host, "error": str(exc)[:300]})
        raise InputUnavailable(f"input {item.path!r}: the host of {where} cannot be resolved", path=item.path, uri=item.uri, retryable=True) from None


def _get_pinned(item: InputSpec, url: httpx.URL, address: IPAddress, sink: _Sink, timeout: float, deadline: float) -> str | None:
    """One GET of `url` over a connection to `address`: streams a 200 answer into `sink` (None), or
    returns a redirect's Location. No proxy from the environment, no redirect followed by httpx."""
    pinned = url.copy_with(host=str(address))
    headers = {"Host": url.netloc.decode("ascii"), **IDENTITY}
    watchdog = Watchdog(deadline)  # the head too ends at the deadline: see its doc
    extensions = {"sni_hostname": url.raw_host.decode("ascii"), **watchdog.extensions}  # TLS SNI and certificate check on the name
    try:
        with (
            watchdog,
            httpx.Client(
                timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False, event_hooks={"response": [stop_at_redirect]}
            ) as client,
            client.stream("GET", pinned, headers=headers, extensions=extensions) as response,
        ):
            _check_answer(item, response, sink)
            for chunk in response.iter_raw():  # as the bytes arrive (the deadline is checked per read); never decoded
                sink.write(chunk)
                if time.monotonic() > deadline:
                    raise _too_slow(item)
            if watchdog.fired:  # cut short at the deadline: a body without Content-Length looks whole
                raise _too_slow(item)
    except Redirected as redirect:
        return redirect.location
    except httpx.HTTPError as exc:
        if watchdog.fired:
            raise _too_slow(item) from None
        log.debug("input fetch failed", extra={"path": item.path, "uri": item.uri, "error": f"{type(exc).__name__}: {exc}"[:300]})
        raise InputUnavailable(f"input {item.path!r}: {_short(item.uri)} could not be fetched (network error)", path=item.path, uri=item.uri, retryable=True) from None
    except UNREADABLE_ANSWER_ERRORS as exc:  # what a server's answer may still make httpx raise: its fault, never a crash of the run
        if watchdog.fired:
            raise _too_slow(item) from None
        log.debug("input answer unreadable", extra={"path": item.path, "uri": item.uri, "error": f"{type(exc).__name__}: {exc}"[:300]})
        raise InputUnavailable(f"input {item.path!r}: the answer of {_short(item.uri)} could not be read", path=item.path, uri=item.uri) from None
    return None


def _too_slow(item: InputSpec) -> InputUnavailable:
    return InputUnavailable(
        f"input {item.path!r}: {_short(item.uri)} was not fetched in the time this job leaves for its inputs",
        path=item.path,
        uri=item.uri,
        retryable=True,
    )


def _check_answer(item: InputSpec, response: httpx.Response, sink: _Sink) -> None:
    """Refuses a non-200 answer, one whose body is encoded (compressed: it is never decompressed, the
    module doc) or one that declares more bytes than the budget. The reason says neither the status,
    the encoding nor the size (what a server answered stays on this machine)."""
    if response.status_code != 200:
        log.debug("input answered an HTTP error", extra={"path": item.path, "uri": item.uri, "status": response.status_code})
        raise InputUnavailable(
            f"input {item.path!r}: GET {_short(item.uri)} did not answer 200 OK",
            path=item.path,
            uri=item.uri,
            retryable=response.status_code >= 500 or response.status_code in (408, 429),
        )
    encoding = response.headers.get("content-encoding", "")
    if encoding.strip().lower() not in ("", "identity"):
        log.debug("input answered a content encoding", extra={"path": item.path, "uri": item.uri, "encoding": encoding[:300]})
        raise InputUnavailable(
            f"input {item.path!r}: {_short(item.uri)} was served with a content encoding (compressed), "
            "which this executor does not accept",
            path=item.path,
            uri=item.uri,
            retryable=False,
        )
    declared = response.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > sink.budget:
        log.debug("input larger than the cap", extra={"path": item.path, "uri": item.uri, "declared": declared})
        raise InputUnavailable(
            f"input {item.path!r} ({_short(item.uri)}) exceeds the executor's input cap ({sink.budget} bytes left for this job)",
            path=item.path,
            uri=item.uri,
            retryable=False,
        )


def _fetch_data(item: InputSpec, sink: _Sink) -> None:
    meta, sep, payload = item.uri[len("data:") :].partition(",")
    if not sep:
        raise InputUnavailable(f"input {item.path!r}: malformed data: URI (no ',')", path=item.path, uri=item.uri)
    try:
        data = base64.b64decode(payload, validate=True) if meta.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
    except ValueError as exc:
        raise InputUnavailable(f"input {item.path!r}: malformed base64 in data: URI", path=item.path, uri=item.uri) from exc
    sink.write(data)


def _fetch_file(item: InputSpec, sink: _Sink, roots: list[Path]) -> None:
    """A ``file://`` input below one of `roots` (a devnet's: none is set by default). The URI is the
    requester's text: every way it can fail to name a readable regular file is InputUnavailable,
    never another exception (a ``ValueError`` from a NUL or an unbalanced '[' ended the provider's
    run as a give-up, which left the claimed job to time out and slash its collateral)."""

    def unavailable(why: str) -> InputUnavailable:
        return InputUnavailable(f"input {item.path!r}: {_short(item.uri)} {why}", path=item.path, uri=item.uri)

    if not roots:  # the default: refused before the text is parsed at all
        raise unavailable(f"is outside the allowed file roots (none is set: {FILE_ROOTS_ENV} on a devnet)")
    try:
        parsed = urllib.parse.urlsplit(item.uri)
    except ValueError:
        raise unavailable("is not a file URI") from None
    if parsed.netloc not in ("", "localhost"):
        raise InputUnavailable(f"input {item.path!r}: file:// URIs must name a local path", path=item.path, uri=item.uri)
    text = urllib.parse.unquote(parsed.path)
    try:
        if "\x00" in text:
            raise ValueError("a NUL in the path")
        path = Path(text).resolve()
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a symbolic link loop (Python 3.11)
        raise unavailable("is not a path a readable file can have") from None
    if not any(path == root or root in path.parents for root in roots):
        log.debug("file input outside the roots", extra={"path": item.path, "uri": item.uri, "roots": os.pathsep.join(map(str, roots))})
        raise unavailable("is outside the allowed file roots")
    try:
        fh = os.fdopen(open_regular_file(path), "rb")  # a FIFO or a device below a root would block or never end
    except OSError as exc:
        log.debug("file input unreadable", extra={"path": item.path, "uri": item.uri, "error": str(exc)[:300]})
        raise unavailable("cannot be read (not there, or not a regular file)") from None
    with fh:
        while True:
            try:
                chunk = fh.read(CHUNK)
            except OSError as exc:
                log.debug("file input unreadable", extra={"path": item.path, "uri": item.uri, "error": str(exc)[:300]})
                raise unavailable("cannot be read") from None
            if not chunk:
                return
            sink.write(chunk)  # the provider's disk: its errors are its own (not the input's)


def fetch_input(
    item: InputSpec,
    inputs_dir: Path,
    *,
    budget: int = MAX_INPUT_BYTES,
    timeout: float = TIMEOUT,
    file_roots: Sequence[Path | str] | None = None,
    allow_networks: Sequence[str | IPNetwork] = (),
    staging_dir: Path | None = None,
    deadline: float | None = None,
) -> FetchedInput:
    """Fetches one input to ``<inputs_dir>/<item.path>`` and checks its sha256 (see the module doc
    for the errors). The bytes are written to a file in `staging_dir` (default: a fresh folder in
    `inputs_dir` whose name starts with ``.``, which no input name can) and moved into place only
    when the hash matches; a partial or mismatching download is removed. `allow_networks` are the
    operator's extra networks an http(s) input may come from (:mod:`depin.addresses`). `deadline`
    (a ``time.monotonic()`` instant) ends an http(s) download early: InputUnavailable, retryable."""
    if staging_dir is None:
        with _staging(Path(inputs_dir)) as staging:
            return fetch_input(
                item, inputs_dir, budget=budget, timeout=timeout, file_roots=file_roots, allow_networks=allow_networks, staging_dir=staging,
                deadline=deadline,
            )
    dest = Path(inputs_dir) / item.path
    fd, name = tempfile.mkstemp(dir=staging_dir, prefix="download-")
    partial = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            sink = _Sink(fh, budget, item)
            if item.uri.startswith(("http://", "https://")):
                _fetch_http(item, sink, timeout, parse_networks(allow_networks), deadline)
            elif item.uri.startswith("data:"):
                _fetch_data(item, sink)
            elif item.uri.startswith("file://"):
                _fetch_file(item, sink, _file_roots(file_roots))
            else:
                raise InputUnavailable(f"input {item.path!r}: unsupported URI scheme in {_short(item.uri)}", path=item.path, uri=item.uri)
        actual = sink.hash.hexdigest()
        if actual != item.sha256:
            log.debug("input sha256 mismatch", extra={"path": item.path, "uri": item.uri, "expected": item.sha256, "actual": actual})
            raise InputHashMismatch(
                f"input {item.path!r} from {_short(item.uri)}: sha256 mismatch (the spec says {item.sha256})",
                path=item.path,
                uri=item.uri,
                expected=item.sha256,
                actual=actual,
            )
        os.chmod(partial, 0o644)
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return FetchedInput(dest, actual, sink.size)


@contextlib.contextmanager
def _staging(inputs_dir: Path) -> Iterator[Path]:
    """A download folder inside `inputs_dir` (same file system: the final rename is atomic), named
    ``.fetch-*``: input names start with a letter or digit, so none can collide with it or with a
    download in it. Removed on exit, before any container sees the folder."""
    path = Path(tempfile.mkdtemp(prefix=".fetch-", dir=inputs_dir))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fetch_inputs(
    spec: JobSpec,
    inputs_dir: Path,
    *,
    max_bytes: int = MAX_INPUT_BYTES,
    timeout: float = TIMEOUT,
    file_roots: Sequence[Path | str] | None = None,
    allow_networks: Sequence[str | IPNetwork] = (),
    deadline: float | None = None,
    cache_dir: Path | None = None,
) -> list[FetchedInput]:
    """Fetches and checks every input of `spec` into `inputs_dir` (created, mode 0755), in spec
    order, stopping at the first error; `max_bytes` caps the total; `allow_networks` as for
    :func:`fetch_input` (the policy's ``input_allow_networks``); `deadline` (a ``time.monotonic()``
    instant) bounds all the http(s) downloads together, and so does ``JOB_INPUTS_TIMEOUT`` from
    now: past either the next one, or the one under way, is InputUnavailable (retryable), so a
    job's inputs never eat the time its run and submission need. `cache_dir`: see the module doc."""
    inputs_dir = Path(inputs_dir)
    inputs_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(inputs_dir, 0o755)
    allow = parse_networks(allow_networks)
    cap = time.monotonic() + JOB_INPUTS_TIMEOUT
    deadline = cap if deadline is None else min(deadline, cap)
    fetched: list[FetchedInput] = []
    used = 0
    with _staging(inputs_dir) as staging:
        for item in spec.inputs:
            cache = None if cache_dir is None or item.uri.startswith("data:") else Path(cache_dir)
            got = None if cache is None else _from_cache(item, inputs_dir, cache, max_bytes - used, staging)
            if got is None:
                got = fetch_input(
                    item, inputs_dir, budget=max_bytes - used, timeout=timeout, file_roots=file_roots, allow_networks=allow, staging_dir=staging,
                    deadline=deadline,
                )
                if cache is not None:
                    _keep(got, cache)
            used += got.size
            fetched.append(got)
    # Every input and /in itself dated the epoch: their times were the download's or the cache
    # copy's, and a job that archives /in (tar, zip, rsync, make) got another digest on every run
    # (found by review). Change times cannot be set; the format never records them.
    for got in fetched:
        os.utime(got.path, (0, 0), follow_symlinks=False)
    os.utime(inputs_dir, (0, 0))
    return fetched


def _from_cache(item: InputSpec, inputs_dir: Path, cache_dir: Path, budget: int, staging: Path) -> FetchedInput | None:
    """The input from ``<cache_dir>/<sha256>`` (checked as any file input: hash, byte budget), or
    None when the cache has no good copy (a bad one is removed)."""
    cached = cache_dir / item.sha256
    if not cached.is_file():
        return None
    try:
        got = fetch_input(item.model_copy(update={"uri": cached.resolve().as_uri()}), inputs_dir, budget=budget, file_roots=[cache_dir],
                          staging_dir=staging)
    except InputHashMismatch:
        log.warning("cached input damaged; fetched again", extra={"path": item.path, "sha256": item.sha256})
        cached.unlink(missing_ok=True)
        return None
    except InputUnavailable:
        return None  # unreadable, or over this job's byte budget: the URI decides
    log.debug("input taken from the cache", extra={"path": item.path, "sha256": item.sha256})
    return got


def _keep(got: FetchedInput, cache_dir: Path) -> None:
    """Copies a checked input to ``<cache_dir>/<sha256>`` (atomically); a failure costs only the cache."""
    target = cache_dir / got.sha256
    if target.is_file():
        return
    tmp: str | None = None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".keep-")
        with os.fdopen(fd, "wb") as out, open(got.path, "rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        log.warning("input not cached", extra={"sha256": got.sha256, "error": str(exc)[:300]})
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
