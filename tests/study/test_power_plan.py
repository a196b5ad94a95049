"""`repro plan`'s power table (app/study/power_plan.py): defaults from the committed CPU study, power that holds."""

import json
from pathlib import Path

import pytest

from app.study.paired_stats import power_better, power_no_worse
from app.study.power_plan import CPU_DISCORDANCE, power_rows

REPO = Path(__file__).resolve().parents[2]


def test_default_discordance_is_the_cpu_studys_largest_per_check_kind():
    report = json.loads((REPO / "docs" / "cpu_study" / "report.json").read_text())
    observed: dict[tuple[str, str], float] = {}
    for c in report["comparisons"]:
        if c["section"].startswith("criterion_") and c["section"][-1].isdigit() and c["n"]:
            key = (c["section"][-1], c["metric"])
            observed[key] = max(observed.get(key, 0.0), c["discordant"] / c["n"])
    metric = {"strict accuracy": "strict_accuracy", "unclosed": "unclosed_rate", "unparsable": "unparsable_rate"}
    for criterion, what, _, d in CPU_DISCORDANCE:
        key = next(v for k, v in metric.items() if k in what)
        assert observed[(criterion, key)] == pytest.approx(d), what


def test_the_smallest_effect_has_the_power_and_a_stated_discordance_overrides():
    rows = power_rows(1319)
    for r in rows:
        if r["kind"] == "effect":
            assert power_better(1319, r["discordance"], r["smallest"]) >= 0.8
        else:
            assert power_no_worse(1319, r["discordance"], r["smallest"]) >= 0.8
    third = power_rows(1319, 0.30)[-1]
    assert third["discordance_source"] == "--discordance" and third["smallest"] > 0.02 and not third["decidable"]
    assert not any(r["decidable"] for r in power_rows(64))  # the CPU study's size decides nothing
