"""Event-audit job: reads the event topics through the Kafka connector and decodes each message.

The smallest job that exercises the riskiest set-up (connector jars, PyFlink
patches, thread mode, Avro in Python); later jobs build on the same wiring.
"""

from __future__ import annotations

from typing import Any

from connectors.codec import EventCodec
from connectors.config import KafkaConfig
from connectors.flink_kafka import kafka_source
from connectors.topics import TOPICS_BY_NAME, USER_EVENT_TOPICS
from jobs.event_audit import audit_message
from jobs.runtime import FlinkConfig, stream_environment


def _decode_step() -> Any:
    from pyflink.datastream import MapFunction

    class DecodeEvents(MapFunction):  # type: ignore[misc]
        def open(self, runtime_context: Any) -> None:
            self.codec = EventCodec()

        def map(self, value: bytes) -> tuple[str, str, str]:
            return audit_message(self.codec, value)

    return DecodeEvents()


def build(env: Any, kafka: KafkaConfig, group_id: str = "nextwatch-event-audit") -> Any:
    """Wire source -> decode; returns the decoded stream of (subject, event_id, entity)."""
    from pyflink.common import Types, WatermarkStrategy

    topics = [TOPICS_BY_NAME[name].full_name(kafka) for name in (*USER_EVENT_TOPICS, "catalog")]
    source = kafka_source(kafka, topics, group_id)
    raw = (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "event-topics")
        .uid("event-audit-source").name("event topics (Kafka)")
    )
    return (
        raw.map(_decode_step(), output_type=Types.TUPLE([Types.STRING(), Types.STRING(), Types.STRING()]))
        .uid("event-audit-decode").name("decode Avro single-object")
    )


def main() -> None:
    env = stream_environment(FlinkConfig.load())
    decoded = build(env, KafkaConfig.load())
    decoded.print().uid("event-audit-print").name("print")
    env.execute("nextwatch-event-audit")


if __name__ == "__main__":
    main()
