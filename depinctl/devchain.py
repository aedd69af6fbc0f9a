"""Drive a deployment on a local anvil quickly: accounts, funding, providers, jobs, time.

For tests, benchmarks and the devnet, never for a public network: transactions are sent with
``eth_sendTransaction`` from anvil's unlocked development accounts (or accounts unlocked with
``anvil_impersonateAccount``), and time and mining are controlled with anvil's methods. The
provider and requester tools sign their own transactions through the chain client instead.

Two speeds:

- **One transaction at a time** (:meth:`DevChain.post_job`, :meth:`DevChain.claim_job`, ...): sent
  with the node's automine on, waited for, and checked; a revert raises :class:`TxFailed` with the
  contract's custom error decoded (``JobMarket.WrongStatus(jobId=1, actual=2, expected=1)``).
- **Bulk** (:meth:`DevChain.send_bulk`, :meth:`DevChain.generate_jobs`): automine off, calldata
  encoded once per call with precomputed selectors, explicit nonces, gas limits and gas price,
  hundreds of ``eth_sendTransaction`` per JSON-RPC batch request, then ``evm_mine`` until the pool
  is empty (full blocks, base fee pinned so that it does not climb block after block), and every
  receipt checked with ``eth_getBlockReceipts``. About 1,000 transactions per second on two cores.

Example::

    chain = DevChain.from_deployment_file("http://127.0.0.1:8545", Path("deployments/31337.json"))
    requester, provider = chain.accounts[1], chain.accounts[2]
    chain.fund([requester, provider], to_wei(1_000))
    chain.register_provider(provider, to_wei(500))
    job_id = chain.post_job(requester, sample_spec(1), JobTerms(reward=to_wei(1), verify_mode=1))  # never drawn
    chain.claim_job(provider, job_id)
    chain.submit_result(provider, job_id, commitment(provider, job_id, keccak(b"out"), salt), "http://provider/results/<opaque>")
    chain.advance_time(JobTerms().challenge_window + 1)
    chain.finalize(job_id)

    stats = chain.generate_jobs(10_000)        # post, claim, submit, finalize 10,000 jobs in bulk

Transport is :class:`depin.chain.RpcClient` (batch requests, errors as ``ChainError``). Every
contract call is built by the generated bindings of :mod:`depin.contracts` (``self.contracts``),
the same ones :class:`depin.client.Client` signs and sends: :meth:`DevChain.read` and
:meth:`DevChain.send` take a binding's call, and the named verbs below are one line over them. This module
is the one place besides ``depin.chain`` that composes JSON-RPC calls: anvil's own methods
(``evm_*``, ``anvil_*``) and unlocked-account sends, which only a development chain answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from eth_utils import keccak, to_checksum_address

from depin.abi import Codec, ContractCall
from depin.artifacts import load_abi
from depin.chain import RpcClient, RpcError
from depin.contracts import Deployed, JobMarket
from depin.deployment import ContractAddresses, Deployment, read_deployment, to_wei
from depin.errors import ChainError
from depin.spec import canonical_json

CONTRACTS = ("RewardToken", "ProviderStaking", "JobMarket", "VerificationCourt", "Randomness")
ZERO_HASH = b"\x00" * 32
MAX_UINT256 = 2**256 - 1
GWEI = 10**9
# Bytes of transaction data per batch request: anvil refuses request bodies above 2 MB by default.
BATCH_BYTES = 1_000_000
RESULTS_URL = "http://127.0.0.1:8700/results/"  # the result URI prefix of bulk-generated submissions


# ---------------------------------------------------------------------------------------- errors


class DevChainError(ChainError):
    """The dev chain could not do what was asked (bad setup, a stuck pool, a missing deployment)."""


class TxFailed(DevChainError):
    """A transaction reverted (or would revert). `reason` is the decoded custom error, if known."""

    def __init__(self, what: str, reason: str, tx_hash: str | None = None) -> None:
        self.what, self.reason, self.tx_hash = what, reason, tx_hash
        where = f" (tx {tx_hash})" if tx_hash else ""
        super().__init__(f"{what} reverted: {reason}{where}")


# ---------------------------------------------------------------------------------------- ABI codec


# ---------------------------------------------------------------------------------------- job data


@dataclass(frozen=True)
class JobTerms:
    """`IJobMarket.JobTerms`. Defaults suit the devnet parameters: generous claim and run windows,
    the shortest challenge window the devnet court allows (8 s: D blocks + start window +
    inclusion), the least collateral (400 %: k*R pays a 3-juror jury), 60 declared CPU-seconds and
    re-execution audits (`verify_mode` 0; 1 = none: never drawn, no audit fee)."""

    reward: int = to_wei("0.01")
    claim_window: int = 86_400
    max_runtime: int = 3_600
    challenge_window: int = 8
    collateral_pct: int = 400
    cpu_seconds: int = 60
    verify_mode: int = 0

    def as_tuple(self) -> tuple[int, int, int, int, int, int, int]:
        return (
            self.reward, self.claim_window, self.max_runtime, self.challenge_window, self.collateral_pct, self.cpu_seconds,
            self.verify_mode,
        )

    @property
    def escrow_bound(self) -> int:
        """An upper bound of what posting escrows: R + fee (<= 10 % R) + audit fee (<= 5 R)."""
        return self.reward * 61 // 10

    @property
    def collateral(self) -> int:
        return self.reward * self.collateral_pct // 100




def sample_spec(n: int) -> bytes:
    """A canonical job spec of about 300 bytes, distinct for each `n` (so is its hash)."""
    return canonical_json(
        {
            "command": ["sha256sum", "/in/a"],
            "image": "depin/checksum@sha256:" + "ab" * 32,
            "inputs": [{"path": "a", "sha256": keccak(b"input:%d" % n).hex(), "uri": f"file:///in/{n}"}],
            "resources": {"cpus": 1, "max_runtime": 60, "memory_mb": 64},
            "v": 1,
        }
    )


def result_hash_for(job_id: int) -> bytes:
    """The result hash that bulk generation submits for `job_id`."""
    return keccak(b"result:%d" % job_id)


# ---------------------------------------------------------------------------------------- bulk results


@dataclass(frozen=True)
class Tx:
    """One transaction for :meth:`DevChain.send_bulk` (sender must be unlocked on the node)."""

    sender: str
    to: str
    data: str
    gas: int


@dataclass(frozen=True)
class BulkResult:
    txs: int
    first_block: int
    last_block: int
    gas_used: int
    seconds: float

    @property
    def blocks(self) -> int:
        return self.last_block - self.first_block + 1 if self.txs else 0


@dataclass
class GeneratedJobs:
    """What :meth:`DevChain.generate_jobs` did."""

    first_job_id: int
    last_job_id: int
    first_block: int  # the first block mined for these jobs (after setup), and the last
    last_block: int = 0
    txs: int = 0  # every transaction sent, setup included
    gas_used: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase (post, claim, ...)

    @property
    def jobs(self) -> int:
        return self.last_job_id - self.first_job_id + 1

    @property
    def blocks(self) -> int:
        return self.last_block - self.first_block + 1

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0

    @property
    def txs_per_second(self) -> float:
        return self.txs / self.seconds if self.seconds else 0.0


# ---------------------------------------------------------------------------------------- the driver


class DevChain(ContractAddresses):
    """A deployment on an anvil node, driven through unlocked accounts."""

    def __init__(self, rpc_url: str, deployment: Deployment, *, timeout: float = 120.0) -> None:
        self.rpc_url = rpc_url
        self.deployment = deployment
        self.rpc = RpcClient.from_url(rpc_url, timeout=timeout)
        self.codec = Codec()
        self._bulk_txs = 0  # transactions sent and gas used by send_bulk so far (statistics)
        self._bulk_gas_used = 0
        self.addresses: dict[str, str] = {name: to_checksum_address(a) for name, a in deployment.addresses.items()}
        missing = [name for name in CONTRACTS if name not in self.addresses]
        if missing:
            raise DevChainError(f"the deployment lacks addresses for {', '.join(missing)}")
        self.contracts = Deployed(self.addresses, self.codec)  # one binding per contract function
        chain_id = self.rpc.chain_id()
        if chain_id != deployment.chain_id:
            raise DevChainError(
                f"the node at {rpc_url} is chain {chain_id}; the deployment is for chain {deployment.chain_id}"
            )

    @classmethod
    def from_deployment_file(cls, rpc_url: str, path: Path, **kwargs: Any) -> DevChain:
        return cls(rpc_url, Deployment.from_json(Path(path).read_text()), **kwargs)

    @classmethod
    def from_deployments_dir(cls, rpc_url: str, directory: Path, **kwargs: Any) -> DevChain:
        chain_id = RpcClient.from_url(rpc_url).chain_id()
        deployment = read_deployment(chain_id, Path(directory))
        if deployment is None:
            raise DevChainError(f"no deployment for chain {chain_id} in {directory}; deploy first (deploy_with_ape)")
        return cls(rpc_url, deployment, **kwargs)

    # ------------------------------------------------------------------ accounts

    @property
    def deployer(self) -> str:
        """Admin, governor and guardian; on devnets also a token minter (the faucet)."""
        return to_checksum_address(self.deployment.deployer)

    @property
    def arbiter(self) -> str:
        return to_checksum_address(self.deployment.parameters.get("arbiter") or self.deployment.deployer)

    @cached_property
    def accounts(self) -> list[str]:
        """The node's unlocked development accounts (anvil: 10 by default; [0] deployed on devnets)."""
        return [to_checksum_address(a) for a in self.rpc.call("eth_accounts")]

    def new_accounts(self, count: int, *, ether: int = 1_000, seed: str = "depin-devchain") -> list[str]:
        """`count` more accounts, unlocked by impersonation and given `ether` (deterministic per seed)."""
        addresses: list[str] = [to_checksum_address(keccak(f"{seed}:{i}".encode())[-20:]) for i in range(count)]
        calls: list[tuple[str, Sequence[Any]]] = []
        for a in addresses:
            calls += [("anvil_impersonateAccount", [a]), ("anvil_setBalance", [a, hex(ether * 10**18)])]
        self.rpc.batch(calls)
        return addresses

    # ------------------------------------------------------------------ blocks and time

    def block_number(self) -> int:
        return int(self.rpc.call("eth_blockNumber"), 16)

    def block(self, number: int | str = "latest") -> dict[str, Any]:
        tag = hex(number) if isinstance(number, int) else number
        return self.rpc.call("eth_getBlockByNumber", [tag, False])

    def timestamp(self) -> int:
        return int(self.block()["timestamp"], 16)

    def mine(self, blocks: int = 1) -> int:
        """Mines `blocks` blocks (pending transactions go in the first); returns the new head."""
        self.rpc.call("anvil_mine", [hex(blocks)])
        return self.block_number()

    def advance_time(self, seconds: int) -> int:
        """Moves the clock `seconds` forward and mines a block at the new time; returns its timestamp."""
        self.rpc.call("evm_increaseTime", [hex(seconds)])
        self.rpc.call("evm_mine")
        return self.timestamp()

    @property
    def automine(self) -> bool:
        return bool(self.rpc.call("anvil_getAutomine"))

    def set_automine(self, enabled: bool) -> None:
        self.rpc.call("evm_setAutomine", [enabled])

    def mining_is_pausable(self) -> bool:
        """Whether :meth:`manual_mining` can stop this node's mining (and restore it afterwards).

        False for a node that reports neither automine nor an interval: one already held by hand,
        or ``anvil --block-time N --mixed-mining`` (the devnet's), which answers exactly so while it
        mines every transaction at once and a block every N s. The RPC can neither tell the two
        apart nor put a node back into mixed mining, so such a node is left alone."""
        return bool(self.automine or self._interval_mining())

    def _interval_mining(self) -> int | None:
        return self.rpc.call("anvil_getIntervalMining")

    @contextmanager
    def manual_mining(self) -> Iterator[None]:
        """Automine and interval mining off inside the block; restored as they were afterwards.
        A mixed-mining node keeps mining (see :meth:`mining_is_pausable`)."""
        automine = self.automine
        interval = self._interval_mining()
        if interval:
            self.rpc.call("anvil_setIntervalMining", [0])
        self.set_automine(False)
        try:
            yield
        finally:
            self.set_automine(automine)
            if interval:
                self.rpc.call("anvil_setIntervalMining", [interval])

    def snapshot(self) -> str:
        return self.rpc.call("evm_snapshot")

    def revert(self, snapshot_id: str) -> None:
        if not self.rpc.call("evm_revert", [snapshot_id]):
            raise DevChainError(f"evm_revert({snapshot_id}) failed: unknown or already used snapshot")

    # ------------------------------------------------------------------ calls and transactions

    def call(self, contract: str, fn: str, *args: Any, block: int | str = "latest") -> Any:
        """A view call by contract and function name, decoded (see :meth:`read`)."""
        return self.read(self.contracts[contract].encode(fn, *args), block=block)

    def read(self, call: ContractCall, *, block: int | str = "latest") -> Any:
        """An ``eth_call`` of a binding's call (:mod:`depin.contracts`), decoded: a single return
        value bare, several as a tuple."""
        tag = hex(block) if isinstance(block, int) else block
        try:
            out = self.rpc.call("eth_call", [{"to": call.to, "data": call.data}, tag])
        except RpcError as exc:
            raise TxFailed(call.what, self.codec.decode_error(exc.data)) from None
        return call.decode(out)

    def tx(self, sender: str, contract: str, fn: str, *args: Any, gas: int) -> Tx:
        """A :class:`Tx` calling `contract`.`fn`(`args`) for :meth:`send_bulk`."""
        call = self.contracts[contract].encode(fn, *args)
        return Tx(sender, call.to, call.data, gas)

    def transact(
        self, sender: str, contract: str, fn: str, *args: Any, gas: int | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """A transaction by contract and function name (see :meth:`send`)."""
        return self.send(sender, self.contracts[contract].encode(fn, *args), gas=gas, timeout=timeout)

    def send(self, sender: str, call: ContractCall, *, gas: int | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """Sends a binding's call from `sender` (an unlocked account), waits for its receipt and
        returns it; raises :class:`TxFailed` on revert.

        Without `gas` the node estimates it first, so a revert is reported with its decoded error
        and no transaction is sent. Needs automine (or interval mining) to get mined.
        """
        what = f"{call.what} from {sender}"
        tx: dict[str, Any] = {"from": sender, "to": call.to, "data": call.data}
        if gas is None:
            try:
                tx["gas"] = hex(int(int(self.rpc.call("eth_estimateGas", [tx]), 16) * 1.25) + 20_000)
            except RpcError as exc:
                if exc.data is None and "revert" not in exc.rpc_message:
                    raise
                raise TxFailed(what, self.codec.decode_error(exc.data)) from None
        else:
            tx["gas"] = hex(gas)
        tx_hash = self.rpc.call("eth_sendTransaction", [tx], retries=0)  # a retry could send twice
        receipt = self.wait_for_receipt(tx_hash, timeout=timeout)
        if receipt["status"] != "0x1":
            raise TxFailed(what, self._revert_reason(tx_hash), tx_hash)
        return receipt

    def wait_for_receipt(self, tx_hash: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            receipt = self.rpc.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                return receipt
            if time.monotonic() > deadline:
                raise DevChainError(f"no receipt for {tx_hash} after {timeout:.0f} s (is automine off?)")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _revert_reason(self, tx_hash: str) -> str:
        """The decoded revert of a mined, failed transaction (from a call trace; best effort)."""
        try:
            trace = self.rpc.call("debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}])
            return self.codec.decode_error(trace.get("output"))
        except ChainError:
            return "reverted (reason unavailable)"

    def send_bulk(
        self, txs: Sequence[Tx], *, batch_size: int = 500, gas_price: int | None = None, per_block: int = 0
    ) -> BulkResult:
        """Sends `txs` with automine off and mines them into full blocks (in list order per sender).

        With `per_block`, a block is mined after every `per_block` transactions instead (many small
        blocks, as a busy chain would have), then once more when all are sent.

        Nonces are assigned here (per sender, in list order, from the pending count), so the node
        must not receive other transactions from these senders meanwhile. Every receipt is checked:
        a revert raises :class:`TxFailed` naming the first failed transaction and its error.
        """
        if not txs:
            head = self.block_number()
            return BulkResult(0, head + 1, head, 0, 0.0)
        started = time.perf_counter()
        if not self.mining_is_pausable():
            first_block = self.block_number() + 1
            gas_used = self._send_in_waves(txs, gas_price)
            self._bulk_txs += len(txs)
            self._bulk_gas_used += gas_used
            return BulkResult(len(txs), first_block, self.block_number(), gas_used, time.perf_counter() - started)
        nonces = self._pending_nonces(sorted({t.sender for t in txs}))
        with self.manual_mining():
            # Pin the base fee at its current value for every block mined here: a long run of full
            # blocks would otherwise raise it 12.5% per block until these gas prices no longer pay.
            base_fee = int(self.block("pending").get("baseFeePerGas") or "0x0", 16)
            price = gas_price or max(2 * base_fee, GWEI)
            first_block = self.block_number() + 1
            hashes: list[str] = []
            calls: list[tuple[str, Sequence[Any]]] = []
            size = 0
            for k, t in enumerate(txs, 1):
                calls.append(self._send_call(t, nonces[t.sender], price))
                nonces[t.sender] += 1
                size += len(t.data) + 250
                if per_block and k % per_block == 0:
                    hashes += self.rpc.batch(calls, retries=0)
                    calls, size = [], 0
                    self._mine_block(base_fee)
                elif len(calls) >= batch_size or size >= BATCH_BYTES:
                    hashes += self.rpc.batch(calls, retries=0)
                    calls, size = [], 0
            hashes += self.rpc.batch(calls, retries=0)
            self._mine_pool(base_fee)
            last_block = self.block_number()
        gas_used = self._check_receipts(hashes, first_block, last_block)
        self._bulk_txs += len(txs)
        self._bulk_gas_used += gas_used
        return BulkResult(len(txs), first_block, last_block, gas_used, time.perf_counter() - started)

    def _send_in_waves(self, txs: Sequence[Tx], gas_price: int | None, timeout: float = 60.0) -> int:
        """:meth:`send_bulk` on a node whose mining cannot be paused (mixed mining, or held by
        hand): in waves of at most one transaction per sender, each wave mined (by the node, or by
        the block mined here) and its receipts read before the next is sent. Anvil mines while it
        adds a batch's members concurrently, and a transaction added just after its same-sender
        predecessor was mined stays queued for good (the pool waits for a nonce marker that the
        mined block already pruned): three of a devnet's funding transactions once did. Within a
        wave every transaction carries its sender's next on-chain nonce, so none waits on another.
        Returns the gas used; raises :class:`TxFailed` on the first revert."""
        queues: dict[str, list[Tx]] = {}
        for t in txs:
            queues.setdefault(t.sender, []).append(t)
        gas_used = 0
        while queues:
            wave = [q.pop(0) for q in queues.values()]
            queues = {s: q for s, q in queues.items() if q}
            nonces = self._pending_nonces([t.sender for t in wave])
            base_fee = int(self.block("pending").get("baseFeePerGas") or "0x0", 16)
            price = gas_price or max(2 * base_fee, GWEI)
            hashes = self.rpc.batch([self._send_call(t, nonces[t.sender], price) for t in wave], retries=0)
            self._mine_block(base_fee)  # a node held by hand mines nothing else; a mixed one has mined them already
            receipts = [self.wait_for_receipt(h, timeout=timeout) for h in hashes]
            for h, r in zip(hashes, receipts, strict=True):
                gas_used += int(r["gasUsed"], 16)
                if r["status"] != "0x1":
                    raise TxFailed(f"a bulk transaction from {r['from']}", self._revert_reason(h), h)
        return gas_used

    def _pending_nonces(self, senders: Sequence[str]) -> dict[str, int]:
        counts = self.rpc.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders])
        return {s: int(c, 16) for s, c in zip(senders, counts, strict=True)}

    @staticmethod
    def _send_call(t: Tx, nonce: int, price: int) -> tuple[str, Sequence[Any]]:
        body = {"from": t.sender, "to": t.to, "data": t.data, "gas": hex(t.gas), "gasPrice": hex(price), "nonce": hex(nonce)}
        return ("eth_sendTransaction", [body])

    def _mine_block(self, base_fee: int) -> None:
        """Mines one block at `base_fee`. Two calls, not one batch: anvil may run the members of a
        batch concurrently."""
        self.rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(base_fee)])
        self.rpc.call("evm_mine")

    def _mine_pool(self, base_fee: int) -> None:
        stalled = 0
        pending_before = None
        while True:
            self._mine_block(base_fee)
            status = self.rpc.call("txpool_status")
            pending = int(status["pending"], 16) + int(status["queued"], 16)
            if pending == 0:
                return
            stalled = stalled + 1 if pending == pending_before else 0
            if stalled >= 3:
                raise DevChainError(
                    f"{pending} transactions stay in the pool after 3 blocks (nonce gap, gas limit above the "
                    "block gas limit, or a fee below the base fee?); see txpool_content"
                )
            pending_before = pending

    def _check_receipts(self, hashes: Sequence[str], first_block: int, last_block: int) -> int:
        ours = set(hashes)
        found = 0
        gas_used = 0
        failed: list[str] = []
        numbers = list(range(first_block, last_block + 1))
        for start in range(0, len(numbers), 50):
            chunk = numbers[start : start + 50]
            for receipts in self.rpc.batch([("eth_getBlockReceipts", [hex(n)]) for n in chunk]):
                for r in receipts or []:
                    if r["transactionHash"] not in ours:
                        continue
                    found += 1
                    gas_used += int(r["gasUsed"], 16)
                    if r["status"] != "0x1":
                        failed.append(r["transactionHash"])
        if failed:
            what = f"{len(failed)} of {len(hashes)} bulk transactions; the first"
            raise TxFailed(what, self._revert_reason(failed[0]), failed[0])
        if found != len(ours):
            raise DevChainError(
                f"only {found} of {len(ours)} bulk transactions were mined in blocks {first_block}-{last_block}"
            )
        return gas_used

    def estimate_gas(self, sender: str, contract: str, fn: str, *args: Any) -> int:
        call = self.contracts[contract].encode(fn, *args)
        tx = {"from": sender, "to": call.to, "data": call.data}
        try:
            return int(self.rpc.call("eth_estimateGas", [tx]), 16)
        except RpcError as exc:
            raise TxFailed(f"{contract}.{fn} from {sender} (estimate)", self.codec.decode_error(exc.data)) from None

    def _bulk_gas(self, sender: str, contract: str, fn: str, *args: Any) -> int:
        """A gas limit for a bulk group of calls like this one: its estimate with a wide margin."""
        return int(self.estimate_gas(sender, contract, fn, *args) * 1.5) + 30_000

    # ------------------------------------------------------------------ setup: tokens and providers

    @property
    def faucet(self) -> bool:
        """Whether the deployer may mint (devnet deployments)."""
        return bool(self.deployment.parameters.get("devnetFaucet"))

    def fund(self, addresses: Sequence[str], amount: int, *, approve: bool = True) -> None:
        """Gives each address `amount` tokens (minted on devnets, else sent from the deployer) and,
        with `approve`, an unlimited allowance to the market and the staking contract. One bulk send."""
        txs = []
        for a in addresses:
            token = self.contracts.reward_token
            call = token.mint(a, amount) if self.faucet else token.transfer(a, amount)
            txs.append(Tx(self.deployer, call.to, call.data, 150_000))
            if approve:
                for spender in (self.market, self.staking):
                    txs.append(self.tx(a, "RewardToken", "approve", spender, MAX_UINT256, gas=100_000))
        self.send_bulk(txs)

    def token_balance(self, address: str) -> int:
        return int(self.read(self.contracts.reward_token.balance_of(address)))

    def approve(self, owner: str, spender: str, amount: int = MAX_UINT256) -> dict[str, Any]:
        return self.send(owner, self.contracts.reward_token.approve(spender, amount))

    def register_provider(
        self, provider: str, stake: int, endpoint: str = "http://127.0.0.1:8700", capability_hash: bytes = ZERO_HASH
    ) -> dict[str, Any]:
        """Registers `provider` with `stake` (it needs the tokens and an allowance to staking: :meth:`fund`)."""
        return self.send(provider, self.contracts.provider_staking.register(stake, endpoint, capability_hash))

    def register_providers(self, providers: Sequence[str], stake: int, endpoint: str = "http://127.0.0.1:8700") -> None:
        """Registers several providers in one bulk send (endpoint suffixed with the provider index)."""
        if not providers:
            return
        gas = self._bulk_gas(providers[0], "ProviderStaking", "register", stake, f"{endpoint}/0", ZERO_HASH)
        self.send_bulk(
            [
                self.tx(p, "ProviderStaking", "register", stake, f"{endpoint}/{i}", ZERO_HASH, gas=gas)
                for i, p in enumerate(providers)
            ]
        )

    def stake(self, provider: str, amount: int) -> dict[str, Any]:
        """Adds `amount` to a registered provider's stake (it needs the tokens and an allowance)."""
        return self.send(provider, self.contracts.provider_staking.stake(amount))

    def request_unstake(self, provider: str, amount: int) -> dict[str, Any]:
        """Starts unbonding `amount` of a provider's free stake."""
        return self.send(provider, self.contracts.provider_staking.request_unstake(amount))

    def withdraw_unstaked(self, provider: str) -> dict[str, Any]:
        """Withdraws a provider's stake whose unbonding period has passed."""
        return self.send(provider, self.contracts.provider_staking.withdraw_unstaked())

    def set_metadata(self, provider: str, endpoint: str, capability_hash: bytes = ZERO_HASH) -> dict[str, Any]:
        """Changes a registered provider's endpoint and capability hash."""
        return self.send(provider, self.contracts.provider_staking.set_metadata(endpoint, capability_hash))

    def get_provider(self, address: str) -> dict[str, Any]:
        """`ProviderStaking.getProvider` as a dict keyed by the `ProviderInfo` field names."""
        info = self.read(self.contracts.provider_staking.get_provider(address))
        return dict(zip((c["name"] for c in _struct_components("ProviderStaking", "getProvider")), info, strict=True))

    def deposit(self, account: str, amount: int) -> dict[str, Any]:
        return self.send(account, self.contracts.job_market.deposit(amount))

    def withdraw(self, account: str) -> dict[str, Any]:
        return self.send(account, self.contracts.job_market.withdraw())

    def withdrawable(self, account: str) -> int:
        """The market balance `account` may withdraw (`JobMarket.withdrawableOf`)."""
        return int(self.read(self.contracts.job_market.withdrawable_of(account)))

    # ------------------------------------------------------------------ jobs, one at a time

    def job_count(self) -> int:
        return int(self.read(self.contracts.job_market.job_count()))

    def get_job(self, job_id: int) -> dict[str, Any]:
        """`JobMarket.getJob` as a dict keyed by the `JobView` field names."""
        view = self.read(self.contracts.job_market.get_job(job_id))
        return dict(zip((c["name"] for c in _struct_components("JobMarket", "getJob")), view, strict=True))

    def post_job(self, requester: str, spec: bytes | dict[str, Any], terms: JobTerms | None = None) -> int:
        """Posts a job (the requester needs the reward and an allowance: :meth:`fund`); returns its id."""
        receipt = self.post_job_receipt(requester, spec, terms)
        return self.job_id_from_receipt(receipt)

    def post_job_receipt(
        self, requester: str, spec: bytes | dict[str, Any], terms: JobTerms | None = None
    ) -> dict[str, Any]:
        """:meth:`post_job`, returning the receipt (job id: :meth:`job_id_from_receipt`)."""
        spec_bytes = spec if isinstance(spec, bytes) else canonical_json(spec)
        terms = terms or JobTerms()
        return self.send(requester, self.contracts.job_market.post_job(keccak(spec_bytes), spec_bytes, terms.as_tuple()))

    def post_jobs(self, requester: str, specs: list[bytes], terms: JobTerms | None = None) -> list[int]:
        """Posts every spec of `specs` with the same terms in one ``postJobs`` transaction (the
        requester needs the sum of the escrows and an allowance: :meth:`fund`); returns their ids."""
        terms = terms or JobTerms()
        posts = [(keccak(spec_bytes), spec_bytes, terms.as_tuple()) for spec_bytes in specs]
        return self.job_ids_from_receipt(self.send(requester, self.contracts.job_market.post_jobs(posts)))

    def job_ids_from_receipt(self, receipt: dict[str, Any]) -> list[int]:
        """The ids of the market's JobPosted logs in `receipt`, in order."""
        topic = JobMarket.TOPICS["JobPosted"]
        return [
            int(log["topics"][1], 16)
            for log in receipt["logs"]
            if log["address"].lower() == self.market.lower() and log["topics"][0] == topic
        ]

    def job_id_from_receipt(self, receipt: dict[str, Any]) -> int:
        ids = self.job_ids_from_receipt(receipt)
        if not ids:
            raise DevChainError(f"transaction {receipt['transactionHash']} emitted no JobPosted")
        return ids[0]

    def claim_job(self, provider: str, job_id: int) -> dict[str, Any]:
        return self.send(provider, self.contracts.job_market.claim_job(job_id))

    def submit_result(self, provider: str, job_id: int, commitment: bytes, result_uri: str) -> dict[str, Any]:
        """Submits a result's salted commitment (:func:`depin.commitment.commitment`) and its opaque URI."""
        return self.send(provider, self.contracts.job_market.submit_result(job_id, commitment, result_uri))

    def submit_failure(self, provider: str, job_id: int, code: int, commitment: bytes) -> dict[str, Any]:
        """Submits failure `code` with its commitment (over :func:`depin.commitment.failure_digest`)."""
        return self.send(provider, self.contracts.job_market.submit_failure(job_id, code, commitment))

    def is_drawn(self, job_id: int) -> bool:
        """`JobMarket.isDrawn` (reverts until the job's anchor block is past)."""
        return bool(self.read(self.contracts.job_market.is_drawn(job_id)))

    def get_case(self, job_id: int) -> dict[str, Any]:
        """`VerificationCourt.getCase` as a dict keyed by the `CaseView` field names."""
        view = self.read(self.contracts.verification_court.get_case(job_id))
        return dict(zip((c["name"] for c in _struct_components("VerificationCourt", "getCase")), view, strict=True))

    def challenge(self, challenger: str, job_id: int) -> dict[str, Any]:
        """Challenges a submission through the court (the challenger needs the bond and an allowance
        to the court)."""
        return self.send(challenger, self.contracts.verification_court.challenge(job_id))

    def finalize(self, job_id: int, sender: str | None = None) -> dict[str, Any]:
        return self.send(sender or self.deployer, self.contracts.job_market.finalize(job_id))

    def finalize_many(self, job_ids: Sequence[int], sender: str | None = None) -> dict[str, Any]:
        return self.send(sender or self.deployer, self.contracts.job_market.finalize_many(list(job_ids)))

    def cancel_job(self, requester: str, job_id: int) -> dict[str, Any]:
        return self.send(requester, self.contracts.job_market.cancel_job(job_id))

    def expire_job(self, job_id: int, sender: str | None = None) -> dict[str, Any]:
        return self.send(sender or self.deployer, self.contracts.job_market.expire_job(job_id))

    def timeout_job(self, job_id: int, sender: str | None = None) -> dict[str, Any]:
        return self.send(sender or self.deployer, self.contracts.job_market.timeout_job(job_id))

    # ------------------------------------------------------------------ jobs in bulk

    def setup_actors(
        self,
        requesters: Sequence[str],
        providers: Sequence[str],
        *,
        jobs: int,
        terms: JobTerms | None = None,
    ) -> None:
        """Funds requesters for `jobs` jobs and providers for a stake covering their share of them,
        approves, and registers the providers not registered yet."""
        terms = terms or JobTerms()
        min_stake = int(self.read(self.contracts.provider_staking.min_stake()))
        per_provider = -(-jobs // max(len(providers), 1))
        stake = min_stake + per_provider * terms.collateral + to_wei(1)
        requester_funds = -(-jobs // max(len(requesters), 1)) * terms.escrow_bound + to_wei(1)
        self.fund(list(requesters), requester_funds)
        self.fund(list(providers), stake)
        new = [p for p in providers if not self._registered(p)]
        self.register_providers(new, stake)

    def _registered(self, provider: str) -> bool:
        return int(self.read(self.contracts.provider_staking.get_provider(provider))[0]) != 0  # ProviderInfo.id

    def generate_jobs(
        self,
        count: int,
        *,
        requesters: Sequence[str] | None = None,
        providers: Sequence[str] | None = None,
        terms: JobTerms | None = None,
        spec: Callable[[int], bytes] = sample_spec,
        round_size: int = 2_000,
        finalize_batch: int = 100,
        setup: bool = True,
        progress: Callable[[str], None] | None = None,
    ) -> GeneratedJobs:
        """Takes `count` new jobs through post → claim → submit → finalize, in bulk.

        Works in rounds of `round_size` jobs: all posts of a round are mined, then all claims
        (provider ``k % len(providers)`` claims the round's k-th job), then all result submissions,
        then the clock moves past the challenge window and ``finalizeMany`` settles the round in
        batches of `finalize_batch` (one ``JobFinalized`` per job, exactly as ``finalize`` emits).
        Requesters post in turn; `spec(i)` is the i-th job's spec. Defaults: requesters
        ``accounts[1:3]``, providers ``accounts[3:5]``; with `setup` they are funded, approved and
        registered first (:meth:`setup_actors`). Nobody else may post while this runs (job ids are
        assigned in order). The default terms declare ``verify_mode`` none, so that every job
        finalizes (a re-executable job may be drawn for audit and then waits for the court);
        submissions are commitments (any non-zero word: nobody reveals them).
        """
        if count <= 0:
            raise ValueError("count must be positive")
        terms = terms or JobTerms(verify_mode=1)
        term_tuple = terms.as_tuple()
        requesters = list(requesters or self.accounts[1:3])
        providers = list(providers or self.accounts[3:5])
        say = progress or (lambda _message: None)
        started = time.perf_counter()
        phases = dict.fromkeys(("setup", "post", "claim", "submit", "finalize"), 0.0)
        txs_before, gas_before = self._bulk_txs, self._bulk_gas_used
        if setup:
            self.setup_actors(requesters, providers, jobs=count, terms=terms)
        phases["setup"] = time.perf_counter() - started
        first_id = self.job_count() + 1
        out = GeneratedJobs(first_id, first_id + count - 1, first_block=self.block_number() + 1)
        gas: dict[str, int] = {}  # per phase: estimated once, on the first round's first call

        def lap(phase: str, since: float) -> float:
            now = time.perf_counter()
            phases[phase] += now - since
            return now

        for start in range(0, count, round_size):
            t = time.perf_counter()
            ids = range(first_id + start, first_id + min(start + round_size, count))
            specs = [spec(start + k) for k in range(len(ids))]
            if "post" not in gas:
                longest = max(specs, key=len)
                gas["post"] = self._bulk_gas(requesters[0], "JobMarket", "postJob", keccak(longest), longest, term_tuple)
            self.send_bulk(
                [
                    self.tx(requesters[k % len(requesters)], "JobMarket", "postJob", keccak(s), s, term_tuple, gas=gas["post"])
                    for k, s in enumerate(specs)
                ]
            )
            if self.job_count() != ids[-1]:
                raise DevChainError(
                    f"after posting, jobCount is {self.job_count()}, not {ids[-1]}: did another account post meanwhile?"
                )
            t = lap("post", t)

            provider_of = {job: providers[k % len(providers)] for k, job in enumerate(ids)}
            if "claim" not in gas:
                gas["claim"] = self._bulk_gas(provider_of[ids[0]], "JobMarket", "claimJob", ids[0])
            self.send_bulk([self.tx(provider_of[j], "JobMarket", "claimJob", j, gas=gas["claim"]) for j in ids])
            t = lap("claim", t)

            results = {j: (result_hash_for(j), RESULTS_URL + result_hash_for(j).hex()) for j in ids}
            if "submit" not in gas:
                gas["submit"] = self._bulk_gas(provider_of[ids[0]], "JobMarket", "submitResult", ids[0], *results[ids[0]])
            self.send_bulk(
                [self.tx(provider_of[j], "JobMarket", "submitResult", j, *results[j], gas=gas["submit"]) for j in ids]
            )
            t = lap("submit", t)

            self.advance_time(terms.challenge_window + 1)
            batches = [list(ids[k : k + finalize_batch]) for k in range(0, len(ids), finalize_batch)]
            if "finalize" not in gas:
                gas["finalize"] = self._bulk_gas(self.deployer, "JobMarket", "finalizeMany", batches[0])
            self.send_bulk([self.tx(self.deployer, "JobMarket", "finalizeMany", b, gas=gas["finalize"]) for b in batches])
            lap("finalize", t)

            done = ids[-1] - first_id + 1
            say(f"{done:,}/{count:,} jobs ({done / (time.perf_counter() - started):,.0f} jobs/s)")
        out.last_block = self.block_number()
        out.txs = self._bulk_txs - txs_before
        out.gas_used = self._bulk_gas_used - gas_before
        out.seconds = time.perf_counter() - started
        out.phases = phases
        return out


def _struct_components(contract: str, fn: str) -> list[dict[str, Any]]:
    """The fields of the struct that `contract`.`fn` returns (its single output)."""
    for item in load_abi(contract):
        if item.get("type") == "function" and item["name"] == fn:
            return item["outputs"][0]["components"]
    raise DevChainError(f"{contract} ABI has no {fn}")
