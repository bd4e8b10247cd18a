"""Content-based recommendation: title vectors from metadata and a content profile per user.

Each title is described by its metadata (genres, decade, tags, people, and the words
of its name and synopsis through river's ``BagOfWords``), hashed into ``dimensions``
buckets and L2-normalized. A user's profile is the decayed, weighted sum of the
vectors of the titles they touch; a title's score is its cosine with the profile.

This is the cold start: a title nobody has touched yet scores as soon as the catalog
describes it, and a user with a handful of events already has a profile. Titles are
known from the catalog before anyone touches them, so the model registers them in
the title index it is attached to.

State per user: one float32 vector of ``dimensions`` (256 bytes at 64).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from river.feature_extraction import BagOfWords

from connectors.events import CatalogItem
from connectors.state import Versioned, field_defaults, fields_from_dict
from jobs.features.user_state import id_hash
from jobs.models.base import Feedback, Recommender, TitleIndex, grown


@dataclass(frozen=True)
class TitleText(Versioned):
    """What the catalog says about a title, as content models read it."""

    title_id: str
    name: str = ""
    year: int | None = None
    genres: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    people: tuple[str, ...] = ()  # cast and directors
    synopsis: str = ""


def title_text(item: CatalogItem) -> TitleText:
    """A catalog record (the catalog topic) as content models read it."""
    return TitleText(item.title_id, item.title, item.release_year, tuple(item.genres), tuple(item.tags),
                     tuple([*item.cast, *item.directors]), item.synopsis or "")


_WORDS = BagOfWords(lowercase=True, ngram_range=(1, 1))
_WEIGHTS = {"genre": 1.0, "decade": 0.5, "tag": 0.5, "person": 0.3, "word": 0.2}


def title_features(title: TitleText) -> dict[str, float]:
    """Named features of a title with their weights (genres count most).

    >>> sorted(title_features(TitleText("m1", "Toy Story", 1995, ("Animation", "Comedy"))).items())
    [('decade:1990', 0.5), ('genre:Animation', 1.0), ('genre:Comedy', 1.0), ('word:story', 0.2), ('word:toy', 0.2)]
    """
    features = {f"genre:{g}": _WEIGHTS["genre"] for g in title.genres}
    if title.year:
        features[f"decade:{title.year // 10 * 10}"] = _WEIGHTS["decade"]
    features.update({f"tag:{t}": _WEIGHTS["tag"] for t in title.tags})
    features.update({f"person:{p}": _WEIGHTS["person"] for p in title.people})
    words = _WORDS.transform_one(f"{title.name} {title.synopsis}")
    features.update({f"word:{w}": _WEIGHTS["word"] for w in words if len(w) > 2 and not w.isdigit()})
    return features


def hashed_vector(features: Mapping[str, float], dimensions: int) -> np.ndarray:
    """Features hashed into ``dimensions`` buckets (stable across processes), L2-normalized."""
    vector = np.zeros(dimensions, dtype=np.float32)
    for name, weight in features.items():
        vector[id_hash(name) % dimensions] += weight
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


class CatalogRecommender(Recommender):
    """A model that knows titles from the catalog before anyone touches them.

    The catalog's titles join the title index on first use, not at construction, so a
    scorer can attach its shared index to an untrained model first.
    """

    def __init__(self, catalog: Iterable[TitleText] = (), titles: TitleIndex | None = None) -> None:
        super().__init__(titles)
        self.catalog = {t.title_id: t for t in catalog}
        self._registered = False

    def _register(self) -> None:
        if not self._registered:
            self._registered = True
            for title_id in self.catalog:
                self.titles.add(title_id)


class ContentProfile(CatalogRecommender):
    """Cosine of a title's metadata vector with the user's decayed content profile.

    >>> catalog = [TitleText("m1", "Alien", 1979, ("Sci-Fi", "Horror")), TitleText("m2", "Heat", 1995, ("Crime",)),
    ...            TitleText("m3", "Aliens", 1986, ("Sci-Fi", "Horror"))]
    >>> model = ContentProfile(catalog)
    >>> model.learn_one(Feedback("a", "m1", time_ms=0))
    >>> model.rank("a", k=1, exclude={"m1"})  # m3 was never touched: the catalog alone places it
    ['m3']
    """

    def __init__(self, catalog: Iterable[TitleText] = (), dimensions: int = 64, decay: float = 0.98,
                 titles: TitleIndex | None = None) -> None:
        super().__init__(catalog, titles)
        if dimensions < 1 or not 0 < decay <= 1:
            raise ValueError(f"dimensions must be >= 1 and decay in (0, 1], got {dimensions}, {decay}")
        self.dimensions, self.decay = dimensions, decay
        self.vectors = np.zeros((0, dimensions), dtype=np.float32)
        self.profiles: dict[str, np.ndarray] = {}

    def _params(self) -> dict[str, Any]:
        return {"catalog": list(self.catalog.values()), "dimensions": self.dimensions, "decay": self.decay}

    def user_state_bytes(self, user_id: str) -> int:
        """Bytes of per-user state: the profile vector."""
        return self.dimensions * 4 if user_id in self.profiles else 0

    def describe(self, title: TitleText) -> None:
        """A catalog update: a new title (or new metadata) takes part from now on."""
        self._register()
        self.catalog[title.title_id] = title
        position = self.titles.add(title.title_id)
        self._vector(position)[:] = hashed_vector(title_features(title), self.dimensions)

    def _vector(self, position: int) -> np.ndarray:
        if len(self.vectors) <= position:
            start = len(self.vectors)
            self.vectors = grown(self.vectors, position + 1)
            for p in range(start, len(self.vectors)):  # rows of titles first seen in another model
                if p < len(self.titles) and self.titles.ids[p] in self.catalog:
                    self.vectors[p] = hashed_vector(title_features(self.catalog[self.titles.ids[p]]),
                                                    self.dimensions)
        return self.vectors[position]

    def learn_one(self, feedback: Feedback) -> None:
        self._register()
        vector = self._vector(self.titles.add(feedback.title_id))
        profile = self.profiles.get(feedback.user_id)
        if profile is None:
            profile = self.profiles[feedback.user_id] = np.zeros(self.dimensions, dtype=np.float32)
        profile *= self.decay
        profile += feedback.weight * vector

    def score(self, user_id: str) -> np.ndarray:
        self._register()
        size = len(self.titles)
        if size:
            self._vector(size - 1)
        profile = self.profiles.get(user_id)
        if profile is None or not profile.any():
            return np.zeros(size, dtype=np.float32)
        return self.vectors[:size] @ (profile / float(np.linalg.norm(profile)))


# version 0: its field dict, before it wrote a version
TitleText.MIGRATIONS = {0: fields_from_dict(("title_id", "name", "year", "genres", "tags", "people", "synopsis"),
                                          field_defaults(TitleText))}
