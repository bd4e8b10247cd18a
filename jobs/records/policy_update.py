"""``policy_update``: the homepage policies' shared models, absolute and versioned (compacted topic)."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from jobs.exploration.presentation import POLICY_SET, PolicyLearnerState, PublishedPolicies, policy_snapshot


def policy_update_record(state: PolicyLearnerState, now_ms: int) -> dict[str, object]:
    """The record of the models as they stand."""
    return {"schema_version": 1, "event_id": f"{POLICY_SET}:{state.version}", "name": POLICY_SET,
            "policy_version": state.policies.version, "version": state.version,
            "models_json": orjson.dumps(policy_snapshot(state.policies)).decode(), "updated_ms": now_ms,
            "ingest_time_ms": now_ms}


def published_policies(record: Mapping[str, object]) -> PublishedPolicies:
    return PublishedPolicies(str(record["name"]), int(record["version"]),  # type: ignore[call-overload]
                             orjson.loads(str(record["models_json"])))
