"""A class-factored softmax output (Goodman 2001; Mikolov et al. 2011): P(w | h) = P(c(w) | h) P(w | c(w), h).

The window MLP's top layer has n_out = C + V columns: the C class scores first, then the V word scores
grouped class by class, so that a class's words are one contiguous column range (`ClassLayout.starts`).
Both factors are softmaxes, over the C class columns and over the columns of one class: the model stays
exactly normalised over the vocabulary, and a training step needs only the class columns and the target's
class block, about 2 sqrt(V) columns instead of V (the top layer's W, b and direct connections D alike).

`class_xent` is the straightforward loss over the full logits (the reference: its gradient goes through the
core's ordinary backward); `class_step` is the training step that never forms the other columns, with lazy
Adam on the columns it touched (at Adam's first step, and always with SGD, equal to the reference update).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from winner.core.blas import gemm
from winner.core.fastmath import FAST
from winner.core.layers import acts_offset, forward_input, hidden_layer, weight_offset
from winner.core.steps import layer_step, stage_batch, unit_grads
from winner.core.updates import OPT_SGD, adam_dense, sgd_dense, update_tables


class ClassLayout(NamedTuple):
    """Which class each word is in and where its score sits in the output."""

    word_class: np.ndarray  # (V,) int32
    word_col: np.ndarray  # (V,) int64: the output column of each word's score (>= C)
    starts: np.ndarray  # (C + 1,) int64: class c's words are the columns starts[c]:starts[c + 1]


class ClassScratch(NamedTuple):
    """class_step's buffers for batches of up to `cap` windows."""

    Zc: np.ndarray  # (cap, C) class scores, then dL/dscores
    Zw: np.ndarray  # (cap, max class size) the target class's word scores, then dL/dscores
    dXd: np.ndarray  # (cap, n_in) dL/dX through the direct connections
    touched: np.ndarray  # (C,) int32: 1 for a class whose columns this batch used, 0 between steps
    order: np.ndarray  # (C,) int32: the classes touched, in order of first use


def frequency_classes(counts: np.ndarray, n_classes: int) -> np.ndarray:
    """Class of every word (int32): words by descending count cut into bins of equal unigram mass (Mikolov et
    al. 2011), so that frequent words sit in small classes; empty bins dropped, so at most n_classes classes.
    Ties in count keep the word order (a stable sort): the same counts give the same classes."""
    counts = np.asarray(counts, dtype=np.float64)
    order = np.argsort(-counts, kind="stable")
    mass = np.cumsum(counts[order]) / counts.sum()
    before = np.concatenate([[0.0], mass[:-1]])
    bins = np.minimum((before * n_classes).astype(np.int64), n_classes - 1)
    _, dense = np.unique(bins, return_inverse=True)
    word_class = np.empty(len(counts), np.int32)
    word_class[order] = dense
    return word_class


def layout_of(word_class: np.ndarray) -> ClassLayout:
    """The output layout of a class assignment: C class columns, then each class's words in word order."""
    word_class = np.ascontiguousarray(word_class, dtype=np.int32)
    C = int(word_class.max()) + 1
    sizes = np.bincount(word_class, minlength=C)
    if (sizes == 0).any():
        raise ValueError(f"classes must be numbered 0..C-1 without gaps; class {int(np.argmin(sizes))} is empty")
    starts = C + np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    members = np.argsort(word_class, kind="stable")
    word_col = np.empty(len(word_class), np.int64)
    word_col[members] = C + np.arange(len(word_class))
    return ClassLayout(word_class, word_col, starts)


def class_scratch(layout: ClassLayout, cap: int, n_in: int, dtype: np.dtype) -> ClassScratch:
    C = layout.starts.shape[0] - 1
    widest = int(np.diff(layout.starts).max())
    return ClassScratch(np.zeros((cap, C), dtype), np.zeros((cap, widest), dtype), np.zeros((cap, n_in), dtype),
                        np.zeros(C, np.int32), np.zeros(C, np.int32))


# ---------------------------------------------------------------- from full logits: the reference


@njit(cache=True)
def range_lse(z, s, e):
    """log sum exp of z[s:e] in float64, and its max."""
    mx = z[s]
    for j in range(s, e):
        mx = max(mx, z[j])
    total = 0.0
    for j in range(s, e):
        total += np.exp(np.float64(z[j]) - mx)
    return mx + np.log(total), mx


@njit(cache=True)
def softmax_range(z, s, e, t, scale, dz):
    """-log softmax(z[s:e])[t - s] (float64); dz[s:e] = scale * (softmax - onehot(t)). dz may be z."""
    lse, _ = range_lse(z, s, e)
    nll = lse - np.float64(z[t])
    for j in range(s, e):
        dz[j] = scale * np.exp(np.float64(z[j]) - lse)
    dz[t] -= scale
    return nll


@njit(cache=True)
def class_xent(Z, targets, layout, scale, dZ):
    """Summed factored cross-entropy of the full logits Z (B, C + V); dZ = scale * its gradient (0 outside the
    class columns and the target's class). The reference for class_step and for perplexity."""
    C = layout.starts.shape[0] - 1
    loss = 0.0
    for b in range(Z.shape[0]):
        w = targets[b]
        c = layout.word_class[w]
        dZ[b, :] = 0.0
        loss += softmax_range(Z[b], 0, C, c, scale, dZ[b])
        loss += softmax_range(Z[b], layout.starts[c], layout.starts[c + 1], layout.word_col[w], scale, dZ[b])
    return loss


@njit(cache=True)
def class_nll(Z, targets, layout, out):
    """out[b] = -log P(targets[b] | window b) (float64) from the full logits Z (B, C + V)."""
    C = layout.starts.shape[0] - 1
    row = np.empty(Z.shape[1], np.float64)
    for b in range(Z.shape[0]):
        w = targets[b]
        c = layout.word_class[w]
        out[b] = softmax_range(Z[b], 0, C, c, 0.0, row)
        out[b] += softmax_range(Z[b], layout.starts[c], layout.starts[c + 1], layout.word_col[w], 0.0, row)


@njit(cache=True)
def log_range(z, s, e, out):
    """out[s:e] = log softmax(z[s:e]) in float64."""
    lse, _ = range_lse(z, s, e)
    for j in range(s, e):
        out[j] = np.float64(z[j]) - lse


@njit(cache=True)
def word_log_proba(Z, layout, out):
    """out (B, V) float64 = log P(w | h) for every word, in word order, from the full logits Z (B, C + V)."""
    C = layout.starts.shape[0] - 1
    row = np.empty(Z.shape[1], np.float64)
    for b in range(Z.shape[0]):
        log_range(Z[b], 0, C, row)
        for c in range(C):
            log_range(Z[b], layout.starts[c], layout.starts[c + 1], row)
        for w in range(out.shape[1]):
            out[b, w] = row[layout.word_class[w]] + row[layout.word_col[w]]


# ---------------------------------------------------------------- the training step


@njit(cache=True)
def class_scores(A, X, Wt, bt, D, has_direct, Zc):
    """Zc (B, C) = A @ W[:, :C] + b[:C] (+ X @ D[:, :C])."""
    C = Zc.shape[1]
    gemm(False, False, 1.0, A, Wt[:, :C], 0.0, Zc)
    if has_direct:
        gemm(False, False, 1.0, X, D[:, :C], 1.0, Zc)
    for b in range(Zc.shape[0]):
        for j in range(C):
            Zc[b, j] += bt[j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def block_scores(a, Wt, bt, s, e, z, with_bias):
    """z[:e-s] += a @ W[:, s:e] (+ b[s:e] when with_bias). Indices are unsigned so that numba drops its
    negative-index checks and the column sweeps vectorise (see blas._rows_times_block)."""
    lo, hi = np.uint64(s), np.uint64(e)
    if with_bias:
        for j in range(lo, hi):
            z[j - lo] += bt[j]
    for i in range(np.uint64(a.shape[0])):
        ai = a[i]
        for j in range(lo, hi):
            z[j - lo] += ai * Wt[i, j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def block_backward(a, dz, Wt, G, s, e, da):
    """da += W[:, s:e] @ dz (with W as it is), G[:, s:e] += outer(a, dz): one input's share of a column block."""
    lo, hi = np.uint64(s), np.uint64(e)
    for i in range(np.uint64(a.shape[0])):
        acc = da[i] * 0.0
        ai = a[i]
        for j in range(lo, hi):
            acc += Wt[i, j] * dz[j - lo]
            G[i, j] += ai * dz[j - lo]
        da[i] += acc


@njit(cache=True)
def update_columns(P, G, M, V, s, e, hyper, t):
    """Columns s:e of P (rows, m) from their gradient G, which is zeroed after: SGD, or lazy Adam with moments
    M, V (step t, 1-based), row by row over the contiguous stretch of each row."""
    for i in range(P.shape[0]):
        g = G[i, s:e]
        if hyper.opt == OPT_SGD:
            sgd_dense(P[i, s:e], g, hyper.lr)
        else:
            adam_dense(P[i, s:e], g, M[i, s:e], V[i, s:e], hyper.lr, hyper.beta1, hyper.beta2, hyper.eps, t)
        g[:] = 0.0


@njit(cache=True)
def top_views(arr, sizes, has_direct):
    """The top layer's W (n, m), b (1, m) and D (n_in, m, or (0, m) without direct connections) in a
    theta-shaped array."""
    L = sizes.shape[0] - 2
    n, m, n_in = sizes[L], sizes[L + 1], sizes[0]
    wo = weight_offset(sizes, L)
    W = arr[wo : wo + n * m].reshape(n, m)
    b = arr[wo + n * m : wo + n * m + m].reshape(1, m)
    rows = n_in if has_direct else 0
    D = arr[wo + n * m + m : wo + n * m + m + rows * m].reshape(rows, m)
    return W, b, D


@njit(cache=True)
def class_top(targets, params, net, layout, scratch, cs, B):
    """Forward and backward of the factored top layer for a batch whose lower layers have run: the loss
    (mean), dL/d(top input) in scratch.dacts, dL/dX through D in cs.dXd, the touched columns' gradients in
    scratch.grad and the touched classes in cs.order; returns (loss, number of touched classes)."""
    sizes, L = params.sizes, params.sizes.shape[0] - 2
    n, n_in, C = sizes[L], sizes[0], cs.Zc.shape[1]
    ao = acts_offset(sizes, L, B)
    A = scratch.acts[ao : ao + B * n].reshape(B, n)
    dA = scratch.dacts[ao : ao + B * n].reshape(B, n)
    X = scratch.acts[0 : B * n_in].reshape(B, n_in)
    W, bt, D = top_views(params.theta, sizes, net.has_direct)
    gW, gb, gD = top_views(scratch.grad, sizes, net.has_direct)
    Zc, dXd, scale = cs.Zc[:B], cs.dXd[:B], 1.0 / B
    class_scores(A, X, W, bt[0], D, net.has_direct, Zc)
    loss, n_touched = 0.0, 0
    for b in range(B):
        w = targets[b]
        c = layout.word_class[w]
        s, e = layout.starts[c], layout.starts[c + 1]
        loss += softmax_range(Zc[b], 0, C, c, scale, Zc[b])
        z = cs.Zw[b]
        z[: e - s] = 0.0
        block_scores(A[b], W, bt[0], s, e, z, True)
        if net.has_direct:
            block_scores(X[b], D, bt[0], s, e, z, False)
        loss += softmax_range(z, 0, e - s, layout.word_col[w] - s, scale, z)
        if cs.touched[c] == 0:
            cs.touched[c] = 1
            cs.order[n_touched] = c
            n_touched += 1
    loss *= scale
    if not np.isfinite(loss):
        return loss, n_touched
    gemm(False, True, 1.0, Zc, W[:, :C], 0.0, dA)
    gemm(True, False, 1.0, A, Zc, 0.0, gW[:, :C])
    if net.has_direct:
        gemm(False, True, 1.0, Zc, D[:, :C], 0.0, dXd)
        gemm(True, False, 1.0, X, Zc, 0.0, gD[:, :C])
    for b in range(B):
        c = layout.word_class[targets[b]]
        s, e = layout.starts[c], layout.starts[c + 1]
        z = cs.Zw[b]
        for j in range(C):
            gb[0, j] += Zc[b, j]
        for j in range(e - s):
            gb[0, s + j] += z[j]
        block_backward(A[b], z, W, gW, s, e, dA[b])
        if net.has_direct:
            block_backward(X[b], z, D, gD, s, e, dXd[b])
    return loss, n_touched


@njit(cache=True)
def class_top_update(params, net, layout, scratch, cs, n_touched, hyper, t, adam):
    """Update the class columns and every touched class's columns of W, b, D; zero their gradients and flags."""
    sizes, C = params.sizes, cs.Zc.shape[1]
    P = top_views(params.theta, sizes, net.has_direct)
    G = top_views(scratch.grad, sizes, net.has_direct)
    M = top_views(adam.m, sizes, net.has_direct) if hyper.opt != OPT_SGD else G
    V = top_views(adam.v, sizes, net.has_direct) if hyper.opt != OPT_SGD else G
    for k in range(-1, n_touched):
        s, e = (0, C) if k < 0 else (layout.starts[cs.order[k]], layout.starts[cs.order[k] + 1])
        for part in range(3):
            update_columns(P[part], G[part], M[part], V[part], s, e, hyper, t)
        if k >= 0:
            cs.touched[cs.order[k]] = 0


@njit(cache=True)
def class_step(ids, feats, targets, params, net, seed, step, hyper, adam, scratch, cs, layout):
    """One optimiser step on one minibatch of a class-factored model; returns the mean loss.

    The hidden layers run as in the core's fused step; the top layer computes only the class columns and
    each target's class block, and updates only those. A non-finite loss returns before any update."""
    B = ids.shape[0]
    sizes = params.sizes
    L = sizes.shape[0] - 2
    forward_input(ids, feats, params, net, seed, step, scratch, False)
    for l in range(L):
        hidden_layer(params, net, seed, step, scratch, B, l, False)
    loss, n_touched = class_top(targets, params, net, layout, scratch, cs, B)
    if not np.isfinite(loss):
        for k in range(n_touched):
            cs.touched[cs.order[k]] = 0
        return loss
    t = step + 1
    class_top_update(params, net, layout, scratch, cs, n_touched, hyper, t, adam)
    n_in = sizes[0]
    need = L > 0 or hyper.update_E or hyper.update_F
    unit_grads(sizes, net, scratch, B, L, need)
    for l in range(L - 1, -1, -1):
        need = l > 0 or hyper.update_E or hyper.update_F
        ao, ao1 = acts_offset(sizes, l, B), acts_offset(sizes, l + 1, B)
        dA = scratch.dacts[ao : ao + B * sizes[l]].reshape(B, sizes[l])
        dcur = scratch.dacts[ao1 : ao1 + B * sizes[l + 1]].reshape(B, sizes[l + 1])
        layer_step(params, hyper, t, adam, scratch, dcur, dA, l, need, True)
        if l == 0 and net.has_direct and need:
            dA += cs.dXd[:B]
        unit_grads(sizes, net, scratch, B, l, need)
    update_tables(ids, feats, scratch.dacts[0 : B * n_in].reshape(B, n_in), params, hyper, t, adam, scratch)
    return loss


@njit(cache=True)
def batch_nll(ids, feats, targets, params, net, scratch, cs, layout, out):
    """out[b] = -log P(targets[b] | window b) (float64) for one batch with dropout off, from the class columns
    and the target's class block only: as exact as class_nll over the full logits, without the other blocks."""
    B = ids.shape[0]
    sizes = params.sizes
    L = sizes.shape[0] - 2
    n, n_in, C = sizes[L], sizes[0], cs.Zc.shape[1]
    forward_input(ids, feats, params, net, 0, 0, scratch, False)
    for l in range(L):
        hidden_layer(params, net, 0, 0, scratch, B, l, False)
    ao = acts_offset(sizes, L, B)
    A = scratch.acts[ao : ao + B * n].reshape(B, n)
    X = scratch.acts[0 : B * n_in].reshape(B, n_in)
    W, bt, D = top_views(params.theta, sizes, net.has_direct)
    Zc = cs.Zc[:B]
    class_scores(A, X, W, bt[0], D, net.has_direct, Zc)
    for b in range(B):
        w = targets[b]
        c = layout.word_class[w]
        s, e = layout.starts[c], layout.starts[c + 1]
        z = cs.Zw[b]
        z[: e - s] = 0.0
        block_scores(A[b], W, bt[0], s, e, z, True)
        if net.has_direct:
            block_scores(X[b], D, bt[0], s, e, z, False)
        out[b] = softmax_range(Zc[b], 0, C, c, 0.0, Zc[b]) + softmax_range(z, 0, e - s, layout.word_col[w] - s,
                                                                             0.0, z)


@njit(cache=True)
def train_batches(ids, feats, targets, order, batch, params, net, seed, step0, hyper, adam, scratch, cs, layout):
    """steps.train_batches for a class-factored model: windows order[0], order[1], ... in minibatches;
    returns the summed batch losses (stopping early, and returning it, at a non-finite one)."""
    total = 0.0
    N = order.shape[0]
    for s in range(0, N, batch):
        e = min(s + batch, N)
        B = e - s
        stage_batch(ids, feats, targets, order, s, e, scratch)
        loss = class_step(scratch.ids[:B], scratch.feats[:B], scratch.targets[:B], params, net, seed,
                          step0 + s // batch, hyper, adam, scratch, cs, layout)
        if not np.isfinite(loss):
            return loss
        total += loss * B
    return total
