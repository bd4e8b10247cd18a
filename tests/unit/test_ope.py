"""Off-policy estimates on logged random-policy traffic against the known value of a policy."""

from __future__ import annotations

import random

import pytest

from jobs.exploration.ope import Logged, ips, snips

DAYPARTS = ("morning", "afternoon", "evening", "late_night")
ROWS = ("top_picks", "trending", "continue_watching", "genre")
# planted click rates: each daypart has one row its members click far more often
CLICK_RATE = {(d, r): 0.05 + (0.25 if (DAYPARTS.index(d) == ROWS.index(r)) else 0.0) for d in DAYPARTS for r in ROWS}


def candidate(daypart: str) -> str:
    """A known deterministic policy: the planted favourite in the first two dayparts, trending otherwise."""
    return ROWS[DAYPARTS.index(daypart)] if daypart in DAYPARTS[:2] else "trending"


TRUE_VALUE = sum(CLICK_RATE[(d, candidate(d))] for d in DAYPARTS) / len(DAYPARTS)  # dayparts equally likely


def logged_uniform_traffic(n: int, seed: int) -> list[Logged]:
    """What a uniformly random serving policy logs: each row first with probability 1/4."""
    rng = random.Random(seed)
    logs = []
    for _ in range(n):
        daypart, row = rng.choice(DAYPARTS), rng.choice(ROWS)
        logs.append(Logged(daypart, row, 1 / len(ROWS), float(rng.random() < CLICK_RATE[(daypart, row)])))
    return logs


def target(log: Logged) -> float:
    return 1.0 if log.action == candidate(log.context) else 0.0


def test_both_estimates_cover_the_true_value_of_a_known_policy() -> None:
    logs = logged_uniform_traffic(20_000, seed=1)
    for estimate in (ips(logs, target), snips(logs, target)):
        assert estimate.covers(TRUE_VALUE), (estimate, TRUE_VALUE)
        assert estimate.high - estimate.low < 0.03  # and say something: the interval is narrow
        assert 4_000 < estimate.effective_n < 6_000  # a quarter of the log matches the candidate


def test_the_intervals_cover_about_as_often_as_they_claim() -> None:
    covered = {"ips": 0, "snips": 0}
    runs = 200
    for seed in range(runs):
        logs = logged_uniform_traffic(2_000, seed=100 + seed)
        covered["ips"] += ips(logs, target, confidence=0.9).covers(TRUE_VALUE)
        covered["snips"] += snips(logs, target, confidence=0.9).covers(TRUE_VALUE)
    for name, count in covered.items():
        assert 0.84 <= count / runs <= 0.96, (name, count / runs)


def test_a_worse_policy_is_told_apart_from_a_better_one() -> None:
    logs = logged_uniform_traffic(20_000, seed=2)
    best = snips(logs, lambda log: float(log.action == ROWS[DAYPARTS.index(log.context)]))
    worst = snips(logs, lambda log: float(log.action == ROWS[(DAYPARTS.index(log.context) + 1) % 4]))
    assert worst.high < best.low and best.covers(0.30) and worst.covers(0.05)


def test_bad_logs_are_refused_with_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="propensity must be in"):
        ips([Logged("evening", "trending", 0.0, 1.0)], target)
    with pytest.raises(ValueError, match="at least one"):
        snips([], target)
    with pytest.raises(ValueError, match="target policy's probability"):
        ips([Logged("evening", "trending", 0.5, 1.0)], lambda log: 2.0)
