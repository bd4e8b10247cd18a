"""The experiment metrics job's settings: ``[metrics]`` in the config file, ``NEXTWATCH_METRICS_*`` in the
environment."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.config import load_section
from connectors.errors import ConfigError

JOB_NAME = "nextwatch-metrics"


@dataclass(frozen=True)
class MetricsJobConfig:
    """``[metrics]`` in the config file / ``NEXTWATCH_METRICS_*``."""

    flush_ms: int = 1_000  # a variant's changed sums to Cassandra, at most this often
    group_id: str = "nextwatch-metrics"

    def __post_init__(self) -> None:
        if self.flush_ms < 1:
            raise ConfigError(f"[metrics] flush_ms must be >= 1 ms, got {self.flush_ms}")

    @classmethod
    def load(cls) -> MetricsJobConfig:
        return load_section(cls, "metrics")
