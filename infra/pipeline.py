"""Running the pipeline end to end: feed a workload, run the jobs, know when they are done.

"Done" is observable, not guessed: after the workload, one sentinel event goes to
every partition of every user-event topic (each for a user of its own), with an
event time after the workload's. Partitions are read concurrently, so only when
every sentinel's profile row is in Cassandra has every partition been consumed
up to its end. The demo and the benchmarks share this.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from connectors.cassandra_store import connect
from connectors.config import CassandraConfig, KafkaConfig
from connectors.events import BrowseEvent, Context, PlayEvent, RatingEvent, SearchEvent
from connectors.feature_store import FeatureStore
from connectors.producer import EventProducer
from connectors.topics import TOPICS_BY_NAME, USER_EVENT_TOPICS

Progress = Callable[[str], None]
_SENTINEL_CONTEXT = Context("sentinel", "WEB", "US", 0, "sentinel")


def _sentinel_event(topic: str, user_id: str, at_ms: int, feedback: bool = False) -> Any:
    """A harmless event; with ``feedback``, one the learning job learns from (so it writes a user vector)."""
    common: dict[str, Any] = {"user_id": user_id, "event_time_ms": at_ms, "context": _SENTINEL_CONTEXT,
              "event_id": f"{user_id}:sentinel"}
    if feedback and topic == "play":
        return PlayEvent(title_id="sentinel", action="START", playback_id=user_id, position_ms=0, duration_ms=1,
                         **common)
    if feedback and topic == "browse":
        return BrowseEvent(action="CLICK", impression_id=user_id, page="home", title_id="sentinel",
                           position_in_row=0, **common)
    if topic == "play":
        return PlayEvent(title_id="sentinel", action="PAUSE", playback_id=user_id, position_ms=0, duration_ms=1,
                         **common)
    if topic == "search":
        return SearchEvent(query="sentinel", **common)
    if topic == "browse":
        return BrowseEvent(action="SCROLL", impression_id=user_id, page="home", scroll_depth=0, **common)
    return RatingEvent(title_id="sentinel", kind="THUMBS_UP", **common)


def send_sentinels(producer: EventProducer, kafka: KafkaConfig, at_ms: int, run_id: str | None = None,
                   topics: Iterable[str] = USER_EVENT_TOPICS, feedback: bool = False) -> list[str]:
    """One sentinel per partition of each of ``topics``; returns their user ids.

    ``feedback``: sentinels the learning job learns from (a play START, a click, a thumbs up).
    """
    run_id = run_id or uuid.uuid4().hex[:8]
    users = []
    for name in topics:
        spec = TOPICS_BY_NAME[name]
        for partition in range(spec.partition_count(kafka)):
            user_id = f"sentinel-{run_id}-{name}-{partition}"
            event = _sentinel_event(name, user_id, at_ms, feedback)
            producer.send_encoded(spec.full_name(kafka), user_id.encode(), producer.codec.encode(event), at_ms,
                                  partition=partition)
            users.append(user_id)
    producer.flush()
    return users


@dataclass
class FeedResult:
    events: int
    last_event_ms: int
    seconds: float


def feed(events: Iterable[Any], producer: EventProducer, progress: Progress | None = None,
         rate: float = 0.0) -> FeedResult:
    """Produce ``events`` at ``rate`` per second (0: as fast as the broker takes them)."""
    from infra.replay.runner import produce_events

    stats = produce_events(events, producer, rate=rate, progress=progress)
    return FeedResult(stats.events, stats.last_event_ms or 0, stats.seconds)


ROW_KINDS = ("profile", "vectors", "homepage")  # what a job writes per user, by which its sentinels show


def row_present(session: Any, keyspace: str, kind: str = "profile") -> Callable[[str], bool]:
    """A check of whether a user has a row of ``kind`` (one of :data:`ROW_KINDS`) in Cassandra."""
    from connectors.homepage_store import HomepageStore
    from connectors.model_store import ModelStore

    if kind == "homepage":
        pages = HomepageStore(session, keyspace)
        return lambda user_id: bool(pages.homepages(user_id))
    if kind not in ROW_KINDS:
        raise ValueError(f"row kind must be one of {ROW_KINDS}, not {kind!r}")
    store = (ModelStore if kind == "vectors" else FeatureStore)(session, keyspace)
    lookup = "get_user_vectors" if kind == "vectors" else "get_profile"
    return lambda user_id: bool(store.rows(lookup, user_id))


def wait_for_profiles(cassandra: CassandraConfig, user_ids: list[str], timeout_s: float,
                      progress: Progress | None = None, poll_s: float = 0.05, vectors: bool = False,
                      rows: str = "") -> float:
    """Block until every user has a profile row (``vectors``: a user-vector row; ``rows``: a row of that kind);
    returns when it happened.

    One user is asked for per poll, in order, until their row is there: every row is needed, so
    the others can wait, and the poller reads Cassandra at most once per ``poll_s`` instead of once
    per pending user (a benchmark's poller shares the job's Cassandra, and in a mini-cluster its
    interpreter). When the first pending row is there, the rest are asked for at once.
    """
    session = connect(cassandra, cassandra.keyspace)
    try:
        present = row_present(session, cassandra.keyspace, rows or ("vectors" if vectors else "profile"))
        pending = list(user_ids)
        started = time.monotonic()
        deadline = started + timeout_s
        last_report, reported = started, len(pending)
        while pending:
            while pending and present(pending[0]):
                pending.pop(0)
            if not pending:
                break
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"{len(pending)} sentinel profile(s) not visible after {timeout_s:.0f}s")
            # a line when a partition is done, else one every 30 s: progress without repeating itself
            if progress is not None and (len(pending) < reported or now - last_report >= 30):
                last_report, reported = now, len(pending)
                progress(f"waiting for {len(pending)} of {len(user_ids)} partitions to be consumed "
                         f"({now - started:.0f} s)")
            time.sleep(poll_s)
        return time.monotonic()
    finally:
        session.cluster.shutdown()


def start_job(name: str, kafka: KafkaConfig, cassandra: CassandraConfig, settings: Any = None, flink: Any = None,
              group_id: str | None = None) -> Any:
    """Submit the job called ``name`` (features, learning, rows) to this process's mini-cluster; its JobClient.

    ``settings`` default to the job's section of the config file; ``group_id`` replaces theirs.
    """
    from jobs.flink import load_job
    from jobs.runtime import start

    return start(load_job(name), kafka, cassandra, settings=settings, flink=flink, group_id=group_id)
