"""Freshness through the broker alone: a play event produced -> consumed by a plain librdkafka consumer, under load.

The same live load and probes as ``learning_freshness`` with no Flink and no Cassandra
in the path: a consumer-group member on the user event topics counts every message
and each probe user's play events as they arrive. What it shows is the floor the jobs' freshness stands on,
and whether a slow probe is the broker's doing. Run against the local stack
(`nextwatch stack up`). Figures last, as name=value.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from benchmarks.feature_freshness import Probe, measure
from benchmarks.learning_freshness import complete_event
from benchmarks.load import Watched
from connectors.config import CassandraConfig, KafkaConfig
from connectors.consumer import EventConsumer
from connectors.topics import TOPICS_BY_NAME, USER_EVENT_TOPICS


class ConsumedCounts:
    """Stands in for a job and its store: counts each user's play events as a consumer reads them."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.consumed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, kafka: KafkaConfig, cassandra: CassandraConfig, group_id: str) -> Watched:
        play = TOPICS_BY_NAME["play"].full_name(kafka)
        consumer = EventConsumer([TOPICS_BY_NAME[name].full_name(kafka) for name in USER_EVENT_TOPICS], group_id,
                                 kafka)

        def run() -> None:
            with consumer:
                while not self._stop.is_set():
                    message = consumer.poll(0.1)
                    if message is None:
                        continue
                    self.consumed += 1
                    if message.event is not None and message.topic == play:
                        self.counts[message.event.record["user_id"]] += 1

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return Watched("broker_consumer", lambda: float(self.consumed), self.stop)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def store(self, session: Any, keyspace: str) -> ConsumedCounts:
        return self

    def visible(self, store: Any, user_id: str, number: int) -> bool:
        return self.counts[user_id] >= number  # one COMPLETE per probe


def main() -> None:
    counts = ConsumedCounts()
    measure(Probe("consumed (broker only)", counts.start, counts.store, complete_event, counts.visible),
            __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
