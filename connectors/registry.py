"""The Confluent Schema Registry wire format, beside Avro single-object encoding.

A message in this format is ``0x00``, the writer schema's 4-byte id in the registry (big-endian), then the
same Avro body. Tools of the Kafka ecosystem read it (Kafka Connect's Avro converter, ksqlDB, Flink's
``avro-confluent`` format). The schemas are still the files in ``schemas/``: each topic's value subject
(``<topic>-value``, the registry's TopicNameStrategy) holds the versions of its contract in order, so the
registry checks each against the one before under its compatibility level, and refuses one that breaks it.

``[kafka] wire_format`` says what clients write and read (:data:`connectors.config.WIRE_FORMATS`):
``single-object`` writes and reads single-object only, and a ``0x00`` message is not readable (the jobs
dead-letter it); ``accept-registry`` writes single-object and reads both; ``registry`` writes the
registry's format and reads both. A deployment moves every reader to ``accept-registry`` before any
writer to ``registry``.

>>> from connectors.config import KafkaConfig
>>> registry = RegistryFormat("mock://doctest", SchemaStore(), "nextwatch.")
>>> version = registry.store.latest("rating_event")
>>> header = registry.header(version)
>>> header[:1], registry.version_of(int.from_bytes(header[1:], "big")) is version
(b'\\x00', True)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastavro import parse_schema

from connectors.config import KafkaConfig
from connectors.errors import SchemaStoreError, UnknownSchemaError
from connectors.schemas import SchemaStore, SchemaVersion, fingerprint_of
from connectors.topics import TOPICS

MARKER = b"\x00"
HEADER_SIZE = 5


class RegistryFormat:
    """The project's schemas in a registry: ids for writing, versions for reading, both cached for good."""

    def __init__(self, url: str, store: SchemaStore | None = None, topic_prefix: str = "nextwatch.",
                 client: Any = None) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.url = url
        self.store = store or SchemaStore()
        self.topic_prefix = topic_prefix
        self.client = client or SchemaRegistryClient.new_client({"url": url})
        self._ids: dict[bytes, int] = {}  # fingerprint -> id
        self._versions: dict[int, SchemaVersion] = {}

    def registry_subjects(self, subject: str) -> list[str]:
        """The registry subjects of the topics that carry ``subject``."""
        return [f"{self.topic_prefix}{t.name}-value" for t in TOPICS if t.subject == subject]

    def register(self, subjects: Iterable[str] | None = None) -> dict[str, list[int]]:
        """Register every version of each contract, oldest first, under each of its topics' subjects; the
        ids by registry subject. A version the registry refuses (incompatible with the one before) is an
        error naming both."""
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        registered: dict[str, list[int]] = {}
        for subject in subjects or self.store.subjects:
            for registry_subject in self.registry_subjects(subject):
                for version in self.store.versions(subject):
                    try:
                        schema_id = self.client.register_schema(
                            registry_subject, Schema(json.dumps(version.definition), "AVRO"))
                    except SchemaRegistryError as exc:
                        raise SchemaStoreError(
                            f"the schema registry at {self.url} refused {version.path.name} under "
                            f"{registry_subject}: {exc.error_message} (HTTP {exc.http_status_code})") from exc
                    registered.setdefault(registry_subject, []).append(schema_id)
                    self._remember(schema_id, version)
        return registered

    def _remember(self, schema_id: int, version: SchemaVersion) -> None:
        self._ids[version.fingerprint] = schema_id
        self._versions[schema_id] = version

    def schema_id(self, version: SchemaVersion) -> int:
        """The registry's id of ``version``, registering its contract's versions the first time."""
        if version.fingerprint not in self._ids:
            self.register([version.subject])
        if version.fingerprint not in self._ids:
            raise SchemaStoreError(f"{version.subject} has no topic, so no registry subject to register under")
        return self._ids[version.fingerprint]

    def header(self, version: SchemaVersion) -> bytes:
        return MARKER + self.schema_id(version).to_bytes(4, "big")

    def version_of(self, schema_id: int) -> SchemaVersion:
        """The contract version the registry's ``schema_id`` is: one of ``schemas/``, by its canonical form.
        An id the registry does not know, or a schema that is none of ours, is an
        :class:`~connectors.errors.UnknownSchemaError` (the message is unreadable, not the reader broken);
        a registry that does not answer raises its own error, so a job fails and retries rather than
        dead-lettering what it could read later."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        version = self._versions.get(schema_id)
        if version is None:
            try:
                schema = self.client.get_schema(schema_id)
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:
                    raise UnknownSchemaError(f"the schema registry has no schema {schema_id}") from exc
                raise
            try:
                parsed = parse_schema(json.loads(str(schema.schema_str)), named_schemas={})
                if not isinstance(parsed, dict):
                    raise TypeError("not a record")
                fingerprint = fingerprint_of(parsed)
            except (ValueError, KeyError, TypeError) as exc:
                raise UnknownSchemaError(f"registry schema {schema_id} is not an Avro schema: {exc}") from exc
            version = self.store.by_fingerprint(fingerprint)  # UnknownSchemaError when none of ours
            self._remember(schema_id, version)
        return version


@dataclass(frozen=True)
class WireFormat:
    """What a codec writes (``registry`` or not) and whether it reads the registry's framing."""

    write_registry: bool = False
    read_registry: bool = False
    registry: RegistryFormat | None = None
    name: str = "single-object"


SINGLE_OBJECT = WireFormat()

_registries: dict[tuple[str, str], RegistryFormat] = {}


def wire_format(kafka: KafkaConfig, store: SchemaStore | None = None) -> WireFormat:
    """The wire format ``kafka`` configures; one registry client (and its caches) per URL and prefix."""
    if kafka.wire_format == "single-object":
        return SINGLE_OBJECT
    key = (kafka.schema_registry_url, kafka.topic_prefix)
    registry = _registries.get(key)
    if registry is None:
        registry = _registries[key] = RegistryFormat(kafka.schema_registry_url, store, kafka.topic_prefix)
    return WireFormat(write_registry=kafka.wire_format == "registry", read_registry=True, registry=registry,
                      name=kafka.wire_format)


def register_schemas(kafka: KafkaConfig) -> dict[str, list[int]]:
    """Register every contract under its topics' value subjects when ``kafka`` uses the registry (``nextwatch
    topics create`` and ``stack up`` do); nothing for single-object."""
    wire = wire_format(kafka)
    return wire.registry.register() if wire.registry else {}
