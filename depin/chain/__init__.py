"""Chain access: the one package that builds raw JSON-RPC calls (the gateway).

Everything else calls :class:`RpcClient`'s typed methods (``eth_call``, ``estimate_gas``,
``get_receipt``, ``send_raw_transaction``, ...) and :func:`probe`, and never names a JSON-RPC method.

Services that read the chain (the indexer, later the executor) talk to the node through
:class:`RpcClient`, a thin layer over a web3 provider's ``make_request`` / ``make_batch_request``.
It skips web3's formatters and middleware (the indexer decodes logs itself, which is ~20x faster),
retries transient failures with capped exponential backoff, and turns every failure into a
:class:`~depin.errors.ChainError`:

- :class:`RpcUnavailable`: the node could not be reached or answered garbage (connection refused or
  reset, timeout, HTTP 5xx, a body that is not JSON-RPC, an answer not complete within the call's
  timeout or larger than :data:`~depin.chain.http.RPC_MAX_BYTES`: :mod:`depin.chain.http`).
  Retried ``retries`` times, then raised; long-running services catch it and keep waiting for the node.
- :class:`RpcError`: the node answered with a JSON-RPC error object (``code``, ``message``). Retried
  only when :func:`is_transient_rpc_error` says so (rate limits, internal errors) and the caller
  allows it; a caller that must react to the error itself (the indexer shrinking an ``eth_getLogs``
  range) passes ``retries=0``.

Quantities come back as the node sends them (``"0x..."`` hex strings); :func:`hex_int` converts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from depin.errors import ChainError
from depin.redact import redact_text, redact_url

log = logging.getLogger("depin.chain")

T = TypeVar("T")
BlockTag = int | str  # a number or "latest", "pending", "earliest", "safe", "finalized"

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 5
DEFAULT_BACKOFF_BASE = 0.05
DEFAULT_BACKOFF_CAP = 5.0

# JSON-RPC error codes worth retrying: internal errors, server errors (geth's -32000 covers "header
# not found" right after a new head), limit exceeded and rate limits.
_TRANSIENT_CODES = frozenset({-32603, -32000, -32002, -32005, -32097, 429})
# Phrases by which nodes and hosted providers say an eth_getLogs query is too big.
_RANGE_PHRASES = (
    "range",
    "too many",
    "too large",
    "limit",
    "exceed",
    "timeout",
    "timed out",
    "query returned more than",
    "response size",
)


class RpcUnavailable(ChainError):
    """The node could not be reached, timed out, or answered something that is not JSON-RPC."""

    def __init__(self, method: str, reason: str, url: str = "") -> None:
        self.method = method
        self.reason = redact_text(reason, url)  # requests' errors quote the URL, password and all
        where = f" at {redact_url(url)}" if url else ""
        super().__init__(
            f"JSON-RPC node{where} unavailable for {method}: {self.reason}. "
            "Check that the node is running and DEPIN_RPC_URL points at it; services keep retrying."
        )


class RpcError(ChainError):
    """The node answered a JSON-RPC error object."""

    def __init__(self, method: str, code: int | None, message: str, data: Any = None) -> None:
        self.method = method
        self.code = code
        self.rpc_message = message
        self.data = data
        super().__init__(f"{method} failed with JSON-RPC error {code}: {message}")


def is_transient_rpc_error(error: RpcError) -> bool:
    """Whether retrying the same call later may succeed."""
    return error.code in _TRANSIENT_CODES or "rate" in error.rpc_message.lower()


def is_range_error(error: ChainError) -> bool:
    """Whether an ``eth_getLogs`` failure suggests asking for fewer blocks (or is a timeout)."""
    if isinstance(error, RpcUnavailable):
        return "timeout" in error.reason.lower() or "timed out" in error.reason.lower()
    if isinstance(error, RpcError):
        text = error.rpc_message.lower()
        return error.code in (-32005, -32602, -32600) or any(p in text for p in _RANGE_PHRASES)
    return False


def backoff_delay(attempt: int, base: float = DEFAULT_BACKOFF_BASE, cap: float = DEFAULT_BACKOFF_CAP) -> float:
    """Seconds to wait before retry number `attempt` (0-based): ``base * 2**attempt``, at most `cap`."""
    return min(cap, base * (2 ** min(attempt, 30)))


def hex_int(value: str | int | None) -> int:
    """A JSON-RPC quantity (``"0x1a"``) as an int."""
    if value is None:
        raise ValueError("missing quantity")
    return value if isinstance(value, int) else int(value, 16)


def block_tag(block: BlockTag) -> str:
    """A block number or tag as JSON-RPC wants it (numbers as hex quantities)."""
    return hex(block) if isinstance(block, int) else block


def make_web3(rpc_url: str, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """A ``Web3`` over HTTP without retries of its own (:class:`RpcClient` retries), whose every call
    ends within `timeout` seconds in all (connect, request, the whole answer) and reads at most
    :data:`~depin.chain.http.RPC_MAX_BYTES` of answer (:mod:`depin.chain.http`): a node that
    trickles or never ends its answer cannot hold a call past its timeout, nor fill the memory."""
    # web3 takes seconds to import and only the HTTP transport needs it
    from web3 import Web3  # lazy: start-up

    from depin.chain.provider import BoundedHTTPProvider  # lazy: start-up (imports web3)

    return Web3(BoundedHTTPProvider(rpc_url, timeout))


class RpcClient:
    """Raw JSON-RPC calls with retries. Thread-safe as far as the underlying provider is."""

    def __init__(
        self,
        web3: Any,
        *,
        retries: int = DEFAULT_RETRIES,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.web3 = web3
        self.provider = web3.provider
        self.url = str(getattr(self.provider, "endpoint_uri", "") or "")
        self.shown_url = redact_url(self.url)  # for messages and logs: no password or API key
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.sleep = sleep
        self._can_batch = hasattr(self.provider, "make_batch_request")

    @classmethod
    def from_url(cls, rpc_url: str, timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> RpcClient:
        return cls(make_web3(rpc_url, timeout), **kwargs)

    # ------------------------------------------------------------------ core

    def _raw(self, method: str, params: Sequence[Any]) -> Any:
        try:
            response = self.provider.make_request(method, list(params))
        except ChainError:
            raise
        except Exception as exc:  # noqa: BLE001 - requests' ConnectionError/Timeout/HTTPError, JSON errors: re-raised
            # from None: the cause's text quotes the URL, password and all, in any traceback shown
            raise RpcUnavailable(method, f"{type(exc).__name__}: {exc}", self.url) from None
        return _result(method, response)

    def _retrying(self, method: str, attempt_fn: Callable[[], Any], retries: int | None) -> Any:
        limit = self.retries if retries is None else retries
        attempt = 0
        while True:
            try:
                return attempt_fn()
            except RpcUnavailable as exc:
                error: ChainError = exc
            except RpcError as exc:
                if not is_transient_rpc_error(exc):
                    raise
                error = exc
            if attempt >= limit:
                raise error
            delay = backoff_delay(attempt, self.backoff_base, self.backoff_cap)
            log.debug("rpc retry method=%s attempt=%d delay=%.3f error=%s", method, attempt + 1, delay, error)
            self.sleep(delay)
            attempt += 1

    def call(self, method: str, params: Sequence[Any] = (), *, retries: int | None = None) -> Any:
        """The ``result`` of one JSON-RPC call; retries transient failures (``retries`` overrides)."""
        return self._retrying(method, lambda: self._raw(method, params), retries)

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *, retries: int | None = None) -> list[Any]:
        """The results of several calls, in order, in one JSON-RPC batch request when the provider
        supports batches (else one call after the other). Any failed member raises (the whole batch
        is retried)."""
        if not calls:
            return []
        if not self._can_batch:
            return [self.call(m, p, retries=retries) for m, p in calls]
        label = f"batch[{len(calls)}x{calls[0][0]}]"

        def attempt() -> list[Any]:
            try:
                responses = self.provider.make_batch_request([(m, list(p)) for m, p in calls])
            except ChainError:
                raise
            except NotImplementedError:
                self._can_batch = False
                return [self._raw(m, p) for m, p in calls]
            except Exception as exc:  # noqa: BLE001 - re-raised as RpcUnavailable, from None: see _raw
                raise RpcUnavailable(label, f"{type(exc).__name__}: {exc}", self.url) from None
            if isinstance(responses, dict):  # the node rejected the batch as a whole
                _result(label, responses)
                raise RpcUnavailable(label, f"unexpected batch answer {str(responses)[:200]}", self.url)
            if not isinstance(responses, list) or len(responses) != len(calls):
                raise RpcUnavailable(label, "batch answer has the wrong number of responses", self.url)
            return [_result(m, r) for (m, _), r in zip(calls, responses)]

        return self._retrying(label, attempt, retries)

    # ------------------------------------------------------------------ conveniences

    def chain_id(self, *, retries: int | None = None) -> int:
        return hex_int(self.call("eth_chainId", retries=retries))

    def block_number(self) -> int:
        return hex_int(self.call("eth_blockNumber"))

    def latest_block(self) -> dict[str, Any]:
        """The header of the newest block (no transactions)."""
        block = self.call("eth_getBlockByNumber", ["latest", False])
        if not isinstance(block, dict):
            raise RpcUnavailable("eth_getBlockByNumber", f"no latest block: {str(block)[:200]}", self.url)
        return block

    def accounts(self) -> list[str]:
        """The node's unlocked accounts (a dev node's funded ones)."""
        return list(self.call("eth_accounts"))

    def get_code(self, address: str, block: BlockTag = "latest") -> str:
        """The contract code at `address` (``"0x"`` when there is none)."""
        return str(self.call("eth_getCode", [address, block_tag(block)]) or "0x")

    def get_balance(self, address: str, block: BlockTag = "latest") -> int:
        """The ether balance of `address`, in wei."""
        return hex_int(self.call("eth_getBalance", [address, block_tag(block)]))

    def nonce(self, address: str, block: BlockTag = "pending") -> int:
        """``eth_getTransactionCount``: the next nonce of `address` as of `block`."""
        return hex_int(self.call("eth_getTransactionCount", [address, block_tag(block)]))

    def eth_call(self, tx: dict[str, Any], block: BlockTag = "latest", *, retries: int | None = None) -> str:
        """The return data of a call (raises :class:`RpcError` on a revert; see ``RpcError.data``)."""
        return str(self.call("eth_call", [tx, block_tag(block)], retries=retries))

    def estimate_gas(self, tx: dict[str, Any], *, retries: int | None = None) -> int:
        """The node's gas estimate for `tx` (raises :class:`RpcError` when it would revert)."""
        return hex_int(self.call("eth_estimateGas", [tx], retries=retries))

    def max_priority_fee(self, *, retries: int | None = None) -> int:
        """``eth_maxPriorityFeePerGas``: the node's suggested tip, in wei."""
        return hex_int(self.call("eth_maxPriorityFeePerGas", retries=retries))

    def fee_history(
        self, block_count: int, newest: BlockTag = "latest", percentiles: Sequence[float] = (), *, retries: int | None = None
    ) -> dict[str, Any]:
        """``eth_feeHistory`` as the node answers it (``baseFeePerGas``, ``reward``, ...)."""
        history = self.call("eth_feeHistory", [hex(block_count), block_tag(newest), list(percentiles)], retries=retries)
        return history if isinstance(history, dict) else {}

    def send_raw_transaction(self, raw: str, *, retries: int | None = None) -> str:
        """Broadcasts signed bytes; returns the transaction hash."""
        return str(self.call("eth_sendRawTransaction", [raw], retries=retries))

    def send_transaction(self, tx: dict[str, Any], *, retries: int | None = 0) -> str:
        """Sends `tx` from an account the node holds unlocked (dev nodes); returns its hash. Not
        retried by default: a lost answer may still have been sent."""
        return str(self.call("eth_sendTransaction", [tx], retries=retries))

    def sign_message(self, address: str, data: bytes) -> bytes:
        """An account the node holds unlocked (dev nodes) signs `data` as an EIP-191 personal
        message (``eth_sign``); the 65-byte signature."""
        return bytes.fromhex(str(self.call("eth_sign", [address, "0x" + data.hex()])).removeprefix("0x"))

    def get_transaction(self, tx_hash: str) -> dict[str, Any] | None:
        """The transaction, or None when the node does not know it (never sent, dropped, reorged out)."""
        return self.call("eth_getTransactionByHash", [tx_hash])

    def pool_transaction(self, address: str, nonce: int) -> dict[str, Any] | None:
        """The transaction from `address` at `nonce` in the node's pool (pending or queued), or None
        when the pool shows none; an RpcError when the node has no ``txpool`` API. Asks for the
        sender's part of the pool (``txpool_contentFrom``) and, when the node does not know that
        method (anvil), for the whole pool (``txpool_content``)."""
        try:
            sections = self.call("txpool_contentFrom", [address], retries=0)
            mine = [(sections or {}).get(s) or {} for s in ("pending", "queued")]
        except RpcError:
            sections = self.call("txpool_content", retries=0) or {}
            mine = [txs for s in ("pending", "queued") for sender, txs in ((sections.get(s) or {}).items())
                    if sender.lower() == address.lower()]
        for txs in mine:
            found = txs.get(str(nonce)) if isinstance(txs, dict) else None
            if isinstance(found, dict):
                return found
        return None

    def get_receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """The receipt, or None while the transaction is not mined."""
        return self.call("eth_getTransactionReceipt", [tx_hash])

    def block_receipts(self, block: BlockTag) -> list[dict[str, Any]]:
        """Every receipt of one block, in order."""
        return list(self.call("eth_getBlockReceipts", [block_tag(block)]) or [])

    def trace_transaction(self, tx_hash: str, tracer: str = "callTracer", *, retries: int | None = 0) -> Any:
        """``debug_traceTransaction`` with `tracer` (nodes without the debug API answer an RpcError)."""
        return self.call("debug_traceTransaction", [tx_hash, {"tracer": tracer}], retries=retries)

    def get_block(self, number: int) -> dict[str, Any] | None:
        """The header of block `number` (no transactions), or None when the node has no such block."""
        return self.call("eth_getBlockByNumber", [hex(number), False])

    def get_blocks(self, numbers: Sequence[int]) -> list[dict[str, Any] | None]:
        """Headers of several blocks in one batch request (None for blocks the node does not have)."""
        return self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])

    def get_logs(
        self,
        from_block: int,
        to_block: int,
        addresses: Sequence[str],
        topics: Sequence[Any] | None = None,
        *,
        retries: int | None = 0,
    ) -> list[dict[str, Any]]:
        """Raw logs (JSON-RPC dicts) of `addresses` in [from_block, to_block]. No retry by default:
        the caller decides whether to shrink the range."""
        flt: dict[str, Any] = {"fromBlock": hex(from_block), "toBlock": hex(to_block), "address": list(addresses)}
        if topics:
            flt["topics"] = list(topics)
        result = self.call("eth_getLogs", [flt], retries=retries)
        if not isinstance(result, list):
            raise RpcUnavailable("eth_getLogs", f"expected a list of logs, got {type(result).__name__}", self.url)
        return result


def _result(method: str, response: Any) -> Any:
    if not isinstance(response, dict):
        raise RpcUnavailable(method, f"not a JSON-RPC response: {str(response)[:200]}")
    error = response.get("error")
    if error is not None:
        if isinstance(error, dict):
            raise RpcError(method, error.get("code"), str(error.get("message", "")), error.get("data"))
        raise RpcError(method, None, str(error))
    if "result" not in response:
        raise RpcUnavailable(method, f"JSON-RPC response without result: {str(response)[:200]}")
    return response["result"]


def probe(url: str, method: Callable[[RpcClient], T], *, timeout: float = 2.0) -> T:
    """One attempt of a typed call against the node at `url` with a short timeout, for status
    checks: ``probe(url, RpcClient.chain_id)``. Raises :class:`~depin.errors.ChainError`
    (:class:`RpcUnavailable` when the node does not answer)."""
    return method(RpcClient.from_url(url, timeout=timeout, retries=0))


def head_reader(rpc_url: str, timeout: float = 2.0) -> Callable[[], int | None]:
    """A function returning the node's block number, or None when the node does not answer (for
    status displays, where an unreachable node means "head unknown", never an error)."""
    client = RpcClient.from_url(rpc_url, timeout=timeout, retries=0)

    def head() -> int | None:
        try:
            return client.block_number()
        except ChainError as exc:
            log.debug("chain head unavailable from %s: %s", client.shown_url, exc)
            return None

    return head
