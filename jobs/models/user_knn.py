"""User-user collaborative filtering: the nearest users by history, kept current as histories change.

Each user's history is a decayed, weighted row over titles (a new touch adds its
weight after the row fades by ``decay``). Two users' similarity is the cosine of
their rows; a user's score for a title is the similarity-weighted sum of the rows of
their ``neighbors`` nearest users. Neighbours are found when scoring, from the
current rows, so they follow every event.

State: a dense titles x users float32 matrix (6 MB for MovieLens 100K, 97 MB at 1M ratings
over 4,000 titles and 6,040 users), one column per user, held as the row divided by a
per-user scale so that fading a row is one multiplication, and each row's squared norm
kept as it changes. Up to ``gram_users`` users it also keeps every pair's dot product
(users x users float32: 146 MB at 6,040 users), updated in one row and one column when a
history changes, so scoring reads one row of it instead of the histories; past that it
computes them from the rows of the user's own titles. At catalog scale the rows would be
replaced by the user vectors of the learning job and the neighbour search by an
approximate index; the contract stays the same.
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

    def __init__(self, neighbors: int = 30, decay: float = 0.995, titles: TitleIndex | None = None,
                 gram_users: int = 16_384) -> None:
        super().__init__(titles)
        if neighbors < 1 or not 0 < decay <= 1:
            raise ValueError(f"neighbors must be >= 1 and decay in (0, 1], got {neighbors}, {decay}")
        self.neighbors, self.decay = neighbors, decay
        self.users: dict[str, int] = {}
        self.columns = np.zeros((0, 0), dtype=np.float32)  # titles x users: a user's history / their scale
        self.scale = np.zeros(0)  # a user's history = scale x their column
        self.norms = np.zeros(0)  # the squared norm of each user's column
        self.gram_users = gram_users
        self.gram: np.ndarray | None = np.zeros((0, 0), dtype=np.float32)  # users x users: their columns' dots

    RESCALE_BELOW = 1e-6  # fold the scale into the column before float32 loses the small entries

    def _params(self) -> dict[str, Any]:
        return {"neighbors": self.neighbors, "decay": self.decay, "gram_users": self.gram_users}

    def user_state_bytes(self, user_id: str) -> int:
        """Bytes of per-user state: the dense history column (one float32 per title)."""
        return 4 * len(self.titles) if user_id in self.users else 0

    def _fit(self, users: int, titles: int) -> None:
        rows, cols = self.columns.shape
        if rows < titles or cols < users:
            bigger = np.zeros((max(titles, 2 * rows, 64), max(users, 2 * cols, 64)), dtype=np.float32)
            bigger[:rows, :cols] = self.columns
            self.columns = bigger
            self.scale, self.norms = grown(self.scale, bigger.shape[1], 1.0), grown(self.norms, bigger.shape[1])
        if self.gram is not None and len(self.gram) < users:
            if users > self.gram_users:  # too many users to keep every pair: computed when scoring from now on
                self.gram = None
            else:
                size = min(max(users, 2 * len(self.gram), 64), self.gram_users)
                gram = np.zeros((size, size), dtype=np.float32)
                gram[:len(self.gram), :len(self.gram)] = self.gram
                self.gram = gram

    def learn_one(self, feedback: Feedback) -> None:
        position = self.titles.add(feedback.title_id)
        user = self.users.setdefault(feedback.user_id, len(self.users))
        self._fit(user + 1, len(self.titles))
        self.scale[user] *= self.decay  # the whole history fades
        if self.scale[user] < self.RESCALE_BELOW:
            factor = np.float32(self.scale[user])
            self.columns[:, user] *= factor
            self.norms[user] = float(np.dot(self.columns[:, user], self.columns[:, user]))
            self.scale[user] = 1.0
            if self.gram is not None:
                self.gram[user, :] *= factor
                self.gram[:, user] *= factor
        scale, stored = self.scale[user], float(self.columns[position, user])
        if feedback.weight > scale * stored:
            new = np.float32(feedback.weight / scale)
            if self.gram is not None:  # the user's dot with everyone moves by the change x their entry here
                users = len(self.users)
                change = self.columns[position, :users] * (new - np.float32(stored))
                self.gram[user, :users] += change
                self.gram[:users, user] += change
            self.columns[position, user] = new
            self.norms[user] = max(self.norms[user] + float(new) ** 2 - stored ** 2, 0.0)

    def score(self, user_id: str) -> np.ndarray:
        size = len(self.titles)
        user = self.users.get(user_id)
        if user is None:
            return np.zeros(size, dtype=np.float32)
        users = len(self.users)
        self._fit(users, size)
        if self.gram is not None:
            dots = self.gram[user, :users].astype(np.float64)
        else:
            mine = np.flatnonzero(self.columns[:size, user])
            dots = self.columns[mine, :users].T @ self.columns[mine, user]
        # cosine: the scales cancel, so the stored columns and their norms give it
        norms = np.sqrt(self.norms[:users])
        norms[norms == 0] = 1.0
        similarity = dots / (norms * norms[user])
        similarity[user] = -np.inf
        count = min(self.neighbors, users - 1)
        if count <= 0:
            return np.zeros(size, dtype=np.float32)
        nearest = np.argpartition(-similarity, count - 1)[:count]
        weights = np.maximum(similarity[nearest], 0.0) * self.scale[nearest]
        scores: np.ndarray = (self.columns[:size, nearest] @ weights).astype(np.float32)
        return scores
