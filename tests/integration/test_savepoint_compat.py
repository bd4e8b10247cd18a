"""Savepoints taken by earlier code restore with the code as it is: same uids, state names and class paths.

Each job's fixture (``tests/fixtures/savepoints/<job>/``, made by ``make_savepoints.py`` beside it) holds a
savepoint taken half-way through a fixed history. The job restores it, reads the second half (one event
per key), and every Cassandra row it writes must equal the row of a run that read the whole history
without stopping.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connectors.cassandra_store import apply_schema, connect
from connectors.config import CassandraConfig, KafkaConfig
from connectors.kafka_admin import delete_topics, ensure_topics
from infra import flink_cluster
from infra.flink_cluster import job_metrics
from infra.process import free_port
from jobs.flink import job_file
from tests.integration.local_runs import run_locally
from tests.integration.savepoint_scenarios import (
    FIXTURES,
    SCENARIOS,
    Message,
    Scenario,
    feed,
    produce,
    read_messages,
    start_job,
    wait_running,
)


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
         after: list[Message], checkpoints: Path, restore: Path | None = None) -> tuple[dict[str, Any], float]:
    """Start the job (restored or not), feed it ``before`` and then ``after``: the rows it wrote, and how many
    times its operators met state they could not decode."""
    rest_port = free_port()
    job = start_job(scenario.job, kafka, cassandra, scenario.settings(f"sp-test-{uuid.uuid4().hex[:6]}"),
                    checkpoints, restore, rest_port)
    session = connect(cassandra, cassandra.keyspace)
    try:
        wait_running(job)
        if before:
            feed(scenario, kafka, session, cassandra.keyspace, before, after=False)
        feed(scenario, kafka, session, cassandra.keyspace, after, after=True)
        return scenario.rows(session, cassandra.keyspace), _decode_failures(str(job.get_job_id()), rest_port)
    finally:
        session.cluster.shutdown()
        job.cancel().result()


def _run_on_cluster(scenario: Scenario, kafka: KafkaConfig, cassandra: CassandraConfig, after: list[Message],
                    restore: Path) -> tuple[dict[str, Any], float]:
    """The job submitted to the standalone cluster from ``restore`` at parallelism 2 (thread mode, as the
    fixtures were made), fed ``after``: the rows it wrote, and its state decode failures."""
    settings = scenario.settings(f"sp-cluster-{uuid.uuid4().hex[:6]}")
    env = {"NEXTWATCH_KAFKA_TOPIC_PREFIX": kafka.topic_prefix, "NEXTWATCH_CASSANDRA_KEYSPACE": cassandra.keyspace,
           "NEXTWATCH_FLINK_EXECUTION_MODE": "thread", "NEXTWATCH_FLINK_CHECKPOINT_INTERVAL_MS": "1000",
           **{f"NEXTWATCH_{scenario.job.upper()}_{key.upper()}": str(value).lower() if isinstance(value, bool)
              else str(value) for key, value in settings.items()}}
    job_id = flink_cluster.submit(job_file(scenario.job), parallelism=2, savepoint=str(restore), env=env)
    session = connect(cassandra, cassandra.keyspace)
    try:
        flink_cluster.wait_running(job_id)
        feed(scenario, kafka, session, cassandra.keyspace, after, after=True)
        return scenario.rows(session, cassandra.keyspace), _decode_failures(job_id, None)
    finally:
        session.cluster.shutdown()
        flink_cluster.flink_cli("cancel", job_id)
        flink_cluster.FlinkCluster().stop()


def _decode_failures(job_id: str, rest_port: int | None) -> float:
    """``state_decode_failures`` summed over the job's stateful operators, once every one reports it."""
    deadline = time.monotonic() + 20
    while True:
        metrics = job_metrics(job_id, {"state_decode_failures"}, rest_port)
        if "state_decode_failures" in metrics:
            return metrics["state_decode_failures"]
        assert time.monotonic() < deadline, "the job never reported state_decode_failures"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def keyspaces(cassandra_config: CassandraConfig) -> dict[str, CassandraConfig]:
    """Fresh keyspaces for the runs (the scenarios' keys are fixed; the jobs' keys differ from each other)."""
    runs = ("restored", "whole", "local", "cluster")
    return {run: _fresh_keyspace(cassandra_config, f"nextwatch_test_sp_{run}") for run in runs}


@pytest.mark.parametrize("job", sorted(SCENARIOS))
def test_a_savepoint_of_earlier_code_restores(job: str, kafka_config: KafkaConfig,
                                              keyspaces: dict[str, CassandraConfig], tmp_path: Path) -> None:
    scenario = SCENARIOS[job]
    fixture = FIXTURES / job
    made = json.loads((fixture / "made.json").read_text())
    savepoint = tmp_path / "savepoint"
    shutil.copytree(fixture / "savepoint", savepoint)
    before, after = read_messages(fixture / "before.jsonl"), read_messages(fixture / "after.jsonl")

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

        restored, failures = _run(scenario, kafka, keyspaces["restored"], [], after, tmp_path / "restored",
                                  restore=savepoint)
        whole, _ = _run(scenario, whole_kafka, keyspaces["whole"], before, after, tmp_path / "whole")
        # the same savepoint on the standalone cluster, restored at parallelism 2: newer code and a rescale at once
        delete_topics(kafka, created)
        created = ensure_topics(kafka)
        assert [(m.partition, m.offset) for m in produce(kafka, recorded)] == [
            (m.partition, m.offset) for m in recorded]
        on_cluster, cluster_failures = _run_on_cluster(scenario, kafka, keyspaces["cluster"], after, savepoint)
    finally:
        delete_topics(kafka, created)
        delete_topics(whole_kafka, whole_created)

    assert failures == cluster_failures == 0, f"{failures:g} and {cluster_failures:g} state values of the " \
                                              "savepoint could not be decoded"
    for rows in (restored, on_cluster):
        assert all(rows.values()), f"the restored job wrote no rows to some tables: {rows}"
        differences = scenario.compare(rows, whole)
        assert not differences, "\n".join(differences)

    # the same history through the operators in-process, on the fakes: the same rows again
    run_locally(job, [before, after], scenario.settings("local"), keyspaces["local"])
    session = connect(keyspaces["local"], keyspaces["local"].keyspace)
    try:
        local = {table: rows for table, rows in scenario.rows(session, keyspaces["local"].keyspace).items() if rows}
    finally:
        session.cluster.shutdown()
    assert local, "the local run wrote nothing"
    differences = scenario.compare(local, whole)
    assert not differences, "\n".join(differences)
