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

import threading
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors.codec import EventCodec
from connectors.config import KafkaConfig
from connectors.errors import DecodeError, UnknownSchemaError
from connectors.events import CatalogItem, from_record
from connectors.topics import TOPICS_BY_NAME


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


class CatalogAvailability(AvailabilityView):
    """An :class:`AvailabilityView` that a background thread keeps current from the catalog topic.

    Reads every partition from the beginning without a consumer group (each service
    instance holds the whole view). ``start()`` returns once the topic has been read
    to an idle gap (this broker's high watermark cannot be trusted for "caught up").
    """

    def __init__(self, kafka: KafkaConfig | None = None, codec: EventCodec | None = None,
                 poll_s: float = 0.1) -> None:
        super().__init__()
        self.kafka = kafka or KafkaConfig.load()
        self.codec = codec or EventCodec()
        self.poll_s = poll_s
        self.errors = 0  # records that did not decode: the live jobs dead-letter them, here they are skipped
        self.loaded = False  # the topic was read to its end once
        self._stop = threading.Event()
        self._last_record_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None

    def start(self, idle_s: float = 1.0, timeout_s: float = 30.0) -> CatalogAvailability:
        topic = TOPICS_BY_NAME["catalog"].full_name(self.kafka)
        consumer = Consumer(self.kafka.client_config(**{"group.id": "nextwatch-availability",
                                                        "enable.auto.commit": False}))
        partitions = consumer.list_topics(topic, timeout=self.kafka.connect_timeout_s).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self._consumer = consumer
        self._last_record_at = time.monotonic() + 1.0  # the first fetch takes a moment
        self._thread = threading.Thread(target=self._follow, name="catalog-availability", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() - self._last_record_at < idle_s and time.monotonic() < deadline:
            time.sleep(0.05)
        self.loaded = time.monotonic() - self._last_record_at >= idle_s
        return self

    @property
    def following(self) -> bool:
        """The follower thread runs (it keeps polling through a broker outage and resumes after it)."""
        return self._thread is not None and self._thread.is_alive()

    def _follow(self) -> None:
        assert self._consumer is not None
        while not self._stop.is_set():
            msg = self._consumer.poll(self.poll_s)
            if msg is None or msg.error():
                continue
            self._last_record_at = time.monotonic()
            try:
                decoded = self.codec.decode(msg.value() or b"")
            except (DecodeError, UnknownSchemaError):
                self.errors += 1
                continue
            if decoded.subject == "catalog_item":
                self.apply_record(decoded.record)

    def apply_record(self, record: dict[str, Any]) -> bool:
        """A decoded ``catalog_item`` record; True when it is the title's newest snapshot."""
        window = record["availability"]
        return self.apply(record["title_id"], record["updated_time_ms"], window["available_from_ms"],
                          window.get("available_until_ms"))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._consumer is not None:
            self._consumer.close()

    def __enter__(self) -> CatalogAvailability:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
