"""Each title's availability window, followed live from the catalog topic: the serving-time filter.

A homepage is built with the catalog the rows job knew then. A title withdrawn
later (the catalog sets its ``available_until_ms`` to now, or a scheduled end
passes) must leave every homepage at once, not at each member's next rebuild, so
the read client checks the items it returns against this view
(:class:`connectors.homepage_store.HomepageClient`). It is not a cache of
homepages: every read still reads Cassandra; it is the catalog's availability,
pushed by the catalog topic within milliseconds of a change.

>>> view = AvailabilityView()
>>> view.apply("t1", updated_ms=1, available_from_ms=0, available_until_ms=5_000)
True
>>> view.closed("t1", now_ms=4_000), view.closed("t1", now_ms=5_000), view.closed("unknown", now_ms=0)
(False, True, False)
>>> view.apply("t1", updated_ms=0, available_from_ms=0, available_until_ms=None)  # an older snapshot: ignored
False
>>> view.closed("t1", now_ms=6_000)
True
"""

from __future__ import annotations

from typing import Any

from connectors.codec import EventCodec
from connectors.config import KafkaConfig
from connectors.events import CatalogItem, from_record
from connectors.follower import TopicFollower


class AvailabilityView:
    """title_id -> (catalog updated time, window start, window end); the newest snapshot of a title wins."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int, int | None]] = {}
        self.version = 0  # counts changed windows: what was filtered at one version holds until the next

    def apply(self, title_id: str, updated_ms: int, available_from_ms: int, available_until_ms: int | None) -> bool:
        """Take a title's snapshot; True when it is the newest seen (older ones are ignored)."""
        known = self._windows.get(title_id)
        if known is not None and updated_ms < known[0]:
            return False
        window = (updated_ms, available_from_ms, available_until_ms)
        if known is None or known[1:] != window[1:]:
            self.version += 1
        self._windows[title_id] = window
        return True

    def closed(self, title_id: str, now_ms: int) -> bool:
        """True when the title's window is not open at ``now_ms``; a title never seen is not judged."""
        window = self._windows.get(title_id)
        if window is None:
            return False
        _, start, end = window
        return now_ms < start or (end is not None and now_ms >= end)

    def __len__(self) -> int:
        return len(self._windows)


class CatalogAvailability(AvailabilityView, TopicFollower):
    """An :class:`AvailabilityView` that a background thread keeps current from the catalog topic
    (:class:`connectors.follower.TopicFollower`)."""

    TOPIC, SUBJECT = "catalog", "catalog_item"

    def __init__(self, kafka: KafkaConfig | None = None, codec: EventCodec | None = None,
                 poll_s: float = 0.1) -> None:
        AvailabilityView.__init__(self)
        TopicFollower.__init__(self, kafka, codec, poll_s)

    def apply_record(self, record: dict[str, Any]) -> bool:
        """A decoded ``catalog_item`` record; True when it is the title's newest snapshot."""
        window = record["availability"]
        return self.apply(record["title_id"], record["updated_time_ms"], window["available_from_ms"],
                          window.get("available_until_ms"))


class CatalogReplica(CatalogAvailability):
    """A :class:`CatalogAvailability` that also keeps each title's newest snapshot (names, artwork, genres).

    What ``nextwatch serve`` answers ``/v1/titles/{id}`` from and names a page's titles with. At most
    ``max_titles`` titles are kept (``refused`` counts the snapshots of titles past it).
    """

    def __init__(self, kafka: KafkaConfig | None = None, codec: EventCodec | None = None, poll_s: float = 0.1,
                 max_titles: int = 1_000_000) -> None:
        super().__init__(kafka, codec, poll_s)
        self.max_titles = max_titles
        self.refused = 0
        self._items: dict[str, CatalogItem] = {}

    def apply_record(self, record: dict[str, Any]) -> bool:
        return self.put(from_record(CatalogItem, record))

    def put(self, item: CatalogItem) -> bool:
        """Take a title's snapshot; True when it is the newest seen and was kept."""
        if item.title_id not in self._items and len(self._items) >= self.max_titles:
            self.refused += 1
            return False
        window = item.availability
        if not self.apply(item.title_id, item.updated_time_ms, window.available_from_ms, window.available_until_ms):
            return False
        known = self._items.get(item.title_id)
        if known is not None and known != item:
            self.version += 1  # a name or artwork changed: what was named from the old snapshot is stale
        self._items[item.title_id] = item
        return True

    def item(self, title_id: str) -> CatalogItem | None:
        return self._items.get(title_id)
