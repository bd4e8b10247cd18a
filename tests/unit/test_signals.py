"""The learning job's eight signals and their blend (jobs/models/signals.py), without Flink."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import numpy as np
import pytest

from connectors.errors import ConfigError
from jobs.flink.learning.config import LearningJobConfig
from jobs.models.base import Feedback, Search
from jobs.models.content import TitleText
from jobs.models.online import LearningConfig, UserModel
from jobs.models.signals import SIGNALS, JobBlend, JobLoop, PeerPool, parse_blend

CATALOG = [
    TitleText("alien", "Alien", 1979, ("Sci-Fi", "Horror"), people=("Ridley Scott",)),
    TitleText("aliens", "Aliens", 1986, ("Sci-Fi", "Horror"), people=("James Cameron",)),
    TitleText("solaris", "Solaris", 1972, ("Sci-Fi", "Drama")),
    TitleText("heat", "Heat", 1995, ("Crime", "Thriller"), people=("Michael Mann",)),
    TitleText("ronin", "Ronin", 1998, ("Crime", "Thriller")),
    TitleText("fargo", "Fargo", 1996, ("Crime", "Comedy")),
]
SCI_FI = ["alien", "aliens", "solaris"]
CRIME = ["heat", "ronin", "fargo"]


@pytest.fixture
def make_loop() -> Callable[..., JobLoop]:
    """A job loop over CATALOG after ``users`` users per taste watched their group in order."""

    def make(users: int = 6, **kwargs: object) -> JobLoop:
        loop = JobLoop(catalog=CATALOG, **kwargs)  # type: ignore[arg-type]
        n = 0
        for user in range(users):
            for title in (SCI_FI if user % 2 else CRIME):
                loop.learn(f"u{user}", Feedback(f"u{user}", title, n * 60_000, 1.0, 5.0), f"e{n}")
                n += 1
        return loop

    return make


def test_every_signal_scores_every_known_title(make_loop: Callable[..., JobLoop]) -> None:
    loop = make_loop()
    parts = loop.scores("u1")
    assert set(parts) == set(SIGNALS)
    assert all(len(scores) == len(loop.table) == len(CATALOG) for scores in parts.values())
    # a sci-fi fan: the co-watch, content and nearest-user signals all favour the other sci-fi titles
    for name in ("item_cf", "content", "user_knn"):
        scores = dict(zip(loop.table.ids, parts[name], strict=True))
        assert min(scores[t] for t in SCI_FI) > max(scores[t] for t in CRIME), name


def test_only_titles_the_catalog_describes_are_picked(make_loop: Callable[..., JobLoop]) -> None:
    loop = make_loop()
    loop.learn("u7", Feedback("u7", "uncatalogued", 10**9, 1.0), "x1")  # a title with vectors, no metadata
    assert "uncatalogued" in loop.table.items
    assert "uncatalogued" not in [p.title_id for p in loop.picks("u1", k=len(loop.table))]
    bare = JobLoop()  # no catalog at all: every title with vectors is a candidate
    bare.learn("a", Feedback("a", "m1", 0, 1.0), "e1")
    bare.learn("b", Feedback("b", "m2", 1, 1.0), "e2")
    assert [p.title_id for p in bare.picks("a", k=5)] == ["m2"]


def test_transitions_are_directional_and_published(make_loop: Callable[..., JobLoop]) -> None:
    loop = make_loop()
    after_alien = dict(loop.published["alien"].successors)
    assert set(after_alien) == {"aliens", "solaris"}
    assert after_alien["aliens"] > after_alien["solaris"]  # next, rather than two titles later
    assert abs(sum(after_alien.values()) - 1.0) < 1e-6  # shares
    assert loop.published["solaris"].successors == ()  # nothing ever followed the last title
    assert "alien" not in dict(loop.published["aliens"].successors)  # order matters, unlike co-watching
    user = UserModel(recent=["alien"])
    scores = dict(zip(loop.table.ids, loop.scores("nobody")["transitions"], strict=True))
    assert scores["aliens"] == 0.0  # the user "nobody" has no last titles
    loop.users["next"] = user
    scores = dict(zip(loop.table.ids, loop.scores("next")["transitions"], strict=True))
    assert scores["aliens"] > scores["solaris"] > 0.0 == scores["heat"]


def test_a_new_title_reaches_a_matching_user_through_content(make_loop: Callable[..., JobLoop]) -> None:
    loop = make_loop()
    new = TitleText("prometheus", "Prometheus", 2012, ("Sci-Fi", "Horror"), people=("Ridley Scott",))
    loop.describe(new)  # in the catalog; nobody has touched it
    assert "prometheus" not in loop.items
    sci_fi_fan = loop.picks("u1", k=len(loop.table))  # watched every sci-fi title: crime and the new one left
    assert (sci_fi_fan[0].title_id, sci_fi_fan[0].reason) == ("prometheus", "content")
    assert loop.picks("u0", k=1)[0].title_id != "prometheus"  # a crime fan: an average title at best
    # beside titles people watched: below the co-watched sci-fi, above the crime titles everyone else watched
    loop.learn("fan", Feedback("fan", "alien", 10**9, 1.0), "fan-1")
    fan = [p.title_id for p in loop.picks("fan", k=len(loop.table))]
    assert fan.index("prometheus") < min(fan.index(t) for t in CRIME)
    # a new user with one touch already has a profile that places the new title
    loop.learn("newbie", Feedback("newbie", "aliens", 10**9, 1.0), "newbie-1")
    parts = dict(zip(loop.table.ids, loop.scores("newbie")["content"], strict=True))
    assert parts["prometheus"] > max(parts[t] for t in CRIME)


def test_a_search_shifts_the_users_picks(make_loop: Callable[..., JobLoop]) -> None:
    loop = make_loop()
    loop.learn("fan", Feedback("fan", "alien", 10**9, 1.0), "fan-1")
    before = [p.title_id for p in loop.picks("fan", k=len(loop.table))]
    assert before.index("heat") > max(before.index("aliens"), before.index("solaris"))
    assert before[-1] == "heat"
    search = Search("fan", "michael mann", time_ms=10**9 + 1)
    assert loop.learn_search("fan", search, "s1")
    after = loop.picks("fan", k=len(loop.table))
    order = [p.title_id for p in after]
    assert after[order.index("heat")].reason == "search"
    assert order.index("heat") < min(order.index("ronin"), order.index("fargo"))  # from last to above them
    assert [t for t in order if t != "heat"] == [t for t in before if t != "heat"]  # nothing else moved
    assert not loop.learn_search("fan", search, "s1")  # a redelivery is applied once
    assert loop.users["fan"].searches == [(10**9 + 1, "michael mann")]
    # intent fades with the user's own clock: a day of watching later the search no longer leads
    loop.learn("fan", Feedback("fan", "aliens", 10**9 + 24 * 3_600_000, 1.0), "fan-2")
    later = [p.title_id for p in loop.picks("fan", k=len(loop.table))]
    assert later.index("heat") > later.index("ronin")


def test_user_state_with_every_signal_is_under_a_kibibyte() -> None:
    loop = JobLoop(catalog=CATALOG)
    for n in range(200):  # a heavy user: the window, the id memory, both vectors and the profile full
        loop.learn("heavy", Feedback("heavy", f"title-{n:05d}", n, 1.0, 4.0), f"event-{n:032d}")
        loop.learn("heavy", Feedback("heavy", CATALOG[n % len(CATALOG)].title_id, n, 1.0), f"touch-{n:032d}")
    for n in range(10):
        loop.learn_search("heavy", Search("heavy", f"a long query about thing number {n}", 10**6 + n), f"s{n}")
    state = loop.users["heavy"]
    assert len(state.searches) == LearningConfig().searches and state.profile is not None
    size = len(pickle.dumps(state))
    assert size <= 1024, size
    restored = pickle.loads(pickle.dumps(state))
    assert restored.searches == state.searches and restored.profile is not None
    np.testing.assert_allclose(restored.profile, state.profile, rtol=1e-3)  # kept in half precision


def test_state_pickled_before_the_new_signals_still_loads() -> None:
    old = UserModel(implicit_vector=np.ones(32, dtype=np.float32), recent=["m1"], version=3)
    v1 = (1, *old.__getstate__()[1:11])  # what a checkpoint taken before this change holds
    user = UserModel.__new__(UserModel)
    user.__setstate__(v1)
    assert (user.version, user.recent, user.profile, user.searches) == (3, ["m1"], None, [])


def test_the_peer_pool_keeps_the_most_recently_active_users() -> None:
    pool = PeerPool(size=2)
    for user_id in ("a", "b", "a", "c"):
        pool.update(user_id, UserModel(recent=[user_id]))
    assert sorted(pool.histories) == ["a", "c"] and len(pool) == 2  # b was the least recently active
    assert "b" not in pool.watchers and set(pool.watchers["a"]) == {"a"}
    pool.update("nothing-watched-yet", UserModel())
    assert "nothing-watched-yet" not in pool.histories


def test_a_bad_blend_is_refused_naming_what_is_wrong() -> None:
    assert parse_blend("content=1")["item_cf"] == 0.0
    for text, problem in [("item_cf=1,colour=2", "unknown signal 'colour'"), ("item_cf=-1", "weight >= 0"),
                          ("item_cf", "weight >= 0"), ("item_cf=0", "every signal weight 0")]:
        with pytest.raises(ValueError, match=problem):
            parse_blend(text)
    with pytest.raises(ConfigError, match=r"\[learning\] blend: blend: unknown signal 'colour'"):
        LearningJobConfig(blend="colour=1")
    with pytest.raises(ConfigError, match=r"\[learning\] blend_new: blend: .* every signal weight 0"):
        LearningJobConfig(blend_new="item_cf=0")
    with pytest.raises(ConfigError, match=r"\[learning\] tenure: need 1 <= new_below < established_from"):
        LearningJobConfig(tenure_new_below=50, tenure_established_from=50)


def test_blends_start_per_segment_and_a_pinned_blend_never_moves() -> None:
    settings = LearningJobConfig(blend="item_cf=1", blend_new="popularity=1", pin_blend=True, blend_step_every=1)
    blends = settings.blends()
    assert blends.weights("new")["popularity"] == 1.0 and blends.weights("new")["item_cf"] == 0.0
    assert blends.weights("growing")["item_cf"] == 1.0 == blends.weights("established")["item_cf"]
    learner = blends.learners["new"]
    everything_else = np.array([False] + [True] * (len(learner.candidates) - 1))
    assert not blends.observe("new", everything_else, 0) and learner.version == 0  # pinned: learns nothing
    loop = JobLoop(catalog=CATALOG, blend={"new": "popularity=1", "growing": "item_cf=1",
                                           "established": "item_cf=1"}, pin_blend=True, evaluate_share=1.0)
    loop.learn("a", Feedback("a", "m1", 0, 1.0), "e1")
    loop.learn("a", Feedback("a", "m2", 1, 1.0), "e2")
    assert loop.weights("a")["popularity"] == 1.0 and loop.blends.learners["new"].observed == 0
    learning = JobLoop(catalog=CATALOG, evaluate_share=1.0)  # not pinned: the second touch teaches the learner
    learning.learn("a", Feedback("a", "alien", 0, 1.0), "e1")
    learning.learn("a", Feedback("a", "aliens", 1, 1.0), "e2")
    assert learning.blends.learners["new"].observed == 1


def test_a_job_without_the_neural_model_measured_beside_one_with_it_is_that_job() -> None:
    catalog = [TitleText(f"{genre}{n}", f"{genre} {n}", 1990, (genre,)) for genre in ("Crime", "Drama")
               for n in range(20)]
    alone = JobBlend(catalog, publish_every=1, flush_every=1, evaluate_share=1.0)
    with_neural = JobBlend(catalog, publish_every=1, flush_every=1, evaluate_share=1.0, neural=True)
    beside = JobBlend(catalog, publish_every=1, flush_every=1, evaluate_share=1.0, beside=with_neural)
    rng = np.random.default_rng(3)
    for n in range(600):
        user = int(rng.integers(20))
        genre = ("Crime", "Drama")[user % 2] if rng.random() < 0.8 else str(rng.choice(["Crime", "Drama"]))
        feedback = Feedback(f"u{user}", f"{genre}{rng.integers(20)}", n * 60_000, 1.0)
        assert np.array_equal(beside.score(feedback.user_id), alone.score(feedback.user_id))
        for model in (alone, with_neural, beside):
            model.learn_one(feedback)
    assert with_neural.loop.table.encoder  # the model it is beside did train and publish the neural model
    for segment, learner in alone.loop.blends.learners.items():
        twin = beside.blends.learners[segment]
        assert learner.touches == twin.touches and np.array_equal(learner.hit_rates, twin.hit_rates)
    assert alone.loop.blends.learners["growing"].touches > 100
    # what blanking the neural signal hides: the blend with it on learns from different rankings
    assert not np.array_equal(with_neural.blends.learners["growing"].hit_rates,
                              alone.loop.blends.learners["growing"].hit_rates)
    with pytest.raises(ValueError, match="beside one with it"):
        JobBlend(catalog, beside=alone)
