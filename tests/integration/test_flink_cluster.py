"""The feature job on a standalone Flink cluster at parallelism 2: submit, stop with a savepoint, resume, metrics."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from connectors.feature_store import FeatureStore
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from infra import flink_cluster
from jobs.flink import job_file
from tests.integration.feature_history import build_history


def _wait_for_version(store: FeatureStore, user: str, version: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not ((rows := store.rows("get_profile", user)) and rows[0].version == version):
        assert time.monotonic() < deadline, f"profile of {user} never reached version {version}"
        time.sleep(0.5)


def test_feature_job_on_the_standalone_cluster(kafka_config: Any, cassandra_config: Any,
                                               cassandra_session: Any) -> None:
    kafka = replace(kafka_config, topic_prefix=f"cluster-{uuid.uuid4().hex[:6]}.")
    created = ensure_topics(kafka)
    history = build_history()
    env = {"NEXTWATCH_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "NEXTWATCH_CASSANDRA_KEYSPACE": cassandra_config.keyspace,
           "NEXTWATCH_FEATURES_GROUP_ID": f"cluster-{uuid.uuid4().hex[:6]}",
           "NEXTWATCH_FEATURES_IDLENESS_MS": "2000"}
    store = FeatureStore(cassandra_session, cassandra_config.keyspace)
    job_ids: list[str] = []
    split = history.kill_after
    first_applied = len({e.event_id for e in history.events[:split]})
    try:
        with EventProducer(kafka) as producer:
            for event in [*history.catalog, *history.events[:split]]:
                producer.send(event)
        job_ids.append(flink_cluster.submit(job_file("features"), parallelism=2, env=env))
        _wait_for_version(store, history.user, first_applied)
        parallelism = flink_cluster.job_parallelism(job_ids[0])
        assert parallelism and set(parallelism.values()) == {2}, parallelism

        savepoint = flink_cluster.stop(job_ids[0])
        assert Path(savepoint.removeprefix("file:")).is_dir()
        assert job_ids[0] not in dict(flink_cluster.running_jobs())

        with EventProducer(kafka) as producer:  # arrives while the job is stopped
            for event in history.events[split:]:
                producer.send(event)
            for garbage in history.garbage:
                producer.send_encoded(kafka.topic_prefix + "play", history.user.encode(), garbage, history.base_ms)
        # restored at parallelism 4: the key groups of two subtasks' state spread over four
        job_ids.append(flink_cluster.submit(job_file("features"), parallelism=4,
                                            savepoint=savepoint, env=env))
        _wait_for_version(store, history.user, history.applied)  # the first part restored from the savepoint
        assert set(flink_cluster.job_parallelism(job_ids[1]).values()) == {4}

        # Flink's metric system, read back through the cluster's REST API (summed over subtasks)
        names = {"events_in", "events_invalid", "events_duplicate", "events_late", "events_applied",
                 "freshness_lag_ms"}
        deadline = time.monotonic() + 30
        while (metrics := flink_cluster.job_metrics(job_ids[1], names)).get("events_invalid", 0) < 3:
            assert time.monotonic() < deadline, f"metrics never showed the dead-lettered input: {metrics}"
            time.sleep(1.0)
        new_events = len(history.events) - split
        assert metrics["events_in"] == new_events + len(history.garbage)
        assert metrics["events_invalid"] == len(history.garbage)
        assert metrics["events_applied"] + metrics["events_duplicate"] == new_events
        ids = [e.event_id for e in history.events]
        assert metrics["events_duplicate"] == sum(1 for n in range(split, len(ids)) if ids[n] in ids[:n])
        assert metrics["events_late"] == 0 and metrics["freshness_lag_ms"] > 0

        # `nextwatch jobs upgrade` down to parallelism 1: the state of four subtasks in one, still counting on
        old_id, savepoint, new_id = flink_cluster.upgrade("features", 1, env=env)
        job_ids.append(new_id)
        assert old_id == job_ids[1] and Path(savepoint.removeprefix("file:")).is_dir()
        assert set(flink_cluster.job_parallelism(new_id).values()) == {1}
        with EventProducer(kafka) as producer:
            producer.send(replace(history.events[-1], event_id=f"after-upgrade-{uuid.uuid4().hex}",
                                  event_time_ms=history.events[-1].event_time_ms + 1000))
        _wait_for_version(store, history.user, history.applied + 1)  # not 1: the state came along
    finally:
        running = dict(flink_cluster.running_jobs())
        for job_id in job_ids:
            if job_id in running:
                flink_cluster.flink_cli("cancel", job_id)
        flink_cluster.FlinkCluster().stop()
        delete_topics(kafka, created)


def test_learning_job_on_the_standalone_cluster(kafka_config: Any, cassandra_config: Any,
                                                cassandra_session: Any) -> None:
    from connectors.model_store import ModelStore
    from tests.integration.test_learning_restart import _history

    tag = uuid.uuid4().hex[:6]
    kafka = replace(kafka_config, topic_prefix=f"lcluster-{tag}.")
    created = ensure_topics(kafka)
    events = _history(tag)
    env = {"NEXTWATCH_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "NEXTWATCH_CASSANDRA_KEYSPACE": cassandra_config.keyspace,
           "NEXTWATCH_LEARNING_GROUP_ID": f"lcluster-{tag}", "NEXTWATCH_LEARNING_SNAPSHOT_MS": "500",
           "NEXTWATCH_LEARNING_EVALUATE_SHARE": "1"}  # every member tested: the counts are exact
    store = ModelStore(cassandra_session, cassandra_config.keyspace)
    job_id = None
    try:
        with EventProducer(kafka) as producer:
            for event in events:
                producer.send(event)
        job_id = flink_cluster.submit(job_file("learning"), parallelism=2, env=env)
        users = sorted({e.user_id for e in events})
        deadline = time.monotonic() + 120
        while not all((rows := store.rows("get_user_vectors", u)) and rows[0].version == 4 for u in users):
            assert time.monotonic() < deadline, "not every user's events were applied at parallelism 2"
            time.sleep(0.5)
        parallelism = flink_cluster.job_parallelism(job_id)
        assert parallelism and set(parallelism.values()) == {2}, parallelism
        # item vectors owned by two subtasks, published to both: every title has its neighbours
        titles = sorted({e.title_id for e in events})
        deadline = time.monotonic() + 60
        while not all(store.rows("get_similar_titles", t) for t in titles):
            assert time.monotonic() < deadline, "similar titles missing"
            time.sleep(0.5)
        group = {t for t in titles if t.startswith("g0")}
        for title in group:
            assert set(store.rows("get_similar_titles", title)[0].neighbor_ids[:3]) == group - {title}
        names = {"feedback_applied", "eval_touches", "items_published"}
        expected = {"feedback_applied": len(events), "eval_touches": len(events) - len(users)}
        # the REST API samples each operator's metrics on its own few-second period, so one answer
        # can show the user side finished while the item side's counters are still an older sample
        deadline = time.monotonic() + 45
        while True:
            metrics = flink_cluster.job_metrics(job_id, names)
            seen = {name: metrics.get(name, 0) for name in expected}
            if seen == expected and metrics.get("items_published", 0) > 0:
                break
            assert all(seen[name] <= expected[name] for name in expected), metrics  # never more than once
            assert time.monotonic() < deadline, f"metrics never showed every event applied: {metrics}"
            time.sleep(1.0)

        # `nextwatch jobs upgrade` to parallelism 4, then 1: each member's vector and the item vectors come along
        last = max(e.event_time_ms for e in events)
        for round_, parallelism in enumerate((4, 1), start=1):
            before = {u: store.rows("get_user_vectors", u)[0] for u in users}
            _, _, job_id = flink_cluster.upgrade("learning", parallelism, env=env)
            assert set(flink_cluster.job_parallelism(job_id).values()) == {parallelism}
            more = [replace(e, event_id=f"{e.event_id}-again-{round_}", stars=4.0,
                            event_time_ms=last + (round_ * 100 + n) * 60_000)
                    for n, e in enumerate(e for e in events if e.event_id.endswith("-0"))]
            with EventProducer(kafka) as producer:
                for event in more:
                    producer.send(event)
            deadline = time.monotonic() + 120
            while not all((rows := store.rows("get_user_vectors", u)) and rows[0].version == 4 + round_
                          for u in users):
                assert time.monotonic() < deadline, f"after the upgrade to {parallelism}, members' vectors did " \
                                                    f"not go on from version {3 + round_}"
                time.sleep(0.5)
            after = {u: store.rows("get_user_vectors", u)[0] for u in users}
            # learned from the new rating on top of the restored vector, not from a fresh one
            assert all(after[u].last_event_id.endswith(f"-again-{round_}")
                       and after[u].rating_vector != before[u].rating_vector for u in users)
    finally:
        if job_id is not None:
            flink_cluster.flink_cli("cancel", job_id)
        flink_cluster.FlinkCluster().stop()
        delete_topics(kafka, created)


def test_rows_job_rescaled_on_the_standalone_cluster(kafka_config: Any, cassandra_config: Any,
                                                     cassandra_session: Any, make_event: Any) -> None:
    """The rows job at parallelism 2, upgraded to 4 and then to 1: each member's picks (job state, from the
    learning job's updates) are still there after each move, when their next event rebuilds their page."""
    from connectors.events import Availability, BrowseEvent, Context
    from connectors.homepage_store import HomepageClient
    from connectors.topics import TOPICS_BY_NAME
    from jobs.context import context_bucket
    from jobs.models.online import MODEL_VERSION

    tag = uuid.uuid4().hex[:6]
    kafka = replace(kafka_config, topic_prefix=f"rcluster-{tag}.")
    created = ensure_topics(kafka)
    day, now = 86_400_000, int(time.time() * 1000)
    tv = Context("tv-1", "TV", "US", 0)
    titles = [f"t{n}-{tag}" for n in range(10)]
    members = [f"member-{n}-{tag}" for n in range(8)]
    picks = {m: titles[n % 3:n % 3 + 5] for n, m in enumerate(members)}  # each member's own
    env = {"NEXTWATCH_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "NEXTWATCH_CASSANDRA_KEYSPACE": cassandra_config.keyspace,
           "NEXTWATCH_ROWS_GROUP_ID": f"rcluster-{tag}", "NEXTWATCH_ROWS_FLUSH_MS": "100",
           "NEXTWATCH_ROWS_EXPLORE_SHARE": "0", "NEXTWATCH_ROWS_ROW_ORDER_EPSILON": "0",
           "NEXTWATCH_ROWS_ARTWORK_EPSILON": "0",
           # the rows job runs faster in thread mode on this cluster (docs/operations.md)
           "NEXTWATCH_FLINK_EXECUTION_MODE": "thread"}
    client = HomepageClient(cassandra_session, cassandra_config.keyspace)
    job_id = None

    def browse_all(producer: EventProducer, round_: int) -> dict[str, str]:
        sent = {}
        for member in members:
            event = BrowseEvent(member, int(time.time() * 1000), tv, "SCROLL", f"scroll-{round_}", "home",
                                scroll_depth=round_)
            producer.send(event)
            sent[member] = event.event_id
        producer.flush()
        return sent

    def holds_picks(member: str, page: Any) -> bool:
        # a top-picks row made of this member's picks (the page may leave some out): they exist only in state
        shown = next((row.items for row in page.rows if row.row_id == "top_picks"), ())
        return bool(shown) and {item.title_id for item in shown} <= set(picks[member])

    def pages_reflect(sent: dict[str, str]) -> None:
        """Every member's page built from their newest event, holding their picks: at the start, once the
        picks are in (they arrive on another topic than the scroll, in either order); after a move, from the
        restored state."""
        bucket = context_bucket(int(time.time() * 1000), 0, "TV")
        deadline = time.monotonic() + 120
        while True:
            pages = {m: client.homepage(m, bucket) for m in members}
            if all(p is not None and p.last_event_id == sent[m] and holds_picks(m, p) for m, p in pages.items()):
                return
            assert time.monotonic() < deadline, f"pages never reflected every member's newest event with their " \
                                                f"picks: {pages}"
            time.sleep(0.5)

    try:
        with EventProducer(kafka) as producer:
            for n, title_id in enumerate(titles):
                producer.send(make_event("catalog", title_id=title_id, title=f"Title {n}", genres=["Drama"],
                                         maturity_rating="ALL", updated_time_ms=now - day,
                                         availability=Availability(now - 10 * day), artwork=[]))
            for member in members:
                producer.send_encoded(TOPICS_BY_NAME["user-updates"].full_name(kafka), member.encode(),
                                      producer.codec.encode_record("user_update", {
                                          "schema_version": 1, "event_id": f"{member}:1", "user_id": member,
                                          "model_version": MODEL_VERSION, "version": 1, "last_event_id": "",
                                          "updated_ms": now, "pick_ids": picks[member],
                                          "pick_scores": [1.0 - k / 10 for k in range(5)],
                                          "pick_reasons": ["item_cf"] * 5, "recent_titles": [],
                                          "content_profile": [], "ingest_time_ms": now}))
            producer.flush()
            job_id = flink_cluster.submit(job_file("rows"), parallelism=2, env=env)
            pages_reflect(browse_all(producer, 1))
            for parallelism, round_ in ((4, 2), (1, 3)):
                _, _, job_id = flink_cluster.upgrade("rows", parallelism, env=env)
                assert set(flink_cluster.job_parallelism(job_id).values()) == {parallelism}
                pages_reflect(browse_all(producer, round_))
    finally:
        if job_id is not None:
            flink_cluster.flink_cli("cancel", job_id)
        flink_cluster.FlinkCluster().stop()
        delete_topics(kafka, created)


def test_metrics_job_rescaled_on_the_standalone_cluster(kafka_config: Any, cassandra_config: Any,
                                                        cassandra_session: Any) -> None:
    """The metrics job at parallelism 2, upgraded to 4 and then to 1, with every event redelivered after each
    move: the sums end where one run that saw each event once ends (member totals and the event-id hashes
    that deduplicate them come along)."""
    from tests.integration.test_metrics_restart import _events, _send, _sums

    tag = uuid.uuid4().hex[:6]
    kafka = replace(kafka_config, topic_prefix=f"mcluster-{tag}.")
    created = ensure_topics(kafka)
    experiment = f"exp-{tag}"
    members = [f"m{n}-{tag}" for n in range(8)]
    now = int(time.time() * 1000)
    first, second = _events(experiment, members[:4], now), _events(experiment, members[4:], now)
    env = {"NEXTWATCH_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "NEXTWATCH_CASSANDRA_KEYSPACE": cassandra_config.keyspace,
           "NEXTWATCH_METRICS_GROUP_ID": f"mcluster-{tag}", "NEXTWATCH_METRICS_FLUSH_MS": "200",
           "NEXTWATCH_FLINK_EXECUTION_MODE": "thread"}
    job_id = None

    def settled(members_in: int, impressions: int) -> dict[tuple[str, str], tuple[float, ...]]:
        deadline = time.monotonic() + 120
        while True:
            sums = _sums(cassandra_session, cassandra_config.keyspace, experiment)
            ctr = [sums.get((v, "ctr")) for v in ("control", "treatment")]
            if all(ctr) and sum(c[0] for c in ctr if c) == members_in and sum(c[2] for c in ctr if c) == impressions:
                time.sleep(2.0)  # anything counted twice would show by now
                return _sums(cassandra_session, cassandra_config.keyspace, experiment)
            assert time.monotonic() < deadline, f"sums never reached {members_in} members: {sums}"
            time.sleep(0.5)

    try:
        with EventProducer(kafka) as producer:
            job_id = flink_cluster.submit(job_file("metrics"), parallelism=2, env=env)
            _send(producer, kafka, first)
            assert settled(4, 20)["control", "ctr"][:3] == (2.0, 4.0, 10.0)  # members, clicks, impressions
            _, _, job_id = flink_cluster.upgrade("metrics", 4, env=env)
            assert set(flink_cluster.job_parallelism(job_id).values()) == {4}
            _send(producer, kafka, first)  # redelivered after the move: already counted
            _send(producer, kafka, second)
            after_four = settled(8, 40)
            _, _, job_id = flink_cluster.upgrade("metrics", 1, env=env)
            assert set(flink_cluster.job_parallelism(job_id).values()) == {1}
            _send(producer, kafka, [*first, *second])  # all of it again
            time.sleep(5.0)
        final = _sums(cassandra_session, cassandra_config.keyspace, experiment)
        assert final == after_four
        assert final["control", "ctr"][:3] == (4.0, 8.0, 20.0) and final["treatment", "ctr"][:3] == (4.0, 8.0, 20.0)
        assert final["control", "watch_minutes"][1] == 2 * (10.0 + 30.0)  # each play once
    finally:
        if job_id is not None:
            flink_cluster.flink_cli("cancel", job_id)
        flink_cluster.FlinkCluster().stop()
        delete_topics(kafka, created)
