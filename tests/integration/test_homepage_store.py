"""The homepage table and its read client on the real Cassandra: buckets, fallback, overwrite."""

from __future__ import annotations

import uuid
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
