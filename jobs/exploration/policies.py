"""Bandit policies for the homepage: row order, artwork, explore slots, and context effects on plays.

Every choice is made with a known probability (its propensity), which the presentation
token carries and impressions echo back, so that off-policy evaluation
(:mod:`jobs.exploration.ope`) can judge a candidate policy from what was served.
Exploration is epsilon-greedy throughout: the greedy choice with probability
``1 - epsilon``, a uniformly random one otherwise, which makes every propensity exact
and never zero. The reward models are online logistic regressions over context
features (daypart, device, weekend, the member's genre affinities), learned one reward
at a time in river's shape (:class:`OnlineLogistic`).

>>> rng = random.Random(7)
>>> policy = RowOrderPolicy(("top_picks", "trending", "genre"), epsilon=0.1)
>>> for _ in range(300):  # in the evening on a TV, members click Trending far more than the rest
...     policy.learn_one(context_features("evening:tv", "sat"), "trending", 1.0)
...     policy.learn_one(context_features("evening:tv", "sat"), "top_picks", 0.0)
>>> decision = policy.choose(context_features("evening:tv", "sat"), rng)
>>> decision.order[0], round(decision.propensity, 3)
('trending', 0.917)
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import permutations

from connectors.state import Versioned, field_defaults, fields_from_dict
from jobs.context import DAYPARTS

Features = dict[str, float]

WEEKEND = ("sat", "sun")


def context_features(bucket: str, weekday: str, genre_affinity: Mapping[str, float] | None = None,
                     top_genres: int = 3) -> Features:
    """The context a policy sees: daypart, device class, weekend, and the member's strongest genres.

    >>> context_features("late_night:mobile", "sun", {"Drama": 0.9, "Horror": 0.1}, top_genres=1)
    {'daypart:late_night': 1.0, 'device:mobile': 1.0, 'weekend': 1.0, 'genre:Drama': 0.9}
    """
    daypart, _, device = bucket.partition(":")
    features: Features = {f"daypart:{daypart}": 1.0, f"device:{device}": 1.0}
    if weekday in WEEKEND:
        features["weekend"] = 1.0
    for genre, weight in sorted((genre_affinity or {}).items(), key=lambda kv: (-kv[1], kv[0]))[:top_genres]:
        features[f"genre:{genre}"] = float(weight)
    return features


class OnlineLogistic:
    """Logistic regression by SGD with L2, in river's ``learn_one`` / ``predict_proba_one`` shape.

    Not river's own: ``river.linear_model`` imports ``scipy.stats``, and that import
    never returned inside a thread-mode PyFlink operator here (the rows job's task hung
    in INITIALIZING). The weights are a plain dict, so the model pickles small and the
    hot path reads them directly. The step is constant: rewards drift (new rows, new artwork), so old
    evidence should fade.

    >>> model = OnlineLogistic(step=0.5)
    >>> for _ in range(200):
    ...     model.learn_one({"evening": 1.0}, True)
    ...     model.learn_one({"morning": 1.0}, False)
    >>> model.predict_proba_one({"evening": 1.0})[True] > 0.9 > 0.1 > model.predict_proba_one({"morning": 1.0})[True]
    True
    """

    def __init__(self, step: float = 0.1, l2: float = 1e-4) -> None:
        if step <= 0 or l2 < 0:
            raise ValueError(f"step must be > 0 and l2 >= 0, got {step}, {l2}")
        self.step, self.l2 = step, l2
        self.weights: dict[str, float] = {}
        self.intercept = 0.0

    def logit(self, features: Features) -> float:
        weights = self.weights
        return self.intercept + sum(weights.get(name, 0.0) * value for name, value in features.items())

    def predict_proba_one(self, features: Features) -> dict[bool, float]:
        p = _sigmoid(self.logit(features))
        return {True: p, False: 1 - p}

    def to_state(self) -> list[object]:
        """[intercept, weights]: what a policy snapshot carries (JSON-able)."""
        return [self.intercept, dict(self.weights)]

    def load_state(self, state: Sequence[object]) -> None:
        intercept, weights = state
        self.intercept = float(intercept)  # type: ignore[arg-type]
        self.weights = {str(k): float(v) for k, v in dict(weights).items()}  # type: ignore[call-overload]

    def learn_one(self, features: Features, label: bool) -> None:
        gradient = _sigmoid(self.logit(features)) - float(label)
        self.intercept -= self.step * gradient
        weights = self.weights
        for name, value in features.items():
            weight = weights.get(name, 0.0)
            weights[name] = weight - self.step * (gradient * value + self.l2 * weight)


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


@dataclass(frozen=True)
class OrderDecision:
    order: tuple[str, ...]  # row kinds, top first
    propensity: float  # the probability of this whole order
    position_propensities: dict[str, float]  # per row kind: the probability it was put where it is
    explored: bool


class RowOrderPolicy:
    """Epsilon-greedy row order: rows sorted by each kind's click probability in this context.

    One logistic model per row kind over the context features, learned from impressions
    of that row (reward 1 for a click or a play from it, else 0).
    """

    def __init__(self, kinds: Sequence[str], epsilon: float = 0.1, version: str = "rows-eg-1") -> None:
        if len(set(kinds)) != len(kinds) or len(kinds) < 1:
            raise ValueError(f"row kinds must be distinct and non-empty, got {list(kinds)}")
        if not 0 <= epsilon <= 1:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.kinds, self.epsilon, self.version = tuple(kinds), epsilon, version
        self.models = {kind: OnlineLogistic() for kind in self.kinds}

    def scores(self, features: Features) -> dict[str, float]:
        """Each row kind's click log-odds in this context (their order is the greedy row order)."""
        return {kind: self.models[kind].logit(features) for kind in self.kinds}

    def greedy(self, features: Features, default: Sequence[str] | None = None) -> tuple[str, ...]:
        """Kinds by score; equal scores keep ``default``'s order (the device's default: a new model's order)."""
        scores = self.scores(features)
        rank = {kind: n for n, kind in enumerate(default or self.kinds)}
        return tuple(sorted(self.kinds, key=lambda kind: (-scores[kind], rank.get(kind, len(rank)))))

    def choose(self, features: Features, rng: random.Random, default: Sequence[str] | None = None) -> OrderDecision:
        greedy = self.greedy(features, default)
        explored = rng.random() < self.epsilon
        order = tuple(rng.sample(self.kinds, len(self.kinds))) if explored else greedy
        n = len(self.kinds)
        propensity = self.epsilon / math.factorial(n) + (1 - self.epsilon) * (order == greedy)
        positions = {kind: self.epsilon / n + (1 - self.epsilon) * (greedy.index(kind) == order.index(kind))
                     for kind in order}
        return OrderDecision(order, propensity, positions, explored)

    def probability(self, features: Features, order: Sequence[str], default: Sequence[str] | None = None) -> float:
        """This policy's probability of serving ``order`` in this context (for off-policy evaluation)."""
        return self.epsilon / math.factorial(len(self.kinds)) + (1 - self.epsilon) * (
            tuple(order) == self.greedy(features, default))

    def learn_one(self, features: Features, kind: str, reward: float) -> None:
        self.models[kind].learn_one(features, reward > 0)


class FixedRowOrder(RowOrderPolicy):
    """The device's default order every time, never explored: the baseline a learned order is tested against.

    It shares the learned policy's models (the outcomes of its pages still teach them) and only ignores them.

    >>> learned = RowOrderPolicy(("top_picks", "trending"), epsilon=0.0)
    >>> learned.learn_one({"daypart:evening": 1.0}, "trending", 1.0)
    >>> fixed = FixedRowOrder(learned)
    >>> fixed.choose({"daypart:evening": 1.0}, random.Random(1), default=("top_picks", "trending")).order
    ('top_picks', 'trending')
    """

    def __init__(self, learned: RowOrderPolicy, version: str = "rows-fixed-1") -> None:
        self.kinds, self.epsilon, self.version, self.models = learned.kinds, 0.0, version, learned.models

    def greedy(self, features: Features, default: Sequence[str] | None = None) -> tuple[str, ...]:
        order = [kind for kind in (default or self.kinds) if kind in self.kinds]
        return (*order, *(kind for kind in self.kinds if kind not in order))


@dataclass
class ThemeHistory(Versioned):
    """One member's clicks and impressions per artwork theme (keyed state: a few counters)."""

    shown: dict[str, float] = field(default_factory=dict)
    clicked: dict[str, float] = field(default_factory=dict)

    def record(self, themes: Sequence[str], clicked: bool, decay: float = 0.98) -> None:
        for counts in (self.shown, self.clicked):  # older evidence fades, so a changed taste shows
            for theme in counts:
                counts[theme] *= decay
        for theme in themes:
            self.shown[theme] = self.shown.get(theme, 0.0) + 1
            if clicked:
                self.clicked[theme] = self.clicked.get(theme, 0.0) + 1

    def log_odds(self, theme: str, prior_clicks: float = 1.0, prior_shown: float = 10.0) -> float:
        """This member's click log-odds on ``theme`` against the prior rate (0 when nothing is known)."""
        rate = (self.clicked.get(theme, 0.0) + prior_clicks) / (self.shown.get(theme, 0.0) + prior_shown)
        prior = prior_clicks / prior_shown
        return math.log(rate / (1 - rate)) - math.log(prior / (1 - prior))


@dataclass(frozen=True)
class ArtworkDecision:
    artwork_id: str
    propensity: float
    explored: bool


class ArtworkPolicy:
    """Epsilon-greedy artwork per member and title: genre affinity x theme (everyone) plus own clicks.

    The shared model learns which themes draw clicks from fans of which genres; each
    member's :class:`ThemeHistory` adds what that member clicked, so a member who keeps
    clicking one theme gets variants with it more often.
    """

    def __init__(self, epsilon: float = 0.1, version: str = "art-eg-1") -> None:
        if not 0 <= epsilon <= 1:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon, self.version = epsilon, version
        self.model = OnlineLogistic()

    @staticmethod
    def features(genre_affinity: Mapping[str, float], themes: Sequence[str]) -> Features:
        crossed = {f"{genre}x{theme}": weight for genre, weight in genre_affinity.items() for theme in themes}
        return {**crossed, **{f"theme:{theme}": 1.0 for theme in themes}}

    def score(self, genre_affinity: Mapping[str, float], history: ThemeHistory, themes: Sequence[str]) -> float:
        return self.model.logit(self.features(genre_affinity, themes)) + sum(
            history.log_odds(theme) for theme in themes)

    def for_member(self, genre_affinity: Mapping[str, float], history: ThemeHistory) -> MemberArtwork:
        """A chooser for one homepage build: each theme's worth to this member is worked out once."""
        return MemberArtwork(self, genre_affinity, history)

    def choose(self, variants: Sequence[tuple[str, Sequence[str]]], genre_affinity: Mapping[str, float],
               history: ThemeHistory, rng: random.Random) -> ArtworkDecision:
        """``variants``: (artwork_id, theme tags) of one title."""
        return self.for_member(genre_affinity, history).choose(variants, rng)

    def learn_one(self, genre_affinity: Mapping[str, float], history: ThemeHistory, themes: Sequence[str],
                  clicked: bool) -> None:
        self.model.learn_one(self.features(genre_affinity, themes), clicked)
        history.record(themes, clicked)


class MemberArtwork:
    """:class:`ArtworkPolicy` for one member and one build.

    The model is linear in its features and every feature involves one theme, so a
    variant's score is the sum of its themes' scores (the intercept is common to all
    variants): a homepage of 160 titles costs a few lookups per variant, not a model
    evaluation each.
    """

    def __init__(self, policy: ArtworkPolicy, genre_affinity: Mapping[str, float], history: ThemeHistory) -> None:
        self.policy, self.genre_affinity, self.history = policy, genre_affinity, history
        self._themes: dict[str, float] = {}

    def theme_score(self, theme: str) -> float:
        found = self._themes.get(theme)
        if found is None:
            weights = self.policy.model.weights
            found = weights.get(f"theme:{theme}", 0.0) + sum(
                weight * weights.get(f"{genre}x{theme}", 0.0) for genre, weight in self.genre_affinity.items())
            found = self._themes[theme] = found + self.history.log_odds(theme)
        return found

    def choose(self, variants: Sequence[tuple[str, Sequence[str]]], rng: random.Random) -> ArtworkDecision:
        if not variants:
            raise ValueError("a title needs at least one artwork variant to choose from")
        scores = [sum(self.theme_score(theme) for theme in themes) for _, themes in variants]
        greedy = max(range(len(variants)), key=lambda n: (scores[n], -n))
        epsilon = self.policy.epsilon
        explored = rng.random() < epsilon
        pick = rng.randrange(len(variants)) if explored else greedy
        propensity = epsilon / len(variants) + (1 - epsilon) * (pick == greedy)
        return ArtworkDecision(variants[pick][0], propensity, explored)


@dataclass(frozen=True)
class Slot:
    title_id: str
    propensity: float
    explored: bool


def explore_slots(ranked: Sequence[str], less_known: Sequence[str], share: float, rng: random.Random,
                  protect_first: int = 1) -> list[Slot]:
    """Replace a bounded share of a row's slots with less-known titles, each slot's propensity recorded.

    The number of explored slots is ``share x n`` rounded up or down at random (so its mean
    is exactly ``share x n`` and it never exceeds the ceiling); which slots, and which
    titles from ``less_known`` (those not already in the row), are uniform. The first
    ``protect_first`` slots keep the ranking.

    >>> slots = explore_slots(["a", "b", "c", "d"], ["x", "y"], 0.25, random.Random(1))
    >>> [s.title_id for s in slots], sum(s.explored for s in slots)
    (['a', 'y', 'c', 'd'], 1)
    """
    if not 0 <= share <= 1:
        raise ValueError(f"the explore share must be in [0, 1], got {share}")
    pool = [t for t in less_known if t not in set(ranked)]
    open_slots = list(range(min(protect_first, len(ranked)), len(ranked)))
    target = share * len(ranked)
    count = min(int(target) + (rng.random() < target - int(target)), len(open_slots), len(pool))
    chosen = set(rng.sample(open_slots, count)) if count else set()
    picks = rng.sample(pool, count) if count else []
    slot_share = count / len(open_slots) if open_slots else 0.0
    out, next_pick = [], iter(picks)
    for position, title in enumerate(ranked):
        if position in chosen:
            out.append(Slot(next(next_pick), slot_share / len(pool), True))
        else:
            out.append(Slot(title, 1.0 - slot_share if position >= protect_first else 1.0, False))
    return out


class ContextBoost:
    """:meth:`ContextPlayModel.boost` for one context and one build, memoized by title kind."""

    def __init__(self, model: ContextPlayModel, bucket: str, weekday: str) -> None:
        self.model, self.bucket, self.weekday = model, bucket, weekday
        self._known: dict[tuple[str, tuple[str, ...]], float] = {}

    def __call__(self, runtime_minutes: int, genres: Sequence[str]) -> float:
        key = (runtime_bucket(runtime_minutes), tuple(genres))
        found = self._known.get(key)
        if found is None:
            found = self._known[key] = self.model.boost(self.bucket, self.weekday, runtime_minutes, genres)
        return found


def runtime_bucket(minutes: int) -> str:
    return "short" if minutes <= 45 else "feature" if minutes <= 130 else "long"


class ContextPlayModel:
    """What is played when: daypart and weekend x runtime and genre, learned from impressions -> plays.

    ``boost`` is the log-odds of a play for this title in this context against the same
    title in an average context, added to the title's score: learned, not a rule (late
    at night short titles rise only if late-night plays say so).
    """

    def __init__(self, step: float = 0.02) -> None:
        # a smaller step than the bandits': plays are many and context effects small, so average more
        self.model = OnlineLogistic(step)

    @staticmethod
    def features(bucket: str, weekday: str, runtime_minutes: int, genres: Sequence[str]) -> Features:
        daypart = bucket.partition(":")[0]
        when = [f"daypart:{daypart}", "weekend" if weekday in WEEKEND else "weekday"]
        what = [f"runtime:{runtime_bucket(runtime_minutes)}", *(f"genre:{g}" for g in genres)]
        return {**{f"{w}x{t}": 1.0 for w in when for t in what}, **{t: 1.0 for t in what}}

    def for_context(self, bucket: str, weekday: str) -> ContextBoost:
        return ContextBoost(self, bucket, weekday)

    def learn_one(self, bucket: str, weekday: str, runtime_minutes: int, genres: Sequence[str], played: bool) -> None:
        self.model.learn_one(self.features(bucket, weekday, runtime_minutes, genres), played)

    def boost(self, bucket: str, weekday: str, runtime_minutes: int, genres: Sequence[str]) -> float:
        """This context's learned effect on the title's play log-odds, against the title's mean over contexts.

        Each part (daypart, weekend) is centred on its mean over the alternatives, because
        the title's score already says how much it is played overall. Only the context
        terms differ between contexts, so this is a few weight lookups, not a prediction.
        """
        weights = self.model.weights
        what = [f"runtime:{runtime_bucket(runtime_minutes)}", *(f"genre:{g}" for g in genres)]

        def terms(when: str) -> float:
            return sum(weights.get(f"{when}x{t}", 0.0) for t in what)

        daypart = terms(f"daypart:{bucket.partition(':')[0]}") - sum(terms(f"daypart:{d}") for d in DAYPARTS) / 4
        week = terms("weekend" if weekday in WEEKEND else "weekday") - (terms("weekend") + terms("weekday")) / 2
        return daypart + week


def all_orders(kinds: Sequence[str]) -> list[tuple[str, ...]]:
    """Every order of ``kinds`` (for evaluating order policies exhaustively on small row sets)."""
    return list(permutations(kinds))


# version 0: its field dict, before it wrote a version
ThemeHistory.MIGRATIONS = {0: fields_from_dict(("shown", "clicked"), field_defaults(ThemeHistory))}
