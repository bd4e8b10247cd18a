"""Blends per member segment (jobs/models/blend.py): moves, versions, state and publishing."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from jobs.models.blend import LocalSearch, PublishedBlend, SegmentBlends, Tenure, candidate_hits

SIGNALS = ["item_cf", "popularity", "content"]


def only(learner: LocalSearch, index: int) -> np.ndarray:
    return np.array([n == index for n in range(len(learner.candidates))])


def test_a_move_is_a_new_version_only_when_a_neighbour_beat_the_serving_blend() -> None:
    learner = LocalSearch(SIGNALS, {"item_cf": 1.0, "popularity": 0.1, "content": 0.1}, step_every=3)
    for _ in range(3):
        assert not learner.credit(np.ones(len(learner.candidates), dtype=bool))  # all tie: the serving one stays
    assert learner.version == 0
    target = learner.candidates[2]
    assert [learner.credit(only(learner, 2)) for _ in range(3)] == [False, False, True]
    assert learner.version == 1 and learner.serving == target and learner.candidates[0] == target
    assert learner.moved_hit_rate > 0 and learner.touches == 6


def test_no_candidate_weighs_every_signal_zero() -> None:
    learner = LocalSearch(["item_cf", "popularity"], {"item_cf": 0.1})
    assert all(any(c.values()) for c in learner.candidates)


def test_state_round_trips_and_resumes_where_it_was() -> None:
    learner = LocalSearch(SIGNALS, {"item_cf": 1.0}, step_every=10)
    for _ in range(4):
        learner.credit(only(learner, 1))
    state = pickle.loads(pickle.dumps(learner.snapshot()))
    again = LocalSearch(SIGNALS, {"item_cf": 1.0}, step_every=10)
    again.resume(state)
    assert (again.version, again.serving, again.observed, again.touches) == (0, learner.serving, 4, 4)
    np.testing.assert_allclose(again.hit_rates, learner.hit_rates)
    for _ in range(6):
        moved = again.credit(only(again, 1))
    assert moved and again.version == 1  # the tenth touch moves it, as it would have without the restart


def test_segments_learn_apart_and_take_only_newer_published_blends() -> None:
    blends = SegmentBlends(SIGNALS, {"item_cf": 1.0}, Tenure(new_below=2, established_from=4), step_every=1)
    assert [blends.segment(n) for n in range(5)] == ["new", "new", "growing", "growing", "established"]
    new = blends.learners["new"]
    assert blends.observe("new", only(new, 1), version=0) and new.version == 1
    assert blends.weights("growing") == {"item_cf": 1.0, "popularity": 0.0, "content": 0.0}
    assert not blends.observe("new", only(new, 1), version=0)  # an older version's hits: dropped
    assert not blends.adopt(PublishedBlend("new", 1, {"popularity": 1.0}))  # not newer
    assert blends.adopt(PublishedBlend("growing", 2, {"popularity": 1.0}))
    assert blends.weights("growing")["popularity"] == 1.0 and blends.learners["growing"].version == 2
    published = blends.learners["growing"].published("growing", 0)
    assert published.describe() == "growing v2: item_cf=0,popularity=1,content=0"


def test_candidate_hits_break_ties_by_position_and_skip_excluded_titles() -> None:
    parts = np.array([[0.5, 0.5, 0.5, 1.0]])  # one signal; titles 0-2 tie
    excluded = np.array([False, False, False, True])  # the 1.0 title is the member's own
    assert candidate_hits(parts, np.array([[1.0]]), 1, excluded, k=1).tolist() == [False]  # title 0 comes first
    assert candidate_hits(parts, np.array([[1.0]]), 0, excluded, k=1).tolist() == [True]


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="unknown signals: \\['colour'\\]"):
        LocalSearch(SIGNALS, {"colour": 1.0})
    with pytest.raises(ValueError, match="new_below < established_from"):
        Tenure(new_below=5, established_from=5)
