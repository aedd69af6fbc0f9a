"""The on-chain layer of the simulation: a fresh anvil, the contracts deployed on it, and agents.

Agents are anvil's unlocked development accounts sending real transactions (``eth_sendTransaction``
through :class:`depin.chain.RpcClient`); every call is encoded with the shipped ABIs
(:mod:`depin.abi`). Time moves with ``evm_increaseTime`` and blocks with ``anvil_mine``
(:mod:`depinctl.anvil`), never by sleeping. Branches of a strategy run from one snapshot and are
rewound with ``evm_revert``. The draw is controlled through ``MockRandomness.setValue``: the sim
searches the value of a job's anchor block that gives the draw a branch needs, and proves it with
the contracts' own views (``JobMarket.isDrawn``, ``VerificationCourt.drawnFor``).

A party's holdings (:meth:`World.wealth`) are everything it owns in the system: wallet tokens,
market credit, provider stake (staked, which includes locked collateral, plus unbonding) and court
stake (free, locked bonds, unbonding). A branch's payoff for a party is the change of its holdings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from depin.abi import Binding, Codec, ContractCall
from depin.artifacts import load_abi
from depin.chain import RpcClient, RpcError
from depin.errors import ChainError
from depin.spec import canonical_json
from depinctl.anvil import Anvil

MAX_UINT256 = 2**256 - 1
TX_GAS = 8_000_000  # every sim transaction's gas limit (a 15-seat jury conclusion fits easily)
ZERO32 = b"\x00" * 32
WAD = 10**18


class SimError(ChainError):
    """The simulation could not do what a branch needs (a setup or driver problem, not an outcome)."""


class TxFailed(SimError):
    """A transaction reverted; `reason` is the decoded custom error."""

    def __init__(self, what: str, reason: str) -> None:
        self.what, self.reason = what, reason
        super().__init__(f"{what} reverted: {reason}")


def contract(name: str, address: str, codec: Codec) -> Binding:
    """A binding of the shipped contract `name` at `address` (any shipped contract, by ABI name)."""
    cls = type(name, (Binding,), {"CONTRACT": name})
    return cls(address, codec)


def struct_fields(contract_name: str, fn: str) -> list[str]:
    """The field names of the struct that `contract_name`.`fn` returns (its single output)."""
    for item in load_abi(contract_name):
        if item.get("type") == "function" and item["name"] == fn:
            return [c["name"] for c in item["outputs"][0]["components"]]
    raise SimError(f"{contract_name} ABI has no {fn}")


def commitment(party: str, job_id: int, digest: bytes, salt: bytes) -> bytes:
    """The market's commitment: keccak256(abi.encode(provider, jobId, digest, salt))."""
    return keccak(abi_encode(["address", "uint256", "bytes32", "bytes32"], [party, job_id, digest, salt]))


def seat_commitment(verifier: str, job_id: int, round_: int, seat: int, digest: bytes, salt: bytes) -> bytes:
    """A seat's sealed contribution: keccak256(abi.encode(verifier, jobId, round, seat, digest, salt))."""
    return keccak(
        abi_encode(["address", "uint256", "uint8", "uint8", "bytes32", "bytes32"], [verifier, job_id, round_, seat, digest, salt])
    )


def canary_digest(secret: bytes) -> bytes:
    """The digest a canary's garbage commitment hides: keccak256(abi.encodePacked("depin-canary", secret))."""
    return keccak(b"depin-canary" + secret)


def drawn_locally(r: bytes, job_id: int, audit_bps: int) -> bool:
    """The market's draw: keccak256(abi.encode(r, jobId)) % 10_000 < auditBps (checked against
    ``JobMarket.isDrawn`` after every forced value)."""
    return int.from_bytes(keccak(abi_encode(["bytes32", "uint256"], [r, job_id])), "big") % 10_000 < audit_bps


def job_spec(n: int) -> bytes:
    """A canonical job spec, distinct per `n`."""
    return canonical_json(
        {
            "command": ["sha256sum", "/in/a"],
            "image": "depin/checksum@sha256:" + "ab" * 32,
            "inputs": [{"path": "a", "sha256": keccak(b"sim-input:%d" % n).hex(), "uri": f"file:///in/{n}"}],
            "resources": {"cpus": 1, "max_runtime": 60, "memory_mb": 64},
            "v": 1,
        }
    )


class World:
    """One deployment on one anvil, driven through unlocked accounts."""

    CONTRACTS = ("RewardToken", "ProviderStaking", "JobMarket", "VerificationCourt", "MockRandomness")

    def __init__(self, rpc_url: str, addresses: dict[str, str], deployer: str) -> None:
        self.rpc = RpcClient.from_url(rpc_url, timeout=60.0)
        self.anvil = Anvil(self.rpc)
        self.codec = Codec(self.CONTRACTS)
        self.deployer = to_checksum_address(deployer)
        self.token = contract("RewardToken", addresses["RewardToken"], self.codec)
        self.market = contract("JobMarket", addresses["JobMarket"], self.codec)
        self.staking = contract("ProviderStaking", addresses["ProviderStaking"], self.codec)
        self.court = contract("VerificationCourt", addresses["VerificationCourt"], self.codec)
        randomness = addresses.get("MockRandomness") or self.read(self.market, "randomness")
        self.randomness = contract("MockRandomness", randomness, self.codec)
        self._spec_counter = 0
        self.tx_count = 0
        # While a list: every mined transaction's (``Contract.function``, gasUsed), in order.
        self.gas_log: list[tuple[str, int]] | None = None

    # ------------------------------------------------------------------ accounts

    @cached_property
    def accounts(self) -> list[str]:
        return [to_checksum_address(a) for a in self.rpc.accounts()]

    # ------------------------------------------------------------------ calls

    def read(self, binding: Binding, fn: str, *args: Any, block: int | str = "latest") -> Any:
        call = binding.encode(fn, *args)
        try:
            out = self.rpc.eth_call({"to": call.to, "data": call.data}, block)
        except RpcError as exc:
            raise TxFailed(f"{call.what} (call)", self.codec.decode_error(exc.data)) from None
        return call.decode(out)

    def view(self, binding: Binding, fn: str, *args: Any) -> dict[str, Any]:
        """A view returning one struct, as a dict by field name."""
        return dict(zip(struct_fields(binding.CONTRACT, fn), self.read(binding, fn, *args), strict=True))

    def send(self, sender: str, binding: Binding, fn: str, *args: Any) -> dict[str, Any]:
        """Sends `binding`.`fn`(`args`) from `sender` and returns the receipt; raises
        :class:`TxFailed` with the decoded custom error when it would revert (nothing is sent)."""
        return self.send_call(sender, binding.encode(fn, *args))

    def send_call(self, sender: str, call: ContractCall) -> dict[str, Any]:
        """One transaction with a fixed gas limit (no estimate: anvil's binary search runs the call
        many times); a revert is decoded from the mined transaction's call trace."""
        tx: dict[str, Any] = {"from": sender, "to": call.to, "data": call.data, "gas": hex(TX_GAS)}
        tx_hash = self.rpc.send_transaction(tx)
        self.tx_count += 1
        deadline = time.monotonic() + 30
        while (receipt := self.rpc.get_receipt(tx_hash)) is None:
            if time.monotonic() > deadline:
                raise SimError(f"no receipt for {call.what} ({tx_hash}): is automine off?")
            time.sleep(0.002)
        if receipt["status"] != "0x1":
            try:
                reason = self.codec.decode_error((self.rpc.trace_transaction(tx_hash) or {}).get("output"))
            except ChainError:
                reason = "reverted (no trace)"
            raise TxFailed(f"{call.what} from {sender}", reason)
        if self.gas_log is not None:
            self.gas_log.append((call.what, int(receipt["gasUsed"], 16)))
        return receipt

    def fails(self, sender: str, binding: Binding, fn: str, *args: Any) -> str | None:
        """The decoded error `binding`.`fn`(`args`) from `sender` would revert with, else None
        (an ``eth_call``: nothing is sent)."""
        call = binding.encode(fn, *args)
        try:
            self.rpc.eth_call({"from": sender, "to": call.to, "data": call.data, "gas": hex(TX_GAS)}, retries=0)
        except RpcError as exc:
            return self.codec.decode_error(exc.data)
        return None

    # ------------------------------------------------------------------ time and blocks

    def block_number(self) -> int:
        return self.rpc.block_number()

    def now(self) -> int:
        return int(self.rpc.latest_block()["timestamp"], 16)

    def warp_to(self, timestamp: int) -> None:
        """Mines a block at or after `timestamp` (nothing when the chain is already there)."""
        gap = timestamp - self.now()
        if gap > 0:
            self.anvil.advance(gap)

    def mine_past(self, block: int) -> None:
        """Mines until the head is above `block` (a block's randomness is readable from then on)."""
        gap = block - self.block_number() + 1
        self.anvil.mine(max(gap, 0))

    @contextmanager
    def branch(self) -> Iterator[None]:
        """Runs the body from the current state and rewinds the chain afterwards."""
        snap = self.anvil.snapshot()
        try:
            yield
        finally:
            self.anvil.revert(snap)

    # ------------------------------------------------------------------ holdings

    def check_court_books(self) -> None:
        """The court's conservation invariant: its token balance equals its accounted balance
        (stakes, unbonding, open challenge and appeal bonds). Checked after every branch."""
        balance = int(self.read(self.token, "balanceOf", self.court.address))
        accounted = int(self.read(self.court, "accountedBalance"))
        if balance != accounted:
            raise SimError(f"court books broken: balance {balance} != accounted {accounted}")

    def public_bytes(self, tx_hash: str) -> bytes:
        """Everything a transaction made public: its calldata and its logs' topics and data."""
        tx = self.rpc.get_transaction(tx_hash) or {}
        receipt = self.rpc.get_receipt(tx_hash) or {}
        parts = [str(tx.get("input", ""))]
        for log in receipt.get("logs", []):
            parts += [*log["topics"], log["data"]]
        return b"".join(bytes.fromhex(p.removeprefix("0x")) for p in parts if p)

    def wealth(self, account: str) -> int:
        """Everything `account` holds in the system, in wei of the token."""
        total = int(self.read(self.token, "balanceOf", account))
        total += int(self.read(self.market, "withdrawableOf", account))
        provider = self.view(self.staking, "getProvider", account)
        total += int(provider["staked"]) + int(provider["unbonding"])
        verifier = self.view(self.court, "getVerifier", account)
        total += int(verifier["free"]) + int(verifier["locked"]) + int(verifier["unbonding"])
        return total

    def holdings(self, parties: Mapping[str, Sequence[str]]) -> dict[str, int]:
        """Wealth per role (a role may be several accounts: a coalition's members)."""
        return {role: sum(self.wealth(a) for a in accounts) for role, accounts in parties.items()}

    # ------------------------------------------------------------------ randomness

    def force_local(
        self, anchor: int, label: str, prefilter: Callable[[bytes], bool], accept: Callable[[bytes], bool], tries: int = 20_000
    ) -> bytes:
        """Sets the anchor block's randomness to the first candidate value `accept` takes (it may
        read chain views: the value is set on chain before it is asked), skipping the candidates
        `prefilter` (computed off chain, no transaction) rejects."""
        self.mine_past(anchor)
        for i in range(tries):
            r = keccak(f"depin-sim:{label}:{i}".encode())
            if not prefilter(r):
                continue
            self.send(self.deployer, self.randomness, "setValue", anchor, r)
            if accept(r):
                return r
        raise SimError(f"no randomness value for {label} within {tries} tries")

    def next_spec(self) -> bytes:
        self._spec_counter += 1
        return job_spec(self._spec_counter)
