"""Executing one job end to end: inputs → image → hardened container → result archive → store.

:func:`execute` is the plain, testable function that the Celery ``compute`` task calls. It returns an :class:`Outcome`:

- ``kind="result"``: the job ran to its own end. Its exit code, **whatever it is**, is part of the
  result (it is the first entry of the ``depin-result-v1`` archive): a job that fails by its own
  logic still has a result that anyone can recompute.
- ``kind="failure"``: a provable failure to submit instead of a result (``FailureCode``): the image
  is not available under its digest (``IMAGE_UNAVAILABLE``), an input does not hash to its sha256
  (``INPUT_HASH_MISMATCH``), the job ran out of memory (``OUT_OF_MEMORY``), ran past
  ``max_runtime`` (``TIME_LIMIT``), wrote more than ``output_mb`` (``OUTPUT_TOO_LARGE``), the spec
  cannot be run (``BAD_SPEC``: unparsable spec bytes, a command the image cannot execute), or the
  output is one the archive format cannot represent (``OUTPUT_INVALID``: a fifo or device, a tree
  deeper, longer or with more entries than :class:`depin.outputs.OutputLimits`).
  ``evidence_hash`` is the sha256 of ``evidence``, a short canonical text naming the job, the code
  and the reason.
  ``retryable=True`` marks a failure that is *not proven*: an input could not be fetched at all
  (see :mod:`executor.inputs`); the caller should retry later and submit it only as a last resort.

What is *not* an outcome but an exception: the engine failing (:class:`ContainerEngineError`, retry
the task), the provider's own machine failing while it fetches the inputs or handles the output
(:class:`ProviderFault`: disk full, out of descriptors or memory, I/O error; retry the task) and a
spec outside this executor's policy (:class:`PolicyRefused`: the dispatcher should not have claimed
it; clamping the limits instead would change the job's result).

**Output handling never crashes a run.** Once the container has ended, whatever the job left in
``/out`` is turned into an outcome: the walk's limits give ``OUTPUT_TOO_LARGE`` / ``OUTPUT_INVALID``,
and *any other* exception while measuring or archiving the output also becomes ``OUTPUT_INVALID``
(with the exception's type in the reason), because after the limits the remaining surprises come
from what the job wrote (names, links, shapes), and an exception there would otherwise crash the
task, re-run the job on every recovery and burn the provider's collateral at the timeout. The one
exception kept apart is an ``OSError`` whose errno says the provider's machine ran out of something
(:data:`depin.outputs.PROVIDER_ERRNOS`): that is the provider's fault, never blamed on the job; it
becomes :class:`ProviderFault` (retried; a provider whose disk stays full times out on its own
account). The same holds for storing the archive in the result store (a full store volume) and,
in :mod:`executor.execution`, for journaling the submission (:func:`provider_faults`). A failure outcome is committed and drawn for audit like a result: a verifier that
archives the same output meets the same error.

Idempotent per job and role: the job's folder is ``<work_root>/<name>`` (``name`` is the
deterministic container name, e.g. :func:`executor.containers.container_name`) and each attempt
works in its own folder below it (``run-<random>``); a re-run after a crash first removes the stale
container of that name, unmounts and deletes the job's folder (every earlier attempt's), and at
the end deletes only its own attempt's folder (and the job's when it is empty). So an attempt that
was paused past its lease (a VM pause, heavy swapping) while another took the job over and started
it again wakes to find its own folder gone, and its way out never touches the live attempt's
``/out``, ``/in`` and ``/etc`` mounts or its init report. Every run stores its archive under a
fresh opaque name (:mod:`executor.results`); the provider's submission journal keeps the name it
submits and drops a re-run's duplicate. A result outcome carries the archive's digest (delivery) and its *match
digest* (:func:`depin.outputs.match_digest` under the spec's output selector; the same digest when
the spec selects nothing): independent runs must agree on the match digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import shutil
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from depin.config import PolicyConfig
from depin.errors import ExecutionError, SpecError
from depin.market import FailureCode
from depin.outputs import PROVIDER_ERRNOS, InvalidOutput, OutputTooLarge, ResultArchive, UnsafeArchive, build_archive, match_digest
from depin.spec import JobSpec, parse_spec
from executor.containers import (
    DEFAULT_CONTAINER_LIMITS,
    LABEL_EXECUTOR,
    LABEL_JOB,
    MIB,
    ContainerEngineError,
    ContainerLimits,
    ImageUnavailable,
    check_image,
    image_config_fault,
    image_mount_fault,
    prepare_etc_dir,
    prepare_input_dir,
    prepare_output_dir,
    refused_command,
    release_output_dir,
    remove_container,
    run_container,
    unmount_all_under,
)
from executor.inputs import MAX_INPUT_BYTES, InputHashMismatch, InputUnavailable, fetch_inputs
from executor.results import ResultStore

DEFAULT_INSTANCE = socket.gethostname()
EVIDENCE_FORMAT = "depin-failure-v1"


if TYPE_CHECKING:  # annotations only: the Docker SDK is used through executor.containers
    import docker


class PolicyRefused(ExecutionError):
    """The spec asks for more than this executor's policy allows (it should not have been claimed)."""


class ProviderFault(ExecutionError):
    """The provider's own machine failed while handling a job's output (disk full, out of file
    descriptors or memory, I/O error): not the job's fault, so no failure code; retry the task."""


@dataclass(frozen=True)
class Durations:
    """Seconds spent fetching inputs, running the container, and archiving + storing the output."""

    fetch: float = 0.0
    run: float = 0.0
    archive: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """What to submit for a job: a result (digest, uri, exit code, size) or a failure (code, reason,
    evidence hash). Build with :meth:`result` / :meth:`failure`."""

    kind: Literal["result", "failure"]
    digest: bytes | None = None  # sha256 of the archive (32 bytes): the on-chain resultHash
    uri: str | None = None
    name: str = ""  # the archive's opaque name in the result store
    match_digest: bytes | None = None  # the match digest (the spec's output selector; else `digest`): what is committed
    exit_code: int | None = None
    size: int | None = None
    code: FailureCode | None = None
    reason: str = ""
    evidence_hash: bytes | None = None  # sha256 of `evidence` (32 bytes)
    evidence: str = ""
    retryable: bool = False
    logs_tail: str = ""
    durations: Durations = field(default_factory=Durations)

    @classmethod
    def result(
        cls,
        *,
        digest: bytes,
        uri: str,
        exit_code: int,
        size: int,
        name: str = "",
        match_digest: bytes | None = None,
        logs_tail: str = "",
        durations: Durations = Durations(),
    ) -> Outcome:
        return cls(
            "result",
            digest=digest,
            uri=uri,
            name=name,
            match_digest=match_digest if match_digest is not None else digest,
            exit_code=exit_code,
            size=size,
            logs_tail=logs_tail,
            durations=durations,
        )

    @classmethod
    def failure(
        cls,
        code: FailureCode,
        reason: str,
        *,
        job_id: int,
        image: str = "",
        retryable: bool = False,
        logs_tail: str = "",
        durations: Durations = Durations(),
    ) -> Outcome:
        evidence = failure_evidence(job_id, code, reason, image)
        return cls(
            "failure",
            code=code,
            reason=reason,
            evidence=evidence,
            evidence_hash=hashlib.sha256(evidence.encode()).digest(),
            retryable=retryable,
            logs_tail=logs_tail,
            durations=durations,
        )

    @property
    def ok(self) -> bool:
        return self.kind == "result"


def failure_evidence(job_id: int, code: FailureCode, reason: str, image: str = "") -> str:
    """The canonical evidence text whose sha256 is submitted with a failure."""
    return f"{EVIDENCE_FORMAT}\njob: {job_id}\ncode: {code.name}\nimage: {image}\nreason: {reason}\n"


def check_policy(spec: JobSpec, policy: PolicyConfig | None) -> None:
    """Raises :class:`PolicyRefused` when `spec` exceeds `policy` (None: no caps)."""
    if policy is None:
        return
    res = spec.resources
    problems = []
    if res.cpus > policy.max_cpus:
        problems.append(f"cpus {res.cpus} > {policy.max_cpus}")
    if res.memory_mb > policy.max_memory_mb:
        problems.append(f"memory_mb {res.memory_mb} > {policy.max_memory_mb}")
    if res.max_runtime > policy.max_runtime:
        problems.append(f"max_runtime {res.max_runtime} > {policy.max_runtime}")
    if res.output_mb > policy.max_output_mb:
        problems.append(f"output_mb {res.output_mb} > {policy.max_output_mb}")
    if policy.images and spec.image_digest not in policy.images:
        problems.append(f"image {spec.image_digest} is not in the allowed list")
    if problems:
        raise PolicyRefused("the spec exceeds this executor's policy: " + "; ".join(problems))


def _clean(client: docker.DockerClient, name: str, job_dir: Path, *, container: bool = True) -> None:
    """Removes what a run leaves: its container (a crashed attempt's; after a run, run_container has
    removed its own already) and its work folder (mounts first)."""
    if container:
        remove_container(client, name)
    unmount_all_under(job_dir)
    shutil.rmtree(job_dir, ignore_errors=True)


def _clean_attempt(attempt_dir: Path) -> None:
    """Removes this attempt's own folder (mounts first) and the job's folder when no other attempt
    uses it: never a folder of another attempt (see the module doc)."""
    unmount_all_under(attempt_dir)
    shutil.rmtree(attempt_dir, ignore_errors=True)
    try:
        attempt_dir.parent.rmdir()
    except OSError:
        pass  # another attempt's folder is in it (or it is gone already)


def _make_attempt_dir(attempt_dir: Path) -> None:
    """Creates the attempt's folder (and the job's); a stale attempt's end removing the job's
    folder, empty, between the two creations is met by creating it again."""
    for _ in range(3):
        try:
            attempt_dir.mkdir(parents=True)
            return
        except FileNotFoundError:
            continue
    attempt_dir.mkdir(parents=True)


@contextlib.contextmanager
def provider_faults(what: str) -> Iterator[None]:
    """Turns an ``OSError`` whose errno says this machine ran out of something
    (:data:`depin.outputs.PROVIDER_ERRNOS`: disk full, descriptors, memory, I/O) into
    :class:`ProviderFault` (retried, never blamed on the job); other errors pass as they are."""
    try:
        yield
    except OSError as exc:
        if exc.errno in PROVIDER_ERRNOS:
            raise ProviderFault(f"this machine failed while {what}: {exc}") from exc
        raise


def _is_exec_error(exc: BaseException) -> bool:
    return refused_command(exc)


def archive_output(out_dir: Path, exit_code: int, dest: Path, max_bytes: int) -> ResultArchive:
    """:func:`depin.outputs.build_archive`, with every exception sorted (see the module doc):
    :class:`OutputTooLarge` and :class:`InvalidOutput` as they are, the provider's own faults as
    :class:`ProviderFault`, anything else as :class:`InvalidOutput`."""
    try:
        return build_archive(out_dir, exit_code, dest, max_bytes=max_bytes)
    except (OutputTooLarge, InvalidOutput):
        raise
    except OSError as exc:
        if exc.errno in PROVIDER_ERRNOS:
            raise ProviderFault(f"this machine failed while archiving the output: {exc}") from exc
        raise InvalidOutput(f"{type(exc).__name__}: {exc}") from exc
    except MemoryError as exc:  # ours: the walk's limits bound what the output can make us hold
        raise ProviderFault("this machine ran out of memory while archiving the output") from exc
    except Exception as exc:  # see the module doc: the output's doing, not a crash
        raise InvalidOutput(f"{type(exc).__name__}: {str(exc)[:300]}") from exc


def selected_digest(archive: ResultArchive, select: Sequence[str] | None) -> bytes:
    """The match digest of our own `archive` under the spec's output selector (the archive's digest
    without one); the provider's machine failing while it reads is :class:`ProviderFault`."""
    if select is None:
        return archive.digest
    try:
        return match_digest(archive.path, select)
    except OSError as exc:
        raise ProviderFault(f"this machine failed while hashing the selected output: {exc}") from exc
    except UnsafeArchive as exc:  # our own archive: only the selector's limit (MAX_SELECTION_WORK)
        raise InvalidOutput(str(exc)) from exc


def execute(
    client: docker.DockerClient,
    *,
    job_id: int,
    spec: JobSpec | bytes | str | dict[str, Any],
    work_root: Path,
    store: ResultStore,
    name: str,
    labels: dict[str, str] | None = None,
    limits_cap: PolicyConfig | None = None,
    container_limits: ContainerLimits = DEFAULT_CONTAINER_LIMITS,
    allowed_registries: Sequence[str] = (),
    file_roots: Sequence[Path | str] | None = None,
    input_allow_networks: Sequence[str] | None = None,
    max_input_bytes: int = MAX_INPUT_BYTES,
    input_timeout: float = 30.0,
    input_deadline: float | None = None,
    input_cache: Path | None = None,
) -> Outcome:
    """Runs job `job_id` and returns its :class:`Outcome` (see the module doc).

    `name` is the container name (deterministic per job and role); `labels` are added to the
    container (``depin.job`` and ``depin.executor`` default to the job id and the host name).
    `spec` may be a parsed :class:`JobSpec` or its bytes (then an invalid spec is a ``BAD_SPEC``
    failure). `input_allow_networks` are the non-public networks http(s) inputs may come from
    (None: ``limits_cap.input_allow_networks`` when a policy is given, else none); `input_deadline`
    (a ``time.monotonic()`` instant) ends the http(s) input downloads (a retryable
    INPUT_HASH_MISMATCH "unavailable" failure past it); `input_cache` is the verifier's cache of
    checked inputs (:func:`executor.inputs.fetch_inputs`). Raises
    :class:`PolicyRefused`, :class:`ContainerEngineError` and :class:`ProviderFault` (see the
    module doc).
    """
    t0 = time.monotonic()
    if not isinstance(spec, JobSpec):
        try:
            spec = parse_spec(spec)
        except SpecError as exc:
            return Outcome.failure(FailureCode.BAD_SPEC, str(exc), job_id=job_id)
    check_policy(spec, limits_cap)
    if input_allow_networks is None:
        input_allow_networks = limits_cap.input_allow_networks if limits_cap is not None else ()
    labels = {LABEL_JOB: str(job_id), LABEL_EXECUTOR: DEFAULT_INSTANCE, **(labels or {})}
    # This attempt's own folder below the job's: the start removes every earlier attempt's (a crash's
    # leftovers, or a run paused past its lease), the end only its own (see the module doc).
    job_dir = Path(work_root) / name / f"run-{secrets.token_hex(4)}"
    _clean(client, name, job_dir.parent)
    fail = lambda code, reason, **kw: Outcome.failure(code, reason, job_id=job_id, image=spec.image, **kw)
    try:
        _make_attempt_dir(job_dir)
        # 1. inputs
        prepare_input_dir(job_dir / "in")
        try:
            with provider_faults("fetching the inputs"):  # a full disk is ours, retried
                fetch_inputs(
                    spec, job_dir / "in", max_bytes=max_input_bytes, timeout=input_timeout, file_roots=file_roots,
                    allow_networks=input_allow_networks, deadline=input_deadline, cache_dir=input_cache,
                )
        except InputHashMismatch as exc:
            return fail(FailureCode.INPUT_HASH_MISMATCH, str(exc), durations=Durations(fetch=time.monotonic() - t0))
        except InputUnavailable as exc:
            return fail(FailureCode.INPUT_HASH_MISMATCH, f"unavailable: {exc}", retryable=exc.retryable, durations=Durations(fetch=time.monotonic() - t0))
        except (ValueError, TypeError, LookupError, ArithmeticError) as exc:
            # A parser met the requester's text on a path no check foresaw: the job's failure (audited
            # like any), not a crash, which gives the job up and burns the collateral at its timeout.
            reason = f"unavailable: an input's URI could not be used ({type(exc).__name__}: {str(exc)[:200]})"
            return fail(FailureCode.INPUT_HASH_MISMATCH, reason, durations=Durations(fetch=time.monotonic() - t0))
        fetch_s = time.monotonic() - t0
        # 2. image
        try:
            image_id = check_image(client, spec.image, allowed_registries=allowed_registries)
        except ImageUnavailable as exc:
            return fail(FailureCode.IMAGE_UNAVAILABLE, str(exc), durations=Durations(fetch=fetch_s))
        fault = image_config_fault(image_id) or image_mount_fault(client, image_id, name=name, labels=labels)
        if fault is not None:
            return fail(FailureCode.BAD_SPEC, f"the image cannot run a job here: {fault}", durations=Durations(fetch=fetch_s))
        # 3. container
        max_out = spec.resources.output_mb * MIB
        output = prepare_output_dir(job_dir / "out", max_out)
        try:
            t1 = time.monotonic()
            try:
                run = run_container(
                    client, spec, image_id=image_id, name=name, labels=labels, inputs_dir=job_dir / "in", output=output, limits=container_limits,
                    etc_dir=prepare_etc_dir(job_dir / "etc"),
                )
            except ContainerEngineError as exc:
                if _is_exec_error(exc):
                    return fail(FailureCode.BAD_SPEC, f"the image cannot run the command {spec.command!r}: {exc}", durations=Durations(fetch=fetch_s))
                raise
            except InvalidOutput as exc:  # a watched run (no tmpfs) measured a tree beyond the limits
                return fail(FailureCode.OUTPUT_INVALID, f"the output cannot be archived: {exc}", durations=Durations(fetch=fetch_s))
            run_s = time.monotonic() - t1
            durations = Durations(fetch=fetch_s, run=run_s)
            tail = run.logs_tail
            limit = spec.resources.max_runtime
            if run.status == "timeout":
                return fail(FailureCode.TIME_LIMIT, f"still running after max_runtime {limit} s; killed", logs_tail=tail, durations=durations)
            if run.status == "oom":
                return fail(
                    FailureCode.OUT_OF_MEMORY,
                    f"killed by the kernel at the memory limit ({spec.resources.memory_mb} MiB; exit {run.exit_code})",
                    logs_tail=tail,
                    durations=durations,
                )
            too_large = f"wrote more than output_mb {spec.resources.output_mb} MiB to /out"
            if run.status == "output_too_large":
                return fail(FailureCode.OUTPUT_TOO_LARGE, f"{too_large} (writes stopped at the cap)", logs_tail=tail, durations=durations)
            # 4. archive (the walk measures the output exactly on the way) + store
            t2 = time.monotonic()
            assert run.exit_code is not None
            try:
                archive = archive_output(output.path, run.exit_code, job_dir / "result.tar", max_out)
            except OutputTooLarge as exc:
                return fail(FailureCode.OUTPUT_TOO_LARGE, f"{too_large}: {exc}", logs_tail=tail, durations=durations)
            except InvalidOutput as exc:
                return fail(FailureCode.OUTPUT_INVALID, f"the output cannot be archived: {exc}", logs_tail=tail, durations=durations)
        finally:
            release_output_dir(output)
        try:
            matched = selected_digest(archive, spec.match)
        except InvalidOutput as exc:
            return fail(FailureCode.OUTPUT_INVALID, f"the output selector cannot be applied: {exc}", logs_tail=tail, durations=durations)
        with provider_faults("storing the result archive"):  # a full result store is ours, retried
            stored = store.put(archive.path, move=True, encrypt_to=spec.encrypt_to)
        durations = Durations(fetch=fetch_s, run=run_s, archive=time.monotonic() - t2)
        return Outcome.result(
            digest=archive.digest,
            uri=stored.uri,
            name=stored.name,
            match_digest=matched,
            exit_code=archive.exit_code,
            size=archive.size,
            logs_tail=tail,
            durations=durations,
        )
    finally:
        _clean_attempt(job_dir)
