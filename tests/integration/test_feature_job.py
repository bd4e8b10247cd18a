"""The feature job on the real stack, over a scripted user history with duplicates, bad and late input."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from connectors.cassandra_store import connect
from connectors.feature_store import FeatureStore
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from jobs.context import context_bucket
from jobs.flink import load_job
from jobs.flink.features.config import FeatureJobConfig
from jobs.records.rejected_event import content_id
from jobs.runtime import FlinkConfig, start
from tests.integration.feature_history import MIN, FeatureRun, build_history


@pytest.fixture(scope="module")
def run(kafka_config: Any, cassandra_config: Any, tmp_path_factory: Any) -> Iterator[FeatureRun]:
    kafka = replace(kafka_config, topic_prefix=f"feat-{uuid.uuid4().hex[:6]}.")
    created = ensure_topics(kafka)
    history = build_history()
    producer = EventProducer(kafka)
    for item in history.catalog:
        producer.send(item)
    for event in history.events:
        producer.send(event)
    for event in history.conflicting:
        producer.send(event)
    producer.send(history.clock)
    for garbage in history.garbage:
        producer.send_encoded(kafka.topic_prefix + "play", history.user.encode(), garbage, history.base_ms)
    producer.flush()

    flink = FlinkConfig(checkpoint_interval_ms=2000, checkpoint_dir=str(tmp_path_factory.mktemp("checkpoints")))
    settings = FeatureJobConfig(group_id=f"features-{uuid.uuid4().hex[:6]}", idleness_ms=2000)
    client = start(load_job("features"), kafka, cassandra_config, settings=settings, flink=flink)
    session = connect(cassandra_config, cassandra_config.keyspace)
    try:
        yield FeatureRun(history, kafka, FeatureStore(session, cassandra_config.keyspace), producer)
    finally:
        client.cancel().result()
        session.cluster.shutdown()
        delete_topics(kafka, created)


def test_sessions_close_with_their_features(run: FeatureRun) -> None:
    h = run.history
    sessions = run.wait_for("two sessions", lambda: len(rows := run.store.rows("get_sessions", h.user)) >= 2 and rows)
    assert len(sessions) == 2
    second, first = sessions  # newest first
    # the click on an impression never seen is an event, not a click in CTR
    assert (first.titles_played, first.impressions, first.clicks, first.searches) == (1, 3, 1, 1)
    assert first.events == 8  # the duplicate PROGRESS is not counted
    assert first.watch_ms == 40 * MIN
    assert first.completion_rate == 0.0
    assert first.ctr == pytest.approx(1 / 3)
    assert first.genres == [h.drama]
    assert (second.titles_played, second.watch_ms, second.events) == (3, 170 * MIN, 14)
    assert (second.impressions, second.clicks) == (1, 1)
    assert second.completion_rate == pytest.approx(2 / 3)
    assert second.genres == sorted([h.comedy, h.drama])
    assert first.device_class == "tv" and first.daypart in ("late_night", "morning", "afternoon", "evening")
    published = run.topic_records("session-features", 2, user=h.user)
    assert sorted(r["start_ms"] for r in published) == sorted(
        int(s.session_start.timestamp() * 1000) for s in sessions)


def test_profile_counts_each_event_once(run: FeatureRun) -> None:
    h = run.history
    profile = run.wait_for(f"profile v{h.applied}", lambda: (r := run.store.rows("get_profile", h.user)) and
                           r[0].version == h.applied and r[0])
    assert profile.total_watch_ms == 210 * MIN  # 40 + 90 + 60 (resumed at 40) + 20
    assert profile.recent_searches == ["drama"]
    assert dict(profile.device_plays) == {"tv": 4}
    affinity = dict(profile.genre_affinity)
    assert affinity[h.drama] > affinity[h.comedy] > 0
    changelog = run.topic_records("user-features", 50, user=h.user)
    assert changelog and max(r["version"] for r in changelog) == h.applied


def test_continue_watching_keeps_only_titles_in_progress(run: FeatureRun) -> None:
    h = run.history
    t3 = h.catalog[2].title_id
    rows = run.wait_for("continue watching", lambda: (r := run.store.rows("get_cw", h.user)) and
                        [x for x in r if x.title_id == t3] and r)
    assert [(r.title_id, r.position_ms) for r in rows] == [(t3, 20 * MIN)]  # t1 and t2 were completed


def test_item_stats_and_trending(run: FeatureRun) -> None:
    h = run.history
    t1, t2, t3 = (c.title_id for c in h.catalog)

    def stats(title_id: str) -> dict[str, Any]:
        return {r.artwork_id: r for r in run.store.rows("get_item_stats", title_id)}

    def counts(row: Any) -> tuple[int, ...]:
        return row.impressions, row.clicks, row.plays, row.completes, row.impression_plays

    # clicks and impression plays come from the impression join (the rows job's bandits use the same one)
    rows = run.wait_for("item stats", lambda: (s := stats(t1)) and "" in s and s[""].plays == 2 and s)
    assert counts(rows[""]) == (1, 1, 2, 1, 1)  # the resumed play two hours later is not the click's
    art = rows[f"{t1}-art0"]
    assert (art.impressions, art.clicks, art.impression_plays, art.ctr, art.take_rate) == (1, 1, 1, 1.0, 1.0)
    # the clock user's STARTs of t2 (and the ticks' copies) are plays, not an impression's
    t2_rows = run.wait_for("t2 item stats", lambda: (s := stats(t2)) and "" in s and s[""].plays >= 2 and s)
    t2_total = t2_rows[""]
    assert (t2_total.impressions, t2_total.clicks, t2_total.completes, t2_total.impression_plays) == (2, 1, 1, 1)
    shown_art = t2_rows[f"{t2}-art0"]  # the click named no artwork: the impression's is the one credited
    assert (shown_art.impressions, shown_art.clicks, shown_art.impression_plays) == (1, 1, 1)
    assert counts(t2_rows["default"])[:2] == (1, 0)  # shown without artwork in imp-1, never clicked there
    t3_rows = run.wait_for("t3 item stats", lambda: (s := stats(t3)) and "" in s and s[""].plays == 1 and s)
    assert (t3_rows[""].impressions, t3_rows[""].clicks) == (1, 0)  # its click named an impression never seen
    drama = run.wait_for("drama trending", lambda: run.store.rows("get_trending", f"genre:{h.drama}"))
    assert drama[0].rank == 1 and drama[0].title_id in (t1, t3)
    comedy = run.wait_for("comedy trending", lambda: run.store.rows("get_trending", f"genre:{h.comedy}"))
    assert [r.title_id for r in comedy] == [t2]
    # per context bucket (daypart:device in the viewer's local time): what a new user there sees
    starts = [e for e in [*h.events, h.clock] if getattr(e, "action", None) == "START"]
    started_in: dict[str, set[str]] = {}
    for e in starts:
        bucket = context_bucket(e.event_time_ms, e.context.utc_offset_minutes, e.context.device_class)
        started_in.setdefault(bucket, set()).add(e.title_id)
    first = context_bucket(starts[0].event_time_ms, starts[0].context.utc_offset_minutes, "TV")
    in_context = run.wait_for("context trending", lambda: run.store.rows("get_trending", f"context:{first}"))
    assert {r.title_id for r in in_context} <= started_in[first] and in_context[0].rank == 1


def test_bad_input_and_poison_go_to_the_dead_letter_topic_and_the_job_goes_on(run: FeatureRun) -> None:
    garbage = run.history.garbage
    rejected = sorted(run.topic_records("dead-letter", len(garbage)), key=lambda r: r["original_length"])
    assert len(rejected) == len(garbage)
    assert [r["reason_code"] for r in rejected] == [
        "empty_value", "undecodable", "undecodable", "contract", "contract", "oversize", "oversize"]
    reasons = " | ".join(r["reason"] for r in rejected)
    # b"\x00..." reads as the schema registry's framing, which a single-object job does not read
    assert "wire_format = single-object does not read" in reasons and "fingerprint" in reasons
    assert "event_time_ms" in reasons
    assert "SearchEvent.query: is 300 characters, over the limit of 256" in reasons
    originals = sorted(value or b"" for value in garbage)
    assert [r["original_length"] for r in rejected] == sorted(len(v) for v in originals)
    by_digest = {content_id(value): value for value in originals}
    for record in rejected:  # each original whole, or its first bytes where it was over the dead-letter bound
        whole = by_digest[record["original_digest"]]
        assert record["original_cut"] == (record["original"] != whole) and whole.startswith(record["original"])
    assert [r["original_cut"] for r in rejected].count(True) == 1  # the 900 KB message
    # another event under a used id: applied (a continue-watching row of its own) and reported
    [conflict] = run.topic_records("late-events", 1, user=run.history.conflict_user)
    assert (conflict["kind"], conflict["reason_code"]) == ("CONFLICT", "event_id_conflict")
    rows = run.wait_for("both conflicting plays applied", lambda: len(
        r := run.store.rows("get_cw", run.history.conflict_user)) == 2 and r)
    assert {row.title_id for row in rows} == {e.title_id for e in run.history.conflicting}


def test_late_events_are_routed_not_applied(run: FeatureRun) -> None:
    h = run.history
    run.wait_for("sessions closed", lambda: len(run.store.rows("get_sessions", h.user)) >= 2)
    before = run.store.rows("get_profile", h.user)[0].version
    # a redelivery of an applied event is as far behind the watermark, but a duplicate, not late
    run.producer.send(h.events[0])
    run.producer.send(h.late)
    run.producer.flush()
    late = run.wait_for("late event", lambda: run.topic_records("late-events", 1, user=h.user))
    assert late[0]["kind"] == "LATE" and "behind the watermark" in late[0]["reason"]
    assert late[0]["original_event_id"] == h.late.event_id
    time.sleep(1.0)
    assert [r["original_event_id"] for r in run.topic_records("late-events", 2, user=h.user)] == [h.late.event_id]
    assert run.store.rows("get_profile", h.user)[0].version == before
