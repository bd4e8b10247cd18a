"""The feature job's operators: each a top-level class with its settings passed in, driven in unit tests
through the fakes of ``tests/flink_fakes.py``. The per-event logic is :mod:`jobs.features`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from pyflink.common import Row, Types
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import (
    FlatMapFunction,
    KeyedBroadcastProcessFunction,
    KeyedProcessFunction,
    MapFunction,
    OutputTag,
    ProcessFunction,
)
from pyflink.datastream.state import MapStateDescriptor

from connectors.catalog_store import read_catalog_topic
from connectors.config import KafkaConfig
from connectors.erasure_store import ErasureStore
from connectors.errors import DecodeError, UnknownSchemaError
from connectors.events import CatalogItem, ErasureRequest, from_record
from connectors.feature_store import FeatureStore
from connectors.limits import DEFAULT_LIMITS, Limits
from jobs.context import context_bucket, now_ms
from jobs.exploration.rewards import Joined
from jobs.features.sessions import SessionAggregates, session_features
from jobs.features.user_state import UNKNOWN_TITLE, TitleInfo, UserState
from jobs.flink.features.config import JOB_NAME, FeatureJobConfig
from jobs.pacing import FlushPacing
from jobs.records.rejected_event import content_id, rejection_record
from jobs.records.session_features import session_record
from jobs.records.user_features import profile_record
from jobs.runtime import (
    KAFKA_ROW_TYPE,
    STATE_CACHE_KEYS,
    CassandraWriter,
    ErasedMembers,
    EventCount,
    KeyedState,
    RecordBound,
    Stores,
    arm_timer,
    broadcast_value,
    flush_due,
    job_codec,
    kafka_row,
    log_duplicate,
    skips_unreadable_state,
)

SIDE_INPUT_TIMESTAMP = 2**62  # far beyond any event time
TITLES = MapStateDescriptor("titles", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
# the events user-features turns away or reports, after decoding: late ones (not applied) and those applied
# under an event id that another event had used (CONFLICT), to the late-events topic. One output, so that
# the job graph (and the sinks' ids, which savepoints are keyed by) stays as it was.
LATE_TAG = OutputTag("late", KAFKA_ROW_TYPE())

JOINED_CLICK, JOINED_PLAY = 1, 2  # the enriched row's ``joined`` bits (SQL: MOD(joined, 2), joined >= 2)
ENRICHED_FIELDS = ["user_id", "event_id", "event_time_ms", "kind", "action", "title_id", "artwork_id", "genres",
                   "genres_csv", "watch_ms", "device_class", "utc_offset_minutes", "shown", "context",
                   "joined"]


def ENRICHED_TYPE() -> Any:
    s, i, b = Types.STRING(), Types.INT(), Types.LONG()
    return Types.ROW_NAMED(ENRICHED_FIELDS, [s, s, b, s, s, s, s, Types.BASIC_ARRAY(s), s, b, s, i,
                                              Types.BASIC_ARRAY(s), s, i])


ENRICHED_TAG = OutputTag("enriched", ENRICHED_TYPE())


def enriched_row(event: Any, title: TitleInfo, watch_ms: int, joined: list[Joined]) -> Any:
    """The event for the SQL steps.

    ``joined``: JOINED_CLICK | JOINED_PLAY for the click and the play this event completed in the
    impression join (a click read after its START completes both), 0 for none; ``artwork_id`` is
    then the artwork the impression showed, which is the one credited.
    """
    subject = type(event).SUBJECT
    kind = subject.split("_")[0]
    action = getattr(event, "action", None) or getattr(event, "kind", None) or "SEARCH"
    shown = [f"{i.title_id}|{i.artwork_id or ''}" for i in getattr(event, "items", ())] if kind == "browse" else []
    return Row(event.user_id, event.event_id, event.event_time_ms, kind, action, getattr(event, "title_id", None),
               joined[0].artwork_id if joined else getattr(event, "artwork_id", None), list(title.genres),
               ",".join(title.genres) if action == "START" else "", watch_ms, event.context.device_class,
               event.context.utc_offset_minutes, shown,
               context_bucket(event.event_time_ms, event.context.utc_offset_minutes, event.context.device_class),
               sum(JOINED_CLICK if j.kind == "CLICK" else JOINED_PLAY for j in joined))


def millis(value: Any) -> int:
    """Epoch ms of a SQL timestamp rendered as text in UTC (the job's session time zone).

    >>> millis("2026-09-21 14:13:20"), millis(5)
    (1790000000000, 5)
    """
    if isinstance(value, int):
        return value
    parsed = datetime.fromisoformat(str(value).replace(" ", "T"))
    return int(parsed.replace(tzinfo=UTC).timestamp() * 1000)


def catalog_snapshot(kafka: KafkaConfig) -> dict[str, TitleInfo]:
    """The catalog as it stands, read from its compacted topic when an operator starts.

    Broadcast state alone would race at startup: events could be processed before
    the catalog stream delivered their titles. Later changes arrive by broadcast.
    """
    return {title_id: TitleInfo(tuple(item.genres), item.runtime_minutes)
            for title_id, item in read_catalog_topic(kafka).items()}


class CatalogIsNotAClock(TimestampAssigner):  # type: ignore[misc]
    """The catalog is a side input, not a clock: its records are stamped far in the future so its
    watermark never holds event time back (idleness alone would, for as long as the job is
    backpressured: Flink pauses idleness timers then, and a backfill is backpressured throughout)."""

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return SIDE_INPUT_TIMESTAMP


class DecodeCatalog(MapFunction):  # type: ignore[misc]
    """A catalog record -> (title id, TitleInfo); ("", None) for one it cannot read."""

    def open(self, runtime_context: Any) -> None:
        self.codec = job_codec(runtime_context)
        # a record of a topic only jobs write that cannot be read: counted, it has no dead-letter topic
        self.unreadable = EventCount(runtime_context.get_metrics_group(), "not_applied_unreadable_record")

    def map(self, value: bytes) -> Any:
        try:
            item = from_record(CatalogItem, self.codec.decode(value).record)
        except (DecodeError, UnknownSchemaError, TypeError):
            self.unreadable.inc()
            return ("", None)
        return (item.title_id, TitleInfo(tuple(item.genres), item.runtime_minutes))


class UserFeatures(KeyedBroadcastProcessFunction):  # type: ignore[misc]
    """Keyed by user, the catalog in broadcast state: dedupe, late events out, profile and continue watching,
    the impression join; each dirty user flushed at most every ``flush_ms`` (up to ``max_flush_ms`` in a
    backlog: :mod:`jobs.pacing`).

    Per event: one state read, one state write, one watermark look-up (each a call into Java).
    """

    def __init__(self, settings: FeatureJobConfig, kafka: KafkaConfig,
                 catalog: Callable[[KafkaConfig], dict[str, TitleInfo]] = catalog_snapshot,
                 limits: Limits = DEFAULT_LIMITS, stores: Stores | None = None) -> None:
        self.settings, self.kafka, self.catalog, self.limits = settings, kafka, catalog, limits
        self.stores = stores  # where the erasure ledger is read (None: only the requests this instance handles)

    def open(self, runtime_context: Any) -> None:
        metrics = runtime_context.get_metrics_group()
        self.decode_failures = EventCount(metrics, "state_decode_failures")
        self.state = KeyedState(runtime_context, "user", self.decode_failures, STATE_CACHE_KEYS)
        self.codec = job_codec(runtime_context, self.limits)  # re-encodes what the decoder let through
        self.titles: dict[str, TitleInfo] = self.catalog(self.kafka)
        self.erased = ErasedMembers(self.stores, metrics)
        self.duplicates = EventCount(metrics, "events_duplicate")
        self.conflicts = EventCount(metrics, "event_id_conflicts")
        self.late = EventCount(metrics, "events_late")
        self.applied = EventCount(metrics, "events_applied")
        self.lag_ms = 0
        metrics.gauge("freshness_lag_ms", lambda: self.lag_ms)
        self.pacing = FlushPacing(self.settings.flush_ms, self.settings.max_flush_ms)
        metrics.gauge("flush_delay_ms", self.pacing.delay_ms)

    def _title(self, ctx: Any, title_id: str | None) -> TitleInfo:
        if not title_id:
            return UNKNOWN_TITLE
        info = self.titles.get(title_id)
        if info is None:  # after a restore the Python-side cache is empty; broadcast state is not
            stored = broadcast_value(ctx.get_broadcast_state(TITLES), title_id, self.decode_failures)
            info = stored if stored is not None else UNKNOWN_TITLE
            if stored is not None:
                self.titles[title_id] = info
        return info

    @skips_unreadable_state
    def process_element(self, event: Any, ctx: Any) -> Iterator[Any]:
        settings = self.settings
        if isinstance(event, ErasureRequest):  # before lateness: a request is never late
            self.erased.add(event.user_id)
            self.state.clear(event.user_id)
            yield event.user_id, None, event.event_id, None  # the writer deletes the member's rows
            return
        if self.erased.holds(event.user_id):  # nothing of theirs again, not even to late-events
            return
        now = now_ms()
        self.lag_ms = now - event.event_time_ms
        self.pacing.observe(now, event.event_time_ms)
        state: UserState = self.state.value(event.user_id) or UserState()
        watermark = ctx.timer_service().current_watermark()
        if event.event_time_ms <= watermark:
            if state.has_seen(event.event_id):  # a redelivery of an applied event, not a late one
                self.duplicates.inc()
                return
            self.late.inc()
            reason = (f"event_time_ms {event.event_time_ms} is {watermark - event.event_time_ms} ms behind the "
                      f"watermark (allowed lateness {settings.out_of_orderness_ms} ms)")
            original = self.codec.encode(event, ingest_ms=event.ingest_time_ms)  # the same bytes again
            record = rejection_record("LATE", reason, JOB_NAME, original, event=event)
            yield LATE_TAG, kafka_row(event.user_id.encode(), self.codec.encode_record("rejected_event", record))
            return
        title = self._title(ctx, getattr(event, "title_id", None))
        outcome = state.apply(event, title)
        if not outcome.applied:
            self.duplicates.inc()
            log_duplicate(self.duplicates.value, event)
            return
        self.applied.inc()
        if outcome.conflict:  # applied, and reported: two events under one id is a producer's bug
            self.conflicts.inc()
            original = self.codec.encode(event, ingest_ms=event.ingest_time_ms)
            record = rejection_record("CONFLICT", f"event_id {event.event_id!r} was applied before with other "
                                      "content; this event is applied too", JOB_NAME, original,
                                      event=event, reason_code="event_id_conflict",
                                      position=f"{event.event_id}#{content_id(original)}")
            yield LATE_TAG, kafka_row(event.user_id.encode(), self.codec.encode_record("rejected_event", record))
        if flush_due(state.flush_armed, now):
            state.flush_armed = now
            arm_timer(ctx, self.pacing.delay_ms())
        # the impression join the rows job's bandits learn from: one definition of CTR
        joined = state.join_impressions(event, settings.reward_window_ms, watermark, settings.out_of_orderness_ms)
        self.state.update(state, event.user_id)
        yield ENRICHED_TAG, enriched_row(event, title, outcome.watch_ms, joined)

    def process_broadcast_element(self, value: Any, ctx: Any) -> None:
        title_id, info = value
        if title_id and info is not None:
            ctx.get_broadcast_state(TITLES).put(title_id, info)
            self.titles[title_id] = info

    @skips_unreadable_state
    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        user_id = ctx.get_current_key()
        state: UserState | None = self.state.value(user_id)
        if state is None or not state.flush_armed:
            return
        cw = state.take_pending()
        self.state.update(state, user_id)
        # main output (side outputs from timers are not supported for this function in PyFlink)
        yield user_id, state.profile, state.last_event_id, cw


class WriteUserFeatures(CassandraWriter, ProcessFunction):  # type: ignore[misc]
    """Profile and continue-watching rows to Cassandra (one batch per user); the profile changelog on to Kafka."""

    store_type = FeatureStore

    def __init__(self, stores: Stores, limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__(stores)
        self.limits = limits

    def open(self, runtime_context: Any) -> None:
        self.open_store()
        self.codec = job_codec(runtime_context)
        self.bound = RecordBound(runtime_context.get_metrics_group(), "user-features", self.limits)

    def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
        user_id, profile, last_event_id, cw = value
        if profile is None:  # an erased member: their rows go, after any write of theirs queued before
            self.store.erase_member(user_id)
            return
        # acknowledged asynchronously (at most FeatureStore.MAX_IN_FLIGHT outstanding)
        self.store.write_user_features(user_id, profile, last_event_id, cw, now_ms())
        record = profile_record(user_id, profile, last_event_id)
        row = self.bound.row(user_id.encode(), self.codec.encode_record("user_features", record))
        if row is not None:
            yield row


class WriteSessions(CassandraWriter, FlatMapFunction):  # type: ignore[misc]
    """A closed session window's aggregates -> its features, to Cassandra and on to Kafka.

    A session window of a member erased while it was open closes after the erasure: each session's member
    is looked up in the erasure ledger (one read by key), and an erased member's session is dropped.
    """

    def open(self, runtime_context: Any) -> None:
        self.store, self.ledger = self.stores.open(FeatureStore, ErasureStore)
        self.codec = job_codec(runtime_context)
        self.erased = EventCount(runtime_context.get_metrics_group(), "not_applied_erased_member")

    def close(self) -> None:
        if self.store is not None:
            self.stores.close(self.store, self.ledger)
            self.store = None

    def flat_map(self, row: Any) -> Iterator[Any]:
        features = session_features(SessionAggregates(*row))
        if self.ledger.erased(features.user_id):
            self.erased.inc()
            return
        self.store.write_session(features)
        yield kafka_row(features.user_id.encode(),
                        self.codec.encode_record("session_features", session_record(features)))


class CoalesceTrending(CassandraWriter, KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by scope: keep only the newest window's ranking, write it at most every ``stats_flush_ms``.

    A backfill closes thousands of windows a second; only the newest matters to readers.
    """

    store_type = FeatureStore

    def __init__(self, stores: Stores, stats_flush_ms: int) -> None:
        super().__init__(stores)
        self.stats_flush_ms = stats_flush_ms

    def open(self, runtime_context: Any) -> None:
        failures = EventCount(runtime_context.get_metrics_group(), "state_decode_failures")
        self.window = KeyedState(runtime_context, "window", failures)  # (end, {rank: (title, plays)}, armed)
        self.open_store()

    @skips_unreadable_state
    def process_element(self, row: Any, ctx: Any) -> None:
        _scope, rank, title_id, plays, window_end = row
        end = millis(window_end)
        current = self.window.value()
        if current is None or end > current[0]:
            if current is None or not current[2]:
                arm_timer(ctx, self.stats_flush_ms)
            current = (end, {}, True)
        elif end < current[0]:
            return  # an older window than the one already held
        current[1][int(rank)] = (title_id, int(plays))
        self.window.update((current[0], current[1], True))

    @skips_unreadable_state
    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        # a generator though it emits nothing: process mode runs `yield from` over what a timer returns
        current = self.window.value()
        if current is None:
            return
        end, ranks, _ = current
        self.store.write_trending(ctx.get_current_key(), end, ranks)
        self.window.update((end, ranks, False))  # written; the next window arms a new timer
        yield from ()


class WriteItemStats(CassandraWriter, MapFunction):  # type: ignore[misc]
    """Running totals, already coalesced per key by SQL mini-batches (one row per key per batch)."""

    store_type = FeatureStore

    def open(self, runtime_context: Any) -> None:
        self.open_store()

    def map(self, row: Any) -> int:
        title_id, artwork_id, is_total, impressions, clicks, plays, completes, impression_plays = row
        self.store.write_item_stats(title_id, "" if is_total else artwork_id, int(impressions), int(clicks),
                                    int(plays), int(completes), int(impression_plays), now_ms())
        return 1
