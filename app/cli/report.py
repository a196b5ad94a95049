"""Commands that present runs: the study report, published bundles, exports to experiment trackers."""

from __future__ import annotations

from pathlib import Path

import typer

from app.cli.common import REPORT, UNVERIFIED, app, note, run_arg, user_errors


@app.command(rich_help_panel=REPORT)
def report(
    run_dirs: list[Path] = typer.Argument(..., callback=run_arg, metavar="RUN_DIR"),
    out: Path = typer.Option(Path("report"), "--out", help="output directory"),
    title: str = typer.Option("GSM8K SFT study", "--title"),
    allow_mixed_eval: bool = typer.Option(
        False, "--allow-mixed-eval", help="report runs evaluated differently (warns at the top)"
    ),
    margin: float = typer.Option(0.02, "--margin", min=0.0, max=1.0, help="non-inferiority margin δ (criterion 3)"),
    reference: bool = typer.Option(
        False, "--reference-original", help="draw the original report's accuracies (GPU study sizes)"
    ),
    allow_unverified: bool = UNVERIFIED,
    allow_mixed_machines: bool = typer.Option(
        False, "--allow-mixed-machines", help="report runs made on different CPU models / GPU kinds (flagged)"
    ),
    effect: float = typer.Option(
        0.10, "--effect", min=0.001, max=1.0, help="the change criteria 1-2 must have 80% power to show"
    ),
) -> None:
    """Table, plots, success criteria and environments of many runs → report.md + report.html.

    Example: `repro report runs/cpu_* --out report`
    """
    from app.rundir.out_dir import check_out_dir
    from app.study.report import build_report

    with user_errors():
        check_out_dir(out)
        path = build_report(
            run_dirs,
            out,
            title,
            allow_mixed_eval,
            margin,
            reference,
            allow_unverified,
            note,
            allow_mixed_machines,
            effect,
        )
    typer.echo(f"wrote {path} and {path.with_suffix('.html')}")


@app.command(rich_help_panel=REPORT)
def publish(
    run_dirs: list[Path] = typer.Argument(..., callback=run_arg, metavar="RUN_DIR"),
    out: Path = typer.Option(..., "--out", help="writes OUT/runs/<run>/ (and the report into OUT/)"),
    report: Path = typer.Option(None, "--report", help="a `repro report` directory to publish with the runs"),
    missing_as_omitted: bool = typer.Option(
        False, "--missing-as-omitted", help="record checkpoint files already deleted from a run as omitted"
    ),
) -> None:
    """Copy runs without their checkpoints (kept as sha256 + size under "omitted" in the manifest).

    Example: `repro publish runs/cpu_* --report report --out bundle`
    """
    from app.rundir.out_dir import check_out_dir
    from app.share.publish import publish as publish_runs

    with user_errors():
        check_out_dir(out)
        written = publish_runs(run_dirs, out, report, missing_as_omitted)
    for path in written:
        typer.echo(f"PUBLISHED {path}")


export_app = typer.Typer(
    no_args_is_help=True, help="Export runs to experiment trackers (MLflow) and lm-evaluation-harness's results layout."
)
app.add_typer(export_app, name="export", rich_help_panel=REPORT)


@export_app.command("mlflow")
def export_mlflow(
    run_dirs: list[Path] = typer.Argument(..., callback=run_arg, metavar="RUN_DIR"),
    tracking_uri: str = typer.Option("sqlite:///mlflow.db", "--tracking-uri", help="MLflow tracking URI"),
    experiment: str = typer.Option("repro", "--experiment"),
    report: Path = typer.Option(None, "--report", help="also export a `repro report` directory"),
    allow_unverified: bool = UNVERIFIED,
) -> None:
    """Each run as an MLflow run: spec → params, logs and metrics → metrics, hashes → tags, files → artifacts.

    Example: `repro export mlflow runs/cpu_* --report report`
    """
    from app.study.export_mlflow import export

    with user_errors():
        done = export(run_dirs, tracking_uri, experiment, report, allow_unverified, note)
    for path, run_id, created in done:
        typer.echo(f"{'EXPORTED' if created else 'UNCHANGED'} {path} -> mlflow run {run_id}")


@export_app.command("lm-eval")
def export_lm_eval(
    run_dir: Path = typer.Argument(..., callback=run_arg, metavar="RUN_DIR"),
    out: Path = typer.Option(Path("lm-eval-results"), "--out", help="writes OUT/<run>/results_*.json and samples_*"),
    allow_unverified: bool = UNVERIFIED,
) -> None:
    """The run's evaluation as lm-evaluation-harness writes its output (`exact_match,strict-match` /
    `exact_match,flexible-extract`, per-sample records with the prompt text), for tools that read it.

    Example: `repro export lm-eval runs/cpu_B_128 --out lm-eval-results`
    """
    from app.rundir.out_dir import check_out_dir
    from app.study.export_lm_eval import export

    with user_errors():
        check_out_dir(out)
        written = export(run_dir, out, allow_unverified, note)
    for path in written:
        typer.echo(f"WROTE {path}")
