"""``neural_update`` (the neural-updates topic): the neural sequence model's weights, absolute and versioned."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from jobs.models.neural import NEURAL_MODEL_VERSION, PublishedNeural


def neural_update_record(weights: PublishedNeural, ingest_ms: int) -> dict[str, Any]:
    return {"schema_version": 1, "event_id": f"{weights.key}:{weights.version}", "key": weights.key,
            "model_version": NEURAL_MODEL_VERSION, "version": weights.version, "dimensions": weights.dimensions,
            "vector": [float(v) for v in weights.vector], "bias": weights.bias, "updated_ms": weights.updated_ms,
            "ingest_time_ms": ingest_ms}


def published_neural(record: Mapping[str, Any]) -> PublishedNeural | None:
    """The published weights, or ``None`` for another model version (another shape)."""
    if record["model_version"] != NEURAL_MODEL_VERSION:
        return None
    return PublishedNeural(str(record["key"]), int(record["version"]), int(record["dimensions"]),
                           np.array(record["vector"], dtype=np.float32), float(record["bias"]),
                           int(record["updated_ms"]))
