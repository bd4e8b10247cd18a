"""A PyFlink job in thread mode reads the event topics through the extracted connector jars: the runtime's
composite of source and decoder hands on the events and dead-letters what it cannot read, a null value and a
message over its bound included."""

from __future__ import annotations

import uuid
from typing import Any

from connectors.codec import EventCodec
from connectors.producer import EventProducer
from connectors.topics import USER_EVENT_TOPICS
from jobs.runtime import DecodeEvents, FlinkConfig, Step, read_events, stream_environment


def _dead_letter(row: Any) -> tuple[str, str, str]:
    record = EventCodec().decode(bytes(row[1])).record
    return ("dead-letter", record["reason_code"], f"{record['kind']} {record['original_length']} {record['reason']}")


def test_thread_mode_job_reads_decodes_and_dead_letters(isolated_kafka: Any, make_event: Any, tmp_path: Any) -> None:
    events = [make_event("play"), make_event("rating"), make_event("impression")]
    with EventProducer(isolated_kafka) as producer:
        producer.send_many(events)
        producer.send_encoded(isolated_kafka.topic_prefix + "play", b"u1", b"\x00not avro")
        producer.send_encoded(isolated_kafka.topic_prefix + "play", b"u1", None)  # a tombstone
        producer.send_encoded(isolated_kafka.topic_prefix + "rating", b"u1", b"\xc3\x01" + b"z" * 70_000)

    env = stream_environment(FlinkConfig(checkpoint_interval_ms=0, checkpoint_dir=str(tmp_path)))
    decoded = read_events(env, isolated_kafka, USER_EVENT_TOPICS, f"read-{uuid.uuid4().hex[:6]}",
                          Step("test-source", "event topics"), Step("test-decode", "decode"),
                          DecodeEvents("nextwatch-test", dead_letters=True))
    from pyflink.common import Types

    rows_type = Types.TUPLE([Types.STRING(), Types.STRING(), Types.STRING()])
    stream = decoded.events.map(lambda e: ("event", type(e).SUBJECT, e.event_id), output_type=rows_type) \
        .union(decoded.dead_letters.map(_dead_letter, output_type=rows_type))
    rows = list(stream.execute_and_collect(limit=6))

    assert sorted((subject, event_id) for kind, subject, event_id in rows if kind == "event") == sorted(
        (type(e).SUBJECT, e.event_id) for e in events)
    dead = {row[1]: row[2] for row in rows if row[0] == "dead-letter"}
    assert sorted(dead) == ["empty_value", "oversize", "undecodable"]
    assert dead["undecodable"].startswith("INVALID 9 ")  # b"\x00..." is the registry's framing, not read here
    assert "wire_format = single-object does not read" in dead["undecodable"]
    assert dead["empty_value"].startswith("INVALID 0 ")
    assert dead["oversize"].startswith("OVERSIZE 70002 ") and "over the limit of 65536" in dead["oversize"]


def test_connector_classes_load_on_every_gateway_connection(tmp_path: Any) -> None:
    # Python threads using the gateway at once open connections of their own; a job built on any of them
    # must find the connector classes (one that does not gets a JavaPackage and the job fails to build)
    import threading

    from pyflink.java_gateway import get_gateway

    stream_environment(FlinkConfig(checkpoint_interval_ms=0, checkpoint_dir=str(tmp_path)))
    start, kinds = threading.Barrier(6), []

    def look_up() -> None:
        start.wait()
        for _ in range(10):
            jvm = get_gateway().jvm
            kinds.extend(type(found).__name__ for found in (
                jvm.org.apache.flink.connector.kafka.source.KafkaSource, jvm.nextwatch.flink.NullAsEmptyBytes))

    threads = [threading.Thread(target=look_up) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert kinds == ["JavaClass"] * 120
