"""Canonical spec bytes are RFC 8785 (JCS): one logical job has one encoding, hence one specHash,
whatever language the client is written in; non-canonical bytes are refused where they would run."""

from __future__ import annotations

import json

import pytest

from depin.errors import SpecError
from depin.spec import JobSpec, canonical_json, check_canonical, noncanonical_reason, parse_spec, spec_hash

DIGEST = "ab" * 32


def _spec(cpus: object = 1, **over: object) -> dict:
    spec = {
        "v": 1,
        "image": f"depin/checksum@sha256:{DIGEST}",
        "command": ["sha256sum", "/in/data"],
        "env": {"GREETING": "héllo ☃ \U0001f600", "CTRL": "a\tb\u001f\"\\"},
        "inputs": [{"path": "data", "uri": "data:;base64,aGk=", "sha256": "8f" * 32}],
        "resources": {"cpus": cpus, "memory_mb": 64, "max_runtime": 30, "output_mb": 16},
    }
    spec.update(over)
    return spec


def test_one_and_one_point_zero_are_one_encoding() -> None:
    """`1`, `1.0` and `1e0` are the same JCS number: the model and the raw route give the same bytes."""
    as_int, as_float = canonical_json(_spec(cpus=1)), canonical_json(_spec(cpus=1.0))
    assert as_int == as_float and b'"cpus":1,' in as_int
    assert JobSpec.model_validate(_spec(cpus=1)).to_bytes() == JobSpec.model_validate(_spec(cpus=1.0)).to_bytes()
    assert b'"cpus":0.5,' in canonical_json(_spec(cpus=0.5))
    for spelling in (b'"cpus":1.0,', b'"cpus":1e0,', b'"cpus":1.00,'):
        raw = as_int.replace(b'"cpus":1,', spelling)
        assert raw != as_int and json.loads(raw) == json.loads(as_int)
        assert "not canonical JSON (RFC 8785" in (noncanonical_reason(raw, json.loads(raw)) or "")
    assert noncanonical_reason(as_int, json.loads(as_int)) is None


def test_canonical_bytes_are_the_rfc_8785_form() -> None:
    """Keys sorted, no whitespace, non-ASCII as UTF-8, only the mandatory escapes (control
    characters as lower-case \\u00XX, quote and backslash), the input's own hash checked too."""
    raw = canonical_json(_spec())
    text = raw.decode("utf-8")
    assert text.startswith('{"command":["sha256sum","/in/data"],"env":{"CTRL":"a\\tb\\u001f\\"\\\\","GREETING":"héllo ☃ \U0001f600"}')
    assert " " not in text.replace("héllo ☃ ", "")
    assert parse_spec(raw, spec_hash(raw)).env["GREETING"] == "héllo ☃ \U0001f600"


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda d: json.dumps(d, sort_keys=False, separators=(",", ":"), ensure_ascii=False), id="key-order"),
        pytest.param(lambda d: json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=True), id="unicode-escapes"),
        pytest.param(lambda d: json.dumps(d, sort_keys=True, ensure_ascii=False), id="whitespace"),
        pytest.param(lambda d: json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n", id="newline"),
        pytest.param(
            lambda d: json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).replace('{"command"', '{"v":1,"command"', 1),
            id="duplicate-key",
        ),
        pytest.param(
            lambda d: json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).replace('"memory_mb":64', '"memory_mb":64.0'),
            id="integer-as-float",
        ),
    ],
)
def test_non_canonical_bytes_are_never_accepted_as_posted(variant) -> None:
    """Each variant parses to the same spec but is not its canonical form: parse_spec with the
    on-chain hash (what an executor does before claiming or running) refuses it, and the SDK
    refuses to post it."""
    raw = variant(_spec()).encode("utf-8")
    assert raw != canonical_json(_spec())
    assert JobSpec.model_validate(json.loads(raw)).to_bytes() == canonical_json(_spec())
    with pytest.raises(SpecError, match=r"not canonical JSON \(RFC 8785"):
        parse_spec(raw, spec_hash(raw))
    with pytest.raises(SpecError, match=r"not canonical JSON \(RFC 8785"):
        check_canonical(raw)
    parse_spec(raw)  # a local file (no on-chain hash) may be written any way: it is canonicalized before posting


def test_values_jcs_cannot_represent_are_spec_errors() -> None:
    for value in (2**53 + 1, float("nan"), float("inf")):
        with pytest.raises(SpecError, match="RFC 8785"):
            canonical_json({"x": value})
    huge = b'{"v":123456789012345678901234567890}'
    assert "cannot represent" in (noncanonical_reason(huge, json.loads(huge)) or "")
