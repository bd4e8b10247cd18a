"""Sequence-aware next title: a transition model over the order of the last titles watched.

Counts how often title ``b`` follows title ``a`` in a user's history (each new title
counts after each of the user's last ``order`` titles, the j-th back weighted
``fade ** j``). A user's score for ``b`` sums, over their last titles ``a``, the
share of ``a``'s successors that were ``b``: what people watch next after what this
user just watched. Unlike co-watch CF it is directional and short-range.

State: the successor counts are shared (per title, a dict of its successors); per
user, the last ``order`` titles.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from jobs.models.base import Feedback, Recommender, TitleIndex


class Transitions(Recommender):
    """First- to ``order``-th-order transitions, faded by distance.

    >>> model = Transitions()
    >>> for user in ("a", "b", "c"):
    ...     for title in ("pilot", "episode-2"):
    ...         model.learn_one(Feedback(user, title, time_ms=0))
    >>> model.learn_one(Feedback("d", "pilot", time_ms=0))
    >>> model.rank("d", k=1, exclude={"pilot"})
    ['episode-2']
    """

    def __init__(self, order: int = 3, fade: float = 0.5, titles: TitleIndex | None = None) -> None:
        super().__init__(titles)
        if order < 1 or not 0 < fade <= 1:
            raise ValueError(f"order must be >= 1 and fade in (0, 1], got {order}, {fade}")
        self.order, self.fade = order, fade
        self.successors: dict[int, dict[int, float]] = {}
        self.totals: dict[int, float] = {}
        self.last: dict[str, deque[int]] = {}

    def _params(self) -> dict[str, Any]:
        return {"order": self.order, "fade": self.fade}

    def user_state_bytes(self, user_id: str) -> int:
        """Bytes of per-user state: the last titles (8 bytes each as positions)."""
        return 8 * len(self.last.get(user_id, ()))

    def learn_one(self, feedback: Feedback) -> None:
        position = self.titles.add(feedback.title_id)
        last = self.last.setdefault(feedback.user_id, deque(maxlen=self.order))
        if position in last:  # another event of a title just watched: not a transition
            return
        for distance, previous in enumerate(reversed(last)):
            weight = self.fade ** distance
            row = self.successors.setdefault(previous, {})
            row[position] = row.get(position, 0.0) + weight
            self.totals[previous] = self.totals.get(previous, 0.0) + weight
        last.append(position)

    def score(self, user_id: str) -> np.ndarray:
        scores = np.zeros(len(self.titles), dtype=np.float32)
        for distance, previous in enumerate(reversed(self.last.get(user_id, ()))):
            row = self.successors.get(previous)
            if not row:
                continue
            share = self.fade ** distance / self.totals[previous]
            positions = np.fromiter(row, dtype=np.int64, count=len(row))
            scores[positions] += share * np.fromiter(row.values(), dtype=np.float32, count=len(row))
        return scores
