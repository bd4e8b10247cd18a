"""Search as a signal: a user's recent queries, matched against title metadata, shift their scores.

A query's words are matched against each title's terms (words of its name, its
genres, tags and people); every match adds the search's weight, which halves every
``half_life_minutes`` of the user's own event time after the search. Only the last
``memory`` searches are kept: intent is short-lived, what the user watches after a
search says more than the search.

Searches reach models through :meth:`Recommender.learn_search` (a no-op for models
that ignore them), with the query in a :class:`Search`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from jobs.models.base import Feedback, Search, TitleIndex
from jobs.models.content import CatalogRecommender, TitleText

_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*")


def terms(text: str) -> set[str]:
    """Lower-case words of two letters or more.

    >>> sorted(terms("Star Wars (1977)"))
    ['1977', 'star', 'wars']
    """
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 2}


def title_terms(title: TitleText) -> set[str]:
    """What a query can match in a title: its name's words, genres, tags and people's names."""
    found = terms(title.name)
    for value in (*title.genres, *title.tags, *title.people):
        found |= {value.lower()} | terms(value)
    return found


@dataclass
class _Query:
    time_ms: int
    words: frozenset[str]


class SearchIntent(CatalogRecommender):
    """Titles matching the user's recent searches, fading with time.

    >>> catalog = [TitleText("m1", "Star Wars", 1977, ("Sci-Fi",)), TitleText("m2", "Heat", 1995, ("Crime",))]
    >>> model = SearchIntent(catalog)
    >>> model.learn_search(Search("a", "star", time_ms=0))
    >>> model.rank("a", k=1)
    ['m1']
    """

    def __init__(self, catalog: Iterable[TitleText] = (), half_life_minutes: float = 60.0, memory: int = 5,
                 titles: TitleIndex | None = None) -> None:
        super().__init__(catalog, titles)
        if half_life_minutes <= 0 or memory < 1:
            raise ValueError(f"half_life_minutes must be > 0 and memory >= 1, got {half_life_minutes}, {memory}")
        self.half_life_minutes, self.memory = half_life_minutes, memory
        self.index: dict[str, list[str]] = {}  # term -> title ids
        for title in self.catalog.values():
            for term in title_terms(title):
                self.index.setdefault(term, []).append(title.title_id)
        self.queries: dict[str, list[_Query]] = {}
        self.now_ms: dict[str, int] = {}  # each user's newest event time: searches fade against it

    def _params(self) -> dict[str, Any]:
        return {"catalog": list(self.catalog.values()), "half_life_minutes": self.half_life_minutes,
                "memory": self.memory}

    def user_state_bytes(self, user_id: str) -> int:
        """Bytes of per-user state: the kept queries' words and times, and the user's clock."""
        queries = self.queries.get(user_id, ())
        return sum(8 + sum(len(w) for w in q.words) for q in queries) + (8 if user_id in self.now_ms else 0)

    def _clock(self, user_id: str, time_ms: int) -> None:
        self.now_ms[user_id] = max(self.now_ms.get(user_id, time_ms), time_ms)

    def learn_one(self, feedback: Feedback) -> None:
        self._register()
        self.titles.add(feedback.title_id)
        self._clock(feedback.user_id, feedback.time_ms)

    def learn_search(self, search: Search) -> None:
        self._register()
        self._clock(search.user_id, search.time_ms)
        words = frozenset(terms(search.query))
        if words:
            recent = self.queries.setdefault(search.user_id, [])
            recent.append(_Query(search.time_ms, words))
            del recent[:-self.memory]

    def score(self, user_id: str) -> np.ndarray:
        self._register()
        scores = np.zeros(len(self.titles), dtype=np.float32)
        now = self.now_ms.get(user_id, 0)
        for query in self.queries.get(user_id, ()):
            weight = 0.5 ** (max(0, now - query.time_ms) / 60_000 / self.half_life_minutes)
            for word in query.words:
                for title_id in self.index.get(word, ()):
                    scores[self.titles.positions[title_id]] += weight
        return scores
