"""The Confluent Schema Registry wire format: the SDK against confluent-kafka's in-memory ``mock://``
registry, read back by confluent-kafka's own ``AvroDeserializer``; registration and the registry's
compatibility refusals against a registry-compatible HTTP stub; the reading rule (a ``0x00`` message is
read only where ``[kafka] wire_format`` allows it, dead-lettered otherwise)."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from connectors.codec import MAGIC, EventCodec
from connectors.config import KafkaConfig
from connectors.errors import ConfigError, DecodeError, SchemaStoreError
from connectors.producer import EventProducer
from connectors.registry import RegistryFormat, wire_format
from connectors.schemas import SchemaStore, default_schemas_dir
from connectors.topics import TOPICS
from jobs.decoding import decode_message
from jobs.runtime import job_codec, wire_parameters
from tests import factories
from tests.registry_stub import registry_stub


def mock_kafka(wire: str = "registry") -> KafkaConfig:
    return KafkaConfig(wire_format=wire, schema_registry_url=f"mock://{uuid.uuid4().hex}")


def test_the_sdk_writes_what_confluents_deserializer_reads() -> None:
    kafka = mock_kafka()
    producer = EventProducer(kafka, check_broker=False)
    rating = factories.make_rating()
    data = producer.codec.encode(rating, ingest_ms=rating.event_time_ms + 5)
    registry = producer.codec.wire.registry
    assert registry is not None and data[:1] == b"\x00"
    version = registry.store.latest("rating_event")
    assert int.from_bytes(data[1:5], "big") == registry.schema_id(version)
    # an independent reader: confluent-kafka's deserializer, the registry's schema by the message's id
    deserializer = AvroDeserializer(registry.client)
    record = deserializer(data, SerializationContext(f"{kafka.topic_prefix}rating", MessageField.VALUE))
    assert record["event_id"] == rating.event_id and record["stars"] == rating.stars
    assert record["ingest_time_ms"] == rating.event_time_ms + 5 and record["schema_version"] == version.version
    # and the registry holds each topic's value subject with every version of its contract, oldest first
    subjects = set(registry.client.get_subjects())
    assert f"{kafka.topic_prefix}rating-value" in subjects
    assert producer.codec.decode_event(data) == producer.codec.decode_event(
        EventCodec().encode(rating, ingest_ms=rating.event_time_ms + 5))


def test_confluents_serializer_writes_what_the_codec_reads() -> None:
    kafka = mock_kafka()
    codec = EventCodec(wire=wire_format(kafka))
    assert codec.wire.registry is not None
    client: SchemaRegistryClient = codec.wire.registry.client
    version = codec.store.latest("play_event")
    serializer = AvroSerializer(client, json.dumps(version.definition), conf={"auto.register.schemas": True})
    play = factories.make_play()
    written = codec.encode(play, ingest_ms=play.event_time_ms)
    data = serializer(codec.decode(written).record, SerializationContext(f"{kafka.topic_prefix}play",
                                                                          MessageField.VALUE))
    assert data[:1] == b"\x00" and codec.decode_event(data) == codec.decode_event(written)


def test_a_registry_message_is_read_only_where_the_wire_format_allows_it() -> None:
    kafka = mock_kafka("registry")
    registry_codec = EventCodec(wire=wire_format(kafka))
    play = factories.make_play()
    framed = registry_codec.encode(play, ingest_ms=play.event_time_ms)
    plain = EventCodec().encode(play, ingest_ms=play.event_time_ms)
    # single-object (the default): not read, and a job dead-letters it with the reason
    event, rejection = decode_message(EventCodec(), framed, play.event_time_ms)
    assert event is None and rejection is not None
    assert "wire_format = single-object does not read" in str(rejection)
    # accept-registry (readers first, during a migration): writes single-object, reads both
    accepting = EventCodec(wire=wire_format(KafkaConfig(wire_format="accept-registry",
                                                        schema_registry_url=kafka.schema_registry_url)))
    assert accepting.encode(play)[:2] == MAGIC
    assert accepting.decode_event(framed) == accepting.decode_event(plain) == registry_codec.decode_event(plain)
    # registry: writes the registry's framing, still reads what was written before
    assert framed[:1] == b"\x00" and registry_codec.decode_event(plain).event_id == play.event_id


def test_an_older_contract_version_written_in_registry_framing_is_read_with_the_newest() -> None:
    kafka = mock_kafka()
    old_writer = EventCodec(writer_versions={"impression_outcome": 1}, wire=wire_format(kafka))
    reader = EventCodec(wire=wire_format(kafka))
    v1 = SchemaStore().get("impression_outcome", 1)
    record = {f["name"]: _value(f["type"]) for f in v1.definition["fields"]}
    data = old_writer.encode_record("impression_outcome", record)
    assert data[:1] == b"\x00" and int.from_bytes(data[1:5], "big") == reader.wire.registry.schema_id(v1)  # type: ignore[union-attr]
    decoded = reader.decode(data)
    assert (decoded.writer_version, decoded.reader_version) == (1, 2)
    assert all(decoded.record[name] == value for name, value in record.items()
               if name not in ("schema_version", "ingest_time_ms"))  # both set by the encoder


def _value(avro_type: Any) -> Any:
    """A value of ``avro_type`` (the types the contracts use)."""
    if isinstance(avro_type, list):
        return _value(next(t for t in avro_type if t != "null"))
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        return [] if kind == "array" else {} if kind == "map" else avro_type["symbols"][0] if kind == "enum" else (
            1 if kind in ("int", "long") else None)
    return {"string": "x", "int": 1, "long": 1, "boolean": True, "double": 0.5, "float": 0.5, "bytes": b"x"}[avro_type]


def test_an_id_the_registry_does_not_know_is_unreadable_not_a_crash() -> None:
    codec = EventCodec(wire=wire_format(mock_kafka()))
    play = factories.make_play()
    data = codec.encode(play)
    unknown = b"\x00" + (999_999).to_bytes(4, "big") + data[5:]
    event, rejection = decode_message(codec, unknown, play.event_time_ms)
    assert event is None and "999999" in str(rejection)


def test_every_contract_is_registered_under_its_topics_subjects_by_the_http_registry() -> None:
    with registry_stub() as (url, state):
        registry = RegistryFormat(url, topic_prefix="nextwatch.")
        registered = registry.register()
        expected = {f"nextwatch.{t.name}-value" for t in TOPICS if t.subject}
        assert set(registered) == expected == set(state.subjects)
        # every version, in order: impression_outcome has two
        assert len(registered["nextwatch.impression-outcomes-value"]) == 2
        again = RegistryFormat(url, topic_prefix="nextwatch.").register()
        assert again == registered  # registering is idempotent
        # a job process with no cache reads an id by asking the registry
        reader = EventCodec(wire=wire_format(KafkaConfig(wire_format="accept-registry", schema_registry_url=url,
                                                         topic_prefix="other.")))
        writer = EventCodec(wire=wire_format(KafkaConfig(wire_format="registry", schema_registry_url=url)))
        rating = factories.make_rating()
        before = state.requests
        framed = writer.encode(rating, ingest_ms=rating.event_time_ms)
        assert reader.decode_event(framed) == EventCodec().decode_event(EventCodec().encode(
            rating, ingest_ms=rating.event_time_ms))
        assert state.requests > before


def test_the_registry_refuses_an_incompatible_version_and_the_error_names_it(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(default_schemas_dir(), schemas)
    v1 = json.loads((schemas / "rating_event.v1.avsc").read_text())
    v1["fields"].append({"name": "mood", "type": "string"})  # no default: old messages cannot be read
    (schemas / "rating_event.v2.avsc").write_text(json.dumps(v1))
    with registry_stub() as (url, _):
        registry = RegistryFormat(url, SchemaStore([schemas]))
        with pytest.raises(SchemaStoreError, match=r"refused rating_event.v2.avsc under nextwatch.rating-value: "
                                                   r".*'mood' was added without a default.*HTTP 409"):
            registry.register(["rating_event"])


@pytest.mark.parametrize(("settings", "message"), [
    ({"wire_format": "confluent"}, "wire_format must be one of single-object, accept-registry, registry"),
    ({"wire_format": "registry"}, "needs schema_registry_url"),
])
def test_bad_wire_settings_are_refused_by_name(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        KafkaConfig(**settings)


class _Context:
    def __init__(self, parameters: dict[str, str]) -> None:
        self.parameters = parameters

    def get_job_parameter(self, key: str, default: str) -> str:
        return self.parameters.get(key, default)


def test_a_jobs_operators_take_the_wire_format_the_job_was_built_with() -> None:
    kafka = mock_kafka("accept-registry")
    codec = job_codec(_Context(wire_parameters(kafka)))
    assert codec.wire.read_registry and not codec.wire.write_registry
    assert codec.wire.registry is not None and codec.wire.registry.url == kafka.schema_registry_url
    plain = job_codec(_Context({}))  # a job built before the parameters existed: single-object
    assert plain.wire.registry is None and not plain.wire.read_registry
    with pytest.raises(DecodeError, match="does not read"):
        plain.decode(EventCodec(wire=wire_format(mock_kafka())).encode(factories.make_play()))
