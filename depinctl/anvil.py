"""anvil's own JSON-RPC methods (``evm_*``, ``anvil_*``), which only a development chain answers.

The one module outside the gateway ``depin.chain`` that names them (tests/test_layers.py). Every
other call goes through :class:`depin.chain.RpcClient`'s typed methods. Used by the simulation
(``depin sim``), which moves anvil's clock instead of sleeping and rewinds the chain between
branches with snapshots.
"""

from __future__ import annotations

from collections.abc import Sequence

from depin.chain import RpcClient
from depin.errors import ChainError


class AnvilError(ChainError):
    """anvil refused a development method (an unknown snapshot id, say)."""


class Anvil:
    """The development methods of one anvil node."""

    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc

    def snapshot(self) -> str:
        """The id of a snapshot of the whole chain state (for :meth:`revert`)."""
        return str(self.rpc.call("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        """Back to the state of `snapshot_id` (the id is used up; take a new snapshot after)."""
        if not self.rpc.call("evm_revert", [snapshot_id]):
            raise AnvilError(f"evm_revert({snapshot_id}) failed: unknown or already used snapshot")

    def increase_time(self, seconds: int) -> None:
        """Moves the clock `seconds` forward (takes effect in the next block)."""
        self.rpc.call("evm_increaseTime", [hex(seconds)])

    def mine(self, blocks: int = 1) -> None:
        """Mines `blocks` empty blocks (one second apart)."""
        if blocks > 0:
            self.rpc.call("anvil_mine", [hex(blocks)])

    def advance(self, seconds: int) -> None:
        """Moves the clock `seconds` forward and mines one block at the new time."""
        self.increase_time(seconds)
        self.rpc.call("evm_mine")

    def impersonate(self, addresses: Sequence[str], *, ether: int = 1_000) -> None:
        """Lets the node send transactions from `addresses` and gives each `ether`."""
        calls: list[tuple[str, Sequence[object]]] = []
        for a in addresses:
            calls += [("anvil_impersonateAccount", [a]), ("anvil_setBalance", [a, hex(ether * 10**18)])]
        self.rpc.batch(calls)
