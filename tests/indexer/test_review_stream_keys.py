"""The explorer's live stream keys, its renders and Redis failures (found by review, stop 56).

- ``/explorer/stream`` rendered a page once per distinct ``key``, even the overview's, which shows
  no subject: 100 overview streams with distinct keys cost 100 renders for every new entry, and an
  address in three cases three renders of its page. Keys are now canonical (:func:`stream_key`) and
  a bad one is 400 before a slot is taken.
- The streams' renders were unbounded (outside the API's in-flight limit): they took the worker
  threads of the synchronous routes. At most ``STREAM_RENDERS`` run at a time now.
- A stream whose Redis failed (the shared pool exhausted: "No connection available") ended with an
  ASGI traceback; it ends cleanly now, with a comment.
- The 503 answer of the API and the explorer's error page showed the Redis error, which names
  its address or socket path; they show a fixed message, and the error is logged.

Over a real redis-server, through FastAPI's TestClient; every wait is on recorded state (renders
counted in the patched views, the hub's counters), never a sleep.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

import indexer.web.app as web_app
from depin.keys import Keys
from indexer.api import create_app
from indexer.query import IndexerReader
from indexer.web.views import Explorer
from tests.indexer.test_query import (  # noqa: F401  (fixtures)
    PROVIDER_1,
    REQUESTER_A,
    keys,
    r,
    reader,
    redis_url,
    sample,
)

from .services import TIMEOUT_SCALE, wait_for


def _add_stream(r: redis.Redis, keys: Keys, event: str, block: int, **args: str) -> str:
    return r.xadd(keys.events, {"kind": "event", "event": event, "block": str(block), "blockHash": "0x" + "ab" * 32,
                                "tx": "0x" + f"{block:064x}", "logIndex": "0", "args": json.dumps(args, separators=(",", ":"))})


def _next_update(lines: Iterator[str]) -> dict[str, Any]:
    """The next update message of a stream's `lines` (one iterator per response, kept)."""
    for line in lines:
        if line.startswith("data:"):
            return json.loads(line.removeprefix("data:"))
    raise AssertionError("the stream ended")


def _next_message(lines: Iterator[str]) -> dict[str, Any] | None:
    """The next update of a stream's `lines`, or None when the stream says the batch does not
    concern its page."""
    for line in lines:
        if line == ": nothing for this page":
            return None
        if line.startswith("data:"):
            return json.loads(line.removeprefix("data:"))
    raise AssertionError("the stream ended")


class _Counted:
    """Wraps an :class:`Explorer` method (patched on the class): counts its calls, from any worker
    thread, and the most running at once; with `hold` set, each call waits for :meth:`release`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, hold: bool = False) -> None:
        self.calls = self.running = self.peak = 0
        self._lock = threading.Lock()
        self._go = threading.Event()
        if not hold:
            self._go.set()
        original: Callable[..., Any] = getattr(Explorer, name)

        def counted(explorer: Explorer, *args: Any) -> Any:
            with self._lock:
                self.calls += 1
                self.running += 1
                self.peak = max(self.peak, self.running)
            try:
                assert self._go.wait(60 * TIMEOUT_SCALE), "a held render was never released"
                return original(explorer, *args)
            finally:
                with self._lock:
                    self.running -= 1

        monkeypatch.setattr(Explorer, name, counted)

    def release(self) -> None:
        self._go.set()


def _open(api: TestClient, streams: contextlib.ExitStack, params: dict[str, str]) -> Iterator[str]:
    response = streams.enter_context(api.stream("GET", "/explorer/stream", params=params))
    assert response.status_code == 200, response.read()
    lines = response.iter_lines()
    assert next(lines) == "retry: 1000"
    return lines


# ---------------------------------------------------------------------------------------- canonical keys


def test_overview_streams_share_one_render_whatever_their_key(
    r: redis.Redis, sample: Keys, reader: IndexerReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight overview streams, each with another `key` (the overview ignores it), get one new entry:
    the overview is rendered once for all of them (it was once per key: 100 streams, 100 renders per
    entry, 131 s of summed render time for 50 entries)."""
    overview = _Counted(monkeypatch, "overview")
    after = _add_stream(r, sample, "JobPosted", 10, jobId="1")
    app = create_app(reader)
    with TestClient(app) as api, contextlib.ExitStack() as streams:
        opened = [_open(api, streams, {"after": after, "page": "overview", "key": key})
                  for key in ("", "1", "2", "x", "0x" + "ab" * 20, "overview", "🙂", " ")]
        newest = _add_stream(r, sample, "JobPosted", 11, jobId="2")
        for lines in opened:
            assert _next_update(lines)["last"] == newest
        assert overview.calls == 1, f"{overview.calls} overview renders for one entry and {len(opened)} streams"
        assert app.state.stream_hub.renders == 1


@pytest.mark.parametrize(
    ("page", "spellings", "method", "args"),
    [
        ("job", ["4", "04", "0004"], "job", {"jobId": "4"}),
        ("provider", [PROVIDER_1, PROVIDER_1.lower(), "0x" + PROVIDER_1[2:].upper()], "provider",
         {"jobId": "1", "provider": PROVIDER_1}),
        ("requester", [REQUESTER_A, REQUESTER_A.lower(), "0x" + REQUESTER_A[2:].upper()], "requester",
         {"jobId": "1", "requester": REQUESTER_A}),
    ],
    ids=["job", "provider", "requester"],
)
def test_one_subject_spelled_several_ways_is_rendered_once(
    r: redis.Redis, sample: Keys, reader: IndexerReader, monkeypatch: pytest.MonkeyPatch,
    page: str, spellings: list[str], method: str, args: dict[str, str],
) -> None:
    """Streams of one job, provider or requester page whose key is spelled differently (leading
    zeros; an address in lower, upper or checksum case) share the page's render (the address in
    three cases cost three), and their updates are the same."""
    view = _Counted(monkeypatch, method)
    after = _add_stream(r, sample, "JobPosted", 10, jobId="9")
    app = create_app(reader)
    with TestClient(app) as api, contextlib.ExitStack() as streams:
        opened = [_open(api, streams, {"after": after, "page": page, "key": key}) for key in spellings]
        newest = _add_stream(r, sample, "JobClaimed", 11, **args)
        updates = [_next_message(lines) for lines in opened]
        assert all(u is not None and u["last"] == newest for u in updates), {k: u and u["last"] for k, u in zip(spellings, updates, strict=True)}
        assert view.calls == 1, f"{view.calls} renders of one {page} page for {len(spellings)} spellings of its key"
        assert all(u == updates[0] for u in updates)
        assert app.state.stream_hub.renders == 1


@pytest.mark.parametrize(
    ("page", "key"),
    [
        ("job", ""),
        ("job", "abc"),
        ("job", "١٢٣"),  # Arabic-Indic digits: str.isdigit, not a job id
        ("job", " 4"),
        ("job", "-1"),
        ("job", "0x10"),
        ("job", str(2**256)),
        ("provider", ""),
        ("provider", "0x1234"),
        ("provider", "0x" + "zz" * 20),
        ("requester", "0x" + REQUESTER_A[2:].swapcase()),  # mixed case, a wrong checksum
        ("requester", "x" * 5000),
    ],
    ids=["job-empty", "job-letters", "job-arabic-digits", "job-space", "job-negative", "job-hex", "job-2^256",
         "provider-empty", "provider-short", "provider-not-hex", "requester-bad-checksum", "requester-5000-chars"],
)
def test_a_bad_stream_key_is_400_and_takes_no_slot(sample: Keys, reader: IndexerReader, page: str, key: str) -> None:
    """A key that names no job or address is refused (it was served, and rendered as a page of its
    own) before the stream takes a slot."""
    app = create_app(reader)
    with TestClient(app) as api, api.stream("GET", "/explorer/stream", params={"page": page, "key": key}) as response:
        assert response.status_code == 400, (page, key)
        assert response.headers["content-type"].startswith("text/html") and "Bad request" in response.read().decode()
        assert app.state.stream_hub.active == 0


# ---------------------------------------------------------------------------------------- bounded renders


def test_stream_renders_run_a_few_at_a_time_and_the_api_still_answers(
    r: redis.Redis, sample: Keys, reader: IndexerReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six job pages (six distinct renders) get their jobs' entries while every render is held: at
    most STREAM_RENDERS run at once, the others wait their turn on the event loop (they all took a
    worker thread, the synchronous routes' threads); /totals answers meanwhile, and once the renders
    go on every stream gets its update."""
    streams_n = 6
    job = _Counted(monkeypatch, "job", hold=True)
    after = _add_stream(r, sample, "JobPosted", 10, jobId="0")
    pipe = r.pipeline(transaction=True)  # one MULTI: every stream reads all six entries in one batch
    for job_id in range(1, streams_n + 1):
        pipe.xadd(sample.events, {"kind": "event", "event": "JobClaimed", "block": "11", "blockHash": "0x" + "ab" * 32,
                                  "tx": "0x" + "cd" * 32, "logIndex": str(job_id), "args": json.dumps({"jobId": str(job_id)}, separators=(",", ":"))})
    newest = pipe.execute()[-1]
    app = create_app(reader)
    hub = app.state.stream_hub
    with TestClient(app) as api, contextlib.ExitStack() as streams:
        try:
            opened = [_open(api, streams, {"after": after, "page": "job", "key": str(j)}) for j in range(1, streams_n + 1)]
            # every render has started, or is waiting for its turn (the new hub's count)
            wait_for(lambda: job.running == streams_n or job.running + hub.waiting == streams_n, 30, "the six renders to start or queue")
            assert job.peak < streams_n, f"all {job.peak} stream renders ran at once"
            assert job.peak == hub.rendering == web_app.STREAM_RENDERS
            assert api.get("/totals").status_code == 200
        finally:
            job.release()
        for lines in opened:
            assert _next_update(lines)["last"] == newest
        assert job.calls == hub.renders == streams_n and job.peak == web_app.STREAM_RENDERS
        assert hub.rendering == hub.waiting == 0


# ---------------------------------------------------------------------------------------- Redis failures


def test_a_stream_ends_cleanly_when_its_redis_pool_is_exhausted(
    r: redis.Redis, sample: Keys, reader: IndexerReader, caplog: pytest.LogCaptureFixture
) -> None:
    """Every connection of the streams' shared pool held: the stream's read fails ("No connection
    available"); it ends with a comment, not an ASGI traceback (the test client re-raises an app's
    exception), and gives its slot back. Once the connections are free, a stream is served again.
    The pool's wait is cut to 0.2 s here (10 s in service) so the failure comes soon."""
    _add_stream(r, sample, "JobPosted", 10, jobId="1")
    app = create_app(reader)
    hub = app.state.stream_hub
    with TestClient(app) as api:
        assert api.portal is not None
        pool: Any = None  # the shared client's pool: made on the app's event loop (below)

        async def hold_every_connection() -> list[Any]:
            nonlocal pool
            pool = hub.client().connection_pool
            pool.timeout = 0.2
            held = []
            with contextlib.suppress(redis.ConnectionError):
                while True:
                    held.append(await pool.get_connection())
            return held

        held = api.portal.call(hold_every_connection)
        assert len(held) == hub.connections
        try:
            with caplog.at_level(logging.WARNING, logger="indexer.web.app"), \
                    api.stream("GET", "/explorer/stream", params={"after": "0-0", "page": "overview"}) as response:
                assert response.status_code == 200
                lines = list(response.iter_lines())
            assert lines[0] == "retry: 1000" and ": index unavailable" in lines and not any(x.startswith("data:") for x in lines)
            assert any("No connection available" in rec.getMessage() for rec in caplog.records)
            wait_for(lambda: hub.active == 0, 10, "the failed stream's slot to be released")
        finally:
            async def give_back() -> None:
                assert pool is not None
                for connection in held:
                    await pool.release(connection)

            api.portal.call(give_back)
        with api.stream("GET", "/explorer/stream", params={"after": "0-0", "page": "overview"}) as again:
            assert _next_update(again.iter_lines())["fragments"]


def test_redis_errors_do_not_show_its_address(keys: Keys, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Redis at a socket path where nothing listens: the API's 503 and the explorer's 503 page say
    Redis is unreachable without the error, which named the path ("Error 2 connecting to
    /srv/secret/redis/redis.sock"); the error is in the server's log. A live stream ends with a
    fixed comment."""
    secret = tmp_path / "srv-secret" / "redis.sock"
    down = redis.Redis(unix_socket_path=str(secret), socket_connect_timeout=1, retry=None, decode_responses=True)
    with caplog.at_level(logging.WARNING), TestClient(create_app(IndexerReader(down, keys))) as api:
        for path in ("/jobs", "/jobs/1", "/totals", "/status", "/healthz", "/metrics"):
            response = api.get(path)
            assert response.status_code == 503, path
            assert "srv-secret" not in response.text and response.json()["detail"].startswith("Redis is unreachable"), response.text
        for path in ("/", "/job/1", f"/provider/{PROVIDER_1}", "/search?q=0x" + "77" * 20):
            response = api.get(path)
            assert response.status_code == 503 and response.headers["content-type"].startswith("text/html"), path
            assert "srv-secret" not in response.text and "Redis is unreachable" in response.text, response.text
        with api.stream("GET", "/explorer/stream", params={"after": "0-0", "page": "overview"}) as response:
            body = response.read().decode()
        assert ": index unavailable" in body and "srv-secret" not in body
    logged = [rec.getMessage() for rec in caplog.records]
    assert any(str(secret) in message for message in logged), logged
