"""The metrics job's sums are exact under redelivery and across a restart from a checkpoint.

Members enter an experiment's variants through impressions whose tokens name them, and their outcomes and
plays follow. Everything is then sent a second time (the broker is at-least-once here): the sums do not
move. The job is cancelled and started again from its newest retained checkpoint, the rest of the events
arrive (some of them redelivered again), and the sums end where one run that saw each event once ends.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from connectors.events import BrowseEvent, Context, PlayEvent, ShownItem
from connectors.experiment_store import read_metric_rows
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from connectors.topics import TOPICS_BY_NAME
from jobs.exploration.rewards import Outcome, PresentationToken
from jobs.flink import load_job
from jobs.flink.metrics.config import MetricsJobConfig
from jobs.records.impression_outcome import outcome_record
from jobs.runtime import FlinkConfig, latest_checkpoint, start
from tests.integration.test_learning_job import _wait

TV = Context("tv-1", "TV", "US", 0)


def _events(experiment: str, members: list[str], at_ms: int) -> list[tuple[str, Any]]:
    """Per member: an impression naming their variant, its five items' outcomes (two clicked, one played), a
    play of the played title; ("event", event) or ("outcome", (user, record))."""
    out: list[tuple[str, Any]] = []
    for n, member in enumerate(members):
        variant = ("control", "treatment")[n % 2]
        token = PresentationToken("p", 1.0, (1.0,) * 5, (False,) * 5, (f"{experiment}:{variant}",)).encode()
        items = [ShownItem(f"t{k}", k, None) for k in range(5)]
        impression = f"imp-{member}"
        out.append(("event", BrowseEvent(member, at_ms, TV, "IMPRESSION", impression, "home", "top_picks", 0, items,
                                         presentation_token=token, event_id=f"{member}-imp")))
        for k in range(5):
            outcome = Outcome(impression, "top_picks", 0, f"t{k}", k, "", k < 2, k == 0, "p", 1.0, 1.0, False,
                              at_ms, (f"{experiment}:{variant}",))
            out.append(("outcome", (member, outcome_record(member, outcome, "evening:tv", "mon", at_ms))))
        out.append(("event", PlayEvent(member, at_ms + 1000, TV, "t0", "STOP", f"pb-{member}", 600_000 * (n + 1),
                                       3_600_000, event_id=f"{member}-play")))
    return out


def _send(producer: EventProducer, kafka: Any, events: list[tuple[str, Any]]) -> None:
    outcomes = TOPICS_BY_NAME["impression-outcomes"].full_name(kafka)
    for kind, payload in events:
        if kind == "event":
            producer.send(payload)
        else:
            member, record = payload
            producer.send_encoded(outcomes, member.encode(),
                                  producer.codec.encode_record("impression_outcome", record))
    producer.flush()


def _sums(session: Any, keyspace: str, experiment: str) -> dict[tuple[str, str], tuple[float, ...]]:
    rows = sorted(read_metric_rows(session, keyspace, experiment), key=lambda r: r.day)
    return {(r.variant, r.metric): r.sums for r in rows if r.segment == "all"}


def test_sums_are_exact_under_redelivery_and_a_restart(kafka_config: Any, cassandra_config: Any,
                                                       cassandra_session: Any, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    kafka = replace(kafka_config, topic_prefix=f"metrics-{tag}.")
    created = ensure_topics(kafka)
    experiment = f"exp-{tag}"
    members = [f"m{n}-{tag}" for n in range(8)]
    now = int(time.time() * 1000)
    first, second = _events(experiment, members[:4], now), _events(experiment, members[4:], now)
    settings = MetricsJobConfig(group_id=f"metrics-{tag}", flush_ms=200)
    checkpoints = tmp_path / "checkpoints"
    job = None

    def wait_for(members_in: int, impressions: int) -> dict[tuple[str, str], tuple[float, ...]]:
        def done() -> Any:
            sums = _sums(cassandra_session, cassandra_config.keyspace, experiment)
            ctr = [sums.get((v, "ctr")) for v in ("control", "treatment")]
            return sums if all(ctr) and sum(c[0] for c in ctr if c) == members_in and \
                sum(c[2] for c in ctr if c) == impressions else None
        return _wait(f"{members_in} members' sums", done, timeout_s=90)  # type: ignore[no-any-return]

    try:
        with EventProducer(kafka) as producer:
            job = start(load_job("metrics"), kafka, cassandra_config, settings=settings,
                        flink=FlinkConfig(checkpoint_interval_ms=1000, checkpoint_dir=str(checkpoints)))
            _send(producer, kafka, first)
            once = wait_for(4, 20)
            assert once["control", "ctr"][:3] == (2.0, 4.0, 10.0)  # members, clicks, impressions
            _send(producer, kafka, first)  # every event redelivered
            time.sleep(3.0)
            assert _sums(cassandra_session, cassandra_config.keyspace, experiment) == once
            time.sleep(2.5)  # a checkpoint after the redeliveries
            job.cancel().result()
            job = None
            restore = latest_checkpoint(checkpoints)
            assert restore is not None
            job = start(load_job("metrics"), kafka, cassandra_config, settings=settings,
                        flink=FlinkConfig(checkpoint_interval_ms=1000, checkpoint_dir=str(tmp_path / "again"),
                                          restore_from=str(restore)))
            _send(producer, kafka, second[:10])
            _send(producer, kafka, second)  # the first ten twice
            final = wait_for(8, 40)
            time.sleep(1.5)
        final = _sums(cassandra_session, cassandra_config.keyspace, experiment)
        # a member's watch minutes are 10 x (their index in their batch + 1); control holds indexes 0 and 2 of
        # both batches: each play counted once
        assert final["control", "watch_minutes"][1] == 2 * (10.0 + 30.0)
        assert final["control", "ctr"][:3] == (4.0, 8.0, 20.0) and final["treatment", "ctr"][:3] == (4.0, 8.0, 20.0)
        assert final["control", "play_rate"][1] == 4.0
    finally:
        if job is not None:
            job.cancel().result()
        delete_topics(kafka, created)
