"""The models split for a streaming job: a user side keyed by user, an item side keyed by title.

Why the split, and how item vectors stay consistent at any parallelism:

* Each user's state (:class:`UserModel`: rating and implicit vectors, bias, last
  titles, recent event ids) lives only on the subtask that owns the user; each
  title's state (:class:`ItemModel`) only on the subtask that owns the title.
* On a user's event the user side takes one SGD step for the user, using the item
  vectors it holds, and sends the item half of that step to the title's owner as an
  :class:`ItemStep` (the user's vector before the step and the gradient
  coefficient), with an id made from the event id. The item side applies each step
  id once (a redelivered event never moves an item twice) and is the only writer of
  its title's vectors.
* Every ``publish_ms`` the item side publishes each changed title as an absolute,
  versioned :class:`ItemVectors` (vectors, touches, top-K similar titles) to the
  model-updates topic; the user side holds the newest version per title in
  broadcast state (an older version never replaces a newer one). Nothing travels as
  a delta, so replays and duplicates are harmless.

Staleness bound: a user step sees a title's vectors as of at most ``publish_ms`` plus
one Kafka hop ago (about 0.3 s here), at parallelism 1 as at N. The user side and the
published vectors are the model state; both are checkpointed (keyed and broadcast
state) and snapshotted to Cassandra for warm starts.
"""

from __future__ import annotations

import math
import sys
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from operator import itemgetter
from typing import Any, Literal, Protocol

import numpy as np

from connectors.state import Versioned
from jobs.dedupe import classify, content_fingerprint, id_hash, remember
from jobs.models.base import Feedback, Recommender, Search, TitleIndex
from jobs.models.search import terms

StepKind = Literal["rating", "implicit", "cowatch"]
MODEL_VERSION = "online-mf-cf-v1"  # what the vectors mean: bump when LearningConfig's meaning changes


@dataclass(frozen=True)
class LearningConfig:
    """Hyperparameters shared by both sides (the offline models' defaults, see :mod:`jobs.models.mf`)."""

    rating_factors: int = 16
    implicit_factors: int = 32
    rating_learning_rate: float = 0.01
    rating_regularization: float = 0.05
    bias_learning_rate: float = 0.04
    bias_shrinkage: float = 3.0
    mean_rating: float = 3.53  # a prior: the global mean is shared state we do not synchronize
    implicit_learning_rate: float = 0.05
    implicit_regularization: float = 0.01
    negatives: int = 3
    window: int = 20
    neighbors: int = 50
    recent_event_ids: int = 32
    order: int = 3  # transitions: a new title follows each of the user's last `order` titles
    fade: float = 0.5  # ... the j-th back counting fade ** j
    content_decay: float = 0.98  # the user's content profile fades by this per title touched
    content_dimensions: int = 32  # metadata hashed into this many buckets (64 offline; 32 keeps state < 1 KiB)
    searches: int = 3  # the user's last searches kept (5 offline), each at most search_chars of its words
    search_chars: int = 40
    # the neural sequence model (jobs/models/neural.py, its offline defaults), trained by the job's trainer
    neural_dimensions: int = 64
    neural_length: int = 10  # ... over the member's last this many titles
    neural_batch: int = 4
    neural_negatives: int = 256
    neural_learning_rate: float = 0.1


def initial_vector(key: str, factors: int, salt: str) -> np.ndarray:
    """The starting vector of a user or title: the same on every subtask and after every restart."""
    return np.random.default_rng(id_hash(f"{salt}:{key}")).normal(0.0, 0.1, factors).astype(np.float32)


@dataclass
class ItemVectors(Versioned):
    """A title's model state as published (absolute and versioned): what the user side and the rows job hold."""

    title_id: str
    version: int
    rating_vector: np.ndarray
    rating_bias: float
    implicit_vector: np.ndarray
    implicit_bias: float
    touches: float = 0.0
    neighbors: tuple[tuple[str, float], ...] = ()
    updated_ms: int = 0
    successors: tuple[tuple[str, float], ...] = ()  # what users watch next after this title, with shares

    @classmethod
    def initial(cls, title_id: str, config: LearningConfig) -> ItemVectors:
        return cls(title_id, 0, initial_vector(title_id, config.rating_factors, "item-rating"), 0.0,
                   initial_vector(title_id, config.implicit_factors, "item-implicit"), 0.0)

    # Pickled into keyed and broadcast state on every step: vectors as raw float32 bytes and
    # a flat tuple are about 10x faster to (un)pickle than numpy arrays in a dataclass.
    STATE_VERSION = 2

    def state_fields(self) -> tuple[Any, ...]:
        return (self.title_id, self.version, _packed(self.rating_vector), self.rating_bias,
                _packed(self.implicit_vector), self.implicit_bias, self.touches, self.neighbors, self.updated_ms,
                self.successors)

    def restore(self, fields: tuple[Any, ...]) -> None:
        (self.title_id, self.version, rating, self.rating_bias, implicit, self.implicit_bias, self.touches,
         self.neighbors, self.updated_ms, self.successors) = fields
        self.rating_vector, self.implicit_vector = _unpacked(rating), _unpacked(implicit)

    @staticmethod
    def _from_field_dict(fields: tuple[Any, ...]) -> tuple[Any, ...]:
        """Version 0, the field dict with numpy vectors (before flat pickles) -> version 1."""
        (d,) = fields
        return (d["title_id"], d["version"], _packed(d["rating_vector"]), d["rating_bias"],
                _packed(d["implicit_vector"]), d["implicit_bias"], d["touches"], d["neighbors"], d["updated_ms"])


def _packed(vector: np.ndarray) -> bytes:
    return vector.astype(np.float32).tobytes()


def _unpacked(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype=np.float32).copy()


@dataclass(frozen=True)
class ItemStep:
    """The item half of one learning step, sent to the title's owner."""

    title_id: str
    step_id: str  # event id + role: applied once
    kind: StepKind
    user_vector: np.ndarray | None = None  # the user's vector before the step
    gradient: float = 0.0
    cowatched: tuple[str, ...] = ()  # titles to count as watched together with this one
    cowatched_touches: tuple[float, ...] = ()  # their touches as the user side knew them (normalization)
    touched: bool = False  # the user touched this title (not a sampled negative or a neighbour's update)
    time_ms: int = 0
    follows: float = 0.0  # transitions: the (single) co-watched title followed this one, with this weight


@dataclass
class UserModel(Versioned):
    """One user's model state (keyed state on the user side): under 1 KiB pickled (``tests/unit``)."""

    rating_vector: np.ndarray | None = None
    rating_bias: float = 0.0
    ratings: int = 0
    implicit_vector: np.ndarray | None = None
    recent: list[str] = field(default_factory=list)
    # recent event ids -> their content (jobs.dedupe), as SEEN_KEY_BITS of the id's hash -> SEEN_CONTENT_BITS
    # of the content's: one 64-bit word each, so that the state stays under 1 KiB
    seen: dict[int, int] = field(default_factory=dict)
    version: int = 0  # feedback applied
    last_event_id: str = ""
    updated_ms: int = 0  # event time of the newest feedback applied
    flush_armed: int = 0  # when the job's flush timer for this user was armed (0: none; True in older state)
    profile: np.ndarray | None = None  # content profile: decayed sum of touched titles' metadata vectors
    searches: list[tuple[int, str]] = field(default_factory=list)  # (event time, query words), oldest first

    STATE_VERSION = 3
    MIGRATIONS = {1: lambda fields: (*fields, b"", []),  # version 1 had no content profile and no searches
                  2: lambda fields: (*fields[:5], _ids_without_content(fields[5]), *fields[6:])}

    def state_fields(self) -> tuple[Any, ...]:
        def packed(vector: np.ndarray | None, dtype: Any = np.float32) -> bytes:
            return b"" if vector is None else vector.astype(dtype).tobytes()

        # the content profile is a direction (scored by cosine): half precision is plenty, and saves 128 B
        return (packed(self.rating_vector), self.rating_bias, self.ratings, packed(self.implicit_vector),
                self.recent, np.array([(key << SEEN_CONTENT_BITS) | content for key, content in self.seen.items()],
                                      dtype=np.uint64).tobytes(),
                self.version, self.last_event_id,
                self.updated_ms, self.flush_armed, packed(self.profile, np.float16), self.searches)

    def restore(self, fields: tuple[Any, ...]) -> None:
        def unpacked(raw: bytes, dtype: Any = np.float32) -> np.ndarray | None:
            return np.frombuffer(raw, dtype=dtype).astype(np.float32) if raw else None

        (rating, self.rating_bias, self.ratings, implicit, self.recent, seen, self.version, self.last_event_id,
         self.updated_ms, self.flush_armed, profile, self.searches) = fields
        self.rating_vector, self.implicit_vector = unpacked(rating), unpacked(implicit)
        self.profile = unpacked(profile, np.float16)
        content_mask = (1 << SEEN_CONTENT_BITS) - 1
        self.seen = {int(word) >> SEEN_CONTENT_BITS: int(word) & content_mask
                     for word in np.frombuffer(seen, dtype=np.uint64)}

    @property
    def clock_ms(self) -> int:
        """The user's own newest event time (feedback or search): what their searches fade against."""
        return max(self.updated_ms, self.searches[-1][0] if self.searches else 0)

    def has_seen(self, event_id: str) -> bool:
        """Whether an event with this id was applied recently (its content aside)."""
        return id_hash(event_id) >> SEEN_CONTENT_BITS in self.seen


SEEN_KEY_BITS, SEEN_CONTENT_BITS = 40, 24  # two ids collide about once in 10^12 pairs; content once in 1.7e7


def _ids_without_content(seen: bytes) -> bytes:
    """Version 2 -> 3: the remembered 64-bit id hashes as 40-bit keys whose content is unknown (any matches)."""
    keep = ~np.uint64((1 << SEEN_CONTENT_BITS) - 1)
    return (np.frombuffer(seen, dtype=np.uint64) & keep).tobytes()


def seen_key(event_hash: int) -> int:
    """A remembered id's key from a 64-bit id hash (as the user_vectors table keeps them), or a key as is."""
    return event_hash >> SEEN_CONTENT_BITS if event_hash >> SEEN_KEY_BITS else event_hash


def learn_user(user: UserModel, user_id: str, feedback: Feedback, event_id: str,
               items: Mapping[str, ItemVectors], titles: Sequence[str], config: LearningConfig) -> list[ItemStep]:
    """Apply ``feedback`` to the user's state with the item vectors held; return the item halves of the steps.

    Returns ``[]`` for a redelivery (:mod:`jobs.dedupe`: the same id and feedback; another feedback under a used
    id is learned, its steps under an id qualified by its content). ``titles`` are the titles negatives are
    sampled from.
    """
    applied_as = _first_delivery(user, event_id, feedback, config)
    if applied_as is None:
        return []
    event_id = applied_as  # what the item side applies each step under (once)
    user.updated_ms = max(user.updated_ms, feedback.time_ms)
    item = items.get(feedback.title_id) or ItemVectors.initial(feedback.title_id, config)
    steps: list[ItemStep] = []
    if feedback.rating is not None:
        steps.append(_rating_step(user, user_id, feedback, event_id, item, config))
    if feedback.weight > 0:
        steps += _implicit_steps(user, user_id, feedback, event_id, item, items, titles, config)
        if feedback.title_id not in user.recent:  # a new title in the window: co-watched with the others
            window = tuple(user.recent)
            touches = tuple(_touches(items, title) for title in window)
            steps.append(ItemStep(feedback.title_id, f"{event_id}:cowatch", "cowatch", cowatched=window,
                                  cowatched_touches=touches, touched=True, time_ms=feedback.time_ms))
            own = (_touches(items, feedback.title_id) + 1.0,)
            # the last `order` titles also learn that this one followed them (transitions)
            follows = _follows(len(window), config.fade, config.order)
            steps += [ItemStep(other, f"{event_id}:cowatch:{n}", "cowatch", cowatched=(feedback.title_id,),
                               cowatched_touches=own, time_ms=feedback.time_ms, follows=follows[n])
                      for n, other in enumerate(window)]
            user.recent = [*window, feedback.title_id][-config.window:]
    return steps


def is_redelivery(user: UserModel, event_id: str, signal: Feedback | Search) -> bool:
    """Whether ``signal`` under ``event_id`` was learned already (the same id and content)."""
    return not classify(user.seen, event_id, content_fingerprint(signal, SEEN_CONTENT_BITS), SEEN_KEY_BITS).applies


def _first_delivery(user: UserModel, event_id: str, signal: Feedback | Search, config: LearningConfig) -> str | None:
    """Mark the event applied; the id it is applied under, ``None`` (nothing changed) for a redelivery."""
    delivery = classify(user.seen, event_id, content_fingerprint(signal, SEEN_CONTENT_BITS), SEEN_KEY_BITS)
    if not delivery.applies:
        return None
    remember(user.seen, delivery)
    if len(user.seen) > config.recent_event_ids:  # the newest stay
        del user.seen[next(iter(user.seen))]
    user.version += 1
    user.last_event_id = event_id
    return delivery.apply_id


def learn_content(user: UserModel, feedback: Feedback, title_vector: np.ndarray | None,
                  config: LearningConfig) -> None:
    """Fold a touched title's metadata vector into the user's content profile (after :func:`learn_user`).

    >>> user = UserModel()
    >>> learn_content(user, Feedback("u", "m1", 0, 1.0), np.array([1.0, 0.0], dtype=np.float32), LearningConfig())
    >>> learn_content(user, Feedback("u", "m2", 0, 0.5), np.array([0.0, 1.0], dtype=np.float32), LearningConfig())
    >>> [round(float(v), 2) for v in user.profile]
    [0.98, 0.5]
    """
    if title_vector is None or feedback.weight <= 0:
        return
    if user.profile is None or len(user.profile) != len(title_vector):  # first touch, or the hashing changed
        user.profile = np.zeros(len(title_vector), dtype=np.float32)
    user.profile *= config.content_decay
    user.profile += feedback.weight * title_vector


def learn_search(user: UserModel, search: Search, event_id: str, config: LearningConfig) -> bool:
    """Keep the search's words among the user's last ``config.searches``; ``False`` for a redelivery.

    >>> user = UserModel()
    >>> learn_search(user, Search("u", "Star Wars!", 1_000), "e1", LearningConfig()), user.searches
    (True, [(1000, 'star wars')])
    >>> learn_search(user, Search("u", "Star Wars!", 1_000), "e1", LearningConfig())
    False
    """
    if _first_delivery(user, event_id, search, config) is None:
        return False
    words = " ".join(sorted(terms(search.query), key=search.query.lower().find))
    if len(words) > config.search_chars:  # the first words, none cut off
        words = words[:config.search_chars + 1].rsplit(" ", 1)[0]
    if words:
        user.searches = sorted([*user.searches, (search.time_ms, words)])[-config.searches:]
    return True


def steps_by_title(steps: Sequence[ItemStep]) -> list[tuple[str, list[ItemStep]]]:
    """One message per title instead of one per step (a rating event sends its title up to five).

    >>> steps = [ItemStep("m1", "e:rating", "rating"), ItemStep("m2", "e:neg:0", "implicit"),
    ...          ItemStep("m1", "e:pos:0", "implicit")]
    >>> [(title, [s.step_id for s in group]) for title, group in steps_by_title(steps)]
    [('m1', ['e:rating', 'e:pos:0']), ('m2', ['e:neg:0'])]
    """
    grouped: dict[str, list[ItemStep]] = {}
    for step in steps:
        grouped.setdefault(step.title_id, []).append(step)
    return list(grouped.items())


def _touches(items: Mapping[str, ItemVectors], title_id: str) -> float:
    vectors = items.get(title_id)
    return vectors.touches if vectors is not None else 0.0


RATING_LOW, RATING_HIGH = 1.0, 5.0  # the stars
MAX_FACTOR_NORM = 10.0  # a rating factor vector's longest: far past what 1-5 stars need, short of overflow


def bounded(vector: np.ndarray, longest: float = MAX_FACTOR_NORM) -> None:
    """Shrink ``vector`` in place to length ``longest`` at most: the user and title vectors of the rating model
    update each other, and without a bound a long stream can feed that loop until it overflows (MovieLens-1M
    size did, at about 300,000 ratings).

    >>> v = np.array([30.0, 40.0]); bounded(v); v.tolist()
    [6.0, 8.0]
    """
    norm = float(np.linalg.norm(vector))
    if norm > longest:
        vector *= longest / norm


def _rating_step(user: UserModel, user_id: str, feedback: Feedback, event_id: str, item: ItemVectors,
                 config: LearningConfig) -> ItemStep:
    if user.rating_vector is None:
        user.rating_vector = initial_vector(user_id, config.rating_factors, "user-rating")
    vector = user.rating_vector
    assert feedback.rating is not None
    # against the prediction as served (within the stars), so one wild prediction cannot make a wild step
    error = feedback.rating - min(RATING_HIGH, max(RATING_LOW, config.mean_rating + user.rating_bias
                                                    + item.rating_bias + float(vector @ item.rating_vector)))
    user.ratings += 1
    bias_rate = max(config.bias_learning_rate, 1.0 / (user.ratings + config.bias_shrinkage))
    user.rating_bias += bias_rate * (error - config.rating_regularization * user.rating_bias)
    before = vector.copy()
    vector += config.rating_learning_rate * (error * item.rating_vector - config.rating_regularization * vector)
    bounded(vector)
    return ItemStep(feedback.title_id, f"{event_id}:rating", "rating", before, error, time_ms=feedback.time_ms)


def _implicit_steps(user: UserModel, user_id: str, feedback: Feedback, event_id: str, positive: ItemVectors,
                    items: Mapping[str, ItemVectors], titles: Sequence[str], config: LearningConfig) -> list[ItemStep]:
    if user.implicit_vector is None:
        user.implicit_vector = initial_vector(user_id, config.implicit_factors, "user-implicit")
    vector = user.implicit_vector
    rng = np.random.default_rng(id_hash(event_id))  # the same negatives if the event is replayed
    rate, reg = config.implicit_learning_rate * feedback.weight, config.implicit_regularization
    steps = []
    candidates = [titles[int(n)] for n in rng.integers(0, len(titles), config.negatives)] if titles else []
    for n, title_id in enumerate(candidates):
        if title_id == feedback.title_id:
            continue
        negative = items.get(title_id) or ItemVectors.initial(title_id, config)
        difference = positive.implicit_vector - negative.implicit_vector
        margin = float(vector @ difference) + positive.implicit_bias - negative.implicit_bias
        gradient = 1.0 / (1.0 + math.exp(min(margin, 50.0)))
        before = vector.copy()
        vector += rate * (gradient * difference - reg * vector)
        steps.append(ItemStep(feedback.title_id, f"{event_id}:pos:{n}", "implicit", before,
                              gradient * feedback.weight, time_ms=feedback.time_ms))
        steps.append(ItemStep(title_id, f"{event_id}:neg:{n}", "implicit", before,
                              -gradient * feedback.weight, time_ms=feedback.time_ms))
    return steps


class CowatchRow(Protocol):
    """Other title -> (times co-watched, its touches): a dict here, a MapState in the job."""

    def get(self, key: str) -> tuple[float, float] | None: ...

    def __setitem__(self, key: str, value: tuple[float, float]) -> None: ...


@dataclass
class ItemModel(Versioned):
    """One title's state on the item side (keyed by title), bar its co-watch row.

    The co-watch row (:data:`CowatchRow`, up to one entry per title) is kept apart, in
    the job a MapState, so that a step reads and writes only the entries it changes.
    """

    vectors: ItemVectors
    applied: bytes = b""  # 64-bit hashes of recent step ids, packed
    ratings: int = 0
    dirty: bool = False
    # the best neighbour candidates, co-watch count / sqrt(their touches), at most 3 x config.neighbors:
    # kept as steps arrive, so publishing never reads the whole row (the title's own touches scale every
    # candidate alike and do not change the order)
    candidates: dict[str, float] = field(default_factory=dict)
    snapshot_at_ms: int = 0  # when the vectors were last written to the snapshot table (the job's throttle)
    snapshot_pending: bool = False
    # transitions: the titles that followed this one (faded by distance), at most 3 x config.neighbors
    successors: dict[str, float] = field(default_factory=dict)
    followed: float = 0.0  # the total weight of everything that followed, kept ones or not (shares)
    # the successors as last published, until they change (most steps leave them): not state, a cache
    published_successors: tuple[tuple[str, float], ...] | None = field(default=None, repr=False, compare=False)

    def has_applied(self, key: int) -> bool:
        """Whether ``key`` is one of the packed hashes (a byte search in C, kept to 8-byte boundaries)."""
        packed = key.to_bytes(8, sys.byteorder)  # as numpy packs a uint64 here
        at = self.applied.find(packed)
        while at != -1:
            if at % 8 == 0:
                return True
            at = self.applied.find(packed, at + 1)
        return False

    STATE_VERSION = 2

    def state_fields(self) -> tuple[Any, ...]:  # read and written for every step: kept flat (see ItemVectors)
        return (self.vectors.__getstate__(), self.applied, self.ratings, self.dirty,
                tuple(self.candidates), tuple(self.candidates.values()), self.snapshot_at_ms, self.snapshot_pending,
                tuple(self.successors), tuple(self.successors.values()), self.followed)

    def restore(self, fields: tuple[Any, ...]) -> None:
        (vectors, self.applied, self.ratings, self.dirty, others, scores, self.snapshot_at_ms,
         self.snapshot_pending, following, weights, self.followed) = fields
        self.vectors = ItemVectors.__new__(ItemVectors)
        self.vectors.__setstate__(vectors)  # the vectors' own version, read by their own codec
        self.candidates = dict(zip(others, scores, strict=True))
        self.successors = dict(zip(following, weights, strict=True))
        self.published_successors = None

    @staticmethod
    def _from_field_dict(fields: tuple[Any, ...]) -> tuple[Any, ...]:
        """Version 0, the field dict (vectors as an object) -> version 1."""
        (d,) = fields
        candidates = d.get("candidates", {})
        return (d["vectors"].__getstate__(), d["applied"], d["ratings"], d["dirty"], tuple(candidates),
                tuple(candidates.values()), d.get("snapshot_at_ms", 0), d.get("snapshot_pending", False))


ItemVectors.MIGRATIONS = {0: ItemVectors._from_field_dict,
                          1: lambda fields: (*fields, ())}  # version 1 had no successors
ItemModel.MIGRATIONS = {0: ItemModel._from_field_dict,
                        1: lambda fields: (*fields, (), (), 0.0)}  # version 1 had no transitions


@lru_cache(maxsize=256)
def _follows(window: int, fade: float, order: int) -> tuple[float, ...]:
    """How much each of the last ``window`` titles learns that the next one followed it (the newest most, only
    the last ``order``): the same for every event with a window that long."""
    return tuple(fade ** (window - 1 - n) if window - n <= order else 0.0 for n in range(window))


def apply_step(item: ItemModel, step: ItemStep, config: LearningConfig, cowatch: CowatchRow,
               memory: int = 128) -> bool:
    """Apply one item step once (co-watch counts into ``cowatch``); ``False`` for a step id already applied."""
    key = id_hash(step.step_id)
    if item.has_applied(key):
        return False
    item.applied = (item.applied + key.to_bytes(8, sys.byteorder))[-8 * memory:]
    vectors = item.vectors
    if step.kind == "rating" and step.user_vector is not None:
        item.ratings += 1
        reg = config.rating_regularization
        bias_rate = max(config.bias_learning_rate, 1.0 / (item.ratings + config.bias_shrinkage))
        vectors.rating_bias += bias_rate * (step.gradient - reg * vectors.rating_bias)
        vectors.rating_vector += config.rating_learning_rate * (step.gradient * step.user_vector
                                                                - reg * vectors.rating_vector)
        bounded(vectors.rating_vector)
    elif step.kind == "implicit" and step.user_vector is not None:
        rate, reg = config.implicit_learning_rate, config.implicit_regularization
        vectors.implicit_vector += rate * (step.gradient * step.user_vector - reg * vectors.implicit_vector)
        vectors.implicit_bias += rate * (step.gradient - reg * vectors.implicit_bias)
    elif step.kind == "cowatch":
        for other, touches in zip(step.cowatched, step.cowatched_touches or (0.0,) * len(step.cowatched),
                                  strict=True):
            count, known = cowatch.get(other) or (0.0, 0.0)
            count, known = count + 1.0, max(known, touches)
            cowatch[other] = (count, known)
            item.candidates[other] = count / math.sqrt(max(known, 1.0))
            _keep_best(item.candidates, 2 * config.neighbors)
            if step.follows > 0:
                item.successors[other] = item.successors.get(other, 0.0) + step.follows
                item.followed += step.follows
                item.published_successors = None
                _keep_best(item.successors, 2 * config.neighbors)
        vectors.touches += 1.0 if step.touched else 0.0
    vectors.version += 1
    vectors.updated_ms = max(vectors.updated_ms, step.time_ms)
    item.dirty = True
    return True


def _keep_best(scores: dict[str, float], keep: int) -> None:
    """Cut ``scores`` back to its ``keep`` best once it holds half as many again (amortized: one sort per
    ``keep / 2`` insertions, where dropping the minimum on every insertion cost most of the item side).

    >>> scores = {f"t{n}": float(n) for n in range(7)}
    >>> _keep_best(scores, 4); sorted(scores)
    ['t3', 't4', 't5', 't6']
    """
    if len(scores) > keep + keep // 2:
        best = _best(scores, keep)
        scores.clear()
        scores.update(best)


def _best(scores: dict[str, float], keep: int) -> list[tuple[str, float]]:
    """The ``keep`` highest scores, ties by name.

    Sorts keyed in C, several times faster than one keyed by a Python function (this was
    most of publishing): by score, then only the head that can be kept (the ``keep``
    best and any tied with the last of them) by name and stably by score again.

    >>> _best({"b": 1.0, "a": 1.0, "c": 2.0, "d": 0.5}, 2)
    [('c', 2.0), ('a', 1.0)]
    """
    ranked = sorted(scores.items(), key=itemgetter(1), reverse=True)
    end = min(keep, len(ranked))
    if 0 < end < len(ranked):
        edge = ranked[end - 1][1]
        while end < len(ranked) and ranked[end][1] == edge:  # ties with the last kept one compete by name
            end += 1
    head = ranked[:end]
    head.sort(key=itemgetter(0))
    head.sort(key=itemgetter(1), reverse=True)  # stable: equal scores stay in name order
    return head[:keep]


def _rounded(pairs: list[tuple[str, float]], scale: float) -> tuple[tuple[str, float], ...]:
    """Each score / ``scale``, to 6 decimals (numpy's rounding, one call instead of one per pair)."""
    if not pairs:
        return ()
    values = np.round(np.array([score for _, score in pairs]) / scale, 6).tolist()
    return tuple(zip([name for name, _ in pairs], values, strict=True))


def publish(item: ItemModel, config: LearningConfig) -> ItemVectors:
    """A copy of the title's absolute vectors with its top-K neighbours (cosine of co-watching), to publish.

    The other titles' touches are the newest the user side had published when it sent the
    co-watch (a little stale at most); a title's own touches are exact here.
    """
    own = math.sqrt(max(item.vectors.touches, 1.0))
    best = _best(item.candidates, config.neighbors)
    if item.published_successors is None:
        item.published_successors = _rounded(_best(item.successors, config.neighbors), item.followed)
    item.dirty = False
    return replace(item.vectors, neighbors=_rounded(best, own), successors=item.published_successors,
                   rating_vector=item.vectors.rating_vector.copy(),
                   implicit_vector=item.vectors.implicit_vector.copy())


class LocalLoop:
    """Both sides in one process, published vectors lagging by ``publish_every`` events.

    What the streaming job does, without Kafka: for tests, and for ``nextwatch eval``
    to measure what the staleness of published item vectors costs. ``publish_every=1``
    and ``flush_every=1`` are a job whose item vectors are never stale; the job's item
    steps wait for their user's flush (``flush_every``) and are then published
    (``publish_every``).

    >>> loop = LocalLoop(publish_every=1)
    >>> for n, (user, title) in enumerate([("a", "m1"), ("a", "m2"), ("b", "m1")]):
    ...     loop.learn(user, Feedback(user, title, n, 1.0), f"e{n}")
    >>> loop.similar_titles("m1")
    ['m2']
    >>> loop.recommend("b", k=1, exclude={"m1"})
    ['m2']
    """

    def __init__(self, config: LearningConfig | None = None, publish_every: int = 1, flush_every: int = 1) -> None:
        self.config = config or LearningConfig()
        self.publish_every, self.flush_every = publish_every, flush_every
        self.users: dict[str, UserModel] = {}
        self.items: dict[str, ItemModel] = {}
        self.cowatch: dict[str, dict[str, tuple[float, float]]] = {}
        self.published: dict[str, ItemVectors] = {}  # what the user side holds (broadcast state)
        self.titles: list[str] = []
        self.events = 0
        # a user's item steps wait for their flush, ``flush_every`` events after the first of them
        self.held: dict[str, list[ItemStep]] = {}
        self.due: deque[tuple[int, str]] = deque()

    def learn(self, user_id: str, feedback: Feedback, event_id: str) -> None:
        user = self.users.setdefault(user_id, UserModel())
        steps = learn_user(user, user_id, feedback, event_id, self.published, self.titles, self.config)
        if steps and user_id not in self.held:
            self.held[user_id] = []
            self.due.append((self.events + self.flush_every, user_id))
        self.held.get(user_id, []).extend(steps)
        self.events += 1
        while self.due and self.due[0][0] <= self.events:
            self._apply(self.held.pop(self.due.popleft()[1]))
        if self.events % self.publish_every == 0:
            self.publish()

    def _apply(self, steps: list[ItemStep]) -> None:
        for step in steps:
            item = self.items.get(step.title_id)
            if item is None:
                item = self.items[step.title_id] = ItemModel(ItemVectors.initial(step.title_id, self.config))
                self.titles.append(step.title_id)
            apply_step(item, step, self.config, self.cowatch.setdefault(step.title_id, {}))

    def publish(self) -> None:
        for title, item in self.items.items():
            if item.dirty:
                self.published[title] = publish(item, self.config)

    def similar_titles(self, title_id: str, k: int = 10) -> list[str]:
        vectors = self.published.get(title_id)
        return [other for other, _ in vectors.neighbors[:k]] if vectors else []

    def cf_scores(self, user_id: str) -> dict[str, float]:
        user = self.users.get(user_id)
        return cf_scores(user, self.published) if user else {}

    def recommend(self, user_id: str, k: int = 10, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
        return top_titles(self.cf_scores(user_id), k, exclude)

    def predict_rating(self, user_id: str, title_id: str) -> float:
        return predict_rating(self.users.get(user_id), self.published.get(title_id), self.config)


def cf_scores(user: UserModel, items: Mapping[str, ItemVectors], recency: float = 0.9) -> dict[str, float]:
    """Item-item CF from the published neighbour lists of the user's last titles (recent ones count more)."""
    scores: dict[str, float] = {}
    for age, title in enumerate(reversed(user.recent)):
        vectors = items.get(title)
        weight = recency ** age
        for other, similarity in (vectors.neighbors if vectors else ()):
            scores[other] = scores.get(other, 0.0) + weight * similarity
    return scores


def top_titles(scores: Mapping[str, float], k: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
    return sorted((t for t in scores if t not in exclude), key=lambda t: (-scores[t], t))[:k]


def predict_rating(user: UserModel | None, item: ItemVectors | None, config: LearningConfig) -> float:
    prediction = config.mean_rating + (user.rating_bias if user else 0.0)
    if item is not None:
        prediction += item.rating_bias
        if user is not None and user.rating_vector is not None:
            prediction += float(user.rating_vector @ item.rating_vector)
    return min(RATING_HIGH, max(RATING_LOW, prediction))


def in_evaluation_sample(user_id: str, share: float) -> bool:
    """Whether the member is in the in-job evaluation's sample: the same answer on every subtask and run.

    >>> in_evaluation_sample("u1", 1.0), in_evaluation_sample("u1", 0.0)
    (True, False)
    >>> round(sum(in_evaluation_sample(f"u{n}", 0.05) for n in range(20_000)) / 20_000, 2)
    0.05
    """
    return share >= 1.0 or zlib.crc32(user_id.encode()) < share * 2**32


@dataclass
class OnlineEvaluation:
    """Test-then-train inside the job, before each learning step, from what the user side holds.

    * RMSE of every rating, predicted before the rating is learned;
    * next-title Recall@k: whenever a user touches a title that is not among their last
      titles, was it in the top ``k`` of the item-item CF over the published neighbour
      lists (leaving out those last titles)? A proxy of ``nextwatch eval``'s Recall@10
      (which ranks positives at their first event over the whole catalog), cheap enough
      to run per event.

    With ``blend_hit`` (whether the job's blend of all eight signals, leaving out the
    given titles, has the touched title in its top ``k``) the same touches are also tested
    against the blend: ``blend_hits``.

    Feedback older than the newest the user has had applied arrived out of order (a
    backfill reads the three topics one partition after another): the model has
    already learned what came after it, so testing on it would leak. It is counted in
    ``out_of_order`` and not tested; that share says how far the metrics can be trusted.
    """

    k: int = 10
    squared_error: float = 0.0
    ratings: int = 0
    touches: int = 0
    hits: int = 0
    blend_hits: int = 0
    out_of_order: int = 0

    def observe(self, user: UserModel, feedback: Feedback, items: Mapping[str, ItemVectors],
                config: LearningConfig, blend_hit: Callable[[set[str]], bool] | None = None) -> None:
        if feedback.time_ms < user.updated_ms:
            self.out_of_order += 1
            return
        if feedback.rating is not None:
            self.squared_error += (predict_rating(user, items.get(feedback.title_id), config) - feedback.rating) ** 2
            self.ratings += 1
        if feedback.weight > 0 and user.recent and feedback.title_id not in user.recent:
            self.touches += 1
            recent = set(user.recent)
            self.hits += feedback.title_id in top_titles(cf_scores(user, items), self.k, recent)
            if blend_hit is not None:
                self.blend_hits += blend_hit(recent)

    @property
    def rmse(self) -> float:
        return math.sqrt(self.squared_error / self.ratings) if self.ratings else 0.0

    @property
    def recall(self) -> float:
        return self.hits / self.touches if self.touches else 0.0

    @property
    def blend_recall(self) -> float:
        return self.blend_hits / self.touches if self.touches else 0.0


class LoopRecommender(Recommender):
    """A :class:`LocalLoop` behind the :class:`Recommender` contract, so ``nextwatch eval`` can measure it.

    Scores are the loop's item-item CF over published neighbour lists; ratings its rating MF.
    """

    def __init__(self, publish_every: int = 1, titles: TitleIndex | None = None) -> None:
        super().__init__(titles)
        self.publish_every = publish_every
        self.loop = LocalLoop(publish_every=publish_every)

    def _params(self) -> dict[str, Any]:
        return {"publish_every": self.publish_every}

    def learn_one(self, feedback: Feedback) -> None:
        self.titles.add(feedback.title_id)
        event_id = f"{feedback.user_id}|{feedback.title_id}|{feedback.time_ms}|{self.loop.events}"
        self.loop.learn(feedback.user_id, feedback, event_id)

    def score(self, user_id: str) -> np.ndarray:
        scores = np.zeros(len(self.titles))
        for title_id, value in self.loop.cf_scores(user_id).items():
            position = self.titles.positions.get(title_id)
            if position is not None:
                scores[position] = value
        return scores

    def predict_one(self, user_id: str, title_id: str) -> float:
        return self.loop.predict_rating(user_id, title_id)
