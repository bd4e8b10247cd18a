"""The learning job's Cassandra snapshots back into model state: how a new job warm-starts. Pure; no Flink."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import numpy as np

from connectors.model_store import UNSIGNED
from jobs.dedupe import UNKNOWN_CONTENT
from jobs.models.online import MODEL_VERSION, ItemVectors, UserModel, seen_key


def user_model_from_row(row: Any) -> UserModel | None:
    """A ``user_vectors`` row as the user's state (a new job's warm start), ``None`` for another model version.

    The row carries the recent event ids' hashes (not their content), so events redelivered after the warm
    start are skipped as a restored job would skip them (any content taken to match).
    """
    if row.model_version != MODEL_VERSION:
        return None

    def vector(values: list[float] | None) -> np.ndarray | None:
        return np.array(values, dtype=np.float32) if values else None

    return UserModel(rating_vector=vector(row.rating_vector), rating_bias=row.rating_bias or 0.0,
                     ratings=row.ratings or 0, implicit_vector=vector(row.implicit_vector),
                     recent=list(row.recent_titles or []),
                     seen=dict.fromkeys((seen_key(h & UNSIGNED) for h in row.recent_event_hashes or []),
                                        UNKNOWN_CONTENT),
                     version=row.version, last_event_id=row.last_event_id or "",
                     updated_ms=int(row.updated_time.replace(tzinfo=UTC).timestamp() * 1000),
                     profile=vector(row.content_profile), searches=sorted((row.recent_searches or {}).items()))


def item_vectors_from_row(row: Any) -> ItemVectors:
    """A Cassandra ``item_vectors`` row (the warm-start snapshot) as vectors, neighbours left to the next publish."""
    return ItemVectors(row.title_id, row.version, np.array(row.rating_vector or [], dtype=np.float32),
                       row.rating_bias, np.array(row.implicit_vector or [], dtype=np.float32), row.implicit_bias,
                       row.touches, (), int(row.updated_time.replace(tzinfo=UTC).timestamp() * 1000))
