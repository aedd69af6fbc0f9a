"""depin.Client against a real deployment: requester, provider and executor actions with exact
token deltas, and the clear errors a caller can act on."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from eth_utils import keccak

from depin import Client
from depin.accounts import DevKeyRefused, dev_account
from depin.chain import RpcUnavailable
from depin.client import (
    SUBMIT_MARGIN,
    ClientError,
    InsufficientAllowance,
    InsufficientBalance,
    NoAccount,
    NodeUnreachable,
    UnknownJob,
    WrongNetwork,
)
from depin.config import load_config
from depin.delivery import public_key_of
from depin.deployment import Deployment, to_wei
from depin.errors import ChainError
from depin.market import FailureCode, JobStatus, Outcome, VerifyMode
from depin.spec import cpu_seconds, parse_spec, with_delivery
from depin.transactions import TxReverted
from depinctl.procs import free_port
from tests.indexer.services import FlakyProxy

from .conftest import Devnet, make_spec


def escrow(reward: int, verify: VerifyMode = VerifyMode.REEXEC) -> int:
    """R + f*R + E at the devnet parameters (f = 2 %, the audit escrow E = A + 3w = 4.4 R; none for
    verify-none jobs)."""
    return reward + reward * 200 // 10_000 + (0 if verify == VerifyMode.NONE else reward * 44_000 // 10_000)


def test_post_with_permit_escrows_reward_fee_and_audit_fee_in_one_transaction(devnet: Devnet) -> None:
    requester = devnet.new_account(10)
    client = devnet.client(requester)
    spec = make_spec(1, runtime=120, cpus=2)
    posted = client.post_job(spec, reward=to_wei("1.25"))
    assert client.token_balance() == to_wei(10) - escrow(to_wei("1.25")) == to_wei(10) - to_wei("6.775")
    assert client.allowance(spender="JobMarket") == 0  # the permit was for exactly what was pulled
    nonce = int(devnet.chain.rpc.call("eth_getTransactionCount", [requester.address, "latest"]), 16)
    assert nonce == 1  # permit + post in a single transaction
    job = client.job(posted.job_id)
    assert job.status is JobStatus.OPEN and job.requester == requester.address
    assert cpu_seconds(spec) == 240
    # The submit window is the run plus the margin providers need to fetch, archive and submit.
    assert (job.reward, job.max_runtime) == (to_wei("1.25"), 120 + SUBMIT_MARGIN)
    assert (job.fee, job.audit_fee, job.verify_mode) == (to_wei("0.025"), to_wei("5.5"), VerifyMode.REEXEC)
    assert job.audit_bps > 0 and job.params_version == 1 and job.escrow == escrow(to_wei("1.25"))
    sealed = with_delivery(spec, public_key_of(bytes(requester.key)))  # sealed to the poster by default
    assert job.spec_hash == keccak(sealed) and job.provider is None and job.commitment == b"\0" * 32
    params = client.params()
    assert params.escrow(job.reward) == job.escrow and params.court == client.court
    assert job.challenge_window == params.min_challenge_window and job.collateral_pct == params.min_collateral_pct
    assert client.spec_bytes(posted.job_id) == sealed
    assert parse_spec(client.spec_bytes(posted.job_id), job.spec_hash) == parse_spec(sealed)
    assert posted.gas_used > 0 and posted.tx_hash.startswith("0x")


def test_post_with_approve_and_from_market_credit(devnet: Devnet) -> None:
    requester = devnet.new_account(12)
    client = devnet.client(requester)
    first = client.post_job(make_spec(2), reward=to_wei(2), permit=False, claim_window=600, challenge_window=30,
                            collateral_pct=500)
    assert client.token_balance() == to_wei(12) - escrow(to_wei(2)) == to_wei("1.16")
    assert client.allowance(spender="JobMarket") == 0
    job = client.job(first.job_id)
    assert (job.challenge_window, job.collateral_pct, job.collateral) == (30, 500, to_wei(10))
    # cancel: the escrow is credited in the market, and the next post draws all of it from that credit
    client.cancel(first.job_id)
    assert client.job(first.job_id).status is JobStatus.CANCELLED
    assert client.withdrawable() == escrow(to_wei(2))
    second = client.post_job(make_spec(3), reward=to_wei("1.5"), permit=False)
    assert client.withdrawable() == escrow(to_wei(2)) - escrow(to_wei("1.5")) and client.token_balance() == to_wei("1.16")
    client.cancel(second.job_id)
    client.withdraw()
    assert client.withdrawable() == 0 and client.token_balance() == to_wei(12)


def test_allowance_and_balance_errors_are_clear_and_send_nothing(devnet: Devnet) -> None:
    requester = devnet.new_account(1)
    client = devnet.client(requester)
    with pytest.raises(InsufficientBalance, match=r"insufficient DPC balance for a reward of 2 plus fee 0.04 and audit fee 8.8: "
                                                  r"have 1, need 10.84"):
        client.post_job(make_spec(4), reward=to_wei(2))
    with pytest.raises(InsufficientAllowance, match="insufficient DPC allowance"):
        client.post_job(make_spec(4), reward=to_wei("0.1"), permit=False, approve=False)
    with pytest.raises(ClientError, match="unknown spender 'JobMarkt': a contract name .*JobMarket.* or an address"):
        client.approve("JobMarkt", 1)
    with pytest.raises(ClientError, match="verify must be 'reexec' or 'none'"):
        client.post_job(make_spec(4), reward=to_wei("0.4"), verify="sometimes")
    with pytest.raises(ClientError, match=r"claim window 1 s is outside the market's bounds \[5, 86400\]"):
        client.post_job(make_spec(4), reward=to_wei(1), claim_window=1)
    assert int(devnet.chain.rpc.call("eth_getTransactionCount", [requester.address, "pending"]), 16) == 0


def test_a_runtime_whose_window_no_provider_takes_is_refused_before_anything_is_sent(devnet: Devnet) -> None:
    """The default submit window is the spec's runtime + SUBMIT_MARGIN, clamped to the market's
    maxRuntime. Clamped below what a provider's claim policy keeps (runtime + 45 s; 30 s more with
    http(s) inputs: depin.spec.policy_window, the executor's defaults), the post went through and the
    job waited unclaimed, its escrow held, until its claim window expired (found by review, stop 55).
    Now refused, with the runtime that would fit; at that runtime the post goes through and its
    window is one the policy takes."""
    from depin.spec import POLICY_INPUT_MARGIN, POLICY_SUBMIT_MARGIN, policy_window
    from executor.policy import INPUT_MARGIN, SUBMIT_MARGIN

    assert (SUBMIT_MARGIN, INPUT_MARGIN) == (POLICY_SUBMIT_MARGIN, POLICY_INPUT_MARGIN)  # one source
    requester = devnet.new_account(100)
    client = devnet.client(requester)
    bound = client.params().max_runtime
    http = [{"path": "data", "uri": "https://example.org/data", "sha256": "ab" * 32}]
    for inputs, margin in ((None, POLICY_SUBMIT_MARGIN), (http, POLICY_SUBMIT_MARGIN + POLICY_INPUT_MARGIN)):
        with pytest.raises(ClientError, match=rf"needs {bound + 1} s .* allows at most {bound} s; lower resources.max_runtime to {bound - margin} s or less"):
            client.post_job(make_spec(70, runtime=bound - margin + 1, inputs=inputs), reward=to_wei(1))
    assert int(devnet.chain.rpc.call("eth_getTransactionCount", [requester.address, "pending"]), 16) == 0
    for n, (inputs, margin) in enumerate(((None, POLICY_SUBMIT_MARGIN), (http, POLICY_SUBMIT_MARGIN + POLICY_INPUT_MARGIN))):
        spec = make_spec(71 + n, runtime=bound - margin, inputs=inputs)
        job = client.job(client.post_job(spec, reward=to_wei(1)).job_id)
        assert job.max_runtime == bound >= policy_window(spec)


def test_an_explicit_submit_window_shorter_than_the_runtime_is_refused_before_anything_is_sent(devnet: Devnet) -> None:
    """A window shorter than the spec's own runtime was posted as given (review, stop 55): a run
    that uses its runtime could never be submitted in time, so no provider's policy claims it and the
    escrow waited out the claim window. Refused now, naming what the policy keeps; the runtime
    itself is accepted (a provider with smaller margins may take it)."""
    requester = devnet.new_account(100)
    client = devnet.client(requester)
    spec = make_spec(80, runtime=60)
    with pytest.raises(ClientError, match=r"max_runtime=59 s is shorter than the spec's runtime of 60 s.*policy keeps 105 s"):
        client.post_job(spec, reward=to_wei(1), max_runtime=59)
    assert int(devnet.chain.rpc.call("eth_getTransactionCount", [requester.address, "pending"]), 16) == 0
    assert client.job(client.post_job(spec, reward=to_wei(1), max_runtime=60).job_id).max_runtime == 60


def test_a_spec_over_the_size_limit_is_refused_before_anything_is_escrowed(devnet: Devnet) -> None:
    """Executors and the indexer refuse spec bytes over MAX_SPEC_BYTES (parse_spec with the on-chain
    hash): such a job could never be claimed, its escrow held until the claim window expires. A
    JobSpec built without parse_spec, posted unsealed, is measured too: nothing is sent."""
    from depin.errors import SpecError
    from depin.spec import JobSpec

    requester = devnet.new_account(20)
    client = devnet.client(requester)
    spec = JobSpec.model_validate({**make_spec(60).model_dump(mode="json"), "env": {"A": "x" * 20_000}})
    for seal in (False, True):
        with pytest.raises(SpecError, match=r"is 20\d\d\d bytes; the limit is 16384"):
            client.post_job(spec, reward=to_wei(1), seal=seal)
        with pytest.raises(SpecError, match="the limit is 16384"):
            client.post_jobs([make_spec(61), spec], reward=to_wei(1), seal=seal)
    assert client.token_balance() == to_wei(20)
    assert int(devnet.chain.rpc.call("eth_getTransactionCount", [requester.address, "pending"]), 16) == 0


def test_provider_register_stake_unstake_withdraw(devnet: Devnet) -> None:
    provider = devnet.new_account(1_000)
    client = devnet.client(provider)
    assert not client.provider_info().registered
    with pytest.raises(ClientError, match="below the minimum of 100"):
        client.register(to_wei(50), "http://p")
    client.register(to_wei(300), "http://provider.example:8700")
    info = client.provider_info()
    assert info.registered and info.staked == to_wei(300) and info.endpoint == "http://provider.example:8700"
    with pytest.raises(ClientError, match="registered already"):
        client.register(to_wei(300), "http://p")
    client.stake(to_wei(200))
    assert client.provider_info().staked == to_wei(500)
    assert client.token_balance() == to_wei(500)
    with pytest.raises(ClientError, match="available"):
        client.request_unstake(to_wei(600))
    client.request_unstake(to_wei(150))
    info = client.provider_info()
    assert (info.staked, info.unbonding) == (to_wei(350), to_wei(150))
    with pytest.raises(ClientError, match="released at"):
        client.withdraw_unstaked()
    devnet.chain.advance_time(client.unbonding_delay() + 1)
    client.withdraw_unstaked()
    assert client.token_balance() == to_wei(650)
    assert client.provider_info().unbonding == 0


def _provider(devnet: Devnet) -> Client:
    client = devnet.client(devnet.new_account(1_000))
    client.register(to_wei(500), "http://provider")
    return client


def test_a_result_uri_that_is_not_utf8_is_read_with_replacement(devnet: Devnet) -> None:
    """Solidity takes any bytes as a string: a provider's result URI of b"...\\xff" made eth_abi raise
    UnicodeDecodeError out of Client.submission, which every verifier's delivery check, the
    requester's download and its delivery check call (found by review, stop 55: every honest
    auditor's seat crashed before its commit, and the job settled Unaudited). Read with
    replacement, as the index does."""
    from eth_abi import encode as abi_encode

    requester = devnet.client(devnet.new_account(10))
    provider = _provider(devnet)
    job_id = requester.post_job(make_spec(6), reward=to_wei(1), verify="none").job_id
    provider.claim(job_id)
    selector = keccak(text="submitResult(uint256,bytes32,string)")[:4]
    data = "0x" + (selector + abi_encode(["uint256", "bytes32", "bytes"], [job_id, b"\x07" * 32, b"http://provider/\xff"])).hex()
    provider._signer().send(provider.market, data, what="submitResult with a URI that is not UTF-8")
    sub = requester.submission(job_id)
    assert sub is not None and sub.uri == "http://provider/\ufffd" and sub.commitment == b"\x07" * 32 and not sub.failure


def test_claim_race_submit_finalize_and_withdraw(devnet: Devnet) -> None:
    requester = devnet.client(devnet.new_account(10))
    p1, p2 = _provider(devnet), _provider(devnet)
    job_id = requester.post_job(make_spec(5), reward=to_wei(1), verify="none").job_id  # never drawn: it finalizes
    assert requester.token_balance() == to_wei(10) - escrow(to_wei(1), VerifyMode.NONE)
    p1.claim(job_id)
    with pytest.raises(TxReverted) as lost:
        p2.claim(job_id)
    assert lost.value.error_name == "WrongStatus" and not lost.value.sent
    job = requester.job(job_id)
    assert job.status is JobStatus.CLAIMED and job.provider == p1.address
    assert (job.verify_mode, job.audit_fee, job.audit_bps) == (VerifyMode.NONE, 0, 0)
    assert p1.provider_info().locked == job.collateral == to_wei(4)
    p1.submit_result(job_id, b"\x07" * 32, "http://provider/results/opaque-07")
    sub = requester.submission(job_id)
    assert sub is not None and sub.commitment == b"\x07" * 32 and sub.uri.endswith("opaque-07") and not sub.failure
    job = requester.job(job_id)
    assert job.commitment == b"\x07" * 32 and job.spec_hash == b"\0" * 32 and job.anchor_block == sub.anchor_block > 0
    with pytest.raises(TxReverted) as early:
        requester.finalize(job_id)
    assert early.value.error_name == "TooEarly"
    devnet.chain.advance_time(job.challenge_window + 1)
    assert requester.is_drawn(job_id) is False
    bystander = devnet.client(devnet.new_account())
    receipt = bystander.finalize_many([job_id])
    assert bystander.finalized_count(receipt) == 1
    assert requester.job(job_id).status is JobStatus.FINALIZED
    rebate = job.fee * 5_000 // 10_000  # kappa = 0.5 of the fee: the only emission
    assert p1.withdrawable() == to_wei(1) + rebate
    assert requester.pending_burn() >= job.fee - rebate
    before = p1.token_balance()
    p1.withdraw()
    assert p1.token_balance() == before + to_wei(1) + rebate
    assert p1.provider_info().locked == 0 and p1.provider_info().jobs_completed == 1
    bystander.flush_burn()
    assert requester.pending_burn() == 1  # one base unit stays, so the slot stays warm


def test_batch_post_claim_and_submit_in_one_transaction_each(devnet: Devnet) -> None:
    """Client.post_jobs escrows the whole batch in one transaction (each spec sealed and defaulted
    like post_job), claim_many locks the sum of the collaterals once, submit_results submits every
    result; an empty batch is refused before anything is sent, and a batch holding a job that
    cannot be claimed reverts whole at the estimate (nothing sent)."""
    requester = devnet.client(devnet.new_account(20))
    provider, other = _provider(devnet), _provider(devnet)
    with pytest.raises(ClientError, match="at least one"):
        requester.post_jobs([], reward=to_wei(1))
    posted = requester.post_jobs([make_spec(30), make_spec(31), make_spec(32)], reward=to_wei(1), verify="none")
    ids = [p.job_id for p in posted]
    assert ids == list(range(ids[0], ids[0] + 3)) and len({p.tx_hash for p in posted}) == 1
    assert requester.token_balance() == to_wei(20) - 3 * escrow(to_wei(1), VerifyMode.NONE)
    mine = public_key_of(bytes(requester.account.key))
    assert all(p.sealed_to == mine for p in posted)
    assert [requester.job(i).spec_hash for i in ids] == [keccak(with_delivery(make_spec(n), mine)) for n in (30, 31, 32)]
    other.claim(ids[1])
    with pytest.raises(TxReverted) as lost:
        provider.claim_many(ids)
    assert lost.value.error_name == "WrongStatus" and not lost.value.sent
    provider.claim_many([ids[0], ids[2]])
    assert provider.provider_info().locked == 2 * requester.job(ids[0]).collateral
    provider.submit_results([(i, bytes([i % 256]) * 32, f"http://provider/results/{i}") for i in (ids[0], ids[2])])
    for i in (ids[0], ids[2]):
        job = requester.job(i)
        assert job.status is JobStatus.SUBMITTED and job.commitment == bytes([i % 256]) * 32 and job.provider == provider.address
    with pytest.raises(ClientError, match="at least one"):
        provider.submit_results([])


def test_challenges_go_to_the_court_and_the_court_settles(devnet: Devnet) -> None:
    """A job's provider cannot challenge it, nor can anyone challenge a verify-none job (the client
    refuses, nothing is sent); the court ends a re-executed job with an Outcome (these tests deploy
    the TestCourt stand-in, settled by hand)."""
    requester = devnet.client(devnet.new_account(20))
    provider = _provider(devnet)
    job_id = requester.post_job(make_spec(6), reward=to_wei(2), challenge_window=300).job_id
    unverified = requester.post_job(make_spec(13), reward=to_wei(1), verify="none").job_id
    for jid in (job_id, unverified):
        provider.claim(jid)
        provider.submit_result(jid, b"\x09" * 32, "http://provider/results/opaque-09")
    with pytest.raises(ClientError, match="may not challenge") as own:
        provider.challenge(job_id)
    assert own.value.error_name == "ProviderCannotChallenge"
    with pytest.raises(ClientError, match="verify none"):
        requester.challenge(unverified)
    job = requester.job(job_id)
    locked = provider.provider_info().locked
    court_balance = requester.token_balance(requester.court)
    devnet.chain.send(devnet.chain.deployer, devnet.chain.contracts.test_court.begin(job_id))
    assert requester.job(job_id).status is JobStatus.DISPUTED
    devnet.chain.send(devnet.chain.deployer, devnet.chain.contracts.test_court.settle(job_id, Outcome.PROVIDER_WRONG))
    assert requester.job(job_id).status is JobStatus.RESOLVED
    assert requester.withdrawable() == job.escrow - job.audit_fee  # R + fee back; A pays the auditor
    info = provider.provider_info()
    assert (info.locked, info.jobs_slashed) == (locked - job.collateral, 1)
    # A from the escrow and the collateral slashed to the court
    assert requester.token_balance(requester.court) == court_balance + job.audit_fee + job.collateral


def test_failures_no_fault_expire_and_timeout(devnet: Devnet) -> None:
    requester = devnet.client(devnet.new_account(20))
    provider = _provider(devnet)
    anyone = devnet.client(devnet.new_account())
    # an availability failure: no fault but not free; the job reopens at once
    reopened = requester.post_job(make_spec(7), reward=to_wei(1)).job_id
    provider.claim(reopened)
    staked = provider.provider_info().staked
    provider.submit_failure(reopened, FailureCode.IMAGE_UNAVAILABLE, b"\x02" * 32)
    sub = requester.submission(reopened)
    assert sub is not None and sub.failure and sub.failure_code is FailureCode.IMAGE_UNAVAILABLE
    assert (sub.challenge_deadline, sub.anchor_block) == (0, 0)
    job = requester.job(reopened)
    assert job.status is JobStatus.OPEN and job.provider is None and job.fee == 0  # 2 % of R out of the 2 % fee
    assert provider.provider_info().staked == staked - to_wei("0.02") and provider.provider_info().locked == 0
    # a failure report, not drawn (verify none), finalized: R + fee back
    failed = requester.post_job(make_spec(14), reward=to_wei(1), verify="none").job_id
    provider.claim(failed)
    provider.submit_failure(failed, FailureCode.OUT_OF_MEMORY, b"\x03" * 32)
    job = requester.job(failed)
    assert job.failure and job.status is JobStatus.SUBMITTED and job.failure_code == FailureCode.OUT_OF_MEMORY
    devnet.chain.advance_time(job.challenge_window + 1)
    credit = requester.withdrawable()
    anyone.finalize(failed)
    assert requester.withdrawable() == credit + to_wei(1) + job.fee
    # expire
    expiring = requester.post_job(make_spec(8), reward=to_wei(1), claim_window=5).job_id
    devnet.chain.advance_time(6)
    anyone.expire(expiring)
    assert requester.job(expiring).status is JobStatus.EXPIRED
    # timeout after the claim deadline: refund, collateral burned
    slow = requester.post_job(make_spec(9, runtime=5), reward=to_wei(1), claim_window=10, max_runtime=5).job_id
    provider.claim(slow)
    devnet.chain.advance_time(11)
    anyone.timeout(slow)
    assert requester.job(slow).status is JobStatus.TIMED_OUT
    assert provider.provider_info().jobs_slashed == 2  # the no-fault fee, then the timeout


def test_a_node_lost_after_connecting_is_a_chain_error_not_a_client_error(devnet: Devnet) -> None:
    """At connect a node that does not answer is NodeUnreachable (both a ClientError and a
    ChainError); once connected, a node that stops answering raises RpcUnavailable, a ChainError
    only, as the README's "Errors" says: a script retrying on a lost node catches ChainError."""
    proxy = FlakyProxy(devnet.url)
    try:
        client = Client.connect(proxy.url, devnet.deployment_file, retries=0)
        assert client.job_count() >= 0
        proxy.down = True
        with pytest.raises(ChainError) as lost:
            client.job_count()
        assert isinstance(lost.value, RpcUnavailable) and not isinstance(lost.value, ClientError)
        with pytest.raises(NodeUnreachable) as at_connect:
            Client.connect(proxy.url, devnet.deployment_file, retries=0)
        assert isinstance(at_connect.value, ChainError) and isinstance(at_connect.value, ClientError)
    finally:
        proxy.close()


def test_read_errors(devnet: Devnet, tmp_path: Path) -> None:
    client = devnet.client()
    with pytest.raises(UnknownJob, match="unknown job id 999999"):
        client.job(999_999)
    with pytest.raises(UnknownJob):
        client.job(0)
    first = devnet.client(devnet.new_account(10)).post_job(make_spec(41), reward=to_wei(1), permit=False).job_id
    assert client.job(str(first)).job_id == client.job(first).job_id == first
    for bad in (first + 0.5, float(first), True, f" {first}", "1e3", "٣", None):  # int() would truncate or take these
        with pytest.raises(UnknownJob, match="is not a job id"):
            client.job(bad)  # type: ignore[arg-type]
    with pytest.raises(UnknownJob, match="no JobPosted event for job 999999"):
        client.posted_spec_hash(999_999)
    posted = devnet.client(devnet.new_account(10)).post_job(make_spec(40), reward=to_wei(1), permit=False)
    spec_hash = client.posted_spec_hash(posted.job_id)
    assert spec_hash == keccak(client.spec_bytes(posted.job_id)) == client.job(posted.job_id).spec_hash
    with pytest.raises(NoAccount, match="signing key"):  # a job that exists, whatever ran before
        client.cancel(posted.job_id)
    with pytest.raises(NodeUnreachable, match="depin devnet up"):
        Client.connect(f"http://127.0.0.1:{free_port()}", devnet.deployment_file)
    other = Deployment.from_json(devnet.deployment_file.read_text())
    wrong_chain = Deployment(11155111, "sepolia", 1, other.addresses, {}, other.deployer)
    with pytest.raises(WrongNetwork, match="chain 31337 but the deployment is for chain 11155111"):
        Client.connect(devnet.url, wrong_chain)
    elsewhere = Deployment(other.chain_id, "devnet", 1, dict(other.addresses, JobMarket="0x" + "12" * 20), {},
                           other.deployer)
    with pytest.raises(WrongNetwork, match="no JobMarket contract"):
        Client.connect(devnet.url, elsewhere)
    with pytest.raises(ClientError, match="not found"):
        Client.connect(devnet.url, tmp_path / "missing.json")
    # a view of an address with no code (a chain restarted without the contracts) answers no data
    codeless = replace(client.contracts.job_market.withdrawable_of(other.deployer), to="0x" + "12" * 20)
    with pytest.raises(ChainError, match="JobMarket.withdrawableOf at 0x1212.* returned no data"):
        client.read(codeless)
    # a development key for a chain that is not local is refused by the client itself
    with pytest.raises(DevKeyRefused):
        Client(client.rpc, wrong_chain, dev_account(1, 31337))


def test_from_config(devnet: Devnet, tmp_path: Path) -> None:
    (tmp_path / "depin.toml").write_text(
        f'[network]\nrpc_url = "{devnet.url}"\ndeployment = "{devnet.deployment_file}"\n[key]\ndev_account = 4\n'
    )
    client = Client.from_config(load_config(tmp_path / "depin.toml", env={}))
    assert client.address == dev_account(4, 31337).address
    assert client.block_timestamp() > 0 and client.job_count() >= 0


def _nonce(devnet: Devnet, address: str) -> int:
    return int(devnet.chain.rpc.call("eth_getTransactionCount", [address, "pending"]), 16)


def test_an_endpoint_that_is_no_http_url_is_refused_before_any_transaction(devnet: Devnet) -> None:
    """The endpoint is the public base URL of the provider's result server: `foo` (or a URL
    carrying a password or a query token, which the chain would publish) is refused with nothing
    sent, no approve."""
    account = devnet.new_account(1_000)
    client = devnet.client(account)
    for endpoint in ("foo", "ftp://results.example.net", "http://", "http://user:pw@results.example.net",
                     "http://results.example.net/?token=pw2"):
        with pytest.raises(ClientError, match=r"endpoint .*http\(s\)://HOST") as info:
            client.register(to_wei(300), endpoint)
        assert "pw@" not in str(info.value) and "pw2" not in str(info.value)
    assert _nonce(devnet, account.address) == 0 and not client.provider_info().registered
    provider = _provider(devnet)
    before = _nonce(devnet, provider.address)
    with pytest.raises(ClientError, match=r"endpoint 'foo' .*http\(s\)://HOST"):
        provider.set_metadata("foo")
    assert _nonce(devnet, provider.address) == before


def test_unstaking_nothing_says_the_amount_must_be_positive_and_sends_nothing(devnet: Devnet) -> None:
    provider = _provider(devnet)
    before = _nonce(devnet, provider.address)
    with pytest.raises(ClientError, match="^the amount must be positive$") as info:
        provider.request_unstake(0)
    assert info.value.error_name == "ZeroAmount" and not info.value.sent
    assert _nonce(devnet, provider.address) == before


def test_client_side_refusals_are_tx_reverted_too(devnet: Devnet) -> None:
    """Callers that catch TxReverted to shrug off a lost race see the client's own checks as well."""
    requester = devnet.client(devnet.new_account(10))
    job_id = requester.post_job(make_spec(11), reward=to_wei(1)).job_id
    requester.cancel(job_id)
    for action, name in ((lambda: requester.cancel(job_id), "WrongStatus"),
                         (lambda: requester.challenge(job_id), "WrongStatus"),
                         (lambda: requester.job(123_456), "UnknownJob"),
                         (lambda: devnet.client(devnet.new_account()).withdraw(), "NothingToWithdraw"),
                         (lambda: requester.request_unstake(1), "NotRegistered")):
        with pytest.raises(TxReverted) as info:
            action()
        assert info.value.error_name == name and not info.value.sent and info.value.tx_hash is None
        assert isinstance(info.value, ClientError)


def test_deposit_then_post_from_credit_and_metadata(devnet: Devnet) -> None:
    requester = devnet.client(devnet.new_account(5))
    requester.deposit(to_wei(3))
    assert (requester.token_balance(), requester.withdrawable()) == (to_wei(2), to_wei(3))
    requester.post_job(make_spec(12), reward=to_wei(2), verify="none")  # from the credit: no permit, no transfer
    assert (requester.token_balance(), requester.withdrawable()) == (to_wei(2), to_wei(3) - escrow(to_wei(2), VerifyMode.NONE))
    provider = _provider(devnet)
    provider.set_metadata("http://moved.example:8700", b"\x05" * 32)
    info = provider.provider_info()
    assert (info.endpoint, info.capability_hash) == ("http://moved.example:8700", b"\x05" * 32)
