"""Every Kafka topic, declared once. Admin creates them from here; producers route by it.

The broker cannot add partitions later (CreatePartitions is unsupported on Tansu,
and adding them would re-shuffle keys anyway), so partition counts are chosen up
front. ``infra/topology.md`` documents each topic's writer and readers; a unit
test keeps it in step with this list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.config import KafkaConfig


@dataclass(frozen=True)
class TopicSpec:
    """One topic: values are single-object Avro of ``subject`` (None for raw bytes)."""

    name: str  # without the configured prefix
    subject: str | None
    key_field: str
    partitions: int | None = None  # None: KafkaConfig.partitions
    config: dict[str, str] = field(default_factory=dict)
    doc: str = ""

    def full_name(self, kafka: KafkaConfig) -> str:
        return kafka.topic_prefix + self.name

    def partition_count(self, kafka: KafkaConfig) -> int:
        return self.partitions or kafka.partitions


_WEEK_MS = str(7 * 24 * 3600 * 1000)

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("play", "play_event", "user_id", config={"retention.ms": _WEEK_MS},
              doc="PlayEvent, keyed by user_id for per-user order"),
    TopicSpec("search", "search_event", "user_id", config={"retention.ms": _WEEK_MS},
              doc="SearchEvent, keyed by user_id"),
    TopicSpec("browse", "browse_event", "user_id", config={"retention.ms": _WEEK_MS},
              doc="BrowseEvent (impressions, clicks, scrolls), keyed by user_id"),
    TopicSpec("rating", "rating_event", "user_id", config={"retention.ms": _WEEK_MS},
              doc="RatingEvent, keyed by user_id"),
    TopicSpec("catalog", "catalog_item", "title_id", config={"cleanup.policy": "compact"},
              doc="CatalogItem snapshots, keyed by title_id; compacted, the newest wins"),
    TopicSpec("dead-letter", "rejected_event", "user_id", config={"retention.ms": _WEEK_MS},
              doc="RejectedEvent (INVALID): messages a job could not read, with the reason and original bytes"),
    TopicSpec("late-events", "rejected_event", "user_id", config={"retention.ms": _WEEK_MS},
              doc="RejectedEvent (LATE): events later than the allowed lateness, kept out of windows"),
    TopicSpec("session-features", "session_features", "user_id", config={"retention.ms": _WEEK_MS},
              doc="SessionFeatures, one per closed session, keyed by user_id"),
    TopicSpec("user-features", "user_features", "user_id", config={"retention.ms": _WEEK_MS},
              doc="UserFeatures changelog: the absolute profile after each change, keyed by user_id"),
    TopicSpec("model-updates", "item_vectors", "title_id", config={"cleanup.policy": "compact"},
              doc="ItemVectors: each title's absolute, versioned model state, keyed by title_id; compacted"),
    TopicSpec("blend-updates", "blend_update", "segment", partitions=1, config={"cleanup.policy": "compact"},
              doc="BlendUpdate: each member segment's serving blend of the learning job's signals, absolute and "
                  "versioned, keyed by segment; compacted"),
    TopicSpec("neural-updates", "neural_update", "key", partitions=1, config={"cleanup.policy": "compact"},
              doc="NeuralUpdate: the learning job's neural sequence model, absolute and versioned: the encoder "
                  "under 'encoder', each title's embedding under its id; compacted"),
    TopicSpec("user-updates", "user_update", "user_id", config={"retention.ms": _WEEK_MS},
              doc="UserUpdate: each user's top picks and model state after their events, keyed by user_id"),
    TopicSpec("policy-updates", "policy_update", "name", config={"cleanup.policy": "compact"},
              doc="PolicyUpdate: the homepage policies' shared models, absolute and versioned, keyed by name; "
                  "compacted"),
    TopicSpec("impression-outcomes", "impression_outcome", "user_id", config={"retention.ms": _WEEK_MS},
              doc="ImpressionOutcome: each shown item's click and play with its logged propensities, keyed by "
                  "user_id (off-policy evaluation)"),
    TopicSpec("experiments", "experiment", "name", partitions=1, config={"cleanup.policy": "compact"},
              doc="Experiment: each A/B experiment's definition, absolute and versioned, keyed by name; compacted"),
    TopicSpec("erasures", "erasure_request", "user_id", config={"cleanup.policy": "compact", "retention.ms": "-1"},
              doc="ErasureRequest: one per forgotten member, keyed by user_id; compacted and kept forever, so that a "
                  "job rebuilding from the topics forgets them again"),
)

USER_EVENT_TOPICS = ("play", "search", "browse", "rating")
# what each job's event source reads: the events and the erasure requests, on one keyed path
MEMBER_TOPICS = (*USER_EVENT_TOPICS, "erasures")

# the topic a producer sends each subject to (rejections choose dead-letter or late-events themselves)
TOPICS_BY_SUBJECT: dict[str, TopicSpec] = {t.subject: t for t in TOPICS if t.subject and t.subject != "rejected_event"}
TOPICS_BY_NAME: dict[str, TopicSpec] = {t.name: t for t in TOPICS}


def topic_for_subject(subject: str) -> TopicSpec:
    if subject not in TOPICS_BY_SUBJECT:
        raise KeyError(f"no topic carries subject {subject!r}")
    return TOPICS_BY_SUBJECT[subject]
