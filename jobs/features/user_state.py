"""Per-user feature state, updated on every event: dedupe, profile, continue watching.

Pure and Flink-free; the feature job keeps one :class:`UserState` per user in keyed
state and calls :meth:`UserState.apply` for each of that user's events, in the
order Kafka delivers them (per-user order, since topics are keyed by user).

Replay safety: an event already applied is ignored (the newest ``DEDUPE_MAX_IDS`` ids
are remembered with their content, :mod:`jobs.dedupe`: another event under a used id is
applied, and reported as a conflict), the profile carries a version that counts
applied events, and continue-watching entries are absolute and versioned by event
time, so an older event never overwrites a newer position.

>>> from connectors.events import Context, PlayEvent
>>> state = UserState()
>>> ctx = Context("tv-1", "TV", "US", -300)
>>> start = PlayEvent(user_id="u1", event_time_ms=1_790_000_000_000, context=ctx, title_id="t1",
...                   action="START", playback_id="p1", position_ms=0, duration_ms=6_000_000, event_id="e1")
>>> state.apply(start, TitleInfo(("Drama",), 100)).applied
True
>>> state.apply(start, TitleInfo(("Drama",), 100)).applied  # the same event again
False
>>> state.continue_watching["t1"].position_ms, state.profile.version
(0, 1)
"""

from __future__ import annotations

import math
import pickle
from array import array
from dataclasses import dataclass, field
from typing import Any

from connectors.events import BrowseEvent, PlayEvent, RatingEvent, SearchEvent
from connectors.state import Versioned, field_defaults, fields_from_dict
from jobs.context import daypart, device_class, local_hour
from jobs.dedupe import UNKNOWN_CONTENT, Delivery, classify, content_fingerprint, id_hash, remember
from jobs.exploration.rewards import ImpressionJoin, Joined, joins, observe

DEDUPE_MAX_IDS = 128  # per user; retries and replays repeat recent events
CONTINUE_WATCHING_MAX = 40  # in-progress titles kept per user; older ones leave the row
AFFINITY_HALF_LIFE_MS = 14 * 86_400_000
RECENT_WATCH_HALF_LIFE_MS = 7 * 86_400_000
RECENT_SEARCHES = 10
GENRE_AFFINITY_MAX = 64  # genres kept per member, the strongest (the catalog may name any number)
COMPLETION_FRACTION = 0.95  # a STOP this close to the end counts as finished
RUNTIME_EWMA = 0.2
# the impression join's bounds: a backfill reads one topic ahead of the other, and what a member's
# clicks or starts wait for is held until the other topic catches up (MovieLens 5,000 read one
# topic entirely first: 93-97% of the plays joined, against 43-52% with bounds of 50 and 64)
JOIN_MAX_PENDING = 200
JOIN_MAX_STARTS = 256


@dataclass(frozen=True)
class TitleInfo(Versioned):
    """What the feature job knows of a title from the catalog (broadcast state)."""

    genres: tuple[str, ...] = ()
    runtime_minutes: int = 0


# version 0: its field dict, before it wrote a version
TitleInfo.MIGRATIONS = {0: fields_from_dict(("genres", "runtime_minutes"), field_defaults(TitleInfo))}


UNKNOWN_TITLE = TitleInfo()


@dataclass(slots=True)
class InProgress:
    """A continue-watching entry."""

    position_ms: int
    duration_ms: int
    last_watched_ms: int
    playback_id: str


@dataclass(slots=True)
class Profile:
    version: int = 0  # number of events applied; readers keep the highest
    updated_ms: int = 0  # event time of the newest event applied
    genre_affinity: dict[str, float] = field(default_factory=dict)  # decayed to updated_ms
    daypart_plays: dict[str, int] = field(default_factory=dict)
    device_plays: dict[str, int] = field(default_factory=dict)
    total_watch_ms: int = 0
    recent_watch_ms: float = 0.0  # decayed to updated_ms
    preferred_runtime_minutes: float = 0.0
    recent_searches: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Outcome:
    """What one event did to the state, for the job to route."""

    applied: bool
    watch_ms: int = 0  # newly watched milliseconds (PROGRESS/STOP/COMPLETE deltas)
    profile_changed: bool = False
    continue_watching: dict[str, InProgress | None] = field(default_factory=dict)  # None: removed
    conflict: bool = False  # applied, though another event was applied under its id (report it)


def _decay(value: float, elapsed_ms: int, half_life_ms: int) -> float:
    return value * math.exp(-math.log(2) * elapsed_ms / half_life_ms) if elapsed_ms > 0 else value


def _seen_without_content(fields: tuple[Any, ...]) -> tuple[Any, ...]:
    """Version 2 -> 3: the remembered ids kept their event times; their content is unknown (any matches)."""
    profile, cw, (keys, _times), *rest = fields
    unknown = array("Q", [UNKNOWN_CONTENT]) * (len(keys) // 8)
    return (profile, cw, (keys, unknown.tobytes()), *rest)


@dataclass(slots=True)
class UserState(Versioned):
    profile: Profile = field(default_factory=Profile)
    continue_watching: dict[str, InProgress] = field(default_factory=dict)
    seen_ids: dict[int, int] = field(default_factory=dict)  # 64-bit hash of event id -> content, newest last
    playhead: dict[str, int] = field(default_factory=dict)  # playback id -> furthest position counted
    # what changed since the rows were last written (the job flushes at most every flush_ms)
    pending_cw: dict[str, InProgress | None] = field(default_factory=dict)
    last_event_id: str = ""
    flush_armed: int = 0  # when the job's flush timer was armed (0: none; True in older state)
    # the impression join (CTR, take rate), pickled (connectors.state): held here rather than in a second
    # keyed state, since every state access is a call into Java, and as bytes, so that only the events it
    # reads (impressions, clicks, play starts) pay for decoding it
    impressions_pickle: bytes = b""
    # the join decoded, kept while this object lives (a cached state, or a bundle in process mode), and
    # pickled again only when written after a change: not state itself
    join_decoded: ImpressionJoin | None = field(default=None, compare=False, repr=False)
    join_changed: bool = field(default=False, compare=False, repr=False)

    STATE_VERSION = 3
    MIGRATIONS = {1: lambda fields: (*fields, b""),  # version 1 held no impressions
                  2: lambda fields: _seen_without_content(fields)}  # version 2 kept event times, not content

    # Keyed state holds this pickled, read and written on every event: a compact form of
    # plain tuples and arrays pickles ~5x faster than the dataclasses themselves.
    def state_fields(self) -> tuple[Any, ...]:
        p = self.profile
        profile = (p.version, p.updated_ms, p.genre_affinity, p.daypart_plays, p.device_plays, p.total_watch_ms,
                   p.recent_watch_ms, p.preferred_runtime_minutes, p.recent_searches)
        cw = [(t, e.position_ms, e.duration_ms, e.last_watched_ms, e.playback_id)
              for t, e in self.continue_watching.items()]
        seen = (array("Q", self.seen_ids.keys()).tobytes(), array("Q", self.seen_ids.values()).tobytes())
        pending = [(t, None if e is None else (e.position_ms, e.duration_ms, e.last_watched_ms, e.playback_id))
                   for t, e in self.pending_cw.items()]
        return (profile, cw, seen, self.playhead, pending, self.last_event_id, self.flush_armed,
                self._join_bytes())

    def restore(self, fields: tuple[Any, ...]) -> None:
        profile, cw, (keys, contents), playhead, pending, self.last_event_id, self.flush_armed, impressions = fields
        self.impressions_pickle, self.join_decoded, self.join_changed = impressions, None, False
        self.pending_cw = {t: None if e is None else InProgress(*e) for t, e in pending}
        self.profile = Profile(*profile)
        self.continue_watching = {t: InProgress(*rest) for t, *rest in cw}
        k, v = array("Q"), array("Q")
        k.frombytes(keys)
        v.frombytes(contents)
        self.seen_ids = dict(zip(k, v, strict=True))
        self.playhead = playhead

    def has_seen(self, event_id: str) -> bool:
        """Whether an event with this id was applied recently (within the dedupe memory)."""
        return id_hash(event_id) in self.seen_ids

    def apply(self, event: Any, title: TitleInfo = UNKNOWN_TITLE) -> Outcome:
        delivery = classify(self.seen_ids, event.event_id, content_fingerprint(event))
        if not delivery.applies:
            return Outcome(applied=False)
        self._remember(delivery)
        # the newest event by event time (not the last applied: topics interleave differently per run)
        if (event.event_time_ms, event.event_id) >= (self.profile.updated_ms, self.last_event_id):
            self.last_event_id = event.event_id
        outcome = Outcome(applied=True, profile_changed=True, conflict=delivery.kind == "conflict")
        if isinstance(event, PlayEvent):
            self._play(event, title, outcome)
        elif isinstance(event, BrowseEvent):
            if event.action == "CLICK":
                self._affinity(title.genres, 0.2, event.event_time_ms)
        elif isinstance(event, RatingEvent):
            weight = {"THUMBS_UP": 1.0, "THUMBS_DOWN": -1.0}.get(event.kind, ((event.stars or 3.0) - 3.0) / 2.0)
            self._affinity(title.genres, weight, event.event_time_ms)
        elif isinstance(event, SearchEvent):
            searches = [q for q in self.profile.recent_searches if q != event.query]
            self.profile.recent_searches = [event.query, *searches][:RECENT_SEARCHES]
        self._advance(event.event_time_ms)
        self.profile.version += 1
        self.pending_cw.update(outcome.continue_watching)
        return outcome

    def join_impressions(self, event: Any, window_ms: int, watermark_ms: int, out_of_order_ms: int) -> list[Joined]:
        """Feed an applied event to the impression join; the clicks and plays it joined (for CTR).

        Only impressions, clicks and play starts reach it; what no event to come can join
        any more is dropped (:meth:`ImpressionJoin.forget`).
        """
        if not joins(event):
            return []
        if self.join_decoded is None and self.impressions_pickle:
            self.join_decoded = pickle.loads(self.impressions_pickle)
        join = self.join_decoded or ImpressionJoin(window_ms, JOIN_MAX_PENDING, JOIN_MAX_STARTS)
        joined = observe(join, event)
        join.forget(watermark_ms, out_of_order_ms)
        self.join_decoded, self.join_changed = join, True
        return joined

    def impression_join(self) -> ImpressionJoin | None:
        """The impression join as it stands (a copy: changes to it are not kept)."""
        pickled = self._join_bytes()
        return pickle.loads(pickled) if pickled else None

    def _join_bytes(self) -> bytes:
        if self.join_changed:
            self.impressions_pickle = pickle.dumps(self.join_decoded, protocol=pickle.HIGHEST_PROTOCOL)
            self.join_changed = False
        return self.impressions_pickle

    def take_pending(self) -> dict[str, InProgress | None]:
        """The continue-watching changes not yet written; clears them and disarms the flush."""
        pending, self.pending_cw, self.flush_armed = self.pending_cw, {}, 0
        return pending

    # -- pieces ----------------------------------------------------------
    def _remember(self, delivery: Delivery) -> None:
        remember(self.seen_ids, delivery)
        if len(self.seen_ids) > DEDUPE_MAX_IDS:  # prune now and then (cheap amortized): the newest half stays
            self.seen_ids = dict(list(self.seen_ids.items())[-DEDUPE_MAX_IDS // 2:])

    def _advance(self, event_time_ms: int) -> None:
        """Move the profile's clock forward, decaying what decays (never backwards)."""
        p = self.profile
        elapsed = event_time_ms - p.updated_ms
        if elapsed <= 0 or p.updated_ms == 0:
            p.updated_ms = max(p.updated_ms, event_time_ms)
            return
        p.genre_affinity = {g: _decay(v, elapsed, AFFINITY_HALF_LIFE_MS) for g, v in p.genre_affinity.items()}
        p.recent_watch_ms = _decay(p.recent_watch_ms, elapsed, RECENT_WATCH_HALF_LIFE_MS)
        p.updated_ms = event_time_ms

    def _affinity(self, genres: tuple[str, ...], weight: float, event_time_ms: int) -> None:
        """Add ``weight`` split over ``genres``, discounted if the event is older than the profile clock."""
        if not genres or weight == 0:
            return
        p = self.profile
        w = _decay(weight, p.updated_ms - event_time_ms, AFFINITY_HALF_LIFE_MS) if p.updated_ms else weight
        elapsed = event_time_ms - p.updated_ms
        if elapsed > 0 and p.updated_ms:  # bring existing values to this event's time first
            self._advance(event_time_ms)
        for genre in genres:
            p.genre_affinity[genre] = p.genre_affinity.get(genre, 0.0) + w / len(genres)
        if len(p.genre_affinity) > GENRE_AFFINITY_MAX + GENRE_AFFINITY_MAX // 2:  # amortized: a sort now and then
            strongest = sorted(p.genre_affinity.items(), key=lambda pair: (-abs(pair[1]), pair[0]))
            p.genre_affinity = dict(strongest[:GENRE_AFFINITY_MAX])

    def _play(self, event: PlayEvent, title: TitleInfo, outcome: Outcome) -> None:
        p = self.profile
        if event.action == "START":
            # a resumed playback starts mid-title: what lies before the start was not watched now
            self.playhead[event.playback_id] = max(self.playhead.get(event.playback_id, 0), event.position_ms)
            part = daypart(local_hour(event.event_time_ms, event.context.utc_offset_minutes))
            p.daypart_plays[part] = p.daypart_plays.get(part, 0) + 1
            device = device_class(event.context.device_class)
            p.device_plays[device] = p.device_plays.get(device, 0) + 1
            self._affinity(title.genres, 0.1, event.event_time_ms)
        # watch time: the furthest playhead of this playback counts once
        counted = self.playhead.get(event.playback_id, 0)
        if event.position_ms > counted:
            outcome.watch_ms = event.position_ms - counted
            self.playhead[event.playback_id] = event.position_ms
            p.total_watch_ms += outcome.watch_ms
            p.recent_watch_ms += outcome.watch_ms
            self._affinity(title.genres, outcome.watch_ms / 3_600_000, event.event_time_ms)
        finished = event.action == "COMPLETE" or (
            event.action == "STOP" and event.position_ms >= COMPLETION_FRACTION * event.duration_ms)
        known = self.continue_watching.get(event.title_id)
        if known is not None and known.last_watched_ms > event.event_time_ms:
            return  # an older event: the newer position stands
        if finished:
            self.playhead.pop(event.playback_id, None)
            if event.title_id in self.continue_watching:
                del self.continue_watching[event.title_id]
                outcome.continue_watching[event.title_id] = None
            runtime = title.runtime_minutes or event.duration_ms / 60_000
            p.preferred_runtime_minutes = (runtime if p.preferred_runtime_minutes == 0 else
                                           (1 - RUNTIME_EWMA) * p.preferred_runtime_minutes + RUNTIME_EWMA * runtime)
        else:
            entry = InProgress(event.position_ms, event.duration_ms, event.event_time_ms, event.playback_id)
            self.continue_watching.pop(event.title_id, None)  # re-insert: dict order is recency
            self.continue_watching[event.title_id] = entry
            outcome.continue_watching[event.title_id] = entry
            while len(self.continue_watching) > CONTINUE_WATCHING_MAX:
                oldest = next(iter(self.continue_watching))
                del self.continue_watching[oldest]
                outcome.continue_watching[oldest] = None
        if len(self.playhead) > 32:  # abandoned playbacks never complete; keep the newest
            self.playhead = dict(list(self.playhead.items())[-16:])
