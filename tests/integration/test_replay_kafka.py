"""A replay produced into the real broker arrives whole."""

from __future__ import annotations

from typing import Any

from connectors.consumer import EventConsumer
from connectors.producer import EventProducer
from connectors.topics import TOPICS
from infra.replay.runner import produce_events
from infra.replay.synthetic import SyntheticLoad


def test_synthetic_replay_arrives_complete(isolated_kafka: Any) -> None:
    load = list(SyntheticLoad(users=20, titles=30, sessions=60, seed=5))
    with EventProducer(isolated_kafka) as producer:
        stats = produce_events(load, producer, rate=5000)
    assert stats.events == len(load)
    with EventConsumer([t.full_name(isolated_kafka) for t in TOPICS], "replay-check", isolated_kafka) as consumer:
        messages = consumer.take(len(load), timeout_s=30)
    assert sorted(m.event.record["event_id"] for m in messages if m.event) == sorted(e.event_id for e in load)
