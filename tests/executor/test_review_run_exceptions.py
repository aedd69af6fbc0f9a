"""Review (stop 55): exceptions a requester's data could raise out of a provider's run. ``run_job``
takes any exception that is neither transient nor a soft time limit for a crash and gives the job
up: never submitted, it times out in the honest provider's hands and the collateral is slashed.

1. An http(s) input whose URL (or a redirect's Location, from the requester's own server) has a
   port of 2**63 or more: httpx takes any number of digits, and ``socket.getaddrinfo`` raised
   OverflowError, which no fetcher caught (``depin.addresses.resolve`` caught gaierror and
   UnicodeError; ``execute`` mapped ValueError, TypeError and LookupError). A port from 65536 to
   2**31 was no error at all: the connection went to the port modulo 65536. Fixed: a URL's port
   must be 1-65535 (``depin.fetch.parse_url``, which both fetchers read URLs and Locations with);
   ``resolve`` turns what the resolver raises into HostUnresolvable; execute maps ArithmeticError
   too; the requester's own download (``download_and_hash``) says FetchError.
2. An image whose StopSignal is "²" or 5,000 digits (tests/executor/test_hostile_images.py).
3. An allowed-image digest written in capitals in the operator's ``[policy] images``: the dispatcher
   compared lower-cased and claimed, the run compared as written and refused (PolicyRefused: given
   up), for every job of that image. The config lower-cases digests now.
4. ``parse_spec`` raised a plain ValueError, not SpecError, for an integer of over 4,300 digits
   (the index marks such bytes invalid, so no run met it; SDK callers did).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from depin.config import PolicyConfig
from depin.errors import SpecError
from depin.fetch import FetchError, download_and_hash
from depin.market import FailureCode
from depin.spec import InputSpec, JobSpec, check_canonical, parse_spec
from executor.containers import LABEL_EXECUTOR, container_name
from executor.execute import check_policy, execute
from executor.inputs import InputUnavailable, fetch_input

from .recording_server import RecordingServer

ALLOWED = ["127.0.0.2/32"]  # 127.0.0.2 stands for the hostile party's public server
PORTS = ["99999999999999999999", str(2**63), "65536", "99999", "0"]


def _item(uri: str) -> InputSpec:
    return InputSpec(path="data", uri=uri, sha256="ab" * 32)


@pytest.mark.parametrize("port", PORTS)
def test_an_input_url_with_a_port_out_of_range_is_unavailable_not_a_crash(tmp_path: Path, port: str) -> None:
    with pytest.raises(InputUnavailable, match="not a valid http\\(s\\) URL") as info:
        fetch_input(_item(f"http://127.0.0.2:{port}/x"), tmp_path, allow_networks=ALLOWED)
    assert info.value.retryable is False


@pytest.mark.parametrize("port", PORTS)
def test_a_redirect_to_a_port_out_of_range_is_unavailable_not_a_crash(tmp_path: Path, port: str) -> None:
    with RecordingServer("127.0.0.2", {"/in": (302, {"Location": f"http://127.0.0.2:{port}/x"}, b"")}) as hostile, \
            pytest.raises(InputUnavailable, match="a redirect") as info:
        fetch_input(_item(hostile.base + "/in"), tmp_path, allow_networks=ALLOWED)
    assert info.value.retryable is False and len(hostile.requests) == 1  # nothing was asked of the port


@pytest.mark.parametrize("pinned", [True, False], ids=["resolver", "plain"])
@pytest.mark.parametrize("port", PORTS[:3])
def test_the_requesters_download_from_a_port_out_of_range_is_a_fetch_error(pinned: bool, port: str) -> None:
    from depin.addresses import parse_networks, public_resolver

    resolver = public_resolver(parse_networks(ALLOWED)) if pinned else None
    with pytest.raises(FetchError):
        download_and_hash(f"http://127.0.0.2:{port}/r", max_bytes=10, resolver=resolver)
    with RecordingServer("127.0.0.2", {"/r": (302, {"Location": f"http://127.0.0.2:{port}/x"}, b"")}) as hostile, pytest.raises(FetchError):
        download_and_hash(hostile.base + "/r", max_bytes=10, resolver=resolver)


def test_execute_reports_an_input_port_out_of_range_as_an_input_failure(
    engine, sample_images, work_root, result_store, executor_instance
) -> None:
    """What provider.run_job calls: an outcome, not an exception (OverflowError before)."""
    spec = JobSpec.model_validate({
        "image": sample_images["busybox"], "command": ["sh", "-c", "echo ran > /out/ran"],
        "inputs": [{"path": "data", "uri": "http://127.0.0.2:99999999999999999999/x", "sha256": "ab" * 32}],
        "resources": {"cpus": 1, "memory_mb": 16, "max_runtime": 5},
    })
    outcome = execute(
        engine, job_id=9301, spec=spec, work_root=work_root, store=result_store, name=container_name(31337, 9301, "provider"),
        labels={LABEL_EXECUTOR: executor_instance}, input_allow_networks=ALLOWED,
    )
    assert (outcome.kind, outcome.code, outcome.retryable) == ("failure", FailureCode.INPUT_HASH_MISMATCH, False)


def test_an_allowed_digest_written_in_capitals_is_the_same_digest_to_the_run() -> None:
    digest = "ab" * 32
    policy = PolicyConfig(images=["sha256:" + digest.upper()])
    assert policy.images == ["sha256:" + digest]
    spec = JobSpec.model_validate({"image": f"depin/busybox@sha256:{digest}", "command": ["true"],
                                   "resources": {"cpus": 1, "memory_mb": 16, "max_runtime": 5}})
    check_policy(spec, policy)  # what the dispatcher approved, the run takes (it raised PolicyRefused)
    with pytest.raises(ValueError, match="sha256:<64 hex>"):
        PolicyConfig(images=["sha256:" + "zz" * 32])


def test_a_spec_with_an_integer_of_over_4300_digits_is_a_spec_error() -> None:
    raw = b'{"v":1,"x":' + b"9" * 5000 + b"}"
    for parse in (parse_spec, check_canonical):
        with pytest.raises(SpecError, match="not UTF-8 JSON"):
            parse(raw)
