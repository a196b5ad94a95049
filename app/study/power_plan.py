"""`repro plan`'s power table: per criterion, the smallest effect (or margin) its checks show with 80% power. Pure.

The power of a paired check depends on n and on the discordance d (the share of questions on which the
two runs differ), which only the runs themselves reveal. The defaults are the largest discordance each
criterion's checks showed in the committed CPU study (docs/cpu_study/report.json, 64 questions;
tests/study/test_power_plan.py keeps them in step); `--discordance` states another. A larger d needs a
larger effect, so the largest observed d is the cautious choice.
"""

from __future__ import annotations

from app.study.criteria import ALPHA, DEFAULT_MARGIN, EFFECT
from app.study.paired_stats import POWER_LEVEL, smallest_effect, smallest_margin

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


def power_rows(n: int, discordance: float | None = None) -> list[dict]:
    """One row per criterion check kind: the discordance used and the smallest effect / margin at 80% power."""
    rows = []
    for criterion, what, kind, observed in CPU_DISCORDANCE:
        d = observed if discordance is None else discordance
        smallest = smallest_effect(n, d, POWER_LEVEL, ALPHA) if kind == "effect" else smallest_margin(n, d)
        stated = EFFECT if kind == "effect" else DEFAULT_MARGIN
        rows.append(
            {
                "criterion": criterion,
                "checks": what,
                "kind": kind,
                "n": n,
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
    head = f"power: smallest effect / margin shown with {POWER_LEVEL:.0%} power (exact, α = {ALPHA}, paired)"
    lines = [head, f"{'crit':<5}{'checks':<44}{'n':>6}{'discord.':>10}{'smallest':>10}{'stated':>8}  decidable"]
    for r in rows:
        smallest = "none" if r["smallest"] is None else f"{r['smallest']:.3f}"
        lines.append(
            f"{r['criterion']:<5}{r['checks']:<44}{r['n']:>6}{r['discordance']:>10.3f}{smallest:>10}"
            f"{r['stated']:>8.3f}  {'yes' if r['decidable'] else 'no: cannot be decided at this size'}"
        )
    source = {r["discordance_source"] for r in rows}
    lines.append(f"discordance: {', '.join(sorted(source))} (the share of questions on which two runs differ)")
    return "\n".join(lines)
