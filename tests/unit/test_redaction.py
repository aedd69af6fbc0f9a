"""Credentials in node and Redis URLs (``https://user:s3cret@node/``, an API key in the path or the
query) never reach a log record, an exception's text or the terminal: depin.redact, and every place
that shows such a URL (the RPC gateway's RpcUnavailable, Client.connect's errors, the new-head
subscription's logs, `depin indexer run`'s start line, `depin job watch`'s notes about Redis)."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis
from typer.testing import CliRunner
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from depin.chain import RpcClient, RpcUnavailable
from depin.chain.heads import HeadSubscription
from depin.client import Client, NodeUnreachable, WrongNetwork
from depin.deployment import Deployment, write_deployment
from depin.redact import redact_text, redact_url
from depinctl.cli import app
from depinctl.cli_job import _index_reader
from depinctl.procs import start_redis

SECRET = "s3cret-Pa55"
KEY = "9aa3d95b3bc440fa88ea12eaa4456161"
ADDRESSES = {name: "0x" + f"{i}" * 40 for i, name in enumerate(("RewardToken", "ProviderStaking", "JobMarket"), 1)}


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# ------------------------------------------------------------------------------------ depin.redact


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:s3cret@node.example/rpc", "https://user:***@node.example/rpc"),
        ("wss://:s3cret@node.example:8546", "wss://:***@node.example:8546"),
        ("rediss://default:p%40ss@db.example:6380/2", "rediss://default:***@db.example:6380/2"),
        ("redis://:secret@/0", "redis://:***@/0"),  # a password and no host
        ("http://user:s3cret@[::1]:8545/", "http://user:***@[::1]:8545/"),
        (f"https://node.example/v3/{KEY}", "https://node.example/v3/9aa3***"),
        (f"wss://x.quiknode.pro/{KEY}/", "wss://x.quiknode.pro/9aa3***/"),
        ("https://node.example/rpc?apikey=abc123&chain=1", "https://node.example/rpc?apikey=***&chain=1"),
        ("unix:///run/redis.sock?db=0&password=s3cret", "unix:///run/redis.sock?db=0&password=***"),
        # nothing secret: unchanged
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("http://user@127.0.0.1:8545/ext/bc/C/rpc", "http://user@127.0.0.1:8545/ext/bc/C/rpc"),
        # not a URL (urlsplit refuses it): shown as written so that its writer sees what is wrong, but
        # for what looks secret
        ("http://[::1", "http://[::1"),
        ("http://user:s3cret@[::1:8545/", "http://user:***@[::1:8545/"),
        (f"https://[::1/v3/{KEY}?apikey=abc&chain=1", "https://[::1/v3/9aa3***?apikey=***&chain=1"),
        ("", ""),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_masks_the_secrets_however_the_url_is_quoted() -> None:
    url = f"https://user:{SECRET}@node.example/v3/{KEY}"
    text = f"HTTPError: 500 for url: https://user:{SECRET}@node.example/v3/{KEY}/ ({SECRET})"
    shown = redact_text(text, url)
    assert SECRET not in shown and KEY not in shown and "node.example" in shown
    assert redact_text("boom", "") == "boom"
    assert redact_text("a pw here", "http://u:pw@h/") == "a pw here"  # a short password is masked in URLs only


# ------------------------------------------------------------------------------------ the RPC gateway


class StubNode(BaseHTTPRequestHandler):
    """A JSON-RPC node over HTTP: ``answers`` maps a method to its result; ``status`` != 200 fails."""

    answers: ClassVar[dict[str, Any]] = {}
    status: ClassVar[int] = 200

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": self.answers.get(request["method"])}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def node() -> Iterator[Callable[..., str]]:
    """Starts a StubNode; returns a function (answers, status) -> its URL with a password in it."""
    servers: list[ThreadingHTTPServer] = []

    def start(answers: dict[str, Any] | None = None, status: int = 200) -> str:
        handler = type("Node", (StubNode,), {"answers": answers or {}, "status": status})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://user:{SECRET}@127.0.0.1:{server.server_address[1]}/v3/{KEY}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [None, 500])  # None: nothing listens; 500: requests' HTTPError quotes the URL
def test_rpc_unavailable_names_the_node_without_its_secrets(
    node: Callable[..., str], status: int | None, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://user:{SECRET}@127.0.0.1:{closed_port()}/v3/{KEY}" if status is None else node(status=status)
    caplog.set_level(logging.DEBUG, logger="depin.chain")
    with pytest.raises(RpcUnavailable) as caught:
        RpcClient.from_url(url, timeout=5, retries=1, backoff_base=0.001).chain_id()
    # the whole traceback a crash would print too: no chained cause quoting the URL
    shown = "".join(traceback.format_exception(caught.value))
    text = str(caught.value) + caught.value.reason + caplog.text + shown
    assert "127.0.0.1" in str(caught.value) and "user:***@" in str(caught.value)
    assert SECRET not in text and KEY not in text


def test_client_connect_errors_name_the_node_without_its_secrets(node: Callable[..., str], tmp_path: Path) -> None:
    deployment = write_deployment(Deployment(31337, "devnet", 1, ADDRESSES, {}, "0x" + "55" * 20), tmp_path)
    dead = f"http://user:{SECRET}@127.0.0.1:{closed_port()}/v3/{KEY}"
    with pytest.raises(NodeUnreachable) as unreachable:
        Client.connect(dead, deployment, retries=0)
    with pytest.raises(WrongNetwork, match="is chain 5") as wrong_chain:
        Client.connect(node({"eth_chainId": "0x5"}), deployment)
    with pytest.raises(WrongNetwork, match="no JobMarket contract") as no_market:
        Client.connect(node({"eth_chainId": hex(31337), "eth_getCode": "0x", "eth_blockNumber": "0x10"}), deployment)
    with pytest.raises(WrongNetwork, match="is behind the deployment: its head is block 0") as behind:
        Client.connect(node({"eth_chainId": hex(31337), "eth_getCode": "0x", "eth_blockNumber": "0x0"}), deployment)
    with pytest.raises(WrongNetwork, match="is not the JobMarket this depin version ships") as not_market:
        Client.connect(node({"eth_chainId": hex(31337), "eth_getCode": "0x00"}), deployment)
    for caught in (unreachable, wrong_chain, no_market, behind, not_market):
        message = str(caught.value)
        assert "user:***@127.0.0.1" in message and SECRET not in message and KEY not in message


# ------------------------------------------------------------------------------------ new heads


def test_head_subscription_logs_never_show_the_password(caplog: pytest.LogCaptureFixture) -> None:
    """Every log line of an outage, a subscription and its end names the node by its redacted URL."""
    caplog.set_level(logging.DEBUG, logger="depin.chain.heads")
    failing = HeadSubscription(f"ws://user:{SECRET}@127.0.0.1:{closed_port()}/{KEY}", lambda _: None, backoff_base=0.01)
    failing.start()
    wait_for(lambda: failing.failures >= 2, "two failed attempts")
    failing.close()

    def subscribe_once(conn: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # the client closed first
            request = json.loads(conn.recv())
            conn.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x1"}))  # then the node hangs up

    with serve(subscribe_once, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        heads = HeadSubscription(f"ws://user:{SECRET}@127.0.0.1:{port}/{KEY}", lambda _: None, backoff_base=0.01)
        heads.start()
        wait_for(lambda: "closed by the node" in caplog.text, "the node to close the subscription")
        heads.close()
        server.shutdown()
    records = [r for r in caplog.records if r.name == "depin.chain.heads"]
    messages = [r.getMessage() + str(getattr(r, "ws_url", "")) for r in records]
    assert any("polling meanwhile" in m for m in messages) and any("subscribed to new heads" in m for m in messages)
    assert all("user:***@127.0.0.1" in m for m in messages), messages
    assert SECRET not in caplog.text and KEY not in caplog.text


# ------------------------------------------------------------------------------------ the CLI


class QuietIndexer:
    def __init__(self, config: object) -> None:
        pass

    def run(self, stop: threading.Event | None = None) -> None:
        pass


def test_indexer_run_start_line_hides_the_rpc_ws_and_redis_passwords(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "indexer.follower", types.SimpleNamespace(Indexer=QuietIndexer))
    deployment = write_deployment(Deployment(31337, "devnet", 1, ADDRESSES, {}, "0x" + "55" * 20), tmp_path)
    rpc = f"http://user:{SECRET}@127.0.0.1:8545/{KEY}"  # local: the ws:// URL is derived from it, password and all
    result = CliRunner().invoke(
        app,
        ["indexer", "run", "--deployment", str(deployment), "--rpc-url", rpc, "--redis-url", f"redis://:{SECRET}@127.0.0.1:1/0"],
    )
    assert result.exit_code == 0, result.stderr
    (starting,) = [line for line in result.stderr.splitlines() if 'msg="indexer starting"' in line]
    assert "rpc=http://user:***@127.0.0.1:8545/9aa3***" in starting and "ws=ws://user:***@127.0.0.1:8545/9aa3***" in starting
    assert "redis=redis://:***@127.0.0.1:1/0" in starting
    assert SECRET not in result.stderr + result.stdout and KEY not in result.stderr + result.stdout


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    with proc:
        yield url


def test_job_watch_notes_about_redis_hide_the_password(
    redis_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong password (redis.AuthenticationError is a ConnectionError: the "unreachable" note) and
    a right one over an empty index (the "nothing indexed" note) both show the URL without it."""
    deployment = write_deployment(Deployment(31337, "devnet", 1, ADDRESSES, {}, "0x" + "55" * 20), tmp_path)
    host = redis_server.split("://", 1)[1].rsplit("/", 1)[0]
    admin = redis.Redis.from_url(redis_server)
    admin.acl_setuser("watcher", enabled=True, passwords=[f"+{SECRET}"], keys="*", commands=["+@all"])
    try:
        assert _index_reader(f"redis://watcher:wrong-{SECRET}@{host}/9", deployment, None, "depin", None) is None  # type: ignore[arg-type]
        assert _index_reader(f"redis://watcher:{SECRET}@{host}/9", deployment, None, "depin", None) is None  # type: ignore[arg-type]
    finally:
        admin.acl_deluser("watcher")
        admin.close()
    notes = capsys.readouterr().err.splitlines()
    assert len(notes) == 2, notes
    assert notes[0] == f"note: Redis at redis://watcher:***@{host}/9 is unreachable; following the chain"
    assert notes[1].startswith("note: nothing indexed under ") and f" in redis://watcher:***@{host}/9;" in notes[1]
    assert SECRET not in "\n".join(notes)
