"""What the homepage's bandits cost per homepage, in one process (no services).

Workload ``homepage-bandits``: a homepage of ``--rows`` rows of ``--items`` titles, each
title with ``--variants`` artwork variants. Per homepage the policies of
:mod:`jobs.exploration.policies` choose the row order (epsilon-greedy over river
logistic models), an artwork per title, the explore slots of every row, and the
context boost of every title; then they learn from one impression outcome per row and
one per shown artwork (what the rows job would do with the rewards). River's
``LinUCBDisjoint`` choosing the row order is timed beside it, as the issue asks (it is
known to be slow). Figures last, as name=value.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

from river import bandit

from jobs.exploration.policies import (
    ArtworkPolicy,
    ContextPlayModel,
    RowOrderPolicy,
    ThemeHistory,
    context_features,
    explore_slots,
)

KINDS = ("top_picks", "because_you_watched", "new_for_you", "trending", "genre")
THEMES = ("dark", "couple", "action", "family", "landscape", "face")
GENRES = ("Drama", "Comedy", "Action", "Horror", "Documentary")


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--homepages", type=int, default=2_000)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--variants", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(1)
    order_policy, artwork_policy, plays = RowOrderPolicy(KINDS), ArtworkPolicy(), ContextPlayModel()
    linucb = bandit.LinUCBDisjoint(seed=1)
    variants = {f"t{n}": [(f"t{n}-art{v}", rng.sample(THEMES, 2)) for v in range(args.variants)] for n in range(2_000)}
    runtimes = {t: rng.choice((25, 45, 95, 140)) for t in variants}
    themes = {artwork_id: tags for title in variants.values() for artwork_id, tags in title}
    histories = [ThemeHistory() for _ in range(500)]
    choose_ms, learn_ms, linucb_ms = [], [], []
    linucb_failures = 0
    for n in range(args.homepages):
        bucket = rng.choice(("morning:tv", "evening:tv", "late_night:mobile", "afternoon:web"))
        weekday = rng.choice(("mon", "sat"))
        affinity = {g: rng.random() for g in rng.sample(GENRES, 3)}
        history = histories[n % len(histories)]
        features = context_features(bucket, weekday, affinity)
        rows = [rng.sample(list(variants), args.items) for _ in range(args.rows)]
        less_known = rng.sample(list(variants), 50)

        started = time.perf_counter()
        decision = order_policy.choose(features, rng)
        member = artwork_policy.for_member(affinity, history)
        boost = plays.for_context(bucket, weekday)
        shown = []
        for row in rows:
            for slot in explore_slots(row, less_known, 0.1, rng):
                art = member.choose(variants[slot.title_id], rng)
                shown.append((slot.title_id, art.artwork_id, boost(runtimes[slot.title_id], ["Drama"])))
        choose_ms.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        for kind in decision.order:
            order_policy.learn_one(features, kind, float(rng.random() < 0.05))
        for title_id, artwork_id, _ in shown[:args.items]:  # the rows a member scrolled past: one row's worth
            artwork_policy.learn_one(affinity, history, themes[artwork_id], rng.random() < 0.05)
            plays.learn_one(bucket, weekday, runtimes[title_id], ["Drama"], rng.random() < 0.02)
        learn_ms.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        try:
            chosen = linucb.pull(list(KINDS), features)
        except IndexError:  # river 0.23: every arm's upper bound NaN, so no candidate (counted, reported)
            linucb_failures += 1
            chosen = KINDS[0]
        linucb.update(chosen, features, float(rng.random() < 0.05))
        linucb_ms.append((time.perf_counter() - started) * 1000)
        if n % 500 == 499:
            say(f"{n + 1:,} homepages; choose p50 {statistics.median(choose_ms):.2f} ms")

    def p(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(q * len(values)))]

    print(f"workload=homepage-bandits homepages={args.homepages} rows={args.rows} items_per_row={args.items} "
          f"variants={args.variants}")
    print(f"choose_p50_ms={p(choose_ms, 0.5):.2f} choose_p99_ms={p(choose_ms, 0.99):.2f} "
          f"learn_p50_ms={p(learn_ms, 0.5):.2f} learn_p99_ms={p(learn_ms, 0.99):.2f} "
          f"river_linucb_order_p50_ms={p(linucb_ms, 0.5):.2f} river_linucb_order_p99_ms={p(linucb_ms, 0.99):.2f} "
          f"river_linucb_failed_pulls={linucb_failures}")


if __name__ == "__main__":
    main()
