"""report.json: the study report for programs — numbers as numbers, intervals as `[lo, hi]`, versioned. Pure.

The pydantic models below are the schema: `report_document` builds the document through them, so
every report.json validates against `ReportJson`, and docs/report.schema.json is their JSON Schema
(tests/study/test_report_json.py keeps it in step). Display strings ("0.000 [0.000, 0.057]") live
only in report.md / report.html. SCHEMA_VERSION changes when a field is renamed, removed or changes
meaning; adding a field does not change it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.eval.grading import RATES

SCHEMA_VERSION = 3  # 2: four verdict words, per-rate criterion 2, power instead of holm_p; 3: seeds
SCHEMA_ID = "https://github.com/repro-gsm8k/repro/report.schema.json"
Verdict = Literal["met", "shown not met", "not shown", "cannot be decided at this size"]
Metric = Literal[
    "strict_accuracy", "unclosed_rate", "truncated_rate", "unclosed_eos_rate", "unparsable_rate", "format_fail_rate"
]
Interval = tuple[float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunRow(_Strict):
    """One evaluated run (the report's runs table)."""

    run: str = Field(description="spec name")
    run_dir: str = Field(description="the run directory as given to `repro report`")
    group: str = Field(description="study arm (base, orig, A, B, C, lr, P, steps, tokens, decode, other)")
    train_size: int | None = Field(description="training examples; null for the untrained base model")
    budget_kind: Literal["epochs", "max_steps", "max_tokens"] | None = Field(description="null: not trained")
    budget: float | None = Field(description="the training budget in budget_kind's unit")
    tokens_trained: int | None = Field(description="non-pad tokens trained (beside a max_tokens budget's target)")
    seed: int = Field(description="training seed (replicates of one arm differ in seed and subset order)")
    subset_seed: int
    lr: float | None = Field(description="peak learning rate; null: not trained")
    schedule: str | None
    loss_mask: str | None
    warmup_steps: int | None = Field(description="null: not trained, or not recorded by older runs")
    prompt_template: str
    max_new_tokens: int | None
    n: int = Field(description="evaluated questions")
    strict_accuracy: float
    strict_ci95: Interval = Field(description="95% Wilson interval of strict_accuracy, [lo, hi]")
    diagnostic_accuracy: float
    unclosed_rate: float = Field(description="no </answer> at all (truncated + unclosed_eos)")
    truncated_rate: float
    unclosed_eos_rate: float
    unparsable_rate: float
    format_fail_rate: float = Field(description="no closed answer holding exactly one number")
    gen_tokens_p50: float = Field(description="median generated tokens")
    unverified: bool = Field(description="reported with --allow-unverified although its files differ")


class Section(_Strict):
    """A success criterion or a further comparison; its checks are the `comparisons` naming its id."""

    id: str = Field(description="criterion_1..3, criterion_2_combined, prompt_hardening, decoding_robustness")
    kind: Literal["criterion", "comparison"]
    title: str
    rule: str
    verdict: Verdict | None = Field(description="the criterion's verdict; null for a comparison section")
    scope: str | None = Field(description="recipes (items × seeds) or single checkpoints; null for a comparison")


class Comparison(_Strict):
    """One paired check: the candidate run against the baseline run on their shared questions."""

    section: str = Field(description="id of its Section")
    label: str
    metric: Metric = Field(description="what is compared, per item: strict accuracy or one rate of eval_metrics.json")
    verdict: Verdict
    n: int = Field(description="paired questions (0: a run is missing)")
    baseline_run: str | None = Field(description="run name; with seeds, every seed's run name joined by ', '")
    candidate_run: str | None
    baseline_value: float | None = Field(description="the metric on the paired questions; null when n = 0")
    candidate_value: float | None
    difference_ci95: Interval | None = Field(description="95% Bonett–Price interval of candidate − baseline")
    discordant: int
    seeds: int = Field(description="paired training seeds per arm; 1: a comparison of two checkpoints")
    seed_differences: list[float] = Field(description="candidate − baseline per seed (empty with one seed)")
    test: Literal["exact McNemar", "items x seeds t"] = Field(description="how p and the interval were computed")
    p: float | None = Field(description="the check's two-sided p, uncorrected")
    mcnemar_p: float | None = Field(description="exact McNemar p, uncorrected; null for items × seeds checks")
    power: float | None = Field(
        description="power of the check's decision for `effect` at n and the observed discordance (exact)"
    )
    effect: float | None = Field(description="the stated effect (better checks) or margin δ (no-worse checks)")
    flag: str | None = Field(description="why this line needs care, e.g. its runs were made on different machines")
    baseline_rates: dict[str, float] = Field(description="every rate of eval_metrics.json on the paired questions")
    candidate_rates: dict[str, float]


class SeedSummary(_Strict):
    per_seed: list[float]
    mean: float
    sd: float | None = Field(description="sample SD over seeds; null with one seed")
    min: float
    max: float


class ArmSpread(_Strict):
    """One trained arm's runs over training seeds (replicates differ only in seed and subset order)."""

    arm: str = Field(description="the lowest seed's run name")
    runs: list[str]
    seeds: list[int]
    strict_accuracy: SeedSummary
    unclosed_rate: SeedSummary
    unparsable_rate: SeedSummary


class EnvRow(_Strict):
    run: str
    stage: Literal["train", "eval"]
    torch: str | None
    transformers: str | None
    engine: str
    image: str
    git: str
    freeze: str = Field(description="first 12 hex of the pip freeze sha256")


class ReportJson(_Strict):
    """report.json, written by `repro report` beside report.md and report.html."""

    schema_version: Literal[3] = Field(description="changes when a field is renamed, removed or changes meaning")
    title: str
    margin: float = Field(description="criterion 3's non-inferiority margin δ")
    warnings: list[str] = Field(description="the report's top warnings (unverified runs, mixed evaluations)")
    runs: list[RunRow]
    arms: list[ArmSpread] = Field(description="the seed-to-seed spread of every trained arm")
    sections: list[Section]
    comparisons: list[Comparison]
    environments: list[EnvRow]
    environment_warnings: list[str]
    figures: list[str] = Field(description="PNG file names beside report.json")


def _budget(train) -> tuple[str | None, float | None]:
    for kind in ("epochs", "max_steps", "max_tokens"):
        if train is not None and getattr(train, kind):
            return kind, float(getattr(train, kind))
    return None, None


def run_row(run) -> RunRow:
    """A `app.study.report.Run` as numbers."""
    t, m = run.spec.train, run.metrics
    kind, budget = _budget(t)
    warmup = (run.train_metrics or {}).get("warmup_steps")
    return RunRow(
        run=run.spec.name,
        run_dir=str(run.path),
        group=run.group,
        train_size=run.size or None,
        budget_kind=kind,
        budget=budget,
        tokens_trained=(run.train_metrics or {}).get("tokens_trained"),
        seed=run.spec.seed,
        subset_seed=run.spec.data.subset_seed,
        lr=None if t is None else t.lr,
        schedule=None if t is None else t.schedule,
        loss_mask=None if t is None else t.loss_mask,
        warmup_steps=warmup,
        prompt_template=run.spec.prompt.template,
        max_new_tokens=m.get("max_new_tokens"),
        n=m["n"],
        strict_accuracy=m["strict_accuracy"],
        strict_ci95=tuple(m["strict_ci95"]),
        diagnostic_accuracy=m["diagnostic_accuracy"],
        **{rate.key: m[rate.key] for rate in RATES},
        gen_tokens_p50=m["gen_tokens_p50"],
        unverified=bool(run.unverified),
    )


def comparison(section: str, check) -> Comparison:
    """A `app.study.criteria.Check`; values are null when no questions were paired."""
    paired = check.n > 0
    return Comparison(
        section=section,
        label=check.label,
        metric=check.metric,
        verdict=check.verdict,
        n=check.n,
        baseline_run=check.run_a,
        candidate_run=check.run_b,
        baseline_value=check.value_a if paired else None,
        candidate_value=check.value_b if paired else None,
        difference_ci95=check.ci,
        discordant=check.discordant,
        seeds=check.seeds,
        seed_differences=check.seed_diffs,
        test="exact McNemar" if check.seeds == 1 else "items x seeds t",
        p=check.p,
        mcnemar_p=check.p if check.seeds == 1 else None,
        power=check.power,
        effect=check.effect,
        flag=check.flag,
        baseline_rates={k: v[0] for k, v in check.rates.items()},
        candidate_rates={k: v[1] for k, v in check.rates.items()},
    )


def report_document(doc: dict, runs: list, margin: float) -> dict:
    """report.json's content from the report's doc (criteria and extra with their checks) and its runs, sorted."""
    sections, comparisons = [], []
    for kind, items in (("criterion", doc["criteria"]), ("comparison", doc["extra"])):
        for c in items:
            verdict = c["verdict"] if kind == "criterion" else None
            scope = c.get("scope") if kind == "criterion" else None
            sections.append(
                Section(id=c["id"], kind=kind, title=c["criterion"], rule=c["rule"], verdict=verdict, scope=scope)
            )
            comparisons += [comparison(c["id"], k) for k in c["checks"]]
    report = ReportJson(
        schema_version=SCHEMA_VERSION,
        title=doc["title"],
        margin=margin,
        warnings=doc["top_warnings"],
        runs=[run_row(r) for r in runs],
        arms=[ArmSpread(**row) for row in doc.get("spread", [])],
        sections=sections,
        comparisons=comparisons,
        environments=[EnvRow(**row) for row in doc["env_rows"]],
        environment_warnings=doc["warnings"],
        figures=doc["figures"],
    )
    return report.model_dump(mode="json")


def json_schema() -> dict:
    """JSON Schema (draft 2020-12) of report.json (`repro schema --report`, docs/report.schema.json)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **ReportJson.model_json_schema(),
    }
