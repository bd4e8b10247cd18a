"""The homepage table and its read client on the real Cassandra: buckets, fallback, overwrite."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from connectors.homepage_store import HomepageClient, HomepageItem, HomepageRow, HomepageStore


def page(*row_ids: str) -> list[HomepageRow]:
    return [HomepageRow(n, row_id, row_id.title(), (HomepageItem(f"{row_id}-t1", 0.9, f"{row_id}-art", "why"),
                                                    HomepageItem(f"{row_id}-t2", 0.5, "", "because")))
            for n, row_id in enumerate(row_ids)]


def test_the_client_reads_the_bucket_asked_for(cassandra_config: Any, cassandra_session: Any) -> None:
    user = f"reader-{uuid.uuid4().hex[:8]}"
    store = HomepageStore(cassandra_session, cassandra_config.keyspace)
    client = HomepageClient(cassandra_session, cassandra_config.keyspace)
    assert client.homepage(user, "evening:tv") is None  # nothing yet: the caller serves the cold start

    store.write_homepage(user, "evening:tv", page("top_picks", "trending"), {"learning": "v1"}, 1_000, "e1")
    store.write_homepage(user, "morning:mobile", page("continue_watching"), {"learning": "v1"}, 2_000, "e2")
    store.drain()
    evening = client.homepage(user, "evening:tv")
    assert evening is not None and evening.served_context == "evening:tv"
    assert [r.row_id for r in evening.rows] == ["top_picks", "trending"] and evening.last_event_id == "e1"
    assert evening.rows[0].items[0] == HomepageItem("top_picks-t1", 0.9, "top_picks-art", "why")
    assert evening.model_versions == {"learning": "v1"} and evening.generated_ms == 1_000
    morning = client.homepage(user, "morning:mobile")
    assert morning is not None and [r.row_id for r in morning.rows] == ["continue_watching"]

    # a bucket never seen: the newest homepage of another, saying which
    night = client.homepage(user, "late_night:web")
    assert night is not None and (night.context, night.served_context) == ("late_night:web", "morning:mobile")

    # a shorter page replaces a longer one whole: no stale rows
    store.write_homepage(user, "evening:tv", page("trending"), {"learning": "v2"}, 3_000, "e3")
    store.drain()
    again = client.homepage(user, "evening:tv")
    assert again is not None and [r.row_id for r in again.rows] == ["trending"] and again.last_event_id == "e3"


def test_a_title_withdrawn_after_the_build_leaves_the_served_page_at_once(
        isolated_kafka: Any, cassandra_config: Any, cassandra_session: Any) -> None:
    from connectors.availability import CatalogAvailability
    from connectors.events import Availability
    from connectors.producer import EventProducer
    from tests.factories import make_catalog_item

    user = f"withdrawn-{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    heat, alien = (make_catalog_item(title_id=t, updated_time_ms=now - 60_000,
                                     availability=Availability(0, [], None)) for t in ("heat", "alien"))
    with EventProducer(isolated_kafka) as producer:
        producer.send_many([heat, alien])
        producer.flush()
    store = HomepageStore(cassandra_session, cassandra_config.keyspace)
    store.write_homepage(user, "evening:tv", [
        HomepageRow(0, "top_picks", "Top Picks", (HomepageItem("heat", 0.9, "", "why"),
                                                  HomepageItem("alien", 0.8, "", "why"))),
        HomepageRow(1, "because_you_watched:heat", "Because You Watched Heat",
                    (HomepageItem("alien", 0.7, "", "similar"),))], {}, now, "e1")
    store.drain()
    with CatalogAvailability(isolated_kafka).start() as availability:
        client = HomepageClient(cassandra_session, cassandra_config.keyspace, availability)
        assert len(availability) == 2
        before = client.homepage(user, "evening:tv")
        assert before is not None and [len(r.items) for r in before.rows] == [2, 1]

        withdrawn = replace(alien, updated_time_ms=now, event_id=f"withdraw-{user}",
                            availability=Availability(0, [], now))  # the catalog ends its window now
        with EventProducer(isolated_kafka) as producer:
            producer.send(withdrawn)
            producer.flush()
        deadline = time.monotonic() + 10
        while not availability.closed("alien", int(time.time() * 1000)) and time.monotonic() < deadline:
            time.sleep(0.05)
        after = client.homepage(user, "evening:tv")
        assert after is not None
        assert [(r.row_id, [i.title_id for i in r.items]) for r in after.rows] == [("top_picks", ["heat"])]
        # the stored page is untouched: the rows job rebuilds it on the member's next event
        assert [len(r.items) for r in store.homepages(user)["evening:tv"].rows] == [2, 1]
