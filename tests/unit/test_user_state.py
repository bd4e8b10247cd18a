"""Per-user feature logic: dedupe, profile, continue watching. No Flink."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from jobs.context import context_bucket, daypart, local_hour
from jobs.features.user_state import TitleInfo, UserState

MIN = 60_000
T0 = 1_790_000_000_000
DRAMA = TitleInfo(("Drama",), 100)
COMEDY = TitleInfo(("Comedy",), 90)


def play(make_event: Any, action: str, at_min: int, pos_min: int, title: str = "t1", pb: str = "pb1",
         dur_min: int = 100) -> Any:
    return make_event("play", action=action, title_id=title, playback_id=pb, event_time_ms=T0 + at_min * MIN,
                      position_ms=pos_min * MIN, duration_ms=dur_min * MIN)


def test_duplicates_are_ignored(make_event: Any) -> None:
    state = UserState()
    event = play(make_event, "PROGRESS", 20, 20)
    assert state.apply(event, DRAMA).applied
    assert not state.apply(event, DRAMA).applied
    assert state.profile.version == 1
    assert state.profile.total_watch_ms == 20 * MIN
    assert state.has_seen(event.event_id) and not state.has_seen("another-event")


def test_watch_time_counts_the_furthest_playhead_once(make_event: Any) -> None:
    state = UserState()
    deltas = [state.apply(e, DRAMA).watch_ms for e in (
        play(make_event, "START", 0, 0), play(make_event, "PROGRESS", 20, 20),
        play(make_event, "PAUSE", 25, 25), play(make_event, "PROGRESS", 40, 20),  # seeked back: nothing new
        play(make_event, "STOP", 50, 45))]
    assert deltas == [0, 20 * MIN, 5 * MIN, 0, 20 * MIN]
    resumed = [state.apply(e, DRAMA).watch_ms for e in (
        play(make_event, "START", 200, 45, pb="pb2"), play(make_event, "COMPLETE", 255, 100, pb="pb2"))]
    assert resumed == [0, 55 * MIN]  # a resumed playback does not count what came before its start


def test_continue_watching_tracks_progress_and_drops_completed(make_event: Any) -> None:
    state = UserState()
    state.apply(play(make_event, "START", 0, 0), DRAMA)
    outcome = state.apply(play(make_event, "STOP", 30, 30), DRAMA)
    assert outcome.continue_watching["t1"].position_ms == 30 * MIN  # type: ignore[union-attr]
    state.apply(play(make_event, "START", 0, 0, title="t2", pb="pb9", dur_min=90), COMEDY)
    done = state.apply(play(make_event, "COMPLETE", 100, 100, pb="pb3"), DRAMA)
    assert done.continue_watching == {"t1": None}
    assert set(state.continue_watching) == {"t2"}


def test_an_older_event_does_not_move_continue_watching_back(make_event: Any) -> None:
    state = UserState()
    state.apply(play(make_event, "PROGRESS", 60, 60), DRAMA)
    outcome = state.apply(play(make_event, "PROGRESS", 20, 20), DRAMA)
    assert outcome.continue_watching == {}
    assert state.continue_watching["t1"].position_ms == 60 * MIN


def test_a_stop_near_the_end_counts_as_finished(make_event: Any) -> None:
    state = UserState()
    state.apply(play(make_event, "START", 0, 0), DRAMA)
    state.apply(play(make_event, "STOP", 97, 97), DRAMA)
    assert state.continue_watching == {}
    assert state.profile.preferred_runtime_minutes == 100


def test_genre_affinity_follows_watching_and_ratings_and_decays(make_event: Any) -> None:
    state = UserState()
    state.apply(play(make_event, "PROGRESS", 60, 60), DRAMA)
    state.apply(make_event("rating", title_id="t2", kind="THUMBS_DOWN", stars=None, event_time_ms=T0 + 61 * MIN),
                COMEDY)
    assert state.profile.genre_affinity["Drama"] > 0 > state.profile.genre_affinity["Comedy"]
    drama_now = state.profile.genre_affinity["Drama"]
    state.apply(make_event("search", query="heist", event_time_ms=T0 + 61 * MIN + 14 * 86_400_000,
                           result_title_ids=[], clicked_title_id=None, clicked_position=None))
    assert state.profile.genre_affinity["Drama"] == pytest.approx(drama_now / 2, rel=1e-3)  # one half-life
    assert state.profile.recent_searches == ["heist"]


def test_daypart_and_device_histograms(make_event: Any) -> None:
    state = UserState()
    event = play(make_event, "START", 0, 0)
    state.apply(event, DRAMA)
    expected = daypart(local_hour(event.event_time_ms, event.context.utc_offset_minutes))
    assert state.profile.daypart_plays == {expected: 1}
    assert state.profile.device_plays == {"tv": 1}
    assert context_bucket(event.event_time_ms, -300, "TV") == f"{expected}:tv"


def test_dedupe_memory_is_bounded_by_event_time(make_event: Any) -> None:
    state = UserState()
    for i in range(500):
        state.apply(make_event("search", query=f"q{i}", event_time_ms=T0 + i * 10 * MIN, result_title_ids=[],
                               clicked_title_id=None, clicked_position=None))
    assert len(state.seen_ids) <= 256
    assert len(pickle.dumps(state)) < 8_000


def test_the_impression_join_lives_in_the_state_and_survives_pickling(make_event: Any) -> None:
    from connectors.events import ShownItem

    state = UserState()
    shown = make_event("impression", impression_id="imp-1", event_time_ms=T0, items=[ShownItem("t1", 0, "t1-art2")])
    click = make_event("click", impression_id="imp-1", event_time_ms=T0 + MIN, title_id="t1", position_in_row=0,
                       artwork_id=None)
    start = play(make_event, "START", 2, 0)
    joined = []
    for event in (shown, click, start):
        state.apply(event, DRAMA)
        joined += state.join_impressions(event, window_ms=30 * MIN, watermark_ms=T0, out_of_order_ms=5_000)
        state = pickle.loads(pickle.dumps(state))  # as keyed state does between events
    assert [(j.kind, j.artwork_id) for j in joined] == [("CLICK", "t1-art2"), ("PLAY", "t1-art2")]
    assert state.join_impressions(play(make_event, "PROGRESS", 3, 1), 30 * MIN, T0, 0) == []  # not a join event


def test_the_join_kept_decoded_between_events_joins_the_same_and_pickles_its_changes(make_event: Any) -> None:
    from connectors.events import ShownItem

    state = UserState()  # one object across events, as a cached state or a process-mode bundle keeps it
    shown = make_event("impression", impression_id="imp-1", event_time_ms=T0, items=[ShownItem("t1", 0, "t1-art2")])
    state.join_impressions(shown, window_ms=30 * MIN, watermark_ms=T0, out_of_order_ms=5_000)
    written = pickle.dumps(state)  # written after the impression: the pickle must hold it
    click = make_event("click", impression_id="imp-1", event_time_ms=T0 + MIN, title_id="t1", position_in_row=0,
                       artwork_id=None)
    assert [j.kind for j in state.join_impressions(click, 30 * MIN, T0, 5_000)] == ["CLICK"]
    assert [j.kind for j in pickle.loads(written).join_impressions(click, 30 * MIN, T0, 5_000)] == ["CLICK"]
    copy = state.impression_join()
    assert copy is not None and "imp-1" in copy.pending
    copy.pending.clear()  # a copy: the state's join is untouched
    assert "imp-1" in pickle.loads(pickle.dumps(state)).impression_join().pending  # type: ignore[union-attr]


def test_state_pickled_before_the_join_existed_still_loads(make_event: Any) -> None:
    state = UserState()
    state.apply(play(make_event, "START", 0, 0), DRAMA)
    version_1 = state.__getstate__()[:8]
    restored = UserState.__new__(UserState)
    restored.__setstate__((1, *version_1[1:]))
    assert restored.impression_join() is None and restored.profile.version == 1
