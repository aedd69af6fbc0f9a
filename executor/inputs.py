"""Fetching a job's inputs into its inputs folder and checking them before the container starts.

Each input ``{path, uri, sha256}`` is written to ``<inputs_dir>/<path>`` (mode 0644; the folder is
bind-mounted read-only at ``/in``) while its sha256 is computed; nothing reaches the container
unless every hash matches. Supported URIs:

- ``http://`` / ``https://``: streamed with httpx, a connect/read timeout (``timeout``; the whole
  download gets ``TOTAL_TIMEOUT_FACTOR`` times that), at most
  ``MAX_REDIRECTS`` redirects, and a byte cap (``max_bytes``, over all inputs of the job): a server
  that sends more is cut off at the cap;
- ``data:`` (RFC 2397; ``;base64`` or percent-encoded), for small inline inputs;
- ``file://`` (devnet): only below an allowed root (the `file_roots` argument, else the
  ``DEPIN_INPUT_FILE_ROOTS`` environment variable, ``os.pathsep``-separated). With no root allowed
  every ``file://`` URI is refused: a spec must never make a provider copy its own files into a job.

Two outcomes, two errors (both :class:`~depin.errors.ExecutionError`):

- :class:`InputHashMismatch`: the bytes were fetched and their sha256 differs from the spec's. This
  is a *provable* failure: the provider may submit ``FailureCode.INPUT_HASH_MISMATCH`` (anyone can
  fetch the same URI and recompute). ``retryable`` is False.
- :class:`InputUnavailable`: the input could not be fetched (unreachable host, HTTP error, timeout,
  refused scheme or path, over the size cap). Nothing is proven; ``retryable`` says whether trying
  again may help (network trouble: True; refused by policy or too large: False). The caller decides:
  retry with backoff while the submit deadline allows, and only then fall back to submitting
  ``INPUT_HASH_MISMATCH`` (which :func:`executor.execute.execute` reports with ``retryable=True``
  so the caller can tell the two cases apart).
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from depin.errors import ExecutionError
from depin.market import FailureCode
from depin.spec import InputSpec, JobSpec

CHUNK = 1 << 16
MAX_INPUT_BYTES = 1 << 30  # over all inputs of one job
TIMEOUT = 30.0  # seconds per connect/read; a whole download gets TOTAL_TIMEOUT_FACTOR times that
TOTAL_TIMEOUT_FACTOR = 10
MAX_REDIRECTS = 3
FILE_ROOTS_ENV = "DEPIN_INPUT_FILE_ROOTS"


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


def _fetch_http(item: InputSpec, sink: _Sink, timeout: float) -> None:
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True, max_redirects=MAX_REDIRECTS) as client:
            with client.stream("GET", item.uri) as response:
                if response.status_code != 200:
                    raise InputUnavailable(
                        f"input {item.path!r}: GET {_short(item.uri)} answered HTTP {response.status_code}",
                        path=item.path,
                        uri=item.uri,
                        retryable=response.status_code >= 500 or response.status_code in (408, 429),
                    )
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > sink.budget:
                    raise InputUnavailable(
                        f"input {item.path!r} is {declared} bytes; the executor's input cap leaves {sink.budget}",
                        path=item.path,
                        uri=item.uri,
                        retryable=False,
                    )
                deadline = time.monotonic() + TOTAL_TIMEOUT_FACTOR * timeout
                for chunk in response.iter_bytes(CHUNK):
                    sink.write(chunk)
                    if time.monotonic() > deadline:
                        raise InputUnavailable(
                            f"input {item.path!r}: {_short(item.uri)} took over {TOTAL_TIMEOUT_FACTOR * timeout:.0f} s",
                            path=item.path,
                            uri=item.uri,
                            retryable=True,
                        )
    except httpx.TooManyRedirects as exc:
        raise InputUnavailable(f"input {item.path!r}: too many redirects at {_short(item.uri)}", path=item.path, uri=item.uri, retryable=False) from exc
    except httpx.HTTPError as exc:
        raise InputUnavailable(
            f"input {item.path!r}: cannot fetch {_short(item.uri)}: {type(exc).__name__}: {exc}", path=item.path, uri=item.uri, retryable=True
        ) from exc


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
    parsed = urllib.parse.urlparse(item.uri)
    if parsed.netloc not in ("", "localhost"):
        raise InputUnavailable(f"input {item.path!r}: file:// URIs must name a local path", path=item.path, uri=item.uri)
    path = Path(urllib.parse.unquote(parsed.path)).resolve()
    if not any(path == root or root in path.parents for root in roots):
        raise InputUnavailable(
            f"input {item.path!r}: {item.uri} is outside the allowed file roots "
            f"({', '.join(map(str, roots)) or f'none: set {FILE_ROOTS_ENV} on a devnet'})",
            path=item.path,
            uri=item.uri,
        )
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                sink.write(chunk)
    except OSError as exc:
        raise InputUnavailable(f"input {item.path!r}: cannot read {path}: {exc.strerror}", path=item.path, uri=item.uri) from exc


def fetch_input(
    item: InputSpec,
    inputs_dir: Path,
    *,
    budget: int = MAX_INPUT_BYTES,
    timeout: float = TIMEOUT,
    file_roots: Sequence[Path | str] | None = None,
) -> FetchedInput:
    """Fetches one input to ``<inputs_dir>/<item.path>`` and checks its sha256 (see the module doc
    for the errors). A partial or mismatching file is removed."""
    dest = Path(inputs_dir) / item.path
    partial = dest.with_name(dest.name + ".partial")
    try:
        with open(partial, "wb") as fh:
            sink = _Sink(fh, budget, item)
            if item.uri.startswith(("http://", "https://")):
                _fetch_http(item, sink, timeout)
            elif item.uri.startswith("data:"):
                _fetch_data(item, sink)
            elif item.uri.startswith("file://"):
                _fetch_file(item, sink, _file_roots(file_roots))
            else:
                raise InputUnavailable(f"input {item.path!r}: unsupported URI scheme in {_short(item.uri)}", path=item.path, uri=item.uri)
        actual = sink.hash.hexdigest()
        if actual != item.sha256:
            raise InputHashMismatch(
                f"input {item.path!r} from {_short(item.uri)}: sha256 is {actual}, the spec says {item.sha256}",
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


def fetch_inputs(
    spec: JobSpec,
    inputs_dir: Path,
    *,
    max_bytes: int = MAX_INPUT_BYTES,
    timeout: float = TIMEOUT,
    file_roots: Sequence[Path | str] | None = None,
) -> list[FetchedInput]:
    """Fetches and checks every input of `spec` into `inputs_dir` (created, mode 0755), in spec
    order, stopping at the first error; `max_bytes` caps the total."""
    inputs_dir = Path(inputs_dir)
    inputs_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(inputs_dir, 0o755)
    fetched: list[FetchedInput] = []
    used = 0
    for item in spec.inputs:
        got = fetch_input(item, inputs_dir, budget=max_bytes - used, timeout=timeout, file_roots=file_roots)
        used += got.size
        fetched.append(got)
    return fetched
