"""``user_update``: what the rows job needs of a user's models after each of the learning job's flushes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobs.models.online import MODEL_VERSION, UserModel
from jobs.models.signals import Pick


@dataclass(frozen=True)
class UserUpdate:
    """A user-updates record as the rows job reads it."""

    user_id: str
    version: int  # the user's model version: a reader keeps the highest
    last_event_id: str  # the last user event the models reflect
    picks: tuple[tuple[str, float, str], ...]  # (title, score, reason), best first
    content_profile: tuple[float, ...]


def user_update_record(user_id: str, user: UserModel, picks: list[Pick], ingest_ms: int) -> dict[str, Any]:
    """The user-updates record of one flush."""
    profile = [] if user.profile is None else [float(v) for v in user.profile]
    return {"schema_version": 1, "event_id": f"{user_id}:{user.version}", "user_id": user_id,
            "model_version": MODEL_VERSION, "version": user.version, "last_event_id": user.last_event_id,
            "updated_ms": user.updated_ms, "pick_ids": [p.title_id for p in picks],
            "pick_scores": [p.score for p in picks], "pick_reasons": [p.reason for p in picks],
            "recent_titles": list(user.recent), "content_profile": profile, "ingest_time_ms": ingest_ms}


def user_update_from_record(record: dict[str, Any]) -> UserUpdate | None:
    """The update, or ``None`` for another model version (its picks and profile mean something else)."""
    if record["model_version"] != MODEL_VERSION:
        return None
    return UserUpdate(record["user_id"], record["version"], record["last_event_id"],
                      tuple(zip(record["pick_ids"], record["pick_scores"], record["pick_reasons"], strict=True)),
                      tuple(record["content_profile"]))
