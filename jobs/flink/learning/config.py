"""The learning job's settings: ``[learning]`` in the config file, ``NEXTWATCH_LEARNING_*`` in the environment."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.config import load_section
from connectors.errors import ConfigError
from jobs.models.blend import SEGMENTS, SegmentBlends, Tenure
from jobs.models.signals import DEFAULT_BLENDS, DEFAULT_NEURAL_BLENDS, EVALUATE_SHARE, parse_blend, segment_blends

JOB_NAME = "nextwatch-learning"
LEARNING_TOPICS = ("play", "browse", "rating", "search", "erasures")  # erasures: each member's on their key


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
    # The blend per member tenure segment: signal=weight,... (jobs/models/signals.py; signals left out weigh
    # 0): where each segment's learner starts, or what serves for good with pin_blend. blend_<segment>, else
    # blend (one for every segment), else DEFAULT_BLENDS (DEFAULT_NEURAL_BLENDS with neural).
    blend: str = ""
    blend_new: str = ""
    blend_growing: str = ""
    blend_established: str = ""
    pin_blend: bool = False  # serve the blends above as they are: learn nothing
    blend_step_every: int = 500  # sampled touches of a segment between moves of its blend
    tenure_new_below: int = 5  # a member with fewer events applied is new ...
    tenure_established_from: int = 50  # ... with this many or more established; growing between
    top_picks: int = 50  # titles per user in the top_picks table
    peers: int = 2000  # user-user CF: users held per subtask to find neighbours among
    search_half_life_minutes: float = 60.0
    # in-job test-then-train on this share of members, chosen by a hash of the member id (1.0: all of them)
    evaluate_share: float = EVALUATE_SHARE
    # the neural sequence model: trained by one trainer for the whole job, its weights published to
    # neural-updates at most every neural_publish_ms and served by the user side as the signal "neural"
    neural: bool = False
    neural_publish_ms: int = 5_000
    # test and learn the blends on sampled touches (eval_blend_hits; costs a scoring per sampled touch)
    evaluate_blend: bool = True

    def __post_init__(self) -> None:
        for name in ("blend", *(f"blend_{segment}" for segment in SEGMENTS)):
            try:
                if getattr(self, name):
                    parse_blend(getattr(self, name))  # a bad blend fails at load, naming the setting and signal
            except ValueError as exc:
                raise ConfigError(f"[learning] {name}: {exc}") from exc
        try:
            Tenure(self.tenure_new_below, self.tenure_established_from)
        except ValueError as exc:
            raise ConfigError(f"[learning] {exc}") from exc
        if self.neural_publish_ms < 1:
            raise ConfigError(f"[learning] neural_publish_ms must be at least 1, got {self.neural_publish_ms}")
        if self.blend_step_every < 1:
            raise ConfigError(f"[learning] blend_step_every must be at least 1, got {self.blend_step_every}")
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

    def blend_text(self, segment: str) -> str:
        """The blend the segment starts from (or is pinned to)."""
        defaults = DEFAULT_NEURAL_BLENDS if self.neural else DEFAULT_BLENDS
        text: str = getattr(self, f"blend_{segment}") or self.blend or defaults[segment]
        return text

    def blends(self) -> SegmentBlends:
        """The blend learners, each starting from its configured blend (learning nothing when pinned)."""
        return segment_blends({segment: self.blend_text(segment) for segment in SEGMENTS},
                              Tenure(self.tenure_new_below, self.tenure_established_from), self.pin_blend,
                              self.blend_step_every)
