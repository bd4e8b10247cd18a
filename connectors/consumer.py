"""Reading events back: poll a topic, resolve each message's writer schema, decode.

Messages that cannot be read (wrong marker, unknown fingerprint, corrupt body) are
returned with ``error`` set and the original bytes kept, so a caller can dead-letter
them with the reason instead of stopping.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from connectors.codec import DecodedEvent, EventCodec
from connectors.config import KafkaConfig
from connectors.errors import DecodeError, UnknownSchemaError
from connectors.kafka_admin import wait_for_broker
from connectors.registry import wire_format

CONSUMER_DEFAULTS: dict[str, Any] = {
    "auto.offset.reset": "earliest",
    "enable.auto.commit": True,
    # group joins on this broker wait about half the session timeout
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
}


@dataclass(frozen=True)
class ConsumedMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    event: DecodedEvent | None
    error: str | None


def read_snapshot(topic: str, kafka: KafkaConfig | None = None, codec: EventCodec | None = None,
                  idle_s: float = 1.0, timeout_s: float = 30.0) -> list[DecodedEvent]:
    """Every readable record of ``topic`` from the beginning, without joining a group.

    For bootstrapping from small compacted topics (the catalog). The broker's high
    watermark is unreliable here, so the end is an idle gap of ``idle_s``.
    """
    kafka = kafka or KafkaConfig.load()
    codec = codec or EventCodec(wire=wire_format(kafka))
    consumer = Consumer(kafka.client_config(**{"group.id": "nextwatch-snapshot", "enable.auto.commit": False}))
    try:
        partitions = consumer.list_topics(topic, timeout=kafka.connect_timeout_s).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out: list[DecodedEvent] = []
        deadline = time.monotonic() + timeout_s
        idle_until = time.monotonic() + max(idle_s, 2.0)  # the first fetch takes a moment
        while time.monotonic() < min(idle_until, deadline):
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            idle_until = time.monotonic() + idle_s
            try:
                out.append(codec.decode(msg.value() or b""))
            except (DecodeError, UnknownSchemaError):
                continue  # unreadable records are the live path's business (dead-letter)
        return out
    finally:
        consumer.close()


class EventConsumer:
    """A consumer-group member over some topics that decodes as it polls."""

    def __init__(self, topics: Iterable[str], group_id: str, kafka: KafkaConfig | None = None,
                 codec: EventCodec | None = None, reader_version: int | None = None) -> None:
        self.kafka = kafka or KafkaConfig.load()
        self.codec = codec or EventCodec(wire=wire_format(self.kafka))
        self.reader_version = reader_version
        wait_for_broker(self.kafka)
        self._consumer = Consumer(self.kafka.client_config(**CONSUMER_DEFAULTS, **{"group.id": group_id}))
        self._consumer.subscribe(list(topics))

    def poll(self, timeout_s: float = 1.0) -> ConsumedMessage | None:
        msg = self._consumer.poll(timeout_s)
        if msg is None:
            return None
        if msg.error():
            raise KafkaException(msg.error())
        value = msg.value() or b""
        event: DecodedEvent | None = None
        error: str | None = None
        try:
            event = self.codec.decode(value, self.reader_version)
        except (DecodeError, UnknownSchemaError) as exc:
            error = str(exc)
        return ConsumedMessage(msg.topic() or "", msg.partition() or 0, msg.offset() or 0, msg.key(),
                               value, event, error)

    def take(self, count: int, timeout_s: float = 30.0) -> list[ConsumedMessage]:
        """Poll until ``count`` messages arrived or ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        out: list[ConsumedMessage] = []
        while len(out) < count and time.monotonic() < deadline:
            message = self.poll(min(1.0, max(0.01, deadline - time.monotonic())))
            if message is not None:
                out.append(message)
        return out

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> EventConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
