"""The job spec schema: canonical bytes, hash check, and a clear error for each kind of bad spec."""

from __future__ import annotations

import json

import pytest

from depin.errors import SpecError
from depin.spec import JobSpec, cpu_seconds, example_spec, parse_spec, spec_hash

DIGEST = "ab" * 32


def _spec(**over: object) -> dict:
    spec = {
        "v": 1,
        "image": f"depin/checksum@sha256:{DIGEST}",
        "command": ["sha256sum", "/in/data"],
        "inputs": [{"path": "data", "uri": "data:;base64,aGk=", "sha256": "8f" * 32}],
        "resources": {"cpus": 0.5, "memory_mb": 64, "max_runtime": 30},
    }
    spec.update(over)
    return spec


def test_canonical_bytes_round_trip_and_hash() -> None:
    spec = JobSpec.model_validate(_spec())
    raw = spec.to_bytes()
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    assert parse_spec(raw, spec_hash(raw)) == spec
    assert spec.resources.output_mb == 16 and spec.image_digest == f"sha256:{DIGEST}"
    assert cpu_seconds(spec) == 15


def test_example_spec_is_valid() -> None:
    assert parse_spec(example_spec(3)).command == ["sha256sum", "/in/a"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not UTF-8 JSON"),
        (b"[1]", "JSON object"),
        (json.dumps(_spec(v=2)).encode(), "unsupported spec version 2"),
        (json.dumps(_spec(image="depin/checksum:latest")).encode(), "image: Value error, must be REPOSITORY@sha256"),
        (json.dumps(_spec(command=[])).encode(), "command"),
        (json.dumps(_spec(inputs=[{"path": "../x", "uri": "file:///x", "sha256": "00" * 32}])).encode(), "plain file name"),
        (json.dumps(_spec(inputs=[{"path": "x", "uri": "ftp://x", "sha256": "00" * 32}])).encode(), "must start with"),
        (json.dumps(_spec(resources={"cpus": 0, "memory_mb": 64, "max_runtime": 1})).encode(), "resources.cpus"),
        # NanoCpus int(1e-10 * 1e9) == 0 is no CPU limit at all to the engine
        (json.dumps(_spec(resources={"cpus": 1e-10, "memory_mb": 64, "max_runtime": 86_400})).encode(), "resources.cpus"),
        (json.dumps(_spec(resources={"cpus": 0.009, "memory_mb": 64, "max_runtime": 1})).encode(), "resources.cpus"),
        (json.dumps(_spec(extra=1)).encode(), "extra: Extra inputs are not permitted"),
        (json.dumps(_spec(env={"1BAD": "x"})).encode(), "bad variable name"),
        # runc refuses to start such a container: a job that never starts, held until its deadline
        (json.dumps(_spec(env={"X": "a\u0000b"})).encode(), "the value of 'X' contains a NUL character"),
        (json.dumps(_spec(command=["sh", "-c", "echo a\u0000b"])).encode(), "argument(s) 2 contain a NUL character"),
    ],
)
def test_bad_specs_raise_a_clear_spec_error(data: bytes, message: str) -> None:
    with pytest.raises(SpecError, match=None) as info:
        parse_spec(data)
    assert message in str(info.value)


def test_a_spec_over_the_size_limit_is_refused_as_a_dict_and_when_sealed() -> None:
    """Executors and the indexer refuse spec bytes over MAX_SPEC_BYTES: a dict whose canonical bytes
    are longer is refused too (it used to pass: only bytes were measured), and so is a spec the
    delivery key pushes over the limit."""
    from depin.delivery import public_key_of
    from depin.spec import MAX_SPEC_BYTES, with_delivery

    with pytest.raises(SpecError, match=r"the canonical spec is 20\d\d\d bytes; the limit is 16384"):
        parse_spec(_spec(env={"A": "x" * 20_000}))
    assert MAX_SPEC_BYTES == 16_384
    base = len(JobSpec.model_validate(_spec(env={"A": ""})).to_bytes())
    near = JobSpec.model_validate(_spec(env={"A": "x" * (MAX_SPEC_BYTES - base)}))
    assert len(near.to_bytes()) == MAX_SPEC_BYTES and parse_spec(near.to_bytes()) == near  # at the limit: fine
    with pytest.raises(SpecError, match="the spec with its delivery key is 16[45]\\d\\d bytes; the limit is 16384"):
        with_delivery(near, public_key_of(b"\x5a" * 32))


def test_hash_mismatch_is_refused() -> None:
    raw = JobSpec.model_validate(_spec()).to_bytes()
    with pytest.raises(SpecError, match="not the on-chain specHash"):
        parse_spec(raw, b"\x00" * 32)


def test_status_labels_match_the_indexer() -> None:
    from depin.keys import JOB_STATUSES
    from depin.market import JobStatus

    assert [s.label for s in JobStatus] == list(JOB_STATUSES)


def test_with_delivery_adds_the_key_and_keeps_everything_else() -> None:
    """What Client.post_job posts by default: the spec plus delivery.encrypt_to (compressed, 0x-hex),
    canonical, hashed with the key in; raw bytes keep the fields they leave out."""
    from depin.delivery import public_key_of
    from depin.spec import check_canonical, with_delivery

    key = public_key_of(b"\x5a" * 32)
    raw = example_spec(3)  # leaves env and output_mb out
    sealed = with_delivery(raw, key)
    check_canonical(sealed)
    obj = json.loads(sealed)
    assert obj.pop("delivery") == {"encrypt_to": "0x" + key.hex()} and obj == json.loads(raw)
    assert spec_hash(sealed) != spec_hash(raw) and parse_spec(sealed, spec_hash(sealed)).encrypt_to == key
    from coincurve import PublicKey

    uncompressed = PublicKey(key).format(compressed=False)
    assert with_delivery(raw, "0x" + uncompressed.hex()) == sealed  # written compressed whatever the form given
    spec = JobSpec.model_validate(_spec())
    assert with_delivery(spec, key) == parse_spec({**json.loads(spec.to_bytes()), "delivery": {"encrypt_to": "0x" + key.hex()}}).to_bytes()
    with pytest.raises(SpecError, match="delivery.encrypt_to"):
        with_delivery(raw, "0x02" + "00" * 32)
