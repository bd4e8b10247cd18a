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
from collections.abc import Callable, Mapping, Sequence
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


# -- the logged outcomes of the rows job (topic impression-outcomes) ------------------------------------

ROW_KIND_COUNT = 5  # the kinds the row-order policy orders (jobs.exploration.presentation.ROW_KINDS)


def row_decisions(records: Sequence[Mapping[str, Any]]) -> list[Logged]:
    """One logged decision per row impression a logged policy served: which kind at that position.

    The reward is whether anything in the row was clicked or played; the context is the
    member's bucket, weekday and the row's position. Impressions without a token are skipped.
    """
    rows: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        if record["policy_version"]:
            rows.setdefault(record["impression_id"], []).append(record)
    out = []
    for shown in rows.values():
        first = shown[0]
        if first["row_id"].partition(":")[0] == "continue_watching":
            continue  # not ordered by the policy
        out.append(Logged((first["context"], first["weekday"], first["row_position"]),
                          first["row_id"].partition(":")[0], first["row_propensity"],
                          float(any(r["clicked"] or r["played"] for r in shown))))
    return out


def item_decisions(records: Sequence[Mapping[str, Any]]) -> list[Logged]:
    """One logged decision per shown item (its title and artwork in that slot); the reward is a click."""
    return [Logged((r["context"], r["weekday"], r["explored"]), (r["title_id"], r["artwork_id"]),
                   r["item_propensity"], float(r["clicked"])) for r in records if r["policy_version"]]


@dataclass(frozen=True)
class PolicyReport:
    decisions: str  # "row" or "item"
    candidate: str
    ips: Estimate
    snips: Estimate


def evaluate_logged(records: Sequence[Mapping[str, Any]], confidence: float = 0.95) -> list[PolicyReport]:
    """Off-policy estimates, from the logged outcomes, of the candidates one would consider next.

    * rows, **as served**: the logging policy itself (target = logged propensity), the baseline;
    * rows, **greedy order**: no exploration (a row's logged propensity is at least 1/2 exactly
      when it sat at its greedy position, for any epsilon <= 1/2);
    * rows, **uniform order**: every kind equally likely at every position;
    * items, **as served** and **without exploration** (greedy slots and artwork only).
    """
    reports = []
    rows, items = row_decisions(records), item_decisions(records)
    row_candidates: list[tuple[str, TargetProbability]] = [
        ("as served", lambda log: log.propensity),
        ("greedy order", lambda log: 1.0 if log.propensity >= 0.5 else 0.0),
        ("uniform order", lambda log: 1.0 / ROW_KIND_COUNT)]
    item_candidates: list[tuple[str, TargetProbability]] = [
        ("as served", lambda log: log.propensity),
        ("without exploration", lambda log: 0.0 if log.context[2] else 1.0)]
    for kind, logs, candidates in (("row", rows, row_candidates), ("item", items, item_candidates)):
        if not logs:
            continue
        for name, target in candidates:
            reports.append(PolicyReport(kind, name, ips(logs, target, confidence), snips(logs, target, confidence)))
    return reports


def format_reports(reports: Sequence[PolicyReport], records: int) -> str:
    if not reports:
        return f"off-policy evaluation: none of the {records} logged outcomes came from a logged policy (no token)"
    lines = [f"off-policy evaluation over {records} logged outcomes (95% intervals; reward: row clicked or "
             "played / item clicked)", "",
             f"{'decisions':<9} {'candidate':<20} {'IPS':>24} {'SNIPS':>24} {'effective n':>12}"]
    for r in reports:
        lines.append(f"{r.decisions:<9} {r.candidate:<20} "
                     f"{r.ips.value:>7.4f} [{r.ips.low:.4f}, {r.ips.high:.4f}] "
                     f"{r.snips.value:>7.4f} [{r.snips.low:.4f}, {r.snips.high:.4f}] {r.snips.effective_n:>12.0f}")
    return "\n".join(lines)
