"""Commands about the software environment: this machine's fingerprint and the hashed lockfiles."""

from __future__ import annotations

import json

import typer

from app.cli.common import ENVIRONMENT, app, user_errors
from app.env.lockfiles import VARIANTS
from app.errors import UserError


@app.command("fingerprint", rich_help_panel=ENVIRONMENT)
def fingerprint_cmd(full: bool = typer.Option(False, "--full", help="include the pip freeze list")) -> None:
    """Print this environment's fingerprint as JSON.

    Example: `repro fingerprint --full > env.json`
    """
    from app.env.fingerprint import fingerprint

    fp = fingerprint()
    if not full:
        fp.pop("pip_freeze")
    typer.echo(json.dumps(fp, indent=2))


@app.command(rich_help_panel=ENVIRONMENT)
def lock(
    variants: list[str] = typer.Argument(None, metavar="VARIANT", help=f"[{'|'.join(VARIANTS)}] (default: all)"),
    check: bool = typer.Option(False, "--check", help="only check that the locks match pyproject.toml"),
    index: bool = typer.Option(False, "--index", help="check the locks (default: the CUDA ones) against PyPI"),
) -> None:
    """Write (or --check) the hashed lockfiles in lockfiles/ with uv.

    Example: `repro lock --check`
    """
    from app.env.lockfiles import check_lock, compile_lock

    if index:
        return _lock_index(variants)
    with user_errors():
        names = variants or list(VARIANTS)
        unknown = [n for n in names if n not in VARIANTS]
        if unknown:
            raise UserError(f"unknown lock variant(s) {unknown}; known: {list(VARIANTS)}")
        problems = [p for n in names for p in check_lock(n)] if check else []
        for n in [] if check else names:
            typer.echo(f"wrote {compile_lock(n)}")
    for p in problems:
        typer.echo(p, err=True)
    if problems:
        raise typer.Exit(1)


def _lock_index(variants: list[str] | None) -> None:
    """Every pinned file exists on PyPI with its hash, installs on the lock's target, and the set is closed."""
    from app.env.lockcheck import CUDA_VARIANTS, check_variant

    problems = 0
    for name in variants or CUDA_VARIANTS:
        r = check_variant(name)
        for p in r.problems:
            typer.echo(f"{name}: {p}", err=True)
        problems += len(r.problems)
        typer.echo(f"{'OK' if not r.problems else 'FAIL'} {name}: {r.pins} pins checked on PyPI in {r.seconds} s")
    if problems:
        raise typer.Exit(1)
