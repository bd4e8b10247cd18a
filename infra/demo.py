"""The README's main command: stack up, replay MovieLens into Kafka, run the jobs, show what they wrote.

The feature job runs in this process's Flink mini-cluster, reading the topics from
the start under a consumer group of its own; the demo knows it is done when every
partition's sentinel (see :mod:`infra.pipeline`) shows up in Cassandra. Then the
learning and rows jobs run side by side over the same topics; the demo prints the
most active user's homepage, feeds a few new events for that user (they finish
their top pick and rate it) and prints the homepage again once both jobs have
applied them. It ends serving that member's homepage as a web page
(``nextwatch serve`` with the page's buttons on) while the jobs keep running, until
Ctrl-C stops the service, the jobs and the stack (``--no-serve``: end after the
text instead).

Running the demo again on the same local broker does not replay again: a second copy
of the history, re-timed to a later "now", would land behind the first copy's
watermark and be routed to late-events. It reruns the job over the events already in
the topics (rebuilt from ``.nextwatch/run/demo.json``), which writes the same rows.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from connectors.cassandra_store import connect
from connectors.catalog_store import CatalogStore, read_catalog_topic
from connectors.config import CassandraConfig, KafkaConfig
from connectors.consumer import read_snapshot
from connectors.events import CatalogItem
from connectors.feature_store import FeatureStore
from connectors.producer import EventProducer
from connectors.topics import TOPICS_BY_NAME


def say(text: str) -> None:
    print(f"[demo] {text}", file=sys.stderr, flush=True)


def sync_catalog(idle_s: float = 1.0, kafka: KafkaConfig | None = None,
                 cassandra: CassandraConfig | None = None) -> int:
    """Copy the catalog topic into Cassandra's titles table (the latest snapshot per title)."""
    kafka = kafka or KafkaConfig.load()
    items = read_catalog_topic(kafka, idle_s=idle_s)
    return write_catalog(list(items.values()), cassandra or CassandraConfig.load())


def write_catalog(items: list[CatalogItem], cassandra: CassandraConfig) -> int:
    session = connect(cassandra, cassandra.keyspace)
    try:
        return CatalogStore(session, cassandra.keyspace).upsert(items)
    finally:
        session.cluster.shutdown()


@dataclass
class DemoFeed:
    """What a demo put into the topics of one local broker (``.nextwatch/run/demo.json``)."""

    broker_started_at: float
    limit: int
    now_ms: int
    events: int
    last_event_ms: int

    @staticmethod
    def path() -> Path:
        from infra.process import state_dir

        return state_dir() / "run" / "demo.json"

    @classmethod
    def on_this_broker(cls) -> DemoFeed | None:
        """The earlier demo's feed if the local broker that took it still runs (its topics live in memory)."""
        from infra.process import RunRecord

        broker = RunRecord.load("kafka")
        try:
            feed = cls(**json.loads(cls.path().read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return feed if broker is not None and broker.alive and broker.started_at == feed.broker_started_at else None

    def save(self) -> None:
        self.path().parent.mkdir(parents=True, exist_ok=True)
        self.path().write_text(json.dumps(asdict(self)))


def run_demo(limit: int | None = 3000, rate: float = 0.0, serve_page: bool = True) -> int:
    from infra import stack
    from infra.pipeline import feed, send_sentinels, start_job, wait_for_profiles
    from infra.process import RunRecord
    from infra.replay.movielens import MovieLensReplay, load_movielens

    stack.up(progress=lambda text: say(f"stack: {text}"))
    kafka, cassandra = KafkaConfig.load(), CassandraConfig.load()
    earlier = DemoFeed.on_this_broker()
    if earlier is not None:
        if earlier.limit != (limit or 0):
            say(f"the topics already hold the demo's replay of {earlier.limit or 'all':,} ratings; running over "
                f"those (for --limit {limit or 0}, `nextwatch stack down` first: the local broker keeps topics "
                "in memory)")
        replay = MovieLensReplay(load_movielens(), limit=earlier.limit or None, now_ms=earlier.now_ms)
        say(f"rerunning over the {earlier.events:,} events already in Kafka at {kafka.bootstrap_servers}")
        with EventProducer(kafka) as producer:  # fresh sentinels at the same event time: never late
            sentinels = send_sentinels(producer, kafka, earlier.last_event_ms + 60_000)
        events = earlier.events
    else:
        replay = MovieLensReplay(load_movielens(), limit=limit or None)
        say(f"replaying {len(replay.ratings):,} MovieLens ratings into Kafka at {kafka.bootstrap_servers}")
        with EventProducer(kafka) as producer:
            fed = feed(replay, producer, progress=lambda t: say(f"replay: {t}"), rate=rate)
            sentinels = send_sentinels(producer, kafka, fed.last_event_ms + 60_000)
        events = fed.events
        broker = RunRecord.load("kafka")
        if broker is not None:  # a local broker: remember what it holds
            DemoFeed(broker.started_at, limit or 0, replay.now_ms, fed.events, fed.last_event_ms).save()
    catalog = list(read_catalog_topic(kafka).values())
    write_catalog(catalog, cassandra)

    from jobs.runtime import FlinkConfig

    say(f"running the feature job (Flink mini-cluster, {FlinkConfig.load().execution_mode} mode) until every "
        "partition is consumed")
    started = time.monotonic()
    client = start_job("features", kafka, cassandra, group_id=f"nextwatch-demo-{uuid.uuid4().hex[:6]}")
    try:
        wait_for_profiles(cassandra, sentinels, timeout_s=3600, progress=lambda t: say(f"features: {t}"))
        # windowed rows land after the per-event ones: sessions when the watermark passes their gap,
        # trending after its coalescing delay
        wait_for_windows(cassandra, sorted({v.user.user_id for v in replay.viewings}),
                         replay.rebase(replay.start_ms), timeout_s=30)
    finally:
        client.cancel().result()
    seconds = time.monotonic() - started
    names = {c.title_id: c.title for c in catalog}
    print_summary(cassandra, kafka, replay, events, seconds, names)
    member = show_homepage_change(kafka, cassandra, replay, names, then=serve_homepage if serve_page else None)
    if serve_page and member is not None:
        say("stopping the stack")
        stack.down(progress=lambda text: say(f"stack: {text}"))
    return 0


def serve_homepage(member_id: str, device: str) -> None:
    """``nextwatch serve`` with the page's buttons on, while the jobs keep running, until Ctrl-C."""
    import os

    from infra.serve.config import ServeConfig
    from infra.serve.server import serve

    os.environ["NEXTWATCH_SERVE_DEMO_ACTIONS"] = "true"  # its workers read their settings from the environment
    config = ServeConfig.load()
    print(f"\nThe homepage in a browser: http://{config.host}:{config.port}/?member={member_id}&device={device}\n"
          "  (act on it: play, finish, rate, search; the jobs keep running. Ctrl-C stops everything)", flush=True)
    serve(config)


def show_homepage_change(kafka: KafkaConfig, cassandra: CassandraConfig, replay: Any, names: dict[str, str],
                         then: Callable[[str, str], None] | None = None) -> str | None:
    """Learning and rows jobs over the topics; a user's homepage, a few new events, the homepage again.

    ``then(member, device)`` runs before the jobs are stopped (the demo serves the page there); returns the
    member shown.
    """
    from connectors.events import PlayEvent, RatingEvent
    from connectors.homepage_store import HomepageClient
    from connectors.model_store import ModelStore
    from infra.pipeline import send_sentinels, start_job, wait_for_profiles
    from jobs.context import context_bucket, device_class
    from jobs.flink.learning.config import LearningJobConfig
    from jobs.flink.rows.config import RowsJobConfig

    run = uuid.uuid4().hex[:6]
    say("running the learning and rows jobs (user vectors, top picks, homepages) until every partition is consumed")
    # a fresh group reads the topics from the start: no warm start, or a rerun would learn it all twice
    learning = start_job("learning", kafka, cassandra, settings=LearningJobConfig(
        group_id=f"nextwatch-demo-learning-{run}", warm_start=False))
    rows = start_job("rows", kafka, cassandra, settings=RowsJobConfig(group_id=f"nextwatch-demo-rows-{run}"))
    session = connect(cassandra, cassandra.keyspace)
    try:
        with EventProducer(kafka) as producer:
            sentinels = send_sentinels(producer, kafka, int(time.time() * 1000), run_id=f"learn-{run}",
                                       topics=("play", "browse", "rating"), feedback=True)
        wait_for_profiles(cassandra, sentinels, timeout_s=3600, vectors=True,
                          progress=lambda t: say(f"learning: {t}"))
        plays = Counter(v.user.user_id for v in replay.viewings)
        user_id = max(plays, key=lambda u: (plays[u], u))
        context = next(v.user.context for v in replay.viewings if v.user.user_id == user_id)
        client = HomepageClient(session, cassandra.keyspace)

        def homepage_when(ready: Callable[[Any], bool], what: str) -> Any:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                bucket = context_bucket(int(time.time() * 1000), context.utc_offset_minutes, context.device_class)
                page = client.homepage(user_id, bucket)
                if page is not None and page.served_context == bucket and ready(page):
                    return page
                time.sleep(0.2)
            raise TimeoutError(f"no homepage for {user_id} {what} within 120 s")

        before = homepage_when(lambda page: any(r.row_id == "top_picks" for r in page.rows), "with top picks")
        print_homepage(before, names, f"\nHomepage of {user_id} ({before.served_context})")
        picks = next((r for r in before.rows if r.row_id == "top_picks"), None)
        if picks is None or not picks.items:
            say("no top picks to act on; done")
            return None
        chosen = picks.items[0].title_id
        now = int(time.time() * 1000)
        events: list[Any] = [PlayEvent(user_id, now, context, chosen, "START", f"demo-{run}", 0, 5_400_000),
                  PlayEvent(user_id, now + 1, context, chosen, "COMPLETE", f"demo-{run}", 5_400_000, 5_400_000),
                  RatingEvent(user_id, now + 2, context, chosen, "STARS", 5.0)]
        say(f"{user_id} watches their top pick {names.get(chosen, chosen)!r} to the end and rates it 5 stars")
        with EventProducer(kafka) as producer:
            for event in events:
                producer.send(event)
        # both hops: the rows job applied the newest event, the learning job's update counts all three
        vectors = ModelStore(session, cassandra.keyspace).rows("get_user_vectors", user_id)
        last, learned = events[-1].event_id, (vectors[0].version if vectors else 0) + len(events)
        after = homepage_when(lambda page: page.last_event_id == last
                              and int(page.model_versions.get("learning_version", "0")) >= learned,
                              "after the new events")
        print_homepage(after, names, f"\nHomepage of {user_id} after those events ({after.served_context})")
        shown = {i.title_id for r in after.rows for i in r.items}
        anchored = any(r.row_id == f"because_you_watched:{chosen}" for r in after.rows)
        print(f"  {names.get(chosen, chosen)!r} is {'still shown (!)' if chosen in shown else 'no longer shown'}"
              f"{'; a row of titles like it leads with it as anchor' if anchored else ''}")
        if then is not None:
            then(user_id, device_class(context.device_class))
        return user_id
    finally:
        session.cluster.shutdown()
        learning.cancel().result()
        rows.cancel().result()


def print_homepage(page: Any, names: dict[str, str], heading: str, per_row: int = 5) -> None:
    print(heading)
    for row in page.rows:
        shown = ", ".join(names.get(i.title_id, i.title_id) for i in row.items[:per_row])
        more = f" (+{len(row.items) - per_row})" if len(row.items) > per_row else ""
        print(f"  {row.title}: {shown}{more}")


def wait_for_windows(cassandra: CassandraConfig, user_ids: list[str], since_ms: int, timeout_s: float) -> bool:
    """Until trending has rows and the closed sessions of ``user_ids`` have stopped growing (or ``timeout_s``)."""
    session = connect(cassandra, cassandra.keyspace)
    try:
        store = FeatureStore(session, cassandra.keyspace)
        deadline = time.monotonic() + timeout_s
        counts: list[int] = []
        while time.monotonic() < deadline:
            counts.append(sum(map(len, closed_sessions(store, user_ids, since_ms).values())))
            settled = len(counts) >= 3 and counts[-1] > 0 and counts[-1] == counts[-3]
            if settled and store.rows("get_trending", "global"):
                return True
            time.sleep(1.0)
        return False
    finally:
        session.cluster.shutdown()


def closed_sessions(store: FeatureStore, user_ids: list[str], since_ms: int) -> dict[str, list[Any]]:
    """Session rows of ``user_ids`` starting at ``since_ms`` or later (one partition read each: no scan).

    Earlier demos on another broker left rows on a timeline of their own; ``since_ms`` leaves them out.
    """
    return {u: [r for r in store.rows("get_sessions", u) if _epoch_ms(r.session_start) >= since_ms]
            for u in user_ids}


def _epoch_ms(value: Any) -> int:
    return int(value.replace(tzinfo=UTC).timestamp() * 1000)


def print_summary(cassandra: CassandraConfig, kafka: KafkaConfig, replay: Any, events: int, seconds: float,
                  titles: dict[str, str]) -> None:
    session = connect(cassandra, cassandra.keyspace)
    try:
        store = FeatureStore(session, cassandra.keyspace)
        plays = Counter(v.user.user_id for v in replay.viewings)
        sessions_of = closed_sessions(store, sorted(plays), replay.rebase(replay.start_ms))
        # the most active user with a closed session (a session row is written when its gap closes;
        # a user who binges to the replay's end has one still open)
        user = max(plays, key=lambda u: (bool(sessions_of[u]), plays[u], u))
        sessions = sessions_of[user]
        profile = (store.rows("get_profile", user) or [None])[0]
        cw = sorted(store.rows("get_cw", user), key=lambda r: r.last_watched, reverse=True)
        trending = store.rows("get_trending", "global")
        newest = max((r.window_end for r in trending), default=None)
        trending = sorted((r for r in trending if r.window_end == newest), key=lambda r: r.rank)
        profiled = sum(1 for u in plays if store.rows("get_profile", u))
        closed_count = sum(len(rows) for rows in sessions_of.values())
    finally:
        session.cluster.shutdown()
    late = len(read_snapshot(TOPICS_BY_NAME["late-events"].full_name(kafka), kafka, idle_s=1.0))
    dead = len(read_snapshot(TOPICS_BY_NAME["dead-letter"].full_name(kafka), kafka, idle_s=1.0))

    print(f"\nFeature job over {len(replay.ratings):,} MovieLens ratings ({events:,} events): {seconds:.0f}s "
          f"from submit to the last partition's sentinel in Cassandra ({events / seconds:,.0f} events/s)")
    print(f"  users with a profile: {profiled:,} of {len(plays):,}; closed sessions: {closed_count:,}; "
          f"late events: {late:,}; dead-lettered: {dead:,}")
    if profile is not None:
        genres = sorted((profile.genre_affinity or {}).items(), key=lambda kv: kv[1], reverse=True)[:4]
        print(f"\nUser {user} (profile v{profile.version}, last event {profile.updated_time:%Y-%m-%d %H:%M} UTC)")
        print(f"  top genres: {', '.join(f'{g} {v:.2f}' for g, v in genres)}")
        print(f"  watched {profile.total_watch_ms / 3_600_000:.1f} h; preferred runtime "
              f"{profile.preferred_runtime_minutes:.0f} min; dayparts {dict(profile.daypart_plays or {})}")
        print(f"  continue watching ({len(cw)}): " + "; ".join(
            f"{titles.get(r.title_id, r.title_id)} at {r.position_ms / r.duration_ms:.0%}" for r in cw[:5]))
        print(f"  closed sessions: {len(sessions)}; latest: " + (
            f"{sessions[0].titles_played} titles, {sessions[0].watch_ms / 60_000:.0f} min watched, "
            f"CTR {sessions[0].ctr:.0%}, {sessions[0].daypart} on {sessions[0].weekday}" if sessions
            else "none closed yet"))
    if trending:
        print(f"\nTrending now (window ending {newest} UTC): " + ", ".join(
            f"{titles.get(r.title_id, r.title_id)} ({r.plays})" for r in trending[:8]))
