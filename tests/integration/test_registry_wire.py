"""The schema registry's wire format through a running job, against a registry-compatible HTTP stub.

A migration as a deployment would run it: apps that still write single-object and apps that already write
the registry's framing, into one topic; the feature job (``wire_format = "registry"``, its Python workers
in processes of their own, asking the registry over HTTP) applies every event of both, and writes its own
records in the registry's framing, which confluent-kafka's ``AvroDeserializer`` reads.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from connectors.feature_store import FeatureStore
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from connectors.registry import register_schemas
from jobs.flink import load_job
from jobs.flink.features.config import FeatureJobConfig
from jobs.runtime import FlinkConfig, start
from tests.integration.feature_history import FeatureRun, build_history
from tests.registry_stub import registry_stub


def _raw_values(kafka: Any, topic: str, count: int, timeout_s: float = 60) -> list[bytes]:
    consumer = Consumer(kafka.client_config(**{"group.id": f"raw-{uuid.uuid4().hex[:6]}",
                                               "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None and message.value():
                values.append(message.value())
    finally:
        consumer.close()
    return values


def test_a_job_reads_both_formats_during_a_migration_and_writes_the_registrys(
        kafka_config: Any, cassandra_config: Any, cassandra_session: Any, tmp_path: Path) -> None:
    with registry_stub() as (url, registry):
        base = replace(kafka_config, topic_prefix=f"wire-{uuid.uuid4().hex[:6]}.")
        migrated = replace(base, wire_format="registry", schema_registry_url=url)
        created = ensure_topics(base)
        assert register_schemas(migrated)  # every contract under its topics' subjects
        history = build_history()
        split = len(history.events) // 2
        client, new_app = None, EventProducer(migrated)
        try:
            with EventProducer(base) as old_app:  # not migrated yet: single-object
                for item in history.catalog:
                    old_app.send(item)
                for event in history.events[:split]:
                    old_app.send(event)
            # and the apps already migrated: the registry's framing
            for event in history.events[split:]:
                new_app.send(event)
            new_app.send(history.clock)
            new_app.flush()
            settings = FeatureJobConfig(group_id=f"wire-{uuid.uuid4().hex[:6]}", idleness_ms=2000)
            flink = FlinkConfig(checkpoint_interval_ms=2000, checkpoint_dir=str(tmp_path / "checkpoints"))
            client = start(load_job("features"), migrated, cassandra_config, settings=settings, flink=flink)
            store = FeatureStore(cassandra_session, cassandra_config.keyspace)
            deadline = time.monotonic() + 120
            while not ((rows := store.rows("get_profile", history.user)) and rows[0].version == history.applied):
                assert time.monotonic() < deadline, "not every event of both formats was applied"
                time.sleep(0.5)
            # nothing was dead-lettered: both formats were read
            assert _raw_values(base, f"{base.topic_prefix}dead-letter", 1, timeout_s=5) == []
            ticks = FeatureRun(history, migrated, store, new_app)
            ticks.wait_for("the member's two sessions", lambda: len(store.rows("get_sessions", history.user)) >= 2)
            # the job's own records: the registry's framing, read by the Kafka ecosystem's deserializer
            topic = f"{base.topic_prefix}session-features"
            values = _raw_values(base, topic, 2)
            assert len(values) >= 2 and all(v[:1] == b"\x00" for v in values)
            deserializer = AvroDeserializer(SchemaRegistryClient({"url": url}))
            records = [deserializer(v, SerializationContext(topic, MessageField.VALUE)) for v in values]
            assert {r["user_id"] for r in records} == {history.user}
            assert registry.requests > 0
        finally:
            new_app.close()
            if client is not None:
                client.cancel().result()
            delete_topics(base, created)
