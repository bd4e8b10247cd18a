"""The learning job's rows and records, without Flink: Avro round trip, the parameters its store writes."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from connectors.codec import EventCodec
from connectors.model_store import UPSERT_USER_VECTORS, ModelStore
from jobs.dedupe import UNKNOWN_CONTENT
from jobs.models.base import Feedback
from jobs.models.online import MODEL_VERSION, LocalLoop
from jobs.models.signals import Pick
from jobs.models.snapshots import item_vectors_from_row, user_model_from_row
from jobs.records.item_vectors import item_vectors_from_record, item_vectors_record
from jobs.records.user_update import user_update_record


class CapturedStore(ModelStore):
    """The store's own parameter building, with the writes kept instead of sent."""

    def __init__(self) -> None:
        self.writes: dict[str, tuple[Any, ...]] = {}

    def write_together(self, writes: list[tuple[str, tuple[Any, ...]]]) -> None:
        self.writes.update(writes)


def published_loop() -> LocalLoop:
    loop = LocalLoop()
    for n, (user, title) in enumerate([("a", "m1"), ("a", "m2"), ("b", "m1"), ("b", "m2"), ("b", "m3")]):
        loop.learn(user, Feedback(user, title, 1_700_000_000_000 + n, 1.0, 4.0), f"e{n}")
    return loop


def test_item_vectors_survive_the_topic() -> None:
    vectors = published_loop().published["m1"]
    codec = EventCodec()
    record = codec.decode(codec.encode_record("item_vectors", item_vectors_record(vectors, 123))).record
    assert record["event_id"] == f"m1:{vectors.version}" and record["model_version"] == MODEL_VERSION
    back = item_vectors_from_record(record)
    assert back is not None and back.title_id == "m1" and back.version == vectors.version
    assert back.neighbors[0][0] == "m2"
    assert back.successors == vectors.successors and back.successors[0][0] == "m2"  # m2 followed m1 twice
    np.testing.assert_allclose(back.implicit_vector, vectors.implicit_vector, rtol=1e-6)
    np.testing.assert_allclose(back.rating_vector, vectors.rating_vector, rtol=1e-6)
    # vectors of another model version (a bumped MODEL_VERSION) are never mixed in
    assert item_vectors_from_record({**record, "model_version": "some-other-model"}) is None


def test_cassandra_parameters_follow_the_tables() -> None:
    loop = published_loop()
    user = loop.users["b"]
    store = CapturedStore()
    store.write_user("b", user, [Pick("m9", 0.5, "content")], "item_cf=1", MODEL_VERSION, 1_700_000_001_000)
    params = store.writes["user_vectors"]
    assert params[0] == "b" and params[2] == user.version == 3 and params[6] == ["m1", "m2", "m3"]
    assert len(params[3]) == 32 and len(params[4]) == 16 and params[8].year == 2023
    assert store.writes["top_picks"][3:7] == (["m9"], [0.5], ["content"], "item_cf=1")
    vectors = loop.published["m2"]
    store.write_item(vectors, MODEL_VERSION, 1_700_000_001_000)
    item = store.writes["item_vectors"]
    assert item[0] == "m2" and item[2] == vectors.version and item[7] == vectors.touches
    similar = store.writes["similar_titles"]
    assert similar[3] == [t for t, _ in vectors.neighbors] and len(similar[4]) == len(similar[3])
    row = SimpleNamespace(title_id="m2", version=item[2], rating_vector=item[5], rating_bias=item[6],
                          implicit_vector=item[3], implicit_bias=item[4], touches=item[7], updated_time=item[8])
    warm = item_vectors_from_row(row)
    assert warm.version == vectors.version and warm.updated_ms == vectors.updated_ms
    np.testing.assert_allclose(warm.implicit_vector, vectors.implicit_vector, rtol=1e-6)


def test_a_user_row_warm_starts_the_user_as_a_restore_would() -> None:
    loop = published_loop()
    user = loop.users["b"]
    user.seen[2**40 - 5] = 7  # the highest keys round-trip through the table's signed bigints
    user.profile = np.linspace(-1, 1, 32).astype(np.float32)
    user.searches = [(1_700_000_000_005, "star wars"), (1_700_000_000_009, "heat")]
    store = CapturedStore()
    store.write_user("b", user, [], "", MODEL_VERSION, 1_700_000_001_000)
    params = store.writes["user_vectors"]
    columns = UPSERT_USER_VECTORS.split("(", 1)[1].split(")", 1)[0]  # the columns the job writes, in order
    names = [name.strip() for name in columns.split(",")]
    row = SimpleNamespace(**dict(zip(names, params, strict=True)))
    assert all(-(2**63) <= h < 2**63 for h in row.recent_event_hashes)
    warm = user_model_from_row(row)
    assert warm is not None
    assert (warm.version, warm.ratings, warm.recent, list(warm.seen), warm.last_event_id, warm.updated_ms) == \
        (user.version, user.ratings, user.recent, list(user.seen), user.last_event_id, user.updated_ms)
    assert set(warm.seen.values()) == {UNKNOWN_CONTENT}  # the row keeps ids, not content: any content matches
    assert warm.has_seen("e4")  # a redelivered event is skipped after the warm start
    assert warm.searches == user.searches and warm.profile is not None
    np.testing.assert_allclose(warm.profile, user.profile, rtol=1e-6)
    np.testing.assert_allclose(warm.implicit_vector, user.implicit_vector, rtol=1e-6)
    np.testing.assert_allclose(warm.rating_vector, user.rating_vector, rtol=1e-6)
    assert user_model_from_row(SimpleNamespace(**{**vars(row), "model_version": "older"})) is None


def test_a_flush_reaches_the_user_updates_topic_whole() -> None:
    user = published_loop().users["b"]
    user.profile = np.ones(32, dtype=np.float32)
    picks = [Pick("m9", 0.75, "content"), Pick("m8", 0.5, "item_cf")]
    codec = EventCodec()
    record = codec.decode(codec.encode_record("user_update", user_update_record("b", user, picks, 123))).record
    assert record["event_id"] == f"b:{user.version}" and record["last_event_id"] == user.last_event_id
    assert (record["pick_ids"], record["pick_scores"], record["pick_reasons"]) == (
        ["m9", "m8"], [0.75, 0.5], ["content", "item_cf"])
    assert record["recent_titles"] == ["m1", "m2", "m3"] and len(record["content_profile"]) == 32
