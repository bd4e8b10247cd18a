"""Learning-step speed of the online models, side by side with river's BiasedMF, and state bytes per user.

The scorer with every signal learns each step once per signal; its state bytes per
user sum the signals' (the search signal keeps nothing here: the ratings stream has
no searches).

Workload ``movielens-ratings``: the first N MovieLens 100K ratings in time order,
as :class:`Feedback` built before the clock starts. Each model learns the same
stream in the same process (no services needed); rates are the median of three
rounds, each on a fresh model. Accuracy beside speed comes from ``nextwatch eval``
(same stream, test-then-train). Figures last, as ``name=value``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from infra.replay.movielens import load_movielens
from jobs.evaluation import default_models, ratings_stream
from jobs.models.base import Feedback, Recommender
from jobs.models.content import ContentProfile, TitleText
from jobs.models.item_cf import ItemCooccurrence
from jobs.models.mf import ImplicitMF, RatingMF
from jobs.models.river_mf import RiverBiasedMF
from jobs.models.sequence import Transitions
from jobs.models.signals import JobBlend
from jobs.models.user_knn import UserKNN


def models(catalog: list[TitleText]) -> dict[str, Callable[[], Recommender]]:
    """Each model alone, then the scorer with every signal (searches: none in the ratings stream)."""
    return {
        "river_biased_mf": RiverBiasedMF,
        "rating_mf": RatingMF,
        "implicit_mf": ImplicitMF,
        "item_cf": ItemCooccurrence,
        "transitions": Transitions,
        "user_knn": UserKNN,
        "content": lambda: ContentProfile(catalog),
        "scorer_all_signals": lambda: default_models(catalog)["scorer"],
        # the learning job's logic, both sides in one process, every signal (publishing every 100 events)
        "learning_job_all_signals": lambda: JobBlend(catalog),
    }


def river_alone(stream: list[Feedback]) -> float:
    """river's own learn_one, without our wrapper's numpy mirror (its raw speed)."""
    from river import optim, reco

    model = reco.BiasedMF(n_factors=10, bias_optimizer=optim.SGD(0.025), latent_optimizer=optim.SGD(0.05),
                          l2_bias=0.1, l2_latent=0.1, seed=42)
    started = time.perf_counter()
    for f in stream:
        model.learn_one(f.user_id, f.title_id, f.rating)
    return len(stream) / (time.perf_counter() - started)


def timed(make: Callable[[], Recommender], stream: list[Feedback]) -> tuple[float, Recommender]:
    model = make()
    started = time.perf_counter()
    for feedback in stream:
        model.learn_one(feedback)
    return len(stream) / (time.perf_counter() - started), model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = load_movielens()
    stream = [item.feedback for item in ratings_stream(
        (r.user_id, r.title_id, r.stars, r.timestamp_s) for r in data.ratings[:args.ratings])]
    catalog = [TitleText(t.title_id, t.title, t.year, tuple(t.genres)) for t in data.titles.values()]
    figures: dict[str, float] = {}
    rates = [river_alone(stream) for _ in range(args.rounds)]
    figures["river_biased_mf_raw_steps_per_s"] = statistics.median(rates)
    for name, make in models(catalog).items():
        runs = [timed(make, stream) for _ in range(args.rounds)]
        figures[f"{name}_steps_per_s"] = statistics.median(rate for rate, _ in runs)
        print(f"[bench] {name}: {figures[f'{name}_steps_per_s']:,.0f} learning steps/s", file=sys.stderr)
        model = runs[-1][1]
        users = sorted({f.user_id for f in stream})
        parts = list(getattr(model, "signals", {}).values()) or [model]
        if all(hasattr(part, "user_state_bytes") for part in parts):
            total = sum(part.user_state_bytes(u) for part in parts for u in users)  # type: ignore[attr-defined]
            figures[f"{name}_state_bytes_per_user"] = total / len(users)
    print(f"workload=movielens-ratings ratings={len(stream)} rounds={args.rounds}")
    print(" ".join(f"{name}={value:.0f}" for name, value in figures.items()))


if __name__ == "__main__":
    main()
