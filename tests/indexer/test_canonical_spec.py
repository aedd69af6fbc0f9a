"""Specs posted on chain by a client that does not produce RFC 8785 (JCS) bytes are indexed with
specValid 0 and a specError saying so (executors skip such jobs: see
tests/executor/test_executor_units.py); the canonical bytes of the same spec are valid."""

from __future__ import annotations

import json

from depin.spec import example_spec

from .services import ChainEnv


def test_specs_posted_raw_in_a_non_canonical_encoding_are_marked_invalid(chain_env: ChainEnv) -> None:
    m = chain_env.market
    requester = m.accounts[3]
    m.fund(requester)
    canonical = example_spec(7)
    parsed = json.loads(canonical)
    posted = {
        "canonical": canonical,
        "one-point-zero": canonical.replace(b'"cpus":1,', b'"cpus":1.0,'),
        "key-order": json.dumps(dict(reversed(list(parsed.items()))), separators=(",", ":")).encode(),
        "unicode-escape": canonical.replace(b'"sha256sum"', b'"sha256\\u0073um"'),
        "whitespace": json.dumps(parsed, sort_keys=True).encode(),
    }
    assert all(json.loads(raw) == parsed for raw in posted.values())
    ids = {name: m.post(requester, spec=raw) for name, raw in posted.items()}
    chain_env.indexer().sync_once()
    r = chain_env.client()
    jobs = {name: r.hgetall(chain_env.keys.job(job_id)) for name, job_id in ids.items()}
    good = jobs.pop("canonical")
    assert good["specValid"] == "1" and good["specJson"].encode() == canonical and "specError" not in good
    for name, job in jobs.items():
        assert job["status"] == "Open", name
        assert job["specValid"] == "0" and "specJson" not in job, name
        assert "not canonical JSON (RFC 8785 / JCS)" in job["specError"], (name, job["specError"])
        assert bytes.fromhex(job["spec"][2:]) == posted[name]
