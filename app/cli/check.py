"""Commands that check runs: audit against the manifest, regrade saved outputs, compare two runs, replay one."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from app.cli.common import CHECK, TRUST, UNVERIFIED, Stage, app, echo_lines, note, run_arg, user_errors
from app.errors import UserError


@app.command(rich_help_panel=CHECK)
def audit(
    run_dir: Path = typer.Argument(..., callback=run_arg, metavar="RUN_DIR"),
    strict: bool = typer.Option(False, "--strict", help="also fail when the environment or lockfile differs"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="list every environment difference and omitted file"),
) -> None:
    """Re-hash a run's files against its manifest and compare its environment with this one.

    The verdict comes first, then one line per stage's environment (details with --verbose).
    Example: `repro audit runs/smoke_cpu`
    """
    from app.share.audit import audit_run

    with user_errors():
        result = audit_run(run_dir, strict, verbose)
    typer.echo(result.verdict, err=not result.ok)
    echo_lines(result.problems, err=True)
    echo_lines(result.details)  # names from a stranger's manifest: one printable line each
    if not result.ok:
        raise typer.Exit(1)


@app.command(rich_help_panel=CHECK)
def rescore(
    path: Path = typer.Argument(..., callback=run_arg, metavar="RUN_DIR|PREDICTIONS"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    write: bool = typer.Option(False, "--write", help="RUN_DIR: rewrite its predictions and eval metrics"),
    allow_unverified: bool = UNVERIFIED,
) -> None:
    """Recompute every metric from saved outputs, without generating.

    Example: `repro rescore runs/smoke_cpu --write` (after a grader change)
    """
    from app.eval.evaluate import print_summary
    from app.eval.rescore import regrade_outputs

    with user_errors():
        records, metrics = regrade_outputs(path, write, allow_unverified, note)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        print_summary(records, metrics)


@app.command(rich_help_panel=CHECK)
def compare(
    runs: list[Path] = typer.Argument(
        ..., callback=run_arg, metavar="RUN_A RUN_B | RUNS...", help="two runs, or two arms' seed replicates"
    ),
    as_json: bool = typer.Option(False, "--json"),
    allow_unverified: bool = UNVERIFIED,
    allow_mixed: bool = typer.Option(
        False, "--allow-mixed", help="compare runs evaluated differently or made on different machines (noted)"
    ),
) -> None:
    """Paired comparison (B - A) of strict and diagnostic accuracy and every rate, on the items both runs
    evaluated: exact McNemar p and the Bonett–Price interval, as the report computes them. Given more
    than two run directories of two recipes with k ≥ 2 training seeds each (A: the first one's recipe),
    the items × seeds t test over the paired seeds, as the report computes it.

    Example: `repro compare runs/cpu_orig_128 runs/cpu_B_128`; `repro compare runs/cpu_orig_128* runs/cpu_B_128*`
    """
    from app.study.compare import compare_arms, compare_lines, split_arms

    with user_errors():
        if len(runs) < 2:
            raise UserError("compare: give two runs (or the seed replicates of two arms)")
        paths_a, paths_b = split_arms(runs)
        out = compare_arms(paths_a, paths_b, allow_unverified, note, allow_mixed)
    if as_json:
        typer.echo(json.dumps(out, indent=2))
    else:
        echo_lines(compare_lines(out))


@app.command(rich_help_panel=CHECK)
def replay(
    run_dir: Path = typer.Argument(..., callback=run_arg, metavar="RUN_DIR"),
    out: Path = typer.Option(Path("replays"), "--out", help="root for the fresh run directory"),
    stage: Stage = typer.Option("all", "--stage", help="what to re-execute (eval: on the recorded checkpoint)"),
    progress: bool = typer.Option(False, "--progress/--no-progress"),
    trust_remote_code: bool = TRUST,
) -> None:
    """Re-execute a recorded run from its own spec.json and compare every recorded hash; exit 0 only if identical.

    Example: `repro replay docs/cpu_study/runs/cpu_B_128 --out /tmp/replays`
    """
    from app.share.replay import replay as replay_run
    from app.share.replay import summary_lines

    with user_errors():
        result = replay_run(run_dir, out, stage, progress, trust_remote_code, log=note)
    for line in summary_lines(result):
        typer.echo(line)
    if not result.identical:
        raise typer.Exit(1)
