"""Matrix factorization learned online: one SGD step per piece of feedback, in numpy.

Two models, because ranking and rating prediction want different losses:

* :class:`RatingMF` predicts explicit ratings (``mean + b_u + b_i + p_u . q_i``,
  squared loss); it is what RMSE measures.
* :class:`ImplicitMF` ranks (BPR: a touched title should outscore a sampled
  untouched one), each step weighted by the feedback's implicit weight, so a
  finished play counts more than a click.

State: a user is a ``factors``-long float32 vector and a bias (``user_state_bytes``);
item vectors and biases are shared by all users. How shared item vectors stay
consistent when users are spread over parallel subtasks is the learning job's
concern (see ``jobs/flink/learning/``): these classes hold both
sides in one process.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jobs.models.base import Feedback, Recommender, TitleIndex, grown


class _Factors(Recommender):
    def __init__(self, factors: int, learning_rate: float, regularization: float, seed: int,
                 titles: TitleIndex | None) -> None:
        super().__init__(titles)
        if factors < 1 or learning_rate <= 0 or regularization < 0:
            raise ValueError(f"need factors >= 1, learning_rate > 0, regularization >= 0; got "
                             f"{factors}, {learning_rate}, {regularization}")
        self.factors, self.learning_rate, self.regularization, self.seed = (
            factors, learning_rate, regularization, seed)
        self.rng = np.random.default_rng(seed)
        self.item_vectors = np.zeros((0, factors), dtype=np.float32)
        self.item_bias = np.zeros(0, dtype=np.float32)
        self.user_vectors: dict[str, np.ndarray] = {}
        self.user_bias: dict[str, float] = {}

    def _params(self) -> dict[str, Any]:
        return {"factors": self.factors, "learning_rate": self.learning_rate,
                "regularization": self.regularization, "seed": self.seed}

    def _init_vector(self) -> np.ndarray:
        return self.rng.normal(0.0, 0.1, self.factors).astype(np.float32)

    def _item(self, title_id: str) -> int:
        position = self.titles.add(title_id)
        # every title of the index, not just this one: a shared index holds titles other models added
        self._cover(max(position + 1, len(self.titles)))
        return position

    def _cover(self, size: int) -> None:
        if size > len(self.item_vectors):
            old = len(self.item_vectors)
            self.item_vectors = grown(self.item_vectors, size)
            self.item_vectors[old:] = self.rng.normal(0.0, 0.1, (len(self.item_vectors) - old, self.factors))
            self.item_bias = grown(self.item_bias, size)

    def _user(self, user_id: str) -> np.ndarray:
        vector = self.user_vectors.get(user_id)
        if vector is None:
            vector = self.user_vectors[user_id] = self._init_vector()
        return vector

    def user_vector(self, user_id: str) -> np.ndarray | None:
        """The user's current vector (what the learning job writes to Cassandra)."""
        return self.user_vectors.get(user_id)

    def user_state_bytes(self, user_id: str) -> int:
        """Bytes of per-user state: the vector and the bias."""
        return self.factors * 4 + 4 if user_id in self.user_vectors else 0

    def score(self, user_id: str) -> np.ndarray:
        size = len(self.titles)
        vectors, bias = grown(self.item_vectors, size)[:size], grown(self.item_bias, size)[:size]
        user = self.user_vectors.get(user_id)
        return bias if user is None else vectors @ user + bias


class RatingMF(_Factors):
    """Biased MF for explicit ratings (1-5), the rating predictor.

    >>> model = RatingMF(factors=4)
    >>> for _ in range(200):
    ...     model.learn_one(Feedback("a", "m1", 0, rating=5.0))
    ...     model.learn_one(Feedback("a", "m2", 0, rating=1.0))
    >>> model.predict_one("a", "m1") > 4.5 and model.predict_one("a", "m2") < 1.5
    True
    """

    def __init__(self, factors: int = 16, learning_rate: float = 0.01, regularization: float = 0.05,
                 bias_learning_rate: float = 0.04, shrinkage: float = 3.0, seed: int = 0,
                 titles: TitleIndex | None = None) -> None:
        super().__init__(factors, learning_rate, regularization, seed, titles)
        self.bias_learning_rate, self.shrinkage = bias_learning_rate, shrinkage
        self.user_counts: dict[str, int] = {}
        self.item_counts = np.zeros(0, dtype=np.float32)
        self.rating_sum, self.rating_count = 0.0, 0

    def _params(self) -> dict[str, Any]:
        return {**super()._params(), "bias_learning_rate": self.bias_learning_rate, "shrinkage": self.shrinkage}

    def user_state_bytes(self, user_id: str) -> int:
        """The vector, the bias and the rating count."""
        return super().user_state_bytes(user_id) + (4 if user_id in self.user_counts else 0)

    @property
    def mean(self) -> float:
        return self.rating_sum / self.rating_count if self.rating_count else 3.5

    def predict_one(self, user_id: str, title_id: str) -> float:
        position = self.titles.positions.get(title_id)
        prediction = self.mean + self.user_bias.get(user_id, 0.0)
        if position is not None and position < len(self.item_bias):
            prediction += float(self.item_bias[position])
            user = self.user_vectors.get(user_id)
            if user is not None:
                prediction += float(user @ self.item_vectors[position])
        return float(min(5.0, max(1.0, prediction)))

    def learn_one(self, feedback: Feedback) -> None:
        if feedback.rating is None:
            return
        position = self._item(feedback.title_id)
        user, item = self._user(feedback.user_id), self.item_vectors[position]
        user_bias = self.user_bias.get(feedback.user_id, 0.0)
        error = feedback.rating - (self.mean + user_bias + self.item_bias[position] + float(user @ item))
        lr, reg = self.learning_rate, self.regularization
        # a bias is a shrunk running mean of its errors at first (step 1 / (n + shrinkage)), then a
        # slow-moving average (``bias_learning_rate``): new users and titles settle in a few ratings
        user_seen = self.user_counts.get(feedback.user_id, 0) + 1
        self.user_counts[feedback.user_id] = user_seen
        self.item_counts = grown(self.item_counts, position + 1)
        self.item_counts[position] += 1
        user_lr = max(self.bias_learning_rate, 1.0 / (user_seen + self.shrinkage))
        item_lr = max(self.bias_learning_rate, 1.0 / (float(self.item_counts[position]) + self.shrinkage))
        self.user_bias[feedback.user_id] = user_bias + user_lr * (error - reg * user_bias)
        self.item_bias[position] += item_lr * (error - reg * self.item_bias[position])
        user_step = lr * (error * item - reg * user)
        item += lr * (error * user - reg * item)
        user += user_step
        self.rating_sum += feedback.rating
        self.rating_count += 1


class ImplicitMF(_Factors):
    """BPR MF from implicit feedback: each step pushes the touched title above ``negatives`` sampled ones.

    >>> model = ImplicitMF(factors=4, learning_rate=0.1)
    >>> for n in range(300):
    ...     model.learn_one(Feedback(f"u{n % 3}", "m1", 0))
    ...     model.learn_one(Feedback(f"v{n % 3}", "m2", 0))
    >>> model.rank("u0", k=1)
    ['m1']
    """

    def __init__(self, factors: int = 32, learning_rate: float = 0.05, regularization: float = 0.01,
                 negatives: int = 3, seed: int = 0, titles: TitleIndex | None = None) -> None:
        super().__init__(factors, learning_rate, regularization, seed, titles)
        self.negatives = negatives

    def _params(self) -> dict[str, Any]:
        return {**super()._params(), "negatives": self.negatives}

    def learn_one(self, feedback: Feedback) -> None:
        if feedback.weight <= 0:
            return
        positive = self._item(feedback.title_id)
        user = self._user(feedback.user_id)
        lr, reg = self.learning_rate * feedback.weight, self.regularization
        for negative in self.rng.integers(0, len(self.titles), self.negatives):
            if negative == positive:
                continue
            difference = self.item_vectors[positive] - self.item_vectors[negative]
            margin = float(user @ difference) + float(self.item_bias[positive] - self.item_bias[negative])
            gradient = 1.0 / (1.0 + math.exp(min(margin, 50.0)))  # d log(sigmoid(margin)) / d margin
            user_before = user.copy()
            user += lr * (gradient * difference - reg * user)
            self.item_vectors[positive] += lr * (gradient * user_before - reg * self.item_vectors[positive])
            self.item_vectors[negative] += lr * (-gradient * user_before - reg * self.item_vectors[negative])
            self.item_bias[positive] += lr * (gradient - reg * self.item_bias[positive])
            self.item_bias[negative] += lr * (-gradient - reg * self.item_bias[negative])
