"""The provider executor against the court on real services (tests/executor/stack.py):
re-executable jobs are finalized only when the draw passed them over; a drawn job is left to the
court, whose settlement closes it in the executor's records.

With the real VerificationCourt (once the market/court boundary is reconciled: see
``depinctl.deploy.court_contract_name``), a test-driven verifier (dev account 3, staked in the
court) takes the audit, re-computes the digest and commits; the executor reveals its digest and
salt from its journal when the reveal phase opens, advances the case, and is paid when it concludes
ProviderRight. With the TestCourt stand-in the test drives the court's settlement itself."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest

from depin.commitment import new_salt, seat_commitment
from depin.market import JobStatus

from .stack import PROVIDER, REQUESTER, TOKEN, VERIFIER, Stack, spec, terms_for, wait_for
from .stack import drawn as _drawn

PHASE_CONCLUDED = 4
OUTCOME_PROVIDER_RIGHT = 1
MAX_JOBS = 12  # p_job is about 0.31 at 400 % collateral: 12 jobs all undrawn has odds of 1 in 90


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("court"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER, tokens=100_000)
        m = s.market
        if _real_court(s):
            verifier = s.accounts[VERIFIER]
            m.transact(m.deployer, "RewardToken", "mint", verifier, 10_000 * TOKEN)
            m.approve(verifier, m.court)
            m.send(verifier, m.contracts.verification_court.join(5_000 * TOKEN, 0))
            m.mine(2)  # the stake is active only after the activation delay
        s.provider = s.executor("provider", "provider", PROVIDER, policy={"images": [], "max_memory_mb": 512})
        yield s
    finally:
        s.close()


def _real_court(stack: Stack) -> bool:
    return stack.deployment.parameters.get("courtContract", "VerificationCourt") == "VerificationCourt"


def test_undrawn_jobs_finalize_and_a_drawn_job_is_revealed_audited_and_paid(stack: Stack) -> None:
    m = stack.market
    provider, verifier = stack.accounts[PROVIDER], stack.accounts[VERIFIER]
    drawn_job = None
    undrawn: list[int] = []
    for n in range(MAX_JOBS):
        job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", f"echo {n} > /out/n"]), terms=terms_for(verify_mode=0))
        stack.wait_status(job_id, (JobStatus.SUBMITTED, JobStatus.FINALIZED), timeout=120)
        drawn = wait_for(lambda j=job_id: (d := _drawn(stack, j)) is not None and (d,), 20, "the anchor block")[0]
        if drawn:
            drawn_job = job_id
            break
        undrawn.append(job_id)
    if drawn_job is None:
        pytest.skip(f"none of {MAX_JOBS} re-executable jobs was drawn (odds about 1 in 90)")
    job_id = drawn_job
    ex = stack.provider
    if not _real_court(stack):
        # the stand-in court: the drawn job is never finalized; the executor watches it, and closes
        # it when the court settles it (here: begin + settle ProviderRight, driven by the test)
        wait_for(lambda: stack.exec_record(ex, job_id).get("state") == "verifying_court", 30, "the executor to hand the job to the court")
        for j in undrawn:
            stack.wait_status(j, JobStatus.FINALIZED, timeout=60)
        assert stack.status(job_id) == JobStatus.SUBMITTED and not stack.events(job_id, "JobFinalized")
        m.transact(m.deployer, "TestCourt", "begin", job_id)
        m.transact(m.deployer, "TestCourt", "settle", job_id, OUTCOME_PROVIDER_RIGHT)
        stack.wait_status(job_id, JobStatus.RESOLVED, timeout=30)
        wait_for(lambda: stack.exec_record(ex, job_id).get("state") == "finalized", 30, "the executor to close the job")
        pytest.skip("the reveal needs the real VerificationCourt (market/court boundary not reconciled in this build)")
    # the drawn verifier takes the audit before the challenge deadline, re-computes and commits
    m.send(verifier, m.contracts.verification_court.start_audit(job_id))
    (submitted,) = stack.events(job_id, "ResultSubmitted")
    body = stack.download(submitted["args"]["resultURI"])
    digest = hashlib.sha256(body).digest()  # what an honest re-run of this deterministic job gives
    salt = new_salt()
    m.send(verifier, m.contracts.verification_court.commit(job_id, 0, seat_commitment(verifier, job_id, 0, 0, digest, salt)))
    # the executor reveals from its journal once every seat has committed
    case = wait_for(lambda: (c := m.get_case(job_id))["providerRevealed"] and c, 30, "the provider's reveal")
    assert case["providerDigest"] == digest
    journaled = json.loads((ex.workdir / "state" / "journal" / ex.instance() / f"{job_id}.json").read_text())
    assert journaled["committed"] == "0x" + digest.hex()
    m.send(verifier, m.contracts.verification_court.reveal(job_id, 0, digest, salt))
    # agreement: after the canary window the executor's advance concludes ProviderRight and the
    # market settles the job (Resolved), the provider credited
    stack.wait_status(job_id, JobStatus.RESOLVED, timeout=60)
    case = m.get_case(job_id)
    assert case["phase"] == PHASE_CONCLUDED and case["outcome"] == OUTCOME_PROVIDER_RIGHT
    assert stack.exec_record(ex, job_id).get("revealed_tx")
    # every job the draw passed over was finalized by the executor, never the drawn one
    for j in undrawn:
        stack.wait_status(j, JobStatus.FINALIZED, timeout=60)
    assert not stack.events(job_id, "JobFinalized")
    # one reveal in all
    assert len([e for e in ex.log_lines("worker-chain") if e.get("msg") == "revealed to the court" and e.get("job") == job_id]) == 1
    assert provider.lower() == case["provider"].lower()
