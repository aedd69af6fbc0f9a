"""The `depin` command line."""

from __future__ import annotations

from importlib import metadata

import typer

from depin import __version__

app = typer.Typer(
    name="depin",
    help=(
        "depin-compute: a marketplace for containerized compute jobs paid through smart contracts.\n\n"
        "Requesters post, watch, verify and dispute jobs; providers stake, run the executor and "
        "withdraw rewards; operators deploy the contracts."
    ),
    no_args_is_help=True,
    add_completion=False,
)


def _package_version() -> str:
    try:
        return metadata.version("depin-compute")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return __version__


@app.callback()
def main() -> None:
    """depin-compute command line."""


@app.command()
def version() -> None:
    """Print the depin-compute version."""
    typer.echo(_package_version())


if __name__ == "__main__":
    app()
