"""Review (stop 40, crash safety and exactly-once): a provider's compute worker that is merely paused
(SIGSTOP, a VM pause, heavy swapping) for longer than its lease while the job's container runs, and
a result store whose disk is full when the archive is stored. Real anvil, Redis, Celery workers
and Podman (:mod:`tests.executor.stack`); every step waits for recorded state, never for time."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from depin.commitment import commitment
from depin.market import JobStatus
from depin.outputs import build_archive
from executor.containers import LABEL_EXECUTOR, LABEL_JOB
from executor.results import SubmissionJournal

from .stack import PROVIDER, REQUESTER, Executor, Stack, exec_prefix, release_gate, spec, terms_for, wait_for

GATED = ["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo done > /out/x"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine, sample_images) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("review-crash"), engine, sample_images)
    try:
        s.setup_provider(PROVIDER)
        s.setup_funded(REQUESTER)
        s.provider = s.executor("provider", "provider", PROVIDER)
        yield s
    finally:
        s.close()


def _running_container(stack: Stack, ex: Executor, job_id: int) -> Any:
    found = stack.engine.containers.list(
        filters={"label": [f"{LABEL_EXECUTOR}={ex.instance()}", f"{LABEL_JOB}={job_id}"], "status": "running"}, ignore_removed=True
    )
    return found[0] if found else None


def _expected_digest(tmp: Path, files: dict[str, bytes], exit_code: int = 0) -> str:
    """The digest of the honest result: the archive of an /out holding `files`."""
    out = tmp / "out"
    out.mkdir(parents=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
        os.chmod(out / name, 0o644)
    return "0x" + build_archive(out, exit_code, tmp / "expected.tar").digest.hex()


def _record(stack: Stack, job_id: int) -> dict[str, str]:
    return stack.exec_record(stack.provider, job_id)


def test_a_paused_run_woken_late_never_spoils_its_successor(stack: Stack, tmp_path: Path) -> None:
    """The compute worker's process running a job is paused (SIGSTOP: a VM pause, heavy swapping)
    for longer than the job's lease while the job's container runs. Recovery hands the job to
    another process, whose run removes the paused run's container and starts the job again in the
    same work folder (the container name and the folder are per job). The paused process then
    wakes: its container is gone (ContainerGone, retried), and on the way out its `finally` blocks
    unmount the job's /out, /in and /etc tmpfs and delete the job's work folder, which now belong
    to the live run. The live run's job ends, but its init report is gone with the folder
    (InitFailed): the run is lost, and the retried attempt of the woken process runs the job a
    third time from scratch. A job that needs more than a third of its submit window misses its
    deadline (the provider's collateral slashed); the run that should have ended the job did not."""
    p = stack.provider
    state = stack.state()
    job_id = stack.post(spec(stack.images["busybox"], GATED, max_runtime=30))
    first = wait_for(lambda: _running_container(stack, p, job_id), 120, "the job's container to run")
    lease_key = f"{exec_prefix(stack, p)}:lease:{job_id}"
    token = wait_for(lambda: state.get(lease_key), 30, "the run's lease")
    pid = int(token.split(":")[1])  # the token names the holder: host:pid:random (executor.lease.new_token)
    os.kill(pid, signal.SIGSTOP)
    try:
        second = wait_for(lambda: (c := _running_container(stack, p, job_id)) is not None and c.id != first.id and c, 120,
                          "recovery to start the job again in another process")
        assert state.get(lease_key) != token
        mark = len(p.log_lines("worker-compute"))
    finally:
        os.kill(pid, signal.SIGCONT)
    # The woken process ends its attempt (its container is gone): wait for Celery's line on it.
    wait_for(lambda: _task_ended_in(p, pid, mark), 60, "the paused run's attempt to end")
    release_gate(second)  # the live run's job ends now

    def settled_or_rerun() -> Any:
        if _record(stack, job_id).get("state") in ("outcome", "submitted", "finalized"):
            return "settled"
        third = _running_container(stack, p, job_id)
        return third is not None and third.id not in (first.id, second.id) and third

    seen = wait_for(settled_or_rerun, 120, "the live run to end the job")
    if seen != "settled":  # the live run was lost: let the third run end the job, then fail
        release_gate(seen)
        stack.wait_status(job_id, (JobStatus.SUBMITTED, JobStatus.FINALIZED), timeout=120)
        lost = [e["msg"][:300] for e in p.log_lines("worker-compute") if "depin.run[" in str(e.get("msg")) and "retry" in str(e.get("msg"))]
        raise AssertionError(f"the live run was lost and the job ran a third time; retries: {lost}")
    stack.wait_status(job_id, (JobStatus.SUBMITTED, JobStatus.FINALIZED), timeout=120)
    rec = _record(stack, job_id)
    assert stack.chain_log_count(job_id, "FailureSubmitted") == 0, rec
    assert rec.get("kind") == "result", rec
    assert rec.get("digest") == _expected_digest(tmp_path, {"x": b"done\n"}), rec


def _task_ended_in(ex: Executor, pid: int, after: int) -> bool:
    """Whether a depin.run attempt of process `pid` ended (Celery's retry, success or failure line)
    in the compute worker's log lines from index `after` on."""
    for e in ex.log_lines("worker-compute")[after:]:
        msg = str(e.get("msg", ""))
        if e.get("pid") == pid and msg.startswith("Task depin.run[") and any(w in msg for w in ("retry", "succeeded", "raised")):
            return True
    return False


def _pool_children(ex: Executor) -> list[int]:
    """The compute worker's prefork pool processes (the children of its main process)."""
    main = ex.procs["worker-compute"].pid
    found: list[int] = []
    for task in Path(f"/proc/{main}/task").iterdir():
        found += [int(x) for x in (task / "children").read_text().split()]
    return found


def _stopped(pid: int) -> bool:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0] in ("T", "t")


def test_a_paused_run_never_overwrites_the_submitted_journal_entry(stack: Stack) -> None:
    """The process running a job pauses (a VM pause, heavy swapping: SIGSTOP here, sent by strace
    the instant it has looked the job's journal entry up and found none) after its run ended and
    before it journals the outcome. Its lease expires; recovery runs the job again in the other
    process, which journals its own salt, records the outcome and submits its commitment. The
    paused process then wakes and writes *its* entry (another salt, another archive name) over the
    one whose commitment is on chain. Nothing checks the lease before the write. Once the job is
    drawn or challenged, the provider reveals from the journal: the salt does not open its
    commitment, and an honest provider loses the case (collateral slashed)."""
    p = stack.provider
    state = stack.state()
    terms = terms_for(challenge_window=600)
    job_id = stack.post(spec(stack.images["busybox"], GATED, max_runtime=30), terms=terms)
    first = wait_for(lambda: _running_container(stack, p, job_id), 120, "the job's container to run")
    lease_key = f"{exec_prefix(stack, p)}:lease:{job_id}"
    token = wait_for(lambda: state.get(lease_key), 30, "the run's lease")
    pid = int(token.split(":")[1])
    journal = SubmissionJournal(p.workdir / "state" / "journal" / p.instance())
    entry = journal._path(job_id)
    assert not entry.exists()
    # strace stops the run's process (SIGSTOP) right after the openat that finds no journal entry
    tracer = subprocess.Popen(["strace", "-qq", "-o", "/dev/null", "-p", str(pid), "-P", str(entry), "-e", "trace=openat",
                               "-e", "inject=openat:signal=SIGSTOP:when=1"], stderr=subprocess.PIPE)
    try:
        wait_for(lambda: Path(f"/proc/{pid}/status").read_text().count("TracerPid:\t0") == 0, 30, "strace to attach")
        release_gate(first)
        wait_for(lambda: _stopped(pid), 60, "the run to pause right after its journal look-up")
        # Seen stopped may be strace's signal-delivery stop for the SIGSTOP it injects: detached
        # there (before it restarts the process into the group stop), the signal is dropped and the
        # run goes on. A SIGSTOP of our own, pending, stops it again on any resume.
        os.kill(pid, signal.SIGSTOP)
    finally:
        tracer.terminate()
        tracer.wait(10)
    try:
        # Detached from a ptrace stop, the process is woken and takes the pending SIGSTOP on its way
        # back to user code, before it runs any: on a busy machine it may not have been scheduled yet
        # when we look, so wait for the stop, then check that nothing was written meanwhile.
        wait_for(lambda: _stopped(pid), 30, "the run to stop on the pending SIGSTOP once strace detached")
        assert not entry.exists(), "the paused run wrote its journal entry when strace detached"
        second = wait_for(lambda: (c := _running_container(stack, p, job_id)) is not None and c.id != first.id and c, 120,
                          "recovery to run the job again in the other process")
        release_gate(second)
        stack.wait_status(job_id, JobStatus.SUBMITTED, timeout=120)
        on_chain = "0x" + bytes(stack.job(job_id)["commitment"]).hex()
        assert journal.load(job_id).commitment == on_chain  # the live run's entry
        mark = len(p.log_lines("worker-compute"))
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: _task_ended_in(p, pid, mark), 60, "the woken run's attempt to end")
    sub = journal.load(job_id)
    assert sub is not None
    opened = "0x" + commitment(sub.party, job_id, bytes.fromhex(sub.committed[2:]), bytes.fromhex(sub.salt[2:])).hex()
    assert opened == on_chain, f"the journal's salt opens {opened}, the chain holds {on_chain}"
    assert sub.commitment == on_chain


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_result_store_is_retried_not_abandoned(stack: Stack) -> None:
    """The result store is its own filesystem (a volume for the published archives) and it is full
    when a run stores its archive: the copy fails with ENOSPC. The module's rule is that the
    provider's own machine failing (disk full) is a ProviderFault, retried; the job is never blamed
    nor given up for it. Here the OSError escapes `execute` as it is, `run_job` takes it for a
    crash and gives the job up (abandoned, refused): no retry once space is freed, the job times
    out in the provider's hands and its collateral is slashed."""
    p = stack.provider
    results = p.workdir / "state" / "results"
    results.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "depin-review-full", str(results)], check=True)
    try:
        job_id = stack.post(spec(stack.images["busybox"], ["sh", "-c", "dd if=/dev/zero of=/out/x bs=1024 count=256 2>/dev/null"]))

        def first_failure() -> Any:
            if _record(stack, job_id).get("state") == "abandoned":
                return "abandoned"
            return [e for e in p.log_lines("worker-compute") if "depin.run[" in str(e.get("msg")) and "No space left" in str(e.get("msg"))]

        wait_for(first_failure, 120, "the store to run out of space")
        subprocess.run(["mount", "-o", "remount,size=16m", str(results)], check=True)  # space freed
        rec = _record(stack, job_id)
        assert rec.get("state") != "abandoned", rec
        stack.wait_status(job_id, (JobStatus.SUBMITTED, JobStatus.FINALIZED), timeout=180)
        assert stack.chain_log_count(job_id, "ResultSubmitted") == 1
    finally:
        subprocess.run(["umount", "-l", str(results)], check=False)
