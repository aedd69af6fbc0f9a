"""Encrypted delivery on the real engine (Podman): a job whose spec names the requester's key
(``delivery.encrypt_to``) is run in a container; the executor publishes only the sealed archive,
under the content address of its bytes; without the key it is neither a tar nor readable, with the
key it opens to the very archive whose digest the executor commits to."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from depin.delivery import DeliveryError, open_bytes, open_file, public_key_of
from depin.fetch import download_and_hash
from depin.outputs import extract_archive
from depin.spec import JobSpec
from executor.containers import LABEL_EXECUTOR, container_name
from executor.execute import execute
from executor.results import ResultStore, SubmissionJournal, prepare_submission

REQUESTER_KEY = bytes.fromhex("5a" * 32)
SOMEONE_ELSE = bytes.fromhex("a5" * 32)
SECRET = "the-requester-only-secret-4242"


def _spec(images: dict[str, str], encrypt_to: str | None) -> JobSpec:
    data: dict[str, object] = {
        "image": images["busybox"],
        "command": ["sh", "-c", f"echo {SECRET} > /out/answer.txt; seq 1 20000 > /out/numbers.txt"],
        "resources": {"cpus": 1, "memory_mb": 32, "max_runtime": 20, "output_mb": 1},
    }
    if encrypt_to is not None:
        data["delivery"] = {"encrypt_to": encrypt_to}
    return JobSpec.model_validate(data)


def test_an_encrypted_jobs_archive_is_unreadable_without_the_key_and_verifies_with_it(
    engine, sample_images, tmp_path: Path, executor_instance: str
) -> None:
    store = ResultStore(tmp_path / "results", "http://127.0.0.1:8700")
    spec = _spec(sample_images, "0x" + public_key_of(REQUESTER_KEY).hex())
    outcome = execute(
        engine,
        job_id=4242,
        spec=spec,
        work_root=tmp_path / "work",
        store=store,
        name=container_name(31337, 4242, f"sealed-{os.getpid()}"),
        labels={LABEL_EXECUTOR: executor_instance},
    )
    assert outcome.kind == "result" and outcome.exit_code == 0, outcome
    published = store.path(outcome.name)
    sealed = published.read_bytes()

    # content-addressed: the public name (in the URI that goes on chain) is the sha256 of the bytes
    assert outcome.uri.endswith("/results/" + outcome.name)
    fetched = download_and_hash(published.as_uri(), max_bytes=1 << 24)
    assert fetched.digest.hex() == outcome.name == hashlib.sha256(sealed).hexdigest()
    # ... which says nothing about the result's digest (that stays private until the reveal)
    assert outcome.digest is not None and outcome.digest.hex() != outcome.name

    # unreadable without the key: not a tar, no plaintext inside, another key cannot open it
    assert SECRET.encode() not in sealed and b"19999" not in sealed
    assert not tarfile.is_tarfile(published)
    with pytest.raises((tarfile.TarError, ValueError, OSError)):
        extract_archive(published, tmp_path / "nope")
    with pytest.raises(DeliveryError, match="not encrypted to this key"):
        open_file(SOMEONE_ELSE, published, tmp_path / "stolen.tar")
    assert not (tmp_path / "stolen.tar").exists()

    # with the key: the archive whose digest the executor commits to, and the job's output in it
    opened = tmp_path / "opened.tar"
    open_file(REQUESTER_KEY, published, opened)
    assert hashlib.sha256(opened.read_bytes()).digest() == outcome.digest
    extract_archive(opened, tmp_path / "out")
    assert (tmp_path / "out" / "answer.txt").read_text().strip() == SECRET

    # the manifest's salt is sealed too, and with the digest gives the journaled commitment
    sub = prepare_submission(
        SubmissionJournal(tmp_path / "journal"), store, job_id=4242, spec_hash=spec.hash(), party="0x" + "12" * 20,
        kind="result", digest=outcome.digest, committed=outcome.match_digest, name=outcome.name,
    )
    assert sub.encrypt_to == public_key_of(REQUESTER_KEY).hex() and sub.name == outcome.name
    assert open_bytes(REQUESTER_KEY, bytes.fromhex(sub.salt_sealed[2:])) == bytes.fromhex(sub.salt[2:])
    assert sub.salt[2:] not in store.manifest_path(outcome.name).read_text()


def test_a_plaintext_job_is_unchanged(engine, sample_images, tmp_path: Path, executor_instance: str) -> None:
    """Without ``delivery`` the archive is the plaintext tar under an opaque (random) name."""
    store = ResultStore(tmp_path / "results", "http://127.0.0.1:8700")
    outcome = execute(
        engine,
        job_id=4243,
        spec=_spec(sample_images, None),
        work_root=tmp_path / "work",
        store=store,
        name=container_name(31337, 4243, f"plain-{os.getpid()}"),
        labels={LABEL_EXECUTOR: executor_instance},
    )
    assert outcome.kind == "result", outcome
    published = store.path(outcome.name)
    assert tarfile.is_tarfile(published) and store.recipient(outcome.name) == ""
    assert hashlib.sha256(published.read_bytes()).digest() == outcome.digest
    assert outcome.name != outcome.digest.hex()  # opaque: never the digest
