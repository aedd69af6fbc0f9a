"""Hand-built result archives for the tests of readers (extraction, match digests): the shape of
``depin-result-v1`` (exit_code, out/, then the members as given), with whatever members a hostile
provider might put in it."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def result_archive(path: Path, members: list[tuple[str, str, str]]) -> Path:
    """Writes at `path` an archive of exit code 0, ``out/``, then `members` in this order, each
    (kind, path below out/, content or link target) with kind "dir", "file" or "link"."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        code = tarfile.TarInfo("exit_code")
        code.size = 2
        tar.addfile(code, io.BytesIO(b"0\n"))
        top = tarfile.TarInfo("out")
        top.type, top.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(top)
        for kind, rel, data in members:
            info = tarfile.TarInfo(f"out/{rel}")
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, data, 0o777
                tar.addfile(info)
            else:
                body = data.encode()
                info.size, info.mode = len(body), 0o644
                tar.addfile(info, io.BytesIO(body))
    return path
