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


def logged_outcomes(n: int, seed: int, epsilon: float = 0.2) -> list[dict[str, object]]:
    """What the rows job logs under an epsilon-greedy row order: one row per impression at position 1."""
    rng = random.Random(seed)
    kinds = ("top_picks", "because_you_watched", "new_for_you", "trending", "genre")
    click = {"trending": 0.3, "top_picks": 0.1, "because_you_watched": 0.1, "new_for_you": 0.1, "genre": 0.1}
    records: list[dict[str, object]] = []
    for i in range(n):
        explored = rng.random() < epsilon
        kind = rng.choice(kinds) if explored else "trending"  # the greedy order puts trending at position 1
        propensity = epsilon / 5 + (1 - epsilon) * (kind == "trending")
        clicked = rng.random() < click[kind]
        for slot in range(2):
            exploring_slot = slot == 1 and rng.random() < 0.1
            records.append({
                "impression_id": f"imp-{i}", "row_id": kind if kind != "genre" else "genre:Drama", "row_position": 1,
                "title_id": f"t{slot}", "artwork_id": "a", "clicked": clicked and slot == 0, "played": False,
                "policy_version": "rows-eg-1+art-eg-1", "row_propensity": propensity,
                "item_propensity": (0.1 if exploring_slot else 0.9) * propensity, "explored": exploring_slot,
                "context": "evening:tv", "weekday": "mon", "shown_ms": i})
    return records


def test_the_logged_outcomes_estimate_the_greedy_and_uniform_row_orders() -> None:
    from jobs.exploration.ope import evaluate_logged, format_reports, row_decisions

    records = logged_outcomes(30_000, seed=4)
    assert len(row_decisions(records)) == 30_000
    reports = {(r.decisions, r.candidate): r for r in evaluate_logged(records)}
    greedy, uniform = reports[("row", "greedy order")], reports[("row", "uniform order")]
    assert greedy.snips.covers(0.3) and greedy.ips.covers(0.3)  # trending always at position 1
    assert uniform.snips.covers((0.3 + 4 * 0.1) / 5) and uniform.ips.covers((0.3 + 4 * 0.1) / 5)
    served = reports[("row", "as served")]
    assert served.ips.effective_n == 30_000  # the logging policy itself: every decision counts fully
    assert uniform.snips.effective_n < greedy.snips.effective_n  # the log says less about a policy far from it
    text = format_reports(list(reports.values()), len(records))
    assert "greedy order" in text and "without exploration" in text


def test_outcomes_without_a_token_are_not_logged_decisions() -> None:
    from jobs.exploration.ope import evaluate_logged, format_reports

    records = logged_outcomes(10, seed=1)
    for record in records:
        record["policy_version"] = ""
    assert evaluate_logged(records) == []
    assert "none of the 20 logged outcomes" in format_reports([], 20)
