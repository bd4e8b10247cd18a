"""``nextwatch jobs run``: the job's process killed with SIGKILL mid-stream comes back from its checkpoint on its own,
and every member's rows end as an uninterrupted run's would (each event counted once)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from connectors.cassandra_store import connect
from connectors.events import Context, PlayEvent
from connectors.feature_store import FeatureStore
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from infra.process import child_pids
from tests.integration.test_learning_job import _wait

USERS, ROUNDS = 10, 6
MIN = 60_000


def _plays(users: list[str], round_: int, at_ms: int) -> list[PlayEvent]:
    """Round n: each member watched n minutes more of one playback (progress only counts what is new)."""
    ctx = Context("tv-1", "TV", "US", 0)
    return [PlayEvent(user, at_ms + round_ * MIN, ctx, "t1", "PROGRESS", f"pb-{user}", round_ * MIN, 100 * MIN,
                      event_id=f"{user}-{round_}") for user in users]


def test_a_killed_job_process_is_restarted_from_its_checkpoint(kafka_config: Any, cassandra_config: Any,
                                                               tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    kafka = replace(kafka_config, topic_prefix=f"supervised-{tag}.")
    created = ensure_topics(kafka)
    users = [f"sup-{tag}-{n}" for n in range(USERS)]
    at_ms = int(time.time() * 1000) - 30 * MIN
    env = {**os.environ, "NEXTWATCH_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "NEXTWATCH_CASSANDRA_KEYSPACE": cassandra_config.keyspace,
           "NEXTWATCH_FEATURES_GROUP_ID": f"features-{tag}", "NEXTWATCH_FLINK_CHECKPOINT_INTERVAL_MS": "1000",
           "NEXTWATCH_FLINK_CHECKPOINT_DIR": str(tmp_path)}
    log = (tmp_path / "supervisor.log").open("wb")
    supervisor = subprocess.Popen([sys.executable, "-m", "infra.cli", "jobs", "run", "features"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    session = connect(cassandra_config, cassandra_config.keyspace)
    store = FeatureStore(session, cassandra_config.keyspace)
    producer = EventProducer(kafka)

    def watched(minutes: int) -> bool:
        return all((rows := store.rows("get_profile", user)) and rows[0].total_watch_ms == minutes * MIN
                   for user in users)

    try:
        for round_ in range(1, ROUNDS // 2 + 1):
            producer.send_many(_plays(users, round_, at_ms))
        producer.flush()
        _wait("the first half applied", lambda: watched(ROUNDS // 2), 180)
        _wait("a checkpoint after it", lambda: any(tmp_path.glob("features/*/chk-*/_metadata")), 60)
        [job_process] = child_pids(supervisor.pid)
        os.killpg(job_process, signal.SIGKILL)  # the job's process and what it started, at once
        for round_ in range(ROUNDS // 2 + 1, ROUNDS + 1):
            producer.send_many(_plays(users, round_, at_ms))
        producer.flush()
        _wait("the second half applied by the restarted job", lambda: watched(ROUNDS), 240)
        assert supervisor.poll() is None and child_pids(supervisor.pid) != [job_process]
        # each event counted once: restored state and redelivered events do not count twice
        time.sleep(2.0)
        for user in users:
            profile = store.rows("get_profile", user)[0]
            assert (profile.version, profile.total_watch_ms, profile.last_event_id) == (
                ROUNDS, ROUNDS * MIN, f"{user}-{ROUNDS}")
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
