"""Off-policy evaluation: how a candidate policy would have done, from what the serving policy logged.

Every shown row and item carries the probability with which the serving policy
chose it (its propensity, in the presentation token). Reweighting each logged
reward by ``target probability / logged propensity`` gives an unbiased estimate of
the candidate's mean reward (inverse propensity scoring, IPS); dividing by the sum
of the weights instead of their count (self-normalized IPS, SNIPS) trades a little
bias for much less variance. Both come with a normal-approximation confidence
interval (SNIPS's by the delta method) and the effective sample size, which says
how much of the log the candidate can actually learn from.

>>> logs = [Logged("evening", "drama", 0.5, 1.0), Logged("evening", "comedy", 0.5, 0.0),
...         Logged("morning", "drama", 0.5, 0.0), Logged("morning", "comedy", 0.5, 1.0)]
>>> always_drama = lambda log: 1.0 if log.action == "drama" else 0.0
>>> ips(logs, always_drama).value, snips(logs, always_drama).value
(0.5, 0.5)
>>> by_daypart = lambda log: float(log.action == ("drama" if log.context == "evening" else "comedy"))
>>> ips(logs, by_daypart).value
1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any


@dataclass(frozen=True)
class Logged:
    """One logged decision: what the policy saw, what it did, with what probability, and what came of it."""

    context: Any
    action: Any
    propensity: float  # the serving (logging) policy's probability of ``action`` in ``context``; > 0
    reward: float


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int
    effective_n: float  # (sum w)^2 / sum w^2: how many logged decisions the candidate effectively learns from

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


TargetProbability = Callable[[Logged], float]  # the candidate policy's probability of the logged action


def _weights(logs: Sequence[Logged], target: TargetProbability) -> tuple[list[float], list[float]]:
    if not logs:
        raise ValueError("off-policy evaluation needs at least one logged decision")
    weights, rewards = [], []
    for log in logs:
        if not 0 < log.propensity <= 1:
            raise ValueError(f"a logged propensity must be in (0, 1], got {log.propensity} for {log.action!r}")
        probability = target(log)
        if not 0 <= probability <= 1:
            raise ValueError(f"the target policy's probability must be in [0, 1], got {probability}")
        weights.append(probability / log.propensity)
        rewards.append(log.reward)
    return weights, rewards


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _effective_n(weights: list[float]) -> float:
    squares = sum(w * w for w in weights)
    return sum(weights) ** 2 / squares if squares > 0 else 0.0


def ips(logs: Sequence[Logged], target: TargetProbability, confidence: float = 0.95) -> Estimate:
    """Inverse propensity scoring: mean of w x r, unbiased when every propensity is right and > 0."""
    weights, rewards = _weights(logs, target)
    n = len(weights)
    terms = [w * r for w, r in zip(weights, rewards, strict=True)]
    value = sum(terms) / n
    variance = sum((t - value) ** 2 for t in terms) / max(n - 1, 1)
    half = _z(confidence) * math.sqrt(variance / n)
    return Estimate(value, value - half, value + half, n, _effective_n(weights))


def snips(logs: Sequence[Logged], target: TargetProbability, confidence: float = 0.95) -> Estimate:
    """Self-normalized IPS: sum(w x r) / sum(w); its interval by the delta method."""
    weights, rewards = _weights(logs, target)
    n, total = len(weights), sum(weights)
    if total <= 0:  # the candidate never takes a logged action: the log says nothing about it
        return Estimate(math.nan, -math.inf, math.inf, n, 0.0)
    value = sum(w * r for w, r in zip(weights, rewards, strict=True)) / total
    mean_weight = total / n
    variance = sum((w * (r - value)) ** 2 for w, r in zip(weights, rewards, strict=True)) / n / mean_weight ** 2
    half = _z(confidence) * math.sqrt(variance / n)
    return Estimate(value, value - half, value + half, n, _effective_n(weights))
