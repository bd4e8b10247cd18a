"""Backfill events/s through the rows job, Kafka in to Cassandra out (run `nextwatch stack up` first).

Workload ``movielens-<N>`` (see :mod:`benchmarks.backfill`): the user events alone,
without the learning job's updates (pages are built from the member's own events,
trending and the catalog); the clock runs from the job's first read to the last
partition's sentinel homepage in Cassandra; the median of ``--runs`` runs. Figures
last, as name=value.
"""

from __future__ import annotations

from benchmarks.backfill import throughput_main

if __name__ == "__main__":
    throughput_main("rows", __doc__)
