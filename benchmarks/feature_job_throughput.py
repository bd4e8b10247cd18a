"""Backfill events/s through the feature job, Kafka in to Cassandra out (run `nextwatch stack up` first).

Workload ``movielens-<N>`` (see :mod:`benchmarks.backfill`): the clock runs from the
job's first read to the last partition's sentinel profile row in Cassandra; the
median of ``--runs`` runs. Figures last, as name=value.
"""

from __future__ import annotations

from benchmarks.backfill import throughput_main

if __name__ == "__main__":
    throughput_main("features", __doc__, count_rejects=True)
