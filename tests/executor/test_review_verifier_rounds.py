"""Review (stop 41, verifier side): one verifier's seats of a jury and the round's delivery check, on
real services (tests/executor/stack.py): anvil with the deployed VerificationCourt, redis-server, the
indexer, Podman, a provider executor whose result URLs go through a small proxy of the test
(:class:`Proxy`), and a verifier executor (dev account 3, the court's only member: every seat is
drawn for it, a jury of 3 is all its) with a compute worker of two processes. Every run (the
provider's and the seats' re-runs) waits for the test to release it (``/tmp/go``).

- The round's delivery verdict lived in Redis only (``{e}:delivery:{job}:{round}``, and the
  seats' records). The verifier's keys wiped (a Redis restarted without persistence, or restored
  from an older snapshot) after one seat checked and journaled its digest but before another seat
  of the round checked: the second seat checks again on its own, and a provider that serves its
  archive once makes it commit NOT_DELIVERED against the first seat's digest: the verifier votes
  both ways in one round and loses one bond whatever the tally.
- A seat whose re-run ended while another seat of ours checked the round's delivery waited for the
  verdict inside its task, holding a compute worker process for up to the whole check: with two
  processes, the third seat's re-run (or a provider job of a ``provider,verifier`` executor) could
  not start until the check ended. (Its stack reproduction raced a held check's own time-out
  against a container's start and lost on a loaded CI machine: it was removed; the deferral is
  checked by tests/executor/test_verifier_seats.py against a simulated court on a real redis-server:
  the waiting seat's task ends and is queued again, and its next task uses the run's digest.)

Fixed (executor/verifier.py): the round's verdict is journaled (``delivery-<job>-<round>.json``, the
first kept) before any seat journals a digest from it, and read from there first
(:func:`executor.verifier.record_round_delivery`); a seat waiting for it ends its task and is queued
again a moment later, its run's digest kept (:func:`executor.verifier.journal_result`).
"""

from __future__ import annotations

import http.server
import threading
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from depin.commitment import NOT_DELIVERED
from depin.market import JobStatus
from executor.containers import LABEL_EXECUTOR

from .stack import PROVIDER, REQUESTER, REQUESTER2, VERIFIER, Executor, Stack, exec_prefix, release_gate, spec, terms_for, wait_for
from .stack import court_logs as _court_logs
from .stack import drawn as _drawn
from .stack import seat_record as _seat

MAX_JOBS = 14
GATED = "while [ ! -e /tmp/go ]; do sleep 0.05; done"


class Proxy:
    """Forwards GETs to the provider's result server (`target`). ``once``: each path is answered
    from the target for its first request only, later ones get 404 (a provider that withdraws its
    archive once fetched)."""

    def __init__(self) -> None:
        self.target = ""
        self.once = False
        self.requested: set[str] = set()
        self.count = 0
        lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    first = self.path not in owner.requested
                    owner.requested.add(self.path)
                    owner.count += 1
                if owner.once and not first:
                    status, body, ctype = 404, b"", "text/plain"
                else:
                    resp = requests.get(owner.target + self.path, timeout=10)
                    status, body, ctype = resp.status_code, resp.content, resp.headers.get("Content-Type", "application/octet-stream")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        self.once = False
        self.requested.clear()
        self.count = 0

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def proxy() -> Iterator[Proxy]:
    p = Proxy()
    yield p
    p.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images, proxy: Proxy) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("review-verifier-rounds"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER, REQUESTER2, tokens=100_000)
        s.setup_funded(VERIFIER, tokens=10_000)
        s.provider = s.executor("provider", "provider", PROVIDER, policy={"images": [], "max_memory_mb": 512}, results_url=proxy.url)
        bind = tomllib.loads(s.provider.config_path.read_text())["executor"]["results_bind"]
        proxy.target = f"http://{bind}"
        s.verifier = s.executor("verifier", "verifier", VERIFIER, policy={"images": [], "max_memory_mb": 512, "max_runtime": 60},
                                concurrency=2, sections={"verifier": {"max_audits": 4, "delivery_wait": 10}})
        s.wait_court_member(VERIFIER)
        yield s
    finally:
        s.close()


def _words(entry: dict[str, Any]) -> list[int]:
    data = entry["data"][2:]
    return [int(data[i : i + 64], 16) for i in range(0, len(data), 64)]


def _ours(stack: Stack, entry: dict[str, Any]) -> bool:
    return entry["topics"][2][-40:].lower() == stack.verifier.address[2:].lower()


def _running(stack: Stack, ex: Executor, job_id: int) -> list[Any]:
    """`ex`'s running containers of job `job_id`, by name."""
    found = stack.engine.containers.list(filters={"label": f"{LABEL_EXECUTOR}={ex.instance()}"}, ignore_removed=True)
    return sorted((c for c in found if c.name.startswith(f"depin-job-{stack.deployment.chain_id}-{job_id}-")), key=lambda c: c.name)


def _release_all(stack: Stack, ex: Executor, job_id: int) -> None:
    for c in _running(stack, ex, job_id):
        try:
            release_gate(c)
        except Exception:  # noqa: S110 - the run ended (and its container went) meanwhile
            pass


def _undrawn_gated_job(stack: Stack, tag: str) -> int:
    """A submitted re-executable job of REQUESTER2 whose runs wait for the test, not drawn for audit:
    a challenge takes it straight to a jury of three.

    A drawn job's audit (the verifier's seat: the court's only member) is released and waited out
    before the next job. Left gated, its re-run timed out, the audit failed and the case escalated
    through juries of 3, 7 and 15 seats, all the verifier's: they held its `max_audits` slots, so the
    test's jury found no free slot for its third seat (CI at a55c08a: seat 2 "declined: no free
    slot (4 seats in hand)", its record never written)."""
    for n in range(MAX_JOBS):
        job_spec = spec(stack.images["busybox"], ["sh", "-c", f"{GATED}; echo {tag} {n} > /out/r"], max_runtime=20)
        job_id = stack.post(job_spec, requester=REQUESTER2, terms=terms_for(verify_mode=0))

        def submitted(j: int = job_id) -> bool:
            _release_all(stack, stack.provider, j)
            return stack.status(j) in (JobStatus.SUBMITTED, JobStatus.DISPUTED)

        wait_for(submitted, 120, f"job {job_id} to be submitted")
        if not wait_for(lambda j=job_id: (d := _drawn(stack, j)) is not None and (d,), 30, "the anchor block")[0]:
            return job_id

        def audit_over(j: int = job_id) -> bool:
            _release_all(stack, stack.verifier, j)
            return _seat(stack, stack.verifier, j, 0, 0).get("state") in ("done", "declined")

        wait_for(audit_over, 240, f"the verifier's audit of drawn job {job_id} to end")
    pytest.fail(f"all of {MAX_JOBS} jobs were drawn (about 5e-8 by chance at p_job 0.3): is the randomness source broken?")


def _wipe_verifier(stack: Stack) -> int:
    """Deletes every key of the verifier executor (records, leases, round verdicts, its broker's
    queues): its Redis restarted without persistence."""
    state = stack.state()
    keys = list(state.scan_iter(match=exec_prefix(stack, stack.verifier) + ":*", count=1000))
    if keys:
        state.delete(*keys)
    return len(keys)


def _jury(stack: Stack, job_id: int) -> tuple[dict[int, bytes | None], list[list[int]], list[dict[str, str]]]:
    records = [_seat(stack, stack.verifier, job_id, 1, s) for s in range(3)]
    revealed = {(w[0], w[1]): w[2].to_bytes(32, "big") for w in map(_words, _court_logs(stack, "SeatRevealed", job_id))}
    jury = {s: revealed.get((1, s)) for s in range(3)}
    forfeited = [w for e in _court_logs(stack, "SeatSettled", job_id) if _ours(stack, e) and (w := _words(e))[0] == 1 and w[4] > 0]
    forfeited += [w for e in _court_logs(stack, "SeatNoShow", job_id) if _ours(stack, e) and (w := _words(e))[0] == 1]
    return jury, forfeited, records


def test_a_wiped_redis_between_two_seats_checks_never_splits_the_verifiers_vote(stack: Stack, proxy: Proxy) -> None:
    m, v = stack.market, stack.verifier
    requester = stack.accounts[REQUESTER2]
    m.approve(requester, m.court)
    job_id = _undrawn_gated_job(stack, "wiped-verdict")
    seats = exec_prefix(stack, v) + ":seats"  # the jury of three needs three free slots of max_audits
    wait_for(lambda: stack.state().zcard(seats) == 0, 60, f"the verifier to hold no seat (it held {stack.state().zrange(seats, 0, -1)} when the wait began)")
    proxy.reset()
    proxy.once = True
    try:
        m.challenge(requester, job_id)
        # two seats' re-runs start side by side (two compute processes); the third waits
        first = wait_for(lambda: (c := _running(stack, v, job_id)) and len(c) >= 2 and c[0], 120, "two seats' re-runs")
        release_gate(first)

        def checked() -> dict[str, str] | None:
            for s in range(3):
                rec = _seat(stack, v, job_id, 1, s)
                if rec.get("delivery") and rec.get("state") in ("computed", "committed"):
                    return rec
            return None

        rec = wait_for(checked, 120, "one seat's delivery check and journaled digest")
        assert rec["delivery"].startswith("delivered"), rec
        assert _wipe_verifier(stack) > 0

        def resolved() -> bool:
            _release_all(stack, v, job_id)
            return stack.status(job_id) == JobStatus.RESOLVED

        wait_for(resolved, 400, "the jury to resolve the job")
    finally:
        proxy.reset()
    try:
        wait_for(lambda: all(_seat(stack, v, job_id, 1, s).get("state") == "done" for s in range(3)), 90, "the jury seats' records to close")
    except TimeoutError as exc:  # which seat, in which state, and what the verifier logged
        raise TimeoutError(f"{exc}; seat records {[_seat(stack, v, job_id, 1, s) for s in range(3)]}\n{v.logs()}") from None
    jury, forfeited, records = _jury(stack, job_id)
    summary = f"digests { {k: d.hex()[:8] if d else None for k, d in jury.items()} }; deliveries {[r.get('delivery', '')[:60] for r in records]}; NOT_DELIVERED {NOT_DELIVERED.hex()[:8]}"
    assert len(set(jury.values())) == 1 and None not in jury.values(), summary
    assert not forfeited, summary
