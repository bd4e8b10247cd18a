"""Erasure on the real stack: three members with history in every member-keyed table and every job's state.

``nextwatch members erase`` forgets member A. Member C is forgotten by a bare request on the same partition
of the erasures topic, after A's, so C's rows are deleted by the jobs alone: once they are gone everywhere,
every job has handled both requests. Then A's and C's old events are replayed, followed on the same
partitions by new events of member B; once B's are applied everywhere, A and C must still be absent from every
table, the API must answer 404 for them though it had A's page cached, and no job's savepoint may hold their
ids, while B's data is untouched and B's id is in the savepoints (the search can find an id).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from connectors.cassandra_store import connect
from connectors.events import BrowseEvent, Context, ErasureRequest, PlayEvent, RatingEvent, ShownItem
from connectors.experiment_store import read_metric_rows
from connectors.feature_store import FeatureStore
from connectors.homepage_store import HomepageStore
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.model_store import ModelStore
from connectors.producer import EventProducer
from connectors.topics import topic_for_subject
from infra import members
from infra.pipeline import start_job
from jobs.exploration.rewards import PresentationToken
from jobs.flink.features.config import FeatureJobConfig
from jobs.runtime import FlinkConfig, stop_with_savepoint
from tests import factories
from tests.integration.serving import serving, wait_until

JOBS = ("features", "learning", "rows", "metrics")
HOUR = 3_600_000
CTX = Context("tv-1", "TV", "US", 0)


def _history(member: str, titles: list[str], at_ms: int, label: str) -> list[Any]:
    """An impression in an experiment, a click, a minute of a title (continue watching), a rating: a session."""
    token = PresentationToken("p", 1.0, (1.0,), (False,), (label,)).encode()
    impression = f"imp-{uuid.uuid4().hex}"
    return [
        BrowseEvent(member, at_ms, CTX, "IMPRESSION", impression, "home", "top_picks", 0,
                    [ShownItem(titles[0], 0, None)], presentation_token=token, event_id=uuid.uuid4().hex),
        BrowseEvent(member, at_ms + 1000, CTX, "CLICK", impression, "home", "top_picks", 0, title_id=titles[0],
                    position_in_row=0, event_id=uuid.uuid4().hex),
        PlayEvent(member, at_ms + 2000, CTX, titles[0], "START", f"pb-{uuid.uuid4().hex}", 0, 600_000,
                  event_id=uuid.uuid4().hex),
        PlayEvent(member, at_ms + 62_000, CTX, titles[0], "STOP", f"pb-{uuid.uuid4().hex}", 60_000, 600_000,
                  event_id=uuid.uuid4().hex),
        RatingEvent(member, at_ms + 63_000, CTX, titles[1], "THUMBS_UP", event_id=uuid.uuid4().hex),
    ]


def _send(producer: EventProducer, kafka: Any, events: list[Any]) -> list[tuple[str, bytes, bytes, int]]:
    """Each event to partition 0 of its topic (one order per topic for the whole test); what was sent."""
    sent = []
    for event in events:
        topic = topic_for_subject(type(event).SUBJECT).full_name(kafka)
        value = producer.codec.encode(event, int(time.time() * 1000))
        sent.append((topic, event.user_id.encode(), value, event.event_time_ms))
    _resend(producer, sent)
    return sent


def _resend(producer: EventProducer, messages: list[tuple[str, bytes, bytes, int]]) -> None:
    for topic, key, value, at_ms in messages:
        producer.send_encoded(topic, key, value, at_ms, partition=0)
    producer.flush()


def _savepoint_holds(directory: Path, text: str) -> list[str]:
    """The files under ``directory`` whose bytes contain ``text``."""
    needle = text.encode()
    return [str(path) for path in directory.rglob("*") if path.is_file() and needle in path.read_bytes()]


def test_an_erased_member_is_gone_from_every_table_state_and_answer_and_replays_do_not_bring_them_back(
        kafka_config: Any, cassandra_config: Any, clean_environment: dict[str, str], tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    kafka = replace(kafka_config, topic_prefix=f"erase-{tag}.")
    created = ensure_topics(kafka)
    erased, canary, kept = (f"erase{n}-{tag}" for n in ("a", "c", "b"))
    titles = [f"et{n}-{tag}" for n in range(4)]
    experiment = f"erase-{tag}"
    keyspace = cassandra_config.keyspace
    session = connect(cassandra_config, keyspace)
    features, models, pages = (store(session, keyspace) for store in (FeatureStore, ModelStore, HomepageStore))
    producer = EventProducer(kafka, account_ids=False)
    producer.send_many(factories.make_catalog_item(title_id=t, title=f"Erase {n}", artwork=[], event_id=f"{t}-c")
                       for n, t in enumerate(titles))
    for member in (erased, canary, kept):
        pages.set_maturity_limit(member, "EIGHTEEN_PLUS", int(time.time() * 1000))
    pages.drain()
    now = int(time.time() * 1000)
    history = {member: _send(producer, kafka, _history(member, titles, now - 2 * HOUR, f"{experiment}:v0"))
               for member in (erased, canary, kept)}  # in the topics before the jobs start: read from the first fetch
    settings = {"features": replace(FeatureJobConfig.load(), session_gap_minutes=5)}
    clients = {name: start_job(name, kafka, cassandra_config, settings=settings.get(name), group_id=f"{name}-{tag}",
                               flink=FlinkConfig(checkpoint_interval_ms=2000, checkpoint_dir=str(tmp_path / name)))
               for name in JOBS}
    clock = PlayEvent(f"clock-{tag}", now - HOUR, CTX, titles[3], "START", "pb-clock", 0, 600_000)

    def rows_of(member: str) -> dict[str, bool]:
        """Whether each member-keyed table holds a row of ``member``."""
        return {"user_profile": bool(features.rows("get_profile", member)),
                "continue_watching": bool(features.rows("get_cw", member)),
                "sessions": bool(features.rows("get_sessions", member)),
                "user_vectors": bool(models.rows("get_user_vectors", member)),
                "top_picks": bool(models.rows("get_top_picks", member)),
                "homepage": bool(pages.homepages(member)),
                "profile_settings": bool(pages.rows("get_profile_settings", member))}

    def members_in_variant() -> float:
        rows = read_metric_rows(session, keyspace, experiment)
        newest = max((r.day for r in rows), default=0)
        return sum(r.sums[0] for r in rows if r.day == newest and r.segment == "all" and r.metric == "ctr")

    def everywhere() -> bool:
        _send(producer, kafka, [replace(clock, event_id=uuid.uuid4().hex, event_time_ms=int(time.time() * 1000))])
        return all(all(rows_of(m).values()) for m in (erased, canary, kept)) and members_in_variant() == 3

    try:
        with serving(kafka, cassandra_config, clean_environment, cache_ttl_ms=60_000) as api:
            wait_until("every member's rows in every table and three members in the variant", everywhere, 300,
                       every_s=2.0)
            assert api.call(f"/v1/members/{erased}/homepage?device=tv").status == 200  # cached for a minute
            done = members.erase(erased, reason="test", kafka=kafka, cassandra=cassandra_config)
            assert set(done.tables) >= set(rows_of(erased))
            request = ErasureRequest(canary, int(time.time() * 1000))
            _send(producer, kafka, [request])  # after A's, on the same partition
            wait_until("the API forgets the erased member, cached page and all",
                       lambda: api.call(f"/v1/members/{erased}/homepage?device=tv").status == 404, 30)

            def canary_gone() -> bool:
                gone = not any(v for table, v in rows_of(canary).items() if table != "profile_settings")
                return gone and members_in_variant() == 1
            wait_until("the jobs delete the canary's rows and take both out of the sums", canary_gone, 180,
                       every_s=2.0)

            # the old events again (a replay), then the kept member's new events behind them
            for member in (erased, canary):
                _resend(producer, history[member])
            later = int(time.time() * 1000)
            fresh = _history(kept, titles, later, f"{experiment}:v0")[1:]
            last = RatingEvent(kept, later + 64_000, CTX, titles[2], "THUMBS_UP", event_id=uuid.uuid4().hex)
            _send(producer, kafka, [*fresh, last])
            fresh_ids = {event.event_id for event in (*fresh, last)}

            seen: dict[str, Any] = {}

            def kept_is_current() -> bool:
                profile, vectors = features.rows("get_profile", kept), models.rows("get_user_vectors", kept)
                seen.update(profile=[r.last_event_id for r in profile], vectors=[(r.last_event_id, r.ratings)
                                                                                  for r in vectors],
                            pages=[p.last_event_id for p in pages.homepages(kept).values()], last=last.event_id)
                # the learning job takes the topics in its own order: all three ratings learned, a new event last
                return (bool(profile) and profile[0].last_event_id == last.event_id and bool(vectors)
                        and vectors[0].ratings == 3 and vectors[0].last_event_id in fresh_ids
                        and any(p.last_event_id == last.event_id for p in pages.homepages(kept).values()))
            try:
                wait_until("the kept member's new events, sent after the replay, in every job", kept_is_current,
                           180, every_s=2.0)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; last seen {seen}") from exc
            time.sleep(5)  # the metrics job too
            nothing = dict.fromkeys(rows_of(kept), False)
            # the canary's profile settings are the account service's rows: only the command deletes those
            assert rows_of(erased) == nothing and rows_of(canary) == {**nothing, "profile_settings": True}
            assert all(rows_of(kept).values()) and members_in_variant() == 1
            assert api.call(f"/v1/members/{canary}/homepage?device=tv").status == 404
            assert api.call(f"/v1/members/{kept}/homepage?device=tv").status == 200
        savepoints = tmp_path / "savepoints"
        for name, client in clients.items():
            stop_with_savepoint(client, savepoints / name, FlinkConfig().execution_mode)
        clients = {}
        assert _savepoint_holds(savepoints, kept), "the search finds an id the jobs keep"
        assert _savepoint_holds(savepoints, erased) == [] and _savepoint_holds(savepoints, canary) == []
    finally:
        for client in clients.values():
            client.cancel().result()
        producer.close()
        session.cluster.shutdown()
        delete_topics(kafka, created)
