"""Small, fixed histories for each job, stopped with a savepoint half-way: the savepoint-compatibility fixtures.

``tests/fixtures/savepoints/make_savepoints.py`` runs each scenario's first half through a job, stops it
with a savepoint and records every message of the topics the job reads (so a restore finds the same
offsets); ``tests/integration/test_savepoint_compat.py`` restores that savepoint with the code as it is now,
feeds the second half (one event per key) and compares every Cassandra row with a run that was never
stopped. Fixed ids, fixed event times, no exploration; the recorded files, not this module, are the
fixtures (encoders stamp an ingest time).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors.codec import EventCodec
from connectors.config import CassandraConfig, KafkaConfig
from connectors.events import (
    ArtworkVariant,
    Availability,
    BrowseEvent,
    CatalogItem,
    Context,
    PlayEvent,
    RatingEvent,
    SearchEvent,
    ShownItem,
)
from connectors.producer import EventProducer
from connectors.topics import TOPICS_BY_NAME, USER_EVENT_TOPICS

MIN = 60_000
DAY = 86_400_000
BASE_MS = 1_790_000_000_000  # 2026-09-21: fixed, so the recorded bytes never change
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "savepoints"
MODEL_VERSION = "online-mf-cf-v1"  # what the learning job's records carry (and the rows job accepts)


@dataclass(frozen=True)
class Message:
    """One Kafka message as produced (``partition`` and ``offset`` once delivered)."""

    topic: str  # declared name, without the prefix
    key: bytes
    value: bytes
    timestamp_ms: int
    partition: int = -1
    offset: int = -1

    def to_json(self) -> str:
        return json.dumps({"topic": self.topic, "partition": self.partition, "offset": self.offset,
                           "timestamp_ms": self.timestamp_ms, "key": base64.b64encode(self.key).decode(),
                           "value": base64.b64encode(self.value).decode()})

    @classmethod
    def from_json(cls, line: str) -> Message:
        d = json.loads(line)
        return cls(d["topic"], base64.b64decode(d["key"]), base64.b64decode(d["value"]), d["timestamp_ms"],
                   d["partition"], d["offset"])


def write_messages(path: Path, messages: Iterable[Message]) -> None:
    path.write_text("".join(m.to_json() + "\n" for m in messages))


def read_messages(path: Path) -> list[Message]:
    return [Message.from_json(line) for line in path.read_text().splitlines() if line.strip()]


def _event(codec: EventCodec, event: Any) -> Message:
    spec = TOPICS_BY_NAME[{"catalog_item": "catalog", "play_event": "play", "search_event": "search",
                           "browse_event": "browse", "rating_event": "rating"}[type(event).SUBJECT]]
    key = getattr(event, spec.key_field).encode()
    at = event.updated_time_ms if spec.name == "catalog" else event.event_time_ms
    return Message(spec.name, key, codec.encode(event, ingest_ms=at), at)


def produce(kafka: KafkaConfig, messages: Iterable[Message]) -> list[Message]:
    """Send ``messages`` in order (each to its recorded partition, if any); returns them as delivered."""
    delivered: list[Message] = []
    pending = list(messages)

    def report(err: Any, msg: Any) -> None:
        if err is None:
            delivered.append(replace(pending[len(delivered)], partition=msg.partition(), offset=msg.offset()))

    # one message in flight at a time: the delivery reports come back in send order, offsets are exact
    with EventProducer(kafka, on_delivery=report) as producer:
        for message in pending:
            producer.send_encoded(TOPICS_BY_NAME[message.topic].full_name(kafka), message.key, message.value,
                                  message.timestamp_ms, partition=message.partition)
            producer.flush()
    return delivered


def read_topics(kafka: KafkaConfig, topics: Iterable[str], idle_s: float = 3.0) -> list[Message]:
    """Every message of ``topics`` (declared names), read without a group until ``idle_s`` passes quietly."""
    consumer = Consumer(kafka.client_config(**{"group.id": "savepoint-recorder", "enable.auto.commit": False}))
    names = {TOPICS_BY_NAME[t].full_name(kafka): t for t in topics}
    try:
        assignment = [TopicPartition(full, p, OFFSET_BEGINNING) for full in names
                      for p in consumer.list_topics(full, timeout=10).topics[full].partitions]
        consumer.assign(assignment)
        out: list[Message] = []
        idle_until = time.monotonic() + max(idle_s, 5.0)
        while time.monotonic() < idle_until:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            idle_until = time.monotonic() + idle_s
            out.append(Message(names[msg.topic()], msg.key() or b"", msg.value() or b"", msg.timestamp()[1],
                               msg.partition(), msg.offset()))
        return sorted(out, key=lambda m: (m.topic, m.partition, m.offset))
    finally:
        consumer.close()


@dataclass(frozen=True)
class Scenario:
    job: str  # features, learning, rows
    reads: tuple[str, ...]  # the declared topics the job reads: recorded, and replayed before a restore
    before: Callable[[], list[Message]]  # up to the savepoint
    after: Callable[[], list[Message]]  # one event per key, after it
    settings: Callable[[str], dict[str, Any]]  # group id -> the job's settings (keyword arguments)
    done: Callable[[Any, str, bool], bool]  # (session, keyspace, after the savepoint?) -> everything applied
    rows: Callable[[Any, str], dict[str, Any]]  # every Cassandra row the job writes, comparable
    tick: Callable[[int], list[Message]] | None = None  # n -> an event that only moves the watermark
    # broadcast inputs: produced first and given a moment to reach the job, so that no run sees a user's event
    # before the titles it names (which would make the rows depend on the race)
    shared: tuple[str, ...] = ()
    # (rows after the restore, rows of a run never stopped) -> what differs; by default every row the restored
    # job wrote must be in the other run as it is (that run also holds rows written before the savepoint)
    compare: Callable[[dict[str, Any], dict[str, Any]], list[str]] = lambda restored, whole: _subset(restored, whole)


def _subset(restored: dict[str, Any], whole: dict[str, Any]) -> list[str]:
    return [f"{table} {key}: restored {value!r}, never stopped {whole[table].get(key)!r}"
            for table, rows in restored.items() for key, value in rows.items() if whole[table].get(key) != value]


# -- the feature job ---------------------------------------------------------------------------------

_TV = Context("tv-alice", "TV", "US", -300)
_PHONE = Context("phone-bob", "MOBILE", "GB", 0)


def _feature_catalog() -> list[CatalogItem]:
    def title(tid: str, genre: str, minutes: int) -> CatalogItem:
        return CatalogItem(title_id=f"sp-{tid}", updated_time_ms=BASE_MS - DAY, title=tid.upper(), event_id=f"sp-{tid}",
                           runtime_minutes=minutes, maturity_rating="ALL",
                           availability=Availability(available_from_ms=BASE_MS - 10 * DAY), genres=[genre],
                           artwork=[ArtworkVariant(f"sp-{tid}-art0", "https://a/0.jpg", ["x"])])

    return [title("t1", "Drama", 100), title("t2", "Comedy", 90), title("t3", "Drama", 120)]


def _play(user: str, ctx: Context, at: int, title: str, action: str, pos_min: int, dur_min: int, pb: str,
          event_id: str) -> PlayEvent:
    return PlayEvent(user_id=user, event_time_ms=at, context=ctx, title_id=title, action=action,  # type: ignore[arg-type]
                     playback_id=pb, position_ms=pos_min * MIN, duration_ms=dur_min * MIN, event_id=event_id)


def _features_before() -> list[Message]:
    codec = EventCodec()
    t0, alice, bob = BASE_MS, "sp-alice", "sp-bob"
    t1, t2, t3 = (c.title_id for c in _feature_catalog())

    def a(n: int) -> str:
        return f"sp-a{n}"

    session1 = [
        SearchEvent(user_id=alice, event_time_ms=t0, context=_TV, query="drama", result_title_ids=[t1, t3],
                    event_id=a(1)),
        BrowseEvent(user_id=alice, event_time_ms=t0 + 5_000, context=_TV, action="IMPRESSION", impression_id="imp-1",
                    page="home", row_id="top_picks", items=[ShownItem(t1, 0, f"{t1}-art0"), ShownItem(t2, 1, None),
                                                             ShownItem(t3, 2, None)], event_id=a(2)),
        BrowseEvent(user_id=alice, event_time_ms=t0 + 8_000, context=_TV, action="CLICK", impression_id="imp-1",
                    page="home", row_id="top_picks", title_id=t1, position_in_row=0, artwork_id=f"{t1}-art0",
                    event_id=a(3)),
        _play(alice, _TV, t0 + 10_000, t1, "START", 0, 100, "pb1", a(4)),
        _play(alice, _TV, t0 + 10_000 + 20 * MIN, t1, "PROGRESS", 20, 100, "pb1", a(5)),
        _play(alice, _TV, t0 + 10_000 + 40 * MIN, t1, "STOP", 40, 100, "pb1", a(6)),
        RatingEvent(user_id=alice, event_time_ms=t0 + 41 * MIN, context=_TV, title_id=t1, kind="STARS", stars=4.0,
                    event_id=a(7)),
    ]
    # session 2 opens two hours later with an impression and a click: the START after the savepoint joins them
    t = t0 + 120 * MIN
    session2 = [
        BrowseEvent(user_id=alice, event_time_ms=t - 60_000, context=_TV, action="IMPRESSION", impression_id="imp-2",
                    page="home", row_id="trending", items=[ShownItem(t2, 0, f"{t2}-art0")], event_id=a(8)),
        BrowseEvent(user_id=alice, event_time_ms=t - 30_000, context=_TV, action="CLICK", impression_id="imp-2",
                    page="home", row_id="trending", title_id=t2, position_in_row=0, event_id=a(9)),
    ]
    bob_events = [
        _play(bob, _PHONE, t0 + 30 * MIN, t3, "START", 0, 120, "pb-b1", "sp-b1"),
        _play(bob, _PHONE, t0 + 50 * MIN, t3, "PROGRESS", 20, 120, "pb-b1", "sp-b2"),
        SearchEvent(user_id=bob, event_time_ms=t0 + 55 * MIN, context=_PHONE, query="comedy", event_id="sp-b3"),
        _play(bob, _PHONE, t + 10 * MIN, t3, "START", 20, 120, "pb-b2", "sp-b4"),
    ]
    events = [*session1, session1[4], *session2, *bob_events]  # session1[4] again: a redelivery
    return [_event(codec, e) for e in [*_feature_catalog(), *events]]


def _features_after() -> list[Message]:
    codec = EventCodec()
    t = BASE_MS + 120 * MIN
    t2, t3 = "sp-t2", "sp-t3"
    return [_event(codec, e) for e in (
        _play("sp-alice", _TV, t, t2, "START", 0, 90, "pb2", "sp-a10"),  # joins imp-2's click
        _play("sp-bob", _PHONE, t + 20 * MIN, t3, "COMPLETE", 120, 120, "pb-b2", "sp-b5"),
    )]


def _features_tick(n: int) -> list[Message]:
    """A search far ahead of the history by a user of its own: watermarks move on, nothing else counts it."""
    event = SearchEvent(user_id="sp-clock", event_time_ms=BASE_MS + 8 * 60 * MIN + n * MIN,
                        context=_PHONE, query="tick", event_id=f"sp-tick-{n}")
    return [_event(EventCodec(), event)]


def _features_settings(group: str) -> dict[str, Any]:
    # coalesced rows flushed fast; idle partitions let the clock decide. (Trending rows are only written for
    # the last trending_horizon_hours, at most 99, of the wall clock: none for this fixed history, so the
    # trending table is not compared, though its windows' state is in the savepoint all the same.)
    # The fixture's savepoint was taken with the SQL chained behind the user features step (its SQL
    # operators' state ids depend on that), as every deployment from before then restores it.
    return {"group_id": group, "idleness_ms": 2_000, "stats_flush_ms": 500, "sql_in_own_tasks": False}


def _rows_of(session: Any, keyspace: str, table: str, key: str, values: Iterable[str]) -> list[Any]:
    statement = session.prepare(f"SELECT * FROM {keyspace}.{table} WHERE {key} = ?")
    return [row for value in values for row in session.execute(statement, (value,))]


def _features_rows(session: Any, keyspace: str) -> dict[str, Any]:
    users = ("sp-alice", "sp-bob")
    titles = [c.title_id for c in _feature_catalog()]
    return {
        # recent_watch_ms is left out: its decay depends on the order the topics' events arrive in
        "user_profile": {r.user_id: (r.version, r.updated_time, r.last_event_id,
                                     {g: round(v, 6) for g, v in (r.genre_affinity or {}).items()},
                                     dict(r.daypart_plays or {}), dict(r.device_plays or {}), r.total_watch_ms,
                                     round(r.preferred_runtime_minutes, 6), list(r.recent_searches or []))
                         for r in _rows_of(session, keyspace, "user_profile", "user_id", users)},
        "continue_watching": {(r.user_id, r.title_id): (r.position_ms, r.duration_ms, r.last_watched, r.playback_id)
                              for r in _rows_of(session, keyspace, "continue_watching", "user_id", users)},
        "sessions": {(r.user_id, r.session_start): (r.session_end, r.titles_played, r.watch_ms, r.impressions,
                                                    r.clicks, r.searches, r.events, tuple(r.genres or ()),
                                                    r.device_class)
                     for r in _rows_of(session, keyspace, "sessions", "user_id", users)},
        "item_stats": {(r.title_id, r.artwork_id): (r.impressions, r.clicks, r.plays, r.completes,
                                                    r.impression_plays)
                       for r in _rows_of(session, keyspace, "item_stats", "title_id", titles)},
    }


def _features_done(session: Any, keyspace: str, after: bool) -> bool:
    rows = _features_rows(session, keyspace)
    versions = {user: p[0] for user, p in rows["user_profile"].items()}
    if not after:  # 9 of alice's events (one redelivered) and 4 of bob's; sessions may still be open
        return versions == {"sp-alice": 9, "sp-bob": 4}
    closed = {user for user, _ in rows["sessions"]}
    return versions == {"sp-alice": 10, "sp-bob": 5} and closed == {"sp-alice", "sp-bob"} and \
        rows["item_stats"].get(("sp-t2", ""), (0, 0, 0))[2] >= 1


FEATURES = Scenario("features", (*USER_EVENT_TOPICS, "catalog"), _features_before, _features_after,
                    _features_settings, _features_done, _features_rows, _features_tick)


# -- the learning job --------------------------------------------------------------------------------


def _learning_events() -> list[RatingEvent]:
    ctx = Context("tv-1", "TV", "US", 0)
    groups = [[f"sp-g{g}t{n}" for n in range(4)] for g in range(3)]
    return [RatingEvent(f"sp-user{u}", BASE_MS + (u * 10 + step) * MIN, ctx, title, "STARS", 5.0 - step * 0.5,
                        event_id=f"sp-l-{u}-{step}")
            for u in range(9) for step, title in enumerate(groups[u % 3])]


def _learning_before() -> list[Message]:
    codec = EventCodec()
    return [_event(codec, e) for e in _learning_events() if not e.event_id.endswith("-3")]


def _learning_after() -> list[Message]:
    codec = EventCodec()
    return [_event(codec, e) for e in _learning_events() if e.event_id.endswith("-3")]


def _learning_settings(group: str) -> dict[str, Any]:
    # the fixture's code had no blend learner: its savepoint restores into the graph without one
    return {"group_id": group, "snapshot_ms": 500, "pin_blend": True}


def _learning_rows(session: Any, keyspace: str) -> dict[str, Any]:
    events = _learning_events()
    users = sorted({e.user_id for e in events})
    titles = sorted({e.title_id for e in events})
    return {
        "user_vectors": {r.user_id: (r.version, r.last_event_id, list(r.recent_titles or []), r.ratings,
                                     list(r.implicit_vector or []), list(r.rating_vector or []))
                         for r in _rows_of(session, keyspace, "user_vectors", "user_id", users)},
        "item_vectors": {r.title_id: (r.touches, list(r.implicit_vector or []))
                         for r in _rows_of(session, keyspace, "item_vectors", "title_id", titles)},
        "similar_titles": {r.title_id: list(r.neighbor_ids or [])[:3]
                           for r in _rows_of(session, keyspace, "similar_titles", "title_id", titles)},
        "top_picks": {r.user_id: (r.version, r.last_event_id)
                      for r in _rows_of(session, keyspace, "top_picks", "user_id", users)},
    }


def _learning_done(session: Any, keyspace: str, after: bool) -> bool:
    rows = _learning_rows(session, keyspace)
    version, titles = (4, 12) if after else (3, 9)  # the fourth title of each group is rated after the savepoint
    return len(rows["user_vectors"]) == 9 and all(v[0] == version for v in rows["user_vectors"].values()) and \
        len(rows["item_vectors"]) == titles


def _learning_compare(restored: dict[str, Any], whole: dict[str, Any], tolerance: float = 0.06) -> list[str]:
    """Counts, versions and event ids exactly; vectors within ``tolerance`` (item vectors reach the user side on
    a timer, so the interleaving of user steps and published item versions differs between runs)."""
    def exact(rows: dict[str, Any]) -> dict[str, Any]:
        return {"user_vectors": {user: row[:4] for user, row in rows["user_vectors"].items()},
                "top_picks": rows["top_picks"], "similar_titles": rows["similar_titles"]}

    differences = _subset(exact(restored), exact(whole))
    for user, row in restored["user_vectors"].items():
        for n in (4, 5):
            worst = _worst(row[n], whole["user_vectors"].get(user, row)[n])
            if worst > tolerance:
                differences.append(f"user_vectors {user}: a component differs by {worst:.3f}")
    for title, (touches, vector) in restored["item_vectors"].items():
        other = whole["item_vectors"].get(title)
        if other is None or other[0] != touches or _worst(vector, other[1]) > tolerance:
            differences.append(f"item_vectors {title}: restored {touches}, never stopped {other and other[0]}")
    return differences


def _worst(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        return float("inf")
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)


LEARNING = Scenario("learning", ("play", "browse", "rating", "search", "model-updates", "blend-updates", "catalog"),
                    _learning_before, _learning_after, _learning_settings, _learning_done, _learning_rows,
                    compare=_learning_compare, shared=("catalog",))


# -- the rows job ------------------------------------------------------------------------------------

_ROWS_TITLES = [f"sp-r{n}" for n in range(8)]
_ROWS_USERS = ("sp-ann", "sp-ben")


def _rows_before() -> list[Message]:
    codec = EventCodec()
    t = _ROWS_TITLES
    catalog = [CatalogItem(title_id=t[n], updated_time_ms=BASE_MS - DAY, title=f"Title {n}", event_id=t[n],
                           runtime_minutes=60 + 10 * n, genres=["Drama" if n % 2 == 0 else "Comedy"],
                           maturity_rating="ALL",
                           availability=Availability(BASE_MS - 10 * DAY),
                           artwork=[ArtworkVariant(f"{t[n]}-a", "https://a/a.jpg", ["dark"]),
                                    ArtworkVariant(f"{t[n]}-b", "https://a/b.jpg", ["bright"])])
               for n in range(8)]
    messages = [_event(codec, item) for item in catalog]
    for n, neighbours in ((0, [1, 2, 3]), (4, [5, 6, 1])):
        record = {"schema_version": 2, "event_id": f"{t[n]}:1", "title_id": t[n], "model_version": MODEL_VERSION,
                  "version": 1, "rating_vector": [], "rating_bias": 0.0, "implicit_vector": [],
                  "implicit_bias": 0.0, "touches": 5.0 + n, "neighbor_ids": [t[m] for m in neighbours],
                  "neighbor_scores": [0.9, 0.8, 0.7], "updated_ms": BASE_MS, "ingest_time_ms": BASE_MS}
        messages.append(Message("model-updates", t[n].encode(), codec.encode_record("item_vectors", record), BASE_MS))
    tv = Context("tv-1", "TV", "US", 0)
    for k, user in enumerate(_ROWS_USERS):
        at = BASE_MS + k * MIN
        events = [
            PlayEvent(user, at, tv, t[4 * k], "COMPLETE", f"pb-{k}", 3_600_000, 3_600_000, event_id=f"{user}-1"),
            PlayEvent(user, at + MIN, tv, t[4 * k + 3], "STOP", f"pb-{k}b", 1_000_000, 3_600_000,
                      event_id=f"{user}-2"),
            # an impression never clicked: its outcome teaches the shared policies (the policy learner's state)
            BrowseEvent(user_id=user, event_time_ms=at + 2 * MIN, context=tv, action="IMPRESSION",
                        impression_id=f"{user}-imp", page="home", row_id="top_picks",
                        items=[ShownItem(t[2], 0, f"{t[2]}-a")], event_id=f"{user}-3"),
        ]
        messages += [_event(codec, e) for e in events]
        messages.append(_user_update(codec, user, 1, [t[(4 * k + 5) % 8], t[(4 * k + 6) % 8]], f"{user}-2"))
    return messages


def _user_update(codec: EventCodec, user: str, version: int, picks: list[str], last_event_id: str) -> Message:
    record = {"schema_version": 1, "event_id": f"{user}:{version}", "user_id": user, "model_version": MODEL_VERSION,
              "version": version, "last_event_id": last_event_id, "updated_ms": BASE_MS, "pick_ids": picks,
              "pick_scores": [1.0 - k / 10 for k in range(len(picks))], "pick_reasons": ["item_cf"] * len(picks),
              "recent_titles": [], "content_profile": [], "ingest_time_ms": BASE_MS}
    return Message("user-updates", user.encode(), codec.encode_record("user_update", record), BASE_MS)


def _rows_after() -> list[Message]:
    codec = EventCodec()
    tv = Context("tv-1", "TV", "US", 0)
    t = _ROWS_TITLES
    return [_event(codec, PlayEvent(user, BASE_MS + 10 * MIN, tv, t[4 * k + 3], "COMPLETE", f"pb-{k}b", 3_600_000,
                                    3_600_000, event_id=f"{user}-4"))
            for k, user in enumerate(_ROWS_USERS)]


def _rows_settings(group: str) -> dict[str, Any]:
    # no exploration (pages are compared) and shared signals current at every build. The impressions' reward
    # windows (event time) closed long ago: their outcomes teach the shared policies at once, which are
    # published within policy_publish_ms (the first half's wait covers it)
    return {"group_id": group, "flush_ms": 100, "shared_refresh_ms": 1, "explore_share": 0.0,
            "row_order_epsilon": 0.0, "artwork_epsilon": 0.0, "policy_publish_ms": 200}


def _rows_rows(session: Any, keyspace: str) -> dict[str, Any]:
    pages: dict[str, Any] = {}
    for row in _rows_of(session, keyspace, "homepage", "user_id", _ROWS_USERS):
        known = pages.get(row.user_id)
        if known is None or row.generated_time > known[0]:
            # the bucket follows the wall clock (the daypart now): the newest page is compared, whatever its bucket
            pages[row.user_id] = (row.generated_time, row.last_event_id, json.loads(row.page))
    return {"homepage": {user: (last_event_id, page) for user, (_, last_event_id, page) in pages.items()}}


def _rows_done(session: Any, keyspace: str, after: bool) -> bool:
    pages = _rows_rows(session, keyspace)["homepage"]
    want = "-4" if after else "-3"
    return set(pages) == set(_ROWS_USERS) and all(
        last.endswith(want) and page["models"].get("learning_version") == "1" for last, page in pages.values())


ROWS = Scenario("rows", (*USER_EVENT_TOPICS, "user-updates", "catalog", "model-updates", "policy-updates"),
                _rows_before, _rows_after, _rows_settings, _rows_done, _rows_rows, shared=("catalog", "model-updates"))

SCENARIOS = {s.job: s for s in (FEATURES, LEARNING, ROWS)}


def feed(scenario: Scenario, kafka: KafkaConfig, session: Any, keyspace: str, messages: list[Message],
         after: bool, timeout_s: float = 120.0) -> None:
    """Produce ``messages`` (the shared ones first) to a running job and wait until they are all applied.

    After the savepoint, the scenario's clock ticks until the job's watermarks have closed every window.
    """
    shared = [m for m in messages if m.topic in scenario.shared]
    if shared:
        produce(kafka, shared)
        time.sleep(3.0)
    produce(kafka, [m for m in messages if m.topic not in scenario.shared])
    ticks = 0
    deadline = time.monotonic() + timeout_s
    while not scenario.done(session, keyspace, after):
        assert time.monotonic() < deadline, f"{scenario.job}: {'second' if after else 'first'} half never applied"
        if scenario.tick is not None and after:
            ticks += 1
            produce(kafka, scenario.tick(ticks))
        time.sleep(1.0)
    time.sleep(3.0)  # rows and models still on their flush and publish timers


def start_job(job: str, kafka: KafkaConfig, cassandra: CassandraConfig, settings: dict[str, Any],
              checkpoints: Path, restore: Path | None = None, rest_port: int = 0) -> Any:
    """``job`` on this process's mini-cluster as the fixtures were made: thread mode, parallelism 1.

    ``rest_port``: the mini-cluster's REST API there, its metrics fetched every second.
    """
    from jobs.flink import load_job
    from jobs.runtime import FlinkConfig, start

    spec = load_job(job)
    options = {"rest.port": str(rest_port), "metrics.fetcher.update-interval": "1000"} if rest_port else {}
    flink = FlinkConfig(parallelism=1, execution_mode="thread", checkpoint_interval_ms=1000,
                        checkpoint_dir=str(checkpoints), restore_from=str(restore) if restore else "", options=options)
    return start(spec, kafka, cassandra, settings=spec.settings(**settings), flink=flink)


def wait_running(client: Any, timeout_s: float = 60.0) -> None:
    """Block until a submitted job is running (its sources read from then on)."""
    deadline = time.monotonic() + timeout_s
    while client.get_job_status().result().name != "RUNNING":
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.2)


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 90.0,
               tick: Callable[[int], None] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    n = 0
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        if tick is not None:
            n += 1
            tick(n)
        time.sleep(1.0)
