"""Sustained events/s through the learning job, Kafka in to Cassandra out (run `nextwatch stack up` first).

Workload ``movielens-<N>``: the MovieLens replay of the first N ratings (every event
type; the job learns from plays, clicks and ratings and skips the rest), then one
sentinel the job learns from per partition of play, browse and rating. The clock
starts at submit and stops when every sentinel's user vector is in Cassandra;
``steady`` excludes start-up. Figures last, as name=value.
"""

from __future__ import annotations

import argparse

from benchmarks.feature_job_throughput import run_workload
from jobs.runtime import FlinkConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=5_000, help="MovieLens ratings to replay")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    r = run_workload(args.ratings, args.timeout, job="learning")
    flink = FlinkConfig.load()
    print(f"workload=movielens-{args.ratings} events={r.events} parallelism={flink.parallelism} "
          f"mode={flink.execution_mode}")
    print(f"events_per_s={r.events / r.seconds:.0f} steady_events_per_s={r.events / r.steady_seconds:.0f} "
          f"seconds={r.seconds:.1f} startup_seconds={r.startup_seconds:.1f}")


if __name__ == "__main__":
    main()
