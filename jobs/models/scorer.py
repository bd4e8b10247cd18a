"""The scorer: the one place signals are blended into a score per (user, title) and ranked.

Each signal's scores are min-max scaled over the catalog, then blended with one of
a fixed grid of weight vectors. Which one is learned online, prequentially: every
time a user touches a title for the first time, before the models learn from it,
each candidate blend is asked where it would have ranked that title, and the blend
with the best recent hit rate (exponentially weighted, ``memory`` events) serves
next. Nothing is tuned on the part of the stream that is reported.

A full grid grows as ``levels ** (signals - 1)`` (seven signals at three levels: 729
blends, about 3 ms per positive). With ``local_search`` the candidates are instead
the serving blend and its neighbours (one signal one level up or down); every
``step_every`` positives the serving blend moves to the best of them, an online
coordinate ascent that grows linearly with the signals, learned per member tenure
segment (:mod:`jobs.models.blend`, as the learning job learns it). A pairwise (BPR) weight
learner against the blend's top titles was also tried and ranked worse (Recall@10
0.156 against 0.208 on the first 30,000 MovieLens ratings).

``nextwatch eval`` ranks with :meth:`Scorer.rank`; a new signal is one more entry of
``signals``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jobs.models.base import Feedback, Recommender, Search, TitleIndex
from jobs.models.blend import LEVELS, SegmentBlends, Tenure, candidate_hits


def scaled(scores: np.ndarray) -> np.ndarray:
    """Min-max scaled to [0, 1] (all zeros when the scores are flat)."""
    if len(scores) == 0:
        return scores.astype(np.float64)
    low, high = float(scores.min()), float(scores.max())
    if high <= low:
        return np.zeros(len(scores))
    return (scores - low) / (high - low)


def weight_grid(signals: Sequence[str], levels: Sequence[float] = (0.0, 0.1, 0.3, 1.0)) -> list[dict[str, float]]:
    """Every combination of ``levels`` per signal, the first signal fixed at 1 (scale is irrelevant)."""
    first, *others = signals
    return [{first: 1.0, **dict(zip(others, combo, strict=True))}
            for combo in itertools.product(levels, repeat=len(others))]


class Scorer(Recommender):
    """Blends ``signals`` (models sharing one title index) with weights learned prequentially.

    >>> from jobs.models.item_cf import ItemCooccurrence
    >>> from jobs.models.popularity import Popularity
    >>> scorer = Scorer({"item_cf": ItemCooccurrence(), "popularity": Popularity()})
    >>> for user, title in [("a", "m1"), ("a", "m2"), ("b", "m1"), ("b", "m2"), ("c", "m3"), ("d", "m3")]:
    ...     scorer.learn_one(Feedback(user, title, time_ms=0))
    >>> scorer.learn_one(Feedback("e", "m1", time_ms=0))
    >>> scorer.rank("e", k=1, exclude={"m1"})
    ['m2']
    """

    def __init__(self, signals: Mapping[str, Recommender], candidates: Sequence[Mapping[str, float]] | None = None,
                 memory: int = 2000, k: int = 10, titles: TitleIndex | None = None, local_search: bool = False,
                 levels: Sequence[float] = LEVELS, step_every: int = 500, tenure: Tenure | None = None,
                 start: Mapping[str, Any] | None = None) -> None:
        super().__init__(titles)
        if not signals:
            raise ValueError("a scorer needs at least one signal")
        for name, model in signals.items():
            if len(model.titles):
                raise ValueError(f"signal {name!r} has already learned: give the scorer untrained models")
            model.attach(self.titles)  # one title index, so score vectors line up
        self.signals = dict(signals)
        if local_search and candidates is not None:
            raise ValueError("local search makes its own candidates: pass candidates or local_search, not both")
        self.local_search, self.levels, self.step_every, self.tenure = local_search, tuple(levels), step_every, tenure
        self.start = dict(start) if start else None
        self.memory, self.k = memory, k
        self.past_events: dict[str, int] = {}  # the members' tenure
        self.observed = 0
        if local_search:  # one learner per tenure segment, each starting with no signal favoured
            first = {name: 1.0 for name in self.signals}
            self.blends: SegmentBlends | None = SegmentBlends(list(self.signals), self.start or first, tenure,
                                                              self.levels, step_every, memory)
            return
        self.blends = None
        self.candidates = [dict(c) for c in (candidates or weight_grid(list(self.signals)))]
        unknown = {n for c in self.candidates for n in c} - set(self.signals)
        if unknown:
            raise ValueError(f"blend weights name unknown signals: {sorted(unknown)}")
        self.matrix = np.array([[c.get(name, 0.0) for name in self.signals] for c in self.candidates])
        self.hit_rates = np.zeros(len(self.candidates))
        self.counts = np.zeros(len(self.candidates))

    def _params(self) -> dict[str, Any]:
        return {"signals": {n: m.clone() for n, m in self.signals.items()},
                "candidates": None if self.local_search else self.candidates, "memory": self.memory, "k": self.k,
                "local_search": self.local_search, "levels": self.levels, "step_every": self.step_every,
                "tenure": self.tenure, "start": self.start}

    def segment(self, user_id: str) -> str:
        """The member's tenure segment (one segment, ``"all"``, without local search)."""
        return self.blends.segment(self.past_events.get(user_id, 0)) if self.blends else "all"

    @property
    def weights(self) -> dict[str, float]:
        """The blend serving established members (grid: the candidate with the best recent hit rate)."""
        return self.serving()["established" if self.blends else "all"]

    def serving(self) -> dict[str, dict[str, float]]:
        """The blend serving each segment now."""
        if self.blends:
            return self.blends.serving()
        return {"all": self.candidates[int(np.argmax(self.hit_rates))]}

    def weights_for(self, user_id: str) -> dict[str, float]:
        return self.serving()[self.segment(user_id)]

    def signal_scores(self, user_id: str) -> dict[str, np.ndarray]:
        """Each signal's scores over the whole index (zeros for titles a signal has not seen yet)."""
        raw = {name: model.score(user_id) for name, model in self.signals.items()}
        size = len(self.titles)  # after scoring: a content signal adds catalog titles on first use
        return {name: scores[:size] if len(scores) >= size else np.pad(scores, (0, size - len(scores)))
                for name, scores in raw.items()}

    def blend(self, parts: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
        total = np.zeros(len(self.titles))
        for name, weight in weights.items():
            if weight:
                total += weight * scaled(parts[name])
        return total

    def score(self, user_id: str) -> np.ndarray:
        return self.blend(self.signal_scores(user_id), self.weights_for(user_id))

    def observe(self, parts: Mapping[str, np.ndarray], title_id: str, excluded: np.ndarray, user_id: str) -> None:
        """Before learning from a first touch: credit every candidate blend of the member's segment that had
        the title in its top ``k``. ``excluded`` marks titles that were not candidates (already touched)."""
        position = self.titles.positions.get(title_id)
        if position is None:
            return
        stacked = np.stack([scaled(parts[name]) for name in self.signals])  # signals x titles
        self.observed += 1
        if self.blends:
            segment = self.segment(user_id)
            learner = self.blends.learners[segment]
            self.blends.observe(segment, candidate_hits(stacked, learner.matrix, position, excluded, self.k),
                                learner.version)
            return
        hits = candidate_hits(stacked, self.matrix, position, excluded, self.k)
        rates = 1.0 / np.minimum(self.counts + 1, self.memory)
        self.hit_rates += rates * (hits - self.hit_rates)
        self.counts += 1

    def learn_one(self, feedback: Feedback) -> None:
        for model in self.signals.values():
            model.learn_one(feedback)
        self.past_events[feedback.user_id] = self.past_events.get(feedback.user_id, 0) + 1

    def learn_search(self, search: Search) -> None:
        for model in self.signals.values():
            model.learn_search(search)

    def predict_one(self, user_id: str, title_id: str) -> float | None:
        for model in self.signals.values():  # the first signal that predicts ratings
            prediction = model.predict_one(user_id, title_id)
            if prediction is not None:
                return prediction
        return None
