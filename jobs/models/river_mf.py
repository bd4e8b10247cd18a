"""River's BiasedMF behind the :class:`Recommender` contract: the baseline ``nextwatch eval`` compares against.

River predicts one (user, title) pair at a time; ranking the whole catalog that
way is a Python call per title, so item biases and vectors are mirrored into
numpy arrays as river updates them (one title per ``learn_one``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jobs.models.base import Feedback, Recommender, TitleIndex, grown


class RiverBiasedMF(Recommender):
    """``river.reco.BiasedMF`` learning from explicit ratings (its documented settings by default).

    >>> model = RiverBiasedMF()
    >>> for _ in range(50):
    ...     model.learn_one(Feedback("a", "m1", 0, rating=5.0))
    ...     model.learn_one(Feedback("a", "m2", 0, rating=1.0))
    >>> model.rank("a", k=2), model.predict_one("a", "m1") > model.predict_one("a", "m2")
    (['m1', 'm2'], True)
    """

    def __init__(self, factors: int = 10, learning_rate: float = 0.05, bias_learning_rate: float = 0.025,
                 l2: float = 0.1, seed: int = 42, titles: TitleIndex | None = None) -> None:
        from river import optim, reco

        super().__init__(titles)
        self.factors, self.learning_rate, self.bias_learning_rate, self.l2, self.seed = (
            factors, learning_rate, bias_learning_rate, l2, seed)
        self.model = reco.BiasedMF(
            n_factors=factors, bias_optimizer=optim.SGD(bias_learning_rate),
            latent_optimizer=optim.SGD(learning_rate), l2_bias=l2, l2_latent=l2,
            latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=seed), seed=seed)
        self.item_vectors = np.zeros((0, factors), dtype=np.float64)
        self.item_bias = np.zeros(0, dtype=np.float64)

    def _params(self) -> dict[str, Any]:
        return {"factors": self.factors, "learning_rate": self.learning_rate,
                "bias_learning_rate": self.bias_learning_rate, "l2": self.l2, "seed": self.seed}

    def learn_one(self, feedback: Feedback) -> None:
        if feedback.rating is None:
            return
        self.model.learn_one(feedback.user_id, feedback.title_id, feedback.rating)
        position = self.titles.add(feedback.title_id)
        self.item_vectors = grown(self.item_vectors, position + 1)
        self.item_bias = grown(self.item_bias, position + 1)
        river: Any = self.model  # its annotations say int ids; any hashable id works
        self.item_vectors[position] = river.i_latents[feedback.title_id]
        self.item_bias[position] = river.i_biases[feedback.title_id]

    def predict_one(self, user_id: str, title_id: str) -> float:
        return float(self.model.predict_one(user_id, title_id))

    def score(self, user_id: str) -> np.ndarray:
        size = len(self.titles)
        scores = grown(self.item_bias, size)[:size].copy()
        river: Any = self.model
        user = river.u_latents.get(user_id)  # .get: river's defaultdicts would create the user
        if user is not None:
            scores += grown(self.item_vectors, size)[:size] @ np.asarray(user, dtype=np.float64)
        return scores
