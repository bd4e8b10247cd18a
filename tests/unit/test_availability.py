"""The serving-time availability filter: withdrawn titles leave a stored homepage at read time."""

from __future__ import annotations

from connectors.availability import AvailabilityView
from connectors.homepage_store import Homepage, HomepageItem, HomepageRow, without_closed


def stored_page() -> Homepage:
    def row(position: int, row_id: str, *titles: str) -> HomepageRow:
        return HomepageRow(position, row_id, row_id, tuple(HomepageItem(t, 1.0, f"{t}-art", "why") for t in titles))

    return Homepage("u1", "evening:tv", "evening:tv",
                    (row(0, "top_picks", "heat", "alien"), row(1, "because_you_watched:heat", "alien"),
                     row(2, "trending", "up", "heat")), generated_ms=1_000, last_event_id="e1")


def test_a_title_withdrawn_after_the_build_leaves_every_row_and_empty_rows_go() -> None:
    view = AvailabilityView()
    view.apply("alien", updated_ms=2_000, available_from_ms=0, available_until_ms=2_000)  # withdrawn at 2 s
    view.apply("heat", updated_ms=1, available_from_ms=0, available_until_ms=None)
    page = without_closed(stored_page(), view, now_ms=2_500)
    assert [(r.position, r.row_id, [i.title_id for i in r.items]) for r in page.rows] == [
        (0, "top_picks", ["heat"]), (1, "trending", ["up", "heat"])]
    assert page.last_event_id == "e1" and page.generated_ms == 1_000


def test_before_the_window_ends_and_for_titles_never_seen_the_page_is_unchanged() -> None:
    view = AvailabilityView()
    view.apply("alien", updated_ms=2_000, available_from_ms=0, available_until_ms=5_000)
    page = stored_page()
    assert without_closed(page, view, now_ms=4_999) is page  # "up" and "heat" are unknown: not judged


def test_a_scheduled_start_hides_a_title_until_it_opens_and_the_newest_snapshot_wins() -> None:
    view = AvailabilityView()
    view.apply("up", updated_ms=10, available_from_ms=9_000, available_until_ms=None)
    assert [i.title_id for i in without_closed(stored_page(), view, now_ms=8_000).rows[2].items] == ["heat"]
    view.apply("up", updated_ms=5, available_from_ms=0, available_until_ms=None)  # older: ignored
    assert view.closed("up", now_ms=8_000)
    view.apply("up", updated_ms=11, available_from_ms=0, available_until_ms=None)  # moved forward: shown
    assert not view.closed("up", now_ms=8_000)
