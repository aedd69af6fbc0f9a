"""depin.Client against the real court (test_client.py deploys the TestCourt stand-in): the
challenge and appeal bonds it posts, of the parameters the case opened with, each approved exactly,
and its refusals of an appeal that would revert, before anything is approved or sent.

One deployment with the simulation's parameters (the production entry, mock randomness) on a real
anvil for the module; each case is driven to the state a test needs with the simulation's own moves
(:mod:`depinctl.sim.protocol`: forced draws, seats taken, commits, reveals, tallies).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from typer.testing import CliRunner

from depin import Client
from depin.accounts import DEV_MNEMONIC
from depin.client import Refused
from depin.market import JURY_SIZES, Outcome, Phase
from depinctl.cli import app
from depinctl.cliutil import format_amount
from depinctl.deploy import deploy_with_ape
from depinctl.procs import start_anvil
from depinctl.sim.protocol import Actors, Protocol, copy_provider, run_honestly
from depinctl.sim.run import ACCOUNTS, setup_actors, sim_parameters, write_parameters
from depinctl.sim.world import WAD, World
from tests.cli_errors import assert_one_line_error

BPS = 10_000
REWARD = 10 * WAD
K_PCT = 400


@dataclass
class Court:
    world: World
    actors: Actors
    protocol: Protocol
    url: str
    deployment_file: Path

    def client(self, address: str) -> Client:
        """A client signing as `address`, one of the anvil's accounts (keys of the public development
        mnemonic; the simulation uses 24 of them)."""
        index = self.world.accounts.index(address)
        Account.enable_unaudited_hdwallet_features()
        account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        assert account.address == address
        return Client.connect(self.url, self.deployment_file, account)

    def allowance(self, owner: str) -> int:
        return int(self.world.read(self.world.token, "allowance", owner, self.world.court.address))

    def balance(self, owner: str) -> int:
        return int(self.world.read(self.world.token, "balanceOf", owner))

    def approve_nothing(self, owner: str) -> None:
        """The simulation approves the court for everything; a client must approve what it posts."""
        self.world.send(owner, self.world.token, "approve", self.world.court.address, 0)

    def set_court_params(self, **changes: int) -> None:
        """The court's governor sets a new parameter version: the current one with `changes`."""
        params = {**self.world.view(self.world.court, "params"), **changes}
        self.world.send(self.world.deployer, self.world.court, "setParams", tuple(params.values()))

    def nonce(self, owner: str) -> int:
        return self.world.rpc.nonce(owner, "latest")


@pytest.fixture(scope="module")
def court(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Court]:
    yield from deployed_court(tmp_path_factory.mktemp("court-client"))


def deployed_court(base: Path) -> Iterator[Court]:
    """A fresh anvil with the real court deployed (the simulation's parameters and actors), for the
    life of the generator: what a module's court fixture yields."""
    anvil, url = start_anvil(base / "anvil", args=["--accounts", str(ACCOUNTS), "--balance", "100000"])
    try:
        params_file = write_parameters(base / "parameters.toml", sim_parameters())
        deployment = deploy_with_ape(url, base / "deployments", extra_args=["--parameters", str(params_file)])
        addresses = dict(deployment.addresses)
        addresses.setdefault("MockRandomness", addresses.get("Randomness", ""))
        world = World(url, addresses, deployment.deployer)
        actors = setup_actors(world)
        yield Court(world, actors, Protocol(world, actors), url, base / "deployments" / f"{deployment.chain_id}.json")
    finally:
        anvil.stop()


def test_a_challenge_posts_the_challenge_bond_approved_exactly(court: Court) -> None:
    p, a = court.protocol, court.actors
    job = p.honest_job(a.requester, a.honest_provider, REWARD, K_PCT)
    p.force_not_drawn(job, "sdk-challenge")
    court.approve_nothing(a.requester)
    client = court.client(a.requester)
    bond = client.challenge_bond(job.id)
    assert bond == REWARD * int(p.court_params()["challengeBondBps"]) // BPS > 0
    before = court.balance(a.requester)
    client.challenge(job.id)
    assert court.balance(a.requester) == before - bond
    assert court.allowance(a.requester) == 0  # approved for the bond, and the bond only
    case = client.court_case(job.id)
    assert (Phase(case["phase"]), case["round"], case["challenger"], case["challengeBond"]) == (
        Phase.ACTIVE, 1, a.requester, bond)  # not drawn: the challenge opens the first jury
    other = a.honest[0]
    court.approve_nothing(other)
    nonce = court.nonce(other)
    with pytest.raises(Refused, match="challenge window is closed") as again:
        court.client(other).challenge(job.id)  # the jury is out: the contract says ChallengeClosed
    assert again.value.error_name == "ChallengeClosed" and court.nonce(other) == nonce and court.allowance(other) == 0


def test_depin_job_challenge_posts_the_bond_and_says_how_much(court: Court) -> None:
    """The CLI's challenge on the real court: one line with the bond it posted (the court's
    challengeBondBps x R), approved exactly; a second challenge is one `error:` line."""
    p, a = court.protocol, court.actors
    job = p.honest_job(a.requester, a.honest_provider, REWARD, K_PCT)
    p.force_not_drawn(job, "cli-challenge")
    court.approve_nothing(a.requester)
    before = court.balance(a.requester)
    args = ["job", "challenge", str(job.id), "--rpc-url", court.url, "--deployment", str(court.deployment_file),
            "--dev-account", str(court.world.accounts.index(a.requester))]
    result = CliRunner().invoke(app, args, env={})
    assert result.exit_code == 0, result.output
    bond = REWARD * int(p.court_params()["challengeBondBps"]) // BPS
    assert f"challenged job {job.id} in its court with a bond of {format_amount(bond)} DPC" in result.stdout, result.stdout
    assert court.balance(a.requester) == before - bond and court.allowance(a.requester) == 0
    assert_one_line_error(CliRunner().invoke(app, args, env={}), "challenge window is closed")
    # `depin job status` shows the case from the chain: the first jury, its seats, the challenger.
    net = ["--rpc-url", court.url, "--deployment", str(court.deployment_file)]
    shown = CliRunner().invoke(app, ["job", "status", str(job.id), "--json", *net], env={})
    assert shown.exit_code == 0, shown.output
    d = json.loads(shown.stdout)
    case = court.client(a.requester).court_case(job.id)
    assert d["status"] == "Disputed" and d["case"]["court"].lower() == court.world.court.address.lower(), d
    assert (d["case"]["phase"], d["case"]["round"], d["case"]["roundSeats"]) == ("Active", 1, 3), d
    assert d["case"]["challenger"].lower() == a.requester.lower() and d["case"]["taken"] == int(case["taken"])
    assert d["case"]["seatDeadline"] == int(case["seatDeadline"]) > 0
    text = CliRunner().invoke(app, ["job", "status", str(job.id), *net], env={"COLUMNS": "200"})
    assert text.exit_code == 0, text.output
    assert f"Active, jury round 1 (3 seats: {d['case']['taken']} taken" in text.stdout and "seats taken until" in text.stdout


def test_a_challenge_after_the_window_is_refused_before_anything_is_approved(court: Court) -> None:
    p, a = court.protocol, court.actors
    job = p.honest_job(a.requester, a.honest_provider, REWARD, K_PCT)
    p.force_not_drawn(job, "sdk-late")
    deadline = int(p.job_view(job.id)["deadline"])
    court.world.warp_to(deadline + 1)
    court.approve_nothing(a.requester)
    nonce = court.nonce(a.requester)
    with pytest.raises(Refused, match="challenge window is closed") as late:
        court.client(a.requester).challenge(job.id)
    assert late.value.error_name == "ChallengeClosed"
    assert court.nonce(a.requester) == nonce and court.allowance(a.requester) == 0


def test_an_appeal_posts_the_next_jurys_bond_approved_exactly_and_is_refused_when_it_would_revert(court: Court) -> None:
    """An honest auditor and an honest jury of three find the lazy provider wrong (round 1 tallied).
    Only the provider may appeal that tally: anyone else is refused with nothing sent. The provider's
    appeal posts 7 w (the next jury's seven seats) at the jurors' pay of the case's parameter version
    (governance changed it since), approved exactly; an appeal once the next round is open is refused."""
    p, a = court.protocol, court.actors
    job = p.lazy_job(a.requester, a.provider, REWARD, K_PCT)
    p.run_round(job, 0, [("honest", run_honestly)], label="sdk-appeal")
    p.escalated_to(job, 1)
    case = p.run_round(job, 1, [("honest", run_honestly)] * 3, label="sdk-appeal-k3")
    assert (int(case["phase"]), int(case["round"]), int(case["tally"])) == (Phase.TALLIED, 1, Outcome.PROVIDER_WRONG)
    requester, provider = court.client(a.requester), court.client(a.provider)
    for who in (a.requester, a.provider):
        court.approve_nothing(who)
    nonce = court.nonce(a.requester)
    with pytest.raises(Refused, match="only the provider may appeal") as refused:
        requester.appeal(job.id)
    assert refused.value.error_name == "NotAppellant"
    assert court.nonce(a.requester) == nonce and court.allowance(a.requester) == 0  # nothing approved or sent

    w = REWARD * int(p.court_params()["jurorPayBps"]) // BPS
    # governance doubles the jurors' pay meanwhile (and the bonds its bounds tie to it): the case
    # keeps the parameters it opened with
    pay = 2 * int(p.court_params()["jurorPayBps"])
    court.set_court_params(jurorPayBps=pay, auditorBondBps=3 * pay, jurorBondBps=3 * pay, challengeBondBps=3 * pay)
    assert int(p.court_params()["jurorPayBps"]) * REWARD // BPS == 2 * w
    bond = provider.appeal_bond(job.id)
    assert bond == JURY_SIZES[2] * w > 0
    before = court.balance(a.provider)
    provider.appeal(job.id)
    assert court.balance(a.provider) == before - bond
    assert court.allowance(a.provider) == 0  # 15 w was approved before: 8 w stayed approved to the court
    case = provider.court_case(job.id)
    assert (Phase(case["phase"]), case["round"]) == (Phase.ACTIVE, 2)

    nonce = court.nonce(a.provider)
    with pytest.raises(Refused, match="has no appeal open") as closed:
        provider.appeal(job.id)
    assert closed.value.error_name == "AppealClosed"
    assert court.nonce(a.provider) == nonce and court.allowance(a.provider) == 0


def test_anyone_but_the_provider_appeals_a_tally_for_the_provider(court: Court) -> None:
    """A jury captured by the provider's coalition finds a lazy result right: the provider may not
    appeal its own win, the honest auditor may, posting 7 w."""
    p, a = court.protocol, court.actors
    job = p.lazy_job(a.requester, a.provider, REWARD, K_PCT)
    p.run_round(job, 0, [("honest", run_honestly)], label="sdk-captured")
    p.escalated_to(job, 1)
    auditor = str(p.seat(job.id, 0, 0)["holder"])
    jury = [("coalition", copy_provider)] * 2 + [("honest", run_honestly)]
    case = p.run_round(job, 1, jury, label="sdk-captured-k3")
    assert (int(case["phase"]), int(case["tally"])) == (Phase.TALLIED, Outcome.PROVIDER_RIGHT)
    nonce = court.nonce(a.provider)
    with pytest.raises(Refused, match="anyone but the provider may appeal") as refused:
        court.client(a.provider).appeal(job.id)
    assert refused.value.error_name == "NotAppellant" and court.nonce(a.provider) == nonce
    court.approve_nothing(auditor)
    before = court.balance(auditor)
    court.client(auditor).appeal(job.id)
    w = REWARD * int(p.court_params()["jurorPayBps"]) // BPS
    assert court.balance(auditor) == before - JURY_SIZES[2] * w and court.allowance(auditor) == 0


def test_court_of_names_the_court_each_job_was_posted_under(court: Court) -> None:
    """`Client.court_of`: the court ``verificationInfo`` names for the job (here the file's, the only
    one: a job of an earlier court, tests/executor/test_court_change_stack.py), remembered; an
    unknown job gets the file's court and is not remembered, so its calls say what they said before."""
    p, a = court.protocol, court.actors
    job = p.honest_job(a.requester, a.honest_provider, REWARD, K_PCT)
    client = court.client(a.requester)
    assert client.court_of(job.id) is client.contracts.verification_court
    assert job.id in client._courts and client.court_params(job.id) == client.court_params()
    unknown = job.id + 10**6
    assert client.court_of(unknown) is client.contracts.verification_court and unknown not in client._courts
    assert Phase(client.court_case(unknown)["phase"]) is Phase.NONE


def test_a_verifier_leaves_the_court_and_withdraws_its_stake(court: Court, tmp_path: Path) -> None:
    """`depin verifier status / leave / withdraw` and the SDK's verifier_info, request_leave and
    withdraw_left on the real court: a new member leaves with all of its free stake, is refused a
    withdrawal before the leave delay and one more leave than it has (nothing sent), and gets the
    stake back after the delay, its membership ended. ``--court`` takes only a VerificationCourt of
    this market."""
    from depin.accounts import import_key
    from depin.client import InvalidArgument

    w, p = court.world, court.protocol
    me = w.accounts[21]  # none of the simulation's actors
    index = w.accounts.index(me)
    Account.enable_unaudited_hdwallet_features()
    key = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key
    stake = 2_000 * WAD
    p.fund([me], stake)
    p.join_court(me, stake)
    keystore, password = tmp_path / "verifier.json", tmp_path / "password"
    import_key(key, keystore, "leave and withdraw", kdf_n=2**4)
    password.write_text("leave and withdraw\n")
    password.chmod(0o600)
    common = ["--rpc-url", court.url, "--deployment", str(court.deployment_file)]
    signed = [*common, "--keystore", str(keystore), "--password-file", str(password)]

    shown = CliRunner().invoke(app, ["verifier", "status", me, "--json", *common], env={})
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) | {"releaseAt": 0} == {
        "address": me, "court": w.court.address, "joined": True, "platformClass": 0, "free": str(stake), "locked": "0",
        "unbonding": "0", "releaseAt": 0}

    client = court.client(me)
    nonce = court.nonce(me)
    with pytest.raises(Refused) as more:
        client.request_leave(stake + 1)
    assert more.value.error_name == "InsufficientFreeStake" and court.nonce(me) == nonce
    assert_one_line_error(CliRunner().invoke(app, ["verifier", "withdraw", *signed], env={}), "nothing leaving court")

    left = CliRunner().invoke(app, ["verifier", "leave", "all", *signed], env={})
    assert left.exit_code == 0, left.output
    assert f"leaving court {w.court.address} with {format_amount(stake)} DPC" in left.stdout, left.stdout
    info = client.verifier_info()
    assert (info.joined, info.free, info.locked, info.unbonding) == (True, 0, 0, stake) and info.release_at > client.block_timestamp()
    assert_one_line_error(CliRunner().invoke(app, ["verifier", "leave", "all", *signed], env={}), "no free stake")
    table = CliRunner().invoke(app, ["verifier", "status", me, *common], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "yes, platform class 0" in table.stdout and f"{format_amount(stake)} DPC, withdrawable from" in table.stdout, table.stdout
    with pytest.raises(Refused) as early:
        client.withdraw_left()
    assert early.value.error_name == "LeaveNotReady" and court.nonce(me) == nonce + 1  # the leave only

    w.anvil.advance(info.release_at - client.block_timestamp() + 1)
    before = court.balance(me)
    out = CliRunner().invoke(app, ["verifier", "withdraw", *signed], env={})
    assert out.exit_code == 0, out.output
    assert f"withdrew {format_amount(stake)} DPC from court {w.court.address}" in out.stdout, out.stdout
    assert court.balance(me) == before + stake
    after = client.verifier_info()
    assert (after.joined, after.free, after.unbonding) == (False, 0, 0)  # fully withdrawn: its class slot is free again

    # --court: the file's court by address is the same court; anything else must be this market's court
    assert client.verifier_info(court=w.court.address.lower()).court == w.court.address
    for bad in (w.market.address, "0x12"):
        with pytest.raises(InvalidArgument):
            client.verifier_info(court=bad)
    assert_one_line_error(CliRunner().invoke(app, ["verifier", "status", me, "--court", w.market.address, *common], env={}),
                          "is not a VerificationCourt of market")


def test_a_running_verifier_executor_does_not_undo_its_operators_leave(court: Court, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The verifier executor keeps its key's court stake at ``[verifier] court_stake`` at every pass
    (``executor.verifier.ensure_stake``). It used to undo the operator's ``depin verifier leave``
    sent while it ran: the next pass topped the leaving stake up again from the wallet, and once the
    stake was withdrawn, joined the court again. Now a stake that is leaving is not topped up, and a
    court the key left with all of its stake is not joined again by that process (one warning each);
    a restarted executor joins again, since ``court_stake`` asks it to."""
    import tomli_w

    from depin.accounts import import_key
    from executor import verifier
    from executor.runtime import Runtime, load_executor_config

    w, p = court.world, court.protocol
    me = w.accounts[22]  # none of the simulation's actors
    Account.enable_unaudited_hdwallet_features()
    key = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{w.accounts.index(me)}").key
    stake = 2_000 * WAD
    p.fund([me], 3 * stake)
    keystore, password = tmp_path / "verifier.json", tmp_path / "password"
    import_key(key, keystore, "keeps its stake", kdf_n=2**4)
    password.write_text("keeps its stake\n")
    password.chmod(0o600)
    config = tmp_path / "depin.toml"
    config.write_text(tomli_w.dumps({
        "network": {"rpc_url": court.url, "deployment": str(court.deployment_file)},
        "key": {"keystore": str(keystore), "password_file": str(password)},
        "executor": {"role": "verifier"},
        "engine": {"state_dir": str(tmp_path / "state")},
        "verifier": {"court_stake": "2000"},
    }))
    rt = Runtime(load_executor_config(config))
    client = rt.client

    assert verifier.ensure_stake(rt) is not None  # joins with court_stake
    assert (client.verifier_info().joined, client.verifier_info().free) == (True, stake)
    client.request_leave(stake // 4)  # the operator, while the executor runs
    nonce = court.nonce(me)
    with caplog.at_level("WARNING", logger="executor.verifier"):
        for _ in range(2):  # two passes
            assert verifier.ensure_stake(rt) is None
        info = client.verifier_info()
        assert (info.joined, info.free, info.unbonding) == (True, stake - stake // 4, stake // 4) and court.nonce(me) == nonce
        client.request_leave(stake - stake // 4)
        w.anvil.advance(client.verifier_info().release_at - client.block_timestamp() + 1)
        client.withdraw_left()
        assert not client.verifier_info().joined
        nonce = court.nonce(me)
        for _ in range(2):
            assert verifier.ensure_stake(rt) is None
        assert not client.verifier_info().joined and court.nonce(me) == nonce
    warned = [r.getMessage() for r in caplog.records if r.name == "executor.verifier"]
    assert warned == ["court stake leaving: not topped up",
                      "left the court: not joining it again until the executor restarts (court_stake = 0 to stay out)"], warned

    restarted = Runtime(load_executor_config(config))
    assert verifier.ensure_stake(restarted) is not None
    assert (client.verifier_info().joined, client.verifier_info().free) == (True, stake)
