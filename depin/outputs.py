"""The result archive and its digest: what a provider posts on chain and anyone can recompute.

Format ``depin-result-v1``. The result of a job is one POSIX tar archive (pax format) holding, in
this order:

1. ``exit_code``: a regular file whose content is the container's exit code in decimal plus a
   newline (``"0\\n"``);
2. ``out/``: the container's output directory, then every entry below it, sorted by path
   (byte-wise on the UTF-8 path). Directories, regular files and symbolic links only (anything else
   makes the result invalid). Hard links are stored as regular files.

Every entry has mtime 0, uid and gid 0, empty user and group names, mode 0755 for directories and for
files with any execute bit, 0644 for other files, 0777 for symbolic links. No other metadata is kept.
The archive is the exact bytes :func:`build_archive` writes: Python's ``tarfile`` with
``format=PAX_FORMAT`` and the default 10240-byte record, so a verifier recomputes the same bytes
from the same output.

The **result digest** is the sha256 of those archive bytes. It is the ``resultHash`` posted on chain
(as bytes32) and the name under which the result store serves the archive
(``GET /results/0x<digest hex>``), so a downloader checks what it got against the chain with one hash.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from depin.errors import ExecutionError

FORMAT = "depin-result-v1"
CHUNK = 1 << 20


class OutputTooLarge(ExecutionError):
    """The output directory does not fit in the job's output limit."""


class InvalidOutput(ExecutionError):
    """The output directory holds something the format cannot represent (a device, a fifo, ...)."""


@dataclass(frozen=True)
class ResultArchive:
    path: Path
    digest: bytes  # sha256 of the archive bytes (32 bytes): the on-chain resultHash
    size: int
    exit_code: int

    @property
    def digest_hex(self) -> str:
        return "0x" + self.digest.hex()


def _info(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _entries(out_dir: Path) -> list[tuple[str, Path]]:
    """(archive name, path) of everything under `out_dir`, sorted byte-wise by archive name."""
    found: list[tuple[bytes, str, Path]] = []
    for root, dirs, files in os.walk(out_dir, followlinks=False):
        for name in dirs + files:
            path = Path(root) / name
            rel = path.relative_to(out_dir).as_posix()
            found.append((rel.encode("utf-8", "surrogateescape"), "out/" + rel, path))
    found.sort(key=lambda item: item[0])
    return [(name, path) for _, name, path in found]


def build_archive(out_dir: Path, exit_code: int, dest: Path, *, max_bytes: int | None = None) -> ResultArchive:
    """Writes the ``depin-result-v1`` archive of `out_dir` and `exit_code` to `dest` and hashes it.

    Raises :class:`OutputTooLarge` when the archive would exceed `max_bytes` (nothing is left at
    `dest`), :class:`InvalidOutput` for entries the format cannot hold.
    """
    out_dir = Path(out_dir)
    entries = _entries(out_dir) if out_dir.exists() else []
    if max_bytes is not None:
        total = sum(p.lstat().st_size for _, p in entries if stat.S_ISREG(p.lstat().st_mode))
        if total > max_bytes:
            raise OutputTooLarge(f"the output is {total} bytes; the job's limit is {max_bytes}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    try:
        with open(partial, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            code = f"{exit_code}\n".encode()
            tar.addfile(_info("exit_code", tarfile.REGTYPE, 0o644, len(code)), io.BytesIO(code))
            tar.addfile(_info("out", tarfile.DIRTYPE, 0o755))
            for name, path in entries:
                st = path.lstat()
                if stat.S_ISDIR(st.st_mode):
                    tar.addfile(_info(name, tarfile.DIRTYPE, 0o755))
                elif stat.S_ISLNK(st.st_mode):
                    tar.addfile(_info(name, tarfile.SYMTYPE, 0o777, linkname=os.readlink(path)))
                elif stat.S_ISREG(st.st_mode):
                    mode = 0o755 if st.st_mode & 0o111 else 0o644
                    with open(path, "rb") as fh:
                        tar.addfile(_info(name, tarfile.REGTYPE, mode, st.st_size), fh)
                else:
                    raise InvalidOutput(f"{name} is neither a file, a directory nor a symbolic link")
        size = partial.stat().st_size
        if max_bytes is not None and size > max_bytes + 1_048_576:  # headers of very many tiny files
            raise OutputTooLarge(f"the output archive is {size} bytes; the job's limit is {max_bytes}")
        digest = file_sha256(partial)
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return ResultArchive(dest, digest, size, exit_code)


def file_sha256(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.digest()


def read_exit_code(archive: Path) -> int:
    """The exit code recorded in a result archive."""
    with tarfile.open(archive, mode="r") as tar:
        member = tar.getmember("exit_code")
        data = tar.extractfile(member)
        if data is None:
            raise InvalidOutput("exit_code is not a regular file")
        return int(data.read().decode().strip())


def extract_archive(archive: Path, dest: Path) -> int:
    """Extracts the archive's ``out/`` into `dest` (safely: no absolute paths, no escaping links)
    and returns the recorded exit code."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="r") as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("out/")]
        for m in members:
            m.name = m.name[len("out/") :]
        tar.extractall(dest, members=members, filter="data")
    return read_exit_code(archive)
