"""Follow a compacted topic from its beginning in a background thread: the serving side's replicas.

Reads every partition from the beginning without a consumer group (each service instance
holds the whole topic). ``start()`` returns once the topic has been read to an idle gap
(this broker's high watermark cannot be trusted for "caught up"); the thread then keeps
polling, through a broker outage, and applies each decoded record as it comes.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import Any, Self

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors.codec import EventCodec
from connectors.config import KafkaConfig
from connectors.errors import DecodeError, UnknownSchemaError
from connectors.registry import wire_format
from connectors.topics import TOPICS_BY_NAME


class TopicFollower(ABC):
    """Subclasses name the declared ``TOPIC`` and its ``SUBJECT`` and take each record in :meth:`apply_record`."""

    TOPIC = ""
    SUBJECT = ""

    def __init__(self, kafka: KafkaConfig | None = None, codec: EventCodec | None = None,
                 poll_s: float = 0.1) -> None:
        self.kafka = kafka or KafkaConfig.load()
        self.codec = codec or EventCodec(wire=wire_format(self.kafka))
        self.poll_s = poll_s
        self.errors = 0  # records that did not decode: the live jobs dead-letter or count them, here they are skipped
        self.loaded = False  # the topic was read to its end once
        self._stop = threading.Event()
        self._last_record_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None

    def start(self, idle_s: float = 1.0, timeout_s: float = 30.0) -> Self:
        topic = TOPICS_BY_NAME[self.TOPIC].full_name(self.kafka)
        consumer = Consumer(self.kafka.client_config(**{"group.id": f"nextwatch-follow-{self.TOPIC}",
                                                        "enable.auto.commit": False}))
        partitions = consumer.list_topics(topic, timeout=self.kafka.connect_timeout_s).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self._consumer = consumer
        self._last_record_at = time.monotonic() + 1.0  # the first fetch takes a moment
        self._thread = threading.Thread(target=self._follow, name=f"follow-{self.TOPIC}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() - self._last_record_at < idle_s and time.monotonic() < deadline:
            time.sleep(0.05)
        self.loaded = time.monotonic() - self._last_record_at >= idle_s
        return self

    @property
    def following(self) -> bool:
        """The follower thread runs (it keeps polling through a broker outage and resumes after it)."""
        return self._thread is not None and self._thread.is_alive()

    def _follow(self) -> None:
        assert self._consumer is not None
        while not self._stop.is_set():
            msg = self._consumer.poll(self.poll_s)
            if msg is None or msg.error():
                continue
            self._last_record_at = time.monotonic()
            try:
                decoded = self.codec.decode(msg.value() or b"")
            except (DecodeError, UnknownSchemaError):
                self.errors += 1
                continue
            if decoded.subject == self.SUBJECT:
                try:
                    self.apply_record(decoded.record)
                except (KeyError, TypeError, ValueError):
                    self.errors += 1

    @abstractmethod
    def apply_record(self, record: dict[str, Any]) -> bool:
        """A decoded record of ``SUBJECT``; True when it changed what is held."""

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._consumer is not None:
            self._consumer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
