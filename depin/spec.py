"""Canonical job spec bytes.

A job spec is JSON; its canonical form (the bytes posted on chain and hashed into `specHash`) has
sorted keys, no insignificant whitespace and UTF-8 encoding, so that the same spec always hashes to
the same value. (The full spec schema arrives with the requester tools.)
"""

from __future__ import annotations

import json
from typing import Any

from eth_utils import keccak


def canonical_json(spec: dict[str, Any]) -> bytes:
    """The canonical bytes of `spec`: sorted keys, compact separators, UTF-8."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def spec_hash(spec_bytes: bytes) -> bytes:
    """keccak256 of the spec bytes: the `specHash` stored on chain."""
    return keccak(spec_bytes)


def example_spec(n: int = 0, **extra: Any) -> bytes:
    """A ~300-byte example spec (a checksum job over one input), distinct for each `n`."""
    spec = {
        "command": ["sha256sum", "/in/a"],
        "image": "depin/checksum@sha256:" + "ab" * 32,
        "inputs": [{"path": "a", "sha256": "cd" * 32, "uri": f"file:///in/{n}"}],
        "resources": {"cpus": 1, "max_runtime": 60, "memory_mb": 64},
        "v": 1,
        **extra,
    }
    return canonical_json(spec)
