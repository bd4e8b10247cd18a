"""The producer SDK: typed event -> validate -> Avro single-object bytes -> Kafka.

Defaults are the ones an app wants in production: ``acks=all`` with idempotence (no
duplicates from client retries, per-partition order kept), lz4 compression, a short
linger for batching, and a bounded delivery timeout so a dead broker becomes an
error instead of a hang. Anything in ``KafkaConfig.options`` overrides them.

Delivery reports: librdkafka reports every message; by default only failures are
handed to Python (``delivery.report.only.error``), which keeps the per-event cost
low. A message is delivered when :meth:`EventProducer.flush` returns without
raising: flush waits for every outstanding report, and any failure since the last
flush raises :class:`~connectors.errors.DeliveryError` listing them. Pass
``on_delivery`` to get a callback for every message instead.

Invalid events raise :class:`~connectors.errors.InvalidEventError` from
:meth:`send` before anything is queued.

Each message's Kafka timestamp is the event's time (``event_time_ms``, or
``updated_time_ms`` for the catalog): stream jobs take event time and per-partition
watermarks from it at the source.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from connectors.codec import EventCodec
from connectors.config import KafkaConfig
from connectors.errors import BrokerUnavailableError, DeliveryError
from connectors.events import ErasureRequest
from connectors.kafka_admin import wait_for_broker
from connectors.limits import Limits
from connectors.privacy import PrivacyConfig
from connectors.registry import wire_format
from connectors.topics import topic_for_subject

DeliveryCallback = Callable[[KafkaError | None, Message], None]

PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": "lz4",
    "linger.ms": 10,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "message.timeout.ms": 30_000,  # a message not acknowledged by then is reported as failed
    "socket.connection.setup.timeout.ms": 5_000,
}


@dataclass(frozen=True)
class DeliverySummary:
    sent: int
    delivered: int
    seconds: float


class EventProducer:
    """Send nextwatch events to their topics, keyed for per-user (or per-title) order.

    >>> # with EventProducer(KafkaConfig.load()) as producer:
    >>> #     producer.send(play_event)
    >>> #     producer.flush()          # raises DeliveryError if the broker refused anything
    """

    def __init__(
        self,
        kafka: KafkaConfig | None = None,
        codec: EventCodec | None = None,
        on_delivery: DeliveryCallback | None = None,
        check_broker: bool = True,
        privacy: PrivacyConfig | None = None,
        account_ids: bool = True,
    ) -> None:
        self.kafka = kafka or KafkaConfig.load()
        # apps send their account ids: with [privacy] pseudonymous_ids each becomes a member id here, before
        # anything is encoded; a producer that already holds member ids (the API's page) says account_ids=False
        self._member_ids = (privacy or PrivacyConfig.load()).member_ids() if account_ids else None
        self.codec = codec or EventCodec(limits=Limits.load(), wire=wire_format(self.kafka))
        if check_broker:
            wait_for_broker(self.kafka)
        self._failures: list[tuple[str, bytes | None, str]] = []
        self._fatal: str | None = None
        self._user_on_delivery = on_delivery
        settings = self.kafka.client_config(**PRODUCER_DEFAULTS, error_cb=self._on_client_error)
        if on_delivery is None:
            settings.setdefault("delivery.report.only.error", True)
            settings["on_delivery"] = self._on_report
        else:
            settings["on_delivery"] = self._on_report_and_forward
        self._producer = Producer(settings)
        self._routes: dict[type[Any], tuple[str, str, str]] = {}
        self._sent = 0
        self._since_poll = 0
        self._started = time.monotonic()

    # -- reports -----------------------------------------------------------
    def _on_report(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failures.append((msg.topic() or "?", msg.key(), str(err)))

    def _on_report_and_forward(self, err: KafkaError | None, msg: Message) -> None:
        self._on_report(err, msg)
        assert self._user_on_delivery is not None
        self._user_on_delivery(err, msg)

    def _on_client_error(self, err: KafkaError) -> None:
        # transient errors (a broker briefly down) are retried by librdkafka until
        # message.timeout.ms, then surface as failed deliveries; only fatal ones stop us
        if err.fatal():
            self._fatal = f"{err.name()}: {err.str()}"

    # -- sending -----------------------------------------------------------
    def _route(self, event: Any) -> tuple[str, str, str]:
        route = self._routes.get(type(event))
        if route is None:
            spec = topic_for_subject(type(event).SUBJECT)
            time_field = "updated_time_ms" if spec.subject == "catalog_item" else "event_time_ms"
            route = self._routes[type(event)] = (spec.full_name(self.kafka), spec.key_field, time_field)
        return route

    def _pseudonymous(self, event: Any) -> Any:
        if self._member_ids is None or not hasattr(event, "user_id"):
            return event
        if isinstance(event, ErasureRequest):  # its event id is made of the member id
            return replace(event, user_id=self._member_ids.member_id(event.user_id), event_id="")
        return replace(event, user_id=self._member_ids.member_id(event.user_id))

    def send(self, event: Any) -> None:
        """Validate and encode ``event`` and queue it; raises InvalidEventError before queueing a bad one."""
        event = self._pseudonymous(event)
        value = self.codec.encode(event, int(time.time() * 1000))
        topic, key_field, time_field = self._route(event)
        self.send_encoded(topic, getattr(event, key_field).encode(), value, getattr(event, time_field))

    def send_many(self, events: Iterable[Any]) -> int:
        """Send each event; stamps one ingest time per call. Returns how many were queued."""
        now = int(time.time() * 1000)
        encode, route, send = self.codec.encode, self._route, self.send_encoded
        count = 0
        for event in events:
            event = self._pseudonymous(event)
            value = encode(event, now)
            topic, key_field, time_field = route(event)
            send(topic, getattr(event, key_field).encode(), value, getattr(event, time_field))
            count += 1
        return count

    def send_encoded(self, topic: str, key: bytes | None, value: bytes | None, timestamp_ms: int = 0,
                     headers: list[tuple[str, str | bytes | None]] | None = None, partition: int = -1) -> None:
        """Queue bytes that are already encoded (replays, the dead-letter path, benchmarks).

        ``timestamp_ms`` becomes the Kafka message timestamp (0: the client's clock);
        ``partition`` overrides the key's partition (-1: by key); a ``None`` value is a tombstone.
        """
        if self._fatal or (self._failures and self._user_on_delivery is None):
            self._raise_pending()
        while True:
            try:
                if headers:
                    self._producer.produce(topic, value, key, partition=partition, timestamp=timestamp_ms,
                                           headers=headers)
                else:
                    self._producer.produce(topic, value, key, partition=partition, timestamp=timestamp_ms)
                break
            except BufferError:
                # local queue full: serve delivery reports until there is room (backpressure)
                self._producer.poll(0.05)
                if self._fatal:
                    self._raise_pending()
            except KafkaException as exc:
                raise DeliveryError([(topic, key, str(exc))]) from exc
        self._sent += 1
        self._since_poll += 1
        if self._since_poll >= 1000:
            self._since_poll = 0
            self._producer.poll(0)

    def _raise_pending(self) -> None:
        if self._failures:
            failures, self._failures = self._failures, []
            raise DeliveryError(failures)
        if self._fatal:
            raise BrokerUnavailableError(f"Kafka client gave up ({self._fatal}) at {self.kafka.bootstrap_servers}")

    def flush(self, timeout_s: float = 60.0) -> DeliverySummary:
        """Wait until every queued message is acknowledged; raise on any failure since the last flush."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise BrokerUnavailableError(
                f"{remaining} message(s) still unacknowledged after {timeout_s:.0f}s "
                f"by {self.kafka.bootstrap_servers}" + (f" ({self._fatal})" if self._fatal else "")
            )
        failed = len(self._failures)
        if failed:
            self._raise_pending()
        return DeliverySummary(self._sent, self._sent - failed, time.monotonic() - self._started)

    def close(self, timeout_s: float = 60.0) -> DeliverySummary:
        return self.flush(timeout_s)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._producer.flush(5.0)  # best effort; the original error is the one to see
