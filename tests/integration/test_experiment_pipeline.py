"""An A/B experiment on the real stack: created on the topic, served by the rows job, measured by the metrics job,
reported from Cassandra.

Two variants of ``rows.diversity`` split a dozen members. Each member's page is built with their variant's
setting and every row's token names the variant; the scripted members act as apps do (an impression per
row with the token echoed, a click on some), the rows job logs each shown item's outcome with the variant,
and the metrics job turns exposures and outcomes into each variant's sums in ``experiment_metrics``,
from which ``nextwatch experiments report`` computes the report.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from connectors.consumer import read_snapshot
from connectors.events import Availability, BrowseEvent, Context, ShownItem
from connectors.experiment_store import read_metric_rows
from connectors.homepage_store import HomepageClient
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from connectors.topics import TOPICS_BY_NAME
from infra import experiments
from infra.pipeline import start_job
from jobs.context import context_bucket
from jobs.experiments.assignment import variant_of
from jobs.exploration.rewards import PresentationToken
from jobs.flink.metrics.config import MetricsJobConfig
from jobs.flink.rows.config import RowsJobConfig
from jobs.models.online import MODEL_VERSION
from jobs.runtime import FlinkConfig
from tests.integration.serving import serving
from tests.integration.test_learning_job import _wait

DAY = 86_400_000
DEFINITION = """
name = "{name}"
layer = "ranking-{tag}"
description = "diversity 1.0 against 0.3"

[[variants]]
name = "control"

[[variants]]
name = "diverse"
overrides = {{ "rows.diversity" = 1.0 }}
"""


def test_two_diversity_variants_served_measured_and_reported(kafka_config: Any, cassandra_config: Any,
                                                             cassandra_session: Any, make_event: Any,
                                                             tmp_path: Path, clean_environment: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:8]
    kafka = replace(kafka_config, topic_prefix=f"abtest-{tag}.")
    created = ensure_topics(kafka)
    now = int(time.time() * 1000)
    name = f"diversity-{tag}"
    tv = Context("tv-1", "TV", "US", 0)
    titles = [f"t{n}-{tag}" for n in range(10)]
    genres = ["Drama", "Drama", "Drama", "Comedy", "Comedy", "Horror", "Drama", "Comedy", "Horror", "Drama"]
    members = [f"member-{n}-{tag}" for n in range(12)]
    topic = lambda topic_name: TOPICS_BY_NAME[topic_name].full_name(kafka)  # noqa: E731
    client = HomepageClient(cassandra_session, cassandra_config.keyspace)
    flink = FlinkConfig(checkpoint_interval_ms=2000, checkpoint_dir=str(tmp_path / "checkpoints"))
    jobs = []
    try:
        definition = tmp_path / "diversity.toml"
        definition.write_text(DEFINITION.format(name=name, tag=tag))
        experiment = experiments.create(definition, kafka)
        assigned = {m: variant_of(experiment, m).name for m in members}  # type: ignore[union-attr]
        assert set(assigned.values()) == {"control", "diverse"}
        with EventProducer(kafka) as producer:
            for n, title_id in enumerate(titles):
                producer.send(make_event("catalog", title_id=title_id, title=f"Title {n}", genres=[genres[n]],
                                         maturity_rating="ALL", updated_time_ms=now - DAY,
                                         availability=Availability(now - 10 * DAY), artwork=[]))
            producer.flush()
            jobs.append(start_job("rows", kafka, cassandra_config, flink=flink,
                                  settings=RowsJobConfig(group_id=f"abtest-{tag}", flush_ms=100, reward_window_ms=1000,
                                                         explore_share=0.0, row_order_epsilon=0.0,
                                                         artwork_epsilon=0.0)))
            jobs.append(start_job("metrics", kafka, cassandra_config,
                                  flink=replace(flink, checkpoint_dir=str(tmp_path / "metrics")),
                                  settings=MetricsJobConfig(group_id=f"abtest-metrics-{tag}", flush_ms=500)))
            codec = producer.codec
            bucket = context_bucket(now, 0, "TV")

            def picks(member: str) -> None:
                producer.send_encoded(topic("user-updates"), member.encode(), codec.encode_record("user_update", {
                    "schema_version": 1, "event_id": f"{member}:1", "user_id": member, "model_version": MODEL_VERSION,
                    "version": 1, "last_event_id": "", "updated_ms": now, "pick_ids": titles,
                    "pick_scores": [1.0 - k / 20 for k in range(len(titles))],
                    "pick_reasons": ["item_cf"] * len(titles), "recent_titles": [], "content_profile": [],
                    "ingest_time_ms": now}))

            # topics reach a job in no order relative to each other: a page built before the experiment has
            # arrived is (rightly) the default one, so a probe member's page, rebuilt on each new event, says
            # when the rows job serves the experiment; the probe is shown nothing, so it is never measured
            probe = f"probe-{tag}"
            picks(probe)

            def serves_the_experiment() -> bool:
                producer.send(BrowseEvent(probe, int(time.time() * 1000), tv, "SCROLL", "probe", "home",
                                          scroll_depth=0))
                producer.flush()
                page = client.homepage(probe, bucket)
                return page is not None and any(PresentationToken.decode(row.token).experiments
                                                 for row in page.rows)
            _wait("the rows job to serve the experiment", serves_the_experiment, timeout_s=90)
            for member in members:
                picks(member)
                producer.send(BrowseEvent(member, now, tv, "SCROLL", "start", "home", scroll_depth=0))
            producer.flush()
            # the picks and the scroll are on two topics too: a page built from the scroll alone has no rows yet,
            # and the one built once the picks are in holds them
            def page_with_picks(member: str) -> Any:
                page = client.homepage(member, bucket)
                return page if page is not None and any(row.row_id == "top_picks" for row in page.rows) else None
            pages = {m: _wait(f"{m}'s homepage with their picks", lambda m=m: page_with_picks(m), timeout_s=90)
                     for m in members}
            # each page built under the member's variant, and every row's token says which
            for member, page in pages.items():
                labels = {PresentationToken.decode(row.token).experiments for row in page.rows}
                assert labels == {(f"{name}:{assigned[member]}",)}, (member, labels)
            # the apps show the rows and echo the tokens; members of the first half click the first title
            clicks = 0
            for n, (member, page) in enumerate(pages.items()):
                at = int(time.time() * 1000)
                for position, row in enumerate(page.rows):
                    impression = f"imp-{member}-{position}"
                    producer.send(BrowseEvent(member, at, tv, "IMPRESSION", impression, "home", row.row_id, position,
                                              [ShownItem(i.title_id, s, i.artwork_id or None)
                                               for s, i in enumerate(row.items)],
                                              presentation_token=row.token))
                    if n % 2 == 0 and position == 0:
                        clicks += 1
                        producer.send(BrowseEvent(member, at + 1, tv, "CLICK", impression, "home", row.row_id,
                                                  position, title_id=row.items[0].title_id, position_in_row=0))
            producer.flush()
            shown = sum(len(row.items) for page in pages.values() for row in page.rows)

            # the rows job logs each shown item's outcome with the variant it was served under
            def outcomes() -> list[Any]:
                found = [e.record for e in read_snapshot(topic("impression-outcomes"), kafka, idle_s=1.0)]
                return found if len(found) >= shown else []
            logged = _wait("every shown item's outcome", outcomes, timeout_s=90)
            assert all(r["experiments"] == [f"{name}:{assigned[r['user_id']]}"] for r in logged)
            assert sum(r["clicked"] for r in logged) == clicks

            # the metrics job's sums: every member entered their variant, every impression and click counted
            def sums() -> dict[tuple[str, str], Any]:
                rows = read_metric_rows(cassandra_session, cassandra_config.keyspace, name)
                latest = {(r.variant, r.metric): r for r in sorted(rows, key=lambda r: r.day) if r.segment == "all"}
                ctr = [latest.get((v, "ctr")) for v in ("control", "diverse")]
                done = all(r is not None for r in ctr) and sum(r.sums[2] for r in ctr if r) == shown
                return latest if done else {}
            latest = _wait("the metrics job's sums", sums, timeout_s=90)
        for variant in ("control", "diverse"):
            ctr = latest[variant, "ctr"].sums
            assert ctr[0] == list(assigned.values()).count(variant)  # members
        assert sum(latest[v, "ctr"].sums[1] for v in ("control", "diverse")) == clicks
        # and the report, from the topic's definition and Cassandra's sums
        report = experiments.report(name, kafka, cassandra_config)
        assert report.members == {v: list(assigned.values()).count(v) for v in ("control", "diverse")}
        assert report.sample_ratio_ok and {r.metric for r in report.results} >= {"ctr", "play_rate", "watch_minutes"}
        ctr_result = next(r for r in report.results if r.metric == "ctr")
        assert ctr_result.lift.control.value > 0 and set(ctr_result.segments) == {"TV"}
        # the API follows the experiments topic: a member's assignment, and the report's page from the sums
        with serving(kafka, cassandra_config, clean_environment) as service:
            member = members[0]
            answer = service.call(f"/v1/members/{member}/experiments").json()
            assert [(a["experiment"], a["variant"]) for a in answer["assignments"]] == [(name, assigned[member])]
            page = service.call(f"/experiments/{name}")
            assert page.status == 200 and page.headers["content-type"].startswith("text/html")
            assert f"Experiment {name}".encode() in page.body and b"<svg" in page.body
            assert service.call("/experiments/no-such-experiment").status == 404
    finally:
        for job in jobs:
            job.cancel().result()
        delete_topics(kafka, created)
