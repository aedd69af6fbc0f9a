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

The deadlines are kept by one thread per process (started on first use, again in a forked child),
not a timer thread per exchange: starting a thread per JSON-RPC call tripled its cost on a local node.
"""

from __future__ import annotations

import heapq
import itertools
import os
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
            _scheduler.arm(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
            self._sockets.clear()
        if self.deadline is not None:
            _scheduler.disarm()


class _Scheduler:
    """Fires armed watchdogs at their deadlines, from one daemon thread. A disarmed watchdog stays in
    the heap until its deadline comes up (it does nothing then) or the heap is rebuilt without it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, SocketWatchdog]] = []
        self._order = itertools.count()
        self._armed = 0
        self._thread: threading.Thread | None = None

    def arm(self, watchdog: SocketWatchdog) -> None:
        assert watchdog.deadline is not None
        with self._cond:
            self._armed += 1
            if len(self._heap) > 2 * self._armed + 64:  # mostly disarmed ones: drop them
                self._heap = [entry for entry in self._heap if not entry[2]._done]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (watchdog.deadline, next(self._order), watchdog))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="depin-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is watchdog:
                self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._armed -= 1

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2]._done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                watchdog = heapq.heappop(self._heap)[2]
                self._cond.release()
                try:
                    watchdog._fire()
                finally:
                    self._cond.acquire()


_scheduler = _Scheduler()


def _after_fork() -> None:
    global _scheduler
    _scheduler = _Scheduler()  # the parent's thread is not in the child


os.register_at_fork(after_in_child=_after_fork)
