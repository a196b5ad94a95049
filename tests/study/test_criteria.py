"""Criteria rules on synthetic outcome tables: each verdict word has cases that must, and must not, give it."""

import json
from pathlib import Path

import pytest

from app.study.criteria import (
    MET,
    NOT_SHOWN,
    SHOWN_NOT_MET,
    UNDECIDABLE,
    Check,
    RunOutcome,
    compare,
    evaluate_criteria,
    extra_comparisons,
    no_worse,
    overall,
)

REPO = Path(__file__).resolve().parents[2]


def run(group, size, statuses):
    """An outcome from a list of statuses, item i → q{i}."""
    return RunOutcome(f"{group}_{size}", group, size, {f"q{i}": s for i, s in enumerate(statuses)})


def acc(group, size, correct_ids, n=100):
    return run(group, size, ["correct" if i in correct_ids else "wrong" for i in range(n)])


def better(a, b):
    return compare("x", a, b, "strict_accuracy", True)


def test_met_and_shown_not_met_are_the_two_directions_of_a_significant_test():
    a, b = acc("A", 1, range(10)), acc("B", 1, range(40))
    assert better(a, b).verdict == MET
    assert better(b, a).verdict == SHOWN_NOT_MET  # the opposite was shown: not merely "not met"


def test_a_nine_to_nothing_split_is_met_no_count_threshold():
    """The issue's example: 9 discordant items all one way, p = 0.004 — the old 10-item count said 'not enough data'."""
    check = better(acc("A", 1, []), acc("B", 1, range(9)))
    assert check.discordant == 9 and check.p == pytest.approx(2 / 2**9) and check.verdict == MET


def test_an_even_split_at_a_size_with_power_is_not_shown_never_met():
    """1000 items, 300 discordant split 150–150: the test had the power to show a 0.1 gain and did not."""
    a = acc("A", 1, range(500), n=1000)
    b = acc("B", 1, list(range(150, 500)) + list(range(500, 650)), n=1000)
    check = better(a, b)
    assert check.discordant == 300 and check.p == 1.0
    assert check.power > 0.8 and check.verdict == NOT_SHOWN
    assert check.ci[0] < 0 < check.ci[1]


def test_too_small_to_decide_is_computed_from_power_not_a_count():
    """30 items, 5 vs 3 discordant: power to show a 0.1 gain is far below 80%, so no verdict is possible."""
    a = acc("A", 1, list(range(10)) + [20, 21, 22], n=30)
    b = acc("B", 1, list(range(10)) + [23, 24, 25, 26, 27], n=30)
    check = better(a, b)
    assert check.discordant == 8 and check.power < 0.8 and check.verdict == UNDECIDABLE
    # the same split with 40 times the items: now the test has the power, so a verdict is reached
    big_a = acc("A", 1, [i for i in range(1200) if i % 30 in (*range(10), 20, 21, 22)], n=1200)
    big_b = acc("B", 1, [i for i in range(1200) if i % 30 in (*range(10), 23, 24, 25, 26, 27)], n=1200)
    big = better(big_a, big_b)
    assert big.discordant == 320 and big.power >= 0.8 and big.verdict != UNDECIDABLE


def test_no_worse_verdicts():
    orig = acc("orig", 1, range(500), n=1000)
    assert no_worse("x", orig, acc("C", 1, range(500), n=1000), 0.02).verdict == MET
    assert no_worse("x", acc("orig", 1, range(50)), acc("C", 1, range(30)), 0.02).verdict == SHOWN_NOT_MET
    # 2000 items, 70 lost and 30 gained: the interval straddles −δ although it is narrow enough: not shown
    base = acc("orig", 1, range(1000), n=2000)
    cand = acc("C", 1, list(range(70, 1000)) + list(range(1000, 1030)), n=2000)
    check = no_worse("x", base, cand, 0.02)
    assert check.ci[0] < -0.02 < check.ci[1] and check.power >= 0.8 and check.verdict == NOT_SHOWN


def test_two_identical_runs_at_64_items_cannot_be_shown_no_worse():
    """The CPU study's size: even identical runs cannot pass δ = 0.02 — the verdict must say so, not 'met'."""
    same = acc("orig", 1, range(20), n=64)
    check = no_worse("x", same, acc("C", 1, range(20), n=64), 0.02)
    assert check.discordant == 0 and check.power < 0.05 and check.verdict == UNDECIDABLE


def words(*verdicts):
    return [Check("x", v, 1, "a", "b", 0.0, 0.0, 1.0, (0.0, 0.0)) for v in verdicts]


def test_a_criterion_needs_every_check_intersection_union():
    assert overall(words(MET, MET)) == MET
    assert overall(words(MET, NOT_SHOWN)) == NOT_SHOWN
    assert overall(words(MET, NOT_SHOWN, UNDECIDABLE)) == UNDECIDABLE
    assert overall(words(MET, UNDECIDABLE, SHOWN_NOT_MET)) == SHOWN_NOT_MET
    assert overall([]) == UNDECIDABLE


def test_each_check_at_alpha_without_holm():
    """p = 0.035 on one check of four: Holm would have made it 'not met'; an intersection–union test does not."""
    a = acc("A", 1024, range(3, 50))
    b = acc("B", 1024, list(range(6, 50)) + list(range(50, 62)))  # 12 only-B, 3 only-A: p = 0.035
    runs = [a, b, acc("C", 1024, range(3, 50)), acc("A", 512, range(50)), acc("B", 512, range(50))]
    runs.append(acc("C", 512, range(50)))
    c1 = evaluate_criteria(runs, [128, 256, 512, 1024], [512, 1024])[0]
    check = next(c for c in c1["checks"] if c.label.startswith("B vs A at 1024"))
    assert check.p == pytest.approx(2 * (1 + 15 + 105 + 455) / 2**15) and check.verdict == MET
    assert "intersection–union" in c1["rule"] and "no correction across" in c1["rule"]
    assert c1["verdict"] != MET  # the other checks show nothing


def test_criterion_two_tests_each_rate_and_the_combined_measure_decides_nothing():
    """orig: 5 unclosed + 5 unparsable; B: none. Combined 10–0 is significant, each rate's 5–0 is not."""
    orig = run("orig", 64, ["truncated"] * 5 + ["unparsable"] * 5 + ["wrong"] * 90)
    b = run("B", 64, ["wrong"] * 100)
    c2 = evaluate_criteria([orig, b], [32, 64], [64])[1]
    labels = [c.label for c in c2["checks"]]
    assert labels[:2] == ["B vs orig at 64: unclosed rate", "B vs orig at 64: unparsable rate"]
    assert [c.metric for c in c2["checks"][:2]] == ["unclosed_rate", "unparsable_rate"]
    assert [c.verdict for c in c2["checks"][:2]] == [NOT_SHOWN, NOT_SHOWN]
    assert c2["verdict"] != MET
    combined = extra_comparisons([orig, b], [64])[0]
    assert combined["id"] == "criterion_2_combined" and combined["verdict"] is None
    assert combined["checks"][0].verdict == MET and combined["checks"][0].metric == "format_fail_rate"


def test_criterion_three_tests_b_and_c():
    runs = [acc(g, s, range(500), n=1000) for g in ("orig", "B", "C") for s in (32, 64)]
    c3 = evaluate_criteria(runs, [32, 64, 128], [64, 128])[2]
    assert [c.label.split(":")[0] for c in c3["checks"]] == [
        "B vs orig at 32",
        "C vs orig at 32",
        "B vs orig at 64",
        "C vs orig at 64",
    ]
    assert c3["verdict"] == MET
    no_b = evaluate_criteria([r for r in runs if r.group != "B"], [32, 64, 128], [64, 128])[2]
    assert no_b["verdict"] == UNDECIDABLE and no_b["checks"][0].n == 0  # B was never run: nothing decided


def test_full_criteria_on_a_made_up_study():
    runs = [acc(g, s, range(500), 1000) for g in ("orig", "B", "C") for s in (128, 256)]
    for size in (512, 1024, 7473):
        runs += [
            run("orig", size, ["correct"] * 100 + ["unparsable"] * 300 + ["truncated"] * 300 + ["wrong"] * 300),
            run("A", size, ["correct"] * 200 + ["truncated"] * 300 + ["wrong"] * 500),
            run("B", size, ["correct"] * 450 + ["unclosed_eos"] * 50 + ["wrong"] * 500),
            run("C", size, ["correct"] * 500 + ["unparsable"] * 40 + ["wrong"] * 460),
        ]
    verdicts = [c["verdict"] for c in evaluate_criteria(runs, [128, 256, 512, 1024, 7473], [512, 1024, 7473])]
    assert verdicts == [MET, MET, MET]


def committed(group, size):
    path = next((REPO / "docs" / "cpu_study" / "runs").glob(f"cpu_{group}_{size}-*"))
    recs = [json.loads(ln) for ln in (path / "predictions.jsonl").read_text().splitlines()]
    return RunOutcome(path.name, group, size, {r["id"]: r["status"] for r in recs})


def test_committed_cpu_study_rate_by_rate():
    """B closes more answers at 128 (0.422 → 0.188, p ≈ 0.014); C leaves more unclosed there: shown not met."""
    runs = [committed(g, s) for g in ("orig", "B", "C") for s in (64, 128)]
    c2 = evaluate_criteria(runs, [32, 64, 128], [64, 128])[1]
    by = {c.label: c for c in c2["checks"]}
    b = by["B vs orig at 128: unclosed rate"]
    assert (round(b.value_a, 3), round(b.value_b, 3)) == (0.422, 0.188)
    assert b.p == pytest.approx(0.014, abs=0.001) and b.verdict == MET
    c = by["C vs orig at 128: unclosed rate"]
    assert c.value_b > c.value_a and c.p < 0.05 and c.verdict == SHOWN_NOT_MET
    assert c2["verdict"] == SHOWN_NOT_MET


def test_the_stated_effect_decides_between_not_shown_and_cannot_be_decided():
    """An even 15–15 split at 100 items: power for a 0.10 change is too low, for a 0.30 change it is not."""
    a = acc("A", 1, range(15, 50))
    b = acc("B", 1, list(range(30, 50)) + list(range(50, 65)))
    assert compare("x", a, b, "strict_accuracy", True, 0.10).verdict == UNDECIDABLE
    assert compare("x", a, b, "strict_accuracy", True, 0.30).verdict == NOT_SHOWN
