"""User-user collaborative filtering: the nearest users by history, kept current as histories change.

Each user's history is a decayed, weighted row over titles (a new touch adds its
weight after the row fades by ``decay``). Two users' similarity is the cosine of
their rows; a user's score for a title is the similarity-weighted sum of the rows of
their ``neighbors`` nearest users. Neighbours are found when scoring, from the
current rows, so they follow every event.

State: a dense users x titles float32 matrix (6 MB for MovieLens 100K). At catalog
scale the rows would be replaced by the user vectors of the learning job and the
neighbour search by an approximate index; the contract stays the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jobs.models.base import Feedback, Recommender, TitleIndex, grown


class UserKNN(Recommender):
    """Nearest users by cosine of their (decayed) histories.

    >>> model = UserKNN(neighbors=1)
    >>> for user, title in [("a", "m1"), ("a", "m2"), ("b", "m1"), ("b", "m3"), ("c", "m1"), ("c", "m2")]:
    ...     model.learn_one(Feedback(user, title, time_ms=0))
    >>> model.learn_one(Feedback("d", "m2", time_ms=0))
    >>> model.rank("d", k=1, exclude={"m2"})  # d's nearest users (a, c) both watched m1
    ['m1']
    """

    def __init__(self, neighbors: int = 30, decay: float = 0.995, titles: TitleIndex | None = None) -> None:
        super().__init__(titles)
        if neighbors < 1 or not 0 < decay <= 1:
            raise ValueError(f"neighbors must be >= 1 and decay in (0, 1], got {neighbors}, {decay}")
        self.neighbors, self.decay = neighbors, decay
        self.users: dict[str, int] = {}
        self.rows = np.zeros((0, 0), dtype=np.float32)

    def _params(self) -> dict[str, Any]:
        return {"neighbors": self.neighbors, "decay": self.decay}

    def user_state_bytes(self, user_id: str) -> int:
        """Bytes of per-user state: the dense history row (one float32 per title)."""
        return 4 * len(self.titles) if user_id in self.users else 0

    def _fit(self, users: int, titles: int) -> None:
        if self.rows.shape[0] < users or self.rows.shape[1] < titles:
            bigger = np.zeros((max(users, len(grown(self.rows, users))), max(titles, 2 * self.rows.shape[1], 64)),
                              dtype=np.float32)
            bigger[:self.rows.shape[0], :self.rows.shape[1]] = self.rows
            self.rows = bigger

    def learn_one(self, feedback: Feedback) -> None:
        position = self.titles.add(feedback.title_id)
        row = self.users.setdefault(feedback.user_id, len(self.users))
        self._fit(row + 1, len(self.titles))
        history = self.rows[row]
        history *= self.decay
        history[position] = max(history[position], feedback.weight)

    def score(self, user_id: str) -> np.ndarray:
        size = len(self.titles)
        row = self.users.get(user_id)
        if row is None:
            return np.zeros(size, dtype=np.float32)
        self._fit(len(self.users), size)
        rows = self.rows[:len(self.users), :size]
        norms = np.linalg.norm(rows, axis=1)
        norms[norms == 0] = 1.0
        similarity = rows @ rows[row] / (norms * norms[row])
        similarity[row] = -np.inf
        count = min(self.neighbors, len(similarity) - 1)
        if count <= 0:
            return np.zeros(size, dtype=np.float32)
        nearest = np.argpartition(-similarity, count - 1)[:count]
        weights = np.maximum(similarity[nearest], 0.0)
        return weights @ rows[nearest]
