"""Learning job: user events -> online models -> user vectors, top picks, item vectors and similar titles.

The design (user side keyed by user, item side keyed by title, item vectors shared
as absolute versioned records through the model-updates topic) and its staleness
bound are in :mod:`jobs.models.online`; the eight signals and their blend in
:mod:`jobs.models.signals`. Steps, each with a stable uid:

1. ``learning-source``: play, browse, rating and search topics (raw bytes). The
   feature job dead-letters bad input, so this job only counts what it cannot read
   (``events_invalid``).
2. ``learning-decode``: Avro decode + contract checks, shared with the feature job;
   event -> feedback (:mod:`jobs.models.feedback`) or search.
3. ``model-updates-source`` and ``catalog-source``: the job's own model-updates
   topic and the catalog topic, both compacted and read from the start (they are
   the item side's published state and every title's metadata), decoded and
   broadcast together.
4. ``user-learner`` (keyed by user; item vectors and catalog in broadcast state):
   one learning step for the user (vectors, content profile, searches), the item
   halves of it to a side output; each changed user's vectors and top picks (the
   blend of all eight signals) flushed at most every ``flush_ms`` (coalesced per
   user).
5. ``item-learner`` (keyed by title): applies each item step once, and every
   ``publish_ms`` writes each changed title's vectors and similar titles to
   Cassandra and publishes them (with neighbours and successors) to the
   model-updates topic.
6. ``write-user-vectors``: user vectors and top picks to Cassandra, one batch per user;
   ``encode-user-updates``: the same flush to the user-updates topic (the rows job's input).

Warm start: with no checkpoint or savepoint, titles start from the Cassandra
snapshot (``item_vectors``), each user from their ``user_vectors`` row (read once, on
the user's first event in the job) and the user side's item vectors from the
model-updates topic; see ``LearningJobConfig.warm_start`` for when to turn it off.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from connectors.cassandra_store import connect
from connectors.codec import EventCodec
from connectors.config import CassandraConfig, KafkaConfig, load_section
from connectors.errors import ConfigError, DecodeError, UnknownSchemaError
from connectors.events import CatalogItem, from_record
from connectors.flink_kafka import kafka_source, write_to_topics
from connectors.model_store import ModelStore
from connectors.topics import TOPICS_BY_NAME
from jobs.feature_job import KAFKA_ROW_TYPE, EventCount, _kafka_row, decode_message
from jobs.features.outputs import now_ms
from jobs.models.base import Feedback, Search
from jobs.models.content import TitleText, title_text
from jobs.models.feedback import feedback_from_event, search_from_event
from jobs.models.online import (
    ItemModel,
    ItemStep,
    ItemVectors,
    LearningConfig,
    OnlineEvaluation,
    UserModel,
    apply_step,
    learn_content,
    learn_search,
    learn_user,
    publish,
    steps_by_title,
)
from jobs.models.signals import DEFAULT_BLEND, PeerPool, Pick, TitleTable, parse_blend, signal_scores, top_picks
from jobs.runtime import FlinkConfig, stream_environment

JOB_NAME = "nextwatch-learning"
MODEL_VERSION = "online-mf-cf-v1"  # bump when LearningConfig's meaning changes
LEARNING_TOPICS = ("play", "browse", "rating", "search")


@dataclass(frozen=True)
class LearningJobConfig:
    """``[learning]`` in the config file / ``NEXTWATCH_LEARNING_*``."""

    flush_ms: int = 100  # user vectors: per user, at most this often
    publish_ms: int = 500  # item vectors to model-updates: per changed title, at most this often
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
    evaluate_blend: bool = True  # test the blend on every first touch too (eval_blend_hits; costs a scoring)

    def __post_init__(self) -> None:
        try:
            parse_blend(self.blend)  # a bad blend fails at load, naming the signal
        except ValueError as exc:
            raise ConfigError(f"[learning] {exc}") from exc
        if self.top_picks < 1 or self.peers < 2 or self.search_half_life_minutes <= 0:
            raise ConfigError(f"[learning] top_picks >= 1, peers >= 2 and search_half_life_minutes > 0, got "
                             f"{self.top_picks}, {self.peers}, {self.search_half_life_minutes}")

    @classmethod
    def load(cls) -> LearningJobConfig:
        return load_section(cls, "learning")

    @property
    def weights(self) -> dict[str, float]:
        return parse_blend(self.blend)


# -- rows and records (pure) --------------------------------------------------------


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _floats(vector: np.ndarray | None) -> list[float]:
    return [] if vector is None else [float(v) for v in vector]


def _signed(hash64: int) -> int:
    """A 64-bit event-id hash as Cassandra's signed bigint (and back with ``& _MASK``)."""
    return hash64 - (1 << 64) if hash64 >= 1 << 63 else hash64


_MASK = (1 << 64) - 1


def user_vector_params(user_id: str, user: UserModel, written_ms: int) -> tuple[Any, ...]:
    return (user_id, MODEL_VERSION, user.version, _floats(user.implicit_vector), _floats(user.rating_vector),
            user.rating_bias, list(user.recent), user.last_event_id, _time(user.updated_ms), _time(written_ms),
            user.ratings, [_signed(h) for h in user.seen], _floats(user.profile), dict(user.searches))


def top_picks_params(user_id: str, user: UserModel, picks: list[Pick], blend: str,
                     written_ms: int) -> tuple[Any, ...]:
    return (user_id, MODEL_VERSION, user.version, [p.title_id for p in picks], [p.score for p in picks],
            [p.reason for p in picks], blend, user.last_event_id, _time(user.updated_ms), _time(written_ms))


def user_update_record(user_id: str, user: UserModel, picks: list[Pick], ingest_ms: int) -> dict[str, Any]:
    """The user-updates record of one flush: what the rows job needs of the user's models."""
    return {"schema_version": 1, "event_id": f"{user_id}:{user.version}", "user_id": user_id,
            "model_version": MODEL_VERSION, "version": user.version, "last_event_id": user.last_event_id,
            "updated_ms": user.updated_ms, "pick_ids": [p.title_id for p in picks],
            "pick_scores": [p.score for p in picks], "pick_reasons": [p.reason for p in picks],
            "recent_titles": list(user.recent), "content_profile": _floats(user.profile), "ingest_time_ms": ingest_ms}


def user_model_from_row(row: Any) -> UserModel | None:
    """A ``user_vectors`` row as the user's state (a new job's warm start), ``None`` for another model version.

    The row carries the recent event ids' hashes, so events redelivered after the warm
    start are skipped as a restored job would skip them.
    """
    if row.model_version != MODEL_VERSION:
        return None

    def vector(values: list[float] | None) -> np.ndarray | None:
        return np.array(values, dtype=np.float32) if values else None

    return UserModel(rating_vector=vector(row.rating_vector), rating_bias=row.rating_bias or 0.0,
                     ratings=row.ratings or 0, implicit_vector=vector(row.implicit_vector),
                     recent=list(row.recent_titles or []), seen=[h & _MASK for h in row.recent_event_hashes or []],
                     version=row.version, last_event_id=row.last_event_id or "",
                     updated_ms=int(row.updated_time.replace(tzinfo=UTC).timestamp() * 1000),
                     profile=vector(row.content_profile), searches=sorted((row.recent_searches or {}).items()))


def item_vector_params(vectors: ItemVectors, written_ms: int) -> tuple[Any, ...]:
    return (vectors.title_id, MODEL_VERSION, vectors.version, _floats(vectors.implicit_vector),
            vectors.implicit_bias, _floats(vectors.rating_vector), vectors.rating_bias, vectors.touches,
            _time(vectors.updated_ms), _time(written_ms))


def similar_titles_params(vectors: ItemVectors) -> tuple[Any, ...]:
    return (vectors.title_id, MODEL_VERSION, vectors.version, [t for t, _ in vectors.neighbors],
            [s for _, s in vectors.neighbors], _time(vectors.updated_ms))


def item_vectors_record(vectors: ItemVectors, ingest_ms: int) -> dict[str, Any]:
    return {"schema_version": 2, "event_id": f"{vectors.title_id}:{vectors.version}", "title_id": vectors.title_id,
            "model_version": MODEL_VERSION, "version": vectors.version,
            "rating_vector": _floats(vectors.rating_vector), "rating_bias": vectors.rating_bias,
            "implicit_vector": _floats(vectors.implicit_vector), "implicit_bias": vectors.implicit_bias,
            "touches": vectors.touches, "neighbor_ids": [t for t, _ in vectors.neighbors],
            "neighbor_scores": [s for _, s in vectors.neighbors], "successor_ids": [t for t, _ in vectors.successors],
            "successor_shares": [s for _, s in vectors.successors], "updated_ms": vectors.updated_ms,
            "ingest_time_ms": ingest_ms}


def item_vectors_from_record(record: dict[str, Any]) -> ItemVectors | None:
    """The published vectors, or ``None`` for another model version (other dimensions, other meaning)."""
    if record["model_version"] != MODEL_VERSION:
        return None
    return ItemVectors(record["title_id"], record["version"], np.array(record["rating_vector"], dtype=np.float32),
                       record["rating_bias"], np.array(record["implicit_vector"], dtype=np.float32),
                       record["implicit_bias"], record["touches"],
                       tuple(zip(record["neighbor_ids"], record["neighbor_scores"], strict=True)),
                       record["updated_ms"],
                       tuple(zip(record["successor_ids"], record["successor_shares"], strict=True)))


def item_vectors_from_row(row: Any) -> ItemVectors:
    """A Cassandra ``item_vectors`` row (the warm-start snapshot) as vectors, neighbours left to the next publish."""
    return ItemVectors(row.title_id, row.version, np.array(row.rating_vector or [], dtype=np.float32),
                       row.rating_bias, np.array(row.implicit_vector or [], dtype=np.float32), row.implicit_bias,
                       row.touches, (), int(row.updated_time.replace(tzinfo=UTC).timestamp() * 1000))


# -- Flink wiring ------------------------------------------------------------------


def _functions(kafka: KafkaConfig, cassandra: CassandraConfig, settings: LearningJobConfig,
               model: LearningConfig) -> dict[str, Any]:
    """The Python operator classes, defined here so that importing this module does not need Flink."""
    from pyflink.common import Types
    from pyflink.datastream import KeyedBroadcastProcessFunction, KeyedProcessFunction, MapFunction, ProcessFunction
    from pyflink.datastream.functions import RuntimeContext
    from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

    items_desc = MapStateDescriptor("item-vectors", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
    catalog_desc = MapStateDescriptor("catalog", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
    steps_tag = _tag_pickled("item-steps")

    def snapshot() -> dict[str, ItemVectors]:
        """The item vectors last written to Cassandra (a new job's starting point)."""
        if not settings.warm_start:
            return {}
        session = connect(cassandra, cassandra.keyspace)
        try:
            store = ModelStore(session, cassandra.keyspace)
            return {row.title_id: item_vectors_from_row(row) for row in store.rows("get_all_item_vectors")
                    if row.model_version == MODEL_VERSION}
        finally:
            session.cluster.shutdown()

    class Decode(ProcessFunction):  # type: ignore[misc]
        def open(self, runtime_context: RuntimeContext) -> None:
            self.codec = EventCodec()
            metrics = runtime_context.get_metrics_group()
            self.events_in = EventCount(metrics, "events_in")
            self.invalid = EventCount(metrics, "events_invalid")

        def process_element(self, value: bytes, ctx: Any) -> Iterator[Any]:
            self.events_in.inc()
            event, _reason = decode_message(self.codec, value, now_ms())
            if event is None:
                self.invalid.inc()  # the feature job dead-letters it with the reason
                return
            signal = feedback_from_event(event) or search_from_event(event)
            if signal is not None:
                yield event.user_id, event.event_id, signal

    class DecodeShared(MapFunction):  # type: ignore[misc]
        """A model-updates or catalog record -> ItemVectors or TitleText (None: unreadable or another model)."""

        def open(self, runtime_context: RuntimeContext) -> None:
            self.codec = EventCodec()

        def map(self, value: bytes) -> Any:
            try:
                decoded = self.codec.decode(value)
                if decoded.subject == "catalog_item":
                    return title_text(from_record(CatalogItem, decoded.record))
                return item_vectors_from_record(decoded.record)
            except (DecodeError, UnknownSchemaError, KeyError, TypeError, ValueError):
                return None

    class UserLearner(KeyedBroadcastProcessFunction):  # type: ignore[misc]
        def open(self, runtime_context: RuntimeContext) -> None:
            self.state = runtime_context.get_state(ValueStateDescriptor("user-model", Types.PICKLED_BYTE_ARRAY()))
            self.session = connect(cassandra, cassandra.keyspace) if settings.warm_start else None
            self.store = ModelStore(self.session, cassandra.keyspace) if self.session is not None else None
            self.table = TitleTable(model)  # catalog and published item vectors, as arrays
            self.titles: list[str] = []  # titles with published vectors: where negatives are sampled
            for vectors in snapshot().values():
                self._hold(vectors)
            self.peers = PeerPool(settings.peers)
            self.weights = settings.weights
            self._seed_peers()
            self.restored = False
            metrics = runtime_context.get_metrics_group()
            self.applied = EventCount(metrics, "feedback_applied")
            self.searches = EventCount(metrics, "searches_applied")
            self.duplicates = EventCount(metrics, "events_duplicate")
            self.lag_ms = 0
            metrics.gauge("freshness_lag_ms", lambda: self.lag_ms)
            # test-then-train in the job (gauges take ints: thousandths)
            self.evaluation = OnlineEvaluation()
            metrics.gauge("eval_rmse_milli", lambda: int(self.evaluation.rmse * 1000))
            metrics.gauge("eval_recall_at_10_milli", lambda: int(self.evaluation.recall * 1000))
            metrics.gauge("eval_blend_recall_at_10_milli", lambda: int(self.evaluation.blend_recall * 1000))
            metrics.gauge("eval_touches", lambda: self.evaluation.touches)
            metrics.gauge("eval_hits", lambda: self.evaluation.hits)
            metrics.gauge("eval_blend_hits", lambda: self.evaluation.blend_hits)
            # raw counts and sums too: summed over subtasks they give the whole job's RMSE and recall
            metrics.gauge("eval_ratings", lambda: self.evaluation.ratings)
            metrics.gauge("eval_squared_error_milli", lambda: int(self.evaluation.squared_error * 1000))
            metrics.gauge("eval_out_of_order", lambda: self.evaluation.out_of_order)

        def _seed_peers(self) -> None:
            # user-user CF needs other users before they act again: a sample from the last job's vectors
            if self.store is None:
                return
            for row in self.store.rows("get_some_user_vectors", settings.peers):
                if row.model_version == MODEL_VERSION:
                    self.peers.update(row.user_id, UserModel(recent=list(row.recent_titles or [])))

        def _start(self, user_id: str) -> UserModel:
            # once per user per job (state is empty only before the user's first event): the warm start
            if self.store is None:
                return UserModel()
            rows = self.store.rows("get_user_vectors", user_id)
            return (user_model_from_row(rows[0]) if rows else None) or UserModel()

        def close(self) -> None:
            if self.session is not None:
                self.session.cluster.shutdown()

        def _hold(self, vectors: ItemVectors) -> None:
            known = vectors.title_id in self.table.items
            if self.table.hold(vectors) and not known:  # never an older version over a newer
                self.titles.append(vectors.title_id)

        def _scores(self, user_id: str, user: UserModel) -> dict[str, np.ndarray]:
            return signal_scores(user_id, user, self.table, self.peers, settings.search_half_life_minutes)

        def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
            if not self.restored:  # after a restore the broadcast state has what the Python cache lost
                for _title, vectors in ctx.get_broadcast_state(items_desc).items():
                    self._hold(vectors)
                for _title, title in ctx.get_broadcast_state(catalog_desc).items():
                    self.table.describe(title)
                self.restored = True
            user_id, event_id, signal = value
            self.lag_ms = now_ms() - signal.time_ms
            user: UserModel = self.state.value() or self._start(user_id)
            if isinstance(signal, Search):
                steps: list[tuple[str, list[ItemStep]]] | None = None
                if learn_search(user, signal, event_id, model):
                    steps = []
                    self.searches.inc()
            else:
                steps = self._learn(user_id, user, signal, event_id)
            if steps is None:  # a redelivery of an applied event
                self.duplicates.inc()
                return
            if not user.flush_armed:
                timers = ctx.timer_service()
                timers.register_processing_time_timer(timers.current_processing_time() + settings.flush_ms)
                user.flush_armed = True
            self.state.update(user)
            for batch in steps:  # one message per title: each crossing into Java costs more than the step
                yield steps_tag, batch

        def _learn(self, user_id: str, user: UserModel, feedback: Feedback,
                   event_id: str) -> list[tuple[str, list[ItemStep]]] | None:
            """Test, then learn one feedback; its item steps by title, ``None`` for a redelivery."""
            if user.has_seen(event_id):
                return None

            def blend_top(exclude: set[str]) -> list[str]:
                picks = top_picks(self._scores(user_id, user), self.weights, self.table, 10, exclude)
                return [pick.title_id for pick in picks]

            self.evaluation.observe(user, feedback, self.table.items, model,
                                    blend_top if settings.evaluate_blend else None)
            steps = learn_user(user, user_id, feedback, event_id, self.table.items, self.titles, model)
            learn_content(user, feedback, self.table.content_vector(feedback.title_id), model)
            self.peers.update(user_id, user)
            self.applied.inc()
            return steps_by_title(steps)

        def process_broadcast_element(self, value: Any, ctx: Any) -> None:
            if isinstance(value, TitleText):
                ctx.get_broadcast_state(catalog_desc).put(value.title_id, value)  # newest on the topic wins
                self.table.describe(value)
                return
            if value is None:
                return
            state = ctx.get_broadcast_state(items_desc)
            current = state.get(value.title_id)
            if current is None or value.version >= current.version:
                state.put(value.title_id, value)
            self._hold(value)

        def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
            user: UserModel | None = self.state.value()
            if user is None:
                return
            user.flush_armed = False
            self.state.update(user)
            user_id = ctx.get_current_key()
            picks = top_picks(self._scores(user_id, user), self.weights, self.table, settings.top_picks,
                              user.recent)
            # main output (side outputs from timers are not supported for this function in PyFlink)
            yield user_id, user, picks

    class EncodeUserUpdate(MapFunction):  # type: ignore[misc]
        def open(self, runtime_context: RuntimeContext) -> None:
            self.codec = EventCodec()

        def map(self, value: Any) -> Any:
            user_id, user, picks = value
            record = user_update_record(user_id, user, picks, now_ms())
            return _kafka_row(user_id.encode(), self.codec.encode_record("user_update", record))

    class WriteUserVectors(ProcessFunction):  # type: ignore[misc]
        def open(self, runtime_context: RuntimeContext) -> None:
            self.session = connect(cassandra, cassandra.keyspace)
            self.store = ModelStore(self.session, cassandra.keyspace)

        def process_element(self, value: Any, ctx: Any) -> None:
            user_id, user, picks = value
            now = now_ms()
            self.store.write_together([("user_vectors", user_vector_params(user_id, user, now)),
                                       ("top_picks", top_picks_params(user_id, user, picks, settings.blend, now))])

        def close(self) -> None:
            self.store.drain()
            self.session.cluster.shutdown()

    class CowatchState:
        """The co-watch row in MapState: a step reads and writes only the entries it changes."""

        def __init__(self, state: Any) -> None:
            self.state = state

        def get(self, key: str) -> tuple[float, float] | None:
            return self.state.get(key)  # type: ignore[no-any-return]

        def __setitem__(self, key: str, value: tuple[float, float]) -> None:
            self.state.put(key, value)

    class ItemLearner(KeyedProcessFunction):  # type: ignore[misc]
        def open(self, runtime_context: RuntimeContext) -> None:
            self.state = runtime_context.get_state(ValueStateDescriptor("item-model", Types.PICKLED_BYTE_ARRAY()))
            self.cowatch = runtime_context.get_map_state(
                MapStateDescriptor("cowatch", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
            self.session = connect(cassandra, cassandra.keyspace)
            self.store = ModelStore(self.session, cassandra.keyspace)
            self.codec = EventCodec()
            metrics = runtime_context.get_metrics_group()
            self.steps = EventCount(metrics, "item_steps_applied")
            self.published = EventCount(metrics, "items_published")

        def _start(self, title_id: str) -> ItemModel:
            # once per title per job (state is empty only before its first step): the warm start
            rows = self.store.rows("get_item_vectors", title_id) if settings.warm_start else []
            if rows and rows[0].model_version == MODEL_VERSION:
                return ItemModel(item_vectors_from_row(rows[0]))
            return ItemModel(ItemVectors.initial(title_id, model))

        def process_element(self, batch: tuple[str, list[ItemStep]], ctx: Any) -> None:
            title_id, steps = batch
            item: ItemModel = self.state.value() or self._start(title_id)
            was_dirty = item.dirty
            cowatch = CowatchState(self.cowatch)
            for step in steps:
                if apply_step(item, step, model, cowatch):
                    self.steps.inc()
            if item.dirty and not was_dirty:
                timers = ctx.timer_service()
                timers.register_processing_time_timer(timers.current_processing_time() + settings.publish_ms)
            self.state.update(item)

        def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
            item: ItemModel | None = self.state.value()
            if item is None:
                return
            now = now_ms()
            if item.dirty:
                vectors = publish(item, model)
                self.published.inc()
                record = item_vectors_record(vectors, now)
                yield _kafka_row(vectors.title_id.encode(), self.codec.encode_record("item_vectors", record))
                item.snapshot_pending = True
            # Cassandra takes ~2-3k rows/s here: the snapshot is throttled per title, and its trailing
            # write is kept on a timer so the last state always lands
            if item.snapshot_pending and now >= item.snapshot_at_ms + settings.snapshot_ms:
                vectors = publish(item, model)
                self.store.write_together([("item_vectors", item_vector_params(vectors, now)),
                                           ("similar_titles", similar_titles_params(vectors))])
                item.snapshot_at_ms, item.snapshot_pending = now, False
            elif item.snapshot_pending:
                ctx.timer_service().register_processing_time_timer(item.snapshot_at_ms + settings.snapshot_ms)
            self.state.update(item)

        def close(self) -> None:
            self.store.drain()
            self.session.cluster.shutdown()

    return {"Decode": Decode, "DecodeShared": DecodeShared, "UserLearner": UserLearner,
            "WriteUserVectors": WriteUserVectors, "EncodeUserUpdate": EncodeUserUpdate, "ItemLearner": ItemLearner,
            "items_desc": items_desc, "catalog_desc": catalog_desc, "steps_tag": steps_tag}


def _tag_pickled(name: str) -> Any:
    from pyflink.common import Types
    from pyflink.datastream import OutputTag

    return OutputTag(name, Types.PICKLED_BYTE_ARRAY())


def build(env: Any, kafka: KafkaConfig, cassandra: CassandraConfig, settings: LearningJobConfig,
          model: LearningConfig | None = None) -> Any:
    """Wire the whole job onto ``env``; returns the statement set that carries the Kafka sink."""
    from pyflink.common import Types, WatermarkStrategy
    from pyflink.table import StreamTableEnvironment

    fn = _functions(kafka, cassandra, settings, model or LearningConfig())
    topic = lambda name: TOPICS_BY_NAME[name].full_name(kafka)  # noqa: E731
    no_clock = WatermarkStrategy.no_watermarks()  # no event-time windows here

    # Known limit: the broker answers a fetch with whole partitions, so a backfill reads the three topics
    # one partition after another and a user's feedback is learned in arrival order, not event order
    # (the README's "Arrival order"); the in-job evaluation skips what arrives out of order.
    events = env.from_source(kafka_source(kafka, [topic(t) for t in LEARNING_TOPICS], settings.group_id),
                             no_clock, "learning events") \
        .uid("learning-source").name("play, browse, rating (Kafka)") \
        .process(fn["Decode"](), output_type=Types.PICKLED_BYTE_ARRAY()) \
        .uid("learning-decode").name("decode -> feedback")
    updates = env.from_source(kafka_source(kafka, [topic("model-updates")], settings.group_id + "-updates"),
                              no_clock, "model updates") \
        .uid("model-updates-source").name("model-updates (Kafka)") \
        .map(fn["DecodeShared"](), output_type=Types.PICKLED_BYTE_ARRAY()) \
        .uid("model-updates-decode").name("decode item vectors")
    catalog = env.from_source(kafka_source(kafka, [topic("catalog")], settings.group_id + "-catalog"),
                              no_clock, "catalog") \
        .uid("catalog-source").name("catalog (Kafka)") \
        .map(fn["DecodeShared"](), output_type=Types.PICKLED_BYTE_ARRAY()) \
        .uid("catalog-decode").name("decode catalog")

    users = events.key_by(lambda value: value[0], key_type=Types.STRING()) \
        .connect(updates.union(catalog).broadcast(fn["items_desc"], fn["catalog_desc"])) \
        .process(fn["UserLearner"](), output_type=Types.PICKLED_BYTE_ARRAY()) \
        .uid("user-learner").name("user learner (user vectors)")
    users.process(fn["WriteUserVectors"]()).uid("write-user-vectors").name("write user vectors (Cassandra)")
    user_updates = users.map(fn["EncodeUserUpdate"](), output_type=KAFKA_ROW_TYPE()) \
        .uid("encode-user-updates").name("encode user updates")

    published = users.get_side_output(fn["steps_tag"]) \
        .key_by(lambda batch: batch[0], key_type=Types.STRING()) \
        .process(fn["ItemLearner"](), output_type=KAFKA_ROW_TYPE()) \
        .uid("item-learner").name("item learner (item vectors, similar titles)")

    t_env = StreamTableEnvironment.create(env)
    return write_to_topics(t_env, kafka, {"model-updates": published, "user-updates": user_updates})


def run(detached: bool = False, flink: FlinkConfig | None = None) -> Any:
    """Build and run the job in this process's mini-cluster (or the cluster `flink run` submitted it to)."""
    env = stream_environment(flink or FlinkConfig.load())
    build(env, KafkaConfig.load(), CassandraConfig.load(), LearningJobConfig.load())
    if detached:
        return env.execute_async(JOB_NAME)
    return env.execute(JOB_NAME)


def main() -> None:
    """Entry point for `flink run -py jobs/learning_job.py` (parallelism from ``-p``)."""
    parser = argparse.ArgumentParser(description="nextwatch learning job")
    parser.parse_args()
    run(flink=replace(FlinkConfig.load(), parallelism=0))


if __name__ == "__main__":
    main()
