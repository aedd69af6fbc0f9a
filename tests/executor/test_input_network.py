"""Input URLs cannot reach the provider's own network, through the real path: jobs posted on anvil,
claimed and run by the provider executor's Celery workers (tests/executor/stack.py).

A service listens only on 127.0.0.1 (as an admin API on a provider would); a second server on
127.0.0.2 stands for a public source (the provider's ``[policy] input_allow_networks`` lists it,
since this machine has no internet). A job that points at the loopback service, one redirected
there by the allowed server, and one at the cloud metadata address each end with an
InputHashMismatch failure whose published reason says nothing the service sent (only a salted
commitment to the failure code goes on chain); the service is never contacted. An input failure is
an availability failure, "no fault but not free": the market reopens the job at once and burns 2 %
of the reward from the provider's collateral; the executor never claims the job again; the next job
runs."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator

import httpx
import pytest

from depin.commitment import commitment, failure_digest
from depin.market import FailureCode, JobStatus
from tests.client.served import trickle

from .recording_server import RecordingServer
from .stack import PROVIDER, REQUESTER, TOKEN, Stack, spec, wait_for

NO_FAULT_FEE = TOKEN * 200 // 10_000  # noFaultFeeBps of a 1-token reward, from each side

SECRET = b"admin-config: token=hunter2\n"
SECRET_SHA = hashlib.sha256(SECRET).hexdigest()
SECRET_HEADER = "X-Internal-Build"
PUBLIC = b"a public input\n"
ADMIN = "/admin/config?token=1"
BIG = b"\x00" * ((1 << 20) + 1)  # one byte over the provider's max_input_mb = 1


@pytest.fixture(scope="module")
def internal() -> Iterator[RecordingServer]:
    with RecordingServer("127.0.0.1", {ADMIN: (200, {SECRET_HEADER: "s3cr3t-build-42"}, SECRET)}) as server:
        yield server


@pytest.fixture(scope="module")
def allowed(internal: RecordingServer) -> Iterator[RecordingServer]:
    routes = {
        "/hop": (302, {"Location": f"http://127.0.0.1:{internal.port}{ADMIN}"}, b""),
        "/data": (200, {}, PUBLIC),
        "/big": (200, {}, BIG),
    }
    with RecordingServer("127.0.0.2", routes) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("inputnet"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER)
        s.provider = s.executor(
            "provider", "provider", PROVIDER, policy={"images": [], "input_allow_networks": ["127.0.0.2/32"], "max_input_mb": 1}
        )
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
    # the record says no_fault once the submission's receipt is seen, after the chain (and the
    # index) show the NoFaultFailure the caller waited for (executor.provider.submit_outcome)
    record = wait_for(lambda: (r := stack.exec_record(stack.provider, job_id)).get("state") == "no_fault" and r, 30,
                      f"job {job_id}'s record to say no_fault")
    reason = record["failure_reason"]
    assert len(reason) < 500 and "non-public address" in reason, reason
    for leaked in (SECRET.decode().strip(), "hunter2", SECRET_SHA, SECRET_HEADER, "s3cr3t", "admin-config"):
        assert leaked not in reason
    if internal_port is not None:  # a redirect's target is not the requester's to learn
        assert str(internal_port) not in reason and "/admin" not in reason
    # on chain only the salted commitment to the code; the job reopened and we refuse it for good
    provider = stack.accounts[PROVIDER]
    ex = stack.provider
    entry = json.loads((ex.workdir / "state" / "journal" / ex.instance() / f"{job_id}.json").read_text())
    salt = bytes.fromhex(entry["salt"][2:])
    expected = "0x" + commitment(provider, job_id, failure_digest(FailureCode.INPUT_HASH_MISMATCH), salt).hex()
    assert failures[0]["args"]["commitment"].lower() == expected == record["commitment"]
    assert record.get("refused")
    assert len(stack.events(job_id, "NoFaultFailure")) == 1
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
        stack.wait_event(job_id, "NoFaultFailure")
        assert stack.status(job_id) == JobStatus.OPEN  # reopened at once, for another provider

    _assert_clean_failure(stack, loopback)
    assert "a redirect from" in _assert_clean_failure(stack, redirected, internal_port=internal.port)
    _assert_clean_failure(stack, metadata)
    assert internal.connections == 0 and internal.requests == []  # never contacted, not even a TCP connect
    assert [r.path for r in allowed.requests] == ["/hop"]  # only the first, allowed hop
    # no fault but not free: 2 % of R burned from the collateral per job, the rest unlocked
    info = stack.market.get_provider(provider)
    assert info["staked"] == staked_before - 3 * NO_FAULT_FEE and info["locked"] == 0
    staked_before = info["staked"]

    # the next job, with an input from the allowed source, runs and its result carries the input
    normal = _input_job(stack, f"{allowed.base}/data", hashlib.sha256(PUBLIC).hexdigest())
    stack.wait_status(normal, JobStatus.FINALIZED, timeout=60)
    results = stack.events(normal, "ResultSubmitted")
    assert len(results) == 1 and not stack.events(normal, "FailureSubmitted")
    with tarfile.open(fileobj=io.BytesIO(stack.download(results[0]["args"]["resultURI"]))) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("copy"))
        assert tar.extractfile(member).read() == PUBLIC  # type: ignore[union-attr]
    assert stack.market.get_provider(provider)["staked"] == staked_before
    # the reopened jobs were never claimed again by this executor
    for job_id in (loopback, redirected, metadata):
        assert stack.status(job_id) == JobStatus.OPEN and len(stack.events(job_id, "JobClaimed")) == 1

    # the internal service was up all along: it answers the test itself
    assert httpx.get(f"http://127.0.0.1:{internal.port}{ADMIN}", timeout=5).content == SECRET


def test_an_input_that_never_ends_is_given_up_in_time_to_report_it(stack: Stack) -> None:
    """An input served one byte every half second for ever (from an allowed address, under the cap
    it declares): the provider's fetch stops when the submit window has only the spec's runtime and
    the submission margin left, and the failure report lands before the deadline (a no-fault
    failure: the job reopens at once), not a missed deadline that slashes the collateral. Before,
    one input alone could take 300 s, past this job's 60 s window."""
    provider = stack.accounts[PROVIDER]
    staked_before = stack.market.get_provider(provider)["staked"]
    with trickle(host="127.0.0.2", every=0.5, declared=None) as (base, hung_up):
        job_id = _input_job(stack, f"{base}/never-ends", "ee" * 32)
        stack.wait_event(job_id, "NoFaultFailure", timeout=180)
        assert hung_up.wait(30), "the provider still reads the endless input"
    (failure,) = stack.events(job_id, "FailureSubmitted")
    assert int(failure["args"]["code"]) == FailureCode.INPUT_HASH_MISMATCH
    assert not stack.events(job_id, "JobTimedOut")
    record = stack.exec_record(stack.provider, job_id)
    assert "was not fetched in the time this job leaves for its inputs" in record["failure_reason"], record
    assert stack.market.get_provider(provider)["staked"] == staked_before - NO_FAULT_FEE


def test_inputs_over_the_policys_max_input_mb_are_refused(stack: Stack, allowed: RecordingServer) -> None:
    """``[policy] max_input_mb`` (1 here) caps all of a job's inputs together (and the tmpfs they
    land in): an input one byte over it is an input failure, reported, and the job reopens."""
    job_id = _input_job(stack, f"{allowed.base}/big", hashlib.sha256(BIG).hexdigest())
    stack.wait_event(job_id, "NoFaultFailure")
    record = stack.exec_record(stack.provider, job_id)
    assert "exceeds the executor's input cap (1048576 bytes left for this job)" in record["failure_reason"], record
