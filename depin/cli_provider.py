"""`depin provider …`: Provider tools: register, stake, unstake, withdraw, status."""

from __future__ import annotations

import typer

from depin.cliutil import TYPER_SETTINGS

app = typer.Typer(help="Provider tools: register, stake, unstake, withdraw, status.", **TYPER_SETTINGS)
