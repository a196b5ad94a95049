"""The `repro` command line: parse arguments, call one stage, map user errors to exit code 2.

Heavy imports (torch, transformers, vLLM) happen inside the commands that need them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import typer

from app import preempt
from app.errors import UserError, one_line
from app.spec.run_spec import SpecError, load_spec, spec_hash

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Reproducible SFT + evaluation for GSM8K.")


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
    """Reproducible SFT + evaluation for GSM8K."""


RUNS = typer.Option(Path("runs"), "--runs-dir", help="root of run directories")
TRUST = typer.Option(
    False, "--trust-remote-code", help="let a run's stored spec run code shipped with its model (ignored otherwise)"
)
UNVERIFIED = typer.Option(
    False, "--allow-unverified", help="read runs whose files differ from their manifest (warns naming each)"
)


def _note(line: str) -> None:
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


def _run_arg(value: Path | list[Path] | None) -> Path | list[Path] | None:
    """A RUN_DIR argument as typed (path, spec name or unique prefix) → its directory, or one error line."""
    from app.rundir.by_name import resolve_run

    with user_errors():
        return [resolve_run(v) for v in value] if isinstance(value, list) else value and resolve_run(value)


@app.command()
def validate(specs: list[Path] = typer.Argument(..., help="spec files")) -> None:
    """Validate spec files: `OK <path> <hash>` each, or one line per problem and exit 2."""
    from app.inputs.gsm8k import check_spec_data

    failed = False
    for path in specs:
        try:
            spec = load_spec(path)
        except SpecError as exc:
            failed = True
            for line in exc.problems:
                typer.echo(f"error: {one_line(line)}", err=True)
            continue
        size = spec.data.train_size if spec.train else None  # eval-only specs still need the data
        problems = check_spec_data(spec.data.source, size, spec.data.eval_split)
        for line in problems:
            typer.echo(one_line(f"error: {path}: {line}"), err=True)  # data.source is the spec's text: one line
        failed |= bool(problems)
        if not problems:
            typer.echo(f"OK {path} {spec_hash(spec)}")
    if failed:
        raise typer.Exit(2)


@app.command()
def doctor(
    specs: list[Path] = typer.Argument(None, help="planned spec files (for data and disk checks)"),
    runs_dir: Path = RUNS,
) -> None:
    """Check this machine for what runs need; print a checklist with a fix per miss (exit 1 on a miss)."""
    from app.launch.doctor import render, run_checks

    with user_errors():
        checks = run_checks([load_spec(p) for p in specs or []], runs_dir)
    typer.echo(render(checks))
    if any(c.ok is False for c in checks):
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the JSON Schema of a run spec (every field described), for editors and validators."""
    from app.spec.schema import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command()
def data(spec_path: Path = typer.Argument(..., metavar="SPEC")) -> None:
    """Print the data fingerprint and counts of a spec's training subset and eval split."""
    from app.inputs.gsm8k import data_fingerprint

    with user_errors():
        spec = load_spec(spec_path)
        d = spec.data
        fp = data_fingerprint(d.source, d.train_size, d.subset_seed, d.eval_split, d.eval_limit)
    typer.echo(json.dumps(fp, indent=2))


@app.command("fingerprint")
def fingerprint_cmd(full: bool = typer.Option(False, "--full", help="include the pip freeze list")) -> None:
    """Print this environment's fingerprint as JSON."""
    from app.env.fingerprint import fingerprint

    fp = fingerprint()
    if not full:
        fp.pop("pip_freeze")
    typer.echo(json.dumps(fp, indent=2))


@app.command()
def audit(
    run_dir: Path = typer.Argument(..., callback=_run_arg, metavar="RUN_DIR"),
    strict: bool = typer.Option(False, "--strict", help="also fail when the environment or lockfile differs"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="list every environment difference and omitted file"),
) -> None:
    """Re-hash a run's files against its manifest and compare its environment with this one.

    The verdict comes first, then one line per stage's environment (details with --verbose).
    Example: repro audit runs/smoke_cpu
    """
    from app.env.fingerprint import audit as audit_run
    from app.env.fingerprint import strict_problems
    from app.inputs.hub import run_pin_problems
    from app.rundir.manifest import slurm_logs
    from app.rundir.run_dir import RunDir
    from app.share.publish import omitted_line

    with user_errors():
        problems, env_diffs = audit_run(run_dir)
        problems += run_pin_problems(run_dir)
        env_problems = strict_problems(run_dir, _runtime()) if strict else []
        omitted = _absent_omitted(run_dir, problems)
        logs = [
            f"unhashed {rel}: Slurm task log (volatile, not covered by the manifest)"
            for rel in slurm_logs(RunDir(run_dir))
        ]
    if problems or env_problems:
        what = f"{len(problems)} file problem(s)" + (f", {len(env_problems)} environment problem(s)" if strict else "")
        typer.echo(f"AUDIT FAILED {run_dir}: {what}", err=True)
        for line in problems + env_problems:
            typer.echo(one_line(line), err=True)
    else:
        also = " and the environment matches its record and lockfile" if strict else ""
        left_out = f"; {len(omitted)} omitted (published without them)" if omitted else ""
        typer.echo(f"AUDIT OK {run_dir}: every file present matches its manifest{left_out}{also}")
    details = [omitted_line(rel, e) for rel, e in omitted.items()]
    for line in _env_summary(env_diffs, verbose) + (details if verbose else []) + logs:
        typer.echo(one_line(line))  # names from a stranger's manifest: one printable line each
    if problems or env_problems:
        raise typer.Exit(1)


def _env_summary(env_diffs: list[str], verbose: bool) -> list[str]:
    """Each stage's image verdict; the field-by-field differences only with --verbose, else counted."""
    heads = [line for line in env_diffs if " image: " in line or line.startswith("env:")]
    rest = [line for line in env_diffs if line not in heads]
    if verbose or not rest:
        return env_diffs
    return heads + [f"environment: {len(rest)} recorded field(s) differ from this machine (--verbose lists them)"]


def _absent_omitted(run_dir: Path, problems: list[str]) -> dict:
    """The manifest's omitted files absent here; none when its paths are unsafe (a problem named already)."""
    from app.share.publish import check_files

    try:
        return check_files(run_dir)[1]
    except UserError:
        if not problems:
            raise
        return {}


def _runtime() -> dict | None:
    """torch's CUDA/cuDNN versions, when torch is installed here (the eval image has it too)."""
    try:
        from app.env.determinism import runtime_record
    except ImportError:
        return None
    return runtime_record()


@app.command()
def fetch(
    specs: list[Path] = typer.Argument(..., metavar="SPEC...", help="spec files"),
    refresh: bool = typer.Option(False, "--refresh", help="ask the hub again even when a fetched copy exists"),
) -> None:
    """Download every hub input of the specs once (model, GSM8K) and record commits + file sha256s."""
    from app.inputs.hub import fetch_specs

    with user_errors():
        fetch_specs([load_spec(p) for p in specs], refresh=refresh, log=typer.echo)


@app.command()
def publish(
    run_dirs: list[Path] = typer.Argument(..., callback=_run_arg, metavar="RUN_DIR..."),
    out: Path = typer.Option(..., "--out", help="writes OUT/runs/<run>/ (and the report into OUT/)"),
    report: Path = typer.Option(None, "--report", help="a `repro report` directory to publish with the runs"),
    missing_as_omitted: bool = typer.Option(
        False, "--missing-as-omitted", help="record checkpoint files already deleted from a run as omitted"
    ),
) -> None:
    """Copy runs without their checkpoints (kept as sha256 + size under "omitted" in the manifest)."""
    from app.rundir.out_dir import check_out_dir
    from app.share.publish import publish as publish_runs

    with user_errors():
        check_out_dir(out)
        written = publish_runs(run_dirs, out, report, missing_as_omitted)
    for path in written:
        typer.echo(f"PUBLISHED {path}")


@app.command()
def replay(
    run_dir: Path = typer.Argument(..., callback=_run_arg, metavar="RUN_DIR"),
    out: Path = typer.Option(Path("replays"), "--out", help="root for the fresh run directory"),
    stage: str = typer.Option("all", "--stage", help="train, eval or all"),
    progress: bool = typer.Option(False, "--progress/--no-progress"),
    trust_remote_code: bool = TRUST,
) -> None:
    """Re-execute a recorded run from its own spec.json and compare every recorded hash; exit 0 only if identical."""
    from app.share.replay import replay as replay_run
    from app.share.replay import summary_lines

    with user_errors():
        result = replay_run(run_dir, out, stage, progress, trust_remote_code, log=_note)
    for line in summary_lines(result):
        typer.echo(line)
    if not result.identical:
        raise typer.Exit(1)


@app.command()
def train(
    target: Path = typer.Argument(..., metavar="SPEC|RUN_DIR"),
    runs_dir: Path = RUNS,
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run from its last checkpoint"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    trust_remote_code: bool = TRUST,
) -> None:
    """Train the spec's model on its GSM8K subset; writes the checkpoint into the run directory."""
    from app.launch.stages import train_stage

    preempt.install()
    with user_errors():
        spec, root = _spec_arg(target)
        with _stored_policy(target, spec, root, trust_remote_code):
            run = train_stage(spec, root or runs_dir, resume=resume, progress=progress)
    typer.echo(f"TRAINED {run.path}")


def _spec_arg(target: Path) -> tuple:
    """SPEC file or RUN_DIR (its stored spec.json, read under today's schema, and its parent as the runs root)."""
    from app.rundir.paths import inside

    if target.is_dir():
        return load_spec(inside(target, "spec.json", str(target))), target.resolve().parent
    return load_spec(target), None


def _stored_policy(target: Path, spec, root: Path | None, trust: bool) -> contextlib.AbstractContextManager:
    """A RUN_DIR's stored spec runs no code shipped with its model unless --trust-remote-code."""
    from app.inputs.remote_code import stored_spec

    return stored_spec(spec, target / "spec.json", trust, _note) if root is not None else contextlib.nullcontext()


@app.command("eval")
def eval_cmd(
    target: Path = typer.Argument(..., metavar="SPEC|RUN_DIR"),
    runs_dir: Path = RUNS,
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    trust_remote_code: bool = TRUST,
) -> None:
    """Evaluate the run's checkpoint (or the base model when the spec does not train)."""
    from app.launch.stages import eval_stage

    preempt.install()
    with user_errors():
        spec, root = _spec_arg(target)
        with _stored_policy(target, spec, root, trust_remote_code):
            run, metrics = eval_stage(spec, root or runs_dir, progress=progress)
    typer.echo(f"EVALUATED {run.path} strict={metrics['strict_accuracy']:.4f} n={metrics['n']}")


@app.command("run")
def run_cmd(
    spec_path: Path = typer.Argument(..., metavar="SPEC"),
    runs_dir: Path = RUNS,
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train (when the spec has a train section) then evaluate; resumes whatever is unfinished."""
    from app.launch.stages import run_stages

    preempt.install()
    with user_errors():
        run = run_stages(load_spec(spec_path), runs_dir, progress=progress)
    typer.echo(f"COMPLETE {run.path}")


@app.command()
def pending(spec_path: Path = typer.Argument(..., metavar="SPEC"), runs_dir: Path = RUNS) -> None:
    """Print the SPEC's stages still to run (train, eval), one per line; nothing when the run is complete."""
    from app.launch.stages import pending_stages

    with user_errors():
        for stage in pending_stages(load_spec(spec_path), runs_dir):
            typer.echo(stage)


@app.command()
def rescore(
    path: Path = typer.Argument(..., callback=_run_arg, metavar="RUN_DIR|PREDICTIONS"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    write: bool = typer.Option(False, "--write", help="RUN_DIR: rewrite its predictions and eval metrics"),
    allow_unverified: bool = UNVERIFIED,
) -> None:
    """Recompute every metric from saved outputs, without generating."""
    from app.eval.evaluate import print_summary, read_predictions, regrade
    from app.eval.metrics import summarize
    from app.eval.rescore import rescore_run
    from app.rundir.verify import run_or_file

    with user_errors():
        if write and not path.is_dir():
            raise UserError(f"{path}: --write needs a run directory")
        if write:
            rescore_run(path)
        pred = run_or_file(path, allow_unverified, _note)
        if not pred.is_file():
            raise UserError(f"{pred}: not found")
        records = regrade(read_predictions(pred))
        if not records:
            raise UserError(f"{pred}: no predictions")
    metrics = summarize(records)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        print_summary(records, metrics)


@app.command()
def compare(
    run_a: Path = typer.Argument(..., callback=_run_arg, metavar="RUN_A"),
    run_b: Path = typer.Argument(..., callback=_run_arg, metavar="RUN_B"),
    as_json: bool = typer.Option(False, "--json"),
    allow_unverified: bool = UNVERIFIED,
) -> None:
    """Paired comparison of strict accuracy (B - A) on the items both runs evaluated."""
    from app.eval.evaluate import read_predictions, regrade
    from app.eval.metrics import paired_compare
    from app.rundir.verify import run_or_file

    with user_errors():
        paths = [run_or_file(p, allow_unverified, _note) for p in (run_a, run_b)]  # both checked before reading
        a, b = (regrade(read_predictions(p)) for p in paths)
        empty = [str(run) for run, records in ((run_a, a), (run_b, b)) if not records]
        if empty:
            raise UserError("\n".join(f"{run}: no predictions to compare (evaluate it first)" for run in empty))
    out = paired_compare({r["id"]: r["strict_correct"] for r in a}, {r["id"]: r["strict_correct"] for r in b})
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    lo, hi = out["bootstrap_ci95"]
    typer.echo(f"A = {run_a}\nB = {run_b}")
    typer.echo(
        f"n={out['n_paired']}  A={out['accuracy_a']:.4f}  B={out['accuracy_b']:.4f}  "
        f"B-A={out['difference']:+.4f} (95% bootstrap CI {lo:+.4f}..{hi:+.4f})  "
        f"only A {out['only_a_correct']}, only B {out['only_b_correct']}, exact McNemar p={out['mcnemar_p']:.4g}"
    )


@app.command()
def lock(
    variants: list[str] = typer.Argument(None, help="variants (default: all)"),
    check: bool = typer.Option(False, "--check", help="only check that the locks match pyproject.toml"),
    index: bool = typer.Option(False, "--index", help="check the locks (default: the CUDA ones) against PyPI"),
) -> None:
    """Write (or --check) the hashed lockfiles in lockfiles/ with uv."""
    from app.env.lockfiles import VARIANTS, check_lock, compile_lock

    if index:
        return lock_index(variants)
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


def lock_index(variants: list[str] | None) -> None:
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


@app.command()
def matrix(
    out: Path = typer.Option(Path("specs"), "--out", help="directory for the specs"),
    model: str = typer.Option(None, "--model", help="model id (default: the plan's)"),
    cpu: bool = typer.Option(False, "--cpu", help="the scaled-down CPU study on smollm2-135m"),
) -> None:
    """Write the study's specs: base, orig at every size, A/B/C at the fix sizes, LR sweep."""
    from dataclasses import replace

    from app.study.matrix import CPU_PLAN, GPU_PLAN, write_matrix
    from app.study.matrix import matrix as build

    plan = CPU_PLAN if cpu else GPU_PLAN
    if model:
        plan = replace(plan, model=model)
    for path in write_matrix(build(plan), out):
        typer.echo(f"wrote {path}")


@app.command()
def sweep(
    specs: list[Path] = typer.Argument(..., help="spec files, run in order"),
    runs_dir: Path = RUNS,
    retries: int = typer.Option(1, "--retries", min=0, help="reruns of a failed run (local launcher)"),
    launcher: str = typer.Option("local", "--launcher", help="local (one after another here) or slurm (job array)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="slurm: print the batch script, submit nothing"),
    partition: str = typer.Option(None, "--partition"),
    account: str = typer.Option(None, "--account"),
    time_limit: str = typer.Option(None, "--time", help="per task, e.g. 4:00:00 or 1-00:00:00"),
    gpus_per_task: int = typer.Option(None, "--gpus-per-task", min=0),
    gres: str = typer.Option(None, "--gres", help="e.g. gpu:a100:1"),
    cpus_per_task: int = typer.Option(None, "--cpus-per-task", min=1),
    mem: str = typer.Option(None, "--mem", help="per node, e.g. 64G"),
    max_parallel: int = typer.Option(None, "--max-parallel", min=1, help="array concurrency limit (%N)"),
    nodes: int = typer.Option(1, "--nodes", min=1, help="nodes per task (torchrun under srun when >1)"),
    gpus_per_node: int = typer.Option(None, "--gpus-per-node", min=1),
    procs_per_node: int = typer.Option(None, "--procs-per-node", min=1, help="torchrun processes per node"),
    signal_before: int = typer.Option(300, "--signal-before", min=10, help="seconds before --time to checkpoint"),
    sbatch: list[str] = typer.Option([], "--sbatch", help="extra #SBATCH line, e.g. --sbatch=--qos=high"),
    gpu: str = typer.Option("h100", "--gpu", help="GPU type for the --time check against `repro plan`"),
) -> None:
    """Run many specs: here one after another, or on Slurm as one job array; complete runs are skipped."""
    if launcher == "slurm":
        from app.launch.slurm import SlurmOptions, sweep_slurm

        opts = SlurmOptions(
            partition=partition,
            account=account,
            time=time_limit,
            gpus_per_task=gpus_per_task,
            gres=gres,
            cpus_per_task=cpus_per_task,
            mem=mem,
            max_parallel=max_parallel,
            nodes=nodes,
            gpus_per_node=gpus_per_node,
            procs_per_node=procs_per_node,
            signal_before_s=signal_before,
            extra=tuple(sbatch),
        )
        with user_errors():
            job = sweep_slurm(specs, runs_dir, opts, dry_run, gpu, log=lambda m: typer.echo(m, err=True))
        if job:
            typer.echo(f"SUBMITTED job array {job}; watch it with `repro status {runs_dir}`")
        return
    if launcher != "local":
        typer.echo(f"error: --launcher {launcher!r}: expected local or slurm", err=True)
        raise typer.Exit(2)
    from app.study.matrix import sweep as run_sweep

    with user_errors():
        results = run_sweep(specs, runs_dir, retries=retries, log=typer.echo)
    failed = [r["name"] for r in results if r["state"] != "complete"]
    typer.echo(
        f"SWEEP {len(results) - len(failed)}/{len(results)} complete" + (f"; failed: {failed}" if failed else "")
    )
    if failed:
        raise typer.Exit(1)


@app.command()
def status(
    runs_dir: Path = typer.Argument(Path("runs"), metavar="[RUNS_DIR]", help="runs root, or one run directory"),
    as_json: bool = typer.Option(False, "--json", help="one JSON list"),
) -> None:
    """One row per run: stage states, step/total, accuracy, Slurm job, wall time, last error."""
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


@app.command()
def plan(
    specs: list[Path] = typer.Argument(..., help="spec files"),
    gpu: str = typer.Option("h100", "--gpu", help="h100, h200, a100, a100-40, l40s, a10"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Before running: examples, steps, tokens, FLOPs, peak memory, eval tokens and GPU-hours per spec."""
    from app.launch.plan import assumptions, estimate, table, totals

    with user_errors():
        rows = [estimate(load_spec(p), gpu) for p in specs]
        notes = assumptions(gpu)
    if as_json:
        typer.echo(json.dumps({"runs": rows, "total": totals(rows), "assumptions": notes}, indent=2))
        return
    typer.echo(table(rows))
    typer.echo("assumptions:")
    for line in notes:
        typer.echo(f"  - {line}")


@app.command()
def report(
    run_dirs: list[Path] = typer.Argument(..., callback=_run_arg, metavar="RUN_DIR..."),
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
) -> None:
    """Table, plots, success criteria and environments of many runs → report.md + report.html."""
    from app.rundir.out_dir import check_out_dir
    from app.study.report import build_report

    with user_errors():
        check_out_dir(out)
        path = build_report(run_dirs, out, title, allow_mixed_eval, margin, reference, allow_unverified, _note)
    typer.echo(f"wrote {path} and {path.with_suffix('.html')}")


export_app = typer.Typer(no_args_is_help=True, help="Export runs to experiment trackers.")
app.add_typer(export_app, name="export")


@export_app.command("mlflow")
def export_mlflow(
    run_dirs: list[Path] = typer.Argument(..., callback=_run_arg, metavar="RUN_DIR..."),
    tracking_uri: str = typer.Option("sqlite:///mlflow.db", "--tracking-uri", help="MLflow tracking URI"),
    experiment: str = typer.Option("repro", "--experiment"),
    report: Path = typer.Option(None, "--report", help="also export a `repro report` directory"),
    allow_unverified: bool = UNVERIFIED,
) -> None:
    """Each run as an MLflow run: spec → params, logs and metrics → metrics, hashes → tags, files → artifacts."""
    from app.study.export_mlflow import export

    with user_errors():
        done = export(run_dirs, tracking_uri, experiment, report, allow_unverified, _note)
    for path, run_id, created in done:
        typer.echo(f"{'EXPORTED' if created else 'UNCHANGED'} {path} -> mlflow run {run_id}")


def main() -> None:
    app(prog_name="repro")


if __name__ == "__main__":
    main()
