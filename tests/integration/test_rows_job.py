"""The rows job on the real stack, for a scripted member: the homepage appears and follows their events and
the models' updates, completed and hidden titles never show, the context bucket selects the homepage, and the
read client returns it. User updates and item vectors are produced here as the learning job would."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from connectors.codec import EventCodec
from connectors.events import Availability, Context, PlayEvent, SearchEvent
from connectors.homepage_store import Homepage, HomepageClient, HomepageStore
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from connectors.topics import TOPICS_BY_NAME
from infra.pipeline import start_job
from jobs.context import context_bucket
from jobs.exploration.rewards import PresentationToken
from jobs.flink.rows.config import RowsJobConfig
from jobs.models.online import MODEL_VERSION
from jobs.runtime import FlinkConfig
from tests.integration.test_learning_job import _wait

DAY = 86_400_000


def test_a_members_homepage_follows_their_events(kafka_config: Any, cassandra_config: Any, cassandra_session: Any,
                                                 make_event: Callable[..., Any], tmp_path: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    kafka = replace(kafka_config, topic_prefix=f"rows-{tag}.")
    created = ensure_topics(kafka)
    now = int(time.time() * 1000)
    user = f"member-{tag}"
    tv, phone = Context("tv-1", "TV", "US", 0), Context("phone-1", "MOBILE", "US", 0)
    t = [f"t{n}-{tag}" for n in range(12)]

    def title(n: int, **overrides: Any) -> Any:
        fields = {"title_id": t[n], "title": f"Title {n}", "genres": ["Drama" if n % 2 == 0 else "Comedy"],
                  "maturity_rating": "EIGHTEEN_PLUS" if n == 11 else "ALL", "updated_time_ms": now - DAY,
                  "availability": Availability(now - 10 * DAY), "artwork": []}
        return make_event("catalog", **{**fields, **overrides})

    codec = EventCodec()
    topic = lambda name: TOPICS_BY_NAME[name].full_name(kafka)  # noqa: E731

    def user_update(version: int, picks: list[int], last_event_id: str) -> bytes:
        return codec.encode_record("user_update", {
            "schema_version": 1, "event_id": f"{user}:{version}", "user_id": user, "model_version": MODEL_VERSION,
            "version": version, "last_event_id": last_event_id, "updated_ms": now, "pick_ids": [t[n] for n in picks],
            "pick_scores": [1.0 - k / 10 for k in range(len(picks))], "pick_reasons": ["item_cf"] * len(picks),
            "recent_titles": [], "content_profile": [], "ingest_time_ms": now})

    def similar(n: int, neighbours: list[int]) -> bytes:
        return codec.encode_record("item_vectors", {
            "schema_version": 2, "event_id": f"{t[n]}:1", "title_id": t[n], "model_version": MODEL_VERSION,
            "version": 1, "rating_vector": [], "rating_bias": 0.0, "implicit_vector": [], "implicit_bias": 0.0,
            "touches": 5.0, "neighbor_ids": [t[m] for m in neighbours], "neighbor_scores": [0.9] * len(neighbours),
            "updated_ms": now, "ingest_time_ms": now})

    def play(n: int, action: str, context: Context = tv, position: float = 1.0) -> PlayEvent:
        return PlayEvent(user, int(time.time() * 1000), context, t[n], action, f"pb-{n}",
                         int(position * 3_600_000), 3_600_000)

    store = HomepageStore(cassandra_session, cassandra_config.keyspace)
    store.set_maturity_limit(user, "THIRTEEN_PLUS", now)
    client = HomepageClient(cassandra_session, cassandra_config.keyspace)

    def page(bucket: str, has: Callable[[Homepage], bool]) -> Homepage:
        return _wait(f"a homepage for {bucket}", lambda: (
            (found := client.homepage(user, bucket)) is not None and found.served_context == bucket and has(found)
            and found), timeout_s=60)

    def titles(found: Homepage, row_id: str | None = None) -> list[str]:
        return [i.title_id for r in found.rows if row_id in (None, r.row_id) for i in r.items]

    flink = FlinkConfig(checkpoint_interval_ms=2000, checkpoint_dir=str(tmp_path / "checkpoints"))
    job = None
    try:
        with EventProducer(kafka) as producer:
            for n in range(12):
                producer.send(title(n))
            producer.send_encoded(topic("model-updates"), t[0].encode(), similar(0, [1, 2, 11, 3]))
            producer.flush()
            # no exploration here: this test pins the rows' rules and contents (tests/unit/test_presentation.py
            # covers what exploration adds)
            job = start_job("rows", kafka, cassandra_config, flink=flink,
                                 settings=RowsJobConfig(group_id=f"rows-{tag}", flush_ms=100, explore_share=0.0,
                                                        row_order_epsilon=0.0, artwork_epsilon=0.0))
            finished, started = play(0, "COMPLETE"), play(3, "STOP", position=0.3)
            for event in (finished, started):
                producer.send(event)
            producer.send_encoded(topic("user-updates"), user.encode(), user_update(1, [0, 5, 11, 6],
                                                                                    started.event_id))
            producer.flush()

            tv_bucket = context_bucket(int(time.time() * 1000), 0, "TV")
            # the plays, the update and t0's similar titles arrive on three inputs in no order; a page built before
            # the similar titles landed is rebuilt by the member's next event (a search, which changes nothing else)
            def complete(p: Homepage | None) -> bool:
                return (p is not None and p.served_context == tv_bucket and p.model_versions.get("learning_version")
                        == "1" and titles(p, "continue_watching") == [t[3]] and t[0] not in titles(p)
                        and any(r.row_id == f"because_you_watched:{t[0]}" for r in p.rows))

            deadline = time.monotonic() + 60
            while not complete(home := client.homepage(user, tv_bucket)):
                assert time.monotonic() < deadline, "the plays, the update and the similar titles never all reached it"
                time.sleep(2.0)
                if home is not None and home.model_versions.get("learning_version") == "1":
                    producer.send(SearchEvent(user, int(time.time() * 1000), tv, "anything"))
                    producer.flush()
            assert home is not None
            assert [r.row_id for r in home.rows][:2] == ["continue_watching", "top_picks"]
            assert titles(home, "continue_watching") == [t[3]]
            assert titles(home, "top_picks") == [t[5], t[6]]  # t0 is finished, t11 above the profile's level
            assert titles(home, f"because_you_watched:{t[0]}") == [t[1], t[2]]  # t3 is in progress, t11 mature
            assert t[0] not in titles(home) and t[11] not in titles(home)
            assert home.model_versions["learning_last_event"] == started.event_id
            for row in home.rows:  # every row says how it was chosen, for the impressions to echo back
                token = PresentationToken.decode(row.token)
                assert len(token.item_propensities) == len(row.items) and not any(token.explored)

            # they finish t3, the models move on, t5 is withdrawn from the catalog
            producer.send(play(3, "COMPLETE"))
            producer.send(title(5, updated_time_ms=now, availability=Availability(now - 10 * DAY, [], now - 1)))
            producer.flush()
            time.sleep(1.0)  # the catalog is broadcast apart from the user's events: let it land first
            producer.send_encoded(topic("user-updates"), user.encode(), user_update(2, [3, 7, 5, 6], "x"))
            producer.flush()
            # a page is rebuilt on the user's events and updates: should the withdrawal land after this update
            # (two inputs, no order between them), the user's next event rebuilds without it
            deadline = time.monotonic() + 60
            while (home := client.homepage(user, tv_bucket)) is None or \
                    home.model_versions.get("learning_version") != "2" or t[5] in titles(home):
                assert time.monotonic() < deadline, "the update and the withdrawal never both reached the page"
                producer.send(SearchEvent(user, int(time.time() * 1000), tv, "anything"))  # a rebuild, nothing else
                producer.flush()
                time.sleep(2.0)
            assert "continue_watching" not in [r.row_id for r in home.rows]
            assert titles(home, "top_picks") == [t[7], t[6]]  # t3 finished now, t5 withdrawn
            assert t[3] not in titles(home) and t[5] not in titles(home)

            # the same member on a phone: that bucket's homepage, the TV one kept for the TV
            producer.send(play(8, "START", phone, position=0.0))
            producer.flush()
            phone_bucket = context_bucket(int(time.time() * 1000), 0, "MOBILE")
            mobile = page(phone_bucket, lambda p: t[8] in titles(p, "continue_watching"))
            assert mobile.context == phone_bucket and titles(mobile, "top_picks") == [t[7], t[6]]
            again = client.homepage(user, tv_bucket)
            assert again is not None and again.served_context == tv_bucket  # kept, not rewritten for the phone
            assert t[8] not in titles(again, "continue_watching") and again.generated_ms < mobile.generated_ms
    finally:
        if job is not None:
            job.cancel().result()
        delete_topics(kafka, created)
