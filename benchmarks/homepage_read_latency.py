"""Homepage read latency with the read client against local Cassandra (run `nextwatch stack up` first).

Workload ``homepages-<N>``: N users (default 10,000) each get a homepage of ``--rows``
rows of 20 titles (as the rows job writes them, one partition per user, every
position up to the table's maximum) in one context bucket, plus a second bucket for
every tenth user. After ``--warmup`` reads, ``--reads`` calls of
``HomepageClient.homepage(user, bucket)`` for users drawn Zipf (s = ``--zipf``), each
one partition read, no client-side cache; latency per call from the client's side.
With ``--load`` the feature, learning and rows jobs run on the same machine while a
background producer sends ``--rate`` events/s (the pipeline ingesting); without it
the reads run alone. Figures last, as name=value.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from benchmarks.feature_freshness import percentile
from benchmarks.load import LiveLoad, RateLog, Watched, latency_figures, wait_for_pipeline, watch_job
from connectors.cassandra_store import connect
from connectors.config import CassandraConfig, KafkaConfig
from connectors.homepage_store import HomepageClient, HomepageItem, HomepageRow, HomepageStore


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def fake_page(rng: np.random.Generator, rows: int) -> list[HomepageRow]:
    return [HomepageRow(n, f"row-{n}", f"Row {n}",
                        tuple(HomepageItem(f"title-{int(t)}", float(s), f"title-{int(t)}-art0", "top pick: item_cf")
                              for t, s in zip(rng.integers(0, 5000, 20), np.linspace(1, 0, 20), strict=True)))
            for n in range(rows)]


def write_pages(store: HomepageStore, users: int, rows: int) -> None:
    rng = np.random.default_rng(7)
    started = time.monotonic()
    for n in range(users):
        now = int(time.time() * 1000)
        store.write_homepage(f"bench-user-{n}", "evening:tv", fake_page(rng, rows), {"rows": "bench"}, now, "e")
        if n % 10 == 0:
            store.write_homepage(f"bench-user-{n}", "morning:mobile", fake_page(rng, rows), {"rows": "bench"}, now,
                                 "e")
        if n % 1000 == 999:
            store.drain()
            say(f"{n + 1:,} homepages written ({(n + 1) / (time.monotonic() - started):,.0f}/s)")
    store.drain()


def start_pipeline(kafka: KafkaConfig, cassandra: CassandraConfig) -> list[Watched]:
    """The three jobs, each in a process of its own (as deployed); their settings from the config file."""
    tag = str(int(time.time()))
    return [watch_job(job, kafka, cassandra, f"bench-read-{job}-{tag}", own_process=True)
            for job in ("features", "learning", "rows")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--load", action="store_true", help="while the pipeline ingests --rate events/s")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--skip-write", action="store_true", help="the homepages are already there")
    args = parser.parse_args()
    kafka, cassandra = KafkaConfig.load(), CassandraConfig.load()
    session = connect(cassandra, cassandra.keyspace)
    jobs: list[Watched] = []
    background = LiveLoad(kafka, args.rate)
    log: RateLog | None = None
    try:
        if not args.skip_write:
            write_pages(HomepageStore(session, cassandra.keyspace), args.users, args.rows)
        if args.load:
            jobs = start_pipeline(kafka, cassandra)
            wait_for_pipeline(kafka, session, cassandra.keyspace, f"warm-read-{int(time.time())}")
            background.start()
            log = RateLog(background, jobs).start()
            time.sleep(20)  # the jobs up and consuming
        client = HomepageClient(session, cassandra.keyspace)
        rng = np.random.default_rng(11)
        draws = (rng.zipf(args.zipf, args.warmup + args.reads) - 1) % args.users
        for n in draws[:args.warmup]:
            client.homepage(f"bench-user-{n}", "evening:tv")
        latencies, found = [], 0
        for n in draws[args.warmup:]:
            started = time.perf_counter()
            page = client.homepage(f"bench-user-{n}", "evening:tv")
            latencies.append((time.perf_counter() - started) * 1000)
            found += page is not None and len(page.rows) == args.rows
        assert found == args.reads, f"only {found} of {args.reads} reads returned the whole page"
        verdict = log.finish() if log is not None else None
    finally:
        background.stop()
        for job in jobs:
            job.stop()
        session.cluster.shutdown()
    described = f"pipeline@{args.rate:g}/s" if args.load else "none"
    print(f"workload=homepages-{args.users} rows_per_page={args.rows} reads={args.reads} zipf={args.zipf} "
          f"load={described} distinct_users={len(set(draws.tolist()))}")
    figures = (f"read_p50_ms={percentile(latencies, 0.5):.2f} read_p99_ms={percentile(latencies, 0.99):.2f} "
               f"read_max_ms={max(latencies):.2f} read_mean_ms={statistics.mean(latencies):.2f}")
    if verdict is not None:  # "under load" holds only if the pipeline kept up with it
        print(verdict.figures())
        figures = latency_figures(verdict, figures)
    print(figures)


if __name__ == "__main__":
    main()
