"""Item-item collaborative filtering from co-watching, learned online.

Two titles co-occur when one user touches both within ``window`` titles of each
other. Similarity is the cosine of co-occurrence (``C[i, j] / sqrt(n_i n_j)``), so
blockbusters do not look similar to everything. A user's score for a title sums
its similarity to the user's last ``window`` titles, the k-th most recent weighted
``recency ** k``: what was just watched says most about what comes next.

With ``recency=1`` and ``normalize=False`` this is the plain co-occurrence kNN
over the last 20 titles that serves as the baseline in ``nextwatch eval``.

State: the co-occurrence matrix is shared (dense here, titles x titles float32:
11 MB for MovieLens' 1,682 titles, 400 MB at 10,000; a streaming job keeps it
keyed by title instead), the per-user part is the last ``window`` titles.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from jobs.models.base import Feedback, Recommender, TitleIndex, grown


class ItemCooccurrence(Recommender):
    """Co-watch item-item CF.

    >>> model = ItemCooccurrence(window=5)
    >>> for user, title in [("a", "m1"), ("a", "m2"), ("b", "m1"), ("b", "m2"), ("b", "m3"), ("c", "m1")]:
    ...     model.learn_one(Feedback(user, title, time_ms=0))
    >>> model.similar("m1", k=2)
    ['m2', 'm3']
    >>> model.rank("c", k=1, exclude={"m1"})
    ['m2']
    """

    def __init__(self, window: int = 20, recency: float = 0.9, normalize: bool = True,
                 titles: TitleIndex | None = None) -> None:
        super().__init__(titles)
        if window < 1 or not 0 < recency <= 1:
            raise ValueError(f"window must be >= 1 and recency in (0, 1], got {window}, {recency}")
        self.window, self.recency, self.normalize = window, recency, normalize
        self.cooccurrence = np.zeros((0, 0), dtype=np.float32)
        self.touches = np.zeros(0, dtype=np.float32)
        self.recent: dict[str, deque[int]] = {}
        self._weights = recency ** np.arange(window, dtype=np.float32)[::-1]  # oldest first

    def _params(self) -> dict[str, Any]:
        return {"window": self.window, "recency": self.recency, "normalize": self.normalize}

    def user_state_bytes(self, user_id: str) -> int:
        """Bytes of per-user state: the last ``window`` titles (8 bytes each as positions)."""
        return 8 * len(self.recent.get(user_id, ()))

    def _grow(self, size: int) -> None:
        if len(self.cooccurrence) < size:
            bigger = grown(self.cooccurrence, size)
            square = np.zeros((len(bigger), len(bigger)), dtype=np.float32)
            square[:len(self.cooccurrence), :len(self.cooccurrence)] = self.cooccurrence
            self.cooccurrence = square
        self.touches = grown(self.touches, size)

    def learn_one(self, feedback: Feedback) -> None:
        position = self.titles.add(feedback.title_id)
        self._grow(position + 1)
        recent = self.recent.setdefault(feedback.user_id, deque(maxlen=self.window))
        if position in recent:  # the same title again (another event of one viewing): no new pair
            return
        if recent:
            others = np.fromiter(recent, dtype=np.int64, count=len(recent))
            self.cooccurrence[others, position] += 1.0
            self.cooccurrence[position, others] += 1.0
        self.touches[position] += 1.0
        recent.append(position)

    def _rows(self, positions: np.ndarray) -> np.ndarray:
        size = len(self.titles)
        self._grow(size)  # titles another model of a shared index has seen
        rows = self.cooccurrence[positions, :size]
        if not self.normalize:
            return rows
        norm = np.sqrt(np.maximum(self.touches[:size], 1.0))
        return rows / norm[positions, None] / norm[None, :]

    def score(self, user_id: str) -> np.ndarray:
        recent = self.recent.get(user_id)
        if not recent:
            return np.zeros(len(self.titles), dtype=np.float32)
        positions = np.fromiter(recent, dtype=np.int64, count=len(recent))
        weights = self._weights[-len(positions):]
        return weights @ self._rows(positions)

    def similar(self, title_id: str, k: int = 10) -> list[str]:
        """The ``k`` titles most similar to ``title_id`` (cosine of co-watching), best first."""
        position = self.titles.positions.get(title_id)
        if position is None:
            return []
        row = self._rows(np.array([position]))[0]
        row[position] = 0.0
        candidates = np.flatnonzero(row > 0)
        best = candidates[np.lexsort((candidates, -row[candidates]))][:k]
        return [self.titles.ids[p] for p in best]
