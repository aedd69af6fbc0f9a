"""The result store: content-addressed result archives, served over HTTP, and their download.

An archive (format ``depin-result-v1``, see :mod:`depin.outputs`) is stored under its digest, the
sha256 of its bytes (the on-chain ``resultHash``): ``<root>/<hex[:2]>/<hex>.tar``. Storing is
atomic (a temporary file in the same folder, fsync, rename), so a reader never sees half an
archive and storing the same archive twice is harmless. The public URI of an archive is
``<base_url>/results/0x<hex>``; :func:`create_app` serves ``GET``/``HEAD`` on that path
(``application/x-tar``, 404 for an unknown digest, 400 for a malformed one) and :func:`serve` runs
it with uvicorn. Anyone can check a download against the chain with one hash: :func:`download_result`
streams the archive, caps its size and refuses bytes whose sha256 is not the expected digest.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.parse
from pathlib import Path

import httpx
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, Response

from depin.errors import ExecutionError

DIGEST_RE = re.compile(r"^(?:0x)?([0-9a-fA-F]{64})$")
CHUNK = 1 << 20
MEDIA_TYPE = "application/x-tar"
DOWNLOAD_MAX_BYTES = 4096 * (1 << 20) + (2 << 20)  # the largest output a spec allows, plus tar headers
DOWNLOAD_TIMEOUT = 30.0


class ResultNotFound(ExecutionError, KeyError):
    """The store holds no archive with that digest."""


class ResultMismatch(ExecutionError):
    """A downloaded archive does not hash to the expected digest (or is over the size cap)."""


class ResultUnavailable(ExecutionError):
    """A result could not be downloaded (unreachable, HTTP error, timeout)."""


def normalize_digest(digest: bytes | str) -> str:
    """The 64 lower-case hex digits of a digest given as 32 bytes or (0x-)hex; ValueError otherwise."""
    if isinstance(digest, (bytes, bytearray)):
        if len(digest) != 32:
            raise ValueError(f"a digest is 32 bytes, not {len(digest)}")
        return bytes(digest).hex()
    match = DIGEST_RE.match(digest.strip())
    if match is None:
        raise ValueError(f"{digest!r} is not a sha256 digest (64 hex digits, optionally 0x-prefixed)")
    return match[1].lower()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class ResultStore:
    """Content-addressed archives under `root`, published at `base_url` (no trailing slash needed)."""

    def __init__(self, root: Path, base_url: str):
        self.root = Path(root)
        self.base_url = base_url.rstrip("/")
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, hex_digest: str) -> Path:
        return self.root / hex_digest[:2] / f"{hex_digest}.tar"

    def uri(self, digest: bytes | str) -> str:
        """``<base_url>/results/0x<hex>``."""
        return f"{self.base_url}/results/0x{normalize_digest(digest)}"

    def put(self, archive: Path, *, move: bool = False) -> str:
        """Stores `archive` under the sha256 of its bytes and returns its URI. With `move` the file
        is moved (when on the same filesystem) instead of copied."""
        archive = Path(archive)
        hex_digest = _sha256_file(archive)
        dest = self._path(hex_digest)
        if dest.exists():
            if move:
                archive.unlink(missing_ok=True)
            return self.uri(hex_digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if move:
            try:
                os.replace(archive, dest)
                return self.uri(hex_digest)
            except OSError:
                pass  # another filesystem: copy below
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".put-", suffix=".partial")
        try:
            with os.fdopen(fd, "wb") as out, open(archive, "rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if move:
            archive.unlink(missing_ok=True)
        return self.uri(hex_digest)

    def has(self, digest: bytes | str) -> bool:
        try:
            return self._path(normalize_digest(digest)).is_file()
        except ValueError:
            return False

    def path(self, digest: bytes | str) -> Path:
        """The stored archive's path; :class:`ResultNotFound` if the store does not hold it."""
        path = self._path(normalize_digest(digest))
        if not path.is_file():
            raise ResultNotFound(f"no result 0x{normalize_digest(digest)} in {self.root}")
        return path


def create_app(store: ResultStore) -> FastAPI:
    """The result server: ``GET``/``HEAD /results/0x<digest>`` and ``GET /healthz``."""
    app = FastAPI(title="depin result store", docs_url=None, redoc_url=None)

    @app.api_route("/results/{name}", methods=["GET", "HEAD"], response_class=FileResponse)
    def get_result(name: str) -> Response:
        if not name.startswith("0x") or DIGEST_RE.match(name) is None:
            raise HTTPException(status_code=400, detail="expected /results/0x<64 hex digits> (the sha256 of the archive)")
        hex_digest = normalize_digest(name)
        try:
            path = store.path(hex_digest)
        except ResultNotFound:
            raise HTTPException(status_code=404, detail=f"no result 0x{hex_digest} here") from None
        return FileResponse(
            path,
            media_type=MEDIA_TYPE,
            filename=f"0x{hex_digest}.tar",
            headers={"ETag": f'"{hex_digest}"', "Cache-Control": "public, max-age=31536000, immutable"},
        )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(store: ResultStore, host: str = "127.0.0.1", port: int = 8700) -> None:
    """Runs the result server in the foreground (uvicorn) until interrupted."""
    import uvicorn  # lazy: start-up (only the result server runs it)

    uvicorn.run(create_app(store), host=host, port=port, log_level="warning", access_log=False)


def download_result(
    uri: str,
    expected_digest: bytes | str,
    dest: Path,
    *,
    max_bytes: int = DOWNLOAD_MAX_BYTES,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path:
    """Downloads the archive at `uri` (http(s) or file://) to `dest` (a file path, or a folder where
    ``0x<digest>.tar`` is written) and returns its path, only if its sha256 is `expected_digest`.

    Streams to a temporary file next to `dest` while hashing; stops past `max_bytes`. Raises
    :class:`ResultMismatch` (wrong bytes or too large: nothing is left at `dest`) or
    :class:`ResultUnavailable` (could not download).
    """
    expected = normalize_digest(expected_digest)
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / f"0x{expected}.tar"
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    h = hashlib.sha256()
    size = 0

    def take(chunk: bytes, fh) -> None:
        nonlocal size
        size += len(chunk)
        if size > max_bytes:
            raise ResultMismatch(f"{uri} sent more than {max_bytes} bytes; refusing it")
        h.update(chunk)
        fh.write(chunk)

    try:
        with open(partial, "wb") as fh:
            if uri.startswith("file://"):
                path = Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path))
                try:
                    with open(path, "rb") as src:
                        while chunk := src.read(CHUNK):
                            take(chunk, fh)
                except OSError as exc:
                    raise ResultUnavailable(f"cannot read {path}: {exc.strerror}") from exc
            elif uri.startswith(("http://", "https://")):
                try:
                    with httpx.stream("GET", uri, timeout=timeout, follow_redirects=True) as response:
                        if response.status_code != 200:
                            raise ResultUnavailable(f"GET {uri} answered HTTP {response.status_code}")
                        for chunk in response.iter_bytes(CHUNK):
                            take(chunk, fh)
                except httpx.HTTPError as exc:
                    raise ResultUnavailable(f"cannot download {uri}: {type(exc).__name__}: {exc}") from exc
            else:
                raise ResultUnavailable(f"unsupported result URI {uri!r} (http, https or file)")
        actual = h.hexdigest()
        if actual != expected:
            raise ResultMismatch(f"{uri} served an archive with sha256 0x{actual}, not the expected 0x{expected}")
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return dest
