"""`depin job advance`, `job appeal` and `job withdraw`, and the SDK's `Client.due_step` /
`Client.advance_job` behind them: a requester's way past every passed deadline, on a real anvil.

The market's steps (expire, timeout, finalize) run on the session's devnet (the TestCourt stand-in);
the court's (a drawn audit nobody takes, a tally's window ending, an appeal) on a deployment of the
real VerificationCourt with the simulation's parameters and mock randomness, whose draws the
simulation's moves force (:mod:`depinctl.sim.protocol`), as tests/client/test_court_client.py does.
Chain time moves with anvil's ``evm_increaseTime`` + ``evm_mine``; nothing sleeps. Every refund is
checked against the balances: what the command says the requester got back is what its market
balance and wallet gained.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from depin.accounts import import_key
from depin.client import Client, NothingDue, ResultSealed
from depin.delivery import public_key_of
from depin.deployment import to_wei
from depin.market import JURY_SIZES, FailureCode, JobStatus, Outcome, Phase
from depin.outputs import build_archive
from depinctl.cli import app
from depinctl.cliutil import format_amount
from depinctl.sim.protocol import copy_provider, run_honestly
from depinctl.sim.world import WAD

from .conftest import Devnet, make_spec
from .served import publish, serve
from .test_cli import fails, net, ok
from .test_court_client import Court, deployed_court

PASSWORD = "advance-pw"
ENV = {"DEPIN_KEYSTORE_PASSWORD": PASSWORD, "COLUMNS": "400"}
WIDE = {"COLUMNS": "400"}
BPS = 10_000


def _keyed(devnet: Devnet, tmp_path: Path, name: str, tokens: float = 0) -> tuple[LocalAccount, Client, list[str]]:
    """A fresh funded account (not one of the shared development accounts: their market balances
    are other tests' business), its client, and the CLI arguments that sign with it (a keystore)."""
    account = devnet.new_account(tokens)
    keystore = tmp_path / f"{name}.json"
    import_key(account.key, keystore, PASSWORD, kdf_n=2**10)
    return account, devnet.client(account), ["--keystore", str(keystore), *net(devnet)]


def _provider(devnet: Devnet) -> Client:
    provider = devnet.client(devnet.new_account(1_000))
    provider.register(to_wei(200), "http://provider")
    return provider


def _squash(text: str) -> str:
    """A table's text with its column padding gone."""
    return " ".join(text.split())


def _dpc(amount: int) -> str:
    return f"{format_amount(amount)} DPC"


# ------------------------------------------------------------------------------------ the market's steps


def test_an_open_job_waits_for_its_claim_deadline_then_advance_expires_it_and_withdraw_pays_it_out(
    devnet: Devnet, tmp_path: Path
) -> None:
    _, requester, args = _keyed(devnet, tmp_path, "requester", 20)
    job_id = requester.post_job(make_spec(400), reward=to_wei(1), claim_window=600).job_id
    job = requester.job(job_id)
    line = fails("job", "advance", job_id, *args, env=ENV,
                 match=f"nothing is due for job {job_id} yet: it is Open and waits for a provider to claim it until ")
    assert "(chain time)" in line and f"then `depin job advance {job_id}` expires it" in line, line
    assert f"until then `depin job cancel {job_id}` cancels it" in line, line
    assert "waits for a provider to claim it until" in _squash(ok("job", "status", job_id, *net(devnet), env=WIDE).stdout)
    with pytest.raises(NothingDue) as early:
        requester.advance_job(job_id)
    assert early.value.due.until == job.claim_deadline and early.value.due.then == "expire" and not early.value.sent

    devnet.chain.advance_time(601)
    due = requester.due_step(job_id)
    assert (due.step, due.status) == ("expire", JobStatus.OPEN) and _dpc(job.escrow) in due.does
    status = json.loads(ok("job", "status", job_id, "--json", *net(devnet)).stdout)
    assert status["dueStep"]["step"] == "expire" and status["dueStep"]["command"] == f"depin job advance {job_id}"
    assert f"due now `depin job advance {job_id}` expires it" in _squash(ok("job", "status", job_id, *net(devnet), env=WIDE).stdout)
    credit, wallet = requester.withdrawable(), requester.token_balance()
    out = ok("job", "advance", job_id, *args, env=ENV).stdout
    assert requester.job(job_id).status is JobStatus.EXPIRED
    assert requester.withdrawable() == credit + job.escrow and requester.token_balance() == wallet  # R + fee + A, all of it
    assert f"job {job_id}: expired it" in out and "now Expired" in out, out
    assert f"you got back {_dpc(job.escrow)}: {_dpc(job.escrow)} credited to your market balance" in out, out
    assert "`depin job withdraw` moves your market balance" in out, out
    fails("job", "advance", job_id, *args, env=ENV, match=f"job {job_id} is Expired: it is settled, nothing is due")
    assert "due now" not in ok("job", "status", job_id, *net(devnet), env=WIDE).stdout

    out = ok("job", "withdraw", *args, env=ENV).stdout
    assert requester.token_balance() == wallet + credit + job.escrow and requester.withdrawable() == 0
    assert f"withdrew {_dpc(credit + job.escrow)} of refunds and earnings from the market" in out, out
    fails("job", "withdraw", *args, env=ENV, match=f"nothing to withdraw: {requester.address} has no balance in the market")


def test_cancel_credits_the_whole_escrow_and_names_job_withdraw(devnet: Devnet, tmp_path: Path) -> None:
    """F4: the contract credits reward + fee + audit escrow on a cancel, not the reward alone."""
    _, requester, args = _keyed(devnet, tmp_path, "canceller", 20)
    job_id = requester.post_job(make_spec(401), reward=to_wei(2)).job_id
    job = requester.job(job_id)
    assert job.audit_fee > 0 and job.escrow == job.reward + job.fee + job.audit_fee
    before = requester.withdrawable()
    out = ok("job", "cancel", job_id, *args, env=ENV).stdout
    assert requester.withdrawable() == before + job.escrow
    assert f"its escrow of {_dpc(job.escrow)} (reward + fee + audit escrow) is credited to your market balance" in out, out
    assert "`depin job withdraw` moves it to your wallet" in out, out
    shown = " ".join(ok("job", "cancel", "--help", env=WIDE).stdout.split())
    assert "reward is credited back" not in shown and "its whole escrow, the reward, the fee and the audit escrow" in shown
    assert "whole escrow (the reward, the fee and the audit escrow)" in " ".join((Client.cancel.__doc__ or "").split())


def test_a_claimed_job_past_its_submit_deadline_is_timed_out_reopened_or_refunded(devnet: Devnet, tmp_path: Path) -> None:
    _, requester, args = _keyed(devnet, tmp_path, "timeout-requester", 20)
    bystander_account, bystander, bystander_args = _keyed(devnet, tmp_path, "bystander")
    provider = _provider(devnet)
    early = requester.post_job(make_spec(402, runtime=5), reward=to_wei(1), claim_window=600, max_runtime=5).job_id
    provider.claim(early)
    line = fails("job", "advance", early, *args, env=ENV,
                 match=f"it is Claimed and waits for the result of its provider {provider.address} until ")
    assert f"then `depin job advance {early}` times it out" in line, line
    line = fails("job", "cancel", early, *args, env=ENV, match="only an Open job can be cancelled")
    assert "depin job advance" not in line  # nothing is due yet
    devnet.chain.advance_time(6)
    line = fails("job", "cancel", early, *args, env=ENV, match="only an Open job can be cancelled")
    assert f"its submit deadline has passed: `depin job advance {early}` times it out" in line, line
    # anyone may send it: here a bystander, before the claim deadline: the job reopens, nothing refunded
    assert "reopens" in bystander.due_step(early).does
    credit = requester.withdrawable()
    locked = provider.provider_info().locked
    out = ok("job", "advance", early, *bystander_args, env=ENV).stdout
    job = requester.job(early)
    assert job.status is JobStatus.OPEN and job.provider is None and requester.withdrawable() == credit
    assert provider.provider_info().locked == locked - job.collateral
    assert "timed it out" in out and "the job is Open again until its claim deadline" in out and "now Open" in out, out
    assert f"the requester {requester.address} got nothing back yet" in out and bystander_account.address != requester.address

    # past the claim deadline too: TimedOut, the whole escrow credited back (the SDK alone)
    late = requester.post_job(make_spec(403, runtime=5), reward=to_wei(1), claim_window=10, max_runtime=5).job_id
    provider.claim(late)
    with pytest.raises(NothingDue) as waiting:
        bystander.advance_job(late)
    assert waiting.value.due.until == requester.job(late).deadline and waiting.value.due.then == "timeout"
    devnet.chain.advance_time(11)
    job = requester.job(late)
    credit = requester.withdrawable()
    done = bystander.advance_job(late)
    assert (done.step, done.status, done.requester) == ("timeout", JobStatus.TIMED_OUT, requester.address)
    assert done.credited == job.escrow == requester.withdrawable() - credit and done.paid == 0


def test_a_submitted_job_past_its_challenge_window_is_finalized(devnet: Devnet, tmp_path: Path) -> None:
    """Verify-none jobs (never drawn on this devnet's real randomness); the audit escrow's refund on
    finalize is the real court's test below. The provider's pay leaves through `provider withdraw`,
    which shares `job withdraw`'s code."""
    _, requester, args = _keyed(devnet, tmp_path, "finalize-requester", 20)
    provider_account, provider, provider_args = _keyed(devnet, tmp_path, "finalize-provider", 1_000)
    provider.register(to_wei(200), "http://provider")
    done_id = requester.post_job(make_spec(404), reward=to_wei(1), verify="none", challenge_window=8).job_id
    failed_id = requester.post_job(make_spec(405), reward=to_wei(1), verify="none", challenge_window=8).job_id
    provider.claim_many([done_id, failed_id])
    provider.submit_result(done_id, b"\x05" * 32, "http://provider/results/opaque-05")
    provider.submit_failure(failed_id, FailureCode.OUT_OF_MEMORY, b"\x06" * 32)
    line = fails("job", "advance", done_id, *args, env=ENV,
                 match="it is Submitted and waits for the end of its challenge window until ")
    assert f"then `depin job advance {done_id}` finalizes it: the provider is paid" in line, line
    assert "depin job challenge" not in line  # verify none: nothing to challenge
    devnet.chain.advance_time(9)
    assert requester.due_step(done_id).step == requester.due_step(failed_id).step == "finalize"
    job, failed = requester.job(done_id), requester.job(failed_id)
    credit = requester.withdrawable()
    out = ok("job", "advance", done_id, *args, env=ENV).stdout
    assert requester.job(done_id).status is JobStatus.FINALIZED and requester.withdrawable() == credit
    assert "finalized it: the provider was paid" in out and "you got nothing back (the escrow paid for the work)" in out, out
    out = ok("job", "advance", failed_id, *args, env=ENV).stdout
    assert requester.withdrawable() == credit + failed.escrow  # a failure report: R + fee back (A is 0)
    assert "finalized its failure report" in out and f"you got back {_dpc(failed.escrow)}" in out, out
    earnings = provider.withdrawable()
    assert earnings >= job.reward
    wallet = provider.token_balance()
    out = ok("provider", "withdraw", *provider_args, env=ENV).stdout
    assert f"withdrew {_dpc(earnings)} of earnings" in out and provider.token_balance() == wallet + earnings
    assert provider_account.address == provider.address


def test_a_job_of_a_court_without_cases_is_nothing_advance_can_move(devnet: Devnet, tmp_path: Path) -> None:
    _, requester, args = _keyed(devnet, tmp_path, "stand-in", 20)
    provider = _provider(devnet)
    job_id = requester.post_job(make_spec(406), reward=to_wei(1), challenge_window=60).job_id
    provider.claim(job_id)
    provider.submit_result(job_id, b"\x07" * 32, "http://provider/results/opaque-07")
    devnet.chain.send(devnet.chain.deployer, devnet.chain.contracts.test_court.begin(job_id))
    fails("job", "advance", job_id, *args, env=ENV, match="it is Disputed and waits for its court")
    assert "waits for its court" in _squash(ok("job", "status", job_id, *net(devnet), env=WIDE).stdout)


def test_the_job_group_offers_advance_appeal_and_withdraw() -> None:
    shown = CliRunner().invoke(app, ["job", "--help"], env=WIDE).stdout
    for command in ("advance", "appeal", "withdraw", "cancel", "challenge"):
        assert f" {command} " in shown, shown


# ------------------------------------------------------------------------------------ F6: a hostile manifest


def test_a_manifests_recipient_that_is_no_key_is_not_pasted_into_the_error(devnet: Devnet, tmp_path: Path) -> None:
    """A spec naming no delivery key, a result sealed (to someone else's key) whose manifest's
    encrypt_to is 60 KiB of the provider's text: the wrong-key error said "give the key it is
    sealed to (<all of it>)"; it says "an invalid key" now, in one short line."""
    from executor.results import ResultStore

    _, requester, args = _keyed(devnet, tmp_path, "f6-requester", 20)
    provider = _provider(devnet)
    stranger = public_key_of(bytes(Account.create().key))
    out = tmp_path / "out"
    out.mkdir()
    (out / "r.txt").write_text("sealed\n")
    archive = build_archive(out, 0, tmp_path / "r.tar")
    job_id = requester.post_job(make_spec(407), reward=to_wei(1), seal=False).job_id  # the spec names no key
    provider.claim(job_id)
    files: dict[str, bytes] = {}
    hostile = "\x1b]0;owned\x07" + "HOSTILE-" * 7_500  # 60 KiB: a manifest holds up to 64 KiB
    with serve(files) as base:
        name = publish(provider, job_id, archive, ResultStore(tmp_path / "store", base), files, tmp_path, seal_to=stranger)
        manifest = json.loads(files[f"/results/{name}.json"])
        assert manifest["salt_sealed"] and manifest["encrypt_to"]
        files[f"/results/{name}.json"] = json.dumps({**manifest, "encrypt_to": hostile}).encode()
        with pytest.raises(ResultSealed) as refused:
            requester.download_result(job_id, tmp_path / "sdk")
        message = str(refused.value)
        line = fails("job", "result", job_id, "--out", tmp_path / "cli", *args, env=ENV, match="not encrypted to this key")
    for text in (message, line):
        assert "an invalid key" in text and "HOSTILE" not in text and "\x1b" not in text and len(text) < 400, text[:600]


# ------------------------------------------------------------------------------------ the real court

REWARD = 10 * WAD
K_PCT = 400


@pytest.fixture(scope="module")
def court(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Court]:
    yield from deployed_court(tmp_path_factory.mktemp("advance-court"))


def _cli(court: Court, who: str) -> list[str]:
    return ["--rpc-url", court.url, "--deployment", str(court.deployment_file),
            "--dev-account", str(court.world.accounts.index(who))]


def _court_fails(court: Court, *args: str, match: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], env=WIDE)
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], result.stderr
    return lines[0]


def _court_ok(court: Court, *args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], env=WIDE)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout


def _balances(court: Court, client: Client) -> tuple[int, int]:
    return client.withdrawable(), client.token_balance()


def test_an_undrawn_job_is_finalized_and_its_unused_audit_escrow_comes_back(court: Court) -> None:
    p, a = court.protocol, court.actors
    job = p.honest_job(a.requester, a.honest_provider, REWARD, K_PCT)
    p.force_not_drawn(job, "advance-finalize")
    requester = court.client(a.requester)
    line = _court_fails(court, "job", "advance", str(job.id), *_cli(court, a.requester),
                        match="it is Submitted and waits for the end of its challenge window until ")
    assert f"until then `depin job challenge {job.id}` challenges its result" in line, line
    onchain = requester.job(job.id)
    court.world.warp_to(onchain.deadline + 1)
    assert requester.due_step(job.id).step == "finalize"
    credit, wallet = _balances(court, requester)
    out = _court_ok(court, "job", "advance", str(job.id), *_cli(court, a.requester))
    assert requester.job(job.id).status is JobStatus.FINALIZED
    assert _balances(court, requester) == (credit + onchain.audit_fee, wallet)  # A back: the court used none of it
    assert f"you got back {_dpc(onchain.audit_fee)}: {_dpc(onchain.audit_fee)} credited to your market balance" in out, out


def test_a_drawn_audit_nobody_takes_is_moved_on_by_advance_until_it_settles_unaudited(court: Court) -> None:
    """The drawn auditor does not take the audit: before its seat deadline nothing is due (the
    audit is the drawn verifier's to start); after it, `job advance` opens the case and redraws,
    again after each seat deadline, until the job settles Unaudited and its audit escrow comes back."""
    p, a = court.protocol, court.actors
    job = p.honest_job(a.requester, a.honest_provider, REWARD, K_PCT)
    p.force_audit_draw(job, "any", "advance-unaudited")
    requester = court.client(a.requester)
    onchain = requester.job(job.id)
    seat_delay = int(requester.read(requester.court_of(job.id).required_challenge_window()))
    line = _court_fails(court, "job", "advance", str(job.id), *_cli(court, a.requester),
                        match="it is Submitted and waits for its drawn auditor to take the audit until ")
    assert f"then `depin job advance {job.id}` opens its court case" in line, line
    due = requester.due_step(job.id)
    assert due.until == onchain.deadline - onchain.challenge_window + seat_delay and due.meanwhile == "challenge"
    credit, wallet = _balances(court, requester)
    said: list[str] = []
    for _ in range(12):
        if requester.job(job.id).status.settled:
            break
        due = requester.due_step(job.id)
        if not due.due:
            assert due.until is not None and due.then == "advance", due
            _court_fails(court, "job", "advance", str(job.id), *_cli(court, a.requester), match="nothing is due")
            court.world.warp_to(due.until + 1)
            continue
        said.append(_court_ok(court, "job", "advance", str(job.id), *_cli(court, a.requester)))
        if not requester.job(job.id).status.settled:
            assert "got nothing back yet" in said[-1], said[-1]
    else:
        pytest.fail(f"job {job.id} did not settle: {requester.court_case(job.id)}")
    assert "opened its court case (the drawn audit nobody had taken)" in said[0] and "now Disputed" in said[0], said[0]
    assert any("redrew the empty seats of the audit" in s for s in said), said
    assert "concluded the case: Unaudited" in said[-1] and "now Resolved" in said[-1], said[-1]
    # Unaudited: the market credits the audit escrow back; the court gets (and pays) nothing
    assert f"you got back {_dpc(onchain.audit_fee)}: {_dpc(onchain.audit_fee)} credited to your market balance" in said[-1]
    settled = requester.settlement(job.id)
    assert settled is not None and settled.outcome is Outcome.UNAUDITED and settled.requester_refund == onchain.audit_fee
    assert _balances(court, requester) == (credit + onchain.audit_fee, wallet)


def test_an_agreeing_audit_waits_out_its_windows_then_advance_pays_the_unused_escrow_to_the_wallet(court: Court) -> None:
    p, a = court.protocol, court.actors
    job = p.honest_job(a.requester, a.honest_provider, REWARD, K_PCT)
    case = p.run_round(job, 0, [("honest", run_honestly)], label="advance-agree")
    assert (int(case["phase"]), int(case["tally"])) == (Phase.TALLIED, Outcome.PROVIDER_RIGHT)
    requester = court.client(a.requester)
    onchain = requester.job(job.id)
    line = _court_fails(court, "job", "advance", str(job.id), *_cli(court, a.requester),
                        match="it is Disputed and waits for the end of the audit's canary and challenge windows (its tally: ProviderRight) until ")
    assert f"then `depin job advance {job.id}` concludes the case" in line, line
    if court.world.now() <= onchain.deadline:
        assert f"`depin job challenge {job.id}`" in line, line
    shown = _court_ok(court, "job", "status", str(job.id), "--rpc-url", court.url, "--deployment", str(court.deployment_file))
    assert "waits for the end of the audit's canary and challenge windows" in _squash(shown)
    court.world.warp_to(int(case["windowEnd"]) + 1)
    due = requester.due_step(job.id)
    assert due.step == "advance" and "concludes the case with the tally of the audit (ProviderRight)" in due.does
    assert "depin job advance" in _court_ok(court, "job", "status", str(job.id), "--rpc-url", court.url, "--deployment",
                                            str(court.deployment_file))
    credit, wallet = _balances(court, requester)
    done = requester.advance_job(job.id)
    w = REWARD * int(p.court_params()["jurorPayBps"]) // BPS
    # the auditor got A = E - 3w; the jury deposit 3w nobody used goes to the requester's wallet
    assert (done.step, done.status, done.credited, done.paid) == ("advance", JobStatus.RESOLVED, 0, 3 * w)
    assert _balances(court, requester) == (credit, wallet + done.paid) and onchain.audit_fee > done.paid
    assert "concluded the case: ProviderRight" in done.did and "the job settled ProviderRight" in done.did, done.did
    # `job status` shows what the court paid to the wallet, not only the market's refund (review, stop 56:
    # it showed "requester refunded 0")
    settled = requester.settlement(job.id)
    assert settled is not None and (settled.requester_refund, settled.court_paid) == (0, done.paid)
    shown = _squash(_court_ok(court, "job", "status", str(job.id), "--rpc-url", court.url, "--deployment", str(court.deployment_file)))
    assert f"paid {_dpc(done.paid)} to its wallet by the court" in shown, shown


def test_a_requester_appeals_a_jury_tally_for_a_lazy_provider_and_advance_says_so_before(court: Court) -> None:
    """A jury captured by the provider's coalition finds a lazy result right: while its appeal
    window is open `job advance` names `job appeal`, which posts 7 w (approved exactly); a tally
    against the provider is the provider's alone to appeal, so it names no appeal."""
    p, a = court.protocol, court.actors
    job = p.lazy_job(a.requester, a.provider, REWARD, K_PCT)
    p.run_round(job, 0, [("honest", run_honestly)], label="advance-appeal")
    p.escalated_to(job, 1)
    jury = [("coalition", copy_provider)] * 2 + [("honest", run_honestly)]
    case = p.run_round(job, 1, jury, label="advance-appeal-k3")
    assert (int(case["phase"]), int(case["round"]), int(case["tally"])) == (Phase.TALLIED, 1, Outcome.PROVIDER_RIGHT)
    line = _court_fails(court, "job", "advance", str(job.id), *_cli(court, a.requester),
                        match="waits for the end of the appeal window of the tally of jury round 1 (ProviderRight) until ")
    assert f"until then `depin job appeal {job.id}` appeals the tally" in line, line
    court.approve_nothing(a.requester)
    w = REWARD * int(p.court_params()["jurorPayBps"]) // BPS
    before = court.balance(a.requester)
    out = _court_ok(court, "job", "appeal", str(job.id), *_cli(court, a.requester))
    bond = JURY_SIZES[2] * w
    assert court.balance(a.requester) == before - bond and court.allowance(a.requester) == 0
    assert (f"appealed the ProviderRight tally of job {job.id}'s jury round 1 with a bond of {_dpc(bond)}: "
            "jury round 2 (7 seats) decides next") in out, out
    client = court.client(a.requester)
    assert (Phase(client.court_case(job.id)["phase"]), client.court_case(job.id)["round"]) == (Phase.ACTIVE, 2)
    _court_fails(court, "job", "appeal", str(job.id), *_cli(court, a.requester), match="has no appeal open")
    due = client.due_step(job.id)
    assert not due.due and "jury round 2 (7 seats)" in due.waits_for and due.meanwhile is None

    # a tally against the provider: nothing for the requester to appeal
    wrong = p.lazy_job(a.requester, a.provider, REWARD, K_PCT)
    p.run_round(wrong, 0, [("honest", run_honestly)], label="advance-wrong")
    p.escalated_to(wrong, 1)
    case = p.run_round(wrong, 1, [("honest", run_honestly)] * 3, label="advance-wrong-k3")
    assert (int(case["phase"]), int(case["tally"])) == (Phase.TALLIED, Outcome.PROVIDER_WRONG)
    line = _court_fails(court, "job", "advance", str(wrong.id), *_cli(court, a.requester), match="(ProviderWrong) until ")
    assert "depin job appeal" not in line, line
    court.world.warp_to(int(case["windowEnd"]) + 1)
    requester = court.client(a.requester)
    onchain = requester.job(wrong.id)
    credit, wallet = _balances(court, requester)
    out = _court_ok(court, "job", "advance", str(wrong.id), *_cli(court, a.requester))
    settled = requester.settlement(wrong.id)
    assert settled is not None and settled.outcome is Outcome.PROVIDER_WRONG
    assert settled.requester_refund == onchain.reward + onchain.fee
    gained = requester.withdrawable() - credit, requester.token_balance() - wallet
    assert gained[0] == settled.requester_refund
    assert f"you got back {_dpc(sum(gained))}: {_dpc(gained[0])} credited to your market balance" in out, out
    if gained[1]:
        assert f"{_dpc(gained[1])} paid to your wallet" in out, out
