"""HTTP JSON API over the index, for dashboards (FastAPI; OpenAPI document at ``/openapi.json``).

Read-only: every route is a thin call into :class:`indexer.query.IndexerReader`. Amounts are
decimal strings (base units), addresses checksummed, field names camelCase as in Redis.

Errors are JSON ``{"detail": "..."}``: 404 for an unknown job or provider, 422 for a bad parameter
(unknown status, malformed address, negative id, limit or offset out of range, a malformed cursor),
503 when Redis is unreachable (a fixed detail: the error, which names Redis' address, is logged only).

Listings are paged: ``/jobs`` (by ``offset`` or ``cursor``) and ``/providers`` (by ``cursor``) answer
at most ``limit`` records and about :data:`~indexer.query.PAGE_BYTES` (4 MiB) of them: a page whose
records reach that budget ends early (its hashes are read a few at a time, so the server reads and
holds about one page, whatever ``limit``). ``/jobs`` with two or more filters also ends a page once
it has scanned :data:`~indexer.query.SCAN_ENTRIES` entries of the smallest filter's index. Each
page's ``nextCursor`` (null on the last page) is the ``cursor`` of the next one; keep following it
rather than counting on ``limit`` records per page.

Slow clients (bounded memory): at most ``max_requests`` requests (:data:`MAX_REQUESTS`, 8, by
default; ``DEPIN_API_MAX_REQUESTS``, ``depin indexer api --max-requests``) are in flight at a time,
from the request until all but the last :data:`BODY_CHUNK` bytes of its answer are handed to the
connection (:class:`InFlightLimit`: the body is written a chunk at a time, each once the connection
has drained the previous one); one more is answered 503 at once, with ``Retry-After``. A client that
asks for a 4 MiB page and reads it slowly, or never, holds a slot, and the page, until it has read
it: the pages held stay at most ``max_requests``, whatever the number of clients. The explorer's
live stream (its own limits: ``max_streams`` streams, :data:`~indexer.web.app.STREAM_RENDERS`
renders at a time), ``/healthz`` and the static files are not counted.
The server keeps about :data:`MAX_CONNECTIONS` connections open besides the live streams (uvicorn's
``limit_concurrency``; a request on one more is answered 503), each holding at most about two
chunks once its request is out of flight.

The same app serves the explorer's HTML pages (``/``, ``/job/{id}``, ``/provider/{address}``, ...:
:mod:`indexer.web.app`) and ``/metrics`` (Prometheus text: :mod:`indexer.metrics`).

Run it with ``depin indexer api --host 127.0.0.1 --port 8000`` or ``depin explorer`` (see :func:`serve`).
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import redis
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel

from depin import __version__
from depin.chain import RpcClient, head_reader
from depin.errors import IndexerError
from depin.keys import LISTABLE_STATUSES
from indexer.metrics import add_index_metrics
from indexer.query import (
    MAX_LIMIT,
    MAX_OFFSET,
    PAGE_BYTES,
    SCAN_ENTRIES,
    IndexerReader,
    IndexerStatus,
    JobPage,
    JobRecord,
    MarketTotals,
    ProviderPage,
    ProviderRecord,
    QueryError,
    parse_address,
)
from indexer.web.app import PAGE_POLICY, REDIS_UNREACHABLE, STREAM_MAX, add_explorer
from indexer.web.views import BlockClock

if TYPE_CHECKING:
    from indexer.config import IndexerConfig

log = logging.getLogger(__name__)

# Requests in flight at a time (InFlightLimit; ApiConfig.api_max_requests): one more is 503. Each
# holds up to a page (4 MiB of JSON) and the memory its building took: about 13 MB per request for a
# /jobs page of 1,000 large jobs, so about 100 MB for 8 slow clients, however many there are.
MAX_REQUESTS = 8
BODY_CHUNK = 64 * 1024  # bytes of an answer's body handed to the connection at a time (InFlightLimit)
MAX_CONNECTIONS = 1024  # open connections (uvicorn's limit_concurrency): one more is 503
BUSY_RETRY_AFTER = 1  # seconds, in the 503 answer to one request in flight too many
# The live stream has its own limits: max_streams, and STREAM_RENDERS renders at a time.
UNCOUNTED_PATHS = frozenset({"/explorer/stream", "/healthz"})
UNCOUNTED_PREFIX = "/static/"  # the explorer's stylesheet: small files, streamed by chunks

# Members made from depin.keys' list, so mypy sees an Enum without knowing its members ([misc]).
JobStatusName = Enum("JobStatusName", {s.lower(): s.lower() for s in LISTABLE_STATUSES}, type=str)  # type: ignore[misc]
JobStatusName.__doc__ = "A job status, lower case."

Address = Annotated[str, AfterValidator(parse_address)]


class ErrorResponse(BaseModel):
    detail: str


class Health(BaseModel):
    ok: bool
    redis: bool


@dataclass(frozen=True)
class ApiConfig:
    """What the API needs; an ``indexer.config.IndexerConfig`` has these attributes too."""

    redis_url: str
    deployment_file: Path
    rpc_url: str | None = None
    namespace: str = "depin"
    explorer_max_streams: int = STREAM_MAX
    api_max_requests: int = MAX_REQUESTS


class InFlightLimit:
    """ASGI middleware: at most `limit` HTTP requests in flight (but for :data:`UNCOUNTED_PATHS` and
    the static files);
    one more is answered 503 with ``Retry-After`` before the app sees it. A request stays in flight
    until its answer is sent: its body goes to the server :data:`BODY_CHUNK` bytes at a time, and
    uvicorn awaits the connection's drain (its flow control: the transport's buffer above 64 KiB)
    before writing the next one, so a client that does not read keeps its slot, and only about
    two chunks stay buffered once the request is done. The memory of pages built and not yet read
    is thus bounded by `limit` pages, whatever the number of clients."""

    def __init__(self, app: Any, limit: int = MAX_REQUESTS) -> None:
        if limit < 1:
            raise ValueError("the API needs max_requests >= 1")
        self.app = app
        self.limit = limit
        self.active = 0  # requests in flight (the event loop's thread only: no lock)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in UNCOUNTED_PATHS or path.startswith(UNCOUNTED_PREFIX):
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            await _busy(send, self.limit)
            return
        self.active += 1
        try:
            await self.app(scope, receive, _chunked(send))
        finally:
            self.active -= 1


class SecurityHeaders:
    """ASGI middleware: every answer carries ``X-Content-Type-Options: nosniff``; every HTML answer
    a Content-Security-Policy: the explorer's pages :data:`~indexer.web.app.PAGE_POLICY` (scripts,
    styles and connections from this origin only, no inline script, no framing), a second line
    behind their escaping of the chain's strings; the OpenAPI pages (``docs_paths``: Swagger UI and
    ReDoc load their scripts from a CDN) only ``frame-ancestors 'none'``."""

    def __init__(self, app: Any, docs_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = (b"frame-ancestors 'none'" if scope.get("path", "") in self.docs_paths else PAGE_POLICY.encode())

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _SECURITY_HEADER_NAMES]
                headers.append((b"x-content-type-options", b"nosniff"))
                kind = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if kind.startswith(b"text/html"):
                    headers.append((b"content-security-policy", policy))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_SECURITY_HEADER_NAMES = (b"x-content-type-options", b"content-security-policy")


def _chunked(send: Any) -> Any:
    """`send` with every body message larger than BODY_CHUNK split into chunks (``more_body``)."""

    async def send_chunks(message: Any) -> None:
        body = message.get("body", b"") if message["type"] == "http.response.body" else b""
        if len(body) <= BODY_CHUNK:
            await send(message)
            return
        more = message.get("more_body", False)
        view = memoryview(body)
        for at in range(0, len(body), BODY_CHUNK):
            last = at + BODY_CHUNK >= len(body)
            await send({"type": "http.response.body", "body": bytes(view[at : at + BODY_CHUNK]), "more_body": more or not last})

    return send_chunks


async def _busy(send: Any, limit: int) -> None:
    body = json.dumps({"detail": f"the API serves at most {limit} requests at a time; retry shortly"}).encode()
    await send({
        "type": "http.response.start",
        "status": 503,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(BUSY_RETRY_AFTER).encode()),
            (b"x-content-type-options", b"nosniff"),
        ],
    })
    await send({"type": "http.response.body", "body": body})


# FastAPI's `responses`: status code -> OpenAPI response (its type, as FastAPI declares the parameter).
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "No such record in the index"}}
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: {"model": ErrorResponse, "description": "Redis is unreachable"}}


def create_app(
    reader: IndexerReader,
    chain_head: Callable[[], int | None] | None = None,
    clock: BlockClock | None = None,
    max_streams: int = STREAM_MAX,
    page_bytes: int = PAGE_BYTES,
    scan_entries: int = SCAN_ENTRIES,
    max_requests: int = MAX_REQUESTS,
) -> FastAPI:
    """The API app over `reader`, with the explorer's pages and ``/metrics``. `chain_head` returns
    the node's head (None when unreachable); without it ``/status`` measures lag against the last
    head the indexer saw. `clock` gives block timestamps to the explorer (without it, pages show when
    the indexer applied each event). `max_streams`: live pages (``/explorer/stream``) served at a
    time; one more is answered 503. `page_bytes`: the byte budget of one page of ``/jobs`` and
    ``/providers`` (see the module doc). `scan_entries`: the index entries one page of ``/jobs``
    with two or more filters scans at most. `max_requests`: requests in flight at a time
    (:class:`InFlightLimit`); one more is answered 503."""
    app = FastAPI(
        title="depin-compute indexer API",
        version=__version__,
        description=(
            "Jobs, providers and market totals of one depin-compute deployment, as indexed from "
            f"chain events into Redis (prefix `{reader.keys.prefix}`). Amounts are decimal strings "
            "in base units (18 decimals)."
        ),
        responses=_UNAVAILABLE,
    )

    @app.exception_handler(redis.ConnectionError)
    @app.exception_handler(redis.TimeoutError)
    async def redis_unreachable(request: Request, exc: redis.RedisError) -> JSONResponse:
        """503 with a fixed detail: the error names Redis' address or socket path, so it is logged
        here and not sent (found by review, stop 56)."""
        log.warning("redis unreachable: %s", exc)
        return JSONResponse(status_code=503, content={"detail": REDIS_UNREACHABLE})

    @app.exception_handler(QueryError)
    async def bad_query(request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.get("/jobs", response_model=JobPage, tags=["jobs"], summary="List jobs, newest first")
    def list_jobs(
        status: JobStatusName | None = None,
        requester: Address | None = None,
        provider: Address | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        newest_first: bool = True,
        cursor: Annotated[str | None, Query(description="A page's nextCursor: the page after it (offset stays 0)")] = None,
    ) -> JobPage:
        """Jobs matching every given filter, ordered by id, one page (at most `limit` jobs and about
        4 MiB of them); `total` counts all pages, `nextCursor` continues. With two or more filters a
        page scans at most 10,000 entries of the smallest filter's index: it can end short (even
        empty) with a `nextCursor`, `total` is null when that index is larger, and an `offset` it
        cannot skip within them is 422 (page with `cursor`)."""
        return reader.job_page(
            status.value if status else None, requester, provider, limit, offset, newest_first,
            cursor=cursor, max_bytes=page_bytes, max_scan=scan_entries,
        )

    @app.get("/jobs/{job_id}", response_model=JobRecord, responses=_NOT_FOUND, tags=["jobs"], summary="One job")
    def get_job(job_id: Annotated[int, PathParam(ge=0)]) -> JobRecord:
        """Every indexed field of the job, its decoded spec and its history of transitions."""
        job = reader.get_job(job_id)
        if job is None:
            raise HTTPException(404, f"job {job_id} not found in the index")
        return job

    @app.get("/providers", response_model=ProviderPage, tags=["providers"], summary="List providers")
    def list_providers(
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
        cursor: Annotated[str | None, Query(description="A page's nextCursor: the page after it")] = None,
    ) -> ProviderPage:
        """Registered providers by provider id, one page (at most `limit` and about 4 MiB of them);
        `total` counts all pages, `nextCursor` continues."""
        return reader.provider_page(limit, cursor, max_bytes=page_bytes)

    @app.get(
        "/providers/{address}",
        response_model=ProviderRecord,
        responses=_NOT_FOUND,
        tags=["providers"],
        summary="One provider",
    )
    def get_provider(address: Address) -> ProviderRecord:
        """Stake, locked collateral, unbonding, counters and endpoint of one provider."""
        found = reader.get_provider(address)
        if found is None:
            raise HTTPException(404, f"provider {address} not found in the index")
        return found

    @app.get("/totals", response_model=MarketTotals, tags=["market"], summary="Market totals")
    def totals() -> MarketTotals:
        """Job counts (total and per status) and escrowed, paid, emitted, slashed and burned amounts."""
        return reader.totals()

    @app.get("/status", response_model=IndexerStatus, tags=["indexer"], summary="Indexer progress")
    def status() -> IndexerStatus:
        """Chain head, cursor, lag in blocks, events/s and seconds since the indexer's last write."""
        return reader.status(chain_head() if chain_head else None)

    @app.get("/healthz", response_model=Health, responses=_UNAVAILABLE, tags=["indexer"], summary="Liveness")
    def healthz() -> Health:
        """200 when Redis answers, 503 when it does not."""
        return Health(ok=reader.ping(), redis=True)

    add_index_metrics(app, reader, chain_head)
    add_explorer(app, reader, clock, max_streams)
    docs = frozenset(p for p in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if p)
    app.add_middleware(SecurityHeaders, docs_paths=docs)
    app.add_middleware(InFlightLimit, limit=max_requests)  # outermost: a refusal costs no app work
    return app


def _check_bind(host: str, port: int) -> None:
    """Raises :class:`IndexerError` (one line at the CLI) when nothing could listen on `host`:`port`
    (taken, or no such local address), probed as uvicorn binds (SO_REUSEADDR). A probe: a port
    taken between it and uvicorn's bind still fails there."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        raise IndexerError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose a free --port (or another --host)"
        ) from None


def serve(config: ApiConfig | IndexerConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serves the API for `config`'s deployment with uvicorn until interrupted (SIGINT/SIGTERM)."""
    import uvicorn  # lazy: start-up (only `depin indexer api` runs it)

    reader = IndexerReader.for_deployment(config.redis_url, config.deployment_file, config.namespace)
    reader.ping()  # fail now, with one clear error, when Redis is unreachable
    _check_bind(host, port)  # and when the port is taken (uvicorn: log lines, exit status 3)
    head = head_reader(config.rpc_url) if config.rpc_url else None
    clock = BlockClock(RpcClient.from_url(config.rpc_url, timeout=5.0).get_blocks) if config.rpc_url else None
    if threading.current_thread() is threading.main_thread():
        # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to the handler it
        # found; a no-op one lets the process exit 0 after that clean shutdown.
        signal.signal(signal.SIGTERM, lambda *_: None)
    log.info("serving indexer API and explorer", extra={"prefix": reader.keys.prefix, "host": host, "port": port})
    app = create_app(reader, head, clock, config.explorer_max_streams, max_requests=config.api_max_requests)
    uvicorn.run(app, host=host, port=port, log_config=None, limit_concurrency=MAX_CONNECTIONS + config.explorer_max_streams)
