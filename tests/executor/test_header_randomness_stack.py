"""HeaderRandomness on real services (tests/executor/stack.py): the devnet parameters with
``randomness = "header"`` (draws read the anchor block's prevrandao, which only a proof of its RLP
header, ``HeaderRandomness.prove``, makes readable), ``draw_delay = 2`` (what the parameters file
asks of header randomness) and ``alpha_bps = 50_000``, so that p_job is 100 % at the least
collateral (400 %: every job drawn, no randomness needed for the draw itself) and about 46 % at
1000 %. A provider executor (account 1), a verifier executor (account 3, the court's only member:
every seat is its) and a test-driven provider (account 4) that proves nothing.

- A job whose draw its anchor decides (0 < p_job < 100 %): the provider's beat proves the anchor
  header (the proof is its transaction; the value is the block's mixHash); then the job settles as
  its draw says: finalized when undrawn, audited by the verifier and resolved when drawn.
- A job drawn whatever the randomness (p_job 100 %): its audit seat is still drawn from the anchor
  block's randomness, which somebody must prove; the audit runs and the job is resolved.
- A job of a provider that never proves its anchor: the verifier proves it once it is
  FALLBACK_AFTER (16) blocks old.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from depin.deployment import DEFAULT_PARAMETERS_FILE
from depin.market import JobStatus
from executor.anchors import FALLBACK_AFTER

from .stack import PROVIDER, PROVIDER2, REQUESTER, VERIFIER, Stack, spec, terms_for, wait_for
from .stack import drawn as _drawn

ZERO = bytes(32)
PHASE_CONCLUDED = 4
OUTCOME_PROVIDER_RIGHT = 1
ALPHA_BPS = 50_000  # p_job = min(1, alpha * g / (g + k - beta)), g = 1.01: 100 % at k = 4, ~46 % at k = 10


def _header_parameters(folder: Path) -> Path:
    """The devnet parameters with header randomness (draw delay 2) and the higher alpha."""
    data = tomllib.loads(DEFAULT_PARAMETERS_FILE.read_text())
    devnet = data["networks"]["devnet"]
    devnet["randomness"] = "header"
    devnet["market"] |= {"draw_delay": 2, "alpha_bps": ALPHA_BPS}
    path = folder / "parameters.toml"
    path.write_text(tomli_w.dumps({"networks": {"devnet": devnet}}))
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("header")
    s = Stack(tmp, engine, sample_images, deploy_args=("--parameters", str(_header_parameters(tmp))))
    try:
        assert s.deployment.parameters["randomness"] == "header"
        s.setup_provider(PROVIDER)
        s.setup_provider(PROVIDER2)  # test-driven: proves nothing
        s.setup_funded(REQUESTER, tokens=100_000)
        s.setup_funded(VERIFIER, tokens=10_000)
        s.provider = s.executor("provider", "provider", PROVIDER, policy={"images": [], "max_memory_mb": 512})
        s.verifier = s.executor("verifier", "verifier", VERIFIER, policy={"images": [], "max_memory_mb": 512, "max_runtime": 60},
                                sections={"verifier": {"max_audits": 4, "delivery_wait": 3}})
        s.wait_court_member(VERIFIER)
        yield s
    finally:
        s.close()


def _proved(stack: Stack, anchor: int) -> bytes:
    m = stack.market
    return bytes(m.read(m.contracts.header_randomness.proved(anchor)))


def _proof(stack: Stack, anchor: int) -> dict[str, Any]:
    """The anchor's RandomnessRecorded log (one: a block is proved once) with its sender."""
    m = stack.market
    topic = "0x" + m.codec.topics[("HeaderRandomness", "RandomnessRecorded")].hex()
    logs = m.rpc.call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest", "address": stack.deployment.addresses["Randomness"],
                                       "topics": [topic, "0x" + anchor.to_bytes(32, "big").hex()]}])
    assert len(logs) == 1, logs
    tx = m.rpc.call("eth_getTransactionByHash", [logs[0]["transactionHash"]])
    return {"block": int(logs[0]["blockNumber"], 16), "from": tx["from"].lower()}


def _wait_proved(stack: Stack, anchor: int, timeout: float = 60) -> bytes:
    try:
        return wait_for(lambda: (v := _proved(stack, anchor)) != ZERO and v, timeout, f"the anchor block {anchor} to be proved")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}\n{stack.provider.logs()}\n{stack.verifier.logs()}") from None


def _mix_hash(stack: Stack, block: int) -> bytes:
    return bytes.fromhex(stack.market.rpc.call("eth_getBlockByNumber", [hex(block), False])["mixHash"][2:])


def _resolved_provider_right(stack: Stack, job_id: int) -> None:
    stack.wait_status(job_id, JobStatus.RESOLVED, timeout=180)
    case = stack.market.get_case(job_id)
    assert case["phase"] == PHASE_CONCLUDED and case["outcome"] == OUTCOME_PROVIDER_RIGHT, case


def test_the_providers_beat_proves_its_anchor_and_the_job_settles_as_drawn(stack: Stack) -> None:
    # The verifier proves an anchor its provider left unproved FALLBACK_AFTER blocks (executor.verifier
    # .consider): with one-second blocks a provider's beat slowed down that long (a loaded machine)
    # would lose to it. The verifier's passes wait until the proof is on chain: its beat, which
    # queues them, is paused (SIGSTOP), not stopped. A drawn job's seat must be taken within the
    # seat delay after the submission (8 s here), and restarting the beat and the chain worker took
    # longer than that in a loaded CI run (the case concluded Unaudited); resuming is instant. With
    # two busy loops per core, ten rounds each: the seat was taken 3 s before its deadline after a
    # restart (7 drawn jobs), 4-6 s before it after a resume (5).
    v = stack.verifier
    v.pause("beat")
    try:
        job_spec = spec(stack.images["busybox"], ["sh", "-c", "echo header > /out/h"])
        job_id = stack.post(job_spec, terms=terms_for(verify_mode=0, collateral_pct=1000))
        stack.wait_status(job_id, (JobStatus.SUBMITTED, JobStatus.DISPUTED, JobStatus.FINALIZED, JobStatus.RESOLVED), timeout=120)
        job = stack.job(job_id)
        anchor, audit_bps = job["anchorBlock"], job["auditBps"]
        assert 0 < audit_bps < 10_000
        value = _wait_proved(stack, anchor)
    finally:
        v.resume("beat")
    assert value == _mix_hash(stack, anchor)
    proof = _proof(stack, anchor)
    assert proof["from"] == stack.accounts[PROVIDER].lower()  # the provider's beat, not the verifier's fallback
    drawn = _drawn(stack, job_id)
    assert drawn is not None
    if drawn:
        _resolved_provider_right(stack, job_id)
    else:
        stack.wait_status(job_id, JobStatus.FINALIZED, timeout=120)
    sent = stack.provider.wait_log(None, lambda e: e.get("msg") == "anchor header proved" and e.get("anchor") == anchor, "the header proved")
    assert [e.get("jobs") for e in sent] == [str(job_id)], sent  # once


def test_a_job_drawn_whatever_the_randomness_is_audited(stack: Stack) -> None:
    job_spec = spec(stack.images["busybox"], ["sh", "-c", "echo always > /out/a"])
    job_id = stack.post(job_spec, terms=terms_for(verify_mode=0, collateral_pct=400))
    stack.wait_status(job_id, (JobStatus.SUBMITTED, JobStatus.DISPUTED, JobStatus.RESOLVED), timeout=120)
    job = stack.job(job_id)
    assert job["auditBps"] == 10_000
    _resolved_provider_right(stack, job_id)
    # the audit seat was drawn from the job's anchor, proved by the verifier (the provider has no
    # draw to learn): round 0 was seated, not lost to a redraw
    anchor = job["anchorBlock"]
    assert _proved(stack, anchor) == _mix_hash(stack, anchor)
    assert _proof(stack, anchor)["from"] == stack.accounts[VERIFIER].lower()
    case = stack.market.get_case(job_id)
    assert (case["round"], case["redraws"], case["anchor"]) == (0, 0, anchor), case


def test_the_verifier_proves_an_anchor_its_provider_left_unproved(stack: Stack) -> None:
    m = stack.market
    terms = terms_for(verify_mode=0, collateral_pct=1000)
    # an image outside the executor's policy: the test-driven provider claims and submits it
    job_id = stack.post(spec("depin/absent@sha256:" + "0" * 64, ["true"]), terms=terms)
    provider2 = stack.accounts[PROVIDER2]
    m.claim(provider2, job_id)
    m.submit(provider2, job_id)
    anchor = stack.job(job_id)["anchorBlock"]
    assert stack.job(job_id)["auditBps"] < 10_000
    value = _wait_proved(stack, anchor, timeout=120)
    assert value == _mix_hash(stack, anchor)
    proof = _proof(stack, anchor)
    assert proof["from"] == stack.accounts[VERIFIER].lower()
    assert proof["block"] >= anchor + FALLBACK_AFTER  # the provider had its chance first
    sent = stack.verifier.wait_log(None, lambda e: e.get("msg") == "anchor header proved" and e.get("anchor") == anchor, "the header proved")
    assert [e.get("jobs") for e in sent] == [str(job_id)], sent
    assert _drawn(stack, job_id) is not None  # the draw is readable now
