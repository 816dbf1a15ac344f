"""Training the tagger with the sentence-level log-likelihood (crf.py): whole sentences per update.

Each update takes whole sentences in a (seed, epoch) shuffle until it holds at least `batch_size` windows, runs
the window MLP forward on all their windows, scores every sentence against all tag paths, and backpropagates
dL/dZ of every window through the MLP (and the character CNN) while the transition and start scores take their
own gradient. The loss is the summed sentence losses over the windows of the update, so its scale (and a good
learning rate) matches the word-level loss.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from winner.core.chars import CharOptimizer, CharWindowMLP
from winner.core.console import progress_bar
from winner.core.gradcheck import CaseReport, check, tiny_windows
from winner.core.loop import Epoch, WindowTraining
from winner.core.mlp import MLPConfig, WindowMLP
from winner.core.updates import adam_dense, sgd_dense
from winner.heads.crf import Transitions, sentence_loss
from winner.heads.scorer import dense_grads


def epoch_batches(lengths: np.ndarray, batch: int, seed: int, epoch: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(windows, starts): every window index once, sentence by sentence in a (seed, epoch) shuffle, and for each
    update the offsets of its sentences in `windows` (whole sentences, at least `batch` windows but the last)."""
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    order = np.random.default_rng([seed, epoch]).permutation(len(lengths))
    sizes = lengths[order]
    windows = np.repeat(offsets[order] - np.concatenate(([0], np.cumsum(sizes)[:-1])), sizes) + np.arange(sizes.sum())
    ends = np.cumsum(sizes)
    updates, first, filled = [], 0, 0
    for k in range(len(order)):
        if ends[k] - filled >= batch or k == len(order) - 1:
            updates.append(np.concatenate(([filled], ends[first : k + 1])).astype(np.int64))
            first, filled = k + 1, int(ends[k])
    return windows.astype(np.int64), updates


@dataclass(kw_only=True)
class SentenceTraining(WindowTraining):
    """A Trainee (winner.core.loop) on whole sentences with the sentence-level loss; dev scoring and saving as
    WindowTraining's."""

    lengths: np.ndarray  # (sentences,) windows per training sentence, in data's order
    crf: Transitions
    crf_state: dict = field(default_factory=dict)  # Adam's moments and step count of crf.theta

    def warm_up(self) -> None:
        self.model.check_ids(self.data.ids, self.data.feats)
        clone = copy.deepcopy(self)
        k = int(np.searchsorted(np.cumsum(self.lengths), min(self.batch_size, int(self.lengths.sum())))) + 1
        lengths = self.lengths[:k]
        clone.update(np.arange(int(lengths.sum()), dtype=np.int64), np.concatenate(([0], np.cumsum(lengths))))

    def train_epoch(self, epoch: int, quiet: bool) -> Epoch:
        windows, updates = epoch_batches(self.lengths, self.batch_size, self.seed, epoch)
        total, n = 0.0, len(windows)
        with progress_bar(f"epoch {epoch}", n, quiet) as advance:
            for starts in updates:
                a, b = int(starts[0]), int(starts[-1])
                total += self.update(windows[a:b], starts - a)
                if not math.isfinite(total):
                    break
                advance(b - a)
        return Epoch(total / n, n)

    def update(self, windows: np.ndarray, starts: np.ndarray) -> float:
        """One update on the sentences whose windows are `windows` (sentence s at starts[s]:starts[s+1]);
        returns their summed loss."""
        model, opt = self.model, self.optimizer
        ids, feats = self.data.ids[windows], self.data.feats[windows]
        chars = isinstance(opt, CharOptimizer) and isinstance(model, CharWindowMLP)
        n_words = opt.stage_words(model, ids) if chars else 0
        Z, backprop = model.forward(ids, feats, train=True, seed=self.seed, step=opt.steps)
        grad = np.zeros_like(self.crf.theta)
        loss, dZ = sentence_loss(Z, starts, self.data.targets[windows], self.crf, 1.0 / len(windows), grad)
        if not math.isfinite(loss):
            return loss
        opt.step(model, backprop(dZ))
        if chars:
            opt.finish_words(model, ids, n_words)
        opt.count_windows(model, len(windows))
        self._step_transitions(grad)
        return loss

    def _step_transitions(self, grad: np.ndarray) -> None:
        opt = self.optimizer
        if opt.name == "sgd":
            sgd_dense(self.crf.theta, grad, opt.lr)
            return
        s = self.crf_state
        if not s:
            s.update(m=np.zeros_like(grad), v=np.zeros_like(grad), steps=0)
        s["steps"] += 1
        adam_dense(self.crf.theta, grad, s["m"], s["v"], opt.lr, opt.beta1, opt.beta2, opt.eps, s["steps"])

    def state_dict(self) -> dict:
        s = self.crf_state
        return {"crf": self.crf.theta.tolist(), "crf_m": s["m"].tolist() if s else None,
                "crf_v": s["v"].tolist() if s else None, "crf_steps": s.get("steps", 0)}

    def load_state_dict(self, state: dict) -> None:
        self.crf.theta[...] = np.asarray(state["crf"], np.float64)
        self.crf_state.clear()
        if state.get("crf_m") is not None:
            self.crf_state.update(m=np.asarray(state["crf_m"], np.float64), v=np.asarray(state["crf_v"], np.float64),
                                  steps=int(state["crf_steps"]))


# ---------------------------------------------------------------- gradient checks


def gradcheck_cases() -> list[CaseReport]:
    """The sentence-level loss: transitions, start scores and (through the core's backprop) every MLP parameter,
    on three sentences of a tiny float64 model; with and without dropout."""
    return [_sentence_case("sentence-level loss, tanh", train=False, seed=0),
            _sentence_case("sentence-level loss, 2 hidden, dropout", train=True, seed=1, hidden=(6, 4))]


def _sentence_case(name: str, train: bool, seed: int, hidden: tuple[int, ...] = (5,)) -> CaseReport:
    config = MLPConfig(n_positions=3, vocab_size=10, embed_dim=3, n_out=4, hidden=hidden, n_features=4,
                       feature_dim=2, dropout_input=0.3 if train else 0.0, dtype="float64")
    model = WindowMLP(config, seed=seed)
    rng = np.random.default_rng(seed)
    starts = np.array([0, 3, 4, 8], np.int64)  # sentences of 3, 1 and 4 windows
    ids, feats = tiny_windows(rng, 8, config.n_positions, config.vocab_size, config.n_features)
    targets = rng.integers(0, config.n_out, size=8)
    crf = Transitions(rng.normal(0.0, 0.5, size=config.n_out * (config.n_out + 1)))

    def loss_and_grad() -> tuple[float, dict[str, np.ndarray]]:
        Z, backprop = model.forward(ids, feats, train=train, seed=seed, step=1)
        grad = np.zeros_like(crf.theta)
        loss, dZ = sentence_loss(Z, starts, targets, crf, 1.0 / 8, grad)
        T = config.n_out
        return loss / 8, {**dense_grads(model, backprop(dZ)), "transitions": grad[: T * T].reshape(T, T),
                          "start": grad[T * T :]}

    params = {**model.params, "transitions": crf.A, "start": crf.start}
    return check(name, params, loss_and_grad, {"E": np.unique(ids), "F": np.unique(feats)})
