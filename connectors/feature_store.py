"""Cassandra tables of the feature job: profile, continue watching, sessions, trending, item stats.

Rows are absolute state (never increments), so a replayed write is harmless. Writers call the typed
methods below, which build each statement's parameters in its column order beside its CQL; what
they are given is described by the protocols here (the feature job's own types fit them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from connectors.cassandra_store import AsyncStore


class ProfileFields(Protocol):
    version: int
    updated_ms: int
    genre_affinity: Mapping[str, float]
    daypart_plays: Mapping[str, int]
    device_plays: Mapping[str, int]
    total_watch_ms: int
    recent_watch_ms: float
    preferred_runtime_minutes: float
    recent_searches: Sequence[str]


class InProgressFields(Protocol):
    position_ms: int
    duration_ms: int
    last_watched_ms: int
    playback_id: str


class SessionFields(Protocol):
    user_id: str
    start_ms: int
    end_ms: int
    duration_ms: int
    titles_played: int
    watch_ms: int
    completion_rate: float
    impressions: int
    clicks: int
    ctr: float
    searches: int
    events: int
    genres: Sequence[str]
    device_class: str
    daypart: str
    weekday: str

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
# a member's rows in every feature table keyed by member (erasure)
ERASE_PROFILE = "DELETE FROM {keyspace}.user_profile WHERE user_id = ?"
ERASE_CONTINUE_WATCHING = "DELETE FROM {keyspace}.continue_watching WHERE user_id = ?"
ERASE_SESSIONS = "DELETE FROM {keyspace}.sessions WHERE user_id = ?"
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
        "erase_profile": ERASE_PROFILE, "erase_cw": ERASE_CONTINUE_WATCHING, "erase_sessions": ERASE_SESSIONS,
    }
    MEMBER_TABLES = ("user_profile", "continue_watching", "sessions")

    def erase_member(self, user_id: str) -> None:
        """Delete the member's profile, continue-watching and session rows (queued like every write)."""
        for statement in ("erase_profile", "erase_cw", "erase_sessions"):
            self.write(statement, (user_id,))

    def write_user_features(self, user_id: str, profile: ProfileFields, last_event_id: str,
                            continue_watching: Mapping[str, InProgressFields | None], written_ms: int) -> None:
        """A user's profile and their continue-watching changes (None: the title left the row), in one batch."""
        writes: list[tuple[str, tuple[Any, ...]]] = [("profile", (
            user_id, profile.version, profile.updated_ms, last_event_id, dict(profile.genre_affinity),
            dict(profile.daypart_plays), dict(profile.device_plays), profile.total_watch_ms,
            float(profile.recent_watch_ms), float(profile.preferred_runtime_minutes), list(profile.recent_searches),
            written_ms))]
        for title_id, entry in continue_watching.items():
            if entry is None:
                writes.append(("cw_delete", (user_id, title_id)))
            else:
                writes.append(("cw", (user_id, title_id, entry.position_ms, entry.duration_ms, entry.last_watched_ms,
                                      entry.playback_id)))
        self.write_together(writes)

    def write_session(self, s: SessionFields) -> None:
        self.write("session", (s.user_id, s.start_ms, s.end_ms, s.duration_ms, s.titles_played, s.watch_ms,
                               s.completion_rate, s.impressions, s.clicks, s.ctr, s.searches, s.events, list(s.genres),
                               s.device_class, s.daypart, s.weekday))

    def write_trending(self, scope: str, window_end_ms: int, ranks: Mapping[int, tuple[str, int]]) -> None:
        """One window's ranking of a scope: rank -> (title, plays)."""
        for rank, (title_id, plays) in ranks.items():
            self.write("trending", (scope, rank, title_id, plays, window_end_ms))

    def write_item_stats(self, title_id: str, artwork_id: str, impressions: int, clicks: int, plays: int,
                         completes: int, impression_plays: int, updated_ms: int) -> None:
        """A title's (or one artwork's) running totals; ``artwork_id`` '' for the title's total."""
        self.write("item_stats", item_stats_params(title_id, artwork_id, impressions, clicks, plays, completes,
                                                   impression_plays, updated_ms))


def item_stats_params(title_id: str, artwork_id: str, impressions: int, clicks: int, plays: int, completes: int,
                      impression_plays: int, updated_ms: int) -> tuple[Any, ...]:
    """An item_stats row with its rates: clicks and impression plays are the impression join's.

    >>> item_stats_params("heat", "heat-art0", 200, 10, 0, 0, 4, 0)[6:10]  # ctr, completion, plays, take rate
    (0.05, 0.0, 4, 0.02)
    """
    return (title_id, artwork_id, impressions, clicks, plays, completes,
            clicks / impressions if impressions else 0.0, completes / plays if plays else 0.0,
            impression_plays, impression_plays / impressions if impressions else 0.0, updated_ms)
