"""`depin job …`: Requester tools: post a job, follow it, fetch and verify its result, cancel or challenge it."""

from __future__ import annotations

import typer

from depin.cliutil import TYPER_SETTINGS

app = typer.Typer(help="Requester tools: post a job, follow it, fetch and verify its result, cancel or challenge it.", **TYPER_SETTINGS)
