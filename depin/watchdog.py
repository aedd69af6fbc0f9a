"""A deadline for a whole network exchange, whatever the other side does.

A timeout on each connect and each read (what requests, urllib3 and httpx offer) does not bound an
exchange: a server that sends one byte per read timeout holds it for ever, and a deadline checked
between reads cannot stop a read that blocks (a response head trickled byte by byte; found by
review, stop 36, for input fetches, and stop 40 for JSON-RPC calls). :class:`SocketWatchdog` shuts
down, at its deadline, every socket handed to it (:meth:`SocketWatchdog.watch`): a read blocked in
another thread then ends at once (``shutdown``; ``close`` would not wake it). The caller tells a
cut-short exchange by :attr:`SocketWatchdog.fired`.

Who hands it the sockets: :class:`depin.fetch.Watchdog` (downloads; httpcore's trace hook names
each connection's socket) and ``depin.chain.http`` (JSON-RPC; its urllib3 connections hand theirs).
A socket wrapped for TLS is a new socket object (the TCP one is detached: shutting that down does
nothing), so the wrapped one is handed too.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Self


class SocketWatchdog:
    """Shuts down, at `deadline` (``time.monotonic()``; None: never), every socket handed to
    :meth:`watch` while it is armed (a ``with`` block); :attr:`fired` tells whether the deadline did.
    Leaving the block disarms it: no socket is shut down after that (the connection may serve the
    next call)."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.fired = False
        self._done = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def watch(self, sock: socket.socket | None) -> None:
        """Shuts `sock` down at the deadline (now, if it has passed)."""
        if sock is None:
            return
        with self._lock:
            if self._done:
                return
            self._sockets.append(sock)
            if self.fired:
                self._shut(sock)

    def _fire(self) -> None:
        with self._lock:  # shut under the lock: once __exit__ has it, no socket is shut any more
            if self._done:
                return
            self.fired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread; close() would not
        except OSError:
            pass

    def __enter__(self) -> Self:
        if self.deadline is not None:
            self._timer = threading.Timer(max(0.0, self.deadline - time.monotonic()), self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._done = True
            self._sockets.clear()
