"""Fast decoding of raw ``eth_getLogs`` results into :class:`Event` objects.

Decoders are built once per event type from the shipped ABIs (``depin.artifacts.load_abi``) and
looked up by ``(contract address, topic0)``. For each event type whose fields allow it, a Python
function is generated once (``EventDecoder.decode_args``, its source in ``decode_args.source``) with
every word offset, padding check and conversion written out; decoding a log is then string slicing:

- indexed parameters come from the topics by hand (uint from hex, address = last 40 hex digits);
- static data fields (uintN, intN, address, bool, bytesN, and tuples of those) are sliced out of the
  hex ``data`` word by word, with the padding checked (a uint96 word must start with 40 zero digits);
- ``bytes``/``string`` fields follow their head offset, bounds-checked, into the tail;
- anything else (arrays, dynamic tuples: none of our events today) falls back to ``eth_abi.decode``
  with the type list precomputed for that event.

A log that cannot be decoded (unknown address or topic, wrong topic count, short or malformed data,
``removed: true``) is skipped: :meth:`LogDecoder.decode` returns None and logs the reason. It never
raises for bad input. :meth:`LogDecoder.decode_all` decodes the common case inline (from dicts or
from :class:`depin.chain.logs.RawLog` records) and hands anything unusual to :meth:`LogDecoder.decode`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeGuard

from eth_abi import decode as abi_decode
from eth_utils import event_abi_to_log_topic, to_checksum_address
from eth_utils.abi import collapse_if_tuple

from depin.chain.logs import RawLog

if TYPE_CHECKING:
    from eth_typing import ABIEvent

log = logging.getLogger("indexer.decode")

ZERO_WORD = "0" * 64
# A block or transaction hash as the node must send it: these go into the events stream's lines and
# the commit script's arguments as they are, so anything else (a newline would split a stream line)
# makes the log malformed.
_is_hash = re.compile("0x[0-9a-fA-F]{64}").fullmatch
_is_word = re.compile("[0-9a-fA-F]{64}").fullmatch  # one 32-byte word or topic, without 0x


class DecodeError(ValueError):
    """One log's data or topics do not match its event's ABI."""


@lru_cache(maxsize=1 << 16)
def checksum(address_hex40: str) -> str:
    """``0x``-checksummed form of 40 lower-case hex digits (cached: addresses repeat a lot)."""
    return to_checksum_address("0x" + address_hex40)


# Raw 40 hex digits as sent (any case) -> checksummed address, for the generated decoders: one dict
# lookup per address. Bounded: cleared when full.
_CHECKSUMS: dict[str, str] = {}


def _checksum_raw(digits: str) -> str:
    value = checksum(digits.lower())
    if len(_CHECKSUMS) >= 1 << 16:
        _CHECKSUMS.clear()
    _CHECKSUMS[digits] = value
    return value


class Event:
    """One decoded log. ``args`` holds every parameter by its ABI name (ints, checksummed address
    strings, ``0x`` hex for fixed bytes, ``bytes`` for ``bytes``, ``str`` for ``string``, dicts for
    tuples). ``timestamp`` is the block's, set by the follower for the events that need it
    (:data:`indexer.reducer.TIMESTAMPED_EVENTS`), else None."""

    __slots__ = ("address", "args", "block", "block_hash", "contract", "log_index", "name", "timestamp", "tx")

    def __init__(
        self,
        name: str,
        contract: str,
        address: str,
        block: int,
        block_hash: str,
        tx: str,
        log_index: int,
        args: dict[str, Any],
    ) -> None:
        self.name = name
        self.contract = contract
        self.address = address
        self.block = block
        self.block_hash = block_hash
        self.tx = tx
        self.log_index = log_index
        self.args = args
        self.timestamp: int | None = None

    def __repr__(self) -> str:
        return f"Event({self.name} block={self.block} log={self.log_index} args={self.args})"


# ------------------------------------------------------------------------------ word converters


def _uint_word(bits: int) -> Callable[[str], int]:
    zeros = "0" * (64 - bits // 4)

    def conv(word: str) -> int:
        if not word.startswith(zeros):
            raise DecodeError(f"uint{bits} value out of range")
        return int(word, 16)

    return conv


def _int_word(bits: int) -> Callable[[str], int]:
    def conv(word: str) -> int:
        value = int(word, 16)
        if value >= 1 << 255:
            value -= 1 << 256
        if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
            raise DecodeError(f"int{bits} value out of range")
        return value

    return conv


_ADDRESS_PAD = "0" * 24


def _address_word(word: str) -> str:
    if not word.startswith(_ADDRESS_PAD):
        raise DecodeError("address word has non-zero padding")
    return checksum(word[24:].lower())


def _bool_word(word: str) -> bool:
    if word == ZERO_WORD:
        return False
    if word[:63] == ZERO_WORD[:63] and word[63] == "1":
        return True
    raise DecodeError("bool word is neither 0 nor 1")


def _fixed_bytes_word(size: int) -> Callable[[str], str]:
    pad = "0" * (64 - 2 * size)

    def conv(word: str) -> str:
        if not _is_word(word):
            raise DecodeError(f"bytes{size} word is not 64 hex digits")
        if size < 32 and not word.endswith(pad):
            raise DecodeError(f"bytes{size} word has non-zero padding")
        return "0x" + word[: 2 * size].lower()

    return conv


def _static_converter(abi_type: str) -> Callable[[str], Any] | None:
    """A converter from one 64-hex-digit word for an elementary static type, or None."""
    if abi_type.startswith("uint"):
        return _uint_word(int(abi_type[4:] or 256))
    if abi_type.startswith("int"):
        return _int_word(int(abi_type[3:] or 256))
    if abi_type == "address":
        return _address_word
    if abi_type == "bool":
        return _bool_word
    if abi_type.startswith("bytes") and abi_type != "bytes" and "[" not in abi_type:
        return _fixed_bytes_word(int(abi_type[5:]))
    return None


def _topic_converter(abi_type: str) -> Callable[[str], Any]:
    """Indexed parameters: value types decode like data words; dynamic ones are their keccak hash."""
    conv = _static_converter(abi_type)
    if conv is None:  # string, bytes, arrays, tuples: the topic is a hash of the value
        return _hash_topic
    return conv


def _hash_topic(topic: str) -> str:
    if not _is_word(topic):
        raise DecodeError("topic is not 64 hex digits")
    return topic.lower()


# ------------------------------------------------------------------------------ event decoders


class EventDecoder:
    """Decodes one event type of one contract. Built once; :meth:`decode_data` is the hot path."""

    def __init__(self, contract: str, abi: ABIEvent) -> None:
        self.contract = contract
        self.name: str = abi["name"]
        self.topic0: str = "0x" + event_abi_to_log_topic(abi).hex()
        inputs = abi["inputs"]
        self.abi_inputs = list(inputs)
        self.indexed: list[tuple[str, Callable[[str], Any]]] = [
            (i["name"], _topic_converter(i["type"])) for i in inputs if i.get("indexed")
        ]
        self.n_topics = 1 + len(self.indexed)
        data_inputs = [i for i in inputs if not i.get("indexed")]
        self.data_names = [i["name"] for i in data_inputs]
        # (name, ABI type) in the order of Event.args: data fields, then indexed ones.
        self.arg_types: list[tuple[str, str]] = [(i["name"], i["type"]) for i in data_inputs] + [
            (i["name"], i["type"]) for i in inputs if i.get("indexed")
        ]
        # Fast plan: per head slot, ("s", name, conv), ("t", name, [(field, conv)...]) or ("d", name, is_string).
        steps: list[tuple[str, str, Any]] = []
        plan: list[tuple[str, str, Any]] | None = steps
        for i in data_inputs:
            typ = i["type"]
            conv = _static_converter(typ)
            if conv is not None:
                steps.append(("s", i["name"], conv))
            elif typ in ("bytes", "string"):
                steps.append(("d", i["name"], typ == "string"))
            elif typ == "tuple" and all(_static_converter(c["type"]) for c in i.get("components", [])):
                steps.append(("t", i["name"], [(c["name"], _static_converter(c["type"])) for c in i["components"]]))
            else:
                plan = None
                break
        self.plan = plan
        if plan is not None:
            self.head_words = sum(len(p[2]) if p[0] == "t" else 1 for p in plan)
            self.static_only = all(p[0] != "d" for p in plan)
            self.decode_args = _compile(self, [(i["name"], i["type"]) for i in data_inputs])
        else:  # generic fallback
            self._abi_decode = abi_decode
            self._types = [collapse_if_tuple(dict(i)) for i in data_inputs]
            self.head_words = 0
            self.static_only = False
            self.decode_args = self._decode_args_generic

    def _decode_args_generic(self, data: str, topics: list[str]) -> dict[str, Any]:
        args = self.decode_data(data)
        for (name, conv), topic in zip(self.indexed, topics[1:]):
            args[name] = conv(topic.removeprefix("0x"))
        return args

    def decode_data(self, data: str) -> dict[str, Any]:
        """The non-indexed parameters from the ``0x`` hex `data`."""
        if self.plan is None:
            values = self._abi_decode(self._types, bytes.fromhex(data[2:]))
            return dict(zip(self.data_names, values))
        size = len(data) - 2
        if self.static_only:
            if size != 64 * self.head_words:
                raise DecodeError(f"data is {size // 2} bytes, expected {32 * self.head_words}")
        elif size < 64 * self.head_words or size % 64:
            raise DecodeError(f"data is {size // 2} bytes, not a valid ABI encoding")
        out: dict[str, Any] = {}
        pos = 2
        for kind, name, conv in self.plan:
            if kind == "s":
                out[name] = conv(data[pos : pos + 64])
                pos += 64
            elif kind == "t":
                tup = {}
                for field, fconv in conv:
                    tup[field] = fconv(data[pos : pos + 64])
                    pos += 64
                out[name] = tup
            else:
                offset = int(data[pos : pos + 64], 16)
                pos += 64
                start = 2 + 2 * offset
                if offset % 32 or start + 64 > len(data):
                    raise DecodeError(f"{name}: offset {offset} out of bounds")
                length = int(data[start : start + 64], 16)
                end = start + 64 + 2 * length
                if end > len(data):
                    raise DecodeError(f"{name}: length {length} out of bounds")
                raw = bytes.fromhex(data[start + 64 : end])
                out[name] = raw.decode("utf-8", "replace") if conv else raw
        return out


_ONE_WORD = "0" * 63 + "1"


def _dynamic(data: str, pos: int, name: str, is_string: bool) -> bytes | str:
    """The ``bytes``/``string`` value whose head offset is at `pos` of the ``0x`` hex `data`."""
    offset = int(data[pos : pos + 64], 16)
    start = 2 + 2 * offset
    if offset % 32 or start + 64 > len(data):
        raise DecodeError(f"{name}: offset {offset} out of bounds")
    length = int(data[start : start + 64], 16)
    end = start + 64 + 2 * length
    if end > len(data):
        raise DecodeError(f"{name}: length {length} out of bounds")
    raw = bytes.fromhex(data[start + 64 : end])
    return raw.decode("utf-8", "replace") if is_string else raw


def _compile(dec: EventDecoder, data_inputs: list[tuple[str, str]]) -> Callable[[str, list[str]], dict[str, Any]]:
    """A function ``(data, topics) -> args`` specialised for one event type: the same checks and
    values as :meth:`EventDecoder.decode_data` plus the indexed parameters, with the word offsets,
    padding checks and conversions of the common types written out (Python source built once)."""
    assert dec.plan is not None
    ns: dict[str, Any] = {
        "DecodeError": DecodeError, "checksum": checksum, "ZERO_WORD": ZERO_WORD, "ONE_WORD": _ONE_WORD,
        "PAD24": _ADDRESS_PAD, "_dynamic": _dynamic, "_CHECKSUMS": _CHECKSUMS, "_checksum_raw": _checksum_raw,
        "_is_word": _is_word,
    }
    lines = ["def decode_args(data, topics):", "    size = len(data) - 2"]
    if dec.static_only:
        n = 64 * dec.head_words
        lines += [f"    if size != {n}:", f"        raise DecodeError('data is %d bytes, expected {n // 2}' % (size // 2))"]
    else:
        n = 64 * dec.head_words
        lines += [f"    if size < {n} or size % 64:", "        raise DecodeError('data is %d bytes, not a valid ABI encoding' % (size // 2))"]
    values: list[tuple[str, str]] = []  # (arg name, expression)
    types = dict(data_inputs)
    pos = 2
    k = 0

    def word(conv: Callable[[str], Any], typ: str, at: int) -> str:
        nonlocal k
        k += 1
        var = f"v{k}"
        sl = f"data[{at}:{at + 64}]"
        if typ.startswith("uint"):
            bits = int(typ[4:] or 256)
            if bits < 256:
                zeros = "0" * (64 - bits // 4)
                lines.extend([f"    if not data.startswith({zeros!r}, {at}):", f"        raise DecodeError('uint{bits} value out of range')"])
            lines.append(f"    {var} = int({sl}, 16)")
        elif typ == "address":
            lines.extend(
                [
                    f"    if not data.startswith(PAD24, {at}):",
                    "        raise DecodeError('address word has non-zero padding')",
                    f"    {var} = data[{at + 24}:{at + 64}]",
                    f"    {var} = _CHECKSUMS.get({var}) or _checksum_raw({var})",
                ]
            )
        elif typ == "bool":
            lines.extend(
                [
                    f"    {var} = {sl}",
                    f"    if {var} == ZERO_WORD:",
                    f"        {var} = False",
                    f"    elif {var} == ONE_WORD:",
                    f"        {var} = True",
                    "    else:",
                    "        raise DecodeError('bool word is neither 0 nor 1')",
                ]
            )
        elif typ == "bytes32":
            lines.extend([f"    {var} = {sl}", f"    if not _is_word({var}):", "        raise DecodeError('bytes32 word is not 64 hex digits')"])
            lines.append(f"    {var} = '0x' + {var}.lower()")
        else:  # int<N>, shorter bytes<N>: the word converter itself
            ns[f"c{k}"] = conv
            lines.append(f"    {var} = c{k}({sl})")
        return var

    for kind, name, conv in dec.plan:
        if kind == "s":
            values.append((name, word(conv, types[name], pos)))
            pos += 64
        elif kind == "t":
            fields = []
            for field, fconv in conv:
                k += 1
                ns[f"c{k}"] = fconv
                fields.append(f"{field!r}: c{k}(data[{pos}:{pos + 64}])")
                pos += 64
            k += 1
            lines.append(f"    v{k} = {{{', '.join(fields)}}}")
            values.append((name, f"v{k}"))
        else:
            k += 1
            lines.append(f"    v{k} = _dynamic(data, {pos}, {name!r}, {conv!r})")
            values.append((name, f"v{k}"))
            pos += 64
    indexed_types = [i["type"] for i in dec.abi_inputs if i.get("indexed")]
    for i, ((name, conv), typ) in enumerate(zip(dec.indexed, indexed_types), start=1):
        k += 1
        var = f"v{k}"
        lines.append(f"    {var} = topics[{i}]")
        lines.append(f"    if {var}.startswith('0x'):")
        lines.append(f"        {var} = {var}[2:]")
        # The topic converters of _topic_converter, written out for the common types.
        if typ.startswith("uint") and "[" not in typ:
            bits = int(typ[4:] or 256)
            if bits < 256:
                zeros = "0" * (64 - bits // 4)
                lines.extend([f"    if not {var}.startswith({zeros!r}):", f"        raise DecodeError('uint{bits} value out of range')"])
            lines.append(f"    {var} = int({var}, 16)")
        elif typ == "address":
            lines.extend(
                [
                    f"    if not {var}.startswith(PAD24):",
                    "        raise DecodeError('address word has non-zero padding')",
                    f"    {var} = {var}[24:]",
                    f"    {var} = _CHECKSUMS.get({var}) or _checksum_raw({var})",
                ]
            )
        elif typ == "bytes32":
            lines.extend([f"    if not _is_word({var}):", "        raise DecodeError('bytes32 topic is not 64 hex digits')"])
            lines.append(f"    {var} = '0x' + {var}.lower()")
        else:
            ns[f"c{k}"] = conv
            lines.append(f"    {var} = c{k}({var})")
        values.append((name, var))
    lines.append("    return {" + ", ".join(f"{name!r}: {var}" for name, var in values) + "}")
    exec(compile("\n".join(lines), f"<decoder {dec.contract}.{dec.name}>", "exec"), ns)  # noqa: S102
    fn = ns["decode_args"]
    fn.source = "\n".join(lines)
    return fn


def _is_event_abi(item: Mapping[str, Any]) -> TypeGuard[ABIEvent]:
    """An item of a contract's ABI that describes an event (its name and inputs are read as such)."""
    return item.get("type") == "event"


class LogDecoder:
    """Decodes raw logs of the indexed contracts. ``addresses`` and ``topics`` are the filter for
    ``eth_getLogs``: logs of other contracts or events never need to be fetched."""

    def __init__(self, contracts: Mapping[str, tuple[str, list[dict[str, Any]]]], events: Iterable[str] | None = None):
        """`contracts`: contract name -> (address, ABI). `events`: event names to decode (default all)."""
        wanted = set(events) if events is not None else None
        self._decoders: dict[tuple[str, str], EventDecoder] = {}
        topics: list[str] = []
        self.addresses: list[str] = []
        for contract, (address, abi) in contracts.items():
            addr = address.lower()
            self.addresses.append(addr)
            for item in abi:
                if not _is_event_abi(item) or item.get("anonymous"):
                    continue
                if wanted is not None and item["name"] not in wanted:
                    continue
                dec = EventDecoder(contract, item)
                self._decoders[(addr, dec.topic0)] = dec
                if dec.topic0 not in topics:
                    topics.append(dec.topic0)
        self.topics = topics
        self.skipped = 0

    def arg_types(self) -> dict[str, list[tuple[str, str]]]:
        """Event name -> (argument name, ABI type) in the order decoded events hold them."""
        return {dec.name: dec.arg_types for dec in self._decoders.values()}

    def topics_of(self, names: Iterable[str]) -> frozenset[str]:
        """The topic0 values (lower-case hex) of the events called one of `names`."""
        wanted = set(names)
        return frozenset(dec.topic0 for dec in self._decoders.values() if dec.name in wanted)

    def decoder_for(self, address: str, topic0: str) -> EventDecoder | None:
        return self._decoders.get((address.lower(), topic0.lower()))

    def decode(self, raw: Mapping[str, Any]) -> Event | None:
        """The event of one raw log, or None (reason logged) when it cannot be decoded."""
        try:
            topics = raw["topics"]
            address = raw["address"].lower()
            if raw.get("removed"):
                self._skip(raw, "log is marked removed")
                return None
            if not topics:
                self._skip(raw, "log has no topics (anonymous event)")
                return None
            dec = self._decoders.get((address, topics[0].lower()))
            if dec is None:
                known = any(a == address for a, _ in self._decoders)
                self._skip(raw, "unknown event topic" if known else "log from an unknown contract")
                return None
            if len(topics) != dec.n_topics:
                self._skip(raw, f"{dec.name} needs {dec.n_topics} topics, log has {len(topics)}")
                return None
            block_hash, tx = raw["blockHash"], raw["transactionHash"]
            if not (block_hash.__class__ is str and _is_hash(block_hash)):
                self._skip(raw, f"blockHash {block_hash!r} is not 0x and 64 hex digits")
                return None
            if not (tx.__class__ is str and _is_hash(tx)):
                self._skip(raw, f"transactionHash {tx!r} is not 0x and 64 hex digits")
                return None
            args = dec.decode_args(raw["data"], topics)
            return Event(
                dec.name,
                dec.contract,
                address,
                int(raw["blockNumber"], 16),
                block_hash,
                tx,
                int(raw["logIndex"], 16),
                args,
            )
        except (DecodeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            self._skip(raw, f"undecodable: {type(exc).__name__}: {exc}")
            return None
        except Exception as exc:  # noqa: BLE001 - eth_abi's own errors and anything else: never crash on input
            self._skip(raw, f"undecodable: {type(exc).__name__}: {exc}")
            return None

    def decode_all(self, raws: Iterable[Mapping[str, Any]]) -> list[Event]:
        """Decoded events in the order given, skipping (and logging) the undecodable ones.

        The common case (lower-case address and topic0 as nodes send them, the right topic count,
        not removed) is decoded inline; anything else, and any failure, goes through
        :meth:`decode`, which handles (and logs) every odd case."""
        out: list[Event] = []
        append = out.append
        decoders = self._decoders
        decode = self.decode
        is_hash = _is_hash
        if not isinstance(raws, list):
            raws = list(raws)
        if raws and raws[0].__class__ is RawLog:
            for log_ in raws:
                try:
                    topics = log_.topics
                    dec = decoders.get((log_.address, topics[0]))
                    if (
                        dec is None or len(topics) != dec.n_topics or log_.removed is not False
                        or not is_hash(log_.blockHash) or not is_hash(log_.transactionHash)
                    ):
                        raise LookupError
                    append(
                        Event(
                            dec.name,
                            dec.contract,
                            log_.address,
                            int(log_.blockNumber, 16),
                            log_.blockHash,
                            log_.transactionHash,
                            int(log_.logIndex, 16),
                            dec.decode_args(log_.data, topics),
                        )
                    )
                except Exception:  # noqa: BLE001 - the slow path decides (and logs why a log is skipped)
                    ev = decode(log_.as_dict() if log_.__class__ is RawLog else log_)
                    if ev is not None:
                        append(ev)
            return out
        for raw in raws:
            try:
                topics = raw["topics"]
                dec = decoders.get((raw["address"], topics[0]))
                if (
                    dec is None or len(topics) != dec.n_topics or raw["removed"] is not False
                    or not is_hash(raw["blockHash"]) or not is_hash(raw["transactionHash"])
                ):
                    raise LookupError
                append(
                    Event(
                        dec.name,
                        dec.contract,
                        raw["address"],
                        int(raw["blockNumber"], 16),
                        raw["blockHash"],
                        raw["transactionHash"],
                        int(raw["logIndex"], 16),
                        dec.decode_args(raw["data"], topics),
                    )
                )
            except Exception:  # noqa: BLE001 - the slow path decides (and logs why a log is skipped)
                ev = decode(raw)
                if ev is not None:
                    append(ev)
        return out

    def _skip(self, raw: Mapping[str, Any], reason: str) -> None:
        self.skipped += 1
        where = {k: raw.get(k) for k in ("address", "blockNumber", "transactionHash", "logIndex")} if isinstance(raw, Mapping) else raw
        log.warning("skipping log: %s %s", reason, where)
