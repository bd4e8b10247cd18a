"""The learning job on the real stack: user vectors change with a user's events, item vectors and similar
titles are published, duplicates are applied once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from connectors.consumer import read_snapshot
from connectors.events import Context, PlayEvent, RatingEvent
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.model_store import ModelStore
from connectors.producer import EventProducer
from infra.flink_cluster import job_metrics
from infra.pipeline import start_job
from infra.process import free_port
from jobs.flink.learning.config import LearningJobConfig
from jobs.models.online import LearningConfig
from jobs.runtime import FlinkConfig

MIN = 60_000


def _wait(what: str, check: Callable[[], Any], timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_user_vectors_follow_events_and_items_are_published(kafka_config: Any, cassandra_config: Any,
                                                            cassandra_session: Any, tmp_path: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    kafka = replace(kafka_config, topic_prefix=f"learn-{tag}.")
    created = ensure_topics(kafka)
    ctx = Context("tv-1", "TV", "US", 0)
    t0 = int(time.time() * 1000) - 600 * MIN
    drama = [f"drama{n}-{tag}" for n in range(3)]
    comedy = [f"comedy{n}-{tag}" for n in range(3)]
    alice = f"alice-{tag}"

    def rating(user: str, title: str, at: int, event_id: str | None = None) -> RatingEvent:
        return RatingEvent(user, t0 + at * MIN, ctx, title, "STARS", 5.0, event_id=event_id or uuid.uuid4().hex)

    history = [rating(f"{group[0][:5]}-fan{n}-{tag}", title, n * 10 + step)
               for n in range(6) for group in (drama, comedy) for step, title in enumerate(group)]
    first = rating(alice, drama[0], 100, event_id=f"alice-first-{tag}")
    store = ModelStore(cassandra_session, cassandra_config.keyspace)
    flink = FlinkConfig(checkpoint_interval_ms=2000, checkpoint_dir=str(tmp_path / "checkpoints"))
    job = None
    try:
        with EventProducer(kafka) as producer:
            for event in [*history, first]:
                producer.send(event)
            producer.flush()
            job = start_job("learning", kafka, cassandra_config, flink=flink,
                                     settings=LearningJobConfig(group_id=f"learning-{tag}", snapshot_ms=500))

            before = _wait("alice's vector", lambda: (rows := store.rows("get_user_vectors", alice)) and rows[0])
            assert before.version == 1 and before.last_event_id == first.event_id
            assert len(before.implicit_vector) == 32 and len(before.rating_vector) == 16
            assert before.recent_titles == [drama[0]]

            # co-watching makes the drama titles each other's neighbours, not the comedies
            similar = _wait("similar titles of drama0", lambda: (
                (rows := store.rows("get_similar_titles", drama[0])) and set(drama[1:]) <= set(rows[0].neighbor_ids)
                and rows[0]))
            assert not set(comedy) & set(similar.neighbor_ids[:2])
            # six fans and alice touched it (the snapshot is throttled: wait for the newest)
            _wait("drama0's touches", lambda: store.rows("get_item_vectors", drama[0])[0].touches == 7)

            # her next events move her vector; a redelivered event does not
            producer.send(first)  # redelivered: the same id and content, a duplicate
            producer.send(PlayEvent(alice, t0 + 120 * MIN, ctx, drama[1], "COMPLETE", f"pb-{tag}", 100 * MIN,
                                    100 * MIN))
            producer.flush()
            after = _wait("alice's second event applied",
                          lambda: (rows := store.rows("get_user_vectors", alice)) and rows[0].version >= 2 and rows[0])
            time.sleep(1.0)
            after = store.rows("get_user_vectors", alice)[0]
            assert after.version == 2 and after.recent_titles == [drama[0], drama[1]]
            assert not np.allclose(after.implicit_vector, before.implicit_vector)

        # the item side published absolute, versioned vectors to the model-updates topic
        records = [d.record for d in read_snapshot(kafka.topic_prefix + "model-updates", kafka, idle_s=2.0)]
        versions = [r["version"] for r in records if r["title_id"] == drama[0]]
        assert versions and versions == sorted(versions)
        assert all(r["event_id"] == f"{r['title_id']}:{r['version']}" for r in records)
    finally:
        if job is not None:
            job.cancel().result()
        delete_topics(kafka, created)


def test_each_segment_learns_its_blend_and_serves_the_newest_published(kafka_config: Any, cassandra_config: Any,
                                                                      cassandra_session: Any, tmp_path: Any) -> None:
    from connectors.codec import EventCodec
    from jobs.models.blend import PublishedBlend
    from jobs.records.blend_update import blend_update_record

    tag = uuid.uuid4().hex[:8]
    kafka = replace(kafka_config, topic_prefix=f"blend-{tag}.")
    created = ensure_topics(kafka)
    ctx = Context("tv-1", "TV", "US", 0)
    t0 = int(time.time() * 1000) - 600 * MIN
    fillers = [f"filler{n}-{tag}" for n in range(30)]
    drama = [f"drama{n}-{tag}" for n in range(3)]

    def rating(user: str, title: str, at: int) -> RatingEvent:
        return RatingEvent(user, t0 + at * MIN, ctx, title, "STARS", 5.0, event_id=uuid.uuid4().hex)

    # new members start from a blend of search alone, which ranks every title alike here (no searches): by
    # table position, where the dramas come after thirty fillers; one step of item CF finds them at once
    settings = LearningJobConfig(group_id=f"learning-{tag}", snapshot_ms=500, evaluate_share=1.0,
                                 blend_step_every=1, blend_new="search=1")
    store = ModelStore(cassandra_session, cassandra_config.keyspace)
    rest_port = free_port()
    flink = FlinkConfig(checkpoint_interval_ms=2000, checkpoint_dir=str(tmp_path / "checkpoints"),
                        options={"rest.port": str(rest_port), "metrics.fetcher.update-interval": "1000"})
    job = None
    try:
        with EventProducer(kafka) as producer:
            job = start_job("learning", kafka, cassandra_config, flink=flink, settings=settings)
            for n, title in enumerate(fillers):  # filler fans: their titles are published first
                producer.send(rating(f"filler-fan{n}-{tag}", title, n))
            producer.flush()
            _wait("the fillers' vectors", lambda: store.rows("get_item_vectors", fillers[-1]))
            for n in range(6):
                for step, title in enumerate(drama):
                    producer.send(rating(f"drama-fan{n}-{tag}", title, 100 + n * 10 + step))
            producer.flush()
            _wait("drama0's neighbours", lambda: (rows := store.rows("get_similar_titles", drama[0]))
                  and drama[1] in rows[0].neighbor_ids)
            names = {"eval_touches", "eval_blend_hits", "blend_touches_credited", "blend_moves"}

            def moved_blends() -> list[dict[str, Any]]:
                return [d.record for d in read_snapshot(kafka.topic_prefix + "blend-updates", kafka, idle_s=1.0)
                        if d.record["segment"] == "new"]

            # new members, one after another until the blend moves: the similar titles reach Cassandra
            # before the user side has read the dramas' vectors back from model-updates, and a touch of a
            # title the user side does not know yet teaches the blend learner nothing
            moved: list[dict[str, Any]] = []
            for n in range(40):
                producer.send(rating(f"newbie{n}-{tag}", drama[0], 200 + 2 * n))
                producer.send(rating(f"newbie{n}-{tag}", drama[1], 201 + 2 * n))
                producer.flush()
                time.sleep(1.0)
                moved = moved_blends()
                if moved:
                    break
            assert moved, f"the new members' blend never moved: {job_metrics(str(job.get_job_id()), names, rest_port)}"
            first = min(moved, key=lambda record: record["version"])
            assert first["version"] == 1 and first["weights"]["item_cf"] > 0  # item CF found what search did not
            assert first["touches"] >= 1 and 0 < first["hit_rate"] <= 1.0

            # whatever the newest published version of a segment's blend, the user side serves it
            pinned = PublishedBlend("new", 100, {"popularity": 1.0}, updated_ms=t0)
            producer.send_encoded(kafka.topic_prefix + "blend-updates", b"new",
                                  EventCodec().encode_record("blend_update", blend_update_record(pinned, t0)), t0)
            producer.flush()
            time.sleep(2.0)
            member = f"latecomer-{tag}"
            producer.send(rating(member, drama[0], 300))
            producer.flush()
            picks = _wait("top picks", lambda: (rows := store.rows("get_top_picks", member)) and rows[0])
            assert picks.blend.startswith("new v100: item_cf=0,") and "popularity=1" in picks.blend
    finally:
        if job is not None:
            job.cancel().result()
        delete_topics(kafka, created)


def test_the_neural_model_trains_inside_the_job_and_reaches_the_user_side(kafka_config: Any, cassandra_config: Any,
                                                                          cassandra_session: Any,
                                                                          tmp_path: Any) -> None:
    # thread mode first: the trainer's numpy runs inside the JVM's embedded interpreter there
    tag = uuid.uuid4().hex[:8]
    kafka = replace(kafka_config, topic_prefix=f"neural-{tag}.")
    created = ensure_topics(kafka)
    ctx = Context("tv-1", "TV", "US", 0)
    t0 = int(time.time() * 1000) - 600 * MIN
    series = [f"episode{n}-{tag}" for n in range(4)]
    settings = LearningJobConfig(group_id=f"learning-{tag}", snapshot_ms=500, neural=True, neural_publish_ms=500)
    store = ModelStore(cassandra_session, cassandra_config.keyspace)
    job = None
    try:
        with EventProducer(kafka) as producer:
            job = start_job("learning", kafka, cassandra_config, settings=settings,
                            flink=FlinkConfig(checkpoint_interval_ms=2000, execution_mode="thread",
                                              checkpoint_dir=str(tmp_path / "checkpoints")))
            for member in range(8):  # binge-watchers, episode after episode
                for n, title in enumerate(series):
                    producer.send(RatingEvent(f"binger{member}-{tag}", t0 + (member * 10 + n) * MIN, ctx, title,
                                              "STARS", 5.0, event_id=uuid.uuid4().hex))
            producer.flush()

            def published() -> dict[str, Any]:
                records = read_snapshot(kafka.topic_prefix + "neural-updates", kafka, idle_s=1.0)
                return {d.record["key"]: d.record for d in records}

            weights = _wait("the neural model's weights", lambda: (found := published()) and "encoder" in found
                            and set(series) <= set(found) and found)
            d = LearningConfig().neural_dimensions
            assert weights["encoder"]["version"] >= 1 and len(weights["encoder"]["vector"]) == 6 * d * d + 3 * d
            assert all(len(weights[title]["vector"]) == d for title in series)
            # a member who acts after the weights were published is ranked with them too
            member = f"latecomer-{tag}"
            producer.send(RatingEvent(member, t0 + 200 * MIN, ctx, series[0], "STARS", 5.0))
            producer.flush()
            picks = _wait("top picks", lambda: (rows := store.rows("get_top_picks", member)) and rows[0])
            assert series[1] in picks.title_ids
    finally:
        if job is not None:
            job.cancel().result()
        delete_topics(kafka, created)


def test_a_member_with_more_held_steps_than_the_bound_loses_none(kafka_config: Any, cassandra_config: Any,
                                                                 cassandra_session: Any, tmp_path: Any) -> None:
    # process mode holds a member's item steps until their flush; past MAX_HELD_STEPS they go at once
    tag = uuid.uuid4().hex[:8]
    kafka = replace(kafka_config, topic_prefix=f"held-{tag}.")
    created = ensure_topics(kafka)
    ctx = Context("tv-1", "TV", "US", 0)
    t0 = int(time.time() * 1000) - 600 * MIN
    titles = [f"title{n}-{tag}" for n in range(150)]  # ~20 co-watch steps each: past the bound within a flush
    member = f"binger-{tag}"
    store = ModelStore(cassandra_session, cassandra_config.keyspace)
    job = None
    try:
        with EventProducer(kafka) as producer:
            for n, title in enumerate(titles):
                producer.send(RatingEvent(member, t0 + n * 1000, ctx, title, "STARS", 5.0, event_id=f"{tag}-{n}"))
            producer.flush()
        job = start_job("learning", kafka, cassandra_config,
                        settings=LearningJobConfig(group_id=f"learning-{tag}", snapshot_ms=500, flush_ms=1000,
                                                   max_flush_ms=1000),
                        flink=FlinkConfig(checkpoint_interval_ms=2000, execution_mode="process",
                                          checkpoint_dir=str(tmp_path / "checkpoints")))

        def missing() -> list[str]:
            return [t for t in titles if not ((rows := store.rows("get_item_vectors", t)) and rows[0].touches >= 1)]

        _wait("the member's vector", lambda: (rows := store.rows("get_user_vectors", member)) and
              rows[0].version == len(titles))
        try:
            _wait("every title's item vectors", lambda: not missing(), timeout_s=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {len(missing())} of {len(titles)} titles never got a step") from exc
    finally:
        if job is not None:
            job.cancel().result()
        delete_topics(kafka, created)
