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
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from indexer.query import IndexerReader
from indexer.web import svg
from indexer.web.views import (
    RATE_MINUTES,
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
)

HERE = Path(__file__).resolve().parent
STREAM_BLOCK_MS = 1000  # an idle stream sends a comment this often (and notices a closed page)
STREAM_BATCH = 500
PAGES = ("overview", "job", "provider", "requester")


def _short(value: str | None) -> str:
    if not value:
        return "-"
    return f"{value[:6]}…{value[-4:]}" if len(value) > 14 else value


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters.update(tokens=tokens, utc=utc, duration=duration, short=_short)
    env.globals["symbol"] = "DPC"
    return templates


def _async_client(client: redis.Redis) -> aioredis.Redis:
    """An asyncio client on the same server as `client` (for the blocking stream reads)."""
    kw = client.connection_pool.connection_kwargs
    keep = {k: kw[k] for k in ("host", "port", "db", "username", "password", "path") if kw.get(k) is not None}
    if "path" in keep:
        return aioredis.Redis(unix_socket_path=keep.pop("path"), decode_responses=True, **keep)
    return aioredis.Redis(decode_responses=True, **keep)


def add_explorer(app: FastAPI, reader: IndexerReader, clock: BlockClock | None = None) -> Explorer:
    """Adds the explorer's pages, its event stream and its stylesheet to `app`."""
    explorer = Explorer(reader, clock)
    templates = _templates()
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

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
            return error_page(request, 503, "Index unavailable", f"Redis is unreachable: {exc}")

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
            events = explorer.tx_events(tx_hash)
            if not events:
                raise NotFound(f"no event of transaction {tx_hash} in the index")
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
    async def stream(request: Request, after: str = "0-0", page: str = "overview", key: str = "") -> Response:
        if page not in PAGES:
            return error_page(request, 400, "Bad request", f"unknown page {page[:40]!r}; one of {', '.join(PAGES)}")
        start = request.headers.get("last-event-id") or after
        if not _stream_id_ok(start):
            return error_page(request, 400, "Bad request", f"{start[:40]!r} is not a stream entry id")

        async def events() -> AsyncIterator[str]:
            client = _async_client(reader.redis)  # its own connection: XREAD blocks it
            last = start
            try:
                yield "retry: 1000\n\n"
                while not await request.is_disconnected():
                    reply = await client.xread({reader.keys.events: last}, count=STREAM_BATCH, block=STREAM_BLOCK_MS)
                    if not reply:
                        yield ": idle\n\n"
                        continue
                    entries = reply[0][1]
                    last = entries[-1][0]
                    payload = await run_in_threadpool(update, last, page, key, entries)
                    if payload is None:
                        yield f"id: {last}\n: nothing for this page\n\n"
                        continue
                    yield f"id: {last}\nevent: update\ndata: {json.dumps(payload)}\n\n"
            finally:
                await client.aclose()

        return StreamingResponse(events(), media_type="text/event-stream",
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

    def update(last: str, which: str, key: str, entries: list[tuple[str, dict[str, str]]]) -> dict[str, Any] | None:
        """The page's fragments re-rendered for new stream `entries` (None: they do not concern it)."""
        if not concerns(entries, which, key):
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


def _args(fields: dict[str, str]) -> Any:
    try:
        return json.loads(fields.get("args") or "{}")
    except ValueError:
        return None


def _stream_id_ok(text: str) -> bool:
    left, _, right = text.partition("-")
    return left.isdigit() and (right == "" or right.isdigit()) and len(text) < 48
