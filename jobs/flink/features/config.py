"""The feature job's settings: ``[features]`` in the config file, ``NEXTWATCH_FEATURES_*`` in the environment."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.config import load_section
from connectors.errors import ConfigError
from jobs.exploration.rewards import REWARD_WINDOW_MS

JOB_NAME = "nextwatch-features"


@dataclass(frozen=True)
class FeatureJobConfig:
    """``[features]`` in the config file / ``NEXTWATCH_FEATURES_*``."""

    session_gap_minutes: int = 30
    out_of_orderness_ms: int = 5_000  # the allowed lateness: events behind the watermark are late
    idleness_ms: int = 60_000
    flush_ms: int = 100  # profile and continue watching: per user, at most this often
    max_flush_ms: int = 1_000  # ... stretched up to this while working off a backlog (jobs/pacing.py)
    stats_flush_ms: int = 10_000  # trending and item stats: per key, at most this often
    trending_window_minutes: int = 60
    trending_slide_minutes: int = 5
    trending_top_n: int = 20
    trending_horizon_hours: int = 24
    # CTR and take rate: clicks and plays joined to impressions as the rows job's bandits see them;
    # keep it equal to [rows] reward_window_ms
    reward_window_ms: int = REWARD_WINDOW_MS
    group_id: str = "nextwatch-features"
    # the SQL branch and the Kafka sinks in tasks of their own, out of the Python operators' way (about
    # 50% more events/s in thread mode); it changes the SQL operators' state ids, so a deployment whose
    # state was taken with the SQL chained behind the user features step keeps false (docs/CHANGELOG.md)
    sql_in_own_tasks: bool = True
    options: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.flush_ms <= self.max_flush_ms:
            raise ConfigError(f"[features] need 1 <= flush_ms <= max_flush_ms, got {self.flush_ms} and "
                              f"{self.max_flush_ms}")

    @classmethod
    def load(cls) -> FeatureJobConfig:
        return load_section(cls, "features")
