"""What every homepage shares, as one rows-job subtask holds it: catalog, similar titles, popularity, trending.

Pure apart from the store it reads trending from. The catalog and the item vectors arrive by
broadcast (:meth:`SharedCache.describe`, :meth:`SharedCache.hold`); trending is read from the
feature job's table every ``trending_refresh_ms``; the indexes over it all (popularity
percentiles, titles by genre, newest and least played titles) are rebuilt at most every
``shared_refresh_ms``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from connectors.events import CatalogItem
from jobs.context import all_buckets
from jobs.homepage.rows import SharedSignals, catalog_indexes, least_played
from jobs.models.content import hashed_vector, title_features, title_text
from jobs.models.online import ItemVectors


def percentiles(touches: dict[str, float]) -> dict[str, float]:
    """Each title's popularity as its percentile among titles (0: least touched, 1: most).

    >>> percentiles({"a": 5.0, "b": 1.0, "c": 9.0})
    {'b': 0.0, 'a': 0.5, 'c': 1.0}
    """
    ranked = sorted(touches, key=lambda t: (touches[t], t))
    top = max(len(ranked) - 1, 1)
    return {t: n / top for n, t in enumerate(ranked)}


class SharedCache:
    """The shared signals one subtask holds: broadcast catalog and item vectors, trending from Cassandra."""

    def __init__(self, dimensions: int, trending_refresh_ms: int = 30_000, shared_refresh_ms: int = 5_000) -> None:
        self.dimensions = dimensions
        self.trending_refresh_ms, self.shared_refresh_ms = trending_refresh_ms, shared_refresh_ms
        self.catalog: dict[str, CatalogItem] = {}
        self.content: dict[str, np.ndarray] = {}
        self.similar: dict[str, list[tuple[str, float]]] = {}
        self.touches: dict[str, float] = {}
        self.trending: dict[str, list[str]] = {}
        self.trending_at_ms = -math.inf
        self.built_at_ms = -math.inf
        self.dirty = True
        self.signals = SharedSignals(catalog={})

    def describe(self, item: CatalogItem) -> None:
        known = self.catalog.get(item.title_id)
        if known is None or item.updated_time_ms >= known.updated_time_ms:  # the newest snapshot wins
            self.catalog[item.title_id] = item
            self.content[item.title_id] = hashed_vector(title_features(title_text(item)), self.dimensions)
            self.dirty = True

    def hold(self, vectors: ItemVectors) -> None:
        self.similar[vectors.title_id] = list(vectors.neighbors)
        self.touches[vectors.title_id] = vectors.touches
        self.dirty = True

    def current(self, now: int, store: Any | None) -> SharedSignals:
        """The signals as of ``now``; ``store`` (a FeatureStore) is where trending is read from."""
        if store is not None and now - self.trending_at_ms >= self.trending_refresh_ms:
            genres = {g for item in self.catalog.values() for g in item.genres}
            scopes = ["global", *(f"genre:{g}" for g in sorted(genres)), *(f"context:{b}" for b in all_buckets())]
            self.trending = {scope: [r.title_id for r in sorted(store.rows("get_trending", scope),
                                                                 key=lambda r: r.rank)] for scope in scopes}
            self.trending_at_ms, self.dirty = now, True
        # the catalog, similar titles and content are shared dicts, current at once; the indexes over them
        # (popularity percentiles, titles by genre, newest titles) are rebuilt at most every shared_refresh_ms
        if self.dirty and now - self.built_at_ms >= self.shared_refresh_ms:
            popularity = percentiles(self.touches)
            by_genre, newest = catalog_indexes(self.catalog, popularity)
            self.signals = SharedSignals(self.catalog, self.similar, self.trending, popularity, self.content,
                                         by_genre, newest, least_played(self.catalog, popularity))
            self.built_at_ms, self.dirty = now, False
        return self.signals
