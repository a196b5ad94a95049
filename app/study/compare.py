"""`repro compare`: two runs (or two seed-replicated arms) on the items all evaluated, every rate, with the
report's paired test and interval.

The statistics are app/study/paired_stats.py's, the same the report's criteria use, so a pair gives the
same p and interval here and in report.json: exact McNemar and Bonett–Price for two runs; for two arms
of k ≥ 2 training seeds each (more than two run directories, split by recipe, paired by seed), the
items × seeds t test. Run directories are checked for comparability first (app/study/comparability.py:
evaluation and machine); a bare predictions file has no record to check, which the output says.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.errors import UserError
from app.eval.evaluate import read_predictions, regrade
from app.eval.grading import RATES
from app.study.comparability import machine_mismatches, mismatches
from app.study.paired_stats import paired, seed_paired

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
    return compare_arms([run_a], [run_b], allow_unverified, log, allow_mixed)


def split_arms(paths: list[Path]) -> tuple[list, list]:
    """Two paths: A and B. More: run directories of exactly two recipes (A: the first one's), paired by seed."""
    if len(paths) == 2:
        return [paths[0]], [paths[1]]
    from app.rundir.layout import SPEC_JSON
    from app.spec.run_spec import load_spec
    from app.study.spread import recipe_key

    if not all(Path(p).is_dir() for p in paths):
        raise UserError("compare: more than two arguments must all be run directories (seed replicates)")
    # Only the specs, to group by recipe: compare_arms then verifies and reads each run once.
    keys = [recipe_key(load_spec(Path(p) / SPEC_JSON)) for p in paths]
    recipes = list(dict.fromkeys(keys))
    if len(recipes) != 2:
        raise UserError(f"compare: {len(paths)} runs hold {len(recipes)} recipes; seed replicates of exactly two")
    return [p for p, k in zip(paths, keys) if k == recipes[0]], [p for p, k in zip(paths, keys) if k == recipes[1]]


def compare_arms(
    paths_a: list[Path], paths_b: list[Path], allow_unverified: bool, log: Callable[[str], None], allow_mixed=False
) -> dict:
    """B − A for every metric: one run each (exact McNemar), or k ≥ 2 seeds each (items × seeds t)."""
    side_a = [load_side(p, allow_unverified, log) for p in paths_a]
    side_b = [load_side(p, allow_unverified, log) for p in paths_b]
    empty = [str(p) for p, (records, _) in zip(paths_a + paths_b, side_a + side_b) if not records]
    if empty:
        raise UserError("\n".join(f"{run}: no predictions to compare (evaluate it first)" for run in empty))
    side_a, side_b = pair_by_seed(side_a, side_b)
    notes = comparability([run for _, run in side_a + side_b], allow_mixed)
    by = [{r["id"]: r for r in records} for records, _ in side_a + side_b]
    ids = sorted(set.intersection(*(set(d) for d in by)))
    k = len(side_a)
    names = lambda side, paths: ", ".join(run.spec.name if run else str(p) for (_, run), p in zip(side, paths))  # noqa: E731
    out = {"run_a": names(side_a, paths_a), "run_b": names(side_b, paths_b), "n_paired": len(ids), "seeds": k}
    out |= {"comparability": notes, "metrics": {}}
    for metric in METRICS:
        rows = [[indicator(d[i], metric) for i in ids] for d in by]
        out["metrics"][metric] = pair_metric(rows[0], rows[1]) if k == 1 else seed_metric(rows[:k], rows[k:])
    return out


def pair_by_seed(side_a: list, side_b: list) -> tuple[list, list]:
    """Seed replicates in seed order, each arm's seeds the same (seed s pairs with seed s)."""
    if len(side_a) == len(side_b) == 1:
        return side_a, side_b
    seeds = [sorted(run.spec.seed for _, run in side) for side in (side_a, side_b)]
    if seeds[0] != seeds[1] or len(seeds[0]) < 2 or len(set(seeds[0])) != len(seeds[0]):
        raise UserError(f"compare: the arms' seeds do not pair: A has {seeds[0]}, B has {seeds[1]}")
    return tuple(sorted(side, key=lambda x: x[1].spec.seed) for side in (side_a, side_b))


def pair_metric(a: list[bool], b: list[bool]) -> dict:
    pr = paired(a, b)
    return {
        "a": pr.value_a,
        "b": pr.value_b,
        "difference": pr.value_b - pr.value_a,
        "ci95": list(pr.ci),
        "test": "exact McNemar",
        "p": pr.p,
        "only_a": pr.only_a,
        "only_b": pr.only_b,
        "mcnemar_p": pr.p,
    }


def seed_metric(a: list[list[bool]], b: list[list[bool]]) -> dict:
    sp = seed_paired(a, b)
    return {
        "a": sp.value_a,
        "b": sp.value_b,
        "difference": sp.diff,
        "ci95": list(sp.ci),
        "test": "items x seeds t",
        "p": sp.p,
        "seed_differences": list(sp.seed_diffs),
        "se": sp.se,
        "df": sp.df,
    }


def compare_lines(out: dict) -> list[str]:
    """The comparison as the terminal shows it: which run is A and B, comparability, then one line per metric."""
    k = out.get("seeds", 1)
    lines = [f"A = {out['run_a']}", f"B = {out['run_b']}", f"n = {out['n_paired']} paired items"]
    lines[-1] += f" × {k} paired seeds (items × seeds t test)" if k > 1 else ""
    lines += [f"comparability: {ln}" for ln in out["comparability"]] or ["comparability: same evaluation, same machine"]
    if k > 1:
        lines.append("metric               A       B       B-A     95% CI (t, Satterthwaite)  p        B-A per seed")
    else:
        lines.append("metric               A       B       B-A     95% CI (Bonett–Price)   only A  only B  McNemar p")
    for metric, m in out["metrics"].items():
        lo, hi = m["ci95"]
        head = f"{metric:<20} {m['a']:.4f}  {m['b']:.4f}  {m['difference']:+.4f}  [{lo:+.4f}, {hi:+.4f}]"
        if k > 1:
            lines.append(f"{head}   {m['p']:<8.4g} " + " ".join(f"{d:+.4f}" for d in m["seed_differences"]))
        else:
            lines.append(f"{head}        {m['only_a']:>5}  {m['only_b']:>6}  {m['mcnemar_p']:.4g}")
    return lines
