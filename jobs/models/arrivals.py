"""New arrivals: the titles that just entered the catalog's life, the same for every member.

A title nobody has touched has nothing for the interaction signals to go on, and one
touched a few times in its first days is still buried by the long-lived favourites that
popularity ranks first. Most first touches of new titles go to new releases, so this
signal scores a touched title by how recently it was first touched (halving every
``half_life_days``) and an untouched catalog title released in the stream's current or
previous year at ``prior`` (1: as if first touched now); older untouched titles score nothing.
The blend decides how much of it each member segment gets; content and the member's own
signals choose among the arrivals.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from jobs.models.base import Feedback, TitleIndex, grown
from jobs.models.content import CatalogRecommender, TitleText

_DAY_MS = 86_400_000


class NewArrivals(CatalogRecommender):
    """How new each title is in the stream: its first touch's recency, or a recent release year.

    >>> catalog = [TitleText("old", "Alien", 1979, ()), TitleText("new", "Heat", 1995, ()),
    ...            TitleText("seen", "Aliens", 1986, ())]
    >>> model = NewArrivals(catalog, half_life_days=1.0)
    >>> model.learn_one(Feedback("a", "seen", time_ms=int(25.5 * 365.25 * 86_400_000)))  # mid-1995
    >>> model.rank("b", k=3)  # 'new' is a release of this year; 'seen' arrived now; 'old' neither
    ['new', 'seen', 'old']
    >>> model.learn_one(Feedback("a", "old", time_ms=int(25.5 * 365.25 * 86_400_000) + 86_400_000))
    >>> [round(float(s), 2) for s in model.score("b")[[model.titles.positions[t] for t in ("seen", "old")]]]
    [0.5, 1.0]
    """

    def __init__(self, catalog: Iterable[TitleText] = (), half_life_days: float = 7.0, prior: float = 1.0,
                 titles: TitleIndex | None = None) -> None:
        super().__init__(catalog, titles)
        if not half_life_days > 0 or not prior >= 0:
            raise ValueError(f"half_life_days must be > 0 and prior >= 0, got {half_life_days}, {prior}")
        self.half_life_days, self.prior = half_life_days, prior
        self.first_ms = np.zeros(0, dtype=np.float64)  # per position: the first touch (NaN: none yet)
        self.years = np.zeros(0, dtype=np.int32)  # per position: the catalog's release year (0: not known)
        self.now_ms = 0

    def _params(self) -> dict[str, Any]:
        return {"catalog": list(self.catalog.values()), "half_life_days": self.half_life_days, "prior": self.prior}

    def user_state_bytes(self, user_id: str) -> int:
        """No per-member state."""
        return 0

    def describe(self, title: TitleText) -> None:
        """A catalog update: its release year counts from now on."""
        self._register()
        self.catalog[title.title_id] = title
        position = self.titles.add(title.title_id)
        self._first()
        self.years[position] = title.year or 0

    def _first(self) -> np.ndarray:
        """The first touches, grown to the index (titles another signal added join untouched)."""
        if len(self.first_ms) < len(self.titles):
            start = len(self.first_ms)
            self.first_ms, self.years = grown(self.first_ms, len(self.titles)), grown(self.years, len(self.titles))
            self.first_ms[start:] = np.nan
            for position in range(start, len(self.titles)):
                title = self.catalog.get(self.titles.ids[position])
                self.years[position] = (title.year or 0) if title is not None else 0
        return self.first_ms

    def learn_one(self, feedback: Feedback) -> None:
        self._register()
        position = self.titles.add(feedback.title_id)
        first = self._first()
        if np.isnan(first[position]):
            first[position] = feedback.time_ms
        self.now_ms = max(self.now_ms, feedback.time_ms)

    def score(self, user_id: str) -> np.ndarray:
        self._register()
        first = self._first()[:len(self.titles)]
        touched = ~np.isnan(first)
        age_days = np.where(touched, (self.now_ms - np.where(touched, first, 0.0)) / _DAY_MS, 0.0)
        scores = np.where(touched, 0.5 ** (np.maximum(age_days, 0.0) / self.half_life_days), 0.0)
        year = datetime.fromtimestamp(self.now_ms / 1000, UTC).year
        released = self.years[:len(first)] >= year - 1  # this year's or last year's (0: not known, never)
        return np.where(~touched & released, self.prior, scores)
