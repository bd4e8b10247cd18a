"""The learning job's operators: each a top-level class with its settings passed in, driven in unit tests
through the fakes of ``tests/flink_fakes.py``. The per-event logic is :mod:`jobs.models`."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from pyflink.common import Types
from pyflink.datastream import (
    FlatMapFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    MapFunction,
    OutputTag,
    ProcessFunction,
)
from pyflink.datastream.state import MapStateDescriptor

from connectors.errors import DecodeError, UnknownSchemaError
from connectors.events import CatalogItem, ErasureRequest, from_record
from connectors.model_store import ModelStore
from jobs.context import now_ms
from jobs.experiments.assignment import assign, settings_for
from jobs.experiments.definition import Experiment, Exposure, Variant, hold
from jobs.flink.learning.config import LearningJobConfig
from jobs.models.base import Feedback, Search
from jobs.models.blend import SEGMENTS, LocalSearch, PublishedBlend
from jobs.models.content import TitleText, title_text
from jobs.models.feedback import feedback_from_event, search_from_event
from jobs.models.neural import PublishedNeural, SequenceNet, TrainerState
from jobs.models.online import (
    MODEL_VERSION,
    ItemModel,
    ItemStep,
    ItemVectors,
    LearningConfig,
    OnlineEvaluation,
    UserModel,
    apply_step,
    in_evaluation_sample,
    is_redelivery,
    learn_content,
    learn_search,
    learn_user,
    publish,
    steps_by_title,
)
from jobs.models.signals import (
    BlendObservation,
    PeerPool,
    Pick,
    TitleTable,
    is_blend_touch,
    observe_blends,
    parse_blend,
    signal_scores,
    top_picks,
)
from jobs.models.snapshots import item_vectors_from_row, user_model_from_row
from jobs.pacing import FlushPacing
from jobs.records.blend_update import blend_update_record, published_blend
from jobs.records.experiment import experiment_from_record
from jobs.records.item_vectors import item_vectors_from_record, item_vectors_record
from jobs.records.neural_update import neural_update_record, published_neural
from jobs.records.user_update import user_update_record
from jobs.runtime import (
    STATE_CACHE_KEYS,
    BroadcastRestore,
    CassandraWriter,
    ErasedMembers,
    EventCount,
    KeyedState,
    Stores,
    arm_timer,
    broadcast_value,
    flush_due,
    job_codec,
    kafka_row,
    keep_newest,
    skips_unreadable_state,
)

ITEMS = MapStateDescriptor("item-vectors", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
CATALOG = MapStateDescriptor("catalog", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
BLENDS = MapStateDescriptor("blends", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
STEPS_TAG = OutputTag("item-steps", Types.PICKLED_BYTE_ARRAY())
BLEND_TAG = OutputTag("blend-observations", Types.PICKLED_BYTE_ARRAY())
NEURAL = MapStateDescriptor("neural", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
EXPERIMENTS = MapStateDescriptor("learning-experiments", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
EXAMPLES_TAG = OutputTag("neural-examples", Types.PICKLED_BYTE_ARRAY())
TRAINER_KEY = "neural"  # the trainer runs as one instance: every example under one key
LOG = logging.getLogger("nextwatch.jobs.learning")
# A member's item steps wait in their state for their flush; past this many they go at once (bounded state).
MAX_HELD_STEPS = 2_000


def feedback(event: Any) -> Iterable[tuple[str, str, Any]]:
    """An event the models learn from -> (user, event id, feedback or search); nothing for the others. An
    erasure request goes on as itself."""
    if isinstance(event, ErasureRequest):
        return ((event.user_id, event.event_id, event),)
    signal = feedback_from_event(event) or search_from_event(event)
    return () if signal is None else ((event.user_id, event.event_id, signal),)


class DecodeShared(MapFunction):  # type: ignore[misc]
    """A model-updates, catalog, blend-updates, neural-updates or experiments record -> ItemVectors, TitleText,
    PublishedBlend, PublishedNeural or Experiment (None: unreadable or another model)."""

    def open(self, runtime_context: Any) -> None:
        self.codec = job_codec(runtime_context)
        # a record of a topic only jobs write that cannot be read: counted, it has no dead-letter topic
        self.unreadable = EventCount(runtime_context.get_metrics_group(), "not_applied_unreadable_record")

    def map(self, value: bytes) -> Any:
        try:
            decoded = self.codec.decode(value)
            if decoded.subject == "catalog_item":
                return title_text(from_record(CatalogItem, decoded.record))
            if decoded.subject == "blend_update":
                return published_blend(decoded.record)
            if decoded.subject == "neural_update":
                return published_neural(decoded.record)
            if decoded.subject == "experiment":
                return experiment_from_record(decoded.record)
            return item_vectors_from_record(decoded.record)
        except (DecodeError, UnknownSchemaError, KeyError, TypeError, ValueError):
            self.unreadable.inc()
            return None


class UserLearner(KeyedBroadcastProcessFunction):  # type: ignore[misc]
    """Keyed by user, item vectors and catalog in broadcast state: test, then learn each feedback; each
    changed user's vectors and top picks at most every ``flush_ms`` (stretched in a backlog). A user the
    job has no state for starts from their Cassandra row (``warm_start``).

    The item halves of the steps go to a side output, one ``(title, steps)`` batch per title
    (:class:`SplitSteps` sends each on). With ``hold_steps`` they wait in the member's state and go
    with the member's flush: a member with several events in a flush interval sends each title one
    message, not one per event, and an event fans out to about twenty titles. Held in keyed state,
    they are in every checkpoint with the event that made them. Without it (thread mode, where
    PyFlink hands a timer's side output to the main output) each event's steps go as it is learned.
    Blend observations and neural examples travel the same way, on side outputs of their own.
    """

    def __init__(self, settings: LearningJobConfig, stores: Stores, model: LearningConfig | None = None,
                 hold_steps: bool = True) -> None:
        self.settings, self.stores, self.model = settings, stores, model or LearningConfig()
        self.hold_steps = hold_steps
        self.store: Any = None

    def open(self, runtime_context: Any) -> None:
        settings = self.settings
        metrics = runtime_context.get_metrics_group()
        self.decode_failures = EventCount(metrics, "state_decode_failures")
        self.state = KeyedState(runtime_context, "user-model", self.decode_failures, STATE_CACHE_KEYS)
        self.held = KeyedState(runtime_context, "item-steps-held", self.decode_failures, STATE_CACHE_KEYS)
        self.store = self.stores.open(ModelStore)[0] if settings.warm_start else None
        self.table = TitleTable(self.model)  # catalog and published item vectors, as arrays
        self.titles: list[str] = []  # titles with published vectors: where negatives are sampled
        for vectors in self._snapshot():
            self._hold(vectors)
        self.peers = PeerPool(settings.peers)
        self.erased = ErasedMembers(self.stores, metrics)
        self.blends = settings.blends()  # serving the configured blends until the learner publishes newer ones
        self._seed_peers()
        loaders: list[tuple[Any, Any]] = [(ITEMS, self._hold), (CATALOG, self.table.describe)]
        if not self.blends.pinned:  # pinned: the job has no blend learner, and no blends in broadcast state
            loaders.append((BLENDS, self.blends.adopt))
        if settings.neural:
            loaders.append((NEURAL, self.table.hold_neural))
        self.experiments: dict[str, Experiment] = {}
        self.variant_blends: dict[str, dict[str, float]] = {}  # blend text -> weights
        self.bad_overrides = EventCount(metrics, "not_applied_experiment_override")
        self.over_limit = EventCount(metrics, "not_applied_experiments_over_limit")
        loaders.append((EXPERIMENTS, self.hold_experiment))
        self.restore = BroadcastRestore(loaders, self.decode_failures)
        self.applied = EventCount(metrics, "feedback_applied")
        self.searches = EventCount(metrics, "searches_applied")
        self.duplicates = EventCount(metrics, "events_duplicate")
        self.lag_ms = 0
        metrics.gauge("freshness_lag_ms", lambda: self.lag_ms)
        self.pacing = FlushPacing(settings.flush_ms, settings.max_flush_ms)
        metrics.gauge("flush_delay_ms", self.pacing.delay_ms)
        # test-then-train in the job (gauges take ints: thousandths)
        self.evaluation = OnlineEvaluation()
        evaluation = self.evaluation
        metrics.gauge("eval_rmse_milli", lambda: int(evaluation.rmse * 1000))
        metrics.gauge("eval_recall_at_10_milli", lambda: int(evaluation.recall * 1000))
        metrics.gauge("eval_blend_recall_at_10_milli", lambda: int(evaluation.blend_recall * 1000))
        metrics.gauge("eval_touches", lambda: evaluation.touches)
        metrics.gauge("eval_hits", lambda: evaluation.hits)
        metrics.gauge("eval_blend_hits", lambda: evaluation.blend_hits)
        # raw counts and sums too: summed over subtasks they give the whole job's RMSE and recall
        metrics.gauge("eval_ratings", lambda: evaluation.ratings)
        metrics.gauge("eval_squared_error_milli", lambda: int(evaluation.squared_error * 1000))
        metrics.gauge("eval_out_of_order", lambda: evaluation.out_of_order)

    def close(self) -> None:
        if self.store is not None:
            self.stores.close(self.store)

    def _snapshot(self) -> list[ItemVectors]:
        """The item vectors last written to Cassandra (a new job's starting point)."""
        if self.store is None:
            return []
        return [item_vectors_from_row(row) for row in self.store.rows("get_all_item_vectors")
                if row.model_version == MODEL_VERSION]

    def _seed_peers(self) -> None:
        # user-user CF needs other users before they act again: a sample from the last job's vectors
        if self.store is None:
            return
        for row in self.store.rows("get_some_user_vectors", self.settings.peers):
            if row.model_version == MODEL_VERSION:
                self.peers.update(row.user_id, UserModel(recent=list(row.recent_titles or [])))

    def _start(self, user_id: str) -> UserModel:
        # once per user per job (state is empty only before the user's first event): the warm start
        if self.store is None:
            return UserModel()
        rows = self.store.rows("get_user_vectors", user_id)
        return (user_model_from_row(rows[0]) if rows else None) or UserModel()

    def _hold(self, vectors: ItemVectors) -> None:
        known = vectors.title_id in self.table.items
        if self.table.hold(vectors) and not known:  # never an older version over a newer
            self.titles.append(vectors.title_id)

    def _scores(self, user_id: str, user: UserModel) -> dict[str, np.ndarray]:
        return signal_scores(user_id, user, self.table, self.peers, self.settings.search_half_life_minutes)

    @skips_unreadable_state
    def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
        self.restore.ensure(ctx)
        user_id, event_id, signal = value
        if isinstance(signal, ErasureRequest):  # their state, their held steps, their place among peers
            self.erased.add(user_id)
            self.state.clear(user_id)
            self.held.clear(user_id)
            self.peers.forget(user_id)
            yield user_id, None, [], ""  # the writer deletes their rows; no user update goes out
            return
        if self.erased.holds(user_id):
            return
        now = now_ms()
        self.lag_ms = now - signal.time_ms
        self.pacing.observe(now, signal.time_ms)
        user: UserModel = self.state.value(user_id) or self._start(user_id)
        extras: list[Any] = []  # blend observations and neural examples: they travel with the item steps
        if isinstance(signal, Search):
            steps: list[ItemStep] | None = None
            if learn_search(user, signal, event_id, self.model):
                steps = []
                self.searches.inc()
        else:
            previous = user.recent[-self.model.neural_length:]
            steps, observation = self._learn(user_id, user, signal, event_id)
            if observation is not None and not self.blends.pinned:  # to the one blend learner per segment
                extras.append(observation)
            if steps is not None and self.settings.neural and previous and signal.title_id not in previous:
                extras.append((tuple(previous), signal.title_id))  # to the neural trainer: what came next
        if steps is None:  # a redelivery of an applied event
            self.duplicates.inc()
            return
        if flush_due(user.flush_armed, now):
            arm_timer(ctx, self.pacing.delay_ms())
            user.flush_armed = now
        self.state.update(user, user_id)
        if not self.hold_steps:
            if steps:
                yield STEPS_TAG, steps_by_title(steps)
            yield from self._tagged(extras)
        elif steps or extras:
            held: list[Any] = (self.held.value(user_id) or []) + steps + extras
            if len(held) >= MAX_HELD_STEPS:
                yield STEPS_TAG, steps_by_title([step for step in held if isinstance(step, ItemStep)])
                held = [value for value in held if not isinstance(value, ItemStep)]
            self.held.update(held, user_id)

    @staticmethod
    def _tagged(extras: Iterable[Any]) -> Iterator[tuple[OutputTag, Any]]:
        """Blend observations to the blend learner, neural examples to the trainer."""
        for value in extras:
            yield (BLEND_TAG if isinstance(value, BlendObservation) else EXAMPLES_TAG), value

    def _learn(self, user_id: str, user: UserModel, feedback: Feedback,
               event_id: str) -> tuple[list[ItemStep] | None, BlendObservation | None]:
        """Test, then learn one feedback: its item steps (``None`` for a redelivery) and, for a sampled
        touch, how the candidate blends of the member's segment ranked it."""
        if is_redelivery(user, event_id, feedback):
            return None, None
        observation: BlendObservation | None = None

        def blend_hit(exclude: set[str]) -> bool:  # one scoring both tests the blend and teaches the learner
            nonlocal observation
            observation = observe_blends(self._scores(user_id, user), self.table, self.blends, user,
                                         feedback.title_id)
            return observation is not None and observation.hits[0]  # the serving blend comes first

        if in_evaluation_sample(user_id, self.settings.evaluate_share):  # a scoring per touch: sampled
            self.evaluation.observe(user, feedback, self.table.items, self.model,
                                    blend_hit if self.settings.evaluate_blend and is_blend_touch(user, feedback)
                                    else None)
        steps = learn_user(user, user_id, feedback, event_id, self.table.items, self.titles, self.model)
        learn_content(user, feedback, self.table.content_vector(feedback.title_id), self.model)
        self.peers.update(user_id, user)
        self.applied.inc()
        return steps, observation

    def hold_experiment(self, experiment: Experiment) -> None:
        """Serve ``experiment``'s blends from now; one whose blend this version cannot parse (checked on create,
        so written around it) is counted and not run here."""
        def parse(variant: Variant) -> None:
            for text in variant.settings("learning").values():
                self.variant_blends.setdefault(text, parse_blend(text))

        refused = hold(self.experiments, experiment, parse)
        if refused:
            (self.bad_overrides if refused == "override" else self.over_limit).inc()

    def serving_blend(self, user_id: str, segment: str, now: int) -> tuple[dict[str, float], str]:
        """The weights the member's picks are ranked by, and how to describe them: their segment's blend, or
        their variant's in an experiment that changes it (eligibility: tenure only, checked on create)."""
        learner = self.blends.learners[segment]
        if self.experiments:
            for assignment in assign(self.experiments.values(), user_id, Exposure(tenure=segment), now):
                settings = settings_for([assignment], "learning")
                text = settings.get(f"blend_{segment}") or settings.get("blend")
                if text:
                    return self.variant_blends[text], f"{assignment.label} {text}"
        return learner.serving, learner.published(segment, 0).describe()

    def process_broadcast_element(self, value: Any, ctx: Any) -> None:
        if isinstance(value, Experiment):
            if keep_newest(ctx.get_broadcast_state(EXPERIMENTS), value.name, value,
                           lambda known: value.version > known.version, self.decode_failures):
                self.hold_experiment(value)
            return
        if isinstance(value, PublishedNeural):
            state = ctx.get_broadcast_state(NEURAL)
            current = broadcast_value(state, value.key, self.decode_failures)
            if current is None or value.version >= current.version:
                state.put(value.key, value)
            self.table.hold_neural(value)
            return
        if isinstance(value, PublishedBlend):
            state = ctx.get_broadcast_state(BLENDS)
            current = broadcast_value(state, value.segment, self.decode_failures)
            if current is None or value.version > current.version:
                state.put(value.segment, value)
            if self.blends.adopt(value):
                LOG.info("serving blend %s", value.describe())
            return
        if isinstance(value, TitleText):
            ctx.get_broadcast_state(CATALOG).put(value.title_id, value)  # newest on the topic wins
            self.table.describe(value)
            return
        if value is None:
            return
        state = ctx.get_broadcast_state(ITEMS)
        current = broadcast_value(state, value.title_id, self.decode_failures)
        if current is None or value.version >= current.version:
            state.put(value.title_id, value)
        self._hold(value)

    @skips_unreadable_state
    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        self.restore.ensure(ctx)
        user_id = ctx.get_current_key()
        user: UserModel | None = self.state.value(user_id)
        if user is None:
            return
        user.flush_armed = 0
        self.state.update(user, user_id)
        weights, blend = self.serving_blend(user_id, self.blends.segment(user.version), now_ms())
        picks = top_picks(self._scores(user_id, user), weights, self.table, self.settings.top_picks, user.recent)
        yield user_id, user, picks, blend
        held = self.held.value(user_id) if self.hold_steps else None
        if held:  # a timer's side output: process mode only (see the class)
            steps = [step for step in held if isinstance(step, ItemStep)]
            if steps:
                yield STEPS_TAG, steps_by_title(steps)
            yield from self._tagged(value for value in held if not isinstance(value, ItemStep))
            self.held.update([], user_id)


def segment_of(value: BlendObservation | PublishedBlend) -> str:
    """The blend learner's key."""
    return value.segment


class BlendLearner(KeyedCoProcessFunction):  # type: ignore[misc]
    """Keyed by member tenure segment: one blend learner per segment for the whole job, fed the sampled touches
    of every user-side subtask (:mod:`jobs.models.blend`; the first input). When a segment's blend moves, the
    new version is logged and published to blend-updates, from where every user-side subtask serves it. A
    published blend newer than the state (the second input: a restart without a checkpoint) is adopted, not
    published again.
    """

    def __init__(self, settings: LearningJobConfig) -> None:
        self.settings = settings

    def open(self, runtime_context: Any) -> None:
        metrics = runtime_context.get_metrics_group()
        self.state = KeyedState(runtime_context, "blend-learner", EventCount(metrics, "state_decode_failures"))
        self.codec = job_codec(runtime_context)
        self.credited = EventCount(metrics, "blend_touches_credited")
        # hits of an older version's candidates (in flight when the blend moved): not applied, counted
        self.stale = EventCount(metrics, "not_applied_blend_touch_stale")
        self.moves = EventCount(metrics, "blend_moves")
        self.unknown = EventCount(metrics, "not_applied_blend_unknown_segment")  # named by other code
        # the learners as objects; exact because this instance is the only writer of its keys' state
        self.live: dict[str, LocalSearch] = {}

    def _learner(self, segment: str) -> LocalSearch:
        learner = self.live.get(segment)
        if learner is None:
            learner = self.live[segment] = self.settings.blends().learners[segment]
            state = self.state.value()
            if state is not None:
                learner.resume(state)
        return learner

    @skips_unreadable_state
    def process_element(self, value: BlendObservation | PublishedBlend, ctx: Any) -> Iterator[Any]:
        segment = ctx.get_current_key()
        if segment not in SEGMENTS:
            self.unknown.inc()
            return
        learner = self._learner(segment)
        moved = False
        if isinstance(value, PublishedBlend):
            if value.version > learner.version:
                learner.serve(value.weights, value.version)
                learner.touches = max(learner.touches, value.touches)
        elif value.version != learner.version or len(value.hits) != len(learner.candidates):
            self.stale.inc()
        else:
            self.credited.inc()
            moved = learner.credit(np.array(value.hits))
        self.state.update(learner.snapshot())
        if moved:
            self.moves.inc()
            now = now_ms()
            published = learner.published(segment, now)
            LOG.info("blend moved after %d touches (recent Recall@10 %.4f): %s", published.touches,
                     published.hit_rate, published.describe())
            yield kafka_row(segment.encode(), self.codec.encode_record("blend_update",
                                                                       blend_update_record(published, now)))

    def process_element1(self, value: BlendObservation, ctx: Any) -> Iterator[Any]:
        yield from self.process_element(value, ctx)

    def process_element2(self, value: PublishedBlend, ctx: Any) -> Iterator[Any]:
        yield from self.process_element(value, ctx)


class NeuralTrainer(KeyedProcessFunction):  # type: ignore[misc]
    """One key (``TRAINER_KEY``): the neural sequence model's trainer for the whole job. Each example (a
    member's last titles -> the title they touched next) joins a mini-batch; each full batch is a training
    step; at most every ``neural_publish_ms`` the encoder and every title whose embedding changed are
    published to neural-updates, absolute and versioned, from where the user side serves them.

    The weights (about 0.5 MB) are written to state when they are published, or after ``SAVE_EVERY``
    examples; the examples since are written with each one (a short list) and learned again after a
    restore, with the random state saved with the weights: the same weights as if never stopped.
    """

    SAVE_EVERY = 500

    def __init__(self, settings: LearningJobConfig, model: LearningConfig | None = None) -> None:
        self.settings, self.model = settings, model or LearningConfig()

    def open(self, runtime_context: Any) -> None:
        metrics = runtime_context.get_metrics_group()
        failures = EventCount(metrics, "state_decode_failures")
        self.state = KeyedState(runtime_context, "neural-trainer", failures)
        self.since = KeyedState(runtime_context, "neural-examples-since-saved", failures)
        self.codec = job_codec(runtime_context)
        self.examples = EventCount(metrics, "neural_examples")
        self.steps = EventCount(metrics, "neural_steps")
        self.published = EventCount(metrics, "neural_records_published")
        self.trainer: TrainerState | None = None  # the state as an object: this instance is its only writer
        self.log: list[tuple[tuple[str, ...], str]] = []

    def _trainer(self) -> TrainerState:
        if self.trainer is None:
            model = self.model
            self.trainer = self.state.value() or TrainerState(SequenceNet(
                model.neural_dimensions, model.neural_negatives, model.neural_learning_rate, tied=True))
            self.log = []
            for history, title_id in self.since.value() or []:  # learned after the weights were saved
                self._learn(self.trainer, history, title_id)
        return self.trainer

    def _learn(self, trainer: TrainerState, history: tuple[str, ...], title_id: str) -> bool:
        self.log.append((history, title_id))
        return trainer.learn(history, title_id, self.model.neural_batch, self.model.neural_length)

    def _save(self, trainer: TrainerState) -> None:
        self.state.update(trainer)
        self.log = []
        self.since.update([])

    @skips_unreadable_state
    def process_element(self, value: tuple[tuple[str, ...], str], ctx: Any) -> None:
        trainer = self._trainer()
        self.examples.inc()
        if self._learn(trainer, *value):
            self.steps.inc()
            if not trainer.armed:
                arm_timer(ctx, self.settings.neural_publish_ms)
                trainer.armed = True
        if len(self.log) >= self.SAVE_EVERY:
            self._save(trainer)
        else:
            self.since.update(self.log)

    @skips_unreadable_state
    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        trainer = self._trainer()
        trainer.armed = False
        now = now_ms()
        for weights in trainer.published(now):
            self.published.inc()
            yield kafka_row(weights.key.encode(), self.codec.encode_record("neural_update",
                                                                           neural_update_record(weights, now)))
        self._save(trainer)


class SplitSteps(FlatMapFunction):  # type: ignore[misc]
    """A member's item steps -> one ``(title, steps)`` batch per title, on to the item side keyed by title.

    Chained behind the user side's side output with the item side's key selector, so the batches
    cross into Java once each, on their way to the item side, rather than three times.
    """

    def flat_map(self, value: list[tuple[str, list[ItemStep]]]) -> Iterator[tuple[str, list[ItemStep]]]:
        yield from value


class EncodeUserUpdate(FlatMapFunction):  # type: ignore[misc]
    """A user's flush -> a user-updates record (the rows job's input); nothing for an erased member."""

    def open(self, runtime_context: Any) -> None:
        self.codec = job_codec(runtime_context)

    def flat_map(self, value: tuple[str, UserModel | None, list[Pick], str]) -> Iterator[Any]:
        user_id, user, picks, _ = value
        if user is None:
            return
        record = user_update_record(user_id, user, picks, now_ms())
        yield kafka_row(user_id.encode(), self.codec.encode_record("user_update", record))


class WriteUserVectors(CassandraWriter, ProcessFunction):  # type: ignore[misc]
    """A user's flush -> their user_vectors and top_picks rows (with the blend that ranked them), in one batch."""

    store_type = ModelStore

    def open(self, runtime_context: Any) -> None:
        self.open_store()

    def process_element(self, value: tuple[str, UserModel | None, list[Pick], str], ctx: Any) -> None:
        user_id, user, picks, blend = value
        if user is None:  # an erased member: after any write of theirs queued before
            self.store.erase_member(user_id)
            return
        self.store.write_user(user_id, user, picks, blend, MODEL_VERSION, now_ms())


class CowatchRows:
    """The co-watch rows in MapState, with the entries this instance has read or written kept as values.

    In process mode a MapState read that the worker's cache cannot answer is a round trip to Java,
    and in a backfill most co-watch reads are of pairs not seen before: they all paid it. A title
    whose item state was empty when this instance first stepped it has had every entry of its row
    written here since, so while its row is held a pair missing from it is absent, with no look-up.
    Exact because an instance is the only reader and writer of its titles' rows (a restore or a
    rescale starts with nothing held). At most ``max_entries`` entries are held: whole rows go, least
    recently stepped first, and a row read again comes from MapState.
    """

    def __init__(self, state: Any, max_entries: int = 1_000_000) -> None:
        self.state, self.max_entries = state, max_entries
        self.rows: OrderedDict[str, dict[str, tuple[float, float]]] = OrderedDict()
        self.complete: set[str] = set()  # titles whose whole row is held
        self.entries = 0
        self.title = ""
        self.row: dict[str, tuple[float, float]] = {}

    def focus(self, title_id: str, new_title: bool) -> CowatchRows:
        """Work on ``title_id``'s row (the current key); ``new_title``: its item state was empty."""
        row = self.rows.pop(title_id, None)
        if row is None:
            row = {}
            if new_title:
                self.complete.add(title_id)
        self.rows[title_id] = row
        self.title, self.row = title_id, row
        return self

    def get(self, key: str) -> tuple[float, float] | None:
        value = self.row.get(key)
        if value is None and self.title not in self.complete:
            value = self.state.get(key)
            if value is not None:
                self.row[key] = value
                self.entries += 1
        return value

    def __setitem__(self, key: str, value: tuple[float, float]) -> None:
        if key not in self.row:
            self.entries += 1
        self.row[key] = value
        self.state.put(key, value)

    def trim(self) -> None:
        while self.entries > self.max_entries and len(self.rows) > 1:
            title_id, row = self.rows.popitem(last=False)
            self.entries -= len(row)
            self.complete.discard(title_id)


class ItemLearner(CassandraWriter, KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by title: applies each item step once; every ``publish_ms`` publishes each changed title's
    vectors (with neighbours and successors) to model-updates, and at most every ``snapshot_ms`` writes them
    and its similar titles to Cassandra."""

    store_type = ModelStore

    def __init__(self, settings: LearningJobConfig, stores: Stores, model: LearningConfig | None = None) -> None:
        super().__init__(stores)
        self.settings, self.model = settings, model or LearningConfig()

    def open(self, runtime_context: Any) -> None:
        metrics = runtime_context.get_metrics_group()
        self.state = KeyedState(runtime_context, "item-model", EventCount(metrics, "state_decode_failures"),
                                 STATE_CACHE_KEYS)
        self.cowatch = CowatchRows(runtime_context.get_map_state(
            MapStateDescriptor("cowatch", Types.STRING(), Types.PICKLED_BYTE_ARRAY())))
        self.open_store()
        self.codec = job_codec(runtime_context)
        self.steps = EventCount(metrics, "item_steps_applied")
        self.published = EventCount(metrics, "items_published")
        self.pacing = FlushPacing(self.settings.publish_ms, self.settings.max_flush_ms)
        metrics.gauge("publish_delay_ms", self.pacing.delay_ms)

    def _start(self, title_id: str) -> ItemModel:
        # once per title per job (state is empty only before its first step): the warm start
        rows = self.store.rows("get_item_vectors", title_id) if self.settings.warm_start else []
        if rows and rows[0].model_version == MODEL_VERSION:
            return ItemModel(item_vectors_from_row(rows[0]))
        return ItemModel(ItemVectors.initial(title_id, self.model))

    @skips_unreadable_state
    def process_element(self, batch: tuple[str, list[ItemStep]], ctx: Any) -> None:
        title_id, steps = batch
        self.pacing.observe(now_ms(), steps[0].time_ms)
        stored: ItemModel | None = self.state.value(title_id)
        item = stored or self._start(title_id)
        was_dirty = item.dirty
        cowatch = self.cowatch.focus(title_id, new_title=stored is None)
        for step in steps:
            if apply_step(item, step, self.model, cowatch):
                self.steps.inc()
        cowatch.trim()
        if item.dirty and not was_dirty:
            arm_timer(ctx, self.pacing.delay_ms())
        self.state.update(item, title_id)

    @skips_unreadable_state
    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        title_id = ctx.get_current_key()
        item: ItemModel | None = self.state.value(title_id)
        if item is None:
            return
        now = now_ms()
        snapshot_ms = self.settings.snapshot_ms
        if item.dirty:
            vectors = publish(item, self.model)
            self.published.inc()
            record = item_vectors_record(vectors, now)
            yield kafka_row(vectors.title_id.encode(), self.codec.encode_record("item_vectors", record))
            item.snapshot_pending = True
        # Cassandra takes ~2-3k rows/s here: the snapshot is throttled per title, and its trailing
        # write is kept on a timer so the last state always lands
        if item.snapshot_pending and now >= item.snapshot_at_ms + snapshot_ms:
            self.store.write_item(publish(item, self.model), MODEL_VERSION, now)
            item.snapshot_at_ms, item.snapshot_pending = now, False
        elif item.snapshot_pending:
            ctx.timer_service().register_processing_time_timer(item.snapshot_at_ms + snapshot_ms)
        self.state.update(item, title_id)
