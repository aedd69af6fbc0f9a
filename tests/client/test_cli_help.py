"""Every command's --help shows its whole text.

The CLI renders help as Markdown (``depinctl.cliutil.TYPER_SETTINGS``), which drops what reads as an
HTML tag: a placeholder such as ``<hex>`` written in a docstring or an option's help vanished from
the rendered page ("REPOSITORY@sha256:." for "REPOSITORY@sha256:<hex>"), and ``(1-kappa)*f*R`` lost
its asterisks to emphasis. This renders every command's help and checks that each word of its
text (the command's and its options') is shown as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from depinctl.cli import app

# What Markdown takes for an HTML tag (and drops): '<' then a letter or '/'.
_TAG = re.compile(r"<[A-Za-z/][^>\n]*>")
_CODE = re.compile(r"`[^`]*`")


# This typer carries its own click (typer._click): the walk goes by attributes, not click's classes.
def _commands(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    if getattr(cmd, "commands", None):
        for name, sub in sorted(cmd.commands.items()):
            if not sub.hidden:
                yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def _texts(cmd: Any) -> list[str]:
    texts = [cmd.help or ""]
    texts += [p.help or "" for p in cmd.params if p.param_type_name == "option" and not p.hidden]
    return texts


def _squash(text: str) -> str:
    """The rendered page's words in order, without the panels' borders or line breaks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_the_walk_finds_the_commands() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"job post", "keys pubkey", "executor results", "devnet up", "indexer run"} <= names
    assert len(COMMANDS) > 30


@pytest.mark.parametrize("path, cmd", COMMANDS, ids=[" ".join(p) or "depin" for p, _ in COMMANDS])
def test_help_shows_every_word(path: tuple[str, ...], cmd: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400", "TERM": "dumb"})
    assert result.exit_code == 0, (result.stdout, result.exception)
    shown = _squash(result.stdout)
    texts = _texts(cmd)
    # A placeholder outside a code span is read as an HTML tag and dropped.
    tags = [m for text in texts for m in _TAG.findall(_CODE.sub("", text))]
    dropped = [t for t in tags if t not in shown]
    assert not dropped, f"depin {' '.join(path)} --help drops {dropped}: put them in `code` or write NAME"
    # Every word is shown as written (not taken for emphasis: f*R*x), code spans included.
    missing = [w for text in texts for w in text.replace("`", "").split() if w not in shown]
    assert not missing, f"depin {' '.join(path)} --help does not show {missing}"


def test_job_post_verify_help_states_the_audit_escrow() -> None:
    """`--verify` said the audit fee was "1.1x the reward" (the auditor's pay A alone); what `job
    post` escrows is the audit escrow E = A + 3w, parameters.toml's audit_fee_bps (4.4x), as the
    command's own description says."""
    from depin.deployment import load_parameters

    result = CliRunner().invoke(app, ["job", "post", "--help"], env={"COLUMNS": "400", "TERM": "dumb"})
    assert result.exit_code == 0, result.stdout
    shown = _squash(result.stdout)
    verify = shown[shown.index("reexec (default):"):]  # the option's own text
    verify = verify[: verify.index("[default: reexec]")]
    assert "1.1x" not in verify
    rate = load_parameters(31337).market.audit_fee_bps / 10_000
    assert f"E = A + 3w, {rate:g}x the reward at the default parameters" in verify, verify
    assert f"E = A + 3w ({rate:g} R at the default parameters" in shown


def test_devnet_logs_help_names_every_component_it_accepts(tmp_path: Path) -> None:
    """COMPONENT's help named 10 of the 21 logs `devnet logs` accepts (not the explorer, Flower, the
    pool verifiers' or the canary's processes): it names those the command checks a name against,
    as its refusal of an unknown name lists them."""
    refused = CliRunner().invoke(app, ["devnet", "logs", "no-such-part", "--state-dir", str(tmp_path)])
    assert refused.exit_code == 1 and "one of: " in refused.stderr, refused.stderr
    accepted = refused.stderr.strip().split("one of: ", 1)[1].split(", ")
    assert {"anvil", "deploy", "explorer", "verifier-3-chain", "canary-bait"} <= set(accepted)
    result = CliRunner().invoke(app, ["devnet", "logs", "--help"], env={"COLUMNS": "400", "TERM": "dumb"})
    assert result.exit_code == 0, result.stdout
    listed = ", ".join(accepted[:-1]) + " or " + accepted[-1]
    assert f"{listed}; all when left out." in _squash(result.stdout), result.stdout
