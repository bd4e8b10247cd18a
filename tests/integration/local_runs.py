"""Each job's Python operators wired in-process through the fakes, writing to a real Cassandra.

The wiring follows each ``jobs/flink/<job>/job.py`` step by step; where a job feeds itself through Kafka
(published item vectors, policy models) the output goes straight back in. The feature job's SQL steps
(sessions, trending, item stats) have no in-process stand-in, so its local run writes profiles and
continue watching only. ``test_savepoint_compat`` compares these rows with the mini-cluster's: what keeps
the fakes honest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.config import CassandraConfig
from connectors.topics import USER_EVENT_TOPICS
from jobs.runtime import DecodeEvents, Stores
from tests.flink_fakes import OperatorHarness, Output
from tests.integration.savepoint_scenarios import Message

Phases = list[list[Message]]


def _features(phases: Phases, settings: dict[str, Any], stores: Stores) -> None:
    from jobs.flink.features import operators as op
    from jobs.flink.features.config import JOB_NAME, FeatureJobConfig

    config = FeatureJobConfig(**settings)
    decode = OperatorHarness(DecodeEvents(JOB_NAME, dead_letters=True, check_timestamps=True)).open()
    catalog = OperatorHarness(op.DecodeCatalog()).open()
    users = OperatorHarness(op.UserFeatures(config, None, lambda kafka: {}),  # type: ignore[arg-type]
                            key=lambda event: event.user_id).open()
    write = OperatorHarness(op.WriteUserFeatures(stores)).open()
    for messages in phases:
        for message in messages:
            if message.topic == "catalog":
                users.process_broadcast(catalog.process(message.value).main[0])
            else:
                users.process_all(decode.process(message.value, message.timestamp_ms).main)
        write.process_all(users.advance(config.flush_ms).main)
    write.close()


def _learning(phases: Phases, settings: dict[str, Any], stores: Stores) -> None:
    from jobs.flink.learning import operators as op
    from jobs.flink.learning.config import JOB_NAME, LearningJobConfig

    config = LearningJobConfig(**settings)
    decode = OperatorHarness(DecodeEvents(JOB_NAME, op.feedback)).open()
    shared = OperatorHarness(op.DecodeShared()).open()
    users = OperatorHarness(op.UserLearner(config, stores), key=lambda value: value[0]).open()
    split = OperatorHarness(op.SplitSteps()).open()
    items = OperatorHarness(op.ItemLearner(config, stores), key=lambda batch: batch[0]).open()
    write = OperatorHarness(op.WriteUserVectors(stores)).open()
    blends = OperatorHarness(op.BlendLearner(config), key=lambda value: value.segment).open()

    def learned(out: Any) -> None:  # the user side's output: flushes written, item steps applied, blends learned
        write.process_all(out.main)
        for steps in out.side.get("item-steps", []):
            items.process_all(split.process(steps).main)
        for observation in out.side.get("blend-observations", []):
            for row in blends.process(observation).main:  # a move: published, and broadcast back
                users.process_broadcast(shared.process(bytes(row[1])).main[0])

    def settle() -> None:  # item vectors published and broadcast back, users flushed, snapshots written
        while items.pending_timers() or users.pending_timers():
            learned(users.advance(config.flush_ms))
            for row in items.advance(config.publish_ms).main:
                users.process_broadcast(shared.process(bytes(row[1])).main[0])

    for messages in phases:
        for message in messages:
            if message.topic in ("catalog", "model-updates"):
                users.process_broadcast(shared.process(message.value).main[0])
                continue
            for value in decode.process(message.value).main:
                learned(users.process(value))
        settle()
    items.close()
    write.close()
    users.close()


def _rows(phases: Phases, settings: dict[str, Any], stores: Stores) -> None:
    from jobs.exploration.presentation import POLICY_SET
    from jobs.flink.rows import operators as op
    from jobs.flink.rows.config import JOB_NAME, RowsJobConfig

    config = RowsJobConfig(**settings)
    decode = OperatorHarness(DecodeEvents(JOB_NAME, op.keyed_event)).open()
    records = OperatorHarness(op.DecodeRecords()).open()
    builder = OperatorHarness(op.HomepageBuilder(config, stores), key=lambda value: value[0]).open()
    learner = OperatorHarness(op.PolicyLearner(config), key=lambda value: POLICY_SET).open()
    write = OperatorHarness(op.WriteHomepage(stores)).open()

    def built(out: Output) -> None:
        write.process_all(value for value in out.main if value[0] == op.PAGE)
        learner.process_all(value for value in out.main if value[0] == op.LESSONS)

    for messages in phases:
        for message in sorted(messages, key=lambda m: m.topic not in ("catalog", "model-updates")):
            if message.topic in USER_EVENT_TOPICS:
                values = decode.process(message.value).main
            else:
                values = [v for v in records.process(message.value).main if v is not None]
            for value in values:
                if message.topic == "user-updates" or message.topic in USER_EVENT_TOPICS:
                    builder.process(value)
                else:
                    builder.process_broadcast(value)
        built(builder.advance(config.flush_ms))
        for row in learner.advance(config.policy_publish_ms).main:  # published, and broadcast back
            builder.process_broadcast(records.process(bytes(row[1])).main[0])
    builder.close()
    write.close()


RUNS: dict[str, Callable[[Phases, dict[str, Any], Stores], None]] = {
    "features": _features, "learning": _learning, "rows": _rows}


def run_locally(job: str, phases: Phases, settings: dict[str, Any], cassandra: CassandraConfig) -> None:
    """``job``'s operators over ``phases`` of messages (each phase's timers fired before the next)."""
    RUNS[job](phases, settings, Stores(cassandra))
