"""The compiled contracts shipped inside the package: ABIs for clients, bytecode for deploys.

Providers and requesters install the Python package only (no compiler), so each contract's ABI and
bytecode ship as ``depin/artifacts/<Contract>.json`` package data, written by
``tools/export_artifacts.py`` (``make artifacts``); ``tests/test_artifacts.py`` fails when they no
longer match a fresh compile of ``contracts/``. Each file holds ``contractName``, ``sourceId``,
``abi``, ``bytecode`` (creation code), ``deployedBytecode`` (runtime code), ``compiler``
(``name``, ``version``, ``evmVersion``, ``optimizer``) and ``sourceHash`` (sha256 of the source file).

    >>> from depin.artifacts import load_abi
    >>> market = w3.eth.contract(address=addr, abi=load_abi("JobMarket"))
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

_PACKAGE = "depin"
_FOLDER = "artifacts"


class UnknownArtifactError(LookupError):
    """No shipped artifact has that name."""


def _folder() -> Traversable:
    return resources.files(_PACKAGE).joinpath(_FOLDER)


def available() -> list[str]:
    """The names of the shipped contracts, sorted."""
    folder = _folder()
    if not folder.is_dir():
        return []
    return sorted(entry.name[: -len(".json")] for entry in folder.iterdir() if entry.name.endswith(".json"))


@cache
def _load(name: str) -> str:
    entry = _folder().joinpath(f"{name}.json")
    if not name or "/" in name or "\\" in name or not entry.is_file():
        names = available()
        listing = ", ".join(names) if names else "none (package data missing: run `make artifacts`)"
        raise UnknownArtifactError(f"no shipped artifact named {name!r}; available: {listing}")
    return entry.read_text(encoding="utf-8")


def load_artifact(name: str) -> dict[str, Any]:
    """The whole artifact of contract `name` (a fresh copy: callers may modify it)."""
    return json.loads(_load(name))


def load_abi(name: str) -> list[dict[str, Any]]:
    """The ABI of contract `name`, e.g. ``load_abi("JobMarket")``."""
    return load_artifact(name)["abi"]


@cache
def _runtime_code(name: str) -> bytes:
    return bytes.fromhex(load_artifact(name)["deployedBytecode"].removeprefix("0x"))


def runtime_code_matches(name: str, code: bytes) -> bool:
    """Whether `code` (what ``eth_getCode`` answers for an address) is the runtime code of the
    shipped contract `name`, its immutables aside.

    The compiler leaves each immutable as ``PUSH32 0`` in the runtime code and the constructor
    writes the value in place, so every byte must match but the 32 bytes after a ``PUSH32`` whose
    operand is zero in the artifact. The metadata trailer (its CBOR, whose last two bytes are its
    length) matches byte for byte: another build of the sources, or another version's, does not match.
    """
    shipped = _runtime_code(name)
    if len(code) != len(shipped) or len(shipped) < 2:
        return False
    trailer = len(shipped) - 2 - int.from_bytes(shipped[-2:], "big")
    if trailer < 0 or code[trailer:] != shipped[trailer:]:
        return False
    i = 0
    while i < trailer:
        op = shipped[i]
        size = op - 0x5F if 0x60 <= op <= 0x7F else 0  # PUSH1..PUSH32 operand bytes
        operand = shipped[i + 1 : i + 1 + size]
        immutable = size == 32 and not any(operand)
        if code[i] != op or (not immutable and code[i + 1 : i + 1 + size] != operand):
            return False
        i += 1 + size
    return True
