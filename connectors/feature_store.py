"""Cassandra tables of the feature job: profile, continue watching, sessions, trending, item stats.

Rows are absolute state (never increments), so a replayed write is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cassandra.cluster import ResponseFuture
from cassandra.query import BatchStatement, BatchType

from connectors.cassandra_store import CassandraStore

UPSERT_PROFILE = """
INSERT INTO {keyspace}.user_profile (user_id, version, updated_time, last_event_id, genre_affinity, daypart_plays,
    device_plays, total_watch_ms, recent_watch_ms, preferred_runtime_minutes, recent_searches, written_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
UPSERT_CONTINUE_WATCHING = """
INSERT INTO {keyspace}.continue_watching (user_id, title_id, position_ms, duration_ms, last_watched, playback_id)
VALUES (?, ?, ?, ?, ?, ?)
"""
DELETE_CONTINUE_WATCHING = "DELETE FROM {keyspace}.continue_watching WHERE user_id = ? AND title_id = ?"
INSERT_SESSION = """
INSERT INTO {keyspace}.sessions (user_id, session_start, session_end, duration_ms, titles_played, watch_ms,
    completion_rate, impressions, clicks, ctr, searches, events, genres, device_class, daypart, weekday)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
UPSERT_TRENDING = "INSERT INTO {keyspace}.trending (scope, rank, title_id, plays, window_end) VALUES (?, ?, ?, ?, ?)"
UPSERT_ITEM_STATS = """
INSERT INTO {keyspace}.item_stats (title_id, artwork_id, impressions, clicks, plays, completes, ctr, completion_rate,
    updated_time)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_PROFILE = "SELECT * FROM {keyspace}.user_profile WHERE user_id = ?"
SELECT_CONTINUE_WATCHING = "SELECT * FROM {keyspace}.continue_watching WHERE user_id = ?"
SELECT_SESSIONS = "SELECT * FROM {keyspace}.sessions WHERE user_id = ?"
SELECT_TRENDING = "SELECT * FROM {keyspace}.trending WHERE scope = ?"
SELECT_ITEM_STATS = "SELECT * FROM {keyspace}.item_stats WHERE title_id = ?"


class FeatureStore(CassandraStore):
    """Writes (asynchronously, a bounded number in flight) and reads of the feature tables."""

    STATEMENTS = {
        "profile": UPSERT_PROFILE, "cw": UPSERT_CONTINUE_WATCHING, "cw_delete": DELETE_CONTINUE_WATCHING,
        "session": INSERT_SESSION, "trending": UPSERT_TRENDING, "item_stats": UPSERT_ITEM_STATS,
        "get_profile": SELECT_PROFILE, "get_cw": SELECT_CONTINUE_WATCHING, "get_sessions": SELECT_SESSIONS,
        "get_trending": SELECT_TRENDING, "get_item_stats": SELECT_ITEM_STATS,
    }
    MAX_IN_FLIGHT = 128

    def __init__(self, session: Any, keyspace: str) -> None:
        super().__init__(session, keyspace)
        self._in_flight: list[ResponseFuture] = []

    def write(self, statement: str, params: tuple[Any, ...]) -> None:
        """Queue one write; blocks (and raises the first failure) once MAX_IN_FLIGHT are outstanding."""
        self._in_flight.append(self.session.execute_async(self.statement(statement), params))
        if len(self._in_flight) >= self.MAX_IN_FLIGHT:
            self.drain()

    def write_together(self, writes: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Several writes of one key (e.g. a user's profile and continue-watching rows) in one request.

        An UNLOGGED batch: no atomicity across tables is promised, it only saves
        round trips and client work (each request costs the Python driver ~0.1 ms).
        """
        if len(writes) == 1:
            self.write(*writes[0])
            return
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for statement, params in writes:
            batch.add(self.statement(statement), params)
        self._in_flight.append(self.session.execute_async(batch))
        if len(self._in_flight) >= self.MAX_IN_FLIGHT:
            self.drain()

    def drain(self) -> int:
        """Wait for every queued write; raises the first error."""
        pending, self._in_flight = self._in_flight, []
        for future in pending:
            future.result()
        return len(pending)

    def rows(self, statement: str, *params: Any) -> list[Any]:
        return list(self.session.execute(self.statement(statement), params))

    def write_all(self, statement: str, rows: Iterable[tuple[Any, ...]]) -> None:
        for params in rows:
            self.write(statement, params)
        self.drain()
