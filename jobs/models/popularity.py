"""Popularity: how many users touched each title, optionally with a half-life."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jobs.models.base import Feedback, Recommender, TitleIndex, grown

# forward decay (Cormode et al.): weights grow as exp(t / tau) instead of old counts shrinking,
# so an update touches one title; everything is rescaled when the weights get large
_RESCALE_AT = 1e200


class Popularity(Recommender):
    """Touches per title, the same for every user; ``half_life_days`` makes it a recency-weighted count.

    >>> model = Popularity()
    >>> for user, title in [("a", "m1"), ("b", "m1"), ("b", "m2")]:
    ...     model.learn_one(Feedback(user, title, time_ms=0))
    >>> model.rank("c", k=2)
    ['m1', 'm2']
    """

    def __init__(self, half_life_days: float | None = None, titles: TitleIndex | None = None) -> None:
        super().__init__(titles)
        self.half_life_days = half_life_days
        self.counts = np.zeros(0, dtype=np.float64)
        self._origin_ms: int | None = None
        self._scale = 1.0  # everything learned so far was divided by this (rescaling)

    def _params(self) -> dict[str, Any]:
        return {"half_life_days": self.half_life_days}

    def user_state_bytes(self, user_id: str) -> int:
        """No per-user state: popularity is shared."""
        return 0

    def weight_at(self, time_ms: int) -> float:
        """The forward-decay weight of an event at ``time_ms`` (1 without a half-life)."""
        if self.half_life_days is None:
            return 1.0
        if self._origin_ms is None:
            self._origin_ms = time_ms
        tau_ms = self.half_life_days * 86_400_000 / math.log(2)
        weight = math.exp(min((time_ms - self._origin_ms) / tau_ms, 700.0)) / self._scale
        if weight > _RESCALE_AT:
            self.counts /= weight
            self._scale *= weight
            weight = 1.0
        return weight

    def learn_one(self, feedback: Feedback) -> None:
        position = self.titles.add(feedback.title_id)
        self.counts = grown(self.counts, position + 1)
        self.counts[position] += self.weight_at(feedback.time_ms)

    def score(self, user_id: str) -> np.ndarray:
        counts = grown(self.counts, len(self.titles))[:len(self.titles)]
        return counts
