"""The study's success criteria, evaluated with paired tests on per-item outcomes. Pure.

A run is summarised as a `RunOutcome`: its group, size and, per evaluated item, whether it was
strictly correct and whether it failed on format (unclosed or unparsable).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.metrics import mcnemar_exact, paired_bootstrap

ALPHA = 0.05
MIN_DISCORDANT = 10  # below this even a one-sided split cannot show much: "not enough data"
MIN_PAIRED = 30


@dataclass(frozen=True)
class RunOutcome:
    name: str
    group: str
    size: int  # "full" is stored as the number of training rows
    correct: dict[str, bool]
    format_fail: dict[str, bool]


@dataclass(frozen=True)
class Check:
    """One paired comparison inside a criterion."""

    label: str
    verdict: str  # met / not met / not enough data
    n: int
    value_a: float
    value_b: float
    p: float | None
    ci: tuple[float, float] | None


def paired(a: dict[str, bool], b: dict[str, bool]) -> tuple[list[bool], list[bool]]:
    ids = sorted(set(a) & set(b))
    return [a[i] for i in ids], [b[i] for i in ids]


def compare(label: str, a: dict[str, bool], b: dict[str, bool], higher_is_better: bool, mode: str) -> Check:
    """Paired check of B against A. mode 'better': B must be significantly better;
    'no_worse': B must not be significantly worse."""
    xa, xb = paired(a, b)
    n = len(xa)
    if n == 0:
        return Check(label, "not enough data", 0, 0.0, 0.0, None, None)
    only_a = sum(p and not q for p, q in zip(xa, xb))
    only_b = sum(q and not p for p, q in zip(xa, xb))
    p = mcnemar_exact(only_a, only_b)
    va, vb = sum(xa) / n, sum(xb) / n
    improved = vb > va if higher_is_better else vb < va
    worsened = vb < va if higher_is_better else vb > va
    significant = p < ALPHA
    if mode == "better":
        if significant:
            verdict = "met" if improved else "not met"
        else:
            verdict = "not enough data" if only_a + only_b < MIN_DISCORDANT else "not met"
    elif significant and worsened:
        verdict = "not met"
    else:
        verdict = "met" if n >= MIN_PAIRED else "not enough data"
    return Check(label, verdict, n, va, vb, p, paired_bootstrap(xa, xb))


def overall(checks: list[Check]) -> str:
    if (
        not checks
        or any(c.verdict == "not enough data" for c in checks)
        and all(c.verdict != "not met" for c in checks)
    ):
        return "not enough data"
    return "met" if all(c.verdict == "met" for c in checks) else "not met"


def find(runs: list[RunOutcome], group: str, size: int) -> RunOutcome | None:
    return next((r for r in runs if r.group == group and r.size == size), None)


def _pairs(runs, pairs, attr: str, higher: bool, mode: str, what: str) -> list[Check]:
    checks = []
    for ga, gb, size in pairs:
        a, b = find(runs, ga, size), find(runs, gb, size)
        label = f"{gb} vs {ga} at {size}: {what}"
        if a is None or b is None:
            checks.append(Check(label, "not enough data", 0, 0.0, 0.0, None, None))
        else:
            checks.append(compare(label, getattr(a, attr), getattr(b, attr), higher, mode))
    return checks


def evaluate_criteria(runs: list[RunOutcome], sizes: list[int], fix_sizes: list[int]) -> list[dict]:
    """The report's three success criteria, each with its paired checks and an overall verdict."""
    large = fix_sizes[-2:]
    small = sizes[:2]
    c1 = _pairs(
        runs,
        [(a, b, s) for s in large for a, b in (("A", "B"), ("A", "C"))],
        "correct",
        True,
        "better",
        "strict accuracy",
    )
    c2 = _pairs(
        runs,
        [("orig", g, s) for s in fix_sizes for g in ("B", "C")],
        "format_fail",
        False,
        "better",
        "unclosed+unparsable rate",
    )
    c3 = _pairs(runs, [("orig", "C", s) for s in small], "correct", True, "no_worse", "strict accuracy")
    return [
        {"criterion": f"B and C clearly beat A at {', '.join(map(str, large))}", "checks": c1, "verdict": overall(c1)},
        {"criterion": "unclosed and unparsable rates drop (B, C vs orig)", "checks": c2, "verdict": overall(c2)},
        {
            "criterion": f"{' and '.join(map(str, small))} do no worse than before (C vs orig)",
            "checks": c3,
            "verdict": overall(c3),
        },
    ]
