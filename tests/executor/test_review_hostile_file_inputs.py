"""Review (hostile bytes, stop 55): a ``file://`` input URI is the requester's text, and some texts
were no path at all. ``file:///%00`` (a NUL once unquoted), ``file://localhost/x%00y``, ``file://[/x``
and ``file://a]/x`` (an unbalanced bracket in the host part) pass the spec's checks (the URI only
has to start with ``file://``), so the job is valid and a provider claims it. Its fetcher then
parsed and resolved the path *before* it looked at the allowed roots, so even a provider with no
roots (the default off a devnet) met a plain ``ValueError`` ("embedded null byte", "Invalid IPv6
URL"). That is not an InputError: it left :func:`executor.execute.execute`, and
``provider.run_job`` took it for a crash and gave the job up (``except Exception`` → give_up): no
submission, the job timed out in the honest provider's hands and its collateral was slashed, and
every provider that claimed it after a reopen lost its collateral the same way, for the price of
one post. The requester's own ``download_and_hash`` raised the same ``ValueError`` instead of
FetchError for such a result URI.

Fixed: with no roots a ``file://`` input is refused before its text is parsed; every way the text
can fail to name a readable regular file below a root is InputUnavailable (not retried); the file
is opened like ``depin.fetch``'s (:func:`depin.fetch.open_regular_file`: without blocking, so a FIFO
or a device below a root is refused instead of holding the run); ``execute`` turns any
``ValueError``/``TypeError``/``LookupError`` out of the input fetch into an input failure (audited
like any) instead of a crash, and a full disk while fetching into a retried ProviderFault (the
provider's own fault, as for the output)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from depin.fetch import FetchError, download_and_hash
from depin.market import FailureCode
from depin.spec import InputSpec, JobSpec, canonical_json, parse_spec
from executor.containers import LABEL_EXECUTOR, container_name
from executor.execute import ProviderFault, execute
from executor.inputs import InputUnavailable, fetch_input
from tests.blocking import raised_within

NOT_PATHS = ["file:///%00", "file:///tmp/a%00b", "file://localhost/x%00y", "file://[/x", "file://a]/x"]


def _item(uri: str) -> InputSpec:
    return InputSpec(path="data", uri=uri, sha256="ab" * 32)


def _spec(images: dict[str, str], uri: str) -> JobSpec:
    return JobSpec.model_validate({
        "image": images["busybox"], "command": ["sh", "-c", "echo ran > /out/ran"],
        "inputs": [{"path": "data", "uri": uri, "sha256": "ab" * 32}],
        "resources": {"cpus": 1, "memory_mb": 16, "max_runtime": 5},
    })


@pytest.mark.parametrize("uri", NOT_PATHS)
@pytest.mark.parametrize("with_roots", [False, True], ids=["no-roots", "roots"])
def test_a_file_input_that_names_no_path_is_unavailable_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uri: str, with_roots: bool) -> None:
    parse_spec(canonical_json({"v": 1, "image": "depin/busybox@sha256:" + "ab" * 32, "command": ["true"],  # a valid spec
                               "inputs": [{"path": "data", "uri": uri, "sha256": "00" * 32}],
                               "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 60, "output_mb": 16}}))
    monkeypatch.delenv("DEPIN_INPUT_FILE_ROOTS", raising=False)
    roots = [tmp_path, Path("/")] if with_roots else None
    dest = tmp_path / "in"
    dest.mkdir()
    with pytest.raises(InputUnavailable) as info:
        fetch_input(_item(uri), dest, file_roots=roots)
    assert info.value.retryable is False
    assert ("outside the allowed file roots (none is set" in str(info.value)) is not with_roots
    assert sorted(p.name for p in dest.iterdir()) == []  # no download, no staging folder left


def test_a_fifo_a_device_or_a_link_loop_below_a_root_is_unavailable_at_once(tmp_path: Path) -> None:
    """A devnet's roots: a FIFO held the fetch in open() for ever (past the inputs' deadline, which
    is checked between reads), /dev/zero never ended, a symbolic link loop raised RuntimeError."""
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "fifo")
    (root / "loop").symlink_to(root / "loop")
    dest = tmp_path / "in"
    dest.mkdir()
    try:
        for uri, roots, message in (((root / "fifo").as_uri(), [root], "cannot be read"), ("file:///dev/zero", [Path("/dev")], "cannot be read"),
                                    ((root / "loop").as_uri(), [root], "is not a path")):
            exc = raised_within(60, lambda uri=uri, roots=roots: fetch_input(_item(uri), dest, file_roots=roots))
            assert isinstance(exc, InputUnavailable) and message in str(exc) and exc.retryable is False, (uri, exc)
    finally:  # had a reader blocked in open() (the defect), a writer lets it go
        try:
            os.close(os.open(root / "fifo", os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # no reader waiting: ENXIO


def test_a_regular_file_below_a_root_is_still_fetched(tmp_path: Path) -> None:
    import hashlib

    root = tmp_path / "root"
    root.mkdir()
    (root / "f").write_bytes(b"payload")
    got = fetch_input(InputSpec(path="data", uri=(root / "f").as_uri(), sha256=hashlib.sha256(b"payload").hexdigest()), tmp_path, file_roots=[root])
    assert got.path.read_bytes() == b"payload" and got.size == 7


@pytest.mark.parametrize("uri", ["file:///%00", "file://[/x"])
@pytest.mark.parametrize("with_roots", [False, True], ids=["no-roots", "roots"])
def test_execute_reports_a_file_input_that_names_no_path_as_an_input_failure(
    engine, sample_images, work_root, result_store, executor_instance, monkeypatch: pytest.MonkeyPatch, uri: str, with_roots: bool
) -> None:
    """What provider.run_job calls: an outcome (an input failure to submit, not retried), not an
    exception, which run_job takes for a crash and gives the job up."""
    monkeypatch.delenv("DEPIN_INPUT_FILE_ROOTS", raising=False)
    outcome = execute(
        engine, job_id=9201, spec=_spec(sample_images, uri), work_root=work_root, store=result_store,
        name=container_name(31337, 9201, "provider"), labels={LABEL_EXECUTOR: executor_instance},
        file_roots=[work_root.parent, Path("/")] if with_roots else None,
    )
    assert (outcome.kind, outcome.code, outcome.retryable) == ("failure", FailureCode.INPUT_HASH_MISMATCH, False)
    assert outcome.reason.startswith("unavailable:") and outcome.durations.run == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_disk_while_fetching_the_inputs_is_the_providers_fault(
    engine, sample_images, tmp_path: Path, result_store, executor_instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The work folder is a 64 KiB tmpfs and the input 1 MiB: ENOSPC while writing the download is
    a ProviderFault (retried), never a failure blamed on the job nor a crash that gives it up.
    Run as root, the executor mounts a tmpfs of its own at ``/in`` (executor.containers
    prepare_input_dir); a provider without root fetches into the work folder's disk, which is what
    this test stands in for by declining that one mount."""
    import hashlib

    from executor import containers

    mount = containers._private_tmpfs
    monkeypatch.setattr(containers, "_private_tmpfs", lambda path, source, *a, **k: False if source == "depin-in" else mount(path, source, *a, **k))

    root, work = tmp_path / "root", tmp_path / "work"
    root.mkdir()
    work.mkdir()
    data = os.urandom(1 << 20)
    (root / "big").write_bytes(data)
    spec = JobSpec.model_validate({
        "image": sample_images["busybox"], "command": ["true"],
        "inputs": [{"path": "data", "uri": (root / "big").as_uri(), "sha256": hashlib.sha256(data).hexdigest()}],
        "resources": {"cpus": 1, "memory_mb": 16, "max_runtime": 5},
    })
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "depin-test-full", str(work)], check=True)
    try:
        with pytest.raises(ProviderFault, match="fetching the inputs.*No space left"):
            execute(engine, job_id=9202, spec=spec, work_root=work, store=result_store, name=container_name(31337, 9202, "provider"),
                    labels={LABEL_EXECUTOR: executor_instance}, file_roots=[root])
    finally:
        subprocess.run(["umount", str(work)], check=True)


@pytest.mark.parametrize("uri", ["file:///%00", "file:///tmp/a%00b", "file://[/x", "http://[/x", "https://a]/x"])
def test_the_requesters_download_of_a_uri_that_is_no_path_or_url_is_a_fetch_error(uri: str) -> None:
    """download_and_hash promises FetchError for anything (`depin job result` prints one line)."""
    with pytest.raises(FetchError):
        download_and_hash(uri, max_bytes=10, schemes=("http", "https", "file"))
