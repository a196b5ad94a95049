"""What every command module shares: the typer app, its options, and the mapping of user errors to exit codes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import typer

from app import preempt
from app.errors import UserError, one_line
from app.launch.plan import GPUS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="Reproducible SFT + evaluation for GSM8K: specs → runs → checks → report.",
)

# Help panels, in workflow order (typer lists panels in the order commands register).
PREPARE = "1. Prepare: specs, data, machine"
RUN = "2. Run: train and evaluate"
CHECK = "3. Check: audit, regrade, compare, replay"
REPORT = "4. Report and share"
ENVIRONMENT = "Environment: fingerprint and lockfiles"

RUNS = typer.Option(Path("runs"), "--runs-dir", help="root of run directories")
TRUST = typer.Option(
    False, "--trust-remote-code", help="let a run's stored spec run code shipped with its model (ignored otherwise)"
)
UNVERIFIED = typer.Option(
    False, "--allow-unverified", help="read runs whose files differ from their manifest (warns naming each)"
)
# Options whose values are choices are typed as Literals, so `--help` lists them (`<h100|h200|…>`) and
# click refuses any other value naming the choices.
Gpu = Literal[tuple(GPUS)]  # the GPU table of `repro plan`
Launcher = Literal["local", "slurm"]
Stage = Literal["train", "eval", "all"]

PROGRESS = typer.Option(True, "--progress/--no-progress", help="a progress bar (else plain progress lines)")


def note(line: str) -> None:
    """A side remark on stderr (stdout stays the command's result)."""
    typer.echo(line, err=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print a UserError as `error: …` lines on stderr and exit with its code (2; 1 for a tampered file)."""
    try:
        yield
    except UserError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            typer.echo(f"error: {one_line(line)}", err=True)  # a stranger's text cannot break the line
        raise typer.Exit(exc.exit_code) from None
    except preempt.Interrupted as exc:
        typer.echo(f"interrupted: {exc}; the same command resumes", err=True)
        raise typer.Exit(preempt.EXIT_CODE) from None


def run_arg(value: Path | list[Path] | None) -> Path | list[Path] | None:
    """A RUN_DIR argument as typed (path, spec name or unique prefix) → its directory, or one error line."""
    from app.rundir.find import resolve_run

    with user_errors():
        return [resolve_run(v) for v in value] if isinstance(value, list) else value and resolve_run(value)


def echo_lines(lines: list[str], err: bool = False) -> None:
    """Each line as one printable line (text from a stranger's run cannot break the output)."""
    for line in lines:
        typer.echo(one_line(line), err=err)
