"""Criteria logic on hand-made outcomes."""

from app.criteria import RunOutcome, compare, evaluate_criteria, overall


def outcome(group, size, n_correct, n=100, n_fail=0):
    ids = [f"q{i}" for i in range(n)]
    return RunOutcome(
        f"{group}_{size}",
        group,
        size,
        {q: i < n_correct for i, q in enumerate(ids)},
        {q: i >= n - n_fail for i, q in enumerate(ids)},
    )


def test_clear_improvement_is_met_and_a_tie_with_few_discordant_is_not_enough_data():
    a, b = outcome("A", 1, 10), outcome("B", 1, 40)
    assert compare("x", a.correct, b.correct, True, "better").verdict == "met"
    assert compare("x", b.correct, a.correct, True, "better").verdict == "not met"
    tie = compare("x", a.correct, outcome("B", 1, 12).correct, True, "better")
    assert tie.verdict == "not enough data" and tie.p == 0.5


def test_no_worse_mode():
    orig, same = outcome("orig", 1, 50), outcome("C", 1, 48)
    assert compare("x", orig.correct, same.correct, True, "no_worse").verdict == "met"
    assert compare("x", orig.correct, outcome("C", 1, 10).correct, True, "no_worse").verdict == "not met"
    small = outcome("orig", 1, 5, n=10)
    assert compare("x", small.correct, small.correct, True, "no_worse").verdict == "not enough data"


def test_overall_verdict():
    assert overall([]) == "not enough data"


def test_full_criteria_on_a_made_up_study():
    runs = [outcome("orig", 128, 50), outcome("C", 128, 51), outcome("orig", 256, 40), outcome("C", 256, 45)]
    for size in (512, 1024, 7473):
        runs += [
            outcome("orig", size, 10, n_fail=60),
            outcome("A", size, 20, n_fail=30),
            outcome("B", size, 45, n_fail=5),
            outcome("C", size, 50, n_fail=4),
        ]
    verdicts = [c["verdict"] for c in evaluate_criteria(runs, [128, 256, 512, 1024, 7473], [512, 1024, 7473])]
    assert verdicts == ["met", "met", "met"]
    runs = [r for r in runs if not (r.group == "B" and r.size == 7473)]
    c1 = evaluate_criteria(runs, [128, 256, 512, 1024, 7473], [512, 1024, 7473])[0]
    assert c1["verdict"] == "not enough data" and "B vs A at 7473" in c1["checks"][2].label
