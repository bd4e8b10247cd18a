"""The rows job's state per user: what a homepage needs from the user's own events and models. Pure.

Continue watching, genre affinities and de-duplication are the feature job's own
per-event logic (:class:`~jobs.features.user_state.UserState`), reused so both jobs
agree; on top of it the titles the user finished (never recommended again), the
recent strong watches that anchor "Because You Watched" rows, the context of the
newest event (country, device, UTC offset: the context bucket) and the newest
user-updates record from the learning job (top picks and content profile).

>>> from connectors.events import Context, PlayEvent
>>> user = RowsUser()
>>> ctx = Context("tv-1", "TV", "US", -300)
>>> done = PlayEvent("u1", 1_790_000_000_000, ctx, "t1", "COMPLETE", "p1", 6_000_000, 6_000_000, event_id="e1")
>>> user.apply_event(done), user.completed, user.anchors
(True, ['t1'], ['t1'])
>>> user.apply_event(done)  # a redelivery
False
>>> user.bucket(1_790_000_000_000)
'morning:tv'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectors.events import PlayEvent, RatingEvent
from connectors.state import Versioned, field_defaults, fields_from_dict
from jobs.context import context_bucket
from jobs.exploration.policies import ThemeHistory
from jobs.exploration.rewards import ImpressionJoin, Outcome, observe
from jobs.features.user_state import COMPLETION_FRACTION, UNKNOWN_TITLE, TitleInfo, UserState
from jobs.homepage.rows import InProgressTitle, UserSignals
from jobs.records.user_update import UserUpdate

COMPLETED_MAX = 500  # finished titles remembered per user (older ones may be recommended again)
ANCHORS_MAX = 5
STRONG_STARS = 4.0


@dataclass
class RowsUser(Versioned):
    features: UserState = field(default_factory=UserState)
    completed: list[str] = field(default_factory=list)  # most recent last
    anchors: list[str] = field(default_factory=list)  # most recent last
    device_class: str = "UNKNOWN"
    utc_offset_minutes: int = 0
    country: str = ""
    context_ms: int = 0  # event time of the event the context came from
    picks: tuple[tuple[str, float, str], ...] = ()
    profile: tuple[float, ...] = ()
    model_version: int = -1  # the newest user-updates version applied
    model_event_id: str = ""  # the last user event the models reflect
    maturity_limit: str = "EIGHTEEN_PLUS"
    settings_read_ms: int = 0  # when the profile settings were last read (the job refreshes them)
    flush_armed: int = 0  # when the job's flush timer was armed (0: none; True in older state)
    bucket_timer_ms: int = 0  # the daypart change the job has a timer for
    # impressions waiting for their clicks and plays, and this member's clicks per artwork theme
    # (created on first use)
    impressions: ImpressionJoin | None = None
    themes: ThemeHistory | None = None
    reward_timer_ms: int = 0  # when held impressions' windows close (a member gone quiet still teaches)

    def apply_event(self, event: Any, title: TitleInfo = UNKNOWN_TITLE) -> bool:
        """A user event (play, browse, rating, search); ``False`` for a redelivery."""
        if not self.features.apply(event, title).applied:
            return False
        if event.event_time_ms >= self.context_ms:  # the newest event says where the user is
            context = event.context
            self.device_class, self.utc_offset_minutes = context.device_class, context.utc_offset_minutes
            self.country, self.context_ms = context.country, event.event_time_ms
        if isinstance(event, PlayEvent) and (event.action == "COMPLETE" or (
                event.action == "STOP" and event.position_ms >= COMPLETION_FRACTION * event.duration_ms)):
            self.completed = _recent(self.completed, event.title_id, COMPLETED_MAX)
            self.anchors = _recent(self.anchors, event.title_id, ANCHORS_MAX)
        elif isinstance(event, RatingEvent) and (event.kind == "THUMBS_UP" or (
                event.kind == "STARS" and (event.stars or 0.0) >= STRONG_STARS)):
            self.anchors = _recent(self.anchors, event.title_id, ANCHORS_MAX)
        self._observe(event)
        return True

    def _observe(self, event: Any) -> None:
        """Impressions, the clicks on them and the plays they lead to: the bandits' rewards."""
        observe(self.join, event)

    @property
    def join(self) -> ImpressionJoin:
        if self.impressions is None:
            self.impressions = ImpressionJoin()
        return self.impressions

    @property
    def theme_history(self) -> ThemeHistory:
        if self.themes is None:
            self.themes = ThemeHistory()
        return self.themes

    def reward_timer_due(self, now_ms: int) -> int | None:
        """When to wake up for held impressions (``now + window``), or ``None`` when a wake-up is already set.

        >>> user = RowsUser(impressions=ImpressionJoin(window_ms=60_000))
        >>> user.reward_timer_due(0) is None  # nothing held
        True
        >>> user.join.impression("imp-1", "trending", 0, [("t1", 0, "")], None, at_ms=0)
        >>> user.reward_timer_due(1_000), user.reward_timer_due(2_000)
        (61000, None)
        """
        if self.impressions is None or not self.impressions.pending or self.reward_timer_ms > now_ms:
            return None
        self.reward_timer_ms = now_ms + self.impressions.window_ms
        return self.reward_timer_ms

    def outcomes(self, now_ms: int) -> list[Outcome]:
        """The impressions whose window has closed: one outcome per shown item."""
        return self.join.expire(now_ms) if self.impressions is not None else []

    def apply_update(self, update: UserUpdate) -> bool:
        """A user-updates record (the learning job's flush); ``False`` when not newer than the one held."""
        if update.version <= self.model_version:
            return False
        self.model_version, self.model_event_id = update.version, update.last_event_id
        self.picks, self.profile = update.picks, update.content_profile
        return True

    @property
    def last_event_id(self) -> str:
        return self.features.last_event_id

    def bucket(self, now_ms: int) -> str:
        """The user's context bucket at ``now_ms``: the daypart there, the device of the newest event."""
        return context_bucket(now_ms, self.utc_offset_minutes, self.device_class)

    def signals(self) -> UserSignals:
        in_progress = tuple(InProgressTitle(t, e.position_ms, e.duration_ms, e.last_watched_ms)
                            for t, e in self.features.continue_watching.items())
        return UserSignals(continue_watching=in_progress, completed=frozenset(self.completed),
                           anchors=tuple(reversed(self.anchors)), top_picks=self.picks,
                           genre_affinity=dict(self.features.profile.genre_affinity),
                           profile=np.array(self.profile, dtype=np.float32) if self.profile else None)


def _recent(titles: list[str], title_id: str, keep: int) -> list[str]:
    return [*(t for t in titles if t != title_id), title_id][-keep:]


# version 0: its field dict, before it wrote a version (older ones lack the last three fields)
RowsUser.MIGRATIONS = {0: fields_from_dict(
    ("features", "completed", "anchors", "device_class", "utc_offset_minutes", "country", "context_ms", "picks",
     "profile", "model_version", "model_event_id", "maturity_limit", "settings_read_ms", "flush_armed",
     "bucket_timer_ms", "impressions", "themes", "reward_timer_ms"), field_defaults(RowsUser))}
