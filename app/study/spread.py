"""Training-seed replicates: which runs are one recipe, and the seed-to-seed spread of each arm. Pure.

Replicates of one arm differ only in their name, `seed` and `data.subset_seed` (`repro matrix --seeds`
writes seed k with subset order k), so the recipe is the spec without those three.
"""

from __future__ import annotations

import json
import statistics

from app.eval.grading import RATE_BY_KEY

SPREAD_METRICS = ("strict_accuracy", "unclosed_rate", "unparsable_rate")


def recipe_key(spec) -> str:
    """The spec as canonical JSON without name, seed and subset order: equal for replicates of one arm."""
    raw = spec.model_dump(mode="json")
    for key in ("name", "seed"):
        raw.pop(key, None)
    raw.get("data", {}).pop("subset_seed", None)
    return json.dumps(raw, sort_keys=True)


def arms(runs: list) -> list[list]:
    """Runs grouped by recipe (each group by seed), in the order their first run appears."""
    groups: dict[str, list] = {}
    for run in runs:
        groups.setdefault(recipe_key(run.spec), []).append(run)
    return [sorted(rs, key=lambda r: r.spec.seed) for rs in groups.values()]


def first_seeds(runs: list) -> list:
    """One run per recipe, the lowest seed: what the figures draw (the spread table shows the rest)."""
    return [rs[0] for rs in arms(runs)]


def _summary(values: list[float]) -> dict:
    sd = statistics.stdev(values) if len(values) > 1 else None
    return {"per_seed": values, "mean": statistics.fmean(values), "sd": sd, "min": min(values), "max": max(values)}


def seed_spread(runs: list) -> list[dict]:
    """Per trained arm: its seeds and, for each of SPREAD_METRICS, the per-seed values, mean, SD and range."""
    rows = []
    for rs in arms([r for r in runs if r.spec.train is not None]):
        row = {"arm": rs[0].spec.name, "runs": [r.spec.name for r in rs], "seeds": [r.spec.seed for r in rs]}
        rows.append(row | {m: _summary([r.metrics[m] for r in rs]) for m in SPREAD_METRICS})
    return rows


def spread_cells(row: dict) -> list[str]:
    """One row of the report's spread table."""
    k = len(row["seeds"])
    cells = [row["arm"], f"{k}" + (" (one checkpoint)" if k == 1 else "")]
    for metric in SPREAD_METRICS:
        s = row[metric]
        values = " / ".join(f"{v:.3f}" for v in s["per_seed"])
        cells.append(values if k == 1 else f"{values}; mean {s['mean']:.3f}, SD {s['sd']:.3f}")
    return cells


SPREAD_HEAD = [
    "arm (seed 0)",
    "seeds",
    *(
        ("strict accuracy" if m == "strict_accuracy" else RATE_BY_KEY[m].label + " rate") + " per seed"
        for m in SPREAD_METRICS
    ),
]
