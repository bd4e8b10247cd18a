"""``user_features``: the profile changelog, the absolute profile after each flush."""

from __future__ import annotations

from typing import Any

from jobs.features.user_state import Profile


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
