"""Indexer configuration: one pydantic model, read from the environment (devnet defaults).

===========================  ==========================================  ==============================
environment variable         field                                       devnet default
===========================  ==========================================  ==============================
``DEPIN_RPC_URL``            ``rpc_url``                                 ``http://127.0.0.1:8545``
``DEPIN_REDIS_URL``          ``redis_url``                               ``redis://127.0.0.1:6379/0``
``DEPIN_DEPLOYMENT``         ``deployment_file``                         ``.devnet/deployments/31337.json``
``DEPIN_CONFIRMATIONS``      ``confirmations``                           ``0``
``DEPIN_FINALITY_DEPTH``     ``finality_depth``                          ``64``
``DEPIN_POLL_INTERVAL``      ``poll_interval`` (seconds)                 ``0.5``
``DEPIN_WS_URL``             ``ws_url`` (new-head subscription)          a local ``rpc_url`` as ``ws://``
``DEPIN_MAX_RANGE``          ``max_range`` (blocks per ``eth_getLogs``)  ``5000``
``DEPIN_MAX_LOGS_BYTES``     ``max_logs_bytes`` (one ``eth_getLogs``)    ``33554432`` (32 MiB; 0: no budget)
``DEPIN_NAMESPACE``          ``namespace`` (Redis key prefix root)       ``depin``
``DEPIN_STREAM_MAX_LEN``     ``stream_max_len`` (events stream entries)  ``100000`` (0: unbounded)
``DEPIN_STREAM_MAX_AGE``     ``stream_max_age`` (seconds)                ``604800`` (0: no age limit)
``DEPIN_COMPACT_AFTER``      ``compact_after`` (blocks past finality)    ``7200`` (-1: never compact)
``DEPIN_MAX_STREAMS``        ``explorer_max_streams`` (live pages)       ``100`` (more: HTTP 503)
``DEPIN_API_MAX_REQUESTS``   ``api_max_requests`` (API, in flight)       ``8`` (more: HTTP 503)
===========================  ==========================================  ==============================

The ``eth_getLogs`` range (``max_range``, ``max_logs_bytes``): the indexer adapts the block range of
each request to the logs it finds (:mod:`indexer.follower`): toward 4,000 logs and a quarter of
``max_logs_bytes`` per answer. An answer larger than ``max_logs_bytes`` (jobs with big specs: a 1 MB
spec is a 2 MB log) is dropped without being read and asked again over half the range, so one
answer, and one batch in memory and in the Redis commit, stays under it; a single block larger than
the budget (``min_range`` blocks) is still read whole, up to the gateway's cap of 64 MiB for any one
answer (``depin.chain.http.RPC_MAX_BYTES``: far above a block's logs). Raise it when the node is
local and answers are cheap; lower it when a hosted node caps its answers' size (their errors also
halve the range). ``rpc_timeout`` bounds each request as a whole, the answer's transfer included.

New heads (``ws_url``): the indexer subscribes to ``newHeads`` (``eth_subscribe``) at ``ws_url`` and
indexes each new block as soon as the node announces it; the poll every ``poll_interval`` stays as
the safety net (a refused or lost subscription is retried with backoff and never stops indexing).
Unset, it is ``rpc_url`` with the scheme swapped (``http`` -> ``ws``) when the node is local (anvil
serves both on one port), and nothing (poll only) for a remote node, whose WebSocket endpoint is
usually elsewhere: set it. ``off`` turns subscriptions off (:func:`depin.chain.heads.websocket_url`).

Retention (bounded memory): the events stream is trimmed to about ``stream_max_len`` entries on every
append and to ``stream_max_age`` seconds by the retention pass (every ``retention_interval``
seconds, once the indexer has caught up); a settled job (Finalized, Resolved, Expired, Cancelled)
whose settling block is more than ``2 * finality_depth + compact_after`` blocks below the head
(below the blocks a rollback can reach: undo records are kept twice the finality depth, see
:mod:`indexer.follower`) is compacted to a summary hash (``depin.keys.SUMMARY_FIELDS``): never within the reorg window. Totals
and indexes are unaffected; the dropped fields (spec, history, seats, ...) are rebuilt by
re-indexing from the deployment block (``python -m indexer --reset``).

A config file (``depin indexer run --config FILE``, or ``DEPIN_CONFIG``) gives the same fields in an
``[indexer]`` table or at its top level. It may be an executor's ``depin.toml``
(:mod:`depin.config`): the indexer then takes ``[network] rpc_url`` and ``deployment`` and
``[redis] url`` and ``namespace`` from it, an ``[indexer]`` table overrides them, and every other
table is left to the executor (:func:`read_config_file`).

Per network: on a devnet, confirmations 0 (reorg detection still on); on a public testnet, a few
confirmations (e.g. 3 on Sepolia) and a finality depth of at least the chain's finality (64 blocks
is two Ethereum epochs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from depin.chain.heads import websocket_url
from depin.config import ConfigError, read_toml_file
from depin.deployment import REPO_ROOT

DEFAULT_RPC_URL = "http://127.0.0.1:8545"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DEPLOYMENT_FILE = REPO_ROOT / ".devnet" / "deployments" / "31337.json"

_ENV = {
    "rpc_url": "DEPIN_RPC_URL",
    "redis_url": "DEPIN_REDIS_URL",
    "deployment_file": "DEPIN_DEPLOYMENT",
    "confirmations": "DEPIN_CONFIRMATIONS",
    "finality_depth": "DEPIN_FINALITY_DEPTH",
    "poll_interval": "DEPIN_POLL_INTERVAL",
    "ws_url": "DEPIN_WS_URL",
    "max_range": "DEPIN_MAX_RANGE",
    "max_logs_bytes": "DEPIN_MAX_LOGS_BYTES",
    "namespace": "DEPIN_NAMESPACE",
    "stream_max_len": "DEPIN_STREAM_MAX_LEN",
    "stream_max_age": "DEPIN_STREAM_MAX_AGE",
    "compact_after": "DEPIN_COMPACT_AFTER",
    "explorer_max_streams": "DEPIN_MAX_STREAMS",
    "api_max_requests": "DEPIN_API_MAX_REQUESTS",
}


class IndexerConfig(BaseModel):
    """Everything the indexer needs to follow one deployment into one Redis."""

    model_config = ConfigDict(extra="forbid")

    rpc_url: str = DEFAULT_RPC_URL
    redis_url: str = DEFAULT_REDIS_URL
    deployment_file: Path = DEFAULT_DEPLOYMENT_FILE
    confirmations: int = Field(0, ge=0, description="index up to head - confirmations")
    finality_depth: int = Field(
        64,
        ge=1,
        description="a reorg deeper than this raises ReorgTooDeep; undo logs and block hashes are kept twice this deep "
        "(a reorg to a shorter chain leaves a full finality depth below the new cursor)",
    )
    poll_interval: float = Field(0.5, gt=0)
    ws_url: str | None = Field(
        None, description="newHeads subscription endpoint (ws:// or wss://); unset: a local rpc_url as ws://; 'off': poll only"
    )
    max_range: int = Field(5000, ge=1, description="largest eth_getLogs block range")
    min_range: int = Field(1, ge=1, description="smallest eth_getLogs block range")
    max_logs_bytes: int = Field(
        32 * 2**20,
        ge=0,
        description="bytes of one eth_getLogs answer: a larger one is dropped and its range halved (down to "
        "min_range, whose answer is taken up to the gateway's 64 MiB cap); the range aims at a quarter of it; 0: none",
    )
    namespace: str = "depin"
    # Retention (see the module doc).
    stream_max_len: int = Field(100_000, ge=0, description="events stream length kept (approximate); 0: unbounded")
    stream_max_age: float = Field(7 * 86400.0, ge=0, description="seconds of events stream kept; 0: no age limit")
    compact_after: int = Field(7200, ge=-1, description="blocks past the finality depth before a settled job is compacted; -1: never")
    retention_interval: float = Field(60.0, gt=0, description="seconds between retention passes")
    compact_batch: int = Field(1000, ge=1, description="jobs compacted per Redis script call")
    explorer_max_streams: int = Field(
        100, ge=1, description="concurrent /explorer/stream connections (live pages) the API serves; more get HTTP 503"
    )
    api_max_requests: int = Field(
        8, ge=1, description="requests the API serves at a time, each until its answer is read (slow clients hold "
        "their page: this bounds the memory they take); more get HTTP 503 (indexer.api.InFlightLimit)"
    )
    # Transport tuning (not in the environment table: rarely changed).
    rpc_timeout: float = Field(30.0, gt=0, description="seconds per JSON-RPC request, its whole answer included")
    rpc_retries: int = Field(5, ge=0, description="retries of a transient RPC failure within one call")
    backoff_base: float = Field(0.05, gt=0, description="first retry delay, doubled per attempt")
    backoff_cap: float = Field(5.0, gt=0, description="longest delay between retries, and between polls while the node is down")

    @model_validator(mode="after")
    def _ranges(self) -> IndexerConfig:
        if self.min_range > self.max_range:
            raise ValueError(f"min_range ({self.min_range}) must not exceed max_range ({self.max_range})")
        websocket_url(self.rpc_url, self.ws_url)  # a ws_url that is neither ws(s):// nor 'off' is refused
        return self

    def resolved_ws_url(self) -> str | None:
        """The WebSocket URL the indexer subscribes at, or None (poll only): see the module doc."""
        return websocket_url(self.rpc_url, self.ws_url)

    @classmethod
    def from_env(cls, **overrides: Any) -> IndexerConfig:
        """Config from ``DEPIN_*`` environment variables, devnet defaults, then `overrides`."""
        values: dict[str, Any] = {}
        for field, var in _ENV.items():
            raw = os.environ.get(var)
            if raw is not None and raw.strip() != "":
                values[field] = raw.strip()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


# depin.toml (depin.config) tables and keys -> IndexerConfig fields: one file serves both programs.
_SHARED = {("network", "rpc_url"): "rpc_url", ("network", "deployment"): "deployment_file",
           ("redis", "url"): "redis_url", ("redis", "namespace"): "namespace"}


# The TOML kinds of IndexerConfig's numeric fields (the environment's strings are read laxly instead).
_TOML_KINDS: dict[Any, str] = {int: "an integer", float: "a number", bool: "true or false"}


def _is_kind(value: Any, annotation: Any) -> bool:
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)


def settings_from_toml(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """IndexerConfig fields from a parsed TOML file: the shared ``[network]`` and ``[redis]`` keys of
    a depin.toml, overridden by the ``[indexer]`` table (or, without one, by the top-level keys);
    other tables are ignored. A relative deployment path is taken from `base` (the file's folder)."""
    values: dict[str, Any] = {}
    for (table, key), field in _SHARED.items():
        section = data.get(table)
        if isinstance(section, dict) and key in section:
            values[field] = section[key]
    own = data.get("indexer")
    if isinstance(own, dict):
        values.update(own)
    else:
        values.update({k: v for k, v in data.items() if not isinstance(v, dict)})
    for key, value in values.items():  # TOML has types: "0.5" for a number is a mistake, not coerced
        info = IndexerConfig.model_fields.get(key)
        annotation = info.annotation if info is not None else None
        kind = _TOML_KINDS.get(annotation)
        if kind is not None and not _is_kind(value, annotation):
            raise ConfigError(f"{key} must be {kind}, not {value!r}")
    if "deployment_file" in values:
        given = values["deployment_file"]
        if not isinstance(given, str):
            raise ConfigError(f"deployment_file must be a path (a string), not {given!r}")
        values["deployment_file"] = base / Path(given).expanduser()
    return values


def read_config_file(path: Path) -> dict[str, Any]:
    """IndexerConfig fields from the TOML file at `path` (:func:`settings_from_toml`); a missing,
    huge or malformed file is one :class:`depin.config.ConfigError` line."""
    return settings_from_toml(read_toml_file(path), path.parent)
