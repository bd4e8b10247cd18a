"""The learning job's nine signals and their blend: what the user side scores every title with.

The offline models (:mod:`jobs.models.scorer` and its signals) keep every user's
state in one process. In the job a user's state is keyed by user and shared
model state travels as published records, so each signal is computed from:

* ``implicit_mf``, ``rating_mf``: the user's vectors and the titles' published
  vectors (:mod:`jobs.models.online`);
* ``item_cf``: the published co-watch neighbours of the user's recent titles;
* ``transitions``: the published successors (what was watched next) of the
  user's last ``order`` titles, nearer ones counting more;
* ``popularity``: the titles' published touches (log-scaled);
* ``content``: the cosine of each title's metadata vector (from the catalog topic,
  so a title nobody has touched scores as soon as the catalog describes it) with
  the user's content profile;
* ``search``: the user's last searches matched against title terms, halving every
  ``search_half_life_minutes`` of the user's own event time;
* ``user_knn``: the recent titles of the user's nearest users by the overlap of
  their last titles, found in a :class:`PeerPool`;
* ``neural``: the neural sequence model's encoder over the user's last titles, with the
  published encoder and title embeddings (:mod:`jobs.models.neural`; zeros unless the job
  trains it).

All of it is pure: the job holds a :class:`TitleTable` (built from its broadcast
state) and a :class:`PeerPool` per subtask, and calls :func:`signal_scores` and
:func:`top_picks` on a user's flush.
"""

from __future__ import annotations

import math
import pickle
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from jobs.models.base import Feedback, Recommender, Search, TitleIndex, grown
from jobs.models.blend import SegmentBlends, Tenure, candidate_hits
from jobs.models.content import TitleText, hashed_vector, title_features
from jobs.models.neural import ENCODER, WEIGHT_ORDER, PublishedNeural, SequenceNet, TrainerState, neural_scores
from jobs.models.online import (
    ItemVectors,
    LearningConfig,
    LocalLoop,
    UserModel,
    in_evaluation_sample,
    is_redelivery,
    learn_content,
    learn_search,
)
from jobs.models.online import publish as publish_item
from jobs.models.scorer import scaled
from jobs.models.search import terms, title_terms

SIGNALS = ("item_cf", "implicit_mf", "popularity", "rating_mf", "transitions", "user_knn", "content", "search",
           "neural")
CATALOG_SIGNALS = ("content", "search")  # know a title from the catalog alone; the others from interactions
# Where each tenure segment's blend starts: learned by the job's own blend learner from every member's
# touches of the first 50,000 MovieLens 100K ratings only (`nextwatch eval --tune-blends`), without the
# neural model and with it (`[learning] neural`). Search stays where it started: MovieLens has no searches.
DEFAULT_BLENDS = {
    "new": "item_cf=0.3,implicit_mf=0.1,popularity=0.3,rating_mf=0.3,transitions=1,user_knn=0.1,content=0.1,search=1",
    "growing": "item_cf=1,implicit_mf=0,popularity=0.3,rating_mf=0.1,transitions=1,user_knn=0.1,content=0.1,search=1",
    "established": ("item_cf=1,implicit_mf=0.1,popularity=0.1,rating_mf=0.1,transitions=1,user_knn=0,content=0.3,"
                    "search=1"),
}
DEFAULT_NEURAL_BLENDS = {
    "new": "item_cf=0.1,popularity=0.3,rating_mf=0.1,transitions=1,user_knn=0.1,content=0.1,search=1",
    "growing": "item_cf=0.3,popularity=0.1,rating_mf=0.1,transitions=0.3,content=0.3,search=1,neural=1",
    "established": ("item_cf=3,implicit_mf=0.3,rating_mf=0.1,transitions=3,user_knn=0.1,content=3,search=1,"
                    "neural=3"),
}
EVALUATE_SHARE = 0.05  # the job's in-job evaluation (and blend learning) sample: a scoring per sampled touch


def parse_blend(text: str) -> dict[str, float]:
    """``"item_cf=1,content=0.3"`` -> weights; signals left out weigh 0.

    >>> parse_blend("item_cf=1, content=0.3")["content"]
    0.3
    >>> parse_blend("item_cf=1,colour=2")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: blend: unknown signal 'colour'; known: item_cf, implicit_mf, ...
    """
    weights = dict.fromkeys(SIGNALS, 0.0)
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if name not in weights:
            raise ValueError(f"blend: unknown signal {name!r}; known: {', '.join(SIGNALS)}")
        try:
            weight = float(value) if sep else math.nan
        except ValueError:
            weight = math.nan
        if not weight >= 0:
            raise ValueError(f"blend: {part!r} needs a weight >= 0, as in {name}=0.3")
        weights[name] = weight
    if not any(weights.values()):
        raise ValueError(f"blend: {text!r} gives every signal weight 0")
    return weights


def segment_blends(blend: str | Mapping[str, str], tenure: Tenure | None = None, pinned: bool = False,
                   step_every: int = 500) -> SegmentBlends:
    """The job's blend learners, starting from ``blend`` (one for every segment, or ``{segment: blend}``)."""
    start: Mapping[str, object] = (parse_blend(blend) if isinstance(blend, str)
                                   else {segment: parse_blend(text) for segment, text in blend.items()})
    return SegmentBlends(SIGNALS, start, tenure, step_every=step_every, pinned=pinned)


@dataclass(frozen=True)
class Pick:
    """One ranked title: its blended score and the signal that contributed most (the row's reason)."""

    title_id: str
    score: float
    reason: str


class TitleTable:
    """Every title the user side knows, from the catalog and the published item vectors, as arrays.

    A title joins on whichever comes first; its rows are updated in place, so scoring a
    user is a few matrix products over the catalog.

    >>> from jobs.models.online import LearningConfig
    >>> table = TitleTable(LearningConfig())
    >>> table.describe(TitleText("m1", "Alien", 1979, ("Sci-Fi",)))
    >>> len(table), table.terms["alien"]
    (1, {0})
    """

    def __init__(self, config: LearningConfig) -> None:
        self.config, self.dimensions = config, config.content_dimensions
        self.ids: list[str] = []
        self.positions: dict[str, int] = {}
        self.items: dict[str, ItemVectors] = {}  # the newest published vectors per title
        self.catalog: dict[str, TitleText] = {}
        self.implicit = np.zeros((0, config.implicit_factors), dtype=np.float32)
        self.implicit_bias = np.zeros(0, dtype=np.float32)
        self.rating = np.zeros((0, config.rating_factors), dtype=np.float32)
        self.rating_bias = np.zeros(0, dtype=np.float32)
        self.popularity = np.zeros(0, dtype=np.float32)
        self.described = np.zeros(0, dtype=bool)  # the catalog describes the title
        self.content = np.zeros((0, self.dimensions), dtype=np.float32)
        self.terms: dict[str, set[int]] = {}
        self.neighbors: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.successors: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        # the neural sequence model as its trainer published it: the encoder, and an embedding per title
        self.encoder: dict[str, np.ndarray] = {}
        self.neural_versions: dict[str, int] = {}
        self.neural = np.zeros((0, config.neural_dimensions), dtype=np.float32)
        self.neural_bias = np.zeros(0, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def position(self, title_id: str) -> int:
        """The title's row, added (zeros: no signal yet) the first time it is named."""
        found = self.positions.get(title_id)
        if found is not None:
            return found
        found = self.positions[title_id] = len(self.ids)
        self.ids.append(title_id)
        if found >= len(self.popularity):
            size = found + 1
            self.implicit, self.rating, self.content = (grown(self.implicit, size), grown(self.rating, size),
                                                        grown(self.content, size))
            self.neural, self.neural_bias = grown(self.neural, size), grown(self.neural_bias, size)
            self.implicit_bias, self.rating_bias, self.popularity, self.described = (
                grown(self.implicit_bias, size), grown(self.rating_bias, size), grown(self.popularity, size),
                grown(self.described, size))
        return found

    def hold(self, vectors: ItemVectors) -> bool:
        """Take published vectors unless a newer version is held; ``True`` when taken."""
        current = self.items.get(vectors.title_id)
        if current is not None and vectors.version < current.version:
            return False
        self.items[vectors.title_id] = vectors
        at = self.position(vectors.title_id)
        if current is None or vectors.successors is not current.successors:  # the same lists: already indexed
            self.successors[at] = self._indexed(vectors.successors)
        if len(vectors.implicit_vector) == self.implicit.shape[1]:
            self.implicit[at] = vectors.implicit_vector
        if len(vectors.rating_vector) == self.rating.shape[1]:
            self.rating[at] = vectors.rating_vector
        self.implicit_bias[at], self.rating_bias[at] = vectors.implicit_bias, vectors.rating_bias
        self.popularity[at] = math.log1p(max(vectors.touches, 0.0))
        self.neighbors[at] = self._indexed(vectors.neighbors)
        return True

    def _indexed(self, pairs: Sequence[tuple[str, float]]) -> tuple[np.ndarray, np.ndarray]:
        known = self.positions.get
        found = [known(title) for title, _ in pairs]  # the common case, without a call per title
        if None in found:
            found = [self.position(title) for title, _ in pairs]
        return np.array(found, dtype=np.int64), np.array([score for _, score in pairs], dtype=np.float32)

    def hold_neural(self, weights: PublishedNeural) -> bool:
        """Take the neural model's published weights (the encoder, or a title's embedding) unless a newer
        version is held, or they have another shape; ``True`` when taken."""
        if weights.version < self.neural_versions.get(weights.key, -1) or \
                weights.dimensions != self.config.neural_dimensions:
            return False
        self.neural_versions[weights.key] = weights.version
        if weights.key == ENCODER:
            self.encoder = weights.encoder_weights()
        else:
            at = self.position(weights.key)
            self.neural[at], self.neural_bias[at] = weights.vector, weights.bias
        return True

    def hold_trainer(self, trainer: TrainerState) -> None:
        """What holding every record of ``trainer.published()`` does, without building a record per title: for a
        trainer in the same process (:class:`JobLoop`), where the records cost more than the training."""
        net = trainer.net
        if net.dimensions != self.config.neural_dimensions:
            return
        self.neural_versions[ENCODER] = trainer.version
        self.encoder = {name: net.dense[name].copy() for name in WEIGHT_ORDER}
        changed = [p for p in sorted(trainer.changed) if p < len(trainer.titles)]
        at = [self.position(trainer.titles[p]) for p in changed]
        self.neural[at], self.neural_bias[at] = net.outputs[changed], net.bias[changed]
        self.neural_versions.update(dict.fromkeys((trainer.titles[p] for p in changed), trainer.version))
        trainer.changed = set()

    def describe(self, title: TitleText) -> None:
        """A catalog snapshot: the title's metadata vector and search terms (replacing older ones)."""
        at = self.position(title.title_id)
        old = self.catalog.get(title.title_id)
        if old is not None:
            for term in title_terms(old):
                self.terms.get(term, set()).discard(at)
        self.catalog[title.title_id] = title
        self.described[at] = True
        self.content[at] = hashed_vector(title_features(title), self.dimensions)
        for term in title_terms(title):
            self.terms.setdefault(term, set()).add(at)

    def content_vector(self, title_id: str) -> np.ndarray | None:
        """The title's metadata vector, ``None`` while the catalog has not described it."""
        return self.content[self.positions[title_id]] if title_id in self.catalog else None


class PeerPool:
    """A bounded sample of users for user-user CF: each one's last titles, and who watched what.

    Two users' similarity is the cosine of their sets of last ``recent`` titles (the
    user state already holds them); a user's score for a title sums, over their
    ``neighbors`` nearest pooled users, similarity x the title's recency in that
    user's list. Each subtask keeps the ``size`` users it saw act most recently, so
    neighbours follow histories as they change; at parallelism N each subtask finds
    neighbours among its own share of users (a random 1/N by key hash), the sampling
    an approximate index makes anyway. Only ``audience`` pooled users are kept per
    title (the most recent), which bounds the work per scoring. It is a cache of keyed
    state, not state: after a restart it refills from the users who act, and the job
    seeds it from Cassandra.

    >>> from jobs.models.online import LearningConfig
    >>> table = TitleTable(LearningConfig())
    >>> for title in ("m1", "m2", "m3"):
    ...     _ = table.position(title)
    >>> pool = PeerPool(size=3, neighbors=1)
    >>> pool.update("a", UserModel(recent=["m1", "m2"]))
    >>> pool.update("b", UserModel(recent=["m3"]))
    >>> me = UserModel(recent=["m1"])
    >>> [table.ids[p] for p in np.flatnonzero(pool.scores("me", me, table))]  # a is nearest: a's titles
    ['m1', 'm2']
    """

    def __init__(self, size: int = 2000, neighbors: int = 30, recent: int = 20, recency: float = 0.9,
                 audience: int = 200) -> None:
        if size < 2 or neighbors < 1 or recent < 1 or audience < 1:
            raise ValueError(f"a peer pool needs size >= 2 and neighbors, recent, audience >= 1, got "
                             f"{size}, {neighbors}, {recent}, {audience}")
        self.size, self.neighbors, self.recent, self.recency, self.audience = size, neighbors, recent, recency, audience
        self.histories: dict[str, tuple[str, ...]] = {}  # least recently active first
        self.watchers: dict[str, dict[str, None]] = {}  # title -> pooled users (an ordered set, oldest first)

    def __len__(self) -> int:
        return len(self.histories)

    def forget(self, user_id: str) -> None:
        """Drop ``user_id`` from the pool (an erased member)."""
        self._forget(user_id)

    def _forget(self, user_id: str) -> None:
        for title in self.histories.pop(user_id, ()):
            watchers = self.watchers.get(title)
            if watchers is not None:
                watchers.pop(user_id, None)
                if not watchers:
                    del self.watchers[title]

    def update(self, user_id: str, user: UserModel) -> None:
        """The user acted: hold their current last titles (evicting the least recently active user)."""
        self._forget(user_id)
        titles = tuple(user.recent[-self.recent:])
        if not titles:
            return
        self.histories[user_id] = titles
        for title in titles:
            watchers = self.watchers.setdefault(title, {})
            watchers[user_id] = None
            if len(watchers) > self.audience:
                del watchers[next(iter(watchers))]
        while len(self.histories) > self.size:
            self._forget(next(iter(self.histories)))

    def scores(self, user_id: str, user: UserModel, table: TitleTable) -> np.ndarray:
        """Similarity-weighted recent titles of the user's nearest pooled users, over ``table``."""
        scores = np.zeros(len(table), dtype=np.float32)
        mine = user.recent[-self.recent:]
        overlap = Counter(chain.from_iterable(self.watchers.get(title, ()) for title in mine))
        overlap.pop(user_id, None)
        if not overlap:
            return scores
        others = sorted(overlap)  # ties go by name: sorted by name first, then stably by similarity
        counts = np.fromiter((overlap[other] for other in others), dtype=np.float64, count=len(others))
        lengths = np.fromiter((len(self.histories[other]) for other in others), dtype=np.float64, count=len(others))
        similarity = counts / np.sqrt(len(mine) * lengths)
        for at_other in np.argsort(-similarity, kind="stable")[:self.neighbors]:
            weight = float(similarity[at_other])
            for age, title in enumerate(reversed(self.histories[others[at_other]])):
                at = table.positions.get(title)
                if at is not None:
                    scores[at] += weight * self.recency ** age
        return scores


def signal_scores(user_id: str, user: UserModel, table: TitleTable, peers: PeerPool,
                  half_life_minutes: float = 60.0, recency: float = 0.9) -> dict[str, np.ndarray]:
    """Each signal's raw scores for ``user`` over every title in ``table`` (zeros where it knows nothing)."""
    size, config = len(table), table.config
    zeros = np.zeros(size, dtype=np.float32)
    parts = {"popularity": table.popularity[:size].copy()}
    implicit = user.implicit_vector
    parts["implicit_mf"] = (table.implicit[:size] @ implicit + table.implicit_bias[:size]
                            if implicit is not None and len(implicit) == table.implicit.shape[1] else zeros.copy())
    rating = user.rating_vector
    parts["rating_mf"] = (table.rating[:size] @ rating + table.rating_bias[:size]
                          if rating is not None and len(rating) == table.rating.shape[1] else zeros.copy())
    parts["item_cf"] = _followers(table.neighbors, user.recent, table, size, recency, len(user.recent))
    parts["transitions"] = _followers(table.successors, user.recent, table, size, config.fade, config.order)
    profile = user.profile
    if profile is not None and profile.any() and len(profile) == table.dimensions:
        parts["content"] = table.content[:size] @ (profile / float(np.linalg.norm(profile)))
    else:
        parts["content"] = zeros.copy()
    parts["search"] = search_scores(user, table, half_life_minutes)
    parts["user_knn"] = peers.scores(user_id, user, table)
    history = [table.positions[title] for title in user.recent if title in table.positions]
    parts["neural"] = (neural_scores(table.encoder, table.neural[:size], table.neural_bias[:size], history,
                                     config.neural_length) if table.encoder else zeros.copy())
    return parts


def _followers(lists: Mapping[int, tuple[np.ndarray, np.ndarray]], recent: Sequence[str], table: TitleTable,
               size: int, fade: float, depth: int) -> np.ndarray:
    """Sum over the user's last ``depth`` titles (the j-th back weighted ``fade ** j``) of their published lists."""
    scores = np.zeros(size, dtype=np.float32)
    for age, title in enumerate(list(reversed(recent))[:depth]):
        at = table.positions.get(title)
        listed = lists.get(at) if at is not None else None
        if listed is not None and len(listed[0]):
            np.add.at(scores, listed[0][listed[0] < size], fade ** age * listed[1][listed[0] < size])
    return scores


def search_scores(user: UserModel, table: TitleTable, half_life_minutes: float = 60.0) -> np.ndarray:
    """Every title matching a word of the user's recent searches gains the search's faded weight."""
    scores = np.zeros(len(table), dtype=np.float32)
    now = user.clock_ms
    for time_ms, words in user.searches:
        weight = 0.5 ** (max(0, now - time_ms) / 60_000 / half_life_minutes)
        for word in terms(words):
            for at in table.terms.get(word, ()):
                scores[at] += weight
    return scores


def weighted(parts: Mapping[str, np.ndarray], weights: Mapping[str, float], warm: np.ndarray | None = None,
             candidates: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each weighted signal's min-max scaled scores, as the offline scorer blends them.

    ``warm`` marks the titles someone has touched. A cold title (no interactions yet)
    has nothing for the interaction signals to go on, which is no evidence against it:
    each of them gives it its mean over the warm ``candidates`` (imputed: the titles it
    competes with, not the user's own, which the CF signals favour), so a new title ranks
    as an average title would, moved up or down by its metadata (content) and the
    user's searches. Imputing content's score instead was tried: cold titles then
    flood the picks wherever content correlates a little, since most warm titles
    score 0 on the sparse signals (co-watch, transitions, nearest users).
    """
    out = {name: weight * _scaled(name, parts[name]) for name, weight in weights.items() if weight and name in parts}
    if warm is None:
        return out
    peers = warm if candidates is None else warm & candidates
    if warm.all() or not peers.any():
        return out
    for name, values in out.items():
        if name not in CATALOG_SIGNALS:
            out[name] = np.where(warm, values, float(values[peers].mean()))
    return out


def _scaled(name: str, scores: np.ndarray) -> np.ndarray:
    """Min-max scaled, but search's absolute: a faded search must stay faint, not be stretched to 1."""
    if not np.isfinite(scores).all():  # a signal gone wrong gives no evidence (a NaN would tie every title first)
        scores = np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)
    if name == "search":
        return scores / max(float(scores.max(initial=0.0)), 1.0)
    return scaled(scores)


def blend(parts: Mapping[str, np.ndarray], weights: Mapping[str, float],
          warm: np.ndarray | None = None) -> np.ndarray:
    """The blended score of every title (see :func:`weighted`)."""
    found = weighted(parts, weights, warm)
    size = len(next(iter(parts.values()))) if parts else 0
    return np.sum(list(found.values()), axis=0) if found else np.zeros(size)


def top_picks(parts: Mapping[str, np.ndarray], weights: Mapping[str, float], table: TitleTable, k: int,
              exclude: Iterable[str] = ()) -> list[Pick]:
    """The ``k`` best titles by the blend, ties in table order, each with the signal that gave it most.

    A cold title's reason is ``content`` or ``search``, whichever gave more (not an imputed share).
    With a catalog, only titles it describes are picked.

    >>> from jobs.models.online import LearningConfig
    >>> table = TitleTable(LearningConfig())
    >>> for title in ("m1", "m2", "m3"):
    ...     _ = table.position(title)
    >>> table.popularity[:3] = 1.0  # all touched, else the interaction signals would be imputed
    >>> parts = {"content": np.array([0.1, 0.9, 0.5]), "popularity": np.array([1.0, 0.0, 0.9])}
    >>> [(p.title_id, p.reason) for p in top_picks(parts, {"content": 1.0, "popularity": 0.3}, table, 2, ["m2"])]
    [('m3', 'content'), ('m1', 'popularity')]
    """
    size = len(next(iter(parts.values()))) if parts else 0
    # once there is a catalog, a title it does not describe (withdrawn, or only a stale vector) is never picked
    candidates = table.described[:size].copy() if table.catalog else np.ones(size, dtype=bool)
    for title in exclude:
        at = table.positions.get(title)
        if at is not None and at < size:
            candidates[at] = False
    warm = table.popularity[:size] > 0
    found = weighted(parts, weights, warm, candidates)
    if not found:
        return []
    total = np.where(candidates, np.sum(list(found.values()), axis=0), -np.inf)
    count = min(k, int(candidates.sum()))
    if count <= 0:
        return []
    best = np.lexsort((np.arange(len(total)), -total))[:count]
    names = list(found)
    if any(n in CATALOG_SIGNALS for n in names):  # reasons: an imputed share is no reason
        found = {n: (np.where(warm, v, -np.inf) if n not in CATALOG_SIGNALS else v) for n, v in found.items()}
    stacked = np.stack([found[name] for name in names])
    return [Pick(table.ids[at], round(float(total[at]), 6), names[int(np.argmax(stacked[:, at]))]) for at in best]


def is_blend_touch(user: UserModel, feedback: Feedback) -> bool:
    """A touch the blends are tested on, as the in-job evaluation's: a title not among the member's last
    titles, in event order (an out-of-order one would test on what the model learned after it)."""
    return (feedback.weight > 0 and bool(user.recent) and feedback.title_id not in user.recent
            and feedback.time_ms >= user.updated_ms)


@dataclass(frozen=True)
class BlendObservation:
    """The hits of one segment's candidate blends (at ``version``) on one touch; ``hits[0]`` is the serving blend's."""

    segment: str
    version: int
    hits: tuple[bool, ...]


def observe_blends(parts: Mapping[str, np.ndarray], table: TitleTable, blends: SegmentBlends, user: UserModel,
                   title_id: str, k: int = 10) -> BlendObservation | None:
    """Before the member learns ``title_id``: which of their segment's candidate blends rank it in the top ``k``,
    over the titles :func:`top_picks` would choose from. ``None`` when it is not one of them."""
    size = len(next(iter(parts.values()))) if parts else 0
    position = table.positions.get(title_id)
    if position is None or position >= size:
        return None
    candidates = table.described[:size].copy() if table.catalog else np.ones(size, dtype=bool)
    for title in user.recent:
        at = table.positions.get(title)
        if at is not None and at < size:
            candidates[at] = False
    if not candidates[position]:
        return None
    learner = blends.learners[blends.segment(user.version)]
    unit = weighted(parts, dict.fromkeys(learner.signals, 1.0), table.popularity[:size] > 0, candidates)
    stacked = np.stack([unit.get(name, np.zeros(size)) for name in learner.signals])
    hits = candidate_hits(stacked, learner.matrix, position, ~candidates, k)
    return BlendObservation(blends.segment(user.version), learner.version, tuple(bool(hit) for hit in hits))


def without_neural(parts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The signals as a job without the neural model scores them: the neural signal all zeros."""
    return {name: np.zeros_like(scores) if name == "neural" else scores for name, scores in parts.items()}


class JobLoop(LocalLoop):
    """The learning job's two sides in one process, with every signal: for tests and ``nextwatch eval``.

    :class:`LocalLoop` plus what the job's user side adds: the catalog, content profiles,
    searches and the peer pool, scored and blended as the job's flush does.

    >>> catalog = [TitleText("m1", "Alien", 1979, ("Sci-Fi",)), TitleText("m2", "Heat", 1995, ("Crime",)),
    ...            TitleText("m3", "Aliens", 1986, ("Sci-Fi",))]
    >>> loop = JobLoop(catalog=catalog)
    >>> loop.learn("a", Feedback("a", "m1", 0, 1.0), "e1")
    >>> [(pick.title_id, pick.reason) for pick in loop.picks("a", k=1)]  # m3: untouched, by its metadata
    [('m3', 'content')]
    """

    def __init__(self, config: LearningConfig | None = None, publish_every: int = 1,
                 catalog: Iterable[TitleText] = (), blend: str | Mapping[str, str] | None = None, peers: int = 2000,
                 search_half_life_minutes: float = 60.0, flush_every: int = 1, evaluate_share: float = EVALUATE_SHARE,
                 pin_blend: bool = False, tenure: Tenure | None = None, blend_step_every: int = 500,
                 neural: bool = False) -> None:
        super().__init__(config, publish_every, flush_every)
        self.table = TitleTable(self.config)
        config = self.config  # the job's neural trainer, here in the same process (published as items are)
        self.trainer = TrainerState(SequenceNet(config.neural_dimensions, config.neural_negatives,
                                                config.neural_learning_rate, tied=True)) if neural else None
        for title in catalog:
            self.table.describe(title)
        self.peers = PeerPool(peers)
        defaults = DEFAULT_NEURAL_BLENDS if neural else DEFAULT_BLENDS
        self.blends = segment_blends(defaults if blend is None else blend, tenure, pin_blend, blend_step_every)
        # the blends of the same job with the neural model off, learned beside (see ``blends_without_neural``)
        self.without_neural: list[SegmentBlends] = []
        self.tenure, self.blend_step_every = tenure, blend_step_every
        self.evaluate_share = evaluate_share
        self.search_half_life_minutes = search_half_life_minutes
        self._scored: tuple[str, dict[str, np.ndarray]] | None = None

    def blends_without_neural(self, blend: str | Mapping[str, str] | None = None,
                              pinned: bool = False) -> SegmentBlends:
        """Blends of this job with the neural model off, learned from the same touches with the neural signal
        blanked: what a second loop without the model would learn (its user and item sides are the same), at
        none of the cost. ``nextwatch eval`` reports both jobs this way."""
        blends = segment_blends(DEFAULT_BLENDS if blend is None else blend, self.tenure, pinned,
                                self.blend_step_every)
        self.without_neural.append(blends)
        return blends

    def weights(self, user_id: str, blends: SegmentBlends | None = None) -> dict[str, float]:
        """The blend serving the member's segment (of ``blends``, or this loop's own)."""
        user, blends = self.users.get(user_id), blends or self.blends
        return blends.weights(blends.segment(user.version if user else 0))

    def learn(self, user_id: str, feedback: Feedback, event_id: str) -> None:
        user = self.users.setdefault(user_id, UserModel())
        version = user.version
        learning = [(self.blends, False)] if not self.blends.pinned else []
        learning += [(blends, True) for blends in self.without_neural if not blends.pinned]
        if (learning and is_blend_touch(user, feedback)
                and in_evaluation_sample(user_id, self.evaluate_share) and not is_redelivery(user, event_id, feedback)):
            parts = self.scores(user_id)
            for blends, blank in learning:
                observation = observe_blends(without_neural(parts) if blank else parts, self.table, blends, user,
                                             feedback.title_id)
                if observation is not None:  # one learner for the whole job: here in the same process
                    blends.observe(observation.segment, np.array(observation.hits), observation.version)
        previous = user.recent[-self.config.neural_length:]
        self._scored = None
        super().learn(user_id, feedback, event_id)
        if user.version != version:  # applied, not a redelivery: as the job's user side does after learn_user
            learn_content(user, feedback, self.table.content_vector(feedback.title_id), self.config)
            self.peers.update(user_id, user)
            if self.trainer is not None and previous and feedback.title_id not in previous:
                self.trainer.learn(previous, feedback.title_id, self.config.neural_batch, self.config.neural_length)

    def learn_search(self, user_id: str, search: Search, event_id: str) -> bool:
        self._scored = None
        return learn_search(self.users.setdefault(user_id, UserModel()), search, event_id, self.config)

    def publish(self) -> None:
        self._scored = None
        for title, item in self.items.items():
            if item.dirty:
                self.published[title] = vectors = publish_item(item, self.config)
                self.table.hold(vectors)
        if self.trainer is not None and self.trainer.changed:
            self.table.hold_trainer(self.trainer)

    def describe(self, title: TitleText) -> None:
        self._scored = None
        self.table.describe(title)

    def scores(self, user_id: str) -> dict[str, np.ndarray]:
        """Every signal's scores for the member; the last member's are kept until anything learns (two jobs
        measured on one loop, and the blend learner before the member learns, score the same state)."""
        if self._scored is not None and self._scored[0] == user_id:
            return self._scored[1]
        user = self.users.get(user_id) or UserModel()
        parts = signal_scores(user_id, user, self.table, self.peers, self.search_half_life_minutes)
        self._scored = (user_id, parts)
        return parts

    def picks(self, user_id: str, k: int = 10, exclude: Iterable[str] | None = None) -> list[Pick]:
        """The user's top picks as the job writes them (their recent titles left out unless ``exclude`` says)."""
        user = self.users.get(user_id) or UserModel()
        return top_picks(self.scores(user_id), self.weights(user_id), self.table, k,
                         user.recent if exclude is None else exclude)


class JobBlend(Recommender):
    """A :class:`JobLoop` behind the :class:`Recommender` contract: the learning job's top picks, measured.

    ``nextwatch eval`` ranks with it as the job serves: all eight signals from the job's
    own state and published vectors, blended with the job's weights (``blend``). A
    user's item steps are applied ``flush_every`` events after the first of them (50:
    the job's 100 ms flush at ~500 events/s) and item vectors published every
    ``publish_every`` events (100; publishing after every event also costs most of the
    time here).

    >>> catalog = [TitleText("m1", "Alien", 1979, ("Sci-Fi",)), TitleText("m2", "Heat", 1995, ("Crime",)),
    ...            TitleText("m3", "Aliens", 1986, ("Sci-Fi",))]
    >>> model = JobBlend(catalog)
    >>> model.learn_one(Feedback("a", "m1", 0, 1.0))
    >>> model.rank("a", k=1, exclude={"m1"})
    ['m3']

    The same job with the neural model off can be measured ``beside`` one with it on: it
    shares that model's loop (the user and item sides are the same with the model off) and
    only learns its own blends, with the neural signal blanked. It learns nothing itself:
    the model it is beside must learn the same stream.

    >>> off = JobBlend(catalog, beside=(on := JobBlend(catalog, neural=True)))
    >>> on.learn_one(Feedback("a", "m1", 0, 1.0)); off.learn_one(Feedback("a", "m1", 0, 1.0))
    >>> off.rank("a", k=1, exclude={"m1"})
    ['m3']
    """

    def __init__(self, catalog: Iterable[TitleText] = (), blend: str | Mapping[str, str] | None = None,
                 publish_every: int = 100, titles: TitleIndex | None = None, flush_every: int = 50,
                 evaluate_share: float = EVALUATE_SHARE, neural: bool = False, beside: JobBlend | None = None) -> None:
        super().__init__(titles)
        if beside is not None and (neural or not beside.neural or beside.beside is not None):
            raise ValueError("a job without the neural model is measured beside one with it, not another")
        defaults = DEFAULT_NEURAL_BLENDS if neural else DEFAULT_BLENDS
        self.catalog, self.blend_text = list(catalog), blend if blend is not None else defaults
        self.publish_every, self.flush_every, self.evaluate_share = publish_every, flush_every, evaluate_share
        self.neural: bool = neural
        self.beside: JobBlend | None = beside
        if beside is None:
            self.loop = JobLoop(publish_every=publish_every, catalog=self.catalog, blend=self.blend_text,
                                flush_every=flush_every, evaluate_share=evaluate_share, neural=neural)
            self.blends = self.loop.blends
        else:
            self.loop = beside.loop
            self.blends = self.loop.blends_without_neural(self.blend_text)
        self.events = 0
        self.positions = np.zeros(0, dtype=np.int64)  # the job table's titles in this model's index

    def _params(self) -> dict[str, Any]:
        return {"catalog": self.catalog, "blend": self.blend_text, "publish_every": self.publish_every,
                "flush_every": self.flush_every, "evaluate_share": self.evaluate_share, "neural": self.neural,
                "beside": self.beside}

    def user_state_bytes(self, user_id: str) -> int:
        """Bytes of per-user state: the user's keyed state as the job pickles it."""
        user = self.loop.users.get(user_id)
        return len(pickle.dumps(user)) if user is not None else 0

    def learn_one(self, feedback: Feedback) -> None:
        self.titles.add(feedback.title_id)
        self.events += 1
        if self.beside is None:
            self.loop.learn(feedback.user_id, feedback, f"{feedback.user_id}|{feedback.title_id}|{self.events}")

    def learn_search(self, search: Search) -> None:
        self.events += 1
        if self.beside is None:
            self.loop.learn_search(search.user_id, search, f"{search.user_id}|search|{self.events}")

    def score(self, user_id: str) -> np.ndarray:
        table, size = self.loop.table, len(self.loop.table)
        if len(self.positions) < size:  # the job's new titles into the (possibly shared) index
            added = [self.titles.add(title_id) for title_id in table.ids[len(self.positions):]]
            self.positions = np.concatenate([self.positions, np.array(added, dtype=np.int64)])
        user = self.loop.users.get(user_id) or UserModel()
        candidates = table.described[:size].copy() if table.catalog else np.ones(size, dtype=bool)
        for title in user.recent:
            candidates[table.positions[title]] = False
        parts = self.loop.scores(user_id)
        found = weighted(without_neural(parts) if self.beside else parts, self.loop.weights(user_id, self.blends),
                         table.popularity[:size] > 0, candidates)
        blended = np.sum(list(found.values()), axis=0) if found else np.zeros(size)
        if table.catalog:  # as top_picks: a title the catalog does not describe is never picked
            blended = np.where(table.described[:size], blended, -np.inf)
        scores = np.full(len(self.titles), -np.inf if table.catalog else 0.0)
        scores[self.positions] = blended
        return scores

    def predict_one(self, user_id: str, title_id: str) -> float | None:
        return self.loop.predict_rating(user_id, title_id)
