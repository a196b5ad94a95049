"""Commands before a run: validate specs, show schema and data, plan resources, write the matrix, check the machine."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from app.cli.common import PREPARE, RUNS, Gpu, app, note, user_errors
from app.errors import one_line
from app.spec.run_spec import SpecError, load_spec, spec_hash


@app.command(rich_help_panel=PREPARE)
def validate(specs: list[Path] = typer.Argument(..., metavar="SPEC", help="spec files")) -> None:
    """Validate spec files: `OK <path> <hash>` each, or one line per problem and exit 2.

    Example: `repro validate specs/*.json`
    """
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


@app.command(rich_help_panel=PREPARE)
def schema(
    report: bool = typer.Option(False, "--report", help="the schema of `repro report`'s report.json instead"),
) -> None:
    """Print the JSON Schema of a run spec (every field described), for editors and validators.

    Example: `repro schema > run-spec.schema.json` (`repro schema --report` for report.json)
    """
    if report:
        from app.study.report_json import json_schema
    else:
        from app.spec.schema import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command(rich_help_panel=PREPARE)
def data(spec_path: Path = typer.Argument(..., metavar="SPEC")) -> None:
    """Print the data fingerprint and counts of a spec's training subset and eval split.

    Example: `repro data specs/smoke_cpu.json`
    """
    from app.inputs.gsm8k import data_fingerprint

    with user_errors():
        d = load_spec(spec_path).data
        fp = data_fingerprint(d.source, d.train_size, d.subset_seed, d.eval_split, d.eval_limit)
    typer.echo(json.dumps(fp, indent=2))


@app.command(rich_help_panel=PREPARE)
def plan(
    specs: list[Path] = typer.Argument(..., metavar="SPEC", help="spec files"),
    gpu: Gpu = typer.Option("h100", "--gpu", help="the GPU type the estimates assume"),
    as_json: bool = typer.Option(False, "--json"),
    discordance: float = typer.Option(
        None, "--discordance", min=0.001, max=1.0, help="share of questions two runs differ on (default: CPU study's)"
    ),
    seeds: int = typer.Option(None, "--seeds", min=1, help="training seeds per arm (default: the planned specs')"),
    seed_sd: float = typer.Option(None, "--seed-sd", min=0.0, max=0.5, help="τ: seed-to-seed SD of an arm's metric"),
    item_share: float = typer.Option(
        None, "--item-share", min=0.0, max=1.0, help="ρ: share of per-question variance the same on every seed"
    ),
) -> None:
    """Before running: examples, steps, tokens, FLOPs, peak memory, eval tokens and GPU-hours per spec, then
    per criterion the smallest effect (or margin) its paired checks show with 80% power at the planned n.

    Example: `repro plan specs/*.json --gpu h100`
    """
    from app.launch.plan import assumptions, estimate, spec_set, table, totals, warnings
    from app.study.power_plan import ITEM_SHARE, SEED_SD, planned_n, planned_seeds, power_rows, power_table

    with user_errors():
        loaded = [(p, load_spec(p)) for p in specs]
        named = spec_set(loaded)
        rows = [estimate(spec, gpu, named) for _, spec in loaded]
        notes = assumptions(gpu)
        k = seeds or planned_seeds([s for _, s in loaded])
        tau, rho = SEED_SD if seed_sd is None else seed_sd, ITEM_SHARE if item_share is None else item_share
        power = power_rows(planned_n([s for _, s in loaded], rows), discordance, k, tau, rho)
    for line in warnings(rows):
        note(line)
    if as_json:
        typer.echo(json.dumps({"runs": rows, "total": totals(rows), "assumptions": notes, "power": power}, indent=2))
        return
    typer.echo(table(rows))
    typer.echo("assumptions:")
    for line in notes:
        typer.echo(f"  - {line}")
    typer.echo(power_table(power))


@app.command(rich_help_panel=PREPARE)
def matrix(
    out: Path = typer.Option(Path("specs"), "--out", help="directory for the specs"),
    model: str = typer.Option(None, "--model", help="model id (default: the plan's)"),
    cpu: bool = typer.Option(False, "--cpu", help="the scaled-down CPU study on smollm2-135m"),
    seeds: int = typer.Option(
        None, "--seeds", min=1, help="training seeds per criterion arm (orig/A/B/C); default: the plan's (GPU 1, CPU 3)"
    ),
    seed_sizes: str = typer.Option(
        None, "--seed-sizes", help="comma-separated sizes that get the seeds (default: the plan's; GPU: every size)"
    ),
) -> None:
    """Write the study's specs: base, orig at every size, A/B/C at the fix sizes, LR sweep, seed replicates.

    Example: `repro matrix --cpu --out specs/cpu_study`; `repro matrix --seeds 3 --seed-sizes 128,256`
    """
    from dataclasses import replace

    from app.study.matrix import CPU_PLAN, GPU_PLAN, write_matrix
    from app.study.matrix import matrix as build

    plan = CPU_PLAN if cpu else GPU_PLAN
    if model:
        plan = replace(plan, model=model)
    if seeds:
        plan = replace(plan, seeds=seeds)
    if seed_sizes:
        plan = replace(plan, seed_sizes=parse_sizes(seed_sizes, plan.sizes))
    for path in write_matrix(build(plan), out):
        typer.echo(f"wrote {path}")


def parse_sizes(text: str, sizes: tuple) -> tuple:
    """`--seed-sizes 128,full` as the plan's sizes; an unknown size is a one-line error."""
    out = []
    for part in text.split(","):
        size = part.strip() if part.strip() == "full" else int(part) if part.strip().isdigit() else part.strip()
        if size not in sizes:
            raise typer.BadParameter(f"{part.strip()!r} is not a size of this study ({', '.join(map(str, sizes))})")
        out.append(size)
    return tuple(out)


@app.command(rich_help_panel=PREPARE)
def doctor(
    specs: list[Path] = typer.Argument(None, metavar="SPEC", help="planned spec files (for data and disk checks)"),
    runs_dir: Path = RUNS,
) -> None:
    """Check this machine for what runs need; print a checklist with a fix per miss (exit 1 on a miss).

    Example: `repro doctor specs/B_1024.json`
    """
    from app.launch.doctor import render, run_checks

    with user_errors():
        checks = run_checks([load_spec(p) for p in specs or []], runs_dir)
    typer.echo(render(checks))
    if any(c.ok is False for c in checks):
        raise typer.Exit(1)
