"""A synthetic member population whose true response depends on the settings it is served.

Each member has a taste (a click-propensity multiplier, Gamma with mean 1), a device and a
chance of being active each day. On an active day they are shown ``rows`` impressions of
``items`` titles, each page built, as the rows job would, under the variant that member gets in
each running experiment they are eligible for (:func:`jobs.experiments.assignment.assign`); they
click each title with probability ``taste x TrueResponse.ctr(value)``, where ``value`` is the served
setting (their variant's, else the default), and play half of what they click. The true effect of
an experiment on CTR is therefore known (:meth:`TrueResponse.true_lift`), which the report's
estimates are checked against.

The events come out as the metrics job's operator sees them (:class:`SimulatedEvent`), so a whole
experiment runs through :class:`jobs.experiments.metrics.MemberMetrics` in memory.

>>> response = TrueResponse("rows.diversity", default=0.3, base_ctr=0.05, ctr_per_unit=1.0)
>>> round(response.ctr(0.5), 4), round(response.true_lift({"rows.diversity": "0.5"}, {}), 3)
(0.06, 0.2)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from jobs.experiments.assignment import assign, settings_for
from jobs.experiments.definition import Experiment, Exposure

DAY_MS = 86_400_000
DEVICES = ("TV", "MOBILE", "WEB")


@dataclass(frozen=True)
class TrueResponse:
    """How members respond to one setting: CTR moves by ``ctr_per_unit`` (relative) per unit above the default."""

    setting: str = "rows.diversity"
    default: float = 0.3
    base_ctr: float = 0.05
    ctr_per_unit: float = 0.5
    play_share: float = 0.5  # of clicks
    watch_minutes: float = 40.0  # per play

    def ctr(self, value: float) -> float:
        return self.base_ctr * max(0.0, 1.0 + self.ctr_per_unit * (value - self.default))

    def served(self, overrides: Mapping[str, str]) -> float:
        return float(overrides.get(self.setting, self.default))

    def true_lift(self, treatment: Mapping[str, str], control: Mapping[str, str]) -> float:
        """The treatment's true relative CTR lift over control (tastes average 1 in every variant)."""
        return self.ctr(self.served(treatment)) / self.ctr(self.served(control)) - 1


@dataclass(frozen=True)
class SimulatedEvent:
    """``kind`` is exposure (payload: labels, device), outcome (clicked, played) or play (watch ms)."""

    kind: str
    member_id: str
    event_id: str
    at_ms: int
    payload: tuple[object, ...]


class Population:
    def __init__(self, members: int, response: TrueResponse, seed: int = 7, active_share: float = 0.5,
                 rows: int = 1, items: int = 5) -> None:
        if members < 1 or not 0 < active_share <= 1 or rows < 1 or items < 1:
            raise ValueError("members, rows and items >= 1 and active_share in (0, 1]")
        self.rng = np.random.default_rng(seed)
        self.ids = [f"sim-{seed}-{n}" for n in range(members)]
        self.taste = self.rng.gamma(4.0, 0.25, members)
        self.device = self.rng.choice(DEVICES, members)
        self.response, self.active_share, self.rows, self.items = response, active_share, rows, items

    def day(self, day_ms: int, experiments: Sequence[Experiment]) -> Iterator[SimulatedEvent]:
        """One day's events of every member active that day, in time order within each member."""
        active = np.flatnonzero(self.rng.random(len(self.ids)) < self.active_share)
        for n in active:
            member, device = self.ids[n], str(self.device[n])
            at = day_ms + int(self.rng.integers(0, DAY_MS - 10 * self.rows * self.items))
            assignments = assign(experiments, member, Exposure(device_class=device), at)
            labels = tuple(a.label for a in assignments)
            component = self.response.setting.partition(".")[0]
            overrides = {f"{component}.{k}": v for k, v in settings_for(assignments, component).items()}
            ctr = min(1.0, float(self.taste[n]) * self.response.ctr(self.response.served(overrides)))
            for row in range(self.rows):
                impression = f"{member}-{at}-{row}"
                yield SimulatedEvent("exposure", member, impression, at, (labels, device))
                for slot in range(self.items):
                    clicked = bool(self.rng.random() < ctr)
                    played = clicked and bool(self.rng.random() < self.response.play_share)
                    yield SimulatedEvent("outcome", member, f"{impression}:{slot}", at + 1 + slot, (clicked, played))
                    if played:
                        watched = int(self.rng.exponential(self.response.watch_minutes) * 60_000)
                        yield SimulatedEvent("play", member, f"{impression}:{slot}:play", at + 2 + slot,
                                             (f"{impression}:{slot}", watched))
                at += 10 * self.items
