"""Freshness of the learning job's user vectors: a play event produced -> the new vector in Cassandra, under load.

The same live synthetic load as ``feature_freshness`` runs at ``--rate`` events/s
(only the learning job consumes it). Every ``--probe-every`` seconds a probe user
finishes a play (a COMPLETE event, a new event id); a poller reads the user's
``user_vectors`` row until its version shows that event, and records produce ->
visible for each probe. Run against the local stack (`nextwatch stack up`).
Figures last, as name=value.
"""

from __future__ import annotations

from benchmarks.feature_freshness import PROBE_CONTEXT, Probe, measure, now_ms
from benchmarks.load import watch_job
from connectors.events import PlayEvent
from connectors.model_store import ModelStore


def complete_event(user_id: str, number: int) -> PlayEvent:
    return PlayEvent(user_id=user_id, event_time_ms=now_ms(), context=PROBE_CONTEXT,
                     title_id=f"probe-title-{number % 7}", action="COMPLETE", playback_id="probe",
                     position_ms=3_600_000, duration_ms=3_600_000)


def vector_visible(store: ModelStore, user_id: str, number: int) -> bool:
    rows = store.rows("get_user_vectors", user_id)
    return bool(rows) and rows[0].version >= number  # one COMPLETE per probe: version = probes applied


def main() -> None:
    measure(Probe("user_vectors", lambda k, c, g: watch_job("learning", k, c, g, own_process=True), ModelStore,
                  complete_event, vector_visible), __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
