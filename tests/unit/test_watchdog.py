"""depin.watchdog: one thread per process shuts the watched sockets down at their deadlines, never
after the exchange ended, and keeps no disarmed watchdogs around (a JSON-RPC call arms one)."""

from __future__ import annotations

import os
import socket
import time

from depin import watchdog as watchdog_module
from depin.watchdog import SocketWatchdog


def test_a_read_blocked_past_the_deadline_ends_then() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.settimeout(30)  # what a read timeout would leave it: the test's own bound
        with SocketWatchdog(time.monotonic() + 0.2) as watchdog:
            watchdog.watch(ours)
            assert ours.recv(1) == b""  # shut down: the read ends (the other side sent nothing)
        assert watchdog.fired


def test_a_socket_handed_after_the_deadline_is_shut_at_once() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs, SocketWatchdog(time.monotonic() - 1) as watchdog:
        deadline = time.monotonic() + 30
        while not watchdog.fired:  # the thread fires it
            assert time.monotonic() < deadline, "the watchdog never fired"
            time.sleep(0.01)
        watchdog.watch(ours)
        ours.settimeout(30)
        assert ours.recv(1) == b""


def test_a_disarmed_watchdog_shuts_nothing() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        # The scheduler's thread cannot fire `early` while this thread holds the scheduler's lock (a
        # re-entrant one, which arm and disarm take too): disarmed before its deadline however slowly
        # this thread runs (on a loaded machine 0.1 s may pass between arming and leaving the block).
        with watchdog_module._scheduler._cond, SocketWatchdog(time.monotonic() + 0.1) as early:
            early.watch(ours)
        with SocketWatchdog(time.monotonic() + 0.3) as later:  # fires after `early`'s deadline passed
            deadline = time.monotonic() + 30
            while not later.fired:
                assert time.monotonic() < deadline, "the watchdog never fired"
                time.sleep(0.01)
        assert not early.fired
        theirs.sendall(b"x")
        ours.settimeout(30)
        assert ours.recv(1) == b"x"  # still connected


def test_disarmed_watchdogs_do_not_pile_up() -> None:
    for _ in range(10_000):
        with SocketWatchdog(time.monotonic() + 3600):
            pass
    # arm() rebuilds the heap when it holds more than 2 * armed + 64 entries, counting the one being
    # armed, and then pushes it: up to 2 * (armed + 1) + 65 entries once that one is disarmed. The
    # scheduler thread also pops disarmed entries off the top when it wakes, which shifts where in
    # that cycle the loop ends: a bound of 2 * armed + 65 failed once in a CI run (66 entries).
    assert len(watchdog_module._scheduler._heap) <= 2 * watchdog_module._scheduler._armed + 67


def test_a_forked_child_has_a_watchdog_thread_of_its_own() -> None:
    with SocketWatchdog(time.monotonic() + 3600):  # the parent's thread runs
        pass
    pid = os.fork()
    if pid == 0:  # the child: no thread of the parent's came along
        code = 1
        try:
            ours, _theirs = socket.socketpair()
            ours.settimeout(30)
            with SocketWatchdog(time.monotonic() + 0.1) as watchdog:
                watchdog.watch(ours)
                code = 0 if ours.recv(1) == b"" and watchdog.fired else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
