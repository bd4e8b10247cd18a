"""``impression_outcome``: each shown item's click and play with its logged propensities (off-policy evaluation)."""

from __future__ import annotations

from jobs.exploration.rewards import Outcome


def outcome_record(user_id: str, outcome: Outcome, context: str, weekday: str, now_ms: int) -> dict[str, object]:
    return {
        "schema_version": 2, "event_id": f"{outcome.impression_id}:{outcome.position}", "user_id": user_id,
        "impression_id": outcome.impression_id, "row_id": outcome.row_id, "row_position": outcome.row_position,
        "title_id": outcome.title_id, "position": outcome.position, "artwork_id": outcome.artwork_id,
        "clicked": outcome.clicked, "played": outcome.played, "policy_version": outcome.policy_version,
        "row_propensity": outcome.row_propensity, "item_propensity": outcome.item_propensity,
        "explored": outcome.explored, "context": context, "weekday": weekday, "shown_ms": outcome.shown_ms,
        "ingest_time_ms": now_ms, "experiments": list(outcome.experiments)}
