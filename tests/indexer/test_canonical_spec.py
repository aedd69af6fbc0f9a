"""Specs posted on chain by a client that does not produce RFC 8785 (JCS) bytes are indexed with
specValid 0 and a specError saying so (executors skip such jobs: see
tests/executor/test_executor_units.py); the canonical bytes of the same spec are valid, and so are
those the SDK posts by default (the spec sealed to the poster: ``delivery.encrypt_to`` added)."""

from __future__ import annotations

import json

from depin.delivery import public_key_of
from depin.spec import example_spec, with_delivery

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
    # what Client.post_job / `depin job post` post by default: the same spec sealed to the poster
    sealed = with_delivery(canonical, public_key_of(b"\x5a" * 32))
    ids = {name: m.post(requester, spec=raw) for name, raw in posted.items()}
    sealed_id = m.post(requester, spec=sealed)
    chain_env.indexer().sync_once()
    r = chain_env.client()
    jobs = {name: r.hgetall(chain_env.keys.job(job_id)) for name, job_id in ids.items()}
    good = jobs.pop("canonical")
    assert good["specValid"] == "1" and good["specJson"].encode() == canonical and "specError" not in good
    indexed = r.hgetall(chain_env.keys.job(sealed_id))
    assert indexed["specValid"] == "1" and indexed["specJson"].encode() == sealed and "specError" not in indexed
    assert json.loads(indexed["specJson"])["delivery"] == {"encrypt_to": "0x" + public_key_of(b"\x5a" * 32).hex()}
    for name, job in jobs.items():
        assert job["status"] == "Open", name
        assert job["specValid"] == "0" and "specJson" not in job, name
        assert "not canonical JSON (RFC 8785 / JCS)" in job["specError"], (name, job["specError"])
        assert bytes.fromhex(job["spec"][2:]) == posted[name]
