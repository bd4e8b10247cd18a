"""A PyFlink job in thread mode reads the event topics through the extracted connector jars."""

from __future__ import annotations

import uuid
from typing import Any

from connectors.producer import EventProducer
from jobs import event_audit_job
from jobs.runtime import FlinkConfig, stream_environment


def test_thread_mode_job_reads_and_decodes_topics(isolated_kafka: Any, make_event: Any, tmp_path: Any) -> None:
    events = [make_event("play"), make_event("rating"), make_event("impression")]
    with EventProducer(isolated_kafka) as producer:
        producer.send_many(events)
        producer.send_encoded(isolated_kafka.topic_prefix + "play", b"u1", b"\x00not avro")

    env = stream_environment(FlinkConfig(checkpoint_interval_ms=0, checkpoint_dir=str(tmp_path)))
    assert env.get_config().get_global_job_parameters() is not None  # environment built in-process
    stream = event_audit_job.build(env, isolated_kafka, group_id=f"audit-{uuid.uuid4().hex[:6]}")
    rows = list(stream.execute_and_collect(limit=4))

    assert sorted((subject, event_id) for subject, event_id, _ in rows if subject != "invalid") == sorted(
        (type(e).SUBJECT, e.event_id) for e in events)
    invalid = [row for row in rows if row[0] == "invalid"]
    assert len(invalid) == 1 and "marker" in invalid[0][2]
