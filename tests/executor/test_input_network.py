"""Input URLs cannot reach the provider's own network, through the real path: jobs posted on anvil,
claimed and run by the provider executor's Celery workers (tests/executor/stack.py).

A service listens only on 127.0.0.1 (as an admin API on a provider would); a second server on
127.0.0.2 stands for a public source (the provider's ``[policy] input_allow_networks`` lists it,
since this machine has no internet). A job that points at the loopback service, one redirected
there by the allowed server, and one at the cloud metadata address each end with an
InputHashMismatch failure whose published reason and on-chain evidence say nothing the service
sent; the service is never contacted; the provider keeps its stake; the next job runs."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator

import httpx
import pytest

from depin.market import FailureCode, JobStatus
from executor.execute import failure_evidence

from .recording_server import RecordingServer
from .stack import PROVIDER, REQUESTER, Stack, spec

SECRET = b"admin-config: token=hunter2\n"
SECRET_SHA = hashlib.sha256(SECRET).hexdigest()
SECRET_HEADER = "X-Internal-Build"
PUBLIC = b"a public input\n"
ADMIN = "/admin/config?token=1"


@pytest.fixture(scope="module")
def internal() -> Iterator[RecordingServer]:
    with RecordingServer("127.0.0.1", {ADMIN: (200, {SECRET_HEADER: "s3cr3t-build-42"}, SECRET)}) as server:
        yield server


@pytest.fixture(scope="module")
def allowed(internal: RecordingServer) -> Iterator[RecordingServer]:
    routes = {"/hop": (302, {"Location": f"http://127.0.0.1:{internal.port}{ADMIN}"}, b""), "/data": (200, {}, PUBLIC)}
    with RecordingServer("127.0.0.2", routes) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("inputnet"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER)
        s.provider = s.executor("provider", "provider", PROVIDER, policy={"images": [], "input_allow_networks": ["127.0.0.2/32"]})
        yield s
    finally:
        s.close()


def _input_job(stack: Stack, uri: str, sha256: str) -> int:
    inputs = [{"path": "data", "uri": uri, "sha256": sha256}]
    return stack.post(spec(stack.images["busybox"], ["sh", "-c", "cat /in/data > /out/copy"], inputs=inputs))


def _assert_clean_failure(stack: Stack, job_id: int, *, internal_port: int | None = None) -> str:
    """The job ended as an input failure whose reason and evidence carry nothing the internal service
    sent; returns the reason."""
    failures = stack.events(job_id, "FailureSubmitted")
    assert len(failures) == 1 and not stack.events(job_id, "ResultSubmitted"), failures
    assert int(failures[0]["args"]["code"]) == FailureCode.INPUT_HASH_MISMATCH
    record = stack.exec_record(stack.provider, job_id)
    reason = record["failure_reason"]
    assert len(reason) < 500 and "non-public address" in reason, reason
    for leaked in (SECRET.decode().strip(), "hunter2", SECRET_SHA, SECRET_HEADER, "s3cr3t", "admin-config"):
        assert leaked not in reason
    if internal_port is not None:  # a redirect's target is not the requester's to learn
        assert str(internal_port) not in reason and "/admin" not in reason
    # the on-chain evidence is the hash of exactly that text (the job, the code, the image, the reason)
    evidence = failure_evidence(job_id, FailureCode.INPUT_HASH_MISMATCH, reason, stack.images["busybox"])
    assert failures[0]["args"]["evidenceHash"].lower() == "0x" + hashlib.sha256(evidence.encode()).hexdigest()
    return reason


def test_inputs_aimed_at_the_providers_network_fail_cleanly_and_the_next_job_runs(
    stack: Stack, internal: RecordingServer, allowed: RecordingServer
) -> None:
    provider = stack.accounts[PROVIDER]
    staked_before = stack.market.get_provider(provider)["staked"]

    loopback = _input_job(stack, f"http://127.0.0.1:{internal.port}{ADMIN}", SECRET_SHA)  # even with the right hash
    redirected = _input_job(stack, f"{allowed.base}/hop", "ee" * 32)
    metadata = _input_job(stack, "http://169.254.169.254/latest/meta-data/iam/security-credentials/", "ee" * 32)
    for job_id in (loopback, redirected, metadata):
        stack.wait_status(job_id, JobStatus.FINALIZED, timeout=60)

    _assert_clean_failure(stack, loopback)
    assert "a redirect from" in _assert_clean_failure(stack, redirected, internal_port=internal.port)
    _assert_clean_failure(stack, metadata)
    assert internal.connections == 0 and internal.requests == []  # never contacted, not even a TCP connect
    assert [r.path for r in allowed.requests] == ["/hop"]  # only the first, allowed hop
    # nothing burned: the stake is whole and no collateral is left locked
    info = stack.market.get_provider(provider)
    assert info["staked"] == staked_before and info["locked"] == 0

    # the next job, with an input from the allowed source, runs and its result carries the input
    normal = _input_job(stack, f"{allowed.base}/data", hashlib.sha256(PUBLIC).hexdigest())
    stack.wait_status(normal, JobStatus.FINALIZED, timeout=60)
    results = stack.events(normal, "ResultSubmitted")
    assert len(results) == 1 and not stack.events(normal, "FailureSubmitted")
    with tarfile.open(fileobj=io.BytesIO(stack.download(results[0]["args"]["resultURI"]))) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("copy"))
        assert tar.extractfile(member).read() == PUBLIC  # type: ignore[union-attr]
    assert stack.market.get_provider(provider)["staked"] == staked_before

    # the internal service was up all along: it answers the test itself
    assert httpx.get(f"http://127.0.0.1:{internal.port}{ADMIN}", timeout=5).content == SECRET
