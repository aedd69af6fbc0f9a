"""The result store (archives under opaque names, served over HTTP, and their download) and the
submission journal (the salt of every commitment, written before anything carries it).

**Opaque names.** An archive (format ``depin-result-v1``, see :mod:`depin.outputs`) is stored under a
random name, 32 bytes from :mod:`secrets` in hex, that has nothing to do with its digest:
``<root>/<name[:2]>/<name>.tar``, next to its manifest ``<name>.json`` (the job, the party and the
salt of the commitment, so that a requester can check the archive against the commitment). The
public URI of an archive is ``<base_url>/results/<name>``, its manifest's ``<base_url>/results/
<name>.json``; :func:`executor.result_server.create_app` serves ``GET``/``HEAD`` on those paths and nothing addressed by a
digest, so the server is no existence oracle: asking whether a result with a guessed digest exists
gets nowhere (VERIFICATION-ANALYSIS F2(c)). Storing is atomic (a temporary file in the same folder,
fsync, rename), so a reader never sees half an archive. A requester or a verifier fetches it with
:mod:`depin.fetch` (size cap, deadline, public addresses only) and checks it against the provider's
on-chain commitment (:meth:`depin.client.Client.download_result`, :mod:`depin.delivery_check`).

**Encrypted delivery.** When the spec names the requester's key (``delivery.encrypt_to``),
:meth:`ResultStore.put` seals the archive to it (:mod:`depin.delivery`, ``depin-sealed-v1``) and
stores the sealed file under its *content address*, the sha256 of the sealed bytes, as its name
(the plaintext is not kept). A sidecar ``<name>.to`` (not served) records the recipient, and the
manifest then carries the salt sealed to the same key (``salt_sealed``), the content address
(``sha256``) and the recipient (``encrypt_to``), never the salt in clear. Anyone can check the
delivered bytes against the address in the on-chain URI; only the requester can read them or check
them against the commitment before the reveal. The sealed bytes are fresh randomness, so their hash
says nothing about the result's digest.

**The journal** (:class:`SubmissionJournal`, :func:`prepare_submission`). Before the executor sends
a transaction that carries a commitment, the commitment's inputs are written to one fsync'd file
per job (``<state>/journal/<instance>/<job>.json``: the job, the spec hash, the party, the kind,
the submitted digest, the committed digest, the salt, the commitment, the opaque name and the
archive's path). A run repeated after a crash (or a restart of the worker) finds the entry and
reuses it as it is: the salt is never drawn twice for a job, and what was committed can always be
revealed. The entry is created exclusively (linked to its name, which fails when it exists): a run
that paused past its lease and wakes to journal its outcome gets the entry of the run that took
the job over, never overwrites it. :meth:`Submission.call` is the one place that turns an entry into the ``JobMarket``
call (``submitResult(jobId, commitment, resultURI)``, ``submitFailure(jobId, code, commitment)``)
and :meth:`Submission.reveal_args` the one that turns it into the court's ``revealProvider``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from depin.commitment import commitment, failure_digest, new_salt
from depin.delivery import SEALED_FORMAT, parse_public_key, seal_bytes, seal_file
from depin.errors import ExecutionError

T = TypeVar("T")

NAME_RE = re.compile(r"^[0-9a-f]{64}\Z")
CHUNK = 1 << 20
MEDIA_TYPE = "application/x-tar"
MANIFEST_FORMAT = "depin-result-manifest-v1"
SEALED_MANIFEST_FORMAT = "depin-result-manifest-v2"  # encrypted delivery: salt_sealed, sha256, encrypt_to


class ResultNotFound(ExecutionError, KeyError):
    """The store holds no archive with that name."""


def new_name() -> str:
    """A fresh opaque result name: 32 random bytes in lower-case hex (unrelated to any digest)."""
    return secrets.token_hex(32)


def check_name(name: str) -> str:
    """`name` when it is an opaque result name (64 lower-case hex digits); ValueError otherwise."""
    if not isinstance(name, str) or NAME_RE.match(name) is None:
        raise ValueError(f"{name!r} is not a result name (64 lower-case hex digits)")
    return name


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(dest: Path, data: bytes, mode: int = 0o644) -> None:
    """Writes `data` to `dest` atomically and durably: a temporary file in the same folder, fsync,
    rename, fsync of the folder. A reader (or a process after a crash) sees the old file or the new
    one, never half of one."""
    tmp = _synced_temp(dest, data, mode)
    try:
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)


def create_durably(dest: Path, data: bytes, mode: int = 0o644) -> bool:
    """Writes `data` to `dest` durably unless `dest` exists (a temporary file, fsync, a link to
    `dest`, fsync of the folder): whether it was written. Of two writers only the first's file is
    ever seen, whole."""
    tmp = _synced_temp(dest, data, mode)
    try:
        try:
            os.link(tmp, dest)
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(dest.parent)
    return True


def create_or_load(dest: Path, data: bytes, made: T, load: Callable[[], T | None], mode: int = 0o600) -> T:
    """`made` once `data` (its serialized form) is written to `dest` by :func:`create_durably`, or,
    when another writer's entry is there first, that entry (`load()`): a journal's first entry is
    never replaced (its salt is the one a commitment on chain was made with)."""
    for _ in range(3):  # the first writer's entry, unless retention removed it in between
        if create_durably(dest, data, mode=mode):
            return made
        first = load()
        if first is not None:
            return first
    raise RuntimeError(f"the journal entry {dest} keeps appearing and vanishing")


def _synced_temp(dest: Path, data: bytes, mode: int) -> Path:
    """A temporary file beside `dest` (its folder made if missing) holding `data`, fsync'd, with `mode`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=".put-", suffix=".partial")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


@dataclass(frozen=True)
class StoredResult:
    """An archive in the store: its opaque name, public URI, sha256 and local path. A sealed
    archive (`encrypt_to` set, the recipient's compressed key in hex) is named by `digest`, the
    sha256 of the sealed bytes."""

    name: str
    uri: str
    digest: bytes
    path: Path
    encrypt_to: str = ""


class ResultStore:
    """Archives under opaque names below `root`, published at `base_url` (no trailing slash needed)."""

    def __init__(self, root: Path, base_url: str):
        self.root = Path(root)
        self.base_url = base_url.rstrip("/")
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.root / name[:2] / f"{name}.tar"

    def _manifest_path(self, name: str) -> Path:
        return self.root / name[:2] / f"{name}.json"

    def _recipient_path(self, name: str) -> Path:
        return self.root / name[:2] / f"{name}.to"

    def uri(self, name: str) -> str:
        """``<base_url>/results/<name>``."""
        return f"{self.base_url}/results/{check_name(name)}"

    def manifest_uri(self, name: str) -> str:
        """``<base_url>/results/<name>.json``."""
        return f"{self.base_url}/results/{check_name(name)}.json"

    def put(
        self, archive: Path, *, name: str | None = None, move: bool = False, encrypt_to: bytes | str | None = None
    ) -> StoredResult:
        """Stores `archive` under `name` (default: a fresh :func:`new_name`) and returns where. With
        `move` the file is moved (when on the same filesystem) instead of copied. Storing under a
        name that exists replaces that archive. With `encrypt_to` (a secp256k1 public key) the
        archive is sealed to it and stored under its content address instead (see the module doc;
        `name` must then be None) and the plaintext is not kept."""
        archive = Path(archive)
        if encrypt_to is not None:
            if name is not None:
                raise ValueError("a sealed archive is named by its content address; pass no name")
            return self._put_sealed(archive, parse_public_key(encrypt_to), move=move)
        name = check_name(name) if name is not None else new_name()
        digest = bytes.fromhex(_sha256_file(archive))
        dest = self._path(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        stored = StoredResult(name, self.uri(name), digest, dest)
        if move:
            try:
                os.chmod(archive, 0o644)
                _fsync_file(archive)  # the bytes before the name (as for a copy below)
                os.replace(archive, dest)
                _fsync_dir(dest.parent)
                return stored
            except OSError:
                pass  # another filesystem: copy below
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".put-", suffix=".partial")
        try:
            with os.fdopen(fd, "wb") as out, open(archive, "rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(dest.parent)
        if move:
            archive.unlink(missing_ok=True)
        return stored

    def _put_sealed(self, archive: Path, recipient: bytes, *, move: bool) -> StoredResult:
        staging = self.root / ".sealing"
        staging.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=staging, prefix=".seal-", suffix=".partial")
        os.close(fd)
        try:
            name = seal_file(recipient, archive, Path(tmp)).hex()
            dest = self._path(name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            write_durably(self._recipient_path(name), recipient.hex().encode())  # before the archive: put is atomic
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(dest.parent)
        if move:
            archive.unlink(missing_ok=True)
        return StoredResult(name, self.uri(name), bytes.fromhex(name), dest, recipient.hex())

    def recipient(self, name: str) -> str:
        """The recipient's public key (hex) of a sealed archive, "" for a plaintext one."""
        try:
            return self._recipient_path(check_name(name)).read_text().strip()
        except FileNotFoundError:
            return ""

    def put_manifest(self, name: str, manifest: dict[str, Any]) -> str:
        """Writes the archive's manifest (JSON) durably next to it and returns its URI."""
        write_durably(self._manifest_path(check_name(name)), json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
        return self.manifest_uri(name)

    def has(self, name: str) -> bool:
        try:
            return self._path(check_name(name)).is_file()
        except ValueError:
            return False

    def holds(self, name: str, digest: bytes) -> bool:
        """Whether the archive `name` is stored and its bytes hash to `digest` (sha256)."""
        try:
            return _sha256_file(self.path(name)) == bytes(digest).hex()
        except (ResultNotFound, ValueError, OSError):
            return False

    def path(self, name: str) -> Path:
        """The stored archive's path; :class:`ResultNotFound` if the store does not hold it."""
        path = self._path(check_name(name))
        if not path.is_file():
            raise ResultNotFound(f"no result {name} in {self.root}")
        return path

    def has_manifest(self, name: str) -> bool:
        return self._manifest_path(check_name(name)).is_file()

    def manifest_path(self, name: str) -> Path:
        """The stored manifest's path; :class:`ResultNotFound` if the store does not hold it."""
        path = self._manifest_path(check_name(name))
        if not path.is_file():
            raise ResultNotFound(f"no manifest {name}.json in {self.root}")
        return path

    def remove(self, name: str) -> None:
        """Deletes the archive `name` and its manifest (nothing when absent). The manifest, which
        names the job, goes last: what a crash in between leaves, a retention pass can still tell
        (:mod:`executor.retention`)."""
        self._path(check_name(name)).unlink(missing_ok=True)
        self._recipient_path(name).unlink(missing_ok=True)
        self._manifest_path(name).unlink(missing_ok=True)


# --- the submission journal ---------------------------------------------------------------------

SubmissionKind = Literal["result", "failure"]


@dataclass(frozen=True)
class Submission:
    """One job's journaled submission (see the module doc). Hex fields are ``0x``-prefixed."""

    job_id: int
    spec_hash: str  # the on-chain specHash the outcome belongs to
    party: str  # the submitting account
    kind: SubmissionKind
    digest: str  # what today's ABI submits: the archive's sha256 (result) or the evidence hash (failure)
    committed: str  # what the commitment covers: the match digest (result) or failure_digest(code)
    salt: str
    commitment: str  # keccak256(abi.encode(party, jobId, committed, salt))
    name: str = ""  # results: the opaque name in the store
    uri: str = ""  # results: the archive's public URI
    archive: str = ""  # results: the archive's path in the store
    code: int = 0  # failures: the FailureCode
    encrypt_to: str = ""  # a sealed delivery: the recipient's compressed public key (hex); the name is sha256(sealed)
    salt_sealed: str = ""  # a sealed delivery: the salt sealed to `encrypt_to` (0x-hex), published in the manifest

    def call(self) -> tuple[str, tuple[Any, ...]]:
        """The ``JobMarket`` function and arguments that submit this outcome: the salted commitment
        only (``submitResult(jobId, commitment, resultURI)`` with the opaque URI,
        ``submitFailure(jobId, code, commitment)``); the digest and the salt stay in the journal
        until the court asks for the reveal (:meth:`reveal_args`)."""
        commitment = bytes.fromhex(self.commitment[2:])
        if self.kind == "result":
            return "submitResult", (self.job_id, commitment, self.uri)
        return "submitFailure", (self.job_id, self.code, commitment)

    def reveal_args(self) -> tuple[int, bytes, bytes]:
        """``VerificationCourt.revealProvider``'s arguments: (jobId, committed digest, salt)."""
        return self.job_id, bytes.fromhex(self.committed[2:]), bytes.fromhex(self.salt[2:])

    def manifest(self) -> dict[str, Any]:
        """What is published next to the archive: enough, with the archive, to check the commitment
        (for a sealed delivery: the salt sealed to the requester, the content address and the
        recipient; never the salt in clear)."""
        if self.encrypt_to:
            return sealed_manifest(self.job_id, self.party, self.commitment, self.name, self.encrypt_to, self.salt_sealed)
        return {"format": MANIFEST_FORMAT, "job": self.job_id, "party": self.party, "salt": self.salt, "commitment": self.commitment}


def sealed_manifest(job_id: int, party: str, commitment: str, name: str, encrypt_to: str, salt_sealed: str) -> dict[str, Any]:
    """The manifest of a sealed archive `name` (its content address, hex): the recipient's key
    (hex, no ``0x``) and the salt sealed to it (``0x``-hex), never the salt in clear."""
    return {
        "format": SEALED_MANIFEST_FORMAT,
        "job": int(job_id),
        "party": party,
        "commitment": commitment,
        "encryption": SEALED_FORMAT,
        "encrypt_to": "0x" + encrypt_to.removeprefix("0x"),
        "sha256": "0x" + name,
        "salt_sealed": salt_sealed,
    }


class SubmissionJournal:
    """One durable file per job below `root` (``<job>.json``), written before the submission."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, job_id: int) -> Path:
        return self.root / f"{int(job_id)}.json"

    def load(self, job_id: int) -> Submission | None:
        """The job's entry, or None."""
        try:
            data = json.loads(self._path(job_id).read_bytes())
        except FileNotFoundError:
            return None
        return Submission(**data)

    def write(self, sub: Submission) -> None:
        """Writes `sub` over whatever entry the job has (no check): :meth:`create` is the writer of
        a submission."""
        write_durably(self._path(sub.job_id), json.dumps(asdict(sub), sort_keys=True).encode(), mode=0o600)

    def create(self, sub: Submission) -> Submission:
        """Writes `sub` as the job's entry unless the job has an entry for the same spec already,
        and returns the entry the journal holds then: `sub`, or the one found. Exclusive: the entry
        is written to a temporary file, fsync'd, and linked to its name, which fails when the name
        exists, so of two runs of one job that each looked the entry up and found none (one of
        them paused past its lease, the other took the job over and submitted) only the first
        writes; the other gets the first one's entry back, never replaces it (its salt is the one
        the chain's commitment opens). An entry of another spec (a reorg replaced the job under
        the same id) is removed first; only that rare case is a look-then-remove."""
        dest = self._path(sub.job_id)
        data = json.dumps(asdict(sub), sort_keys=True).encode()
        while not create_durably(dest, data, mode=0o600):
            found = self.load(sub.job_id)
            if found is not None and found.spec_hash == sub.spec_hash:
                return found
            if found is not None:
                dest.unlink(missing_ok=True)  # another spec's entry (a reorg): replaced
        return sub

    def forget(self, job_id: int) -> None:
        """Drops the job's entry (once its submission can no longer be asked to reveal)."""
        self._path(job_id).unlink(missing_ok=True)


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def prepare_submission(
    journal: SubmissionJournal,
    store: ResultStore | None,
    *,
    job_id: int,
    spec_hash: bytes,
    party: str,
    kind: SubmissionKind,
    digest: bytes,
    committed: bytes | None = None,
    name: str = "",
    code: int = 0,
) -> Submission:
    """The job's submission, journaled before anything is sent (see the module doc).

    When the journal holds an entry for this job and spec, that entry is returned unchanged (a
    re-run after a crash: same salt, same name, same commitment), and a freshly stored archive
    `name` that it does not use is removed from `store`, after taking the entry's name when the
    archive stored there is missing or does not hash to the journaled digest (a crash or a power
    cut) and the fresh one does. Otherwise a fresh salt is drawn, the
    commitment computed over `committed` (results: the match digest, default `digest`; failures:
    :func:`depin.commitment.failure_digest` of `code`), the entry written durably and exclusively
    (:meth:`SubmissionJournal.create`: when another run of the job journaled it in the meantime,
    that entry wins and is returned as above) and, for a result, the manifest published next to
    the archive."""
    existing = journal.load(job_id)
    if existing is None or existing.spec_hash != _hex(spec_hash):
        fresh = _new_submission(store, job_id=job_id, spec_hash=spec_hash, party=party, kind=kind, digest=digest, committed=committed, name=name, code=code)
        existing = journal.create(fresh)  # durable before the manifest is published and before any transaction
        if existing is fresh:
            if kind == "result" and store is not None:
                store.put_manifest(name, fresh.manifest())
            return fresh
        # another run of the job journaled first (it took the job over): its entry is the one
    if store is not None and existing.kind == "result":
        if kind == "result" and name and name != existing.name and store.has(name):
            same_bytes = existing.digest == _hex(digest) and not existing.encrypt_to
            if same_bytes and not store.holds(existing.name, bytes.fromhex(existing.digest[2:])):
                # the stored copy is missing or damaged (a crash or power cut): the same bytes again
                store.put(store.path(name), name=existing.name, move=True)
            store.remove(name)  # (a sealed archive cannot be re-made with the same bytes: never renamed)
        if not store.has_manifest(existing.name):  # a crash between the journal and the manifest
            store.put_manifest(existing.name, existing.manifest())
    return existing


def _new_submission(
    store: ResultStore | None, *, job_id: int, spec_hash: bytes, party: str, kind: SubmissionKind, digest: bytes, committed: bytes | None,
    name: str, code: int,
) -> Submission:
    """A fresh submission (a new salt) for :func:`prepare_submission`, not yet journaled."""
    if kind == "result":
        if store is None or not name:
            raise ValueError("a result submission needs the store and the archive's name")
        target = committed if committed is not None else digest
        uri, archive = store.uri(name), str(store.path(name))
        recipient = store.recipient(name)
    else:
        target, uri, archive, recipient = failure_digest(code), "", "", ""
    salt = new_salt()
    sub = Submission(
        job_id=int(job_id),
        spec_hash=_hex(spec_hash),
        party=party,
        kind=kind,
        digest=_hex(digest),
        committed=_hex(target),
        salt=_hex(salt),
        commitment=_hex(commitment(party, int(job_id), target, salt)),
        name=name if kind == "result" else "",
        uri=uri,
        archive=archive,
        code=int(code) if kind == "failure" else 0,
        encrypt_to=recipient,
        salt_sealed=_hex(seal_bytes(recipient, salt)) if recipient else "",
    )
    return sub
