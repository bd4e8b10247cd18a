"""Quality of the learning job at parallelism 1 and 2, from its in-job test-then-train metrics.

Workload ``movielens-<N>``: the MovieLens replay of the first N ratings into fresh
topics, then sentinels the job learns from. Each run submits the learning job to the
standalone cluster (``nextwatch jobs submit``'s cluster) at the given parallelism,
waits until every sentinel's user vector is in Cassandra, and reads the job's
metrics (summed over subtasks) through the REST API: next-title Recall@10 over the
published neighbour lists and rating RMSE, both computed before each learning step.
At parallelism 2 the item vectors of half the titles come from the other subtask
through the model-updates topic, which is what the comparison measures.

The replay is produced at ``--rate`` events/s while the job runs, as live traffic
arrives: a job that keeps up reads each user's events in order. With ``--rate 0`` it
is produced before the job starts (a backfill): the broker here hands out a whole
partition per fetch, so the topics are read one partition after another, and
``out_of_order`` (feedback the in-job evaluation skipped because the user's later
feedback was already learned) shows how much that run's metrics leave out. Figures
last, as name=value.
"""

from __future__ import annotations

import argparse
import math
import time
import uuid
from dataclasses import replace

from benchmarks.backfill import say
from connectors.cassandra_store import apply_schema, connect
from connectors.config import CassandraConfig, KafkaConfig
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from infra import flink_cluster
from infra.pipeline import feed, send_sentinels, wait_for_profiles
from infra.replay.movielens import MovieLensReplay, load_movielens
from jobs.flink import job_file
from jobs.flink.learning.config import LEARNING_TOPICS

NAMES = {"eval_touches", "eval_hits", "eval_ratings", "eval_squared_error_milli", "eval_out_of_order",
         "feedback_applied"}


def run(ratings: int, parallelism: int, timeout_s: float, rate: float) -> dict[str, float]:
    tag = uuid.uuid4().hex[:6]
    kafka = replace(KafkaConfig.load(), topic_prefix=f"lpar-{tag}.")
    cassandra = replace(CassandraConfig.load(), keyspace=f"nextwatch_bench_p{parallelism}")
    apply_schema(cassandra)
    session = connect(cassandra, cassandra.keyspace)
    for table in ("user_vectors", "item_vectors", "similar_titles"):  # no warm start from an earlier run
        session.execute(f"TRUNCATE {table}")
    session.cluster.shutdown()
    created = ensure_topics(kafka)
    job_id: str | None = None
    try:
        replay = MovieLensReplay(load_movielens(), limit=ratings, now_ms=1_790_000_000_000)  # same events each run
        env = {"NEXTWATCH_KAFKA_TOPIC_PREFIX": kafka.topic_prefix, "NEXTWATCH_CASSANDRA_KEYSPACE": cassandra.keyspace,
               "NEXTWATCH_LEARNING_GROUP_ID": f"lpar-{tag}",
               "NEXTWATCH_LEARNING_EVALUATE_SHARE": "1"}  # a quality benchmark: every member tested
        with EventProducer(kafka) as producer:
            if rate > 0:  # live: the job is up and has read every partition before the first event
                job_id = flink_cluster.submit(job_file("learning"), parallelism=parallelism,
                                              env=env)
                ready = send_sentinels(producer, kafka, replay.rebase(replay.start_ms) - 60_000, run_id=f"{tag}-ready",
                                       topics=LEARNING_TOPICS, feedback=True)
                wait_for_profiles(cassandra, ready, timeout_s, progress=say, vectors=True)
                say(f"parallelism {parallelism}: job running; producing at {rate:,.0f} events/s")
            started = time.monotonic()
            fed = feed(replay, producer, progress=say, rate=rate)
            sentinels = send_sentinels(producer, kafka, fed.last_event_ms + 60_000, run_id=tag,
                                       topics=LEARNING_TOPICS, feedback=True)
        if job_id is None:
            started = time.monotonic()
            job_id = flink_cluster.submit(job_file("learning"), parallelism=parallelism, env=env)
        say(f"parallelism {parallelism}: {fed.events:,} events; waiting for the sentinels")
        wait_for_profiles(cassandra, sentinels, timeout_s, progress=say, vectors=True)
        seconds = time.monotonic() - started
        deadline = time.monotonic() + 30
        while (metrics := flink_cluster.job_metrics(job_id, NAMES)).get("feedback_applied", 0) < len(sentinels):
            if time.monotonic() > deadline:
                break
            time.sleep(1.0)
        time.sleep(6.0)  # one more metrics fetch after the last events
        metrics = flink_cluster.job_metrics(job_id, NAMES)
        metrics["events_per_s"] = fed.events / seconds
        return metrics
    finally:
        if job_id is not None:
            flink_cluster.flink_cli("cancel", job_id)
        delete_topics(kafka, created)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=2_000)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--rate", type=float, default=150.0,
                        help="events/s produced while the job runs (0: all before it starts, a backfill)")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    try:
        for parallelism in (1, 2):
            m = run(args.ratings, parallelism, args.timeout, args.rate)
            figures[f"recall_at_10_p{parallelism}"] = m["eval_hits"] / max(m["eval_touches"], 1)
            squared_error = m["eval_squared_error_milli"] / 1000
            figures[f"rmse_p{parallelism}"] = math.sqrt(squared_error / max(m["eval_ratings"], 1))
            figures[f"out_of_order_p{parallelism}"] = m["eval_out_of_order"]
            figures[f"events_per_s_p{parallelism}"] = m["events_per_s"]
            say(f"parallelism {parallelism}: {m}")
    finally:
        flink_cluster.FlinkCluster().stop()
    figures["recall_difference"] = figures["recall_at_10_p2"] - figures["recall_at_10_p1"]
    print(f"workload=movielens-{args.ratings} rate={args.rate:.0f} "
          "metric=next-title-recall-at-10 (in-job, test-then-train)")
    print(" ".join(f"{k}={v:.4f}" if abs(v) < 100 else f"{k}={v:.0f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
