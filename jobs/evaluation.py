"""Leak-free test-then-train evaluation of the online models (``nextwatch eval``).

The stream is replayed in time order. At the first event of a (user, title) pair,
before any model learns from it:

* if the pair is eventually rated, every model that predicts ratings predicts it
  (RMSE);
* if that rating is a positive (>= ``positive_at``), every model ranks all titles
  the user has not touched yet (being shown is not being touched) and we note
  whether the title is in its top ``k`` (Recall@k) and where (NDCG@k). A title a
  model has never seen (not even in the catalog the content signal reads) cannot be
  ranked by it: it counts as a miss.

Cold start is reported separately: positives of users with fewer than
``new_user_events`` past events, and positives on titles in their first week in the
stream (counted from the title's first event).

Then every model learns from the event.

With ``report_after_ms`` the stream is split at that time: everything learns from the
first part, and what learns settings from its own rankings (the scorer's blend) learns
them there too, but only positives after it are counted. Every tally is also kept per
member, so :mod:`jobs.intervals` can put bootstrap intervals over members around each
figure and compare two models on the same members. Baselines run in the same stream:
popularity, river's BiasedMF and the plain co-occurrence kNN over the last 20 titles.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np

from jobs.intervals import Resamples
from jobs.models.arrivals import NewArrivals
from jobs.models.base import Feedback, Recommender, Search
from jobs.models.content import ContentProfile, TitleText
from jobs.models.feedback import feedback_from_event, search_from_event
from jobs.models.item_cf import ItemCooccurrence
from jobs.models.mf import ImplicitMF, RatingMF
from jobs.models.neural import NeuralSequence
from jobs.models.popularity import Popularity
from jobs.models.river_mf import RiverBiasedMF
from jobs.models.scorer import Scorer
from jobs.models.search import SearchIntent
from jobs.models.sequence import Transitions
from jobs.models.signals import JobBlend
from jobs.models.user_knn import UserKNN

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class LabeledFeedback:
    """An event as the models see it, plus the eventual rating of its (user, title) pair when there is one."""

    feedback: Feedback
    label: float | None = None


@dataclass
class Score:
    """Running metrics of one model (or one signal of the scorer), in total and per member."""

    positives: int = 0
    hits: int = 0
    dcg: float = 0.0
    squared_error: float = 0.0
    rated: int = 0
    members: dict[str, list[float]] = field(default_factory=dict)  # member -> [positives, hits, dcg]

    def count(self, member: str, rank: int | None, k: int) -> None:
        """One positive of ``member``, ranked at ``rank`` (0-based; ``None``: it could not be ranked)."""
        tally = self.members.setdefault(member, [0.0, 0.0, 0.0])
        self.positives += 1
        tally[0] += 1
        if rank is not None and rank < k:
            gain = 1.0 / math.log2(rank + 2)
            self.hits += 1
            self.dcg += gain
            tally[1] += 1
            tally[2] += gain

    @property
    def recall(self) -> float:
        return self.hits / self.positives if self.positives else 0.0

    @property
    def ndcg(self) -> float:  # one relevant title per ranking: the ideal DCG is 1
        return self.dcg / self.positives if self.positives else 0.0

    @property
    def rmse(self) -> float | None:
        return math.sqrt(self.squared_error / self.rated) if self.rated else None


NEW_USERS = "new users"
POPULARITY_BASELINE = "popularity (baseline)"
NEW_TITLES = "new titles"
WEEK_MS = 7 * 86_400_000


@dataclass
class Report:
    scores: dict[str, Score] = field(default_factory=dict)
    slices: dict[str, dict[str, Score]] = field(default_factory=lambda: {NEW_USERS: {}, NEW_TITLES: {}})
    events: int = 0
    seconds: float = 0.0
    blends: dict[str, dict[str, float]] = field(default_factory=dict)  # the scorer's, per segment, at the end
    report_after_ms: int | None = None  # positives up to this time taught settings and were not counted
    reported_events: int = 0
    # recall over time: (event time, {model: (positives, hits)} so far), every ``every`` reported events
    timeline: list[tuple[int, dict[str, tuple[int, int]]]] = field(default_factory=list)

    def mark(self, time_ms: int) -> None:
        """A point of the timeline: each model's (not each signal's) tallies so far."""
        self.timeline.append((time_ms, {name: (score.positives, score.hits) for name, score in self.scores.items()
                                        if ": " not in name}))


def default_models(catalog: Iterable[TitleText] = ()) -> dict[str, Recommender]:
    """The scorer (its signals reported one by one too) and the three baselines.

    ``catalog`` describes the titles for the content and search signals (content is the cold
    start for titles nobody has touched); without one the scorer has neither.
    """
    signals: dict[str, Recommender] = {
        "item_cf": ItemCooccurrence(), "implicit_mf": ImplicitMF(), "popularity": Popularity(half_life_days=30),
        "rating_mf": RatingMF(), "transitions": Transitions(), "user_knn": UserKNN(), "neural": NeuralSequence()}
    catalog = list(catalog)
    if catalog:
        signals["content"] = ContentProfile(catalog)
        signals["search"] = SearchIntent(catalog)
        signals["arrivals"] = NewArrivals(catalog, half_life_days=7.0, prior=0.5)  # a week, as the new-title slice
    models: dict[str, Recommender] = {
        POPULARITY_BASELINE: Popularity(),
        "river BiasedMF (baseline)": RiverBiasedMF(),
        "item-kNN, last 20 (baseline)": ItemCooccurrence(window=20, recency=1.0, normalize=False),
        # every signal starts at 1 but new arrivals at 3 (a new title has little else speaking for it): chosen on
        # the first part, which was even overall and won on new titles with it
        "scorer": Scorer(signals, local_search=True, start={**dict.fromkeys(signals, 1.0), "arrivals": 3.0}
                         if "arrivals" in signals else None),
    }
    if catalog:  # the learning job's top picks as served: its own signals, its blends learned per segment
        neural_on = JobBlend(catalog, neural=True)  # and the default job, neural off, learned beside it
        models["learning job top picks"] = JobBlend(catalog, beside=neural_on)
        models["learning job top picks, neural on"] = neural_on
    return models


def tune_job_blends(stream: Iterable[LabeledFeedback | Search], catalog: Iterable[TitleText], until_ms: int,
                    progress: Progress | None = None, every: int = 10_000) -> str:
    """The learning job's logic (with its neural model) learns its blends from every member's touches up to
    ``until_ms``: the starting blends per segment for ``[learning]``, chosen on that part of the stream only."""
    model = JobBlend(catalog, evaluate_share=1.0, neural=True)
    started = time.monotonic()
    for n, item in enumerate(stream, start=1):
        if isinstance(item, Search):
            model.learn_search(item)
            continue
        if item.feedback.time_ms > until_ms:
            break
        model.learn_one(item.feedback)
        if progress and n % every == 0:
            progress(f"{n:,} events in {time.monotonic() - started:.0f}s, learning the job's blends")
    split = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(until_ms / 1000))
    lines = [f"# [learning]: the learning job's blends, learned on the stream up to {split} UTC"]
    for segment, learner in model.loop.blends.learners.items():
        weights = ",".join(f"{name}={weight:g}" for name, weight in learner.serving.items())
        lines.append(f'blend_{segment} = "{weights}"  # {learner.touches:,} touches, {learner.version} moves')
    return "\n".join(lines)


def ratings_stream(ratings: Iterable[tuple[str, str, float, int]]) -> Iterator[LabeledFeedback]:
    """(user, title, stars, unix seconds) in time order -> one labeled event per rating."""
    for user_id, title_id, stars, timestamp_s in ratings:
        yield LabeledFeedback(Feedback(user_id, title_id, timestamp_s * 1000, 1.0, stars), stars)


def events_stream(events: Iterable[Any],
                  labels: Mapping[tuple[str, str], float]) -> Iterator[LabeledFeedback | Search]:
    """Decoded user events (e.g. the MovieLens replay) -> what they teach, labeled with each pair's eventual rating.

    The harness tests a pair at its first event that teaches something (in the replay: the
    click, after the impression that showed the title and before the play and the rating), so
    ranking and rating prediction happen before anything about the pair is learned.
    """
    for event in events:
        feedback = feedback_from_event(event)
        if feedback is not None:
            yield LabeledFeedback(feedback, labels.get((feedback.user_id, feedback.title_id)))
        search = search_from_event(event)
        if search is not None:  # learned by the models that use searches; nothing to test
            yield search


def _rank_of(scores: np.ndarray, position: int, excluded: np.ndarray) -> int:
    """The title's 0-based rank among the candidates, ties broken as ``rank`` serves them (by position).

    A model that scores everything alike therefore ranks by index order, not perfectly.
    """
    candidate = np.where(excluded, -np.inf, scores)
    target = candidate[position]
    return int(np.count_nonzero(candidate > target) + np.count_nonzero(candidate[:position] == target))


def evaluate(stream: Iterable[LabeledFeedback | Search], models: Mapping[str, Recommender], k: int = 10,
             positive_at: float = 4.0, progress: Progress | None = None, every: int = 10_000,
             new_user_events: int = 5, report_after_ms: int | None = None, total: int | None = None) -> Report:
    """Test, then train every model on ``stream`` (``total``: its length, when known, for the progress's ETA)."""
    report = Report(report_after_ms=report_after_ms)
    for name, model in models.items():  # table rows in the models' order
        views = [name, *(f"{name}: {signal}" for signal in getattr(model, "signals", {}))]
        for view in views:
            report.scores[view] = Score()
            for scores in report.slices.values():
                scores[view] = Score()
    touched: dict[str, Touched] = {}
    past_events: dict[str, int] = {}
    title_first_ms: dict[str, int] = {}
    started = time.monotonic()

    for report.events, item in enumerate(stream, start=1):
        if isinstance(item, Search):
            for model in models.values():
                model.learn_search(item)
            continue
        event = item.feedback
        reported = report_after_ms is None or event.time_ms > report_after_ms
        report.reported_events += reported
        seen = touched.setdefault(event.user_id, Touched())
        first_ms = title_first_ms.setdefault(event.title_id, event.time_ms)
        slices = [report.slices[NEW_USERS]] if past_events.get(event.user_id, 0) < new_user_events else []
        if event.time_ms - first_ms < WEEK_MS:
            slices.append(report.slices[NEW_TITLES])
        if event.title_id not in seen and item.label is not None:
            if reported:
                for name, model in models.items():
                    prediction = model.predict_one(event.user_id, event.title_id)
                    if prediction is not None:
                        score = report.scores.setdefault(name, Score())
                        score.squared_error += (prediction - item.label) ** 2
                        score.rated += 1
            if item.label >= positive_at:
                for name, model in models.items():
                    if reported:
                        _rank(report, name, model, event, seen, k, slices)
                    elif isinstance(model, Scorer):  # the first part teaches the blend, uncounted
                        _teach_blend(model, event, seen)
        for model in models.values():
            model.learn_one(event)
        seen.add(event.title_id)
        past_events[event.user_id] = past_events.get(event.user_id, 0) + 1
        if reported and report.reported_events % max(every // 10, 1) == 0:
            report.mark(event.time_ms)
        if progress and report.events % every == 0:
            progress(_progress_line(report, started, total))
    if report.reported_events:
        report.mark(event.time_ms)
    report.seconds = time.monotonic() - started
    report.blends = next((m.serving() for m in models.values() if isinstance(m, Scorer)), {})
    return report


class Touched:
    """The titles a member has touched, in order, and their positions in each model's index (looked up once)."""

    def __init__(self) -> None:
        self.titles: dict[str, None] = {}
        self.positions: dict[int, np.ndarray] = {}  # id of a model's title index -> positions of the titles

    def __contains__(self, title_id: object) -> bool:
        return title_id in self.titles

    def add(self, title_id: str) -> None:
        self.titles[title_id] = None

    def excluded(self, model: Recommender) -> np.ndarray:
        """A mask over the model's titles: ``True`` where the member touched the title."""
        known = self.positions.get(id(model.titles), np.zeros(0, dtype=np.int64))
        if len(known) < len(self.titles):
            added = [model.titles.positions[title] for title in islice(self.titles, len(known), None)]
            known = self.positions[id(model.titles)] = np.concatenate([known, np.array(added, dtype=np.int64)])
        excluded = np.zeros(len(model.titles), dtype=bool)
        excluded[known] = True
        return excluded



def _teach_blend(model: Scorer, event: Feedback, seen: Touched) -> None:
    parts = model.signal_scores(event.user_id)
    if event.title_id in model.titles:
        model.observe(parts, event.title_id, seen.excluded(model), event.user_id)


def _rank(report: Report, name: str, model: Recommender, event: Feedback, seen: Touched, k: int,
          slices: list[dict[str, Score]]) -> None:
    """Where each view of ``model`` (the scorer: each signal and the blend) ranks the event's title."""
    parts: dict[str, np.ndarray] = {}
    if isinstance(model, Scorer):
        parts = model.signal_scores(event.user_id)
        views = {**{f"{name}: {signal}": scores for signal, scores in parts.items()},
                 name: model.blend(parts, model.weights_for(event.user_id))}
    else:
        views = {name: model.score(event.user_id)}
    position = model.titles.positions.get(event.title_id)
    excluded = seen.excluded(model)
    for view, scores in views.items():
        rank = None if position is None else _rank_of(scores, position, excluded)  # never seen: a miss
        for score in (report.scores[view], *(part[view] for part in slices)):
            score.count(event.user_id, rank, k)
    if isinstance(model, Scorer) and position is not None:
        model.observe(parts, event.title_id, excluded, event.user_id)


def _progress_line(report: Report, started: float, total: int | None = None) -> str:
    elapsed = time.monotonic() - started
    # the rate so far, which falls as the models grow: an ETA on the short side
    eta = (f", about {(total - report.events) * elapsed / report.events / 60:.0f} min left"
           if total and report.events < total else "")
    best = max(report.scores.items(), key=lambda kv: kv[1].recall, default=None)
    lead = f"; best so far {best[0]} Recall@10 {best[1].recall:.3f}" if best else ""
    if not report.reported_events:
        lead = "; the part before the split: learning, nothing counted yet"
    return (f"{report.events:,}{f'/{total:,}' if total else ''} events in {elapsed:.0f}s "
            f"({report.events / max(elapsed, 1e-9):,.0f}/s{eta}){lead}")


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as text columns (the first left-aligned, the rest right-aligned), a rule under the header."""
    widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) if n == 0 else cell.rjust(width)
                       for n, (cell, width) in enumerate(zip(row, widths, strict=True))) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


BASELINE_MARK = "(baseline)"


def format_report(report: Report, k: int = 10, resamples: int = 1000) -> str:
    """The table ``nextwatch eval`` prints: figures with 95% bootstrap intervals over members, then paired
    comparisons of every model that is not a baseline with the best baseline (overall and per slice)."""
    runs = Resamples(report.scores, resamples)
    rows = [("model", f"Recall@{k} [95% interval]", f"NDCG@{k} [95% interval]", "RMSE", "positives")]
    for name, score in report.scores.items():
        if not score.positives and score.rmse is None:
            continue
        rmse = f"{score.rmse:.4f}" if score.rmse is not None else "-"
        rows.append((name, str(runs.interval(name, "recall")), str(runs.interval(name, "ndcg")), rmse,
                     f"{score.positives:,}"))
    lines = [_scope(report), "", *_aligned(rows), "", *_slice_table(report, k, resamples), ""]
    lines += _comparisons("all positives", report.scores, runs, k)
    for part, scores in report.slices.items():  # new members' target is popularity: compared with it too
        also = (POPULARITY_BASELINE,) if part == NEW_USERS else ()
        lines += _comparisons(part, scores, Resamples(scores, resamples), k, also)
    for segment, weights in report.blends.items():
        lines.append(f"scorer blend serving {segment} members at the end: "
                     + ", ".join(f"{n} {w:g}" for n, w in weights.items()))
    lines.append(f"{report.events:,} events in {report.seconds:.0f}s")
    return "\n".join(lines)


def _scope(report: Report) -> str:
    if report.report_after_ms is None:
        return f"reported: every positive of the {report.events:,} events"
    split = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(report.report_after_ms / 1000))
    return (f"reported: the {report.reported_events:,} events after {split} UTC; the "
            f"{report.events - report.reported_events:,} before taught the models and the scorer's blend, uncounted")


def _comparisons(part: str, scores: Mapping[str, Score], runs: Resamples, k: int,
                 also: Sequence[str] = ()) -> list[str]:
    """Each model that is not a baseline against the best baseline of ``part`` (and ``also``), on the same members."""
    baselines = [name for name in scores if name.endswith(BASELINE_MARK) and scores[name].positives]
    if not baselines:
        return []
    best = max(baselines, key=lambda name: scores[name].recall)
    lines: list[str] = []
    for baseline in dict.fromkeys([best, *(name for name in also if name in baselines)]):
        lines.append(f"paired with {'the best baseline' if baseline == best else 'a baseline'} on {part} "
                     f"({baseline}):")
        for name, score in scores.items():
            if name in baselines or ": " in name or not score.positives:
                continue
            for metric, label in (("recall", f"Recall@{k}"), ("ndcg", f"NDCG@{k}")):
                comparison = runs.compare(name, baseline, metric)  # type: ignore[arg-type]
                lines.append(f"  {label} {comparison}".replace(f" - {baseline}", " - baseline"))
        lines.append("")
    return lines


def _slice_table(report: Report, k: int, resamples: int) -> list[str]:
    """Cold start: Recall@k of every model on the new-user and new-title positives, with intervals."""
    runs = {part: Resamples(scores, resamples) for part, scores in report.slices.items()}
    rows: list[tuple[str, ...]] = [("cold start", *(f"{part} R@{k} [95%] (n)" for part in report.slices))]
    for name in report.scores:
        cells = [f"{runs[part].interval(name, 'recall')} ({scores.get(name, Score()).positives:,})"
                 if name in scores else "-" for part, scores in report.slices.items()]
        rows.append((name, *cells))
    return _aligned(rows)
