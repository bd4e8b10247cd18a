"""Every Flink operator of every job, driven in-process through the fakes of ``tests/flink_fakes.py``.

One scenario per operator class (``SCENARIOS``); a test checks that no operator is left without one.
No broker, no Cassandra, no JVM.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from pyflink.datastream.functions import Function

from connectors.codec import EventCodec
from connectors.events import Availability, BrowseEvent, Context, ErasureRequest, PlayEvent, RatingEvent, ShownItem
from connectors.privacy import erasure_digest
from jobs.dedupe import content_fingerprint
from jobs.features.sessions import SessionAggregates
from jobs.features.user_state import TitleInfo
from jobs.flink.features import operators as features
from jobs.flink.features.config import FeatureJobConfig
from jobs.flink.learning import operators as learning
from jobs.flink.learning.config import LearningJobConfig
from jobs.flink.rows import operators as rows
from jobs.flink.rows.config import RowsJobConfig
from jobs.models.blend import PublishedBlend
from jobs.models.content import TitleText
from jobs.models.online import (
    MODEL_VERSION,
    SEEN_CONTENT_BITS,
    ItemModel,
    ItemStep,
    ItemVectors,
    LearningConfig,
    apply_step,
)
from jobs.runtime import DecodeEvents
from tests import factories
from tests.flink_fakes import FakeStores, OperatorHarness

MIN = 60_000
CODEC = EventCodec()
CTX = Context("tv-1", "TV", "US", 0)
OPERATOR_MODULES = ("jobs.runtime", "jobs.flink.features.operators", "jobs.flink.learning.operators",
                    "jobs.flink.rows.operators", "jobs.flink.metrics.operators")


def _record(row: Any) -> dict[str, Any]:
    """The Avro record inside a (k, v) row for a Kafka sink."""
    return CODEC.decode(bytes(row[1])).record  # type: ignore[no-any-return]


def _old(minutes_ago: int) -> int:
    return factories.now_ms() - minutes_ago * MIN


def _arrived(event: Any) -> Any:
    """``event`` as a job reads it from its topic (stamped with its ingest time)."""
    from jobs.decoding import decode_message

    decoded, reason = decode_message(CODEC, CODEC.encode(event), factories.now_ms())
    assert reason is None, reason
    return decoded


# -- the shared decoder ------------------------------------------------------------------------------


def decode_events() -> None:
    harness = OperatorHarness(DecodeEvents("nextwatch-test", dead_letters=True, check_timestamps=True)).open()
    play = factories.make_play()
    out = harness.process(CODEC.encode(play), timestamp=play.event_time_ms)
    assert [e.event_id for e in out.main] == [play.event_id] and not out.side
    # unreadable, and stamped with another time than its event's: both dead-lettered with their reasons
    bad = harness.process(b"\x00junk", timestamp=0).side["dead-letter"]
    skewed = harness.process(CODEC.encode(play), timestamp=play.event_time_ms - 60_000).side["dead-letter"]
    reasons = [_record(row)["reason"] for row in bad + skewed]
    # a 0x00 first byte is the schema registry's framing, which a single-object job does not read
    assert "wire_format = single-object does not read" in reasons[0] and "not event_time_ms" in reasons[1]
    assert _record(bad[0])["original"] == b"\x00junk" and _record(bad[0])["kind"] == "INVALID"
    assert harness.metrics["events_in"] == 3 and harness.metrics["events_invalid"] == 2
    # a job that only counts (learning): nothing dead-lettered, non-feedback events routed to nothing
    counting = OperatorHarness(DecodeEvents("nextwatch-learning", learning.feedback)).open()
    assert counting.process(b"junk").side == {} and counting.metrics["events_invalid"] == 1
    assert counting.process(CODEC.encode(factories.make_scroll())).main == []
    rating = factories.make_rating()
    [(user, event_id, signal)] = counting.process(CODEC.encode(rating)).main
    assert (user, event_id, signal.title_id) == (rating.user_id, rating.event_id, rating.title_id)


# -- the feature job ---------------------------------------------------------------------------------


def decode_catalog() -> None:
    harness = OperatorHarness(features.DecodeCatalog()).open()
    item = factories.make_catalog_item(genres=["Drama"], runtime_minutes=95)
    assert harness.process(CODEC.encode(item)).main == [(item.title_id, TitleInfo(("Drama",), 95))]
    assert harness.process(b"junk").main == [("", None)]


def user_features() -> None:
    settings = FeatureJobConfig(flush_ms=100)
    catalog = {"t1": TitleInfo(("Drama",), 100)}
    harness = OperatorHarness(features.UserFeatures(settings, None, lambda kafka: dict(catalog)),  # type: ignore[arg-type]
                              key=lambda event: event.user_id).open()
    start = _arrived(factories.make_play(action="START", position_ms=0, event_time_ms=_old(10)))
    out = harness.process(start)
    [enriched] = out.side["enriched"]
    assert (enriched[0], enriched[4], enriched[7]) == ("u1", "START", ["Drama"])
    assert harness.process(start).side == {} and harness.metrics["events_duplicate"] == 1
    # an app's retry (a later ingest time) is a duplicate; another event under the same id is applied,
    # and reported as a conflict with the original bytes (on the late-events topic)
    assert harness.process(replace(start, ingest_time_ms=start.ingest_time_ms + 5_000)).side == {}
    assert harness.metrics["events_duplicate"] == 2
    other = replace(start, title_id="t7")
    out = harness.process(other)
    [conflict] = out.side["late"]
    assert out.side["enriched"][0][5] == "t7" and harness.metrics["event_id_conflicts"] == 1
    assert (_record(conflict)["kind"], _record(conflict)["reason_code"]) == ("CONFLICT", "event_id_conflict")
    assert CODEC.decode(_record(conflict)["original"]).record["title_id"] == "t7"
    assert harness.process(other).side == {} and harness.metrics["events_duplicate"] == 3  # its retry
    assert len(harness.pending_timers()) == 1  # one flush per user, however many events
    harness.process(_arrived(factories.make_play(action="PROGRESS", position_ms=20 * MIN, event_time_ms=_old(9))))
    assert len(harness.pending_timers()) == 1
    [(user, profile, last_event_id, cw)] = harness.advance(settings.flush_ms).main
    assert (user, profile.version, profile.total_watch_ms, cw["t1"].position_ms) == ("u1", 3, 20 * MIN, 20 * MIN)
    assert last_event_id.startswith("e-")
    # behind the watermark: routed to late-events with the original bytes, not applied
    harness.watermark = _old(5)
    late = harness.process(_arrived(factories.make_play(title_id="t9", event_time_ms=_old(8)))).side["late"]
    assert _record(late[0])["kind"] == "LATE" and harness.metrics["events_late"] == 1
    # a title from the catalog topic's broadcast is known after a restart, though the snapshot was empty
    harness.process_broadcast(("t2", TitleInfo(("Comedy",), 90)))
    harness.restart(features.UserFeatures(settings, None, lambda kafka: {}))  # type: ignore[arg-type]
    harness.watermark = -(2**63)
    out = harness.process(_arrived(factories.make_play(title_id="t2", action="START", position_ms=0,
                                                       event_time_ms=_old(4))))
    assert out.side["enriched"][0][7] == ["Comedy"]
    assert harness.metrics["events_applied"] == 1  # a new instance counts afresh


def write_user_features() -> None:
    stores = FakeStores()
    harness = OperatorHarness(features.WriteUserFeatures(stores)).open()
    from jobs.features.user_state import InProgress, Profile

    profile = Profile(version=3, updated_ms=5, recent_searches=["alien"])
    changes = {"t1": InProgress(10, 100, 5, "pb"), "t2": None}
    [row] = harness.process(("u1", profile, "e3", changes)).main
    [(user, written, last_event_id, cw, _written_ms)] = stores.calls("write_user_features")
    assert (user, written.version, last_event_id, cw) == ("u1", 3, "e3", changes)
    assert _record(row)["version"] == 3 and _record(row)["recent_searches"] == ["alien"] and bytes(row[0]) == b"u1"
    harness.close()
    assert stores.closed == 1


def write_sessions() -> None:
    stores = FakeStores()
    harness = OperatorHarness(features.WriteSessions(stores)).open()
    start = _old(60)
    aggregates = SessionAggregates("u1", start, start + 40 * MIN, 2, 1, 2, 30 * MIN, 4, 1, 0, 9, "Drama,Drama,",
                                   "TV", 0)
    [row] = harness.process(tuple(aggregates.__dict__.values())).main
    [(session,)] = stores.calls("write_session")
    assert (session.user_id, session.start_ms, session.impressions) == ("u1", start, 4)
    assert _record(row)["ctr"] == 0.25 and _record(row)["event_id"] == f"u1:{start}"


def coalesce_trending() -> None:
    stores = FakeStores()
    harness = OperatorHarness(features.CoalesceTrending(stores, stats_flush_ms=500), key=lambda row: row[0]).open()
    harness.process(("global", 1, "t1", 5, "2026-09-21 10:00:00"))
    harness.process(("global", 1, "t2", 7, "2026-09-21 10:05:00"))  # a newer window replaces it
    harness.process(("global", 2, "t1", 6, "2026-09-21 10:05:00"))
    harness.process(("global", 1, "t9", 99, "2026-09-21 09:55:00"))  # an older one is ignored
    assert len(harness.pending_timers()) == 1
    harness.advance(500)
    end = features.millis("2026-09-21 10:05:00")
    assert stores.calls("write_trending") == [("global", end, {1: ("t2", 7), 2: ("t1", 6)})]


def write_item_stats() -> None:
    stores = FakeStores()
    harness = OperatorHarness(features.WriteItemStats(stores)).open()
    harness.process(("t1", "t1-art0", 1, 200, 10, 6, 2, 4))  # is_total: stored under artwork ''
    [(title_id, artwork_id, *counts, _updated_ms)] = stores.calls("write_item_stats")
    assert (title_id, artwork_id, counts) == ("t1", "", [200, 10, 6, 2, 4])


# -- the learning job --------------------------------------------------------------------------------


def decode_shared() -> None:
    harness = OperatorHarness(learning.DecodeShared()).open()
    item = factories.make_catalog_item()
    assert isinstance(harness.process(CODEC.encode(item)).main[0], TitleText)
    record = _item_vectors_record("t1", MODEL_VERSION)
    assert isinstance(harness.process(CODEC.encode_record("item_vectors", record)).main[0], ItemVectors)
    other = _item_vectors_record("t1", "another-model")
    assert harness.process(CODEC.encode_record("item_vectors", other)).main == [None]
    assert harness.process(b"junk").main == [None]


def _item_vectors_record(title_id: str, model_version: str) -> dict[str, Any]:
    vectors = ItemVectors.initial(title_id, LearningConfig())
    from jobs.records.item_vectors import item_vectors_record

    return {**item_vectors_record(vectors, 0), "model_version": model_version}


def _ratings(user: str, titles: list[str], minutes_ago: int = 30) -> list[tuple[str, str, Any]]:
    from jobs.models.feedback import feedback_from_event

    out = []
    for n, title in enumerate(titles):
        event = RatingEvent(user, _old(minutes_ago - n), CTX, title, "STARS", 5.0, event_id=f"{user}-{title}")
        out.append((user, event.event_id, feedback_from_event(event)))
    return out


def user_learner() -> None:
    settings = LearningJobConfig(warm_start=False, flush_ms=100)
    stores = FakeStores()
    harness = OperatorHarness(learning.UserLearner(settings, stores), key=lambda value: value[0]).open()
    for title in ("t1", "t2", "t3"):
        harness.process_broadcast(ItemVectors.initial(title, LearningConfig()))
    ratings = _ratings("u1", ["t1", "t2"])
    out = harness.process_all(ratings)
    assert out.main == [] and out.side == {}  # the item steps wait for the member's flush
    assert harness.process(ratings[0]).main == [] and harness.metrics["events_duplicate"] == 1
    flushed = harness.advance(settings.flush_ms)
    [(user, model, picks, blend)] = flushed.main
    assert user == "u1" and model.version == 2 and "t3" in [p.title_id for p in picks]
    assert blend.startswith("new v0: item_cf=")  # two events: a new member, served the new members' blend
    # both events' steps, one batch per title: t1's rating, implicit and co-watch steps travel together
    [batches] = flushed.side["item-steps"]
    by_title = dict(batches)
    assert len(by_title) == len(batches) and set(by_title) >= {"t1", "t2"}
    assert all(isinstance(step, ItemStep) for step in by_title["t1"])
    assert {step.step_id.split(":")[0] for step in by_title["t1"]} == {"u1-t1", "u1-t2"}
    assert harness.advance(settings.flush_ms).side == {}  # sent once
    # another feedback under a used event id is learned too, its steps under an id qualified by its content
    user_id, event_id, feedback = ratings[0]
    harness.process((user_id, event_id, replace(feedback, title_id="t3", rating=1.0)))
    assert harness.metrics["feedback_applied"] == 3 and harness.metrics["events_duplicate"] == 1
    [conflicting] = harness.advance(settings.flush_ms).side["item-steps"]
    assert {step.step_id.split(":")[0] for _, steps in conflicting for step in steps} == {
        f"{event_id}#{content_fingerprint(replace(feedback, title_id='t3', rating=1.0), SEEN_CONTENT_BITS):016x}"}
    # thread mode (no side output from timers there): each event's steps go as it is learned
    unheld = OperatorHarness(learning.UserLearner(settings, FakeStores(), hold_steps=False),
                             key=lambda value: value[0]).open()
    out = unheld.process_all(_ratings("u1", ["t1", "t2"]))
    assert len(out.side["item-steps"]) == 2 and unheld.advance(settings.flush_ms).side == {}
    # no warm start: Cassandra is asked for the erasure ledger only
    assert [call for call in stores.log if call[0] != "ErasureStore"] == []
    # a restored instance refills its item table from broadcast state on its first timer or element
    harness.process_broadcast(PublishedBlend("new", 3, {"popularity": 1.0}))  # the blend learner moved it
    harness.process(_ratings("u1", ["t3"])[0])
    harness.restart(learning.UserLearner(settings, stores))
    [(_, _, _, blend)] = harness.advance(settings.flush_ms).main
    assert set(harness.operator.table.items) == {"t1", "t2", "t3"}
    assert blend.startswith("new v3: item_cf=0,") and "popularity=1," in blend  # restored from broadcast state
    # the in-job evaluation tests a sample of members, by their id: none at share 0, every one at 1
    for share, tested in ((0.0, 0), (1.0, 1)):
        sampled = OperatorHarness(learning.UserLearner(replace(settings, evaluate_share=share), FakeStores()),
                                  key=lambda value: value[0]).open()
        for title in ("t1", "t2"):
            sampled.process_broadcast(ItemVectors.initial(title, LearningConfig()))
        out = sampled.process_all(_ratings("u2", ["t1", "t2"]))
        assert sampled.metrics["eval_touches"] == tested and sampled.metrics["feedback_applied"] == 2
        # each tested touch also tells the blend learner how the segment's candidate blends ranked it, with
        # the member's flush (as the item steps)
        assert "blend-observations" not in out.side
        observations = sampled.advance(settings.flush_ms).side.get("blend-observations", [])
        assert len(observations) == tested
        if observations:
            [observation] = observations
            candidates = settings.blends().learners["new"].candidates
            assert (observation.segment, observation.version, len(observation.hits)) == ("new", 0, len(candidates))


def warm_started_user_learner() -> None:
    from types import SimpleNamespace

    settings = LearningJobConfig(warm_start=True)
    stored = SimpleNamespace(model_version=MODEL_VERSION, rating_vector=[0.1] * 16, rating_bias=0.2, ratings=4,
                             implicit_vector=[0.1] * 32, recent_titles=["t1"], recent_event_hashes=[],
                             version=4, last_event_id="e4", updated_time=datetime(2026, 9, 1),
                             content_profile=[], recent_searches={}, user_id="u1")
    stores = FakeStores({"rows": lambda statement, *params: [stored] if statement != "get_all_item_vectors" else []})
    harness = OperatorHarness(learning.UserLearner(settings, stores), key=lambda value: value[0]).open()
    harness.process(_ratings("u1", ["t2"])[0])
    [(_, model, _, blend)] = harness.advance(settings.flush_ms).main
    assert blend.startswith("growing v0: ")  # five events: growing
    assert model.version == 5 and model.recent[-2:] == ["t1", "t2"]  # went on from the stored row
    assert ("get_user_vectors", "u1") in stores.calls("rows")


def split_steps() -> None:
    from jobs.flink.learning.operators import SplitSteps

    first, second = ("t1", [ItemStep("t1", "e:pos:0", "implicit")]), ("t2", [ItemStep("t2", "e:neg:0", "implicit")])
    assert OperatorHarness(SplitSteps()).open().process([first, second]).main == [first, second]



def held_steps_bounded() -> None:
    settings = LearningJobConfig(warm_start=False, flush_ms=100)
    harness = OperatorHarness(learning.UserLearner(settings, FakeStores()), key=lambda value: value[0]).open()
    for title in ("t1", "t2", "t3", "t4"):
        harness.process_broadcast(ItemVectors.initial(title, LearningConfig()))
    titles = [f"x{n}" for n in range(300)]  # each new title: co-watch steps to the last twenty
    sent = harness.process_all(_ratings("u1", titles, minutes_ago=400)).side["item-steps"]  # before the flush
    assert sent and all(sum(len(steps) for _, steps in batches) >= learning.MAX_HELD_STEPS for batches in sent)


def encode_user_update() -> None:
    from jobs.models.online import UserModel
    from jobs.models.signals import Pick

    harness = OperatorHarness(learning.EncodeUserUpdate()).open()
    [row] = harness.process(("u1", UserModel(version=7, last_event_id="e7"), [Pick("t1", 0.9, "item_cf")],
                             "growing v0: item_cf=1")).main
    record = _record(row)
    assert (record["user_id"], record["version"], record["pick_ids"]) == ("u1", 7, ["t1"])


def write_user_vectors() -> None:
    from jobs.models.online import UserModel
    from jobs.models.signals import Pick

    stores = FakeStores()
    harness = OperatorHarness(learning.WriteUserVectors(stores)).open()
    harness.process(("u1", UserModel(version=2), [Pick("t1", 0.9, "item_cf")], "new v2: item_cf=1"))
    [(user, model, picks, blend, model_version, _written_ms)] = stores.calls("write_user")
    assert (user, model.version, picks, blend, model_version) == ("u1", 2, [Pick("t1", 0.9, "item_cf")],
                                                                   "new v2: item_cf=1", MODEL_VERSION)


def neural_trainer() -> None:
    from jobs.records.neural_update import published_neural

    settings = LearningJobConfig(neural=True, neural_publish_ms=1_000)
    examples = [(("t1",), "t2"), (("t1", "t2"), "t3"), (("t2",), "t3"), (("t3",), "t1")] * 2

    def trainer() -> OperatorHarness:
        return OperatorHarness(learning.NeuralTrainer(settings), key=lambda value: learning.TRAINER_KEY).open()

    harness = trainer()
    harness.process_all(examples[:4])  # a batch of four: one training step
    assert harness.metrics["neural_steps"] == 1 and harness.metrics["neural_examples"] == 4
    published = [published_neural(_record(row)) for row in harness.advance(settings.neural_publish_ms).main]
    assert {p.key for p in published if p} == {"encoder", "t1", "t2", "t3"}
    assert {p.version for p in published if p} == {1}
    # a restart between publishes learns the examples since the weights were saved again: nothing lost
    harness.process_all(examples[4:6])
    harness.restart(learning.NeuralTrainer(settings))
    harness.process_all(examples[6:])
    restored = [published_neural(_record(row)) for row in harness.advance(settings.neural_publish_ms).main]
    never_stopped = trainer()
    never_stopped.process_all(examples)
    whole = [published_neural(_record(row)) for row in never_stopped.advance(settings.neural_publish_ms).main]
    assert [(p.key, p.version) for p in restored if p] == [(p.key, p.version) for p in whole if p]
    for a, b in zip(restored, whole, strict=True):
        assert a is not None and b is not None
        np.testing.assert_allclose(a.vector, b.vector, rtol=1e-6)
    # the user side: each touch of a title not among the member's last ones is an example for the trainer
    users = OperatorHarness(learning.UserLearner(replace(settings, warm_start=False), FakeStores()),
                            key=lambda value: value[0]).open()
    users.process_all(_ratings("u1", ["t1", "t2"]))
    assert users.advance(settings.flush_ms).side["neural-examples"] == [(("t1",), "t2")]  # with the flush
    unheld = OperatorHarness(learning.UserLearner(replace(settings, warm_start=False), FakeStores(), hold_steps=False),
                             key=lambda value: value[0]).open()
    assert unheld.process_all(_ratings("u1", ["t1", "t2"])).side["neural-examples"] == [(("t1",), "t2")]
    for weights in whole:
        users.process_broadcast(weights)
    assert users.operator.table.encoder and users.operator.table.neural_versions["t2"] == 2
    users.restart(learning.UserLearner(replace(settings, warm_start=False), FakeStores()))
    users.process(_ratings("u1", ["t3"])[0])
    assert users.operator.table.encoder  # refilled from broadcast state


def blend_learner() -> None:
    from jobs.models.signals import BlendObservation
    from jobs.records.blend_update import published_blend

    settings = LearningJobConfig(blend_step_every=2)
    candidates = settings.blends().learners["new"].candidates
    best = len(candidates) - 1
    hits = tuple(n == best for n in range(len(candidates)))  # only the last candidate finds the titles
    harness = OperatorHarness(learning.BlendLearner(settings), key=lambda value: value.segment).open()
    [row] = harness.process_all([BlendObservation("new", 0, hits)] * 2).main  # a move every 2 touches
    record = _record(row)
    assert (record["segment"], record["version"], record["touches"]) == ("new", 1, 2)
    assert record["weights"] == candidates[best] and record["hit_rate"] == 1.0
    assert harness.metrics["blend_moves"] == 1 and harness.metrics["blend_touches_credited"] == 2
    assert harness.process(BlendObservation("new", 0, hits)).main == []  # in flight when the blend moved
    assert harness.metrics["not_applied_blend_touch_stale"] == 1
    # a restart goes on from its state; a new job without state adopts the newest published blend
    moved = settings.blends().learners["new"]
    moved.serve(candidates[best], 1)
    again = tuple(n == 0 for n in range(len(moved.candidates)))  # now the serving one finds them: no move
    harness.restart(learning.BlendLearner(settings))
    assert harness.process_all([BlendObservation("new", 1, again)] * 2).main == []
    assert harness.metrics["blend_touches_credited"] == 2 and harness.metrics["not_applied_blend_touch_stale"] == 0
    fresh = OperatorHarness(learning.BlendLearner(settings), key=lambda value: value.segment).open()
    assert fresh.process(published_blend(record)).main == []  # adopted, not published again
    assert fresh.process(PublishedBlend("veteran", 9, {"popularity": 1.0})).main == []  # a segment of other code
    assert fresh.metrics["not_applied_blend_unknown_segment"] == 1
    fresh.process(BlendObservation("new", 1, again))
    assert fresh.metrics["blend_touches_credited"] == 1


def item_learner() -> None:
    settings = LearningJobConfig(warm_start=False, publish_ms=500, snapshot_ms=0)
    stores = FakeStores()
    users = OperatorHarness(learning.UserLearner(settings, FakeStores()), key=lambda value: value[0]).open()
    split = OperatorHarness(learning.SplitSteps()).open()
    users.process_all(_ratings("u1", ["t1", "t2"]) + _ratings("u2", ["t2", "t1"]))
    steps = split.process_all(users.advance(settings.flush_ms).side["item-steps"]).main
    harness = OperatorHarness(learning.ItemLearner(settings, stores), key=lambda batch: batch[0]).open()
    harness.process_all(steps)
    assert harness.metrics["item_steps_applied"] > 0
    published = [_record(row) for row in harness.advance(settings.publish_ms).main]
    assert {r["title_id"] for r in published} == {"t1", "t2"} and all(r["version"] >= 1 for r in published)
    assert {vectors.title_id for vectors, *_ in stores.calls("write_item")} == {"t1", "t2"}  # the snapshot
    again = harness.process_all(steps)  # redelivered steps move nothing
    assert again.main == [] and harness.advance(settings.publish_ms).main == []


# -- the rows job ------------------------------------------------------------------------------------


def decode_records() -> None:
    harness = OperatorHarness(rows.DecodeRecords()).open()
    update = {"schema_version": 1, "event_id": "u1:1", "user_id": "u1", "model_version": MODEL_VERSION,
              "version": 1, "last_event_id": "e1", "updated_ms": 0, "pick_ids": [], "pick_scores": [],
              "pick_reasons": [], "recent_titles": [], "content_profile": [], "ingest_time_ms": 0}
    [(user, kind, decoded)] = harness.process(CODEC.encode_record("user_update", update)).main
    assert (user, kind, decoded.version, decoded.last_event_id) == ("u1", "update", 1, "e1")
    stale = {**update, "model_version": "another-model"}
    assert harness.process(CODEC.encode_record("user_update", stale)).main == [None]
    item = factories.make_catalog_item()
    assert harness.process(CODEC.encode(item)).main[0].title_id == item.title_id
    assert harness.process(b"junk").main == [None]


def _catalog(n: int) -> list[Any]:
    return [factories.make_catalog_item(title_id=f"t{k}", genres=["Drama" if k % 2 else "Comedy"],
                                        maturity_rating="ALL", availability=Availability(_old(60 * 24 * 30)))
            for k in range(n)]


def homepage_builder() -> None:
    settings = RowsJobConfig(flush_ms=100, explore_share=0.0, row_order_epsilon=0.0, artwork_epsilon=0.0,
                             shared_refresh_ms=1, reward_window_ms=60_000)
    stores = FakeStores({"maturity_limit": lambda user: "EIGHTEEN_PLUS"})
    harness = OperatorHarness(rows.HomepageBuilder(settings, stores), key=lambda value: value[0]).open()
    for item in _catalog(6):
        harness.process_broadcast(item)
    done = PlayEvent("u1", _old(30), CTX, "t1", "COMPLETE", "pb", 3_600_000, 3_600_000, event_id="e1")
    shown = BrowseEvent(user_id="u1", event_time_ms=_old(29), context=CTX, action="IMPRESSION",
                        impression_id="imp-1", page="home", row_id="genre:Comedy",
                        items=[ShownItem("t2", 0, "t1-art0")], event_id="e2")
    harness.process_all([("u1", "event", done), ("u1", "event", shown)])
    assert harness.process(("u1", "event", done)).main == [] and harness.metrics["duplicates"] == 1
    out = harness.advance(settings.flush_ms)
    [page] = [value for value in out.main if value[0] == rows.PAGE]
    _, user, bucket, stored, versions, last_event_id, _ = page
    assert (user, last_event_id, versions["rows"]) == ("u1", "e2", "rows-v1") and ":" in bucket
    assert "t1" not in [i.title_id for r in stored for i in r.items]  # completed: never recommended
    # the impression's reward window (event time) is long closed: its outcome is logged and taught
    assert [value[0] for value in out.main if value[0] != rows.PAGE] == [rows.LESSONS, rows.OUTCOME]
    [(_, key, logged)] = [value for value in out.main if value[0] == rows.OUTCOME]  # one element, every record
    assert key == b"u1" and [_record(("", raw))["impression_id"] for raw in logged] == ["imp-1"]
    # a restored instance builds the next page from the catalog in broadcast state, even on a timer
    harness.process(("u1", "event", PlayEvent("u1", _old(1), CTX, "t3", "START", "pb3", 0, 3_600_000)))
    harness.restart(rows.HomepageBuilder(settings, stores))
    [page] = [v for v in harness.advance(settings.flush_ms).main if v[0] == rows.PAGE]
    assert any(r.row_id.startswith("genre:") for r in page[3])
    harness.close()
    assert stores.closed == 3  # the erasure ledger after each of two opens, then the stores


def policy_learner() -> None:
    settings = RowsJobConfig(policy_publish_ms=200)
    builder_settings = RowsJobConfig(flush_ms=100, reward_window_ms=60_000)
    stores = FakeStores({"maturity_limit": lambda user: "EIGHTEEN_PLUS"})
    builder = OperatorHarness(rows.HomepageBuilder(builder_settings, stores), key=lambda v: v[0]).open()
    for item in _catalog(3):
        builder.process_broadcast(item)
    shown = BrowseEvent(user_id="u1", event_time_ms=_old(29), context=CTX, action="IMPRESSION",
                        impression_id="imp-1", page="home", row_id="top_picks",
                        items=[ShownItem("t2", 0, "t1-art0")], presentation_token="v1;rows-eg-1+art-eg-1;1;1;0")
    builder.process(("u1", "event", shown))
    [lessons] = [v for v in builder.advance(100).main if v[0] == rows.LESSONS]
    harness = OperatorHarness(rows.PolicyLearner(settings), key=lambda value: "homepage").open()
    harness.process(lessons)
    harness.process(lessons)
    assert len(harness.pending_timers()) == 1 and harness.metrics["lessons_applied"] == 2 * len(lessons[1])
    [row] = harness.advance(settings.policy_publish_ms).main
    record = _record(row)
    assert record["version"] == 2 * len(lessons[1]) and bytes(row[0]) == b"homepage"
    # a restart with no checkpoint goes on from the newest published models, never from an older one
    from jobs.records.policy_update import published_policies

    fresh = OperatorHarness(rows.PolicyLearner(settings), key=lambda value: "homepage").open()
    fresh.process(published_policies(record))
    [again] = fresh.advance(settings.policy_publish_ms).main
    assert _record(again)["version"] == record["version"]


def write_homepage() -> None:
    stores = FakeStores()
    harness = OperatorHarness(rows.WriteHomepage(stores)).open()
    harness.process((rows.PAGE, "u1", "evening:tv", [], {"rows": "rows-v1"}, "e9", 5))
    assert stores.calls("write_homepage") == [("u1", "evening:tv", [], {"rows": "rows-v1"}, 5, "e9")]


def decode_outcomes() -> None:
    from jobs.exploration.rewards import Outcome
    from jobs.flink.metrics import operators as metrics
    from jobs.records.impression_outcome import outcome_record

    harness = OperatorHarness(metrics.DecodeOutcomes()).open()
    outcome = Outcome("imp-1", "top_picks", 0, "t1", 2, "t1-art0", True, False, "p", 1.0, 1.0, False, 5, ("d:v",))
    record = CODEC.encode_record("impression_outcome", outcome_record("u1", outcome, "evening:tv", "mon", 6))
    assert harness.process(record).main == [("u1", "outcome", ("imp-1:2", True, False, 5))]
    assert harness.process(b"junk").main == [None]
    assert harness.process(CODEC.encode(factories.make_play())).main == [None]  # not an outcome
    assert harness.metrics["not_applied_unreadable_record"] == 2


def _exposure(user: str, event_id: str, labels: tuple[str, ...], minutes_ago: int) -> BrowseEvent:
    from jobs.exploration.rewards import PresentationToken

    token = PresentationToken("p", 1.0, (1.0,), (False,), labels).encode()
    return BrowseEvent(user_id=user, event_time_ms=_old(minutes_ago), context=CTX, action="IMPRESSION",
                       impression_id=f"imp-{event_id}", page="home", row_id="top_picks",
                       items=[ShownItem("t1", 0, None)], presentation_token=token, event_id=event_id)


def member_metrics() -> None:
    from jobs.flink.metrics import operators as metrics

    harness = OperatorHarness(metrics.MemberMetricsFunction(), key=lambda value: value[0]).open()
    entered = harness.process(("u1", "event", _exposure("u1", "e1", ("div:more",), 30))).main
    assert [label for label, _ in entered] == ["div:more"] and harness.metrics["exposures"] == 1
    assert {d.metric for d in entered[0][1]} == {"ctr", "play_rate", "watch_minutes", "active_d1", "active_d7"}
    [(label, deltas)] = harness.process(("u1", "outcome", ("imp-e1:0", True, True, _old(29)))).main
    assert label == "div:more" and {d.metric for d in deltas} == {"ctr", "play_rate"}
    assert harness.process(("u1", "outcome", ("imp-e1:0", True, True, _old(29)))).main == []  # redelivered
    assert harness.metrics["duplicates"] == 1
    play = PlayEvent("u1", _old(20), CTX, "t1", "STOP", "pb", 600_000, 3_600_000, event_id="e3")
    [(_, deltas)] = harness.process(("u1", "event", play)).main
    assert [(d.metric, d.totals.sum_x) for d in deltas] == [("watch_minutes", 10.0)]
    bad = replace(_exposure("u1", "e4", (), 10), presentation_token="v9;garbage")
    assert harness.process(("u1", "event", bad)).main == [] and harness.metrics["unreadable_tokens"] == 1
    # another member, never exposed: activity only, nothing to emit
    assert harness.process(("u2", "event", play)).main == [] and harness.metrics["events_applied"] == 5


def variant_sums() -> None:
    from jobs.experiments.metrics import MemberMetrics
    from jobs.flink.metrics import operators as metrics
    from jobs.flink.metrics.config import MetricsJobConfig

    settings = MetricsJobConfig(flush_ms=500)
    harness = OperatorHarness(metrics.VariantSumsFunction(settings), key=lambda value: value[0]).open()
    members = [MemberMetrics() for _ in range(3)]
    for n, member in enumerate(members):
        harness.process(("div:more", member.exposure(f"e{n}", ["div:more"], _old(30), "TV")))
        harness.process(("div:more", member.outcome(f"o{n}", n == 0, False, _old(29))))
    assert len(harness.pending_timers()) == 1
    rows = harness.advance(settings.flush_ms).main
    ctr = {(segment): totals for experiment, variant, _, segment, metric, totals, _ in rows if metric == "ctr"}
    assert {(r[0], r[1]) for r in rows} == {("div", "more")} and set(ctr) == {"all", "TV"}
    assert (ctr["all"].n, ctr["all"].sum_x, ctr["all"].sum_y) == (3, 1.0, 3.0)
    assert harness.advance(settings.flush_ms).main == []  # nothing changed since


def write_metrics() -> None:
    from jobs.experiments.stats import Totals
    from jobs.flink.metrics import operators as metrics

    stores = FakeStores()
    harness = OperatorHarness(metrics.WriteMetrics(stores)).open()
    sums = Totals(3, 1.0, 3.0)
    harness.process(("div", "more", 20_000, "all", "ctr", sums, 5))
    assert stores.calls("write_sums") == [("div", 20_000, "more", "all", "ctr", sums, 5)]


def _from_newer_code(cls: type[Any]) -> bytes:
    """Keyed state of ``cls`` as a newer version of the code would pickle it: this code cannot read it."""
    import pickle

    class FromNewerCode:
        def __reduce__(self) -> Any:
            return object.__new__, (cls,), (cls.STATE_VERSION + 1, "a shape from the future")

    return pickle.dumps(FromNewerCode())


def _erase(user: str) -> ErasureRequest:
    return ErasureRequest(user, _old(0))


def _ledger(*members: str) -> FakeStores:
    """Stores whose erasure ledger lists ``members`` (as digests)."""
    return FakeStores({"digests": lambda: {erasure_digest(member) for member in members},
                       "erased": lambda member: member in members})


def user_features_erasure() -> None:
    settings = FeatureJobConfig(flush_ms=100)
    harness = OperatorHarness(features.UserFeatures(settings, None, lambda kafka: {}, stores=_ledger("u9")),  # type: ignore[arg-type]
                              key=lambda event: event.user_id).open()
    harness.process_all(_arrived(factories.make_play(user_id=user, event_time_ms=_old(10))) for user in ("u1", "u2"))
    assert harness.process(_erase("u1")).main == [("u1", None, "erase:u1", None)]
    assert "u1" not in harness.keys_with_state() and "u2" in harness.keys_with_state()
    # nothing of theirs again: not their replayed events, not even to late-events; a member in the ledger neither
    harness.watermark = _old(5)
    for user in ("u1", "u9"):
        assert harness.process(_arrived(factories.make_play(user_id=user, event_time_ms=_old(8)))).side == {}
    assert harness.metrics["not_applied_erased_member"] == 2 and harness.metrics["events_late"] == 0
    flushed = harness.advance(settings.flush_ms).main  # u1's flush timer finds nothing
    assert [user for user, *_ in flushed] == ["u2"]


def write_user_features_erasure() -> None:
    stores = FakeStores()
    harness = OperatorHarness(features.WriteUserFeatures(stores)).open()
    assert harness.process(("u1", None, "erase:u1", None)).main == []
    assert stores.calls("erase_member") == [("u1",)] and stores.calls("write_user_features") == []


def write_sessions_erasure() -> None:
    stores = _ledger("u1")
    harness = OperatorHarness(features.WriteSessions(stores)).open()
    start = _old(60)

    def session(user: str) -> tuple[Any, ...]:
        aggregates = SessionAggregates(user, start, start + MIN, 1, 0, 0, MIN, 0, 0, 0, 1, "", "TV", 0)
        return tuple(aggregates.__dict__.values())

    assert harness.process(session("u1")).main == [] and harness.metrics["not_applied_erased_member"] == 1
    assert len(harness.process(session("u2")).main) == 1
    assert [s.user_id for (s,) in stores.calls("write_session")] == ["u2"]


def user_learner_erasure() -> None:
    settings = LearningJobConfig(warm_start=False, flush_ms=100)
    harness = OperatorHarness(learning.UserLearner(settings, _ledger("u9")), key=lambda value: value[0]).open()
    for title in ("t1", "t2", "t3"):
        harness.process_broadcast(ItemVectors.initial(title, LearningConfig()))
    harness.process_all([*_ratings("u1", ["t1", "t2"]), *_ratings("u2", ["t1"]), *_ratings("u9", ["t1"])])
    erase = _erase("u1")
    assert harness.process(("u1", erase.event_id, erase)).main == [("u1", None, [], "")]
    assert harness.process_all(_ratings("u1", ["t3"], minutes_ago=5)).main == []
    assert harness.metrics["not_applied_erased_member"] == 2  # u9, in the ledger, and u1 since
    assert [user for user, *_ in harness.advance(settings.flush_ms).main] == ["u2"]
    assert harness.keys_with_state() == {"u2"} and "u1" not in harness.operator.peers.histories


def encode_user_update_erasure() -> None:
    harness = OperatorHarness(learning.EncodeUserUpdate()).open()
    assert harness.process(("u1", None, [], "")).main == []


def write_user_vectors_erasure() -> None:
    stores = FakeStores()
    harness = OperatorHarness(learning.WriteUserVectors(stores)).open()
    harness.process(("u1", None, [], ""))
    assert stores.calls("erase_member") == [("u1",)] and stores.calls("write_user") == []


def homepage_builder_erasure() -> None:
    from jobs.homepage.state import RowsUser

    settings = RowsJobConfig(flush_ms=100, shared_refresh_ms=1, reward_window_ms=60_000)
    stores = _ledger("u9")
    stores.answers["maturity_limit"] = lambda user: "EIGHTEEN_PLUS"
    harness = OperatorHarness(rows.HomepageBuilder(settings, stores), key=lambda value: value[0]).open()
    for item in _catalog(6):
        harness.process_broadcast(item)
    for user in ("u1", "u2"):
        shown = BrowseEvent(user_id=user, event_time_ms=_old(1), context=CTX, action="IMPRESSION",
                            impression_id=f"imp-{user}", page="home", row_id="genre:Comedy",
                            items=[ShownItem("t2", 0, "t1-art0")], event_id=f"e-{user}")
        harness.process(("u1" if user == "u1" else "u2", "event", shown))
    assert {key for _, key in harness.pending_timers()} == {"u1", "u2"}
    assert harness.process(("u1", "event", _erase("u1"))).main == [(rows.ERASE, "u1")]
    assert "u1" not in harness.keys_with_state()
    harness.keyed_state["rows-user"]["u3"] = {"value": _from_newer_code(RowsUser)}  # dropped all the same
    assert harness.process(("u3", "event", _erase("u3"))).main == [(rows.ERASE, "u3")]
    assert "u3" not in harness.keys_with_state()
    play = PlayEvent("u1", _old(0), CTX, "t3", "START", "pb", 0, 3_600_000, event_id="e-late")
    assert harness.process_all([("u1", "event", play), ("u9", "event", play)]).main == []
    assert harness.metrics["not_applied_erased_member"] == 2
    out = harness.advance(settings.reward_window_ms * 2)  # every timer of u1 fires or was deleted: nothing
    assert {value[1] for value in out.main if value[0] in (rows.PAGE, rows.OUTCOME)} == {"u2", b"u2"}


def write_homepage_erasure() -> None:
    stores = FakeStores()
    harness = OperatorHarness(rows.WriteHomepage(stores)).open()
    harness.process((rows.ERASE, "u1"))
    assert stores.calls("erase_member") == [("u1",)] and stores.calls("write_homepage") == []


def member_metrics_erasure() -> None:
    from jobs.experiments.metrics import MemberMetrics, VariantSums
    from jobs.flink.metrics import operators as metrics

    harness = OperatorHarness(metrics.MemberMetricsFunction(_ledger("u9")), key=lambda value: value[0]).open()
    sums = VariantSums()
    for user in ("u1", "u2"):
        for _, deltas in harness.process((user, "event", _exposure(user, f"e-{user}", ("div:more",), 30))).main:
            sums.add(deltas)
    for _, deltas in harness.process(("u1", "outcome", ("imp-e-u1:0", True, True, _old(29)))).main:
        sums.add(deltas)
    [(label, withdrawn)] = harness.process(("u1", "event", _erase("u1"))).main
    sums.add(withdrawn)
    assert label == "div:more" and {totals.n for totals in sums.totals.values()} == {1}  # only u2 counted
    assert {totals.sum_x for (_, metric), totals in sums.totals.items() if metric == "ctr"} == {0.0}
    assert harness.keys_with_state() == {"u2"}
    again = _exposure("u1", "e-again", ("div:more",), 5)
    assert harness.process_all([("u1", "event", again), ("u9", "event", again)]).main == []
    assert harness.metrics["not_applied_erased_member"] == 2
    # state this code cannot read is dropped all the same (its totals cannot be taken out of the sums)
    harness.keyed_state["member-metrics"]["u3"] = {"value": _from_newer_code(MemberMetrics)}
    assert harness.process(("u3", "event", _erase("u3"))).main == [] and "u3" not in harness.keys_with_state()


SCENARIOS: dict[str, Callable[[], None]] = {
    "jobs.flink.metrics.operators.DecodeOutcomes": decode_outcomes,
    "jobs.flink.metrics.operators.MemberMetricsFunction": member_metrics,
    "jobs.flink.metrics.operators.VariantSumsFunction": variant_sums,
    "jobs.flink.metrics.operators.WriteMetrics": write_metrics,
    "jobs.runtime.DecodeEvents": decode_events,
    "jobs.flink.features.operators.DecodeCatalog": decode_catalog,
    "jobs.flink.features.operators.UserFeatures": user_features,
    "jobs.flink.features.operators.WriteUserFeatures": write_user_features,
    "jobs.flink.features.operators.WriteSessions": write_sessions,
    "jobs.flink.features.operators.CoalesceTrending": coalesce_trending,
    "jobs.flink.features.operators.WriteItemStats": write_item_stats,
    "jobs.flink.learning.operators.DecodeShared": decode_shared,
    "jobs.flink.learning.operators.UserLearner": user_learner,
    "jobs.flink.learning.operators.UserLearner (warm start)": warm_started_user_learner,
    "jobs.flink.learning.operators.SplitSteps": split_steps,
    "jobs.flink.learning.operators.UserLearner (held steps bounded)": held_steps_bounded,
    "jobs.flink.learning.operators.EncodeUserUpdate": encode_user_update,
    "jobs.flink.learning.operators.WriteUserVectors": write_user_vectors,
    "jobs.flink.learning.operators.BlendLearner": blend_learner,
    "jobs.flink.learning.operators.NeuralTrainer": neural_trainer,
    "jobs.flink.learning.operators.ItemLearner": item_learner,
    "jobs.flink.rows.operators.DecodeRecords": decode_records,
    "jobs.flink.rows.operators.HomepageBuilder": homepage_builder,
    "jobs.flink.rows.operators.PolicyLearner": policy_learner,
    "jobs.flink.rows.operators.WriteHomepage": write_homepage,
    "jobs.flink.features.operators.UserFeatures (erasure)": user_features_erasure,
    "jobs.flink.features.operators.WriteUserFeatures (erasure)": write_user_features_erasure,
    "jobs.flink.features.operators.WriteSessions (erasure)": write_sessions_erasure,
    "jobs.flink.learning.operators.UserLearner (erasure)": user_learner_erasure,
    "jobs.flink.learning.operators.EncodeUserUpdate (erasure)": encode_user_update_erasure,
    "jobs.flink.learning.operators.WriteUserVectors (erasure)": write_user_vectors_erasure,
    "jobs.flink.rows.operators.HomepageBuilder (erasure)": homepage_builder_erasure,
    "jobs.flink.rows.operators.WriteHomepage (erasure)": write_homepage_erasure,
    "jobs.flink.metrics.operators.MemberMetricsFunction (erasure)": member_metrics_erasure,
}


@pytest.mark.parametrize("operator", sorted(SCENARIOS))
def test_operator(operator: str) -> None:
    SCENARIOS[operator]()


def test_every_operator_has_a_scenario() -> None:
    operators = {f"{name}.{cls.__name__}" for name in OPERATOR_MODULES
                 for cls in vars(importlib.import_module(name)).values()
                 if inspect.isclass(cls) and issubclass(cls, Function) and cls.__module__ == name}
    assert operators and operators <= {key.split(" ")[0] for key in SCENARIOS}, operators - set(SCENARIOS)


def test_a_dead_letter_keeps_its_id_across_processes() -> None:
    """A restart re-reads an unreadable message and dead-letters it again: under the same id, though Python
    hashes differently in every process."""
    import os
    import subprocess
    import sys

    script = ("from jobs.runtime import DecodeEvents; from tests.flink_fakes import OperatorHarness; "
              "from connectors.codec import EventCodec; "
              "h = OperatorHarness(DecodeEvents('nextwatch-features', dead_letters=True)).open(); "
              "row = h.process(b'\\x00junk').side['dead-letter'][0]; "
              "print(EventCodec().decode(bytes(row[1])).record['event_id'])")
    ids = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
           for seed in ("1", "2")}
    assert len(ids) == 1 and ids.pop().startswith("nextwatch-features:INVALID:")


def test_state_that_cannot_be_decoded_is_counted_and_left_as_it_is() -> None:
    """Keyed state written by newer code (or in a shape no migration reads): the element is skipped and counted,
    the state stays as it was for a fixed version to read; other keys go on."""
    import pickle

    from jobs.features.user_state import UserState

    class FromNewerCode:
        def __reduce__(self) -> Any:
            return object.__new__, (UserState,), (UserState.STATE_VERSION + 1, "a shape from the future")

    harness = OperatorHarness(features.UserFeatures(FeatureJobConfig(), None, lambda kafka: {}),  # type: ignore[arg-type]
                              key=lambda event: event.user_id).open()
    unreadable = pickle.dumps(FromNewerCode())
    harness.keyed_state["user"] = {"u1": {"value": unreadable}}
    assert harness.process(_arrived(factories.make_play(user_id="u1", event_time_ms=_old(5)))).side == {}
    assert harness.metrics["state_decode_failures"] == 1 and harness.metrics["events_applied"] == 0
    assert harness.keyed_state["user"]["u1"]["value"] == unreadable  # never replaced by an empty state
    harness.process(_arrived(factories.make_play(user_id="u2", event_time_ms=_old(5))))
    assert harness.metrics["events_applied"] == 1 and harness.metrics["state_decode_failures"] == 1


class CountingMapState:
    """A MapState that counts its reads (each a round trip to Java in process mode)."""

    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}
        self.reads = 0

    def get(self, key: str) -> Any:
        self.reads += 1
        return self.entries.get(key)

    def put(self, key: str, value: Any) -> None:
        self.entries[key] = value


def test_cowatch_rows_of_a_new_title_are_not_looked_up_and_hold_what_a_plain_row_holds() -> None:
    state, plain = CountingMapState(), {}
    rows = learning.CowatchRows(state)
    steps = [ItemStep("t1", f"e{n}:cowatch", "cowatch", cowatched=(f"t{n % 5 + 2}",), cowatched_touches=(3.0,))
             for n in range(20)]
    item, reference = (ItemModel(ItemVectors.initial("t1", LearningConfig())) for _ in range(2))
    for step in steps:
        assert apply_step(item, step, LearningConfig(), rows.focus("t1", new_title=step is steps[0]))
        apply_step(reference, step, LearningConfig(), plain)
    assert state.reads == 0 and state.entries == plain and item.candidates == reference.candidates
    assert plain["t2"] == (4.0, 3.0)


def test_cowatch_rows_of_a_restored_title_are_read_once_and_rows_past_the_bound_are_read_again() -> None:
    state = CountingMapState()
    state.entries = {"t2": (5.0, 2.0)}  # restored: written by an earlier instance
    rows = learning.CowatchRows(state, max_entries=2)
    assert rows.focus("t1", new_title=False).get("t2") == (5.0, 2.0)
    assert rows.get("t2") == (5.0, 2.0) and state.reads == 1
    assert rows.get("t3") is None and state.reads == 2  # absent, but the row is not known whole
    other = rows.focus("t9", new_title=True)
    other["a"], other["b"] = (1.0, 1.0), (1.0, 1.0)
    rows.trim()  # three entries held: t1's row, the least recent, goes
    assert "t1" not in rows.rows and rows.entries == 2
    assert rows.focus("t1", new_title=False).get("t2") == (5.0, 2.0) and state.reads == 3


def test_a_member_whose_flush_timer_was_lost_is_flushed_again() -> None:
    """A flag that says a timer is armed, with no timer behind it (a restore that lost it), heals at the
    member's next event: they are not left unflushed for good."""
    settings = FeatureJobConfig(flush_ms=100)
    harness = OperatorHarness(features.UserFeatures(settings, None, lambda kafka: {}),  # type: ignore[arg-type]
                              key=lambda event: event.user_id).open()
    harness.process(_arrived(factories.make_play(action="START", position_ms=0, event_time_ms=_old(10))))
    harness.timers.clear()  # the timer is gone, the flag stays
    state = harness.operator.state.value("u1")
    state.flush_armed = factories.now_ms() - 60_000
    harness.operator.state.update(state, "u1")
    harness.process(_arrived(factories.make_play(action="PROGRESS", position_ms=MIN, event_time_ms=_old(9))))
    [(user, profile, _, _)] = harness.advance(settings.flush_ms).main
    assert (user, profile.version) == ("u1", 2)
    # a recent flag is trusted: no second timer while one is pending
    harness.process(_arrived(factories.make_play(action="PROGRESS", position_ms=2 * MIN, event_time_ms=_old(8))))
    harness.process(_arrived(factories.make_play(action="PROGRESS", position_ms=3 * MIN, event_time_ms=_old(7))))
    assert len(harness.pending_timers()) == 1


def test_homepage_builder_builds_each_member_page_with_their_variant() -> None:
    """Experiments in broadcast state: the variant's settings build the page, every token names the variant;
    members not eligible, and overrides this version refuses, get the defaults; a restart keeps them."""
    from jobs.experiments.assignment import variant_of
    from jobs.experiments.definition import Eligibility, Experiment, Variant
    from jobs.exploration.rewards import PresentationToken
    from jobs.homepage.state import RowsUser

    settings = RowsJobConfig(flush_ms=100, explore_share=0.0, row_order_epsilon=0.0, artwork_epsilon=0.0,
                             shared_refresh_ms=1, diversity=0.3)
    stores = FakeStores({"maturity_limit": lambda user: "EIGHTEEN_PLUS"})
    harness = OperatorHarness(rows.HomepageBuilder(settings, stores), key=lambda value: value[0]).open()
    for item in _catalog(6):
        harness.process_broadcast(item)
    test = Experiment("div", "ranking", "s", (Variant("control"), Variant("diverse", 1.0, {"rows.diversity": "1.0"})),
                      eligibility=Eligibility(device_classes=frozenset({"TV"})), version=2)
    harness.process_broadcast(test)
    harness.process_broadcast(Experiment("div", "ranking", "s", (Variant("a"), Variant("b")), version=1))  # older
    members = [f"u{n}" for n in range(12)]
    for member in members:
        harness.process((member, "event", PlayEvent(member, _old(5), CTX, "t1", "START", f"pb-{member}", 0, 60_000)))
    pages = {v[1]: v[3] for v in harness.advance(settings.flush_ms).main if v[0] == rows.PAGE}
    assert set(pages) == set(members) and harness.metrics["homepages_in_experiments"] == len(members)
    builder = harness.operator
    for member in members:
        expected = variant_of(test, member)
        assert expected is not None
        labels = {PresentationToken.decode(row.token).experiments for row in pages[member]}
        assert labels == {(f"div:{expected.name}",)}
        user = builder.state.value(member)
        homepage, _, _ = builder.variant(member, user, _old(0))
        assert homepage.diversity == (1.0 if expected.name == "diverse" else 0.3)
    assert {variant_of(test, m).name for m in members} == {"control", "diverse"}  # type: ignore[union-attr]
    # on a phone the member is not eligible: defaults, no label
    phone = replace(builder.state.value("u0"), device_class="MOBILE")
    assert builder.variant("u0", phone, _old(0))[2] == () and builder.variant("u0", phone, _old(0))[0].diversity == 0.3
    # a restored instance serves the experiment from broadcast state
    harness.restart(rows.HomepageBuilder(settings, stores))
    harness.process(("u1", "event", PlayEvent("u1", _old(1), CTX, "t2", "START", "pb-again", 0, 60_000)))
    [page] = [v for v in harness.advance(settings.flush_ms).main if v[0] == rows.PAGE]
    assert PresentationToken.decode(page[3][0].token).experiments == (
        f"div:{variant_of(test, 'u1').name}",)  # type: ignore[union-attr]
    # a value this version's config refuses (written around `experiments create`): counted, and the whole
    # experiment is off (serving only its control would skew the split)
    harness.process_broadcast(replace(test, version=3, variants=(Variant("control"),
                                                                  Variant("diverse", 1.0, {"rows.diversity": "7"}))))
    on_tv = RowsUser(device_class="TV")
    for member in members:
        homepage, _, labels = harness.operator.variant(member, on_tv, _old(0))
        assert homepage.diversity == 0.3 and labels == ()
    assert harness.metrics["not_applied_experiment_override"] == 1


def test_user_learner_ranks_picks_by_the_member_variant_blend() -> None:
    """An experiment on the blend: members in its treatment get picks ranked by the variant's blend, named in the
    top_picks row; everyone else keeps their segment's; a blend this version cannot parse is counted, not run."""
    from jobs.experiments.assignment import variant_of
    from jobs.experiments.definition import Experiment, Variant

    settings = LearningJobConfig(warm_start=False, flush_ms=100)
    harness = OperatorHarness(learning.UserLearner(settings, FakeStores()), key=lambda value: value[0]).open()
    for title in ("t1", "t2", "t3"):
        harness.process_broadcast(ItemVectors.initial(title, LearningConfig()))
    test = Experiment("blend", "picks", "s", (Variant("control"),
                                             Variant("popular", 1.0, {"learning.blend_new": "popularity=1"})))
    harness.process_broadcast(test)
    members = [f"u{n}" for n in range(10)]
    for member in members:
        harness.process_all(_ratings(member, ["t1"]))
    blends = {user: blend for user, _, _, blend in harness.advance(settings.flush_ms).main}
    for member in members:
        variant = variant_of(test, member)
        assert variant is not None
        if variant.name == "popular":
            assert blends[member] == "blend:popular popularity=1"
        else:
            assert blends[member].startswith("new v0: item_cf=")
    assert {variant_of(test, m).name for m in members} == {"control", "popular"}  # type: ignore[union-attr]
    # a restored instance serves the experiment from broadcast state
    treated = next(m for m in members if variant_of(test, m).name == "popular")  # type: ignore[union-attr]
    harness.restart(learning.UserLearner(settings, FakeStores()))
    harness.process_all(_ratings(treated, ["t2"]))
    [(_, _, _, blend)] = harness.advance(settings.flush_ms).main
    assert blend == "blend:popular popularity=1"
    harness.process_broadcast(replace(test, version=2, variants=(Variant("control"),
                                                                 Variant("popular", 1.0,
                                                                         {"learning.blend": "colour=1"}))))
    assert harness.metrics["not_applied_experiment_override"] == 1 and harness.operator.experiments == {}
