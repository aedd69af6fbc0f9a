"""The verifier's input check before a seat is taken runs in the background (executor/verifier.py
:func:`input_check`), against a real HTTP server that holds its answer until the test lets it go.

The verify pass runs on the chain queue, with the commits, reveals and transactions queued behind
it. Before, the check fetched the inputs inline, for up to a minute per drawn job: a requester whose
server trickles its bytes could hold that queue until our other seats missed their deadlines (a
no-show burns the bond). Now a pass waits for checks a bounded time and moves on; a later pass
reads the answer.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from depin.config import DepinConfig, PolicyConfig
from depin.spec import JobSpec, parse_spec
from executor import verifier
from executor.policy import Decision

from .recording_server import RecordingServer
from .stack import spec, wait_for

INPUT = b"the requester's input\n"
INPUT_SHA = hashlib.sha256(INPUT).hexdigest()


@pytest.fixture
def held() -> Iterator[tuple[RecordingServer, threading.Event]]:
    """A server on 127.0.0.2 whose ``/slow`` answers only once the event is set (and ``/fast`` at once)."""
    release = threading.Event()

    def slow(_server: RecordingServer) -> tuple[int, dict[str, str], bytes]:
        release.wait(120)
        return 200, {}, INPUT

    with RecordingServer("127.0.0.2", routes={"/slow": slow, "/fast": (200, {}, INPUT)}) as server:
        try:
            yield server, release
        finally:
            release.set()


def _runtime(tmp_path: Path) -> SimpleNamespace:
    config = DepinConfig(policy=PolicyConfig(images=[], input_allow_networks=["127.0.0.2/32"]))
    return SimpleNamespace(config=config, work_root=tmp_path / "work", docker=None)


def _spec(server: RecordingServer, path: str, sha: str = INPUT_SHA) -> JobSpec:
    uri = f"http://127.0.0.2:{server.port}{path}"
    return parse_spec(spec("docker.io/library/busybox@sha256:" + "ab" * 32, ["true"], inputs=[{"path": "data", "uri": uri, "sha256": sha}]))


def _answer(rt: SimpleNamespace, job_id: int, job_spec: JobSpec) -> Decision:
    """Asks as later passes do (no wait) until the check has an answer."""
    found = wait_for(lambda: (d := verifier.runnable_here(rt, job_id, job_spec, 60)) is not None and (d,), 60, f"job {job_id}'s input check to end")
    return found[0]


def test_a_held_input_server_does_not_hold_the_pass(tmp_path: Path, held: tuple[RecordingServer, threading.Event]) -> None:
    server, release = held
    rt = _runtime(tmp_path)
    job_spec = _spec(server, "/slow")
    returned = threading.Event()
    answers: list[Decision | None] = []

    def one_pass() -> None:
        verifier._pass["check_until"] = time.monotonic() + verifier.PASS_CHECK_WAIT
        answers.append(verifier.runnable_here(rt, 901, job_spec, 60))
        returned.set()

    threading.Thread(target=one_pass, daemon=True).start()
    # the pass returns while the server still holds the request (it answers only once released):
    # before, the pass waited for the fetch itself (up to its 60 s timeout)
    assert returned.wait(30), "the pass waited for the held input server"
    assert not release.is_set() and [r.path for r in server.requests] == ["/slow"]
    assert answers == [None]  # no answer yet: the seat is neither taken nor declined in this pass
    # a second pass finds the same check running: no second request
    assert verifier.runnable_here(rt, 901, job_spec, 60) is None
    assert [r.path for r in server.requests] == ["/slow"]

    release.set()
    decision = _answer(rt, 901, job_spec)
    assert decision.ok, decision
    assert (tmp_path / "work" / "input-cache" / "901" / INPUT_SHA).read_bytes() == INPUT  # for the re-run
    assert not list((tmp_path / "work").glob("precheck-*"))  # the scratch folder is gone
    # the answer was read: the check is forgotten, and a later one fetches again
    assert 901 not in verifier._checks.running


def test_a_check_that_fails_in_the_background_declines(tmp_path: Path, held: tuple[RecordingServer, threading.Event]) -> None:
    server, _release = held
    rt = _runtime(tmp_path)
    job_spec = _spec(server, "/fast", sha="00" * 32)  # the server's bytes do not hash to it
    decision = _answer(rt, 902, job_spec)
    assert not decision.ok and decision.reason.startswith("the inputs cannot be fetched and checked now:"), decision
    assert "sha256 mismatch" in decision.reason, decision


def test_a_quick_check_answers_within_the_pass(tmp_path: Path, held: tuple[RecordingServer, threading.Event]) -> None:
    """A server that answers at once is answered in the same pass (no pass's delay before the seat is
    taken): the pass waits for checks up to PASS_CHECK_WAIT seconds."""
    server, _release = held
    rt = _runtime(tmp_path)
    verifier._pass["check_until"] = time.monotonic() + 60  # a generous budget: a loaded machine
    try:
        decision = verifier.runnable_here(rt, 903, _spec(server, "/fast"), 60)
    finally:
        verifier._pass["check_until"] = 0.0
    assert decision is not None and decision.ok, decision


def test_a_yes_whose_cached_bytes_are_gone_is_checked_again(tmp_path: Path, held: tuple[RecordingServer, threading.Event]) -> None:
    """A check ends "yes" but no pass reads it yet; the job's input cache is then removed (a seat of
    it declined, e.g. no free slot) and the requester removes the input. The old "yes" must not let
    a seat be taken: the re-run would find no cached bytes and ask the server, fail, and the locked
    bond would burn as a no-show. The inputs are checked again, and the seat declined."""
    server, _release = held
    server.routes["/gone-later"] = (200, {}, INPUT)
    rt = _runtime(tmp_path)
    job_spec = _spec(server, "/gone-later")
    assert verifier.runnable_here(rt, 904, job_spec, 60) is None  # started, not waited for
    wait_for(lambda: verifier._checks.running[904].finished is not None, 60, "the check to end")
    cache = tmp_path / "work" / "input-cache" / "904"
    assert (cache / INPUT_SHA).is_file()
    shutil.rmtree(cache)  # what a declined seat's drop_input_cache does
    server.routes["/gone-later"] = (404, {}, b"")
    decision = _answer(rt, 904, job_spec)
    assert not decision.ok and "cannot be fetched" in decision.reason, decision
    assert [r.path for r in server.requests].count("/gone-later") == 2  # asked again

