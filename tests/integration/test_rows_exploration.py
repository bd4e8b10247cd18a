"""The rows job learns from impressions on the real stack: a member who clicks one artwork theme gets it.

A scripted member reads their homepage through the client, produces an IMPRESSION for
each row as an app would (the items with the artwork served, the row's presentation
token echoed), and clicks only titles shown with "dark" artwork. The rows job joins
impressions and clicks in the member's state, and once each impression's window has
closed its outcomes teach the artwork policy. Every title has a "couple" variant first,
which an untaught policy picks.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from connectors.codec import EventCodec
from connectors.consumer import read_snapshot
from connectors.events import ArtworkVariant, Availability, BrowseEvent, Context, ShownItem
from connectors.homepage_store import Homepage, HomepageClient
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from connectors.topics import TOPICS_BY_NAME
from infra import cli
from infra.pipeline import start_job
from jobs.context import context_bucket
from jobs.exploration.rewards import PresentationToken
from jobs.flink.rows.config import RowsJobConfig
from jobs.models.online import MODEL_VERSION
from jobs.runtime import FlinkConfig
from tests.integration.test_learning_job import _wait

DAY = 86_400_000


def _take(kafka: Any, topic: str, count: int) -> list[Any]:
    from connectors.consumer import EventConsumer

    with EventConsumer([topic], f"outcomes-{uuid.uuid4().hex[:6]}", kafka) as consumer:
        return consumer.take(count, timeout_s=30)


def test_clicks_on_one_artwork_theme_make_the_rows_job_serve_it(kafka_config: Any, cassandra_config: Any,
                                                                cassandra_session: Any,
                                                                make_event: Callable[..., Any], tmp_path: Any,
                                                                monkeypatch: Any, capsys: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    kafka = replace(kafka_config, topic_prefix=f"explore-{tag}.")
    created = ensure_topics(kafka)
    now = int(time.time() * 1000)
    user = f"member-{tag}"
    tv = Context("tv-1", "TV", "US", 0)
    titles = [f"t{n}-{tag}" for n in range(8)]
    codec = EventCodec()
    topic = lambda name: TOPICS_BY_NAME[name].full_name(kafka)  # noqa: E731

    def title(n: int) -> Any:
        art = [ArtworkVariant(f"{titles[n]}-couple", "https://art/c.jpg", ["couple"]),
               ArtworkVariant(f"{titles[n]}-dark", "https://art/d.jpg", ["dark"])]
        return make_event("catalog", title_id=titles[n], title=f"Title {n}", genres=["Drama"], maturity_rating="ALL",
                          updated_time_ms=now - DAY, availability=Availability(now - 10 * DAY), artwork=art)

    def picks_of(member: str) -> bytes:
        return codec.encode_record("user_update", {
            "schema_version": 1, "event_id": f"{member}:1", "user_id": member, "model_version": MODEL_VERSION,
            "version": 1, "last_event_id": "", "updated_ms": now, "pick_ids": titles,
            "pick_scores": [1.0 - k / 10 for k in range(len(titles))], "pick_reasons": ["item_cf"] * len(titles),
            "recent_titles": [], "content_profile": [], "ingest_time_ms": now})
    client = HomepageClient(cassandra_session, cassandra_config.keyspace)
    bucket = context_bucket(now, 0, "TV")

    def dark_share(page: Homepage) -> float:
        shown = [i for r in page.rows for i in r.items if i.title_id in titles]
        return sum(i.artwork_id.endswith("-dark") for i in shown) / len(shown)

    # the reward window is processing time after the impression's event time: it must outlast the
    # way from the producer to the job (bundles in process mode), or a click can miss its impression
    settings = RowsJobConfig(group_id=f"explore-{tag}", flush_ms=100, reward_window_ms=1000, explore_share=0.0,
                             row_order_epsilon=0.0, artwork_epsilon=0.1)
    flink = FlinkConfig(checkpoint_interval_ms=2000, checkpoint_dir=str(tmp_path / "checkpoints"))
    job = None
    try:
        with EventProducer(kafka) as producer:
            for n in range(len(titles)):
                producer.send(title(n))
            producer.flush()
            job = start_job("rows", kafka, cassandra_config, flink=flink, settings=settings)
            producer.send_encoded(topic("user-updates"), user.encode(), picks_of(user))
            producer.send(BrowseEvent(user, int(time.time() * 1000), tv, "SCROLL", "start", "home", scroll_depth=0))
            producer.flush()
            first = _wait("a first homepage", lambda: client.homepage(user, bucket), timeout_s=60)
            assert dark_share(first) < 0.5  # untaught: the first variant, "couple", bar exploration

            page, last = first, first.generated_ms
            for round_ in range(25):
                at = int(time.time() * 1000)
                for position, row in enumerate(page.rows):
                    impression = f"imp-{round_}-{position}"
                    shown = [ShownItem(i.title_id, slot, i.artwork_id) for slot, i in enumerate(row.items)]
                    producer.send(BrowseEvent(user, at, tv, "IMPRESSION", impression, "home", row.row_id, position,
                                              shown, presentation_token=row.token))
                    for slot, item in enumerate(row.items):
                        if item.artwork_id.endswith("-dark"):
                            producer.send(BrowseEvent(user, at + 1, tv, "CLICK", impression, "home", row.row_id,
                                                      position, title_id=item.title_id, position_in_row=slot,
                                                      artwork_id=item.artwork_id))
                producer.flush()
                # no further event: the job wakes up when the reward window closes, learns, and rebuilds
                time.sleep(1.0)
                page = _wait("a rebuilt homepage", lambda since=last: (p := client.homepage(user, bucket)) is not None
                             and p.generated_ms > since and p, timeout_s=30)
                last = page.generated_ms
            assert dark_share(page) >= 0.75, dark_share(page)  # greedy now picks "dark"; a tenth may explore
            # a last impression and then silence: the reward window's timer still closes it and logs it
            final = page.rows[0]
            producer.send(BrowseEvent(user, int(time.time() * 1000), tv, "IMPRESSION", "imp-final", "home",
                                      final.row_id, 0, [ShownItem(i.title_id, n, i.artwork_id)
                                                        for n, i in enumerate(final.items)],
                                      presentation_token=final.token))
            producer.flush()
            _wait("the last impression's outcomes", lambda: any(
                e.record["impression_id"] == "imp-final" for e in read_snapshot(topic("impression-outcomes"), kafka)),
                timeout_s=30)
            # and every shown item's outcome is logged for off-policy evaluation, with its propensities
            logged = [m.event for m in _take(kafka, topic("impression-outcomes"), 40)]
            assert len(logged) == 40 and all(m is not None for m in logged)
            records = [m.record for m in logged if m is not None]
            assert {r["user_id"] for r in records} == {user} and all(0 < r["item_propensity"] <= 1 for r in records)
            assert any(r["clicked"] for r in records) and all(r["clicked"] == r["artwork_id"].endswith("-dark")
                                                               for r in records)
            # the shared models were learned by the policy learner and published, absolute and versioned
            snapshots = [e.record for e in read_snapshot(topic("policy-updates"), kafka)]
            newest = max(snapshots, key=lambda r: r["version"])
            assert newest["name"] == "homepage" and newest["version"] > 100
            artwork = orjson.loads(newest["models_json"])["artwork"][1]
            assert artwork.get("theme:dark", 0.0) > artwork.get("theme:couple", 0.0)
            # `nextwatch eval --ope` reads them and estimates the candidates
            monkeypatch.setenv("NEXTWATCH_KAFKA_TOPIC_PREFIX", kafka.topic_prefix)
            assert cli.main(["eval", "--ope"]) == 0
            report = capsys.readouterr().out
            assert all(line in report for line in ("off-policy evaluation over", "greedy order", "without exploration"))
            for row in page.rows:
                token = PresentationToken.decode(row.token)
                dark = [i.artwork_id.endswith("-dark") for i in row.items]
                # an item shown with the exploited variant carries (1 - epsilon) + epsilon / 2 of probability
                assert all(abs(p - 0.95) < 1e-6 for p, d in zip(token.item_propensities, dark, strict=True) if d)

            # a restart with no checkpoint: the new job's builders and learner start from the published
            # models, so a newcomer with no clicks of their own is served "dark" too
            job.cancel().result()
            job = start_job("rows", kafka, cassandra_config,
                            flink=replace(flink, checkpoint_dir=str(tmp_path / "again")),
                            settings=replace(settings, group_id=f"explore-{tag}-again"))
            newcomer = f"newcomer-{tag}"
            producer.send_encoded(topic("user-updates"), newcomer.encode(), picks_of(newcomer))
            producer.flush()
            deadline = time.monotonic() + 90
            while (fresh := client.homepage(newcomer, bucket)) is None or dark_share(fresh) < 0.75:
                assert time.monotonic() < deadline, "the restarted job never served the published models"
                producer.send(BrowseEvent(newcomer, int(time.time() * 1000), tv, "SCROLL", "s", "home",
                                          scroll_depth=0))
                producer.flush()
                time.sleep(2.0)
            again = [e.record for e in read_snapshot(topic("policy-updates"), kafka)]
            assert max(r["version"] for r in again) >= newest["version"]  # the learner went on from there
    finally:
        if job is not None:
            job.cancel().result()
        delete_topics(kafka, created)
