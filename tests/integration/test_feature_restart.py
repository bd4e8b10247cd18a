"""Kill the feature job mid-history, restart it from its last checkpoint: same rows as an uninterrupted run."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from connectors.cassandra_store import apply_schema, connect
from connectors.feature_store import FeatureStore
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from jobs.flink import load_job
from jobs.flink.features.config import FeatureJobConfig
from jobs.runtime import FlinkConfig, latest_checkpoint, start
from tests.integration.feature_history import FeatureRun, History, build_history


def _start(kafka: Any, cassandra: Any, group: str, checkpoints: Path, restore: Path | None = None) -> Any:
    flink = FlinkConfig(checkpoint_interval_ms=1000, checkpoint_dir=str(checkpoints),
                        restore_from=str(restore) if restore else "")
    return start(load_job("features"), kafka, cassandra, settings=FeatureJobConfig(group_id=group, idleness_ms=2000),
                 flink=flink)


def _send(producer: EventProducer, history: History, events: list[Any]) -> None:
    for event in events:
        producer.send(event)
    producer.flush()


def _rows(store: FeatureStore, user: str, titles: list[str]) -> dict[str, Any]:
    profile = store.rows("get_profile", user)[0]
    return {
        "profile": (profile.version, profile.total_watch_ms, profile.last_event_id, profile.recent_searches,
                    dict(profile.device_plays), dict(profile.daypart_plays),
                    # sums of the same terms in another order: equal up to rounding
                    {g: round(v, 6) for g, v in profile.genre_affinity.items()},
                    round(profile.preferred_runtime_minutes, 6)),
        "continue_watching": sorted((r.title_id, r.position_ms, r.playback_id) for r in store.rows("get_cw", user)),
        "sessions": sorted((r.session_start, r.session_end, r.titles_played, r.watch_ms, r.events, r.impressions,
                            r.clicks, r.searches, tuple(r.genres or ())) for r in store.rows("get_sessions", user)),
        # clicks and impression plays need the impression join's state, kept across the restart
        # (plays are left out: the clock's ticks, which differ per run, play t2)
        "item_stats": sorted((r.title_id, r.artwork_id, r.impressions, r.clicks, r.completes, r.impression_plays)
                             for t in titles for r in store.rows("get_item_stats", t)),
    }


def _finished(run: FeatureRun) -> dict[str, Any]:
    user, titles = run.history.user, [c.title_id for c in run.history.catalog]
    t2 = titles[1]
    run.wait_for("every event applied, both sessions closed, every start counted", lambda: (
        (p := run.store.rows("get_profile", user)) and p[0].version == run.history.applied
        and len(run.store.rows("get_sessions", user)) == 2
        and any(r.artwork_id == "" and r.plays >= 2 for r in run.store.rows("get_item_stats", t2))))
    time.sleep(1.5)  # the last coalesced rows
    return _rows(run.store, user, titles)


def test_restart_from_checkpoint_ends_in_the_same_rows(kafka_config: Any, cassandra_config: Any,
                                                       tmp_path: Path) -> None:
    history = build_history()
    first, second = history.events[:history.kill_after], [*history.events[history.kill_after:], history.clock]
    first_applied = len({e.event_id for e in first})
    created: list[tuple[Any, dict[str, str]]] = []
    sessions = []

    def setup(name: str) -> tuple[Any, Any, FeatureStore, EventProducer]:
        kafka = replace(kafka_config, topic_prefix=f"restart-{name}-{uuid.uuid4().hex[:6]}.")
        created.append((kafka, ensure_topics(kafka)))
        cassandra = replace(cassandra_config, keyspace=f"nextwatch_test_{name}")
        apply_schema(cassandra)
        session = connect(cassandra, cassandra.keyspace)
        sessions.append(session)
        producer = EventProducer(kafka)
        _send(producer, history, history.catalog)
        return kafka, cassandra, FeatureStore(session, cassandra.keyspace), producer

    try:
        # uninterrupted: everything, one job
        kafka, cassandra, store, producer = setup("whole")
        _send(producer, history, [*first, *second])
        job = _start(kafka, cassandra, f"whole-{uuid.uuid4().hex[:6]}", tmp_path / "whole")
        try:
            expected = _finished(FeatureRun(history, kafka, store, producer))
        finally:
            job.cancel().result()

        # interrupted: the first half, a checkpoint, the job killed; the rest, a restart from that checkpoint
        kafka, cassandra, store, producer = setup("killed")
        _send(producer, history, first)
        checkpoints = tmp_path / "killed"
        group = f"killed-{uuid.uuid4().hex[:6]}"
        job = _start(kafka, cassandra, group, checkpoints)
        try:
            run = FeatureRun(history, kafka, store, producer)
            deadline = time.monotonic() + 60
            while not ((p := store.rows("get_profile", history.user)) and p[0].version == first_applied):
                assert time.monotonic() < deadline, "the first half was not applied"
                time.sleep(0.2)
            time.sleep(3.0)  # at least one checkpoint after the first half
        finally:
            job.cancel().result()
        checkpoint = latest_checkpoint(checkpoints)
        assert checkpoint is not None, "no checkpoint was retained"
        _send(producer, history, second)
        job = _start(kafka, cassandra, group, tmp_path / "restarted", restore=checkpoint)
        try:
            actual = _finished(run)
        finally:
            job.cancel().result()
    finally:
        for session in sessions:
            session.cluster.shutdown()
        for kafka, topics in created:
            delete_topics(kafka, topics)

    assert actual == expected
