"""The README's main command: stack up, replay MovieLens into Kafka, read a summary back.

Reading back goes through the same connectors every service uses: a consumer
group decodes every topic (any published schema version), the catalog is written
to Cassandra's ``titles`` table, and the summary is computed from what was read,
deduplicated by event id (re-running the demo replays the same ids, so the
figures do not double).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.cassandra_store import connect
from connectors.catalog_store import CatalogStore
from connectors.codec import EventCodec
from connectors.config import CassandraConfig, KafkaConfig
from connectors.consumer import EventConsumer
from connectors.events import CatalogItem, from_record
from connectors.producer import EventProducer
from connectors.topics import TOPICS_BY_NAME, USER_EVENT_TOPICS


def say(text: str) -> None:
    print(f"[demo] {text}", file=sys.stderr, flush=True)


@dataclass
class ReadBack:
    messages: Counter[str] = field(default_factory=Counter)
    distinct: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    undecodable: int = 0
    users: set[str] = field(default_factory=set)
    titles_played: set[str] = field(default_factory=set)
    impressed_items: int = 0
    clicks: int = 0
    stars_total: float = 0.0
    ratings: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    catalog: dict[str, CatalogItem] = field(default_factory=dict)


def read_back(kafka: KafkaConfig, idle_s: float = 3.0, first_wait_s: float = 30.0,
              progress_every_s: float = 2.0) -> ReadBack:
    """Consume every event topic from the start until nothing arrives for ``idle_s``.

    (The broker's high watermark is unreliable here, so "the end" is an idle gap;
    the group join itself takes a few seconds, hence the longer first wait.)
    """
    out = ReadBack()
    seen: set[str] = set()
    topics = [TOPICS_BY_NAME[name].full_name(kafka) for name in (*USER_EVENT_TOPICS, "catalog")]
    group = f"nextwatch-demo-{uuid.uuid4().hex[:8]}"
    started = last_report = time.monotonic()
    last_message = time.monotonic() + first_wait_s - idle_s
    total = 0
    with EventConsumer(topics, group, kafka) as consumer:
        while time.monotonic() - last_message < idle_s:
            message = consumer.poll(0.5)
            if message is None:
                continue
            last_message = time.monotonic()
            total += 1
            name = message.topic[len(kafka.topic_prefix):]
            out.messages[name] += 1
            if message.event is None:
                out.undecodable += 1
                continue
            record = message.event.record
            if record["event_id"] in seen:
                continue
            seen.add(record["event_id"])
            out.distinct[name] += 1
            _tally(out, message.event.subject, record)
            if last_message - last_report >= progress_every_s:
                last_report = last_message
                say(f"read {total:,} messages ({total / (last_message - started):,.0f}/s)")
    return out


def _tally(out: ReadBack, subject: str, record: dict[str, Any]) -> None:
    if subject == "catalog_item":
        item = from_record(CatalogItem, record)
        known = out.catalog.get(item.title_id)
        if known is None or item.updated_time_ms >= known.updated_time_ms:
            out.catalog[item.title_id] = item
        return
    out.users.add(record["user_id"])
    t = record["event_time_ms"]
    out.first_ms = t if out.first_ms is None else min(out.first_ms, t)
    out.last_ms = t if out.last_ms is None else max(out.last_ms, t)
    action = record.get("action") or record.get("kind") or "SEARCH"
    out.actions[f"{subject}:{action}"] += 1
    if subject == "play_event" and action == "START":
        out.titles_played.add(record["title_id"])
    elif subject == "browse_event" and action == "IMPRESSION":
        out.impressed_items += len(record["items"])
    elif subject == "browse_event" and action == "CLICK":
        out.clicks += 1
    elif subject == "rating_event" and record.get("stars") is not None:
        out.ratings += 1
        out.stars_total += record["stars"]


def sync_catalog(timeout_s: float = 10.0, kafka: KafkaConfig | None = None,
                 cassandra: CassandraConfig | None = None) -> int:
    """Copy the catalog topic into Cassandra's titles table (the latest snapshot per title)."""
    kafka = kafka or KafkaConfig.load()
    cassandra = cassandra or CassandraConfig.load()
    codec = EventCodec()
    items: dict[str, CatalogItem] = {}
    with EventConsumer([TOPICS_BY_NAME["catalog"].full_name(kafka)], f"nextwatch-catalog-{uuid.uuid4().hex[:8]}",
                       kafka, codec) as consumer:
        last = time.monotonic() + 20.0  # the group join takes a few seconds before the first message
        while time.monotonic() - last < timeout_s:
            message = consumer.poll(0.5)
            if message is None or message.event is None:
                continue
            last = time.monotonic()
            item = from_record(CatalogItem, message.event.record)
            if item.title_id not in items or item.updated_time_ms >= items[item.title_id].updated_time_ms:
                items[item.title_id] = item
    return write_catalog(list(items.values()), cassandra)


def write_catalog(items: list[CatalogItem], cassandra: CassandraConfig) -> int:
    session = connect(cassandra, cassandra.keyspace)
    try:
        return CatalogStore(session, cassandra.keyspace).upsert(items)
    finally:
        session.cluster.shutdown()


def _day(ms: int | None) -> str:
    return datetime.fromtimestamp((ms or 0) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def run_demo(limit: int | None = None, rate: float = 0.0) -> int:
    from infra import stack
    from infra.replay.movielens import MovieLensReplay, load_movielens
    from infra.replay.runner import produce_events

    stack.up(progress=lambda text: say(f"stack: {text}"))
    kafka, cassandra = KafkaConfig.load(), CassandraConfig.load()
    say("loading MovieLens 100K")
    replay = MovieLensReplay(load_movielens(), limit=limit)
    say(f"replaying {len(replay.ratings):,} ratings as events into Kafka at {kafka.bootstrap_servers}")
    with EventProducer(kafka) as producer:
        sent = produce_events(replay, producer, rate=rate, progress=lambda text: say(f"replay: {text}"))
    say("reading everything back from Kafka")
    back = read_back(kafka)
    written = write_catalog(list(back.catalog.values()), cassandra)
    session = connect(cassandra, cassandra.keyspace)
    try:
        store = CatalogStore(session, cassandra.keyspace)
        stored = store.count()
        example = store.get("m50")
    finally:
        session.cluster.shutdown()

    print(f"\nReplayed MovieLens 100K ({len(replay.ratings):,} ratings) into Kafka: "
          f"{sent.events:,} events in {sent.seconds:.1f}s ({sent.rate:,.0f} events/s, acks=all)")
    print("\nRead back from Kafka (deduplicated by event id):")
    print(f"  {'topic':<10} {'messages':>10} {'distinct':>10}")
    for name in sorted(back.messages):
        print(f"  {name:<10} {back.messages[name]:>10,} {back.distinct[name]:>10,}")
    print(f"  undecodable: {back.undecodable}")
    print("\nWhat the events say:")
    for key, count in sorted(back.actions.items()):
        print(f"  {key:<26} {count:>9,}")
    ctr = back.clicks / back.impressed_items if back.impressed_items else 0.0
    mean = back.stars_total / back.ratings if back.ratings else 0.0
    print(f"  users {len(back.users):,}, titles played {len(back.titles_played):,}, "
          f"event time {_day(back.first_ms)} .. {_day(back.last_ms)} UTC")
    print(f"  item CTR {ctr:.1%} (clicks / items shown), mean stars {mean:.2f}")
    print(f"\nCassandra titles table: {stored:,} titles ({written:,} written now)")
    if example is not None:
        print(f"  {example.title_id}: {example.title} ({example.release_year}), {', '.join(example.genres)}; "
              f"{example.runtime_minutes} min, {len(example.artwork)} artwork variants; "
              f"synthetic: {', '.join(example.synthetic_fields[:4])}, ...")
    return 0
