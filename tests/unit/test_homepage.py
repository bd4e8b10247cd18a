"""The homepage's rows, rules and controls (jobs/homepage), without Flink or Cassandra."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from connectors.events import ArtworkVariant, Availability, CatalogItem
from jobs.homepage.rows import (
    HomepageSettings,
    InProgressTitle,
    Row,
    SharedSignals,
    UserSignals,
    build_homepage,
    catalog_indexes,
)
from jobs.homepage.rules import Viewer

NOW = 1_800_000_000_000
DAY = 86_400_000
GENRES = ("Drama", "Comedy", "Horror", "Sci-Fi")


def title(n: int, **overrides: Any) -> CatalogItem:
    """Title t<n>: genre by n % 4, popularity falling with n, on since 100 days unless said."""
    fields: dict[str, Any] = {
        "title_id": f"t{n}", "updated_time_ms": 0, "title": f"Title {n}", "runtime_minutes": 90,
        "maturity_rating": "THIRTEEN_PLUS", "availability": Availability(NOW - 100 * DAY),
        "genres": [GENRES[n % 4]], "artwork": [ArtworkVariant(f"t{n}-art0", "https://art/x.jpg")]}
    return CatalogItem(**{**fields, **overrides})


@pytest.fixture
def make_shared() -> Callable[..., SharedSignals]:
    def make(catalog: list[CatalogItem] | None = None, **overrides: Any) -> SharedSignals:
        items = {item.title_id: item for item in (catalog or [title(n) for n in range(40)])}
        popularity = {t: 1.0 - int(t[1:]) / 40 for t in items}
        by_genre, newest = catalog_indexes(items, popularity)
        similar = {f"t{n}": [(f"t{m}", 1.0 / (1 + abs(m - n))) for m in range(40) if m != n and m % 4 == n % 4]
                   for n in range(40)}
        fields: dict[str, Any] = {"catalog": items, "similar": similar, "popularity": popularity,
                                  "trending": {"global": [f"t{n}" for n in range(10)],
                                               "context:evening:tv": ["t30", "t31", "t32"]},
                                  "by_genre": by_genre, "newest": newest}
        return SharedSignals(**{**fields, **overrides})

    return make


FAN = UserSignals(
    continue_watching=(InProgressTitle("t5", 600_000, 3_600_000, NOW - 3 * DAY),
                       InProgressTitle("t9", 60_000, 3_600_000, NOW - DAY)),
    completed=frozenset({"t0", "t4", "t8"}),
    anchors=("t8", "t4"),
    top_picks=tuple((f"t{n}", 1.0 - n / 100, "item_cf") for n in (0, 12, 16, 20, 13, 17, 21, 25)),
    genre_affinity={"Drama": 0.9, "Horror": 0.2})
VIEWER = Viewer("fan", "US", "EIGHTEEN_PLUS", NOW)


def titles_of(rows: list[Row]) -> list[str]:
    return [item.title_id for row in rows for item in row.items]


def test_rows_in_order_with_their_reasons(make_shared: Callable[..., SharedSignals]) -> None:
    rows = build_homepage(FAN, make_shared(), VIEWER, "evening:tv", HomepageSettings(items_per_row=3))
    ids = [row.row_id for row in rows]
    assert ids[:4] == ["continue_watching", "top_picks", "because_you_watched:t8", "because_you_watched:t4"]
    # every Drama title is already on the page (picks, similar) or completed: its genre row is dropped, not empty
    assert ids[4:] == ["trending", "genre:Horror"]
    continue_watching = rows[0]
    assert [i.title_id for i in continue_watching.items] == ["t9", "t5"]  # most recent first
    assert rows[2].title == "Because You Watched Title 8"
    assert all(i.reason == "similar to t8" for i in rows[2].items)
    assert all(i.artwork_id == f"{i.title_id}-art0" for row in rows for i in row.items)
    trending = next(row for row in rows if row.row_id == "trending")
    # the viewer's context bucket's trending titles; t32 is already in "Because You Watched Title 8"
    assert [i.title_id for i in trending.items] == ["t30", "t31"] and "t32" in titles_of(rows[2:3])


def test_completed_titles_never_return_and_each_title_shows_once(make_shared: Callable[..., SharedSignals]) -> None:
    rows = build_homepage(FAN, make_shared(), VIEWER, "evening:tv", HomepageSettings(items_per_row=40))
    shown = titles_of(rows)
    assert not set(shown) & FAN.completed  # t0 was a top pick, t4 and t8 similar to each other: all left out
    assert len(shown) == len(set(shown))
    assert "t5" not in titles_of(rows[1:])  # in progress: only in Continue Watching


def test_nothing_hidden_is_shown(make_shared: Callable[..., SharedSignals]) -> None:
    catalog = [title(n) for n in range(40)]
    catalog[12] = title(12, availability=Availability(NOW - 100 * DAY, available_until_ms=NOW - 1))  # withdrawn
    catalog[16] = title(16, maturity_rating="EIGHTEEN_PLUS")
    catalog[20] = title(20, availability=Availability(NOW - 100 * DAY, countries=["FR"]))
    catalog[13] = title(13, availability=Availability(NOW + DAY))  # not yet
    del catalog[17]  # no longer in the catalog at all
    teen = Viewer("fan", "US", "SIXTEEN_PLUS", NOW)
    shown = set(titles_of(build_homepage(FAN, make_shared(catalog), teen, "evening:tv",
                                         HomepageSettings(items_per_row=40))))
    assert not shown & {"t12", "t13", "t16", "t17", "t20"}
    assert "t21" in shown  # the other picks stay


def test_a_new_user_gets_trending_for_their_context_and_popular_genres(
        make_shared: Callable[..., SharedSignals]) -> None:
    rows = build_homepage(UserSignals(), make_shared(), Viewer("new", "US", now_ms=NOW), "morning:mobile")
    ids = [row.row_id for row in rows]
    assert ids[0] == "trending" and "top_picks" not in ids and "continue_watching" not in ids
    assert [i.title_id for i in rows[0].items][:3] == ["t0", "t1", "t2"]  # no context ranking: overall
    assert {"genre:Drama", "genre:Comedy"} <= set(ids)


def test_new_titles_reach_a_matching_profile(make_shared: Callable[..., SharedSignals]) -> None:
    catalog = [title(n) for n in range(40)] + [title(40, availability=Availability(NOW - 2 * DAY)),
                                               title(41, availability=Availability(NOW - 3 * DAY))]
    content = {f"t{n}": np.eye(4, dtype=np.float32)[n % 4] for n in range(42)}
    horror_fan = UserSignals(profile=np.array([0.0, 0.1, 0.0, 1.0], dtype=np.float32))  # mostly Sci-Fi (n % 4 == 3)
    rows = build_homepage(horror_fan, make_shared(catalog, content=content), VIEWER, "evening:tv")
    new = next(row for row in rows if row.row_id == "new_for_you")
    assert [i.title_id for i in new.items] == ["t41", "t40"]  # t41 is Sci-Fi; t40 Drama comes after
    assert new.items[0].reason == "new, like what you watch"


def genre_spread(rows: list[Row], catalog: dict[str, CatalogItem]) -> float:
    lists = [[catalog[i.title_id].genres[0] for i in row.items] for row in rows if len(row.items) > 1]
    return float(np.mean([len(set(genres)) / len(genres) for genres in lists]))


def test_the_controls_move_what_they_control(make_shared: Callable[..., SharedSignals]) -> None:
    shared = make_shared()
    picks = UserSignals(top_picks=tuple((f"t{n}", 1.0 - n / 50, "item_cf") for n in range(40)))
    plain = build_homepage(picks, shared, VIEWER, "evening:tv", HomepageSettings(diversity=0, popularity_penalty=0))
    diverse = build_homepage(picks, shared, VIEWER, "evening:tv", HomepageSettings(diversity=0.8,
                                                                                 popularity_penalty=0))
    assert genre_spread(diverse[:1], dict(shared.catalog)) >= genre_spread(plain[:1], dict(shared.catalog))
    # the picks' scores fall with n as popularity does: a strong penalty turns the order round
    unpopular = build_homepage(picks, shared, VIEWER, "evening:tv",
                               HomepageSettings(diversity=0, popularity_penalty=1.0, items_per_row=10))
    assert [i.title_id for i in plain[0].items][:3] == ["t0", "t1", "t2"]
    assert np.mean([int(i.title_id[1:]) for i in unpopular[0].items]) > np.mean(
        [int(i.title_id[1:]) for i in plain[0].items[:10]])


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="diversity"):
        HomepageSettings(diversity=2)
    with pytest.raises(ValueError, match="maturity_limit 'R'"):
        Viewer("u", maturity_limit="R")


def test_the_rows_state_follows_events_and_newer_model_updates() -> None:
    from connectors.events import Context, PlayEvent, RatingEvent
    from jobs.homepage.state import RowsUser

    user = RowsUser()
    tv, phone = Context("tv", "TV", "US", 60), Context("phone", "MOBILE", "FR", 60)
    events = [PlayEvent("u", NOW, tv, "t1", "STOP", "p1", 600_000, 3_600_000, event_id="e1"),
              PlayEvent("u", NOW + 1, tv, "t2", "STOP", "p2", 3_500_000, 3_600_000, event_id="e2"),  # 97%: done
              RatingEvent("u", NOW + 2, phone, "t3", "STARS", 4.5, event_id="e3"),
              RatingEvent("u", NOW - DAY, tv, "t4", "STARS", 2.0, event_id="e4")]  # old, weak: no anchor
    assert all(user.apply_event(event) for event in events)
    signals = user.signals()
    assert [e.title_id for e in signals.continue_watching] == ["t1"]
    assert signals.completed == {"t2"} and signals.anchors == ("t3", "t2")  # newest first
    assert (user.device_class, user.country) == ("MOBILE", "FR")  # the newest event's, not the last to arrive
    assert user.bucket(NOW).endswith(":mobile")

    from jobs.records.user_update import UserUpdate

    update = UserUpdate("u1", 3, "e3", (("t5", 0.5, "content"),), (1.0, 0.0))
    assert user.apply_update(update) and user.signals().top_picks == (("t5", 0.5, "content"),)
    assert not user.apply_update(UserUpdate("u1", 2, "e2", (("t9", 0.5, "content"),), ()))  # older: ignored
    assert user.model_event_id == "e3" and user.signals().profile is not None


def test_rows_job_pieces() -> None:
    from connectors.errors import ConfigError
    from jobs.flink.rows.config import RowsJobConfig
    from jobs.homepage.page import stored_rows
    from jobs.homepage.rows import Item
    from jobs.homepage.shared import percentiles

    rows = [Row("top_picks", "Top Picks for You", (Item("t1", 0.5, "top pick: content", "t1-art"),))]
    stored = stored_rows(rows)
    assert stored[0].position == 0 and stored[0].items[0].artwork_id == "t1-art"
    assert percentiles({"a": 1.0}) == {"a": 0.0}
    with pytest.raises(ConfigError, match=r"\[rows\] diversity"):
        RowsJobConfig(diversity=3.0)
    with pytest.raises(ConfigError, match=r"\[rows\] explore_after"):
        RowsJobConfig(explore_after=0)


def test_broadcast_state_keeps_the_newest_per_title() -> None:
    from jobs.runtime import keep_newest as _kept

    class MapState(dict[str, Any]):
        def put(self, key: str, value: Any) -> None:
            self[key] = value

    state = MapState()
    assert _kept(state, "t1", 2, lambda known: known <= 2)
    assert not _kept(state, "t1", 1, lambda known: known <= 1) and state["t1"] == 2
    assert _kept(state, "t1", 2, lambda known: known <= 2)  # the same version again: harmless
