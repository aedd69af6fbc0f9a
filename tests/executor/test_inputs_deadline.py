"""A job's inputs share one deadline (executor.inputs.fetch_inputs): what the job's submit window
leaves for them, and JOB_INPUTS_TIMEOUT at most, so that a slow or endless input server can never
push a provider's submission past its deadline or its compute task past its time limit. Against a
real local server that sends one byte every 50 ms for ever."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import pytest

from depin.spec import parse_spec
from executor import inputs as inputs_module
from executor.inputs import InputUnavailable, fetch_inputs
from tests.client.served import trickle, trickle_head

LOOPBACK = ["127.0.0.0/8"]


def _spec(uri: str) -> object:
    return parse_spec({
        "v": 1, "image": "depin/busybox@sha256:" + "ab" * 32, "command": ["true"],
        "inputs": [{"path": "data", "uri": uri, "sha256": "ee" * 32}],
        "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 10, "output_mb": 1},
    })


def test_an_endless_input_stops_at_the_jobs_deadline(tmp_path: Path) -> None:
    with trickle() as (base, hung_up):
        with pytest.raises(InputUnavailable, match="was not fetched in the time this job leaves for its inputs") as err:
            fetch_inputs(_spec(f"{base}/endless"), tmp_path / "in", allow_networks=LOOPBACK, deadline=time.monotonic() + 1)
        assert hung_up.wait(30)
    assert err.value.retryable  # the caller retries while its window allows, then reports the failure
    assert list((tmp_path / "in").iterdir()) == []


def test_an_input_whose_response_head_never_ends_stops_at_the_deadline(tmp_path: Path) -> None:
    """The deadline was checked between body chunks only: a server sending its response head one
    byte per read timeout held the fetch as long as it liked, and the provider past its submit
    deadline (found by review, stop 36). The connection is now shut down at the deadline."""
    with trickle_head() as (base, hung_up):
        with pytest.raises(InputUnavailable, match="was not fetched in the time this job leaves for its inputs"):
            fetch_inputs(_spec(f"{base}/head"), tmp_path / "in", timeout=1.0, allow_networks=LOOPBACK, deadline=time.monotonic() + 2)
        assert hung_up.wait(30)


def test_an_https_input_whose_response_head_never_ends_stops_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, localhost_cert: tuple[Path, Path]
) -> None:
    """The same over TLS. The watchdog was handed the TCP socket only, which the TLS wrapping
    detaches (its file descriptor moves to the TLS socket): shutting it down did nothing, and the
    head trickled past the deadline for as long as the server liked (found in stop 40). The TLS
    socket is handed too."""
    import certifi

    cert, key = localhost_cert
    monkeypatch.setattr(certifi, "where", lambda: str(cert))  # the fetcher trusts this test CA, as it would a public one
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with trickle_head(tls=context, give_up=60) as (base, hung_up):
        with pytest.raises(InputUnavailable, match="was not fetched in the time this job leaves for its inputs"):
            fetch_inputs(_spec(f"{base}/head"), tmp_path / "in", timeout=1.0, allow_networks=["127.0.0.0/8", "::1/128"], deadline=time.monotonic() + 2)
        assert hung_up.wait(30)


def test_a_deadline_already_past_sends_nothing(tmp_path: Path) -> None:
    with trickle() as (base, _hung_up), pytest.raises(InputUnavailable, match="in the time this job leaves"):
        fetch_inputs(_spec(f"{base}/endless"), tmp_path / "in", allow_networks=LOOPBACK, deadline=time.monotonic() - 1)


def test_without_a_deadline_the_inputs_still_end_by_the_job_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs_module, "JOB_INPUTS_TIMEOUT", 1.0)
    with trickle() as (base, hung_up):
        with pytest.raises(InputUnavailable, match="in the time this job leaves"):
            fetch_inputs(_spec(f"{base}/endless"), tmp_path / "in", allow_networks=LOOPBACK)
        assert hung_up.wait(30)


def test_an_input_within_the_deadline_is_fetched(tmp_path: Path) -> None:
    import hashlib

    body = b"whole\n"
    with trickle({"/whole": body}) as (base, _hung_up):
        spec = parse_spec({
            "v": 1, "image": "depin/busybox@sha256:" + "ab" * 32, "command": ["true"],
            "inputs": [{"path": "data", "uri": f"{base}/whole", "sha256": hashlib.sha256(body).hexdigest()}],
            "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 10, "output_mb": 1},
        })
        (got,) = fetch_inputs(spec, tmp_path / "in", allow_networks=LOOPBACK, deadline=time.monotonic() + 60)
    assert got.path.read_bytes() == body
