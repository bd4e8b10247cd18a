"""The seeded MovieLens-1M-shaped ratings file the eval benchmark runs on: its shape, and eval reads it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from benchmarks.ratings_1m import write_ratings
from infra.replay.movielens import load_ratings_file


def test_the_ratings_file_has_the_asked_shape_in_time_order(tmp_path: Path) -> None:
    ratings, titles = write_ratings(tmp_path, ratings=20_000, titles=1_000, members=150, seed=3)
    dataset = load_ratings_file(ratings, titles)
    assert len(dataset.ratings) == 20_000 and len(dataset.titles) == 1_000
    per_member = Counter(r.user_id for r in dataset.ratings)
    assert len(per_member) == 150 and min(per_member.values()) >= 20
    assert len({(r.user_id, r.title_id) for r in dataset.ratings}) == 20_000  # a title rated once per member
    times = [r.timestamp_s for r in dataset.ratings]
    assert times == sorted(times) and {r.stars for r in dataset.ratings} == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert all(t.genres for t in dataset.titles.values())
    popular = Counter(r.title_id for r in dataset.ratings).most_common()
    assert popular[0][1] > 5 * popular[len(popular) // 2][1]  # a long tail, as real catalogs have
    assert write_ratings(tmp_path / "again", ratings=20_000, titles=1_000, members=150, seed=3)[0].read_bytes() == \
        ratings.read_bytes()  # seeded
    with pytest.raises(ValueError, match="20,000 ratings do not fit 150 members rating at most 100 titles"):
        write_ratings(tmp_path / "small", ratings=20_000, titles=100, members=150)
