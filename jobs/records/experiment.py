"""``experiment`` (the experiments topic): one version of one experiment, absolute."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobs.experiments.definition import Eligibility, Experiment, Variant


def experiment_record(experiment: Experiment, ingest_ms: int) -> dict[str, Any]:
    rules = experiment.eligibility
    return {"schema_version": 1, "event_id": f"{experiment.name}:{experiment.version}", "name": experiment.name,
            "version": experiment.version, "description": experiment.description, "salt": experiment.salt,
            "layer": experiment.layer, "bucket_start": experiment.bucket_start,
            "bucket_count": experiment.bucket_count,
            "eligibility": {"countries": sorted(rules.countries), "device_classes": sorted(rules.device_classes),
                            "tenure": sorted(rules.tenure), "maturity": sorted(rules.maturity)},
            "variants": [{"name": v.name, "weight": v.weight, "overrides": dict(v.overrides)}
                         for v in experiment.variants],
            "start_ms": experiment.start_ms, "stop_ms": experiment.stop_ms, "updated_ms": experiment.updated_ms,
            "ingest_time_ms": ingest_ms}


def experiment_from_record(record: Mapping[str, Any]) -> Experiment:
    rules = record["eligibility"]
    return Experiment(
        name=str(record["name"]), layer=str(record["layer"]), salt=str(record["salt"]),
        variants=tuple(Variant(str(v["name"]), float(v["weight"]), {str(k): str(x) for k, x in v["overrides"].items()})
                       for v in record["variants"]),
        bucket_start=int(record["bucket_start"]), bucket_count=int(record["bucket_count"]),
        eligibility=Eligibility(*(frozenset(map(str, rules[key]))
                                  for key in ("countries", "device_classes", "tenure", "maturity"))),
        start_ms=int(record["start_ms"]), stop_ms=None if record["stop_ms"] is None else int(record["stop_ms"]),
        version=int(record["version"]), description=str(record["description"]), updated_ms=int(record["updated_ms"]))


def newest(experiments: Mapping[str, Experiment], incoming: Experiment) -> bool:
    """Whether ``incoming`` is newer than what is held for its name (compacted topics replay old versions)."""
    held = experiments.get(incoming.name)
    return held is None or incoming.version > held.version
