"""The one ABI codec of the shipped contracts: calldata, return values, custom errors, event topics."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_abi.exceptions import EncodingError
from eth_typing import ABIError, ABIEvent, ABIFunction
from eth_utils import (
    event_abi_to_log_topic,
    function_abi_to_4byte_selector,
    to_checksum_address,
)
from eth_utils.abi import get_abi_input_types, get_abi_output_types

from depin.artifacts import load_abi
from depin.errors import ArgumentError, ChainError

CONTRACTS = ("RewardToken", "ProviderStaking", "JobMarket", "BlockhashRandomness", "MockRandomness", "HeaderRandomness", "VerificationCourt", "TestCourt")


class AbiError(ChainError):
    """A contract function the shipped ABIs do not have (or have overloaded)."""


@dataclass(frozen=True)
class AbiFunction:
    """One function of a shipped contract, as the codec needs it."""

    contract: str
    name: str
    selector: bytes
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    view: bool = False  # stateMutability view or pure: read with eth_call, never sent


class Codec:
    """Calldata encoding, return decoding, custom-error and event-topic lookup for the shipped ABIs.

    Selectors and type strings are computed once; encoding a call is one ``eth_abi.encode``.
    """

    def __init__(self, contracts: Iterable[str] = CONTRACTS) -> None:
        self._functions: dict[tuple[str, str], AbiFunction] = {}
        self._errors: dict[bytes, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {}
        self.topics: dict[tuple[str, str], bytes] = {}
        for contract in contracts:
            for item in load_abi(contract):  # JSON: the eth_typing shapes below are what solc writes
                kind = item.get("type")
                if kind == "function":
                    key = (contract, item["name"])
                    if key in self._functions:  # overloads: none in these contracts; refuse to guess
                        raise AbiError(f"{contract}.{item['name']} is overloaded; Codec needs unique names")
                    self._functions[key] = AbiFunction(
                        contract,
                        item["name"],
                        function_abi_to_4byte_selector(cast(ABIFunction, item)),
                        tuple(get_abi_input_types(cast(ABIFunction, item))),
                        tuple(get_abi_output_types(cast(ABIFunction, item))),
                        item.get("stateMutability") in ("view", "pure"),
                    )
                elif kind == "error":
                    error = cast(ABIError, item)
                    selector = function_abi_to_4byte_selector(error)
                    names = tuple(i.get("name", "") for i in item["inputs"])
                    self._errors.setdefault(selector, (contract, item["name"], tuple(get_abi_input_types(error)), names))
                elif kind == "event":
                    self.topics[(contract, item["name"])] = event_abi_to_log_topic(cast(ABIEvent, item))

    def function(self, contract: str, name: str) -> AbiFunction:
        try:
            return self._functions[(contract, name)]
        except KeyError:
            raise AbiError(f"{contract} has no function {name!r}") from None

    def encode(self, contract: str, name: str, *args: Any) -> str:
        """The calldata of `contract`.`name`(`args`); :class:`ArgumentError` naming the argument
        that does not fit its ABI type (a float or a negative number for a uint, bytes for a string)."""
        fn = self.function(contract, name)
        if len(args) != len(fn.input_types):
            raise ArgumentError(f"{contract}.{name} takes {len(fn.input_types)} arguments ({', '.join(fn.input_types)}), not {len(args)}")
        try:
            return "0x" + (fn.selector + abi_encode(fn.input_types, args)).hex()
        except (EncodingError, TypeError, ValueError, OverflowError) as exc:
            for position, (kind, value) in enumerate(zip(fn.input_types, args, strict=True), 1):
                try:
                    abi_encode([kind], [value])
                except (EncodingError, TypeError, ValueError, OverflowError) as one:
                    raise ArgumentError(f"{contract}.{name}: argument {position} ({kind}) cannot be {value!r}: {one}") from None
            raise ArgumentError(f"{contract}.{name}: the arguments do not fit ({', '.join(fn.input_types)}): {exc}") from None

    def decode_output(self, contract: str, name: str, data: str) -> tuple[Any, ...]:
        """Return values of a call, addresses checksummed (structs come back as tuples)."""
        fn = self.function(contract, name)
        return tuple(_checksummed(v) for v in abi_decode(fn.output_types, bytes.fromhex(data.removeprefix("0x"))))

    def decode_error(self, data: str | bytes | None) -> str:
        """A readable form of revert data: ``JobMarket.WrongStatus(jobId=1, actual=2, expected=1)``."""
        raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else (data or b"")
        if not raw:
            return "no revert data (out of gas, or a revert without a reason)"
        selector, body = raw[:4], raw[4:]
        try:
            if selector == bytes.fromhex("08c379a0"):
                return f"Error({abi_decode(['string'], body)[0]!r})"
            if selector == bytes.fromhex("4e487b71"):
                return f"Panic(0x{abi_decode(['uint256'], body)[0]:02x})"
            if selector in self._errors:
                contract, name, types, names = self._errors[selector]
                values = abi_decode(types, body)
                fields = ", ".join(f"{n}={_show(v)}" if n else _show(v) for n, v in zip(names, values, strict=True))
                return f"{contract}.{name}({fields})"
        except Exception:  # noqa: BLE001, S110 - malformed data: fall through to the raw form
            pass
        return f"unknown error 0x{raw.hex()}"


@dataclass(frozen=True)
class ContractCall:
    """One encoded call of a contract function at an address (from :mod:`depin.contracts`)."""

    contract: str
    function: str
    to: str
    data: str  # 0x-hex calldata
    codec: Codec = field(repr=False, compare=False)

    @property
    def what(self) -> str:
        """``JobMarket.claimJob``: how errors and logs name the call."""
        return f"{self.contract}.{self.function}"

    def decode(self, result: str) -> Any:
        """The call's return data decoded: one value bare, several as a tuple (addresses checksummed).
        No data where the function returns something means no contract code at the address (a
        chain restarted without it, or the wrong chain): ChainError, which callers treat as transient."""
        if result in ("0x", "") and self.codec.function(self.contract, self.function).output_types:
            raise ChainError(f"{self.what} at {self.to} returned no data: is the contract deployed on this chain?")
        values = self.codec.decode_output(self.contract, self.function, result)
        return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class View(ContractCall):
    """A call of a view or pure function: read with ``eth_call``."""


@dataclass(frozen=True)
class Transaction(ContractCall):
    """A call of a state-changing function: sent in a transaction."""


class Binding:
    """A shipped contract at one address; :mod:`depin.contracts` generates a subclass per contract
    with one method per function (``JobMarket(address).claim_job(7)`` is a :class:`Transaction`)."""

    CONTRACT = ""
    TOPICS: ClassVar[dict[str, str]] = {}  # event name -> topic 0, 0x-hex

    def __init__(self, address: str, codec: Codec | None = None) -> None:
        self.address = to_checksum_address(address)
        self.codec = codec or Codec((self.CONTRACT,))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address})"

    def encode(self, function: str, *args: Any) -> ContractCall:
        """The call of `function` by its Solidity name: a :class:`View` or a :class:`Transaction`."""
        kind = View if self.codec.function(self.CONTRACT, function).view else Transaction
        return kind(self.CONTRACT, function, self.address, self.codec.encode(self.CONTRACT, function, *args), self.codec)

    def view(self, function: str, *args: Any) -> View:
        call = self.encode(function, *args)
        if not isinstance(call, View):
            raise AbiError(f"{call.what} changes state: send it as a transaction")
        return call

    def transaction(self, function: str, *args: Any) -> Transaction:
        call = self.encode(function, *args)
        if not isinstance(call, Transaction):
            raise AbiError(f"{call.what} is a view: read it with a call")
        return call


def _checksummed(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return type(value)(_checksummed(v) for v in value)
    if isinstance(value, str) and len(value) == 42 and value.startswith("0x"):
        return to_checksum_address(value)
    return value


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return repr(value)
