"""The ``experiment_metrics`` table: each experiment's sums per day, variant, segment and metric.

The metrics job writes absolute sums (a replayed write is harmless); the report and the API read an
experiment's partition whole. What a row holds is described by :class:`SumsFields` (the statistics'
``Totals`` fits it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from connectors.cassandra_store import AsyncStore
from connectors.errors import NextwatchError

SUM_COLUMNS = ("members", "sum_x", "sum_y", "sum_xx", "sum_yy", "sum_xy", "sum_pre", "sum_pre2", "sum_pre_x",
               "sum_pre_y")
UPSERT_METRICS = f"""
INSERT INTO {{keyspace}}.experiment_metrics (experiment, day, variant, segment, metric, {", ".join(SUM_COLUMNS)},
    updated_time)
VALUES (?, ?, ?, ?, ?, {", ".join("?" for _ in SUM_COLUMNS)}, ?)
"""
SELECT_METRICS = f"""
SELECT day, variant, segment, metric, {", ".join(SUM_COLUMNS)} FROM {{keyspace}}.experiment_metrics
WHERE experiment = ?
"""


class SumsFields(Protocol):
    n: int
    sum_x: float
    sum_y: float
    sum_xx: float
    sum_yy: float
    sum_xy: float
    sum_pre: float
    sum_pre2: float
    sum_pre_x: float
    sum_pre_y: float


@dataclass(frozen=True)
class MetricRow:
    """One stored row: the sums of ``variant``'s members in ``segment`` for ``metric``, as of ``day``."""

    day: int  # days since 1970-01-01 UTC
    variant: str
    segment: str
    metric: str
    sums: tuple[float, ...]  # in SUM_COLUMNS order, members first


class ExperimentMetricsStore(AsyncStore):
    STATEMENTS = {"write": UPSERT_METRICS, "read": SELECT_METRICS}

    def write_sums(self, experiment: str, day: int, variant: str, segment: str, metric: str, sums: SumsFields,
                   updated_ms: int) -> None:
        self.write("write", (experiment, day, variant, segment, metric, sums.n, sums.sum_x, sums.sum_y, sums.sum_xx,
                             sums.sum_yy, sums.sum_xy, sums.sum_pre, sums.sum_pre2, sums.sum_pre_x, sums.sum_pre_y,
                             datetime.fromtimestamp(updated_ms / 1000, tz=UTC)))

    def read(self, experiment: str) -> list[MetricRow]:
        """Every row of ``experiment``, in day order."""
        rows = self.session.execute(self.statement("read"), (experiment,))
        return [MetricRow(r.day, r.variant, r.segment, r.metric, tuple(float(getattr(r, c)) for c in SUM_COLUMNS))
                for r in rows]


def read_metric_rows(session: object, keyspace: str, experiment: str) -> list[MetricRow]:
    """Every row of ``experiment``; a keyspace without the table says how to add it."""
    from cassandra import InvalidRequest

    try:
        store = ExperimentMetricsStore(session, keyspace)
    except InvalidRequest as exc:
        raise NextwatchError(f"Cassandra keyspace {keyspace} has no experiment_metrics table ({exc}): "
                             f"`nextwatch stack up` applies the schema in infra/cql") from exc
    return store.read(experiment)
