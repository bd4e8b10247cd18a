"""``item_vectors`` (the model-updates topic): a title's absolute, versioned model state as published."""

from __future__ import annotations

from typing import Any

import numpy as np

from jobs.models.online import MODEL_VERSION, ItemVectors


def _floats(vector: np.ndarray | None) -> list[float]:
    return [] if vector is None else [float(v) for v in vector]


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
