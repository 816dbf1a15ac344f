"""Optimisers: plain SGD and Adam, dense on theta and lazy (row-wise) on the embedding tables.

The state is plain arrays so that a checkpoint is an npz file; the arithmetic is in updates.py and steps.py.
Training runs whole stretches of minibatches inside one compiled loop (`train_batches`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from winner.core import classes, layers, steps, updates
from winner.core.mlp import SparseGrads, WindowMLP

OPTIMIZERS = {"sgd": updates.OPT_SGD, "adam": updates.OPT_ADAM}
AVERAGE_SNAPSHOTS = 8  # the weight average moves at least this often per time constant


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
    # Polyak averaging (EMA form): the time constant, in windows, of a moving average of the weights (every
    # array of model.flat_params()) kept in `state` (so checkpoints hold it); 0 = none. Adam at a useful rate
    # leaves the weights jittering around a good point; the average of recent iterates sits closer to it.
    # Evaluate with model.use_params(averaged()). It moves after each stretch of train_batches, or (via
    # count_windows) every so many windows of steps taken outside it.
    average_windows: float = 0.0
    steps: int = 0
    state: dict[str, np.ndarray] = field(default_factory=dict)
    # a class-factored output (core/classes.py): its layout; training then takes classes.class_step
    output_classes: classes.ClassLayout | None = None

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.name!r}")

    def _state(self, model: WindowMLP) -> dict[str, np.ndarray]:
        """Adam's moments (allocated on first use); tiny placeholders for SGD."""
        if "m" not in self.state:  # the state may already hold the average's counter
            if self.name == "adam":
                self.state |= {k: np.zeros_like(a) for k, a in
                               (("m", model.theta), ("v", model.theta), ("mE", model.E), ("vE", model.E),
                                ("mF", model.F), ("vF", model.F))}
            else:
                z1 = np.zeros(1, model.dtype)
                z2 = np.zeros((1, 1), model.dtype)
                self.state |= {"m": z1, "v": z1, "mE": z2, "vE": z2, "mF": z2, "vF": z2}
        return self.state

    def step(self, model: WindowMLP, grads: SparseGrads) -> None:
        """Apply one update from gradients computed by `model.forward(...)[1](dZ)`."""
        updates.add_penalty_grad(model.theta, model.weight_mask, self.l2, self.l1, grads.theta)
        adam = self._adam(model)
        self.steps += 1
        updates.apply_update(model.kernel_params, grads.theta, grads.rows_E, grads.G_E, len(grads.rows_E),
                             grads.rows_F, grads.G_F, len(grads.rows_F), self._hyper(), self.steps, adam)

    def _hyper(self) -> updates.Hyper:
        """The scalars the kernels take, built per call: a schedule may change lr between calls."""
        return updates.Hyper(OPTIMIZERS[self.name], float(self.lr), float(self.lr * self.embed_lr_scale),
                             float(self.beta1), float(self.beta2), float(self.eps), float(self.l2), float(self.l1),
                             bool(self.update_embeddings), bool(self.update_embeddings))

    def _adam(self, model: WindowMLP) -> updates.AdamState:
        s = self._state(model)
        return updates.AdamState(s["m"], s["v"], s["mE"], s["vE"], s["mF"], s["vF"])

    def train_batches(self, model: WindowMLP, ids: np.ndarray, feats: np.ndarray, targets: np.ndarray,
                      order: np.ndarray, start: int, stop: int, batch: int, seed: int) -> float:
        """Train on windows order[start:stop] in minibatches; returns the summed loss (nan/inf if diverged).

        The caller checks the ids once (WindowMLP.check_ids): this runs per stretch of batches.
        """
        if self.output_classes is None:
            model._require_targets_loss()
        scratch = model.scratch(batch)
        adam = self._adam(model)
        n_batches = -(-(stop - start) // batch)
        total = self._train_batches(model, scratch, adam, ids, feats, targets, order, start, stop, batch, seed)
        self.steps += n_batches
        if self.average_windows > 0 and math.isfinite(total):
            self._update_average(model, stop - start)
        return float(total)

    def count_windows(self, model: WindowMLP, windows: int) -> None:
        """After a step taken outside train_batches (model.forward, then step): `windows` more were trained on.
        The average moves once AVERAGE_SNAPSHOTS-th of its time constant has passed (moving it costs a pass
        over every weight, too much for every minibatch)."""
        if self.average_windows <= 0:
            return
        pending = self.state.setdefault("avg_pending", np.zeros((), np.int64))  # in state: checkpoints keep it
        pending += windows
        if pending >= self.average_windows / AVERAGE_SNAPSHOTS:
            self._update_average(model, int(pending))
            pending[...] = 0

    def _update_average(self, model: WindowMLP, windows: int) -> None:
        rate = 1.0 - math.exp(-windows / self.average_windows)
        for name, current in model.flat_params().items():
            avg = self.state.get("avg_" + name)
            if avg is None:
                self.state["avg_" + name] = current.copy()
            else:  # avg += rate * (current - avg)
                avg *= 1.0 - rate
                avg += rate * current

    def averaged(self) -> dict[str, np.ndarray]:
        """The averaged parameters (named as WindowMLP.flat_params), or {} before any training or without
        averaging."""
        return {key[4:]: a for key, a in self.state.items() if key.startswith("avg_") and key != "avg_pending"}

    def average_stride(self, batch: int, longest: int) -> int:
        """Windows per stretch of train_batches, at most `longest`: the average moves after each stretch, so
        with averaging at most AVERAGE_SNAPSHOTS-th of its time constant (whole minibatches). Splitting a
        stretch at a minibatch boundary changes no step."""
        if self.average_windows <= 0:
            return longest
        return min(longest, max(batch, int(self.average_windows / AVERAGE_SNAPSHOTS) // batch * batch))

    def _train_batches(self, model: WindowMLP, scratch: layers.Scratch, adam: updates.AdamState, ids: np.ndarray,
                       feats: np.ndarray, targets: np.ndarray, order: np.ndarray, start: int, stop: int, batch: int,
                       seed: int) -> float:
        if self.output_classes is not None:
            return self._train_class_batches(model, scratch, adam, ids, feats, targets, order[start:stop], batch, seed)
        pairs = model.pair_buffers(batch if self._pairs_apply(model, batch) else 0)
        return steps.train_batches(ids, feats, targets, order[start:stop], batch, model.kernel_params,
                                   model.kernel_net(True), seed, self.steps, self._hyper(), adam, scratch, pairs)

    def _train_class_batches(self, model: WindowMLP, scratch: layers.Scratch, adam: updates.AdamState,
                             ids: np.ndarray, feats: np.ndarray, targets: np.ndarray, order: np.ndarray, batch: int,
                             seed: int) -> float:
        if self.l1:
            raise ValueError("an L1 penalty is not implemented for the class-factored output")
        layout = self.output_classes
        rows = classes.top_rows(model.sizes, model.config.direct)
        cs = getattr(self, "_class_scratch", None)
        if cs is None or cs.Zc.shape[0] < batch or cs.Zc.dtype != model.dtype or cs.U.shape[1] != rows:
            cs = self._class_scratch = classes.class_scratch(layout, batch, rows, model.dtype)
        return classes.train_batches(ids, feats, targets, order, batch, model.kernel_params, model.kernel_net(True),
                                     seed, self.steps, self._hyper(), adam, scratch, cs, layout)

    def _pairs_apply(self, model: WindowMLP, batch: int) -> bool:
        """Whether steps.sgd_step_pairs serves this training (its scratch is only allocated then)."""
        kind = steps.step_kind(model.kernel_params, model.kernel_net(True), self._hyper(), batch)
        return kind == steps.STEP_PAIRS

    def hyperparams(self) -> dict:
        return {k: getattr(self, k) for k in ("name", "lr", "embed_lr_scale", "l2", "l1", "beta1", "beta2",
                                                "eps", "update_embeddings")}
