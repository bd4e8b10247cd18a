"""What may be shown to whom: availability, maturity and completed titles. Pure; every row goes through it.

A title is shown only while its availability window is open in the viewer's country
and at or below the profile's maturity level; a title the catalog withdraws (window
closed, or no longer described) leaves every row. A completed title is never
recommended again outside Continue Watching (where it cannot be, being finished).
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.events import CatalogItem

MATURITY_LEVELS = ("ALL", "SEVEN_PLUS", "THIRTEEN_PLUS", "SIXTEEN_PLUS", "EIGHTEEN_PLUS")


@dataclass(frozen=True)
class Viewer:
    """Who the homepage is for, where and when: the profile's country and maturity level, the time."""

    user_id: str
    country: str = ""
    maturity_limit: str = "EIGHTEEN_PLUS"
    now_ms: int = 0

    def __post_init__(self) -> None:
        if self.maturity_limit not in MATURITY_LEVELS:
            raise ValueError(f"maturity_limit {self.maturity_limit!r} is not one of {', '.join(MATURITY_LEVELS)}")


def why_hidden(item: CatalogItem | None, viewer: Viewer) -> str | None:
    """Why ``item`` may not be shown to ``viewer`` now, or ``None`` when it may.

    >>> from connectors.events import Availability
    >>> item = CatalogItem("t1", 0, "Heat", 170, "SIXTEEN_PLUS", Availability(1_000, ["US"], 5_000))
    >>> why_hidden(item, Viewer("u1", "US", "EIGHTEEN_PLUS", now_ms=2_000)) is None
    True
    >>> why_hidden(item, Viewer("u1", "US", "THIRTEEN_PLUS", now_ms=2_000))
    'maturity SIXTEEN_PLUS above the profile limit THIRTEEN_PLUS'
    >>> why_hidden(item, Viewer("u1", "FR", now_ms=2_000))
    'not available in FR'
    >>> why_hidden(item, Viewer("u1", "US", now_ms=6_000))
    'withdrawn (available until 5000)'
    """
    if item is None:
        return "not in the catalog"
    window = item.availability
    if viewer.now_ms < window.available_from_ms:
        return f"not yet available (from {window.available_from_ms})"
    if window.available_until_ms is not None and viewer.now_ms >= window.available_until_ms:
        return f"withdrawn (available until {window.available_until_ms})"
    if window.countries and viewer.country not in window.countries:
        return f"not available in {viewer.country or 'an unknown country'}"
    if MATURITY_LEVELS.index(item.maturity_rating) > MATURITY_LEVELS.index(viewer.maturity_limit):
        return f"maturity {item.maturity_rating} above the profile limit {viewer.maturity_limit}"
    return None


def showable(item: CatalogItem | None, viewer: Viewer) -> bool:
    return why_hidden(item, viewer) is None
