"""The typed Python SDK: read the market, post and manage jobs, run a provider, act as executor.

::

    from depin import Client
    from depin.accounts import load_account

    client = Client.connect("http://127.0.0.1:8545", Path(".devnet/deployments/31337.json"))
    client = client.with_account(load_account(keystore="keys/me.json", chain_id=client.chain_id))
    posted = client.post_job(spec, reward=to_wei(1))          # permit + post in one transaction; sealed to me
    job = client.job(posted.job_id)                            # OnchainJob(status=JobStatus.OPEN, ...)
    client.fetch_result(posted.job_id, Path("out"))            # download, open with my key, verify, extract

Every amount is in base units (18 decimals; :func:`depin.deployment.to_wei`). Every transaction
method signs locally (:class:`depin.transactions.Transactor`) and returns a
:class:`~depin.transactions.Receipt` (``tx_hash``, ``gas_used``, ``block_number``, ``logs``); a call
that would revert raises :class:`~depin.transactions.TxReverted` *before* sending, with the decoded
custom error in ``reason`` and its name in ``error_name`` (an executor that loses a claim race sees
``error_name == "WrongStatus"``). Problems the caller can fix (no node, wrong network, unknown
job, not enough tokens, a result that does not match its hash) raise :class:`ClientError`
subclasses whose message says what to do. When the client's own checks find that a transaction
would revert (challenging a job someone else disputed a moment ago, withdrawing nothing), it raises
:class:`Refused`, which is also a ``TxReverted`` with the contract error's name in ``error_name``
(``WrongStatus``, ``ProviderCannotChallenge``, ``NothingToWithdraw``, ...): one ``except TxReverted`` covers
both the client's and the node's refusals, and nothing was sent in either case. An argument of the
wrong type or an impossible value (a float or a negative number of base units or seconds, ``None``
where bytes go, an unknown contract or spender name) raises :class:`InvalidArgument` (also a
``ValueError``) naming it, before anything is approved, signed or sent.
"""

from __future__ import annotations

import hashlib
import ipaddress
import operator
import os
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import SplitResult, urlsplit

from eth_abi import decode as abi_decode
from eth_utils import is_address, keccak, to_checksum_address
from eth_utils.abi import collapse_if_tuple

from depin import outputs as depin_outputs
from depin.abi import Codec, ContractCall
from depin.accounts import account_from_config, is_local_chain, refuse_dev_key_off_devnet
from depin.addresses import parse_networks, public_resolver
from depin.artifacts import load_abi, runtime_code_matches
from depin.chain import RpcClient, RpcError, RpcUnavailable, hex_int, is_range_error
from depin.commitment import SALT_BYTES
from depin.contracts import Deployed, VerificationCourt
from depin.delivery import (
    DeliveryError,
    address_of_public_key,
    check_content_address,
    open_bytes,
    open_file,
    parse_public_key,
    public_key_of,
)
from depin.delivery_check import fetch_manifest
from depin.deployment import (
    DEPLOYMENT_HINT,
    ContractAddresses,
    Deployment,
    DeploymentFileError,
    load_deployment,
)
from depin.deployment_check import NotGenuine, check_contracts
from depin.errors import ArgumentError, ChainError, DepinError, SpecError
from depin.fetch import FetchError, FetchRefused, FetchTooLarge, Resolver, download_and_hash
from depin.market import JURY_SIZES, LAST_JURY_ROUND, FailureCode, JobStatus, Outcome, Phase, VerifyMode
from depin.outputs import UnsafeArchive, VcsMetadata, extract_archive
from depin.redact import redact_url
from depin.spec import JobSpec, check_canonical, check_spec_size, fetches_http, parse_spec, policy_window, with_delivery
from depin.spec import cpu_seconds as spec_cpu_seconds
from depin.transactions import (
    PendingTx,
    Receipt,
    Transactor,
    TxReverted,
    looks_like_revert,
    revert_data,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from depin.config import DepinConfig

ZERO_ADDRESS = "0x" + "00" * 20
ZERO_HASH = b"\x00" * 32
TOKEN_DECIMALS = 18
TOKEN_SYMBOL = "DPC"
CONTRACT_NAMES = ("RewardToken", "ProviderStaking", "JobMarket", "VerificationCourt")
BPS = 10_000
MIN_REWARD = 10_000  # base units, JobMarketState._MIN_REWARD: no fee rate of 1 bp or more rounds to 0 above it
# Seconds added to the spec's runtime for the job's submit window (maxRuntime) when the caller gives
# none: providers need time to fetch inputs, archive the output and get the submission mined, and
# their policy refuses jobs whose window leaves no room for that (depin.spec.policy_window: 45 s by
# default, 30 s more for http(s) inputs). Where the market's bound cuts the window below what the
# policy takes, the post is refused instead (the job would wait unclaimed until it expired).
SUBMIT_MARGIN = 120
DEFAULT_CLAIM_WINDOW = 3_600
PERMIT_LIFETIME = 3_600
DOWNLOAD_TIMEOUT = 60.0  # each connect and read of a result download
# A result download as a whole: DOWNLOAD_TIMEOUT plus its size cap at this rate (bytes/s), so that a
# provider's server trickling its bytes cannot hold the requester for ever.
DOWNLOAD_MIN_RATE = 1_048_576
# Where a local devnet's providers serve their results: allowed by default on a local chain only.
LOCAL_RESULT_NETWORKS = ("127.0.0.0/8", "::1/128")
# The calldata of one transaction, at most: geth's pool refuses a transaction over 128 KiB (txMaxSize),
# 4 KiB left for the rest of it. A postJobs batch this size stays well inside a 30M-gas block.
MAX_TX_DATA = 124 * 1024
LOG_CHUNK = 10_000  # blocks per eth_getLogs when the node refuses the whole range
# The statuses of a job with no commitment yet: `OnchainJob.spec_hash` is read from its JobPosted log.
_BEFORE_COMMITMENT = frozenset({JobStatus.OPEN, JobStatus.CLAIMED, JobStatus.CANCELLED, JobStatus.EXPIRED, JobStatus.TIMED_OUT})
DEVNET_HINT = "no devnet running? start it with `depin devnet up`"


# ------------------------------------------------------------------------------------ errors


class ClientError(DepinError):
    """A request the client cannot carry out as asked; the message says why and what to do."""


class NodeUnreachable(ClientError, ChainError):
    """No JSON-RPC node answers at the URL."""


class WrongNetwork(ClientError):
    """The node's chain is not the deployment's chain (or the contracts are not there)."""


class Refused(ClientError, TxReverted):
    """The client's own check found that the transaction would revert, and sent nothing.

    Both a :class:`ClientError` (a message written for people) and a
    :class:`~depin.transactions.TxReverted` whose ``error_name`` is the contract error the call would
    have raised (``WrongStatus``, ``ProviderCannotChallenge``, ``NothingToWithdraw``, ...), so that code which
    treats a lost race quietly by catching TxReverted sees these too.
    """

    def __init__(self, message: str, error_name: str | None = None, what: str = "") -> None:
        Exception.__init__(self, message)
        self.what = what
        self.reason = message
        self.tx_hash = None
        self.data = None
        self.sent = False
        self.error_name = error_name


class UnknownJob(Refused):
    """No job with this id was ever posted."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "UnknownJob")


class NothingDue(Refused):
    """:meth:`Client.advance_job` found no permissionless step due for the job now; `due` is what
    :meth:`Client.due_step` found (what the job waits for, until when, and what comes then)."""

    def __init__(self, due: DueStep) -> None:
        super().__init__(due.describe(), "NothingDue")
        self.due = due


class InsufficientBalance(Refused):
    """The account holds too few tokens for the operation."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "ERC20InsufficientBalance")


class InsufficientAllowance(Refused):
    """The account has not approved enough tokens for the spender (and approving was not allowed)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "ERC20InsufficientAllowance")


class InvalidArgument(ClientError, ArgumentError):
    """An argument has the wrong type or an impossible value (the message names it); nothing was sent."""


class NoAccount(ClientError):
    """A transaction was asked of a read-only client."""


class ResultUnavailable(ClientError):
    """The job has no result to fetch (not submitted yet, a failure report, or no longer reachable)."""


class ResultMismatch(ClientError):
    """The downloaded archive does not match what the provider committed to (see :meth:`Client.download_result`)."""


class ResultSealed(ClientError):
    """The result is sealed to the requester's key (``delivery.encrypt_to``) and the key given (or
    the client's account) cannot open it; nothing was extracted."""


class ResultRuledWrong(ClientError):
    """The job's court ruled its result wrong (``JobSettled`` outcome ProviderWrong: the provider's
    collateral slashed, the requester refunded); :meth:`Client.download_result` refuses it unless
    told otherwise. Nothing was downloaded."""


class ResultUnsafe(ClientError):
    """The result archive matches its hash but holds a member that extraction refuses (an absolute
    or escaping symbolic link, a hard link, a device, a ``..`` path, a ``.git`` folder): nothing
    was extracted."""


def _chain_time(timestamp: int, now: int | None = None) -> str:
    """A chain timestamp for people: ``2025-01-02 03:04:05 UTC (chain time, in 30 s)`` (the
    relative part against `now`, the latest block's timestamp, when given)."""
    at = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if now is None:
        return f"{at} (chain time)"
    delta = timestamp - now
    return f"{at} (chain time, {'in ' + str(delta) + ' s' if delta >= 0 else str(-delta) + ' s ago'})"


def format_tokens(amount: int) -> str:
    """Base units as a decimal number of tokens: 1500000000000000000 -> "1.5"."""
    text = format(Decimal(amount).scaleb(-TOKEN_DECIMALS), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# ------------------------------------------------------------------------------------ typed records


@dataclass(frozen=True)
class OnchainJob:
    """``JobMarket.getJob`` (``IJobMarket.JobView``). Zero addresses are None. `deadline` is the
    submit deadline while Claimed, the challenge deadline while Submitted and later. The market does
    not store the spec hash: until a commitment (Open, Claimed, Cancelled, Expired, TimedOut) it is
    read from the job's ``JobPosted`` log (:meth:`Client.posted_spec_hash`), zero after. The result
    URI is not stored on chain either: see :meth:`Client.submission`."""

    job_id: int
    spec_hash: bytes
    commitment: bytes
    requester: str
    reward: int
    fee: int  # f*R still escrowed
    audit_fee: int  # A (0 for verify-none jobs)
    status: JobStatus
    failure_code: int  # 0 for a result
    verify_mode: VerifyMode
    provider: str | None
    claim_deadline: int
    deadline: int
    anchor_block: int  # submitBlock + drawDelay (0 before submission)
    max_runtime: int
    challenge_window: int
    collateral_pct: int
    audit_bps: int  # p_job in basis points
    params_version: int
    collateral: int

    @property
    def settled(self) -> bool:
        return self.status.settled

    @property
    def failure(self) -> bool:
        return self.failure_code != 0

    @property
    def escrow(self) -> int:
        """R + f*R + A: what the requester escrowed (less no-fault fees taken since)."""
        return self.reward + self.fee + self.audit_fee


@dataclass(frozen=True)
class Submission:
    """The latest ``ResultSubmitted`` or ``FailureSubmitted`` event of a job."""

    job_id: int
    provider: str
    failure: bool
    commitment: bytes  # keccak256(abi.encode(provider, jobId, digest, salt)); for failures digest = bytes32(code)
    uri: str  # result URI ("" for failures)
    failure_code: FailureCode | None
    challenge_deadline: int  # 0 for an availability failure (settled at once)
    anchor_block: int  # the block whose randomness draws the job (0 for an availability failure)
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class Settlement:
    """A job's ``JobSettled`` event: how its court ended it (the job is Resolved) and where the
    escrow went (base units)."""

    job_id: int
    outcome: Outcome
    provider_payout: int
    requester_refund: int
    to_court: int
    burned: int
    block_number: int
    tx_hash: str
    # What the job's court transferred to the requester's wallet in the same transaction: the audit
    # escrow its ruling left unused, a challenge bond returned and its bounty (`requester_refund` is
    # the market's share only, credited to the requester's market balance).
    court_paid: int = 0


@dataclass(frozen=True)
class ProviderInfo:
    """``ProviderStaking.getProvider`` (all zero when unregistered)."""

    address: str
    id: int
    staked: int
    locked: int
    unbonding: int
    release_at: int
    jobs_completed: int
    jobs_slashed: int
    endpoint: str
    capability_hash: bytes

    @property
    def registered(self) -> bool:
        return self.id != 0

    @property
    def available(self) -> int:
        """Stake neither locked as collateral nor unbonding."""
        return self.staked - self.locked


@dataclass(frozen=True)
class VerifierInfo:
    """``VerificationCourt.getVerifier`` of one court (all zero when never joined)."""

    address: str
    court: str
    joined: bool
    platform_class: int
    free: int  # stake that can take seats, or leave
    locked: int  # bonds of the seats in hand
    unbonding: int  # left (requestLeave), withdrawable from release_at
    release_at: int


@dataclass(frozen=True)
class MarketParams:
    """``JobMarket.params()`` (``IJobMarket.MarketParams``, the current version)."""

    min_claim_window: int
    max_claim_window: int
    min_runtime: int
    max_runtime: int
    min_challenge_window: int
    max_challenge_window: int
    min_collateral_pct: int
    max_collateral_pct: int
    alpha_bps: int
    fee_bps: int
    kappa_bps: int
    audit_fee_bps: int
    beta_bps: int
    no_fault_fee_bps: int
    max_reward: int  # base units: the largest R a post may offer (minStake / sigma of the court at most)
    draw_delay: int
    court: str
    paused: bool

    def fee(self, reward: int) -> int:
        """f*R, rounded down like the contract."""
        return reward * self.fee_bps // BPS

    def audit_fee(self, reward: int, verify_mode: int = VerifyMode.REEXEC) -> int:
        """A (0 for verify-none jobs), rounded down like the contract."""
        return 0 if verify_mode == VerifyMode.NONE else reward * self.audit_fee_bps // BPS

    def escrow(self, reward: int, verify_mode: int = VerifyMode.REEXEC) -> int:
        """R + f*R + A: what posting a job with `reward` escrows under these parameters."""
        return reward + self.fee(reward) + self.audit_fee(reward, verify_mode)


class _Post(NamedTuple):
    """One job as :meth:`Client.post_job` sends it."""

    spec_hash: bytes
    spec_bytes: bytes
    terms: tuple[int, int, int, int, int, int, int]
    parsed: JobSpec


@dataclass(frozen=True)
class PostedJob:
    job_id: int
    tx_hash: str
    gas_used: int
    receipt: Receipt | None = field(default=None, repr=False, compare=False)
    sealed_to: bytes | None = None  # the compressed public key the result is sealed to; None: a plaintext result


@dataclass(frozen=True)
class FetchedResult:
    job_id: int
    path: Path  # where the output was extracted
    digest: bytes
    size: int
    exit_code: int
    uri: str
    sealed: bool = False  # delivered sealed to the requester's key (and opened with it)
    # The spec asked for a sealed delivery (``delivery.encrypt_to``) but the archive came in plaintext:
    # it matches the commitment, yet anyone who fetched the URI could read it (jurors count it as not
    # delivered). The CLI warns.
    sealing_ignored: bool = False
    # The job's status when it was fetched, and its court's ruling (None: no court settled it, e.g.
    # Finalized unchallenged, or still Submitted / Disputed). Outcome.SPLIT: the job is not
    # reproducible and its result unconfirmed; PROVIDER_WRONG is only extracted when allowed.
    status: JobStatus = JobStatus.NONE
    outcome: Outcome | None = None
    # Under the spec's ``output.match``: how many of the result's entries below out/ (`entries`) lie
    # outside the selection (not selected, nor a directory on the way to a selected one). They are
    # extracted, but the commitment (and a verifier's run) covers only the selected part. 0 (and 0
    # entries counted) without a selector.
    outside_match: int = 0
    entries: int = 0


@dataclass(frozen=True)
class DeliveryCheck:
    """What anyone can check of a sealed delivery without its key: the bytes at the on-chain URI
    hash to the content address the URI (and the manifest) name."""

    job_id: int
    uri: str
    sha256: bytes
    size: int
    encrypt_to: str  # the recipient's public key (0x-hex)


# The permissionless steps :meth:`Client.due_step` may find due: the market's expireJob, timeoutJob
# and finalize, and the court's advance (which is also its redraw: one code path in CourtEngine).
DUE_STEPS = ("expire", "timeout", "finalize", "advance")


@dataclass(frozen=True)
class DueStep:
    """Which permissionless step a job's deadlines allow now (:meth:`Client.due_step`).

    `step` is the one due now (one of :data:`DUE_STEPS`; :meth:`Client.advance_job` sends it) and
    `does` says what it does; None when nothing is due: then `waits_for` says what the job waits
    for, `until` the chain time (unix seconds) that wait lasts at most (None: no deadline, e.g. a
    settled job, or one waiting for its anchor block's randomness), `then` the step due after it and
    `then_does` what that step will do. `meanwhile` names an action the requester may take before
    (``"cancel"``, ``"challenge"``, ``"appeal"``: :meth:`Client.cancel`, :meth:`Client.challenge`,
    :meth:`Client.appeal`). `now` is the chain time it was read at (the latest block's timestamp)."""

    job_id: int
    status: JobStatus
    now: int
    step: str | None = None
    does: str = ""
    waits_for: str = ""
    until: int | None = None
    then: str | None = None
    then_does: str = ""
    meanwhile: str | None = None
    court: str | None = None  # the court whose ``advance`` the step is (the job's: Client.court_of)

    @property
    def due(self) -> bool:
        return self.step is not None

    def describe(self) -> str:
        """One line for people (no CLI commands named)."""
        if self.due:
            return f"job {self.job_id} is {self.status.label}: {self.step} is due: it {self.does}"
        if self.status.settled:
            return f"job {self.job_id} is {self.status.label}: it is settled, nothing is due"
        text = f"nothing is due for job {self.job_id} now: it is {self.status.label} and waits for {self.waits_for}"
        if self.until is not None:
            text += f" until {_chain_time(self.until, self.now)}"
        if self.then is not None:
            text += f"; then {self.then} {self.then_does}"
        return text


@dataclass(frozen=True)
class AdvancedJob:
    """What :meth:`Client.advance_job` sent and what came of it, read from its receipt's events:
    `did` says what happened; `credited` is what the job's requester got credited to its market
    balance (:meth:`Client.withdraw` moves it to its wallet), `paid` what the court transferred to the
    requester's wallet (the audit escrow its ruling left unused, a challenge bond returned)."""

    job_id: int
    step: str
    did: str
    status: JobStatus  # the job's status after it
    requester: str
    credited: int
    paid: int
    tx_hash: str
    gas_used: int
    receipt: Receipt | None = field(default=None, repr=False, compare=False)


# ------------------------------------------------------------------------------------ the client


class Client(ContractAddresses):
    """One deployment on one node, optionally with a signing account. Thread-safe for reads; the
    transactions of one client share one nonce sequence (safe from several threads). The calls that
    check a balance and an allowance, approve (or sign a permit) and spend (post_job, post_jobs,
    deposit, register, stake, challenge, appeal) go one at a time per account in this process,
    through one client or several of the same account."""

    def __init__(
        self,
        rpc: RpcClient,
        deployment: Deployment,
        account: LocalAccount | None = None,
        *,
        chain_id: int | None = None,
        codec: Codec | None = None,
        **transactor_options: Any,
    ) -> None:
        self.rpc = rpc
        self.deployment = deployment
        self.chain_id = deployment.chain_id if chain_id is None else chain_id
        self.codec = codec or Codec()
        self.addresses: dict[str, str] = {n: to_checksum_address(a) for n, a in deployment.addresses.items()}
        missing = [n for n in CONTRACT_NAMES if n not in self.addresses]
        if missing:
            raise ClientError(f"the deployment file lacks addresses for {', '.join(missing)}")
        self.contracts = Deployed(self.addresses, self.codec)  # one binding per contract function
        self._courts: dict[int, VerificationCourt] = {}  # job id -> its court (court_of)
        self._transactor_options = transactor_options
        self.account = account
        self.tx: Transactor | None = None
        if account is not None and not (hasattr(account, "address") and callable(getattr(account, "sign_transaction", None))):
            raise InvalidArgument(  # never the value: it may be a private key
                f"the account must be a signing account (a LocalAccount: depin.accounts.load_account, or "
                f"eth_account.Account.from_key), not a {type(account).__name__}"
            )
        if account is not None:
            refuse_dev_key_off_devnet(account.address, self.chain_id)
            self.tx = Transactor(rpc, account, self.chain_id, codec=self.codec, **transactor_options)

    def __repr__(self) -> str:
        who = self.account.address if self.account else "read-only"
        return f"Client(chain_id={self.chain_id}, market={self.market}, account={who})"

    # ------------------------------------------------------------------ construction

    @classmethod
    def connect(
        cls,
        rpc_url: str,
        deployment: Deployment | Path | str,
        account: LocalAccount | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        **transactor_options: Any,
    ) -> Client:
        """Connects to the node at `rpc_url` and checks that it is the deployment's chain and holds
        its genuine contracts (:func:`depin.deployment_check.check_contracts`: a deployment file handed
        out by someone else, or a stale one, is refused with :class:`WrongNetwork`). `account` signs
        transactions (None: read-only; see :meth:`with_account`)."""
        try:
            dep = load_deployment(deployment, hint=f"{DEPLOYMENT_HINT} ({DEVNET_HINT})")
        except DeploymentFileError as exc:
            raise ClientError(str(exc)) from None
        check_rpc_url(rpc_url)  # a malformed URL is no "no devnet running?"
        rpc = RpcClient.from_url(rpc_url, timeout=timeout, retries=retries)
        try:
            chain_id = rpc.chain_id(retries=1)
        except RpcUnavailable:
            raise NodeUnreachable(f"no JSON-RPC node answers at {rpc.shown_url}: {DEVNET_HINT}") from None
        if chain_id != dep.chain_id:
            raise WrongNetwork(
                f"wrong network: the node at {rpc.shown_url} is chain {chain_id} but the deployment is for chain "
                f"{dep.chain_id}; pass the matching --rpc-url or --deployment"
            )
        try:  # the genuine contracts, before anything is approved to them (the indexer's start-up check too)
            check_contracts(rpc, dep)
        except NotGenuine as exc:
            raise WrongNetwork(str(exc)) from None
        return cls(rpc, dep, account, chain_id=chain_id, **transactor_options)

    @classmethod
    def from_config(cls, config: DepinConfig, account: LocalAccount | None = None, **options: Any) -> Client:
        """A client for ``depin.toml``: its ``[network]`` and, unless `account` is given and when
        the ``[key]`` section names one, its key."""
        client = cls.connect(config.network.rpc_url, config.network.deployment, **options)
        if account is None and (config.key.keystore is not None or config.key.dev_account is not None):
            account = account_from_config(config.key, client.chain_id)
        return client.with_account(account) if account is not None else client

    def with_account(self, account: LocalAccount | None) -> Client:
        """The same connection with another signing account (or read-only)."""
        return Client(
            self.rpc, self.deployment, account, chain_id=self.chain_id, codec=self.codec, **self._transactor_options
        )

    def sent_transactions(self) -> list[PendingTx]:
        """The transactions this client's signer sent (:meth:`Transactor.sent`); none when read-only."""
        return [] if self.tx is None else self.tx.sent()

    # ------------------------------------------------------------------ addresses

    @property
    def address(self) -> str:
        """The signing account's address."""
        return self._signer().address

    def _signer(self) -> Transactor:
        if self.tx is None:
            raise NoAccount(
                "this needs a signing key: pass --keystore FILE, --dev-account N (devnet), or --config with a [key] "
                "section (SDK: Client.with_account)"
            )
        return self.tx

    def _who(self, address: str | None) -> str:
        return self.address if address is None else checked_address(address)

    @contextmanager
    def _spending(self) -> Iterator[None]:
        """Held while a call checks this account's balance and allowance, approves (or signs a
        permit) and spends: the calls of one account in this process, through this client or another
        of the same account, go one at a time, so that none spends the allowance or the permit
        nonce that another has just counted on."""
        key = (self.chain_id, self.address.lower())
        with _ACCOUNT_LOCKS_GUARD:
            lock = _ACCOUNT_LOCKS.setdefault(key, threading.RLock())
        with lock:
            yield

    # ------------------------------------------------------------------ low level

    def call(self, contract: str, fn: str, *args: Any, block: int | str = "latest") -> Any:
        """A view call, decoded (one value bare, several as a tuple); a revert raises TxReverted."""
        return self.read(self._binding(contract).encode(fn, *args), block=block)

    def transact(self, contract: str, fn: str, *args: Any, gas: int | None = None) -> Receipt:
        """Signs and sends `contract`.`fn`(`args`); waits for and returns the receipt."""
        return self.send(self._binding(contract).encode(fn, *args), gas=gas)

    def _binding(self, contract: str) -> Any:
        try:
            return self.contracts[contract]
        except (KeyError, TypeError):
            raise InvalidArgument(f"unknown contract {contract!r}: one of {', '.join(sorted(self.addresses))}") from None

    def read(self, call: ContractCall, *, block: int | str = "latest") -> Any:
        """Reads a bound call (``client.read(client.contracts.job_market.get_job(7))``), decoded;
        a revert raises TxReverted."""
        try:
            out = self.rpc.eth_call({"to": call.to, "data": call.data}, block)
        except RpcError as exc:
            if looks_like_revert(exc):
                raw = revert_data(exc)
                raise TxReverted(call.what, self.codec.decode_error(raw), data=raw) from None
            raise
        return call.decode(out)

    def send(
        self, call: ContractCall, *, gas: int | None = None, confirmations: int = 1,
        still_needed: Callable[[], bool] | None = None,
    ) -> Receipt:
        """Signs and sends a bound call (``client.send(client.contracts.job_market.claim_job(7))``);
        waits for and returns the receipt, once `confirmations` blocks hold it (1: mined; more: as it
        reads after that many blocks, a reorg in between accounted for). `still_needed` is asked
        before the signer sends it again after a drop or a reorg (:class:`~depin.transactions.PendingTx`):
        without it the same bytes are sent again, whatever they would do on the chain as it is then."""
        return self._signer().send(call.to, call.data, gas=gas, what=call.what, confirmations=confirmations,
                                   still_needed=still_needed)

    # ------------------------------------------------------------------ reads

    def block_timestamp(self) -> int:
        return hex_int(self.rpc.latest_block()["timestamp"])

    def block_number(self) -> int:
        return self.rpc.block_number()

    def eth_balance(self, address: str | None = None) -> int:
        return self.rpc.get_balance(self._who(address))

    def token_balance(self, address: str | None = None) -> int:
        return int(self.read(self.contracts.reward_token.balance_of(self._who(address))))

    def allowance(self, owner: str | None = None, spender: str = "JobMarket") -> int:
        """What `owner` allowed `spender` (a contract name or an address) to pull."""
        return int(self.read(self.contracts.reward_token.allowance(self._who(owner), self._spender(spender))))

    def _spender(self, spender: str) -> str:
        """A contract name of the deployment, or an address."""
        address = self.addresses.get(spender, spender) if isinstance(spender, str) else spender
        if not isinstance(address, str) or not is_address(address):
            raise InvalidArgument(f"unknown spender {spender!r}: a contract name ({', '.join(sorted(self.addresses))}) or an address")
        return address

    def withdrawable(self, address: str | None = None) -> int:
        """The balance credited to `address` in the market (earnings, refunds, deposits)."""
        return int(self.read(self.contracts.job_market.withdrawable_of(self._who(address))))

    def params(self) -> MarketParams:
        return MarketParams(*self.read(self.contracts.job_market.params()))

    def min_stake(self) -> int:
        return int(self.read(self.contracts.provider_staking.min_stake()))

    def unbonding_delay(self) -> int:
        return int(self.read(self.contracts.provider_staking.unbonding_delay()))

    def job_count(self) -> int:
        return int(self.read(self.contracts.job_market.job_count()))

    def job(self, job_id: int) -> OnchainJob:
        """The job's on-chain record; :class:`UnknownJob` when it was never posted."""
        job_id = _job_id(job_id)
        try:
            v = self.read(self.contracts.job_market.get_job(job_id))
        except TxReverted as exc:
            if exc.error_name == "UnknownJob":
                raise UnknownJob(f"unknown job id {job_id}: this market has {self.job_count()} jobs") from None
            raise
        (commitment, requester, reward, fee, audit_fee, status, failure_code, verify_mode, provider,
         claim_deadline, deadline, anchor_block, max_runtime, challenge_window, collateral_pct, audit_bps,
         params_version, collateral) = v
        status = JobStatus(status)
        return OnchainJob(
            job_id=job_id,
            spec_hash=self.posted_spec_hash(job_id) if status in _BEFORE_COMMITMENT else bytes(32),
            commitment=commitment,
            requester=requester,
            reward=reward,
            fee=fee,
            audit_fee=audit_fee,
            status=status,
            failure_code=failure_code,
            verify_mode=VerifyMode(verify_mode),
            provider=_address_or_none(provider),
            claim_deadline=claim_deadline,
            deadline=deadline,
            anchor_block=anchor_block,
            max_runtime=max_runtime,
            challenge_window=challenge_window,
            collateral_pct=collateral_pct,
            audit_bps=audit_bps,
            params_version=params_version,
            collateral=collateral,
        )

    def posted_spec_hash(self, job_id: int) -> bytes:
        """The spec hash the job was posted with: the indexed ``specHash`` of its ``JobPosted`` log
        as the node has it now (the market does not store it); :class:`UnknownJob` without one."""
        job_id = _job_id(job_id)
        posted = self._posted(job_id)
        if posted is None:
            raise UnknownJob(f"no JobPosted event for job {job_id} since block {self.deployment.deploy_block}")
        return bytes(posted["specHash"])

    def _posted(self, job_id: int) -> dict[str, Any] | None:
        """The values of job `job_id`'s latest ``JobPosted`` log as the node has it now, or None."""
        logs = self._latest_logs("JobMarket", [self._topic("JobMarket", "JobPosted"), _uint_topic(job_id)])
        return self._event_values("JobMarket", "JobPosted", logs[-1]) if logs else None

    def is_drawn(self, job_id: int) -> bool | None:
        """Whether the submitted job `job_id` was drawn for audit (``JobMarket.isDrawn``); None while
        its anchor block's randomness is not readable yet (``RandomnessNotReady``). A drawn job
        cannot be finalized: its court settles it."""
        try:
            return bool(self.read(self.contracts.job_market.is_drawn(_job_id(job_id))))
        except TxReverted as exc:
            if exc.error_name == "RandomnessNotReady":
                return None
            raise

    def pending_burn(self) -> int:
        return int(self.read(self.contracts.job_market.pending_burn()))

    def court_of(self, job_id: int) -> VerificationCourt:
        """The court of job `job_id`: the one its parameter version named when it was posted
        (``verificationInfo(jobId).court``). That is the deployment file's court, except for jobs
        posted before governance moved the market to another court (``setParams``): those stay with
        the court they were posted under (``JobMarket._onlyCourtOf``), and their cases, seats,
        challenges and appeals are that court's. An unknown or pruned job gets the file's court (as
        before). Remembered per job: a job's court never changes."""
        jid = _job_id(job_id)
        court = self._courts.get(jid)
        if court is not None:
            return court
        current = self.contracts.verification_court
        try:
            address = str(self.read(self.contracts.job_market.verification_info(jid))[_INFO_COURT])
        except TxReverted as exc:
            if exc.error_name == "UnknownJob":
                return current  # no such job (yet): nothing to remember
            raise
        if int(address, 16) == 0:
            return current  # a pruned job: its case, if any, is long over
        court = current if address.lower() == current.address.lower() else VerificationCourt(address, self.codec)
        if len(self._courts) >= _COURT_CACHE:
            self._courts.clear()
        self._courts[jid] = court
        return court

    def court_case(self, job_id: int) -> dict[str, Any]:
        """The case of job `job_id` in its court (:meth:`court_of`; ``VerificationCourt.getCase``)
        by field name."""
        values = self.read(self.court_of(job_id).get_case(_job_id(job_id)))
        return dict(zip(_CASE_FIELDS, values, strict=False))

    def court_params(self, job_id: int | None = None) -> dict[str, Any]:
        """The current ``CourtParams`` by field name of the deployment's court, or with `job_id`
        of that job's court (:meth:`court_of`)."""
        return self._params_of(self.contracts.verification_court if job_id is None else self.court_of(job_id))

    def _params_of(self, court: VerificationCourt) -> dict[str, Any]:
        return dict(zip(_COURT_PARAM_FIELDS, self.read(court.params()), strict=False))

    def court_at(self, address: str | None = None) -> VerificationCourt:
        """The deployment file's court, or with `address` another court of this market: an earlier
        one, where a verifier's stake stays after governance moved the market (``setParams``) until
        it leaves. Refused (:class:`InvalidArgument`) unless the code there is the shipped
        VerificationCourt's and its ``market()`` is this deployment's market."""
        current = self.contracts.verification_court
        if address is None or (is_address(address) and address.lower() == current.address.lower()):
            return current
        check_court_address(address)
        code = bytes.fromhex(self.rpc.get_code(address).removeprefix("0x"))
        court = VerificationCourt(address, self.codec)
        if not runtime_code_matches("VerificationCourt", code) or str(self.read(court.market())).lower() != self.market.lower():
            raise InvalidArgument(f"{court.address} is not a VerificationCourt of market {self.market} on this node")
        return court

    def verifier_info(self, address: str | None = None, *, court: str | None = None) -> VerifierInfo:
        """A verifier's stake in the file's court, or in `court` (:meth:`court_at`)."""
        return self._verifier_in(self._who(address), self.court_at(court))

    def _verifier_in(self, who: str, at: VerificationCourt) -> VerifierInfo:
        joined, cls, free, locked, unbonding, release_at = self.read(at.get_verifier(who))
        return VerifierInfo(who, at.address, bool(joined), int(cls), int(free), int(locked), int(unbonding), int(release_at))

    def request_leave(self, amount: int, *, court: str | None = None) -> Receipt:
        """Starts leaving the court (the file's, or `court`, :meth:`court_at`): `amount` of the free
        stake unbonds for the court's ``leaveDelay`` (a later request restarts the delay for all of
        it); :meth:`withdraw_left` then. A running verifier executor of this key does not top the
        stake back up while it is leaving, nor join again once all of it is withdrawn; a restarted
        one applies ``[verifier] court_stake`` again: set that to 0 to stay out."""
        amount = _uint("the amount", amount)
        at = self.court_at(court)
        info = self._verifier_in(self._who(None), at)
        if not info.joined:
            raise Refused(f"{self.address} is not a member of court {at.address}", "NotJoined")
        if amount <= 0:
            raise Refused("the amount must be positive", "ZeroAmount")
        if amount > info.free:
            raise Refused(
                f"cannot leave with {format_tokens(amount)} {TOKEN_SYMBOL}: the free stake in court {at.address} is "
                f"{format_tokens(info.free)} ({format_tokens(info.locked)} is locked in the bonds of seats in hand)",
                "InsufficientFreeStake",
            )
        return self.send(at.request_leave(amount))

    def withdraw_left(self, *, court: str | None = None) -> Receipt:
        """Withdraws the stake that left the court (the file's, or `court`) once its delay passed."""
        at = self.court_at(court)
        info = self._verifier_in(self._who(None), at)
        self._refuse_unreleased(info.unbonding, info.release_at, f"leaving court {at.address}", "NothingToWithdraw", "LeaveNotReady")
        return self.send(at.withdraw_left())

    def provider_info(self, address: str | None = None) -> ProviderInfo:
        who = self._who(address)
        p = self.read(self.contracts.provider_staking.get_provider(who))
        return ProviderInfo(who, *p)

    # ------------------------------------------------------------------ events

    def _topic(self, contract: str, event: str) -> str:
        return self.contracts[contract].TOPICS[event]

    def _latest_logs(self, contract: str, topics: list[Any], at: str | None = None) -> list[dict[str, Any]]:
        """The matching logs of the newest block range that has any (the whole range at once when
        the node allows, else chunks from the head backwards); of the deployment's `contract`, or of
        `contract`'s code at address `at` (an earlier court)."""
        address = [at or self.addresses[contract]]
        first = self.deployment.deploy_block
        head = self.rpc.block_number()
        try:
            return self.rpc.get_logs(first, head, address, topics, retries=2)
        except ChainError as exc:
            if not is_range_error(exc):
                raise
        span, to = LOG_CHUNK, head
        while to >= first:
            frm = max(first, to - span + 1)
            try:
                logs = self.rpc.get_logs(frm, to, address, topics, retries=2)
            except ChainError as exc:
                if is_range_error(exc) and span > 1:
                    span //= 2
                    continue
                raise
            if logs:
                return logs
            to = frm - 1
        return []

    def _event_values(self, contract: str, event: str, log: dict[str, Any]) -> dict[str, Any]:
        item = next(i for i in load_abi(contract) if i.get("type") == "event" and i["name"] == event)
        plain = [i for i in item["inputs"] if not i["indexed"]]
        # A string is whatever bytes its emitter passed: Solidity does not check them for UTF-8 (a
        # provider's result URI of b"\xff" made eth_abi raise UnicodeDecodeError out of
        # `submission`, so every verifier's delivery check crashed: no-shows, the job Unaudited;
        # found by review, stop 55). Read as bytes, decoded with replacement, as the index does.
        types = ["bytes" if i["type"] == "string" else collapse_if_tuple(i) for i in plain]
        decoded = abi_decode(types, bytes.fromhex(log["data"].removeprefix("0x")))
        values = [bytes(v).decode("utf-8", "replace") if i["type"] == "string" else v for i, v in zip(plain, decoded, strict=True)]
        out = dict(zip((i["name"] for i in plain), values, strict=True))
        indexed = [i for i in item["inputs"] if i["indexed"]]
        for i, topic in zip(indexed, log["topics"][1:], strict=False):
            raw = bytes.fromhex(topic.removeprefix("0x"))
            if i["type"] == "address":
                out[i["name"]] = to_checksum_address(raw[-20:])
            elif i["type"].startswith("uint"):
                out[i["name"]] = int.from_bytes(raw, "big")
            else:
                out[i["name"]] = raw
        return out

    def spec_bytes(self, job_id: int) -> bytes:
        """The job's spec bytes, from its ``JobPosted`` event (checked against the on-chain specHash
        by whoever parses them: :func:`depin.spec.parse_spec` with ``expected_hash``)."""
        job_id = _job_id(job_id)
        posted = self._posted(job_id)
        if posted is None:
            self.job(job_id)  # UnknownJob if it never existed
            raise ClientError(f"no JobPosted event for job {job_id} since block {self.deployment.deploy_block}")
        return bytes(posted["spec"])

    def settlement(self, job_id: int) -> Settlement | None:
        """The job's ``JobSettled`` event (its court's outcome and where the escrow went), or None:
        no court settled it (yet; a Finalized job never has one)."""
        job_id = _job_id(job_id)
        logs = self._latest_logs("JobMarket", [self._topic("JobMarket", "JobSettled"), _uint_topic(job_id)])
        if not logs:
            return None
        log = max(logs, key=lambda entry: (hex_int(entry["blockNumber"]), hex_int(entry["logIndex"])))
        values = self._event_values("JobMarket", "JobSettled", log)
        return Settlement(
            job_id=job_id,
            outcome=Outcome(values["outcome"]),
            provider_payout=values["providerPayout"],
            requester_refund=values["requesterRefund"],
            to_court=values["toCourt"],
            burned=values["burned"],
            block_number=hex_int(log["blockNumber"]),
            tx_hash=log["transactionHash"],
            court_paid=self._court_paid(job_id, log),
        )

    def _court_paid(self, job_id: int, settled: dict[str, Any]) -> int:
        """The reward tokens the job's court transferred to its requester in the transaction of the
        `settled` log (its ``JobSettled``): the court pays its refunds to the wallet directly, which
        the market's event does not show (found by review, stop 56: `job status` showed an agreeing
        audit's requester refunded 0 when 3 w of its escrow had come back)."""
        job = self.job(job_id)
        court = self.court_of(job_id).address
        block = hex_int(settled["blockNumber"])
        token = self.contracts.reward_token
        logs = self.rpc.get_logs(block, block, [token.address], [token.TOPICS["Transfer"], _address_topic(court), _address_topic(job.requester)],
                                 retries=2)
        return sum(int(entry["data"], 16) for entry in logs if entry["transactionHash"] == settled["transactionHash"])

    def submission(self, job_id: int) -> Submission | None:
        """The job's latest result or failure submission (from the events), or None."""
        job_id = _job_id(job_id)
        topics = [[self._topic("JobMarket", "ResultSubmitted"), self._topic("JobMarket", "FailureSubmitted")],
                  _uint_topic(job_id)]
        logs = self._latest_logs("JobMarket", topics)
        if not logs:
            return None
        log = max(logs, key=lambda entry: (hex_int(entry["blockNumber"]), hex_int(entry["logIndex"])))
        failure = log["topics"][0] == self._topic("JobMarket", "FailureSubmitted")
        values = self._event_values("JobMarket", "FailureSubmitted" if failure else "ResultSubmitted", log)
        return Submission(
            job_id=job_id,
            provider=values["provider"],
            failure=failure,
            commitment=bytes(values["commitment"]),
            uri="" if failure else values["resultURI"],
            failure_code=FailureCode(values["code"]) if failure else None,
            challenge_deadline=values["challengeDeadline"],
            anchor_block=values["anchorBlock"],
            block_number=hex_int(log["blockNumber"]),
            tx_hash=log["transactionHash"],
        )

    # ------------------------------------------------------------------ token helpers

    def approve(self, spender: str, amount: int) -> Receipt:
        """Sets the allowance of `spender` (a contract name or an address) to `amount`."""
        return self.send(self.contracts.reward_token.approve(self._spender(spender), _uint("the amount", amount)))

    def _ensure_funds(self, amount: int, what: str) -> None:
        have = self.token_balance()
        if have < amount:
            raise InsufficientBalance(
                f"insufficient {TOKEN_SYMBOL} balance for {what}: have {format_tokens(have)}, "
                f"need {format_tokens(amount)} (account {self.address})"
            )

    def _court_spender(self, court: VerificationCourt) -> str:
        """The spender to approve for `court`: its contract name when it is the file's court (as
        before), else its address (an earlier court, :meth:`court_of`)."""
        return "VerificationCourt" if court is self.contracts.verification_court else court.address

    def _ensure_allowance(self, spender: str, amount: int, *, approve: bool, what: str) -> None:
        current = self.allowance(spender=spender)
        if current >= amount:
            return
        if not approve:
            raise InsufficientAllowance(
                f"insufficient {TOKEN_SYMBOL} allowance for {spender} ({what}): have {format_tokens(current)}, "
                f"need {format_tokens(amount)}; approve it first"
            )
        self.approve(spender, amount)

    def deposit(self, amount: int, *, approve: bool = True) -> Receipt:
        """Moves `amount` from the wallet into the market balance that later posts draw from."""
        call = self.contracts.job_market.deposit(_uint("the amount", amount))
        with self._spending():
            self._ensure_funds(amount, "the deposit")
            self._ensure_allowance("JobMarket", amount, approve=approve, what="deposit")
            return self.send(call)

    def permit_signature(self, spender: str, value: int, deadline: int) -> tuple[int, bytes, bytes]:
        """An ERC-2612 permit of `value` to `spender`, signed by this account: ``(v, r, s)``."""
        account = self._signer().account
        value, deadline = _uint("the permit value", value), _uint("the permit deadline", deadline)
        _fields, name, version, chain_id, verifying, _salt, _ext = self.read(self.contracts.reward_token.eip712_domain())
        nonce = int(self.read(self.contracts.reward_token.nonces(account.address)))
        signed = account.sign_typed_data(
            domain_data={"name": name, "version": version, "chainId": chain_id, "verifyingContract": verifying},
            message_types={
                "Permit": [
                    {"name": "owner", "type": "address"},
                    {"name": "spender", "type": "address"},
                    {"name": "value", "type": "uint256"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                ]
            },
            message_data={
                "owner": account.address,
                "spender": self._spender(spender),
                "value": value,
                "nonce": nonce,
                "deadline": deadline,
            },
        )
        return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")

    # ------------------------------------------------------------------ requester

    def post_job(
        self,
        spec: JobSpec | bytes,
        *,
        reward: int,
        claim_window: int | None = None,
        challenge_window: int | None = None,
        collateral_pct: int | None = None,
        max_runtime: int | None = None,
        cpu_seconds: int | None = None,
        verify: str | VerifyMode | None = None,
        permit: bool = True,
        approve: bool = True,
        seal: bool = True,
        encrypt_to: str | bytes | None = None,
        confirmations: int = 1,
    ) -> PostedJob:
        """Posts a job and escrows R + f*R + A: the `reward` R, the protocol fee f*R and the audit fee
        A (0 for ``verify="none"``), all from the market balance when it covers them, else all from
        the wallet (as the contract takes it). `verify` defaults to the spec's ``verify`` field, else
        ``reexec``.

        **The result is sealed to the poster by default.** A spec without ``delivery`` is posted with
        ``delivery.encrypt_to`` = this client's own compressed public key (derived from its local
        signing key; the key is never logged), so the executor publishes the archive encrypted to
        it (:mod:`depin.delivery`) and :meth:`download_result` opens it with the same account. The
        added field is part of the posted bytes and the specHash (:func:`depin.spec.with_delivery`).
        `encrypt_to` (a secp256k1 public key, 33 or 65 bytes or their hex) seals to another key
        instead. ``seal=False`` posts a spec without ``delivery`` as it is: a plaintext archive,
        public under its opaque name once submitted, so a drawn verifier could hash it instead of
        running the job. A spec that already names ``delivery`` is posted as it is (an `encrypt_to`
        naming another key is refused as contradictory). A client whose account has no local
        private key (not a :class:`LocalAccount`; e.g. a node-side signer) cannot derive its own
        key: it posts a plaintext result unless the spec or `encrypt_to` names a key.
        :attr:`PostedJob.sealed_to` says which key the result is sealed to (None: plaintext).

        `max_runtime` (the on-chain submit window, from claim to submission) defaults to the spec's
        ``resources.max_runtime`` plus :data:`SUBMIT_MARGIN` seconds, within the market's bound (a
        spec whose runtime leaves, within that bound, less than a provider's claim policy keeps,
        :func:`depin.spec.policy_window`, is refused: no provider would claim it); one given
        shorter than the spec's runtime is refused too;
        `cpu_seconds` to :func:`depin.spec.cpu_seconds` of the spec; `claim_window` to an hour, `challenge_window` and
        `collateral_pct` to the market's minimums (each clamped into the market's bounds when
        defaulted, checked when given). With `permit` the wallet part is approved by an ERC-2612
        signature inside the same transaction (``postJobWithPermit``); otherwise an ``approve``
        transaction goes first when the allowance is short (or, with ``approve=False``,
        :class:`InsufficientAllowance` is raised).

        The job id is read from the post's receipt once `confirmations` blocks hold it: ids are
        given in the order posts are mined, so a reorg that puts another post first gives this one
        another id; with 1 (mined), the id is the first receipt's. 2 or 3 on a public network.
        """
        _check_confirmations(confirmations)
        p = self.params()
        post = self._prepare_post(
            spec, p, reward=reward, claim_window=claim_window, challenge_window=challenge_window,
            collateral_pct=collateral_pct, max_runtime=max_runtime, cpu_seconds=cpu_seconds, verify=verify,
            seal=seal, encrypt_to=encrypt_to,
        )
        spec_hash, spec_bytes, terms, parsed = post.spec_hash, post.spec_bytes, post.terms, post.parsed
        # encoded before anything is approved or sent: a term that does not fit its type fails here
        plain = self.contracts.job_market.post_job(spec_hash, spec_bytes, terms)
        mode = VerifyMode(terms[6])
        escrow = p.escrow(reward, mode)
        with self._spending():  # another thread's post must not use the allowance or permit this one counts on
            credit = self.withdrawable()
            need = 0 if credit >= escrow else escrow  # the contract takes it all from credit, or all from the wallet
            if need:
                self._ensure_funds(
                    need,
                    f"a reward of {format_tokens(reward)} plus fee {format_tokens(p.fee(reward))} and audit fee "
                    f"{format_tokens(p.audit_fee(reward, mode))}",
                )
            if need and self.allowance(spender="JobMarket") < need:
                if permit:
                    deadline = self.block_timestamp() + PERMIT_LIFETIME
                    v, r, s = self.permit_signature("JobMarket", need, deadline)
                    receipt = self.send(
                        self.contracts.job_market.post_job_with_permit(spec_hash, spec_bytes, terms, deadline, v, r, s),
                        confirmations=confirmations,
                    )
                    return PostedJob(self._job_id_from(receipt), receipt.tx_hash, receipt.gas_used, receipt, parsed.encrypt_to)
                self._ensure_allowance("JobMarket", need, approve=approve, what="posting the job")
            receipt = self.send(plain, confirmations=confirmations)
        return PostedJob(self._job_id_from(receipt), receipt.tx_hash, receipt.gas_used, receipt, parsed.encrypt_to)

    def post_jobs(
        self,
        specs: Sequence[JobSpec | bytes],
        *,
        reward: int,
        claim_window: int | None = None,
        challenge_window: int | None = None,
        collateral_pct: int | None = None,
        max_runtime: int | None = None,
        cpu_seconds: int | None = None,
        verify: str | VerifyMode | None = None,
        approve: bool = True,
        seal: bool = True,
        encrypt_to: str | bytes | None = None,
        confirmations: int = 1,
    ) -> list[PostedJob]:
        """Posts every spec of `specs` in one ``postJobs`` transaction, each with the same terms and
        defaults as :meth:`post_job` (each spec is checked, sealed and defaulted on its own), and
        escrows the sum at once: from the market balance when it covers all of it, else all from the
        wallet in one transfer (an ``approve`` goes first when the allowance is short; there is no
        permit variant). All or nothing. Returns one :class:`PostedJob` per spec, in order; they
        share the transaction (`gas_used` is the whole batch's). `confirmations`: as for
        :meth:`post_job`."""
        if isinstance(specs, (bytes, str, JobSpec)) or not isinstance(specs, Sequence):
            raise InvalidArgument(f"post_jobs takes a list of specs, not a {type(specs).__name__} (post_job posts one)")
        if not specs:
            raise ClientError("post_jobs needs at least one spec")
        _check_confirmations(confirmations)
        p = self.params()
        posts = [
            self._prepare_post(
                spec, p, reward=reward, claim_window=claim_window, challenge_window=challenge_window,
                collateral_pct=collateral_pct, max_runtime=max_runtime, cpu_seconds=cpu_seconds, verify=verify,
                seal=seal, encrypt_to=encrypt_to,
            )
            for spec in specs
        ]
        escrow = sum(p.escrow(reward, VerifyMode(post.terms[6])) for post in posts)
        # encoded before anything is approved or sent: a term that does not fit its type fails here
        call = self.contracts.job_market.post_jobs([(post.spec_hash, post.spec_bytes, post.terms) for post in posts])
        size = len(call.data) // 2 - 1
        if size > MAX_TX_DATA:
            fit = max(1, len(posts) * MAX_TX_DATA // size)
            raise InvalidArgument(
                f"{len(posts)} jobs make a postJobs transaction of {size} bytes; a node's pool takes at most "
                f"{MAX_TX_DATA} (geth refuses transactions over 128 KiB): split them into batches of at most {fit}"
            )
        with self._spending():
            need = 0 if self.withdrawable() >= escrow else escrow
            if need:
                self._ensure_funds(need, f"{len(posts)} jobs with a reward of {format_tokens(reward)} each, plus fees")
                self._ensure_allowance("JobMarket", need, approve=approve, what="posting the jobs")
            receipt = self.send(call, confirmations=confirmations)
        ids = self._job_ids_from(receipt)
        if len(ids) != len(posts):
            raise ClientError(f"transaction {receipt.tx_hash} emitted {len(ids)} JobPosted events for {len(posts)} jobs")
        return [
            PostedJob(job_id, receipt.tx_hash, receipt.gas_used, receipt, post.parsed.encrypt_to)
            for job_id, post in zip(ids, posts, strict=True)
        ]

    def _prepare_post(
        self,
        spec: JobSpec | bytes,
        p: Any,
        *,
        reward: int,
        claim_window: int | None,
        challenge_window: int | None,
        collateral_pct: int | None,
        max_runtime: int | None,
        cpu_seconds: int | None,
        verify: str | VerifyMode | None,
        seal: bool,
        encrypt_to: str | bytes | None,
    ) -> _Post:
        """What :meth:`post_job` and :meth:`post_jobs` send for one spec under parameters `p`: the
        checked, sealed spec bytes, their hash and the terms (defaults filled in, bounds checked)."""
        if isinstance(spec, str):
            spec = spec.encode()
        if not isinstance(spec, (JobSpec, bytes, bytearray, memoryview)):
            raise InvalidArgument(
                f"a spec is a JobSpec (depin.spec.parse_spec) or its canonical bytes, not a {type(spec).__name__}"
            )
        reward = _uint("the reward", reward)
        if isinstance(spec, JobSpec):
            # validated again: a JobSpec made without validation (model_copy(update=...), model_construct)
            # may hold what no executor runs (an image not pinned by digest)
            try:
                spec = parse_spec(spec.to_bytes())
            except (TypeError, ValueError) as exc:
                raise SpecError(f"invalid spec: {exc}") from None
        parsed = spec if isinstance(spec, JobSpec) else parse_spec(bytes(spec))
        if not isinstance(spec, JobSpec):
            check_canonical(bytes(spec))  # executors never run non-canonical bytes: refuse before escrowing
        spec_bytes = parsed.to_bytes() if isinstance(spec, JobSpec) else bytes(spec)
        # Executors and the indexer refuse spec bytes over MAX_SPEC_BYTES: such a job could never run
        # (a JobSpec built without parse_spec has not been measured yet).
        check_spec_size(spec_bytes)
        recipient = self._seal_recipient(parsed, seal=seal, encrypt_to=encrypt_to)
        if recipient is not None and parsed.delivery is None:
            spec_bytes = with_delivery(spec if isinstance(spec, JobSpec) else spec_bytes, recipient)
            parsed = parse_spec(spec_bytes)  # the size limit and the schema, with the key in
        if reward < MIN_REWARD:
            raise Refused(
                f"the reward {reward} base units is below the market's minimum of {MIN_REWARD} (so that no fee rounds to 0)",
                "TermOutOfBounds",
            )
        if reward > p.max_reward:
            raise Refused(
                f"the reward {format_tokens(reward)} exceeds the market's cap of {format_tokens(p.max_reward)} per job "
                "(what every verifier of the court can be seated for: its minimum stake / sigma)",
                "TermOutOfBounds",
            )
        if p.paused:
            raise Refused("the market is paused: no new jobs are accepted right now", "MarketPaused")
        for name, value in (("claim_window", claim_window), ("challenge_window", challenge_window),
                            ("collateral_pct", collateral_pct), ("max_runtime", max_runtime)):
            if value is not None:
                _uint(name, value)
        if cpu_seconds is not None:
            _uint("cpu_seconds", cpu_seconds, bits=32)
        claim_window = _bounded("claim window", claim_window, DEFAULT_CLAIM_WINDOW, p.min_claim_window, p.max_claim_window)
        challenge_window = _bounded(
            "challenge window", challenge_window, p.min_challenge_window, p.min_challenge_window, p.max_challenge_window
        )
        collateral_pct = _bounded(
            "collateral percentage", collateral_pct, p.min_collateral_pct, p.min_collateral_pct, p.max_collateral_pct,
            unit="%",
        )
        if max_runtime is None:  # the submit window: the run itself plus time to fetch, archive and submit
            needed = policy_window(parsed)
            if needed > p.max_runtime:  # clamped to the bound, the window would be one no provider takes
                runtime = parsed.resources.max_runtime
                raise Refused(
                    f"the spec's runtime of {runtime} s leaves no submit window a provider takes: its policy needs "
                    f"{needed} s (the runtime + {needed - runtime} s to stop, archive and submit"
                    f"{' and to fetch the http(s) inputs' if fetches_http(parsed) else ''}), and the market allows at most "
                    f"{p.max_runtime} s; lower resources.max_runtime to {p.max_runtime - (needed - runtime)} s or less"
                )
            max_runtime = min(parsed.resources.max_runtime + SUBMIT_MARGIN, p.max_runtime)
        elif max_runtime < parsed.resources.max_runtime:  # a window no run that uses its runtime fits in
            raise Refused(
                f"the submit window max_runtime={max_runtime} s is shorter than the spec's runtime of "
                f"{parsed.resources.max_runtime} s: a run that uses its runtime could not be submitted in time, and providers "
                f"refuse such a job (their policy keeps {policy_window(parsed)} s); give at least that, or leave it out "
                "(the default is the runtime + 120 s)",
                "TermOutOfBounds",
            )
        _bounded("max runtime", max_runtime, None, p.min_runtime, p.max_runtime)
        cpu_seconds = spec_cpu_seconds(parsed) if cpu_seconds is None else cpu_seconds
        try:
            mode = VerifyMode.from_spec(getattr(parsed, "verify", None)) if verify is None else (
                verify if isinstance(verify, VerifyMode) else VerifyMode.from_spec(str(verify))
            )
        except ValueError as exc:
            raise Refused(str(exc), "InvalidVerifyMode") from None
        terms = (reward, claim_window, max_runtime, challenge_window, collateral_pct, cpu_seconds, int(mode))
        return _Post(keccak(spec_bytes), spec_bytes, terms, parsed)

    def own_public_key(self) -> bytes | None:
        """The compressed secp256k1 public key of this client's local signing key (what
        :meth:`post_job` seals results to by default), or None: no account, or one without a local
        private key."""
        key = getattr(self.account, "key", None) if self.account is not None else None
        if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
            return None
        return public_key_of(bytes(key))

    def _seal_recipient(self, spec: JobSpec, *, seal: bool, encrypt_to: str | bytes | None) -> bytes | None:
        """The key :meth:`post_job` adds as ``delivery.encrypt_to`` (None: post the spec as it is)."""
        if spec.delivery is not None:
            if encrypt_to is not None and parse_public_key(encrypt_to) != spec.encrypt_to:
                raise ClientError("the spec already names a delivery key (delivery.encrypt_to) and encrypt_to gives another one")
            return None  # posted as it is (seal=False too: it only declines the default)
        if encrypt_to is not None:
            if not seal:
                raise ClientError("encrypt_to seals the result; it contradicts seal=False")
            try:
                return parse_public_key(encrypt_to)
            except DeliveryError as exc:
                raise ClientError(f"encrypt_to: {exc}") from None
        return self.own_public_key() if seal else None

    def _job_id_from(self, receipt: Receipt) -> int:
        ids = self._job_ids_from(receipt)
        if not ids:
            raise ClientError(f"transaction {receipt.tx_hash} emitted no JobPosted event")
        return ids[0]

    def _job_ids_from(self, receipt: Receipt) -> list[int]:
        """The ids of the market's JobPosted events in `receipt`, in log order."""
        topic = self._topic("JobMarket", "JobPosted")
        return [
            int(entry["topics"][1], 16)
            for entry in receipt.logs
            if entry["address"].lower() == self.market.lower() and entry["topics"] and entry["topics"][0] == topic
        ]

    def cancel(self, job_id: int) -> Receipt:
        """Cancels an open job of this account's (also past its claim deadline, until someone expires
        it); its whole escrow (the reward, the fee and the audit escrow) is credited back to this
        account's market balance (:meth:`withdraw` moves it to the wallet)."""
        job = self.job(job_id)
        if job.requester != self.address:
            raise Refused(f"job {job.job_id} was posted by {job.requester}, not by {self.address}", "NotRequester")
        if job.status != JobStatus.OPEN:
            raise Refused(f"job {job.job_id} is {job.status.label}; only an Open job can be cancelled", "WrongStatus")
        return self.send(self.contracts.job_market.cancel_job(job.job_id))

    def challenge(self, job_id: int, *, approve: bool = True) -> Receipt:
        """Challenges a submitted job in its court (``VerificationCourt.challenge``) within its
        challenge window, posting the court's challenge bond (challengeBondBps x R, approved to the
        court first). The bond comes back with at most beta x R if the provider was wrong; it is
        lost if the provider was right. A challenge that would revert (the job's provider, a
        verify-none job, a closed window, a job challenged already) is refused (:class:`Refused`)
        before anything is approved or sent."""
        job = self.job(job_id)
        if job.status not in (JobStatus.SUBMITTED, JobStatus.DISPUTED):
            raise Refused(f"job {job.job_id} is {job.status.label}; only a Submitted job can be challenged", "WrongStatus")
        if job.provider == self.address:
            raise Refused(f"{self.address} is job {job.job_id}'s provider and may not challenge it", "ProviderCannotChallenge")
        if job.verify_mode == VerifyMode.NONE:
            raise Refused(f"job {job.job_id} was posted with verify none: it cannot be challenged", "NotVerifiable")
        court = self.court_of(job.job_id)
        case = self.court_case(job.job_id)
        phase = Phase(int(case["phase"]))
        if self.block_timestamp() > job.deadline or (
            phase is not Phase.NONE and (int(case["round"]) != 0 or phase not in (Phase.ACTIVE, Phase.TALLIED))
        ):
            raise Refused(f"job {job.job_id}'s challenge window is closed (its deadline was {job.deadline})", "ChallengeClosed")
        if phase is not Phase.NONE and int(case["challenger"], 16) != 0:
            raise Refused(f"job {job.job_id} was challenged already, by {case['challenger']}", "AlreadyChallenged")
        bond = self._challenge_bond(job, case)
        with self._spending():
            self._ensure_funds(bond, f"the challenge bond of job {job.job_id}")
            self._ensure_allowance(self._court_spender(court), bond, approve=approve, what="the challenge bond")
            return self.send(court.challenge(job.job_id))

    def challenge_bond(self, job: OnchainJob | int) -> int:
        """The bond :meth:`challenge` posts for `job`: challengeBondBps x R, of the parameters its
        court case opened with (the current ones when the challenge opens it)."""
        record = job if isinstance(job, OnchainJob) else self.job(job)
        return self._challenge_bond(record, self.court_case(record.job_id))

    def _challenge_bond(self, job: OnchainJob, case: dict[str, Any]) -> int:
        return job.reward * int(self._case_params(case, self.court_of(job.job_id)).get("challengeBondBps", 0)) // BPS

    def appeal_bond(self, job_id: int) -> int:
        """The bond :meth:`appeal` posts now for job `job_id`'s case: the next jury's K x w (7 w after
        round 1's tally, 15 w after round 2's, and 15 w again to take round 3's tally to the
        arbiter), where w = jurorPayBps x R of the parameters the case opened with."""
        return self._appeal_bond(self.court_case(job_id), self.court_of(job_id))

    def _appeal_bond(self, case: dict[str, Any], court: VerificationCourt) -> int:
        k = JURY_SIZES[min(int(case["round"]) + 1, LAST_JURY_ROUND)]
        w = int(case["reward"]) * int(self._case_params(case, court).get("jurorPayBps", 0)) // BPS
        return k * w

    def _case_params(self, case: dict[str, Any], court: VerificationCourt) -> dict[str, Any]:
        """The parameters of `court` (the case's job's, :meth:`court_of`) that a case settles by:
        those of the version it opened with (the court keeps each version), the current ones for a
        case not opened yet."""
        version = int(case.get("paramsVersion", 0))
        if int(case["phase"]) == Phase.NONE or version == int(self.read(court.params_version())):
            return self._params_of(court)
        topic = "0x" + version.to_bytes(32, "big").hex()
        logs = self._latest_logs("VerificationCourt", [self._topic("VerificationCourt", "CourtParamsSet"), topic], at=court.address)
        if not logs:
            raise ClientError(f"no CourtParamsSet event of the parameter version {version} of court {court.address} on this node")
        values = self._event_values("VerificationCourt", "CourtParamsSet", logs[-1])["params"]
        return dict(zip(_COURT_PARAM_FIELDS, values, strict=False))

    def advance(self, job_id: int) -> Receipt:
        """Moves the job's court case past an elapsed deadline (``VerificationCourt.advance``: tally,
        conclude, no-shows); anyone may call it."""
        return self.send(self.court_of(job_id).advance(_job_id(job_id)))

    def redraw(self, job_id: int) -> Receipt:
        """Redraws the empty seats of the job's court case once its seat deadline passed (anyone)."""
        return self.send(self.court_of(job_id).redraw(_job_id(job_id)))

    def appeal(self, job_id: int, *, approve: bool = True) -> Receipt:
        """Appeals the last jury tally of the job's case, within its appeal window: the provider
        against ProviderWrong, anyone else against any other tally. Posts the appeal bond
        (:meth:`appeal_bond`), approving the court for exactly that first. A case with no appeal
        open, or a caller on the winning side, is refused (:class:`Refused`) before anything is
        approved or sent."""
        job = self.job(job_id)
        case = self.court_case(job.job_id)
        phase, round_ = Phase(int(case["phase"])), int(case["round"])
        if phase is not Phase.TALLIED or round_ == 0 or self.block_timestamp() > int(case["windowEnd"]):
            state = f"round {round_} {phase.label}" if phase is not Phase.NONE else "no court case"
            raise Refused(
                f"job {job.job_id} has no appeal open ({state}): only a jury's tally may be appealed, within its "
                "appeal window", "AppealClosed")
        provider_lost = Outcome(int(case["tally"])) is Outcome.PROVIDER_WRONG
        if provider_lost != (self.address.lower() == str(case["provider"]).lower()):
            side = "only the provider" if provider_lost else "anyone but the provider"
            raise Refused(
                f"the jury's tally of job {job.job_id} is {Outcome(int(case['tally'])).label}: {side} may appeal it",
                "NotAppellant")
        court = self.court_of(job.job_id)
        bond = self._appeal_bond(case, court)
        with self._spending():
            self._ensure_funds(bond, f"the appeal bond of job {job.job_id}")
            self._ensure_allowance(self._court_spender(court), bond, approve=approve, what="the appeal bond")
            return self.send(court.appeal(job.job_id))

    # ------------------------------------------------------------------ permissionless steps

    def due_step(self, job_id: int) -> DueStep:
        """Which permissionless step job `job_id`'s deadlines allow now, read from the chain (the
        job, its draw, its court case); nothing is sent. :meth:`advance_job` sends it.

        - Open past its claim deadline: ``expire`` (its whole escrow, reward + fee + audit escrow,
          credited back to the requester); before, it waits for a claim (the requester may cancel);
        - Claimed past its submit deadline: ``timeout`` (the provider's collateral is burned; the
          escrow is credited back, or the job reopens while its claim deadline has not passed);
        - Submitted past its challenge deadline and not drawn for audit: ``finalize`` (the provider
          is paid and the unused audit escrow A credited back to the requester; a failure report
          gets the whole escrow back); before, it waits out its window (it may be challenged);
        - Submitted and drawn for audit, or Disputed: the court's ``advance`` (also its ``redraw``:
          one code path) once its case's deadlines allow it: no verifier took the drawn audit by its
          seat deadline (the case opens, the seat is redrawn), a round's seat or reveal deadline
          passed, a tally's appeal window (or the audit's canary and challenge windows) ended, the
          arbiter's window or timelock passed. The court is asked by a call that sends nothing
          (``NothingDue`` there: not yet; the wait is read from the case's deadlines). Starting the
          drawn audit (``startAudit``) and taking seats are the drawn verifiers' alone;
        - settled (Finalized, Cancelled, Expired, TimedOut, Resolved, Pruned): nothing.
        """
        return self._due(self.job(job_id))[0]

    def _due(self, job: OnchainJob) -> tuple[DueStep, OnchainJob]:
        now = self.block_timestamp()

        def at(**fields: Any) -> DueStep:
            return DueStep(job.job_id, job.status, now, **fields)

        refund = f"crediting its whole escrow of {format_tokens(job.escrow)} {TOKEN_SYMBOL} (reward + fee + audit escrow) back to the requester"
        if job.status == JobStatus.OPEN:
            if now > job.claim_deadline:
                return at(step="expire", does=f"expires it (nobody claimed it by its claim deadline), {refund}"), job
            return at(waits_for="a provider to claim it", until=job.claim_deadline, then="expire",
                      then_does=f"expires it, {refund}", meanwhile="cancel"), job
        if job.status == JobStatus.CLAIMED:
            def timeout_does(when: int) -> str:  # the job reopens when timed out by its claim deadline
                head = f"times it out: its provider's collateral of {format_tokens(job.collateral)} {TOKEN_SYMBOL} is burned"
                if when <= job.claim_deadline:
                    return f"{head} and the job reopens for other providers until its claim deadline (nothing is refunded then)"
                return f"{head}, {refund}"

            if now > job.deadline:
                return at(step="timeout", does=timeout_does(now + 1)), job
            return at(waits_for=f"the result of its provider {job.provider}", until=job.deadline, then="timeout",
                      then_does=timeout_does(job.deadline + 1)), job
        if job.status == JobStatus.SUBMITTED:
            drawn = self.is_drawn(job.job_id)
            if drawn:
                return self._court_due(job, now), job
            finalize = self._finalize_does(job)
            challenge = "challenge" if job.verify_mode == VerifyMode.REEXEC else None
            if now <= job.deadline:
                unless = " unless it is drawn for audit (then its court settles it)" if drawn is None else ""
                return at(waits_for="the end of its challenge window", until=job.deadline, then="finalize",
                          then_does=finalize + unless, meanwhile=challenge), job
            if drawn is None:
                return at(waits_for=f"the randomness of its anchor block {job.anchor_block} (the chain is at block "
                          f"{self.block_number()}), which decides whether it is audited", then="finalize",
                          then_does=f"{finalize} unless it is drawn for audit (then its court settles it)"), job
            return at(step="finalize", does=finalize), job
        if job.status == JobStatus.DISPUTED:
            return self._court_due(job, now), job
        return at(waits_for="nothing (it is settled)"), job

    @staticmethod
    def _finalize_does(job: OnchainJob) -> str:
        if job.failure:
            return (f"finalizes its failure report: its whole escrow of {format_tokens(job.escrow)} {TOKEN_SYMBOL} is "
                    "credited back to the requester")
        if not job.audit_fee:
            return "finalizes it: the provider is paid (a verify-none job: nothing comes back to the requester)"
        return (f"finalizes it: the provider is paid and the unused audit escrow of {format_tokens(job.audit_fee)} "
                f"{TOKEN_SYMBOL} is credited back to the requester")

    def _court_due(self, job: OnchainJob, now: int) -> DueStep:
        """:meth:`due_step` of a job in its court's hands: drawn for audit, or Disputed."""
        court = self.court_of(job.job_id)

        def at(**fields: Any) -> DueStep:
            return DueStep(job.job_id, job.status, now, court=court.address, **fields)

        try:
            case = self.court_case(job.job_id)
        except TxReverted:  # the TestCourt stand-in of local test deployments: settled by hand
            return at(waits_for=f"its court {court.address} to settle it (a court without cases: no permissionless step moves it)")
        blocked = self._reverts(court.advance(job.job_id))
        phase, round_ = Phase(int(case["phase"])), int(case["round"])
        if blocked is None:
            return at(step="advance", does=self._advance_does(case, court, now))
        if blocked.error_name != "NothingDue":
            return at(waits_for=f"its court case, which its court refuses to advance now ({blocked.reason})")
        open_to_challenge = int(case["challenger"], 16) == 0 and (phase is Phase.NONE or (round_ == 0 and phase in (Phase.ACTIVE, Phase.TALLIED)))
        challenge = "challenge" if now <= job.deadline and open_to_challenge else None
        if phase is Phase.NONE:  # drawn, and no verifier has opened the case yet
            seat_deadline = job.deadline - job.challenge_window + int(self.read(court.required_challenge_window()))
            return at(waits_for="its drawn auditor to take the audit", until=seat_deadline, then="advance",
                      then_does="opens its court case and redraws the auditor (or settles it Unaudited when no verifier can take it)",
                      meanwhile=challenge)
        name, k = _round_name(round_), JURY_SIZES[min(round_, LAST_JURY_ROUND)]
        if phase is Phase.ACTIVE:
            taken = int(case["taken"])
            if taken < k and now <= int(case["seatDeadline"]):
                seats = "its drawn auditor to take the audit" if round_ == 0 else f"the drawn verifiers to take the seats of {name} ({taken} of {k} taken)"
                return at(waits_for=seats,
                          until=int(case["seatDeadline"]), then="advance",
                          then_does=f"redraws the empty seats of {name} (or ends the round when no redraw is left)",
                          meanwhile=challenge)
            return at(waits_for=f"the commits and reveals of {name} ({case['committed']} committed and {case['revealed']} "
                      f"revealed of {taken} seats taken)", until=int(case["revealDeadline"]), then="advance",
                      then_does=f"ends {name}: its no-shows forfeit their bonds, then its votes are tallied (or its empty seats redrawn)",
                      meanwhile=challenge)
        if phase is Phase.TALLIED:
            tally = Outcome(int(case["tally"]))
            if round_ == 0:
                waits = f"the end of the audit's canary and challenge windows (its tally: {tally.label})"
                meanwhile = challenge
            else:
                waits = f"the end of the appeal window of the tally of jury round {round_} ({tally.label})"
                meanwhile = "appeal" if tally is not Outcome.PROVIDER_WRONG else None  # only the provider appeals ProviderWrong
            return at(waits_for=waits, until=int(case["windowEnd"]), then="advance",
                      then_does="concludes the case with that tally: the job settles", meanwhile=meanwhile)
        if phase is Phase.ARBITER:
            if now <= int(case["windowEnd"]):
                return at(waits_for="the arbiter's ruling (a ruling then waits out its timelock)", until=int(case["windowEnd"]),
                          then="advance", then_does="concludes the case with the last tally, or with the arbiter's ruling once its timelock passed")
            return at(waits_for="the timelock of the arbiter's ruling", then="advance", then_does="concludes the case with the ruling")
        return at(waits_for=f"its court case ({phase.label}) to settle the job")

    def _advance_does(self, case: dict[str, Any], court: VerificationCourt, now: int) -> str:
        """What the court's ``advance`` does to `case` now (it does not revert: see :meth:`_court_due`)."""
        phase, round_ = Phase(int(case["phase"])), int(case["round"])
        if phase is Phase.NONE:
            return ("opens the court case of its drawn audit, which no verifier took by its seat deadline: the auditor is "
                    "redrawn, or the job settles Unaudited when no verifier can take it")
        name, k = _round_name(round_), JURY_SIZES[min(round_, LAST_JURY_ROUND)]
        if phase is Phase.ACTIVE:
            if int(self.read(court.class_stake_at(int(case["platformClass"]), int(case["snapshotBlock"])))) == 0:
                return "settles it Unaudited: no verifier of its platform class can ever be drawn"
            taken = int(case["taken"])
            if taken < k and int(case["revealed"]) == 0 and now <= int(case["revealDeadline"]):
                return (f"redraws the empty seats of {name} ({taken} of {k} were taken by its seat deadline), or ends "
                        "the round when no redraw is left")
            return (f"ends {name} (its reveal deadline passed, or every vote is in): its no-shows forfeit their bonds, "
                    "then its votes are tallied (or its empty seats redrawn)")
        if phase is Phase.TALLIED:
            return f"concludes the case with the tally of {name} ({Outcome(int(case['tally'])).label}): the job settles"
        return "concludes the case: with the arbiter's ruling once its timelock passed, else with the last tally"

    def _reverts(self, call: ContractCall) -> TxReverted | None:
        """The revert a call of `call` meets now (from this client's account when it has one), or
        None when it would go through; nothing is sent."""
        tx: dict[str, Any] = {"to": call.to, "data": call.data}
        if self.tx is not None:
            tx["from"] = self.address
        try:
            self.rpc.eth_call(tx, "latest")
        except RpcError as exc:
            if looks_like_revert(exc):
                raw = revert_data(exc)
                return TxReverted(call.what, self.codec.decode_error(raw), data=raw)
            raise
        return None

    def advance_job(self, job_id: int) -> AdvancedJob:
        """Sends the step :meth:`due_step` finds due for job `job_id` now (permissionless: any
        account may send it and pays only the gas) and says what came of it and what the job's
        requester got back (:class:`AdvancedJob`). :class:`NothingDue` (a :class:`Refused`; nothing
        sent) when no step is due: its ``due`` says what the job waits for and until when."""
        due, job = self._due(self.job(job_id))
        if due.step is None:
            raise NothingDue(due)
        market = self.contracts.job_market
        if due.step == "advance":
            call = self.court_of(job.job_id).advance(job.job_id)
        else:
            call = {"expire": market.expire_job, "timeout": market.timeout_job, "finalize": market.finalize}[due.step](job.job_id)
        receipt = self.send(call)
        return self._advanced(job, due.step, receipt)

    def _advanced(self, job: OnchainJob, step: str, receipt: Receipt) -> AdvancedJob:
        """What `receipt` (of `step` for `job`) did, from its events: the market's (the refund
        credited to the requester), the court's (its case's moves) and the token's (what the court
        paid to the requester's wallet)."""
        market, court = self.market.lower(), self.court_of(job.job_id).address.lower()
        token = self.contracts.reward_token.address.lower()
        names = {
            "JobMarket": {topic: name for name, topic in self.contracts.job_market.TOPICS.items()},
            "VerificationCourt": {topic: name for name, topic in self.contracts.verification_court.TOPICS.items()},
        }
        mine = _uint_topic(job.job_id)
        transfer = self.contracts.reward_token.TOPICS["Transfer"]
        requester = _address_topic(job.requester)
        credited = paid = 0
        did: list[str] = []
        no_shows = 0
        opened = False
        for entry in receipt.logs:
            topics = [str(t).lower() for t in entry["topics"]]
            address = str(entry["address"]).lower()
            if not topics:
                continue
            if address == token and topics[0] == transfer and len(topics) == 3:
                if topics[1] == _address_topic(court) and topics[2] == requester:
                    paid += int(entry["data"], 16)
                continue
            contract = "JobMarket" if address == market else "VerificationCourt" if address == court else None
            if contract is None or len(topics) < 2 or topics[1] != mine:
                continue
            name = names[contract].get(topics[0])
            if name is None:
                continue
            v = self._event_values(contract, name, entry)
            if name == "JobExpired":
                credited += int(v["refund"])
                did.append("expired it (nobody claimed it by its claim deadline)")
            elif name == "JobTimedOut":
                credited += int(v["refund"])
                burned = f"timed it out: its provider's collateral of {format_tokens(int(v['slashed']))} {TOKEN_SYMBOL} was burned"
                did.append(f"{burned}; the job is Open again until its claim deadline" if v["reopened"] else burned)
            elif name == "JobFinalized":
                credited += job.audit_fee + (int(v["payout"]) if v["failure"] else 0)
                did.append("finalized its failure report" if v["failure"]
                           else f"finalized it: the provider was paid {format_tokens(int(v['payout']))} {TOKEN_SYMBOL}")
            elif name == "JobSettled":
                credited += int(v["requesterRefund"])
                did.append(f"the job settled {Outcome(int(v['outcome'])).label} (the provider was paid "
                           f"{format_tokens(int(v['providerPayout']))} {TOKEN_SYMBOL})")
            elif name == "CaseOpened":
                opened = True
                did.append("opened its court case (the drawn audit nobody had taken)")
            elif name == "SeatsDrawn":
                round_, redraws = int(v["round"]), int(v["redraws"])
                if redraws:
                    did.append(f"redrew the empty seats of {_round_name(round_)} (redraw {redraws})")
                elif not (opened and round_ == 0):
                    did.append(f"drew {_round_name(round_)}")
            elif name == "SeatNoShow":
                no_shows += 1
            elif name == "RoundTallied":
                if no_shows:
                    did.append(f"{no_shows} no-show seat{'s' * (no_shows > 1)} forfeited {'their bonds' if no_shows > 1 else 'its bond'}")
                    no_shows = 0
                did.append(f"tallied {_round_name(int(v['round']))}: {Outcome(int(v['tally'])).label}")
            elif name == "CaseConcluded":
                did.append(f"concluded the case: {Outcome(int(v['outcome'])).label}")
        if no_shows:
            did.append(f"{no_shows} no-show seat{'s' * (no_shows > 1)} forfeited {'their bonds' if no_shows > 1 else 'its bond'}")
        return AdvancedJob(
            job_id=job.job_id, step=step, did="; ".join(did) or f"sent {step}", status=self.job(job.job_id).status,
            requester=job.requester, credited=credited, paid=paid, tx_hash=receipt.tx_hash, gas_used=receipt.gas_used,
            receipt=receipt,
        )

    def fetch_result(
        self,
        job_id: int,
        dest_dir: Path,
        *,
        max_bytes: int | None = None,
        salt: bytes | None = None,
        decrypt_key: bytes | None = None,
        allow_networks: Sequence[str] | None = None,
    ) -> Path:
        """Downloads the job's result archive from its submitted URI, checks it against the
        provider's on-chain commitment (refusing a mismatch: nothing is extracted), extracts its
        ``out/`` into `dest_dir` and returns `dest_dir`. A result its court ruled wrong is refused
        (:class:`ResultRuledWrong`). :meth:`download_result` gives the details."""
        return self.download_result(
            job_id, dest_dir, max_bytes=max_bytes, salt=salt, decrypt_key=decrypt_key, allow_networks=allow_networks
        ).path

    def download_result(
        self,
        job_id: int,
        dest_dir: Path,
        *,
        max_bytes: int | None = None,
        salt: bytes | None = None,
        decrypt_key: bytes | None = None,
        allow_networks: Sequence[str] | None = None,
        allow_ruled_wrong: bool = False,
        allow_vcs: bool = False,
    ) -> FetchedResult:
        """:meth:`fetch_result` with the details. The check: the archive's digest (its sha256; the
        match digest of the spec's output selector when it has one) with the provider's `salt` must
        give the commitment on chain: keccak256(abi.encode(provider, jobId, digest, salt)). The salt
        is the provider's to publish with the archive: `salt`, else the ``salt`` of the manifest
        beside the archive (``<uri>.json``).

        A sealed delivery (the spec's ``delivery.encrypt_to``, :mod:`depin.delivery`) is first
        checked against its content address (the sha256 the URI and the manifest name:
        :class:`ResultMismatch` otherwise), then opened with `decrypt_key` (default: this client's
        account key; :class:`ResultSealed` when it is not the recipient's), its salt likewise, and
        then checked against the commitment as above. `dest_dir` must be new or empty
        (:class:`ClientError` otherwise): the result's files never replace files already there.

        The URI is the provider's, so it is fetched as a verifier fetches it (:mod:`depin.addresses`):
        over http(s), each hop (the URI's host, each redirect's) only to a public address or one in
        `allow_networks` (CIDR; None: loopback on a local devnet chain, where the providers serve,
        none elsewhere), so that a provider cannot make this machine send requests into its own
        network; a local devnet also takes ``file://`` URIs. The whole download is bounded by
        ``DOWNLOAD_TIMEOUT`` plus `max_bytes` at ``DOWNLOAD_MIN_RATE``.

        A job its court settled (Resolved) has an outcome (``JobSettled``), returned in
        :attr:`FetchedResult.outcome`. When the court ruled the result wrong (ProviderWrong: the
        provider's collateral slashed, the requester refunded), the result may match the commitment
        but is the wrong answer: :class:`ResultRuledWrong`, nothing downloaded, unless
        `allow_ruled_wrong` (to look at what the provider delivered).

        A result holding a version-control tool's metadata folder (``out/.git``, ``.hg``: its
        settings name commands that ``git status`` in the folder runs) is refused like an unsafe
        one (:class:`ResultUnsafe`, nothing extracted) unless `allow_vcs`: only for a result whose
        provider you trust (:func:`depin.outputs.vcs_name_fault`)."""
        job = self.job(job_id)
        sub = self.submission(job.job_id)
        if job.status in (JobStatus.OPEN, JobStatus.CLAIMED) or sub is None:
            raise ResultUnavailable(f"job {job.job_id} has no result yet (it is {job.status.label})")
        if job.status in (JobStatus.CANCELLED, JobStatus.EXPIRED, JobStatus.TIMED_OUT):
            raise ResultUnavailable(f"job {job.job_id} is {job.status.label}; it has no result")
        if sub.failure:
            code = sub.failure_code.name if sub.failure_code is not None else "?"
            raise ResultUnavailable(f"job {job.job_id} ended with a failure report ({code}), not a result")
        settled = self.settlement(job.job_id) if job.status in (JobStatus.RESOLVED, JobStatus.PRUNED) else None
        outcome = settled.outcome if settled is not None else None
        if settled is not None and outcome == Outcome.PROVIDER_WRONG and not allow_ruled_wrong:
            raise ResultRuledWrong(
                f"job {job.job_id}'s court ruled its result wrong (outcome ProviderWrong: the provider's collateral was "
                f"slashed, {format_tokens(settled.requester_refund)} {TOKEN_SYMBOL} refunded to the requester); "
                "refusing it (nothing downloaded)"
            )
        if salt is not None and len(salt) != SALT_BYTES:
            raise ClientError(f"a commitment's salt must be {SALT_BYTES} bytes, not {len(salt)}")
        spec = self._parsed_spec(job.job_id)
        if max_bytes is None:
            max_bytes = self._output_limit(job.job_id, spec)
        source = self._result_source(allow_networks)
        dest_dir = Path(dest_dir)
        created = done = False  # a folder made here and left empty by a failure is removed again
        try:
            try:
                dest_dir.mkdir(parents=True)
                created = True
            except FileExistsError:
                pass
            if any(dest_dir.iterdir()):  # a result's out/.bashrc must never replace a file of the user's
                raise ClientError(
                    f"{dest_dir} is not empty: a result is extracted only into a new or empty folder (its files"
                    " would replace what is there); give another --out folder"
                )
            fd, tmp = tempfile.mkstemp(prefix=f".depin-result-{job.job_id}.", suffix=".tar", dir=dest_dir)
        except OSError as exc:
            _remove_if_made(dest_dir, created)
            raise ClientError(f"cannot write the result into {dest_dir}: {exc.strerror or exc}") from None
        except BaseException:
            _remove_if_made(dest_dir, created)
            raise
        os.close(fd)
        archive = Path(tmp)
        plain = archive.with_name(archive.name + ".open")
        sealed = False
        try:
            digest, size = source.download(sub.uri, archive, max_bytes)
            manifest = source.manifest(sub.uri)
            if manifest is not None and manifest.get("salt_sealed"):
                sealed = True
                _check_content_address(job.job_id, sub.uri, digest, manifest)
                key = self._delivery_key(decrypt_key)
                recipient = str(manifest.get("encrypt_to", "?"))
                try:
                    size = open_file(key, archive, plain, what=f"the sealed result of job {job.job_id}")
                    opened_salt = open_bytes(key, bytes.fromhex(str(manifest["salt_sealed"]).removeprefix("0x")), what="the sealed salt")
                except DeliveryError:
                    raise ResultSealed(self._wrong_key(job, spec, recipient, key)) from None
                except ValueError:
                    raise ResultMismatch(f"the manifest of job {job.job_id}'s result has a malformed salt_sealed; refusing it") from None
                if len(opened_salt) != SALT_BYTES:  # a commitment's salt is a bytes32: no reveal on chain could show this one
                    raise ResultMismatch(
                        f"the sealed salt of job {job.job_id}'s result is {len(opened_salt)} bytes, not the {SALT_BYTES} of a "
                        "commitment's salt; refusing it (nothing extracted)"
                    )
                os.replace(plain, archive)
                digest = _sha256_file(archive)
                salt = salt if salt is not None else opened_salt
            match, outside, entries = self._match_digest(job.job_id, archive, digest)
            used_salt = salt if salt is not None else _salt_of(manifest)
            if used_salt is None:
                why = f"no manifest at {sub.uri}.json" if manifest is None else f"the manifest at {sub.uri}.json holds no {SALT_BYTES}-byte salt"
                raise ResultMismatch(
                    f"result of job {job.job_id} from {sub.uri}: no salt to check it against the provider's commitment "
                    f"({why}; pass the salt); refusing it (nothing extracted)"
                )
            if _commitment(sub.provider, job.job_id, match, used_salt) != sub.commitment:
                raise ResultMismatch(
                    f"result of job {job.job_id} from {sub.uri} does not match the chain: digest 0x{match.hex()} with salt "
                    f"0x{used_salt.hex()} does not give the provider's commitment 0x{sub.commitment.hex()}; refusing it "
                    "(nothing extracted)"
                )
            try:
                exit_code = extract_archive(archive, dest_dir, allow_vcs=allow_vcs)
            except VcsMetadata as exc:
                _remove_extracted(dest_dir, keep=(archive, plain))
                raise ResultUnsafe(
                    f"result of job {job.job_id} matches its hash but is not safe to extract ({exc}); nothing extracted "
                    "(allow_vcs=True, `depin job result --allow-vcs`, extracts it: only for a provider you trust)"
                ) from None
            except UnsafeArchive as exc:
                _remove_extracted(dest_dir, keep=(archive, plain))  # tarfile's filter, the second line, stops mid-way
                raise ResultUnsafe(f"result of job {job.job_id} matches its hash but is not safe to extract ({exc}); nothing extracted") from None
            except (OSError, ValueError, KeyError, tarfile.TarError) as exc:
                _remove_extracted(dest_dir, keep=(archive, plain))
                raise ResultUnavailable(f"result of job {job.job_id} matches its hash but cannot be extracted: {exc}; nothing extracted") from None
            except BaseException:  # anything else (a bug, ^C) keeps its traceback, but leaves no half-extracted result
                _remove_extracted(dest_dir, keep=(archive, plain))
                raise
            done = True
        finally:
            archive.unlink(missing_ok=True)
            plain.unlink(missing_ok=True)
            if not done:
                _remove_if_made(dest_dir, created)
        asked = spec is not None and spec.encrypt_to is not None
        return FetchedResult(
            job.job_id, dest_dir, digest, size, exit_code, sub.uri, sealed, sealing_ignored=asked and not sealed,
            status=job.status, outcome=outcome, outside_match=outside, entries=entries,
        )

    @staticmethod
    def _wrong_key(job: OnchainJob, spec: JobSpec | None, recipient: str, key: bytes) -> str:
        """What to do when `key` does not open job's sealed result: whose key does (the account of
        the key its posted spec names; the manifest's when the spec cannot be read), and how to give
        it. Addresses only: no key is printed."""
        given = address_of_public_key(public_key_of(key))
        try:
            owner = address_of_public_key(spec.encrypt_to if spec is not None and spec.encrypt_to else recipient)
        except DeliveryError:
            owner = None
        head = f"cannot open the sealed result of job {job.job_id}: it was not encrypted to this key (the key of {given}), or it was altered"
        if owner is None:
            # the manifest's encrypt_to is the provider's text (up to a manifest's 64 KiB): shown only
            # as the public key it parses as, in its short form (33 bytes), else not at all
            named = "an invalid key"
            if len(recipient) <= _PUBLIC_KEY_TEXT:
                try:
                    named = f"the key 0x{parse_public_key(recipient).hex()}"
                except DeliveryError:
                    pass
            return (f"{head}; its manifest names {named} as its recipient: give the key it is sealed to with --keystore "
                    "or --dev-account; nothing extracted")
        if owner == given:
            return f"{head}; it is the key the job's spec names, so the provider sealed it to another key or its bytes are damaged; nothing extracted"
        whose = "the account that posted it" if owner.lower() == job.requester.lower() else "the --encrypt-to key it was posted with"
        return f"{head}; it is sealed to the key of {owner} ({whose}): give that account's key (--keystore or --dev-account); nothing extracted"

    def _delivery_key(self, decrypt_key: bytes | None) -> bytes:
        if decrypt_key is not None:
            return bytes(decrypt_key)
        if self.account is None:
            raise ResultSealed("the result is sealed to the requester's key: give that key (--keystore or --dev-account)")
        return bytes(self.account.key)

    def check_delivery(
        self, job_id: int, *, max_bytes: int | None = None, allow_networks: Sequence[str] | None = None
    ) -> DeliveryCheck:
        """Checks, without any key, that the sealed result at the job's on-chain URI is what the
        provider published: its bytes hash to the content address in the URI and the manifest.
        :class:`ResultMismatch` when they do not; :class:`ResultUnavailable` when there is no
        sealed result to check (none yet, a failure, or a plaintext delivery). Fetched as
        :meth:`download_result` fetches (`allow_networks` likewise)."""
        job = self.job(job_id)
        sub = self.submission(job.job_id)
        if sub is None or sub.failure or not sub.uri:
            raise ResultUnavailable(f"job {job.job_id} has no result to check (it is {job.status.label})")
        source = self._result_source(allow_networks)
        manifest = source.manifest(sub.uri)
        if manifest is None or not manifest.get("salt_sealed"):
            raise ResultUnavailable(f"job {job.job_id}'s result is not a sealed delivery (no content address to check)")
        fd, tmp = tempfile.mkstemp(prefix=f".depin-check-{job.job_id}.", suffix=".sealed")
        os.close(fd)
        try:
            digest, size = source.download(sub.uri, Path(tmp), max_bytes if max_bytes is not None else self._output_limit(job.job_id))
        finally:
            Path(tmp).unlink(missing_ok=True)
        _check_content_address(job.job_id, sub.uri, digest, manifest)
        return DeliveryCheck(job.job_id, sub.uri, digest, size, str(manifest.get("encrypt_to", "")))

    def _result_source(self, allow_networks: Sequence[str] | None) -> _ResultSource:
        local = is_local_chain(self.chain_id)
        if allow_networks is None:
            allow_networks = LOCAL_RESULT_NETWORKS if local else ()
        try:
            networks = parse_networks(allow_networks)
        except ValueError as exc:
            raise ClientError(f"allowed networks {list(allow_networks)!r}: not networks in CIDR form (such as 10.1.2.0/24): {exc}") from None
        return _ResultSource(public_resolver(networks), ("http", "https", "file") if local else ("http", "https"))

    def _match_digest(self, job_id: int, archive: Path, sha256: bytes) -> tuple[bytes, int, int]:
        """The digest the provider committed to: the archive's sha256, or, when the spec selects
        part of the output (``output.match``), the match digest of that part (depin.outputs); and
        how many of the archive's entries below ``out/`` lie outside that part, of how many (0, 0
        without a selector)."""
        try:
            spec = parse_spec(self.spec_bytes(job_id))
        except (DepinError, ValueError):
            return sha256, 0, 0
        patterns = getattr(spec, "match", None)
        if not patterns:
            return sha256, 0, 0
        match_selection = getattr(depin_outputs, "match_selection", None)
        if match_selection is None:  # pragma: no cover - depin.outputs predates output selectors
            raise ResultUnavailable(f"job {job_id}'s spec selects output entries; this depin cannot digest them")
        try:
            chosen = match_selection(archive, patterns)
            return bytes(chosen.digest), chosen.outside, chosen.entries
        # what the provider served is no result archive (a ValueError: tarfile seeking past a file offset, as the juror's check knows)
        except (UnsafeArchive, tarfile.TarError, OSError, ValueError) as exc:
            raise ResultMismatch(
                f"result of job {job_id} is not a {depin_outputs.FORMAT} archive the spec's output.match can select from "
                f"({exc or type(exc).__name__}); refusing it (nothing extracted)"
            ) from None

    def _parsed_spec(self, job_id: int) -> JobSpec | None:
        """The job's spec as posted, or None when it cannot be read or is not a valid spec."""
        try:
            return parse_spec(self.spec_bytes(job_id))
        except (DepinError, ValueError):
            return None

    def _output_limit(self, job_id: int, spec: JobSpec | None = None) -> int:
        if spec is None:
            spec = self._parsed_spec(job_id)
        mb = spec.resources.output_mb if spec is not None else 4_096
        return mb * 1_048_576 + 4 * 1_048_576  # the archive's headers on top of the output limit

    def withdraw(self) -> Receipt:
        """Transfers this account's whole market balance (earnings, refunds) to its wallet."""
        have = self.withdrawable()
        if have == 0:
            raise Refused(f"nothing to withdraw: {self.address} has no balance in the market", "NothingToWithdraw")
        return self.send(self.contracts.job_market.withdraw())

    # ------------------------------------------------------------------ provider

    def register(
        self, stake: int, endpoint: str, capability_hash: bytes = ZERO_HASH, *, approve: bool = True
    ) -> Receipt:
        """Registers this account as a provider with `stake` (approved to the staking contract first)
        and `endpoint`, its result server's public URL (:func:`check_endpoint`, and
        :func:`check_reachable_endpoint` off a local devnet)."""
        check_endpoint(endpoint)
        check_reachable_endpoint(endpoint, self.chain_id)
        call = self.contracts.provider_staking.register(_uint("the stake", stake), endpoint, _bytes32(capability_hash, "the capability hash"))
        info = self.provider_info()
        if info.registered:
            raise Refused(
                f"{self.address} is registered already (provider id {info.id}); use `stake` to add more", "AlreadyRegistered"
            )
        minimum = self.min_stake()
        if stake < minimum:
            raise Refused(
                f"a registration stake of {format_tokens(stake)} {TOKEN_SYMBOL} is below the minimum of "
                f"{format_tokens(minimum)}",
                "StakeBelowMinimum",
            )
        with self._spending():
            self._ensure_funds(stake, "the registration stake")
            self._ensure_allowance("ProviderStaking", stake, approve=approve, what="the stake")
            return self.send(call)

    def stake(self, amount: int, *, approve: bool = True) -> Receipt:
        """Adds `amount` to this provider's stake."""
        if _uint("the amount", amount) <= 0:
            raise Refused("the amount must be positive", "ZeroAmount")
        if not self.provider_info().registered:
            raise Refused(f"{self.address} is not a registered provider: `register` first", "NotRegistered")
        with self._spending():
            self._ensure_funds(amount, "the stake")
            self._ensure_allowance("ProviderStaking", amount, approve=approve, what="the stake")
            return self.send(self.contracts.provider_staking.stake(amount))

    def request_unstake(self, amount: int) -> Receipt:
        """Starts unbonding `amount` of the available stake (restarts the delay for all unbonding)."""
        amount = _uint("the amount", amount)
        info = self.provider_info()
        if not info.registered:
            raise Refused(f"{self.address} is not a registered provider", "NotRegistered")
        if amount <= 0:
            raise Refused("the amount must be positive", "ZeroAmount")
        if amount > info.available:
            raise Refused(
                f"cannot unstake {format_tokens(amount)} {TOKEN_SYMBOL}: available (staked minus locked) is "
                f"{format_tokens(info.available)}",
                "InsufficientStake",
            )
        return self.send(self.contracts.provider_staking.request_unstake(amount))

    def withdraw_unstaked(self) -> Receipt:
        """Withdraws the unbonded stake once the unbonding delay has passed."""
        info = self.provider_info()
        self._refuse_unreleased(info.unbonding, info.release_at, "unbonding", "NothingUnbonding", "UnbondingNotReady")
        return self.send(self.contracts.provider_staking.withdraw_unstaked())

    def _refuse_unreleased(self, amount: int, release_at: int, what: str, nothing: str, not_ready: str) -> None:
        """Refuses a withdrawal of stake `what` (unbonding, leaving a court) when there is none
        (`nothing`, the contract's error name) or its delay has not passed (`not_ready`)."""
        if amount == 0:
            raise Refused(f"{self.address} has nothing {what}", nothing)
        now = self.block_timestamp()
        if now < release_at:
            raise Refused(
                f"the {format_tokens(amount)} {TOKEN_SYMBOL} {what} is released at {release_at} (in {release_at - now} s)", not_ready)

    def set_metadata(self, endpoint: str, capability_hash: bytes = ZERO_HASH) -> Receipt:
        """Changes this provider's endpoint (:func:`check_endpoint`, :func:`check_reachable_endpoint`)
        and capability hash."""
        check_endpoint(endpoint)
        check_reachable_endpoint(endpoint, self.chain_id)
        return self.send(self.contracts.provider_staking.set_metadata(endpoint, _bytes32(capability_hash, "the capability hash")))

    # ------------------------------------------------------------------ executor actions
    # Thin and fast: no pre-checks beyond the contract's own (the gas estimate raises TxReverted
    # with the decoded error before anything is sent, e.g. error_name "WrongStatus" on a lost race).

    def claim(self, job_id: int, *, still_needed: Callable[[], bool] | None = None) -> Receipt:
        """``claimJob``. It names the job by id only: after a reorg the same bytes claim whatever
        job holds that id then. `still_needed` (see :meth:`send`) lets the caller re-check the job
        before the signer sends a reorged-out claim again (the executor does)."""
        return self.send(self.contracts.job_market.claim_job(_job_id(job_id)), still_needed=still_needed)

    def claim_many(self, job_ids: Sequence[int], *, still_needed: Callable[[], bool] | None = None) -> Receipt:
        """``claimJobs``: claims every job of `job_ids` in one transaction, with one collateral lock
        for their sum. All or nothing: a job that cannot be claimed reverts the whole batch.
        `still_needed`: as for :meth:`claim`."""
        if not job_ids:
            raise ClientError("claim_many needs at least one job id")
        return self.send(self.contracts.job_market.claim_jobs([_job_id(j) for j in job_ids]), still_needed=still_needed)

    def submit_result(self, job_id: int, commitment: bytes, uri: str) -> Receipt:
        """Commits to a result: `commitment` = keccak256(abi.encode(provider, jobId, digest, salt))
        (never the bare digest), the archive at the opaque `uri`."""
        return self.send(self.contracts.job_market.submit_result(_job_id(job_id), _bytes32(commitment, "the commitment"), uri))

    def submit_results(self, results: Sequence[tuple[int, bytes, str]]) -> Receipt:
        """``submitResults``: :meth:`submit_result` for each ``(job_id, commitment, uri)`` in one
        transaction. All or nothing."""
        if not results:
            raise ClientError("submit_results needs at least one result")
        if any(not isinstance(r, (tuple, list)) or len(r) != 3 for r in results):
            raise InvalidArgument("submit_results takes (job_id, commitment, uri) triples")
        return self.send(
            self.contracts.job_market.submit_results([(_job_id(j), _bytes32(c, "the commitment"), uri) for j, c, uri in results])
        )

    def submit_failure(self, job_id: int, code: FailureCode | int, commitment: bytes) -> Receipt:
        """Reports failure `code` with `commitment` = keccak256(abi.encode(provider, jobId,
        bytes32(code), salt)). Availability codes (ImageUnavailable, InputHashMismatch) settle at once
        (no fault, 2 % of R from each side)."""
        return self.send(
            self.contracts.job_market.submit_failure(_job_id(job_id), _uint("the failure code", code, bits=8), _bytes32(commitment, "the commitment"))
        )

    def finalize(self, job_id: int) -> Receipt:
        """Settles a submitted job after its challenge window unless it was drawn for audit (then the
        contract refuses with ``JobDrawn``: its court settles it)."""
        return self.send(self.contracts.job_market.finalize(_job_id(job_id)))

    def finalize_many(self, job_ids: Sequence[int]) -> Receipt:
        """``finalizeMany``: settles the ready, undrawn ones, skips the others (see :meth:`finalized_count`)."""
        return self.send(self.contracts.job_market.finalize_many([_job_id(j) for j in job_ids]))

    def finalized_count(self, receipt: Receipt) -> int:
        """How many ``JobFinalized`` events a receipt holds."""
        topic = self._topic("JobMarket", "JobFinalized")
        return sum(1 for entry in receipt.logs if entry["topics"] and entry["topics"][0] == topic)

    def expire(self, job_id: int) -> Receipt:
        return self.send(self.contracts.job_market.expire_job(_job_id(job_id)))

    def timeout(self, job_id: int) -> Receipt:
        return self.send(self.contracts.job_market.timeout_job(_job_id(job_id)))

    def flush_burn(self) -> Receipt:
        """Burns the market's ``pendingBurn`` (anyone)."""
        return self.send(self.contracts.job_market.flush_burn())


# ------------------------------------------------------------------------------------ helpers

_INFO_COURT = 12  # IJobMarket.VerificationInfo.court
_PUBLIC_KEY_TEXT = 160  # the longest text a public key is (0x + 65 bytes in hex, blanks around): a longer one is no key
_COURT_CACHE = 10_000  # jobs whose court a client remembers (court_of)

# IVerificationCourt.CaseView and CourtParams field names, in ABI order.
_CASE_FIELDS = tuple(
    c["name"]
    for item in load_abi("VerificationCourt")
    if item.get("type") == "function" and item["name"] == "getCase"
    for c in item["outputs"][0]["components"]
)
_COURT_PARAM_FIELDS = tuple(
    c["name"]
    for item in load_abi("VerificationCourt")
    if item.get("type") == "function" and item["name"] == "params"
    for c in item["outputs"][0]["components"]
)


def _http_url(url: str, what: str, expected: str) -> SplitResult:
    """`url`'s parts when it is an http(s) URL with a host and a valid port; else :class:`ClientError`
    naming `what`, shown without its secrets (:func:`depin.redact.redact_url`)."""
    shown = repr(redact_url(url))
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise ClientError(f"{what} {shown} is not an http(s) URL ({exc}); {expected}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ClientError(f"{what} {shown} is not an http(s) URL with a host; {expected}")
    return parts


def check_rpc_url(url: str) -> None:
    """:class:`ClientError` unless `url` is an http(s) URL with a host (the only transport a node is
    reached by), shown without its secrets (:func:`depin.redact.redact_url`)."""
    _http_url(url, "the RPC URL", "expected http(s)://HOST[:PORT][/PATH], such as http://127.0.0.1:8545")


def check_endpoint(url: str, what: str = "the endpoint") -> None:
    """:class:`ClientError` unless `url` can be a provider's endpoint: the public base URL of its
    result server (``[executor] results_url``), which requesters and verifiers fetch results from
    over http(s) (:mod:`depin.fetch`). So an http(s) URL with a host, nothing a URL cannot hold (a
    space, a control character), no user name or password, and no query or fragment: the chain
    publishes it (an access token in ``?token=`` would be public), and a base URL has neither."""
    expected = "expected http(s)://HOST[:PORT][/PATH], your executor's public result server, such as http://203.0.113.7:8700"
    if not isinstance(url, str):
        raise InvalidArgument(f"{what} must be a URL string, not {type(url).__name__}; {expected}")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ClientError(f"{what} {redact_url(url)!r} holds a space or a control character; {expected}")
    parts = _http_url(url, what, expected)
    if "@" in parts.netloc:
        raise ClientError(f"{what} {redact_url(url)!r} carries a user name or password, which the chain would publish; {expected}")
    if "?" in url or "#" in url:
        raise ClientError(
            f"{what} {redact_url(url)!r} carries a query or fragment, which the chain would publish (a token in it would "
            f"be public) and a base URL cannot hold; {expected}"
        )


def check_reachable_endpoint(url: str, chain_id: int, what: str = "the endpoint") -> None:
    """:class:`ClientError` when `url` (a checked endpoint, :func:`check_endpoint`) names this
    machine only, a loopback, unspecified or link-local address or ``localhost``, while `chain_id`
    is not a local devnet's: the result URIs a provider publishes from it reach nobody else, and a
    drawn job's verifiers would find its result not delivered. Private networks (10.0.0.0/8, ...)
    pass: a testnet whose verifiers allow them (``result_allow_networks``) can use them."""
    if is_local_chain(chain_id):
        return
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host)
        local = address.is_loopback or address.is_unspecified or address.is_link_local
    except ValueError:
        local = host == "localhost" or host.endswith(".localhost")
    if local:
        raise ClientError(
            f"{what} {redact_url(url)!r} is reachable from this machine only, but chain {chain_id} is public: requesters "
            "and verifiers fetch results from it; give the public http(s) URL of your result server (such as "
            "http://203.0.113.7:8700)"
        )


def _job_id(job_id: int | str) -> int:
    """A job id: an integer (not a bool or a float, which ``int()`` would truncate: 1.5 is no job 1)
    or a string of decimal digits."""
    if isinstance(job_id, str) and job_id.isascii() and job_id.isdigit():
        value = int(job_id)
    elif isinstance(job_id, (bool, str)):
        raise UnknownJob(f"{job_id!r} is not a job id (a positive integer)")
    else:
        try:
            value = operator.index(job_id)  # int and integer types (numpy's), never a float
        except TypeError:
            raise UnknownJob(f"{job_id!r} is not a job id (a positive integer)") from None
    if value <= 0 or value >= 2**256:
        raise UnknownJob(f"{job_id!r} is not a job id (a positive integer)")
    return value


def _round_name(round_: int) -> str:
    """A court round for people: round 0 is the audit, 1 to 3 the juries (3, 7, 15 seats)."""
    return "the audit" if round_ == 0 else f"jury round {round_} ({JURY_SIZES[min(round_, LAST_JURY_ROUND)]} seats)"


def _address_topic(address: str) -> str:
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")


def _uint_topic(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def _bytes32(value: bytes | str, what: str = "the value") -> bytes:
    """32 bytes, given as bytes or 0x-hex; :class:`InvalidArgument` naming `what` otherwise."""
    try:
        raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{what} must be 32 bytes (bytes or 0x-hex), not {type(value).__name__}") from None
    if isinstance(value, int) or len(raw) != 32:  # bytes(5) would be five zero bytes
        raise InvalidArgument(f"{what} must be 32 bytes (bytes or 0x-hex), got {len(raw)}")
    return raw


def _uint(name: str, value: Any, bits: int = 256) -> int:
    """`value` as an unsigned integer of `bits` bits (an int or integer type; never a bool or a
    float, which would be truncated); :class:`InvalidArgument` naming `name` otherwise."""
    if isinstance(value, bool):
        value = None
    try:
        number = operator.index(value)
    except TypeError:
        raise InvalidArgument(f"{name} must be a whole number (base units or seconds), not {value!r}") from None
    if not 0 <= number < 2**bits:
        raise InvalidArgument(f"{name} must be between 0 and 2**{bits} - 1, not {number}")
    return number


def _check_confirmations(confirmations: Any) -> None:
    if isinstance(confirmations, bool) or not isinstance(confirmations, int) or confirmations < 1:
        raise InvalidArgument(f"confirmations must be 1 (mined) or more, not {confirmations!r}")


_ACCOUNT_LOCKS: dict[tuple[int, str], Any] = {}  # Client._spending, per (chain id, account)
_ACCOUNT_LOCKS_GUARD = threading.Lock()


def _address_or_none(value: str) -> str | None:
    return None if int(value, 16) == 0 else value


def checked_address(address: str) -> str:
    """`address` checksummed; ClientError unless it is an Ethereum address (checked before a node is asked)."""
    if not is_address(address):
        raise ClientError(f"{address!r} is not an Ethereum address")
    return to_checksum_address(address)


def check_court_address(address: str) -> None:
    """InvalidArgument unless `address` (a court's ``--court``) is an Ethereum address."""
    if not is_address(address):
        raise InvalidArgument(f"the court must be a 0x address of 40 hex digits, not {address!r}")


def _bounded(name: str, value: int | None, default: int | None, low: int, high: int, unit: str = " s") -> int:
    if value is None:
        assert default is not None
        return min(max(default, low), high)
    if not low <= value <= high:
        raise Refused(f"{name} {value}{unit} is outside the market's bounds [{low}, {high}]", "TermOutOfBounds")
    return value


def _commitment(party: str, job_id: int, digest: bytes, salt: bytes) -> bytes:
    """keccak256(abi.encode(address party, uint256 jobId, bytes32 digest, bytes32 salt))."""
    return keccak(bytes.fromhex(party.removeprefix("0x")).rjust(32, b"\0") + job_id.to_bytes(32, "big") + digest + salt)


def _salt_of(manifest: dict[str, Any] | None) -> bytes | None:
    """The manifest's ``salt`` (0x-hex, 32 bytes), or None."""
    if manifest is None:
        return None
    try:
        raw = bytes.fromhex(str(manifest.get("salt")).removeprefix("0x"))
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


def _remove_extracted(folder: Path, keep: tuple[Path, ...]) -> None:
    """Empties `folder` (which was empty before the extraction began) but for `keep`: what a
    refused extraction wrote before it stopped. Links are removed, never followed."""
    for entry in folder.iterdir():
        if entry in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _remove_if_made(folder: Path, created: bool) -> None:
    """Removes `folder` when this download created it and it is still empty (a failed download
    leaves no new empty --out folder behind)."""
    if created:
        try:
            folder.rmdir()
        except OSError:
            pass


def _check_content_address(job_id: int, uri: str, sha256: bytes, manifest: dict[str, Any]) -> None:
    """A sealed delivery's bytes must hash to the name in the URI (on chain) and the manifest's ``sha256``."""
    try:
        check_content_address(sha256, uri, str(manifest.get("sha256", "")))
    except DeliveryError as exc:
        raise ResultMismatch(f"the sealed result of job {job_id} at {uri}: {exc}; refusing it (nothing extracted)") from None


def _sha256_file(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.digest()


@dataclass(frozen=True)
class _ResultSource:
    """How this client fetches a provider's result and manifest (:meth:`Client.download_result`)."""

    resolver: Resolver
    schemes: tuple[str, ...]

    def manifest(self, uri: str) -> dict[str, Any] | None:
        """The manifest beside the result at `uri`, or None when there is none to read;
        :class:`ResultUnavailable` when `uri` leads where this client does not fetch from."""
        try:
            # a whole minute at most, the head included (a manifest is at most 64 KiB)
            deadline = time.monotonic() + DOWNLOAD_TIMEOUT
            return fetch_manifest(uri, timeout=DOWNLOAD_TIMEOUT, deadline=deadline, resolver=self.resolver, schemes=self.schemes)
        except FetchRefused as exc:  # not "no manifest": nothing was asked of that address
            raise ResultUnavailable(str(exc)) from None
        except (FetchError, OSError, ValueError):
            return None

    def download(self, uri: str, dest: Path, max_bytes: int) -> tuple[bytes, int]:
        """Writes the content at `uri` to `dest`; returns (sha256, size)."""
        deadline = time.monotonic() + DOWNLOAD_TIMEOUT + max_bytes / DOWNLOAD_MIN_RATE
        try:
            with open(dest, "wb") as out:
                fetched = download_and_hash(  # an archive (plain or sealed) is never an HTML page: a sign-in page is said to be one
                    uri, out, max_bytes=max_bytes, timeout=DOWNLOAD_TIMEOUT, deadline=deadline, schemes=self.schemes, resolver=self.resolver,
                    refuse_html=True,
                )
        except FetchTooLarge:
            raise ResultUnavailable(f"the result at {uri} exceeds {max_bytes} bytes; refusing it") from None
        except FetchError as exc:
            raise ResultUnavailable(str(exc)) from None
        except OSError as exc:
            raise ResultUnavailable(f"downloading {uri} failed: {exc}") from None
        return fetched.digest, fetched.size
