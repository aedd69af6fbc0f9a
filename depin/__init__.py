"""The depin-compute core SDK: config, deployments, contract bindings, the chain gateway, signed
transactions, job spec and result formats. The `depin` CLI and dev tools live in depinctl/."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from depin.client import Client


def __getattr__(name: str) -> Any:
    # `from depin import Client` without making `import depin` load web3 and the ABIs.
    if name == "Client":
        from depin.client import Client  # lazy: start-up

        return Client
    raise AttributeError(f"module 'depin' has no attribute {name!r}")
