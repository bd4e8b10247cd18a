"""What an event teaches the models: one rule, shared by ``nextwatch eval`` and the learning job.

* a play's START says the user chose the title (weak); its STOP or COMPLETE says how
  much they watched (the watch fraction; a finished title is 1.0);
* a click on a shown title is a weak positive;
* a star rating is explicit (1-5) and, above 2 stars, an implicit positive too
  (weight ``(stars - 2) / 3``);
  thumbs up counts as 5 stars, thumbs down as 1;
* impressions, scrolls, heartbeats and pauses teach nothing here (being shown is
  not being touched); a search is not feedback on a title but a signal of its own
  (:func:`search_from_event`, :mod:`jobs.models.search`).
"""

from __future__ import annotations

from typing import Any

from jobs.features.user_state import COMPLETION_FRACTION
from jobs.models.base import Feedback, Search

START_WEIGHT = 0.3
CLICK_WEIGHT = 0.2


def feedback_from_event(event: Any) -> Feedback | None:
    """The model feedback in a decoded user event, or ``None`` when it teaches nothing.

    >>> from connectors.events import Context, RatingEvent
    >>> event = RatingEvent("u1", 1_000, Context("d", "TV", "US", 0), "m1", "STARS", 4.0, event_id="e1")
    >>> feedback_from_event(event)  # doctest: +ELLIPSIS
    Feedback(user_id='u1', title_id='m1', time_ms=1000, weight=0.666..., rating=4.0)
    """
    kind = type(event).__name__
    if kind == "PlayEvent":
        if event.action == "START":
            return Feedback(event.user_id, event.title_id, event.event_time_ms, START_WEIGHT)
        if event.action in ("STOP", "COMPLETE"):
            fraction = 1.0 if event.action == "COMPLETE" else event.position_ms / max(event.duration_ms, 1)
            fraction = 1.0 if fraction >= COMPLETION_FRACTION else max(0.0, fraction)
            return Feedback(event.user_id, event.title_id, event.event_time_ms, fraction)
        return None
    if kind == "BrowseEvent":
        if event.action == "CLICK" and event.title_id:
            return Feedback(event.user_id, event.title_id, event.event_time_ms, CLICK_WEIGHT)
        return None
    if kind == "RatingEvent":
        stars = {"THUMBS_UP": 5.0, "THUMBS_DOWN": 1.0}.get(event.kind, event.stars)
        if stars is None:
            return None
        stars = min(5.0, max(1.0, float(stars)))
        return Feedback(event.user_id, event.title_id, event.event_time_ms, max(0.0, (stars - 2.0) / 3.0), stars)
    return None


def search_from_event(event: Any) -> Search | None:
    """The search in a decoded SearchEvent (``None`` for any other event or an empty query)."""
    if type(event).__name__ != "SearchEvent" or not event.query.strip():
        return None
    return Search(event.user_id, event.query, event.event_time_ms, event.clicked_title_id)
