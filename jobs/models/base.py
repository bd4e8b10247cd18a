"""What every model learns from and the contract it keeps.

Models follow river's shape: ``learn_one`` takes one piece of feedback, ``score``
rates every title for a user at once (a vector over a shared :class:`TitleIndex`,
because ranking the whole catalog is the common case), and ``predict_one``
predicts one rating where the model can. They are plain Python (numpy), never
touch Flink, pickle, and ``clone()`` gives a fresh model with the same parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Feedback:
    """One thing a user did with a title, as the models see it.

    ``weight`` is the implicit strength in [0, 1] (a click is weak, a finished play
    strong); ``rating`` is the explicit rating on a 1-5 scale when there is one.
    """

    user_id: str
    title_id: str
    time_ms: int
    weight: float = 1.0
    rating: float | None = None


@dataclass(frozen=True, slots=True)
class Search:
    """A search a user made: the query as typed (and the result they clicked, if any)."""

    user_id: str
    query: str
    time_ms: int
    clicked_title_id: str | None = None


class TitleIndex:
    """Title id <-> dense position, growing as titles appear; shared by the models of one scorer.

    >>> titles = TitleIndex()
    >>> titles.add("m1"), titles.add("m2"), titles.add("m1")
    (0, 1, 0)
    >>> len(titles), titles.ids[1]
    (2, 'm2')
    """

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}
        self.ids: list[str] = []

    def add(self, title_id: str) -> int:
        position = self.positions.get(title_id)
        if position is None:
            position = self.positions[title_id] = len(self.ids)
            self.ids.append(title_id)
        return position

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, title_id: object) -> bool:
        return title_id in self.positions


def grown(array: np.ndarray, rows: int, fill: float = 0.0) -> np.ndarray:
    """``array`` with at least ``rows`` rows (capacity doubles, so growth is amortized O(1))."""
    if len(array) >= rows:
        return array
    bigger = np.full((max(rows, 2 * len(array), 64), *array.shape[1:]), fill, dtype=array.dtype)
    bigger[:len(array)] = array
    return bigger


class Recommender(ABC):
    """A model that learns from every piece of feedback and scores every title for a user."""

    def __init__(self, titles: TitleIndex | None = None) -> None:
        self.titles = titles if titles is not None else TitleIndex()

    @abstractmethod
    def learn_one(self, feedback: Feedback) -> None:
        """Update the model with one piece of feedback."""

    @abstractmethod
    def score(self, user_id: str) -> np.ndarray:
        """One score per title of the index (higher is better), for ranking."""

    def predict_one(self, user_id: str, title_id: str) -> float | None:
        """The predicted rating, for models that predict ratings (``None`` otherwise)."""
        return None

    def learn_search(self, search: Search) -> None:  # noqa: B027 - an optional hook, no-op by default
        """Update the model with one search (most models ignore searches)."""

    def attach(self, titles: TitleIndex) -> None:
        """Share ``titles`` with other models (a scorer's signals), before learning anything."""
        self.titles = titles

    def rank(self, user_id: str, k: int = 10, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """The ``k`` best titles for the user, leaving out ``exclude`` (e.g. titles already watched)."""
        return top_k(self.score(user_id), self.titles, k, exclude)

    def clone(self) -> Recommender:
        """A fresh, untrained model with the same parameters (and a title index of its own)."""
        return type(self)(**self._params())

    def _params(self) -> dict[str, Any]:
        """The constructor's arguments, bar the title index."""
        return {}


def top_k(scores: np.ndarray, titles: TitleIndex, k: int, exclude: set[str] | frozenset[str]) -> list[str]:
    scores = scores[:len(titles)].astype(np.float64, copy=True)
    for title_id in exclude:
        position = titles.positions.get(title_id)
        if position is not None:
            scores[position] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return []
    best = np.argpartition(-scores, k - 1)[:k]
    best = best[np.lexsort((best, -scores[best]))]  # by score, ties by position: deterministic
    return [titles.ids[p] for p in best]
