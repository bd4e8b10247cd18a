"""The learning job's content and search signals on the real stack: a title nobody touched reaches a
matching user's top picks through its catalog metadata, and a search moves the titles it matches up."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from connectors.events import Context, RatingEvent, SearchEvent
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.model_store import ModelStore
from connectors.producer import EventProducer
from infra.pipeline import start_job
from jobs.flink.learning.config import LearningJobConfig
from jobs.runtime import FlinkConfig
from tests.integration.test_learning_job import MIN, _wait


def test_a_new_title_and_a_search_reach_the_users_top_picks(kafka_config: Any, cassandra_config: Any,
                                                            cassandra_session: Any, make_event: Callable[..., Any],
                                                            tmp_path: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    kafka = replace(kafka_config, topic_prefix=f"signals-{tag}.")
    created = ensure_topics(kafka)
    ctx = Context("tv-1", "TV", "US", 0)
    t0 = int(time.time() * 1000) - 600 * MIN

    def title(key: str, name: str, genres: list[str], director: str) -> Any:
        return make_event("catalog", title_id=f"{key}-{tag}", title=name, genres=genres, directors=[director],
                          cast=[], tags=[], sub_genres=[], synopsis="", release_year=1990)

    sci_fi = [title("alien", "Alien", ["Sci-Fi", "Horror"], "Ridley Scott"),
              title("aliens", "Aliens", ["Sci-Fi", "Horror"], "James Cameron"),
              title("solaris", "Solaris", ["Sci-Fi", "Drama"], "Andrei Tarkovsky")]
    crime = [title("heat", "Heat", ["Crime", "Thriller"], "Michael Mann"),
             title("ronin", "Ronin", ["Crime", "Thriller"], "John Frankenheimer"),
             title("fargo", "Fargo", ["Crime", "Comedy"], "Joel Coen")]
    new = title("prometheus", "Prometheus", ["Sci-Fi", "Horror"], "Ridley Scott")  # nobody will touch it
    heat, prometheus = crime[0].title_id, new.title_id

    def rating(user: str, title_id: str, at: int) -> RatingEvent:
        return RatingEvent(user, t0 + at * MIN, ctx, title_id, "STARS", 5.0, event_id=uuid.uuid4().hex)

    history = [rating(f"fan{n}-{tag}", item.title_id, n * 10 + step)
               for n in range(6) for step, item in enumerate(sci_fi if n % 2 else crime)]
    fan = f"fan-{tag}"
    store = ModelStore(cassandra_session, cassandra_config.keyspace)
    flink = FlinkConfig(checkpoint_interval_ms=2000, checkpoint_dir=str(tmp_path / "checkpoints"))
    job = None
    try:
        with EventProducer(kafka) as producer:
            for event in [*sci_fi, *crime, new, *history]:
                producer.send(event)
            producer.flush()
            job = start_job("learning", kafka, cassandra_config, flink=flink,
                                     settings=LearningJobConfig(group_id=f"signals-{tag}", snapshot_ms=500))
            # picks are computed on the user's own events: the fan acts once the job holds the catalog and
            # the history's published vectors (the last history event's title has neighbours)
            _wait("the history learned", lambda: store.rows("get_similar_titles", history[-1].title_id))
            producer.send(rating(fan, sci_fi[0].title_id, 100))
            producer.flush()

            # content: the new title is in the fan's picks, for its metadata, above every crime title
            def picks_with(title_id: str, version: int) -> Any:
                rows = store.rows("get_top_picks", fan)
                return rows and rows[0].version >= version and title_id in rows[0].title_ids and rows[0]

            picks = _wait("the new title in the fan's top picks", lambda: picks_with(prometheus, 1))
            assert picks.reasons[picks.title_ids.index(prometheus)] == "content"
            assert picks.title_ids.index(prometheus) < min(picks.title_ids.index(c.title_id) for c in crime)
            assert sci_fi[0].title_id not in picks.title_ids  # what the fan watched is not picked again
            assert len(picks.title_ids) == 6  # only what this catalog describes (the keyspace holds others)
            assert not store.rows("get_item_vectors", prometheus)  # it reached them with no interactions at all
            vectors = store.rows("get_user_vectors", fan)[0]
            assert len(vectors.content_profile) == 32 and any(vectors.content_profile)

            # search: a query matching one crime title moves it above the other two
            before = picks.title_ids
            producer.send(SearchEvent(fan, t0 + 101 * MIN, ctx, "michael mann", event_id=f"search-{tag}"))
            producer.flush()
            after = _wait("the search applied", lambda: picks_with(heat, 2))
            position = after.title_ids.index(heat)
            assert after.reasons[position] == "search"
            assert position < before.index(heat)
            assert position < min(after.title_ids.index(c.title_id) for c in crime[1:])
            assert dict(store.rows("get_user_vectors", fan)[0].recent_searches) == {t0 + 101 * MIN: "michael mann"}
    finally:
        if job is not None:
            job.cancel().result()
        delete_topics(kafka, created)
