"""Gradient x input attributions of a window MLP's outputs, from the same backward pass that trains it.

For a chosen scalar score s(Z) of each window (a tag's logit, a scorer's output, a word's log-probability)
the forward pass runs with dropout off, the head supplies dZ = ds/dZ, and `layers.backward` (the training
kernel, unchanged) carries it down to dX = ds/dX, the gradient with respect to the window's concatenated
word and feature embeddings. Each input's contribution is X * dX, summed per window position and per part
(word embedding, feature embedding). Where the model is linear in X (no hidden layer) these contributions
plus the output bias add up to the score exactly; elsewhere their sum is the derivative of s along X.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from winner.core import layers
from winner.core.mlp import WindowMLP

CHUNK = 256  # windows per forward/backward: a language model's logits are CHUNK x |V|

# score_grad(Z, start) -> (scores (B,), dZ (B, n_out)): the scalar a head explains and its gradient, for the
# logits Z (B, n_out) of windows start, start+1, ... of the call
ScoreGrad = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


class Attribution(NamedTuple):
    """Per-window attributions of B windows of P positions."""

    score: np.ndarray  # (B,) float64: the explained score
    word: np.ndarray  # (B, P) float64: sum over the word embedding of X * dX at each position
    feature: np.ndarray  # (B, P) float64: the same over the feature (casing) embedding; zeros without one
    rest: np.ndarray  # (B,) float64: score - all contributions (the output bias where the model is linear)
    grad: np.ndarray  # (B, P, d + df): dX itself, ds/d(input), for checks and finer displays


def input_gradients(model: WindowMLP, ids: np.ndarray, feats: np.ndarray, score_grad: ScoreGrad,
                    start: int = 0, table: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores (B,), X (B, n_in), dX (B, n_in)) of one batch: forward without dropout, then the training
    backward pass from dZ = score_grad(Z). ids, feats: (B, P) int32 within the model's tables, or within `table`
    if given (rows read in place of the word table's: a batch with context codes, winner.core.context)."""
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    feats = np.ascontiguousarray(feats, dtype=np.int32)
    model.check_ids(ids, feats, None if table is None else len(table))
    B, n_in = ids.shape[0], model.config.n_in
    scratch = model.scratch(B)
    params = model.kernel_params if table is None else layers.Params(table, model.F, model.theta, model.sizes,
                                                                       model.weight_mask)
    net = model.kernel_net(False)
    layers.forward(ids, feats, params, net, 0, 0, scratch)
    X = scratch.acts[: B * n_in].reshape(B, n_in).copy()
    scores, dZ = score_grad(scratch.Z[:B].copy(), start)
    scratch.grad[:] = 0.0  # backward adds the parameters' gradients there; explaining discards them
    layers.backward(params, net, scratch, np.ascontiguousarray(dZ, dtype=model.dtype))
    dX = scratch.dacts[: B * n_in].reshape(B, n_in).copy()
    return np.asarray(scores, dtype=np.float64), X, dX


def attribute(model: WindowMLP, ids: np.ndarray, feats: np.ndarray | None, score_grad: ScoreGrad,
              chunk: int = CHUNK, table: np.ndarray | None = None) -> Attribution:
    """Attributions of every window (N, P), chunk by chunk; feats None means no feature table is read; `table` as
    in input_gradients."""
    c = model.config
    N, P = ids.shape
    if feats is None:
        feats = np.zeros_like(ids)
    d, df = c.embed_dim, c.feature_dim
    score = np.zeros(N)
    word = np.zeros((N, P))
    feature = np.zeros((N, P))
    grad = np.zeros((N, P, d + df))
    for s in range(0, N, chunk):
        e = min(s + chunk, N)
        sc, X, dX = input_gradients(model, ids[s:e], feats[s:e], score_grad, s, table)
        prod = (X.astype(np.float64) * dX.astype(np.float64)).reshape(e - s, P, d + df)
        score[s:e] = sc
        word[s:e] = prod[:, :, :d].sum(axis=2)
        feature[s:e] = prod[:, :, d:].sum(axis=2)
        grad[s:e] = dX.reshape(e - s, P, d + df)
    rest = score - word.sum(axis=1) - feature.sum(axis=1)
    return Attribution(score, word, feature, rest, grad)


def logit_of(chosen: np.ndarray) -> ScoreGrad:
    """score_grad for the logit of class chosen[i] in window i (chosen: (N,) ints)."""

    def score_grad(Z: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        B = Z.shape[0]
        k = chosen[start : start + B]
        dZ = np.zeros_like(Z)
        dZ[np.arange(B), k] = 1.0
        return Z[np.arange(B), k].astype(np.float64), dZ

    return score_grad


def log_probability_of(targets: np.ndarray) -> ScoreGrad:
    """score_grad for log softmax(Z)[targets[i]] in window i: dZ = onehot - softmax."""

    def score_grad(Z: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        B = Z.shape[0]
        k = targets[start : start + B]
        Z64 = Z.astype(np.float64)
        mx = Z64.max(axis=1, keepdims=True)
        lse = mx[:, 0] + np.log(np.exp(Z64 - mx).sum(axis=1))
        dZ = -np.exp(Z64 - lse[:, None])
        dZ[np.arange(B), k] += 1.0
        return Z64[np.arange(B), k] - lse, dZ

    return score_grad
