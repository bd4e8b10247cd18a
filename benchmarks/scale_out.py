"""Scale-out: each job's backfill events/s at parallelism 1 and 2, thread and process mode, on the standalone cluster.

What adding TaskManager slots buys. The standalone cluster (`nextwatch cluster start`:
one TaskManager, two slots) runs each job submitted with ``flink run -p N``; the
workload is the throughput benchmarks' (:mod:`benchmarks.backfill`): ``movielens-<N>``
produced into fresh topics with one sentinel per partition. The clock runs from
``flink run`` to the last sentinel's row in Cassandra, start-up included: the cluster's
REST API refreshes metrics every 10 s, too coarse to see a job's first read, and a
Python gauge reaches it later still in process mode. Each cell is one run on topics of its own.
Run against the local stack (`nextwatch stack up`); the cluster is started if it is
not running. Figures last, as name=value.
"""

from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import replace

from benchmarks.backfill import TARGETS, Target, say
from connectors.cassandra_store import apply_schema
from connectors.config import CassandraConfig, KafkaConfig
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from infra import flink_cluster
from infra.pipeline import feed, send_sentinels, wait_for_profiles
from infra.replay.movielens import MovieLensReplay, load_movielens
from jobs.flink import job_file

SECTIONS = {"features": "FEATURES", "learning": "LEARNING", "rows": "ROWS"}


def run_on_cluster(target: Target, ratings: int, parallelism: int, mode: str, timeout_s: float) -> float:
    """One backfill of ``target`` on the standalone cluster; its events/s from submit to last sentinel."""
    tag = uuid.uuid4().hex[:6]
    kafka = replace(KafkaConfig.load(), topic_prefix=f"scale-{tag}.")
    cassandra = replace(CassandraConfig.load(), keyspace="nextwatch_bench")
    apply_schema(cassandra)
    created = ensure_topics(kafka)
    job_id = None
    try:
        with EventProducer(kafka) as producer:
            fed = feed(MovieLensReplay(load_movielens(), limit=ratings), producer)
            sentinels = send_sentinels(producer, kafka, fed.last_event_ms + 60_000, topics=target.topics,
                                       feedback=target.feedback)
        section = SECTIONS[target.name]
        env = {"NEXTWATCH_KAFKA_TOPIC_PREFIX": kafka.topic_prefix, "NEXTWATCH_CASSANDRA_KEYSPACE": cassandra.keyspace,
               f"NEXTWATCH_{section}_GROUP_ID": f"scale-{tag}", "NEXTWATCH_FLINK_EXECUTION_MODE": mode}
        submitted = time.monotonic()
        job_id = flink_cluster.submit(job_file(target.name), parallelism=parallelism, env=env)
        done = wait_for_profiles(cassandra, sentinels, timeout_s, rows=target.rows)
        return fed.events / (done - submitted)
    finally:
        if job_id is not None:
            flink_cluster.flink_cli("cancel", job_id)
        delete_topics(kafka, created)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=5_000, help="MovieLens ratings to replay")
    parser.add_argument("--jobs", default="features,learning,rows")
    parser.add_argument("--modes", default="thread,process")
    parser.add_argument("--parallelism", default="1,2")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    flink_cluster.FlinkCluster().start()
    figures: dict[str, float] = {}
    for name in args.jobs.split(","):
        for mode in args.modes.split(","):
            for parallelism in (int(p) for p in args.parallelism.split(",")):
                rate = run_on_cluster(TARGETS[name], args.ratings, parallelism, mode, args.timeout)
                figures[f"{name}_{mode}_p{parallelism}_events_per_s"] = rate
                say(f"{name:<9} {mode:<8} p{parallelism}: {rate:8,.0f} events/s")
    print(f"workload=movielens-{args.ratings} cluster=standalone taskmanagers=1 slots=2")
    print(" ".join(f"{name}={value:.0f}" for name, value in figures.items()))


if __name__ == "__main__":
    main()
