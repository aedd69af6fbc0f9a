"""`depin devnet …`: A whole local devnet on this machine: chain, Redis, container engine, contracts, indexer, executor."""

from __future__ import annotations

import typer

from depin.cliutil import TYPER_SETTINGS

app = typer.Typer(help="A whole local devnet on this machine: chain, Redis, container engine, contracts, indexer, executor.", **TYPER_SETTINGS)
