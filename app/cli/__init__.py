"""The `repro` command line: thin commands that parse arguments, call one stage and map user errors to exit 2.

One module per command group, registered here in workflow order (prepare, runs, check, report;
environment): `common` holds the typer app and what the groups share. Heavy imports (torch,
transformers, vLLM) happen inside the commands that need them, so `repro --help` starts fast.
"""

from __future__ import annotations

import importlib

import typer

from app.cli.common import app

# Importing a group registers its commands; `repro --help` lists the panels in this (workflow) order.
COMMAND_GROUPS = ("prepare", "runs", "check", "report", "environment")
for _group in COMMAND_GROUPS:
    importlib.import_module(f"app.cli.{_group}")


def _version(value: bool) -> None:
    if value:
        from app import __version__

        typer.echo(f"repro {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Reproducible SFT + evaluation for GSM8K: specs → runs → checks → report."""


def main() -> None:
    app(prog_name="repro")


__all__ = ["app", "main"]
