"""Flush pacing: within its bounds whatever arrives; long only after a sustained backlog."""

from __future__ import annotations

import random

import pytest

from jobs.pacing import FlushPacing


@pytest.mark.parametrize("seed", range(20))
def test_the_delay_stays_within_its_bounds(seed: int) -> None:
    rng = random.Random(seed)
    pacing, now = FlushPacing(base_ms=100, max_ms=1_000), 0
    for _ in range(500):  # arrivals of any spacing, lags from the future to months behind
        now += rng.choice([0, 1, 50, 999, 1_000, 2_500, 60_000])
        pacing.observe(now, now - rng.choice([-10**7, 0, 200, 30_000, 10**10]))
        assert 100 <= pacing.delay_ms() <= 1_000


def test_a_backlog_stretches_the_delay_and_catching_up_restores_it() -> None:
    pacing = FlushPacing(base_ms=100, max_ms=1_000)
    for now in range(0, 5_000, 50):  # 5 s of events 4 s behind: the delay is 10% of the backlog
        pacing.observe(now, now - 4_000)
    assert pacing.delay_ms() == 400
    pacing.observe(5_000, 4_990)
    assert pacing.delay_ms() == 100
    for now in range(6_000, 6_900, 50):  # late events within one window only: no backlog yet
        pacing.observe(now, 0)
    assert pacing.delay_ms() == 100


def test_an_idle_gap_forgets_the_backlog() -> None:
    pacing = FlushPacing(base_ms=100, max_ms=1_000)
    for now in range(0, 3_000, 100):
        pacing.observe(now, now - 60_000)
    assert pacing.delay_ms() == 1_000
    pacing.observe(60_000, 0)  # a minute later, one old event: not two windows in a row of them
    assert pacing.delay_ms() == 100


@pytest.mark.parametrize("bad", [dict(base_ms=0), dict(base_ms=100, max_ms=50), dict(base_ms=100, share=0)])
def test_bad_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FlushPacing(**bad)  # type: ignore[arg-type]
