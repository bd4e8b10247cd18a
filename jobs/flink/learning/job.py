"""Learning job: user events -> online models -> user vectors, top picks, item vectors and similar titles.

The design (user side keyed by user, item side keyed by title, item vectors shared as absolute
versioned records through the model-updates topic) and its staleness bound are in
:mod:`jobs.models.online`; the eight signals and their blend in :mod:`jobs.models.signals`. Steps,
each with a stable uid:

1. ``learning-source`` / ``learning-decode``: play, browse, rating and search topics, Avro decode and
   contract checks; event -> feedback or search. The feature job dead-letters bad input, so this job
   only counts what it cannot read (``events_invalid``).
2. ``model-updates-source`` and ``catalog-source``: the job's own model-updates topic and the catalog
   topic, both compacted and read from the start, decoded and broadcast together.
3. ``user-learner`` (keyed by user; item vectors and catalog in broadcast state): one learning step for
   the user, the item halves of it to a side output (in process mode held in the user's state until
   their flush); each changed user's vectors and top picks (the blend of all eight signals) flushed at
   most every ``flush_ms``.
4. ``item-learner`` (keyed by title): applies each item step once, and every ``publish_ms`` publishes
   each changed title's vectors to model-updates (and to Cassandra at most every ``snapshot_ms``).
5. ``write-user-vectors``: user vectors and top picks to Cassandra, one batch per user;
   ``encode-user-updates``: the same flush to the user-updates topic (the rows job's input).
6. ``blend-learner`` (keyed by member tenure segment): each segment's blend, learned from the user
   side's sampled touches, each move published to blend-updates, read back (``blend-updates-source``)
   and served. Not in the graph with ``pin_blend`` (that graph restores savepoints of older code).

Warm start: with no checkpoint or savepoint, titles start from the Cassandra snapshot
(``item_vectors``), each user from their ``user_vectors`` row (read once, on the user's first event
in the job); see ``LearningJobConfig.warm_start`` for when to turn it off.
"""

from __future__ import annotations

from typing import Any

from pyflink.common import Types
from pyflink.table import StreamTableEnvironment

from connectors.config import CassandraConfig, KafkaConfig
from connectors.flink_kafka import write_to_topics
from connectors.limits import Limits
from jobs.flink.learning import operators as op
from jobs.flink.learning.config import JOB_NAME, LEARNING_TOPICS, LearningJobConfig
from jobs.models.online import LearningConfig
from jobs.runtime import (
    KAFKA_ROW_TYPE,
    PICKLED,
    DecodeEvents,
    JobSpec,
    Step,
    Stores,
    execution_mode,
    main,
    named,
    read_events,
    read_topic,
)


def build(env: Any, kafka: KafkaConfig, cassandra: CassandraConfig, settings: LearningJobConfig,
          model: LearningConfig | None = None) -> Any:
    """Wire the whole job onto ``env``; returns the statement set that carries the Kafka sinks."""
    stores, model = Stores(cassandra), model or LearningConfig()
    # The broker answers a fetch with whole partitions: a backfill is learned in arrival order (docs/jobs)
    events = read_events(env, kafka, LEARNING_TOPICS, settings.group_id,
                         Step("learning-source", "play, browse, rating (Kafka)"),
                         Step("learning-decode", "decode -> feedback"),
                         DecodeEvents(JOB_NAME, op.feedback, limits=Limits.load())).events
    updates = named(read_topic(env, kafka, ["model-updates"], settings.group_id + "-updates",
                               Step("model-updates-source", "model-updates (Kafka)"))
                    .map(op.DecodeShared(), output_type=PICKLED), Step("model-updates-decode", "decode item vectors"))
    catalog = named(read_topic(env, kafka, ["catalog"], settings.group_id + "-catalog",
                               Step("catalog-source", "catalog (Kafka)"))
                    .map(op.DecodeShared(), output_type=PICKLED), Step("catalog-decode", "decode catalog"))
    shared, descriptors = updates.union(catalog), [op.ITEMS, op.CATALOG]
    if not settings.pin_blend:  # the blends learned: read back what the blend learner publishes
        blends = named(read_topic(env, kafka, ["blend-updates"], settings.group_id + "-blends",
                                  Step("blend-updates-source", "blend-updates (Kafka)"))
                       .map(op.DecodeShared(), output_type=PICKLED), Step("blend-updates-decode", "decode blends"))
        blend_updates = named(blends.filter(lambda value: value is not None), Step("blend-updates-known", "blends"))
        shared, descriptors = shared.union(blend_updates), [*descriptors, op.BLENDS]

    users = named(events.key_by(lambda value: value[0], key_type=Types.STRING())
                  .connect(shared.broadcast(*descriptors))
                  .process(op.UserLearner(settings, stores, model, hold_steps=execution_mode(env) == "process"),
                           output_type=PICKLED),
                  Step("user-learner", "user learner (user vectors)"))
    named(users.process(op.WriteUserVectors(stores)), Step("write-user-vectors", "write user vectors (Cassandra)"))
    user_updates = named(users.map(op.EncodeUserUpdate(), output_type=KAFKA_ROW_TYPE()),
                         Step("encode-user-updates", "encode user updates"))
    steps = named(users.get_side_output(op.STEPS_TAG).flat_map(op.SplitSteps(), output_type=PICKLED),
                  Step("item-steps-split", "item steps by title"))
    published = named(steps.key_by(lambda batch: batch[0], key_type=Types.STRING())
                      .process(op.ItemLearner(settings, stores, model), output_type=KAFKA_ROW_TYPE()),
                      Step("item-learner", "item learner (item vectors, similar titles)"))

    topics = {"model-updates": published, "user-updates": user_updates}
    if not settings.pin_blend:  # connected, not a union: in process mode a union after a side output loses it
        key = Types.STRING()
        topics["blend-updates"] = named(users.get_side_output(op.BLEND_TAG).key_by(op.segment_of, key_type=key)
                                        .connect(blend_updates.key_by(op.segment_of, key_type=key))
                                        .process(op.BlendLearner(settings), output_type=KAFKA_ROW_TYPE()),
                                        Step("blend-learner", "blend learner (per member segment)"))

    t_env = StreamTableEnvironment.create(env)
    return write_to_topics(t_env, kafka, topics)


JOB = JobSpec(JOB_NAME, LearningJobConfig, build)

if __name__ == "__main__":
    main(JOB)
