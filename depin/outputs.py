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
(as bytes32), so a downloader checks what it got against the chain with one hash. The result store
serves the archive under an opaque name unrelated to the digest (:mod:`executor.results`), so that
nobody can ask it whether a guessed digest exists.

**Limits of a representable output** (:class:`OutputLimits`). Beyond any of them the output is
invalid (``FailureCode.OUTPUT_INVALID``), except bytes (``OUTPUT_TOO_LARGE``): at most ``MAX_DEPTH``
(64) levels below ``out/``; at most ``MAX_PATH_BYTES`` (1024) bytes of UTF-8 path below ``out/``
per entry, and as many in a symbolic link's target; at most ``MAX_ENTRIES`` (65,536, the output tmpfs's inode cap) entries; at most the job's
output limit in bytes of regular files (apparent sizes; a hard-linked file counts once per name, as
the archive stores it); no two names in one folder that are one name where case or Unicode
normalization does not count (``Makefile`` and ``makefile``, :func:`_fold`: one file on macOS or
Windows, so the requester's extraction refuses them, and an output it could not extract is no
result; the measurement of a watched run, while the job still writes, leaves this rule to the
finished output). The pax format could hold longer paths: the cap is what every requester can
extract below any reasonable destination folder without reaching Linux's 4096-byte PATH_MAX, and
it keeps a hostile tree from making the walk itself expensive.

**One walker** (:func:`walk_output`) serves both the executor's measurement
(:func:`executor.containers.output_size`) and the archive (:func:`build_archive`). It is iterative
(no recursion, whatever the depth) and works through directory file descriptors: every directory
is opened with ``openat`` relative to its parent's descriptor (``O_NOFOLLOW``) and listed with
``os.scandir(fd)``, so no path handed to the kernel is longer than one name, a symbolic link swapped
in for a directory is never followed, and nothing lies "too deep to see": every entry is counted
and anything beyond a limit is an error, never an undercount. At most ``MAX_DEPTH + 1`` descriptors
are open at once. An entry that vanishes while it is walked (the job still writes during a watched
run) is not there and is not counted. An ``OSError`` of the walk whose errno says the provider's
machine ran out of something (``PROVIDER_ERRNOS``: descriptors, memory, disk, I/O) escapes as it is
(the provider's fault, never blamed on the job); any other (e.g. a folder the job made unreadable)
is :class:`InvalidOutput`.

**The match digest** (:func:`match_digest`). A spec may name the part of the output that must match
between independent runs (``"output": {"match": [pattern, ...]}``, iExec's determinism file): a job
that also writes a timestamp or a log can still be verified on the rest. The *match digest* is the
sha256 of the ``depin-result-v1`` archive that :func:`build_archive` writes for the same exit code
and an ``out/`` holding only the **selected** entries: every entry whose path below ``out/``
matches a pattern, every entry below a selected directory, and the directories on the way to a
selected entry (so the archive stays a well-formed tree). Entries keep their order (byte-wise by
path), type, mode class, link target and bytes; nothing else changes. With no selector (None) the
match digest is the result digest itself. It is computed from the result archive
(:func:`match_digest`) or from the output folder (:func:`build_archive` with ``select``); both give
the same bytes, so a provider, a verifier and a requester holding only the archive agree.
An archive in which an entry does not follow the directory entry of its folder (as
:func:`build_archive` writes them) is no result archive to :func:`match_digest`. The result is
still the whole archive: extraction writes every entry, selected or not, and
:func:`match_selection` counts those no match digest covers (``depin job result`` notes them).

A **pattern** is a ``/``-separated path relative to ``out/``: 1 to ``MAX_PATTERN_BYTES`` bytes of
printable characters, no leading ``/``, no empty, ``.`` or ``..`` component, no backslash. Inside a
component, ``*`` matches any run of characters, ``?`` one character and ``[...]`` a set
(:func:`fnmatch.fnmatchcase`, case-sensitive, never across ``/``); a component that is exactly
``**`` matches zero or more components. A plain path (``result.json``, ``data``) selects that
entry and, for a directory, its whole subtree. At most ``MAX_PATTERNS`` patterns; an entry is
selected when any one of them selects it. Symbolic links are selected as links (never followed).
:func:`check_pattern` says why a pattern is refused. Applying a selector to an output is one more
limit of a representable output: its entries times its patterns' components (``a/**/*.csv`` is 3)
at most ``MAX_SELECTION_WORK`` (2^25: all 65,536 entries under 512 components), else the output is
invalid (``OUTPUT_INVALID``), and an archive beyond it is no result archive for that selector
(:class:`UnsafeArchive` from :func:`match_digest`). Matching follows each pattern as a small
automaton along the path, continuing the parent directory's state, so an entry costs one step per
pattern whatever its depth, and that limit bounds the glob tests a hostile output and selector
can demand of a provider, a verifier or a requester.

**Extraction** (:func:`extract_archive`) checks every member before writing anything: only
``exit_code`` and ``out/...`` members; directories, regular files and symbolic links only (hard
links, devices, fifos are refused); no absolute name, no empty, ``.`` or ``..`` component (each
path spelled the one way the format writes it), every member's folder a directory member before
it (as the format writes them: so nothing below a symbolic link or a file), at most ``MAX_DEPTH``
levels below ``out/``, no name twice, no
two names that differ only in case or Unicode normalization (one file on macOS or Windows:
:func:`_fold`, refused on every system), and every link target relative, resolving inside
``out/`` without stepping through another link; on Windows only, no name Windows cannot hold
(:func:`windows_name_fault`: a device name such as ``AUX``, ``aux.c`` or ``CONIN$``, a trailing dot or space,
``<>:"|?*\\`` or a control character, the form of an 8.3 short name such as ``RESULT~1.JSO``,
which may be another member's alias; in a link's target too): an honest Linux output may hold
``aux.c``, so the provider's walk accepts them and the result extracts on Linux and macOS. Unless
the caller allows it (`allow_vcs`), no name that a version-control tool reads as its metadata
(:func:`vcs_name_fault`: ``.git``, ``.hg`` and the spellings git itself treats as ``.git`` on macOS
and Windows): a ``.git`` folder's ``config`` names commands (``core.fsmonitor``) that a plain
``git status`` runs, and many shells' prompts run one on entering a folder, so a provider's archive
could run its commands on the requester's machine (found by review, stop 56). A member breaking one of these raises
:class:`UnsafeArchive` and nothing is extracted; the extraction itself still uses ``tarfile``'s
``data`` filter as a second line, but for symbolic links' targets (:func:`_second_line`).
Every reader of an archive someone else published (extraction, :func:`match_digest`) opens it as a
plain tar (:func:`open_result`): a compressed one (gzip, bzip2, xz, ...) is refused before anything
is decompressed, and a sparse member is refused like a device, so that a download whose size is
capped never turns into more bytes than it holds.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import io
import os
import re
import stat
import tarfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from depin.errors import ExecutionError

FORMAT = "depin-result-v1"
CHUNK = 1 << 20
MAX_DEPTH = 64
MAX_PATH_BYTES = 1024
MAX_ENTRIES = 65_536
MAX_MEMBERS = MAX_ENTRIES + 2  # what an archive holds at most: exit_code, out/, and MAX_ENTRIES entries below out/
MAX_PATTERNS = 64
MAX_PATTERN_BYTES = 1024
# An output selector applied to an output: its entries times its patterns' components at most (the
# module doc). Bounds the glob tests of the match digest (``make bench-selector``: the costliest case
# it builds at the cap, 64 patterns of 190 components alternating ``**`` and a set over 2,762
# entries 61 deep, makes 10 M glob tests in about 6 s).
MAX_SELECTION_WORK = 1 << 25
# Errors of a walk that the output cannot cause: the provider's own machine is out of something.
PROVIDER_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EIO, errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_VANISHED = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class OutputTooLarge(ExecutionError):
    """The output directory does not fit in the job's output limit."""


class InvalidOutput(ExecutionError):
    """The output directory holds something the format cannot represent (a device, a fifo, a tree
    deeper, longer or with more entries than :class:`OutputLimits` allows, ...)."""


class UnsafeArchive(ExecutionError, ValueError):
    """A result archive holds a member that extraction refuses (an absolute or ``..`` path, an
    absolute or escaping symbolic link, a hard link, a device, a sparse file, ...), or is not a
    plain tar (a compressed one)."""


class VcsMetadata(UnsafeArchive):
    """A result archive holds a version-control tool's metadata folder (``.git``, ``.hg``:
    :func:`vcs_name_fault`), which extraction refuses unless the caller allows it."""


# Magic numbers of the compressions ``tarfile.open(mode="r")`` would undo on its own. The format is
# a plain tar, whose members' bytes all lie in the file: extracting one can write no more than the
# archive's own size. A compressed archive could (bzip2 makes 300 MB of zeros from 343 bytes), so
# a downloaded archive, whose size alone is capped, is refused before anything is decompressed.
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd", b"\x5d\x00\x00": "lzma"}


def open_result(archive: Path) -> tarfile.TarFile:
    """Opens a result archive for reading: a plain tar only (never decompressed) whose headers are
    the ones the format writes (:func:`check_headers`), else :class:`UnsafeArchive`;
    ``tarfile.TarError`` / ``OSError`` for a broken or missing one."""
    with open(archive, "rb") as fh:
        head = fh.read(8)
        for magic, name in _COMPRESSED.items():
            if head.startswith(magic):
                raise UnsafeArchive(f"not a {FORMAT} archive: it is {name}-compressed (the format is a plain tar; nothing is decompressed)")
        check_headers(fh)
    return tarfile.open(archive, mode="r:")


# The pax records `build_archive` can write (tarfile's PAX_FORMAT for a long or non-ASCII name or
# link target; GNU tar's times too), each with the longest value it may hold; the whole extended header at most
# MAX_PAX_HEADER bytes. Python's tarfile before 3.11.10 / 3.12.6 scans a pax header for digits in
# quadratic time (CVE-2024-6232: a 170 KB header held a process for 33 s), and before the fixes of
# CVE-2025-8194 a negative size sends it back over the archive forever. With these bounds, a header
# costs that scan about what an honest one with a 1,024-digit name costs, on every Python, and the
# same archives are refused on every Python (a verifier's verdict may not depend on its version).
_PAX_LIMITS = {b"path": MAX_PATH_BYTES + 16, b"linkpath": MAX_PATH_BYTES + 16, b"hdrcharset": 64, b"size": 32,
               b"mtime": 32, b"atime": 32, b"ctime": 32, b"uid": 32, b"gid": 32, b"uname": 64, b"gname": 64}
MAX_PAX_HEADER = 8192
_BLOCK = tarfile.BLOCKSIZE
_DATA_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_OTHER_HEADERS = {tarfile.XGLTYPE: "a global pax header", tarfile.SOLARIS_XHDTYPE: "a Solaris extended header",
                  tarfile.GNUTYPE_LONGNAME: "a GNU long-name header", tarfile.GNUTYPE_LONGLINK: "a GNU long-link header"}


def check_headers(fh: BinaryIO) -> None:
    """Walks an archive's headers the way ``tarfile`` will, before it does, and raises
    :class:`UnsafeArchive` for one the format never writes: a global, Solaris or GNU long-name
    header, a sparse member, a negative size, two extended headers for one member, or an extended
    header over MAX_PAX_HEADER bytes, malformed, or with a record outside ``_PAX_LIMITS``, or more
    members than the format writes (``MAX_MEMBERS``: ``tarfile`` would hold every one of them in
    memory, about 1.3 KB each, found by review). A header
    ``tarfile`` would take for the end (zeros, a bad checksum) ends the walk as it ends the reading;
    a broken archive is left for ``tarfile`` to refuse. One read per member."""
    fh.seek(0, os.SEEK_END)
    total = fh.tell()
    offset = 0
    members = 0
    pax: dict[bytes, bytes] | None = None
    while offset + _BLOCK <= total:
        fh.seek(offset)
        block = fh.read(_BLOCK)
        checksum, size = _number(block[148:156]), _number(block[124:136])
        if checksum is None or size is None or checksum not in _checksums(block):
            return
        kind = block[156:157]
        name = (pax or {}).get(b"path") or block[:100].split(b"\0", 1)[0]
        shown = _short(name.decode("utf-8", "replace"))
        if size < 0:
            raise UnsafeArchive(f"unsafe result archive: {shown} has a negative size")
        if kind == tarfile.XHDTYPE:
            if pax is not None:
                raise UnsafeArchive(f"unsafe result archive: two extended headers in a row at byte {offset}")
            if size > MAX_PAX_HEADER:
                raise UnsafeArchive(f"unsafe result archive: an extended header of {size} bytes (the format writes at most {MAX_PAX_HEADER})")
            pax = _pax_records(fh.read(size), offset)
            offset += _BLOCK + -(-size // _BLOCK) * _BLOCK
            continue
        if kind == tarfile.GNUTYPE_SPARSE:
            raise UnsafeArchive(f"unsafe result archive: {shown}: a sparse file (the format stores files whole)")
        if kind in _OTHER_HEADERS:
            raise UnsafeArchive(f"not a {FORMAT} archive: it holds {_OTHER_HEADERS[kind]} at byte {offset}")
        members += 1
        if members > MAX_MEMBERS:
            raise UnsafeArchive(_too_many_entries())
        if pax is not None and b"size" in pax:
            size = int(pax[b"size"])
        pax = None
        # tarfile's rule: the data of a regular file (an old-style one named with a trailing slash
        # is a directory) or of a type it does not know follows the header; no other type has any.
        regular = kind in _DATA_TYPES and not (kind == tarfile.AREGTYPE and block[:100].split(b"\0", 1)[0].endswith(b"/"))
        if regular or kind not in tarfile.SUPPORTED_TYPES:
            offset += -(-size // _BLOCK) * _BLOCK
        offset += _BLOCK


def _too_many_entries() -> str:
    return f"not a {FORMAT} archive: more than {MAX_ENTRIES} entries below out/ (the format's limit)"


def _members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The archive's members, read one by one (never ``getmembers()`` first), refused past what the
    format holds (``MAX_MEMBERS``; :func:`check_headers` refuses such an archive already)."""
    members: list[tarfile.TarInfo] = []
    for member in tar:
        members.append(member)
        if len(members) > MAX_MEMBERS:
            raise UnsafeArchive(_too_many_entries())
    return members


def _number(field: bytes) -> int | None:
    """A header's number as tarfile reads it: base-256 (negative when the first byte is 0xff) or
    octal text up to its first NUL; None where tarfile finds the header invalid."""
    if field[:1] in (b"\x80", b"\xff"):
        n = int.from_bytes(field[1:], "big")
        return n - 256 ** (len(field) - 1) if field[0] == 0xFF else n
    try:
        return int(field.split(b"\0", 1)[0].decode("ascii").strip() or "0", 8)
    except (UnicodeDecodeError, ValueError):
        return None


def _checksums(block: bytes) -> tuple[int, int]:
    """The header's checksum summed as unsigned and as signed bytes (tarfile accepts either), its
    own field counted as spaces."""
    rest = block[:148] + block[156:]
    return 256 + sum(rest), 256 + sum(b - 256 if b > 127 else b for b in rest)


def _pax_records(buf: bytes, offset: int) -> dict[bytes, bytes]:
    """The records of an extended header (``"<length> <keyword>=<value>\\n"``, read in linear
    time), or UnsafeArchive for a malformed one or one the format never writes."""
    found: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(buf):
        space = buf.find(b" ", pos, pos + 21)
        length = int(buf[pos:space]) if space > pos and buf[pos:space].isdigit() else 0
        end = pos + length
        equals = buf.find(b"=", space + 1, end - 1) if length else -1
        if equals < 0 or end > len(buf) or buf[end - 1 : end] != b"\n":
            raise UnsafeArchive(f"unsafe result archive: a malformed extended header at byte {offset}")
        found.append((buf[space + 1 : equals], buf[equals + 1 : end - 1]))
        pos = end
    records = dict(found)
    if any(keyword.startswith(b"GNU.sparse.") for keyword in records):
        name = (records.get(b"GNU.sparse.name") or records.get(b"path", b"")).decode("utf-8", "replace")
        raise UnsafeArchive(f"unsafe result archive: {_short(name)}: a sparse file (the format stores files whole)")
    for keyword, value in found:
        limit = _PAX_LIMITS.get(keyword)
        if limit is None:
            shown = _short(keyword.decode("utf-8", "replace"))
            raise UnsafeArchive(f"not a {FORMAT} archive: an extended header holds {shown!r}, which the format never writes")
        if len(value) > limit:
            raise UnsafeArchive(f"unsafe result archive: an extended header's {keyword.decode()} holds {len(value)} bytes (at most {limit})")
    if b"size" in records and not records[b"size"].isdigit():
        raise UnsafeArchive(f"unsafe result archive: an extended header's size {_short(records[b'size'].decode('utf-8', 'replace'))!r} is not a number")
    return records


def _sparse(member: tarfile.TarInfo) -> bool:
    """A sparse file (GNU or pax sparse headers): its stored bytes say nothing of its size."""
    return member.type == tarfile.GNUTYPE_SPARSE or getattr(member, "sparse", None) is not None


@dataclass(frozen=True)
class OutputLimits:
    """What a representable output may hold (see the module doc); ``max_bytes=None``: no byte cap."""

    max_depth: int = MAX_DEPTH
    max_path_bytes: int = MAX_PATH_BYTES
    max_entries: int = MAX_ENTRIES
    max_bytes: int | None = None


EntryKind = Literal["dir", "file", "link", "other"]


@dataclass(frozen=True)
class Entry:
    """One entry below ``out/``; `rel` is its ``/``-separated path below ``out/``."""

    rel: str
    kind: EntryKind
    size: int = 0  # regular files: apparent size
    executable: bool = False
    linkname: str = ""


@dataclass(frozen=True)
class OutputTree:
    """Everything below an output folder, sorted byte-wise by path, and its regular files' bytes."""

    entries: list[Entry]
    total_bytes: int


@dataclass(frozen=True)
class ResultArchive:
    path: Path
    digest: bytes  # sha256 of the archive bytes (32 bytes): the on-chain resultHash
    size: int
    exit_code: int

    @property
    def digest_hex(self) -> str:
        return "0x" + self.digest.hex()


# --- walking ------------------------------------------------------------------------------------


class _Walk:
    """One walk's findings, counted against its limits as they come."""

    def __init__(self, limits: OutputLimits, collisions: bool = True) -> None:
        self.limits = limits
        self.collisions = collisions
        self.entries: list[tuple[bytes, Entry]] = []
        self.total_bytes = 0

    def add(self, rel: str, entry_stat: os.stat_result, depth: int, linkname: str = "") -> Entry:
        lim = self.limits
        encoded = rel.encode("utf-8", "surrogateescape")
        if depth > lim.max_depth:
            raise InvalidOutput(f"out/{_short(rel)} is {depth} levels deep; the format allows at most {lim.max_depth}")
        if len(encoded) > lim.max_path_bytes:
            raise InvalidOutput(f"out/{_short(rel)} has a {len(encoded)}-byte path; the format allows at most {lim.max_path_bytes}")
        if len(self.entries) >= lim.max_entries:
            raise InvalidOutput(f"the output holds more than {lim.max_entries} entries (the format's limit)")
        mode = entry_stat.st_mode
        if stat.S_ISDIR(mode):
            entry = Entry(rel, "dir")
        elif stat.S_ISLNK(mode):
            if len(linkname.encode("utf-8", "surrogateescape")) > lim.max_path_bytes:
                raise InvalidOutput(f"out/{_short(rel)} is a symbolic link to a {len(linkname.encode('utf-8', 'surrogateescape'))}-byte target; the format allows at most {lim.max_path_bytes}")
            entry = Entry(rel, "link", linkname=linkname)
        elif stat.S_ISREG(mode):
            entry = Entry(rel, "file", size=entry_stat.st_size, executable=bool(mode & 0o111))
            self.total_bytes += entry_stat.st_size
            if lim.max_bytes is not None and self.total_bytes > lim.max_bytes:
                raise OutputTooLarge(f"the output is at least {self.total_bytes} bytes; the job's limit is {lim.max_bytes}")
        else:
            entry = Entry(rel, "other")
        self.entries.append((encoded, entry))
        return entry


def _short(rel: str, keep: int = 80) -> str:
    """`rel` for a one-line message: control characters escaped, long paths cut."""
    shown = rel if rel.isprintable() else repr(rel)[1:-1]
    return shown if len(shown) <= keep else f"{shown[:keep]}... ({len(rel)} characters)"


def _fault(exc: OSError, what: str) -> Exception:
    """An OSError of the walk as what it is: the provider's (itself) or the output's (InvalidOutput)."""
    if exc.errno in PROVIDER_ERRNOS:
        return exc
    return InvalidOutput(f"{what}: {exc.strerror or exc}")


def _open_dir(name: str, dir_fd: int | None) -> int | None:
    """A descriptor of directory `name` (relative to `dir_fd`), or None when it vanished or is no
    longer a directory (a job still writing during a watched run)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in _VANISHED:
            return None
        raise _fault(exc, f"cannot open out/{_short(name)}") from exc


def _list(fd: int, prefix: str, depth: int, walk: _Walk) -> list[str]:
    """Adds the entries of the directory open as `fd` (whose entries have path `prefix` + name and
    are `depth` levels down) and returns the names of its subdirectories."""
    subdirs = []
    folded: dict[str, str] = {}  # this folder's names so far, by _fold (walk.collisions)
    try:
        with os.scandir(fd) as it:
            for item in it:
                rel = prefix + item.name
                try:
                    st = item.stat(follow_symlinks=False)
                    linkname = os.readlink(item.name, dir_fd=fd) if stat.S_ISLNK(st.st_mode) else ""
                except OSError as exc:
                    if exc.errno in _VANISHED or exc.errno == errno.EINVAL:
                        continue  # vanished, or no longer a link between stat and readlink
                    raise _fault(exc, f"cannot read out/{_short(rel)}") from exc
                if walk.collisions:
                    _collide(folded, prefix, item.name)
                if walk.add(rel, st, depth, linkname).kind == "dir":
                    subdirs.append(item.name)
    except OSError as exc:
        raise _fault(exc, f"cannot list out/{_short(prefix) or '.'}") from exc
    return subdirs


def _collide(folded: dict[str, str], prefix: str, name: str) -> None:
    """Records `name` among its folder's `folded` names, or raises :class:`InvalidOutput` when an
    earlier one is the same name where case or Unicode normalization does not count (:func:`_fold`,
    the rule the requester's extraction applies). The message names both in byte order, whichever
    the folder listed first, so that every walk of the same tree says the same."""
    key = _fold(name)
    other = folded.setdefault(key, name)
    if other != name:
        one, two = sorted((other, name), key=lambda n: n.encode("utf-8", "surrogateescape"))
        raise InvalidOutput(
            f"out/{_short(prefix + one)} and out/{_short(prefix + two)} collide where case or Unicode normalization does not"
            " count in a name (one file on macOS or Windows, where the result could not be extracted)"
        )


def walk_output(root: Path, limits: OutputLimits = OutputLimits(), *, collisions: bool = True) -> OutputTree:
    """Every entry below `root` (see the module doc), sorted byte-wise by path, or
    :class:`InvalidOutput` / :class:`OutputTooLarge` when the tree breaks `limits` or, with
    `collisions`, holds two names in one folder that collide where case or Unicode normalization
    does not count (:func:`_fold`: the requester's extraction refuses them). A measurement while
    the job still writes passes ``collisions=False``: the rule is the finished output's, and a
    moment's state (``Foo`` written before ``foo`` is removed) is no verdict another run would
    reach. A missing `root` is an empty tree. An ``OSError`` escaping is the provider's
    (``PROVIDER_ERRNOS``)."""
    walk = _Walk(limits, collisions)
    root_fd = _open_dir(os.fspath(root), None)
    if root_fd is None:
        return OutputTree([], 0)
    # Depth-first, one frame per open directory: (descriptor, path prefix, subdirectories to visit).
    stack: list[tuple[int, str, list[str]]] = []
    try:
        stack.append((root_fd, "", []))
        stack[-1][2].extend(_list(root_fd, "", 1, walk))
        while stack:
            fd, prefix, todo = stack[-1]
            if not todo:
                os.close(fd)
                stack.pop()
                continue
            name = todo.pop()
            child = _open_dir(name, fd)
            if child is None:
                continue
            child_prefix = f"{prefix}{name}/"
            stack.append((child, child_prefix, []))
            stack[-1][2].extend(_list(child, child_prefix, len(stack), walk))
    finally:
        for fd, _, _ in stack:
            os.close(fd)
    walk.entries.sort(key=lambda item: item[0])
    return OutputTree([entry for _, entry in walk.entries], walk.total_bytes)


def open_entry(root_fd: int, rel: str) -> BinaryIO:
    """Opens the regular file `rel` below the directory open as `root_fd` for reading, component by
    component (``openat``), never following a symbolic link."""
    parts = rel.split("/")
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        file_fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)
    return os.fdopen(file_fd, "rb")


# --- the archive --------------------------------------------------------------------------------


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


def build_archive(
    out_dir: Path,
    exit_code: int,
    dest: Path,
    *,
    max_bytes: int | None = None,
    limits: OutputLimits | None = None,
    select: Sequence[str] | None = None,
) -> ResultArchive:
    """Writes the ``depin-result-v1`` archive of `out_dir` and `exit_code` to `dest` and hashes it.
    With `select` (output patterns, see the module doc) only the selected entries are archived:
    the archive whose sha256 is the match digest.

    Raises :class:`OutputTooLarge` when the output exceeds `max_bytes` (nothing is left at `dest`),
    :class:`InvalidOutput` for entries the format cannot hold or a tree beyond `limits` (default:
    :class:`OutputLimits` with `max_bytes`).
    """
    out_dir = Path(out_dir)
    limits = limits or OutputLimits(max_bytes=max_bytes)
    tree = walk_output(out_dir, limits)
    entries = tree.entries if select is None else selected(tree.entries, select)
    for entry in entries:
        if entry.kind == "other":
            raise InvalidOutput(f"out/{_short(entry.rel)} is neither a file, a directory nor a symbolic link (a fifo, socket or device)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    try:
        with open(partial, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                code = f"{exit_code}\n".encode()
                tar.addfile(_info("exit_code", tarfile.REGTYPE, 0o644, len(code)), io.BytesIO(code))
                tar.addfile(_info("out", tarfile.DIRTYPE, 0o755))
                _add_entries(tar, out_dir, entries)
            raw.flush()
            size = os.fstat(raw.fileno()).st_size
            if max_bytes is not None and size > max_bytes + 1_048_576:  # headers of very many tiny files
                raise OutputTooLarge(f"the output archive is {size} bytes; the job's limit is {max_bytes}")
            os.fsync(raw.fileno())  # the bytes are on disk before the name is: never a truncated archive after a power cut
        digest = file_sha256(partial)
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return ResultArchive(dest, digest, size, exit_code)


def _add_entries(tar: tarfile.TarFile, out_dir: Path, entries: list[Entry]) -> None:
    if not entries:
        return
    root_fd = os.open(out_dir, _DIR_FLAGS)
    try:
        for entry in entries:
            name = "out/" + entry.rel
            if entry.kind == "dir":
                tar.addfile(_info(name, tarfile.DIRTYPE, 0o755))
            elif entry.kind == "link":
                tar.addfile(_info(name, tarfile.SYMTYPE, 0o777, linkname=entry.linkname))
            else:
                _add_file(tar, root_fd, entry, name)
    finally:
        os.close(root_fd)


def _add_file(tar: tarfile.TarFile, root_fd: int, entry: Entry, name: str) -> None:
    try:
        fh = open_entry(root_fd, entry.rel)
    except OSError as exc:
        raise _fault(exc, f"cannot read out/{_short(entry.rel)}") from exc
    with fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
            raise InvalidOutput(f"out/{_short(entry.rel)} changed while it was archived")
        tar.addfile(_info(name, tarfile.REGTYPE, 0o755 if entry.executable else 0o644, entry.size), fh)


def file_sha256(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.digest()


def read_exit_code(archive: Path) -> int:
    """The exit code recorded in a result archive."""
    with open_result(archive) as tar:
        member = tar.getmember("exit_code")
        data = tar.extractfile(member)
        if data is None:
            raise InvalidOutput("exit_code is not a regular file")
        return int(data.read().decode().strip())


# --- the output selector and the match digest ---------------------------------------------------


def check_pattern(pattern: str) -> str | None:
    """Why `pattern` is not a valid output pattern (see the module doc), or None."""
    if not isinstance(pattern, str) or not pattern:
        return "an output pattern is a non-empty string"
    if len(pattern.encode("utf-8", "surrogateescape")) > MAX_PATTERN_BYTES:
        return f"{_short(pattern)!r} is longer than {MAX_PATTERN_BYTES} bytes"
    if not pattern.isprintable():
        return f"{_short(pattern)!r} holds a control character"
    if pattern.startswith("/"):
        return f"{_short(pattern)!r} is absolute; patterns are relative to out/"
    if "\\" in pattern:
        return f"{_short(pattern)!r} holds a backslash (patterns use '/' and have no escapes)"
    for part in pattern.split("/"):
        if part in ("", ".", ".."):
            return f"{_short(pattern)!r} has an empty, '.' or '..' component"
        if "**" in part and part != "**":
            return f"{_short(pattern)!r}: '**' must be a whole component"
    return None


def check_patterns(patterns: Sequence[str]) -> list[str]:
    """The patterns, checked (ValueError naming the first bad one, or too many/none)."""
    if isinstance(patterns, (str, bytes)) or not isinstance(patterns, Sequence):
        raise TypeError("output.match is a list of patterns")
    if not 1 <= len(patterns) <= MAX_PATTERNS:
        raise ValueError(f"output.match holds 1 to {MAX_PATTERNS} patterns, not {len(patterns)}")
    for pattern in patterns:
        why = check_pattern(pattern)
        if why is not None:
            raise ValueError(why)
    return list(patterns)


class _Pattern:
    """One pattern as a small automaton over path components: bit ``i`` of a state says that the
    pattern's first ``i`` components match the components read so far (``**`` matching any number
    of them, ``fnmatchcase`` the others); bit ``len(comps)`` set is a match. Consecutive ``**``
    are one (they match the same)."""

    def __init__(self, pattern: str) -> None:
        comps: list[str] = []
        for comp in pattern.split("/"):
            if not (comp == "**" and comps and comps[-1] == "**"):
                comps.append(comp)
        self.comps = comps
        self.accept = 1 << len(comps)
        self.stars = sum(1 << i for i, c in enumerate(comps) if c == "**")
        self.globs = (self.accept - 1) & ~self.stars
        self.start = self._close(1)

    def _close(self, state: int) -> int:
        """With ``**`` at position i also matching no component: i in the state puts i + 1 in it."""
        return state | ((state & self.stars) << 1)

    def step(self, state: int, name: str, tests: dict[str, bool]) -> int:
        """The state after one more component, `name`. `tests` caches ``fnmatchcase(name, glob)``
        for this name (globs recur across patterns)."""
        nxt = state & self.stars  # ``**`` takes the component and stays
        pending = state & self.globs
        while pending:
            low = pending & -pending
            pending ^= low
            glob = self.comps[low.bit_length() - 1]
            hit = tests.get(glob)
            if hit is None:
                hit = tests[glob] = glob == "*" or fnmatch.fnmatchcase(name, glob)
            if hit:
                nxt |= low << 1
        return self._close(nxt)


class _Selection:
    """Which paths `patterns` select, itself or through a selected ancestor directory (the module
    doc). An entry's automaton states continue its parent's, remembered by path: an entry costs one
    step per pattern, however deep it lies. (Trying every pattern on every prefix of every path
    cost a provider about 20 s for 260 entries 60 deep under 64 patterns of ``*`` components,
    which a hostile job's output can make 65,536.)"""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = [_Pattern(p) for p in patterns]
        # path -> (the patterns' states, selected); "" is out/ itself, which no pattern selects
        self.known: dict[str, tuple[tuple[int, ...], bool]] = {"": (tuple(p.start for p in self.patterns), False)}

    def __call__(self, rel: str) -> bool:
        return self._of(rel)[1]

    def _of(self, rel: str) -> tuple[tuple[int, ...], bool]:
        got = self.known.get(rel)
        if got is not None:
            return got
        parts = rel.split("/")
        k = len(parts) - 1  # the deepest ancestor already known (out/ always is)
        while "/".join(parts[:k]) not in self.known:
            k -= 1
        states, chosen = self.known["/".join(parts[:k])]
        for n in range(k, len(parts)):
            if not chosen:
                tests: dict[str, bool] = {}
                states = tuple(p.step(s, parts[n], tests) for p, s in zip(self.patterns, states, strict=True))
                chosen = any(s & p.accept for p, s in zip(self.patterns, states, strict=True))
            self.known["/".join(parts[: n + 1])] = (states, chosen)
        return states, chosen


def path_selected(rel: str, patterns: Sequence[str]) -> bool:
    """Whether the entry `rel` (its path below ``out/``) is selected by one of `patterns` itself or
    through a selected ancestor directory (ancestors kept only for the tree's shape do not count)."""
    return _Selection(patterns)(rel)


def selected(entries: Sequence[Entry], patterns: Sequence[str]) -> list[Entry]:
    """The entries the match digest covers (see the module doc): the selected ones and the
    directories on the way to them, in their original (sorted) order."""
    check_patterns(patterns)
    components = sum(p.count("/") + 1 for p in patterns)
    work = len(entries) * components
    if work > MAX_SELECTION_WORK:
        raise InvalidOutput(
            f"the output selector's {components} pattern components over {len(entries)} entries"
            f" make {work} selection steps; the format allows at most {MAX_SELECTION_WORK}"
        )
    chooses = _Selection(patterns)
    chosen = {e.rel for e in entries if chooses(e.rel)}
    keep = set(chosen)
    for rel in chosen:  # and the directories on the way (each walk stops where an earlier one went)
        parent = rel.rpartition("/")[0]
        while parent and parent not in keep:
            keep.add(parent)
            parent = parent.rpartition("/")[0]
    return [e for e in entries if e.rel in keep]


class _HashSink:
    """A write-only file object that only hashes (and counts) what is written to it."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.h.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size


@dataclass(frozen=True)
class MatchSelection:
    """An archive under an output selector: its match digest, and how many of its entries below
    ``out/`` the match archive holds (`selected`: the selected ones and the directories on the way)
    of all of them (`entries`). The others are in the result but no match digest covers them."""

    digest: bytes
    entries: int
    selected: int

    @property
    def outside(self) -> int:
        return self.entries - self.selected


def match_digest(archive: Path, select: Sequence[str] | None) -> bytes:
    """The match digest of the ``depin-result-v1`` archive at `archive` under the output selector
    `select` (see the module doc): with None the archive's own sha256; else the sha256 of the
    archive re-emitted with only the selected ``out/`` entries, bit for bit what
    :func:`build_archive` with ``select`` writes from the output folder. Raises ValueError for bad
    patterns and :class:`UnsafeArchive` for an archive that is not of the format."""
    if select is None:
        return file_sha256(Path(archive))
    return match_selection(archive, select).digest


def match_selection(archive: Path, select: Sequence[str]) -> MatchSelection:
    """:func:`match_digest` under the selector `select`, with the counts of :class:`MatchSelection`."""
    archive = Path(archive)
    patterns = check_patterns(select)
    with open_result(archive) as tar:
        members = _members(tar)
        exit_code = _exit_code_of(tar)
        rels: list[Entry] = []
        by_rel: dict[str, tarfile.TarInfo] = {}
        folders = {""}  # the directories so far ("" is out/)
        for member in members:
            if member.name in ("exit_code", "out", "out/"):
                continue
            if not member.name.startswith("out/"):
                raise UnsafeArchive(f"not a {FORMAT} archive: {_short(member.name)}")
            rel = member.name[len("out/") :].rstrip("/")
            why = _name_fault(rel)
            if why is not None or rel in by_rel:
                raise UnsafeArchive(f"not a {FORMAT} archive: out/{_short(rel)}: {why or 'appears twice'}")
            # The format writes every folder before what it holds; the selection then takes one step
            # per entry (it remembered a state per prefix of every path: 1,000 folderless entries 500
            # deep, 2 MB, took 370 MB; found by review, stop 41).
            parent = rel.rpartition("/")[0]
            if parent not in folders:
                raise UnsafeArchive(f"not a {FORMAT} archive: out/{_short(rel)}: its folder out/{_short(parent)} is no directory member before it")
            kind: EntryKind = "dir" if member.isdir() else "link" if member.issym() else "file" if member.isreg() else "other"
            if kind == "dir":
                folders.add(rel)
            if kind == "other":
                raise UnsafeArchive(f"not a {FORMAT} archive: out/{_short(rel)} is neither a file, a directory nor a link")
            if _sparse(member):
                raise UnsafeArchive(f"not a {FORMAT} archive: out/{_short(rel)} is a sparse file")
            rels.append(Entry(rel, kind, size=member.size, executable=bool(member.mode & 0o111), linkname=member.linkname))
            by_rel[rel] = member
        try:
            chosen = selected(rels, patterns)
        except InvalidOutput as exc:  # no result archive: its provider had to fail OUTPUT_INVALID
            raise UnsafeArchive(f"not a {FORMAT} archive under this selector: {exc}") from None
        sink = _HashSink()
        with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as out:  # type: ignore[call-overload]
            code = f"{exit_code}\n".encode()
            out.addfile(_info("exit_code", tarfile.REGTYPE, 0o644, len(code)), io.BytesIO(code))
            out.addfile(_info("out", tarfile.DIRTYPE, 0o755))
            for entry in chosen:
                name = "out/" + entry.rel
                if entry.kind == "dir":
                    out.addfile(_info(name, tarfile.DIRTYPE, 0o755))
                elif entry.kind == "link":
                    out.addfile(_info(name, tarfile.SYMTYPE, 0o777, linkname=entry.linkname))
                else:
                    out.addfile(_info(name, tarfile.REGTYPE, 0o755 if entry.executable else 0o644, entry.size), tar.extractfile(by_rel[entry.rel]))
    return MatchSelection(sink.h.digest(), len(rels), len(chosen))


# --- extraction ---------------------------------------------------------------------------------


def _fold(name: str) -> str:
    """`name` as a case-insensitive or normalizing file system (macOS, Windows) may take it: Unicode's
    canonical caseless form, NFD(casefold(NFD(name))). Two names equal here may be one file there
    (``result.json`` and ``Result.json``; ``café`` composed and decomposed; ``straße`` and ``STRASSE``)."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


class _Tree:
    """An archive's ``out/`` members as the tree they make, in archive order: a node per member (0
    is ``out/`` itself), found under its parent by its name as a case-insensitive, normalizing
    file system takes it (:func:`_fold`). :meth:`add` refuses what the format never writes and what
    would land elsewhere than the checks saw: a member whose folder is not a directory member before
    it (the format writes every folder before what it holds; a member below a symbolic link or a
    file is one), a name twice, and two spellings of one name (``result.json`` and ``Result.json``:
    one file on macOS or Windows, the later member replacing the earlier, checked one), on every
    system alike. A member costs one step whatever its depth, and the tree holds one node per
    member (checking every prefix of every path cost seconds per thousand members 500 deep,
    found by review, stop 41)."""

    def __init__(self) -> None:
        self.children: dict[tuple[int, str], int] = {}  # (parent node, folded name) -> node
        self.parent: list[int] = [0]
        self.name: list[str] = [""]  # each node's name as spelled
        self.kind: list[str] = ["dir"]
        self.depth: list[int] = [0]
        self.exact: dict[str, int] = {"": 0}  # a member's path as spelled -> its node
        self.links: set[int] = set()
        self._folded: dict[str, str] = {}

    def fold(self, name: str) -> str:
        folded = self._folded.get(name)
        if folded is None:
            folded = self._folded[name] = _fold(name)
        return folded

    def add(self, member: tarfile.TarInfo) -> int:
        """`member` (named by its path below ``out/``) as a node of the tree, or UnsafeArchive (the
        class doc)."""
        rel = member.name
        parent, _, last = rel.rpartition("/")
        up = self.exact.get(parent)
        if up is None:
            raise UnsafeArchive(
                f"unsafe result archive: out/{_short(rel)}: its folder out/{_short(parent)} is no directory member before it"
                " (the format writes every folder before what it holds)"
            )
        if self.kind[up] != "dir":
            what = "a symbolic link" if self.kind[up] == "link" else "a file"
            raise UnsafeArchive(f"unsafe result archive: out/{_short(rel)}: lies below {what} (out/{_short(parent)})")
        if self.depth[up] >= MAX_DEPTH:  # what the walk refuses a provider (OutputLimits): tarfile's checks cost as much per level
            raise UnsafeArchive(f"unsafe result archive: out/{_short(rel)} is more than {MAX_DEPTH} levels deep (the format's limit)")
        key = (up, self.fold(last))
        other = self.children.get(key)
        if other is not None:
            if self.name[other] == last:
                raise UnsafeArchive(f"unsafe result archive: out/{_short(rel)} appears twice")
            raise UnsafeArchive(
                f"unsafe result archive: out/{_short(rel)} and out/{_short(parent + '/' if parent else '')}{_short(self.name[other])}"
                " collide where case or Unicode normalization does not count in a name (macOS, Windows): one would replace the other"
            )
        node = self.children[key] = len(self.parent)
        self.parent.append(up)
        self.depth.append(self.depth[up] + 1)
        self.name.append(last)
        self.kind.append("dir" if member.isdir() else "link" if member.issym() else "other")
        self.exact[rel] = node
        if member.issym():
            self.links.add(node)
        return node

    def escapes(self, node: int, target: str) -> bool:
        """Whether the symbolic link at `node` -> `target` may point outside ``out/``: an absolute
        or empty target, one that climbs above ``out/``, or one that steps through another symbolic
        link of the archive (whose own target would then decide where it lands), spelled in any case."""
        if not target or target.startswith("/"):
            return True
        where: list[int | None] = []  # the directories from out/ down, None where the archive has none
        up = self.parent[node]
        while up:
            where.append(up)
            up = self.parent[up]
        where.append(0)
        where.reverse()
        steps = [c for c in target.split("/") if c not in ("", ".")]
        for i, comp in enumerate(steps):
            if comp == "..":
                if len(where) == 1:
                    return True
                where.pop()
                continue
            here = where[-1]
            step = None if here is None else self.children.get((here, self.fold(comp)))
            if step is not None and step in self.links and i < len(steps) - 1:
                return True
            where.append(step)
        return False


def _name_fault(rel: str) -> str | None:
    """Why `rel` (a member's path below ``out/``, a directory's trailing ``/`` removed) is not a
    path the format writes, or None. The format writes each path one way (:func:`build_archive`),
    so one with an empty, ``.`` or ``..`` component (``a//b``, ``./a``) is refused outright: every
    later check compares names as spelled, and ``./l/f`` would otherwise not read as below link ``l``."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\x00" in rel:
        return "an absolute or empty path"
    if any(part in ("", ".", "..") for part in parts):
        return "a path with an empty, '.' or '..' component (an escaping or non-canonical path)"
    return None


# Names Windows cannot hold (Microsoft's "Naming Files, Paths, and Namespaces"): its reserved device
# names, with or without an extension (``aux.c`` opens the AUX device; the console's CONIN$ and
# CONOUT$ are reserved alike since Windows 11), these characters (``:``
# names an alternate data stream, ``\`` is a separator) and control characters, and a trailing dot
# or space (silently removed: ``notes.`` would become ``notes``).
_WINDOWS = os.name == "nt"
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {f"{port}{n}" for port in ("COM", "LPT") for n in (*"0123456789", "\u00b9", "\u00b2", "\u00b3")}
)
# An 8.3 short name (``RESULT~1.JSO``): where short names are on, another member's alias, and
# writing it would overwrite that checked member (git refuses the like for .git, CVE-2019-1353).
_SHORT_NAME = re.compile(r"([^.]+~[0-9]+)(?:\.[^.]{1,3})?")
_WINDOWS_CHARS = frozenset('<>:"|?*\\') | frozenset(chr(c) for c in range(32))


def windows_name_fault(name: str) -> str | None:
    """Why Windows cannot hold `name` (one component of a path), or None."""
    bad = sorted({c for c in name if c in _WINDOWS_CHARS})
    if bad:
        return "it holds " + ", ".join(repr(c) for c in bad) + ", which Windows does not allow in a name"
    if name.endswith((".", " ")):
        return "it ends with a dot or a space, which Windows removes"
    base = name.split(".", 1)[0].rstrip(" ").upper()
    if base in _WINDOWS_DEVICES:
        return f"{base} is a device name on Windows, with any extension"
    short = _SHORT_NAME.fullmatch(name)
    if short is not None and len(short[1]) <= 8:
        return "it has the form of an 8.3 short name, which on Windows may be another file's alias (RESULT~1.JSO for result.json5)"
    return None


# Folders a version-control tool takes as its own metadata when it finds them in a working tree:
# git's (its config names commands: core.fsmonitor, core.sshCommand, hooks) and Mercurial's (hgrc:
# hooks, extensions loaded from a path). Compared as git's own path check compares ``.git``
# (read-tree's verify_path): case-insensitively, without the code points macOS's HFS+ ignores,
# without trailing dots and spaces (Windows drops them), and in the 8.3 short form Windows gives.
_VCS_FOLDERS = frozenset({".git", ".hg"})
_VCS_SHORT = frozenset({"git~1", "hg~1"})
_HFS_IGNORED = dict.fromkeys(
    [0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x206A, 0x206B, 0x206C, 0x206D, 0x206E, 0x206F, 0xFEFF]
)


def vcs_name_fault(name: str) -> str | None:
    """Why `name` (one component of a path) is a version-control tool's metadata folder (``.git``,
    ``.hg``, however spelled for macOS or Windows), or None."""
    bare = name.translate(_HFS_IGNORED).rstrip(". ")
    for form in {bare.lower(), bare.casefold()}:
        if form in _VCS_FOLDERS or form in _VCS_SHORT:
            return f"{form.lstrip('.').split('~')[0]}'s metadata folder, whose settings name commands that the tool runs"
    return None


def _vcs_fault(member: tarfile.TarInfo) -> str | None:
    """Why `member` (named by its path below ``out/``) lies in a version-control tool's metadata
    folder, or None."""
    for comp in member.name.split("/"):
        why = vcs_name_fault(comp)
        if why is not None:
            return (f"out/{_short(member.name)}: {_short(comp)!r} is {why} (a git status in the folder would run them); "
                    "allow it only for a result you trust")
    return None


def _windows_fault(member: tarfile.TarInfo) -> str | None:
    """Why `member` (named by its path below ``out/``, its folders checked as members of their own)
    cannot be extracted on Windows: its name, or a component of its link target, is one Windows
    cannot hold; or None."""
    name = member.name.rpartition("/")[2]
    why = windows_name_fault(name)
    if why is None and member.issym():
        for comp in member.linkname.split("/"):
            if comp not in ("", ".", "..") and (why := windows_name_fault(comp)) is not None:
                why = f"its link target {_short(member.linkname)!r}: {_short(comp)!r}: {why}"
                break
    if why is None:
        return None
    return f"out/{_short(member.name)}: a name Windows cannot hold ({why}); this result extracts on Linux or macOS"


def _unsafe_member(member: tarfile.TarInfo, node: int, tree: _Tree) -> str | None:
    """Why `member` (named by its path below ``out/``, at `node` of the archive's `tree`, which
    placed it) may not be extracted, or None."""
    name = member.name
    if member.issym():
        if tree.escapes(node, member.linkname):
            return f"out/{_short(name)}: a symbolic link to {_short(member.linkname)!r}, outside the result"
        return None
    if member.islnk():
        return f"out/{_short(name)}: a hard link (the format stores files)"
    if _sparse(member):
        return f"out/{_short(name)}: a sparse file (the format stores files whole)"
    if not (member.isdir() or member.isreg()):
        return f"out/{_short(name)}: neither a file, a directory nor a symbolic link"
    return None


def _out_members(tar: tarfile.TarFile, windows: bool = False, allow_vcs: bool = False) -> list[tarfile.TarInfo]:
    """The archive's ``out/`` members, renamed to their path below ``out/``, every one checked
    (with `windows`, names Windows cannot hold too: :func:`windows_name_fault`; without
    `allow_vcs`, no version-control metadata: :func:`vcs_name_fault`); UnsafeArchive at the first
    unsafe one."""
    members = []
    for member in _members(tar):
        if member.name in ("exit_code", "out", "out/"):
            continue
        if not member.name.startswith("out/"):
            raise UnsafeArchive(f"unsafe result archive: {_short(member.name)} is not part of the {FORMAT} format")
        member.name = member.name[len("out/") :].rstrip("/")
        why = _name_fault(member.name)
        if why is not None:
            raise UnsafeArchive(f"unsafe result archive: out/{_short(member.name)}: {why}")
        members.append(member)
    tree = _Tree()
    nodes = [tree.add(m) for m in members]
    for member, node in zip(members, nodes, strict=True):  # a link's target may name a later member
        why = _unsafe_member(member, node, tree)
        if why is not None:
            raise UnsafeArchive(f"unsafe result archive: {why}")
        if windows and (why := _windows_fault(member)) is not None:
            raise UnsafeArchive(why)
        if not allow_vcs and (why := _vcs_fault(member)) is not None:
            raise VcsMetadata(f"unsafe result archive: {why}")
    return members


def _second_line(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's ``data`` filter, but for a symbolic link's target, which the first line checked
    (inside ``out/``, through no other link) and which is not resolved again here: the filter's
    ``os.path.realpath`` of a target follows every link already extracted, afresh for each link and
    on Python 3.11 recursively, so a committed chain of 1,500 links (``l0 -> l1 -> ...``, stored last
    first) crashed ``depin job result`` with a RecursionError and a chain under the recursion limit
    cost the square of its length (found by review, stop 41). The link's own path, owner and mode
    still pass the filter, and its target a lexical check (``os.path.normpath``: this system's own
    separators and drives count, nothing is followed) that it stays in `dest`. Every entry gets the format's mtime, 0, whatever its header says: a time
    past the platform's time_t (a pax ``mtime`` of ``inf``) made tarfile's utime raise OverflowError,
    which ended `depin job result` in a traceback with members left in its folder (same review)."""
    if not member.issym():
        return tarfile.data_filter(member, dest).replace(mtime=0, deep=False)
    checked = tarfile.data_filter(member.replace(linkname=".", deep=False), dest)
    top = os.path.realpath(dest)
    target = os.path.normpath(os.path.join(top, os.path.dirname(checked.name), member.linkname))
    if os.path.isabs(member.linkname) or os.path.commonpath([top, target]) != top:
        raise tarfile.LinkOutsideDestinationError(member, target)
    return checked.replace(linkname=member.linkname, mtime=0, deep=False)


def extract_archive(archive: Path, dest: Path, *, windows: bool | None = None, allow_vcs: bool = False) -> int:
    """Extracts the archive's ``out/`` into `dest` and returns the recorded exit code. Every member
    is checked first (see the module doc): :class:`UnsafeArchive`, and nothing extracted, when one
    is unsafe, lies in a version-control tool's metadata folder (``.git``: :func:`vcs_name_fault`;
    unless `allow_vcs`) or, on Windows (`windows`; default: this system is Windows), has a name
    Windows cannot hold (:func:`windows_name_fault`); ``tarfile.TarError`` / ``OSError`` for a
    broken archive."""
    with open_result(archive) as tar:
        members = _out_members(tar, _WINDOWS if windows is None else windows, allow_vcs)
        exit_code = _exit_code_of(tar)
        dest.mkdir(parents=True, exist_ok=True)
        try:
            tar.extractall(dest, members=members, filter=_second_line)
        except tarfile.FilterError as exc:  # the second line: the checks above should have caught it
            raise UnsafeArchive(f"unsafe result archive: {exc}") from None
    return exit_code


def _exit_code_of(tar: tarfile.TarFile) -> int:
    try:
        member = tar.getmember("exit_code")
    except KeyError:
        raise UnsafeArchive(f"not a {FORMAT} archive: it has no exit_code") from None
    data = tar.extractfile(member) if member.isreg() else None
    try:
        return int(data.read(32).decode().strip()) if data is not None else int("x")
    except (ValueError, UnicodeDecodeError):
        raise UnsafeArchive(f"not a {FORMAT} archive: its exit_code is not a number in a regular file") from None
