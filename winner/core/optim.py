"""Optimisers: plain SGD and Adam, dense on theta and lazy (row-wise) on the embedding tables.

The state is plain arrays so that a checkpoint is an npz file; the arithmetic is in kernels.py.
Training runs whole stretches of minibatches inside one compiled loop (`train_batches`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from winner.core import kernels as K
from winner.core.mlp import ACTIVATIONS, LOSSES, SparseGrads, WindowMLP
from winner.core.runtime import blas_threads

OPTIMIZERS = {"sgd": K.OPT_SGD, "adam": K.OPT_ADAM}
# Minibatches whose products are smaller than this (batch x weights, in multiply-adds) keep BLAS on one thread:
# they are too small to split profitably (the NER window MLP, 150k weights, gains from a second core from batch
# 128 on, not at 32), and a split stalls badly when the other core is busy. A language model's 5.6M weights pass
# it from batch 4 on. Results do not depend on it (BLAS splits output blocks, never a sum).
SPLIT_WORK = 128 * 150_000


@dataclass
class Optimizer:
    """Hyperparameters and state of one optimiser for one model."""

    name: str = "adam"
    lr: float = 1e-3
    embed_lr_scale: float = 1.0  # the tables' learning rate is lr * embed_lr_scale
    l2: float = 0.0
    l1: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    update_embeddings: bool = True
    steps: int = 0
    state: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.name!r}")

    def _state(self, model: WindowMLP) -> dict[str, np.ndarray]:
        """Adam's moments (allocated on first use); tiny placeholders for SGD."""
        if not self.state:
            if self.name == "adam":
                self.state = {k: np.zeros_like(a) for k, a in
                              (("m", model.theta), ("v", model.theta), ("mE", model.E), ("vE", model.E),
                               ("mF", model.F), ("vF", model.F))}
            else:
                z1 = np.zeros(1, model.dtype)
                z2 = np.zeros((1, 1), model.dtype)
                self.state = {"m": z1, "v": z1, "mE": z2, "vE": z2, "mF": z2, "vF": z2}
        return self.state

    def step(self, model: WindowMLP, grads: SparseGrads) -> None:
        """Apply one update from gradients computed by `model.forward(...)[1](dZ)`."""
        K.add_penalty_grad(model.theta, model.weight_mask, self.l2, self.l1, grads.theta)
        s = self._state(model)
        self.steps += 1
        K.apply_update(model.theta, grads.theta, model.E, model.F, grads.rows_E, grads.G_E, len(grads.rows_E),
                       grads.rows_F, grads.G_F, len(grads.rows_F), self.update_embeddings,
                       self.update_embeddings, OPTIMIZERS[self.name], self.lr, self.lr * self.embed_lr_scale,
                       self.beta1, self.beta2, self.eps, self.steps,
                       s["m"], s["v"], s["mE"], s["vE"], s["mF"], s["vF"])

    def train_batches(self, model: WindowMLP, ids: np.ndarray, feats: np.ndarray, targets: np.ndarray,
                      order: np.ndarray, start: int, stop: int, batch: int, seed: int) -> float:
        """Train on windows order[start:stop] in minibatches; returns the summed loss (nan/inf if diverged).

        The caller checks the ids once (WindowMLP.check_ids): this runs per stretch of batches.
        """
        model._require_targets_loss()
        b = model.buffers(batch)
        s = self._state(model)
        n_batches = -(-(stop - start) // batch)
        with blas_threads(1 if batch * model.theta.size < SPLIT_WORK else None):
            total = self._train_batches(model, b, s, ids, feats, targets, order, start, stop, batch, seed)
        self.steps += n_batches
        return float(total)

    def _train_batches(self, model: WindowMLP, b: dict[str, np.ndarray], s: dict[str, np.ndarray], ids: np.ndarray,
                       feats: np.ndarray, targets: np.ndarray, order: np.ndarray, start: int, stop: int, batch: int,
                       seed: int) -> float:
        c = model.config
        return K.train_batches(
            ids, feats, targets, order, start, stop, batch, b["ids"], b["feats"], b["targets"],
            model.E, model.F, model.theta, model.sizes, c.direct, ACTIVATIONS[c.activation], LOSSES[c.loss],
            c.dropout_input, c.dropout_hidden, seed, self.steps, model.weight_mask, self.l2, self.l1,
            OPTIMIZERS[self.name], self.lr, self.lr * self.embed_lr_scale, self.beta1, self.beta2, self.eps,
            s["m"], s["v"], s["mE"], s["vE"], s["mF"], s["vF"], self.update_embeddings, self.update_embeddings,
            b["acts"], b["keep"], b["Z"], b["dZ"], b["dacts"], model.grad,
            model.slot_E, b["rows_E"], b["G_E"], model.slot_F, b["rows_F"], b["G_F"],
            *model.pair_buffers(batch if self._pairs_apply(model, batch) else 0))

    def _pairs_apply(self, model: WindowMLP, batch: int) -> bool:
        """Whether kernels.sgd_step_pairs serves this training (its scratch is only allocated then)."""
        c = model.config
        return (self.name == "sgd" and self.l2 == 0.0 and self.l1 == 0.0 and c.dropout_input == 0.0
                and c.feature_dim == 0 and not c.direct and bool(c.hidden) and batch >= K.PAIRS_MIN_BATCH
                and c.loss != "none")

    def hyperparams(self) -> dict:
        return {k: getattr(self, k) for k in ("name", "lr", "embed_lr_scale", "l2", "l1", "beta1", "beta2",
                                                "eps", "update_embeddings")}
