"""An experiment's report: per metric and variant, the estimate, the lift over control with its interval,
CUPED where pre-exposure data exist, the sample-ratio check, and the always-valid p-value over the days.

Built from the metrics job's rows (:class:`SumsRow`: the sums of one variant, segment and metric as of
one day; a day without a row keeps the day before's). Printed by ``nextwatch experiments report`` and
written as an HTML page with plots (:func:`html_report`).

>>> from jobs.experiments.definition import Experiment, Variant
>>> from jobs.experiments.stats import Totals
>>> test = Experiment("div", "ranking", "s", (Variant("control"), Variant("more")))
>>> rows = [SumsRow(1, v, "all", "ctr", Totals.of([c] * 500 + [0] * 9500, [1] * 10000))
...         for v, c in (("control", 1), ("more", 1))]
>>> report = build_report(test, rows)
>>> (report.members, round(report.srm_p_value, 3))
({'control': 10000, 'more': 10000}, 1.0)
>>> result = report.results[0]
>>> (result.metric, result.variant, round(result.lift.lift, 3), result.lift.significant)
('ctr', 'more', 0.0, False)
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from jobs.experiments.definition import Experiment
from jobs.experiments.metrics import ALL_MEMBERS, DAY_MS, METRICS
from jobs.experiments.stats import Lift, Totals, estimates, relative_lift, running_min, srm_p_value

SRM_ALPHA = 0.001  # below this the split is broken: no lift of the experiment should be trusted
SHARED_MODELS_NOTE = ("Variants share the models that learn from every member (row order, artwork, item vectors, "
                      "blends), so what one variant teaches reaches the others: measured lifts are biased toward "
                      "zero.")
METRIC_NAMES = {"ctr": "click-through rate (clicks / impressions)", "play_rate": "plays / impressions",
                "watch_minutes": "watch minutes per member", "active_d1": "active again 1+ days after entering",
                "active_d7": "active again 7+ days after entering"}


@dataclass(frozen=True)
class SumsRow:
    day: int  # days since 1970-01-01 UTC
    variant: str
    segment: str
    metric: str
    totals: Totals


class StoredRow(Protocol):
    """A row as the store reads it (``connectors.experiment_store.MetricRow``): sums with the members first."""

    @property
    def day(self) -> int: ...
    @property
    def variant(self) -> str: ...
    @property
    def segment(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def sums(self) -> tuple[float, ...]: ...


def sums_rows(stored: Iterable[StoredRow]) -> list[SumsRow]:
    return [SumsRow(r.day, r.variant, r.segment, r.metric, Totals(int(r.sums[0]), *r.sums[1:])) for r in stored]


@dataclass(frozen=True)
class MetricResult:
    """One metric of one treatment variant against control, on the latest day."""

    metric: str
    variant: str
    lift: Lift  # CUPED-adjusted where pre-exposure data exist
    unadjusted: Lift
    cuped: bool
    sequential_p_value: float  # the running minimum over the days: valid however often it is read
    over_time: tuple[tuple[int, Lift], ...]  # (day, lift as of that day)
    segments: dict[str, Lift]  # segment -> lift there (device class members entered on)


@dataclass(frozen=True)
class ExperimentReport:
    experiment: Experiment
    days: tuple[int, ...]
    members: dict[str, int]  # variant -> members entered (latest day)
    srm_p_value: float
    results: list[MetricResult] = field(default_factory=list)
    confidence: float = 0.95

    @property
    def sample_ratio_ok(self) -> bool:
        return not self.srm_p_value < SRM_ALPHA


def _as_of(rows: Iterable[SumsRow]) -> tuple[list[int], dict[tuple[str, str, str], dict[int, Totals]]]:
    """Every day, and per (variant, segment, metric) the sums as of each day (carried forward)."""
    by_key: dict[tuple[str, str, str], dict[int, Totals]] = {}
    for row in rows:
        by_key.setdefault((row.variant, row.segment, row.metric), {})[row.day] = row.totals
    days = sorted({day for values in by_key.values() for day in values})
    filled = {}
    for key, values in by_key.items():
        held, out = None, {}
        for day in days:
            held = values.get(day, held)
            if held is not None:
                out[day] = held
        filled[key] = out
    return days, filled


def build_report(experiment: Experiment, rows: Iterable[SumsRow], confidence: float = 0.95) -> ExperimentReport:
    days, sums = _as_of(rows)
    control = experiment.control.name
    names = [v.name for v in experiment.variants]
    last = days[-1] if days else None

    def totals(variant: str, segment: str, metric: str, day: int | None) -> Totals:
        return sums.get((variant, segment, metric), {}).get(day, Totals()) if day is not None else Totals()

    members = {name: max((totals(name, ALL_MEMBERS, m, last).n for m in METRICS), default=0) for name in names}
    srm = srm_p_value([members[n] for n in names], [v.weight for v in experiment.variants])
    segments = sorted({segment for _, segment, _ in sums if segment != ALL_MEMBERS})
    results = []
    for metric in METRICS:
        for variant in names[1:]:
            def lift(day: int | None, segment: str = ALL_MEMBERS, cuped: bool = True,
                     variant: str = variant, metric: str = metric) -> Lift:
                arms = [totals(control, segment, metric, day), totals(variant, segment, metric, day)]
                control_estimate, variant_estimate = estimates(arms, cuped=cuped)
                return relative_lift(control_estimate, variant_estimate, confidence=confidence)

            over_time = tuple((day, lift(day)) for day in days)
            arms_now = [totals(control, ALL_MEMBERS, metric, last), totals(variant, ALL_MEMBERS, metric, last)]
            results.append(MetricResult(
                metric, variant, lift(last), lift(last, cuped=False), all(a.has_pre for a in arms_now),
                running_min([point.sequential_p_value for _, point in over_time])[-1] if over_time else math.nan,
                over_time, {segment: lift(last, segment) for segment in segments}))
    return ExperimentReport(experiment, tuple(days), members, srm, results, confidence)


def _date(day: int) -> str:
    return datetime.fromtimestamp(day * DAY_MS / 1000, tz=UTC).strftime("%Y-%m-%d")


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.2%}"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else (f"{value:.2g}" if value < 0.001 else f"{value:.3f}")


def format_report(report: ExperimentReport) -> str:
    """The report as text: the split, then one line per metric and treatment."""
    experiment = report.experiment
    total = sum(v.weight for v in experiment.variants) or 1.0
    span = f"{_date(report.days[0])} to {_date(report.days[-1])}" if report.days else "no data yet"
    lines = [f"experiment {experiment.name} (v{experiment.version}, layer {experiment.layer}): {span}"]
    split = ", ".join(f"{name} {count:,} ({v.weight / total:.0%} planned)"
                      for (name, count), v in zip(report.members.items(), experiment.variants, strict=True))
    lines.append(f"members: {split}")
    verdict = "ok" if report.sample_ratio_ok else "MISMATCH: the split or the logging is broken; trust no lift below"
    lines.append(f"sample ratio: p = {_p(report.srm_p_value)} ({verdict})")
    level = f"{report.confidence:.0%}"
    lines.append(f"{'metric':<14} {'variant':<12} {'control':>10} {'variant':>10} {'lift':>9} "
                 f"{level + ' interval':>22} {'p':>8} {'always-valid p':>15}  CUPED")
    for result in report.results:
        lift = result.lift
        interval = f"[{_pct(lift.low)}, {_pct(lift.high)}]"
        width_ratio = ((lift.high - lift.low) / (result.unadjusted.high - result.unadjusted.low)
                       if result.cuped and result.unadjusted.high > result.unadjusted.low else math.nan)
        cuped = f"yes (interval {width_ratio:.2f}x)" if result.cuped else "no pre-exposure data"
        lines.append(f"{result.metric:<14} {result.variant:<12} {lift.control.value:>10.4g} "
                     f"{lift.treatment.value:>10.4g} {_pct(lift.lift):>9} {interval:>22} {_p(lift.p_value):>8} "
                     f"{_p(result.sequential_p_value):>15}  {cuped}")
    lines.append("p: fixed horizon, valid read once at the planned end; always-valid p: valid at every look.")
    lines.append(SHARED_MODELS_NOTE)
    return "\n".join(lines)


def _lift_plot(points: Sequence[tuple[int, Lift]], width: int = 520, height: int = 200) -> str:
    """The lift over the days with its interval as a band, as inline SVG."""
    usable = [(day, lift) for day, lift in points if not math.isnan(lift.lift)]
    if not usable:
        return "<p>No lift yet: a variant has no members or no denominator.</p>"
    lows = [lift.low for _, lift in usable] + [0.0]
    highs = [lift.high for _, lift in usable] + [0.0]
    bottom, top = min(lows), max(highs)
    top = top if top > bottom else bottom + 0.01
    first, last = usable[0][0], usable[-1][0]
    pad = 40

    def x(day: int) -> float:
        return pad + (width - 2 * pad) * ((day - first) / (last - first) if last > first else 0.5)

    def y(value: float) -> float:
        return height - pad / 2 - (height - pad) * (value - bottom) / (top - bottom)

    band = [f"{x(d):.1f},{y(lift.high):.1f}" for d, lift in usable] + \
        [f"{x(d):.1f},{y(lift.low):.1f}" for d, lift in reversed(usable)]
    line = " ".join(f"{x(d):.1f},{y(lift.lift):.1f}" for d, lift in usable)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f'<polygon points="{" ".join(band)}" fill="#9ecae1" opacity="0.6"/>'
            f'<line x1="{pad}" x2="{width - pad}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#555" stroke-dasharray="4"/>'
            f'<polyline points="{line}" fill="none" stroke="#08519c" stroke-width="2"/>'
            f'<text x="4" y="{y(top) + 4:.1f}" font-size="11">{_pct(top)}</text>'
            f'<text x="4" y="{y(bottom):.1f}" font-size="11">{_pct(bottom)}</text>'
            f'<text x="{pad}" y="{height - 2}" font-size="11">{_date(first)}</text>'
            f'<text x="{width - pad - 60}" y="{height - 2}" font-size="11">{_date(last)}</text></svg>')


def _segment_plot(segments: dict[str, Lift], width: int = 520) -> str:
    """Each segment's lift with its interval, as horizontal bars of inline SVG."""
    usable = {name: lift for name, lift in sorted(segments.items()) if not math.isnan(lift.lift)}
    if not usable:
        return "<p>No segment has members in every variant yet.</p>"
    bottom = min([lift.low for lift in usable.values()] + [0.0])
    top = max([lift.high for lift in usable.values()] + [0.0])
    top = top if top > bottom else bottom + 0.01
    height, left = 24 * len(usable) + 20, 90

    def x(value: float) -> float:
        return left + (width - left - 20) * (value - bottom) / (top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="0" y2="{height - 16}" stroke="#555" stroke-dasharray="4"/>']
    for row, (name, lift) in enumerate(usable.items()):
        mid = 14 + 24 * row
        parts.append(f'<text x="4" y="{mid + 4}" font-size="12">{html.escape(name)}</text>'
                     f'<line x1="{x(lift.low):.1f}" x2="{x(lift.high):.1f}" y1="{mid}" y2="{mid}" stroke="#08519c" '
                     f'stroke-width="3"/><circle cx="{x(lift.lift):.1f}" cy="{mid}" r="4" fill="#08519c"/>')
    parts.append(f'<text x="{left}" y="{height - 2}" font-size="11">{_pct(bottom)}</text>'
                 f'<text x="{width - 70}" y="{height - 2}" font-size="11">{_pct(top)}</text></svg>')
    return "".join(parts)


def html_report(report: ExperimentReport) -> str:
    """A page of its own: the split, a table per metric, lift over time and per segment as plots."""
    experiment = report.experiment
    e = html.escape
    srm_class = "ok" if report.sample_ratio_ok else "bad"
    rows = []
    for result in report.results:
        lift = result.lift
        rows.append(f"<tr><td>{e(METRIC_NAMES.get(result.metric, result.metric))}</td><td>{e(result.variant)}</td>"
                    f"<td>{lift.control.value:.4g}</td><td>{lift.treatment.value:.4g}</td><td>{_pct(lift.lift)}</td>"
                    f"<td>[{_pct(lift.low)}, {_pct(lift.high)}]</td><td>{_p(lift.p_value)}</td>"
                    f"<td>{_p(result.sequential_p_value)}</td><td>{'yes' if result.cuped else 'no'}</td></tr>")
    plots = "".join(
        f"<section><h3>{e(METRIC_NAMES.get(r.metric, r.metric))}: {e(r.variant)} against "
        f"{e(experiment.control.name)}</h3><div class='plots'><figure>{_lift_plot(r.over_time)}"
        f"<figcaption>lift over time, {report.confidence:.0%} interval</figcaption></figure>"
        f"<figure>{_segment_plot(r.segments)}<figcaption>by device members entered on</figcaption></figure>"
        f"</div></section>" for r in report.results)
    split = " · ".join(f"{e(name)}: {count:,}" for name, count in report.members.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Experiment {e(experiment.name)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }} td, th {{ padding: .3rem .6rem; border-bottom: 1px solid #ddd; }}
.ok {{ color: #1a7f37; }} .bad {{ color: #b42318; font-weight: bold; }} .note {{ color: #555; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 1rem; }} figure {{ margin: 0; }}
</style></head><body>
<h1>Experiment {e(experiment.name)}</h1>
<p>{e(experiment.description)}</p>
<p>Layer {e(experiment.layer)}, {experiment.traffic:.0%} of its members, version {experiment.version}.
Members per variant: {split}.</p>
<p class="{srm_class}">Sample ratio: p = {_p(report.srm_p_value)}
{"(as planned)" if report.sample_ratio_ok else "— a mismatch: the split or the logging is broken; trust no lift."}</p>
<table><tr><th>metric</th><th>variant</th><th>control</th><th>variant</th><th>lift</th>
<th>{report.confidence:.0%} interval</th><th>p (fixed horizon)</th><th>always-valid p</th><th>CUPED</th></tr>
{"".join(rows)}</table>
<p class="note">The fixed-horizon p-value is valid only when read once, at the planned end; the always-valid p-value
may be read every day. {e(SHARED_MODELS_NOTE)}</p>
{plots}
</body></html>
"""
