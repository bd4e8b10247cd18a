"""An experiment's statistics, from each variant's sufficient sums.

Every metric is a ratio of two per-member totals, ``x / y``: click-through rate is a
member's clicks over their impressions; watch minutes per member is minutes over 1
(``y = 1``). A variant is then summed up by :class:`Totals` (n and the sums of x, y,
their squares and products, and of ``pre``, the member's metric in the 14 days before
their first exposure), which the metrics job writes per experiment, variant and day.
From those alone:

- the variant's **estimate** ``sum x / sum y`` and its variance by the **delta method**
  (a member's clicks and impressions move together, so their ratio's variance is not
  the binomial one);
- **CUPED**: the estimate less ``theta * (the variant's mean pre - everyone's mean pre)``,
  ``theta`` pooled over the variants. ``pre`` was fixed before assignment, so this
  moves no estimate in expectation and removes the share ``corr(metric, pre)^2`` of
  its variance;
- the **relative lift** of a treatment over control, ``b / a - 1``, with its interval
  (delta method again) and a fixed-horizon two-sided p-value;
- an **always-valid p-value** (a mixture sequential probability ratio test, normal
  mixture over the lift): it may be read every day, and the chance that it ever drops
  below alpha in an A/A test stays below alpha. Report it as the running minimum over
  the looks (:func:`running_min`);
- a **sample-ratio-mismatch** test: a chi-square test of the variants' member counts
  against their weights. A mismatch means the assignment or the logging is broken and
  no lift should be trusted.

>>> control = Totals(n=4, sum_x=2, sum_y=40, sum_xx=2, sum_yy=400, sum_xy=20)
>>> round(control.estimate(), 3)
0.05
>>> srm_p_value([5000, 5000], [1, 1]) > 0.99, srm_p_value([5000, 4500], [1, 1]) < 1e-5
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike

NORMAL = NormalDist()
DEFAULT_TAU = 0.05  # the sequential test's mixture: lifts of about +-5% are the ones it is most sensitive to


@dataclass(frozen=True)
class Totals:
    """A variant's sufficient sums over its members (``pre``: the metric before first exposure)."""

    n: int = 0
    sum_x: float = 0.0
    sum_y: float = 0.0
    sum_xx: float = 0.0
    sum_yy: float = 0.0
    sum_xy: float = 0.0
    sum_pre: float = 0.0
    sum_pre2: float = 0.0
    sum_pre_x: float = 0.0
    sum_pre_y: float = 0.0

    @classmethod
    def of(cls, x: ArrayLike, y: ArrayLike | None = None, pre: ArrayLike | None = None) -> Totals:
        """The sums over members whose totals are ``x``, ``y`` (default 1 each) and ``pre`` (default 0).

        >>> Totals.of([1, 0, 2], [10, 5, 20]).estimate()
        0.08571428571428572
        """
        xs = np.asarray(x, dtype=float)
        ys = np.ones_like(xs) if y is None else np.asarray(y, dtype=float)
        ps = np.zeros_like(xs) if pre is None else np.asarray(pre, dtype=float)
        return cls(len(xs), float(xs.sum()), float(ys.sum()), float(xs @ xs), float(ys @ ys), float(xs @ ys),
                   float(ps.sum()), float(ps @ ps), float(ps @ xs), float(ps @ ys))

    def __add__(self, other: Totals) -> Totals:
        return Totals(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def has_pre(self) -> bool:
        """Whether any member had pre-exposure data to adjust with."""
        return self.n > 1 and self.sum_pre2 - self.sum_pre * self.sum_pre / self.n > 0

    def estimate(self) -> float:
        """``sum x / sum y`` (NaN without any y)."""
        return self.sum_x / self.sum_y if self.sum_y > 0 else math.nan

    def _cov(self, sum_ab: float, sum_a: float, sum_b: float) -> float:
        return (sum_ab - sum_a * sum_b / self.n) / (self.n - 1)

    def linearized(self) -> tuple[float, float, float]:
        """The variance of the estimate's per-member linearization ``(x - R y) / mean y``, its covariance with
        ``pre``, and ``pre``'s variance (the delta method's ingredients)."""
        if self.n < 2 or self.sum_y <= 0:
            return math.nan, math.nan, math.nan
        ratio, mean_y = self.estimate(), self.sum_y / self.n
        var_x = self._cov(self.sum_xx, self.sum_x, self.sum_x)
        var_y = self._cov(self.sum_yy, self.sum_y, self.sum_y)
        cov_xy = self._cov(self.sum_xy, self.sum_x, self.sum_y)
        var_l = max((var_x - 2 * ratio * cov_xy + ratio * ratio * var_y) / (mean_y * mean_y), 0.0)
        cov_lp = (self._cov(self.sum_pre_x, self.sum_pre, self.sum_x)
                  - ratio * self._cov(self.sum_pre_y, self.sum_pre, self.sum_y)) / mean_y
        var_p = max(self._cov(self.sum_pre2, self.sum_pre, self.sum_pre), 0.0)
        return var_l, cov_lp, var_p


@dataclass(frozen=True)
class Estimate:
    """A variant's metric: the value and the variance of that value."""

    value: float
    variance: float


def estimates(arms: Sequence[Totals], cuped: bool = True) -> list[Estimate]:
    """Each arm's estimate and its variance; CUPED-adjusted when ``cuped`` and pre-exposure data exist.

    ``theta`` is pooled over the arms (weighted by their degrees of freedom), and every arm is
    moved toward everyone's mean ``pre``, so arms that drew members more active before the
    experiment are not credited for it.
    """
    parts = [arm.linearized() for arm in arms]
    adjust = cuped and all(arm.has_pre for arm in arms)
    theta = 0.0
    if adjust:
        cov = sum((arm.n - 1) * cov_lp for arm, (_, cov_lp, _) in zip(arms, parts, strict=True))
        var = sum((arm.n - 1) * var_p for arm, (_, _, var_p) in zip(arms, parts, strict=True))
        theta = cov / var if var > 0 else 0.0
    everyone_pre = sum(arm.sum_pre for arm in arms) / max(sum(arm.n for arm in arms), 1)
    out = []
    for arm, (var_l, cov_lp, var_p) in zip(arms, parts, strict=True):
        if arm.n < 2 or math.isnan(var_l):
            out.append(Estimate(arm.estimate(), math.nan))
            continue
        value, variance = arm.estimate(), var_l
        if adjust:
            value -= theta * (arm.sum_pre / arm.n - everyone_pre)
            variance = max(var_l - 2 * theta * cov_lp + theta * theta * var_p, 0.0)
        out.append(Estimate(value, variance / arm.n))
    return out


@dataclass(frozen=True)
class Lift:
    """A treatment's relative lift over control: ``b / a - 1``, its interval and p-values."""

    control: Estimate
    treatment: Estimate
    lift: float
    std_error: float
    low: float
    high: float
    p_value: float  # fixed horizon, two-sided: valid only if looked at once, at the planned end
    sequential_p_value: float  # valid at any look; take the running minimum over looks

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def relative_lift(control: Estimate, treatment: Estimate, confidence: float = 0.95,
                  tau: float = DEFAULT_TAU) -> Lift:
    """The lift of ``treatment`` over ``control`` by the delta method.

    >>> a, b = Estimate(0.050, 0.0010 ** 2), Estimate(0.055, 0.0010 ** 2)
    >>> lift = relative_lift(a, b)
    >>> round(lift.lift, 3), lift.significant, lift.p_value < 0.001
    (0.1, True, True)
    """
    a, b = control.value, treatment.value
    if not (a > 0 and math.isfinite(b) and math.isfinite(control.variance) and math.isfinite(treatment.variance)):
        nan = math.nan
        return Lift(control, treatment, nan, nan, nan, nan, nan, nan)
    lift = b / a - 1
    variance = treatment.variance / (a * a) + b * b * control.variance / a ** 4
    error = math.sqrt(variance)
    z = NORMAL.inv_cdf(0.5 + confidence / 2)
    p_value = 2 * (1 - NORMAL.cdf(abs(lift) / error)) if error > 0 else (0.0 if lift else 1.0)
    return Lift(control, treatment, lift, error, lift - z * error, lift + z * error, p_value,
                msprt_p_value(lift, variance, tau))


def msprt_p_value(estimate: float, variance: float, tau: float = DEFAULT_TAU) -> float:
    """One look's p-value of the mixture sequential probability ratio test of "no effect".

    The likelihood ratio of an effect drawn from ``N(0, tau^2)`` against none, for an
    estimate that is normal with ``variance``; its reciprocal, capped at 1, is a p-value
    that stays valid however often it is looked at (Johari et al., "Peeking at A/B
    tests", 2017) when the running minimum over looks is reported.

    >>> msprt_p_value(0.0, 0.01 ** 2)
    1.0
    >>> msprt_p_value(0.2, 0.01 ** 2) < 1e-6
    True
    """
    if not variance > 0:
        return math.nan
    total = variance + tau * tau
    log_ratio = 0.5 * math.log(variance / total) + estimate * estimate * tau * tau / (2 * variance * total)
    return 1.0 if log_ratio <= 0 else math.exp(-log_ratio)


def running_min(p_values: Sequence[float]) -> list[float]:
    """The always-valid p-value after each look: the smallest so far (NaN looks are skipped)."""
    out, best = [], 1.0
    for p in p_values:
        if not math.isnan(p):
            best = min(best, p)
        out.append(best)
    return out


def srm_p_value(counts: Sequence[int], weights: Sequence[float]) -> float:
    """Sample-ratio mismatch: the chi-square test's p-value of members per variant against the weights."""
    total, weight = sum(counts), sum(weights)
    if total == 0 or len(counts) < 2:
        return 1.0
    chi2 = sum((c - total * w / weight) ** 2 / (total * w / weight) for c, w in zip(counts, weights, strict=True))
    return chi2_survival(chi2, len(counts) - 1)


def chi2_survival(statistic: float, dof: int) -> float:
    """P(chi-square with ``dof`` degrees of freedom > ``statistic``): the regularized upper gamma function.

    >>> round(chi2_survival(3.841458820694124, 1), 6), round(chi2_survival(5.991464547107979, 2), 6)
    (0.05, 0.05)
    """
    if statistic <= 0:
        return 1.0
    return _upper_gamma(dof / 2, statistic / 2)


def _upper_gamma(a: float, x: float) -> float:
    """Q(a, x), by its series below ``a + 1`` and its continued fraction above (Numerical Recipes 6.2)."""
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        for k in range(1, 1000):
            term *= x / (a + k)
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b, c, d = x + 1 - a, 1 / tiny, 1 / (x + 1 - a)
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return math.exp(log_front) * h
