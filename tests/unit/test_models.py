"""Contract checks over every online model: learn, score, rank, pickle, clone, new users and titles."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import numpy as np
import pytest

from jobs.models.arrivals import NewArrivals
from jobs.models.base import Feedback, Recommender, Search, TitleIndex
from jobs.models.content import ContentProfile, TitleText
from jobs.models.item_cf import ItemCooccurrence
from jobs.models.mf import ImplicitMF, RatingMF
from jobs.models.neural import NeuralSequence
from jobs.models.online import LoopRecommender
from jobs.models.popularity import Popularity
from jobs.models.river_mf import RiverBiasedMF
from jobs.models.scorer import Scorer, scaled, weight_grid
from jobs.models.search import SearchIntent
from jobs.models.sequence import Transitions
from jobs.models.signals import JobBlend
from jobs.models.user_knn import UserKNN

# what the catalog says of the history's titles: the two taste groups are two genres
CATALOG = [TitleText(f"m{n}", f"Title {n}", 1990 + n, ("Drama",) if n <= 4 else ("Comedy",)) for n in range(1, 9)]

MODELS: dict[str, Callable[[], Recommender]] = {
    "popularity": Popularity,
    "popularity-decayed": lambda: Popularity(half_life_days=7),
    "item-cf": ItemCooccurrence,
    "item-knn-baseline": lambda: ItemCooccurrence(window=20, recency=1.0, normalize=False),
    "implicit-mf": ImplicitMF,
    "rating-mf": RatingMF,
    "river-biased-mf": RiverBiasedMF,
    "online-loop": LoopRecommender,  # the learning job's split, both sides in one process
    "job-blend": lambda: JobBlend(CATALOG, publish_every=1, flush_every=1),  # the learning job's top picks
    "content": lambda: ContentProfile(CATALOG),
    "new-arrivals": lambda: NewArrivals(CATALOG),
    "transitions": Transitions,
    "neural-sequence": lambda: NeuralSequence(batch=2, negatives=4),
    "user-knn": UserKNN,
    "search": lambda: SearchIntent(CATALOG),
    "scorer": lambda: Scorer({"item_cf": ItemCooccurrence(), "implicit_mf": ImplicitMF(),
                              "popularity": Popularity(), "rating_mf": RatingMF()}),
    "scorer-all-signals": lambda: Scorer({"item_cf": ItemCooccurrence(), "content": ContentProfile(CATALOG),
                                          "transitions": Transitions(), "user_knn": UserKNN()},
                                         candidates=weight_grid(["item_cf", "content", "transitions", "user_knn"],
                                                                levels=(0.0, 1.0))),
}

DAY = 86_400_000


def history() -> list[Feedback]:
    """Two taste groups (u* watch m1-m4, v* watch m5-m8), ratings high inside a group."""
    events = []
    for n in range(40):
        group, titles = (("u", ["m1", "m2", "m3", "m4"]) if n % 2 else ("v", ["m5", "m6", "m7", "m8"]))
        for step, title in enumerate(titles):
            events.append(Feedback(f"{group}{n % 10}", title, n * DAY + step * 60_000, 1.0, 5.0 - step * 0.5))
    return events


@pytest.fixture(params=sorted(MODELS))
def make_model(request: pytest.FixtureRequest) -> Callable[[], Recommender]:
    return MODELS[request.param]


def trained(make_model: Callable[[], Recommender]) -> Recommender:
    model = make_model()
    for feedback in history():
        model.learn_one(feedback)
    return model


def test_scores_cover_every_title_and_are_finite(make_model: Callable[[], Recommender]) -> None:
    model = trained(make_model)
    for user in ("u1", "never-seen-user"):
        scores = model.score(user)
        assert scores.shape == (len(model.titles),) == (8,)
        assert np.isfinite(scores).all()


def test_rank_leaves_out_excluded_titles(make_model: Callable[[], Recommender]) -> None:
    model = trained(make_model)
    ranked = model.rank("u1", k=8, exclude={"m1", "m2"})
    assert len(ranked) == 6 and not {"m1", "m2"} & set(ranked)
    assert model.rank("u1", k=3) == model.rank("u1", k=3)  # deterministic


def test_a_new_title_can_be_learned_and_scored(make_model: Callable[[], Recommender]) -> None:
    model = trained(make_model)
    model.learn_one(Feedback("u1", "brand-new", 50 * DAY, 1.0, 4.0))
    assert "brand-new" in model.titles
    assert len(model.score("u1")) == 9 and len(model.score("new-user")) == 9


def test_pickle_round_trip_keeps_the_scores(make_model: Callable[[], Recommender]) -> None:
    model = trained(make_model)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(restored.score("u1"), model.score("u1"))
    assert restored.predict_one("u1", "m1") == model.predict_one("u1", "m1")
    event = Feedback("u1", "m5", 60 * DAY, 1.0, 3.0)
    model.learn_one(event)
    restored.learn_one(event)  # and learns on exactly as the original
    np.testing.assert_allclose(restored.score("u1"), model.score("u1"))


def test_clone_is_untrained_with_the_same_parameters(make_model: Callable[[], Recommender]) -> None:
    model = trained(make_model)
    fresh = model.clone()
    assert type(fresh) is type(model) and len(fresh.titles) == 0
    assert fresh._params().keys() == model._params().keys()
    for feedback in history():
        fresh.learn_one(feedback)
    np.testing.assert_allclose(fresh.score("u1"), trained(make_model).score("u1"))


def test_collaborative_models_learn_the_taste_groups() -> None:
    for model in (trained(ItemCooccurrence), trained(ImplicitMF), trained(MODELS["scorer"])):
        model.learn_one(Feedback("newcomer", "m5", 100 * DAY))
        best = model.rank("newcomer", k=3, exclude={"m5"})
        assert set(best) == {"m6", "m7", "m8"}, (type(model).__name__, best)


def test_rating_models_predict_the_group_ratings() -> None:
    for model in (trained(RatingMF), trained(RiverBiasedMF)):
        assert model.predict_one("u1", "m1") > model.predict_one("u1", "m4"), type(model).__name__


def test_scorer_needs_untrained_signals_on_one_index() -> None:
    used = trained(Popularity)
    with pytest.raises(ValueError, match="already learned"):
        Scorer({"popularity": used})
    with pytest.raises(ValueError, match="unknown signals"):
        Scorer({"popularity": Popularity()}, candidates=[{"popularity": 1.0, "nope": 1.0}])
    shared = TitleIndex()
    scorer = Scorer({"a": Popularity(), "b": ItemCooccurrence()}, titles=shared)
    assert all(model.titles is shared for model in scorer.signals.values())


def test_scorer_serves_the_blend_that_hits_most() -> None:
    # popularity is useless here (all titles equally popular), item-cf is perfect: the blend must follow it
    scorer = Scorer({"popularity": Popularity(), "item_cf": ItemCooccurrence()},
                    candidates=[{"popularity": 1.0}, {"item_cf": 1.0}], k=1)
    for feedback in history():
        parts = scorer.signal_scores(feedback.user_id)
        excluded = np.zeros(len(scorer.titles), dtype=bool)
        scorer.observe(parts, feedback.title_id, excluded, feedback.user_id)
        scorer.learn_one(feedback)
    assert scorer.weights == {"item_cf": 1.0}


def test_scaling_and_weight_grid() -> None:
    np.testing.assert_allclose(scaled(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    assert not scaled(np.array([1.0, 1.0])).any()
    grid = weight_grid(["a", "b"], levels=(0.0, 1.0))
    assert grid == [{"a": 1.0, "b": 0.0}, {"a": 1.0, "b": 1.0}]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        ItemCooccurrence(window=0)
    with pytest.raises(ValueError, match="factors"):
        ImplicitMF(factors=0)


def test_user_state_is_small() -> None:
    model = trained(ImplicitMF)
    assert 0 < model.user_state_bytes("u1") <= 1024
    assert model.user_state_bytes("nobody") == 0


def test_content_ranks_a_title_nobody_has_touched_for_a_matching_user() -> None:
    cold = TitleText("m9", "Another Drama", 2001, ("Drama",))
    model = trained(lambda: ContentProfile([*CATALOG, cold]))
    assert "m9" in model.titles  # known from the catalog alone
    assert model.rank("u1", k=1, exclude={"m1", "m2", "m3", "m4"}) == ["m9"]  # u* watch dramas
    assert "m9" not in model.rank("v0", k=4)  # v* watch comedies
    model.describe(TitleText("m10", "A Comedy", 2002, ("Comedy",)))  # a catalog update mid-stream
    assert model.rank("v0", k=1, exclude={"m5", "m6", "m7", "m8"}) == ["m10"]


def test_a_new_user_has_a_content_profile_after_one_event() -> None:
    model = trained(lambda: ContentProfile(CATALOG))
    model.learn_one(Feedback("newcomer", "m5", 90 * DAY))
    assert set(model.rank("newcomer", k=3, exclude={"m5"})) == {"m6", "m7", "m8"}


def test_new_arrivals_rank_fresh_titles_and_new_releases_first() -> None:
    release = TitleText("m9", "This Year's Drama", 1970, ("Drama",))  # the history's clock is in 1970
    model = trained(lambda: NewArrivals([*CATALOG, release], half_life_days=7.0, prior=0.5))
    now = 40 * DAY
    model.learn_one(Feedback("u1", "m10", now))  # a title first touched now, not in the catalog
    scores = dict(zip(model.titles.ids, model.score("anyone"), strict=True))
    assert scores["m10"] == 1.0 and scores["m9"] == 0.5  # fresh first, an untouched new release next
    assert scores["m1"] == pytest.approx(0.5 ** (39 / 7.0))  # first touched on day 1: faded by its age
    assert all(scores[f"m{n}"] < 0.03 for n in range(1, 9))  # the history's titles are over five weeks old
    model.learn_one(Feedback("u2", "m9", now + DAY))  # touched: the prior no longer applies
    assert dict(zip(model.titles.ids, model.score("anyone"), strict=True))["m9"] == 1.0


def test_transitions_follow_the_order_of_watching() -> None:
    model = Transitions(order=1)
    for user in range(5):
        for title in ("s1e1", "s1e2", "s1e3"):
            model.learn_one(Feedback(f"u{user}", title, 0))
    model.learn_one(Feedback("fan", "s1e2", 0))
    assert model.rank("fan", k=1, exclude={"s1e2"}) == ["s1e3"]  # after e2 comes e3, not e1


def test_user_knn_scores_what_similar_users_watched() -> None:
    model = trained(UserKNN)
    model.learn_one(Feedback("newcomer", "m1", 90 * DAY))
    assert set(model.rank("newcomer", k=3, exclude={"m1"})) == {"m2", "m3", "m4"}


@pytest.mark.parametrize("gram_users", [16_384, 5])
def test_user_knn_scores_as_the_dense_definition_does(gram_users: int) -> None:
    """The scaled columns, kept norms and kept dot products give what fading every row and taking cosines over
    the whole matrix gives, also past the point where a scale is folded back into its column, and with more
    users than the dot products are kept for (5: computed when scoring once the sixth user arrives)."""
    rng = np.random.default_rng(5)
    model = UserKNN(neighbors=3, decay=0.7, gram_users=gram_users)
    rows, users = np.zeros((8, 30)), [f"u{n}" for n in range(8)]
    for n in range(400):
        user, title, weight = int(rng.integers(8)), int(rng.integers(30)), float(rng.choice([0.5, 1.0, 2.0]))
        model.learn_one(Feedback(users[user], f"m{title}", n, weight))
        rows[user] *= 0.7
        rows[user, model.titles.positions[f"m{title}"]] = max(rows[user, model.titles.positions[f"m{title}"]], weight)
        if n % 37 == 0:
            norms = np.linalg.norm(rows, axis=1)
            similarity = rows @ rows[user] / (np.where(norms == 0, 1.0, norms) * (norms[user] or 1.0))
            similarity[user] = -np.inf
            nearest = np.argsort(-similarity)[:3]
            expected = np.maximum(similarity[nearest], 0.0) @ rows[nearest][:, :len(model.titles)]
            assert np.allclose(model.score(users[user]), expected, rtol=1e-4, atol=1e-9), n
    assert model.scale.min() >= UserKNN.RESCALE_BELOW  # scales were folded back (0.7 ** 40 is below it)
    assert (model.gram is None) == (gram_users < 8)


def test_a_search_shifts_a_users_scores_toward_matching_titles_and_fades() -> None:
    catalog = [*CATALOG, TitleText("m9", "Space Station", 2001, ("Sci-Fi",), tags=("space",))]
    scorer = Scorer({"item_cf": ItemCooccurrence(), "search": SearchIntent(catalog, half_life_minutes=30)},
                    candidates=[{"item_cf": 1.0, "search": 1.0}])
    for feedback in history():
        scorer.learn_one(feedback)
    watched = {"m1", "m2", "m3", "m4"}
    assert "m9" not in scorer.rank("u1", k=3, exclude=watched)  # a drama fan, no search yet
    last = max(f.time_ms for f in history() if f.user_id == "u1")
    scorer.learn_search(Search("u1", "Space", last + 60_000))
    assert scorer.rank("u1", k=1, exclude=watched) == ["m9"]  # the search pulls the matching title up
    search = scorer.signals["search"]
    fresh = float(search.score("u1")[search.titles.positions["m9"]])
    scorer.learn_one(Feedback("u1", "m5", last + 61 * 60_000))  # an hour later
    assert float(search.score("u1")[search.titles.positions["m9"]]) == pytest.approx(fresh / 4, rel=0.05)


def test_local_search_walks_the_blend_away_from_a_useless_signal() -> None:
    scorer = Scorer({"good": Popularity(), "noise": Popularity()}, local_search=True, step_every=50)
    for n in range(40):
        scorer.titles.add(f"m{n}")
    assert scorer.weights == {"good": 1.0, "noise": 1.0}  # no signal favoured at the start
    rng = np.random.default_rng(0)
    nothing_touched = np.zeros(40, dtype=bool)
    for _ in range(400):
        target = int(rng.integers(40))
        good = rng.random(40) * 0.5
        good[target] = 1.0  # the good signal always ranks the touched title first
        scorer.observe({"good": good, "noise": rng.random(40)}, f"m{target}", nothing_touched, "u1")
    # apart until the good signal alone decides (at a third the noise can no longer outrank the touched title)
    learned = scorer.weights_for("u1")
    assert learned["noise"] / learned["good"] <= 1 / 3
    assert scorer.segment("u1") == "new" and scorer.weights == {"good": 1.0, "noise": 1.0}  # per segment
    assert scorer.clone().weights_for("u1") == {"good": 1.0, "noise": 1.0}  # a clone starts over
