"""The learning job's settings: ``[learning]`` in the config file, ``NEXTWATCH_LEARNING_*`` in the environment."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.config import load_section
from connectors.errors import ConfigError
from jobs.models.signals import DEFAULT_BLEND, parse_blend

JOB_NAME = "nextwatch-learning"
LEARNING_TOPICS = ("play", "browse", "rating", "search")


@dataclass(frozen=True)
class LearningJobConfig:
    """``[learning]`` in the config file / ``NEXTWATCH_LEARNING_*``."""

    flush_ms: int = 100  # user vectors: per user, at most this often
    publish_ms: int = 500  # item vectors to model-updates: per changed title, at most this often
    max_flush_ms: int = 1_000  # both stretched up to this while working off a backlog (jobs/pacing.py)
    snapshot_ms: int = 10_000  # item vectors and similar titles to Cassandra: per title, at most this often
    # Without a checkpoint, start users and titles from Cassandra. Right when the job resumes its
    # group's committed offsets; turn it off to replay topics from the start under a new group into a
    # keyspace that already holds vectors (the replayed steps would be learned twice).
    warm_start: bool = True
    group_id: str = "nextwatch-learning"
    blend: str = DEFAULT_BLEND  # signal=weight,... (jobs/models/signals.py); signals left out weigh 0
    top_picks: int = 50  # titles per user in the top_picks table
    peers: int = 2000  # user-user CF: users held per subtask to find neighbours among
    search_half_life_minutes: float = 60.0
    # in-job test-then-train on this share of members, chosen by a hash of the member id (1.0: all of them)
    evaluate_share: float = 0.05
    evaluate_blend: bool = True  # test the blend on sampled first touches too (eval_blend_hits; costs a scoring)

    def __post_init__(self) -> None:
        try:
            parse_blend(self.blend)  # a bad blend fails at load, naming the signal
        except ValueError as exc:
            raise ConfigError(f"[learning] {exc}") from exc
        if not 1 <= min(self.flush_ms, self.publish_ms) <= max(self.flush_ms, self.publish_ms) <= self.max_flush_ms:
            raise ConfigError(f"[learning] need 1 <= flush_ms, publish_ms <= max_flush_ms, got {self.flush_ms}, "
                              f"{self.publish_ms} and {self.max_flush_ms}")
        if not 0.0 <= self.evaluate_share <= 1.0:
            raise ConfigError(f"[learning] evaluate_share must be between 0 and 1, got {self.evaluate_share}")
        if self.top_picks < 1 or self.peers < 2 or self.search_half_life_minutes <= 0:
            raise ConfigError(f"[learning] top_picks >= 1, peers >= 2 and search_half_life_minutes > 0, got "
                             f"{self.top_picks}, {self.peers}, {self.search_half_life_minutes}")

    @classmethod
    def load(cls) -> LearningJobConfig:
        return load_section(cls, "learning")

    @property
    def weights(self) -> dict[str, float]:
        return parse_blend(self.blend)
