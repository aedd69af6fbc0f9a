"""Specs posted on chain by a client that does not produce RFC 8785 (JCS) bytes are indexed with
specValid 0 and a specError saying so (executors skip such jobs: see
tests/executor/test_executor_units.py); the canonical bytes of the same spec are valid, and so are
those the SDK posts by default (the spec sealed to the poster: ``delivery.encrypt_to`` added)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from depin.delivery import public_key_of
from depin.spec import example_spec, noncanonical_reason, with_delivery
from indexer.reducer import _canonical_fast

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


# ---------------------------------------------------------------------------------------- the fast check

# JSON values with the characters and numbers where RFC 8785 and a plain sorted encoding could part:
# escapes, control characters, non-ASCII and astral keys (UTF-16 order), floats, integers at 2^53.
_TEXT = st.text(alphabet=st.sampled_from(['a', 'Z', '"', "\\", "\n", "\x00", "\x1f", "\x7f", "é", "\u2028", "\ue000",
                                          "\U0001f600", "/", " "]), max_size=4)
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | _TEXT
    | st.sampled_from([0, -1, 2**53 - 1, -(2**53 - 1), 2**53, -(2**53), 10**30, 1.0, 0.5, 1e21, 1e-7, -0.0])
    | st.integers(-1000, 1000),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_JSON_VALUES, st.sampled_from(["sorted", "insertion", "spaced"]))
def test_the_fast_canonical_check_never_accepts_what_rfc8785_rejects(value: Any, layout: str) -> None:
    """The indexer's fast path (msgspec's sorted compact JSON for strings, safe integers and ASCII
    keys) may only say "canonical" when rfc8785 agrees; whatever it declines goes to rfc8785."""
    if layout == "sorted":
        try:
            raw = msgspec.json.encode(value, order="sorted")
        except (UnicodeEncodeError, OverflowError, ValueError):
            return
    else:
        sep = (",", ":") if layout == "insertion" else (", ", ": ")
        raw = json.dumps(value, separators=sep, ensure_ascii=False).encode("utf-8", "surrogatepass")
    parsed = json.loads(raw)
    if _canonical_fast(raw, parsed):
        assert noncanonical_reason(raw, parsed) is None, raw


def test_the_fast_canonical_check_accepts_an_ordinary_spec() -> None:
    raw = example_spec(7)
    assert _canonical_fast(raw, json.loads(raw))
    assert not _canonical_fast(raw.replace(b'"cpus":1,', b'"cpus":1.0,'), json.loads(raw))
