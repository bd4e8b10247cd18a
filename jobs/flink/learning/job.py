"""Learning job: user events -> online models -> user vectors, top picks, item vectors and similar titles.

The design, its staleness bound and every setting are in ``docs/jobs/learning.md``; the models in
:mod:`jobs.models`. Steps, each with a stable uid:

1. ``learning-source`` / ``learning-decode``: play, browse, rating, search -> feedback or search.
2. ``model-updates-source``, ``catalog-source`` (catalog and experiments; and ``blend-updates-source``,
   ``neural-updates-source``): compacted topics, read from the start, decoded, broadcast to the user side.
3. ``user-learner`` (keyed by user): test, then learn; item steps, blend observations and neural examples
   to side outputs; each changed user's vectors and top picks (their variant's blend) every ``flush_ms``.
4. ``item-learner`` (keyed by title): item steps applied once; vectors published to model-updates.
5. ``write-user-vectors`` (Cassandra) and ``encode-user-updates`` (the rows job's input).
6. ``blend-learner`` (keyed by tenure segment): blends learned and published to blend-updates; not in
   the graph with ``pin_blend`` (that graph restores savepoints of older code).
7. ``neural-trainer`` (one key): the neural sequence model trained and published to neural-updates;
   only with ``neural``.
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

    def shared_topic(topic: str, suffix: str, what: str, also: tuple[str, ...] = ()) -> Any:  # compacted, decoded
        names = ", ".join((topic, *also))  # more topics in one source: a new source would renumber the sinks' ids
        return named(read_topic(env, kafka, [topic, *also], settings.group_id + suffix,
                                Step(f"{topic}-source", f"{names} (Kafka)"))
                     .map(op.DecodeShared(), output_type=PICKLED), Step(f"{topic}-decode", f"decode {what}"))

    updates = shared_topic("model-updates", "-updates", "item vectors")
    catalog = shared_topic("catalog", "-catalog", "catalog, experiments", also=("experiments",))
    shared, descriptors = updates.union(catalog), [op.ITEMS, op.CATALOG, op.EXPERIMENTS]
    if not settings.pin_blend:  # the blends learned: read back what the blend learner publishes
        blend_updates = named(shared_topic("blend-updates", "-blends", "blends")
                              .filter(lambda value: value is not None), Step("blend-updates-known", "blends"))
        shared, descriptors = shared.union(blend_updates), [*descriptors, op.BLENDS]
    if settings.neural:  # the neural model's weights, as its trainer publishes them
        neural_updates = named(shared_topic("neural-updates", "-neural", "neural weights")
                               .filter(lambda value: value is not None), Step("neural-updates-known", "neural weights"))
        shared, descriptors = shared.union(neural_updates), [*descriptors, op.NEURAL]

    users = named(events.key_by(lambda value: value[0], key_type=Types.STRING())
                  .connect(shared.broadcast(*descriptors))
                  .process(op.UserLearner(settings, stores, model, hold_steps=execution_mode(env) == "process"),
                           output_type=PICKLED),
                  Step("user-learner", "user learner (user vectors)"))
    named(users.process(op.WriteUserVectors(stores)), Step("write-user-vectors", "write user vectors (Cassandra)"))
    user_updates = named(users.flat_map(op.EncodeUserUpdate(), output_type=KAFKA_ROW_TYPE()),
                         Step("encode-user-updates", "encode user updates"))
    steps = named(users.get_side_output(op.STEPS_TAG).flat_map(op.SplitSteps(), output_type=PICKLED),
                  Step("item-steps-split", "item steps by title"))
    published = named(steps.key_by(lambda batch: batch[0], key_type=Types.STRING())
                      .process(op.ItemLearner(settings, stores, model), output_type=KAFKA_ROW_TYPE()),
                      Step("item-learner", "item learner (item vectors, similar titles)"))

    topics = {"model-updates": published, "user-updates": user_updates}
    if not settings.pin_blend:  # the observations and the published blends, each keyed by segment
        key = Types.STRING()
        topics["blend-updates"] = named(users.get_side_output(op.BLEND_TAG).key_by(op.segment_of, key_type=key)
                                        .connect(blend_updates.key_by(op.segment_of, key_type=key))
                                        .process(op.BlendLearner(settings), output_type=KAFKA_ROW_TYPE()),
                                        Step("blend-learner", "blend learner (per member segment)"))

    if settings.neural:
        topics["neural-updates"] = named(users.get_side_output(op.EXAMPLES_TAG)
                                         .key_by(lambda example: op.TRAINER_KEY, key_type=Types.STRING())
                                         .process(op.NeuralTrainer(settings, model), output_type=KAFKA_ROW_TYPE()),
                                         Step("neural-trainer", "neural trainer (sequence model)"))

    t_env = StreamTableEnvironment.create(env)
    return write_to_topics(t_env, kafka, topics)


JOB = JobSpec(JOB_NAME, LearningJobConfig, build)

if __name__ == "__main__":
    main(JOB)
