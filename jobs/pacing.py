"""How long a key's changes wait before they are written: short while a job keeps up, longer in a backlog.

Every job coalesces per key (a member's rows, a title's vectors) and writes at most every
``base_ms``. Live, a member has an event every few seconds, so that costs one write per event
and bounds staleness at ``base_ms``. Working off a backlog (a backfill, a restart after an
outage), the same member's events come milliseconds apart and the job spends its time writing
rows that are overwritten at once. :class:`FlushPacing` stretches the wait to ``share`` of the
backlog, at most ``max_ms``: writes then scale with the members active, not with events, and
the wait returns to ``base_ms`` as soon as the job has caught up.

The backlog is the smallest event-time lag seen over the last two windows of ``window_ms``
(processing time; none without events in both): one late event (a phone back online) does not
stretch it, a second of nothing but late events does, and one fresh event shortens it at once.

>>> pacing = FlushPacing(base_ms=100, max_ms=1_000)
>>> pacing.observe(now_ms=10_000, event_time_ms=9_800); pacing.delay_ms()  # live: 200 ms behind
100
>>> pacing.observe(now_ms=10_500, event_time_ms=0); pacing.delay_ms()  # one late event: still live
100
>>> for now in range(11_000, 14_000, 100):  # three seconds of events an hour old: a backlog
...     pacing.observe(now, now - 3_600_000)
>>> pacing.delay_ms()
1000
>>> pacing.observe(now_ms=14_000, event_time_ms=13_900); pacing.delay_ms()  # caught up
100
"""

from __future__ import annotations


class FlushPacing:
    """The wait before a key's flush: ``share`` of the job's backlog, between ``base_ms`` and ``max_ms``."""

    def __init__(self, base_ms: int, max_ms: int = 1_000, share: float = 0.1, window_ms: int = 1_000) -> None:
        if base_ms <= 0 or max_ms < base_ms or not 0 < share <= 1 or window_ms <= 0:
            raise ValueError(f"need 0 < base_ms <= max_ms and 0 < share <= 1, got base_ms={base_ms}, "
                             f"max_ms={max_ms}, share={share}, window_ms={window_ms}")
        self.base_ms, self.max_ms, self.share, self.window_ms = base_ms, max_ms, share, window_ms
        self._window_start = -window_ms
        self._current: int | None = None  # the smallest lag in the current window
        self._previous: int | None = None  # ... and in the one before

    def observe(self, now_ms: int, event_time_ms: int) -> None:
        lag = max(0, now_ms - event_time_ms)
        if now_ms - self._window_start >= self.window_ms:
            self._previous = self._current if now_ms - self._window_start < 2 * self.window_ms else None
            self._window_start, self._current = now_ms, lag
        elif self._current is None or lag < self._current:
            self._current = lag

    @property
    def backlog_ms(self) -> int:
        if self._current is None or self._previous is None:  # not two windows in a row of events
            return 0
        return min(self._current, self._previous)

    def delay_ms(self) -> int:
        return int(min(self.max_ms, max(self.base_ms, self.share * self.backlog_ms)))
