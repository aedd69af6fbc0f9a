"""The provider executor keeps the anchor block hash of its submitted jobs (``executor.beat.record_anchors``).

A job's draw reads ``blockhash(anchor)``, which the EVM keeps for 256 blocks; once it is gone and
nobody called ``BlockhashRandomness.record(anchor)``, the market counts the job as drawn. With a
challenge window longer than 256 blocks (the testnets': 3600 s = 300 blocks) every job would go to
audit. On real services (tests/executor/stack.py): a re-executable job with a one-hour challenge
window is submitted by the executor; once its anchor is RECORD_ANCHOR_AFTER blocks old the executor
has recorded the hash, and 256 blocks later the market still draws the job from that hash, while a
job nobody recorded (submitted by a test-driven provider) counts as drawn. The unit tests below
pin the rules on a fake runtime over a real Redis: each anchor once, only in range, only while
needed, never twice across a crash.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from eth_abi import encode
from eth_utils import keccak

from depin.keys import ExecKeys
from depin.market import JobStatus
from executor import anchors, beat
from executor.beat import BLOCKHASH_WINDOW, PROVE_ANCHOR_AFTER, RECORD_ANCHOR_AFTER, RECORD_ANCHOR_UNTIL
from tests.indexer.services import RedisServer

from .stack import PROVIDER, PROVIDER2, REQUESTER, Stack, spec, terms_for, wait_for

_Index = dict[int, dict[str, str]]  # job id -> its indexed fields
ONE_HOUR = 3_600  # the devnet's longest challenge window: longer than 256 one-second blocks
ZERO = bytes(32)


def _drawn_by(value: bytes, job_id: int, audit_bps: int) -> bool:
    """JobMarket._drawnBy: keccak256(abi.encode(r, jobId)) % 10000 < auditBps."""
    return int.from_bytes(keccak(encode(["bytes32", "uint256"], [value, job_id])), "big") % 10_000 < audit_bps


# ------------------------------------------------------------------------------------ real stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("anchor"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_provider(PROVIDER2)
        s.setup_funded(REQUESTER, tokens=10_000)
        s.executor("provider", "provider", PROVIDER)
        yield s
    finally:
        s.close()


def test_the_executor_records_its_anchor_and_the_draw_outlives_the_blockhash_window(stack: Stack) -> None:
    m = stack.market
    rnd = m.contracts.blockhash_randomness
    assert stack.deployment.parameters.get("randomness") == "blockhash"

    def recorded(block: int) -> bytes:
        return bytes(m.read(rnd.recorded(block)))

    terms = terms_for(verify_mode=0, challenge_window=ONE_HOUR)  # re-executable: 0 < p_job < 100 %
    job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "echo anchor > /out/a"]), terms=terms)
    stack.wait_status(job_id, JobStatus.SUBMITTED, timeout=120)
    job = stack.job(job_id)
    anchor, audit_bps = job["anchorBlock"], job["auditBps"]
    assert 0 < audit_bps < 10_000
    # not before the trigger: read the record first, then the head (the head only grows)
    early = recorded(anchor)
    if m.block_number() < anchor + RECORD_ANCHOR_AFTER:
        assert early == ZERO

    # a control job nobody records: the image is outside the executor's policy, so a test-driven
    # provider claims and submits it (in a later block: another anchor)
    other = stack.post(spec("depin/absent@sha256:" + "0" * 64, ["true"]), terms=terms)
    provider2 = stack.accounts[PROVIDER2]
    m.claim(provider2, other)
    m.submit(provider2, other)
    other_anchor = stack.job(other)["anchorBlock"]
    assert other_anchor != anchor

    # past the trigger (one-second blocks: the challenge window stays open); the beat records
    m.mine(RECORD_ANCHOR_AFTER + 1)
    wait_for(lambda: recorded(anchor) != ZERO, 60, f"the anchor block {anchor} to be recorded")
    value = recorded(anchor)
    assert value == bytes.fromhex(m.rpc.call("eth_getBlockByNumber", [hex(anchor), False])["hash"][2:])
    assert m.is_drawn(job_id) == _drawn_by(value, job_id, audit_bps)
    assert stack.status(job_id) == JobStatus.SUBMITTED
    assert recorded(other_anchor) == ZERO  # only our own jobs' anchors

    # past the block hash window: the job is drawn from the recorded hash, not "expired = drawn"
    head = m.mine(BLOCKHASH_WINDOW)
    assert head > anchor + BLOCKHASH_WINDOW and head > other_anchor + BLOCKHASH_WINDOW
    assert m.read(rnd.status(anchor)) == (True, False)  # ready, not expired
    assert m.is_drawn(job_id) == _drawn_by(value, job_id, audit_bps)
    assert m.read(rnd.status(other_anchor)) == (False, True)
    assert m.is_drawn(other) is True  # the defect, for a job whose anchor nobody recorded
    assert stack.status(job_id) == JobStatus.SUBMITTED  # still inside its one-hour window
    sent = stack.executors[0].wait_log(None, lambda e: e.get("msg") == "anchor block hash recorded", "the anchor recorded")
    assert [e.get("anchor") for e in sent] == [anchor], sent


# ------------------------------------------------------------------------------------ rules (fake runtime)


class _Chain:
    """The chain as record_anchors sees it: a head, jobs, the randomness contract's records and
    the signer (every broadcast mines at once, unless `hold` keeps it in the pool)."""

    def __init__(self, head: int) -> None:
        self.head = head
        self.jobs: dict[int, SimpleNamespace] = {}
        self.recorded: dict[int, bytes] = {}
        self.sent: list[int] = []
        self.pool: set[str] = set()
        self.hold = False
        self.contracts = SimpleNamespace(blockhash_randomness=SimpleNamespace(
            recorded=lambda a: ("recorded", a), record=lambda a: SimpleNamespace(to="0xrnd", data=str(a), what="BlockhashRandomness.record"),
        ), header_randomness=SimpleNamespace(  # a header is b"header <n>" here (block_header is faked)
            proved=lambda a: ("recorded", a),
            prove=lambda h: SimpleNamespace(to="0xrnd", data=h.decode().split()[1], what="HeaderRandomness.prove"),
        ))
        self.tx = SimpleNamespace(estimate_gas=lambda to, data, what: 50_000, broadcast=self._broadcast, wait=self._wait)

    def block_number(self) -> int:
        return self.head

    def read(self, call: tuple[str, int]) -> bytes:
        return self.recorded.get(call[1], ZERO)

    def _broadcast(self, to: str, data: str, *, gas: int, what: str, on_signed: Any, still_needed: Any) -> SimpleNamespace:
        anchor = int(data)
        tx_hash = f"0x{anchor:064x}"
        on_signed([tx_hash], 0)
        self.sent.append(anchor)
        if self.hold:
            self.pool.add(tx_hash)
            raise ConnectionError("the worker died after the broadcast")
        return SimpleNamespace(anchor=anchor, tx_hash=tx_hash)

    def _wait(self, pending: SimpleNamespace) -> SimpleNamespace:
        self.recorded[pending.anchor] = keccak(text=str(pending.anchor))
        return pending


def _runtime(r: redis.Redis, chain: _Chain, index: _Index, randomness: str = "blockhash") -> Any:
    xkeys = ExecKeys(31337, "0x" + "22" * 20, "provider", "0xme")
    for job_id in index:
        r.zadd(xkeys.submitted, {str(job_id): 1_000 + job_id})
    return SimpleNamespace(
        state=r, xkeys=xkeys, roles=("provider",), client=chain,
        deployment=SimpleNamespace(parameters={"randomness": randomness}),
        reader=SimpleNamespace(jobs_fields=lambda ids, fields: [index.get(int(j), {}) for j in ids]),
        rpc=SimpleNamespace(get_receipt=lambda h: None, get_transaction=lambda h: {"hash": h} if h in chain.pool else None),
        job=lambda j: chain.jobs[j],
    )


def _job(chain: _Chain, index: _Index, job_id: int, anchor: int, audit_bps: int = 3_000) -> None:
    chain.jobs[job_id] = SimpleNamespace(status=JobStatus.SUBMITTED, anchor_block=anchor, audit_bps=audit_bps)
    index[job_id] = {"status": "Submitted", "anchorBlock": str(anchor), "auditBps": str(audit_bps)}


@pytest.fixture
def r(redis_server: RedisServer) -> redis.Redis:
    client = redis_server.client(9)
    client.flushdb()
    return client


def test_each_anchor_in_range_is_recorded_once(r: redis.Redis) -> None:
    chain, index = _Chain(head=1_000), _Index()
    _job(chain, index, 1, 1_000 - RECORD_ANCHOR_AFTER)  # due
    _job(chain, index, 2, 1_000 - RECORD_ANCHOR_AFTER)  # same anchor (one batch): one record
    _job(chain, index, 3, 1_000 - RECORD_ANCHOR_AFTER + 1)  # too young: its draw may still settle alone
    _job(chain, index, 4, 1_000 - RECORD_ANCHOR_UNTIL - 1)  # too old to get in before the hash is gone
    _job(chain, index, 5, 1_000 - 100, audit_bps=0)  # verify none: never drawn, nothing to keep
    _job(chain, index, 6, 1_000 - 101, audit_bps=10_000)  # always drawn
    _job(chain, index, 7, 1_000 - 102)
    index[7]["status"] = "Finalized"  # settled: no draw any more
    _job(chain, index, 8, 1_000 - 103)
    chain.recorded[1_000 - 103] = b"\x01" * 32  # somebody recorded it already
    _job(chain, index, 9, 1_000 - 104)
    chain.jobs[9].status = JobStatus.FINALIZED  # the index lags: the chain says settled
    rt = _runtime(r, chain, index)
    assert beat.record_anchors(rt) == 1
    assert chain.sent == [1_000 - RECORD_ANCHOR_AFTER]
    assert beat.record_anchors(rt) == 0  # done: neither sent again nor read again
    chain.head += 1  # job 3's anchor comes of age
    assert beat.record_anchors(rt) == 1
    assert chain.sent == [1_000 - RECORD_ANCHOR_AFTER, 1_000 - RECORD_ANCHOR_AFTER + 1]
    chain.head += BLOCKHASH_WINDOW + 200
    assert beat.record_anchors(rt) == 0
    _job(chain, index, 10, chain.head - RECORD_ANCHOR_AFTER)
    rt = _runtime(r, chain, index)
    assert beat.record_anchors(rt) == 1
    # the next record trims the marks of anchors past the window
    assert r.hkeys(rt.xkeys.anchors) == [str(chain.head - RECORD_ANCHOR_AFTER)]


def test_a_drawn_job_under_verification_keeps_its_anchor(r: redis.Redis) -> None:
    """A drawn job is watched (moved from the submitted set to the set under verification) as soon
    as its draw is read, long before its challenge deadline, and stays Submitted until an auditor
    opens its case, whose draw reads the same anchor: the anchor is still recorded (ci61 caught it
    left out when the stack test's job happened to be drawn)."""
    from executor import verification

    chain, index = _Chain(head=1_000), _Index()
    _job(chain, index, 1, 1_000 - RECORD_ANCHOR_AFTER)
    rt = _runtime(r, chain, index)
    verification.watch(rt, 1, "drawn for audit")
    assert r.zscore(rt.xkeys.submitted, "1") is None and 1 in verification.watched(rt)
    assert beat.record_anchors(rt) == 1
    assert chain.sent == [1_000 - RECORD_ANCHOR_AFTER]


def test_a_record_sent_before_a_crash_is_waited_for_not_sent_again(r: redis.Redis) -> None:
    chain, index = _Chain(head=500), _Index()
    _job(chain, index, 1, 500 - RECORD_ANCHOR_AFTER)
    rt = _runtime(r, chain, index)
    chain.hold = True
    with pytest.raises(ConnectionError):
        beat.record_anchors(rt)
    chain.hold = False
    assert beat.record_anchors(rt) == 0  # its transaction is still in the pool
    assert chain.sent == [500 - RECORD_ANCHOR_AFTER]
    chain.pool.clear()  # dropped: sent anew
    assert beat.record_anchors(rt) == 1
    assert chain.sent == [500 - RECORD_ANCHOR_AFTER] * 2


def test_nothing_to_do_is_cheap(r: redis.Redis) -> None:
    chain, index = _Chain(head=500), _Index()
    calls: list[str] = []

    def head() -> int:
        calls.append("head")
        return 500

    chain.block_number = head  # type: ignore[method-assign]
    rt = _runtime(r, chain, index)
    assert beat.record_anchors(rt) == 0 and calls == []  # no submitted job: no chain read
    _job(chain, index, 1, 499)
    rt = _runtime(r, chain, index, randomness="mock")
    assert beat.record_anchors(rt) == 0 and calls == []  # MockRandomness never expires
    rt = _runtime(r, chain, index)
    assert beat.record_anchors(rt) == 0 and calls == ["head"] and chain.sent == []


# ------------------------------------------------------------------------------------ HeaderRandomness


def test_header_source_proves_each_anchor_once_from_its_first_block(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """With randomness = "header" nobody can read a draw before its anchor's header is proved: the
    executor proves it as soon as the anchor is mined (PROVE_ANCHOR_AFTER), each anchor once, until
    RECORD_ANCHOR_UNTIL, with the header the gateway fetched and checked."""
    fetched: list[int] = []

    def header(rpc: Any, n: int) -> bytes:
        fetched.append(n)
        return b"header %d" % n

    monkeypatch.setattr(anchors, "block_header", header)
    chain, index = _Chain(head=1_000), _Index()
    _job(chain, index, 1, 1_000)  # the head itself: not mined past yet
    _job(chain, index, 2, 1_000 - PROVE_ANCHOR_AFTER)
    _job(chain, index, 3, 1_000 - PROVE_ANCHOR_AFTER)  # same anchor: one proof
    _job(chain, index, 4, 1_000 - RECORD_ANCHOR_UNTIL - 1)  # too old to get in
    _job(chain, index, 5, 1_000 - 50, audit_bps=0)  # never drawn
    rt = _runtime(r, chain, index, randomness="header")
    assert beat.record_anchors(rt) == 1
    assert chain.sent == [1_000 - PROVE_ANCHOR_AFTER] and fetched == [1_000 - PROVE_ANCHOR_AFTER]
    assert beat.record_anchors(rt) == 0
    chain.head += 1
    assert beat.record_anchors(rt) == 1
    assert chain.sent == [999, 1_000]


def test_header_source_retries_a_header_it_could_not_check(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A header whose local hash check fails (HeaderError) is not sent, nor marked done: next beat."""
    from depin.chain.header import HeaderError

    def broken(rpc: Any, n: int) -> bytes:
        raise HeaderError(f"block {n}: the encoded header hashes to something else")

    monkeypatch.setattr(anchors, "block_header", broken)
    chain, index = _Chain(head=1_000), _Index()
    _job(chain, index, 1, 990)
    rt = _runtime(r, chain, index, randomness="header")
    assert beat.record_anchors(rt) == 0 and chain.sent == []
    assert r.hget(rt.xkeys.anchors, "990") is None
    monkeypatch.setattr(anchors, "block_header", lambda rpc, n: b"header %d" % n)
    assert beat.record_anchors(rt) == 1 and chain.sent == [990]


def test_a_verifier_proves_an_anchor_its_provider_left_unproved(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """executor.verifier.consider's fallback (anchors.prove_if_due with FALLBACK_AFTER): nothing
    before that age, nothing with block hashes, once after it."""
    monkeypatch.setattr(anchors, "block_header", lambda rpc, n: b"header %d" % n)
    chain, index = _Chain(head=1_000), _Index()
    rt = _runtime(r, chain, index, randomness="header")
    young = 1_000 - anchors.FALLBACK_AFTER + 1
    assert anchors.prove_if_due(rt, young, lambda: [7], after=anchors.FALLBACK_AFTER) == 0
    assert anchors.prove_if_due(_runtime(r, chain, index), young - 1, lambda: [7], after=anchors.FALLBACK_AFTER) == 0
    assert chain.sent == []
    assert anchors.prove_if_due(rt, young - 1, lambda: [7], after=anchors.FALLBACK_AFTER) == 1
    assert anchors.prove_if_due(rt, young - 1, lambda: [7], after=anchors.FALLBACK_AFTER) == 0  # done
    assert chain.sent == [young - 1]


@pytest.mark.parametrize(
    ("randomness", "failure", "marked"),
    [
        ("blockhash", "BlockhashRandomness.RandomnessExpired(blockNumber=936)", True),  # too late: drawn
        ("header", "HeaderRandomness.RandomnessExpired(blockNumber=936)", True),
        ("header", "HeaderRandomness.HeaderMismatch()", False),  # reorged since the fetch: next beat
        ("blockhash", "dropped", True),  # done by somebody else meanwhile, or expired
        ("header", "dropped", True),
    ],
)
def test_a_failed_anchor_transaction_is_done_unless_worth_retrying(
    r: redis.Redis, monkeypatch: pytest.MonkeyPatch, randomness: str, failure: str, marked: bool
) -> None:
    """Both anchor transactions (a record, a proof: executor.anchors.send_anchor_tx) mark the anchor
    done when it reverts or is dropped, except a header proof the chain rejects as not the anchor's."""
    from depin.transactions import TxDropped, TxReverted

    def fail(*args: Any, **kwargs: Any) -> Any:
        if failure == "dropped":
            raise TxDropped("nonce taken by another transaction")
        raise TxReverted("anchor", failure)

    monkeypatch.setattr(anchors, "block_header", lambda rpc, n: b"header %d" % n)
    chain, index = _Chain(head=1_000), _Index()
    _job(chain, index, 1, 936)
    chain.tx.wait = fail
    rt = _runtime(r, chain, index, randomness=randomness)
    assert beat.record_anchors(rt) == 0 and chain.sent == [936]
    assert r.hget(rt.xkeys.anchors, "936") == ("recorded" if marked else "pending:0x" + f"{936:064x}")
