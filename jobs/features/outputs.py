"""Feature objects -> what is written: Cassandra parameters and Avro records for topics. Pure."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from jobs.features.sessions import SessionFeatures
from jobs.features.user_state import InProgress, Profile


def now_ms() -> int:
    return int(time.time() * 1000)


def profile_params(user_id: str, profile: Profile, last_event_id: str, written_ms: int) -> tuple[Any, ...]:
    return (user_id, profile.version, profile.updated_ms, last_event_id, dict(profile.genre_affinity),
            dict(profile.daypart_plays), dict(profile.device_plays), profile.total_watch_ms,
            float(profile.recent_watch_ms), float(profile.preferred_runtime_minutes), list(profile.recent_searches),
            written_ms)


def profile_record(user_id: str, profile: Profile, last_event_id: str) -> dict[str, Any]:
    return {
        "event_id": f"{user_id}:{profile.version}", "user_id": user_id, "version": profile.version,
        "updated_ms": profile.updated_ms, "last_event_id": last_event_id,
        "genre_affinity": {g: float(v) for g, v in profile.genre_affinity.items()},
        "daypart_plays": dict(profile.daypart_plays), "device_plays": dict(profile.device_plays),
        "total_watch_ms": profile.total_watch_ms, "recent_watch_ms": float(profile.recent_watch_ms),
        "preferred_runtime_minutes": float(profile.preferred_runtime_minutes),
        "recent_searches": list(profile.recent_searches),
    }


def continue_watching_params(user_id: str, title_id: str, entry: InProgress) -> tuple[Any, ...]:
    return (user_id, title_id, entry.position_ms, entry.duration_ms, entry.last_watched_ms, entry.playback_id)


def session_params(s: SessionFeatures) -> tuple[Any, ...]:
    return (s.user_id, s.start_ms, s.end_ms, s.duration_ms, s.titles_played, s.watch_ms, s.completion_rate,
            s.impressions, s.clicks, s.ctr, s.searches, s.events, s.genres, s.device_class, s.daypart, s.weekday)


def session_record(s: SessionFeatures) -> dict[str, Any]:
    return {"event_id": f"{s.user_id}:{s.start_ms}", **{k: getattr(s, k) for k in s.__dataclass_fields__}}


def item_stats_params(title_id: str, artwork_id: str, impressions: int, clicks: int, plays: int, completes: int,
                      impression_plays: int, updated_ms: int) -> tuple[Any, ...]:
    """An item_stats row: clicks and impression plays are the impression join's (jobs/exploration/rewards.py).

    >>> item_stats_params("heat", "heat-art0", 200, 10, 0, 0, 4, 0)[6:10]
    (0.05, 0.0, 4, 0.02)
    """
    return (title_id, artwork_id, impressions, clicks, plays, completes,
            clicks / impressions if impressions else 0.0, completes / plays if plays else 0.0,
            impression_plays, impression_plays / impressions if impressions else 0.0, updated_ms)


def content_id(original: bytes) -> str:
    """A digest of a message's bytes, the same in every process (Python's ``hash()`` is not).

    >>> content_id(b"not avro")
    '67ad917065c92c489215038a9a395b33'
    """
    return hashlib.blake2b(original, digest_size=16).hexdigest()


def rejection_record(kind: str, reason: str, job: str, original: bytes, source_topic: str = "",
                     event: Any = None, position: str = "") -> dict[str, Any]:
    """A RejectedEvent. Its id is stable: the same message rejected again (a restart re-reads it) gets the
    same id, from the event id, ``position`` (e.g. topic/partition/offset) or else the bytes' digest."""
    original_id = getattr(event, "event_id", None)
    return {
        "event_id": f"{job}:{kind}:{original_id or position or content_id(original)}",
        "kind": kind, "reason": reason, "job": job, "source_topic": source_topic,
        "original_event_id": original_id, "user_id": getattr(event, "user_id", None),
        "event_time_ms": getattr(event, "event_time_ms", None), "rejected_time_ms": now_ms(), "original": original,
    }
