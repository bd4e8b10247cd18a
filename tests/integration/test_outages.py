"""Outages heal without a person: Cassandra frozen under a running feature job, then back; nothing is lost."""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connectors.cassandra_store import connect
from connectors.events import Context, RatingEvent
from connectors.feature_store import FeatureStore
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from infra.process import RunRecord
from jobs.flink import load_job
from jobs.flink.features.config import FeatureJobConfig
from jobs.runtime import FlinkConfig, start

OUTAGE_S = 60  # a few times the driver's request timeout (10 s) and Flink's checkpoint interval here (2 s)
USERS = 12


def _ratings(users: list[str], round_: int, at_ms: int) -> list[RatingEvent]:
    ctx = Context("tv-1", "TV", "US", 0)
    return [RatingEvent(user, at_ms + round_ * 1000, ctx, f"t{round_}", "THUMBS_UP", event_id=f"{user}-{round_}")
            for user in users]


def _wait(what: str, check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")


def test_the_feature_job_waits_out_a_cassandra_outage(kafka_config: Any, cassandra_config: Any,
                                                      tmp_path: Path) -> None:
    record = RunRecord.load("cassandra")
    if record is None:
        pytest.skip("Cassandra is not run by the local stack here (external or containers): nothing to freeze")
    kafka = replace(kafka_config, topic_prefix=f"outage-{uuid.uuid4().hex[:6]}.")
    created = ensure_topics(kafka)
    users = [f"outage-{uuid.uuid4().hex[:6]}-{n}" for n in range(USERS)]
    at_ms = int(time.time() * 1000) - 60_000
    session = connect(cassandra_config, cassandra_config.keyspace)
    store = FeatureStore(session, cassandra_config.keyspace)
    producer = EventProducer(kafka)
    flink = FlinkConfig(checkpoint_interval_ms=2000, checkpoint_dir=str(tmp_path))
    client = start(load_job("features"), kafka, cassandra_config, flink=flink,
                   settings=FeatureJobConfig(group_id=f"outage-{uuid.uuid4().hex[:6]}", idleness_ms=2000))

    def versions() -> list[int]:
        return [rows[0].version if (rows := store.rows("get_profile", user)) else 0 for user in users]

    try:
        producer.send_many(_ratings(users, 1, at_ms))
        producer.flush()
        _wait("the first ratings applied", lambda: versions() == [1] * USERS, 120)
        os.kill(record.pid, signal.SIGSTOP)  # frozen: connections stay open, nothing answers
        try:
            for round_ in (2, 3):
                producer.send_many(_ratings(users, round_, at_ms))
                producer.flush()
            time.sleep(OUTAGE_S)
        finally:
            os.kill(record.pid, signal.SIGCONT)
        _wait("every rating applied after the outage", lambda: versions() == [3] * USERS, 180)
        assert str(client.get_job_status().result()) == "RUNNING"
    finally:
        os.kill(record.pid, signal.SIGCONT)
        client.cancel().result()
        producer.close()
        session.cluster.shutdown()
        delete_topics(kafka, created)
