"""The MovieLens replay: deterministic, leak-free, re-timed as documented. Runs on a small slice."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import pytest

from connectors.config import REPO_ROOT
from connectors.events import BrowseEvent, CatalogItem, PlayEvent, RatingEvent, SearchEvent
from infra.replay.movielens import Dataset, MovieLensReplay, parse_dataset
from infra.replay.synthetic import SyntheticLoad

NOW = 1_790_000_000_000


def _dataset() -> Dataset:
    """A small MovieLens-shaped set with bursts (same-second ratings) and a repeat-heavy user."""
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    t = 880_000_000
    for u in range(1, 13):
        for k in range(15):
            # users rate in bursts: five ratings share each second
            inter.append(f"{u}\t{(u * 7 + k * 3) % 40 + 1}\t{(u + k) % 5 + 1}\t{t + u * 1000 + (k // 5) * 86_400}")
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    genres = ["Action", "Comedy", "Drama Romance", "Sci-Fi Thriller", "Children's Animation"]
    items += [f"{i}\tMovie Number{i} Tale\t{1970 + i}\t{genres[i % 5]}" for i in range(1, 41)]
    users = ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"]
    users += [f"{u}\t30\tF\tother\t{u % 10}1234" for u in range(1, 13)]
    return parse_dataset("\n".join(inter), "\n".join(items), "\n".join(users))


@pytest.fixture(scope="module")
def replay() -> MovieLensReplay:
    return MovieLensReplay(_dataset(), seed=3, now_ms=NOW, search_rate=0.3)


@pytest.fixture(scope="module")
def stream(replay: MovieLensReplay) -> list[Any]:
    return list(replay)


def _ids(events: list[Any]) -> list[tuple[str, int]]:
    return [(e.event_id, e.event_time_ms if not isinstance(e, CatalogItem) else e.updated_time_ms) for e in events]


def test_deterministic_for_a_seed(stream: list[Any]) -> None:
    again = list(MovieLensReplay(_dataset(), seed=3, now_ms=NOW, search_rate=0.3))
    assert _ids(again) == _ids(stream)
    other = list(MovieLensReplay(_dataset(), seed=4, now_ms=NOW, search_rate=0.3))
    assert _ids(other) != _ids(stream)


def test_catalog_first_then_events_in_time_order(stream: list[Any]) -> None:
    kinds = [isinstance(e, CatalogItem) for e in stream]
    assert kinds == sorted(kinds, reverse=True)
    catalog = [e for e in stream if isinstance(e, CatalogItem)]
    assert len(catalog) == 40 and all("runtime_minutes" in c.synthetic_fields for c in catalog)
    times = [e.event_time_ms for e in stream if not isinstance(e, CatalogItem)]
    assert times == sorted(times)
    assert max(times) <= NOW


def test_each_rating_becomes_impression_click_play_rating(stream: list[Any], replay: MovieLensReplay) -> None:
    ratings = [e for e in stream if isinstance(e, RatingEvent)]
    assert len(ratings) == len(replay.ratings) == 180
    by_user_title: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for e in stream:
        if isinstance(e, (PlayEvent, RatingEvent)) or (isinstance(e, BrowseEvent) and e.action == "CLICK"):
            by_user_title[(e.user_id, e.title_id)].append(e)  # type: ignore[arg-type]
    for chain in by_user_title.values():
        kinds = [getattr(e, "action", "RATING") for e in chain]
        assert kinds[0] == "CLICK" and kinds[1] == "START" and kinds[-1] == "RATING"
        assert kinds[-2] in ("COMPLETE", "STOP")


def test_watch_fraction_follows_the_stars(stream: list[Any]) -> None:
    last_position: dict[tuple[str, str], PlayEvent] = {}
    for e in stream:
        if isinstance(e, PlayEvent):
            last_position[(e.user_id, e.title_id)] = e
    for e in stream:
        if isinstance(e, RatingEvent):
            fraction = last_position[(e.user_id, e.title_id)].watch_fraction
            assert (fraction >= 0.8) if e.stars == 5 else True
            assert (fraction <= 0.3) if e.stars == 1 else True


def test_no_event_reveals_a_future_rating(stream: list[Any]) -> None:
    """A title shows up for a user (other than as a negative in an impression row) only once its rating is due:
    its own impression comes first, and searches never list a title the user rates later."""
    future: dict[str, set[str]] = defaultdict(set)
    for e in stream:
        if isinstance(e, RatingEvent):
            future[e.user_id].add(e.title_id)
    due: dict[str, set[str]] = defaultdict(set)  # titles whose chain (impression + click) has begun
    pending_impressions: dict[str, BrowseEvent] = {}
    for e in stream:
        if isinstance(e, BrowseEvent) and e.action == "IMPRESSION":
            pending_impressions[e.impression_id] = e
        elif isinstance(e, BrowseEvent) and e.action == "CLICK":
            assert e.impression_id in pending_impressions, "a click follows its impression"
            assert e.title_id in {i.title_id for i in pending_impressions[e.impression_id].items}
            due[e.user_id].add(e.title_id)  # type: ignore[arg-type]
        elif isinstance(e, (PlayEvent, RatingEvent)):
            assert e.title_id in due[e.user_id], f"{e.title_id} played or rated before its impression+click"
        elif isinstance(e, SearchEvent):
            upcoming = future[e.user_id] - due[e.user_id]
            assert not upcoming & set(e.result_title_ids), "search results list a title rated later"
        if isinstance(e, RatingEvent):
            future[e.user_id].discard(e.title_id)


def test_plays_of_a_user_never_overlap_and_start_after_the_rating_time(stream: list[Any],
                                                                       replay: MovieLensReplay) -> None:
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    starts: dict[str, int] = {}
    for e in stream:
        if isinstance(e, PlayEvent):
            if e.action == "START":
                starts[e.playback_id] = e.event_time_ms
            elif e.action in ("STOP", "COMPLETE"):
                spans[e.user_id].append((starts[e.playback_id], e.event_time_ms))
    assert sum(len(s) for s in spans.values()) == 180
    for user_spans in spans.values():
        user_spans.sort()
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(user_spans))
    for v in replay.viewings:  # the rule: max(rating time, end of previous play + gap)
        assert v.start_ms >= v.due_ms


def test_click_through_rate_is_well_below_one(stream: list[Any]) -> None:
    shown = sum(len(e.items) for e in stream if isinstance(e, BrowseEvent) and e.action == "IMPRESSION")
    clicks = sum(1 for e in stream if isinstance(e, BrowseEvent) and e.action == "CLICK")
    assert 0.02 < clicks / shown < 0.2


def test_speedup_compresses_the_timeline() -> None:
    slow = [e for e in MovieLensReplay(_dataset(), seed=3, now_ms=NOW) if not isinstance(e, CatalogItem)]
    fast = [e for e in MovieLensReplay(_dataset(), seed=3, now_ms=NOW, speedup=10) if not isinstance(e, CatalogItem)]
    span = lambda evs: evs[-1].event_time_ms - evs[0].event_time_ms  # noqa: E731
    assert span(fast) == pytest.approx(span(slow) / 10, rel=0.01)


def test_synthetic_load_is_deterministic_and_skewed() -> None:
    def build() -> list[Any]:
        return list(SyntheticLoad(users=50, titles=100, sessions=400, seed=1, now_ms=NOW))

    first, second = build(), build()
    assert _ids(first) == _ids(second)
    plays: dict[str, int] = defaultdict(int)
    for e in first:
        if isinstance(e, PlayEvent) and e.action == "START":
            plays[e.title_id] += 1
    ranked = sorted(plays.values(), reverse=True)
    assert sum(ranked[:10]) > 0.3 * sum(ranked)  # Zipf: the top 10% of titles take a large share


def test_same_stream_whatever_the_hash_seed(stream: list[Any]) -> None:
    """Set iteration order changes with PYTHONHASHSEED; the replay must not depend on it."""
    import hashlib
    import os
    import subprocess
    import sys

    script = (
        "import hashlib; from tests.unit.test_replay import _dataset, NOW;"
        "from infra.replay.movielens import MovieLensReplay;"
        "h = hashlib.sha1();"
        "[h.update(e.event_id.encode()) for e in MovieLensReplay(_dataset(), seed=3, now_ms=NOW, search_rate=0.3)];"
        "print(h.hexdigest())"
    )
    expected = hashlib.sha1()
    for e in stream:
        expected.update(e.event_id.encode())
    for hash_seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": hash_seed}, cwd=REPO_ROOT)
        assert out.stdout.strip() == expected.hexdigest()
