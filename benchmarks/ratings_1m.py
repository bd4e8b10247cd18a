"""A seeded ratings file the shape of MovieLens 1M, for `nextwatch eval --data` at that size.

About 6,040 members, 4,000 titles, 1,000,000 ratings over three years: title popularity falls off
as a power law, members' activity is log-normal (at least 20 ratings each, most of them in a burst
after they join, as in MovieLens), tastes are a mix of genres and stars follow taste. Written as
``user::title::stars::unix seconds`` plus a titles file (``id::name::Genre|Genre``), the form
`nextwatch eval --data FILE --titles FILE` reads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

GENRES = ["Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
          "Western"]
START_S = 956_703_932  # MovieLens 1M's first rating, April 2000
SPAN_S = 3 * 365 * 86_400


def write_ratings(out: Path, ratings: int = 1_000_000, titles: int = 4_000, members: int = 6_040,
                  seed: int = 7) -> tuple[Path, Path]:
    """Write ``ratings.dat`` and ``movies.dat`` under ``out``; returns both paths."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    title_genres = rng.random((titles, len(GENRES))) < 0.12
    title_genres[np.arange(titles), rng.integers(0, len(GENRES), titles)] = True
    popularity = 1.0 / np.arange(1, titles + 1) ** 0.9
    popularity = popularity[rng.permutation(titles)]
    release_s = START_S + (rng.random(titles) ** 3 * SPAN_S).astype(np.int64)  # most titles there at the start
    taste = rng.dirichlet(np.full(len(GENRES), 0.3), members)
    activity = rng.lognormal(4.5, 1.0, members)
    activity = np.minimum(activity / activity.sum() * (ratings - 20 * members), titles - 20)
    counts = 20 + activity.astype(np.int64)
    counts[np.argsort(activity - counts + 20)[::-1][:max(ratings - int(counts.sum()), 0)]] += 1  # the rounding
    if counts.sum() != ratings:
        raise ValueError(f"{ratings:,} ratings do not fit {members:,} members rating at most {titles:,} titles each "
                         f"with this spread of activity: more titles or members")
    joined_s = START_S + (rng.random(members) * SPAN_S * 0.9).astype(np.int64)
    lines: list[tuple[int, str]] = []
    for member in range(members):
        affinity = title_genres @ taste[member]
        weights = popularity * (0.2 + affinity)
        n = min(int(counts[member]), titles)
        chosen = rng.choice(titles, n, replace=False, p=weights / weights.sum())
        # a burst of ratings in the first days, then a tail over the rest of the span
        offsets = np.where(rng.random(n) < 0.7, rng.exponential(2 * 86_400, n), rng.random(n) * SPAN_S * 0.3)
        times = np.maximum(joined_s[member] + offsets.astype(np.int64), release_s[chosen])
        liking = affinity[chosen] / max(float(affinity.max()), 1e-9)
        stars = np.clip(np.rint(2.9 + 2.0 * liking + rng.normal(0, 0.9, n)), 1, 5).astype(int)
        for title, when, star in zip(chosen, times, stars, strict=True):
            lines.append((int(when), f"{member + 1}::{title + 1}::{star}::{int(when)}"))
    lines.sort()
    ratings_path, titles_path = out / "ratings.dat", out / "movies.dat"
    ratings_path.write_text("\n".join(line for _, line in lines) + "\n", encoding="utf-8")
    movies = ["movie_id::title::genres"]
    for title in range(titles):
        genres = "|".join(g for g, on in zip(GENRES, title_genres[title], strict=True) if on)
        movies.append(f"{title + 1}::Title {title + 1}::{genres}")
    titles_path.write_text("\n".join(movies) + "\n", encoding="utf-8")
    return ratings_path, titles_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for ratings.dat and movies.dat")
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--titles", type=int, default=4_000)
    parser.add_argument("--members", type=int, default=6_040)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    ratings, titles = write_ratings(args.out, args.ratings, args.titles, args.members, args.seed)
    print(f"ratings={ratings} titles={titles}")


if __name__ == "__main__":
    main()
