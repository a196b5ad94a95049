"""Commands that run stages: fetch inputs, train, evaluate, run a spec or a sweep, and watch them."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

import typer

from app import preempt
from app.cli.common import PROGRESS, RUN, RUNS, TRUST, Gpu, Launcher, app, note, user_errors
from app.errors import UserError
from app.rundir.layout import SPEC_JSON
from app.spec.run_spec import RunSpec, load_spec

T = TypeVar("T")


@app.command(rich_help_panel=RUN)
def fetch(
    specs: list[Path] = typer.Argument(..., metavar="SPEC", help="spec files"),
    refresh: bool = typer.Option(False, "--refresh", help="ask the hub again even when a fetched copy exists"),
) -> None:
    """Download every hub input of the specs once (model, GSM8K) and record commits + file sha256s.

    Example: `repro fetch specs/base.json`
    """
    from app.inputs.hub import fetch_specs

    with user_errors():
        fetch_specs([load_spec(p) for p in specs], refresh=refresh, log=typer.echo)


@app.command("run", rich_help_panel=RUN)
def run_cmd(spec_path: Path = typer.Argument(..., metavar="SPEC"), runs_dir: Path = RUNS, progress: bool = PROGRESS):
    """Train (when the spec has a train section) then evaluate; resumes whatever is unfinished. Each stage
    runs in its own environment (REPRO_TRAIN_PYTHON/REPRO_EVAL_PYTHON, .venv-train/.venv-eval, else this one).

    Example: `repro run specs/smoke_cpu.json` → `runs/smoke_cpu-<hash8>/`
    """
    from app.launch.stage_child import StageFailed, run_in_envs

    preempt.install()
    try:
        with user_errors():
            path = run_in_envs(load_spec(spec_path), spec_path, runs_dir, progress=progress, log=note)
    except StageFailed as exc:  # the child printed its own error; its exit code is ours
        raise typer.Exit(exc.exit_code) from None
    typer.echo(f"COMPLETE {path}")


@app.command(rich_help_panel=RUN)
def train(
    target: Path = typer.Argument(..., metavar="SPEC|RUN_DIR"),
    runs_dir: Path = RUNS,
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run from its last checkpoint"),
    progress: bool = PROGRESS,
    trust_remote_code: bool = TRUST,
) -> None:
    """Train the spec's model on its GSM8K subset; writes the checkpoint into the run directory.

    Example: `repro train runs/smoke_cpu --resume` (continue an interrupted run)
    """
    from app.launch.stages import train_stage

    run = _stage(
        target,
        runs_dir,
        trust_remote_code,
        lambda spec, root: train_stage(spec, root, resume=resume, progress=progress),
    )
    typer.echo(f"TRAINED {run.path}")


@app.command("eval", rich_help_panel=RUN)
def eval_cmd(
    target: Path = typer.Argument(..., metavar="SPEC|RUN_DIR"),
    runs_dir: Path = RUNS,
    progress: bool = PROGRESS,
    trust_remote_code: bool = TRUST,
) -> None:
    """Evaluate the run's checkpoint (or the base model when the spec does not train).

    Example: `repro eval specs/smoke_base_cpu.json`
    """
    from app.launch.stages import eval_stage

    run, metrics = _stage(
        target, runs_dir, trust_remote_code, lambda spec, root: eval_stage(spec, root, progress=progress)
    )
    typer.echo(f"EVALUATED {run.path} strict={metrics['strict_accuracy']:.4f} n={metrics['n']}")


def _stage(target: Path, runs_dir: Path, trust: bool, stage: Callable[[RunSpec, Path], T]) -> T:
    """Run `stage(spec, runs_root)` for a SPEC file, or for a RUN_DIR's stored spec (read under today's
    schema, its parent as the runs root, and no code shipped with its model unless --trust-remote-code)."""
    from app.inputs.remote_code import stored_spec
    from app.rundir.paths import inside

    preempt.install()
    with user_errors():
        if not target.is_dir():
            return stage(load_spec(target), runs_dir)
        spec = load_spec(inside(target, SPEC_JSON, str(target)))
        with stored_spec(spec, target / SPEC_JSON, trust, note):
            return stage(spec, target.resolve().parent)


@app.command(rich_help_panel=RUN)
def pending(spec_path: Path = typer.Argument(..., metavar="SPEC"), runs_dir: Path = RUNS) -> None:
    """Print the SPEC's stages still to run (train, eval), one per line; nothing when the run is complete.

    Example: `repro pending specs/smoke_cpu.json`
    """
    from app.launch.stages import pending_stages

    with user_errors():
        for stage in pending_stages(load_spec(spec_path), runs_dir):
            typer.echo(stage)


@app.command(rich_help_panel=RUN)
def sweep(
    specs: list[Path] = typer.Argument(..., metavar="SPEC", help="spec files, run in order"),
    runs_dir: Path = RUNS,
    retries: int = typer.Option(1, "--retries", min=0, help="reruns of a failed run (local launcher)"),
    launcher: Launcher = typer.Option("local", "--launcher", help="local: one after another here; slurm: a job array"),
    dry_run: bool = typer.Option(False, "--dry-run", help="slurm: print the batch script, submit nothing"),
    partition: str = typer.Option(None, "--partition"),
    account: str = typer.Option(None, "--account"),
    time: str = typer.Option(None, "--time", help="per task, e.g. 4:00:00 or 1-00:00:00"),
    gpus_per_task: int = typer.Option(None, "--gpus-per-task", min=0),
    gres: str = typer.Option(None, "--gres", help="e.g. gpu:a100:1"),
    cpus_per_task: int = typer.Option(None, "--cpus-per-task", min=1),
    mem: str = typer.Option(None, "--mem", help="per node, e.g. 64G"),
    max_parallel: int = typer.Option(None, "--max-parallel", min=1, help="array concurrency limit (%N)"),
    nodes: int = typer.Option(1, "--nodes", min=1, help="nodes per task (torchrun under srun when >1)"),
    gpus_per_node: int = typer.Option(None, "--gpus-per-node", min=1),
    procs_per_node: int = typer.Option(None, "--procs-per-node", min=1, help="torchrun processes per node"),
    signal_before_s: int = typer.Option(
        None, "--signal-before", min=10, help="seconds before --time to checkpoint (default: from the checkpoint size)"
    ),
    extra: list[str] = typer.Option([], "--sbatch", help="extra #SBATCH line, e.g. --sbatch=--qos=high"),
    gpu: Gpu = typer.Option("h100", "--gpu", help="GPU type for the --time check against `repro plan`"),
) -> None:
    """Run many specs: here one after another, or on Slurm as one job array; complete runs are skipped.

    Example: `repro sweep specs/*.json --launcher slurm --time 4:00:00 --gpus-per-task 1 --dry-run`
    """
    if launcher == "slurm":
        from app.launch.slurm import SlurmOptions, sweep_slurm

        given = {**locals(), "extra": tuple(extra)}  # the options are named as SlurmOptions' fields
        opts = SlurmOptions(**{f.name: given[f.name] for f in fields(SlurmOptions) if f.name in given})
        with user_errors():
            job = sweep_slurm(specs, runs_dir, opts, dry_run, gpu, log=note)
        if job:
            typer.echo(f"SUBMITTED job array {job}; watch it with `repro status {runs_dir}`")
        return
    with user_errors():
        if launcher != "local":
            raise UserError(f"--launcher {launcher!r}: expected local or slurm")
        _sweep_local(specs, runs_dir, retries)


def _sweep_local(specs: list[Path], runs_dir: Path, retries: int) -> None:
    from app.study.matrix import sweep as run_sweep

    results = run_sweep(specs, runs_dir, retries=retries, log=typer.echo)
    failed = [r["name"] for r in results if r["state"] != "complete"]
    typer.echo(
        f"SWEEP {len(results) - len(failed)}/{len(results)} complete" + (f"; failed: {failed}" if failed else "")
    )
    if failed:
        raise typer.Exit(1)


@app.command(rich_help_panel=RUN)
def status(
    runs_dir: Path = typer.Argument(Path("runs"), metavar="RUNS_DIR", help="runs root, or one run directory"),
    as_json: bool = typer.Option(False, "--json", help="one JSON list"),
) -> None:
    """One row per run: stage states, step/total, accuracy, Slurm job, wall time, last error.

    Example: `repro status runs --json`
    """
    from app.study.status import collect, summary, table

    with user_errors():
        if not runs_dir.is_dir():
            raise UserError(f"{runs_dir}: no such directory")
        rows = collect(runs_dir)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(table(rows))
    typer.echo(summary(rows))
