"""Every event type through the real broker: produced with the SDK, consumed and decoded."""

from __future__ import annotations

from typing import Any

from connectors.codec import EventCodec
from connectors.consumer import EventConsumer
from connectors.errors import InvalidEventError
from connectors.producer import EventProducer
from connectors.topics import TOPICS
from tests.factories import ALL_FACTORIES


def _consume_all(config: Any, count: int) -> list[Any]:
    topics = [t.full_name(config) for t in TOPICS]
    with EventConsumer(topics, f"{config.topic_prefix}reader", config) as consumer:
        return consumer.take(count, timeout_s=30)


def test_every_event_type_round_trips(isolated_kafka: Any, make_event: Any) -> None:
    sent = {kind: make_event(kind) for kind in ALL_FACTORIES}
    with EventProducer(isolated_kafka) as producer:
        for event in sent.values():
            producer.send(event)
        summary = producer.flush()
    assert summary.delivered == summary.sent == len(sent)

    messages = _consume_all(isolated_kafka, len(sent))
    assert len(messages) == len(sent)
    codec = EventCodec()
    by_id = {m.event.record["event_id"]: m for m in messages if m.event is not None}
    for kind, event in sent.items():
        message = by_id[event.event_id]
        decoded = codec.decode_event(message.value)
        assert decoded.ingest_time_ms > 0
        decoded.ingest_time_ms = event.ingest_time_ms = 0
        assert decoded == event, kind
        expected_key = event.title_id if kind == "catalog" else event.user_id
        assert message.key == expected_key.encode()
        assert message.topic == isolated_kafka.topic_prefix + type(event).SUBJECT.split("_")[0]


def test_invalid_event_never_reaches_the_topic(isolated_kafka: Any, make_event: Any) -> None:
    with EventProducer(isolated_kafka) as producer:
        try:
            producer.send(make_event("play", title_id="bad", position_ms=10**9))
        except InvalidEventError as exc:
            assert exc.field == "position_ms"
        else:
            raise AssertionError("an invalid event was accepted")
        producer.send(make_event("play", title_id="good"))
    messages = _consume_all(isolated_kafka, 2)
    assert [m.event.record["title_id"] for m in messages if m.event] == ["good"]


def test_per_user_order_is_kept(isolated_kafka: Any, make_event: Any) -> None:
    events = [make_event("play", user_id="u-order", position_ms=i * 1000, event_time_ms=1_790_000_000_000 + i)
              for i in range(200)]
    with EventProducer(isolated_kafka) as producer:
        producer.send_many(events)
    messages = _consume_all(isolated_kafka, 200)
    assert [m.event.record["position_ms"] for m in messages if m.event] == [i * 1000 for i in range(200)]
