"""How a built homepage is presented: explore slots, artwork per title, and each row's token.

:func:`jobs.homepage.rows.build_homepage` builds the rows in the order the row-order
policy chose (:class:`jobs.exploration.policies.RowOrderPolicy`); :func:`present` then
replaces a bounded share of each recommended row's slots with less-known titles
(never Continue Watching's, never a title the rules hide or the page already shows),
picks each title's artwork for the member, and writes each row's presentation token:
the policy versions and the probability of every choice, which impressions echo back
for learning and off-policy evaluation.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from connectors.events import CatalogItem
from connectors.state import Versioned, field_defaults, fields_from_dict
from jobs.context import context_bucket, weekday
from jobs.exploration.policies import (
    ArtworkPolicy,
    ContextBoost,
    ContextPlayModel,
    MemberArtwork,
    OrderDecision,
    RowOrderPolicy,
    ThemeHistory,
    context_features,
    explore_slots,
)
from jobs.exploration.rewards import Outcome, PresentationToken
from jobs.homepage.rows import (
    HomepageSettings,
    Item,
    Row,
    SharedSignals,
    UserSignals,
    build_homepage,
    row_order,
)
from jobs.homepage.rules import Viewer, showable

FIXED_ROWS = ("continue_watching",)  # not ordered by the policy, not explored: what the member left off


def row_kind(row_id: str) -> str:
    """``because_you_watched:<title>`` -> ``because_you_watched``; ``genre:<g>`` -> ``genre``."""
    return row_id.partition(":")[0]


@dataclass(frozen=True)
class Presenter:
    """The choices of one homepage build and the sources they draw on."""

    decision: OrderDecision  # the row order, and how likely it was
    artwork: MemberArtwork  # this member's artwork chooser
    variants: Callable[[str], Sequence[tuple[str, Sequence[str]]]]  # title -> (artwork id, themes)
    less_known: Sequence[str]  # exploration candidates, least shown first
    allowed: Callable[[str], bool]  # the rules (availability, maturity, completed) for an explored title
    explore_share: float
    rng: random.Random
    version: str  # the policies' versions, as the token carries them
    explore_after: int = 1  # explored titles go only in this slot and later ones
    experiments: tuple[str, ...] = ()  # experiment:variant labels the page is built under, for every token


def present(rows: Sequence[Row], presenter: Presenter) -> list[Row]:
    on_page = {item.title_id for row in rows for item in row.items}
    candidates = [t for t in presenter.less_known if t not in on_page and presenter.allowed(t)]
    out = []
    for row in rows:
        kind = row_kind(row.row_id)
        if kind in FIXED_ROWS:
            slots = [(item, 1.0, False) for item in row.items]
            row_propensity = 1.0
        else:
            chosen = explore_slots([i.title_id for i in row.items], candidates, presenter.explore_share,
                                   presenter.rng, protect_first=presenter.explore_after)
            by_title = {i.title_id: i for i in row.items}
            slots = []
            for slot in chosen:
                item = by_title.get(slot.title_id) or Item(slot.title_id, 0.0, "exploring")
                slots.append((item, slot.propensity, slot.explored))
            explored = {slot.title_id for slot in chosen if slot.explored}
            candidates = [t for t in candidates if t not in explored]  # each title once per page
            row_propensity = presenter.decision.position_propensities.get(kind, 1.0)
        items, propensities, flags = [], [], []
        for item, slot_propensity, explored_slot in slots:
            variants = presenter.variants(item.title_id)
            if variants:
                art = presenter.artwork.choose(variants, presenter.rng)
                item = replace(item, artwork_id=art.artwork_id)
                slot_propensity *= art.propensity
                explored_slot = explored_slot or art.explored
            items.append(item)
            propensities.append(max(slot_propensity, 1e-9))
            flags.append(explored_slot)
        token = PresentationToken(presenter.version, row_propensity, tuple(propensities), tuple(flags),
                                  presenter.experiments)
        out.append(Row(row.row_id, row.title, tuple(items), token.encode()))
    return out


ROW_KINDS = ("top_picks", "because_you_watched", "new_for_you", "trending", "genre")  # ordered by the policy


@dataclass
class HomepagePolicies:
    """The policies one rows-job subtask serves with (held in memory; rewards teach them)."""

    order: RowOrderPolicy
    artwork: ArtworkPolicy
    explore_share: float = 0.05
    plays: ContextPlayModel = field(default_factory=ContextPlayModel)
    context_weight: float = 0.1  # Top Picks: score + weight x the context's boost x the best pick's score
    explore_after: int = 1  # explored titles never displace a row's first slots

    @property
    def version(self) -> str:
        return f"{self.order.version}+{self.artwork.version}"


def contextual_picks(picks: Sequence[tuple[str, float, str]], boost: ContextBoost,
                     catalog: Mapping[str, CatalogItem], weight: float) -> tuple[tuple[str, float, str], ...]:
    """Top Picks re-ranked for the context: what is played here and now rises, by a learned effect.

    >>> from jobs.exploration.policies import ContextPlayModel
    >>> picks = (("long", 1.0, "item_cf"), ("short", 1.0, "item_cf"))
    >>> contextual_picks(picks, ContextPlayModel().for_context("late_night:tv", "tue"), {}, 0.1) == picks
    True
    """
    if not picks or weight == 0:
        return tuple(picks)
    top = max(abs(score) for _, score, _ in picks) or 1.0
    scored = []
    for title_id, score, reason in picks:
        item = catalog.get(title_id)
        effect = boost(item.runtime_minutes, item.genres) if item else 0.0
        scored.append((title_id, score + weight * effect * top, reason))  # the effect on the picks' own scale
    return tuple(sorted(scored, key=lambda pick: -pick[1]))


def presented_homepage(user: UserSignals, shared: SharedSignals, viewer: Viewer, bucket: str, weekday_name: str,
                       settings: HomepageSettings, policies: HomepagePolicies, rng: random.Random,
                       themes: ThemeHistory | None = None, experiments: tuple[str, ...] = ()) -> list[Row]:
    """Choose the row order, build the rows in it, then explore, pick artwork and write each row's token
    (with the ``experiment:variant`` labels the page is built under).

    >>> from jobs.homepage.rows import SharedSignals, UserSignals
    >>> from jobs.homepage.rules import Viewer
    >>> policies = HomepagePolicies(RowOrderPolicy(ROW_KINDS, epsilon=0.0), ArtworkPolicy(epsilon=0.0))
    >>> presented_homepage(UserSignals(), SharedSignals(catalog={}), Viewer("u1"), "evening:tv", "mon",
    ...                    HomepageSettings(), policies, random.Random(1))
    []
    """
    features = context_features(bucket, weekday_name, user.genre_affinity)
    default = [kind for kind in row_order(bucket) if kind in ROW_KINDS]
    decision = policies.order.choose(features, rng, default=default)
    catalog = shared.catalog
    boost = policies.plays.for_context(bucket, weekday_name)
    user = replace(user, top_picks=contextual_picks(user.top_picks, boost, catalog, policies.context_weight))
    rows = build_homepage(user, shared, viewer, bucket, settings, order=decision.order)

    def variants(title_id: str) -> list[tuple[str, Sequence[str]]]:
        item = catalog.get(title_id)
        return [(a.artwork_id, a.themes) for a in item.artwork] if item else []

    def allowed(title_id: str) -> bool:
        return title_id not in user.completed and showable(catalog.get(title_id), viewer)

    artwork = policies.artwork.for_member(user.genre_affinity, themes or ThemeHistory())
    presenter = Presenter(decision, artwork, variants, shared.less_known, allowed, policies.explore_share, rng,
                          policies.version, policies.explore_after, experiments)
    return present(rows, presenter)


@dataclass(frozen=True)
class Lesson:
    """One thing the shared policy models learn from one outcome (what the policy learner receives)."""

    model: str  # "order" (then ``kind`` names the row kind's model), "artwork" or "plays"
    features: dict[str, float]
    label: bool
    kind: str = ""


def lessons_from_outcomes(outcomes: Sequence[Outcome], member: MemberContext, catalog: Mapping[str, CatalogItem],
                          order_kinds: Sequence[str] = ROW_KINDS) -> list[Lesson]:
    """What a member's outcomes teach; the member's own artwork history learns at once (it is theirs).

    Row order learns from rows the logged policy served (a token), one reward per row: was
    anything in it clicked or played. Artwork learns from every shown item whose variant
    the catalog describes: was it clicked. The context play model learns from every shown
    title the catalog describes: was it played. The context is the member's at the impression.
    """
    lessons: list[Lesson] = []
    rows: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        rows.setdefault(outcome.impression_id, []).append(outcome)
        item = catalog.get(outcome.title_id)
        if item is None:
            continue
        day = weekday(outcome.shown_ms, member.utc_offset_minutes)
        when = context_bucket(outcome.shown_ms, member.utc_offset_minutes, member.device_class)
        lessons.append(Lesson("plays", ContextPlayModel.features(when, day, item.runtime_minutes, item.genres),
                              outcome.played))
        themes = next((a.themes for a in item.artwork if a.artwork_id == outcome.artwork_id), None)
        if themes:
            lessons.append(Lesson("artwork", ArtworkPolicy.features(member.genre_affinity, themes), outcome.clicked))
            member.themes.record(themes, outcome.clicked)
    for shown in rows.values():
        first = shown[0]
        kind = row_kind(first.row_id)
        if first.policy_version and kind in order_kinds:
            bucket = context_bucket(first.shown_ms, member.utc_offset_minutes, member.device_class)
            features = context_features(bucket, weekday(first.shown_ms, member.utc_offset_minutes),
                                        member.genre_affinity)
            lessons.append(Lesson("order", features, any(o.clicked or o.played for o in shown), kind))
    return lessons


def apply_lessons(policies: HomepagePolicies, lessons: Sequence[Lesson]) -> int:
    """Teach the shared models; returns how many lessons were applied (unknown row kinds are skipped)."""
    applied = 0
    for lesson in lessons:
        if lesson.model == "order":
            model = policies.order.models.get(lesson.kind)
            if model is None:
                continue
            model.learn_one(lesson.features, lesson.label)
        elif lesson.model == "artwork":
            policies.artwork.model.learn_one(lesson.features, lesson.label)
        elif lesson.model == "plays":
            policies.plays.model.learn_one(lesson.features, lesson.label)
        else:
            continue
        applied += 1
    return applied


def learn_from_outcomes(outcomes: Sequence[Outcome], policies: HomepagePolicies, member: MemberContext,
                        catalog: Mapping[str, CatalogItem]) -> int:
    """Lessons from a member's outcomes, applied at once (in one process; the job routes them to its learner)."""
    return apply_lessons(policies, lessons_from_outcomes(outcomes, member, catalog, policies.order.kinds))


def policy_snapshot(policies: HomepagePolicies) -> dict[str, object]:
    """The shared models as JSON-able state: what the policy-updates topic carries."""
    return {"order": {kind: model.to_state() for kind, model in policies.order.models.items()},
            "artwork": policies.artwork.model.to_state(), "plays": policies.plays.model.to_state()}


def load_snapshot(policies: HomepagePolicies, snapshot: Mapping[str, object]) -> None:
    """Serve with the models of ``snapshot`` (row kinds it does not know keep their current model).

    >>> from jobs.exploration.policies import ArtworkPolicy, RowOrderPolicy
    >>> taught = HomepagePolicies(RowOrderPolicy(ROW_KINDS), ArtworkPolicy())
    >>> taught.order.learn_one({"daypart:evening": 1.0}, "trending", 1.0)
    >>> fresh = HomepagePolicies(RowOrderPolicy(ROW_KINDS), ArtworkPolicy())
    >>> load_snapshot(fresh, policy_snapshot(taught))
    >>> fresh.order.scores({"daypart:evening": 1.0}) == taught.order.scores({"daypart:evening": 1.0})
    True
    """
    order = snapshot.get("order") or {}
    for kind, state in dict(order).items():  # type: ignore[call-overload]
        if kind in policies.order.models:
            policies.order.models[kind].load_state(state)
    if snapshot.get("artwork"):
        policies.artwork.model.load_state(snapshot["artwork"])  # type: ignore[arg-type]
    if snapshot.get("plays"):
        policies.plays.model.load_state(snapshot["plays"])  # type: ignore[arg-type]


@dataclass(frozen=True)
class MemberContext:
    """What learning from a member's outcomes needs of the member."""

    genre_affinity: Mapping[str, float]
    themes: ThemeHistory  # the member's own, updated in place
    utc_offset_minutes: int
    device_class: str


POLICY_SET = "homepage"  # the key of the homepage policies on the policy-updates topic


@dataclass(frozen=True)
class PublishedPolicies(Versioned):
    """A policy-updates record, decoded: the shared models at ``version`` (lessons applied so far)."""

    name: str
    version: int
    models: Mapping[str, object]


@dataclass
class PolicyLearnerState(Versioned):
    """The policy learner's keyed state: the shared models, how many lessons they hold, a publish pending."""

    policies: HomepagePolicies
    version: int = 0
    armed: bool = False

    def adopt(self, published: PublishedPolicies) -> bool:
        """Start from a published snapshot newer than what is held (a restart without a checkpoint)."""
        if published.version <= self.version:
            return False
        load_snapshot(self.policies, published.models)
        self.version = published.version
        return True

    def learn(self, lessons: Sequence[Lesson]) -> int:
        applied = apply_lessons(self.policies, lessons)
        self.version += applied
        return applied


# version 0: their field dicts, before they wrote a version (the policies inside are part of the learner's shape)
PublishedPolicies.MIGRATIONS = {0: fields_from_dict(("name", "version", "models"), field_defaults(PublishedPolicies))}
PolicyLearnerState.MIGRATIONS = {0: fields_from_dict(("policies", "version", "armed"),
                                                     field_defaults(PolicyLearnerState))}
