"""Result archives whose headers the format never writes are refused before ``tarfile`` reads them
(depin.outputs.check_headers): a pax header built to make tarfile's digit scan quadratic
(CVE-2024-6232 on Pythons before 3.11.10 / 3.12.6), a negative size (CVE-2025-8194), global, GNU
and doubled headers, and headers hidden where tarfile would find them but a careless walk would
not. Honest archives at the format's limits still open, on every Python alike."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from depin.outputs import (
    MAX_PATH_BYTES,
    InvalidOutput,
    UnsafeArchive,
    build_archive,
    check_headers,
    extract_archive,
    match_digest,
    read_exit_code,
)

END = bytes(2 * tarfile.BLOCKSIZE)


def _header(name: str, kind: bytes, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = 0o644
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % tarfile.BLOCKSIZE)


def _start() -> bytes:
    """exit_code and out/, as the format writes them."""
    return _header("exit_code", tarfile.REGTYPE, 2) + _padded(b"0\n") + _header("out", tarfile.DIRTYPE, 0)


def _pax(records: bytes) -> bytes:
    return _header("././@PaxHeader", tarfile.XHDTYPE, len(records)) + _padded(records)


def _record(keyword: str, value: bytes) -> bytes:
    body = f" {keyword}=".encode() + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n += 1
    return str(n).encode() + body


def _write(path: Path, *parts: bytes) -> Path:
    path.write_bytes(_start() + b"".join(parts) + END)
    return path


def _refused(archive: Path, match: str) -> None:
    with open(archive, "rb") as fh, pytest.raises(UnsafeArchive, match=match):
        check_headers(fh)
    with pytest.raises(UnsafeArchive, match=match):
        extract_archive(archive, archive.parent / "dest")
    with pytest.raises(UnsafeArchive, match=match):
        match_digest(archive, ["x"])
    assert not (archive.parent / "dest").exists()


def test_a_pax_header_of_digits_is_refused_unread(tmp_path: Path) -> None:
    """The CVE-2024-6232 shape: a long run of digits, which a vulnerable tarfile scans in quadratic
    time (the review's 170 KB header held a process for 33 s). Refused by its size, and a short one
    as malformed, whatever the Python."""
    file = _header("out/x", tarfile.REGTYPE, 1) + _padded(b"x")
    _refused(_write(tmp_path / "big.tar", _pax(b"1" * 200_000), file), "an extended header of 200000 bytes")
    _refused(_write(tmp_path / "small.tar", _pax(b"1" * 4000), file), "a malformed extended header")


@pytest.mark.parametrize(
    ("records", "match"),
    [
        (_record("comment", b"hello"), "'comment', which the format never writes"),
        (_record("path", b"out/" + b"7" * (MAX_PATH_BYTES + 13)), "path holds 1041 bytes"),
        (_record("size", b"-5"), "size '-5' is not a number"),
        (b"12 path=out/x", "malformed"),  # no newline
        (b"99 path=out/x\n", "malformed"),  # a length past the header
        (b"0 path=out/x\n", "malformed"),
    ],
    ids=["unknown-keyword", "long-path", "negative-pax-size", "no-newline", "overlong", "zero-length"],
)
def test_extended_headers_the_format_never_writes_are_refused(tmp_path: Path, records: bytes, match: str) -> None:
    archive = _write(tmp_path / "r.tar", _pax(records), _header("out/x", tarfile.REGTYPE, 1), _padded(b"x"))
    _refused(archive, match)


def test_a_negative_size_is_refused(tmp_path: Path) -> None:
    """CVE-2025-8194: a base-256 negative size sent tarfile back over the archive forever."""
    block = bytearray(_header("out/x", tarfile.REGTYPE, 0))
    block[124:136] = b"\xff" * 12  # -1 in base-256
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % sum(block)
    _refused(_write(tmp_path / "r.tar", bytes(block)), "out/x has a negative size")


@pytest.mark.parametrize(
    ("build", "match"),
    [
        ("global", "a global pax header"),
        ("gnu-long-name", "a GNU long-name header"),
        ("two-extended", "two extended headers in a row"),
    ],
)
def test_other_headers_are_refused(tmp_path: Path, build: str, match: str) -> None:
    archive = tmp_path / "r.tar"
    if build == "global":
        with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT, pax_headers={"path": "out/x"}) as tar:
            tar.addfile(tarfile.TarInfo("exit_code"), io.BytesIO())
    elif build == "gnu-long-name":
        with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as tar:
            tar.addfile(tarfile.TarInfo("out/" + "g" * 200), io.BytesIO())
    else:
        _write(archive, _pax(_record("path", b"out/a")), _pax(_record("path", b"out/b")), _header("out/x", tarfile.DIRTYPE, 0))
    _refused(archive, match)


def test_headers_hidden_where_tarfile_looks_are_found(tmp_path: Path) -> None:
    """Two places where tarfile reads the next header somewhere a walk by the ustar size field
    alone would skip: after an old-style regular file whose name ends in '/' (tarfile takes it for a
    directory with no data), and after a file whose extended header replaces its size."""
    hostile = _pax(b"1" * 20_000)
    as_dir = _header("out/d/", tarfile.AREGTYPE, len(hostile)) + hostile
    _refused(_write(tmp_path / "dir.tar", as_dir), "an extended header of 20000 bytes")
    resized = _pax(_record("size", b"0")) + _header("out/f", tarfile.REGTYPE, len(hostile)) + hostile
    _refused(_write(tmp_path / "size.tar", resized), "an extended header of 20000 bytes")


def test_an_honest_archive_at_the_limits_opens(tmp_path: Path) -> None:
    """What the format writes at its limits still reads on every Python: a 1,024-byte path of
    digits, a non-ASCII name, a non-UTF-8 name, and a link with a 1,024-byte target."""
    out = tmp_path / "out"
    deep = out / ("1" * 200) / ("2" * 200) / ("3" * 200) / ("4" * 200)
    deep.mkdir(parents=True)
    digits = deep / ("5" * (MAX_PATH_BYTES - 4 * 201))
    digits.write_text("d\n")
    (out / "żółw").write_text("w\n")
    (out / "raw-\udcff").write_text("r\n")
    target = "./" * ((MAX_PATH_BYTES - len("żółw".encode())) // 2) + "żółw"
    assert MAX_PATH_BYTES - 1 <= len(target.encode()) <= MAX_PATH_BYTES
    (out / "link").symlink_to(target)
    archive = build_archive(out, 0, tmp_path / "r.tar")
    with open(archive.path, "rb") as fh:
        check_headers(fh)
    dest = tmp_path / "dest"
    assert extract_archive(archive.path, dest) == 0
    assert (dest / digits.relative_to(out)).read_text() == "d\n"
    assert (dest / "link").read_text() == "w\n" and (dest / "raw-\udcff").read_text() == "r\n"
    assert read_exit_code(archive.path) == 0
    assert match_digest(archive.path, ["link"]) != match_digest(archive.path, ["żółw"])


def test_a_link_target_longer_than_a_path_is_not_representable(tmp_path: Path) -> None:
    """The builder holds link targets to the bound the reader applies, so that no honest archive
    is refused as it is read (a verifier would call it undelivered)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to("./" * 512 + "x")
    with pytest.raises(InvalidOutput, match="1025-byte target; the format allows at most 1024"):
        build_archive(out, 0, tmp_path / "r.tar")
