"""Rows job: user events + the learning job's user updates -> each member's homepage in Cassandra.

The rows, rules and controls are in :mod:`jobs.homepage.rows`, the per-user state in
:mod:`jobs.homepage.state`. Steps, each with a stable uid:

1. ``rows-events-source``: play, browse, rating and search topics (raw bytes),
   decoded with the feature job's checks (``rows-decode``); unreadable messages are
   counted (the feature job dead-letters them).
2. ``rows-user-updates-source``: the learning job's user-updates topic (top picks,
   content profile, the last event the models reflect), decoded (``rows-decode-updates``).
3. ``rows-catalog-source`` and ``rows-model-updates-source``: the catalog (for
   availability, maturity, genres, artwork, content vectors) and the published item
   vectors (similar titles, popularity), both compacted and read from the start,
   broadcast together with ``rows-policy-updates-source`` (the shared policy models
   the policy learner publishes; #7).
4. ``homepage-builder`` (keyed by user): applies events and updates to the user's
   state and, at most every ``flush_ms`` per user, rebuilds the homepage of the
   user's current context bucket (the daypart now in their local time, the device
   of their newest event). A timer at the next daypart change rebuilds it for the
   new bucket, so only the current bucket is written, never every bucket. Trending
   (the feature job's ``trending`` table) and profile settings (maturity) are read
   from Cassandra: trending every ``trending_refresh_ms`` per subtask, a profile's
   settings on its first event and every ``settings_refresh_ms`` after. Pages are
   served through the policies of :mod:`jobs.exploration` (row order, artwork,
   explore slots, a presentation token per row); the member's impressions, clicks and
   plays are joined in their state, and closed impressions become outcomes and lessons.
5. ``write-homepage``: the whole page of one bucket in one CQL row.
6. ``encode-outcomes``: every outcome to the impression-outcomes topic (off-policy evaluation).
7. ``policy-learner`` (one key): the lessons teach the shared models, published to the
   policy-updates topic at most every ``policy_publish_ms``.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from connectors.cassandra_store import connect
from connectors.codec import EventCodec
from connectors.config import CassandraConfig, KafkaConfig, load_section
from connectors.errors import ConfigError, DecodeError, UnknownSchemaError
from connectors.events import CatalogItem, from_record
from connectors.feature_store import FeatureStore
from connectors.flink_kafka import kafka_source, write_to_topics
from connectors.homepage_store import MAX_ROWS, HomepageItem, HomepageRow, HomepageStore
from connectors.topics import TOPICS_BY_NAME, USER_EVENT_TOPICS
from jobs.context import all_buckets, next_daypart_ms, weekday
from jobs.exploration.policies import ArtworkPolicy, RowOrderPolicy
from jobs.exploration.presentation import (
    POLICY_SET,
    ROW_KINDS,
    HomepagePolicies,
    MemberContext,
    PolicyLearnerState,
    PublishedPolicies,
    lessons_from_outcomes,
    load_snapshot,
    presented_homepage,
    published_policies,
)
from jobs.exploration.rewards import REWARD_WINDOW_MS, ImpressionJoin, outcome_record
from jobs.feature_job import KAFKA_ROW_TYPE, EventCount, _kafka_row, decode_message
from jobs.features.outputs import now_ms
from jobs.features.user_state import TitleInfo
from jobs.homepage.rows import HomepageSettings, Row, SharedSignals, catalog_indexes, least_played
from jobs.homepage.rules import Viewer
from jobs.homepage.state import RowsUser
from jobs.learning_job import MODEL_VERSION, item_vectors_from_record
from jobs.models.content import hashed_vector, title_features, title_text
from jobs.models.online import ItemVectors, LearningConfig
from jobs.runtime import FlinkConfig, stream_environment

JOB_NAME = "nextwatch-rows"
ROWS_VERSION = "rows-v1"  # bump when the rows' rules or order change meaning
# what the homepage builder emits: pages to write, outcomes to log, lessons for the policy learner
PAGE, OUTCOME, LESSONS = "page", "outcome", "lessons"
ACTIVE_MS = 7 * 86_400_000  # a user's homepage follows dayparts for a week after their last event


@dataclass(frozen=True)
class RowsJobConfig:
    """``[rows]`` in the config file / ``NEXTWATCH_ROWS_*``."""

    flush_ms: int = 200  # a user's homepage: rebuilt at most this often
    trending_refresh_ms: int = 30_000
    settings_refresh_ms: int = 3_600_000
    shared_refresh_ms: int = 5_000  # popularity percentiles and catalog indexes, at most this often
    items_per_row: int = 20
    diversity: float = 0.3
    popularity_penalty: float = 0.1
    explore_share: float = 0.05  # of each recommended row's slots, at most: less-known titles (#7)
    # explored titles go in this slot or later: what the ranking puts first is never displaced
    # (homepage_quality as served: Recall@10 0.1861 exploring from the second slot, 0.1954 from the
    # tenth, 0.2032 without exploration; the rest is row-order exploration)
    explore_after: int = 10
    row_order_epsilon: float = 0.1  # the row-order policy's share of random orders
    artwork_epsilon: float = 0.1  # the artwork policy's share of random variants
    context_weight: float = 0.1  # Top Picks: how far a learned daypart/weekend effect on plays may move a pick
    reward_window_ms: int = REWARD_WINDOW_MS  # an impression's clicks and plays count this long (one session)
    policy_publish_ms: int = 2_000  # the shared policy models to policy-updates, at most this often
    group_id: str = "nextwatch-rows"

    def __post_init__(self) -> None:
        try:
            _ = self.homepage  # the homepage's own checks, named as [rows] settings
        except ValueError as exc:
            raise ConfigError(f"[rows] {exc}") from exc
        if min(self.flush_ms, self.trending_refresh_ms, self.settings_refresh_ms, self.shared_refresh_ms,
               self.reward_window_ms, self.policy_publish_ms) < 1:
            raise ConfigError("[rows] refresh periods, flush_ms, reward_window_ms and policy_publish_ms must be "
                              ">= 1 ms")
        if self.explore_after < 1:
            raise ConfigError(f"[rows] explore_after must be >= 1 (the first slot keeps the ranking), "
                              f"got {self.explore_after}")
        for name in ("explore_share", "row_order_epsilon", "artwork_epsilon", "context_weight"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"[rows] {name} must be in [0, 1], got {getattr(self, name)}")

    @property
    def homepage(self) -> HomepageSettings:
        return HomepageSettings(items_per_row=self.items_per_row, diversity=self.diversity,
                                popularity_penalty=self.popularity_penalty)

    @classmethod
    def load(cls) -> RowsJobConfig:
        return load_section(cls, "rows")


def new_policies(settings: RowsJobConfig) -> HomepagePolicies:
    """Untaught homepage policies with the job's exploration settings."""
    return HomepagePolicies(RowOrderPolicy(ROW_KINDS, settings.row_order_epsilon),
                            ArtworkPolicy(settings.artwork_epsilon), settings.explore_share,
                            context_weight=settings.context_weight, explore_after=settings.explore_after)


def stored_rows(rows: list[Row]) -> list[HomepageRow]:
    """The page as the homepage table stores it (at most ``MAX_ROWS`` rows)."""
    return [HomepageRow(n, row.row_id, row.title,
                        tuple(HomepageItem(i.title_id, i.score, i.artwork_id, i.reason) for i in row.items), row.token)
            for n, row in enumerate(rows[:MAX_ROWS])]


def model_versions(user: RowsUser) -> dict[str, str]:
    """What produced the page: the rows' rules and the learning job's model state (and its last event)."""
    return {"rows": ROWS_VERSION, "learning_model": MODEL_VERSION, "learning_version": str(user.model_version),
            "learning_last_event": user.model_event_id}


def percentiles(touches: dict[str, float]) -> dict[str, float]:
    """Each title's popularity as its percentile among titles (0: least touched, 1: most).

    >>> percentiles({"a": 5.0, "b": 1.0, "c": 9.0})
    {'b': 0.0, 'a': 0.5, 'c': 1.0}
    """
    ranked = sorted(touches, key=lambda t: (touches[t], t))
    top = max(len(ranked) - 1, 1)
    return {t: n / top for n, t in enumerate(ranked)}


class SharedCache:
    """The shared signals one subtask holds: broadcast catalog and item vectors, trending from Cassandra."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self.catalog: dict[str, CatalogItem] = {}
        self.content: dict[str, np.ndarray] = {}
        self.similar: dict[str, list[tuple[str, float]]] = {}
        self.touches: dict[str, float] = {}
        self.trending: dict[str, list[str]] = {}
        self.trending_at_ms = -math.inf
        self.built_at_ms = -math.inf
        self.dirty = True
        self.signals = SharedSignals(catalog={})

    def describe(self, item: CatalogItem) -> None:
        known = self.catalog.get(item.title_id)
        if known is None or item.updated_time_ms >= known.updated_time_ms:  # the newest snapshot wins
            self.catalog[item.title_id] = item
            self.content[item.title_id] = hashed_vector(title_features(title_text(item)), self.dimensions)
            self.dirty = True

    def hold(self, vectors: ItemVectors) -> None:
        self.similar[vectors.title_id] = list(vectors.neighbors)
        self.touches[vectors.title_id] = vectors.touches
        self.dirty = True

    def current(self, now: int, settings: RowsJobConfig, store: FeatureStore | None) -> SharedSignals:
        if store is not None and now - self.trending_at_ms >= settings.trending_refresh_ms:
            genres = {g for item in self.catalog.values() for g in item.genres}
            scopes = ["global", *(f"genre:{g}" for g in sorted(genres)), *(f"context:{b}" for b in all_buckets())]
            self.trending = {scope: [r.title_id for r in sorted(store.rows("get_trending", scope),
                                                                 key=lambda r: r.rank)] for scope in scopes}
            self.trending_at_ms, self.dirty = now, True
        # the catalog, similar titles and content are shared dicts, current at once; the indexes over them
        # (popularity percentiles, titles by genre, newest titles) are rebuilt at most every shared_refresh_ms
        if self.dirty and now - self.built_at_ms >= settings.shared_refresh_ms:
            popularity = percentiles(self.touches)
            by_genre, newest = catalog_indexes(self.catalog, popularity)
            self.signals = SharedSignals(self.catalog, self.similar, self.trending, popularity, self.content,
                                         by_genre, newest, least_played(self.catalog, popularity))
            self.built_at_ms, self.dirty = now, False
        return self.signals


def _kept(state: Any, key: str, value: Any, newer: Callable[[Any], bool]) -> bool:
    """Put ``value`` in a (broadcast) map state unless what it holds is newer; ``True`` when put."""
    known = state.get(key)
    if known is not None and not newer(known):
        return False
    state.put(key, value)
    return True


# -- Flink wiring ------------------------------------------------------------------


def _functions(cassandra: CassandraConfig, settings: RowsJobConfig) -> dict[str, Any]:
    """The Python operator classes, defined here so that importing this module does not need Flink."""
    from pyflink.common import Types
    from pyflink.datastream import KeyedBroadcastProcessFunction, KeyedProcessFunction, MapFunction, ProcessFunction
    from pyflink.datastream.functions import RuntimeContext
    from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

    catalog_desc = MapStateDescriptor("rows-catalog", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
    items_desc = MapStateDescriptor("rows-item-vectors", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
    policies_desc = MapStateDescriptor("rows-policies", Types.STRING(), Types.PICKLED_BYTE_ARRAY())

    class DecodeEvents(ProcessFunction):  # type: ignore[misc]
        def open(self, runtime_context: RuntimeContext) -> None:
            self.codec = EventCodec()
            self.invalid = EventCount(runtime_context.get_metrics_group(), "events_invalid")

        def process_element(self, value: bytes, ctx: Any) -> Iterator[Any]:
            event, _reason = decode_message(self.codec, value, now_ms())
            if event is None:
                self.invalid.inc()
                return
            yield event.user_id, "event", event

    class DecodeRecords(MapFunction):  # type: ignore[misc]
        """user-updates -> (user, "update", record); catalog and model-updates -> CatalogItem or ItemVectors."""

        def open(self, runtime_context: RuntimeContext) -> None:
            self.codec = EventCodec()

        def map(self, value: bytes) -> Any:
            try:
                decoded = self.codec.decode(value)
                if decoded.subject == "user_update":
                    record = decoded.record
                    return (record["user_id"], "update", record) if record["model_version"] == MODEL_VERSION else None
                if decoded.subject == "catalog_item":
                    return from_record(CatalogItem, decoded.record)
                if decoded.subject == "policy_update":
                    return published_policies(decoded.record)
                return item_vectors_from_record(decoded.record)
            except (DecodeError, UnknownSchemaError, KeyError, TypeError, ValueError):
                return None

    class HomepageBuilder(KeyedBroadcastProcessFunction):  # type: ignore[misc]
        def open(self, runtime_context: RuntimeContext) -> None:
            self.state = runtime_context.get_state(ValueStateDescriptor("rows-user", Types.PICKLED_BYTE_ARRAY()))
            self.session = connect(cassandra, cassandra.keyspace)
            self.homepages = HomepageStore(self.session, cassandra.keyspace)
            self.features = FeatureStore(self.session, cassandra.keyspace)
            self.shared = SharedCache(LearningConfig().content_dimensions)
            self.policies = new_policies(settings)
            self.rng = random.Random()
            self.restored = False
            metrics = runtime_context.get_metrics_group()
            self.events = EventCount(metrics, "events_applied")
            self.updates = EventCount(metrics, "user_updates_applied")
            self.duplicates = EventCount(metrics, "duplicates")
            self.built = EventCount(metrics, "homepages_built")
            self.rewards = EventCount(metrics, "outcomes_learned")
            self.codec = EventCodec()

        def close(self) -> None:
            self.session.cluster.shutdown()

        def process_element(self, value: Any, ctx: Any) -> None:
            if not self.restored:  # after a restore the broadcast state has what the Python cache lost
                for _title, item in ctx.get_broadcast_state(catalog_desc).items():
                    self.shared.describe(item)
                for _title, vectors in ctx.get_broadcast_state(items_desc).items():
                    self.shared.hold(vectors)
                for _name, published in ctx.get_broadcast_state(policies_desc).items():
                    load_snapshot(self.policies, published.models)
                self.restored = True
            user_id, kind, payload = value
            user: RowsUser = self.state.value() or RowsUser()
            if user.impressions is None:
                user.impressions = ImpressionJoin(settings.reward_window_ms)
            now = now_ms()
            if kind == "event":
                item = self.shared.catalog.get(getattr(payload, "title_id", None) or "")
                info = TitleInfo(tuple(item.genres), item.runtime_minutes) if item else TitleInfo()
                applied = user.apply_event(payload, info)
                counter = self.events
            else:
                applied = user.apply_update(payload)
                counter = self.updates
            if not applied:
                self.duplicates.inc()
                return
            counter.inc()
            if now - user.settings_read_ms >= settings.settings_refresh_ms:
                user.maturity_limit, user.settings_read_ms = self.homepages.maturity_limit(user_id), now
            if not user.flush_armed:
                ctx.timer_service().register_processing_time_timer(now + settings.flush_ms)
                user.flush_armed = True
            wake_at = user.reward_timer_due(now)  # held impressions close even if the member goes quiet
            if wake_at is not None:
                ctx.timer_service().register_processing_time_timer(wake_at)
            self.state.update(user)

        def process_broadcast_element(self, value: Any, ctx: Any) -> None:
            # the newest per title in broadcast state (what a restore rebuilds the cache from), then the cache
            if isinstance(value, CatalogItem) and _kept(ctx.get_broadcast_state(catalog_desc), value.title_id, value,
                                                        lambda known: value.updated_time_ms >= known.updated_time_ms):
                self.shared.describe(value)
            elif isinstance(value, ItemVectors) and _kept(ctx.get_broadcast_state(items_desc), value.title_id,
                                                          value, lambda known: value.version >= known.version):
                self.shared.hold(value)
            elif isinstance(value, PublishedPolicies) and _kept(ctx.get_broadcast_state(policies_desc), value.name,
                                                               value, lambda known: value.version > known.version):
                load_snapshot(self.policies, value.models)  # serve with the learner's newest models

        def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
            # one handler for both timers: a user's flush and their next daypart change rebuild the same page
            user: RowsUser | None = self.state.value()
            if user is None:
                return
            now = now_ms()
            user.flush_armed = False
            # no daypart timer yet, or this is it: set the next, for users seen in the last week only
            if timestamp >= user.bucket_timer_ms and now - user.context_ms < ACTIVE_MS:
                user.bucket_timer_ms = next_daypart_ms(now, user.utc_offset_minutes)
                ctx.timer_service().register_processing_time_timer(user.bucket_timer_ms)
            signals = user.signals()
            user_id = ctx.get_current_key()
            outcomes = user.outcomes(now)  # impressions whose clicks and plays are all in: the rewards
            wake_at = user.reward_timer_due(now)  # newer impressions still held: wake up for them too
            if wake_at is not None:
                ctx.timer_service().register_processing_time_timer(wake_at)
            if outcomes:
                member = MemberContext(signals.genre_affinity, user.theme_history, user.utc_offset_minutes,
                                       user.device_class)
                lessons = lessons_from_outcomes(outcomes, member, self.shared.catalog, self.policies.order.kinds)
                if lessons:  # the shared models learn in the policy learner, which publishes them back
                    self.rewards.inc(len(lessons))
                    yield LESSONS, lessons
                for outcome in outcomes:  # logged for off-policy evaluation (the impression-outcomes topic)
                    shown_at = outcome.shown_ms
                    record = outcome_record(user_id, outcome, user.bucket(shown_at),
                                            weekday(shown_at, user.utc_offset_minutes), now)
                    yield OUTCOME, user_id.encode(), self.codec.encode_record("impression_outcome", record)
            self.state.update(user)
            viewer = Viewer(user_id, user.country, user.maturity_limit, now)
            shared = self.shared.current(now, settings, self.features)
            rows = presented_homepage(signals, shared, viewer, user.bucket(now),
                                      weekday(now, user.utc_offset_minutes), settings.homepage, self.policies,
                                      self.rng, user.themes)
            self.built.inc()
            yield PAGE, user_id, user.bucket(now), stored_rows(rows), model_versions(user), user.last_event_id, now

    class PolicyLearner(KeyedProcessFunction):  # type: ignore[misc]
        """Keyed by policy set (one key): the shared models learn every lesson and publish at most every
        ``policy_publish_ms`` to policy-updates, from where every homepage builder serves with them."""

        def open(self, runtime_context: RuntimeContext) -> None:
            self.state = runtime_context.get_state(ValueStateDescriptor("policy-learner", Types.PICKLED_BYTE_ARRAY()))
            self.codec = EventCodec()
            self.applied = EventCount(runtime_context.get_metrics_group(), "lessons_applied")

        def process_element(self, value: Any, ctx: Any) -> None:
            state: PolicyLearnerState = self.state.value() or PolicyLearnerState(new_policies(settings))
            if isinstance(value, PublishedPolicies):
                changed = state.adopt(value)  # a restart with no checkpoint: go on from the newest published
            else:
                self.applied.inc(state.learn(value[1]))
                changed = True
            if changed and not state.armed:
                ctx.timer_service().register_processing_time_timer(
                    ctx.timer_service().current_processing_time() + settings.policy_publish_ms)
                state.armed = True
            self.state.update(state)

        def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
            state: PolicyLearnerState | None = self.state.value()
            if state is None:
                return
            state.armed = False
            self.state.update(state)
            yield _kafka_row(POLICY_SET.encode(), self.codec.encode_record("policy_update", state.record(now_ms())))

    class WriteHomepage(ProcessFunction):  # type: ignore[misc]
        def open(self, runtime_context: RuntimeContext) -> None:
            self.session = connect(cassandra, cassandra.keyspace)
            self.store = HomepageStore(self.session, cassandra.keyspace)

        def process_element(self, value: Any, ctx: Any) -> None:
            _, user_id, bucket, rows, versions, last_event_id, generated_ms = value
            self.store.write_homepage(user_id, bucket, rows, versions, generated_ms, last_event_id)

        def close(self) -> None:
            self.store.drain()
            self.session.cluster.shutdown()

    return {"DecodeEvents": DecodeEvents, "DecodeRecords": DecodeRecords, "HomepageBuilder": HomepageBuilder,
            "PolicyLearner": PolicyLearner, "WriteHomepage": WriteHomepage, "catalog_desc": catalog_desc,
            "items_desc": items_desc, "policies_desc": policies_desc}


def build(env: Any, kafka: KafkaConfig, cassandra: CassandraConfig, settings: RowsJobConfig) -> None:
    """Wire the whole job onto ``env``."""
    from pyflink.common import Types, WatermarkStrategy
    from pyflink.table import StreamTableEnvironment

    fn = _functions(cassandra, settings)
    topic = lambda name: TOPICS_BY_NAME[name].full_name(kafka)  # noqa: E731
    no_clock = WatermarkStrategy.no_watermarks()  # no event-time windows here
    pickled = Types.PICKLED_BYTE_ARRAY()

    events = env.from_source(kafka_source(kafka, [topic(t) for t in USER_EVENT_TOPICS], settings.group_id),
                             no_clock, "user events") \
        .uid("rows-events-source").name("play, search, browse, rating (Kafka)") \
        .process(fn["DecodeEvents"](), output_type=pickled).uid("rows-decode").name("decode events")
    updates = env.from_source(kafka_source(kafka, [topic("user-updates")], settings.group_id + "-updates"),
                              no_clock, "user updates") \
        .uid("rows-user-updates-source").name("user-updates (Kafka)") \
        .map(fn["DecodeRecords"](), output_type=pickled).uid("rows-decode-updates").name("decode user updates") \
        .filter(lambda value: value is not None).uid("rows-known-updates").name("readable user updates")
    catalog = env.from_source(kafka_source(kafka, [topic("catalog")], settings.group_id + "-catalog"),
                              no_clock, "catalog") \
        .uid("rows-catalog-source").name("catalog (Kafka)") \
        .map(fn["DecodeRecords"](), output_type=pickled).uid("rows-decode-catalog").name("decode catalog")
    items = env.from_source(kafka_source(kafka, [topic("model-updates")], settings.group_id + "-items"),
                            no_clock, "model updates") \
        .uid("rows-model-updates-source").name("model-updates (Kafka)") \
        .map(fn["DecodeRecords"](), output_type=pickled).uid("rows-decode-items").name("decode item vectors")

    policies = env.from_source(kafka_source(kafka, [topic("policy-updates")], settings.group_id + "-policies"),
                               no_clock, "policy updates") \
        .uid("rows-policy-updates-source").name("policy-updates (Kafka)") \
        .map(fn["DecodeRecords"](), output_type=pickled).uid("rows-decode-policies").name("decode policies") \
        .filter(lambda value: value is not None).uid("rows-known-policies").name("readable policies")

    pages = events.union(updates).key_by(lambda value: value[0], key_type=Types.STRING()) \
        .connect(catalog.union(items, policies).broadcast(fn["catalog_desc"], fn["items_desc"],
                                                          fn["policies_desc"])) \
        .process(fn["HomepageBuilder"](), output_type=pickled) \
        .uid("homepage-builder").name("homepage builder (per user)")
    pages.filter(lambda value: value[0] == PAGE).uid("rows-pages").name("pages") \
        .process(fn["WriteHomepage"]()).uid("write-homepage").name("write homepage (Cassandra)")
    outcomes = pages.filter(lambda value: value[0] == OUTCOME).uid("rows-outcomes").name("outcomes") \
        .map(lambda value: _kafka_row(value[1], value[2]), output_type=KAFKA_ROW_TYPE()) \
        .uid("encode-outcomes").name("encode impression outcomes")
    lessons = pages.filter(lambda value: value[0] == LESSONS).uid("rows-lessons").name("lessons")
    published = lessons.union(policies).key_by(lambda value: POLICY_SET, key_type=Types.STRING()) \
        .process(fn["PolicyLearner"](), output_type=KAFKA_ROW_TYPE()) \
        .uid("policy-learner").name("policy learner (shared models)")
    t_env = StreamTableEnvironment.create(env)
    write_to_topics(t_env, kafka, {"impression-outcomes": outcomes, "policy-updates": published})


def run(detached: bool = False, flink: FlinkConfig | None = None) -> Any:
    """Build and run the job in this process's mini-cluster (or the cluster `flink run` submitted it to)."""
    env = stream_environment(flink or FlinkConfig.load())
    build(env, KafkaConfig.load(), CassandraConfig.load(), RowsJobConfig.load())
    if detached:
        return env.execute_async(JOB_NAME)
    return env.execute(JOB_NAME)


def main() -> None:
    """Entry point for `flink run -py jobs/rows_job.py` (parallelism from ``-p``)."""
    parser = argparse.ArgumentParser(description="nextwatch rows job")
    parser.parse_args()
    run(flink=replace(FlinkConfig.load(), parallelism=0))


if __name__ == "__main__":
    main()
