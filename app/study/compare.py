"""`repro compare`: paired strict accuracy of two runs on the items both evaluated, each run named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.errors import UserError
from app.eval.evaluate import read_predictions, regrade
from app.eval.metrics import paired_compare
from app.rundir.verify import run_or_file


def compare_runs(run_a: Path, run_b: Path, allow_unverified: bool, log: Callable[[str], None]) -> dict:
    """B − A on the paired items; both runs' predictions are checked against their manifests before reading."""
    paths = [run_or_file(p, allow_unverified, log) for p in (run_a, run_b)]
    a, b = (regrade(read_predictions(p)) for p in paths)
    empty = [str(run) for run, records in ((run_a, a), (run_b, b)) if not records]
    if empty:
        raise UserError("\n".join(f"{run}: no predictions to compare (evaluate it first)" for run in empty))
    return paired_compare({r["id"]: r["strict_correct"] for r in a}, {r["id"]: r["strict_correct"] for r in b})


def compare_lines(out: dict, run_a: Path, run_b: Path) -> list[str]:
    """The comparison as the terminal shows it: which run is A and B, then one line of numbers."""
    lo, hi = out["bootstrap_ci95"]
    return [
        f"A = {run_a}",
        f"B = {run_b}",
        f"n={out['n_paired']}  A={out['accuracy_a']:.4f}  B={out['accuracy_b']:.4f}  "
        f"B-A={out['difference']:+.4f} (95% bootstrap CI {lo:+.4f}..{hi:+.4f})  "
        f"only A {out['only_a_correct']}, only B {out['only_b_correct']}, exact McNemar p={out['mcnemar_p']:.4g}",
    ]
