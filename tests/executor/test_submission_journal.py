"""The submission journal (executor.results.prepare_submission): the salt and the archive's name
are written durably before anything carries the commitment, and a re-run or a restarted process
(kill -9 right after the write) gets the same entry back, never a new salt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from depin.commitment import commitment, failure_digest
from depin.market import FailureCode
from depin.outputs import build_archive, match_digest
from executor.execute import ProviderFault
from executor.execution import journal_failure
from executor.results import ResultStore, Submission, SubmissionJournal, prepare_submission

PARTY = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
SPEC_HASH = b"\x5c" * 32


def _archive(tmp_path: Path, text: str = "hello\n") -> Path:
    out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    (out / "result.txt").write_text(text)
    (out / "log.txt").write_text("noise\n")
    return build_archive(out, 0, out.with_suffix(".tar")).path


def _prepare(journal: SubmissionJournal, store: ResultStore, archive: Path, *, spec_hash: bytes = SPEC_HASH, job_id: int = 7, select: list[str] | None = None) -> Submission:
    stored = store.put(archive)
    return prepare_submission(
        journal, store, job_id=job_id, spec_hash=spec_hash, party=PARTY, kind="result",
        digest=stored.digest, committed=match_digest(stored.path, select), name=stored.name,
    )


def test_a_result_is_journaled_with_its_commitment_and_manifest(tmp_path: Path) -> None:
    journal, store = SubmissionJournal(tmp_path / "journal"), ResultStore(tmp_path / "store", "http://p")
    archive = _archive(tmp_path)
    sub = _prepare(journal, store, archive, select=["result.txt"])
    assert journal.load(7) == sub
    salt, committed = bytes.fromhex(sub.salt[2:]), bytes.fromhex(sub.committed[2:])
    assert len(salt) == 32 and committed != bytes.fromhex(sub.digest[2:])  # the match digest, not the archive's
    assert sub.commitment == "0x" + commitment(PARTY, 7, committed, salt).hex()
    assert sub.uri == f"http://p/results/{sub.name}" and Path(sub.archive) == store.path(sub.name)
    # today's submission is unchanged: the archive digest and the URI
    assert sub.call() == ("submitResult", (7, bytes.fromhex(sub.commitment[2:]), sub.uri))  # never the digest
    assert sub.reveal_args() == (7, bytes.fromhex(sub.committed[2:]), bytes.fromhex(sub.salt[2:]))
    manifest = json.loads(store.manifest_path(sub.name).read_text())
    assert manifest == {"format": "depin-result-manifest-v1", "job": 7, "party": PARTY, "salt": sub.salt, "commitment": sub.commitment}
    assert (tmp_path / "journal" / "7.json").stat().st_mode & 0o777 == 0o600


def test_a_rerun_gets_the_first_entry_and_its_duplicate_archive_goes(tmp_path: Path) -> None:
    journal, store = SubmissionJournal(tmp_path / "journal"), ResultStore(tmp_path / "store", "http://p")
    first = _prepare(journal, store, _archive(tmp_path))
    again = _prepare(journal, store, _archive(tmp_path))  # same bytes, a new name: dropped
    assert again == first
    other = _prepare(journal, store, _archive(tmp_path, "a nondeterministic run\n"))  # other bytes: still the first entry
    assert other == first
    assert [p.name for p in store.root.rglob("*.tar")] == [f"{first.name}.tar"]
    # the archive of the journaled name lost (not the journal): the same bytes take its name back
    store.path(first.name).unlink()
    assert _prepare(journal, store, _archive(tmp_path)) == first and store.has(first.name)
    # a crash between the journal and the manifest: the manifest is published on the re-run
    store.manifest_path(first.name).unlink()
    _prepare(journal, store, _archive(tmp_path))
    assert json.loads(store.manifest_path(first.name).read_text())["salt"] == first.salt


def test_another_spec_under_the_same_id_is_another_submission(tmp_path: Path) -> None:
    journal, store = SubmissionJournal(tmp_path / "journal"), ResultStore(tmp_path / "store", "http://p")
    first = _prepare(journal, store, _archive(tmp_path))
    replaced = _prepare(journal, store, _archive(tmp_path), spec_hash=b"\x01" * 32)  # a reorg replaced the job
    assert replaced.salt != first.salt and replaced.name != first.name and journal.load(7) == replaced


def test_a_failure_commits_to_its_code(tmp_path: Path) -> None:
    journal = SubmissionJournal(tmp_path / "journal")
    evidence = b"\xee" * 32
    sub = prepare_submission(journal, None, job_id=9, spec_hash=SPEC_HASH, party=PARTY, kind="failure", digest=evidence, code=int(FailureCode.TIME_LIMIT))
    assert sub.committed == "0x" + failure_digest(4).hex()
    assert sub.commitment == "0x" + commitment(PARTY, 9, failure_digest(4), bytes.fromhex(sub.salt[2:])).hex()
    assert sub.call() == ("submitFailure", (9, 4, bytes.fromhex(sub.commitment[2:])))
    assert prepare_submission(journal, None, job_id=9, spec_hash=SPEC_HASH, party=PARTY, kind="failure", digest=evidence, code=4) == sub
    with pytest.raises(ValueError):
        prepare_submission(journal, None, job_id=10, spec_hash=SPEC_HASH, party=PARTY, kind="failure", digest=evidence, code=0)
    with pytest.raises(ValueError):
        prepare_submission(journal, None, job_id=11, spec_hash=SPEC_HASH, party=PARTY, kind="result", digest=evidence)



def test_the_entry_is_created_exclusively(tmp_path: Path) -> None:
    """Two runs of one job that each looked the entry up and found none (one paused past its lease,
    the other took the job over): the second to write gets the first one's entry back, the file is
    never replaced, and no temporary file stays. An entry of another spec (a reorg) is replaced."""
    journal = SubmissionJournal(tmp_path / "journal")
    h = "0x" + SPEC_HASH.hex()
    first = Submission(7, h, PARTY, "failure", "0x" + "ee" * 32, "0x" + "01" * 32, "0x" + "aa" * 32, "0x" + "c1" * 32, code=4)
    late = Submission(7, h, PARTY, "failure", "0x" + "ee" * 32, "0x" + "01" * 32, "0x" + "bb" * 32, "0x" + "c2" * 32, code=4)
    assert journal.create(first) is first
    assert journal.create(late) == first and journal.load(7) == first
    assert [p.name for p in (tmp_path / "journal").iterdir()] == ["7.json"]
    assert (tmp_path / "journal" / "7.json").stat().st_mode & 0o777 == 0o600
    replaced = Submission(7, "0x" + "01" * 32, PARTY, "failure", "0x" + "ee" * 32, "0x" + "01" * 32, "0x" + "dd" * 32, "0x" + "c3" * 32, code=4)
    assert journal.create(replaced) is replaced and journal.load(7) == replaced


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_journal_disk_is_the_providers_fault(tmp_path: Path) -> None:
    """The journal's filesystem is full: writing the entry fails with ENOSPC, which is the
    provider's own machine failing (ProviderFault, retried), never a crash that gives the job up."""
    root = tmp_path / "journal"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "depin-test-full", str(root)], check=True)
    try:
        with open(root / "filler", "wb", buffering=0) as fh, pytest.raises(OSError, match="No space left"):
            while True:
                fh.write(b"\0" * 4096)
        rt = SimpleNamespace(journal=SubmissionJournal(root), store=None, address=PARTY)
        with pytest.raises(ProviderFault, match="No space left"):
            journal_failure(rt, 9, SPEC_HASH, int(FailureCode.TIME_LIMIT), b"\xee" * 32)  # type: ignore[arg-type]
        assert rt.journal.load(9) is None and [p.name for p in root.iterdir()] == ["filler"]
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)

PREPARE_AND_DIE = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from depin.outputs import build_archive
    from executor.results import ResultStore, SubmissionJournal, prepare_submission

    root = Path(sys.argv[1]); run = sys.argv[2]
    out = root / f"out-{run}"
    out.mkdir()
    (out / "result.txt").write_text("hello\\n")
    archive = build_archive(out, 0, root / f"{run}.tar")
    store = ResultStore(root / "store", "http://p")
    stored = store.put(archive.path, move=True)
    sub = prepare_submission(SubmissionJournal(root / "journal"), store, job_id=42, spec_hash=b"\\x5c" * 32,
                             party="0x70997970C51812dc3A010C7d01b50e0d17dc79C8", kind="result", digest=stored.digest, name=stored.name)
    print(sub.salt, sub.name, sub.commitment, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 right after the journal write: no cleanup, no exit handlers
    """
)


def test_a_restarted_process_gets_the_same_salt_back(tmp_path: Path) -> None:
    lines = []
    for run in ("first", "second"):
        proc = subprocess.run([sys.executable, "-c", PREPARE_AND_DIE, str(tmp_path), run], capture_output=True, text=True, timeout=60)
        assert proc.returncode == -9, proc.stderr
        lines.append(proc.stdout.split())
    assert lines[0] == lines[1]  # same salt, same name, same commitment
    salt, name, _ = lines[0]
    assert SubmissionJournal(tmp_path / "journal").load(42).salt == salt  # type: ignore[union-attr]
    assert [p.name for p in (tmp_path / "store").rglob("*.tar")] == [f"{name}.tar"]
