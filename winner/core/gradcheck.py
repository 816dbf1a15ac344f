"""Finite-difference gradient checks of the numerical core, in float64.

Every entry of every parameter (embedding rows included) is perturbed and the loss re-evaluated with
the five-point central difference f'(x) ~ (-f(x+2h) + 8f(x+h) - 8f(x-h) + f(x-2h)) / 12h, whose error
is O(h^4): with h = 1e-4 truncation is negligible and round-off stays near 1e-12, so a relative error
above 1e-6 means a wrong gradient, not a noisy estimate. Each head registers its own cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from winner.core.mlp import MLPConfig, WindowMLP

STEP = 1e-4
# Round-off leaves the numerical derivative with an absolute noise of ~18 ulp(loss) / 12h ~ 3e-12.
# Relative errors are taken against max(|analytic|, |numeric|, FLOOR): below FLOOR in size an entry is
# judged by its absolute error (scaled by 1/FLOOR), so a true zero is not failed for noise, while any
# absolute error above 1e-11 still fails the 1e-6 tolerance.
FLOOR = 1e-5
TOLERANCE = 1e-6

LossAndGrad = Callable[[], tuple[float, dict[str, np.ndarray]]]


@dataclass
class ParamReport:
    name: str
    shape: tuple[int, ...]
    worst: float  # worst relative error
    worst_index: tuple[int, ...]
    mean: float
    analytic: float  # the two values at the worst index
    numeric: float
    untouched_rows_zero: bool = True  # embedding rows no window uses have an exactly-zero gradient


@dataclass
class CaseReport:
    name: str
    params: list[ParamReport] = field(default_factory=list)

    @property
    def worst(self) -> float:
        return max(p.worst for p in self.params)

    @property
    def ok(self) -> bool:
        return all(p.worst < TOLERANCE and p.untouched_rows_zero for p in self.params)


def numeric_gradient(params: dict[str, np.ndarray], loss: Callable[[], float], name: str) -> np.ndarray:
    """Five-point central differences of `loss` with respect to every entry of params[name] (in place)."""
    p = params[name]
    g = np.zeros_like(p, dtype=np.float64)
    flat, gflat = p.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        x = flat[i]
        f = []
        for k in (2, 1, -1, -2):
            flat[i] = x + k * STEP
            f.append(loss())
        flat[i] = x
        gflat[i] = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * STEP)
    return g


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    return np.abs(analytic - numeric) / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), FLOOR)


def check(name: str, params: dict[str, np.ndarray], loss_and_grad: LossAndGrad,
          used_rows: dict[str, np.ndarray] | None = None) -> CaseReport:
    """Compare analytic and numerical gradients of every parameter; `used_rows` names table rows in use."""
    _, grads = loss_and_grad()
    grads = {k: np.array(v, dtype=np.float64) for k, v in grads.items()}
    report = CaseReport(name)
    for pname in params:
        if params[pname].size == 0:
            continue
        num = numeric_gradient(params, lambda: loss_and_grad()[0], pname)
        rel = relative_error(grads[pname], num)
        idx = np.unravel_index(int(np.argmax(rel)), rel.shape)
        zero_ok = True
        if used_rows is not None and pname in used_rows:
            unused = np.setdiff1d(np.arange(params[pname].shape[0]), used_rows[pname])
            zero_ok = bool(np.all(grads[pname][unused] == 0.0))
        report.params.append(ParamReport(pname, params[pname].shape, float(rel.max()), tuple(int(i) for i in idx),
                                         float(rel.mean()), float(grads[pname][idx]), float(num[idx]), zero_ok))
    return report


def tiny_windows(rng: np.random.Generator, n: int, positions: int, vocab: int, n_features: int,
                 repeat_word: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Random window ids over the first vocab-3 rows, so the last rows are unused (their gradient must be 0).

    With repeat_word, the first window uses one word at two positions (the 'fork' rule: both count).
    """
    ids = rng.integers(0, vocab - 3, size=(n, positions)).astype(np.int32)
    feats = rng.integers(0, max(1, n_features - 1), size=(n, positions)).astype(np.int32)
    if repeat_word and positions > 1:
        ids[0, -1] = ids[0, 0]
    return ids, feats


def mlp_case(name: str, config: MLPConfig, seed: int = 0, batch: int = 4, l2: float = 0.0, l1: float = 0.0,
             train: bool = False) -> CaseReport:
    """Gradient check of the core MLP with the loss named in `config` on a tiny random batch."""
    rng = np.random.default_rng(seed)
    model = WindowMLP(config, seed=seed)
    ids, feats = tiny_windows(rng, batch, config.n_positions, config.vocab_size, config.n_features)
    targets = rng.integers(0, 2 if config.loss == "sigmoid" else config.n_out, size=batch)
    if config.activation == "relu":
        _move_away_from_kinks(model, ids, feats)
    if l1 > 0.0:  # |w| has a kink at 0: keep every weight further from it than the stencil reaches
        w = model.theta
        near = (model.weight_mask == 1) & (np.abs(w) < 1e-3)
        w[near] = np.where(w[near] < 0, -1e-3, 1e-3)

    def loss_and_grad() -> tuple[float, dict[str, np.ndarray]]:
        return model.loss_and_grad(ids, feats, targets, l2=l2, l1=l1, train=train, seed=seed, step=1)

    used = {"E": np.unique(ids), "F": np.unique(feats)}
    return check(name, model.params, loss_and_grad, used)


def _move_away_from_kinks(model: WindowMLP, ids: np.ndarray, feats: np.ndarray) -> None:
    """Shift hidden biases so no ReLU pre-activation lies within 4*STEP-ish of 0 (its kink)."""
    c = model.config
    for _ in range(50):
        Z, _ = model.forward(ids, feats)
        acts = model.buffers(ids.shape[0])["acts"]
        B, near = ids.shape[0], False
        off = B * c.n_in
        for l, h in enumerate(c.hidden):
            a = acts[off : off + B * h]
            off += B * h
            if np.any((a > 0) & (a < 1e-2)):
                model.params[f"b{l}"][...] += 0.013
                near = True
        if not near:
            return


def core_cases() -> list[CaseReport]:
    """The core with each activation and output: tagger-like, binary, LM-like (direct, no hidden layer)."""
    base = dict(n_positions=5, vocab_size=12, embed_dim=3, n_features=5, feature_dim=2, dtype="float64")
    return [
        mlp_case("tagger tanh, 2 hidden, softmax, L2+L1", MLPConfig(n_out=4, hidden=(6, 5), **base), l2=0.03,
                 l1=0.01),
        mlp_case("tagger sigmoid, softmax, dropout", MLPConfig(n_out=4, hidden=(6,), activation="sigmoid",
                                                                dropout_input=0.3, dropout_hidden=0.2, **base),
                 train=True),
        mlp_case("tagger relu, 2 hidden, softmax", MLPConfig(n_out=4, hidden=(7, 5), activation="relu", **base)),
        mlp_case("binary tanh, sigmoid cross-entropy", MLPConfig(n_out=1, hidden=(6,), loss="sigmoid", **base)),
        mlp_case("lm-like tanh, direct connections", MLPConfig(n_positions=4, vocab_size=12, embed_dim=3, n_out=12,
                                                               hidden=(5,), direct=True, dtype="float64")),
        mlp_case("lm-like, no hidden layer (h = 0)", MLPConfig(n_positions=4, vocab_size=12, embed_dim=3, n_out=12,
                                                               hidden=(), dtype="float64")),
    ]
