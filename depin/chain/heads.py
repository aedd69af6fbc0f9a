"""New-head notifications: ``eth_subscribe("newHeads")`` over a node's WebSocket endpoint.

:class:`HeadSubscription` runs one background thread that connects to the node's ``ws://`` (or
``wss://``) URL with the ``websockets`` synchronous client, subscribes to ``newHeads`` and calls
``on_head(number)`` for every head the node announces (and ``on_head(None)`` right after each
(re)subscription, since heads may have been missed while it was disconnected). It never raises into
its caller: a refused connection, a node without WebSocket support, a subscription error or a
dropped connection is logged once per outage (WARNING, then DEBUG for each further attempt) and
retried with capped exponential backoff until :meth:`HeadSubscription.close`. Whoever uses it must
keep polling as the safety net: a notification only says "look now".

:func:`websocket_url` derives the default endpoint: a local node's HTTP URL with the scheme swapped
(anvil, geth ``--ws`` on the same port in dev setups, hardhat serve both on one port); remote URLs
get none unless configured, since hosted providers put WebSockets on other hosts or paths.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from depin.chain import backoff_delay
from depin.redact import redact_text, redact_url

log = logging.getLogger("depin.chain.heads")

SUBSCRIBE = "eth_subscribe"
NOTIFICATION = "eth_subscription"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
DISABLED = frozenset({"off", "none", "no", "false", "0", "-"})


def websocket_url(rpc_url: str, configured: str | None = None) -> str | None:
    """The WebSocket URL to subscribe at: `configured` when given (a word of :data:`DISABLED`, or
    an empty string, turns subscriptions off), else `rpc_url` with ``http``/``https`` swapped for
    ``ws``/``wss`` when its host is local (:data:`LOCAL_HOSTS`), else None (poll only)."""
    if configured is not None:
        text = configured.strip()
        if not text or text.lower() in DISABLED:
            return None
        if not text.startswith(("ws://", "wss://")):
            raise ValueError(f"a WebSocket URL starts with ws:// or wss://, not {text!r}")
        return text
    parts = urlsplit(rpc_url)
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in LOCAL_HOSTS:
        return None
    return urlunsplit(parts._replace(scheme="ws" if parts.scheme == "http" else "wss"))


class SubscriptionRefused(Exception):
    """The node answered ``eth_subscribe`` with an error (or something that is not a subscription id)."""


class HeadSubscription:
    """Calls ``on_head`` from a background thread for each new head of the node at `url` (see the
    module docstring). Start with :meth:`start`, end with :meth:`close`."""

    def __init__(
        self,
        url: str,
        on_head: Callable[[int | None], None],
        *,
        open_timeout: float = 5.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
    ) -> None:
        self.url = url
        self.shown_url = redact_url(url)  # for the logs: no password or API key
        self.on_head = on_head
        self.open_timeout = open_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.subscribed = threading.Event()  # set while a subscription is live
        self.heads = 0  # notifications received (all connections)
        self.failures = 0  # failed connection or subscription attempts (all outages)
        self._closed = threading.Event()
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> HeadSubscription:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="head-subscription", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stops the thread (closing the connection if one is open) and waits for it up to `timeout`."""
        self._closed.set()
        with self._lock:
            conn = self._conn
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - closing anyway
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        attempt = 0  # failed attempts in the current outage
        while not self._closed.is_set():
            try:
                self._follow()
            except Exception as exc:  # noqa: BLE001 - any failure means: poll, and try again later
                if self._closed.is_set():
                    break
                self.failures += 1
                delay = backoff_delay(attempt, self.backoff_base, self.backoff_cap)
                if attempt == 0:
                    log.warning(
                        "no new-head subscription at %s (%s); polling meanwhile, retrying with backoff", self.shown_url,
                        self._reason(exc), extra={"ws_url": self.shown_url, "retry_in_s": delay},
                    )
                else:
                    log.debug(
                        "new-head subscription at %s still unavailable (%s); retrying in %.1fs", self.shown_url,
                        self._reason(exc), delay,
                    )
                attempt += 1
                self._closed.wait(delay)
                continue
            attempt = 0  # the connection ended without an error (closed by the node): reconnect at once

    def _reason(self, exc: BaseException) -> str:
        """`exc` for the log, without the URL's secrets (websockets quotes a URL it cannot use)."""
        return redact_text(_describe(exc), self.url)

    def _follow(self) -> None:
        """One connection: subscribe, then deliver heads until the connection ends."""
        with connect(self.url, open_timeout=self.open_timeout, close_timeout=1.0, max_size=2**22, compression=None) as conn:
            with self._lock:
                if self._closed.is_set():
                    return
                self._conn = conn
            try:
                conn.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": SUBSCRIBE, "params": ["newHeads"]}))
                reply = json.loads(conn.recv(timeout=self.open_timeout))
                sub_id = reply.get("result") if isinstance(reply, dict) else None
                if not isinstance(sub_id, str):
                    raise SubscriptionRefused(str(reply.get("error") if isinstance(reply, dict) else reply)[:200])
                self.subscribed.set()
                log.info("subscribed to new heads at %s", self.shown_url, extra={"ws_url": self.shown_url})
                self.on_head(None)  # heads may have been missed before the subscription
                for message in conn:
                    number = _head_number(message, sub_id)
                    if number is not None:
                        self.heads += 1
                        self.on_head(number)
            finally:
                self.subscribed.clear()
                with self._lock:
                    self._conn = None
        if not self._closed.is_set():
            log.info("new-head subscription at %s closed by the node; reconnecting", self.shown_url)


def _head_number(message: str | bytes, sub_id: str) -> int | None:
    """The block number of a ``newHeads`` notification of subscription `sub_id`, else None."""
    try:
        msg: Any = json.loads(message)
        if msg.get("method") != NOTIFICATION or msg["params"]["subscription"] != sub_id:
            return None
        return int(msg["params"]["result"]["number"], 16)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (OSError, TimeoutError, WebSocketException, SubscriptionRefused)):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return repr(exc)
