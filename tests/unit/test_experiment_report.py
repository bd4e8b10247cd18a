"""The report from the metrics job's daily rows: lifts over time, CUPED, the sample-ratio check, text and HTML."""

from __future__ import annotations

import math
from html.parser import HTMLParser

import numpy as np

from jobs.experiments.definition import Experiment, Variant
from jobs.experiments.metrics import METRICS
from jobs.experiments.report import SHARED_MODELS_NOTE, SumsRow, build_report, format_report, html_report
from jobs.experiments.stats import Totals

TEST = Experiment("diversity", "ranking", "s", (Variant("control"), Variant("diverse", 1.0, {"rows.diversity": "0.5"})),
                  description="diversity 0.5 against 0.3")
DAY = 20_000


def daily_rows(seed: int, lift: float, days: int = 7, per_day: int = 3000, drop: float = 0.0) -> list[SumsRow]:
    """Cumulative rows per day for both variants and two device segments; the treatment's CTR is
    ``1 + lift`` times control's, and members' pre-exposure clicks predict their clicks."""
    rng = np.random.default_rng(seed)
    rows = []
    for variant, factor, keep in (("control", 1.0, 1.0), ("diverse", 1.0 + lift, 1.0 - drop)):
        count = int(days * per_day * keep)
        entered = rng.integers(0, days, count)
        device = rng.choice(["TV", "MOBILE"], count)
        taste = rng.gamma(2.0, 0.025, count)
        impressions = 1 + rng.poisson(9, count)
        clicks = rng.binomial(impressions, np.minimum(taste * factor, 1.0))
        pre = rng.binomial(10, np.minimum(taste, 1.0))
        for day in range(days):
            for segment in ("all", "TV", "MOBILE"):
                mask = (entered <= day) & ((device == segment) | (segment == "all"))
                totals = Totals.of(clicks[mask], impressions[mask], pre[mask])
                rows += [SumsRow(DAY + day, variant, segment, "ctr", totals)]
                rows += [SumsRow(DAY + day, variant, segment, metric, Totals.of(clicks[mask] / 10.0, pre=pre[mask]))
                         for metric in METRICS if metric != "ctr"]
    return rows


def test_a_planted_lift_is_found_with_cuped_narrowing_its_interval() -> None:
    report = build_report(TEST, daily_rows(1, 0.10))
    ctr = next(r for r in report.results if r.metric == "ctr")
    assert ctr.variant == "diverse" and ctr.cuped and ctr.lift.low <= 0.10 <= ctr.lift.high
    assert ctr.lift.significant and ctr.sequential_p_value < 0.05
    assert (ctr.lift.high - ctr.lift.low) < (ctr.unadjusted.high - ctr.unadjusted.low)
    assert [day for day, _ in ctr.over_time] == list(range(DAY, DAY + 7))
    assert set(ctr.segments) == {"TV", "MOBILE"} and all(s.lift > 0 for s in ctr.segments.values())
    assert report.sample_ratio_ok and report.members == {"control": 21_000, "diverse": 21_000}


def test_an_aa_experiment_shows_no_lift_and_a_sample_ratio_mismatch_is_flagged() -> None:
    report = build_report(TEST, daily_rows(2, 0.0))
    ctr = next(r for r in report.results if r.metric == "ctr")
    assert ctr.lift.low <= 0 <= ctr.lift.high and ctr.sequential_p_value > 0.05
    broken = build_report(TEST, daily_rows(3, 0.0, drop=0.05))
    assert not broken.sample_ratio_ok and broken.srm_p_value < 0.001
    assert "MISMATCH" in format_report(broken)


def test_a_day_without_a_row_keeps_the_day_before() -> None:
    rows = [r for r in daily_rows(4, 0.1, days=3) if not (r.day == DAY + 1 and r.metric == "ctr")]
    report = build_report(TEST, rows)
    ctr = next(r for r in report.results if r.metric == "ctr")
    assert [day for day, _ in ctr.over_time] == [DAY, DAY + 1, DAY + 2]
    assert ctr.over_time[1][1] == ctr.over_time[0][1] != ctr.over_time[2][1]  # carried forward


def test_no_rows_yet_reports_nothing_without_failing() -> None:
    report = build_report(TEST, [])
    assert report.days == () and report.members == {"control": 0, "diverse": 0}
    assert all(math.isnan(r.lift.lift) for r in report.results)
    text = format_report(report)
    assert "no data yet" in text and SHARED_MODELS_NOTE in text
    assert "No lift yet" in html_report(report)


def test_text_and_html_say_what_matters() -> None:
    report = build_report(TEST, daily_rows(5, 0.10))
    text = format_report(report)
    assert "members: control 21,000 (50% planned), diverse 21,000 (50% planned)" in text
    assert "always-valid p" in text and "ctr            diverse" in text and SHARED_MODELS_NOTE in text
    page = html_report(report)

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        def handle_starttag(self, tag: str, attrs: object) -> None:
            self.seen.append(tag)

    parser = Tags()
    parser.feed(page)
    assert parser.seen.count("svg") == 2 * len(report.results) and parser.seen.count("tr") == 1 + len(report.results)
    assert "diversity 0.5 against 0.3" in page and "biased toward" in page
