"""A whole experiment in memory: a simulated population with a known true effect, through the metrics job's
per-member logic and sums, to the report, which must find the truth (numpy only, no services)."""

from __future__ import annotations

from infra.replay.population import Population, SimulatedEvent, TrueResponse
from jobs.experiments.definition import Experiment, Variant
from jobs.experiments.metrics import DAY_MS, MemberMetrics, VariantSums
from jobs.experiments.report import SumsRow, build_report

START = 20_000 * DAY_MS


def run(experiment: Experiment, population: Population, days: int = 7, pre_days: int = 3) -> list[SumsRow]:
    """The days before the experiment (pre-exposure activity, no labels), then its days; the daily rows the
    metrics job would write."""
    members: dict[str, MemberMetrics] = {}
    sums: dict[str, VariantSums] = {}
    rows = []

    def apply(event: SimulatedEvent) -> None:
        member = members.setdefault(event.member_id, MemberMetrics())
        if event.kind == "exposure":
            labels, device = event.payload
            deltas = member.exposure(event.event_id, labels, event.at_ms, str(device))
        elif event.kind == "outcome":
            deltas = member.outcome(event.event_id, bool(event.payload[0]), bool(event.payload[1]), event.at_ms)
        else:
            deltas = member.play(event.event_id, str(event.payload[0]), int(event.payload[1]),
                                 "STOP", event.at_ms)
        for delta in deltas:
            sums.setdefault(delta.label, VariantSums()).add([delta])

    for day in range(-pre_days, days):
        for event in population.day(START + day * DAY_MS, [experiment] if day >= 0 else []):
            apply(event)
        for label, variant_sums in sums.items():
            for row_day, segment, metric, totals in variant_sums.changed():
                rows.append(SumsRow(row_day, label.partition(":")[2], segment, metric, totals))
    return rows


def experiment(treatment: str) -> Experiment:
    return Experiment("diversity", "ranking", "sim", (Variant("control"),
                                                      Variant("diverse", 1.0, {"rows.diversity": treatment})),
                      start_ms=START)


def test_the_report_finds_the_planted_effect() -> None:
    response = TrueResponse("rows.diversity", default=0.3, base_ctr=0.05, ctr_per_unit=1.0)
    test = experiment("0.5")
    truth = response.true_lift(test.variants[1].overrides, test.control.overrides)
    assert abs(truth - 0.20) < 1e-9
    report = build_report(test, run(test, Population(3_000, response, seed=11)))
    ctr = next(r for r in report.results if r.metric == "ctr")
    assert report.sample_ratio_ok and sum(report.members.values()) > 2_500
    assert ctr.lift.low <= truth <= ctr.lift.high and ctr.lift.significant
    assert ctr.cuped and (ctr.lift.high - ctr.lift.low) <= (ctr.unadjusted.high - ctr.unadjusted.low)
    assert set(ctr.segments) == {"TV", "MOBILE", "WEB"}


def test_a_variant_that_changes_nothing_the_members_respond_to_shows_no_lift() -> None:
    response = TrueResponse("rows.popularity_penalty", default=0.1)  # members do not care about diversity
    report = build_report(experiment("0.5"), run(experiment("0.5"), Population(3_000, response, seed=12)))
    ctr = next(r for r in report.results if r.metric == "ctr")
    assert ctr.lift.low <= 0 <= ctr.lift.high and ctr.sequential_p_value > 0.05
