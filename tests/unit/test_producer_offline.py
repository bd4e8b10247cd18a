"""Producer behaviour that needs no broker: refusals before sending, and a dead broker."""

from __future__ import annotations

import time
from typing import Any

import pytest

from connectors.config import KafkaConfig
from connectors.errors import BrokerUnavailableError, DeliveryError, InvalidEventError
from connectors.producer import EventProducer
from infra.process import free_port


@pytest.fixture
def dead_broker() -> KafkaConfig:
    return KafkaConfig(bootstrap_servers=f"127.0.0.1:{free_port()}", connect_timeout_s=1.5,
                       options={"message.timeout.ms": "1500", "log_level": "0"})


def test_invalid_event_is_refused_before_anything_is_queued(dead_broker: KafkaConfig, make_event: Any) -> None:
    producer = EventProducer(dead_broker, check_broker=False)
    with pytest.raises(InvalidEventError) as caught:
        producer.send(make_event("play", position_ms=-5))
    assert caught.value.field == "position_ms"
    assert producer._sent == 0


def test_no_broker_is_a_clear_error_within_the_timeout(dead_broker: KafkaConfig) -> None:
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match=dead_broker.bootstrap_servers):
        EventProducer(dead_broker)
    assert time.monotonic() - started < 5


def test_undeliverable_messages_reach_the_caller(dead_broker: KafkaConfig, make_event: Any) -> None:
    producer = EventProducer(dead_broker, check_broker=False)
    producer.send(make_event("rating"))
    started = time.monotonic()
    with pytest.raises((DeliveryError, BrokerUnavailableError)) as caught:
        producer.flush(timeout_s=10)
    assert time.monotonic() - started < 10
    assert "nextwatch.rating" in str(caught.value) or "unacknowledged" in str(caught.value)
