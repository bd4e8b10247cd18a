"""The test-then-train harness: leak-free, touched titles excluded, metrics computed as documented."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from infra.replay.movielens import load_ratings_file
from jobs.evaluation import LabeledFeedback, evaluate, format_report, ratings_stream
from jobs.models.base import Feedback, Recommender
from jobs.models.popularity import Popularity


class Memorizer(Recommender):
    """Scores a title 1 for a user once it has learned that pair: perfect if the harness leaked."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def learn_one(self, feedback: Feedback) -> None:
        self.titles.add(feedback.title_id)
        self.seen.add((feedback.user_id, feedback.title_id))

    def score(self, user_id: str) -> np.ndarray:
        return np.array([float((user_id, t) in self.seen) for t in self.titles.ids])

    def predict_one(self, user_id: str, title_id: str) -> float:
        return 5.0 if (user_id, title_id) in self.seen else 1.0


class Fixed(Recommender):
    """Ranks titles in a fixed order, whatever it learns."""

    def __init__(self, order: list[str]) -> None:
        super().__init__()
        self.order = order
        for title in order:
            self.titles.add(title)

    def learn_one(self, feedback: Feedback) -> None:
        self.titles.add(feedback.title_id)

    def score(self, user_id: str) -> np.ndarray:
        return np.array([-self.order.index(t) if t in self.order else -99.0 for t in self.titles.ids])


def labeled(user: str, title: str, rating: float | None, at: int = 0) -> LabeledFeedback:
    return LabeledFeedback(Feedback(user, title, at, 1.0, rating), rating)


def test_models_are_tested_before_they_learn() -> None:
    stream = [labeled("a", "m1", 5.0), labeled("b", "m1", 5.0), labeled("a", "m2", 5.0)]
    report = evaluate(stream, {"memorizer": Memorizer()})
    score = report.scores["memorizer"]
    # a leak would make all three hits; tested first, m1 and m2 are unknown titles when a touches them, and
    # b's m1 is a hit only because it is the one title the model knows
    assert score.positives == 3 and score.hits == 1
    assert score.rmse == pytest.approx(4.0)  # predicted 1.0 every time: never the pair it had not yet learned


def test_touched_titles_are_not_candidates() -> None:
    order = ["m1", "m2", "m3", "m4"]
    stream = [labeled("a", "m1", 5.0), labeled("a", "m2", 5.0), labeled("a", "m3", 5.0)]
    report = evaluate(stream, {"fixed": Fixed(order)}, k=1)
    # each positive is the top untouched title once the titles before it are touched
    assert report.scores["fixed"].hits == 3
    assert report.scores["fixed"].ndcg == pytest.approx(1.0)


def test_only_positives_are_ranked_and_a_pair_is_tested_once() -> None:
    stream = [labeled("a", "m1", 2.0), labeled("a", "m2", 4.0), labeled("a", "m2", 5.0),
              labeled("a", "m3", None)]
    report = evaluate(stream, {"fixed": Fixed(["m2", "m1", "m3"])}, k=1)
    assert report.scores["fixed"].positives == 1 and report.events == 4


def test_ndcg_discounts_by_rank() -> None:
    order = ["m9", "m1"]  # the positive comes second
    report = evaluate([labeled("a", "m1", 5.0)], {"fixed": Fixed(order)}, k=10)
    assert report.scores["fixed"].ndcg == pytest.approx(1 / math.log2(3))


def test_ratings_stream_and_report() -> None:
    stream = list(ratings_stream([("u1", "m1", 4.0, 10), ("u2", "m1", 3.0, 20)]))
    assert stream[0].feedback.time_ms == 10_000 and stream[1].label == 3.0
    report = evaluate(stream, {"popularity": Popularity()})
    table = format_report(report)
    assert "popularity" in table and "Recall@10" in table and "2 events" in table


def test_ratings_files_load_with_clear_errors(tmp_path: Path) -> None:
    good = tmp_path / "ratings.csv"
    good.write_text("userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,10,4.0,1260759100\n")
    titles = tmp_path / "movies.csv"
    titles.write_text("movieId,title,genres\n31,Dangerous Minds,Drama\n10,GoldenEye,Action|Thriller\n")
    data = load_ratings_file(good, titles)
    assert [r.title_id for r in data.ratings] == ["10", "31"]  # time order
    assert data.titles["10"].genres == ["Action", "Thriller"]
    bad = tmp_path / "bad.dat"
    bad.write_text("1::31::2.5::1260759144\n1::10::four::1260759100\n")
    with pytest.raises(ValueError, match=r"bad.dat:2: expected user, title, rating"):
        load_ratings_file(bad)


def test_eval_command_prints_the_table_and_names_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from infra.cli import main

    ratings = tmp_path / "ratings.tsv"
    ratings.write_text("".join(f"u{n % 7}\tm{n % 11}\t{1 + n % 5}\t{1000 + n}\n" for n in range(300)))
    assert main(["eval", "--data", str(ratings)]) == 0
    out = capsys.readouterr().out
    assert "scorer" in out and "item-kNN, last 20 (baseline)" in out and "300 events" in out
    assert main(["eval", "--data", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: no such file" in capsys.readouterr().err
    assert main(["eval", "--data", str(ratings), "--workers", "0"]) == 2
    assert "--workers 0: need at least 1" in capsys.readouterr().err
    ratings.write_text("u1\tm1\tfive\t1000\n")
    assert main(["eval", "--data", str(ratings)]) == 2
    assert "ratings.tsv:1: expected user, title, rating" in capsys.readouterr().err


def test_replay_events_are_tested_at_their_first_teaching_event() -> None:
    from connectors.events import BrowseEvent, Context, PlayEvent, RatingEvent
    from jobs.evaluation import events_stream

    ctx = Context("tv", "TV", "US", 0)
    events = [BrowseEvent("a", 1, ctx, "IMPRESSION", "i1", "home"),  # teaches nothing: skipped
              BrowseEvent("a", 2, ctx, "CLICK", "i1", "home", title_id="m1", position_in_row=0),
              PlayEvent("a", 3, ctx, "m1", "COMPLETE", "pb", 100, 100),
              RatingEvent("a", 4, ctx, "m1", "STARS", 5.0)]
    stream = list(events_stream(events, {("a", "m1"): 5.0}))
    assert [item.feedback.time_ms for item in stream] == [2, 3, 4] and {item.label for item in stream} == {5.0}
    report = evaluate(stream, {"memorizer": Memorizer()})
    # tested once, at the click: before the play and the rating were learned
    assert report.scores["memorizer"].positives == 1 and report.scores["memorizer"].rated == 1


def test_cold_start_positives_are_reported_apart() -> None:
    from jobs.evaluation import NEW_TITLES, NEW_USERS

    day = 86_400_000
    stream = [labeled("a", f"m{n}", 5.0, at=n * day) for n in range(8)]  # a's first 5 events: a new user
    stream.append(labeled("b", "m0", 5.0, at=20 * day))  # m0 is 20 days old by now: not a new title
    report = evaluate(stream, {"fixed": Fixed([f"m{n}" for n in range(8)])}, k=1)
    assert report.scores["fixed"].positives == 9 and report.scores["fixed"].hits == 9
    assert report.slices[NEW_USERS]["fixed"].positives == 6  # a's first 5 and b's first
    assert report.slices[NEW_TITLES]["fixed"].positives == 8  # every a positive hits a title in its first day
    assert "new users R@1 [95%] (n)" in format_report(report, k=1)


def test_only_positives_after_the_split_are_counted_and_the_blend_learns_before_it() -> None:
    from jobs.models.item_cf import ItemCooccurrence
    from jobs.models.scorer import Scorer

    stream = [labeled(f"u{n % 6}", f"m{n % 7}", 5.0, at=n) for n in range(40)]
    scorer = Scorer({"item_cf": ItemCooccurrence(), "popularity": Popularity()})
    report = evaluate(stream, {"fixed": Fixed([f"m{n}" for n in range(9)]), "scorer": scorer}, report_after_ms=29)
    # 10 events after the split, each a first touch of its pair (a pair repeats every 42 events)
    assert report.reported_events == 10 and report.scores["fixed"].positives == 10
    # its blend learned from every positive on a title it already knew (the first 7 touches were not), reported
    # or not
    assert scorer.observed == 40 - 7
    assert "the 10 events after 1970-01-01 00:00:00 UTC; the 30 before" in format_report(report)


def test_members_are_tallied_for_intervals_and_models_paired_with_the_best_baseline() -> None:
    order = [f"m{n}" for n in range(10)]
    stream = [labeled(f"u{u}", f"m{t}", 5.0, at=u * 10 + t) for u in range(40) for t in range(3)]
    models = {"reversed (baseline)": Fixed(order[::-1]), "shifted (baseline)": Fixed(order[2:] + order[:2]),
              "fixed": Fixed(order)}
    report = evaluate(stream, models, k=3)
    assert report.scores["fixed"].members["u3"] == [3.0, 3.0, 3.0]  # each positive the top untouched title
    # shifted ranks m2 first: one hit per member, at rank 0 (m0, m1 come last)
    assert report.scores["shifted (baseline)"].members["u3"] == [3.0, 1.0, 1.0]
    text = format_report(report, k=3, resamples=200)
    assert "paired with the best baseline on all positives (shifted (baseline)):" in text
    line = next(row for row in text.splitlines() if row.strip().startswith("Recall@3 fixed - baseline"))
    assert "p < 0.005" in line and "(paired over 40 members)" in line


def test_the_scorer_reports_each_signal_alone_and_blended() -> None:
    from jobs.evaluation import NEW_USERS, default_models
    from jobs.models.content import TitleText

    catalog = [TitleText(f"m{n}", genres=("Drama",) if n % 2 else ("Comedy",)) for n in range(20)]
    # odd users watch dramas, even users comedies: content and CF signals both carry the taste
    stream = [labeled(f"u{u}", f"m{2 * step + u % 2}", 5.0, at=(u * 10 + step) * 60_000)
              for u in range(30) for step in range(6)]
    models = default_models(catalog)
    report = evaluate(stream, models)
    signals = {name.split(": ")[1] for name in report.scores if name.startswith("scorer: ")}
    assert signals == {"item_cf", "implicit_mf", "popularity", "rating_mf", "transitions", "user_knn", "content",
                       "search", "neural", "arrivals"}
    assert report.slices[NEW_USERS]["scorer: content"].positives > 0
    assert report.scores["scorer: content"].recall > report.scores["popularity (baseline)"].recall
    assert set(report.blends) == {"new", "growing", "established"}  # one blend per tenure segment
    assert all(set(weights) == signals for weights in report.blends.values())


def test_a_model_that_scores_everything_alike_is_not_perfect() -> None:
    class Flat(Fixed):
        def score(self, user_id: str) -> np.ndarray:
            return np.zeros(len(self.titles))

    order = [f"m{n}" for n in range(20)]
    stream = [labeled(f"u{n}", "m15", 5.0) for n in range(3)]
    report = evaluate(stream, {"flat": Flat(order)}, k=10)
    assert report.scores["flat"].hits == 0  # ties go by index order, as rank() serves them: m15 is 16th


def test_progress_shows_how_far_and_how_long_is_left() -> None:
    lines: list[str] = []
    stream = list(ratings_stream([(f"u{n % 7}", f"m{n % 11}", 5.0, n) for n in range(300)]))
    evaluate(stream, {"popularity": Popularity()}, progress=lines.append, every=100, total=300)
    assert lines[0].startswith("100/300 events in ") and "min left" in lines[0]
    assert lines[-1].startswith("300/300 events") and "left" not in lines[-1]


def test_eval_writes_its_table_as_json_and_csv_and_plots_recall_over_time(tmp_path: Path) -> None:
    import csv
    import json

    from infra.cli import main

    ratings = tmp_path / "ratings.tsv"
    ratings.write_text("".join(f"u{n % 13}\tm{n % 29}\t{1 + n % 5}\t{1000 + n}\n" for n in range(300)))
    assert main(["eval", "--data", str(ratings), "--resamples", "20", "--out", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "eval.json").read_text(),
                      parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    scorer = data["all"]["models"]["scorer"]
    assert scorer["recall"]["low"] <= scorer["recall"]["estimate"] <= scorer["recall"]["high"]
    assert data["reported_events"] == 150 and data["timeline"][-1]["models"]["scorer"]["positives"] > 0
    rows = list(csv.DictReader((tmp_path / "out" / "eval.csv").open()))
    assert {row["part"] for row in rows} == {"all", "new titles"}  # no new users after the split here
    assert float(next(r for r in rows if r["part"] == "all" and r["model"] == "scorer")["recall_at_10"]) == \
        pytest.approx(scorer["recall"]["estimate"])
    plot = (tmp_path / "out" / "recall-over-time.svg").read_text()
    assert plot.startswith("<svg") and plot.count("<polyline") == len(data["timeline"][-1]["models"])


def test_a_ratio_that_does_not_exist_is_null_in_the_json() -> None:
    from infra.eval_output import _interval
    from jobs.intervals import Interval

    assert _interval(Interval(float("nan"), float("nan"), float("nan"))) == dict.fromkeys(("estimate", "low", "high"))
    assert _interval(Interval(1.23456789, 1.0, 1.5)) == {"estimate": 1.234568, "low": 1.0, "high": 1.5}


def test_models_spread_over_processes_give_the_report_one_process_gives() -> None:
    from jobs.eval_processes import assign, evaluate_in_processes, model_groups
    from jobs.evaluation import default_models
    from jobs.models.content import TitleText

    catalog = [TitleText(f"m{n}", genres=("Drama",) if n % 2 else ("Comedy",)) for n in range(20)]
    stream = [labeled(f"u{u}", f"m{(3 * step + u) % 20}", 1.0 + (u + step) % 5, at=(step * 30 + u) * 60_000)
              for u in range(30) for step in range(8)]
    models = default_models(catalog)
    groups = model_groups(models)
    assert ["learning job top picks", "learning job top picks, neural on"] in groups  # they share one loop
    assert len(assign(models, 2)) == 2 and len(assign(models, 99)) == len(groups)
    lines: list[str] = []
    options = {"k": 5, "every": 60, "report_after_ms": 90 * 60_000}
    apart = evaluate_in_processes(iter(stream), default_models(catalog), 2, progress=lines.append, **options)
    together = evaluate(iter(stream), models, **options)  # type: ignore[arg-type]
    assert list(apart.scores) == list(together.scores) and apart.scores.keys() == together.scores.keys()
    for view, score in together.scores.items():
        assert (apart.scores[view].hits, apart.scores[view].positives, apart.scores[view].members) == \
            (score.hits, score.positives, score.members), view
        assert apart.scores[view].rmse == pytest.approx(score.rmse)
    for part, scores in together.slices.items():
        assert {v: s.hits for v, s in apart.slices[part].items()} == {v: s.hits for v, s in scores.items()}
    assert apart.timeline == together.timeline and apart.blends == together.blends
    assert any(line.startswith("worker 1/2") for line in lines) and any(line.startswith("worker 2/2") for line in lines)
    apart.seconds = together.seconds  # the wall time is the one line allowed to differ
    assert format_report(apart, 5, 20) == format_report(together, 5, 20)


def test_a_failing_worker_is_named_with_its_error() -> None:
    from jobs.eval_processes import evaluate_in_processes

    class Broken(Fixed):
        def learn_one(self, feedback: Feedback) -> None:
            raise ValueError("this model cannot learn")

    with pytest.raises(RuntimeError, match=r"worker \d \(broken\) failed:(.|\n)*this model cannot learn"):
        evaluate_in_processes(iter([labeled("u", "m1", 5.0)]), {"fixed": Fixed(["m1"]), "broken": Broken(["m1"])}, 2)
