"""Blend weights learned prequentially, one blend per member segment.

A member with two titles behind them is not ranked well by what serves a member with
two hundred: co-watching and transitions have almost nothing to go on, popularity a
lot. So members are put in tenure segments by how many events they have had applied
(:class:`Tenure`: new, growing, established), and each segment has its own blend
learner. A learner is an online coordinate ascent over a few weight levels per
signal (:class:`LocalSearch`): every time a member of the segment touches a title for
the first time, before anything learns from it, the serving blend and each of its
neighbours (one signal one level up or down) are asked whether that title was in
their top ``k`` (:func:`candidate_hits`); every ``step_every`` such touches the serving
blend moves to the neighbour with the best recent hit rate, if it beat the serving
one on the same touches. Each move is a new ``version`` of the segment's blend.

The offline scorer and the learning job use the same learner: the job's user side
computes the hits of the candidates on its sampled touches and one learner per
segment, fed by every subtask, moves the blend and publishes it.

>>> blends = SegmentBlends(["item_cf", "popularity"], {"item_cf": 1.0, "popularity": 0.1}, step_every=2)
>>> blends.segment(0), blends.segment(7), blends.segment(80)
('new', 'growing', 'established')
>>> search = blends.learners["new"]
>>> [c["popularity"] for c in search.candidates]  # the serving blend first, then its neighbours
[0.1, 0.1, 0.1, 0.0, 0.3]
>>> hits = np.array([False, False, False, False, True])  # only popularity 0.3 found the title
>>> blends.observe("new", hits, search.version), blends.observe("new", hits, search.version)
(False, True)
>>> blends.weights("new"), blends.weights("established")["popularity"]
({'item_cf': 1.0, 'popularity': 0.3}, 0.1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectors.state import Versioned

NEW, GROWING, ESTABLISHED = "new", "growing", "established"
SEGMENTS = (NEW, GROWING, ESTABLISHED)
LEVELS = (0.0, 0.1, 0.3, 1.0, 3.0)


@dataclass(frozen=True)
class Tenure:
    """Members by how many events they have had applied: new below ``new_below``, established from
    ``established_from``, growing between."""

    new_below: int = 5
    established_from: int = 50

    def __post_init__(self) -> None:
        if not 1 <= self.new_below < self.established_from:
            raise ValueError(f"tenure: need 1 <= new_below < established_from, got {self.new_below} and "
                             f"{self.established_from}")

    def segment(self, past_events: int) -> str:
        if past_events < self.new_below:
            return NEW
        return GROWING if past_events < self.established_from else ESTABLISHED


def candidate_hits(parts: np.ndarray, weights: np.ndarray, position: int, excluded: np.ndarray,
                   k: int) -> np.ndarray:
    """Whether each candidate blend ranks title ``position`` in its top ``k``.

    ``parts``: signals x titles, each signal already scaled; ``weights``: candidates x signals;
    ``excluded`` marks titles that are not candidates (the member's own). Ties go by position,
    as ranking serves them.

    >>> parts = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]])
    >>> candidate_hits(parts, np.array([[1.0, 0.0], [0.0, 1.0]]), 1, np.zeros(3, dtype=bool), k=1)
    array([False,  True])
    """
    blends = weights @ parts
    blends[:, excluded[:blends.shape[1]]] = -np.inf
    target = blends[:, position:position + 1]
    ahead = np.count_nonzero(blends > target, axis=1) + np.count_nonzero(blends[:, :position] == target, axis=1)
    hits: np.ndarray = ahead < k
    return hits


@dataclass
class BlendLearnerState(Versioned):
    """One segment's learner as it is kept in state (its candidates follow from the serving blend)."""

    version: int = 0
    serving: dict[str, float] = field(default_factory=dict)
    hit_rates: list[float] = field(default_factory=list)
    counts: list[float] = field(default_factory=list)
    observed: int = 0
    touches: int = 0  # every touch credited, over every version

    STATE_VERSION = 1


@dataclass
class PublishedBlend(Versioned):
    """A segment's serving blend as published (absolute and versioned: the newest version wins)."""

    segment: str
    version: int
    weights: dict[str, float]
    touches: int = 0  # touches the learner had credited when it moved
    hit_rate: float = 0.0  # the new blend's recent hit rate on them
    updated_ms: int = 0

    STATE_VERSION = 1

    def describe(self) -> str:
        return (f"{self.segment} v{self.version}: " + ",".join(f"{n}={w:g}" for n, w in self.weights.items()))


class LocalSearch:
    """Online coordinate ascent over ``levels`` per signal for one segment (see the module).

    A starting weight off the levels starts from the nearest level for its neighbours.
    """

    def __init__(self, signals: Sequence[str], start: Mapping[str, float], levels: Sequence[float] = LEVELS,
                 step_every: int = 500, memory: int = 2000) -> None:
        if not signals or step_every < 1 or memory < 1:
            raise ValueError(f"a blend learner needs signals, step_every >= 1 and memory >= 1, got {list(signals)}, "
                             f"{step_every} and {memory}")
        unknown = set(start) - set(signals)
        if unknown:
            raise ValueError(f"blend weights name unknown signals: {sorted(unknown)}")
        self.signals, self.levels = tuple(signals), tuple(sorted(levels))
        self.step_every, self.memory = step_every, memory
        self.version, self.touches = 0, 0
        self.moved_hit_rate = 0.0  # the hit rate that made the serving blend win, when it last moved
        self.serve({name: float(start.get(name, 0.0)) for name in self.signals})

    def serve(self, serving: Mapping[str, float], version: int | None = None) -> None:
        """Serve ``serving`` (signals it leaves out weigh 0) and search around it, from scratch."""
        serving = {name: float(serving.get(name, 0.0)) for name in self.signals}
        if version is not None:
            self.version = version
        self.serving = serving
        self.candidates = self._neighbourhood(serving)
        self.matrix = np.array([[c[name] for name in self.signals] for c in self.candidates])
        self.hit_rates = np.zeros(len(self.candidates))
        self.counts = np.zeros(len(self.candidates))
        self.observed = 0

    def _level(self, weight: float) -> int:
        return int(np.argmin([abs(level - weight) for level in self.levels]))

    def _neighbourhood(self, serving: Mapping[str, float]) -> list[dict[str, float]]:
        """The serving blend first, then each signal one level up or down (never every weight 0)."""
        found = [dict(serving)]
        for name in self.signals:
            level = self._level(serving[name])
            for other in (level - 1, level + 1):
                if 0 <= other < len(self.levels):
                    moved = {**serving, name: self.levels[other]}
                    if any(moved.values()):
                        found.append(moved)
        return found

    def credit(self, hits: np.ndarray) -> bool:
        """One touch's hits per candidate; ``True`` when the serving blend moved (a new version)."""
        rates = 1.0 / np.minimum(self.counts + 1, self.memory)
        self.hit_rates += rates * (hits - self.hit_rates)
        self.counts += 1
        self.observed += 1
        self.touches += 1
        if self.observed % self.step_every:
            return False
        best = int(np.argmax(self.hit_rates))
        if self.hit_rates[best] <= self.hit_rates[0]:  # no neighbour beat the serving blend on the same touches
            return False
        rate = float(self.hit_rates[best])
        self.serve(self.candidates[best], self.version + 1)
        self.moved_hit_rate = rate
        return True

    def snapshot(self) -> BlendLearnerState:
        return BlendLearnerState(self.version, dict(self.serving), self.hit_rates.tolist(), self.counts.tolist(),
                                 self.observed, self.touches)

    def resume(self, state: BlendLearnerState) -> None:
        """Go on from ``state`` (its hit rates only when its candidates are still these)."""
        self.serve(state.serving, state.version)
        self.touches = state.touches
        if len(state.hit_rates) == len(self.candidates):
            self.hit_rates, self.counts = np.array(state.hit_rates), np.array(state.counts)
            self.observed = state.observed

    def published(self, segment: str, now_ms: int) -> PublishedBlend:
        return PublishedBlend(segment, self.version, dict(self.serving), self.touches, self.moved_hit_rate, now_ms)


class SegmentBlends:
    """One :class:`LocalSearch` per tenure segment, all starting from ``start`` (one blend, or one per segment).

    ``pinned``: the starting blends serve and nothing moves them (observations are ignored).
    """

    def __init__(self, signals: Sequence[str], start: Mapping[str, Any], tenure: Tenure | None = None,
                 levels: Sequence[float] = LEVELS, step_every: int = 500, memory: int = 2000,
                 pinned: bool = False) -> None:
        self.tenure, self.pinned = tenure or Tenure(), pinned
        per_segment = all(isinstance(value, Mapping) for value in start.values()) and set(start) <= set(SEGMENTS)
        starts: dict[str, Mapping[str, float]] = ({segment: start.get(segment, {}) for segment in SEGMENTS}
                                                  if per_segment and start else dict.fromkeys(SEGMENTS, start))
        self.learners = {segment: LocalSearch(signals, starts[segment] or next(s for s in starts.values() if s),
                                              levels, step_every, memory) for segment in SEGMENTS}

    def segment(self, past_events: int) -> str:
        return self.tenure.segment(past_events)

    def weights(self, segment: str) -> dict[str, float]:
        return self.learners[segment].serving

    def serving(self) -> dict[str, dict[str, float]]:
        return {segment: learner.serving for segment, learner in self.learners.items()}

    def adopt(self, published: PublishedBlend) -> bool:
        """Serve a published blend newer than the segment's (not when pinned); ``True`` when taken."""
        learner = self.learners.get(published.segment)
        if self.pinned or learner is None or published.version <= learner.version:
            return False
        learner.serve(published.weights, published.version)
        learner.touches = max(learner.touches, published.touches)
        return True

    def observe(self, segment: str, hits: np.ndarray, version: int) -> bool:
        """Hits of the segment's candidates at ``version``; stale ones (an older version's) are dropped.

        ``True`` when the segment's blend moved.
        """
        learner = self.learners[segment]
        if self.pinned or version != learner.version or len(hits) != len(learner.candidates):
            return False
        return learner.credit(hits)
