"""The learning job's outputs: model state -> Cassandra parameters and topic records, and back. Pure; no Flink.

``MODEL_VERSION`` names what the vectors mean: rows and records of another version are ignored
(another dimension, another meaning), by the learning job's warm start and by the rows job alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from jobs.models.online import ItemVectors, UserModel
from jobs.models.signals import Pick

MODEL_VERSION = "online-mf-cf-v1"  # bump when LearningConfig's meaning changes


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _floats(vector: np.ndarray | None) -> list[float]:
    return [] if vector is None else [float(v) for v in vector]


def _signed(hash64: int) -> int:
    """A 64-bit event-id hash as Cassandra's signed bigint (and back with ``& _MASK``)."""
    return hash64 - (1 << 64) if hash64 >= 1 << 63 else hash64


_MASK = (1 << 64) - 1


def user_vector_params(user_id: str, user: UserModel, written_ms: int) -> tuple[Any, ...]:
    return (user_id, MODEL_VERSION, user.version, _floats(user.implicit_vector), _floats(user.rating_vector),
            user.rating_bias, list(user.recent), user.last_event_id, _time(user.updated_ms), _time(written_ms),
            user.ratings, [_signed(h) for h in user.seen], _floats(user.profile), dict(user.searches))


def top_picks_params(user_id: str, user: UserModel, picks: list[Pick], blend: str,
                     written_ms: int) -> tuple[Any, ...]:
    return (user_id, MODEL_VERSION, user.version, [p.title_id for p in picks], [p.score for p in picks],
            [p.reason for p in picks], blend, user.last_event_id, _time(user.updated_ms), _time(written_ms))


def user_update_record(user_id: str, user: UserModel, picks: list[Pick], ingest_ms: int) -> dict[str, Any]:
    """The user-updates record of one flush: what the rows job needs of the user's models."""
    return {"schema_version": 1, "event_id": f"{user_id}:{user.version}", "user_id": user_id,
            "model_version": MODEL_VERSION, "version": user.version, "last_event_id": user.last_event_id,
            "updated_ms": user.updated_ms, "pick_ids": [p.title_id for p in picks],
            "pick_scores": [p.score for p in picks], "pick_reasons": [p.reason for p in picks],
            "recent_titles": list(user.recent), "content_profile": _floats(user.profile), "ingest_time_ms": ingest_ms}


def user_model_from_row(row: Any) -> UserModel | None:
    """A ``user_vectors`` row as the user's state (a new job's warm start), ``None`` for another model version.

    The row carries the recent event ids' hashes, so events redelivered after the warm
    start are skipped as a restored job would skip them.
    """
    if row.model_version != MODEL_VERSION:
        return None

    def vector(values: list[float] | None) -> np.ndarray | None:
        return np.array(values, dtype=np.float32) if values else None

    return UserModel(rating_vector=vector(row.rating_vector), rating_bias=row.rating_bias or 0.0,
                     ratings=row.ratings or 0, implicit_vector=vector(row.implicit_vector),
                     recent=list(row.recent_titles or []), seen=[h & _MASK for h in row.recent_event_hashes or []],
                     version=row.version, last_event_id=row.last_event_id or "",
                     updated_ms=int(row.updated_time.replace(tzinfo=UTC).timestamp() * 1000),
                     profile=vector(row.content_profile), searches=sorted((row.recent_searches or {}).items()))


def item_vector_params(vectors: ItemVectors, written_ms: int) -> tuple[Any, ...]:
    return (vectors.title_id, MODEL_VERSION, vectors.version, _floats(vectors.implicit_vector),
            vectors.implicit_bias, _floats(vectors.rating_vector), vectors.rating_bias, vectors.touches,
            _time(vectors.updated_ms), _time(written_ms))


def similar_titles_params(vectors: ItemVectors) -> tuple[Any, ...]:
    return (vectors.title_id, MODEL_VERSION, vectors.version, [t for t, _ in vectors.neighbors],
            [s for _, s in vectors.neighbors], _time(vectors.updated_ms))


def item_vectors_record(vectors: ItemVectors, ingest_ms: int) -> dict[str, Any]:
    return {"schema_version": 2, "event_id": f"{vectors.title_id}:{vectors.version}", "title_id": vectors.title_id,
            "model_version": MODEL_VERSION, "version": vectors.version,
            "rating_vector": _floats(vectors.rating_vector), "rating_bias": vectors.rating_bias,
            "implicit_vector": _floats(vectors.implicit_vector), "implicit_bias": vectors.implicit_bias,
            "touches": vectors.touches, "neighbor_ids": [t for t, _ in vectors.neighbors],
            "neighbor_scores": [s for _, s in vectors.neighbors], "successor_ids": [t for t, _ in vectors.successors],
            "successor_shares": [s for _, s in vectors.successors], "updated_ms": vectors.updated_ms,
            "ingest_time_ms": ingest_ms}


def item_vectors_from_record(record: dict[str, Any]) -> ItemVectors | None:
    """The published vectors, or ``None`` for another model version (other dimensions, other meaning)."""
    if record["model_version"] != MODEL_VERSION:
        return None
    return ItemVectors(record["title_id"], record["version"], np.array(record["rating_vector"], dtype=np.float32),
                       record["rating_bias"], np.array(record["implicit_vector"], dtype=np.float32),
                       record["implicit_bias"], record["touches"],
                       tuple(zip(record["neighbor_ids"], record["neighbor_scores"], strict=True)),
                       record["updated_ms"],
                       tuple(zip(record["successor_ids"], record["successor_shares"], strict=True)))


def item_vectors_from_row(row: Any) -> ItemVectors:
    """A Cassandra ``item_vectors`` row (the warm-start snapshot) as vectors, neighbours left to the next publish."""
    return ItemVectors(row.title_id, row.version, np.array(row.rating_vector or [], dtype=np.float32),
                       row.rating_bias, np.array(row.implicit_vector or [], dtype=np.float32), row.implicit_bias,
                       row.touches, (), int(row.updated_time.replace(tzinfo=UTC).timestamp() * 1000))
