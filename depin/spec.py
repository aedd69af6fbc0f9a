"""The job spec: its schema, its canonical bytes, and the check an executor makes before running it.

A job spec is a JSON object. Its canonical form (the bytes posted on chain in ``JobPosted`` and
hashed into ``specHash`` with keccak256) is the JSON Canonicalization Scheme, RFC 8785 (JCS): keys
sorted by their UTF-16 code units, no insignificant whitespace, strings with the minimal escapes
(only quote, backslash and control characters; non-ASCII as UTF-8), numbers as ECMAScript prints
them (``1``, ``1.0`` and ``1e0`` are all ``1``; ``0.5`` is ``0.5``), UTF-8 bytes. Any client in any
language with a JCS library derives the same bytes, hence the same specHash. Numbers in a spec are
plain JSON numbers: the integer fields must hold integral values (written without a fraction:
``64``), ``cpus`` may be fractional; integers beyond 2^53 are not representable in JCS and make a
spec invalid. Spec bytes that are not the JCS form of their own parse (``{"cpus":1.0}``, unsorted
keys, an escaped printable character, spaces) are *non-canonical*: the indexer marks them
``specValid=0`` and executors never run them, so one logical job has one posted encoding. Write
every field, defaults included (as ``depin job post --dry-run`` prints them): a spec that leaves
out ``env`` or ``output_mb`` is canonical too, but hashes differently from the one that spells them
out. Schema, version 1::

    {
      "v": 1,
      "image": "depin/checksum@sha256:<64 hex>",     # repository@digest: the image is pinned
      "command": ["sha256sum", "/in/data"],          # argv, no shell; 1..64 strings
      "env": {"KEY": "value"},                       # optional
      "inputs": [                                    # optional; each mounted read-only at /in/<path>
        {"path": "data", "uri": "https://...|file:///...|data:;base64,...", "sha256": "<64 hex>"}
      ],
      "resources": {
        "cpus": 1,             # CPUs (fractional allowed), 0.01 <= cpus <= 64
        "memory_mb": 64,       # memory limit, swap included, 6..65536
        "max_runtime": 60,     # wall-clock seconds, 1..86400 (the executor kills the job after it)
        "output_mb": 16        # cap on the output archive, 1..4096 (default 16)
      },
      "verify": "reexec",                            # optional: "reexec" (default) or "none"
      "output": {"match": ["result.json", "data/**/*.csv"]},  # optional: the part that must match
      "delivery": {"encrypt_to": "0x02..."}          # optional: the requester's secp256k1 public key
    }

``verify`` says how the result is checked: ``"reexec"`` (the default) makes the job auditable by
re-execution; ``"none"`` declares it not re-executable: it is settled optimistically, never audited,
and shown as such to everyone. ``output.match`` is the output selector (iExec's determinism file):
when present, what independent runs must agree on (and what a provider commits to) is the *match
digest* over the selected entries of ``out/`` only (:mod:`depin.outputs` defines the patterns and
the digest); without it, the whole result archive. These two fields are the exception to "write
every field": :meth:`JobSpec.to_bytes` leaves ``verify`` out when it is ``"reexec"`` and ``output``
out when there is no selector, so every spec written before they existed keeps its bytes and its
specHash (a spec that spells ``"verify":"reexec"`` out is canonical too, and hashes differently).

``delivery.encrypt_to`` asks for an encrypted delivery (:mod:`depin.delivery`): the executor seals
the result archive and the commitment's salt to this secp256k1 public key (33 bytes compressed or
65 uncompressed, hex, ``0x`` optional; ``depin keys pubkey`` prints the requester's) and publishes
the sealed archive under its content address. Only the requester can read the result; anyone can
check the delivered bytes against the address. Left out of the bytes when absent, like ``output``.
:meth:`depin.client.Client.post_job` and ``depin job post`` add it by default (the poster's own
key, :func:`with_delivery`) to a spec that has none, unless told not to (``seal=False``,
``--clear``); the key is then in the posted bytes and the specHash like any other field.

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

import rfc8785
from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from depin.delivery import DeliveryError, parse_public_key
from depin.errors import SpecError
from depin.outputs import check_patterns

SPEC_VERSION: Literal[1] = 1
# Every pattern ends in \Z, never $: $ also matches before a final newline, so "x\n" would pass (review).
IMAGE_RE = re.compile(r"^(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)@sha256:(?P<digest>[0-9a-f]{64})\Z")
# An input name starts with a letter or digit, so it can never be "." / ".." nor collide with the
# executor's staging folder (".fetch-*", executor/inputs.py): keep that first character rule.
INPUT_PATH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
MAX_SPEC_BYTES = 16_384
# Arrays and objects nest at most this deep in a spec the index calls valid (a version-1 spec nests
# 3 deep; the HTTP API's serializer refuses values nested ~255 deep). The indexer's check_spec
# enforces it, with MAX_SPEC_BYTES; parse_spec's schema rejects any deeper spec anyway.
MAX_SPEC_DEPTH = 64
MIN_CPUS = 0.01
MAX_CPUS = 64
INPUT_SCHEMES = ("http://", "https://", "file://", "data:")


def nested_deeper(text: str, limit: int) -> bool:
    """Whether JSON `text` nests arrays/objects deeper than `limit` (brackets inside strings do not
    count). Two C-speed counts decide for any ordinary text; only a text with more brackets than
    `limit` is walked, without recursion (json's C scanner recurses per level)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "[" or ch == "{":
            depth += 1
            if depth > limit:
                return True
        elif ch == "]" or ch == "}":
            depth -= 1
    return False


def canonical_json(spec: Any) -> bytes:
    """The canonical bytes of `spec` by RFC 8785 (JCS); raises :class:`SpecError` for a value JCS
    cannot represent (an integer beyond 2^53, NaN, a lone surrogate, a non-JSON type)."""
    try:
        return rfc8785.dumps(spec)
    except (rfc8785.CanonicalizationError, UnicodeError, ValueError, TypeError) as exc:
        raise SpecError(f"the spec has a value RFC 8785 (JCS) cannot represent: {exc}") from None


def noncanonical_reason(raw: bytes, parsed: Any) -> str | None:
    """Why `raw` is not the RFC 8785 form of `parsed` (its own parse), or None when it is."""
    try:
        canonical = canonical_json(parsed)
    except SpecError as exc:
        return str(exc)
    if canonical == raw:
        return None
    at = next((i for i, (a, b) in enumerate(zip(raw, canonical)) if a != b), min(len(raw), len(canonical)))
    return (
        f"spec bytes are not canonical JSON (RFC 8785 / JCS): they first differ from their canonical form at "
        f"byte {at} ({raw[at:at + 12]!r} instead of {canonical[at:at + 12]!r}); post the canonical bytes"
    )


def _json_object(raw: bytes) -> Any:
    """`raw` parsed as UTF-8 JSON; SpecError otherwise (not UTF-8, not JSON, nested past the
    recursion limit, or an integer of over 4,300 digits, which json raises as a plain ValueError)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise SpecError(f"spec is not UTF-8 JSON: {str(exc)[:200]}") from None


def check_canonical(raw: bytes) -> None:
    """Raises :class:`SpecError` unless `raw` is a JSON document in its RFC 8785 canonical form."""
    parsed = _json_object(raw)
    reason = noncanonical_reason(raw, parsed)
    if reason is not None:
        raise SpecError(reason)


def check_spec_size(raw: bytes, what: str = "spec") -> None:
    """Raises :class:`SpecError` when `raw` is longer than :data:`MAX_SPEC_BYTES`: every executor
    and the indexer refuse such bytes, so a job posted with them could never run."""
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{what} is {len(raw)} bytes; the limit is {MAX_SPEC_BYTES}")


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
    # At least 0.01 (the engines' smallest CPU quota): a smaller value becomes NanoCpus 0, which
    # the engine reads as no limit at all.
    cpus: float = Field(ge=MIN_CPUS, le=MAX_CPUS)
    memory_mb: int = Field(ge=6, le=65_536)
    max_runtime: int = Field(ge=1, le=86_400)
    output_mb: int = Field(default=16, ge=1, le=4_096)


class OutputSelector(_Strict):
    """The part of ``out/`` whose match digest independent runs must agree on (see
    :mod:`depin.outputs`): 1 to 64 patterns relative to ``out/``."""

    match: list[str]

    @field_validator("match")
    @classmethod
    def _match(cls, value: list[str]) -> list[str]:
        return check_patterns(value)


class Delivery(_Strict):
    """How the result reaches the requester: ``encrypt_to`` its secp256k1 public key (hex)."""

    encrypt_to: str

    @field_validator("encrypt_to")
    @classmethod
    def _encrypt_to(cls, value: str) -> str:
        try:
            parse_public_key(value)
        except DeliveryError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def public_key(self) -> bytes:
        """The recipient's compressed public key (33 bytes)."""
        return parse_public_key(self.encrypt_to)


VerifyMode = Literal["reexec", "none"]


class JobSpec(_Strict):
    """A parsed, validated job spec (version 1)."""

    v: Literal[1] = SPEC_VERSION
    image: str
    command: list[str] = Field(min_length=1, max_length=64)
    env: dict[str, str] = Field(default_factory=dict)
    inputs: list[InputSpec] = Field(default_factory=list, max_length=32)
    resources: Resources
    verify: VerifyMode = "reexec"
    output: OutputSelector | None = None
    delivery: Delivery | None = None

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not IMAGE_RE.match(value):
            raise ValueError("must be REPOSITORY@sha256:<64 hex digits> (an image pinned by digest)")
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        # An argument is a C string to the kernel: engines refuse or cut one holding NUL, and not
        # alike (so two honest runs could differ).
        bad = [i for i, arg in enumerate(value) if "\x00" in arg]
        if bad:
            raise ValueError(f"argument(s) {', '.join(map(str, bad))} contain a NUL character")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name in value if not ENV_NAME_RE.match(name)]
        if bad:
            raise ValueError(f"bad variable name(s): {', '.join(map(repr, bad))}")
        # The OCI runtime refuses to start a container whose environment holds NUL: a job that can
        # never start, which a provider would hold and retry until its deadline (review, stop 36).
        bad = [name for name, text in value.items() if "\x00" in text]
        if bad:
            raise ValueError(f"the value of {', '.join(map(repr, bad))} contains a NUL character")
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

    @property
    def match(self) -> list[str] | None:
        """The output selector's patterns, or None: the whole result must match."""
        return None if self.output is None else list(self.output.match)

    @property
    def encrypt_to(self) -> bytes | None:
        """The compressed public key the result is sealed to, or None: a plaintext delivery."""
        return None if self.delivery is None else self.delivery.public_key

    def to_bytes(self) -> bytes:
        """The canonical bytes to post: defaults included, so the bytes say everything, except
        ``verify`` at its default and an absent ``output`` or ``delivery`` (see the module doc)."""
        data = self.model_dump(mode="json")
        for optional in ("output", "delivery"):
            if data.get(optional) is None:
                data.pop(optional, None)
        if data.get("verify") == "reexec":
            data.pop("verify", None)
        return canonical_json(data)

    def hash(self) -> bytes:
        return spec_hash(self.to_bytes())


def with_delivery(spec: JobSpec | bytes, public_key: str | bytes) -> bytes:
    """The canonical bytes of `spec` with ``delivery.encrypt_to`` set to `public_key` (any form
    :func:`depin.delivery.parse_public_key` takes; written compressed, ``0x``-hex). Every other field
    stays as it was: a :class:`JobSpec` gives :meth:`JobSpec.to_bytes` plus the field, raw
    (canonical) bytes keep what they spell out and what they leave out. This is what
    :meth:`depin.client.Client.post_job` posts when it seals a result to the poster by default; the
    bytes are canonical, so the specHash covers the key and an executor reads it from the posted
    spec. :class:`SpecError` for a key that is not on the curve, bytes that do not parse, or a
    result over :data:`MAX_SPEC_BYTES` (the key adds about 90 bytes)."""
    try:
        key = "0x" + parse_public_key(public_key).hex()
    except DeliveryError as exc:
        raise SpecError(f"delivery.encrypt_to: {exc}") from None
    if isinstance(spec, JobSpec):
        sealed = spec.model_copy(update={"delivery": Delivery(encrypt_to=key)}).to_bytes()
    else:
        obj = _json_object(bytes(spec))
        if not isinstance(obj, dict):
            raise SpecError("spec must be a JSON object")
        obj["delivery"] = {"encrypt_to": key}
        sealed = canonical_json(obj)
    check_spec_size(sealed, "the spec with its delivery key")
    return sealed


def cpu_seconds(spec: JobSpec) -> int:
    """The CPU-seconds a job may use at most: cpus x max_runtime, rounded up (at least 1)."""
    return max(1, math.ceil(spec.resources.cpus * spec.resources.max_runtime))


# What a provider's claim policy keeps of a job's submit window (the on-chain maxRuntime) beyond the
# spec's runtime, by default (executor.policy: DEPIN_SUBMIT_MARGIN, DEPIN_INPUT_MARGIN): stopping the
# container at its runtime, archiving and submitting; and fetching http(s) inputs.
POLICY_SUBMIT_MARGIN = 45
POLICY_INPUT_MARGIN = 30


def fetches_http(spec: JobSpec) -> bool:
    """Whether the job has an http(s) input (its submit window must leave POLICY_INPUT_MARGIN more)."""
    return any(i.uri.startswith(("http://", "https://")) for i in spec.inputs)


def policy_window(spec: JobSpec, submit_margin: int = POLICY_SUBMIT_MARGIN, input_margin: int = POLICY_INPUT_MARGIN) -> int:
    """The shortest submit window a provider's claim policy takes for `spec` (its runtime and the
    margins)."""
    return spec.resources.max_runtime + submit_margin + (input_margin if fetches_http(spec) else 0)


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"]) or "spec"
        parts.append(f"{where}: {item['msg']}")
    more = f" (+{error.error_count() - 3} more)" if error.error_count() > 3 else ""
    return "; ".join(parts) + more


def parse_spec(data: bytes | str | dict[str, Any], expected_hash: bytes | str | None = None) -> JobSpec:
    """Parses and validates spec bytes (or an already decoded object); raises :class:`SpecError`.

    With `expected_hash` (the on-chain ``specHash``), the bytes must hash to it and be canonical
    (RFC 8785): an executor never runs a spec that differs from what the requester paid for, nor
    one posted in a non-canonical encoding.
    """
    if isinstance(data, dict):
        obj = data
        raw = canonical_json(data)
        check_spec_size(raw, "the canonical spec")  # the bytes that would be posted
    else:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        check_spec_size(raw)
        obj = _json_object(raw)
    if expected_hash is not None:
        expected = expected_hash if isinstance(expected_hash, bytes) else bytes.fromhex(expected_hash.removeprefix("0x"))
        actual = spec_hash(raw)
        if actual != expected:
            raise SpecError(f"keccak256(spec) is 0x{actual.hex()}, not the on-chain specHash 0x{expected.hex()}")
        reason = noncanonical_reason(raw, obj)
        if reason is not None:
            raise SpecError(reason)
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
