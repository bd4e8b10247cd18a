"""``nextwatch eval --out DIR``: the table as JSON and CSV, and recall over time as an SVG plot, beside the text.

The plot is drawn here (a few SVG elements), so it needs no plotting package: one line per model
(the scorer's signals left out), cumulative Recall@k of the reported part against event time.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from jobs.evaluation import BASELINE_MARK, Report, Score
from jobs.intervals import Interval, Resamples

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _interval(interval: Interval) -> dict[str, float | None]:
    """An interval as JSON: a figure that does not exist (the ratio to a baseline that found nothing) is null."""
    return {name: round(value, 6) if math.isfinite(value) else None
            for name, value in (("estimate", interval.estimate), ("low", interval.low), ("high", interval.high))}


def _part(scores: Mapping[str, Score], resamples: int) -> dict[str, Any]:
    runs = Resamples(scores, resamples)
    models = {name: {"recall": _interval(runs.interval(name, "recall")), "ndcg": _interval(runs.interval(name, "ndcg")),
                     "rmse": score.rmse, "positives": score.positives, "members": len(score.members)}
              for name, score in scores.items() if score.positives or score.rmse is not None}
    baselines = [name for name in scores if name.endswith(BASELINE_MARK) and scores[name].positives]
    comparisons = []
    if baselines:
        best = max(baselines, key=lambda name: scores[name].recall)
        for name, score in scores.items():
            if name in baselines or ": " in name or not score.positives:
                continue
            for metric in ("recall", "ndcg"):
                found = runs.compare(name, best, metric)  # type: ignore[arg-type]
                comparisons.append({"model": name, "baseline": best, "metric": metric,
                                    "difference": _interval(found.difference), "ratio": _interval(found.ratio),
                                    "p_value": found.p_value, "members": found.members})
    return {"models": models, "paired_with_best_baseline": comparisons}


def summary(report: Report, k: int, resamples: int) -> dict[str, Any]:
    """Everything ``nextwatch eval`` prints, as data."""
    return {
        "k": k, "events": report.events, "reported_events": report.reported_events,
        "report_after_ms": report.report_after_ms, "seconds": round(report.seconds, 1), "resamples": resamples,
        "all": _part(report.scores, resamples),
        "slices": {part: _part(scores, resamples) for part, scores in report.slices.items()},
        "scorer_blends": report.blends,
        "timeline": [{"time_ms": time_ms,
                      "models": {name: {"positives": p, "hits": h} for name, (p, h) in models.items()}}
                     for time_ms, models in report.timeline],
    }


def write_outputs(report: Report, k: int, resamples: int, out: Path) -> list[Path]:
    """``eval.json``, ``eval.csv`` and ``recall-over-time.svg`` in ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    data = summary(report, k, resamples)
    paths = [out / "eval.json", out / "eval.csv", out / "recall-over-time.svg"]
    paths[0].write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")  # NaN is not JSON
    with paths[1].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["part", "model", f"recall_at_{k}", "recall_low", "recall_high", f"ndcg_at_{k}", "ndcg_low",
                         "ndcg_high", "rmse", "positives", "members"])
        for part, found in [("all", data["all"]), *data["slices"].items()]:
            for name, row in found["models"].items():
                writer.writerow([part, name, *(row["recall"][f] for f in ("estimate", "low", "high")),
                                 *(row["ndcg"][f] for f in ("estimate", "low", "high")),
                                 "" if row["rmse"] is None else round(row["rmse"], 6), row["positives"],
                                 row["members"]])
    paths[2].write_text(recall_plot(report, k))
    return paths


def recall_plot(report: Report, k: int, width: int = 860, height: int = 420) -> str:
    """Cumulative Recall@k of each model over the reported part, against event time, as SVG."""
    left, right, top, bottom = 60, 250, 30, 50
    points = report.timeline
    names = list(points[-1][1]) if points else []
    series: dict[str, list[tuple[int, float]]] = {}
    for name in names:
        series[name] = []
        for t, models in points:
            positives, hits = models.get(name, (0, 0))
            if positives:
                series[name].append((t, hits / positives))
    times = [t for t, _ in points] or [0, 1]
    t0, t1 = min(times), max(max(times), min(times) + 1)
    top_value = max([v for line in series.values() for _, v in line] + [0.01]) * 1.1

    def x(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * (width - left - right)

    def y(v: float) -> float:
        return top + (1 - v / top_value) * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="18" font-size="14">Recall@{k} so far, reported part (cumulative)</text>',
             f'<line x1="{left}" y1="{y(0)}" x2="{width - right}" y2="{y(0)}" stroke="#444"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{y(0)}" stroke="#444"/>']
    for n in range(5):
        value = top_value * n / 4
        parts.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.2f}</text>')
        parts.append(f'<line x1="{left}" y1="{y(value):.1f}" x2="{width - right}" y2="{y(value):.1f}" '
                     f'stroke="#ddd"/>')
    for n in range(3):
        moment = t0 + (t1 - t0) * n / 2
        label = time.strftime("%Y-%m-%d", time.gmtime(moment / 1000))
        parts.append(f'<text x="{x(moment):.1f}" y="{height - bottom + 18}" text-anchor="middle">{label}</text>')
    for n, (name, line) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        if line:
            coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in line)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>')
        if line:
            parts.append(f'<text x="{width - right + 10}" y="{top + 16 * n + 10}" fill="{colour}">'
                         f'{escape(name)} {line[-1][1]:.4f}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
