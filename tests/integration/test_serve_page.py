"""The web page in a real browser (Debian's chromium driven by Playwright) over the real stack and jobs: a member's
rows load; finishing and rating a title on the page sends real events, and within 60 s the title has left the page
and a "Because You Watched" row anchored on it is there. A screenshot is kept under the state dir."""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connectors.config import state_dir
from connectors.events import ArtworkVariant, Availability, Context, PlayEvent, RatingEvent
from connectors.homepage_store import HomepageClient
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from infra.pipeline import start_job
from jobs.flink.learning.config import LearningJobConfig
from jobs.flink.rows.config import RowsJobConfig
from jobs.runtime import FlinkConfig
from tests.factories import make_catalog_item
from tests.integration.serving import serving, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# a closed network: no background calls home, no GPU, no sandbox (CI runs as root)
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"]
DAY = 86_400_000


def test_finishing_and_rating_on_the_page_changes_it(kafka_config: Any, cassandra_config: Any,
                                                     cassandra_session: Any, clean_environment: dict[str, str],
                                                     tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: `bash infra/dev.sh test` installs Debian's chromium")
    from playwright.sync_api import expect, sync_playwright

    tag = uuid.uuid4().hex[:8]
    kafka = replace(kafka_config, topic_prefix=f"page-{tag}.")
    created = ensure_topics(kafka)
    now = int(time.time() * 1000)
    t = [f"t{n}-{tag}" for n in range(24)]
    member, web = f"member-{tag}", Context("browser-1", "WEB", "US", 0)

    def title(n: int) -> Any:
        return make_catalog_item(title_id=t[n], title=f"Title {n}", updated_time_ms=now - DAY,
                                 availability=Availability(now - 10 * DAY), maturity_rating="ALL",
                                 genres=["Drama" if n % 2 else "Comedy"],
                                 artwork=[ArtworkVariant(f"{t[n]}-a", f"https://art.example/{n}.jpg", ["warm"])])

    def watched(user: str, n: int, at: int) -> list[Any]:
        playback = f"pb-{user}-{n}"
        return [PlayEvent(user, at, web, t[n], "START", playback, 0, 3_600_000),
                PlayEvent(user, at + 1, web, t[n], "COMPLETE", playback, 3_600_000, 3_600_000),
                RatingEvent(user, at + 2, web, t[n], "STARS", 5.0)]

    flink = FlinkConfig(checkpoint_interval_ms=2000, checkpoint_dir=str(tmp_path / "checkpoints"))
    jobs: list[Any] = []
    try:
        with EventProducer(kafka) as producer:
            for n in range(len(t)):
                producer.send(title(n))
            producer.flush()
            jobs.append(start_job("learning", kafka, cassandra_config, flink=flink, settings=LearningJobConfig(
                group_id=f"learning-{tag}", snapshot_ms=500, warm_start=False)))
            # short rows: a title is shown once per page, so a row of titles like t0 needs more of them than
            # the rows above it show
            jobs.append(start_job("rows", kafka, cassandra_config, flink=flink, settings=RowsJobConfig(
                group_id=f"rows-{tag}", flush_ms=100, explore_share=0.0, row_order_epsilon=0.0,
                artwork_epsilon=0.0, items_per_row=4)))
            at = int(time.time() * 1000) - 60_000
            # t1's fans watch t0 too (so t0 is for the member, who has seen t1); t0's other fans watch t4-t11
            for fan, titles in [*((f"a{n}", (1, 0)) for n in range(6)), *((f"b{n}", (0, *range(4, 12)))
                                                                          for n in range(6))]:
                for n in titles:
                    producer.send_many(watched(f"fan-{fan}-{tag}", n, at))
                    at += 10
            producer.send_many(watched(member, 1, at))
            producer.flush()

        client = HomepageClient(cassandra_session, cassandra_config.keyspace)
        wait_until("the member's homepage with t0 on it", lambda: (
            (page := client.homepage(member, "any")) is not None
            and t[0] in {i.title_id for r in page.rows for i in r.items}), 120, every_s=1.0)

        with serving(kafka, cassandra_config, clean_environment, workers=1, demo_actions=True) as service, \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            page = browser.new_context(timezone_id="UTC", viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(f"{service.url}/?member={member}")
            expect(page.locator("section.row").first).to_be_visible(timeout=10_000)
            card = page.locator(f'.card[data-title-id="{t[0]}"]').first
            expect(card).to_be_visible()
            assert "Title 0" in card.inner_text()

            card.locator('button[data-action="finish"]').click()
            card.locator('button[data-action="rate"][data-stars="5"]').click()
            clicked = time.monotonic()
            expect(page.locator(f'section.row[data-row-id="because_you_watched:{t[0]}"]')).to_be_visible(
                timeout=60_000)
            expect(page.locator(f'.card[data-title-id="{t[0]}"]')).to_have_count(0)
            expect(page.locator("#latency")).to_contain_text("produce → visible")
            seconds = time.monotonic() - clicked
            assert seconds < 60
            artifacts = state_dir() / "test-artifacts"
            artifacts.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(artifacts / "serve-page.png"), full_page=True)
            print(f"page changed {seconds:.1f} s after the clicks; screenshot {artifacts / 'serve-page.png'}")
            browser.close()
    finally:
        for job in jobs:
            job.cancel().result()
        delete_topics(kafka, created)
