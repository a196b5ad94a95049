"""`repro plan`'s power table (app/study/power_plan.py): defaults from the committed CPU study, power that holds."""

import json
from pathlib import Path

import pytest

from app.study.paired_stats import Z95, normal_cdf, power_better, power_no_worse
from app.study.power_plan import CPU_DISCORDANCE, power_rows, power_table, seed_se, smallest_with_seeds

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


def test_seeds_shrink_what_averages_away_and_no_more():
    """SE² = 2τ²/k + ρd/n + (1−ρ)d/(nk): more seeds help, but never below the per-question part ρd/n."""
    n, d = 1319, 0.3
    assert seed_se(n, 3, d) < seed_se(n, 1, d) and seed_se(n, 10, d) < seed_se(n, 3, d)
    assert seed_se(n, 10**6, d, item_share=0.5) == pytest.approx((0.5 * d / n) ** 0.5, rel=1e-3)
    # no seed effect and nothing shared between seeds: k seeds are n·k questions
    assert seed_se(n, 4, d, seed_sd=0.0, item_share=0.0) == pytest.approx(seed_se(n * 4, 1, d, 0.0, 0.0))
    for k in (2, 3, 5):
        x = smallest_with_seeds(n, k, d, 0.02, 0.5)
        assert normal_cdf(x / seed_se(n, k, d) - Z95) >= 0.8 > normal_cdf((x - 0.005) / seed_se(n, k, d) - Z95)


def test_power_table_with_seeds_states_its_assumptions():
    rows = power_rows(1319, seeds=3)
    assert all(r["seeds"] == 3 and r["seed_sd"] == 0.02 for r in rows)
    text = power_table(rows)
    assert "items × 3 seeds" in text and "(assumed defaults)" in text
    assert "assumed" not in power_table(power_rows(1319, seeds=3, seed_sd=0.01)).splitlines()[-1]
