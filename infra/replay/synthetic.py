"""A synthetic load of any size: N users, M titles with Zipf popularity, sessions by daypart.

Deterministic for a seed and streamed: events are generated as they are consumed, so
the first arrives at once and memory does not grow with the number of sessions. Each
session is 1-3 viewings (impression -> click -> play, sometimes a rating) starting at a
local hour drawn from a daily viewing curve (evening peak), on the user's own UTC offset.
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
        self._offsets: dict[int, int] = {}
        self._runtimes: dict[str, int] = {}
        self._artworks: dict[str, list[str]] = {}

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

    def _session_starts(self) -> Iterator[tuple[int, int, int]]:
        """(UTC start, user, session number) in time order, generated a local day at a time.

        A day's sessions start within 10 h before to 8 h after its local hours (the UTC offsets), so a
        start is final once every later day's earliest possible start is past it: at most two days of
        starts are held at once, never the whole load.
        """
        lead_ms = max(_OFFSETS) * 60_000  # the zone furthest east starts its local day this much before UTC
        per_day, extra = divmod(self.sessions_n, self.days)
        pending: list[tuple[int, int, int]] = []
        number = 0
        for day in range(self.days):
            rng = stable_rng(self.seed, "sessions", day)
            for _ in range(per_day + (day < extra)):
                u = rng.randrange(self.users_n)
                hour = rng.choices(range(24), weights=HOURLY)[0]
                local_ms = day * DAY_MS + hour * 3600 * 1000 + rng.randrange(3600 * 1000)
                heapq.heappush(pending, (local_ms - self.offset_ms(u), u, number))
                number += 1
            earliest_next = (day + 1) * DAY_MS - lead_ms
            while pending and pending[0][0] < earliest_next:
                yield heapq.heappop(pending)
        while pending:
            yield heapq.heappop(pending)

    def offset_ms(self, u: int) -> int:
        if u not in self._offsets:
            self._offsets[u] = self.user(u).context.utc_offset_minutes * 60_000
        return self._offsets[u]

    def _viewings(self) -> Iterator[Viewing]:
        """Each session's viewings, sessions in start order; a user finishes one session before the next."""
        busy_until: dict[int, int] = {}
        for start, u, s in self._session_starts():
            srng = stable_rng(self.seed, "session", s)
            t = max(start, busy_until.get(u, 0) + 60_000)
            for k in range(srng.choice([1, 1, 2, 3])):
                title = self.title_ids[bisect.bisect(self.cumulative, srng.random() * self.cumulative[-1])]
                stars = float(srng.randint(1, 5))
                v = Viewing(self.user(u), title, self._runtime_ms(title), watch_fraction_for(stars, srng), t,
                            stars if srng.random() < self.rating_rate else None, key=f"s{s}-{k}", due_ms=start)
                v.shown_with = [self.title_ids[srng.randrange(self.titles_n)] for _ in range(9)]
                v.shown_with = [x for x in dict.fromkeys(v.shown_with) if x != title]
                v.artwork_ids = {x: srng.choice(self._artwork(x)) for x in [*v.shown_with, title]}
                yield v
                t = viewing_end_ms(v) + 60_000
            busy_until[u] = t

    def _runtime_ms(self, title: str) -> int:
        if title not in self._runtimes:
            self._runtimes[title] = runtime_minutes(self.seed, title) * 60_000
        return self._runtimes[title]

    def _artwork(self, title: str) -> list[str]:
        if title not in self._artworks:
            self._artworks[title] = artwork_ids(self.seed, title)
        return self._artworks[title]

    def __iter__(self) -> Iterator[Any]:
        """The catalog, then every event in event-time order, generated as it is consumed.

        Event times are rebased so that the window's last local day ends now (sped up by ``speedup``);
        a busy user's sessions that spill past that end are stamped now, so no event is in the future.
        """
        yield from self.catalog()
        end = self.days * DAY_MS - min(_OFFSETS) * 60_000 + 60_000  # the last local day's end in UTC, furthest west

        def rebase(t: int) -> int:
            return min(self.now_ms, self.now_ms - int((end - t) / self.speedup))

        heap: list[tuple[int, int, Any]] = []
        seq = 0
        for v in self._viewings():
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
