"""Hostile on-chain strings (a requester's spec, a provider's endpoint and result URI) through the
explorer's pages and the `depin` CLI, on a real chain (anvil, the deployed contracts) indexed into a
real redis-server.

Everything the explorer and the CLI show from the chain is written by anyone. A valid spec's
command arguments and env values may hold any character but NUL, an input URI may be a ``data:``
URL, an endpoint and a result URI are any string: markup, quotes, ``javascript:`` URLs, terminal
controls (ESC, the one-character C1 CSI U+009B, BEL) and bidi overrides (U+202E) that reorder what
the reader sees.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from depin.spec import canonical_json, parse_spec
from depinctl.cli import app as cli_app
from indexer.api import create_app
from indexer.query import IndexerReader

from .services import ChainEnv, chain_env  # noqa: F401  (fixture)

MARKUP = "\"'><script>alert(1)</script><img src=x onerror=alert(2)>"
TERMINAL = "\x1b]0;owned\x07\x1b[2J\u009b2J\u009b1;32mOK"  # OSC title, clear screen (ESC and C1 CSI)
BIDI = "evil\u202egnp.txt\u2066"  # shows as "evil" + "txt.png" reversed: a spoofed name
HOSTILE = MARKUP + TERMINAL + BIDI
# What no page or terminal may carry raw: the controls, the bidi overrides and isolates.
RAW_CONTROLS = ("\x1b", "\x07", "\u009b", "\u202e", "\u2066")


def _hostile_spec() -> bytes:
    spec = {
        "command": ["sh", "-c", HOSTILE],
        "env": {"NOTE": HOSTILE},
        "image": "depin/checksum@sha256:" + "ab" * 32,
        "inputs": [{"path": "a", "sha256": "cd" * 32, "uri": "data:text/html,<script>alert(3)</script>" + BIDI}],
        "resources": {"cpus": 1, "max_runtime": 60, "memory_mb": 64},
        "v": 1,
    }
    raw = canonical_json(spec)
    parse_spec(raw)  # a valid spec: executors would run it, the index decodes it
    return raw


@pytest.fixture
def hostile(chain_env: ChainEnv) -> tuple[ChainEnv, int, str, str]:
    """A job with the hostile spec, claimed by a provider whose endpoint is hostile, with a hostile
    result URI; indexed. Returns (env, job id, requester, provider)."""
    env, m = chain_env, chain_env.market
    requester, provider = m.accounts[1], m.accounts[2]
    m.fund(requester)
    m.fund(provider)
    m.register(provider, endpoint="javascript:alert(4)//" + HOSTILE)
    job_id = m.post(requester, spec=_hostile_spec())
    m.claim(provider, job_id)
    m.submit(provider, job_id, uri="javascript:alert(5)//" + HOSTILE)
    env.indexer().sync_once()
    job = IndexerReader(env.client(0), env.keys).get_job(job_id)
    assert job is not None and job.spec_valid and job.spec["env"]["NOTE"] == HOSTILE
    return env, job_id, requester, provider


def _pages(env: ChainEnv, job_id: int, requester: str, provider: str) -> dict[str, object]:
    reader = IndexerReader(env.client(0), env.keys)
    with TestClient(create_app(reader)) as client:
        paths = ("/", f"/job/{job_id}", f"/provider/{provider}", f"/requester/{requester}", f"/jobs/{job_id}",
                 "/job/x", "/static/explorer.css")
        return {path: client.get(path) for path in paths}


def test_explorer_pages_escape_hostile_strings(hostile: tuple[ChainEnv, int, str, str]) -> None:
    """Every page that shows the hostile strings escapes their markup (no tag, no javascript: or
    data: link) and shows their controls and bidi overrides as visible escapes, not raw (a raw
    U+202E reorders the rest of the line: a result URI or an argument that reads as another)."""
    env, job_id, requester, provider = hostile
    pages = _pages(env, job_id, requester, provider)
    job_page = pages[f"/job/{job_id}"].text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in job_page  # the spec, shown escaped
    assert "javascript:alert(5)" in job_page and "javascript:alert(4)" in pages[f"/provider/{provider}"].text
    for path in ("/", f"/job/{job_id}", f"/provider/{provider}", f"/requester/{requester}"):
        resp = pages[path]
        assert resp.status_code == 200, path
        html = resp.text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert 'href="javascript:' not in html and 'src="data:' not in html, path
        assert not [c for c in RAW_CONTROLS if c in html], (path, [c for c in RAW_CONTROLS if c in html])
    assert "\\u202e" in job_page and "\\x1b" in job_page  # shown, as escapes
    assert pages[f"/jobs/{job_id}"].json()["spec"]["env"]["NOTE"] == HOSTILE  # the JSON API serves the data as it is


def test_explorer_and_api_send_security_headers(hostile: tuple[ChainEnv, int, str, str]) -> None:
    """Pages are sent with a Content-Security-Policy that allows no inline script nor any other
    origin (a second line behind the escaping) and forbids framing (clickjacking); every answer
    (pages, JSON, errors, static files) with ``X-Content-Type-Options: nosniff``."""
    pages = _pages(*hostile)
    for path, resp in pages.items():
        assert resp.headers.get("x-content-type-options") == "nosniff", path
        if resp.headers["content-type"].startswith("text/html"):
            csp = resp.headers.get("content-security-policy", "")
            assert "default-src 'none'" in csp and "script-src 'self'" in csp, (path, csp)
            assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, (path, csp)
    assert pages["/job/x"].status_code == 400


def test_cli_shows_hostile_spec_strings_as_escapes(hostile: tuple[ChainEnv, int, str, str], tmp_path: Path) -> None:
    """`depin jobs show` (its decoded spec), `depin jobs show --json` and `depin jobs list --json`
    print no terminal control (ESC, BEL, the C1 CSI) nor bidi override raw to the operator's
    terminal; the JSON stays the same data (escapes are JSON's own)."""
    env, job_id, _requester, _provider = hostile
    base = ["--redis-url", env.redis.url(0), "--deployment", str(env.deployment_file)]
    runner = CliRunner()
    shown = runner.invoke(cli_app, ["jobs", "show", str(job_id), *base])
    assert shown.exit_code == 0, shown.output
    assert "spec (decoded)" in shown.stdout
    assert not [c for c in RAW_CONTROLS if c in shown.stdout], [c for c in RAW_CONTROLS if c in shown.stdout]
    assert "\\u202e" in shown.stdout or "\\u202E" in shown.stdout
    for args in (["jobs", "show", str(job_id), "--json"], ["jobs", "list", "--json"]):
        out = runner.invoke(cli_app, [*args, *base])
        assert out.exit_code == 0, out.output
        assert not [c for c in RAW_CONTROLS if c in out.stdout], (args, [c for c in RAW_CONTROLS if c in out.stdout])
        data = json.loads(out.stdout)
        job = data if "spec" in data else data["jobs"][0]
        assert job["spec"]["env"]["NOTE"] == HOSTILE


def test_a_result_uri_of_unicode_digits_renders(chain_env: ChainEnv) -> None:
    """The timeline showed an argument of 16 or more digits as tokens, and str.isdigit() is true of
    "²", which int() refuses: a provider whose result URI (or endpoint) was "²" x 16 made its job's
    page and its transaction's page a 500 (found by review, stop 55). ASCII digits only now."""
    env, m = chain_env, chain_env.market
    requester, provider = m.accounts[1], m.accounts[2]
    m.fund(requester)
    m.fund(provider)
    m.register(provider, endpoint="\u00b2" * 16)
    job_id = m.post(requester, spec=_hostile_spec())
    m.claim(provider, job_id)
    m.submit(provider, job_id, uri="\u00b2" * 16)
    env.indexer().sync_once()
    with TestClient(create_app(IndexerReader(env.client(0), env.keys))) as client:
        page = client.get(f"/job/{job_id}")
        assert page.status_code == 200, page.text[-300:]
        assert "\u00b2" * 16 in page.text
        txs = re.findall(r'data-tx="(0x[0-9a-f]{64})"', page.text)
        assert len(txs) == 3  # posted, claimed, submitted
        for tx in txs:
            assert client.get(f"/tx/{tx}").status_code == 200, tx
        assert client.get(f"/provider/{provider}").status_code == 200
