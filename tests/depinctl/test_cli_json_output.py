"""`depin sim --json FILE` and `depin demo --json FILE` write their results once the run is over
(one to three minutes of anvil transactions, or a whole devnet's scenarios): a FILE that cannot be
written is said at once, one line, before anything starts, not after the run with a traceback and
the results lost.

The tests hold a tripwire where the run would start (the run must never be reached), so nothing
heavy starts here."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from depinctl import demo as demo_mod
from depinctl.cli import app


def _tripwire(*_args: object, **_kwargs: object) -> int:
    raise AssertionError("the run started although its --json file cannot be written")


def _bad_paths(tmp_path: Path) -> list[Path]:
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "a-file").write_text("x")
    return [tmp_path / "missing" / "out.json", tmp_path / "a-dir", tmp_path / "a-file" / "out.json"]


@pytest.mark.parametrize("command", ["sim", "demo"])
def test_an_unwritable_json_file_is_refused_before_the_run(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import depinctl.sim.run as sim_run

    monkeypatch.setattr(sim_run, "main", _tripwire)
    monkeypatch.setattr(demo_mod, "run", _tripwire)
    for path in _bad_paths(tmp_path):
        result = CliRunner().invoke(app, [command, "--json", str(path)])
        assert result.exit_code == 2, (path, result.exit_code, result.stdout, result.stderr, result.exception)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --json"), (path, result.stderr)
        assert str(path) in lines[0] and "Traceback" not in result.stderr


def test_sim_only_a_word_that_names_no_strategy_is_refused_before_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """`depin sim --only lazzy` (a typo) started anvil, deployed, set the actors up, ran no strategy
    and exited 0 under an empty table: a CI step checking one strategy passed having checked
    nothing. Said at once, one line naming the word and the strategies, exit 2 (a usage error)."""
    import depinctl.sim.run as sim_run

    monkeypatch.setattr(sim_run, "main", _tripwire)
    result = CliRunner().invoke(app, ["sim", "--only", "lazy", "--only", "lazzy"])
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --only 'lazzy' names no strategy"), result.stderr
    assert "lazy k=4" in lines[0] and "audit-fee drain" in lines[0], lines[0]
