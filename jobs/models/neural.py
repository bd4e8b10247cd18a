"""A neural sequence model (GRU4Rec-class), numpy only: what a member watches next, from what they just watched.

* **Item embeddings** ``inputs`` (what a title means as a step of a history) and ``outputs`` with a
  bias (what it means as the next title); with ``tied`` (the default) one embedding serves both.
* **Encoder**: a GRU over the member's last ``length`` titles; its last hidden state is the member.
  Nothing else is kept per member: the state is recomputed from their last titles whenever it is
  needed, so a member costs their last titles (the learning job keeps them anyway).
* **Loss**: sampled softmax, each example's next title against the other next titles of its
  mini-batch and ``negatives`` titles drawn uniformly (GRU4Rec's mini-batch negatives).
* **Training**: continuous. Each event adds one example (the member's last titles -> this title);
  every ``batch`` examples one Adagrad step on them, and ``replay`` more steps on examples drawn from
  the last ``memory`` ones, so each example teaches more than once without a second pass.

:class:`SequenceNet` is the shared part (weights, forward, backward, a step); :class:`NeuralSequence`
puts it behind the :class:`Recommender` contract for ``nextwatch eval`` and the scorer.

>>> model = NeuralSequence(seed=1, batch=8, replay=4)
>>> for repeat in range(30):
...     for user in ("a", "b", "c", "d"):
...         for title in ("pilot", "episode-2", "episode-3"):
...             model.learn_one(Feedback(f"{user}{repeat}", title, time_ms=0))
>>> model.learn_one(Feedback("e", "pilot", time_ms=0))
>>> model.rank("e", k=1, exclude={"pilot"})
['episode-2']
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectors.state import Versioned
from jobs.models.base import Feedback, Recommender, TitleIndex

GATES = ("z", "r", "h")  # update gate, reset gate, candidate state


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for large |x|


def gru(weights: dict[str, np.ndarray], steps: np.ndarray,
        mask: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
    """The encoder: embedded histories (batch x steps x dimensions) -> last hidden states, and the cache."""
    w = weights
    h = np.zeros((steps.shape[0], steps.shape[2]), dtype=np.float32)
    cache: list[tuple[np.ndarray, ...]] = []
    for t in range(steps.shape[1]):
        x = steps[:, t]
        m = mask[:, t:t + 1]
        z = _sigmoid(x @ w["Wz"] + h @ w["Uz"] + w["bz"])
        r = _sigmoid(x @ w["Wr"] + h @ w["Ur"] + w["br"])
        n = np.tanh(x @ w["Wh"] + (r * h) @ w["Uh"] + w["bh"])
        cache.append((x, h, z, r, n, m))
        h = m * ((1.0 - z) * h + z * n) + (1.0 - m) * h  # a padded step leaves the state as it was
    return h, cache


class SequenceNet:
    """Item embeddings and a GRU encoder, trained by sampled softmax with Adagrad."""

    def __init__(self, dimensions: int = 32, negatives: int = 64, learning_rate: float = 0.05,
                 seed: int = 0, tied: bool = False) -> None:
        if dimensions < 1 or negatives < 0 or learning_rate <= 0:
            raise ValueError(f"need dimensions >= 1, negatives >= 0, learning_rate > 0, got {dimensions}, "
                             f"{negatives}, {learning_rate}")
        self.dimensions, self.negatives, self.learning_rate, self.tied = dimensions, negatives, learning_rate, tied
        self.rng = np.random.default_rng(seed)
        d = dimensions
        scale = 1.0 / np.sqrt(d)
        self.dense: dict[str, np.ndarray] = {}
        for gate in GATES:
            self.dense[f"W{gate}"] = self.rng.normal(0.0, scale, (d, d)).astype(np.float32)
            self.dense[f"U{gate}"] = self.rng.normal(0.0, scale, (d, d)).astype(np.float32)
            self.dense[f"b{gate}"] = np.zeros(d, dtype=np.float32)
        self.inputs = np.zeros((0, d), dtype=np.float32)
        self.outputs = np.zeros((0, d), dtype=np.float32)
        self.bias = np.zeros(0, dtype=np.float32)
        # Adagrad's running sums of squared gradients, one per weight
        self.squares: dict[str, np.ndarray] = {name: np.zeros_like(w) for name, w in self.dense.items()}
        self.input_squares = np.zeros((0, d), dtype=np.float32)
        self.output_squares = np.zeros((0, d), dtype=np.float32)
        self.bias_squares = np.zeros(0, dtype=np.float32)
        self.size = 0  # titles (the arrays have room for more)
        self.steps = 0
        self.last_sampled = np.zeros(0, dtype=np.int64)  # the last step's sampled negatives

    def __len__(self) -> int:
        return self.size

    def grow(self, titles: int) -> None:
        """Room for ``titles`` titles; new ones start as small random embeddings."""
        self.size = max(self.size, titles)
        have = len(self.bias)
        if titles <= have:
            return
        size = max(titles, 2 * have, 64)
        new = size - have
        d = self.dimensions
        self.outputs = np.vstack([self.outputs, self.rng.normal(0.0, 0.1, (new, d)).astype(np.float32)])
        self.inputs = (self.outputs if self.tied else
                       np.vstack([self.inputs, self.rng.normal(0.0, 0.1, (new, d)).astype(np.float32)]))
        self.bias = np.concatenate([self.bias, np.zeros(new, dtype=np.float32)])
        self.output_squares = np.vstack([self.output_squares, np.zeros((new, d), dtype=np.float32)])
        self.input_squares = (self.output_squares if self.tied else
                              np.vstack([self.input_squares, np.zeros((new, d), dtype=np.float32)]))
        self.bias_squares = np.concatenate([self.bias_squares, np.zeros(new, dtype=np.float32)])

    def encode(self, histories: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
        """Histories (batch x steps, title positions, left-padded; ``mask`` 1 where a title is) -> the last
        hidden states (batch x dimensions) and what the backward pass needs per step."""
        return gru(self.dense, self.inputs[histories], mask)

    def scores(self, state: np.ndarray) -> np.ndarray:
        """Every title's score for one member's state."""
        return self.outputs[:self.size] @ state + self.bias[:self.size]

    def loss_and_gradients(self, histories: np.ndarray, mask: np.ndarray,
                           targets: np.ndarray) -> tuple[float, dict[str, Any]]:
        """Sampled-softmax loss of the batch and every gradient (dense ones by name, sparse ones by row)."""
        batch = len(targets)
        h, cache = self.encode(histories, mask)
        sampled = self.rng.integers(0, self.size, self.negatives) if self.negatives else np.zeros(0, np.int64)
        self.last_sampled = sampled
        candidates = np.concatenate([targets, sampled])
        logits = h @ self.outputs[candidates].T + self.bias[candidates]
        # another column holding an example's own next title is not a negative for it
        logits = np.where(candidates[None, :] == targets[:, None], -1e9, logits)
        logits[np.arange(batch), np.arange(batch)] = (np.einsum("bd,bd->b", h, self.outputs[targets])
                                                      + self.bias[targets])
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        loss = float(-np.log(probabilities[np.arange(batch), np.arange(batch)] + 1e-12).mean())
        d_logits = probabilities
        d_logits[np.arange(batch), np.arange(batch)] -= 1.0
        d_logits /= batch
        d_h = d_logits @ self.outputs[candidates]
        gradients: dict[str, Any] = {"outputs": (candidates, d_logits.T @ h), "bias": (candidates, d_logits.sum(0))}
        dense = {name: np.zeros_like(w) for name, w in self.dense.items()}
        d_inputs = []
        w = self.dense
        for t in reversed(range(len(cache))):
            x, h_prev, z, r, n, m = cache[t]
            d_new, d_carry = m * d_h, (1.0 - m) * d_h
            d_z = d_new * (n - h_prev)
            d_n = d_new * z
            d_prev = d_new * (1.0 - z)
            d_an = d_n * (1.0 - n * n)
            dense["Wh"] += x.T @ d_an
            dense["Uh"] += (r * h_prev).T @ d_an
            dense["bh"] += d_an.sum(0)
            d_rh = d_an @ w["Uh"].T
            d_r = d_rh * h_prev
            d_prev += d_rh * r
            d_az = d_z * z * (1.0 - z)
            d_ar = d_r * r * (1.0 - r)
            for gate, d_a in (("z", d_az), ("r", d_ar)):
                dense[f"W{gate}"] += x.T @ d_a
                dense[f"U{gate}"] += h_prev.T @ d_a
                dense[f"b{gate}"] += d_a.sum(0)
                d_prev += d_a @ w[f"U{gate}"].T
            d_x = d_an @ w["Wh"].T + d_az @ w["Wz"].T + d_ar @ w["Wr"].T
            d_inputs.append((histories[:, t], d_x * m))
            d_h = d_prev + d_carry
        gradients["dense"] = dense
        gradients["inputs"] = d_inputs
        return loss, gradients

    def step(self, histories: np.ndarray, mask: np.ndarray, targets: np.ndarray) -> float:
        """One Adagrad step on a mini-batch; its loss before the step."""
        loss, gradients = self.loss_and_gradients(histories, mask, targets)
        rate = self.learning_rate
        for name, gradient in gradients["dense"].items():
            self.squares[name] += gradient * gradient
            self.dense[name] -= rate * gradient / (np.sqrt(self.squares[name]) + 1e-8)
        rows, gradient = gradients["outputs"]
        self._sparse(self.outputs, self.output_squares, rows, gradient)
        rows, gradient = gradients["bias"]
        self._sparse(self.bias, self.bias_squares, rows, gradient)
        for rows, gradient in gradients["inputs"]:
            self._sparse(self.inputs, self.input_squares, rows, gradient)
        self.steps += 1
        return loss

    def _sparse(self, weights: np.ndarray, squares: np.ndarray, rows: np.ndarray, gradient: np.ndarray) -> None:
        touched, at = np.unique(rows, return_inverse=True)
        summed = np.zeros((len(touched), *gradient.shape[1:]), dtype=np.float32)  # only the rows touched
        np.add.at(summed, at, gradient)  # a title twice in a batch: its gradients add up
        squares[touched] += summed ** 2
        weights[touched] -= self.learning_rate * summed / (np.sqrt(squares[touched]) + 1e-8)


def padded(histories: Sequence[Sequence[int]], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Histories of title positions -> (batch x length positions, mask), left-padded, the newest last."""
    positions = np.zeros((len(histories), length), dtype=np.int64)
    mask = np.zeros((len(histories), length), dtype=np.float32)
    for row, history in enumerate(histories):
        recent = list(history)[-length:]
        if recent:
            positions[row, length - len(recent):] = recent
            mask[row, length - len(recent):] = 1.0
    return positions, mask


class NeuralSequence(Recommender):
    """:class:`SequenceNet` behind the :class:`Recommender` contract, trained test-then-train as events come."""

    # Defaults chosen on the first 50,000 MovieLens 100K ratings only (learning on the first 25,000, measured
    # on the next): small batches, a high rate and many negatives win there, replaying old examples loses
    # (the stream moves on), and one embedding per title for input and output beats two.
    def __init__(self, length: int = 10, dimensions: int = 64, batch: int = 4, replay: int = 0,
                 memory: int = 20_000, negatives: int = 256, learning_rate: float = 0.1, seed: int = 0,
                 tied: bool = True, titles: TitleIndex | None = None) -> None:
        super().__init__(titles)
        if length < 1 or batch < 1 or replay < 0 or memory < batch:
            raise ValueError(f"need length >= 1, batch >= 1, replay >= 0 and memory >= batch, got {length}, "
                             f"{batch}, {replay}, {memory}")
        self.length, self.batch, self.replay, self.memory = length, batch, replay, memory
        self.settings = {"dimensions": dimensions, "negatives": negatives, "learning_rate": learning_rate,
                         "seed": seed, "tied": tied}
        self.net = SequenceNet(dimensions, negatives, learning_rate, seed, tied)
        self.last: dict[str, deque[int]] = {}
        self.pending: list[tuple[tuple[int, ...], int]] = []
        self.examples: deque[tuple[tuple[int, ...], int]] = deque(maxlen=memory)
        self.rng = np.random.default_rng(seed + 1)
        self.losses: deque[float] = deque(maxlen=100)

    def _params(self) -> dict[str, Any]:
        return {"length": self.length, "batch": self.batch, "replay": self.replay, "memory": self.memory,
                **self.settings}

    def user_state_bytes(self, user_id: str) -> int:
        """Bytes of per-user state: the last titles (8 bytes each as positions)."""
        return 8 * len(self.last.get(user_id, ()))

    def learn_one(self, feedback: Feedback) -> None:
        position = self.titles.add(feedback.title_id)
        self.net.grow(len(self.titles))
        last = self.last.setdefault(feedback.user_id, deque(maxlen=self.length))
        if position in last:  # another event of a title just watched: nothing new to predict
            return
        if last:
            example = (tuple(last), position)
            self.pending.append(example)
            self.examples.append(example)
        last.append(position)
        if len(self.pending) >= self.batch:
            self._train(self.pending)
            self.pending = []
            for _ in range(self.replay):
                drawn = self.rng.integers(0, len(self.examples), self.batch)
                self._train([self.examples[n] for n in drawn])

    def _train(self, examples: list[tuple[tuple[int, ...], int]]) -> None:
        histories, mask = padded([history for history, _ in examples], self.length)
        self.losses.append(self.net.step(histories, mask, np.array([target for _, target in examples])))

    def state(self, history: Sequence[int]) -> np.ndarray:
        """A member's state, recomputed from their last titles."""
        positions, mask = padded([history], self.length)
        return self.net.encode(positions, mask)[0][0]

    def score(self, user_id: str) -> np.ndarray:
        scores = np.zeros(len(self.titles), dtype=np.float32)
        last = self.last.get(user_id)
        if last:
            scores[:] = self.net.scores(self.state(last))[:len(self.titles)]
        return scores


NEURAL_MODEL_VERSION = "gru4rec-tied-v1"  # the published weights' family and shape
ENCODER = "encoder"  # the key of the encoder's published record; titles are published under their ids
WEIGHT_ORDER = tuple(f"{kind}{gate}" for gate in GATES for kind in ("W", "U", "b"))


@dataclass
class PublishedNeural(Versioned):
    """One absolute, versioned record of the trainer's weights: the encoder (``key`` ``"encoder"``, ``vector``
    every dense weight flattened in ``WEIGHT_ORDER``) or one title's embedding and output bias."""

    key: str
    version: int
    dimensions: int
    vector: np.ndarray
    bias: float = 0.0
    updated_ms: int = 0

    STATE_VERSION = 1

    def state_fields(self) -> tuple[Any, ...]:
        return (self.key, self.version, self.dimensions, np.asarray(self.vector, dtype=np.float32).tobytes(),
                self.bias, self.updated_ms)

    def restore(self, fields: tuple[Any, ...]) -> None:
        self.key, self.version, self.dimensions, raw, self.bias, self.updated_ms = fields
        self.vector = np.frombuffer(raw, dtype=np.float32).copy()

    def encoder_weights(self) -> dict[str, np.ndarray]:
        """The encoder's dense weights by name (for the encoder's record)."""
        d, out, at = self.dimensions, {}, 0
        for name in WEIGHT_ORDER:
            size = d if name.startswith("b") else d * d
            out[name] = self.vector[at:at + size].reshape((d,) if name.startswith("b") else (d, d))
            at += size
        return out


@dataclass
class TrainerState(Versioned):
    """The neural trainer's keyed state: the shared weights, the titles they index, what waits to be learned
    and published. One key (the trainer runs as one instance for the whole job)."""

    net: SequenceNet
    titles: list[str] = field(default_factory=list)
    pending: list[tuple[tuple[int, ...], int]] = field(default_factory=list)
    changed: set[int] = field(default_factory=set)  # title rows changed since they were last published
    version: int = 0  # training steps so far: the version of everything published
    armed: bool = False  # a publish timer is set

    STATE_VERSION = 1

    def position(self, title_id: str) -> int:
        index: dict[str, int] | None = getattr(self, "_index", None)  # a cache, not state: rebuilt after a restore
        if index is None or len(index) != len(self.titles):
            index = self._index = {title: n for n, title in enumerate(self.titles)}
        found = index.get(title_id)
        if found is None:
            found = index[title_id] = len(self.titles)
            self.titles.append(title_id)
            self.net.grow(len(self.titles))
        return found

    def learn(self, history: Sequence[str], title_id: str, batch: int, length: int) -> bool:
        """One example (a member's last titles -> the next); ``True`` when it completed a batch and a step ran."""
        example = (tuple(self.position(t) for t in list(history)[-length:]), self.position(title_id))
        self.pending.append(example)
        if len(self.pending) < batch:
            return False
        histories, mask = padded([h for h, _ in self.pending], length)
        targets = np.array([target for _, target in self.pending])
        self.net.step(histories, mask, targets)
        self.changed.update(int(p) for p in np.unique(np.concatenate([histories[mask > 0], targets])))
        self.changed.update(int(p) for p in self.net.last_sampled)
        self.pending = []
        self.version += 1
        return True

    def published(self, now_ms: int) -> list[PublishedNeural]:
        """The encoder and every changed title, at the current version (and nothing changed any more)."""
        net = self.net
        encoder = np.concatenate([net.dense[name].ravel() for name in WEIGHT_ORDER])
        records = [PublishedNeural(ENCODER, self.version, net.dimensions, encoder, 0.0, now_ms)]
        records += [PublishedNeural(self.titles[p], self.version, net.dimensions, net.outputs[p].copy(),
                                    float(net.bias[p]), now_ms) for p in sorted(self.changed) if p < len(self.titles)]
        self.changed = set()
        return records


def neural_scores(encoder: Mapping[str, np.ndarray], embeddings: np.ndarray, bias: np.ndarray,
                  history: Sequence[int], length: int) -> np.ndarray:
    """Every title's score for a member whose last titles are the rows ``history`` of ``embeddings``
    (the user side's copy of the published weights; tied embeddings serve as input and output)."""
    recent = list(history)[-length:]
    if not recent or not encoder:
        return np.zeros(len(bias), dtype=np.float32)
    steps = embeddings[np.array(recent)][None, :, :]
    state = gru(dict(encoder), steps, np.ones((1, len(recent)), dtype=np.float32))[0][0]
    scores: np.ndarray = embeddings @ state + bias
    return scores
