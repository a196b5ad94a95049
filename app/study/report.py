"""`repro report`: one table, plots, criteria verdicts and environments from many run directories.

Writes report.md (with PNGs beside it), a self-contained report.html (PNGs inlined) and report.json.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

from app.env.fingerprint import latest_env
from app.errors import UserError
from app.eval.evaluate import read_predictions
from app.eval.generate import engine_label
from app.eval.grading import RATES
from app.inputs.gsm8k import FULL_SIZES
from app.rundir.jsonl import read_jsonl
from app.rundir.layout import (
    DATA_JSON,
    ENV_JSON,
    EVAL_METRICS_JSON,
    PREDICTIONS_JSONL,
    SPEC_JSON,
    TRAIN_LOG_JSONL,
    TRAIN_METRICS_JSON,
    read_run_json,
)
from app.rundir.run_dir import atomic_write_bytes, refuse_symlinks
from app.rundir.verify import REPORT_FILES, verify_reads, warn
from app.spec.identity import RUN_PREFIX
from app.spec.run_spec import load_spec
from app.study.comparability import machine_mismatches, mismatches, mixed_machine_flag, training_mismatches
from app.study.criteria import DEFAULT_MARGIN, EFFECT, RunOutcome, evaluate_criteria, extra_comparisons
from app.study.report_json import report_document
from app.study.spread import first_seeds, seed_spread


@dataclass
class Run:
    path: Path
    spec: object
    metrics: dict
    train_metrics: dict | None
    log: list[dict]
    records: list[dict]
    env: dict
    data: dict
    unverified: list[str] = field(default_factory=list)  # with --allow-unverified: what its manifest does not vouch for

    @property
    def source(self) -> str | None:
        """For an eval-only arm on a trained run's checkpoint: that run's spec name or directory name."""
        model_id = self.spec.model.id
        return model_id[len(RUN_PREFIX) :] if model_id.startswith(RUN_PREFIX) else None

    @property
    def size(self) -> int:
        if self.spec.train is None and self.source is None:
            return 0
        s = self.spec.data.train_size
        return FULL_SIZES["train"] if s == "full" else int(s)

    @property
    def group(self) -> str:
        return self.spec.group or ("base" if self.spec.train is None else "other")


def load_run(path: Path, allow_unverified: bool = False, note=warn) -> Run:
    """Read what the report needs from one complete run directory, each file verified against its manifest."""
    refuse_symlinks(path)
    if not (path / EVAL_METRICS_JSON).is_file():
        raise UserError(f"{path}: no {EVAL_METRICS_JSON} (run `repro eval` first)")
    unverified = verify_reads(path, REPORT_FILES, allow_unverified, note)
    spec = load_spec(path / SPEC_JSON)
    log = read_jsonl(path / TRAIN_LOG_JSONL, torn_tail=False)
    tm = path / TRAIN_METRICS_JSON
    return Run(
        path,
        spec,
        read_run_json(path / EVAL_METRICS_JSON),  # checked: a damaged file is one line naming it
        read_run_json(tm) if tm.is_file() else None,
        log,
        read_predictions(path / PREDICTIONS_JSONL),
        read_run_json(path / ENV_JSON, missing_ok=True),
        read_run_json(path / DATA_JSON, missing_ok=True),
        unverified,
    )


def outcome(run: Run) -> RunOutcome:
    return RunOutcome(run.spec.name, run.group, run.size, {r["id"]: r["status"] for r in run.records}, run.spec.seed)


GROUP_ORDER = ("base", "orig", "A", "B", "C", "lr", "P", "steps", "tokens", "decode", "other")


def sort_key(run: Run) -> tuple:
    group = GROUP_ORDER.index(run.group) if run.group in GROUP_ORDER else len(GROUP_ORDER)
    return (group, run.size, run.spec.train.lr if run.spec.train else 0.0)


def budget_label(t, train_metrics: dict | None) -> str:
    """Epochs, steps, or a token budget with the tokens it realized beside the target."""
    if t is None:
        return "-"
    if t.epochs:
        return f"{t.epochs:g} ep"
    if t.max_steps:
        return f"{t.max_steps} steps"
    trained = (train_metrics or {}).get("tokens_trained")
    return f"{t.max_tokens} tok" + (f" ({trained} trained)" if trained is not None else "")


def table_rows(runs: list[Run]) -> list[dict]:
    """One row per run, like the original report's table."""
    rows = []
    for r in sorted(runs, key=sort_key):
        t, m = r.spec.train, r.metrics
        budget = budget_label(t, r.train_metrics)
        lo, hi = m["strict_ci95"]
        rows.append(
            {
                "run": r.spec.name + (" (unverified)" if r.unverified else ""),
                "group": r.group,
                "size": r.size or "-",
                "budget": budget,
                "lr": "-" if t is None else f"{t.lr:g}",
                "schedule": "-" if t is None else t.schedule,
                "loss mask": "-" if t is None else t.loss_mask,
                "warmup steps": "-" if not r.train_metrics else r.train_metrics.get("warmup_steps", "?"),
                "prompt": r.spec.prompt.template.removeprefix("r1_zero_"),
                "max new": m.get("max_new_tokens", "?"),
                "strict ± 95% CI": f"{m['strict_accuracy']:.3f} [{lo:.3f}, {hi:.3f}]",
                "diagnostic": f"{m['diagnostic_accuracy']:.3f}",
                **{rate.label: f"{m[rate.key]:.3f}" for rate in RATES},
                "median gen len": f"{m['gen_tokens_p50']:.0f}",
                "n": m["n"],
            }
        )
    return rows


def env_summary(runs: list[Run]) -> tuple[list[dict], list[str]]:
    """Per-run environment lines and warnings where runs of the same stage differ."""
    rows, warnings = [], []
    for stage in ("train", "eval"):
        seen: dict[str, list[str]] = {}
        commits: dict[str, list[str]] = {}
        for r in sorted(runs, key=sort_key):
            fp = latest_env(r.env, stage)
            if not fp:
                continue
            key = f"{fp['pip_freeze_sha256'][:12]} {fp['cpu']} {[g['name'] for g in fp['gpus']]}"
            seen.setdefault(key, []).append(r.spec.name)
            commit = f"{(fp['git'].get('commit') or '?')[:10]}{' (dirty)' if fp['git'].get('dirty') else ''}"
            commits.setdefault(commit, []).append(r.spec.name)
            pk = fp["packages"]
            rows.append(
                {
                    "run": r.spec.name,
                    "stage": stage,
                    "torch": pk.get("torch"),
                    "transformers": pk.get("transformers"),
                    "engine": engine_label(pk),
                    "image": fp["image"].get("REPRO_IMAGE_ID") or "native",
                    "git": commit,
                    "freeze": fp["pip_freeze_sha256"][:12],
                }
            )
        if len(seen) > 1:
            groups = "; ".join(f"{k}: {', '.join(v)}" for k, v in seen.items())
            warnings.append(f"{stage} runs differ in environment (pip freeze / CPU / GPU): {groups}")
        if len(commits) > 1:
            groups = "; ".join(f"{k}: {', '.join(v)}" for k, v in commits.items())
            warnings.append(f"{stage} runs were made from different code (git commit): {groups}")
    return rows, warnings


def refuse_or_note(lines: list[str], allowed: bool, refusal: str, note: str) -> list[str]:
    """Refuse (exit 2, `refusal` then one line per difference) unless `allowed`, then each line with `note`."""
    if lines and not allowed:
        raise UserError(f"report: {refusal}:\n" + "\n".join(lines))
    return [note.format(ln) for ln in lines]


def comparability_warnings(runs: list[Run], allow_mixed_eval: bool) -> list[str]:
    """Refuse runs evaluated differently (one line each), or with `allow_mixed_eval` warn about them."""
    refusal = "these runs were not evaluated the same way (pass --allow-mixed-eval to report them anyway)"
    note = "runs evaluated differently, compared anyway (--allow-mixed-eval): {}"
    return refuse_or_note(mismatches(runs), allow_mixed_eval, refusal, note)


def machine_warnings(runs: list[Run], allow_mixed_machines: bool) -> list[str]:
    """Refuse runs made on different machines, or with `allow_mixed_machines` warn (and flag each affected line)."""
    refusal = (
        "these runs were made on different machines, whose numerics differ (pass "
        "--allow-mixed-machines to report them anyway, each affected comparison flagged)"
    )
    note = "{}; compared anyway (--allow-mixed-machines), each affected comparison flagged"
    return refuse_or_note(machine_mismatches(runs), allow_mixed_machines, refusal, note)


def flag_mixed_machines(runs: list[Run], sections: list[dict]) -> None:
    """Mark every check whose two runs were made on different machines."""
    by_name = {r.spec.name: r for r in runs}
    for section in sections:
        for check in section["checks"]:
            side = lambda names: [by_name[n] for n in (names or "").split(", ") if n in by_name]  # noqa: E731
            flags = {mixed_machine_flag(a, b) for a in side(check.run_a) for b in side(check.run_b)} - {None}
            check.flag = min(flags) if flags else None


def build_report(
    run_dirs: list[Path],
    out: Path,
    title: str = "GSM8K SFT study",
    allow_mixed_eval: bool = False,
    margin: float = DEFAULT_MARGIN,
    reference: bool = False,
    allow_unverified: bool = False,
    note=warn,
    allow_mixed_machines: bool = False,
    effect: float = EFFECT,
) -> Path:
    """Write report.md, report.html, report.json and the figures into `out`."""
    from app.study import render

    runs = [load_run(Path(p), allow_unverified, note) for p in run_dirs]
    if not runs:
        raise UserError("report: no run directories given")
    top_warnings = [f"unverified run, reported anyway (--allow-unverified): {r.path}" for r in runs if r.unverified]
    top_warnings += comparability_warnings(runs, allow_mixed_eval)
    top_warnings += machine_warnings(runs, allow_mixed_machines)
    top_warnings += training_mismatches(runs)
    outcomes = [outcome(r) for r in runs if r.group != "decode"]
    trained = sorted({r.size for r in runs if r.size and r.group != "decode"})
    fix_sizes = sorted({r.size for r in runs if r.group == "A"}) or trained[-2:]  # C also runs at small sizes
    criteria = evaluate_criteria(outcomes, trained, fix_sizes, margin, effect)
    extra = extra_comparisons(outcomes, fix_sizes, effect) + decode_comparisons(runs, effect)
    flag_mixed_machines(runs, criteria + extra)
    env_rows, warnings = env_summary(runs)
    figures = render.figures(first_seeds(runs), reference)
    out.mkdir(parents=True, exist_ok=True)
    for name, png in figures.items():
        atomic_write_bytes(out / name, png)
    doc = {
        "title": title,
        "top_warnings": top_warnings,
        "rows": table_rows(runs),
        "spread": seed_spread(runs),
        "criteria": criteria,
        "extra": extra,
        "env_rows": env_rows,
        "warnings": warnings,
        "figures": list(figures),
        "runs": [str(r.path) for r in runs],
    }
    atomic_write_bytes(out / "report.md", render.markdown(doc).encode())
    inlined = {n: "data:image/png;base64," + base64.b64encode(png).decode() for n, png in figures.items()}
    atomic_write_bytes(out / "report.html", render.html_page(doc, inlined).encode())
    document = report_document(doc, sorted(runs, key=sort_key), margin)
    atomic_write_bytes(out / "report.json", (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())
    return out / "report.md"


def decode_comparisons(runs: list[Run], effect: float = EFFECT) -> list[dict]:
    """Each decode arm against the run whose checkpoint it evaluates (same items, more new tokens)."""
    from app.study.criteria import compare, extra_rule

    names = [r.spec.name for r in runs]
    by_ref = {r.spec.name: r for r in runs if names.count(r.spec.name) == 1} | {r.path.name: r for r in runs}
    checks = []
    for r in runs:
        src = by_ref.get(r.source or "")
        if r.group == "decode" and src is not None:
            what = f"max_new_tokens {src.metrics['max_new_tokens']} → {r.metrics['max_new_tokens']}"
            a, b = outcome(src), outcome(r)
            label = f"{r.spec.name} vs {src.spec.name}"
            checks.append(compare(f"{label}: strict accuracy, {what}", a, b, "strict_accuracy", True, effect))
            checks.append(compare(f"{label}: no parsable answer", a, b, "format_fail_rate", False, effect))
    if not checks:
        return []
    rule = extra_rule("decoding robustness: the same checkpoint with more new tokens", effect)
    return [
        {
            "id": "decoding_robustness",
            "criterion": "Decoding robustness (eval-only arms)",
            "rule": rule,
            "checks": checks,
            "verdict": None,
        }
    ]
