"""Member-level experiment metrics: the sums kept by deltas equal the sums over members, redeliveries change
nothing, and the pre-exposure window is the 14 whole days before entering."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.experiments.metrics import DAY_MS, METRICS, PRE_DAYS, Delta, MemberMetrics
from jobs.experiments.stats import Totals

DAY0 = 100 * DAY_MS


def summed(deltas: list[Delta]) -> dict[tuple[str, str], Totals]:
    sums: dict[tuple[str, str], Totals] = defaultdict(Totals)
    for delta in deltas:
        sums[delta.label, delta.metric] = sums[delta.label, delta.metric] + delta.totals
    return sums


def direct(members: dict[str, MemberMetrics]) -> dict[tuple[str, str], Totals]:
    sums: dict[tuple[str, str], Totals] = defaultdict(Totals)
    for member in members.values():
        for label, entry in member.entries.items():
            for metric in METRICS:
                x, y, pre = entry.contribution(metric)
                sums[label, metric] = sums[label, metric] + Totals.of([x], [y], [pre])
    return sums


def apply(member: MemberMetrics, step: tuple[Any, ...]) -> list[Delta]:
    kind, event_id, at_ms, *rest = step
    if kind == "exposure":
        return member.exposure(event_id, rest[0], at_ms)
    if kind == "outcome":
        return member.outcome(event_id, rest[0], rest[1], at_ms)
    if kind == "play":
        return member.play(event_id, rest[0], rest[1], rest[2], at_ms)
    return member.active(event_id, at_ms)


steps = st.one_of(
    st.tuples(st.just("exposure"), st.integers(0, 30).map(str), st.integers(0, 30 * DAY_MS),
              st.sampled_from([("a:control",), ("a:more",), ("b:x",), ("a:control", "b:y")])),
    st.tuples(st.just("outcome"), st.integers(0, 30).map(lambda n: f"o{n}"), st.integers(0, 30 * DAY_MS),
              st.booleans(), st.booleans()),
    st.tuples(st.just("play"), st.integers(0, 30).map(lambda n: f"p{n}"), st.integers(0, 30 * DAY_MS),
              st.sampled_from(["pb1", "pb2"]), st.integers(0, 7_200_000), st.sampled_from(["START", "PROGRESS",
                                                                                          "STOP", "COMPLETE"])),
    st.tuples(st.just("active"), st.integers(0, 30).map(lambda n: f"s{n}"), st.integers(0, 30 * DAY_MS)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["m1", "m2", "m3"]), steps), max_size=60))
def test_sums_kept_by_deltas_equal_the_sums_over_members(events: list[tuple[str, tuple[Any, ...]]]) -> None:
    members: dict[str, MemberMetrics] = defaultdict(MemberMetrics)
    deltas: list[Delta] = []
    for member_id, step in events:
        deltas += apply(members[member_id], (step[0], f"{member_id}-{step[1]}", *step[2:]))
    # every event again (redelivered, in order): nothing changes
    for member_id, step in events:
        assert apply(members[member_id], (step[0], f"{member_id}-{step[1]}", *step[2:])) == []
    kept, expected = summed(deltas), direct(members)
    assert set(expected) <= set(kept)
    for key, totals in kept.items():
        want = expected.get(key, Totals())
        for name, value in totals.__dict__.items():
            assert value == pytest.approx(want.__dict__[name], abs=1e-6), (key, name)


def test_a_member_counts_from_their_first_exposure_with_the_14_days_before_as_pre() -> None:
    member = MemberMetrics()
    member.outcome("old", clicked=True, played=False, at_ms=DAY0 - (PRE_DAYS + 1) * DAY_MS)  # before the window
    member.outcome("pre-1", clicked=True, played=True, at_ms=DAY0 - PRE_DAYS * DAY_MS)  # the window's first day
    member.active("pre-2", at_ms=DAY0 - 2 * DAY_MS)  # an active day (an outcome alone is not one)
    member.outcome("same-day", clicked=True, played=False, at_ms=DAY0 + 1)  # the entry day, before entering
    member.exposure("imp", ["a:more"], at_ms=DAY0 + 10)
    member.exposure("imp-b", ["a:control"], at_ms=DAY0 + 20)  # a member's variant never changes
    member.outcome("post", clicked=False, played=False, at_ms=DAY0 + 30)
    member.play("start", "pb", 0, "START", at_ms=DAY0 + 40)
    member.play("half", "pb", 1_800_000, "PROGRESS", at_ms=DAY0 + 50)
    member.play("stop", "pb", 2_400_000, "STOP", at_ms=DAY0 + 60)
    member.active("next-day", at_ms=DAY0 + 10 + DAY_MS)
    assert list(member.entries) == ["a:more"]
    entry = member.entries["a:more"]
    assert (entry.pre.clicks, entry.pre.plays, entry.pre.impressions, entry.pre.active_days) == (1, 1, 1, 1)
    assert (entry.post.impressions, entry.post.clicks, entry.post.watch_ms) == (1, 0, 2_400_000)
    assert (entry.active_d1, entry.active_d7) == (True, False)
    assert entry.contribution("watch_minutes") == (40.0, 1.0, 0.0)
    # an event of the pre-exposure window arriving late still counts there
    member.active("late", at_ms=DAY0 - 5 * DAY_MS)
    assert member.entries["a:more"].pre.active_days == 2


def test_state_stays_bounded() -> None:
    member = MemberMetrics()
    for n in range(10_000):
        member.active(f"e{n}", at_ms=DAY0 + n * DAY_MS // 10)
    member.exposure("imp", [f"x{n}:v" for n in range(40)], at_ms=DAY0)
    assert len(member.seen) <= 512 and len(member.days) <= PRE_DAYS + 1 and len(member.recent) <= 256
    assert len(member.entries) == 16 and member.refused == 24


order_steps = st.lists(st.one_of(
    st.tuples(st.just("outcome"), st.integers(0, 3 * DAY_MS), st.booleans(), st.booleans()),
    st.tuples(st.just("play"), st.integers(0, 3 * DAY_MS), st.integers(0, 3_600_000)),
    st.tuples(st.just("active"), st.integers(0, 10 * DAY_MS)),
), max_size=40)


@settings(max_examples=100, deadline=None)
@given(order_steps, st.integers(0, 3 * DAY_MS), st.randoms(use_true_random=False))
def test_what_a_member_did_counts_the_same_in_any_arrival_order(steps: list[tuple[Any, ...]], entered_at: int,
                                                                rnd: Any) -> None:
    """The topics deliver in no order across each other: an outcome or a play may arrive before the impression
    that made the member enter. The member's totals end the same either way."""
    events: list[tuple[Any, ...]] = [("exposure", "imp", DAY0 + entered_at, ("a:more",))]
    for n, step in enumerate(steps):
        kind, at, *rest = step
        events.append((kind, f"e{n}", DAY0 + at, *([f"pb{n}", rest[0], "STOP"] if kind == "play" else rest)))

    def final(order: list[tuple[Any, ...]]) -> Any:
        member = MemberMetrics()
        for kind, event_id, at, *rest in order:
            apply(member, (kind, event_id, at, *rest))
        entry = member.entries["a:more"]
        return entry.entered_ms, entry.pre, entry.post, entry.active_d1, entry.active_d7

    in_time = final(sorted(events, key=lambda e: e[2]))
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert final(shuffled) == in_time


def test_an_earlier_impression_arriving_late_moves_the_entry_back() -> None:
    member = MemberMetrics()
    member.outcome("o1", clicked=True, played=False, at_ms=DAY0 + 100)
    member.exposure("late-first", ["a:more"], at_ms=DAY0 + 200)
    assert member.entries["a:more"].post.clicks == 0  # before the (second) impression
    deltas = member.exposure("early", ["a:more"], at_ms=DAY0 + 50)
    assert member.entries["a:more"].entered_ms == DAY0 + 50 and member.entries["a:more"].post.clicks == 1
    assert {d.metric for d in deltas} == {"ctr", "play_rate"} and all(d.totals.n == 0 for d in deltas)
