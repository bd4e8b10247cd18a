"""The experiment metrics job's operators: each a top-level class with its settings passed in, driven in
unit tests through the fakes of ``tests/flink_fakes.py``. The per-member logic is
:mod:`jobs.experiments.metrics`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pyflink.datastream import KeyedProcessFunction, MapFunction, ProcessFunction

from connectors.errors import DecodeError, UnknownSchemaError
from connectors.events import BrowseEvent, ErasureRequest, PlayEvent
from connectors.experiment_store import ExperimentMetricsStore
from jobs.context import now_ms
from jobs.experiments.metrics import Delta, MemberMetrics, VariantSums
from jobs.exploration.rewards import PresentationToken
from jobs.flink.metrics.config import MetricsJobConfig
from jobs.runtime import (
    STATE_CACHE_KEYS,
    CassandraWriter,
    ErasedMembers,
    EventCount,
    KeyedState,
    Stores,
    UnreadableState,
    arm_timer,
    job_codec,
    skips_unreadable_state,
)


def keyed_event(event: Any) -> Iterable[tuple[str, str, Any]]:
    return ((event.user_id, "event", event),)


class DecodeOutcomes(MapFunction):  # type: ignore[misc]
    """impression-outcomes -> (user, "outcome", (event id, clicked, played, shown ms)); None for what it cannot
    read (counted: the topic is written by the rows job and has no dead-letter topic)."""

    def open(self, runtime_context: Any) -> None:
        self.codec = job_codec(runtime_context)
        self.unreadable = EventCount(runtime_context.get_metrics_group(), "not_applied_unreadable_record")

    def map(self, value: bytes) -> Any:
        try:
            decoded = self.codec.decode(value)
            if decoded.subject != "impression_outcome":
                raise DecodeError(f"{decoded.subject} on the impression-outcomes topic")
            r = decoded.record
            return str(r["user_id"]), "outcome", (str(r["event_id"]), bool(r["clicked"]), bool(r["played"]),
                                                  int(r["shown_ms"]))
        except (DecodeError, UnknownSchemaError, KeyError, TypeError, ValueError):
            self.unreadable.inc()
            return None


class MemberMetricsFunction(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by member: their activity by day and their experiments' totals (:class:`MemberMetrics`); emits,
    for each experiment:variant whose sums a change moves, ``(label, deltas)``. An erased member's totals
    are taken out of their variants' sums, and their state dropped."""

    def __init__(self, stores: Stores | None = None) -> None:
        self.stores = stores  # where the erasure ledger is read

    def open(self, runtime_context: Any) -> None:
        metrics = runtime_context.get_metrics_group()
        self.erased = ErasedMembers(self.stores, metrics)
        self.decode_failures = EventCount(metrics, "state_decode_failures")
        self.state = KeyedState(runtime_context, "member-metrics", self.decode_failures, STATE_CACHE_KEYS)
        self.applied = EventCount(metrics, "events_applied")
        self.duplicates = EventCount(metrics, "duplicates")
        self.exposures = EventCount(metrics, "exposures")
        self.refused = EventCount(metrics, "not_applied_experiments_over_limit")
        self.bad_tokens = EventCount(metrics, "unreadable_tokens")

    @skips_unreadable_state
    def process_element(self, value: Any, ctx: Any) -> Iterator[tuple[str, list[Delta]]]:
        user_id, kind, payload = value
        if isinstance(payload, ErasureRequest):
            self.erased.add(user_id)
            try:
                erased: MemberMetrics | None = self.state.value(user_id)
            except UnreadableState:  # dropped all the same: their totals cannot be taken out of the sums
                erased = None
            deltas = erased.withdrawn(payload.event_time_ms) if erased is not None else []
            self.state.clear(user_id)
        elif self.erased.holds(user_id):
            return
        else:
            member: MemberMetrics = self.state.value(user_id) or MemberMetrics()
            if member.applied(payload[0] if kind == "outcome" else payload.event_id):
                self.duplicates.inc()  # a redelivery: nothing changes, nothing is written
                return
            refused, entered = member.refused, len(member.entries)
            deltas = self.apply(member, kind, payload)
            self.applied.inc()
            self.refused.inc(member.refused - refused)
            self.exposures.inc(len(member.entries) - entered)
            self.state.update(member, user_id)
        by_label: dict[str, list[Delta]] = {}
        for delta in deltas:
            by_label.setdefault(delta.label, []).append(delta)
        yield from by_label.items()

    def apply(self, member: MemberMetrics, kind: str, payload: Any) -> list[Delta]:
        if kind == "outcome":
            event_id, clicked, played, shown_ms = payload
            return member.outcome(event_id, clicked, played, shown_ms)
        event = payload
        if isinstance(event, PlayEvent):
            return member.play(event.event_id, event.playback_id, event.position_ms, event.action,
                               event.event_time_ms)
        if isinstance(event, BrowseEvent) and event.action == "IMPRESSION" and event.presentation_token:
            try:
                labels = PresentationToken.decode(event.presentation_token).experiments
            except ValueError:
                self.bad_tokens.inc()  # still activity; an exposure only through a token this version reads
                labels = ()
            return member.exposure(event.event_id, labels, event.event_time_ms, event.context.device_class)
        return member.active(event.event_id, event.event_time_ms)


class VariantSumsFunction(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by experiment:variant: adds the members' deltas to the variant's sums and, at most every
    ``flush_ms``, emits the changed rows ``(experiment, variant, day, segment, metric, sums, now)``."""

    def __init__(self, settings: MetricsJobConfig) -> None:
        self.settings = settings

    def open(self, runtime_context: Any) -> None:
        metrics = runtime_context.get_metrics_group()
        self.state = KeyedState(runtime_context, "variant-sums", EventCount(metrics, "state_decode_failures"))
        self.deltas = EventCount(metrics, "deltas_applied")

    @skips_unreadable_state
    def process_element(self, value: tuple[str, list[Delta]], ctx: Any) -> None:
        sums: VariantSums = self.state.value() or VariantSums()
        sums.add(value[1])
        self.deltas.inc(len(value[1]))
        if not sums.armed:
            arm_timer(ctx, self.settings.flush_ms)
            sums.armed = True
        self.state.update(sums)

    @skips_unreadable_state
    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        sums: VariantSums | None = self.state.value()
        if sums is None:
            return
        sums.armed = False
        rows = sums.changed()
        self.state.update(sums)
        experiment, _, variant = str(ctx.get_current_key()).partition(":")
        now = now_ms()
        for day, segment, metric, totals in rows:
            yield experiment, variant, day, segment, metric, totals, now


class WriteMetrics(CassandraWriter, ProcessFunction):  # type: ignore[misc]
    """A variant's changed sums -> their rows in experiment_metrics."""

    store_type = ExperimentMetricsStore

    def open(self, runtime_context: Any) -> None:
        self.open_store()

    def process_element(self, value: Any, ctx: Any) -> None:
        experiment, variant, day, segment, metric, totals, updated_ms = value
        self.store.write_sums(experiment, day, variant, segment, metric, totals, updated_ms)
