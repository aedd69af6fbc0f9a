"""Names Windows cannot hold, on the requester's side: a result's member named ``aux.c``, ``a:b``
or ``notes.`` is a fine output on Linux (an honest job may write it, and the provider's walk
accepts it), but on Windows it would open a device, write an alternate data stream or be silently
renamed. Extraction on Windows refuses such a result, naming the member, before anything is
written; elsewhere it extracts. Windows cannot run here, so the rule is tested as a pure function
and extraction with its platform given (``windows=``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from depin import outputs
from tests.archives import result_archive

REFUSED = [
    "CON", "con", "PRN", "AUX", "aux.c", "Aux.tar.gz", "NUL", "nul.txt", "AUX .c", "COM1", "com9.log", "LPT1", "lpt9.x",
    "COM\u00b9", "lpt\u00b3.txt", "COM0", "LPT0",
    "RESULT~1.JSO", "progra~1", "A~12.c",
    "notes.", "notes ", "...", "a:b", "stream:$DATA", "a<b", "a>b", 'a"b', "a|b", "a?b", "a*b", "a\\b", "tab\there", "nl\nhere", "\x1f",
]
# The console devices (Windows 11 reserves them like CON): refused with or without an extension.
CONSOLE = ["CONIN$", "CONOUT$", "conin$", "Conout$", "CONIN$.txt", "conout$.log.gz", "CONIN$ .c"]
ALLOWED = ["aux_c", "auxiliary.c", "console", "com10", "COM", "lpt", "Makefile", ".hidden", "a.b", "x..y", "caf\u00e9", "a b", "nulls.txt", "CONIN", "notes.txt~", "a~b", "~1", "longname~1.c", "x~1.json5", "CONOUT", "CONIN$X", "CONOUT$$", "$CONIN", "conin$x.txt"]


@pytest.mark.parametrize("name", REFUSED)
def test_names_windows_cannot_hold(name: str) -> None:
    why = outputs.windows_name_fault(name)
    assert why is not None and "Windows" in why


@pytest.mark.parametrize("name", CONSOLE)
def test_console_device_names_windows_cannot_hold(name: str) -> None:
    why = outputs.windows_name_fault(name)
    assert why is not None and "device name" in why and name.split(".")[0].strip().upper() in why


@pytest.mark.parametrize("name", ALLOWED)
def test_names_windows_holds(name: str) -> None:
    assert outputs.windows_name_fault(name) is None


CASES = {
    "device name": ([("dir", "src", ""), ("file", "src/aux.c", "int x;\n")], "out/src/aux.c"),
    "trailing dot": ([("file", "notes.", "n\n")], "out/notes."),
    "colon": ([("file", "a:b", "ads\n")], "out/a:b"),
    # with 8.3 names on, RESULT~1.JSO is result.json5's alias: the later member would overwrite the checked one
    "short-name alias": ([("file", "result.json5", "checked\n"), ("file", "RESULT~1.JSO", "swapped\n")], "out/RESULT~1.JSO"),
    "link to a device": ([("link", "l", "sub/../CON")], "out/l"),
}
CONSOLE_CASES = {
    "console input": ([("file", "CONIN$", "x\n")], "out/CONIN$"),
    "console output with an extension": ([("dir", "d", ""), ("file", "d/conout$.txt", "x\n")], "out/d/conout$.txt"),
    "link to the console": ([("link", "l", "CONOUT$")], "out/l"),
}


@pytest.mark.parametrize("platform", ["nt", "posix"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_extraction_refuses_windows_only_names_on_windows_only(tmp_path: Path, platform: str, case: str) -> None:
    """On Windows the archive is refused with UnsafeArchive naming the member and why, and nothing
    is written; on Linux (and macOS) it extracts."""
    members, shown = CASES[case]
    archive = result_archive(tmp_path / "r.tar", members)
    dest = tmp_path / "dest"
    if platform == "nt":
        with pytest.raises(outputs.UnsafeArchive, match=f"{shown}: .*Windows cannot hold") as err:
            outputs.extract_archive(archive, dest, windows=True)
        assert "Linux" in str(err.value)
        assert not dest.exists() or not any(dest.iterdir())
    else:
        assert outputs.extract_archive(archive, dest, windows=False) == 0
        assert (dest / shown.removeprefix("out/")).is_symlink() or (dest / shown.removeprefix("out/")).exists()


@pytest.mark.parametrize("case", sorted(CONSOLE_CASES))
def test_extraction_on_windows_refuses_the_console_devices(tmp_path: Path, case: str) -> None:
    """A member (or a link's target) named CONIN$ or CONOUT$ would open the console on Windows:
    refused there before anything is written; it extracts elsewhere."""
    members, shown = CONSOLE_CASES[case]
    archive = result_archive(tmp_path / "r.tar", members)
    assert outputs.extract_archive(archive, tmp_path / "posix", windows=False) == 0
    dest = tmp_path / "dest"
    with pytest.raises(outputs.UnsafeArchive, match=f"{re.escape(shown)}: .*Windows cannot hold .*device name"):
        outputs.extract_archive(archive, dest, windows=True)
    assert not dest.exists() or not any(dest.iterdir())
