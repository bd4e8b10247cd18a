"""Cassandra tables of the learning job: user vectors, item vectors (warm-start snapshots), similar titles, top picks.

Rows are absolute state (vectors and versions, never increments), so a replayed write is harmless. Writers
call the typed methods below, which build each statement's parameters in its column order beside its CQL;
what they are given is described by the protocols here (the learning job's model state fits them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from connectors.cassandra_store import AsyncStore


class UserVectorFields(Protocol):
    rating_vector: Any  # a float vector (numpy) or None
    rating_bias: float
    ratings: int
    implicit_vector: Any
    recent: Sequence[str]
    seen: Sequence[int]  # unsigned 64-bit hashes of recent event ids
    version: int
    last_event_id: str
    updated_ms: int
    profile: Any
    searches: Sequence[tuple[int, str]]


class PickFields(Protocol):
    title_id: str
    score: float
    reason: str


class ItemVectorFields(Protocol):
    title_id: str
    version: int
    implicit_vector: Any
    implicit_bias: float
    rating_vector: Any
    rating_bias: float
    touches: float
    updated_ms: int
    neighbors: Sequence[tuple[str, float]]


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _floats(vector: Any) -> list[float]:
    return [] if vector is None else [float(v) for v in vector]


def signed(hash64: int) -> int:
    """A 64-bit hash as Cassandra's signed bigint (and back with ``& UNSIGNED``).

    >>> signed(2**64 - 1), signed(5) & UNSIGNED
    (-1, 5)
    """
    return hash64 - (1 << 64) if hash64 >= 1 << 63 else hash64


UNSIGNED = (1 << 64) - 1

UPSERT_USER_VECTORS = """
INSERT INTO {keyspace}.user_vectors (user_id, model_version, version, implicit_vector, rating_vector, rating_bias,
    recent_titles, last_event_id, updated_time, written_at, ratings, recent_event_hashes, content_profile,
    recent_searches)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
UPSERT_ITEM_VECTORS = """
INSERT INTO {keyspace}.item_vectors (title_id, model_version, version, implicit_vector, implicit_bias, rating_vector,
    rating_bias, touches, updated_time, written_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
UPSERT_SIMILAR_TITLES = """
INSERT INTO {keyspace}.similar_titles (title_id, model_version, version, neighbor_ids, neighbor_scores, updated_time)
VALUES (?, ?, ?, ?, ?, ?)
"""
UPSERT_TOP_PICKS = """
INSERT INTO {keyspace}.top_picks (user_id, model_version, version, title_ids, scores, reasons, blend, last_event_id,
    updated_time, written_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_USER_VECTORS = "SELECT * FROM {keyspace}.user_vectors WHERE user_id = ?"
SELECT_ITEM_VECTORS = "SELECT * FROM {keyspace}.item_vectors WHERE title_id = ?"
SELECT_ALL_ITEM_VECTORS = "SELECT * FROM {keyspace}.item_vectors"
SELECT_SIMILAR_TITLES = "SELECT * FROM {keyspace}.similar_titles WHERE title_id = ?"
SELECT_TOP_PICKS = "SELECT * FROM {keyspace}.top_picks WHERE user_id = ?"
ERASE_USER_VECTORS = "DELETE FROM {keyspace}.user_vectors WHERE user_id = ?"
ERASE_TOP_PICKS = "DELETE FROM {keyspace}.top_picks WHERE user_id = ?"
# a sample of users (token order) to seed user-user CF's peer pool in a new job
SELECT_SOME_USER_VECTORS = "SELECT user_id, model_version, recent_titles FROM {keyspace}.user_vectors LIMIT ?"


class ModelStore(AsyncStore):
    """Writes (asynchronous, bounded in flight) and reads of the model tables."""

    STATEMENTS = {
        "user_vectors": UPSERT_USER_VECTORS, "item_vectors": UPSERT_ITEM_VECTORS,
        "similar_titles": UPSERT_SIMILAR_TITLES, "get_user_vectors": SELECT_USER_VECTORS,
        "get_item_vectors": SELECT_ITEM_VECTORS, "get_all_item_vectors": SELECT_ALL_ITEM_VECTORS,
        "get_similar_titles": SELECT_SIMILAR_TITLES, "top_picks": UPSERT_TOP_PICKS, "get_top_picks": SELECT_TOP_PICKS,
        "get_some_user_vectors": SELECT_SOME_USER_VECTORS,
        "erase_user_vectors": ERASE_USER_VECTORS, "erase_top_picks": ERASE_TOP_PICKS,
    }
    MEMBER_TABLES = ("user_vectors", "top_picks")

    def erase_member(self, user_id: str) -> None:
        """Delete the member's vectors (their ratings, recent events, content profile, searches) and top picks."""
        for statement in ("erase_user_vectors", "erase_top_picks"):
            self.write(statement, (user_id,))

    def write_user(self, user_id: str, user: UserVectorFields, picks: Sequence[PickFields], blend: str,
                   model_version: str, written_ms: int) -> None:
        """A user's vectors and top picks, in one batch."""
        updated, written = _time(user.updated_ms), _time(written_ms)
        self.write_together([
            ("user_vectors", (user_id, model_version, user.version, _floats(user.implicit_vector),
                              _floats(user.rating_vector), user.rating_bias, list(user.recent), user.last_event_id,
                              updated, written, user.ratings, [signed(h) for h in user.seen], _floats(user.profile),
                              dict(user.searches))),
            ("top_picks", (user_id, model_version, user.version, [p.title_id for p in picks],
                           [p.score for p in picks], [p.reason for p in picks], blend, user.last_event_id, updated,
                           written)),
        ])

    def write_item(self, vectors: ItemVectorFields, model_version: str, written_ms: int) -> None:
        """A title's vectors (the warm-start snapshot) and its similar titles, in one batch."""
        updated = _time(vectors.updated_ms)
        self.write_together([
            ("item_vectors", (vectors.title_id, model_version, vectors.version, _floats(vectors.implicit_vector),
                              vectors.implicit_bias, _floats(vectors.rating_vector), vectors.rating_bias,
                              vectors.touches, updated, _time(written_ms))),
            ("similar_titles", (vectors.title_id, model_version, vectors.version, [t for t, _ in vectors.neighbors],
                                [s for _, s in vectors.neighbors], updated)),
        ])
