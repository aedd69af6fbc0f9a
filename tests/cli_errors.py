"""What a user-caused error looks like on the command line: one ``error:`` line on stderr, exit 1,
no traceback."""

from __future__ import annotations

from typing import Any


def assert_one_line_error(result: Any, *fragments: str) -> str:
    """Checks a CliRunner result (or anything with exit_code, stdout and stderr) for one ``error:``
    line holding every fragment; that line."""
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return str(lines[0])
