"""Seeded synthesis shared by the replays: catalog metadata MovieLens lacks, and the
event chain of one viewing (impression -> click -> play -> rating).

Everything synthesized is deterministic given the seed and the ids, and catalog
fields that were made up are listed in ``CatalogItem.synthetic_fields``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from connectors.events import (
    ArtworkVariant,
    Availability,
    BrowseEvent,
    CatalogItem,
    Context,
    CrewMember,
    PlayEvent,
    RatingEvent,
    ShownItem,
)

SYNTHETIC_FIELDS = ["sub_genres", "cast", "directors", "crew", "runtime_minutes", "maturity_rating",
                    "availability", "tags", "synopsis", "artwork"]
_FIRST = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonah", "Kira", "Luis",
          "Maya", "Nikolai", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor", "Wen", "Yara"]
_LAST = ["Abbott", "Baptiste", "Chen", "Dubois", "Eriksen", "Fontaine", "Garcia", "Haddad", "Ito", "Jensen",
         "Kowalski", "Laurent", "Moreau", "Nakamura", "Okafor", "Patel", "Rossi", "Silva", "Tanaka", "Weber"]
_THEMES = {
    "Action": ["action", "explosion", "hero"], "Adventure": ["landscape", "journey", "hero"],
    "Animation": ["animated", "family", "colorful"], "Children's": ["family", "colorful", "kids"],
    "Comedy": ["comedy", "ensemble", "smile"], "Crime": ["dark", "city", "suspense"],
    "Documentary": ["real", "portrait", "landscape"], "Drama": ["portrait", "emotional", "couple"],
    "Fantasy": ["magic", "creature", "landscape"], "Film-Noir": ["dark", "vintage", "city"],
    "Horror": ["dark", "creature", "scream"], "Musical": ["music", "dance", "colorful"],
    "Mystery": ["suspense", "dark", "portrait"], "Romance": ["romance", "couple", "emotional"],
    "Sci-Fi": ["space", "futuristic", "creature"], "Thriller": ["suspense", "action", "dark"],
    "War": ["war", "hero", "landscape"], "Western": ["western", "landscape", "hero"],
}
_MATURITY = {"Children's": "ALL", "Animation": "SEVEN_PLUS", "Horror": "SIXTEEN_PLUS", "Crime": "SIXTEEN_PLUS",
             "Thriller": "THIRTEEN_PLUS", "War": "THIRTEEN_PLUS", "Film-Noir": "THIRTEEN_PLUS"}
_ROWS = ["top_picks", "trending_now", "popular", "new_releases", "because_you_watched", "genre"]


def stable_rng(seed: int, *parts: object) -> random.Random:
    """A generator that depends only on the seed and the given ids (not on call order)."""
    return random.Random(f"{seed}:" + ":".join(map(str, parts)))


def stable_uuid(seed: int, *parts: object) -> str:
    """A UUID-shaped id derived from the seed and parts (uuid5 is 5x slower for the same job)."""
    h = hashlib.blake2b(f"{seed}:{':'.join(map(str, parts))}".encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def runtime_minutes(seed: int, title_id: str) -> int:
    return stable_rng(seed, "runtime", title_id).randint(80, 150)


def artwork_ids(seed: int, title_id: str) -> list[str]:
    count = stable_rng(seed, "artwork-count", title_id).randint(2, 4)
    return [f"{title_id}-art{k}" for k in range(count)]


def synthesize_catalog_item(seed: int, title_id: str, title: str, year: int | None, genres: list[str],
                            updated_time_ms: int, available_from_ms: int) -> CatalogItem:
    rng = stable_rng(seed, "title", title_id)
    themes_pool = sorted({t for g in genres for t in _THEMES.get(g, ["portrait"])}) or ["portrait"]
    artwork = [
        ArtworkVariant(art_id, f"https://art.nextwatch.invalid/{art_id}.jpg",
                       rng.sample(themes_pool, k=min(len(themes_pool), rng.randint(1, 2))))
        for art_id in artwork_ids(seed, title_id)
    ]
    maturity = max((_MATURITY.get(g, "THIRTEEN_PLUS" if g else "ALL") for g in genres), default="ALL",
                   key=["ALL", "SEVEN_PLUS", "THIRTEEN_PLUS", "SIXTEEN_PLUS", "EIGHTEEN_PLUS"].index)
    cast = [f"{rng.choice(_FIRST)} {rng.choice(_LAST)}" for _ in range(rng.randint(2, 5))]
    director = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    lead_genre = genres[0] if genres else "story"
    return CatalogItem(
        title_id=title_id, updated_time_ms=updated_time_ms, title=title,
        runtime_minutes=runtime_minutes(seed, title_id),
        maturity_rating=maturity,  # type: ignore[arg-type]
        availability=Availability(available_from_ms=available_from_ms),
        genres=list(genres), sub_genres=[f"{g} Classics" for g in genres[:1] if year and year < 1980],
        cast=cast, directors=[director],
        crew=[CrewMember(director, "director"), CrewMember(f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", "writer")],
        release_year=year, tags=sorted({t for a in artwork for t in a.themes}),
        synopsis=f"A {lead_genre.lower()} {'classic' if year and year < 1980 else 'film'} starring {cast[0]}.",
        artwork=artwork, synthetic_fields=list(SYNTHETIC_FIELDS), event_id=stable_uuid(seed, "catalog", title_id),
    )


@dataclass
class UserProfile:
    user_id: str
    context: Context


@dataclass
class Viewing:
    """One title a user watches, with what the replay should make of it."""

    user: UserProfile
    title_id: str
    duration_ms: int
    watch_fraction: float
    start_ms: int  # play start
    stars: float | None  # None: no rating follows
    shown_with: list[str] = field(default_factory=list)  # other titles in the impression row
    artwork_ids: dict[str, str] = field(default_factory=dict)
    key: str = ""  # unique id of this viewing, for stable event ids
    due_ms: int = 0  # when the source says it happened (the rating time), before re-timing


HEARTBEAT_MS = 20 * 60 * 1000


def viewing_events(seed: int, v: Viewing, extra_impressions: list[list[str]] | None = None,
                   heartbeat_ms: int = HEARTBEAT_MS) -> list[tuple[int, object]]:
    """The events of one viewing as (event time, event): impression, click, play steps, rating.

    ``extra_impressions`` are rows shown just before, without a click (so CTR stays low).
    """
    rng = stable_rng(seed, "viewing", v.key)
    uid, ctx = v.user.user_id, v.user.context
    out: list[tuple[int, object]] = []
    for n, row in enumerate(extra_impressions or []):
        t = v.start_ms - 60_000 + n * 5_000
        out.append((t, BrowseEvent(
            user_id=uid, event_time_ms=t, context=ctx, action="IMPRESSION", page="home",
            impression_id=stable_uuid(seed, "imp-extra", v.key, n), row_id=_ROWS[(n + 1) % len(_ROWS)],
            row_position=n + 1, event_id=stable_uuid(seed, "ev", v.key, "extra", n),
            items=[ShownItem(t_id, p, v.artwork_ids.get(t_id)) for p, t_id in enumerate(row)],
        )))
    row_titles = list(v.shown_with)
    position = rng.randrange(len(row_titles) + 1)
    row_titles.insert(position, v.title_id)
    impression_id = stable_uuid(seed, "imp", v.key)
    t_imp, t_click = v.start_ms - 20_000, v.start_ms - 8_000
    row_id = rng.choice(_ROWS)
    out.append((t_imp, BrowseEvent(
        user_id=uid, event_time_ms=t_imp, context=ctx, action="IMPRESSION", page="home",
        impression_id=impression_id, row_id=row_id, row_position=0, event_id=stable_uuid(seed, "ev", v.key, "imp"),
        items=[ShownItem(t_id, p, v.artwork_ids.get(t_id)) for p, t_id in enumerate(row_titles)],
    )))
    out.append((t_click, BrowseEvent(
        user_id=uid, event_time_ms=t_click, context=ctx, action="CLICK", page="home", impression_id=impression_id,
        row_id=row_id, row_position=0, title_id=v.title_id, position_in_row=position,
        artwork_id=v.artwork_ids.get(v.title_id), event_id=stable_uuid(seed, "ev", v.key, "click"),
    )))
    playback_id = stable_uuid(seed, "playback", v.key)
    watched = int(v.duration_ms * v.watch_fraction)
    complete = v.watch_fraction >= 0.95

    def play(action: str, offset: int, position_ms: int, step: str) -> None:
        out.append((v.start_ms + offset, PlayEvent(
            user_id=uid, event_time_ms=v.start_ms + offset, context=ctx, title_id=v.title_id,
            action=action,  # type: ignore[arg-type]
            playback_id=playback_id, position_ms=position_ms, duration_ms=v.duration_ms,
            impression_id=impression_id, event_id=stable_uuid(seed, "ev", v.key, step),
        )))

    play("START", 0, 0, "start")
    for k, at in enumerate(range(heartbeat_ms, watched, heartbeat_ms)):
        play("PROGRESS", at, at, f"hb{k}")
    if complete:
        play("COMPLETE", v.duration_ms, v.duration_ms, "end")
        end = v.start_ms + v.duration_ms
    else:
        play("STOP", watched, watched, "end")
        end = v.start_ms + watched
    if v.stars is not None:
        t = end + 30_000
        out.append((t, RatingEvent(user_id=uid, event_time_ms=t, context=ctx, title_id=v.title_id, kind="STARS",
                                   stars=float(v.stars), event_id=stable_uuid(seed, "ev", v.key, "rating"))))
    return out


def watch_fraction_for(stars: float, rng: random.Random) -> float:
    """Higher ratings come from fuller viewings: 5 -> complete, 1 -> abandoned early."""
    bands = {1: (0.05, 0.3), 2: (0.2, 0.6), 3: (0.5, 0.95), 4: (0.8, 1.0), 5: (0.95, 1.0)}
    low, high = bands[max(1, min(5, round(stars)))]
    fraction = rng.uniform(low, high)
    return 1.0 if fraction >= 0.95 else fraction


def viewing_end_ms(v: Viewing) -> int:
    return v.start_ms + (v.duration_ms if v.watch_fraction >= 0.95 else int(v.duration_ms * v.watch_fraction))
