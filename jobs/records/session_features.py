"""``session_features``: one closed session's features."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from jobs.features.sessions import SessionFeatures


def session_record(s: SessionFeatures) -> dict[str, Any]:
    return {"event_id": f"{s.user_id}:{s.start_ms}", **{f.name: getattr(s, f.name) for f in fields(s)}}
