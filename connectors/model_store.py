"""Cassandra tables of the learning job: user vectors, item vectors (warm-start snapshots), similar titles, top picks.

Rows are absolute state (vectors and versions, never increments), so a replayed write is harmless.
"""

from __future__ import annotations

from connectors.cassandra_store import AsyncStore

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
    }
