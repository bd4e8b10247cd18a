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

from benchmarks.backfill import TARGETS, Target, fed_workload, say
from infra import flink_cluster
from infra.pipeline import wait_for_profiles
from jobs.flink import job_file

SECTIONS = {"features": "FEATURES", "learning": "LEARNING", "rows": "ROWS"}


def run_on_cluster(target: Target, ratings: int, parallelism: int, mode: str, timeout_s: float) -> float:
    """One backfill of ``target`` on the standalone cluster; its events/s from submit to last sentinel."""
    with fed_workload(target, ratings, "scale") as work:
        env = {"NEXTWATCH_KAFKA_TOPIC_PREFIX": work.kafka.topic_prefix,
               "NEXTWATCH_CASSANDRA_KEYSPACE": work.cassandra.keyspace,
               f"NEXTWATCH_{SECTIONS[target.name]}_GROUP_ID": f"scale-{uuid.uuid4().hex[:6]}",
               "NEXTWATCH_FLINK_EXECUTION_MODE": mode}
        submitted = time.monotonic()
        job_id = flink_cluster.submit(job_file(target.name), parallelism=parallelism, env=env)
        try:
            done = wait_for_profiles(work.cassandra, work.sentinels, timeout_s, rows=target.rows)
        finally:
            flink_cluster.flink_cli("cancel", job_id)
        return work.events / (done - submitted)


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
