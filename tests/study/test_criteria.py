"""Criteria rules on synthetic outcomes: each rule has a case that the earlier rules got wrong."""

import json
from pathlib import Path

import pytest

from app.study.criteria import (
    RunOutcome,
    compare,
    evaluate_criteria,
    holm,
    no_worse,
    overall,
    paired_interval,
)

REPO = Path(__file__).resolve().parents[2]


def run(group, size, statuses):
    """An outcome from a list of statuses, item i → q{i}."""
    return RunOutcome(f"{group}_{size}", group, size, {f"q{i}": s for i, s in enumerate(statuses)})


def acc(group, size, correct_ids, n=100):
    return run(group, size, ["correct" if i in correct_ids else "wrong" for i in range(n)])


def test_clear_improvement_is_met_and_a_tie_with_few_discordant_is_not_enough_data():
    a, b = acc("A", 1, range(10)), acc("B", 1, range(40))
    assert compare("x", a, b, "correct", True).verdict == "met"
    assert compare("x", b, a, "correct", True).verdict == "not met"
    tie = compare("x", a, acc("B", 1, range(12)), "correct", True)
    assert tie.verdict == "not enough data" and tie.p == 0.5


def test_fewer_than_ten_discordant_is_not_enough_data_even_when_significant():
    """README: under 10 discordant items is 'not enough data'; 6 of 6 one way has p = 0.031."""
    check = compare("x", acc("A", 1, []), acc("B", 1, range(6)), "correct", True)
    assert check.p == pytest.approx(2 / 64) and check.discordant == 6
    assert check.verdict == "not enough data"


def test_holm_adjusts_within_a_criterion():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_holm_turns_a_marginal_win_into_not_met():
    a = acc("A", 1024, range(3, 50))
    b = acc("B", 1024, list(range(6, 50)) + list(range(50, 62)))  # 12 only-B, 3 only-A: p = 0.035
    runs = [a, b, acc("C", 1024, range(3, 50)), acc("A", 512, range(50)), acc("B", 512, range(50))]
    runs.append(acc("C", 512, range(50)))
    c1 = evaluate_criteria(runs, [128, 256, 512, 1024], [512, 1024])[0]
    check = next(c for c in c1["checks"] if c.label.startswith("B vs A at 1024"))
    assert check.p == pytest.approx(2 * (1 + 15 + 105 + 455) / 2**15)
    assert check.p < 0.05 and check.p_holm >= 0.05 and check.verdict == "not met"
    assert "Holm" in c1["rule"]


def test_criterion_two_counts_truncated_outputs_as_format_failures():
    """orig fails by hitting the token cap 20 times; B never does: that is a drop in unclosed outputs."""
    orig = run("orig", 64, ["truncated"] * 20 + ["wrong"] * 80)
    b = run("B", 64, ["wrong"] * 100)
    c2 = evaluate_criteria([orig, b], [32, 64], [64])[1]
    check = c2["checks"][0]
    assert check.label.startswith("B vs orig at 64") and check.run_a == "orig_64" and check.run_b == "B_64"
    assert check.verdict == "met" and check.value_a == 0.2 and check.value_b == 0.0
    assert check.rates["unclosed_rate"] == (0.2, 0.0) and check.rates["truncated_rate"] == (0.2, 0.0)
    assert check.rates["unparsable_rate"] == (0.0, 0.0)


def test_no_worse_is_non_inferiority():
    orig = acc("orig", 32, range(20), n=30)
    worse = acc("C", 32, range(15), n=30)  # 20/30 → 15/30, every loss one-sided: CI below zero
    check = no_worse("x", orig, worse, 0.02)
    assert check.ci[1] < 0 and check.verdict != "met"
    assert no_worse("x", acc("orig", 1, range(50)), acc("C", 1, range(30)), 0.02).verdict == "not met"
    same = acc("C", 1, range(500), n=1000)
    assert no_worse("x", acc("orig", 1, range(500), n=1000), same, 0.02).verdict == "met"
    # equal but small: the interval is wider than the margin, so nothing can be said
    assert no_worse("x", acc("orig", 1, range(15), n=30), acc("C", 1, range(15), n=30), 0.02).verdict == (
        "not enough data"
    )
    small = acc("orig", 1, range(5), n=10)
    assert no_worse("x", small, small, 0.5).verdict == "not enough data"  # under 30 items


def test_paired_interval_is_never_degenerate_and_covers_the_difference():
    lo, hi = paired_interval([True] * 10 + [False] * 10, [True] * 10 + [False] * 10)
    assert lo < 0 < hi
    lo, hi = paired_interval([False] * 50 + [True] * 50, [True] * 100)
    assert lo < 0.5 < hi and lo > 0.3


def test_overall_verdict():
    assert overall([]) == "not enough data"


def test_full_criteria_on_a_made_up_study():
    runs = [acc("orig", 128, range(500), 1000), acc("C", 128, range(505), 1000)]
    runs += [acc("orig", 256, range(400), 1000), acc("C", 256, range(450), 1000)]
    for size in (512, 1024, 7473):
        runs += [
            run("orig", size, ["correct"] * 10 + ["unparsable"] * 60 + ["wrong"] * 30),
            run("A", size, ["correct"] * 20 + ["truncated"] * 30 + ["wrong"] * 50),
            run("B", size, ["correct"] * 45 + ["unclosed_eos"] * 5 + ["wrong"] * 50),
            run("C", size, ["correct"] * 50 + ["unparsable"] * 4 + ["wrong"] * 46),
        ]
    verdicts = [c["verdict"] for c in evaluate_criteria(runs, [128, 256, 512, 1024, 7473], [512, 1024, 7473])]
    assert verdicts == ["met", "met", "met"]
    runs = [r for r in runs if not (r.group == "B" and r.size == 7473)]
    c1 = evaluate_criteria(runs, [128, 256, 512, 1024, 7473], [512, 1024, 7473])[0]
    assert c1["verdict"] == "not enough data" and "B vs A at 7473" in c1["checks"][2].label


def committed(group, size):
    path = next((REPO / "docs" / "cpu_study" / "runs").glob(f"cpu_{group}_{size}-*"))
    recs = [json.loads(ln) for ln in (path / "predictions.jsonl").read_text().splitlines()]
    return RunOutcome(path.name, group, size, {r["id"]: r["status"] for r in recs})


def test_committed_cpu_study_with_truncation_counted():
    """The issue's example: B vs orig at 128 is met (0.453 → 0.188, p ≈ 0.003); C is worse there."""
    runs = [committed(g, s) for g in ("orig", "B", "C") for s in (64, 128)]
    c2 = evaluate_criteria(runs, [32, 64, 128], [64, 128])[1]
    by = {c.label.split(":")[0]: c for c in c2["checks"]}
    b = by["B vs orig at 128"]
    assert (round(b.value_a, 3), round(b.value_b, 3)) == (0.453, 0.188)
    assert b.p == pytest.approx(0.003, abs=0.001) and b.verdict == "met"
    c = by["C vs orig at 128"]
    assert c.value_b > c.value_a and c.p < 0.05 and c.verdict == "not met"
    assert c2["verdict"] == "not met"
