"""The gateway's HTTP transport: one JSON-RPC POST, its whole exchange bounded in time and its answer
in size.

requests' ``timeout`` bounds each connect and each read, not the call: a node (or a proxy before
it) that sends its answer one byte per read timeout held every call for ever, and one that streamed
an endless body filled the memory (6.4 GB in 20 s through ``depin job status``; found by review,
stop 40). :func:`post` ends every call by its deadline (``timeout`` seconds after it starts) and
reads at most ``max_bytes`` of answer:

- the deadline: a :class:`~depin.watchdog.SocketWatchdog` (the mechanism of :mod:`depin.fetch`)
  shuts down, at the deadline, the socket of the connection the call uses (a new one or one kept
  alive from an earlier call: :func:`session`'s urllib3 connections hand it their socket as they
  connect and as each request starts); the call then raises :class:`CallTimedOut`;
- the size: an answer whose ``Content-Length`` exceeds ``max_bytes`` is not read, one without (or
  compressed) is read to one byte past it; both raise :class:`AnswerTooLarge`. For a plain call the
  cap is :data:`RPC_MAX_BYTES`; ``eth_getLogs`` (:mod:`depin.chain.logs`) passes its own budget.

A :func:`session` is for one thread (its connections are kept alive between that thread's calls,
and a call's watchdog only ever shuts a socket while that call holds it). Connections through a
SOCKS proxy are not watched (the ``timeout`` still bounds each read).
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from depin.watchdog import SocketWatchdog

# The largest answer to one plain JSON-RPC call (a batch: all of it) that is read: far above any
# honest one (a block's receipts are a few MB; a batch of 5,000 headers about 7 MB; eth_getLogs,
# which may be larger, has its own budget), far below what fills a machine's memory.
RPC_MAX_BYTES = 64 * 2**20
HEADERS = {"Content-Type": "application/json"}

# The watchdog of the call under way in this thread (context), which the connections report to.
_call: ContextVar[SocketWatchdog | None] = ContextVar("depin_rpc_call", default=None)


class CallTimedOut(Exception):
    """The node did not finish its answer by the call's deadline (``timeout`` seconds)."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"timed out: no complete answer within {timeout:g} s (the call's whole timeout)")


class AnswerTooLarge(Exception):
    """The answer's body exceeds the caller's cap; it was not read further."""

    def __init__(self, size: int | None, limit: int) -> None:
        shown = f"of {size:,} bytes" if size is not None else "larger"
        super().__init__(f"answer {shown} exceeds the cap of {limit:,} bytes; not read further")
        self.size, self.limit = size, limit


def _watch(sock: Any) -> None:
    watchdog = _call.get()
    if watchdog is not None:
        watchdog.watch(sock)


class _Watched:
    """Hands its socket to the call's watchdog: the TCP one as it connects (a tunnel through a proxy
    is read before TLS), the one it ends up with (TLS wraps it in a new object), and the one it
    has as each request starts (a connection kept alive from an earlier call). Mixed into urllib3's
    HTTP and HTTPS connections."""

    sock: Any

    def _new_conn(self) -> Any:
        sock = super()._new_conn()  # type: ignore[misc]
        _watch(sock)
        return sock

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    __doc__ = _Watched.__doc__


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    __doc__ = _Watched.__doc__


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _Adapter(HTTPAdapter):
    """requests' adapter with the watched connections (direct and through an HTTP(S) proxy)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has connection classes of its own
            manager.pool_classes_by_scheme = _POOLS
        return manager


def session() -> requests.Session:
    """A requests session whose calls :func:`post` can end at their deadline. For one thread."""
    s = requests.Session()
    adapter = _Adapter()
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def post(http: requests.Session, url: str, body: bytes, *, timeout: float, max_bytes: int) -> bytes:
    """The body of the answer to POSTing `body` (JSON) to `url` through `http` (a :func:`session`),
    within `timeout` seconds in all and at most `max_bytes` long. Raises :class:`CallTimedOut`,
    :class:`AnswerTooLarge`, and requests' errors (connection refused, HTTP error status, ...),
    whose messages may quote the URL (redact them)."""
    watchdog = SocketWatchdog(time.monotonic() + timeout)
    token = _call.set(watchdog)
    try:
        with watchdog, http.post(url, data=body, headers=HEADERS, timeout=timeout, stream=True) as response:
            response.raise_for_status()
            declared = response.headers.get("Content-Length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
                raise AnswerTooLarge(int(declared), max_bytes)
            # One read (requests' .content joins 10 kB chunks: a copy more), of one byte past
            # the cap at most (a chunked or compressed body).
            content = response.raw.read(max_bytes + 1, decode_content=True)
            if len(content) > max_bytes:
                raise AnswerTooLarge(None, max_bytes)
    except AnswerTooLarge:
        raise
    except Exception:
        if watchdog.fired:
            raise CallTimedOut(timeout) from None
        raise
    finally:
        _call.reset(token)
    if watchdog.fired:  # a body without Content-Length cut short at the deadline looks whole
        raise CallTimedOut(timeout)
    return content
