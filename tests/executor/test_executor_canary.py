"""The canary role on real services (tests/executor/stack.py): a canary executor (dev account 4, a
registered provider) posts jobs from its ``[canary.requester]`` account (dev account 6), claims
them itself and commits garbage (never runs them), serves the fake digest at ``GET
/canary/<jobId>``; its ``[canary.signer]`` (dev account 7, the court's CANARY_ROLE, sending
nothing) authorizes each exposure. Neither job account holds the role nor is the other, so the
chain does not tell a canary job from any other until its exposure. A lazy verifier
(dev account 3, driven by the test, the court's only member) copies that bait instead of running
the job; the canary reveals, exposes the canary, and the lazy verifier loses σR of its stake. The
canary's records (and ``depin executor status``) name the verifier it caught."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from depin.addresses import parse_networks, public_resolver
from depin.client import Client
from depin.commitment import new_salt, seat_commitment
from depin.delivery_check import check_delivered
from depin.market import JobStatus
from depin.spec import parse_spec
from depinctl.devchain import TxFailed
from depinctl.procs import free_port

from .stack import PROVIDER2, REQUESTER, REQUESTER2, TOKEN, VERIFIER, Stack, wait_for

OUTCOME_CANARY = 5
SIGNER = 7  # the canary key: holds CANARY_ROLE, sends no transaction


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("canary"), engine, sample_images)
    try:
        m = s.market
        s.setup_provider(PROVIDER2, stake=2_000)
        s.setup_funded(REQUESTER, REQUESTER2)
        lazy = s.accounts[VERIFIER]
        court = m.contracts.verification_court
        m.send(m.deployer, court.grant_role(m.read(court.canary_role()), s.accounts[SIGNER]))
        m.transact(m.deployer, "RewardToken", "mint", lazy, 10_000 * TOKEN)
        m.approve(lazy, m.court)
        m.send(lazy, court.join(5_000 * TOKEN, 0))
        m.mine(2)
        s.bait_port = free_port()
        s.canary = s.executor(
            "canary", "canary", PROVIDER2, policy={"images": []},
            sections={"canary": {"interval": 1, "image": s.images["busybox"], "reward": "1", "max_open": 2,
                                 "bind": f"127.0.0.1:{s.bait_port}",
                                 "requester": {"dev_account": REQUESTER2}, "signer": {"dev_account": SIGNER}}},
        )
        yield s
    finally:
        s.close()


def canary_record(stack: Stack, job_id: int) -> dict[str, str]:
    ex = stack.canary
    prefix = f"depin-exec:{stack.deployment.chain_id}:{stack.deployment.addresses['JobMarket'].lower()}:{ex.role}:{ex.address.lower()}"
    return stack.state().hgetall(f"{prefix}:canary:{job_id}")


def test_a_lazy_verifier_that_copies_the_bait_is_caught_and_slashed(stack: Stack) -> None:
    m = stack.market
    court = m.contracts.verification_court
    lazy = stack.accounts[VERIFIER]
    stake_before = m.read(court.get_verifier(lazy))[2]

    closed: set[int] = set()  # drawn for the lazy verifier, but its seats closed before it looked

    def drawn_canary_job_taken() -> int | None:
        """A canary job drawn for the lazy verifier, whose audit it takes at once: the seats close
        about 8 s after the submission on this devnet, which a slow poll can miss."""
        for job_id in range(1, m.read(m.contracts.job_market.job_count()) + 1):
            rec = canary_record(stack, job_id)
            if rec.get("state") != "submitted" or job_id in closed:
                continue
            try:
                if m.is_drawn(job_id) and m.read(court.drawn_for(job_id, 0, 0)).lower() == lazy.lower():
                    m.send(lazy, court.start_audit(job_id))
                    return job_id
            except TxFailed as exc:
                if "SeatDeadlinePassed" in exc.reason:
                    closed.add(job_id)
                elif "RandomnessNotReady" not in exc.reason:
                    raise
        return None

    job_id = wait_for(drawn_canary_job_taken, 240, "a canary job drawn for audit")
    # no tell on chain: posted and claimed from two accounts, neither holding the canary role
    job = m.get_job(job_id)
    requester, provider = job["requester"], job["provider"]
    assert requester.lower() == stack.accounts[REQUESTER2].lower() and provider.lower() == stack.accounts[PROVIDER2].lower()
    role = m.read(court.canary_role())
    assert not m.read(court.has_role(role, requester)) and not m.read(court.has_role(role, provider))
    # the lazy verifier asks the canary's endpoint for the digest instead of running the job
    bait = requests.get(f"http://127.0.0.1:{stack.bait_port}/canary/{job_id}", timeout=5)
    assert bait.status_code == 200
    digest = bytes.fromhex(bait.text.removeprefix("0x"))
    # every job id gets an answer, the same each time: asking does not say which jobs are canaries
    other = requests.get(f"http://127.0.0.1:{stack.bait_port}/canary/999999", timeout=5)
    assert other.status_code == 200 and len(bytes.fromhex(other.text.removeprefix("0x"))) == 32 and other.text != bait.text
    assert requests.get(f"http://127.0.0.1:{stack.bait_port}/canary/999999", timeout=5).text == other.text
    assert requests.get(f"http://127.0.0.1:{stack.bait_port}/canary/{job_id}", timeout=5).text == bait.text
    salt = new_salt()
    m.send(lazy, court.commit(job_id, 0, seat_commitment(lazy, job_id, 0, 0, digest, salt)))
    m.send(lazy, court.reveal(job_id, 0, digest, salt))
    # the canary reveals, the audit "agrees", and the canary exposes it within the canary window
    rec = wait_for(lambda: (r := canary_record(stack, job_id)).get("state") == "exposed" and r, 90, "the canary to expose")
    assert rec["caught"] == "1" and rec["verifiers"].lower() == lazy.lower()
    assert int(rec["slashed"]) >= 20 * TOKEN  # sigma * R of stake, plus the bond
    stack.wait_status(job_id, JobStatus.RESOLVED, timeout=30)
    assert m.get_case(job_id)["outcome"] == OUTCOME_CANARY
    # the requester sent the exposure; the signer never sent a transaction
    assert m.rpc.nonce(stack.accounts[SIGNER], "latest") == 0
    assert m.read(court.get_verifier(lazy))[2] <= stake_before - 20 * TOKEN
    # the canary never ran a job: no container of its instance ever existed
    out = subprocess.run(
        [str(Path(sys.executable).with_name("depin")), "executor", "status", "--config", str(stack.canary.config_path), "--json"],
        capture_output=True, text=True, timeout=60, env=stack.canary.env, check=True,
    )
    report = json.loads(out.stdout)
    assert lazy.lower() in [v.lower() for v in report["caught"]]


def test_a_canary_job_serves_a_sealed_decoy_that_passes_a_jurors_delivery_check(stack: Stack) -> None:
    """What a juror checks before it votes (depin.delivery_check): a canary job's URI serves an
    archive sealed to the job's delivery key under its content address, with the usual sealed
    manifest, so a verifier cannot tell a canary by a missing or odd archive. The canary's own
    result server serves it, not its bait endpoint."""
    m = stack.market
    client = Client.connect(stack.anvil.url, stack.deployment_file)

    def submitted_canary_job() -> int | None:
        for job_id in range(m.read(m.contracts.job_market.job_count()), 0, -1):
            state = canary_record(stack, job_id).get("state")
            if state in ("submitted", "revealed", "exposed", "finalized", "done") and client.submission(job_id) is not None:
                return job_id
        return None

    job_id = wait_for(submitted_canary_job, 120, "a submitted canary job")
    sub = client.submission(job_id)
    spec = parse_spec(client.spec_bytes(job_id))
    assert spec.encrypt_to is not None  # posted through the SDK: sealed to the canary's own key
    assert f":{stack.bait_port}/" not in sub.uri
    verdict = check_delivered(sub.uri, provider=sub.provider, job_id=job_id, commitment=sub.commitment, match=None,
                              encrypt_to=spec.encrypt_to, max_bytes=1_048_576,
                              resolver=public_resolver(parse_networks(["127.0.0.0/8"])))  # the stack serves on loopback
    assert verdict.delivered and verdict.sealed, verdict
    # and a tampered copy would not pass: the content address is the sha256 of what is served
    served = requests.get(sub.uri, timeout=10).content
    assert hashlib.sha256(served).hexdigest() == sub.uri.rsplit("/", 1)[1]
    manifest = requests.get(sub.uri + ".json", timeout=10).json()
    assert "salt" not in manifest and manifest["salt_sealed"] and manifest["commitment"] == "0x" + sub.commitment.hex()
