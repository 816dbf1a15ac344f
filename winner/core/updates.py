"""Parameter updates as kernels: weight penalties, SGD and Adam, dense on theta and row-wise on the tables.

The embedding tables' gradients are sparse: `scatter_rows` sums a batch's per-position gradients into one
row per table row used (a row used twice gets both), and the row-wise updates touch only those rows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from winner.core.blas import gemm
from winner.core.fastmath import FAST, cast_like

OPT_SGD, OPT_ADAM = 0, 1


class Hyper(NamedTuple):
    """An optimiser's scalars."""

    opt: int  # OPT_SGD or OPT_ADAM
    lr: float
    lr_embed: float  # the tables' learning rate
    beta1: float
    beta2: float
    eps: float
    l2: float
    l1: float
    update_E: bool
    update_F: bool


class AdamState(NamedTuple):
    """Adam's moments of theta, E and F (tiny placeholders under SGD)."""

    m: np.ndarray
    v: np.ndarray
    mE: np.ndarray
    vE: np.ndarray
    mF: np.ndarray
    vF: np.ndarray


@njit(cache=True, fastmath=FAST, error_model="numpy")
def add_penalty_grad(theta, weight_mask, l2, l1, grad):
    """grad += l2*W + l1*sign(W) on weights only (weight_mask 1), returns 0.5*l2*|W|^2 + l1*|W|_1."""
    pen = 0.0
    if l2 == 0.0 and l1 == 0.0:
        return pen
    for i in range(theta.shape[0]):
        if weight_mask[i]:
            w = theta[i]
            pen += 0.5 * l2 * w * w + l1 * abs(w)
            grad[i] += l2 * w + l1 * np.sign(w)
    return pen


# ---------------------------------------------------------------- sparse rows


@njit(cache=True, fastmath=FAST, error_model="numpy")
def scatter_rows(ids, dX, col0, width, stride, slot, rows, G, n_rows):
    """Add each window position's slice of dX into a compact per-row gradient buffer.

    ids: (B, P) int32 table rows; dX: (B, P*stride); the table's slice of position p is
    dX[:, p*stride + col0 : p*stride + col0 + width]. slot: (V,) int32, -1 for rows not yet in this
    batch's buffer; rows: (cap,) int32 row ids; G: (cap, width). A row used twice gets both
    contributions. Returns the new number of rows in the buffer.
    """
    B, P = ids.shape
    for b in range(B):
        for p in range(P):
            r = ids[b, p]
            k = slot[r]
            if k < 0:
                k = n_rows
                slot[r] = k
                rows[k] = r
                n_rows += 1
                for j in range(width):
                    G[k, j] = 0.0
            o = p * stride + col0
            for j in range(width):
                G[k, j] += dX[b, o + j]
    return n_rows


@njit(cache=True, fastmath=FAST, error_model="numpy")
def number_row(r, slot, rows, n):
    """Row r gets the next number n if it has none yet (slot[r] = n, rows[n] = r); returns the new count."""
    if slot[r] < 0:
        slot[r] = n
        rows[n] = r
        return n + 1
    return n


@njit(cache=True, fastmath=FAST, error_model="numpy")
def clear_slots(slot, rows, n_rows):
    """Reset slot[rows[:n_rows]] to -1 so the buffer can be reused by the next batch."""
    for k in range(n_rows):
        slot[rows[k]] = -1


# ---------------------------------------------------------------- SGD and Adam


@njit(cache=True, fastmath=FAST, error_model="numpy")
def sgd_dense(theta, grad, lr):
    for i in range(theta.shape[0]):
        theta[i] -= lr * grad[i]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def sgd_rows(table, rows, G, n_rows, lr):
    for k in range(n_rows):
        r = rows[k]
        for j in range(table.shape[1]):
            table[r, j] -= lr * G[k, j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def sgd_scatter(ids, dX, col0, width, stride, table, lr):
    """SGD straight from dX: table[ids[b, p]] -= lr * position p's slice of dX (a row used twice moves twice).

    Equal to scatter_rows + sgd_rows up to the order of float additions; no slot bookkeeping.
    """
    B, P = ids.shape
    c = cast_like(lr, table)
    for b in range(B):
        for p in range(P):
            r = ids[b, p]
            o = p * stride + col0
            for j in range(width):
                table[r, j] -= c * dX[b, o + j]


@njit(cache=True, inline="always", error_model="numpy")
def adam_constants(lr, beta1, beta2, eps, t, like):
    """Adam's step size with bias correction at step t (1-based), then beta1, beta2, 1 - beta1, 1 - beta2 and eps,
    all in like's dtype so that a float32 model's loop stays float32 and vectorises."""
    c1 = 1.0 - beta1**t
    c2 = 1.0 - beta2**t
    step = cast_like(lr * np.sqrt(c2) / c1, like)
    b1, b2 = cast_like(beta1, like), cast_like(beta2, like)
    a1, a2 = cast_like(1.0 - beta1, like), cast_like(1.0 - beta2, like)
    return step, b1, b2, a1, a2, cast_like(eps, like)


@njit(cache=True, inline="always", error_model="numpy")
def adam_moments(g, m, v, k):
    """One element's Adam update for gradient g: its new moments and the change to subtract from the weight.
    k: adam_constants. (Inlined, so it takes the fast-math flags of the loop it is in.)"""
    step, b1, b2, a1, a2, eps = k
    mi = b1 * m + a1 * g
    vi = b2 * v + a2 * g * g
    return mi, vi, step * mi / (np.sqrt(vi) + eps)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def adam_dense(theta, grad, m, v, lr, beta1, beta2, eps, t):
    """One Adam step (Kingma & Ba 2015) on a flat array, with bias correction at step t (1-based)."""
    k = adam_constants(lr, beta1, beta2, eps, t, theta)
    for i in range(theta.shape[0]):
        m[i], v[i], change = adam_moments(grad[i], m[i], v[i], k)
        theta[i] -= change


@njit(cache=True, fastmath=FAST, error_model="numpy")
def adam_rows(table, rows, G, n_rows, m, v, lr, beta1, beta2, eps, t):
    """Lazy (sparse) Adam: only the rows used in this batch have their moments decayed and updated."""
    k = adam_constants(lr, beta1, beta2, eps, t, table)
    for n in range(n_rows):
        r = rows[n]
        for j in range(table.shape[1]):
            m[r, j], v[r, j], change = adam_moments(G[n, j], m[r, j], v[r, j], k)
            table[r, j] -= change


@njit(cache=True, fastmath=FAST, error_model="numpy")
def apply_update(params, grad, rowsE, GE, nE, rowsF, GF, nF, hyper, t, adam):
    """One optimiser step from gradients: dense for theta, lazy row updates for the embedding tables.

    params: Params; grad: theta's gradient; (rowsE[:nE], GE[:nE]) and (rowsF[:nF], GF[:nF]): the rows of the
    tables used and their gradients (scatter_rows); hyper: Hyper; t: Adam's 1-based step; adam: AdamState.
    """
    lr, lr_e, b1, b2, eps = hyper.lr, hyper.lr_embed, hyper.beta1, hyper.beta2, hyper.eps
    if hyper.opt == OPT_SGD:
        sgd_dense(params.theta, grad, lr)
        if hyper.update_E:
            sgd_rows(params.E, rowsE, GE, nE, lr_e)
        if hyper.update_F:
            sgd_rows(params.F, rowsF, GF, nF, lr_e)
    else:
        adam_dense(params.theta, grad, adam.m, adam.v, lr, b1, b2, eps, t)
        if hyper.update_E:
            adam_rows(params.E, rowsE, GE, nE, adam.mE, adam.vE, lr_e, b1, b2, eps, t)
        if hyper.update_F:
            adam_rows(params.F, rowsF, GF, nF, adam.mF, adam.vF, lr_e, b1, b2, eps, t)


# ---------------------------------------------------------------- updates fused with backward


@njit(cache=True, fastmath=FAST, error_model="numpy")
def dense_block_update(A, dcur, Wb, n, m, g, mo, vo, hyper, t):
    """Update one weight block Wb = (W (n, m) then b (m,)) flat in theta from A (B, n) and dcur (B, m).

    SGD adds -lr * A.T @ dcur straight into W (one BLAS call, no gradient array; g's bias slot, if g has one,
    holds the bias sums); Adam writes the block's gradient into g (same layout) and steps its moments mo, vo.
    hyper.l2 adds weight decay on W (not b): the core's steps route a penalty to the reference step, the
    class-factored step comes here with it.
    """
    B = A.shape[0]
    W = Wb[0 : n * m].reshape(n, m)
    lr = hyper.lr
    if hyper.opt == OPT_SGD:
        if hyper.l2 != 0.0:  # W -= lr * l2 * W, before the gradient's share
            decay = cast_like(1.0 - lr * hyper.l2, Wb)
            for i in range(n * m):
                Wb[i] *= decay
        gemm(True, False, -lr, A, dcur, 1.0, W)
        bias = Wb[n * m : n * m + m]
        lr_t = cast_like(lr, Wb)
        if g.shape[0] >= n * m + m:  # g's bias slot as scratch: summing row by row reads dcur in order
            gb = g[n * m : n * m + m]
            gb[:] = 0.0
            for b in range(B):
                for j in range(m):
                    gb[j] += dcur[b, j]
            for j in range(m):
                bias[j] -= lr_t * gb[j]
        else:  # the same sums, column by column
            for j in range(m):
                s = dcur[0, j] * 0.0
                for b in range(B):
                    s += dcur[b, j]
                bias[j] -= lr_t * s
    else:
        gemm(True, False, 1.0, A, dcur, 0.0, g[0 : n * m].reshape(n, m))
        if hyper.l2 != 0.0:
            l2 = cast_like(hyper.l2, Wb)
            for i in range(n * m):
                g[i] += l2 * Wb[i]
        gb = g[n * m : n * m + m]
        gb[:] = 0.0
        for b in range(B):
            for j in range(m):
                gb[j] += dcur[b, j]
        adam_dense(Wb, g, mo, vo, lr, hyper.beta1, hyper.beta2, hyper.eps, t)


# Inlined (through sgd_example and train_step) into train_batches, whose FAST_ENTRY lets the dot product
# vectorise: its code then exists in one compiled copy only (see fastmath.FAST).
@njit(cache=True, inline="always", fastmath=FAST, error_model="numpy")
def rank1_update_dot(W, a, delta, lr, da, need):
    """One sweep over W (n, m): da[i] += W[i] . delta (with the old W, if need), then W[i] -= lr*a[i]*delta."""
    n, m = W.shape
    for i in range(n):
        c = lr * a[i]
        if need:
            s = da[i]
            for j in range(m):
                s += W[i, j] * delta[j]
                W[i, j] -= c * delta[j]
            da[i] = s
        elif c != 0.0:
            for j in range(m):
                W[i, j] -= c * delta[j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def sgd_tables(ids, feats, dX, params, hyper):
    """SGD of the embedding rows a batch used, straight from dX (B, n_in) = dL/d(gathered input)."""
    d, df = params.E.shape[1], params.F.shape[1]
    if hyper.update_E:
        sgd_scatter(ids, dX, 0, d, d + df, params.E, hyper.lr_embed)
    if hyper.update_F:
        sgd_scatter(feats, dX, d, df, d + df, params.F, hyper.lr_embed)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def adam_tables(ids, feats, dX, params, hyper, t, adam, scratch):
    """Lazy Adam of the embedding rows a batch used: dX (B, n_in) summed per row (scatter_rows), then adam_rows."""
    d, df = params.E.shape[1], params.F.shape[1]
    lr_e, b1, b2, eps = hyper.lr_embed, hyper.beta1, hyper.beta2, hyper.eps
    if hyper.update_E:
        nE = scatter_rows(ids, dX, 0, d, d + df, scratch.slotE, scratch.rowsE, scratch.GE, 0)
        adam_rows(params.E, scratch.rowsE, scratch.GE, nE, adam.mE, adam.vE, lr_e, b1, b2, eps, t)
        clear_slots(scratch.slotE, scratch.rowsE, nE)
    if hyper.update_F:
        nF = scatter_rows(feats, dX, d, df, d + df, scratch.slotF, scratch.rowsF, scratch.GF, 0)
        adam_rows(params.F, scratch.rowsF, scratch.GF, nF, adam.mF, adam.vF, lr_e, b1, b2, eps, t)
        clear_slots(scratch.slotF, scratch.rowsF, nF)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def update_tables(ids, feats, dX, params, hyper, t, adam, scratch):
    """The embedding rows a batch used, from dX (B, n_in): plain SGD straight from it, or lazy Adam."""
    if hyper.opt == OPT_SGD:
        sgd_tables(ids, feats, dX, params, hyper)
    else:
        adam_tables(ids, feats, dX, params, hyper, t, adam, scratch)
