"""Rows job: user events + the learning job's user updates -> each member's homepage in Cassandra.

The rows, rules and controls are in :mod:`jobs.homepage.rows`, the per-user state in
:mod:`jobs.homepage.state`, the policies in :mod:`jobs.exploration`. Steps, each with a stable uid:

1. ``rows-events-source`` / ``rows-decode``: play, browse, rating and search topics, decoded with the
   same checks as the feature job; unreadable messages are counted (the feature job dead-letters them).
2. ``rows-user-updates-source``: the learning job's user-updates topic (top picks, content profile,
   the last event the models reflect).
3. ``rows-catalog-source`` (the catalog and the experiments), ``rows-model-updates-source`` and
   ``rows-policy-updates-source``: the catalog, the experiments, the published item vectors and the shared
   policy models, compacted and read from the start, broadcast together.
4. ``homepage-builder`` (keyed by user): applies events and updates to the member's state and, at most
   every ``flush_ms``, rebuilds the homepage of their current context bucket (the daypart now in their
   local time, the device of their newest event); a timer at the next daypart change rebuilds it for
   the new bucket. Trending and profile settings are read from Cassandra. Pages are served through the
   policies (row order, artwork, explore slots, a presentation token per row); the member's
   impressions, clicks and plays are joined in their state, and closed impressions become outcomes
   and lessons. A member in a running experiment they are eligible for gets the page their variant's
   settings build, and every row's token names ``experiment:variant`` (impressions echo it, outcomes
   carry it).
5. ``write-homepage``: the whole page of one bucket in one CQL row.
6. ``encode-outcomes``: every outcome to the impression-outcomes topic (off-policy evaluation).
7. ``policy-learner`` (one key): the lessons teach the shared models, published to policy-updates at
   most every ``policy_publish_ms``.
"""

from __future__ import annotations

from typing import Any

from pyflink.common import Types
from pyflink.table import StreamTableEnvironment

from connectors.config import CassandraConfig, KafkaConfig
from connectors.flink_kafka import write_to_topics
from connectors.limits import Limits
from connectors.topics import MEMBER_TOPICS
from jobs.exploration.presentation import POLICY_SET
from jobs.flink.rows import operators as op
from jobs.flink.rows.config import JOB_NAME, RowsJobConfig
from jobs.runtime import (
    KAFKA_ROW_TYPE,
    PICKLED,
    DecodeEvents,
    JobSpec,
    Step,
    Stores,
    kafka_row,
    main,
    named,
    read_events,
    read_topic,
)


def build(env: Any, kafka: KafkaConfig, cassandra: CassandraConfig, settings: RowsJobConfig) -> Any:
    """Wire the whole job onto ``env``; returns the statement set that carries the Kafka sinks."""
    stores, group = Stores(cassandra), settings.group_id

    def records(topics: str | list[str], suffix: str, source: Step, decode: Step) -> Any:
        # several topics in one source where a topic is added: a new source would renumber the sinks' operator ids
        return named(read_topic(env, kafka, [topics] if isinstance(topics, str) else topics, group + suffix, source)
                     .map(op.DecodeRecords(), output_type=PICKLED), decode)

    events = read_events(env, kafka, MEMBER_TOPICS, group,
                         Step("rows-events-source", "play, search, browse, rating (Kafka)"),
                         Step("rows-decode", "decode events"),
                         DecodeEvents(JOB_NAME, op.keyed_event, limits=Limits.load())).events
    updates = named(records("user-updates", "-updates", Step("rows-user-updates-source", "user-updates (Kafka)"),
                            Step("rows-decode-updates", "decode user updates")).filter(lambda value: value is not None),
                    Step("rows-known-updates", "readable user updates"))
    catalog = records(["catalog", "experiments"], "-catalog",
                      Step("rows-catalog-source", "catalog, experiments (Kafka)"),
                      Step("rows-decode-catalog", "decode catalog, experiments"))
    items = records("model-updates", "-items", Step("rows-model-updates-source", "model-updates (Kafka)"),
                    Step("rows-decode-items", "decode item vectors"))
    policies = named(records("policy-updates", "-policies",
                             Step("rows-policy-updates-source", "policy-updates (Kafka)"),
                             Step("rows-decode-policies", "decode policies")).filter(lambda value: value is not None),
                     Step("rows-known-policies", "readable policies"))

    pages = named(events.union(updates).key_by(lambda value: value[0], key_type=Types.STRING())
                  .connect(catalog.union(items, policies).broadcast(op.CATALOG, op.ITEMS, op.POLICIES, op.EXPERIMENTS))
                  .process(op.HomepageBuilder(settings, stores), output_type=PICKLED),
                  Step("homepage-builder", "homepage builder (per user)"))
    named(named(pages.filter(lambda value: value[0] in (op.PAGE, op.ERASE)), Step("rows-pages", "pages"))
          .process(op.WriteHomepage(stores)), Step("write-homepage", "write homepage (Cassandra)"))
    outcomes = named(named(pages.filter(lambda value: value[0] == op.OUTCOME), Step("rows-outcomes", "outcomes"))
                     .flat_map(lambda value: (kafka_row(value[1], record) for record in value[2]),
                               output_type=KAFKA_ROW_TYPE()),
                     Step("encode-outcomes", "encode impression outcomes"))
    lessons = named(pages.filter(lambda value: value[0] == op.LESSONS), Step("rows-lessons", "lessons"))
    published = named(lessons.union(policies).key_by(lambda value: POLICY_SET, key_type=Types.STRING())
                      .process(op.PolicyLearner(settings), output_type=KAFKA_ROW_TYPE()),
                      Step("policy-learner", "policy learner (shared models)"))
    t_env = StreamTableEnvironment.create(env)
    return write_to_topics(t_env, kafka, {"impression-outcomes": outcomes, "policy-updates": published})


JOB = JobSpec(JOB_NAME, RowsJobConfig, build)

if __name__ == "__main__":
    main(JOB)
