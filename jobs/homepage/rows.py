"""A member's homepage: rows of titles built from features and models, filtered, de-duplicated, re-ranked.

Pure and Flink-free. :func:`build_homepage` takes what is known of one user
(:class:`UserSignals`: continue watching, completed titles, recent strong watches,
the learning job's top picks, genre affinities, content profile), what is shared by
everyone (:class:`SharedSignals`: catalog, similar titles, trending, popularity) and
who is looking (:class:`~jobs.homepage.rules.Viewer`, the context bucket), and
returns the rows in display order:

* **Continue Watching**: in-progress titles, most recent first;
* **Because You Watched <title>**: titles similar to each of the last strongly
  watched titles (one row per anchor);
* **Top Picks for You**: the learning job's blend of every signal;
* **New for You**: titles added in the last ``new_days`` days, by the cosine of their
  metadata with the user's content profile (the cold start of new titles);
* **Trending Now**: trending in the viewer's context bucket, else overall (the cold
  start of new users);
* **genre rows**: the user's top genres (popular titles of each; the most watched
  genres for a new user).

Every row goes through the same rules (:mod:`jobs.homepage.rules`): only titles
showable to the viewer, never a completed title outside Continue Watching, each title
once on the page (the first row that has it keeps it), at most ``items_per_row``.
Two controls, each a parameter (their effect on quality is for a benchmark still to come; the unit
tests check each moves what it controls):
``diversity`` re-ranks a row by maximal marginal relevance over genres, and
``popularity_penalty`` lowers a title's score by its popularity percentile.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from connectors.events import CatalogItem
from jobs.homepage.rules import Viewer, showable

_DAY_MS = 86_400_000


@dataclass(frozen=True)
class Item:
    """One title in a row: its score in that row, the artwork to show and why it is there."""

    title_id: str
    score: float
    reason: str
    artwork_id: str = ""


@dataclass(frozen=True)
class Row:
    row_id: str  # stable: continue_watching, because_you_watched:<title_id>, top_picks, trending, genre:<g>, ...
    title: str  # as displayed
    items: tuple[Item, ...]
    token: str = ""  # the presentation token (jobs.exploration): how the row and its items were chosen


@dataclass(frozen=True)
class InProgressTitle:
    title_id: str
    position_ms: int
    duration_ms: int
    last_watched_ms: int


@dataclass(frozen=True)
class UserSignals:
    """What is known of one user (the rows job's keyed state)."""

    continue_watching: tuple[InProgressTitle, ...] = ()
    completed: frozenset[str] = frozenset()
    anchors: tuple[str, ...] = ()  # recently and strongly watched titles, newest first
    top_picks: tuple[tuple[str, float, str], ...] = ()  # (title, score, reason), the learning job's, best first
    genre_affinity: Mapping[str, float] = field(default_factory=dict)
    profile: np.ndarray | None = None  # content profile (the learning job's), for New for You


@dataclass(frozen=True)
class SharedSignals:
    """What every homepage draws on (the rows job's broadcast state and caches).

    ``by_genre`` and ``newest`` are indexes over the catalog kept with it
    (:func:`catalog_indexes`), so a homepage never scans the catalog.
    """

    catalog: Mapping[str, CatalogItem]
    similar: Mapping[str, Sequence[tuple[str, float]]] = field(default_factory=dict)  # best first
    trending: Mapping[str, Sequence[str]] = field(default_factory=dict)  # scope -> titles, best first
    popularity: Mapping[str, float] = field(default_factory=dict)  # title -> percentile in [0, 1]
    content: Mapping[str, np.ndarray] = field(default_factory=dict)  # title -> unit metadata vector
    by_genre: Mapping[str, Sequence[str]] = field(default_factory=dict)  # genre -> titles, most popular first
    newest: Sequence[tuple[int, str]] = ()  # (available from, title), newest first
    less_known: Sequence[str] = ()  # the least-played titles, least first: exploration candidates


def least_played(catalog: Mapping[str, CatalogItem], popularity: Mapping[str, float], count: int = 300) -> list[str]:
    """The ``count`` catalog titles with the lowest popularity percentile (never played first).

    >>> from connectors.events import Availability
    >>> catalog = {t: CatalogItem(t, 0, t, 90, "ALL", Availability(0)) for t in "abc"}
    >>> least_played(catalog, {"a": 0.9, "b": 0.1}, 2)
    ['c', 'b']
    """
    return sorted(catalog, key=lambda t: (popularity.get(t, -1.0), t))[:count]


def catalog_indexes(catalog: Mapping[str, CatalogItem],
                    popularity: Mapping[str, float]) -> tuple[dict[str, list[str]], list[tuple[int, str]]]:
    """``by_genre`` and ``newest`` for :class:`SharedSignals`, rebuilt when the catalog or popularity moves.

    >>> from connectors.events import Availability
    >>> catalog = {t: CatalogItem(t, 0, t, 90, "ALL", Availability(n), genres=["Drama"]) for n, t in enumerate("abc")}
    >>> catalog_indexes(catalog, {"b": 0.9, "c": 0.5})
    ({'Drama': ['b', 'c', 'a']}, [(2, 'c'), (1, 'b'), (0, 'a')])
    """
    by_genre: dict[str, list[str]] = {}
    for title_id in sorted(catalog, key=lambda t: (-popularity.get(t, 0.0), t)):
        for genre in catalog[title_id].genres:
            by_genre.setdefault(genre, []).append(title_id)
    newest = sorted(((item.availability.available_from_ms, t) for t, item in catalog.items()), reverse=True)
    return by_genre, newest


@dataclass(frozen=True)
class HomepageSettings:
    items_per_row: int = 20
    because_you_watched: int = 2  # rows, one per anchor
    genre_rows: int = 2
    new_days: int = 30
    diversity: float = 0.3  # 0: rows by relevance alone; 1: by novelty of genres alone
    popularity_penalty: float = 0.1  # score - penalty x popularity percentile

    def __post_init__(self) -> None:
        if self.items_per_row < 1 or self.because_you_watched < 0 or self.genre_rows < 0 or self.new_days < 1:
            raise ValueError("items_per_row and new_days must be >= 1, row counts >= 0")
        if not 0 <= self.diversity <= 1 or not 0 <= self.popularity_penalty <= 1:
            raise ValueError(f"diversity and popularity_penalty must be in [0, 1], got {self.diversity}, "
                             f"{self.popularity_penalty}")


# Row order by context (the next issue learns it per user and context): on a phone, short sessions
# pick up where they left off and browse what is trending; on a TV or the web, the picks lead.
DEFAULT_ORDER = ("continue_watching", "top_picks", "because_you_watched", "new_for_you", "trending", "genre")
MOBILE_ORDER = ("continue_watching", "trending", "top_picks", "because_you_watched", "new_for_you", "genre")


def row_order(bucket: str) -> tuple[str, ...]:
    """The row kinds in display order for a context bucket (``daypart:device``).

    >>> row_order("evening:tv")[:2], row_order("morning:mobile")[:2]
    (('continue_watching', 'top_picks'), ('continue_watching', 'trending'))
    """
    return MOBILE_ORDER if bucket.endswith(":mobile") else DEFAULT_ORDER


def diversified(items: Sequence[Item], genres: Mapping[str, frozenset[str]], diversity: float,
                k: int) -> list[Item]:
    """Maximal marginal relevance: each next item maximizes (1 - d) x relevance - d x genre overlap.

    Relevance is the score min-max scaled within the row; overlap is the largest Jaccard
    similarity of the item's genres with those already chosen.

    >>> genres = {"a": frozenset({"Drama"}), "b": frozenset({"Drama"}), "c": frozenset({"Comedy"})}
    >>> items = [Item("a", 1.0, ""), Item("b", 0.9, ""), Item("c", 0.8, "")]
    >>> [i.title_id for i in diversified(items, genres, 0.0, 3)]
    ['a', 'b', 'c']
    >>> [i.title_id for i in diversified(items, genres, 0.5, 3)]  # c's other genre beats b's higher score
    ['a', 'c', 'b']
    """
    if diversity <= 0 or len(items) <= 1:
        return list(items[:k])
    scores = np.array([i.score for i in items], dtype=np.float64)
    spread = scores.max() - scores.min()
    relevance = (scores - scores.min()) / spread if spread > 0 else np.ones(len(items))
    # every pair's genre Jaccard at once (genres one-hot, one matrix product): each step is then a row lookup
    sets = [genres.get(i.title_id, frozenset()) for i in items]
    names = {g: n for n, g in enumerate(sorted(set().union(*sets)))}
    onehot = np.zeros((len(items), max(len(names), 1)))
    for row, found in enumerate(sets):
        onehot[row, [names[g] for g in found]] = 1.0
    sizes = onehot.sum(axis=1)
    shared = onehot @ onehot.T
    union = sizes[:, None] + sizes[None, :] - shared
    jaccard = np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)
    value = (1 - diversity) * relevance
    overlap = np.zeros(len(items))
    chosen: list[int] = []
    for _ in range(min(k, len(items))):
        best = int(np.argmax(value - diversity * overlap))  # the first of equals: ties keep the row's order
        chosen.append(best)
        value[best] = -np.inf
        np.maximum(overlap, jaccard[best], out=overlap)
    return [items[n] for n in chosen]


POOL_FACTOR = 3  # a re-ranked row draws on up to this many times its length of allowed candidates


class _Page:
    """Rows as they are built: the rules and the de-duplication in one place."""

    def __init__(self, user: UserSignals, shared: SharedSignals, viewer: Viewer, settings: HomepageSettings) -> None:
        self.user, self.shared, self.viewer, self.settings = user, shared, viewer, settings
        self.shown: set[str] = set()
        self.rows: list[Row] = []
        self._genres: dict[str, frozenset[str]] = {}

    def genres(self, title_id: str) -> frozenset[str]:
        found = self._genres.get(title_id)
        if found is None:
            item = self.shared.catalog.get(title_id)
            found = self._genres[title_id] = frozenset(item.genres) if item else frozenset()
        return found

    def allowed(self, title_id: str) -> bool:
        return (title_id not in self.shown and title_id not in self.user.completed
                and showable(self.shared.catalog.get(title_id), self.viewer))

    def add(self, row_id: str, title: str, candidates: Sequence[Item], rerank: bool = True) -> None:
        settings = self.settings
        # the first allowed occurrence of each title, up to a pool the re-ranking can draw from: a row
        # never needs more (rows are rebuilt on every event, so the work per row is bounded)
        pool = settings.items_per_row * (POOL_FACTOR if rerank else 1)
        kept: list[Item] = []
        seen: set[str] = set()
        for item in candidates:
            if item.title_id in seen or not self.allowed(item.title_id):
                continue
            seen.add(item.title_id)
            kept.append(item)
            if len(kept) >= pool:
                break
        if rerank:
            penalty = settings.popularity_penalty
            if penalty:
                kept = [Item(i.title_id, i.score - penalty * self.shared.popularity.get(i.title_id, 0.0), i.reason,
                             i.artwork_id) for i in kept]
                kept.sort(key=lambda i: -i.score)
            kept = diversified(kept, {i.title_id: self.genres(i.title_id) for i in kept}, settings.diversity,
                               settings.items_per_row)
        kept = [Item(i.title_id, round(i.score, 6), i.reason, i.artwork_id or self.artwork(i.title_id))
                for i in kept[:settings.items_per_row]]
        if kept:
            self.shown.update(i.title_id for i in kept)
            self.rows.append(Row(row_id, title, tuple(kept)))

    def artwork(self, title_id: str) -> str:
        item = self.shared.catalog.get(title_id)
        return item.artwork[0].artwork_id if item and item.artwork else ""

    def name(self, title_id: str) -> str:
        item = self.shared.catalog.get(title_id)
        return item.title if item else title_id


def _continue_watching(page: _Page) -> None:
    entries = sorted(page.user.continue_watching, key=lambda e: (-e.last_watched_ms, e.title_id))
    page.add("continue_watching", "Continue Watching",
             [Item(e.title_id, round(e.position_ms / max(e.duration_ms, 1), 4), "in progress") for e in entries],
             rerank=False)  # most recent first, as left


def _because_you_watched(page: _Page) -> None:
    made = 0
    for anchor in page.user.anchors:
        if made >= page.settings.because_you_watched:
            break
        similar = page.shared.similar.get(anchor, ())
        before = len(page.rows)
        page.add(f"because_you_watched:{anchor}", f"Because You Watched {page.name(anchor)}",
                 [Item(t, s, f"similar to {anchor}") for t, s in similar if t != anchor])
        made += len(page.rows) > before


def _top_picks(page: _Page) -> None:
    page.add("top_picks", "Top Picks for You",
             [Item(t, s, f"top pick: {reason}") for t, s, reason in page.user.top_picks])


def _new_for_you(page: _Page) -> None:
    since = page.viewer.now_ms - page.settings.new_days * _DAY_MS
    newest = itertools.takewhile(lambda pair: pair[0] >= since, page.shared.newest)  # newest first: stop early
    fresh = [t for _, t in itertools.islice(newest, 10 * page.settings.items_per_row)]
    profile = page.user.profile
    if profile is not None and profile.any():
        unit = profile / float(np.linalg.norm(profile))
        scored = [(t, float(page.shared.content[t] @ unit)) for t in fresh
                  if t in page.shared.content and len(page.shared.content[t]) == len(unit)]
        reason = "new, like what you watch"
    else:  # a new user: the newest popular titles
        scored = [(t, page.shared.popularity.get(t, 0.0)) for t in fresh]
        reason = "new"
    scored.sort(key=lambda pair: (-pair[1], pair[0]))
    page.add("new_for_you", "New for You", [Item(t, s, reason) for t, s in scored])


def _trending(page: _Page, bucket: str) -> None:
    ranked = page.shared.trending.get(f"context:{bucket}") or page.shared.trending.get("global", ())
    page.add("trending", "Trending Now", [Item(t, 1.0 / (n + 1), "trending") for n, t in enumerate(ranked)])


def _genres(page: _Page) -> None:
    affinity = page.user.genre_affinity
    if affinity:
        top = sorted(affinity, key=lambda g: (-affinity[g], g))
    else:  # a new user: the genres with the most trending titles
        counts: dict[str, int] = {}
        for title in page.shared.trending.get("global", ()):
            for genre in page.genres(title):
                counts[genre] = counts.get(genre, 0) + 1
        top = sorted(counts, key=lambda g: (-counts[g], g))
    for genre in top[:page.settings.genre_rows]:
        ranked = [*page.shared.trending.get(f"genre:{genre}", ()),
                  *page.shared.by_genre.get(genre, ())[:5 * page.settings.items_per_row]]
        page.add(f"genre:{genre}", genre, [Item(t, 1.0 / (n + 1), f"genre {genre}") for n, t in enumerate(ranked)])


def build_homepage(user: UserSignals, shared: SharedSignals, viewer: Viewer, bucket: str,
                   settings: HomepageSettings | None = None, order: Sequence[str] | None = None) -> list[Row]:
    """The homepage's rows in display order for ``bucket`` (``daypart:device``, :mod:`jobs.context`).

    ``order``: the row kinds after Continue Watching, as a row-order policy chose them
    (:mod:`jobs.exploration.policies`); the device's default order when not given.
    """
    page = _Page(user, shared, viewer, settings or HomepageSettings())
    # Rows are built in display order, so a title shows in the first row that has it. Continue
    # Watching is built first whatever the order: an in-progress title belongs there.
    _continue_watching(page)
    for kind in order if order is not None else row_order(bucket):
        if kind == "because_you_watched":
            _because_you_watched(page)
        elif kind == "top_picks":
            _top_picks(page)
        elif kind == "new_for_you":
            _new_for_you(page)
        elif kind == "trending":
            _trending(page, bucket)
        elif kind == "genre":
            _genres(page)
    return page.rows
