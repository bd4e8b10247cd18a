"""The rows job's operators: each a top-level class with its settings passed in, driven in unit tests
through the fakes of ``tests/flink_fakes.py``. The per-event logic is :mod:`jobs.homepage` and
:mod:`jobs.exploration`."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedBroadcastProcessFunction, KeyedProcessFunction, MapFunction, ProcessFunction
from pyflink.datastream.state import MapStateDescriptor

from connectors.errors import DecodeError, UnknownSchemaError
from connectors.events import CatalogItem, ErasureRequest, from_record
from connectors.feature_store import FeatureStore
from connectors.homepage_store import HomepageStore
from jobs.context import next_daypart_ms, now_ms, weekday
from jobs.experiments.assignment import assign, settings_for
from jobs.experiments.definition import Experiment, Exposure, hold
from jobs.exploration.presentation import (
    POLICY_SET,
    MemberContext,
    PolicyLearnerState,
    PublishedPolicies,
    lessons_from_outcomes,
    load_snapshot,
    presented_homepage,
)
from jobs.exploration.rewards import ImpressionJoin
from jobs.features.user_state import TitleInfo
from jobs.flink.rows.config import RowsJobConfig, new_policies, served_policies, variant_settings
from jobs.homepage.page import model_versions, stored_rows
from jobs.homepage.rows import HomepageSettings
from jobs.homepage.rules import Viewer
from jobs.homepage.shared import SharedCache
from jobs.homepage.state import RowsUser
from jobs.models.blend import Tenure
from jobs.models.online import ItemVectors, LearningConfig
from jobs.pacing import FlushPacing
from jobs.records.experiment import experiment_from_record
from jobs.records.impression_outcome import outcome_record
from jobs.records.item_vectors import item_vectors_from_record
from jobs.records.policy_update import policy_update_record, published_policies
from jobs.records.user_update import user_update_from_record
from jobs.runtime import (
    STATE_CACHE_KEYS,
    BroadcastRestore,
    CassandraWriter,
    ErasedMembers,
    EventCount,
    KeyedState,
    Stores,
    UnreadableState,
    arm_timer,
    flush_due,
    job_codec,
    kafka_row,
    keep_newest,
    skips_unreadable_state,
)

CATALOG = MapStateDescriptor("rows-catalog", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
ITEMS = MapStateDescriptor("rows-item-vectors", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
POLICIES = MapStateDescriptor("rows-policies", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
EXPERIMENTS = MapStateDescriptor("rows-experiments", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
# what the homepage builder emits: pages to write, outcomes to log, lessons for the policy learner
PAGE, OUTCOME, LESSONS = "page", "outcome", "lessons"
ERASE = "erase"  # an erased member: the homepage writer deletes their pages (it takes PAGE and ERASE)
ACTIVE_MS = 7 * 86_400_000  # a user's homepage follows dayparts for a week after their last event


def keyed_event(event: Any) -> Iterable[tuple[str, str, Any]]:
    return ((event.user_id, "event", event),)


class DecodeRecords(MapFunction):  # type: ignore[misc]
    """user-updates -> (user, "update", record); catalog, model-updates, policy-updates and experiments ->
    CatalogItem, ItemVectors, PublishedPolicies or Experiment; None for what it cannot read or another model
    version."""

    def open(self, runtime_context: Any) -> None:
        self.codec = job_codec(runtime_context)
        # a record of a topic only jobs write that cannot be read: counted, it has no dead-letter topic
        self.unreadable = EventCount(runtime_context.get_metrics_group(), "not_applied_unreadable_record")

    def map(self, value: bytes) -> Any:
        try:
            decoded = self.codec.decode(value)
            if decoded.subject == "user_update":
                update = user_update_from_record(decoded.record)
                return None if update is None else (update.user_id, "update", update)
            if decoded.subject == "catalog_item":
                return from_record(CatalogItem, decoded.record)
            if decoded.subject == "policy_update":
                return published_policies(decoded.record)
            if decoded.subject == "experiment":
                return experiment_from_record(decoded.record)
            return item_vectors_from_record(decoded.record)
        except (DecodeError, UnknownSchemaError, KeyError, TypeError, ValueError):
            self.unreadable.inc()
            return None


class HomepageBuilder(KeyedBroadcastProcessFunction):  # type: ignore[misc]
    """Keyed by user; catalog, item vectors, the shared policies and the experiments in broadcast state.
    Applies events and model updates to the member's state and, at most every ``flush_ms``, rebuilds the
    homepage of their current context bucket (also at the next daypart change, and when held impressions
    close), with the settings of the member's variant in each running experiment they are eligible for."""

    def __init__(self, settings: RowsJobConfig, stores: Stores) -> None:
        self.settings, self.stores = settings, stores
        self.homepages: Any = None

    def open(self, runtime_context: Any) -> None:
        settings = self.settings
        metrics = runtime_context.get_metrics_group()
        self.decode_failures = EventCount(metrics, "state_decode_failures")
        self.state = KeyedState(runtime_context, "rows-user", self.decode_failures, STATE_CACHE_KEYS)
        self.homepages, self.features = self.stores.open(HomepageStore, FeatureStore)
        self.erased = ErasedMembers(self.stores, metrics)
        self.shared = SharedCache(LearningConfig().content_dimensions, settings.trending_refresh_ms,
                                  settings.shared_refresh_ms)
        self.policies = new_policies(settings)
        self.rng = random.Random()
        self.experiments: dict[str, Experiment] = {}
        self.variants: dict[tuple[tuple[str, str], ...], RowsJobConfig] = {}
        self.tenure = Tenure()
        self.restore = BroadcastRestore([(CATALOG, self.shared.describe), (ITEMS, self.shared.hold),
                                         (POLICIES, lambda published: load_snapshot(self.policies, published.models)),
                                         (EXPERIMENTS, self.hold_experiment)],
                                        self.decode_failures)
        self.events = EventCount(metrics, "events_applied")
        self.updates = EventCount(metrics, "user_updates_applied")
        self.duplicates = EventCount(metrics, "duplicates")
        self.built = EventCount(metrics, "homepages_built")
        self.pacing = FlushPacing(settings.flush_ms, settings.max_flush_ms)
        metrics.gauge("flush_delay_ms", self.pacing.delay_ms)
        self.rewards = EventCount(metrics, "outcomes_learned")
        self.in_experiments = EventCount(metrics, "homepages_in_experiments")
        self.bad_overrides = EventCount(metrics, "not_applied_experiment_override")
        self.over_limit = EventCount(metrics, "not_applied_experiments_over_limit")
        self.codec = job_codec(runtime_context)

    def close(self) -> None:
        if self.homepages is not None:  # open may have failed before it
            self.stores.close(self.homepages, self.features)

    @skips_unreadable_state
    def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
        self.restore.ensure(ctx)
        settings = self.settings
        user_id, kind, payload = value
        if isinstance(payload, ErasureRequest):
            yield from self.erase(user_id, ctx)
            return
        if self.erased.holds(user_id):
            return
        user: RowsUser = self.state.value(user_id) or RowsUser()
        if user.impressions is None:
            user.impressions = ImpressionJoin(settings.reward_window_ms)
        now = now_ms()
        if kind == "event":
            self.pacing.observe(now, payload.event_time_ms)
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
        if flush_due(user.flush_armed, now):
            ctx.timer_service().register_processing_time_timer(now + self.pacing.delay_ms())
            user.flush_armed = now
        wake_at = user.reward_timer_due(now)  # held impressions close even if the member goes quiet
        if wake_at is not None:
            ctx.timer_service().register_processing_time_timer(wake_at)
        self.state.update(user, user_id)

    def erase(self, user_id: str, ctx: Any) -> Iterator[Any]:
        """Forget the member: their state and the timers it names go (a flush timer finds no state), their held
        impressions are never logged, and the writer deletes their pages."""
        self.erased.add(user_id)
        try:
            user: RowsUser | None = self.state.value(user_id)
        except UnreadableState:  # dropped all the same; its timers fire and find nothing
            user = None
        if user is not None:
            for timer in {user.bucket_timer_ms, user.reward_timer_ms} - {0}:
                ctx.timer_service().delete_processing_time_timer(timer)
        self.state.clear(user_id)
        yield ERASE, user_id

    def process_broadcast_element(self, value: Any, ctx: Any) -> None:
        # the newest per title in broadcast state (what a restore rebuilds the cache from), then the cache
        failures = self.decode_failures
        if isinstance(value, CatalogItem) and keep_newest(
                ctx.get_broadcast_state(CATALOG), value.title_id, value,
                lambda known: value.updated_time_ms >= known.updated_time_ms, failures):
            self.shared.describe(value)
        elif isinstance(value, ItemVectors) and keep_newest(
                ctx.get_broadcast_state(ITEMS), value.title_id, value, lambda known: value.version >= known.version,
                failures):
            self.shared.hold(value)
        elif isinstance(value, PublishedPolicies) and keep_newest(
                ctx.get_broadcast_state(POLICIES), value.name, value, lambda known: value.version > known.version,
                failures):
            load_snapshot(self.policies, value.models)  # serve with the learner's newest models
        elif isinstance(value, Experiment) and keep_newest(
                ctx.get_broadcast_state(EXPERIMENTS), value.name, value, lambda known: value.version > known.version,
                failures):
            self.hold_experiment(value)

    def hold_experiment(self, experiment: Experiment) -> None:
        """Serve ``experiment`` from now; one whose overrides this version's config refuses (checked on create,
        so written around it) is counted and not run at all, so none of its variants is measured."""
        refused = hold(self.experiments, experiment, lambda v: variant_settings(self.settings, v.settings("rows")))
        if refused:
            (self.bad_overrides if refused == "override" else self.over_limit).inc()

    def variant(self, user_id: str, user: RowsUser, now: int) -> tuple[HomepageSettings, Any, tuple[str, ...]]:
        """The homepage settings, policies and experiment labels this member's page is built with now."""
        if not self.experiments:
            return self.settings.homepage, self.policies, ()
        exposure = Exposure(user.country or None, user.device_class, self.tenure.segment(user.features.profile.version),
                            user.maturity_limit)
        assignments = assign(self.experiments.values(), user_id, exposure, now)
        if not assignments:
            return self.settings.homepage, self.policies, ()
        self.in_experiments.inc()
        labels = tuple(a.label for a in assignments)
        overrides = tuple(sorted(settings_for(assignments, "rows").items()))
        if not overrides:
            return self.settings.homepage, self.policies, labels
        settings = self.variants.get(overrides)
        if settings is None:  # checked when the experiment was held
            settings = self.variants[overrides] = variant_settings(self.settings, dict(overrides))
        return settings.homepage, served_policies(self.policies, settings), labels

    @skips_unreadable_state
    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        # one handler for both timers: a user's flush and their next daypart change rebuild the same page
        self.restore.ensure(ctx)
        user_id = ctx.get_current_key()
        user: RowsUser | None = self.state.value(user_id)
        if user is None:
            return
        now = now_ms()
        user.flush_armed = 0
        # no daypart timer yet, or this is it: set the next, for users seen in the last week only
        if timestamp >= user.bucket_timer_ms and now - user.context_ms < ACTIVE_MS:
            user.bucket_timer_ms = next_daypart_ms(now, user.utc_offset_minutes)
            ctx.timer_service().register_processing_time_timer(user.bucket_timer_ms)
        signals = user.signals()
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
            # logged for off-policy evaluation (the impression-outcomes topic); one element for all of
            # them: every element of this operator goes to three filters
            records = [outcome_record(user_id, outcome, user.bucket(outcome.shown_ms),
                                      weekday(outcome.shown_ms, user.utc_offset_minutes), now)
                       for outcome in outcomes]
            yield OUTCOME, user_id.encode(), [self.codec.encode_record("impression_outcome", r) for r in records]
        self.state.update(user, user_id)
        viewer = Viewer(user_id, user.country, user.maturity_limit, now)
        shared = self.shared.current(now, self.features)
        homepage, policies, experiments = self.variant(user_id, user, now)
        rows = presented_homepage(signals, shared, viewer, user.bucket(now), weekday(now, user.utc_offset_minutes),
                                  homepage, policies, self.rng, user.themes, experiments)
        self.built.inc()
        yield PAGE, user_id, user.bucket(now), stored_rows(rows), model_versions(user), user.last_event_id, now


class PolicyLearner(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by policy set (one key): the shared models learn every lesson and publish at most every
    ``policy_publish_ms`` to policy-updates, from where every homepage builder serves with them."""

    def __init__(self, settings: RowsJobConfig) -> None:
        self.settings = settings

    def open(self, runtime_context: Any) -> None:
        metrics = runtime_context.get_metrics_group()
        self.state = KeyedState(runtime_context, "policy-learner", EventCount(metrics, "state_decode_failures"))
        self.codec = job_codec(runtime_context)
        self.applied = EventCount(metrics, "lessons_applied")

    @skips_unreadable_state
    def process_element(self, value: Any, ctx: Any) -> None:
        state: PolicyLearnerState = self.state.value() or PolicyLearnerState(new_policies(self.settings))
        if isinstance(value, PublishedPolicies):
            changed = state.adopt(value)  # a restart with no checkpoint: go on from the newest published
        else:
            self.applied.inc(state.learn(value[1]))
            changed = True
        if changed and not state.armed:
            arm_timer(ctx, self.settings.policy_publish_ms)
            state.armed = True
        self.state.update(state)

    @skips_unreadable_state
    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        state: PolicyLearnerState | None = self.state.value()
        if state is None:
            return
        state.armed = False
        self.state.update(state)
        record = policy_update_record(state, now_ms())
        yield kafka_row(POLICY_SET.encode(), self.codec.encode_record("policy_update", record))


class WriteHomepage(CassandraWriter, ProcessFunction):  # type: ignore[misc]
    """A built page -> its row in the homepage table (the whole page of one bucket in one CQL row)."""

    store_type = HomepageStore

    def open(self, runtime_context: Any) -> None:
        self.open_store()

    def process_element(self, value: Any, ctx: Any) -> None:
        if value[0] == ERASE:  # after any page of theirs queued before
            self.store.erase_member(value[1])
            return
        _, user_id, bucket, rows, versions, last_event_id, generated_ms = value
        self.store.write_homepage(user_id, bucket, rows, versions, generated_ms, last_event_id)
