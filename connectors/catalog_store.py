"""The ``titles`` table: the newest catalog snapshot per title.

Each write is stamped ``USING TIMESTAMP updated_time_ms * 1000``: Cassandra keeps
the cell with the highest timestamp, so replays and out-of-order snapshots are
harmless (an older one never overwrites a newer one).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from typing import Any

import orjson

from connectors.cassandra_store import CassandraStore
from connectors.config import KafkaConfig
from connectors.consumer import read_snapshot
from connectors.events import ArtworkVariant, Availability, CatalogItem, CrewMember, from_record
from connectors.topics import TOPICS_BY_NAME

UPSERT_TITLE = """
INSERT INTO {keyspace}.titles (title_id, title, genres, sub_genres, cast_members, directors, crew_json, release_year,
    runtime_minutes, maturity_rating, countries, available_from, available_until, tags, synopsis,
    artwork_json, synthetic_fields, updated_time, event_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
USING TIMESTAMP ?
"""
SELECT_TITLE = "SELECT * FROM {keyspace}.titles WHERE title_id = ?"
SELECT_ALL_IDS = "SELECT title_id FROM {keyspace}.titles"


def read_catalog_topic(kafka: KafkaConfig, idle_s: float = 1.0) -> dict[str, CatalogItem]:
    """The newest snapshot of every title on the compacted catalog topic, read without a consumer group."""
    items: dict[str, CatalogItem] = {}
    for decoded in read_snapshot(TOPICS_BY_NAME["catalog"].full_name(kafka), kafka, idle_s=idle_s):
        if decoded.subject != "catalog_item":
            continue
        item = from_record(CatalogItem, decoded.record)
        known = items.get(item.title_id)
        if known is None or item.updated_time_ms >= known.updated_time_ms:
            items[item.title_id] = item
    return items


class CatalogStore(CassandraStore):
    STATEMENTS = {"upsert": UPSERT_TITLE, "get": SELECT_TITLE, "ids": SELECT_ALL_IDS}

    @staticmethod
    def _row(item: CatalogItem) -> tuple[Any, ...]:
        avail = item.availability
        artwork = [{"artwork_id": a.artwork_id, "uri": a.uri, "themes": a.themes} for a in item.artwork]
        return (
            item.title_id, item.title, item.genres, item.sub_genres, item.cast, item.directors,
            orjson.dumps([{"name": c.name, "role": c.role} for c in item.crew]).decode(), item.release_year,
            item.runtime_minutes, item.maturity_rating, avail.countries, avail.available_from_ms,
            avail.available_until_ms, item.tags, item.synopsis, orjson.dumps(artwork).decode(),
            item.synthetic_fields, item.updated_time_ms, item.event_id, item.updated_time_ms * 1000,
        )

    def upsert(self, items: Iterable[CatalogItem]) -> int:
        """Write the latest snapshot per title (older snapshots in the batch are dropped first)."""
        latest: dict[str, CatalogItem] = {}
        for item in items:
            seen = latest.get(item.title_id)
            if seen is None or item.updated_time_ms >= seen.updated_time_ms:
                latest[item.title_id] = item
        return self.execute_many("upsert", (self._row(i) for i in latest.values()))

    def get(self, title_id: str) -> CatalogItem | None:
        row = self.session.execute(self.statement("get"), (title_id,)).one()
        if row is None:
            return None
        artwork = [ArtworkVariant(a["artwork_id"], a["uri"], a["themes"])
                   for a in orjson.loads(row.artwork_json or "[]")]
        return CatalogItem(
            title_id=row.title_id, updated_time_ms=_millis(row.updated_time), title=row.title,
            runtime_minutes=row.runtime_minutes, maturity_rating=row.maturity_rating,
            availability=Availability(
                available_from_ms=_millis(row.available_from), countries=list(row.countries or []),
                available_until_ms=_millis(row.available_until) if row.available_until else None),
            genres=list(row.genres or []), sub_genres=list(row.sub_genres or []), cast=list(row.cast_members or []),
            directors=list(row.directors or []),
            crew=[CrewMember(c["name"], c["role"]) for c in orjson.loads(row.crew_json or "[]")],
            release_year=row.release_year,
            tags=list(row.tags or []), synopsis=row.synopsis or "", artwork=artwork,
            synthetic_fields=list(row.synthetic_fields or []), event_id=row.event_id,
        )

    def count(self) -> int:
        return sum(1 for _ in self.session.execute(self.statement("ids")))


def _millis(value: Any) -> int:
    return int(calendar.timegm(value.utctimetuple()) * 1000 + value.microsecond // 1000)

