"""Savepoints taken by earlier code restore with the code as it is: same uids, state names and class paths.

Each job's fixture (``tests/fixtures/savepoints/<job>/``, made by ``make_savepoints.py`` beside it) holds a
savepoint taken half-way through a fixed history. The job restores it, reads the second half (one event
per key), and every Cassandra row it writes must equal the row of a run that read the whole history
without stopping.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connectors.cassandra_store import apply_schema, connect
from connectors.config import CassandraConfig, KafkaConfig
from connectors.kafka_admin import delete_topics, ensure_topics
from tests.integration.savepoint_scenarios import (
    FIXTURES,
    SCENARIOS,
    Message,
    Scenario,
    feed,
    produce,
    read_messages,
    wait_running,
)


def _start(job: str, kafka: KafkaConfig, cassandra: CassandraConfig, settings: dict[str, Any], checkpoints: Path,
           restore: Path | None = None) -> Any:
    from infra import pipeline
    from jobs.runtime import FlinkConfig

    flink = FlinkConfig(parallelism=1, execution_mode="thread", checkpoint_interval_ms=1000,
                        checkpoint_dir=str(checkpoints), restore_from=str(restore) if restore else "")
    if job == "features":
        from jobs.feature_job import JOB_NAME, FeatureJobConfig, build
        from jobs.runtime import stream_environment

        env = stream_environment(flink)
        build(env, kafka, cassandra, FeatureJobConfig(**settings))
        return env.execute_async(JOB_NAME)
    if job == "learning":
        from jobs.learning_job import LearningJobConfig

        return pipeline.start_learning_job(kafka, cassandra, flink=flink, settings=LearningJobConfig(**settings))
    from jobs.rows_job import RowsJobConfig

    return pipeline.start_rows_job(kafka, cassandra, flink=flink, settings=RowsJobConfig(**settings))


def _fresh_keyspace(cassandra: CassandraConfig, name: str) -> CassandraConfig:
    config = replace(cassandra, keyspace=name)
    session = connect(config)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)
    finally:
        session.cluster.shutdown()
    apply_schema(config)
    return config


def _run(scenario: Scenario, kafka: KafkaConfig, cassandra: CassandraConfig, before: list[Message],
         after: list[Message], checkpoints: Path, restore: Path | None = None) -> dict[str, Any]:
    """Start the job (restored or not), feed it ``before`` and then ``after``; the rows it wrote."""
    job = _start(scenario.job, kafka, cassandra, scenario.settings(f"sp-test-{uuid.uuid4().hex[:6]}"), checkpoints,
                 restore)
    session = connect(cassandra, cassandra.keyspace)
    try:
        wait_running(job)
        if before:
            feed(scenario, kafka, session, cassandra.keyspace, before, after=False)
        feed(scenario, kafka, session, cassandra.keyspace, after, after=True)
        return scenario.rows(session, cassandra.keyspace)
    finally:
        session.cluster.shutdown()
        job.cancel().result()


@pytest.mark.parametrize("job", sorted(SCENARIOS))
def test_a_savepoint_of_earlier_code_restores(job: str, kafka_config: KafkaConfig, cassandra_config: CassandraConfig,
                                              tmp_path: Path) -> None:
    scenario = SCENARIOS[job]
    fixture = FIXTURES / job
    made = json.loads((fixture / "made.json").read_text())
    savepoint = tmp_path / "savepoint"
    shutil.copytree(fixture / "savepoint", savepoint)
    after = read_messages(fixture / "after.jsonl")

    # the topics the savepoint's sources read, with the same messages at the same offsets
    kafka = replace(kafka_config, topic_prefix=made["topic_prefix"])
    delete_topics(kafka, list(ensure_topics(kafka)))
    created = ensure_topics(kafka)
    whole_kafka = replace(kafka_config, topic_prefix=f"sp-whole-{uuid.uuid4().hex[:6]}.")
    whole_created = ensure_topics(whole_kafka)
    try:
        recorded = read_messages(fixture / "topics.jsonl")
        replayed = produce(kafka, recorded)
        assert [(m.partition, m.offset) for m in replayed] == [(m.partition, m.offset) for m in recorded]

        restored = _run(scenario, kafka, _fresh_keyspace(cassandra_config, f"nextwatch_test_sp_{job}_restored"),
                        [], after, tmp_path / "restored", restore=savepoint)
        whole = _run(scenario, whole_kafka, _fresh_keyspace(cassandra_config, f"nextwatch_test_sp_{job}_whole"),
                     read_messages(fixture / "before.jsonl"), after, tmp_path / "whole")
    finally:
        delete_topics(kafka, created)
        delete_topics(whole_kafka, whole_created)

    assert all(restored.values()), f"the restored job wrote no rows to some tables: {restored}"
    differences = scenario.compare(restored, whole)
    assert not differences, "\n".join(differences)
