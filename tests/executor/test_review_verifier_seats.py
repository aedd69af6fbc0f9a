"""Review (stop 40, verifier side): an honest verifier's bond on real services (tests/executor/stack.py):
anvil with the deployed VerificationCourt, redis-server, the indexer, Podman, a provider executor
whose result URLs go through a small proxy of the test (:class:`ResultProxy`), and a verifier
executor (dev account 3, the court's only member: every seat is drawn for it, a jury of 3 is all its).

- A take (``startAudit`` / ``takeSeat``) still in the node's pool when the verifier's chain worker is
  killed: after the restart the verifier records the seat ``declined`` ("the seat was not taken
  (crash before the transaction)": :func:`executor.verifier.follow_seat` reads the latest state, which
  does not show the pending take; a re-take's gas estimate, on anvil's pending state, would revert
  BadSeat and decline it too); the pending transaction is then mined and the seat is ours on chain,
  but a declined record is never adopted again: nothing is run or committed, and the seat's bond
  is forfeited as a no-show. Without a crash the same follows a take whose receipt wait times out
  (``TxTimeout``, 120 s: a fee spike) while it stays in the pool.
- Two seats of one jury, one verifier: each seat's re-run checks the provider's delivery on its own,
  side by side (one lease per seat). A provider whose server hands the archive out once (the first
  request of each path) makes one seat commit its re-run digest and the other NOT_DELIVERED: the
  same verifier votes both ways in one round and loses one bond whatever the tally.

Fixed (executor/verifier.py): a seat the chain shows ours is adopted whatever our record says,
unless it is followed already, done, or declined for good after our own run or commit failed
(:func:`executor.verifier.reclaimable`, :func:`executor.verifier.adopt`); and the delivery is
checked once per (job, round), under the round's delivery lease, its verdict recorded for all our
seats of the round (:func:`executor.verifier.round_delivery_check`).
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

from .stack import PROVIDER, REQUESTER, REQUESTER2, VERIFIER, Stack, spec, terms_for, wait_for
from .stack import court_logs as _court_logs
from .stack import drawn as _drawn
from .stack import seat_record as _seat

MAX_JOBS = 14


class ResultProxy:
    """Forwards GETs to the provider's result server (`target`). ``once``: each path is answered
    from the target for its first request only, later requests get 404: a provider that withdraws
    its archive once it was fetched once; and the very first request is answered only once another
    request came in (or after ``hold`` seconds): a slow first answer, so that the checks of two
    seats whose re-runs ended side by side overlap whatever the machine's load."""

    def __init__(self) -> None:
        self.target = ""
        self.once = False
        self.hold = 0.0
        self.requested: set[str] = set()
        self.second = threading.Event()
        lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    first = self.path not in owner.requested
                    very_first = not owner.requested
                    owner.requested.add(self.path)
                if not very_first:
                    owner.second.set()
                if owner.once and not first:
                    status, body, ctype = 404, b"", "text/plain"
                else:
                    if owner.once and very_first:
                        owner.second.wait(owner.hold)
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
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def proxy() -> Iterator[ResultProxy]:
    p = ResultProxy()
    yield p
    p.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images, proxy: ResultProxy) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("review-verifier"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER, REQUESTER2, tokens=100_000)
        s.setup_funded(VERIFIER, tokens=10_000)
        s.provider = s.executor("provider", "provider", PROVIDER, policy={"images": [], "max_memory_mb": 512}, results_url=proxy.url)
        bind = tomllib.loads(s.provider.config_path.read_text())["executor"]["results_bind"]
        proxy.target = f"http://{bind}"
        s.verifier = s.executor("verifier", "verifier", VERIFIER, policy={"images": [], "max_memory_mb": 512, "max_runtime": 60},
                                sections={"verifier": {"max_audits": 4, "delivery_wait": 10}})  # one request may take 10 s
        s.wait_court_member(VERIFIER)
        yield s
    finally:
        s.close()


def _words(entry: dict[str, Any]) -> list[int]:
    data = entry["data"][2:]
    return [int(data[i : i + 64], 16) for i in range(0, len(data), 64)]


def _ours(stack: Stack, entry: dict[str, Any]) -> bool:
    return entry["topics"][2][-40:].lower() == stack.verifier.address[2:].lower()


def _undrawn_job(stack: Stack, command: str) -> int:
    """A submitted re-executable job of REQUESTER2 that was not drawn for audit: a challenge takes it
    straight to a jury of three (nobody fetched its archive or took a seat before).

    A drawn job's audit (its seat is the verifier's: the court's only member) is waited out before
    the next job: a test that holds the chain's blocks (automine off) must not meet the audit's
    commit, which the verifier's one chain worker would then wait on for its whole receipt time-out
    (120 s: seen on a loaded machine) before doing anything the test waits for."""
    for n in range(MAX_JOBS):
        job_spec = spec(stack.images["busybox"], ["sh", "-c", f"{command}; echo {n} > /out/n"])
        job_id = stack.post(job_spec, requester=REQUESTER2, terms=terms_for(verify_mode=0))
        stack.wait_status(job_id, (JobStatus.SUBMITTED, JobStatus.DISPUTED), timeout=120)
        if not wait_for(lambda j=job_id: (d := _drawn(stack, j)) is not None and (d,), 30, "the anchor block")[0]:
            return job_id
        wait_for(lambda j=job_id: _seat(stack, stack.verifier, j, 0, 0).get("state") in ("done", "declined"), 180,
                 f"the verifier's audit of drawn job {job_id} to end")
    pytest.fail(f"all of {MAX_JOBS} jobs were drawn (about 5e-8 by chance at p_job 0.3): is the randomness source broken?")


def test_a_take_still_in_the_pool_at_a_crash_is_run_and_committed_not_left_to_a_no_show(stack: Stack) -> None:
    m, v = stack.market, stack.verifier
    court = m.contracts.verification_court
    requester = stack.accounts[REQUESTER2]
    m.approve(requester, m.court)
    job_id = _undrawn_job(stack, "echo pending-take > /out/r")
    take = "0x" + m.codec.function("VerificationCourt", "takeSeat").selector.hex() + job_id.to_bytes(32, "big").hex()
    m.rpc.call("evm_setIntervalMining", [0])
    m.set_automine(False)
    held: tuple[int, int] | None = None
    try:
        m.rpc.call("eth_sendTransaction", [{"from": requester, "to": m.court, "data": m.contracts.verification_court.challenge(job_id).data}])
        m.mine()  # the challenge: a jury of three, drawn from the block after it
        if int(m.get_case(job_id)["round"]) != 1:
            raise RuntimeError(f"the challenge did not open a jury: {m.get_case(job_id)}")

        def take_pending() -> tuple[int, int] | None:
            content = m.rpc.call("txpool_content")
            txs = [t for by in content.get("pending", {}).values() for t in by.values()]
            for t in txs:
                if t["from"].lower() == v.address.lower() and t["input"].startswith(take):
                    return 1, int(t["input"][74:138], 16)
            if txs or m.block_number() <= int(m.get_case(job_id)["anchor"]):
                m.mine()  # by hand: the draw's anchor block, and anything else sent meanwhile
            return None

        round_, seat_ = wait_for(take_pending, 120, "a take of the verifier's in the pool")
        if _seat(stack, v, job_id, round_, seat_).get("state") != "taking":
            raise RuntimeError(f"the seat's record is not 'taking': {_seat(stack, v, job_id, round_, seat_)}")
        v.kill9("worker-chain")
        v.kill9("beat")
        v.start("worker-chain", "beat")
        wait_for(lambda: _seat(stack, v, job_id, round_, seat_).get("state") == "declined", 90, "the seat to be declined after the restart")
        case = m.get_case(job_id)
        at = m.timestamp() + 1
        if at > int(case["seatDeadline"]):
            raise RuntimeError(f"too late to mine the take: {at} > {case['seatDeadline']}")
        m.rpc.call("anvil_setNextBlockTimestamp", [at])
        m.mine()  # the take of before the crash
        holder = m.read(court.get_seat(job_id, round_, seat_))[0]
        if holder.lower() != v.address.lower():
            raise RuntimeError(f"the pending take did not take the seat (holder {holder})")
        held = (round_, seat_)
    finally:
        m.set_automine(True)
        m.rpc.call("evm_setIntervalMining", [1])
    assert held is not None
    round_, seat_ = held
    reason = _seat(stack, v, job_id, round_, seat_).get("reason", "")

    def ended() -> bool:
        committed = [e for e in _court_logs(stack, "SeatCommitted", job_id) if _words(e)[:2] == [round_, seat_]]
        return bool(committed or [e for e in _court_logs(stack, "SeatNoShow", job_id) if _words(e)[:2] == [round_, seat_]])

    wait_for(ended, 180, "the held seat to be committed or counted a no-show")
    no_shows = [e for e in _court_logs(stack, "SeatNoShow", job_id) if _words(e)[:2] == [round_, seat_] and _ours(stack, e)]
    assert not no_shows, f"the verifier's seat ({round_}, {seat_}) held on chain was a no-show (record: {reason}); bond {_words(no_shows[0])[2]}"


def test_one_verifiers_seats_of_a_jury_agree_on_the_providers_delivery(stack: Stack, proxy: ResultProxy) -> None:
    m, v = stack.market, stack.verifier
    requester = stack.accounts[REQUESTER2]
    m.approve(requester, m.court)
    job_id = _undrawn_job(stack, "echo served-once > /out/r")
    proxy.requested.clear()
    proxy.second.clear()
    proxy.once, proxy.hold = True, 8.0
    try:
        m.challenge(requester, job_id)
        stack.wait_status(job_id, JobStatus.RESOLVED, timeout=300)
    finally:
        proxy.once, proxy.hold = False, 0.0
    wait_for(lambda: all(_seat(stack, v, job_id, 1, s).get("state") == "done" for s in range(3)), 60, "the jury seats' records to close")
    records = [_seat(stack, v, job_id, 1, s) for s in range(3)]
    revealed = {(w[0], w[1]): w[2].to_bytes(32, "big") for w in map(_words, _court_logs(stack, "SeatRevealed", job_id))}
    jury = {s: revealed.get((1, s)) for s in range(3)}
    forfeited = [w for e in _court_logs(stack, "SeatSettled", job_id) if _ours(stack, e) and (w := _words(e))[0] == 1 and w[4] > 0]
    summary = f"digests { {k: d.hex()[:8] if d else None for k, d in jury.items()} }; deliveries {[r.get('delivery', '')[:60] for r in records]}; NOT_DELIVERED {NOT_DELIVERED.hex()[:8]}"
    assert len(set(jury.values())) == 1, summary
    assert not forfeited, summary
