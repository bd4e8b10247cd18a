"""The context bucket every job agrees on: daypart in the user's local time, by device class.

>>> daypart(local_hour(1_790_000_000_000, utc_offset_minutes=-300))  # 2026-09-21 09:13 in New York
'morning'
>>> context_bucket(1_790_000_000_000, -300, "TV")
'morning:tv'
>>> weekday(1_790_000_000_000, -300)
'mon'
>>> (next_daypart_ms(1_790_000_000_000, -300) - 1_790_000_000_000) // 60_000  # 09:13 -> noon
166
"""

from __future__ import annotations

import time

DAYPARTS = ("late_night", "morning", "afternoon", "evening")
DEVICE_CLASSES = {"TV": "tv", "MOBILE": "mobile", "WEB": "web", "UNKNOWN": "web"}
_WEEKDAYS = ("thu", "fri", "sat", "sun", "mon", "tue", "wed")  # 1970-01-01 was a Thursday
_DAY_MS = 86_400_000


def local_time_ms(event_time_ms: int, utc_offset_minutes: int) -> int:
    return event_time_ms + utc_offset_minutes * 60_000


def local_hour(event_time_ms: int, utc_offset_minutes: int) -> int:
    return (local_time_ms(event_time_ms, utc_offset_minutes) % _DAY_MS) // 3_600_000


def daypart(hour: int) -> str:
    """late_night 0-5, morning 6-11, afternoon 12-17, evening 18-23 (local hours)."""
    if not 0 <= hour <= 23:
        raise ValueError(f"hour {hour} is not 0..23")
    return DAYPARTS[hour // 6]


def weekday(event_time_ms: int, utc_offset_minutes: int) -> str:
    return _WEEKDAYS[(local_time_ms(event_time_ms, utc_offset_minutes) // _DAY_MS) % 7]


def device_class(raw: str) -> str:
    return DEVICE_CLASSES.get(raw, "web")


def all_buckets() -> list[str]:
    """Every context bucket there is (dayparts by device classes).

    >>> len(all_buckets()), all_buckets()[0]
    (12, 'late_night:tv')
    """
    return [f"{part}:{device}" for part in DAYPARTS for device in dict.fromkeys(DEVICE_CLASSES.values())]


def context_bucket(event_time_ms: int, utc_offset_minutes: int, raw_device_class: str) -> str:
    return f"{daypart(local_hour(event_time_ms, utc_offset_minutes))}:{device_class(raw_device_class)}"


def next_daypart_ms(now_ms: int, utc_offset_minutes: int) -> int:
    """When the daypart changes next in the user's local time (UTC epoch ms): the next 0, 6, 12 or 18 h."""
    block = 6 * 3_600_000
    local = local_time_ms(now_ms, utc_offset_minutes)
    return (local // block + 1) * block - utc_offset_minutes * 60_000


def now_ms() -> int:
    """The wall clock in epoch milliseconds (processing time)."""
    return int(time.time() * 1000)
