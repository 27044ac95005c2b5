"""Small statistics for comparing runs over seeds, without SciPy: mean and sample standard
deviation, Student's t quantile, and Welch's t interval for a difference of two means."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Optional


def mean_std(values: list[float]) -> tuple[Optional[float], Optional[float]]:
    """The mean and the sample (n - 1) standard deviation; None where undefined."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_cf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` (> 0, not necessarily whole) degrees of freedom."""
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t, by bisection on the CDF."""
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


@dataclass
class Difference:
    """mean(a) - mean(b) with a ``level`` (e.g. 0.95) Welch t interval."""

    n_a: int
    mean_a: float
    std_a: float
    n_b: int
    mean_b: float
    std_b: float
    diff: float
    low: float
    high: float
    df: Optional[float]  # Welch-Satterthwaite degrees of freedom (None: both spreads are zero)
    level: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def welch_interval(a: list[float], b: list[float], level: float = 0.95) -> Optional[Difference]:
    """Welch's interval for mean(a) - mean(b), which does not assume equal variances; None if a
    group has fewer than two values (no spread to judge noise by)."""
    if len(a) < 2 or len(b) < 2:
        return None
    (mean_a, std_a), (mean_b, std_b) = mean_std(a), mean_std(b)
    assert mean_a is not None and std_a is not None and mean_b is not None and std_b is not None
    va, vb = std_a ** 2 / len(a), std_b ** 2 / len(b)
    diff, se = mean_a - mean_b, math.sqrt(va + vb)
    if se == 0:
        return Difference(len(a), mean_a, std_a, len(b), mean_b, std_b, diff, diff, diff, None, level)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t_quantile(0.5 + level / 2.0, df) * se
    return Difference(len(a), mean_a, std_a, len(b), mean_b, std_b, diff, diff - half, diff + half, df, level)
