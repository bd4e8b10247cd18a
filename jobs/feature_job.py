"""Feature job: event topics -> sessions, profile, continue watching, trending, item stats.

Steps (each with a stable uid):

1. ``feature-source`` / ``catalog-source``: KafkaSource of raw bytes.
2. ``decode-validate``: Avro single-object decode (any published version) and the
   contract rules; anything unreadable goes to the dead-letter topic with the
   reason and the original bytes, and the job goes on.
   Event time is the Kafka message timestamp, which the producer SDK sets to
   ``event_time_ms``: watermarks are generated per partition inside the source
   (bounded out-of-orderness, with idleness so an empty partition cannot stall
   them). A message whose timestamp disagrees with its ``event_time_ms`` is
   dead-lettered, since windows would misplace it.
3. ``user-features`` (keyed by user, catalog in broadcast state): drops duplicate
   event ids, routes events behind the watermark (later than the allowed lateness,
   which is the watermark's out-of-orderness bound) to the late-events
   topic, updates the profile and continue watching per event (one ValueState per
   user), and flushes each dirty user's rows at most every ``flush_ms``
   (coalescing: writes scale with active users, not events). Impressions, clicks
   and play starts also go through the impression join (held in the same state):
   the join the rows job's bandits learn from, so CTR and take rate count exactly
   the clicks and plays the bandits are rewarded for. Every other event goes on,
   enriched, to the SQL windows.
4. Flink SQL over the enriched stream: SESSION windows per user (final when the
   gap closes), HOP windows with a window top-N for trending (global, per
   genre, and per context bucket for a new user's cold-start row), running
   totals for item stats per title and artwork (impressions, joined clicks and
   the plays they led to; coalesced per key before writing).
5. Writers: Cassandra (async, bounded in flight) and Kafka topics through the
   Table API's Kafka connector (raw key and value bytes, at-least-once).

All Cassandra rows are absolute state and topic records carry stable ids, so a
restart that re-reads from the last checkpoint converges to the same rows.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from connectors.cassandra_store import connect
from connectors.catalog_store import read_catalog_topic
from connectors.codec import EventCodec
from connectors.config import CassandraConfig, KafkaConfig, load_section
from connectors.errors import DecodeError, InvalidEventError, UnknownSchemaError
from connectors.events import EVENT_TYPES as _EVENT_TYPES
from connectors.events import USER_EVENT_SUBJECTS, CatalogItem, check_semantics, from_record
from connectors.feature_store import FeatureStore
from connectors.flink_kafka import kafka_source, write_to_topics
from connectors.topics import TOPICS_BY_NAME, USER_EVENT_TOPICS
from jobs.context import context_bucket
from jobs.exploration.rewards import REWARD_WINDOW_MS, Joined
from jobs.features.outputs import (
    continue_watching_params,
    item_stats_params,
    now_ms,
    profile_params,
    profile_record,
    rejection_record,
    session_params,
    session_record,
)
from jobs.features.sessions import SessionAggregates, session_features
from jobs.features.user_state import UNKNOWN_TITLE, TitleInfo, UserState
from jobs.runtime import FlinkConfig, stream_environment

JOB_NAME = "nextwatch-features"
TIMESTAMP_TOLERANCE_MS = 1_000
SIDE_INPUT_TIMESTAMP = 2**62  # far beyond any event time


@dataclass(frozen=True)
class FeatureJobConfig:
    """``[features]`` in the config file / ``NEXTWATCH_FEATURES_*``."""

    session_gap_minutes: int = 30
    out_of_orderness_ms: int = 5_000  # the allowed lateness: events behind the watermark are late
    idleness_ms: int = 60_000
    flush_ms: int = 100  # profile and continue watching: per user, at most this often
    stats_flush_ms: int = 10_000  # trending and item stats: per key, at most this often
    trending_window_minutes: int = 60
    trending_slide_minutes: int = 5
    trending_top_n: int = 20
    trending_horizon_hours: int = 24
    # CTR and take rate: clicks and plays joined to impressions as the rows job's bandits see them;
    # keep it equal to [rows] reward_window_ms
    reward_window_ms: int = REWARD_WINDOW_MS
    group_id: str = "nextwatch-features"
    options: dict[str, str] | None = None

    @classmethod
    def load(cls) -> FeatureJobConfig:
        return load_section(cls, "features")


# -- step 2: decode and validate ---------------------------------------------------


def decode_message(codec: EventCodec, value: bytes, now: int) -> tuple[Any, str | None]:
    """(typed event, None) or (None, reason). Pure apart from the codec."""
    try:
        decoded = codec.decode(value)
    except (DecodeError, UnknownSchemaError) as exc:
        return None, str(exc)
    if decoded.subject not in USER_EVENT_SUBJECTS:
        return None, f"{decoded.subject} is not a user event"
    cls = _EVENT_TYPES[decoded.subject]
    try:
        event = from_record(cls, decoded.record)
        check_semantics(event, now)
    except (InvalidEventError, TypeError) as exc:
        return None, str(exc)
    return event, None


# -- Flink wiring ------------------------------------------------------------------


def catalog_snapshot(kafka: KafkaConfig) -> dict[str, TitleInfo]:
    """The catalog as it stands, read from its compacted topic when an operator starts.

    Broadcast state alone would race at startup: events could be processed before
    the catalog stream delivered their titles. Later changes arrive by broadcast.
    """
    return {title_id: TitleInfo(tuple(item.genres), item.runtime_minutes)
            for title_id, item in read_catalog_topic(kafka).items()}


def _functions(kafka: KafkaConfig, cassandra: CassandraConfig, settings: FeatureJobConfig) -> dict[str, Any]:
    """The Python operator classes, defined here so that importing this module does not need Flink."""
    from pyflink.common import Types
    from pyflink.datastream import (
        KeyedBroadcastProcessFunction,
        KeyedProcessFunction,
        MapFunction,
        ProcessFunction,
    )
    from pyflink.datastream.functions import RuntimeContext
    from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

    dlq_tag = _tag("dead-letter")
    late_tag = _tag("late")
    enriched_tag = _enriched_tag()
    titles_desc = MapStateDescriptor("titles", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
    flush_ms, stats_flush_ms = settings.flush_ms, settings.stats_flush_ms

    class StoreWriter:
        """Shared by the writing steps: a Cassandra session per operator instance, drained on close."""

        def open_store(self) -> None:
            self.session = connect(cassandra, cassandra.keyspace)
            self.store = FeatureStore(self.session, cassandra.keyspace)
            self.codec = EventCodec()

        def close(self) -> None:
            self.store.drain()
            self.session.cluster.shutdown()

    class DecodeValidate(ProcessFunction):  # type: ignore[misc]
        def open(self, runtime_context: RuntimeContext) -> None:
            self.codec = EventCodec()
            metrics = runtime_context.get_metrics_group()
            self.events_in = EventCount(metrics, "events_in")
            self.invalid = EventCount(metrics, "events_invalid")

        def process_element(self, value: bytes, ctx: ProcessFunction.Context) -> Iterator[Any]:
            self.events_in.inc()
            event, reason = decode_message(self.codec, value, now_ms())
            if event is not None and abs((ctx.timestamp() or 0) - event.event_time_ms) > TIMESTAMP_TOLERANCE_MS:
                reason = (f"Kafka message timestamp {ctx.timestamp()} is not event_time_ms {event.event_time_ms}; "
                          "produce with the nextwatch SDK or set it")
                event = None
            if event is None:
                self.invalid.inc()
                record = rejection_record("INVALID", reason or "unreadable", JOB_NAME, value)
                yield dlq_tag, _kafka_row(b"", self.codec.encode_record("rejected_event", record))
            else:
                yield event

    class DecodeCatalog(MapFunction):  # type: ignore[misc]
        def open(self, runtime_context: RuntimeContext) -> None:
            self.codec = EventCodec()

        def map(self, value: bytes) -> Any:
            try:
                item = from_record(CatalogItem, self.codec.decode(value).record)
            except (DecodeError, UnknownSchemaError, TypeError):
                return ("", None)
            return (item.title_id, TitleInfo(tuple(item.genres), item.runtime_minutes))

    class UserFeatures(KeyedBroadcastProcessFunction):  # type: ignore[misc]
        """Per event: one state read, one state write, one watermark look-up (each a call into Java)."""

        def open(self, runtime_context: RuntimeContext) -> None:
            self.state = runtime_context.get_state(ValueStateDescriptor("user", Types.PICKLED_BYTE_ARRAY()))
            self.codec = EventCodec()
            self.titles: dict[str, TitleInfo] = catalog_snapshot(kafka)
            metrics = runtime_context.get_metrics_group()
            self.duplicates = EventCount(metrics, "events_duplicate")
            self.late = EventCount(metrics, "events_late")
            self.applied = EventCount(metrics, "events_applied")
            self.lag_ms = 0
            metrics.gauge("freshness_lag_ms", lambda: self.lag_ms)

        def _title(self, ctx: Any, title_id: str | None) -> TitleInfo:
            if not title_id:
                return UNKNOWN_TITLE
            info = self.titles.get(title_id)
            if info is None:  # after a restore the Python-side cache is empty; broadcast state is not
                stored = ctx.get_broadcast_state(titles_desc).get(title_id)
                info = stored if stored is not None else UNKNOWN_TITLE
                if stored is not None:
                    self.titles[title_id] = info
            return info

        def process_element(self, event: Any, ctx: Any) -> Iterator[Any]:
            self.lag_ms = now_ms() - event.event_time_ms
            state: UserState = self.state.value() or UserState()
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
                yield late_tag, _kafka_row(event.user_id.encode(), self.codec.encode_record("rejected_event", record))
                return
            title = self._title(ctx, getattr(event, "title_id", None))
            outcome = state.apply(event, title)
            if not outcome.applied:
                self.duplicates.inc()
                return
            self.applied.inc()
            if not state.flush_armed:
                state.flush_armed = True
                timers = ctx.timer_service()
                timers.register_processing_time_timer(timers.current_processing_time() + flush_ms)
            # the impression join the rows job's bandits learn from: one definition of CTR
            joined = state.join_impressions(event, settings.reward_window_ms, watermark,
                                            settings.out_of_orderness_ms)
            self.state.update(state)
            yield enriched_tag, _enriched_row(event, title, outcome.watch_ms, joined)

        def process_broadcast_element(self, value: Any, ctx: Any) -> None:
            title_id, info = value
            if title_id and info is not None:
                ctx.get_broadcast_state(titles_desc).put(title_id, info)
                self.titles[title_id] = info

        def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
            state: UserState | None = self.state.value()
            if state is None or not state.flush_armed:
                return
            cw = state.take_pending()
            self.state.update(state)
            # main output (side outputs from timers are not supported for this function in PyFlink)
            yield ctx.get_current_key(), state.profile, state.last_event_id, cw

    class WriteUserFeatures(StoreWriter, ProcessFunction):  # type: ignore[misc]
        """Profile and continue-watching rows to Cassandra; the profile changelog on to Kafka."""

        def open(self, runtime_context: RuntimeContext) -> None:
            self.open_store()

        def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
            user_id, profile, last_event_id, cw = value
            writes = [("profile", profile_params(user_id, profile, last_event_id, now_ms()))]
            for title_id, entry in cw.items():
                if entry is None:
                    writes.append(("cw_delete", (user_id, title_id)))
                else:
                    writes.append(("cw", continue_watching_params(user_id, title_id, entry)))
            self.store.write_together(writes)
            # writes are acknowledged asynchronously (at most FeatureStore.MAX_IN_FLIGHT outstanding)
            record = profile_record(user_id, profile, last_event_id)
            yield _kafka_row(user_id.encode(), self.codec.encode_record("user_features", record))

    class WriteSessions(StoreWriter, MapFunction):  # type: ignore[misc]
        def open(self, runtime_context: RuntimeContext) -> None:
            self.open_store()

        def map(self, row: Any) -> Any:
            features = session_features(SessionAggregates(*row))
            self.store.write("session", session_params(features))
            return _kafka_row(features.user_id.encode(),
                              self.codec.encode_record("session_features", session_record(features)))

    class CoalesceTrending(StoreWriter, KeyedProcessFunction):  # type: ignore[misc]
        """Keyed by scope: keep only the newest window's ranking, write it at most every stats_flush_ms.

        A backfill closes thousands of windows a second; only the newest matters to readers.
        """

        def open(self, runtime_context: RuntimeContext) -> None:
            self.window = runtime_context.get_state(ValueStateDescriptor("window", Types.PICKLED_BYTE_ARRAY()))
            self.open_store()

        def process_element(self, row: Any, ctx: Any) -> None:
            _scope, rank, title_id, plays, window_end = row
            end = _millis(window_end)
            current = self.window.value()
            if current is None or end > current[0]:
                if current is None or not current[2]:
                    ctx.timer_service().register_processing_time_timer(
                        ctx.timer_service().current_processing_time() + stats_flush_ms)
                current = (end, {}, True)
            elif end < current[0]:
                return  # an older window than the one already held
            current[1][int(rank)] = (title_id, int(plays))
            self.window.update((current[0], current[1], True))

        def on_timer(self, timestamp: int, ctx: Any) -> None:
            current = self.window.value()
            if current is None:
                return
            end, ranks, _ = current
            scope = ctx.get_current_key()
            for rank, (title_id, plays) in ranks.items():
                self.store.write("trending", (scope, rank, title_id, plays, end))
            self.window.update((end, ranks, False))  # written; the next window arms a new timer

    class WriteItemStats(StoreWriter, MapFunction):  # type: ignore[misc]
        """Running totals, already coalesced per key by SQL mini-batches (one row per key per batch)."""

        def open(self, runtime_context: RuntimeContext) -> None:
            self.open_store()

        def map(self, row: Any) -> int:
            title_id, artwork_id, is_total, impressions, clicks, plays, completes, impression_plays = row
            self.store.write("item_stats", item_stats_params(
                title_id, "" if is_total else artwork_id, int(impressions), int(clicks), int(plays), int(completes),
                int(impression_plays), now_ms()))
            return 1

    return {
        "DecodeValidate": DecodeValidate, "DecodeCatalog": DecodeCatalog, "UserFeatures": UserFeatures,
        "WriteUserFeatures": WriteUserFeatures, "WriteSessions": WriteSessions, "CoalesceTrending": CoalesceTrending,
        "WriteItemStats": WriteItemStats, "dlq_tag": dlq_tag, "late_tag": late_tag,
        "enriched_tag": enriched_tag, "titles_desc": titles_desc,
    }


class EventCount:
    """An event count kept in Python and read by Flink's metric system as a gauge.

    A Flink counter's ``inc()`` is a call into Java per event in thread mode; the gauge is read
    only when a reporter or the REST API asks, and is exact at any moment.
    """

    def __init__(self, metrics: Any, name: str) -> None:
        self.value = 0
        metrics.gauge(name, lambda: self.value)

    def inc(self, by: int = 1) -> None:
        self.value += by


def _tag(name: str) -> Any:
    from pyflink.datastream import OutputTag

    return OutputTag(name, KAFKA_ROW_TYPE())


def _enriched_tag() -> Any:
    from pyflink.datastream import OutputTag

    return OutputTag("enriched", ENRICHED_TYPE())


def KAFKA_ROW_TYPE() -> Any:
    from pyflink.common import Types

    return Types.ROW_NAMED(["k", "v"], [Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.PRIMITIVE_ARRAY(Types.BYTE())])


def _kafka_row(key: bytes, value: bytes) -> Any:
    from pyflink.common import Row

    return Row(k=key, v=value)


JOINED_CLICK, JOINED_PLAY = 1, 2  # the enriched row's ``joined`` bits (SQL: MOD(joined, 2), joined >= 2)
ENRICHED_FIELDS = ["user_id", "event_id", "event_time_ms", "kind", "action", "title_id", "artwork_id", "genres",
                   "genres_csv", "watch_ms", "device_class", "utc_offset_minutes", "shown", "context",
                   "joined"]


def ENRICHED_TYPE() -> Any:
    from pyflink.common import Types

    s, i, b = Types.STRING(), Types.INT(), Types.LONG()
    return Types.ROW_NAMED(ENRICHED_FIELDS, [s, s, b, s, s, s, s, Types.BASIC_ARRAY(s), s, b, s, i,
                                              Types.BASIC_ARRAY(s), s, i])


def _enriched_row(event: Any, title: TitleInfo, watch_ms: int, joined: list[Joined]) -> Any:
    """The event for the SQL steps.

    ``joined``: JOINED_CLICK | JOINED_PLAY for the click and the play this event completed in the
    impression join (a click read after its START completes both), 0 for none; ``artwork_id`` is
    then the artwork the impression showed, which is the one credited.
    """
    from pyflink.common import Row

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


def _millis(value: Any) -> int:
    """Epoch ms of a SQL timestamp rendered as text in UTC (the job's session time zone)."""
    if isinstance(value, int):
        return value
    parsed = datetime.fromisoformat(str(value).replace(" ", "T"))
    return int(parsed.replace(tzinfo=UTC).timestamp() * 1000)


def _sql(settings: FeatureJobConfig) -> dict[str, str]:
    gap = settings.session_gap_minutes
    return {
        "sessions": f"""
SELECT user_id, first_event_ms, last_event_ms, plays, completes, titles_played, watch_ms, impressions, clicks,
  searches, events, genres_csv, device_class, utc_offset_minutes
FROM (
  SELECT user_id, window_start, window_end,
    MIN(event_time_ms) AS first_event_ms, MAX(event_time_ms) AS last_event_ms,
    CAST(SUM(CASE WHEN action = 'START' THEN 1 ELSE 0 END) AS INT) AS plays,
    CAST(SUM(CASE WHEN action = 'COMPLETE' THEN 1 ELSE 0 END) AS INT) AS completes,
    CAST(COUNT(DISTINCT CASE WHEN action = 'START' THEN title_id END) AS INT) AS titles_played,
    SUM(watch_ms) AS watch_ms,
    CAST(SUM(CASE WHEN action = 'IMPRESSION' THEN CARDINALITY(shown) ELSE 0 END) AS INT) AS impressions,
    CAST(SUM(CASE WHEN MOD(joined, 2) = 1 THEN 1 ELSE 0 END) AS INT) AS clicks,
    CAST(SUM(CASE WHEN kind = 'search' THEN 1 ELSE 0 END) AS INT) AS searches,
    CAST(COUNT(*) AS INT) AS events,
    LISTAGG(genres_csv) AS genres_csv,
    MAX(device_class) AS device_class,
    MAX(utc_offset_minutes) AS utc_offset_minutes
  FROM TABLE(SESSION(TABLE enriched PARTITION BY user_id, DESCRIPTOR(rowtime), INTERVAL '{gap}' MINUTES))
  GROUP BY user_id, window_start, window_end
)""",
        "trending": f"""
SELECT trend_scope, CAST(rn AS INT), title_id, plays, CAST(window_end AS STRING) FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, trend_scope ORDER BY plays DESC, title_id) AS rn
  FROM (
    SELECT window_start, window_end, trend_scope, title_id, COUNT(*) AS plays
    FROM TABLE(HOP(TABLE trend_input, DESCRIPTOR(rowtime), INTERVAL '{settings.trending_slide_minutes}' MINUTES,
                   INTERVAL '{settings.trending_window_minutes}' MINUTES))
    GROUP BY window_start, window_end, trend_scope, title_id
  )
) WHERE rn <= {settings.trending_top_n}
  -- trending is about now: a backfill does not rewrite every window of its past
  AND window_end >= NOW() - INTERVAL '{settings.trending_horizon_hours}' HOUR""",
        "trend_input": """
SELECT rowtime, 'global' AS trend_scope, title_id FROM enriched WHERE action = 'START'
UNION ALL
SELECT rowtime, CONCAT('genre:', g) AS trend_scope, title_id FROM enriched CROSS JOIN UNNEST(genres) AS t (g)
WHERE action = 'START'
UNION ALL
SELECT rowtime, CONCAT('context:', context) AS trend_scope, title_id FROM enriched WHERE action = 'START'""",
        "item_stats": """
SELECT title_id, artwork_id, CAST(GROUPING(artwork_id) AS INT) AS is_total, SUM(imp) AS impressions,
       SUM(clk) AS clicks, SUM(starts) AS plays, SUM(completes) AS completes, SUM(took) AS impression_plays
FROM (
  SELECT SPLIT_INDEX(item, '|', 0) AS title_id,
         COALESCE(NULLIF(SPLIT_INDEX(item, '|', 1), ''), 'default') AS artwork_id,
         1 AS imp, 0 AS clk, 0 AS starts, 0 AS completes, 0 AS took
  FROM enriched CROSS JOIN UNNEST(shown) AS s (item) WHERE action = 'IMPRESSION'
  UNION ALL
  -- clicks and the plays they led to, joined by impression id; the artwork is the one the impression showed
  SELECT title_id, COALESCE(NULLIF(artwork_id, ''), 'default'), 0,
         CASE WHEN MOD(joined, 2) = 1 THEN 1 ELSE 0 END, 0, 0,
         CASE WHEN joined >= 2 THEN 1 ELSE 0 END
  FROM enriched WHERE joined <> 0
  UNION ALL
  SELECT title_id, CAST(NULL AS STRING), 0, 0, 1, 0, 0 FROM enriched WHERE action = 'START'
  UNION ALL
  SELECT title_id, CAST(NULL AS STRING), 0, 0, 0, 1, 0 FROM enriched WHERE action = 'COMPLETE'
)
GROUP BY GROUPING SETS ((title_id, artwork_id), (title_id))
HAVING GROUPING(artwork_id) = 1 OR artwork_id IS NOT NULL""",
    }


def build(env: Any, kafka: KafkaConfig, cassandra: CassandraConfig, settings: FeatureJobConfig) -> Any:
    """Wire the whole job onto ``env``; returns the statement set that carries the Kafka sinks."""
    from pyflink.common import Duration, Types, WatermarkStrategy
    from pyflink.common.watermark_strategy import TimestampAssigner
    from pyflink.table import ChangelogMode, Schema, StreamTableEnvironment

    fn = _functions(kafka, cassandra, settings)
    t_env = StreamTableEnvironment.create(env)
    table_config = t_env.get_config()
    table_config.set("table.local-time-zone", "UTC")  # timestamps rendered as text are UTC
    # running totals (item stats) update per batch, not per row: one changelog row per key and second
    table_config.set("table.exec.mini-batch.enabled", "true")
    table_config.set("table.exec.mini-batch.allow-latency", f"{settings.stats_flush_ms} ms")
    table_config.set("table.exec.mini-batch.size", "10000")
    topic = lambda name: TOPICS_BY_NAME[name].full_name(kafka)  # noqa: E731

    # per-partition watermarks from the Kafka timestamps (= event_time_ms, set by the SDK)
    watermarks = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(settings.out_of_orderness_ms))
                  .with_idleness(Duration.of_millis(settings.idleness_ms)))
    raw = env.from_source(kafka_source(kafka, [topic(t) for t in USER_EVENT_TOPICS], settings.group_id),
                          watermarks, "user event topics") \
        .uid("feature-source").name("user event topics (Kafka)")
    decoded = raw.process(fn["DecodeValidate"](), output_type=Types.PICKLED_BYTE_ARRAY()) \
        .uid("decode-validate").name("decode + validate")

    # The catalog is a side input, not a clock: its records are stamped far in the future so its
    # watermark never holds event time back (idleness alone would, for as long as the job is
    # backpressured: Flink pauses idleness timers then, and a backfill is backpressured throughout).
    class CatalogIsNotAClock(TimestampAssigner):  # type: ignore[misc]
        def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
            return SIDE_INPUT_TIMESTAMP

    catalog_watermarks = WatermarkStrategy.for_monotonous_timestamps() \
        .with_timestamp_assigner(CatalogIsNotAClock()) \
        .with_idleness(Duration.of_millis(settings.idleness_ms))
    catalog = env.from_source(kafka_source(kafka, [topic("catalog")], settings.group_id + "-catalog"),
                              catalog_watermarks, "catalog topic") \
        .uid("catalog-source").name("catalog topic (Kafka)") \
        .map(fn["DecodeCatalog"](), output_type=Types.PICKLED_BYTE_ARRAY()).uid("catalog-decode").name("decode catalog")

    features = decoded.key_by(lambda event: event.user_id, key_type=Types.STRING()) \
        .connect(catalog.broadcast(fn["titles_desc"])) \
        .process(fn["UserFeatures"](), output_type=Types.PICKLED_BYTE_ARRAY()) \
        .uid("user-features").name("user features (profile, continue watching)")
    enriched = features.get_side_output(fn["enriched_tag"])

    user_rows = features \
        .process(fn["WriteUserFeatures"](), output_type=KAFKA_ROW_TYPE()) \
        .uid("write-user-features").name("write profile + continue watching (Cassandra)")

    t_env.create_temporary_view("enriched", t_env.from_data_stream(
        enriched, Schema.new_builder()
        # side-output records carry no timestamp in PyFlink: event time comes from the column
        .column_by_expression("rowtime", "TO_TIMESTAMP_LTZ(event_time_ms, 3)")
        .watermark("rowtime", "SOURCE_WATERMARK()").build()))
    sql = _sql(settings)
    t_env.create_temporary_view("trend_input", t_env.sql_query(sql["trend_input"]))

    sessions = t_env.to_data_stream(t_env.sql_query(sql["sessions"])) \
        .map(fn["WriteSessions"](), output_type=KAFKA_ROW_TYPE()).uid("write-sessions").name("write sessions")
    t_env.to_data_stream(t_env.sql_query(sql["trending"])) \
        .map(lambda r: (r[0], r[1], r[2], r[3], r[4]), output_type=Types.PICKLED_BYTE_ARRAY()) \
        .uid("trending-tuple").name("trending: to tuple") \
        .key_by(lambda v: v[0], key_type=Types.STRING()) \
        .process(fn["CoalesceTrending"]()).uid("write-trending").name("write trending (newest window)")
    # UPDATE_BEFORE rows are dropped in Java; the title total is stored under artwork_id ''
    t_env.to_changelog_stream(t_env.sql_query(sql["item_stats"]), changelog_mode=ChangelogMode.upsert()) \
        .map(fn["WriteItemStats"](), output_type=Types.INT()).uid("write-item-stats").name("write item stats")

    return write_to_topics(t_env, kafka, {"dead-letter": decoded.get_side_output(fn["dlq_tag"]),
                                          "late-events": features.get_side_output(fn["late_tag"]),
                                          "user-features": user_rows, "session-features": sessions})


def run(detached: bool = False, flink: FlinkConfig | None = None) -> Any:
    """Build and run the job in this process's mini-cluster (or the cluster `flink run` submitted it to)."""
    env = stream_environment(flink or FlinkConfig.load())
    build(env, KafkaConfig.load(), CassandraConfig.load(), FeatureJobConfig.load())
    if detached:
        return env.execute_async(JOB_NAME)
    return env.execute(JOB_NAME)


def main() -> None:
    """Entry point for `flink run -py jobs/feature_job.py` (parallelism from ``-p``)."""
    parser = argparse.ArgumentParser(description="nextwatch feature job")
    parser.parse_args()
    run(flink=replace(FlinkConfig.load(), parallelism=0))


if __name__ == "__main__":
    main()

