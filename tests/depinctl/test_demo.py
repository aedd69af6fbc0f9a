"""The README's first command, `depin demo` (what `make demo` runs after setup), end to end: its
four scenarios on a real devnet, each checked by its token flows.

A real devnet in a temporary state folder: anvil, redis-server, Podman, the deploy script, the
indexer, the provider executor, a verifier pool of three executors and a canary, all started by
`depin devnet up` inside the demo; stopped with `depin devnet down` afterwards. The demo writes what
it measured (`--json`): every party's wealth (wallet + market credit + provider stake + court stake)
before and after each scenario, and the scenario's on-chain facts; the tests check those against
the protocol's formulas and the events on chain.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from depin.deployment import REPO_ROOT
from depinctl.demo import CANARY_MAX_JOBS, CHEATER_MAX_JOBS
from tests.indexer.services import wait_for

BPS = 10_000


def _depin(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200")
    env["PATH"] = os.pathsep.join([str(REPO_ROOT / "node_modules" / ".bin"), str(Path(sys.executable).parent), env["PATH"]])
    return subprocess.run([sys.executable, "-m", "depinctl.cli", *args], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=timeout)


def _demo_checking_its_lock(state: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], str | None]:
    """Runs `depin demo --state-dir state *args`; once it has brought the devnet up (its own `up` is
    done, so only the demo's hold of the folder's lock is left), a `depin devnet down` there must be
    refused at once. Returns the demo's run and what went wrong with the refusal (None: refused)."""
    from .test_devnet_lock import refused

    env = dict(os.environ, COLUMNS="200")
    env["PATH"] = os.pathsep.join([str(REPO_ROOT / "node_modules" / ".bin"), str(Path(sys.executable).parent), env["PATH"]])
    out_path, err_path = state.parent / "demo.out", state.parent / "demo.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "depinctl.cli", "demo", "--state-dir", str(state), *args],
                                stdout=out, stderr=err, text=True, env=env, cwd=REPO_ROOT)
        try:
            wait_for(lambda: "devnet up in" in out_path.read_text() or proc.poll() is not None, 600, "the demo's devnet")
            held = refused(state, proc.pid, "depin demo", "devnet", "down") if proc.poll() is None else "the demo ended early"
            proc.wait(timeout=3_600)  # a guard: the lazy verifier's wait is bounded by draws (CANARY_MAX_JOBS)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out_path.read_text(), err_path.read_text())
    return done, held


def _alive(pid: int) -> bool:
    """Running (a zombie awaiting a reaper that this sandbox's init may never be counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("demo")
    state, facts_path = folder / "devnet", folder / "facts.json"
    try:
        # The devnet first (its start-up is tests/depinctl/test_devnet.py's subject), then the demo.
        up = _depin("devnet", "up", "--state-dir", str(state), timeout=600)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        done, held = _demo_checking_its_lock(state, "--challenge-window", "8", "--timeout", "120", "--json", str(facts_path))
        assert held is None, held  # the demo held the folder for its run: a `down` meanwhile was refused
        recorded = json.loads((state / "devnet.json").read_text()).get("processes", {}) if (state / "devnet.json").exists() else {}
        facts = json.loads(facts_path.read_text()) if facts_path.exists() else {}
        yield done, state, recorded, facts
    finally:
        _depin("devnet", "down", "--state-dir", str(state), timeout=120)


def _ok(demo_run: Any) -> tuple[str, dict[str, Any]]:
    done, _, _, facts = demo_run
    out = done.stdout
    assert done.returncode == 0 and facts.get("ok"), out[-5000:] + done.stderr[-2000:]
    return out, facts


def _delta(flows: dict[str, Any], party: str, part: str | None = None) -> int:
    return int(flows[party]["delta" if part is None else part])


def test_scenario_1_walks_a_job_to_paid_and_explains_its_draw(demo_run) -> None:
    out, facts = _ok(demo_run)
    _, state, _, _ = demo_run
    for step in ("posted", "claimed", "ran + submitted", "draw", "withdrawn"):
        assert f"✓ {step}" in out, (step, out[-3000:])
    # either way to paid: not drawn (challenge window, finalized) or drawn (audited by the pool, ProviderRight)
    assert ("✓ challenge window" in out and "✓ finalized" in out) or "ProviderRight" in out, out[-3000:]
    assert "p_job" in out and "anchor block" in out and "gives the on-chain commitment" in out
    honest = facts["honest"]
    reward, fee, audit_fee = int(honest["reward"]), int(honest["fee"]), int(honest["audit_fee"])
    rebate = fee * honest["kappa_bps"] // BPS
    flows = honest["flows"]
    # the token flows: the requester pays R + f*R, plus, when drawn, what the auditors were paid out of
    # its audit escrow E = A + 3w (an agreeing audit pays A and refunds the jury's 3w; never more than
    # E); the provider gets R + kappa*f*R; exactly (1 - kappa)*f*R leaves the parties (burned)
    audit_paid = sum(_delta(flows, p) for p in flows if p.startswith("verifier"))
    if honest["drawn"]:
        assert 0 < audit_paid <= audit_fee, (audit_paid, audit_fee)
    else:
        assert audit_paid == 0
    assert _delta(flows, "requester") == -(reward + fee + audit_paid)
    # the provider's pay for other jobs finalized meanwhile (a canary job it claimed first) is a row
    # of its own that takes it back out
    others = _delta(flows, "provider (other jobs)") if "provider (other jobs)" in flows else 0
    assert _delta(flows, "provider") + others == reward + rebate, honest.get("other_jobs")
    assert int(honest["left_parties"]) == fee - rebate
    # posted with the SDK's defaults: the result was sealed to the requester and opened with its key
    assert honest["sealed"] is True and "sealed to the requester's key" in out
    # the job's output, downloaded and verified, is in the state folder
    results = list((state / "demo").glob("result-*/result.txt"))
    assert results and results[0].read_text().startswith("poem.txt ")


def test_scenario_2_a_cheater_is_caught_by_a_drawn_audit_a_jury_and_slashed(demo_run) -> None:
    out, facts = _ok(demo_run)
    cheater = facts["cheater"]
    assert cheater["outcome"] == "ProviderWrong"
    assert "jury round 1 (3 seats)" in out and "DRAWN for audit" in out and "EV per job" in out
    flows, collateral = cheater["flows"], int(cheater["collateral"])
    reward = int(cheater["reward"])
    fee = reward * cheater["fee_bps"] // BPS
    per_undrawn_burn = fee - fee * cheater["kappa_bps"] // BPS
    # the cheater: paid for every undrawn job it never ran, slashed its whole collateral on the drawn one
    assert _delta(flows, "cheater", "provider_stake") == -collateral
    assert _delta(flows, "cheater") == int(cheater["paid_undrawn"]) - collateral
    assert int(cheater["paid_undrawn"]) == len(cheater["undrawn"]) * (reward + fee * cheater["kappa_bps"] // BPS)
    # the slashed collateral and A went to the court, which paid the auditor and the jury and burned the rest
    (settled,), (concluded,) = cheater["settled"], cheater["concluded"]
    assert int(settled["providerPayout"]) == 0 and int(settled["toCourt"]) > collateral
    assert int(concluded["toCourt"]) == int(concluded["paidSeats"]) + int(concluded["bounty"]) + int(concluded["refunded"]) + int(concluded["burned"])
    assert sum(_delta(flows, p) for p in flows if p.startswith("verifier")) == int(concluded["paidSeats"])
    # conservation: what left the parties is exactly what was burned
    burned = int(concluded["burned"]) + int(settled["burned"]) + len(cheater["undrawn"]) * per_undrawn_burn
    assert int(cheater["left_parties"]) == burned
    # the expected value of cheating is negative at the job's p_job and collateral
    assert cheater["ev_per_job_R"] < 0
    # the cheater posts until one job is drawn; at this devnet's p_job its cap leaves the demo a chance
    # below 1e-9 of failing by luck (at 16 jobs it was 0.27 %, and a CI run met it)
    assert 0 < cheater["p_job"] < 1 and (1 - cheater["p_job"]) ** CHEATER_MAX_JOBS < 1e-9


def test_scenario_3_a_lazy_verifier_copying_the_canarys_digest_is_slashed(demo_run) -> None:
    out, facts = _ok(demo_run)
    canary = facts["canary"]
    assert canary["outcome"] == "Canary"
    assert "/canary/" in out and "exposed, slashed" in out
    # drawn often (its stake is most of the class's), and within the canary jobs the demo looks at
    assert canary["share"] > 0.95 and 1 <= canary["looked"] <= CANARY_MAX_JOBS
    slashed, reward = int(canary["slashed"]), int(canary["reward"])
    assert slashed >= canary["sigma"] * reward > 0
    flows = canary["flows"]
    # the lazy verifier (wallet + court stake: free, bonds, unbonding) lost exactly the slash; it left the pool
    assert _delta(flows, "lazy verifier") == -slashed
    assert int(flows["lazy verifier"]["court_stake"]) == -int(flows["lazy verifier"]["wallet"]) - slashed
    assert "lazy verifier leaves" in out


def test_scenario_4_emission_wash_trading_loses_money(demo_run) -> None:
    out, facts = _ok(demo_run)
    wash = facts["wash"]
    flows = wash["flows"]
    fee_bps, kappa_bps, nf_bps = wash["fee_bps"], wash["kappa_bps"], wash["no_fault_fee_bps"]
    reward = 10**18
    fee = reward * fee_bps // BPS
    rebate = fee * kappa_bps // BPS
    assert 0 < rebate < fee  # the rebate is a share of the fee it came out of: kappa < 1
    reduced = reward * (fee_bps - nf_bps) // BPS
    expected = 3 * (fee - rebate) + reward * nf_bps // BPS + (fee - reduced) + reduced - reduced * kappa_bps // BPS
    assert int(wash["expected_loss"]) == expected
    net = _delta(flows, "wash requester") + _delta(flows, "wash provider")
    assert net == -expected < 0  # the pair loses (1-kappa)*f*R per job plus both no-fault fees
    assert int(wash["left_parties"]) == expected  # every token that left the pair was burned
    assert int(wash["emitted"]) == 3 * rebate + reduced * kappa_bps // BPS < expected
    assert "no-fault cycle" in out


def test_the_summary_lists_token_flows_per_scenario(demo_run) -> None:
    out, _ = _ok(demo_run)
    assert "token flows per scenario" in out and "✓ demo complete" in out
    for key in ("honest", "cheater", "canary", "wash"):
        assert f"{key}   " in out or f"{key} " in out
    assert out.count("burned (left the parties)") == 4


def test_a_requester_that_switched_its_input_costs_both_sides_the_no_fault_fee_only(demo_run) -> None:
    """After the demo, on the same devnet: a requester posts a job whose input no longer has the
    hash it declared (it switched the file). The provider's executor fetches it, reports the
    availability failure (no fault): the job reopens, each side pays the no-fault fee (2 % of R) and
    nothing else; nobody is slashed beyond it."""
    _ok(demo_run)
    _, state, _, _ = demo_run
    from depin.accounts import dev_account
    from depin.client import Client
    from depin.deployment import to_wei
    from depin.spec import InputSpec, JobSpec, Resources
    from depinctl.devnet import Devnet

    devnet = Devnet(state)
    client = Client.connect(devnet.rpc_url, devnet.deployment_file)
    requester = client.with_account(dev_account(5, client.chain_id))
    provider = devnet.state["accounts"]["provider_executor"]["address"]
    data = state / "demo" / "switched.txt"
    data.write_text("the data the requester declared\n")
    declared = hashlib.sha256(data.read_bytes()).hexdigest()
    data.write_text("other data, switched after posting\n")  # what the provider will fetch
    spec = JobSpec(
        image=devnet.state["images"]["checksum"], command=["depin-checksum"],
        inputs=[InputSpec(path="switched.txt", uri=data.resolve().as_uri(), sha256=declared)],
        resources=Resources(cpus=1, memory_mb=64, max_runtime=30, output_mb=1),
    )
    p = client.params()
    reward = to_wei(1)
    stake_before = client.provider_info(provider).staked
    posted = requester.post_job(spec, reward=reward, challenge_window=8)
    topic = "0x" + client.codec.topics[("JobMarket", "NoFaultFailure")].hex()
    job_topic = "0x" + posted.job_id.to_bytes(32, "big").hex()

    def no_fault() -> list[Any]:
        return client.rpc.get_logs(posted.receipt.block_number, client.block_number(), [client.market], [topic, job_topic])

    deadline = time.monotonic() + 120
    while not no_fault():
        assert time.monotonic() < deadline, f"no NoFaultFailure for job {posted.job_id} within 120 s"
        time.sleep(0.5)
    log = no_fault()[0]
    data_hex = (log["data"] if isinstance(log, dict) else log.data).removeprefix("0x")
    provider_fee, requester_fee, reopened, refund = (int(data_hex[i * 64:(i + 1) * 64], 16) for i in range(4))
    nf = reward * p.no_fault_fee_bps // BPS
    assert (provider_fee, requester_fee, bool(reopened), refund) == (nf, nf, True, 0)
    # the provider lost exactly its no-fault fee; the job was back on the market afterwards
    after = client.provider_info(provider)
    assert stake_before - after.staked in (nf, 2 * nf)  # a second claim of the reopened job fails the same way
    job = client.job(posted.job_id)
    assert job.status.label in ("Open", "Claimed", "Expired")


def test_devnet_down_after_the_demo_leaves_no_process(demo_run) -> None:
    _, state, recorded, _ = demo_run
    assert recorded, "the demo recorded no devnet processes"
    down = _depin("devnet", "down", "--state-dir", str(state), timeout=120)
    assert down.returncode == 0, down.stderr
    pids = [int(p["pid"]) for p in recorded.values() if isinstance(p, dict) and p.get("pid")]
    assert pids and not [pid for pid in pids if _alive(pid)]


def test_a_failing_demo_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    state = tmp_path / "not-a-folder"
    state.write_text("a file where the state folder should be\n")
    done = _depin("demo", "--state-dir", str(state), "--timeout", "5", timeout=120)
    assert done.returncode == 1
    assert "demo failed:" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_an_unknown_scenario_is_refused_before_anything_starts(tmp_path: Path) -> None:
    done = _depin("demo", "--state-dir", str(tmp_path / "devnet"), "--scenario", "bribe", timeout=120)
    assert done.returncode == 2
    assert "unknown scenario 'bribe'" in done.stderr and "wash" in done.stderr
    assert not (tmp_path / "devnet").exists()
