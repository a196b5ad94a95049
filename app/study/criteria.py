"""The study's success criteria, evaluated with paired tests on per-item outcomes. Pure.

A run is summarised as a `RunOutcome`: its group, size and, per evaluated item, its status (see
app/eval/grading.py), from which strict correctness and the format-failure indicator are derived.

Rules (docs/study.md, "The study"):
- "better" checks (criteria 1 and 2): exact McNemar on the paired items, Holm-corrected over the
  checks of one criterion; fewer than MIN_DISCORDANT discordant items is "not enough data" whatever
  the p-value; otherwise met iff the Holm-adjusted p < ALPHA in the right direction.
- "no worse" checks (criterion 3): non-inferiority with margin δ on the paired difference
  (candidate − baseline) of strict accuracy and its 95% Bonett–Price interval: met iff the lower bound
  > −δ, not met iff the upper bound < −δ, else (or with fewer than MIN_PAIRED items) not enough data.
- A criterion is met only if all its checks are; not met if any is not met; else not enough data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from app.eval.grading import FORMAT_FAIL, RATES
from app.eval.metrics import mcnemar_exact

ALPHA = 0.05
MIN_DISCORDANT = 10  # below this even a one-sided split cannot show much: "not enough data"
MIN_PAIRED = 30
DEFAULT_MARGIN = 0.02  # δ of the non-inferiority check: 2 points of strict accuracy
NED = "not enough data"


@dataclass(frozen=True)
class RunOutcome:
    name: str
    group: str
    size: int  # "full" is stored as the number of training rows
    status: dict[str, str]  # item id → status

    @property
    def correct(self) -> dict[str, bool]:
        return {i: s == "correct" for i, s in self.status.items()}

    @property
    def format_fail(self) -> dict[str, bool]:
        return {i: s in FORMAT_FAIL for i, s in self.status.items()}


@dataclass
class Check:
    """One paired comparison inside a criterion: `run_b` (candidate) against `run_a` (baseline)."""

    label: str
    verdict: str  # met / not met / not enough data
    n: int
    run_a: str | None
    run_b: str | None
    value_a: float
    value_b: float
    p: float | None  # exact McNemar
    ci: tuple[float, float] | None  # 95% Bonett–Price interval of value_b − value_a
    discordant: int = 0
    p_holm: float | None = None
    rates: dict[str, tuple[float, float]] = field(default_factory=dict)  # each rate, baseline → candidate
    metric: str = ""  # the eval metric whose per-item indicator is compared: strict_accuracy / format_fail_rate


# A check's per-item indicator (RunOutcome attribute) → the eval metric it is the mean of.
METRICS = {"correct": "strict_accuracy", "format_fail": "format_fail_rate"}


def paired_ids(a: RunOutcome, b: RunOutcome) -> list[str]:
    return sorted(set(a.status) & set(b.status))


def paired_interval(a: list[bool], b: list[bool], z: float = 1.959964) -> tuple[float, float]:
    """95% interval of mean(b) − mean(a) for paired binary outcomes: the Bonett–Price (2012) adjusted
    Wald interval (one added to each discordant cell), recommended by Fagerland et al. (2014) and,
    unlike the plain Wald or Newcombe's interval, never of zero width when no item is discordant."""
    n = len(a)
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    pa, pb = (only_a + 1) / (n + 2), (only_b + 1) / (n + 2)
    half = z * math.sqrt((pa + pb - (pb - pa) ** 2) / (n + 2))
    return (max(-1.0, pb - pa - half), min(1.0, pb - pa + half))


def rate_changes(a: RunOutcome, b: RunOutcome, ids: list[str]) -> dict[str, tuple[float, float]]:
    """Every rate of app/eval/grading.RATES on the paired items, baseline → candidate."""
    share = lambda run, r: sum(run.status[i] in r.statuses for i in ids) / len(ids)  # noqa: E731
    return {r.key: (share(a, r), share(b, r)) for r in RATES}


def compare(label: str, a: RunOutcome, b: RunOutcome, attr: str, higher_is_better: bool) -> Check:
    """Paired McNemar comparison of `attr` (correct / format_fail), candidate b against baseline a."""
    ids = paired_ids(a, b)
    if not ids:
        return Check(label, NED, 0, a.name, b.name, 0.0, 0.0, None, None, metric=METRICS[attr])
    xa, xb = [getattr(a, attr)[i] for i in ids], [getattr(b, attr)[i] for i in ids]
    only_a = sum(p and not q for p, q in zip(xa, xb))
    only_b = sum(q and not p for p, q in zip(xa, xb))
    va, vb = sum(xa) / len(ids), sum(xb) / len(ids)
    check = Check(label, NED, len(ids), a.name, b.name, va, vb, mcnemar_exact(only_a, only_b), None, only_a + only_b)
    check.metric = METRICS[attr]
    check.ci = paired_interval(xa, xb)
    check.rates = rate_changes(a, b, ids)
    check.verdict = better_verdict(check, higher_is_better, check.p)
    return check


def better_verdict(check: Check, higher_is_better: bool, p: float | None) -> str:
    """docs/study.md rule: too few discordant items → not enough data; else met iff significant the right way."""
    if p is None or check.discordant < MIN_DISCORDANT:
        return NED
    improved = check.value_b > check.value_a if higher_is_better else check.value_b < check.value_a
    return "met" if p < ALPHA and improved else "not met"


def holm(p_values: list[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def apply_holm(checks: list[Check], higher_is_better: bool) -> list[Check]:
    """Holm-correct the McNemar p-values of one criterion's checks and redo their verdicts."""
    tested = [c for c in checks if c.p is not None]
    for c, p_adj in zip(tested, holm([c.p for c in tested])):
        c.p_holm = p_adj
        c.verdict = better_verdict(c, higher_is_better, p_adj)
    return checks


def no_worse(label: str, a: RunOutcome, b: RunOutcome, margin: float) -> Check:
    """Non-inferiority of b's strict accuracy against a's with margin δ (see module doc)."""
    check = compare(label, a, b, "correct", True)
    if check.ci is None or check.n < MIN_PAIRED:
        check.verdict = NED
    elif check.ci[0] > -margin:
        check.verdict = "met"
    elif check.ci[1] < -margin:
        check.verdict = "not met"
    else:
        check.verdict = NED
    return check


def overall(checks: list[Check]) -> str:
    if not checks:
        return NED
    if any(c.verdict == "not met" for c in checks):
        return "not met"
    return "met" if all(c.verdict == "met" for c in checks) else NED


def find(runs: list[RunOutcome], group: str, size: int) -> RunOutcome | None:
    return next((r for r in runs if r.group == group and r.size == size), None)


WHAT = {"strict accuracy": "strict_accuracy", "no parsable answer": "format_fail_rate"}  # label → metric


def pair_checks(runs, pairs, what: str, make) -> list[Check]:
    """One check per (baseline group, candidate group, size); a missing run is 'not enough data'."""
    checks = []
    for ga, gb, size in pairs:
        a, b = find(runs, ga, size), find(runs, gb, size)
        label = f"{gb} vs {ga} at {size}: {what}"
        if a is None or b is None:
            missing = Check(label, NED, 0, a and a.name, b and b.name, 0.0, 0.0, None, None, metric=WHAT[what])
            checks.append(missing)
        else:
            checks.append(make(label, a, b))
    return checks


def evaluate_criteria(
    runs: list[RunOutcome], sizes: list[int], fix_sizes: list[int], margin: float = DEFAULT_MARGIN
) -> list[dict]:
    """The report's three success criteria, each with its paired checks and an overall verdict."""
    large, small = fix_sizes[-2:], sizes[:2]
    acc = lambda label, a, b: compare(label, a, b, "correct", True)  # noqa: E731
    fmt = lambda label, a, b: compare(label, a, b, "format_fail", False)  # noqa: E731
    c1 = pair_checks(runs, [(a, b, s) for s in large for a, b in (("A", "B"), ("A", "C"))], "strict accuracy", acc)
    c2 = pair_checks(runs, [("orig", g, s) for s in fix_sizes for g in ("B", "C")], "no parsable answer", fmt)
    c3 = pair_checks(
        runs, [("orig", "C", s) for s in small], "strict accuracy", lambda la, a, b: no_worse(la, a, b, margin)
    )
    apply_holm(c1, True)
    apply_holm(c2, False)
    return [
        {
            "id": "criterion_1",
            "criterion": f"B and C clearly beat A at {', '.join(map(str, large))}",
            "rule": f"exact McNemar, Holm-corrected over these {len(c1)} checks, α = {ALPHA}; "
            f"fewer than {MIN_DISCORDANT} discordant items: not enough data",
            "checks": c1,
            "verdict": overall(c1),
        },
        {
            "id": "criterion_2",
            "criterion": "unclosed and unparsable rates drop (B, C vs orig)",
            "rule": "per-item indicator 'no closed answer holding exactly one number' (unclosed, truncated "
            f"or unparsable); exact McNemar, Holm-corrected over these {len(c2)} checks, α = {ALPHA}; "
            f"fewer than {MIN_DISCORDANT} discordant items: not enough data",
            "checks": c2,
            "verdict": overall(c2),
        },
        {
            "id": "criterion_3",
            "criterion": f"{' and '.join(map(str, small))} do no worse than before (C vs orig)",
            "rule": f"non-inferiority, margin δ = {margin:g}: met iff the 95% Bonett–Price interval of C − orig "
            f"lies above −δ, not met iff it lies below −δ, else (or under {MIN_PAIRED} items) not enough data",
            "checks": c3,
            "verdict": overall(c3),
        },
    ]


def extra_comparisons(runs: list[RunOutcome], fix_sizes: list[int]) -> list[dict]:
    """Not success criteria: the hardened prompt (P) against orig at the fix sizes, uncorrected."""
    acc = lambda label, a, b: compare(label, a, b, "correct", True)  # noqa: E731
    fmt = lambda label, a, b: compare(label, a, b, "format_fail", False)  # noqa: E731
    if not any(r.group == "P" for r in runs):
        return []
    checks = pair_checks(runs, [("orig", "P", s) for s in fix_sizes], "strict accuracy", acc)
    checks += pair_checks(runs, [("orig", "P", s) for s in fix_sizes], "no parsable answer", fmt)
    rule = f"exact McNemar per check, uncorrected, α = {ALPHA}; fewer than {MIN_DISCORDANT} discordant: not enough data"
    return [
        {
            "id": "prompt_hardening",
            "criterion": "Prompt hardening (P = orig + r1_zero_hardened_v1)",
            "rule": rule,
            "checks": checks,
            "verdict": None,
        }
    ]
