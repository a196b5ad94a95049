"""`repro compare`: two runs on the items both evaluated, every rate, with the report's paired test and interval.

The statistics are app/study/paired_stats.py's (exact McNemar, Bonett–Price interval), the same the
report's criteria use, so a pair gives the same p and interval here and in report.json. Two run
directories are checked for comparability first (app/study/comparability.py: evaluation and machine);
a bare predictions file has no record to check, which the output says.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.errors import UserError
from app.eval.evaluate import read_predictions, regrade
from app.eval.grading import RATES
from app.study.comparability import machine_mismatches, mismatches
from app.study.paired_stats import paired

# Every per-item indicator compared: strict, diagnostic, then each rate of eval_metrics.json.
METRICS = ("strict_accuracy", "diagnostic_accuracy", *(r.key for r in RATES))


def indicator(record: dict, metric: str) -> bool:
    """One item's indicator of `metric`; strict correctness is the status, as the report reads it."""
    if metric == "strict_accuracy":
        return record["status"] == "correct"
    if metric == "diagnostic_accuracy":
        return bool(record["diagnostic_correct"])
    return record["status"] in next(r.statuses for r in RATES if r.key == metric)


def load_side(path: Path, allow_unverified: bool, log: Callable[[str], None]):
    """(records, report.Run or None): a run directory through the report's loader, a file regraded."""
    from app.study.report import load_run

    if Path(path).is_dir():
        run = load_run(Path(path), allow_unverified, log)
        return run.records, run
    return regrade(read_predictions(Path(path))), None


def comparability(runs: list, allow_mixed: bool) -> list[str]:
    """Evaluation and machine mismatches of two run directories; refused unless `allow_mixed`."""
    if any(r is None for r in runs):
        return ["not checked: a predictions file carries no record of how or where it was made"]
    lines = mismatches(runs) + machine_mismatches(runs)
    if lines and not allow_mixed:
        raise UserError(
            "compare: the runs are not comparable (pass --allow-mixed to compare anyway):\n" + "\n".join(lines)
        )
    return [f"compared anyway (--allow-mixed): {ln}" for ln in lines]


def compare_runs(
    run_a: Path, run_b: Path, allow_unverified: bool, log: Callable[[str], None], allow_mixed=False
) -> dict:
    """B − A on the paired items for every metric; run directories are verified and checked for comparability."""
    (a, run_ra), (b, run_rb) = (load_side(p, allow_unverified, log) for p in (run_a, run_b))
    empty = [str(run) for run, records in ((run_a, a), (run_b, b)) if not records]
    if empty:
        raise UserError("\n".join(f"{run}: no predictions to compare (evaluate it first)" for run in empty))
    notes = comparability([run_ra, run_rb], allow_mixed)
    by_a, by_b = {r["id"]: r for r in a}, {r["id"]: r for r in b}
    ids = sorted(set(by_a) & set(by_b))
    out = {"run_a": str(run_a), "run_b": str(run_b), "n_paired": len(ids), "comparability": notes, "metrics": {}}
    for metric in METRICS:
        pr = paired([indicator(by_a[i], metric) for i in ids], [indicator(by_b[i], metric) for i in ids])
        out["metrics"][metric] = {
            "a": pr.value_a,
            "b": pr.value_b,
            "difference": pr.value_b - pr.value_a,
            "ci95": list(pr.ci),
            "only_a": pr.only_a,
            "only_b": pr.only_b,
            "mcnemar_p": pr.p,
        }
    return out


def compare_lines(out: dict) -> list[str]:
    """The comparison as the terminal shows it: which run is A and B, comparability, then one line per metric."""
    lines = [f"A = {out['run_a']}", f"B = {out['run_b']}", f"n = {out['n_paired']} paired items"]
    lines += [f"comparability: {ln}" for ln in out["comparability"]] or ["comparability: same evaluation, same machine"]
    lines.append("metric               A       B       B-A     95% CI (Bonett–Price)   only A  only B  McNemar p")
    for metric, m in out["metrics"].items():
        lo, hi = m["ci95"]
        lines.append(
            f"{metric:<20} {m['a']:.4f}  {m['b']:.4f}  {m['difference']:+.4f}  [{lo:+.4f}, {hi:+.4f}]"
            f"        {m['only_a']:>5}  {m['only_b']:>6}  {m['mcnemar_p']:.4g}"
        )
    return lines
