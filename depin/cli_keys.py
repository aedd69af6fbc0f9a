"""`depin keys …`: Encrypted keystores for provider and requester keys."""

from __future__ import annotations

import typer

from depin.cliutil import TYPER_SETTINGS

app = typer.Typer(help="Encrypted keystores for provider and requester keys.", **TYPER_SETTINGS)
