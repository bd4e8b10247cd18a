"""Outages heal without a person: Cassandra frozen for two minutes under the four running jobs, then the broker
for half a minute; every event sent before, during and after reaches every job's rows, and no job ends.

Each round every member rates a title; other members, who saw an impression that put them in an experiment
in the first round, watch a minute each, which the metrics job's sums must count for every round."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connectors.cassandra_store import TRANSIENT_ERRORS, connect
from connectors.events import BrowseEvent, Context, PlayEvent, RatingEvent, ShownItem
from connectors.experiment_store import read_metric_rows
from connectors.feature_store import FeatureStore
from connectors.homepage_store import HomepageStore
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.model_store import ModelStore
from connectors.producer import EventProducer
from infra.pipeline import start_job
from infra.process import RunRecord
from jobs.runtime import FlinkConfig
from tests import factories

OUTAGE_S = 120
BROKER_PAUSE_S = 30
USERS = 8
JOBS = ("features", "learning", "rows", "metrics")


def _ratings(users: list[str], titles: list[str], round_: int, at_ms: int) -> list[RatingEvent]:
    ctx = Context("tv-1", "TV", "US", 0)
    return [RatingEvent(user, at_ms + round_ * 1000, ctx, titles[round_], "THUMBS_UP", event_id=f"{user}-{round_}")
            for user in users]


def _watching(watchers: list[str], title: str, round_: int, at_ms: int, experiment: str) -> list[Any]:
    """A minute of watching per member; in the first round, first the impression that puts them in the
    experiment (its token names their variant)."""
    from jobs.exploration.rewards import PresentationToken

    ctx, at, events = Context("tv-1", "TV", "US", 0), at_ms + round_ * 1000, []
    for n, member in enumerate(watchers):
        if round_ == 1:
            token = PresentationToken("p", 1.0, (1.0,), (False,), (f"{experiment}:v{n % 2}",)).encode()
            events.append(BrowseEvent(member, at - 1, ctx, "IMPRESSION", f"imp-{member}", "home", "top_picks", 0,
                                      [ShownItem(title, 0, None)], presentation_token=token,
                                      event_id=f"{member}-imp"))
        events.append(PlayEvent(member, at, ctx, title, "STOP", f"pb-{member}-{round_}", 60_000, 600_000,
                                event_id=f"{member}-{round_}"))
    return events


def _wait(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except TRANSIENT_ERRORS:  # this test's own session, reconnecting after the outage
            pass
        time.sleep(1.0)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")


def test_the_jobs_wait_out_a_two_minute_cassandra_outage(kafka_config: Any, cassandra_config: Any,
                                                         tmp_path: Path) -> None:
    record, broker = RunRecord.load("cassandra"), RunRecord.load("kafka")
    if record is None or broker is None:
        pytest.skip("the services are not run by the local stack here (external or containers): nothing to freeze")
    tag = uuid.uuid4().hex[:6]
    kafka = replace(kafka_config, topic_prefix=f"outage-{tag}.")
    created = ensure_topics(kafka)
    users = [f"outage-{tag}-{n}" for n in range(USERS)]
    watchers, experiment = [f"watcher-{tag}-{n}" for n in range(USERS)], f"outage-{tag}"
    titles = [f"ot{n}-{tag}" for n in range(6)]
    at_ms = int(time.time() * 1000) - 60_000
    session = connect(cassandra_config, cassandra_config.keyspace)
    features = FeatureStore(session, cassandra_config.keyspace)
    models = ModelStore(session, cassandra_config.keyspace)
    pages = HomepageStore(session, cassandra_config.keyspace)
    producer = EventProducer(kafka)
    for n, title in enumerate(titles):
        producer.send(factories.make_catalog_item(title_id=title, title=f"Outage {n}", artwork=[],
                                                  event_id=f"{title}-c"))
    clients = [start_job(name, kafka, cassandra_config, group_id=f"{name}-{tag}",
                         flink=FlinkConfig(checkpoint_interval_ms=2000, checkpoint_dir=str(tmp_path / name)))
               for name in JOBS]

    def send_round(round_: int) -> None:
        producer.send_many(_ratings(users, titles, round_, at_ms))
        producer.send_many(_watching(watchers, titles[round_], round_, at_ms, experiment))
        producer.flush()

    def every_job_has(round_: int) -> bool:
        """Each member's profile, user vector and a homepage reflect their rating of round ``round_``; the
        experiment's sums hold every watcher's minute of every round up to it."""
        def last(rows: list[Any]) -> str:
            return str(rows[0].last_event_id) if rows else ""

        stored = sorted(read_metric_rows(session, cassandra_config.keyspace, experiment), key=lambda r: r.day)
        watched = {r.variant: r.sums[1] for r in stored if r.segment == "all" and r.metric == "watch_minutes"}
        return sum(watched.values()) == round_ * len(watchers) and all(
            last(features.rows("get_profile", user)) == f"{user}-{round_}"
                   and last(models.rows("get_user_vectors", user)) == f"{user}-{round_}"
                   and any(page.last_event_id == f"{user}-{round_}" for page in pages.homepages(user).values())
                   for user in users)

    try:
        send_round(1)
        _wait("round 1 in every job's rows", lambda: every_job_has(1), 240)
        os.kill(record.pid, signal.SIGSTOP)  # frozen: connections stay open, nothing answers
        try:
            for round_ in (2, 3):
                send_round(round_)
            time.sleep(OUTAGE_S)
        finally:
            os.kill(record.pid, signal.SIGCONT)
        _wait("round 3 in every job's rows after the outage", lambda: every_job_has(3), 240)
        assert [client.get_job_status().result().name for client in clients] == ["RUNNING"] * len(JOBS)
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            time.sleep(BROKER_PAUSE_S)
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        send_round(4)
        _wait("round 4, sent after the broker's pause, in every job's rows", lambda: every_job_has(4), 240)
        assert [client.get_job_status().result().name for client in clients] == ["RUNNING"] * len(JOBS)
        assert all(rows[0].version == 4 for user in users for rows in [features.rows("get_profile", user)])
    finally:
        os.kill(record.pid, signal.SIGCONT)
        os.kill(broker.pid, signal.SIGCONT)
        for client in clients:
            client.cancel().result()
        producer.close()
        session.cluster.shutdown()
        delete_topics(kafka, created)
