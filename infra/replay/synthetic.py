"""A synthetic load of any size: N users, M titles with Zipf popularity, sessions by daypart.

Deterministic for a seed. Each session is 1-3 viewings (impression -> click ->
play, sometimes a rating) starting at a local hour drawn from a daily viewing
curve (evening peak), on the user's own UTC offset.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import time
from collections.abc import Iterator
from typing import Any

from connectors.events import CatalogItem, Context
from infra.replay.synth import (
    UserProfile,
    Viewing,
    artwork_ids,
    runtime_minutes,
    stable_rng,
    synthesize_catalog_item,
    viewing_end_ms,
    viewing_events,
    watch_fraction_for,
)

GENRES = ["Action", "Comedy", "Drama", "Romance", "Thriller", "Sci-Fi", "Horror", "Animation", "Documentary",
          "Crime", "Fantasy", "Children's"]
# relative chance a session starts at each local hour (0..23): low at night, evening peak
HOURLY = [3, 2, 1, 1, 1, 1, 2, 4, 5, 4, 4, 5, 6, 6, 5, 5, 6, 8, 11, 14, 15, 13, 9, 5]
_OFFSETS = [-480, -420, -360, -300, 0, 60, 120, 330, 540, 600]
_COUNTRY_OF_OFFSET = {-480: "US", -420: "US", -360: "US", -300: "US", 0: "GB", 60: "DE", 120: "FI", 330: "IN",
                      540: "JP", 600: "AU"}
DAY_MS = 24 * 3600 * 1000


class SyntheticLoad:
    def __init__(self, users: int = 1000, titles: int = 500, sessions: int = 10_000, days: int = 7,
                 seed: int = 7, zipf_s: float = 1.1, rating_rate: float = 0.3, speedup: float = 1.0,
                 now_ms: int | None = None) -> None:
        if min(users, titles, sessions, days) <= 0:
            raise ValueError("users, titles, sessions and days must be positive")
        self.seed, self.users_n, self.titles_n, self.sessions_n = seed, users, titles, sessions
        self.days, self.rating_rate, self.speedup = days, rating_rate, speedup
        self.now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        weights = [1.0 / (rank + 1) ** zipf_s for rank in range(titles)]
        self.cumulative = list(itertools.accumulate(weights))
        self.title_ids = [f"s{t}" for t in range(titles)]
        self.genres = {t: [GENRES[hash_index(seed, t, len(GENRES))]] for t in self.title_ids}

    def user(self, u: int) -> UserProfile:
        rng = stable_rng(self.seed, "synthetic-user", u)
        offset = rng.choice(_OFFSETS)
        device = rng.choices(["TV", "MOBILE", "WEB"], weights=[5, 3, 2])[0]
        return UserProfile(f"su{u}", Context(f"{device.lower()}-su{u}", device,  # type: ignore[arg-type]
                                             _COUNTRY_OF_OFFSET[offset], offset, "synthetic"))

    def catalog(self) -> list[CatalogItem]:
        start = self.now_ms - int(self.days * DAY_MS / self.speedup) - DAY_MS
        return [synthesize_catalog_item(self.seed, t, f"Synthetic Title {t[1:]}", 2000 + int(t[1:]) % 25,
                                        self.genres[t], start, start - 365 * DAY_MS) for t in self.title_ids]

    def _viewings(self) -> list[Viewing]:
        rng = stable_rng(self.seed, "sessions")
        starts = []
        for s in range(self.sessions_n):
            u = rng.randrange(self.users_n)
            day = rng.randrange(self.days)
            hour = rng.choices(range(24), weights=HOURLY)[0]
            offset = self.user(u).context.utc_offset_minutes
            local_ms = day * DAY_MS + hour * 3600 * 1000 + rng.randrange(3600 * 1000)
            starts.append((local_ms - offset * 60_000, u, s))
        starts.sort()
        busy_until: dict[int, int] = {}
        viewings = []
        for start, u, s in starts:
            srng = stable_rng(self.seed, "session", s)
            t = max(start, busy_until.get(u, 0) + 60_000)
            for k in range(srng.choice([1, 1, 2, 3])):
                title = self.title_ids[bisect.bisect(self.cumulative, srng.random() * self.cumulative[-1])]
                stars = float(srng.randint(1, 5))
                v = Viewing(self.user(u), title, runtime_minutes(self.seed, title) * 60_000,
                            watch_fraction_for(stars, srng), t,
                            stars if srng.random() < self.rating_rate else None, key=f"s{s}-{k}", due_ms=start)
                v.shown_with = [self.title_ids[srng.randrange(self.titles_n)] for _ in range(9)]
                v.shown_with = [x for x in dict.fromkeys(v.shown_with) if x != title]
                v.artwork_ids = {x: srng.choice(artwork_ids(self.seed, x)) for x in [*v.shown_with, title]}
                viewings.append(v)
                t = viewing_end_ms(v) + 60_000
            busy_until[u] = t
        return viewings

    def __iter__(self) -> Iterator[Any]:
        yield from self.catalog()
        viewings = self._viewings()
        if not viewings:
            return
        end = max(viewing_end_ms(v) for v in viewings) + 60_000

        def rebase(t: int) -> int:
            return self.now_ms - int((end - t) / self.speedup)

        heap: list[tuple[int, int, Any]] = []
        seq = 0
        for v in viewings:
            while heap and heap[0][0] < v.due_ms - 5 * 60_000:
                t, _, ev = heapq.heappop(heap)
                ev.event_time_ms = rebase(t)
                yield ev
            for t, ev in viewing_events(self.seed, v):
                heapq.heappush(heap, (t, seq, ev))
                seq += 1
        while heap:
            t, _, ev = heapq.heappop(heap)
            ev.event_time_ms = rebase(t)
            yield ev


def hash_index(seed: int, key: str, n: int) -> int:
    return stable_rng(seed, "pick", key).randrange(n)
