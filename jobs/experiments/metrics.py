"""Experiment metrics per member, and the sums the report needs, kept up to date as events arrive.

A member **enters** an experiment at their first exposure: the first impression whose
presentation token names ``experiment:variant`` (the rows job writes it only for
members eligible then). From then on everything they do counts for that variant
(intent to treat): impressions, clicks and plays from impressions (the rows job's
impression outcomes), watch time (play events: the furthest playhead of each playback
counts once), and whether they were active again one and seven days after entering.
The same counts over the 14 whole days before the day they entered are their
**pre-exposure** values, which CUPED adjusts with.

Each metric is a ratio of member totals ``x / y`` (:mod:`jobs.experiments.stats`); a
member's contribution to their variant's sums is ``(1, x, y, x^2, y^2, xy, pre, pre^2,
pre x, pre y)``. When one of their totals changes, :meth:`MemberMetrics.apply` returns
the change of each contribution (new minus old), so the sums per experiment, variant
and metric are kept by adding deltas, never by revisiting members.

>>> member = MemberMetrics()
>>> deltas = member.exposure("e1", ("div:more",), at_ms=20 * DAY_MS)
>>> sorted({d.metric for d in deltas}) == sorted(METRICS)
True
>>> [d.totals.n for d in deltas if d.metric == "ctr"]
[1]
>>> ctr = [d for d in member.outcome("o1", clicked=True, played=False, at_ms=20 * DAY_MS + 1) if d.metric == "ctr"]
>>> (ctr[0].totals.n, ctr[0].totals.sum_x, ctr[0].totals.sum_y)
(0, 1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from connectors.state import Versioned
from jobs.dedupe import id_hash
from jobs.experiments.stats import Totals

DAY_MS = 86_400_000
PRE_DAYS = 14
MAX_EXPERIMENTS = 16  # per member: labels beyond are not entered (counted by the job)
MAX_SEEN = 512  # event ids remembered per member (their hashes) to drop redeliveries: more than a restore replays
MAX_PLAYBACKS = 64
MAX_RECENT = 256  # activities kept as they came, for an impression that arrives after what followed it
# metric -> (numerator, denominator) over a member's totals; "members" is 1
METRICS: dict[str, tuple[str, str]] = {
    "ctr": ("clicks", "impressions"),
    "play_rate": ("plays", "impressions"),
    "watch_minutes": ("watch_minutes", "members"),
    "active_d1": ("active_d1", "members"),
    "active_d7": ("active_d7", "members"),
}
# the pre-exposure value CUPED adjusts each metric with: the same count before entering
PRE_VALUE = {"ctr": "clicks", "play_rate": "plays", "watch_minutes": "watch_minutes", "active_d1": "active_days",
             "active_d7": "active_days"}
_COUNTS = ("impressions", "clicks", "plays", "watch_ms")


@dataclass
class Counts:
    impressions: int = 0
    clicks: int = 0
    plays: int = 0
    watch_ms: int = 0
    active_days: int = 0

    def add(self, other: Counts) -> None:
        for name in (*_COUNTS, "active_days"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def value(self, name: str) -> float:
        if name == "watch_minutes":
            return self.watch_ms / 60_000
        return float(getattr(self, name))


@dataclass
class Entry:
    """A member in one experiment's variant: when they entered and their totals before and since."""

    entered_ms: int
    segment: str = ""  # the device class they entered on: the report's per-segment breakdown
    pre: Counts = field(default_factory=Counts)
    post: Counts = field(default_factory=Counts)
    active_d1: bool = False
    active_d7: bool = False

    def contribution(self, metric: str) -> tuple[float, float, float]:
        """``(x, y, pre)`` for ``metric``."""
        numerator, denominator = METRICS[metric]
        values = {"active_d1": float(self.active_d1), "active_d7": float(self.active_d7), "members": 1.0}
        x = values[numerator] if numerator in values else self.post.value(numerator)
        y = values[denominator] if denominator in values else self.post.value(denominator)
        return x, y, self.pre.value(PRE_VALUE[metric])


@dataclass(frozen=True)
class Delta:
    """A change to the sums of one experiment's variant for one metric (``label`` is experiment:variant)."""

    label: str
    metric: str
    totals: Totals
    at_ms: int  # event time of the change
    segment: str = ""


def _totals(x: float, y: float, pre: float) -> Totals:
    return Totals(1, x, y, x * x, y * y, x * y, pre, pre * pre, pre * x, pre * y)


def _minus(new: Totals, old: Totals) -> Totals:
    return Totals(*(a - b for a, b in zip(new.__dict__.values(), old.__dict__.values(), strict=True)))


@dataclass
class MemberMetrics(Versioned):
    """One member's activity by day (the last ``PRE_DAYS`` + 1 days), their most recent activity as it came,
    and their experiments' totals (keyed state of the metrics job's ``member-metrics``).

    The topics deliver in no order across each other: an outcome or a play can arrive before the impression
    that made the member enter. So the newest ``MAX_RECENT`` activities are kept as they came, and entering
    (or an earlier impression arriving late, which moves the entry back) credits those at or after the
    entry time.
    """

    STATE_VERSION = 3
    MIGRATIONS = {1: lambda fields: (*fields, []),  # version 2 keeps the recent activities
                  2: lambda fields: (*fields[:2], {id_hash(k): None for k in fields[2]}, *fields[3:])}  # id hashes

    days: dict[int, Counts] = field(default_factory=dict)  # day index -> that day's counts
    entries: dict[str, Entry] = field(default_factory=dict)  # experiment:variant -> entry
    seen: dict[int, None] = field(default_factory=dict)  # hashes of the event ids applied, oldest first
    playheads: dict[str, int] = field(default_factory=dict)  # playback id -> furthest position counted
    refused: int = 0  # labels not entered: over MAX_EXPERIMENTS
    # (event time, impressions, clicks, plays, watch ms, active), in arrival order, the newest MAX_RECENT
    recent: list[tuple[int, int, int, int, int, bool]] = field(default_factory=list)

    def applied(self, event_id: str) -> bool:
        """Whether ``event_id`` was applied already (among the newest ``MAX_SEEN``)."""
        return id_hash(event_id) in self.seen

    def first_time(self, event_id: str) -> bool:
        """Whether ``event_id`` is new (and remember it); a redelivery changes nothing."""
        key = id_hash(event_id)
        if key in self.seen:
            return False
        self.seen[key] = None
        if len(self.seen) > MAX_SEEN:
            del self.seen[next(iter(self.seen))]
        return True

    def exposure(self, event_id: str, labels: Iterable[str], at_ms: int, segment: str = "") -> list[Delta]:
        """An impression served under ``labels`` (on a ``segment`` device): enter each experiment not entered
        yet, or enter it earlier. The impression is also activity."""
        deltas = self._activity(event_id, Counts(), at_ms)
        for label in labels:
            entered = self.entries.get(label)
            if entered is not None:
                if at_ms < entered.entered_ms:  # an earlier impression, arrived late: the member entered then
                    deltas += self._changes(label, entered, partial(self._move_entry, entered, at_ms), at_ms)
                continue
            if label.partition(":")[0] in {e.partition(":")[0] for e in self.entries}:
                continue  # a member's variant never changes within one experiment
            if len(self.entries) >= MAX_EXPERIMENTS:
                self.refused += 1
                continue
            day = at_ms // DAY_MS
            entry = Entry(at_ms, segment)
            for past, counts in self.days.items():
                if day - PRE_DAYS <= past < day:
                    entry.pre.add(counts)  # active_days: 1 for each day the member was active
            for seen_at, impressions, clicks, plays, watch_ms, active in self.recent:
                if seen_at >= at_ms:  # arrived before the impression it follows
                    _credit(entry, Counts(impressions, clicks, plays, watch_ms), seen_at, active)
            self.entries[label] = entry
            deltas.extend(Delta(label, metric, _totals(*entry.contribution(metric)), at_ms, segment)
                          for metric in METRICS)
        return deltas

    def withdrawn(self, at_ms: int) -> list[Delta]:
        """What takes this member out of every variant's sums (an erasure): each entry's contribution, negated.

        >>> member = MemberMetrics()
        >>> entered = member.exposure("e1", ["div:more"], at_ms=3 * DAY_MS)
        >>> sums = VariantSums()
        >>> sums.add(entered)
        >>> sums.add(member.withdrawn(4 * DAY_MS))
        >>> {totals.n for totals in sums.totals.values()}
        {0}
        """
        return [Delta(label, metric, _minus(Totals(), _totals(*entry.contribution(metric))), at_ms, entry.segment)
                for label, entry in self.entries.items() for metric in METRICS]

    def _move_entry(self, entry: Entry, at_ms: int) -> None:
        previous, entry.entered_ms = entry.entered_ms, at_ms
        for seen_at, impressions, clicks, plays, watch_ms, active in self.recent:
            if at_ms <= seen_at < previous:
                _credit(entry, Counts(impressions, clicks, plays, watch_ms), seen_at, active)

    def outcome(self, event_id: str, clicked: bool, played: bool, at_ms: int) -> list[Delta]:
        """One shown item's final click and play (an impression outcome)."""
        if not self.first_time(event_id):
            return []
        return self._apply(Counts(impressions=1, clicks=int(clicked), plays=int(played)), at_ms, active=False)

    def play(self, event_id: str, playback_id: str, position_ms: int, action: str, at_ms: int) -> list[Delta]:
        """A play event: the part of the playback not counted before is watch time."""
        if not self.first_time(event_id):
            return []
        counted = self.playheads.pop(playback_id, 0)
        watched = max(position_ms - counted, 0) if action != "START" else 0
        if action not in ("STOP", "COMPLETE"):
            self.playheads[playback_id] = max(counted, position_ms)
            if len(self.playheads) > MAX_PLAYBACKS:
                del self.playheads[next(iter(self.playheads))]
        return self._apply(Counts(watch_ms=watched), at_ms, active=True)

    def active(self, event_id: str, at_ms: int) -> list[Delta]:
        """Any other event of the member: they were active then."""
        return self._activity(event_id, Counts(), at_ms)

    def _activity(self, event_id: str, counts: Counts, at_ms: int) -> list[Delta]:
        if not self.first_time(event_id):
            return []
        return self._apply(counts, at_ms, active=True)

    def _apply(self, counts: Counts, at_ms: int, active: bool) -> list[Delta]:
        day = at_ms // DAY_MS
        newest = max(self.days, default=day)
        newly_active = False
        if day >= newest - PRE_DAYS:  # older days can be in no pre-exposure window still to open
            today = self.days.setdefault(day, Counts())
            today.add(counts)
            if active and not today.active_days:
                today.active_days, newly_active = 1, True
            for old in [d for d in self.days if d < max(newest, day) - PRE_DAYS]:
                del self.days[old]
        self.recent.append((at_ms, counts.impressions, counts.clicks, counts.plays, counts.watch_ms, active))
        if len(self.recent) > MAX_RECENT:
            del self.recent[0]
        deltas = []
        for label, entry in self.entries.items():
            def change(entry: Entry = entry) -> None:
                entry_day = entry.entered_ms // DAY_MS
                if at_ms >= entry.entered_ms:
                    _credit(entry, counts, at_ms, active)
                elif entry_day - PRE_DAYS <= day < entry_day:  # arrived late, from the pre-exposure window
                    entry.pre.add(counts)
                    entry.pre.active_days += int(newly_active)
            deltas += self._changes(label, entry, change, at_ms)
        return deltas

    @staticmethod
    def _changes(label: str, entry: Entry, change: Callable[[], None], at_ms: int) -> list[Delta]:
        """Apply ``change`` to ``entry``; the deltas of the contributions it moved."""
        before = {metric: entry.contribution(metric) for metric in METRICS}
        change()
        deltas = []
        for metric in METRICS:
            after = entry.contribution(metric)
            if after != before[metric]:
                deltas.append(Delta(label, metric, _minus(_totals(*after), _totals(*before[metric])), at_ms,
                                    entry.segment))
        return deltas


def _credit(entry: Entry, counts: Counts, at_ms: int, active: bool) -> None:
    """An activity at or after the member entered: it counts for the variant."""
    entry.post.add(counts)
    entry.active_d1 = entry.active_d1 or (active and at_ms >= entry.entered_ms + DAY_MS)
    entry.active_d7 = entry.active_d7 or (active and at_ms >= entry.entered_ms + 7 * DAY_MS)


ALL_MEMBERS = "all"  # the segment of every member; the others are the device class members entered on


@dataclass
class VariantSums(Versioned):
    """The sums of one experiment's variant, per segment and metric, as deltas arrive (keyed state of the
    metrics job's ``variant-sums``). Written as the day's row: the sums as of the newest event applied.

    >>> sums = VariantSums()
    >>> member = MemberMetrics()
    >>> sums.add(member.exposure("e1", ["div:more"], at_ms=3 * DAY_MS, segment="MOBILE"))
    >>> sorted({(day, segment) for day, segment, _, _ in sums.changed()})
    [(3, 'MOBILE'), (3, 'all')]
    >>> sums.changed()
    []
    """

    STATE_VERSION = 1

    totals: dict[tuple[str, str], Totals] = field(default_factory=dict)  # (segment, metric) -> sums
    newest_ms: int = 0  # event time of the newest change: the day the rows are written for
    dirty: set[tuple[str, str]] = field(default_factory=set)  # changed since last written
    armed: bool = False  # a flush timer is set

    def add(self, deltas: Iterable[Delta]) -> None:
        for delta in deltas:
            for segment in {ALL_MEMBERS, delta.segment or ALL_MEMBERS}:
                key = (segment, delta.metric)
                self.totals[key] = self.totals.get(key, Totals()) + delta.totals
                self.dirty.add(key)
            self.newest_ms = max(self.newest_ms, delta.at_ms)

    def changed(self) -> list[tuple[int, str, str, Totals]]:
        """``(day, segment, metric, sums)`` of what changed since last asked (then nothing has)."""
        day = self.newest_ms // DAY_MS
        rows = [(day, segment, metric, self.totals[segment, metric]) for segment, metric in sorted(self.dirty)]
        self.dirty = set()
        return rows

