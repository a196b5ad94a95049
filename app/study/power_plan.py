"""`repro plan`'s power table: per criterion, the smallest effect (or margin) its checks show with 80% power. Pure.

The power of a paired check depends on n and on the discordance d (the share of questions on which the
two runs differ), which only the runs themselves reveal. The defaults are the largest discordance each
criterion's checks showed in the committed CPU study (docs/cpu_study/report.json, 64 questions;
tests/study/test_power_plan.py keeps them in step); `--discordance` states another. A larger d needs a
larger effect, so the largest observed d is the cautious choice.

With k ≥ 2 training seeds per arm the check is the items × seeds t test (app/study/paired_stats.py), and
its standard error is modelled as SE² = 2·τ²/k + ρ·d/n + (1 − ρ)·d/(n·k): τ the seed-to-seed SD of one
arm's metric (the report's spread table), ρ the share of the per-question variance that is the same on
every seed (a question one recipe gets right and the other wrong whatever the seed), which more seeds do
not average away. The smallest effect (or margin) at 80% power is (z₀.₉₇₅ + z₀.₈₀)·SE (normal
approximation). τ and ρ default to SEED_SD and ITEM_SHARE (`--seed-sd`, `--item-share`).
"""

from __future__ import annotations

import math

from app.study.criteria import ALPHA, DEFAULT_MARGIN, EFFECT
from app.study.paired_stats import POWER_LEVEL, Z95, smallest_effect, smallest_margin

Z80 = 0.841621
SEED_SD = 0.02  # τ: assumed until the CPU study's seed replicates measure it (docs/study.md)
ITEM_SHARE = 0.5  # ρ: assumed likewise

# (criterion, what its checks test, kind, the CPU study's largest discordant share among those checks)
CPU_DISCORDANCE = (
    ("1", "B, C beat A: strict accuracy", "effect", 3 / 64),
    ("2", "B, C vs orig: unclosed rate drops", "effect", 37 / 64),
    ("2", "B, C vs orig: unparsable rate drops", "effect", 6 / 64),
    ("3", "B, C no worse than orig: strict accuracy", "margin", 1 / 64),
)


ARMS = ("orig", "A", "B", "C")  # the criteria compare these arms


def planned_n(specs: list, estimates: list[dict]) -> int:
    """The questions the criteria's checks pair: the fewest any planned orig/A/B/C spec evaluates (else any spec)."""
    arms = [e["eval_prompts"] for s, e in zip(specs, estimates) if s.group in ARMS]
    return min(arms or [e["eval_prompts"] for e in estimates])


def planned_seeds(specs: list) -> int:
    """The most training seeds any planned orig/A/B/C recipe has (replicates differ in seed and subset order)."""
    from app.study.spread import recipe_key

    keys = [recipe_key(s) for s in specs if s.group in ARMS and s.train is not None]
    return max((keys.count(k) for k in keys), default=1)


def seed_se(n: int, k: int, d: float, seed_sd: float = SEED_SD, item_share: float = ITEM_SHARE) -> float:
    """The modelled standard error of an items × seeds difference (module doc)."""
    return math.sqrt(2 * seed_sd**2 / k + item_share * d / n + (1 - item_share) * d / (n * k))


def smallest_with_seeds(n: int, k: int, d: float, seed_sd: float, item_share: float) -> float:
    """(z₀.₉₇₅ + z₀.₈₀)·SE, rounded up to 0.005: the effect (or margin) shown with 80% power."""
    return math.ceil((Z95 + Z80) * seed_se(n, k, d, seed_sd, item_share) / 0.005) * 0.005


def power_rows(
    n: int,
    discordance: float | None = None,
    seeds: int = 1,
    seed_sd: float = SEED_SD,
    item_share: float = ITEM_SHARE,
) -> list[dict]:
    """One row per criterion check kind: the discordance used and the smallest effect / margin at 80% power."""
    rows = []
    for criterion, what, kind, observed in CPU_DISCORDANCE:
        d = observed if discordance is None else discordance
        if seeds > 1:
            smallest = round(smallest_with_seeds(n, seeds, d, seed_sd, item_share), 3)
        else:
            smallest = smallest_effect(n, d, POWER_LEVEL, ALPHA) if kind == "effect" else smallest_margin(n, d)
        stated = EFFECT if kind == "effect" else DEFAULT_MARGIN
        rows.append(
            {
                "criterion": criterion,
                "checks": what,
                "kind": kind,
                "n": n,
                "seeds": seeds,
                "seed_sd": seed_sd if seeds > 1 else None,
                "item_share": item_share if seeds > 1 else None,
                "discordance": d,
                "discordance_source": "CPU study" if discordance is None else "--discordance",
                "smallest": smallest,
                "stated": stated,
                "decidable": smallest is not None and smallest <= stated,
            }
        )
    return rows


def power_table(rows: list[dict]) -> str:
    """The rows as a text table, with the sentence that says how to read it."""
    seeds = rows[0]["seeds"] if rows else 1
    how = "exact, paired" if seeds == 1 else f"items × {seeds} seeds, normal approximation, τ and ρ as stated"
    head = f"power: smallest effect / margin shown with {POWER_LEVEL:.0%} power ({how}, α = {ALPHA})"
    lines = [
        head,
        f"{'crit':<5}{'checks':<44}{'n':>6}{'seeds':>6}{'discord.':>10}{'smallest':>10}{'stated':>8}  decidable",
    ]
    for r in rows:
        smallest = "none" if r["smallest"] is None else f"{r['smallest']:.3f}"
        lines.append(
            f"{r['criterion']:<5}{r['checks']:<44}{r['n']:>6}{r['seeds']:>6}{r['discordance']:>10.3f}{smallest:>10}"
            f"{r['stated']:>8.3f}  {'yes' if r['decidable'] else 'no: cannot be decided at this size'}"
        )
    source = {r["discordance_source"] for r in rows}
    lines.append(f"discordance: {', '.join(sorted(source))} (the share of questions on which two runs differ)")
    if seeds > 1:
        assumed = " (assumed defaults)" if (rows[0]["seed_sd"], rows[0]["item_share"]) == (SEED_SD, ITEM_SHARE) else ""
        lines.append(
            f"seeds: τ = {rows[0]['seed_sd']:.3f} seed-to-seed SD of an arm's metric, ρ = {rows[0]['item_share']:.2f} "
            f"of the per-question variance the same on every seed{assumed}"
        )
    return "\n".join(lines)
