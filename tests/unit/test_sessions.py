from __future__ import annotations

from jobs.features.sessions import SessionAggregates, session_features


def test_rates_guard_against_zero_and_genres_are_deduplicated() -> None:
    agg = SessionAggregates("u1", 1_790_000_000_000, 1_790_000_600_000, plays=0, completes=0, titles_played=0,
                            watch_ms=0, impressions=0, clicks=0, searches=2, events=2, genres_csv=",,",
                            device_class="MOBILE", utc_offset_minutes=60)
    s = session_features(agg)
    assert (s.completion_rate, s.ctr, s.genres, s.device_class, s.duration_ms) == (0.0, 0.0, [], "mobile", 600_000)
