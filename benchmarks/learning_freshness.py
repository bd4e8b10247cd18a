"""Freshness of the learning job's user vectors: a play event produced -> the new vector in Cassandra, under load.

The same live synthetic load as ``feature_freshness`` runs at ``--rate`` events/s
(only the learning job consumes it). Every ``--probe-every`` seconds a probe user
finishes a play (a COMPLETE event, a new event id); a poller reads the user's
``user_vectors`` row until its version shows that event, and records produce ->
visible for each probe. Run against the local stack (`nextwatch stack up`).
Figures last, as name=value.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from dataclasses import replace

from benchmarks.feature_freshness import background_load, now_ms, percentile, say
from connectors.cassandra_store import apply_schema, connect
from connectors.config import CassandraConfig, KafkaConfig
from connectors.events import Context, PlayEvent
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.model_store import ModelStore
from connectors.producer import EventProducer
from infra.pipeline import start_learning_job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="background events/s")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured period")
    parser.add_argument("--probe-every", type=float, default=0.25)
    args = parser.parse_args()

    kafka = replace(KafkaConfig.load(), topic_prefix=f"lfresh-{uuid.uuid4().hex[:6]}.")
    cassandra = replace(CassandraConfig.load(), keyspace="nextwatch_bench")
    apply_schema(cassandra)
    created = ensure_topics(kafka)
    stop = threading.Event()
    loader = threading.Thread(target=background_load, args=(kafka, args.rate, stop), daemon=True)
    client = start_learning_job(kafka, cassandra, group_id=f"lfresh-{uuid.uuid4().hex[:6]}")
    session = connect(cassandra, cassandra.keyspace)
    store = ModelStore(session, cassandra.keyspace)
    probe_user = f"probe-{uuid.uuid4().hex[:6]}"
    latencies: list[float] = []
    lost = 0
    try:
        loader.start()
        say("warming up for 20 s (job start-up, first checkpoints)")
        time.sleep(20)
        with EventProducer(kafka) as producer:
            ctx = Context("probe", "TV", "US", 0)
            version, deadline = 0, time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                version += 1
                event = PlayEvent(user_id=probe_user, event_time_ms=now_ms(), context=ctx,
                                  title_id=f"probe-title-{version % 7}", action="COMPLETE", playback_id="probe",
                                  position_ms=3_600_000, duration_ms=3_600_000)
                sent_at = time.monotonic()
                producer.send(event)
                producer.flush()
                while time.monotonic() - sent_at < 10:
                    rows = store.rows("get_user_vectors", probe_user)
                    if rows and rows[0].version >= version:
                        latencies.append((time.monotonic() - sent_at) * 1000)
                        break
                    time.sleep(0.005)
                else:  # not visible within 10 s: counted as 10 s (a lower bound), then resynchronized
                    latencies.append(10_000.0)
                    lost += 1
                    version = rows[0].version if rows else 0
                time.sleep(args.probe_every)
                if len(latencies) % 40 == 0 and latencies:
                    say(f"{len(latencies)} probes, p50 {statistics.median(latencies):.0f} ms")
    finally:
        stop.set()
        client.cancel().result()
        session.cluster.shutdown()
        delete_topics(kafka, created)
    print(f"workload=synthetic-live rate={args.rate:.0f} probes={len(latencies)} row=user_vectors "
          f"not_visible_within_10s={lost}")
    print(f"p50_ms={percentile(latencies, 0.5):.0f} p99_ms={percentile(latencies, 0.99):.0f} "
          f"max_ms={max(latencies):.0f}")


if __name__ == "__main__":
    main()
