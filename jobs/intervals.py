"""Bootstrap intervals over members, and paired comparisons of two models on the same members.

A member's positives are not independent (the same taste behind each), so the unit
resampled is the member: each resample draws as many members as there are, with
replacement, and recomputes Recall@k and NDCG@k as ratios of the drawn members'
totals. Every model is measured on the same resamples, so the difference of two
models is paired: a member who is easy for both moves both figures together and
does not widen the difference's interval.

>>> from jobs.evaluation import Score
>>> good, bad = Score(), Score()
>>> for member in range(200):
...     for rank in (0, 20):
...         good.count(f"u{member}", rank if member % 4 else 20, k=10)
...         bad.count(f"u{member}", 20, k=10)
>>> runs = Resamples({"good": good, "bad": bad}, resamples=500, seed=1)
>>> interval = runs.interval("good", "recall")
>>> round(interval.estimate, 3), interval.low < interval.estimate < interval.high
(0.375, True)
>>> runs.compare("good", "bad", "recall").p_value < 0.01
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # only for the annotation: evaluation imports this module's users, not the other way
    from jobs.evaluation import Score

Metric = Literal["recall", "ndcg"]
_COLUMN = {"recall": 1, "ndcg": 2}  # Score.members tallies: [positives, hits, dcg]


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class Comparison:
    """``a`` minus ``b`` on the same members: the difference with its interval, a two-sided bootstrap p-value."""

    a: str
    b: str
    metric: Metric
    difference: Interval
    ratio: Interval  # a / b
    p_value: float
    members: int
    resamples: int

    def __str__(self) -> str:
        p = f"p < {1 / self.resamples:.3g}" if self.p_value < 1 / self.resamples else f"p = {self.p_value:.3g}"
        ratio = "no ratio (the baseline found none)" if math.isnan(self.ratio.estimate) else f"ratio {self.ratio}"
        return (f"{self.a} - {self.b}: {self.difference.estimate:+.4f} [{self.difference.low:+.4f}, "
                f"{self.difference.high:+.4f}], {ratio}, {p} (paired over {self.members:,} members)")


class Resamples:
    """The same ``resamples`` bootstrap draws of members for every model in ``scores``."""

    def __init__(self, scores: Mapping[str, Score], resamples: int = 1000, level: float = 0.95,
                 seed: int = 20261130) -> None:
        if resamples < 2 or not 0 < level < 1:
            raise ValueError(f"need resamples >= 2 and 0 < level < 1, got {resamples} and {level}")
        self.resamples, self.level = resamples, level
        members = sorted({member for score in scores.values() for member in score.members})
        self.members = len(members)
        at = {member: n for n, member in enumerate(members)}
        rng = np.random.default_rng(seed)
        # how often each member is drawn in each resample (a multinomial, as drawing members with replacement)
        self.draws = (rng.multinomial(len(members), np.full(len(members), 1 / len(members)), size=resamples)
                      if members else np.zeros((resamples, 0)))
        self.totals: dict[str, np.ndarray] = {}  # model -> members x [positives, hits, dcg]
        for name, score in scores.items():
            totals = np.zeros((len(members), 3))
            for member, tally in score.members.items():
                totals[at[member]] = tally
            self.totals[name] = totals

    def _values(self, name: str, metric: Metric) -> tuple[float, np.ndarray]:
        totals = self.totals[name]
        positives, found = totals[:, 0], totals[:, _COLUMN[metric]]
        estimate = float(found.sum() / positives.sum()) if positives.sum() else 0.0
        drawn = self.draws @ positives
        return estimate, np.divide(self.draws @ found, drawn, out=np.zeros(self.resamples), where=drawn > 0)

    def _interval(self, estimate: float, values: np.ndarray) -> Interval:
        tail = (1 - self.level) / 2 * 100
        if np.isnan(values).all():
            return Interval(estimate, float("nan"), float("nan"))
        low, high = np.nanpercentile(values, [tail, 100 - tail])  # nan: a resample without a ratio
        return Interval(estimate, float(low), float(high))

    def interval(self, name: str, metric: Metric) -> Interval:
        return self._interval(*self._values(name, metric))

    def compare(self, a: str, b: str, metric: Metric) -> Comparison:
        a_estimate, a_values = self._values(a, metric)
        b_estimate, b_values = self._values(b, metric)
        differences = a_values - b_values
        # a resample in which b found nothing has no ratio: left out of the ratio's interval
        ratios = np.divide(a_values, b_values, out=np.full(self.resamples, np.nan), where=b_values > 0)
        # two-sided: how often the resampled difference falls on the other side of zero
        p_value = min(1.0, 2 * min(float(np.mean(differences <= 0)), float(np.mean(differences >= 0))))
        return Comparison(a, b, metric, self._interval(a_estimate - b_estimate, differences),
                          self._interval(a_estimate / b_estimate if b_estimate else float("nan"), ratios),
                          p_value, self.members, self.resamples)
