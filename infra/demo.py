"""The README's main command: stack up, replay MovieLens into Kafka, run the feature job, summarize Cassandra.

The feature job runs in this process's Flink mini-cluster, reading the topics from
the start under a consumer group of its own; the demo knows it is done when every
partition's sentinel (see :mod:`infra.pipeline`) shows up in Cassandra. Replaying
twice is harmless: event ids repeat and the job drops duplicates.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
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


def run_demo(limit: int | None = 3000, rate: float = 0.0) -> int:
    from infra import stack
    from infra.pipeline import feed, send_sentinels, start_feature_job, wait_for_profiles
    from infra.replay.movielens import MovieLensReplay, load_movielens

    stack.up(progress=lambda text: say(f"stack: {text}"))
    kafka, cassandra = KafkaConfig.load(), CassandraConfig.load()
    replay = MovieLensReplay(load_movielens(), limit=limit or None)
    say(f"replaying {len(replay.ratings):,} MovieLens ratings into Kafka at {kafka.bootstrap_servers}")
    with EventProducer(kafka) as producer:
        fed = feed(replay, producer, progress=lambda t: say(f"replay: {t}"), rate=rate)
        sentinels = send_sentinels(producer, kafka, fed.last_event_ms + 60_000)
    catalog = list(read_catalog_topic(kafka).values())
    write_catalog(catalog, cassandra)

    say("running the feature job (Flink mini-cluster, thread mode) until every partition is consumed")
    started = time.monotonic()
    client = start_feature_job(kafka, cassandra, group_id=f"nextwatch-demo-{uuid.uuid4().hex[:6]}")
    try:
        wait_for_profiles(cassandra, sentinels, timeout_s=3600, progress=lambda t: say(f"features: {t}"))
        # windowed rows land after the per-event ones: sessions when the watermark passes their gap,
        # trending after its coalescing delay
        top_user = Counter(v.user.user_id for v in replay.viewings).most_common(1)[0][0]
        wait_for_windows(cassandra, top_user, timeout_s=30)
    finally:
        client.cancel().result()
    seconds = time.monotonic() - started
    print_summary(cassandra, kafka, replay, fed.events, seconds, {c.title_id: c.title for c in catalog})
    return 0


def wait_for_windows(cassandra: CassandraConfig, user_id: str, timeout_s: float) -> bool:
    """Until trending has rows and ``user_id``'s session count has stopped growing (or ``timeout_s``)."""
    session = connect(cassandra, cassandra.keyspace)
    try:
        store = FeatureStore(session, cassandra.keyspace)
        deadline = time.monotonic() + timeout_s
        counts: list[int] = []
        while time.monotonic() < deadline:
            counts.append(len(store.rows("get_sessions", user_id)))
            settled = len(counts) >= 3 and counts[-1] > 0 and counts[-1] == counts[-3]
            if settled and store.rows("get_trending", "global"):
                return True
            time.sleep(1.0)
        return False
    finally:
        session.cluster.shutdown()


def print_summary(cassandra: CassandraConfig, kafka: KafkaConfig, replay: Any, events: int, seconds: float,
                  titles: dict[str, str]) -> None:
    session = connect(cassandra, cassandra.keyspace)
    try:
        store = FeatureStore(session, cassandra.keyspace)
        plays = Counter(v.user.user_id for v in replay.viewings)
        user = plays.most_common(1)[0][0]
        profile = (store.rows("get_profile", user) or [None])[0]
        cw = sorted(store.rows("get_cw", user), key=lambda r: r.last_watched, reverse=True)
        sessions = store.rows("get_sessions", user)
        trending = store.rows("get_trending", "global")
        newest = max((r.window_end for r in trending), default=None)
        trending = sorted((r for r in trending if r.window_end == newest), key=lambda r: r.rank)
        profiled = sum(1 for u in plays if store.rows("get_profile", u))
    finally:
        session.cluster.shutdown()
    late = len(read_snapshot(TOPICS_BY_NAME["late-events"].full_name(kafka), kafka, idle_s=1.0))
    dead = len(read_snapshot(TOPICS_BY_NAME["dead-letter"].full_name(kafka), kafka, idle_s=1.0))

    print(f"\nFeature job over {len(replay.ratings):,} MovieLens ratings ({events:,} events): {seconds:.0f}s "
          f"from submit to the last partition's sentinel in Cassandra ({events / seconds:,.0f} events/s)")
    print(f"  users with a profile: {profiled:,} of {len(plays):,}; late events: {late:,}; dead-lettered: {dead:,}")
    if profile is not None:
        genres = sorted((profile.genre_affinity or {}).items(), key=lambda kv: kv[1], reverse=True)[:4]
        print(f"\nUser {user} (profile v{profile.version}, last event {profile.updated_time:%Y-%m-%d %H:%M} UTC)")
        print(f"  top genres: {', '.join(f'{g} {v:.2f}' for g, v in genres)}")
        print(f"  watched {profile.total_watch_ms / 3_600_000:.1f} h; preferred runtime "
              f"{profile.preferred_runtime_minutes:.0f} min; dayparts {dict(profile.daypart_plays or {})}")
        print(f"  continue watching ({len(cw)}): " + "; ".join(
            f"{titles.get(r.title_id, r.title_id)} at {r.position_ms / r.duration_ms:.0%}" for r in cw[:5]))
        print(f"  sessions: {len(sessions)}; latest: " + (
            f"{sessions[0].titles_played} titles, {sessions[0].watch_ms / 60_000:.0f} min watched, "
            f"CTR {sessions[0].ctr:.0%}, {sessions[0].daypart} on {sessions[0].weekday}" if sessions else "none"))
    if trending:
        print(f"\nTrending now (window ending {newest} UTC): " + ", ".join(
            f"{titles.get(r.title_id, r.title_id)} ({r.plays})" for r in trending[:8]))
