"""Experiment metrics job: user events and impression outcomes -> each experiment's sums in Cassandra.

The per-member logic and the sums are in :mod:`jobs.experiments.metrics`; the statistics the report
computes from the sums in :mod:`jobs.experiments.stats`. Steps, each with a stable uid:

1. ``metrics-events-source`` / ``metrics-decode``: play, browse, rating and search topics, decoded with
   the same checks as the feature job; unreadable messages are counted (the feature job dead-letters them).
2. ``metrics-outcomes-source`` / ``metrics-decode-outcomes``: the rows job's impression outcomes (each
   shown item's click and play).
3. ``member-metrics`` (keyed by member): deduplicated by event id; a member enters an experiment's
   variant at the first impression whose token names it, with the 14 days before as pre-exposure data;
   every change of their totals becomes a delta of their variant's sums.
4. ``variant-sums`` (keyed by experiment:variant): the sums per segment and metric; the changed ones
   at most every ``flush_ms``.
5. ``write-metrics``: the sums to ``experiment_metrics`` (absolute rows, one per day, variant, segment
   and metric).
"""

from __future__ import annotations

from typing import Any

from pyflink.common import Types

from connectors.config import CassandraConfig, KafkaConfig
from connectors.limits import Limits
from connectors.topics import MEMBER_TOPICS
from jobs.flink.metrics import operators as op
from jobs.flink.metrics.config import JOB_NAME, MetricsJobConfig
from jobs.runtime import PICKLED, DecodeEvents, JobSpec, Step, Stores, main, named, read_events, read_topic


def build(env: Any, kafka: KafkaConfig, cassandra: CassandraConfig, settings: MetricsJobConfig) -> Any:
    """Wire the whole job onto ``env``."""
    group = settings.group_id
    events = read_events(env, kafka, MEMBER_TOPICS, group,
                         Step("metrics-events-source", "play, search, browse, rating (Kafka)"),
                         Step("metrics-decode", "decode events"),
                         DecodeEvents(JOB_NAME, op.keyed_event, limits=Limits.load())).events
    outcomes = named(named(read_topic(env, kafka, ["impression-outcomes"], group + "-outcomes",
                                      Step("metrics-outcomes-source", "impression-outcomes (Kafka)"))
                           .map(op.DecodeOutcomes(), output_type=PICKLED),
                           Step("metrics-decode-outcomes", "decode impression outcomes"))
                     .filter(lambda value: value is not None), Step("metrics-known-outcomes", "readable outcomes"))
    deltas = named(events.union(outcomes).key_by(lambda value: value[0], key_type=Types.STRING())
                   .process(op.MemberMetricsFunction(Stores(cassandra)), output_type=PICKLED),
                   Step("member-metrics", "member metrics (per member)"))
    rows = named(deltas.key_by(lambda value: value[0], key_type=Types.STRING())
                 .process(op.VariantSumsFunction(settings), output_type=PICKLED),
                 Step("variant-sums", "variant sums (per experiment:variant)"))
    named(rows.process(op.WriteMetrics(Stores(cassandra))), Step("write-metrics", "write metrics (Cassandra)"))


JOB = JobSpec(JOB_NAME, MetricsJobConfig, build)

if __name__ == "__main__":
    main(JOB)
