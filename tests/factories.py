"""Factories for valid events; tests override just the fields they are about."""

from __future__ import annotations

import itertools
import time
from typing import Any

from connectors.events import (
    ArtworkVariant,
    Availability,
    BrowseEvent,
    CatalogItem,
    Context,
    CrewMember,
    PlayEvent,
    RatingEvent,
    SearchEvent,
    ShownItem,
)

_ids = itertools.count()


def now_ms() -> int:
    return int(time.time() * 1000)


def make_context(**overrides: Any) -> Context:
    return Context(**{"device_id": "tv-1", "device_class": "TV", "country": "US", "utc_offset_minutes": -300,
                      "app_version": "9.1", **overrides})


def _common(overrides: dict[str, Any]) -> dict[str, Any]:
    return {"user_id": "u1", "event_time_ms": now_ms() - 1000, "context": make_context(),
            "event_id": f"e-{next(_ids)}", **overrides}


def make_play(**overrides: Any) -> PlayEvent:
    return PlayEvent(**_common({"title_id": "t1", "action": "PROGRESS", "playback_id": "pb-1",
                                "position_ms": 60_000, "duration_ms": 5_400_000, "impression_id": "imp-1",
                                **overrides}))


def make_search(**overrides: Any) -> SearchEvent:
    return SearchEvent(**_common({"query": "space opera", "result_title_ids": ["t1", "t2", "t3"],
                                  "clicked_title_id": "t2", "clicked_position": 1, **overrides}))


def make_impression(**overrides: Any) -> BrowseEvent:
    return BrowseEvent(**_common({
        "action": "IMPRESSION", "impression_id": "imp-1", "page": "home", "row_id": "top_picks", "row_position": 0,
        "items": [ShownItem("t1", 0, "t1-art0"), ShownItem("t2", 1, None)], "presentation_token": "opaque",
        **overrides}))


def make_click(**overrides: Any) -> BrowseEvent:
    return BrowseEvent(**_common({
        "action": "CLICK", "impression_id": "imp-1", "page": "home", "row_id": "top_picks", "row_position": 0,
        "title_id": "t1", "position_in_row": 0, "artwork_id": "t1-art0", **overrides}))


def make_scroll(**overrides: Any) -> BrowseEvent:
    return BrowseEvent(**_common({"action": "SCROLL", "impression_id": "imp-9", "page": "home", "scroll_depth": 3,
                                  **overrides}))


def make_rating(**overrides: Any) -> RatingEvent:
    return RatingEvent(**_common({"title_id": "t1", "kind": "STARS", "stars": 4.5, **overrides}))


def make_catalog_item(**overrides: Any) -> CatalogItem:
    return CatalogItem(**{
        "title_id": "t1", "updated_time_ms": now_ms() - 5000, "title": "The Long Orbit", "runtime_minutes": 118,
        "maturity_rating": "THIRTEEN_PLUS",
        "availability": Availability(available_from_ms=now_ms() - 86_400_000, countries=["US", "CA"],
                                     available_until_ms=now_ms() + 86_400_000),
        "genres": ["Sci-Fi", "Drama"], "sub_genres": ["Space Opera"], "cast": ["Ava Chen", "Omar Silva"],
        "directors": ["Kira Ito"], "crew": [CrewMember("Kira Ito", "director")], "release_year": 2021,
        "tags": ["space", "slow-burn"], "synopsis": "A freighter crew finds a signal.",
        "artwork": [ArtworkVariant("t1-art0", "https://art.example/t1-0.jpg", ["space"]),
                    ArtworkVariant("t1-art1", "https://art.example/t1-1.jpg", ["couple", "emotional"])],
        "event_id": f"c-{next(_ids)}", **overrides})


ALL_FACTORIES = {
    "play": make_play, "search": make_search, "impression": make_impression, "click": make_click,
    "scroll": make_scroll, "rating": make_rating, "catalog": make_catalog_item,
}
