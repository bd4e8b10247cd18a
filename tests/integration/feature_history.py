"""A scripted user history for the feature job, with the rows it must produce."""

from __future__ import annotations

import copy
import io
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import fastavro

from connectors.codec import MAGIC, EventCodec
from connectors.consumer import EventConsumer
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
from connectors.feature_store import FeatureStore
from connectors.limits import Limits
from connectors.producer import EventProducer

MIN = 60_000


@dataclass
class History:
    user: str
    clock_user: str
    base_ms: int
    catalog: list[CatalogItem] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)  # in produce order, duplicates included
    drama: str = ""
    comedy: str = ""
    clock: Any = None  # an event of another user, far enough ahead to close every session
    late: Any = None  # produced after the clock has been seen
    conflict_user: str = ""
    conflicting: list[Any] = field(default_factory=list)  # two different events of conflict_user under one id
    garbage: list[bytes | None] = field(default_factory=list)  # message values no job can apply (None: a tombstone)
    kill_after: int = 0  # events[:kill_after]: session 1, its duplicate, and the click session 2's first play joins

    @property
    def applied(self) -> int:
        """How many events the profile counts (duplicates once)."""
        return len({e.event_id for e in self.events})


def build_history() -> History:
    tag = uuid.uuid4().hex[:8]
    user, clock_user = f"alice-{tag}", f"clock-{tag}"
    t0 = int(time.time() * 1000) - 7 * 60 * MIN
    ctx = Context("tv-alice", "TV", "US", -300)
    h = History(user, clock_user, t0)

    def title(tid: str, genre: str, minutes: int) -> CatalogItem:
        return CatalogItem(title_id=f"{tid}-{tag}", updated_time_ms=t0 - 86_400_000, title=tid.upper(),
                           runtime_minutes=minutes, maturity_rating="ALL",
                           availability=Availability(available_from_ms=t0 - 10 * 86_400_000), genres=[genre],
                           artwork=[ArtworkVariant(f"{tid}-{tag}-art0", "https://a/0.jpg", ["x"])])

    h.drama, h.comedy = f"Drama-{tag}", f"Comedy-{tag}"  # genres of their own: trending scopes per run
    h.catalog = [title("t1", h.drama, 100), title("t2", h.comedy, 90), title("t3", h.drama, 120)]
    t1, t2, t3 = (c.title_id for c in h.catalog)

    def play(at: int, tid: str, action: str, pos_min: int, dur_min: int, pb: str) -> PlayEvent:
        return PlayEvent(user_id=user, event_time_ms=at, context=ctx, title_id=tid, action=action,  # type: ignore[arg-type]
                         playback_id=pb, position_ms=pos_min * MIN, duration_ms=dur_min * MIN)

    # session 1: search, impression, click, a click naming no impression seen (not in CTR), 40 minutes of t1,
    # a rating
    s1 = [
        SearchEvent(user_id=user, event_time_ms=t0, context=ctx, query="drama", result_title_ids=[t1, t3]),
        BrowseEvent(user_id=user, event_time_ms=t0 + 5_000, context=ctx, action="IMPRESSION", impression_id="imp-1",
                    page="home", row_id="top_picks", items=[ShownItem(t1, 0, f"{t1}-art0"), ShownItem(t2, 1, None),
                                                             ShownItem(t3, 2, None)]),
        BrowseEvent(user_id=user, event_time_ms=t0 + 8_000, context=ctx, action="CLICK", impression_id="imp-1",
                    page="home", row_id="top_picks", title_id=t1, position_in_row=0, artwork_id=f"{t1}-art0"),
        BrowseEvent(user_id=user, event_time_ms=t0 + 9_000, context=ctx, action="CLICK", impression_id="imp-gone",
                    page="home", row_id="top_picks", title_id=t3, position_in_row=2),
        play(t0 + 10_000, t1, "START", 0, 100, "pb1"),
        play(t0 + 10_000 + 20 * MIN, t1, "PROGRESS", 20, 100, "pb1"),
        play(t0 + 10_000 + 40 * MIN, t1, "STOP", 40, 100, "pb1"),
        RatingEvent(user_id=user, event_time_ms=t0 + 41 * MIN, context=ctx, title_id=t1, kind="STARS", stars=4.0),
    ]
    # session 2, two hours later: t2 start to finish, t1 resumed and finished, t3 started;
    # players send a PROGRESS heartbeat every 20 minutes, which keeps the session open
    t = t0 + 120 * MIN
    s2 = [
        play(t, t2, "START", 0, 90, "pb2"),
        *(play(t + m * MIN, t2, "PROGRESS", m, 90, "pb2") for m in (20, 40, 60, 80)),
        play(t + 90 * MIN, t2, "COMPLETE", 90, 90, "pb2"),
        play(t + 91 * MIN, t1, "START", 40, 100, "pb3"),
        *(play(t + 91 * MIN + m * MIN, t1, "PROGRESS", 40 + m, 100, "pb3") for m in (20, 40)),
        play(t + 151 * MIN, t1, "COMPLETE", 100, 100, "pb3"),
        play(t + 152 * MIN, t3, "START", 0, 120, "pb4"),
        play(t + 172 * MIN, t3, "PROGRESS", 20, 120, "pb4"),
    ]
    # session 2 opens with an impression of t2 (its artwork) and a click; the START of t2 completes the join.
    # They come before the kill in the restart test: the join's state must survive it.
    shown_t2 = [
        BrowseEvent(user_id=user, event_time_ms=t - 60_000, context=ctx, action="IMPRESSION", impression_id="imp-2",
                    page="home", row_id="trending", items=[ShownItem(t2, 0, f"{t2}-art0")]),
        BrowseEvent(user_id=user, event_time_ms=t - 30_000, context=ctx, action="CLICK", impression_id="imp-2",
                    page="home", row_id="trending", title_id=t2, position_in_row=0),
    ]
    h.events = [*s1, s1[5], *shown_t2, *s2, s2[5]]  # two duplicates: same event ids again
    h.kill_after = len(s1) + 1 + len(shown_t2)
    h.clock = play(t0 + 6 * 60 * MIN, t2, "START", 0, 90, "pb-clock")
    h.clock.user_id = clock_user
    h.late = play(t0 + 60 * MIN, t3, "PAUSE", 5, 120, "pb-late")
    # bad input: not Avro, an unknown fingerprint, and an absurd timestamp that the SDK would refuse
    codec = EventCodec()
    writer = codec.writer("play_event")
    record = codec.decode(codec.encode(play(t0, t1, "START", 0, 100, "pb-bad"))).record
    record["event_time_ms"] = 1_700_000  # 1970: seconds/milliseconds mix-up
    body = io.BytesIO()
    fastavro.schemaless_writer(body, writer.parsed, record)
    h.garbage = [b"\x00\x01 not avro", MAGIC + b"\x11" * 8 + b"\x02", MAGIC + writer.fingerprint + body.getvalue()]
    # poison: what once stopped the job. A tombstone; 900 KB (over the 64 KiB message bound and the
    # dead-letter bound); a 120 KB search query and a 300-character one, which the SDK refuses but
    # another producer can send
    # two different events under one id (paused plays of titles nothing else touches, on a phone: no
    # trending, item stats or context bucket of the others changes)
    h.conflict_user = f"conflict-{tag}"
    paused = PlayEvent(user_id=h.conflict_user, event_time_ms=t0 + 10 * MIN, context=Context("ph-1", "MOBILE", "US", 0),
                       title_id=f"cx1-{tag}", action="PAUSE", playback_id="pb-cx", position_ms=5 * MIN,
                       duration_ms=100 * MIN, event_id=f"reused-{tag}")
    h.conflicting = [paused, replace(paused, title_id=f"cx2-{tag}", event_time_ms=t0 + 11 * MIN)]
    unbounded = EventCodec(limits=Limits(query_chars=10**6, message_bytes=10**6))
    search = SearchEvent(user, t0 + 5 * MIN, ctx, "x", event_id=f"poison-{tag}")
    h.garbage += [None, MAGIC + writer.fingerprint + b"\x07" * 900_000,
                  unbounded.encode(replace(search, query="q" * 120_000)),
                  unbounded.encode(replace(search, query="drama " * 50, event_id=f"poison-2-{tag}"))]
    return h


@dataclass
class FeatureRun:
    history: History
    kafka: Any
    store: FeatureStore
    producer: EventProducer
    ticks: int = 0

    def tick(self) -> None:
        """Another user's event further ahead in time: keeps watermarks moving, as live traffic does."""
        self.ticks += 1
        event = copy.copy(self.history.clock)
        event.event_id = f"tick-{uuid.uuid4().hex}"
        event.event_time_ms = self.history.clock.event_time_ms + self.ticks * MIN
        self.producer.send(event)
        self.producer.flush()

    def wait_for(self, what: str, check: Callable[[], Any], timeout_s: float = 90.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            self.tick()
            time.sleep(1.0)
        raise AssertionError(f"timed out waiting for {what}")

    def topic_records(self, name: str, count: int, user: str | None = None) -> list[dict[str, Any]]:
        codec = EventCodec()
        with EventConsumer([self.kafka.topic_prefix + name], f"check-{uuid.uuid4().hex[:6]}", self.kafka) as c:
            found: list[dict[str, Any]] = []
            idle_until = time.monotonic() + 15  # the group join takes a few seconds
            while len(found) < count and time.monotonic() < idle_until:
                message = c.poll(0.5)
                if message is not None:
                    idle_until = time.monotonic() + 3
                    record = codec.decode(message.value).record
                    if user is None or record.get("user_id") == user:
                        found.append(record)
            return found
