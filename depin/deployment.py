"""Deployment parameters, the deployment file format, and the ape deploy routine.

Parameters come from ``deployments/parameters.toml``, chosen by chain id. A deployment is recorded
in ``deployments/<chainId>.json`` (addresses, deploy block, parameters). The ape-specific part
(:func:`deploy_contracts`) imports ape lazily, so services that only read deployments need no ape.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PARAMETERS_FILE = REPO_ROOT / "deployments" / "parameters.toml"
DEFAULT_DEPLOYMENTS_DIR = REPO_ROOT / "deployments"
TOKEN_DECIMALS = 18


def to_wei(tokens: int | float | str | Decimal) -> int:
    """Whole tokens (as written in the parameters file) to base units."""
    return int(Decimal(str(tokens)) * (10**TOKEN_DECIMALS))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenParameters(_Strict):
    name: str
    symbol: str
    cap: Decimal = Field(gt=0)
    initial_supply: Decimal = Field(ge=0)


class StakingParameters(_Strict):
    min_stake: Decimal = Field(gt=0)
    unbonding_delay: int = Field(ge=0)


class MarketParameters(_Strict):
    min_claim_window: int
    max_claim_window: int
    min_runtime: int
    max_runtime: int
    min_challenge_window: int
    max_challenge_window: int
    min_collateral_pct: int
    max_collateral_pct: int
    burn_bps: int
    resolve_window: int

    def as_tuple(self) -> tuple[Any, ...]:
        """The `IJobMarket.MarketParams` struct, in field order (`paused` last, false)."""
        return (
            self.min_claim_window,
            self.max_claim_window,
            self.min_runtime,
            self.max_runtime,
            self.min_challenge_window,
            self.max_challenge_window,
            self.min_collateral_pct,
            self.max_collateral_pct,
            self.burn_bps,
            self.resolve_window,
            False,
        )


class EmissionParameters(_Strict):
    rate_per_cpu_second: Decimal = Field(ge=0)
    epoch_budget: Decimal = Field(ge=0)
    epoch_length: int = Field(gt=0)

    def as_tuple(self) -> tuple[int, int, int]:
        """The `IJobMarket.EmissionParams` struct, in base units."""
        return (to_wei(self.rate_per_cpu_second), to_wei(self.epoch_budget), self.epoch_length)


class NetworkParameters(_Strict):
    """Everything the deploy script needs for one network."""

    name: str
    chain_ids: list[int]
    token: TokenParameters
    staking: StakingParameters
    market: MarketParameters
    emission: EmissionParameters
    devnet_faucet: bool = False


class ParametersError(ValueError):
    """The parameters file has no entry for a chain, or an invalid one."""


def load_parameters(chain_id: int, path: Path = DEFAULT_PARAMETERS_FILE) -> NetworkParameters:
    """The parameters for `chain_id` from the parameters file."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    for name, entry in data.get("networks", {}).items():
        if chain_id in entry.get("chain_ids", []):
            return NetworkParameters(name=name, **entry)
    known = {n: e.get("chain_ids") for n, e in data.get("networks", {}).items()}
    raise ParametersError(
        f"no deployment parameters for chain id {chain_id} in {path}; known networks: {known}. "
        "Add a [networks.<name>] entry with this chain id."
    )


@dataclass(frozen=True)
class Deployment:
    """The contents of ``deployments/<chainId>.json``."""

    chain_id: int
    network: str
    deploy_block: int
    addresses: dict[str, str]
    parameters: dict[str, Any]
    deployer: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "chainId": self.chain_id,
                "network": self.network,
                "deployBlock": self.deploy_block,
                "deployer": self.deployer,
                "addresses": self.addresses,
                "parameters": self.parameters,
            },
            indent=2,
            sort_keys=True,
            default=str,
        )

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        d = json.loads(text)
        return cls(
            chain_id=d["chainId"],
            network=d["network"],
            deploy_block=d["deployBlock"],
            addresses=d["addresses"],
            parameters=d["parameters"],
            deployer=d["deployer"],
        )


def deployment_path(chain_id: int, directory: Path = DEFAULT_DEPLOYMENTS_DIR) -> Path:
    return directory / f"{chain_id}.json"


def read_deployment(chain_id: int, directory: Path = DEFAULT_DEPLOYMENTS_DIR) -> Deployment | None:
    """The recorded deployment on `chain_id`, or None when there is none."""
    path = deployment_path(chain_id, directory)
    if not path.exists():
        return None
    return Deployment.from_json(path.read_text())


def write_deployment(deployment: Deployment, directory: Path = DEFAULT_DEPLOYMENTS_DIR) -> Path:
    """Writes the deployment file atomically (temp file + rename) and returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = deployment_path(deployment.chain_id, directory)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(deployment.to_json() + "\n")
    tmp.replace(path)
    return path


def deploy_contracts(deployer: Any, params: NetworkParameters, arbiter: str | None = None) -> dict[str, Any]:
    """Deploys and wires RewardToken, JobMarket (which deploys ProviderStaking) and ArbiterResolver with ape.

    `deployer` is an ape account; it becomes admin, governor and guardian. `arbiter` (default: the
    deployer) receives ARBITER_ROLE. Returns the ape contract instances by name.
    """
    from ape import project

    t, s = params.token, params.staking
    token = project.RewardToken.deploy(
        t.name, t.symbol, to_wei(t.cap), deployer.address, to_wei(t.initial_supply), sender=deployer
    )
    market = project.JobMarket.deploy(
        token.address,
        deployer.address,
        to_wei(s.min_stake),
        s.unbonding_delay,
        params.market.as_tuple(),
        params.emission.as_tuple(),
        sender=deployer,
    )
    staking = project.ProviderStaking.at(market.staking())
    resolver = project.ArbiterResolver.deploy(market.address, deployer.address, sender=deployer)
    market.setResolver(resolver.address, sender=deployer)
    token.grantRole(token.MINTER_ROLE(), market.address, sender=deployer)
    resolver.grantRole(resolver.ARBITER_ROLE(), arbiter or deployer.address, sender=deployer)
    if params.devnet_faucet:
        token.grantRole(token.MINTER_ROLE(), deployer.address, sender=deployer)
    return {"RewardToken": token, "ProviderStaking": staking, "JobMarket": market, "ArbiterResolver": resolver}
