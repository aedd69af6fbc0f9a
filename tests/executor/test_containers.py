"""Hardened job containers on a real Podman engine: limits seen from inside, hostile jobs contained
with the right outcome (and the engine still serving the next job), image pinning, crash recovery
and the orphan reaper. Runtimes and limits are kept small so that the module runs in seconds."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import docker
import pytest
from docker.errors import NotFound

from depin.fetch import download_and_hash
from depin.market import FailureCode
from depin.outputs import extract_archive, file_sha256, read_exit_code
from depin.spec import JobSpec
from executor.containers import (
    LABEL_EXECUTOR,
    LABEL_JOB,
    LABEL_LEASE,
    LABEL_MANAGED,
    MIB,
    OUT_SLACK_BYTES,
    ContainerGone,
    ImageUnavailable,
    OutputDir,
    check_image,
    container_name,
    managed_containers,
    prepare_output_dir,
    reap_orphans,
    release_output_dir,
    remove_container,
    run_container,
)
from executor.containers import _wait as wait_for_exit
from executor.engine import EngineUnavailable, connect, start_podman_service, stop_podman_service
from executor.execute import Outcome, execute
from executor.images import build_sample_images
from executor.result_server import create_app
from executor.results import ResultStore

from .stack import release_gate, wait_for

_counter = iter(range(1, 1_000_000))


def make_spec(images: dict[str, str], command: list[str], *, image: str = "busybox", inputs: dict[str, bytes] | None = None, **resources) -> JobSpec:
    res = {"cpus": 1, "memory_mb": 32, "max_runtime": 10, "output_mb": 1, **resources}
    items = [
        {"path": name, "uri": "data:;base64," + base64.b64encode(data).decode(), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in (inputs or {}).items()
    ]
    return JobSpec.model_validate({"image": images.get(image, image), "command": command, "inputs": items, "resources": res})


@pytest.fixture
def run_job(engine, sample_images, work_root, result_store, executor_instance):
    """Runs a spec through execute() under a fresh job id; returns (outcome, name)."""

    def run(command: list[str], **kw) -> tuple[Outcome, str]:
        job_id = next(_counter)
        name = container_name(31337, job_id, f"t{os.getpid()}")
        spec = make_spec(sample_images, command, **kw)
        outcome = execute(
            engine, job_id=job_id, spec=spec, work_root=work_root, store=result_store, name=name, labels={LABEL_EXECUTOR: executor_instance}
        )
        return outcome, name

    return run


def read_output(store: ResultStore, outcome: Outcome, dest: Path) -> dict[str, str]:
    """The job's /out files (text) from its stored archive."""
    assert outcome.kind == "result", outcome
    extract_archive(store.path(outcome.name), dest)
    return {p.relative_to(dest).as_posix(): p.read_text(errors="replace") for p in dest.rglob("*") if p.is_file()}


def assert_gone(engine: docker.DockerClient, name: str) -> None:
    with pytest.raises(NotFound):
        engine.containers.get(name)


def assert_engine_serves(run_job) -> None:
    """After a hostile job, the next ordinary job still runs to a result."""
    outcome, _name = run_job(["sh", "-c", "echo fine > /out/ok"])
    assert outcome.kind == "result" and outcome.exit_code == 0, outcome


# --- limits and isolation seen from inside ------------------------------------------------------

INSIDE = r"""
id -u > /out/uid
grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status > /out/status
cat /sys/fs/cgroup/memory/memory.limit_in_bytes > /out/mem 2>/dev/null || cat /sys/fs/cgroup/memory.max > /out/mem
cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes > /out/memsw 2>/dev/null || echo none > /out/memsw
cat /sys/fs/cgroup/pids/pids.max > /out/pids 2>/dev/null || cat /sys/fs/cgroup/pids.max > /out/pids
cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us > /out/cpu 2>/dev/null || cat /sys/fs/cgroup/cpu.max > /out/cpu
ulimit -n > /out/nofile; ulimit -u > /out/nproc
ls /sys/class/net > /out/net
find / \( -path /proc -o -path /sys \) -prune -o -type s -print > /out/sockets 2>/dev/null
ls -d /var/run/docker.sock /run/docker.sock /run/podman /var/run/podman > /out/known 2>&1
mount | grep -E ' on /(tmp|in|out) ' > /out/mounts
hostname > /out/hostname
true
"""


def test_limits_and_identity_inside_the_container(run_job, result_store, tmp_path):
    """The job runs as uid 65534 with no capabilities, no-new-privileges, the memory (= swap), pids,
    CPU and ulimit limits set, only a loopback interface and no host socket anywhere."""
    outcome, _ = run_job(["sh", "-c", INSIDE], memory_mb=48, output_mb=2, cpus=0.5)
    files = read_output(result_store, outcome, tmp_path / "x")
    assert files["uid"].strip() == "65534"
    status = dict(line.split(":\t") for line in files["status"].splitlines())
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0 and int(status["CapBnd"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    expected_mem = 48 * MIB + 2 * MIB + OUT_SLACK_BYTES  # memory_mb + the /out tmpfs (see containers.py)
    assert int(files["mem"]) == expected_mem
    assert files["memsw"].strip() in (str(expected_mem), "none")
    assert int(files["pids"]) == 128
    quota, period = (int(x) for x in files["cpu"].split())
    assert quota == period // 2
    assert files["nofile"].strip() == "1024" and files["nproc"].strip() == "4096"
    assert files["net"].split() == ["lo"]
    assert files["sockets"].strip() == ""
    assert "No such file" in files["known"] and "docker.sock\n" not in files["known"].replace("No such file", "")
    assert files["hostname"] == "depin-job\n"
    mounts = files["mounts"]
    assert " on /in " in mounts and "ro," in mounts.split(" on /in ")[1].split("\n")[0]
    assert "size=65536k" in mounts.split(" on /tmp ")[1].split("\n")[0]


def test_root_filesystem_and_inputs_are_read_only(run_job, result_store, tmp_path):
    """Writes to /, /etc, /bin and /in fail; /tmp and /out are writable; the job's exit code is kept."""
    script = (
        "for p in /x /etc/x /bin/x /in/x /in/a; do if echo hi > $p 2>/dev/null; then echo $p ok; else echo $p denied; fi; done > /out/w;"
        "echo hi > /tmp/t && echo tmp ok >> /out/w; cat /in/a > /out/copy; exit 7"
    )
    outcome, _ = run_job(["sh", "-c", script], inputs={"a": b"input bytes\n"})
    assert outcome.exit_code == 7  # a job's own failure is a result, not a failure
    files = read_output(result_store, outcome, tmp_path / "x")
    assert files["w"].split("\n")[:5] == [f"{p} denied" for p in ("/x", "/etc/x", "/bin/x", "/in/x", "/in/a")]
    assert "tmp ok" in files["w"]
    assert files["copy"] == "input bytes\n"
    assert read_exit_code(result_store.path(outcome.name)) == 7


def test_network_is_loopback_only(run_job, result_store, tmp_path):
    """A connection to an outside address fails (no route); loopback exists but nothing listens."""
    script = "nc -w 2 1.1.1.1 80 </dev/null 2>/out/ext; echo $? >> /out/ext; nc -w 1 10.0.2.2 22 </dev/null 2>>/out/ext; cat /proc/net/route > /out/route"
    outcome, _ = run_job(["sh", "-c", script])
    files = read_output(result_store, outcome, tmp_path / "x")
    assert "Network is unreachable" in files["ext"]
    assert len(files["route"].strip().splitlines()) == 1  # the header only: no routes at all


# --- hostile jobs -------------------------------------------------------------------------------


def test_fork_bomb_is_contained_by_the_pids_limit(run_job, engine):
    """A fork bomb hits the pids limit ("can't fork") instead of the host; the deadline ends it."""
    outcome, name = run_job(["sh", "-c", "b() { b | b & }; b; sleep 100"], max_runtime=3)
    assert (outcome.kind, outcome.code) == ("failure", FailureCode.TIME_LIMIT) or outcome.kind == "result", outcome
    assert_gone(engine, name)
    assert_engine_serves(run_job)


def test_process_flood_fails_to_fork_past_the_limit(run_job, result_store, tmp_path):
    """Starting 300 processes: the ones past pids_limit fail with "can't fork"."""
    # ash gives up at its first failed fork, hence the subshell; read and echo are builtins (no fork).
    script = "(i=0; while [ $i -lt 300 ]; do sleep 5 & i=$((i+1)); done) 2>/out/err; read n < /sys/fs/cgroup/pids/pids.current; echo $n > /out/n; exit 0"
    outcome, _ = run_job(["sh", "-c", script])
    files = read_output(result_store, outcome, tmp_path / "x")
    assert "can't fork" in files["err"]
    assert int(files["n"]) <= 128


def test_memory_hog_is_out_of_memory(run_job, engine):
    outcome, name = run_job(["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"], memory_mb=16)
    assert (outcome.kind, outcome.code) == ("failure", FailureCode.OUT_OF_MEMORY), outcome
    assert "survived" not in outcome.logs_tail
    assert len(outcome.evidence_hash) == 32 and outcome.evidence_hash == hashlib.sha256(outcome.evidence.encode()).digest()
    assert_gone(engine, name)
    assert_engine_serves(run_job)


def test_infinite_loop_hits_the_time_limit_and_is_removed(run_job, engine):
    outcome, name = run_job(["sh", "-c", "while :; do :; done"], max_runtime=1)
    assert (outcome.kind, outcome.code) == ("failure", FailureCode.TIME_LIMIT), outcome
    assert outcome.durations.run >= 1  # it ran until the deadline, not less
    assert_gone(engine, name)
    assert_engine_serves(run_job)


def test_a_job_that_never_exits_is_killed_at_the_deadline(run_job, engine):
    outcome, name = run_job(["sleep", "100000"], max_runtime=2)
    assert (outcome.kind, outcome.code) == ("failure", FailureCode.TIME_LIMIT), outcome
    assert outcome.durations.run >= 2  # it ran until the deadline, not less
    assert_gone(engine, name)


def test_one_gigabyte_of_output_is_stopped_at_the_cap(run_job, engine, work_root):
    """dd of 1 GiB into /out: the tmpfs refuses writes past output_mb (+ slack); the outcome is
    OUTPUT_TOO_LARGE and the host disk never receives more than the cap."""
    free_before = os.statvfs(work_root).f_bavail * os.statvfs(work_root).f_frsize
    outcome, name = run_job(["sh", "-c", "dd if=/dev/zero of=/out/big bs=1M count=1024; sync"], output_mb=4, memory_mb=32)
    free_after = os.statvfs(work_root).f_bavail * os.statvfs(work_root).f_frsize
    assert (outcome.kind, outcome.code) == ("failure", FailureCode.OUTPUT_TOO_LARGE), outcome
    assert "No space left" in outcome.logs_tail
    assert free_before - free_after < 256 * MIB  # a 1 GiB writer; other engineers share this disk, hence a loose bound
    assert_gone(engine, name)
    assert list(work_root.iterdir()) == []  # the job folder (and its tmpfs) is gone
    assert_engine_serves(run_job)


def test_output_exactly_at_the_cap_is_a_result(run_job, result_store, tmp_path):
    outcome, _ = run_job(["sh", "-c", "head -c 1048576 /dev/zero > /out/f"], output_mb=1)
    assert outcome.kind == "result", outcome
    assert os.path.getsize(result_store.path(outcome.name)) > MIB


def test_sparse_file_over_the_cap_is_output_too_large(run_job):
    outcome, _ = run_job(["sh", "-c", "dd if=/dev/zero of=/out/s bs=1 count=1 seek=100000000"], output_mb=1)
    assert (outcome.kind, outcome.code) == ("failure", FailureCode.OUTPUT_TOO_LARGE), outcome


def test_watch_mode_kills_a_writer_past_the_cap(engine, sample_images, tmp_path, executor_instance):
    """Without root (no tmpfs), the run loop measures /out and kills the job past the cap."""
    spec = make_spec(sample_images, ["sh", "-c", "while :; do head -c 262144 /dev/zero >> /out/f; sleep 0.02; done"], max_runtime=20)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    os.chmod(out_dir, 0o777)
    (tmp_path / "in").mkdir()
    name = container_name(31337, next(_counter), "watch")
    labels = {LABEL_JOB: "0", LABEL_EXECUTOR: executor_instance}
    result = run_container(
        engine, spec, image_id=spec.image_digest, name=name, labels=labels, inputs_dir=tmp_path / "in", output=OutputDir(out_dir, 2 * MIB, "watch")
    )
    assert result.status == "output_too_large" and result.exit_code is None
    assert (out_dir / "f").stat().st_size < 8 * MIB
    assert_gone(engine, name)


def test_prepare_output_dir_mounts_a_capped_tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    out = prepare_output_dir(tmp_path / "out", 3 * MIB)
    try:
        assert out.mode == "tmpfs" and out.tmpfs_bytes == 3 * MIB + OUT_SLACK_BYTES
        st = os.statvfs(out.path)
        assert st.f_blocks * st.f_frsize == out.tmpfs_bytes
        assert (out.path.stat().st_uid, oct(out.path.stat().st_mode & 0o777)) == (65534, "0o700")
    finally:
        release_output_dir(out)
    assert os.statvfs(tmp_path / "out").f_blocks * os.statvfs(tmp_path / "out").f_frsize != 3 * MIB + OUT_SLACK_BYTES


# --- image pinning, bad commands ----------------------------------------------------------------


def test_unknown_digest_is_image_unavailable(run_job, engine):
    outcome, name = run_job(["true"], image="depin/busybox@sha256:" + "0" * 64)
    assert (outcome.kind, outcome.code) == ("failure", FailureCode.IMAGE_UNAVAILABLE), outcome
    assert "sha256:" + "0" * 64 in outcome.reason
    assert_gone(engine, name)


def test_image_is_checked_by_digest_not_by_tag(engine, sample_images):
    """The local image ID must equal the pinned digest; the busybox digest under the checksum name
    still means the busybox image (the digest is the content address, the name is a label)."""
    busybox_id = sample_images["busybox"].split("@")[1]
    assert check_image(engine, sample_images["busybox"]) == busybox_id
    assert check_image(engine, "depin/checksum@" + busybox_id) == busybox_id
    other = sample_images["checksum"].split("@")[1]
    with pytest.raises(ImageUnavailable):
        check_image(engine, "depin/busybox@sha256:" + ("1" if other[-1] != "1" else "2") + other[8:])


def test_command_missing_from_the_image_is_bad_spec(run_job):
    outcome, _ = run_job(["/bin/no-such-program"])
    assert (outcome.kind, outcome.code) == ("failure", FailureCode.BAD_SPEC), outcome


def test_bad_spec_bytes_are_bad_spec(engine, work_root, result_store):
    outcome = execute(engine, job_id=1, spec=b'{"v": 1, "image": "nope"}', work_root=work_root, store=result_store, name="depin-job-0-1-bad")
    assert (outcome.kind, outcome.code) == ("failure", FailureCode.BAD_SPEC)


# --- the sample checksum job end to end ---------------------------------------------------------


def test_checksum_job_digest_matches_the_downloaded_archive(engine, sample_images, work_root, result_store, tmp_path, executor_instance):
    """The checksum job's result is served, downloaded, verified against its digest, holds the
    expected lines, and a second run gives the same digest (the job and the archive are deterministic)."""
    import uvicorn

    inputs = {"a.txt": b"one two three\n", "b.md": b"alpha\tbeta\n\ngamma  delta, epsilon.\n" * 50, "c": b""}
    spec = make_spec(sample_images, ["depin-checksum"], image="checksum", inputs=inputs)
    server = uvicorn.Server(uvicorn.Config(create_app(result_store), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        store = ResultStore(result_store.root, f"http://127.0.0.1:{port}")
        outcomes = [
            execute(engine, job_id=7, spec=spec, work_root=work_root, store=store, name=container_name(31337, 7, role), labels={LABEL_EXECUTOR: executor_instance})
            for role in ("provider", "verifier")
        ]
        first = outcomes[0]
        assert first.kind == "result" and first.exit_code == 0, first
        assert first.uri == f"http://127.0.0.1:{port}/results/{first.name}"  # an opaque name, not the digest
        assert first.digest.hex() not in first.uri and outcomes[1].name != first.name
        assert first.match_digest == first.digest  # no output selector: the whole archive must match
        path = tmp_path / "dl.tar"
        with open(path, "wb") as fh:
            assert download_and_hash(first.uri, fh, max_bytes=64 * 2**20).digest == first.digest
        assert file_sha256(path) == first.digest
        assert outcomes[1].digest == first.digest
    finally:
        server.should_exit = True
        thread.join(5)
    out = tmp_path / "extracted"
    assert extract_archive(path, out) == 0
    expected = "".join(f"{n} {hashlib.sha256(d).hexdigest()} {len(d.split())}\n" for n, d in sorted(inputs.items()))
    assert (out / "result.txt").read_text() == expected


# --- crash recovery and the reaper --------------------------------------------------------------


def _labelled(engine, sample_images, name: str, instance: str, *, job: str = "1", lease: str | None = None):
    return engine.containers.create(
        sample_images["busybox"].split("@")[1],
        ["sleep", "300"],
        name=name,
        labels={LABEL_MANAGED: "true", LABEL_EXECUTOR: instance, LABEL_JOB: job, **({LABEL_LEASE: lease} if lease else {})},
        network_mode="none",
        ulimits=[docker.types.Ulimit(name="nofile", soft=64, hard=64), docker.types.Ulimit(name="nproc", soft=4096, hard=4096)],
    )


def test_listing_the_managed_containers_while_they_are_removed_is_never_an_engine_error(engine, sample_images, executor_instance):
    """The reaper lists this executor's containers while its own tasks remove theirs. docker-py's
    ``containers.list`` inspects each listed container, and Podman answers one removed in between
    with 500 "no such container", not 404, which ``ignore_removed`` does not cover: the listing
    failed as an engine error (a CI run of a test doing the same, ci110). The listing is now the
    engine's one summary request: a container removed meanwhile is in it or not, never an error."""
    suffix = os.urandom(3).hex()
    created = [_labelled(engine, sample_images, f"depin-job-1-{n}-gone-{suffix}", executor_instance) for n in range(16)]
    names = {c.name for c in created}
    errors: list[BaseException] = []
    listings: list[set[str]] = []
    started = threading.Event()

    def remove_all() -> None:
        started.wait(10)
        for c in created:
            try:
                c.remove(force=True)
            except Exception as exc:  # reported by the assertion below
                errors.append(exc)

    remover = threading.Thread(target=remove_all)
    remover.start()
    try:
        while True:
            listed = {c.name for c in managed_containers(engine, instance=executor_instance)}
            listings.append(listed)
            started.set()
            if not listed & names:
                break
    finally:
        remover.join(60)
    assert not errors
    assert len(listings) >= 2 and listings[0] == names  # all of them listed first, none last
    assert all(listed <= names for listed in listings)
    got = managed_containers(engine, instance=executor_instance)
    assert got == []


def test_waiting_on_containers_while_something_removes_them_ends_as_gone_not_as_an_engine_error(engine, sample_images, executor_instance):
    """A run waits for its container in short slices, asking the engine for the container's state
    after each. When something else removes the container meanwhile, Podman answers that inspect
    with 500 "no such container" while the removal is under way (not 404): the wait must end as
    :class:`ContainerGone` (or with the exit code it saw), never as an engine error, which would
    stop the executor's task as if the engine had failed."""
    suffix = os.urandom(3).hex()
    created = [_labelled(engine, sample_images, f"depin-job-1-{n}-waited-{suffix}", executor_instance) for n in range(12)]
    for c in created:
        c.start()
    ends: dict[str, object] = {}
    waited = threading.Barrier(len(created) + 1, timeout=60)

    def wait_until_gone(container_id: str) -> None:
        first = True
        try:
            while True:
                code = wait_for_exit(engine, container_id, 0.02)
                if first:
                    first = False
                    waited.wait()
                if code is not None:
                    ends[container_id] = code
                    return
        except ContainerGone:
            ends[container_id] = "gone"
        except BaseException as exc:  # reported by the assertion below
            ends[container_id] = exc
            if first:
                waited.abort()

    waiters = [threading.Thread(target=wait_until_gone, args=(c.id,)) for c in created]
    for t in waiters:
        t.start()
    try:
        waited.wait()  # every waiter is in its loop
        for c in created:
            remove_container(engine, c.id)
    finally:
        for t in waiters:
            t.join(60)
    assert not [t for t in waiters if t.is_alive()]
    errors = {cid[:12]: end for cid, end in ends.items() if not (end == "gone" or isinstance(end, int))}
    assert not errors, errors
    assert len(ends) == len(created)


def test_stale_container_and_work_dir_of_the_same_name_are_replaced(engine, sample_images, work_root, result_store, executor_instance):
    """After a crash, the job's container (still running) and its work folder (with the /out tmpfs
    still mounted) are left behind; re-running the same job removes both first."""
    name = container_name(31337, 424242, "provider")
    stale = _labelled(engine, sample_images, name, executor_instance, job="424242")
    stale.start()
    leftover = prepare_output_dir(work_root / name / "out", MIB)
    (leftover.path / "junk").write_text("old")
    spec = make_spec(sample_images, ["sh", "-c", "ls /out > /out/listing"])
    outcome = execute(engine, job_id=424242, spec=spec, work_root=work_root, store=result_store, name=name, labels={LABEL_EXECUTOR: executor_instance})
    assert outcome.kind == "result" and outcome.exit_code == 0, outcome
    with pytest.raises(NotFound):
        engine.containers.get(stale.id)
    assert_gone(engine, name)
    assert not (work_root / name).exists()


def test_reaper_removes_only_unowned_labelled_containers(engine, sample_images, executor_instance):
    suffix = os.urandom(3).hex()
    live = _labelled(engine, sample_images, f"depin-job-1-1-live-{suffix}", executor_instance)
    orphan = _labelled(engine, sample_images, f"depin-job-1-2-orphan-{suffix}", executor_instance)
    orphan.start()
    other = _labelled(engine, sample_images, f"depin-job-1-3-other-{suffix}", executor_instance + "-other")
    unlabelled = engine.containers.create(sample_images["busybox"].split("@")[1], ["true"], name=f"unrelated-{suffix}", network_mode="none")
    try:
        removed = reap_orphans(engine, {live.name}, instance=executor_instance)
        assert removed == [orphan.name]
        for kept in (live, other, unlabelled):
            kept.reload()
        with pytest.raises(NotFound):
            orphan.reload()
    finally:
        for c in (live, other, unlabelled):
            c.remove(force=True)


def test_the_reaper_never_removes_a_live_run_whose_records_were_wiped(engine, sample_images, executor_instance, tmp_path):
    """Found by review: with the executor's Redis wiped (FLUSHDB, a restart without persistence)
    while a job's container ran, the beat's reaper found the container in no record and under no
    lease and removed it on one look: the live run was lost (restarted or late: the provider
    slashed). Now a container outside the jobs and seats in hand is removed only when two looks a
    lease TTL apart find the lease its run holds (its ``depin.lease`` label) free: a live run takes
    its lease back within a third of the TTL. Real Podman containers, a real redis-server."""
    from depin.keys import ExecKeys
    from executor import beat
    from executor.lease import Lease
    from tests.indexer.services import RedisServer

    server = RedisServer(tmp_path / "redis")
    r = server.client(0)
    xkeys = ExecKeys(31337, "0xmarket", "provider", "0xme")
    rt = SimpleNamespace(state=r, xkeys=xkeys, instance=executor_instance, docker=engine, chain_id=31337, lease_ttl=1.0,
                         container_name=lambda j: container_name(31337, j, executor_instance))
    suffix = os.urandom(3).hex()
    live = _labelled(engine, sample_images, f"depin-job-1-7-live-{suffix}", executor_instance, job="7", lease=xkeys.lease(7))
    dead = _labelled(engine, sample_images, f"depin-job-1-8-dead-{suffix}", executor_instance, job="8", lease=xkeys.lease(8))
    try:
        for c in (live, dead):
            c.start()
        # The database was wiped: no record, no job in hand, no lease key. One look only marks them.
        assert beat.reap(rt, []) == []
        assert set(r.hkeys(xkeys.orphans)) == {live.id, dead.id}
        holder = Lease(r, xkeys.lease(7), ttl=30)  # the live run's renewal takes its lease back
        assert holder.acquire(renew=False)
        removed = wait_for(lambda: beat.reap(rt, []), 30, "the dead run's container to be removed")
        assert removed == [dead.name]
        live.reload()
        assert live.status == "running" and r.hkeys(xkeys.orphans) == []  # seen live: its mark is dropped
        with pytest.raises(NotFound):
            dead.reload()
        holder.release()  # the live run's task dies with its container left behind: two looks again
        assert beat.reap(rt, []) == [] and r.hkeys(xkeys.orphans) == [live.id]
        assert wait_for(lambda: beat.reap(rt, []), 30, "the container to be removed") == [live.name]
    finally:
        for c in (live, dead):
            try:
                c.remove(force=True)
            except NotFound:
                pass
        server.stop()


# --- the engine ---------------------------------------------------------------------------------


def test_connect_starts_and_reuses_a_podman_service(monkeypatch):
    import tempfile

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    state = Path(tempfile.mkdtemp(prefix="depin-eng-"))
    try:
        client = connect(state_dir=state)
        assert client.ping()
        pid = int((state / "podman.pid").read_text())
        assert start_podman_service(state)[0] == pid  # reused, not restarted
        assert "runtime = \"runc\"" in (state / "containers.conf").read_text()
        client.close()
    finally:
        stopped = stop_podman_service(state)
        leftovers = sorted(p.name for p in state.iterdir())
        shutil.rmtree(state, ignore_errors=True)
    assert stopped is True
    assert "podman.sock" not in leftovers and "podman.pid" not in leftovers
    assert stop_podman_service(state) is False


def test_connect_to_a_dead_host_says_what_to_do(tmp_path, monkeypatch):
    # A start-up wait of 1 s, not the default 60: the answer is the same, the test takes a second.
    monkeypatch.setenv("DEPIN_ENGINE_WAIT", "1")
    with pytest.raises(EngineUnavailable, match="no container engine answers"):
        connect(f"unix://{tmp_path}/nothing.sock")


def test_sample_images_build_is_idempotent(engine, sample_images):
    assert build_sample_images(engine) == sample_images
    assert set(sample_images) >= {"busybox", "checksum"}
    for ref in sample_images.values():
        assert engine.images.get(ref.split("@")[1]).attrs["Config"]["User"] == "65534:65534"


# --- caps outside the spec: logs, policy, unrepresentable output --------------------------------


def test_container_log_is_size_capped(engine, sample_images, tmp_path, executor_instance):
    """A job printing 4 MB keeps at most about LOG_MAX_SIZE (1 MiB) of log on the engine's disk.
    The size is read once the engine's log holds the job's last line (so all 4 MB went through the
    log driver), while the job still runs (so the log file still exists)."""
    from executor.containers import LOG_MAX_SIZE

    assert LOG_MAX_SIZE == "1m"
    script = "head -c 4000000 /dev/zero | tr '\\0' 'x' | fold -w 100; echo THE-END; while [ ! -e /tmp/go ]; do sleep 0.05; done"
    spec = make_spec(sample_images, ["sh", "-c", script], max_runtime=60)
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    name = container_name(31337, next(_counter), "logs")
    box: dict = {}
    thread = threading.Thread(
        target=lambda: box.setdefault(
            "result",
            run_container(
                engine, spec, image_id=spec.image_digest, name=name, labels={LABEL_JOB: "0", LABEL_EXECUTOR: executor_instance},
                inputs_dir=tmp_path / "in", output=OutputDir(tmp_path / "out", MIB, "watch"), deadline_seconds=60,
            ),
        )
    )
    thread.start()
    try:
        container = wait_for(lambda: _existing(engine, name), 60, "the container to exist")
        wait_for(lambda: b"THE-END" in container.logs(tail=2), 120, "the job's last line in the engine's log")
        log_path = Path(container.attrs["LogPath"])
        assert 0 < log_path.stat().st_size <= 1.2 * MIB
        release_gate(container)
        thread.join(60)
    finally:
        if thread.is_alive():
            remove_container(engine, name)
            thread.join(60)
    assert box["result"].exit_code == 0, box["result"]
    assert "THE-END" in box["result"].logs_tail


def _existing(engine, name: str):
    try:
        return engine.containers.get(name)
    except NotFound:
        return None


def test_spec_over_the_policy_is_refused_before_anything_runs(engine, sample_images, work_root, result_store):
    from depin.config import PolicyConfig
    from executor.execute import PolicyRefused

    spec = make_spec(sample_images, ["true"], memory_mb=512, max_runtime=100)
    with pytest.raises(PolicyRefused, match="memory_mb 512 > 256; max_runtime 100 > 60"):
        execute(engine, job_id=5, spec=spec, work_root=work_root, store=result_store, name="depin-job-0-5-p",
                limits_cap=PolicyConfig(max_memory_mb=256, max_runtime=60))
    assert list(work_root.iterdir()) == []


def test_output_the_archive_cannot_hold_is_output_invalid(run_job):
    """A fifo in /out has no place in depin-result-v1: the job's output is unrepresentable."""
    outcome, _ = run_job(["mkfifo", "/out/pipe"])
    assert (outcome.kind, outcome.code) == ("failure", FailureCode.OUTPUT_INVALID), outcome
    assert "cannot be archived" in outcome.reason


NESTED_LETTERS = "i=0; while [ $i -lt 1000 ]; do mkdir a && cd a || exit 1; i=$((i+1)); done; echo deep > x"
NESTED_LONG_NAMES = "n=$(printf 'n%.0s' $(seq 200)); i=0; while [ $i -lt 30 ]; do mkdir $n && cd $n || exit 1; i=$((i+1)); done; echo deep > x"


@pytest.mark.parametrize(
    ("command", "reason"),
    [(f"cd /out && {NESTED_LETTERS}", "levels deep"), (f"cd /out && {NESTED_LONG_NAMES}", "byte path")],
    ids=["1000-nested-folders", "30-nested-200-char-names"],
)
def test_hostile_output_trees_are_output_invalid_not_a_crash(run_job, engine, work_root, command, reason):
    """1,000 nested folders (RecursionError in os.walk before) and 30 nested 200-character names
    (ENAMETOOLONG before) end as OUTPUT_INVALID outcomes; nothing is left behind."""
    outcome, name = run_job(["sh", "-c", command], max_runtime=30)
    assert (outcome.kind, outcome.code) == ("failure", FailureCode.OUTPUT_INVALID), outcome
    assert reason in outcome.reason
    assert_gone(engine, name)
    assert list(work_root.iterdir()) == []


def test_a_logs_request_the_engine_never_answers_does_not_hold_the_run() -> None:
    """Podman 4.3 sometimes never answers a logs request for a just-exited container (seen in
    the executor benchmark); the log tail is informational and gets a bounded wait."""
    from executor.containers import _logs_tail

    release = threading.Event()

    class Hanging:
        def logs(self, **_: object) -> bytes:
            release.wait(30)
            return b"late"

    assert "did not answer within 1 s" in _logs_tail(Hanging(), timeout=1.0)  # type: ignore[arg-type]
    assert not release.is_set()  # it gave up waiting; the request is still hanging
    release.set()

    class Answering:
        def logs(self, **_: object) -> bytes:
            return b"x" * 10 + "é".encode()

    assert _logs_tail(Answering()).endswith("xé")  # type: ignore[arg-type]
