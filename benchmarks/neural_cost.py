"""What the neural sequence model costs: per event learned, per training step, per member scored.

Workload ``movielens-ratings``: the first N MovieLens 100K ratings in time order, built before the
clock starts. In one process, no services: the neural model learns the stream (its events and its
training steps timed apart), and so does the transitions model, the reference measured in the same
run (ratios are what to compare on a noisy machine). Then every member is scored once by each.
The trainer's record sizes (the encoder in one record, a title's embedding in one) are checked
against the sinks' 1 MiB limit. Rates are the median of ``--rounds`` rounds on fresh models.
Figures last, as ``name=value``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from connectors.codec import EventCodec
from infra.replay.movielens import load_movielens
from jobs.evaluation import ratings_stream
from jobs.models.base import Feedback
from jobs.models.neural import NeuralSequence, SequenceNet, TrainerState
from jobs.models.online import LearningConfig
from jobs.models.sequence import Transitions
from jobs.records.neural_update import neural_update_record


class TimedNeural(NeuralSequence):
    """The neural model, its training steps timed apart from the rest of learning."""

    def __init__(self) -> None:
        super().__init__()
        self.step_seconds = 0.0

    def _train(self, examples: list[tuple[tuple[int, ...], int]]) -> None:
        started = time.perf_counter()
        super()._train(examples)
        self.step_seconds += time.perf_counter() - started


def learn(model: NeuralSequence | Transitions, stream: list[Feedback]) -> float:
    started = time.perf_counter()
    for feedback in stream:
        model.learn_one(feedback)
    return time.perf_counter() - started


def score_all(model: NeuralSequence | Transitions, users: list[str]) -> float:
    started = time.perf_counter()
    for user in users:
        model.score(user)
    return (time.perf_counter() - started) / len(users)


def record_bytes(stream: list[Feedback]) -> tuple[int, int]:
    """The encoded sizes of the encoder's record and of one title's record, after training on ``stream``."""
    config = LearningConfig()
    trainer = TrainerState(SequenceNet(config.neural_dimensions, config.neural_negatives,
                                       config.neural_learning_rate, tied=True))
    last: dict[str, list[str]] = {}
    for feedback in stream:
        history = last.setdefault(feedback.user_id, [])
        if history and feedback.title_id not in history:
            trainer.learn(history[-config.neural_length:], feedback.title_id, config.neural_batch,
                          config.neural_length)
        history.append(feedback.title_id)
    records = trainer.published(0)
    codec = EventCodec()
    sizes = [len(codec.encode_record("neural_update", neural_update_record(r, 0))) for r in records[:2]]
    return sizes[0], sizes[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = load_movielens()
    stream = [item.feedback for item in ratings_stream(
        (r.user_id, r.title_id, r.stars, r.timestamp_s) for r in data.ratings[:args.ratings])]
    users = sorted({f.user_id for f in stream})
    neural_rates, step_ms, reference_rates, neural_score_ms, reference_score_ms = [], [], [], [], []
    for round_ in range(args.rounds):
        neural, reference = TimedNeural(), Transitions()
        seconds = learn(neural, stream)
        neural_rates.append(len(stream) / seconds)
        step_ms.append(1000 * neural.step_seconds / max(neural.net.steps, 1))
        reference_rates.append(len(stream) / learn(reference, stream))
        neural_score_ms.append(1000 * score_all(neural, users))
        reference_score_ms.append(1000 * score_all(reference, users))
        print(f"round {round_ + 1}: neural {neural_rates[-1]:,.0f} events/s ({neural.net.steps:,} steps, "
              f"{step_ms[-1]:.2f} ms each), transitions {reference_rates[-1]:,.0f} events/s", flush=True)
    encoder_bytes, title_bytes = record_bytes(stream)
    slower = statistics.median(reference_rates) / statistics.median(neural_rates)
    figures = {
        "workload": f"movielens-ratings-{len(stream)}",
        "neural_events_per_s": round(statistics.median(neural_rates)),
        "neural_step_ms": round(statistics.median(step_ms), 3),
        "neural_score_member_ms": round(statistics.median(neural_score_ms), 3),
        "transitions_events_per_s": round(statistics.median(reference_rates)),
        "transitions_score_member_ms": round(statistics.median(reference_score_ms), 3),
        "neural_to_transitions_learn_time": round(slower, 2),
        "encoder_record_bytes": encoder_bytes,
        "title_record_bytes": title_bytes,
        "encoder_record_under_1mib": encoder_bytes < 2**20,
    }
    print(" ".join(f"{name}={value}" for name, value in figures.items()))


if __name__ == "__main__":
    main()
