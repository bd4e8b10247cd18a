"""Kill the learning job mid-stream and restore it from its last checkpoint: the same user and item vectors as
an uninterrupted run, within a tolerance (item vectors reach the user side on a timer, so the exact
interleaving of user steps and published item versions differs between runs)."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from connectors.cassandra_store import apply_schema, connect
from connectors.events import Context, RatingEvent
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.model_store import ModelStore
from connectors.producer import EventProducer
from jobs.flink import load_job
from jobs.flink.learning.config import LearningJobConfig
from jobs.runtime import FlinkConfig, latest_checkpoint, start

MIN = 60_000
TOLERANCE = 0.06  # max absolute difference of any vector component (components are ~0.1); measured 0.02-0.04


def _history(tag: str) -> list[RatingEvent]:
    ctx = Context("tv-1", "TV", "US", 0)
    t0 = int(time.time() * 1000) - 900 * MIN
    groups = [[f"g{g}t{n}-{tag}" for n in range(4)] for g in range(3)]
    return [RatingEvent(f"user{u}-{tag}", t0 + (u * 10 + step) * MIN, ctx, title, "STARS", 5.0 - step * 0.5,
                        event_id=f"{tag}-{u}-{step}")
            for u in range(18) for step, title in enumerate(groups[u % 3])]


def _start(kafka: Any, cassandra: Any, group: str, checkpoints: Path, restore: Path | None = None) -> Any:
    flink = FlinkConfig(checkpoint_interval_ms=1000, checkpoint_dir=str(checkpoints),
                        restore_from=str(restore) if restore else "")
    return start(load_job("learning"), kafka, cassandra,
                 settings=LearningJobConfig(group_id=group, snapshot_ms=500), flink=flink)


def _state(store: ModelStore, events: list[RatingEvent]) -> dict[str, Any]:
    users = sorted({e.user_id for e in events})
    titles = sorted({e.title_id for e in events})
    deadline = time.monotonic() + 90
    while True:
        rows = {u: store.rows("get_user_vectors", u) for u in users}
        if all(r and r[0].version == 4 for r in rows.values()):
            break
        assert time.monotonic() < deadline, "not every event was applied"
        time.sleep(0.5)
    time.sleep(2.0)  # the last item publishes
    return {"users": {u: (r[0].version, r[0].last_event_id, r[0].recent_titles, np.array(r[0].implicit_vector),
                          np.array(r[0].rating_vector)) for u, r in
                      ((u, store.rows("get_user_vectors", u)) for u in users)},
            "items": {t: (r[0].touches, np.array(r[0].implicit_vector)) for t, r in
                      ((t, store.rows("get_item_vectors", t)) for t in titles)},
            "similar": {t: list(store.rows("get_similar_titles", t)[0].neighbor_ids[:3]) for t in titles}}


def test_restart_from_checkpoint_ends_with_the_same_vectors(kafka_config: Any, cassandra_config: Any,
                                                            tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    events = _history(tag)
    half = len(events) // 2
    created: list[tuple[Any, dict[str, str]]] = []
    sessions = []

    def setup(name: str) -> tuple[Any, Any, ModelStore, EventProducer]:
        kafka = replace(kafka_config, topic_prefix=f"lrestart-{name}-{tag}.")
        created.append((kafka, ensure_topics(kafka)))
        cassandra = replace(cassandra_config, keyspace=f"nextwatch_test_learn_{name}")
        apply_schema(cassandra)
        session = connect(cassandra, cassandra.keyspace)
        sessions.append(session)
        return kafka, cassandra, ModelStore(session, cassandra.keyspace), EventProducer(kafka)

    def send(producer: EventProducer, batch: list[RatingEvent]) -> None:
        for event in batch:
            producer.send(event)
        producer.flush()

    try:
        kafka, cassandra, store, producer = setup("whole")
        send(producer, events)
        job = _start(kafka, cassandra, f"whole-{tag}", tmp_path / "whole")
        try:
            expected = _state(store, events)
        finally:
            job.cancel().result()

        kafka, cassandra, store, producer = setup("killed")
        send(producer, events[:half])
        group = f"killed-{tag}"
        job = _start(kafka, cassandra, group, tmp_path / "killed")
        try:
            some = events[half - 1]
            deadline = time.monotonic() + 60
            while not store.rows("get_user_vectors", some.user_id):
                assert time.monotonic() < deadline, "the first half was not applied"
                time.sleep(0.2)
            time.sleep(3.0)  # at least one checkpoint after the first half
        finally:
            job.cancel().result()
        checkpoint = latest_checkpoint(tmp_path / "killed")
        assert checkpoint is not None, "no checkpoint was retained"
        send(producer, events[half:])
        job = _start(kafka, cassandra, group, tmp_path / "restarted", restore=checkpoint)
        try:
            actual = _state(store, events)
        finally:
            job.cancel().result()
    finally:
        for session in sessions:
            session.cluster.shutdown()
        for kafka, topics in created:
            delete_topics(kafka, topics)

    worst = 0.0
    for user, (version, last, recent, implicit, rating) in expected["users"].items():
        got = actual["users"][user]
        assert (got[0], got[1], got[2]) == (version, last, recent), user  # exactly: what was applied
        worst = max(worst, float(np.abs(got[3] - implicit).max()), float(np.abs(got[4] - rating).max()))
    for title, (touches, implicit) in expected["items"].items():
        assert actual["items"][title][0] == touches, title  # co-watch counts: exact
        worst = max(worst, float(np.abs(actual["items"][title][1] - implicit).max()))
    print(f"largest vector component difference after the restart: {worst:.4f}")
    assert worst <= TOLERANCE
    assert actual["similar"] == expected["similar"]


def test_a_new_job_without_a_checkpoint_warm_starts_users_from_cassandra(kafka_config: Any, cassandra_config: Any,
                                                                         tmp_path: Path) -> None:
    """The second job reads other topics (only the new events and one redelivery), so only a warm start from
    the user's Cassandra row can bring the version to 6, and only its event-id hashes can skip the redelivery."""
    tag = uuid.uuid4().hex[:6]
    ctx = Context("tv-1", "TV", "US", 0)
    t0 = int(time.time() * 1000) - 900 * MIN
    user = f"warm-{tag}"
    titles = [f"w{n}-{tag}" for n in range(6)]
    events = [RatingEvent(user, t0 + n * MIN, ctx, title, "STARS", 4.0, event_id=f"{tag}-{n}")
              for n, title in enumerate(titles)]
    cassandra = replace(cassandra_config, keyspace="nextwatch_test_learn_warm")
    apply_schema(cassandra)
    session = connect(cassandra, cassandra.keyspace)
    store = ModelStore(session, cassandra.keyspace)
    created: list[tuple[Any, dict[str, str]]] = []

    def run(name: str, batch: list[RatingEvent], version: int) -> Any:
        kafka = replace(kafka_config, topic_prefix=f"lwarm-{name}-{tag}.")
        created.append((kafka, ensure_topics(kafka)))
        with EventProducer(kafka) as producer:
            for event in batch:
                producer.send(event)
            producer.flush()
        job = _start(kafka, cassandra, f"{name}-{tag}", tmp_path / name)
        try:
            deadline = time.monotonic() + 90
            while not ((rows := store.rows("get_user_vectors", user)) and rows[0].version >= version):
                assert time.monotonic() < deadline, f"{name}: the user's vector never reached version {version}"
                time.sleep(0.3)
            time.sleep(2.0)  # anything else it would apply
            return store.rows("get_user_vectors", user)[0]
        finally:
            job.cancel().result()

    try:
        first = run("first", events[:4], 4)
        assert (first.version, first.ratings, len(first.recent_event_hashes)) == (4, 4, 4)
        second = run("second", [events[3], *events[4:]], 6)  # events[3]: a redelivery of an applied event
    finally:
        session.cluster.shutdown()
        for kafka, topics in created:
            delete_topics(kafka, topics)
    assert second.version == 6 and second.ratings == 6 and second.last_event_id == f"{tag}-5"
    assert second.recent_titles == titles
    assert not np.allclose(second.rating_vector, first.rating_vector)  # it went on learning from the warm start
