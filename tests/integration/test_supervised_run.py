"""``nextwatch jobs run``: each job's process killed with SIGKILL mid-stream comes back from its checkpoint on its
own, and every member's rows end as an uninterrupted run's would (each event applied once)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from connectors.cassandra_store import connect
from connectors.events import Context, PlayEvent, RatingEvent
from connectors.feature_store import FeatureStore
from connectors.homepage_store import HomepageStore
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.model_store import ModelStore
from connectors.producer import EventProducer
from infra.process import child_pids
from tests import factories
from tests.integration.test_learning_job import _wait

USERS, ROUNDS = 10, 6
MIN = 60_000
TITLES = [f"sup-t{n}" for n in range(ROUNDS + 1)]


def _plays(users: list[str], round_: int, at_ms: int) -> list[Any]:
    """Round n: each member watched n minutes more of one playback (progress only counts what is new)."""
    ctx = Context("tv-1", "TV", "US", 0)
    return [PlayEvent(user, at_ms + round_ * MIN, ctx, "t1", "PROGRESS", f"pb-{user}", round_ * MIN, 100 * MIN,
                      event_id=f"{user}-{round_}") for user in users]


def _ratings(users: list[str], round_: int, at_ms: int) -> list[Any]:
    """Round n: each member rates one more title (feedback for the learning job, an event for the rows job)."""
    ctx = Context("tv-1", "TV", "US", 0)
    return [RatingEvent(user, at_ms + round_ * MIN, ctx, TITLES[round_], "THUMBS_UP", event_id=f"{user}-{round_}")
            for user in users]


@dataclass(frozen=True)
class Case:
    """A job: the events of a round, and what its rows show of a member after ``n`` rounds, each event once."""

    events: Callable[[list[str], int, int], list[Any]]
    shown: Callable[[Any, str], Any]  # (the stores, a member) -> what the job's rows show of them
    expected: Callable[[str, int], Any]


def _profile(stores: Any, user: str) -> Any:
    rows = stores["features"].rows("get_profile", user)
    return (rows[0].version, rows[0].total_watch_ms, rows[0].last_event_id) if rows else None


def _vectors(stores: Any, user: str) -> Any:
    rows = stores["models"].rows("get_user_vectors", user)
    return (rows[0].version, rows[0].last_event_id) if rows else None


def _homepage(stores: Any, user: str) -> Any:
    return max((page.last_event_id for page in stores["pages"].homepages(user).values()), default=None)


CASES = {
    # a profile counts every event (its version) and each minute watched once
    "features": Case(_plays, _profile, lambda user, n: (n, n * MIN, f"{user}-{n}")),
    # a user vector counts every feedback learned (its version)
    "learning": Case(_ratings, _vectors, lambda user, n: (n, f"{user}-{n}")),
    # a homepage names the newest event it reflects
    "rows": Case(_ratings, _homepage, lambda user, n: f"{user}-{n}"),
}


@pytest.mark.parametrize("job", sorted(CASES))
def test_a_killed_job_process_is_restarted_from_its_checkpoint(job: str, kafka_config: Any, cassandra_config: Any,
                                                               clean_environment: dict[str, str],
                                                               tmp_path: Path) -> None:
    case = CASES[job]
    tag = uuid.uuid4().hex[:6]
    kafka = replace(kafka_config, topic_prefix=f"supervised-{tag}.")
    created = ensure_topics(kafka)
    users = [f"sup-{tag}-{n}" for n in range(USERS)]
    at_ms = int(time.time() * 1000) - 30 * MIN
    env = {**clean_environment, "NEXTWATCH_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "NEXTWATCH_CASSANDRA_KEYSPACE": cassandra_config.keyspace,
           f"NEXTWATCH_{job.upper()}_GROUP_ID": f"{job}-{tag}", "NEXTWATCH_FLINK_CHECKPOINT_INTERVAL_MS": "1000",
           "NEXTWATCH_FLINK_CHECKPOINT_DIR": str(tmp_path)}
    producer = EventProducer(kafka)
    for title in TITLES:
        producer.send(factories.make_catalog_item(title_id=title, title=title, artwork=[], event_id=f"{title}-c"))
    log = (tmp_path / "supervisor.log").open("wb")
    supervisor = subprocess.Popen([sys.executable, "-m", "infra.cli", "jobs", "run", job], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    session = connect(cassandra_config, cassandra_config.keyspace)
    keyspace = cassandra_config.keyspace
    stores = {"features": FeatureStore(session, keyspace), "models": ModelStore(session, keyspace),
              "pages": HomepageStore(session, keyspace)}

    def reached(n: int) -> bool:
        return all(case.shown(stores, user) == case.expected(user, n) for user in users)

    try:
        for round_ in range(1, ROUNDS // 2 + 1):
            producer.send_many(case.events(users, round_, at_ms))
        producer.flush()
        _wait("the first half applied", lambda: reached(ROUNDS // 2), 180)
        _wait("a checkpoint after it", lambda: any(tmp_path.glob(f"{job}/*/chk-*/_metadata")), 60)
        [job_process] = child_pids(supervisor.pid)
        os.killpg(job_process, signal.SIGKILL)  # the job's process and what it started, at once
        for round_ in range(ROUNDS // 2 + 1, ROUNDS + 1):
            producer.send_many(case.events(users, round_, at_ms))
        producer.flush()
        _wait("the second half applied by the restarted job", lambda: reached(ROUNDS), 240)
        assert supervisor.poll() is None and child_pids(supervisor.pid) != [job_process]
        # each event once: restored state and redelivered events do not count twice, later or now
        time.sleep(2.0)
        assert reached(ROUNDS)
        text = (tmp_path / "supervisor.log").read_text(errors="replace")
        assert "restarting in 1 s from" in text and "/chk-" in text
    finally:
        supervisor.send_signal(signal.SIGINT)
        try:
            supervisor.wait(timeout=60)
        except subprocess.TimeoutExpired:
            supervisor.kill()
        log.close()
        producer.close()
        session.cluster.shutdown()
        delete_topics(kafka, created)
