"""The report's statistics on simulated experiments whose truth is known (numpy only, no services)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jobs.experiments.stats import (
    Estimate,
    Totals,
    chi2_survival,
    estimates,
    msprt_p_value,
    relative_lift,
    running_min,
    srm_p_value,
)

CTR = 0.05


def members(rng: np.random.Generator, count: int, ctr: float) -> tuple[np.ndarray, np.ndarray]:
    """Clicks and impressions of ``count`` members: 1-10+ impressions each, click propensities spread around
    ``ctr`` (Beta, so members differ and their clicks are not binomial over the arm)."""
    impressions = 1 + rng.poisson(3.0, count)
    propensity = rng.beta(2.0, 38.0, count) * (ctr / CTR)
    return rng.binomial(impressions, np.minimum(propensity, 1.0)).astype(float), impressions.astype(float)


def test_totals_match_the_members_they_sum() -> None:
    rng = np.random.default_rng(0)
    clicks, impressions = members(rng, 1000, CTR)
    whole = Totals.of(clicks, impressions)
    halves = Totals.of(clicks[:400], impressions[:400]) + Totals.of(clicks[400:], impressions[400:])
    assert whole.n == halves.n == 1000
    assert whole.estimate() == pytest.approx(clicks.sum() / impressions.sum())
    assert halves.sum_xy == pytest.approx(whole.sum_xy) and halves.sum_yy == pytest.approx(whole.sum_yy)


def test_delta_method_variance_matches_the_spread_of_repeated_experiments() -> None:
    rng = np.random.default_rng(1)
    values, variances = [], []
    for _ in range(300):
        (estimate,) = estimates([Totals.of(*members(rng, 2000, CTR))])
        values.append(estimate.value)
        variances.append(estimate.variance)
    assert np.var(values, ddof=1) == pytest.approx(np.mean(variances), rel=0.2)
    naive = CTR * (1 - CTR) / (2000 * 4.0)  # binomial over impressions: ignores that members differ
    assert np.mean(variances) > naive


def test_planted_effect_right_sign_and_interval_covers_the_truth() -> None:
    """20,000 members per arm, CTR 5%, a variant with a true +10%: 200 seeds."""
    right_sign = covered = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        control = Totals.of(*members(rng, 20_000, CTR))
        treatment = Totals.of(*members(rng, 20_000, CTR * 1.10))
        lift = relative_lift(*estimates([control, treatment]))
        right_sign += lift.lift > 0
        covered += lift.low <= 0.10 <= lift.high
    assert right_sign / 200 >= 0.80
    assert 0.92 <= covered / 200 <= 0.98, covered


def daily_totals(day: np.ndarray, clicks: np.ndarray, impressions: np.ndarray, days: int) -> list[Totals]:
    """Cumulative totals at the end of each day, members counted from the day they entered."""
    def per_day(values: np.ndarray) -> np.ndarray:
        return np.cumsum(np.bincount(day, weights=values, minlength=days))

    n = np.cumsum(np.bincount(day, minlength=days))
    sums = [per_day(v) for v in (clicks, impressions, clicks * clicks, impressions * impressions,
                                  clicks * impressions)]
    return [Totals(int(n[d]), *(float(s[d]) for s in sums)) for d in range(days)]


def test_aa_false_positives_fixed_horizon_and_always_valid_when_read_daily() -> None:
    """1,000 A/A experiments, 14 days, 300 new members per arm a day; read once at the end, and every day."""
    rng = np.random.default_rng(2026)
    days, per_day = 14, 300
    day = np.repeat(np.arange(days), per_day)
    fixed = always_valid = 0
    for _ in range(1000):
        arms = [daily_totals(day, *members(rng, days * per_day, CTR), days) for _ in range(2)]
        looks = [relative_lift(*estimates([arms[0][d], arms[1][d]])) for d in range(days)]
        fixed += looks[-1].p_value < 0.05
        always_valid += running_min([look.sequential_p_value for look in looks])[-1] < 0.05
    assert 0.03 <= fixed / 1000 <= 0.07, fixed
    assert always_valid / 1000 <= 0.05, always_valid


def test_daily_peeking_at_the_fixed_horizon_p_value_would_inflate_false_positives() -> None:
    """Why the report shows the sequential p-value: stopping at the first fixed-horizon p < 0.05 in 14 daily
    looks is wrong far more often than 5% (the premise of the test above)."""
    rng = np.random.default_rng(7)
    days, per_day = 14, 300
    day = np.repeat(np.arange(days), per_day)
    peeked = 0
    for _ in range(300):
        arms = [daily_totals(day, *members(rng, days * per_day, CTR), days) for _ in range(2)]
        peeked += any(relative_lift(*estimates([arms[0][d], arms[1][d]])).p_value < 0.05 for d in range(days))
    assert peeked / 300 > 0.10


def test_sequential_test_finds_a_real_effect() -> None:
    rng = np.random.default_rng(3)
    control = Totals.of(*members(rng, 20_000, CTR))
    treatment = Totals.of(*members(rng, 20_000, CTR * 1.10))
    assert relative_lift(*estimates([control, treatment])).sequential_p_value < 0.01


def test_srm_flags_a_variant_that_drops_five_percent_of_exposures() -> None:
    rng = np.random.default_rng(4)
    assigned = rng.binomial(40_000, 0.5)
    counts = [assigned, int((40_000 - assigned) * 0.95)]  # the second variant's logging loses 5%
    assert srm_p_value(counts, [1, 1]) < 0.001
    assert srm_p_value([assigned, 40_000 - assigned], [1, 1]) > 0.001
    assert srm_p_value([2_000, 6_000], [1, 3]) == pytest.approx(1.0)


def test_chi2_survival_matches_known_quantiles() -> None:
    # chi-square critical values (dof, 0.001 quantile of the upper tail)
    for dof, critical in ((1, 10.827566), (2, 13.815511), (3, 16.266236), (10, 29.588298)):
        assert chi2_survival(critical, dof) == pytest.approx(0.001, rel=1e-4)
    assert chi2_survival(0.0, 3) == 1.0
    assert chi2_survival(1e4, 2) == pytest.approx(0.0, abs=1e-300)


def test_cuped_shrinks_the_ctr_interval_as_the_planted_correlation_says() -> None:
    """Pre-exposure data correlated 0.5 with the metric: the interval narrows to sqrt(1 - 0.5^2) = 0.87."""
    rng = np.random.default_rng(5)
    arms = []
    for _ in range(2):
        impressions = 1.0 + rng.poisson(19.0, 20_000)
        post, pre = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], 20_000).T
        # clicks by their normal approximation, so the planted correlation is the one the estimator sees
        clicks = CTR * impressions + np.sqrt(CTR * (1 - CTR) * impressions) * post
        arms.append(Totals.of(clicks, impressions, pre=3.0 + pre))
    plain = relative_lift(*estimates(arms, cuped=False))
    adjusted = relative_lift(*estimates(arms, cuped=True))
    ratio = (adjusted.high - adjusted.low) / (plain.high - plain.low)
    assert abs(ratio - 0.87) <= 0.05, ratio


def test_cuped_keeps_the_estimate_unbiased_when_arms_differ_before_exposure() -> None:
    """An arm that happened to draw more active members is moved back; the true lift (zero) stays covered."""
    rng = np.random.default_rng(6)
    arms = []
    for shift in (0.0, 0.3):
        pre = rng.normal(shift, 1.0, 20_000)
        clicks = 1.0 + 0.5 * pre + rng.normal(0, 0.8, 20_000)
        arms.append(Totals.of(clicks, pre=pre))
    plain = relative_lift(*estimates(arms, cuped=False))
    adjusted = relative_lift(*estimates(arms, cuped=True))
    assert plain.low > 0  # the imbalance alone looks like an effect
    assert adjusted.low <= 0 <= adjusted.high


def test_undefined_inputs_give_nan_not_an_exception() -> None:
    empty = relative_lift(Estimate(0.0, 0.0), Estimate(0.1, 0.01))
    assert math.isnan(empty.lift) and not empty.significant
    assert math.isnan(estimates([Totals()])[0].variance)
    assert math.isnan(msprt_p_value(0.1, 0.0))
    assert running_min([0.5, math.nan, 0.2, 0.4]) == [0.5, 0.5, 0.2, 0.2]
