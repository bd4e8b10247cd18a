"""Sustained events/s through the feature job, Kafka in to Cassandra out (run `nextwatch stack up` first).

Workload ``movielens-<N>``: the MovieLens replay of the first N ratings, produced
into fresh topics before the job starts, followed by one sentinel per partition
(see :mod:`infra.pipeline`). The clock starts when the job is submitted; it stops
when every sentinel's profile row is visible in Cassandra. ``steady`` excludes the
job's start-up (submit until the first replayed user's profile row is visible).
Writes go to a keyspace of their own (``nextwatch_bench``). Figures last.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import uuid
from dataclasses import dataclass, replace

from connectors.cassandra_store import apply_schema, connect
from connectors.config import CassandraConfig, KafkaConfig
from connectors.consumer import read_snapshot
from connectors.feature_store import FeatureStore
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.model_store import ModelStore
from connectors.producer import EventProducer
from connectors.topics import USER_EVENT_TOPICS
from infra.pipeline import feed, send_sentinels, start_job, wait_for_profiles
from infra.replay.movielens import MovieLensReplay, load_movielens
from jobs.flink.learning.config import LEARNING_TOPICS
from jobs.runtime import FlinkConfig


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


@dataclass
class Result:
    events: int
    seconds: float
    startup_seconds: float
    steady_seconds: float
    late: int
    invalid: int


def run_workload(ratings: int, timeout_s: float = 900.0, keep_topics: bool = False, job: str = "features") -> Result:
    """Feed the workload, run ``job`` (features or learning) until every sentinel is visible, return the timings."""
    learning = job == "learning"
    kafka = replace(KafkaConfig.load(), topic_prefix=f"bench-{uuid.uuid4().hex[:6]}.")
    cassandra = replace(CassandraConfig.load(), keyspace="nextwatch_bench")
    apply_schema(cassandra)
    created = ensure_topics(kafka)
    try:
        replay = MovieLensReplay(load_movielens(), limit=ratings)
        first_user = replay.viewings[0].user.user_id
        with EventProducer(kafka) as producer:
            fed = feed(replay, producer, progress=say)
            sentinels = send_sentinels(producer, kafka, fed.last_event_ms + 60_000,
                                       topics=LEARNING_TOPICS if learning else USER_EVENT_TOPICS, feedback=learning)
        say(f"{fed.events:,} events in topics; starting the {job} job")
        submitted = time.monotonic()
        client = start_job(job, kafka, cassandra, group_id=f"bench-{uuid.uuid4().hex[:6]}",
                           flink=replace(FlinkConfig.load(), checkpoint_interval_ms=10_000))
        try:
            session = connect(cassandra, cassandra.keyspace)
            store = (ModelStore if learning else FeatureStore)(session, cassandra.keyspace)
            while not store.rows("get_user_vectors" if learning else "get_profile", first_user):
                time.sleep(0.05)
            first_visible = time.monotonic()
            session.cluster.shutdown()
            say("first rows visible; waiting for every partition's sentinel")
            done = wait_for_profiles(cassandra, sentinels, timeout_s, progress=say, vectors=learning)
        finally:
            client.cancel().result()
        late = 0 if learning else len(read_snapshot(kafka.topic_prefix + "late-events", kafka, idle_s=2))
        invalid = 0 if learning else len(read_snapshot(kafka.topic_prefix + "dead-letter", kafka, idle_s=2))
    finally:
        if keep_topics:
            say(f"topics kept under prefix {kafka.topic_prefix}")
        else:
            delete_topics(kafka, created)
    return Result(fed.events, done - submitted, first_visible - submitted, done - first_visible, late, invalid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=20_000, help="MovieLens ratings to replay")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--keep-topics", action="store_true", help="leave the run's topics for inspection")
    args = parser.parse_args()
    r = run_workload(args.ratings, args.timeout, args.keep_topics)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    flink = FlinkConfig.load()
    print(f"workload=movielens-{args.ratings} events={r.events} parallelism={flink.parallelism} "
          f"mode={flink.execution_mode} "
          f"late_events={r.late} dead_lettered={r.invalid}")
    print(f"events_per_s={r.events / r.seconds:.0f} steady_events_per_s={r.events / r.steady_seconds:.0f} "
          f"seconds={r.seconds:.1f} startup_seconds={r.startup_seconds:.1f} job_process_peak_rss_mb={peak_mb:.0f}")


if __name__ == "__main__":
    main()
