"""Deployment parameters and the deployment file format (read and write); deploying is depinctl.deploy's.

Parameters come from ``deployments/parameters.toml``, chosen by chain id. A deployment is recorded
in ``deployments/<chainId>.json`` (addresses, deploy block, parameters). Deploying (with ape) is
:mod:`depinctl.deploy`'s: the SDK only reads and writes deployment files.

Deploys always use a build of the current sources: :func:`ensure_current_build` (called by
:func:`deploy_contracts` and the deploy script) recompiles every contract when any source or the
compiler configuration changed since the last full compile. ape alone recompiles only the files
whose own text changed, so a contract whose *import* changed (an enum, a constant, a struct in
an interface) would be deployed from its stale ``.build/`` output.

Deployment file format
----------------------
``scripts/deploy.py`` (``ape run deploy --network ...``) writes ``<deployments dir>/<chainId>.json``
atomically (temp file + rename), as UTF-8 JSON with sorted keys, two-space indent and a trailing
newline::

    {
      "addresses": {                      # checksummed addresses of the five contracts
        "JobMarket": "0x...", "ProviderStaking": "0x...", "Randomness": "0x...",
        "RewardToken": "0x...", "VerificationCourt": "0x..."
      },
      "chainId": 31337,                   # the chain the contracts live on (also the file name)
      "deployBlock": 1,                   # block of the first deploy transaction (RewardToken):
                                          # indexers start scanning logs here
      "deployer": "0x...",                # the account that sent every deploy/wiring transaction;
                                          # it holds DEFAULT_ADMIN_ROLE, GOVERNOR_ROLE, GUARDIAN_ROLE
      "network": "devnet",                # the [networks.<name>] entry of parameters.toml used
      "parameters": {                     # the parameters as resolved and sent to the constructors
        "court": {"startWindow": 4, ...}, # VerificationCourt's CourtParams
        "arbiter": "0x...",               # holder of the court's ARBITER_ROLE
        "courtContract": "VerificationCourt",  # or "TestCourt", the stand-in, before the court ships
        "devnetFaucet": true,             # the deployer holds RewardToken.MINTER_ROLE too
        "market": {"alphaBps": 15000, "drawDelay": 1, ...},   # IJobMarket.MarketParams (version 1)
        "randomness": "blockhash",        # or "header", "mock": the contract at addresses.Randomness
        "staking": {"minStake": "...", "unbondingDelay": 2592000},
        "token": {"cap": "...", "initialSupply": "...", "name": "...", "symbol": "DPC"}
      }
    }

Token amounts (``cap``, ``initialSupply``, ``minStake``) are
in base units (18 decimals) written as decimal *strings*: they exceed 2^53, which JavaScript and jq
would silently round if they were JSON numbers. Times are integer seconds; the ``market`` keys are the
field names of the ``IJobMarket.MarketParams`` struct (without ``court`` and ``paused``; the court is
``addresses.VerificationCourt``). Local-devnet files
(chain ids 31337 and 1337) are throwaway: write them outside the repository with
``--deployments-dir``; files for public networks are meant to be committed.

Every reader goes through :func:`load_deployment` (a file, a directory and chain id, or a
:class:`Deployment` already loaded). Reading one (:func:`load_deployment_file`) is bounded: at most :data:`MAX_DEPLOYMENT_FILE_BYTES`
bytes, UTF-8 JSON, every field of the type above; anything else (a missing, unreadable, huge,
binary or deeply nested file, a path too long for the OS) is one :class:`DeploymentFileError` line.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, DecimalException, Inexact, InvalidOperation, Overflow, Underflow
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from depin.atomicfile import write_atomically
from depin.errors import DepinError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PARAMETERS_FILE = REPO_ROOT / "deployments" / "parameters.toml"
DEFAULT_DEPLOYMENTS_DIR = REPO_ROOT / "deployments"
TOKEN_DECIMALS = 18
# Chains on which the deploy script may default to ape's first test account (anvil, hardhat, geth --dev).
LOCAL_CHAIN_IDS = frozenset({31337, 1337})
MAX_DEPLOYMENT_FILE_BYTES = 1 << 20  # a real one is about 2 KB
SHOWN_PATH_CHARS = 160
DEPLOYMENT_HINT = "pass --deployment FILE or set DEPIN_DEPLOYMENT"


class DeploymentFileError(DepinError, ValueError):
    """A deployment file is missing, unreadable or not a deployment (the message names it)."""


MAX_FILE_JSON_DEPTH = 64  # deployment files and keystores are 4 deep
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_nesting_exceeds(text: str, limit: int = MAX_FILE_JSON_DEPTH) -> bool:
    """Whether `text` opens more than `limit` JSON arrays/objects inside each other (outside strings).

    Check before ``json.loads``: its C scanner recurses once per level, and under a raised
    recursion limit (pytest plugins raise it) 100,000 levels overflow the C stack instead of
    raising RecursionError.
    """
    depth = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def shown_path(path: object, limit: int = SHOWN_PATH_CHARS) -> str:
    """`path` for a one-line message: shortened in the middle when longer than `limit` characters."""
    text = str(path)
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}…{text[-(limit // 4):]} ({len(text)} characters)"


def base_units(value: Decimal) -> int:
    """`value` whole tokens as base units, exactly; ValueError saying why not ("out of range (too
    large, or too many digits)", "more than 18 decimals"). Scaled in a context that traps any
    rounding: the default context keeps 28 digits, which turned 12345678901.123456789012345678 into
    ...680 and dropped sub-unit digits without a word. The one scaling of the SDK, the parameters
    file, the config and the CLI (depinctl's parse_tokens)."""
    try:
        units = value.scaleb(TOKEN_DECIMALS, _EXACT)
    except DecimalException:
        raise ValueError("out of range (too large, or too many digits)") from None
    if units != units.to_integral_value():
        raise ValueError(f"more than {TOKEN_DECIMALS} decimals")
    if units.adjusted() >= _EXACT.prec:  # before int(): int(Decimal("1e999970")) takes a minute
        raise ValueError("out of range (too large, or too many digits)")
    return int(units)


def to_wei(tokens: float | str | Decimal) -> int:
    """Whole tokens (as written in the parameters file) to base units, exactly (:func:`base_units`):
    ValueError for an amount that is not a whole number of base units or not a number."""
    try:
        value = Decimal(str(tokens).strip())
    except InvalidOperation:
        raise ValueError(f"{str(tokens)[:80]!r} is not a number of tokens") from None
    if not value.is_finite():
        raise ValueError(f"{value} is not a number of tokens")
    try:
        return base_units(value)
    except ValueError as exc:
        if 0 < abs(value) < Decimal(1).scaleb(-TOKEN_DECIMALS):
            raise ValueError(f"{value} tokens is less than one base unit (0.{'0' * (TOKEN_DECIMALS - 1)}1 tokens)") from None
        raise ValueError(f"{value} tokens: {exc}") from None


# Exact or an error: no rounding, overflow or underflow. 100 digits: more than any uint256 (78) needs,
# with its 18 decimals.
_EXACT = Context(prec=100, traps=[InvalidOperation, Overflow, Underflow, Inexact])


def _whole_base_units(tokens: Decimal) -> Decimal:
    to_wei(tokens)  # ValueError: load_parameters names the field
    return tokens


# An amount of whole tokens in the parameters file: a whole number of base units.
Tokens = Annotated[Decimal, AfterValidator(_whole_base_units)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenParameters(_Strict):
    name: str
    symbol: str
    cap: Tokens = Field(gt=0)
    initial_supply: Tokens = Field(ge=0)


class StakingParameters(_Strict):
    min_stake: Tokens = Field(gt=0)
    unbonding_delay: int = Field(ge=0)


class MarketParameters(_Strict):
    """The first `IJobMarket.MarketParams` version (set by `setParams` once the court exists)."""

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
    # Whole tokens: the largest reward a post may offer; at most the court's minStake / canarySlashMul
    # (a seat needs sigma * R of stake: above it a draw could seat nobody and the job settle Unaudited).
    max_reward: Tokens = Field(gt=0)
    draw_delay: int = Field(ge=1)
    # Entries of the market's job ring (fixed at deployment; not part of MarketParams): a job reuses
    # the storage of the job `job_slots` ids before it once that one has settled.
    job_slots: int = Field(default=4096, ge=1, le=2**32 - 1)

    def as_tuple(self, court: str) -> tuple[Any, ...]:
        """The `IJobMarket.MarketParams` struct, in field order, with `court` (`paused` last, false)."""
        return (
            self.min_claim_window,
            self.max_claim_window,
            self.min_runtime,
            self.max_runtime,
            self.min_challenge_window,
            self.max_challenge_window,
            self.min_collateral_pct,
            self.max_collateral_pct,
            self.alpha_bps,
            self.fee_bps,
            self.kappa_bps,
            self.audit_fee_bps,
            self.beta_bps,
            self.no_fault_fee_bps,
            to_wei(self.max_reward),
            self.draw_delay,
            court,
            False,
        )

    def as_dict(self) -> dict[str, int]:
        """The struct's fields by their Solidity names (without `court` and `paused`)."""
        return {
            "minClaimWindow": self.min_claim_window,
            "maxClaimWindow": self.max_claim_window,
            "minRuntime": self.min_runtime,
            "maxRuntime": self.max_runtime,
            "minChallengeWindow": self.min_challenge_window,
            "maxChallengeWindow": self.max_challenge_window,
            "minCollateralPct": self.min_collateral_pct,
            "maxCollateralPct": self.max_collateral_pct,
            "alphaBps": self.alpha_bps,
            "feeBps": self.fee_bps,
            "kappaBps": self.kappa_bps,
            "auditFeeBps": self.audit_fee_bps,
            "betaBps": self.beta_bps,
            "noFaultFeeBps": self.no_fault_fee_bps,
            "maxReward": to_wei(self.max_reward),
            "drawDelay": self.draw_delay,
        }


class CourtParameters(_Strict):
    """VerificationCourt's `CourtParams`, keys exactly as the struct's fields (times in seconds,
    bps of the reward R, `blockTime` in seconds per block, `minStake` in whole tokens)."""

    startWindow: int
    rhoPct: int
    setupTime: int
    inclusionTime: int
    revealWindow: int
    appealWindow: int
    canaryWindow: int
    auditorBondBps: int
    jurorBondBps: int
    jurorPayBps: int
    challengeBondBps: int
    canarySlashMul: int
    maxRedraws: int
    arbiterDelay: int
    arbiterWindow: int
    activationDelayBlocks: int
    blockTime: int
    betaBps: int
    minStake: Tokens = Field(gt=0)

    def as_dict(self) -> dict[str, int]:
        """The struct by field name (in declaration order; `minStake` in base units)."""
        fields = self.model_dump()
        fields["minStake"] = to_wei(self.minStake)
        return fields

    def as_tuple(self) -> tuple[int, ...]:
        """The struct in the field order above (`minStake` in base units)."""
        return tuple(self.as_dict().values())

    def required_challenge_window(self, draw_delay: int) -> int:
        """What the court's `requiredChallengeWindow()` should be: D blocks + start window + inclusion."""
        return draw_delay * self.blockTime + self.startWindow + self.inclusionTime

    def max_horizon(self, max_runtime: int) -> int:
        """A bound on the court's `maxHorizon(maxRuntime)` (used for the TestCourt stand-in): four
        rounds (audit and juries of 3, 7, 15), each with its redraws, start, commit (rho * runtime
        + setup + inclusion), reveal and appeal windows, plus the canary window and the arbiter."""
        commit = max_runtime * self.rhoPct // 100 + self.setupTime + self.inclusionTime
        start = self.startWindow + self.activationDelayBlocks * self.blockTime
        round_ = (self.maxRedraws + 1) * (start + commit + self.revealWindow) + self.appealWindow
        return 4 * round_ + self.canaryWindow + self.arbiterDelay + self.arbiterWindow


RANDOMNESS_CONTRACTS = {"blockhash": "BlockhashRandomness", "header": "HeaderRandomness", "mock": "MockRandomness"}


class NetworkParameters(_Strict):
    """Everything the deploy script needs for one network."""

    name: str
    chain_ids: list[int]
    token: TokenParameters
    staking: StakingParameters
    market: MarketParameters
    court: CourtParameters
    randomness: str = Field(default="blockhash", pattern="^(blockhash|header|mock)$")
    devnet_faucet: bool = False


class ParametersError(ValueError):
    """The parameters file has no entry for a chain, or an invalid one."""


def load_parameters(chain_id: int, path: Path = DEFAULT_PARAMETERS_FILE) -> NetworkParameters:
    """The parameters for `chain_id` from the parameters file."""
    with open(path, "rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ParametersError(f"{shown_path(path)} is not TOML: {exc}") from None
    for name, entry in data.get("networks", {}).items():
        if chain_id in entry.get("chain_ids", []):
            try:
                return NetworkParameters(name=name, **entry)
            except ValidationError as exc:  # a typo'd or missing key, a value of the wrong type
                problems = "; ".join(
                    f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
                )
                raise ParametersError(f"{shown_path(path)} [networks.{name}]: {problems[:400]}") from None
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
    def from_json(cls, text: str | bytes) -> Deployment:
        """Parses a deployment file's text; raises ValueError (never RecursionError, KeyError or
        TypeError) when it is not JSON or lacks a field or has one of the wrong type."""
        if json_nesting_exceeds(text if isinstance(text, str) else text.decode("utf-8", "replace")):
            raise ValueError(f"JSON nested deeper than {MAX_FILE_JSON_DEPTH} levels")
        try:
            d = json.loads(text)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, found {type(d).__name__}")  # noqa: TRY004 - documented: ValueError only
        fields = {"chainId": int, "network": str, "deployBlock": int, "addresses": dict, "parameters": dict, "deployer": str}
        for name, kind in fields.items():
            if name not in d:
                raise ValueError(f"no {name!r} field")
            if not isinstance(d[name], kind) or isinstance(d[name], bool):
                raise ValueError(f"{name!r} is a {type(d[name]).__name__}, not a {kind.__name__}")  # noqa: TRY004 - see above
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in d["addresses"].items()):
            raise ValueError("'addresses' must map contract names to address strings")
        return cls(
            chain_id=d["chainId"],
            network=d["network"],
            deploy_block=d["deployBlock"],
            addresses=d["addresses"],
            parameters=d["parameters"],
            deployer=d["deployer"],
        )


def resolved_parameters(
    params: NetworkParameters, court_contract: str = "VerificationCourt", arbiter: str | None = None
) -> dict[str, Any]:
    """The parameters as the deploy sends them (base units), in the deployment file's layout.
    `court_contract` is the contract deployed as the court (VerificationCourt, or the TestCourt
    stand-in while VerificationCourt is not in the build); `arbiter` the holder of its ARBITER_ROLE."""
    t, s = params.token, params.staking
    return {
        "token": {
            "name": t.name,
            "symbol": t.symbol,
            "cap": str(to_wei(t.cap)),
            "initialSupply": str(to_wei(t.initial_supply)),
        },
        "staking": {"minStake": str(to_wei(s.min_stake)), "unbondingDelay": s.unbonding_delay},
        "market": params.market.as_dict() | {"maxReward": str(to_wei(params.market.max_reward))},
        "jobSlots": params.market.job_slots,
        "court": params.court.as_dict() | {"minStake": str(to_wei(params.court.minStake))},
        "courtContract": court_contract,
        "randomness": params.randomness,
        "devnetFaucet": params.devnet_faucet,
        "arbiter": arbiter,
    }


def deployment_path(chain_id: int, directory: Path = DEFAULT_DEPLOYMENTS_DIR) -> Path:
    return directory / f"{chain_id}.json"


def read_deployment(chain_id: int, directory: Path = DEFAULT_DEPLOYMENTS_DIR) -> Deployment | None:
    """The recorded deployment on `chain_id`, or None when there is none."""
    path = deployment_path(chain_id, directory)
    if not path.exists():
        return None
    return load_deployment_file(path)


def load_deployment_file(path: Path | str, *, hint: str = DEPLOYMENT_HINT) -> Deployment:
    """Reads and checks a deployment file, bounded (see the module doc); raises
    :class:`DeploymentFileError` with one line naming the file and what is wrong."""
    shown = shown_path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DEPLOYMENT_FILE_BYTES + 1)
    except FileNotFoundError:
        raise DeploymentFileError(f"deployment file {shown} not found: {hint}") from None
    except IsADirectoryError:
        raise DeploymentFileError(f"deployment {shown} is a directory; pass the <chainId>.json file in it") from None
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, EACCES, ELOOP, a NUL byte in the path, ...
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DeploymentFileError(f"cannot read deployment file {shown}: {reason}") from None
    if len(data) > MAX_DEPLOYMENT_FILE_BYTES:
        raise DeploymentFileError(
            f"{shown} is not a deployment file: larger than {MAX_DEPLOYMENT_FILE_BYTES} bytes (a real one is ~2 KB)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DeploymentFileError(f"{shown} is not a deployment file: not UTF-8 text") from None
    try:
        return Deployment.from_json(text)
    except ValueError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise DeploymentFileError(f"{shown} is not a deployment file (format: depin/deployment.py): {reason}") from None


class ContractAddresses:
    """The core contracts' addresses by role, for a class whose ``addresses`` maps contract names
    to checksummed addresses (a :class:`~depin.client.Client`, a devnet driver)."""

    addresses: dict[str, str]

    @property
    def market(self) -> str:
        return self.addresses["JobMarket"]

    @property
    def staking(self) -> str:
        return self.addresses["ProviderStaking"]

    @property
    def token(self) -> str:
        return self.addresses["RewardToken"]

    @property
    def court(self) -> str:
        """The deployment's verification court (jobs snapshot theirs: :attr:`OnchainJob` has no
        court, ``verificationInfo`` does)."""
        return self.addresses["VerificationCourt"]


def load_deployment(
    src: Deployment | Path | str,
    *,
    chain_id: int | None = None,
    require: Sequence[str] = (),
    hint: str = DEPLOYMENT_HINT,
) -> Deployment:
    """The one way to get a :class:`Deployment`: `src` is one already (returned as it is), a
    deployment file (read bounded, :func:`load_deployment_file`), or, with `chain_id`, a directory
    holding ``<chainId>.json``. With `chain_id` the deployment must be for that chain; `require`
    names contracts whose addresses it must hold. Raises :class:`DeploymentFileError` (one line,
    naming the file; `hint` says what to do when it is missing)."""
    path: Path | None = None
    if isinstance(src, Deployment):
        deployment = src
    else:
        path = Path(src)
        if chain_id is not None and path.is_dir():
            path = deployment_path(chain_id, path)
        deployment = load_deployment_file(path, hint=hint)
    where = "the deployment" if path is None else shown_path(path)
    if chain_id is not None and deployment.chain_id != chain_id:
        raise DeploymentFileError(f"{where} is for chain {deployment.chain_id}, not chain {chain_id}")
    missing = [name for name in require if name not in deployment.addresses]
    if missing:
        raise DeploymentFileError(f"{where} lacks addresses for {', '.join(missing)}; redeploy or fix the file")
    return deployment


def write_deployment(deployment: Deployment, directory: Path = DEFAULT_DEPLOYMENTS_DIR) -> Path:
    """Writes the deployment file atomically (:func:`depin.atomicfile.write_atomically`, mode 0644)
    and returns its path."""
    path = deployment_path(deployment.chain_id, directory)
    write_atomically(path, deployment.to_json() + "\n", mode=0o644)
    return path
