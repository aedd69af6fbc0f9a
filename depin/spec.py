"""The job spec: its schema, its canonical bytes, and the check an executor makes before running it.

A job spec is a JSON object. Its canonical form (the bytes posted on chain in ``JobPosted`` and
hashed into ``specHash`` with keccak256) has sorted keys, no insignificant whitespace and UTF-8
encoding, so that the same spec always hashes to the same value. Schema, version 1::

    {
      "v": 1,
      "image": "depin/checksum@sha256:<64 hex>",     # repository@digest: the image is pinned
      "command": ["sha256sum", "/in/data"],          # argv, no shell; 1..64 strings
      "env": {"KEY": "value"},                       # optional
      "inputs": [                                    # optional; each mounted read-only at /in/<path>
        {"path": "data", "uri": "https://...|file:///...|data:;base64,...", "sha256": "<64 hex>"}
      ],
      "resources": {
        "cpus": 1,             # CPUs (fractional allowed), 0 < cpus <= 64
        "memory_mb": 64,       # memory limit, swap included, 6..65536
        "max_runtime": 60,     # wall-clock seconds, 1..86400 (the executor kills the job after it)
        "output_mb": 16        # cap on the output archive, 1..4096 (default 16)
      }
    }

Inside the container the job sees its inputs under ``/in`` (read-only), writes its results to
``/out`` and has a small writable ``/tmp``; everything else is read-only and there is no network.
The image digest is the content address of the image (``sha256:`` of its config, which is what
``docker images --no-trunc`` shows as the ID, or a registry's manifest digest): an executor runs an
image only when the local image matches it.

On chain, the job's ``cpuSeconds`` should be :func:`cpu_seconds` of its spec (the emission
schedule pays per declared CPU-second).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from depin.errors import SpecError

SPEC_VERSION = 1
IMAGE_RE = re.compile(r"^(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)@sha256:(?P<digest>[0-9a-f]{64})$")
# An input name starts with a letter or digit, so it can never be "." / ".." nor collide with the
# executor's staging folder (".fetch-*", executor/inputs.py): keep that first character rule.
INPUT_PATH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_SPEC_BYTES = 16_384
INPUT_SCHEMES = ("http://", "https://", "file://", "data:")


def canonical_json(spec: Any) -> bytes:
    """The canonical bytes of `spec`: sorted keys, compact separators, UTF-8."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def spec_hash(spec_bytes: bytes) -> bytes:
    """keccak256 of the spec bytes: the `specHash` stored on chain."""
    return keccak(spec_bytes)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class InputSpec(_Strict):
    """One input file: fetched from `uri`, checked against `sha256`, mounted at ``/in/<path>``."""

    path: str
    uri: str
    sha256: str

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not INPUT_PATH_RE.match(value) or value in (".", ".."):
            raise ValueError("must be a plain file name (letters, digits, '.', '_', '-'; no '/', at most 128)")
        return value

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        if not value.startswith(INPUT_SCHEMES):
            raise ValueError(f"must start with one of {', '.join(INPUT_SCHEMES)}")
        return value

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, value: str) -> str:
        value = value.removeprefix("0x")
        if not SHA256_RE.match(value):
            raise ValueError("must be 64 lower-case hex digits")
        return value


class Resources(_Strict):
    cpus: float = Field(gt=0, le=64)
    memory_mb: int = Field(ge=6, le=65_536)
    max_runtime: int = Field(ge=1, le=86_400)
    output_mb: int = Field(default=16, ge=1, le=4_096)


class JobSpec(_Strict):
    """A parsed, validated job spec (version 1)."""

    v: Literal[1] = SPEC_VERSION
    image: str
    command: list[str] = Field(min_length=1, max_length=64)
    env: dict[str, str] = Field(default_factory=dict)
    inputs: list[InputSpec] = Field(default_factory=list, max_length=32)
    resources: Resources

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not IMAGE_RE.match(value):
            raise ValueError("must be REPOSITORY@sha256:<64 hex digits> (an image pinned by digest)")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name in value if not ENV_NAME_RE.match(name)]
        if bad:
            raise ValueError(f"bad variable name(s): {', '.join(map(repr, bad))}")
        return value

    @field_validator("inputs")
    @classmethod
    def _unique_paths(cls, value: list[InputSpec]) -> list[InputSpec]:
        paths = [i.path for i in value]
        if len(set(paths)) != len(paths):
            raise ValueError("two inputs share a path")
        return value

    @property
    def image_repository(self) -> str:
        return self.image.split("@", 1)[0]

    @property
    def image_digest(self) -> str:
        """``sha256:<hex>``."""
        return self.image.split("@", 1)[1]

    def to_bytes(self) -> bytes:
        """The canonical bytes to post (defaults included, so the bytes say everything)."""
        return canonical_json(self.model_dump(mode="json"))

    def hash(self) -> bytes:
        return spec_hash(self.to_bytes())


def cpu_seconds(spec: JobSpec) -> int:
    """The CPU-seconds a job may use at most: cpus x max_runtime, rounded up (at least 1)."""
    return max(1, math.ceil(spec.resources.cpus * spec.resources.max_runtime))


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"]) or "spec"
        parts.append(f"{where}: {item['msg']}")
    more = f" (+{error.error_count() - 3} more)" if error.error_count() > 3 else ""
    return "; ".join(parts) + more


def parse_spec(data: bytes | str | dict[str, Any], expected_hash: bytes | str | None = None) -> JobSpec:
    """Parses and validates spec bytes (or an already decoded object); raises :class:`SpecError`.

    With `expected_hash` (the on-chain ``specHash``), the bytes must hash to it: an executor never
    runs a spec that differs from what the requester paid for.
    """
    if isinstance(data, dict):
        obj = data
        raw = canonical_json(data)
    else:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if len(raw) > MAX_SPEC_BYTES:
            raise SpecError(f"spec is {len(raw)} bytes; the limit is {MAX_SPEC_BYTES}")
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SpecError(f"spec is not UTF-8 JSON: {exc}") from None
    if expected_hash is not None:
        expected = expected_hash if isinstance(expected_hash, bytes) else bytes.fromhex(expected_hash.removeprefix("0x"))
        actual = spec_hash(raw)
        if actual != expected:
            raise SpecError(f"keccak256(spec) is 0x{actual.hex()}, not the on-chain specHash 0x{expected.hex()}")
    if not isinstance(obj, dict):
        raise SpecError("spec must be a JSON object")
    if obj.get("v") != SPEC_VERSION:
        raise SpecError(f"unsupported spec version {obj.get('v')!r}; this executor knows version {SPEC_VERSION}")
    try:
        return JobSpec.model_validate(obj)
    except ValidationError as exc:
        raise SpecError(f"invalid spec: {_describe(exc)}") from None


def example_spec(n: int = 0, **extra: Any) -> bytes:
    """A ~300-byte example spec (a checksum job over one input), distinct for each `n`.

    For gas and indexer benchmarks: the bytes are realistic, the image and input are not real.
    """
    spec = {
        "command": ["sha256sum", "/in/a"],
        "image": "depin/checksum@sha256:" + "ab" * 32,
        "inputs": [{"path": "a", "sha256": "cd" * 32, "uri": f"file:///in/{n}"}],
        "resources": {"cpus": 1, "max_runtime": 60, "memory_mb": 64},
        "v": 1,
        **extra,
    }
    return canonical_json(spec)
