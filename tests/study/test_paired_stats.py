"""app/study/paired_stats.py: the one test, interval and power of report, compare and plan."""

import random

import pytest

from app.study.paired_stats import (
    bonett_price,
    mcnemar_exact,
    paired,
    power_better,
    power_no_worse,
    smallest_effect,
    smallest_margin,
)


def test_mcnemar_is_the_two_sided_binomial_test_of_the_discordant_split():
    assert mcnemar_exact(0, 9) == pytest.approx(2 / 2**9)  # the issue's 9–0 split: p = 0.004
    assert mcnemar_exact(3, 12) == pytest.approx(2 * (1 + 15 + 105 + 455) / 2**15)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0


def test_bonett_price_is_never_degenerate_and_covers_the_difference():
    lo, hi = bonett_price(64, 0, 0)
    assert lo < 0 < hi and hi == pytest.approx(0.042, abs=0.001)  # the committed orig_32 vs C_32 interval
    pr = paired([False] * 50 + [True] * 50, [True] * 100)
    assert (pr.only_a, pr.only_b, pr.discordant) == (0, 50, 50)
    assert pr.ci[0] < 0.5 < pr.ci[1] and pr.ci[0] > 0.3


def simulated(n, d, effect, decide, reps=4000, seed=1):
    """The power by simulation, to check the exact sum against."""
    rng = random.Random(seed)
    p01, p10 = (d + effect) / 2, (d - effect) / 2
    hits = 0
    for _ in range(reps):
        u = [rng.random() for _ in range(n)]
        only_b, only_a = sum(x < p01 for x in u), sum(p01 <= x < p01 + p10 for x in u)
        hits += decide(n, only_a, only_b)
    return hits / reps


def test_exact_power_agrees_with_simulation():
    from app.study.paired_stats import shows_better, shows_no_worse

    exact = power_better(200, 0.3, 0.1)
    assert exact == pytest.approx(simulated(200, 0.3, 0.1, shows_better), abs=0.03)
    exact = power_no_worse(400, 0.1, 0.05)
    assert exact == pytest.approx(simulated(400, 0.1, 0.0, lambda n, a, b: shows_no_worse(n, a, b, 0.05)), abs=0.03)


def test_the_issues_numbers_for_the_gpu_study_size():
    """δ = 0.02 at n = 1319 with 15–30% discordant: two equal recipes pass 26–47% of the time; at 64 almost never."""
    assert 0.40 < power_no_worse(1319, 0.15, 0.02) < 0.50
    assert 0.22 < power_no_worse(1319, 0.30, 0.02) < 0.30
    assert power_no_worse(64, 0.2, 0.02) < 0.05
    assert power_better(1319, 0.2, 0.05) > 0.9 > power_better(64, 0.2, 0.05)


def test_smallest_detectable_effect_and_margin_shrink_with_n():
    assert smallest_effect(1319, 0.2) < smallest_effect(64, 0.2)
    assert smallest_margin(1319, 0.2) < smallest_margin(64, 0.2)
    assert power_no_worse(1319, 0.2, smallest_margin(1319, 0.2)) >= 0.8
    assert power_no_worse(1319, 0.2, smallest_margin(1319, 0.2) - 0.005) < 0.8


def test_the_power_sums_use_the_tests_own_rejection_region():
    from app.study.paired_stats import critical_wins, shows_better

    for m in [*range(30), 64, 101, 333]:
        k = critical_wins(m)
        assert all(shows_better(1000, m - w, w) == (w >= k) for w in range(m + 1)), m
