"""Freshness of the homepage, per hop and end to end: an event produced -> visible in Cassandra, under load.

The feature, learning and rows jobs run together in this process's mini-cluster
while the live synthetic load of ``feature_freshness`` is produced at ``--rate``
events/s. Every ``--probe-every`` seconds a probe user stops a play (a new event
id each time; it teaches every job something), and a poller times produce ->
visible for each hop, by the last event each row says it reflects:

* ``features``: the user's profile (feature job);
* ``models``: the user's vectors (learning job);
* ``rows``: the homepage, rebuilt by the rows job from the event itself;
* ``end_to_end``: the homepage reflecting the event in both its own state and the
  learning job's update (its top picks).

Run against the local stack (`nextwatch stack up`). Figures last, as name=value.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

from benchmarks.feature_freshness import PROBE_CONTEXT, dump_threads, percentile
from benchmarks.load import LiveLoad, RateLog, latency_figures, wait_for_pipeline, watch_job
from connectors.cassandra_store import apply_schema, connect
from connectors.config import CassandraConfig, KafkaConfig
from connectors.events import PlayEvent
from connectors.feature_store import FeatureStore
from connectors.homepage_store import HomepageClient
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.model_store import ModelStore
from connectors.producer import EventProducer
from jobs.context import context_bucket
from jobs.flink.learning.config import LearningJobConfig
from jobs.flink.rows.config import RowsJobConfig

HOPS = ("features", "models", "rows", "end_to_end")


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="background events/s")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured period")
    parser.add_argument("--probe-every", type=float, default=0.5)
    parser.add_argument("--give-up", type=float, default=60.0, help="seconds before a probe counts as lost")
    parser.add_argument("--dump-threads", type=Path, help="folder for the jobs' JVM thread dumps of probes slower "
                        "than 8 s (what the jobs were doing: backpressure shows as sources waiting on a full queue)")
    parser.add_argument("--one-process", action="store_true", help="run the three jobs in this process's "
                        "mini-cluster (their Python shares this process) instead of a process each")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:6]
    kafka = replace(KafkaConfig.load(), topic_prefix=f"fresh-{tag}.")
    cassandra = replace(CassandraConfig.load(), keyspace="nextwatch_bench")
    apply_schema(cassandra)
    created = ensure_topics(kafka)
    load = LiveLoad(kafka, args.rate)
    own = not args.one_process
    jobs = [watch_job("features", kafka, cassandra, f"fresh-features-{tag}", own_process=own),
            watch_job("learning", kafka, cassandra, f"fresh-learning-{tag}", settings=LearningJobConfig(),
                      own_process=own),
            watch_job("rows", kafka, cassandra, f"fresh-rows-{tag}", settings=RowsJobConfig(), own_process=own)]
    session = connect(cassandra, cassandra.keyspace)
    features, models = FeatureStore(session, cassandra.keyspace), ModelStore(session, cassandra.keyspace)
    homepages = HomepageClient(session, cassandra.keyspace)
    user = f"probe-{tag}"
    latencies: dict[str, list[float]] = {hop: [] for hop in HOPS}
    lost = 0
    try:
        took = wait_for_pipeline(kafka, session, cassandra.keyspace, f"warm-{user}")
        say(f"warm-up event through every hop after {took:.1f} s; starting the load")
        load.start()
        log = RateLog(load, jobs).start()
        say("warming up for 20 s under load (first checkpoints)")
        time.sleep(20)
        with EventProducer(kafka) as producer:
            number, deadline = 0, time.monotonic() + args.seconds
            started = time.monotonic()
            while time.monotonic() < deadline:
                number += 1
                event = PlayEvent(user, int(time.time() * 1000), PROBE_CONTEXT, f"probe-title-{number % 7}", "STOP",
                                  f"probe-{number}", 600_000, 3_600_000, event_id=f"{user}-{number}")
                sent_at = time.monotonic()
                producer.send(event)
                producer.flush()
                load.add()
                seen: dict[str, float] = {}
                dumped = False
                while len(seen) < len(HOPS) and time.monotonic() - sent_at < args.give_up:
                    elapsed = (time.monotonic() - sent_at) * 1000
                    if "features" not in seen and (rows := features.rows("get_profile", user)) \
                            and rows[0].last_event_id == event.event_id:
                        seen["features"] = elapsed
                    if "models" not in seen and (rows := models.rows("get_user_vectors", user)) \
                            and rows[0].last_event_id == event.event_id:
                        seen["models"] = elapsed
                    bucket = context_bucket(int(time.time() * 1000), PROBE_CONTEXT.utc_offset_minutes, "TV")
                    page = homepages.homepage(user, bucket)
                    if page is not None and page.last_event_id == event.event_id:
                        seen.setdefault("rows", elapsed)
                        if page.model_versions.get("learning_last_event") == event.event_id:
                            seen["end_to_end"] = elapsed
                    time.sleep(0.005)
                    if args.dump_threads and elapsed > 8000 and not dumped:
                        dumped = dump_threads(args.dump_threads, number)
                if len(seen) < len(HOPS):
                    lost += 1
                if seen.get("end_to_end", args.give_up * 1000) > 1000:
                    say(f"slow probe {number} at {time.monotonic() - started:.0f} s: "
                        + " ".join(f"{hop}={seen[hop]:.0f}" if hop in seen else f"{hop}=lost" for hop in HOPS))
                for hop in HOPS:
                    latencies[hop].append(seen.get(hop, args.give_up * 1000))
                if number % 20 == 0:
                    say(f"{number} probes; end to end p50 so far {percentile(latencies['end_to_end'], 0.5):.0f} ms")
                time.sleep(args.probe_every)
        verdict = log.finish()
    finally:
        load.stop()
        for job in jobs:
            job.stop()
        session.cluster.shutdown()
        delete_topics(kafka, created)
    probes = len(latencies["end_to_end"])
    print(f"workload=synthetic-live rate={args.rate:.0f} probes={probes} lost_after_{args.give_up:.0f}s={lost}")
    print(verdict.figures())
    print(latency_figures(verdict, " ".join(
        f"{hop}_p50_ms={percentile(values, 0.5):.0f} {hop}_p99_ms={percentile(values, 0.99):.0f} "
        f"{hop}_max_ms={max(values):.0f}" for hop, values in latencies.items())))


if __name__ == "__main__":
    main()
