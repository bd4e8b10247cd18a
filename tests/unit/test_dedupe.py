"""Deduplication by id and content: retries are duplicates, different events under one id are both applied."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.dedupe import UNKNOWN_CONTENT, classify, content_fingerprint, remember
from jobs.features.user_state import DEDUPE_MAX_IDS, UserState
from tests import factories


@settings(max_examples=200, deadline=None)
@given(ingest=st.integers(min_value=0, max_value=2**62), title=st.text(min_size=1, max_size=20),
       stars=st.sampled_from([0.5, 1.0, 4.5, 5.0]))
def test_only_the_ingest_time_may_differ_in_a_duplicate(ingest: int, title: str, stars: float) -> None:
    rating = factories.make_rating(event_id="e1", title_id="t1", stars=4.0)
    seen: dict[int, int] = {}
    remember(seen, classify(seen, "e1", content_fingerprint(rating)))
    retry = replace(rating, ingest_time_ms=ingest)
    assert classify(seen, "e1", content_fingerprint(retry)).kind == "duplicate"
    other = replace(rating, title_id=title, stars=stars)
    expected = "duplicate" if (title, stars) == ("t1", 4.0) else "conflict"
    assert classify(seen, "e1", content_fingerprint(other)).kind == expected


def test_ids_remembered_without_content_match_any_content() -> None:
    seen = {next(iter(_keys("e1"))): UNKNOWN_CONTENT}
    assert classify(seen, "e1", content_fingerprint(factories.make_play())).kind == "duplicate"


def _keys(event_id: str) -> set[int]:
    seen: dict[int, int] = {}
    remember(seen, classify(seen, event_id, 1))
    return set(seen)


def test_two_events_under_one_id_are_both_applied_and_their_retries_skipped() -> None:
    state = UserState()
    first = factories.make_play(event_id="dup", title_id="t1", action="START", position_ms=0)
    second = replace(first, title_id="t2")
    assert state.apply(first).applied and not state.apply(first).applied
    outcome = state.apply(second)
    assert outcome.applied and outcome.conflict and set(state.continue_watching) == {"t1", "t2"}
    assert not state.apply(replace(second, ingest_time_ms=99)).applied


def test_the_memory_of_ids_is_bounded() -> None:
    state = UserState()
    events = [factories.make_rating(event_id=f"e{n}") for n in range(10 * DEDUPE_MAX_IDS)]
    for event in events:
        state.apply(event)
    assert len(state.seen_ids) <= DEDUPE_MAX_IDS
    # the newest is remembered; the same event again (a factory's event made a millisecond later would
    # differ in its event time, a conflict, and be applied)
    assert not state.apply(events[-1]).applied
