"""Quality of the homepage as served, on the MovieLens 100K ratings in time order, leak-free (no services).

Workload ``movielens-ratings``: the learning job's logic in one process
(:class:`jobs.models.signals.JobLoop`, every signal, item vectors republished every
100 events) learns each rating after it is tested, as in ``nextwatch eval``. At the
first event of every (user, title) pair rated >= 4, before learning it, the user's
homepage is built as the rows job builds it (:func:`jobs.homepage.rows.build_homepage`:
rules, de-duplication, controls) from the loop's top picks, the user's finished
titles and recent strong watches, the published similar titles, and trending taken
as the 50 most touched titles. Three times: with the default controls, with both off, and
as served: the default controls, then the row order, explore slots and artwork
chosen by the rows job's policies (:func:`jobs.exploration.presentation.presented_homepage`,
``[rows]`` defaults: 5% explore share), untaught, as on a first day: this measures what
exploration costs before it has taught the policies anything.

Figures, for each: Recall@10 of the Top Picks row as served (the positive among its
first 10 titles), catalog coverage (share of the catalog's titles served on any
tested homepage, any row), intra-list diversity of the Top Picks row's first 10
(mean pairwise 1 - Jaccard of genres) and the share of those titles among the 10% most
popular at the time. Last, as name=value.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from infra.replay.movielens import MovieLensReplay, load_movielens
from jobs.evaluation import ratings_stream
from jobs.exploration.presentation import presented_homepage
from jobs.flink.rows.config import RowsJobConfig, new_policies
from jobs.homepage.rows import (
    HomepageSettings,
    Row,
    SharedSignals,
    UserSignals,
    build_homepage,
    catalog_indexes,
    least_played,
)
from jobs.homepage.rules import Viewer
from jobs.homepage.shared import percentiles
from jobs.models.content import title_text
from jobs.models.signals import JobLoop


class Served:
    """What one setting served over the stream."""

    def __init__(self) -> None:
        self.tested = self.hits = 0
        self.titles: set[str] = set()
        self.diversity: list[float] = []
        self.popular: list[float] = []

    def add(self, rows: list[Row], positive: str, genres: dict[str, frozenset[str]], top_decile: set[str]) -> None:
        self.tested += 1
        self.titles.update(i.title_id for row in rows for i in row.items)
        picks = next((row for row in rows if row.row_id == "top_picks"), None)
        first = [i.title_id for i in picks.items[:10]] if picks else []
        self.hits += positive in first
        if len(first) > 1:
            pairs = [1 - len(genres[a] & genres[b]) / max(len(genres[a] | genres[b]), 1)
                     for a, b in itertools.combinations(first, 2)]
            self.diversity.append(float(np.mean(pairs)))
        if first:
            self.popular.append(sum(t in top_decile for t in first) / len(first))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=0, help="0: all 100,000")
    parser.add_argument("--refresh", type=int, default=1000, help="events between rebuilds of shared indexes")
    args = parser.parse_args()
    data = load_movielens()
    ratings = data.ratings[:args.ratings] if args.ratings else data.ratings
    # the replay's catalog (availability, maturity, artwork) under the ratings' own title ids ("m255" -> "255")
    catalog_items = [replace(item, title_id=item.title_id.removeprefix("m"))
                     for item in MovieLensReplay(data).catalog()]
    catalog = {item.title_id: item for item in catalog_items}
    genres = {t: frozenset(item.genres) for t, item in catalog.items()}
    loop = JobLoop(publish_every=100, flush_every=50, catalog=[title_text(item) for item in catalog_items])
    now = max(item.availability.available_from_ms for item in catalog_items) + 1
    rows_config = RowsJobConfig()
    policies, rng = new_policies(rows_config), random.Random(7)
    off = HomepageSettings(diversity=0.0, popularity_penalty=0.0)
    builders: dict[str, Callable[[UserSignals, SharedSignals, Viewer], list[Row]]] = {
        "controls_on": lambda user, shared, viewer: build_homepage(user, shared, viewer, "evening:tv",
                                                                   HomepageSettings()),
        "controls_off": lambda user, shared, viewer: build_homepage(user, shared, viewer, "evening:tv", off),
        "as_served": lambda user, shared, viewer: presented_homepage(
            user, shared, viewer, "evening:tv", "wed", rows_config.homepage, policies, rng),
    }
    served = {name: Served() for name in builders}
    finished: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    shared = SharedSignals(catalog)
    top_decile: set[str] = set()
    started = time.monotonic()
    for n, labeled in enumerate(ratings_stream((r.user_id, r.title_id, r.stars, r.timestamp_s) for r in ratings)):
        feedback = labeled.feedback
        if n % args.refresh == 0:
            touches = {t: v.touches for t, v in loop.published.items()}
            popularity = percentiles(touches)
            by_genre, newest = catalog_indexes(catalog, popularity)
            ranked = sorted(touches, key=lambda t: (-touches[t], t))
            top_decile = set(ranked[:max(1, len(catalog) // 10)])
            shared = SharedSignals(catalog, {t: list(v.neighbors) for t, v in loop.published.items()},
                                   {"global": ranked[:50]}, popularity, {}, by_genre, newest,
                                   least_played(catalog, popularity))
        pair = (feedback.user_id, feedback.title_id)
        if pair not in seen and (feedback.rating or 0.0) >= 4.0 and feedback.title_id in catalog:
            user_titles = finished.get(feedback.user_id, [])
            picks = tuple((p.title_id, p.score, p.reason) for p in loop.picks(feedback.user_id, k=50))
            signals = UserSignals(completed=frozenset(user_titles), anchors=tuple(reversed(user_titles[-5:])),
                                  top_picks=picks)
            viewer = Viewer(feedback.user_id, "US", now_ms=now)
            for name, build in builders.items():
                served[name].add(build(signals, shared, viewer), feedback.title_id, genres, top_decile)
        seen.add(pair)
        finished.setdefault(feedback.user_id, []).append(feedback.title_id)
        loop.learn(feedback.user_id, feedback, f"e{n}")
        if n % 10_000 == 9_999:
            on = served["controls_on"]
            print(f"[bench] {n + 1:,} ratings in {time.monotonic() - started:.0f}s; Top Picks Recall@10 so far "
                  f"{on.hits / max(on.tested, 1):.4f}", file=sys.stderr, flush=True)
    print(f"workload=movielens-ratings ratings={len(ratings)} positives={served['controls_on'].tested} "
          f"catalog={len(catalog)} seconds={time.monotonic() - started:.0f}")
    for name, found in served.items():
        print(f"{name}_recall_at_10={found.hits / max(found.tested, 1):.4f} "
              f"{name}_coverage={len(found.titles) / len(catalog):.4f} "
              f"{name}_intra_list_diversity={np.mean(found.diversity):.4f} "
              f"{name}_popular_share={np.mean(found.popular):.4f}")


if __name__ == "__main__":
    main()
