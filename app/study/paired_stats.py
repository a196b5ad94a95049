"""The paired statistics of the report, `repro compare` and `repro plan`: one test, one interval, one power. Pure.

Two runs evaluated on the same questions give, per question, a pair of binary outcomes (correct, or
unclosed, …). Only the discordant questions (where the runs differ) carry information about the
difference, so every function here works on the discordant counts:
- test: the exact McNemar test (two-sided binomial test of the discordant split against 1/2);
- interval: the Bonett–Price (2012) adjusted Wald interval of the paired difference (one added to
  each discordant cell), recommended by Fagerland et al. (2014) and, unlike the plain Wald or
  Newcombe's interval, never of zero width when no question is discordant;
- power: exact, summing over the binomial number of discordant questions (n, rate d) and the
  binomial split of those (1/2 + Δ/(2d) on the candidate's side), for the test above ("better") or
  for the interval's bound against a margin ("no worse").
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

Z95 = 1.959964
POWER_LEVEL = 0.80  # below this, an inconclusive check "cannot be decided at this size"


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (A only, B only)."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(only_a, only_b) + 1)) / 2**m
    return min(1.0, 2 * tail)


def bonett_price(n: int, only_a: int, only_b: int, z: float = Z95) -> tuple[float, float]:
    """95% Bonett–Price interval of mean(b) − mean(a) over n paired binary outcomes."""
    pa, pb = (only_a + 1) / (n + 2), (only_b + 1) / (n + 2)
    half = z * math.sqrt((pa + pb - (pb - pa) ** 2) / (n + 2))
    return (max(-1.0, pb - pa - half), min(1.0, pb - pa + half))


@dataclass(frozen=True)
class Paired:
    """The paired summary of two runs' indicator on their shared questions (b is the candidate)."""

    n: int
    only_a: int
    only_b: int
    value_a: float
    value_b: float

    @property
    def discordant(self) -> int:
        return self.only_a + self.only_b

    @property
    def p(self) -> float:
        return mcnemar_exact(self.only_a, self.only_b)

    @property
    def ci(self) -> tuple[float, float]:
        return bonett_price(self.n, self.only_a, self.only_b)

    @property
    def discordance(self) -> float:
        """The share of questions on which the runs differ."""
        return self.discordant / self.n if self.n else 0.0


def paired(a: list[bool], b: list[bool]) -> Paired:
    """Discordant counts and both means of two equally long, item-aligned indicator lists."""
    n = len(a)
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    return Paired(n, only_a, only_b, sum(a) / n if n else 0.0, sum(b) / n if n else 0.0)


def _log_binom(m: int, k: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == m else -math.inf
    return math.lgamma(m + 1) - math.lgamma(k + 1) - math.lgamma(m - k + 1) + k * math.log(p) + (m - k) * math.log1p(-p)


def _power(n: int, d: float, effect: float, first_win) -> float:
    """P(the decision holds) when a question is discordant with probability d and the true paired difference
    b − a is `effect`; `first_win(m)` is the fewest candidate wins among m discordant questions for which it
    holds (both decisions are monotone in the wins). Discordance below |effect| is impossible: d is raised."""
    d = min(1.0, max(d, abs(effect)))
    if n <= 0 or d <= 0.0:
        return 1.0 if first_win(0) == 0 else 0.0
    share_b = 0.5 + effect / (2 * d)
    sd = math.sqrt(n * d * (1 - d))
    lo, hi = max(0, int(n * d - 9 * sd - 2)), min(n, int(n * d + 9 * sd + 2))
    total = 0.0
    for m in range(lo, hi + 1):
        pm = math.exp(_log_binom(n, m, d))
        if pm < 1e-15:
            continue
        total += pm * sum(math.exp(_log_binom(m, k, share_b)) for k in range(first_win(m), m + 1))
    return min(1.0, total)


def _first(m: int, holds) -> int:
    """The smallest k in 0..m where `holds` (monotone in k); m + 1 if none."""
    lo, hi = -1, m + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if holds(mid) else (mid, hi)
    return hi


@functools.lru_cache(maxsize=65536)
def critical_wins(m: int, alpha: float = 0.05) -> int:
    """The fewest candidate wins among m discordant questions that the exact McNemar test finds significant
    (m + 1 if none): the largest losing count j < m − j with 2·P(Bin(m, ½) ≤ j) < α, in floats (power only)."""
    cdf, j_max = 0.0, -1
    for j in range(m + 1):
        if j >= m - j:
            break
        cdf += math.exp(_log_binom(m, j, 0.5))
        if 2 * cdf >= alpha:
            break
        j_max = j
    return m + 1 if j_max < 0 else m - j_max


def shows_better(n: int, only_a: int, only_b: int, alpha: float = 0.05) -> bool:
    """The "better" decision: the exact McNemar test rejects at α, the candidate's side up."""
    return only_b > only_a and mcnemar_exact(only_a, only_b) < alpha


def shows_no_worse(n: int, only_a: int, only_b: int, margin: float) -> bool:
    """The "no worse" decision: the 95% Bonett–Price interval's lower bound lies above −δ."""
    return n > 0 and bonett_price(n, only_a, only_b)[0] > -margin


def power_better(n: int, d: float, effect: float, alpha: float = 0.05) -> float:
    """Power of the exact McNemar test to show a true improvement `effect` (> 0) at n questions, discordance d."""
    return _power(n, d, effect, lambda m: critical_wins(m, alpha))


def power_no_worse(n: int, d: float, margin: float, true_diff: float = 0.0) -> float:
    """Power of the interval to show "no worse than −δ" when the true difference is `true_diff` (default: equal)."""
    return _power(n, d, true_diff, lambda m: _first(m, lambda k: shows_no_worse(n, m - k, k, margin)))


def smallest_effect(n: int, d: float, level: float = POWER_LEVEL, alpha: float = 0.05) -> float | None:
    """The smallest improvement (to 0.005) the test shows with the given power; None if none up to 1."""
    return _smallest(lambda x: power_better(n, d, x, alpha) >= level)


def smallest_margin(n: int, d: float, level: float = POWER_LEVEL) -> float | None:
    """The smallest margin δ (to 0.005) under which two truly equal runs are shown "no worse" with the given power."""
    return _smallest(lambda x: power_no_worse(n, d, x) >= level)


def _smallest(enough) -> float | None:
    """The smallest multiple of 0.005 in (0, 1] where the monotone `enough` holds (bisection on the grid)."""
    lo, hi = 0, 200  # grid steps of 0.005
    if not enough(hi * 0.005):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid * 0.005) else (mid, hi)
    return round(hi * 0.005, 3)
