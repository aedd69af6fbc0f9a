"""The explorer's pages, added to the indexer's FastAPI app (:func:`add_explorer`).

Pages (HTML, server-rendered with Jinja2; every page has the search box):

- ``/``: overview (jobs by status, posted and finalized per minute, median latencies, token
  totals, open disputes, the newest jobs, a live feed of events);
- ``/job/{id}``: one job (spec, terms, deadlines, timeline, result, audit and jury, payout split);
- ``/provider/{address}``, ``/requester/{address}``, ``/verifier/{address}``, ``/address/{address}``
  (redirects to whichever the address is); ``/tx/{hash}``: the events of a transaction;
- ``/search?q=``: a job id, an address or a transaction hash;
- ``/explorer/stream``: server-sent events that keep the open page current.

Live updates: a page carries the id of the newest stream entry it was rendered from; its
``EventSource`` asks ``/explorer/stream?after=<id>&page=<page>&key=<key>``, which blocks on ``XREAD``
of the index's event stream and, for every batch of new entries, sends one ``update`` message: the
new feed lines and the page's live fragments re-rendered (HTML), which the page swaps in. Reconnects
resume from ``Last-Event-ID``. Malformed input gives a 400 page, an unknown subject a 404 page.

The streams of one app share one asyncio Redis client (:class:`StreamHub`: a pool of at most
``STREAM_CONNECTIONS`` connections, opened at startup and closed at shutdown): one watcher task
blocks on ``XREAD`` for all of them, each stream reads its new entries with a non-blocking ``XREAD``,
and a page's update for a batch is rendered once for every stream at the same point. At most
``max_streams`` streams are served at a time; one more is answered 503 with ``Retry-After``.

A stream's ``key`` is made canonical before it takes a slot (:func:`stream_key`: ``""`` for the
overview, whatever was given; the job id's decimal digits; the checksummed address), and a bad one is
400, so streams of one page share its renders however the key is spelled; the overview's update
is shared by every stream at the same newest entry. At most ``STREAM_RENDERS`` renders run at a time
(worker threads the synchronous routes keep), and a stream whose Redis fails (its shared pool
exhausted, the server gone) ends with a comment, as an idle page would reconnect. Found by review,
stop 56: 100 overview streams with distinct keys each re-rendered the overview for every new entry
(131 s of summed render time for 50 entries; ``/totals`` took 6.6 s), and their pool's exhaustion
ended the streams with an ASGI traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from indexer.query import IndexerReader
from indexer.web import svg
from indexer.web.views import (
    RATE_MINUTES,
    TX_SCAN,
    BadInput,
    BlockClock,
    Explorer,
    NotFound,
    duration,
    is_tx_hash,
    parse_address_text,
    parse_job_id_text,
    tokens,
    utc,
    visible,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STREAM_BLOCK_MS = 1000  # an idle stream sends a comment this often (and notices a closed page)
STREAM_BATCH = 500
STREAM_MAX = 100  # concurrent /explorer/stream connections per app (IndexerConfig.explorer_max_streams)
STREAM_CONNECTIONS = 4  # the streams' shared asyncio Redis pool: the watcher's XREAD and short reads
STREAM_RENDERS = 2  # the streams' renders running at a time (worker threads; the others wait their turn)
STREAM_RETRY_AFTER = 30  # seconds, in the 503 answer to one stream too many
STREAM_CLIENT_NAME = "depin-explorer-stream"
_RENDERS_KEPT = 64  # recent (page, batch) updates shared by the streams at the same point
_MAX_ID_PART = 2**64 - 1
PAGES = ("overview", "job", "provider", "requester")
# What a page and the API say when Redis fails; the error itself (it names Redis' address or socket
# path) goes to the server's log only (found by review, stop 56).
REDIS_UNREACHABLE = "Redis is unreachable; the server's log has the error"
# The Content-Security-Policy of the pages (indexer.api.SecurityHeaders sends it): the stylesheet,
# the live-update script (static/explorer.js: no inline script) and the event stream from this
# origin; no other resource, no plugin, no <base>, forms to this origin, no framing (clickjacking).
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def _short(value: str | None) -> str:
    if not value:
        return "-"
    return f"{value[:6]}…{value[-4:]}" if len(value) > 14 else value


def _shown(value: Any) -> Any:
    """What a template shows for `value`: strings through :func:`visible` (before autoescaping);
    markup the app made (rendered fragments, charts) as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters.update(tokens=tokens, utc=utc, duration=duration, short=_short)
    env.finalize = _shown  # every {{ value }}: chain strings show their controls and bidi overrides as escapes
    env.globals["symbol"] = "DPC"
    return templates


def _async_client(client: redis.Redis, max_connections: int = STREAM_CONNECTIONS) -> aioredis.Redis:
    """An asyncio client on the same server as `client`, over a pool of at most `max_connections`
    (a caller waits for a free one rather than opening more)."""
    kw = client.connection_pool.connection_kwargs
    keep: dict[str, Any] = {k: kw[k] for k in ("host", "port", "db", "username", "password", "path") if kw.get(k) is not None}
    if "path" in keep:
        keep["connection_class"] = aioredis.UnixDomainSocketConnection
    pool = aioredis.BlockingConnectionPool(
        max_connections=max_connections, timeout=10, decode_responses=True, client_name=STREAM_CLIENT_NAME, **keep
    )
    return aioredis.Redis.from_pool(pool)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class StreamHub:
    """The live updates of one app (see the module doc): the shared asyncio client, the watcher task,
    the count of open streams against `max_streams`, the recent rendered updates, and the turns of
    the renders (at most `max_renders` at a time: :meth:`render`)."""

    def __init__(
        self, reader: IndexerReader, max_streams: int = STREAM_MAX, connections: int = STREAM_CONNECTIONS,
        max_renders: int = STREAM_RENDERS,
    ) -> None:
        if max_streams < 1 or connections < 2 or max_renders < 1:
            raise ValueError("a StreamHub needs max_streams >= 1, connections >= 2 (the watcher holds one) and max_renders >= 1")
        self.reader = reader
        self.max_streams = max_streams
        self.connections = connections
        self.max_renders = max_renders
        self.active = 0  # streams open now (the event loop's thread only: no lock needed)
        self.renders = 0  # renders started, ever (:meth:`render`)
        self.rendering = 0  # renders running now (at most max_renders)
        self.waiting = 0  # renders waiting for one of the max_renders turns
        self._render_turns = asyncio.Semaphore(max_renders)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: aioredis.Redis | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._newest: tuple[int, int] | None = None  # the newest entry id the watcher has seen
        self._wake = asyncio.Event()
        self._renders: OrderedDict[tuple[str, ...], asyncio.Future[Any]] = OrderedDict()

    def client(self) -> aioredis.Redis:
        """The shared client of the running event loop (made on first use: a server makes it at
        startup; an app served without its lifespan, e.g. by a bare test client, on a stream)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._loop = loop
            self._client = _async_client(self.reader.redis, self.connections)
            self._watcher = None
            self._newest = None
            self._wake = asyncio.Event()
            self._renders = OrderedDict()
            self._render_turns = asyncio.Semaphore(self.max_renders)
        return self._client

    async def start(self) -> None:
        self.client()

    async def close(self) -> None:
        """Stops the watcher and closes the client (at the app's shutdown)."""
        if self._client is None or self._loop is not asyncio.get_running_loop():
            return
        watcher, client = self._watcher, self._client
        self._watcher = self._client = None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        await client.aclose()

    def try_acquire(self) -> bool:
        """Takes a stream slot; False when `max_streams` streams are open."""
        if self.active >= self.max_streams:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active -= 1

    def _ensure_watcher(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch(self.client()))

    def _saw(self, entry_id: str) -> None:
        self._newest = _id_key(entry_id)
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def _watch(self, client: aioredis.Redis) -> None:
        """One blocking XREAD for every stream: wakes them when the index's stream grows."""
        key = self.reader.keys.events
        last: str | None = None
        while True:
            try:
                if last is None:
                    newest = await client.xrevrange(key, count=1)
                    last = newest[0][0] if newest else "0-0"
                    self._saw(last)
                reply = await client.xread({key: last}, count=STREAM_BATCH, block=STREAM_BLOCK_MS)
                if reply:
                    last = reply[0][1][-1][0]
                    self._saw(last)
            except redis.RedisError as exc:
                log.warning("explorer stream watcher: %s; retrying", exc)
                last = None
                await asyncio.sleep(STREAM_BLOCK_MS / 1000)

    async def newest_id(self) -> str:
        """The id of the stream's newest entry ("0-0" when it is empty)."""
        newest = await self.client().xrevrange(self.reader.keys.events, count=1)
        return newest[0][0] if newest else "0-0"

    async def entries(self, last: str) -> list[tuple[str, dict[str, str]]] | None:
        """The entries after `last` (at most STREAM_BATCH); when there are none yet, waits up to
        STREAM_BLOCK_MS for the watcher to see new ones and returns None (idle) or []."""
        client = self.client()
        self._ensure_watcher()
        wake = self._wake
        if self._newest is None or _id_key(last) < self._newest:
            reply = await client.xread({self.reader.keys.events: last}, count=STREAM_BATCH)
            if reply:
                return reply[0][1]
        try:
            await asyncio.wait_for(wake.wait(), STREAM_BLOCK_MS / 1000)
        except TimeoutError:
            return None
        return []

    async def shared(self, key: tuple[str, ...], render: Callable[[], Awaitable[Any]]) -> Any:
        """``await render()``, once for every caller with the same `key` (a page and a batch). A
        render that failed is forgotten (its callers get its error; the next caller renders again)."""
        future = self._renders.get(key)
        if future is None:
            future = self._renders[key] = asyncio.ensure_future(render())
            future.add_done_callback(lambda done: self._forget_failed(key, done))
            while len(self._renders) > _RENDERS_KEPT:
                self._renders.popitem(last=False)
        return await asyncio.shield(future)

    def _forget_failed(self, key: tuple[str, ...], done: asyncio.Future[Any]) -> None:
        if (done.cancelled() or done.exception() is not None) and self._renders.get(key) is done:
            del self._renders[key]

    async def render(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker thread, at most `max_renders` at a time (the others wait their
        turn here, on the event loop): the streams' renders, however many streams, leave the
        thread pool to the synchronous routes (found by review, stop 56: 100 streams' renders made
        ``/totals`` wait 6.6 s)."""
        self.client()  # the turns of the running loop
        turns = self._render_turns
        self.waiting += 1
        try:
            await turns.acquire()
        finally:
            self.waiting -= 1
        self.renders += 1
        self.rendering += 1
        try:
            return await run_in_threadpool(fn, *args)
        finally:
            self.rendering -= 1
            turns.release()


class _SlotStream(StreamingResponse):
    """A StreamingResponse that gives its stream slot back however it ends (done, cancelled by a
    disconnect, failed), also when its body never started."""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None], **kw: Any) -> None:
        super().__init__(content, **kw)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def add_explorer(
    app: FastAPI, reader: IndexerReader, clock: BlockClock | None = None, max_streams: int = STREAM_MAX
) -> Explorer:
    """Adds the explorer's pages, its event stream (at most `max_streams` at a time) and its
    stylesheet to `app`; the streams' Redis client opens at the app's startup, closes at shutdown."""
    explorer = Explorer(reader, clock)
    templates = _templates()
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    hub = StreamHub(reader, max_streams)
    app.state.stream_hub = hub
    outer_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with outer_lifespan(a) as state:
            await hub.start()
            try:
                yield state
            finally:
                await hub.close()

    app.router.lifespan_context = lifespan

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
        return page(request, "error.html", status, title=title, message=message, status=status)

    def guarded(request: Request, build: Any) -> Response:
        try:
            return build()
        except BadInput as exc:
            return error_page(request, 400, "Bad request", str(exc))
        except NotFound as exc:
            return error_page(request, 404, "Not found", str(exc))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # The error names Redis' address or socket path: logged here, not shown (found by review, stop 56).
            log.warning("explorer: redis unreachable: %s", exc)
            return error_page(request, 503, "Index unavailable", REDIS_UNREACHABLE)

    # ------------------------------------------------------------------ fragments

    def overview_fragments() -> dict[str, str]:
        data = explorer.overview()
        labels = [f"-{RATE_MINUTES - 1 - i} min" if i < RATE_MINUTES - 1 else "now" for i in range(RATE_MINUTES)]
        chart = svg.bars(
            [("posted", data["posted_per_minute"], "#2563eb"), ("finalized", data["finalized_per_minute"], "#16a34a")],
            labels, "jobs posted and finalized per minute",
        )
        stats = templates.get_template("_stats.html").render(d=data, chart=chart, symbol="DPC", status=reader.status())
        jobs = templates.get_template("_jobs.html").render(jobs=explorer.recent_jobs())
        return {"stats": stats, "jobs": jobs}

    def job_fragments(job_id: int) -> dict[str, str]:
        return {"job-main": templates.get_template("_job_main.html").render(d=explorer.job(job_id), symbol="DPC")}

    def provider_fragments(address: str) -> dict[str, str]:
        d = explorer.provider(address)
        chart = svg.line(
            d["earnings"], "cumulative earnings",
            (lambda x: utc(x)) if d["time_axis"] else (lambda x: f"block {int(x)}"),
            lambda y: tokens(int(y)),
        )
        return {"provider-main": templates.get_template("_provider_main.html").render(d=d, chart=chart, symbol="DPC")}

    def requester_fragments(address: str) -> dict[str, str]:
        return {"requester-main": templates.get_template("_requester_main.html").render(d=explorer.requester(address), symbol="DPC")}

    def fragments(which: str, key: str) -> dict[str, str]:
        if which == "overview":
            return overview_fragments()
        if which == "job":
            return job_fragments(parse_job_id_text(key))
        if which == "provider":
            return provider_fragments(key)
        if which == "requester":
            return requester_fragments(key)
        return {}

    # ------------------------------------------------------------------ pages

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(request: Request) -> Response:
        def build() -> Response:
            after = explorer.last_stream_id()
            frags = overview_fragments()
            frags["feed"] = templates.get_template("_feed.html").render(feed=explorer.feed())
            return page(request, "overview.html", page_name="overview", key="", after=after, fragments=frags,
                        status=reader.status())
        return guarded(request, build)

    @app.get("/job/{job_id}", response_class=HTMLResponse, include_in_schema=False)
    def job_page(request: Request, job_id: str) -> Response:
        def build() -> Response:
            number = parse_job_id_text(job_id)
            after = explorer.last_stream_id()
            return page(request, "live.html", page_name="job", key=str(number), after=after,
                        title=f"Job {number}", fragments=job_fragments(number))
        return guarded(request, build)

    @app.get("/provider/{address}", response_class=HTMLResponse, include_in_schema=False)
    def provider_page(request: Request, address: str) -> Response:
        def build() -> Response:
            who = parse_address_text(address)
            after = explorer.last_stream_id()
            return page(request, "live.html", page_name="provider", key=who, after=after,
                        title=f"Provider {who}", fragments=provider_fragments(who))
        return guarded(request, build)

    @app.get("/requester/{address}", response_class=HTMLResponse, include_in_schema=False)
    def requester_page(request: Request, address: str) -> Response:
        def build() -> Response:
            who = parse_address_text(address)
            after = explorer.last_stream_id()
            return page(request, "live.html", page_name="requester", key=who, after=after,
                        title=f"Requester {who}", fragments=requester_fragments(who))
        return guarded(request, build)

    @app.get("/verifier/{address}", response_class=HTMLResponse, include_in_schema=False)
    def verifier_page(request: Request, address: str) -> Response:
        return guarded(request, lambda: page(request, "verifier.html", d=explorer.verifier(address)))

    @app.get("/address/{address}", include_in_schema=False)
    def address_page(request: Request, address: str) -> Response:
        def build() -> Response:
            kind = explorer.address_kind(address)
            return RedirectResponse(f"/{kind}/{parse_address_text(address)}", status_code=303)
        return guarded(request, build)

    @app.get("/tx/{tx_hash}", response_class=HTMLResponse, include_in_schema=False)
    def tx_page(request: Request, tx_hash: str) -> Response:
        def build() -> Response:
            if not is_tx_hash(tx_hash):
                raise BadInput(f"{tx_hash[:80]!r} is not a transaction hash: expected 0x and 64 hex digits")
            events, partial = explorer.tx_events(tx_hash)
            if not events:
                where = f" among the latest {TX_SCAN} events (older events are not searched)" if partial else ""
                raise NotFound(f"no event of transaction {tx_hash} in the index{where}")
            return page(request, "tx.html", tx=tx_hash, events=events)
        return guarded(request, build)

    @app.get("/search", include_in_schema=False)
    def search(request: Request, q: str = "") -> Response:
        def build() -> Response:
            text = q.strip()
            if not text:
                raise BadInput("type a job id, an address (0x + 40 hex digits) or a transaction hash (0x + 64 hex digits)")
            if text.isdigit():
                return RedirectResponse(f"/job/{parse_job_id_text(text)}", status_code=303)
            if is_tx_hash(text):
                return RedirectResponse(f"/tx/{text.lower()}", status_code=303)
            if text.lower().startswith("0x") and len(text) == 42:
                kind = explorer.address_kind(text)
                return RedirectResponse(f"/{kind}/{parse_address_text(text)}", status_code=303)
            raise BadInput(f"{text[:80]!r} is neither a job id, an address nor a transaction hash")
        return guarded(request, build)

    # ------------------------------------------------------------------ live updates

    @app.get("/explorer/stream", include_in_schema=False)
    async def stream(request: Request, after: str = "", page: str = "overview", key: str = "") -> Response:
        if page not in PAGES:
            return error_page(request, 400, "Bad request", f"unknown page {page[:40]!r}; one of {', '.join(PAGES)}")
        try:
            key = stream_key(page, key)
        except BadInput as exc:
            return error_page(request, 400, "Bad request", str(exc))
        start = request.headers.get("last-event-id") or after
        if start and not _stream_id_ok(start):
            return error_page(request, 400, "Bad request", f"{start[:40]!r} is not a stream entry id")
        if not hub.try_acquire():
            busy = error_page(request, 503, "Too many live pages",
                              f"this explorer serves at most {hub.max_streams} live pages at a time; reload later")
            busy.headers["Retry-After"] = str(STREAM_RETRY_AFTER)
            return busy

        async def events() -> AsyncIterator[str]:
            try:
                async for message in updates():
                    yield message
            except redis.RedisError as exc:
                # The shared pool exhausted, Redis gone: this stream ends (the page reconnects
                # after `retry`), with no traceback (found by review, stop 56); the error, which
                # names Redis' address, is logged only.
                log.warning("explorer stream ended: redis: %s", exc)
                yield ": index unavailable\n\n"

        async def updates() -> AsyncIterator[str]:
            # No position given: from now on (a page passes the stream id it was rendered at).
            last = start or await hub.newest_id()
            yield "retry: 1000\n\n"
            while not await request.is_disconnected():
                entries = await hub.entries(last)
                if entries is None:
                    yield ": idle\n\n"
                    continue
                if not entries:
                    continue
                first, last = entries[0][0], entries[-1][0]
                batch: list[tuple[str, dict[str, str]]] | None = entries
                if len(entries) >= STREAM_BATCH:
                    # A full batch: this stream is behind (an old `after`). The fragments come from
                    # the index's current state, so one render at the newest entry catches up;
                    # replaying batch after batch re-rendered the page once per 500 entries, and a
                    # bare request from 0-0 cost ~40 s of CPU at a full stream (found by review).
                    newest = await hub.newest_id()
                    if _id_key(newest) > _id_key(last):
                        first, last, batch = last, newest, None

                async def render(last: str = last, batch: list[tuple[str, dict[str, str]]] | None = batch) -> Any:
                    return await hub.render(update, last, page, key, batch)

                # The overview's update does not depend on the batch (every entry concerns it): one
                # render per newest entry, whatever `after` each stream started from.
                shared_as = (page, key, last) if page == "overview" else (page, key, first, last)
                payload = await hub.shared(shared_as, render)
                if payload is None:
                    yield f"id: {last}\n: nothing for this page\n\n"
                    continue
                yield f"id: {last}\nevent: update\ndata: {json.dumps(payload)}\n\n"

        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                hub.release()

        return _SlotStream(events(), release, media_type="text/event-stream",
                           headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def concerns(entries: list[tuple[str, dict[str, str]]], which: str, key: str) -> bool:
        """Whether new stream entries can change the page: any for the overview; the job's own
        events for a job page; for a provider or requester page, events naming the address or one
        of its jobs."""
        if which == "overview" or not key:
            return True
        if which == "job":
            needle = f'"jobId":"{key}"'
            return any(needle in (fields.get("args") or "") for _, fields in entries)
        who = key.lower()
        if any(who in (fields.get("args") or "").lower() for _, fields in entries):
            return True
        job_ids = {str(a["jobId"]) for _, fields in entries if isinstance(a := _args(fields), dict) and "jobId" in a}
        if not job_ids:
            return False
        index = reader.keys.jobs_by_provider(key) if which == "provider" else reader.keys.jobs_by_requester(key)
        return any(score is not None for score in explorer.redis.zmscore(index, sorted(job_ids)))

    def update(last: str, which: str, key: str, entries: list[tuple[str, dict[str, str]]] | None) -> dict[str, Any] | None:
        """The page's fragments re-rendered for new stream `entries` (None: they do not concern it;
        `entries` None: too many were skipped to tell, so they may)."""
        if entries is not None and not concerns(entries, which, key):
            return None
        started = time.monotonic()
        try:
            frags = fragments(which, key)
        except (BadInput, NotFound):
            frags = {}
        if which == "overview":
            frags["feed"] = templates.get_template("_feed.html").render(feed=explorer.feed())
        return {"last": last, "fragments": frags, "rendered_ms": round((time.monotonic() - started) * 1000, 1)}

    return explorer


def stream_key(page: str, key: str) -> str:
    """The canonical `key` of a stream of `page` (one of :data:`PAGES`): ``""`` for the overview,
    whatever was given (it shows no subject); for a job page the id in decimal (``007`` is ``7``;
    ASCII digits only, at most 2^256-1); for a provider or requester page the checksummed address
    (any case). Raises :class:`BadInput` for a key that names no job or address. Streams of one page
    thus share its renders however the key is spelled (found by review, stop 56: every distinct
    key, even on the overview, cost one more render of the page for every new entry)."""
    if page == "overview":
        return ""
    if page == "job":
        if not (key.isascii() and key.isdigit()):
            raise BadInput(f"{key[:80]!r} is not a job id: a job id is a whole number (ASCII digits)")
        return str(parse_job_id_text(key))
    if page in ("provider", "requester"):
        return parse_address_text(key)
    raise BadInput(f"unknown page {page[:40]!r}; one of {', '.join(PAGES)}")


def _args(fields: dict[str, str]) -> Any:
    try:
        return json.loads(fields.get("args") or "{}")
    except ValueError:
        return None


def _stream_id_ok(text: str) -> bool:
    """Whether `text` is a Redis stream entry id Redis accepts: ``<ms>`` or ``<ms>-<seq>``, ASCII
    digits, each part at most 2^64-1."""
    if len(text) > 41:
        return False
    left, dash, right = text.partition("-")
    parts = (left, right) if dash else (left,)
    return all(p.isascii() and p.isdigit() and int(p) <= _MAX_ID_PART for p in parts)
