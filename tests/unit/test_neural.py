"""The neural sequence model (jobs/models/neural.py): exact gradients, learning a sequence, bounded state."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from jobs.models.base import Feedback
from jobs.models.neural import NeuralSequence, SequenceNet, padded


def _float64(net: SequenceNet) -> SequenceNet:
    net.dense = {name: w.astype(np.float64) for name, w in net.dense.items()}
    net.inputs, net.outputs, net.bias = (net.inputs.astype(np.float64), net.outputs.astype(np.float64),
                                         net.bias.astype(np.float64))
    return net


def test_gradients_match_finite_differences() -> None:
    net = _float64(SequenceNet(dimensions=4, negatives=0, seed=3))
    net.grow(6)
    net.bias[:] = np.random.default_rng(0).normal(0, 0.1, len(net.bias))
    histories, mask = padded([[1, 2, 3], [4], [2, 5]], length=3)  # padded steps included
    targets = np.array([4, 0, 1])
    _, gradients = net.loss_and_gradients(histories, mask, targets)

    def numeric(weights: np.ndarray, index: tuple[int, ...], eps: float = 1e-6) -> float:
        saved = weights[index]
        weights[index] = saved + eps
        up = net.loss_and_gradients(histories, mask, targets)[0]
        weights[index] = saved - eps
        down = net.loss_and_gradients(histories, mask, targets)[0]
        weights[index] = saved
        return (up - down) / (2 * eps)

    for name in ("Wz", "Uz", "Wr", "Ur", "Wh", "Uh"):
        for index in ((0, 1), (2, 3)):
            assert gradients["dense"][name][index] == pytest.approx(numeric(net.dense[name], index), rel=1e-3,
                                                                     abs=1e-8), name
    for name in ("bz", "br", "bh"):
        assert gradients["dense"][name][1] == pytest.approx(numeric(net.dense[name], (1,)), rel=1e-3, abs=1e-8)

    def sparse(rows_and_gradients: list[tuple[np.ndarray, np.ndarray]], row: int, column: int) -> float:
        return float(sum(g[rows == row, column].sum() for rows, g in rows_and_gradients))

    for row in (1, 2, 4):  # input embeddings: the titles in the histories
        assert sparse(gradients["inputs"], row, 0) == pytest.approx(numeric(net.inputs, (row, 0)), rel=1e-3)
    for row in (0, 1, 4):  # output embeddings and biases: the candidates
        assert sparse([gradients["outputs"]], row, 2) == pytest.approx(numeric(net.outputs, (row, 2)), rel=1e-3)
    rows, bias = gradients["bias"]
    assert float(bias[rows == 4].sum()) == pytest.approx(numeric(net.bias, (4,)), rel=1e-3)


def test_training_lowers_the_loss_and_learns_what_comes_next() -> None:
    model = NeuralSequence(length=4, dimensions=16, batch=16, replay=2, seed=2)
    rng = np.random.default_rng(7)
    chains = [[f"s{series}e{episode}" for episode in range(4)] for series in range(8)]
    for member in range(300):  # each member watches one series in order
        for title in chains[int(rng.integers(8))]:
            model.learn_one(Feedback(f"u{member}", title, time_ms=member))
    losses = list(model.losses)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    model.learn_one(Feedback("fresh", "s3e1", time_ms=0))
    assert model.rank("fresh", k=1, exclude={"s3e1"}) == ["s3e2"]


def test_a_members_state_is_their_last_titles_and_the_model_pickles() -> None:
    model = NeuralSequence(length=5)
    for n in range(40):
        model.learn_one(Feedback("a", f"m{n}", time_ms=n))
    assert model.user_state_bytes("a") == 40 < 1024 and list(model.last["a"]) == [35, 36, 37, 38, 39]
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(again.score("a"), model.score("a"))
    with pytest.raises(ValueError, match="memory >= batch"):
        NeuralSequence(batch=64, memory=10)


def test_the_in_process_trainer_is_held_as_its_published_records_are() -> None:
    from jobs.models.neural import TrainerState
    from jobs.models.online import LearningConfig
    from jobs.models.signals import TitleTable

    config = LearningConfig()
    trainer = TrainerState(SequenceNet(config.neural_dimensions, 16, 0.1, tied=True))
    by_records, in_bulk = TitleTable(config), TitleTable(config)
    rng = np.random.default_rng(2)
    for round_ in range(3):
        for _ in range(12):
            trainer.learn([f"m{n}" for n in rng.integers(40, size=4)], f"m{rng.integers(40)}", 4, 10)
        changed = set(trainer.changed)
        for weights in trainer.published(0):
            by_records.hold_neural(weights)
        trainer.changed = changed
        in_bulk.hold_trainer(trainer)
        assert not trainer.changed and by_records.ids == in_bulk.ids and len(changed) > 0, round_
        assert np.array_equal(by_records.neural, in_bulk.neural)
        assert np.array_equal(by_records.neural_bias, in_bulk.neural_bias)
        assert by_records.neural_versions == in_bulk.neural_versions
        assert by_records.encoder.keys() == in_bulk.encoder.keys()
        assert all(np.array_equal(by_records.encoder[name], in_bulk.encoder[name]) for name in in_bulk.encoder)
