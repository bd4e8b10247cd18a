"""Session features: what a closed session (a gap of inactivity ended it) adds up to.

Flink SQL's SESSION window does the grouping and the sums; this turns one window's
aggregates into the row that is stored and published.

>>> s = session_features(SessionAggregates("u1", 1_790_000_000_000, 1_790_003_600_000, plays=2, completes=1,
...     titles_played=2, watch_ms=3_000_000, impressions=20, clicks=2, searches=1, events=30,
...     genres_csv="Drama,Comedy,Drama", device_class="TV", utc_offset_minutes=-300))
>>> s.completion_rate, s.ctr, s.daypart, s.weekday, s.genres
(0.5, 0.1, 'morning', 'mon', ['Comedy', 'Drama'])
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.context import daypart, device_class, local_hour, weekday


@dataclass(frozen=True)
class SessionAggregates:
    """One row of the SQL session window."""

    user_id: str
    start_ms: int
    end_ms: int  # window end = last event + gap
    plays: int
    completes: int
    titles_played: int
    watch_ms: int
    impressions: int
    clicks: int
    searches: int
    events: int
    genres_csv: str
    device_class: str
    utc_offset_minutes: int


@dataclass(frozen=True)
class SessionFeatures:
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
    genres: list[str]
    device_class: str
    daypart: str
    weekday: str


def session_features(agg: SessionAggregates, gap_ms: int | None = None) -> SessionFeatures:
    """``gap_ms``: the window's gap, subtracted from its end to get the last event's time."""
    end = agg.end_ms - gap_ms if gap_ms else agg.end_ms
    return SessionFeatures(
        user_id=agg.user_id, start_ms=agg.start_ms, end_ms=end, duration_ms=max(0, end - agg.start_ms),
        titles_played=agg.titles_played, watch_ms=agg.watch_ms,
        completion_rate=agg.completes / agg.plays if agg.plays else 0.0,
        impressions=agg.impressions, clicks=agg.clicks, ctr=agg.clicks / agg.impressions if agg.impressions else 0.0,
        searches=agg.searches, events=agg.events,
        genres=sorted({g for g in agg.genres_csv.split(",") if g}),
        device_class=device_class(agg.device_class),
        daypart=daypart(local_hour(agg.start_ms, agg.utc_offset_minutes)),
        weekday=weekday(agg.start_ms, agg.utc_offset_minutes),
    )
