"""Governance moves the market to a new court (``setParams``) while a job posted before is still
open. The job stays with the court it was posted under (``JobMarket._onlyCourtOf``); the operators
do what the README says, update ``addresses.VerificationCourt`` in the deployment file and restart,
and everything of that job must still go to its own court: the SDK's challenge (and its bond's
approve), the provider's reveal, and the verifier's seats (take, commit, reveal, advance). Before,
the SDK and the verifier sent them to the file's court, the new one: the challenge reverted
(``WrongCourt``) and a verifier's seats in the old court became no-shows, its bonds forfeited.

On real services (tests/executor/stack.py): the old court's only member (dev account 3) is the
verifier; the new court is a second, genuine VerificationCourt of the same market (the shipped
artifact, the first court's CourtEngine), which the verifier joins after the restart (that join is
the barrier that says its passes run). The job is challenged through the SDK with the new file
(and audited first when drawn); either way its seats are the verifier's, in the old court."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from eth_abi import encode
from eth_utils.abi import collapse_if_tuple

from depin.accounts import dev_account
from depin.artifacts import load_artifact
from depin.client import Client
from depin.contracts import VerificationCourt
from depin.market import JobStatus, Phase

from .stack import PROVIDER, REQUESTER, REQUESTER2, VERIFIER, Executor, Stack, exec_prefix, spec, terms_for, wait_for
from .stack import court_logs as _court_logs


def _deploy_second_court(stack: Stack) -> str:
    """A new VerificationCourt of the same market, token and admin (the deployer), with the first
    court's current parameters and CourtEngine; returns its address."""
    m = stack.market
    artifact = load_artifact("VerificationCourt")
    (ctor,) = [item for item in artifact["abi"] if item["type"] == "constructor"]
    params = tuple(m.read(m.contracts.verification_court.params()))
    args = encode([collapse_if_tuple(i) for i in ctor["inputs"]],
                  [stack.deployment.addresses["JobMarket"], stack.deployment.addresses["RewardToken"], m.deployer, params,
                   m.read(m.contracts.verification_court.modules())[0]])  # its CourtEngine
    tx_hash = m.rpc.call("eth_sendTransaction", [{"from": m.deployer, "data": artifact["bytecode"] + args.hex(), "gas": hex(25_000_000)}],
                         retries=0)
    receipt = m.wait_for_receipt(tx_hash, timeout=60)
    assert receipt["status"] == "0x1", receipt
    return str(receipt["contractAddress"])


@pytest.fixture
def stack(tmp_path, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path, engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER, REQUESTER2, tokens=100_000)
        s.setup_funded(VERIFIER, tokens=10_000)
        yield s
    finally:
        s.close()


def _phase(stack: Stack, court: str, job_id: int) -> Phase:
    """The phase of job `job_id`'s case in `court` (``getCase``)."""
    client = Client.connect(stack.anvil.url, stack.deployment_file)
    return Phase(int(client.read(VerificationCourt(court, client.codec).get_case(job_id))[0]))


def _seat_records(stack: Stack, ex: Executor, job_id: int) -> list[dict[str, str]]:
    """The verifier executor's records of its seats of job `job_id`, every round."""
    state = stack.state()
    return [state.hgetall(key) for key in sorted(state.scan_iter(match=f"{exec_prefix(stack, ex)}:seat:{job_id}:*"))]


def test_a_job_posted_before_a_court_change_is_served_in_its_own_court_after_the_restart(stack: Stack) -> None:
    s, m = stack, stack.market
    old_court = s.deployment.addresses["VerificationCourt"]
    verifier = s.executor("verifier", "verifier", VERIFIER, policy={"images": [], "max_memory_mb": 512, "max_runtime": 60},
                          sections={"verifier": {"max_audits": 4, "delivery_wait": 3}})  # a jury of 3 can be all ours
    s.wait_court_member(VERIFIER)  # in the old court, its only member
    verifier.stop()

    # posted under the first parameter version: the old court's job for good
    job_id = s.post(spec(s.images["busybox"], ["sh", "-c", "echo court-change > /out/r"], max_runtime=10),
                    terms=terms_for(verify_mode=0, challenge_window=40))
    assert Client.connect(s.anvil.url, s.deployment_file).court_of(job_id).address.lower() == old_court.lower()

    # governance moves the market to a new court; the indexer stops before that block (by design)
    new_court = _deploy_second_court(s)
    params = list(m.read(m.contracts.job_market.params()))
    params[16] = new_court
    m.send(m.deployer, m.contracts.job_market.set_params(tuple(params)))
    assert s.indexer is not None
    wait_for(lambda: s.indexer is not None and not s.indexer.alive(), 120, "the indexer to stop at the court change")
    # ... and the operators put the new court in the deployment file and restart
    record = json.loads(s.deployment_file.read_text())
    record["addresses"]["VerificationCourt"] = new_court
    s.deployment_file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    s.start_indexer()
    requester = Client.connect(s.anvil.url, s.deployment_file, dev_account(REQUESTER2, s.deployment.chain_id))
    assert requester.contracts.verification_court.address.lower() == new_court.lower()
    assert requester.court_of(job_id).address.lower() == old_court.lower()  # the job's own court, not the file's

    verifier.start()
    new = VerificationCourt(new_court, requester.codec)
    wait_for(lambda: requester.read(new.get_verifier(s.accounts[VERIFIER]))[0], 120,
             "the restarted verifier to join the new court (its passes run)")
    provider = s.executor("provider", "provider", PROVIDER)
    s.wait_status(job_id, (JobStatus.SUBMITTED, JobStatus.DISPUTED), timeout=120, executors=[provider])
    # challenged through the SDK with the new file: the bond's approve and the call go to the old
    # court (a drawn job's challenge waits for its audit, then goes to a jury: all seats ours either way)
    receipt = requester.challenge(job_id)
    assert receipt.status == 1
    final = s.wait_status(job_id, (JobStatus.RESOLVED, JobStatus.FINALIZED, JobStatus.EXPIRED), timeout=300,
                          executors=[provider, verifier])
    assert final == JobStatus.RESOLVED, f"job {job_id} ended {final.label}"

    # the verifier's seats were served in the job's own court: committed, revealed, none missed
    assert _court_logs(s, "SeatCommitted", job_id) and _court_logs(s, "SeatRevealed", job_id)
    assert not _court_logs(s, "SeatNoShow", job_id) and not _court_logs(s, "VerifierSlashed", job_id)
    # its next pass closes the records of the concluded case
    records = wait_for(lambda: (rs := _seat_records(s, verifier, job_id)) and all(r.get("state") == "done" for r in rs) and rs, 60,
                       "the verifier to close its seat records")
    assert all(r.get("outcome") == "ProviderRight" and r.get("slashed") == "0" for r in records), records
    assert _phase(s, old_court, job_id) == Phase.CONCLUDED
    assert _phase(s, new_court, job_id) == Phase.NONE  # nothing of this job went to the new court
