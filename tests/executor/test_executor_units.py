"""Executor pieces without the chain: the claim policy, leases on a real redis-server, the Celery
settings' ordering, the broker URL and the redelivery cap."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from depin.commitment import canary_digest, commitment, seat_commitment
from depin.config import ConfigError, DepinConfig, ExecutorConfig, PolicyConfig, parse_roles
from depin.keys import ExecKeys
from depin.market import JobStatus
from depin.spec import parse_spec
from depin.transactions import TxReverted
from executor import celery as celery_module
from executor import jobtask, provider, queue, tasks
from executor.canary import CanaryJournal
from executor.celery import beat_schedule
from executor.lease import Lease
from executor.policy import JobTermsView, Policy
from executor.results import SubmissionJournal
from executor.runtime import ACTIVE_STATES, TERMINAL_STATES, Runtime, broker_url_for
from executor.verifier import AuditJournal, open_to_us, reclaimable
from executor.worker import components_for
from tests.executor.stack import wait_for
from tests.indexer.services import RedisServer

DIGEST = "sha256:" + "ab" * 32
TOKEN = 10**18


def _spec(**resources: object) -> object:
    res = {"cpus": 1, "memory_mb": 64, "max_runtime": 10, "output_mb": 1, **resources}
    return parse_spec({"v": 1, "image": f"depin/busybox@{DIGEST}", "command": ["true"], "resources": res})


TERMS = JobTermsView(reward=TOKEN, max_runtime=60, cpu_seconds=10)


@pytest.fixture
def r(redis_server: RedisServer) -> redis.Redis:
    client = redis_server.client(3)
    client.flushdb()
    return client


# ------------------------------------------------------------------------------------ policy


def test_policy_accepts_a_job_within_every_limit() -> None:
    assert Policy(PolicyConfig(images=[DIGEST])).evaluate(_spec(), TERMS, active_jobs=0)


@pytest.mark.parametrize(
    ("resources", "terms", "policy", "reason"),
    [
        ({}, TERMS, {"images": ["sha256:" + "cd" * 32]}, "allowlist"),
        ({"cpus": 4}, TERMS, {}, "needs 4.0 CPUs"),
        ({"memory_mb": 2048}, TERMS, {}, "2048 MB of memory"),
        ({"max_runtime": 900}, JobTermsView(TOKEN, 1_000), {}, "runs up to 900 s"),
        ({"output_mb": 128}, TERMS, {}, "writes up to 128 MB"),
        ({"max_runtime": 58}, TERMS, {}, "submit window is 60 s"),
        ({}, JobTermsView(reward=TOKEN // 1000, max_runtime=60), {"min_reward_per_cpu_second": "0.001"}, "below"),
    ],
)
def test_policy_refuses_with_a_reason(resources: dict, terms: JobTermsView, policy: dict, reason: str) -> None:
    config = PolicyConfig(**{"images": [DIGEST], **policy})
    decision = Policy(config).evaluate(_spec(**resources), terms, active_jobs=0)
    assert not decision and not decision.defer
    assert reason in decision.reason


def test_policy_defers_when_full_and_asks_the_engine_without_an_allowlist() -> None:
    full = Policy(PolicyConfig(images=[DIGEST], max_concurrent_jobs=2)).evaluate(_spec(), TERMS, active_jobs=2)
    assert not full and full.defer
    asked: list[str] = []
    policy = Policy(PolicyConfig(images=[]), image_available=lambda image: asked.append(image) or False)
    decision = policy.evaluate(_spec(), TERMS, active_jobs=0)
    assert not decision and "not available locally" in decision.reason and asked == [f"depin/busybox@{DIGEST}"]


# ------------------------------------------------------------------------------------ leases


def test_lease_is_exclusive_renewed_and_released_only_by_its_holder(r: redis.Redis) -> None:
    first, second = Lease(r, "lease:1", ttl=3), Lease(r, "lease:1", ttl=3)
    assert first.acquire()
    assert not second.acquire()
    # The renewal thread resets the expiry: observe it doing so twice (the remaining time jumps up),
    # which a lease without renewal never shows.
    for _ in range(2):
        last = [r.pttl("lease:1")]

        def extended(last: list[int] = last) -> bool:
            now = r.pttl("lease:1")
            jumped, last[0] = now > last[0], now
            return jumped

        wait_for(extended, 30, "the renewal thread to extend the lease")
    assert not second.acquire() and first.holder() == first.token
    assert not second.release()  # not its lease
    assert first.release()
    assert second.acquire()
    second.release()


def test_a_dead_holders_lease_expires_and_the_late_holder_knows_it_lost(r: redis.Redis) -> None:
    dead = Lease(r, "lease:2", ttl=0.2)
    assert dead.acquire(renew=False)  # a killed worker renews nothing
    wait_for(lambda: not r.exists("lease:2"), 30, "the dead holder's lease to expire")
    successor = Lease(r, "lease:2", ttl=5)
    assert successor.acquire(renew=False)
    assert not dead.renew() and dead.lost
    assert not dead.release()  # never deletes its successor's lease
    assert successor.holder() == successor.token


def test_a_holder_takes_back_its_lease_after_it_expired_while_redis_did_not_answer(r: redis.Redis) -> None:
    """A Redis stall longer than the TTL expires the key on the server while its holder lives (its
    renewal waits on the stalled Redis). The holder's next renewal finds the key gone and takes it
    again with its own token, touching the job's record, so that a recovered duplicate cannot take
    the job; only another token makes it lost (and then it never takes the key back)."""
    r.hset("rec:1", mapping={"state": "running", "updated": "1.000"})
    holder = Lease(r, "lease:3", ttl=30, touch="rec:1")
    assert holder.acquire(renew=False)
    r.delete("lease:3")  # expired on the server during the stall
    assert holder.renew() and not holder.lost
    assert holder.holder() == holder.token and 0 < r.pttl("lease:3") <= 30_000
    assert float(r.hget("rec:1", "updated") or 0) > 1.0  # the live task's record is fresh again
    assert not Lease(r, "lease:3", ttl=30).acquire()  # a duplicate queued by recovery cannot take it
    other = Lease(r, "lease:4", ttl=30, touch="rec:2")  # a touch never creates a record
    assert other.acquire(renew=False) and other.renew() and not r.exists("rec:2")
    r.set("lease:3", "another-task")
    assert not holder.renew() and holder.lost
    assert r.get("lease:3") == "another-task"
    assert other.release()


# ------------------------------------------------------------------------------------ settings


def test_visibility_timeout_exceeds_the_hard_limit_which_exceeds_the_soft_limit() -> None:
    for max_runtime in (1, 60, 600, 86_400):
        config = DepinConfig(policy=PolicyConfig(max_runtime=max_runtime))
        soft, hard, visibility = celery_module.time_limits(config)
        assert visibility > hard > soft > max_runtime
        assert visibility > celery_module.CHAIN_HARD_LIMIT > celery_module.CHAIN_SOFT_LIMIT
    conf = celery_module.settings(DepinConfig(), broker_url="redis://x/1", key_prefix="p")
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"] and conf["worker_prefetch_multiplier"] == 1
    assert conf["broker_transport_options"]["visibility_timeout"] > conf["task_time_limit"] > conf["task_soft_time_limit"]
    assert {q.name for q in conf["task_queues"]} == {"compute", "chain"}
    assert all(route["queue"] in ("compute", "chain") for route in conf["task_routes"].values())


def test_import_does_no_work(tmp_path: Path) -> None:
    """Importing the tasks (and so the Celery app) reads no configuration, builds no runtime and
    opens no socket: DEPIN_CONFIG naming a missing file does not raise. The starters configure the
    app (executor.celery.configure_app); the task names and queues are the ones running executors use."""
    import os
    import subprocess
    import sys

    code = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise AssertionError('a socket was opened at import')\n"
        "socket.socket.connect = socket.socket.connect_ex = refuse\n"
        "import executor.tasks\n"
        "from executor import runtime\n"
        "from depin.keys import UNCONFIGURED_EXEC_PREFIX, broker_prefix\nfrom executor.celery import ROUTES, app\n"
        "assert runtime._runtime is None\n"
        "assert app.conf.broker_transport_options['global_keyprefix'] == broker_prefix(UNCONFIGURED_EXEC_PREFIX)\n"
        "names = {name for name in app.tasks if name.startswith('depin.')}\n"
        "assert names == set(ROUTES), names\n"
    )
    env = {**os.environ, "DEPIN_CONFIG": str(tmp_path / "missing.toml")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_broker_uses_the_next_database_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPIN_BROKER_URL", raising=False)
    assert broker_url_for("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/1"
    assert broker_url_for("redis://:pw@host:7000/4") == "redis://:pw@host:7000/5"
    assert broker_url_for("redis://host") == "redis://host/1"
    monkeypatch.setenv("DEPIN_BROKER_URL", "redis://other:1/9")
    assert broker_url_for("redis://127.0.0.1:6379/0") == "redis://other:1/9"


def test_a_job_record_takes_only_known_states(r: redis.Redis) -> None:
    """The real `Runtime.set_record` on a real Redis: a known state moves the job in or out of the
    active set; a misspelt one raises before anything is written (it would have dropped the job
    from the active set, so that recovery never looked at it again)."""
    rt = SimpleNamespace(state=r, xkeys=ExecKeys(31337, "0xmarket", "provider", "0xme"))
    Runtime.set_record(rt, 5, "claimed", claim_tx="0xabc")  # type: ignore[arg-type]
    assert r.zscore(rt.xkeys.active, "5") is not None
    with pytest.raises(ValueError, match="unknown job record state 'claimd'"):
        Runtime.set_record(rt, 5, "claimd")  # type: ignore[arg-type]
    assert r.hget(rt.xkeys.job(5), "state") == "claimed" and r.zscore(rt.xkeys.active, "5") is not None
    for state in TERMINAL_STATES:
        Runtime.set_record(rt, 5, state)  # type: ignore[arg-type]
        assert r.hget(rt.xkeys.job(5), "state") == state and r.zscore(rt.xkeys.active, "5") is None
    for state in ACTIVE_STATES:
        Runtime.set_record(rt, 6, state)  # type: ignore[arg-type]
        assert r.zscore(rt.xkeys.active, "6") is not None


# ------------------------------------------------------------------------------------ redelivery cap


class _Runtime(SimpleNamespace):
    roles = ("provider",)

    def record(self, job_id: int) -> dict[str, str]:
        return self.state.hgetall(self.xkeys.job(job_id))

    def set_record(self, job_id: int, state: str | None = None, **fields: object) -> None:
        values = {k: str(v) for k, v in fields.items()}
        if state:
            values["state"] = state
        self.state.hset(self.xkeys.job(job_id), mapping=values or {"updated": "0"})

    def refuse(self, job_id: int, reason: str) -> None:
        self.set_record(job_id, refused=reason[:300])


def test_a_job_that_keeps_killing_its_worker_is_given_up_loudly(r: redis.Redis, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    rt = _Runtime(state=r, xkeys=ExecKeys(31337, "0xmarket", "provider", "0xme"))
    monkeypatch.setattr(jobtask, "get_runtime", lambda: rt)
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(queue, "send", lambda name, job_id=None, **kw: sent.append((name, job_id)))
    # three deliveries died mid-run (counted, never cleared); the fourth gives the job up
    r.set(rt.xkeys.deliveries("depin.run", 7), celery_module.MAX_DELIVERIES)
    rt.set_record(7, "running")
    tasks.run(7)
    assert rt.record(7)["state"] == "abandoned" and "redelivery cap" in rt.record(7)["reason"]
    assert "redelivery cap" in rt.record(7)["refused"]  # never claimed again by this executor
    assert any(rec.levelname == "CRITICAL" and rec.getMessage() == "giving the job up" for rec in caplog.records)
    assert not r.exists(rt.xkeys.deliveries("depin.run", 7))
    # with its outcome recorded, giving up means submitting what is there
    r.set(rt.xkeys.deliveries("depin.run", 8), celery_module.MAX_DELIVERIES)
    rt.set_record(8, "outcome", kind="result")
    tasks.run(8)
    assert sent == [("depin.submit", 8)]


def test_a_run_that_crashes_is_abandoned_once_and_refused_not_rerun(r: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    """An unexpected exception from a run (a bug; output handling itself never raises for the
    job's doing) ends the task quietly: the record says abandoned and refused, no submission is
    queued, and nothing is left for recovery to re-run. `execute_job` is replaced by one that raises:
    there is no real input that crashes it any more."""
    rt = _Runtime(state=r, xkeys=ExecKeys(31337, "0xmarket", "provider", "0xme"), address="0xMe", config=None,
                  chain_now=lambda: 1_000, journal=SubmissionJournal(tmp_path / "journal"))
    rt.lease = lambda job_id: Lease(r, rt.xkeys.lease(job_id), 5)
    rt.job = lambda job_id: SimpleNamespace(provider="0xme", status=JobStatus.CLAIMED, deadline=2_000, spec_hash=b"h")
    monkeypatch.setattr(jobtask, "get_runtime", lambda: rt)
    monkeypatch.setattr(provider, "load_spec", lambda rt_, job_id, expected: _spec())
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(queue, "send", lambda name, job_id=None, **kw: sent.append((name, job_id)))

    def crash(*args: object, **kwargs: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(provider, "execute_job", crash)
    rt.set_record(11, "claimed")
    tasks.run(11)
    record = rt.record(11)
    assert record["state"] == "abandoned" and "RecursionError" in record["reason"], record
    assert "RecursionError" in record["refused"]
    assert sent == []
    assert not r.exists(rt.xkeys.lease(11))
    assert any(rec.levelname == "ERROR" and "run crashed" in rec.getMessage() for rec in caplog.records)


def test_a_run_past_its_soft_time_limit_is_retried_not_abandoned(r: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Celery's soft time limit (the runtime plus the inputs' and the overhead's budget) fired in a
    run whose engine did not answer for a minute under load: the catch-all abandoned the job, which
    then timed out in the provider's hands (seen under load, stop 40). It is the provider's own
    fault, retried (ProviderFault) while the deadline allows; the record is neither abandoned nor
    refused. `execute_job` raises what Celery raises in it: no worker's limit can be made to fire at
    a chosen instant here."""
    from celery.exceptions import SoftTimeLimitExceeded

    from executor.execute import ProviderFault

    rt = _Runtime(state=r, xkeys=ExecKeys(31337, "0xmarket", "provider", "0xme"), address="0xMe", config=None,
                  chain_now=lambda: 1_000, journal=SubmissionJournal(tmp_path / "journal"))
    rt.lease = lambda job_id: Lease(r, rt.xkeys.lease(job_id), 5)
    rt.job = lambda job_id: SimpleNamespace(provider="0xme", status=JobStatus.CLAIMED, deadline=2_000, spec_hash=b"h")
    monkeypatch.setattr(jobtask, "get_runtime", lambda: rt)
    monkeypatch.setattr(provider, "load_spec", lambda rt_, job_id, expected: _spec())
    monkeypatch.setattr(queue, "send", lambda name, job_id=None, **kw: None)

    def too_slow(*args: object, **kwargs: object) -> None:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(provider, "execute_job", too_slow)
    rt.set_record(12, "claimed")
    with pytest.raises(ProviderFault, match="soft time limit"):  # called directly, Celery's retry re-raises it
        tasks.run(12)
    record = rt.record(12)
    assert record["state"] == "running" and "refused" not in record, record
    assert not r.exists(rt.xkeys.lease(12))


def test_a_finished_delivery_clears_its_count(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = _Runtime(state=r, xkeys=ExecKeys(31337, "0xmarket", "provider", "0xme"), lease_ttl=1)
    rt.lease = lambda job_id: Lease(r, rt.xkeys.lease(job_id), 1)
    monkeypatch.setattr(jobtask, "get_runtime", lambda: rt)
    rt.set_record(9, "submitted")  # nothing to do: the run returns at once
    tasks.run(9)
    assert not r.exists(rt.xkeys.deliveries("depin.run", 9))
    assert not r.exists(rt.xkeys.lease(9))


# ------------------------------------------------------------------------------------ reorged-out claims


CHAIN_NOW = 1_000_000  # the pending block's timestamp the scripted chains answer


def _onchain(job_id: int, **changes: Any) -> Any:
    from dataclasses import replace

    from depin.client import OnchainJob
    from depin.market import VerifyMode

    job = OnchainJob(job_id, b"\x01" * 32, b"\x00" * 32, "0xRequester", TOKEN, 0, 0, JobStatus.OPEN, 0, VerifyMode.NONE, None,
                     CHAIN_NOW + 3_600, 0, 0, 60, 8, 400, 0, 0, 0)
    return replace(job, **changes)


def test_a_reorged_out_claim_is_wanted_again_only_for_the_job_we_approved(r: redis.Redis) -> None:
    """`claim_wanted`, the signer's still_needed check of a claim (``claimJob`` names the job by id
    only): the job must still be Open with the spec, requester and terms read when the claim was
    sent, and the spec the record approved, and the record must still want it. One job of a batch
    that fails the check fails the batch."""
    rt = _Runtime(state=r, xkeys=ExecKeys(31337, "0xmarket", "provider", "0xme"), address="0xMe")
    chain: dict[int, Any] = {}
    rt.job = lambda job_id: chain[job_id]
    approved = "0x" + (b"\x01" * 32).hex()
    sent = {3: _onchain(3), 4: _onchain(4)}
    for job_id, job in sent.items():
        chain[job_id] = job
        rt.set_record(job_id, "claiming", spec_hash=approved)
    both = provider.claim_wanted(rt, list(sent.values()))
    assert both() and provider.claim_wanted(rt, [sent[3]])()
    for state in ("claimed", "running", "outcome", "submitted", "finalized"):  # a claim our work goes on from
        rt.set_record(4, state)
        assert both(), state
    changes: list[tuple[str, Callable[[], None]]] = [
        ("another spec", lambda: chain.__setitem__(4, _onchain(4, spec_hash=b"\x02" * 32))),
        ("another requester", lambda: chain.__setitem__(4, _onchain(4, requester="0xOther"))),
        ("another reward", lambda: chain.__setitem__(4, _onchain(4, reward=TOKEN // 2))),
        ("claimed already", lambda: chain.__setitem__(4, _onchain(4, status=JobStatus.CLAIMED, provider="0xme"))),
        ("gone", lambda: chain.__setitem__(4, _onchain(4, status=JobStatus.NONE))),
        ("record lost", lambda: rt.set_record(4, "lost")),
        ("record skipped", lambda: rt.set_record(4, "skipped")),
        ("refused", lambda: rt.refuse(4, "abandoned")),
        ("record gone", lambda: r.delete(rt.xkeys.job(4))),
        ("another approved spec", lambda: rt.set_record(4, spec_hash="0x" + "02" * 32)),
        ("other approved terms", lambda: rt.set_record(4, terms=json.dumps({"reward": str(TOKEN * 2), "verify_mode": "none"}))),
    ]
    for what, change in changes:
        chain[4] = sent[4]
        r.delete(rt.xkeys.job(4))
        rt.set_record(4, "claimed", spec_hash=approved, terms=json.dumps({"requester": "0xrequester", "reward": str(TOKEN), "verify_mode": "none"}))
        assert both(), what
        change()
        assert not both(), what  # the batch is not sent again: its nonce gets the no-op
        assert provider.claim_wanted(rt, [sent[3]])(), what  # a claim of job 3 alone would be


def test_a_claim_the_signer_dropped_hands_each_job_back_or_carries_it_on(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """`claim_dropped` (the waiting task got TxDropped: the claim's nonce went to the no-op): a job
    Claimed by us (by another transaction of ours) is carried on; an Open one whose record still says
    claiming is recorded lost and deferred (the dispatcher judges afresh whatever job the id holds
    now); a record that moved on is left alone. No record is left ``claiming``."""
    rt = _Runtime(state=r, xkeys=ExecKeys(31337, "0xmarket", "provider", "0xme"), address="0xMe")
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(queue, "send", lambda name, job_id=None, **kw: sent.append((name, job_id)))
    chain = {1: _onchain(1, status=JobStatus.CLAIMED, provider="0xme"), 2: _onchain(2), 3: _onchain(3, spec_hash=b"\x02" * 32), 4: _onchain(4)}
    rt.job = lambda job_id: chain[job_id]
    for job_id in (1, 2, 3):
        rt.set_record(job_id, "claiming")
    rt.set_record(4, "skipped")
    provider.claim_dropped(rt, [1, 2, 3, 4])
    assert rt.record(1)["state"] == "claimed" and sent == [("depin.run", 1)]
    assert rt.record(2)["state"] == "lost" and rt.record(3)["state"] == "lost" and rt.record(4)["state"] == "skipped"
    assert set(r.zrange(rt.xkeys.deferred, 0, -1)) == {"2", "3"}


class _ClaimChain(SimpleNamespace):
    """The chain as `claim_jobs` sees it (jobs by id) and a client whose claims succeed, or revert
    after `race` changed the chain (the competitor's claim mined first, a reorg, a refusal)."""

    def __init__(self, rt: Any, jobs: dict[int, Any], races: list[Callable[[], None] | None]) -> None:
        super().__init__(rt=rt, jobs=jobs, races=races, sent=[], tx=None)
        rt.job = lambda job_id: self.jobs[job_id]
        rt.chain_now = lambda: CHAIN_NOW
        rt.client = self

    def _send(self, ids: list[int]) -> SimpleNamespace:
        race = self.races.pop(0) if self.races else None
        if race is not None:
            race()
            raise TxReverted("claimJobs" if len(ids) > 1 else "claimJob", "JobMarket.WrongStatus()", "0xreverted")
        for job_id in ids:
            assert self.jobs[job_id].status == JobStatus.OPEN, f"claimed a job that is not Open: {job_id}"
            self.jobs[job_id] = _onchain(job_id, spec_hash=self.jobs[job_id].spec_hash, status=JobStatus.CLAIMED, provider="0xme")
        return SimpleNamespace(tx_hash="0xmined")

    def claim(self, job_id: int, *, still_needed: Any = None) -> SimpleNamespace:
        self.sent.append(("claimJob", [job_id]))
        return self._send([job_id])

    def claim_many(self, job_ids: list[int], *, still_needed: Any = None) -> SimpleNamespace:
        self.sent.append(("claimJobs", list(job_ids)))
        return self._send(list(job_ids))


def test_a_reverted_batch_claim_claims_the_jobs_still_approved_in_one_more_batch(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """claimJobs is all or nothing. After a batch reverts, each of its jobs is read again: one a
    competitor took is recorded lost, one whose id a reorg gave to another post (other spec, or
    same spec and other terms) or that was refused meanwhile is recorded lost and never claimed,
    and the rest go in ONE new batch; each claimed job is recorded claimed, counted and queued."""
    rt = _Runtime(state=r, xkeys=ExecKeys(31337, "0xmarket", "provider", "0xme"), address="0xMe")
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(queue, "send", lambda name, job_id=None, **kw: sent.append((name, job_id)))
    approved = "0x" + (b"\x01" * 32).hex()
    jobs = {j: _onchain(j) for j in range(1, 7)}
    for job_id in jobs:
        rt.set_record(job_id, "claiming", spec_hash=approved)

    def race() -> None:
        jobs[2] = _onchain(2, status=JobStatus.CLAIMED, provider="0xCompetitor")
        jobs[3] = _onchain(3, spec_hash=b"\x02" * 32)  # a reorg gave id 3 to another post
        jobs[4] = _onchain(4, reward=TOKEN // 2)  # same spec, other terms: another post too
        rt.refuse(5, "refused meanwhile")

    chain = _ClaimChain(rt, jobs, [race])
    provider.claim_jobs(rt, list(jobs))
    assert chain.sent == [("claimJobs", [1, 2, 3, 4, 5, 6]), ("claimJobs", [1, 6])]
    for job_id in (1, 6):
        assert rt.record(job_id)["state"] == "claimed" and float(rt.record(job_id)["claimed_at"]) > 0
    for job_id in (2, 3, 4, 5):
        assert rt.record(job_id)["state"] == "lost", job_id
    assert sent == [("depin.run", 1), ("depin.run", 6)]
    assert float(r.hget(rt.xkeys.metrics, "jobs_claimed") or 0) == 2
    assert jobs[3].status == JobStatus.OPEN and jobs[4].status == JobStatus.OPEN  # never claimed
    assert "refused" in rt.record(5)  # the refusal outlives the lost record


def test_a_batch_claim_that_keeps_reverting_ends_one_by_one(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """At most two batches: a second batch that reverts too is followed by one claimJob per job
    left. A batch that reverts with nothing changed (every job still Open and approved: the stake,
    say, does not cover the sum) is not sent again: one by one at once."""
    rt = _Runtime(state=r, xkeys=ExecKeys(31337, "0xmarket", "provider", "0xme"), address="0xMe")
    monkeypatch.setattr(queue, "send", lambda name, job_id=None, **kw: None)
    jobs = {j: _onchain(j) for j in range(1, 5)}
    for job_id in jobs:
        rt.set_record(job_id, "claiming")

    def take(job_id: int) -> Callable[[], None]:
        return lambda: jobs.__setitem__(job_id, _onchain(job_id, status=JobStatus.CLAIMED, provider="0xCompetitor"))

    chain = _ClaimChain(rt, jobs, [take(1), take(2)])
    provider.claim_jobs(rt, list(jobs))
    assert chain.sent == [("claimJobs", [1, 2, 3, 4]), ("claimJobs", [2, 3, 4]), ("claimJob", [3]), ("claimJob", [4])]
    assert [rt.record(j)["state"] for j in jobs] == ["lost", "lost", "claimed", "claimed"]

    jobs = {j: _onchain(j) for j in range(11, 14)}
    for job_id in jobs:
        rt.set_record(job_id, "claiming")
    chain = _ClaimChain(rt, jobs, [lambda: None])
    provider.claim_jobs(rt, list(jobs))
    assert chain.sent == [("claimJobs", [11, 12, 13]), ("claimJob", [11]), ("claimJob", [12]), ("claimJob", [13])]
    assert all(rt.record(j)["state"] == "claimed" for j in jobs)


def test_a_job_close_to_its_claim_deadline_is_claimed_alone(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch is estimated at the pending block's timestamp and mined later: one job whose claim
    deadline falls in between reverts the whole claimJobs where the estimate passed (a geth-style
    node). A job less than BATCH_DEADLINE_MARGIN seconds from its claim deadline is claimed on its
    own, in the first pass and after a reverted batch alike; the rest still go in one batch."""
    rt = _Runtime(state=r, xkeys=ExecKeys(31337, "0xmarket", "provider", "0xme"), address="0xMe")
    monkeypatch.setattr(queue, "send", lambda name, job_id=None, **kw: None)
    near = CHAIN_NOW + 10  # ten seconds to go: not late, but inside the margin
    assert provider.BATCH_DEADLINE_MARGIN > 10
    jobs = {j: _onchain(j) for j in range(1, 6)}
    jobs[3] = _onchain(3, claim_deadline=near)
    for job_id in jobs:
        rt.set_record(job_id, "claiming")

    def race() -> None:  # a competitor takes job 5, and job 4 comes close to its deadline meanwhile
        jobs[5] = _onchain(5, status=JobStatus.CLAIMED, provider="0xCompetitor")
        jobs[4] = _onchain(4, claim_deadline=near)

    chain = _ClaimChain(rt, jobs, [None, race])
    provider.claim_jobs(rt, list(jobs))
    assert chain.sent == [("claimJob", [3]), ("claimJobs", [1, 2, 4, 5]), ("claimJob", [4]), ("claimJobs", [1, 2])]
    assert [rt.record(j)["state"] for j in jobs] == ["claimed", "claimed", "claimed", "claimed", "lost"]


def test_a_result_close_to_its_submit_deadline_is_submitted_alone(r: redis.Redis, tmp_path: Path) -> None:
    """The same for submitResults: `ready_results` (the results a submit task takes along in its
    batch) leaves out a job less than BATCH_DEADLINE_MARGIN seconds from its submit deadline (its
    own task submits it alone), and takes none when the task's own job is that close."""
    from executor.results import ResultStore, SubmissionJournal

    me = "0x" + "11" * 20
    rt = _Runtime(state=r, xkeys=ExecKeys(31337, "0xmarket", "provider", me), address=me, chain_now=lambda: CHAIN_NOW,
                  journal=SubmissionJournal(tmp_path / "journal"), store=ResultStore(tmp_path / "results", "http://127.0.0.1:8700"))
    rt.lease = lambda job_id: Lease(r, rt.xkeys.lease(job_id), 30, touch=rt.xkeys.job(job_id))
    far, near = CHAIN_NOW + 600, CHAIN_NOW + 10
    chain = {j: _onchain(j, status=JobStatus.CLAIMED, provider=me, deadline=near if j == 3 else far) for j in range(1, 5)}
    rt.job = lambda job_id: chain[job_id]
    for job_id in chain:
        name = f"{job_id:02x}" * 32
        (tmp_path / "results" / name[:2]).mkdir()
        (tmp_path / "results" / name[:2] / f"{name}.tar").write_bytes(b"archive")
        rt.set_record(job_id, "outcome", kind="result", digest="0x" + name, name=name)
        r.zadd(rt.xkeys.active, {str(job_id): job_id})
    taken = provider.ready_results(rt, 1, far)
    assert sorted(sub.job_id for sub, _ in taken) == [2, 4]
    for _, lease in taken:
        lease.release()
    assert provider.ready_results(rt, 1, near) == []


def test_a_reorged_out_submission_is_wanted_again_only_for_the_spec_it_belongs_to(r: redis.Redis) -> None:
    rt = _Runtime(state=r, xkeys=ExecKeys(31337, "0xmarket", "provider", "0xme"), address="0xMe")
    chain = {5: _onchain(5, status=JobStatus.CLAIMED, provider="0xme")}
    rt.job = lambda job_id: chain[job_id]
    assert provider.submission_needed(rt, 5, "0x" + "01" * 32) and provider.submission_needed(rt, 5)
    assert not provider.submission_needed(rt, 5, "0x" + "02" * 32)
    chain[5] = _onchain(5)
    assert not provider.submission_needed(rt, 5, "0x" + "01" * 32)


def test_a_reorged_out_canary_claim_is_wanted_again_only_for_the_canarys_own_job(r: redis.Redis) -> None:
    """The canary's claim names the job by id only too: after a reorg gave the id to somebody else's
    post, the signer must not send it again (the canary would commit garbage to a stranger's job)."""
    from executor import canary

    rt = SimpleNamespace(state=r, xkeys=ExecKeys(31337, "0xmarket", "canary", "0xme"), address="0xMe",
                         config=SimpleNamespace(canary=SimpleNamespace(requester=None)), client=SimpleNamespace(address="0xMe"))
    chain = {7: _onchain(7, requester="0xme")}
    rt.job = lambda job_id: chain[job_id]
    canary.set_record(rt, 7, "posted")  # type: ignore[arg-type]
    wanted = canary.claim_wanted(rt, 7)  # type: ignore[arg-type]
    assert wanted()
    chain[7] = _onchain(7, requester="0xStranger")
    assert not wanted()
    chain[7] = _onchain(7, requester="0xme", status=JobStatus.CLAIMED, provider="0xme")
    assert not wanted()
    chain[7] = _onchain(7, requester="0xme")
    canary.set_record(rt, 7, "done")  # type: ignore[arg-type]
    assert not wanted()


# ------------------------------------------------------------------------------------ beat


def test_finalize_due_reaches_past_200(redis_server: RedisServer) -> None:
    """The beat finalizes from the index's due set, earliest challenge deadline first, whatever the
    ids: with 600 submitted jobs of which only ids above 200 are past their window, ours among them
    (job 550) is finalized; another provider's past-due jobs and our jobs still in their window are not."""
    from depin.keys import Keys
    from executor import beat
    from indexer.query import IndexerReader

    me, other = "0x90F79bf6EB2c4f870365E785982E1f101E93b906", "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
    index, state = redis_server.client(6), redis_server.client(7)
    index.flushdb()
    state.flushdb()
    keys = Keys(31337, "0x" + "22" * 20)
    now = 1_800_000_000
    deadline = {j: now + 1_000 + j if j <= 200 else now - j for j in range(1, 601)}
    holder = {j: me if j in (150, 550) else other for j in deadline}
    pipe = index.pipeline()
    for j, d in deadline.items():
        pipe.hset(keys.job(j), mapping={"id": str(j), "status": "Submitted", "deadline": str(d), "provider": holder[j]})
        pipe.zadd(keys.due("Submitted"), {str(j): d})
    pipe.execute()
    finalized: list[list[int]] = []
    client = SimpleNamespace(finalize_many=lambda ids: finalized.append(list(ids)) or SimpleNamespace(tx_hash="0xt"),
                             finalized_count=lambda receipt: len(finalized[-1]),
                             contracts=SimpleNamespace(job_market=SimpleNamespace(is_drawn=lambda j: j)), read=lambda j: False)
    rt = _Runtime(state=state, xkeys=ExecKeys(31337, "0x" + "22" * 20, "provider", me), role="provider", address=me,
                  reader=IndexerReader(index, keys), client=client, chain_now=lambda: now,
                  job=lambda j: SimpleNamespace(status=JobStatus.SUBMITTED, deadline=deadline[j]))
    assert beat.finalize_due_jobs(rt) == 1
    assert finalized == [[550]]


def test_drawn_jobs_are_never_finalized_and_move_to_the_court(redis_server: RedisServer) -> None:
    """The beat finalizes only jobs `isDrawn` says were not drawn: a drawn job, and one whose
    `isDrawn` reverts for good (treated as drawn), leave the set to finalize for the set under
    verification and are not looked at again; a job whose anchor is not readable yet waits."""
    from depin.transactions import TxReverted
    from executor import beat, verification

    me = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
    state = redis_server.client(8)
    state.flushdb()
    now = 1_800_000_000
    xkeys = ExecKeys(31337, "0x" + "22" * 20, "provider", me)
    for j in (1, 2, 3, 4):
        state.zadd(xkeys.submitted, {str(j): now - 10})
    asked: list[int] = []

    def is_drawn(j: int) -> bool:
        asked.append(j)
        if j == 3:
            raise TxReverted("JobMarket.isDrawn", "IRandomness.RandomnessNotReady(blockNumber=9, current=9)")
        if j == 4:
            raise TxReverted("JobMarket.isDrawn", "IRandomness.RandomnessExpired(blockNumber=9)")
        return j == 2

    finalized: list[list[int]] = []
    client = SimpleNamespace(finalize_many=lambda ids: finalized.append(list(ids)) or SimpleNamespace(tx_hash="0xt"),
                             finalized_count=lambda receipt: len(finalized[-1]),
                             contracts=SimpleNamespace(job_market=SimpleNamespace(is_drawn=lambda j: j)), read=is_drawn)
    reader = SimpleNamespace(due_jobs=lambda *a, **k: [], jobs_fields=lambda ids, fields: [{} for _ in ids])
    rt = _Runtime(state=state, xkeys=xkeys, role="provider", address=me, reader=reader, client=client, chain_now=lambda: now,
                  job=lambda j: SimpleNamespace(status=JobStatus.SUBMITTED, deadline=now - 10))
    assert beat.finalize_due_jobs(rt) == 1
    assert finalized == [[1]]
    assert verification.watched(rt) == {2, 4}
    asked.clear()
    beat.finalize_due_jobs(rt)
    assert 2 not in asked and 4 not in asked and 3 in asked  # drawn jobs are never asked again


class _RecordingRuntime(_Runtime):
    """_Runtime with the real record writes (Runtime.set_record: `updated`, the active set)."""

    set_record = Runtime.set_record
    lease_ttl = 0.5


def test_recovery_leaves_a_job_to_its_task_alive_behind_a_redis_stall(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two jobs `running` whose lease key is gone and whose record is older than
    DEPIN_RECOVER_AFTER, as a Redis stall longer than the lease TTL leaves them. Job 1's run is
    alive (its renewal waited on the stalled Redis), job 2's worker is dead. One look cannot tell
    them apart: recovery only marks them. The live holder's renewal then takes its lease back and
    touches its record, so job 1 is never re-queued (a second run would remove the live
    container and start the job again); job 2 is, once a second look a lease TTL later finds it
    unchanged."""
    from executor import beat

    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(queue, "send", lambda name, job_id=None, **kw: sent.append((name, job_id)))
    xkeys = ExecKeys(31337, "0xmarket", "provider", "0xme")
    rt = _RecordingRuntime(state=r, xkeys=xkeys, roles=())
    stale = f"{time.time() - beat.RECOVER_AFTER - 60:.3f}"
    for job in (1, 2):
        r.hset(xkeys.job(job), mapping={"state": "running", "updated": stale})
        r.zadd(xkeys.active, {str(job): 1})
    assert beat.recover_jobs(rt) == 0 and sent == []  # the first look only marks them
    alive = Lease(r, xkeys.lease(1), ttl=30, touch=xkeys.job(1))  # job 1's holder, its key expired
    assert alive.renew() and alive.holder() == alive.token  # Redis answers again: it takes its lease back
    wait_for(lambda: beat.recover_jobs(rt) == 1, 30, "the dead task's job to be recovered")
    assert sent == [("depin.run", 2)]
    r.delete(xkeys.lease(1))  # even with its lease gone again, its fresh record keeps job 1 from recovery
    assert beat.recover_jobs(rt) == 0 and sent == [("depin.run", 2)]


def test_recovery_after_the_clock_went_back(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record written before this machine's clock went back an hour reads as updated in the
    future: recovery counts its idle time from now instead of never recovering it for an hour."""
    from executor import beat

    monkeypatch.setattr(queue, "send", lambda name, job_id=None, **kw: None)
    xkeys = ExecKeys(31337, "0xmarket", "provider", "0xme")
    rt = _RecordingRuntime(state=r, xkeys=xkeys, roles=())
    r.hset(xkeys.job(3), mapping={"state": "outcome", "updated": f"{time.time() + 3600:.3f}"})
    r.zadd(xkeys.active, {"3": 1})
    beat.recover_jobs(rt)
    assert float(r.hget(xkeys.job(3), "updated") or 0) <= time.time() + 1  # from now, not in an hour


def test_a_drawn_job_is_watched_as_soon_as_its_draw_is_readable_and_isdrawn_is_asked_once(redis_server: RedisServer) -> None:
    """The finalize pass reads the draw of our submitted jobs once their anchor block's randomness
    is readable, long before their challenge deadline (a drawn job's case, and its reveal deadline,
    come minutes after the submission; the window may be days long): a drawn job is watched at
    once; an undrawn one's answer is kept, so `isDrawn` is asked once per job, the finalize at the
    deadline included. A job whose anchor is not readable yet waits; a verify-none job is never asked."""
    from executor import beat, verification

    me = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
    state = redis_server.client(10)
    state.flushdb()
    xkeys = ExecKeys(31337, "0x" + "22" * 20, "provider", me)
    now = 1_800_000_000
    deadline = now + 3_600
    anchor = {1: 100, 2: 100, 3: 200, 4: 100}
    bps = {1: 3_000, 2: 3_000, 3: 3_000, 4: 0}
    for j in anchor:
        state.hset(xkeys.job(j), mapping={"state": "submitted", "updated": "1"})
        state.zadd(xkeys.submitted, {str(j): deadline})
    indexed = {j: {"status": "Submitted", "anchorBlock": str(anchor[j]), "auditBps": str(bps[j]), "deadline": str(deadline)} for j in anchor}
    head, clock = [150], [now]
    asked: list[int] = []
    finalized: list[list[int]] = []
    client = SimpleNamespace(block_number=lambda: head[0], read=lambda j: asked.append(j) or j == 1,
                             contracts=SimpleNamespace(job_market=SimpleNamespace(is_drawn=lambda j: j)),
                             finalize_many=lambda ids: finalized.append(list(ids)) or SimpleNamespace(tx_hash="0xt"),
                             finalized_count=lambda receipt: len(finalized[-1]))
    reader = SimpleNamespace(due_jobs=lambda *a, **k: [], jobs_fields=lambda ids, fields: [indexed[int(j)] for j in ids])
    rt = _Runtime(state=state, xkeys=xkeys, role="provider", address=me, reader=reader, client=client, chain_now=lambda: clock[0],
                  job=lambda j: SimpleNamespace(status=JobStatus.SUBMITTED, deadline=deadline, anchor_block=anchor[j], audit_bps=bps[j]))
    assert beat.finalize_due_jobs(rt) == 0
    assert verification.watched(rt) == {1} and sorted(asked) == [1, 2] and finalized == []
    assert state.hget(xkeys.job(1), "state") == "verifying_court"
    beat.finalize_due_jobs(rt)
    assert sorted(asked) == [1, 2]  # the answers are kept
    head[0] = 250  # job 3's anchor randomness is readable now
    beat.finalize_due_jobs(rt)
    assert sorted(asked) == [1, 2, 3] and finalized == []
    clock[0] = deadline + 1  # the challenge window closes: finalized without asking again
    beat.finalize_due_jobs(rt)
    assert finalized == [[2, 3, 4]] and sorted(asked) == [1, 2, 3]


def test_every_disputed_job_of_ours_in_the_index_is_followed(redis_server: RedisServer) -> None:
    """Each follow pass watches every Disputed job of ours the index shows (a case opened before
    the challenge deadline by an early `startAudit` or a challenge; or the set under verification
    lost with a wiped executor database), never another provider's. A watched job the index shows
    Submitted before its challenge deadline (drawn, no case yet) costs no chain read."""
    from depin.keys import Keys
    from executor import beat, verification
    from indexer.query import IndexerReader

    me, other = "0x90F79bf6EB2c4f870365E785982E1f101E93b906", "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
    index, state = redis_server.client(11), redis_server.client(12)
    index.flushdb()
    state.flushdb()
    keys = Keys(31337, "0x" + "22" * 20)
    now = 1_800_000_000
    jobs = {7: ("Disputed", me), 8: ("Disputed", other), 9: ("Submitted", me)}
    for j, (status, holder) in jobs.items():
        index.hset(keys.job(j), mapping={"id": str(j), "status": status, "provider": holder, "deadline": str(now + 600)})
        index.zadd(keys.jobs_by_status(status), {str(j): j})
        index.zadd(keys.jobs_by_provider(holder), {str(j): j})
    xkeys = ExecKeys(31337, "0x" + "22" * 20, "provider", me)
    read: list[int] = []

    def job(j: int) -> SimpleNamespace:
        read.append(j)
        return SimpleNamespace(status=JobStatus.RESOLVED)  # the court settled it since: the pass closes it

    rt = _Runtime(state=state, xkeys=xkeys, role="provider", address=me, reader=IndexerReader(index, keys), chain_now=lambda: now, job=job)
    verification.watch(rt, 9, "drawn for audit")
    assert beat.follow_verifications(rt) == 0
    assert read == [7]  # job 9 waits for its case without a chain read; job 8 is not ours
    assert verification.watched(rt) == {9}  # job 7 was followed, found settled and closed


# ------------------------------------------------------------------------------------ dispatcher


@pytest.fixture
def dispatcher_env(redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real Runtime and Dispatcher on redis databases 4 (index) and 5 (executor state), no chain:
    the stream entries and job hashes are written here as the indexer would."""
    import json

    from depin.config import ExecutorConfig, KeyConfig, NetworkConfig, RedisConfig
    from executor.dispatcher import Dispatcher
    from executor.runtime import Runtime

    for db in (4, 5):
        redis_server.client(db).flushdb()
    deployment = tmp_path / "31337.json"
    deployment.write_text(json.dumps({"chainId": 31337, "network": "devnet", "deployBlock": 1, "deployer": "0x" + "11" * 20,
                                      "addresses": {"JobMarket": "0x" + "22" * 20, "ArbiterResolver": "0x" + "33" * 20}, "parameters": {}}))
    monkeypatch.setenv("DEPIN_BROKER_URL", redis_server.url(5))
    config = DepinConfig(network=NetworkConfig(rpc_url="http://127.0.0.1:9", deployment=deployment),
                         redis=RedisConfig(url=redis_server.url(4)), key=KeyConfig(dev_account=1),
                         executor=ExecutorConfig(role="provider"), policy=PolicyConfig(images=[DIGEST], max_concurrent_jobs=1))
    rt = Runtime(config)
    rt.chain_now = lambda: int(time.time())  # type: ignore[method-assign]
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(queue, "send", lambda name, job_id=None, **kw: sent.append((name, job_id)))
    return SimpleNamespace(rt=rt, dispatcher=Dispatcher(rt, block_ms=50), sent=sent)


def _post(env: SimpleNamespace, job_id: int, *, kind: str = "event", **job: str) -> None:
    import json

    from depin.spec import canonical_json, spec_hash

    raw = canonical_json({"v": 1, "image": f"depin/busybox@{DIGEST}", "command": ["true"],
                          "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 10}})
    fields = {"id": str(job_id), "status": "Open", "specValid": "1", "specJson": raw.decode(), "specHash": "0x" + spec_hash(raw).hex(),
              "reward": str(TOKEN), "maxRuntime": "60", "claimDeadline": str(int(time.time()) + 600), "cpuSeconds": "10", **job}
    rt = env.rt
    rt.index.hset(rt.index_keys.job(job_id), mapping=fields)
    rt.index.xadd(rt.index_keys.events, {"kind": kind, "event": "JobPosted", "block": "1", "blockHash": "0x1", "tx": "0x1",
                                         "logIndex": "0", "args": json.dumps({"jobId": str(job_id)})})


def _drain(env: SimpleNamespace, until: Callable[[], bool] = lambda: True, what: str = "") -> None:
    """Runs the dispatcher until every stream entry is handled and acknowledged and `until()` holds
    (a state the dispatcher reaches outside the stream, such as handing a freed slot to a deferred
    job)."""
    import threading

    stop = threading.Event()
    thread = threading.Thread(target=env.dispatcher.run, args=(stop,), daemon=True)
    thread.start()
    rt = env.rt

    def drained() -> bool:  # every entry delivered and acknowledged (acked after it was handled)
        if not rt.index.exists(rt.index_keys.events):
            return False
        groups = rt.index.xinfo_groups(rt.index_keys.events)
        newest = rt.index.xinfo_stream(rt.index_keys.events)["last-generated-id"]  # (a group's lag is unknown after a trim)
        return bool(groups) and groups[0]["pending"] == 0 and groups[0]["last-delivered-id"] == newest

    wait_for(lambda: drained() and until(), 60, f"the dispatcher to handle every stream entry{what}")
    stop.set()
    thread.join(5)


def test_dispatcher_claims_once_defers_when_full_and_hands_a_freed_slot_over(dispatcher_env: SimpleNamespace) -> None:
    env, rt = dispatcher_env, dispatcher_env.rt
    _post(env, 1)
    _post(env, 2)
    _post(env, 1)  # a duplicate delivery (at-least-once): no second claim
    _drain(env)
    assert env.sent == [("depin.claim", 1)]
    assert rt.record(1)["state"] == "claiming"
    assert rt.state.zrange(rt.xkeys.deferred, 0, -1) == ["2"]  # max_concurrent_jobs = 1
    rt.set_record(1, "submitted")  # the slot frees
    _drain(env, until=lambda: len(env.sent) >= 2, what=" and hand the freed slot over")
    assert env.sent == [("depin.claim", 1), ("depin.claim", 2)]


@pytest.mark.parametrize("error", ["node", "surprise"])
def test_a_deferred_job_whose_look_fails_stays_deferred_and_is_claimed_later(dispatcher_env: SimpleNamespace, error: str) -> None:
    """Review (stop 55): a deferred job was taken out of the deferred set before it was looked at
    again, so a node that did not answer then (run() waits it out) lost it for good, and any other
    error left run() and stopped the dispatcher. It is deferred again and claimed once the look works."""
    from depin.chain import RpcUnavailable

    env, rt = dispatcher_env, dispatcher_env.rt
    _post(env, 61)
    _post(env, 62)
    _drain(env)
    assert env.sent == [("depin.claim", 61)] and rt.state.zrange(rt.xkeys.deferred, 0, -1) == ["62"]
    fails = {"left": 1}

    def chain_now() -> int:
        if fails["left"]:
            fails["left"] -= 1
            raise RpcUnavailable("eth_getBlockByNumber", "connection refused") if error == "node" else ValueError("a surprise")
        return int(time.time())

    rt.chain_now = chain_now  # type: ignore[method-assign]
    rt.set_record(61, "submitted")  # the slot frees: job 62's look fails once
    _drain(env, until=lambda: ("depin.claim", 62) in env.sent, what=" and claim the deferred job once its look works")
    assert env.sent == [("depin.claim", 61), ("depin.claim", 62)] and fails["left"] == 0


def test_dispatcher_says_once_that_there_is_no_index_yet_and_once_that_it_came(
    dispatcher_env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the operator review (stop 45): an executor started before its indexer (or given
    another Redis URL or namespace) waited without a word. Its dispatcher says so once, looks again
    every INDEX_LOOK_INTERVAL, and says once that the index came."""
    from executor import dispatcher as module

    env, rt = dispatcher_env, dispatcher_env.rt
    monkeypatch.setattr(module, "INDEX_LOOK_INTERVAL", 0.0)
    with caplog.at_level(logging.INFO, logger="executor.dispatcher"):
        assert [env.dispatcher.look_for_index() for _ in range(3)] == [False] * 3
        rt.index.set(rt.index_keys.cursor, '{"number": 1, "hash": "0x1"}')  # the indexer's first commit
        assert [env.dispatcher.look_for_index() for _ in range(2)] == [True] * 2
    said = [r.getMessage() for r in caplog.records if r.name == "executor.dispatcher"]
    assert len([m for m in said if m.startswith("no index of this deployment in Redis yet")]) == 1, said
    assert said.count("index found") == 1, said


def test_dispatcher_rereads_entries_it_never_acknowledged(dispatcher_env: SimpleNamespace) -> None:
    env, rt = dispatcher_env, dispatcher_env.rt
    env.dispatcher.ensure_group()
    _post(env, 3)
    # a previous dispatcher read the entry and died before acknowledging it
    rt.index.xreadgroup(rt.xkeys.group, "dead-consumer", {rt.index_keys.events: ">"}, count=10)
    env.dispatcher.consumer = "dead-consumer"  # the same consumer name after a restart
    _drain(env)
    assert env.sent == [("depin.claim", 3)]


def test_dispatcher_never_claims_a_non_canonical_spec(dispatcher_env: SimpleNamespace) -> None:
    """Spec bytes that are not RFC 8785 canonical are never claimed: not when the index marks them
    (specValid 0), nor when an index that predates the rule calls them valid (the dispatcher checks
    the bytes itself); the canonical bytes of the same spec are claimed."""
    from depin.spec import canonical_json, spec_hash

    env, rt = dispatcher_env, dispatcher_env.rt
    canonical = canonical_json({"v": 1, "image": f"depin/busybox@{DIGEST}", "command": ["true"],
                                "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 10}})
    raw = canonical.replace(b'"cpus":1,', b'"cpus":1.0,')
    assert raw != canonical
    _post(env, 21, specValid="0", specError="spec bytes are not canonical JSON (RFC 8785 / JCS): ...",
          specJson="", spec="0x" + raw.hex(), specHash="0x" + spec_hash(raw).hex())
    _post(env, 22, specJson=raw.decode(), specHash="0x" + spec_hash(raw).hex())  # a stale index says valid
    _post(env, 23)  # the canonical bytes
    _drain(env)
    assert env.sent == [("depin.claim", 23)]
    assert rt.record(21)["state"] == rt.record(22)["state"] == "skipped"
    assert "not canonical JSON (RFC 8785" in rt.record(22)["reason"]


def test_a_claim_goes_only_to_the_post_the_policy_approved(dispatcher_env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the policy's approval and the claim, a reorg can give the job's id to another post
    with the same spec bytes but other terms (reward, submit window, collateral, requester, verify
    mode). ``claimJob`` names the id only: claim_job and claim_jobs' first pass claim only the post
    on the terms the dispatcher approved; any other is recorded lost, never claimed, and the
    dispatcher judges the post the id holds now afresh (claimed once its policy accepts it). A
    record written before terms were recorded (spec hash only) is still claimed on its spec hash."""
    from depin.market import VerifyMode

    env, rt = dispatcher_env, dispatcher_env.rt
    monkeypatch.setattr(rt.config.policy, "max_concurrent_jobs", 20)
    requester = "0x" + "aa" * 20
    terms = {"requester": requester, "collateralPct": "150", "verifyMode": "none"}
    for job_id in range(31, 38):
        _post(env, job_id, **terms)
    _drain(env)
    assert all(rt.record(j)["state"] == "claiming" for j in range(31, 38))
    spec = bytes.fromhex(rt.index.hget(rt.index_keys.job(31), "specHash")[2:])
    rt.state.delete(rt.xkeys.job(36))
    rt.set_record(36, "claiming", spec_hash="0x" + spec.hex())  # an older version's record: the spec hash only

    def post(job_id: int, **changes: Any) -> Any:
        return _onchain(job_id, **{"spec_hash": spec, "requester": requester, "collateral_pct": 150, **changes})

    jobs = {31: post(31), 32: post(32, reward=TOKEN // 2), 33: post(33, collateral_pct=400), 34: post(34, requester="0x" + "bb" * 20),
            35: post(35, verify_mode=VerifyMode.REEXEC), 36: post(36, reward=TOKEN // 2), 37: post(37, max_runtime=600)}
    assert jobs[31].verify_mode == VerifyMode.NONE
    chain = _ClaimChain(rt, jobs, [])
    env.sent.clear()
    provider.claim_job(rt, 32)
    provider.claim_jobs(rt, [31, 33, 34, 35, 36, 37])
    assert chain.sent == [("claimJobs", [31, 36])]
    assert rt.record(31)["state"] == rt.record(36)["state"] == "claimed"
    for job_id in (32, 33, 34, 35, 37):
        assert rt.record(job_id)["state"] == "lost" and "(approved)" in rt.record(job_id)["reason"], job_id
        assert jobs[job_id].status == JobStatus.OPEN, job_id  # never claimed
    assert set(rt.state.zrange(rt.xkeys.deferred, 0, -1)) == {"32", "33", "34", "35", "37"}
    # Looked at again only ANOTHER_POST_RETRY seconds later: the index (lagging the reorg) still
    # shows the approved posts, so looking at once re-approved each and the claim found it lost
    # again, every dispatcher pass (50 ms apart while anything is deferred), for as long as it lagged.
    env.sent.clear()
    for _ in range(3):
        env.dispatcher.reconsider_deferred()
        env.dispatcher.queue_claims()
    assert env.sent == [] and all(rt.record(j)["state"] == "lost" for j in (32, 33, 34, 35, 37))
    due_at = {j: score for j, score in rt.state.zrange(rt.xkeys.deferred, 0, -1, withscores=True)}
    assert all(score > time.time() + provider.ANOTHER_POST_RETRY - 5 for score in due_at.values()), due_at
    # the index catches up with the post job 32 holds now and its retry falls due: judged afresh,
    # approved on its own terms and claimed
    rt.index.hset(rt.index_keys.job(32), "reward", str(TOKEN // 2))
    rt.state.zrem(rt.xkeys.deferred, "33", "34", "35", "37")
    rt.state.zadd(rt.xkeys.deferred, {"32": time.time() - 1}, xx=True)
    env.dispatcher.reconsider_deferred()
    env.dispatcher.queue_claims()
    assert env.sent == [("depin.claim", 32)] and rt.record(32)["state"] == "claiming"
    provider.claim_job(rt, 32)
    assert chain.sent[-1] == ("claimJob", [32]) and rt.record(32)["state"] == "claimed"


def test_retractions_requeue_jobs_in_hand_and_forget_the_others(dispatcher_env: SimpleNamespace) -> None:
    env, rt = dispatcher_env, dispatcher_env.rt
    _post(env, 4, specValid="0", specError="not JSON")  # skipped
    _drain(env)
    assert rt.record(4)["state"] == "skipped"
    rt.set_record(5, "running")
    _post(env, 5, kind="retraction")
    _post(env, 4, kind="retraction")
    # the canonical chain posts a different, valid job 4
    _post(env, 4)
    _drain(env, until=lambda: rt.state.zrange(rt.xkeys.deferred, 0, -1) == ["4"], what=" and defer job 4")
    assert ("depin.run", 5) in env.sent  # re-checked against the chain by the run task
    assert rt.state.zrange(rt.xkeys.deferred, 0, -1) == ["4"]  # judged afresh (and deferred: job 5 holds the slot)
    rt.set_record(5, "lost")
    _drain(env, until=lambda: ("depin.claim", 4) in env.sent, what=" and hand the freed slot to job 4")
    assert ("depin.claim", 4) in env.sent
    assert rt.record(4)["state"] == "claiming"


def test_dispatcher_reclaims_failed_entry(dispatcher_env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry whose handling fails (a transient fault: the chain node was away) stays pending and
    is handled again by the running dispatcher once it has been idle, without a restart; an entry
    that keeps failing is dropped after MAX_ENTRY_FAILURES attempts."""
    from executor.dispatcher import MAX_ENTRY_FAILURES, Dispatcher

    env, rt = dispatcher_env, dispatcher_env.rt
    env.dispatcher = Dispatcher(rt, block_ms=50, reclaim_idle_ms=100)
    real_handle = env.dispatcher.handle
    attempts: dict[str, int] = {}

    def flaky(fields: dict[str, str]) -> None:
        job = json.loads(fields["args"])["jobId"]
        attempts[job] = attempts.get(job, 0) + 1
        if job == "31" and attempts[job] == 1:
            raise ConnectionRefusedError("the chain node is away")
        if job == "32":
            raise ValueError("a poisoned entry")
        real_handle(fields)

    monkeypatch.setattr(env.dispatcher, "handle", flaky)
    _post(env, 31)
    _post(env, 32)
    _drain(env, until=lambda: ("depin.claim", 31) in env.sent, what=" and retry the failed entry")
    assert attempts == {"31": 2, "32": MAX_ENTRY_FAILURES}
    assert env.sent == [("depin.claim", 31)]


def test_dispatcher_watches_our_job_when_the_court_opens_its_case(dispatcher_env: SimpleNamespace) -> None:
    """`VerificationStarted` (the court opened a case: an early `startAudit`, a challenge, whenever
    in the challenge window) puts a job of ours the index shows Disputed under verification at
    once; another provider's, and a replayed entry of a case settled since, are left alone."""
    from executor import verification

    env, rt = dispatcher_env, dispatcher_env.rt
    other = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
    for job_id, status, holder in ((41, "Disputed", rt.address), (42, "Disputed", other), (43, "Resolved", rt.address)):
        rt.index.hset(rt.index_keys.job(job_id), mapping={"id": str(job_id), "status": status, "provider": holder})
        rt.index.xadd(rt.index_keys.events, {"kind": "event", "event": "VerificationStarted", "block": "1", "blockHash": "0x1", "tx": "0x1",
                                             "logIndex": "0", "args": json.dumps({"jobId": str(job_id), "court": "0x" + "44" * 20})})
    _drain(env)
    assert verification.watched(rt) == {41}
    assert env.sent == []


def test_dispatcher_waits_for_the_chain_node_instead_of_dropping_a_job(dispatcher_env: SimpleNamespace) -> None:
    """The claim deadline is read from the chain's clock (`chain_now`), never this machine's: while
    the node does not answer, the entry stays pending and is handled again once it does, however
    long that takes (not counted as a failing entry and dropped after MAX_ENTRY_FAILURES)."""
    from depin.chain import RpcUnavailable
    from executor.dispatcher import MAX_ENTRY_FAILURES

    env, rt = dispatcher_env, dispatcher_env.rt
    calls = {"n": 0}

    def chain_now() -> int:
        calls["n"] += 1
        if calls["n"] <= MAX_ENTRY_FAILURES + 1:
            raise RpcUnavailable("eth_getBlockByNumber", "connection refused")
        return int(time.time())

    rt.chain_now = chain_now  # type: ignore[method-assign]
    _post(env, 51)
    _drain(env, until=lambda: ("depin.claim", 51) in env.sent, what=" and claim once the node answers")
    assert env.sent == [("depin.claim", 51)]


def test_chain_now_raises_when_the_node_gives_no_block(dispatcher_env: SimpleNamespace) -> None:
    """What `chain_now` decides is final (late, refused, skipped): without a block from the node it
    raises (retried by the task or the next beat) instead of answering with this machine's clock."""
    from depin.chain import RpcUnavailable

    rt = dispatcher_env.rt  # its node URL, http://127.0.0.1:9, refuses connections
    with pytest.raises(RpcUnavailable, match="no block timestamp"):
        Runtime.chain_now(rt)


def test_a_submission_that_keeps_killing_its_worker_keeps_its_outcome(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The redelivery cap of `depin.submit`: the recorded outcome (salt journaled, archive stored) is
    kept for recovery, not abandoned (the job would time out in our hands, collateral slashed);
    recovery submits it again until the chain shows it or its deadline passes."""
    rt = _Runtime(state=r, xkeys=ExecKeys(31337, "0xmarket", "provider", "0xme"))
    monkeypatch.setattr(jobtask, "get_runtime", lambda: rt)
    r.set(rt.xkeys.deliveries("depin.submit", 9), celery_module.MAX_DELIVERIES)
    rt.set_record(9, "outcome", kind="result")
    tasks.submit(9)
    rec = rt.record(9)
    assert rec["state"] == "outcome" and not rec.get("refused") and "redelivery cap" in rec["reason"]
    assert not r.exists(rt.xkeys.deliveries("depin.submit", 9))


# ------------------------------------------------------------------------------------ verification


def test_follow_reveals_from_the_journal_once_and_only_in_the_reveal_phase(redis_server: RedisServer, tmp_path) -> None:
    """executor.verification.follow: nothing while no seat has committed; the journal's digest and
    salt once the reveal phase is open (RevealNotOpen at the estimate: wait); nothing once the chain
    shows the reveal; the case is closed when the market shows the job settled."""
    from depin.transactions import TxReverted
    from executor import verification
    from executor.results import SubmissionJournal, prepare_submission

    me = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
    state = redis_server.client(9)
    state.flushdb()
    journal = SubmissionJournal(tmp_path / "journal")
    sub = prepare_submission(journal, None, job_id=5, spec_hash=b"\x01" * 32, party=me, kind="failure", digest=b"\xee" * 32, code=4)
    case = [0] * 26
    case[0], case[7], case[18] = 1, me, 2_000_000_000  # Active, our job, reveal deadline ahead
    status = {"job": JobStatus.DISPUTED}
    sent: list[tuple] = []
    reveal_open = {"value": False}

    class Court:
        def get_case(self, job_id):
            return ("getCase", job_id)

        def reveal_provider(self, job_id, digest, salt):
            return ("revealProvider", job_id, digest, salt)

        def advance(self, job_id):
            return ("advance", job_id)

    def read(call):
        assert call[0] == "getCase", call
        return tuple(case)

    def send(call):
        if call[0] == "revealProvider" and not reveal_open["value"]:
            raise TxReverted("VerificationCourt.revealProvider", "VerificationCourt.RevealNotOpen(jobId=5)")
        if call[0] == "advance":
            raise TxReverted("VerificationCourt.advance", "VerificationCourt.NothingDue(jobId=5)")
        sent.append(call)
        return SimpleNamespace(tx_hash="0xr")

    client = SimpleNamespace(read=read, send=send, court_of=lambda job_id: Court())
    rt = _Runtime(state=state, xkeys=ExecKeys(31337, "0x" + "22" * 20, "provider", me), role="provider", address=me, client=client,
                  chain_now=lambda: 1_900_000_000, journal=journal, job=lambda j: SimpleNamespace(status=status["job"]),
                  reader=SimpleNamespace(jobs_fields=lambda ids, fields: [{} for _ in ids]))
    verification.watch(rt, 5, "drawn for audit")
    assert verification.follow_verifications(rt) == 0 and sent == []  # no commitment yet: nothing to reveal
    case[21] = 1  # a seat committed
    assert verification.follow_verifications(rt) == 0 and sent == []  # reveal not open yet
    reveal_open["value"] = True
    assert verification.follow_verifications(rt) == 1
    assert sent == [("revealProvider", 5, bytes.fromhex(sub.committed[2:]), bytes.fromhex(sub.salt[2:]))]
    case[6] = True  # the chain shows the reveal
    assert verification.follow_verifications(rt) == 0 and len(sent) == 1
    status["job"] = JobStatus.RESOLVED
    verification.follow_verifications(rt)
    assert verification.watched(rt) == set()


def test_roles_parse_to_one_canonical_string_and_each_role_runs_its_components() -> None:
    """`--role` / `[executor] role`: provider, verifier, canary or several joined by commas, in a
    canonical order; an unknown or repeated role is refused; each role runs only its components."""
    assert parse_roles("verifier,provider") == parse_roles(["provider", "verifier"]) == "provider,verifier"
    for bad in ("arbiter", "provider,provider", ""):
        with pytest.raises(ValueError):
            parse_roles(bad)
    assert ExecutorConfig(role="verifier , provider").roles == ("provider", "verifier")
    with pytest.raises(ValueError):
        ExecutorConfig(role="arbiter")
    assert issubclass(ConfigError, ValueError)
    assert components_for("verifier") == ("worker-compute", "worker-chain", "beat")
    assert components_for("canary") == ("worker-chain", "beat", "results", "canary")  # results: its decoys
    assert components_for("provider,verifier") == ("worker-compute", "worker-chain", "beat", "dispatcher", "results")
    assert set(beat_schedule(("verifier",), 2, {})) == {"recover", "withdraw", "prune", "verify"}
    assert {"finalize-due", "verify", "canary"} <= set(beat_schedule(("provider", "verifier", "canary"), 2, {}))


def test_the_audit_journal_keeps_its_first_salt_and_the_commitment_opens(tmp_path: Path) -> None:
    """A re-run after a crash gets the seat's first entry back (same salt, same commitment), and the
    commitment is the court's seat commitment of the journaled digest and salt."""
    j = AuditJournal(tmp_path / "journal")
    me = "0x" + "ab" * 20
    first = j.record(me, 7, 1, 2, b"\x11" * 32, "result")
    again = j.record(me, 7, 1, 2, b"\x22" * 32, "result")
    assert again == first
    assert (tmp_path / "journal" / "seat-7-1-2.json").stat().st_mode & 0o777 == 0o600
    digest, salt = bytes.fromhex(first.digest[2:]), bytes.fromhex(first.salt[2:])
    assert "0x" + seat_commitment(me, 7, 1, 2, digest, salt).hex() == first.commitment
    assert j.load(7, 1, 3) is None


def test_a_second_writer_never_replaces_a_journaled_salt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review, stop 56: two runs of one seat (one paused past the seat's lease, the other
    took it over and committed) each looked the entry up and found none; the later writer replaced
    the file, so the salt on disk no longer opened the commitment on chain (a no-show, the bond
    lost). The entry is now created exclusively: the late writer gets the first entry back and the
    file is unchanged. The same holds for the canary journal."""
    me = "0x" + "ab" * 20
    j = AuditJournal(tmp_path / "journal")
    first = j.record(me, 7, 0, 0, b"\x11" * 32, "result")
    on_disk = (tmp_path / "journal" / "seat-7-0-0.json").read_bytes()
    monkeypatch.setattr(AuditJournal, "load", _stale_once(AuditJournal.load))  # its look-up came before the first write
    assert j.record(me, 7, 0, 0, b"\x22" * 32, "result") == first
    assert (tmp_path / "journal" / "seat-7-0-0.json").read_bytes() == on_disk

    c = CanaryJournal(tmp_path / "canary")
    entry = c.record(me, 5)
    on_disk = (tmp_path / "canary" / "5.json").read_bytes()
    monkeypatch.setattr(CanaryJournal, "load", _stale_once(CanaryJournal.load))
    assert c.record(me, 5) == entry
    assert (tmp_path / "canary" / "5.json").read_bytes() == on_disk


def _stale_once(load: Callable[..., Any]) -> Callable[..., Any]:
    """`load`, but its first call finds nothing: a writer that looked before another one wrote."""
    calls: list[int] = []

    def stale(self: Any, *args: Any) -> Any:
        calls.append(1)
        return None if len(calls) == 1 else load(self, *args)

    return stale


def test_the_canary_journal_commits_to_the_canary_digest(tmp_path: Path) -> None:
    """The canary's commitment covers keccak("depin-canary", secret) with its salt: what exposeCanary checks."""
    j = CanaryJournal(tmp_path / "canary")
    me = "0x" + "cd" * 20
    entry = j.record(me, 5)
    assert j.record(me, 5) == entry
    secret, salt = bytes.fromhex(entry.secret[2:]), bytes.fromhex(entry.salt[2:])
    assert entry.digest == "0x" + canary_digest(secret).hex()
    assert entry.commitment == "0x" + commitment(me, 5, canary_digest(secret), salt).hex()
    assert entry.expose_args() == (5, secret, salt)


def test_the_bait_exists_for_every_job_and_a_canarys_is_its_committed_digest(tmp_path: Path) -> None:
    """The bait key is made once (0600) and kept; every job id has a bait, the same each time; a
    canary's bait is the digest it commits to; one job's revealed secret is not another's."""
    j = CanaryJournal(tmp_path / "canary")
    key = j.bait_key()
    assert len(key) == 32 and CanaryJournal(tmp_path / "canary").bait_key() == key
    assert (tmp_path / "canary" / "bait.key").stat().st_mode & 0o777 == 0o600
    entry = j.record("0x" + "cd" * 20, 7)
    assert j.bait(7) == entry.digest and entry.secret == "0x" + j.secret_for(7).hex()
    assert j.bait(8) != j.bait(7) and j.bait(8) == CanaryJournal(tmp_path / "canary").bait(8)
    assert j.secret_for(8) != j.secret_for(7)


def test_a_seat_declined_for_want_of_a_slot_may_be_taken_later() -> None:
    """A declined seat is not looked at again, unless it was declined only because no slot was free."""
    assert open_to_us({}) and open_to_us({"state": "taking"})
    assert open_to_us({"state": "declined", "reason": "no free slot (2 seats in hand)"})
    assert not open_to_us({"state": "declined", "reason": "policy: needs 4 CPUs; the policy allows 2"})
    assert not open_to_us({"state": "committed"})
    # the chain's word (a seat held by us) overrides every record but one that follows the seat, a
    # done one, and a decline of our own run (final)
    assert reclaimable({}) and reclaimable({"state": "taking"}) and reclaimable({"state": "declined", "reason": "policy: x", "final": ""})
    assert not reclaimable({"state": "declined", "final": "1"})
    assert not any(reclaimable({"state": s}) for s in ("seated", "running", "computed", "committed", "revealed", "done"))


def test_a_delivery_check_and_its_kill_slack_end_before_the_commit_is_due() -> None:
    """Review (stop 40): the check's bound was min(..., max(left, 30)) and its child was killed at
    that + ISOLATION_SLACK: it could end ISOLATION_SLACK past what the commit needs, and 30 s + the
    slack past it when less than 30 s was left (the seat then a no-show). Now the child's kill time
    (total + slack) is within `left` (the commit deadline less inclusionTime and DELIVERY_MARGIN),
    the wait and each request's timeout within the total, and with less than MIN_DELIVERY_CHECK
    seconds beyond the slack no check is run."""
    from executor.verifier import DELIVERY_TIMEOUT, ISOLATION_SLACK, MIN_DELIVERY_CHECK, MIN_DELIVERY_RATE, delivery_budget

    mb = 1_048_576
    for left in (0, 5, ISOLATION_SLACK, ISOLATION_SLACK + MIN_DELIVERY_CHECK - 0.5, ISOLATION_SLACK + MIN_DELIVERY_CHECK, 15, 29, 30, 31, 45, 100, 10_000):
        for wait in (0, 10, 60, 600):
            for max_bytes in (mb, 16 * mb, 1024 * mb):
                budget = delivery_budget(float(left), float(wait), max_bytes)
                if left - ISOLATION_SLACK < MIN_DELIVERY_CHECK:
                    assert budget is None, (left, wait, max_bytes)
                    continue
                assert budget is not None, (left, wait, max_bytes)
                w, timeout, total = budget
                assert total + ISOLATION_SLACK <= left, (left, wait, max_bytes, budget)
                assert 0 <= w <= min(wait, total) and 0 < timeout <= min(total, DELIVERY_TIMEOUT), (left, wait, budget)
                assert total >= min(left - ISOLATION_SLACK, w + DELIVERY_TIMEOUT + max_bytes / MIN_DELIVERY_RATE) - 1e-9
    # plenty of time: what the check wants (the wait, a request's timeout, the archive at the least rate)
    assert delivery_budget(10_000.0, 10.0, mb) == (10.0, 10.0, 10.0 + DELIVERY_TIMEOUT + mb / MIN_DELIVERY_RATE)


def test_policy_keeps_time_to_stop_and_report_a_job_that_never_exits() -> None:
    """A requester's tight window (runtime + 5 s) and a command that never exits would make an honest
    provider miss its deadline (the run is stopped at its runtime, then killed, archived and
    submitted): the policy wants SUBMIT_MARGIN (45 s) beyond the runtime, and INPUT_MARGIN (30 s)
    more when the job has http(s) inputs; the inputs get what the window leaves beyond the margin."""
    from executor.policy import INPUT_MARGIN, SUBMIT_MARGIN, input_deadline

    assert SUBMIT_MARGIN >= 45 and INPUT_MARGIN >= 30
    policy = Policy(PolicyConfig(images=[DIGEST]))
    tight = policy.evaluate(_spec(), JobTermsView(TOKEN, 10 + 5), active_jobs=0)
    assert not tight and "stop it at its runtime" in tight.reason
    assert policy.evaluate(_spec(), JobTermsView(TOKEN, 10 + SUBMIT_MARGIN), active_jobs=0)
    inputs = [{"path": "data", "uri": "https://example.org/d", "sha256": "ab" * 32}]
    with_inputs = parse_spec({"v": 1, "image": f"depin/busybox@{DIGEST}", "command": ["true"], "inputs": inputs,
                              "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 10, "output_mb": 1}})
    short = policy.evaluate(with_inputs, JobTermsView(TOKEN, 10 + SUBMIT_MARGIN), active_jobs=0)
    assert not short and "to fetch its inputs" in short.reason
    assert policy.evaluate(with_inputs, JobTermsView(TOKEN, 10 + SUBMIT_MARGIN + INPUT_MARGIN), active_jobs=0)
    assert input_deadline(1_000 + 10 + SUBMIT_MARGIN + 30, 1_000, 10) == 30


def test_the_compute_time_limit_covers_the_runtime_and_the_inputs() -> None:
    """A compute task that reaches its soft limit is given up (the job then times out on chain), so
    the limit must cover the longest run the policy allows plus all of its inputs' time."""
    from executor.inputs import JOB_INPUTS_TIMEOUT

    soft, _hard, _visibility = celery_module.time_limits(DepinConfig(policy=PolicyConfig(max_runtime=600)))
    assert soft >= 600 + JOB_INPUTS_TIMEOUT + 30


# ------------------------------------------------------------------------------------ the verifier's input cache


def test_a_jobs_input_cache_lives_while_one_of_its_seats_is_in_hand(r: redis.Redis, tmp_path: Path) -> None:
    from executor import verifier

    rt: Any = SimpleNamespace(state=r, xkeys=ExecKeys(31337, "0xmarket", "verifier", "0xme"), work_root=tmp_path / "work")
    for job in (5, 6, 7):
        verifier.input_cache(rt, job).mkdir(parents=True)
        (verifier.input_cache(rt, job) / ("ab" * 32)).write_bytes(b"checked")
    verifier.set_seat(rt, 5, 0, 0, "revealed")
    verifier.set_seat(rt, 5, 1, 2, "seated")
    # one of job 5's seats ends: the other still needs the checked inputs
    verifier.set_seat(rt, 5, 1, 2, "done")
    verifier.drop_input_cache(rt, 5)
    assert verifier.input_cache(rt, 5).is_dir()
    verifier.set_seat(rt, 5, 0, 0, "done")
    verifier.drop_input_cache(rt, 5)
    assert not verifier.input_cache(rt, 5).exists()
    # the sweep: job 6's cache is an hour old with no seat in hand (a crash between check and
    # decline), job 7's is fresh (a check whose seat is being taken), a stray name goes
    old = time.time() - verifier.INPUT_CACHE_MAX_AGE - 5
    os.utime(verifier.input_cache(rt, 6), (old, old))
    (tmp_path / "work" / "input-cache" / "not-a-job").mkdir()
    assert verifier.sweep_input_caches(rt) == 2
    assert sorted(p.name for p in (tmp_path / "work" / "input-cache").iterdir()) == ["7"]


def test_dispatcher_rescans_open_jobs_the_trimmed_stream_never_delivered(dispatcher_env: SimpleNamespace) -> None:
    """The indexer trims its stream to ``stream_max_len``; a dispatcher down or behind for longer
    never reads the trimmed JobPosted entries. It notices (the group's last delivered id is older
    than the newest trimmed entry) and considers the index's Open jobs instead (review, stop 37)."""
    env, rt = dispatcher_env, dispatcher_env.rt
    env.dispatcher.ensure_group()
    for job_id in (41, 42, 43, 44):
        _post(env, job_id)
        rt.index.zadd(rt.index_keys.due("Open"), {str(job_id): int(time.time()) + 600})
    rt.index.zadd(rt.index_keys.due("Open"), {"45": int(time.time()) - 5})  # past its claim deadline: not looked at
    rt.index.xtrim(rt.index_keys.events, maxlen=1, approximate=False)  # only job 44's entry is left
    assert env.dispatcher.events.missed()
    _drain(env, until=lambda: rt.state.zcard(rt.xkeys.deferred) == 3, what=" and rescan the Open jobs")
    assert env.sent == [("depin.claim", 41)]  # max_concurrent_jobs = 1: one claim, the others wait for the slot
    assert sorted(rt.state.zrange(rt.xkeys.deferred, 0, -1)) == ["42", "43", "44"]
    assert not rt.record(45)
    assert not env.dispatcher.events.missed()  # the group has read past the trimmed entries


def test_a_verifier_forgets_undrawn_jobs_that_left_submitted(redis_server: RedisServer) -> None:
    """``{e}:undrawn`` (jobs the verifier found undrawn, not asked about again) loses the jobs the
    index shows finalized or disputed; a job still Submitted, or one the index does not show yet
    (an index behind), stays; each pass looks at a bounded sample of the set."""
    from depin.keys import Keys
    from executor import verifier
    from indexer.query import IndexerReader

    me = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
    index, state = redis_server.client(11), redis_server.client(12)
    index.flushdb()
    state.flushdb()
    keys = Keys(31337, "0x" + "22" * 20)
    statuses = {1: "Finalized", 2: "Submitted", 3: "Disputed", 4: "Pruned"}
    for j, status in statuses.items():
        index.hset(keys.job(j), mapping={"id": str(j), "status": status})
    xkeys = ExecKeys(31337, "0x" + "22" * 20, "verifier", me)
    state.sadd(xkeys.undrawn, "1", "2", "3", "4", "5", "junk")
    rt = _Runtime(state=state, xkeys=xkeys, role="verifier", address=me, reader=IndexerReader(index, keys))
    assert verifier.prune_undrawn(rt) == 4
    assert state.smembers(xkeys.undrawn) == {"2", "5"}
    assert verifier.prune_undrawn(rt) == 0

    state.delete(xkeys.undrawn)
    many = range(100, 100 + 3 * verifier.UNDRAWN_PRUNE_CHUNK)
    state.sadd(xkeys.undrawn, *map(str, many))
    for j in many:
        index.hset(keys.job(j), mapping={"id": str(j), "status": "Finalized"})
    assert verifier.prune_undrawn(rt) == verifier.UNDRAWN_PRUNE_CHUNK  # bounded per pass
    while verifier.prune_undrawn(rt):
        pass
    assert state.scard(xkeys.undrawn) == 0
