"""Feature job: event topics -> sessions, profile, continue watching, trending, item stats (docs/jobs/features.md).

1. ``feature-source`` / ``decode-validate``: user events with per-partition watermarks from the Kafka
   timestamps; anything unreadable, or stamped with another time than its event's, is dead-lettered.
2. ``catalog-source``: the catalog, broadcast (a side input stamped never to hold event time back).
3. ``user-features`` (keyed by user): dedupe, late events out, profile and continue watching, the
   impression join; each dirty user flushed at most every ``flush_ms``; applied events on to SQL.
4. Flink SQL (``sql.py``): session windows, trending top-N per scope, item stats running totals.
5. Writers: Cassandra and Kafka. Rows are absolute and records carry stable ids: a restart converges.
"""

from __future__ import annotations

from typing import Any

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.table import ChangelogMode, Schema, StreamTableEnvironment

from connectors.config import CassandraConfig, KafkaConfig
from connectors.flink_kafka import handed_off, write_to_topics
from connectors.limits import Limits
from connectors.topics import MEMBER_TOPICS
from jobs.flink.features import operators as op
from jobs.flink.features.config import JOB_NAME, FeatureJobConfig
from jobs.flink.features.sql import queries
from jobs.runtime import (
    KAFKA_ROW_TYPE,
    PICKLED,
    DecodeEvents,
    JobSpec,
    Step,
    Stores,
    main,
    named,
    read_events,
    read_topic,
)


def build(env: Any, kafka: KafkaConfig, cassandra: CassandraConfig, settings: FeatureJobConfig) -> Any:
    """Wire the whole job onto ``env``; returns the statement set that carries the Kafka sinks."""
    stores, limits = Stores(cassandra), Limits.load()
    t_env = StreamTableEnvironment.create(env)
    table_config = t_env.get_config()
    table_config.set("table.local-time-zone", "UTC")  # timestamps rendered as text are UTC
    # running totals (item stats) update per batch, not per row: one changelog row per key and batch.
    # The size bound is above what one interval brings even in a backfill (an impression unnests to a
    # row per title shown), so batches end by time and each key is written once per stats_flush_ms.
    # The buffer holds an accumulator per key (local-global aggregation), not the rows.
    table_config.set("table.exec.mini-batch.enabled", "true")
    table_config.set("table.exec.mini-batch.allow-latency", f"{settings.stats_flush_ms} ms")
    table_config.set("table.exec.mini-batch.size", "200000")
    idleness = Duration.of_millis(settings.idleness_ms)

    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(settings.out_of_orderness_ms)).with_idleness(idleness)
    decoded = read_events(env, kafka, MEMBER_TOPICS, settings.group_id,
                          Step("feature-source", "user event topics (Kafka)"),
                          Step("decode-validate", "decode + validate"),
                          DecodeEvents(JOB_NAME, dead_letters=True, check_timestamps=True, limits=limits),
                          watermarks)
    catalog_clock = WatermarkStrategy.for_monotonous_timestamps() \
        .with_timestamp_assigner(op.CatalogIsNotAClock()).with_idleness(idleness)
    catalog = named(read_topic(env, kafka, ["catalog"], settings.group_id + "-catalog",
                               Step("catalog-source", "catalog topic (Kafka)"), catalog_clock)
                    .map(op.DecodeCatalog(), output_type=PICKLED), Step("catalog-decode", "decode catalog"))

    features = named(decoded.events.key_by(lambda event: event.user_id, key_type=Types.STRING())
                     .connect(catalog.broadcast(op.TITLES))
                     .process(op.UserFeatures(settings, kafka, limits=limits, stores=stores), output_type=PICKLED),
                     Step("user-features", "user features (profile, continue watching)"))
    enriched = features.get_side_output(op.ENRICHED_TAG)
    enriched = handed_off(enriched) if settings.sql_in_own_tasks else enriched
    user_rows = named(features.process(op.WriteUserFeatures(stores, limits), output_type=KAFKA_ROW_TYPE()),
                      Step("write-user-features", "write profile + continue watching (Cassandra)"))

    t_env.create_temporary_view("enriched", t_env.from_data_stream(
        enriched, Schema.new_builder()
        # side-output records carry no timestamp in PyFlink: event time comes from the column
        .column_by_expression("rowtime", "TO_TIMESTAMP_LTZ(event_time_ms, 3)")
        .watermark("rowtime", "SOURCE_WATERMARK()").build()))
    sql = queries(settings)
    t_env.create_temporary_view("trend_input", t_env.sql_query(sql["trend_input"]))

    sessions = named(t_env.to_data_stream(t_env.sql_query(sql["sessions"]))
                     .flat_map(op.WriteSessions(stores), output_type=KAFKA_ROW_TYPE()),
                     Step("write-sessions", "write sessions"))
    trending = named(t_env.to_data_stream(t_env.sql_query(sql["trending"]))
                     .map(lambda r: (r[0], r[1], r[2], r[3], r[4]), output_type=PICKLED),
                     Step("trending-tuple", "trending: to tuple"))
    named(trending.key_by(lambda v: v[0], key_type=Types.STRING())
          .process(op.CoalesceTrending(stores, settings.stats_flush_ms)),
          Step("write-trending", "write trending (newest window)"))
    # UPDATE_BEFORE rows are dropped in Java; the title total is stored under artwork_id ''
    named(t_env.to_changelog_stream(t_env.sql_query(sql["item_stats"]), changelog_mode=ChangelogMode.upsert())
          .map(op.WriteItemStats(stores), output_type=Types.INT()), Step("write-item-stats", "write item stats"))

    return write_to_topics(t_env, kafka, {"dead-letter": decoded.dead_letters,
                                          "late-events": features.get_side_output(op.LATE_TAG),
                                          "user-features": user_rows, "session-features": sessions},
                           hand_off=settings.sql_in_own_tasks)


JOB = JobSpec(JOB_NAME, FeatureJobConfig, build)

if __name__ == "__main__":
    main(JOB)
