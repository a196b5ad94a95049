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

With k ≥ 2 training seeds per arm (seed s of both arms shares its data subset and order, so seeds
pair), the unit is the recipe, not one checkpoint: `seed_paired` takes the k × n table of paired
differences D[s, i] = b − a and treats seeds and questions as crossed random effects (the two-way
random-effects ANOVA without replication; Owen 2007 "The pigeonhole bootstrap", Bouthillier et al. 2021
"Accounting for variance in machine learning benchmarks"). The mean difference's variance is
σ²_seed/k + σ²_item/n + σ²_resid/(nk), each component from its mean square and truncated at 0; the
interval and test are Student t with Satterthwaite's degrees of freedom; power is Φ(effect/se − t₀.₉₇₅)
at the observed standard error and degrees of freedom.
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


# --- items × seeds ---------------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta (Lentz; Numerical Recipes §6.4)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d, c = 1 + num * d, 1 + num / c
            d, c = 1 / (d if abs(d) > tiny else tiny), c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-14:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta I_x(a, b)."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with df degrees of freedom (df may be fractional)."""
    both_tails = _betai(df / 2, 0.5, df / (df + t * t))
    return both_tails / 2 if t >= 0 else 1 - both_tails / 2


def t_quantile(q: float, df: float) -> float:
    """The t with P(T ≤ t) = q (bisection on t_sf)."""
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 1 - t_sf(mid, df) < q else (lo, mid)
    return (lo + hi) / 2


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


@dataclass(frozen=True)
class SeedPaired:
    """The items × seeds summary of two arms' indicator over k paired seeds and n shared questions."""

    n: int
    k: int
    value_a: float  # mean over seeds and questions
    value_b: float
    se: float  # standard error of value_b − value_a (crossed random effects)
    df: float  # Satterthwaite degrees of freedom
    seed_diffs: tuple[float, ...]  # b − a per seed: the seed-to-seed spread of the difference
    discordance: float  # mean share of questions on which the paired seeds differ

    @property
    def diff(self) -> float:
        return self.value_b - self.value_a

    @property
    def p(self) -> float:
        return min(1.0, 2 * t_sf(abs(self.diff) / self.se, self.df))

    @property
    def ci(self) -> tuple[float, float]:
        half = t_quantile(0.975, self.df) * self.se
        return (max(-1.0, self.diff - half), min(1.0, self.diff + half))


def seed_paired(a: list[list[bool]], b: list[list[bool]]) -> SeedPaired:
    """Items × seeds summary of k ≥ 2 paired seeds (a[s], b[s] item-aligned lists of one length n).

    When no question differs on any seed, the variance is floored at Bonett–Price's (one added
    discordant question each way over the n·k pairs), so the interval never has zero width."""
    k, n = len(a), len(a[0])
    d = [[int(y) - int(x) for x, y in zip(sa, sb)] for sa, sb in zip(a, b)]
    grand = sum(map(sum, d)) / (n * k)
    seed_mean = [sum(row) / n for row in d]
    item_mean = [sum(d[s][i] for s in range(k)) / k for i in range(n)]
    ms_s = n * sum((m - grand) ** 2 for m in seed_mean) / (k - 1)
    ms_i = k * sum((m - grand) ** 2 for m in item_mean) / (n - 1) if n > 1 else 0.0
    resid = sum((d[s][i] - seed_mean[s] - item_mean[i] + grand) ** 2 for s in range(k) for i in range(n))
    ms_e = resid / ((k - 1) * (n - 1)) if n > 1 else 0.0
    use_s, use_i = ms_s > ms_e, ms_i > ms_e  # a component whose mean square is below the residual's is 0
    terms = [(ms_s, k - 1, use_s), (ms_i, n - 1, use_i), (ms_e, (k - 1) * (n - 1), 1 - use_s - use_i)]
    var = sum(c * ms for ms, _, c in terms) / (n * k)
    df_denom = sum((c * ms) ** 2 / dof for ms, dof, c in terms if c and dof)
    floor = 2 / (n * k + 2) ** 2
    var, df = (var, var**2 * (n * k) ** 2 / df_denom) if var > floor and df_denom else (floor, float(n * k - 1))
    mean = lambda rows: sum(map(sum, rows)) / (n * k)  # noqa: E731
    discordance = sum(x != 0 for row in d for x in row) / (n * k)
    return SeedPaired(n, k, mean(a), mean(b), math.sqrt(var), max(1.0, df), tuple(seed_mean), discordance)


def seed_power_better(se: float, df: float, effect: float) -> float:
    """Power of the items × seeds t test to show `effect` at standard error `se` (normal shift of the t
    critical value: Φ(effect/se − t₀.₉₇₅,df))."""
    return normal_cdf(effect / se - t_quantile(0.975, df)) if se > 0 else 1.0


def seed_power_no_worse(se: float, df: float, margin: float) -> float:
    """Power that two truly equal recipes are shown "no worse than −δ" (same approximation)."""
    return normal_cdf(margin / se - t_quantile(0.975, df)) if se > 0 else 1.0
