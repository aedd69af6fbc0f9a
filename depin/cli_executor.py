"""`depin executor …`: The provider executor: Celery workers that claim, run and settle jobs."""

from __future__ import annotations

import typer

from depin.cliutil import TYPER_SETTINGS

app = typer.Typer(help="The provider executor: Celery workers that claim, run and settle jobs.", **TYPER_SETTINGS)
