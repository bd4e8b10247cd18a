"""Cassandra tables of the feature job: profile, continue watching, sessions, trending, item stats.

Rows are absolute state (never increments), so a replayed write is harmless.
"""

from __future__ import annotations

from connectors.cassandra_store import AsyncStore

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
    impression_plays, take_rate, updated_time)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_PROFILE = "SELECT * FROM {keyspace}.user_profile WHERE user_id = ?"
SELECT_CONTINUE_WATCHING = "SELECT * FROM {keyspace}.continue_watching WHERE user_id = ?"
SELECT_SESSIONS = "SELECT * FROM {keyspace}.sessions WHERE user_id = ?"
SELECT_TRENDING = "SELECT * FROM {keyspace}.trending WHERE scope = ?"
SELECT_ITEM_STATS = "SELECT * FROM {keyspace}.item_stats WHERE title_id = ?"


class FeatureStore(AsyncStore):
    """Writes (asynchronously, a bounded number in flight) and reads of the feature tables."""

    STATEMENTS = {
        "profile": UPSERT_PROFILE, "cw": UPSERT_CONTINUE_WATCHING, "cw_delete": DELETE_CONTINUE_WATCHING,
        "session": INSERT_SESSION, "trending": UPSERT_TRENDING, "item_stats": UPSERT_ITEM_STATS,
        "get_profile": SELECT_PROFILE, "get_cw": SELECT_CONTINUE_WATCHING, "get_sessions": SELECT_SESSIONS,
        "get_trending": SELECT_TRENDING, "get_item_stats": SELECT_ITEM_STATS,
    }
