"""``depin.toml``: the configuration file of an executor (provider, verifier and canary roles).

One file per executor. Every section is optional except where noted; defaults suit the local devnet.
Relative paths are resolved against the file's folder (a relative ``DEPIN_DEPLOYMENT`` against the
current folder, as the indexer and ``--deployment`` read it). An ``[indexer]`` table is the
indexer's (:mod:`indexer.config`: one file can serve both) and is ignored here. Example::

    [network]
    rpc_url = "http://127.0.0.1:8545"
    deployment = "deployments/31337.json"      # written by the deploy script (required)

    [redis]
    url = "redis://127.0.0.1:6379/0"           # the indexer's Redis; also the Celery broker
    namespace = "depin"                        # as the indexer's DEPIN_NAMESPACE

    [key]
    keystore = "keys/provider.json"            # encrypted JSON keystore (`depin keys new`)
    password_file = "keys/provider.pass"       # or the DEPIN_KEYSTORE_PASSWORD environment variable
    # dev_account = 1                          # devnet only: Anvil's public development key number

    [engine]
    docker_host = ""                           # empty: DOCKER_HOST, the Docker socket, else a Podman service
    state_dir = "state"                        # work folders, result store, Podman socket

    [executor]
    role = "provider"                          # provider | verifier | canary, or several joined by
                                               # commas ("provider,verifier": one executor, both roles)
    concurrency = 2                            # container runs at once (the `compute` queue)
    results_url = "http://127.0.0.1:8700"      # public base URL of this executor's result server
    results_bind = "127.0.0.1:8700"            # where the result server listens
    withdraw_threshold = "0"                   # withdraw earnings above this many tokens
    allow_unmounted_output = false             # without root, run anyway off a local devnet (see
                                               # executor/containers.py, "Output cap")
    result_retention_days = 7                  # days a settled job's archive and journal entry are
                                               # kept after settlement (0: for good)

    [verifier]                                 # the verifier role (issue 12)
    court_stake = "1000"                       # tokens kept staked in the VerificationCourt (staked at
                                               # start when short; 0: never stake, only use what is there)
    platform_class = 0                         # the court class to join (fixed at the first join)
    max_audits = 2                             # audit/jury seats in hand at once
    delivery_wait = 30                         # seconds a re-run with a result waits for the provider's
                                               # archive to be served before committing NOT_DELIVERED
    result_allow_networks = []                 # non-public networks a provider's result may be fetched
                                               # from (the devnet: ["127.0.0.0/8"]); empty: public only

    [canary]                                   # the canary role (devnet and operators)
    interval = 60                              # seconds between two canary jobs
    image = "depin/busybox@sha256:..."         # the canary jobs' image (required for the role)
    command = ["sh", "-c", "echo canary > /out/result"]
    reward = "1"                               # tokens per canary job
    max_open = 4                               # canary jobs in flight at once
    bind = "127.0.0.1:8710"                    # GET /canary/<jobId>: the fake digest (the bait)
    # [canary.requester] and [canary.signer] (each like [key]): the account that posts the canary
    # jobs and exposes them, and the CANARY_ROLE key that signs each exposure (it sends nothing).
    # Without them the executor's own account does all three, and holds the role: a canary is then
    # told apart on chain (requester == provider, the role); give both to hide them.

    [policy]
    images = []                                # allowed image digests ("sha256:..."); empty: any local image
    max_cpus = 2
    max_memory_mb = 1024
    max_runtime = 600
    max_output_mb = 64
    max_input_mb = 1024                        # all of one job's inputs (a tmpfs of that size at most)
    min_reward_per_cpu_second = "0"            # tokens per declared CPU-second
    max_concurrent_jobs = 4
    input_allow_networks = []                  # internal networks http(s) inputs may come from,
                                               # e.g. ["10.1.2.0/24"]; empty: public addresses only

Token amounts are decimal strings in whole tokens (``"0.001"``). Environment variables override the
file: ``DEPIN_RPC_URL``, ``DEPIN_REDIS_URL``, ``DEPIN_DEPLOYMENT``, ``DEPIN_NAMESPACE``,
``DEPIN_DOCKER_HOST``, ``DEPIN_KEYSTORE_PASSWORD`` (the password itself, never logged).
"""

from __future__ import annotations

import ipaddress
import math
import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from depin.deployment import TOKEN_DECIMALS, shown_path, to_wei
from depin.errors import DepinError


class ConfigError(DepinError, ValueError):
    """The configuration file is missing, unreadable or invalid."""


class _Section(BaseModel):
    # TOML has inf and nan: no setting takes them. Strict: a number, a flag or a list is given as one
    # (`max_cpus = "2"` or `allow_unmounted_output = 1` is an error, not coerced); only paths and token
    # amounts (a string keeps "0.1" exact) are also read from strings, each marked strict=False.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


UINT256_MAX = 2**256 - 1


def token_amount(value: Decimal, *, positive: bool = False) -> Decimal:
    """`value` (whole tokens) when its base units fit the contracts' uint256 and, with `positive`,
    it is at least one base unit (a smaller amount rounds to 0); else ValueError."""
    units = to_wei(value) if value.adjusted() <= 80 else UINT256_MAX + 1  # (no 10^999999-digit product)
    if units > UINT256_MAX:
        raise ValueError(f"{value} tokens is more than a uint256 holds (2^256 - 1 base units)")
    if positive and units < 1:
        raise ValueError(f"{value} tokens is less than one base unit (0.{'0' * (TOKEN_DECIMALS - 1)}1 tokens)")
    return value


class NetworkConfig(_Section):
    rpc_url: str = "http://127.0.0.1:8545"
    deployment: Path = Field(default=Path("deployments/31337.json"), strict=False)


class RedisConfig(_Section):
    url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "depin"


class KeyConfig(_Section):
    keystore: Path | None = Field(default=None, strict=False)
    password_file: Path | None = Field(default=None, strict=False)
    dev_account: int | None = Field(default=None, ge=0, le=9)


class EngineConfig(_Section):
    docker_host: str = ""
    state_dir: Path = Field(default=Path("state"), strict=False)


ROLE_NAMES = ("provider", "verifier", "canary")


def parse_roles(value: str | list[str] | tuple[str, ...]) -> str:
    """The canonical role string of an executor: ``provider``, ``verifier``, ``canary``, or several
    of them joined by commas in that order (``"verifier,provider"`` and ``["provider",
    "verifier"]`` both give ``"provider,verifier"``). ValueError for an unknown or repeated role."""
    parts = [p.strip() for p in (value.split(",") if isinstance(value, str) else value)]
    parts = [p for p in parts if p]
    unknown = [p for p in parts if p not in ROLE_NAMES]
    if unknown or not parts:
        raise ValueError(f"unknown executor role {','.join(unknown) or repr(value)}; one or more of {', '.join(ROLE_NAMES)}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"executor role {value!r} names a role twice")
    return ",".join(r for r in ROLE_NAMES if r in parts)


def _cidrs(value: list[str]) -> list[str]:
    """Networks in CIDR form, normalised (``127.0.0.2`` is ``127.0.0.2/32``)."""
    out = []
    for text in value:
        try:
            out.append(str(ipaddress.ip_network(text.strip())))
        except ValueError as exc:
            raise ValueError(f"not a network in CIDR form (such as 10.1.2.0/24): {exc}") from None
    return out


def parse_host_port(value: str) -> str:
    """`value` when it is ``HOST:PORT`` with a port from 1 to 65535 (a bind address), else ValueError."""
    _, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"must be HOST:PORT with a port from 1 to 65535, not {value!r}")
    return value


def env_number(
    name: str, default: float, *, minimum: float = 0, above: bool = False, integer: bool = False,
    env: Mapping[str, str] | None = None,
) -> float:
    """The number in environment variable `name` (unset or empty: `default`): finite, at least
    `minimum` (greater than it with `above`), whole with `integer`. Anything else is a
    :class:`ConfigError` naming the variable (``DEPIN_LEASE_TTL='-1': must be a number above 0``).
    For the executor's timing knobs, read as its modules load."""
    text = (os.environ if env is None else env).get(name, "").strip()
    if not text:
        return default
    want = f"{'a whole number' if integer else 'a number'} {'above' if above else 'at least'} {minimum:g}"
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r}: must be {want}") from None
    if not math.isfinite(value) or value < minimum or (above and value == minimum):
        raise ConfigError(f"{name}={text!r}: must be {want}")
    return value


def env_int(name: str, default: int, *, minimum: int = 0, above: bool = False, env: Mapping[str, str] | None = None) -> int:
    """:func:`env_number` for a whole number."""
    return int(env_number(name, default, minimum=minimum, above=above, integer=True, env=env))


class ExecutorConfig(_Section):
    role: str = "provider"
    concurrency: int = Field(default=2, ge=1, le=64)
    results_url: str = "http://127.0.0.1:8700"
    results_bind: str = "127.0.0.1:8700"
    withdraw_threshold: Decimal = Field(default=Decimal(0), strict=False, ge=0)
    verify_sample_rate: float = Field(default=1.0, ge=0, le=1)  # left from the removed volunteer verifier: ignored
    allow_unmounted_output: bool = False
    result_retention_days: float = Field(default=7, ge=0)  # after settlement; 0 keeps results for good

    @field_validator("role", mode="before")
    @classmethod
    def _roles(cls, value: Any) -> str:
        if not isinstance(value, (str, list, tuple)):
            raise ValueError("must be a role name, a comma-separated list of them, or a TOML list")  # noqa: TRY004 - pydantic reports ValueErrors
        return parse_roles(value)

    @field_validator("results_bind")
    @classmethod
    def _bind(cls, value: str) -> str:
        return parse_host_port(value)

    @field_validator("withdraw_threshold")
    @classmethod
    def _amount(cls, value: Decimal) -> Decimal:
        return token_amount(value)

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles this executor serves (``("provider", "verifier")``)."""
        return tuple(self.role.split(","))


class VerifierConfig(_Section):
    """``[verifier]``: the verifier role's court stake and limits."""

    court_stake: Decimal = Field(default=Decimal(1000), strict=False, ge=0)
    platform_class: int = Field(default=0, ge=0, le=255)
    max_audits: int = Field(default=2, ge=1, le=64)
    delivery_wait: float = Field(default=30, ge=0, le=3600)
    result_allow_networks: list[str] = Field(default_factory=list)

    @field_validator("result_allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return _cidrs(value)

    @field_validator("court_stake")
    @classmethod
    def _amount(cls, value: Decimal) -> Decimal:
        return token_amount(value)


class CanaryConfig(_Section):
    """``[canary]``: the canary operator's jobs and its bait endpoint."""

    interval: float = Field(default=60, gt=0)
    image: str = ""
    command: list[str] = Field(default_factory=lambda: ["sh", "-c", "echo canary > /out/result"])
    reward: Decimal = Field(default=Decimal(1), strict=False, gt=0)
    max_open: int = Field(default=4, ge=1, le=100)
    bind: str = "127.0.0.1:8710"
    requester: KeyConfig | None = None  # posts the canary jobs and exposes them (default: [key])
    signer: KeyConfig | None = None  # holds CANARY_ROLE and signs each exposure (default: [key])

    @field_validator("bind")
    @classmethod
    def _bind(cls, value: str) -> str:
        return parse_host_port(value)

    @field_validator("reward")
    @classmethod
    def _amount(cls, value: Decimal) -> Decimal:
        return token_amount(value, positive=True)


class PolicyConfig(_Section):
    images: list[str] = Field(default_factory=list)
    max_cpus: float = Field(default=2, gt=0)
    max_memory_mb: int = Field(default=1024, ge=6)
    max_runtime: int = Field(default=600, ge=1)
    max_output_mb: int = Field(default=64, ge=1)
    # All of one job's inputs together: their /in is a tmpfs of that size at most, whose pages are the
    # host's (not the job's memory limit), so a provider sizes it to its RAM.
    max_input_mb: int = Field(default=1024, ge=1, le=1024)
    min_reward_per_cpu_second: Decimal = Field(default=Decimal(0), strict=False, ge=0)
    max_concurrent_jobs: int = Field(default=4, ge=1)
    input_allow_networks: list[str] = Field(default_factory=list)

    @field_validator("input_allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return _cidrs(value)

    @field_validator("min_reward_per_cpu_second")
    @classmethod
    def _amount(cls, value: Decimal) -> Decimal:
        return token_amount(value)

    @field_validator("images")
    @classmethod
    def _digests(cls, value: list[str]) -> list[str]:
        """sha256:<64 hex>, lower-cased as digests are everywhere else: a digest written in capitals
        passed the dispatcher's check (which lower-cases) and failed the run's (which compared as
        written), so every job of that image was claimed and given up (found by review, stop 55)."""
        bad = [d for d in value if not (d.startswith("sha256:") and len(d) == 71 and all(c in "0123456789abcdefABCDEF" for c in d[7:]))]
        if bad:
            raise ValueError(f"image digests must be sha256:<64 hex>: {', '.join(bad)}")
        return [d.lower() for d in value]


class DepinConfig(_Section):
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    key: KeyConfig = Field(default_factory=KeyConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    indexer: dict[str, Any] = Field(default_factory=dict, exclude=True)  # the indexer's table (indexer.config): ignored
    source: Path | None = Field(default=None, exclude=True)  # the file it was read from

    def resolve_paths(self, base: Path) -> DepinConfig:
        """Relative paths made absolute against `base` (the config file's folder); a leading ``~`` is
        the user's home, as for the indexer (it was a folder named ``~`` below `base`: one file
        named two places; found by review, stop 56)."""

        def fix(p: Path | None) -> Path | None:  # `~` as the indexer reads it (indexer.config): the user's home
            if p is None:
                return None
            p = p.expanduser()
            return p if p.is_absolute() else (base / p).resolve()

        self.network.deployment = fix(self.network.deployment)  # type: ignore[assignment]
        for key in (self.key, self.canary.requester, self.canary.signer):
            if key is not None:
                key.keystore = fix(key.keystore)
                key.password_file = fix(key.password_file)
        self.engine.state_dir = fix(self.engine.state_dir)  # type: ignore[assignment]
        return self


MAX_CONFIG_BYTES = 1 << 20  # a real depin.toml is under 2 KB

_ENV_OVERRIDES = {
    "DEPIN_RPC_URL": ("network", "rpc_url"),
    "DEPIN_REDIS_URL": ("redis", "url"),
    "DEPIN_DEPLOYMENT": ("network", "deployment"),
    "DEPIN_NAMESPACE": ("redis", "namespace"),
    "DEPIN_DOCKER_HOST": ("engine", "docker_host"),
}


def read_toml_file(path: Path) -> dict[str, Any]:
    """The TOML table in `path`, bounded: at most MAX_CONFIG_BYTES, UTF-8; every failure (missing,
    unreadable, huge, binary, nested too deep, a path too long) is one :class:`ConfigError` line."""
    shown = shown_path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file {shown} not found (create one: see `depin executor start --help`)") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read config file {shown}: {reason}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {shown} is larger than {MAX_CONFIG_BYTES} bytes: not a depin.toml")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {shown} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {shown} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {shown} is nested too deeply: not a depin.toml") from None


def load_config(path: Path | None, *, env: dict[str, str] | None = None) -> DepinConfig:
    """Reads `path` (TOML), applies environment overrides, validates; raises :class:`ConfigError`."""
    env = dict(os.environ) if env is None else env
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        path = Path(path)
        data = read_toml_file(path)
        base = path.resolve().parent
    for var, (section, field) in _ENV_OVERRIDES.items():
        value = env.get(var, "").strip()
        if not value:
            continue
        if var == "DEPIN_DEPLOYMENT":  # relative to the current folder, as for the indexer and --deployment
            value = str((Path.cwd() / value).resolve())
        table = data.setdefault(section, {})
        if isinstance(table, dict):  # else not a table (redis = 1): validation says so below
            table[field] = value
    try:
        config = DepinConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path or 'config'}: {where}: {first['msg']}") from None
    config.source = path
    config.resolve_paths(base)
    if config.engine.state_dir.parent == config.engine.state_dir:  # "/", or a path that resolves to it
        raise ConfigError(
            f"{path or 'config'}: engine.state_dir: the file system's root ({config.engine.state_dir}) is not a "
            "folder of the executor's own (its work folders, result store and journal)"
        )
    return config
