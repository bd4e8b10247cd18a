"""Bootstrap intervals over members: they cover the truth at about their level, and pairing pays off."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.evaluation import Score
from jobs.intervals import Resamples


def members_with_hit_rate(rng: np.random.Generator, rates: np.ndarray, positives: int = 5,
                          lift: float = 0.0) -> tuple[Score, Score]:
    """Two models on the same positives: one with each member's hit rate, one ``lift`` better (same draws)."""
    score, lifted = Score(), Score()
    for member, rate in enumerate(rates):
        for draw in rng.random(positives):
            score.count(f"u{member}", 0 if draw < rate else None, k=10)
            lifted.count(f"u{member}", 0 if draw < rate + lift else None, k=10)
    return score, lifted


def test_intervals_cover_the_true_recall_at_about_their_level() -> None:
    rng = np.random.default_rng(3)
    covered, repetitions = 0, 200
    for repetition in range(repetitions):
        rates = rng.beta(2, 5, size=150)  # members differ: their positives are not independent draws
        score, _ = members_with_hit_rate(rng, rates)
        interval = Resamples({"m": score}, resamples=300, seed=repetition).interval("m", "recall")
        covered += interval.low <= 2 / 7 <= interval.high  # the mean of Beta(2, 5)
    assert 0.88 <= covered / repetitions <= 0.99


def test_a_paired_difference_is_narrower_than_the_two_intervals_suggest() -> None:
    rng = np.random.default_rng(5)
    rates = rng.beta(2, 5, size=300)
    worse, better = members_with_hit_rate(rng, rates, lift=0.03)
    runs = Resamples({"better": better, "worse": worse}, resamples=1000)
    a, b = runs.interval("better", "recall"), runs.interval("worse", "recall")
    comparison = runs.compare("better", "worse", "recall")
    assert a.low < b.high  # the intervals overlap ...
    assert comparison.difference.low > 0 and comparison.p_value < 0.05  # ... yet the paired difference is clear
    assert comparison.difference.high - comparison.difference.low < (a.high - a.low) + (b.high - b.low)


def test_a_model_without_positives_gets_no_ratio_and_bad_settings_are_named() -> None:
    found, empty = Score(), Score()
    found.count("u1", 0, k=10)
    empty.count("u1", None, k=10)
    comparison = Resamples({"found": found, "empty": empty}, resamples=50).compare("found", "empty", "recall")
    assert np.isnan(comparison.ratio.estimate) and comparison.difference.estimate == 1.0
    assert "no ratio (the baseline found none)" in str(comparison) and "nan" not in str(comparison)
    with pytest.raises(ValueError, match="resamples >= 2"):
        Resamples({}, resamples=1)
