"""The study's success criteria, evaluated with paired tests on per-item outcomes. Pure.

A run is summarised as a `RunOutcome`: its group, size and, per evaluated item, its status (see
app/eval/grading.py), from which each per-item indicator (correct, unclosed, unparsable, …) is derived.
The statistics (exact McNemar, Bonett–Price interval, power) are app/study/paired_stats.py's, shared
with `repro compare` and `repro plan`.

Verdict words (docs/study.md, "The study"), per check:
- "better" checks (criteria 1 and 2): `met` iff the exact McNemar p < α with the candidate better;
  `shown not met` iff p < α with the candidate worse; otherwise `cannot be decided at this size` when
  the test's power to show the stated effect (EFFECT) at this n and the observed discordance is below
  POWER_LEVEL, else `not shown` (inconclusive; its interval says how far from decided).
- "no worse" checks (criterion 3): non-inferiority with margin δ on the paired difference of strict
  accuracy and its 95% Bonett–Price interval: `met` iff the lower bound > −δ, `shown not met` iff the
  upper bound < −δ; otherwise `cannot be decided at this size` when two truly equal runs would be shown
  "no worse" with power below POWER_LEVEL at this n and discordance, else `not shown`.
- Seeds: where both arms of a check have k ≥ 2 paired training seeds (seed s of each shares its data
  subset and order), the check is the items × seeds t test of paired_stats.seed_paired (mean over seeds
  and questions; seeds and questions crossed random effects), its power Φ(effect/se − t₀.₉₇₅,df) at the
  observed standard error; the same words and thresholds apply. With one seed the check is about two
  checkpoints, not two recipes, and says so (`seeds` = 1).
- A criterion needs all its checks (an intersection–union test: each check at α, no correction inside
  it): met iff every check is met; shown not met if any is; else cannot be decided if any check cannot
  be; else not shown. No correction across the three criteria: each answers its own question.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.eval.grading import RATE_BY_KEY, RATES
from app.study.paired_stats import (
    POWER_LEVEL,
    Paired,
    paired,
    power_better,
    power_no_worse,
    seed_paired,
    seed_power_better,
    seed_power_no_worse,
)

ALPHA = 0.05
EFFECT = 0.10  # the change a "better" check should be able to show (`repro report --effect`): 10 points
DEFAULT_MARGIN = 0.02  # δ of the non-inferiority check: 2 points of strict accuracy
MET, SHOWN_NOT_MET, NOT_SHOWN, UNDECIDABLE = "met", "shown not met", "not shown", "cannot be decided at this size"
VERDICT_WORDS = (MET, SHOWN_NOT_MET, NOT_SHOWN, UNDECIDABLE)
CROSS_CRITERIA = (
    f"each criterion at α = {ALPHA}, no correction across the three: each answers its own question of the "
    "original report (were all three true nulls, at most 1 − 0.95³ ≈ 14% of studies would report one met)"
)


@dataclass(frozen=True)
class RunOutcome:
    name: str
    group: str
    size: int  # "full" is stored as the number of training rows
    status: dict[str, str]  # item id → status
    seed: int = 0  # the training seed (with its subset order): replicates of one arm differ only here

    def indicator(self, metric: str) -> dict[str, bool]:
        """Per item: strict_accuracy → correct; a rate key of app/eval/grading.RATES → the item counts in it."""
        if metric == "strict_accuracy":
            return {i: s == "correct" for i, s in self.status.items()}
        statuses = RATE_BY_KEY[metric].statuses
        return {i: s in statuses for i, s in self.status.items()}


@dataclass
class Check:
    """One paired comparison inside a criterion: `run_b` (candidate) against `run_a` (baseline)."""

    label: str
    verdict: str  # one of VERDICT_WORDS
    n: int
    run_a: str | None
    run_b: str | None
    value_a: float
    value_b: float
    p: float | None  # exact McNemar
    ci: tuple[float, float] | None  # 95% Bonett–Price interval of value_b − value_a
    discordant: int = 0
    rates: dict[str, tuple[float, float]] = field(default_factory=dict)  # each rate, baseline → candidate
    metric: str = ""  # the eval metric whose per-item indicator is compared: strict_accuracy or a rate key
    power: float | None = None  # power for the stated effect (or margin) at this n and discordance
    effect: float | None = None  # the stated effect (better checks) or margin δ (no-worse checks)
    flag: str | None = None  # e.g. the two runs were made on different machines (set by the report)
    seeds: int = 1  # paired training seeds per arm; 1: a verdict about two checkpoints, not two recipes
    seed_diffs: list[float] = field(default_factory=list)  # candidate − baseline per seed (k ≥ 2)
    se: float | None = None  # the items × seeds standard error of the difference (k ≥ 2)
    df: float | None = None  # its Satterthwaite degrees of freedom


LABELS = {"strict_accuracy": "strict accuracy", **{r.key: f"{r.label} rate" for r in RATES}}


def paired_ids(a: RunOutcome, b: RunOutcome) -> list[str]:
    return sorted(set(a.status) & set(b.status))


def paired_outcome(a: RunOutcome, b: RunOutcome, metric: str) -> Paired:
    """The paired summary of one metric's indicator on the items both runs evaluated."""
    ids = paired_ids(a, b)
    xa, xb = a.indicator(metric), b.indicator(metric)
    return paired([xa[i] for i in ids], [xb[i] for i in ids])


def rate_changes(a: RunOutcome, b: RunOutcome, ids: list[str]) -> dict[str, tuple[float, float]]:
    """Every rate of app/eval/grading.RATES on the paired items, baseline → candidate."""
    share = lambda run, r: sum(run.status[i] in r.statuses for i in ids) / len(ids)  # noqa: E731
    return {r.key: (share(a, r), share(b, r)) for r in RATES}


def missing(label: str, a: RunOutcome | None, b: RunOutcome | None, metric: str, effect: float) -> Check:
    """A check whose run is absent: nothing paired, power 0."""
    return Check(label, UNDECIDABLE, 0, a and a.name, b and b.name, 0.0, 0.0, None, None, 0, {}, metric, 0.0, effect)


def compare(
    label: str, a: RunOutcome, b: RunOutcome, metric: str, higher_is_better: bool, effect: float = EFFECT
) -> Check:
    """Paired "better" check of `metric`, candidate b against baseline a (see module doc)."""
    ids = paired_ids(a, b)
    if not ids:
        return missing(label, a, b, metric, effect)
    pr = paired_outcome(a, b, metric)
    check = Check(label, UNDECIDABLE, pr.n, a.name, b.name, pr.value_a, pr.value_b, pr.p, pr.ci, pr.discordant)
    check.rates, check.metric, check.effect = rate_changes(a, b, ids), metric, effect
    check.power = power_better(pr.n, pr.discordance, effect, ALPHA)
    check.verdict = better_verdict(pr, higher_is_better, check.power)
    return check


def better_verdict(pr: Paired, higher_is_better: bool, power: float) -> str:
    """Shown either way at α, else undecidable (power below POWER_LEVEL) or not shown."""
    return decide(pr.p, pr.only_b - pr.only_a, higher_is_better, power)


def decide(p: float, diff: float, higher_is_better: bool, power: float) -> str:
    """Met / shown not met when p < α (by the sign of the difference), else by power."""
    if p < ALPHA and diff != 0:
        return MET if (diff > 0) == higher_is_better else SHOWN_NOT_MET
    return UNDECIDABLE if power < POWER_LEVEL else NOT_SHOWN


def no_worse(label: str, a: RunOutcome, b: RunOutcome, margin: float) -> Check:
    """Non-inferiority of b's strict accuracy against a's with margin δ (see module doc)."""
    check = compare(label, a, b, "strict_accuracy", True, margin)
    if check.ci is None:
        return check
    check.power = power_no_worse(check.n, check.discordant / check.n, margin)
    check.verdict = margin_verdict(check.ci, margin, check.power)
    return check


def names(runs: list[RunOutcome]) -> str:
    return ", ".join(r.name for r in runs)


def compare_seeds(
    label: str, a: list[RunOutcome], b: list[RunOutcome], metric: str, higher_is_better: bool, effect: float = EFFECT
) -> Check:
    """The items × seeds "better" check of two arms with the same k ≥ 2 seeds (a[s], b[s] paired)."""
    ids = sorted(set.intersection(*(set(r.status) for r in a + b)))
    if not ids:
        return missing(label, a[0], b[0], metric, effect)
    sp = seed_paired(
        [[r.indicator(metric)[i] for i in ids] for r in a], [[r.indicator(metric)[i] for i in ids] for r in b]
    )
    check = Check(label, UNDECIDABLE, sp.n, names(a), names(b), sp.value_a, sp.value_b, sp.p, sp.ci)
    check.discordant, check.metric, check.effect = round(sp.discordance * sp.n), metric, effect
    check.seeds, check.seed_diffs = sp.k, [round(x, 6) for x in sp.seed_diffs]
    per_seed = [rate_changes(ra, rb, ids) for ra, rb in zip(a, b)]
    check.rates = {key: tuple(sum(r[key][j] for r in per_seed) / sp.k for j in (0, 1)) for key in per_seed[0]}
    check.power = seed_power_better(sp.se, sp.df, effect)
    check.verdict = decide(sp.p, sp.diff, higher_is_better, check.power)
    check.se, check.df = sp.se, sp.df
    return check


def no_worse_seeds(label: str, a: list[RunOutcome], b: list[RunOutcome], margin: float) -> Check:
    """Items × seeds non-inferiority: the t interval of the mean difference against −δ."""
    check = compare_seeds(label, a, b, "strict_accuracy", True, margin)
    if check.ci is None:
        return check
    check.power = seed_power_no_worse(check.se, check.df, margin)
    check.verdict = margin_verdict(check.ci, margin, check.power)
    return check


def margin_verdict(ci: tuple[float, float], margin: float, power: float) -> str:
    """Met iff the interval lies above −δ, shown not met iff below it; else by power."""
    if ci[0] > -margin:
        return MET
    if ci[1] < -margin:
        return SHOWN_NOT_MET
    return UNDECIDABLE if power < POWER_LEVEL else NOT_SHOWN


def overall(checks: list[Check]) -> str:
    """Intersection–union: met iff all checks are; shown not met if any is; else undecidable if any is."""
    words = [c.verdict for c in checks]
    if not words:
        return UNDECIDABLE
    if all(w == MET for w in words):
        return MET
    for word in (SHOWN_NOT_MET, UNDECIDABLE):
        if word in words:
            return word
    return NOT_SHOWN


def find(runs: list[RunOutcome], group: str, size: int) -> RunOutcome | None:
    """The arm's run of the lowest seed (seed 0: the one every arm has)."""
    found = replicas(runs, group, size)
    return found[0] if found else None


def replicas(runs: list[RunOutcome], group: str, size: int) -> list[RunOutcome]:
    """Every seed of one arm, by seed."""
    return sorted((r for r in runs if r.group == group and r.size == size), key=lambda r: r.seed)


def paired_seeds(a: list[RunOutcome], b: list[RunOutcome]) -> tuple[list[RunOutcome], list[RunOutcome]]:
    """The seeds both arms have, each arm's runs in that order (seed s pairs with seed s)."""
    common = sorted({r.seed for r in a} & {r.seed for r in b})
    pick = lambda runs: [next(r for r in runs if r.seed == s) for s in common]  # noqa: E731
    return pick(a), pick(b)


def pair_checks(runs, pairs, metric: str, make, effect: float) -> list[Check]:
    """One check per (baseline group, candidate group, size); a missing run cannot be decided.

    `make(label, a_runs, b_runs)` gets the paired seeds of both arms (one run each with one seed)."""
    checks = []
    for ga, gb, size in pairs:
        a, b = paired_seeds(replicas(runs, ga, size), replicas(runs, gb, size))
        label = f"{gb} vs {ga} at {size}: {LABELS[metric]}"
        if not a:
            checks.append(missing(label, find(runs, ga, size), find(runs, gb, size), metric, effect))
        else:
            checks.append(make(label, a, b))
    return checks


def better(metric: str, higher_is_better: bool, effect: float):
    """A "better" check: one pair of checkpoints (exact McNemar), or items × seeds for k ≥ 2."""

    def make(label: str, a: list[RunOutcome], b: list[RunOutcome]) -> Check:
        if len(a) == 1:
            return compare(label, a[0], b[0], metric, higher_is_better, effect)
        return compare_seeds(label, a, b, metric, higher_is_better, effect)

    return make


def _rule_better(what: str, effect: float) -> str:
    return (
        f"{what}; exact McNemar, each check at α = {ALPHA} (all must be met: intersection–union, no Holm); "
        f"met iff p < α the right way, shown not met iff p < α the wrong way; otherwise cannot be decided at "
        f"this size when the test's power to show a {effect:g} change at this n and the observed discordance is "
        f"below {POWER_LEVEL:.0%}, else not shown; {CROSS_CRITERIA}"
    )


def evaluate_criteria(
    runs: list[RunOutcome],
    sizes: list[int],
    fix_sizes: list[int],
    margin: float = DEFAULT_MARGIN,
    effect: float = EFFECT,
) -> list[dict]:
    """The report's three success criteria, each with its paired checks and an overall verdict."""
    large, small = fix_sizes[-2:], sizes[:2]
    pairs1 = [(a, b, s) for s in large for a, b in (("A", "B"), ("A", "C"))]
    c1 = pair_checks(runs, pairs1, "strict_accuracy", better("strict_accuracy", True, effect), effect)
    c2 = []
    for s in fix_sizes:
        for g in ("B", "C"):
            for metric in ("unclosed_rate", "unparsable_rate"):
                c2 += pair_checks(runs, [("orig", g, s)], metric, better(metric, False, effect), effect)

    def nw(label: str, a: list[RunOutcome], b: list[RunOutcome]) -> Check:
        return no_worse(label, a[0], b[0], margin) if len(a) == 1 else no_worse_seeds(label, a, b, margin)

    c3 = pair_checks(runs, [("orig", g, s) for s in small for g in ("B", "C")], "strict_accuracy", nw, margin)
    criteria = [
        {
            "id": "criterion_1",
            "criterion": f"B and C clearly beat A at {', '.join(map(str, large))}",
            "rule": _rule_better(f"strict accuracy, {len(c1)} checks", effect),
            "checks": c1,
            "verdict": overall(c1),
        },
        {
            "id": "criterion_2",
            "criterion": "unclosed and unparsable rates drop (B, C vs orig)",
            "rule": _rule_better(
                f"the unclosed rate (no </answer>: truncated or stopped) and the unparsable rate (closed, not exactly "
                f"one number), each tested, {len(c2)} checks; the combined 'no parsable answer' rate is shown apart "
                "and decides nothing",
                effect,
            ),
            "checks": c2,
            "verdict": overall(c2),
        },
        {
            "id": "criterion_3",
            "criterion": f"{' and '.join(map(str, small))} do no worse than before (B, C vs orig)",
            "rule": f"non-inferiority, margin δ = {margin:g}, every fix arm at the small sizes ({len(c3)} checks, "
            f"each at the 95% level, all must be met): met iff the 95% Bonett–Price interval of candidate − orig "
            f"lies above −δ, shown not met iff it lies below −δ; otherwise cannot be decided at this size when two "
            f"truly equal runs would be shown no worse with power below {POWER_LEVEL:.0%} at this n and the "
            f"observed discordance, else not shown; {CROSS_CRITERIA}",
            "checks": c3,
            "verdict": overall(c3),
        },
    ]
    return [c | {"scope": scope(c["checks"])} for c in criteria]


def scope(checks: list[Check]) -> str:
    """What a criterion's verdict is about: recipes (seeds × items) or single checkpoints."""
    seeds = sorted({c.seeds for c in checks if c.n})
    if not seeds:
        return "no runs"
    if seeds == [1]:
        return "one training seed per arm: a verdict about these checkpoints (seed 0), not about the recipes"
    if len(seeds) == 1:
        return f"{seeds[0]} training seeds per arm: a verdict about the recipes (items × seeds)"
    multi = sorted({c.label.split(":")[0] for c in checks if c.seeds > 1})
    return (
        f"{'/'.join(map(str, seeds))} training seeds: {', '.join(multi)} about the recipes (items × seeds); "
        "the other checks about single checkpoints (seed 0)"
    )


def extra_rule(what: str, effect: float) -> str:
    return (
        f"{what}; exact McNemar per check, uncorrected, α = {ALPHA}; the same verdict words (power for a "
        f"{effect:g} change below {POWER_LEVEL:.0%}: cannot be decided at this size); decides no criterion"
    )


def extra_comparisons(runs: list[RunOutcome], fix_sizes: list[int], effect: float = EFFECT) -> list[dict]:
    """Not success criteria: criterion 2's combined measure, and the hardened prompt (P) against orig."""
    fmt = better("format_fail_rate", False, effect)
    pairs = [("orig", g, s) for s in fix_sizes for g in ("B", "C")]
    sections = [
        {
            "id": "criterion_2_combined",
            "criterion": "Criterion 2's combined measure (labelled extra): no parsable answer",
            "rule": extra_rule(
                "per-item 'no closed answer holding exactly one number' (unclosed or unparsable)", effect
            ),
            "checks": pair_checks(runs, pairs, "format_fail_rate", fmt, effect),
            "verdict": None,
        }
    ]
    if any(r.group == "P" for r in runs):
        p_pairs = [("orig", "P", s) for s in fix_sizes]
        checks = pair_checks(runs, p_pairs, "strict_accuracy", better("strict_accuracy", True, effect), effect)
        checks += pair_checks(runs, p_pairs, "format_fail_rate", fmt, effect)
        sections.append(
            {
                "id": "prompt_hardening",
                "criterion": "Prompt hardening (P = orig + r1_zero_hardened_v1)",
                "rule": extra_rule("strict accuracy and no parsable answer", effect),
                "checks": checks,
                "verdict": None,
            }
        )
    return sections
