"""``blend_update`` (the blend-updates topic): a segment's serving blend, absolute and versioned."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobs.models.blend import PublishedBlend


def blend_update_record(blend: PublishedBlend, ingest_ms: int) -> dict[str, Any]:
    return {"schema_version": 1, "event_id": f"{blend.segment}:{blend.version}", "segment": blend.segment,
            "version": blend.version, "weights": dict(blend.weights), "touches": blend.touches,
            "hit_rate": blend.hit_rate, "updated_ms": blend.updated_ms, "ingest_time_ms": ingest_ms}


def published_blend(record: Mapping[str, Any]) -> PublishedBlend:
    return PublishedBlend(str(record["segment"]), int(record["version"]),
                          {str(name): float(weight) for name, weight in record["weights"].items()},
                          int(record["touches"]), float(record["hit_rate"]), int(record["updated_ms"]))
