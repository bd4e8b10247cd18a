"""Backfill events/s through the learning job, Kafka in to Cassandra out (run `nextwatch stack up` first).

Workload ``movielens-<N>`` (see :mod:`benchmarks.backfill`): every event type is
replayed (the job learns from plays, clicks and ratings and skips the rest); the
clock runs from the job's first read to the last partition's sentinel user vector in
Cassandra; the median of ``--runs`` runs. Figures last, as name=value.
"""

from __future__ import annotations

from benchmarks.backfill import throughput_main

if __name__ == "__main__":
    throughput_main("learning", __doc__)
