"""Planted effects in generated traffic are learned by the bandits; a no-signal control moves only by noise."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from jobs.exploration.policies import (
    ArtworkPolicy,
    ContextPlayModel,
    RowOrderPolicy,
    ThemeHistory,
    all_orders,
    context_features,
    explore_slots,
)

VARIANTS = [("heat-art0", ["dark"]), ("heat-art1", ["couple"]), ("heat-art2", ["action"])]
CRIME_FAN = {"Crime": 0.9, "Drama": 0.3}


def serve_artwork(policy: ArtworkPolicy, history: ThemeHistory, click_rate: dict[str, float], rounds: int,
                  rng: random.Random) -> Counter[str]:
    shown: Counter[str] = Counter()
    for _ in range(rounds):
        decision = policy.choose(VARIANTS, CRIME_FAN, history, rng)
        themes = dict(VARIANTS)[decision.artwork_id]
        shown[decision.artwork_id] += 1
        policy.learn_one(CRIME_FAN, history, themes, rng.random() < click_rate[themes[0]])
    return shown


def test_a_member_who_clicks_one_theme_gets_that_variant_more_often() -> None:
    rng = random.Random(3)
    policy, history = ArtworkPolicy(epsilon=0.1), ThemeHistory()
    serve_artwork(policy, history, {"dark": 0.6, "couple": 0.05, "action": 0.05}, 400, rng)
    later = serve_artwork(policy, history, {"dark": 0.6, "couple": 0.05, "action": 0.05}, 1_000, rng)
    assert later["heat-art0"] / 1_000 > 0.85  # greedy most of the time; the rest is the bounded exploration
    control = ThemeHistory()
    no_signal = serve_artwork(ArtworkPolicy(epsilon=0.1), control, dict.fromkeys(("dark", "couple", "action"), 0.2),
                              1_400, rng)
    assert sum(no_signal.values()) == 1_400

    def rate(history: ThemeHistory, theme: str) -> float:
        return history.clicked.get(theme, 0.0) / history.shown[theme]

    # what each member's history says of each theme: the planted effect stands far out of the noise;
    # with nothing planted, every theme's observed rate stays within sampling noise of the true 0.2
    assert rate(history, "dark") - max(rate(history, "couple"), rate(history, "action")) > 0.3
    for theme in ("dark", "couple", "action"):
        shown = control.shown[theme]
        assert abs(rate(control, theme) - 0.2) < 3.5 * math.sqrt(0.2 * 0.8 / shown), (theme, rate(control, theme))


def test_every_artwork_choice_carries_its_exact_propensity() -> None:
    rng = random.Random(5)
    policy, history = ArtworkPolicy(epsilon=0.3), ThemeHistory()
    decisions = [policy.choose(VARIANTS, CRIME_FAN, history, rng) for _ in range(3_000)]
    greedy = Counter(d.artwork_id for d in decisions if not d.explored).most_common(1)[0][0]
    share = sum(d.artwork_id == greedy for d in decisions) / len(decisions)
    expected = next(d.propensity for d in decisions if d.artwork_id == greedy)
    assert expected == pytest.approx(0.7 + 0.3 / 3) and share == pytest.approx(expected, abs=0.03)


def simulate_plays(model: ContextPlayModel, late_night_short: float, rng: random.Random, rounds: int = 20_000) -> None:
    """Impressions of short and feature-length titles in every daypart; plays by the planted rates."""
    for _ in range(rounds):
        daypart = rng.choice(("morning", "afternoon", "evening", "late_night"))
        minutes = rng.choice((25, 110))
        rate = 0.2
        if daypart == "late_night":
            rate = late_night_short if minutes == 25 else 0.2
        model.learn_one(f"{daypart}:tv", "tue", minutes, ["Drama"], rng.random() < rate)


def test_a_daypart_whose_plays_favour_short_titles_ranks_them_higher_there() -> None:
    planted = ContextPlayModel()
    simulate_plays(planted, late_night_short=0.5, rng=random.Random(11))
    short_at_night = planted.boost("late_night:tv", "tue", 25, ["Drama"])
    long_at_night = planted.boost("late_night:tv", "tue", 110, ["Drama"])
    short_evening = planted.boost("evening:tv", "tue", 25, ["Drama"])
    long_evening = planted.boost("evening:tv", "tue", 110, ["Drama"])
    night_gap, evening_gap = short_at_night - long_at_night, short_evening - long_evening
    assert night_gap > 0.5  # two titles of equal score: the short one ranks first at night
    # elsewhere the gap is only the correction for short titles' scores having been lifted by the night
    assert abs(evening_gap) < night_gap / 2

    control = ContextPlayModel()
    simulate_plays(control, late_night_short=0.2, rng=random.Random(11))
    gaps = [control.boost(f"{d}:tv", "tue", 25, ["Drama"]) - control.boost(f"{d}:tv", "tue", 110, ["Drama"])
            for d in ("morning", "afternoon", "evening", "late_night")]
    assert max(abs(g) for g in gaps) < 0.3 < night_gap / 2  # no signal planted: short vs long moves by noise only


def test_row_order_follows_a_planted_daypart_preference_and_its_propensities_sum_to_one() -> None:
    rng = random.Random(2)
    kinds = ("top_picks", "trending", "genre")
    policy = RowOrderPolicy(kinds, epsilon=0.2)
    favourite = {"evening": "trending", "morning": "top_picks"}
    for _ in range(3_000):
        daypart = rng.choice(("evening", "morning"))
        features = context_features(f"{daypart}:tv", "wed")
        decision = policy.choose(features, rng)
        first = decision.order[0]  # members react to the first row
        policy.learn_one(features, first, float(rng.random() < (0.4 if first == favourite[daypart] else 0.1)))
    assert policy.greedy(context_features("evening:tv", "wed"))[0] == "trending"
    assert policy.greedy(context_features("morning:tv", "wed"))[0] == "top_picks"
    features = context_features("evening:tv", "wed")
    assert math.fsum(policy.probability(features, order) for order in all_orders(kinds)) == pytest.approx(1.0)


def test_exploration_stays_within_its_bound_over_a_long_run() -> None:
    rng = random.Random(9)
    ranked = [f"t{n}" for n in range(20)]
    less_known = [f"new{n}" for n in range(50)]
    explored = total = 0
    for _ in range(20_000):
        slots = explore_slots(ranked, less_known, 0.1, rng)
        row_explored = sum(s.explored for s in slots)
        assert row_explored <= 2 and not slots[0].explored  # ceil(0.1 x 20); the first slot keeps the ranking
        assert len({s.title_id for s in slots}) == 20
        explored, total = explored + row_explored, total + len(slots)
    assert explored / total == pytest.approx(0.1, abs=0.002)
    with pytest.raises(ValueError, match="explore share"):
        explore_slots(ranked, less_known, 1.5, rng)


def test_exploration_after_the_first_slots_keeps_them_and_the_same_share() -> None:
    # the rows job's default: explored titles go in slot 10 or later, so the first ten stay as ranked
    rng = random.Random(3)
    ranked = [f"t{n}" for n in range(20)]
    explored = 0
    for _ in range(20_000):
        slots = explore_slots(ranked, [f"new{n}" for n in range(50)], 0.05, rng, protect_first=10)
        assert [s.title_id for s in slots[:10]] == ranked[:10] and all(s.propensity == 1.0 for s in slots[:10])
        explored += sum(s.explored for s in slots)
    assert explored / (20_000 * 20) == pytest.approx(0.05, abs=0.002)
    assert explore_slots(ranked[:8], ["new"], 0.5, rng, protect_first=10) == explore_slots(
        ranked[:8], ["new"], 0.0, rng)  # a row shorter than that is not explored


def test_the_per_build_artwork_chooser_ranks_variants_exactly_as_the_model() -> None:
    rng = random.Random(4)
    policy, history = ArtworkPolicy(epsilon=0.0), ThemeHistory()
    serve_artwork(policy, history, {"dark": 0.5, "couple": 0.2, "action": 0.05}, 300, rng)
    member = policy.for_member(CRIME_FAN, history)
    two_themes = [("a", ["dark", "action"]), ("b", ["couple"]), ("c", ["action", "couple"])]
    for variants in (VARIANTS, two_themes):
        full = [policy.score(CRIME_FAN, history, themes) for _, themes in variants]
        fast = [sum(member.theme_score(t) for t in themes) for _, themes in variants]
        offsets = {round(f - g, 9) for f, g in zip(full, fast, strict=True)}
        assert len(offsets) == 1  # the same scores up to the intercept every variant shares
        assert member.choose(variants, rng).artwork_id == variants[max(range(3), key=lambda n: full[n])][0]
