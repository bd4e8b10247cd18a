"""Backfill throughput of one job, Kafka in to Cassandra out: the runner every throughput benchmark shares.

Workload ``movielens-<N>``: the MovieLens replay of the first N ratings, produced into
fresh topics before the job starts, followed by one sentinel per partition of the
topics the job reads (see :mod:`infra.pipeline`). The clock starts at the job's first
read (its ``events_in`` gauge above zero, polled from its REST API) and stops when
every sentinel's row is visible in Cassandra; ``startup_seconds`` is submit to first read.
Writes go to a keyspace of their own (``nextwatch_bench``).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from benchmarks.load import wait_until
from connectors.cassandra_store import apply_schema
from connectors.config import CassandraConfig, KafkaConfig
from connectors.consumer import read_snapshot
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from connectors.topics import USER_EVENT_TOPICS
from infra.flink_cluster import job_metrics
from infra.pipeline import feed, send_sentinels, wait_for_profiles
from infra.process import free_port
from infra.replay.movielens import MovieLensReplay, load_movielens
from jobs.flink import load_job
from jobs.flink.learning.config import LEARNING_TOPICS
from jobs.runtime import FlinkConfig, JobSpec, start


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Target:
    """A job under test and how its progress shows: the topics it reads, its sentinels, the row they leave."""

    name: str
    job: Callable[[], JobSpec]
    topics: tuple[str, ...] = tuple(USER_EVENT_TOPICS)
    feedback: bool = False  # sentinels the learning job learns from
    rows: str = "profile"  # what each sentinel's user gets in Cassandra (infra.pipeline.ROW_KINDS)


TARGETS = {
    "features": Target("features", lambda: load_job("features")),
    "learning": Target("learning", lambda: load_job("learning"), tuple(LEARNING_TOPICS), True, "vectors"),
    "rows": Target("rows", lambda: load_job("rows"), rows="homepage"),
}


@dataclass
class Result:
    events: int
    seconds: float
    startup_seconds: float
    late: int = 0
    invalid: int = 0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds



@dataclass
class Workload:
    """The workload in fresh topics, and the sentinels whose rows say a job has read all of it."""

    kafka: KafkaConfig
    cassandra: CassandraConfig
    events: int
    sentinels: list[str]


@contextmanager
def fed_workload(target: Target, ratings: int, prefix: str, keep_topics: bool = False) -> Iterator[Workload]:
    """``movielens-<ratings>`` and one sentinel per partition of the target's topics, in topics of their own
    (deleted afterwards unless ``keep_topics``); writes go to the ``nextwatch_bench`` keyspace."""
    kafka = replace(KafkaConfig.load(), topic_prefix=f"{prefix}-{uuid.uuid4().hex[:6]}.")
    cassandra = replace(CassandraConfig.load(), keyspace="nextwatch_bench")
    apply_schema(cassandra)
    created = ensure_topics(kafka)
    try:
        with EventProducer(kafka) as producer:
            fed = feed(MovieLensReplay(load_movielens(), limit=ratings), producer, progress=say)
            sentinels = send_sentinels(producer, kafka, fed.last_event_ms + 60_000, topics=target.topics,
                                       feedback=target.feedback)
        say(f"{fed.events:,} events in topics; starting {target.name}")
        yield Workload(kafka, cassandra, fed.events, sentinels)
    finally:
        if keep_topics:
            say(f"topics kept under prefix {kafka.topic_prefix}")
        else:
            delete_topics(kafka, created)


def run_backfill(target: Target, ratings: int, timeout_s: float = 900.0, keep_topics: bool = False,
                 flink: FlinkConfig | None = None, count_rejects: bool = False) -> Result:
    """Feed the workload, run ``target`` until every sentinel's row is visible, return the timings."""
    with fed_workload(target, ratings, "bench", keep_topics) as work:
        kafka, cassandra = work.kafka, work.cassandra
        flink = flink or replace(FlinkConfig.load(), checkpoint_interval_ms=10_000)
        port = free_port()
        flink = replace(flink, options={**flink.options, "rest.port": str(port),
                                        "metrics.fetcher.update-interval": "200"})
        submitted = time.monotonic()
        client = start(target.job(), kafka, cassandra, group_id=f"bench-{uuid.uuid4().hex[:6]}", flink=flink)
        try:
            first_read = wait_first_read(str(client.get_job_id()), port, timeout_s)
            say("first events read; waiting for every partition's sentinel")
            done = wait_for_profiles(cassandra, work.sentinels, timeout_s, progress=say, rows=target.rows)
        finally:
            client.cancel().result()
        result = Result(work.events, done - first_read, first_read - submitted)
        if count_rejects:
            result.late = len(read_snapshot(kafka.topic_prefix + "late-events", kafka, idle_s=2))
            result.invalid = len(read_snapshot(kafka.topic_prefix + "dead-letter", kafka, idle_s=2))
        say(f"{target.name}: {result.events_per_s:,.0f} events/s ({result.seconds:.1f} s)")
        return result


def wait_first_read(job_id: str, rest_port: int, timeout_s: float) -> float:
    """When the job had read its first message (its ``events_in`` gauge, polled every 50 ms)."""
    def read_any() -> bool:
        try:
            return job_metrics(job_id, {"events_in"}, rest_port).get("events_in", 0) > 0
        except OSError:  # the REST API not up yet
            return False

    wait_until(read_any, timeout_s, "the job's first read")
    return time.monotonic()


def median_rate(results: list[Result]) -> float:
    return statistics.median(r.events_per_s for r in results)


def flink_description(flink: Any = None) -> str:
    flink = flink or FlinkConfig.load()
    return f"parallelism={flink.parallelism} mode={flink.execution_mode}"


def throughput_main(job: str, doc: str, count_rejects: bool = False) -> None:
    """A throughput benchmark's command line: ``--ratings``, ``--runs``; medians last, as name=value."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=5_000, help="MovieLens ratings to replay")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is reported")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    results = [run_backfill(TARGETS[job], args.ratings, args.timeout, count_rejects=count_rejects)
               for _ in range(args.runs)]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rejects = f" late_events={results[-1].late} dead_lettered={results[-1].invalid}" if count_rejects else ""
    print(f"workload=movielens-{args.ratings} events={results[0].events} runs={args.runs} "
          f"{flink_description()}{rejects}")
    print(f"events_per_s={median_rate(results):.0f} "
          f"runs_events_per_s={'/'.join(f'{r.events_per_s:.0f}' for r in results)} "
          f"startup_seconds={statistics.median(r.startup_seconds for r in results):.1f} "
          f"job_process_peak_rss_mb={peak_mb:.0f}")
