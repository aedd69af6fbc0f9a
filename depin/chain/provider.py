"""The web3 provider of :func:`depin.chain.make_web3`: JSON-RPC over HTTP through
:func:`depin.chain.http.post`, so that every call ends within its ``timeout`` and reads at most
:data:`~depin.chain.http.RPC_MAX_BYTES` of answer (web3's ``HTTPProvider`` gives requests the
timeout, which bounds each read only: see :mod:`depin.chain.http`).

No retry here (:class:`~depin.chain.RpcClient` retries). A failure raises what
:func:`~depin.chain.http.post` raises; ``RpcClient`` turns it into ``RpcUnavailable`` naming the node.
"""

from __future__ import annotations

import threading
from typing import Any

import requests
from web3.providers.base import JSONBaseProvider

from depin.chain import http


class BoundedHTTPProvider(JSONBaseProvider):
    """JSON-RPC calls and batches to `endpoint_uri`, each within `timeout` seconds in all and with an
    answer of at most `max_bytes`. Thread-safe: each thread has its own connections."""

    def __init__(self, endpoint_uri: str, timeout: float, max_bytes: int = http.RPC_MAX_BYTES) -> None:
        super().__init__()
        self.endpoint_uri = endpoint_uri
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._local = threading.local()

    def __str__(self) -> str:
        return "RPC connection (bounded HTTP)"  # the URL may carry a key

    def _post(self, body: bytes) -> bytes:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = http.session()
        return http.post(session, self.endpoint_uri, body, timeout=self.timeout, max_bytes=self.max_bytes)

    def make_request(self, method: Any, params: Any) -> Any:
        return self.decode_rpc_response(self._post(self.encode_rpc_request(method, params)))

    def make_batch_request(self, batch_requests: list[tuple[Any, Any]]) -> Any:
        response = self.decode_rpc_response(self._post(self.encode_batch_rpc_request(batch_requests)))
        if not isinstance(response, list):
            return response  # the node refused the batch as a whole (one error object)
        if all(isinstance(r, dict) and isinstance(r.get("id"), int) for r in response):
            return sorted(response, key=lambda r: r["id"])  # JSON-RPC does not promise the order
        return response
